/*
 * fuzz_dirindex.c: libFuzzer target for the listing parsers of
 * fetch/dirindex.c (nginx JSON autoindex, HTML index pages), the date
 * parser and the percent escapes.
 *
 * Input: one mode byte, then the body. The mode picks the folder URL the
 * page is parsed for and a small entry cap now and then (to reach the
 * truncation paths). Properties: nothing crashes, leaks or reads past the
 * given length (the body is copied into a buffer of exactly its size);
 * every entry returned has a safe name (manifest_name_ok, no embedded
 * NUL) and sane metadata; the entry cap holds; HTML entries are unique;
 * escaping then unescaping any input gives it back.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetch/dirindex.h"
#include "state/hlog.h"
#include "state/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

static const char *const folders[] = {
	"http://example.org/pub/models/",
	"http://example.org/",
	"https://[::1]:8443/a%20b/c%C3%A9/",
	"not a url",
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static FILE *devnull;

	(void)argc;
	(void)argv;
	/* Unsafe names are warned about: keep the fuzzer's output clean. */
	devnull = fopen("/dev/null", "w");
	if (devnull)
		hlog_set_sink(devnull, false);
	return 0;
}

static void check(const struct dirindex *d, size_t max, bool unique)
{
	size_t i;

	if (d->n > max || d->n > d->alloc || (d->n && !d->entries))
		__builtin_trap();
	for (i = 0; i < d->n; i++) {
		const struct dirindex_entry *en = &d->entries[i];

		if (!en->name || !manifest_name_ok(en->name))
			__builtin_trap();
		if (en->size < DIRINDEX_SIZE_UNKNOWN ||
		    (en->is_dir && en->size != DIRINDEX_SIZE_UNKNOWN))
			__builtin_trap();
		/* merged duplicates come out sorted: neighbours differ */
		if (unique && i && !strcmp(d->entries[i - 1].name, en->name) &&
		    d->entries[i - 1].is_dir == en->is_dir)
			__builtin_trap();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dirindex *d = NULL;
	const char *folder;
	size_t max, len, dlen;
	char *body, *esc, *dec = NULL;
	int64_t t;
	int err;

	if (!size)
		return 0;
	folder = folders[data[0] & 3];
	max = data[0] & 4 ? 3 : 100000;
	data++;
	size--;
	len = size;
	body = malloc(len ? len : 1); /* exactly len: ASan sees overreads */
	if (!body)
		return 0;
	memcpy(body, data, len);

	err = dirindex_parse_json(body, len, folder, max, &d);
	if (err && (d || (err != -EBADMSG && err != -ENOMEM)))
		__builtin_trap();
	if (!err) {
		check(d, max, false);
		dirindex_free(d);
		d = NULL;
	}

	err = dirindex_parse_html(body, len, folder, max, &d);
	if (err && (d || err != -ENOMEM))
		__builtin_trap();
	if (!err) {
		check(d, max, true);
		if (d->n > d->nlinks)
			__builtin_trap();
		dirindex_free(d);
	}

	err = dirindex_parse_date(body, len < 64 ? len : 64, &t);
	if (err && err != -EINVAL)
		__builtin_trap();

	esc = dirindex_escape(body, len < 4096 ? len : 4096);
	if (esc) {
		err = dirindex_unescape(esc, strlen(esc), &dec, &dlen);
		if (!err && (dlen != (len < 4096 ? len : 4096) ||
			     memcmp(dec, body, dlen)))
			__builtin_trap();
		/* only an embedded NUL in the input can make it fail */
		if (err && (err != -EINVAL ||
			    !memchr(body, 0, len < 4096 ? len : 4096)))
			__builtin_trap();
		free(dec);
		free(esc);
	}
	dec = NULL;
	err = dirindex_unescape(body, len, &dec, &dlen);
	if (!err && (dlen > len || strlen(dec) != dlen))
		__builtin_trap();
	free(dec);
	free(body);
	return 0;
}
