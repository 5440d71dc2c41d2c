/*
 * blob.c: a cached file's three files, its chunk map and the saver's step.
 *
 * No locks of its own: the chunk map locks itself, and blob_save() has a
 * single caller per blob (the scheduler's saver).
 */
#include "state/blob.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "state/hlog.h"
#include "state/state_i.h"

/* The errors by which sidecar_decode() rejects an image. */
static bool sidecar_rejected(int err)
{
	switch (err) {
	case -EILSEQ:
	case -EPROTONOSUPPORT:
	case -EMSGSIZE:
	case -EBADMSG:
	case -ERANGE:
	case -EDOM:
	case -ESTALE:
	case -EUCLEAN:
		return true;
	default:
		return false;
	}
}

/* Fills the map from the sidecar on disk, or starts over. */
static int blob_load_state(struct blob *b)
{
	struct sidecar *sc = NULL;
	int err;

	err = sidecar_load(b->sidecar_path, &b->layout, &sc);
	if (err == -ENOENT)
		return 0; /* new; another process may be filling sums */
	if (!err) {
		err = chunkmap_load(b->map, sc);
		sidecar_free(sc);
		return err;
	}
	if (!sidecar_rejected(err))
		return err; /* an I/O error: keep what is on disk */
	hlog(HLOG_WARN, HLOG_STATE, "sidecar '%s' rejected (%s): starting over",
	     b->sidecar_path, strerror(-err));
	err = cache_sums_clear(b->files.sums_fd, b->nchunks);
	if (err)
		return err;
	/*
	 * Gone, so that the next open (here or in another process) finds no
	 * sidecar rather than rejecting it again and clearing the sums that
	 * were written since. If it stays, that is all that happens.
	 */
	unlink(b->sidecar_path);
	return 0;
}

int blob_open(const struct cache *c, const char *kind, const char *content_id,
	      uint64_t size, uint32_t chunk_size, struct blob **out)
{
	char path[PATH_MAX];
	struct blob *b;
	int err;

	*out = NULL;
	if (!chunk_size_valid(chunk_size))
		return -EINVAL;
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	b->files.data_fd = b->files.sums_fd = b->files.lock_fd = -1;
	b->layout.file_size = size;
	b->layout.chunk_size = chunk_size;
	cache_identity(kind, content_id, size, b->layout.identity);
	cache_identity_hex(b->layout.identity, b->hex);
	b->nchunks = chunk_count(size, chunk_size);

	err = cache_blob_path(c, b->hex, ".state", path, sizeof(path));
	if (err)
		goto out_free;
	b->sidecar_path = strdup(path);
	if (!b->sidecar_path) {
		err = -ENOMEM;
		goto out_free;
	}
	err = chunkmap_new(size, chunk_size, &b->map);
	if (err)
		goto out_free;
	err = cache_blob_open(c, b->hex, size, chunk_size, &b->files);
	if (err)
		goto out_free;
	err = blob_load_state(b);
	if (err)
		goto out_free;
	*out = b;
	return 0;

out_free:
	blob_free(b);
	return err;
}

void blob_free(struct blob *b)
{
	if (!b)
		return;
	cache_blob_files_close(&b->files);
	chunkmap_free(b->map);
	free(b->sidecar_path);
	free(b);
}

int blob_save(struct blob *b)
{
	struct sidecar *snap = NULL;
	int err;

	err = sidecar_new(&b->layout, &snap);
	if (err)
		return err;
	if (!chunkmap_sync_begin(b->map, snap))
		goto out_free; /* nothing new since the last save */
	/* The bytes first: a bit never reaches disk before its chunk. */
	if (fdatasync(b->files.data_fd) < 0 ||
	    fdatasync(b->files.sums_fd) < 0) {
		err = -errno;
		goto out_free;
	}
	err = sidecar_save(snap, b->sidecar_path);
	if (err)
		goto out_free;
	chunkmap_sync_end(b->map, snap);
out_free:
	sidecar_free(snap);
	return err;
}

int blob_probe_chunk(struct blob *b, uint64_t idx, bool *done)
{
	uint64_t off, len;

	*done = false;
	if (idx >= b->nchunks)
		return -EINVAL;
	chunkmap_chunk_range(b->map, idx, &off, &len);
	return cache_chunk_check(b->files.data_fd, b->files.sums_fd, idx, off,
				 len, done);
}

int blob_sums_entry(const struct blob *b, uint64_t idx, uint64_t *sum)
{
	uint8_t le[8];
	ssize_t n;

	*sum = 0;
	if (idx >= b->nchunks)
		return -EINVAL;
	do
		n = pread(b->files.sums_fd, le, sizeof(le), (off_t)(idx * 8));
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	if (n == (ssize_t)sizeof(le))
		*sum = get_le64(le);
	return 0;
}
