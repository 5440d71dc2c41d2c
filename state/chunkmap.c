/*
 * chunkmap.c: per-chunk states of one blob.
 *
 * Lock order: any caller lock (the scheduler's), then map->lock, then
 * nothing. map->lock is never held across I/O or a callback.
 *
 * map->state[] is read without the lock (chunkmap_get, chunkmap_all_done,
 * chunkmap_next_missing) and written only under map->lock, so the counts
 * and bitmaps below always agree with it.
 *
 * Durability bookkeeping, all under map->lock:
 *   done      chunks whose state is DONE
 *   durable   chunks the sidecar on disk records, whose bytes were synced
 *             before it was written, and that stayed DONE since
 *   pending   the chunks DONE at the last chunkmap_sync_begin() that have
 *             stayed DONE since; only these may become durable at
 *             chunkmap_sync_end()
 *   ndirty    chunks DONE and not durable
 *   removals  bumped when a chunk that the sidecar on disk (or the one
 *             being written) may record leaves DONE: the sidecar must then
 *             be written again even if no chunk is new
 */
#include "state/chunkmap.h"

#include <assert.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct chunkmap {
	uint64_t file_size;
	uint64_t nchunks;
	uint32_t chunk_size;
	_Atomic uint8_t *state; /* nchunks; written under lock */

	pthread_mutex_t lock;
	size_t nbytes; /* of each bitmap: nchunks / 8 + 1 */
	uint8_t *done; /* protected by lock */
	uint8_t *durable; /* protected by lock */
	uint8_t *pending; /* protected by lock */
	uint64_t done_count; /* protected by lock */
	uint64_t durable_count; /* protected by lock */
	uint64_t ndirty; /* protected by lock */
	uint64_t removals; /* protected by lock */
	uint64_t removals_at_begin; /* protected by lock */
	uint64_t removals_synced; /* protected by lock; removals that
					 * the last written sidecar covers */
};

static bool bit_test(const uint8_t *bits, uint64_t idx)
{
	return bits[idx / 8] & (1u << (idx % 8));
}

static void bit_set(uint8_t *bits, uint64_t idx)
{
	bits[idx / 8] |= (uint8_t)(1u << (idx % 8));
}

static void bit_clear(uint8_t *bits, uint64_t idx)
{
	bits[idx / 8] &= (uint8_t) ~(1u << (idx % 8));
}

int chunkmap_new(uint64_t file_size, uint32_t chunk_size, struct chunkmap **out)
{
	struct chunkmap *map;
	uint64_t nbytes, i;
	int err = -ENOMEM;

	*out = NULL;
	if (!chunk_size_valid(chunk_size))
		return -EINVAL;
	map = calloc(1, sizeof(*map));
	if (!map)
		return -ENOMEM;
	map->file_size = file_size;
	map->chunk_size = chunk_size;
	map->nchunks = chunk_count(file_size, chunk_size);
	nbytes = map->nchunks / 8 + 1;
	if (map->nchunks > SIZE_MAX / sizeof(*map->state) || nbytes > SIZE_MAX)
		goto out_free;
	map->nbytes = (size_t)nbytes;
	map->state = malloc(map->nchunks ? (size_t)map->nchunks : 1);
	map->done = calloc(map->nbytes, 1);
	map->durable = calloc(map->nbytes, 1);
	map->pending = calloc(map->nbytes, 1);
	if (!map->state || !map->done || !map->durable || !map->pending)
		goto out_free;
	for (i = 0; i < map->nchunks; i++)
		atomic_init(&map->state[i], CHUNK_MISSING);
	err = -pthread_mutex_init(&map->lock, NULL);
	if (err)
		goto out_free;
	*out = map;
	return 0;

out_free:
	free(map->pending);
	free(map->durable);
	free(map->done);
	free((void *)map->state);
	free(map);
	return err;
}

void chunkmap_free(struct chunkmap *map)
{
	if (!map)
		return;
	pthread_mutex_destroy(&map->lock);
	free(map->pending);
	free(map->durable);
	free(map->done);
	free((void *)map->state);
	free(map);
}

uint64_t chunkmap_nchunks(const struct chunkmap *map)
{
	return map->nchunks;
}

uint32_t chunkmap_chunk_size(const struct chunkmap *map)
{
	return map->chunk_size;
}

uint64_t chunkmap_file_size(const struct chunkmap *map)
{
	return map->file_size;
}

void chunkmap_chunk_range(const struct chunkmap *map, uint64_t idx,
			  uint64_t *off, uint64_t *len)
{
	assert(idx < map->nchunks);
	if (idx >= map->nchunks) {
		*off = map->file_size;
		*len = 0;
		return;
	}
	*off = idx * map->chunk_size;
	*len = map->file_size - *off;
	if (*len > map->chunk_size)
		*len = map->chunk_size;
}

bool chunkmap_chunks_for(const struct chunkmap *map, uint64_t off, uint64_t len,
			 uint64_t *first, uint64_t *last)
{
	uint64_t end;

	if (!len || off >= map->file_size)
		return false;
	end = map->file_size - off < len ? map->file_size : off + len;
	*first = off / map->chunk_size;
	*last = (end - 1) / map->chunk_size;
	return true;
}

enum chunk_state chunkmap_get(const struct chunkmap *map, uint64_t idx)
{
	assert(idx < map->nchunks);
	if (idx >= map->nchunks)
		return CHUNK_MISSING;
	return (enum chunk_state)atomic_load(&map->state[idx]);
}

/* chunkmap_set with map->lock held. */
static void set_locked(struct chunkmap *map, uint64_t idx, enum chunk_state st)
{
	enum chunk_state old;

	old = (enum chunk_state)atomic_load(&map->state[idx]);
	if (old == st)
		return;
	atomic_store(&map->state[idx], (uint8_t)st);
	if (st == CHUNK_DONE) {
		/* Leaving DONE cleared durable: new bytes are never durable. */
		bit_set(map->done, idx);
		map->done_count++;
		map->ndirty++;
	} else if (old == CHUNK_DONE) {
		bit_clear(map->done, idx);
		map->done_count--;
		/*
		 * The sidecar on disk, or the one being written now, may
		 * record this chunk: it must be written again.
		 */
		if (bit_test(map->durable, idx) || bit_test(map->pending, idx))
			map->removals++;
		if (bit_test(map->durable, idx)) {
			bit_clear(map->durable, idx);
			map->durable_count--;
		} else {
			map->ndirty--;
		}
		bit_clear(map->pending, idx);
	}
}

void chunkmap_set(struct chunkmap *map, uint64_t idx, enum chunk_state st)
{
	assert(idx < map->nchunks);
	assert(st >= CHUNK_MISSING && st <= CHUNK_FAILED);
	if (idx >= map->nchunks)
		return;

	pthread_mutex_lock(&map->lock);
	set_locked(map, idx, st);
	pthread_mutex_unlock(&map->lock);
}

bool chunkmap_all_done(const struct chunkmap *map, uint64_t first,
		       uint64_t last)
{
	uint64_t i;

	if (last >= map->nchunks)
		return false;
	for (i = first; i <= last; i++)
		if (atomic_load(&map->state[i]) != CHUNK_DONE)
			return false;
	return true;
}

uint64_t chunkmap_done_count(const struct chunkmap *map)
{
	struct chunkmap *m = (struct chunkmap *)map; /* the lock only */
	uint64_t n;

	pthread_mutex_lock(&m->lock);
	n = m->done_count;
	pthread_mutex_unlock(&m->lock);
	return n;
}

uint64_t chunkmap_done_bytes(const struct chunkmap *map)
{
	struct chunkmap *m = (struct chunkmap *)map; /* the lock only */
	uint64_t bytes;

	pthread_mutex_lock(&m->lock);
	bytes = m->done_count * m->chunk_size;
	if (m->nchunks && bit_test(m->done, m->nchunks - 1))
		bytes -= m->nchunks * m->chunk_size - m->file_size;
	pthread_mutex_unlock(&m->lock);
	return bytes;
}

static bool is_missing(const struct chunkmap *map, uint64_t idx)
{
	uint8_t st = atomic_load(&map->state[idx]);

	return st == CHUNK_MISSING || st == CHUNK_FAILED;
}

int chunkmap_next_missing(const struct chunkmap *map, uint64_t from, bool wrap,
			  uint64_t max_count, uint64_t *first, uint64_t *count)
{
	uint64_t i, n, end = map->nchunks;

	if (from >= map->nchunks) {
		if (!wrap)
			return -ENOENT;
		from = 0;
	}
	for (i = from; i < end && !is_missing(map, i); i++)
		;
	if (i == end && wrap && from) {
		end = from;
		for (i = 0; i < end && !is_missing(map, i); i++)
			;
	}
	if (i >= end)
		return -ENOENT;
	/* A run never wraps: it stops at the last chunk. */
	for (n = 1; i + n < map->nchunks && (!max_count || n < max_count) &&
		    is_missing(map, i + n);
	     n++)
		;
	*first = i;
	*count = n;
	return 0;
}

static bool layout_fits(const struct chunkmap *map, const struct sidecar *sc)
{
	return sc->layout.file_size == map->file_size &&
	       sc->layout.chunk_size == map->chunk_size &&
	       sc->nchunks == map->nchunks;
}

int chunkmap_load(struct chunkmap *map, const struct sidecar *sc)
{
	uint64_t i;

	if (!layout_fits(map, sc))
		return -EINVAL;
	pthread_mutex_lock(&map->lock);
	for (i = 0; i < map->nchunks; i++) {
		if (!sidecar_test(sc, i))
			continue;
		if (!bit_test(map->done, i)) {
			atomic_store(&map->state[i], CHUNK_DONE);
			bit_set(map->done, i);
			map->done_count++;
			map->ndirty++;
		}
		if (!bit_test(map->durable, i)) {
			bit_set(map->durable, i);
			map->durable_count++;
			map->ndirty--;
		}
	}
	pthread_mutex_unlock(&map->lock);
	return 0;
}

uint64_t chunkmap_sync_begin(struct chunkmap *map, struct sidecar *snap)
{
	uint64_t n;

	assert(layout_fits(map, snap));
	if (!layout_fits(map, snap))
		return 0;
	pthread_mutex_lock(&map->lock);
	memcpy(snap->bits, map->done, map->nbytes - 1);
	if (map->nchunks % 8)
		snap->bits[map->nbytes - 1] = map->done[map->nbytes - 1];
	snap->done_count = map->done_count;
	memcpy(map->pending, map->done, map->nbytes);
	map->removals_at_begin = map->removals;
	n = map->ndirty + (map->removals != map->removals_synced);
	pthread_mutex_unlock(&map->lock);
	return n;
}

void chunkmap_sync_end(struct chunkmap *map, const struct sidecar *snap)
{
	uint64_t i;

	assert(layout_fits(map, snap));
	if (!layout_fits(map, snap))
		return;
	pthread_mutex_lock(&map->lock);
	for (i = 0; i < map->nbytes; i++) {
		uint8_t newly = (uint8_t)(map->pending[i] & ~map->durable[i]);
		uint8_t snapped =
			i < map->nchunks / 8 + (map->nchunks % 8 != 0) ?
				snap->bits[i] :
				0;

		/* pending is a subset of done, so these are DONE now. */
		newly &= snapped;
		map->durable[i] |= newly;
		map->durable_count += (uint64_t)__builtin_popcount(newly);
		map->ndirty -= (uint64_t)__builtin_popcount(newly);
		map->pending[i] = 0;
	}
	/* Removals after sync_begin are not in this sidecar. */
	map->removals_synced = map->removals_at_begin;
	pthread_mutex_unlock(&map->lock);
}

uint64_t chunkmap_drop_undurable(struct chunkmap *map, struct sidecar *dropped)
{
	uint64_t i, n = 0;

	assert(layout_fits(map, dropped));
	if (!layout_fits(map, dropped))
		return 0;
	pthread_mutex_lock(&map->lock);
	for (i = 0; i < map->nchunks && map->ndirty; i++) {
		if (!bit_test(map->done, i) || bit_test(map->durable, i))
			continue;
		set_locked(map, i, CHUNK_MISSING);
		sidecar_set(dropped, i);
		n++;
	}
	pthread_mutex_unlock(&map->lock);
	return n;
}

uint64_t chunkmap_durable_count(const struct chunkmap *map)
{
	struct chunkmap *m = (struct chunkmap *)map; /* the lock only */
	uint64_t n;

	pthread_mutex_lock(&m->lock);
	n = m->durable_count;
	pthread_mutex_unlock(&m->lock);
	return n;
}
