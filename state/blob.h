/*
 * blob: one cached file's local copy as a whole: its three cache files,
 * its chunk map (loaded from the sidecar) and the saver's step.
 *
 * A blob is opened once per process per identity (the fetch scheduler
 * keeps a registry and the reference count); its fields are read-only
 * after blob_open except through the chunk map, which is thread-safe.
 */
#ifndef HOLLOWFS_STATE_BLOB_H
#define HOLLOWFS_STATE_BLOB_H

#include <stdbool.h>
#include <stdint.h>

#include "state/cache.h"
#include "state/chunkmap.h"
#include "state/sidecar.h"

struct blob {
	char hex[33]; /* name in the cache */
	char state_name[40]; /* hex + ".state", in files.dir_fd */
	/* size, chunk size, identity, and the data file it is bound to */
	struct sidecar_layout layout;
	uint64_t nchunks;
	struct cache_blob_files files;
	struct chunkmap *map; /* owned */
	char *sidecar_path; /* owned; for log lines and tests (everything
			     * is opened relative to files.dir_fd) */
};

/*
 * Opens the blob of (kind, content_id, size) in cache with chunk_size:
 * creates its files if needed, loads its sidecar into the chunk map. No
 * sidecar: an empty map, and the sums are kept (another process may be
 * filling them). A sidecar that is rejected (any sidecar_decode error,
 * -ENOLINK included: it describes another data file; or a link or FIFO in
 * its place) is logged once as a warning and the blob starts over: empty
 * map, sums cleared, the rejected sidecar and the .verified marker
 * removed. So does a data file that was missing or shorter than size
 * (cache_blob_open's data_short) when a sidecar or marker was there: its
 * bytes are gone, never served as zeros. Returns 0; -EINVAL for a bad
 * chunk size; the error of creating or opening the files; or the error of
 * reading the sidecar (-EIO, -EISDIR, ...), in which case nothing is reset.
 */
int blob_open(const struct cache *c, const char *kind, const char *content_id,
	      uint64_t size, uint32_t chunk_size, struct blob **out)
	__attribute__((warn_unused_result));

/* Closes the files and frees; does NOT save. Accepts NULL. */
void blob_free(struct blob *b);

/*
 * The saver's step: when chunks became DONE since the last save (or a
 * saved one left DONE), fdatasync data and sums, then write the sidecar of
 * the set that was DONE before the sync started. Returns 0 (also when there
 * was nothing to do, without any sync) or the error; on error no chunk
 * becomes durable, and the sidecar on disk is the old one (or, if only the
 * final fsync of its folder failed, the new one).
 *
 * A failed fdatasync loses data: the kernel marks the pages clean anyway
 * and the next sync succeeds without writing them. So when a sync fails,
 * every chunk that was DONE and not durable is dropped (chunkmap_drop_
 * undurable: MISSING again, its sums entry cleared) and is fetched again
 * when wanted; it never reaches a sidecar. The caller (the scheduler)
 * must requeue chunks that parked reads still wait for.
 * Must not be called by two threads at once for one blob (the
 * scheduler's saver is the only caller).
 */
int blob_save(struct blob *b) __attribute__((warn_unused_result));

/*
 * Looks at the disk for a chunk another process may have completed:
 * *done is true when its sums entry matches its bytes. The map is not
 * changed (the scheduler owns transitions). Returns 0, -EINVAL for an idx
 * past the end, or a read error.
 */
int blob_probe_chunk(struct blob *b, uint64_t idx, bool *done)
	__attribute__((warn_unused_result));

/*
 * The sums entry of chunk idx (8 bytes, no hashing): 0 means the chunk is
 * certainly not complete on disk, anything else that blob_probe_chunk
 * must decide. A sums file too short reads as 0. Returns 0 or a read
 * error.
 */
int blob_sums_entry(const struct blob *b, uint64_t idx, uint64_t *sum)
	__attribute__((warn_unused_result));

#endif
