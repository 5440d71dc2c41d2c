/* verify.c: whole-file hashes of blobs (OpenSSL libcrypto), and markers. */
#include "state/verify.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
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

static int marker_path(const struct blob *b, char *out, size_t len)
{
	int n = snprintf(out, len, "%s", b->sidecar_path);
	char *dot;

	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	dot = strrchr(out, '.'); /* ".state" */
	if (!dot || (size_t)(dot - out) + sizeof(".verified") > len)
		return -ENAMETOOLONG;
	strcpy(dot, ".verified");
	return 0;
}

bool verify_marked(const struct blob *b, const char *kind, const char *hash)
{
	char path[4096], want[128], got[128];
	ssize_t n;
	int fd;

	if (marker_path(b, path, sizeof(path)))
		return false;
	if (snprintf(want, sizeof(want), "%s %s\n", kind, hash) >=
	    (int)sizeof(want))
		return false;
	fd = open(path, O_RDONLY | O_CLOEXEC);
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
	char path[4096], line[128];
	int n, err;

	err = marker_path(b, path, sizeof(path));
	if (err)
		return err;
	n = snprintf(line, sizeof(line), "%s %s\n", kind, hash);
	if (n < 0 || n >= (int)sizeof(line))
		return -EINVAL;
	return write_file_atomic(path, line, (size_t)n);
}

int verify_discard(struct blob *b)
{
	char path[4096];
	uint64_t i;
	int err;

	if (!marker_path(b, path, sizeof(path)))
		unlink(path);
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
