/*
 * source: where a mount's tree and bytes come from (DESIGN.md "Sources").
 *
 * One small interface, a registry of schemes, one file per scheme
 * (source_http.c, source_file.c, source_hf.c). A source lists a snapshot
 * into a manifest and says, for each file, which request serves its bytes
 * and what identifies its content. Retries, concurrency and caching are
 * shared (engine, sched).
 *
 * struct source is opaque: callers (fs/) never name a scheme. What a
 * scheme does differently (its options, its token and offline policy, how
 * it authenticates, what it does with a verified file) is behind
 * struct source_ops in fetch/source_i.h.
 *
 * No locks: a source is used by one thread while it is opened and lists;
 * afterwards it is only read, from any thread.
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

/* A scheme option (-o NAME=VALUE) as given; strings borrowed. */
struct source_option {
	const char *name;
	const char *value;
};

/* Options that sources may use; strings borrowed for the source's life. */
struct source_opts {
	const char *token; /* bearer token for the origin, or NULL */
	const char *token_file; /* without token: read it from this file
				 * (any scheme: the user chose it) */
	const char *endpoint; /* API endpoint (hf: the Hub), or NULL */
	bool env; /* apply the scheme's environment policy:
				 * token discovery (hf: HF_TOKEN, ...), its
				 * endpoint variable, offline mode */
	const struct source_option *options; /* scheme options */
	size_t noptions;
	size_t max_entries; /* listing cap, default 1000000: an http
				 * listing with more fails, file and hf
				 * ones stop there (a warning) */
	int max_depth; /* folder depth cap, default 64 */
	int max_inflight; /* listing requests in flight at once
				 * (-o connections), default 16 */
};

/*
 * Checks a -o option for the schemes: returns 1 when name is no scheme's
 * option (the caller goes on with it), 0 when it is one and value is
 * acceptable, or -EINVAL with one line in err ("bad value '' for option
 * hf_cache: expected a folder").
 */
int source_option_check(const char *name, const char *value, char *err,
			size_t errlen) __attribute__((warn_unused_result));

/*
 * Opens SOURCE by its scheme. Errors write one line into err, naming
 * what and why: "malformed SOURCE 'x': ...", "unknown scheme 'ftp' ...",
 * "cannot read token file ...". A scheme option given to a scheme that
 * does not take it is -ENOPROTOOPT ("bad value 'DIR' for option
 * hf_cache: only hf:// sources have ..."): a usage error.
 */
int source_open(const char *spec, const struct source_opts *o,
		struct source **out, char *err, size_t errlen)
	__attribute__((warn_unused_result));
void source_free(struct source *src); /* accepts NULL */

/* True when the environment asked for offline mode (with
 * source_opts.env; hf: HF_HUB_OFFLINE=1, as huggingface_hub does). */
bool source_env_offline(const struct source *src);

/*
 * Lists the snapshot and pins it: on success the manifest is saved in the
 * cache (snapshots/KEY/VERSION.json, and the version as ref src->ref, or
 * "latest"). When offline is set, or the listing fails because the
 * network or the server cannot be reached, the snapshot the ref last
 * resolved to is loaded instead and *used_saved is set (the caller warns).
 * A source whose ref is already a full commit id loads that snapshot.
 * Other failures (404, 401...) are returned with their line in err.
 */
int source_snapshot(struct source *src, struct engine *e, struct cache *c,
		    bool offline, struct manifest **out, bool *used_saved,
		    char *err, size_t errlen)
	__attribute__((warn_unused_result));

/*
 * Fills t for file entry idx: pointers borrowed from src, m and idbuf,
 * which receives the content identity (each scheme decides it: URL plus
 * ETag or mtime, or a content hash), and the authentication of its
 * requests.
 */
void source_target(const struct source *src, const struct manifest *m,
		   uint64_t idx, struct fblob_target *t, char *idbuf,
		   size_t idlen);

/* The URL serving file entry idx (user.hollowfs.source), or NULL.
 * Borrowed from m. */
const char *source_file_url(const struct source *src, const struct manifest *m,
			    uint64_t idx);

/*
 * The scheduler's on_verified, routed to the source: fb (a complete blob
 * that passed its hash, local copy in c) is handed to the scheme's hook
 * for every file entry of m with that content (hf: placed into the
 * huggingface_hub cache given with -o hf_cache=). No lock held; may copy
 * a whole file.
 */
void source_blob_verified(const struct source *src, const struct manifest *m,
			  const struct cache *c, struct fblob *fb);

/* True for errors meaning "could not reach the server". */
bool source_err_is_network(int err);

/* Percent-encodes one path component (RFC 3986 unreserved kept). */
char *url_escape_component(const char *s);
/* Percent-decodes in place; -EINVAL on a bad escape or an embedded NUL. */
int url_unescape(char *s) __attribute__((warn_unused_result));

#endif
