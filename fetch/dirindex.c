/*
 * dirindex.c: parsers for folder listings of HTTP servers, their dates and
 * percent escapes. Pure: no network, no globals, no locks; every read is
 * bounded by the length given (the bodies are not trusted and need not be
 * NUL-terminated).
 */
#include "fetch/dirindex.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "state/hlog.h"
#include "state/manifest.h"

/* Unsafe names are warned about one by one up to this many per listing;
 * the rest are counted in one line (a hostile listing can't flood logs). */
#define WARN_NAMES_MAX 20
/* How much of the text after a link is searched for its date and size. */
#define META_SCAN_MAX 1024
#define META_TOKENS_MAX 12

struct builder {
	struct dirindex *d;
	const char *folder_url; /* for log lines */
	size_t max_raw; /* entries kept before merging */
	size_t max_kept; /* HTML: entries kept after merging */
	bool merge; /* HTML: the same name linked twice is one entry */
	size_t warned;
};

static void merge_dups(struct dirindex *d);

void dirindex_free(struct dirindex *d)
{
	size_t i;

	if (!d)
		return;
	for (i = 0; i < d->n; i++)
		free(d->entries[i].name);
	free(d->entries);
	free(d);
}

static int dirindex_new(struct dirindex **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

/* ---- escapes ---------------------------------------------------------- */

static int hexval(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

int dirindex_unescape(const char *s, size_t len, char **out, size_t *out_len)
{
	char *buf;
	size_t i, o = 0;

	*out = NULL;
	buf = malloc(len + 1);
	if (!buf)
		return -ENOMEM;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '%') {
			int hi, lo;

			if (len - i < 3)
				goto bad;
			hi = hexval((unsigned char)s[i + 1]);
			lo = hexval((unsigned char)s[i + 2]);
			if (hi < 0 || lo < 0)
				goto bad;
			ch = (unsigned char)(hi << 4 | lo);
			i += 2;
		}
		if (!ch)
			goto bad;
		buf[o++] = (char)ch;
	}
	buf[o] = '\0';
	*out = buf;
	if (out_len)
		*out_len = o;
	return 0;
bad:
	free(buf);
	return -EINVAL;
}

static bool unreserved(unsigned char ch)
{
	return isascii(ch) && (isalnum(ch) || ch == '-' || ch == '.' ||
			       ch == '_' || ch == '~');
}

char *dirindex_escape(const char *s, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t i, o = 0, need = 1;
	char *buf;

	for (i = 0; i < len; i++)
		need += unreserved((unsigned char)s[i]) ? 1 : 3;
	buf = malloc(need);
	if (!buf)
		return NULL;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (unreserved(ch)) {
			buf[o++] = (char)ch;
		} else {
			buf[o++] = '%';
			buf[o++] = hex[ch >> 4];
			buf[o++] = hex[ch & 15];
		}
	}
	buf[o] = '\0';
	return buf;
}

char *dirindex_printable(const char *name, size_t len, char *buf, size_t buflen)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;

	if (!buflen)
		return buf;
	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)name[i];
		bool c1 = ch == 0xc2 && i + 1 < len &&
			  (unsigned char)name[i + 1] >= 0x80 &&
			  (unsigned char)name[i + 1] <= 0x9f;
		size_t w = 1;

		if (ch < 0x20 || ch == 0x7f || ch == '\\' || ch == '\'' || c1)
			w = 4;

		if (c1)
			w = 8;
		if (o + w + 4 > buflen) { /* room for "..." and NUL */
			if (o + 4 <= buflen) {
				memcpy(buf + o, "...", 3);
				o += 3;
			}
			break;
		}
		if (w == 1) {
			buf[o++] = (char)ch;
			continue;
		}
		buf[o++] = '\\';
		buf[o++] = 'x';
		buf[o++] = hex[ch >> 4];
		buf[o++] = hex[ch & 15];
		if (c1) {
			ch = (unsigned char)name[++i];
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[ch >> 4];
			buf[o++] = hex[ch & 15];
		}
	}
	buf[o] = '\0';
	return buf;
}

/* ---- dates ------------------------------------------------------------ */

struct cur {
	const char *p;
	size_t n, i;
};

static bool cur_end(const struct cur *c)
{
	return c->i >= c->n;
}

static bool cur_char(struct cur *c, char ch)
{
	if (cur_end(c) || c->p[c->i] != ch)
		return false;
	c->i++;
	return true;
}

/* min to max digits, as many as there are. */
static bool cur_num(struct cur *c, int min, int max, int *out)
{
	int v = 0, k = 0;

	while (k < max && !cur_end(c) && isdigit((unsigned char)c->p[c->i])) {
		v = v * 10 + (c->p[c->i] - '0');
		c->i++;
		k++;
	}
	*out = v;
	return k >= min;
}

/* A run of letters, copied lowercase into w (at most wlen - 1 of them). */
static bool cur_word(struct cur *c, char *w, size_t wlen)
{
	size_t k = 0;

	while (!cur_end(c) && isalpha((unsigned char)c->p[c->i])) {
		if (k + 1 >= wlen)
			return false;
		w[k++] = (char)tolower((unsigned char)c->p[c->i]);
		c->i++;
	}
	w[k] = '\0';
	return k > 0;
}

static bool cur_month(struct cur *c, int *mon)
{
	static const char names[] = "janfebmaraprmayjunjulaugsepoctnovdec";
	char w[8];
	int k;

	if (!cur_word(c, w, sizeof(w)) || strlen(w) != 3)
		return false;
	for (k = 0; k < 12; k++) {
		if (!memcmp(names + 3 * k, w, 3)) {
			*mon = k + 1;
			return true;
		}
	}
	return false;
}

static bool weekday_ok(const char *w)
{
	/* clang-format off */
	static const char *const names[] = {
		"mon", "tue", "wed", "thu", "fri", "sat", "sun",
		"monday", "tuesday", "wednesday", "thursday", "friday",
		"saturday", "sunday",
	};
	/* clang-format on */
	size_t k;

	for (k = 0; k < sizeof(names) / sizeof(names[0]); k++)
		if (!strcmp(names[k], w))
			return true;
	return false;
}

static bool cur_time(struct cur *c, bool need_sec, int *h, int *m, int *s)
{
	*s = 0;
	if (!cur_num(c, 2, 2, h) || !cur_char(c, ':') || !cur_num(c, 2, 2, m))
		return false;
	if (cur_char(c, ':'))
		return cur_num(c, 2, 2, s);
	return !need_sec;
}

static bool cur_zone(struct cur *c)
{
	char w[8];

	return cur_char(c, ' ') && cur_word(c, w, sizeof(w)) &&
	       (!strcmp(w, "gmt") || !strcmp(w, "utc"));
}

static int days_in_month(int year, int mon)
{
	static const int days[] = { 31, 28, 31, 30, 31, 30,
				    31, 31, 30, 31, 30, 31 };
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

	return mon == 2 && leap ? 29 : days[mon - 1];
}

static bool parse_date_cur(struct cur *c, struct tm *tm)
{
	int year = 0, mon = 0, day = 0, h, m, s, lead;
	char w[12];

	if (isalpha((unsigned char)c->p[c->i])) {
		if (!cur_word(c, w, sizeof(w)) || !weekday_ok(w))
			return false;
		if (cur_char(c, ',')) {
			if (!cur_char(c, ' ') || !cur_num(c, 2, 2, &day))
				return false;
			if (cur_char(c, '-')) {
				/* RFC 850: Sunday, 06-Nov-94 08:49:37 GMT */
				if (!cur_month(c, &mon) || !cur_char(c, '-') ||
				    !cur_num(c, 2, 2, &year))
					return false;
				year += year < 70 ? 2000 : 1900;
			} else {
				/* IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT */
				if (!cur_char(c, ' ') || !cur_month(c, &mon) ||
				    !cur_char(c, ' ') ||
				    !cur_num(c, 4, 4, &year))
					return false;
			}
			if (!cur_char(c, ' ') ||
			    !cur_time(c, true, &h, &m, &s) || !cur_zone(c))
				return false;
		} else {
			/* asctime: Sun Nov  6 08:49:37 1994 */
			if (!cur_char(c, ' ') || !cur_month(c, &mon) ||
			    !cur_char(c, ' '))
				return false;
			cur_char(c, ' ');
			if (!cur_num(c, 1, 2, &day) || !cur_char(c, ' ') ||
			    !cur_time(c, true, &h, &m, &s) ||
			    !cur_char(c, ' ') || !cur_num(c, 4, 4, &year))
				return false;
		}
	} else {
		size_t start = c->i;

		if (!cur_num(c, 1, 4, &lead))
			return false;
		if (c->i - start == 4) {
			/* Apache: 2026-11-23 18:00[:SS] */
			year = lead;
			if (!cur_char(c, '-') || !cur_num(c, 2, 2, &mon) ||
			    !cur_char(c, '-') || !cur_num(c, 2, 2, &day))
				return false;
		} else if (c->i - start <= 2) {
			/* nginx: 23-Nov-2026 18:00[:SS] */
			day = lead;
			if (!cur_char(c, '-') || !cur_month(c, &mon) ||
			    !cur_char(c, '-') || !cur_num(c, 4, 4, &year))
				return false;
		} else {
			return false;
		}
		if (!cur_char(c, ' '))
			return false;
		if (!cur_time(c, false, &h, &m, &s))
			return false;
	}
	if (year < 1000 || mon < 1 || mon > 12 || day < 1 ||
	    day > days_in_month(year, mon) || h > 23 || m > 59 || s > 60)
		return false;
	memset(tm, 0, sizeof(*tm));
	tm->tm_year = year - 1900;
	tm->tm_mon = mon - 1;
	tm->tm_mday = day;
	tm->tm_hour = h;
	tm->tm_min = m;
	tm->tm_sec = s;
	return true;
}

int dirindex_parse_date(const char *s, size_t len, int64_t *out)
{
	struct cur c = { .p = s, .n = len, .i = 0 };
	struct tm tm;

	while (c.n > 0 && isspace((unsigned char)s[c.n - 1]))
		c.n--;
	while (c.i < c.n && isspace((unsigned char)s[c.i]))
		c.i++;
	if (cur_end(&c) || !parse_date_cur(&c, &tm) || !cur_end(&c))
		return -EINVAL;
	*out = (int64_t)timegm(&tm);
	return 0;
}

/* ---- building the list ------------------------------------------------ */

static bool name_ok(const char *name, size_t len)
{
	return strlen(name) == len && manifest_name_ok(name);
}

static void warn_unsafe(struct builder *b, const char *raw, size_t len)
{
	char shown[200];

	b->d->dropped++;
	if (b->warned++ >= WARN_NAMES_MAX)
		return;
	hlog(HLOG_WARN, HLOG_FETCH,
	     "listing of '%s': skipping unsafe name '%s'", b->folder_url,
	     dirindex_printable(raw, len, shown, sizeof(shown)));
}

static void warn_finish(struct builder *b)
{
	if (b->warned > WARN_NAMES_MAX)
		hlog(HLOG_WARN, HLOG_FETCH,
		     "listing of '%s': skipped %zu more unsafe names",
		     b->folder_url, b->warned - WARN_NAMES_MAX);
}

/*
 * Adds (name[0, len), ...): copies the name, checks it. Returns 0 (also
 * when dropped or when the cap is reached), or -ENOMEM.
 */
static int add_entry(struct builder *b, const char *name, size_t len,
		     bool is_dir, int64_t size, int64_t mtime)
{
	struct dirindex *d = b->d;
	struct dirindex_entry *en;
	char *copy;

	if (d->n >= b->max_raw && b->merge && d->n) {
		/* Full of links that may name the same entries (an icon and
		 * a name per file): merge them before giving up. */
		merge_dups(d);
		if (d->n > b->max_kept) {
			d->truncated = true;
			return 0;
		}
	}
	if (d->n >= b->max_raw) {
		d->truncated = true;
		return 0;
	}
	copy = malloc(len + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, name, len);
	copy[len] = '\0';
	if (!name_ok(copy, len)) {
		warn_unsafe(b, name, len);
		free(copy);
		return 0;
	}
	if (d->n == d->alloc) {
		size_t alloc = d->alloc ? d->alloc * 2 : 16;
		struct dirindex_entry *grown;

		grown = realloc(d->entries, alloc * sizeof(*grown));
		if (!grown) {
			free(copy);
			return -ENOMEM;
		}
		d->entries = grown;
		d->alloc = alloc;
	}
	en = &d->entries[d->n++];
	en->name = copy;
	en->is_dir = is_dir;
	en->size = size;
	en->mtime = mtime;
	return 0;
}

/* ---- nginx JSON autoindex --------------------------------------------- */

/* The index of the first byte of body[pos, len) that is not JSON white
 * space (len if none). */
static size_t json_skip_ws(const char *body, size_t len, size_t pos)
{
	while (pos < len && (body[pos] == ' ' || body[pos] == '\t' ||
			     body[pos] == '\n' || body[pos] == '\r'))
		pos++;
	return pos;
}

/* One element of the listing array: added unless it is not a file or a
 * folder, or the index is already full. */
static int json_item(struct builder *b, const json_t *item)
{
	json_t *jname = json_object_get(item, "name");
	json_t *jtype = json_object_get(item, "type");
	json_t *jmtime = json_object_get(item, "mtime");
	json_t *jsize = json_object_get(item, "size");
	int64_t size = DIRINDEX_SIZE_UNKNOWN;
	int64_t mtime = DIRINDEX_MTIME_UNKNOWN;
	const char *type;
	bool is_dir;

	if (b->d->truncated || !json_is_string(jname) || !json_is_string(jtype))
		return 0;
	type = json_string_value(jtype);
	if (!strcmp(type, "directory"))
		is_dir = true;
	else if (!strcmp(type, "file"))
		is_dir = false;
	else
		return 0; /* "other": sockets, devices... */
	if (json_is_string(jmtime) &&
	    dirindex_parse_date(json_string_value(jmtime),
				json_string_length(jmtime), &mtime))
		mtime = DIRINDEX_MTIME_UNKNOWN;
	if (!is_dir && json_is_integer(jsize) && json_integer_value(jsize) >= 0)
		size = (int64_t)json_integer_value(jsize);
	return add_entry(b, json_string_value(jname), json_string_length(jname),
			 is_dir, size, mtime);
}

/*
 * The top-level array is walked here and its elements decoded one at a
 * time (JSON_DISABLE_EOF_CHECK: jansson stops after one value and says
 * how many bytes it read), so a listing of 100,000 files never exists as
 * a whole jansson tree (about 800 bytes an entry, several times the
 * index). The whole body is still checked: a malformed element or
 * trailing garbage anywhere is -EBADMSG, as for json_loadb of the whole.
 */
int dirindex_parse_json(const char *body, size_t len, const char *folder_url,
			size_t max_entries, struct dirindex **out)
{
	const size_t flags = JSON_ALLOW_NUL | JSON_DISABLE_EOF_CHECK |
			     JSON_DECODE_ANY;
	struct builder b = { .folder_url = folder_url, .max_raw = max_entries };
	json_error_t jerr;
	json_t *item;
	size_t pos;
	int err;

	*out = NULL;
	pos = json_skip_ws(body, len, 0);
	if (pos == len || body[pos] != '[')
		return -EBADMSG;
	err = dirindex_new(&b.d);
	if (err)
		return err;
	pos = json_skip_ws(body, len, pos + 1);
	if (pos < len && body[pos] == ']') /* an empty folder */
		pos = json_skip_ws(body, len, pos + 1);
	else
		for (;;) {
			item = json_loadb(body + pos, len - pos, flags, &jerr);
			if (!item || jerr.position <= 0) {
				json_decref(item);
				err = -EBADMSG;
				goto out_free;
			}
			pos += (size_t)jerr.position;
			err = json_item(&b, item);
			json_decref(item);
			if (err)
				goto out_free;
			pos = json_skip_ws(body, len, pos);
			if (pos < len && body[pos] == ',') {
				pos = json_skip_ws(body, len, pos + 1);
				continue;
			}
			if (pos < len && body[pos] == ']') {
				pos = json_skip_ws(body, len, pos + 1);
				break;
			}
			err = -EBADMSG;
			goto out_free;
		}
	if (pos != len) { /* trailing bytes after the array */
		err = -EBADMSG;
		goto out_free;
	}
	warn_finish(&b);
	*out = b.d;
	b.d = NULL;
out_free:
	dirindex_free(b.d);
	return err;
}

/* ---- HTML index pages ------------------------------------------------- */

/* Index of needle (lowercase ASCII) in p[from, to), case-insensitive, or
 * to when absent. */
static size_t find_ci(const char *p, size_t from, size_t to, const char *needle)
{
	size_t nlen = strlen(needle), i, k;

	for (i = from; i + nlen <= to; i++) {
		for (k = 0; k < nlen; k++)
			if (tolower((unsigned char)p[i + k]) != needle[k])
				break;
		if (k == nlen)
			return i;
	}
	return to;
}

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' ||
	       ch == '\f';
}

static size_t put_utf8(char *o, unsigned long cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xc0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xe0 | cp >> 12);
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		o[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	o[0] = (char)(0xf0 | cp >> 18);
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	o[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/*
 * Decodes one character reference at s[0, len) (s[0] == '&') into o:
 * returns the bytes consumed (0: not a reference we know, copy the '&').
 * Each reference is longer than its UTF-8 form, so decoding shrinks.
 */
static size_t decode_entity(const char *s, size_t len, char *o, size_t *olen)
{
	static const struct {
		const char *name;
		char ch;
	} named[] = {
		{ "&amp;", '&' },  { "&lt;", '<' },    { "&gt;", '>' },
		{ "&quot;", '"' }, { "&apos;", '\'' },
	};
	unsigned long cp = 0;
	size_t i, k;

	for (k = 0; k < sizeof(named) / sizeof(named[0]); k++) {
		size_t nl = strlen(named[k].name);

		if (len >= nl && !memcmp(s, named[k].name, nl)) {
			o[0] = named[k].ch;
			*olen = 1;
			return nl;
		}
	}
	if (len < 4 || s[1] != '#')
		return 0;
	i = 2;
	if (s[i] == 'x' || s[i] == 'X') {
		for (i++; i < len && i < 10; i++) {
			int v = hexval((unsigned char)s[i]);

			if (v < 0)
				break;
			cp = cp * 16 + (unsigned long)v;
		}
		if (i == 3)
			return 0;
	} else {
		for (; i < len && i < 10 && isdigit((unsigned char)s[i]); i++)
			cp = cp * 10 + (unsigned long)(s[i] - '0');
		if (i == 2)
			return 0;
	}
	if (i >= len || s[i] != ';' || cp == 0 || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	*olen = put_utf8(o, cp);
	return i + 1;
}

/* The attribute value s[0, len), character references decoded, blanks
 * around it trimmed, into a new string. */
static char *attr_value(const char *s, size_t len, size_t *out_len)
{
	char *buf = malloc(len + 1);
	size_t i = 0, o = 0, start = 0;

	if (!buf)
		return NULL;
	while (i < len) {
		size_t used = 0, olen = 0;

		if (s[i] == '&')
			used = decode_entity(s + i, len - i, buf + o, &olen);
		if (used) {
			i += used;
			o += olen;
		} else {
			buf[o++] = s[i++];
		}
	}
	while (o > 0 && is_blank(buf[o - 1]))
		o--;
	while (start < o && is_blank(buf[start]))
		start++;
	memmove(buf, buf + start, o - start);
	o -= start;
	buf[o] = '\0';
	*out_len = o;
	return buf;
}

/* The parts of folder_url: [0, path) is "scheme://authority", from path on
 * the path ("/" ... "/"). */
struct base {
	const char *url;
	size_t scheme_len; /* "http" */
	size_t auth_off; /* after "://" */
	size_t path_off; /* the first '/' after the authority */
};

static bool base_split(const char *url, struct base *b)
{
	const char *sep = strstr(url, "://");
	const char *slash;

	if (!sep)
		return false;
	b->url = url;
	b->scheme_len = (size_t)(sep - url);
	b->auth_off = b->scheme_len + 3;
	slash = strchr(url + b->auth_off, '/');
	if (!slash)
		return false;
	b->path_off = (size_t)(slash - url);
	return true;
}

/* Is href segment h[0, hlen) the canonical segment c[0, clen) once
 * decoded and escaped again? */
static bool seg_equal(const char *c, size_t clen, const char *h, size_t hlen)
{
	char *dec, *esc;
	size_t dlen;
	bool eq;

	if (clen == hlen && !memcmp(c, h, clen))
		return true;
	if (dirindex_unescape(h, hlen, &dec, &dlen))
		return false;
	esc = dirindex_escape(dec, dlen);
	eq = esc && strlen(esc) == clen && !memcmp(esc, c, clen);
	free(esc);
	free(dec);
	return eq;
}

/*
 * hp[0, hlen) is an absolute path ('/' first). When it leads into the
 * base path bp ("/a/b/"), *rest receives the offset after it.
 */
static bool strip_base_path(const char *bp, const char *hp, size_t hlen,
			    size_t *rest)
{
	size_t bi = 1, hi = 1;

	while (bp[bi]) {
		const char *bend = strchr(bp + bi, '/');
		size_t be = bend ? (size_t)(bend - bp) : strlen(bp);
		size_t he = hi;

		while (he < hlen && hp[he] != '/')
			he++;
		if (he >= hlen)
			return false; /* shallower than the folder */
		if (!seg_equal(bp + bi, be - bi, hp + hi, he - hi))
			return false;
		if (!bend)
			break;
		bi = be + 1;
		hi = he + 1;
	}
	*rest = hi;
	return true;
}

/*
 * The part of href h[0, hlen) relative to the folder: h itself when it is
 * relative, the rest after the folder for an absolute path or URL leading
 * into it; NULL for links elsewhere (another scheme, host or path).
 */
static const char *href_rest(const struct base *b, const char *h, size_t hlen)
{
	size_t i = 0, alen, off;

	while (i < hlen && (isalnum((unsigned char)h[i]) || h[i] == '+' ||
			    h[i] == '-' || h[i] == '.'))
		i++;
	if (i > 0 && i < hlen && h[i] == ':' && isalpha((unsigned char)h[0])) {
		/* scheme:...: only the folder's own scheme and host */
		if (i != b->scheme_len || strncasecmp(h, b->url, i) ||
		    hlen - i < 3 || memcmp(h + i, "://", 3))
			return NULL;
		h += i + 1;
		hlen -= i + 1;
	}
	if (hlen >= 2 && h[0] == '/' && h[1] == '/') {
		alen = b->path_off - b->auth_off;
		if (hlen - 2 < alen ||
		    strncasecmp(h + 2, b->url + b->auth_off, alen))
			return NULL;
		h += 2 + alen;
		hlen -= 2 + alen;
		if (!hlen || h[0] != '/')
			return NULL; /* a longer host name, or no path */
	}
	if (hlen && h[0] == '/') {
		if (!strip_base_path(b->url + b->path_off, h, hlen, &off))
			return NULL;
		h += off;
	}
	return h;
}

/*
 * The text after a link, up to the end of its line or the next link:
 * tags dropped, references as blanks, split into words; a date is two
 * words, an exact size the word after it when it is all digits.
 */
static void parse_meta(const char *p, size_t len, int64_t *mtime, int64_t *size)
{
	char text[META_SCAN_MAX + 1];
	size_t tok_off[META_TOKENS_MAX], tok_len[META_TOKENS_MAX];
	size_t i = 0, o = 0, ntok = 0, k;

	while (i < len && o < META_SCAN_MAX) {
		char ch = p[i];

		if (ch == '\n')
			break;
		if (ch == '<') {
			size_t end;

			if (i + 2 < len &&
			    tolower((unsigned char)p[i + 1]) == 'a' &&
			    (is_blank(p[i + 2]) || p[i + 2] == '>'))
				break; /* the next link */
			end = i + 1;
			while (end < len && p[end] != '>' && p[end] != '\n')
				end++;
			i = end < len && p[end] == '>' ? end + 1 : end;
			text[o++] = ' ';
			continue;
		}
		if (ch == '&') {
			size_t end = i + 1;

			while (end < len && end < i + 10 && p[end] != ';' &&
			       !is_blank(p[end]))
				end++;
			i = end < len && p[end] == ';' ? end + 1 : i + 1;
			text[o++] = ' ';
			continue;
		}
		text[o++] = is_blank(ch) ? ' ' : ch;
		i++;
	}
	text[o] = '\0';
	for (i = 0; i < o && ntok < META_TOKENS_MAX;) {
		while (i < o && text[i] == ' ')
			i++;
		if (i >= o)
			break;
		tok_off[ntok] = i;
		while (i < o && text[i] != ' ')
			i++;
		tok_len[ntok] = i - tok_off[ntok];
		ntok++;
	}
	for (k = 0; k + 1 < ntok; k++) {
		char dbuf[64];
		size_t dlen;
		int64_t t;

		if (tok_len[k] + 1 + tok_len[k + 1] >= sizeof(dbuf))
			continue;
		memcpy(dbuf, text + tok_off[k], tok_len[k]);
		dbuf[tok_len[k]] = ' ';
		memcpy(dbuf + tok_len[k] + 1, text + tok_off[k + 1],
		       tok_len[k + 1]);
		dlen = tok_len[k] + 1 + tok_len[k + 1];
		if (dirindex_parse_date(dbuf, dlen, &t))
			continue;
		*mtime = t;
		if (k + 2 < ntok && tok_len[k + 2] <= 18) {
			const char *s = text + tok_off[k + 2];
			int64_t v = 0;
			size_t j;

			for (j = 0; j < tok_len[k + 2]; j++) {
				if (!isdigit((unsigned char)s[j]))
					break;
				v = v * 10 + (s[j] - '0');
			}
			if (j == tok_len[k + 2])
				*size = v;
		}
		return;
	}
}

/*
 * One link: href h[0, hlen) as written in the page (references not yet
 * decoded); meta[0, mlen) is the text after the link's tag.
 */
static int html_link(struct builder *b, const struct base *base, const char *h,
		     size_t hlen, const char *meta, size_t mlen)
{
	int64_t size = DIRINDEX_SIZE_UNKNOWN, mtime = DIRINDEX_MTIME_UNKNOWN;
	char *href, *name = NULL;
	const char *rel;
	size_t vlen, rlen, nlen;
	bool is_dir = false;
	int err = 0;

	href = attr_value(h, hlen, &vlen);
	if (!href)
		return -ENOMEM;
	if (memchr(href, '?', vlen) || memchr(href, '#', vlen) ||
	    memchr(href, '\0', vlen))
		goto out; /* sort links, anchors */
	rel = href_rest(base, href, vlen);
	if (!rel)
		goto out;
	rlen = vlen - (size_t)(rel - href);
	while (rlen >= 2 && rel[0] == '.' && rel[1] == '/') {
		rel += 2;
		rlen -= 2;
	}
	if (rlen && rel[rlen - 1] == '/') {
		is_dir = true;
		rlen--;
	}
	if (!rlen || memchr(rel, '/', rlen))
		goto out; /* self, or deeper */
	if ((rlen == 1 && rel[0] == '.') ||
	    (rlen == 2 && rel[0] == '.' && rel[1] == '.'))
		goto out; /* parent */
	err = dirindex_unescape(rel, rlen, &name, &nlen);
	if (err == -EINVAL) {
		warn_unsafe(b, rel, rlen);
		err = 0;
		goto out;
	}
	if (err)
		goto out;
	parse_meta(meta, mlen, &mtime, &size);
	if (is_dir)
		size = DIRINDEX_SIZE_UNKNOWN;
	err = add_entry(b, name, nlen, is_dir, size, mtime);
out:
	free(name);
	free(href);
	return err;
}

/*
 * Parses the attributes of a tag from p[i] (after its name) to its '>':
 * *href receives the href value's span (if any); returns the offset
 * after the tag.
 */
static size_t html_attrs(const char *p, size_t len, size_t i, const char **href,
			 size_t *hlen)
{
	*href = NULL;
	*hlen = 0;
	while (i < len) {
		size_t ns, ne, vs, ve;

		while (i < len && (is_blank(p[i]) || p[i] == '/'))
			i++;
		if (i >= len)
			break;
		if (p[i] == '>')
			return i + 1;
		ns = i;
		while (i < len && !is_blank(p[i]) && p[i] != '=' &&
		       p[i] != '>' && p[i] != '/')
			i++;
		ne = i;
		while (i < len && is_blank(p[i]))
			i++;
		if (i >= len || p[i] != '=')
			continue;
		i++;
		while (i < len && is_blank(p[i]))
			i++;
		if (i < len && (p[i] == '"' || p[i] == '\'')) {
			char q = p[i++];

			vs = i;
			while (i < len && p[i] != q)
				i++;
			ve = i;
			if (i < len)
				i++;
		} else {
			vs = i;
			while (i < len && !is_blank(p[i]) && p[i] != '>')
				i++;
			ve = i;
		}
		if (!*href && ne - ns == 4 && !strncasecmp(p + ns, "href", 4)) {
			*href = p + vs;
			*hlen = ve - vs;
		}
	}
	return len;
}

/*
 * The offset after the "</a>" closing the link whose tag ends at from,
 * or to when the next link (or to) comes first. Scans stop at the next
 * link, so the whole page is read a bounded number of times.
 */
static size_t find_close(const char *p, size_t from, size_t to)
{
	size_t i = from;

	while (i < to) {
		const char *lt = memchr(p + i, '<', to - i);

		if (!lt)
			return to;
		i = (size_t)(lt - p);
		if (to - i >= 3 && tolower((unsigned char)p[i + 1]) == 'a' &&
		    is_blank(p[i + 2]))
			return to;
		if (to - i >= 4 && p[i + 1] == '/' &&
		    tolower((unsigned char)p[i + 2]) == 'a' &&
		    (p[i + 3] == '>' || is_blank(p[i + 3]))) {
			const char *gt = memchr(p + i, '>', to - i);

			return gt ? (size_t)(gt - p) + 1 : to;
		}
		i++;
	}
	return to;
}

static int cmp_entry(const void *a, const void *b)
{
	const struct dirindex_entry *x = a, *y = b;
	int c = strcmp(x->name, y->name);

	if (c)
		return c;
	return (int)x->is_dir - (int)y->is_dir;
}

/* Sorts and merges entries of the same name and type (a page links a
 * file from its icon and its name), keeping the metadata known. */
static void merge_dups(struct dirindex *d)
{
	size_t i, o = 0;

	if (d->n < 2)
		return;
	qsort(d->entries, d->n, sizeof(d->entries[0]), cmp_entry);
	for (i = 0; i < d->n; i++) {
		struct dirindex_entry *en = &d->entries[i];

		if (o && !cmp_entry(&d->entries[o - 1], en)) {
			struct dirindex_entry *kept = &d->entries[o - 1];

			if (kept->size == DIRINDEX_SIZE_UNKNOWN)
				kept->size = en->size;
			if (kept->mtime == DIRINDEX_MTIME_UNKNOWN)
				kept->mtime = en->mtime;
			free(en->name);
			continue;
		}
		d->entries[o++] = *en;
	}
	d->n = o;
}

int dirindex_parse_html(const char *body, size_t len, const char *folder_url,
			size_t max_entries, struct dirindex **out)
{
	struct builder b = { .folder_url = folder_url,
			     .max_kept = max_entries,
			     .merge = true };
	struct base base;
	size_t i = 0;
	int err;

	*out = NULL;
	/* Room for each name twice (icon and name links) before merging;
	 * merged whenever full, so only more than max_entries different
	 * names truncate. */
	b.max_raw = max_entries > SIZE_MAX / 2 ? SIZE_MAX : max_entries * 2;
	err = dirindex_new(&b.d);
	if (err)
		return err;
	if (!base_split(folder_url, &base))
		goto done; /* nothing can be a child of it */
	while (i < len) {
		const char *lt = memchr(body + i, '<', len - i);
		const char *href;
		size_t hlen, tag_end, close, meta_end;

		if (!lt)
			break;
		i = (size_t)(lt - body);
		if (len - i >= 4 && !memcmp(body + i, "<!--", 4)) {
			size_t end = find_ci(body, i + 4, len, "-->");

			i = end < len ? end + 3 : len;
			continue;
		}
		if (len - i < 3 || tolower((unsigned char)body[i + 1]) != 'a' ||
		    !is_blank(body[i + 2])) {
			i++;
			continue;
		}
		tag_end = html_attrs(body, len, i + 2, &href, &hlen);
		i = tag_end;
		if (!href)
			continue;
		b.d->nlinks++;
		/* Metadata follow the link's closing tag on the same line. */
		meta_end = len - tag_end > META_SCAN_MAX * 4 ?
				   tag_end + META_SCAN_MAX * 4 :
				   len;
		close = find_close(body, tag_end, meta_end);
		err = html_link(&b, &base, href, hlen, body + close,
				meta_end - close);
		if (err)
			goto fail;
		if (b.d->truncated)
			break;
	}
done:
	merge_dups(b.d);
	if (b.d->n > max_entries) {
		for (i = max_entries; i < b.d->n; i++)
			free(b.d->entries[i].name);
		b.d->n = max_entries;
		b.d->truncated = true;
	}
	warn_finish(&b);
	*out = b.d;
	return 0;
fail:
	dirindex_free(b.d);
	return err;
}
