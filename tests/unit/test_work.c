/*
 * test_work.c: the worker pool of fetch/work.c: every job runs once, a
 * long BULK job never holds up FAST or IO work, the BULK cap, and a stop
 * that cuts long jobs short between blocks, runs what is queued as
 * cancelled, and refuses new work.
 */
#include "fetch/work.h"

#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* A job that records how it ran; "hold" ones spin until released or
 * cancelled, checking work_cancelled() like a long hash does. */
struct job {
	struct work w; /* first */
	atomic_int *started;
	atomic_int *ran;
	atomic_int *ran_cancelled;
	atomic_bool *release; /* NULL: returns at once */
	atomic_bool saw_cancel;
};

static void job_run(struct work *w, bool cancelled)
{
	struct job *j = (struct job *)w;

	if (cancelled) {
		atomic_fetch_add(j->ran_cancelled, 1);
		return;
	}
	atomic_fetch_add(j->started, 1);
	while (j->release && !atomic_load(j->release)) {
		if (work_cancelled()) {
			atomic_store(&j->saw_cancel, true);
			break;
		}
		sleep_ms(1);
	}
	atomic_fetch_add(j->ran, 1);
}

struct counts {
	atomic_int started, ran, ran_cancelled;
	atomic_bool release;
};

static void job_init(struct job *j, struct counts *c, bool hold)
{
	*j = (struct job){ .w.run = job_run };
	j->started = &c->started;
	j->ran = &c->ran;
	j->ran_cancelled = &c->ran_cancelled;
	j->release = hold ? &c->release : NULL;
}

/* Waits until *v reaches want, for at most ms; returns the last value. */
static int wait_for(atomic_int *v, int want, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;

	while (atomic_load(v) < want && now_ms() < end)
		sleep_ms(1);
	return atomic_load(v);
}

static void test_every_job_runs_once(void **state)
{
	enum { N = 300 };
	struct job *jobs = calloc(N, sizeof(*jobs));
	struct counts c = { 0 };
	struct workq *q;
	int i;

	(void)state;
	assert_non_null(jobs);
	assert_int_equal(workq_new(4, &q), 0);
	for (i = 0; i < N; i++) {
		job_init(&jobs[i], &c, false);
		assert_int_equal(workq_submit(q, (enum work_lane)(i % 3),
					      &jobs[i].w),
				 0);
	}
	assert_int_equal(wait_for(&c.ran, N, 5000), N);
	assert_int_equal(workq_pending(q), 0);
	workq_free(q);
	assert_int_equal(atomic_load(&c.ran), N);
	assert_int_equal(atomic_load(&c.ran_cancelled), 0);
	free(jobs);
}

static void test_bulk_never_blocks_fast_or_io(void **state)
{
	struct counts bulk = { 0 }, quick = { 0 };
	struct job b[4], f, io;
	struct workq *q;
	int i;

	(void)state;
	/* 4 threads: at most 2 BULK jobs run at once, thread 0 is FAST's. */
	assert_int_equal(workq_new(4, &q), 0);
	for (i = 0; i < 4; i++) {
		job_init(&b[i], &bulk, true);
		assert_int_equal(workq_submit(q, WORK_BULK, &b[i].w), 0);
	}
	assert_int_equal(wait_for(&bulk.started, 2, 2000), 2);
	sleep_ms(50);
	assert_int_equal(atomic_load(&bulk.started), 2); /* the cap */

	job_init(&f, &quick, false);
	job_init(&io, &quick, false);
	assert_int_equal(workq_submit(q, WORK_FAST, &f.w), 0);
	assert_int_equal(workq_submit(q, WORK_IO, &io.w), 0);
	assert_int_equal(wait_for(&quick.ran, 2, 2000), 2);

	atomic_store(&bulk.release, true);
	assert_int_equal(wait_for(&bulk.ran, 4, 2000), 4);
	workq_free(q);
}

static void test_thread_zero_keeps_fast_lane_free(void **state)
{
	struct counts io = { 0 }, quick = { 0 };
	struct job slow, f;
	struct workq *q;

	(void)state;
	/* 2 threads: the IO job takes thread 1, FAST still runs on 0. */
	assert_int_equal(workq_new(2, &q), 0);
	job_init(&slow, &io, true);
	assert_int_equal(workq_submit(q, WORK_IO, &slow.w), 0);
	assert_int_equal(wait_for(&io.started, 1, 2000), 1);
	job_init(&f, &quick, false);
	assert_int_equal(workq_submit(q, WORK_FAST, &f.w), 0);
	assert_int_equal(wait_for(&quick.ran, 1, 2000), 1);
	atomic_store(&io.release, true);
	assert_int_equal(wait_for(&io.ran, 1, 2000), 1);
	workq_free(q);
}

static void test_stop_cuts_long_jobs_and_drains(void **state)
{
	struct counts c = { 0 };
	struct job running[2], queued[3], late;
	struct workq *q;
	uint64_t t0;
	int i;

	(void)state;
	assert_false(work_cancelled());
	assert_int_equal(workq_new(4, &q), 0);
	/* Two BULK jobs run (the cap), three wait behind them. */
	for (i = 0; i < 2; i++) {
		job_init(&running[i], &c, true);
		assert_int_equal(workq_submit(q, WORK_BULK, &running[i].w), 0);
	}
	assert_int_equal(wait_for(&c.started, 2, 2000), 2);
	for (i = 0; i < 3; i++) {
		job_init(&queued[i], &c, true);
		assert_int_equal(workq_submit(q, WORK_BULK, &queued[i].w), 0);
	}
	t0 = now_ms();
	workq_stop(q);
	/* The running ones saw the flag between blocks. */
	assert_true(now_ms() - t0 < 1000);
	assert_true(atomic_load(&running[0].saw_cancel));
	assert_true(atomic_load(&running[1].saw_cancel));
	assert_int_equal(atomic_load(&c.started), 2);
	/* The queued ones ran once, told to only let go. */
	assert_int_equal(atomic_load(&c.ran_cancelled), 3);
	/* Nothing new after a stop; the caller keeps its job. */
	job_init(&late, &c, false);
	assert_int_equal(workq_submit(q, WORK_FAST, &late.w), -ECANCELED);
	workq_stop(q); /* idempotent */
	workq_free(q);
	assert_false(work_cancelled()); /* not a worker thread */
}

static void test_free_null(void **state)
{
	(void)state;
	workq_free(NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_every_job_runs_once),
		cmocka_unit_test(test_bulk_never_blocks_fast_or_io),
		cmocka_unit_test(test_thread_zero_keeps_fast_lane_free),
		cmocka_unit_test(test_stop_cuts_long_jobs_and_drains),
		cmocka_unit_test(test_free_null),
	};

	return cmocka_run_group_tests_name("work", tests, NULL, NULL);
}
