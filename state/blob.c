/*
 * blob.c: a cached file's three files, its chunk map and the saver's step.
 *
 * No locks of its own: the chunk map locks itself, and blob_save() has a
 * single caller per blob (the scheduler's saver).
 */
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include "state/blob.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

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
	case -ENOLINK: /* bound to another data file */
	case -EUCLEAN:
	case -ELOOP: /* a symbolic link: never followed, removed below */
	case -EINVAL: /* a FIFO or device in its place */
		return true;
	default:
		return false;
	}
}

/* For log lines: the data file's path is sidecar_path less ".state". */
static int data_path_len(const struct blob *b)
{
	return (int)(strlen(b->sidecar_path) - strlen(".state"));
}

/* Whether the blob has a .verified marker (of any content). */
static bool marker_exists(const struct blob *b)
{
	char name[NAME_MAX + 1];
	struct stat st;

	snprintf(name, sizeof(name), "%s.verified", b->hex);
	return !fstatat(b->files.dir_fd, name, &st, AT_SYMLINK_NOFOLLOW);
}

/* Forgets what the sidecar and the marker said: sums cleared, both
 * removed. */
static int blob_start_over(struct blob *b)
{
	char name[NAME_MAX + 1];
	int err;

	err = cache_sums_clear(b->files.sums_fd, b->nchunks);
	if (err)
		return err;
	/*
	 * Gone, so that the next open (here or in another process) finds no
	 * sidecar rather than rejecting it again and clearing the sums that
	 * were written since. If it stays, that is all that happens: it is
	 * rejected again. unlinkat never follows a link.
	 */
	unlinkat(b->files.dir_fd, b->state_name, 0);
	snprintf(name, sizeof(name), "%s.verified", b->hex);
	unlinkat(b->files.dir_fd, name, 0);
	return 0;
}

/* Fills the map from the sidecar on disk, or starts over. */
static int blob_load_state(struct blob *b)
{
	struct sidecar *sc = NULL;
	int err;

	err = sidecar_load_at(b->files.dir_fd, b->state_name, &b->layout, &sc);
	if (b->files.data_short && b->nchunks) {
		/*
		 * The data file was missing or cut short (space freed, a
		 * tmp cleaner): the bytes a sidecar or marker vouches for
		 * are gone, whatever the sidecar says (the inode number of
		 * a new file may be the old one's).
		 */
		sidecar_free(sc);
		if (err == -ENOENT && !marker_exists(b))
			return blob_start_over(b); /* new: nothing to say */
		if (err && err != -ENOENT && !sidecar_rejected(err))
			return err; /* an I/O error: keep what is on disk */
		hlog(HLOG_WARN, HLOG_STATE,
		     "data file '%.*s' was missing or short: its sidecar "
		     "is not trusted, starting over",
		     data_path_len(b), b->sidecar_path);
		return blob_start_over(b);
	}
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
	     b->sidecar_path,
	     err == -ENOLINK ? "it describes another data file" :
			       strerror(-err));
	return blob_start_over(b);
}

void blob_identity(const char *kind, const char *content_id, uint64_t size,
		   uint32_t chunk_size, uint8_t identity[16])
{
	XXH3_state_t st;
	XXH128_canonical_t canon;
	uint8_t le[12];

	if (chunk_size == BLOB_CHUNK_SIZE_DEFAULT) {
		cache_identity(kind, content_id, size, identity);
		return;
	}
	if (!kind)
		kind = "";
	if (!content_id)
		content_id = "";
	put_le64(le, size);
	put_le32(le + 8, chunk_size);
	XXH3_128bits_reset(&st);
	XXH3_128bits_update(&st, kind, strlen(kind) + 1);
	XXH3_128bits_update(&st, content_id, strlen(content_id) + 1);
	XXH3_128bits_update(&st, le, sizeof(le));
	XXH128_canonicalFromHash(&canon, XXH3_128bits_digest(&st));
	memcpy(identity, canon.digest, 16);
}

void blob_identity_hex(const char *kind, const char *content_id, uint64_t size,
		       uint32_t chunk_size, char hex[33])
{
	uint8_t id[16];

	blob_identity(kind, content_id, size, chunk_size, id);
	cache_identity_hex(id, hex);
}

/* Has blob hex a data file (a regular file) in c? */
static bool data_file_exists(const struct cache *c, const char *hex)
{
	char rel[64];
	struct stat st;

	snprintf(rel, sizeof(rel), "%.2s/%s", hex, hex);
	return !fstatat(cache_area_fd(c, AREA_BLOBS), rel, &st,
			AT_SYMLINK_NOFOLLOW) &&
	       S_ISREG(st.st_mode);
}

int blob_find(const struct cache *c, const char *kind, const char *content_id,
	      uint64_t size, uint32_t prefer, char hex[33],
	      uint32_t *chunk_size)
{
	uint32_t first = prefer ? prefer : BLOB_CHUNK_SIZE_DEFAULT;
	uint32_t cs;

	blob_identity_hex(kind, content_id, size, first, hex);
	*chunk_size = first;
	if (data_file_exists(c, hex))
		return 0;
	if (first != BLOB_CHUNK_SIZE_DEFAULT) {
		blob_identity_hex(kind, content_id, size,
				  BLOB_CHUNK_SIZE_DEFAULT, hex);
		*chunk_size = BLOB_CHUNK_SIZE_DEFAULT;
		if (data_file_exists(c, hex))
			return 0;
	}
	for (cs = CHUNK_SIZE_MIN; cs && cs <= CHUNK_SIZE_MAX; cs *= 2) {
		if (cs == first || cs == BLOB_CHUNK_SIZE_DEFAULT)
			continue;
		blob_identity_hex(kind, content_id, size, cs, hex);
		*chunk_size = cs;
		if (data_file_exists(c, hex))
			return 0;
	}
	blob_identity_hex(kind, content_id, size, first, hex);
	*chunk_size = first;
	return -ENOENT;
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
	b->files.dir_fd = -1;
	b->layout.file_size = size;
	b->layout.chunk_size = chunk_size;
	blob_identity(kind, content_id, size, chunk_size, b->layout.identity);
	cache_identity_hex(b->layout.identity, b->hex);
	b->nchunks = chunk_count(size, chunk_size);
	snprintf(b->state_name, sizeof(b->state_name), "%s.state", b->hex);

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
	/* Under the setup lock until the state is loaded (cache.h). */
	err = cache_blob_open_begin(c, b->hex, size, chunk_size, &b->files);
	if (err)
		goto out_free;
	/* The sidecar is bound to this data file (sidecar.h). */
	b->layout.data_ino = b->files.data_ino;
	b->layout.data_birth_ns = b->files.data_birth_ns;
	err = blob_load_state(b);
	if (!err)
		err = cache_blob_open_end(&b->files);
	if (err)
		goto out_free; /* closing the files releases the lock */
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

/*
 * A sync failed: the chunks not durable yet lost their bytes for all we
 * know. Drops them (MISSING, sums entries cleared) so they are fetched
 * again, rather than recorded by the next sync, which would succeed.
 * dropped: an empty set of this layout, allocated before the sync so
 * that this cannot fail.
 */
static void blob_drop_undurable(struct blob *b, struct sidecar *dropped,
				int sync_err)
{
	uint64_t i, n;

	n = chunkmap_drop_undurable(b->map, dropped);
	for (i = 0; i < b->nchunks && n; i++) {
		int werr;

		if (!sidecar_test(dropped, i))
			continue;
		/* An entry that cannot be cleared fails its check anyway
		 * once the bytes are gone; the chunk is MISSING here. */
		werr = cache_sums_write(b->files.sums_fd, i, 0);
		(void)werr;
	}
	if (n)
		hlog(HLOG_WARN, HLOG_STATE,
		     "syncing '%.*s' failed (%s): %llu chunks not on disk, "
		     "dropped to be fetched again",
		     data_path_len(b), b->sidecar_path, strerror(-sync_err),
		     (unsigned long long)n);
}

int blob_save(struct blob *b)
{
	struct sidecar *snap = NULL, *dropped = NULL;
	int err;

	err = sidecar_new(&b->layout, &snap);
	if (!err)
		err = sidecar_new(&b->layout, &dropped);
	if (err)
		goto out_free;
	if (!chunkmap_sync_begin(b->map, snap))
		goto out_free; /* nothing new since the last save */
	/* The bytes first: a bit never reaches disk before its chunk. */
	if (fdatasync(b->files.data_fd) < 0 ||
	    fdatasync(b->files.sums_fd) < 0) {
		err = -errno;
		blob_drop_undurable(b, dropped, err);
		goto out_free;
	}
	err = sidecar_save_at(snap, b->files.dir_fd, b->state_name);
	if (err)
		goto out_free;
	chunkmap_sync_end(b->map, snap);
out_free:
	sidecar_free(dropped);
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

int blob_punch(struct blob *b, const uint64_t *idx, size_t n, uint64_t *freed)
{
	struct stat st;
	uint64_t before, off, len;
	size_t i;
	int err;

	*freed = 0;
	for (i = 0; i < n; i++)
		if (idx[i] >= b->nchunks)
			return -EINVAL;
	if (fstat(b->files.data_fd, &st) < 0)
		return -errno;
	if (st.st_nlink > 1)
		return -EMLINK;
	before = (uint64_t)st.st_blocks * 512;
	for (i = 0; i < n; i++)
		if (chunkmap_get(b->map, idx[i]) == CHUNK_DONE)
			chunkmap_set(b->map, idx[i], CHUNK_MISSING);
	for (i = 0; i < n; i++) {
		err = cache_sums_write(b->files.sums_fd, idx[i], 0);
		if (err)
			return err;
	}
	/* The bits leave the disk before the bytes do. */
	err = blob_save(b);
	if (err)
		return err;
	if (fdatasync(b->files.sums_fd) < 0)
		return -errno;
	for (i = 0; i < n; i++) {
		chunkmap_chunk_range(b->map, idx[i], &off, &len);
		if (fallocate(b->files.data_fd,
			      FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      (off_t)off, (off_t)len) < 0)
			return errno == ENOSYS ? -EOPNOTSUPP : -errno;
	}
	if (fstat(b->files.data_fd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_blocks * 512 < before)
		*freed = before - (uint64_t)st.st_blocks * 512;
	return 0;
}

uint64_t blob_allocated(const struct blob *b)
{
	struct stat st;
	uint64_t n = 0;

	if (!fstat(b->files.data_fd, &st))
		n += (uint64_t)st.st_blocks * 512;
	if (!fstat(b->files.sums_fd, &st))
		n += (uint64_t)st.st_blocks * 512;
	if (!fstatat(b->files.dir_fd, b->state_name, &st, AT_SYMLINK_NOFOLLOW))
		n += (uint64_t)st.st_blocks * 512;
	return n;
}
