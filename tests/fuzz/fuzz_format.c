/*
 * fuzz_format.c: libFuzzer target for the model header parsers of
 * fetch/format.c (.safetensors and .gguf).
 *
 * Input: one mode byte, then the header bytes. The mode's low bit picks
 * the format; the rest picks how much larger than the input the file is
 * said to be (0 to 127 KiB). The bytes are copied into a buffer of
 * exactly their size, and parsed whole and then incrementally from 8
 * bytes on, following *need, as the open path does.
 *
 * Properties: nothing crashes, leaks or reads out of bounds; -EAGAIN
 * always asks for more than it was given; a map is sorted, its extents
 * do not overlap and lie between the header and the end of the file; the
 * incremental parse ends with the same answer as the whole one.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fetch/format.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_map(const struct format_map *map, uint64_t file_size)
{
	size_t i;

	for (i = 0; i < map->n; i++) {
		if (map->ext[i].off < map->data_off ||
		    map->ext[i].end > file_size ||
		    map->ext[i].off >= map->ext[i].end)
			abort();
		if (i && map->ext[i].off < map->ext[i - 1].end)
			abort();
	}
	if (map->data_off > file_size)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum format_kind kind;
	struct format_map *map = NULL, *map2 = NULL;
	uint64_t file_size, need = 0, len;
	uint8_t *buf;
	int err, err2 = -EAGAIN, rounds = 0;

	if (!size)
		return 0;
	kind = data[0] & 1 ? FORMAT_GGUF : FORMAT_SAFETENSORS;
	file_size = (size - 1) + (uint64_t)(data[0] >> 1) * 1024;
	buf = malloc(size - 1 ? size - 1 : 1);
	if (!buf)
		return 0;
	memcpy(buf, data + 1, size - 1);

	err = format_parse(kind, buf, size - 1, file_size, &need, &map);
	if (err == -EAGAIN && need <= size - 1)
		abort();
	if (!err)
		check_map(map, file_size);

	/* Incrementally; past the input the file is unknown: stop there. */
	len = size - 1 < 8 ? size - 1 : 8;
	while (err2 == -EAGAIN && rounds++ < 64) {
		err2 = format_parse(kind, buf, (size_t)len, file_size, &need,
				    &map2);
		if (err2 != -EAGAIN)
			break;
		if (need <= len)
			abort();
		if (need > size - 1)
			break;
		len = need;
	}
	if (!err2) {
		check_map(map2, file_size);
		/* Both saw a complete header: the same map. */
		if (err || map->n != map2->n || map->data_off != map2->data_off)
			abort();
	}
	format_map_free(map);
	format_map_free(map2);
	free(buf);
	return 0;
}
