/*
 * test_sched.c: the scheduler with a fake transport.
 *
 * The scheduler is made without an engine (engine_kick(NULL) is a no-op)
 * and the tests act as the engine: sched_take_job(), write the bytes of
 * the job into job->data_fd, its sums entries, sched_chunk_done(), then
 * sched_job_end(). The cache is a temp directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "fetch/engine.h"
#include "fetch/fetch_i.h"
#include "fetch/sched.h"
#include "state/blob.h"
#include "state/cache.h"
#include "state/chunkmap.h"
#include "state/verify.h"

#define CS (64u << 10) /* chunk size: the smallest valid */
#define NCHUNKS 16
#define FSIZE ((uint64_t)NCHUNKS * CS - 1000) /* the last chunk is short */
#define WAIT_MS 10000 /* sched_wait timeout: never reached */

struct fixture {
	char dir[PATH_MAX];
	struct cache *cache;
	struct sched *s;
	struct sched_opts o;
	struct fblob_target t;
	struct fblob *fb;
};

/* ---- helpers ---- */

/* fdatasync, failing with EIO while fail_sync is set (linked with
 * -Wl,--wrap=fdatasync): a disk that loses a sync. */
static atomic_bool fail_sync;
int __real_fdatasync(int fd);
int __wrap_fdatasync(int fd);
int __wrap_fdatasync(int fd)
{
	if (atomic_load(&fail_sync)) {
		errno = EIO;
		return -1;
	}
	return __real_fdatasync(fd);
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* The remote file's content: byte off of it. */
static uint8_t pat(uint64_t off)
{
	uint64_t x = off * 0x9e3779b97f4a7c15ull;

	return (uint8_t)(x >> 56 ^ off >> 16);
}

static void fill(uint8_t *buf, uint64_t off, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		buf[i] = pat(off + i);
}

static void chunk_span(uint64_t size, uint64_t idx, uint64_t *off,
		       uint64_t *len)
{
	*off = idx * CS;
	*len = *off + CS > size ? size - *off : CS;
}

/* Writes chunk idx's bytes and its sums entry, as the engine does. */
static void write_chunk(int data_fd, int sums_fd, uint64_t size, uint64_t idx)
{
	static uint8_t buf[CS];
	uint64_t off, len;

	chunk_span(size, idx, &off, &len);
	fill(buf, off, len);
	assert_int_equal(pwrite_all(data_fd, buf, len, off), 0);
	assert_int_equal(
		cache_sums_write(sums_fd, idx, cache_chunk_sum(buf, len)), 0);
}

static bool chunk_on_disk_ok(struct blob *b, uint64_t idx)
{
	static uint8_t buf[CS], want[CS];
	uint64_t off, len;

	chunk_span(b->layout.file_size, idx, &off, &len);
	if (pread_all(b->files.data_fd, buf, len, off))
		return false;
	fill(want, off, len);
	return !memcmp(buf, want, len);
}

static int make_fixture(struct fixture *fx, const struct sched_opts *o)
{
	char path[PATH_MAX + 16];

	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_sched.XXXXXX");
	if (!mkdtemp(fx->dir))
		return -1;
	snprintf(path, sizeof(path), "%s/cache", fx->dir);
	if (cache_new(path, &fx->cache))
		return -1;
	if (o) {
		fx->o = *o;
	} else {
		sched_opts_default(&fx->o);
		fx->o.chunk_size = CS;
		fx->o.max_run_chunks = 4;
		fx->o.save_interval_ms = 600000; /* saves on request only */
	}
	if (sched_new(&fx->o, fx->cache, NULL, &fx->s))
		return -1;
	fx->t = (struct fblob_target){
		.kind = "http",
		.content_id = "\"etag-1\"",
		.size = FSIZE,
		.url = "http://127.0.0.1:9/model.bin",
		.name = "model.bin",
	};
	if (sched_open(fx->s, &fx->t, &fx->fb))
		return -1;
	return 0;
}

static int fx_setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	if (!fx || make_fixture(fx, NULL))
		return -1;
	*state = fx;
	return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	return remove(path);
}

static int fx_teardown(void **state)
{
	struct fixture *fx = *state;

	if (!fx)
		return 0;
	fblob_put(fx->fb);
	sched_free(fx->s);
	cache_free(fx->cache);
	nftw(fx->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

static struct blob *fxb(struct fixture *fx)
{
	return fblob_blob(fx->fb);
}

static enum chunk_state st_of(struct fixture *fx, uint64_t idx)
{
	return chunkmap_get(fxb(fx)->map, idx);
}

/* Takes a job, which must exist. */
static void take(struct fixture *fx, bool background, struct fetch_job *job)
{
	int next_ms = -2;

	assert_int_equal(sched_take_job(fx->s, background, job, &next_ms), 1);
	assert_ptr_equal(job->fb, fx->fb);
	assert_true(job->count >= 1);
	assert_true(job->count <= (uint64_t)fx->o.max_run_chunks);
	assert_int_equal(job->off, job->first * CS);
	assert_int_equal(job->end, (job->first + job->count) * CS > FSIZE ?
					   FSIZE :
					   (job->first + job->count) * CS);
	assert_int_equal(job->file_size, FSIZE);
	assert_int_equal(job->chunk_size, CS);
	assert_string_equal(job->origin, fx->t.url);
	assert_true(job->data_fd >= 0 && job->sums_fd >= 0 &&
		    job->lock_fd >= 0);
}

/* Waits for the worker pool (chunk probes) to finish what it has. */
static void settle(struct fixture *fx)
{
	assert_int_equal(sched_settle(fx->s, 5000), 0);
}

static void take_none(struct fixture *fx, bool background)
{
	struct fetch_job job;
	int next_ms = -2;

	assert_int_equal(sched_take_job(fx->s, background, &job, &next_ms), 0);
}

/* Completes chunk idx of job: bytes, sums entry, DONE. */
static void job_chunk(struct fixture *fx, struct fetch_job *job, uint64_t idx)
{
	assert_true(idx >= job->first && idx < job->first + job->count);
	write_chunk(job->data_fd, job->sums_fd, job->file_size, idx);
	sched_chunk_done(fx->s, job, idx, NULL);
}

/* The engine's whole job: every chunk, then the end. */
static void serve(struct fixture *fx, struct fetch_job *job)
{
	uint64_t i, end = job->first + job->count;

	for (i = job->first; i < end; i++)
		job_chunk(fx, job, i);
	sched_job_end(fx->s, job, end, 0);
}

/* A callback waiter's record. */
struct cb {
	atomic_int calls;
	atomic_int err;
};

static void cb_done(void *arg, int err)
{
	struct cb *c = arg;

	atomic_store(&c->err, err);
	atomic_fetch_add(&c->calls, 1);
}

static void want_cb(struct fixture *fx, uint64_t first, uint64_t last,
		    enum sched_prio prio, struct cb *c)
{
	assert_int_equal(sched_want(fx->s, fx->fb, first, last, prio, cb_done,
				    c, NULL),
			 0);
}

static void want_q(struct fixture *fx, uint64_t first, uint64_t last,
		   enum sched_prio prio)
{
	assert_int_equal(sched_want(fx->s, fx->fb, first, last, prio, NULL,
				    NULL, NULL),
			 0);
}

/* A thread blocked in sched_wait. */
struct waiter_thread {
	pthread_t th;
	struct fixture *fx;
	uint64_t first, last;
	enum sched_prio prio;
	int timeout_ms;
	atomic_int *started;
	atomic_bool finished;
	int ret;
};

static void *waiter_main(void *arg)
{
	struct waiter_thread *w = arg;

	if (w->started)
		atomic_fetch_add(w->started, 1);
	w->ret = sched_wait(w->fx->s, w->fx->fb, w->first, w->last, w->prio,
			    w->timeout_ms);
	atomic_store(&w->finished, true);
	return NULL;
}

static void waiter_start(struct waiter_thread *w, struct fixture *fx,
			 uint64_t first, uint64_t last, atomic_int *started)
{
	memset(w, 0, sizeof(*w));
	w->fx = fx;
	w->first = first;
	w->last = last;
	w->prio = SCHED_DEMAND;
	w->timeout_ms = WAIT_MS;
	w->started = started;
	assert_int_equal(pthread_create(&w->th, NULL, waiter_main, w), 0);
}

/* Takes a job, polling: the want of a waiter thread may not be in yet. */
static void take_poll(struct fixture *fx, bool background,
		      struct fetch_job *job)
{
	uint64_t deadline = now_ms() + 5000;
	int next_ms;

	while (!sched_take_job(fx->s, background, job, &next_ms)) {
		assert_true(now_ms() < deadline);
		sleep_ms(1);
	}
}

/* ---- want: the cheap cases and the errors ---- */

static void test_want_rejects_bad_ranges(void **state)
{
	struct fixture *fx = *state;
	struct cb c = { 0 };

	assert_int_equal(sched_want(fx->s, fx->fb, 0, NCHUNKS, SCHED_DEMAND,
				    cb_done, &c, NULL),
			 -EINVAL);
	assert_int_equal(sched_want(fx->s, fx->fb, 5, 4, SCHED_DEMAND, cb_done,
				    &c, NULL),
			 -EINVAL);
	assert_int_equal(sched_wait(fx->s, fx->fb, 3, 2, SCHED_DEMAND, 100),
			 -EINVAL);
	assert_int_equal(atomic_load(&c.calls), 0);
	assert_false(sched_has_work(fx->s, SCHED_BACKGROUND));
	take_none(fx, true);
}

static void test_want_of_done_chunks_returns_1(void **state)
{
	struct fixture *fx = *state;
	struct sched_waiter *w = (struct sched_waiter *)1;
	struct fetch_job job;
	struct cb c = { 0 };

	want_q(fx, 2, 3, SCHED_DEMAND);
	take(fx, true, &job);
	serve(fx, &job);
	assert_int_equal(sched_want(fx->s, fx->fb, 2, 3, SCHED_DEMAND, cb_done,
				    &c, &w),
			 1);
	assert_null(w);
	assert_int_equal(sched_wait(fx->s, fx->fb, 2, 2, SCHED_DEMAND, 0), 0);
	assert_int_equal(atomic_load(&c.calls), 0);
	take_none(fx, true);
}

static void test_offline_fails_missing_chunks(void **state)
{
	struct fixture *fx = *state;
	struct sched_opts o = fx->o;
	struct fblob_target t = fx->t;
	struct sched *s2 = NULL;
	struct fblob *fb2 = NULL;
	struct fetch_job job;
	struct cb c = { 0 };

	/* Chunk 0 done and saved by the online scheduler. */
	want_q(fx, 0, 0, SCHED_DEMAND);
	take(fx, true, &job);
	serve(fx, &job);
	sched_save_all(fx->s);
	fblob_put(fx->fb);
	fx->fb = NULL;
	sched_free(fx->s);
	fx->s = NULL;

	o.offline = true;
	assert_int_equal(sched_new(&o, fx->cache, NULL, &s2), 0);
	assert_int_equal(sched_open(s2, &t, &fb2), 0);
	assert_int_equal(
		sched_want(s2, fb2, 0, 0, SCHED_DEMAND, cb_done, &c, NULL), 1);
	assert_int_equal(sched_want(s2, fb2, 0, 1, SCHED_DEMAND, cb_done, &c,
				    NULL),
			 -ENETDOWN);
	assert_int_equal(sched_wait(s2, fb2, 5, 5, SCHED_DEMAND, 100),
			 -ENETDOWN);
	assert_false(sched_has_work(s2, SCHED_BACKGROUND));
	assert_int_equal(atomic_load(&c.calls), 0);
	fblob_put(fb2);
	sched_free(s2);
}

/* ---- single flight ---- */

#define NTHREADS 64

static void test_single_flight_64_waiting_threads(void **state)
{
	struct fixture *fx = *state;
	struct waiter_thread *w = calloc(NTHREADS, sizeof(*w));
	atomic_int started = 0;
	struct fetch_job job;
	uint64_t deadline;
	int i;

	assert_non_null(w);
	for (i = 0; i < NTHREADS; i++)
		waiter_start(&w[i], fx, 7, 7, &started);
	take_poll(fx, true, &job);
	assert_int_equal(job.first, 7);
	assert_int_equal(job.count, 1);
	/* Every thread is in sched_wait (or about to be): still one job. */
	deadline = now_ms() + 5000;
	while (atomic_load(&started) < NTHREADS && now_ms() < deadline)
		sleep_ms(1);
	assert_int_equal(atomic_load(&started), NTHREADS);
	for (i = 0; i < 20; i++) {
		take_none(fx, true);
		sleep_ms(10);
	}
	assert_int_equal(st_of(fx, 7), CHUNK_INFLIGHT);
	for (i = 0; i < NTHREADS; i++)
		assert_false(atomic_load(&w[i].finished));
	serve(fx, &job);
	for (i = 0; i < NTHREADS; i++) {
		pthread_join(w[i].th, NULL);
		assert_int_equal(w[i].ret, 0);
	}
	take_none(fx, true);
	assert_int_equal(st_of(fx, 7), CHUNK_DONE);
	assert_int_equal(chunkmap_done_count(fxb(fx)->map), 1);
	free(w);
}

struct cb_thread {
	pthread_t th;
	struct fixture *fx;
	struct cb c;
	atomic_int *registered;
	int ret;
};

static void *cb_thread_main(void *arg)
{
	struct cb_thread *t = arg;

	t->ret = sched_want(t->fx->s, t->fx->fb, 4, 4, SCHED_READAHEAD, cb_done,
			    &t->c, NULL);
	atomic_fetch_add(t->registered, 1);
	return NULL;
}

static void test_single_flight_64_callbacks(void **state)
{
	struct fixture *fx = *state;
	struct cb_thread *t = calloc(NTHREADS, sizeof(*t));
	atomic_int registered = 0;
	struct fetch_job job;
	int i;

	assert_non_null(t);
	for (i = 0; i < NTHREADS; i++) {
		t[i].fx = fx;
		t[i].registered = &registered;
		assert_int_equal(pthread_create(&t[i].th, NULL, cb_thread_main,
						&t[i]),
				 0);
	}
	/* Take the job while the wants are still racing in. */
	take_poll(fx, true, &job);
	for (i = 0; i < NTHREADS; i++) {
		pthread_join(t[i].th, NULL);
		assert_int_equal(t[i].ret, 0);
	}
	assert_int_equal(atomic_load(&registered), NTHREADS);
	assert_int_equal(job.first, 4);
	assert_int_equal(job.count, 1);
	take_none(fx, true);
	for (i = 0; i < NTHREADS; i++)
		assert_int_equal(atomic_load(&t[i].c.calls), 0);
	serve(fx, &job);
	for (i = 0; i < NTHREADS; i++) {
		assert_int_equal(atomic_load(&t[i].c.calls), 1);
		assert_int_equal(atomic_load(&t[i].c.err), 0);
	}
	take_none(fx, true);
	free(t);
}

/* ---- priorities ---- */

static void test_priority_order(void **state)
{
	struct fixture *fx = *state;
	struct fetch_job job;

	want_q(fx, 0, 0, SCHED_BACKGROUND);
	want_q(fx, 4, 4, SCHED_READAHEAD);
	want_q(fx, 8, 8, SCHED_DEMAND);
	want_q(fx, 12, 12, SCHED_READAHEAD);
	assert_true(sched_has_work(fx->s, SCHED_DEMAND));

	take(fx, true, &job);
	assert_int_equal(job.first, 8);
	assert_int_equal(job.prio, SCHED_DEMAND);
	serve(fx, &job);
	assert_false(sched_has_work(fx->s, SCHED_DEMAND));
	assert_true(sched_has_work(fx->s, SCHED_READAHEAD));

	take(fx, true, &job);
	assert_int_equal(job.first, 4); /* FIFO within a priority */
	assert_int_equal(job.prio, SCHED_READAHEAD);
	serve(fx, &job);
	take(fx, true, &job);
	assert_int_equal(job.first, 12);
	assert_int_equal(job.prio, SCHED_READAHEAD);
	serve(fx, &job);
	assert_false(sched_has_work(fx->s, SCHED_READAHEAD));
	assert_true(sched_has_work(fx->s, SCHED_BACKGROUND));

	take(fx, true, &job);
	assert_int_equal(job.first, 0);
	assert_int_equal(job.prio, SCHED_BACKGROUND);
	serve(fx, &job);
	take_none(fx, true);
}

static void test_no_background_work_without_background(void **state)
{
	struct fixture *fx = *state;
	struct fetch_job job;
	int i;

	want_q(fx, 0, 3, SCHED_BACKGROUND);
	want_q(fx, 9, 9, SCHED_BACKGROUND);
	for (i = 0; i < 3; i++)
		take_none(fx, false);
	assert_false(sched_has_work(fx->s, SCHED_READAHEAD));
	assert_int_equal(st_of(fx, 0), CHUNK_QUEUED);

	/* Readahead work is taken, background work still is not. */
	want_q(fx, 6, 6, SCHED_READAHEAD);
	take(fx, false, &job);
	assert_int_equal(job.first, 6);
	serve(fx, &job);
	take_none(fx, false);

	take(fx, true, &job);
	assert_int_equal(job.first, 0);
	assert_int_equal(job.count, 4);
	assert_int_equal(job.prio, SCHED_BACKGROUND);
	serve(fx, &job);
	take(fx, true, &job);
	assert_int_equal(job.first, 9);
	serve(fx, &job);
	take_none(fx, true);
}

static void test_demand_lifts_queued_chunk(void **state)
{
	struct fixture *fx = *state;
	struct fetch_job job;
	struct cb c = { 0 };

	want_q(fx, 0, 7, SCHED_BACKGROUND);
	take_none(fx, false);
	want_q(fx, 10, 10, SCHED_READAHEAD);
	/* A reader wants chunk 5, queued at BACKGROUND: it jumps ahead of
	 * the readahead work, and even a take without background gets it. */
	want_cb(fx, 5, 5, SCHED_DEMAND, &c);
	assert_true(sched_has_work(fx->s, SCHED_DEMAND));
	take(fx, false, &job);
	assert_int_equal(job.first, 5);
	assert_int_equal(job.count, 1);
	assert_int_equal(job.prio, SCHED_DEMAND);
	serve(fx, &job);
	assert_int_equal(atomic_load(&c.calls), 1);
	assert_int_equal(atomic_load(&c.err), 0);

	take(fx, false, &job);
	assert_int_equal(job.first, 10);
	serve(fx, &job);
	take_none(fx, false);

	/* The rest of the background range, without chunk 5. */
	take(fx, true, &job);
	assert_int_equal(job.first, 0);
	assert_int_equal(job.count, 4);
	serve(fx, &job);
	take(fx, true, &job);
	assert_int_equal(job.first, 4);
	assert_int_equal(job.count, 1);
	serve(fx, &job);
	take(fx, true, &job);
	assert_int_equal(job.first, 6);
	assert_int_equal(job.count, 2);
	serve(fx, &job);
	take_none(fx, true);
	assert_int_equal(chunkmap_done_count(fxb(fx)->map), 9);
}

static void test_readahead_lifts_background(void **state)
{
	struct fixture *fx = *state;
	struct fetch_job job;

	want_q(fx, 3, 3, SCHED_BACKGROUND);
	take_none(fx, false);
	want_q(fx, 3, 3, SCHED_READAHEAD);
	take(fx, false, &job);
	assert_int_equal(job.first, 3);
	assert_int_equal(job.prio, SCHED_READAHEAD);
	serve(fx, &job);
	/* A lower priority want of a queued chunk changes nothing. */
	want_q(fx, 8, 8, SCHED_DEMAND);
	want_q(fx, 8, 8, SCHED_BACKGROUND);
	take(fx, false, &job);
	assert_int_equal(job.first, 8);
	assert_int_equal(job.prio, SCHED_DEMAND);
	serve(fx, &job);
	take_none(fx, true);
}

/* ---- errors ---- */

static void test_job_error_reaches_every_waiter(void **state)
{
	struct fixture *fx = *state;
	struct waiter_thread w[8];
	struct cb c[8];
	atomic_int started = 0;
	struct fetch_job job;
	int i;

	memset(c, 0, sizeof(c));
	for (i = 0; i < 8; i++) {
		want_cb(fx, 5, 5, SCHED_DEMAND, &c[i]);
		waiter_start(&w[i], fx, 5, 5, &started);
	}
	take(fx, true, &job);
	assert_int_equal(job.first, 5);
	while (atomic_load(&started) < 8)
		sleep_ms(1);
	sleep_ms(100);
	take_none(fx, true);
	sched_job_end(fx->s, &job, job.first, -EPROTO);
	for (i = 0; i < 8; i++) {
		pthread_join(w[i].th, NULL);
		assert_int_equal(w[i].ret, -EPROTO);
		assert_int_equal(atomic_load(&c[i].calls), 1);
		assert_int_equal(atomic_load(&c[i].err), -EPROTO);
	}
	assert_int_equal(st_of(fx, 5), CHUNK_FAILED);
	assert_int_equal(fblob_error(fx->fb), 0); /* not fatal */
	take_none(fx, true);

	/* A new want of a FAILED chunk fetches it again. */
	memset(c, 0, sizeof(c));
	want_cb(fx, 5, 5, SCHED_DEMAND, &c[0]);
	take(fx, true, &job);
	assert_int_equal(job.first, 5);
	serve(fx, &job);
	assert_int_equal(atomic_load(&c[0].calls), 1);
	assert_int_equal(atomic_load(&c[0].err), 0);
	assert_true(chunk_on_disk_ok(fxb(fx), 5));
}

static void test_partial_job_error(void **state)
{
	struct fixture *fx = *state;
	struct cb c01 = { 0 }, c23 = { 0 }, c12 = { 0 }, c3 = { 0 },
		  c46 = { 0 };
	struct fetch_job job;

	want_q(fx, 0, 3, SCHED_DEMAND);
	want_cb(fx, 0, 1, SCHED_DEMAND, &c01);
	want_cb(fx, 2, 3, SCHED_DEMAND, &c23);
	want_cb(fx, 1, 2, SCHED_DEMAND, &c12);
	want_cb(fx, 3, 3, SCHED_DEMAND, &c3);
	want_cb(fx, 4, 6, SCHED_DEMAND, &c46); /* not in this job */
	take(fx, true, &job);
	assert_int_equal(job.first, 0);
	assert_int_equal(job.count, 4);
	job_chunk(fx, &job, 0);
	assert_int_equal(atomic_load(&c01.calls), 0);
	job_chunk(fx, &job, 1);
	assert_int_equal(atomic_load(&c01.calls), 1); /* at chunk 1 */
	assert_int_equal(atomic_load(&c01.err), 0);
	assert_int_equal(atomic_load(&c12.calls), 0);
	sched_job_end(fx->s, &job, 2, -ECONNRESET);
	assert_int_equal(atomic_load(&c23.calls), 1);
	assert_int_equal(atomic_load(&c23.err), -ECONNRESET);
	assert_int_equal(atomic_load(&c12.calls), 1);
	assert_int_equal(atomic_load(&c12.err), -ECONNRESET);
	assert_int_equal(atomic_load(&c3.calls), 1);
	assert_int_equal(atomic_load(&c3.err), -ECONNRESET);
	assert_int_equal(atomic_load(&c46.calls), 0);
	assert_int_equal(st_of(fx, 1), CHUNK_DONE);
	assert_int_equal(st_of(fx, 2), CHUNK_FAILED);
	assert_int_equal(st_of(fx, 3), CHUNK_FAILED);
	assert_int_equal(atomic_load(&c01.calls), 1);

	take(fx, true, &job);
	assert_int_equal(job.first, 4);
	serve(fx, &job);
	assert_int_equal(atomic_load(&c46.calls), 1);
	assert_int_equal(atomic_load(&c46.err), 0);
	take_none(fx, true);
}

static void test_job_end_without_error_requeues(void **state)
{
	struct fixture *fx = *state;
	struct fetch_job job;
	struct cb c = { 0 };

	want_cb(fx, 8, 11, SCHED_READAHEAD, &c);
	take(fx, true, &job);
	assert_int_equal(job.first, 8);
	assert_int_equal(job.count, 4);
	job_chunk(fx, &job, 8);
	sched_job_end(fx->s, &job, 9, 0); /* cancelled, no error */
	assert_int_equal(atomic_load(&c.calls), 0);
	assert_int_equal(st_of(fx, 8), CHUNK_DONE);
	assert_int_equal(st_of(fx, 9), CHUNK_QUEUED);
	take(fx, true, &job);
	assert_int_equal(job.first, 9);
	assert_int_equal(job.count, 3);
	assert_int_equal(job.prio, SCHED_READAHEAD);
	serve(fx, &job);
	assert_int_equal(atomic_load(&c.calls), 1);
	assert_int_equal(atomic_load(&c.err), 0);
	take_none(fx, true);
}

static void test_fail_blob(void **state)
{
	struct fixture *fx = *state;
	struct waiter_thread w[4];
	struct cb c1 = { 0 }, c2 = { 0 }, c3 = { 0 };
	atomic_int started = 0;
	struct fetch_job job, done_job;
	int i;

	want_q(fx, 0, 0, SCHED_DEMAND);
	take(fx, true, &done_job);
	serve(fx, &done_job);

	want_cb(fx, 1, 2, SCHED_DEMAND, &c1);
	want_cb(fx, 9, 9, SCHED_BACKGROUND, &c2);
	want_cb(fx, 0, 5, SCHED_READAHEAD, &c3);
	for (i = 0; i < 4; i++)
		waiter_start(&w[i], fx, (uint64_t)i * 3, (uint64_t)i * 3 + 1,
			     &started);
	take_poll(fx, true, &job); /* one transfer in flight */
	while (atomic_load(&started) < 4)
		sleep_ms(1);
	sleep_ms(100);

	sched_fail_blob(fx->s, fx->fb, -ESTALE);
	assert_int_equal(fblob_error(fx->fb), -ESTALE);
	assert_true(sched_blob_cancelled(fx->fb));
	assert_int_equal(atomic_load(&c1.calls), 1);
	assert_int_equal(atomic_load(&c1.err), -ESTALE);
	assert_int_equal(atomic_load(&c2.calls), 1);
	assert_int_equal(atomic_load(&c2.err), -ESTALE);
	assert_int_equal(atomic_load(&c3.calls), 1);
	assert_int_equal(atomic_load(&c3.err), -ESTALE);
	for (i = 0; i < 4; i++) {
		pthread_join(w[i].th, NULL);
		assert_int_equal(w[i].ret, -ESTALE);
	}
	/* No more work for this blob, and later wants get the error. */
	take_none(fx, true);
	assert_int_equal(sched_want(fx->s, fx->fb, 12, 12, SCHED_DEMAND,
				    cb_done, &c1, NULL),
			 -ESTALE);
	assert_int_equal(sched_wait(fx->s, fx->fb, 13, 13, SCHED_DEMAND, 100),
			 -ESTALE);
	/* The first error stays. */
	sched_fail_blob(fx->s, fx->fb, -EIO);
	assert_int_equal(fblob_error(fx->fb), -ESTALE);
	/* The engine hands its transfer back with the error. */
	sched_job_end(fx->s, &job, job.first, -ESTALE);
	assert_int_equal(atomic_load(&c1.calls), 1);
	assert_int_equal(atomic_load(&c2.calls), 1);
	assert_int_equal(atomic_load(&c3.calls), 1);
	/* What is done stays readable. */
	assert_int_equal(sched_want(fx->s, fx->fb, 0, 0, SCHED_DEMAND, NULL,
				    NULL, NULL),
			 1);
	take_none(fx, true);
}

static void test_job_end_estale_fails_blob(void **state)
{
	struct fixture *fx = *state;
	struct cb c1 = { 0 }, c2 = { 0 };
	struct fetch_job job;

	want_cb(fx, 0, 0, SCHED_DEMAND, &c1);
	want_cb(fx, 10, 10, SCHED_DEMAND, &c2);
	take(fx, true, &job);
	assert_int_equal(job.first, 0);
	sched_job_end(fx->s, &job, job.first, -ESTALE);
	assert_int_equal(fblob_error(fx->fb), -ESTALE);
	assert_int_equal(atomic_load(&c1.err), -ESTALE);
	assert_int_equal(atomic_load(&c2.calls), 1);
	assert_int_equal(atomic_load(&c2.err), -ESTALE);
	take_none(fx, true);
}

/* ---- cancellation ---- */

static void test_cancel_before_firing(void **state)
{
	struct fixture *fx = *state;
	struct sched_waiter *w1 = NULL, *w2 = NULL;
	struct cb c1 = { 0 }, c2 = { 0 };
	struct fetch_job job;

	assert_int_equal(sched_want(fx->s, fx->fb, 2, 3, SCHED_DEMAND, cb_done,
				    &c1, &w1),
			 0);
	assert_non_null(w1);
	assert_int_equal(sched_want(fx->s, fx->fb, 3, 3, SCHED_DEMAND, cb_done,
				    &c2, &w2),
			 0);
	assert_int_equal(sched_cancel(fx->s, w1), 0);
	/* The chunks stay wanted (the caller may queue them anyway). */
	take(fx, true, &job);
	assert_int_equal(job.first, 2);
	assert_int_equal(job.count, 2);
	serve(fx, &job);
	assert_int_equal(atomic_load(&c1.calls), 0);
	assert_int_equal(atomic_load(&c2.calls), 1);
	assert_int_equal(atomic_load(&c2.err), 0);

	/* Cancelled, then the chunk fails: still never called. */
	assert_int_equal(sched_want(fx->s, fx->fb, 6, 6, SCHED_DEMAND, cb_done,
				    &c1, &w1),
			 0);
	assert_int_equal(sched_cancel(fx->s, w1), 0);
	take(fx, true, &job);
	sched_job_end(fx->s, &job, job.first, -EIO);
	sched_fail_blob(fx->s, fx->fb, -ESTALE);
	assert_int_equal(atomic_load(&c1.calls), 0);
}

/* Cancelling from inside the callback's own lock, as sched.h asks. */
struct locked_waiter {
	pthread_mutex_t lock;
	struct sched_waiter *w;
	bool fired;
	int err;
};

static void locked_done(void *arg, int err)
{
	struct locked_waiter *lw = arg;

	pthread_mutex_lock(&lw->lock);
	lw->fired = true;
	lw->err = err;
	pthread_mutex_unlock(&lw->lock);
}

static void test_cancel_under_callers_lock(void **state)
{
	struct fixture *fx = *state;
	struct fblob_target t = fx->t;
	struct fblob *fb = NULL;
	int round, cancelled = 0, fired = 0;

	t.content_id = "\"many-chunks\"";
	t.size = 200ull * CS;
	assert_int_equal(sched_open(fx->s, &t, &fb), 0);
	for (round = 0; round < 200; round++) {
		struct locked_waiter lw = { .fired = false };
		struct fetch_job job;
		uint64_t i, idx = (uint64_t)round;
		int next_ms, ret;

		pthread_mutex_init(&lw.lock, NULL);
		pthread_mutex_lock(&lw.lock);
		assert_int_equal(sched_want(fx->s, fb, idx, idx, SCHED_DEMAND,
					    locked_done, &lw, &lw.w),
				 0);
		pthread_mutex_unlock(&lw.lock);
		assert_int_equal(sched_take_job(fx->s, true, &job, &next_ms),
				 1);
		assert_int_equal(job.first, idx);
		if (round % 2) {
			pthread_mutex_lock(&lw.lock);
			ret = sched_cancel(fx->s, lw.w);
			pthread_mutex_unlock(&lw.lock);
			assert_int_equal(ret, 0);
			cancelled++;
		}
		for (i = job.first; i < job.first + job.count; i++) {
			write_chunk(job.data_fd, job.sums_fd, job.file_size, i);
			sched_chunk_done(fx->s, &job, i, NULL);
		}
		sched_job_end(fx->s, &job, job.first + job.count, 0);
		pthread_mutex_lock(&lw.lock);
		assert_int_equal(lw.fired, !(round % 2));
		if (lw.fired) {
			assert_int_equal(lw.err, 0);
			fired++;
		}
		pthread_mutex_unlock(&lw.lock);
		pthread_mutex_destroy(&lw.lock);
	}
	assert_int_equal(cancelled, 100);
	assert_int_equal(fired, 100);
	fblob_put(fb);
}

static void test_wait_timeout(void **state)
{
	struct fixture *fx = *state;
	struct fetch_job job;
	uint64_t t0 = now_ms(), dt;
	struct cb c = { 0 };

	assert_int_equal(sched_wait(fx->s, fx->fb, 11, 11, SCHED_DEMAND, 150),
			 -ETIMEDOUT);
	dt = now_ms() - t0;
	assert_true(dt >= 140);
	assert_true(dt < 3000);
	/* The chunk stays queued; completing it later is harmless. */
	assert_int_equal(st_of(fx, 11), CHUNK_QUEUED);
	want_cb(fx, 11, 11, SCHED_DEMAND, &c);
	take(fx, true, &job);
	assert_int_equal(job.first, 11);
	serve(fx, &job);
	assert_int_equal(atomic_load(&c.calls), 1);
	take_none(fx, true);
}

static void test_cancel_all(void **state)
{
	struct fixture *fx = *state;
	struct waiter_thread w[6];
	struct cb c1 = { 0 }, c2 = { 0 }, c3 = { 0 };
	atomic_int started = 0;
	struct fetch_job job;
	int i;

	want_cb(fx, 0, 3, SCHED_DEMAND, &c1);
	want_cb(fx, 14, 15, SCHED_BACKGROUND, &c2);
	for (i = 0; i < 6; i++)
		waiter_start(&w[i], fx, (uint64_t)i, (uint64_t)i + 6, &started);
	take_poll(fx, true, &job);
	assert_int_equal(job.first, 0);
	while (atomic_load(&started) < 6)
		sleep_ms(1);
	sleep_ms(100);

	sched_cancel_all(fx->s, -ECANCELED);
	assert_int_equal(atomic_load(&c1.calls), 1);
	assert_int_equal(atomic_load(&c1.err), -ECANCELED);
	assert_int_equal(atomic_load(&c2.calls), 1);
	assert_int_equal(atomic_load(&c2.err), -ECANCELED);
	for (i = 0; i < 6; i++) {
		pthread_join(w[i].th, NULL);
		assert_int_equal(w[i].ret, -ECANCELED);
	}
	assert_true(sched_blob_cancelled(fx->fb));
	assert_false(sched_has_work(fx->s, SCHED_BACKGROUND));
	take_none(fx, true);
	assert_int_equal(sched_want(fx->s, fx->fb, 8, 8, SCHED_DEMAND, cb_done,
				    &c3, NULL),
			 -ECANCELED);
	assert_int_equal(atomic_load(&c3.calls), 0);

	/* The engine's transfer ends after the shutdown: no requeue. */
	job_chunk(fx, &job, 0);
	sched_job_end(fx->s, &job, 1, 0);
	assert_int_equal(st_of(fx, 0), CHUNK_DONE);
	assert_int_equal(st_of(fx, 1), CHUNK_FAILED);
	take_none(fx, true);
	assert_int_equal(atomic_load(&c1.calls), 1);
}

/* ---- runs and waiters of ranges ---- */

static void test_runs_up_to_max_run_chunks(void **state)
{
	struct fixture *fx = *state;
	struct fetch_job job;
	struct cb all = { 0 }, mid = { 0 };
	uint64_t expect_first = 0;
	int n = 0;

	want_cb(fx, 0, NCHUNKS - 1, SCHED_DEMAND, &all);
	want_cb(fx, 3, 9, SCHED_DEMAND, &mid);
	while (expect_first < NCHUNKS) {
		take(fx, true, &job);
		assert_int_equal(job.first, expect_first);
		assert_int_equal(job.count, 4);
		if (job.first + job.count == NCHUNKS)
			assert_int_equal(job.end, FSIZE);
		assert_int_equal(atomic_load(&all.calls), 0);
		expect_first += job.count;
		serve(fx, &job); /* clears job */
		n++;
		assert_int_equal(atomic_load(&mid.calls),
				 expect_first > 9 ? 1 : 0);
	}
	assert_int_equal(n, NCHUNKS / 4);
	assert_int_equal(atomic_load(&all.calls), 1);
	assert_int_equal(atomic_load(&all.err), 0);
	take_none(fx, true);
	assert_int_equal(chunkmap_done_count(fxb(fx)->map), NCHUNKS);
}

static void test_run_length_option(void **state)
{
	struct fixture *fx = *state;
	struct fetch_job job;

	fblob_put(fx->fb);
	fx->fb = NULL;
	sched_free(fx->s);
	fx->o.max_run_chunks = 3;
	assert_int_equal(sched_new(&fx->o, fx->cache, NULL, &fx->s), 0);
	assert_int_equal(sched_open(fx->s, &fx->t, &fx->fb), 0);
	want_q(fx, 0, 6, SCHED_DEMAND);
	take(fx, true, &job);
	assert_int_equal(job.count, 3);
	serve(fx, &job);
	take(fx, true, &job);
	assert_int_equal(job.first, 3);
	assert_int_equal(job.count, 3);
	serve(fx, &job);
	take(fx, true, &job);
	assert_int_equal(job.first, 6);
	assert_int_equal(job.count, 1);
	serve(fx, &job);
	take_none(fx, true);
}

static void test_run_stops_at_chunk_not_queued(void **state)
{
	struct fixture *fx = *state;
	struct fetch_job job, j5;

	want_q(fx, 2, 2, SCHED_DEMAND);
	take(fx, true, &job);
	serve(fx, &job); /* 2 is DONE */
	want_q(fx, 5, 5, SCHED_DEMAND);
	take(fx, true, &j5); /* 5 is INFLIGHT */
	want_q(fx, 0, 9, SCHED_DEMAND);
	take(fx, true, &job);
	assert_int_equal(job.first, 0);
	assert_int_equal(job.count, 2);
	serve(fx, &job);
	take(fx, true, &job);
	assert_int_equal(job.first, 3);
	assert_int_equal(job.count, 2);
	serve(fx, &job);
	take(fx, true, &job);
	assert_int_equal(job.first, 6);
	assert_int_equal(job.count, 4);
	serve(fx, &job);
	take_none(fx, true);
	serve(fx, &j5);
	assert_int_equal(chunkmap_done_count(fxb(fx)->map), 10);
}

static void test_range_waiter_fires_when_all_done(void **state)
{
	struct fixture *fx = *state;
	struct fetch_job a, b;
	struct cb c = { 0 };
	uint64_t i;

	want_q(fx, 6, 6, SCHED_DEMAND);
	want_q(fx, 2, 5, SCHED_DEMAND);
	want_cb(fx, 2, 6, SCHED_DEMAND, &c);
	take(fx, true, &a);
	assert_int_equal(a.first, 6);
	take(fx, true, &b);
	assert_int_equal(b.first, 2);
	assert_int_equal(b.count, 4);
	serve(fx, &a);
	assert_int_equal(atomic_load(&c.calls), 0);
	for (i = 2; i <= 5; i++) {
		assert_int_equal(atomic_load(&c.calls), 0);
		job_chunk(fx, &b, i);
	}
	assert_int_equal(atomic_load(&c.calls), 1);
	assert_int_equal(atomic_load(&c.err), 0);
	sched_job_end(fx->s, &b, 6, 0);
	assert_int_equal(atomic_load(&c.calls), 1);
}

/* ---- chunks complete on disk (another process, or a run that died) ---- */

static void test_chunk_on_disk_is_not_fetched(void **state)
{
	struct fixture *fx = *state;
	struct blob *b = fxb(fx);
	struct fetch_job job;
	struct cb c = { 0 };
	int next_ms = -2;

	write_chunk(b->files.data_fd, b->files.sums_fd, FSIZE, 3);
	assert_int_equal(st_of(fx, 3), CHUNK_MISSING);
	want_cb(fx, 3, 3, SCHED_DEMAND, &c);
	/* Its sums entry sends it to a probe on the worker pool, which finds
	 * it complete: no job, the waiter fires. */
	assert_int_equal(sched_take_job(fx->s, true, &job, &next_ms), 0);
	settle(fx);
	assert_int_equal(st_of(fx, 3), CHUNK_DONE);
	assert_int_equal(atomic_load(&c.calls), 1);
	assert_int_equal(atomic_load(&c.err), 0);

	/* At the front of a run: the run starts after it. */
	write_chunk(b->files.data_fd, b->files.sums_fd, FSIZE, 8);
	write_chunk(b->files.data_fd, b->files.sums_fd, FSIZE, 9);
	want_q(fx, 8, 11, SCHED_DEMAND);
	take(fx, true, &job);
	assert_int_equal(job.first, 10);
	assert_int_equal(job.count, 2);
	assert_int_equal(job.off, 10 * CS);
	serve(fx, &job);
	settle(fx);
	assert_int_equal(st_of(fx, 8), CHUNK_DONE);
	assert_int_equal(st_of(fx, 9), CHUNK_DONE);
	take_none(fx, true);
}

/* The fetched chunks, whatever the order and runs the scheduler picks. */
static uint32_t take_all_jobs(struct fixture *fx, int deadline_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)deadline_ms;
	uint32_t fetched = 0;
	struct fetch_job job;
	bool idle = false;
	int next_ms;

	while (now_ms() < deadline) {
		uint64_t i;

		next_ms = -1;
		if (!sched_take_job(fx->s, true, &job, &next_ms)) {
			if (next_ms < 0) {
				/* Probes may queue chunks again: wait for the
				 * pool, then look once more. */
				if (idle)
					break;
				settle(fx);
				idle = true;
				continue;
			}
			sleep_ms(next_ms > 0 ? next_ms : 1);
			continue;
		}
		idle = false;
		for (i = job.first; i < job.first + job.count; i++)
			fetched |= 1u << i;
		serve(fx, &job);
	}
	return fetched;
}

static void test_chunk_on_disk_mid_run_is_not_fetched(void **state)
{
	struct fixture *fx = *state;
	struct blob *b = fxb(fx);
	struct cb c = { 0 };
	uint32_t fetched;

	write_chunk(b->files.data_fd, b->files.sums_fd, FSIZE, 3);
	want_cb(fx, 2, 5, SCHED_DEMAND, &c);
	fetched = take_all_jobs(fx, 3000);
	assert_int_equal(atomic_load(&c.calls), 1);
	assert_int_equal(atomic_load(&c.err), 0);
	/* Chunk 3 is complete on disk: never handed out again. */
	assert_int_equal(fetched, (1u << 2) | (1u << 4) | (1u << 5));
}

static void test_bad_sums_entry_is_fetched(void **state)
{
	struct fixture *fx = *state;
	struct blob *b = fxb(fx);
	struct fetch_job job;

	/* The bytes are there, the sums entry does not match them. */
	write_chunk(b->files.data_fd, b->files.sums_fd, FSIZE, 4);
	assert_int_equal(cache_sums_write(b->files.sums_fd, 4, 12345), 0);
	want_q(fx, 4, 4, SCHED_DEMAND);
	/* The probe finds the entry wrong, clears it and queues the chunk
	 * again (take_poll: the job comes once the probe is over). */
	take_poll(fx, true, &job);
	assert_int_equal(job.first, 4);
	assert_int_equal(job.count, 1);
	serve(fx, &job);
	/* And bytes with a sums entry of 0 (none) are fetched too. */
	write_chunk(b->files.data_fd, b->files.sums_fd, FSIZE, 5);
	assert_int_equal(cache_sums_write(b->files.sums_fd, 5, 0), 0);
	want_q(fx, 5, 5, SCHED_DEMAND);
	take(fx, true, &job);
	assert_int_equal(job.first, 5);
	serve(fx, &job);
}

static void test_chunk_locked_elsewhere_is_deferred(void **state)
{
	struct fixture *fx = *state;
	struct blob *other = NULL;
	struct fetch_job job;
	struct cb c = { 0 };
	int next_ms = -2;

	/* Another open file description: another process, for OFD locks. */
	assert_int_equal(blob_open(fx->cache, fx->t.kind, fx->t.content_id,
				   fx->t.size, CS, &other),
			 0);
	assert_int_equal(cache_chunk_trylock(other->files.lock_fd, 6), 0);
	want_cb(fx, 6, 6, SCHED_DEMAND, &c);
	assert_int_equal(sched_take_job(fx->s, true, &job, &next_ms), 0);
	assert_true(next_ms > 0 && next_ms <= 1000);
	assert_int_equal(st_of(fx, 6), CHUNK_QUEUED);
	assert_int_equal(atomic_load(&c.calls), 0);

	/* The other process finishes it and lets go: found on disk. */
	write_chunk(other->files.data_fd, other->files.sums_fd, FSIZE, 6);
	cache_chunk_unlock(other->files.lock_fd, 6);
	sleep_ms(next_ms + 10);
	assert_int_equal(sched_take_job(fx->s, true, &job, &next_ms), 0);
	settle(fx);
	assert_int_equal(atomic_load(&c.calls), 1);
	assert_int_equal(atomic_load(&c.err), 0);
	assert_int_equal(st_of(fx, 6), CHUNK_DONE);

	/* Locked, then given up without the bytes: we fetch it. */
	assert_int_equal(cache_chunk_trylock(other->files.lock_fd, 7), 0);
	want_q(fx, 7, 7, SCHED_DEMAND);
	assert_int_equal(sched_take_job(fx->s, true, &job, &next_ms), 0);
	cache_chunk_unlock(other->files.lock_fd, 7);
	sleep_ms(next_ms + 10);
	take(fx, true, &job);
	assert_int_equal(job.first, 7);
	/* While we hold it, the other side cannot take it. */
	assert_int_equal(cache_chunk_trylock(other->files.lock_fd, 7), -EAGAIN);
	serve(fx, &job);
	assert_int_equal(cache_chunk_trylock(other->files.lock_fd, 7), 0);
	blob_free(other);
}

/* ---- persistence ---- */

static void test_saved_chunks_are_durable(void **state)
{
	struct fixture *fx = *state;
	struct blob *again = NULL;
	struct fetch_job job;
	uint64_t i;

	want_q(fx, 0, 5, SCHED_DEMAND);
	want_q(fx, 12, 12, SCHED_DEMAND);
	while (sched_has_work(fx->s, SCHED_BACKGROUND)) {
		take(fx, true, &job);
		serve(fx, &job);
	}
	assert_int_equal(chunkmap_done_count(fxb(fx)->map), 7);
	sched_save_all(fx->s);
	assert_int_equal(chunkmap_durable_count(fxb(fx)->map), 7);

	/* The sidecar on disk, read by a fresh open of the blob. */
	assert_int_equal(blob_open(fx->cache, fx->t.kind, fx->t.content_id,
				   fx->t.size, CS, &again),
			 0);
	assert_int_equal(chunkmap_done_count(again->map), 7);
	for (i = 0; i < NCHUNKS; i++) {
		bool want = i <= 5 || i == 12;

		assert_int_equal(chunkmap_get(again->map, i) == CHUNK_DONE,
				 want);
		if (want)
			assert_true(chunk_on_disk_ok(again, i));
	}
	blob_free(again);

	/* A new scheduler on the same cache: nothing to fetch again. */
	fblob_put(fx->fb);
	fx->fb = NULL;
	sched_free(fx->s);
	assert_int_equal(sched_new(&fx->o, fx->cache, NULL, &fx->s), 0);
	assert_int_equal(sched_open(fx->s, &fx->t, &fx->fb), 0);
	assert_int_equal(sched_want(fx->s, fx->fb, 0, 5, SCHED_DEMAND, NULL,
				    NULL, NULL),
			 1);
	assert_int_equal(sched_wait(fx->s, fx->fb, 12, 12, SCHED_DEMAND, 0), 0);
	want_q(fx, 0, 7, SCHED_DEMAND);
	take(fx, true, &job);
	assert_int_equal(job.first, 6);
	assert_int_equal(job.count, 2);
	serve(fx, &job);
	take_none(fx, true);
}

static void test_last_reference_saves(void **state)
{
	struct fixture *fx = *state;
	struct blob *again = NULL;
	struct fetch_job job;

	want_q(fx, 1, 2, SCHED_DEMAND);
	take(fx, true, &job);
	serve(fx, &job);
	assert_int_equal(chunkmap_durable_count(fxb(fx)->map), 0);
	fblob_put(fx->fb); /* the saver saves and frees it */
	fx->fb = NULL;
	sched_save_all(fx->s);
	assert_int_equal(blob_open(fx->cache, fx->t.kind, fx->t.content_id,
				   fx->t.size, CS, &again),
			 0);
	assert_int_equal(chunkmap_done_count(again->map), 2);
	assert_int_equal(chunkmap_get(again->map, 1), CHUNK_DONE);
	assert_int_equal(chunkmap_get(again->map, 2), CHUNK_DONE);
	blob_free(again);
	/* Opened again: the same chunks are done, served from disk. */
	assert_int_equal(sched_open(fx->s, &fx->t, &fx->fb), 0);
	assert_int_equal(sched_wait(fx->s, fx->fb, 1, 2, SCHED_DEMAND, 0), 0);
}

static void test_open_shares_one_fblob(void **state)
{
	struct fixture *fx = *state;
	struct fblob_target t2 = fx->t;
	struct fblob *same = NULL, *other = NULL;

	assert_int_equal(sched_open(fx->s, &fx->t, &same), 0);
	assert_ptr_equal(same, fx->fb);
	t2.content_id = "\"etag-2\"";
	assert_int_equal(sched_open(fx->s, &t2, &other), 0);
	assert_ptr_not_equal(other, fx->fb);
	assert_string_equal(fblob_name(other), "model.bin");
	assert_string_equal(fblob_url(other), fx->t.url);
	fblob_put(same);
	fblob_put(other);
	/* fx->fb still holds its reference: still usable. */
	assert_int_equal(sched_want(fx->s, fx->fb, 0, 0, SCHED_DEMAND, NULL,
				    NULL, NULL),
			 0);
}

static size_t open_blobs(struct sched *s)
{
	struct sched_stats st;

	sched_get_stats(s, &st);
	return (size_t)st.open_blobs;
}

/* Idle blobs are closed least recently used first, so a scheduler opens
 * any number of files one after another within its bound, and a blob
 * still referenced is never closed. */
static void test_idle_blobs_closed_within_bound(void **state)
{
	struct fixture *fx = *state;
	struct fblob_target t = fx->t;
	struct fblob *fb;
	char etag[32];
	size_t most = 0;
	int i;

	fblob_put(fx->fb);
	sched_free(fx->s);
	fx->fb = NULL;
	fx->o.max_open_blobs = 8; /* soft bound 6 */
	fx->o.save_interval_ms = 20;
	assert_int_equal(sched_new(&fx->o, fx->cache, NULL, &fx->s), 0);
	assert_int_equal(sched_open(fx->s, &fx->t, &fx->fb), 0);
	for (i = 0; i < 100; i++) {
		snprintf(etag, sizeof(etag), "\"e-%d\"", i);
		t.content_id = etag;
		assert_int_equal(sched_open(fx->s, &t, &fb), 0);
		fblob_put(fb);
		if (open_blobs(fx->s) > most)
			most = open_blobs(fx->s);
	}
	assert_true(most <= 8);
	/* The one still referenced survived every round. */
	assert_int_equal(sched_want(fx->s, fx->fb, 1, 1, SCHED_DEMAND, NULL,
				    NULL, NULL),
			 0);
	sched_save_all(fx->s);
	assert_true(open_blobs(fx->s) <= 6);
	/* A blob opened again after being closed is the same file. */
	t.content_id = "\"e-0\"";
	assert_int_equal(sched_open(fx->s, &t, &fb), 0);
	assert_int_equal(fblob_nchunks(fb), fblob_nchunks(fx->fb));
	fblob_put(fb);
}

/* A blob idle for idle_close_ms is closed; one in use is not. */
static void test_idle_blob_closed_after_timeout(void **state)
{
	struct fixture *fx = *state;
	struct fblob_target t = fx->t;
	struct fblob *fb;
	int i;

	fblob_put(fx->fb);
	sched_free(fx->s);
	fx->fb = NULL;
	fx->o.idle_close_ms = 50;
	fx->o.save_interval_ms = 10;
	assert_int_equal(sched_new(&fx->o, fx->cache, NULL, &fx->s), 0);
	assert_int_equal(sched_open(fx->s, &fx->t, &fx->fb), 0);
	t.content_id = "\"other\"";
	assert_int_equal(sched_open(fx->s, &t, &fb), 0);
	fblob_put(fb);
	assert_int_equal(open_blobs(fx->s), 2);
	for (i = 0; i < 200 && open_blobs(fx->s) > 1; i++)
		sleep_ms(10);
	assert_int_equal(open_blobs(fx->s), 1);
}

/* ---- concurrency ---- */

#define STRESS_CHUNKS 256
#define STRESS_READERS 16

struct stress {
	struct sched *s;
	struct fblob *fb;
	atomic_bool stop;
	atomic_int served[STRESS_CHUNKS];
	atomic_int failures;
	atomic_int waits;
};

static void *stress_engine(void *arg)
{
	struct stress *st = arg;

	while (!atomic_load(&st->stop)) {
		struct fetch_job job;
		int next_ms;
		uint64_t i;

		if (!sched_take_job(st->s, true, &job, &next_ms)) {
			sleep_ms(1);
			continue;
		}
		for (i = job.first; i < job.first + job.count; i++) {
			uint8_t buf[CS];
			uint64_t off, len;

			chunk_span(job.file_size, i, &off, &len);
			fill(buf, off, len);
			if (pwrite_all(job.data_fd, buf, len, off) ||
			    cache_sums_write(job.sums_fd, i,
					     cache_chunk_sum(buf, len)))
				atomic_fetch_add(&st->failures, 1);
			atomic_fetch_add(&st->served[i], 1);
			sched_chunk_done(st->s, &job, i, NULL);
		}
		sched_job_end(st->s, &job, job.first + job.count, 0);
	}
	return NULL;
}

static void *stress_reader(void *arg)
{
	struct stress *st = arg;
	unsigned int seed = (unsigned int)(uintptr_t)&seed;
	int k;

	for (k = 0; k < 200; k++) {
		uint64_t a = (uint64_t)rand_r(&seed) % STRESS_CHUNKS;
		uint64_t n = (uint64_t)rand_r(&seed) % 6;
		uint64_t b = a + n >= STRESS_CHUNKS ? STRESS_CHUNKS - 1 : a + n;
		enum sched_prio p = (enum sched_prio)(rand_r(&seed) % 3);
		int ret;

		ret = sched_wait(st->s, st->fb, a, b, p, WAIT_MS);
		if (ret)
			atomic_fetch_add(&st->failures, 1);
		else if (!chunkmap_all_done(fblob_blob(st->fb)->map, a, b))
			atomic_fetch_add(&st->failures, 1);
		atomic_fetch_add(&st->waits, 1);
	}
	return NULL;
}

static void test_stress_single_flight(void **state)
{
	struct fixture *fx = *state;
	struct fblob_target t = fx->t;
	struct stress *st = calloc(1, sizeof(*st));
	pthread_t eng[2], rd[STRESS_READERS];
	int i, total = 0;

	assert_non_null(st);
	t.content_id = "\"stress\"";
	t.size = (uint64_t)STRESS_CHUNKS * CS;
	st->s = fx->s;
	assert_int_equal(sched_open(fx->s, &t, &st->fb), 0);
	for (i = 0; i < 2; i++)
		assert_int_equal(
			pthread_create(&eng[i], NULL, stress_engine, st), 0);
	for (i = 0; i < STRESS_READERS; i++)
		assert_int_equal(
			pthread_create(&rd[i], NULL, stress_reader, st), 0);
	for (i = 0; i < STRESS_READERS; i++)
		pthread_join(rd[i], NULL);
	atomic_store(&st->stop, true);
	for (i = 0; i < 2; i++)
		pthread_join(eng[i], NULL);
	assert_int_equal(atomic_load(&st->failures), 0);
	assert_int_equal(atomic_load(&st->waits), STRESS_READERS * 200);
	for (i = 0; i < STRESS_CHUNKS; i++) {
		int n = atomic_load(&st->served[i]);

		assert_true(n <= 1); /* never fetched twice */
		assert_int_equal(n == 1,
				 chunkmap_get(fblob_blob(st->fb)->map,
					      (uint64_t)i) == CHUNK_DONE);
		total += n;
	}
	assert_int_equal((uint64_t)total,
			 chunkmap_done_count(fblob_blob(st->fb)->map));
	fblob_put(st->fb);
	free(st);
}

/*
 * A want racing sched_cancel_all / sched_fail_blob: a waiter registered
 * (sched_want returned 0) must be called back, or it hangs forever (its
 * chunks are never fetched after the shutdown or the blob's failure).
 */
struct race {
	struct sched *s;
	struct fblob *fb;
	atomic_bool go;
	atomic_int registered;
	struct cb c[1024];
};

static void *race_wanter(void *arg)
{
	struct race *r = arg;
	int k;

	while (!atomic_load(&r->go))
		;
	for (k = 0; k < 1024; k++) {
		if (sched_want(r->s, r->fb, (uint64_t)k % NCHUNKS,
			       (uint64_t)k % NCHUNKS, SCHED_DEMAND, cb_done,
			       &r->c[k], NULL))
			break;
		atomic_fetch_add(&r->registered, 1);
	}
	return NULL;
}

static int race_round(struct fixture *fx, bool fail_blob, int spin)
{
	struct race *r = calloc(1, sizeof(*r));
	struct sched *s = NULL;
	struct fblob *fb = NULL;
	pthread_t th;
	int k, lost = 0;

	assert_non_null(r);
	assert_int_equal(sched_new(&fx->o, fx->cache, NULL, &s), 0);
	assert_int_equal(sched_open(s, &fx->t, &fb), 0);
	r->s = s;
	r->fb = fb;
	assert_int_equal(pthread_create(&th, NULL, race_wanter, r), 0);
	atomic_store(&r->go, true);
	/* Strike while the wants are coming in. */
	while (!atomic_load(&r->registered))
		;
	for (k = 0; k < spin; k++)
		__asm__ __volatile__("" ::: "memory"); /* a short spin */
	if (fail_blob)
		sched_fail_blob(s, fb, -ESTALE);
	else
		sched_cancel_all(s, -ECANCELED);
	pthread_join(th, NULL);
	for (k = 0; k < atomic_load(&r->registered); k++)
		if (atomic_load(&r->c[k].calls) != 1)
			lost++;
	fblob_put(fb);
	sched_free(s); /* fires what was lost, with -ECANCELED */
	free(r);
	return lost;
}

static void race_rounds(void **state, bool fail_blob)
{
	struct fixture *fx = *state;
	int round, lost = 0;

	/* The fixture's own blob would be shared: use a fresh identity. */
	fblob_put(fx->fb);
	fx->fb = NULL;
	fx->t.content_id = "\"race\"";
	for (round = 0; round < 500 && !lost; round++)
		lost = race_round(fx, fail_blob, (round * 37) % 1000);
	if (lost)
		fail_msg("round %d: %d registered waiter(s) never called back "
			 "after sched_%s",
			 round - 1, lost,
			 fail_blob ? "fail_blob" : "cancel_all");
}

static void test_want_racing_cancel_all_is_never_lost(void **state)
{
	race_rounds(state, false);
}

static void test_want_racing_fail_blob_is_never_lost(void **state)
{
	race_rounds(state, true);
}

/* ---- the worker pool's jobs: file:// copies, whole-file checks ---- */

/* The remote file's bytes at path, size bytes long: a file:// source. */
static void make_source_file(const char *path, uint64_t size)
{
	static uint8_t buf[CS];
	uint64_t off;
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	for (off = 0; off < size; off += CS) {
		size_t n = size - off < CS ? (size_t)(size - off) : CS;

		fill(buf, off, n);
		assert_int_equal(pwrite_all(fd, buf, n, off), 0);
	}
	close(fd);
}

static void sha256_hex(const void *buf, size_t len, uint64_t zeros,
		       char hex[65])
{
	static const uint8_t zero[1 << 16];
	unsigned char md[32];
	unsigned int mdlen = 0, i;
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();

	assert_non_null(ctx);
	assert_true(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL));
	if (len)
		EVP_DigestUpdate(ctx, buf, len);
	while (zeros) {
		size_t n = zeros < sizeof(zero) ? (size_t)zeros : sizeof(zero);

		EVP_DigestUpdate(ctx, zero, n);
		zeros -= n;
	}
	assert_true(EVP_DigestFinal_ex(ctx, md, &mdlen));
	EVP_MD_CTX_free(ctx);
	for (i = 0; i < mdlen; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
}

/* Opens a second fblob in fx's scheduler: the same content, read from a
 * local file by the worker pool. */
static struct fblob *open_local(struct fixture *fx, const char *path,
				uint64_t size)
{
	struct fblob_target t = {
		.kind = "file",
		.content_id = path,
		.size = size,
		.url = "file:///source/local.bin",
		.name = "local.bin",
		.local_path = path,
	};
	struct fblob *fb = NULL;

	assert_int_equal(sched_open(fx->s, &t, &fb), 0);
	return fb;
}

/*
 * Acts as the engine for a file:// blob: sched_take_job hands its runs to
 * the worker pool and returns none of them. Polls until c fired.
 */
static void dispatch_until(struct fixture *fx, struct cb *c)
{
	uint64_t deadline = now_ms() + 10000;
	struct fetch_job job;
	int next_ms;

	while (!atomic_load(&c->calls)) {
		assert_true(now_ms() < deadline);
		assert_int_equal(sched_take_job(fx->s, true, &job, &next_ms),
				 0);
		sleep_ms(1);
	}
}

static void test_file_source_copied_on_workers(void **state)
{
	struct fixture *fx = *state;
	char path[PATH_MAX + 16];
	struct fblob *fb;
	struct blob *b;
	struct cb c = { 0 };
	uint64_t i;

	snprintf(path, sizeof(path), "%s/source.bin", fx->dir);
	make_source_file(path, FSIZE);
	fb = open_local(fx, path, FSIZE);
	b = fblob_blob(fb);
	assert_int_equal(sched_want(fx->s, fb, 0, NCHUNKS - 1, SCHED_DEMAND,
				    cb_done, &c, NULL),
			 0);
	dispatch_until(fx, &c);
	assert_int_equal(atomic_load(&c.err), 0);
	for (i = 0; i < NCHUNKS; i++) {
		bool done = false;

		assert_int_equal(chunkmap_get(b->map, i), CHUNK_DONE);
		assert_true(chunk_on_disk_ok(b, i));
		/* Its sums entry was written: another process trusts it. */
		assert_int_equal(blob_probe_chunk(b, i, &done), 0);
		assert_true(done);
	}
	settle(fx);
	fblob_put(fb);
}

static void test_file_source_changed_fails_blob(void **state)
{
	struct fixture *fx = *state;
	char path[PATH_MAX + 16];
	struct fblob *fb;
	struct cb c = { 0 };

	snprintf(path, sizeof(path), "%s/source.bin", fx->dir);
	make_source_file(path, FSIZE - 1); /* not the listed size */
	fb = open_local(fx, path, FSIZE);
	assert_int_equal(sched_want(fx->s, fb, 2, 2, SCHED_DEMAND, cb_done, &c,
				    NULL),
			 0);
	dispatch_until(fx, &c);
	assert_int_equal(atomic_load(&c.err), -ESTALE);
	assert_int_equal(fblob_error(fb), -ESTALE);
	settle(fx);
	fblob_put(fb);
}

struct bytes_cb {
	atomic_int calls;
	int err;
	uint8_t buf[4096];
	size_t len;
};

static void on_bytes(void *arg, int err, const char *buf, size_t len)
{
	struct bytes_cb *bc = arg;

	bc->err = err;
	bc->len = len;
	if (!err)
		memcpy(bc->buf, buf,
		       len < sizeof(bc->buf) ? len : sizeof(bc->buf));
	atomic_fetch_add(&bc->calls, 1);
}

static void test_uncached_read_of_file_source(void **state)
{
	struct fixture *fx = *state;
	char path[PATH_MAX + 16];
	struct bytes_cb bc = { 0 };
	uint8_t want[4096];
	uint64_t deadline;
	struct fblob *fb;

	snprintf(path, sizeof(path), "%s/source.bin", fx->dir);
	make_source_file(path, FSIZE);
	fb = open_local(fx, path, FSIZE);
	/* No engine: the bytes come from the worker pool, by pread. */
	assert_int_equal(sched_read_uncached(fx->s, fb, 3 * CS + 5,
					     sizeof(want), on_bytes, &bc),
			 0);
	deadline = now_ms() + 5000;
	while (!atomic_load(&bc.calls))
		assert_true(now_ms() < deadline), sleep_ms(1);
	assert_int_equal(bc.err, 0);
	assert_int_equal(bc.len, sizeof(want));
	fill(want, 3 * CS + 5, sizeof(want));
	assert_memory_equal(bc.buf, want, sizeof(want));
	/* The cache was not touched. */
	assert_int_equal(chunkmap_get(fblob_blob(fb)->map, 3), CHUNK_MISSING);
	fblob_put(fb);
}

/* Hooks of the scheduler, recording the thread they ran on. */
struct hooks {
	atomic_int verified, corrupt;
	atomic_bool on_test_thread;
	pthread_t test_thread;
};

static void hook_verified(void *arg, struct fblob *fb)
{
	struct hooks *h = arg;

	(void)fb;
	if (pthread_equal(pthread_self(), h->test_thread))
		atomic_store(&h->on_test_thread, true);
	atomic_fetch_add(&h->verified, 1);
}

static void hook_corrupt(void *arg, struct fblob *fb)
{
	struct hooks *h = arg;

	(void)fb;
	atomic_fetch_add(&h->corrupt, 1);
}

/* A fixture whose scheduler has the hooks; *state is the fixture. */
static struct hooks fx_hooks;

static int fx_setup_hooks(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	struct sched_opts o;

	memset(&fx_hooks, 0, sizeof(fx_hooks));
	fx_hooks.test_thread = pthread_self();
	sched_opts_default(&o);
	o.chunk_size = CS;
	o.max_run_chunks = 4;
	o.save_interval_ms = 600000;
	o.on_verified = hook_verified;
	o.on_corrupt = hook_corrupt;
	o.on_verified_arg = &fx_hooks;
	if (!fx || make_fixture(fx, &o))
		return -1;
	*state = fx;
	return 0;
}

/* Opens the file with a sha256 (right or not) and fetches all of it. */
static struct fblob *fetch_hashed(struct fixture *fx, const char *hash)
{
	struct fblob_target t = fx->t;
	struct fetch_job job;
	struct fblob *fb = NULL;
	int next_ms;

	t.content_id = hash;
	t.pinned = true;
	t.hash_kind = "sha256";
	t.hash = hash;
	assert_int_equal(sched_open(fx->s, &t, &fb), 0);
	assert_int_equal(sched_want(fx->s, fb, 0, NCHUNKS - 1, SCHED_DEMAND,
				    NULL, NULL, NULL),
			 0);
	while (sched_take_job(fx->s, true, &job, &next_ms))
		serve(fx, &job);
	return fb;
}

static void test_complete_blob_verified_on_worker(void **state)
{
	struct fixture *fx = *state;
	static uint8_t all[FSIZE];
	char hash[65];
	struct fblob *fb;
	struct cb held = { 0 };
	int r;

	fill(all, 0, FSIZE);
	sha256_hex(all, FSIZE, 0, hash);
	fb = fetch_hashed(fx, hash);
	/* Complete: a read is answered once the verdict is in. */
	r = sched_want(fx->s, fb, 0, 0, SCHED_DEMAND, cb_done, &held, NULL);
	assert_true(r == 0 || r == 1);
	settle(fx);
	if (r == 0) {
		assert_int_equal(atomic_load(&held.calls), 1);
		assert_int_equal(atomic_load(&held.err), 0);
	}
	assert_true(fblob_servable(fb, 0, FSIZE));
	assert_true(fblob_verified(fb));
	assert_int_equal(fblob_error(fb), 0);
	assert_int_equal(atomic_load(&fx_hooks.verified), 1);
	assert_int_equal(atomic_load(&fx_hooks.corrupt), 0);
	/* Not on the thread that completed the chunks (the engine's). */
	assert_false(atomic_load(&fx_hooks.on_test_thread));
	assert_true(verify_marked(fblob_blob(fb), "sha256", hash));
	fblob_put(fb);
}

static void test_corrupt_blob_failed_on_worker(void **state)
{
	struct fixture *fx = *state;
	const char *wrong = "00000000000000000000000000000000"
			    "00000000000000000000000000000000";
	struct fblob *fb;
	struct cb c = { 0 };
	struct cb held = { 0 };
	int r;

	fb = fetch_hashed(fx, wrong);
	/* Right after the last chunk: never served, held or failed. */
	assert_false(fblob_servable(fb, 0, 1));
	r = sched_want(fx->s, fb, 0, 0, SCHED_DEMAND, cb_done, &held, NULL);
	assert_true(r == 0 || r == -EBADMSG);
	settle(fx);
	if (r == 0) {
		assert_int_equal(atomic_load(&held.calls), 1);
		assert_int_equal(atomic_load(&held.err), -EBADMSG);
	}
	assert_false(fblob_verified(fb));
	assert_int_equal(fblob_error(fb), -EBADMSG);
	assert_int_equal(atomic_load(&fx_hooks.corrupt), 1);
	assert_int_equal(atomic_load(&fx_hooks.verified), 0);
	/* Discarded: nothing of it is served any more. */
	assert_int_equal(chunkmap_done_count(fblob_blob(fb)->map), 0);
	assert_int_equal(sched_want(fx->s, fb, 0, 0, SCHED_DEMAND, cb_done, &c,
				    NULL),
			 -EBADMSG);
	fblob_put(fb);
}

/*
 * A 2 GiB blob completes and its sha256 check starts on the pool: a
 * shutdown (unmount) does not wait for it, it stops within a block.
 */
static void test_shutdown_cuts_verification_short(void **state)
{
	struct fixture *fx = *state;
	struct fblob_target t = fx->t;
	struct sched_opts o = fx->o;
	struct fetch_job job;
	struct sched *s = NULL;
	struct fblob *fb = NULL;
	int next_ms;
	uint64_t t0, elapsed;

	o.chunk_size = 64u << 20;
	o.max_run_chunks = 32;
	assert_int_equal(sched_new(&o, fx->cache, NULL, &s), 0);
	t.size = 2ull << 30;
	t.content_id = "big";
	t.pinned = true;
	t.hash_kind = "sha256";
	t.hash =
		"1111111111111111111111111111111111111111111111111111111111111111";
	assert_int_equal(sched_open(s, &t, &fb), 0);
	assert_int_equal(
		sched_want(s, fb, 0, 31, SCHED_DEMAND, NULL, NULL, NULL), 0);
	/* The bytes are a hole (zeros): only the states matter here. */
	while (sched_take_job(s, true, &job, &next_ms)) {
		uint64_t i;

		for (i = job.first; i < job.first + job.count; i++)
			sched_chunk_done(s, &job, i, NULL);
		sched_job_end(s, &job, job.first + job.count, 0);
	}
	sleep_ms(100);
	/* The check is hashing now: the pool is busy. */
	assert_int_equal(sched_settle(s, 0), -ETIMEDOUT);
	t0 = now_ms();
	sched_shutdown(s);
	elapsed = now_ms() - t0;
	print_message("shutdown during a 2 GiB verification: %llu ms\n",
		      (unsigned long long)elapsed);
	assert_true(elapsed < 1000);
	/* Cut short: neither verdict. */
	assert_false(fblob_verified(fb));
	assert_int_equal(fblob_error(fb), 0);
	assert_int_equal(atomic_load(&fx_hooks.corrupt), 0);
	assert_int_equal(atomic_load(&fx_hooks.verified), 0);
	fblob_put(fb);
	sched_free(s);
}

/*
 * A failed sync drops the chunks that were not durable (state/blob.c):
 * a read still waiting on the blob gets them queued again, or it would
 * wait for ever for a chunk nobody fetches.
 */
static void test_failed_save_requeues_waiting_reads(void **state)
{
	struct fixture *fx = *state;
	uint64_t deadline = now_ms() + 10000;
	struct fetch_job job;
	struct cb c = { 0 };

	want_cb(fx, 0, 1, SCHED_DEMAND, &c);
	take(fx, true, &job);
	assert_int_equal(job.first, 0);
	assert_int_equal(job.count, 2);
	job_chunk(fx, &job, 0);
	sched_job_end(fx->s, &job, 1, 0); /* chunk 1 back to the queue */
	atomic_store(&fail_sync, true);
	sched_save_all(fx->s); /* the sync fails: chunk 0 is dropped */
	atomic_store(&fail_sync, false);
	assert_int_not_equal(st_of(fx, 0), CHUNK_DONE);
	while (!atomic_load(&c.calls)) {
		int next_ms;

		assert_true(now_ms() < deadline);
		if (sched_take_job(fx->s, true, &job, &next_ms))
			serve(fx, &job);
		else
			sleep_ms(1);
	}
	assert_int_equal(atomic_load(&c.err), 0);
	assert_int_equal(st_of(fx, 0), CHUNK_DONE);
	assert_int_equal(st_of(fx, 1), CHUNK_DONE);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)
		T(test_want_rejects_bad_ranges),
		T(test_want_of_done_chunks_returns_1),
		T(test_offline_fails_missing_chunks),
		T(test_single_flight_64_waiting_threads),
		T(test_single_flight_64_callbacks),
		T(test_priority_order),
		T(test_no_background_work_without_background),
		T(test_demand_lifts_queued_chunk),
		T(test_readahead_lifts_background),
		T(test_job_error_reaches_every_waiter),
		T(test_partial_job_error),
		T(test_job_end_without_error_requeues),
		T(test_fail_blob),
		T(test_job_end_estale_fails_blob),
		T(test_cancel_before_firing),
		T(test_cancel_under_callers_lock),
		T(test_wait_timeout),
		T(test_cancel_all),
		T(test_runs_up_to_max_run_chunks),
		T(test_run_length_option),
		T(test_run_stops_at_chunk_not_queued),
		T(test_range_waiter_fires_when_all_done),
		T(test_chunk_on_disk_is_not_fetched),
		T(test_chunk_on_disk_mid_run_is_not_fetched),
		T(test_bad_sums_entry_is_fetched),
		T(test_chunk_locked_elsewhere_is_deferred),
		T(test_saved_chunks_are_durable),
		T(test_last_reference_saves),
		T(test_idle_blobs_closed_within_bound),
		T(test_idle_blob_closed_after_timeout),
		T(test_open_shares_one_fblob),
		T(test_stress_single_flight),
		T(test_want_racing_cancel_all_is_never_lost),
		T(test_want_racing_fail_blob_is_never_lost),
		T(test_file_source_copied_on_workers),
		T(test_file_source_changed_fails_blob),
		T(test_uncached_read_of_file_source),
		T(test_failed_save_requeues_waiting_reads),
#undef T
#define H(f) cmocka_unit_test_setup_teardown(f, fx_setup_hooks, fx_teardown)
		H(test_complete_blob_verified_on_worker),
		H(test_corrupt_blob_failed_on_worker),
		H(test_shutdown_cuts_verification_short),
#undef H
	};

	return cmocka_run_group_tests_name("sched", tests, NULL, NULL);
}
