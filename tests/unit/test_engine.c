/*
 * test_engine.c: fetch/engine.c against the real test server.
 *
 * The group setup starts scripts/testserver.py on 127.0.0.1, port 0, over
 * a temp folder (and a fake Hub repo for Link headers), and reads the port
 * back from its port file, as tests/integration/conftest.py does. Each
 * test sets the server's faults (faults.json, re-read by the server on
 * change) and checks what the engine did both through its API and through
 * the server's JSON-lines access log (which Authorization header reached
 * which host, how many tries were made).
 *
 * Plain requests go through engine_http(); blob transfers through a
 * scheduler over a temp cache (sched_open + sched_wait), as a FUSE read
 * would drive them.
 *
 * The server's python3 and script come from the environment
 * (HOLLOWFS_PYTHON, HOLLOWFS_TESTSERVER), set by tests/unit/meson.build,
 * or from the defines it passes. Without them the test is skipped
 * (exit 77), never passed. HOLLOWFS_KEEP_TMP=1 keeps the temp folder
 * (server log, stderr) for a post-mortem.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "fetch/engine.h"
#include "fetch/sched.h"
#include "state/cache.h"
#include "state/hlog.h"

#ifndef TESTSERVER_PYTHON
#define TESTSERVER_PYTHON ""
#endif
#ifndef TESTSERVER_SCRIPT
#define TESTSERVER_SCRIPT ""
#endif

#define CHUNK (64u << 10)
#define BIG_SIZE (16 * CHUNK + 100) /* 17 chunks, the last one short */
#define SMALL "hello from the test server\n"
#define TOKEN "Authorization: Bearer hf_test_token"
#define COMMIT "0123456789abcdef0123456789abcdef01234567"

extern char **environ;

/* ---- the server ------------------------------------------------------- */

struct server {
	char dir[PATH_MAX]; /* temp folder: root/, hub/, logs */
	char faults[PATH_MAX + 16];
	char log[PATH_MAX + 16];
	char url[64]; /* http://127.0.0.1:PORT */
	int port;
	pid_t pid;
};

static struct server srv;
static FILE *hlog_file; /* the engine's log lines */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

static int write_file(const char *path, const void *buf, size_t len)
{
	FILE *f = fopen(path, "wb");
	int err = 0;

	if (!f)
		return -errno;
	if (len && fwrite(buf, 1, len, f) != len)
		err = -EIO;
	if (fclose(f) && !err)
		err = -EIO;
	return err;
}

static int write_fmt(const char *path, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int write_fmt(const char *path, const char *fmt, ...)
{
	char *text = NULL;
	va_list ap;
	int n, err;

	va_start(ap, fmt);
	n = vasprintf(&text, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -ENOMEM;
	err = write_file(path, text, (size_t)n);
	free(text);
	return err;
}

/* The byte at off of big.bin: not periodic in chunks, so a shifted
 * range shows. */
static uint8_t big_byte(uint64_t off)
{
	return (uint8_t)((off * 7 + off / 251) & 0xff);
}

static int make_tree(void)
{
	char path[PATH_MAX + 64];
	uint8_t *big = malloc(BIG_SIZE);
	int err;

	if (!big)
		return -ENOMEM;
	for (uint64_t i = 0; i < BIG_SIZE; i++)
		big[i] = big_byte(i);
	snprintf(path, sizeof(path), "%s/root", srv.dir);
	if (mkdir(path, 0700) < 0) {
		free(big);
		return -errno;
	}
	snprintf(path, sizeof(path), "%s/root/big.bin", srv.dir);
	err = write_file(path, big, BIG_SIZE);
	free(big);
	if (err)
		return err;
	snprintf(path, sizeof(path), "%s/root/small.txt", srv.dir);
	err = write_file(path, SMALL, strlen(SMALL));
	if (err)
		return err;

	/* A fake Hub repo of two files, one per /tree page. */
	snprintf(path, sizeof(path), "%s/hub/models/o/n", srv.dir);
	for (char *p = strchr(path + strlen(srv.dir) + 1, '/'); p;
	     p = strchr(p + 1, '/')) {
		*p = '\0';
		mkdir(path, 0700);
		*p = '/';
	}
	if (mkdir(path, 0700) < 0)
		return -errno;
	snprintf(path, sizeof(path), "%s/hub/models/o/n/a.txt", srv.dir);
	err = write_file(path, "a\n", 2);
	snprintf(path, sizeof(path), "%s/hub/models/o/n/b.txt", srv.dir);
	if (!err)
		err = write_file(path, "b\n", 2);
	snprintf(path, sizeof(path), "%s/hub/models/o/n/hub.json", srv.dir);
	if (!err)
		err = write_fmt(path,
				"{\"revisions\": {\"main\": \"" COMMIT "\"},"
				" \"page_size\": 1, \"commits\": {\"" COMMIT
				"\": {\"files\": {\"a.txt\": {\"src\": "
				"\"a.txt\"}, \"b.txt\": {\"src\": "
				"\"b.txt\"}}}}}");
	return err;
}

/* Replaces the faults atomically: the server sees a new file. */
static void set_faults(const char *json)
{
	char tmp[PATH_MAX + 32];

	snprintf(tmp, sizeof(tmp), "%s.tmp", srv.faults);
	assert_int_equal(write_file(tmp, json, strlen(json)), 0);
	assert_int_equal(rename(tmp, srv.faults), 0);
}

static int server_start(const char *python, const char *script)
{
	char port_file[PATH_MAX + 16], root[PATH_MAX + 16], hub[PATH_MAX + 16];
	char errpath[PATH_MAX + 16];
	char *argv[] = {
		(char *)python, (char *)script,
		"--root",	root,
		"--hub",	hub,
		"--port-file",	port_file,
		"--faults",	srv.faults,
		"--log",	srv.log,
		"--secret",	"test-engine-secret",
		NULL,
	};
	posix_spawn_file_actions_t fa;
	uint64_t deadline;
	int err;

	snprintf(port_file, sizeof(port_file), "%s/port", srv.dir);
	snprintf(root, sizeof(root), "%s/root", srv.dir);
	snprintf(hub, sizeof(hub), "%s/hub", srv.dir);
	snprintf(errpath, sizeof(errpath), "%s/stderr", srv.dir);
	snprintf(srv.faults, sizeof(srv.faults), "%s/faults.json", srv.dir);
	snprintf(srv.log, sizeof(srv.log), "%s/access.log", srv.dir);
	err = write_file(srv.faults, "{}", 2);
	if (err)
		return err;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, errpath,
					 O_WRONLY | O_CREAT | O_TRUNC, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	err = -posix_spawn(&srv.pid, python, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (err)
		return err;

	deadline = now_ms() + 10000;
	while (now_ms() < deadline) {
		FILE *f = fopen(port_file, "r");
		int status;

		if (f) {
			int n = fscanf(f, "%d", &srv.port);

			fclose(f);
			if (n == 1 && srv.port > 0) {
				snprintf(srv.url, sizeof(srv.url),
					 "http://127.0.0.1:%d", srv.port);
				return 0;
			}
		}
		if (waitpid(srv.pid, &status, WNOHANG) == srv.pid) {
			fprintf(stderr, "testserver exited early, see %s\n",
				errpath);
			srv.pid = 0;
			return -ECHILD;
		}
		sleep_ms(20);
	}
	fprintf(stderr, "testserver did not start within 10 s\n");
	return -ETIMEDOUT;
}

static void server_stop(void)
{
	uint64_t deadline = now_ms() + 5000;
	int status;

	if (srv.pid <= 0)
		return;
	kill(srv.pid, SIGTERM);
	while (waitpid(srv.pid, &status, WNOHANG) != srv.pid) {
		if (now_ms() > deadline) {
			kill(srv.pid, SIGKILL);
			waitpid(srv.pid, &status, 0);
			break;
		}
		sleep_ms(20);
	}
	srv.pid = 0;
}

static int rm_one(const char *path, const struct stat *st, int flag,
		  struct FTW *ftw)
{
	return remove(path);
}

static int group_setup(void **state)
{
	const char *python = getenv("HOLLOWFS_PYTHON");
	const char *script = getenv("HOLLOWFS_TESTSERVER");
	const char *tmp = getenv("TMPDIR");

	if (!python || !*python)
		python = TESTSERVER_PYTHON;
	if (!script || !*script)
		script = TESTSERVER_SCRIPT;
	snprintf(srv.dir, sizeof(srv.dir), "%s/test_engine-XXXXXX",
		 tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(srv.dir))
		return -1;
	if (make_tree() || server_start(python, script))
		return -1;
	hlog_file = tmpfile();
	if (!hlog_file)
		return -1;
	hlog_set_sink(hlog_file, false);
	return 0;
}

static int group_teardown(void **state)
{
	const char *keep = getenv("HOLLOWFS_KEEP_TMP");

	server_stop();
	hlog_set_sink(NULL, false);
	if (hlog_file)
		fclose(hlog_file);
	if (keep && *keep == '1')
		fprintf(stderr, "test_engine: kept %s\n", srv.dir);
	else if (srv.dir[0])
		nftw(srv.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

/* ---- the access log --------------------------------------------------- */

/* Lines of the access log, as a JSON array (new reference). */
static json_t *access_log(void)
{
	json_t *all = json_array();
	FILE *f = fopen(srv.log, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	assert_non_null(all);
	if (!f)
		return all;
	while ((n = getline(&line, &cap, f)) > 0) {
		json_t *o;

		if (line[n - 1] != '\n')
			break; /* being written */
		o = json_loadb(line, (size_t)n, 0, NULL);
		if (o)
			json_array_append_new(all, o);
	}
	free(line);
	fclose(f);
	return all;
}

static size_t log_mark(void)
{
	json_t *all = access_log();
	size_t n = json_array_size(all);

	json_decref(all);
	return n;
}

/*
 * The entries after mark whose path is path, once there are at least
 * want of them (the server logs a request just after answering it), or
 * what there is after 3 s. New reference.
 */
static json_t *log_entries(size_t mark, const char *path, size_t want)
{
	uint64_t deadline = now_ms() + 3000;

	for (;;) {
		json_t *all = access_log(), *out = json_array();
		size_t i;

		for (i = mark; i < json_array_size(all); i++) {
			json_t *o = json_array_get(all, i);
			const char *p =
				json_string_value(json_object_get(o, "path"));

			if (p && !strcmp(p, path))
				json_array_append(out, o);
		}
		json_decref(all);
		if (json_array_size(out) >= want || now_ms() > deadline)
			return out;
		json_decref(out);
		sleep_ms(20);
	}
}

static const char *entry_str(json_t *log, size_t i, const char *key)
{
	return json_string_value(json_object_get(json_array_get(log, i), key));
}

static long entry_int(json_t *log, size_t i, const char *key)
{
	return (long)json_integer_value(
		json_object_get(json_array_get(log, i), key));
}

/* True when the engine's log so far contains needle. */
static bool hlogged(const char *needle)
{
	long size;
	char *buf;
	size_t n;
	bool found;

	fflush(hlog_file);
	fseek(hlog_file, 0, SEEK_END);
	size = ftell(hlog_file);
	assert_true(size >= 0);
	buf = malloc((size_t)size + 1);
	assert_non_null(buf);
	rewind(hlog_file);
	n = fread(buf, 1, (size_t)size, hlog_file);
	buf[n] = '\0';
	fseek(hlog_file, 0, SEEK_END);
	found = strstr(buf, needle) != NULL;
	free(buf);
	return found;
}

/* ---- plain requests --------------------------------------------------- */

struct fx {
	struct engine *e;
	struct cache *cache;
	struct sched *s;
	struct fblob *fb;
	char cache_dir[PATH_MAX + 32];
	size_t mark; /* access log entries before the test */
	char url[PATH_MAX];
};

/* The budget of the next fixture's engine, when a test needs its own. */
static int next_budget_ms;
static int next_retries = -1;

static void test_opts(struct engine_opts *o)
{
	engine_opts_default(o);
	o->connections = 4;
	o->connect_timeout_ms = 2000;
	o->stall_timeout_ms = 1000;
	o->retries = 3;
	o->backoff_ms = 20;
	o->max_wait_ms = 3000;
	if (next_budget_ms)
		o->budget_ms = next_budget_ms;
	if (next_retries >= 0)
		o->retries = next_retries;
	next_budget_ms = 0;
	next_retries = -1;
}

static int fx_setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));
	struct engine_opts o;

	if (!fx)
		return -1;
	set_faults("{}");
	test_opts(&o);
	if (engine_new(&o, &fx->e)) {
		free(fx);
		return -1;
	}
	fx->mark = log_mark();
	*state = fx;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *fx = *state;

	engine_free(fx->e);
	free(fx);
	set_faults("{}");
	return 0;
}

static const char *url_of(struct fx *fx, const char *path)
{
	snprintf(fx->url, sizeof(fx->url), "%s%s", srv.url, path);
	return fx->url;
}

static void test_http_get_and_head(void **state)
{
	struct fx *fx = *state;
	struct http_req req = { .url = url_of(fx, "/small.txt") };
	struct http_result res;

	assert_int_equal(engine_http(fx->e, &req, &res), 0);
	assert_int_equal(res.status, 200);
	assert_int_equal(res.body_len, strlen(SMALL));
	assert_memory_equal(res.body, SMALL, strlen(SMALL));
	assert_int_equal(res.content_length, (int64_t)strlen(SMALL));
	assert_non_null(res.etag);
	assert_non_null(res.last_modified);
	assert_null(res.link_next);
	http_result_release(&res);

	req.head = true;
	assert_int_equal(engine_http(fx->e, &req, &res), 0);
	assert_int_equal(res.status, 200);
	assert_int_equal(res.body_len, 0);
	assert_int_equal(res.content_length, (int64_t)strlen(SMALL));
	http_result_release(&res);
}

static void test_http_range(void **state)
{
	struct fx *fx = *state;
	struct http_req req = { .url = url_of(fx, "/big.bin"),
				.range_off = CHUNK + 10,
				.range_len = 1000 };
	struct http_result res;

	assert_int_equal(engine_http(fx->e, &req, &res), 0);
	assert_int_equal(res.status, 206);
	assert_int_equal(res.body_len, 1000);
	for (size_t i = 0; i < 1000; i++)
		if ((uint8_t)res.body[i] != big_byte(CHUNK + 10 + i))
			fail_msg("byte %zu of the range differs", i);
	http_result_release(&res);
}

/* A redirect on the same host keeps the token. */
static void test_http_redirect_same_host(void **state)
{
	struct fx *fx = *state;
	struct http_req req = { .url = url_of(fx, "/small.txt"),
				.auth = TOKEN };
	struct http_result res;
	json_t *a, *b;

	set_faults("{\"/small.txt\": {\"redirect\": \"relative\"}}");
	assert_int_equal(engine_http(fx->e, &req, &res), 0);
	assert_int_equal(res.status, 200);
	assert_memory_equal(res.body, SMALL, strlen(SMALL));
	assert_non_null(strstr(res.url, "/__rel/small.txt"));
	http_result_release(&res);

	a = log_entries(fx->mark, "/small.txt", 1);
	b = log_entries(fx->mark, "/__rel/small.txt", 1);
	assert_int_equal(json_array_size(a), 1);
	assert_int_equal(entry_int(a, 0, "status"), 302);
	assert_string_equal(entry_str(a, 0, "authorization"),
			    "Bearer hf_test_token");
	assert_int_equal(json_array_size(b), 1);
	assert_int_equal(entry_int(b, 0, "status"), 200);
	assert_string_equal(entry_str(b, 0, "authorization"),
			    "Bearer hf_test_token");
	json_decref(a);
	json_decref(b);
}

/* A redirect to another host name (the CDN) never carries the token. */
static void test_http_redirect_cross_host(void **state)
{
	struct fx *fx = *state;
	struct http_req req = { .url = url_of(fx, "/small.txt"),
				.auth = TOKEN };
	struct http_result res;
	char host[64];
	json_t *a, *b;

	set_faults("{\"/small.txt\": {\"redirect\": \"cdn\"}}");
	assert_int_equal(engine_http(fx->e, &req, &res), 0);
	assert_int_equal(res.status, 200);
	assert_memory_equal(res.body, SMALL, strlen(SMALL));
	assert_true(!strncmp(res.url, "http://localhost:", 17));
	http_result_release(&res);

	a = log_entries(fx->mark, "/small.txt", 1);
	b = log_entries(fx->mark, "/__cdn/small.txt", 1);
	assert_int_equal(json_array_size(a), 1);
	assert_string_equal(entry_str(a, 0, "authorization"),
			    "Bearer hf_test_token");
	assert_int_equal(json_array_size(b), 1);
	assert_int_equal(entry_int(b, 0, "status"), 200);
	snprintf(host, sizeof(host), "localhost:%d", srv.port);
	assert_string_equal(entry_str(b, 0, "host"), host);
	assert_false(
		json_is_true(json_object_get(json_array_get(b, 0), "auth")));
	assert_null(entry_str(b, 0, "authorization"));
	json_decref(a);
	json_decref(b);
}

/* SigV4 (s3://): libcurl signs requests to the origin, with the payload
 * hash S3 requires; the CDN a redirect leads to gets no signature. */
static void test_http_sigv4_origin_only(void **state)
{
	struct fx *fx = *state;
	struct http_req req = { .url = url_of(fx, "/small.txt"),
				.aws_sigv4 = "aws:amz:eu-west-1:s3",
				.userpwd = "AKIDEXAMPLE:secret" };
	struct http_result res;
	const char *sig;
	json_t *a, *b;

	set_faults("{\"/small.txt\": {\"redirect\": \"cdn\"}}");
	assert_int_equal(engine_http(fx->e, &req, &res), 0);
	assert_int_equal(res.status, 200);
	http_result_release(&res);

	a = log_entries(fx->mark, "/small.txt", 1);
	b = log_entries(fx->mark, "/__cdn/small.txt", 1);
	assert_int_equal(json_array_size(a), 1);
	sig = entry_str(a, 0, "authorization");
	assert_non_null(sig);
	assert_true(
		!strncmp(sig, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/", 40));
	assert_non_null(strstr(sig, "/eu-west-1/s3/aws4_request"));
	assert_non_null(strstr(sig, "x-amz-content-sha256"));
	assert_null(strstr(sig, "secret"));
	assert_int_equal(json_array_size(b), 1);
	assert_null(entry_str(b, 0, "authorization"));
	json_decref(a);
	json_decref(b);
}

static void test_http_retry_500_then_ok(void **state)
{
	struct fx *fx = *state;
	struct http_req req = { .url = url_of(fx, "/small.txt") };
	struct engine_stats st0, st1;
	struct http_result res;
	json_t *log;

	set_faults("{\"/small.txt\": {\"status\": 500, \"count\": 2}}");
	engine_get_stats(fx->e, &st0);
	assert_int_equal(engine_http(fx->e, &req, &res), 0);
	assert_int_equal(res.status, 200);
	assert_memory_equal(res.body, SMALL, strlen(SMALL));
	http_result_release(&res);
	engine_get_stats(fx->e, &st1);
	assert_int_equal(st1.retries - st0.retries, 2);

	log = log_entries(fx->mark, "/small.txt", 3);
	assert_int_equal(json_array_size(log), 3);
	assert_int_equal(entry_int(log, 0, "status"), 500);
	assert_int_equal(entry_int(log, 1, "status"), 500);
	assert_int_equal(entry_int(log, 2, "status"), 200);
	json_decref(log);
}

static void test_http_retries_run_out(void **state)
{
	struct fx *fx = *state;
	struct http_req req = { .url = url_of(fx, "/small.txt") };
	struct http_result res;
	json_t *log;

	set_faults("{\"/small.txt\": {\"status\": 502}}");
	assert_int_equal(engine_http(fx->e, &req, &res), -EIO);
	assert_int_equal(res.status, 502);
	http_result_release(&res);
	log = log_entries(fx->mark, "/small.txt", 4);
	assert_int_equal(json_array_size(log), 4); /* 1 + retries */
	json_decref(log);
}

/* 429 with Retry-After: 1 waits a second, not the 20 ms backoff. */
static void test_http_429_retry_after(void **state)
{
	struct fx *fx = *state;
	struct http_req req = { .url = url_of(fx, "/small.txt") };
	struct http_result res;
	uint64_t t0 = now_ms(), dt;
	json_t *log;

	set_faults("{\"/small.txt\": {\"status\": 429, \"retry_after\": 1,"
		   " \"count\": 1}}");
	assert_int_equal(engine_http(fx->e, &req, &res), 0);
	dt = now_ms() - t0;
	assert_int_equal(res.status, 200);
	http_result_release(&res);
	if (dt < 900)
		fail_msg("retried after %" PRIu64 " ms, before Retry-After",
			 dt);
	log = log_entries(fx->mark, "/small.txt", 2);
	assert_int_equal(json_array_size(log), 2);
	assert_int_equal(entry_int(log, 0, "status"), 429);
	assert_int_equal(entry_int(log, 1, "status"), 200);
	json_decref(log);
}

/* 503 with an exhausted RateLimit: waits t + 1 seconds. */
static void test_http_503_ratelimit(void **state)
{
	struct fx *fx = *state;
	struct http_req req = { .url = url_of(fx, "/small.txt") };
	struct http_result res;
	uint64_t t0 = now_ms(), dt;

	set_faults("{\"/small.txt\": {\"status\": 503, \"ratelimit\":"
		   " \"\\\"api\\\";r=0;t=0\", \"count\": 1}}");
	assert_int_equal(engine_http(fx->e, &req, &res), 0);
	dt = now_ms() - t0;
	assert_int_equal(res.status, 200);
	http_result_release(&res);
	if (dt < 900)
		fail_msg("retried after %" PRIu64 " ms, before the reset", dt);
}

static void test_http_404_not_retried(void **state)
{
	struct fx *fx = *state;
	struct http_req req = { .url = url_of(fx, "/missing.txt") };
	struct http_result res;
	json_t *log;

	assert_int_equal(engine_http(fx->e, &req, &res), -ENOENT);
	assert_int_equal(res.status, 404);
	http_result_release(&res);
	sleep_ms(200); /* a retry would be logged by now */
	log = log_entries(fx->mark, "/missing.txt", 1);
	assert_int_equal(json_array_size(log), 1);
	json_decref(log);
}

static void test_http_link_next(void **state)
{
	struct fx *fx = *state;
	struct http_req req = { .url = url_of(fx,
					      "/api/models/o/n/tree/main") };
	struct http_result res, res2;
	char prefix[128];
	char *next;

	assert_int_equal(engine_http(fx->e, &req, &res), 0);
	assert_int_equal(res.status, 200);
	assert_non_null(strstr(res.body, "a.txt"));
	assert_null(strstr(res.body, "b.txt"));
	assert_non_null(res.link_next);
	snprintf(prefix, sizeof(prefix), "%s/api/models/o/n/tree/main?",
		 srv.url);
	assert_true(!strncmp(res.link_next, prefix, strlen(prefix)));
	assert_non_null(strstr(res.link_next, "cursor="));

	/* The second and last page. */
	next = strdup(res.link_next);
	assert_non_null(next);
	http_result_release(&res);
	req.url = next;
	assert_int_equal(engine_http(fx->e, &req, &res2), 0);
	assert_int_equal(res2.status, 200);
	assert_non_null(strstr(res2.body, "b.txt"));
	assert_null(res2.link_next);
	http_result_release(&res2);
	free(next);
}

/* ---- blob transfers --------------------------------------------------- */

static int blob_setup(void **state)
{
	struct fx *fx;
	struct sched_opts so;
	struct fblob_target t = { .kind = "http",
				  .size = BIG_SIZE,
				  .name = "big.bin" };
	char url[128];

	if (fx_setup(state))
		return -1;
	fx = *state;
	snprintf(fx->cache_dir, sizeof(fx->cache_dir), "%s/cache-XXXXXX",
		 srv.dir);
	if (!mkdtemp(fx->cache_dir) || cache_new(fx->cache_dir, &fx->cache))
		return -1;
	sched_opts_default(&so);
	so.chunk_size = CHUNK;
	if (sched_new(&so, fx->cache, fx->e, &fx->s))
		return -1;
	snprintf(url, sizeof(url), "%s/big.bin", srv.url);
	t.url = url;
	t.content_id = url;
	t.etag = NULL;
	if (sched_open(fx->s, &t, &fx->fb))
		return -1;
	return 0;
}

static int blob_teardown(void **state)
{
	struct fx *fx = *state;

	engine_free(fx->e); /* first: no transfer may run */
	fx->e = NULL;
	fblob_put(fx->fb);
	sched_free(fx->s);
	cache_free(fx->cache);
	if (fx->cache_dir[0])
		nftw(fx->cache_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return fx_teardown(state);
}

/* Reopens fx->fb with an expected ETag and a token. */
static void reopen(struct fx *fx, const char *etag, const char *auth)
{
	struct fblob_target t = { .kind = "http",
				  .size = BIG_SIZE,
				  .name = "big.bin",
				  .etag = etag,
				  .auth = auth };
	char url[128];

	fblob_put(fx->fb);
	fx->fb = NULL;
	/* Another identity, so not the fblob already open. */
	snprintf(url, sizeof(url), "%s/big.bin", srv.url);
	t.url = url;
	t.content_id = "big.bin, reopened";
	assert_int_equal(sched_open(fx->s, &t, &fx->fb), 0);
}

static void check_chunks(struct fx *fx, uint64_t first, uint64_t last)
{
	int fd = fblob_data_fd(fx->fb);
	uint64_t off = first * CHUNK, end = (last + 1) * CHUNK;
	static uint8_t buf[CHUNK];

	if (end > BIG_SIZE)
		end = BIG_SIZE;
	assert_true(fblob_all_done(fx->fb, first, last));
	while (off < end) {
		size_t n = end - off < CHUNK ? (size_t)(end - off) : CHUNK;

		assert_int_equal(pread(fd, buf, n, (off_t)off), (ssize_t)n);
		for (size_t i = 0; i < n; i++)
			if (buf[i] != big_byte(off + i))
				fail_msg("byte %" PRIu64 " of the blob differs",
					 off + i);
		off += n;
	}
}

static void test_blob_whole_file(void **state)
{
	struct fx *fx = *state;

	assert_int_equal(sched_wait(fx->s, fx->fb, 0, 16, SCHED_DEMAND, 10000),
			 0);
	check_chunks(fx, 0, 16);
	assert_int_equal(fblob_error(fx->fb), 0);
	assert_int_equal(fblob_done_count(fx->fb), 17);
}

/* A 206 whose Content-Range is not the range asked for: no byte of it
 * lands, and the read fails after the retries. */
static void test_blob_content_range_mismatch(void **state)
{
	struct fx *fx = *state;
	json_t *log;
	int err;

	set_faults("{\"/big.bin\": {\"bad_content_range\": true}}");
	err = sched_wait(fx->s, fx->fb, 0, 0, SCHED_DEMAND, 10000);
	assert_int_equal(err, -EPROTO);
	assert_int_equal(fblob_done_count(fx->fb), 0);
	assert_true(hlogged("does not match the range asked for"));
	log = log_entries(fx->mark, "/big.bin", 4);
	assert_int_equal(json_array_size(log), 4);
	json_decref(log);

	/* A good server later: the chunk is fetched. */
	set_faults("{}");
	assert_int_equal(sched_wait(fx->s, fx->fb, 0, 0, SCHED_DEMAND, 10000),
			 0);
	check_chunks(fx, 0, 0);
}

/* The server's ETag changed: -ESTALE at once, the blob failed for good. */
static void test_blob_etag_changed(void **state)
{
	struct fx *fx = *state;
	json_t *log;

	reopen(fx, "\"v1\"", NULL);
	set_faults("{\"/big.bin\": {\"etag\": \"v2\"}}");
	assert_int_equal(sched_wait(fx->s, fx->fb, 0, 1, SCHED_DEMAND, 10000),
			 -ESTALE);
	/* The blob failed before its waiters heard: at once, no poll. */
	assert_int_equal(fblob_error(fx->fb), -ESTALE);
	assert_int_equal(fblob_done_count(fx->fb), 0);
	assert_true(hlogged("changed on the server: ETag"));
	/* Not retried, and later wants fail without a request. */
	assert_int_equal(sched_wait(fx->s, fx->fb, 5, 5, SCHED_DEMAND, 10000),
			 -ESTALE);
	sleep_ms(200);
	log = log_entries(fx->mark, "/big.bin", 1);
	assert_int_equal(json_array_size(log), 1);
	json_decref(log);
}

/* The same ETag, weak and bare: not a change. */
static void test_blob_etag_same(void **state)
{
	struct fx *fx = *state;

	reopen(fx, "W/\"v1\"", NULL);
	set_faults("{\"/big.bin\": {\"etag\": \"v1\"}}");
	assert_int_equal(sched_wait(fx->s, fx->fb, 2, 3, SCHED_DEMAND, 10000),
			 0);
	check_chunks(fx, 2, 3);
}

/* Polls until every chunk of fx->fb is DONE, for up to timeout_ms. */
static bool wait_all_done(struct fx *fx, int timeout_ms)
{
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;

	while (fblob_done_count(fx->fb) < fblob_nchunks(fx->fb)) {
		if (now_ms() > deadline)
			return false;
		sleep_ms(10);
	}
	return true;
}

/* A 200 to a range request (the server ignores Range): the transfer
 * reads the file whole, once, completing every chunk it passes: the ones
 * asked for and all the others. */
static void test_blob_ignored_range(void **state)
{
	struct fx *fx = *state;
	struct engine_stats st0, st1;
	json_t *log;

	set_faults("{\"/big.bin\": {\"ignore_range\": true}}");
	engine_get_stats(fx->e, &st0);
	assert_int_equal(sched_wait(fx->s, fx->fb, 5, 6, SCHED_DEMAND, 10000),
			 0);
	check_chunks(fx, 5, 6);
	assert_true(wait_all_done(fx, 5000));
	check_chunks(fx, 0, 16);
	assert_true(hlogged("ignores Range: reading 'big.bin' whole, once"));
	engine_get_stats(fx->e, &st1);
	assert_int_equal(st1.bytes_fetched - st0.bytes_fetched, BIG_SIZE);
	assert_int_equal(st1.retries, st0.retries);
	log = log_entries(fx->mark, "/big.bin", 1);
	assert_int_equal(json_array_size(log), 1);
	assert_int_equal(entry_int(log, 0, "status"), 200);
	json_decref(log);
}

/* Many jobs of a blob at once, through a server that ignores Range: they
 * ride on one stream; no chunk is written twice. */
static void test_blob_ignored_range_jobs_ride(void **state)
{
	struct fx *fx = *state;
	struct engine_stats st0, st1;
	json_t *log;
	size_t i, n200 = 0;

	set_faults("{\"/big.bin\": {\"ignore_range\": true}}");
	engine_get_stats(fx->e, &st0);
	/* Queued together: the engine starts them before any answer. */
	assert_int_equal(sched_want(fx->s, fx->fb, 12, 15, SCHED_READAHEAD,
				    NULL, NULL, NULL),
			 0);
	assert_int_equal(sched_want(fx->s, fx->fb, 4, 7, SCHED_READAHEAD, NULL,
				    NULL, NULL),
			 0);
	assert_int_equal(sched_wait(fx->s, fx->fb, 0, 0, SCHED_DEMAND, 10000),
			 0);
	assert_true(wait_all_done(fx, 5000));
	check_chunks(fx, 0, 16);
	engine_get_stats(fx->e, &st1);
	assert_int_equal(st1.bytes_fetched - st0.bytes_fetched, BIG_SIZE);
	log = log_entries(fx->mark, "/big.bin", 1);
	for (i = 0; i < json_array_size(log); i++)
		n200 += entry_int(log, i, "status") == 200;
	/* One stream; the transfers that began with it were handed over. */
	assert_true(n200 >= 1 && n200 <= 3);
	json_decref(log);
}

/* A stream passes chunks that are DONE without writing them. */
static void test_blob_stream_skips_done(void **state)
{
	struct fx *fx = *state;
	struct engine_stats st0, st1;

	assert_int_equal(sched_wait(fx->s, fx->fb, 0, 3, SCHED_DEMAND, 10000),
			 0);
	set_faults("{\"/big.bin\": {\"ignore_range\": true}}");
	engine_get_stats(fx->e, &st0);
	assert_int_equal(sched_wait(fx->s, fx->fb, 8, 8, SCHED_DEMAND, 10000),
			 0);
	assert_true(wait_all_done(fx, 5000));
	check_chunks(fx, 0, 16);
	engine_get_stats(fx->e, &st1);
	assert_int_equal(st1.bytes_fetched - st0.bytes_fetched,
			 BIG_SIZE - 4 * CHUNK);
}

/* Bodies that are not the file's bytes never land, and are not asked
 * for again: an encoded 206, an encoded (chunked) 200, a 200 of unknown
 * length. */
static void check_refused(struct fx *fx, const char *faults, const char *why)
{
	json_t *log;

	set_faults(faults);
	assert_int_equal(sched_wait(fx->s, fx->fb, 2, 3, SCHED_DEMAND, 10000),
			 -EPROTO);
	assert_int_equal(fblob_done_count(fx->fb), 0);
	if (!hlogged(why))
		fail_msg("no log line with \"%s\"", why);
	sleep_ms(200); /* a retry would be logged by now */
	log = log_entries(fx->mark, "/big.bin", 1);
	assert_int_equal(json_array_size(log), 1);
	json_decref(log);
}

static void test_blob_gzip_206_refused(void **state)
{
	check_refused(*state, "{\"/big.bin\": {\"force_gzip\": \"206\"}}",
		      "HTTP 206 with Content-Encoding 'gzip': an encoded body "
		      "is never stored");
}

static void test_blob_gzip_200_refused(void **state)
{
	check_refused(*state, "{\"/big.bin\": {\"force_gzip\": \"200\"}}",
		      "HTTP 200 with Content-Encoding 'gzip'");
}

static void test_blob_unsized_200_refused(void **state)
{
	check_refused(*state, "{\"/big.bin\": {\"no_length\": true}}",
		      "HTTP 200 of unknown length to a range request: never "
		      "stored");
}

/* Legal short 206s: each is no failure, the rest is asked for at once. */
static void test_blob_short_answers(void **state)
{
	struct fx *fx = *state;
	struct engine_stats st0, st1;
	json_t *log;

	set_faults("{\"/big.bin\": {\"max_range\": 10000}}");
	engine_get_stats(fx->e, &st0);
	assert_int_equal(sched_wait(fx->s, fx->fb, 0, 16, SCHED_DEMAND, 20000),
			 0);
	check_chunks(fx, 0, 16);
	engine_get_stats(fx->e, &st1);
	assert_int_equal(st1.retries, st0.retries);
	log = log_entries(fx->mark, "/big.bin", BIG_SIZE / 10000);
	assert_true(json_array_size(log) >= BIG_SIZE / 10000);
	json_decref(log);
}

/* Cut connections that each land new bytes earn their retries: 3 retries,
 * yet a 4-chunk run (256 KiB) comes whole through cuts every 30 KB. */
static void test_blob_progress_earns_retries(void **state)
{
	struct fx *fx = *state;
	struct engine_stats st0, st1;

	set_faults("{\"/big.bin\": {\"drop_after\": 30000}}");
	engine_get_stats(fx->e, &st0);
	assert_int_equal(sched_wait(fx->s, fx->fb, 0, 3, SCHED_DEMAND, 20000),
			 0);
	check_chunks(fx, 0, 3);
	engine_get_stats(fx->e, &st1);
	assert_true(st1.retries - st0.retries > 3);
}

/* Cuts before any new byte do not: the retries run out. */
static void test_blob_no_progress_no_retries(void **state)
{
	struct fx *fx = *state;
	json_t *log;

	set_faults("{\"/big.bin\": {\"drop_after\": 0}}");
	assert_int_equal(sched_wait(fx->s, fx->fb, 0, 0, SCHED_DEMAND, 20000),
			 -ECONNRESET);
	log = log_entries(fx->mark, "/big.bin", 4);
	assert_int_equal(json_array_size(log), 4); /* 1 + retries */
	json_decref(log);
}

static int blob_setup_budget(void **state)
{
	next_budget_ms = 2500;
	next_retries = 50;
	return blob_setup(state);
}

/* A stalled transfer with retries to spare fails when its budget is
 * spent; asked again at once, it fails at once, without a request; a
 * moment later it is asked for again. */
static void test_blob_budget_bounds_a_stall(void **state)
{
	struct fx *fx = *state;
	uint64_t t0 = now_ms(), dt;
	size_t n;
	json_t *log;
	int err;

	set_faults("{\"/big.bin\": {\"stall\": true}}");
	err = sched_wait(fx->s, fx->fb, 0, 0, SCHED_DEMAND, 20000);
	dt = now_ms() - t0;
	assert_int_equal(err, -ETIMEDOUT);
	if (dt < 2400 || dt > 4000)
		fail_msg("failed after %" PRIu64 " ms, budget 2500", dt);
	assert_true(hlogged("budget"));
	log = log_entries(fx->mark, "/big.bin", 2);
	n = json_array_size(log);
	json_decref(log);

	t0 = now_ms();
	assert_int_equal(sched_wait(fx->s, fx->fb, 0, 0, SCHED_DEMAND, 20000),
			 -ETIMEDOUT);
	dt = now_ms() - t0;
	if (dt > 500)
		fail_msg("asked again: failed after %" PRIu64 " ms", dt);
	assert_true(hlogged("not asked again yet"));
	sleep_ms(300);
	log = log_entries(fx->mark, "/big.bin", n + 1);
	assert_int_equal(json_array_size(log), n);
	json_decref(log);

	sleep_ms(2000); /* FAIL_MEMORY_MS */
	set_faults("{}");
	assert_int_equal(sched_wait(fx->s, fx->fb, 0, 0, SCHED_DEMAND, 10000),
			 0);
	check_chunks(fx, 0, 0);
}

/* A trickle (200 bytes/s) beats the stall timer but not the low-speed
 * check: each try is cut, and the budget ends it. */
static void test_blob_trickle(void **state)
{
	struct fx *fx = *state;
	uint64_t t0 = now_ms(), dt;
	int err;

	set_faults("{\"/big.bin\": {\"rate\": 200}}");
	err = sched_wait(fx->s, fx->fb, 0, 0, SCHED_DEMAND, 20000);
	dt = now_ms() - t0;
	assert_int_equal(err, -ETIMEDOUT);
	if (dt > 4000)
		fail_msg("failed after %" PRIu64 " ms, budget 2500", dt);
	assert_true(hlogged("too slow: "));
	assert_int_equal(fblob_done_count(fx->fb), 0);
}

static int fx_setup_budget(void **state)
{
	next_budget_ms = 2500;
	next_retries = 50;
	return fx_setup(state);
}

/* A plain request (a listing) that stalls has the same budget. */
static void test_http_budget_bounds_a_stall(void **state)
{
	struct fx *fx = *state;
	struct http_req req = { .url = url_of(fx, "/") };
	struct http_result res;
	uint64_t t0 = now_ms(), dt;

	set_faults("{\"/\": {\"hang\": true}}");
	assert_int_equal(engine_http(fx->e, &req, &res), -ETIMEDOUT);
	dt = now_ms() - t0;
	http_result_release(&res);
	if (dt < 2400 || dt > 4000)
		fail_msg("failed after %" PRIu64 " ms, budget 2500", dt);
}

/* A 503 whose Retry-After goes past the budget fails now, not later. */
static void test_http_retry_after_past_budget(void **state)
{
	struct fx *fx = *state;
	struct http_req req = { .url = url_of(fx, "/small.txt") };
	struct http_result res;
	uint64_t t0 = now_ms(), dt;

	set_faults("{\"/small.txt\": {\"status\": 503, \"retry_after\": 3}}");
	assert_int_equal(engine_http(fx->e, &req, &res), -EAGAIN);
	dt = now_ms() - t0;
	http_result_release(&res);
	if (dt > 1000)
		fail_msg("failed after %" PRIu64 " ms", dt);
	assert_true(hlogged("would pass the 2 s budget"));
}

/* A redirect to file:// is refused: no local file is ever read. */
static void test_blob_redirect_to_file_refused(void **state)
{
	struct fx *fx = *state;
	char faults[PATH_MAX + 128];

	snprintf(faults, sizeof(faults),
		 "{\"/big.bin\": {\"location\": \"file://%s/root/big.bin\"}}",
		 srv.dir);
	set_faults(faults);
	assert_int_equal(sched_wait(fx->s, fx->fb, 0, 0, SCHED_DEMAND, 10000),
			 -EPROTO);
	assert_true(hlogged("refused: only http and https are followed"));
	assert_int_equal(fblob_done_count(fx->fb), 0);
}

/* ---- the disk-full fallback (sched_read_uncached) --------------------- */

struct uncached_wait {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	int err;
	size_t len;
	uint8_t buf[4096];
};

static void on_uncached(void *arg, int err, const char *buf, size_t len)
{
	struct uncached_wait *w = arg;

	pthread_mutex_lock(&w->lock);
	w->err = err;
	w->len = len;
	if (!err && len <= sizeof(w->buf))
		memcpy(w->buf, buf, len);
	w->done = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* Reads [off, off + len) uncached: 0 with the bytes checked, or the
 * error. */
static int read_uncached(struct fx *fx, uint64_t off, size_t len)
{
	struct uncached_wait w = { .done = false };
	int err;

	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cond, NULL);
	err = sched_read_uncached(fx->s, fx->fb, off, len, on_uncached, &w);
	if (!err) {
		pthread_mutex_lock(&w.lock);
		while (!w.done)
			pthread_cond_wait(&w.cond, &w.lock);
		pthread_mutex_unlock(&w.lock);
		err = w.err;
	}
	if (!err) {
		assert_int_equal(w.len, len);
		for (size_t i = 0; i < len; i++)
			if (w.buf[i] != big_byte(off + i))
				fail_msg("uncached byte %zu differs", i);
	}
	pthread_cond_destroy(&w.cond);
	pthread_mutex_destroy(&w.lock);
	return err;
}

/* The fallback checks what it serves as the cached path does. */
static void test_uncached_checks_the_server(void **state)
{
	struct fx *fx = *state;

	assert_int_equal(read_uncached(fx, CHUNK + 7, 4000), 0);
	set_faults("{\"/big.bin\": {\"bad_content_range\": true}}");
	assert_int_equal(read_uncached(fx, CHUNK + 7, 4000), -EPROTO);
	assert_true(hlogged("refused: another Content-Range"));
	set_faults("{\"/big.bin\": {\"ignore_range\": true}}");
	assert_int_equal(read_uncached(fx, CHUNK + 7, 4000), -EPROTO);
	assert_true(hlogged("refused: not a 206"));
	set_faults("{\"/big.bin\": {\"force_gzip\": \"206\"}}");
	assert_int_equal(read_uncached(fx, CHUNK + 7, 4000), -EPROTO);
	assert_true(hlogged("refused: an encoded body"));
	set_faults("{\"/big.bin\": {\"max_range\": 1000}}");
	assert_int_equal(read_uncached(fx, CHUNK + 7, 4000), -EPROTO);
	set_faults("{}");
	assert_int_equal(read_uncached(fx, 0, 4096), 0);
	assert_int_equal(fblob_done_count(fx->fb), 0); /* never cached */
	assert_int_equal(fblob_error(fx->fb), 0);
}

/* A changed ETag on the uncached path fails the blob, as when cached. */
static void test_uncached_etag_changed(void **state)
{
	struct fx *fx = *state;

	reopen(fx, "\"v1\"", NULL);
	set_faults("{\"/big.bin\": {\"etag\": \"v2\"}}");
	assert_int_equal(read_uncached(fx, 100, 1000), -ESTALE);
	assert_true(hlogged("refused: the ETag changed"));
	assert_int_equal(fblob_error(fx->fb), -ESTALE);
}

/* The connection drops mid-chunk: the transfer is retried and the blob
 * comes out whole. */
static void test_blob_drop_mid_chunk(void **state)
{
	struct fx *fx = *state;
	struct engine_stats st0, st1;
	json_t *log;

	set_faults("{\"/big.bin\": {\"drop_after\": 100000, \"count\": 1}}");
	engine_get_stats(fx->e, &st0);
	assert_int_equal(sched_wait(fx->s, fx->fb, 0, 3, SCHED_DEMAND, 10000),
			 0);
	check_chunks(fx, 0, 3);
	engine_get_stats(fx->e, &st1);
	assert_true(st1.retries > st0.retries);
	log = log_entries(fx->mark, "/big.bin", 2);
	assert_true(json_array_size(log) >= 2);
	json_decref(log);
}

/* Range GETs redirected to the CDN (another host name): the token goes to
 * the origin only, and the bytes land whole. */
static void test_blob_redirect_cdn_no_token(void **state)
{
	struct fx *fx = *state;
	json_t *origin, *cdn;
	size_t i;

	reopen(fx, NULL, TOKEN);
	set_faults("{\"/big.bin\": {\"redirect\": \"cdn\"}}");
	assert_int_equal(sched_wait(fx->s, fx->fb, 0, 16, SCHED_DEMAND, 10000),
			 0);
	check_chunks(fx, 0, 16);

	origin = log_entries(fx->mark, "/big.bin", 1);
	cdn = log_entries(fx->mark, "/__cdn/big.bin", 1);
	assert_true(json_array_size(origin) >= 1);
	assert_true(json_array_size(cdn) >= 1);
	for (i = 0; i < json_array_size(origin); i++) {
		assert_int_equal(entry_int(origin, i, "status"), 302);
		assert_string_equal(entry_str(origin, i, "authorization"),
				    "Bearer hf_test_token");
	}
	for (i = 0; i < json_array_size(cdn); i++) {
		assert_int_equal(entry_int(cdn, i, "status"), 206);
		assert_null(entry_str(cdn, i, "authorization"));
	}
	json_decref(origin);
	json_decref(cdn);
}

struct waiter_arg {
	struct fx *fx;
	int err;
};

static void *stalled_reader(void *p)
{
	struct waiter_arg *w = p;

	w->err = sched_wait(w->fx->s, w->fx->fb, 0, 16, SCHED_DEMAND, 20000);
	return NULL;
}

/* engine_free while a transfer is stalled returns within about a second
 * and the reader gets -ECANCELED. */
static void test_blob_cancel_stalled(void **state)
{
	struct fx *fx = *state;
	struct waiter_arg w = { .fx = fx, .err = 1 };
	pthread_t th;
	uint64_t t0, dt;

	set_faults("{\"/big.bin\": {\"stall\": true, \"stall_after\": 1000}}");
	assert_int_equal(pthread_create(&th, NULL, stalled_reader, &w), 0);
	sleep_ms(300); /* the request is out, the server stalls */
	t0 = now_ms();
	engine_free(fx->e);
	fx->e = NULL;
	dt = now_ms() - t0;
	pthread_join(th, NULL);
	assert_int_equal(w.err, -ECANCELED);
	if (dt > 1500)
		fail_msg("engine_free took %" PRIu64 " ms", dt);
	assert_false(fblob_all_done(fx->fb, 0, 0));
}

int main(void)
{
	const char *python = getenv("HOLLOWFS_PYTHON");
	const struct CMUnitTest tests[] = {
#define H(name) cmocka_unit_test_setup_teardown(name, fx_setup, fx_teardown)
#define B(name) cmocka_unit_test_setup_teardown(name, blob_setup, blob_teardown)
		H(test_http_get_and_head),
		H(test_http_range),
		H(test_http_redirect_same_host),
		H(test_http_redirect_cross_host),
		H(test_http_sigv4_origin_only),
		H(test_http_retry_500_then_ok),
		H(test_http_retries_run_out),
		H(test_http_429_retry_after),
		H(test_http_503_ratelimit),
		H(test_http_404_not_retried),
		H(test_http_link_next),
		B(test_blob_whole_file),
		B(test_blob_content_range_mismatch),
		B(test_blob_etag_changed),
		B(test_blob_etag_same),
		B(test_blob_ignored_range),
		B(test_blob_ignored_range_jobs_ride),
		B(test_blob_stream_skips_done),
		B(test_blob_gzip_206_refused),
		B(test_blob_gzip_200_refused),
		B(test_blob_unsized_200_refused),
		B(test_blob_short_answers),
		B(test_blob_progress_earns_retries),
		B(test_blob_no_progress_no_retries),
		cmocka_unit_test_setup_teardown(test_blob_budget_bounds_a_stall,
						blob_setup_budget,
						blob_teardown),
		cmocka_unit_test_setup_teardown(
			test_blob_trickle, blob_setup_budget, blob_teardown),
		cmocka_unit_test_setup_teardown(test_http_budget_bounds_a_stall,
						fx_setup_budget, fx_teardown),
		cmocka_unit_test_setup_teardown(
			test_http_retry_after_past_budget, fx_setup_budget,
			fx_teardown),
		B(test_blob_redirect_to_file_refused),
		B(test_uncached_checks_the_server),
		B(test_uncached_etag_changed),
		B(test_blob_drop_mid_chunk),
		B(test_blob_redirect_cdn_no_token),
		B(test_blob_cancel_stalled),
#undef H
#undef B
	};

	if (!python || !*python)
		python = TESTSERVER_PYTHON;
	if (!*python || access(python, X_OK) ||
	    (!*TESTSERVER_SCRIPT && !getenv("HOLLOWFS_TESTSERVER"))) {
		printf("test_engine: skipped, no python3 or testserver.py\n");
		return 77;
	}
	signal(SIGPIPE, SIG_IGN);
	return cmocka_run_group_tests_name("engine", tests, group_setup,
					   group_teardown);
}
