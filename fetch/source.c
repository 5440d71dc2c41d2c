/*
 * source.c: the scheme registry, scheme options, token and environment
 * policy dispatch, snapshots (list, pin, or fall back to the pinned one
 * when the server can't be reached), blob targets and hooks, and the
 * helpers the schemes share (DESIGN.md "Sources"; the interface of a
 * scheme is fetch/source_i.h).
 *
 * No locks: a source is used by one thread while it lists; afterwards
 * source_target() and source_blob_verified() only read it.
 */
#include "fetch/source.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "fetch/dirindex.h"
#include "fetch/source_i.h"
#include "state/hlog.h"

#define SOURCE_MAX_ENTRIES_DEFAULT 1000000
#define SOURCE_MAX_DEPTH_DEFAULT 64
#define SOURCE_MAX_INFLIGHT_DEFAULT 16
#define SCHEME_MAX 32

static const struct {
	const char *scheme;
	const struct source_ops *ops;
} registry[] = {
	// clang-format off
	{ "http", &source_http_ops },
	{ "https", &source_http_ops },
	{ "file", &source_file_ops },
	{ "hf", &source_hf_ops },
	{ "s3", &source_s3_ops },
	// clang-format on
};

#define EXPECTED_FORMS "expected http://, https://, file://, hf:// or s3://"

/* The scheme a registered option belongs to, or NULL. */
static const struct source_optdef *optdef_find(const struct source_ops *ops,
					       const char *name)
{
	const struct source_optdef *d;

	for (d = ops->options; d && d->name; d++)
		if (!strcmp(d->name, name))
			return d;
	return NULL;
}

static const struct source_optdef *optdef_any(const char *name)
{
	const struct source_optdef *d;
	size_t k;

	for (k = 0; k < sizeof(registry) / sizeof(registry[0]); k++) {
		d = optdef_find(registry[k].ops, name);
		if (d)
			return d;
	}
	return NULL;
}

int source_option_check(const char *name, const char *value, char *err,
			size_t errlen)
{
	const struct source_optdef *d = optdef_any(name);

	if (!d)
		return 1;
	if (!value || !*value) {
		snprintf(err, errlen, "bad value '' for option %s: expected %s",
			 name, d->expected);
		return -EINVAL;
	}
	return 0;
}

const char *source_opt_get(const struct source_opts *o, const char *name)
{
	const char *v = NULL;
	size_t i;

	for (i = 0; o && i < o->noptions; i++)
		if (!strcmp(o->options[i].name, name))
			v = o->options[i].value; /* the last one wins */
	return v;
}

/* Every scheme option given is one the scheme takes: 0, or -ENOPROTOOPT
 * with the line of the scheme that does take it. */
static int options_check(const struct source_ops *ops,
			 const struct source_opts *o, char *err, size_t errlen)
{
	const struct source_optdef *d;
	size_t i;

	for (i = 0; i < o->noptions; i++) {
		const struct source_option *so = &o->options[i];

		if (optdef_find(ops, so->name))
			continue;
		d = optdef_any(so->name);
		snprintf(err, errlen, "bad value '%s' for option %s: %s",
			 so->value, so->name,
			 d ? d->elsewhere : "not an option of this source");
		return -ENOPROTOOPT;
	}
	return 0;
}

int source_read_token_file(const char *path, char **out)
{
	char buf[SOURCE_TOKEN_MAX + 1];
	size_t len = 0, start = 0;
	ssize_t n;
	int fd, err = 0;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		n = read(fd, buf + len, sizeof(buf) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			goto out_close;
		}
		if (!n)
			break;
		len += (size_t)n;
		if (len == sizeof(buf)) {
			err = -EFBIG;
			goto out_close;
		}
	}
	while (len && strchr(" \t\r\n\f\v", buf[len - 1]))
		len--;
	while (start < len && strchr(" \t\r\n\f\v", buf[start]))
		start++;
	if (start == len) {
		err = -ENODATA;
		goto out_close;
	}
	*out = strndup(buf + start, len - start);
	if (!*out)
		err = -ENOMEM;
out_close:
	explicit_bzero(buf, sizeof(buf));
	close(fd);
	return err;
}

/*
 * The token to send, when none was given: token_file= if given (any
 * source: the user chose it), else with env the scheme's own discovery
 * (hf: $HF_TOKEN, the Hugging Face token file), so a token meant for one
 * service never goes to another server. 0 with *out owned or NULL.
 */
static int find_token(const struct source_ops *ops, const struct source_opts *o,
		      char **out, char *err, size_t errlen)
{
	int rc;

	*out = NULL;
	if (o->token_file) {
		rc = source_read_token_file(o->token_file, out);
		if (rc == -ENODATA)
			snprintf(err, errlen, "token file '%s' is empty",
				 o->token_file);
		else if (rc)
			snprintf(err, errlen, "cannot read token file '%s': %s",
				 o->token_file, strerror(-rc));
		return rc;
	}
	if (o->env && ops->env_token)
		return ops->env_token(out, err, errlen);
	return 0;
}

/* The registered scheme of spec; -EINVAL or -EPROTONOSUPPORT with a
 * line. */
static int scheme_find(const char *spec, const struct source_ops **ops,
		       char *err, size_t errlen)
{
	char scheme[SCHEME_MAX + 1];
	size_t i = 0, k;

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
	for (k = 0; k < sizeof(registry) / sizeof(registry[0]); k++) {
		if (!strcmp(registry[k].scheme, scheme)) {
			*ops = registry[k].ops;
			return 0;
		}
	}
	snprintf(err, errlen, "unknown scheme '%s' in SOURCE '%s' (%s)", scheme,
		 spec, EXPECTED_FORMS);
	return -EPROTONOSUPPORT;
}

int source_open(const char *spec, const struct source_opts *o,
		struct source **out, char *err, size_t errlen)
{
	const struct source_ops *ops = NULL;
	struct source_opts eff = { 0 };
	struct source *src = NULL;
	char *token = NULL;
	int rc;

	*out = NULL;
	if (o)
		eff = *o;
	if (!eff.max_entries)
		eff.max_entries = SOURCE_MAX_ENTRIES_DEFAULT;
	if (eff.max_depth <= 0)
		eff.max_depth = SOURCE_MAX_DEPTH_DEFAULT;
	if (eff.max_inflight <= 0)
		eff.max_inflight = SOURCE_MAX_INFLIGHT_DEFAULT;
	rc = scheme_find(spec, &ops, err, errlen);
	if (rc)
		return rc;
	if (!eff.token) {
		rc = find_token(ops, &eff, &token, err, errlen);
		if (rc)
			goto out;
		eff.token = token;
	}
	rc = ops->open(spec, &eff, &src, err, errlen);
	if (rc)
		goto out;
	rc = options_check(ops, &eff, err, errlen);
	if (rc)
		goto out;
	if (eff.env && ops->env_offline)
		src->env_offline = ops->env_offline();
	*out = src;
	src = NULL;
out:
	source_free(src);
	if (token) {
		explicit_bzero(token, strlen(token));
		free(token);
	}
	return rc;
}

struct source *source_alloc(size_t size, const struct source_ops *ops,
			    const char *kind, const char *spec,
			    const struct source_opts *o)
{
	struct source *src = calloc(1, size);

	if (!src)
		return NULL;
	src->ops = ops;
	src->kind = kind;
	src->max_entries = o ? o->max_entries : SOURCE_MAX_ENTRIES_DEFAULT;
	src->max_depth = o ? o->max_depth : SOURCE_MAX_DEPTH_DEFAULT;
	src->max_inflight = o && o->max_inflight > 0 ?
				    o->max_inflight :
				    SOURCE_MAX_INFLIGHT_DEFAULT;
	src->spec = strdup(spec);
	if (!src->spec) {
		ops->free(src);
		return NULL;
	}
	return src;
}

int source_open_done(struct source *src, int rc, struct source **out, char *err,
		     size_t errlen)
{
	*out = NULL;
	if (!rc) {
		*out = src;
		return 0;
	}
	if (rc == -ENOMEM)
		snprintf(err, errlen, "out of memory");
	source_free(src);
	return rc;
}

bool source_env_offline(const struct source *src)
{
	return src->env_offline;
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
			snprintf(err, errlen,
				 "the token contains control "
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

bool source_is_commit(const char *ref)
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
	} else if (source_is_commit(src->ref)) {
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
			 "cache",
			 src->spec, reason);
		goto fail;
	}
	if (lerr) {
		snprintf(err, errlen,
			 "'%s' unreachable (%s) and its snapshot in the cache "
			 "cannot be read: %s",
			 src->spec, reason, strerror(-lerr));
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
static void url_identity(const struct mentry *en, const char *etag, char *idbuf,
			 size_t idlen)
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
			return; /* truncated, the best there is */
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

void source_url_target(const struct source *src, const struct manifest *m,
		       uint64_t idx, struct fblob_target *t, char *idbuf,
		       size_t idlen)
{
	const struct mentry *en = &m->entries[idx];
	const char *etag = NULL;

	if (en->content_id && en->hash_kind && !strcmp(en->hash_kind, "etag"))
		etag = en->content_id;
	t->kind = src->kind;
	t->size = en->size;
	t->url = en->url;
	t->etag = etag;
	t->name = en->path;
	url_identity(en, etag, idbuf, idlen);
	t->content_id = idbuf;
}

void source_target(const struct source *src, const struct manifest *m,
		   uint64_t idx, struct fblob_target *t, char *idbuf,
		   size_t idlen)
{
	struct http_auth auth = { 0 };

	memset(t, 0, sizeof(*t));
	if (idlen)
		idbuf[0] = '\0';
	src->ops->target(src, m, idx, t, idbuf, idlen);
	if (src->ops->auth) {
		src->ops->auth(src, &auth);
		t->auth = auth.header;
		t->aws_sigv4 = auth.aws_sigv4;
		t->userpwd = auth.userpwd;
	}
}

void source_bearer_auth(const struct source *src, struct http_auth *out)
{
	memset(out, 0, sizeof(*out));
	out->header = src->auth;
}

const char *source_file_url(const struct source *src, const struct manifest *m,
			    uint64_t idx)
{
	(void)src;
	if (idx >= m->n || m->entries[idx].type != MENTRY_FILE)
		return NULL;
	return m->entries[idx].url;
}

void source_blob_verified(const struct source *src, const struct manifest *m,
			  const struct cache *c, struct fblob *fb)
{
	const char *hash = fblob_hash(fb);
	char path[PATH_MAX];
	size_t i;

	if (!src->ops->blob_verified || !hash)
		return;
	if (cache_blob_path(c, fblob_hex(fb), "", path, sizeof(path)))
		return;
	for (i = 0; i < m->n; i++) {
		const struct mentry *e = &m->entries[i];

		if (e->type == MENTRY_FILE && e->content_id &&
		    !strcmp(e->content_id, hash))
			src->ops->blob_verified(src, m, i, path);
	}
}

int source_list_finish(struct source *src, struct manifest *m,
		       const char *version)
{
	char *v = strdup(version);
	int rc;

	free(m->source);
	free(m->version);
	m->source = strdup(src->spec);
	m->version = strdup(version);
	if (!v || !m->source || !m->version) {
		free(v);
		return -ENOMEM;
	}
	rc = manifest_finish(m);
	if (rc) {
		free(v);
		return rc;
	}
	free(src->version);
	src->version = v;
	return 0;
}

void source_list_failed(const char *what, int rc, char *err, size_t errlen)
{
	if (rc == -ENOMEM)
		snprintf(err, errlen, "listing '%s' failed: out of memory",
			 what);
	else if (rc && errlen && !err[0])
		snprintf(err, errlen, "listing '%s' failed: %s", what,
			 strerror(-rc));
}

bool source_err_is_network(int err)
{
	switch (err < 0 ? -err : err) {
	case ECONNREFUSED:
	case EHOSTUNREACH: /* the engine's answer to failed lookups */
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

char *source_join(const char *a, const char *sep, const char *b,
		  const char *tail)
{
	char *s;

	if (asprintf(&s, "%s%s%s%s", a, sep, b, tail) < 0)
		return NULL;
	return s;
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
	memcpy(s, dec, n + 1); /* decoding never grows */
	free(dec);
	return 0;
}
