/*
 * source.c: the scheme registry, snapshots (list, pin, or fall back to the
 * pinned one when the server can't be reached), blob targets, and the URL
 * helpers the schemes share (DESIGN.md "Sources").
 *
 * Ownership between source_free() and a scheme: source_free() frees the
 * common strings of struct source (spec, cache_key, version, auth), then
 * calls ops->free(), which frees what the scheme keeps behind them and
 * the object itself. A scheme's open() that fails half-way may hand its
 * object, with ops set, to source_free().
 *
 * No locks: a source is used by one thread while it lists; afterwards
 * source_target() only reads.
 */
#include "fetch/source.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "fetch/dirindex.h"
#include "state/hlog.h"

#define SOURCE_MAX_ENTRIES_DEFAULT 1000000
#define SOURCE_MAX_DEPTH_DEFAULT 64
#define SCHEME_MAX 32

static const struct {
	const char *scheme;
	const struct source_ops *ops;
} registry[] = {
	{ "http", &source_http_ops },
	{ "https", &source_http_ops },
	{ "file", &source_file_ops },
	{ "hf", &source_hf_ops },
};

#define EXPECTED_FORMS "expected http://, https:// or file://"

int source_open(const char *spec, const struct source_opts *o,
		struct source **out, char *err, size_t errlen)
{
	struct source_opts eff = { 0 };
	char scheme[SCHEME_MAX + 1];
	size_t i = 0, k;

	*out = NULL;
	if (o)
		eff = *o;
	if (!eff.max_entries)
		eff.max_entries = SOURCE_MAX_ENTRIES_DEFAULT;
	if (eff.max_depth <= 0)
		eff.max_depth = SOURCE_MAX_DEPTH_DEFAULT;
	if (!spec || !*spec) {
		snprintf(err, errlen, "malformed SOURCE '': it is empty (%s)",
			 EXPECTED_FORMS);
		return -EINVAL;
	}
	while (isascii((unsigned char)spec[i]) &&
	       (isalnum((unsigned char)spec[i]) || spec[i] == '+' ||
		spec[i] == '-' || spec[i] == '.'))
		i++;
	if (!i || spec[i] != ':' || !isalpha((unsigned char)spec[0])) {
		if (spec[0] == '/')
			snprintf(err, errlen,
				 "malformed SOURCE '%s': no scheme (%s; for a "
				 "local folder write file://%s)",
				 spec, EXPECTED_FORMS, spec);
		else
			snprintf(err, errlen,
				 "malformed SOURCE '%s': no scheme (%s)", spec,
				 EXPECTED_FORMS);
		return -EINVAL;
	}
	if (i > SCHEME_MAX) {
		snprintf(err, errlen, "unknown scheme '%.*s...' in SOURCE (%s)",
			 SCHEME_MAX, spec, EXPECTED_FORMS);
		return -EPROTONOSUPPORT;
	}
	for (k = 0; k < i; k++)
		scheme[k] = (char)tolower((unsigned char)spec[k]);
	scheme[i] = '\0';
	for (k = 0; k < sizeof(registry) / sizeof(registry[0]); k++)
		if (!strcmp(registry[k].scheme, scheme))
			return registry[k].ops->open(spec, &eff, out, err,
						     errlen);
	snprintf(err, errlen, "unknown scheme '%s' in SOURCE '%s' (%s)", scheme,
		 spec, EXPECTED_FORMS);
	return -EPROTONOSUPPORT;
}

void source_free(struct source *src)
{
	if (!src)
		return;
	free(src->spec);
	free(src->cache_key);
	free(src->version);
	free(src->ref);
	free(src->auth);
	src->spec = src->cache_key = src->version = src->auth = NULL;
	src->ref = NULL;
	src->ops->free(src);
}

int source_set_token(struct source *src, const char *token, char *err,
		     size_t errlen)
{
	const char *p;

	if (!token || !*token)
		return 0;
	for (p = token; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			/* Never echoed: it is a secret. */
			snprintf(err, errlen, "the token contains control "
				 "characters (a second line?)");
			return -EINVAL;
		}
	}
	if (asprintf(&src->auth, "Authorization: Bearer %s", token) < 0) {
		src->auth = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* Pins a fresh listing: saves it as the snapshot and ref "latest". A
 * cache that can't take it costs offline remounts only: a warning. */
static void snapshot_save(struct source *src, struct cache *c,
			  const struct manifest *m)
{
	int err;

	if (!c)
		return;
	err = cache_save_manifest(c, src->cache_key, src->version, m);
	if (!err)
		err = cache_save_ref(c, src->cache_key,
				     src->ref ? src->ref : "latest",
				     src->version);
	if (err)
		hlog(HLOG_WARN, HLOG_FETCH,
		     "cannot save the snapshot of '%s' in the cache: %s",
		     src->spec, strerror(-err));
}

/* True for a full commit id: 40 lowercase hex digits. */
static bool is_commit_id(const char *ref)
{
	size_t i;

	if (!ref)
		return false;
	for (i = 0; i < 40; i++)
		if (!isxdigit((unsigned char)ref[i]) ||
		    isupper((unsigned char)ref[i]))
			return false;
	return ref[40] == '\0';
}

int source_snapshot(struct source *src, struct engine *e, struct cache *c,
		    bool offline, struct manifest **out, bool *used_saved,
		    char *err, size_t errlen)
{
	char why[1024] = "";
	const char *reason;
	struct manifest *m = NULL;
	char *version = NULL;
	int rc = -ENETDOWN, lerr;

	*out = NULL;
	*used_saved = false;
	if (!offline) {
		rc = src->ops->list(src, e, &m, why, sizeof(why));
		if (!rc) {
			if (!src->version) {
				src->version = strdup("listing");
				if (!src->version) {
					manifest_free(m);
					snprintf(err, errlen, "out of memory");
					return -ENOMEM;
				}
			}
			snapshot_save(src, c, m);
			*out = m;
			return 0;
		}
		if (!source_err_is_network(rc)) {
			snprintf(err, errlen, "%s", why);
			return rc;
		}
		reason = strerror(-rc);
	} else {
		reason = "offline mode";
		snprintf(why, sizeof(why), "offline mode");
	}
	if (!c) {
		lerr = -ENOENT;
	} else if (is_commit_id(src->ref)) {
		/* A commit names its snapshot itself: no ref to follow. */
		version = strdup(src->ref);
		lerr = version ? 0 : -ENOMEM;
	} else {
		lerr = cache_load_ref(c, src->cache_key,
				      src->ref ? src->ref : "latest", &version);
	}
	if (!lerr)
		lerr = cache_load_manifest(c, src->cache_key, version, &m);
	if (lerr == -ENOENT) {
		snprintf(err, errlen,
			 "'%s' unreachable (%s) and no snapshot of it in the "
			 "cache", src->spec, reason);
		goto fail;
	}
	if (lerr) {
		snprintf(err, errlen,
			 "'%s' unreachable (%s) and its snapshot in the cache "
			 "cannot be read: %s", src->spec, reason,
			 strerror(-lerr));
		goto fail;
	}
	free(src->version);
	src->version = version;
	*out = m;
	*used_saved = true;
	/* The caller's warning says why the saved snapshot is used. */
	snprintf(err, errlen, "%s", why);
	return 0;
fail:
	free(version);
	return rc;
}

/* For http and file: the URL plus the ETag, or plus the mtime. When it
 * does not fit idbuf, its xxh128 stands for it. */
static void url_identity(const struct mentry *en, const char *etag,
			 char *idbuf, size_t idlen)
{
	char mt[32];
	const char *url = en->url ? en->url : en->path;
	const char *tail = etag;
	int n;

	if (!etag) {
		snprintf(mt, sizeof(mt), "mtime=%" PRId64, en->mtime);
		tail = mt;
	}
	n = snprintf(idbuf, idlen, "%s\n%s", url, tail);
	if (n >= 0 && (size_t)n < idlen)
		return;
	{
		XXH3_state_t *st = XXH3_createState();
		XXH128_hash_t h;

		if (!st)
			return;	/* truncated, the best there is */
		XXH3_128bits_reset(st);
		XXH3_128bits_update(st, url, strlen(url));
		XXH3_128bits_update(st, "\n", 1);
		XXH3_128bits_update(st, tail, strlen(tail));
		h = XXH3_128bits_digest(st);
		XXH3_freeState(st);
		snprintf(idbuf, idlen, "xxh128:%016" PRIx64 "%016" PRIx64,
			 (uint64_t)h.high64, (uint64_t)h.low64);
	}
}

void source_target(const struct source *src, const struct manifest *m,
		   uint64_t idx, struct fblob_target *t, char *idbuf,
		   size_t idlen)
{
	const struct mentry *en = &m->entries[idx];
	const char *etag = NULL;

	memset(t, 0, sizeof(*t));
	if (en->content_id && en->hash_kind && !strcmp(en->hash_kind, "etag"))
		etag = en->content_id;
	t->kind = src->kind;
	t->size = en->size;
	t->url = en->url;
	t->auth = src->auth;
	t->etag = etag;
	t->name = en->path;
	if (!strcmp(src->kind, "hf")) {
		/* Pinned to a commit, named by its content hash: a file
		 * unchanged between revisions is stored once. */
		t->pinned = true;
		t->etag = NULL;
		if (en->content_id && en->hash_kind &&
		    (!strcmp(en->hash_kind, "sha256") ||
		     !strcmp(en->hash_kind, "git-sha1"))) {
			t->hash_kind = en->hash_kind;
			t->hash = en->content_id;
		}
	}
	if (idlen)
		idbuf[0] = '\0';
	if (strcmp(src->kind, "http") && strcmp(src->kind, "file") &&
	    en->content_id) {
		snprintf(idbuf, idlen, "%s", en->content_id);
	} else {
		url_identity(en, etag, idbuf, idlen);
	}
	t->content_id = idbuf;
}

bool source_err_is_network(int err)
{
	switch (err < 0 ? -err : err) {
	case ECONNREFUSED:
	case EHOSTUNREACH:	/* the engine's answer to failed lookups */
	case ENETUNREACH:
	case ETIMEDOUT:
	case ENETDOWN:
	case ECONNRESET:
	case ECONNABORTED:
	case EHOSTDOWN:
		return true;
	default:
		return false;
	}
}

char *url_escape_component(const char *s)
{
	return dirindex_escape(s, strlen(s));
}

int url_unescape(char *s)
{
	size_t len = strlen(s), n;
	char *dec;
	int err;

	err = dirindex_unescape(s, len, &dec, &n);
	if (err)
		return err;
	memcpy(s, dec, n + 1);	/* decoding never grows */
	free(dec);
	return 0;
}

int http_parse_date(const char *s, int64_t *out)
{
	return dirindex_parse_date(s, strlen(s), out);
}
