/* test_stats.c: the stats xattr's JSON, both ways (fs/stats.h). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fs/stats.h"

static void test_round_trip(void **state)
{
	struct fs_stats in = {
		.source = "http://h/\"q\"\n", /* escaped, not broken */
		.version = "abc",
		.cache = NULL,
		.files = 3,
		.bytes = 1ull << 40,
		.bytes_fetched = 7,
		.bytes_served = 8,
		.bytes_from_cache = 5,
		.reads = 9,
		.read_errors = 1,
		.requests = 10,
		.retries = 2,
		.errors = 4,
		.conn_in_use = 11,
		.conn_max = 16,
		.queued = { 1, 2, 3 },
		.inflight = 12,
		.open_blobs = 13,
	};
	struct fs_stats out;
	char *text = NULL;

	(void)state;
	assert_int_equal(fs_stats_format(&in, &text), 0);
	assert_non_null(strstr(text, "\"queued\":{\"demand\":1,"
				     "\"readahead\":2,\"background\":3}"));
	assert_non_null(strstr(text, "\"cache\":null"));
	assert_null(strchr(text, '\n'));
	assert_int_equal(fs_stats_parse(text, strlen(text), &out), 0);
	assert_string_equal(out.source, in.source);
	assert_string_equal(out.version, in.version);
	assert_null(out.cache);
	assert_int_equal(out.bytes, in.bytes);
	assert_int_equal(out.bytes_from_cache, 5);
	assert_int_equal(out.read_errors, 1);
	assert_int_equal(out.conn_in_use, 11);
	assert_int_equal(out.conn_max, 16);
	assert_int_equal(out.queued[2], 3);
	assert_int_equal(out.open_blobs, 13);
	fs_stats_release(&out);
	free(text);
}

static void test_missing_numbers_read_zero(void **state)
{
	const char *t = "{\"format\": 1, \"reads\": 4}";
	struct fs_stats out;

	(void)state;
	assert_int_equal(fs_stats_parse(t, strlen(t), &out), 0);
	assert_int_equal(out.reads, 4);
	assert_int_equal(out.bytes_fetched, 0);
	assert_null(out.source);
	fs_stats_release(&out);
}

static void test_rejects(void **state)
{
	static const char *const bad[] = {
		"",
		"[1]",
		"{\"format\": 2}",
		"{\"reads\": 1}", /* no format */
		"{\"format\": 1, \"reads\": -1}",
		"{\"format\": 1, \"reads\": \"1\"}",
		"{\"format\": 1, \"source\": 5}",
		"{\"format\": 1, \"queued\": []}",
		"{\"format\": 1, \"queued\": {\"demand\": 1.5}}",
		"{\"format\": 1, \"format\": 1}",
	};
	struct fs_stats out;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(fs_stats_parse(bad[i], strlen(bad[i]), &out),
				 -EBADMSG);
		assert_null(out.source);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_missing_numbers_read_zero),
		cmocka_unit_test(test_rejects),
	};

	return cmocka_run_group_tests_name("stats", tests, NULL, NULL);
}
