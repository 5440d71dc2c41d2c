/*
 * test_http.c: the URL and header helpers of fetch/http.c, as pure
 * functions: origins (where a token may go), URL resolution, signed-URL
 * expiry, log-safe URLs, header values, Retry-After, RateLimit, Link,
 * ETag comparison, Content-Range, dates and the status map.
 *
 * No network and no engine: fetch/http.c only parses.
 */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fetch/http.h"

#define T_2026 INT64_C(1795456800) /* Mon, 23 Nov 2026 18:00:00 GMT */

/* ---- origins ---------------------------------------------------------- */

struct origin_case {
	const char *a, *b;
	bool same;
};

static void check_origins(const struct origin_case *c, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (http_same_origin(c[i].a, c[i].b) != c[i].same)
			fail_msg("http_same_origin('%s', '%s') != %d", c[i].a,
				 c[i].b, c[i].same);
		/* The relation is symmetric. */
		if (http_same_origin(c[i].b, c[i].a) != c[i].same)
			fail_msg("http_same_origin('%s', '%s') != %d", c[i].b,
				 c[i].a, c[i].same);
	}
}

static void test_origin_default_ports(void **state)
{
	static const struct origin_case c[] = {
		{ "http://h/a", "http://h:80/b", true },
		{ "https://h/a", "https://h:443/b?q=1", true },
		{ "http://h/", "http://h:080/", true }, /* the number counts */
		{ "http://h:/", "http://h/", true }, /* empty port: default */
		{ "http://h/", "http://h:443/", false },
		{ "https://h/", "https://h:80/", false },
		{ "http://h:8080/", "http://h/", false },
		{ "http://h:8080/", "http://h:8081/", false },
		{ "http://h:8080/x", "http://h:8080/y", true },
	};

	check_origins(c, sizeof(c) / sizeof(c[0]));
}

static void test_origin_scheme_and_host_case(void **state)
{
	static const struct origin_case c[] = {
		{ "HTTP://h/", "http://h/", true },
		{ "https://Hub.Example.ORG/x", "https://hub.example.org/y",
		  true },
		{ "http://h/", "https://h/", false },
		{ "http://h/", "http://h2/", false },
		{ "http://localhost:1/", "http://127.0.0.1:1/", false },
		{ "http://h.example/", "http://example/", false },
		/* A prefix of a host is another host. */
		{ "https://hub.example", "https://hub.example.evil/", false },
	};

	check_origins(c, sizeof(c) / sizeof(c[0]));
}

/* Userinfo names an account at the host, not another origin: the token
 * goes to the host either way. */
static void test_origin_userinfo(void **state)
{
	static const struct origin_case c[] = {
		{ "http://user@h/", "http://h/", true },
		{ "http://user:pw@h:80/", "http://h/", true },
		{ "http://a@h/", "http://b@h/", true },
		/* The real host is after the last @. */
		{ "http://h@evil/", "http://h/", false },
		{ "http://h:80@evil/", "http://h/", false },
	};

	check_origins(c, sizeof(c) / sizeof(c[0]));
}

static void test_origin_ipv6(void **state)
{
	static const struct origin_case c[] = {
		{ "http://[::1]/", "http://[::1]:80/", true },
		{ "http://[::1]:8080/a", "http://[::1]:8080/b", true },
		{ "http://[::1]:8080/", "http://[::1]/", false },
		{ "http://[::1]/", "http://127.0.0.1/", false },
		{ "http://[::1]/", "http://[::2]/", false },
		{ "https://[2001:DB8::1]/", "https://[2001:db8::1]:443/",
		  true },
	};

	check_origins(c, sizeof(c) / sizeof(c[0]));
}

static void test_origin_malformed(void **state)
{
	static const struct origin_case c[] = {
		{ "", "", false },
		{ "h", "h", false }, /* no scheme */
		{ "/a/b", "/a/b", false }, /* relative */
		{ "http://", "http://", false },
		{ "http://[::1/", "http://[::1/", false },
		{ "http://h:99999/", "http://h:99999/", false },
		{ "http://h:x/", "http://h:x/", false },
		{ "file:///a", "file:///a", false }, /* no host */
		{ "hf://owner/name", "hf://owner/name", false },
		{ "http://h/", "h", false },
	};

	check_origins(c, sizeof(c) / sizeof(c[0]));
	assert_false(http_same_origin(NULL, "http://h/"));
	assert_false(http_same_origin("http://h/", NULL));
}

/* ---- URLs ------------------------------------------------------------- */

static void check_resolve(const char *base, const char *loc, const char *want)
{
	char *out = (char *)1;

	assert_int_equal(http_url_resolve(base, loc, &out), 0);
	assert_non_null(out);
	assert_string_equal(out, want);
	free(out);
}

static void test_url_resolve(void **state)
{
	char *out = (char *)1;

	check_resolve("http://h/a/b?q=1", "c", "http://h/a/c");
	check_resolve("http://h/a/b", "../c", "http://h/c");
	check_resolve("http://h/a/b", "/x/y?z=1", "http://h/x/y?z=1");
	check_resolve("http://h/a/b", "//cdn.example/f",
		      "http://cdn.example/f");
	check_resolve("http://h:8080/a", "https://cdn/f?sig=x",
		      "https://cdn/f?sig=x");
	check_resolve("http://h/a/b", "?page=2", "http://h/a/b?page=2");

	assert_int_equal(http_url_resolve("not a url", "c", &out), -EINVAL);
	assert_null(out);
	out = (char *)1;
	assert_int_equal(http_url_resolve("http://h/", "http://[::1/", &out),
			 -EINVAL);
	assert_null(out);
}

static void test_url_expiry(void **state)
{
	assert_int_equal(http_url_expiry("https://cdn/f?Expires=1700000000"),
			 1700000000);
	assert_int_equal(
		http_url_expiry("https://cdn/f?a=1&expires=1700000000&b=2"),
		1700000000);
	assert_int_equal(http_url_expiry("https://cdn/f"), 0);
	assert_int_equal(http_url_expiry("https://cdn/f?x-expires=5"), 0);
	assert_int_equal(http_url_expiry("https://cdn/f?Expires=12ab"), 0);
	assert_int_equal(http_url_expiry("https://cdn/f?Expires="), 0);
	assert_int_equal(http_url_expiry("https://cdn/f?Expires=-5"), 0);
	assert_int_equal(
		http_url_expiry("https://cdn/f?Expires=99999999999999999999"),
		0);
	/* A fragment is not part of the query. */
	assert_int_equal(http_url_expiry("https://cdn/f?a=1#&Expires=5"), 0);
	assert_int_equal(http_url_expiry("https://cdn/f?Expires=5#x"), 5);
	/* "expires" in the path is not a parameter. */
	assert_int_equal(http_url_expiry("https://cdn/expires=5"), 0);
}

static void test_log_url(void **state)
{
	char buf[64], tiny[8];

	assert_string_equal(http_log_url("https://cdn/f?X-Amz-Signature=s", buf,
					 sizeof(buf)),
			    "https://cdn/f");
	assert_string_equal(http_log_url("https://cdn/f#frag", buf,
					 sizeof(buf)),
			    "https://cdn/f");
	assert_string_equal(http_log_url("https://user:secret@h:8/p?q", buf,
					 sizeof(buf)),
			    "https://h:8/p");
	/* An @ in the path is not userinfo. */
	assert_string_equal(http_log_url("https://h/a@b", buf, sizeof(buf)),
			    "https://h/a@b");
	assert_string_equal(http_log_url("/relative?q", buf, sizeof(buf)),
			    "/relative");
	assert_string_equal(
		http_log_url("/r?next=https://u:p@h/", buf, sizeof(buf)), "/r");
	assert_string_equal(http_log_url("a?b://c@d/", buf, sizeof(buf)), "a");
	assert_string_equal(http_log_url("https://host/long", tiny,
					 sizeof(tiny)),
			    "https:/");
	assert_string_equal(http_log_url("", buf, sizeof(buf)), "");
	assert_ptr_equal(http_log_url("x", buf, 0), buf);
}

/* ---- header values ---------------------------------------------------- */

static void check_value(const char *raw, const char *want)
{
	char *v = http_header_value(raw, strlen(raw));

	assert_non_null(v);
	assert_string_equal(v, want);
	free(v);
}

static void test_header_value(void **state)
{
	char *v;

	check_value(" \"abc\"\r\n", "\"abc\"");
	check_value("\t a b \t\r\n", "a b");
	check_value("x", "x");
	check_value("", "");
	check_value(" \r\n", "");
	/* Only n bytes are read. */
	v = http_header_value(" abc def", 4);
	assert_string_equal(v, "abc");
	free(v);
}

static void test_retry_after(void **state)
{
	int64_t ms = -7;

	assert_int_equal(http_parse_retry_after("120", T_2026, &ms), 0);
	assert_int_equal(ms, 120000);
	assert_int_equal(http_parse_retry_after(" 0 ", T_2026, &ms), 0);
	assert_int_equal(ms, 0);
	/* An HTTP date: the wait from now. */
	assert_int_equal(http_parse_retry_after("Mon, 23 Nov 2026 18:00:30 GMT",
						T_2026, &ms),
			 0);
	assert_int_equal(ms, 30000);
	/* A date in the past is no wait. */
	assert_int_equal(http_parse_retry_after("Mon, 23 Nov 2026 17:00:00 GMT",
						T_2026, &ms),
			 0);
	assert_int_equal(ms, 0);

	ms = -7;
	assert_int_equal(http_parse_retry_after("", T_2026, &ms), -EINVAL);
	assert_int_equal(http_parse_retry_after("soon", T_2026, &ms), -EINVAL);
	assert_int_equal(http_parse_retry_after("-5", T_2026, &ms), -EINVAL);
	assert_int_equal(http_parse_retry_after("+5", T_2026, &ms), -EINVAL);
	assert_int_equal(http_parse_retry_after("1.5", T_2026, &ms), -EINVAL);
	assert_int_equal(http_parse_retry_after("12abc", T_2026, &ms), -EINVAL);
	assert_int_equal(http_parse_retry_after("Mon, 23 Nov 2026", T_2026,
						&ms),
			 -EINVAL);
	assert_int_equal(http_parse_retry_after("99999999999999999999", T_2026,
						&ms),
			 -EOVERFLOW);
	assert_int_equal(http_parse_retry_after("9223372036854776", T_2026,
						&ms),
			 -EOVERFLOW);
	assert_int_equal(ms, -7); /* untouched on failure */
}

static void test_ratelimit(void **state)
{
	int64_t ms = -7;

	assert_int_equal(http_parse_ratelimit("\"api\";r=0;t=55", &ms), 0);
	assert_int_equal(ms, 56000);
	assert_int_equal(http_parse_ratelimit("api;r=0;t=0", &ms), 0);
	assert_int_equal(ms, 1000);
	/* The longest wait among exhausted items. */
	assert_int_equal(http_parse_ratelimit("\"a\";r=0;t=5, \"b\";r=3;t=90, "
					      "\"c\";r=0;t=20",
					      &ms),
			 0);
	assert_int_equal(ms, 21000);
	/* Parameters in any order, unknown ones skipped. */
	assert_int_equal(
		http_parse_ratelimit("\"x;r=9\";pk=\"a,b\";t=9;r=0;flag", &ms),
		0);
	assert_int_equal(ms, 10000);

	ms = -7;
	assert_int_equal(http_parse_ratelimit("\"api\";r=10;t=55", &ms),
			 -ENOENT);
	assert_int_equal(http_parse_ratelimit("", &ms), -EINVAL);
	assert_int_equal(http_parse_ratelimit("\"api\";r=0", &ms), -EINVAL);
	assert_int_equal(http_parse_ratelimit("\"api\";r=x;t=5", &ms), -EINVAL);
	assert_int_equal(http_parse_ratelimit("\"api;r=0;t=5", &ms), -EINVAL);
	assert_int_equal(http_parse_ratelimit("\"api\";r=0;t=5 junk", &ms),
			 -EINVAL);
	assert_int_equal(
		http_parse_ratelimit("\"api\";r=0;t=99999999999999999999", &ms),
		-EINVAL);
	assert_int_equal(ms, -7);
}

static void check_link(const char *v, const char *base, int want_err,
		       const char *want)
{
	char *out = (char *)1;

	assert_int_equal(http_parse_link_next(v, base, &out), want_err);
	if (want) {
		assert_non_null(out);
		assert_string_equal(out, want);
	} else {
		assert_null(out);
	}
	free(out);
}

static void test_link_next(void **state)
{
	const char *base = "https://hub/api/models/o/n/tree/main?recursive=1";

	check_link("<https://hub/api/tree?cursor=abc>; rel=\"next\"", base, 0,
		   "https://hub/api/tree?cursor=abc");
	check_link("<https://hub/p2>; rel=next", base, 0, "https://hub/p2");
	check_link("<https://hub/p2>;rel=NEXT", base, 0, "https://hub/p2");
	/* Several links: the next one, wherever it is. */
	check_link("<https://hub/p0>; rel=\"prev\", <https://hub/p2>; "
		   "rel=\"next\"",
		   base, 0, "https://hub/p2");
	check_link(
		"<https://hub/p0>; rel=\"first\"; title=\"a, <b>; rel=next\", "
		"<https://hub/p2>; rel=\"last next\"",
		base, 0, "https://hub/p2");
	/* Relative targets resolve against the request URL. */
	check_link("</api/tree?cursor=2>; rel=\"next\"", base, 0,
		   "https://hub/api/tree?cursor=2");
	check_link("<p3>; rel=\"next\"", base, 0,
		   "https://hub/api/models/o/n/tree/p3");
	/* A comma inside the target is part of it. */
	check_link("<https://hub/a,b>; rel=next", base, 0, "https://hub/a,b");
	/* rel=nextpage or a rel after the first does not count. */
	check_link("<https://hub/p2>; rel=\"nextpage\"", base, -ENOENT, NULL);
	check_link("<https://hub/p2>; rel=\"prev\"; rel=\"next\"", base,
		   -ENOENT, NULL);
	check_link("<https://hub/p2>; title=next", base, -ENOENT, NULL);
	check_link("", base, -ENOENT, NULL);
	check_link("<https://hub/p2>; rel=\"prev\"", base, -ENOENT, NULL);
	/* Malformed. */
	check_link("https://hub/p2; rel=next", base, -EINVAL, NULL);
	check_link("<https://hub/p2; rel=next", base, -EINVAL, NULL);
	check_link("<https://hub/p2>; rel=\"next", base, -EINVAL, NULL);
	check_link("<https://hub/p2> junk; rel=next", base, -EINVAL, NULL);
	check_link("<http://[::1>; rel=next", base, -EINVAL, NULL);
}

static void test_etag_equal(void **state)
{
	assert_true(http_etag_equal("\"abc\"", "\"abc\""));
	assert_true(http_etag_equal("W/\"abc\"", "\"abc\""));
	assert_true(http_etag_equal("W/\"abc\"", "W/\"abc\""));
	assert_true(http_etag_equal("abc", "\"abc\"")); /* listings: bare */
	assert_true(http_etag_equal("", ""));
	assert_true(http_etag_equal("\"\"", ""));
	assert_false(http_etag_equal("\"abc\"", "\"abd\""));
	assert_false(http_etag_equal("\"abc\"", "\"abc")); /* one quote */
	assert_false(http_etag_equal("\"abc\"", "\"ABC\"")); /* case counts */
	assert_false(http_etag_equal("w/\"abc\"", "\"abc\"")); /* W is upper */
	assert_false(http_etag_equal("\"abc\"", "\"abc\"x"));
	assert_false(http_etag_equal(NULL, "\"abc\""));
	assert_false(http_etag_equal("\"abc\"", NULL));
	/* Only one pair of quotes comes off. */
	assert_false(http_etag_equal("\"\"abc\"\"", "abc"));
}

/* ---- Content-Range ---------------------------------------------------- */

static void test_content_range_good(void **state)
{
	uint64_t a = 1, b = 1, t = 1;

	assert_int_equal(
		http_parse_content_range("bytes 0-99/1000", &a, &b, &t), 0);
	assert_int_equal(a, 0);
	assert_int_equal(b, 99);
	assert_int_equal(t, 1000);
	assert_int_equal(http_parse_content_range(" Bytes 999-999/1000 ", &a,
						  &b, &t),
			 0);
	assert_int_equal(a, 999);
	assert_int_equal(b, 999);
	assert_int_equal(
		http_parse_content_range("bytes 0-18446744073709551614/"
					 "18446744073709551615",
					 &a, &b, &t),
		0);
	assert_true(b == UINT64_MAX - 1);
	assert_true(t == UINT64_MAX);
}

static void test_content_range_unsatisfied(void **state)
{
	uint64_t a = 7, b = 7, t = 7;

	assert_int_equal(http_parse_content_range("bytes */1000", &a, &b, &t),
			 -ERANGE);
	assert_int_equal(t, 1000);
	assert_int_equal(a, 7);
	assert_int_equal(b, 7);
	assert_int_equal(http_parse_content_range("bytes */", &a, &b, &t),
			 -EINVAL);
	assert_int_equal(http_parse_content_range("bytes */x", &a, &b, &t),
			 -EINVAL);
	assert_int_equal(http_parse_content_range("bytes *-1/5", &a, &b, &t),
			 -EINVAL);
	assert_int_equal(http_parse_content_range("bytes */5x", &a, &b, &t),
			 -EINVAL);
}

static void test_content_range_bad(void **state)
{
	static const char *const bad[] = {
		"",
		"bytes",
		"bytes ",
		"bytes=0-99/1000",
		"bytes0-99/1000",
		"items 0-99/1000",
		"bytes 0-99",
		"bytes 0-99/",
		"bytes 0-99/*", /* unknown total */
		"bytes -99/1000",
		"bytes 0-/1000",
		"bytes 0 -99/1000",
		"bytes 0- 99/1000",
		"bytes 0-99 /1000",
		"bytes +0-99/1000",
		"bytes 0-+99/1000",
		"bytes 0-99/-1000",
		"bytes 0-99/1000x",
		"bytes 0-99/1000, 0-1",
		"bytes 0-99/1000/1000",
		"bytes 100-99/1000", /* first > last */
		"bytes 0-1000/1000", /* last >= total */
		"bytes 0-0/0",
		"bytes 0x0-0x9/100",
		"bytes 0-99/1000\n",
	};
	uint64_t a = 7, b = 7, t = 7;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int err = http_parse_content_range(bad[i], &a, &b, &t);

		if (err != -EINVAL)
			fail_msg("'%s': %d, not -EINVAL", bad[i], err);
	}
	assert_int_equal(a, 7);
	assert_int_equal(b, 7);
	assert_int_equal(t, 7);
}

static void test_content_range_overflow(void **state)
{
	uint64_t a = 7, b = 7, t = 7;

	assert_int_equal(http_parse_content_range(
				 "bytes 0-1/18446744073709551616", &a, &b, &t),
			 -EOVERFLOW);
	assert_int_equal(http_parse_content_range(
				 "bytes 18446744073709551616-1/2", &a, &b, &t),
			 -EOVERFLOW);
	assert_int_equal(
		http_parse_content_range("bytes 0-99999999999999999999999/1",
					 &a, &b, &t),
		-EOVERFLOW);
	assert_int_equal(http_parse_content_range(
				 "bytes */18446744073709551616", &a, &b, &t),
			 -EOVERFLOW);
	assert_int_equal(t, 7);
}

/* The disk-full fallback takes a 206 only for exactly the bytes asked. */
static void test_check_content_range(void **state)
{
	assert_int_equal(http_check_content_range("bytes 100-199/1000", 100,
						  100, 1000),
			 0);
	assert_int_equal(http_check_content_range("bytes 0-0/1", 0, 1, 1), 0);
	/* Another total: the file changed. */
	assert_int_equal(http_check_content_range("bytes 100-199/1001", 100,
						  100, 1000),
			 -ESTALE);
	assert_int_equal(http_check_content_range("bytes */999", 100, 100,
						  1000),
			 -ESTALE);
	/* Other bytes, shorter, longer, or nothing usable. */
	assert_int_equal(http_check_content_range("bytes 1124-1223/2000", 100,
						  100, 2000),
			 -EPROTO);
	assert_int_equal(http_check_content_range("bytes 100-198/1000", 100,
						  100, 1000),
			 -EPROTO);
	assert_int_equal(http_check_content_range("bytes 100-200/1000", 100,
						  100, 1000),
			 -EPROTO);
	assert_int_equal(http_check_content_range("bytes */1000", 100, 100,
						  1000),
			 -EPROTO);
	assert_int_equal(http_check_content_range("bytes 100-199/*", 100, 100,
						  1000),
			 -EPROTO);
	assert_int_equal(http_check_content_range(NULL, 100, 100, 1000),
			 -EPROTO);
	assert_int_equal(http_check_content_range("bytes 0-0/1", 0, 0, 1),
			 -EPROTO);
}

static void test_coding_identity(void **state)
{
	static const char *const same[] = {
		"",
		"identity",
		"IDENTITY",
		" identity ",
		"identity, identity",
		",",
		" , identity ,",
	};
	static const char *const encoded[] = {
		"gzip",		  "x-gzip",	    "br",
		"deflate",	  "compress",	    "zstd",
		"identity, gzip", "gzip, identity", "identity;q=1",
		"identity x",	  "identityx",	    "chunked",
		"gzip, chunked",  "\"identity\"",
	};

	assert_true(http_coding_identity(NULL, false));
	assert_true(http_coding_identity(NULL, true));
	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++) {
		if (!http_coding_identity(same[i], false))
			fail_msg("Content-Encoding '%s' taken as encoded",
				 same[i]);
		if (!http_coding_identity(same[i], true))
			fail_msg("Transfer-Encoding '%s' taken as encoded",
				 same[i]);
	}
	for (size_t i = 0; i < sizeof(encoded) / sizeof(encoded[0]); i++)
		if (http_coding_identity(encoded[i], false))
			fail_msg("Content-Encoding '%s' taken as identity",
				 encoded[i]);
	/* libcurl takes chunked off; any other transfer coding stays. */
	assert_true(http_coding_identity("chunked", true));
	assert_true(http_coding_identity("Chunked", true));
	assert_true(http_coding_identity("identity, chunked", true));
	assert_false(http_coding_identity("gzip, chunked", true));
	assert_false(http_coding_identity("chunked;x=1", true));
	assert_false(http_coding_identity("deflate", true));
}

/* ---- dates and statuses ----------------------------------------------- */

static void test_parse_date(void **state)
{
	int64_t t = 0;

	assert_int_equal(http_parse_date("Mon, 23 Nov 2026 18:00:00 GMT", &t),
			 0);
	assert_int_equal(t, T_2026);
	assert_int_equal(http_parse_date("Mon, 23 Nov 2026", &t), -EINVAL);
	assert_int_equal(http_parse_date("", &t), -EINVAL);
}

static void test_status_errno(void **state)
{
	static const struct {
		long status;
		int err;
	} c[] = {
		{ 0, 0 },
		{ 200, 0 },
		{ 206, 0 },
		{ 304, 0 },
		{ 400, -EPROTO },
		{ 401, -EACCES },
		{ 403, -EACCES },
		{ 404, -ENOENT },
		{ 405, -EPROTO },
		{ 408, -ETIMEDOUT },
		{ 410, -ENOENT },
		{ 416, -ESTALE },
		{ 429, -EBUSY },
		{ 500, -EIO },
		{ 502, -EIO },
		{ 503, -EAGAIN },
		{ 504, -ETIMEDOUT },
		{ 599, -EIO },
	};

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
		if (http_status_errno(c[i].status) != c[i].err)
			fail_msg("HTTP %ld: %d, expected %d", c[i].status,
				 http_status_errno(c[i].status), c[i].err);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_origin_default_ports),
		cmocka_unit_test(test_origin_scheme_and_host_case),
		cmocka_unit_test(test_origin_userinfo),
		cmocka_unit_test(test_origin_ipv6),
		cmocka_unit_test(test_origin_malformed),
		cmocka_unit_test(test_url_resolve),
		cmocka_unit_test(test_url_expiry),
		cmocka_unit_test(test_log_url),
		cmocka_unit_test(test_header_value),
		cmocka_unit_test(test_retry_after),
		cmocka_unit_test(test_ratelimit),
		cmocka_unit_test(test_link_next),
		cmocka_unit_test(test_etag_equal),
		cmocka_unit_test(test_content_range_good),
		cmocka_unit_test(test_content_range_unsatisfied),
		cmocka_unit_test(test_content_range_bad),
		cmocka_unit_test(test_content_range_overflow),
		cmocka_unit_test(test_check_content_range),
		cmocka_unit_test(test_coding_identity),
		cmocka_unit_test(test_parse_date),
		cmocka_unit_test(test_status_errno),
	};

	return cmocka_run_group_tests_name("http", tests, NULL, NULL);
}
