/*
 * source_s3: SOURCE s3://BUCKET[/PREFIX], any S3-compatible object store
 * (DESIGN.md "Sources").
 *
 * The scheme itself is source_s3_ops (fetch/source_i.h), with its options
 * -o region= and -o s3_path_style=, the common -o endpoint=, and its
 * environment policy (credentials and region found the way the AWS CLI
 * finds them). What is declared here are its pure parts, exported so they
 * can be tested and fuzzed alone: the ListObjectsV2 and error document
 * parsers (libxml2), the URI encoding SigV4 expects, and the AWS shared
 * config file reader.
 *
 * Strings passed in are borrowed; what is returned is owned by the caller
 * and released with the matching *_release().
 */
#ifndef HOLLOWFS_FETCH_SOURCE_S3_H
#define HOLLOWFS_FETCH_SOURCE_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define S3_REGION_DEFAULT "us-east-1"
#define S3_MAX_PAGES 100000 /* listing pages followed at most */

/* One object of a listing page; strings owned. */
struct s3_object {
	char *key; /* as listed: may be anything, checked by the caller */
	uint64_t size;
	char *etag; /* as listed, quotes included; NULL when absent */
	int64_t mtime; /* LastModified in unix seconds, 0 when absent */
};

/* A parsed ListObjectsV2 page (ListBucketResult); s3_list_release(). */
struct s3_list {
	struct s3_object *objs;
	size_t n;
	bool truncated; /* IsTruncated: another page follows */
	char *next_token; /* NextContinuationToken, or NULL */
};

/*
 * Parses a ListObjectsV2 answer (xml[0, len), no entity expansion, no
 * network). Returns 0; -EBADMSG when it is not XML, its root is not
 * ListBucketResult, an object has no Key or a Size that is not a plain
 * decimal number, or IsTruncated is true without a NextContinuationToken;
 * -ENOMEM. On error *out is empty.
 */
int s3_list_parse(const char *xml, size_t len, struct s3_list *out)
	__attribute__((warn_unused_result));
void s3_list_release(struct s3_list *l);

/* An S3 error document (<Error><Code>...); strings owned or NULL. */
struct s3_error {
	char *code; /* "NoSuchBucket", "AccessDenied", ... */
	char *message;
	char *region; /* <Region>, the bucket's region hint */
};

/* Parses an error body: 0, -EBADMSG when it is no <Error> document,
 * -ENOMEM. On error *out is empty. */
int s3_error_parse(const char *xml, size_t len, struct s3_error *out)
	__attribute__((warn_unused_result));
void s3_error_release(struct s3_error *e);

/*
 * URI-encodes s as SigV4 canonical requests do: every byte but the
 * unreserved A-Z a-z 0-9 - . _ ~ as %XX (uppercase), and '/' kept when
 * keep_slash is set (object keys in paths). New string or NULL.
 */
char *s3_uri_encode(const char *s, bool keep_slash);

/*
 * Looks up key in section of an AWS shared config or credentials file
 * (INI: "[section]", "key = value", '#' and ';' comments; names compared
 * without case around spaces). Returns 0 with *out a new string, -ENOENT
 * when the key or section is not there (*found_section says whether the
 * section was), or the error of reading path. *out is wiped by the
 * caller when it is a secret.
 */
int s3_ini_get(const char *path, const char *section, const char *key,
	       char **out, bool *found_section)
	__attribute__((warn_unused_result));

#endif
