/*
 * fsutil.c: file and path helpers (see state/fsutil.h). No state.
 */
#include "state/fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

int path_fmt(char *out, size_t outlen, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, outlen, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	if ((size_t)n >= outlen)
		return -ENAMETOOLONG;
	return 0;
}

int path_abs(const char *path, char *out, size_t outlen)
{
	char cwd[PATH_MAX];

	if (!*path)
		return -EINVAL;
	if (path[0] == '/')
		return path_fmt(out, outlen, "%s", path);
	if (!getcwd(cwd, sizeof(cwd)))
		return -errno;
	return path_fmt(out, outlen, "%s/%s", cwd, path);
}

int mkdir_one(const char *path, mode_t mode)
{
	struct stat st;

	if (!mkdir(path, mode))
		return 0;
	if (errno != EEXIST)
		return -errno;
	if (stat(path, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* mkdir -p of the first len bytes of path. */
static int mkdir_upto(const char *path, size_t len, mode_t mode)
{
	char buf[PATH_MAX];
	char *p;
	int err;

	if (!len)
		return 0;
	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len);
	buf[len] = '\0';
	for (p = buf + 1; *p; p++) {
		if (*p != '/' || p[-1] == '/')
			continue;
		*p = '\0';
		err = mkdir_one(buf, mode);
		*p = '/';
		if (err)
			return err;
	}
	return mkdir_one(buf, mode);
}

int mkdir_p(const char *path, mode_t mode)
{
	return mkdir_upto(path, strlen(path), mode);
}

int mkdir_parent(const char *path, mode_t mode)
{
	const char *slash = strrchr(path, '/');

	return slash ? mkdir_upto(path, (size_t)(slash - path), mode) : 0;
}

int dir_open_at(int dirfd, const char *name, mode_t mode, bool create, int *out)
{
	struct stat st;
	int fd;

	*out = -1;
	if (create && mkdirat(dirfd, name, mode) < 0 && errno != EEXIST)
		return -errno;
	fd = openat(dirfd, name,
		    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0) {
		*out = fd;
		return 0;
	}
	/* O_DIRECTORY | O_NOFOLLOW on a link may say either ENOTDIR or
	 * ELOOP: look, so that callers can tell a planted link apart. */
	if (errno != ENOTDIR && errno != ELOOP)
		return -errno;
	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return -errno;
	return S_ISLNK(st.st_mode) ? -ELOOP : -ENOTDIR;
}

DIR *dir_stream_at(int dirfd, const char *name)
{
	DIR *d;
	int fd, err;

	err = dir_open_at(dirfd, name, 0, false, &fd);
	if (err) {
		errno = -err;
		return NULL;
	}
	d = fdopendir(fd);
	if (!d)
		close(fd);
	return d;
}

int fsync_parent(const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];
	int fd, err = 0;

	if (!slash) {
		strcpy(dir, ".");
	} else if (slash == path) {
		strcpy(dir, "/");
	} else if ((size_t)(slash - path) >= sizeof(dir)) {
		return -ENAMETOOLONG;
	} else {
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = '\0';
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0 && errno != EINVAL)
		err = -errno;
	close(fd);
	return err;
}

uint64_t nofile_raise(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return 1024;
	if (rl.rlim_cur < rl.rlim_max) {
		struct rlimit want = { rl.rlim_max, rl.rlim_max };

		if (!setrlimit(RLIMIT_NOFILE, &want))
			rl.rlim_cur = rl.rlim_max;
	}
	return rl.rlim_cur == RLIM_INFINITY ? UINT64_MAX :
					      (uint64_t)rl.rlim_cur;
}

size_t nofile_blob_budget(uint64_t nofile, unsigned int connections,
			  unsigned int threads)
{
	uint64_t keep = 64 + 2 * (uint64_t)connections + threads, n;

	/* 4 each, and as much again for what else comes and goes (an
	 * export's copy, the evictor's scans, a listing's sockets). */
	n = nofile > keep ? (nofile - keep) / 8 : 0;
	if (n < 16)
		n = 16;
	if (n > 8192)
		n = 8192;
	return (size_t)n;
}
