/*
 * http.c: URL and HTTP header helpers (see fetch/http.h).
 *
 * The parsers read what a server sent, so each one checks every byte it
 * accepts and rejects the rest; none allocates before it has decided the
 * value is good. URLs are taken apart by libcurl's URL API (CURLU), the
 * same parser that sends the request, so what is compared is what is
 * used.
 *
 * No state and no locks.
 */
#include "fetch/http.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "fetch/dirindex.h"

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static const char *skip_ows(const char *p)
{
	while (is_ows(*p))
		p++;
	return p;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * 1*DIGIT at *pp into *out, advancing *pp. -EINVAL when there is no
 * digit, -EOVERFLOW when the number exceeds max.
 */
static int parse_u64(const char **pp, uint64_t max, uint64_t *out)
{
	const char *p = *pp;
	uint64_t v = 0;

	if (!is_digit(*p))
		return -EINVAL;
	for (; is_digit(*p); p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (max - d) / 10)
			return -EOVERFLOW;
		v = v * 10 + d;
	}
	*pp = p;
	*out = v;
	return 0;
}

/* ---- URLs ------------------------------------------------------------- */

static int curlu_errno(CURLUcode rc)
{
	return rc == CURLUE_OUT_OF_MEMORY ? -ENOMEM : -EINVAL;
}

struct origin {
	char *scheme, *host;
	long port;
};

static void origin_release(struct origin *o)
{
	curl_free(o->scheme);
	curl_free(o->host);
}

/* Scheme, host and port (the default filled in) of url; 0 or -EINVAL. */
static int origin_get(const char *url, struct origin *o)
{
	CURLU *u = curl_url();
	char *port = NULL, *end;
	int err = -EINVAL;

	memset(o, 0, sizeof(*o));
	if (!u)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &o->scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &o->host, 0) != CURLUE_OK ||
	    !o->host[0] ||
	    curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) !=
		    CURLUE_OK)
		goto out;
	o->port = strtol(port, &end, 10);
	if (end == port || *end)
		goto out;
	err = 0;
out:
	curl_free(port);
	curl_url_cleanup(u);
	if (err)
		origin_release(o);
	return err;
}

bool http_same_origin(const char *a, const char *b)
{
	struct origin oa, ob;
	bool same;

	if (!a || !b || origin_get(a, &oa))
		return false;
	if (origin_get(b, &ob)) {
		origin_release(&oa);
		return false;
	}
	same = !strcasecmp(oa.scheme, ob.scheme) &&
	       !strcasecmp(oa.host, ob.host) && oa.port == ob.port;
	origin_release(&oa);
	origin_release(&ob);
	return same;
}

int http_url_resolve(const char *base, const char *loc, char **out)
{
	CURLU *u = curl_url();
	CURLUcode rc;
	char *tmp = NULL;
	int err = 0;

	*out = NULL;
	if (!u)
		return -ENOMEM;
	rc = curl_url_set(u, CURLUPART_URL, base, 0);
	if (rc == CURLUE_OK)
		rc = curl_url_set(u, CURLUPART_URL, loc, 0);
	if (rc == CURLUE_OK)
		rc = curl_url_get(u, CURLUPART_URL, &tmp, 0);
	if (rc != CURLUE_OK) {
		err = curlu_errno(rc);
		goto out;
	}
	*out = strdup(tmp);
	if (!*out)
		err = -ENOMEM;
out:
	curl_free(tmp);
	curl_url_cleanup(u);
	return err;
}

int64_t http_url_expiry(const char *url)
{
	const char *q = strchr(url, '?');

	while (q) {
		q++;
		if (!strncasecmp(q, "expires=", 8)) {
			const char *p = q + 8;
			uint64_t v;

			if (parse_u64(&p, INT64_MAX, &v) ||
			    (*p && *p != '&' && *p != '#'))
				return 0;
			return (int64_t)v;
		}
		q = strpbrk(q, "&#");
		if (q && *q == '#')
			break;
	}
	return 0;
}

const char *http_log_url(const char *url, char *buf, size_t len)
{
	const char *rest = url, *sep = strstr(url, "://");
	size_t head = 0, n;

	if (!len)
		return buf;
	/* A "://" after the path or query starts is not the scheme's. */
	if (sep && sep < url + strcspn(url, "/?#")) {
		const char *auth = sep + 3;
		size_t alen = strcspn(auth, "/?#");
		const char *at = memrchr(auth, '@', alen);

		head = (size_t)(auth - url);
		rest = at ? at + 1 : auth;
	}
	if (head >= len)
		head = len - 1;
	memcpy(buf, url, head);
	n = strcspn(rest, "?#");
	if (n >= len - head)
		n = len - head - 1;
	memcpy(buf + head, rest, n);
	buf[head + n] = '\0';
	return buf;
}

/* ---- header values ---------------------------------------------------- */

char *http_header_value(const char *p, size_t n)
{
	while (n && is_ows(*p)) {
		p++;
		n--;
	}
	while (n && (p[n - 1] == '\r' || p[n - 1] == '\n' || is_ows(p[n - 1])))
		n--;
	return strndup(p, n);
}

int http_parse_retry_after(const char *v, int64_t now_s, int64_t *out_ms)
{
	const char *p = skip_ows(v);
	uint64_t secs;
	int64_t when;
	int err;

	if (is_digit(*p)) {
		const char *q = p;

		err = parse_u64(&q, INT64_MAX / 1000, &secs);
		if (err == -EOVERFLOW)
			return err;
		if (!err && !*skip_ows(q)) {
			*out_ms = (int64_t)secs * 1000;
			return 0;
		}
		/* Not delay-seconds: perhaps a date that starts with one. */
	}
	if (http_parse_date(p, &when))
		return -EINVAL;
	if (when <= now_s) {
		*out_ms = 0;
		return 0;
	}
	if ((uint64_t)when - (uint64_t)now_s > INT64_MAX / 1000)
		return -EOVERFLOW;
	*out_ms = (when - now_s) * 1000;
	return 0;
}

/* Skips a quoted-string at p (on its opening quote); NULL if unclosed. */
static const char *skip_quoted(const char *p)
{
	for (p++; *p; p++) {
		if (*p == '\\' && p[1])
			p++;
		else if (*p == '"')
			return p + 1;
	}
	return NULL;
}

/* A bare token or parameter value: up to a delimiter of these headers. */
static const char *skip_token(const char *p)
{
	while (*p && !is_ows(*p) && !strchr(";,=\"<>", *p))
		p++;
	return p;
}

int http_parse_ratelimit(const char *v, int64_t *out_ms)
{
	const char *p = v;
	int64_t wait_ms = -1;
	bool any = false;

	for (;;) {
		uint64_t r = 0, t = 0;
		bool have_r = false, have_t = false;

		p = skip_ows(p);
		if (*p == '"')
			p = skip_quoted(p);
		else
			p = skip_token(p);
		if (!p)
			return -EINVAL;
		for (p = skip_ows(p); *p == ';'; p = skip_ows(p)) {
			const char *key = skip_ows(p + 1),
				   *kend = skip_token(key);
			uint64_t num;

			p = kend;
			if (*p != '=')
				continue; /* a boolean parameter */
			p++;
			if (*p == '"') {
				p = skip_quoted(p);
				if (!p)
					return -EINVAL;
				continue;
			}
			if (kend - key == 1 && (*key == 'r' || *key == 't') &&
			    !parse_u64(&p, INT64_MAX / 1000 - 1, &num) &&
			    (!*p || *p == ';' || *p == ',' || is_ows(*p))) {
				if (*key == 'r') {
					r = num;
					have_r = true;
				} else {
					t = num;
					have_t = true;
				}
			}
			p = skip_token(p);
		}
		if (have_r && have_t) {
			any = true;
			if (!r && (int64_t)(t + 1) * 1000 > wait_ms)
				wait_ms = (int64_t)(t + 1) * 1000;
		}
		if (*p != ',')
			break;
		p++;
	}
	if (*p)
		return -EINVAL;
	if (wait_ms >= 0) {
		*out_ms = wait_ms;
		return 0;
	}
	return any ? -ENOENT : -EINVAL;
}

/* True when the rel value v[0, n) lists the relation type "next". */
static bool rel_has_next(const char *v, size_t n)
{
	while (n) {
		size_t w;

		while (n && is_ows(*v)) {
			v++;
			n--;
		}
		for (w = 0; w < n && !is_ows(v[w]); w++)
			;
		if (w == 4 && !strncasecmp(v, "next", 4))
			return true;
		v += w;
		n -= w;
	}
	return false;
}

int http_parse_link_next(const char *v, const char *base, char **out)
{
	const char *p = v;

	*out = NULL;
	for (;;) {
		const char *target, *tend;
		bool next = false, seen_rel = false;

		while (is_ows(*p) || *p == ',')
			p++;
		if (!*p)
			return -ENOENT;
		if (*p != '<')
			return -EINVAL;
		target = p + 1;
		tend = strchr(target, '>');
		if (!tend)
			return -EINVAL;
		for (p = skip_ows(tend + 1); *p == ';'; p = skip_ows(p)) {
			const char *key = skip_ows(p + 1),
				   *kend = skip_token(key);
			const char *val = NULL;
			size_t vlen = 0;

			p = skip_ows(kend);
			if (*p == '=') {
				p = skip_ows(p + 1);
				if (*p == '"') {
					val = p + 1;
					p = skip_quoted(p);
					if (!p)
						return -EINVAL;
					vlen = (size_t)(p - 1 - val);
				} else {
					val = p;
					p = skip_token(p);
					vlen = (size_t)(p - val);
				}
			}
			/* Only the first rel counts (RFC 8288 3.3). */
			if (val && kend - key == 3 &&
			    !strncasecmp(key, "rel", 3) && !seen_rel) {
				seen_rel = true;
				next = rel_has_next(val, vlen);
			}
		}
		if (*p && *p != ',')
			return -EINVAL;
		if (next) {
			char *raw = strndup(target, (size_t)(tend - target));
			int err;

			if (!raw)
				return -ENOMEM;
			err = http_url_resolve(base, raw, out);
			free(raw);
			return err;
		}
	}
}

/* The opaque part of an entity tag: without W/ and one pair of quotes. */
static void etag_opaque(const char *e, const char **p, size_t *n)
{
	size_t len;

	if (!strncmp(e, "W/", 2))
		e += 2;
	len = strlen(e);
	if (len >= 2 && e[0] == '"' && e[len - 1] == '"') {
		e++;
		len -= 2;
	}
	*p = e;
	*n = len;
}

bool http_etag_equal(const char *a, const char *b)
{
	const char *pa, *pb;
	size_t na, nb;

	if (!a || !b)
		return false;
	etag_opaque(a, &pa, &na);
	etag_opaque(b, &pb, &nb);
	return na == nb && !memcmp(pa, pb, na);
}

int http_parse_content_range(const char *v, uint64_t *first, uint64_t *last,
			     uint64_t *total)
{
	const char *p = skip_ows(v);
	uint64_t a, b, t;
	int err;

	if (strncasecmp(p, "bytes", 5) || p[5] != ' ')
		return -EINVAL;
	p += 5;
	while (*p == ' ')
		p++;
	if (*p == '*') {
		p++;
		if (*p++ != '/')
			return -EINVAL;
		err = parse_u64(&p, UINT64_MAX, &t);
		if (err)
			return err;
		if (*skip_ows(p))
			return -EINVAL;
		*total = t;
		return -ERANGE;
	}
	err = parse_u64(&p, UINT64_MAX, &a);
	if (err)
		return err;
	if (*p++ != '-')
		return -EINVAL;
	err = parse_u64(&p, UINT64_MAX, &b);
	if (err)
		return err;
	if (*p++ != '/')
		return -EINVAL;
	err = parse_u64(&p, UINT64_MAX, &t);
	if (err)
		return err;
	if (*skip_ows(p) || a > b || b >= t)
		return -EINVAL;
	*first = a;
	*last = b;
	*total = t;
	return 0;
}

int http_check_content_range(const char *v, uint64_t off, uint64_t len,
			     uint64_t size)
{
	uint64_t a = 0, b = 0, total = 0;
	int err;

	if (!v || !len)
		return -EPROTO;
	err = http_parse_content_range(v, &a, &b, &total);
	if ((!err || err == -ERANGE) && total != size)
		return -ESTALE;
	if (err || a != off || b - a != len - 1)
		return -EPROTO;
	return 0;
}

bool http_coding_identity(const char *v, bool transfer)
{
	const char *p = v;

	if (!p)
		return true;
	for (;;) {
		const char *tok;
		size_t n;

		while (is_ows(*p) || *p == ',')
			p++;
		if (!*p)
			return true;
		tok = p;
		while (*p && *p != ',' && !is_ows(*p))
			p++;
		n = (size_t)(p - tok);
		p = skip_ows(p);
		if (*p && *p != ',')
			return false; /* a parameter, or junk */
		if (!(n == 8 && !strncasecmp(tok, "identity", 8)) &&
		    !(transfer && n == 7 && !strncasecmp(tok, "chunked", 7)))
			return false;
	}
}

int http_parse_date(const char *s, int64_t *out)
{
	return dirindex_parse_date(s, strlen(s), out);
}

int http_status_errno(long status)
{
	switch (status) {
	case 401:
	case 403:
		return -EACCES;
	case 404:
	case 410:
		return -ENOENT;
	case 408:
	case 504:
		return -ETIMEDOUT;
	case 416:
		return -ESTALE;
	case 429:
		return -EBUSY;
	case 503:
		return -EAGAIN;
	default:
		if (status >= 500)
			return -EIO;
		if (status >= 400)
			return -EPROTO;
		return 0;
	}
}
