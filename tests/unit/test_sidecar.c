/* test_sidecar.c: the sidecar format, its rejections and crash safety. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cmocka.h>

#include "state/sidecar.h"

#define KIB (1ull << 10)
#define MIB (1ull << 20)
#define GIB (1ull << 30)
#define TIB (1ull << 40)

struct fixture {
	char dir[1024];
	char path[PATH_MAX];
	struct sidecar_layout layout;
};

static struct sidecar_layout mk_layout(uint64_t file_size, uint32_t chunk_size)
{
	struct sidecar_layout l;
	int i;

	memset(&l, 0, sizeof(l));
	l.file_size = file_size;
	l.chunk_size = chunk_size;
	for (i = 0; i < 16; i++)
		l.identity[i] = (uint8_t)(0xa0 + i);
	/* The data file it is bound to: every byte distinct. */
	l.data_ino = 0x8877665544332211ull;
	l.data_birth_ns = 0x1716151413121110ull;
	return l;
}

static uint64_t rd64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void wr64(uint8_t *p, uint64_t v)
{
	int i;

	for (i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void wr32(uint8_t *p, uint32_t v)
{
	int i;

	for (i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* Recomputes the trailer after a test edited the header. */
static void reseal(uint8_t *img, size_t len)
{
	wr64(img + len - 8, XXH3_64bits(img, len - 8));
}

/*
 * Builds an image field by field, independently of sidecar_encode(), so
 * the decoder can be shown images the encoder would never write.
 */
static uint8_t *craft(const struct sidecar_layout *l, uint64_t nchunks,
		      uint64_t done, uint64_t prefix, const uint8_t *bm,
		      size_t bm_len, size_t *len)
{
	uint8_t *img = calloc(1, 104 + bm_len);

	assert_non_null(img);
	memcpy(img, "HOLWSCAR", 8);
	wr32(img + 8, 2);
	wr64(img + 16, l->file_size);
	wr32(img + 24, l->chunk_size);
	wr64(img + 32, nchunks);
	wr64(img + 40, done);
	memcpy(img + 48, l->identity, 16);
	wr64(img + 64, l->data_ino);
	wr64(img + 72, l->data_birth_ns);
	wr64(img + 80, prefix);
	wr64(img + 88, bm_len);
	if (bm_len)
		memcpy(img + 96, bm, bm_len);
	*len = 104 + bm_len;
	reseal(img, *len);
	return img;
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	return remove(path);
}

static int fx_setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	const char *tmp = getenv("TMPDIR");

	assert_non_null(fx);
	snprintf(fx->dir, sizeof(fx->dir), "%s/test_sidecar.XXXXXX",
		 tmp ? tmp : "/tmp");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->path, sizeof(fx->path), "%s/blob.state", fx->dir);
	/* 11 chunks, the last one short. */
	fx->layout = mk_layout(10 * 64 * KIB + 123, 64 * KIB);
	*state = fx;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fixture *fx = *state;

	nftw(fx->dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(fx);
	return 0;
}

static void write_bytes(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

static void flip_byte(const char *path, off_t off)
{
	uint8_t b;
	int fd = open(path, O_RDWR);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &b, 1, off), 1);
	b ^= 0xff;
	assert_int_equal(pwrite(fd, &b, 1, off), 1);
	close(fd);
}

static off_t file_len(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_size;
}

/* Files in dir whose name contains ".tmp". */
static int count_tmp(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		n += strstr(de->d_name, ".tmp") != NULL;
	closedir(d);
	return n;
}

/* A sidecar of layout with chunks where pat(i, n) is true. */
typedef bool (*pattern_fn)(uint64_t i, uint64_t n);

static struct sidecar *mk_sidecar(const struct sidecar_layout *l,
				  pattern_fn pat)
{
	struct sidecar *sc = NULL;
	uint64_t i;

	assert_int_equal(sidecar_new(l, &sc), 0);
	for (i = 0; i < sc->nchunks; i++)
		if (pat(i, sc->nchunks))
			sidecar_set(sc, i);
	return sc;
}

static bool pat_none(uint64_t i, uint64_t n)
{
	return false;
}

static bool pat_all(uint64_t i, uint64_t n)
{
	return true;
}

static bool pat_half(uint64_t i, uint64_t n)
{
	return i < n / 2;
}

static bool pat_prefix_sparse(uint64_t i, uint64_t n)
{
	return i < n / 3 || i % 7 == 3;
}

static bool pat_first(uint64_t i, uint64_t n)
{
	return i == 0;
}

static bool pat_last(uint64_t i, uint64_t n)
{
	return i == n - 1;
}

static bool pat_all_but_last(uint64_t i, uint64_t n)
{
	return i < n - 1;
}

static bool pat_all_but_first(uint64_t i, uint64_t n)
{
	return i > 0;
}

static bool pat_odd(uint64_t i, uint64_t n)
{
	return i % 2;
}

static bool pat_byte_edges(uint64_t i, uint64_t n)
{
	return i < 8 || i == 16 || i == 23 || i == 24;
}

static bool pat_hash(uint64_t i, uint64_t n)
{
	return XXH3_64bits(&i, sizeof(i)) & 1;
}

static const pattern_fn patterns[] = {
	pat_none,  pat_all,	   pat_half,	     pat_prefix_sparse,
	pat_first, pat_last,	   pat_all_but_last, pat_all_but_first,
	pat_odd,   pat_byte_edges, pat_hash,
};

/* Every edge of the layout: empty, one short chunk, exact multiples, a
 * partial last chunk, sizes past 4 GiB, the smallest and largest chunk. */
static const struct {
	uint64_t file_size;
	uint32_t chunk_size;
	uint64_t nchunks;
} layouts[] = {
	{ 0, 64 * KIB, 0 },
	{ 1, 64 * KIB, 1 },
	{ 64 * KIB - 1, 64 * KIB, 1 },
	{ 64 * KIB, 64 * KIB, 1 },
	{ 64 * KIB + 1, 64 * KIB, 2 },
	{ 8 * 64 * KIB, 64 * KIB, 8 },
	{ 9 * 64 * KIB + 1, 64 * KIB, 10 },
	{ 16 * 64 * KIB, 64 * KIB, 16 },
	{ 17 * GIB, 64 * KIB, 278528 },
	{ 17 * GIB + 5, 64 * KIB, 278529 },
	{ 5 * GIB, 4 * MIB, 1280 },
	{ 17 * GIB + 5, 64 * MIB, 273 },
	{ 64 * MIB, 64 * MIB, 1 },
	{ 4 * GIB + 1, 64 * MIB, 65 },
};

/* What the format says, computed bit by bit with no shifting tricks. */
static void expected(const struct sidecar *sc, uint64_t *prefix, uint64_t *done,
		     uint64_t *bm_len)
{
	uint64_t i;

	*done = 0;
	*bm_len = 0;
	for (i = 0; i < sc->nchunks && sidecar_test(sc, i); i++)
		;
	*prefix = i;
	for (i = 0; i < sc->nchunks; i++) {
		if (!sidecar_test(sc, i))
			continue;
		(*done)++;
		if (i >= *prefix)
			*bm_len = (i - *prefix) / 8 + 1;
	}
}

static void test_chunk_size_valid(void **state)
{
	assert_false(chunk_size_valid(0));
	assert_false(chunk_size_valid(4 * KIB));
	assert_false(chunk_size_valid(60 * KIB));
	assert_true(chunk_size_valid(64 * KIB));
	assert_false(chunk_size_valid(64 * KIB + 1));
	assert_false(chunk_size_valid(64 * KIB + 512));
	assert_true(chunk_size_valid(68 * KIB));
	assert_true(chunk_size_valid(1 * MIB));
	assert_true(chunk_size_valid(64 * MIB));
	assert_false(chunk_size_valid(64 * MIB + 4 * KIB));
	assert_false(chunk_size_valid(1ull << 32));
	assert_false(chunk_size_valid((1ull << 32) + 64 * KIB));
	assert_false(chunk_size_valid(UINT64_MAX));
}

static void test_chunk_count(void **state)
{
	size_t i;

	for (i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++)
		assert_int_equal(chunk_count(layouts[i].file_size,
					     layouts[i].chunk_size),
				 layouts[i].nchunks);
	/* 64-bit arithmetic well past 4 GiB and near the top. */
	assert_int_equal(chunk_count(5 * TIB, 64 * KIB), 83886080);
	assert_int_equal(chunk_count(5 * TIB + 1, 64 * KIB), 83886081);
	assert_int_equal(chunk_count(UINT64_MAX, 64 * MIB), 1ull << 38);
	assert_int_equal(chunk_count(UINT64_MAX - (64 * MIB - 1), 64 * MIB),
			 (1ull << 38) - 1); /* an exact multiple */
	assert_int_equal(chunk_count(123, 0), 0);
}

static void test_new_rejects_bad_chunk_size(void **state)
{
	struct sidecar_layout l = mk_layout(1000, 64 * KIB + 1);
	struct sidecar *sc = (void *)1;

	assert_int_equal(sidecar_new(&l, &sc), -EINVAL);
	assert_null(sc);
	l.chunk_size = 32 * KIB;
	assert_int_equal(sidecar_new(&l, &sc), -EINVAL);
	l.chunk_size = 128 * MIB;
	assert_int_equal(sidecar_new(&l, &sc), -EINVAL);
	sidecar_free(NULL);
}

static void test_set_and_test(void **state)
{
	struct sidecar_layout l = mk_layout(10 * 64 * KIB, 64 * KIB);
	struct sidecar *sc = NULL;

	assert_int_equal(sidecar_new(&l, &sc), 0);
	assert_int_equal(sc->nchunks, 10);
	assert_int_equal(sc->done_count, 0);
	assert_false(sidecar_test(sc, 3));
	sidecar_set(sc, 3);
	sidecar_set(sc, 3);
	sidecar_set(sc, 9);
	sidecar_set(sc, 10); /* past the end: ignored */
	assert_true(sidecar_test(sc, 3));
	assert_true(sidecar_test(sc, 9));
	assert_false(sidecar_test(sc, 10));
	assert_false(sidecar_test(sc, UINT64_MAX));
	assert_int_equal(sc->done_count, 2);
	sidecar_free(sc);
}

/* One layout and pattern: lengths, header fields, round trip. */
static void check_round_trip(const struct sidecar_layout *l, uint64_t nchunks,
			     pattern_fn pat)
{
	struct sidecar *sc = mk_sidecar(l, pat), *back = NULL;
	uint64_t prefix, done, bm_len, i;
	void *img = NULL, *img2 = NULL;
	size_t len, len2;
	uint8_t *p;

	assert_int_equal(sc->nchunks, nchunks);
	expected(sc, &prefix, &done, &bm_len);
	assert_int_equal(sc->done_count, done);
	assert_int_equal(sidecar_encode(sc, &img, &len), 0);
	p = img;
	assert_int_equal(len, SIDECAR_HEADER_LEN + bm_len + 8);
	assert_int_equal(rd64(p + 32), sc->nchunks);
	assert_int_equal(rd64(p + 40), done);
	assert_int_equal(rd64(p + 64), l->data_ino);
	assert_int_equal(rd64(p + 72), l->data_birth_ns);
	assert_int_equal(rd64(p + 80), prefix);
	assert_int_equal(rd64(p + 88), bm_len);

	assert_int_equal(sidecar_decode(img, len, l, &back), 0);
	assert_non_null(back);
	assert_int_equal(back->nchunks, sc->nchunks);
	assert_int_equal(back->done_count, done);
	for (i = 0; i < sc->nchunks; i++)
		if (sidecar_test(back, i) != sidecar_test(sc, i))
			fail_msg("chunk %llu of %llu", (unsigned long long)i,
				 (unsigned long long)nchunks);
	/* Canonical: decoding then encoding gives the same bytes. */
	assert_int_equal(sidecar_encode(back, &img2, &len2), 0);
	assert_int_equal(len2, len);
	assert_memory_equal(img2, img, len);
	free(img2);
	free(img);
	sidecar_free(back);
	sidecar_free(sc);
}

/* Every layout edge times every pattern. */
static void test_round_trip_edges(void **state)
{
	size_t li, pi;

	for (li = 0; li < sizeof(layouts) / sizeof(layouts[0]); li++) {
		struct sidecar_layout l = mk_layout(layouts[li].file_size,
						    layouts[li].chunk_size);

		for (pi = 0; pi < sizeof(patterns) / sizeof(patterns[0]); pi++)
			check_round_trip(&l, layouts[li].nchunks, patterns[pi]);
	}
}

/* Hand-computed lengths of the truncated bitmap. */
static void test_bitmap_length_arithmetic(void **state)
{
	static const struct {
		uint64_t file_size;
		uint32_t chunk_size;
		uint64_t set_below; /* chunks 0..set_below-1 */
		uint64_t extra; /* and this one (UINT64_MAX: none) */
		uint64_t prefix, bm_len;
	} cases[] = {
		{ 0, 64 * KIB, 0, UINT64_MAX, 0, 0 },
		{ 1, 64 * KIB, 1, UINT64_MAX, 1, 0 },
		{ 1, 64 * KIB, 0, 0, 1, 0 },
		{ 8 * 64 * KIB, 64 * KIB, 0, 7, 0, 1 },
		{ 8 * 64 * KIB, 64 * KIB, 7, UINT64_MAX, 7, 0 },
		{ 9 * 64 * KIB + 1, 64 * KIB, 0, 9, 0, 2 },
		{ 9 * 64 * KIB + 1, 64 * KIB, 1, 9, 1, 2 },
		{ 9 * 64 * KIB + 1, 64 * KIB, 2, 9, 2, 1 },
		{ 9 * 64 * KIB + 1, 64 * KIB, 8, UINT64_MAX, 8, 0 },
		{ 17 * GIB, 64 * KIB, 100000, 278527, 100000, 22316 },
		{ 17 * GIB, 64 * KIB, 278528, UINT64_MAX, 278528, 0 },
		{ 17 * GIB, 64 * KIB, 0, 278527, 0, 34816 },
		{ 17 * GIB + 5, 64 * KIB, 0, 278528, 0, 34817 },
		{ 17 * GIB + 5, 64 * MIB, 272, UINT64_MAX, 272, 0 },
		{ 17 * GIB + 5, 64 * MIB, 0, 272, 0, 35 },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sidecar_layout l =
			mk_layout(cases[i].file_size, cases[i].chunk_size);
		struct sidecar *sc = NULL, *back = NULL;
		void *img = NULL;
		size_t len;
		uint64_t k;

		assert_int_equal(sidecar_new(&l, &sc), 0);
		for (k = 0; k < cases[i].set_below; k++)
			sidecar_set(sc, k);
		if (cases[i].extra != UINT64_MAX)
			sidecar_set(sc, cases[i].extra);
		assert_int_equal(sidecar_encode(sc, &img, &len), 0);
		assert_int_equal(rd64((uint8_t *)img + 80), cases[i].prefix);
		assert_int_equal(rd64((uint8_t *)img + 88), cases[i].bm_len);
		assert_int_equal(len, 104 + cases[i].bm_len);
		assert_int_equal(sidecar_decode(img, len, &l, &back), 0);
		assert_int_equal(back->done_count, sc->done_count);
		free(img);
		sidecar_free(back);
		sidecar_free(sc);
	}
}

/* Stray bits past the last chunk in memory never reach the image. */
static void test_encode_masks_bits_past_end(void **state)
{
	struct sidecar_layout l = mk_layout(10 * 64 * KIB, 64 * KIB);
	struct sidecar *sc = NULL, *back = NULL;
	void *img = NULL;
	size_t len;

	assert_int_equal(sidecar_new(&l, &sc), 0);
	sidecar_set(sc, 9);
	sc->bits[1] |= 0xfc; /* chunks 10..15 do not exist */
	assert_int_equal(sidecar_encode(sc, &img, &len), 0);
	assert_int_equal(sidecar_decode(img, len, &l, &back), 0);
	assert_int_equal(back->done_count, 1);
	assert_true(sidecar_test(back, 9));
	free(img);
	sidecar_free(back);
	sidecar_free(sc);
}

/* A valid image of fx->layout with chunks 0-2, 5 and 9 done. */
static uint8_t *valid_image(const struct sidecar_layout *l, size_t *len)
{
	struct sidecar *sc = NULL;
	void *img = NULL;

	assert_int_equal(sidecar_new(l, &sc), 0);
	sidecar_set(sc, 0);
	sidecar_set(sc, 1);
	sidecar_set(sc, 2);
	sidecar_set(sc, 5);
	sidecar_set(sc, 9);
	assert_int_equal(sidecar_encode(sc, &img, len), 0);
	sidecar_free(sc);
	return img;
}

static void expect_reject(const void *img, size_t len,
			  const struct sidecar_layout *l, int err)
{
	struct sidecar *sc = (void *)1;

	assert_int_equal(sidecar_decode(img, len, l, &sc), err);
	assert_null(sc);
}

static void test_decode_rejects_wrong_magic(void **state)
{
	struct fixture *fx = *state;
	size_t len;
	uint8_t *img = valid_image(&fx->layout, &len);

	img[0] = 'X';
	expect_reject(img, len, &fx->layout, -EILSEQ);
	expect_reject(img, 3, &fx->layout, -EILSEQ);
	reseal(img, len);
	expect_reject(img, len, &fx->layout, -EILSEQ);
	free(img);
}

static void test_decode_rejects_version(void **state)
{
	struct fixture *fx = *state;
	size_t len;
	uint8_t *img = valid_image(&fx->layout, &len);

	wr32(img + 8, 3);
	reseal(img, len);
	expect_reject(img, len, &fx->layout, -EPROTONOSUPPORT);
	wr32(img + 8, 0);
	expect_reject(img, len, &fx->layout, -EPROTONOSUPPORT);
	/* Even a truncated image of another version says so. */
	expect_reject(img, 12, &fx->layout, -EPROTONOSUPPORT);
	free(img);
}

static void test_decode_rejects_unknown_flags(void **state)
{
	struct fixture *fx = *state;
	size_t len;
	uint8_t *img = valid_image(&fx->layout, &len);

	wr32(img + 12, 1);
	reseal(img, len);
	expect_reject(img, len, &fx->layout, -EPROTONOSUPPORT);
	free(img);
}

static void test_decode_rejects_file_size(void **state)
{
	struct fixture *fx = *state;
	struct sidecar_layout other = fx->layout;
	size_t len;
	uint8_t *img = valid_image(&fx->layout, &len);

	other.file_size++;
	expect_reject(img, len, &other, -ERANGE);
	other.file_size = fx->layout.file_size + 4 * GIB; /* > 32 bits */
	expect_reject(img, len, &other, -ERANGE);
	free(img);
}

static void test_decode_rejects_chunk_size(void **state)
{
	struct fixture *fx = *state;
	struct sidecar_layout other = fx->layout;
	size_t len;
	uint8_t *img = valid_image(&fx->layout, &len);

	other.chunk_size = 128 * KIB;
	expect_reject(img, len, &other, -EDOM);
	/* An invalid chunk size is refused even when both sides agree. */
	other.chunk_size = 64 * KIB + 1;
	wr32(img + 24, other.chunk_size);
	reseal(img, len);
	expect_reject(img, len, &other, -EDOM);
	free(img);
}

static void test_decode_rejects_identity(void **state)
{
	struct fixture *fx = *state;
	struct sidecar_layout other = fx->layout;
	size_t len;
	uint8_t *img = valid_image(&fx->layout, &len);

	other.identity[15] ^= 1;
	expect_reject(img, len, &other, -ESTALE);
	free(img);
}

/* Bound to its data file: another inode or birth time is -ENOLINK. */
static void test_decode_rejects_other_data_file(void **state)
{
	struct fixture *fx = *state;
	struct sidecar_layout other = fx->layout;
	size_t len;
	uint8_t *img = valid_image(&fx->layout, &len);

	other.data_ino++;
	expect_reject(img, len, &other, -ENOLINK);
	other = fx->layout;
	other.data_birth_ns ^= 1;
	expect_reject(img, len, &other, -ENOLINK);
	/* Checked after the identity: a foreign blob says so first. */
	other.identity[0] ^= 1;
	expect_reject(img, len, &other, -ESTALE);
	free(img);
}

/* A version 1 image (80-byte header, no binding) is rejected cleanly: the
 * blob starts over after an upgrade. */
static void test_decode_rejects_version_1(void **state)
{
	struct fixture *fx = *state;
	uint8_t img[88 + 1];

	memset(img, 0, sizeof(img));
	memcpy(img, "HOLWSCAR", 8);
	wr32(img + 8, 1);
	wr64(img + 16, fx->layout.file_size);
	wr32(img + 24, fx->layout.chunk_size);
	wr64(img + 32, 11);
	wr64(img + 40, 1);
	memcpy(img + 48, fx->layout.identity, 16);
	wr64(img + 64, 1); /* prefix */
	wr64(img + 72, 0); /* bitmap length */
	reseal(img, 88);
	expect_reject(img, 88, &fx->layout, -EPROTONOSUPPORT);
	expect_reject(img, 12, &fx->layout, -EPROTONOSUPPORT);
}

static void test_decode_rejects_checksum(void **state)
{
	struct fixture *fx = *state;
	size_t len;
	uint8_t *img = valid_image(&fx->layout, &len);

	img[len - 1] ^= 0x40;
	expect_reject(img, len, &fx->layout, -EBADMSG);
	img[len - 1] ^= 0x40;
	img[96] ^= 0x80; /* a bitmap bit, trailer left alone */
	expect_reject(img, len, &fx->layout, -EBADMSG);
	free(img);
}

static void test_decode_rejects_truncated(void **state)
{
	struct fixture *fx = *state;
	size_t len;
	uint8_t *img = valid_image(&fx->layout, &len);

	expect_reject(img, len - 1, &fx->layout, -EMSGSIZE);
	expect_reject(img, 103, &fx->layout, -EMSGSIZE);
	expect_reject(img, 8, &fx->layout, -EMSGSIZE);
	expect_reject(img, 0, &fx->layout, -EMSGSIZE);
	expect_reject(NULL, 0, &fx->layout, -EMSGSIZE);
	free(img);
}

static void test_decode_rejects_trailing_garbage(void **state)
{
	struct fixture *fx = *state;
	size_t len;
	uint8_t *img = valid_image(&fx->layout, &len);
	uint8_t *big = calloc(1, len + 1);

	assert_non_null(big);
	memcpy(big, img, len);
	expect_reject(big, len + 1, &fx->layout, -EMSGSIZE);
	/* Still refused with a trailer that covers the extra byte. */
	reseal(big, len + 1);
	expect_reject(big, len + 1, &fx->layout, -EMSGSIZE);
	free(big);
	free(img);
}

static void test_decode_rejects_bitmap_too_long(void **state)
{
	struct fixture *fx = *state; /* 11 chunks: 2 bytes at most */
	uint8_t bm[3] = { 0x02, 0x00, 0x01 };
	size_t len;
	uint8_t *img = craft(&fx->layout, 11, 2, 0, bm, 3, &len);

	expect_reject(img, len, &fx->layout, -EMSGSIZE);
	free(img);
	/* With a prefix of 8, one byte covers the 3 chunks left. */
	bm[0] = 0x02;
	bm[1] = 0x01;
	img = craft(&fx->layout, 11, 10, 8, bm, 2, &len);
	expect_reject(img, len, &fx->layout, -EMSGSIZE);
	free(img);
}

static void test_decode_rejects_done_count(void **state)
{
	struct fixture *fx = *state;
	size_t len;
	uint8_t *img = valid_image(&fx->layout, &len);

	wr64(img + 40, rd64(img + 40) + 1);
	reseal(img, len);
	expect_reject(img, len, &fx->layout, -EUCLEAN);
	wr64(img + 40, rd64(img + 40) - 2);
	reseal(img, len);
	expect_reject(img, len, &fx->layout, -EUCLEAN);
	wr64(img + 40, UINT64_MAX);
	reseal(img, len);
	expect_reject(img, len, &fx->layout, -EUCLEAN);
	free(img);
}

static void test_decode_rejects_nchunks(void **state)
{
	struct fixture *fx = *state;
	size_t len;
	uint8_t *img = valid_image(&fx->layout, &len);

	wr64(img + 32, 12);
	reseal(img, len);
	expect_reject(img, len, &fx->layout, -EUCLEAN);
	free(img);
}

static void test_decode_rejects_prefix(void **state)
{
	struct fixture *fx = *state;
	size_t len;
	uint8_t *img;

	/* A prefix longer than the file. */
	img = craft(&fx->layout, 11, 12, 12, NULL, 0, &len);
	expect_reject(img, len, &fx->layout, -EUCLEAN);
	free(img);
	/* A prefix that is not the whole run: chunk 3 is in the bitmap. */
	img = craft(&fx->layout, 11, 4, 3, (const uint8_t[]){ 0x01 }, 1, &len);
	expect_reject(img, len, &fx->layout, -EUCLEAN);
	free(img);
	/* The same set written canonically is accepted. */
	img = craft(&fx->layout, 11, 4, 4, NULL, 0, &len);
	{
		struct sidecar *sc = NULL;

		assert_int_equal(sidecar_decode(img, len, &fx->layout, &sc), 0);
		assert_int_equal(sc->done_count, 4);
		sidecar_free(sc);
	}
	free(img);
}

static void test_decode_rejects_reserved(void **state)
{
	struct fixture *fx = *state;
	size_t len;
	uint8_t *img = valid_image(&fx->layout, &len);

	wr32(img + 28, 7);
	reseal(img, len);
	expect_reject(img, len, &fx->layout, -EUCLEAN);
	free(img);
}

static void test_decode_rejects_bits_past_end(void **state)
{
	struct fixture *fx = *state; /* 11 chunks */
	size_t len;
	uint8_t *img;

	/* prefix 0, chunk 10 (bit 2 of byte 1) and chunk 11 (bit 3). */
	img = craft(&fx->layout, 11, 3, 0, (const uint8_t[]){ 0x02, 0x0c }, 2,
		    &len);
	expect_reject(img, len, &fx->layout, -EUCLEAN);
	free(img);
	/* prefix 5: chunks 5.. are bits 0..5; bit 7 is chunk 12. */
	img = craft(&fx->layout, 11, 6, 5, (const uint8_t[]){ 0x80 }, 1, &len);
	expect_reject(img, len, &fx->layout, -EUCLEAN);
	free(img);
	/* The last real chunk through a shifted bitmap is fine. */
	img = craft(&fx->layout, 11, 6, 5, (const uint8_t[]){ 0x20 }, 1, &len);
	{
		struct sidecar *sc = NULL;

		assert_int_equal(sidecar_decode(img, len, &fx->layout, &sc), 0);
		assert_true(sidecar_test(sc, 10));
		assert_false(sidecar_test(sc, 9));
		assert_true(sidecar_test(sc, 4));
		sidecar_free(sc);
	}
	free(img);
}

static void test_decode_rejects_trailing_zero_byte(void **state)
{
	struct fixture *fx = *state;
	size_t len;
	uint8_t *img;

	img = craft(&fx->layout, 11, 1, 0, (const uint8_t[]){ 0x02, 0x00 }, 2,
		    &len);
	expect_reject(img, len, &fx->layout, -EUCLEAN);
	free(img);
}

static void test_load_missing(void **state)
{
	struct fixture *fx = *state;
	struct sidecar *sc = (void *)1;

	assert_int_equal(sidecar_load(fx->path, &fx->layout, &sc), -ENOENT);
	assert_null(sc);
}

static void test_load_directory(void **state)
{
	struct fixture *fx = *state;
	struct sidecar *sc = (void *)1;

	assert_int_equal(mkdir(fx->path, 0700), 0);
	assert_int_equal(sidecar_load(fx->path, &fx->layout, &sc), -EISDIR);
	assert_null(sc);
}

/* A link in place of the sidecar is never read through (-ELOOP), by path
 * or relative to a folder; a FIFO does not hang the load. */
static void test_load_never_follows_a_link(void **state)
{
	struct fixture *fx = *state;
	struct sidecar *sc = mk_sidecar(&fx->layout, pat_prefix_sparse);
	struct sidecar *back = (void *)1;
	char target[PATH_MAX + 16], fifo[PATH_MAX + 16];
	int dfd;

	snprintf(target, sizeof(target), "%s/elsewhere", fx->dir);
	assert_int_equal(sidecar_save(sc, target), 0);
	assert_int_equal(symlink(target, fx->path), 0);
	assert_int_equal(sidecar_load(fx->path, &fx->layout, &back), -ELOOP);
	assert_null(back);
	dfd = open(fx->dir, O_RDONLY | O_DIRECTORY);
	assert_true(dfd >= 0);
	back = (void *)1;
	assert_int_equal(sidecar_load_at(dfd, "blob.state", &fx->layout, &back),
			 -ELOOP);
	assert_null(back);
	assert_int_equal(sidecar_load_at(dfd, "elsewhere", &fx->layout, &back),
			 0);
	sidecar_free(back);
	snprintf(fifo, sizeof(fifo), "%s/fifo", fx->dir);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	back = (void *)1;
	assert_int_equal(sidecar_load_at(dfd, "fifo", &fx->layout, &back),
			 -EINVAL);
	assert_null(back);
	close(dfd);
	sidecar_free(sc);
}

/* Saving over a planted link replaces the link; its target is untouched. */
static void test_save_at_replaces_a_link(void **state)
{
	struct fixture *fx = *state;
	struct sidecar *sc = mk_sidecar(&fx->layout, pat_prefix_sparse);
	struct sidecar *back = NULL;
	char target[PATH_MAX + 16];
	struct stat st;
	int dfd;

	snprintf(target, sizeof(target), "%s/victim", fx->dir);
	write_bytes(target, "precious", 8);
	assert_int_equal(symlink(target, fx->path), 0);
	dfd = open(fx->dir, O_RDONLY | O_DIRECTORY);
	assert_true(dfd >= 0);
	assert_int_equal(sidecar_save_at(sc, dfd, "blob.state"), 0);
	assert_int_equal(file_len(target), 8);
	assert_int_equal(lstat(fx->path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(sidecar_load(fx->path, &fx->layout, &back), 0);
	assert_int_equal(back->done_count, sc->done_count);
	sidecar_free(back);
	close(dfd);
	sidecar_free(sc);
}

/* A sidecar is a cache file: 0600 whatever the umask, by path too; a
 * link at the path is replaced, not written through. */
static void test_save_is_private(void **state)
{
	struct fixture *fx = *state;
	struct sidecar *sc = mk_sidecar(&fx->layout, pat_prefix_sparse);
	char target[PATH_MAX + 16];
	mode_t old = umask(0);
	struct stat st;

	snprintf(target, sizeof(target), "%s/victim", fx->dir);
	write_bytes(target, "precious", 8);
	assert_int_equal(symlink(target, fx->path), 0);
	assert_int_equal(sidecar_save(sc, fx->path), 0);
	umask(old);
	assert_int_equal(lstat(fx->path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(file_len(target), 8);
	sidecar_free(sc);
}

static void test_load_oversized(void **state)
{
	struct fixture *fx = *state;
	struct sidecar *sc = (void *)1;
	static uint8_t junk[4096];

	memcpy(junk, "HOLWSCAR", 8);
	write_bytes(fx->path, junk, sizeof(junk));
	assert_int_equal(sidecar_load(fx->path, &fx->layout, &sc), -EMSGSIZE);
	assert_null(sc);
}

static void test_load_rejects_bad_checksum(void **state)
{
	struct fixture *fx = *state;
	struct sidecar *sc = mk_sidecar(&fx->layout, pat_odd);

	assert_int_equal(sidecar_save(sc, fx->path), 0);
	sidecar_free(sc);
	sc = NULL;
	flip_byte(fx->path, file_len(fx->path) - 1); /* the trailer */
	assert_int_equal(sidecar_load(fx->path, &fx->layout, &sc), -EBADMSG);
	assert_null(sc);
}

static void test_save_load_round_trip(void **state)
{
	struct fixture *fx = *state;
	struct sidecar_layout big = mk_layout(17 * GIB + 5, 64 * KIB);
	struct sidecar *sc = mk_sidecar(&big, pat_prefix_sparse);
	struct sidecar *back = NULL;
	uint64_t i;

	assert_int_equal(sidecar_save(sc, fx->path), 0);
	assert_int_equal(sidecar_load(fx->path, &big, &back), 0);
	assert_int_equal(back->done_count, sc->done_count);
	for (i = 0; i < sc->nchunks; i++)
		if (sidecar_test(back, i) != sidecar_test(sc, i))
			fail_msg("chunk %llu", (unsigned long long)i);
	assert_int_equal(count_tmp(fx->dir), 0);
	/* Saving again replaces it. */
	sidecar_set(sc, sc->nchunks - 2);
	assert_int_equal(sidecar_save(sc, fx->path), 0);
	sidecar_free(back);
	assert_int_equal(sidecar_load(fx->path, &big, &back), 0);
	assert_true(sidecar_test(back, sc->nchunks - 2));
	assert_int_equal(count_tmp(fx->dir), 0);
	sidecar_free(back);
	sidecar_free(sc);
}

static void test_save_empty_file(void **state)
{
	struct fixture *fx = *state;
	struct sidecar_layout l = mk_layout(0, 64 * KIB);
	struct sidecar *sc = NULL, *back = NULL;

	assert_int_equal(sidecar_new(&l, &sc), 0);
	assert_int_equal(sc->nchunks, 0);
	assert_int_equal(sidecar_save(sc, fx->path), 0);
	assert_int_equal(file_len(fx->path), 104);
	assert_int_equal(sidecar_load(fx->path, &l, &back), 0);
	assert_int_equal(back->nchunks, 0);
	assert_int_equal(back->done_count, 0);
	sidecar_free(back);
	sidecar_free(sc);
}

static void test_save_into_missing_dir(void **state)
{
	struct fixture *fx = *state;
	struct sidecar *sc = mk_sidecar(&fx->layout, pat_all);
	char path[PATH_MAX + 16];

	snprintf(path, sizeof(path), "%s/nope/blob.state", fx->dir);
	assert_int_equal(sidecar_save(sc, path), -ENOENT);
	sidecar_free(sc);
}

/* The rename fails: the old file stays and no temporary is left. */
static void test_save_rename_fails(void **state)
{
	struct fixture *fx = *state;
	struct sidecar *sc = mk_sidecar(&fx->layout, pat_all);
	char inner[PATH_MAX + 16];

	assert_int_equal(mkdir(fx->path, 0700), 0);
	snprintf(inner, sizeof(inner), "%s/keep", fx->path);
	write_bytes(inner, "x", 1); /* a non-empty folder */
	assert_int_equal(sidecar_save(sc, fx->path), -EISDIR);
	assert_int_equal(count_tmp(fx->dir), 0);
	assert_int_equal(file_len(inner), 1);
	sidecar_free(sc);
}

/* Crash after writing the temporary, before the rename. */
static void test_crash_before_rename(void **state)
{
	struct fixture *fx = *state;
	struct sidecar *v1 = mk_sidecar(&fx->layout, pat_half);
	struct sidecar *v2 = mk_sidecar(&fx->layout, pat_all);
	struct sidecar *back = NULL;
	char tmp[PATH_MAX + 32];
	void *img = NULL;
	size_t len;

	assert_int_equal(sidecar_save(v1, fx->path), 0);
	assert_int_equal(sidecar_encode(v2, &img, &len), 0);
	snprintf(tmp, sizeof(tmp), "%s.tmp.0123456789abcdef", fx->path);
	write_bytes(tmp, img, len);
	assert_int_equal(sidecar_load(fx->path, &fx->layout, &back), 0);
	assert_int_equal(back->done_count, v1->done_count);
	sidecar_free(back);
	/* The temporary cut short, too. */
	write_bytes(tmp, img, len / 2);
	assert_int_equal(sidecar_load(fx->path, &fx->layout, &back), 0);
	assert_int_equal(back->done_count, v1->done_count);
	sidecar_free(back);
	/* A later save does not trip over the leftover. */
	assert_int_equal(sidecar_save(v2, fx->path), 0);
	assert_int_equal(sidecar_load(fx->path, &fx->layout, &back), 0);
	assert_int_equal(back->done_count, v2->done_count);
	sidecar_free(back);
	free(img);
	sidecar_free(v2);
	sidecar_free(v1);
}

/* A sidecar cut at any length is refused, never read as fewer chunks. */
static void test_truncated_at_every_length(void **state)
{
	struct fixture *fx = *state;
	struct sidecar *sc = mk_sidecar(&fx->layout, pat_prefix_sparse);
	struct sidecar *back = NULL;
	void *img = NULL;
	size_t len, cut;

	assert_int_equal(sidecar_encode(sc, &img, &len), 0);
	assert_true(len > 104);
	for (cut = 0; cut < len; cut++)
		expect_reject(img, cut, &fx->layout, -EMSGSIZE);
	/* And through the file system, at a few lengths. */
	for (cut = 0; cut < len; cut += 13) {
		write_bytes(fx->path, img, cut);
		assert_int_equal(sidecar_load(fx->path, &fx->layout, &back),
				 -EMSGSIZE);
		assert_null(back);
	}
	free(img);
	sidecar_free(sc);
}

/* Any single flipped bit is refused, with the error of its field. */
static void test_bit_flipped_everywhere(void **state)
{
	struct fixture *fx = *state;
	struct sidecar *sc = mk_sidecar(&fx->layout, pat_byte_edges);
	void *img = NULL;
	uint8_t *p;
	size_t len, i;
	int bit;

	assert_int_equal(sidecar_encode(sc, &img, &len), 0);
	p = img;
	for (i = 0; i < len; i++) {
		int want = -EBADMSG;

		if (i < 8)
			want = -EILSEQ;
		else if (i < 12)
			want = -EPROTONOSUPPORT;
		else if (i >= 88 && i < 96)
			want = -EMSGSIZE;
		for (bit = 0; bit < 8; bit++) {
			p[i] ^= (uint8_t)(1u << bit);
			expect_reject(p, len, &fx->layout, want);
			p[i] ^= (uint8_t)(1u << bit);
		}
	}
	free(img);
	sidecar_free(sc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
		T(test_chunk_size_valid),
		T(test_chunk_count),
		T(test_new_rejects_bad_chunk_size),
		T(test_set_and_test),
		T(test_round_trip_edges),
		T(test_bitmap_length_arithmetic),
		T(test_encode_masks_bits_past_end),
		T(test_decode_rejects_wrong_magic),
		T(test_decode_rejects_version),
		T(test_decode_rejects_unknown_flags),
		T(test_decode_rejects_file_size),
		T(test_decode_rejects_chunk_size),
		T(test_decode_rejects_identity),
		T(test_decode_rejects_other_data_file),
		T(test_decode_rejects_version_1),
		T(test_load_never_follows_a_link),
		T(test_save_at_replaces_a_link),
		T(test_save_is_private),
		T(test_decode_rejects_checksum),
		T(test_decode_rejects_truncated),
		T(test_decode_rejects_trailing_garbage),
		T(test_decode_rejects_bitmap_too_long),
		T(test_decode_rejects_done_count),
		T(test_decode_rejects_nchunks),
		T(test_decode_rejects_prefix),
		T(test_decode_rejects_reserved),
		T(test_decode_rejects_bits_past_end),
		T(test_decode_rejects_trailing_zero_byte),
		T(test_load_missing),
		T(test_load_directory),
		T(test_load_oversized),
		T(test_load_rejects_bad_checksum),
		T(test_save_load_round_trip),
		T(test_save_empty_file),
		T(test_save_into_missing_dir),
		T(test_save_rename_fails),
		T(test_crash_before_rename),
		T(test_truncated_at_every_length),
		T(test_bit_flipped_everywhere),
#undef T
	};

	return cmocka_run_group_tests_name("sidecar", tests, NULL, NULL);
}
