/*
 * format.c: tensor maps of .safetensors and .gguf headers (see
 * fetch/format.h). Pure and bounded: no threads, no locks, no I/O.
 */
#include "fetch/format.h"

#include <errno.h>
#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define GGUF_MAGIC "GGUF"
#define GGUF_ALIGNMENT_DEFAULT 32u
#define GGUF_ALIGNMENT_MAX (1u << 20)
#define GGUF_MAX_DIMS 4u
#define GGUF_ARRAY_DEPTH_MAX 4

enum gguf_type {
	GGUF_U8 = 0,
	GGUF_I8 = 1,
	GGUF_U16 = 2,
	GGUF_I16 = 3,
	GGUF_U32 = 4,
	GGUF_I32 = 5,
	GGUF_F32 = 6,
	GGUF_BOOL = 7,
	GGUF_STRING = 8,
	GGUF_ARRAY = 9,
	GGUF_U64 = 10,
	GGUF_I64 = 11,
	GGUF_F64 = 12,
};

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

enum format_kind format_kind_from_name(const char *name)
{
	if (!name)
		return FORMAT_NONE;
	if (ends_with(name, ".safetensors"))
		return FORMAT_SAFETENSORS;
	if (ends_with(name, ".gguf"))
		return FORMAT_GGUF;
	return FORMAT_NONE;
}

void format_map_free(struct format_map *map)
{
	if (!map)
		return;
	free(map->ext);
	free(map);
}

size_t format_map_find(const struct format_map *map, uint64_t off)
{
	size_t lo = 0, hi = map->n;

	/* The first extent whose end is past off. */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (map->ext[mid].end <= off)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int cmp_extent(const void *a, const void *b)
{
	const struct format_extent *x = a, *y = b;

	if (x->off != y->off)
		return x->off < y->off ? -1 : 1;
	if (x->end != y->end)
		return x->end < y->end ? -1 : 1;
	return 0;
}

/* Sorts ext[0..n) into a new map (taking ext); -EINVAL on overlap. */
static int map_finish(enum format_kind kind, uint64_t data_off,
		      struct format_extent *ext, size_t n,
		      struct format_map **out)
{
	struct format_map *map;
	size_t i;

	qsort(ext, n, sizeof(*ext), cmp_extent);
	for (i = 1; i < n; i++) {
		if (ext[i].off < ext[i - 1].end) {
			free(ext);
			return -EINVAL;
		}
	}
	map = calloc(1, sizeof(*map));
	if (!map) {
		free(ext);
		return -ENOMEM;
	}
	map->kind = kind;
	map->data_off = data_off;
	map->n = n;
	map->ext = ext;
	*out = map;
	return 0;
}

static uint64_t get_le(const uint8_t *p, unsigned int nbytes)
{
	uint64_t v = 0;
	unsigned int i;

	for (i = 0; i < nbytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* ---- safetensors ---- */

/* One tensor's "data_offsets" into *ext; -EINVAL when malformed. */
static int st_tensor(json_t *t, uint64_t data_off, uint64_t file_size,
		     struct format_extent *ext)
{
	json_t *offs = json_is_object(t) ? json_object_get(t, "data_offsets") :
					   NULL;
	json_t *b, *e;
	json_int_t begin, end;

	if (!json_is_array(offs) || json_array_size(offs) != 2)
		return -EINVAL;
	b = json_array_get(offs, 0);
	e = json_array_get(offs, 1);
	if (!json_is_integer(b) || !json_is_integer(e))
		return -EINVAL;
	begin = json_integer_value(b);
	end = json_integer_value(e);
	if (begin < 0 || end < begin || (uint64_t)end > file_size - data_off)
		return -EINVAL;
	ext->off = data_off + (uint64_t)begin;
	ext->end = data_off + (uint64_t)end;
	return 0;
}

static int parse_safetensors(const uint8_t *buf, size_t len, uint64_t file_size,
			     uint64_t *need, struct format_map **out)
{
	struct format_extent *ext = NULL;
	uint64_t hlen, data_off;
	json_error_t jerr;
	json_t *root, *t;
	const char *key;
	size_t n = 0, cap;
	int err = 0;

	if (len < 8) {
		*need = 8;
		return file_size < 8 ? -EINVAL : -EAGAIN;
	}
	hlen = get_le(buf, 8);
	if (hlen < 2 || hlen > file_size - 8)
		return -EINVAL;
	if (hlen > FORMAT_HEADER_MAX)
		return -E2BIG;
	data_off = 8 + hlen;
	if (len < data_off) {
		*need = data_off;
		return -EAGAIN;
	}
	if (buf[8] != '{')
		return -EINVAL;
	root = json_loadb((const char *)buf + 8, (size_t)hlen,
			  JSON_REJECT_DUPLICATES, &jerr);
	if (!json_is_object(root)) {
		json_decref(root);
		return -EINVAL;
	}
	cap = json_object_size(root);
	if (cap > FORMAT_TENSORS_MAX) {
		err = -E2BIG;
		goto out;
	}
	ext = calloc(cap ? cap : 1, sizeof(*ext));
	if (!ext) {
		err = -ENOMEM;
		goto out;
	}
	json_object_foreach(root, key, t)
	{
		if (!strcmp(key, "__metadata__"))
			continue;
		err = st_tensor(t, data_off, file_size, &ext[n]);
		if (err)
			goto out;
		if (ext[n].end > ext[n].off)
			n++; /* empty tensors have no bytes to fetch */
	}
	err = map_finish(FORMAT_SAFETENSORS, data_off, ext, n, out);
	ext = NULL; /* map_finish took it */
out:
	free(ext);
	json_decref(root);
	return err;
}

/* ---- GGUF ---- */

/* A cursor over the bytes given; running out sets want. */
struct rd {
	const uint8_t *p;
	size_t len;
	size_t pos;
	uint64_t want; /* bytes from the start needed to go on; 0: none */
};

static bool rd_has(struct rd *r, uint64_t n)
{
	if (n <= r->len - r->pos)
		return true;
	/* Saturates: a huge length asks for more than any limit. */
	r->want = n > UINT64_MAX - r->pos ? UINT64_MAX : r->pos + n;
	return false;
}

static bool rd_skip(struct rd *r, uint64_t n)
{
	if (!rd_has(r, n))
		return false;
	r->pos += (size_t)n;
	return true;
}

static bool rd_u32(struct rd *r, uint32_t *v)
{
	if (!rd_has(r, 4))
		return false;
	*v = (uint32_t)get_le(r->p + r->pos, 4);
	r->pos += 4;
	return true;
}

static bool rd_u64(struct rd *r, uint64_t *v)
{
	if (!rd_has(r, 8))
		return false;
	*v = get_le(r->p + r->pos, 8);
	r->pos += 8;
	return true;
}

/* A string: u64 length, bytes; *s points into the buffer. */
static bool rd_str(struct rd *r, const uint8_t **s, uint64_t *n)
{
	if (!rd_u64(r, n) || !rd_has(r, *n))
		return false;
	*s = r->p + r->pos;
	r->pos += (size_t)*n;
	return true;
}

/* Size of a fixed-size value type, 0 for string, array or unknown. */
static unsigned int gguf_fixed_size(uint32_t type)
{
	switch (type) {
	case GGUF_U8:
	case GGUF_I8:
	case GGUF_BOOL:
		return 1;
	case GGUF_U16:
	case GGUF_I16:
		return 2;
	case GGUF_U32:
	case GGUF_I32:
	case GGUF_F32:
		return 4;
	case GGUF_U64:
	case GGUF_I64:
	case GGUF_F64:
		return 8;
	default:
		return 0;
	}
}

/* Skips one value of type; 0, -EAGAIN (r->want set) or -EINVAL. */
static int gguf_skip_value(struct rd *r, uint32_t type, int depth)
{
	const uint8_t *s;
	uint64_t n, i, count;
	uint32_t et;
	unsigned int sz = gguf_fixed_size(type);

	if (sz)
		return rd_skip(r, sz) ? 0 : -EAGAIN;
	if (type == GGUF_STRING)
		return rd_str(r, &s, &n) ? 0 : -EAGAIN;
	if (type != GGUF_ARRAY || depth >= GGUF_ARRAY_DEPTH_MAX)
		return -EINVAL;
	if (!rd_u32(r, &et) || !rd_u64(r, &count))
		return -EAGAIN;
	sz = gguf_fixed_size(et);
	if (sz) {
		if (count > UINT64_MAX / sz) {
			r->want = UINT64_MAX;
			return -EAGAIN;
		}
		return rd_skip(r, count * sz) ? 0 : -EAGAIN;
	}
	if (et != GGUF_STRING && et != GGUF_ARRAY)
		return -EINVAL;
	/* Each element takes at least 8 bytes: the loop is bounded by the
	 * buffer, not by count. */
	for (i = 0; i < count; i++) {
		int err = gguf_skip_value(r, et, depth + 1);

		if (err)
			return err;
	}
	return 0;
}

static bool key_is(const uint8_t *s, uint64_t n, const char *key)
{
	return n == strlen(key) && !memcmp(s, key, (size_t)n);
}

/* The key/value pairs; general.alignment into *align. */
static int gguf_kvs(struct rd *r, uint64_t nkv, uint32_t *align)
{
	uint64_t i, klen;
	const uint8_t *key;
	uint32_t type, v;
	int err;

	for (i = 0; i < nkv; i++) {
		if (!rd_str(r, &key, &klen) || !rd_u32(r, &type))
			return -EAGAIN;
		if (key_is(key, klen, "general.alignment") &&
		    type == GGUF_U32) {
			if (!rd_u32(r, &v))
				return -EAGAIN;
			if (!v || (v & (v - 1)) || v > GGUF_ALIGNMENT_MAX)
				return -EINVAL;
			*align = v;
			continue;
		}
		err = gguf_skip_value(r, type, 0);
		if (err)
			return err;
	}
	return 0;
}

/* The tensor infos: offsets relative to the data into ext[i].off. */
static int gguf_infos(struct rd *r, uint64_t nt, uint32_t align,
		      struct format_extent *ext)
{
	const uint8_t *name;
	uint64_t i, nlen, dim, off;
	uint32_t ndims, type, d;

	for (i = 0; i < nt; i++) {
		if (!rd_str(r, &name, &nlen) || !rd_u32(r, &ndims))
			return -EAGAIN;
		if (ndims > GGUF_MAX_DIMS)
			return -EINVAL;
		for (d = 0; d < ndims; d++)
			if (!rd_u64(r, &dim))
				return -EAGAIN;
		if (!rd_u32(r, &type) || !rd_u64(r, &off))
			return -EAGAIN;
		if (off % align)
			return -EINVAL;
		ext[i].off = off;
	}
	return 0;
}

static int parse_gguf(const uint8_t *buf, size_t len, uint64_t file_size,
		      uint64_t *need, struct format_map **out)
{
	struct rd r = { .p = buf, .len = len };
	struct format_extent *ext = NULL;
	uint32_t version, align = GGUF_ALIGNMENT_DEFAULT;
	uint64_t nt, nkv, data_off, i;
	int err;

	if (!rd_skip(&r, 4) || !rd_u32(&r, &version) || !rd_u64(&r, &nt) ||
	    !rd_u64(&r, &nkv))
		goto more;
	if (memcmp(buf, GGUF_MAGIC, 4) || (version != 2 && version != 3))
		return -EINVAL;
	if (nt > FORMAT_TENSORS_MAX)
		return -E2BIG;
	/* Every pair and every info takes at least 12 bytes. */
	if (nkv > file_size / 12 || nt > file_size / 12)
		return -EINVAL;
	err = gguf_kvs(&r, nkv, &align);
	if (err == -EAGAIN)
		goto more;
	if (err)
		return err;
	ext = calloc(nt ? nt : 1, sizeof(*ext));
	if (!ext)
		return -ENOMEM;
	err = gguf_infos(&r, nt, align, ext);
	if (err == -EAGAIN) {
		free(ext);
		goto more;
	}
	if (err) {
		free(ext);
		return err;
	}
	data_off = ((uint64_t)r.pos + align - 1) / align * align;
	if (data_off > file_size) {
		free(ext);
		return -EINVAL;
	}
	for (i = 0; i < nt; i++) {
		if (ext[i].off > file_size - data_off) {
			free(ext);
			return -EINVAL;
		}
		ext[i].off += data_off;
	}
	/*
	 * Sizes come from the ggml type table, which this file does not
	 * carry: each tensor runs to the next one (padding included), the
	 * last to the end of the file. Two at one offset are an error.
	 */
	qsort(ext, (size_t)nt, sizeof(*ext), cmp_extent);
	for (i = 0; i < nt; i++) {
		ext[i].end = i + 1 < nt ? ext[i + 1].off : file_size;
		if (ext[i].end <= ext[i].off &&
		    !(i + 1 == nt && ext[i].off == file_size)) {
			free(ext);
			return -EINVAL;
		}
	}
	if (nt && ext[nt - 1].off == file_size)
		nt--; /* a last empty tensor at the very end */
	return map_finish(FORMAT_GGUF, data_off, ext, (size_t)nt, out);
more:
	if (r.want > FORMAT_HEADER_MAX)
		return -E2BIG;
	if (len >= file_size || r.want > file_size)
		return -EINVAL; /* the header runs past the file */
	/* Ask for what this step needs, at least twice what we have: big
	 * vocabularies then take a few rounds, not thousands. */
	*need = r.want;
	if (*need < (uint64_t)len * 2)
		*need = (uint64_t)len * 2;
	if (*need < 4096)
		*need = 4096;
	if (*need > FORMAT_HEADER_MAX)
		*need = FORMAT_HEADER_MAX;
	if (*need > file_size)
		*need = file_size;
	return -EAGAIN;
}

int format_parse(enum format_kind kind, const void *buf, size_t len,
		 uint64_t file_size, uint64_t *need, struct format_map **out)
{
	*out = NULL;
	*need = 0;
	if (len > file_size)
		len = (size_t)file_size;
	switch (kind) {
	case FORMAT_SAFETENSORS:
		return parse_safetensors(buf, len, file_size, need, out);
	case FORMAT_GGUF:
		return parse_gguf(buf, len, file_size, need, out);
	default:
		return -EINVAL;
	}
}
