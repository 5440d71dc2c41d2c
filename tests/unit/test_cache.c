/*
 * test_cache.c: cache directory, layout, blob files, cross-process chunk
 * locks and sums, manifests and refs on disk.
 *
 * Built with -Wl,--wrap=fallocate64 (tests/unit/meson.build): whether the
 * cache's file system can punch holes is not something a test can pick,
 * so the fallback of cache_sums_clear() is reached through the wrapper.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include <cmocka.h>

#include "state/cache.h"
#include "state/manifest.h"
#include "state/sidecar.h"

#define KIB (1ull << 10)
#define MIB (1ull << 20)
#define GIB (1ull << 30)
#define CS (64 * KIB)

int __real_fallocate64(int fd, int mode, off_t off, off_t len);
int __wrap_fallocate64(int fd, int mode, off_t off, off_t len);

static int fallocate_errno; /* 0: pass through */

int __wrap_fallocate64(int fd, int mode, off_t off, off_t len)
{
	if (fallocate_errno) {
		errno = fallocate_errno;
		return -1;
	}
	return __real_fallocate64(fd, mode, off, len);
}

struct fixture {
	char dir[1024]; /* a fresh temporary folder */
	char cdir[1100]; /* dir/cache */
	struct cache *c;
};

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
	snprintf(fx->dir, sizeof(fx->dir), "%s/test_cache.XXXXXX",
		 tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->cdir, sizeof(fx->cdir), "%s/cache", fx->dir);
	fallocate_errno = 0;
	*state = fx;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fixture *fx = *state;

	cache_free(fx->c);
	chmod(fx->dir, 0700);
	nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

/* Fixture with an open cache. */
static int fx_setup_open(void **state)
{
	struct fixture *fx;

	fx_setup(state);
	fx = *state;
	assert_int_equal(cache_new(fx->cdir, &fx->c), 0);
	return 0;
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

static bool is_dir(const char *path)
{
	struct stat st;

	return !stat(path, &st) && S_ISDIR(st.st_mode);
}

static void write_bytes(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

static off_t fd_size(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return st.st_size;
}

/* Files in dir whose name contains ".tmp". */
static int count_tmp(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		n += strstr(de->d_name, ".tmp") != NULL;
	closedir(d);
	return n;
}

/* Runs fn in a child as an unprivileged user when we are root, so that
 * permission bits apply. Returns the child's exit status. */
static int run_unprivileged(int (*fn)(void *), void *arg)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (!pid) {
		if (geteuid() == 0 &&
		    (setgroups(0, NULL) || setresgid(65534, 65534, 65534) ||
		     setresuid(65534, 65534, 65534)))
			_exit(100);
		_exit(fn(arg));
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

struct env_save {
	char *xdg, *home;
};

static void env_save(struct env_save *s)
{
	const char *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");

	s->xdg = x ? strdup(x) : NULL;
	s->home = h ? strdup(h) : NULL;
}

static void env_restore(struct env_save *s)
{
	if (s->xdg)
		setenv("XDG_CACHE_HOME", s->xdg, 1);
	else
		unsetenv("XDG_CACHE_HOME");
	if (s->home)
		setenv("HOME", s->home, 1);
	else
		unsetenv("HOME");
	free(s->xdg);
	free(s->home);
}

static void test_resolve_dir_option(void **state)
{
	char out[PATH_MAX], cwd[PATH_MAX], want[PATH_MAX + 16];

	assert_int_equal(cache_resolve_dir("/srv/cache", out, sizeof(out)), 0);
	assert_string_equal(out, "/srv/cache");
	/* Relative: made absolute, the daemon will chdir("/"). */
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(want, sizeof(want), "%s/rel/dir", cwd);
	assert_int_equal(cache_resolve_dir("rel/dir", out, sizeof(out)), 0);
	assert_string_equal(out, want);
	assert_int_equal(cache_resolve_dir("", out, sizeof(out)), -EINVAL);
	assert_int_equal(cache_resolve_dir("/srv/cache", out, 5),
			 -ENAMETOOLONG);
}

static void test_resolve_dir_xdg(void **state)
{
	struct env_save s;
	char out[PATH_MAX];

	env_save(&s);
	/* Honoured by everyone, root included. */
	setenv("XDG_CACHE_HOME", "/xdg/cache", 1);
	setenv("HOME", "/home/someone", 1);
	assert_int_equal(cache_resolve_dir(NULL, out, sizeof(out)), 0);
	assert_string_equal(out, "/xdg/cache/hollowfs");
	assert_int_equal(cache_resolve_dir(NULL, out, 10), -ENAMETOOLONG);
	/* A relative XDG_CACHE_HOME is ignored (XDG spec), so is "". */
	setenv("XDG_CACHE_HOME", "relative", 1);
	assert_int_equal(cache_resolve_dir(NULL, out, sizeof(out)), 0);
	assert_string_not_equal(out, "relative/hollowfs");
	setenv("XDG_CACHE_HOME", "", 1);
	assert_int_equal(cache_resolve_dir(NULL, out, sizeof(out)), 0);
	assert_string_not_equal(out, "/hollowfs");
	env_restore(&s);
}

static int resolve_as_user(void *arg)
{
	char out[PATH_MAX];

	unsetenv("XDG_CACHE_HOME");
	setenv("HOME", "/home/someone", 1);
	if (cache_resolve_dir(NULL, out, sizeof(out)) ||
	    strcmp(out, "/home/someone/.cache/hollowfs"))
		return 1;
	unsetenv("HOME");
	if (cache_resolve_dir(NULL, out, sizeof(out)) != -ENOENT)
		return 2;
	setenv("HOME", "", 1);
	if (cache_resolve_dir(NULL, out, sizeof(out)) != -ENOENT)
		return 3;
	return 0;
}

static void test_resolve_dir_home_and_root(void **state)
{
	struct env_save s;
	char out[PATH_MAX];

	env_save(&s);
	unsetenv("XDG_CACHE_HOME");
	setenv("HOME", "/root", 1);
	if (geteuid() == 0) {
		assert_int_equal(cache_resolve_dir(NULL, out, sizeof(out)), 0);
		assert_string_equal(out, "/var/cache/hollowfs");
	}
	assert_int_equal(run_unprivileged(resolve_as_user, NULL), 0);
	env_restore(&s);
}

static void test_open_creates_layout(void **state)
{
	struct fixture *fx = *state;
	char path[PATH_MAX + 32], deep[PATH_MAX + 32];
	struct cache *c2 = NULL;

	/* Doubled and trailing slashes are odd but valid. */
	snprintf(deep, sizeof(deep), "%s/x//y/", fx->dir);
	assert_int_equal(cache_new(deep, &c2), 0);
	cache_free(c2);
	snprintf(deep, sizeof(deep), "%s/a/b/c/", fx->dir);
	assert_int_equal(cache_new(deep, &fx->c), 0);
	snprintf(path, sizeof(path), "%s/a/b/c", fx->dir);
	assert_string_equal(cache_dir(fx->c), path);
	snprintf(path, sizeof(path), "%s/a/b/c/blobs", fx->dir);
	assert_true(is_dir(path));
	snprintf(path, sizeof(path), "%s/a/b/c/snapshots", fx->dir);
	assert_true(is_dir(path));
	snprintf(path, sizeof(path), "%s/a/b/c/refs", fx->dir);
	assert_true(is_dir(path));
	/* Opening an existing cache again is fine; the probe left nothing. */
	assert_int_equal(cache_new(deep, &c2), 0);
	cache_free(c2);
	snprintf(path, sizeof(path), "%s/a/b/c/blobs", fx->dir);
	{
		DIR *d = opendir(path);
		struct dirent *de;
		int n = 0;

		assert_non_null(d);
		while ((de = readdir(d)))
			n += de->d_name[0] != '.' ||
			     strstr(de->d_name, "probe");
		closedir(d);
		assert_int_equal(n, 0);
	}
	cache_free(NULL);
}

static void test_open_rejects_bad_args(void **state)
{
	struct cache *c = (void *)1;

	assert_int_equal(cache_new("", &c), -EINVAL);
	assert_null(c);
	assert_int_equal(cache_new(NULL, &c), -EINVAL);
}

static void test_open_under_a_file(void **state)
{
	struct fixture *fx = *state;
	char file[PATH_MAX + 16], dir[PATH_MAX + 32];
	struct cache *c = (void *)1;

	snprintf(file, sizeof(file), "%s/file", fx->dir);
	write_bytes(file, "x", 1);
	snprintf(dir, sizeof(dir), "%s/file/cache", fx->dir);
	assert_int_equal(cache_new(dir, &c), -ENOTDIR);
	assert_null(c);
	/* The cache folder itself is a file. */
	assert_int_equal(cache_new(file, &c), -ENOTDIR);
}

static void test_open_layout_entry_is_a_file(void **state)
{
	struct fixture *fx = *state;
	char path[PATH_MAX + 16];
	struct cache *c = (void *)1;

	assert_int_equal(mkdir(fx->cdir, 0755), 0);
	snprintf(path, sizeof(path), "%s/snapshots", fx->cdir);
	write_bytes(path, "x", 1);
	assert_int_equal(cache_new(fx->cdir, &c), -ENOTDIR);
	assert_null(c);
}

static void test_open_in_proc_fails(void **state)
{
	struct cache *c = (void *)1;

	/* procfs refuses new folders whoever we are. */
	assert_true(cache_new("/proc/hollowfs-test/cache", &c) < 0);
	assert_null(c);
}

static int open_as_user(void *arg)
{
	struct cache *c = NULL;
	int err = cache_new(arg, &c);

	cache_free(c);
	return err == -EACCES ? 0 : 1;
}

static uid_t chown_to;

static int chown_one(const char *path, const struct stat *st, int flag,
		     struct FTW *ftw)
{
	return lchown(path, chown_to, chown_to);
}

/* chown -R (without following links) of path to uid:uid. */
static void chown_tree(const char *path, uid_t uid)
{
	chown_to = uid;
	assert_int_equal(nftw(path, chown_one, 16, FTW_PHYS), 0);
}

/* A folder we may not write to: refused at open, not at the first save. */
static void test_open_unwritable(void **state)
{
	struct fixture *fx = *state;
	char path[PATH_MAX + 16];

	assert_int_equal(chmod(fx->dir, 0755), 0);
	assert_int_equal(mkdir(fx->cdir, 0755), 0);
	/* The layout exists but is read-only: the probe finds out. */
	snprintf(path, sizeof(path), "%s/blobs", fx->cdir);
	assert_int_equal(mkdir(path, 0555), 0);
	snprintf(path, sizeof(path), "%s/snapshots", fx->cdir);
	assert_int_equal(mkdir(path, 0555), 0);
	snprintf(path, sizeof(path), "%s/refs", fx->cdir);
	assert_int_equal(mkdir(path, 0555), 0);
	assert_int_equal(chmod(fx->cdir, 0555), 0);
	/* Owned by that user (or it is refused as not private, -EPERM). */
	chown_tree(fx->cdir, 65534);
	assert_int_equal(run_unprivileged(open_as_user, fx->cdir), 0);
	/* The layout cannot even be made. */
	snprintf(path, sizeof(path), "%s/sub", fx->dir);
	assert_int_equal(mkdir(path, 0555), 0);
	snprintf(path, sizeof(path), "%s/sub/cache", fx->dir);
	assert_int_equal(run_unprivileged(open_as_user, path), 0);
	chmod(fx->cdir, 0755);
}

static void test_identity(void **state)
{
	uint8_t a[16], b[16];
	uint8_t buf[64];
	char hex[33];
	int i;

	/* The canonical encoding: kind NUL content_id NUL size (u64 LE). */
	memcpy(buf, "hf\0abc\0", 7);
	for (i = 0; i < 8; i++)
		buf[7 + i] = (uint8_t)(12345678901ull >> (8 * i));
	{
		XXH128_canonical_t canon;

		XXH128_canonicalFromHash(&canon, XXH3_128bits(buf, 15));
		cache_identity("hf", "abc", 12345678901ull, a);
		assert_memory_equal(a, canon.digest, 16);
	}
	/* Stable. */
	cache_identity("hf", "abc", 12345678901ull, b);
	assert_memory_equal(a, b, 16);
	/* Every part counts. */
	cache_identity("http", "abc", 12345678901ull, b);
	assert_memory_not_equal(a, b, 16);
	cache_identity("hf", "abd", 12345678901ull, b);
	assert_memory_not_equal(a, b, 16);
	cache_identity("hf", "abc", 12345678902ull, b);
	assert_memory_not_equal(a, b, 16);
	/* Separators: ("h", "fabc") is not ("hf", "abc"). */
	cache_identity("h", "fabc", 12345678901ull, b);
	assert_memory_not_equal(a, b, 16);
	/* A missing content id is the empty one. */
	cache_identity("file", NULL, 5, a);
	cache_identity("file", "", 5, b);
	assert_memory_equal(a, b, 16);

	cache_identity_hex(a, hex);
	assert_int_equal(strlen(hex), 32);
	for (i = 0; i < 16; i++) {
		char two[3];

		snprintf(two, sizeof(two), "%02x", a[i]);
		assert_memory_equal(hex + 2 * i, two, 2);
	}
}

static void test_blob_path(void **state)
{
	struct fixture *fx = *state;
	char out[PATH_MAX], want[PATH_MAX + 64];
	const char *hex = "abcdef0123456789abcdef0123456789";

	assert_int_equal(
		cache_blob_path(fx->c, hex, ".state", out, sizeof(out)), 0);
	snprintf(want, sizeof(want), "%s/blobs/ab/%s.state", fx->cdir, hex);
	assert_string_equal(out, want);
	assert_int_equal(cache_blob_path(fx->c, hex, "", out, sizeof(out)), 0);
	snprintf(want, sizeof(want), "%s/blobs/ab/%s", fx->cdir, hex);
	assert_string_equal(out, want);
	assert_int_equal(cache_blob_path(fx->c, hex, NULL, out, sizeof(out)),
			 0);
	assert_string_equal(out, want);
	assert_int_equal(cache_blob_path(fx->c, hex, "", out, 20),
			 -ENAMETOOLONG);
	assert_int_equal(cache_blob_path(fx->c, "ABCDEF", "", out, sizeof(out)),
			 -EINVAL);
	assert_int_equal(cache_blob_path(fx->c, "a", "", out, sizeof(out)),
			 -EINVAL);
	assert_int_equal(cache_blob_path(fx->c, "../etc", "", out, sizeof(out)),
			 -EINVAL);
}

static const char *HEX = "0123456789abcdef0123456789abcdef";

static void test_blob_open_sizes_sparse(void **state)
{
	struct fixture *fx = *state;
	struct cache_blob_files f;
	struct stat st;

	assert_int_equal(cache_blob_open(fx->c, HEX, GIB + 5, CS, &f), 0);
	assert_int_equal(fstat(f.data_fd, &st), 0);
	assert_int_equal(st.st_size, GIB + 5);
	assert_true((uint64_t)st.st_blocks * 512 < MIB); /* sparse */
	assert_int_equal(fd_size(f.sums_fd), (GIB / CS + 1) * 8);
	assert_true(f.lock_fd >= 0);
	assert_true(fcntl(f.data_fd, F_GETFD) & FD_CLOEXEC);
	assert_true(fcntl(f.sums_fd, F_GETFD) & FD_CLOEXEC);
	assert_true(fcntl(f.lock_fd, F_GETFD) & FD_CLOEXEC);
	assert_true((fcntl(f.data_fd, F_GETFL) & O_ACCMODE) == O_RDWR);
	cache_blob_files_close(&f);
	assert_int_equal(f.data_fd, -1);
	cache_blob_files_close(&f); /* twice is harmless */

	/* Past 4 GiB and an empty file. */
	assert_int_equal(cache_blob_open(fx->c, HEX, 17 * GIB, CS, &f), 0);
	assert_int_equal(fd_size(f.data_fd), 17 * GIB);
	assert_int_equal(fd_size(f.sums_fd), 17 * GIB / CS * 8);
	cache_blob_files_close(&f);
	assert_int_equal(cache_blob_open(fx->c, "00aa", 0, CS, &f), 0);
	assert_int_equal(fd_size(f.data_fd), 0);
	assert_int_equal(fd_size(f.sums_fd), 0);
	cache_blob_files_close(&f);
}

static void test_blob_open_keeps_bytes(void **state)
{
	struct fixture *fx = *state;
	struct cache_blob_files f, g;
	char buf[5] = { 0 };

	assert_int_equal(cache_blob_open(fx->c, HEX, 10 * CS, CS, &f), 0);
	assert_int_equal(pwrite_all(f.data_fd, "hello", 5, 3 * CS), 0);
	assert_int_equal(cache_sums_write(f.sums_fd, 3, 42), 0);
	/* Another process opens it while we keep ours. */
	assert_int_equal(cache_blob_open(fx->c, HEX, 10 * CS, CS, &g), 0);
	assert_int_equal(pread_all(g.data_fd, buf, 5, 3 * CS), 0);
	assert_memory_equal(buf, "hello", 5);
	assert_int_equal(pread_all(g.sums_fd, buf, 1, 3 * 8), 0);
	assert_int_equal(buf[0], 42);
	cache_blob_files_close(&g);
	/* A data file shorter than the size grows and keeps its bytes. */
	assert_int_equal(ftruncate(f.data_fd, 4 * CS), 0);
	assert_int_equal(cache_blob_open(fx->c, HEX, 10 * CS, CS, &g), 0);
	assert_int_equal(fd_size(g.data_fd), 10 * CS);
	assert_int_equal(pread_all(g.data_fd, buf, 5, 3 * CS), 0);
	assert_memory_equal(buf, "hello", 5);
	cache_blob_files_close(&g);
	cache_blob_files_close(&f);
}

static void test_blob_open_cuts_oversized(void **state)
{
	struct fixture *fx = *state;
	struct cache_blob_files f;

	assert_int_equal(cache_blob_open(fx->c, HEX, 10 * CS, CS, &f), 0);
	assert_int_equal(ftruncate(f.data_fd, 20 * CS), 0);
	assert_int_equal(ftruncate(f.sums_fd, 1000), 0);
	cache_blob_files_close(&f);
	assert_int_equal(cache_blob_open(fx->c, HEX, 10 * CS, CS, &f), 0);
	assert_int_equal(fd_size(f.data_fd), 10 * CS);
	assert_int_equal(fd_size(f.sums_fd), 80);
	cache_blob_files_close(&f);
}

static void test_blob_open_errors_leave_no_fd(void **state)
{
	struct fixture *fx = *state;
	struct cache_blob_files f;
	char path[PATH_MAX];
	int before = count_fds();

	assert_int_equal(cache_blob_open(fx->c, HEX, 10, CS + 1, &f), -EINVAL);
	assert_int_equal(f.data_fd, -1);
	assert_int_equal(cache_blob_open(fx->c, "xyz", 10, CS, &f), -EINVAL);
	assert_int_equal(cache_blob_open(fx->c, HEX, 1ull << 63, CS, &f),
			 -EFBIG);
	/* The sums file is a folder: data was opened, then closed again. */
	assert_int_equal(
		cache_blob_path(fx->c, HEX, ".sums", path, sizeof(path)), 0);
	assert_int_equal(cache_blob_open(fx->c, HEX, 10, CS, &f), 0);
	cache_blob_files_close(&f);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_true(cache_blob_open(fx->c, HEX, 10, CS, &f) < 0);
	assert_int_equal(f.data_fd, -1);
	assert_int_equal(f.sums_fd, -1);
	rmdir(path);
	/* Same for the lock file. */
	assert_int_equal(
		cache_blob_path(fx->c, HEX, ".lock", path, sizeof(path)), 0);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_true(cache_blob_open(fx->c, HEX, 10, CS, &f) < 0);
	assert_int_equal(f.lock_fd, -1);
	/* And a data "file" that is a FIFO. */
	rmdir(path);
	assert_int_equal(cache_blob_path(fx->c, HEX, "", path, sizeof(path)),
			 0);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(cache_blob_open(fx->c, HEX, 10, CS, &f), -EINVAL);
	assert_int_equal(count_fds(), before);
}

static void test_blob_open_subdir_is_a_file(void **state)
{
	struct fixture *fx = *state;
	struct cache_blob_files f;
	char path[PATH_MAX + 16];

	snprintf(path, sizeof(path), "%s/blobs/01", fx->cdir);
	write_bytes(path, "x", 1);
	assert_int_equal(cache_blob_open(fx->c, HEX, 10, CS, &f), -ENOTDIR);
}

static void test_sums_write_and_clear(void **state)
{
	struct fixture *fx = *state;
	struct cache_blob_files f;
	uint8_t raw[8];
	int i;

	assert_int_equal(cache_blob_open(fx->c, HEX, 10 * CS, CS, &f), 0);
	assert_int_equal(cache_sums_write(f.sums_fd, 9, 0x0102030405060708ull),
			 0);
	assert_int_equal(pread_all(f.sums_fd, raw, 8, 72), 0);
	for (i = 0; i < 8; i++) /* little-endian */
		assert_int_equal(raw[i], 8 - i);
	assert_int_equal(cache_sums_clear(f.sums_fd, 10), 0);
	assert_int_equal(fd_size(f.sums_fd), 80);
	assert_int_equal(pread_all(f.sums_fd, raw, 8, 72), 0);
	for (i = 0; i < 8; i++)
		assert_int_equal(raw[i], 0);
	assert_int_equal(cache_sums_clear(f.sums_fd, 0), 0);
	assert_int_equal(cache_sums_write(f.sums_fd, UINT64_MAX / 8, 1),
			 -EINVAL);
	assert_int_equal(cache_sums_clear(f.sums_fd, UINT64_MAX / 4), -EINVAL);
	assert_int_equal(cache_sums_write(-1, 0, 1), -EBADF);
	assert_int_equal(cache_sums_clear(-1, 1), -EBADF);
	cache_blob_files_close(&f);
}

/* A file system without hole punching: zeros are written instead. */
static void test_sums_clear_without_punch_hole(void **state)
{
	struct fixture *fx = *state;
	struct cache_blob_files f;
	uint64_t n = 20000, i; /* 160,000 bytes: several blocks */
	uint8_t raw[8];

	assert_int_equal(cache_blob_open(fx->c, HEX, n * CS, CS, &f), 0);
	for (i = 0; i < n; i += 997)
		assert_int_equal(cache_sums_write(f.sums_fd, i, i + 1), 0);
	assert_int_equal(cache_sums_write(f.sums_fd, n - 1, 7), 0);
	fallocate_errno = EOPNOTSUPP;
	assert_int_equal(cache_sums_clear(f.sums_fd, n), 0);
	for (i = 0; i < n; i += 997) {
		assert_int_equal(pread_all(f.sums_fd, raw, 8, i * 8), 0);
		assert_memory_equal(raw, "\0\0\0\0\0\0\0\0", 8);
	}
	assert_int_equal(pread_all(f.sums_fd, raw, 8, (n - 1) * 8), 0);
	assert_memory_equal(raw, "\0\0\0\0\0\0\0\0", 8);
	assert_int_equal(fd_size(f.sums_fd), n * 8);
	/* Any other failure is reported. */
	fallocate_errno = EIO;
	assert_int_equal(cache_sums_clear(f.sums_fd, n), -EIO);
	/* And a failing write in the fallback too. */
	fallocate_errno = ENOSYS;
	{
		int ro = open("/dev/null", O_RDONLY);

		assert_int_equal(cache_sums_clear(ro, n), -EBADF);
		close(ro);
	}
	fallocate_errno = 0;
	cache_blob_files_close(&f);
}

static void fill(uint8_t *buf, size_t len, uint64_t seed)
{
	size_t i;

	for (i = 0; i < len; i++) {
		seed = seed * 6364136223846793005ull + 1442695040888963407ull;
		buf[i] = (uint8_t)(seed >> 56);
	}
}

static void test_chunk_sum(void **state)
{
	uint8_t buf[100];

	fill(buf, sizeof(buf), 1);
	assert_int_equal(cache_chunk_sum(buf, sizeof(buf)),
			 XXH3_64bits(buf, sizeof(buf)));
	assert_true(cache_chunk_sum(buf, 0) != 0);
	assert_true(cache_chunk_sum(buf, sizeof(buf)) != 0);
}

static void test_chunk_check(void **state)
{
	struct fixture *fx = *state;
	struct cache_blob_files f;
	/* Chunks larger than the 1 MiB read buffer, and a short one. */
	uint64_t cs = 4 * MIB, size = 3 * cs + 1000;
	uint8_t *buf = malloc(cs);
	bool ok = true;

	assert_non_null(buf);
	assert_int_equal(cache_blob_open(fx->c, HEX, size, (uint32_t)cs, &f),
			 0);
	fill(buf, cs, 7);
	/* No entry yet: not done, whatever the bytes. */
	assert_int_equal(
		cache_chunk_check(f.data_fd, f.sums_fd, 1, cs, cs, &ok), 0);
	assert_false(ok);
	assert_int_equal(pwrite_all(f.data_fd, buf, cs, cs), 0);
	assert_int_equal(
		cache_sums_write(f.sums_fd, 1, cache_chunk_sum(buf, cs)), 0);
	assert_int_equal(
		cache_chunk_check(f.data_fd, f.sums_fd, 1, cs, cs, &ok), 0);
	assert_true(ok);
	/* One byte changed on disk: not trusted. */
	assert_int_equal(pwrite_all(f.data_fd, "X", 1, 2 * cs - 1), 0);
	assert_int_equal(
		cache_chunk_check(f.data_fd, f.sums_fd, 1, cs, cs, &ok), 0);
	assert_false(ok);
	/* The short last chunk. */
	fill(buf, 1000, 9);
	assert_int_equal(pwrite_all(f.data_fd, buf, 1000, 3 * cs), 0);
	assert_int_equal(
		cache_sums_write(f.sums_fd, 3, cache_chunk_sum(buf, 1000)), 0);
	assert_int_equal(cache_chunk_check(f.data_fd, f.sums_fd, 3, 3 * cs,
					   1000, &ok),
			 0);
	assert_true(ok);
	/* A data file shorter than the chunk: not done, not an error. */
	assert_int_equal(cache_chunk_check(f.data_fd, f.sums_fd, 3, 3 * cs,
					   2000, &ok),
			 0);
	assert_false(ok);
	/* An entry past the end of sums: none. */
	assert_int_equal(cache_chunk_check(f.data_fd, f.sums_fd, 4, 0, 10, &ok),
			 0);
	assert_false(ok);
	/* Read errors are returned. */
	assert_int_equal(cache_chunk_check(f.data_fd, -1, 1, cs, cs, &ok),
			 -EBADF);
	assert_int_equal(cache_chunk_check(-1, f.sums_fd, 1, cs, cs, &ok),
			 -EBADF);
	assert_false(ok);
	assert_int_equal(cache_chunk_check(f.data_fd, f.sums_fd, UINT64_MAX, 0,
					   1, &ok),
			 -EINVAL);
	cache_blob_files_close(&f);
	free(buf);
}

static void test_locks_between_descriptions(void **state)
{
	struct fixture *fx = *state;
	struct cache_blob_files f, g;

	assert_int_equal(cache_blob_open(fx->c, HEX, 10 * CS, CS, &f), 0);
	assert_int_equal(cache_blob_open(fx->c, HEX, 10 * CS, CS, &g), 0);
	assert_int_equal(cache_chunk_trylock(f.lock_fd, 3), 0);
	assert_int_equal(cache_chunk_trylock(g.lock_fd, 3), -EAGAIN);
	assert_int_equal(cache_chunk_trylock(g.lock_fd, 4), 0);
	assert_int_equal(cache_chunk_trylock(g.lock_fd, 2), 0);
	/* Locks past the end of the file, well past 32 bits. */
	assert_int_equal(cache_chunk_trylock(f.lock_fd, 1ull << 40), 0);
	assert_int_equal(cache_chunk_trylock(g.lock_fd, 1ull << 40), -EAGAIN);
	assert_int_equal(cache_chunk_unlock(f.lock_fd, 3), 0);
	assert_int_equal(cache_chunk_trylock(g.lock_fd, 3), 0);
	assert_int_equal(cache_chunk_trylock(f.lock_fd, 3), -EAGAIN);
	assert_int_equal(cache_chunk_trylock(-1, 3), -EBADF);
	assert_int_equal(cache_chunk_trylock(f.lock_fd, UINT64_MAX), -EINVAL);
	cache_blob_files_close(&g);
	/* Closing releases: f takes 3 now. */
	assert_int_equal(cache_chunk_trylock(f.lock_fd, 3), 0);
	cache_blob_files_close(&f);
}

/* Child side of the two-process test; exits with the failing line. */
#define CHILD_CHECK(cond)                          \
	do {                                       \
		if (!(cond))                       \
			_exit(__LINE__ % 250 + 1); \
	} while (0)

static void child_step(int rd, int wr, char expect, char say)
{
	char ch;

	if (say)
		CHILD_CHECK(write(wr, &say, 1) == 1);
	if (expect) {
		CHILD_CHECK(read(rd, &ch, 1) == 1);
		CHILD_CHECK(ch == expect);
	}
}

static void parent_step(int rd, int wr, char expect, char say)
{
	char ch;

	if (say)
		assert_int_equal(write(wr, &say, 1), 1);
	if (expect) {
		assert_int_equal(read(rd, &ch, 1), 1);
		assert_int_equal(ch, expect);
	}
}

static void test_two_processes_share_a_blob(void **state)
{
	struct fixture *fx = *state;
	struct cache_blob_files f;
	int to_child[2], to_parent[2], status;
	const uint64_t k = 5;
	uint64_t off = k * CS;
	bool ok = true;
	pid_t pid;

	assert_int_equal(cache_blob_open(fx->c, HEX, 10 * CS, CS, &f), 0);
	assert_int_equal(pipe(to_child), 0);
	assert_int_equal(pipe(to_parent), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		struct cache_blob_files g;
		static uint8_t buf[CS], other[CS];

		/* Its own open file descriptions, like another process. */
		CHILD_CHECK(!cache_blob_open(fx->c, HEX, 10 * CS, CS, &g));
		CHILD_CHECK(!cache_chunk_trylock(g.lock_fd, k));
		child_step(to_child[0], to_parent[1], 'W', 'L');
		fill(buf, CS, 42);
		fill(other, CS, 43);
		CHILD_CHECK(!pwrite_all(g.data_fd, buf, CS, off));
		CHILD_CHECK(!cache_sums_write(g.sums_fd, k,
					      cache_chunk_sum(buf, CS)));
		/* Chunk k+2: an entry that does not match its bytes. */
		CHILD_CHECK(!pwrite_all(g.data_fd, buf, CS, off + 2 * CS));
		CHILD_CHECK(!cache_sums_write(g.sums_fd, k + 2,
					      cache_chunk_sum(other, CS)));
		child_step(to_child[0], to_parent[1], 'X', 'D');
		_exit(0); /* dies holding the lock */
	}
	close(to_child[0]);
	close(to_parent[1]);

	parent_step(to_parent[0], to_child[1], 'L', 0);
	assert_int_equal(cache_chunk_trylock(f.lock_fd, k), -EAGAIN);
	assert_int_equal(cache_chunk_trylock(f.lock_fd, k + 1), 0);
	assert_int_equal(cache_chunk_unlock(f.lock_fd, k + 1), 0);
	assert_int_equal(
		cache_chunk_check(f.data_fd, f.sums_fd, k, off, CS, &ok), 0);
	assert_false(ok);

	parent_step(to_parent[0], to_child[1], 'D', 'W');
	/* Seen at once through the page cache, no fsync needed. */
	assert_int_equal(
		cache_chunk_check(f.data_fd, f.sums_fd, k, off, CS, &ok), 0);
	assert_true(ok);
	assert_int_equal(cache_chunk_check(f.data_fd, f.sums_fd, k + 2,
					   off + 2 * CS, CS, &ok),
			 0);
	assert_false(ok);
	assert_int_equal(cache_chunk_trylock(f.lock_fd, k), -EAGAIN);

	parent_step(to_parent[0], to_child[1], 0, 'X');
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	/* Its locks died with it. */
	assert_int_equal(cache_chunk_trylock(f.lock_fd, k), 0);
	close(to_child[1]);
	close(to_parent[0]);
	cache_blob_files_close(&f);
}

/* Opens the lock file of HEX as another process would (its own open
 * file description, no lock taken). */
static int raw_lock_fd(struct fixture *fx)
{
	char path[PATH_MAX];
	int fd;

	assert_int_equal(
		cache_blob_path(fx->c, HEX, ".lock", path, sizeof(path)), 0);
	fd = open(path, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

/* Can another description take the in-use byte shared right now? */
static bool can_share(int fd)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl));
	fl.l_type = F_RDLCK;
	fl.l_whence = SEEK_SET;
	fl.l_start = (off_t)CACHE_INUSE_BYTE;
	fl.l_len = 1;
	return !fcntl(fd, F_OFD_SETLK, &fl);
}

static void test_inuse_lock_between_descriptions(void **state)
{
	struct fixture *fx = *state;
	struct cache_blob_files f, g;
	int ev, other;

	assert_int_equal(cache_blob_open(fx->c, HEX, 10 * CS, CS, &f), 0);
	assert_int_equal(cache_blob_open(fx->c, HEX, 10 * CS, CS, &g), 0);
	/* Two holders: neither can have it alone, nor can an evictor. */
	assert_int_equal(cache_blob_inuse_upgrade(f.lock_fd), -EAGAIN);
	ev = raw_lock_fd(fx);
	assert_int_equal(cache_blob_inuse_upgrade(ev), -EAGAIN);
	/* The failed upgrade kept f's shared lock. */
	cache_blob_files_close(&g);
	assert_int_equal(cache_blob_inuse_upgrade(ev), -EAGAIN);
	/* Alone now: f upgrades, and then nobody else can share. */
	assert_int_equal(cache_blob_inuse_upgrade(f.lock_fd), 0);
	other = raw_lock_fd(fx);
	assert_false(can_share(other));
	assert_int_equal(cache_blob_inuse_upgrade(ev), -EAGAIN);
	assert_int_equal(cache_blob_inuse_downgrade(f.lock_fd), 0);
	assert_true(can_share(other));
	close(other);
	/* The chunk lock bytes are not disturbed by the in-use byte. */
	assert_int_equal(cache_chunk_trylock(ev, 3), 0);
	assert_int_equal(cache_chunk_trylock(f.lock_fd, 3), -EAGAIN);
	/* Closing releases: the evictor gets it. */
	cache_blob_files_close(&f);
	assert_int_equal(cache_blob_inuse_upgrade(ev), 0);
	close(ev);
}

static void test_blob_open_touches_lock(void **state)
{
	struct fixture *fx = *state;
	struct timespec old[2] = { { 1000, 0 }, { 1000, 0 } };
	struct cache_blob_files f;
	char path[PATH_MAX];
	struct stat st;

	assert_int_equal(cache_blob_open(fx->c, HEX, 10 * CS, CS, &f), 0);
	cache_blob_files_close(&f);
	assert_int_equal(
		cache_blob_path(fx->c, HEX, ".lock", path, sizeof(path)), 0);
	assert_int_equal(utimensat(AT_FDCWD, path, old, 0), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mtime, 1000);
	assert_int_equal(cache_blob_open(fx->c, HEX, 10 * CS, CS, &f), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_mtime > time(NULL) - 60);
	assert_int_equal(utimensat(AT_FDCWD, path, old, 0), 0);
	assert_int_equal(cache_blob_touch(f.lock_fd), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(st.st_mtime > time(NULL) - 60);
	cache_blob_files_close(&f);
}

/*
 * An evictor holds the in-use byte exclusively and unlinks the blob: an
 * opener waits, then sees its lock file was unlinked and starts over on
 * new files, never on the evicted ones.
 */
static void test_blob_open_waits_for_evictor(void **state)
{
	struct fixture *fx = *state;
	struct cache_blob_files f;
	char data[PATH_MAX], sums[PATH_MAX], lock[PATH_MAX];
	int ev, status;
	struct stat st;
	pid_t pid;

	assert_int_equal(cache_blob_open(fx->c, HEX, 10 * CS, CS, &f), 0);
	assert_int_equal(pwrite_all(f.data_fd, "old", 3, 0), 0);
	cache_blob_files_close(&f);
	assert_int_equal(cache_blob_path(fx->c, HEX, "", data, sizeof(data)),
			 0);
	assert_int_equal(
		cache_blob_path(fx->c, HEX, ".sums", sums, sizeof(sums)), 0);
	assert_int_equal(
		cache_blob_path(fx->c, HEX, ".lock", lock, sizeof(lock)), 0);
	ev = raw_lock_fd(fx);
	assert_int_equal(cache_blob_inuse_upgrade(ev), 0);
	assert_int_equal(fstat(ev, &st), 0);

	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		struct cache_blob_files g;
		struct stat cst;
		char buf[3];

		/* The evictor's description is the parent's alone. */
		close(ev);
		/* Blocks until the evictor is done. */
		CHILD_CHECK(!cache_blob_open(fx->c, HEX, 10 * CS, CS, &g));
		CHILD_CHECK(!fstat(g.lock_fd, &cst));
		/* (Its inode number may be the old one's, reused.) */
		CHILD_CHECK(cst.st_nlink == 1);
		CHILD_CHECK(g.data_short);
		CHILD_CHECK(!pread_all(g.data_fd, buf, 3, 0));
		CHILD_CHECK(!memcmp(buf, "\0\0\0", 3));
		cache_blob_files_close(&g);
		_exit(0);
	}
	usleep(200 * 1000); /* the child is waiting on the lock by now */
	assert_int_equal(unlink(data), 0);
	assert_int_equal(unlink(sums), 0);
	assert_int_equal(unlink(lock), 0);
	close(ev);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_pread_pwrite_all(void **state)
{
	struct fixture *fx = *state;
	char path[PATH_MAX + 16], buf[8];
	int fd;

	snprintf(path, sizeof(path), "%s/f", fx->dir);
	fd = open(path, O_RDWR | O_CREAT, 0600);
	assert_true(fd >= 0);
	assert_int_equal(pwrite_all(fd, "abcdefgh", 8, 5 * GIB), 0);
	assert_int_equal(pread_all(fd, buf, 8, 5 * GIB), 0);
	assert_memory_equal(buf, "abcdefgh", 8);
	assert_int_equal(pread_all(fd, buf, 8, 5 * GIB + 1), -EIO);
	assert_int_equal(pread_all(fd, buf, 0, 0), 0);
	assert_int_equal(pwrite_all(fd, buf, 1, 1ull << 63), -EFBIG);
	assert_int_equal(pread_all(fd, buf, 1, 1ull << 63), -EINVAL);
	assert_int_equal(pwrite_all(-1, buf, 1, 0), -EBADF);
	assert_int_equal(pread_all(-1, buf, 1, 0), -EBADF);
	close(fd);
	fd = open(path, O_RDONLY);
	assert_int_equal(pwrite_all(fd, buf, 1, 0), -EBADF);
	close(fd);
}

static void test_write_file_atomic(void **state)
{
	struct fixture *fx = *state;
	char path[PATH_MAX + 16], buf[16];
	int fd;

	snprintf(path, sizeof(path), "%s/f", fx->dir);
	assert_int_equal(write_file_atomic(path, "first", 5), 0);
	assert_int_equal(write_file_atomic(path, "second", 6), 0);
	fd = open(path, O_RDONLY);
	assert_int_equal(read(fd, buf, sizeof(buf)), 6);
	assert_memory_equal(buf, "second", 6);
	close(fd);
	assert_int_equal(count_tmp(fx->dir), 0);
	snprintf(path, sizeof(path), "%s/no/f", fx->dir);
	assert_int_equal(write_file_atomic(path, "x", 1), -ENOENT);
	/* Relative path: the folder to fsync is ".". */
	assert_int_equal(chdir(fx->dir), 0);
	assert_int_equal(write_file_atomic("rel", "x", 1), 0);
	assert_int_equal(chdir("/"), 0);
	assert_int_equal(count_tmp(fx->dir), 0);
}

static struct manifest *mk_manifest(void)
{
	struct manifest *m = NULL;

	assert_int_equal(manifest_new(&m), 0);
	assert_int_equal(manifest_add(m, "a/b.bin", MENTRY_FILE, 5 * GIB, 7,
				      "abc", "sha256", NULL),
			 0);
	assert_int_equal(manifest_add(m, "c", MENTRY_FILE, 1, 8, NULL, NULL,
				      "https://x/c"),
			 0);
	assert_int_equal(manifest_finish(m), 0);
	m->source = strdup("hf://org/model");
	m->version = strdup("0123abcd");
	return m;
}

static void test_manifest_save_load(void **state)
{
	struct fixture *fx = *state;
	struct manifest *m = mk_manifest(), *back = (void *)1;
	uint64_t idx;

	assert_int_equal(cache_load_manifest(fx->c, "hf://org/model", "v1",
					     &back),
			 -ENOENT);
	assert_null(back);
	assert_int_equal(cache_save_manifest(fx->c, "hf://org/model", "v1", m),
			 0);
	assert_int_equal(
		cache_load_manifest(fx->c, "hf://org/model", "v1", &back), 0);
	assert_int_equal(manifest_find(back, "a/b.bin", &idx), 0);
	assert_int_equal(back->entries[idx].size, 5 * GIB);
	assert_string_equal(back->source, "hf://org/model");
	assert_int_equal(manifest_file_count(back), 2);
	manifest_free(back);
	/* Another key or version is another file. */
	assert_int_equal(cache_load_manifest(fx->c, "hf://org/other", "v1",
					     &back),
			 -ENOENT);
	assert_int_equal(cache_load_manifest(fx->c, "hf://org/model", "v2",
					     &back),
			 -ENOENT);
	manifest_free(m);
}

static void test_manifest_load_corrupt(void **state)
{
	struct fixture *fx = *state;
	struct manifest *m = mk_manifest(), *back = (void *)1;
	char path[PATH_MAX + 64];
	DIR *d;
	struct dirent *de;

	assert_int_equal(cache_save_manifest(fx->c, "k", "v", m), 0);
	manifest_free(m);
	/* Find the one file under snapshots/KEY/ and spoil it. */
	snprintf(path, sizeof(path), "%s/snapshots", fx->cdir);
	d = opendir(path);
	assert_non_null(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			break;
	assert_non_null(de);
	snprintf(path, sizeof(path), "%s/snapshots/%s/v.json", fx->cdir,
		 de->d_name);
	closedir(d);
	write_bytes(path, "{\"format\": 1, \"entries\": [", 26);
	assert_int_equal(cache_load_manifest(fx->c, "k", "v", &back), -EBADMSG);
	assert_null(back);
	write_bytes(path, "", 0);
	assert_int_equal(cache_load_manifest(fx->c, "k", "v", &back), -EBADMSG);
	/* A folder where the file should be. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(cache_load_manifest(fx->c, "k", "v", &back), -EISDIR);
}

static void test_manifest_bad_names(void **state)
{
	struct fixture *fx = *state;
	struct manifest *m = mk_manifest(), *back = NULL;
	char longv[300];

	assert_int_equal(cache_save_manifest(fx->c, "", "v", m), -EINVAL);
	assert_int_equal(cache_save_manifest(fx->c, "k", "", m), -EINVAL);
	assert_int_equal(cache_save_manifest(fx->c, "k", NULL, m), -EINVAL);
	memset(longv, 'v', sizeof(longv) - 1);
	longv[sizeof(longv) - 1] = 0;
	assert_int_equal(cache_save_manifest(fx->c, "k", longv, m),
			 -ENAMETOOLONG);
	/* Escaped, not interpreted: these stay inside snapshots/KEY/. */
	assert_int_equal(cache_save_manifest(fx->c, "k", "../../x", m), 0);
	assert_int_equal(cache_save_manifest(fx->c, "k", "..", m), 0);
	assert_int_equal(cache_save_manifest(fx->c, "k", "feat/a b", m), 0);
	assert_int_equal(cache_load_manifest(fx->c, "k", "../../x", &back), 0);
	manifest_free(back);
	assert_int_equal(cache_load_manifest(fx->c, "k", "..", &back), 0);
	manifest_free(back);
	{
		char path[PATH_MAX + 16];

		snprintf(path, sizeof(path), "%s/x.json", fx->dir);
		assert_int_equal(access(path, F_OK), -1);
		snprintf(path, sizeof(path), "%s/snapshots/x.json", fx->cdir);
		assert_int_equal(access(path, F_OK), -1);
	}
	manifest_free(m);
}

static void test_manifest_save_unwritable(void **state)
{
	struct fixture *fx = *state;
	struct manifest *m = mk_manifest();
	char path[PATH_MAX + 16];

	/* snapshots/ replaced by a file: the cache holds the folder it
	 * opened, now removed, so the KEY folder cannot be made in it (and
	 * nothing is written through the new name). */
	snprintf(path, sizeof(path), "%s/snapshots", fx->cdir);
	assert_int_equal(rmdir(path), 0);
	write_bytes(path, "x", 1);
	assert_int_equal(cache_save_manifest(fx->c, "k", "v", m), -ENOENT);
	manifest_free(m);
}

static void test_refs(void **state)
{
	struct fixture *fx = *state;
	char *commit = (void *)1;

	assert_int_equal(cache_load_ref(fx->c, "hf://o/m", "main", &commit),
			 -ENOENT);
	assert_null(commit);
	assert_int_equal(cache_save_ref(fx->c, "hf://o/m", "main", "abc123"),
			 0);
	assert_int_equal(cache_load_ref(fx->c, "hf://o/m", "main", &commit), 0);
	assert_string_equal(commit, "abc123");
	free(commit);
	assert_int_equal(cache_save_ref(fx->c, "hf://o/m", "main", "def456"),
			 0);
	assert_int_equal(cache_load_ref(fx->c, "hf://o/m", "main", &commit), 0);
	assert_string_equal(commit, "def456");
	free(commit);
	/* A ref with a slash and "..": escaped. */
	assert_int_equal(cache_save_ref(fx->c, "hf://o/m", "refs/pr/1", "a"),
			 0);
	assert_int_equal(cache_save_ref(fx->c, "hf://o/m", "..", "b"), 0);
	assert_int_equal(
		cache_load_ref(fx->c, "hf://o/m", "refs/pr/1", &commit), 0);
	assert_string_equal(commit, "a");
	free(commit);
	assert_int_equal(cache_load_ref(fx->c, "hf://o/m", "..", &commit), 0);
	assert_string_equal(commit, "b");
	free(commit);
	assert_int_equal(cache_load_ref(fx->c, "hf://o/other", "main", &commit),
			 -ENOENT);
	assert_int_equal(cache_save_ref(fx->c, "k", "main", "a\nb"), -EINVAL);
	assert_int_equal(cache_save_ref(fx->c, "k", "main", ""), -EINVAL);
	assert_int_equal(cache_save_ref(fx->c, "k", "main", NULL), -EINVAL);
	assert_int_equal(cache_save_ref(fx->c, "k", "", "a"), -EINVAL);
	assert_int_equal(cache_save_ref(fx->c, "", "main", "a"), -EINVAL);
}

/* The path of the ref file for ("k", "main"), found on disk. */
static void ref_path(struct fixture *fx, char *out, size_t outlen)
{
	char dir[PATH_MAX + 16];
	struct dirent *de;
	DIR *d;

	assert_int_equal(cache_save_ref(fx->c, "k", "main", "abc"), 0);
	snprintf(dir, sizeof(dir), "%s/refs", fx->cdir);
	d = opendir(dir);
	assert_non_null(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			break;
	assert_non_null(de);
	snprintf(out, outlen, "%s/%s/main", dir, de->d_name);
	closedir(d);
}

static void test_ref_corrupt(void **state)
{
	struct fixture *fx = *state;
	char path[PATH_MAX * 2];
	char *commit = (void *)1;
	static char big[5000];

	ref_path(fx, path, sizeof(path));
	write_bytes(path, "", 0);
	assert_int_equal(cache_load_ref(fx->c, "k", "main", &commit), -EBADMSG);
	assert_null(commit);
	write_bytes(path, "\n", 1);
	assert_int_equal(cache_load_ref(fx->c, "k", "main", &commit), -EBADMSG);
	write_bytes(path, "a\nb\n", 4);
	assert_int_equal(cache_load_ref(fx->c, "k", "main", &commit), -EBADMSG);
	write_bytes(path, "a\0b\n", 4);
	assert_int_equal(cache_load_ref(fx->c, "k", "main", &commit), -EBADMSG);
	memset(big, 'a', sizeof(big));
	write_bytes(path, big, sizeof(big));
	assert_int_equal(cache_load_ref(fx->c, "k", "main", &commit), -EBADMSG);
	/* Without the newline is fine (written by hand). */
	write_bytes(path, "abc", 3);
	assert_int_equal(cache_load_ref(fx->c, "k", "main", &commit), 0);
	assert_string_equal(commit, "abc");
	free(commit);
}

static mode_t mode_of(const char *path)
{
	struct stat st;

	assert_int_equal(lstat(path, &st), 0);
	return st.st_mode;
}

static mode_t walk_bad_mode; /* the first mode found that is not private */

static int check_private_one(const char *path, const struct stat *st, int flag,
			     struct FTW *ftw)
{
	mode_t want = S_ISDIR(st->st_mode) ? 0700 : 0600;

	if (S_ISLNK(st->st_mode) || (st->st_mode & 07777) != want) {
		print_message("not private: %s (%04o)\n", path,
			      (unsigned int)(st->st_mode & 07777));
		walk_bad_mode = st->st_mode;
	}
	return 0;
}

/* Everything the cache makes is private, whatever the umask. */
static void test_private_modes(void **state)
{
	struct fixture *fx = *state;
	struct cache_blob_files f;
	struct manifest *m = mk_manifest();
	mode_t old = umask(0);
	char *commit = NULL;

	assert_int_equal(cache_new(fx->cdir, &fx->c), 0);
	assert_int_equal(cache_blob_open(fx->c, HEX, 10 * CS, CS, &f), 0);
	cache_blob_files_close(&f);
	assert_int_equal(cache_save_manifest(fx->c, "hf://o/m", "abc", m), 0);
	assert_int_equal(cache_save_ref(fx->c, "hf://o/m", "main", "abc"), 0);
	assert_int_equal(cache_load_ref(fx->c, "hf://o/m", "main", &commit), 0);
	free(commit);
	umask(old);
	walk_bad_mode = 0;
	assert_int_equal(nftw(fx->cdir, check_private_one, 16, FTW_PHYS), 0);
	assert_int_equal(walk_bad_mode, 0);
	manifest_free(m);
}

/* An older cache readable by others is made private at open; the owner's
 * own bits are kept. */
static void test_tightens_old_modes(void **state)
{
	struct fixture *fx = *state;
	struct cache_blob_files f;
	char path[PATH_MAX + 64];

	assert_int_equal(cache_new(fx->cdir, &fx->c), 0);
	assert_int_equal(cache_blob_open(fx->c, HEX, 10 * CS, CS, &f), 0);
	cache_blob_files_close(&f);
	cache_free(fx->c);
	fx->c = NULL;
	snprintf(path, sizeof(path), "%s/blobs", fx->cdir);
	assert_int_equal(chmod(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/blobs/%.2s", fx->cdir, HEX);
	assert_int_equal(chmod(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/blobs/%.2s/%s", fx->cdir, HEX, HEX);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(cache_new(fx->cdir, &fx->c), 0);
	assert_int_equal(cache_blob_open(fx->c, HEX, 10 * CS, CS, &f), 0);
	cache_blob_files_close(&f);
	assert_int_equal(mode_of(path) & 07777, 0600);
	snprintf(path, sizeof(path), "%s/blobs/%.2s", fx->cdir, HEX);
	assert_int_equal(mode_of(path) & 07777, 0700);
	snprintf(path, sizeof(path), "%s/blobs", fx->cdir);
	assert_int_equal(mode_of(path) & 07777, 0700);
}

/* A cache folder another user could write is refused, saying why. */
static void test_refuses_cache_others_can_write(void **state)
{
	struct fixture *fx = *state;
	struct cache *c = (void *)1;
	char why[128];

	assert_int_equal(cache_check_private(fx->cdir, why, sizeof(why)), 0);
	assert_int_equal(mkdir(fx->cdir, 0700), 0);
	assert_int_equal(chmod(fx->cdir, 0777), 0);
	assert_int_equal(cache_check_private(fx->cdir, why, sizeof(why)),
			 -EPERM);
	assert_non_null(strstr(why, "mode 0777"));
	assert_int_equal(cache_new(fx->cdir, &c), -EPERM);
	assert_null(c);
	assert_int_equal(chmod(fx->cdir, 0770), 0); /* group-writable */
	assert_int_equal(cache_new(fx->cdir, &c), -EPERM);
	assert_int_equal(chmod(fx->cdir, 0755), 0); /* readable is fine */
	assert_int_equal(cache_check_private(fx->cdir, why, sizeof(why)), 0);
	assert_int_equal(cache_new(fx->cdir, &c), 0);
	cache_free(c);
	c = (void *)1;
	/* Another user's folder, even one only they can write. */
	assert_int_equal(chown(fx->cdir, 65534, 65534), 0);
	assert_int_equal(cache_check_private(fx->cdir, why, sizeof(why)),
			 -EPERM);
	assert_non_null(strstr(why, "owned by uid 65534"));
	assert_int_equal(cache_new(fx->cdir, &c), -EPERM);
	assert_null(c);
}

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		n += strcmp(de->d_name, ".") && strcmp(de->d_name, "..");
	closedir(d);
	return n;
}

struct victim {
	char path[PATH_MAX];
	struct stat st;
};

static void victim_make(struct victim *v, const char *dir, const char *name)
{
	static const char text[] = "outside the cache: never to be touched";

	snprintf(v->path, sizeof(v->path), "%s/%s", dir, name);
	write_bytes(v->path, text, sizeof(text));
	/* An old mtime, so that any write would show. */
	{
		struct timespec ts[2] = { { 1000000000, 0 },
					  { 1000000000, 0 } };

		assert_int_equal(utimensat(AT_FDCWD, v->path, ts, 0), 0);
	}
	assert_int_equal(stat(v->path, &v->st), 0);
}

static void victim_check(const struct victim *v)
{
	static const char text[] = "outside the cache: never to be touched";
	char buf[sizeof(text) + 8];
	struct stat st;
	ssize_t n;
	int fd;

	assert_int_equal(stat(v->path, &st), 0);
	assert_int_equal(st.st_size, v->st.st_size);
	assert_int_equal(st.st_mtim.tv_sec, v->st.st_mtim.tv_sec);
	assert_int_equal(st.st_mode, v->st.st_mode);
	fd = open(v->path, O_RDONLY);
	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf));
	close(fd);
	assert_int_equal(n, (ssize_t)sizeof(text));
	assert_memory_equal(buf, text, sizeof(text));
}

/* Links planted in place of a blob's files or its folder are removed,
 * never followed: their targets are untouched, and the blob opens. */
static void test_blob_open_never_follows_links(void **state)
{
	struct fixture *fx = *state;
	static const char *const suffixes[] = { "", ".sums", ".lock" };
	char path[PATH_MAX + 64], fan[PATH_MAX + 16];
	struct cache_blob_files f;
	struct victim v;
	size_t i;

	for (i = 0; i < 3; i++) {
		victim_make(&v, fx->dir, "victim");
		snprintf(fan, sizeof(fan), "%s/blobs/%.2s", fx->cdir, HEX);
		assert_int_equal(mkdir(fan, 0700) && errno != EEXIST, 0);
		snprintf(path, sizeof(path), "%s/%s%s", fan, HEX, suffixes[i]);
		unlink(path);
		assert_int_equal(symlink(v.path, path), 0);
		assert_int_equal(cache_blob_open(fx->c, HEX, 10 * CS, CS, &f),
				 0);
		assert_int_equal(fd_size(f.data_fd), 10 * CS);
		assert_int_equal(fd_size(f.sums_fd), 10 * 8);
		assert_true(S_ISREG(mode_of(path)));
		assert_int_equal(pwrite_all(f.data_fd, "x", 1, 0), 0);
		cache_blob_files_close(&f);
		victim_check(&v);
	}
	/* A dangling link would be created through by O_CREAT alone. */
	snprintf(path, sizeof(path), "%s/%s.sums", fan, HEX);
	unlink(path);
	snprintf(v.path, sizeof(v.path), "%s/created-through", fx->dir);
	assert_int_equal(symlink(v.path, path), 0);
	assert_int_equal(cache_blob_open(fx->c, HEX, 10 * CS, CS, &f), 0);
	cache_blob_files_close(&f);
	assert_int_equal(access(v.path, F_OK), -1);

	/* The fan-out folder a link to a folder outside. */
	victim_make(&v, fx->dir, "victim");
	snprintf(path, sizeof(path), "%s/outside", fx->dir);
	assert_int_equal(mkdir(path, 0700), 0);
	snprintf(path, sizeof(path), "%s/outside/%s", fx->dir, HEX);
	assert_int_equal(symlink(v.path, path), 0);
	assert_int_equal(nftw(fan, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
	snprintf(path, sizeof(path), "%s/outside", fx->dir);
	assert_int_equal(symlink(path, fan), 0);
	assert_int_equal(cache_blob_open(fx->c, HEX, 10 * CS, CS, &f), 0);
	assert_true(S_ISDIR(mode_of(fan)));
	assert_int_equal(pwrite_all(f.data_fd, "x", 1, 0), 0);
	cache_blob_files_close(&f);
	victim_check(&v);
	snprintf(path, sizeof(path), "%s/outside", fx->dir);
	assert_int_equal(count_entries(path), 1);
	/* A FIFO in place of the data file: refused, not hung on. */
	snprintf(path, sizeof(path), "%s/%s", fan, HEX);
	unlink(path);
	assert_int_equal(mkfifo(path, 0600), 0);
	assert_int_equal(cache_blob_open(fx->c, HEX, 10 * CS, CS, &f), -EINVAL);
}

/* The data file's binding and whether it was missing or short. */
static void test_blob_open_reports_data_file(void **state)
{
	struct fixture *fx = *state;
	struct cache_blob_files f;
	char path[PATH_MAX + 64];
	struct stat st;

	assert_int_equal(cache_blob_open(fx->c, HEX, 10 * CS, CS, &f), 0);
	assert_true(f.data_short); /* new */
	assert_int_equal(fstat(f.data_fd, &st), 0);
	assert_int_equal(f.data_ino, st.st_ino);
	assert_true(f.dir_fd >= 0);
	cache_blob_files_close(&f);
	assert_int_equal(f.dir_fd, -1);
	assert_int_equal(cache_blob_open(fx->c, HEX, 10 * CS, CS, &f), 0);
	assert_false(f.data_short);
	cache_blob_files_close(&f);
	snprintf(path, sizeof(path), "%s/blobs/%.2s/%s", fx->cdir, HEX, HEX);
	assert_int_equal(truncate(path, 3 * CS), 0);
	assert_int_equal(cache_blob_open(fx->c, HEX, 10 * CS, CS, &f), 0);
	assert_true(f.data_short);
	assert_int_equal(fd_size(f.data_fd), 10 * CS);
	cache_blob_files_close(&f);
	/* An empty file is never short. */
	assert_int_equal(cache_blob_open(fx->c, "00aa", 0, CS, &f), 0);
	assert_false(f.data_short);
	cache_blob_files_close(&f);
}

/* Manifests and refs: a planted link is never read through nor written
 * through. */
static void test_manifest_never_follows_links(void **state)
{
	struct fixture *fx = *state;
	struct manifest *m = mk_manifest(), *back = NULL;
	char dir[PATH_MAX + 64], path[PATH_MAX + 128];
	struct victim v;
	DIR *d;
	struct dirent *de;

	assert_int_equal(cache_save_manifest(fx->c, "k", "v1", m), 0);
	snprintf(dir, sizeof(dir), "%s/snapshots", fx->cdir);
	d = opendir(dir);
	assert_non_null(d);
	while ((de = readdir(d)) && de->d_name[0] == '.')
		;
	assert_non_null(de);
	snprintf(dir, sizeof(dir), "%s/snapshots/%s", fx->cdir, de->d_name);
	closedir(d);
	victim_make(&v, fx->dir, "victim");
	snprintf(path, sizeof(path), "%s/v1.json", dir);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(symlink(v.path, path), 0);
	assert_int_equal(cache_load_manifest(fx->c, "k", "v1", &back), -ELOOP);
	assert_null(back);
	assert_int_equal(cache_save_manifest(fx->c, "k", "v1", m), 0);
	victim_check(&v);
	assert_true(S_ISREG(mode_of(path)));
	assert_int_equal(cache_load_manifest(fx->c, "k", "v1", &back), 0);
	manifest_free(back);
	/* The KEY folder a link: replaced on save, nothing on load. */
	assert_int_equal(nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS), 0);
	assert_int_equal(symlink(fx->dir, dir), 0);
	assert_int_equal(cache_load_manifest(fx->c, "k", "v1", &back), -ENOENT);
	assert_int_equal(cache_save_manifest(fx->c, "k", "v1", m), 0);
	assert_true(S_ISDIR(mode_of(dir)));
	snprintf(path, sizeof(path), "%s/v1.json", fx->dir);
	assert_int_equal(access(path, F_OK), -1);
	manifest_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
#define TO(fn) cmocka_unit_test_setup_teardown(fn, fx_setup_open, fx_teardown)
		T(test_resolve_dir_option),
		T(test_resolve_dir_xdg),
		T(test_resolve_dir_home_and_root),
		T(test_open_creates_layout),
		T(test_open_rejects_bad_args),
		T(test_open_under_a_file),
		T(test_open_layout_entry_is_a_file),
		T(test_open_in_proc_fails),
		T(test_open_unwritable),
		T(test_identity),
		TO(test_blob_path),
		TO(test_blob_open_sizes_sparse),
		TO(test_blob_open_keeps_bytes),
		TO(test_blob_open_cuts_oversized),
		TO(test_blob_open_errors_leave_no_fd),
		TO(test_blob_open_subdir_is_a_file),
		TO(test_sums_write_and_clear),
		TO(test_sums_clear_without_punch_hole),
		T(test_chunk_sum),
		TO(test_chunk_check),
		TO(test_locks_between_descriptions),
		TO(test_two_processes_share_a_blob),
		TO(test_inuse_lock_between_descriptions),
		TO(test_blob_open_touches_lock),
		TO(test_blob_open_waits_for_evictor),
		T(test_pread_pwrite_all),
		T(test_write_file_atomic),
		TO(test_manifest_save_load),
		TO(test_manifest_load_corrupt),
		TO(test_manifest_bad_names),
		TO(test_manifest_save_unwritable),
		TO(test_refs),
		TO(test_ref_corrupt),
		T(test_private_modes),
		T(test_tightens_old_modes),
		T(test_refuses_cache_others_can_write),
		TO(test_blob_open_never_follows_links),
		TO(test_blob_open_reports_data_file),
		TO(test_manifest_never_follows_links),
#undef T
#undef TO
	};

	return cmocka_run_group_tests_name("cache", tests, NULL, NULL);
}
