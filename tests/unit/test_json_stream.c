/*
 * test_json_stream.c: the streamed JSON of state/manifest.c (to_json and
 * from_json one entry at a time) and of fetch/dirindex.c (the nginx JSON
 * autoindex one element at a time) accept and refuse exactly what a
 * whole-document json_loadb did, and write the same bytes json_dumps of
 * the whole tree did. Single-threaded; no locks.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fetch/dirindex.h"
#include "state/manifest.h"

struct mcase {
	const char *json;
	int err; /* from manifest_from_json */
	size_t n; /* entries, root included, when err is 0 */
};

static const struct mcase mcases[] = {
	{ "{\"format\":1,\"entries\":[]}", 0, 1 },
	{ " { \"entries\" : [ ] ,\n\"format\" : 1 , \"x\": {\"a\":[1,2]} } ", 0,
	  1 },
	{ "{\"format\":1,\"source\":\"s\",\"version\":\"v\",\"entries\":["
	  "{\"path\":\"a/b\",\"type\":\"file\",\"size\":3},"
	  "{\"path\":\"c\",\"type\":\"dir\"}]}",
	  0, 4 },
	{ "{\"format\":1,\"source\":null,\"entries\":[]}", 0, 1 },
	/* duplicated keys, at the top and in an entry */
	{ "{\"format\":1,\"entries\":[],\"format\":1}", -EBADMSG, 0 },
	{ "{\"format\":1,\"entries\":[],\"entries\":[]}", -EBADMSG, 0 },
	{ "{\"format\":1,\"entries\":[{\"path\":\"a\",\"type\":\"file\","
	  "\"size\":1,\"size\":2}]}",
	  -EBADMSG, 0 },
	/* malformed anywhere, trailing bytes */
	{ "{\"format\":1,\"entries\":[]}x", -EBADMSG, 0 },
	{ "{\"format\":1,\"entries\":[{\"path\":\"a\",\"type\":\"file\","
	  "\"size\":1},]}",
	  -EBADMSG, 0 },
	{ "{\"format\":1,\"entries\":[],}", -EBADMSG, 0 },
	{ "{\"format\":1 \"entries\":[]}", -EBADMSG, 0 },
	{ "{\"format\":1,\"entries\":[{\"path\":\"a\"", -EBADMSG, 0 },
	{ "{\"format\":1,\"entries\":[]", -EBADMSG, 0 },
	{ "", -EBADMSG, 0 },
	{ "[]", -EBADMSG, 0 },
	{ "{}", -EBADMSG, 0 },
	/* fields */
	{ "{\"format\":2,\"entries\":[]}", -EBADMSG, 0 },
	{ "{\"format\":1}", -EBADMSG, 0 },
	{ "{\"format\":1,\"entries\":{}}", -EBADMSG, 0 },
	{ "{\"format\":1,\"entries\":null}", -EBADMSG, 0 },
	{ "{\"format\":1,\"source\":5,\"entries\":[]}", -EBADMSG, 0 },
	{ "{\"format\":1,\"entries\":[5]}", -EBADMSG, 0 },
};

static void test_manifest_from_json_cases(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(mcases) / sizeof(mcases[0]); i++) {
		const struct mcase *c = &mcases[i];
		struct manifest *m = NULL;
		int err = manifest_from_json(c->json, strlen(c->json), &m);

		if (err != c->err || (!err && m->n != c->n))
			fail_msg("case %zu %s: err %d (want %d)", i, c->json,
				 err, c->err);
		if (err)
			assert_null(m);
		manifest_free(m);
	}
}

/* The exact bytes json_dumps(JSON_COMPACT | JSON_PRESERVE_ORDER) of the
 * whole tree gave (a saved snapshot of an older hollowfs). */
static void test_manifest_to_json_bytes(void **state)
{
	static const char want[] =
		"{\"format\":1,\"source\":\"http://h/\",\"version\":\"v1\","
		"\"entries\":[{\"path\":\"a\",\"type\":\"dir\",\"size\":0,"
		"\"mtime\":7},{\"path\":\"a/b \\\"q\\\"\",\"type\":\"file\","
		"\"size\":3,\"mtime\":7,\"id\":\"e1\",\"hash\":\"etag\","
		"\"url\":\"u\"}]}";
	struct manifest *m = NULL, *back = NULL;
	char *json = NULL, *json2 = NULL;

	(void)state;
	assert_int_equal(manifest_new(&m), 0);
	assert_int_equal(manifest_add(m, "a/b \"q\"", MENTRY_FILE, 3, 7, "e1",
				      "etag", "u"),
			 0);
	m->source = strdup("http://h/");
	m->version = strdup("v1");
	assert_int_equal(manifest_finish(m), 0);
	assert_int_equal(manifest_to_json(m, &json), 0);
	assert_string_equal(json, want);
	assert_int_equal(manifest_from_json(json, strlen(json), &back), 0);
	assert_int_equal(manifest_to_json(back, &json2), 0);
	assert_string_equal(json2, want);
	free(json);
	free(json2);
	manifest_free(back);
	manifest_free(m);
}

static void test_manifest_to_json_empty(void **state)
{
	struct manifest *m = NULL;
	char *json = NULL;

	(void)state;
	assert_int_equal(manifest_new(&m), 0);
	assert_int_equal(manifest_finish(m), 0);
	assert_int_equal(manifest_to_json(m, &json), 0);
	assert_string_equal(json, "{\"format\":1,\"entries\":[]}");
	free(json);
	manifest_free(m);
}

/* Many entries: the output buffer grows many times. */
static void test_manifest_json_many(void **state)
{
	struct manifest *m = NULL, *back = NULL;
	char *json = NULL, *json2 = NULL, path[32];
	size_t i;

	(void)state;
	assert_int_equal(manifest_new(&m), 0);
	for (i = 0; i < 20000; i++) {
		snprintf(path, sizeof(path), "d%zu/f%zu", i % 7, i);
		assert_int_equal(manifest_add(m, path, MENTRY_FILE, i, 1, NULL,
					      NULL, NULL),
				 0);
	}
	assert_int_equal(manifest_finish(m), 0);
	assert_int_equal(manifest_to_json(m, &json), 0);
	assert_int_equal(manifest_from_json(json, strlen(json), &back), 0);
	assert_int_equal(back->n, m->n);
	assert_int_equal(manifest_to_json(back, &json2), 0);
	assert_string_equal(json, json2);
	free(json);
	free(json2);
	manifest_free(back);
	manifest_free(m);
}

/* A string that is not UTF-8 is -EILSEQ, in the header and an entry. */
static void test_manifest_to_json_not_utf8(void **state)
{
	struct manifest *m = NULL;
	char *json = NULL;

	(void)state;
	assert_int_equal(manifest_new(&m), 0);
	assert_int_equal(
		manifest_add(m, "a", MENTRY_FILE, 1, 1, "\xff", NULL, NULL), 0);
	assert_int_equal(manifest_finish(m), 0);
	assert_int_equal(manifest_to_json(m, &json), -EILSEQ);
	assert_null(json);
	m->entries[1].content_id[0] = 'x';
	m->source = strdup("\xfe");
	assert_int_equal(manifest_to_json(m, &json), -EILSEQ);
	assert_null(json);
	manifest_free(m);
}

struct dcase {
	const char *json;
	int err;
	size_t n; /* entries kept, when err is 0 */
};

static const struct dcase dcases[] = {
	{ "[]", 0, 0 },
	{ " [ ] \n", 0, 0 },
	{ "[{\"name\":\"a\",\"type\":\"file\",\"size\":3}]", 0, 1 },
	{ "[ {\"name\":\"a\",\"type\":\"file\",\"size\":3} ,\n"
	  "{\"name\":\"b\",\"type\":\"directory\"}, 5, \"x\", null,"
	  "{\"name\":\"s\",\"type\":\"other\"} ]",
	  0, 2 },
	{ "", -EBADMSG, 0 },
	{ "{}", -EBADMSG, 0 },
	{ "[", -EBADMSG, 0 },
	{ "[1,]", -EBADMSG, 0 },
	{ "[1,2", -EBADMSG, 0 },
	{ "[]x", -EBADMSG, 0 },
	{ "[1 2]", -EBADMSG, 0 },
	{ "[{\"name\":\"a\",\"type\":\"file\",\"size\":3}]]", -EBADMSG, 0 },
	{ "[{\"name\":\"a\",\"type\":\"file\"},{\"name\":]", -EBADMSG, 0 },
};

static void test_dirindex_json_cases(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(dcases) / sizeof(dcases[0]); i++) {
		const struct dcase *c = &dcases[i];
		struct dirindex *d = NULL;
		int err = dirindex_parse_json(c->json, strlen(c->json),
					      "http://h/", 1000, &d);

		if (err != c->err || (!err && d->n != c->n))
			fail_msg("case %zu %s: err %d (want %d)", i, c->json,
				 err, c->err);
		if (err)
			assert_null(d);
		dirindex_free(d);
	}
}

/* Past max_entries the rest is still checked: a malformed tail fails. */
static void test_dirindex_json_truncated_still_checked(void **state)
{
	static const char ok[] = "[{\"name\":\"a\",\"type\":\"file\"},"
				 "{\"name\":\"b\",\"type\":\"file\"},"
				 "{\"name\":\"c\",\"type\":\"file\"}]";
	static const char bad[] = "[{\"name\":\"a\",\"type\":\"file\"},"
				  "{\"name\":\"b\",\"type\":\"file\"},"
				  "{\"name\":\"c\",\"type\":}]";
	struct dirindex *d = NULL;

	(void)state;
	assert_int_equal(
		dirindex_parse_json(ok, strlen(ok), "http://h/", 1, &d), 0);
	assert_true(d->truncated);
	dirindex_free(d);
	d = NULL;
	assert_int_equal(dirindex_parse_json(bad, strlen(bad), "http://h/", 1,
					     &d),
			 -EBADMSG);
	assert_null(d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_manifest_from_json_cases),
		cmocka_unit_test(test_manifest_to_json_bytes),
		cmocka_unit_test(test_manifest_to_json_empty),
		cmocka_unit_test(test_manifest_json_many),
		cmocka_unit_test(test_manifest_to_json_not_utf8),
		cmocka_unit_test(test_dirindex_json_cases),
		cmocka_unit_test(test_dirindex_json_truncated_still_checked),
	};

	return cmocka_run_group_tests_name("json_stream", tests, NULL, NULL);
}
