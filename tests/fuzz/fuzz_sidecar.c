/*
 * fuzz_sidecar.c: libFuzzer target for sidecar_decode().
 *
 * Input: one mode byte, then a sidecar image. A mutated image almost never
 * carries a valid xxh3 trailer, so the mode can repair it and reach the
 * checks behind the checksum:
 *   bit 0  recompute the trailer over the image
 *   bit 1  set the bitmap length field to what the length implies
 * The expected layout (data file binding included) is the one the image
 * claims when that is small enough to allocate, else a fixed one.
 *
 * Properties: decode never crashes or leaks; on error nothing is returned
 * and the error is one of the documented ones; on success the counts agree
 * with the bits, and encoding gives back the same bytes (canonical form).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "state/sidecar.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_FUZZ_CHUNKS (1u << 20)

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

static void pick_layout(const uint8_t *img, size_t len,
			struct sidecar_layout *l)
{
	/* clang-format off */
	static const uint8_t fixed_id[16] = { 1, 2, 3, 4, 5, 6, 7, 8,
					      9, 10, 11, 12, 13, 14, 15, 16 };
	/* clang-format on */

	memset(l, 0, sizeof(*l));
	l->file_size = 10 * 65536 + 123;
	l->chunk_size = 65536;
	memcpy(l->identity, fixed_id, 16);
	if (len < SIDECAR_HEADER_LEN)
		return;
	{
		uint64_t fs = rd64(img + 16);
		uint32_t cs = (uint32_t)(rd64(img + 24) & 0xffffffffu);

		if (!chunk_size_valid(cs) ||
		    chunk_count(fs, cs) > MAX_FUZZ_CHUNKS)
			return;
		l->file_size = fs;
		l->chunk_size = cs;
		memcpy(l->identity, img + 48, 16);
		l->data_ino = rd64(img + 64);
		l->data_birth_ns = rd64(img + 72);
	}
}

static bool known_error(int err)
{
	switch (err) {
	case -EILSEQ:
	case -EPROTONOSUPPORT:
	case -EMSGSIZE:
	case -EBADMSG:
	case -ERANGE:
	case -EDOM:
	case -ESTALE:
	case -ENOLINK:
	case -EUCLEAN:
	case -ENOMEM:
		return true;
	default:
		return false;
	}
}

static void check_decoded(const struct sidecar *sc, const uint8_t *img,
			  size_t len)
{
	uint64_t i, n = 0;
	void *out = NULL;
	size_t out_len;

	for (i = 0; i < sc->nchunks; i++)
		n += sidecar_test(sc, i);
	if (n != sc->done_count)
		__builtin_trap();
	if (sc->nchunks % 8 && (sc->bits[sc->nchunks / 8] >> (sc->nchunks % 8)))
		__builtin_trap(); /* a bit past the end got through */
	if (sidecar_encode(sc, &out, &out_len))
		return; /* out of memory */
	if (out_len != len || memcmp(out, img, len))
		__builtin_trap(); /* two images of one set */
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sidecar_layout expect;
	struct sidecar *sc = (void *)1;
	uint8_t *img;
	size_t len;
	int err;

	if (!size)
		return 0;
	len = size - 1;
	img = malloc(len ? len : 1);
	if (!img)
		return 0;
	if (len)
		memcpy(img, data + 1, len);
	if ((data[0] & 2) && len >= SIDECAR_HEADER_LEN + 8)
		wr64(img + 88, len - SIDECAR_HEADER_LEN - 8);
	if ((data[0] & 1) && len >= 8)
		wr64(img + len - 8, XXH3_64bits(img, len - 8));
	pick_layout(img, len, &expect);

	err = sidecar_decode(img, len, &expect, &sc);
	if (err) {
		if (sc || !known_error(err))
			__builtin_trap();
	} else {
		check_decoded(sc, img, len);
		sidecar_free(sc);
	}
	free(img);
	return 0;
}
