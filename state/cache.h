/*
 * cache: the cache directory and its files (DESIGN.md "Cache layout").
 *
 *   CACHE/blobs/ab/abcdef...         sparse local copy, full length
 *   CACHE/blobs/ab/abcdef....state   bitmap sidecar (state/sidecar.h)
 *   CACHE/blobs/ab/abcdef....sums    per-chunk xxh3-64, u64 LE at idx * 8
 *   CACHE/blobs/ab/abcdef....lock    byte k is OFD-locked while a process
 *                                    fetches chunk k; byte CACHE_INUSE_BYTE
 *                                    shared by every process that has the
 *                                    blob open (below); byte
 *                                    CACHE_SETUP_BYTE held by one opener
 *                                    at a time while it sets the blob up;
 *                                    its mtime is when the blob was last
 *                                    opened
 *   CACHE/snapshots/KEY/VERSION.json manifest of a pinned snapshot
 *   CACHE/refs/KEY/REF               commit a ref last resolved to
 *
 * KEY is a caller-chosen string; it is stored as the hex xxh128 of itself
 * so any source URL is a safe file name. VERSION and REF are escaped
 * (everything outside [A-Za-z0-9._-], and a leading '.', as %XX).
 *
 * Files are replaced atomically through PATH.tmp.RANDOM (write_file_atomic),
 * so processes saving the same file never mix their bytes; one killed while
 * saving leaves its PATH.tmp.* behind, which readers ignore.
 *
 * Sharing between processes: a chunk is fetched by the process holding
 * its lock byte (cache_chunk_trylock never blocks); its sums entry is
 * written right after its bytes, and another process trusts it only when
 * the xxh3-64 of the bytes matches (cache_chunk_check). A process that
 * dies releases its locks with its file descriptors.
 *
 * The cache is private (DESIGN.md "Blob lifetime"): folders are made 0700
 * and files 0600, and an existing cache folder that another user could
 * write (owned by another uid, or group- or world-writable) is refused.
 * Everything under it is opened relative to a folder descriptor with
 * O_NOFOLLOW, so a symbolic link planted in the cache is never followed:
 * one in place of a blob's file or fan-out folder (blobs/ab) is removed
 * with a warning and the file made again (the blob starts over); one in
 * place of blobs/, snapshots/ or refs/ is refused (-ELOOP).
 */
#ifndef HOLLOWFS_STATE_CACHE_H
#define HOLLOWFS_STATE_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct manifest;

struct cache;

/*
 * Picks the cache directory, the first that applies:
 *   opt, if not NULL (made absolute against the current folder, since the
 *       daemon changes to "/"; "" is -EINVAL);
 *   $XDG_CACHE_HOME/hollowfs, for root too, when it is set and absolute
 *       (a relative one is ignored, as the XDG spec says);
 *   /var/cache/hollowfs when running as root (HOME is not looked at);
 *   $HOME/.cache/hollowfs.
 * Writes it to out; -ENAMETOOLONG, -ENOENT (no HOME and not root).
 */
int cache_resolve_dir(const char *opt, char *out, size_t outlen)
	__attribute__((warn_unused_result));

/*
 * Is the folder dir (followed if a link) private enough to be a cache:
 * owned by the effective uid and not writable by group or others? 0 when
 * it is or does not exist yet; -EPERM when not, with why (one line, no
 * path) written to why; or the error of stat(2).
 */
int cache_check_private(const char *dir, char *why, size_t whylen)
	__attribute__((warn_unused_result));

/* Creates dir (and parents, mode 0700) and its layout, checks it is
 * private (cache_check_private: -EPERM) and writable by creating and
 * removing a file in each layout folder. Layout folders readable by others
 * (an older cache) are made 0700. -EINVAL for an empty dir; -ELOOP for a
 * layout folder that is a symbolic link; -EACCES, -EROFS, -ENOTDIR (a
 * part of the path is a file), ... as the syscalls say. */
int cache_new(const char *dir, struct cache **out)
	__attribute__((warn_unused_result));
void cache_free(struct cache *c); /* accepts NULL */
const char *cache_dir(const struct cache *c);

/* xxh128 of (kind, content_id, size): 16 bytes, and its 32-hex name. */
void cache_identity(const char *kind, const char *content_id, uint64_t size,
		    uint8_t identity[16]);
void cache_identity_hex(const uint8_t identity[16], char hex[33]);

/* CACHE/blobs/ab/HEX + suffix ("" or NULL for the data file). -EINVAL when
 * hex is not at least 2 lowercase hex digits, -ENAMETOOLONG. */
int cache_blob_path(const struct cache *c, const char *hex, const char *suffix,
		    char *out, size_t outlen)
	__attribute__((warn_unused_result));

struct cache_blob_files {
	int data_fd; /* O_RDWR, sized to the file size (sparse) */
	int sums_fd; /* O_RDWR, sized to nchunks * 8 */
	int lock_fd; /* O_RDWR, for OFD byte locks */
	int dir_fd; /* blobs/ab/, for the sidecar and the marker */
	/* The data file was missing or shorter than the file: whatever a
	 * sidecar or marker says of its bytes is not true any more. */
	bool data_short;
	uint64_t data_ino; /* the data file's inode number */
	uint64_t data_birth_ns; /* and birth time (0: not recorded) */
};

/* Opens blobs/ab/ (creating it 0700) and in it opens (creating if needed,
 * 0600, O_CLOEXEC, never through a symbolic link) the three files of a
 * blob, the lock file first, under the shared in-use lock and then the
 * setup lock (both below), growing data and sums to their size (sparse);
 * never truncates existing bytes of a file of the right size. A longer file is not one of
 * ours (the size is part of the name): it is cut to size, with a warning.
 * A file readable by others is made 0600. -EINVAL for a bad chunk size or
 * hex, or a file that is not a regular file; -ENOTDIR when blobs/ab is not
 * a folder; -EFBIG for a size past INT64_MAX. On error no descriptor is
 * left open (all four are -1). */
int cache_blob_open(const struct cache *c, const char *hex, uint64_t file_size,
		    uint32_t chunk_size, struct cache_blob_files *out)
	__attribute__((warn_unused_result));
/* cache_blob_open in two steps, for blob_open: _begin returns with the
 * setup lock (below) held, _end releases it (0 or the error of fcntl(2):
 * then the caller closes the files, which releases it too). */
int cache_blob_open_begin(const struct cache *c, const char *hex,
			  uint64_t file_size, uint32_t chunk_size,
			  struct cache_blob_files *out)
	__attribute__((warn_unused_result));
int cache_blob_open_end(struct cache_blob_files *f)
	__attribute__((warn_unused_result));
void cache_blob_files_close(struct cache_blob_files *f);

/*
 * The in-use lock: byte CACHE_INUSE_BYTE of a blob's lock file (far above
 * any chunk index), OFD-locked shared by every open file description that
 * has the blob open, exclusive by an evictor (state/evict.h) for the few
 * unlinks of an eviction, never longer.
 *
 * cache_blob_open takes it shared, waiting (F_OFD_SETLKW) only while an
 * evictor holds it, before it creates or opens the data and sums files,
 * then checks that its lock file is still the one linked under its name
 * (an evictor unlinks it last); if not, it closes it and starts over (at
 * most CACHE_OPEN_RETRIES times, then -EAGAIN). So an opener never uses
 * files an evictor has just unlinked, and an evictor never removes a
 * blob a process has open. Closing the descriptor releases it.
 */
#define CACHE_INUSE_BYTE (1ull << 62)
#define CACHE_OPEN_RETRIES 64

/*
 * The setup lock: byte CACHE_SETUP_BYTE of the lock file, taken
 * exclusive (waiting) by an opener after the in-use lock and before it
 * opens the data file, and held until it has read the sidecar (blob_open
 * through cache_blob_open_begin/_end), so one opener at a time, in any
 * process, sets a blob up, and data_short means lost bytes or a new
 * blob, never a blob another opener is making. Without it the opener that
 * made the data file could read the sidecar only after a second one (which
 * found the file sized) had fetched chunks and saved it: it took them for
 * lost bytes, warned, cleared their sums and removed the sidecar (the
 * fetch scheduler opens a blob twice at once when a reader and the
 * folder-order walk open one file). Under it only local file calls run,
 * never network I/O.
 */
#define CACHE_SETUP_BYTE (CACHE_INUSE_BYTE + 1)

/* Takes the in-use lock shared on lock_fd, waiting only while an evictor
 * holds it (what cache_blob_open does): 0 or the error of fcntl(2). */
int cache_blob_inuse_share(int lock_fd) __attribute__((warn_unused_result));
/* Converts our shared in-use lock to exclusive (or takes it, on a
 * description that holds none: an evictor) without waiting: 0, or
 * -EAGAIN (our shared lock is kept) when another open file description
 * (another process) has the blob open. */
int cache_blob_inuse_upgrade(int lock_fd) __attribute__((warn_unused_result));
/* Back to shared (never waits; 0 or the error of fcntl(2)). */
int cache_blob_inuse_downgrade(int lock_fd) __attribute__((warn_unused_result));
/* Is fd the file linked at name in dirfd now (same device and inode)? */
bool cache_fd_linked_at(int dirfd, const char *name, int fd);
/* Marks the blob used now: futimens on its lock file, whose mtime is the
 * "last used" time eviction sorts by. cache_blob_open calls it. */
int cache_blob_touch(int lock_fd);

/* Takes the OFD write lock on byte idx of lock_fd without waiting:
 * 0, or -EAGAIN when another open file description (another process)
 * holds it. Threads sharing lock_fd share its locks. */
int cache_chunk_trylock(int lock_fd, uint64_t idx)
	__attribute__((warn_unused_result));
int cache_chunk_unlock(int lock_fd, uint64_t idx);

/* Writes the sums entry of chunk idx (u64 LE at idx * 8). */
int cache_sums_write(int sums_fd, uint64_t idx, uint64_t sum)
	__attribute__((warn_unused_result));
/* Clears every sums entry (the sidecar was rejected: start over) by
 * punching a hole, or writing zeros where holes are not supported; the
 * size is kept. */
int cache_sums_clear(int sums_fd, uint64_t nchunks)
	__attribute__((warn_unused_result));

/*
 * Is chunk idx ([off, off + len) of the data file) complete on disk?
 * *ok is true when its sums entry is not 0 and equals the xxh3-64 of the
 * bytes read now (in blocks of 1 MiB). A sums or data file that ends
 * too early means not done. Returns 0 or a read error.
 */
int cache_chunk_check(int data_fd, int sums_fd, uint64_t idx, uint64_t off,
		      uint64_t len, bool *ok)
	__attribute__((warn_unused_result));

/* xxh3-64 of a buffer, never 0 (0 means "no entry" in a sums file). */
uint64_t cache_chunk_sum(const void *buf, size_t len);

/* Manifests and refs, written atomically (tmp + fsync + rename). An empty
 * or NULL key, version or ref is -EINVAL; too long, -ENAMETOOLONG;
 * manifest_to_json()'s errors pass through. */
int cache_save_manifest(const struct cache *c, const char *key,
			const char *version, const struct manifest *m)
	__attribute__((warn_unused_result));
/* -ENOENT when none was saved; -EBADMSG when it does not parse. */
int cache_load_manifest(const struct cache *c, const char *key,
			const char *version, struct manifest **out)
	__attribute__((warn_unused_result));
/* commit: one line, not empty (-EINVAL otherwise). */
int cache_save_ref(const struct cache *c, const char *key, const char *ref,
		   const char *commit) __attribute__((warn_unused_result));
/* *commit is a new malloc'd string; -ENOENT when none was saved; -EBADMSG
 * when the file is not one non-empty line. */
int cache_load_ref(const struct cache *c, const char *key, const char *ref,
		   char **commit) __attribute__((warn_unused_result));

/* Writes len bytes at off, retrying short writes and EINTR; -EFBIG past
 * INT64_MAX. */
int pwrite_all(int fd, const void *buf, size_t len, uint64_t off)
	__attribute__((warn_unused_result));
/* Reads exactly len bytes at off; -EIO on a premature end of file. */
int pread_all(int fd, void *buf, size_t len, uint64_t off)
	__attribute__((warn_unused_result));
/* A number for temporary file names no other process is likely to pick
 * (time, pid, a counter, hashed); O_EXCL settles the rest. */
uint64_t cache_nonce(void);

/* Writes path atomically: path.tmp.RANDOM (O_EXCL, mode 0644 less the
 * umask: for files outside the cache, such as the huggingface_hub export),
 * fsync, rename, fsync of the folder. On error the temporary is removed,
 * and path is the old file, or the new one if only the folder's fsync
 * failed. */
int write_file_atomic(const char *path, const void *buf, size_t len)
	__attribute__((warn_unused_result));

/* The same for the file name inside the folder dirfd, mode 0600: what the
 * cache writes. A symbolic link at name is replaced by the rename, never
 * written through. */
int write_file_atomic_at(int dirfd, const char *name, const void *buf,
			 size_t len) __attribute__((warn_unused_result));

/* The layout folders, for state/evict.c (borrowed: not to be closed). */
enum cache_area { AREA_BLOBS, AREA_SNAPSHOTS, AREA_REFS, AREA_COUNT };
int cache_area_fd(const struct cache *c, enum cache_area area);

/* Escapes one path component as the snapshots and refs are named:
 * [A-Za-z0-9._-] stay, the rest (and a leading '.') is %XX. -EINVAL for
 * an empty or NULL in, -ENAMETOOLONG. */
int cache_escape_name(const char *in, char *out, size_t outlen)
	__attribute__((warn_unused_result));

#endif
