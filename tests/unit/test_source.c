/*
 * test_source.c: the scheme registry and SOURCE parsing, snapshots (pin,
 * fall back offline), blob targets, URL helpers, the file:// walk over a
 * temp tree, and the http(s):// walk against a fake engine.
 *
 * The engine is replaced through the linker (-Wl,--wrap=engine_http,
 * -Wl,--wrap=engine_http_submit): a table of canned answers, each
 * submitted request answered from its own thread, as the real engine
 * thread does. Snapshots use a fake source vtable (the seam of STYLE.md)
 * and a temp cache directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fetch/engine.h"
#include "fetch/http.h"
#include "fetch/source.h"
#include "fetch/source_i.h"
#include "state/cache.h"
#include "state/hlog.h"
#include "state/manifest.h"

#define ERRLEN 512
#define T_2026 INT64_C(1795456800) /* 2026-11-23 18:00:00 UTC */

/* ---- log capture ------------------------------------------------------ */

static FILE *logf_;

static void log_start(void)
{
	logf_ = tmpfile();
	assert_non_null(logf_);
	hlog_set_sink(logf_, false);
}

static void log_stop(void)
{
	hlog_set_sink(NULL, false);
	if (logf_)
		fclose(logf_);
	logf_ = NULL;
}

static const char *logged(void)
{
	static char buf[32768];
	size_t n;

	fflush(logf_);
	rewind(logf_);
	n = fread(buf, 1, sizeof(buf) - 1, logf_);
	buf[n] = '\0';
	fseek(logf_, 0, SEEK_END);
	return buf;
}

static size_t count(const char *s, const char *needle)
{
	size_t n = 0;

	while ((s = strstr(s, needle))) {
		n++;
		s += strlen(needle);
	}
	return n;
}

static void assert_prefix(const char *s, const char *prefix)
{
	if (strncmp(s, prefix, strlen(prefix)))
		fail_msg("'%s'\ndoes not start with\n'%s'", s, prefix);
}

/* ---- the fake engine -------------------------------------------------- */

struct route {
	const char *url;
	bool head; /* answers HEAD (else GET) */
	long status; /* 0 with err: no answer */
	int err; /* engine error (the engine sets it for >= 400) */
	const char *body;
	int64_t content_length; /* -1: none */
	const char *etag;
	const char *last_modified;
	const char *final_url; /* after redirects; NULL: url */
};

static const struct route *routes;
static size_t nroutes;
static const char *want_auth; /* every request must carry this */
static int requests, heads;
static int inflight, max_inflight; /* submitted, not yet answered */
static int answer_delay_us; /* each submitted request waits so long */
#define HEADS_LINKS 200
static pthread_mutex_t fake_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t fake_threads[4096];
static size_t nthreads;
static int fake_engine_token;
#define FAKE_ENGINE ((struct engine *)&fake_engine_token)

int __wrap_engine_http(struct engine *e, const struct http_req *req,
		       struct http_result *res);
int __wrap_engine_http_submit(struct engine *e, const struct http_req *req,
			      http_done_fn done, void *arg);

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static void answer(const struct http_req *req, struct http_result *res)
{
	const struct route *r = NULL;
	size_t i;

	memset(res, 0, sizeof(*res));
	res->content_length = -1;
	res->linked_size = -1;
	pthread_mutex_lock(&fake_lock);
	requests++;
	heads += req->head;
	pthread_mutex_unlock(&fake_lock);
	if ((want_auth && (!req->auth || strcmp(req->auth, want_auth))) ||
	    (!want_auth && req->auth)) {
		res->status = 401;
		res->err = -EACCES;
		res->url = strdup(req->url);
		return;
	}
	for (i = 0; i < nroutes; i++) {
		size_t n = strlen(routes[i].url);
		bool star = n && routes[i].url[n - 1] == '*'; /* a prefix */

		if ((star ? !strncmp(routes[i].url, req->url, n - 1) :
			    !strcmp(routes[i].url, req->url)) &&
		    routes[i].head == req->head) {
			r = &routes[i];
			break;
		}
	}
	if (!r) {
		res->status = 404;
		res->err = -ENOENT;
		res->url = strdup(req->url);
		return;
	}
	res->status = r->status;
	res->err = r->err ? r->err : http_status_errno(r->status);
	res->url = strdup(r->final_url ? r->final_url : r->url);
	if (r->body && !req->head) {
		res->body = strdup(r->body);
		res->body_len = strlen(r->body);
	}
	res->content_length = r->content_length;
	res->etag = dup_or_null(r->etag);
	res->last_modified = dup_or_null(r->last_modified);
}

int __wrap_engine_http(struct engine *e, const struct http_req *req,
		       struct http_result *res)
{
	assert_ptr_equal(e, FAKE_ENGINE);
	answer(req, res);
	return res->err;
}

struct pending {
	struct http_req req;
	char *url, *auth;
	http_done_fn done;
	void *arg;
};

static void *answer_thread(void *arg)
{
	struct pending *p = arg;
	struct http_result res;

	if (answer_delay_us)
		usleep((useconds_t)answer_delay_us);
	answer(&p->req, &res);
	pthread_mutex_lock(&fake_lock);
	inflight--;
	pthread_mutex_unlock(&fake_lock);
	p->done(p->arg, &res);
	free(p->url);
	free(p->auth);
	free(p);
	return NULL;
}

int __wrap_engine_http_submit(struct engine *e, const struct http_req *req,
			      http_done_fn done, void *arg)
{
	struct pending *p = calloc(1, sizeof(*p));
	int err;

	assert_ptr_equal(e, FAKE_ENGINE);
	assert_non_null(p);
	/* The request's strings are borrowed only until we return. */
	p->req = *req;
	p->url = strdup(req->url);
	p->auth = dup_or_null(req->auth);
	p->req.url = p->url;
	p->req.auth = p->auth;
	p->done = done;
	p->arg = arg;
	pthread_mutex_lock(&fake_lock);
	if (++inflight > max_inflight)
		max_inflight = inflight;
	assert_true(nthreads < sizeof(fake_threads) / sizeof(fake_threads[0]));
	err = pthread_create(&fake_threads[nthreads], NULL, answer_thread, p);
	assert_int_equal(err, 0);
	nthreads++;
	pthread_mutex_unlock(&fake_lock);
	return 0;
}

#define ROUTES(table) set_routes(table, sizeof(table) / sizeof(table[0]))

static void set_routes(const struct route *r, size_t n)
{
	routes = r;
	nroutes = n;
}

static int fake_setup(void **state)
{
	routes = NULL;
	nroutes = 0;
	want_auth = NULL;
	requests = heads = 0;
	inflight = max_inflight = answer_delay_us = 0;
	nthreads = 0;
	log_start();
	return 0;
}

static int fake_teardown(void **state)
{
	size_t i;

	for (i = 0; i < nthreads; i++)
		pthread_join(fake_threads[i], NULL);
	nthreads = 0;
	log_stop();
	return 0;
}

static int log_setup(void **state)
{
	log_start();
	return 0;
}

static int log_teardown(void **state)
{
	log_stop();
	return 0;
}

/* ---- helpers ---------------------------------------------------------- */

static struct source *open_ok(const char *spec, const struct source_opts *o)
{
	struct source *src = NULL;
	char err[ERRLEN] = "";

	if (source_open(spec, o, &src, err, sizeof(err)))
		fail_msg("source_open('%s'): %s", spec, err);
	assert_non_null(src);
	return src;
}

static struct manifest *list_ok(struct source *src, struct engine *e)
{
	struct manifest *m = NULL;
	char err[ERRLEN] = "";

	if (src->ops->list(src, e, &m, err, sizeof(err)))
		fail_msg("listing '%s': %s", src->spec, err);
	assert_non_null(m);
	assert_true(m->finished);
	return m;
}

static const struct mentry *entry(const struct manifest *m, const char *path)
{
	uint64_t idx;

	if (manifest_find(m, path, &idx))
		fail_msg("no entry '%s'", path);
	return &m->entries[idx];
}

static bool has(const struct manifest *m, const char *path)
{
	uint64_t idx;

	return !manifest_find(m, path, &idx);
}

/* ---- source_open ------------------------------------------------------ */

static void test_open_malformed(void **state)
{
	static const struct {
		const char *spec;
		int rc;
		const char *prefix;
	} cases[] = {
		{ "", -EINVAL, "malformed SOURCE '': it is empty" },
		{ "/data/models", -EINVAL,
		  "malformed SOURCE '/data/models': no scheme (expected "
		  "http://, https://, file://, hf:// or s3://; for a local "
		  "folder write "
		  "file:///data/models)" },
		{ "example.org/models/", -EINVAL,
		  "malformed SOURCE 'example.org/models/': no scheme (expected "
		  "http://, https://, file://, hf:// or s3://)" },
		{ "://x", -EINVAL, "malformed SOURCE '://x': no scheme" },
		{ "1http://x/", -EINVAL,
		  "malformed SOURCE '1http://x/': no "
		  "scheme" },
		{ "ftp://example.org/x", -EPROTONOSUPPORT,
		  "unknown scheme 'ftp' in SOURCE 'ftp://example.org/x' "
		  "(expected http://, https://, file://, hf:// or s3://)" },
		{ "S4://bucket/prefix", -EPROTONOSUPPORT,
		  "unknown scheme 's4' in SOURCE 'S4://bucket/prefix'" },
		{ "averyveryveryveryveryverylongscheme://x", -EPROTONOSUPPORT,
		  "unknown scheme 'averyveryveryveryveryverylongsch...'" },
		{ "file://relative/path", -EINVAL,
		  "malformed SOURCE 'file://relative/path': expected "
		  "file:///ABSOLUTE/PATH" },
		{ "file:relative", -EINVAL,
		  "malformed SOURCE 'file:relative': expected "
		  "file:///ABSOLUTE/PATH" },
		{ "file:", -EINVAL,
		  "malformed SOURCE 'file:': expected "
		  "file:///ABSOLUTE/PATH" },
		{ "file:/abs", -EINVAL,
		  "malformed SOURCE 'file:/abs': expected "
		  "file:///ABSOLUTE/PATH" },
		{ "file://", -EINVAL, "malformed SOURCE 'file://': expected " },
		{ "file:///bad%zz", -EINVAL,
		  "malformed SOURCE 'file:///bad%zz': "
		  "bad percent-escape in the path (write '%' as %25)" },
		{ "file:///nul%00", -EINVAL,
		  "malformed SOURCE 'file:///nul%00': "
		  "bad percent-escape" },
		{ "http:///models/", -EINVAL,
		  "malformed SOURCE 'http:///models/': no host (expected "
		  "http://HOST[:PORT]/PATH)" },
		{ "http://", -EINVAL, "malformed SOURCE 'http://': no host" },
		{ "https://", -EINVAL, "malformed SOURCE 'https://': no host" },
		{ "http://:8080/", -EINVAL,
		  "malformed SOURCE 'http://:8080/': "
		  "bad host or port" },
		{ "http:example.org/x", -EINVAL,
		  "malformed SOURCE 'http:example.org/x': expected "
		  "http://HOST[:PORT]/PATH" },
		{ "https:/example.org/x", -EINVAL,
		  "malformed SOURCE 'https:/example.org/x': expected "
		  "https://HOST[:PORT]/PATH" },
		{ "http://h:0/", -EINVAL,
		  "malformed SOURCE 'http://h:0/': bad "
		  "host or port" },
		{ "http://h:65536/", -EINVAL,
		  "malformed SOURCE 'http://h:65536/'"
		  ": bad host or port" },
		{ "http://h:/", -EINVAL,
		  "malformed SOURCE 'http://h:/': bad "
		  "host or port" },
		{ "http://h:8a/", -EINVAL,
		  "malformed SOURCE 'http://h:8a/': bad "
		  "host or port" },
		{ "http://bad host/", -EINVAL,
		  "malformed SOURCE 'http://bad "
		  "host/': bad host or port" },
		{ "http://[::1/", -EINVAL,
		  "malformed SOURCE 'http://[::1/': bad "
		  "host or port" },
		{ "http://[]/", -EINVAL,
		  "malformed SOURCE 'http://[]/': bad "
		  "host or port" },
		{ "http://h/x?y=1", -EINVAL,
		  "malformed SOURCE 'http://h/x?y=1': "
		  "query strings and fragments are not supported" },
		{ "http://h/x#top", -EINVAL,
		  "malformed SOURCE 'http://h/x#top': "
		  "query strings and fragments are not supported" },
		{ "http://h?x", -EINVAL,
		  "malformed SOURCE 'http://h?x': query " },
		{ "http://h/%zz/", -EINVAL,
		  "malformed SOURCE 'http://h/%zz/': "
		  "bad percent-escape in the path (write '%' as %25)" },
		{ "http://h/a/%00/", -EINVAL,
		  "malformed SOURCE 'http://h/a/%00/'"
		  ": bad percent-escape" },
		{ "http://h/a/../b/", -EINVAL,
		  "malformed SOURCE "
		  "'http://h/a/../b/': '.' and '..' are not allowed in the "
		  "path" },
		{ "http://h/./b", -EINVAL,
		  "malformed SOURCE 'http://h/./b': '.' "
		  "and '..' are not allowed" },
		{ "http://h/%2E%2E/", -EINVAL,
		  "malformed SOURCE "
		  "'http://h/%2E%2E/': '.' and '..'" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct source *src = (void *)1;
		char err[ERRLEN] = "";
		int rc;

		rc = source_open(cases[i].spec, NULL, &src, err, sizeof(err));
		if (rc != cases[i].rc)
			fail_msg("'%s': %d, not %d (%s)", cases[i].spec, rc,
				 cases[i].rc, err);
		assert_null(src);
		assert_prefix(err, cases[i].prefix);
		assert_null(strchr(err, '\n'));
	}
}

static void test_open_secrets_never_echoed(void **state)
{
	struct source_opts o = { .token = "hf_secret\nX-Evil: 1" };
	struct source *src = (void *)1;
	char err[ERRLEN] = "";

	assert_int_equal(source_open("http://user:pa55word@h/x/", NULL, &src,
				     err, sizeof(err)),
			 -EINVAL);
	assert_null(src);
	assert_prefix(err, "malformed SOURCE: credentials in the URL are not "
			   "supported (set a token with -o token_file=)");
	assert_null(strstr(err, "pa55word"));
	src = (void *)1;
	assert_int_equal(source_open("https://h/x/", &o, &src, err,
				     sizeof(err)),
			 -EINVAL);
	assert_null(src);
	assert_prefix(err, "the token contains control characters");
	assert_null(strstr(err, "secret"));
	assert_null(strstr(logged(), "secret"));
}

static void test_open_http_normalizes(void **state)
{
	static const struct {
		const char *spec, *key;
	} cases[] = {
		{ "HTTP://Example.ORG:80//a b//c%2f%7e/",
		  "http://example.org/a%20b/c%2F~/" },
		{ "http://example.org", "http://example.org/" },
		{ "https://example.org:443", "https://example.org/" },
		{ "https://example.org:8443/x", "https://example.org:8443/x" },
		{ "http://example.org:443/x", "http://example.org:443/x" },
		{ "http://[::1]:8080/m/", "http://[::1]:8080/m/" },
		{ "http://127.0.0.1/mod\xc3\xa8le.bin",
		  "http://127.0.0.1/mod%C3%A8le.bin" },
		{ "http://h/%41%42/", "http://h/AB/" },
		{ "http://my_host.local/x", "http://my_host.local/x" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct source *src = open_ok(cases[i].spec, NULL);

		assert_string_equal(src->cache_key, cases[i].key);
		assert_string_equal(src->spec, cases[i].spec);
		assert_string_equal(src->kind, "http");
		assert_ptr_equal(src->ops, &source_http_ops);
		assert_null(src->auth);
		assert_null(src->version);
		source_free(src);
	}
	source_free(NULL);
}

static void test_open_http_token(void **state)
{
	struct source_opts o = { .token = "hf_abc123" };
	struct source *src = open_ok("https://h/m/", &o);

	assert_string_equal(src->auth, "Authorization: Bearer hf_abc123");
	source_free(src);
	o.token = "";
	src = open_ok("https://h/m/", &o);
	assert_null(src->auth);
	source_free(src);
}

static void test_open_file_normalizes(void **state)
{
	static const struct {
		const char *spec, *key;
	} cases[] = {
		{ "file:///tmp//x/", "/tmp/x" },
		{ "file://localhost/tmp", "/tmp" },
		{ "FILE:///my%20dir/caf%C3%A9", "/my dir/caf\xc3\xa9" },
		{ "file:///", "/" },
		{ "file:////", "/" },
		{ "file:///a b", "/a b" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct source *src = open_ok(cases[i].spec, NULL);

		assert_string_equal(src->cache_key, cases[i].key);
		assert_string_equal(src->kind, "file");
		assert_ptr_equal(src->ops, &source_file_ops);
		assert_null(src->auth);
		source_free(src);
	}
}

/* ---- helpers of source.h ---------------------------------------------- */

static void test_err_is_network(void **state)
{
	static const int yes[] = { ECONNREFUSED, EHOSTUNREACH, ENETUNREACH,
				   ETIMEDOUT,	 ENETDOWN,     ECONNRESET,
				   EHOSTDOWN,	 ECONNABORTED };
	static const int no[] = { 0,	   ENOENT, EACCES, EIO,
				  EPROTO,  EINVAL, ENOMEM, EBADMSG,
				  ENOTDIR, EFBIG,  ESTALE };
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		assert_true(source_err_is_network(-yes[i]));
		assert_true(source_err_is_network(yes[i]));
	}
	for (i = 0; i < sizeof(no) / sizeof(no[0]); i++)
		assert_false(source_err_is_network(-no[i]));
}

static void test_url_escape_round_trip(void **state)
{
	static const char *const names[] = {
		"plain.bin",
		"with space",
		"a/b",
		"100%",
		"\xc3\xa9\xe2\x9c\x93 unicode",
		"~tilde-_.",
		"?#&=+;:@!$'()*,",
		"",
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char *esc = url_escape_component(names[i]);

		assert_non_null(esc);
		assert_null(strpbrk(esc, "/ ?#&=+;:@"));
		assert_int_equal(url_unescape(esc), 0);
		assert_string_equal(esc, names[i]);
		free(esc);
	}
}

static void test_url_unescape_in_place(void **state)
{
	char ok[] = "a%20b%2Fc%c3%a9", bad[] = "keep%zzme", nul[] = "a%00b";

	assert_int_equal(url_unescape(ok), 0);
	assert_string_equal(ok, "a b/c\xc3\xa9");
	assert_int_equal(url_unescape(bad), -EINVAL);
	assert_string_equal(bad, "keep%zzme"); /* untouched */
	assert_int_equal(url_unescape(nul), -EINVAL);
	assert_string_equal(nul, "a%00b");
}

static void test_http_parse_date(void **state)
{
	int64_t t = 0;

	assert_int_equal(http_parse_date("Mon, 23 Nov 2026 18:00:00 GMT", &t),
			 0);
	assert_int_equal(t, T_2026);
	assert_int_equal(http_parse_date("23-Nov-2026 18:00", &t), 0);
	assert_int_equal(t, T_2026);
	assert_int_equal(http_parse_date("2026-11-23 18:00", &t), 0);
	assert_int_equal(t, T_2026);
	t = 5;
	assert_int_equal(http_parse_date("Mon, 23 Nov 2026", &t), -EINVAL);
	assert_int_equal(http_parse_date("", &t), -EINVAL);
	assert_int_equal(t, 5);
}

/* ---- source_target ---------------------------------------------------- */

static struct manifest *target_manifest(void)
{
	struct manifest *m = NULL;
	char longurl[600];

	memset(longurl, 'u', sizeof(longurl));
	memcpy(longurl, "http://h/", 9);
	longurl[sizeof(longurl) - 1] = '\0';
	assert_int_equal(manifest_new(&m), 0);
	assert_int_equal(manifest_add(m, "d/tagged.bin", MENTRY_FILE, 10, 123,
				      "\"abc\"", "etag",
				      "http://h/d/tagged.bin"),
			 0);
	assert_int_equal(manifest_add(m, "d/untagged.bin", MENTRY_FILE, 20,
				      1700000000, NULL, NULL,
				      "http://h/d/untagged.bin"),
			 0);
	assert_int_equal(manifest_add(m, "long.bin", MENTRY_FILE, 30, 5, NULL,
				      NULL, longurl),
			 0);
	assert_int_equal(manifest_add(m, "other.bin", MENTRY_FILE, 30, 5, NULL,
				      NULL, "http://h/other.bin"),
			 0);
	assert_int_equal(manifest_finish(m), 0);
	return m;
}

static void test_target_http(void **state)
{
	struct source_opts o = { .token = "tok" };
	struct source *src = open_ok("http://h/", &o);
	struct manifest *m = target_manifest();
	struct fblob_target t;
	char id[256], id2[256];

	source_target(src, m, entry(m, "d/tagged.bin") - m->entries, &t, id,
		      sizeof(id));
	assert_string_equal(t.kind, "http");
	assert_string_equal(t.content_id, "http://h/d/tagged.bin\n\"abc\"");
	assert_ptr_equal(t.content_id, id);
	assert_string_equal(t.etag, "\"abc\"");
	assert_string_equal(t.url, "http://h/d/tagged.bin");
	assert_string_equal(t.auth, "Authorization: Bearer tok");
	assert_string_equal(t.name, "d/tagged.bin");
	assert_int_equal(t.size, 10);

	source_target(src, m, entry(m, "d/untagged.bin") - m->entries, &t, id,
		      sizeof(id));
	assert_string_equal(t.content_id,
			    "http://h/d/untagged.bin\nmtime=1700000000");
	assert_null(t.etag);
	assert_int_equal(t.size, 20);

	/* Too long for idbuf: its xxh128 stands for it: stable, distinct */
	source_target(src, m, entry(m, "long.bin") - m->entries, &t, id,
		      sizeof(id));
	assert_prefix(t.content_id, "xxh128:");
	assert_int_equal(strlen(t.content_id), 7 + 32);
	source_target(src, m, entry(m, "long.bin") - m->entries, &t, id2, 40);
	assert_string_equal(id, id2);
	/* 40 bytes of identity do not fit in 40 with the NUL */
	source_target(src, m, entry(m, "d/untagged.bin") - m->entries, &t, id2,
		      40);
	assert_prefix(id2, "xxh128:");
	assert_string_not_equal(id, id2);
	source_target(src, m, entry(m, "other.bin") - m->entries, &t, id2, 40);
	assert_string_equal(id2, "http://h/other.bin\nmtime=5");
	manifest_free(m);
	source_free(src);
}

/* ---- file:// ---------------------------------------------------------- */

/* "ünïcödé ✓.txt" */
#define UNICODE_NAME        \
	"\xc3\xbcn\xc3\xaf" \
	"c\xc3\xb6"         \
	"d\xc3\xa9 \xe2\x9c\x93.txt"

struct tree {
	char root[64]; /* the temp folder */
	char top[80]; /* root/tree: the one listed */
};

static void put_file(const char *dir, const char *rel, size_t len)
{
	char path[PATH_MAX * 2];
	char buf[64];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	memset(buf, 'x', sizeof(buf));
	assert_true(len <= sizeof(buf));
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

static void put_dir(const char *dir, const char *rel)
{
	char path[PATH_MAX * 2];

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	assert_int_equal(mkdir(path, 0755), 0);
}

static int tree_setup(void **state)
{
	struct tree *t = calloc(1, sizeof(*t));
	char path[PATH_MAX * 2];

	assert_non_null(t);
	snprintf(t->root, sizeof(t->root), "/tmp/test_source.XXXXXX");
	assert_non_null(mkdtemp(t->root));
	snprintf(t->top, sizeof(t->top), "%s/tree", t->root);
	assert_int_equal(mkdir(t->top, 0755), 0);
	put_file(t->top, "a.bin", 5);
	put_file(t->top, "empty.bin", 0);
	put_file(t->top, "with space.txt", 3);
	put_file(t->top, UNICODE_NAME, 2);
	put_dir(t->top, "sub");
	put_dir(t->top, "sub/nested");
	put_file(t->top, "sub/nested/deep.bin", 7);
	put_dir(t->top, "emptydir");
	snprintf(path, sizeof(path), "%s/link-in", t->top);
	assert_int_equal(symlink("a.bin", path), 0);
	snprintf(path, sizeof(path), "%s/link-out", t->top);
	assert_int_equal(symlink("/etc", path), 0);
	snprintf(path, sizeof(path), "%s/sub/link-dir", t->top);
	assert_int_equal(symlink("..", path), 0);
	snprintf(path, sizeof(path), "%s/fifo", t->top);
	assert_int_equal(mkfifo(path, 0644), 0);
	put_file(t->root, "outside.bin", 1);
	log_start();
	*state = t;
	return 0;
}

static int rm_cb(const char *dir)
{
	char cmd[PATH_MAX + 32];

	snprintf(cmd, sizeof(cmd), "chmod -R u+rwx '%s'; rm -rf '%s'", dir,
		 dir);
	return system(cmd);
}

static int tree_teardown(void **state)
{
	struct tree *t = *state;

	log_stop();
	rm_cb(t->root);
	free(t);
	return 0;
}

static struct source *open_tree(const struct tree *t, const char *rel,
				const struct source_opts *o)
{
	char spec[PATH_MAX * 2];

	snprintf(spec, sizeof(spec), "file://%s%s", t->top, rel);
	return open_ok(spec, o);
}

static void test_file_lists_tree(void **state)
{
	struct tree *t = *state;
	struct source *src = open_tree(t, "/", NULL);
	struct manifest *m;
	const struct mentry *en;
	char url[PATH_MAX * 3], *esc;
	struct stat st;
	const char *uni = UNICODE_NAME;

	assert_string_equal(src->cache_key, t->top); /* no trailing '/' */
	m = list_ok(src, NULL); /* no engine needed */
	assert_string_equal(src->version, "listing");
	assert_string_equal(m->version, "listing");
	assert_string_equal(m->source, src->spec);
	assert_int_equal(manifest_file_count(m), 5);
	assert_int_equal(manifest_total_bytes(m), 5 + 0 + 3 + 2 + 7);
	/* the root, 5 files, 3 folders */
	assert_int_equal(m->n, 1 + 5 + 3);

	en = entry(m, "a.bin");
	assert_int_equal(en->type, MENTRY_FILE);
	assert_int_equal(en->size, 5);
	assert_null(en->content_id);
	assert_null(en->hash_kind);
	snprintf(url, sizeof(url), "%s/a.bin", t->top);
	assert_int_equal(stat(url, &st), 0);
	assert_int_equal(en->mtime, st.st_mtim.tv_sec);
	assert_prefix(en->url, "file:///tmp/test_source.");
	assert_non_null(strstr(en->url, "/tree/a.bin"));

	assert_int_equal(entry(m, "empty.bin")->size, 0);
	en = entry(m, "with space.txt");
	assert_non_null(strstr(en->url, "/tree/with%20space.txt"));
	en = entry(m, uni);
	assert_int_equal(en->size, 2);
	esc = url_escape_component(uni);
	snprintf(url, sizeof(url), "/tree/%s", esc);
	free(esc);
	assert_non_null(strstr(en->url, url));
	assert_int_equal(entry(m, "sub")->type, MENTRY_DIR);
	assert_int_equal(entry(m, "sub/nested")->type, MENTRY_DIR);
	assert_int_equal(entry(m, "sub/nested/deep.bin")->size, 7);
	assert_int_equal(entry(m, "emptydir")->type, MENTRY_DIR);
	assert_false(has(m, "link-in"));
	assert_false(has(m, "link-out"));
	assert_false(has(m, "sub/link-dir"));
	assert_false(has(m, "fifo"));
	assert_false(has(m, "outside.bin"));
	/* skipped quietly: symlinks and FIFOs are only debug lines */
	assert_null(strstr(logged(), "warning"));
	manifest_free(m);
	source_free(src);
}

static void test_file_target_identity(void **state)
{
	struct tree *t = *state;
	struct source *src = open_tree(t, "", NULL);
	struct manifest *m = list_ok(src, NULL);
	const struct mentry *en = entry(m, "a.bin");
	struct fblob_target bt;
	char id[PATH_MAX * 2], want[PATH_MAX * 3];

	source_target(src, m, en - m->entries, &bt, id, sizeof(id));
	snprintf(want, sizeof(want), "%s\nmtime=%lld", en->url,
		 (long long)en->mtime);
	assert_string_equal(bt.content_id, want);
	assert_string_equal(bt.kind, "file");
	assert_null(bt.etag);
	assert_null(bt.auth);
	assert_int_equal(bt.size, 5);
	manifest_free(m);
	source_free(src);
}

static void test_file_single_file(void **state)
{
	struct tree *t = *state;
	struct source *src = open_tree(t, "/with%20space.txt", NULL);
	struct manifest *m = list_ok(src, NULL);

	assert_int_equal(m->n, 2);
	assert_int_equal(entry(m, "with space.txt")->size, 3);
	manifest_free(m);
	source_free(src);
}

static void test_file_errors(void **state)
{
	struct tree *t = *state;
	struct source *src;
	struct manifest *m = (void *)1;
	char err[ERRLEN], want[PATH_MAX * 2];

	src = open_tree(t, "/missing", NULL);
	assert_int_equal(src->ops->list(src, NULL, &m, err, sizeof(err)),
			 -ENOENT);
	assert_null(m);
	snprintf(want, sizeof(want), "'%s/missing' does not exist", t->top);
	assert_string_equal(err, want);
	source_free(src);

	src = open_tree(t, "/a.bin/below", NULL);
	assert_int_equal(src->ops->list(src, NULL, &m, err, sizeof(err)),
			 -ENOTDIR);
	assert_prefix(err, "'");
	assert_non_null(strstr(err, "' does not exist"));
	source_free(src);

	src = open_tree(t, "/fifo", NULL);
	assert_int_equal(src->ops->list(src, NULL, &m, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "' is neither a folder nor a regular "
				    "file"));
	source_free(src);

	/* The root may be a symlink: only links inside are skipped. */
	src = open_tree(t, "/link-in", NULL);
	m = list_ok(src, NULL);
	assert_int_equal(entry(m, "link-in")->size, 5);
	manifest_free(m);
	source_free(src);
}

static void test_file_unreadable_folder(void **state)
{
	struct tree *t = *state;
	struct source *src;
	struct manifest *m;
	char path[PATH_MAX * 2], err[ERRLEN];

	if (geteuid() == 0)
		skip(); /* root reads everything */
	snprintf(path, sizeof(path), "%s/sub", t->top);
	assert_int_equal(chmod(path, 0), 0);
	src = open_tree(t, "", NULL);
	m = list_ok(src, NULL);
	assert_int_equal(entry(m, "sub")->type, MENTRY_DIR);
	assert_false(has(m, "sub/nested"));
	assert_true(has(m, "a.bin"));
	assert_non_null(strstr(logged(), "skipping folder '"));
	assert_non_null(strstr(logged(), "/tree/sub': cannot read it: "
					 "Permission denied"));
	manifest_free(m);
	source_free(src);

	/* The root itself: an error. */
	src = open_tree(t, "/sub", NULL);
	m = (void *)1;
	assert_int_equal(src->ops->list(src, NULL, &m, err, sizeof(err)),
			 -EACCES);
	assert_null(m);
	assert_prefix(err, "cannot read '");
	assert_non_null(strstr(err, "Permission denied"));
	source_free(src);
	assert_int_equal(chmod(path, 0755), 0);
}

static void test_file_caps(void **state)
{
	struct tree *t = *state;
	struct source_opts o = { .max_depth = 1 };
	struct source *src = open_tree(t, "", &o);
	struct manifest *m = list_ok(src, NULL);

	assert_true(has(m, "sub/nested"));
	assert_false(has(m, "sub/nested/deep.bin"));
	assert_non_null(strstr(logged(), "not entering '"));
	assert_non_null(strstr(logged(), "more than 1 folders deep"));
	manifest_free(m);
	source_free(src);

	o.max_depth = 0;
	o.max_entries = 3;
	src = open_tree(t, "", &o);
	m = list_ok(src, NULL);
	assert_int_equal(m->n, 1 + 3);
	assert_int_equal(count(logged(), "stopped at 3 entries"), 1);
	manifest_free(m);
	source_free(src);
}

/* ---- source_snapshot -------------------------------------------------- */

struct fake_source {
	struct source base;
	int rc; /* what list returns */
	const char *why;
	int calls;
};

static int fake_list(struct source *src, struct engine *e,
		     struct manifest **out, char *err, size_t errlen)
{
	struct fake_source *fs = (struct fake_source *)src;
	struct manifest *m = NULL;

	fs->calls++;
	*out = NULL;
	if (fs->rc) {
		snprintf(err, errlen, "%s", fs->why);
		return fs->rc;
	}
	assert_int_equal(manifest_new(&m), 0);
	assert_int_equal(manifest_add(m, "dir/file.bin", MENTRY_FILE, 42, 7,
				      "\"e1\"", "etag",
				      "fake://x/dir/file.bin"),
			 0);
	assert_int_equal(manifest_finish(m), 0);
	free(src->version);
	src->version = strdup("listing");
	*out = m;
	return 0;
}

static void fake_free(struct source *src)
{
	free(src);
}

static const struct source_ops fake_ops = {
	.scheme = "fake",
	.list = fake_list,
	.free = fake_free,
};

struct snap_fx {
	char dir[PATH_MAX];
	struct cache *cache;
	struct fake_source *src;
};

static int snap_setup(void **state)
{
	struct snap_fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_source_cache.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	assert_int_equal(cache_new(fx->dir, &fx->cache), 0);
	fx->src = calloc(1, sizeof(*fx->src));
	assert_non_null(fx->src);
	fx->src->base.ops = &fake_ops;
	fx->src->base.kind = "http";
	fx->src->base.spec = strdup("fake://x/");
	fx->src->base.cache_key = strdup("fake://x/");
	log_start();
	*state = fx;
	return 0;
}

static int snap_teardown(void **state)
{
	struct snap_fx *fx = *state;

	log_stop();
	source_free(&fx->src->base);
	cache_free(fx->cache);
	rm_cb(fx->dir);
	free(fx);
	return 0;
}

static void snapshot_ok(struct snap_fx *fx, bool offline, bool want_saved)
{
	struct manifest *m = NULL;
	bool used = !want_saved;
	char err[ERRLEN] = "";

	if (source_snapshot(&fx->src->base, FAKE_ENGINE, fx->cache, offline, &m,
			    &used, err, sizeof(err)))
		fail_msg("snapshot: %s", err);
	assert_int_equal(used, want_saved);
	assert_true(m->finished);
	assert_int_equal(entry(m, "dir/file.bin")->size, 42);
	assert_string_equal(entry(m, "dir/file.bin")->content_id, "\"e1\"");
	assert_string_equal(fx->src->base.version, "listing");
	manifest_free(m);
}

static void test_snapshot_pins_listing(void **state)
{
	struct snap_fx *fx = *state;
	char *ver = NULL;
	struct manifest *m = NULL;

	snapshot_ok(fx, false, false);
	assert_int_equal(fx->src->calls, 1);
	assert_int_equal(cache_load_ref(fx->cache, "fake://x/", "latest", &ver),
			 0);
	assert_string_equal(ver, "listing");
	assert_int_equal(cache_load_manifest(fx->cache, "fake://x/", ver, &m),
			 0);
	assert_int_equal(entry(m, "dir/file.bin")->size, 42);
	manifest_free(m);
	free(ver);
}

static void test_snapshot_network_falls_back(void **state)
{
	struct snap_fx *fx = *state;
	struct manifest *m = (void *)1;
	bool used = true;
	char err[ERRLEN];

	/* Nothing saved yet: a clear error. */
	fx->src->rc = -ECONNREFUSED;
	fx->src->why = "cannot reach 'fake://x/': Connection refused";
	assert_int_equal(source_snapshot(&fx->src->base, FAKE_ENGINE, fx->cache,
					 false, &m, &used, err, sizeof(err)),
			 -ECONNREFUSED);
	assert_null(m);
	assert_false(used);
	assert_string_equal(err, "'fake://x/' unreachable (Connection refused) "
				 "and no snapshot of it in the cache");

	fx->src->rc = 0;
	snapshot_ok(fx, false, false);
	fx->src->rc = -EHOSTUNREACH;
	fx->src->why = "cannot reach 'fake://x/': No route to host";
	free(fx->src->base.version);
	fx->src->base.version = NULL;
	snapshot_ok(fx, false, true);
	/* the reason, for the caller's warning */
	assert_int_equal(source_snapshot(&fx->src->base, FAKE_ENGINE, fx->cache,
					 false, &m, &used, err, sizeof(err)),
			 0);
	assert_true(used);
	assert_string_equal(err, "cannot reach 'fake://x/': No route to host");
	manifest_free(m);
}

static void test_snapshot_other_errors_returned(void **state)
{
	struct snap_fx *fx = *state;
	struct manifest *m = (void *)1;
	bool used = true;
	char err[ERRLEN];

	snapshot_ok(fx, false, false); /* a snapshot exists... */
	fx->src->rc = -EACCES;
	fx->src->why = "'fake://x/': access denied (HTTP 403): set a token "
		       "with -o token_file=";
	/* ...but a refusal is not "unreachable": it is returned */
	assert_int_equal(source_snapshot(&fx->src->base, FAKE_ENGINE, fx->cache,
					 false, &m, &used, err, sizeof(err)),
			 -EACCES);
	assert_null(m);
	assert_false(used);
	assert_string_equal(err, fx->src->why);
	fx->src->rc = -ENOENT;
	fx->src->why = "'fake://x/' not found (HTTP 404)";
	assert_int_equal(source_snapshot(&fx->src->base, FAKE_ENGINE, fx->cache,
					 false, &m, &used, err, sizeof(err)),
			 -ENOENT);
	assert_string_equal(err, fx->src->why);
}

static void test_snapshot_offline(void **state)
{
	struct snap_fx *fx = *state;
	struct manifest *m = (void *)1;
	bool used = true;
	char err[ERRLEN];

	assert_int_equal(source_snapshot(&fx->src->base, FAKE_ENGINE, fx->cache,
					 true, &m, &used, err, sizeof(err)),
			 -ENETDOWN);
	assert_null(m);
	assert_string_equal(err, "'fake://x/' unreachable (offline mode) and "
				 "no snapshot of it in the cache");
	assert_int_equal(fx->src->calls, 0); /* offline: never listed */
	snapshot_ok(fx, false, false);
	snapshot_ok(fx, true, true);
	assert_int_equal(fx->src->calls, 1);
	/* without a cache there is nothing to fall back on */
	assert_int_equal(source_snapshot(&fx->src->base, FAKE_ENGINE, NULL,
					 true, &m, &used, err, sizeof(err)),
			 -ENETDOWN);
	assert_null(m);
}

static void test_snapshot_corrupt_saved(void **state)
{
	struct snap_fx *fx = *state;
	struct manifest *m = (void *)1;
	bool used = true;
	char err[ERRLEN], cmd[PATH_MAX + 128];

	snapshot_ok(fx, false, false);
	snprintf(cmd, sizeof(cmd),
		 "for f in '%s'/snapshots/*/*.json; do echo garbage > \"$f\"; "
		 "done",
		 fx->dir);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(source_snapshot(&fx->src->base, FAKE_ENGINE, fx->cache,
					 true, &m, &used, err, sizeof(err)),
			 -ENETDOWN);
	assert_null(m);
	assert_prefix(err, "'fake://x/' unreachable (offline mode) and its "
			   "snapshot in the cache cannot be read: ");
}

static void test_snapshot_file_source(void **state)
{
	struct snap_fx *fx = *state;
	struct tree *t;
	struct source *src;
	struct manifest *m = NULL;
	bool used = true;
	char err[ERRLEN];
	void *tstate;

	log_stop(); /* tree_setup starts its own capture */
	tree_setup(&tstate);
	t = tstate;
	src = open_tree(t, "", NULL);
	assert_int_equal(source_snapshot(src, NULL, fx->cache, false, &m, &used,
					 err, sizeof(err)),
			 0);
	assert_false(used);
	assert_int_equal(manifest_file_count(m), 5);
	manifest_free(m);
	m = NULL;
	/* The folder is gone: that is not a network error. */
	rm_cb(t->top);
	assert_int_equal(source_snapshot(src, NULL, fx->cache, false, &m, &used,
					 err, sizeof(err)),
			 -ENOENT);
	assert_non_null(strstr(err, "' does not exist"));
	/* Offline, the pinned listing is used. */
	assert_int_equal(source_snapshot(src, NULL, fx->cache, true, &m, &used,
					 err, sizeof(err)),
			 0);
	assert_true(used);
	assert_int_equal(manifest_file_count(m), 5);
	manifest_free(m);
	source_free(src);
	tree_teardown(&tstate);
	log_start();
}

/* ---- http(s):// against the fake engine ------------------------------- */

#define JSON_ROOT                                                         \
	"[\n"                                                             \
	"{ \"name\":\"config.json\", \"type\":\"file\", "                 \
	"\"mtime\":\"Mon, 23 Nov 2026 18:00:00 GMT\", \"size\":1234 },\n" \
	"{ \"name\":\"a b.bin\", \"type\":\"file\", "                     \
	"\"mtime\":\"Mon, 23 Nov 2026 18:00:00 GMT\", \"size\":7 },\n"    \
	"{ \"name\":\"nosize.bin\", \"type\":\"file\", "                  \
	"\"mtime\":\"Mon, 23 Nov 2026 18:00:00 GMT\" },\n"                \
	"{ \"name\":\"..\", \"type\":\"directory\" },\n"                  \
	"{ \"name\":\"config.json\", \"type\":\"file\", \"size\":1 },\n"  \
	"{ \"name\":\"sub\", \"type\":\"directory\", "                    \
	"\"mtime\":\"Mon, 23 Nov 2026 18:00:00 GMT\" }\n"                 \
	"]"

static const struct route json_routes[] = {
	{ .url = "http://h/m/", .status = 200, .body = JSON_ROOT },
	{ .url = "http://h/m/sub/",
	  .status = 200,
	  .body = "[{\"name\":\"deep\",\"type\":\"directory\"},"
		  "{\"name\":\"x.bin\",\"type\":\"file\",\"size\":3}]" },
	{ .url = "http://h/m/sub/deep/",
	  .status = 200,
	  .body = "[{\"name\":\"y.bin\",\"type\":\"file\",\"size\":4}]" },
	{ .url = "http://h/m/nosize.bin",
	  .head = true,
	  .status = 200,
	  .content_length = 99,
	  .etag = "\"n1\"",
	  .last_modified = "Tue, 24 Nov 2026 18:00:00 GMT" },
};

static void test_http_json_tree(void **state)
{
	struct source *src = open_ok("http://h/m/", NULL);
	struct manifest *m;
	const struct mentry *en;

	ROUTES(json_routes);
	m = list_ok(src, FAKE_ENGINE);
	assert_string_equal(src->version, "listing");
	assert_string_equal(m->version, "listing");
	assert_string_equal(m->source, "http://h/m/");
	en = entry(m, "config.json");
	assert_int_equal(en->size, 1234);
	assert_int_equal(en->mtime, T_2026);
	assert_null(en->content_id);
	assert_null(en->hash_kind);
	assert_string_equal(en->url, "http://h/m/config.json");
	en = entry(m, "a b.bin");
	assert_string_equal(en->url, "http://h/m/a%20b.bin");
	/* no size in the listing: asked with HEAD */
	en = entry(m, "nosize.bin");
	assert_int_equal(en->size, 99);
	assert_string_equal(en->content_id, "\"n1\"");
	assert_string_equal(en->hash_kind, "etag");
	assert_int_equal(en->mtime, T_2026 + 86400);
	assert_int_equal(entry(m, "sub")->type, MENTRY_DIR);
	assert_string_equal(entry(m, "sub/x.bin")->url, "http://h/m/sub/x.bin");
	assert_int_equal(entry(m, "sub/deep/y.bin")->size, 4);
	assert_int_equal(heads, 1);
	assert_int_equal(requests, 4);
	assert_int_equal(count(logged(), "skipping unsafe name '..'"), 1);
	assert_int_equal(count(logged(), "skipping duplicate name "
					 "'config.json'"),
			 1);
	manifest_free(m);
	source_free(src);
}

#define NGINX_HTML                                                        \
	"<html><head><title>Index of /m/</title></head><body><pre>"       \
	"<a href=\"../\">../</a>\r\n"                                     \
	"<a href=\"sub/\">sub/</a>      23-Nov-2026 18:00       -\r\n"    \
	"<a href=\"model.safetensors\">model.safetensors</a> "            \
	"23-Nov-2026 18:00  100\r\n"                                      \
	"<a href=\"gone.bin\">gone.bin</a> 23-Nov-2026 18:00  5\r\n"      \
	"<a href=\"secret.bin\">secret.bin</a> 23-Nov-2026 18:00  5\r\n"  \
	"<a href=\"nohead.bin\">nohead.bin</a> 23-Nov-2026 18:00  66\r\n" \
	"<a href=\"nolen.bin\">nolen.bin</a>\r\n"                         \
	"<a href=\"folder-in-disguise\">folder-in-disguise</a>\r\n"       \
	"<a href=\"caf%C3%A9.txt\">caf\xc3\xa9.txt</a>\r\n"               \
	"</pre></body></html>"

static const struct route html_routes[] = {
	{ .url = "http://h/m/", .status = 200, .body = NGINX_HTML },
	{ .url = "http://h/m/sub/", .status = 403, .body = "no" },
	{ .url = "http://h/m/model.safetensors",
	  .head = true,
	  .status = 200,
	  .content_length = 4976698672,
	  .etag = "\"5f-abc\"",
	  .last_modified = "Tue, 24 Nov 2026 18:00:00 GMT" },
	{ .url = "http://h/m/gone.bin", .head = true, .status = 404 },
	{ .url = "http://h/m/secret.bin", .head = true, .status = 403 },
	{ .url = "http://h/m/nohead.bin", .head = true, .status = 405 },
	{ .url = "http://h/m/nolen.bin",
	  .head = true,
	  .status = 200,
	  .content_length = -1 },
	{ .url = "http://h/m/folder-in-disguise",
	  .head = true,
	  .status = 200,
	  .final_url = "http://h/m/folder-in-disguise/",
	  .content_length = 300 },
	{ .url = "http://h/m/folder-in-disguise/",
	  .status = 200,
	  .body = "<a href=\"inner.bin\">inner.bin</a>" },
	{ .url = "http://h/m/folder-in-disguise/inner.bin",
	  .head = true,
	  .status = 200,
	  .content_length = 1 },
	{ .url = "http://h/m/caf%C3%A9.txt",
	  .head = true,
	  .status = 200,
	  .content_length = 12,
	  .etag = "W/\"weak\"" },
};

static void test_http_html_with_heads(void **state)
{
	struct source_opts o = { .token = "s3cr3t-t0k" };
	struct source *src = open_ok("http://h/m/", &o);
	struct manifest *m;
	const struct mentry *en;
	const char *log;

	want_auth = "Authorization: Bearer s3cr3t-t0k";
	ROUTES(html_routes);
	m = list_ok(src, FAKE_ENGINE);
	log = logged();
	en = entry(m, "model.safetensors");
	assert_int_equal(en->size, INT64_C(4976698672)); /* HEAD wins */
	assert_string_equal(en->content_id, "\"5f-abc\"");
	assert_string_equal(en->hash_kind, "etag");
	assert_int_equal(en->mtime, T_2026 + 86400);
	assert_string_equal(en->url, "http://h/m/model.safetensors");
	/* vanished or forbidden: skipped with a warning */
	assert_false(has(m, "gone.bin"));
	assert_false(has(m, "secret.bin"));
	assert_non_null(strstr(log, "skipping 'gone.bin': "
				    "'http://h/m/gone.bin' not found (HTTP "
				    "404)"));
	assert_non_null(strstr(log, "skipping 'secret.bin': "));
	/* HEAD refused (405): the listing's size is used, no ETag */
	en = entry(m, "nohead.bin");
	assert_int_equal(en->size, 66);
	assert_null(en->content_id);
	assert_int_equal(en->mtime, T_2026);
	/* no size anywhere: skipped */
	assert_false(has(m, "nolen.bin"));
	assert_non_null(strstr(log, "skipping 'nolen.bin': its size is "
				    "unknown"));
	/* a link without '/' that redirects to URL/ is a folder */
	assert_int_equal(entry(m, "folder-in-disguise")->type, MENTRY_DIR);
	assert_int_equal(entry(m, "folder-in-disguise/inner.bin")->size, 1);
	en = entry(m, "caf\xc3\xa9.txt");
	assert_string_equal(en->url, "http://h/m/caf%C3%A9.txt");
	assert_string_equal(en->content_id, "W/\"weak\"");
	/* a sub-folder that can't be listed: shown empty, warned */
	assert_int_equal(entry(m, "sub")->type, MENTRY_DIR);
	assert_non_null(strstr(log, "skipping folder: 'http://h/m/sub/': "
				    "access denied (HTTP 403)"));
	assert_null(strstr(log, "s3cr3t"));
	manifest_free(m);
	source_free(src);
}

static const struct route single_routes[] = {
	{ .url = "http://h/models/llama%20q4.gguf",
	  .head = true,
	  .status = 200,
	  .content_length = 4000000000,
	  .etag = "\"g1\"",
	  .last_modified = "Mon, 23 Nov 2026 18:00:00 GMT",
	  .final_url = "https://cdn.example/signed?x=1" },
	{ .url = "http://h/models/dir",
	  .head = true,
	  .status = 200,
	  .final_url = "http://h/models/dir/" },
	{ .url = "http://h/models/dir/",
	  .status = 200,
	  .body = "[{\"name\":\"f\",\"type\":\"file\",\"size\":1}]" },
	{ .url = "http://h/models/nolen",
	  .head = true,
	  .status = 200,
	  .content_length = -1 },
};

static void test_http_single_file(void **state)
{
	struct source *src = open_ok("http://h/models/llama q4.gguf", NULL);
	struct manifest *m;
	const struct mentry *en;

	ROUTES(single_routes);
	m = list_ok(src, FAKE_ENGINE);
	assert_int_equal(m->n, 2);
	en = entry(m, "llama q4.gguf");
	assert_int_equal(en->size, INT64_C(4000000000));
	assert_string_equal(en->content_id, "\"g1\"");
	assert_int_equal(en->mtime, T_2026);
	/* the origin URL, not where it was redirected */
	assert_string_equal(en->url, "http://h/models/llama%20q4.gguf");
	manifest_free(m);
	source_free(src);

	src = open_ok("http://h/models/dir", NULL);
	m = list_ok(src, FAKE_ENGINE);
	assert_int_equal(entry(m, "f")->size, 1);
	assert_string_equal(entry(m, "f")->url, "http://h/models/dir/f");
	manifest_free(m);
	source_free(src);
}

static void http_list_fails(const char *spec, const struct source_opts *o,
			    int rc, const char *msg)
{
	struct source *src = open_ok(spec, o);
	struct manifest *m = (void *)1;
	char err[ERRLEN] = "";

	assert_int_equal(src->ops->list(src, FAKE_ENGINE, &m, err, sizeof(err)),
			 rc);
	assert_null(m);
	assert_string_equal(err, msg);
	source_free(src);
}

static const struct route error_routes[] = {
	{ .url = "http://h/private/", .status = 403 },
	{ .url = "http://h/login/", .status = 401 },
	{ .url = "http://h/down/", .err = -ECONNREFUSED },
	{ .url = "http://h/dns/", .err = -EHOSTUNREACH },
	{ .url = "http://h/broken/", .status = 500 },
	{ .url = "http://h/text/", .status = 200, .body = "just text\n" },
	{ .url = "http://h/empty/", .status = 200, .body = "" },
	{ .url = "http://h/object/", .status = 200, .body = "{\"a\":1}" },
	{ .url = "http://h/big/", .err = -EFBIG },
	{ .url = "http://h/down.bin", .head = true, .err = -ETIMEDOUT },
	{ .url = "http://h/nolen",
	  .head = true,
	  .status = 200,
	  .content_length = -1 },
	{ .url = "http://h/sub/",
	  .status = 200,
	  .body = "<a href=\"f.bin\">f.bin</a>" },
	{ .url = "http://h/sub/f.bin", .head = true, .err = -ECONNRESET },
};

static void test_http_errors(void **state)
{
	struct source_opts tok = { .token = "t" };

	ROUTES(error_routes);
	http_list_fails("http://h/missing/", NULL, -ENOENT,
			"'http://h/missing/' not found (HTTP 404)");
	http_list_fails("http://h/missing.bin", NULL, -ENOENT,
			"'http://h/missing.bin' not found (HTTP 404)");
	http_list_fails("http://h/private/", NULL, -EACCES,
			"'http://h/private/': access denied (HTTP 403): set a "
			"token with -o token_file=");
	http_list_fails("http://h/login/", NULL, -EACCES,
			"'http://h/login/': access denied (HTTP 401): set a "
			"token with -o token_file=");
	want_auth = "Authorization: Bearer t";
	http_list_fails("http://h/private/", &tok, -EACCES,
			"'http://h/private/': access denied (HTTP 403): the "
			"server refused the token");
	want_auth = NULL;
	http_list_fails("http://h/down/", NULL, -ECONNREFUSED,
			"cannot reach 'http://h/down/': Connection refused");
	http_list_fails("http://h/dns/", NULL, -EHOSTUNREACH,
			"cannot reach 'http://h/dns/': No route to host");
	http_list_fails("http://h/down.bin", NULL, -ETIMEDOUT,
			"cannot reach 'http://h/down.bin': Connection timed "
			"out");
	http_list_fails("http://h/broken/", NULL, -EIO,
			"'http://h/broken/' failed: HTTP 500");
	http_list_fails("http://h/big/", NULL, -EFBIG,
			"'http://h/big/' failed: the answer is too large");
	http_list_fails(
		"http://h/text/", NULL, -ENOTDIR,
		"'http://h/text/' is not a folder index (expected nginx "
		"JSON autoindex or an HTML index page)");
	http_list_fails("http://h/empty/", NULL, -ENOTDIR,
			"'http://h/empty/' is not a folder index (expected "
			"nginx JSON autoindex or an HTML index page)");
	http_list_fails("http://h/object/", NULL, -ENOTDIR,
			"'http://h/object/' is not a folder index (expected "
			"nginx JSON autoindex or an HTML index page)");
	http_list_fails("http://h/nolen", NULL, -EPROTO,
			"'http://h/nolen' has no Content-Length: its size is "
			"unknown");
	/* a HEAD that can't reach the server fails the whole listing */
	http_list_fails("http://h/sub/", NULL, -ECONNRESET,
			"cannot reach 'http://h/sub/f.bin': Connection reset "
			"by peer");
}

static void test_http_list_without_engine(void **state)
{
	struct source *src = open_ok("http://h/x/", NULL);
	struct manifest *m = (void *)1;
	char err[ERRLEN];

	assert_int_equal(src->ops->list(src, NULL, &m, err, sizeof(err)),
			 -EINVAL);
	assert_null(m);
	assert_string_equal(err, "listing 'http://h/x/' needs the network "
				 "engine");
	source_free(src);
}

static const struct route deep_routes[] = {
	{ .url = "http://h/d/",
	  .status = 200,
	  .body = "[{\"name\":\"a\",\"type\":\"directory\"},"
		  "{\"name\":\"f1\",\"type\":\"file\",\"size\":1},"
		  "{\"name\":\"f2\",\"type\":\"file\",\"size\":1},"
		  "{\"name\":\"f3\",\"type\":\"file\",\"size\":1}]" },
	{ .url = "http://h/d/a/",
	  .status = 200,
	  .body = "[{\"name\":\"a\",\"type\":\"directory\"}]" },
	{ .url = "http://h/d/a/a/",
	  .status = 200,
	  .body = "[{\"name\":\"a\",\"type\":\"directory\"}]" },
	{ .url = "http://h/d/a/a/a/",
	  .status = 200,
	  .body = "[{\"name\":\"a\",\"type\":\"directory\"}]" },
	{ .url = "http://h/h/",
	  .status = 200,
	  .body = "<a href=\"1\">1</a><a href=\"2\">2</a><a href=\"3\">3</a>"
		  "<a href=\"4\">4</a>" },
	{ .url = "http://h/h/1",
	  .head = true,
	  .status = 200,
	  .content_length = 1 },
	{ .url = "http://h/h/2",
	  .head = true,
	  .status = 200,
	  .content_length = 1 },
};

static void test_http_caps(void **state)
{
	struct source_opts o = { .max_depth = 2 };
	struct source *src;
	struct manifest *m;

	ROUTES(deep_routes);
	src = open_ok("http://h/d/", &o);
	m = list_ok(src, FAKE_ENGINE);
	assert_true(has(m, "a/a/a")); /* listed in a/a, not entered */
	assert_false(has(m, "a/a/a/a"));
	assert_non_null(strstr(logged(), "not entering 'a': more than 2 "
					 "folders deep"));
	assert_int_equal(requests, 3);
	manifest_free(m);
	source_free(src);

	/* More entries than max_entries: the listing fails, in one line
	 * that says how to raise the limit. */
	o.max_depth = 0;
	o.max_entries = 2;
	http_list_fails("http://h/d/", &o, -EFBIG,
			"listing 'http://h/d/' failed: more than 2 entries "
			"(raise the limit with -o max_entries=N)");

	/* HTML: a page over the limit sends no HEAD at all */
	requests = heads = 0;
	http_list_fails("http://h/h/", &o, -EFBIG,
			"listing 'http://h/h/' failed: more than 2 entries "
			"(raise the limit with -o max_entries=N)");
	assert_int_equal(heads, 0);

	/* At the limit exactly: listed (a, f1, f2, f3, a/a). */
	o.max_depth = 1;
	o.max_entries = 5;
	src = open_ok("http://h/d/", &o);
	m = list_ok(src, FAKE_ENGINE);
	assert_int_equal(m->n, 1 + 5);
	manifest_free(m);
	source_free(src);
}

/* An HTML folder of many files: at most max_inflight HEADs in flight at
 * once (the default, 16), each file asked about once. */
static void test_http_heads_bounded(void **state)
{
	static char body[HEADS_LINKS * 48];
	struct route r[2] = {
		{ .url = "http://h/many/", .status = 200, .body = body },
		{ .url = "http://h/many/*",
		  .head = true,
		  .status = 200,
		  .content_length = 5 },
	};
	struct route r2[3] = {
		[1] = { .url = "http://h/many/f100.bin",
			.head = true,
			.err = -ECONNRESET },
	};
	struct source *src;
	struct manifest *m;
	size_t off = 0;
	int i;

	for (i = 0; i < HEADS_LINKS; i++)
		off += (size_t)snprintf(body + off, sizeof(body) - off,
					"<a href=\"f%03d.bin\">f</a>\n", i);
	set_routes(r, 2);
	answer_delay_us = 2000;
	src = open_ok("http://h/many/", NULL);
	m = list_ok(src, FAKE_ENGINE);
	assert_int_equal(manifest_file_count(m), HEADS_LINKS);
	assert_int_equal(entry(m, "f042.bin")->size, 5);
	assert_int_equal(heads, HEADS_LINKS);
	assert_true(max_inflight <= 16);
	assert_true(max_inflight >= 2); /* they do overlap */
	manifest_free(m);
	source_free(src);

	/* One HEAD that can't reach the server fails the listing; the
	 * others in flight are waited for and freed (ASan). */
	r2[0] = r[0];
	r2[2] = r[1];
	set_routes(r2, 3);
	http_list_fails("http://h/many/", NULL, -ECONNRESET,
			"cannot reach 'http://h/many/f100.bin': Connection "
			"reset by peer");
	assert_true(max_inflight <= 16);
}

static const struct route snap_routes[] = {
	{ .url = "http://h/s/",
	  .status = 200,
	  .body = "[{\"name\":\"f\",\"type\":\"file\",\"size\":1}]" },
};

static const struct route down_routes[] = {
	{ .url = "http://h/s/", .err = -ECONNREFUSED },
};

static void test_http_snapshot_offline_remount(void **state)
{
	char dir[] = "/tmp/test_source_cache.XXXXXX";
	struct cache *c = NULL;
	struct source *src = open_ok("http://h/s/", NULL);
	struct manifest *m = NULL;
	bool used = true;
	char err[ERRLEN];

	assert_non_null(mkdtemp(dir));
	assert_int_equal(cache_new(dir, &c), 0);
	ROUTES(snap_routes);
	assert_int_equal(source_snapshot(src, FAKE_ENGINE, c, false, &m, &used,
					 err, sizeof(err)),
			 0);
	assert_false(used);
	manifest_free(m);
	m = NULL;
	ROUTES(down_routes);
	assert_int_equal(source_snapshot(src, FAKE_ENGINE, c, false, &m, &used,
					 err, sizeof(err)),
			 0);
	assert_true(used);
	assert_string_equal(err, "cannot reach 'http://h/s/': Connection "
				 "refused");
	assert_int_equal(entry(m, "f")->size, 1);
	assert_string_equal(src->version, "listing");
	manifest_free(m);
	source_free(src);
	cache_free(c);
	rm_cb(dir);
}

/* ---- what fs/ asks of a source -------------------------------------- */

static void test_file_url(void **state)
{
	struct source *src = open_ok("http://h/", NULL);
	struct manifest *m = target_manifest();

	assert_string_equal(
		source_file_url(src, m, entry(m, "d/tagged.bin") - m->entries),
		"http://h/d/tagged.bin");
	assert_null(source_file_url(src, m, 0)); /* the root folder */
	assert_null(source_file_url(src, m, m->n));
	manifest_free(m);
	source_free(src);
}

/* -o token_file= is the user's choice: any scheme that sends tokens gets
 * it, and the environment policy is not asked. */
static void test_token_file_any_scheme(void **state)
{
	char path[] = "/tmp/test_source_token.XXXXXX";
	struct source_opts o = { .token_file = path, .env = true };
	struct source *src = NULL;
	char err[256];
	int fd;

	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "\n tok3n \n", 9), 9);
	close(fd);
	assert_int_equal(source_open("http://h/", &o, &src, err, sizeof(err)),
			 0);
	assert_string_equal(src->auth, "Authorization: Bearer tok3n");
	source_free(src);
	/* A given token wins over the file. */
	o.token = "given";
	assert_int_equal(source_open("http://h/", &o, &src, err, sizeof(err)),
			 0);
	assert_string_equal(src->auth, "Authorization: Bearer given");
	source_free(src);
	/* file:// sends nothing, whatever it is given. */
	o.token = NULL;
	assert_int_equal(source_open("file:///tmp", &o, &src, err, sizeof(err)),
			 0);
	assert_null(src->auth);
	source_free(src);
	unlink(path);
	/* A scheme's option no scheme knows: refused, as a usage error. */
	{
		const struct source_option opt = { "nosuch", "1" };
		struct source_opts bad = { .options = &opt, .noptions = 1 };

		assert_int_equal(source_open("http://h/", &bad, &src, err,
					     sizeof(err)),
				 -ENOPROTOOPT);
		assert_string_equal(err, "bad value '1' for option nosuch: "
					 "not an option of this source");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define L(name) cmocka_unit_test_setup_teardown(name, log_setup, log_teardown)
#define TREE(name) \
	cmocka_unit_test_setup_teardown(name, tree_setup, tree_teardown)
#define SNAP(name) \
	cmocka_unit_test_setup_teardown(name, snap_setup, snap_teardown)
#define FAKE(name) \
	cmocka_unit_test_setup_teardown(name, fake_setup, fake_teardown)
		L(test_open_malformed),
		L(test_open_secrets_never_echoed),
		L(test_open_http_normalizes),
		L(test_open_http_token),
		L(test_open_file_normalizes),
		L(test_err_is_network),
		L(test_url_escape_round_trip),
		L(test_url_unescape_in_place),
		L(test_http_parse_date),
		L(test_target_http),
		L(test_file_url),
		L(test_token_file_any_scheme),
		TREE(test_file_lists_tree),
		TREE(test_file_target_identity),
		TREE(test_file_single_file),
		TREE(test_file_errors),
		TREE(test_file_unreadable_folder),
		TREE(test_file_caps),
		SNAP(test_snapshot_pins_listing),
		SNAP(test_snapshot_network_falls_back),
		SNAP(test_snapshot_other_errors_returned),
		SNAP(test_snapshot_offline),
		SNAP(test_snapshot_corrupt_saved),
		SNAP(test_snapshot_file_source),
		FAKE(test_http_json_tree),
		FAKE(test_http_html_with_heads),
		FAKE(test_http_single_file),
		FAKE(test_http_errors),
		FAKE(test_http_list_without_engine),
		FAKE(test_http_caps),
		FAKE(test_http_heads_bounded),
		FAKE(test_http_snapshot_offline_remount),
#undef L
#undef TREE
#undef SNAP
#undef FAKE
	};

	return cmocka_run_group_tests_name("source", tests, NULL, NULL);
}
