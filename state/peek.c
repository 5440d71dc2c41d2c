/*
 * peek.c: a blob's sidecar read from outside (see state/peek.h). Nothing
 * here creates a file: a tool looking at a cache leaves it as it was,
 * except for the repairs it was asked for.
 */
#include "state/peek.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state/cache.h"
#include "state/state_i.h"

/* The layout a sidecar claims in its header; -EBADMSG when it cannot be
 * one (too short): sidecar_load then says exactly what is wrong. */
static int header_layout(const char *path, struct sidecar_layout *l)
{
	uint8_t h[SIDECAR_HEADER_LEN];
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	n = pread(fd, h, sizeof(h), 0);
	if (n < 0)
		n = -errno;
	close(fd);
	if (n < 0)
		return (int)n;
	if ((size_t)n < sizeof(h))
		return -EBADMSG;
	memset(l, 0, sizeof(*l));
	l->file_size = get_le64(h + 16);
	l->chunk_size = get_le32(h + 24);
	memcpy(l->identity, h + 48, sizeof(l->identity));
	return 0;
}

/* The binding of the data file at path (as cache.c records it), and
 * whether it holds at least size bytes. */
static int data_binding(const char *path, uint64_t size,
			struct sidecar_layout *l, bool *whole)
{
	struct statx stx;

	if (statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW,
		  STATX_INO | STATX_BTIME | STATX_SIZE | STATX_TYPE, &stx) < 0)
		return -errno;
	*whole = S_ISREG(stx.stx_mode) && stx.stx_size >= size;
	l->data_ino = stx.stx_ino;
	l->data_birth_ns = 0;
	if (stx.stx_mask & STATX_BTIME)
		l->data_birth_ns =
			(uint64_t)stx.stx_btime.tv_sec * 1000000000u +
			stx.stx_btime.tv_nsec;
	return 0;
}

static int open_file(const struct cache *c, const char *hex, const char *suffix,
		     int flags, int *out)
{
	char path[PATH_MAX];
	int err;

	err = cache_blob_path(c, hex, suffix, path, sizeof(path));
	if (err)
		return err;
	*out = open(path, flags | O_CLOEXEC | O_NOFOLLOW);
	return *out < 0 ? -errno : 0;
}

/* Is fd still the lock file linked at hex's name? */
static bool lock_still_linked(const struct cache *c, const char *hex, int fd)
{
	char rel[NAME_MAX + 1];

	snprintf(rel, sizeof(rel), "%.2s/%s.lock", hex, hex);
	return cache_fd_linked_at(cache_area_fd(c, AREA_BLOBS), rel, fd);
}

int blob_peek_open(const struct cache *c, const char *hex, bool open_files,
		   struct blob_peek *p)
{
	char state[PATH_MAX], data[PATH_MAX], idhex[33];
	struct sidecar_layout l;
	bool whole = false;
	int err;

	memset(p, 0, sizeof(*p));
	p->data_fd = p->sums_fd = p->lock_fd = -1;
	if (strlen(hex) >= sizeof(p->hex))
		return -EINVAL;
	strcpy(p->hex, hex);
	err = cache_blob_path(c, hex, ".state", state, sizeof(state));
	if (!err)
		err = cache_blob_path(c, hex, "", data, sizeof(data));
	if (err)
		return err;
	err = header_layout(state, &l);
	if (!err) {
		/* A sidecar of another blob (a file copied in) is not
		 * this one's. */
		cache_identity_hex(l.identity, idhex);
		if (strcmp(idhex, hex))
			err = -ESTALE;
	}
	if (!err)
		err = data_binding(data, l.file_size, &l, &whole);
	if (!err && whole)
		err = sidecar_load(state, &l, &p->sc);
	if (err == -EIO || err == -ENOMEM)
		return err;
	/* Anything else (none, rejected, data gone): nothing trusted. */
	if (!open_files)
		return 0;
	/* In use, like a mount's open: no evictor removes it meanwhile. */
	err = open_file(c, hex, ".lock", O_RDWR, &p->lock_fd);
	if (!err)
		err = cache_blob_inuse_share(p->lock_fd);
	if (!err && !lock_still_linked(c, hex, p->lock_fd))
		err = -ENOENT; /* evicted just now */
	if (!err)
		err = open_file(c, hex, "", O_RDONLY, &p->data_fd);
	if (!err)
		err = open_file(c, hex, ".sums", O_RDWR, &p->sums_fd);
	if (err)
		blob_peek_release(p);
	return err;
}

void blob_peek_release(struct blob_peek *p)
{
	sidecar_free(p->sc);
	p->sc = NULL;
	if (p->data_fd >= 0)
		close(p->data_fd);
	if (p->sums_fd >= 0)
		close(p->sums_fd);
	if (p->lock_fd >= 0)
		close(p->lock_fd);
	p->data_fd = p->sums_fd = p->lock_fd = -1;
}

void blob_peek_chunk_range(const struct blob_peek *p, uint64_t idx,
			   uint64_t *off, uint64_t *len)
{
	uint64_t size = p->sc->layout.file_size;
	uint32_t cs = p->sc->layout.chunk_size;

	*off = idx * cs;
	*len = size - *off < cs ? size - *off : cs;
}

uint64_t blob_peek_done_bytes(const struct blob_peek *p)
{
	uint64_t i, off, len, n = 0;

	if (!p->sc)
		return 0;
	for (i = 0; i < p->sc->nchunks; i++) {
		if (!sidecar_test(p->sc, i))
			continue;
		blob_peek_chunk_range(p, i, &off, &len);
		n += len;
	}
	return n;
}

int blob_peek_drop(const struct cache *c, struct blob_peek *p, uint64_t first,
		   uint64_t last)
{
	char path[PATH_MAX];
	uint64_t i;
	int err;

	if (!p->sc || last >= p->sc->nchunks || first > last)
		return -EINVAL;
	err = cache_blob_path(c, p->hex, ".state", path, sizeof(path));
	if (err)
		return err;
	for (i = first; i <= last; i++) {
		if (!sidecar_test(p->sc, i))
			continue;
		p->sc->bits[i / 8] &= (uint8_t) ~(1u << (i % 8));
		p->sc->done_count--;
	}
	/* The bits first: a sums entry without its bit is only a hint. */
	err = sidecar_save(p->sc, path);
	if (err)
		return err;
	if (first == 0 && last + 1 == p->sc->nchunks) {
		err = cache_blob_path(c, p->hex, ".verified", path,
				      sizeof(path));
		if (err)
			return err;
		unlink(path);
	}
	for (i = first; i <= last; i++) {
		err = cache_sums_write(p->sums_fd, i, 0);
		if (err)
			return err;
	}
	return 0;
}
