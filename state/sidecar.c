/*
 * sidecar.c: the bitmap sidecar of a blob, encoded and decoded field by
 * field in little-endian (no struct is ever written as is).
 *
 * The encoding is canonical: the prefix is the whole run of complete
 * chunks at the front, the bitmap has no trailing zero byte and no bit
 * past the last chunk. sidecar_decode() accepts only that form, so a
 * decoded image encodes back to the same bytes.
 *
 * No locks: a struct sidecar belongs to one thread at a time.
 */
#include "state/sidecar.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "state/cache.h"
#include "state/state_i.h"

/* Offsets of the header fields (see sidecar.h). */
enum {
	OFF_MAGIC = 0,
	OFF_VERSION = 8,
	OFF_FLAGS = 12,
	OFF_FILE_SIZE = 16,
	OFF_CHUNK_SIZE = 24,
	OFF_RESERVED = 28,
	OFF_NCHUNKS = 32,
	OFF_DONE = 40,
	OFF_IDENTITY = 48,
	OFF_DATA_INO = 64,
	OFF_DATA_BIRTH = 72,
	OFF_PREFIX = 80,
	OFF_BITMAP_LEN = 88,
	TRAILER_LEN = 8,
};

bool chunk_size_valid(uint64_t chunk_size)
{
	return chunk_size >= CHUNK_SIZE_MIN && chunk_size <= CHUNK_SIZE_MAX &&
	       chunk_size % 4096 == 0;
}

uint64_t chunk_count(uint64_t file_size, uint32_t chunk_size)
{
	if (!chunk_size)
		return 0;
	/* Not (size + cs - 1) / cs: that overflows near UINT64_MAX. */
	return file_size / chunk_size + (file_size % chunk_size != 0);
}

/* Bytes needed for nbits bits; fails when that does not fit a size_t. */
static int bitmap_bytes(uint64_t nbits, size_t *out)
{
	uint64_t n = nbits / 8 + (nbits % 8 != 0);

	if (n > SIZE_MAX)
		return -ENOMEM;
	*out = (size_t)n;
	return 0;
}

int sidecar_new(const struct sidecar_layout *layout, struct sidecar **out)
{
	struct sidecar *sc;
	size_t nbytes;
	int err;

	*out = NULL;
	if (!chunk_size_valid(layout->chunk_size))
		return -EINVAL;
	sc = calloc(1, sizeof(*sc));
	if (!sc)
		return -ENOMEM;
	sc->layout = *layout;
	sc->nchunks = chunk_count(layout->file_size, layout->chunk_size);
	err = bitmap_bytes(sc->nchunks, &nbytes);
	if (err)
		goto out_free;
	/* At least one byte, so that an empty file has a valid pointer. */
	sc->bits = calloc(nbytes ? nbytes : 1, 1);
	if (!sc->bits) {
		err = -ENOMEM;
		goto out_free;
	}
	*out = sc;
	return 0;

out_free:
	free(sc);
	return err;
}

void sidecar_free(struct sidecar *sc)
{
	if (!sc)
		return;
	free(sc->bits);
	free(sc);
}

bool sidecar_test(const struct sidecar *sc, uint64_t idx)
{
	if (idx >= sc->nchunks)
		return false;
	return sc->bits[idx / 8] & (1u << (idx % 8));
}

void sidecar_set(struct sidecar *sc, uint64_t idx)
{
	if (idx >= sc->nchunks || sidecar_test(sc, idx))
		return;
	sc->bits[idx / 8] |= (uint8_t)(1u << (idx % 8));
	sc->done_count++;
}

/* Length of the run of set bits at the front of sc->bits. */
static uint64_t count_prefix(const struct sidecar *sc)
{
	uint64_t full = sc->nchunks / 8, i, n;

	for (i = 0; i < full && sc->bits[i] == 0xff; i++)
		;
	n = i * 8;
	if (n < sc->nchunks) {
		uint8_t b = sc->bits[i];

		while (n < sc->nchunks && (b & 1)) {
			b >>= 1;
			n++;
		}
	}
	return n;
}

/* The 8 bits of sc->bits starting at bit pos (zeros past the end). */
static uint8_t bits_at(const struct sidecar *sc, size_t nbytes, uint64_t pos)
{
	size_t byte = (size_t)(pos / 8);
	unsigned int shift = (unsigned int)(pos % 8);
	unsigned int v = sc->bits[byte] >> shift;

	if (shift && byte + 1 < nbytes)
		v |= (unsigned int)sc->bits[byte + 1] << (8 - shift);
	return (uint8_t)v;
}

int sidecar_encode(const struct sidecar *sc, void **img, size_t *len)
{
	uint64_t prefix, rest, done, j;
	size_t nbytes, rest_bytes, bm_len, total;
	uint8_t *p;
	int err;

	*img = NULL;
	*len = 0;
	err = bitmap_bytes(sc->nchunks, &nbytes);
	if (err)
		return err;
	prefix = count_prefix(sc);
	rest = sc->nchunks - prefix;
	rest_bytes = (size_t)(rest / 8 + (rest % 8 != 0));
	if (rest_bytes > SIZE_MAX - SIDECAR_HEADER_LEN - TRAILER_LEN)
		return -ENOMEM;
	p = calloc(1, SIDECAR_HEADER_LEN + rest_bytes + TRAILER_LEN);
	if (!p)
		return -ENOMEM;

	/* The bitmap of chunks prefix.., shifted to start at bit 0. */
	done = prefix;
	bm_len = 0;
	for (j = 0; j < rest_bytes; j++) {
		uint8_t b = bits_at(sc, nbytes, prefix + 8 * j);
		uint64_t left = rest - 8 * j;

		if (left < 8) /* never encode bits past the last chunk */
			b &= (uint8_t)((1u << left) - 1);
		p[SIDECAR_HEADER_LEN + j] = b;
		done += (uint64_t)__builtin_popcount(b);
		if (b)
			bm_len = (size_t)j + 1;
	}

	memcpy(p + OFF_MAGIC, SIDECAR_MAGIC, 8);
	put_le32(p + OFF_VERSION, SIDECAR_VERSION);
	put_le32(p + OFF_FLAGS, 0);
	put_le64(p + OFF_FILE_SIZE, sc->layout.file_size);
	put_le32(p + OFF_CHUNK_SIZE, sc->layout.chunk_size);
	put_le32(p + OFF_RESERVED, 0);
	put_le64(p + OFF_NCHUNKS, sc->nchunks);
	/* Counted from the bits, so the image is consistent by construction. */
	put_le64(p + OFF_DONE, done);
	memcpy(p + OFF_IDENTITY, sc->layout.identity, 16);
	put_le64(p + OFF_DATA_INO, sc->layout.data_ino);
	put_le64(p + OFF_DATA_BIRTH, sc->layout.data_birth_ns);
	put_le64(p + OFF_PREFIX, prefix);
	put_le64(p + OFF_BITMAP_LEN, bm_len);
	total = SIDECAR_HEADER_LEN + bm_len;
	put_le64(p + total, XXH3_64bits(p, total));

	*img = p;
	*len = total + TRAILER_LEN;
	return 0;
}

/* Fills sc->bits from a checked header and bitmap. */
static int decode_bits(struct sidecar *sc, uint64_t prefix, uint64_t done,
		       const uint8_t *bm, size_t bm_len)
{
	uint64_t rest = sc->nchunks - prefix, count = prefix;
	size_t j;

	if (bm_len > rest / 8 + (rest % 8 != 0))
		return -EMSGSIZE; /* bitmap too long */
	if (bm_len && !bm[bm_len - 1])
		return -EUCLEAN; /* trailing zero byte kept */
	if (bm_len && (bm[0] & 1))
		return -EUCLEAN; /* the prefix was not the whole run */
	if (bm_len) {
		uint64_t left = rest - 8 * (uint64_t)(bm_len - 1);

		if (left < 8 && (bm[bm_len - 1] >> left))
			return -EUCLEAN; /* bits past the last chunk */
	}

	memset(sc->bits, 0xff, (size_t)(prefix / 8));
	if (prefix % 8)
		sc->bits[prefix / 8] = (uint8_t)((1u << (prefix % 8)) - 1);
	for (j = 0; j < bm_len; j++) {
		uint64_t pos = prefix + 8 * (uint64_t)j;
		size_t byte = (size_t)(pos / 8);
		unsigned int shift = (unsigned int)(pos % 8);

		if (!bm[j])
			continue;
		count += (uint64_t)__builtin_popcount(bm[j]);
		sc->bits[byte] |= (uint8_t)(bm[j] << shift);
		/* Checked above: a spill only reaches an existing chunk. */
		if (shift && (bm[j] >> (8 - shift)))
			sc->bits[byte + 1] |= (uint8_t)(bm[j] >> (8 - shift));
	}
	if (count != done)
		return -EUCLEAN;
	sc->done_count = done;
	return 0;
}

int sidecar_decode(const void *img, size_t len,
		   const struct sidecar_layout *expect, struct sidecar **out)
{
	const uint8_t *p = img;
	struct sidecar *sc = NULL;
	uint64_t bm_len, nchunks, prefix, done, sum;
	uint32_t chunk_size;
	int err;

	*out = NULL;
	/* What kind of file is it? Then: is it whole? Then: is it intact? */
	if (len && memcmp(p, SIDECAR_MAGIC, len < 8 ? len : 8))
		return -EILSEQ;
	if (len >= OFF_FLAGS && get_le32(p + OFF_VERSION) != SIDECAR_VERSION)
		return -EPROTONOSUPPORT;
	if (len < SIDECAR_HEADER_LEN + TRAILER_LEN)
		return -EMSGSIZE;
	bm_len = get_le64(p + OFF_BITMAP_LEN);
	if (bm_len != len - SIDECAR_HEADER_LEN - TRAILER_LEN)
		return -EMSGSIZE;
	sum = get_le64(p + len - TRAILER_LEN);
	if (XXH3_64bits(p, len - TRAILER_LEN) != sum)
		return -EBADMSG;

	/* Intact; does it describe this blob? */
	if (get_le32(p + OFF_FLAGS))
		return -EPROTONOSUPPORT; /* a feature we do not know */
	if (get_le64(p + OFF_FILE_SIZE) != expect->file_size)
		return -ERANGE;
	chunk_size = get_le32(p + OFF_CHUNK_SIZE);
	if (chunk_size != expect->chunk_size || !chunk_size_valid(chunk_size))
		return -EDOM;
	if (memcmp(p + OFF_IDENTITY, expect->identity, 16))
		return -ESTALE;
	/* Its data file was deleted, truncated away or replaced since. */
	if (get_le64(p + OFF_DATA_INO) != expect->data_ino ||
	    get_le64(p + OFF_DATA_BIRTH) != expect->data_birth_ns)
		return -ENOLINK;

	/* And is it consistent? */
	nchunks = get_le64(p + OFF_NCHUNKS);
	prefix = get_le64(p + OFF_PREFIX);
	done = get_le64(p + OFF_DONE);
	if (get_le32(p + OFF_RESERVED) ||
	    nchunks != chunk_count(expect->file_size, chunk_size) ||
	    prefix > nchunks || done > nchunks)
		return -EUCLEAN;

	err = sidecar_new(expect, &sc);
	if (err)
		return err;
	err = decode_bits(sc, prefix, done, p + SIDECAR_HEADER_LEN,
			  (size_t)bm_len);
	if (err)
		goto out_free;
	*out = sc;
	return 0;

out_free:
	sidecar_free(sc);
	return err;
}

/* Reads and decodes the sidecar open at fd (closed here). */
static int sidecar_load_fd(int fd, const struct sidecar_layout *expect,
			   struct sidecar **out)
{
	uint64_t max_len;
	struct stat st;
	void *img = NULL;
	size_t len;
	int err;

	if (fstat(fd, &st) < 0) {
		err = -errno;
		goto out_close;
	}
	if (!S_ISREG(st.st_mode)) {
		err = S_ISDIR(st.st_mode) ? -EISDIR : -EINVAL;
		goto out_close;
	}
	/* Never read more than the largest valid image for this layout. */
	max_len = SIDECAR_HEADER_LEN + TRAILER_LEN +
		  chunk_count(expect->file_size, expect->chunk_size) / 8 + 1;
	if ((uint64_t)st.st_size > max_len) {
		err = -EMSGSIZE;
		goto out_close;
	}
	len = (size_t)st.st_size;
	img = malloc(len ? len : 1);
	if (!img) {
		err = -ENOMEM;
		goto out_close;
	}
	err = pread_all(fd, img, len, 0);
	if (err)
		goto out_free;
	err = sidecar_decode(img, len, expect, out);
out_free:
	free(img);
out_close:
	close(fd);
	return err;
}

/* O_NOFOLLOW: a planted link is never read through; O_NONBLOCK: nor does a
 * FIFO put in its place hang the open (S_ISREG is checked after). */
#define SIDECAR_OPEN_FLAGS (O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK)

int sidecar_load(const char *path, const struct sidecar_layout *expect,
		 struct sidecar **out)
{
	int fd;

	*out = NULL;
	fd = open(path, SIDECAR_OPEN_FLAGS);
	if (fd < 0)
		return -errno;
	return sidecar_load_fd(fd, expect, out);
}

int sidecar_load_at(int dirfd, const char *name,
		    const struct sidecar_layout *expect, struct sidecar **out)
{
	int fd;

	*out = NULL;
	fd = openat(dirfd, name, SIDECAR_OPEN_FLAGS);
	if (fd < 0)
		return -errno;
	return sidecar_load_fd(fd, expect, out);
}

int sidecar_save(const struct sidecar *sc, const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];
	int dirfd, err;

	/* A sidecar is a cache file: 0600, written as sidecar_save_at. */
	if (!slash) {
		strcpy(dir, ".");
	} else if ((size_t)(slash - path) >= sizeof(dir)) {
		return -ENAMETOOLONG;
	} else {
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = '\0';
		if (slash == path)
			strcpy(dir, "/");
	}
	dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dirfd < 0)
		return -errno;
	err = sidecar_save_at(sc, dirfd, slash ? slash + 1 : path);
	close(dirfd);
	return err;
}

int sidecar_save_at(const struct sidecar *sc, int dirfd, const char *name)
{
	void *img = NULL;
	size_t len;
	int err;

	err = sidecar_encode(sc, &img, &len); /* allocates img */
	if (err)
		return err;
	err = write_file_atomic_at(dirfd, name, img, len);
	free(img);
	return err;
}
