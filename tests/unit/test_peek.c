/*
 * test_peek.c: a blob's sidecar read from outside (state/peek.h), as
 * hollowfs status and verify see it, and verify's repair.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "state/blob.h"
#include "state/cache.h"
#include "state/peek.h"
#include "state/sidecar.h"
#include "state/verify.h"

#define CS (64u << 10)
#define SIZE (3 * CS + 100) /* 4 chunks, the last one short */

struct fixture {
	char dir[64];
	struct cache *c;
	char hex[33];
	char path[PATH_MAX]; /* the data file */
};

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

/* A blob with chunks 0 and 3 complete and saved, like a fetch leaves. */
static int fx_setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	char buf[CS];
	struct blob *b;
	uint64_t i;

	assert_non_null(fx);
	strcpy(fx->dir, "/tmp/test_peek.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	assert_int_equal(cache_new(fx->dir, &fx->c), 0);
	assert_int_equal(blob_open(fx->c, "http", "id", SIZE, CS, &b), 0);
	strcpy(fx->hex, b->hex);
	for (i = 0; i < 4; i += 3) {
		uint64_t off = i * CS, len = i == 3 ? 100 : CS;

		memset(buf, (int)i + 1, sizeof(buf));
		assert_int_equal(pwrite_all(b->files.data_fd, buf, len, off),
				 0);
		assert_int_equal(cache_sums_write(b->files.sums_fd, i,
						  cache_chunk_sum(buf, len)),
				 0);
		chunkmap_set(b->map, i, CHUNK_DONE);
	}
	assert_int_equal(blob_save(b), 0);
	blob_free(b);
	assert_int_equal(cache_blob_path(fx->c, fx->hex, "", fx->path,
					 sizeof(fx->path)),
			 0);
	*state = fx;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fixture *fx = *state;

	cache_free(fx->c);
	nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

static void test_reads_what_was_saved(void **state)
{
	struct fixture *fx = *state;
	struct blob_peek p;
	uint64_t off, len;

	assert_int_equal(blob_peek_open(fx->c, fx->hex, false, &p), 0);
	assert_non_null(p.sc);
	assert_int_equal(p.sc->nchunks, 4);
	assert_int_equal(p.sc->done_count, 2);
	assert_true(sidecar_test(p.sc, 0) && sidecar_test(p.sc, 3));
	assert_int_equal(blob_peek_done_bytes(&p), CS + 100);
	blob_peek_chunk_range(&p, 3, &off, &len);
	assert_int_equal(off, 3 * CS);
	assert_int_equal(len, 100);
	assert_int_equal(p.data_fd, -1); /* not asked for */
	blob_peek_release(&p);
}

static void test_nothing_trusted(void **state)
{
	struct fixture *fx = *state;
	char other[33] = "0123456789abcdef0123456789abcdef";
	char a[PATH_MAX], b[PATH_MAX];
	struct blob_peek p;

	/* No such blob: nothing, and nothing made. */
	assert_int_equal(blob_peek_open(fx->c, other, false, &p), 0);
	assert_null(p.sc);
	assert_int_equal(blob_peek_open(fx->c, other, true, &p), -ENOENT);
	assert_int_equal(cache_blob_path(fx->c, other, "", a, sizeof(a)), 0);
	assert_int_equal(access(a, F_OK), -1);
	/* The same fan-out folder, another name. */
	strcpy(other, fx->hex);
	other[31] = other[31] == '0' ? '1' : '0';

	/* A sidecar of another blob copied in is not this one's. */
	assert_int_equal(
		cache_blob_path(fx->c, fx->hex, ".state", b, sizeof(b)), 0);
	assert_int_equal(cache_blob_path(fx->c, other, ".state", a, sizeof(a)),
			 0);
	assert_int_equal(link(b, a), 0);
	assert_int_equal(cache_blob_path(fx->c, other, "", a, sizeof(a)), 0);
	assert_int_equal(link(fx->path, a), 0);
	assert_int_equal(blob_peek_open(fx->c, other, false, &p), 0);
	assert_null(p.sc);

	/* A data file cut short: its bytes are gone. */
	assert_int_equal(truncate(fx->path, CS), 0);
	assert_int_equal(blob_peek_open(fx->c, fx->hex, false, &p), 0);
	assert_null(p.sc);
}

static void test_data_file_made_again(void **state)
{
	struct fixture *fx = *state;
	struct blob_peek p;
	int fd;

	/* Same size, another file: the sidecar is bound to the old one. */
	assert_int_equal(unlink(fx->path), 0);
	fd = open(fx->path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, SIZE), 0);
	close(fd);
	assert_int_equal(blob_peek_open(fx->c, fx->hex, false, &p), 0);
	assert_null(p.sc);
}

static void test_drop_clears_bits_then_sums(void **state)
{
	struct fixture *fx = *state;
	char marker[PATH_MAX];
	struct blob_peek p;
	struct blob *b;
	bool ok = true;
	int fd;

	assert_int_equal(blob_peek_open(fx->c, fx->hex, true, &p), 0);
	assert_true(p.data_fd >= 0 && p.sums_fd >= 0 && p.lock_fd >= 0);
	assert_int_equal(blob_peek_drop(fx->c, &p, 3, 3), 0);
	assert_int_equal(p.sc->done_count, 1);
	assert_int_equal(cache_chunk_check(p.data_fd, p.sums_fd, 3, 3 * CS, 100,
					   &ok),
			 0);
	assert_false(ok); /* its sums entry is gone */
	assert_int_equal(blob_peek_drop(fx->c, &p, 4, 4), -EINVAL);
	blob_peek_release(&p);

	/* What the next mount sees. */
	assert_int_equal(blob_open(fx->c, "http", "id", SIZE, CS, &b), 0);
	assert_int_equal(chunkmap_get(b->map, 0), CHUNK_DONE);
	assert_int_equal(chunkmap_get(b->map, 3), CHUNK_MISSING);
	blob_free(b);

	/* A whole-file drop takes the .verified marker along. */
	assert_int_equal(cache_blob_path(fx->c, fx->hex, ".verified", marker,
					 sizeof(marker)),
			 0);
	fd = open(marker, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(blob_peek_open(fx->c, fx->hex, true, &p), 0);
	assert_int_equal(blob_peek_drop(fx->c, &p, 0, 3), 0);
	blob_peek_release(&p);
	assert_int_equal(access(marker, F_OK), -1);
	assert_int_equal(blob_peek_open(fx->c, fx->hex, false, &p), 0);
	assert_non_null(p.sc);
	assert_int_equal(p.sc->done_count, 0);
	assert_int_equal(blob_peek_done_bytes(&p), 0);
	blob_peek_release(&p);
}

static void test_bad_hex(void **state)
{
	struct fixture *fx = *state;
	struct blob_peek p;

	assert_int_equal(blob_peek_open(fx->c, "XY", false, &p), -EINVAL);
	assert_int_equal(blob_peek_open(fx->c,
					"0123456789abcdef0123456789abcdef0",
					false, &p),
			 -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_reads_what_was_saved,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_nothing_trusted, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_data_file_made_again,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_drop_clears_bits_then_sums,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_bad_hex, fx_setup,
						fx_teardown),
	};

	return cmocka_run_group_tests_name("peek", tests, NULL, NULL);
}
