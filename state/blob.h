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

/* The chunk size whose blobs are named as before chunk sizes were part
 * of the name (existing caches keep working). */
#define BLOB_CHUNK_SIZE_DEFAULT (4u << 20)

/*
 * A blob's identity: the chunk size is part of it, so two mounts with
 * different chunk sizes on one cache never share (or reset) a blob's
 * sidecar, sums and lock bytes. With BLOB_CHUNK_SIZE_DEFAULT it is
 * cache_identity(kind, content_id, size); otherwise the xxh128 of kind
 * NUL content_id NUL size (u64 LE) chunk_size (u32 LE), which no default
 * identity shares an encoding with (it is 4 bytes longer after the same
 * two NUL-terminated strings). blob_identity_hex is its 32-hex name.
 */
void blob_identity(const char *kind, const char *content_id, uint64_t size,
		   uint32_t chunk_size, uint8_t identity[16]);
void blob_identity_hex(const char *kind, const char *content_id, uint64_t size,
		       uint32_t chunk_size, char hex[33]);

/*
 * For tools that look at a cache without a mount (status, verify), which
 * do not know the chunk size a mount used: the first of prefer (when not
 * 0), BLOB_CHUNK_SIZE_DEFAULT, then every power of two from
 * CHUNK_SIZE_MIN to CHUNK_SIZE_MAX whose blob has a data file in c.
 * Returns 0 with its name and chunk size, or -ENOENT with the name for
 * prefer (or the default) when none has.
 */
int blob_find(const struct cache *c, const char *kind, const char *content_id,
	      uint64_t size, uint32_t prefer, char hex[33],
	      uint32_t *chunk_size);

/*
 * Opens the blob of (kind, content_id, size) in cache with chunk_size
 * (named blob_identity_hex):
 * creates its files if needed, loads its sidecar into the chunk map. No
 * sidecar: an empty map, and the sums are kept (another process may be
 * filling them). A sidecar that is rejected (any sidecar_decode error,
 * -ENOLINK included: it describes another data file; or a link or FIFO in
 * its place) is logged once as a warning and the blob starts over: empty
 * map, sums cleared, the rejected sidecar and the .verified marker
 * removed. So does a data file that was missing or shorter than size
 * (cache_blob_open's data_short) when a sidecar or marker was there: its
 * bytes are gone, never served as zeros. Openers of one blob at once (two
 * threads, two processes) set it up one at a time (cache.h, the setup
 * lock), so a blob being made is never taken for one whose bytes were
 * lost. Returns 0; -EINVAL for a bad chunk size; the error of creating or
 * opening the files; or the error of reading the sidecar (-EIO, -EISDIR,
 * ...), in which case nothing is reset.
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

/*
 * Punches chunks idx[0..n) out of an open blob, to free their space (a
 * file larger than the cache limit being streamed): each that is DONE
 * becomes MISSING in the map, their sums entries are zeroed, the sidecar
 * is saved without them (blob_save: data and sums fdatasynced first),
 * the sums are fdatasynced, and only then is each chunk's byte range
 * punched (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE). A crash at any
 * point leaves no bit set over missing bytes: until the sidecar without
 * them is durable their bytes are all there, and a zeroed (or stale)
 * sums entry never matches a hole's zeros unless the chunk was zeros.
 * *freed: the data file's allocated bytes (st_blocks) that went.
 *
 * Preconditions: the caller has excluded every reader and writer of
 * these chunks in this process (none QUEUED or INFLIGHT, no read copying
 * out of them), holds the in-use lock exclusively (cache_blob_inuse_
 * upgrade: no other process has the blob open), and is the only caller
 * of blob_save for the blob meanwhile (the saver's step is its own).
 *
 * Never on a data file linked elsewhere too (st_nlink > 1, an export
 * into a huggingface_hub cache): -EMLINK, nothing changed; the caller
 * evicts (unlinks our name) instead. -EINVAL for an idx past the end;
 * -EOPNOTSUPP when the file system cannot punch (the chunks are MISSING
 * and out of the sidecar then, their bytes stay); or the error of
 * saving (nothing punched).
 */
int blob_punch(struct blob *b, const uint64_t *idx, size_t n, uint64_t *freed)
	__attribute__((warn_unused_result));

/* Allocated bytes (st_blocks * 512, never apparent sizes) of the blob's
 * data, sums and sidecar files; a file that cannot be stat'ed counts 0. */
uint64_t blob_allocated(const struct blob *b);

#endif
