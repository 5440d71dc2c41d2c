/*
 * source_http.c: SOURCE http(s)://HOST[:PORT]/PATH (DESIGN.md "Sources").
 *
 * A URL ending in '/' is a folder served as an nginx JSON autoindex or an
 * HTML index page (nginx, Apache); its sub-folders are walked breadth
 * first, each listing with one GET. Sizes come from the JSON listing, or
 * for HTML pages from HEAD requests sent for a whole folder at once (the
 * engine bounds the concurrency), which also bring ETags and
 * Last-Modified. Any other URL is one file, mounted in a folder of its
 * own, unless the server redirects it to the same URL plus '/'.
 *
 * Every child URL is built from the SOURCE's own URL (never from where a
 * redirect went), so the token only ever goes to the origin host; the
 * engine follows redirects for each request.
 *
 * Lock order: head_batch->lock only, held for counting, never across a
 * request.
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

struct folder {
	char *url; /* ends in '/' */
	char *path; /* in the manifest; "" for the root */
	int depth;
};

struct walk {
	struct source_http *h;
	struct engine *e;
	struct manifest *m;
	struct folder *q; /* folders to list, q[head, n) pending */
	size_t head, n, alloc;
	size_t count; /* entries added */
	bool capped; /* max_entries reached (warned) */
	char *err;
	size_t errlen;
};

static int walk_push(struct walk *w, char *url, char *path, int depth)
{
	if (w->n == w->alloc) {
		size_t alloc = w->alloc ? w->alloc * 2 : 16;
		struct folder *grown = realloc(w->q, alloc * sizeof(*grown));

		if (!grown) {
			free(url);
			free(path);
			return -ENOMEM;
		}
		w->q = grown;
		w->alloc = alloc;
	}
	w->q[w->n].url = url;
	w->q[w->n].path = path;
	w->q[w->n].depth = depth;
	w->n++;
	return 0;
}

static void walk_release(struct walk *w)
{
	size_t i;

	for (i = 0; i < w->n; i++) {
		free(w->q[i].url);
		free(w->q[i].path);
	}
	free(w->q);
}

/* True when one more entry may be added, besides the pending ones;
 * warns once when not. */
static bool walk_room(struct walk *w, const char *url, size_t pending)
{
	if (w->count + pending < w->h->base.max_entries)
		return true;
	if (!w->capped)
		hlog(HLOG_WARN, HLOG_FETCH,
		     "listing of '%s' stopped at %zu entries: the rest is not "
		     "shown",
		     url, w->count);
	w->capped = true;
	return false;
}

/* Adds one entry; a duplicate name (or a file where a folder is) is
 * dropped with a warning. Returns 0, or a fatal error. */
static int walk_add(struct walk *w, const char *folder_url, const char *path,
		    enum mentry_type type, uint64_t size, int64_t mtime,
		    const char *etag, const char *url)
{
	char shown[200];
	int err;

	if (mtime == DIRINDEX_MTIME_UNKNOWN)
		mtime = 0;
	err = manifest_add(w->m, path, type, size, mtime, etag,
			   etag ? "etag" : NULL, url);
	if (err == -EEXIST || err == -ENOTDIR || err == -EINVAL) {
		hlog(HLOG_WARN, HLOG_FETCH, "listing of '%s': skipping %s '%s'",
		     folder_url,
		     err == -EINVAL ? "unusable path" : "duplicate name",
		     dirindex_printable(path, strlen(path), shown,
					sizeof(shown)));
		return 1;
	}
	if (!err)
		w->count++;
	return err;
}

/* HEAD requests of one folder, in flight together. */
struct head_batch {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	size_t pending; /* protected by lock */
};

struct head_job {
	struct head_batch *batch;
	const struct dirindex_entry *en;
	char *url;
	char *path;
	bool submitted;
	struct http_result res; /* set by head_done before pending-- */
};

static void head_done(void *arg, struct http_result *res)
{
	struct head_job *j = arg;
	struct head_batch *b = j->batch;

	j->res = *res; /* takes the strings */
	pthread_mutex_lock(&b->lock);
	if (--b->pending == 0)
		pthread_cond_broadcast(&b->cond);
	pthread_mutex_unlock(&b->lock);
}

/* Size, ETag and mtime of one file from its HEAD answer; false (with a
 * warning) when the file can't be mounted. *fatal receives a network
 * error, which fails the whole listing. */
static bool head_use(struct walk *w, const char *folder_url, struct head_job *j,
		     uint64_t *size, int64_t *mtime, int *fatal)
{
	char line[1024], shown[200];
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
		hlog(HLOG_WARN, HLOG_FETCH,
		     "listing of '%s': skipping '%s': %s", folder_url,
		     printable(j->en->name, shown, sizeof(shown)), line);
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
	hlog(HLOG_WARN, HLOG_FETCH,
	     "listing of '%s': skipping '%s': its size is unknown (no "
	     "Content-Length)",
	     folder_url, printable(j->en->name, shown, sizeof(shown)));
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

/* A file that HEAD found to be a folder (redirected to URL/): added, and
 * queued to be listed. 0 (also when skipped) or a fatal error. */
static int head_folder(struct walk *w, const struct folder *f,
		       const struct head_job *j)
{
	char *url = source_join(j->url, "", "", "/");
	char *path = strdup(j->path);
	int rc = -ENOMEM;

	if (!url || !path)
		goto out_free;
	rc = 0;
	if (!walk_room(w, f->url, 0))
		goto out_free;
	rc = walk_add(w, f->url, j->path, MENTRY_DIR, 0, j->en->mtime, NULL,
		      NULL);
	if (rc)
		goto out_free;
	return walk_push(w, url, path, f->depth + 1); /* takes both */
out_free:
	free(url);
	free(path);
	return rc < 0 ? rc : 0;
}

/*
 * HEADs every file of jobs[0, n) at once, waits for all, and adds them.
 * A file found to be a folder (redirected to URL/) is queued as one.
 */
static int walk_heads(struct walk *w, const struct folder *f,
		      struct head_job *jobs, size_t n)
{
	struct head_batch batch = { .pending = 0 };
	size_t i;
	int err = 0;

	pthread_mutex_init(&batch.lock, NULL);
	pthread_cond_init(&batch.cond, NULL);
	for (i = 0; i < n; i++) {
		struct http_req req = {
			.url = jobs[i].url,
			.auth = w->h->base.auth,
			.head = true,
		};

		jobs[i].batch = &batch;
		jobs[i].res.content_length = -1;
		jobs[i].res.linked_size = -1;
		pthread_mutex_lock(&batch.lock);
		batch.pending++;
		pthread_mutex_unlock(&batch.lock);
		err = engine_http_submit(w->e, &req, head_done, &jobs[i]);
		if (err) {
			pthread_mutex_lock(&batch.lock);
			batch.pending--;
			pthread_mutex_unlock(&batch.lock);
			snprintf(w->err, w->errlen,
				 "listing of '%s' failed: %s", f->url,
				 strerror(-err));
			break;
		}
		jobs[i].submitted = true;
	}
	/* Every submitted request calls back, even on shutdown. */
	pthread_mutex_lock(&batch.lock);
	while (batch.pending)
		pthread_cond_wait(&batch.cond, &batch.lock);
	pthread_mutex_unlock(&batch.lock);
	pthread_cond_destroy(&batch.cond);
	pthread_mutex_destroy(&batch.lock);
	if (err)
		return err;

	for (i = 0; i < n; i++) {
		struct head_job *j = &jobs[i];
		const char *etag;
		uint64_t size = 0;
		int64_t mtime = 0;
		int fatal, rc;

		if (!j->res.err && redirected_to_folder(j->url, j->res.url)) {
			rc = head_folder(w, f, j);
			if (rc)
				return rc;
			continue;
		}
		if (!head_use(w, f->url, j, &size, &mtime, &fatal)) {
			if (fatal)
				return fatal;
			continue;
		}
		if (!walk_room(w, f->url, 0))
			continue;
		etag = j->res.err ? NULL : j->res.etag;
		rc = walk_add(w, f->url, j->path, MENTRY_FILE, size, mtime,
			      etag, j->url);
		if (rc < 0)
			return rc;
	}
	return 0;
}

/* GETs the folder's listing and parses it. */
static int fetch_listing(struct walk *w, const struct folder *f,
			 struct dirindex **out, bool *is_html)
{
	struct http_req req = { .url = f->url, .auth = w->h->base.auth };
	struct http_result res;
	const char *p;
	int rc;

	*out = NULL;
	*is_html = false;
	rc = engine_http(w->e, &req, &res);
	rc = answer_error(w->h, f->url, &res, rc, w->err, w->errlen);
	if (rc)
		goto out;
	for (p = res.body;
	     p && p < res.body + res.body_len && isspace((unsigned char)*p);
	     p++)
		;
	rc = -EBADMSG;
	if (p && p < res.body + res.body_len && *p == '[')
		rc = dirindex_parse_json(res.body, res.body_len, f->url,
					 w->h->base.max_entries, out);
	if (rc == -EBADMSG && res.body) {
		*is_html = true;
		rc = dirindex_parse_html(res.body, res.body_len, f->url,
					 w->h->base.max_entries, out);
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
			 f->url);
		rc = -ENOTDIR;
	} else if (rc) {
		snprintf(w->err, w->errlen, "listing of '%s' failed: %s",
			 f->url, strerror(-rc));
	}
out:
	http_result_release(&res);
	return rc;
}

static void free_jobs(struct head_job *jobs, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		free(jobs[i].url);
		free(jobs[i].path);
		http_result_release(&jobs[i].res);
	}
	free(jobs);
}

/*
 * Entry en of folder f: added as a file, added and queued as a folder, or
 * left to a HEAD request (appended to jobs). 0 (also when skipped), 1
 * when the listing is full, or a fatal error.
 */
static int folder_entry(struct walk *w, const struct folder *f,
			const struct dirindex_entry *en, bool is_html,
			struct head_job *jobs, size_t *njobs)
{
	char shown[200];
	char *esc, *url = NULL, *path = NULL;
	int rc = -ENOMEM;

	esc = url_escape_component(en->name);
	if (!esc)
		return -ENOMEM;
	url = source_join(f->url, "", esc, en->is_dir ? "/" : "");
	path = *f->path ? source_join(f->path, "/", en->name, "") :
			  strdup(en->name);
	free(esc);
	if (!url || !path)
		goto out_free;
	rc = 1;
	if (!walk_room(w, f->url, *njobs))
		goto out_free;
	if (!en->is_dir && (is_html || en->size < 0)) {
		/* HTML, or JSON without a size: ask with HEAD */
		jobs[*njobs].en = en;
		jobs[*njobs].url = url;
		jobs[*njobs].path = path;
		(*njobs)++;
		return 0;
	}
	if (!en->is_dir) {
		rc = walk_add(w, f->url, path, MENTRY_FILE, (uint64_t)en->size,
			      en->mtime, NULL, url);
		goto out_skipped;
	}
	rc = walk_add(w, f->url, path, MENTRY_DIR, 0, en->mtime, NULL, NULL);
	if (rc)
		goto out_skipped;
	if (f->depth + 1 > w->h->base.max_depth) {
		hlog(HLOG_WARN, HLOG_FETCH,
		     "listing of '%s': not entering '%s': more than %d "
		     "folders deep",
		     f->url, printable(en->name, shown, sizeof(shown)),
		     w->h->base.max_depth);
		goto out_free; /* rc is 0 */
	}
	return walk_push(w, url, path, f->depth + 1); /* takes both */
out_skipped:
	if (rc > 0)
		rc = 0; /* a skipped entry: go on */
out_free:
	free(url);
	free(path);
	return rc;
}

/* Lists folder f: adds its entries, queues its sub-folders. */
static int walk_folder(struct walk *w, const struct folder *f)
{
	struct dirindex *d = NULL;
	struct head_job *jobs = NULL;
	size_t i, njobs = 0;
	bool is_html;
	int rc;

	rc = fetch_listing(w, f, &d, &is_html);
	if (rc && f->depth > 0 && rc != -ENOMEM && !source_err_is_network(rc)) {
		/* One bad sub-folder: shown empty, the rest goes on. */
		hlog(HLOG_WARN, HLOG_FETCH, "skipping folder: %s", w->err);
		w->err[0] = '\0';
		return 0;
	}
	if (rc)
		return rc;
	if (d->truncated)
		hlog(HLOG_WARN, HLOG_FETCH,
		     "listing of '%s' has more than %zu entries: the rest is "
		     "not shown",
		     f->url, w->h->base.max_entries);
	jobs = calloc(d->n ? d->n : 1, sizeof(*jobs));
	if (!jobs) {
		rc = -ENOMEM;
		goto out;
	}
	for (i = 0; i < d->n && !w->capped && !rc; i++)
		rc = folder_entry(w, f, &d->entries[i], is_html, jobs, &njobs);
	if (rc < 0)
		goto out;
	rc = njobs ? walk_heads(w, f, jobs, njobs) : 0;
out:
	free_jobs(jobs, njobs);
	dirindex_free(d);
	return rc > 0 ? 0 : rc;
}

static int list_tree(struct walk *w, const char *root_url)
{
	char *url = strdup(root_url), *path = strdup("");
	int rc;

	if (!url || !path) {
		free(url);
		free(path);
		return -ENOMEM;
	}
	rc = walk_push(w, url, path, 0);
	while (!rc && w->head < w->n && !w->capped) {
		struct folder f = w->q[w->head];

		/* q may move while f is listed: f is a copy, still owned by
		 * q[head] and freed by walk_release. */
		w->head++;
		rc = walk_folder(w, &f);
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
	rc = rc > 0 ? 0 : rc;
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
	walk_release(&w);
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
