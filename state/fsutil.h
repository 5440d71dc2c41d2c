/*
 * fsutil: file and path helpers shared by state/ and the layers above it
 * (one copy of each: the cache and the huggingface_hub export both make
 * folders, format paths and make renames durable).
 *
 * No state, no locks: every function may be called from any thread.
 * Errors are negative errno values.
 */
#ifndef HOLLOWFS_STATE_FSUTIL_H
#define HOLLOWFS_STATE_FSUTIL_H

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* snprintf into out: 0, -ENAMETOOLONG when it does not fit, -EINVAL when
 * the format fails. */
int path_fmt(char *out, size_t outlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4), warn_unused_result));

/* path made absolute against the current folder (a daemon changes to
 * "/"): 0, -EINVAL for "", -ENAMETOOLONG, or the error of getcwd(3). */
int path_abs(const char *path, char *out, size_t outlen)
	__attribute__((warn_unused_result));

/* mkdir of one folder that accepts an existing folder; a path that
 * exists as anything else is -ENOTDIR. */
int mkdir_one(const char *path, mode_t mode)
	__attribute__((warn_unused_result));

/*
 * mkdir -p: creates path and every missing parent with mode. An existing
 * folder is fine; a part that exists as anything else is -ENOTDIR.
 * -ENAMETOOLONG past PATH_MAX, or the error of mkdir(2) or stat(2).
 */
int mkdir_p(const char *path, mode_t mode) __attribute__((warn_unused_result));

/* mkdir_p of the folder holding path (nothing when path has no '/'). */
int mkdir_parent(const char *path, mode_t mode)
	__attribute__((warn_unused_result));

/*
 * Opens the folder name inside dirfd (a file name, no '/') without
 * following a symbolic link: O_RDONLY | O_DIRECTORY | O_NOFOLLOW |
 * O_CLOEXEC. With create, it is made first (mode) if missing. A symbolic
 * link there is -ELOOP, anything else that is not a folder -ENOTDIR;
 * otherwise the error of mkdirat(2) or openat(2).
 */
int dir_open_at(int dirfd, const char *name, mode_t mode, bool create, int *out)
	__attribute__((warn_unused_result));

/* dir_open_at without create, as a DIR for readdir (it owns the
 * descriptor); NULL with errno set. name "." gives a second stream of
 * dirfd itself. */
DIR *dir_stream_at(int dirfd, const char *name);

/*
 * fsyncs the folder holding path ("." when path has no '/'), so that a
 * rename or link into it is durable. A file system that cannot fsync a
 * folder (EINVAL) is not an error.
 */
int fsync_parent(const char *path) __attribute__((warn_unused_result));

/* Raises the soft RLIMIT_NOFILE to the hard limit (a daemon serving many
 * files wants all it may have) and returns the soft limit then in force
 * (RLIM_INFINITY as UINT64_MAX). */
uint64_t nofile_raise(void);

/* How many blobs (4 descriptors each) may be open at once under a
 * descriptor limit: half of what is left once room is kept for
 * connections (two each: a socket and curl's own), FUSE worker threads
 * and the rest of the process; at least 16, at most 8192. */
size_t nofile_blob_budget(uint64_t nofile, unsigned int connections,
			  unsigned int threads);

#endif
