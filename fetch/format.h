/*
 * format: the tensor layout of model files, from their headers, for the
 * prefetcher (fetch/prefetch.h): .safetensors (u64 LE header length N,
 * N bytes of JSON whose tensors give data_offsets [begin, end) relative
 * to 8 + N) and .gguf (v2 and v3: key/value metadata, then tensor infos,
 * then data at general.alignment, default 32).
 *
 * Pure code on a caller's buffer, bounded: a header may be at most
 * FORMAT_HEADER_MAX bytes, a file at most FORMAT_TENSORS_MAX tensors;
 * every length is checked, and hostile headers (counts past the buffer,
 * offsets past the file, overlapping tensors) return an error. No
 * threads, no locks; a struct format_map is immutable once built.
 */
#ifndef HOLLOWFS_FETCH_FORMAT_H
#define HOLLOWFS_FETCH_FORMAT_H

#include <stddef.h>
#include <stdint.h>

#define FORMAT_HEADER_MAX (64u << 20)
#define FORMAT_TENSORS_MAX (1u << 20)

enum format_kind {
	FORMAT_NONE,
	FORMAT_SAFETENSORS,
	FORMAT_GGUF,
};

/* One tensor's bytes, absolute file offsets [off, end). */
struct format_extent {
	uint64_t off;
	uint64_t end;
};

struct format_map {
	enum format_kind kind;
	uint64_t data_off; /* where tensor data starts */
	size_t n; /* tensors with bytes, sorted by off, not overlapping */
	struct format_extent *ext;
};

/* The kind a file name says (".safetensors", ".gguf"), or FORMAT_NONE. */
enum format_kind format_kind_from_name(const char *name);

/*
 * Parses the first len bytes of a file of file_size bytes as kind.
 *  - 0: *out is the map (format_map_free it).
 *  - -EAGAIN: the header goes on past len; *need (> len) is how many
 *    bytes from the start to pass next time (safetensors: exactly 8 + N;
 *    GGUF: a guess, it may ask again).
 *  - -EINVAL: not a valid header; -E2BIG: a header or tensor count past
 *    the limits; -ENOMEM.
 */
int format_parse(enum format_kind kind, const void *buf, size_t len,
		 uint64_t file_size, uint64_t *need, struct format_map **out)
	__attribute__((warn_unused_result));

void format_map_free(struct format_map *map); /* accepts NULL */

/* The index of the extent holding off, else of the first one after it;
 * map->n when none is. */
size_t format_map_find(const struct format_map *map, uint64_t off);

#endif
