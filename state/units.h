/*
 * units: sizes, rates and progress bars for people (hollowfs status, the
 * daemon's log). Pure functions, no state.
 */
#ifndef HOLLOWFS_STATE_UNITS_H
#define HOLLOWFS_STATE_UNITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Room for any units_bytes() result. */
#define UNITS_BYTES_MAX 16

/*
 * n bytes as people read it: "0 B", "512 B", "1.5 KiB", "12.0 MiB",
 * "1.0 TiB" (powers of 1024, one decimal from KiB on). Always fits
 * UNITS_BYTES_MAX; truncated, NUL-terminated, into a smaller buf.
 */
void units_bytes(uint64_t n, char *buf, size_t len);

/*
 * A progress bar of width cells ("[#####.....]" is width 10 plus the
 * brackets) for done of total: a cell is '#' only when wholly done, so
 * an incomplete file never shows a full bar. total 0 shows full. buf
 * needs width + 3 bytes; less is truncated.
 */
void units_bar(uint64_t done, uint64_t total, unsigned int width, char *buf,
	       size_t len);

/* done of total as a whole percentage, rounded down (99 until complete);
 * 100 for total 0. */
unsigned int units_percent(uint64_t done, uint64_t total);

/*
 * Parses a decimal number with an optional K, M, G or T suffix (powers of
 * 1024, "K", "KB" or "KiB", any case) when sizes is set: the options and
 * the commands take sizes this way. 0, -EINVAL or -ERANGE (above max).
 */
int units_parse(const char *s, bool sizes, uint64_t max, uint64_t *out)
	__attribute__((warn_unused_result));

#endif
