/*
 * test_blob.c: opening a blob from the cache, the saver's step, probing.
 *
 * Built with -Wl,--wrap=fdatasync and --wrap=fallocate64
 * (tests/unit/meson.build): the wrappers let a test finish a chunk while
 * blob_save() syncs the data (a window no test can hit otherwise), and
 * fail the sync, or the clearing of the sums, with EIO.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "state/blob.h"
#include "state/hlog.h"
#include "state/verify.h"

#define KIB (1ull << 10)
#define GIB (1ull << 30)
#define CS (64 * KIB)
#define SIZE (10 * CS + 100) /* 11 chunks, the last one short */

int __real_fdatasync(int fd);
int __wrap_fdatasync(int fd);
int __real_fallocate64(int fd, int mode, off_t off, off_t len);
int __wrap_fallocate64(int fd, int mode, off_t off, off_t len);

static int fallocate_errno; /* 0: pass through */

static void (*during_fallocate)(void); /* called once, then cleared */

int __wrap_fallocate64(int fd, int mode, off_t off, off_t len)
{
	void (*hook)(void) = during_fallocate;

	during_fallocate = NULL;
	if (hook)
		hook();
	if (fallocate_errno) {
		errno = fallocate_errno;
		return -1;
	}
	return __real_fallocate64(fd, mode, off, len);
}

static int fdatasync_errno; /* 0: pass through */
static void (*during_fdatasync)(void); /* called once, then cleared */
static int fdatasync_calls;

int __wrap_fdatasync(int fd)
{
	void (*hook)(void) = during_fdatasync;

	fdatasync_calls++;
	during_fdatasync = NULL;
	if (hook)
		hook();
	if (fdatasync_errno) {
		errno = fdatasync_errno;
		return -1;
	}
	return __real_fdatasync(fd);
}

struct fixture {
	char dir[1024];
	struct cache *c;
	char *log;
	size_t log_len;
	FILE *log_f;
};

static struct fixture *current; /* for the fdatasync hooks */

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	return remove(path);
}

static int fx_setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	const char *tmp = getenv("TMPDIR");

	assert_non_null(fx);
	snprintf(fx->dir, sizeof(fx->dir), "%s/test_blob.XXXXXX",
		 tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(fx->dir));
	assert_int_equal(cache_new(fx->dir, &fx->c), 0);
	fx->log_f = open_memstream(&fx->log, &fx->log_len);
	assert_non_null(fx->log_f);
	hlog_set_sink(fx->log_f, false);
	fdatasync_errno = 0;
	fallocate_errno = 0;
	during_fdatasync = NULL;
	during_fallocate = NULL;
	fdatasync_calls = 0;
	current = fx;
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
	current = NULL;
	return 0;
}

static int count_in_log(struct fixture *fx, const char *needle)
{
	const char *p;
	int n = 0;

	fflush(fx->log_f);
	for (p = fx->log; p && (p = strstr(p, needle)); p++)
		n++;
	return n;
}

static struct blob *open_blob(struct fixture *fx, uint64_t size)
{
	struct blob *b = NULL;

	assert_int_equal(blob_open(fx->c, "hf", "sha256:abc", size, CS, &b), 0);
	assert_non_null(b);
	return b;
}

/* Writes chunk idx's bytes and sums entry, then marks it DONE, as the
 * fetcher does. */
static void complete_chunk(struct blob *b, uint64_t idx)
{
	static uint8_t buf[CS];
	uint64_t off, len;

	chunkmap_chunk_range(b->map, idx, &off, &len);
	memset(buf, (int)(idx + 1), len);
	assert_int_equal(pwrite_all(b->files.data_fd, buf, len, off), 0);
	assert_int_equal(cache_sums_write(b->files.sums_fd, idx,
					  cache_chunk_sum(buf, len)),
			 0);
	chunkmap_set(b->map, idx, CHUNK_DONE);
}

static bool sums_all_zero(struct blob *b)
{
	uint8_t raw[8];
	uint64_t i;
	int j;

	for (i = 0; i < b->nchunks; i++) {
		assert_int_equal(pread_all(b->files.sums_fd, raw, 8, i * 8), 0);
		for (j = 0; j < 8; j++)
			if (raw[j])
				return false;
	}
	return true;
}

static ino_t inode_of(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_ino;
}

static void flip_byte(const char *path, off_t off)
{
	uint8_t v;
	int fd = open(path, O_RDWR);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &v, 1, off), 1);
	v ^= 0x10;
	assert_int_equal(pwrite(fd, &v, 1, off), 1);
	close(fd);
}

static void test_open_new(void **state)
{
	struct fixture *fx = *state;
	struct blob *b = open_blob(fx, SIZE);
	uint8_t id[16];
	char hex[33], path[PATH_MAX];
	struct stat st;

	blob_identity("hf", "sha256:abc", SIZE, CS, id);
	cache_identity_hex(id, hex);
	assert_string_equal(b->hex, hex);
	assert_memory_equal(b->layout.identity, id, 16);
	assert_int_equal(b->layout.file_size, SIZE);
	assert_int_equal(b->layout.chunk_size, CS);
	assert_int_equal(b->nchunks, 11);
	assert_int_equal(chunkmap_nchunks(b->map), 11);
	assert_int_equal(chunkmap_done_count(b->map), 0);
	assert_int_equal(
		cache_blob_path(fx->c, hex, ".state", path, sizeof(path)), 0);
	assert_string_equal(b->sidecar_path, path);
	assert_int_equal(fstat(b->files.data_fd, &st), 0);
	assert_int_equal(st.st_size, SIZE);
	/* Nothing to save yet: no sidecar is written. */
	assert_int_equal(blob_save(b), 0);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(fdatasync_calls, 0);
	assert_int_equal(count_in_log(fx, "rejected"), 0);
	blob_free(b);
	blob_free(NULL);
}

static void test_save_and_reopen(void **state)
{
	struct fixture *fx = *state;
	struct blob *b = open_blob(fx, SIZE);
	uint64_t i;

	complete_chunk(b, 0);
	complete_chunk(b, 1);
	complete_chunk(b, 10);
	chunkmap_set(b->map, 5, CHUNK_INFLIGHT);
	assert_int_equal(blob_save(b), 0);
	assert_int_equal(fdatasync_calls, 2); /* data and sums */
	assert_int_equal(chunkmap_durable_count(b->map), 3);
	blob_free(b);

	b = open_blob(fx, SIZE);
	assert_int_equal(chunkmap_done_count(b->map), 3);
	assert_int_equal(chunkmap_durable_count(b->map), 3);
	assert_int_equal(chunkmap_done_bytes(b->map), 2 * CS + 100);
	for (i = 0; i < 11; i++)
		assert_int_equal(chunkmap_get(b->map, i),
				 i == 0 || i == 1 || i == 10 ? CHUNK_DONE :
							       CHUNK_MISSING);
	blob_free(b);
}

static void test_save_skips_when_nothing_new(void **state)
{
	struct fixture *fx = *state;
	struct blob *b = open_blob(fx, SIZE);
	ino_t ino;

	complete_chunk(b, 3);
	assert_int_equal(blob_save(b), 0);
	ino = inode_of(b->sidecar_path);
	fdatasync_calls = 0;
	assert_int_equal(blob_save(b), 0);
	assert_int_equal(fdatasync_calls, 0);
	/* Not rewritten. */
	assert_int_equal(inode_of(b->sidecar_path), ino);
	/* After a reopen, loaded chunks need no save either. */
	blob_free(b);
	b = open_blob(fx, SIZE);
	assert_int_equal(blob_save(b), 0);
	assert_int_equal(fdatasync_calls, 0);
	/* A new chunk does. */
	complete_chunk(b, 4);
	assert_int_equal(blob_save(b), 0);
	assert_int_equal(fdatasync_calls, 2);
	assert_true(inode_of(b->sidecar_path) != ino);
	blob_free(b);
}

static struct blob *hook_blob;

static void finish_chunk_7(void)
{
	complete_chunk(hook_blob, 7);
}

/* A chunk that completes while the data is synced is not saved yet. */
static void test_save_only_chunks_done_before_sync(void **state)
{
	struct fixture *fx = *state;
	struct blob *b = open_blob(fx, SIZE);
	struct sidecar *sc = NULL;

	complete_chunk(b, 2);
	hook_blob = b;
	during_fdatasync = finish_chunk_7;
	assert_int_equal(blob_save(b), 0);
	assert_int_equal(chunkmap_get(b->map, 7), CHUNK_DONE);
	assert_int_equal(chunkmap_durable_count(b->map), 1);
	assert_int_equal(sidecar_load(b->sidecar_path, &b->layout, &sc), 0);
	assert_true(sidecar_test(sc, 2));
	assert_false(sidecar_test(sc, 7));
	sidecar_free(sc);

	/* The next save has it. */
	assert_int_equal(blob_save(b), 0);
	assert_int_equal(chunkmap_durable_count(b->map), 2);
	assert_int_equal(sidecar_load(b->sidecar_path, &b->layout, &sc), 0);
	assert_true(sidecar_test(sc, 7));
	sidecar_free(sc);
	blob_free(b);
}

static uint64_t sums_entry(struct blob *b, uint64_t idx)
{
	uint64_t sum = 1;

	assert_int_equal(blob_sums_entry(b, idx, &sum), 0);
	return sum;
}

/*
 * A failed fdatasync loses data: the kernel marks the pages clean and the
 * next sync succeeds without them. So the chunks not durable when it
 * failed are dropped (MISSING, sums entry cleared), never recorded by a
 * later save; durable ones stay.
 */
static void test_save_sync_fails(void **state)
{
	struct fixture *fx = *state;
	struct blob *b = open_blob(fx, SIZE);
	struct sidecar *sc = NULL;

	complete_chunk(b, 1);
	assert_int_equal(blob_save(b), 0);
	complete_chunk(b, 2);
	complete_chunk(b, 10);
	chunkmap_set(b->map, 4, CHUNK_INFLIGHT);
	fdatasync_errno = EIO;
	assert_int_equal(blob_save(b), -EIO);
	/* The sidecar on disk is the old one; nothing became durable. */
	assert_int_equal(sidecar_load(b->sidecar_path, &b->layout, &sc), 0);
	assert_true(sidecar_test(sc, 1));
	assert_false(sidecar_test(sc, 2));
	sidecar_free(sc);
	assert_int_equal(chunkmap_durable_count(b->map), 1);
	/* Dropped, to be fetched again; the durable one and the one in
	 * flight are left alone. */
	assert_int_equal(chunkmap_get(b->map, 1), CHUNK_DONE);
	assert_int_equal(chunkmap_get(b->map, 2), CHUNK_MISSING);
	assert_int_equal(chunkmap_get(b->map, 10), CHUNK_MISSING);
	assert_int_equal(chunkmap_get(b->map, 4), CHUNK_INFLIGHT);
	assert_int_equal(chunkmap_done_count(b->map), 1);
	assert_int_equal(sums_entry(b, 2), 0);
	assert_int_equal(sums_entry(b, 10), 0);
	assert_true(sums_entry(b, 1) != 0);
	assert_int_equal(count_in_log(fx, "2 chunks not on disk"), 1);
	/* The next sync succeeds, and still records only chunk 1. */
	fdatasync_errno = 0;
	assert_int_equal(blob_save(b), 0);
	assert_int_equal(chunkmap_durable_count(b->map), 1);
	assert_int_equal(sidecar_load(b->sidecar_path, &b->layout, &sc), 0);
	assert_int_equal(sc->done_count, 1);
	assert_false(sidecar_test(sc, 2));
	assert_false(sidecar_test(sc, 10));
	sidecar_free(sc);
	/* Fetched again, it is saved as usual. */
	complete_chunk(b, 2);
	assert_int_equal(blob_save(b), 0);
	assert_int_equal(chunkmap_durable_count(b->map), 2);
	blob_free(b);
	b = open_blob(fx, SIZE);
	assert_int_equal(chunkmap_done_count(b->map), 2);
	assert_int_equal(chunkmap_get(b->map, 10), CHUNK_MISSING);
	blob_free(b);
}

/* A chunk that lands while the failing sync runs may have lost its bytes
 * to it too: dropped as well. */
static void test_save_sync_fails_drops_chunk_landing_meanwhile(void **state)
{
	struct fixture *fx = *state;
	struct blob *b = open_blob(fx, SIZE);
	struct sidecar *sc = NULL;

	complete_chunk(b, 2);
	hook_blob = b;
	during_fdatasync = finish_chunk_7;
	fdatasync_errno = EIO;
	assert_int_equal(blob_save(b), -EIO);
	assert_int_equal(chunkmap_get(b->map, 2), CHUNK_MISSING);
	assert_int_equal(chunkmap_get(b->map, 7), CHUNK_MISSING);
	assert_int_equal(sums_entry(b, 7), 0);
	fdatasync_errno = 0;
	/* Written again (a failed save may have left a sidecar recording
	 * them), and empty. */
	assert_int_equal(blob_save(b), 0);
	assert_int_equal(sidecar_load(b->sidecar_path, &b->layout, &sc), 0);
	assert_int_equal(sc->done_count, 0);
	sidecar_free(sc);
	complete_chunk(b, 7);
	assert_int_equal(blob_save(b), 0);
	assert_int_equal(sidecar_load(b->sidecar_path, &b->layout, &sc), 0);
	assert_int_equal(sc->done_count, 1);
	assert_true(sidecar_test(sc, 7));
	sidecar_free(sc);
	blob_free(b);
}

static void test_save_write_fails(void **state)
{
	struct fixture *fx = *state;
	struct blob *b = open_blob(fx, SIZE);
	char inner[PATH_MAX + 16];
	int fd;

	/* A non-empty folder where the sidecar goes: the rename fails. */
	assert_int_equal(mkdir(b->sidecar_path, 0700), 0);
	snprintf(inner, sizeof(inner), "%s/x", b->sidecar_path);
	fd = open(inner, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	complete_chunk(b, 1);
	assert_int_equal(blob_save(b), -EISDIR);
	assert_int_equal(chunkmap_durable_count(b->map), 0);
	unlink(inner);
	rmdir(b->sidecar_path);
	assert_int_equal(blob_save(b), 0);
	assert_int_equal(chunkmap_durable_count(b->map), 1);
	blob_free(b);
}

/* A damaged sidecar: one warning, an empty map, sums cleared. */
static void test_corrupt_sidecar_starts_over(void **state)
{
	struct fixture *fx = *state;
	struct blob *b = open_blob(fx, SIZE);

	complete_chunk(b, 0);
	complete_chunk(b, 4);
	assert_int_equal(blob_save(b), 0);
	blob_free(b);

	b = open_blob(fx, SIZE);
	flip_byte(b->sidecar_path, 70);
	blob_free(b);
	b = open_blob(fx, SIZE);
	assert_int_equal(chunkmap_done_count(b->map), 0);
	assert_int_equal(chunkmap_durable_count(b->map), 0);
	assert_true(sums_all_zero(b));
	assert_int_equal(count_in_log(fx, "rejected"), 1);
	assert_int_equal(count_in_log(fx, "starting over"), 1);
	/* The rejected file is gone: the next open does not warn again, nor
	 * clear the sums written since. */
	assert_int_equal(access(b->sidecar_path, F_OK), -1);
	complete_chunk(b, 2);
	blob_free(b);
	b = open_blob(fx, SIZE);
	assert_int_equal(count_in_log(fx, "rejected"), 1);
	assert_false(sums_all_zero(b));
	blob_free(b);
}

/* Saves chunks 0, 1 and 4 of a blob, closes it, returns its data path. */
static void saved_blob(struct fixture *fx, char *data, size_t len)
{
	struct blob *b = open_blob(fx, SIZE);

	complete_chunk(b, 0);
	complete_chunk(b, 1);
	complete_chunk(b, 4);
	assert_int_equal(blob_save(b), 0);
	assert_int_equal(verify_mark(b, "sha256", "ab12"), 0);
	assert_int_equal(cache_blob_path(fx->c, b->hex, "", data, len), 0);
	blob_free(b);
}

/* The blob opened after its data file was lost: nothing is trusted. */
static void expect_started_over(struct fixture *fx, const char *why)
{
	struct blob *b = open_blob(fx, SIZE);
	char path[PATH_MAX];

	assert_int_equal(chunkmap_done_count(b->map), 0);
	assert_true(sums_all_zero(b));
	assert_false(verify_marked(b, "sha256", "ab12"));
	assert_int_equal(cache_blob_path(fx->c, b->hex, ".verified", path,
					 sizeof(path)),
			 0);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(access(b->sidecar_path, F_OK), -1);
	assert_int_equal(count_in_log(fx, why), 1);
	blob_free(b);
	/* Started over once: the next open says nothing. */
	b = open_blob(fx, SIZE);
	assert_int_equal(count_in_log(fx, why), 1);
	blob_free(b);
}

static void test_data_file_deleted_starts_over(void **state)
{
	struct fixture *fx = *state;
	char data[PATH_MAX];
	struct blob *b;

	saved_blob(fx, data, sizeof(data));
	/* Untouched, everything is trusted, the marker included. */
	b = open_blob(fx, SIZE);
	assert_int_equal(chunkmap_done_count(b->map), 3);
	assert_true(verify_marked(b, "sha256", "ab12"));
	assert_false(verify_marked(b, "sha256", "ab13"));
	blob_free(b);
	assert_int_equal(unlink(data), 0);
	expect_started_over(fx, "was missing or short");
}

static void test_data_file_truncated_starts_over(void **state)
{
	struct fixture *fx = *state;
	char data[PATH_MAX];

	saved_blob(fx, data, sizeof(data));
	/* Same inode, same birth time: only the size tells. */
	assert_int_equal(truncate(data, 2 * CS), 0);
	expect_started_over(fx, "was missing or short");
}

/* A new sparse file of the right size (a new inode, or the old inode
 * number reused with a new birth time): the sidecar describes another. */
static void test_data_file_replaced_starts_over(void **state)
{
	struct fixture *fx = *state;
	char data[PATH_MAX];
	int fd;

	saved_blob(fx, data, sizeof(data));
	assert_int_equal(unlink(data), 0);
	fd = open(data, O_RDWR | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, SIZE), 0);
	close(fd);
	expect_started_over(fx, "describes another data file");
}

/* A marker with no sidecar, of a data file made again: removed. */
static void test_marker_of_lost_data_removed(void **state)
{
	struct fixture *fx = *state;
	char data[PATH_MAX], path[PATH_MAX];
	struct blob *b = open_blob(fx, SIZE);

	assert_int_equal(verify_mark(b, "sha256", "ab12"), 0);
	assert_int_equal(cache_blob_path(fx->c, b->hex, "", data, sizeof(data)),
			 0);
	assert_int_equal(cache_blob_path(fx->c, b->hex, ".verified", path,
					 sizeof(path)),
			 0);
	blob_free(b);
	assert_int_equal(unlink(data), 0);
	b = open_blob(fx, SIZE);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(count_in_log(fx, "was missing or short"), 1);
	blob_free(b);
}

/* A link in place of the sidecar: not followed, removed, the blob starts
 * over, and the file it pointed to is untouched. */
static void test_sidecar_link_replaced(void **state)
{
	struct fixture *fx = *state;
	char victim[PATH_MAX + 16], buf[16];
	struct blob *b = open_blob(fx, SIZE);
	struct stat st;
	int fd;

	complete_chunk(b, 0);
	assert_int_equal(blob_save(b), 0);
	snprintf(victim, sizeof(victim), "%s/victim", fx->dir);
	fd = open(victim, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "precious", 8), 8);
	close(fd);
	assert_int_equal(unlink(b->sidecar_path), 0);
	assert_int_equal(symlink(victim, b->sidecar_path), 0);
	blob_free(b);
	b = open_blob(fx, SIZE);
	assert_int_equal(chunkmap_done_count(b->map), 0);
	assert_int_equal(count_in_log(fx, "rejected"), 1);
	complete_chunk(b, 3);
	assert_int_equal(blob_save(b), 0);
	assert_int_equal(lstat(b->sidecar_path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	fd = open(victim, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, buf, sizeof(buf)), 8);
	close(fd);
	assert_memory_equal(buf, "precious", 8);
	blob_free(b);
}

/* The sums cannot be cleared: an error, and the sidecar stays. */
static void test_reject_clear_fails(void **state)
{
	struct fixture *fx = *state;
	struct blob *b = open_blob(fx, SIZE), *b2 = (void *)1;
	char path[PATH_MAX];

	complete_chunk(b, 0);
	assert_int_equal(blob_save(b), 0);
	snprintf(path, sizeof(path), "%s", b->sidecar_path);
	blob_free(b);
	flip_byte(path, 70);
	fallocate_errno = EIO;
	assert_int_equal(blob_open(fx->c, "hf", "sha256:abc", SIZE, CS, &b2),
			 -EIO);
	assert_null(b2);
	assert_int_equal(access(path, F_OK), 0);
	fallocate_errno = 0;
}

/* A sidecar of another blob at this path (e.g. copied by hand). */
static void test_foreign_sidecar_starts_over(void **state)
{
	struct fixture *fx = *state;
	struct blob *b = open_blob(fx, SIZE);
	struct sidecar_layout other = b->layout;
	struct sidecar *sc = NULL;

	complete_chunk(b, 3);
	other.identity[0] ^= 1;
	assert_int_equal(sidecar_new(&other, &sc), 0);
	sidecar_set(sc, 3);
	assert_int_equal(sidecar_save(sc, b->sidecar_path), 0);
	sidecar_free(sc);
	blob_free(b);

	b = open_blob(fx, SIZE);
	assert_int_equal(chunkmap_done_count(b->map), 0);
	assert_true(sums_all_zero(b));
	assert_int_equal(count_in_log(fx, "rejected"), 1);
	blob_free(b);
}

/* No sidecar yet: another process may be filling sums; keep them. */
static void test_missing_sidecar_keeps_sums(void **state)
{
	struct fixture *fx = *state;
	struct blob *b = open_blob(fx, SIZE), *b2;
	bool done = false;

	complete_chunk(b, 6); /* not saved */
	b2 = open_blob(fx, SIZE);
	assert_int_equal(chunkmap_done_count(b2->map), 0);
	assert_false(sums_all_zero(b2));
	assert_int_equal(blob_probe_chunk(b2, 6, &done), 0);
	assert_true(done);
	assert_int_equal(count_in_log(fx, "rejected"), 0);
	blob_free(b2);
	blob_free(b);
}

/* Reading the sidecar fails for another reason: an error, no reset. */
static void test_unreadable_sidecar_is_an_error(void **state)
{
	struct fixture *fx = *state;
	struct blob *b = open_blob(fx, SIZE), *b2 = (void *)1;
	char path[PATH_MAX];

	complete_chunk(b, 6);
	snprintf(path, sizeof(path), "%s", b->sidecar_path);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(blob_open(fx->c, "hf", "sha256:abc", SIZE, CS, &b2),
			 -EISDIR);
	assert_null(b2);
	assert_false(sums_all_zero(b));
	rmdir(path);
	blob_free(b);
}

static void test_probe_chunk(void **state)
{
	struct fixture *fx = *state;
	struct blob *b = open_blob(fx, SIZE);
	bool done = true;

	assert_int_equal(blob_probe_chunk(b, 3, &done), 0);
	assert_false(done);
	complete_chunk(b, 3);
	complete_chunk(b, 10); /* the short one */
	chunkmap_set(b->map, 3, CHUNK_MISSING);
	assert_int_equal(blob_probe_chunk(b, 3, &done), 0);
	assert_true(done);
	assert_int_equal(blob_probe_chunk(b, 10, &done), 0);
	assert_true(done);
	/* Probing does not change the map. */
	assert_int_equal(chunkmap_get(b->map, 3), CHUNK_MISSING);
	/* Bytes that no longer match their entry. */
	assert_int_equal(pwrite_all(b->files.data_fd, "z", 1, 3 * CS + 5), 0);
	assert_int_equal(blob_probe_chunk(b, 3, &done), 0);
	assert_false(done);
	assert_int_equal(blob_probe_chunk(b, 11, &done), -EINVAL);
	assert_false(done);
	blob_free(b);
}

static void test_open_errors(void **state)
{
	struct fixture *fx = *state;
	struct blob *b = (void *)1;
	uint8_t id[16];
	char hex[33], path[PATH_MAX + 16];
	int fd;

	assert_int_equal(blob_open(fx->c, "hf", "x", SIZE, CS + 1, &b),
			 -EINVAL);
	assert_null(b);
	/* The blob's folder cannot be made. */
	blob_identity("hf", "y", SIZE, CS, id);
	cache_identity_hex(id, hex);
	snprintf(path, sizeof(path), "%s/blobs/%.2s", fx->dir, hex);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(blob_open(fx->c, "hf", "y", SIZE, CS, &b), -ENOTDIR);
	assert_null(b);
}

static void test_empty_and_large_files(void **state)
{
	struct fixture *fx = *state;
	struct blob *b = open_blob(fx, 0);

	assert_int_equal(b->nchunks, 0);
	assert_int_equal(blob_save(b), 0);
	blob_free(b);
	b = open_blob(fx, 0);
	blob_free(b);

	/* Past 4 GiB: a sparse data file, a real sidecar. */
	b = open_blob(fx, 17 * GIB + 1);
	assert_int_equal(b->nchunks, 17 * GIB / CS + 1);
	complete_chunk(b, b->nchunks - 1);
	complete_chunk(b, 0);
	assert_int_equal(blob_save(b), 0);
	blob_free(b);
	b = open_blob(fx, 17 * GIB + 1);
	assert_int_equal(chunkmap_done_count(b->map), 2);
	assert_int_equal(chunkmap_done_bytes(b->map), CS + 1);
	blob_free(b);
}

static void test_identity_has_chunk_size(void **state)
{
	struct fixture *fx = *state;
	uint8_t a[16], b[16];
	char hex[33], hex2[33];
	struct blob *x = NULL, *y = NULL;
	uint32_t cs = 0;

	/* The default chunk size keeps the old names. */
	cache_identity("hf", "sha256:abc", SIZE, a);
	blob_identity("hf", "sha256:abc", SIZE, BLOB_CHUNK_SIZE_DEFAULT, b);
	assert_memory_equal(a, b, 16);
	blob_identity("hf", "sha256:abc", SIZE, CS, b);
	assert_memory_not_equal(a, b, 16);
	blob_identity_hex("hf", "sha256:abc", SIZE, CS, hex);
	blob_identity_hex("hf", "sha256:abc", SIZE, 2 * CS, hex2);
	assert_string_not_equal(hex, hex2);
	cache_identity_hex(b, hex2);
	assert_string_equal(hex, hex2);

	/* Two chunk sizes on one cache: two blobs, neither resets the
	 * other's progress. */
	assert_int_equal(blob_open(fx->c, "hf", "sha256:abc", SIZE, CS, &x), 0);
	complete_chunk(x, 2);
	assert_int_equal(blob_save(x), 0);
	assert_int_equal(blob_open(fx->c, "hf", "sha256:abc", SIZE, 2 * CS, &y),
			 0);
	assert_string_not_equal(x->hex, y->hex);
	assert_int_equal(chunkmap_done_count(y->map), 0);
	blob_free(y);
	blob_free(x);
	assert_int_equal(count_in_log(fx, "rejected"), 0);
	x = NULL;
	assert_int_equal(blob_open(fx->c, "hf", "sha256:abc", SIZE, CS, &x), 0);
	assert_int_equal(chunkmap_get(x->map, 2), CHUNK_DONE);
	assert_string_equal(x->hex, hex);
	blob_free(x);

	/* A tool without the chunk size finds the blob. */
	assert_int_equal(
		blob_find(fx->c, "hf", "sha256:abc", SIZE, 0, hex2, &cs), 0);
	assert_int_equal(cs, CS);
	assert_string_equal(hex2, hex);
	assert_int_equal(blob_find(fx->c, "hf", "sha256:abc", SIZE, 2 * CS,
				   hex2, &cs),
			 0);
	assert_int_equal(cs, 2 * CS); /* its blob was made above */
	assert_int_equal(blob_find(fx->c, "hf", "nothing", SIZE, 0, hex2, &cs),
			 -ENOENT);
	assert_int_equal(cs, BLOB_CHUNK_SIZE_DEFAULT);
}

static struct blob *punch_blob; /* for the crash hooks below */

/* The sidecar on disk: is chunk idx's bit set? */
static bool disk_bit(struct blob *b, uint64_t idx)
{
	struct sidecar *sc = NULL;
	bool set;

	assert_int_equal(sidecar_load_at(b->files.dir_fd, b->state_name,
					 &b->layout, &sc),
			 0);
	set = sidecar_test(sc, idx);
	sidecar_free(sc);
	return set;
}

/* Are chunk idx's bytes the ones complete_chunk wrote? */
static bool bytes_intact(struct blob *b, uint64_t idx)
{
	static uint8_t buf[CS];
	uint64_t off, len, i;

	chunkmap_chunk_range(b->map, idx, &off, &len);
	assert_int_equal(pread_all(b->files.data_fd, buf, len, off), 0);
	for (i = 0; i < len; i++)
		if (buf[i] != (uint8_t)(idx + 1))
			return false;
	return true;
}

static bool sums_zero(struct blob *b, uint64_t idx)
{
	uint64_t sum = 1;

	assert_int_equal(blob_sums_entry(b, idx, &sum), 0);
	return sum == 0;
}

/* A crash at the first sync of the save: the sidecar on disk still
 * records chunk 3, and its bytes are all there. */
static bool crash_at_sync_ok;
static void crash_at_sync(void)
{
	crash_at_sync_ok = disk_bit(punch_blob, 3) &&
			   bytes_intact(punch_blob, 3);
}

/* A crash right before the hole: the sidecar on disk no longer records
 * chunks 3 and 10, their sums entries are zero, chunk 4 untouched. */
static bool crash_at_punch_ok;
static void crash_at_punch(void)
{
	crash_at_punch_ok =
		!disk_bit(punch_blob, 3) && !disk_bit(punch_blob, 10) &&
		sums_zero(punch_blob, 3) && sums_zero(punch_blob, 10) &&
		disk_bit(punch_blob, 4) && !sums_zero(punch_blob, 4);
}

static void test_punch(void **state)
{
	struct fixture *fx = *state;
	struct blob *b = open_blob(fx, SIZE), *b2 = NULL;
	const uint64_t idx[] = { 3, 10 }; /* 10: the short last chunk */
	uint64_t freed = 0, before, i;
	bool done;

	for (i = 0; i < b->nchunks; i++)
		complete_chunk(b, i);
	assert_int_equal(blob_save(b), 0);
	before = blob_allocated(b);
	assert_true(before >= SIZE);
	punch_blob = b;
	crash_at_sync_ok = crash_at_punch_ok = false;
	during_fdatasync = crash_at_sync;
	during_fallocate = crash_at_punch;
	assert_int_equal(blob_punch(b, idx, 2, &freed), 0);
	assert_true(crash_at_sync_ok);
	assert_true(crash_at_punch_ok);
	printf("punched 2 chunks: freed %llu bytes, allocated %llu -> %llu\n",
	       (unsigned long long)freed, (unsigned long long)before,
	       (unsigned long long)blob_allocated(b));
	assert_true(freed >= CS); /* ext4, tmpfs, xfs all punch */
	assert_true(blob_allocated(b) <= before - CS);
	assert_int_equal(chunkmap_get(b->map, 3), CHUNK_MISSING);
	assert_int_equal(chunkmap_get(b->map, 10), CHUNK_MISSING);
	assert_int_equal(chunkmap_get(b->map, 4), CHUNK_DONE);
	assert_false(bytes_intact(b, 3));
	assert_true(bytes_intact(b, 4));
	assert_int_equal(blob_probe_chunk(b, 3, &done), 0);
	assert_false(done);
	assert_int_equal(blob_probe_chunk(b, 4, &done), 0);
	assert_true(done);
	/* Reopened: what the disk says agrees. */
	assert_int_equal(blob_open(fx->c, "hf", "sha256:abc", SIZE, CS, &b2),
			 0);
	assert_int_equal(chunkmap_done_count(b2->map), b->nchunks - 2);
	assert_int_equal(chunkmap_get(b2->map, 3), CHUNK_MISSING);
	assert_int_equal(chunkmap_get(b2->map, 10), CHUNK_MISSING);
	blob_free(b2);
	/* Bad index: nothing done. */
	assert_int_equal(blob_punch(b, (const uint64_t[]){ 11 }, 1, &freed),
			 -EINVAL);
	blob_free(b);
	punch_blob = NULL;
}

static void test_punch_sync_fails_punches_nothing(void **state)
{
	struct fixture *fx = *state;
	struct blob *b = open_blob(fx, SIZE);
	const uint64_t idx[] = { 2 };
	uint64_t freed = 7;

	complete_chunk(b, 2);
	assert_int_equal(blob_save(b), 0);
	fdatasync_errno = EIO;
	assert_int_equal(blob_punch(b, idx, 1, &freed), -EIO);
	fdatasync_errno = 0;
	assert_int_equal(freed, 0);
	/* Not saved, so not punched: the sidecar's bit is over its bytes. */
	assert_true(disk_bit(b, 2));
	assert_true(bytes_intact(b, 2));
	blob_free(b);
}

static void test_punch_refuses_hard_linked(void **state)
{
	struct fixture *fx = *state;
	struct blob *b = open_blob(fx, SIZE);
	const uint64_t idx[] = { 1 };
	char data[PATH_MAX], lpath[PATH_MAX + 8];
	uint64_t freed;

	complete_chunk(b, 1);
	assert_int_equal(blob_save(b), 0);
	assert_int_equal(cache_blob_path(fx->c, b->hex, "", data, sizeof(data)),
			 0);
	snprintf(lpath, sizeof(lpath), "%s/export", fx->dir);
	assert_int_equal(link(data, lpath), 0);
	assert_int_equal(blob_punch(b, idx, 1, &freed), -EMLINK);
	assert_int_equal(chunkmap_get(b->map, 1), CHUNK_DONE);
	assert_true(disk_bit(b, 1));
	assert_true(bytes_intact(b, 1));
	assert_false(sums_zero(b, 1));
	blob_free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
		T(test_open_new),
		T(test_save_and_reopen),
		T(test_save_skips_when_nothing_new),
		T(test_save_only_chunks_done_before_sync),
		T(test_save_sync_fails),
		T(test_save_sync_fails_drops_chunk_landing_meanwhile),
		T(test_data_file_deleted_starts_over),
		T(test_data_file_truncated_starts_over),
		T(test_data_file_replaced_starts_over),
		T(test_marker_of_lost_data_removed),
		T(test_sidecar_link_replaced),
		T(test_save_write_fails),
		T(test_corrupt_sidecar_starts_over),
		T(test_reject_clear_fails),
		T(test_foreign_sidecar_starts_over),
		T(test_missing_sidecar_keeps_sums),
		T(test_unreadable_sidecar_is_an_error),
		T(test_probe_chunk),
		T(test_open_errors),
		T(test_empty_and_large_files),
		T(test_identity_has_chunk_size),
		T(test_punch),
		T(test_punch_sync_fails_punches_nothing),
		T(test_punch_refuses_hard_linked),
#undef T
	};

	return cmocka_run_group_tests_name("blob", tests, NULL, NULL);
}
