/* test_fsutil.c: the file and path helpers of state/ (state/fsutil.c). */
#include <errno.h>
#include <fcntl.h>
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

#include "state/fsutil.h"

struct fixture {
	char dir[PATH_MAX];
};

static int fx_setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));

	assert_non_null(fx);
	snprintf(fx->dir, sizeof(fx->dir), "/tmp/test_fsutil.XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	*state = fx;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	assert_int_equal(system(cmd), 0);
	free(fx);
	return 0;
}

static bool is_dir(const char *path)
{
	struct stat st;

	return !stat(path, &st) && S_ISDIR(st.st_mode);
}

static void test_path_fmt(void **state)
{
	char buf[8];

	(void)state;
	assert_int_equal(path_fmt(buf, sizeof(buf), "%s/%s", "ab", "cd"), 0);
	assert_string_equal(buf, "ab/cd");
	assert_int_equal(path_fmt(buf, sizeof(buf), "%s", "1234567"), 0);
	assert_int_equal(path_fmt(buf, sizeof(buf), "%s", "12345678"),
			 -ENAMETOOLONG);
}

static void test_path_abs(void **state)
{
	char cwd[PATH_MAX], buf[PATH_MAX + 8], want[PATH_MAX + 8];

	(void)state;
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	assert_int_equal(path_abs("/a/b", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/a/b");
	assert_int_equal(path_abs("rel/x", buf, sizeof(buf)), 0);
	snprintf(want, sizeof(want), "%s/rel/x", cwd);
	assert_string_equal(buf, want);
	assert_int_equal(path_abs("", buf, sizeof(buf)), -EINVAL);
	assert_int_equal(path_abs("/long/path", buf, 4), -ENAMETOOLONG);
}

static void test_mkdir_p(void **state)
{
	struct fixture *fx = *state;
	char path[PATH_MAX + 128], file[PATH_MAX + 64];
	FILE *f;

	snprintf(path, sizeof(path), "%s/a//b/c/", fx->dir);
	assert_int_equal(mkdir_p(path, 0700), 0);
	assert_true(is_dir(path));
	assert_int_equal(mkdir_p(path, 0700), 0); /* there already */

	snprintf(file, sizeof(file), "%s/a/file", fx->dir);
	f = fopen(file, "w");
	assert_non_null(f);
	fclose(f);
	assert_int_equal(mkdir_one(file, 0700), -ENOTDIR);
	snprintf(path, sizeof(path), "%s/under/x", file);
	assert_int_equal(mkdir_p(path, 0700), -ENOTDIR);
	assert_int_equal(mkdir_p("/proc/hollowfs-test/x", 0700) < 0, 1);
	memset(path, 'x', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	assert_int_equal(mkdir_p(path, 0700), -ENAMETOOLONG);
}

static void test_mkdir_parent(void **state)
{
	struct fixture *fx = *state;
	char path[PATH_MAX + 64];

	assert_int_equal(mkdir_parent("no-slash", 0700), 0);
	assert_int_equal(mkdir_parent("/top", 0700), 0);
	snprintf(path, sizeof(path), "%s/p/q/leaf", fx->dir);
	assert_int_equal(mkdir_parent(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/p/q", fx->dir);
	assert_true(is_dir(path));
	snprintf(path, sizeof(path), "%s/p/q/leaf", fx->dir);
	assert_false(is_dir(path));
}

static void test_fsync_parent(void **state)
{
	struct fixture *fx = *state;
	char path[PATH_MAX + 64];

	snprintf(path, sizeof(path), "%s/any", fx->dir);
	assert_int_equal(fsync_parent(path), 0);
	assert_int_equal(fsync_parent("relative"), 0); /* "." */
	snprintf(path, sizeof(path), "%s/gone/any", fx->dir);
	assert_int_equal(fsync_parent(path), -ENOENT);
}

/* Folders inside a folder fd, never through a link. */
static void test_dir_open_at(void **state)
{
	struct fixture *fx = *state;
	char path[PATH_MAX + 64];
	struct stat st;
	int dfd, fd = 7;

	dfd = open(fx->dir, O_RDONLY | O_DIRECTORY);
	assert_true(dfd >= 0);
	assert_int_equal(dir_open_at(dfd, "new", 0700, false, &fd), -ENOENT);
	assert_int_equal(fd, -1);
	assert_int_equal(dir_open_at(dfd, "new", 0700, true, &fd), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	close(fd);
	assert_int_equal(dir_open_at(dfd, "new", 0700, true, &fd), 0);
	close(fd);
	/* A link to a folder: -ELOOP, created or not. */
	snprintf(path, sizeof(path), "%s/link", fx->dir);
	assert_int_equal(symlink(fx->dir, path), 0);
	assert_int_equal(dir_open_at(dfd, "link", 0700, true, &fd), -ELOOP);
	assert_int_equal(dir_open_at(dfd, "link", 0700, false, &fd), -ELOOP);
	assert_int_equal(fd, -1);
	/* A file. */
	snprintf(path, sizeof(path), "%s/file", fx->dir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(dir_open_at(dfd, "file", 0700, true, &fd), -ENOTDIR);
	close(dfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_fmt),
		cmocka_unit_test(test_path_abs),
		cmocka_unit_test_setup_teardown(test_mkdir_p, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_mkdir_parent, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_fsync_parent, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_dir_open_at, fx_setup,
						fx_teardown),
	};

	return cmocka_run_group_tests_name("fsutil", tests, NULL, NULL);
}
