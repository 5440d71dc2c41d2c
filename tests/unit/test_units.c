/* test_units.c: sizes, bars and percentages for people (state/units.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "state/units.h"

static void check_bytes(uint64_t n, const char *want)
{
	char buf[UNITS_BYTES_MAX];

	units_bytes(n, buf, sizeof(buf));
	assert_string_equal(buf, want);
}

static void test_bytes(void **state)
{
	(void)state;
	check_bytes(0, "0 B");
	check_bytes(1023, "1023 B");
	check_bytes(1024, "1.0 KiB");
	check_bytes(1536, "1.5 KiB");
	check_bytes(3u << 20, "3.0 MiB");
	/* Never "1024.0 KiB": the next unit up. */
	check_bytes((1u << 20) - 1, "1.0 MiB");
	check_bytes(5ull << 40, "5.0 TiB");
	check_bytes(UINT64_MAX, "16.0 EiB");
}

static void test_bytes_truncates(void **state)
{
	char buf[4] = "xxx";

	(void)state;
	units_bytes(1536, buf, sizeof(buf));
	assert_string_equal(buf, "1.5");
	units_bytes(1, buf, 0); /* nothing written */
	assert_string_equal(buf, "1.5");
}

static void test_bar(void **state)
{
	char buf[16];

	(void)state;
	units_bar(0, 100, 10, buf, sizeof(buf));
	assert_string_equal(buf, "[..........]");
	units_bar(50, 100, 10, buf, sizeof(buf));
	assert_string_equal(buf, "[#####.....]");
	/* A cell is full only when wholly done: 99% is not a full bar. */
	units_bar(99, 100, 10, buf, sizeof(buf));
	assert_string_equal(buf, "[#########.]");
	units_bar(100, 100, 10, buf, sizeof(buf));
	assert_string_equal(buf, "[##########]");
	units_bar(0, 0, 4, buf, sizeof(buf)); /* an empty file is complete */
	assert_string_equal(buf, "[####]");
	/* Huge totals do not overflow; just under half is one cell of 4. */
	units_bar(UINT64_MAX / 2, UINT64_MAX, 4, buf, sizeof(buf));
	assert_string_equal(buf, "[#...]");
	units_bar(UINT64_MAX / 4 * 3, UINT64_MAX, 4, buf, sizeof(buf));
	assert_string_equal(buf, "[##..]");
	units_bar(1, 2, 10, buf, 5); /* truncated, still terminated */
	assert_string_equal(buf, "[###");
}

static void test_percent(void **state)
{
	(void)state;
	assert_int_equal(units_percent(0, 10), 0);
	assert_int_equal(units_percent(999, 1000), 99);
	assert_int_equal(units_percent(1000, 1000), 100);
	assert_int_equal(units_percent(0, 0), 100);
	assert_int_equal(units_percent(UINT64_MAX - 1, UINT64_MAX), 99);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bytes),
		cmocka_unit_test(test_bytes_truncates),
		cmocka_unit_test(test_bar),
		cmocka_unit_test(test_percent),
	};

	return cmocka_run_group_tests_name("units", tests, NULL, NULL);
}
