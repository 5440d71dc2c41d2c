/*
 * sidecar: the on-disk record of which chunks of a blob are complete
 * (DESIGN.md "The sidecar").
 *
 * Format, little-endian, fixed width:
 *   0  char[8]  magic "HOLWSCAR"
 *   8  u32      version (2)
 *  12  u32      flags (0; reserved)
 *  16  u64      file size in bytes
 *  24  u32      chunk size in bytes
 *  28  u32      reserved (0)
 *  32  u64      number of chunks = ceil(file size / chunk size)
 *  40  u64      done count
 *  48  u8[16]   content identity (xxh128 of the blob's identity)
 *  64  u64      inode number of the data file it describes
 *  72  u64      birth time of that data file, in ns since the epoch (0
 *               where the file system does not record one)
 *  80  u64      prefix: chunks 0..prefix-1 are all complete
 *  88  u64      bitmap length in bytes (trailing zero bytes are dropped)
 *  96  u8[]     bitmap of chunks prefix.., bit i of byte j = chunk
 *               prefix + 8j + i
 *  ..  u64      xxh3-64 of every byte before it
 *
 * The encoding is canonical: the prefix is the whole run of complete
 * chunks at the front (so bit 0 of the bitmap is clear), the bitmap has no
 * trailing zero byte and no bit past the last chunk, and the done count is
 * the number of complete chunks. sidecar_decode() accepts nothing else, so
 * decoding then encoding gives back the same bytes.
 *
 * A sidecar is bound to its data file (DESIGN.md "Blob lifetime"): a data
 * file deleted and made again, or replaced by another file, has another
 * inode or birth time, and the sidecar then says nothing about its bytes.
 * Version 1 had no binding; it is rejected like any unknown version.
 */
#ifndef HOLLOWFS_STATE_SIDECAR_H
#define HOLLOWFS_STATE_SIDECAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIDECAR_MAGIC "HOLWSCAR"
#define SIDECAR_VERSION 2
#define SIDECAR_HEADER_LEN 96
#define CHUNK_SIZE_MIN (64u << 10)
#define CHUNK_SIZE_MAX (64u << 20)

/* What a sidecar must match to be trusted. */
struct sidecar_layout {
	uint64_t file_size;
	uint32_t chunk_size;
	uint8_t identity[16];
	/* The data file it describes: its inode number and birth time
	 * (ns; 0 when unknown). Both 0 for a sidecar bound to nothing. */
	uint64_t data_ino;
	uint64_t data_birth_ns;
};

struct sidecar {
	struct sidecar_layout layout;
	uint64_t nchunks;
	uint64_t done_count; /* kept equal to the bits set */
	uint8_t *bits; /* nchunks bits, owned */
};

/* True when chunk_size is a multiple of 4 KiB in [64 KiB, 64 MiB]. */
bool chunk_size_valid(uint64_t chunk_size);

/* ceil(file_size / chunk_size); 0 for an empty file. */
uint64_t chunk_count(uint64_t file_size, uint32_t chunk_size);

/* Returns a new, empty sidecar for layout (copied). -EINVAL on a bad
 * chunk size, -ENOMEM. */
int sidecar_new(const struct sidecar_layout *layout, struct sidecar **out)
	__attribute__((warn_unused_result));
void sidecar_free(struct sidecar *sc); /* accepts NULL */

bool sidecar_test(const struct sidecar *sc, uint64_t idx);
void sidecar_set(struct sidecar *sc, uint64_t idx); /* keeps done_count */

/* Encodes into a new malloc'd image (*img, owned by the caller). The done
 * count written is counted from the bits (sc->done_count is not read);
 * bits past nchunks in sc->bits are ignored. -ENOMEM. */
int sidecar_encode(const struct sidecar *sc, void **img, size_t *len)
	__attribute__((warn_unused_result));

/*
 * Decodes an image, checking it against expect. Errors, each distinct:
 *   -EILSEQ           wrong magic (also when shorter than 8 bytes)
 *   -EPROTONOSUPPORT  unknown version, or unknown flags
 *   -EMSGSIZE         length does not fit the header (truncated, trailing
 *                     bytes, bitmap too long for the chunks after prefix)
 *   -EBADMSG          checksum mismatch
 *   -ERANGE           file size differs from expect
 *   -EDOM             chunk size differs (or is invalid)
 *   -ESTALE           identity differs
 *   -ENOLINK          bound to another data file (inode or birth time)
 *   -EUCLEAN          inconsistent fields: chunks, prefix, done count,
 *                     reserved not 0, a bit past the last chunk, or not
 *                     canonical (prefix not the whole run, trailing zero
 *                     byte in the bitmap)
 *   -ENOMEM
 * Checked in this order: magic, version, length, checksum, then the rest.
 * On error *out is NULL.
 */
int sidecar_decode(const void *img, size_t len,
		   const struct sidecar_layout *expect, struct sidecar **out)
	__attribute__((warn_unused_result));

/* Reads and decodes path; -ENOENT when it does not exist, -EISDIR, -ELOOP
 * for a symbolic link (never followed), -EINVAL for another kind of file,
 * else as sidecar_decode or a read error. A file longer than any image for
 * expect is -EMSGSIZE without being read. */
int sidecar_load(const char *path, const struct sidecar_layout *expect,
		 struct sidecar **out) __attribute__((warn_unused_result));
/* The same for the file name inside the folder dirfd. */
int sidecar_load_at(int dirfd, const char *name,
		    const struct sidecar_layout *expect, struct sidecar **out)
	__attribute__((warn_unused_result));

/* Writes path.tmp.RANDOM (0600), fsyncs it, renames it over path (a link
 * there is replaced, never followed) and fsyncs the folder
 * (write_file_atomic_at() in state/cache.h). On error path is the old
 * file, or, if only the folder's fsync failed, the new one. */
int sidecar_save(const struct sidecar *sc, const char *path)
	__attribute__((warn_unused_result));
/* The same for the file name inside the folder dirfd, mode 0600
 * (write_file_atomic_at()): a link at name is replaced, never followed. */
int sidecar_save_at(const struct sidecar *sc, int dirfd, const char *name)
	__attribute__((warn_unused_result));

#endif
