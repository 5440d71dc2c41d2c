/*
 * peek: a blob of the cache as another process sees it, for the command
 * line tools (hollowfs status, hollowfs verify): its sidecar read and
 * checked without creating, growing or resetting anything, and the
 * repairs verify makes, one chunk at a time under its lock byte.
 *
 * What is trusted is what blob_open would trust: a sidecar whose layout
 * (read from its own header) names this blob, and which is bound to the
 * data file there now. A blob without one has nothing complete.
 *
 * No threads, no locks of its own; cross-process safety is the chunk
 * lock bytes of cache.h (cache_chunk_trylock), and the in-use lock while
 * the files are open.
 */
#ifndef HOLLOWFS_STATE_PEEK_H
#define HOLLOWFS_STATE_PEEK_H

#include <stdbool.h>
#include <stdint.h>

#include "state/sidecar.h"

struct cache;

struct blob_peek {
	char hex[33];
	struct sidecar *sc; /* owned; NULL when nothing is trusted */
	int data_fd, sums_fd, lock_fd; /* -1 unless opened for checks */
};

/*
 * Reads the sidecar of blob hex in c. Returns 0 with p->sc set when it is
 * trusted, 0 with p->sc NULL when the blob has no trusted sidecar
 * (missing, rejected, or its data file missing or short), -EINVAL for a
 * bad hex, or a read error. With open_files, the data (read-only), sums
 * and lock files are opened too (never created), the lock file first and
 * under the shared in-use lock (state/cache.h: no evictor removes the
 * blob while it is held): then -ENOENT when one is missing. Release with
 * blob_peek_release.
 */
int blob_peek_open(const struct cache *c, const char *hex, bool open_files,
		   struct blob_peek *p) __attribute__((warn_unused_result));
void blob_peek_release(struct blob_peek *p);

/* Bytes covered by the complete chunks (the last one counts its real
 * length); 0 without a sidecar. */
uint64_t blob_peek_done_bytes(const struct blob_peek *p);

/* Byte range [*off, *off + *len) of chunk idx (< p->sc->nchunks). */
void blob_peek_chunk_range(const struct blob_peek *p, uint64_t idx,
			   uint64_t *off, uint64_t *len);

/*
 * Drops chunks [first, last] (complete or not) so they are fetched
 * again: their bits leave the sidecar first (saved atomically), then
 * their sums entries are cleared, so a crash between the two leaves a
 * chunk a fetch probes and refetches, never one trusted. The caller holds
 * their lock bytes. With a whole-file drop the .verified marker goes too.
 * Returns 0 or the error of saving.
 */
int blob_peek_drop(const struct cache *c, struct blob_peek *p, uint64_t first,
		   uint64_t last) __attribute__((warn_unused_result));

#endif
