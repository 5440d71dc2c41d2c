/*
 * source_http.c: SOURCE http(s)://HOST[:PORT]/PATH (DESIGN.md "Sources").
 *
 * A URL ending in '/' is a folder served as an nginx JSON autoindex or an
 * HTML index page (nginx, Apache); its sub-folders are walked breadth
 * first, each listing with one GET. Sizes come from the JSON listing, or
 * for HTML pages from HEAD requests, at most max_inflight (-o
 * connections) in flight, which also bring ETags and Last-Modified. Any
 * other URL is one file, mounted in a folder of its own, unless the
 * server redirects it to the same URL plus '/'.
 *
 * Bounded for hostile listings: one listing page is held at a time, the
 * manifest is the walk's queue (nothing else is kept per entry), and a
 * listing with more than max_entries entries fails with one line; names
 * that are unsafe, duplicated or too deep never reach the tree, each
 * with a warning (at most WARN_SKIPS_MAX per folder, then one count).
 *
 * Every child URL is built from the SOURCE's own URL (never from where a
 * redirect went), so the token only ever goes to the origin host; the
 * engine follows redirects for each request.
 *
 * Lock order: heads->lock only, held for its list of answered HEADs,
 * never across a request.
 */
#include "fetch/source.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetch/dirindex.h"
#include "fetch/engine.h"
#include "fetch/http.h"
#include "fetch/source_i.h"
#include "state/hlog.h"
#include "state/manifest.h"

struct source_http {
	struct source base; /* first */
	char *url; /* normalized SOURCE URL (owned) */
};

/* ---- URLs ------------------------------------------------------------- */

#define HTTP_FORM "http://HOST[:PORT]/PATH"

struct url_buf {
	char *s;
	size_t len, alloc;
	bool oom;
};

static void ub_add(struct url_buf *b, const char *s, size_t len)
{
	if (b->oom)
		return;
	if (b->len + len + 1 > b->alloc) {
		size_t alloc = (b->len + len + 1) * 2;
		char *grown = realloc(b->s, alloc);

		if (!grown) {
			b->oom = true;
			return;
		}
		b->s = grown;
		b->alloc = alloc;
	}
	memcpy(b->s + b->len, s, len);
	b->len += len;
	b->s[b->len] = '\0';
}

static void ub_str(struct url_buf *b, const char *s)
{
	ub_add(b, s, strlen(s));
}

static bool host_char(unsigned char ch)
{
	return isascii(ch) &&
	       (isalnum(ch) || ch == '-' || ch == '.' || ch == '_');
}

/*
 * Normalizes an http(s) URL: lowercase scheme and host, no default port,
 * every path component decoded and escaped again (url_escape_component),
 * empty components dropped, the trailing '/' kept. Returns 0 and a new
 * *out, -EINVAL with one line in err, or -ENOMEM.
 */
static int http_normalize(const char *spec, char **out, char *err,
			  size_t errlen)
{
	struct url_buf b = { 0 };
	const char *p = spec, *auth, *auth_end, *host_end, *port = NULL;
	char scheme[8];
	bool https, trailing;
	size_t i;
	int rc = -EINVAL;

	*out = NULL;
	for (i = 0; i < sizeof(scheme) - 1 && p[i] && p[i] != ':'; i++)
		scheme[i] = (char)tolower((unsigned char)p[i]);
	scheme[i] = '\0';
	https = !strcmp(scheme, "https");
	if ((!https && strcmp(scheme, "http")) || p[i] != ':') {
		snprintf(err, errlen, "malformed SOURCE '%s': expected %s",
			 spec, HTTP_FORM);
		return -EINVAL;
	}
	p += i + 1;
	if (strncmp(p, "//", 2)) {
		snprintf(err, errlen,
			 "malformed SOURCE '%s': expected "
			 "%s://HOST[:PORT]/PATH",
			 spec, https ? "https" : "http");
		return -EINVAL;
	}
	auth = p + 2;
	auth_end = auth + strcspn(auth, "/?#");
	if (memchr(auth, '@', (size_t)(auth_end - auth))) {
		/* Not echoed: it may hold a password. */
		snprintf(err, errlen,
			 "malformed SOURCE: credentials in the URL are not "
			 "supported (set a token with -o token_file=)");
		return -EINVAL;
	}
	if (auth == auth_end) {
		snprintf(err, errlen,
			 "malformed SOURCE '%s': no host (expected %s)", spec,
			 HTTP_FORM);
		return -EINVAL;
	}
	if (*auth == '[') {
		host_end = memchr(auth, ']', (size_t)(auth_end - auth));
		if (!host_end || host_end == auth + 1)
			goto bad_host;
		for (p = auth + 1; p < host_end; p++)
			if (!isxdigit((unsigned char)*p) && *p != ':' &&
			    *p != '.')
				goto bad_host;
		host_end++;
	} else {
		for (host_end = auth;
		     host_end < auth_end && host_char((unsigned char)*host_end);
		     host_end++)
			;
		if (host_end == auth)
			goto bad_host;
	}
	if (host_end < auth_end) {
		unsigned long v = 0;

		if (*host_end != ':' || host_end + 1 == auth_end ||
		    auth_end - host_end > 6)
			goto bad_host;
		for (p = host_end + 1; p < auth_end; p++) {
			if (!isdigit((unsigned char)*p))
				goto bad_host;
			v = v * 10 + (unsigned long)(*p - '0');
		}
		if (v < 1 || v > 65535)
			goto bad_host;
		if (v != (https ? 443UL : 80UL))
			port = host_end;
	}
	if (strpbrk(auth_end, "?#")) {
		snprintf(err, errlen,
			 "malformed SOURCE '%s': query strings and fragments "
			 "are not supported",
			 spec);
		return -EINVAL;
	}
	ub_str(&b, scheme);
	ub_str(&b, "://");
	for (p = auth; p < host_end; p++) {
		char ch = (char)tolower((unsigned char)*p);

		ub_add(&b, &ch, 1);
	}
	if (port)
		ub_add(&b, port, (size_t)(auth_end - port));
	ub_str(&b, "/");
	p = auth_end;
	trailing = !*p || p[strlen(p) - 1] == '/';
	while (*p) {
		size_t n, dlen;
		char *dec, *esc;

		while (*p == '/')
			p++;
		n = strcspn(p, "/");
		if (!n)
			break;
		rc = dirindex_unescape(p, n, &dec, &dlen);
		if (rc == -EINVAL) {
			snprintf(err, errlen,
				 "malformed SOURCE '%s': bad "
				 "percent-escape in the path (write '%%' as "
				 "%%25)",
				 spec);
			goto fail;
		}
		if (rc)
			goto fail;
		if (!strcmp(dec, ".") || !strcmp(dec, "..")) {
			free(dec);
			snprintf(err, errlen,
				 "malformed SOURCE '%s': '.' and "
				 "'..' are not allowed in the path",
				 spec);
			rc = -EINVAL;
			goto fail;
		}
		esc = dirindex_escape(dec, dlen);
		free(dec);
		if (!esc) {
			rc = -ENOMEM;
			goto fail;
		}
		if (b.len && b.s[b.len - 1] != '/')
			ub_str(&b, "/");
		ub_str(&b, esc);
		free(esc);
		p += n;
	}
	if (trailing && b.s && b.s[b.len - 1] != '/')
		ub_str(&b, "/");
	if (b.oom) {
		rc = -ENOMEM;
		goto fail;
	}
	*out = b.s;
	return 0;
bad_host:
	snprintf(err, errlen,
		 "malformed SOURCE '%s': bad host or port "
		 "(expected %s)",
		 spec, HTTP_FORM);
fail:
	free(b.s);
	return rc;
}

static char *printable(const char *name, char *buf, size_t buflen)
{
	return dirindex_printable(name, strlen(name), buf, buflen);
}

static bool ends_with_slash(const char *s)
{
	size_t n = strlen(s);

	return n && s[n - 1] == '/';
}

/* ---- errors ----------------------------------------------------------- */

/*
 * Turns a failed or unexpected answer for url into one line in err and a
 * negative errno. rc is what engine_http returned.
 */
static int answer_error(const struct source_http *h, const char *url,
			const struct http_result *res, int rc, char *err,
			size_t errlen)
{
	int status_err = http_status_errno(res->status);

	if (status_err == -ENOENT) {
		snprintf(err, errlen, "'%s' not found (HTTP %ld)", url,
			 res->status);
		return status_err;
	}
	if (status_err == -EACCES) {
		if (h->base.auth)
			snprintf(err, errlen,
				 "'%s': access denied (HTTP %ld): "
				 "the server refused the token",
				 url, res->status);
		else
			snprintf(err, errlen,
				 "'%s': access denied (HTTP %ld): "
				 "set a token with -o token_file=",
				 url, res->status);
		return status_err;
	}
	if (status_err) {
		snprintf(err, errlen, "'%s' failed: HTTP %ld", url,
			 res->status);
		return rc ? rc : status_err;
	}
	if (source_err_is_network(rc)) {
		snprintf(err, errlen, "cannot reach '%s': %s", url,
			 strerror(-rc));
		return rc;
	}
	if (rc == -EFBIG) {
		snprintf(err, errlen, "'%s' failed: the answer is too large",
			 url);
		return rc;
	}
	if (rc) {
		snprintf(err, errlen, "'%s' failed: %s", url, strerror(-rc));
		return rc;
	}
	if (res->status && (res->status < 200 || res->status >= 300)) {
		snprintf(err, errlen, "'%s' failed: unexpected HTTP %ld", url,
			 res->status);
		return -EPROTO;
	}
	return 0;
}

/* ---- the walk --------------------------------------------------------- */

/*
 * The walk is breadth first with the manifest as its queue: folder
 * entries are listed in the order they were added, so nothing is kept per
 * entry but the manifest entry. One listing page is held at a time, and
 * at most max_inflight HEAD requests of it are in flight; a HEAD job
 * (its URL and answer) lives only while it is in flight.
 */
#define WARN_SKIPS_MAX 20 /* skip warnings per folder, then one count */

struct walk {
	struct source_http *h;
	struct engine *e;
	struct manifest *m;
	const char *root_url; /* the folder of manifest path "" */
	size_t skipped; /* entries skipped in this folder */
	char *err;
	size_t errlen;
};

/* Entries in the manifest, the root excluded. */
static size_t walk_count(const struct walk *w)
{
	return w->m->n - 1;
}

/* The over-limit failure: one line naming the limit. */
static int walk_too_many(struct walk *w)
{
	snprintf(w->err, w->errlen,
		 "listing '%s' failed: more than %zu entries (raise the "
		 "limit with -o max_entries=N)",
		 w->h->url, w->h->base.max_entries);
	return -EFBIG;
}

/*
 * One warning per skipped entry, up to WARN_SKIPS_MAX per folder: with
 * kind "skipping duplicate name 'x'", else "skipping 'x': why". The rest
 * are counted in one line by walk_skips_done.
 */
static void walk_skip(struct walk *w, const char *folder_url, const char *kind,
		      const char *name, const char *why)
{
	char shown[200];

	if (w->skipped++ >= WARN_SKIPS_MAX)
		return;
	printable(name, shown, sizeof(shown));
	if (kind)
		hlog(HLOG_WARN, HLOG_FETCH, "listing of '%s': skipping %s '%s'",
		     folder_url, kind, shown);
	else
		hlog(HLOG_WARN, HLOG_FETCH,
		     "listing of '%s': skipping '%s': %s", folder_url, shown,
		     why);
}

static void walk_skips_done(struct walk *w, const char *folder_url)
{
	if (w->skipped > WARN_SKIPS_MAX)
		hlog(HLOG_WARN, HLOG_FETCH,
		     "listing of '%s': skipped %zu more entries", folder_url,
		     w->skipped - WARN_SKIPS_MAX);
	w->skipped = 0;
}

/* Adds one entry; a duplicate name (or a file where a folder is) is
 * skipped with a warning. Returns 0 (also when skipped), -EFBIG past
 * max_entries (with its line), or a fatal error. */
static int walk_add(struct walk *w, const char *folder_url, const char *path,
		    enum mentry_type type, uint64_t size, int64_t mtime,
		    const char *etag, const char *url)
{
	int err;

	if (walk_count(w) >= w->h->base.max_entries)
		return walk_too_many(w);
	if (mtime == DIRINDEX_MTIME_UNKNOWN)
		mtime = 0;
	err = manifest_add(w->m, path, type, size, mtime, etag,
			   etag ? "etag" : NULL, url);
	if (err == -EEXIST || err == -ENOTDIR || err == -EINVAL) {
		walk_skip(w, folder_url,
			  err == -EINVAL ? "unusable path" : "duplicate name",
			  path, NULL);
		return 0;
	}
	return err;
}

/* Depth of a manifest path: "" 0, "a" 1, "a/b" 2. */
static int path_depth(const char *path)
{
	int depth = *path ? 1 : 0;

	for (; *path; path++)
		depth += *path == '/';
	return depth;
}

/* Adds folder path (its last component name, listed in folder_url): it
 * is listed later unless it is deeper than max_depth (one warning). */
static int walk_add_folder(struct walk *w, const char *folder_url,
			   const char *path, const char *name, int64_t mtime)
{
	char shown[200];
	int rc;

	rc = walk_add(w, folder_url, path, MENTRY_DIR, 0, mtime, NULL, NULL);
	if (!rc && path_depth(path) > w->h->base.max_depth)
		hlog(HLOG_WARN, HLOG_FETCH,
		     "listing of '%s': not entering '%s': more than %d "
		     "folders deep",
		     folder_url, printable(name, shown, sizeof(shown)),
		     w->h->base.max_depth);
	return rc;
}

/* The URL of manifest path under root (every component escaped), with a
 * trailing '/' for a folder; NULL when out of memory. */
static char *path_url(const char *root, const char *path, bool is_dir)
{
	struct url_buf b = { 0 };
	const char *p = path;

	ub_str(&b, root);
	while (*p) {
		size_t n = strcspn(p, "/");
		char *esc = dirindex_escape(p, n);

		if (!esc) {
			b.oom = true;
			break;
		}
		ub_str(&b, esc);
		free(esc);
		p += n;
		if (*p == '/' || (is_dir && !*p))
			ub_str(&b, "/");
		if (*p)
			p++;
	}
	if (b.oom) {
		free(b.s);
		return NULL;
	}
	return b.s;
}

/* A HEAD request of one file; lives while it is in flight. */
struct head_job {
	struct head_job *next; /* on heads->done */
	struct heads *heads;
	const struct dirindex_entry *en; /* in the folder's listing */
	char *url;
	char *path;
	struct http_result res; /* set by head_done */
};

/*
 * The HEAD requests of one folder: at most max_inflight in flight. The
 * engine thread puts answered jobs on done; the listing thread takes them
 * off and uses them. Lock order: heads->lock only, held for the list,
 * never across a request.
 */
struct heads {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct head_job *done; /* answered, not yet used; protected by
				 * lock */
	size_t inflight; /* submitted, not yet used; listing thread
				 * only */
	int fatal; /* the first fatal error; listing thread only */
};

static void head_job_free(struct head_job *j)
{
	free(j->url);
	free(j->path);
	http_result_release(&j->res);
	free(j);
}

static void head_done(void *arg, struct http_result *res)
{
	struct head_job *j = arg;
	struct heads *hs = j->heads;

	j->res = *res; /* takes the strings */
	pthread_mutex_lock(&hs->lock);
	j->next = hs->done;
	hs->done = j;
	pthread_cond_signal(&hs->cond);
	pthread_mutex_unlock(&hs->lock);
}

/* Size, ETag and mtime of one file from its HEAD answer; false (with a
 * warning) when the file can't be mounted. *fatal receives a network
 * error, which fails the whole listing. */
static bool head_use(struct walk *w, const char *folder_url, struct head_job *j,
		     uint64_t *size, int64_t *mtime, int *fatal)
{
	char line[1024];
	int64_t t;
	int err;

	*fatal = 0;
	err = answer_error(w->h, j->url, &j->res, j->res.err, line,
			   sizeof(line));
	if (err && source_err_is_network(err)) {
		snprintf(w->err, w->errlen, "%s", line);
		*fatal = err;
		return false;
	}
	if (err && !(j->en->size >= 0 && err != -ENOENT && err != -EACCES)) {
		walk_skip(w, folder_url, NULL, j->en->name, line);
		return false;
	}
	*mtime = j->en->mtime;
	if (!err && j->res.last_modified &&
	    !http_parse_date(j->res.last_modified, &t))
		*mtime = t;
	if (!err && j->res.content_length >= 0) {
		*size = (uint64_t)j->res.content_length;
		return true;
	}
	if (j->en->size >= 0) {
		*size = (uint64_t)j->en->size; /* from the listing */
		return true;
	}
	walk_skip(w, folder_url, NULL, j->en->name,
		  "its size is unknown (no Content-Length)");
	return false;
}

/* True when the server answered for url with url + "/" (a folder). */
static bool redirected_to_folder(const char *url, const char *answered)
{
	char *norm = NULL, line[8];
	size_t n = strlen(url);
	bool yes;

	if (!answered || http_normalize(answered, &norm, line, sizeof(line)))
		return false;
	yes = strlen(norm) == n + 1 && !strncmp(norm, url, n) && norm[n] == '/';
	free(norm);
	return yes;
}

/* Adds the file of an answered HEAD (or the folder it was redirected
 * to). 0 (also when skipped) or a fatal error. */
static int head_finish(struct walk *w, const char *folder_url,
		       struct head_job *j)
{
	const char *etag;
	uint64_t size = 0;
	int64_t mtime = 0;
	int fatal;

	if (!j->res.err && redirected_to_folder(j->url, j->res.url))
		return walk_add_folder(w, folder_url, j->path, j->en->name,
				       j->en->mtime);
	if (!head_use(w, folder_url, j, &size, &mtime, &fatal))
		return fatal;
	etag = j->res.err ? NULL : j->res.etag;
	return walk_add(w, folder_url, j->path, MENTRY_FILE, size, mtime, etag,
			j->url);
}

/*
 * Uses the answered HEADs, after waiting for one when wait is set (and
 * one is in flight). After a fatal error the rest are only freed.
 */
static void heads_collect(struct walk *w, struct heads *hs,
			  const char *folder_url, bool wait)
{
	struct head_job *j, *next;

	pthread_mutex_lock(&hs->lock);
	while (wait && hs->inflight && !hs->done)
		pthread_cond_wait(&hs->cond, &hs->lock);
	j = hs->done;
	hs->done = NULL;
	pthread_mutex_unlock(&hs->lock);
	for (; j; j = next) {
		next = j->next;
		hs->inflight--;
		if (!hs->fatal)
			hs->fatal = head_finish(w, folder_url, j);
		head_job_free(j);
	}
}

/* Waits for every HEAD in flight and uses its answer. */
static void heads_drain(struct walk *w, struct heads *hs,
			const char *folder_url)
{
	while (hs->inflight)
		heads_collect(w, hs, folder_url, true);
}

/*
 * Sends a HEAD for file en (url and path taken), once fewer than
 * max_inflight are in flight. (The listing has room for it: a page is
 * parsed with at most the room left.) 0 or a fatal error (in hs->fatal
 * too).
 */
static int head_submit(struct walk *w, struct heads *hs, const char *folder_url,
		       const struct dirindex_entry *en, char *url, char *path)
{
	struct http_req req = { .url = url,
				.auth = w->h->base.auth,
				.head = true };
	struct head_job *j = NULL;
	int err;

	heads_collect(w, hs, folder_url, false);
	while (!hs->fatal && hs->inflight >= (size_t)w->h->base.max_inflight)
		heads_collect(w, hs, folder_url, true);
	if (hs->fatal)
		goto out_free;
	j = calloc(1, sizeof(*j));
	if (!j) {
		hs->fatal = -ENOMEM;
		goto out_free;
	}
	j->heads = hs;
	j->en = en;
	j->url = url;
	j->path = path;
	j->res.content_length = -1;
	j->res.linked_size = -1;
	hs->inflight++;
	err = engine_http_submit(w->e, &req, head_done, j);
	if (err) {
		hs->inflight--;
		snprintf(w->err, w->errlen, "listing of '%s' failed: %s",
			 folder_url, strerror(-err));
		hs->fatal = err;
		head_job_free(j);
	}
	return hs->fatal;
out_free:
	free(url);
	free(path);
	return hs->fatal;
}

/* GETs the folder's listing and parses it, keeping at most max entries
 * (more: (*out)->truncated). */
static int fetch_listing(struct walk *w, const char *url, size_t max,
			 struct dirindex **out, bool *is_html)
{
	struct http_req req = { .url = url, .auth = w->h->base.auth };
	struct http_result res;
	const char *p;
	int rc;

	*out = NULL;
	*is_html = false;
	rc = engine_http(w->e, &req, &res);
	rc = answer_error(w->h, url, &res, rc, w->err, w->errlen);
	if (rc)
		goto out;
	for (p = res.body;
	     p && p < res.body + res.body_len && isspace((unsigned char)*p);
	     p++)
		;
	rc = -EBADMSG;
	if (p && p < res.body + res.body_len && *p == '[')
		rc = dirindex_parse_json(res.body, res.body_len, url, max, out);
	if (rc == -EBADMSG && res.body) {
		*is_html = true;
		rc = dirindex_parse_html(res.body, res.body_len, url, max, out);
		if (!rc && !(*out)->nlinks) {
			dirindex_free(*out);
			*out = NULL;
			rc = -ENOTDIR;
		}
	}
	if (rc == -EBADMSG || rc == -ENOTDIR) {
		snprintf(w->err, w->errlen,
			 "'%s' is not a folder index (expected nginx JSON "
			 "autoindex or an HTML index page)",
			 url);
		rc = -ENOTDIR;
	} else if (rc) {
		snprintf(w->err, w->errlen, "listing of '%s' failed: %s", url,
			 strerror(-rc));
	}
out:
	http_result_release(&res);
	return rc;
}

/*
 * Entry en of the folder at path fpath (URL furl): added as a file or a
 * folder, or left to a HEAD request. 0 (also when skipped) or a fatal
 * error.
 */
static int folder_entry(struct walk *w, const char *furl, const char *fpath,
			const struct dirindex_entry *en, bool is_html,
			struct heads *hs)
{
	char *url = NULL, *path, *esc;
	int rc = -ENOMEM;

	path = *fpath ? source_join(fpath, "/", en->name, "") :
			strdup(en->name);
	if (!path)
		return -ENOMEM;
	if (en->is_dir) {
		rc = walk_add_folder(w, furl, path, en->name, en->mtime);
		goto out_free;
	}
	esc = url_escape_component(en->name);
	if (esc)
		url = source_join(furl, "", esc, "");
	free(esc);
	if (!url)
		goto out_free;
	if (is_html || en->size < 0) /* HTML, or JSON without a size */
		return head_submit(w, hs, furl, en, url, path); /* takes both */
	rc = walk_add(w, furl, path, MENTRY_FILE, (uint64_t)en->size, en->mtime,
		      NULL, url);
out_free:
	free(url);
	free(path);
	return rc;
}

/* Lists the folder at manifest path fpath: adds its entries. */
static int walk_folder(struct walk *w, const char *fpath)
{
	struct heads hs = { .inflight = 0 };
	struct dirindex *d = NULL;
	size_t i, room;
	char *furl;
	bool is_html;
	int rc;

	furl = path_url(w->root_url, fpath, true);
	if (!furl)
		return -ENOMEM;
	room = w->h->base.max_entries - walk_count(w);
	rc = fetch_listing(w, furl, room, &d, &is_html);
	if (rc && *fpath && rc != -ENOMEM && !source_err_is_network(rc)) {
		/* One bad sub-folder: shown empty, the rest goes on. */
		hlog(HLOG_WARN, HLOG_FETCH, "skipping folder: %s", w->err);
		w->err[0] = '\0';
		rc = 0;
		goto out;
	}
	if (rc)
		goto out;
	if (d->truncated) {
		rc = walk_too_many(w);
		goto out;
	}
	pthread_mutex_init(&hs.lock, NULL);
	pthread_cond_init(&hs.cond, NULL);
	for (i = 0; i < d->n && !rc; i++)
		rc = folder_entry(w, furl, fpath, &d->entries[i], is_html, &hs);
	if (rc && !hs.fatal)
		hs.fatal = rc; /* the answers still in flight are dropped */
	/* Every submitted request calls back, even on shutdown. */
	heads_drain(w, &hs, furl);
	pthread_cond_destroy(&hs.cond);
	pthread_mutex_destroy(&hs.lock);
	if (!rc)
		rc = hs.fatal;
	walk_skips_done(w, furl);
out:
	dirindex_free(d);
	free(furl);
	return rc;
}

/* Lists every folder of the manifest in the order they were added
 * (breadth first), the root first, down to max_depth. */
static int list_tree(struct walk *w, const char *root_url)
{
	size_t i;
	int rc = 0;

	w->root_url = root_url;
	for (i = 0; !rc && i < w->m->n; i++) {
		const struct mentry *en = &w->m->entries[i];
		char *path;

		if (en->type != MENTRY_DIR ||
		    path_depth(en->path) > w->h->base.max_depth)
			continue;
		/* en moves when the manifest grows: list a copy of its
		 * path. */
		path = strdup(en->path);
		if (!path)
			return -ENOMEM;
		rc = walk_folder(w, path);
		free(path);
	}
	return rc;
}

/* A URL not ending in '/': one file, or a folder reached by redirect. */
static int list_single(struct walk *w, const char *url)
{
	struct http_req req = { .url = url,
				.auth = w->h->base.auth,
				.head = true };
	struct http_result res;
	const char *slash = strrchr(url, '/');
	char *name = NULL, *folder = NULL;
	int64_t mtime = 0, t;
	int rc;

	rc = engine_http(w->e, &req, &res);
	if (!rc && redirected_to_folder(url, res.url)) {
		folder = source_join(url, "", "", "/");
		rc = folder ? list_tree(w, folder) : -ENOMEM;
		goto out;
	}
	rc = answer_error(w->h, url, &res, rc, w->err, w->errlen);
	if (rc)
		goto out;
	if (res.content_length < 0) {
		snprintf(w->err, w->errlen,
			 "'%s' has no Content-Length: its "
			 "size is unknown",
			 url);
		rc = -EPROTO;
		goto out;
	}
	name = strdup(slash + 1);
	if (!name) {
		rc = -ENOMEM;
		goto out;
	}
	if (url_unescape(name) || !manifest_name_ok(name)) {
		snprintf(w->err, w->errlen,
			 "'%s': its name cannot be a file "
			 "name",
			 url);
		rc = -EINVAL;
		goto out;
	}
	if (res.last_modified && !http_parse_date(res.last_modified, &t))
		mtime = t;
	rc = walk_add(w, url, name, MENTRY_FILE, (uint64_t)res.content_length,
		      mtime, res.etag, url);
out:
	free(folder);
	free(name);
	http_result_release(&res);
	return rc;
}

/* ---- the scheme ------------------------------------------------------- */

static void http_free(struct source *src)
{
	struct source_http *h = (struct source_http *)src;

	free(h->url);
	free(h);
}

static int http_open(const char *spec, const struct source_opts *o,
		     struct source **out, char *err, size_t errlen)
{
	struct source_http *h;
	int rc;

	h = (struct source_http *)source_alloc(sizeof(*h), &source_http_ops,
					       "http", spec, o);
	if (!h)
		return source_open_done(NULL, -ENOMEM, out, err, errlen);
	rc = http_normalize(spec, &h->url, err, errlen);
	if (!rc) {
		h->base.cache_key = strdup(h->url);
		if (!h->base.cache_key)
			rc = -ENOMEM;
	}
	if (!rc)
		rc = source_set_token(&h->base, o->token, err, errlen);
	return source_open_done(&h->base, rc, out, err, errlen);
}

static int http_list(struct source *src, struct engine *e,
		     struct manifest **out, char *err, size_t errlen)
{
	struct source_http *h = (struct source_http *)src;
	struct walk w = { .h = h, .e = e, .err = err, .errlen = errlen };
	int rc;

	*out = NULL;
	if (errlen)
		err[0] = '\0';
	if (!e) {
		snprintf(err, errlen, "listing '%s' needs the network engine",
			 h->url);
		return -EINVAL;
	}
	rc = manifest_new(&w.m);
	if (rc)
		goto out;
	if (ends_with_slash(h->url))
		rc = list_tree(&w, h->url);
	else
		rc = list_single(&w, h->url);
	if (!rc)
		rc = source_list_finish(src, w.m, "listing");
	if (rc)
		goto out;
	hlog(HLOG_INFO, HLOG_FETCH, "listed '%s': %zu files, %" PRIu64 " bytes",
	     h->url, manifest_file_count(w.m), manifest_total_bytes(w.m));
	*out = w.m;
	w.m = NULL;
out:
	source_list_failed(h->url, rc, err, errlen);
	manifest_free(w.m);
	return rc;
}

const struct source_ops source_http_ops = {
	.scheme = "http",
	.open = http_open,
	.list = http_list,
	.target = source_url_target,
	.auth = source_bearer_auth,
	.free = http_free,
};
