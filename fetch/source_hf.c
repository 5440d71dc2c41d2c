/*
 * source_hf.c: SOURCE hf://[datasets/|spaces/]OWNER/NAME[@REVISION][/SUBDIR]
 * and hf://NAME: a repo of the Hugging Face Hub or of a mirror
 * (DESIGN.md "Sources"; the API as clients see it is shared/HF-API.md).
 *
 * open() parses SOURCE, picks the endpoint (-o endpoint=, $HF_ENDPOINT,
 * default https://huggingface.co) and sets the ref (the revision) and
 * the cache key, so source_snapshot() can load a pinned snapshot without
 * the network.
 *
 * list() resolves the revision to a commit with one request
 * (GET /api/{type}s/{id}/revision/{rev}, even for a full commit id, which
 * is thereby checked), then lists the tree at that commit, not at the
 * branch (GET /api/{type}s/{id}/tree/{commit}[/{subdir}]
 * ?recursive=true&expand=false), following Link rel="next" to the last
 * page, at most HF_MAX_PAGES, and failing on a page seen before. So the
 * listing and every byte behind it are immutable: each file's URL is
 * ENDPOINT/{prefix}{id}/resolve/{commit}/{path}, and its identity is its
 * content hash (lfs.oid sha256, or the git blob sha1), so a file
 * unchanged between revisions is stored once.
 *
 * Every URL is built from the endpoint. A next-page link to another
 * origin (a mirror handing out the Hub's links) is followed without the
 * token, so the token (sent by the engine to the request's origin) only
 * ever goes to the endpoint. The token is never logged.
 *
 * A gated repo lists for anyone but serves bytes only to those who
 * accepted its terms: without a token that is an error at once; with one,
 * a HEAD of one file tells (probe_gated).
 *
 * hf_cache_export() places a verified file into a huggingface_hub cache
 * (HF-API.md section 6), through temporary names and renames only.
 *
 * No locks: a source is used by one thread while it lists; afterwards it
 * is only read. hf_cache_export() keeps no state: concurrent callers are
 * serialised by the file system (link, rename).
 */
#include "fetch/source_hf.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "fetch/dirindex.h"
#include "fetch/engine.h"
#include "fetch/http.h"
#include "fetch/source_i.h"
#include "fetch/work.h"
#include "state/cache.h"
#include "state/fsutil.h"
#include "state/hlog.h"
#include "state/manifest.h"

#define HF_FORM "hf://[datasets/|spaces/]OWNER/NAME[@REVISION][/SUBDIR]"
#define REPO_ID_MAX 96 /* huggingface_hub's validate_repo_id */
#define REVISION_MAX 255
#define WARN_MAX 20 /* warnings per listing, then a count */
#define SHOWN_MAX 200 /* bytes of a name or message in a line */

struct source_hf {
	struct source base; /* first */
	enum hf_repo_type type;
	char *endpoint; /* no trailing '/' (owned) */
	/* The endpoint's origin, normalized ("http://host:port", lowercase,
	 * default port dropped): part of every blob's identity (owned) */
	char *origin;
	char *repo_id; /* as given: cache folder names (owned) */
	char *api_id; /* canonical, as the Hub says (owned) */
	char *revision; /* decoded (owned) */
	char *subdir; /* or NULL (owned) */
	char *shown; /* "OWNER/NAME", "datasets/OWNER/NAME" */
	char *export_dir; /* -o hf_cache=, absolute, or NULL (owned) */
};

/* ---- small helpers ---------------------------------------------------- */

const char *hf_type_plural(enum hf_repo_type type)
{
	switch (type) {
	case HF_DATASET:
		return "datasets";
	case HF_SPACE:
		return "spaces";
	default:
		return "models";
	}
}

/* The prefix of file URLs: "", "datasets/", "spaces/". */
static const char *type_url_prefix(enum hf_repo_type type)
{
	switch (type) {
	case HF_DATASET:
		return "datasets/";
	case HF_SPACE:
		return "spaces/";
	default:
		return "";
	}
}

static bool is_hex(const char *s, size_t len)
{
	size_t i;

	if (strlen(s) != len)
		return false;
	for (i = 0; i < len; i++)
		if (!isxdigit((unsigned char)s[i]))
			return false;
	return true;
}

static void lower(char *s)
{
	for (; *s; s++)
		*s = (char)tolower((unsigned char)*s);
}

static const char *shown(const char *s, char *buf, size_t buflen)
{
	return dirindex_printable(s, strlen(s), buf, buflen);
}

/* ---- SOURCE ----------------------------------------------------------- */

void hf_spec_release(struct hf_spec *s)
{
	if (!s)
		return;
	free(s->repo_id);
	free(s->revision);
	free(s->subdir);
	memset(s, 0, sizeof(*s));
}

static bool repo_char(unsigned char ch)
{
	return isascii(ch) &&
	       (isalnum(ch) || ch == '_' || ch == '-' || ch == '.');
}

static bool repo_edge(unsigned char ch)
{
	return isascii(ch) && (isalnum(ch) || ch == '_');
}

/* One component of a repo id, as the Hub and huggingface_hub accept it. */
static bool repo_part_ok(const char *s, size_t n)
{
	size_t i;

	if (!n || !repo_edge((unsigned char)s[0]) ||
	    !repo_edge((unsigned char)s[n - 1]))
		return false;
	for (i = 0; i < n; i++) {
		if (!repo_char((unsigned char)s[i]))
			return false;
		if (i && (s[i] == '-' || s[i] == '.') && s[i - 1] == s[i])
			return false; /* "--" and ".." */
	}
	return true;
}

static bool repo_id_ok(const char *id)
{
	const char *slash = strchr(id, '/');

	if (strlen(id) > REPO_ID_MAX)
		return false;
	if (!slash)
		return repo_part_ok(id, strlen(id));
	return repo_part_ok(id, (size_t)(slash - id)) &&
	       repo_part_ok(slash + 1, strlen(slash + 1));
}

/* A revision usable in a URL and as a nested file name under refs/:
 * components neither empty nor "." nor "..", no control character. */
static bool revision_ok(const char *rev)
{
	const char *p = rev;

	if (!*rev || strlen(rev) > REVISION_MAX)
		return false;
	for (; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			return false;
	p = rev;
	while (*p) {
		size_t n = strcspn(p, "/");

		if (!n || (n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.'))
			return false;
		p += n;
		if (*p == '/' && !*++p)
			return false; /* trailing '/' */
	}
	return true;
}

/* Length of a special ref taken whole at p (refs/pr/N, refs/convert/W),
 * or 0. */
static size_t special_ref_len(const char *p)
{
	size_t n, start;

	if (!strncmp(p, "refs/pr/", 8)) {
		start = 8;
		for (n = start; isdigit((unsigned char)p[n]); n++)
			;
	} else if (!strncmp(p, "refs/convert/", 13)) {
		start = 13;
		for (n = start; repo_edge((unsigned char)p[n]); n++)
			;
	} else {
		return 0;
	}
	if (n == start || (p[n] && p[n] != '/'))
		return 0;
	return n;
}

int hf_spec_parse(const char *spec, struct hf_spec *out, char *err,
		  size_t errlen)
{
	const char *p, *id_end;
	size_t n1, n2;
	char shownb[SHOWN_MAX];
	int rc = -EINVAL;

	memset(out, 0, sizeof(*out));
	if (strncasecmp(spec, "hf://", 5)) {
		snprintf(err, errlen, "malformed SOURCE '%s': expected %s",
			 shown(spec, shownb, sizeof(shownb)), HF_FORM);
		return -EINVAL;
	}
	p = spec + 5;
	out->type = HF_MODEL;
	if (!strncmp(p, "datasets/", 9)) {
		out->type = HF_DATASET;
		p += 9;
	} else if (!strncmp(p, "spaces/", 7)) {
		out->type = HF_SPACE;
		p += 7;
	}
	n1 = strcspn(p, "/@");
	if (!n1) {
		snprintf(err, errlen,
			 "malformed SOURCE '%s': no repo "
			 "(expected %s)",
			 shown(spec, shownb, sizeof(shownb)), HF_FORM);
		goto fail;
	}
	id_end = p + n1;
	if (*id_end == '/' && id_end[1]) {
		n2 = strcspn(id_end + 1, "/@");
		if (!n2) {
			snprintf(err, errlen,
				 "malformed SOURCE '%s': empty "
				 "repo NAME after '%.*s/'",
				 shown(spec, shownb, sizeof(shownb)), (int)n1,
				 p);
			goto fail;
		}
		id_end += 1 + n2;
	}
	out->repo_id = strndup(p, (size_t)(id_end - p));
	if (!out->repo_id) {
		rc = -ENOMEM;
		goto fail;
	}
	if (!repo_id_ok(out->repo_id)) {
		snprintf(err, errlen,
			 "malformed SOURCE '%s': '%s' is not a "
			 "repo id (letters, digits, '-', '_' and '.'; not "
			 "starting or ending with '-' or '.'; no '--' or "
			 "'..'; at most %d characters)",
			 shown(spec, shownb, sizeof(shownb)), out->repo_id,
			 REPO_ID_MAX);
		goto fail;
	}
	p = id_end;
	if (*p == '@') {
		size_t n = special_ref_len(p + 1);
		size_t dlen;

		p++;
		if (!n)
			n = strcspn(p, "/");
		if (!n) {
			snprintf(err, errlen,
				 "malformed SOURCE '%s': empty "
				 "REVISION after '@'",
				 shown(spec, shownb, sizeof(shownb)));
			goto fail;
		}
		rc = dirindex_unescape(p, n, &out->revision, &dlen);
		if (rc == -EINVAL) {
			snprintf(err, errlen,
				 "malformed SOURCE '%s': bad "
				 "percent-escape in the REVISION (write '/' "
				 "as %%2F, '%%' as %%25)",
				 shown(spec, shownb, sizeof(shownb)));
			goto fail;
		}
		if (rc)
			goto fail;
		rc = -EINVAL;
		if (!revision_ok(out->revision)) {
			snprintf(err, errlen,
				 "malformed SOURCE '%s': bad "
				 "REVISION (empty, '.' or '..' parts, or "
				 "control characters)",
				 shown(spec, shownb, sizeof(shownb)));
			goto fail;
		}
		p += n;
	} else {
		out->revision = strdup("main");
		if (!out->revision) {
			rc = -ENOMEM;
			goto fail;
		}
	}
	/* p is at '/' or at the end: the rest is SUBDIR. */
	while (*p) {
		size_t n, have;
		char *grown;

		while (*p == '/')
			p++;
		n = strcspn(p, "/");
		if (!n)
			break;
		if ((n == 1 && p[0] == '.') ||
		    (n == 2 && p[0] == '.' && p[1] == '.')) {
			snprintf(err, errlen,
				 "malformed SOURCE '%s': '.' and "
				 "'..' are not allowed in SUBDIR",
				 shown(spec, shownb, sizeof(shownb)));
			goto fail;
		}
		if (n > 255) {
			snprintf(err, errlen,
				 "malformed SOURCE '%s': a SUBDIR "
				 "component is longer than 255 bytes",
				 shown(spec, shownb, sizeof(shownb)));
			goto fail;
		}
		have = out->subdir ? strlen(out->subdir) : 0;
		grown = realloc(out->subdir, have + n + 2);
		if (!grown) {
			rc = -ENOMEM;
			goto fail;
		}
		out->subdir = grown;
		if (have)
			out->subdir[have++] = '/';
		memcpy(out->subdir + have, p, n);
		out->subdir[have + n] = '\0';
		p += n;
	}
	if (out->subdir && strlen(out->subdir) >= PATH_MAX / 2) {
		snprintf(err, errlen,
			 "malformed SOURCE '%s': SUBDIR is too "
			 "long",
			 shown(spec, shownb, sizeof(shownb)));
		goto fail;
	}
	return 0;
fail:
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	hf_spec_release(out);
	return rc;
}

/* ---- URLs ------------------------------------------------------------- */

char *hf_escape_revision(const char *rev)
{
	return url_escape_component(rev);
}

char *hf_escape_path(const char *path)
{
	size_t cap = strlen(path) * 3 + 1, o = 0;
	char *out = malloc(cap);
	const char *p = path;

	if (!out)
		return NULL;
	out[0] = '\0';
	for (;;) {
		size_t n = strcspn(p, "/");
		char *esc = dirindex_escape(p, n);

		if (!esc) {
			free(out);
			return NULL;
		}
		memcpy(out + o, esc, strlen(esc) + 1);
		o += strlen(esc);
		free(esc);
		p += n;
		if (!*p)
			break;
		out[o++] = '/';
		out[o] = '\0';
		p++;
	}
	return out;
}

char *hf_resolve_url(const char *endpoint, enum hf_repo_type type,
		     const char *repo_id, const char *rev, const char *path)
{
	char *erev = hf_escape_revision(rev);
	char *epath = hf_escape_path(path);
	char *url = NULL;

	if (erev && epath &&
	    asprintf(&url, "%s/%s%s/resolve/%s/%s", endpoint,
		     type_url_prefix(type), repo_id, erev, epath) < 0)
		url = NULL;
	free(erev);
	free(epath);
	return url;
}

/* ENDPOINT/api/{type}s/{id}/{what}/{escaped rev}[/{escaped sub}][query] */
static char *api_url(const struct source_hf *h, const char *what,
		     const char *rev, const char *sub, const char *query)
{
	char *erev = hf_escape_revision(rev);
	char *esub = sub ? hf_escape_path(sub) : NULL;
	char *url = NULL;

	if (erev && (!sub || esub) &&
	    asprintf(&url, "%s/api/%s/%s/%s/%s%s%s%s", h->endpoint,
		     hf_type_plural(h->type), h->api_id, what, erev,
		     sub ? "/" : "", sub ? esub : "", query ? query : "") < 0)
		url = NULL;
	free(erev);
	free(esub);
	return url;
}

/* ---- errors ----------------------------------------------------------- */

static bool code_is(const struct http_result *res, const char *code)
{
	return res->error_code && !strcasecmp(res->error_code, code);
}

/* True when the server's message (X-Error-Message or the body's start)
 * contains needle, in any case. */
static bool says(const struct http_result *res, const char *needle)
{
	char head[1024];
	size_t n;

	if (res->error_message && strcasestr(res->error_message, needle))
		return true;
	if (!res->body)
		return false;
	n = res->body_len < sizeof(head) - 1 ? res->body_len : sizeof(head) - 1;
	memcpy(head, res->body, n);
	head[n] = '\0';
	return strcasestr(head, needle) != NULL;
}

int hf_map_error(const struct source *src, enum hf_req what,
		 const struct http_result *res, int rc, char *err,
		 size_t errlen)
{
	const struct source_hf *h = (const struct source_hf *)src;
	const char *url = res->url ? res->url : "";
	bool tree = what == HF_REQ_TREE, token = src->auth != NULL;
	char msg[SHOWN_MAX];

	assert(src->ops == &source_hf_ops);
	if (!res->status || (rc && res->status < 400)) {
		if (!rc)
			return 0; /* no status and no error */
		if (source_err_is_network(rc)) {
			snprintf(err, errlen, "cannot reach %s: %s",
				 h->endpoint, strerror(-rc));
			return rc;
		}
		if (rc == -EFBIG)
			snprintf(err, errlen,
				 "the answer of %s to '%s' is "
				 "too large",
				 h->endpoint, url);
		else
			snprintf(err, errlen, "request to '%s' failed: %s", url,
				 strerror(-rc));
		return rc;
	}
	if (res->status >= 200 && res->status < 300)
		return 0;
	if (code_is(res, "RevisionNotFound") ||
	    (!tree && res->status == 404 && !res->error_code &&
	     says(res, "Invalid rev id"))) {
		snprintf(err, errlen, "revision '%s' not found in %s",
			 h->revision, h->shown);
		return -ENOENT;
	}
	if (code_is(res, "GatedRepo")) {
		snprintf(err, errlen,
			 "'%s' is gated: accept its terms on the "
			 "Hub and set HF_TOKEN",
			 h->shown);
		return -EACCES;
	}
	if (tree && h->subdir &&
	    (code_is(res, "EntryNotFound") ||
	     (res->status == 404 && !res->error_code))) {
		snprintf(err, errlen, "subfolder '%s' not found in %s@%s",
			 h->subdir, h->shown, h->revision);
		return -ENOENT;
	}
	if (res->status == 403 && says(res, "disabled")) {
		snprintf(err, errlen, "'%s' is disabled on %s (HTTP 403)",
			 h->shown, h->endpoint);
		return http_status_errno(res->status);
	}
	if (res->status == 401 && token &&
	    (!code_is(res, "RepoNotFound") ||
	     says(res, "Invalid credentials"))) {
		snprintf(err, errlen,
			 "the token was refused by %s (HTTP 401): "
			 "check HF_TOKEN",
			 h->endpoint);
		return -EACCES;
	}
	if (res->status == 401 || code_is(res, "RepoNotFound") ||
	    (res->status == 404 && !code_is(res, "EntryNotFound"))) {
		if (token)
			snprintf(err, errlen,
				 "'%s' not found, or private: the "
				 "token given cannot read it",
				 h->shown);
		else
			snprintf(err, errlen,
				 "'%s' not found, or private: set "
				 "HF_TOKEN",
				 h->shown);
		return -ENOENT;
	}
	if (res->status == 403) {
		snprintf(err, errlen,
			 "access to '%s' was refused by %s (HTTP "
			 "403)%s",
			 h->shown, h->endpoint,
			 token ? ": the token given cannot read it" :
				 ": set HF_TOKEN");
		return http_status_errno(res->status);
	}
	if (res->status == 429) {
		snprintf(err, errlen,
			 "rate limited by %s (HTTP 429): try "
			 "again later",
			 h->endpoint);
		return http_status_errno(res->status);
	}
	if (!rc)
		rc = http_status_errno(res->status);
	if (!rc)
		rc = -EPROTO; /* a 1xx or 3xx as the final answer */
	if (res->error_message && *res->error_message)
		snprintf(err, errlen, "%s answered HTTP %ld for '%s': %s",
			 h->endpoint, res->status, url,
			 shown(res->error_message, msg, sizeof(msg)));
	else
		snprintf(err, errlen, "%s answered HTTP %ld for '%s'",
			 h->endpoint, res->status, url);
	return rc;
}

/* ---- JSON answers ----------------------------------------------------- */

/* "2022-12-22T01:01:20.000Z" (fraction optional, UTC) or -1. */
static int64_t parse_iso8601(const char *s)
{
	struct tm tm;
	int y, mo, d, h, mi, sec, n = 0;
	time_t t;

	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec,
		   &n) != 6 ||
	    !n)
		return -1;
	s += n;
	if (*s == '.')
		for (s++; isdigit((unsigned char)*s); s++)
			;
	if (strcmp(s, "Z") && strcmp(s, "+00:00"))
		return -1;
	if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
	    mi > 59 || sec > 60 || h < 0 || mi < 0 || sec < 0)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	return t < 0 ? -1 : (int64_t)t;
}

void hf_revision_release(struct hf_revision *r)
{
	if (!r)
		return;
	free(r->commit);
	free(r->id);
	memset(r, 0, sizeof(*r));
}

int hf_revision_parse(const char *body, size_t len, struct hf_revision *out)
{
	json_error_t jerr;
	json_t *root, *v;
	const char *s;
	int rc = -EBADMSG;

	memset(out, 0, sizeof(*out));
	if (!body)
		return -EBADMSG;
	root = json_loadb(body, len, 0, &jerr);
	if (!root)
		return -EBADMSG;
	if (!json_is_object(root))
		goto out;
	v = json_object_get(root, "sha");
	s = json_string_value(v);
	if (!s || !is_hex(s, 40))
		goto out;
	rc = -ENOMEM;
	out->commit = strdup(s);
	if (!out->commit)
		goto out;
	lower(out->commit);
	s = json_string_value(json_object_get(root, "id"));
	if (s && !(out->id = strdup(s)))
		goto out;
	s = json_string_value(json_object_get(root, "lastModified"));
	if (s)
		out->mtime = parse_iso8601(s);
	if (out->mtime < 0)
		out->mtime = 0;
	v = json_object_get(root, "gated");
	out->gated = json_is_true(v) ||
		     (json_is_string(v) && strcmp(json_string_value(v), "") &&
		      strcasecmp(json_string_value(v), "false"));
	rc = 0;
out:
	json_decref(root);
	if (rc)
		hf_revision_release(out);
	return rc;
}

static void tree_warn(struct hf_tree *t, const char *path, size_t len,
		      const char *why)
{
	char buf[SHOWN_MAX];

	t->skipped++;
	if (t->skipped > WARN_MAX)
		return;
	hlog(HLOG_WARN, HLOG_FETCH, "listing of %s: skipping '%s': %s",
	     t->where, dirindex_printable(path, len, buf, sizeof(buf)), why);
}

/* A non-negative integer member, or -1. */
static int64_t json_size(json_t *obj, const char *key)
{
	json_t *v = json_object_get(obj, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	return (int64_t)json_integer_value(v);
}

/* True when a hash string is the redacted placeholder ("****..."). */
static bool redacted(const char *s)
{
	return s && strchr(s, '*');
}

static int tree_add_one(struct hf_tree *t, json_t *en)
{
	const char *type = json_string_value(json_object_get(en, "type"));
	json_t *jpath = json_object_get(en, "path");
	const char *path = json_string_value(jpath);
	const char *rel, *hash = NULL, *kind = NULL, *q;
	char cid[65], buf[SHOWN_MAX];
	char *url = NULL;
	json_t *lfs;
	int64_t size = -1;
	size_t plen, sublen = t->subdir ? strlen(t->subdir) : 0;
	int depth = 0, rc;
	bool is_dir;

	if (!type || (strcmp(type, "file") && strcmp(type, "directory")))
		return 0; /* "unknown" and future kinds */
	is_dir = !strcmp(type, "directory");
	if (!path) {
		tree_warn(t, "", 0, "no path");
		return 0;
	}
	plen = json_string_length(jpath);
	if (strlen(path) != plen) {
		tree_warn(t, path, plen, "NUL in the path");
		return 0;
	}
	rel = path;
	if (t->subdir) {
		if (!strcmp(path, t->subdir)) {
			if (!is_dir)
				t->subdir_is_file = true;
			return 0;
		}
		if (strncmp(path, t->subdir, sublen) || path[sublen] != '/') {
			tree_warn(t, path, plen, "outside the subfolder");
			return 0;
		}
		rel = path + sublen + 1;
	}
	for (q = rel; *q; q++)
		depth += *q == '/';
	if (depth + is_dir > t->max_depth) {
		tree_warn(t, path, plen, "too many folders deep");
		return 0;
	}
	if (t->m->n - 1 >= t->max_entries) {
		if (!t->capped)
			hlog(HLOG_WARN, HLOG_FETCH,
			     "listing of %s stopped at %zu entries: the rest "
			     "is not shown",
			     t->where, t->max_entries);
		t->capped = true;
		return 0;
	}
	if (!is_dir) {
		lfs = json_object_get(en, "lfs");
		if (json_is_object(lfs)) {
			size = json_size(lfs, "size");
			hash = json_string_value(json_object_get(lfs, "oid"));
			if (!hash)
				hash = json_string_value(
					json_object_get(lfs, "sha256"));
			if (redacted(hash))
				return -EACCES;
			kind = "sha256";
			if (!hash || !is_hex(hash, 64))
				hash = NULL;
		} else {
			hash = json_string_value(json_object_get(en, "oid"));
			if (redacted(hash))
				return -EACCES;
			kind = "git-sha1";
			if (!hash || !is_hex(hash, 40))
				hash = NULL;
		}
		if (size < 0)
			size = json_size(en, "size");
		if (size < 0) {
			tree_warn(t, path, plen, "no size");
			return 0;
		}
		if (hash) {
			snprintf(cid, sizeof(cid), "%s", hash);
			lower(cid);
		} else {
			kind = NULL;
			if (++t->unverified <= WARN_MAX)
				hlog(HLOG_WARN, HLOG_FETCH,
				     "listing of %s: '%s' has no usable hash: "
				     "it is not verified",
				     t->where, shown(path, buf, sizeof(buf)));
		}
		url = malloc(strlen(t->resolve_base) + 3 * plen + 2);
		if (!url)
			return -ENOMEM;
		{
			char *esc = hf_escape_path(path);

			if (!esc) {
				free(url);
				return -ENOMEM;
			}
			sprintf(url, "%s/%s", t->resolve_base, esc);
			free(esc);
		}
	}
	rc = manifest_add(t->m, rel, is_dir ? MENTRY_DIR : MENTRY_FILE,
			  is_dir ? 0 : (uint64_t)size, t->mtime,
			  kind ? cid : NULL, kind, url);
	free(url);
	switch (rc) {
	case 0:
	case -ENOMEM:
		return rc;
	case -EEXIST:
	case -ENOTDIR:
		tree_warn(t, path, plen, "duplicate name");
		return 0;
	case -EOVERFLOW:
		tree_warn(t, path, plen, "size too large");
		return 0;
	default:
		tree_warn(t, path, plen, "unusable path");
		return 0;
	}
}

int hf_tree_page_parse(struct hf_tree *t, const char *body, size_t len)
{
	json_error_t jerr;
	json_t *root;
	size_t i;
	int rc = 0;

	if (!body)
		return -EBADMSG;
	root = json_loadb(body, len, JSON_ALLOW_NUL, &jerr);
	if (!root)
		return -EBADMSG;
	if (!json_is_array(root)) {
		json_decref(root);
		return -EBADMSG;
	}
	for (i = 0; i < json_array_size(root) && !rc && !t->capped; i++) {
		json_t *en = json_array_get(root, i);

		if (json_is_object(en))
			rc = tree_add_one(t, en);
	}
	json_decref(root);
	return rc;
}

/* ---- listing ---------------------------------------------------------- */

/* URLs of the pages fetched so far (loop detection). */
struct seen {
	uint64_t *hashes;
	char **urls;
	size_t n, alloc;
};

static void seen_release(struct seen *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		free(s->urls[i]);
	free(s->urls);
	free(s->hashes);
}

/* 0, -ELOOP when url was fetched before, -ENOMEM. */
static int seen_add(struct seen *s, const char *url)
{
	uint64_t h = XXH3_64bits(url, strlen(url));
	size_t i;

	for (i = 0; i < s->n; i++)
		if (s->hashes[i] == h && !strcmp(s->urls[i], url))
			return -ELOOP;
	if (s->n == s->alloc) {
		size_t alloc = s->alloc ? s->alloc * 2 : 16;
		uint64_t *hs = realloc(s->hashes, alloc * sizeof(*hs));
		char **us;

		if (!hs)
			return -ENOMEM;
		s->hashes = hs;
		us = realloc(s->urls, alloc * sizeof(*us));
		if (!us)
			return -ENOMEM;
		s->urls = us;
		s->alloc = alloc;
	}
	s->urls[s->n] = strdup(url);
	if (!s->urls[s->n])
		return -ENOMEM;
	s->hashes[s->n++] = h;
	return 0;
}

/* Resolves h->revision: *rev filled; one line in err on failure. */
static int resolve(struct source_hf *h, struct engine *e,
		   struct hf_revision *rev, char *err, size_t errlen)
{
	struct http_req req = { .auth = h->base.auth };
	struct http_result res;
	char *url;
	int rc;

	url = api_url(h, "revision", h->revision, NULL, NULL);
	if (!url)
		return -ENOMEM;
	req.url = url;
	rc = engine_http(e, &req, &res);
	rc = hf_map_error(&h->base, HF_REQ_REVISION, &res, rc, err, errlen);
	if (rc)
		goto out;
	rc = hf_revision_parse(res.body, res.body_len, rev);
	if (rc == -EBADMSG)
		snprintf(err, errlen,
			 "'%s' did not answer with a commit id: "
			 "is %s a Hugging Face Hub?",
			 url, h->endpoint);
	if (rc)
		goto out;
	if (rev->gated && !h->base.auth) {
		snprintf(err, errlen,
			 "'%s' is gated: accept its terms on the "
			 "Hub and set HF_TOKEN",
			 h->shown);
		rc = -EACCES;
		goto out;
	}
	if (rev->id && repo_id_ok(rev->id) && strcmp(rev->id, h->api_id)) {
		char *id = strdup(rev->id);

		if (!id) {
			rc = -ENOMEM;
			goto out;
		}
		hlog(HLOG_INFO, HLOG_FETCH, "'%s' is '%s' on %s", h->repo_id,
		     id, h->endpoint);
		free(h->api_id);
		h->api_id = id;
	}
out:
	if (rc)
		hf_revision_release(rev);
	http_result_release(&res);
	free(url);
	return rc;
}

static int list_tree(struct source_hf *h, struct engine *e,
		     const struct hf_revision *rev, struct manifest *m,
		     char *err, size_t errlen)
{
	struct seen seen = { 0 };
	struct hf_tree t = { 0 };
	char where[REPO_ID_MAX + REVISION_MAX + 32];
	char *base = NULL, *url = NULL;
	size_t pages = 0;
	bool warned_elsewhere = false;
	int rc = -ENOMEM;

	snprintf(where, sizeof(where), "%s@%s", h->shown, h->revision);
	if (asprintf(&base, "%s/%s%s/resolve/%s", h->endpoint,
		     type_url_prefix(h->type), h->api_id, rev->commit) < 0) {
		base = NULL;
		goto out;
	}
	url = api_url(h, "tree", rev->commit, h->subdir,
		      "?recursive=true&expand=false");
	if (!url)
		goto out;
	t.m = m;
	t.resolve_base = base;
	t.subdir = h->subdir;
	t.where = where;
	t.mtime = rev->mtime;
	t.max_entries = h->base.max_entries;
	t.max_depth = h->base.max_depth;
	rc = 0;
	while (url && !t.capped) {
		struct http_req req = { .url = url, .auth = h->base.auth };
		struct http_result res;

		if (!http_same_origin(h->endpoint, url)) {
			/* A mirror may hand out the Hub's own links: they
			 * are followed, but the token stays home. */
			req.auth = NULL;
			if (!warned_elsewhere && h->base.auth)
				hlog(HLOG_INFO, HLOG_FETCH,
				     "listing of %s: the next page is on "
				     "another server, asked for without the "
				     "token: '%s'",
				     where, url);
			warned_elsewhere = true;
		}

		rc = seen_add(&seen, url);
		if (rc == -ELOOP)
			snprintf(err, errlen,
				 "listing of %s failed: the "
				 "server sent page '%s' twice (a pagination "
				 "loop)",
				 where, url);
		if (!rc && ++pages > HF_MAX_PAGES) {
			snprintf(err, errlen,
				 "listing of %s failed: more than "
				 "%d pages",
				 where, HF_MAX_PAGES);
			rc = -E2BIG;
		}
		if (rc)
			break;
		rc = engine_http(e, &req, &res);
		rc = hf_map_error(&h->base, HF_REQ_TREE, &res, rc, err, errlen);
		if (!rc) {
			rc = hf_tree_page_parse(&t, res.body, res.body_len);
			if (rc == -EBADMSG)
				snprintf(err, errlen,
					 "'%s' did not answer "
					 "with a JSON listing",
					 url);
			else if (rc == -EACCES)
				snprintf(err, errlen,
					 "'%s' is gated: accept "
					 "its terms on the Hub and set "
					 "HF_TOKEN",
					 h->shown);
		}
		free(url);
		url = NULL;
		if (!rc && res.link_next) {
			if (strncasecmp(res.link_next, "http://", 7) &&
			    strncasecmp(res.link_next, "https://", 8)) {
				snprintf(err, errlen,
					 "listing of %s failed: "
					 "the next page is no http(s) URL",
					 where);
				rc = -EPROTO;
			} else {
				url = res.link_next;
				res.link_next = NULL;
			}
		}
		http_result_release(&res);
		if (rc)
			break;
	}
	if (t.skipped > WARN_MAX)
		hlog(HLOG_WARN, HLOG_FETCH,
		     "listing of %s: skipped %zu more entries", where,
		     t.skipped - WARN_MAX);
	if (t.unverified > WARN_MAX)
		hlog(HLOG_WARN, HLOG_FETCH,
		     "listing of %s: %zu more files have no usable hash", where,
		     t.unverified - WARN_MAX);
	if (!rc && t.subdir_is_file && m->n == 1) {
		snprintf(err, errlen, "'%s' is a file, not a subfolder, in %s",
			 h->subdir, where);
		rc = -ENOTDIR;
	}
out:
	free(url);
	free(base);
	seen_release(&seen);
	return rc;
}

/*
 * A gated repo lists for anyone, but serves bytes only to the accepted:
 * with a token, one HEAD of a file tells at mount time rather than at the
 * first read. Only a GatedRepo answer fails the listing.
 */
static int probe_gated(struct source_hf *h, struct engine *e,
		       const struct manifest *m, char *err, size_t errlen)
{
	struct http_req req = { .auth = h->base.auth,
				.head = true,
				.no_retry = true };
	struct http_result res;
	size_t i;
	int rc;

	for (i = 1; i < m->n; i++)
		if (m->entries[i].type == MENTRY_FILE && m->entries[i].url)
			break;
	if (i >= m->n)
		return 0;
	req.url = m->entries[i].url;
	rc = engine_http(e, &req, &res);
	if ((res.status == 401 || res.status == 403) &&
	    code_is(&res, "GatedRepo")) {
		snprintf(err, errlen,
			 "'%s' is gated: accept its terms on the "
			 "Hub and set HF_TOKEN",
			 h->shown);
		rc = -EACCES;
	} else {
		if (rc)
			hlog(HLOG_DEBUG, HLOG_FETCH, "probe of '%s' failed: %s",
			     req.url, strerror(-rc));
		rc = 0;
	}
	http_result_release(&res);
	return rc;
}

/* ---- the scheme ------------------------------------------------------- */

static void hf_free(struct source *src)
{
	struct source_hf *h = (struct source_hf *)src;

	free(h->endpoint);
	free(h->origin);
	free(h->repo_id);
	free(h->api_id);
	free(h->revision);
	free(h->subdir);
	free(h->shown);
	free(h->export_dir);
	free(h);
}

/*
 * The origin of a checked endpoint (scheme://host[:port], no userinfo),
 * normalized as RFC 6454 compares origins: scheme and host lowercased,
 * the scheme's default port dropped, the path left out. *out is new.
 */
static int hf_origin_of(const char *endpoint, char **out)
{
	bool https = !strncasecmp(endpoint, "https://", 8);
	const char *scheme = https ? "https" : "http";
	const char *host = endpoint + strlen(scheme) + 3;
	const char *dflt = https ? ":443" : ":80";
	size_t n = strcspn(host, "/"), dlen = strlen(dflt), i;
	char *o;

	if (n > dlen && !strncmp(host + n - dlen, dflt, dlen))
		n -= dlen;
	if (asprintf(&o, "%s://%.*s", scheme, (int)n, host) < 0)
		return -ENOMEM;
	for (i = 0; o[i]; i++)
		o[i] = (char)tolower((unsigned char)o[i]);
	*out = o;
	return 0;
}

/* The endpoint without trailing '/': 0, or -EINVAL with a line. */
static int set_endpoint(struct source_hf *h, const char *ep, char *err,
			size_t errlen)
{
	size_t n;
	const char *host;
	char buf[SHOWN_MAX];

	if (!ep || !*ep)
		ep = HF_ENDPOINT_DEFAULT;
	n = strlen(ep);
	while (n && ep[n - 1] == '/')
		n--;
	host = !strncasecmp(ep, "https://", 8) ? ep + 8 :
	       !strncasecmp(ep, "http://", 7)  ? ep + 7 :
						 NULL;
	if (!host || host >= ep + n || *host == '/' ||
	    strpbrk(host, "?# \t\r\n") || strchr(host, '@')) {
		/* '@': credentials in the URL are not echoed */
		snprintf(err, errlen,
			 "bad Hub endpoint '%s': expected an "
			 "http:// or https:// URL (-o endpoint= or "
			 "HF_ENDPOINT)",
			 strchr(ep, '@') ? "..." : shown(ep, buf, sizeof(buf)));
		return -EINVAL;
	}
	h->endpoint = strndup(ep, n);
	if (!h->endpoint)
		return -ENOMEM;
	return hf_origin_of(h->endpoint, &h->origin);
}

/* -o hf_cache=DIR, made absolute (the daemon runs in "/"). */
static int set_export_dir(struct source_hf *h, const char *dir, char *err,
			  size_t errlen)
{
	char buf[PATH_MAX];
	int rc;

	if (!dir)
		return 0;
	rc = path_abs(dir, buf, sizeof(buf));
	if (rc) {
		snprintf(err, errlen, "hf cache '%s': %s", dir, strerror(-rc));
		return rc;
	}
	h->export_dir = strdup(buf);
	return h->export_dir ? 0 : -ENOMEM;
}

static int hf_open(const char *spec, const struct source_opts *o,
		   struct source **out, char *err, size_t errlen)
{
	const char *endpoint = o->endpoint;
	struct hf_spec sp;
	struct source_hf *h;
	int rc;

	rc = hf_spec_parse(spec, &sp, err, errlen);
	if (rc)
		return source_open_done(NULL, rc, out, err, errlen);
	h = (struct source_hf *)source_alloc(sizeof(*h), &source_hf_ops, "hf",
					     spec, o);
	if (!h) {
		hf_spec_release(&sp);
		return source_open_done(NULL, -ENOMEM, out, err, errlen);
	}
	h->type = sp.type;
	h->repo_id = sp.repo_id;
	h->revision = sp.revision;
	h->subdir = sp.subdir;
	if (!endpoint && o->env)
		endpoint = getenv("HF_ENDPOINT");
	rc = set_endpoint(h, endpoint, err, errlen);
	if (!rc)
		rc = set_export_dir(h, source_opt_get(o, "hf_cache"), err,
				    errlen);
	if (rc)
		goto out;
	rc = -ENOMEM;
	h->api_id = strdup(h->repo_id);
	h->base.ref = strdup(h->revision);
	if (!h->api_id || !h->base.ref)
		goto out;
	if (asprintf(&h->shown, "%s%s",
		     h->type == HF_MODEL ? "" : type_url_prefix(h->type),
		     h->repo_id) < 0) {
		h->shown = NULL;
		goto out;
	}
	/* A subfolder is its own snapshot: its manifest differs. */
	if (asprintf(&h->base.cache_key, "hf:%s/%s/%s%s%s", h->endpoint,
		     hf_type_plural(h->type), h->repo_id, h->subdir ? ":/" : "",
		     h->subdir ? h->subdir : "") < 0) {
		h->base.cache_key = NULL;
		goto out;
	}
	rc = source_set_token(&h->base, o->token, err, errlen);
out:
	return source_open_done(&h->base, rc, out, err, errlen);
}

static int hf_list(struct source *src, struct engine *e, struct manifest **out,
		   char *err, size_t errlen)
{
	struct source_hf *h = (struct source_hf *)src;
	struct hf_revision rev = { 0 };
	struct manifest *m = NULL;
	int rc;

	*out = NULL;
	if (errlen)
		err[0] = '\0';
	if (!e) {
		snprintf(err, errlen, "listing '%s' needs the network engine",
			 src->spec);
		return -EINVAL;
	}
	rc = resolve(h, e, &rev, err, errlen);
	if (rc)
		goto out;
	rc = manifest_new(&m);
	if (rc)
		goto out;
	rc = list_tree(h, e, &rev, m, err, errlen);
	if (rc)
		goto out;
	if (rev.gated && h->base.auth) {
		rc = probe_gated(h, e, m, err, errlen);
		if (rc)
			goto out;
	}
	rc = source_list_finish(src, m, rev.commit);
	if (rc)
		goto out;
	hlog(HLOG_INFO, HLOG_FETCH,
	     "listed %s@%s at commit %s: %zu files, %" PRIu64 " bytes",
	     h->shown, h->revision, rev.commit, manifest_file_count(m),
	     manifest_total_bytes(m));
	*out = m;
	m = NULL;
out:
	source_list_failed(src->spec, rc, err, errlen);
	hf_revision_release(&rev);
	manifest_free(m);
	return rc;
}

/* ---- environment policy, targets, hooks ------------------------------- */

/*
 * A token from the environment as huggingface_hub cleans it: line breaks
 * removed, surrounding white space stripped. 0 with *out a new string or
 * NULL when nothing is left; -ENOMEM.
 */
static int token_clean(const char *v, char **out)
{
	size_t len = strlen(v), i, n = 0;
	char *t;

	*out = NULL;
	while (len && isspace((unsigned char)v[len - 1]))
		len--;
	while (len && isspace((unsigned char)*v)) {
		v++;
		len--;
	}
	t = malloc(len + 1);
	if (!t)
		return -ENOMEM;
	for (i = 0; i < len; i++)
		if (v[i] != '\r' && v[i] != '\n')
			t[n++] = v[i];
	t[n] = '\0';
	if (n)
		*out = t;
	else
		free(t);
	return 0;
}

/* The token file of the Hugging Face tools: $HF_TOKEN_PATH, else
 * $HF_HOME/token, else $XDG_CACHE_HOME or ~/.cache /huggingface/token.
 * 0, -ENOENT (none can be named), -ENAMETOOLONG. */
static int token_path(char *out, size_t outlen)
{
	const char *p = getenv("HF_TOKEN_PATH");

	if (p && *p)
		return path_fmt(out, outlen, "%s", p);
	p = getenv("HF_HOME");
	if (p && *p)
		return path_fmt(out, outlen, "%s/token", p);
	p = getenv("XDG_CACHE_HOME");
	if (p && *p)
		return path_fmt(out, outlen, "%s/huggingface/token", p);
	p = getenv("HOME");
	if (p && *p)
		return path_fmt(out, outlen, "%s/.cache/huggingface/token", p);
	return -ENOENT;
}

/* $HF_TOKEN, $HUGGING_FACE_HUB_TOKEN, then the token file; none is no
 * error (anonymous access). */
static int hf_env_token(char **out, char *err, size_t errlen)
{
	static const char *const env_names[] = { "HF_TOKEN",
						 "HUGGING_FACE_HUB_TOKEN" };
	char path[PATH_MAX];
	const char *env;
	size_t i;
	int rc;

	*out = NULL;
	for (i = 0; i < sizeof(env_names) / sizeof(env_names[0]); i++) {
		env = getenv(env_names[i]);
		if (!env)
			continue;
		rc = token_clean(env, out);
		if (rc) {
			snprintf(err, errlen, "out of memory");
			return rc;
		}
		if (*out)
			return 0;
	}
	if (token_path(path, sizeof(path)))
		return 0;
	rc = source_read_token_file(path, out);
	if (rc && rc != -ENOENT)
		hlog(HLOG_DEBUG, HLOG_FETCH, "no token from '%s': %s", path,
		     strerror(-rc));
	return 0;
}

/* HF_HUB_OFFLINE=1 (or true, yes, on), as huggingface_hub reads it. */
static bool hf_env_offline(void)
{
	const char *v = getenv("HF_HUB_OFFLINE");

	return v && (!strcmp(v, "1") || !strcasecmp(v, "true") ||
		     !strcasecmp(v, "yes") || !strcasecmp(v, "on"));
}

/*
 * A blob's content id: the endpoint's origin, then the content hash.
 * The hash alone would let a mirror (-o endpoint=) that serves other
 * bytes under a file's hash fill the blob the real Hub's mounts then
 * trust before their whole-file check (a partly read file is never
 * checked); so each endpoint has its own blobs, and a file unchanged
 * between revisions is still stored once per endpoint. An origin too
 * long for idbuf stands as its xxh128.
 */
static void hf_content_id(const struct source_hf *h, const char *cid,
			  char *idbuf, size_t idlen)
{
	XXH128_hash_t o;
	int n;

	n = snprintf(idbuf, idlen, "%s %s", h->origin, cid);
	if (n >= 0 && (size_t)n < idlen)
		return;
	o = XXH3_128bits(h->origin, strlen(h->origin));
	snprintf(idbuf, idlen, "xxh128:%016" PRIx64 "%016" PRIx64 " %s",
		 (uint64_t)o.high64, (uint64_t)o.low64, cid);
}

/* Pinned to a commit, named by its endpoint and content hash: a file
 * unchanged between revisions is stored once. */
static void hf_target(const struct source *src, const struct manifest *m,
		      uint64_t idx, struct fblob_target *t, char *idbuf,
		      size_t idlen)
{
	const struct mentry *en = &m->entries[idx];

	if (!en->content_id) {
		source_url_target(src, m, idx, t, idbuf, idlen);
	} else {
		t->kind = src->kind;
		t->size = en->size;
		t->url = en->url;
		t->name = en->path;
		hf_content_id((const struct source_hf *)src, en->content_id,
			      idbuf, idlen);
		t->content_id = idbuf;
	}
	t->pinned = true;
	t->etag = NULL;
	if (en->content_id && en->hash_kind &&
	    (!strcmp(en->hash_kind, "sha256") ||
	     !strcmp(en->hash_kind, "git-sha1"))) {
		t->hash_kind = en->hash_kind;
		t->hash = en->content_id;
	}
}

/*
 * A verified file goes into the huggingface_hub cache of -o hf_cache=,
 * for use without the mount. Never a partial file: only verified blobs
 * come here, and hf_cache_export renames into place.
 */
static void hf_blob_verified(const struct source *src, const struct manifest *m,
			     uint64_t idx, const char *path)
{
	const struct source_hf *h = (const struct source_hf *)src;
	const struct mentry *e = &m->entries[idx];
	int err;

	if (!h->export_dir)
		return;
	err = hf_cache_export(h->export_dir, src, m, idx, path);
	if (err)
		hlog(HLOG_WARN, HLOG_FETCH,
		     "exporting '%s' to the hf cache '%s' failed: %s", e->path,
		     h->export_dir, strerror(-err));
	else
		hlog(HLOG_DEBUG, HLOG_FETCH,
		     "exported '%s' to the hf cache '%s'", e->path,
		     h->export_dir);
}

static const struct source_optdef hf_options[] = {
	{ "hf_cache", "a folder",
	  "only hf:// sources have a huggingface_hub cache" },
	{ NULL, NULL, NULL },
};

const struct source_ops source_hf_ops = {
	.scheme = "hf",
	.options = hf_options,
	.open = hf_open,
	.env_token = hf_env_token,
	.env_offline = hf_env_offline,
	.list = hf_list,
	.target = hf_target,
	.auth = source_bearer_auth,
	.blob_verified = hf_blob_verified,
	.free = hf_free,
};

/* ---- the huggingface_hub cache ---------------------------------------- */

int hf_cache_resolve_dir(char *out, size_t outlen)
{
	const char *v, *home = getenv("HOME");
	int n;

	v = getenv("HF_HUB_CACHE");
	if (!v || !*v)
		v = getenv("HUGGINGFACE_HUB_CACHE");
	if (v && *v) {
		if (!strncmp(v, "~/", 2) && home && *home)
			n = snprintf(out, outlen, "%s%s", home, v + 1);
		else
			n = snprintf(out, outlen, "%s", v);
	} else if ((v = getenv("HF_HOME")) && *v) {
		if (!strncmp(v, "~/", 2) && home && *home)
			n = snprintf(out, outlen, "%s%s/hub", home, v + 1);
		else
			n = snprintf(out, outlen, "%s/hub", v);
	} else if ((v = getenv("XDG_CACHE_HOME")) && *v) {
		n = snprintf(out, outlen, "%s/huggingface/hub", v);
	} else if (home && *home) {
		n = snprintf(out, outlen, "%s/.cache/huggingface/hub", home);
	} else {
		return -ENOENT;
	}
	return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

/* Copies src (size bytes) into a new file tmp (O_EXCL), fsynced. */
static int copy_to(const char *src, const char *tmp, uint64_t size)
{
	enum { BUF = 1 << 18 };
	char *buf = malloc(BUF);
	uint64_t done = 0;
	int in = -1, outfd = -1, err = 0;

	if (!buf)
		return -ENOMEM;
	/* src is a blob in the cache: never copied through a planted link. */
	in = open(src, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (in < 0) {
		err = -errno;
		goto out;
	}
	outfd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (outfd < 0) {
		err = -errno;
		goto out;
	}
	while (done < size) {
		size_t want = size - done < BUF ? (size_t)(size - done) : BUF;
		ssize_t n;

		/* On the worker pool: an unmount stops the copy here. */
		if (work_cancelled()) {
			err = -ECANCELED;
			goto out;
		}
		n = pread(in, buf, want, (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			goto out;
		}
		if (!n) {
			err = -EIO; /* shrank under us */
			goto out;
		}
		err = pwrite_all(outfd, buf, (size_t)n, done);
		if (err)
			goto out;
		done += (uint64_t)n;
	}
	if (fsync(outfd) < 0)
		err = -errno;
out:
	if (outfd >= 0 && close(outfd) < 0 && !err)
		err = -errno;
	if (in >= 0)
		close(in);
	free(buf);
	return err;
}

/* blobs/<etag>: a hard link of src, or a copy, renamed into place. */
static int place_blob(const char *dst, const char *src, uint64_t size)
{
	char tmp[PATH_MAX];
	struct stat st;
	int err, tries;

	if (stat(src, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != size)
		return -EINVAL; /* not the complete file */
	if (lstat(dst, &st) == 0) {
		if (S_ISREG(st.st_mode) && (uint64_t)st.st_size == size)
			return 0; /* there already */
		hlog(HLOG_WARN, HLOG_STATE,
		     "replacing '%s': not a file of "
		     "%" PRIu64 " bytes",
		     dst, size);
	} else if (errno != ENOENT) {
		return -errno;
	}
	for (tries = 0; tries < 16; tries++) {
		/* huggingface_hub's own in-flight name: its tools clean
		 * up what a killed process leaves. */
		err = path_fmt(tmp, sizeof(tmp), "%s.%08llx.incomplete", dst,
			       (unsigned long long)(cache_nonce() &
						    0xffffffffu));
		if (err)
			return err;
		if (link(src, tmp) == 0)
			break;
		err = -errno;
		if (err == -EEXIST)
			continue;
		if (err != -EXDEV && err != -EPERM && err != -EMLINK &&
		    err != -EOPNOTSUPP)
			return err;
		err = copy_to(src, tmp, size);
		if (err == -EEXIST)
			continue;
		if (err) {
			unlink(tmp);
			return err;
		}
		break;
	}
	if (err == -EEXIST)
		return err;
	if (rename(tmp, dst) < 0) {
		err = -errno;
		unlink(tmp);
		return err;
	}
	/* When dst was already a link to the same inode, rename() did
	 * nothing and tmp is still there. */
	unlink(tmp);
	return fsync_parent(dst);
}

/* path: a symlink to target, replacing anything else atomically. */
static int place_symlink(const char *path, const char *target)
{
	char cur[PATH_MAX], tmp[PATH_MAX];
	ssize_t n;
	int err = 0, tries;

	n = readlink(path, cur, sizeof(cur) - 1);
	if (n >= 0) {
		cur[n] = '\0';
		if (!strcmp(cur, target))
			return 0;
	} else if (errno != ENOENT && errno != EINVAL) {
		return -errno; /* EINVAL: not a symlink, replaced */
	}
	for (tries = 0; tries < 16; tries++) {
		err = path_fmt(tmp, sizeof(tmp), "%s.tmp.%016llx", path,
			       (unsigned long long)cache_nonce());
		if (err)
			return err;
		if (symlink(target, tmp) == 0)
			break;
		err = -errno;
		if (err != -EEXIST)
			return err;
	}
	if (err)
		return err;
	if (rename(tmp, path) < 0) {
		err = -errno;
		unlink(tmp);
		return err;
	}
	return 0;
}

/* refs/<rev>: the commit, no newline, unless it says so already. */
static int place_ref(const char *path, const char *commit)
{
	char cur[64];
	ssize_t n = 0;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd >= 0) {
		n = read(fd, cur, sizeof(cur) - 1);
		close(fd);
		if (n == 40 && !memcmp(cur, commit, 40))
			return 0;
	}
	/* Missing, stale, or not a file: written over atomically. */
	return write_file_atomic(path, commit, 40);
}

int hf_cache_export(const char *hf_cache_dir, const struct source *src,
		    const struct manifest *m, uint64_t idx,
		    const char *blob_path)
{
	const struct source_hf *h = (const struct source_hf *)src;
	const struct mentry *en;
	const char *commit, *etag, *q;
	char repo[PATH_MAX], path[PATH_MAX], target[PATH_MAX];
	char *folder = NULL, *rpath = NULL, *d;
	size_t o, ups;
	int err;

	if (!hf_cache_dir || !*hf_cache_dir || !src ||
	    src->ops != &source_hf_ops || !m || idx >= m->n || !blob_path)
		return -EINVAL;
	en = &m->entries[idx];
	commit = src->version ? src->version : m->version;
	if (en->type != MENTRY_FILE || !commit || !source_is_commit(commit))
		return -EINVAL;
	etag = en->content_id;
	if (!etag || !en->hash_kind ||
	    !((!strcmp(en->hash_kind, "sha256") && is_hex(etag, 64)) ||
	      (!strcmp(en->hash_kind, "git-sha1") && is_hex(etag, 40))))
		return -ENODATA;
	for (q = etag; *q; q++)
		if (isupper((unsigned char)*q))
			return -ENODATA; /* manifests hold lowercase */

	/* models--OWNER--NAME */
	folder = malloc(strlen(h->repo_id) * 2 + 16);
	if (!folder)
		return -ENOMEM;
	o = (size_t)sprintf(folder, "%s--", hf_type_plural(h->type));
	for (q = h->repo_id; *q; q++) {
		if (*q == '/') {
			folder[o++] = '-';
			folder[o++] = '-';
		} else {
			folder[o++] = *q;
		}
	}
	folder[o] = '\0';
	err = path_fmt(repo, sizeof(repo), "%s/%s", hf_cache_dir, folder);
	if (err)
		goto out;

	err = path_fmt(path, sizeof(path), "%s/blobs/%s", repo, etag);
	if (!err)
		err = mkdir_parent(path, 0755);
	if (!err)
		err = place_blob(path, blob_path, en->size);
	if (err)
		goto out;

	/* snapshots/<commit>/<path from the repo root> */
	if (h->subdir) {
		if (asprintf(&rpath, "%s/%s", h->subdir, en->path) < 0)
			rpath = NULL;
	} else {
		rpath = strdup(en->path);
	}
	if (!rpath) {
		err = -ENOMEM;
		goto out;
	}
	for (ups = 2, q = rpath; *q; q++)
		ups += *q == '/';
	if (ups * 3 + strlen("blobs/") + strlen(etag) >= sizeof(target)) {
		err = -ENAMETOOLONG;
		goto out;
	}
	for (d = target, o = 0; o < ups; o++, d += 3)
		memcpy(d, "../", 3);
	sprintf(d, "blobs/%s", etag);
	err = path_fmt(path, sizeof(path), "%s/snapshots/%s/%s", repo, commit,
		       rpath);
	if (!err)
		err = mkdir_parent(path, 0755);
	if (!err)
		err = place_symlink(path, target);
	if (err)
		goto out;

	/* refs/<revision>, nested for "refs/pr/1" */
	if (!source_is_commit(h->revision)) {
		if (!revision_ok(h->revision)) {
			err = -EINVAL;
			goto out;
		}
		err = path_fmt(path, sizeof(path), "%s/refs/%s", repo,
			       h->revision);
		if (!err)
			err = mkdir_parent(path, 0755);
		if (!err)
			err = place_ref(path, commit);
	}
out:
	if (err)
		hlog(HLOG_WARN, HLOG_STATE,
		     "cannot place '%s' in the "
		     "huggingface_hub cache '%s': %s",
		     en ? en->path : "", hf_cache_dir, strerror(-err));
	free(rpath);
	free(folder);
	return err;
}
