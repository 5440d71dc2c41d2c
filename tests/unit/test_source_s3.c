/*
 * test_source_s3: the s3:// source without a server. The ListObjectsV2
 * and error parsers, the SigV4 URI encoding and the AWS config reader are
 * pure; list() runs with engine_http wrapped (-Wl,--wrap=engine_http)
 * into canned pages, recording what each request carried (URL, SigV4
 * provider, key pair, session token header), and credentials come from
 * environment variables and temp files set by each test.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fetch/engine.h"
#include "fetch/sched.h"
#include "fetch/source.h"
#include "fetch/source_s3.h"
#include "state/manifest.h"

#define FAKE_ENGINE ((struct engine *)0x5353)
#define MAX_PAGES 8

/* The canned answers, one a request, and what the requests carried. */
static struct {
	long status;
	const char *body;
	const char *bucket_region;
	int err;
} pages[MAX_PAGES];
static int npages, nreq;
static char req_url[MAX_PAGES][1024];
static char req_sigv4[MAX_PAGES][128];
static char req_userpwd[MAX_PAGES][128];
static char req_auth[MAX_PAGES][256];

int __wrap_engine_http(struct engine *e, const struct http_req *req,
		       struct http_result *res);

int __wrap_engine_http(struct engine *e, const struct http_req *req,
		       struct http_result *res)
{
	int i = nreq++;

	assert_ptr_equal(e, FAKE_ENGINE);
	assert_true(i < npages);
	snprintf(req_url[i], sizeof(req_url[i]), "%s", req->url);
	snprintf(req_sigv4[i], sizeof(req_sigv4[i]), "%s",
		 req->aws_sigv4 ? req->aws_sigv4 : "");
	snprintf(req_userpwd[i], sizeof(req_userpwd[i]), "%s",
		 req->userpwd ? req->userpwd : "");
	snprintf(req_auth[i], sizeof(req_auth[i]), "%s",
		 req->auth ? req->auth : "");
	memset(res, 0, sizeof(*res));
	res->content_length = -1;
	res->linked_size = -1;
	res->status = pages[i].status;
	res->err = pages[i].err;
	res->url = strdup(req->url);
	if (pages[i].body) {
		res->body = strdup(pages[i].body);
		res->body_len = strlen(pages[i].body);
	}
	if (pages[i].bucket_region)
		res->bucket_region = strdup(pages[i].bucket_region);
	return res->err;
}

static void fake_reset(void)
{
	memset(pages, 0, sizeof(pages));
	npages = nreq = 0;
}

static void fake_page(long status, const char *body, int err)
{
	pages[npages].status = status;
	pages[npages].body = body;
	pages[npages].err = err;
	npages++;
}

static const char page1[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
	"<ListBucketResult xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
	"<Name>bkt</Name><Prefix>m/</Prefix><KeyCount>3</KeyCount>"
	"<MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated>"
	"<NextContinuationToken>1/a+b=</NextContinuationToken>"
	"<Contents><Key>m/a.bin</Key><LastModified>2024-05-01T10:20:30.000Z"
	"</LastModified><ETag>&quot;0123456789abcdef0123456789abcdef&quot;"
	"</ETag><Size>10</Size><StorageClass>STANDARD</StorageClass>"
	"</Contents>"
	"<Contents><Key>m/sub/dir/b c.bin</Key><ETag>\"ffee-3\"</ETag>"
	"<Size>31457280</Size></Contents>"
	"<Contents><Key>m/sub/</Key><Size>0</Size></Contents>"
	"</ListBucketResult>";

static const char page2[] =
	"<ListBucketResult><IsTruncated>false</IsTruncated>"
	"<Contents><Key>m/bad//name</Key><ETag>\"e1\"</ETag><Size>1</Size>"
	"</Contents>"
	"<Contents><Key>m/../escape</Key><ETag>\"e2\"</ETag><Size>1</Size>"
	"</Contents>"
	"<Contents><Key>m/z.txt</Key><ETag>\"e3\"</ETag><Size>3</Size>"
	"</Contents></ListBucketResult>";

/* ---- parsers ----------------------------------------------------------- */

static void test_list_parse_page(void **state)
{
	struct s3_list l;

	(void)state;
	assert_int_equal(s3_list_parse(page1, strlen(page1), &l), 0);
	assert_int_equal(l.n, 3);
	assert_true(l.truncated);
	assert_string_equal(l.next_token, "1/a+b=");
	assert_string_equal(l.objs[0].key, "m/a.bin");
	assert_int_equal(l.objs[0].size, 10);
	assert_string_equal(l.objs[0].etag,
			    "\"0123456789abcdef0123456789abcdef\"");
	assert_int_equal(l.objs[0].mtime, 1714558830);
	/* A multipart ETag is kept as it is: an identity, not an MD5. */
	assert_string_equal(l.objs[1].etag, "\"ffee-3\"");
	assert_int_equal(l.objs[1].size, 31457280);
	assert_int_equal(l.objs[1].mtime, 0);
	assert_null(l.objs[2].etag);
	s3_list_release(&l);
}

static void test_list_parse_rejects(void **state)
{
	static const char *bad[] = {
		"",
		"not xml at all",
		"<Error><Code>NoSuchBucket</Code></Error>",
		"<ListBucketResult><Contents><Size>1</Size></Contents>"
		"</ListBucketResult>",
		"<ListBucketResult><Contents><Key>a</Key></Contents>"
		"</ListBucketResult>",
		"<ListBucketResult><Contents><Key>a</Key><Size>-1</Size>"
		"</Contents></ListBucketResult>",
		"<ListBucketResult><Contents><Key>a</Key>"
		"<Size>99999999999999999999</Size></Contents>"
		"</ListBucketResult>",
		"<ListBucketResult><IsTruncated>true</IsTruncated>"
		"</ListBucketResult>",
		"<ListBucketResult><Contents><Key>a</Key><Size>1",
	};
	struct s3_list l;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(s3_list_parse(bad[i], strlen(bad[i]), &l),
				 -EBADMSG);
		assert_null(l.objs);
		assert_int_equal(l.n, 0);
	}
}

static void test_list_parse_no_doctype(void **state)
{
	/* A DOCTYPE (entities: external files, or "billion laughs" that
	 * expand when read) is refused outright: S3 never sends one. */
	static const char *docs[] = {
		"<?xml version=\"1.0\"?><!DOCTYPE r [<!ENTITY x SYSTEM "
		"\"file:///etc/passwd\">]><ListBucketResult><Contents>"
		"<Key>a&x;</Key><Size>1</Size></Contents>"
		"</ListBucketResult>",
		"<!DOCTYPE r [<!ENTITY a \"aaaaaaaaaa\"><!ENTITY b "
		"\"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">]><ListBucketResult>"
		"<Contents><Key>&b;</Key><Size>1</Size></Contents>"
		"</ListBucketResult>",
	};
	struct s3_list l;
	struct s3_error e;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(docs) / sizeof(docs[0]); i++)
		assert_int_equal(s3_list_parse(docs[i], strlen(docs[i]), &l),
				 -EBADMSG);
	assert_int_equal(s3_error_parse("<!DOCTYPE e><Error/>", 20, &e),
			 -EBADMSG);
}

static void test_error_parse(void **state)
{
	static const char body[] =
		"<?xml version=\"1.0\"?><Error><Code>"
		"AuthorizationHeaderMalformed</Code><Message>the region "
		"'us-east-1' is wrong; expecting 'eu-west-1'</Message>"
		"<Region>eu-west-1</Region></Error>";
	struct s3_error e;

	(void)state;
	assert_int_equal(s3_error_parse(body, strlen(body), &e), 0);
	assert_string_equal(e.code, "AuthorizationHeaderMalformed");
	assert_string_equal(e.region, "eu-west-1");
	assert_non_null(strstr(e.message, "expecting"));
	s3_error_release(&e);
	assert_int_equal(s3_error_parse("<a/>", 4, &e), -EBADMSG);
	assert_int_equal(s3_error_parse(NULL, 0, &e), -EBADMSG);
}

static void test_uri_encode(void **state)
{
	char *s;

	(void)state;
	s = s3_uri_encode("a b/c+d=~._-\xc3\xa9", true);
	assert_string_equal(s, "a%20b/c%2Bd%3D~._-%C3%A9");
	free(s);
	s = s3_uri_encode("1/a+b=", false);
	assert_string_equal(s, "1%2Fa%2Bb%3D");
	free(s);
}

static char tmpdir[64];

static void write_file(const char *name, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int fx_setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_s3.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
	unsetenv("AWS_SESSION_TOKEN");
	unsetenv("AWS_PROFILE");
	unsetenv("AWS_REGION");
	unsetenv("AWS_DEFAULT_REGION");
	unsetenv("AWS_ENDPOINT_URL");
	unsetenv("AWS_ENDPOINT_URL_S3");
	setenv("HOME", tmpdir, 1);
	setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/credentials", 1);
	setenv("AWS_CONFIG_FILE", "/nonexistent/config", 1);
	fake_reset();
	return 0;
}

static int fx_teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static void test_ini_get(void **state)
{
	char path[256], *v;
	bool found;

	(void)state;
	write_file("creds", "# comment\n[default]\naws_access_key_id=D\n"
			    "  [ other ]  \n ; c\n AWS_Secret_Access_Key = "
			    "s e c \r\nregion=x\n");
	snprintf(path, sizeof(path), "%s/creds", tmpdir);
	assert_int_equal(s3_ini_get(path, "other", "aws_secret_access_key", &v,
				    &found),
			 0);
	assert_string_equal(v, "s e c");
	assert_true(found);
	free(v);
	assert_int_equal(s3_ini_get(path, "other", "aws_access_key_id", &v,
				    &found),
			 -ENOENT);
	assert_true(found);
	assert_int_equal(s3_ini_get(path, "none", "region", &v, &found),
			 -ENOENT);
	assert_false(found);
	assert_int_equal(s3_ini_get("/nonexistent/x", "a", "b", &v, &found),
			 -ENOENT);
}

/* ---- the source -------------------------------------------------------- */

static int open_s3(const char *spec, const char *endpoint,
		   const struct source_option *opts, size_t nopts,
		   struct source **src, char *err, size_t errlen)
{
	struct source_opts o = {
		.endpoint = endpoint,
		.env = true,
		.options = opts,
		.noptions = nopts,
	};

	return source_open(spec, &o, src, err, errlen);
}

static struct manifest *list_ok(struct source *src)
{
	struct manifest *m = NULL;
	char err[512] = "";
	bool saved;

	assert_int_equal(source_snapshot(src, FAKE_ENGINE, NULL, false, &m,
					 &saved, err, sizeof(err)),
			 0);
	assert_false(saved);
	return m;
}

static void test_list_two_pages_path_style(void **state)
{
	static const struct source_option opts[] = { { "region",
						       "eu-central-1" } };
	struct fblob_target t;
	struct source *src = NULL;
	struct manifest *m;
	char err[512], id[512];
	uint64_t idx;

	(void)state;
	setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "SECRET", 1);
	setenv("AWS_SESSION_TOKEN", "TOK", 1);
	assert_int_equal(open_s3("s3://bkt/m", "http://127.0.0.1:9/", opts, 1,
				 &src, err, sizeof(err)),
			 0);
	fake_page(200, page1, 0);
	fake_page(200, page2, 0);
	m = list_ok(src);
	assert_int_equal(nreq, 2);
	/* Path style for a custom endpoint; parameters in sorted order. */
	assert_string_equal(req_url[0],
			    "http://127.0.0.1:9/bkt"
			    "?list-type=2&max-keys=1000&prefix=m%2F");
	assert_string_equal(req_url[1],
			    "http://127.0.0.1:9/bkt"
			    "?continuation-token=1%2Fa%2Bb%3D&list-type=2&"
			    "max-keys=1000&prefix=m%2F");
	assert_string_equal(req_sigv4[0], "aws:amz:eu-central-1:s3");
	assert_string_equal(req_userpwd[1], "AKID:SECRET");
	assert_string_equal(req_auth[0], "x-amz-security-token: TOK");
	/* 3 files (2 bad keys skipped), sub/ and sub/dir folders. */
	assert_int_equal(manifest_file_count(m), 3);
	assert_int_equal(manifest_find(m, "sub/dir/b c.bin", &idx), 0);
	source_target(src, m, idx, &t, id, sizeof(id));
	assert_string_equal(t.url,
			    "http://127.0.0.1:9/bkt/m/sub/dir/b%20c.bin");
	assert_string_equal(t.etag, "\"ffee-3\"");
	assert_true(t.if_match);
	assert_null(t.hash_kind); /* a multipart ETag is no MD5 */
	assert_string_equal(t.aws_sigv4, "aws:amz:eu-central-1:s3");
	assert_string_equal(t.userpwd, "AKID:SECRET");
	assert_string_equal(t.auth, "x-amz-security-token: TOK");
	assert_int_equal(manifest_find(m, "bad", &idx), -ENOENT);
	manifest_free(m);
	source_free(src);
}

static void test_virtual_hosted_anonymous(void **state)
{
	struct source *src = NULL;
	struct manifest *m;
	char err[512];

	(void)state;
	assert_int_equal(
		open_s3("s3://pub", NULL, NULL, 0, &src, err, sizeof(err)), 0);
	fake_page(200, "<ListBucketResult/>", 0);
	m = list_ok(src);
	assert_string_equal(req_url[0], "https://pub.s3.us-east-1.amazonaws."
					"com/?list-type=2&max-keys=1000");
	assert_string_equal(req_sigv4[0], "");
	assert_string_equal(req_userpwd[0], "");
	manifest_free(m);
	source_free(src);
}

static void test_profile_and_region_hint(void **state)
{
	static const char hint[] =
		"<Error><Code>AuthorizationHeaderMalformed</Code>"
		"<Region>ap-south-1</Region></Error>";
	struct source *src = NULL;
	struct manifest *m;
	char path[256], err[512];

	(void)state;
	write_file("credentials", "[dev]\naws_access_key_id = PK\n"
				  "aws_secret_access_key = PS\n");
	write_file("config", "[profile dev]\nregion = us-west-2\n");
	snprintf(path, sizeof(path), "%s/credentials", tmpdir);
	setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1);
	snprintf(path, sizeof(path), "%s/config", tmpdir);
	setenv("AWS_CONFIG_FILE", path, 1);
	setenv("AWS_PROFILE", "dev", 1);
	assert_int_equal(
		open_s3("s3://b", NULL, NULL, 0, &src, err, sizeof(err)), 0);
	fake_page(400, hint, -EPROTO);
	fake_page(200, "<ListBucketResult/>", 0);
	m = list_ok(src);
	assert_string_equal(req_sigv4[0], "aws:amz:us-west-2:s3");
	assert_string_equal(req_userpwd[0], "PK:PS");
	assert_string_equal(req_url[1], "https://b.s3.ap-south-1.amazonaws."
					"com/?list-type=2&max-keys=1000");
	assert_string_equal(req_sigv4[1], "aws:amz:ap-south-1:s3");
	manifest_free(m);
	source_free(src);
}

static void list_fails(long status, const char *body, int err_in, int rc,
		       const char *want)
{
	struct source *src = NULL;
	struct manifest *m = NULL;
	char err[512] = "";
	bool saved;

	assert_int_equal(open_s3("s3://bkt", "http://127.0.0.1:9", NULL, 0,
				 &src, err, sizeof(err)),
			 0);
	fake_reset();
	fake_page(status, body, err_in);
	assert_int_equal(source_snapshot(src, FAKE_ENGINE, NULL, false, &m,
					 &saved, err, sizeof(err)),
			 rc);
	assert_null(m);
	if (!strstr(err, want))
		fail_msg("'%s' does not say '%s'", err, want);
	assert_null(strchr(err, '\n'));
	assert_null(strstr(err, "SECRET"));
	source_free(src);
}

static void test_errors(void **state)
{
	(void)state;
	list_fails(404,
		   "<Error><Code>NoSuchBucket</Code><Message>x</Message>"
		   "</Error>",
		   -ENOENT, -ENOENT, "bucket 'bkt' does not exist");
	list_fails(403, "<Error><Code>AccessDenied</Code></Error>", -EACCES,
		   -EACCES,
		   "access denied (HTTP 403 AccessDenied) with no "
		   "credentials (anonymous)");
	setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "SECRET", 1);
	list_fails(403, "<Error><Code>AccessDenied</Code></Error>", -EACCES,
		   -EACCES,
		   "with the credentials of the environment "
		   "(AWS_ACCESS_KEY_ID)");
	list_fails(403, "<Error><Code>SignatureDoesNotMatch</Code></Error>",
		   -EACCES, -EACCES, "check the secret key and the clock");
	list_fails(403, "<Error><Code>InvalidAccessKeyId</Code></Error>",
		   -EACCES, -EACCES, "does not know the access key id");
	list_fails(0, NULL, -ECONNREFUSED, -ECONNREFUSED,
		   "unreachable (Connection refused) and no snapshot");
	list_fails(200, "<html/>", 0, -EBADMSG,
		   "is not a ListObjectsV2 result");
	list_fails(301, "<Error><Code>PermanentRedirect</Code></Error>",
		   -EPROTO, -EPROTO, "set -o region=");
}

static void open_fails(const char *spec, const char *endpoint,
		       const struct source_option *opts, size_t nopts, int rc,
		       const char *want)
{
	struct source *src = NULL;
	char err[512] = "";

	assert_int_equal(open_s3(spec, endpoint, opts, nopts, &src, err,
				 sizeof(err)),
			 rc);
	assert_null(src);
	if (!strstr(err, want))
		fail_msg("'%s' does not say '%s'", err, want);
}

static void test_open_errors(void **state)
{
	static const struct source_option ps[] = { { "s3_path_style", "2" } };
	static const struct source_option hf[] = { { "hf_cache", "/x" } };
	struct source_opts o = { .token = "t", .env = true };
	struct source *src = NULL;
	char err[512] = "";

	(void)state;
	open_fails("s3://", NULL, NULL, 0, -EINVAL, "no bucket");
	open_fails("s3://a b/x", NULL, NULL, 0, -EINVAL, "bad bucket name");
	open_fails("s3://b/x/../y", NULL, NULL, 0, -EINVAL, "'..'");
	open_fails("s3://b", NULL, ps, 1, -EINVAL, "expected 0 or 1");
	open_fails("s3://b", "ftp://x", NULL, 0, -EINVAL, "option endpoint");
	open_fails("s3://b", NULL, hf, 1, -ENOPROTOOPT, "hf_cache");
	setenv("AWS_ACCESS_KEY_ID", "AKID", 1);
	open_fails("s3://b", NULL, NULL, 0, -EINVAL, "partial credentials");
	unsetenv("AWS_ACCESS_KEY_ID");
	setenv("AWS_PROFILE", "nope", 1);
	open_fails("s3://b", NULL, NULL, 0, -ENOENT, "profile 'nope'");
	unsetenv("AWS_PROFILE");
	assert_int_equal(source_open("s3://b", &o, &src, err, sizeof(err)),
			 -EINVAL);
	assert_non_null(strstr(err, "token_file"));
}

static void test_region_option_refused_elsewhere(void **state)
{
	static const struct source_option r[] = { { "region", "x" } };
	struct source_opts o = { .options = r, .noptions = 1 };
	struct source *src = NULL;
	char err[512] = "";

	(void)state;
	assert_int_equal(source_open("http://127.0.0.1/x/", &o, &src, err,
				     sizeof(err)),
			 -ENOPROTOOPT);
	assert_non_null(strstr(err, "only s3:// sources"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_list_parse_page),
		cmocka_unit_test(test_list_parse_rejects),
		cmocka_unit_test(test_list_parse_no_doctype),
		cmocka_unit_test(test_error_parse),
		cmocka_unit_test(test_uri_encode),
		cmocka_unit_test_setup_teardown(test_ini_get, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_list_two_pages_path_style,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_virtual_hosted_anonymous,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_profile_and_region_hint,
						fx_setup, fx_teardown),
		cmocka_unit_test_setup_teardown(test_errors, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(test_open_errors, fx_setup,
						fx_teardown),
		cmocka_unit_test_setup_teardown(
			test_region_option_refused_elsewhere, fx_setup,
			fx_teardown),
	};

	return cmocka_run_group_tests_name("source_s3", tests, NULL, NULL);
}
