/*
 * cache.c: the cache directory, its layout, the files of a blob, the
 * cross-process chunk locks and the sums entries.
 *
 * No locks inside: struct cache is read-only after cache_new(), and
 * everything shared with other processes goes through the file system
 * (OFD locks, atomic renames, pread/pwrite at fixed offsets).
 *
 * Temporary files of write_file_atomic() are named PATH.tmp.RANDOM, made
 * with O_EXCL: several processes (possibly in different PID namespaces)
 * may save the same file at once without mixing their bytes. A process
 * killed mid-save leaves its PATH.tmp.* behind; readers ignore them.
 *
 * Inside the cache nothing is opened by path: the layout folders are
 * opened once (cache_new), and every file under them with openat() and
 * O_NOFOLLOW, relative to its folder's descriptor, so a symbolic link that
 * someone plants in the cache is never followed (DESIGN.md "Blob
 * lifetime").
 */
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include "state/cache.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "state/fsutil.h"
#include "state/hlog.h"
#include "state/manifest.h"
#include "state/sidecar.h"
#include "state/state_i.h"

#define CHECK_BUF_LEN (1u << 20) /* cache_chunk_check reads by 1 MiB */
#define MANIFEST_MAX_LEN (1ull << 30)
#define REF_MAX_LEN 4096
#define DIR_MODE 0700 /* the cache is private */
#define FILE_MODE 0600
#define EXPORT_FILE_MODE 0644 /* write_file_atomic: outside the cache */

static const char *const area_names[AREA_COUNT] = { "blobs", "snapshots",
						    "refs" };

struct cache {
	char *dir; /* owned; no trailing '/' unless it is "/" */
	int root_fd; /* the cache folder */
	int area_fd[AREA_COUNT]; /* its layout folders, O_NOFOLLOW */
};

int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;

	if (off > INT64_MAX || len > INT64_MAX - off)
		return -EFBIG;
	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (!n)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Reads up to len bytes at off; *got is short only at the end of file. */
static int pread_upto(int fd, void *buf, size_t len, uint64_t off, size_t *got)
{
	char *p = buf;

	*got = 0;
	if (off > INT64_MAX || len > INT64_MAX - off)
		return -EINVAL;
	while (*got < len) {
		ssize_t n =
			pread(fd, p + *got, len - *got, (off_t)(off + *got));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (!n)
			break;
		*got += (size_t)n;
	}
	return 0;
}

int pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	size_t got;
	int err;

	err = pread_upto(fd, buf, len, off, &got);
	if (err)
		return err;
	return got == len ? 0 : -EIO;
}

uint64_t cache_nonce(void)
{
	static atomic_uint_least64_t seq;
	struct {
		struct timespec ts;
		pid_t pid;
		uint64_t seq;
		const void *stack;
	} seed;

	memset(&seed, 0, sizeof(seed));
	clock_gettime(CLOCK_REALTIME, &seed.ts);
	seed.pid = getpid();
	seed.seq = atomic_fetch_add(&seq, 1);
	seed.stack = &seed;
	return XXH3_64bits(&seed, sizeof(seed));
}

/*
 * Writes name in dirfd through name.tmp.RANDOM (made with O_EXCL, so
 * never through a link), fsynced, then renamed over name, which replaces
 * whatever name was, a planted link included. The caller makes the
 * rename durable by syncing dirfd.
 */
static int write_atomic_in(int dirfd, const char *name, mode_t mode,
			   const void *buf, size_t len)
{
	char tmp[NAME_MAX + 1];
	int fd = -1, err, tries;

	for (tries = 0; tries < 16; tries++) {
		err = path_fmt(tmp, sizeof(tmp), "%s.tmp.%016llx", name,
			       (unsigned long long)cache_nonce());
		if (err)
			return err;
		fd = openat(dirfd, tmp,
			    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
				    O_CLOEXEC,
			    mode);
		if (fd >= 0 || errno != EEXIST)
			break;
	}
	if (fd < 0)
		return -errno;
	err = pwrite_all(fd, buf, len, 0);
	if (!err && fsync(fd) < 0)
		err = -errno;
	if (close(fd) < 0 && !err)
		err = -errno;
	if (!err && renameat(dirfd, tmp, dirfd, name) < 0)
		err = -errno;
	if (err)
		unlinkat(dirfd, tmp, 0);
	return err;
}

/* The rename is durable only once its folder is. */
static int sync_dir(int dirfd)
{
	return fsync(dirfd) < 0 && errno != EINVAL ? -errno : 0;
}

int write_file_atomic(const char *path, const void *buf, size_t len)
{
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];
	int dfd, err;

	if (!slash)
		err = path_fmt(dir, sizeof(dir), ".");
	else if (slash == path)
		err = path_fmt(dir, sizeof(dir), "/");
	else
		err = path_fmt(dir, sizeof(dir), "%.*s", (int)(slash - path),
			       path);
	if (err)
		return err;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	err = write_atomic_in(dfd, slash ? slash + 1 : path, EXPORT_FILE_MODE,
			      buf, len);
	if (!err)
		err = sync_dir(dfd);
	close(dfd);
	return err;
}

int write_file_atomic_at(int dirfd, const char *name, const void *buf,
			 size_t len)
{
	int err = write_atomic_in(dirfd, name, FILE_MODE, buf, len);

	return err ? err : sync_dir(dirfd);
}

/* Reads a whole regular file of at most max_len bytes, NUL-terminated:
 * name in dirfd, never through a link (-ELOOP) or a FIFO. */
static int read_file_at(int dirfd, const char *name, uint64_t max_len,
			char **out, size_t *len)
{
	struct stat st;
	char *buf;
	int fd, err;

	*out = NULL;
	fd = openat(dirfd, name,
		    O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		err = -errno;
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		err = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		goto out_close;
	}
	if ((uint64_t)st.st_size > max_len) {
		err = -EFBIG;
		goto out_close;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		err = -ENOMEM;
		goto out_close;
	}
	err = pread_all(fd, buf, (size_t)st.st_size, 0);
	if (err) {
		free(buf);
		goto out_close;
	}
	buf[st.st_size] = 0;
	*out = buf;
	*len = (size_t)st.st_size;
out_close:
	close(fd);
	return err;
}

int cache_resolve_dir(const char *opt, char *out, size_t outlen)
{
	const char *xdg = getenv("XDG_CACHE_HOME");
	const char *home = getenv("HOME");

	if (opt) /* the daemon changes to "/": keep the folder given */
		return path_abs(opt, out, outlen);
	/* The XDG spec says a relative XDG_CACHE_HOME is to be ignored. */
	if (xdg && xdg[0] == '/')
		return path_fmt(out, outlen, "%s/hollowfs", xdg);
	if (geteuid() == 0)
		return path_fmt(out, outlen, "/var/cache/hollowfs");
	if (home && home[0])
		return path_fmt(out, outlen, "%s/.cache/hollowfs", home);
	return -ENOENT;
}

/* Creates and removes a file in dir: is the folder really writable? */
static int probe_writable(int dirfd)
{
	char name[64];
	int fd, err;

	err = path_fmt(name, sizeof(name), ".probe.%016llx",
		       (unsigned long long)cache_nonce());
	if (err)
		return err;
	fd = openat(dirfd, name,
		    O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		    FILE_MODE);
	if (fd < 0)
		return -errno;
	close(fd);
	if (unlinkat(dirfd, name, 0) < 0)
		return -errno;
	return 0;
}

/* Why a folder is not private: -EPERM and a line in why, or 0. */
static int private_why(const struct stat *st, char *why, size_t whylen)
{
	uid_t me = geteuid();

	if (st->st_uid != me) {
		snprintf(why, whylen, "it is owned by uid %u, not by uid %u",
			 (unsigned int)st->st_uid, (unsigned int)me);
		return -EPERM;
	}
	if (st->st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(why, whylen, "its mode %04o lets other users write it",
			 (unsigned int)(st->st_mode & 07777));
		return -EPERM;
	}
	return 0;
}

int cache_check_private(const char *dir, char *why, size_t whylen)
{
	struct stat st;

	if (whylen)
		why[0] = '\0';
	if (stat(dir, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISDIR(st.st_mode))
		return 0; /* cache_new says -ENOTDIR */
	return private_why(&st, why, whylen);
}

/*
 * Opens (creating, 0700) the folder name in parent_fd, never through a
 * link: a link is -ELOOP, or, with replace_link, removed (with a warning
 * naming shown/name) and a folder made in its place. A folder of another
 * owner is -EPERM; one others may read or write loses those bits.
 */
static int subdir_open(int parent_fd, const char *shown, const char *name,
		       bool replace_link, int *out)
{
	struct stat st;
	int fd, err;

	*out = -1;
	err = dir_open_at(parent_fd, name, DIR_MODE, true, &fd);
	if (err == -ELOOP && replace_link) {
		hlog(HLOG_WARN, HLOG_STATE,
		     "cache folder '%s/%s' is a symbolic link: removed, "
		     "not followed",
		     shown, name);
		if (unlinkat(parent_fd, name, 0) < 0 && errno != ENOENT)
			return -errno;
		err = dir_open_at(parent_fd, name, DIR_MODE, true, &fd);
	}
	if (err)
		return err;
	if (fstat(fd, &st) < 0) {
		err = -errno;
		goto out_close;
	}
	if (st.st_uid != geteuid()) {
		err = -EPERM;
		goto out_close;
	}
	/* Left by an older version or another umask: make it private
	 * (the owner's bits stay: a read-only cache stays read-only). */
	if ((st.st_mode & 077) && fchmod(fd, st.st_mode & 0700) < 0) {
		err = -errno;
		goto out_close;
	}
	*out = fd;
	return 0;

out_close:
	close(fd);
	return err;
}

int cache_new(const char *dir, struct cache **out)
{
	char why[128];
	struct cache *c;
	struct stat st;
	size_t i, len;
	int err;

	*out = NULL;
	if (!dir || !*dir)
		return -EINVAL;
	err = mkdir_p(dir, DIR_MODE);
	if (err)
		return err;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->root_fd = -1;
	for (i = 0; i < AREA_COUNT; i++)
		c->area_fd[i] = -1;
	c->dir = strdup(dir);
	if (!c->dir) {
		err = -ENOMEM;
		goto out_free;
	}
	len = strlen(c->dir);
	while (len > 1 && c->dir[len - 1] == '/')
		c->dir[--len] = 0;

	/* The cache folder itself may be a link the user made. */
	c->root_fd = open(c->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->root_fd < 0) {
		err = -errno;
		goto out_free;
	}
	if (fstat(c->root_fd, &st) < 0) {
		err = -errno;
		goto out_free;
	}
	err = private_why(&st, why, sizeof(why));
	if (err)
		goto out_free;
	for (i = 0; i < AREA_COUNT; i++) {
		err = subdir_open(c->root_fd, c->dir, area_names[i], false,
				  &c->area_fd[i]);
		if (!err)
			err = probe_writable(c->area_fd[i]);
		if (err)
			goto out_free;
	}
	*out = c;
	return 0;

out_free:
	cache_free(c);
	return err;
}

void cache_free(struct cache *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; i < AREA_COUNT; i++)
		if (c->area_fd[i] >= 0)
			close(c->area_fd[i]);
	if (c->root_fd >= 0)
		close(c->root_fd);
	free(c->dir);
	free(c);
}

const char *cache_dir(const struct cache *c)
{
	return c->dir;
}

int cache_area_fd(const struct cache *c, enum cache_area area)
{
	return c->area_fd[area];
}

void cache_identity(const char *kind, const char *content_id, uint64_t size,
		    uint8_t identity[16])
{
	XXH3_state_t st;
	XXH128_canonical_t canon;
	uint8_t le[8];

	if (!kind)
		kind = "";
	if (!content_id)
		content_id = "";
	put_le64(le, size);
	/* kind NUL content_id NUL size: no two inputs share an encoding. */
	XXH3_128bits_reset(&st);
	XXH3_128bits_update(&st, kind, strlen(kind) + 1);
	XXH3_128bits_update(&st, content_id, strlen(content_id) + 1);
	XXH3_128bits_update(&st, le, sizeof(le));
	XXH128_canonicalFromHash(&canon, XXH3_128bits_digest(&st));
	memcpy(identity, canon.digest, 16);
}

void cache_identity_hex(const uint8_t identity[16], char hex[33])
{
	static const char digits[] = "0123456789abcdef";
	int i;

	for (i = 0; i < 16; i++) {
		hex[2 * i] = digits[identity[i] >> 4];
		hex[2 * i + 1] = digits[identity[i] & 15];
	}
	hex[32] = 0;
}

static bool hex_ok(const char *hex)
{
	size_t n = strspn(hex, "0123456789abcdef");

	return n >= 2 && !hex[n];
}

int cache_blob_path(const struct cache *c, const char *hex, const char *suffix,
		    char *out, size_t outlen)
{
	if (!hex_ok(hex))
		return -EINVAL;
	return path_fmt(out, outlen, "%s/blobs/%.2s/%s%s", c->dir, hex, hex,
			suffix ? suffix : "");
}

/*
 * Opens (creating, 0600) the file name in dirfd, never through a link: a
 * link there is removed, with a warning naming shown/name, and the file
 * made anew (whatever a link pointed to stays untouched). Not a regular
 * file: -EINVAL. A file others may read loses those bits.
 */
static int open_file_at(int dirfd, const char *shown, const char *name,
			struct stat *st, int *out)
{
	int fd, flags, err;

	/* O_NONBLOCK: a FIFO or device put there cannot hang the open. */
	flags = O_RDWR | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC;
	fd = openat(dirfd, name, flags, FILE_MODE);
	if (fd < 0 && errno == ELOOP) {
		hlog(HLOG_WARN, HLOG_STATE,
		     "cache file '%s/%s' is a symbolic link: removed, not "
		     "followed",
		     shown, name);
		if (unlinkat(dirfd, name, 0) < 0 && errno != ENOENT)
			return -errno;
		fd = openat(dirfd, name, flags, FILE_MODE);
	}
	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0) {
		err = -errno;
		goto out_close;
	}
	if (!S_ISREG(st->st_mode)) {
		err = -EINVAL;
		goto out_close;
	}
	/* Status flags back to none: O_NONBLOCK off. */
	if (fcntl(fd, F_SETFL, 0) < 0 ||
	    ((st->st_mode & 077) && fchmod(fd, st->st_mode & 0700) < 0)) {
		err = -errno;
		goto out_close;
	}
	*out = fd;
	return 0;

out_close:
	close(fd);
	return err;
}

/* Opens (creating) name in dirfd and makes it exactly size bytes long;
 * *was_short says it was shorter (or new). */
static int open_sized_at(int dirfd, const char *shown, const char *name,
			 uint64_t size, int *out, bool *was_short)
{
	struct stat st;
	int fd, err;

	err = open_file_at(dirfd, shown, name, &st, &fd);
	if (err)
		return err;
	*was_short = (uint64_t)st.st_size < size;
	/*
	 * Growing makes a sparse file and keeps every byte. A longer file
	 * is not one of ours (every process agrees on the size: it is part
	 * of the blob's name), so cutting it back loses nothing.
	 */
	if ((uint64_t)st.st_size > size)
		hlog(HLOG_WARN, HLOG_STATE,
		     "cache file '%s/%s' is %lld bytes, more than %llu: "
		     "truncated",
		     shown, name, (long long)st.st_size,
		     (unsigned long long)size);
	if ((uint64_t)st.st_size != size && ftruncate(fd, (off_t)size) < 0) {
		err = -errno;
		close(fd);
		return err;
	}
	*out = fd;
	return 0;
}

/* The inode number and birth time (ns, 0 if not recorded) of fd. */
static int file_binding(int fd, uint64_t *ino, uint64_t *birth_ns)
{
	struct statx stx;

	if (statx(fd, "", AT_EMPTY_PATH, STATX_INO | STATX_BTIME, &stx) < 0)
		return -errno;
	*ino = stx.stx_ino;
	*birth_ns = 0;
	if (stx.stx_mask & STATX_BTIME)
		*birth_ns = (uint64_t)stx.stx_btime.tv_sec * 1000000000u +
			    stx.stx_btime.tv_nsec;
	return 0;
}

void cache_blob_files_close(struct cache_blob_files *f)
{
	if (f->data_fd >= 0)
		close(f->data_fd);
	if (f->sums_fd >= 0)
		close(f->sums_fd);
	if (f->lock_fd >= 0)
		close(f->lock_fd);
	if (f->dir_fd >= 0)
		close(f->dir_fd);
	f->data_fd = f->sums_fd = f->lock_fd = f->dir_fd = -1;
}

/* Takes, changes or drops our OFD lock on one reserved byte. */
static int byte_lock(int lock_fd, uint64_t byte, short type, bool wait)
{
	struct flock fl;

	memset(&fl, 0, sizeof(fl)); /* l_pid must be 0 for OFD locks */
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = (off_t)byte;
	fl.l_len = 1;
	for (;;) {
		if (!fcntl(lock_fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl))
			return 0;
		if (errno == EINTR && wait)
			continue;
		if (errno == EACCES || errno == EAGAIN)
			return -EAGAIN;
		return -errno;
	}
}

/* Takes or changes our OFD lock on the in-use byte. */
static int inuse_lock(int lock_fd, short type, bool wait)
{
	return byte_lock(lock_fd, CACHE_INUSE_BYTE, type, wait);
}

int cache_blob_inuse_share(int lock_fd)
{
	return inuse_lock(lock_fd, F_RDLCK, true);
}

int cache_blob_inuse_upgrade(int lock_fd)
{
	return inuse_lock(lock_fd, F_WRLCK, false);
}

int cache_blob_inuse_downgrade(int lock_fd)
{
	return inuse_lock(lock_fd, F_RDLCK, false);
}

int cache_blob_touch(int lock_fd)
{
	return futimens(lock_fd, NULL) < 0 ? -errno : 0;
}

bool cache_fd_linked_at(int dirfd, const char *name, int fd)
{
	struct stat a, b;

	if (fstat(fd, &a) < 0 ||
	    fstatat(dirfd, name, &b, AT_SYMLINK_NOFOLLOW) < 0)
		return false;
	return a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/*
 * Opens (creating) the lock file name in dirfd and takes the in-use lock
 * shared, waiting while an evictor holds it; then makes sure the file is
 * still the one linked there (an evictor unlinks it last, and one that
 * has, has unlinked the rest of the blob too): if not, starts over.
 */
static int lock_file_open(int dirfd, const char *shown, const char *name,
			  int *out)
{
	struct stat st;
	int fd, err, tries;

	*out = -1;
	for (tries = 0; tries < CACHE_OPEN_RETRIES; tries++) {
		err = open_file_at(dirfd, shown, name, &st, &fd);
		if (err)
			return err;
		err = inuse_lock(fd, F_RDLCK, true);
		if (err) {
			close(fd);
			return err;
		}
		if (cache_fd_linked_at(dirfd, name, fd)) {
			*out = fd;
			return 0;
		}
		close(fd); /* evicted meanwhile: a new blob */
	}
	return -EAGAIN;
}

int cache_blob_open_begin(const struct cache *c, const char *hex,
			  uint64_t file_size, uint32_t chunk_size,
			  struct cache_blob_files *out)
{
	struct cache_blob_files f = {
		.data_fd = -1, .sums_fd = -1, .lock_fd = -1, .dir_fd = -1
	};
	char shown[PATH_MAX], fan[3], name[NAME_MAX + 1];
	bool sums_short;
	int err;

	*out = f;
	if (!chunk_size_valid(chunk_size))
		return -EINVAL;
	if (file_size > INT64_MAX)
		return -EFBIG;
	if (!hex_ok(hex) || strlen(hex) + sizeof(".state") > sizeof(name))
		return -EINVAL;
	memcpy(fan, hex, 2);
	fan[2] = 0;
	err = path_fmt(shown, sizeof(shown), "%s/blobs", c->dir);
	if (!err)
		err = subdir_open(c->area_fd[AREA_BLOBS], shown, fan, true,
				  &f.dir_fd);
	if (!err)
		err = path_fmt(shown, sizeof(shown), "%s/blobs/%s", c->dir,
			       fan);
	if (err)
		goto out_close;

	/* The in-use lock before any other file: see cache.h. */
	err = path_fmt(name, sizeof(name), "%s.lock", hex);
	if (!err)
		err = lock_file_open(f.dir_fd, shown, name, &f.lock_fd);
	if (err)
		goto out_close;
	cache_blob_touch(f.lock_fd);
	/* Until the caller has read the sidecar: see cache.h. */
	err = byte_lock(f.lock_fd, CACHE_SETUP_BYTE, F_WRLCK, true);
	if (err)
		goto out_close;

	err = open_sized_at(f.dir_fd, shown, hex, file_size, &f.data_fd,
			    &f.data_short);
	if (!err)
		err = file_binding(f.data_fd, &f.data_ino, &f.data_birth_ns);
	if (err)
		goto out_close;
	err = path_fmt(name, sizeof(name), "%s.sums", hex);
	if (!err)
		err = open_sized_at(f.dir_fd, shown, name,
				    chunk_count(file_size, chunk_size) * 8,
				    &f.sums_fd, &sums_short);
	if (err)
		goto out_close;
	*out = f;
	return 0;

out_close:
	cache_blob_files_close(&f); /* releases the locks */
	return err;
}

int cache_blob_open_end(struct cache_blob_files *f)
{
	return byte_lock(f->lock_fd, CACHE_SETUP_BYTE, F_UNLCK, false);
}

int cache_blob_open(const struct cache *c, const char *hex, uint64_t file_size,
		    uint32_t chunk_size, struct cache_blob_files *out)
{
	int err;

	err = cache_blob_open_begin(c, hex, file_size, chunk_size, out);
	if (err)
		return err;
	err = cache_blob_open_end(out);
	if (err)
		cache_blob_files_close(out);
	return err;
}

static int chunk_lock_op(int lock_fd, uint64_t idx, short type)
{
	struct flock fl;

	if (idx > INT64_MAX - 1)
		return -EINVAL;
	memset(&fl, 0, sizeof(fl)); /* l_pid must be 0 for OFD locks */
	fl.l_type = type;
	fl.l_whence = SEEK_SET;
	fl.l_start = (off_t)idx;
	fl.l_len = 1;
	if (fcntl(lock_fd, F_OFD_SETLK, &fl) < 0) {
		if (errno == EACCES || errno == EAGAIN)
			return -EAGAIN;
		return -errno;
	}
	return 0;
}

int cache_chunk_trylock(int lock_fd, uint64_t idx)
{
	return chunk_lock_op(lock_fd, idx, F_WRLCK);
}

int cache_chunk_unlock(int lock_fd, uint64_t idx)
{
	return chunk_lock_op(lock_fd, idx, F_UNLCK);
}

int cache_sums_write(int sums_fd, uint64_t idx, uint64_t sum)
{
	uint8_t le[8];

	if (idx > (INT64_MAX - 8) / 8)
		return -EINVAL;
	put_le64(le, sum);
	return pwrite_all(sums_fd, le, sizeof(le), idx * 8);
}

int cache_sums_clear(int sums_fd, uint64_t nchunks)
{
	static const uint8_t zeros[64 << 10];
	uint64_t len, off;
	int err;

	if (nchunks > (INT64_MAX - 8) / 8)
		return -EINVAL;
	len = nchunks * 8;
	if (!len)
		return 0;
	/* A hole reads as zeros and keeps the size other processes see. */
	if (!fallocate(sums_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
		       (off_t)len))
		return 0;
	if (errno != EOPNOTSUPP && errno != ENOSYS)
		return -errno;
	for (off = 0; off < len; off += sizeof(zeros)) {
		size_t n = len - off < sizeof(zeros) ? (size_t)(len - off) :
						       sizeof(zeros);

		err = pwrite_all(sums_fd, zeros, n, off);
		if (err)
			return err;
	}
	return 0;
}

uint64_t cache_chunk_sum(const void *buf, size_t len)
{
	uint64_t h = XXH3_64bits(buf, len);

	return h ? h : 1;
}

int cache_chunk_check(int data_fd, int sums_fd, uint64_t idx, uint64_t off,
		      uint64_t len, bool *ok)
{
	XXH3_state_t st;
	uint8_t le[8];
	uint64_t want, h, pos;
	size_t got, buf_len;
	void *buf;
	int err;

	*ok = false;
	if (idx > (INT64_MAX - 8) / 8)
		return -EINVAL;
	err = pread_upto(sums_fd, le, sizeof(le), idx * 8, &got);
	if (err || got < sizeof(le))
		return err; /* past the end of sums: no entry */
	want = get_le64(le);
	if (!want)
		return 0;

	buf_len = len < CHECK_BUF_LEN ? (size_t)len : CHECK_BUF_LEN;
	buf = malloc(buf_len ? buf_len : 1);
	if (!buf)
		return -ENOMEM;
	XXH3_64bits_reset(&st);
	for (pos = 0; pos < len; pos += got) {
		size_t n = len - pos < buf_len ? (size_t)(len - pos) : buf_len;

		err = pread_upto(data_fd, buf, n, off + pos, &got);
		if (err || got < n)
			goto out_free; /* short data: not done */
		XXH3_64bits_update(&st, buf, n);
	}
	h = XXH3_64bits_digest(&st);
	*ok = (h ? h : 1) == want;
out_free:
	free(buf);
	return err;
}

/* Escapes one path component: [A-Za-z0-9._-] stay, the rest is %XX; a
 * leading '.' is escaped too, so "." and ".." cannot come out. */
int cache_escape_name(const char *in, char *out, size_t outlen)
{
	static const char digits[] = "0123456789ABCDEF";
	size_t o = 0;
	const unsigned char *p;

	if (!in || !*in)
		return -EINVAL;
	for (p = (const unsigned char *)in; *p; p++) {
		bool first = p == (const unsigned char *)in;
		bool keep = (*p >= 'a' && *p <= 'z') ||
			    (*p >= 'A' && *p <= 'Z') ||
			    (*p >= '0' && *p <= '9') || *p == '_' ||
			    *p == '-' || (*p == '.' && !first);

		if (o + (keep ? 1 : 3) >= outlen)
			return -ENAMETOOLONG;
		if (keep) {
			out[o++] = (char)*p;
		} else {
			out[o++] = '%';
			out[o++] = digits[*p >> 4];
			out[o++] = digits[*p & 15];
		}
	}
	out[o] = 0;
	return 0;
}

/*
 * Opens CACHE/AREA/KEYHEX (created when create is set; never through a
 * link) into *dir_fd, and writes NAME + suffix, escaped, to name.
 */
static int keyed_open(const struct cache *c, enum cache_area area,
		      const char *key, const char *name, const char *suffix,
		      bool create, int *dir_fd, char out[NAME_MAX + 1])
{
	XXH128_canonical_t canon;
	char hex[33], shown[PATH_MAX];
	int err;

	*dir_fd = -1;
	if (!key || !*key)
		return -EINVAL;
	/* Room for the suffix within one file name. */
	err = cache_escape_name(name, out, NAME_MAX + 1 - strlen(suffix));
	if (err)
		return err;
	strcat(out, suffix);
	XXH128_canonicalFromHash(&canon, XXH3_128bits(key, strlen(key)));
	cache_identity_hex(canon.digest, hex);
	if (!create) {
		err = dir_open_at(c->area_fd[area], hex, DIR_MODE, false,
				  dir_fd);
		/* A link is never followed; for a reader it is nothing. */
		return err == -ELOOP || err == -ENOTDIR ? -ENOENT : err;
	}
	err = path_fmt(shown, sizeof(shown), "%s/%s", c->dir, area_names[area]);
	if (err)
		return err;
	return subdir_open(c->area_fd[area], shown, hex, true, dir_fd);
}

int cache_save_manifest(const struct cache *c, const char *key,
			const char *version, const struct manifest *m)
{
	char name[NAME_MAX + 1];
	char *json = NULL;
	int dir_fd, err;

	err = keyed_open(c, AREA_SNAPSHOTS, key, version, ".json", true,
			 &dir_fd, name);
	if (err)
		return err;
	err = manifest_to_json(m, &json);
	if (!err)
		err = write_file_atomic_at(dir_fd, name, json, strlen(json));
	free(json);
	close(dir_fd);
	return err;
}

int cache_load_manifest(const struct cache *c, const char *key,
			const char *version, struct manifest **out)
{
	char name[NAME_MAX + 1];
	char *text = NULL;
	size_t len;
	int dir_fd, err;

	*out = NULL;
	err = keyed_open(c, AREA_SNAPSHOTS, key, version, ".json", false,
			 &dir_fd, name);
	if (err)
		return err;
	err = read_file_at(dir_fd, name, MANIFEST_MAX_LEN, &text, &len);
	close(dir_fd);
	if (err)
		return err == -EFBIG ? -EBADMSG : err;
	err = manifest_from_json(text, len, out);
	free(text);
	return err;
}

static bool commit_ok(const char *commit)
{
	return commit && *commit && !strchr(commit, '\n') &&
	       strlen(commit) < REF_MAX_LEN - 1;
}

int cache_save_ref(const struct cache *c, const char *key, const char *ref,
		   const char *commit)
{
	char name[NAME_MAX + 1], line[REF_MAX_LEN];
	int dir_fd, err;

	if (!commit_ok(commit))
		return -EINVAL;
	err = path_fmt(line, sizeof(line), "%s\n", commit);
	if (err)
		return err;
	err = keyed_open(c, AREA_REFS, key, ref, "", true, &dir_fd, name);
	if (err)
		return err;
	err = write_file_atomic_at(dir_fd, name, line, strlen(line));
	close(dir_fd);
	return err;
}

int cache_load_ref(const struct cache *c, const char *key, const char *ref,
		   char **commit)
{
	char name[NAME_MAX + 1];
	char *text = NULL;
	size_t len;
	int dir_fd, err;

	*commit = NULL;
	err = keyed_open(c, AREA_REFS, key, ref, "", false, &dir_fd, name);
	if (err)
		return err;
	err = read_file_at(dir_fd, name, REF_MAX_LEN, &text, &len);
	close(dir_fd);
	if (err)
		return err == -EFBIG ? -EBADMSG : err;
	if (len && text[len - 1] == '\n')
		text[--len] = 0;
	if (strlen(text) != len || !commit_ok(text)) {
		free(text);
		return -EBADMSG;
	}
	*commit = text;
	return 0;
}
