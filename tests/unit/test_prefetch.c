/* test_prefetch.c: readahead streams per open file and format-aware plans
 * per remote file (fetch/prefetch.c). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fetch/format.h"
#include "fetch/prefetch.h"

#define KIB (1ull << 10)
#define MIB (1ull << 20)
#define CS (4 * MIB) /* chunk size */
#define NCHUNKS 1000ull /* a 4000 MiB file */
#define READ (128 * KIB) /* one FUSE read */

static const struct prefetch_opts opts = {
	.chunk_size = CS,
	.readahead_max = 64 * MIB,
};

static int setup(void **state)
{
	struct prefetch_stream *ps = malloc(sizeof(*ps));

	assert_non_null(ps);
	prefetch_stream_init(ps);
	*state = ps;
	return 0;
}

static int teardown(void **state)
{
	prefetch_stream_release(*state);
	free(*state);
	return 0;
}

/* One read of [off, off + len): its plan, or [1, 0] for none. */
static bool plan(struct prefetch_stream *ps, const struct prefetch_opts *o,
		 uint64_t off, uint64_t len, uint64_t *from, uint64_t *to)
{
	uint64_t last = (off + len - 1) / o->chunk_size;

	*from = 1;
	*to = 0;
	return prefetch_plan(ps, o, off, len, last, NCHUNKS, from, to);
}

/* The largest window of any stream of ps. */
static uint64_t max_window(const struct prefetch_stream *ps)
{
	uint64_t w = 0;
	size_t i;

	for (i = 0; i < PREFETCH_STREAMS; i++)
		if (ps->runs[i].used && ps->runs[i].window > w)
			w = ps->runs[i].window;
	return w;
}

static void test_first_read_plans_nothing(void **state)
{
	uint64_t from, to;

	assert_false(plan(*state, &opts, 0, READ, &from, &to));
	assert_false(plan(*state, &opts, 0, 64 * MIB, &from, &to) && from < 16);
}

/* 100 random 1 MiB reads: nothing ahead, ever (the 3.1 GiB). */
static void test_random_reads_plan_nothing(void **state)
{
	struct prefetch_stream *ps = *state;
	uint64_t from, to, x = 88172645463325252ull;
	int i;

	for (i = 0; i < 100; i++) {
		uint64_t off;

		x ^= x << 13; /* xorshift64 */
		x ^= x >> 7;
		x ^= x << 17;
		off = x % (NCHUNKS * CS - MIB);
		assert_false(plan(ps, &opts, off, MIB, &from, &to));
	}
	assert_int_equal(max_window(ps), 0);
}

/* The dd case: two 1 MiB reads at distant offsets, each split by
 * the kernel into 128 KiB reads: nothing ahead. */
static void test_two_distant_reads_plan_nothing(void **state)
{
	struct prefetch_stream *ps = *state;
	uint64_t from, to, off;

	for (off = 0; off < MIB; off += READ)
		assert_false(plan(ps, &opts, off, READ, &from, &to));
	for (off = 0; off < MIB; off += READ)
		assert_false(
			plan(ps, &opts, 200 * MIB + off, READ, &from, &to));
}

/* A sequential reader: nothing until a chunk's worth was read, then one
 * chunk, then doubling to readahead_max; only chunks not planned before
 * are asked for. */
static void test_sequential_reaches_max(void **state)
{
	static const uint64_t windows[] = { 1, 2, 4, 8, 16, 16, 16 };
	struct prefetch_stream *ps = *state;
	uint64_t from, to, off, planned = 1;
	size_t i;

	for (off = 0; off + READ < CS; off += READ)
		assert_false(plan(ps, &opts, off, READ, &from, &to));
	/* The read that completes the first chunk's worth. */
	assert_true(plan(ps, &opts, off, READ, &from, &to));
	assert_int_equal(from, 1);
	assert_int_equal(to, 1);
	planned = 2;
	off = CS;
	for (i = 1; i < sizeof(windows) / sizeof(windows[0]); i++) {
		uint64_t last = off / CS;

		assert_true(plan(ps, &opts, off, CS, &from, &to));
		assert_int_equal(to, last + windows[i]);
		assert_int_equal(from, planned > last + 1 ? planned : last + 1);
		planned = to + 1;
		off += CS;
	}
	assert_int_equal(max_window(ps), opts.readahead_max);
}

/* Small reads inside one chunk keep the run going without asking for
 * the same chunks again. */
static void test_small_reads_do_not_replan(void **state)
{
	struct prefetch_stream *ps = *state;
	uint64_t from, to, off, asked = 0;

	for (off = 0; off < 3 * CS; off += READ)
		if (plan(ps, &opts, off, READ, &from, &to)) {
			assert_true(from > asked || !asked);
			assert_true(from > off / CS);
			asked = to;
		}
	assert_int_equal(max_window(ps), opts.readahead_max);
	/* Planned ahead of the last read by the whole window, no more. */
	assert_int_equal(asked, (3 * CS - 1) / CS + 16);
}

/* After a long run, a jump far away starts over: no readahead until
 * the new place was read a chunk's worth. */
static void test_random_read_resets(void **state)
{
	struct prefetch_stream *ps = *state;
	uint64_t from, to, off;

	for (off = 0; off < 8 * CS; off += CS)
		(void)plan(ps, &opts, off, CS, &from, &to);
	assert_true(max_window(ps) >= 8 * CS);
	assert_false(plan(ps, &opts, 500 * CS, MIB, &from, &to));
	assert_false(plan(ps, &opts, 500 * CS + MIB, MIB, &from, &to));
	assert_false(plan(ps, &opts, 500 * CS + 2 * MIB, MIB, &from, &to));
	/* The fourth MiB: a chunk's worth, one chunk ahead. */
	assert_true(plan(ps, &opts, 500 * CS + 3 * MIB, MIB, &from, &to));
	assert_int_equal(from, 501);
	assert_int_equal(to, 501);
	/* A read backwards, far: nothing. */
	assert_false(plan(ps, &opts, 100 * CS, MIB, &from, &to));
}

/* Forward skips inside the planned window keep the stream; past it,
 * they do not. */
static void test_forward_skip_within_window(void **state)
{
	struct prefetch_stream *ps = *state;
	uint64_t from, to, off;

	for (off = 0; off < 4 * CS; off += CS)
		(void)plan(ps, &opts, off, CS, &from, &to);
	/* Windows 1, 2, 4 chunks: planned through chunk 7. A skip to
	 * chunk 6 continues the stream (window 8 chunks). */
	assert_true(plan(ps, &opts, 6 * CS, CS, &from, &to));
	assert_int_equal(from, 8);
	assert_int_equal(to, 14);
	/* A skip well past what was planned: a new stream. */
	assert_false(plan(ps, &opts, 200 * CS, CS, &from, &to));
}

/* The kernel's async readahead reads arrive slightly out of order:
 * within the slack, behind or ahead, they continue the stream. */
static void test_slack_for_out_of_order_reads(void **state)
{
	struct prefetch_stream *ps = *state;
	uint64_t from, to, off;

	/* 1 MiB reads arriving as 1, 0, 3, 2, 5, 4, ... */
	for (off = 0; off < 8 * MIB; off += 2 * MIB) {
		(void)plan(ps, &opts, off + MIB, MIB, &from, &to);
		(void)plan(ps, &opts, off, MIB, &from, &to);
	}
	assert_true(max_window(ps) >= CS);
	/* Exactly at the slack past the end: still the stream. */
	assert_true(plan(ps, &opts, 8 * MIB + PREFETCH_SLACK_BYTES, MIB, &from,
			 &to));
}

/* Several readers of one handle, interleaved: each a stream of its own,
 * each reaching readahead_max. */
static void test_interleaved_readers(void **state)
{
	struct prefetch_stream *ps = *state;
	uint64_t from, to, off, base[4] = { 0, 250 * CS, 500 * CS, 750 * CS };
	int i, grew[4] = { 0 };

	for (off = 0; off < 12 * CS; off += MIB)
		for (i = 0; i < 4; i++)
			if (plan(ps, &opts, base[i] + off, MIB, &from, &to)) {
				assert_true(from > (base[i] + off) / CS);
				assert_true(to < (base[i] + off) / CS + 17);
				grew[i] = 1;
			}
	for (i = 0; i < 4; i++)
		assert_true(grew[i]);
	for (i = 0; i < PREFETCH_STREAMS; i++)
		if (ps->runs[i].used)
			assert_int_equal(ps->runs[i].window,
					 opts.readahead_max);
}

/* More random readers than streams: the least recently used is
 * replaced, the busy one keeps its window. */
static void test_lru_replacement(void **state)
{
	struct prefetch_stream *ps = *state;
	uint64_t from, to, off = 0, r;

	for (; off < 4 * CS; off += CS)
		(void)plan(ps, &opts, off, CS, &from, &to);
	for (r = 0; r < 3 * PREFETCH_STREAMS; r++) {
		assert_false(
			plan(ps, &opts, (100 + 10 * r) * CS, MIB, &from, &to));
		/* The sequential reader keeps going between them. */
		assert_true(plan(ps, &opts, off, CS, &from, &to) || from > to);
		off += CS;
	}
	assert_int_equal(max_window(ps), opts.readahead_max);
}

/* Never past the last chunk of the file. */
static void test_window_clamped_to_file(void **state)
{
	struct prefetch_stream *ps = *state;
	uint64_t from, to, off = (NCHUNKS - 3) * CS;

	assert_true(plan(ps, &opts, off, CS, &from, &to) || true);
	assert_true(plan(ps, &opts, off + CS, CS, &from, &to));
	assert_int_equal(to, NCHUNKS - 1);
	assert_false(plan(ps, &opts, off + 2 * CS, CS, &from, &to));
}

static void test_readahead_off(void **state)
{
	const struct prefetch_opts off_opts = { .chunk_size = CS,
						.readahead_max = 0 };
	struct prefetch_stream *ps = *state;
	uint64_t from, to, off;

	for (off = 0; off < 8 * CS; off += CS)
		assert_false(plan(ps, &off_opts, off, CS, &from, &to));
	assert_int_equal(max_window(ps), 0);
}

/* A maximum below one chunk still fetches one chunk ahead. */
static void test_small_max_is_one_chunk(void **state)
{
	const struct prefetch_opts small = { .chunk_size = CS,
					     .readahead_max = 64 * KIB };
	struct prefetch_stream *ps = *state;
	uint64_t from, to;

	assert_false(plan(ps, &small, 0, CS / 2, &from, &to));
	assert_true(plan(ps, &small, CS / 2, CS / 2, &from, &to));
	assert_int_equal(from, 1);
	assert_int_equal(to, 1);
	assert_true(plan(ps, &small, CS, CS, &from, &to));
	assert_int_equal(max_window(ps), 64 * KIB);
	assert_int_equal(from, 2);
	assert_int_equal(to, 2);
}

/* ---- format-aware plans ---- */

/* A file of nt tensors of sizes[i % ns] bytes each, packed from data. */
static struct prefetch_file *file_with_tensors(uint64_t data,
					       const uint64_t *sizes, size_t ns,
					       size_t nt, uint64_t *size)
{
	struct format_map *map = calloc(1, sizeof(*map));
	struct prefetch_file *pf;
	uint64_t off = data;
	size_t i;

	assert_non_null(map);
	map->kind = FORMAT_SAFETENSORS;
	map->data_off = data;
	map->n = nt;
	map->ext = calloc(nt, sizeof(*map->ext));
	assert_non_null(map->ext);
	for (i = 0; i < nt; i++) {
		map->ext[i].off = off;
		off += sizes[i % ns];
		map->ext[i].end = off;
	}
	*size = off;
	assert_int_equal(prefetch_file_new("m.safetensors", off, CS, &pf), 0);
	assert_non_null(pf);
	prefetch_file_attach(pf, map);
	assert_true(prefetch_file_ready(pf));
	return pf;
}

/* Touches [off, off + len) of a file of size bytes; adds what was planned
 * to count[] and checks no chunk was planned twice. */
static void touch(struct prefetch_stream *ps, struct prefetch_file *pf,
		  uint64_t size, uint64_t off, uint64_t len, uint8_t *count)
{
	struct prefetch_range r[PREFETCH_MAX_RANGES];
	uint64_t nch = (size + CS - 1) / CS, c;
	size_t n, i;

	n = prefetch_plan_file(ps, pf, &opts, off, len, off / CS,
			       (off + len - 1) / CS, nch, r);
	assert_true(n <= PREFETCH_MAX_RANGES);
	for (i = 0; i < n; i++) {
		assert_true(r[i].from <= r[i].to);
		assert_true(r[i].to < nch);
		for (c = r[i].from; c <= r[i].to; c++) {
			assert_true(c > (off + len - 1) / CS);
			count[c]++;
			assert_int_equal(count[c], 1);
		}
	}
}

static void test_format_plans_to_tensor_end(void **state)
{
	static const uint64_t sizes[] = { 40 * MIB, 1 * MIB, 3 * MIB };
	struct prefetch_stream *ps = *state;
	struct prefetch_range r[PREFETCH_MAX_RANGES];
	uint64_t size;
	struct prefetch_file *pf =
		file_with_tensors(64 * KIB, sizes, 3, 30, &size);
	size_t n;

	/* A page fault at the start of the 40 MiB tensor: through its
	 * last chunk (it ends at 40 MiB + 64 KiB: chunk 10). */
	n = prefetch_plan_file(ps, pf, &opts, 64 * KIB, 4 * KIB, 0, 0,
			       (size + CS - 1) / CS, r);
	assert_int_equal(n, 1);
	assert_int_equal(r[0].from, 1);
	assert_int_equal(r[0].to, 10);
	/* The next fault inside: nothing new (window 2 chunks, planned). */
	n = prefetch_plan_file(ps, pf, &opts, 64 * KIB + 4 * KIB, 4 * KIB, 0, 0,
			       (size + CS - 1) / CS, r);
	assert_int_equal(n, 0);
	prefetch_file_free(pf);
}

/* Reading the header alone (a tool listing tensors) plans nothing ahead;
 * the first touch of tensor data does. */
static void test_format_header_reads_plan_nothing(void **state)
{
	static const uint64_t sizes[] = { 8 * MIB };
	struct prefetch_stream *ps = *state;
	struct prefetch_range r[PREFETCH_MAX_RANGES];
	uint64_t size, off;
	struct prefetch_file *pf =
		file_with_tensors(2 * MIB, sizes, 1, 20, &size);
	uint64_t nch = (size + CS - 1) / CS;

	for (off = 0; off < 2 * MIB; off += 64 * KIB)
		assert_int_equal(prefetch_plan_file(ps, pf, &opts, off,
						    64 * KIB, 0, 0, nch, r),
				 0);
	assert_int_equal(prefetch_plan_file(ps, pf, &opts, 2 * MIB, 4 * KIB, 0,
					    0, nch, r),
			 1);
	assert_int_equal(r[0].from, 1);
	assert_int_equal(r[0].to, 2); /* to the end of tensor 0 */
	prefetch_file_free(pf);
}

/* Pages of tensors touched in tensor order, and in a random page
 * order: every chunk planned at most once, and (in order) nearly all of
 * them ahead of the reader. */
static void test_format_each_chunk_once(void **state)
{
	static const uint64_t sizes[] = { 300 * KIB, 5 * MIB, 64 * KIB,
					  17 * MIB, 1 * MIB };
	struct prefetch_stream *ps = *state;
	uint64_t size, nch, off, x = 88172645463325252ull, c, ahead = 0;
	struct prefetch_file *pf;
	uint8_t *count;
	int pass;

	for (pass = 0; pass < 2; pass++) {
		pf = file_with_tensors(100 * KIB, sizes, 5, 40, &size);
		nch = (size + CS - 1) / CS;
		count = calloc(nch, 1);
		assert_non_null(count);
		if (!pass) {
			for (off = 100 * KIB; off + 4 * KIB <= size;
			     off += 64 * KIB)
				touch(ps, pf, size, off, 4 * KIB, count);
		} else {
			for (c = 0; c < 2000; c++) {
				x ^= x << 13;
				x ^= x >> 7;
				x ^= x << 17;
				off = x % (size / (4 * KIB)) * 4 * KIB;
				touch(ps, pf, size, off, 4 * KIB, count);
			}
		}
		if (!pass) {
			for (c = 0; c < nch; c++)
				ahead += count[c];
			/* All but the header's chunk came ahead. */
			assert_int_equal(ahead, nch - 1);
		}
		free(count);
		prefetch_file_free(pf);
	}
}

/* Without a map (not loaded, failed, or not a model file), plans are
 * the stream's. */
static void test_format_falls_back(void **state)
{
	struct prefetch_stream *ps = *state;
	struct prefetch_range r[PREFETCH_MAX_RANGES];
	struct prefetch_file *pf;
	uint64_t last;

	assert_int_equal(prefetch_file_new("x.bin", 100 * MIB, CS, &pf), 0);
	assert_null(pf);
	assert_int_equal(prefetch_file_new("x.gguf", 100 * MIB, CS, &pf), 0);
	assert_non_null(pf);
	assert_true(prefetch_file_header_want(pf, &last));
	assert_int_equal(last, 0);
	assert_false(prefetch_file_ready(pf));
	assert_int_equal(
		prefetch_plan_file(ps, pf, &opts, 0, MIB, 0, 0, NCHUNKS, r), 0);
	prefetch_file_free(pf);
}

/* A random read reaching into the next chunk, cut into two READs, only
 * reaches into it; a sequential run or a skip does not. */
static void test_reaches_into(void **state)
{
	struct prefetch_stream *ps = *state;
	uint64_t from, to, off = 10 * CS - 256 * KIB;

	/* READ 1 ends in the next chunk, READ 2 continues there. */
	plan(ps, &opts, off, 512 * KIB, &from, &to);
	assert_true(prefetch_reaches_into(ps, off, 512 * KIB, CS, 10));
	plan(ps, &opts, off + 512 * KIB, 512 * KIB, &from, &to);
	assert_true(
		prefetch_reaches_into(ps, off + 512 * KIB, 512 * KIB, CS, 10));
	/* Past 1 MiB the run is a sequential reader: whole chunks. */
	plan(ps, &opts, off + MIB, 512 * KIB, &from, &to);
	assert_false(prefetch_reaches_into(ps, off + MIB, 512 * KIB, CS, 10));
	/* A read that starts in its chunk does not reach into it. */
	plan(ps, &opts, 20 * CS + MIB, MIB, &from, &to);
	assert_false(prefetch_reaches_into(ps, 20 * CS + MIB, MIB, CS, 20));
	/* Nor does one two chunks on. */
	plan(ps, &opts, 30 * CS - 4 * KIB, 4 * KIB, &from, &to);
	plan(ps, &opts, 31 * CS, 4 * KIB, &from, &to);
	assert_false(prefetch_reaches_into(ps, 31 * CS, 4 * KIB, CS, 31));
}

#define TEST(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TEST(test_first_read_plans_nothing),
		TEST(test_random_reads_plan_nothing),
		TEST(test_two_distant_reads_plan_nothing),
		TEST(test_sequential_reaches_max),
		TEST(test_small_reads_do_not_replan),
		TEST(test_random_read_resets),
		TEST(test_forward_skip_within_window),
		TEST(test_slack_for_out_of_order_reads),
		TEST(test_interleaved_readers),
		TEST(test_lru_replacement),
		TEST(test_window_clamped_to_file),
		TEST(test_readahead_off),
		TEST(test_small_max_is_one_chunk),
		TEST(test_format_plans_to_tensor_end),
		TEST(test_format_header_reads_plan_nothing),
		TEST(test_format_each_chunk_once),
		TEST(test_format_falls_back),
		TEST(test_reaches_into),
	};

	return cmocka_run_group_tests_name("prefetch", tests, NULL, NULL);
}
