/*
 * source: where a mount's tree and bytes come from (DESIGN.md "Sources").
 *
 * One small interface, a registry of schemes, one file per scheme
 * (source_http.c, source_file.c, later source_hf.c). A source lists a
 * snapshot into a manifest and says, for each file, which URL serves its
 * bytes and what identifies its content. Retries, concurrency and caching
 * are shared (engine, sched).
 */
#ifndef HOLLOWFS_FETCH_SOURCE_H
#define HOLLOWFS_FETCH_SOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fetch/sched.h"
#include "state/cache.h"
#include "state/manifest.h"

struct engine;
struct source;

/* Options that sources may use; strings borrowed for the source's life. */
struct source_opts {
	const char *token;	/* bearer token for the origin, or NULL */
	const char *endpoint;	/* hf: Hub endpoint, or NULL */
	size_t max_entries;	/* listing cap, default 1000000 */
	int max_depth;		/* folder depth cap, default 64 */
};

struct source_ops {
	const char *scheme;	/* "http", "https", "file" */
	/* Parses spec; one line into err on failure (-EINVAL). o is never
	 * NULL: source_open passes it with the defaults filled in. */
	int (*open)(const char *spec, const struct source_opts *o,
		    struct source **out, char *err, size_t errlen);
	/* Lists the snapshot (network); one line into err on failure. */
	int (*list)(struct source *src, struct engine *e,
		    struct manifest **out, char *err, size_t errlen);
	void (*free)(struct source *src);
};

/* Common part; a scheme embeds it first and may keep more behind it. */
struct source {
	const struct source_ops *ops;
	const char *kind;	/* identity kind: "http", "file", "hf" */
	char *spec;		/* the SOURCE as given (owned) */
	char *cache_key;	/* key for snapshots/ and refs/ (owned) */
	char *version;		/* snapshot version, set by list (owned) */
	char *ref;		/* the ref the version was resolved from, as
				 * saved under refs/KEY/ (owned); NULL means
				 * "latest" (sources without revisions) */
	char *auth;		/* "Authorization: Bearer ..." or NULL (owned);
				 * never logged */
};

/*
 * Opens SOURCE by its scheme. Errors write one line into err, naming
 * what and why: "malformed SOURCE 'x': ...", "unknown scheme 'ftp' ...".
 */
int source_open(const char *spec, const struct source_opts *o,
		struct source **out, char *err, size_t errlen)
	__attribute__((warn_unused_result));
void source_free(struct source *src);	/* accepts NULL */

/*
 * Lists the snapshot and pins it: on success the manifest is saved in the
 * cache (snapshots/KEY/VERSION.json, and the version as ref src->ref, or
 * "latest"). When offline is set, or the listing fails because the
 * network or the server cannot be reached, the snapshot the ref last
 * resolved to is loaded instead and *used_saved is set (the caller warns).
 * A source whose ref is already a full commit id loads that snapshot. Other failures (404, 401...)
 * are returned with their line in err.
 */
int source_snapshot(struct source *src, struct engine *e, struct cache *c,
		    bool offline, struct manifest **out, bool *used_saved,
		    char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * Fills t for file entry idx: pointers borrowed from src, m and idbuf,
 * which receives the content identity. For http and file sources the
 * identity is the URL plus the ETag (or the mtime when there is none),
 * as ETags are only unique per URL; other kinds may use content hashes.
 */
void source_target(const struct source *src, const struct manifest *m,
		   uint64_t idx, struct fblob_target *t, char *idbuf,
		   size_t idlen);

/* True for errors meaning "could not reach the server". */
bool source_err_is_network(int err);

/* Scheme registry (source.c). */
extern const struct source_ops source_http_ops;
extern const struct source_ops source_file_ops;
extern const struct source_ops source_hf_ops;

/* Helpers shared by schemes. */
/*
 * Sets src->auth to "Authorization: Bearer TOKEN" when token is not NULL
 * or empty. A token with control characters (a second line pasted in) is
 * refused with one line in err that does not echo it: -EINVAL; -ENOMEM.
 */
int source_set_token(struct source *src, const char *token, char *err,
		     size_t errlen) __attribute__((warn_unused_result));
/* Percent-encodes one path component (RFC 3986 unreserved kept). */
char *url_escape_component(const char *s);
/* Percent-decodes in place; -EINVAL on a bad escape or an embedded NUL. */
int url_unescape(char *s) __attribute__((warn_unused_result));
/* Parses an HTTP date (RFC 7231 IMF-fixdate) or nginx autoindex mtime. */
int http_parse_date(const char *s, int64_t *out)
	__attribute__((warn_unused_result));

#endif
