/*
 * test_blob_race.c: two openers of one new blob at once (two threads of
 * the fetch scheduler, or two processes sharing a cache).
 *
 * Built with -Wl,--wrap=statx (tests/unit/meson.build): cache_blob_open
 * calls statx right after it has made and sized the data file, before
 * blob_open reads the sidecar. The wrapper stops the first opener there
 * while the second one opens the blob, fetches a chunk and saves its
 * sidecar (or not yet), the window the CI run of test_scale hit (a FUSE
 * reader and the folder-order walk opening the same file): the first
 * opener, which found the data file new, took the sidecar for the one of
 * lost bytes, warned "missing or short", cleared the sums and removed the
 * sidecar; with no sidecar yet it cleared the chunk's sums entry silently.
 * With the setup lock (state/cache.h) the second opener waits for the
 * first one instead; the wrapper gives up waiting after WAIT_MS.
 *
 * Threads: the test's main thread is the second opener; one thread is
 * the first. The wrapper's state is under mu.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "state/blob.h"
#include "state/hlog.h"

#define KIB (1ull << 10)
#define CS (64 * KIB)
#define SIZE (3 * CS + 100) /* 4 chunks */
#define WAIT_MS 300 /* how long the first opener waits for the second */

int __real_statx(int dirfd, const char *path, int flags, unsigned int mask,
		 struct statx *stx);
int __wrap_statx(int dirfd, const char *path, int flags, unsigned int mask,
		 struct statx *stx);

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static pthread_t stop_thread; /* mu: the opener the wrapper stops */
static bool armed; /* mu: stop it at its next statx */
static bool stopped; /* mu: it is stopped there */
static bool second_done; /* mu: the second opener is done with chunk 1 */
static bool waited_out; /* mu: the wrapper stopped waiting after WAIT_MS */

int __wrap_statx(int dirfd, const char *path, int flags, unsigned int mask,
		 struct statx *stx)
{
	struct timespec until;
	int rc = 0;

	pthread_mutex_lock(&mu);
	if (armed && pthread_equal(pthread_self(), stop_thread)) {
		armed = false;
		stopped = true;
		pthread_cond_broadcast(&cond);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_nsec += (long)WAIT_MS * 1000000;
		until.tv_sec += until.tv_nsec / 1000000000;
		until.tv_nsec %= 1000000000;
		while (!second_done && rc != ETIMEDOUT)
			rc = pthread_cond_timedwait(&cond, &mu, &until);
		waited_out = !second_done;
	}
	pthread_mutex_unlock(&mu);
	return __real_statx(dirfd, path, flags, mask, stx);
}

struct fixture {
	char dir[1024];
	struct cache *c;
	char *log;
	size_t log_len;
	FILE *log_f;
};

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int fx_setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	const char *tmp = getenv("TMPDIR");

	assert_non_null(fx);
	snprintf(fx->dir, sizeof(fx->dir), "%s/test_blob_race.XXXXXX",
		 tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(fx->dir));
	assert_int_equal(cache_new(fx->dir, &fx->c), 0);
	fx->log_f = open_memstream(&fx->log, &fx->log_len);
	assert_non_null(fx->log_f);
	hlog_set_sink(fx->log_f, false);
	armed = stopped = second_done = waited_out = false;
	*state = fx;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fixture *fx = *state;

	hlog_set_sink(NULL, false);
	fclose(fx->log_f);
	free(fx->log);
	cache_free(fx->c);
	nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

static const char *log_text(struct fixture *fx)
{
	fflush(fx->log_f);
	return fx->log ? fx->log : "";
}

/* Writes chunk idx's bytes and sums entry, then marks it DONE, as the
 * fetcher does. */
static void complete_chunk(struct blob *b, uint64_t idx)
{
	static _Thread_local uint8_t buf[CS]; /* one per worker thread */
	uint64_t off, len;

	chunkmap_chunk_range(b->map, idx, &off, &len);
	memset(buf, (int)(idx + 1), len);
	assert_int_equal(pwrite_all(b->files.data_fd, buf, len, off), 0);
	assert_int_equal(cache_sums_write(b->files.sums_fd, idx,
					  cache_chunk_sum(buf, len)),
			 0);
	chunkmap_set(b->map, idx, CHUNK_DONE);
}

struct first {
	struct fixture *fx;
	struct blob *b;
	int err;
};

static void *first_main(void *arg)
{
	struct first *fo = arg;

	fo->err = blob_open(fo->fx->c, "http", "http://h/f.bin\nmtime=1", SIZE,
			    CS, &fo->b);
	return NULL;
}

/*
 * The second opener gets chunk 1 while the first is stopped, and saves
 * its sidecar (save) or not yet: either way the first one must not clear
 * chunk 1's sums entry (that loss was silent without a sidecar) nor
 * remove the sidecar.
 */
static void second_opener_keeps_chunk(struct fixture *fx, bool save)
{
	struct first fo = { .fx = fx };
	struct blob *b = NULL, *again = NULL;
	pthread_t t;
	bool done = false;

	/* The first opener makes the data file and stops before it reads
	 * the sidecar (there is none yet). */
	pthread_mutex_lock(&mu);
	assert_int_equal(pthread_create(&t, NULL, first_main, &fo), 0);
	stop_thread = t;
	armed = true;
	while (!stopped)
		pthread_cond_wait(&cond, &mu);
	pthread_mutex_unlock(&mu);

	/* The second one opens it (it waits here with the setup lock), gets
	 * chunk 1 and, with save, saves, as the scheduler's saver would. */
	assert_int_equal(blob_open(fx->c, "http", "http://h/f.bin\nmtime=1",
				   SIZE, CS, &b),
			 0);
	complete_chunk(b, 1);
	if (save)
		assert_int_equal(blob_save(b), 0);
	pthread_mutex_lock(&mu);
	second_done = true;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&mu);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(fo.err, 0);
	print_message("first opener waited out: %s\n",
		      waited_out ? "yes (the second one waited for it)" :
				   "no (both ran at once)");

	/* Nothing was taken for lost: no warning, chunk 1's sums entry
	 * still vouches for its bytes, the sidecar saved is there. */
	if (strstr(log_text(fx), "missing or short"))
		fail_msg("an opener took a chunk being fetched for lost "
			 "bytes: %s",
			 log_text(fx));
	assert_int_equal(blob_probe_chunk(b, 1, &done), 0);
	if (!done)
		fail_msg("chunk 1's sums entry was cleared under the opener "
			 "that fetched it");
	if (save)
		assert_int_equal(access(b->sidecar_path, F_OK), 0);
	blob_free(fo.b); /* the duplicate goes: it changes nothing */
	if (!save)
		assert_int_equal(blob_save(b), 0);
	blob_free(b);

	assert_int_equal(blob_open(fx->c, "http", "http://h/f.bin\nmtime=1",
				   SIZE, CS, &again),
			 0);
	assert_int_equal(chunkmap_done_count(again->map), 1);
	assert_int_equal(chunkmap_get(again->map, 1), CHUNK_DONE);
	assert_int_equal(blob_probe_chunk(again, 1, &done), 0);
	assert_true(done);
	assert_string_equal(log_text(fx), "");
	blob_free(again);
}

static void test_second_opener_keeps_saved_chunk(void **state)
{
	second_opener_keeps_chunk(*state, true);
}

static void test_second_opener_keeps_unsaved_chunk(void **state)
{
	second_opener_keeps_chunk(*state, false);
}

/* Many threads opening, filling and saving one blob at once: no
 * deadlock, no warning, and every chunk one of them saved is loaded. */
#define NTHREADS 6
#define ROUNDS 40

struct worker {
	struct fixture *fx;
	int id;
	int err;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	int i;

	for (i = 0; i < ROUNDS && !w->err; i++) {
		struct blob *b = NULL;

		w->err = blob_open(w->fx->c, "http", "http://h/g.bin", SIZE, CS,
				   &b);
		if (w->err)
			break;
		/* Each writes the same bytes (one source). */
		complete_chunk(b, (uint64_t)(w->id + i) % 4);
		w->err = blob_save(b);
		blob_free(b);
	}
	return NULL;
}

static void test_many_openers_at_once(void **state)
{
	struct fixture *fx = *state;
	struct worker w[NTHREADS];
	pthread_t t[NTHREADS];
	struct blob *b = NULL;
	uint64_t i;
	int k;

	for (k = 0; k < NTHREADS; k++) {
		w[k] = (struct worker){ .fx = fx, .id = k };
		assert_int_equal(
			pthread_create(&t[k], NULL, worker_main, &w[k]), 0);
	}
	for (k = 0; k < NTHREADS; k++) {
		assert_int_equal(pthread_join(t[k], NULL), 0);
		assert_int_equal(w[k].err, 0);
	}
	if (strstr(log_text(fx), "missing or short"))
		fail_msg("%s", log_text(fx));
	assert_int_equal(
		blob_open(fx->c, "http", "http://h/g.bin", SIZE, CS, &b), 0);
	/* The last sidecar saved has at least its own chunk; every chunk it
	 * vouches for is intact. */
	assert_true(chunkmap_done_count(b->map) >= 1);
	for (i = 0; i < 4; i++) {
		bool done = false;

		if (chunkmap_get(b->map, i) != CHUNK_DONE)
			continue;
		assert_int_equal(blob_probe_chunk(b, i, &done), 0);
		assert_true(done);
	}
	blob_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
		T(test_second_opener_keeps_saved_chunk),
		T(test_second_opener_keeps_unsaved_chunk),
		T(test_many_openers_at_once),
#undef T
	};

	return cmocka_run_group_tests_name("blob_race", tests, NULL, NULL);
}
