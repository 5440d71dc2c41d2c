/* units.c: sizes and bars for people (see state/units.h). */
#include "state/units.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void units_bytes(uint64_t n, char *buf, size_t len)
{
	static const char *const units[] = { "KiB", "MiB", "GiB",
					     "TiB", "PiB", "EiB" };
	unsigned int u = 0;
	double v;

	if (!len)
		return;
	if (n < 1024) {
		snprintf(buf, len, "%" PRIu64 " B", n);
		return;
	}
	v = (double)n / 1024.0;
	/* 1023.95 KiB would print as "1024.0 KiB": move up first. */
	while (v >= 1023.95 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024.0;
		u++;
	}
	snprintf(buf, len, "%.1f %s", v, units[u]);
}

void units_bar(uint64_t done, uint64_t total, unsigned int width, char *buf,
	       size_t len)
{
	unsigned int full, i;
	size_t pos = 0;

	if (!len)
		return;
	if (!total || done >= total)
		full = width;
	else /* whole cells only, without overflow for huge totals */
		full = (unsigned int)((long double)done * width / total);
	if (pos + 1 < len)
		buf[pos++] = '[';
	for (i = 0; i < width && pos + 1 < len; i++)
		buf[pos++] = i < full ? '#' : '.';
	if (pos + 1 < len)
		buf[pos++] = ']';
	buf[pos] = '\0';
}

unsigned int units_percent(uint64_t done, uint64_t total)
{
	if (!total || done >= total)
		return 100;
	return (unsigned int)((long double)done * 100 / total);
}

/*
 * Parses a decimal number with an optional K, M, G or T suffix (powers of
 * 1024, "K", "KB" or "KiB", any case) when sizes is set. 0, -EINVAL or
 * -ERANGE (above max).
 */
int units_parse(const char *s, bool sizes, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	unsigned int shift = 0;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -ERANGE;
	if (sizes && *end) {
		const char *units = "KMGT", *u = strchr(units, *end & ~0x20);

		if (!u || !*u)
			return -EINVAL;
		shift = 10 * (unsigned int)(u - units + 1);
		end++;
		if ((*end & ~0x20) == 'I' && (end[1] & ~0x20) == 'B')
			end += 2;
		else if ((*end & ~0x20) == 'B')
			end++;
	}
	if (*end)
		return -EINVAL;
	if (v > (UINT64_MAX >> shift) || (v << shift) > max)
		return -ERANGE;
	*out = v << shift;
	return 0;
}
