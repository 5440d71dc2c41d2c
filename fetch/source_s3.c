/*
 * source_s3.c: SOURCE s3://BUCKET[/PREFIX] (DESIGN.md "Sources").
 *
 * Any S3-compatible store: AWS by default (virtual-hosted style,
 * https://BUCKET.s3.REGION.amazonaws.com/), or -o endpoint=URL (path
 * style, ENDPOINT/BUCKET/); -o s3_path_style=0|1 forces either. The
 * region is -o region=, else AWS_REGION or AWS_DEFAULT_REGION, else the
 * profile's region in the config file, else us-east-1; a server that
 * names the bucket's real region (X-Amz-Bucket-Region, or <Region> in
 * the error) is followed once.
 *
 * Credentials are found the way the AWS CLI finds them: AWS_ACCESS_KEY_ID
 * and AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), then the profile
 * AWS_PROFILE (default "default") in the shared credentials file and the
 * config file; none is anonymous. Requests are signed by libcurl
 * (CURLOPT_AWS_SIGV4, provider "aws:amz:REGION:s3"): the engine gets the
 * provider and "KEY_ID:SECRET" through struct http_auth and applies them
 * to the origin host only. A session token goes as x-amz-security-token,
 * a header libcurl signs with the others. Secrets are never logged, never
 * put into URLs, the manifest or the cache, and wiped when freed.
 *
 * The listing is ListObjectsV2 (recursive under the prefix, 1000 keys a
 * page, continuation tokens followed), parsed with libxml2 (no entity
 * expansion, no network). Each object's ETag and size are pinned in the
 * manifest, and every range request carries If-Match with the ETag: an
 * object changed on the server is a 412, which fails its blob (-ESTALE,
 * EIO) rather than mixing bytes of two versions. An ETag is an identity,
 * never taken for an MD5: multipart uploads have "HEX-N" ETags.
 *
 * No locks: a source lists on one thread and is only read afterwards.
 */
#include "fetch/source_s3.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "fetch/dirindex.h"
#include "fetch/engine.h"
#include "fetch/http.h"
#include "fetch/source.h"
#include "fetch/source_i.h"
#include "state/clock.h"
#include "state/hlog.h"
#include "state/manifest.h"

#define S3_FORM "s3://BUCKET[/PREFIX]"
#define S3_PAGE_KEYS 1000
#define S3_INI_MAX (1u << 20)

struct source_s3 {
	struct source base; /* first */
	char *bucket;
	char *prefix; /* "" or "a/b/" (owned) */
	char *endpoint; /* custom endpoint, no trailing '/', or NULL */
	bool path_style;
	bool region_given; /* -o region=: a region hint is warned about */
	char *region;
	char *sigv4; /* "aws:amz:REGION:s3", or NULL: anonymous */
	char *userpwd; /* "KEY_ID:SECRET" (owned, wiped), or NULL */
	char *creds_from; /* for error lines: "the environment", ... */
	char *base_url; /* the bucket's URL, ending in '/' */
	char *shown; /* "s3://BUCKET/PREFIX" for log lines */
};

/* ---- pure parts (source_s3.h) ------------------------------------------ */

char *s3_uri_encode(const char *s, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = strlen(s), i, o = 0;
	char *out = malloc(n * 3 + 1);

	if (!out)
		return NULL;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (isascii(c) &&
		    (isalnum(c) || c == '-' || c == '.' || c == '_' ||
		     c == '~' || (keep_slash && c == '/'))) {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 15];
		}
	}
	out[o] = '\0';
	return out;
}

static bool xml_is(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE &&
	       !strcmp((const char *)n->name, name);
}

/* The text of element n as a new string in *out (NULL when out of
 * memory): 0 or -ENOMEM. */
static int xml_text(const xmlNode *n, char **out)
{
	xmlChar *t = xmlNodeGetContent(n);

	*out = strdup(t ? (const char *)t : "");
	xmlFree(t);
	return *out ? 0 : -ENOMEM;
}

static xmlDoc *xml_read(const char *xml, size_t len)
{
	xmlDoc *doc;

	if (!xml || !len || len > INT32_MAX)
		return NULL;
	/* No entities substituted, no DTD loaded, nothing fetched, no
	 * message printed to stderr. */
	doc = xmlReadMemory(xml, (int)len, NULL, NULL,
			    XML_PARSE_NONET | XML_PARSE_NOERROR |
				    XML_PARSE_NOWARNING);
	if (doc && (doc->intSubset || doc->extSubset)) {
		/* S3 sends no DOCTYPE; one could declare entities whose
		 * references expand without bound when read. */
		xmlFreeDoc(doc);
		doc = NULL;
	}
	return doc;
}

/* "2026-12-06T02:22:10.000Z" into unix seconds; 0 when it is not. */
static int64_t iso8601_seconds(const char *s)
{
	struct tm tm = { 0 };
	int n = 0;

	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon,
		   &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6 ||
	    n != 19)
		return 0;
	if (tm.tm_year < 1970 || tm.tm_mon < 1 || tm.tm_mon > 12 ||
	    tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
	    tm.tm_min > 59 || tm.tm_sec > 60)
		return 0;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm);
}

static int parse_size(const char *s, uint64_t *out)
{
	uint64_t v = 0;

	if (!*s)
		return -EBADMSG;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - 9) / 10)
			return -EBADMSG;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*out = v;
	return 0;
}

static int contents_parse(const xmlNode *c, struct s3_object *o)
{
	const xmlNode *n;
	char *size = NULL, *mtime = NULL;
	int rc = 0;

	for (n = c->children; n && !rc; n = n->next) {
		if (xml_is(n, "Key") && !o->key)
			rc = xml_text(n, &o->key);
		else if (xml_is(n, "Size") && !size)
			rc = xml_text(n, &size);
		else if (xml_is(n, "ETag") && !o->etag)
			rc = xml_text(n, &o->etag);
		else if (xml_is(n, "LastModified") && !mtime)
			rc = xml_text(n, &mtime);
	}
	if (!rc && (!o->key || !size || parse_size(size, &o->size)))
		rc = -EBADMSG;
	if (!rc && o->etag && !*o->etag) {
		free(o->etag);
		o->etag = NULL;
	}
	if (!rc && mtime)
		o->mtime = iso8601_seconds(mtime);
	free(size);
	free(mtime);
	return rc;
}

void s3_list_release(struct s3_list *l)
{
	size_t i;

	for (i = 0; i < l->n; i++) {
		free(l->objs[i].key);
		free(l->objs[i].etag);
	}
	free(l->objs);
	free(l->next_token);
	memset(l, 0, sizeof(*l));
}

int s3_list_parse(const char *xml, size_t len, struct s3_list *out)
{
	xmlDoc *doc = xml_read(xml, len);
	const xmlNode *root, *n;
	size_t count = 0;
	char *trunc = NULL;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	root = doc ? xmlDocGetRootElement(doc) : NULL;
	if (!root || !xml_is(root, "ListBucketResult")) {
		rc = -EBADMSG;
		goto out;
	}
	for (n = root->children; n; n = n->next)
		if (xml_is(n, "Contents"))
			count++;
	out->objs = calloc(count ? count : 1, sizeof(*out->objs));
	if (!out->objs) {
		rc = -ENOMEM;
		goto out;
	}
	for (n = root->children; n && !rc; n = n->next) {
		if (xml_is(n, "Contents")) {
			rc = contents_parse(n, &out->objs[out->n]);
			out->n++; /* released on error too */
		} else if (xml_is(n, "IsTruncated") && !trunc) {
			rc = xml_text(n, &trunc);
		} else if (xml_is(n, "NextContinuationToken") &&
			   !out->next_token) {
			rc = xml_text(n, &out->next_token);
		}
	}
	if (rc)
		goto out;
	out->truncated = trunc && !strcmp(trunc, "true");
	if (out->truncated && (!out->next_token || !*out->next_token))
		rc = -EBADMSG;
out:
	free(trunc);
	if (rc)
		s3_list_release(out);
	xmlFreeDoc(doc);
	return rc;
}

void s3_error_release(struct s3_error *e)
{
	free(e->code);
	free(e->message);
	free(e->region);
	memset(e, 0, sizeof(*e));
}

int s3_error_parse(const char *xml, size_t len, struct s3_error *out)
{
	xmlDoc *doc = xml_read(xml, len);
	const xmlNode *root, *n;
	int rc = 0;

	memset(out, 0, sizeof(*out));
	root = doc ? xmlDocGetRootElement(doc) : NULL;
	if (!root || !xml_is(root, "Error")) {
		xmlFreeDoc(doc);
		return -EBADMSG;
	}
	for (n = root->children; n && !rc; n = n->next) {
		if (xml_is(n, "Code") && !out->code)
			rc = xml_text(n, &out->code);
		else if (xml_is(n, "Message") && !out->message)
			rc = xml_text(n, &out->message);
		else if (xml_is(n, "Region") && !out->region)
			rc = xml_text(n, &out->region);
	}
	xmlFreeDoc(doc);
	if (rc)
		s3_error_release(out);
	return rc;
}

/* Surrounding white space of s[0, *n) removed: returns the new start. */
static char *trim(char *s, size_t *n)
{
	while (*n && isspace((unsigned char)*s)) {
		s++;
		(*n)--;
	}
	while (*n && isspace((unsigned char)s[*n - 1]))
		(*n)--;
	return s;
}

static bool name_eq(const char *a, size_t n, const char *b)
{
	return strlen(b) == n && !strncasecmp(a, b, n);
}

int s3_ini_get(const char *path, const char *section, const char *key,
	       char **out, bool *found_section)
{
	char *text = NULL, *line, *next;
	size_t len = 0;
	bool in = false;
	FILE *f;
	int rc = -ENOENT;

	*out = NULL;
	*found_section = false;
	f = fopen(path, "re");
	if (!f)
		return -errno;
	text = malloc(S3_INI_MAX + 1);
	if (!text) {
		fclose(f);
		return -ENOMEM;
	}
	len = fread(text, 1, S3_INI_MAX, f);
	if (ferror(f))
		rc = -EIO;
	else if (!feof(f))
		rc = -EFBIG;
	fclose(f);
	if (rc != -ENOENT)
		goto out;
	text[len] = '\0';
	for (line = text; line && *line; line = next) {
		size_t n;
		char *p, *eq;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		n = strlen(line);
		p = trim(line, &n);
		if (!n || *p == '#' || *p == ';')
			continue;
		if (*p == '[') {
			char *name = p + 1;
			size_t nn;

			if (p[n - 1] != ']')
				continue;
			nn = n - 2;
			name = trim(name, &nn);
			in = name_eq(name, nn, section);
			if (in)
				*found_section = true;
			continue;
		}
		eq = memchr(p, '=', n);
		if (!in || !eq) {
			continue;
		} else {
			size_t kn = (size_t)(eq - p), vn = n - kn - 1;
			char *k = trim(p, &kn), *v = trim(eq + 1, &vn);

			if (!name_eq(k, kn, key))
				continue;
			free(*out);
			*out = strndup(v, vn);
			if (!*out) {
				rc = -ENOMEM;
				goto out;
			}
			rc = 0;
			break; /* the first one wins, as in botocore */
		}
	}
out:
	explicit_bzero(text, len);
	free(text);
	return rc;
}

/* ---- opening ----------------------------------------------------------- */

static const struct source_optdef s3_options[] = {
	{ "region", "a region such as eu-west-1",
	  "only s3:// sources have a region" },
	{ "s3_path_style", "0 or 1", "only s3:// sources take s3_path_style" },
	{ NULL, NULL, NULL },
};

static void free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static const char *env_nonempty(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

static bool has_ctl(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* Parses s3://BUCKET[/PREFIX] into s->bucket, s->prefix and s->shown. */
static int s3_parse_spec(struct source_s3 *s, const char *spec, char *err,
			 size_t errlen)
{
	const char *p = spec + 5, *slash;
	size_t blen, i;
	char *prefix;

	if (strncasecmp(spec, "s3://", 5)) {
		snprintf(err, errlen, "malformed SOURCE '%s': expected %s",
			 spec, S3_FORM);
		return -EINVAL;
	}
	slash = strchr(p, '/');
	blen = slash ? (size_t)(slash - p) : strlen(p);
	if (!blen || blen > 255) {
		snprintf(err, errlen,
			 "malformed SOURCE '%s': no bucket (expected %s)", spec,
			 S3_FORM);
		return -EINVAL;
	}
	for (i = 0; i < blen; i++) {
		unsigned char c = (unsigned char)p[i];

		if (!isascii(c) ||
		    !(isalnum(c) || c == '-' || c == '.' || c == '_')) {
			snprintf(err, errlen,
				 "malformed SOURCE '%s': bad bucket name "
				 "(letters, digits, '.', '-' and '_' only)",
				 spec);
			return -EINVAL;
		}
	}
	s->bucket = strndup(p, blen);
	prefix = calloc(1, slash ? strlen(slash) + 2 : 1);
	if (!s->bucket || !prefix) {
		free(prefix);
		return -ENOMEM;
	}
	s->prefix = prefix;
	for (p = slash; p && *p;) {
		size_t n;

		while (*p == '/')
			p++;
		n = strcspn(p, "/");
		if (!n)
			break;
		if ((n == 1 && p[0] == '.') ||
		    (n == 2 && !strncmp(p, "..", 2)) || memchr(p, '?', n) ||
		    memchr(p, '#', n) || has_ctl(p)) {
			snprintf(err, errlen,
				 "malformed SOURCE '%s': '.', '..', '?', '#' "
				 "and control characters are not allowed in "
				 "the prefix",
				 spec);
			return -EINVAL;
		}
		strncat(prefix, p, n);
		strcat(prefix, "/");
		p += n;
	}
	if (asprintf(&s->shown, "s3://%s%s%.*s", s->bucket, *prefix ? "/" : "",
		     (int)(*prefix ? strlen(prefix) - 1 : 0), prefix) < 0) {
		s->shown = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* The bucket's URL from the endpoint, region and style. */
static int s3_build_urls(struct source_s3 *s)
{
	char *base = NULL, *sig = NULL;
	int n;

	if (s->endpoint && s->path_style) {
		n = asprintf(&base, "%s/%s/", s->endpoint, s->bucket);
	} else if (s->endpoint) {
		const char *host = strstr(s->endpoint, "://") + 3;

		n = asprintf(&base, "%.*s%s.%s/", (int)(host - s->endpoint),
			     s->endpoint, s->bucket, host);
	} else if (s->path_style) {
		n = asprintf(&base, "https://s3.%s.amazonaws.com/%s/",
			     s->region, s->bucket);
	} else {
		n = asprintf(&base, "https://%s.s3.%s.amazonaws.com/",
			     s->bucket, s->region);
	}
	if (n < 0)
		return -ENOMEM;
	if (s->userpwd && asprintf(&sig, "aws:amz:%s:s3", s->region) < 0) {
		free(base);
		return -ENOMEM;
	}
	free(s->base_url);
	free(s->sigv4);
	s->base_url = base;
	s->sigv4 = sig;
	return 0;
}

static int s3_endpoint(struct source_s3 *s, const struct source_opts *o,
		       char *err, size_t errlen)
{
	const char *ep = o->endpoint, *ps = source_opt_get(o, "s3_path_style");
	size_t n;

	if (!ep && o->env)
		ep = env_nonempty("AWS_ENDPOINT_URL_S3");
	if (!ep && o->env)
		ep = env_nonempty("AWS_ENDPOINT_URL");
	if (ep) {
		if ((strncasecmp(ep, "http://", 7) &&
		     strncasecmp(ep, "https://", 8)) ||
		    !ep[strcspn(ep, ":") + 3] || strpbrk(ep, "?#@") ||
		    has_ctl(ep)) {
			snprintf(err, errlen,
				 "bad value '%s' for option endpoint: expected "
				 "an http:// or https:// URL without query or "
				 "credentials",
				 ep);
			return -EINVAL;
		}
		n = strlen(ep);
		while (n && ep[n - 1] == '/')
			n--;
		s->endpoint = strndup(ep, n);
		if (!s->endpoint)
			return -ENOMEM;
	}
	/* Path style for a custom endpoint (no wildcard DNS there) and for
	 * bucket names with dots (no TLS certificate covers them). */
	s->path_style = s->endpoint || strchr(s->bucket, '.');
	if (ps) {
		if (strcmp(ps, "0") && strcmp(ps, "1")) {
			snprintf(err, errlen,
				 "bad value '%s' for option s3_path_style: "
				 "expected 0 or 1",
				 ps);
			return -EINVAL;
		}
		s->path_style = ps[0] == '1';
	}
	return 0;
}

struct creds {
	char *id, *secret, *token;
};

static void creds_release(struct creds *c)
{
	free_secret(c->id);
	free_secret(c->secret);
	free_secret(c->token);
	memset(c, 0, sizeof(*c));
}

/* key of a profile: the credentials file first, then the config file. */
static int profile_get(const char *cred_file, const char *conf_file,
		       const char *profile, const char *key, char **out,
		       bool *found)
{
	char section[300];
	bool f1 = false, f2 = false;
	int rc;

	*out = NULL;
	rc = s3_ini_get(cred_file, profile, key, out, &f1);
	if (rc == -ENOENT || rc == -ENOTDIR) {
		if (!strcmp(profile, "default"))
			snprintf(section, sizeof(section), "default");
		else
			snprintf(section, sizeof(section), "profile %s",
				 profile);
		rc = s3_ini_get(conf_file, section, key, out, &f2);
	}
	*found = *found || f1 || f2;
	if (rc == -ENOTDIR)
		rc = -ENOENT;
	return rc;
}

/*
 * Credentials and region the way the AWS CLI finds them. Sets
 * s->userpwd, s->base.auth (session token), s->creds_from, and the region
 * from the profile when *region is NULL (a new string then).
 */
static int s3_find_creds(struct source_s3 *s, const struct source_opts *o,
			 char **region, char *err, size_t errlen)
{
	const char *id = NULL, *secret = NULL, *home = getenv("HOME");
	const char *profile, *cred_file, *conf_file;
	char cred_buf[4096], conf_buf[4096];
	struct creds c = { 0 };
	bool found = false, explicit_profile;
	int rc = 0, rcs[4];

	if (!o->env)
		goto anonymous;
	id = env_nonempty("AWS_ACCESS_KEY_ID");
	secret = env_nonempty("AWS_SECRET_ACCESS_KEY");
	if (id || secret) {
		if (!id || !secret) {
			snprintf(err, errlen,
				 "partial credentials in the environment: %s "
				 "is set but %s is not",
				 id ? "AWS_ACCESS_KEY_ID" :
				      "AWS_SECRET_ACCESS_KEY",
				 id ? "AWS_SECRET_ACCESS_KEY" :
				      "AWS_ACCESS_KEY_ID");
			return -EINVAL;
		}
		c.id = strdup(id);
		c.secret = strdup(secret);
		if (env_nonempty("AWS_SESSION_TOKEN"))
			c.token = strdup(getenv("AWS_SESSION_TOKEN"));
		s->creds_from = strdup("the environment (AWS_ACCESS_KEY_ID)");
		if (!c.id || !c.secret || !s->creds_from ||
		    (env_nonempty("AWS_SESSION_TOKEN") && !c.token)) {
			rc = -ENOMEM;
			goto out;
		}
		goto have;
	}
	profile = env_nonempty("AWS_PROFILE");
	explicit_profile = profile != NULL;
	if (!profile)
		profile = "default";
	cred_file = env_nonempty("AWS_SHARED_CREDENTIALS_FILE");
	conf_file = env_nonempty("AWS_CONFIG_FILE");
	snprintf(cred_buf, sizeof(cred_buf), "%s/.aws/credentials",
		 home ? home : "");
	snprintf(conf_buf, sizeof(conf_buf), "%s/.aws/config",
		 home ? home : "");
	if (!cred_file)
		cred_file = cred_buf;
	if (!conf_file)
		conf_file = conf_buf;
	rcs[0] = profile_get(cred_file, conf_file, profile, "aws_access_key_id",
			     &c.id, &found);
	rcs[1] = profile_get(cred_file, conf_file, profile,
			     "aws_secret_access_key", &c.secret, &found);
	rcs[2] = profile_get(cred_file, conf_file, profile, "aws_session_token",
			     &c.token, &found);
	rcs[3] = *region ? -ENOENT :
			   profile_get(cred_file, conf_file, profile, "region",
				       region, &found);
	for (rc = 0; rc < 4; rc++) {
		if (rcs[rc] == -ENOMEM) {
			rc = -ENOMEM;
			goto out;
		}
	}
	rc = 0;
	if (explicit_profile && !found) {
		snprintf(err, errlen,
			 "profile '%s' (AWS_PROFILE) is in neither '%s' nor "
			 "'%s'",
			 profile, cred_file, conf_file);
		rc = -ENOENT;
		goto out;
	}
	if (!c.id && !c.secret) {
		creds_release(&c);
		goto anonymous;
	}
	if (!c.id || !c.secret) {
		snprintf(err, errlen,
			 "profile '%s' has %s but no %s (in '%s' or '%s')",
			 profile,
			 c.id ? "aws_access_key_id" : "aws_secret_access_key",
			 c.id ? "aws_secret_access_key" : "aws_access_key_id",
			 cred_file, conf_file);
		rc = -EINVAL;
		goto out;
	}
	if (asprintf(&s->creds_from, "profile '%s'", profile) < 0) {
		s->creds_from = NULL;
		rc = -ENOMEM;
		goto out;
	}
have:
	if (has_ctl(c.id) || has_ctl(c.secret) || strchr(c.id, ':') ||
	    (c.token && has_ctl(c.token))) {
		/* Never echoed: they are secrets. */
		snprintf(err, errlen,
			 "the credentials from %s contain control characters "
			 "or a ':' in the key id",
			 s->creds_from);
		rc = -EINVAL;
		goto out;
	}
	if (asprintf(&s->userpwd, "%s:%s", c.id, c.secret) < 0) {
		s->userpwd = NULL;
		rc = -ENOMEM;
		goto out;
	}
	if (c.token &&
	    asprintf(&s->base.auth, "x-amz-security-token: %s", c.token) < 0) {
		s->base.auth = NULL;
		rc = -ENOMEM;
	}
out:
	creds_release(&c);
	return rc;
anonymous:
	s->creds_from = strdup("no credentials (anonymous)");
	return s->creds_from ? 0 : -ENOMEM;
}

static void s3_free(struct source *src)
{
	struct source_s3 *s = (struct source_s3 *)src;

	free(s->bucket);
	free(s->prefix);
	free(s->endpoint);
	free(s->region);
	free(s->sigv4);
	free_secret(s->userpwd);
	free(s->creds_from);
	free(s->base_url);
	free(s->shown);
	free(s);
}

static int s3_open(const char *spec, const struct source_opts *o,
		   struct source **out, char *err, size_t errlen)
{
	struct source_s3 *s;
	const char *region;
	char *prof_region = NULL;
	int rc;

	s = (struct source_s3 *)source_alloc(sizeof(*s), &source_s3_ops, "s3",
					     spec, o);
	if (!s)
		return source_open_done(NULL, -ENOMEM, out, err, errlen);
	rc = s3_parse_spec(s, spec, err, errlen);
	if (!rc && o->token) {
		snprintf(err, errlen,
			 "-o token_file= is not used by s3:// sources: "
			 "credentials come from AWS_ACCESS_KEY_ID and "
			 "AWS_SECRET_ACCESS_KEY or an AWS profile");
		rc = -EINVAL;
	}
	if (!rc)
		rc = s3_endpoint(s, o, err, errlen);
	region = source_opt_get(o, "region");
	s->region_given = region != NULL;
	if (!region && o->env)
		region = env_nonempty("AWS_REGION");
	if (!region && o->env)
		region = env_nonempty("AWS_DEFAULT_REGION");
	if (!rc)
		rc = s3_find_creds(s, o, region ? NULL : &prof_region, err,
				   errlen);
	if (!rc && !region)
		region = prof_region ? prof_region : S3_REGION_DEFAULT;
	if (!rc && (!*region || strpbrk(region, ":/?#@ ") || has_ctl(region))) {
		snprintf(err, errlen,
			 "bad value '%s' for option region: expected a "
			 "region such as eu-west-1",
			 region);
		rc = -EINVAL;
	}
	if (!rc) {
		s->region = strdup(region);
		rc = s->region ? s3_build_urls(s) : -ENOMEM;
	}
	if (!rc && asprintf(&s->base.cache_key, "s3:%s%s", s->base_url,
			    s->prefix) < 0) {
		s->base.cache_key = NULL;
		rc = -ENOMEM;
	}
	free(prof_region);
	return source_open_done(&s->base, rc, out, err, errlen);
}

/* ---- listing ----------------------------------------------------------- */

/* Switches to the region the server named; true when it is a change. */
static bool s3_follow_region(struct source_s3 *s, const char *hint)
{
	char *old = s->region;

	if (!hint || !*hint || !strcmp(hint, s->region) ||
	    strpbrk(hint, ":/?#@ ") || has_ctl(hint))
		return false;
	s->region = strdup(hint);
	if (!s->region || s3_build_urls(s)) {
		free(s->region);
		s->region = old;
		return false;
	}
	hlog(s->region_given ? HLOG_WARN : HLOG_INFO, HLOG_FETCH,
	     "bucket '%s' is in region '%s', not '%s': using '%s'", s->bucket,
	     s->region, old, s->region);
	free(old);
	return true;
}

/*
 * One line into err for a failed ListObjectsV2 request; returns the
 * errno. *hint receives the region the server named (borrowed from res
 * or e), or NULL.
 */
static int s3_list_error(struct source_s3 *s, const struct http_result *res,
			 int rc, struct s3_error *e, const char **hint,
			 char *err, size_t errlen)
{
	const char *code;
	int serr = http_status_errno(res->status);

	*hint = NULL;
	if (!res->status && source_err_is_network(rc)) {
		snprintf(err, errlen,
			 "cannot reach the S3 endpoint of '%s' "
			 "('%s'): %s",
			 s->shown, s->base_url, strerror(-rc));
		return rc;
	}
	if (!res->status) {
		snprintf(err, errlen, "listing '%s' failed: %s", s->shown,
			 strerror(-rc));
		return rc ? rc : -EIO;
	}
	if (s3_error_parse(res->body, res->body_len, e))
		memset(e, 0, sizeof(*e));
	code = e->code ? e->code : "";
	*hint = res->bucket_region ? res->bucket_region : e->region;
	if (!strcmp(code, "NoSuchBucket") || (res->status == 404 && !*code)) {
		snprintf(err, errlen,
			 "bucket '%s' does not exist at '%s' "
			 "(HTTP %ld%s%s)",
			 s->bucket, s->endpoint ? s->endpoint : "AWS S3",
			 res->status, *code ? " " : "", code);
		return -ENOENT;
	}
	if (!strcmp(code, "SignatureDoesNotMatch")) {
		snprintf(err, errlen,
			 "'%s': the server rejected the request signature "
			 "(SignatureDoesNotMatch) with the credentials of %s: "
			 "check the secret key and the clock",
			 s->shown, s->creds_from);
		return -EACCES;
	}
	if (!strcmp(code, "RequestTimeTooSkewed")) {
		snprintf(err, errlen,
			 "'%s': the server says this machine's clock is wrong "
			 "(RequestTimeTooSkewed): set the clock",
			 s->shown);
		return -EACCES;
	}
	if (!strcmp(code, "InvalidAccessKeyId")) {
		snprintf(err, errlen,
			 "'%s': the server does not know the access key id of "
			 "%s (InvalidAccessKeyId)",
			 s->shown, s->creds_from);
		return -EACCES;
	}
	if (serr == -EACCES) {
		snprintf(err, errlen,
			 "'%s': access denied (HTTP %ld%s%s) with %s%s",
			 s->shown, res->status, *code ? " " : "", code,
			 s->userpwd ? "the credentials of " : "",
			 s->creds_from);
		return -EACCES;
	}
	if (*hint || res->status == 301 || !strcmp(code, "PermanentRedirect") ||
	    !strcmp(code, "AuthorizationHeaderMalformed")) {
		snprintf(err, errlen,
			 "bucket '%s' is not in region '%s' (HTTP %ld%s%s)%s%s",
			 s->bucket, s->region, res->status, *code ? " " : "",
			 code, *hint ? ": it is in " : ": set -o region=",
			 *hint ? *hint : "");
		return -EPROTO;
	}
	snprintf(err, errlen, "listing '%s' failed: HTTP %ld%s%s%s%s", s->shown,
		 res->status, *code ? " " : "", code, e->message ? ": " : "",
		 e->message ? e->message : "");
	return serr ? serr : (rc ? rc : -EPROTO);
}

/* GETs one listing page (following one region hint) and parses it. */
static int s3_list_page(struct source_s3 *s, struct engine *e,
			const char *token, struct s3_list *page, char *err,
			size_t errlen)
{
	char *tok = NULL, *pfx = NULL, *url = NULL;
	int attempt, rc = -ENOMEM;

	memset(page, 0, sizeof(*page));
	pfx = s3_uri_encode(s->prefix, false);
	tok = token ? s3_uri_encode(token, false) : NULL;
	if (!pfx || (token && !tok))
		goto out;
	for (attempt = 0; attempt < 2; attempt++) {
		/* Parameters in canonical (sorted) order: libcurl before 8.2
		 * signs the query string as it is given. */
		struct http_req req = { .auth = s->base.auth,
					.aws_sigv4 = s->sigv4,
					.userpwd = s->userpwd };
		struct http_result res;
		struct s3_error se = { 0 };
		const char *hint;

		free(url);
		/* Path style: ENDPOINT/BUCKET?..., as the AWS SDKs send it
		 * (some servers sign "/BUCKET" whatever the path was). */
		if (asprintf(&url, "%.*s?%s%s%slist-type=2&max-keys=%d%s%s",
			     (int)(strlen(s->base_url) - s->path_style),
			     s->base_url, tok ? "continuation-token=" : "",
			     tok ? tok : "", tok ? "&" : "", S3_PAGE_KEYS,
			     *pfx ? "&prefix=" : "", pfx) < 0) {
			url = NULL;
			rc = -ENOMEM;
			goto out;
		}
		req.url = url;
		rc = engine_http(e, &req, &res);
		if (!rc && res.status == 200) {
			rc = s3_list_parse(res.body, res.body_len, page);
			if (rc == -EBADMSG)
				snprintf(err, errlen,
					 "listing '%s' failed: the answer of "
					 "'%s' is not a ListObjectsV2 result",
					 s->shown, s->base_url);
			http_result_release(&res);
			goto out;
		}
		rc = s3_list_error(s, &res, rc, &se, &hint, err, errlen);
		if (rc == -EPROTO && attempt == 0 && !token && hint &&
		    s3_follow_region(s, hint)) {
			err[0] = '\0';
			s3_error_release(&se);
			http_result_release(&res);
			continue;
		}
		s3_error_release(&se);
		http_result_release(&res);
		goto out;
	}
out:
	free(url);
	free(tok);
	free(pfx);
	return rc;
}

/* Adds the objects of one page below the prefix; skips (with a warning)
 * keys that are no usable path. */
static int s3_add_page(struct source_s3 *s, struct manifest *m,
		       const struct s3_list *page, size_t *count, bool *capped)
{
	size_t plen = strlen(s->prefix), i;
	char shown[200];

	for (i = 0; i < page->n; i++) {
		const struct s3_object *o = &page->objs[i];
		const char *rel;
		char *url = NULL, *enc, *path = NULL;
		size_t n;
		int rc;

		if (strncmp(o->key, s->prefix, plen))
			continue; /* not ours: a server ignoring prefix= */
		rel = o->key + plen;
		n = strlen(rel);
		if (!n)
			continue; /* the prefix's own folder marker */
		if (*count >= s->base.max_entries) {
			if (!*capped)
				hlog(HLOG_WARN, HLOG_FETCH,
				     "listing of '%s' stopped at %zu entries: "
				     "the rest is not shown",
				     s->shown, *count);
			*capped = true;
			return 0;
		}
		if (rel[n - 1] == '/') {
			/* A "folder" object (console-made): a folder. */
			path = strndup(rel, n - 1);
			if (!path)
				return -ENOMEM;
			rc = manifest_add(m, path, MENTRY_DIR, 0, o->mtime,
					  NULL, NULL, NULL);
		} else {
			enc = s3_uri_encode(o->key, true);
			url = enc ? source_join(s->base_url, "", enc, "") :
				    NULL;
			free(enc);
			if (!url)
				return -ENOMEM;
			rc = manifest_add(m, rel, MENTRY_FILE, o->size,
					  o->mtime, o->etag,
					  o->etag ? "etag" : NULL, url);
		}
		free(url);
		free(path);
		if (rc == -EEXIST || rc == -ENOTDIR || rc == -EINVAL ||
		    rc == -EOVERFLOW) {
			hlog(HLOG_WARN, HLOG_FETCH,
			     "listing of '%s': skipping %s '%s'", s->shown,
			     rc == -EEXIST || rc == -ENOTDIR ?
				     "duplicate name" :
				     "unusable path",
			     dirindex_printable(rel, n, shown, sizeof(shown)));
			continue;
		}
		if (rc)
			return rc;
		(*count)++;
	}
	return 0;
}

static int s3_list(struct source *src, struct engine *e, struct manifest **out,
		   char *err, size_t errlen)
{
	struct source_s3 *s = (struct source_s3 *)src;
	struct manifest *m = NULL;
	struct s3_list page = { 0 };
	uint64_t t0 = clock_now_ms();
	char *token = NULL;
	size_t count = 0, pages = 0;
	bool capped = false;
	int rc;

	*out = NULL;
	if (errlen)
		err[0] = '\0';
	if (!e) {
		snprintf(err, errlen, "listing '%s' needs the network engine",
			 s->shown);
		return -EINVAL;
	}
	rc = manifest_new(&m);
	while (!rc && !capped) {
		rc = s3_list_page(s, e, token, &page, err, errlen);
		if (rc)
			break;
		pages++;
		rc = s3_add_page(s, m, &page, &count, &capped);
		free(token);
		token = page.truncated ? page.next_token : NULL;
		page.next_token = NULL;
		s3_list_release(&page);
		if (!token)
			break;
		if (pages >= S3_MAX_PAGES) {
			hlog(HLOG_WARN, HLOG_FETCH,
			     "listing of '%s' stopped after %zu pages: the "
			     "rest is not shown",
			     s->shown, pages);
			break;
		}
	}
	free(token);
	if (!rc)
		rc = source_list_finish(src, m, "listing");
	if (rc)
		goto out;
	hlog(HLOG_INFO, HLOG_FETCH,
	     "listed '%s': %zu files, %" PRIu64 " bytes, %zu pages in "
	     "%" PRIu64 " ms",
	     s->shown, manifest_file_count(m), manifest_total_bytes(m), pages,
	     clock_now_ms() - t0);
	*out = m;
	m = NULL;
out:
	source_list_failed(s->shown, rc, err, errlen);
	manifest_free(m);
	return rc;
}

/* ---- requests ---------------------------------------------------------- */

static void s3_target(const struct source *src, const struct manifest *m,
		      uint64_t idx, struct fblob_target *t, char *idbuf,
		      size_t idlen)
{
	source_url_target(src, m, idx, t, idbuf, idlen);
	/* The listed ETag is pinned: the engine sends If-Match with it. */
	t->if_match = t->etag != NULL;
}

static void s3_auth(const struct source *src, struct http_auth *out)
{
	const struct source_s3 *s = (const struct source_s3 *)src;

	memset(out, 0, sizeof(*out));
	out->header = src->auth; /* x-amz-security-token, or NULL */
	out->aws_sigv4 = s->sigv4;
	out->userpwd = s->userpwd;
}

const struct source_ops source_s3_ops = {
	.scheme = "s3",
	.options = s3_options,
	.open = s3_open,
	.list = s3_list,
	.target = s3_target,
	.auth = s3_auth,
	.free = s3_free,
};
