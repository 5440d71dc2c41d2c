/*
 * http: the URL and HTTP header helpers of fetch/, as pure functions.
 *
 * One copy of each: where a token may go (http_same_origin), how a
 * Location or Link URL is resolved, how the headers the engine checks
 * (Content-Range, ETag, Retry-After, RateLimit, Link) are parsed, and the
 * one map from an HTTP status to an errno. No state, no locks, no I/O:
 * every function may be called from any thread, and each is unit-tested
 * (tests/unit/test_http.c) and fuzzed (tests/fuzz/fuzz_http.c).
 *
 * Strings passed in are borrowed. A returned string is new; free() it.
 */
#ifndef HOLLOWFS_FETCH_HTTP_H
#define HOLLOWFS_FETCH_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * True when a and b have the same origin (RFC 6454): the scheme and the
 * host compared without case, the ports compared with the scheme's
 * default filled in (http://h == http://h:80). Userinfo and everything
 * after the authority do not take part: http://user@h and http://h are
 * the same origin (the token goes to the host, not to an account). An
 * IPv6 literal is compared as written inside its brackets ([::1] and
 * [0::1] differ, which only ever withholds a token). False when either
 * URL cannot be parsed, is not absolute or has no host.
 */
bool http_same_origin(const char *a, const char *b);

/*
 * Resolves loc (absolute, scheme-relative, absolute-path or relative, as
 * in a Location or Link header) against the absolute URL base into *out,
 * a new string. Returns 0, -EINVAL when either cannot be parsed (then
 * *out is NULL), or -ENOMEM.
 */
int http_url_resolve(const char *base, const char *loc, char **out)
	__attribute__((warn_unused_result));

/* A signed URL's expiry: the value of its Expires= or expires= query
 * parameter (unix seconds), or 0 when it has none or it is not a number. */
int64_t http_url_expiry(const char *url);

/*
 * Writes url into buf for a log line, without what may carry secrets: the
 * query and fragment (signed URLs), and userinfo (user:password@).
 * Shortened to fit len. Returns buf.
 */
const char *http_log_url(const char *url, char *buf, size_t len);

/*
 * A header value p[0, n) (what follows the colon) as a new string, with
 * the surrounding spaces, tabs and the line end removed. NULL only when
 * out of memory.
 */
char *http_header_value(const char *p, size_t n);

/*
 * Retry-After (RFC 9110 10.2.3): delay-seconds or an HTTP date, turned
 * into a wait in milliseconds from now_s (unix seconds) into *out_ms; a
 * date in the past is a wait of 0. Returns 0, -EINVAL for anything else
 * (a sign, a fraction, trailing junk), or -EOVERFLOW for a number too
 * large.
 */
int http_parse_retry_after(const char *v, int64_t now_s, int64_t *out_ms)
	__attribute__((warn_unused_result));

/*
 * RateLimit (draft-ietf-httpapi-ratelimit-headers: `"name";r=0;t=55`,
 * items separated by commas). When an item's remaining quota r is 0, the
 * wait until its reset, t + 1 seconds, into *out_ms (the longest over
 * exhausted items). Returns 0, -ENOENT when no item is exhausted, or
 * -EINVAL when no item has both r and t as numbers.
 */
int http_parse_ratelimit(const char *v, int64_t *out_ms)
	__attribute__((warn_unused_result));

/*
 * Link (RFC 8288): the target of the first link with rel=next (quoted or
 * not, among other relation types), resolved against base into *out.
 * Returns 0, -ENOENT when there is no such link, -EINVAL when it is
 * malformed or cannot be resolved, or -ENOMEM.
 */
int http_parse_link_next(const char *v, const char *base, char **out)
	__attribute__((warn_unused_result));

/*
 * Weak comparison of two entity tags (RFC 9110 8.8.3.2): a W/ prefix is
 * ignored, and so is one pair of surrounding quotes, since listings hand
 * out ETags both quoted and bare. False when either is NULL.
 */
bool http_etag_equal(const char *a, const char *b);

/*
 * Content-Range of a 206 (RFC 9110 14.4): "bytes FIRST-LAST/TOTAL", the
 * unit without case, surrounding spaces allowed. Returns 0 with all three
 * set; -ERANGE for the unsatisfied form of a 416, an asterisk in place of
 * FIRST-LAST (only *total set); -EOVERFLOW when a number does not fit in
 * 64 bits; -EINVAL for anything else: another unit, an unknown TOTAL (an
 * asterisk: hollowfs needs it to notice a changed file), FIRST > LAST,
 * LAST >= TOTAL, signs, inner spaces, trailing junk.
 */
int http_parse_content_range(const char *v, uint64_t *first, uint64_t *last,
			     uint64_t *total)
	__attribute__((warn_unused_result));

/*
 * Whether a Content-Range v (of a 206) names exactly bytes [off, off +
 * len) of a file of size bytes, len > 0: 0; -ESTALE when its total is not
 * size (the file changed); -EPROTO for anything else: NULL, a value
 * http_parse_content_range rejects (the unsatisfied form with the right
 * total too), or other bytes.
 */
int http_check_content_range(const char *v, uint64_t off, uint64_t len,
			     uint64_t size) __attribute__((warn_unused_result));

/*
 * Whether a Content-Encoding (transfer false) or Transfer-Encoding
 * (transfer true) value leaves a body as the bytes of the file: each
 * coding of the comma-separated list is "identity" or, for
 * Transfer-Encoding (which libcurl takes off), "chunked"; without case,
 * spaces and empty elements allowed (RFC 9110 5.6.1). NULL and "" are
 * identity. Anything else (gzip, br, x-gzip, a coding with parameters,
 * junk) is false: such a body is never stored as a file's bytes.
 */
bool http_coding_identity(const char *v, bool transfer);

/*
 * Parses an HTTP date (RFC 9110 IMF-fixdate) or an nginx autoindex mtime
 * into unix seconds. Returns 0 or -EINVAL.
 */
int http_parse_date(const char *s, int64_t *out)
	__attribute__((warn_unused_result));

/*
 * The one map from an HTTP status to a negative errno: 401/403 -EACCES,
 * 404/410 -ENOENT, 408/504 -ETIMEDOUT, 416 -ESTALE, 429 -EBUSY, 503
 * -EAGAIN, other 5xx -EIO, other 4xx -EPROTO; 0 below 400.
 */
int http_status_errno(long status);

#endif
