/*
 * test_source_hf.c: the hf:// source (fetch/source_hf.c): SOURCE parsing,
 * URL building and escaping, the revision and /tree JSON answers, error
 * mapping per status and X-Error-Code, list() with pagination against a
 * fake engine, blob targets, snapshots, and hf_cache_export() into a temp
 * folder.
 *
 * The engine is replaced through the linker (-Wl,--wrap=engine_http): a
 * table of canned answers keyed by URL. link(2) is wrapped too
 * (-Wl,--wrap=link) to fail with EXDEV or EPERM on demand, which no temp
 * folder does, to reach the copy path of hf_cache_export().
 */
#include <dirent.h>
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
#include "fetch/source_hf.h"
#include "fetch/source_i.h"
#include "state/cache.h"
#include "state/hlog.h"
#include "state/manifest.h"

/* clang-format off */
#define ERRLEN 1024
#define E      "https://hub.test"
#define C1     "0123456789abcdef0123456789abcdef01234567"
#define C2     "89abcdef0123456789abcdef0123456789abcdef"
#define SHA_A  "097417381d6c7230bd9e3557456d726de6e83245ec8b24f529f60198a67b203a"
#define OID_A  "ba5d19791be1dd7992e33bd61f20207b0f7f50a5"
#define OID_B  "fca794a5f07ff8f963fe8b61e3694b0fb7f955df"
#define OID_C  "dc08351d4dc0732d9c8af04070ced089b201ce2f"
#define TOKEN  "hf_sekrit_token_value"
#define AUTH   "Authorization: Bearer " TOKEN
/* clang-format on */
#define TREE_Q "?recursive=true&expand=false"
/* "ünicode" */
#define UNI "\xc3\xbcnicode"

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
	static char buf[65536];
	size_t n;

	fflush(logf_);
	rewind(logf_);
	n = fread(buf, 1, sizeof(buf) - 1, logf_);
	buf[n] = '\0';
	fseek(logf_, 0, SEEK_END);
	return buf;
}

static void assert_prefix(const char *s, const char *prefix)
{
	if (strncmp(s, prefix, strlen(prefix)))
		fail_msg("'%s'\ndoes not start with\n'%s'", s, prefix);
}

static void assert_contains(const char *s, const char *needle)
{
	if (!s || !needle)
		fail_msg("assert_contains: NULL");
	else if (!strstr(s, needle))
		fail_msg("'%s'\ndoes not contain\n'%s'", s, needle);
}

/* ---- the fake engine -------------------------------------------------- */

struct route {
	const char *url;
	long status; /* 0 with err: no answer */
	int err; /* engine error; 0: from the status */
	const char *body;
	const char *link_next;
	const char *error_code;
	const char *error_message;
	bool anon; /* asked for without the token */
};

static const struct route *routes;
static size_t nroutes;
static const char *want_auth; /* every request must carry exactly this */
static int requests, heads;
static char asked[64][512]; /* URLs requested, in order */

int __wrap_engine_http(struct engine *e, const struct http_req *req,
		       struct http_result *res);

static int fake_engine_token;
#define FAKE_ENGINE ((struct engine *)&fake_engine_token)

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

int __wrap_engine_http(struct engine *e, const struct http_req *req,
		       struct http_result *res)
{
	const struct route *r = NULL;
	size_t i;

	assert_ptr_equal(e, FAKE_ENGINE);
	memset(res, 0, sizeof(*res));
	res->content_length = -1;
	res->linked_size = -1;
	if (requests < 64)
		snprintf(asked[requests], sizeof(asked[0]), "%s", req->url);
	requests++;
	res->url = strdup(req->url);
	for (i = 0; i < nroutes; i++) {
		if (!strcmp(routes[i].url, req->url)) {
			r = &routes[i];
			break;
		}
	}
	if ((r && r->anon) ? req->auth != NULL :
			     ((want_auth &&
			       (!req->auth || strcmp(req->auth, want_auth))) ||
			      (!want_auth && req->auth)))
		fail_msg("request '%s' with the wrong Authorization", req->url);
	if (req->head)
		heads++;
	if (!r) {
		res->status = 404;
		res->err = -ENOENT;
		return res->err;
	}
	res->status = r->status;
	res->err = r->err ? r->err : http_status_errno(r->status);
	if (r->body) {
		res->body = strdup(r->body);
		res->body_len = strlen(r->body);
	}
	res->link_next = dup_or_null(r->link_next);
	res->error_code = dup_or_null(r->error_code);
	res->error_message = dup_or_null(r->error_message);
	return res->err;
}

#define ROUTES(table) set_routes(table, sizeof(table) / sizeof(table[0]))

static void set_routes(const struct route *r, size_t n)
{
	routes = r;
	nroutes = n;
}

/* ---- the wrapped link(2) ---------------------------------------------- */

int __real_link(const char *from, const char *to);
int __wrap_link(const char *from, const char *to);

static int link_errno; /* 0: the real link */
static int link_calls;

int __wrap_link(const char *from, const char *to)
{
	__atomic_add_fetch(&link_calls, 1, __ATOMIC_SEQ_CST);
	if (link_errno) {
		errno = link_errno;
		return -1;
	}
	return __real_link(from, to);
}

/* ---- fixtures --------------------------------------------------------- */

static int fake_setup(void **state)
{
	routes = NULL;
	nroutes = 0;
	want_auth = NULL;
	requests = heads = 0;
	link_errno = 0;
	link_calls = 0;
	memset(asked, 0, sizeof(asked));
	log_start();
	return 0;
}

static int fake_teardown(void **state)
{
	log_stop();
	return 0;
}

static struct source *open_ok(const char *spec, const char *token)
{
	struct source_opts o = { .token = token, .endpoint = E "/" };
	struct source *src = NULL;
	char err[ERRLEN] = "";

	if (source_open(spec, &o, &src, err, sizeof(err)))
		fail_msg("source_open('%s'): %s", spec, err);
	assert_non_null(src);
	return src;
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

static uint64_t idx_of(const struct manifest *m, const char *path)
{
	return (uint64_t)(entry(m, path) - m->entries);
}

/* ---- SOURCE ----------------------------------------------------------- */

static void test_parse_forms(void **state)
{
	static const struct {
		const char *spec;
		enum hf_repo_type type;
		const char *repo, *rev, *subdir;
	} cases[] = {
		{ "hf://gpt2", HF_MODEL, "gpt2", "main", NULL },
		{ "hf://gpt2/", HF_MODEL, "gpt2", "main", NULL },
		{ "HF://gpt2@v1", HF_MODEL, "gpt2", "v1", NULL },
		{ "hf://gpt2@v1/onnx", HF_MODEL, "gpt2", "v1", "onnx" },
		{ "hf://openai-community/gpt2", HF_MODEL,
		  "openai-community/gpt2", "main", NULL },
		{ "hf://Org_1/Model.v2-x@main/onnx/fp16/", HF_MODEL,
		  "Org_1/Model.v2-x", "main", "onnx/fp16" },
		{ "hf://org/model/a//b/", HF_MODEL, "org/model", "main",
		  "a/b" },
		{ "hf://org/model/dir with space/#1@x", HF_MODEL, "org/model",
		  "main", "dir with space/#1@x" },
		{ "hf://org/model@refs/pr/1", HF_MODEL, "org/model",
		  "refs/pr/1", NULL },
		{ "hf://org/model@refs/pr/12/sub/dir", HF_MODEL, "org/model",
		  "refs/pr/12", "sub/dir" },
		{ "hf://org/model@refs%2Fpr%2F3/x", HF_MODEL, "org/model",
		  "refs/pr/3", "x" },
		{ "hf://org/model@feat%2Fx/sub", HF_MODEL, "org/model",
		  "feat/x", "sub" },
		{ "hf://org/model@" C1, HF_MODEL, "org/model", C1, NULL },
		{ "hf://org/model@v1.0@x", HF_MODEL, "org/model", "v1.0@x",
		  NULL },
		{ "hf://datasets/squad", HF_DATASET, "squad", "main", NULL },
		{ "hf://datasets/rajpurkar/squad@refs/convert/parquet/"
		  "plain_text",
		  HF_DATASET, "rajpurkar/squad", "refs/convert/parquet",
		  "plain_text" },
		{ "hf://datasets/o/n@refs%2Fconvert%2Fparquet", HF_DATASET,
		  "o/n", "refs/convert/parquet", NULL },
		{ "hf://spaces/org/app", HF_SPACE, "org/app", "main", NULL },
		{ "hf://models/x", HF_MODEL, "models/x", "main", NULL },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct hf_spec sp;
		char err[ERRLEN] = "";

		if (hf_spec_parse(cases[i].spec, &sp, err, sizeof(err)))
			fail_msg("'%s': %s", cases[i].spec, err);
		assert_int_equal(sp.type, cases[i].type);
		assert_string_equal(sp.repo_id, cases[i].repo);
		assert_string_equal(sp.revision, cases[i].rev);
		if (cases[i].subdir)
			assert_string_equal(sp.subdir, cases[i].subdir);
		else if (sp.subdir)
			fail_msg("'%s': subdir '%s'", cases[i].spec, sp.subdir);
		hf_spec_release(&sp);
	}
}

#define FORM "hf://[datasets/|spaces/]OWNER/NAME[@REVISION][/SUBDIR]"
#define NOT_REPO                                                             \
	"is not a repo id (letters, digits, '-', '_' and '.'; not starting " \
	"or ending with '-' or '.'; no '--' or '..'; at most 96 characters)"

static void test_parse_malformed(void **state)
{
	static char longname[200], longsub[400];
	static const struct {
		const char *spec;
		const char *msg; /* exact */
	} cases[] = {
		{ "hf:gpt2", "malformed SOURCE 'hf:gpt2': expected " FORM },
		{ "hf:/gpt2", "malformed SOURCE 'hf:/gpt2': expected " FORM },
		{ "hf://",
		  "malformed SOURCE 'hf://': no repo (expected " FORM ")" },
		{ "hf:///x",
		  "malformed SOURCE 'hf:///x': no repo (expected " FORM ")" },
		{ "hf://datasets/", "malformed SOURCE 'hf://datasets/': no "
				    "repo (expected " FORM ")" },
		{ "hf://@main", "malformed SOURCE 'hf://@main': no repo "
				"(expected " FORM ")" },
		{ "hf://org//model", "malformed SOURCE 'hf://org//model': "
				     "empty repo NAME after 'org/'" },
		{ "hf://org/@main", "malformed SOURCE 'hf://org/@main': "
				    "empty repo NAME after 'org/'" },
		{ "hf://org/mo del", "malformed SOURCE 'hf://org/mo del': "
				     "'org/mo del' " NOT_REPO },
		{ "hf://org/-model", "malformed SOURCE 'hf://org/-model': "
				     "'org/-model' " NOT_REPO },
		{ "hf://org/model.", "malformed SOURCE 'hf://org/model.': "
				     "'org/model.' " NOT_REPO },
		{ "hf://org/mo--del", "malformed SOURCE 'hf://org/mo--del': "
				      "'org/mo--del' " NOT_REPO },
		{ "hf://org/mo..del", "malformed SOURCE 'hf://org/mo..del': "
				      "'org/mo..del' " NOT_REPO },
		{ "hf://.org/model", "malformed SOURCE 'hf://.org/model': "
				     "'.org/model' " NOT_REPO },
		{ "hf://org/model@", "malformed SOURCE 'hf://org/model@': "
				     "empty REVISION after '@'" },
		{ "hf://org/model@/sub", "malformed SOURCE "
					 "'hf://org/model@/sub': empty "
					 "REVISION after '@'" },
		{ "hf://org/model@bad%zz",
		  "malformed SOURCE 'hf://org/model@bad%zz': bad "
		  "percent-escape in the REVISION (write '/' as %2F, '%' as "
		  "%25)" },
		{ "hf://org/model@a%00",
		  "malformed SOURCE 'hf://org/model@a%00': bad "
		  "percent-escape in the REVISION (write '/' as %2F, '%' as "
		  "%25)" },
		{ "hf://org/model@..%2Fx",
		  "malformed SOURCE 'hf://org/model@..%2Fx': bad REVISION "
		  "(empty, '.' or '..' parts, or control characters)" },
		{ "hf://org/model@a%2F%2Fb",
		  "malformed SOURCE 'hf://org/model@a%2F%2Fb': bad REVISION "
		  "(empty, '.' or '..' parts, or control characters)" },
		{ "hf://org/model@a%0Ab",
		  "malformed SOURCE 'hf://org/model@a%0Ab': bad REVISION "
		  "(empty, '.' or '..' parts, or control characters)" },
		{ "hf://org/model/../x",
		  "malformed SOURCE 'hf://org/model/../x': '.' and '..' are "
		  "not allowed in SUBDIR" },
		{ "hf://gpt2@v1/a/./b",
		  "malformed SOURCE 'hf://gpt2@v1/a/./b': '.' and '..' are "
		  "not allowed in SUBDIR" },
		{ longname, NULL },
		{ longsub, NULL },
	};
	size_t i;

	memset(longname, 'a', sizeof(longname) - 1);
	memcpy(longname, "hf://o/", 7);
	memset(longsub, 'b', sizeof(longsub) - 1);
	memcpy(longsub, "hf://o/n/", 9);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct source *src = (void *)1;
		char err[ERRLEN] = "";
		int rc;

		rc = source_open(cases[i].spec, NULL, &src, err, sizeof(err));
		if (rc != -EINVAL)
			fail_msg("'%s': %d (%s)", cases[i].spec, rc, err);
		assert_null(src);
		assert_null(strchr(err, '\n'));
		if (cases[i].msg)
			assert_string_equal(err, cases[i].msg);
	}
	/* The long ones, by their reason */
	{
		struct source *src = NULL;
		char err[ERRLEN] = "";

		assert_int_equal(source_open(longname, NULL, &src, err,
					     sizeof(err)),
				 -EINVAL);
		assert_contains(err, NOT_REPO);
		assert_int_equal(source_open(longsub, NULL, &src, err,
					     sizeof(err)),
				 -EINVAL);
		assert_contains(err, "a SUBDIR component is longer than 255 "
				     "bytes");
	}
}

static void test_open_fields(void **state)
{
	struct source_opts o = { .endpoint = "https://mirror.test/hub//" };
	struct source *src = NULL;
	char err[ERRLEN] = "";

	/* defaults: huggingface.co, main, no token */
	assert_int_equal(source_open("hf://gpt2", NULL, &src, err, sizeof(err)),
			 0);
	assert_string_equal(src->kind, "hf");
	assert_ptr_equal(src->ops, &source_hf_ops);
	assert_string_equal(src->spec, "hf://gpt2");
	assert_string_equal(src->ref, "main");
	assert_string_equal(src->cache_key,
			    "hf:https://huggingface.co/models/gpt2");
	assert_null(src->auth);
	assert_null(src->version);
	source_free(src);

	assert_int_equal(source_open("hf://datasets/org/data@refs%2Fpr%2F1/"
				     "sub/dir",
				     &o, &src, err, sizeof(err)),
			 0);
	assert_string_equal(src->ref, "refs/pr/1");
	assert_string_equal(src->cache_key,
			    "hf:https://mirror.test/hub/datasets/org/data:/"
			    "sub/dir");
	source_free(src);

	o.token = TOKEN;
	o.endpoint = "http://127.0.0.1:8080";
	assert_int_equal(source_open("hf://spaces/org/app", &o, &src, err,
				     sizeof(err)),
			 0);
	assert_string_equal(src->auth, AUTH);
	assert_string_equal(src->cache_key,
			    "hf:http://127.0.0.1:8080/spaces/org/app");
	source_free(src);

	/* an empty token is none */
	o.token = "";
	assert_int_equal(source_open("hf://gpt2", &o, &src, err, sizeof(err)),
			 0);
	assert_null(src->auth);
	source_free(src);
}

static void test_open_errors(void **state)
{
	static const struct {
		const char *endpoint;
		const char *token;
		const char *msg;
	} cases[] = {
		{ "ftp://hub.test", NULL,
		  "bad Hub endpoint 'ftp://hub.test': expected an http:// or "
		  "https:// URL (-o endpoint= or HF_ENDPOINT)" },
		{ "hub.test", NULL,
		  "bad Hub endpoint 'hub.test': expected an http:// or "
		  "https:// URL (-o endpoint= or HF_ENDPOINT)" },
		{ "https://", NULL,
		  "bad Hub endpoint 'https://': expected an http:// or "
		  "https:// URL (-o endpoint= or HF_ENDPOINT)" },
		{ "https:///x", NULL,
		  "bad Hub endpoint 'https:///x': expected an http:// or "
		  "https:// URL (-o endpoint= or HF_ENDPOINT)" },
		{ "https://user:pw@hub.test", NULL,
		  "bad Hub endpoint '...': expected an http:// or https:// "
		  "URL (-o endpoint= or HF_ENDPOINT)" },
		{ NULL, "hf_abc\nX-Evil: 1",
		  "the token contains control characters (a second line?)" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct source_opts o = { .endpoint = cases[i].endpoint,
					 .token = cases[i].token };
		struct source *src = (void *)1;
		char err[ERRLEN] = "";

		assert_int_equal(source_open("hf://org/model", &o, &src, err,
					     sizeof(err)),
				 -EINVAL);
		assert_null(src);
		assert_string_equal(err, cases[i].msg);
	}
	assert_null(strstr(logged(), "hf_abc"));
}

/* ---- URLs ------------------------------------------------------------- */

static void test_urls(void **state)
{
	char *s;

	s = hf_escape_revision("refs/pr/1");
	assert_string_equal(s, "refs%2Fpr%2F1");
	free(s);
	s = hf_escape_revision("feat/x y");
	assert_string_equal(s, "feat%2Fx%20y");
	free(s);
	s = hf_escape_revision("v1.0_rc-1~2");
	assert_string_equal(s, "v1.0_rc-1~2");
	free(s);

	s = hf_escape_path("dir with space/a#1?.bin");
	assert_string_equal(s, "dir%20with%20space/a%231%3F.bin");
	free(s);
	s = hf_escape_path("sub/" UNI "/x%y+z");
	assert_string_equal(s, "sub/%C3%BCnicode/x%25y%2Bz");
	free(s);
	s = hf_escape_path("plain.json");
	assert_string_equal(s, "plain.json");
	free(s);

	s = hf_resolve_url(E, HF_MODEL, "org/model", "refs/pr/1",
			   "config.json");
	assert_string_equal(s, E "/org/model/resolve/refs%2Fpr%2F1/"
				 "config.json");
	free(s);
	s = hf_resolve_url(E, HF_DATASET, "org/data", C1, "a b/" UNI ".txt");
	assert_string_equal(s, E "/datasets/org/data/resolve/" C1
				 "/a%20b/%C3%BCnicode.txt");
	free(s);
	s = hf_resolve_url(E, HF_SPACE, "gpt2", "main", "app.py");
	assert_string_equal(s, E "/spaces/gpt2/resolve/main/app.py");
	free(s);
	assert_string_equal(hf_type_plural(HF_MODEL), "models");
	assert_string_equal(hf_type_plural(HF_DATASET), "datasets");
	assert_string_equal(hf_type_plural(HF_SPACE), "spaces");
}

/* ---- the revision answer ---------------------------------------------- */

static void test_revision_parse(void **state)
{
	struct hf_revision r;
	const char *ok =
		"{\"_id\":\"63a3a6bf3618ae17d667acf2\",\"id\":\"org/model\","
		"\"sha\":\"0123456789ABCDEF0123456789abcdef01234567\","
		"\"lastModified\":\"2022-12-22T01:01:20.000Z\","
		"\"private\":false,\"gated\":false,\"siblings\":[]}";

	assert_int_equal(hf_revision_parse(ok, strlen(ok), &r), 0);
	assert_string_equal(r.commit, C1); /* lowercased */
	assert_string_equal(r.id, "org/model");
	assert_int_equal(r.mtime, 1671670880);
	assert_false(r.gated);
	hf_revision_release(&r);

#define REV_OK(body, gated_)                                                \
	do {                                                                \
		const char *b_ = (body);                                    \
		assert_int_equal(hf_revision_parse(b_, strlen(b_), &r), 0); \
		assert_int_equal(r.gated, gated_);                          \
		hf_revision_release(&r);                                    \
	} while (0)
	REV_OK("{\"sha\":\"" C1 "\",\"gated\":\"manual\"}", true);
	REV_OK("{\"sha\":\"" C1 "\",\"gated\":\"auto\"}", true);
	REV_OK("{\"sha\":\"" C1 "\",\"gated\":true}", true);
	REV_OK("{\"sha\":\"" C1 "\",\"gated\":null}", false);
	REV_OK("{\"sha\":\"" C1 "\"}", false);
#undef REV_OK
	/* no id, a bad date: 0 */
	{
		const char *b = "{\"sha\":\"" C1 "\",\"lastModified\":"
				"\"yesterday\"}";

		assert_int_equal(hf_revision_parse(b, strlen(b), &r), 0);
	}
	assert_null(r.id);
	assert_int_equal(r.mtime, 0);
	hf_revision_release(&r);

#define REV_BAD(body)                                                   \
	do {                                                            \
		const char *b_ = (body);                                \
		assert_int_equal(hf_revision_parse(b_, strlen(b_), &r), \
				 -EBADMSG);                             \
		assert_null(r.commit);                                  \
	} while (0)
	REV_BAD("");
	REV_BAD("<html>Hello</html>");
	REV_BAD("[]");
	REV_BAD("{\"id\":\"org/model\"}");
	REV_BAD("{\"sha\":\"abc\"}");
	REV_BAD("{\"sha\":\"0123456789abcdef0123456789abcdef0123456z\"}");
	REV_BAD("{\"sha\":12}");
#undef REV_BAD
	assert_int_equal(hf_revision_parse(NULL, 0, &r), -EBADMSG);
}

/* ---- the tree answer -------------------------------------------------- */

struct tree_fx {
	struct manifest *m;
	struct hf_tree t;
};

static int tree_setup(void **state)
{
	struct tree_fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	assert_int_equal(manifest_new(&fx->m), 0);
	fx->t.m = fx->m;
	fx->t.resolve_base = E "/org/model/resolve/" C1;
	fx->t.where = "org/model@main";
	fx->t.mtime = 1671670880;
	fx->t.max_entries = 1000;
	fx->t.max_depth = 64;
	log_start();
	*state = fx;
	return 0;
}

static int tree_teardown(void **state)
{
	struct tree_fx *fx = *state;

	log_stop();
	manifest_free(fx->m);
	free(fx);
	return 0;
}

static int parse(struct tree_fx *fx, const char *body)
{
	return hf_tree_page_parse(&fx->t, body, strlen(body));
}

#define PAGE_MAIN                                                              \
	"[{\"type\":\"directory\",\"oid\":\"c86d67c722720df4843d5cf40001ecf4c" \
	"381d5bb\",\"size\":0,\"path\":\"sub\"},"                              \
	"{\"type\":\"file\",\"oid\":\"" OID_C "\",\"size\":345,"               \
	"\"path\":\".gitattributes\"},"                                        \
	"{\"type\":\"file\",\"oid\":\"" OID_A "\",\"size\":134,"               \
	"\"path\":\"pytorch_model.bin\",\"lfs\":{\"oid\":\"" SHA_A "\","       \
	"\"size\":440473133,\"pointerSize\":134},\"xetHash\":\"2d84\"},"       \
	"{\"type\":\"file\",\"oid\":\"" OID_B "\",\"size\":313,"               \
	"\"path\":\"sub/a b#1.json\"},"                                        \
	"{\"type\":\"file\",\"oid\":\"FCA794A5F07FF8F963FE8B61E3694B0FB7F955D" \
	"F\",\"size\":5,\"path\":\"sub/\\u00fcnicode.txt\"},"                  \
	"{\"type\":\"file\",\"oid\":\"" OID_C "\",\"size\":7,"                 \
	"\"path\":\"deep/er/x.txt\"}]"

static void test_tree_page(void **state)
{
	struct tree_fx *fx = *state;
	const struct mentry *en;

	assert_int_equal(parse(fx, PAGE_MAIN), 0);
	assert_int_equal(fx->t.skipped, 0);
	assert_int_equal(manifest_finish(fx->m), 0);

	en = entry(fx->m, "sub");
	assert_int_equal(en->type, MENTRY_DIR);
	assert_int_equal(en->mtime, 1671670880);
	assert_null(en->url);

	en = entry(fx->m, ".gitattributes");
	assert_int_equal(en->type, MENTRY_FILE);
	assert_int_equal(en->size, 345);
	assert_string_equal(en->content_id, OID_C);
	assert_string_equal(en->hash_kind, "git-sha1");
	assert_string_equal(en->url,
			    E "/org/model/resolve/" C1 "/.gitattributes");

	/* LFS: lfs.size and lfs.oid, not the pointer's */
	en = entry(fx->m, "pytorch_model.bin");
	assert_int_equal(en->size, 440473133);
	assert_string_equal(en->content_id, SHA_A);
	assert_string_equal(en->hash_kind, "sha256");
	assert_int_equal(en->mtime, 1671670880);

	en = entry(fx->m, "sub/a b#1.json");
	assert_string_equal(en->url,
			    E "/org/model/resolve/" C1 "/sub/a%20b%231.json");
	en = entry(fx->m, "sub/" UNI ".txt");
	assert_string_equal(en->content_id, OID_B); /* lowercased */
	assert_string_equal(en->url,
			    E "/org/model/resolve/" C1 "/sub/%C3%BCnicode.txt");
	/* parents not listed are made */
	assert_int_equal(entry(fx->m, "deep/er")->type, MENTRY_DIR);
	assert_int_equal(entry(fx->m, "deep/er/x.txt")->size, 7);
	assert_int_equal(manifest_file_count(fx->m), 5);
}

static void test_tree_hostile(void **state)
{
	struct tree_fx *fx = *state;
	const char *log;

	assert_int_equal(
		parse(fx,
		      "[42, \"x\", null,"
		      "{\"type\":\"file\",\"oid\":\"" OID_C "\",\"size\":1,"
		      "\"path\":\"../evil\"},"
		      "{\"type\":\"file\",\"oid\":\"" OID_C "\",\"size\":1,"
		      "\"path\":\"/etc/passwd\"},"
		      "{\"type\":\"file\",\"oid\":\"" OID_C "\",\"size\":1,"
		      "\"path\":\"a//b\"},"
		      "{\"type\":\"file\",\"oid\":\"" OID_C "\",\"size\":1,"
		      "\"path\":\"\"},"
		      "{\"type\":\"file\",\"oid\":\"" OID_C "\",\"size\":1,"
		      "\"path\":\"x/./y\"},"
		      "{\"type\":\"directory\",\"path\":\"d/..\"},"
		      "{\"type\":\"file\",\"oid\":\"" OID_C "\",\"size\":1,"
		      "\"path\":\"nul\\u0000bad\"},"
		      "{\"type\":\"file\",\"oid\":\"" OID_C "\",\"size\":1,"
		      "\"path\":\"ok\"},"
		      "{\"type\":\"file\",\"oid\":\"" OID_C "\",\"size\":2,"
		      "\"path\":\"ok\"},"
		      "{\"type\":\"file\",\"oid\":\"" OID_C "\",\"size\":1,"
		      "\"path\":\"ok/under-a-file\"},"
		      "{\"type\":\"file\",\"oid\":\"" OID_C "\","
		      "\"path\":\"nosize\"},"
		      "{\"type\":\"file\",\"oid\":\"" OID_C "\",\"size\":-5,"
		      "\"path\":\"negsize\"},"
		      "{\"type\":\"file\",\"oid\":\"" OID_C "\","
		      "\"size\":9223372036854775807,\"path\":\"huge\"},"
		      "{\"type\":\"file\",\"oid\":\"" OID_C "\",\"size\":1},"
		      "{\"type\":\"unknown\",\"path\":\"what\"},"
		      "{\"type\":\"file\",\"oid\":\"nothex\",\"size\":3,"
		      "\"path\":\"unhashed\"},"
		      "{\"type\":\"file\",\"oid\":\"" OID_C "\",\"size\":3,"
		      "\"path\":\"badlfs\",\"lfs\":{\"oid\":\"abc\","
		      "\"size\":4}}"
		      "]"),
		0);
	assert_int_equal(manifest_finish(fx->m), 0);
	assert_true(has(fx->m, "ok"));
	assert_int_equal(entry(fx->m, "ok")->size, 1); /* first one wins */
	assert_int_equal(entry(fx->m, "huge")->size, INT64_MAX);
	assert_false(has(fx->m, "evil"));
	assert_false(has(fx->m, "etc"));
	assert_false(has(fx->m, "a"));
	assert_false(has(fx->m, "x"));
	assert_false(has(fx->m, "d"));
	assert_false(has(fx->m, "nul"));
	assert_false(has(fx->m, "nosize"));
	assert_false(has(fx->m, "negsize"));
	assert_false(has(fx->m, "what"));
	/* a file without a usable hash is kept, unverified */
	assert_null(entry(fx->m, "unhashed")->content_id);
	assert_null(entry(fx->m, "unhashed")->hash_kind);
	assert_null(entry(fx->m, "badlfs")->content_id);
	assert_int_equal(entry(fx->m, "badlfs")->size, 4);
	assert_int_equal(fx->t.unverified, 2);
	/* root, ok, huge, unhashed, badlfs */
	assert_int_equal(fx->m->n, 5);
	assert_int_equal(fx->t.skipped, 12);
	log = logged();
	assert_contains(log, "listing of org/model@main: skipping '../evil': "
			     "unusable path");
	assert_contains(log, "skipping '/etc/passwd': unusable path");
	assert_contains(log, "skipping 'nul\\x00bad': NUL in the path");
	assert_contains(log, "skipping 'ok': duplicate name");
	assert_contains(log, "skipping 'ok/under-a-file': duplicate name");
	assert_contains(log, "skipping 'nosize': no size");
	assert_contains(log, "skipping '': no path");
	assert_contains(log, "'unhashed' has no usable hash: it is not "
			     "verified");
}

static void test_tree_subdir(void **state)
{
	struct tree_fx *fx = *state;

	fx->t.subdir = "sub/dir";
	assert_int_equal(
		parse(fx, "[{\"type\":\"directory\",\"path\":\"sub/dir\"},"
			  "{\"type\":\"directory\",\"path\":\"sub/dir/in\"},"
			  "{\"type\":\"file\",\"oid\":\"" OID_C "\","
			  "\"size\":1,\"path\":\"sub/dir/in/x.bin\"},"
			  "{\"type\":\"file\",\"oid\":\"" OID_B "\","
			  "\"size\":2,\"path\":\"sub/dir/y.bin\"},"
			  "{\"type\":\"file\",\"oid\":\"" OID_B "\","
			  "\"size\":2,\"path\":\"sub/dirty\"},"
			  "{\"type\":\"file\",\"oid\":\"" OID_B "\","
			  "\"size\":2,\"path\":\"other.bin\"}]"),
		0);
	assert_int_equal(manifest_finish(fx->m), 0);
	assert_false(fx->t.subdir_is_file);
	assert_int_equal(entry(fx->m, "in")->type, MENTRY_DIR);
	assert_int_equal(entry(fx->m, "in/x.bin")->size, 1);
	/* the URL has the path from the repo root */
	assert_string_equal(entry(fx->m, "in/x.bin")->url,
			    E "/org/model/resolve/" C1 "/sub/dir/in/x.bin");
	assert_int_equal(entry(fx->m, "y.bin")->size, 2);
	assert_false(has(fx->m, "sub"));
	assert_false(has(fx->m, "other.bin"));
	assert_false(has(fx->m, "ty"));
	assert_int_equal(fx->m->n, 4);
	assert_contains(logged(), "skipping 'other.bin': outside the "
				  "subfolder");

	fx->t.subdir = "f.bin";
	assert_int_equal(parse(fx, "[{\"type\":\"file\",\"oid\":\"" OID_C
				   "\",\"size\":1,\"path\":\"f.bin\"}]"),
			 0);
	assert_true(fx->t.subdir_is_file);
}

static void test_tree_redacted_and_bad(void **state)
{
	struct tree_fx *fx = *state;

	assert_int_equal(parse(fx, "{\"error\":\"x\"}"), -EBADMSG);
	assert_int_equal(parse(fx, "<html></html>"), -EBADMSG);
	assert_int_equal(parse(fx, ""), -EBADMSG);
	assert_int_equal(hf_tree_page_parse(&fx->t, NULL, 0), -EBADMSG);
	assert_int_equal(parse(fx,
			       "[{\"type\":\"file\",\"oid\":\"" OID_C
			       "\",\"size\":1,\"path\":\"a\"},"
			       "{\"type\":\"file\",\"oid\":\"" OID_A
			       "\",\"size\":1,\"path\":\"b\","
			       "\"lfs\":{\"oid\":\"*************************"
			       "***************************************\","
			       "\"size\":5}}]"),
			 -EACCES);
	assert_int_equal(parse(fx, "[{\"type\":\"file\",\"oid\":\"********\","
				   "\"size\":1,\"path\":\"c\"}]"),
			 -EACCES);
	/* an empty page is fine */
	assert_int_equal(parse(fx, "[]"), 0);
	/* no body is not a page; a length is honoured */
	assert_int_equal(hf_tree_page_parse(&fx->t, "[]garbage", 2), 0);
}

static void test_tree_caps(void **state)
{
	struct tree_fx *fx = *state;

	fx->t.max_depth = 2;
	assert_int_equal(parse(fx,
			       "[{\"type\":\"directory\",\"path\":\"a/b\"},"
			       "{\"type\":\"directory\",\"path\":\"a/b/c\"},"
			       "{\"type\":\"file\",\"oid\":\"" OID_C "\","
			       "\"size\":1,\"path\":\"a/b/f\"},"
			       "{\"type\":\"file\",\"oid\":\"" OID_C "\","
			       "\"size\":1,\"path\":\"a/b/c/g\"}]"),
			 0);
	assert_true(has(fx->m, "a/b/f"));
	assert_false(has(fx->m, "a/b/c"));
	assert_false(has(fx->m, "a/b/c/g"));
	assert_contains(logged(), "skipping 'a/b/c/g': too many folders deep");

	fx->t.max_entries = 5; /* a, a/b, a/b/f + 2 */
	assert_int_equal(parse(fx, "[{\"type\":\"file\",\"oid\":\"" OID_C "\","
				   "\"size\":1,\"path\":\"1\"},"
				   "{\"type\":\"file\",\"oid\":\"" OID_C "\","
				   "\"size\":1,\"path\":\"2\"},"
				   "{\"type\":\"file\",\"oid\":\"" OID_C "\","
				   "\"size\":1,\"path\":\"3\"}]"),
			 0);
	assert_true(fx->t.capped);
	assert_true(has(fx->m, "2"));
	assert_false(has(fx->m, "3"));
	assert_contains(logged(), "listing of org/model@main stopped at 5 "
				  "entries: the rest is not shown");
}

/* ---- error mapping ---------------------------------------------------- */

static void test_map_error(void **state)
{
	static const struct {
		const char *spec;
		bool token;
		enum hf_req what;
		long status;
		int rc; /* 0: from the status */
		const char *code, *message, *body;
		int want;
		const char *msg;
	} cases[] = {
		{ "hf://org/model@nope", false, HF_REQ_REVISION, 404, 0,
		  "RevisionNotFound", "Invalid rev id: nope", NULL, -ENOENT,
		  "revision 'nope' not found in org/model" },
		{ "hf://org/model@nope", true, HF_REQ_REVISION, 404, 0, NULL,
		  NULL, "{\"error\":\"Invalid rev id: nope\"}", -ENOENT,
		  "revision 'nope' not found in org/model" },
		{ "hf://org/model@nope", false, HF_REQ_TREE, 404, 0,
		  "RevisionNotFound", NULL, NULL, -ENOENT,
		  "revision 'nope' not found in org/model" },
		{ "hf://org/model", false, HF_REQ_REVISION, 401, 0, NULL,
		  "Invalid username or password.", NULL, -ENOENT,
		  "'org/model' not found, or private: set HF_TOKEN" },
		{ "hf://datasets/org/data", false, HF_REQ_REVISION, 401, 0,
		  "RepoNotFound", NULL, NULL, -ENOENT,
		  "'datasets/org/data' not found, or private: set HF_TOKEN" },
		{ "hf://org/model", false, HF_REQ_REVISION, 404, 0, NULL, NULL,
		  NULL, -ENOENT,
		  "'org/model' not found, or private: set HF_TOKEN" },
		{ "hf://org/model", true, HF_REQ_REVISION, 404, 0,
		  "RepoNotFound", "Repository not found", NULL, -ENOENT,
		  "'org/model' not found, or private: the token given cannot "
		  "read it" },
		{ "hf://org/model", true, HF_REQ_REVISION, 401, 0,
		  "RepoNotFound", "Repository not found", NULL, -ENOENT,
		  "'org/model' not found, or private: the token given cannot "
		  "read it" },
		{ "hf://org/model", true, HF_REQ_REVISION, 401, 0, NULL,
		  "Invalid credentials in Authorization header", NULL, -EACCES,
		  "the token was refused by " E " (HTTP 401): check HF_TOKEN" },
		{ "hf://org/model", true, HF_REQ_TREE, 401, 0, "RepoNotFound",
		  "Invalid credentials in Authorization header", NULL, -EACCES,
		  "the token was refused by " E " (HTTP 401): check HF_TOKEN" },
		{ "hf://org/model", true, HF_REQ_REVISION, 401, 0, NULL, NULL,
		  NULL, -EACCES,
		  "the token was refused by " E " (HTTP 401): check HF_TOKEN" },
		{ "hf://org/model", false, HF_REQ_REVISION, 401, 0, "GatedRepo",
		  "Access to model org/model is restricted.", NULL, -EACCES,
		  "'org/model' is gated: accept its terms on the Hub and set "
		  "HF_TOKEN" },
		{ "hf://org/model", true, HF_REQ_REVISION, 403, 0, "GatedRepo",
		  NULL, NULL, -EACCES,
		  "'org/model' is gated: accept its terms on the Hub and set "
		  "HF_TOKEN" },
		{ "hf://org/model", true, HF_REQ_TREE, 401, 0, "gatedrepo",
		  NULL, NULL, -EACCES,
		  "'org/model' is gated: accept its terms on the Hub and set "
		  "HF_TOKEN" },
		{ "hf://org/model", false, HF_REQ_REVISION, 403, 0, NULL,
		  "Access to this resource is disabled.", NULL, -EACCES,
		  "'org/model' is disabled on " E " (HTTP 403)" },
		{ "hf://org/model", false, HF_REQ_REVISION, 403, 0, NULL, NULL,
		  NULL, -EACCES,
		  "access to 'org/model' was refused by " E " (HTTP 403): set "
		  "HF_TOKEN" },
		{ "hf://org/model", true, HF_REQ_TREE, 403, 0, NULL, NULL, NULL,
		  -EACCES,
		  "access to 'org/model' was refused by " E " (HTTP 403): the "
		  "token given cannot read it" },
		{ "hf://org/model", false, HF_REQ_REVISION, 429, 0, NULL, NULL,
		  NULL, -EBUSY,
		  "rate limited by " E " (HTTP 429): try again later" },
		{ "hf://org/model/sub", false, HF_REQ_TREE, 404, 0,
		  "EntryNotFound", "sub does not exist on \"main\"", NULL,
		  -ENOENT, "subfolder 'sub' not found in org/model@main" },
		{ "hf://org/model@v2/a/b", false, HF_REQ_TREE, 404, 0, NULL,
		  NULL, NULL, -ENOENT,
		  "subfolder 'a/b' not found in org/model@v2" },
		{ "hf://org/model", false, HF_REQ_TREE, 404, 0, "EntryNotFound",
		  "Entry not found", NULL, -ENOENT,
		  E " answered HTTP 404 for 'URL': Entry not found" },
		{ "hf://org/model", false, HF_REQ_TREE, 500, 0, NULL,
		  "boom\nsecond line", NULL, -EIO,
		  E " answered HTTP 500 for 'URL': boom\\x0asecond line" },
		{ "hf://org/model", false, HF_REQ_TREE, 400, 0, NULL, NULL,
		  NULL, -EPROTO, E " answered HTTP 400 for 'URL'" },
		{ "hf://org/model", false, HF_REQ_TREE, 503, 0, NULL, NULL,
		  NULL, -EAGAIN, E " answered HTTP 503 for 'URL'" },
		{ "hf://org/model", false, HF_REQ_TREE, 302, -ELOOP, NULL, NULL,
		  NULL, -ELOOP,
		  "request to 'URL' failed: Too many levels of symbolic "
		  "links" },
		{ "hf://org/model", false, HF_REQ_REVISION, 0, -ECONNREFUSED,
		  NULL, NULL, NULL, -ECONNREFUSED,
		  "cannot reach " E ": Connection refused" },
		{ "hf://org/model", false, HF_REQ_REVISION, 0, -EHOSTUNREACH,
		  NULL, NULL, NULL, -EHOSTUNREACH,
		  "cannot reach " E ": No route to host" },
		{ "hf://org/model", false, HF_REQ_TREE, 200, -EFBIG, NULL, NULL,
		  NULL, -EFBIG, "the answer of " E " to 'URL' is too large" },
		{ "hf://org/model", false, HF_REQ_TREE, 200, 0, NULL, NULL,
		  NULL, 0, "" },
		{ "hf://org/model", false, HF_REQ_TREE, 206, 0, NULL, NULL,
		  NULL, 0, "" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct source *src =
			open_ok(cases[i].spec, cases[i].token ? TOKEN : NULL);
		struct http_result res;
		char err[ERRLEN] = "";
		int rc;

		memset(&res, 0, sizeof(res));
		res.status = cases[i].status;
		res.url = (char *)"URL";
		res.error_code = (char *)cases[i].code;
		res.error_message = (char *)cases[i].message;
		res.body = (char *)cases[i].body;
		res.body_len = cases[i].body ? strlen(cases[i].body) : 0;
		rc = cases[i].rc ? cases[i].rc :
				   http_status_errno(cases[i].status);
		rc = hf_map_error(src, cases[i].what, &res, rc, err,
				  sizeof(err));
		if (rc != cases[i].want || strcmp(err, cases[i].msg))
			fail_msg("case %zu: %d '%s', not %d '%s'", i, rc, err,
				 cases[i].want, cases[i].msg);
		assert_null(strstr(err, TOKEN));
		source_free(src);
	}
}

/* ---- list() ----------------------------------------------------------- */

#define REV_URL(repo, rev) E "/api/models/" repo "/revision/" rev
#define TREE_URL(repo, commit) E "/api/models/" repo "/tree/" commit TREE_Q
#define REV_BODY(id, sha)                                                  \
	"{\"_id\":\"63a3\",\"id\":\"" id "\",\"sha\":\"" sha "\","         \
	"\"lastModified\":\"2022-12-22T01:01:20.000Z\",\"private\":false," \
	"\"gated\":false,\"siblings\":[{\"rfilename\":\"x\"}]}"

static struct manifest *list_ok(struct source *src)
{
	struct manifest *m = NULL;
	char err[ERRLEN] = "";

	if (src->ops->list(src, FAKE_ENGINE, &m, err, sizeof(err)))
		fail_msg("listing '%s': %s", src->spec, err);
	assert_non_null(m);
	assert_true(m->finished);
	return m;
}

static int list_fails(struct source *src, char *err, size_t errlen)
{
	struct manifest *m = (void *)1;
	int rc;

	rc = src->ops->list(src, FAKE_ENGINE, &m, err, errlen);
	assert_true(rc < 0);
	assert_null(m);
	assert_null(strchr(err, '\n'));
	return rc;
}

static void test_list_paginated(void **state)
{
	static const struct route r[] = {
		{ .url = REV_URL("org/model", "main"),
		  .status = 200,
		  .body = REV_BODY("org/model", C1) },
		{ .url = TREE_URL("org/model", C1),
		  .status = 200,
		  .body = "[{\"type\":\"directory\",\"path\":\"sub\"},"
			  "{\"type\":\"file\",\"oid\":\"" OID_C
			  "\",\"size\":345,"
			  "\"path\":\".gitattributes\"}]",
		  .link_next = TREE_URL("org/model", C1) "&cursor=p2" },
		{ .url = TREE_URL("org/model", C1) "&cursor=p2",
		  .status = 200,
		  .body = "[{\"type\":\"file\",\"oid\":\"" OID_A
			  "\",\"size\":134,"
			  "\"path\":\"model.safetensors\",\"lfs\":{\"oid\":"
			  "\"" SHA_A "\",\"size\":1000,\"pointerSize\":134}}]",
		  .link_next = E "/api/models/org/model/tree/" C1
				 "?cursor=p3" },
		{ .url = E "/api/models/org/model/tree/" C1 "?cursor=p3",
		  .status = 200,
		  .body = "[{\"type\":\"file\",\"oid\":\"" OID_B
			  "\",\"size\":3,"
			  "\"path\":\"sub/x y.json\"}]" },
	};
	struct source *src;
	struct manifest *m;

	ROUTES(r);
	want_auth = AUTH;
	src = open_ok("hf://org/model", TOKEN);
	m = list_ok(src);
	assert_int_equal(requests, 4);
	assert_string_equal(asked[0], REV_URL("org/model", "main"));
	/* the tree is listed at the commit, not at the branch */
	assert_string_equal(asked[1], TREE_URL("org/model", C1));
	assert_string_equal(src->version, C1);
	assert_string_equal(src->ref, "main");
	assert_string_equal(m->version, C1);
	assert_string_equal(m->source, "hf://org/model");
	assert_int_equal(manifest_file_count(m), 3);
	assert_int_equal(entry(m, "model.safetensors")->size, 1000);
	assert_string_equal(entry(m, "model.safetensors")->content_id, SHA_A);
	assert_string_equal(entry(m, "sub/x y.json")->url,
			    E "/org/model/resolve/" C1 "/sub/x%20y.json");
	assert_int_equal(entry(m, "sub/x y.json")->mtime, 1671670880);
	assert_contains(logged(), "listed org/model@main at commit " C1
				  ": 3 files, 1348 bytes");
	assert_null(strstr(logged(), TOKEN));
	manifest_free(m);
	source_free(src);
}

static void test_list_revisions_and_types(void **state)
{
	static const struct route r[] = {
		/* refs/pr/1 is one escaped segment everywhere */
		{ .url = E "/api/datasets/org/data/revision/refs%2Fpr%2F1",
		  .status = 200,
		  .body = REV_BODY("org/data", C2) },
		{ .url = E "/api/datasets/org/data/tree/" C2
			   "/sub%20dir/%C3%BCnicode" TREE_Q,
		  .status = 200,
		  .body = "[{\"type\":\"file\",\"oid\":\"" OID_C
			  "\",\"size\":1,"
			  "\"path\":\"sub dir/" UNI "/f#1.txt\"}]" },
		/* a commit id is still resolved (and so checked) */
		{ .url = E "/api/spaces/org/app/revision/" C1,
		  .status = 200,
		  .body = REV_BODY("org/app", C1) },
		{ .url = E "/api/spaces/org/app/tree/" C1 TREE_Q,
		  .status = 200,
		  .body = "[{\"type\":\"file\",\"oid\":\"" OID_C
			  "\",\"size\":1,"
			  "\"path\":\"app.py\"}]" },
		/* a legacy id: the Hub's canonical id is used from then on */
		{ .url = REV_URL("gpt2", "main"),
		  .status = 200,
		  .body = REV_BODY("openai-community/gpt2", C1) },
		{ .url = TREE_URL("openai-community/gpt2", C1),
		  .status = 200,
		  .body = "[{\"type\":\"file\",\"oid\":\"" OID_C
			  "\",\"size\":1,"
			  "\"path\":\"config.json\"}]" },
	};
	struct source *src;
	struct manifest *m;

	ROUTES(r);
	src = open_ok("hf://datasets/org/data@refs/pr/1/sub dir/" UNI, NULL);
	m = list_ok(src);
	assert_string_equal(src->version, C2);
	assert_string_equal(src->ref, "refs/pr/1");
	assert_string_equal(entry(m, "f#1.txt")->url,
			    E "/datasets/org/data/resolve/" C2
			      "/sub%20dir/%C3%BCnicode/f%231.txt");
	manifest_free(m);
	source_free(src);

	src = open_ok("hf://spaces/org/app@" C1, NULL);
	m = list_ok(src);
	assert_string_equal(src->ref, C1);
	assert_string_equal(entry(m, "app.py")->url,
			    E "/spaces/org/app/resolve/" C1 "/app.py");
	manifest_free(m);
	source_free(src);

	src = open_ok("hf://gpt2", NULL);
	m = list_ok(src);
	assert_string_equal(entry(m, "config.json")->url,
			    E "/openai-community/gpt2/resolve/" C1
			      "/config.json");
	/* the cache key stays what the user wrote */
	assert_string_equal(src->cache_key, "hf:" E "/models/gpt2");
	manifest_free(m);
	source_free(src);
}

static void test_list_pagination_loop(void **state)
{
	static const struct route r[] = {
		{ .url = REV_URL("org/model", "main"),
		  .status = 200,
		  .body = REV_BODY("org/model", C1) },
		{ .url = TREE_URL("org/model", C1),
		  .status = 200,
		  .body = "[]",
		  .link_next = TREE_URL("org/model", C1) "&cursor=p2" },
		{ .url = TREE_URL("org/model", C1) "&cursor=p2",
		  .status = 200,
		  .body = "[]",
		  .link_next = TREE_URL("org/model", C1) },
	};
	struct source *src;
	char err[ERRLEN] = "";

	ROUTES(r);
	src = open_ok("hf://org/model", NULL);
	assert_int_equal(list_fails(src, err, sizeof(err)), -ELOOP);
	assert_string_equal(err, "listing of org/model@main failed: the "
				 "server sent page '" TREE_URL(
					 "org/model",
					 C1) "' twice (a pagination loop)");
	assert_int_equal(requests, 3);
	assert_null(src->version);
	source_free(src);
}

static void test_list_next_elsewhere(void **state)
{
	static const struct route r[] = {
		{ .url = REV_URL("org/model", "main"),
		  .status = 200,
		  .body = REV_BODY("org/model", C1) },
		{ .url = TREE_URL("org/model", C1),
		  .status = 200,
		  .body = "[{\"type\":\"file\",\"oid\":\"" OID_C "\","
			  "\"size\":1,\"path\":\"a\"}]",
		  .link_next =
			  "https://huggingface.co/api/models/org/model/tree/" C1
			  "?cursor=2" },
		/* another port is another origin too */
		{ .url = "https://huggingface.co/api/models/org/model/tree/" C1
			 "?cursor=2",
		  .status = 200,
		  .body = "[{\"type\":\"file\",\"oid\":\"" OID_C "\","
			  "\"size\":1,\"path\":\"b\"}]",
		  .link_next = "https://hub.test:444/p3",
		  .anon = true },
		{ .url = "https://hub.test:444/p3",
		  .status = 200,
		  .body = "[]",
		  .anon = true },
	};
	struct source *src;
	struct manifest *m;

	ROUTES(r);
	want_auth = AUTH;
	src = open_ok("hf://org/model", TOKEN);
	m = list_ok(src);
	assert_int_equal(requests, 4);
	assert_true(has(m, "a"));
	assert_true(has(m, "b"));
	/* the files are still fetched from the endpoint */
	assert_string_equal(entry(m, "b")->url,
			    E "/org/model/resolve/" C1 "/b");
	assert_contains(logged(), "the next page is on another server, asked "
				  "for without the token");
	assert_null(strstr(logged(), TOKEN));
	manifest_free(m);
	source_free(src);
}

static void test_list_next_not_http(void **state)
{
	static const struct route r[] = {
		{ .url = REV_URL("org/model", "main"),
		  .status = 200,
		  .body = REV_BODY("org/model", C1) },
		{ .url = TREE_URL("org/model", C1),
		  .status = 200,
		  .body = "[]",
		  .link_next = "file:///etc/passwd" },
	};
	struct source *src;
	char err[ERRLEN] = "";

	ROUTES(r);
	src = open_ok("hf://org/model", NULL);
	assert_int_equal(list_fails(src, err, sizeof(err)), -EPROTO);
	assert_string_equal(err, "listing of org/model@main failed: the next "
				 "page is no http(s) URL");
	assert_int_equal(requests, 2);
	source_free(src);
}

static void test_list_gated_probe(void **state)
{
	static const struct route r[] = {
		{ .url = REV_URL("org/gated", "main"),
		  .status = 200,
		  .body = "{\"id\":\"org/gated\",\"sha\":\"" C1 "\","
			  "\"gated\":\"auto\"}" },
		{ .url = TREE_URL("org/gated", C1),
		  .status = 200,
		  .body = "[{\"type\":\"directory\",\"path\":\"d\"},"
			  "{\"type\":\"file\",\"oid\":\"" OID_C "\","
			  "\"size\":1,\"path\":\"d/w.bin\"}]" },
		{ .url = E "/org/gated/resolve/" C1 "/d/w.bin",
		  .status = 403,
		  .error_code = "GatedRepo",
		  .error_message =
			  "Access to model org/gated is restricted and "
			  "you are not in the authorized list." },
		{ .url = REV_URL("org/ok", "main"),
		  .status = 200,
		  .body = "{\"id\":\"org/ok\",\"sha\":\"" C1 "\","
			  "\"gated\":\"auto\"}" },
		{ .url = TREE_URL("org/ok", C1),
		  .status = 200,
		  .body = "[{\"type\":\"file\",\"oid\":\"" OID_C "\","
			  "\"size\":1,\"path\":\"w.bin\"}]" },
		{ .url = E "/org/ok/resolve/" C1 "/w.bin", .status = 200 },
		{ .url = REV_URL("org/down", "main"),
		  .status = 200,
		  .body = "{\"id\":\"org/down\",\"sha\":\"" C1 "\","
			  "\"gated\":\"auto\"}" },
		{ .url = TREE_URL("org/down", C1),
		  .status = 200,
		  .body = "[{\"type\":\"file\",\"oid\":\"" OID_C "\","
			  "\"size\":1,\"path\":\"w.bin\"}]" },
		{ .url = E "/org/down/resolve/" C1 "/w.bin",
		  .err = -ETIMEDOUT },
	};
	struct source *src;
	struct manifest *m;
	char err[ERRLEN] = "";

	ROUTES(r);
	want_auth = AUTH;
	src = open_ok("hf://org/gated", TOKEN);
	assert_int_equal(list_fails(src, err, sizeof(err)), -EACCES);
	assert_string_equal(err, "'org/gated' is gated: accept its terms on "
				 "the Hub and set HF_TOKEN");
	assert_int_equal(heads, 1);
	assert_null(src->version);
	source_free(src);

	/* accepted: listed; a probe that fails otherwise is no verdict */
	src = open_ok("hf://org/ok", TOKEN);
	m = list_ok(src);
	assert_int_equal(heads, 2);
	manifest_free(m);
	source_free(src);
	src = open_ok("hf://org/down", TOKEN);
	m = list_ok(src);
	assert_string_equal(src->version, C1);
	manifest_free(m);
	source_free(src);
}

static void test_list_errors(void **state)
{
	static const struct route r[] = {
		{ .url = REV_URL("org/model", "nope"),
		  .status = 404,
		  .body = "{\"error\":\"Invalid rev id: nope\"}",
		  .error_code = "RevisionNotFound",
		  .error_message = "Invalid rev id: nope" },
		{ .url = REV_URL("org/private", "main"),
		  .status = 401,
		  .body = "{\"error\":\"Invalid username or password.\"}",
		  .error_message = "Invalid username or password." },
		{ .url = REV_URL("org/gated", "main"),
		  .status = 200,
		  .body = "{\"id\":\"org/gated\",\"sha\":\"" C1 "\","
			  "\"gated\":\"manual\"}" },
		{ .url = REV_URL("org/model", "main"),
		  .status = 200,
		  .body = REV_BODY("org/model", C1) },
		{ .url = TREE_URL("org/model", C1), .status = 429 },
		{ .url = E "/api/models/org/model/tree/" C1 "/missing" TREE_Q,
		  .status = 404,
		  .body = "{\"error\":\"missing does not exist on \\\"" C1
			  "\\\"\"}",
		  .error_code = "EntryNotFound",
		  .error_message = "missing does not exist" },
		{ .url = E "/api/models/org/model/tree/" C1 "/f.bin" TREE_Q,
		  .status = 200,
		  .body = "[{\"type\":\"file\",\"oid\":\"" OID_C
			  "\",\"size\":1,"
			  "\"path\":\"f.bin\"}]" },
		{ .url = E "/api/models/org/model/tree/" C1 "/redacted" TREE_Q,
		  .status = 200,
		  .body = "[{\"type\":\"file\",\"oid\":\"" OID_C
			  "\",\"size\":1,"
			  "\"path\":\"redacted/"
			  "a\",\"lfs\":{\"oid\":\"********\","
			  "\"size\":3}}]" },
		{ .url = E "/api/models/org/model/tree/" C1 "/html" TREE_Q,
		  .status = 200,
		  .body = "<html>hello</html>" },
		{ .url = REV_URL("org/down", "main"), .err = -ECONNREFUSED },
		{ .url = REV_URL("org/html", "main"),
		  .status = 200,
		  .body = "<html></html>" },
	};
	static const struct {
		const char *spec;
		int rc;
		const char *msg;
	} cases[] = {
		{ "hf://org/model@nope", -ENOENT,
		  "revision 'nope' not found in org/model" },
		{ "hf://org/private", -ENOENT,
		  "'org/private' not found, or private: set HF_TOKEN" },
		{ "hf://org/gated", -EACCES,
		  "'org/gated' is gated: accept its terms on the Hub and set "
		  "HF_TOKEN" },
		{ "hf://org/model", -EBUSY,
		  "rate limited by " E " (HTTP 429): try again later" },
		{ "hf://org/model/missing", -ENOENT,
		  "subfolder 'missing' not found in org/model@main" },
		{ "hf://org/model/f.bin", -ENOTDIR,
		  "'f.bin' is a file, not a subfolder, in org/model@main" },
		{ "hf://org/model/redacted", -EACCES,
		  "'org/model' is gated: accept its terms on the Hub and set "
		  "HF_TOKEN" },
		{ "hf://org/model/html", -EBADMSG,
		  "'" E "/api/models/org/model/tree/" C1 "/html" TREE_Q
		  "' did not answer with a JSON listing" },
		{ "hf://org/down", -ECONNREFUSED,
		  "cannot reach " E ": Connection refused" },
		{ "hf://org/html", -EBADMSG,
		  "'" REV_URL("org/html", "main") "' did not answer with a "
						  "commit id: is " E
						  " a Hugging Face Hub?" },
	};
	size_t i;

	ROUTES(r);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct source *src = open_ok(cases[i].spec, NULL);
		char err[ERRLEN] = "";
		int rc;

		rc = list_fails(src, err, sizeof(err));
		if (rc != cases[i].rc || strcmp(err, cases[i].msg))
			fail_msg("'%s': %d '%s', not %d '%s'", cases[i].spec,
				 rc, err, cases[i].rc, cases[i].msg);
		assert_null(src->version);
		source_free(src);
	}
	/* gated with a token: listed */
	{
		static const struct route g[] = {
			{ .url = REV_URL("org/gated", "main"),
			  .status = 200,
			  .body = "{\"id\":\"org/gated\",\"sha\":\"" C1 "\","
				  "\"gated\":\"manual\"}" },
			{ .url = TREE_URL("org/gated", C1),
			  .status = 200,
			  .body = "[]" },
		};
		struct source *src;
		struct manifest *m;

		ROUTES(g);
		want_auth = AUTH;
		src = open_ok("hf://org/gated", TOKEN);
		m = list_ok(src);
		assert_int_equal(m->n, 1);
		manifest_free(m);
		source_free(src);
	}
}

static void test_list_without_engine(void **state)
{
	struct source *src = open_ok("hf://org/model", NULL);
	struct manifest *m = (void *)1;
	char err[ERRLEN] = "";

	assert_int_equal(src->ops->list(src, NULL, &m, err, sizeof(err)),
			 -EINVAL);
	assert_null(m);
	assert_string_equal(err, "listing 'hf://org/model' needs the network "
				 "engine");
	source_free(src);
}

static void test_list_cap(void **state)
{
	static const struct route r[] = {
		{ .url = REV_URL("org/model", "main"),
		  .status = 200,
		  .body = REV_BODY("org/model", C1) },
		{ .url = TREE_URL("org/model", C1),
		  .status = 200,
		  .body = "[{\"type\":\"file\",\"oid\":\"" OID_C
			  "\",\"size\":1,"
			  "\"path\":\"1\"},{\"type\":\"file\",\"oid\":\"" OID_C
			  "\","
			  "\"size\":1,\"path\":\"2\"},{\"type\":\"file\","
			  "\"oid\":\"" OID_C "\",\"size\":1,\"path\":\"3\"}]",
		  .link_next = TREE_URL("org/model", C1) "&cursor=p2" },
	};
	struct source_opts o = { .endpoint = E, .max_entries = 2 };
	struct source *src = NULL;
	struct manifest *m;
	char err[ERRLEN] = "";

	ROUTES(r);
	assert_int_equal(
		source_open("hf://org/model", &o, &src, err, sizeof(err)), 0);
	m = list_ok(src);
	/* capped on the first page: the second is never asked for */
	assert_int_equal(requests, 2);
	assert_int_equal(manifest_file_count(m), 2);
	manifest_free(m);
	source_free(src);
}

/* ---- targets and snapshots -------------------------------------------- */

static void test_target_hf(void **state)
{
	static const struct route r[] = {
		{ .url = REV_URL("org/model", "main"),
		  .status = 200,
		  .body = REV_BODY("org/model", C1) },
		{ .url = TREE_URL("org/model", C1),
		  .status = 200,
		  .body = "[{\"type\":\"file\",\"oid\":\"" OID_A
			  "\",\"size\":134,"
			  "\"path\":\"w.bin\",\"lfs\":{\"oid\":\"" SHA_A "\","
			  "\"size\":1000}},{\"type\":\"file\",\"oid\":\"" OID_C
			  "\","
			  "\"size\":7,\"path\":\"c.json\"},{\"type\":\"file\","
			  "\"oid\":\"zz\",\"size\":7,\"path\":\"n.txt\"}]" },
	};
	struct source *src;
	struct manifest *m;
	struct fblob_target t;
	char id[256];

	ROUTES(r);
	want_auth = AUTH;
	src = open_ok("hf://org/model", TOKEN);
	m = list_ok(src);
	source_target(src, m, idx_of(m, "w.bin"), &t, id, sizeof(id));
	assert_string_equal(t.kind, "hf");
	/* The endpoint's origin is part of the identity. */
	assert_string_equal(t.content_id, E " " SHA_A);
	assert_true(t.pinned);
	assert_null(t.etag);
	assert_string_equal(t.hash_kind, "sha256");
	assert_string_equal(t.hash, SHA_A);
	assert_int_equal(t.size, 1000);
	assert_string_equal(t.url, E "/org/model/resolve/" C1 "/w.bin");
	assert_string_equal(t.auth, AUTH);
	assert_string_equal(t.name, "w.bin");

	source_target(src, m, idx_of(m, "c.json"), &t, id, sizeof(id));
	assert_string_equal(t.content_id, E " " OID_C);
	assert_string_equal(t.hash_kind, "git-sha1");
	assert_string_equal(t.hash, OID_C);
	assert_true(t.pinned);

	/* no hash: still pinned, named by its commit URL */
	source_target(src, m, idx_of(m, "n.txt"), &t, id, sizeof(id));
	assert_true(t.pinned);
	assert_null(t.hash);
	assert_null(t.hash_kind);
	assert_prefix(t.content_id, E "/org/model/resolve/" C1 "/n.txt\n");
	manifest_free(m);
	source_free(src);
}

/* The blob name of w.bin (sha256 SHA_A, 1000 bytes) mounted from the
 * endpoint ep at revision rev (main: C1, else C2), as fs/ names it. */
static void blob_name_via(const char *ep, const char *rev, char hex[33])
{
	struct route r[2];
	char base[128], rev_url[512], tree_url[512], spec[64];
	struct source_opts o = { .token = TOKEN, .endpoint = ep };
	struct source *src = NULL;
	struct manifest *m;
	struct fblob_target t;
	char id[256], err[ERRLEN] = "";
	uint8_t ident[16];
	bool main_rev = !strcmp(rev, "main");
	size_t n = strlen(ep);

	/* The URLs asked for are built from the endpoint as given. */
	while (n && ep[n - 1] == '/')
		n--;
	snprintf(base, sizeof(base), "%.*s", (int)n, ep);
	snprintf(rev_url, sizeof(rev_url),
		 "%s/api/models/org/model/revision/%s", base, rev);
	snprintf(tree_url, sizeof(tree_url),
		 "%s/api/models/org/model/tree/%s" TREE_Q, base,
		 main_rev ? C1 : C2);
	memset(r, 0, sizeof(r));
	r[0].url = rev_url;
	r[0].status = 200;
	r[0].body = main_rev ? REV_BODY("org/model", C1) :
			       REV_BODY("org/model", C2);
	r[1].url = tree_url;
	r[1].status = 200;
	r[1].body =
		"[{\"type\":\"file\",\"oid\":\"" OID_A
		"\",\"size\":134,\"path\":\"w.bin\",\"lfs\":{\"oid\":\"" SHA_A
		"\",\"size\":1000}}]";
	set_routes(r, 2);
	want_auth = AUTH;
	snprintf(spec, sizeof(spec), "hf://org/model@%s", rev);
	if (source_open(spec, &o, &src, err, sizeof(err)))
		fail_msg("source_open('%s'): %s", spec, err);
	m = list_ok(src);
	source_target(src, m, idx_of(m, "w.bin"), &t, id, sizeof(id));
	assert_string_equal(t.hash, SHA_A); /* still checked by its hash */
	cache_identity(t.kind, t.content_id, t.size, ident);
	cache_identity_hex(ident, hex);
	manifest_free(m);
	source_free(src);
	set_routes(NULL, 0);
}

/* A mirror's blobs are not the Hub's: the endpoint's origin is part of a
 * blob's identity, normalized; revisions of one endpoint share blobs. */
static void test_target_identity_has_origin(void **state)
{
	char hub[33], port[33], same[33], other[33], rev2[33];

	blob_name_via(E, "main", hub);
	/* Case, a trailing '/' and the default port do not matter. */
	blob_name_via("HTTPS://Hub.Test:443/", "main", same);
	assert_string_equal(hub, same);
	/* The same file at another revision of the same endpoint. */
	blob_name_via(E, "v2", rev2);
	assert_string_equal(hub, rev2);
	/* Another origin: another blob. */
	blob_name_via("http://hub.test", "main", other);
	assert_string_not_equal(hub, other);
	blob_name_via("https://hub.test:8443", "main", port);
	assert_string_not_equal(hub, port);
	assert_string_not_equal(other, port);
	/* A path on the same origin is the same operator: one blob. */
	blob_name_via("https://hub.test/mirror", "main", same);
	assert_string_equal(hub, same);
}

static void rm_rf(const char *path)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	assert_int_equal(system(cmd), 0);
}

static void test_snapshot_pinned_offline(void **state)
{
	static const struct route online[] = {
		{ .url = REV_URL("org/model", "v1"),
		  .status = 200,
		  .body = REV_BODY("org/model", C1) },
		{ .url = TREE_URL("org/model", C1),
		  .status = 200,
		  .body = "[{\"type\":\"file\",\"oid\":\"" OID_C
			  "\",\"size\":1,"
			  "\"path\":\"a\"}]" },
	};
	static const struct route down[] = {
		{ .url = REV_URL("org/model", "v1"), .err = -EHOSTUNREACH },
	};
	char dir[] = "/tmp/test_source_hf.XXXXXX";
	struct cache *c = NULL;
	struct source *src;
	struct manifest *m = NULL;
	bool used = true;
	char err[ERRLEN] = "", *ver = NULL;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(cache_new(dir, &c), 0);
	ROUTES(online);
	src = open_ok("hf://org/model@v1", NULL);
	assert_int_equal(source_snapshot(src, FAKE_ENGINE, c, false, &m, &used,
					 err, sizeof(err)),
			 0);
	assert_false(used);
	manifest_free(m);
	assert_int_equal(cache_load_ref(c, src->cache_key, "v1", &ver), 0);
	assert_string_equal(ver, C1);
	free(ver);
	source_free(src);

	/* offline: no request, the pinned snapshot */
	requests = 0;
	src = open_ok("hf://org/model@v1", NULL);
	assert_int_equal(source_snapshot(src, FAKE_ENGINE, c, true, &m, &used,
					 err, sizeof(err)),
			 0);
	assert_true(used);
	assert_int_equal(requests, 0);
	assert_string_equal(src->version, C1);
	assert_string_equal(entry(m, "a")->content_id, OID_C);
	manifest_free(m);
	source_free(src);

	/* the Hub unreachable: the same */
	ROUTES(down);
	src = open_ok("hf://org/model@v1", NULL);
	assert_int_equal(source_snapshot(src, FAKE_ENGINE, c, false, &m, &used,
					 err, sizeof(err)),
			 0);
	assert_true(used);
	assert_string_equal(m->version, C1);
	manifest_free(m);
	source_free(src);

	/* another revision was never pinned */
	src = open_ok("hf://org/model@v2", NULL);
	assert_int_equal(source_snapshot(src, FAKE_ENGINE, c, true, &m, &used,
					 err, sizeof(err)),
			 -ENETDOWN);
	assert_string_equal(err, "'hf://org/model@v2' unreachable (offline "
				 "mode) and no snapshot of it in the cache");
	source_free(src);
	cache_free(c);
	rm_rf(dir);
}

/* ---- hf_cache_export -------------------------------------------------- */

struct exp_fx {
	char dir[64];
	char hub[96];
	char blob_a[96]; /* 1000 bytes, SHA_A */
	char blob_c[96]; /* 7 bytes, OID_C */
	struct source *src;
	struct manifest *m;
};

static void put(const char *path, size_t len, char fill)
{
	char buf[1000];
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_true(len <= sizeof(buf));
	memset(buf, fill, len);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

/* A source and manifest as list() makes them, without the network. */
static void exp_source(struct exp_fx *fx, const char *spec)
{
	source_free(fx->src);
	manifest_free(fx->m);
	fx->src = open_ok(spec, NULL);
	fx->src->version = strdup(C1);
	assert_int_equal(manifest_new(&fx->m), 0);
	assert_int_equal(manifest_add(fx->m, "w.bin", MENTRY_FILE, 1000, 0,
				      SHA_A, "sha256", "u"),
			 0);
	assert_int_equal(manifest_add(fx->m, "d/e/c.json", MENTRY_FILE, 7, 0,
				      OID_C, "git-sha1", "u"),
			 0);
	assert_int_equal(manifest_add(fx->m, "n.txt", MENTRY_FILE, 7, 0, NULL,
				      NULL, "u"),
			 0);
	assert_int_equal(
		manifest_add(fx->m, "up.bin", MENTRY_FILE, 7, 0,
			     "DC08351D4DC0732D9C8AF04070CED089B201CE2F",
			     "git-sha1", "u"),
		0);
	assert_int_equal(manifest_finish(fx->m), 0);
	fx->m->version = strdup(C1);
}

static int exp_setup(void **state)
{
	struct exp_fx *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	fake_setup(state);
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_hf_export.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->hub, sizeof(fx->hub), "%s/hub", fx->dir);
	snprintf(fx->blob_a, sizeof(fx->blob_a), "%s/blob_a", fx->dir);
	snprintf(fx->blob_c, sizeof(fx->blob_c), "%s/blob_c", fx->dir);
	put(fx->blob_a, 1000, 'a');
	put(fx->blob_c, 7, 'c');
	exp_source(fx, "hf://org/model");
	*state = fx;
	return 0;
}

static int exp_teardown(void **state)
{
	struct exp_fx *fx = *state;

	source_free(fx->src);
	manifest_free(fx->m);
	rm_rf(fx->dir);
	free(fx);
	fake_teardown(state);
	return 0;
}

static int export(struct exp_fx *fx, const char *path, const char *blob)
{
	return hf_cache_export(fx->hub, fx->src, fx->m, idx_of(fx->m, path),
			       blob);
}

static void read_link(const char *path, char *out, size_t outlen)
{
	ssize_t n = readlink(path, out, outlen - 1);

	if (n < 0)
		fail_msg("readlink '%s': %s", path, strerror(errno));
	out[n] = '\0';
}

static void read_small(const char *path, char *out, size_t outlen)
{
	int fd = open(path, O_RDONLY);
	ssize_t n;

	if (fd < 0)
		fail_msg("open '%s': %s", path, strerror(errno));
	n = read(fd, out, outlen - 1);
	assert_true(n >= 0);
	out[n] = '\0';
	close(fd);
}

/* No temporary name left in dir (recursively). */
static void assert_no_leftovers(const char *dir)
{
	char cmd[PATH_MAX + 64];
	FILE *p;
	char line[PATH_MAX];

	snprintf(cmd, sizeof(cmd),
		 "find '%s' -name '*.incomplete' -o -name "
		 "'*.tmp.*'",
		 dir);
	p = popen(cmd, "r");
	assert_non_null(p);
	if (fgets(line, sizeof(line), p))
		fail_msg("left behind: %s", line);
	pclose(p);
}

static void test_export_layout(void **state)
{
	struct exp_fx *fx = *state;
	char path[PATH_MAX], link_[PATH_MAX], buf[64];
	struct stat st, sb;
	const char *repo = "models--org--model";

	assert_int_equal(export(fx, "w.bin", fx->blob_a), 0);
	assert_int_equal(export(fx, "d/e/c.json", fx->blob_c), 0);

	/* blobs: hard links of the local copies */
	snprintf(path, sizeof(path), "%s/%s/blobs/" SHA_A, fx->hub, repo);
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(stat(fx->blob_a, &sb), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_ino, sb.st_ino);
	assert_int_equal(st.st_size, 1000);
	snprintf(path, sizeof(path), "%s/%s/blobs/" OID_C, fx->hub, repo);
	assert_int_equal(lstat(path, &st), 0);
	assert_int_equal(stat(fx->blob_c, &sb), 0);
	assert_int_equal(st.st_ino, sb.st_ino);

	/* snapshots: relative symlinks that resolve */
	snprintf(path, sizeof(path), "%s/%s/snapshots/" C1 "/w.bin", fx->hub,
		 repo);
	read_link(path, link_, sizeof(link_));
	assert_string_equal(link_, "../../blobs/" SHA_A);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 1000);
	snprintf(path, sizeof(path), "%s/%s/snapshots/" C1 "/d/e/c.json",
		 fx->hub, repo);
	read_link(path, link_, sizeof(link_));
	assert_string_equal(link_, "../../../../blobs/" OID_C);
	read_small(path, buf, sizeof(buf));
	assert_string_equal(buf, "ccccccc");

	/* refs/main: the commit, no newline */
	snprintf(path, sizeof(path), "%s/%s/refs/main", fx->hub, repo);
	read_small(path, buf, sizeof(buf));
	assert_string_equal(buf, C1);
	assert_no_leftovers(fx->dir);

	/* again: nothing changes, nothing fails */
	link_calls = 0;
	assert_int_equal(export(fx, "w.bin", fx->blob_a), 0);
	assert_int_equal(export(fx, "d/e/c.json", fx->blob_c), 0);
	assert_int_equal(link_calls, 0);
	assert_no_leftovers(fx->dir);
}

static void test_export_subdir_and_refs(void **state)
{
	struct exp_fx *fx = *state;
	char path[PATH_MAX], link_[PATH_MAX], buf[64];
	struct stat st;

	/* a subfolder mount: snapshot paths are from the repo root */
	exp_source(fx, "hf://datasets/org/data@refs%2Fpr%2F1/sub");
	assert_int_equal(export(fx, "d/e/c.json", fx->blob_c), 0);
	snprintf(path, sizeof(path),
		 "%s/datasets--org--data/snapshots/" C1 "/sub/d/e/c.json",
		 fx->hub);
	read_link(path, link_, sizeof(link_));
	assert_string_equal(link_, "../../../../../blobs/" OID_C);
	assert_int_equal(stat(path, &st), 0);
	/* refs/pr/1 nests */
	snprintf(path, sizeof(path), "%s/datasets--org--data/refs/refs/pr/1",
		 fx->hub);
	read_small(path, buf, sizeof(buf));
	assert_string_equal(buf, C1);

	/* a commit revision writes no ref */
	exp_source(fx, "hf://spaces/org/app@" C1);
	assert_int_equal(export(fx, "w.bin", fx->blob_a), 0);
	snprintf(path, sizeof(path), "%s/spaces--org--app/refs", fx->hub);
	assert_int_equal(lstat(path, &st), -1);
	assert_int_equal(errno, ENOENT);

	/* a bare legacy id */
	exp_source(fx, "hf://gpt2@v1");
	assert_int_equal(export(fx, "w.bin", fx->blob_a), 0);
	snprintf(path, sizeof(path), "%s/models--gpt2/refs/v1", fx->hub);
	read_small(path, buf, sizeof(buf));
	assert_string_equal(buf, C1);
	assert_no_leftovers(fx->dir);
}

static void test_export_replaces_wrong(void **state)
{
	struct exp_fx *fx = *state;
	char path[PATH_MAX], link_[PATH_MAX], buf[64];
	struct stat st, sb;
	const char *repo = "models--org--model";

	assert_int_equal(export(fx, "w.bin", fx->blob_a), 0);
	/* a truncated blob someone left, a symlink elsewhere, a stale ref */
	snprintf(path, sizeof(path), "%s/%s/blobs/" OID_C, fx->hub, repo);
	put(path, 3, 'x');
	snprintf(path, sizeof(path), "%s/%s/snapshots/" C1 "/d/e", fx->hub,
		 repo);
	{
		char cmd[PATH_MAX + 32];

		snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", path);
		assert_int_equal(system(cmd), 0);
	}
	snprintf(path, sizeof(path), "%s/%s/snapshots/" C1 "/d/e/c.json",
		 fx->hub, repo);
	assert_int_equal(symlink("../../elsewhere", path), 0);
	snprintf(path, sizeof(path), "%s/%s/refs/main", fx->hub, repo);
	{
		int fd = open(path, O_WRONLY | O_TRUNC);

		assert_true(fd >= 0);
		assert_int_equal(write(fd, C2 "\n", 41), 41);
		close(fd);
	}

	assert_int_equal(export(fx, "d/e/c.json", fx->blob_c), 0);
	snprintf(path, sizeof(path), "%s/%s/blobs/" OID_C, fx->hub, repo);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(stat(fx->blob_c, &sb), 0);
	assert_int_equal(st.st_ino, sb.st_ino);
	assert_int_equal(st.st_size, 7);
	snprintf(path, sizeof(path), "%s/%s/snapshots/" C1 "/d/e/c.json",
		 fx->hub, repo);
	read_link(path, link_, sizeof(link_));
	assert_string_equal(link_, "../../../../blobs/" OID_C);
	snprintf(path, sizeof(path), "%s/%s/refs/main", fx->hub, repo);
	read_small(path, buf, sizeof(buf));
	assert_string_equal(buf, C1);
	assert_contains(logged(), "not a file of 7 bytes");
	assert_no_leftovers(fx->dir);
}

static void test_export_copies(void **state)
{
	struct exp_fx *fx = *state;
	static const int errs[] = { EXDEV, EPERM };
	char path[PATH_MAX], buf[64];
	struct stat st, sb;
	size_t i;

	for (i = 0; i < 2; i++) {
		char cmd[PATH_MAX + 32];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->hub);
		assert_int_equal(system(cmd), 0);
		link_errno = errs[i];
		assert_int_equal(export(fx, "d/e/c.json", fx->blob_c), 0);
		snprintf(path, sizeof(path),
			 "%s/models--org--model/blobs/" OID_C, fx->hub);
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(stat(fx->blob_c, &sb), 0);
		assert_int_not_equal(st.st_ino, sb.st_ino); /* a copy */
		assert_int_equal(st.st_nlink, 1);
		read_small(path, buf, sizeof(buf));
		assert_string_equal(buf, "ccccccc");
		snprintf(path, sizeof(path),
			 "%s/models--org--model/"
			 "snapshots/" C1 "/d/e/c.json",
			 fx->hub);
		read_small(path, buf, sizeof(buf));
		assert_string_equal(buf, "ccccccc");
		assert_no_leftovers(fx->dir);
	}
	/* another link error is returned, nothing is left */
	{
		char cmd[PATH_MAX + 32];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->hub);
		assert_int_equal(system(cmd), 0);
	}
	link_errno = EIO;
	assert_int_equal(export(fx, "w.bin", fx->blob_a), -EIO);
	snprintf(path, sizeof(path), "%s/models--org--model/blobs/" SHA_A,
		 fx->hub);
	assert_int_equal(lstat(path, &st), -1);
	assert_no_leftovers(fx->dir);
}

static void test_export_refuses(void **state)
{
	struct exp_fx *fx = *state;
	struct source *http = NULL;
	char path[PATH_MAX], err[ERRLEN];
	struct stat st;
	uint64_t root = 0;

	/* a partial local copy never becomes a blob */
	put(fx->blob_a, 500, 'a');
	assert_int_equal(export(fx, "w.bin", fx->blob_a), -EINVAL);
	snprintf(path, sizeof(path), "%s/models--org--model/blobs/" SHA_A,
		 fx->hub);
	assert_int_equal(lstat(path, &st), -1);
	assert_int_equal(export(fx, "w.bin", "/nonexistent/blob"), -ENOENT);
	assert_int_equal(export(fx, "w.bin", fx->dir), -EINVAL);
	/* no hash to name the blob: never guessed */
	assert_int_equal(export(fx, "n.txt", fx->blob_c), -ENODATA);
	assert_int_equal(export(fx, "up.bin", fx->blob_c), -ENODATA);
	/* a folder, a bad index, no commit, another kind of source */
	assert_int_equal(hf_cache_export(fx->hub, fx->src, fx->m, root,
					 fx->blob_c),
			 -EINVAL);
	assert_int_equal(hf_cache_export(fx->hub, fx->src, fx->m, fx->m->n,
					 fx->blob_c),
			 -EINVAL);
	assert_int_equal(hf_cache_export("", fx->src, fx->m, 1, fx->blob_c),
			 -EINVAL);
	free(fx->src->version);
	fx->src->version = strdup("listing");
	assert_int_equal(export(fx, "d/e/c.json", fx->blob_c), -EINVAL);
	assert_int_equal(
		source_open("http://h/", NULL, &http, err, sizeof(err)), 0);
	http->version = strdup(C1);
	assert_int_equal(hf_cache_export(fx->hub, http, fx->m,
					 idx_of(fx->m, "d/e/c.json"),
					 fx->blob_c),
			 -EINVAL);
	source_free(http);
	/* a file where a folder must be */
	free(fx->src->version);
	fx->src->version = strdup(C1);
	{
		char cmd[PATH_MAX + 32];

		snprintf(cmd, sizeof(cmd),
			 "mkdir -p '%s/models--org--model/"
			 "snapshots/" C1 "'",
			 fx->hub);
		assert_int_equal(system(cmd), 0);
	}
	snprintf(path, sizeof(path), "%s/models--org--model/snapshots/" C1 "/d",
		 fx->hub);
	put(path, 1, 'x');
	assert_int_equal(export(fx, "d/e/c.json", fx->blob_c), -ENOTDIR);
	assert_contains(logged(), "cannot place 'd/e/c.json' in the "
				  "huggingface_hub cache");
	assert_no_leftovers(fx->dir);
}

struct racer {
	struct exp_fx *fx;
	int rc[8];
};

static void *race(void *arg)
{
	struct racer *r = arg;
	int i;

	for (i = 0; i < 8; i++)
		r->rc[i] = export(r->fx, i & 1 ? "w.bin" : "d/e/c.json",
				  i & 1 ? r->fx->blob_a : r->fx->blob_c);
	return NULL;
}

static void test_export_concurrent(void **state)
{
	struct exp_fx *fx = *state;
	struct racer r[8];
	pthread_t th[8];
	char path[PATH_MAX], link_[PATH_MAX];
	int i, j;

	for (i = 0; i < 8; i++) {
		r[i].fx = fx;
		assert_int_equal(pthread_create(&th[i], NULL, race, &r[i]), 0);
	}
	for (i = 0; i < 8; i++) {
		assert_int_equal(pthread_join(th[i], NULL), 0);
		for (j = 0; j < 8; j++)
			assert_int_equal(r[i].rc[j], 0);
	}
	snprintf(path, sizeof(path),
		 "%s/models--org--model/snapshots/" C1 "/w.bin", fx->hub);
	read_link(path, link_, sizeof(link_));
	assert_string_equal(link_, "../../blobs/" SHA_A);
	assert_no_leftovers(fx->dir);
}

static void test_cache_resolve_dir(void **state)
{
	static const char *vars[] = { "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE",
				      "HF_HOME", "XDG_CACHE_HOME", "HOME" };
	char *saved[5];
	char out[PATH_MAX], small[8];
	size_t i;

	for (i = 0; i < 5; i++) {
		const char *v = getenv(vars[i]);

		saved[i] = v ? strdup(v) : NULL;
		unsetenv(vars[i]);
	}
	assert_int_equal(hf_cache_resolve_dir(out, sizeof(out)), -ENOENT);
	setenv("HOME", "/home/u", 1);
	assert_int_equal(hf_cache_resolve_dir(out, sizeof(out)), 0);
	assert_string_equal(out, "/home/u/.cache/huggingface/hub");
	setenv("XDG_CACHE_HOME", "/xdg", 1);
	assert_int_equal(hf_cache_resolve_dir(out, sizeof(out)), 0);
	assert_string_equal(out, "/xdg/huggingface/hub");
	setenv("HF_HOME", "~/hf", 1);
	assert_int_equal(hf_cache_resolve_dir(out, sizeof(out)), 0);
	assert_string_equal(out, "/home/u/hf/hub");
	setenv("HUGGINGFACE_HUB_CACHE", "/legacy", 1);
	assert_int_equal(hf_cache_resolve_dir(out, sizeof(out)), 0);
	assert_string_equal(out, "/legacy");
	setenv("HF_HUB_CACHE", "/new", 1);
	assert_int_equal(hf_cache_resolve_dir(out, sizeof(out)), 0);
	assert_string_equal(out, "/new");
	setenv("HF_HUB_CACHE", "/a/long/path", 1);
	assert_int_equal(hf_cache_resolve_dir(small, sizeof(small)),
			 -ENAMETOOLONG);
	for (i = 0; i < 5; i++) {
		if (saved[i])
			setenv(vars[i], saved[i], 1);
		else
			unsetenv(vars[i]);
		free(saved[i]);
	}
}

/* ---- environment policy ------------------------------------------------ */

static const char *const hf_env_vars[] = {
	"HF_TOKEN",	  "HUGGING_FACE_HUB_TOKEN", "HF_TOKEN_PATH", "HF_HOME",
	"XDG_CACHE_HOME", "HF_HUB_OFFLINE",	    "HF_ENDPOINT",
};

/* A clean Hugging Face environment, HOME in a new temp folder dir. */
static void env_clean(char *dir, size_t len)
{
	size_t i;

	snprintf(dir, len, "/tmp/test_source_hf_env.XXXXXX");
	assert_non_null(mkdtemp(dir));
	for (i = 0; i < sizeof(hf_env_vars) / sizeof(hf_env_vars[0]); i++)
		unsetenv(hf_env_vars[i]);
	setenv("HOME", dir, 1);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
}

/* Opens spec with the environment policy on (as a mount does). */
static int open_env(const char *spec, const char *token_file,
		    struct source **src, char *err)
{
	struct source_opts o = { .env = true, .token_file = token_file };

	err[0] = '\0';
	return source_open(spec, &o, src, err, ERRLEN);
}

static void test_env_token_discovery(void **state)
{
	char dir[PATH_MAX], path[PATH_MAX + 32], err[ERRLEN];
	struct source *src = NULL;

	(void)state;
	env_clean(dir, sizeof(dir));
	/* Nothing anywhere: anonymous. */
	assert_int_equal(open_env("hf://gpt2", NULL, &src, err), 0);
	assert_null(src->auth);
	source_free(src);

	/* ~/.cache/huggingface/token, then $HF_HOME/token, then
	 * $HF_TOKEN_PATH, each beating the one before. */
	snprintf(path, sizeof(path), "%s/.cache", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/.cache/huggingface", dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/.cache/huggingface/token", dir);
	write_text(path, "  hf_home_default\n");
	assert_int_equal(open_env("hf://gpt2", NULL, &src, err), 0);
	assert_string_equal(src->auth, "Authorization: Bearer hf_home_default");
	source_free(src);

	snprintf(path, sizeof(path), "%s/token", dir);
	write_text(path, "hf_from_hf_home\n");
	setenv("HF_HOME", dir, 1);
	assert_int_equal(open_env("hf://gpt2", NULL, &src, err), 0);
	assert_string_equal(src->auth, "Authorization: Bearer hf_from_hf_home");
	source_free(src);

	snprintf(path, sizeof(path), "%s/other", dir);
	write_text(path, "hf_from_path");
	setenv("HF_TOKEN_PATH", path, 1);
	assert_int_equal(open_env("hf://gpt2", NULL, &src, err), 0);
	assert_string_equal(src->auth, "Authorization: Bearer hf_from_path");
	source_free(src);

	/* The variables beat the files, HF_TOKEN first; line breaks go, as
	 * huggingface_hub drops them. */
	setenv("HUGGING_FACE_HUB_TOKEN", "hf_legacy", 1);
	assert_int_equal(open_env("hf://gpt2", NULL, &src, err), 0);
	assert_string_equal(src->auth, "Authorization: Bearer hf_legacy");
	source_free(src);
	setenv("HF_TOKEN", " hf_var\r\n", 1);
	assert_int_equal(open_env("hf://gpt2", NULL, &src, err), 0);
	assert_string_equal(src->auth, "Authorization: Bearer hf_var");
	source_free(src);

	/* -o token_file= beats them all, for any scheme. */
	snprintf(path, sizeof(path), "%s/chosen", dir);
	write_text(path, "\nchosen\n");
	assert_int_equal(open_env("hf://gpt2", path, &src, err), 0);
	assert_string_equal(src->auth, "Authorization: Bearer chosen");
	source_free(src);

	/* A Hub token never goes to another server. */
	assert_int_equal(open_env("http://h/m/", NULL, &src, err), 0);
	assert_null(src->auth);
	source_free(src);

	/* Without the environment policy (tools, tests): none of it. */
	assert_int_equal(source_open("hf://gpt2", NULL, &src, err, ERRLEN), 0);
	assert_null(src->auth);
	source_free(src);
	rm_rf(dir);
}

static void test_env_token_file_errors(void **state)
{
	char dir[PATH_MAX], path[PATH_MAX + 32], err[ERRLEN];
	struct source *src = (void *)1;

	(void)state;
	env_clean(dir, sizeof(dir));
	snprintf(path, sizeof(path), "%s/empty", dir);
	write_text(path, " \n\t\n");
	assert_int_equal(open_env("hf://gpt2", path, &src, err), -ENODATA);
	assert_null(src);
	assert_contains(err, "token file '");
	assert_contains(err, "' is empty");

	snprintf(path, sizeof(path), "%s/missing", dir);
	assert_int_equal(open_env("http://h/", path, &src, err), -ENOENT);
	assert_null(src);
	assert_contains(err, "cannot read token file '");
	assert_contains(err, "': No such file or directory");

	/* A broken default file is no error: anonymous, as the Hub tools. */
	assert_int_equal(mkdir(path, 0700), 0); /* a folder */
	setenv("HF_TOKEN_PATH", path, 1);
	assert_int_equal(open_env("hf://gpt2", NULL, &src, err), 0);
	assert_null(src->auth);
	source_free(src);

	/* A second line in the variable is refused, never echoed. */
	setenv("HF_TOKEN",
	       "hf_a\x01"
	       "b",
	       1);
	assert_int_equal(open_env("hf://gpt2", NULL, &src, err), -EINVAL);
	assert_null(strstr(err, "hf_a"));
	unsetenv("HF_TOKEN");
	unsetenv("HF_TOKEN_PATH");
	rm_rf(dir);
}

static void test_env_offline_and_endpoint(void **state)
{
	static const struct {
		const char *value;
		bool offline;
	} cases[] = {
		{ "1", true },	  { "true", true }, { "YES", true },
		{ "on", true },	  { "0", false },   { "", false },
		{ "off", false },
	};
	char dir[PATH_MAX], err[ERRLEN];
	struct source *src = NULL;
	size_t i;

	(void)state;
	env_clean(dir, sizeof(dir));
	assert_int_equal(open_env("hf://gpt2", NULL, &src, err), 0);
	assert_false(source_env_offline(src));
	source_free(src);
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		setenv("HF_HUB_OFFLINE", cases[i].value, 1);
		assert_int_equal(open_env("hf://gpt2", NULL, &src, err), 0);
		assert_int_equal(source_env_offline(src), cases[i].offline);
		source_free(src);
		/* Only the Hub's own sources read it. */
		assert_int_equal(open_env("http://h/", NULL, &src, err), 0);
		assert_false(source_env_offline(src));
		source_free(src);
	}

	setenv("HF_ENDPOINT", "http://mirror.test/", 1);
	assert_int_equal(open_env("hf://gpt2", NULL, &src, err), 0);
	assert_string_equal(src->cache_key,
			    "hf:http://mirror.test/models/gpt2");
	source_free(src);
	setenv("HF_ENDPOINT", "", 1); /* empty: the default */
	assert_int_equal(open_env("hf://gpt2", NULL, &src, err), 0);
	assert_string_equal(src->cache_key,
			    "hf:https://huggingface.co/models/gpt2");
	source_free(src);
	unsetenv("HF_ENDPOINT");
	unsetenv("HF_HUB_OFFLINE");
	rm_rf(dir);
}

static void test_hf_cache_option(void **state)
{
	const struct source_option opt = { "hf_cache", "rel/hub" };
	struct source_opts o = { .options = &opt, .noptions = 1 };
	struct source *src = (void *)1;
	char err[ERRLEN] = "";

	(void)state;
	assert_int_equal(source_option_check("hf_cache", "/x", err, ERRLEN), 0);
	assert_int_equal(source_option_check("hf_cache", "", err, ERRLEN),
			 -EINVAL);
	assert_string_equal(err, "bad value '' for option hf_cache: expected "
				 "a folder");
	assert_int_equal(source_option_check("allow_other", "", err, ERRLEN),
			 1);

	assert_int_equal(source_open("hf://gpt2", &o, &src, err, ERRLEN), 0);
	source_free(src);
	/* Other schemes refuse it: a usage error. */
	assert_int_equal(source_open("http://h/", &o, &src, err, ERRLEN),
			 -ENOPROTOOPT);
	assert_null(src);
	assert_string_equal(err, "bad value 'rel/hub' for option hf_cache: "
				 "only hf:// sources have a huggingface_hub "
				 "cache");
	assert_int_equal(source_open("file:///tmp", &o, &src, err, ERRLEN),
			 -ENOPROTOOPT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define F(name) cmocka_unit_test_setup_teardown(name, fake_setup, fake_teardown)
#define T(name) cmocka_unit_test_setup_teardown(name, tree_setup, tree_teardown)
#define X(name) cmocka_unit_test_setup_teardown(name, exp_setup, exp_teardown)
		F(test_parse_forms),
		F(test_parse_malformed),
		F(test_open_fields),
		F(test_open_errors),
		F(test_urls),
		F(test_revision_parse),
		T(test_tree_page),
		T(test_tree_hostile),
		T(test_tree_subdir),
		T(test_tree_redacted_and_bad),
		T(test_tree_caps),
		F(test_map_error),
		F(test_list_paginated),
		F(test_list_revisions_and_types),
		F(test_list_pagination_loop),
		F(test_list_next_elsewhere),
		F(test_list_next_not_http),
		F(test_list_gated_probe),
		F(test_list_errors),
		F(test_list_without_engine),
		F(test_list_cap),
		F(test_target_hf),
		F(test_target_identity_has_origin),
		F(test_snapshot_pinned_offline),
		X(test_export_layout),
		X(test_export_subdir_and_refs),
		X(test_export_replaces_wrong),
		X(test_export_copies),
		X(test_export_refuses),
		X(test_export_concurrent),
		F(test_cache_resolve_dir),
		F(test_env_token_discovery),
		F(test_env_token_file_errors),
		F(test_env_offline_and_endpoint),
		F(test_hf_cache_option),
#undef F
#undef T
#undef X
	};

	return cmocka_run_group_tests_name("source_hf", tests, NULL, NULL);
}
