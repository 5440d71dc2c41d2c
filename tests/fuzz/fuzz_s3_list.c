/*
 * fuzz_s3_list.c: libFuzzer target for the S3 answer parsers of
 * fetch/source_s3.c (ListObjectsV2 pages and error documents, through
 * libxml2) and the SigV4 URI encoding.
 *
 * Input: the body as it came from the server. Properties: nothing
 * crashes, leaks or reads past the given length (the body is copied into
 * a buffer of exactly its size, without a NUL); a page that parses has a
 * key for every object, a continuation token when it says it is
 * truncated, and an empty result when it does not parse; encoding any key
 * gives only unreserved characters, '/' and %XX escapes.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fetch/source_s3.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_encoded(const char *key)
{
	char *enc = s3_uri_encode(key, true);
	const char *p;

	if (!enc)
		abort();
	for (p = enc; *p; p++) {
		if (*p == '%') {
			if (!isxdigit((unsigned char)p[1]) ||
			    !isxdigit((unsigned char)p[2]))
				abort();
			p += 2;
		} else if (!isalnum((unsigned char)*p) &&
			   !strchr("-._~/", *p)) {
			abort();
		}
	}
	free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = malloc(size ? size : 1);
	struct s3_list l;
	struct s3_error e;
	size_t i;
	int rc;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	rc = s3_list_parse(buf, size, &l);
	if (rc == 0) {
		if (l.truncated && (!l.next_token || !*l.next_token))
			abort();
		for (i = 0; i < l.n; i++) {
			if (!l.objs[i].key)
				abort();
			check_encoded(l.objs[i].key);
		}
		s3_list_release(&l);
	} else if (rc != -EBADMSG && rc != -ENOMEM) {
		abort();
	} else if (l.objs || l.n || l.next_token) {
		abort();
	}
	rc = s3_error_parse(buf, size, &e);
	if (rc == 0)
		s3_error_release(&e);
	else if (e.code || e.message || e.region)
		abort();
	free(buf);
	return 0;
}
