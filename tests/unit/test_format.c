/* test_format.c: tensor maps from .safetensors and .gguf headers
 * (fetch/format.c): real layouts, incremental reads, hostile headers. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fetch/format.h"

/* A growing byte buffer. */
struct buf {
	uint8_t b[1 << 16];
	size_t n;
};

static void put(struct buf *b, const void *p, size_t n)
{
	assert_true(b->n + n <= sizeof(b->b));
	memcpy(b->b + b->n, p, n);
	b->n += n;
}

static void put_le(struct buf *b, uint64_t v, int nbytes)
{
	uint8_t x[8];
	int i;

	for (i = 0; i < nbytes; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	put(b, x, (size_t)nbytes);
}

static void put_str(struct buf *b, const char *s)
{
	put_le(b, strlen(s), 8);
	put(b, s, strlen(s));
}

/* A safetensors header of json (its length first). */
static void st_build(struct buf *b, const char *json)
{
	b->n = 0;
	put_le(b, strlen(json), 8);
	put(b, json, strlen(json));
}

static int parse(enum format_kind k, const struct buf *b, size_t len,
		 uint64_t size, uint64_t *need, struct format_map **map)
{
	return format_parse(k, b->b, len, size, need, map);
}

static void test_kind_from_name(void **state)
{
	(void)state;
	assert_int_equal(format_kind_from_name("a/model.safetensors"),
			 FORMAT_SAFETENSORS);
	assert_int_equal(format_kind_from_name("x.gguf"), FORMAT_GGUF);
	assert_int_equal(format_kind_from_name("x.gguf.part"), FORMAT_NONE);
	assert_int_equal(format_kind_from_name("gguf"), FORMAT_NONE);
	assert_int_equal(format_kind_from_name(NULL), FORMAT_NONE);
}

static void test_safetensors(void **state)
{
	static struct buf b;
	const char *json = "{\"__metadata__\":{\"format\":\"pt\"},"
			   "\"b\":{\"dtype\":\"F32\",\"shape\":[4],"
			   "\"data_offsets\":[100,116]},"
			   "\"a\":{\"dtype\":\"F32\",\"shape\":[25],"
			   "\"data_offsets\":[0,100]},"
			   "\"e\":{\"dtype\":\"F32\",\"shape\":[0],"
			   "\"data_offsets\":[116,116]}}";
	struct format_map *map;
	uint64_t need, data;

	(void)state;
	st_build(&b, json);
	data = b.n;
	/* Too short: first the length, then the whole header. */
	assert_int_equal(parse(FORMAT_SAFETENSORS, &b, 4, data + 116, &need,
			       &map),
			 -EAGAIN);
	assert_int_equal(need, 8);
	assert_int_equal(parse(FORMAT_SAFETENSORS, &b, 8, data + 116, &need,
			       &map),
			 -EAGAIN);
	assert_int_equal(need, data);
	assert_int_equal(
		parse(FORMAT_SAFETENSORS, &b, b.n, data + 116, &need, &map), 0);
	assert_int_equal(map->kind, FORMAT_SAFETENSORS);
	assert_int_equal(map->data_off, data);
	assert_int_equal(map->n, 2); /* the empty one has no bytes */
	assert_int_equal(map->ext[0].off, data);
	assert_int_equal(map->ext[0].end, data + 100);
	assert_int_equal(map->ext[1].off, data + 100);
	assert_int_equal(map->ext[1].end, data + 116);
	assert_int_equal(format_map_find(map, 0), 0);
	assert_int_equal(format_map_find(map, data + 99), 0);
	assert_int_equal(format_map_find(map, data + 100), 1);
	assert_int_equal(format_map_find(map, data + 116), 2);
	format_map_free(map);
	/* Tensors past the end of the file. */
	assert_int_equal(parse(FORMAT_SAFETENSORS, &b, b.n, data + 115, &need,
			       &map),
			 -EINVAL);
	assert_null(map);
}

static void test_safetensors_hostile(void **state)
{
	static const char *bad[] = {
		"[1,2]",
		"{\"a\":{\"data_offsets\":[0,10]},\"b\":{\"data_offsets\":[5,"
		"20]}}", /* overlap */
		"{\"a\":{\"data_offsets\":[10,5]}}",
		"{\"a\":{\"data_offsets\":[-1,5]}}",
		"{\"a\":{\"data_offsets\":[0]}}",
		"{\"a\":{\"data_offsets\":[0,\"5\"]}}",
		"{\"a\":{}}",
		"{\"a\":{\"data_offsets\":[0,99999999999999999999]}}",
		"{\"a\":{\"data_offsets\":[0,10]},\"a\":{\"data_offsets\":"
		"[10,20]}}", /* duplicate key */
		"{\"a\":",
	};
	static struct buf b;
	struct format_map *map;
	uint64_t need;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		st_build(&b, bad[i]);
		assert_int_equal(parse(FORMAT_SAFETENSORS, &b, b.n, b.n + 100,
				       &need, &map),
				 -EINVAL);
		assert_null(map);
	}
	/* A length past the file, and past the limit. */
	b.n = 0;
	put_le(&b, 1000, 8);
	put(&b, "{}", 2);
	assert_int_equal(parse(FORMAT_SAFETENSORS, &b, b.n, 500, &need, &map),
			 -EINVAL);
	b.n = 0;
	put_le(&b, (uint64_t)FORMAT_HEADER_MAX + 1, 8);
	assert_int_equal(parse(FORMAT_SAFETENSORS, &b, 8, UINT64_MAX / 2, &need,
			       &map),
			 -E2BIG);
	b.n = 0;
	put_le(&b, UINT64_MAX, 8);
	assert_int_equal(parse(FORMAT_SAFETENSORS, &b, 8, UINT64_MAX, &need,
			       &map),
			 -EINVAL);
	/* A file shorter than the length field. */
	assert_int_equal(parse(FORMAT_SAFETENSORS, &b, 4, 4, &need, &map),
			 -EINVAL);
}

/* A GGUF v3 header: metadata of every type, then tensors of the given
 * relative offsets; returns where the data starts. */
static uint64_t gguf_build(struct buf *b, uint32_t version, uint32_t align,
			   const uint64_t *offs, size_t nt)
{
	size_t i;

	b->n = 0;
	put(b, "GGUF", 4);
	put_le(b, version, 4);
	put_le(b, nt, 8);
	put_le(b, align ? 6 : 5, 8); /* kv pairs */
	put_str(b, "general.architecture");
	put_le(b, 8, 4);
	put_str(b, "llama");
	put_str(b, "x.u8");
	put_le(b, 0, 4);
	put_le(b, 7, 1);
	put_str(b, "x.f64");
	put_le(b, 12, 4);
	put_le(b, 0, 8);
	put_str(b, "tokenizer.tokens"); /* array of strings */
	put_le(b, 9, 4);
	put_le(b, 8, 4);
	put_le(b, 3, 8);
	put_str(b, "a");
	put_str(b, "bc");
	put_str(b, "");
	put_str(b, "x.nested"); /* array of arrays of i32 */
	put_le(b, 9, 4);
	put_le(b, 9, 4);
	put_le(b, 2, 8);
	put_le(b, 5, 4);
	put_le(b, 1, 8);
	put_le(b, 7, 4);
	put_le(b, 5, 4);
	put_le(b, 0, 8);
	if (align) {
		put_str(b, "general.alignment");
		put_le(b, 4, 4);
		put_le(b, align, 4);
	}
	for (i = 0; i < nt; i++) {
		char name[32];

		snprintf(name, sizeof(name), "blk.%zu.weight", i);
		put_str(b, name);
		put_le(b, 2, 4);
		put_le(b, 64, 8);
		put_le(b, 2, 8);
		put_le(b, 0, 4); /* F32 */
		put_le(b, offs[i], 8);
	}
	if (!align)
		align = 32;
	return (b->n + align - 1) / align * align;
}

static void test_gguf(void **state)
{
	static const uint64_t offs[] = { 512, 0, 1024 };
	static const uint64_t aligned[] = { 4096, 0, 8192 };
	static struct buf b;
	struct format_map *map;
	uint64_t need, data, size;

	(void)state;
	data = gguf_build(&b, 3, 0, offs, 3);
	size = data + 1024 + 512;
	assert_int_equal(parse(FORMAT_GGUF, &b, b.n, size, &need, &map), 0);
	assert_int_equal(map->kind, FORMAT_GGUF);
	assert_int_equal(map->data_off, data);
	assert_int_equal(map->n, 3);
	assert_int_equal(map->ext[0].off, data);
	assert_int_equal(map->ext[0].end, data + 512);
	assert_int_equal(map->ext[1].end, data + 1024);
	assert_int_equal(map->ext[2].off, data + 1024);
	assert_int_equal(map->ext[2].end, size);
	format_map_free(map);
	/* A given alignment, version 2; offsets must keep to it. */
	data = gguf_build(&b, 2, 4096, offs, 3);
	assert_int_equal(parse(FORMAT_GGUF, &b, b.n, data + 4096, &need, &map),
			 -EINVAL);
	data = gguf_build(&b, 2, 4096, aligned, 3);
	assert_int_equal(data % 4096, 0);
	assert_int_equal(
		parse(FORMAT_GGUF, &b, b.n, data + 3 * 4096, &need, &map), 0);
	assert_int_equal(map->data_off, data);
	assert_int_equal(map->ext[2].off, data + 2 * 4096);
	format_map_free(map);
}

/* Fed in growing prefixes, as the open path does: -EAGAIN asks for more
 * than it has, until the map comes. */
static void test_gguf_incremental(void **state)
{
	static uint64_t offs[200];
	static struct buf b;
	struct format_map *map = NULL;
	uint64_t need, size;
	size_t len = 16, i;
	int err, rounds = 0;

	(void)state;
	for (i = 0; i < 200; i++)
		offs[i] = i * 64;
	size = gguf_build(&b, 3, 64, offs, 200) + 200 * 64;
	assert_true(b.n > 4096);
	while ((err = parse(FORMAT_GGUF, &b, len, size, &need, &map)) ==
	       -EAGAIN) {
		assert_true(need > len);
		len = need < b.n ? (size_t)need : b.n;
		assert_true(++rounds < 10);
	}
	assert_int_equal(err, 0);
	assert_int_equal(map->n, 200);
	format_map_free(map);
}

static void test_gguf_hostile(void **state)
{
	static const uint64_t offs[] = { 0, 64 };
	static struct buf b;
	struct format_map *map;
	uint64_t need, data;

	(void)state;
	/* Bad magic, bad version. */
	data = gguf_build(&b, 3, 0, offs, 2);
	b.b[0] = 'X';
	assert_int_equal(parse(FORMAT_GGUF, &b, b.n, data + 128, &need, &map),
			 -EINVAL);
	gguf_build(&b, 1, 0, offs, 2);
	assert_int_equal(parse(FORMAT_GGUF, &b, b.n, data + 128, &need, &map),
			 -EINVAL);
	/* Huge counts. */
	gguf_build(&b, 3, 0, offs, 2);
	memset(b.b + 8, 0xff, 8);
	assert_int_equal(parse(FORMAT_GGUF, &b, b.n, data + 128, &need, &map),
			 -E2BIG);
	gguf_build(&b, 3, 0, offs, 2);
	memset(b.b + 16, 0x7f, 8);
	assert_int_equal(parse(FORMAT_GGUF, &b, b.n, data + 128, &need, &map),
			 -EINVAL);
	/* A string longer than the file. */
	gguf_build(&b, 3, 0, offs, 2);
	memset(b.b + 24, 0x7f, 8);
	assert_int_equal(parse(FORMAT_GGUF, &b, b.n, data + 128, &need, &map),
			 -E2BIG);
	/* Truncated: the whole file is given and it is not enough. */
	gguf_build(&b, 3, 0, offs, 2);
	assert_int_equal(parse(FORMAT_GGUF, &b, b.n - 3, b.n - 3, &need, &map),
			 -EINVAL);
	/* An offset past the file, a misaligned one, two at one place. */
	{
		static const uint64_t past[] = { 0, 1 << 20 };
		static const uint64_t odd[] = { 0, 33 };
		static const uint64_t same[] = { 64, 64 };

		data = gguf_build(&b, 3, 0, past, 2);
		assert_int_equal(parse(FORMAT_GGUF, &b, b.n, data + 128, &need,
				       &map),
				 -EINVAL);
		data = gguf_build(&b, 3, 0, odd, 2);
		assert_int_equal(parse(FORMAT_GGUF, &b, b.n, data + 128, &need,
				       &map),
				 -EINVAL);
		data = gguf_build(&b, 3, 0, same, 2);
		assert_int_equal(parse(FORMAT_GGUF, &b, b.n, data + 128, &need,
				       &map),
				 -EINVAL);
	}
	/* A bad alignment. */
	data = gguf_build(&b, 3, 48, offs, 2);
	assert_int_equal(parse(FORMAT_GGUF, &b, b.n, data + 128, &need, &map),
			 -EINVAL);
	assert_null(map);
}

/* Every prefix and every single-byte change of a real header: an answer,
 * never a crash (ASan build), and never a map reaching past the file. */
static void test_mutations(void **state)
{
	static const uint64_t offs[] = { 0, 64, 256 };
	static struct buf b, m;
	struct format_map *map;
	uint64_t need, size;
	size_t i, j;
	int k, err;

	(void)state;
	for (k = 0; k < 2; k++) {
		if (k)
			st_build(&b, "{\"a\":{\"data_offsets\":[0,64]},"
				     "\"b\":{\"data_offsets\":[64,300]}}");
		else
			gguf_build(&b, 3, 0, offs, 3);
		size = b.n + 512;
		for (i = 0; i < b.n; i++) {
			for (j = 0; j < 3; j++) {
				static const uint8_t v[] = { 0x00, 0xff, 0x41 };

				m = b;
				m.b[i] = v[j];
				err = parse(k ? FORMAT_SAFETENSORS :
						FORMAT_GGUF,
					    &m, m.n, size, &need, &map);
				if (!err) {
					assert_true(map->n == 0 ||
						    map->ext[map->n - 1].end <=
							    size);
					format_map_free(map);
				} else if (err == -EAGAIN) {
					assert_true(need > m.n);
				}
			}
			err = parse(k ? FORMAT_SAFETENSORS : FORMAT_GGUF, &b, i,
				    size, &need, &map);
			assert_true(err == -EAGAIN || err == -EINVAL);
			if (err == -EAGAIN)
				assert_true(need > i);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kind_from_name),
		cmocka_unit_test(test_safetensors),
		cmocka_unit_test(test_safetensors_hostile),
		cmocka_unit_test(test_gguf),
		cmocka_unit_test(test_gguf_incremental),
		cmocka_unit_test(test_gguf_hostile),
		cmocka_unit_test(test_mutations),
	};

	return cmocka_run_group_tests_name("format", tests, NULL, NULL);
}
