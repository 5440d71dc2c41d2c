/*
 * test_evict.c: cache usage, the LRU list, evicting a blob under its
 * in-use lock (and the order its files go in), pruning to a size, and
 * removing orphans, stale temporary files and unreferenced snapshots
 * (state/evict.c), in a temporary cache.
 *
 * "Another process" is another open file description of a blob's lock
 * file (OFD locks belong to the description, not the process). Built with
 * -Wl,--wrap=unlinkat (tests/unit/meson.build): the wrapper records the
 * order of the unlinks and can fail one, a crash between two of them.
 */
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <xxhash.h>

#include "state/blob.h"
#include "state/cache.h"
#include "state/evict.h"
#include "state/hlog.h"
#include "state/manifest.h"

#define KIB (1ull << 10)
#define MIB (1ull << 20)
#define CS (64 * KIB)

int __real_unlinkat(int dirfd, const char *name, int flags);
int __wrap_unlinkat(int dirfd, const char *name, int flags);

static char unlinked[32][96]; /* names, in order */
static int nunlinked;
static const char *fail_unlink_suffix; /* fail the one ending so: EIO */

int __wrap_unlinkat(int dirfd, const char *name, int flags)
{
	size_t n = strlen(name);

	if (fail_unlink_suffix && n >= strlen(fail_unlink_suffix) &&
	    !strcmp(name + n - strlen(fail_unlink_suffix),
		    fail_unlink_suffix) &&
	    (fail_unlink_suffix[0] || !strchr(name, '.'))) {
		errno = EIO;
		return -1;
	}
	if (nunlinked < 32)
		snprintf(unlinked[nunlinked++], sizeof(unlinked[0]), "%s",
			 name);
	return __real_unlinkat(dirfd, name, flags);
}

struct fixture {
	char dir[1024];
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
	snprintf(fx->dir, sizeof(fx->dir), "%s/test_evict.XXXXXX",
		 tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(fx->dir));
	assert_int_equal(cache_new(fx->dir, &fx->c), 0);
	hlog_set_sink(NULL, false);
	nunlinked = 0;
	fail_unlink_suffix = NULL;
	*state = fx;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fixture *fx = *state;

	fail_unlink_suffix = NULL;
	cache_free(fx->c);
	nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

/* A blob of size bytes named by id, its first len bytes complete and
 * saved; left open when keep (else NULL is returned). */
static struct blob *mk_blob(struct fixture *fx, const char *id, uint64_t size,
			    uint64_t len, bool keep, char hex[33])
{
	static uint8_t buf[CS];
	struct blob *b = NULL;
	uint64_t i, off, clen;

	assert_int_equal(blob_open(fx->c, "http", id, size, CS, &b), 0);
	strcpy(hex, b->hex);
	for (i = 0; i * CS < len; i++) {
		chunkmap_chunk_range(b->map, i, &off, &clen);
		memset(buf, (int)(i + 1), clen);
		assert_int_equal(pwrite_all(b->files.data_fd, buf, clen, off),
				 0);
		assert_int_equal(cache_sums_write(b->files.sums_fd, i,
						  cache_chunk_sum(buf, clen)),
				 0);
		chunkmap_set(b->map, i, CHUNK_DONE);
	}
	assert_int_equal(blob_save(b), 0);
	if (keep)
		return b;
	blob_free(b);
	return NULL;
}

static void blob_file(struct fixture *fx, const char *hex, const char *suffix,
		      char *path, size_t len)
{
	assert_int_equal(cache_blob_path(fx->c, hex, suffix, path, len), 0);
}

static bool exists(struct fixture *fx, const char *hex, const char *suffix)
{
	char path[PATH_MAX];
	struct stat st;

	blob_file(fx, hex, suffix, path, sizeof(path));
	return !lstat(path, &st);
}

/* Sets the mtime (and atime) of a blob's file to t seconds. */
static void set_mtime(struct fixture *fx, const char *hex, const char *suffix,
		      time_t t)
{
	struct timespec ts[2] = { { t, 0 }, { t, 0 } };
	char path[PATH_MAX];

	blob_file(fx, hex, suffix, path, sizeof(path));
	assert_int_equal(utimensat(AT_FDCWD, path, ts, AT_SYMLINK_NOFOLLOW), 0);
}

static void touch_file(const char *path, time_t t)
{
	struct timespec ts[2] = { { t, 0 }, { t, 0 } };
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "x", 1), 1);
	close(fd);
	if (t)
		assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static void test_usage(void **state)
{
	struct fixture *fx = *state;
	struct cache_usage u;
	char a[33], b[33];
	struct blob *open_b;

	assert_int_equal(cache_usage(fx->c, &u), 0);
	assert_int_equal(u.bytes, 0);
	assert_int_equal(u.blobs, 0);
	assert_true(u.fs_size > 0);
	assert_true(u.fs_free <= u.fs_size);
	assert_int_equal(cache_min_free_default(&u), u.fs_size / 20);

	/* 64 MiB apparent, 256 KiB written: allocated bytes count. */
	mk_blob(fx, "a", 64 * MIB, 256 * KIB, false, a);
	open_b = mk_blob(fx, "b", 10 * CS, 10 * CS, true, b);
	assert_int_equal(cache_usage(fx->c, &u), 0);
	printf("usage: %llu bytes in %llu files, %llu blobs\n",
	       (unsigned long long)u.bytes, (unsigned long long)u.files,
	       (unsigned long long)u.blobs);
	assert_int_equal(u.blobs, 2);
	assert_int_equal(u.files, 8); /* data, sums, lock, state each */
	assert_true(u.bytes >= 256 * KIB + 10 * CS);
	assert_true(u.bytes < 4 * MIB);
	blob_free(open_b);
}

static void test_target(void **state)
{
	struct cache_usage u = { .bytes = 1000,
				 .fs_size = 10000,
				 .fs_free = 300 };

	(void)state;
	assert_int_equal(evict_target(&u, 0, 0), 1000);
	assert_int_equal(evict_target(&u, 600, 0), 600);
	assert_int_equal(evict_target(&u, 0, 500), 800); /* 200 short */
	assert_int_equal(evict_target(&u, 700, 500), 700);
	assert_int_equal(evict_target(&u, 900, 2000), 0);
	assert_int_equal(evict_target(&u, 5000, 0), 1000);
}

static void test_list_lru(void **state)
{
	struct fixture *fx = *state;
	struct evict_entry *v = NULL;
	char a[33], b[33], c[33], path[PATH_MAX], lpath[PATH_MAX + 8];
	size_t n = 0;

	mk_blob(fx, "a", 4 * CS, 4 * CS, false, a);
	mk_blob(fx, "b", 2 * CS, 2 * CS, false, b);
	mk_blob(fx, "c", 2 * CS, CS, false, c);
	set_mtime(fx, a, ".lock", 3000);
	set_mtime(fx, b, ".lock", 1000);
	/* c has no lock file: its data file's mtime counts. */
	blob_file(fx, c, ".lock", path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	set_mtime(fx, c, "", 2000);
	blob_file(fx, a, "", path, sizeof(path));
	snprintf(lpath, sizeof(lpath), "%s/export", fx->dir);
	assert_int_equal(link(path, lpath), 0);

	assert_int_equal(evict_list(fx->c, &v, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].hex, b);
	assert_string_equal(v[1].hex, c);
	assert_string_equal(v[2].hex, a);
	assert_true(v[0].last_used_ns == 1000 * 1000000000ll);
	assert_true(v[1].last_used_ns == 2000 * 1000000000ll);
	assert_int_equal(v[2].nlink, 2);
	assert_int_equal(v[0].nlink, 1);
	assert_true(v[2].bytes >= 4 * CS);
	assert_true(v[0].bytes >= 2 * CS && v[0].bytes < v[2].bytes);
	free(v);
}

/* Opens the lock file of hex with a description of its own. */
static int lock_desc(struct fixture *fx, const char *hex)
{
	char path[PATH_MAX];
	int fd;

	blob_file(fx, hex, ".lock", path, sizeof(path));
	fd = open(path, O_RDWR | O_CLOEXEC);
	assert_true(fd >= 0);
	return fd;
}

static void test_evict_blob(void **state)
{
	struct fixture *fx = *state;
	char a[33], path[PATH_MAX];
	struct blob *b;
	uint64_t freed = 0, freed_dry = 0;
	int ev;

	b = mk_blob(fx, "a", 8 * CS, 8 * CS, true, a);
	blob_file(fx, a, ".verified", path, sizeof(path));
	touch_file(path, 0);
	/* Open by "another process": busy, nothing removed. */
	assert_int_equal(evict_blob(fx->c, a, false, &freed), -EBUSY);
	assert_true(exists(fx, a, ".state"));
	blob_free(b);
	/* An evictor elsewhere holds it: busy too. */
	ev = lock_desc(fx, a);
	assert_int_equal(cache_blob_inuse_upgrade(ev), 0);
	assert_int_equal(evict_blob(fx->c, a, false, &freed), -EBUSY);
	close(ev);

	nunlinked = 0;
	assert_int_equal(evict_blob(fx->c, a, true, &freed_dry), 0);
	assert_true(freed_dry >= 8 * CS);
	assert_true(exists(fx, a, "") && exists(fx, a, ".state"));
	assert_int_equal(nunlinked, 0);

	nunlinked = 0;
	assert_int_equal(evict_blob(fx->c, a, false, &freed), 0);
	assert_int_equal(freed, freed_dry);
	assert_int_equal(nunlinked, 5);
	/* The sidecar first, the lock file last. */
	assert_true(strstr(unlinked[0], ".state") != NULL);
	assert_true(strstr(unlinked[1], ".verified") != NULL);
	assert_string_equal(unlinked[2], a);
	assert_true(strstr(unlinked[3], ".sums") != NULL);
	assert_true(strstr(unlinked[4], ".lock") != NULL);
	assert_false(exists(fx, a, "") || exists(fx, a, ".state") ||
		     exists(fx, a, ".sums") || exists(fx, a, ".lock") ||
		     exists(fx, a, ".verified"));
	assert_int_equal(evict_blob(fx->c, a, false, &freed), -ENOENT);
	assert_int_equal(evict_blob(fx->c, "xyz", false, &freed), -EINVAL);

	/* A blob opened again starts from nothing. */
	assert_int_equal(blob_open(fx->c, "http", "a", 8 * CS, CS, &b), 0);
	assert_int_equal(chunkmap_done_count(b->map), 0);
	blob_free(b);
}

/* A crash between two unlinks (one fails): the sidecar is gone before
 * the data, so nothing left is trusted for more than its sums prove. */
static void test_evict_crash_order(void **state)
{
	struct fixture *fx = *state;
	char a[33], path[PATH_MAX];
	struct blob *b;
	uint64_t freed;
	bool done = true;
	int fd;

	mk_blob(fx, "a", 8 * CS, 8 * CS, false, a);
	/* Spoil chunk 0's bytes: only the sidecar would vouch for them. */
	blob_file(fx, a, "", path, sizeof(path));
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "zz", 2, 0), 2);
	close(fd);
	fail_unlink_suffix = ""; /* the data file */
	assert_int_equal(evict_blob(fx->c, a, false, &freed), -EIO);
	fail_unlink_suffix = NULL;
	assert_false(exists(fx, a, ".state"));
	assert_true(exists(fx, a, ""));
	assert_true(exists(fx, a, ".sums") && exists(fx, a, ".lock"));
	assert_int_equal(blob_open(fx->c, "http", "a", 8 * CS, CS, &b), 0);
	assert_int_equal(chunkmap_done_count(b->map), 0);
	assert_int_equal(blob_probe_chunk(b, 0, &done), 0);
	assert_false(done); /* its sums entry does not match */
	assert_int_equal(blob_probe_chunk(b, 1, &done), 0);
	assert_true(done); /* proven by its sums: may be adopted */
	blob_free(b);
}

static void test_evict_hard_linked_and_no_lock(void **state)
{
	struct fixture *fx = *state;
	char a[33], c[33], path[PATH_MAX], lpath[PATH_MAX + 8];
	uint64_t freed = 0;
	struct stat st;

	mk_blob(fx, "a", 16 * CS, 16 * CS, false, a);
	blob_file(fx, a, "", path, sizeof(path));
	snprintf(lpath, sizeof(lpath), "%s/export", fx->dir);
	assert_int_equal(link(path, lpath), 0);
	assert_int_equal(evict_blob(fx->c, a, false, &freed), 0);
	assert_false(exists(fx, a, ""));
	/* The export keeps its bytes; they were not freed. */
	assert_int_equal(stat(lpath, &st), 0);
	assert_int_equal(st.st_nlink, 1);
	assert_true((uint64_t)st.st_blocks * 512 >= 16 * CS);
	assert_true(freed < 16 * CS);

	/* No lock file: evicted under one made for it, which goes too. */
	mk_blob(fx, "c", 4 * CS, 4 * CS, false, c);
	blob_file(fx, c, ".lock", path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	assert_int_equal(evict_blob(fx->c, c, true, &freed), 0);
	assert_false(exists(fx, c, ".lock")); /* a dry run makes nothing */
	assert_int_equal(evict_blob(fx->c, c, false, &freed), 0);
	assert_true(freed >= 4 * CS);
	assert_false(exists(fx, c, "") || exists(fx, c, ".lock") ||
		     exists(fx, c, ".state") || exists(fx, c, ".sums"));
}

static bool skip_hex(void *arg, const char *hex)
{
	return !strcmp(arg, hex);
}

static void test_evict_to(void **state)
{
	struct fixture *fx = *state;
	char h[5][33];
	struct evict_result r;
	struct cache_usage u, u2;
	struct blob *busy;
	int i;

	for (i = 0; i < 4; i++) {
		char id[8];

		snprintf(id, sizeof(id), "f%d", i);
		mk_blob(fx, id, 4 * CS, 4 * CS, false, h[i]);
		set_mtime(fx, h[i], ".lock", 1000 + i);
	}
	/* h[0], the oldest, is open; h[1] the caller keeps. */
	busy = mk_blob(fx, "f0", 4 * CS, 4 * CS, true, h[4]);
	set_mtime(fx, h[0], ".lock", 1000);
	assert_int_equal(cache_usage(fx->c, &u), 0);

	/* Target: one blob's worth less. A dry run says, removes nothing. */
	memset(&r, 0, sizeof(r));
	assert_int_equal(evict_to(fx->c, u.bytes - 1, skip_hex, h[1], true, &r),
			 0);
	assert_int_equal(r.blobs.n, 1);
	assert_int_equal(r.busy.n, 1);
	assert_int_equal(r.skipped, 1);
	assert_true(exists(fx, h[2], ".state"));

	memset(&r, 0, sizeof(r));
	assert_int_equal(
		evict_to(fx->c, u.bytes - 1, skip_hex, h[1], false, &r), 0);
	assert_int_equal(r.blobs.n, 1);
	assert_int_equal(r.busy.n, 1);
	assert_int_equal(r.skipped, 1);
	assert_false(exists(fx, h[2], ""));
	assert_true(exists(fx, h[0], "") && exists(fx, h[1], "") &&
		    exists(fx, h[3], ""));
	assert_int_equal(cache_usage(fx->c, &u2), 0);
	assert_int_equal(u2.bytes, u.bytes - r.blobs.bytes);
	assert_int_equal(r.disk_bytes, r.blobs.bytes);

	/* To 0: everything not busy goes. */
	memset(&r, 0, sizeof(r));
	assert_int_equal(evict_to(fx->c, 0, NULL, NULL, false, &r), 0);
	assert_int_equal(r.blobs.n, 2);
	assert_int_equal(r.busy.n, 1);
	assert_int_equal(cache_usage(fx->c, &u2), 0);
	assert_int_equal(u2.blobs, 1);
	blob_free(busy);

	/* Already under the target: nothing. */
	memset(&r, 0, sizeof(r));
	assert_int_equal(evict_to(fx->c, u2.bytes, NULL, NULL, false, &r), 0);
	assert_int_equal(r.blobs.n + r.busy.n, 0);
}

static struct manifest *mk_manifest(const char *version)
{
	struct manifest *m = NULL;

	assert_int_equal(manifest_new(&m), 0);
	assert_int_equal(manifest_add(m, "c", MENTRY_FILE, 1, 8, NULL, NULL,
				      "https://x/c"),
			 0);
	assert_int_equal(manifest_finish(m), 0);
	m->source = strdup("hf://org/model");
	m->version = strdup(version);
	return m;
}

static void save_snapshot(struct fixture *fx, const char *key,
			  const char *version, time_t t)
{
	struct manifest *m = mk_manifest(version);
	char path[PATH_MAX], esc[256];
	struct timespec ts[2] = { { t, 0 }, { t, 0 } };
	XXH128_canonical_t canon;
	char khex[33];

	assert_int_equal(cache_save_manifest(fx->c, key, version, m), 0);
	manifest_free(m);
	/* Where cache.c puts it: snapshots/xxh128(key)/VERSION.json. */
	assert_int_equal(cache_escape_name(version, esc, sizeof(esc)), 0);
	XXH128_canonicalFromHash(&canon, XXH3_128bits(key, strlen(key)));
	cache_identity_hex(canon.digest, khex);
	snprintf(path, sizeof(path), "%s/snapshots/%s/%s.json", fx->dir, khex,
		 esc);
	assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

static bool has_snapshot(struct fixture *fx, const char *key,
			 const char *version)
{
	struct manifest *m = NULL;
	int err = cache_load_manifest(fx->c, key, version, &m);

	manifest_free(m);
	return !err;
}

static void test_clean_orphans(void **state)
{
	struct fixture *fx = *state;
	char a[33], o[33], p[33], path[PATH_MAX], tmp_old[PATH_MAX + 32],
		tmp_new[PATH_MAX + 32];
	struct evict_result r;
	time_t old = time(NULL) - 3600;
	int holder;

	mk_blob(fx, "a", 4 * CS, 4 * CS, false, a); /* whole: stays */
	/* o: sidecar, sums, lock, marker, no data file. */
	mk_blob(fx, "o", 4 * CS, 4 * CS, false, o);
	blob_file(fx, o, ".verified", path, sizeof(path));
	touch_file(path, 0);
	blob_file(fx, o, "", path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	/* p: being made right now by "another process": holds the lock
	 * shared before its data file exists. */
	mk_blob(fx, "p", 4 * CS, 4 * CS, false, p);
	blob_file(fx, p, "", path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	holder = lock_desc(fx, p);
	{
		struct flock fl;

		memset(&fl, 0, sizeof(fl));
		fl.l_type = F_RDLCK;
		fl.l_whence = SEEK_SET;
		fl.l_start = (off_t)CACHE_INUSE_BYTE;
		fl.l_len = 1;
		assert_int_equal(fcntl(holder, F_OFD_SETLK, &fl), 0);
	}
	/* Temporary files: one stale, one being written. */
	blob_file(fx, a, ".state.tmp.00000000000000aa", tmp_old,
		  sizeof(tmp_old));
	touch_file(tmp_old, old);
	blob_file(fx, a, ".state.tmp.00000000000000bb", tmp_new,
		  sizeof(tmp_new));
	touch_file(tmp_new, 0);
	/* Snapshots of K: v1 (no ref), v2 (ref main), v3 (the newest, no
	 * ref); L: one, no ref; M: m1 and m2, no ref, just saved. */
	save_snapshot(fx, "K", "v1", old);
	save_snapshot(fx, "K", "v2", old + 1);
	save_snapshot(fx, "K", "v3", old + 100);
	assert_int_equal(cache_save_ref(fx->c, "K", "main", "v2"), 0);
	save_snapshot(fx, "L", "x/y", old);
	save_snapshot(fx, "M", "m1", time(NULL) - 5);
	save_snapshot(fx, "M", "m2", time(NULL) - 1);

	memset(&r, 0, sizeof(r));
	assert_int_equal(cache_clean_orphans(fx->c, true, &r), 0);
	assert_int_equal(r.orphans.n, 4);
	assert_int_equal(r.tmp.n, 1);
	assert_int_equal(r.snapshots.n, 1);
	assert_true(exists(fx, o, ".state"));
	assert_true(has_snapshot(fx, "K", "v1"));
	assert_int_equal(access(tmp_old, F_OK), 0);

	memset(&r, 0, sizeof(r));
	assert_int_equal(cache_clean_orphans(fx->c, false, &r), 0);
	printf("orphans %llu (%llu B), tmp %llu, snapshots %llu, errors "
	       "%llu\n",
	       (unsigned long long)r.orphans.n,
	       (unsigned long long)r.orphans.bytes, (unsigned long long)r.tmp.n,
	       (unsigned long long)r.snapshots.n, (unsigned long long)r.errors);
	assert_int_equal(r.orphans.n, 4);
	assert_true(r.orphans.bytes > 0);
	assert_int_equal(r.tmp.n, 1);
	assert_int_equal(r.snapshots.n, 1);
	assert_int_equal(r.errors, 0);
	assert_false(exists(fx, o, ".state") || exists(fx, o, ".sums") ||
		     exists(fx, o, ".lock") || exists(fx, o, ".verified"));
	/* Busy, so not an orphan: kept. */
	assert_true(exists(fx, p, ".state") && exists(fx, p, ".lock"));
	assert_true(exists(fx, a, "") && exists(fx, a, ".state"));
	assert_int_equal(access(tmp_old, F_OK), -1);
	assert_int_equal(access(tmp_new, F_OK), 0);
	assert_false(has_snapshot(fx, "K", "v1"));
	assert_true(has_snapshot(fx, "K", "v2"));
	assert_true(has_snapshot(fx, "K", "v3"));
	assert_true(has_snapshot(fx, "M", "m1"));
	assert_true(has_snapshot(fx, "M", "m2"));
	assert_true(has_snapshot(fx, "L", "x/y"));

	/* Released: now p is an orphan. */
	close(holder);
	memset(&r, 0, sizeof(r));
	assert_int_equal(cache_clean_orphans(fx->c, false, &r), 0);
	assert_true(r.orphans.n >= 3);
	assert_false(exists(fx, p, ".state") || exists(fx, p, ".lock"));
	/* Nothing more to do. */
	memset(&r, 0, sizeof(r));
	assert_int_equal(cache_clean_orphans(fx->c, false, &r), 0);
	assert_int_equal(r.orphans.n + r.tmp.n + r.snapshots.n, 0);
}

/*
 * Two processes racing: one opens and closes a blob over and over and,
 * while it holds it, checks that its files are the ones linked in the
 * cache; the other evicts it whenever it can. The opener never holds
 * files an evictor unlinked.
 */
static void test_race_open_and_evict(void **state)
{
	struct fixture *fx = *state;
	char a[33], rel[96];
	int status, evicted = 0, busy = 0, other = 0;
	struct timespec t0, t1;
	pid_t pid;

	mk_blob(fx, "a", 4 * CS, 4 * CS, false, a);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		int i, bad = 0;

		for (i = 0; i < 400; i++) {
			struct cache_blob_files f;
			struct stat st;

			int err = cache_blob_open(fx->c, a, 4 * CS, CS, &f);

			if (err)
				_exit(100 - err);
			snprintf(rel, sizeof(rel), "%s.lock", a);
			if (!cache_fd_linked_at(f.dir_fd, rel, f.lock_fd) ||
			    !cache_fd_linked_at(f.dir_fd, a, f.data_fd))
				bad++;
			usleep(200);
			if (fstat(f.data_fd, &st) || st.st_nlink != 1 ||
			    fstat(f.sums_fd, &st) || st.st_nlink != 1 ||
			    fstat(f.lock_fd, &st) || st.st_nlink != 1)
				bad++;
			cache_blob_files_close(&f);
			usleep(100);
		}
		_exit(bad ? 1 : 0);
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		uint64_t freed;
		int err = evict_blob(fx->c, a, false, &freed);

		if (!err)
			evicted++;
		else if (err == -EBUSY)
			busy++;
		else
			other++;
		if (waitpid(pid, &status, WNOHANG) == pid)
			break;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		assert_true(t1.tv_sec - t0.tv_sec < 60);
	}
	printf("race: %d evictions, %d busy, %d other\n", evicted, busy, other);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* Usage of many blobs: one readdir per folder, one fstatat per file. */
static void test_usage_many(void **state)
{
	struct fixture *fx = *state;
	const char *env = getenv("HOLLOWFS_EVICT_BLOBS");
	long nblobs = env ? atol(env) : 2000, i;
	struct timespec t0, t1;
	struct cache_usage u;
	struct evict_entry *v = NULL;
	size_t n = 0;
	char path[PATH_MAX];
	double ms_usage, ms_list;

	/* Files as blob_open makes them, without opening a blob each. */
	for (i = 0; i < nblobs; i++) {
		char hex[33];
		const char *sfx[] = { "", ".sums", ".lock", ".state" };
		size_t k;

		snprintf(hex, sizeof(hex), "%02lx%030lx", i % 256, i);
		snprintf(path, sizeof(path), "%s/blobs/%.2s", fx->dir, hex);
		mkdir(path, 0700);
		for (k = 0; k < 4; k++) {
			blob_file(fx, hex, sfx[k], path, sizeof(path));
			touch_file(path, 1000 + i);
		}
	}
	/* Twice: the second is what a periodic caller sees. */
	assert_int_equal(cache_usage(fx->c, &u), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(cache_usage(fx->c, &u), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms_usage =
		(t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(evict_list(fx->c, &v, &n), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms_list =
		(t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
	printf("%ld blobs (%llu files): cache_usage %.1f ms, evict_list "
	       "%.1f ms\n",
	       nblobs, (unsigned long long)u.files, ms_usage, ms_list);
	assert_int_equal(u.blobs, (uint64_t)nblobs);
	assert_int_equal(u.files, (uint64_t)nblobs * 4);
	assert_int_equal(n, (size_t)nblobs);
	for (i = 1; i < (long)n; i++)
		assert_true(v[i - 1].last_used_ns <= v[i].last_used_ns);
	free(v);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
		T(test_usage),
		cmocka_unit_test(test_target),
		T(test_list_lru),
		T(test_evict_blob),
		T(test_evict_crash_order),
		T(test_evict_hard_linked_and_no_lock),
		T(test_evict_to),
		T(test_clean_orphans),
		T(test_race_open_and_evict),
		T(test_usage_many),
#undef T
	};

	return cmocka_run_group_tests_name("evict", tests, NULL, NULL);
}
