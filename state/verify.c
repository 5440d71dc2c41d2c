/* verify.c: whole-file hashes of blobs (OpenSSL libcrypto), and markers. */
#include "state/verify.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "state/blob.h"
#include "state/cache.h"
#include "state/chunkmap.h"

#define VERIFY_BLOCK (1u << 20)

bool verify_kind_known(const char *kind)
{
	return kind && (!strcmp(kind, "sha256") || !strcmp(kind, "git-sha1"));
}

static void to_hex(const unsigned char *md, unsigned int len,
		   char hex[VERIFY_HEX_MAX])
{
	static const char digits[] = "0123456789abcdef";
	unsigned int i;

	for (i = 0; i < len && 2 * i + 2 < VERIFY_HEX_MAX; i++) {
		hex[2 * i] = digits[md[i] >> 4];
		hex[2 * i + 1] = digits[md[i] & 15];
	}
	hex[2 * i] = '\0';
}

int verify_blob(const struct blob *b, const char *kind,
		char hex[VERIFY_HEX_MAX], bool (*cancelled)(void))
{
	uint64_t size = b->layout.file_size, off = 0;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *ctx = NULL;
	char *buf = NULL;
	int err = 0;

	if (!verify_kind_known(kind))
		return -EINVAL;
	ctx = EVP_MD_CTX_new();
	buf = malloc(VERIFY_BLOCK);
	if (!ctx || !buf) {
		err = -ENOMEM;
		goto out;
	}
	if (!EVP_DigestInit_ex(
		    ctx, strcmp(kind, "sha256") ? EVP_sha1() : EVP_sha256(),
		    NULL)) {
		err = -EIO;
		goto out;
	}
	if (!strcmp(kind, "git-sha1")) {
		char hdr[48];
		int n = snprintf(hdr, sizeof(hdr), "blob %" PRIu64, size);

		/* The header's NUL is part of the object. */
		EVP_DigestUpdate(ctx, hdr, (size_t)n + 1);
	}
	while (off < size) {
		size_t n = size - off < VERIFY_BLOCK ? (size_t)(size - off) :
						       VERIFY_BLOCK;

		if (cancelled && cancelled()) {
			err = -ECANCELED;
			goto out;
		}
		err = pread_all(b->files.data_fd, buf, n, off);
		if (err)
			goto out;
		EVP_DigestUpdate(ctx, buf, n);
		off += n;
	}
	if (!EVP_DigestFinal_ex(ctx, md, &mdlen)) {
		err = -EIO;
		goto out;
	}
	to_hex(md, mdlen, hex);
	/* The bytes were read through the page cache: let them go. */
	posix_fadvise(b->files.data_fd, 0, 0, POSIX_FADV_DONTNEED);
out:
	free(buf);
	EVP_MD_CTX_free(ctx);
	return err;
}

struct verify_ctx {
	EVP_MD_CTX *md;
	char *buf; /* VERIFY_BLOCK bytes */
};

int verify_ctx_new(const char *kind, uint64_t size, struct verify_ctx **out)
{
	struct verify_ctx *c;
	int err = 0;

	*out = NULL;
	if (!verify_kind_known(kind))
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->md = EVP_MD_CTX_new();
	c->buf = malloc(VERIFY_BLOCK);
	if (!c->md || !c->buf) {
		err = -ENOMEM;
		goto out_free;
	}
	if (!EVP_DigestInit_ex(
		    c->md, strcmp(kind, "sha256") ? EVP_sha1() : EVP_sha256(),
		    NULL)) {
		err = -EIO;
		goto out_free;
	}
	if (!strcmp(kind, "git-sha1")) {
		char hdr[48];
		int n = snprintf(hdr, sizeof(hdr), "blob %" PRIu64, size);

		/* The header's NUL is part of the object. */
		EVP_DigestUpdate(c->md, hdr, (size_t)n + 1);
	}
	*out = c;
	return 0;
out_free:
	verify_ctx_free(c);
	return err;
}

int verify_ctx_feed(struct verify_ctx *c, int fd, uint64_t off, uint64_t len,
		    bool (*cancelled)(void))
{
	while (len) {
		size_t n = len < VERIFY_BLOCK ? (size_t)len : VERIFY_BLOCK;
		int err;

		if (cancelled && cancelled())
			return -ECANCELED;
		err = pread_all(fd, c->buf, n, off);
		if (err)
			return err;
		EVP_DigestUpdate(c->md, c->buf, n);
		off += n;
		len -= n;
	}
	return 0;
}

int verify_ctx_final(struct verify_ctx *c, char hex[VERIFY_HEX_MAX])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!EVP_DigestFinal_ex(c->md, md, &mdlen))
		return -EIO;
	to_hex(md, mdlen, hex);
	return 0;
}

void verify_ctx_free(struct verify_ctx *c)
{
	if (!c)
		return;
	EVP_MD_CTX_free(c->md);
	free(c->buf);
	free(c);
}

static int marker_name(const struct blob *b, char *out, size_t len)
{
	int n = snprintf(out, len, "%s.verified", b->hex);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* "KIND HASH INO BIRTH\n": bound to the data file the hash was taken of,
 * as the sidecar is (a data file made again is hashed again). */
static int marker_line(const struct blob *b, const char *kind, const char *hash,
		       char *out, size_t len)
{
	int n = snprintf(out, len, "%s %s %" PRIu64 " %" PRIu64 "\n", kind,
			 hash, b->layout.data_ino, b->layout.data_birth_ns);

	return n < 0 || (size_t)n >= len ? -EINVAL : 0;
}

bool verify_marked(const struct blob *b, const char *kind, const char *hash)
{
	char name[NAME_MAX + 1], want[192], got[192];
	ssize_t n;
	int fd;

	if (marker_name(b, name, sizeof(name)) ||
	    marker_line(b, kind, hash, want, sizeof(want)))
		return false;
	/* Never through a link, nor hanging on a FIFO put there. */
	fd = openat(b->files.dir_fd, name,
		    O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
	if (fd < 0)
		return false;
	n = read(fd, got, sizeof(got) - 1);
	close(fd);
	if (n < 0)
		return false;
	got[n] = '\0';
	return !strcmp(got, want);
}

int verify_mark(const struct blob *b, const char *kind, const char *hash)
{
	char name[NAME_MAX + 1], line[192];
	int err;

	err = marker_name(b, name, sizeof(name));
	if (!err)
		err = marker_line(b, kind, hash, line, sizeof(line));
	if (err)
		return err;
	return write_file_atomic_at(b->files.dir_fd, name, line, strlen(line));
}

int verify_discard(struct blob *b)
{
	char name[NAME_MAX + 1];
	uint64_t i;
	int err;

	if (!marker_name(b, name, sizeof(name)))
		unlinkat(b->files.dir_fd, name, 0);
	for (i = 0; i < b->nchunks; i++)
		chunkmap_set(b->map, i, CHUNK_MISSING);
	err = cache_sums_clear(b->files.sums_fd, b->nchunks);
	if (err)
		return err;
	/* Where holes cannot be punched the bytes stay, untrusted. */
	if (b->layout.file_size)
		(void)fallocate(b->files.data_fd,
				FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0,
				(off_t)b->layout.file_size);
	return blob_save(b);
}
