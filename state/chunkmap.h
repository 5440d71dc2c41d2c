/*
 * chunkmap: the in-memory state of every chunk of one blob.
 *
 * States are atomics, so "is this range readable?" is lock-free; each
 * transition is made by the scheduler under its own lock (chunkmap_set),
 * and the map's internal lock (taken after any caller lock, never held
 * across anything) guards the counts and the durability bitmaps.
 *
 * Durability rule (DESIGN.md): a chunk is readable as soon as it is DONE,
 * but may reach the sidecar only after its bytes were synced. The saver
 * calls chunkmap_sync_begin() before fdatasync() of the data, and
 * chunkmap_sync_end() after; only chunks DONE at sync_begin become durable.
 */
#ifndef HOLLOWFS_STATE_CHUNKMAP_H
#define HOLLOWFS_STATE_CHUNKMAP_H

#include <stdbool.h>
#include <stdint.h>

#include "state/sidecar.h"

enum chunk_state {
	CHUNK_MISSING,
	CHUNK_QUEUED,
	CHUNK_INFLIGHT,
	CHUNK_DONE,
	CHUNK_FAILED,
};

struct chunkmap;

/* All chunks MISSING. -EINVAL on a bad chunk size, -ENOMEM. */
int chunkmap_new(uint64_t file_size, uint32_t chunk_size, struct chunkmap **out)
	__attribute__((warn_unused_result));
void chunkmap_free(struct chunkmap *map); /* accepts NULL */

uint64_t chunkmap_nchunks(const struct chunkmap *map);
uint32_t chunkmap_chunk_size(const struct chunkmap *map);
uint64_t chunkmap_file_size(const struct chunkmap *map);

/* Byte range of chunk idx: [*off, *off + *len); the last may be short. */
void chunkmap_chunk_range(const struct chunkmap *map, uint64_t idx,
			  uint64_t *off, uint64_t *len);

/* Chunks covering bytes [off, off + len), clipped to the file. Returns
 * false when the range is empty or past the end. */
bool chunkmap_chunks_for(const struct chunkmap *map, uint64_t off, uint64_t len,
			 uint64_t *first, uint64_t *last);

/* idx < nchunks, for this and chunkmap_set() (asserted). */
enum chunk_state chunkmap_get(const struct chunkmap *map, uint64_t idx);

/* Sets a state and keeps the counts; setting DONE on a DONE chunk is a
 * no-op. Leaving DONE is allowed (a verification failure discards it). */
void chunkmap_set(struct chunkmap *map, uint64_t idx, enum chunk_state st);

/* True when every chunk in [first, last] is DONE (lock-free); false when
 * last is past the end, true for an empty range (first > last). */
bool chunkmap_all_done(const struct chunkmap *map, uint64_t first,
		       uint64_t last);

uint64_t chunkmap_done_count(const struct chunkmap *map);

/* Bytes covered by DONE chunks (the last chunk counts its real length). */
uint64_t chunkmap_done_bytes(const struct chunkmap *map);

/*
 * The first run of chunks that are MISSING or FAILED at or after from,
 * wrapping around to 0 if wrap is set; at most max_count long (0: no
 * limit). A run itself never wraps: it stops at the last chunk. Returns 0
 * and fills *first and *count, or -ENOENT when there is none. Lock-free,
 * so a hint: the caller claims the chunks under its own lock.
 */
int chunkmap_next_missing(const struct chunkmap *map, uint64_t from, bool wrap,
			  uint64_t max_count, uint64_t *first, uint64_t *count);

/* Marks the sidecar's chunks DONE and durable (at load, on a new map).
 * -EINVAL when the sidecar's size, chunk size or chunk count does not fit
 * (the identity is not compared). */
int chunkmap_load(struct chunkmap *map, const struct sidecar *sc)
	__attribute__((warn_unused_result));

/*
 * Starts a sync: copies the set of DONE chunks into snap (whose layout
 * must fit) and returns how many of them are not durable yet, plus one
 * when a chunk that the sidecar on disk may record has left DONE since the
 * last sync (the sidecar must be written again without it); 0: nothing to
 * save. A sync that failed is simply abandoned: the next sync_begin starts
 * over.
 */
uint64_t chunkmap_sync_begin(struct chunkmap *map, struct sidecar *snap);

/* Ends a sync: every chunk set in snap that stayed DONE since sync_begin
 * is now durable (one that left DONE meanwhile, even if DONE again, is
 * not: its new bytes were not synced). */
void chunkmap_sync_end(struct chunkmap *map, const struct sidecar *snap);

/*
 * After a failed sync: every chunk that is DONE and not durable becomes
 * MISSING (its bytes may never reach the disk: the kernel marked their
 * pages clean, and the next sync would succeed without them), and is set
 * in dropped (an empty sidecar of this layout, used as a set). Returns
 * how many. Like chunkmap_set, a transition the scheduler should make
 * under its own lock; chunks it has queued or in flight are left alone.
 */
uint64_t chunkmap_drop_undurable(struct chunkmap *map, struct sidecar *dropped);

uint64_t chunkmap_durable_count(const struct chunkmap *map);

#endif
