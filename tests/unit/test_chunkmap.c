/* test_chunkmap.c: chunk states, counts, searches and durability. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "state/chunkmap.h"

#define KIB (1ull << 10)
#define MIB (1ull << 20)
#define GIB (1ull << 30)
#define CS (64 * KIB)

static struct chunkmap *mk_map(uint64_t file_size, uint32_t chunk_size)
{
	struct chunkmap *map = NULL;

	assert_int_equal(chunkmap_new(file_size, chunk_size, &map), 0);
	assert_non_null(map);
	return map;
}

static struct sidecar *mk_snap(const struct chunkmap *map)
{
	struct sidecar_layout l;
	struct sidecar *sc = NULL;

	memset(&l, 0, sizeof(l));
	l.file_size = chunkmap_file_size(map);
	l.chunk_size = chunkmap_chunk_size(map);
	assert_int_equal(sidecar_new(&l, &sc), 0);
	return sc;
}

static void test_new_rejects_bad_chunk_size(void **state)
{
	struct chunkmap *map = (void *)1;

	assert_int_equal(chunkmap_new(1000, 1000, &map), -EINVAL);
	assert_null(map);
	assert_int_equal(chunkmap_new(1000, 128 * MIB, &map), -EINVAL);
	assert_int_equal(chunkmap_new(1000, 64 * KIB + 4, &map), -EINVAL);
	chunkmap_free(NULL);
}

static void test_accessors_and_ranges(void **state)
{
	struct chunkmap *map = mk_map(10 * CS + 123, CS);
	uint64_t off, len;

	assert_int_equal(chunkmap_nchunks(map), 11);
	assert_int_equal(chunkmap_chunk_size(map), CS);
	assert_int_equal(chunkmap_file_size(map), 10 * CS + 123);
	chunkmap_chunk_range(map, 0, &off, &len);
	assert_int_equal(off, 0);
	assert_int_equal(len, CS);
	chunkmap_chunk_range(map, 10, &off, &len);
	assert_int_equal(off, 10 * CS);
	assert_int_equal(len, 123);
	chunkmap_free(map);

	map = mk_map(4 * CS, CS); /* exact multiple: full last chunk */
	chunkmap_chunk_range(map, 3, &off, &len);
	assert_int_equal(off, 3 * CS);
	assert_int_equal(len, CS);
	chunkmap_free(map);

	map = mk_map(17 * GIB, CS); /* offsets past 32 bits */
	assert_int_equal(chunkmap_nchunks(map), 278528);
	chunkmap_chunk_range(map, 278527, &off, &len);
	assert_int_equal(off, 17 * GIB - CS);
	assert_int_equal(len, CS);
	chunkmap_free(map);

	map = mk_map(100, 64 * MIB); /* smaller than one chunk */
	assert_int_equal(chunkmap_nchunks(map), 1);
	chunkmap_chunk_range(map, 0, &off, &len);
	assert_int_equal(len, 100);
	chunkmap_free(map);

	map = mk_map(0, CS);
	assert_int_equal(chunkmap_nchunks(map), 0);
	chunkmap_free(map);
}

static void test_chunks_for_clips(void **state)
{
	struct chunkmap *map = mk_map(10 * CS + 123, CS);
	uint64_t first = 99, last = 99;

	assert_false(chunkmap_chunks_for(map, 0, 0, &first, &last));
	assert_false(chunkmap_chunks_for(map, 10 * CS + 123, 1, &first, &last));
	assert_false(chunkmap_chunks_for(map, UINT64_MAX, 5, &first, &last));
	assert_int_equal(first, 99);

	assert_true(chunkmap_chunks_for(map, 0, 1, &first, &last));
	assert_int_equal(first, 0);
	assert_int_equal(last, 0);
	assert_true(chunkmap_chunks_for(map, CS - 1, 2, &first, &last));
	assert_int_equal(first, 0);
	assert_int_equal(last, 1);
	assert_true(chunkmap_chunks_for(map, CS, CS, &first, &last));
	assert_int_equal(first, 1);
	assert_int_equal(last, 1);
	/* Past the end: clipped to the last chunk. */
	assert_true(chunkmap_chunks_for(map, 5 * CS, 100 * CS, &first, &last));
	assert_int_equal(first, 5);
	assert_int_equal(last, 10);
	/* off + len overflows 64 bits. */
	assert_true(chunkmap_chunks_for(map, 3, UINT64_MAX, &first, &last));
	assert_int_equal(first, 0);
	assert_int_equal(last, 10);
	/* The very last byte. */
	assert_true(chunkmap_chunks_for(map, 10 * CS + 122, 1, &first, &last));
	assert_int_equal(first, 10);
	assert_int_equal(last, 10);
	chunkmap_free(map);

	map = mk_map(0, CS);
	assert_false(chunkmap_chunks_for(map, 0, 10, &first, &last));
	chunkmap_free(map);

	map = mk_map(17 * GIB, CS);
	assert_true(chunkmap_chunks_for(map, 16 * GIB, GIB, &first, &last));
	assert_int_equal(first, 16 * GIB / CS);
	assert_int_equal(last, 17 * GIB / CS - 1);
	chunkmap_free(map);
}

static void test_states_and_counts(void **state)
{
	struct chunkmap *map = mk_map(10 * CS + 123, CS);

	assert_int_equal(chunkmap_get(map, 4), CHUNK_MISSING);
	chunkmap_set(map, 4, CHUNK_QUEUED);
	assert_int_equal(chunkmap_get(map, 4), CHUNK_QUEUED);
	chunkmap_set(map, 4, CHUNK_INFLIGHT);
	assert_int_equal(chunkmap_get(map, 4), CHUNK_INFLIGHT);
	assert_int_equal(chunkmap_done_count(map), 0);
	chunkmap_set(map, 4, CHUNK_DONE);
	chunkmap_set(map, 4, CHUNK_DONE); /* no-op */
	assert_int_equal(chunkmap_get(map, 4), CHUNK_DONE);
	assert_int_equal(chunkmap_done_count(map), 1);
	chunkmap_set(map, 5, CHUNK_FAILED);
	assert_int_equal(chunkmap_get(map, 5), CHUNK_FAILED);
	assert_int_equal(chunkmap_done_count(map), 1);
	/* Leaving DONE (a verification failure) gives the count back. */
	chunkmap_set(map, 4, CHUNK_MISSING);
	assert_int_equal(chunkmap_done_count(map), 0);
	assert_int_equal(chunkmap_done_bytes(map), 0);
	chunkmap_free(map);
}

static void test_all_done(void **state)
{
	struct chunkmap *map = mk_map(10 * CS + 123, CS);
	uint64_t i;

	for (i = 2; i <= 5; i++)
		chunkmap_set(map, i, CHUNK_DONE);
	assert_true(chunkmap_all_done(map, 2, 5));
	assert_true(chunkmap_all_done(map, 3, 3));
	assert_false(chunkmap_all_done(map, 1, 5));
	assert_false(chunkmap_all_done(map, 2, 6));
	chunkmap_set(map, 4, CHUNK_INFLIGHT);
	assert_false(chunkmap_all_done(map, 2, 5));
	for (i = 0; i < 11; i++)
		chunkmap_set(map, i, CHUNK_DONE);
	assert_true(chunkmap_all_done(map, 0, 10));
	assert_false(chunkmap_all_done(map, 0, 11)); /* past the end */
	assert_true(chunkmap_all_done(map, 5, 4)); /* empty range */
	chunkmap_free(map);
}

static void test_done_bytes_short_last_chunk(void **state)
{
	struct chunkmap *map = mk_map(10 * CS + 123, CS);
	uint64_t i;

	chunkmap_set(map, 10, CHUNK_DONE);
	assert_int_equal(chunkmap_done_bytes(map), 123);
	chunkmap_set(map, 0, CHUNK_DONE);
	assert_int_equal(chunkmap_done_bytes(map), CS + 123);
	for (i = 0; i < 11; i++)
		chunkmap_set(map, i, CHUNK_DONE);
	assert_int_equal(chunkmap_done_bytes(map), 10 * CS + 123);
	chunkmap_set(map, 10, CHUNK_FAILED);
	assert_int_equal(chunkmap_done_bytes(map), 10 * CS);
	chunkmap_free(map);

	map = mk_map(17 * GIB + 5, 64 * MIB);
	for (i = 0; i < chunkmap_nchunks(map); i++)
		chunkmap_set(map, i, CHUNK_DONE);
	assert_int_equal(chunkmap_done_bytes(map), 17 * GIB + 5);
	chunkmap_free(map);

	map = mk_map(3 * CS, CS);
	chunkmap_set(map, 2, CHUNK_DONE);
	assert_int_equal(chunkmap_done_bytes(map), CS);
	chunkmap_free(map);
}

static void test_next_missing(void **state)
{
	struct chunkmap *map = mk_map(20 * CS, CS);
	uint64_t first = 0, count = 0, i;

	/* 0-3 DONE, 4-6 MISSING, 7 QUEUED, 8 INFLIGHT, 9 FAILED, 10-19 DONE */
	for (i = 0; i < 20; i++)
		if (i < 4 || i >= 10)
			chunkmap_set(map, i, CHUNK_DONE);
	chunkmap_set(map, 7, CHUNK_QUEUED);
	chunkmap_set(map, 8, CHUNK_INFLIGHT);
	chunkmap_set(map, 9, CHUNK_FAILED);

	assert_int_equal(
		chunkmap_next_missing(map, 0, false, 100, &first, &count), 0);
	assert_int_equal(first, 4);
	assert_int_equal(count, 3);
	assert_int_equal(
		chunkmap_next_missing(map, 0, false, 2, &first, &count), 0);
	assert_int_equal(first, 4);
	assert_int_equal(count, 2);
	assert_int_equal(
		chunkmap_next_missing(map, 5, false, 0, &first, &count), 0);
	assert_int_equal(first, 5);
	assert_int_equal(count, 2); /* 0: no limit */
	/* FAILED counts as missing; QUEUED and INFLIGHT do not. */
	assert_int_equal(
		chunkmap_next_missing(map, 7, false, 100, &first, &count), 0);
	assert_int_equal(first, 9);
	assert_int_equal(count, 1);
	/* Nothing after 10 without wrapping; with it, back to 4. */
	assert_int_equal(chunkmap_next_missing(map, 10, false, 100, &first,
					       &count),
			 -ENOENT);
	assert_int_equal(
		chunkmap_next_missing(map, 10, true, 100, &first, &count), 0);
	assert_int_equal(first, 4);
	assert_int_equal(count, 3);
	/* from past the end. */
	assert_int_equal(chunkmap_next_missing(map, 20, false, 100, &first,
					       &count),
			 -ENOENT);
	assert_int_equal(
		chunkmap_next_missing(map, 999, true, 100, &first, &count), 0);
	assert_int_equal(first, 4);

	/* A run stops at the last chunk, it never wraps. */
	chunkmap_set(map, 18, CHUNK_MISSING);
	chunkmap_set(map, 19, CHUNK_MISSING);
	chunkmap_set(map, 0, CHUNK_MISSING);
	assert_int_equal(
		chunkmap_next_missing(map, 17, true, 100, &first, &count), 0);
	assert_int_equal(first, 18);
	assert_int_equal(count, 2);

	/* Everything DONE: nothing, wrap or not. */
	for (i = 0; i < 20; i++)
		chunkmap_set(map, i, CHUNK_DONE);
	assert_int_equal(chunkmap_next_missing(map, 3, true, 100, &first,
					       &count),
			 -ENOENT);
	assert_int_equal(chunkmap_next_missing(map, 0, true, 100, &first,
					       &count),
			 -ENOENT);
	chunkmap_free(map);

	map = mk_map(0, CS);
	assert_int_equal(chunkmap_next_missing(map, 0, true, 1, &first, &count),
			 -ENOENT);
	chunkmap_free(map);
}

static void test_load_from_sidecar(void **state)
{
	struct chunkmap *map = mk_map(10 * CS + 123, CS);
	struct sidecar *sc = mk_snap(map);

	sidecar_set(sc, 0);
	sidecar_set(sc, 10);
	assert_int_equal(chunkmap_load(map, sc), 0);
	assert_int_equal(chunkmap_get(map, 0), CHUNK_DONE);
	assert_int_equal(chunkmap_get(map, 10), CHUNK_DONE);
	assert_int_equal(chunkmap_get(map, 5), CHUNK_MISSING);
	assert_int_equal(chunkmap_done_count(map), 2);
	assert_int_equal(chunkmap_durable_count(map), 2);
	assert_int_equal(chunkmap_done_bytes(map), CS + 123);
	/* Loaded chunks need no save. */
	assert_int_equal(chunkmap_sync_begin(map, sc), 0);
	chunkmap_sync_end(map, sc);
	sidecar_free(sc);
	chunkmap_free(map);
}

static void test_load_rejects_other_layout(void **state)
{
	struct chunkmap *map = mk_map(10 * CS, CS);
	struct sidecar_layout l;
	struct sidecar *sc = NULL;

	memset(&l, 0, sizeof(l));
	l.file_size = 10 * CS + 1;
	l.chunk_size = CS;
	assert_int_equal(sidecar_new(&l, &sc), 0);
	assert_int_equal(chunkmap_load(map, sc), -EINVAL);
	sidecar_free(sc);
	l.file_size = 10 * CS;
	l.chunk_size = 2 * CS;
	assert_int_equal(sidecar_new(&l, &sc), 0);
	assert_int_equal(chunkmap_load(map, sc), -EINVAL);
	assert_int_equal(chunkmap_done_count(map), 0);
	sidecar_free(sc);
	chunkmap_free(map);
}

static void test_sync_only_done_at_begin(void **state)
{
	struct chunkmap *map = mk_map(10 * CS + 123, CS);
	struct sidecar *snap = mk_snap(map);

	assert_int_equal(chunkmap_sync_begin(map, snap), 0);
	chunkmap_sync_end(map, snap);

	chunkmap_set(map, 1, CHUNK_DONE);
	chunkmap_set(map, 2, CHUNK_DONE);
	assert_int_equal(chunkmap_sync_begin(map, snap), 2);
	assert_true(sidecar_test(snap, 1));
	assert_true(sidecar_test(snap, 2));
	assert_int_equal(snap->done_count, 2);
	/* DONE while the data is being synced: not in this snapshot. */
	chunkmap_set(map, 3, CHUNK_DONE);
	assert_false(sidecar_test(snap, 3));
	chunkmap_sync_end(map, snap);
	assert_int_equal(chunkmap_durable_count(map), 2);
	assert_int_equal(chunkmap_done_count(map), 3);

	/* The next sync has exactly chunk 3 to add. */
	assert_int_equal(chunkmap_sync_begin(map, snap), 1);
	assert_true(sidecar_test(snap, 3));
	assert_int_equal(snap->done_count, 3);
	chunkmap_sync_end(map, snap);
	assert_int_equal(chunkmap_durable_count(map), 3);
	assert_int_equal(chunkmap_sync_begin(map, snap), 0);
	chunkmap_sync_end(map, snap);
	sidecar_free(snap);
	chunkmap_free(map);
}

/* A sync that failed (no sync_end) leaves nothing durable. */
static void test_sync_abandoned(void **state)
{
	struct chunkmap *map = mk_map(10 * CS, CS);
	struct sidecar *snap = mk_snap(map);

	chunkmap_set(map, 1, CHUNK_DONE);
	assert_int_equal(chunkmap_sync_begin(map, snap), 1);
	/* fdatasync failed: the saver stops here. */
	assert_int_equal(chunkmap_durable_count(map), 0);
	assert_int_equal(chunkmap_sync_begin(map, snap), 1);
	chunkmap_sync_end(map, snap);
	assert_int_equal(chunkmap_durable_count(map), 1);
	sidecar_free(snap);
	chunkmap_free(map);
}

/* After a failed sync, the chunks not durable are dropped; durable ones
 * and those queued or in flight stay. */
static void test_drop_undurable(void **state)
{
	struct chunkmap *map = mk_map(10 * CS, CS);
	struct sidecar *snap = mk_snap(map), *dropped = mk_snap(map);

	chunkmap_set(map, 0, CHUNK_DONE);
	assert_int_equal(chunkmap_sync_begin(map, snap), 1);
	chunkmap_sync_end(map, snap); /* chunk 0 durable */
	chunkmap_set(map, 3, CHUNK_DONE);
	chunkmap_set(map, 9, CHUNK_DONE);
	chunkmap_set(map, 5, CHUNK_INFLIGHT);
	chunkmap_set(map, 6, CHUNK_QUEUED);
	assert_int_equal(chunkmap_sync_begin(map, snap), 2);
	/* The sync failed. */
	assert_int_equal(chunkmap_drop_undurable(map, dropped), 2);
	assert_true(sidecar_test(dropped, 3));
	assert_true(sidecar_test(dropped, 9));
	assert_false(sidecar_test(dropped, 0));
	assert_int_equal(dropped->done_count, 2);
	assert_int_equal(chunkmap_get(map, 0), CHUNK_DONE);
	assert_int_equal(chunkmap_get(map, 3), CHUNK_MISSING);
	assert_int_equal(chunkmap_get(map, 9), CHUNK_MISSING);
	assert_int_equal(chunkmap_get(map, 5), CHUNK_INFLIGHT);
	assert_int_equal(chunkmap_get(map, 6), CHUNK_QUEUED);
	assert_int_equal(chunkmap_done_count(map), 1);
	assert_int_equal(chunkmap_durable_count(map), 1);
	/* Nothing more to drop; a new sync records chunk 0 only. */
	sidecar_free(dropped);
	dropped = mk_snap(map);
	assert_int_equal(chunkmap_drop_undurable(map, dropped), 0);
	chunkmap_sync_begin(map, snap);
	chunkmap_sync_end(map, snap);
	assert_true(sidecar_test(snap, 0));
	assert_false(sidecar_test(snap, 3));
	assert_int_equal(chunkmap_durable_count(map), 1);
	sidecar_free(dropped);
	sidecar_free(snap);
	chunkmap_free(map);
}

/* A durable chunk discarded later: the sidecar must be written again. */
static void test_sync_after_discard(void **state)
{
	struct chunkmap *map = mk_map(10 * CS, CS);
	struct sidecar *snap = mk_snap(map);

	chunkmap_set(map, 1, CHUNK_DONE);
	chunkmap_set(map, 2, CHUNK_DONE);
	assert_int_equal(chunkmap_sync_begin(map, snap), 2);
	chunkmap_sync_end(map, snap);
	assert_int_equal(chunkmap_durable_count(map), 2);

	chunkmap_set(map, 2, CHUNK_MISSING); /* failed verification */
	assert_int_equal(chunkmap_durable_count(map), 1);
	assert_true(chunkmap_sync_begin(map, snap) > 0);
	assert_false(sidecar_test(snap, 2));
	assert_int_equal(snap->done_count, 1);
	chunkmap_sync_end(map, snap);
	assert_int_equal(chunkmap_sync_begin(map, snap), 0);
	chunkmap_sync_end(map, snap);

	/* A non-durable chunk discarded before any save costs no save. */
	chunkmap_set(map, 5, CHUNK_DONE);
	chunkmap_set(map, 5, CHUNK_FAILED);
	assert_int_equal(chunkmap_sync_begin(map, snap), 0);
	chunkmap_sync_end(map, snap);
	sidecar_free(snap);
	chunkmap_free(map);
}

/* Discarded, or discarded and fetched again, during a sync. */
static void test_sync_discard_during_sync(void **state)
{
	struct chunkmap *map = mk_map(10 * CS, CS);
	struct sidecar *snap = mk_snap(map);

	chunkmap_set(map, 1, CHUNK_DONE);
	chunkmap_set(map, 2, CHUNK_DONE);
	chunkmap_set(map, 3, CHUNK_DONE);
	assert_int_equal(chunkmap_sync_begin(map, snap), 3);
	chunkmap_set(map, 2, CHUNK_MISSING); /* gone */
	/* Gone, then fetched again: its new bytes are not synced. */
	chunkmap_set(map, 3, CHUNK_MISSING);
	chunkmap_set(map, 3, CHUNK_DONE);
	chunkmap_sync_end(map, snap);
	assert_int_equal(chunkmap_durable_count(map), 1);
	assert_int_equal(chunkmap_done_count(map), 2);

	/* The sidecar just written records chunk 2: write it again. */
	assert_true(chunkmap_sync_begin(map, snap) >= 1);
	assert_false(sidecar_test(snap, 2));
	assert_true(sidecar_test(snap, 3));
	chunkmap_sync_end(map, snap);
	assert_int_equal(chunkmap_durable_count(map), 2);
	assert_int_equal(chunkmap_sync_begin(map, snap), 0);
	chunkmap_sync_end(map, snap);
	sidecar_free(snap);
	chunkmap_free(map);
}

#define NTHREADS 8
#define NCHUNKS 20000

struct worker {
	struct chunkmap *map;
	unsigned int id;
	uint64_t seed;
};

/* Each thread owns the chunks i % NTHREADS == id and walks them through
 * every state; all threads fight over the first 64 chunks with DONE. */
static void *owner_thread(void *arg)
{
	struct worker *w = arg;
	uint64_t i;
	int round;

	for (round = 0; round < 3; round++) {
		for (i = w->id; i < NCHUNKS; i += NTHREADS) {
			chunkmap_set(w->map, i, CHUNK_QUEUED);
			chunkmap_set(w->map, i, CHUNK_INFLIGHT);
			chunkmap_set(w->map, i, CHUNK_DONE);
			if (round < 2 && i % 3)
				chunkmap_set(w->map, i, CHUNK_MISSING);
			else if (round < 2)
				chunkmap_set(w->map, i, CHUNK_FAILED);
			if (i % 64 < 8)
				chunkmap_set(w->map, i % 64, CHUNK_DONE);
		}
	}
	return NULL;
}

/* Random states on shared chunks: the counts must match the states. */
static void *chaos_thread(void *arg)
{
	struct worker *w = arg;
	uint64_t x = w->seed;
	int n;

	for (n = 0; n < 200000; n++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		chunkmap_set(w->map, (x >> 8) % 512, (enum chunk_state)(x % 5));
	}
	return NULL;
}

/* The saver, running all along. */
static void *saver_thread(void *arg)
{
	struct worker *w = arg;
	struct sidecar_layout l;
	struct sidecar *snap = NULL;
	int n;

	memset(&l, 0, sizeof(l));
	l.file_size = chunkmap_file_size(w->map);
	l.chunk_size = chunkmap_chunk_size(w->map);
	if (sidecar_new(&l, &snap))
		return (void *)1;
	for (n = 0; n < 200; n++) {
		chunkmap_sync_begin(w->map, snap);
		(void)chunkmap_durable_count(w->map);
		chunkmap_sync_end(w->map, snap);
	}
	sidecar_free(snap);
	return NULL;
}

static void test_threads_keep_counts_exact(void **state)
{
	struct chunkmap *map = mk_map(NCHUNKS * CS - 17, CS);
	struct worker w[NTHREADS + 1];
	pthread_t t[NTHREADS + 1];
	struct sidecar *snap;
	uint64_t i, done = 0;
	void *ret;

	for (i = 0; i <= NTHREADS; i++) {
		w[i].map = map;
		w[i].id = (unsigned int)i;
		w[i].seed = 0x9e3779b97f4a7c15ull * (i + 1);
		assert_int_equal(pthread_create(&t[i], NULL,
						i < NTHREADS ? owner_thread :
							       saver_thread,
						&w[i]),
				 0);
	}
	for (i = 0; i <= NTHREADS; i++) {
		assert_int_equal(pthread_join(t[i], &ret), 0);
		assert_null(ret);
	}
	assert_int_equal(chunkmap_done_count(map), NCHUNKS);
	assert_int_equal(chunkmap_done_bytes(map), NCHUNKS * CS - 17);
	assert_true(chunkmap_all_done(map, 0, NCHUNKS - 1));
	snap = mk_snap(map);
	chunkmap_sync_begin(map, snap);
	chunkmap_sync_end(map, snap);
	assert_int_equal(chunkmap_durable_count(map), NCHUNKS);
	assert_int_equal(snap->done_count, NCHUNKS);

	/* Now a free-for-all on 512 shared chunks, with the saver. */
	for (i = 0; i <= NTHREADS; i++)
		assert_int_equal(pthread_create(&t[i], NULL,
						i < NTHREADS ? chaos_thread :
							       saver_thread,
						&w[i]),
				 0);
	for (i = 0; i <= NTHREADS; i++) {
		assert_int_equal(pthread_join(t[i], &ret), 0);
		assert_null(ret);
	}
	for (i = 0; i < NCHUNKS; i++)
		done += chunkmap_get(map, i) == CHUNK_DONE;
	assert_int_equal(chunkmap_done_count(map), done);
	/* A last sync: exactly the DONE chunks become durable. */
	chunkmap_sync_begin(map, snap);
	assert_int_equal(snap->done_count, done);
	chunkmap_sync_end(map, snap);
	assert_int_equal(chunkmap_durable_count(map), done);
	assert_int_equal(chunkmap_sync_begin(map, snap), 0);
	chunkmap_sync_end(map, snap);
	sidecar_free(snap);
	chunkmap_free(map);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_new_rejects_bad_chunk_size),
		cmocka_unit_test(test_accessors_and_ranges),
		cmocka_unit_test(test_chunks_for_clips),
		cmocka_unit_test(test_states_and_counts),
		cmocka_unit_test(test_all_done),
		cmocka_unit_test(test_done_bytes_short_last_chunk),
		cmocka_unit_test(test_next_missing),
		cmocka_unit_test(test_load_from_sidecar),
		cmocka_unit_test(test_load_rejects_other_layout),
		cmocka_unit_test(test_sync_only_done_at_begin),
		cmocka_unit_test(test_sync_abandoned),
		cmocka_unit_test(test_drop_undurable),
		cmocka_unit_test(test_sync_after_discard),
		cmocka_unit_test(test_sync_discard_during_sync),
		cmocka_unit_test(test_threads_keep_counts_exact),
	};

	return cmocka_run_group_tests_name("chunkmap", tests, NULL, NULL);
}
