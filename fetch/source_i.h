/*
 * source_i.h: the inside of a source, shared by source.c and the schemes
 * (source_http.c, source_file.c, source_hf.c) and by their unit tests.
 * Nothing outside fetch/ includes it: callers see fetch/source.h only.
 *
 * A scheme is a struct source_ops: everything a caller would otherwise
 * special-case by scheme (the request target of a file, how a request
 * is authenticated, environment policy such as token discovery and
 * offline mode, its own -o options, what happens when a blob is
 * verified) is one of its members. source.c dispatches; it never names a
 * scheme but in its registry.
 *
 * Ownership between source_free() and a scheme: source_free() frees the
 * common strings of struct source (spec, cache_key, version, ref, auth),
 * then calls ops->free(), which frees what the scheme keeps behind them
 * and the object itself. A scheme's open() that fails half-way hands its
 * object, with ops set, to source_open_done(), which frees it.
 */
#ifndef HOLLOWFS_FETCH_SOURCE_I_H
#define HOLLOWFS_FETCH_SOURCE_I_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fetch/engine.h"
#include "fetch/sched.h"
#include "fetch/source.h"
#include "state/manifest.h"

/* An option only some schemes take (-o NAME=VALUE, e.g. hf_cache=). */
struct source_optdef {
	const char *name; /* "hf_cache" */
	const char *expected; /* said of an empty value: "a folder" */
	const char *elsewhere; /* why other schemes refuse it: "only
				 * hf:// sources have a ..." */
};

struct source_ops {
	const char *scheme; /* "http", "file", "hf" (for log lines) */
	/* The options of this scheme, ended by a NULL name; or NULL. */
	const struct source_optdef *options;
	/* Parses spec; one line into err on failure (-EINVAL). o is never
	 * NULL: source_open passes it with the defaults and the token
	 * filled in. */
	int (*open)(const char *spec, const struct source_opts *o,
		    struct source **out, char *err, size_t errlen);
	/*
	 * Environment policy, asked only when source_opts.env is set.
	 * env_token: the token to use when none was given and no
	 * token_file= either: 0 with *out a new string (wiped and freed by
	 * the caller) or NULL; an error with one line in err. NULL: this
	 * scheme takes no token from the environment (so a token meant for
	 * one service never goes to another server).
	 * env_offline: true when the environment asks for offline mode.
	 * NULL: never.
	 */
	int (*env_token)(char **out, char *err, size_t errlen);
	bool (*env_offline)(void);
	/* Lists the snapshot (network); one line into err on failure. */
	int (*list)(struct source *src, struct engine *e, struct manifest **out,
		    char *err, size_t errlen);
	/*
	 * Fills t (zeroed by the caller) for file entry idx of m, all but
	 * t->auth: kind, size, url, name, etag or pinned and hash, and the
	 * content identity written into idbuf, with t->content_id = idbuf.
	 */
	void (*target)(const struct source *src, const struct manifest *m,
		       uint64_t idx, struct fblob_target *t, char *idbuf,
		       size_t idlen);
	/* How a request to the origin is authenticated (strings borrowed
	 * from src); NULL: never. */
	void (*auth)(const struct source *src, struct http_auth *out);
	/*
	 * File entry idx of m is complete and verified; path is its local
	 * copy. Called through source_blob_verified() from the thread that
	 * verified it, no lock held. NULL: nothing to do.
	 */
	void (*blob_verified)(const struct source *src,
			      const struct manifest *m, uint64_t idx,
			      const char *path);
	void (*free)(struct source *src);
};

/* Common part; a scheme embeds it first and may keep more behind it. */
struct source {
	const struct source_ops *ops;
	const char *kind; /* identity kind: "http", "file", "hf" */
	char *spec; /* the SOURCE as given (owned) */
	char *cache_key; /* key for snapshots/ and refs/ (owned) */
	char *version; /* snapshot version, set by list (owned) */
	char *ref; /* the ref the version was resolved from, as
				 * saved under refs/KEY/ (owned); NULL means
				 * "latest" (sources without revisions) */
	char *auth; /* "Authorization: Bearer ..." or NULL (owned);
				 * never logged */
	size_t max_entries; /* listing caps, from source_opts */
	int max_depth;
	int max_inflight; /* listing requests in flight at once */
	bool env_offline; /* the environment asked for offline mode */
};

/* Scheme registry (source.c). */
extern const struct source_ops source_http_ops;
extern const struct source_ops source_file_ops;
extern const struct source_ops source_hf_ops;
extern const struct source_ops source_s3_ops;

/* ---- helpers shared by schemes (source.c) ---- */

/*
 * Allocates a scheme's object of size bytes (struct source first),
 * zeroed, with ops, kind, a copy of spec and the listing caps of o.
 * NULL when out of memory.
 */
struct source *source_alloc(size_t size, const struct source_ops *ops,
			    const char *kind, const char *spec,
			    const struct source_opts *o);

/*
 * The one exit of a scheme's open(): with rc 0, *out = src and 0; else
 * src (which may be NULL) is freed, "out of memory" written into err for
 * -ENOMEM, *out = NULL and rc returned.
 */
int source_open_done(struct source *src, int rc, struct source **out, char *err,
		     size_t errlen) __attribute__((warn_unused_result));

/* The value of scheme option name in o, or NULL when not given. */
const char *source_opt_get(const struct source_opts *o, const char *name);

/*
 * Ends a successful listing: m takes the spec as its source and version
 * as its version, is finished (manifest_finish), and then src->version
 * becomes version. 0, -ENOMEM, or manifest_finish's error (src->version
 * is unchanged then).
 */
int source_list_finish(struct source *src, struct manifest *m,
		       const char *version) __attribute__((warn_unused_result));

/* The line of a failed listing of what, unless the scheme wrote one. */
void source_list_failed(const char *what, int rc, char *err, size_t errlen);

/*
 * Sets src->auth to "Authorization: Bearer TOKEN" when token is not NULL
 * or empty. A token with control characters (a second line pasted in) is
 * refused with one line in err that does not echo it: -EINVAL; -ENOMEM.
 */
int source_set_token(struct source *src, const char *token, char *err,
		     size_t errlen) __attribute__((warn_unused_result));

/* ops->auth of schemes that send src->auth, a bearer token line. */
void source_bearer_auth(const struct source *src, struct http_auth *out);

/*
 * ops->target of sources without content hashes (http, file): the
 * identity is the URL plus the ETag (or the mtime when there is none), as
 * ETags are only unique per URL; its xxh128 when it does not fit idbuf.
 */
void source_url_target(const struct source *src, const struct manifest *m,
		       uint64_t idx, struct fblob_target *t, char *idbuf,
		       size_t idlen);

/* True for a full commit id: 40 lowercase hex digits (NULL: false). */
bool source_is_commit(const char *ref);

/* a + sep + b + tail, a new string (URLs and paths of a listing); NULL
 * when out of memory. */
char *source_join(const char *a, const char *sep, const char *b,
		  const char *tail);

/*
 * Reads a token file into a new string (*out, owned, to wipe and free),
 * white space stripped. 0, -ENODATA when it is empty, -EFBIG when it is
 * larger than SOURCE_TOKEN_MAX, or the error of reading it.
 */
#define SOURCE_TOKEN_MAX 4096
int source_read_token_file(const char *path, char **out)
	__attribute__((warn_unused_result));

#endif
