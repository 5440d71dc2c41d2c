/*
 * fuzz_seeds.c: writes the seed corpus of the fuzz targets.
 *
 *   fuzz_seeds DIR    creates DIR/sidecar/, DIR/manifest/, DIR/http/ and
 *                     DIR/hf_tree/
 *
 * Sidecar seeds are a mode byte (see fuzz_sidecar.c) and a valid image,
 * over the layout edges of the format; manifest seeds are the JSON of a few
 * trees, plus small texts that stop at each kind of check. HTTP seeds are a
 * mode byte and a header value of each kind fuzz_http.c parses; Hub tree
 * seeds a mode byte and a /tree page (fuzz_hf_tree.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "state/cache.h"
#include "state/manifest.h"
#include "state/sidecar.h"

static int nseeds;

static int put(const char *dir, const char *kind, const void *a, size_t alen,
	       const void *b, size_t blen)
{
	char path[PATH_MAX];
	int fd, err = 0;

	snprintf(path, sizeof(path), "%s/%s/seed-%03d", dir, kind, nseeds++);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	if (alen)
		err = pwrite_all(fd, a, alen, 0);
	if (!err && blen)
		err = pwrite_all(fd, b, blen, alen);
	close(fd);
	return err;
}

static int sidecar_seeds(const char *dir)
{
	static const struct {
		uint64_t file_size;
		uint32_t chunk_size;
	} layouts[] = {
		{ 0, 65536 },
		{ 1, 65536 },
		{ 65536, 65536 },
		{ 10 * 65536 + 123, 65536 },
		{ 64 * 65536, 65536 },
		{ 17ull << 30, 64u << 20 },
		{ 3000 * 65536 + 1, 65536 },
	};
	size_t i;
	int err = 0;

	for (i = 0; !err && i < sizeof(layouts) / sizeof(layouts[0]); i++) {
		struct sidecar_layout l;
		struct sidecar *sc = NULL;
		uint64_t k;
		int pattern;

		memset(&l, 0, sizeof(l)); /* bound to no data file */
		l.file_size = layouts[i].file_size;
		l.chunk_size = layouts[i].chunk_size;
		memset(l.identity, (int)i, sizeof(l.identity));
		for (pattern = 0; !err && pattern < 4; pattern++) {
			static const unsigned char modes[] = { 0, 3 };
			void *img = NULL;
			size_t len, m;

			err = sidecar_new(&l, &sc);
			if (err)
				break;
			for (k = 0; k < sc->nchunks; k++)
				if ((pattern == 1) ||
				    (pattern == 2 && k < sc->nchunks / 2) ||
				    (pattern == 3 && (k < 3 || k % 5 == 1)))
					sidecar_set(sc, k);
			err = sidecar_encode(sc, &img, &len);
			for (m = 0; !err && m < sizeof(modes); m++)
				err = put(dir, "sidecar", &modes[m], 1, img,
					  len);
			free(img);
			sidecar_free(sc);
		}
	}
	return err;
}

static int manifest_seeds(const char *dir)
{
	static const char *const texts[] = {
		("{\"format\": 1, \"entries\": []}"),
		("{\"format\": 1, \"source\": null, \"version\": \"v\","
		 " \"entries\": [{\"path\": \"d\", \"type\": \"dir\"},"
		 " {\"path\": \"d/f\", \"type\": \"file\", \"size\": 3,"
		 " \"mtime\": -1, \"id\": null, \"x\": [1]}]}"),
		("{\"format\": 1, \"entries\": [{\"path\": \"a\", \"type\":"
		 " \"file\", \"size\": 1}, {\"path\": \"a/b\", \"type\":"
		 " \"file\", \"size\": 1}]}"),
		("{\"format\": 1, \"entries\": [{\"path\": \"../x\","
		 " \"type\": \"file\", \"size\": 1}]}"),
		("{\"format\": 2}"),
	};
	struct manifest *m = NULL;
	char *json = NULL, name[64];
	size_t i;
	int err;

	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		err = put(dir, "manifest", texts[i], strlen(texts[i]), NULL, 0);
		if (err)
			return err;
	}
	err = manifest_new(&m);
	if (err)
		return err;
	err = manifest_add(m, "models/llama/model-00001.safetensors",
			   MENTRY_FILE, 5ull << 30, 1700000000, "e3b0c442",
			   "sha256", "https://hf.co/org/m/resolve/abc/x");
	for (i = 0; !err && i < 12; i++) {
		snprintf(name, sizeof(name), "data/%c/part-%zu.bin",
			 (int)('a' + i % 3), i);
		err = manifest_add(m, name, MENTRY_FILE, i * 1000, (int64_t)i,
				   NULL, i % 2 ? "etag" : NULL, NULL);
	}
	if (!err)
		err = manifest_add(m, "empty", MENTRY_DIR, 0, 5, NULL, NULL,
				   NULL);
	if (!err)
		err = manifest_add(m, "\xc3\xa9t\xc3\xa9 \"q\"", MENTRY_FILE, 1,
				   0, NULL, NULL, NULL);
	if (!err)
		err = manifest_finish(m);
	if (!err) {
		m->source = strdup("hf://org/model");
		m->version = strdup("0123456789abcdef");
		err = manifest_to_json(m, &json);
	}
	if (!err)
		err = put(dir, "manifest", json, strlen(json), NULL, 0);
	free(json);
	manifest_free(m);
	return err;
}

/* Each text once per mode byte in modes. */
static int put_modes(const char *dir, const char *kind,
		     const char *const *texts, size_t n, const uint8_t *modes,
		     size_t nmodes)
{
	size_t i, j;
	int err = 0;

	for (i = 0; !err && i < n; i++)
		for (j = 0; !err && j < nmodes; j++)
			err = put(dir, kind, &modes[j], 1, texts[i],
				  strlen(texts[i]));
	return err;
}

static int http_seeds(const char *dir)
{
	static const char *const texts[] = {
		"bytes 0-65535/1048576",
		"bytes */1048576",
		"bytes 1048575-1048575/1048576",
		"120",
		"Mon, 23 Nov 2026 18:00:30 GMT",
		"\"api\";r=0;t=55",
		"\"a\";r=0;t=5, \"b\";r=3;t=90;pk=\"x,y\"",
		("<https://huggingface.co/api/models/o/n/tree/main?cursor=abc>; "
		 "rel=\"next\""),
		"</p0>; rel=\"prev\", <p2>; rel=next; title=\"a, b\"",
		"W/\"0123456789abcdef\"\"0123456789abcdef\"",
		"https://u:p@cdn.example:8443/f?Expires=1700000000&X-Sig=s#f",
		"http://[::1]:80/a",
	};
	static const uint8_t modes[] = { 0x00, 0x81, 0x82 };

	return put_modes(dir, "http", texts, sizeof(texts) / sizeof(texts[0]),
			 modes, sizeof(modes));
}

static int hf_tree_seeds(const char *dir)
{
#define OID "0123456789abcdef0123456789abcdef01234567"
#define SHA "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	static const char *const texts[] = {
		"[]",
		"[{\"type\":\"directory\",\"oid\":\"" OID "\",\"size\":0,"
		"\"path\":\"a\"},"
		"{\"type\":\"file\",\"oid\":\"" OID "\",\"size\":12,"
		"\"path\":\"a/b/config.json\"},"
		"{\"type\":\"file\",\"oid\":\"" OID "\",\"size\":5368709120,"
		"\"path\":\"a/model.safetensors\",\"lfs\":{\"oid\":\"" SHA
		"\",\"size\":5368709120,\"pointerSize\":134}}]",
		"[{\"type\":\"file\",\"oid\":\"********\",\"size\":1,"
		"\"path\":\"sub dir/x\"}]",
		"[{\"type\":\"file\",\"size\":1,\"path\":\"../x\"},"
		"{\"type\":\"file\",\"size\":1,\"path\":\"a//b\"},"
		"{\"type\":\"file\",\"size\":1,\"path\":\"a\\u0000b\"},"
		"{\"type\":\"unknown\",\"path\":\"c\"}]",
	};
	static const uint8_t modes[] = { 0x00, 0x01, 0x06, 0x1a };
#undef OID
#undef SHA

	return put_modes(dir, "hf_tree", texts,
			 sizeof(texts) / sizeof(texts[0]), modes,
			 sizeof(modes));
}

int main(int argc, char **argv)
{
	static const char *const kinds[] = { "sidecar", "manifest", "http",
					     "hf_tree" };
	size_t i;
	char path[PATH_MAX];
	int err;

	if (argc != 2) {
		fprintf(stderr, "usage: fuzz_seeds DIR\n");
		return 2;
	}
	mkdir(argv[1], 0755);
	for (i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", argv[1], kinds[i]);
		mkdir(path, 0755);
	}
	err = sidecar_seeds(argv[1]);
	if (!err)
		err = manifest_seeds(argv[1]);
	if (!err)
		err = http_seeds(argv[1]);
	if (!err)
		err = hf_tree_seeds(argv[1]);
	if (err) {
		fprintf(stderr, "fuzz_seeds: cannot write seeds in '%s': %s\n",
			argv[1], strerror(-err));
		return 1;
	}
	return 0;
}
