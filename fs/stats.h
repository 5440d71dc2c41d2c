/*
 * stats: the live counters of a mount as one JSON object, the value of
 * the root's user.hollowfs.stats xattr, and its parser for hollowfs
 * status. Pure functions (jansson), no state, no locks.
 *
 *   {"format": 1, "source": "...", "version": "...", "cache": "DIR",
 *    "files": N, "bytes": N,
 *    "bytes_fetched": N, "bytes_served": N, "bytes_from_cache": N,
 *    "reads": N, "read_errors": N,
 *    "requests": N, "retries": N, "errors": N,
 *    "connections": {"in_use": N, "max": N},
 *    "queued": {"demand": N, "readahead": N, "background": N},
 *    "inflight": N, "open_blobs": N}
 *
 * bytes_served counts every byte the mount's reads returned,
 * bytes_from_cache those answered at once from chunks already cached;
 * bytes_fetched is what came from the network into the cache.
 */
#ifndef HOLLOWFS_FS_STATS_H
#define HOLLOWFS_FS_STATS_H

#include <stddef.h>
#include <stdint.h>

struct fs_stats {
	/* Borrowed when formatting; owned after fs_stats_parse. May be
	 * NULL (then JSON null). */
	char *source;
	char *version;
	char *cache;
	uint64_t files, bytes; /* of the snapshot */
	uint64_t bytes_fetched, bytes_served, bytes_from_cache;
	uint64_t reads, read_errors;
	uint64_t requests, retries, errors;
	uint64_t conn_in_use, conn_max;
	uint64_t queued[3]; /* by enum sched_prio */
	uint64_t inflight, open_blobs;
};

/* *out: a new malloc'd JSON text, compact, no newline. 0 or -ENOMEM. */
int fs_stats_format(const struct fs_stats *st, char **out)
	__attribute__((warn_unused_result));

/* Parses what fs_stats_format wrote: 0, -EBADMSG (not JSON, not an
 * object, an unknown format or a field of the wrong type; a missing
 * number reads 0), -ENOMEM. Release with fs_stats_release. */
int fs_stats_parse(const char *text, size_t len, struct fs_stats *st)
	__attribute__((warn_unused_result));
void fs_stats_release(struct fs_stats *st);

#endif
