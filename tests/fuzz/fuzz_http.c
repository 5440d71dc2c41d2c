/*
 * fuzz_http.c: libFuzzer target for the header parsers of fetch/http.c:
 * header values, Content-Range (and the exact-range check of the
 * disk-full fallback), Retry-After, RateLimit, Link, ETag comparison,
 * content codings, and the log-safe URL.
 *
 * Input: one mode byte, then the header value. The mode picks the base
 * URL a Link is resolved against and the "now" of Retry-After. The value
 * is copied into a buffer of exactly its size for http_header_value (so
 * a read past it is caught), and into a NUL-terminated one for the rest.
 *
 * Properties: nothing crashes, leaks or reads out of bounds; a good
 * Content-Range has FIRST <= LAST < TOTAL and prints back to a string
 * that parses to the same numbers; a wait is never negative; a Link
 * answer is 0 with a string or an error with NULL; ETag comparison is
 * reflexive and symmetric; a logged URL has no query or fragment and
 * fits its buffer; origin comparison is symmetric; a Content-Range
 * that names exactly [off, off + len) of size passes the exact check,
 * and with any other range or size it does not; a coding list that is
 * identity for Content-Encoding is identity for Transfer-Encoding too.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetch/http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const bases[] = {
	"https://huggingface.co/api/models/org/name/tree/main?recursive=1",
	"http://127.0.0.1:8080/pub/",
	"http://[::1]/a/b/c",
	"not a url",
};

static void check_content_range(const char *v)
{
	uint64_t a = 0, b = 0, t = 0, a2, b2, t2;
	char again[96];
	int err = http_parse_content_range(v, &a, &b, &t);

	if (err && err != -EINVAL && err != -ERANGE && err != -EOVERFLOW)
		__builtin_trap();
	if (err)
		return;
	if (a > b || b >= t)
		__builtin_trap();
	snprintf(again, sizeof(again), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64,
		 a, b, t);
	if (http_parse_content_range(again, &a2, &b2, &t2) || a2 != a ||
	    b2 != b || t2 != t)
		__builtin_trap();
	if (http_check_content_range(v, a, b - a + 1, t))
		__builtin_trap();
	if (http_check_content_range(v, a, b - a + 1, t + 1) != -ESTALE)
		__builtin_trap();
	if (b - a < UINT64_MAX - 1 &&
	    http_check_content_range(v, a, b - a + 2, t) != -EPROTO)
		__builtin_trap();
	if (a && http_check_content_range(v, a - 1, b - a + 1, t) != -EPROTO)
		__builtin_trap();
}

static void check_link(const char *v, const char *base)
{
	char *out = (char *)1;
	int err = http_parse_link_next(v, base, &out);

	if (err ? out != NULL : out == NULL)
		__builtin_trap();
	if (err && err != -ENOENT && err != -EINVAL && err != -ENOMEM)
		__builtin_trap();
	free(out);
}

static void check_etag(const char *v, size_t len)
{
	/* Two tags: split at the middle. */
	char *a = strndup(v, len / 2), *b = strdup(v + len / 2);

	if (a && b) {
		if (!http_etag_equal(a, a) || !http_etag_equal(b, b))
			__builtin_trap();
		if (http_etag_equal(a, b) != http_etag_equal(b, a))
			__builtin_trap();
	}
	free(a);
	free(b);
}

static void check_log_url(const char *v)
{
	char buf[48];
	const char *out = http_log_url(v, buf, sizeof(buf));
	size_t n;

	if (out != buf)
		__builtin_trap();
	n = strnlen(buf, sizeof(buf));
	if (n >= sizeof(buf) || strpbrk(buf, "?#"))
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *exact, *v, *val;
	int64_t ms = -1;
	uint8_t mode;
	int err;

	if (size < 1 || size > 4096)
		return 0;
	mode = data[0];
	data++;
	size--;

	/* Exactly the bytes given: no NUL for http_header_value to find. */
	exact = malloc(size ? size : 1);
	if (!exact)
		return 0;
	memcpy(exact, data, size);
	val = http_header_value(exact, size);
	free(exact);
	if (!val)
		return 0;
	if (strlen(val) > size)
		__builtin_trap();

	/* The rest parse C strings (a value with a NUL ends there). */
	v = val;
	check_content_range(v);

	err = http_parse_retry_after(v, (int64_t)(mode & 0x3f) * 86400 * 365,
				     &ms);
	if (!err && ms < 0)
		__builtin_trap();

	ms = -1;
	err = http_parse_ratelimit(v, &ms);
	if (!err && ms < 1000)
		__builtin_trap();

	if (http_coding_identity(v, false) && !http_coding_identity(v, true))
		__builtin_trap();
	check_link(v, bases[mode % (sizeof(bases) / sizeof(bases[0]))]);
	check_etag(v, strlen(v));
	check_log_url(v);
	if (mode & 0x80) {
		/* URLs are slow to parse: every other input. */
		(void)http_url_expiry(v);
		if (http_same_origin(v, bases[0]) !=
		    http_same_origin(bases[0], v))
			__builtin_trap();
	}
	free(val);
	return 0;
}
