/* test_prefetch.c: readahead windows per open file (fetch/prefetch.c). */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

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

static void test_first_read_plans_nothing(void **state)
{
	uint64_t from, to;

	assert_false(plan(*state, &opts, 0, READ, &from, &to));
}

/* Each sequential read doubles the window, one chunk first, up to the
 * maximum; only chunks not planned before are asked for. */
static void test_sequential_doubles_to_max(void **state)
{
	static const uint64_t windows[] = { 1, 2, 4, 8, 16, 16, 16 };
	struct prefetch_stream *ps = *state;
	uint64_t from, to, off = 0, planned = 1;
	size_t i;

	assert_false(plan(ps, &opts, off, CS, &from, &to));
	for (i = 0; i < sizeof(windows) / sizeof(windows[0]); i++) {
		uint64_t last;

		off += CS; /* whole chunks, back to back */
		last = off / CS;
		assert_true(plan(ps, &opts, off, CS, &from, &to));
		assert_int_equal(to, last + windows[i]);
		/* What an earlier plan covered is not asked for again. */
		assert_int_equal(from, planned > last + 1 ? planned : last + 1);
		planned = to + 1;
	}
	assert_int_equal(ps->window, opts.readahead_max);
}

/* Small reads inside one chunk keep the run going without asking for
 * the same chunks again. */
static void test_small_reads_do_not_replan(void **state)
{
	struct prefetch_stream *ps = *state;
	uint64_t from, to, off;

	assert_false(plan(ps, &opts, 0, READ, &from, &to));
	assert_true(plan(ps, &opts, READ, READ, &from, &to));
	assert_int_equal(from, 1);
	assert_int_equal(to, 1);
	assert_true(plan(ps, &opts, 2 * READ, READ, &from, &to));
	assert_int_equal(from, 2); /* window 2: chunk 1 already asked */
	assert_int_equal(to, 2);
	for (off = 3 * READ; off + READ <= CS && ps->window < 16 * CS;
	     off += READ)
		(void)plan(ps, &opts, off, READ, &from, &to);
	assert_int_equal(ps->ra_next, 17); /* chunks 1..16 asked for */
	assert_false(plan(ps, &opts, off, READ, &from, &to));
}

static void test_random_read_resets(void **state)
{
	struct prefetch_stream *ps = *state;
	uint64_t from, to;

	assert_false(plan(ps, &opts, 0, CS, &from, &to));
	assert_true(plan(ps, &opts, CS, CS, &from, &to));
	assert_true(plan(ps, &opts, 2 * CS, CS, &from, &to));
	assert_int_equal(ps->window, 2 * CS);
	/* A jump far ahead: no readahead, the window starts over. */
	assert_false(plan(ps, &opts, 500 * CS, CS, &from, &to));
	assert_int_equal(ps->window, 0);
	assert_int_equal(ps->ra_next, 0);
	/* Then sequential again: one chunk first. */
	assert_true(plan(ps, &opts, 501 * CS, CS, &from, &to));
	assert_int_equal(from, 502);
	assert_int_equal(to, 502);
	/* A read backwards resets too. */
	assert_false(plan(ps, &opts, 100 * CS, CS, &from, &to));
	assert_int_equal(ps->window, 0);
}

/* The kernel's own readahead reads arrive in parallel, slightly out of
 * order: within PREFETCH_SLACK_BYTES of the last end they still count as
 * sequential; further away they do not. */
static void test_slack_for_out_of_order_reads(void **state)
{
	struct prefetch_stream *ps = *state;
	uint64_t from, to;

	assert_false(plan(ps, &opts, 0, READ, &from, &to));
	/* A gap of less than the slack ahead: sequential. */
	assert_true(plan(ps, &opts, READ + PREFETCH_SLACK_BYTES / 2, READ,
			 &from, &to));
	assert_int_equal(ps->window, CS);
	/* Starting exactly at the slack: still sequential. */
	assert_true(plan(ps, &opts, ps->next_off + PREFETCH_SLACK_BYTES, READ,
			 &from, &to));
	assert_int_equal(ps->window, 2 * CS);
	/* One byte past it: a random read. */
	assert_false(plan(ps, &opts, ps->next_off + PREFETCH_SLACK_BYTES + 1,
			  READ, &from, &to));
	assert_int_equal(ps->window, 0);
}

/* Never past the last chunk of the file. */
static void test_window_clamped_to_file(void **state)
{
	struct prefetch_stream *ps = *state;
	uint64_t from, to, off = (NCHUNKS - 3) * CS;

	assert_false(plan(ps, &opts, off, CS, &from, &to));
	assert_true(plan(ps, &opts, off + CS, CS, &from, &to));
	assert_int_equal(from, NCHUNKS - 1);
	assert_int_equal(to, NCHUNKS - 1);
	/* At the last chunk there is nothing left to plan. */
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
	assert_int_equal(ps->window, 0);
}

/* A maximum below one chunk still fetches one chunk ahead. */
static void test_small_max_is_one_chunk(void **state)
{
	const struct prefetch_opts small = { .chunk_size = CS,
					     .readahead_max = 64 * KIB };
	struct prefetch_stream *ps = *state;
	uint64_t from, to;

	assert_false(plan(ps, &small, 0, CS, &from, &to));
	assert_true(plan(ps, &small, CS, CS, &from, &to));
	assert_int_equal(from, 2);
	assert_int_equal(to, 2);
	assert_true(plan(ps, &small, 2 * CS, CS, &from, &to));
	assert_int_equal(ps->window, 64 * KIB);
	assert_int_equal(from, 3);
	assert_int_equal(to, 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_first_read_plans_nothing,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_sequential_doubles_to_max,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_small_reads_do_not_replan,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_random_read_resets, setup,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_slack_for_out_of_order_reads, setup, teardown),
		cmocka_unit_test_setup_teardown(test_window_clamped_to_file,
						setup, teardown),
		cmocka_unit_test_setup_teardown(test_readahead_off, setup,
						teardown),
		cmocka_unit_test_setup_teardown(test_small_max_is_one_chunk,
						setup, teardown),
	};

	return cmocka_run_group_tests_name("prefetch", tests, NULL, NULL);
}
