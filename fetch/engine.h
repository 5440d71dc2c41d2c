/*
 * engine: one thread driving a libcurl multi handle (DESIGN.md "Fetching").
 *
 * The engine thread alone owns the CURLM and every easy handle. Other
 * threads hand it work: plain HTTP requests (engine_http_submit, for
 * listings and HEADs) and blob range transfers, which it pulls from the
 * scheduler (fetch/sched.h) whenever a connection slot is free.
 *
 * It follows redirects itself (at most ENGINE_MAX_REDIRECTS): the auth
 * header is sent only to the origin host of the request, never to
 * another host. It retries with exponential backoff and jitter, honours
 * Retry-After and RateLimit on 429/503, and times out connects and
 * stalled transfers. HTTP and curl errors are translated into negative
 * errno values here, once, with one log line saying why.
 */
#ifndef HOLLOWFS_FETCH_ENGINE_H
#define HOLLOWFS_FETCH_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ENGINE_MAX_REDIRECTS 10

struct engine_opts {
	int connections; /* parallel transfers, default 16 */
	int connect_timeout_ms; /* default 10000 */
	int stall_timeout_ms; /* no byte for this long fails, default 10000 */
	int retries; /* further attempts after the first, default 4 */
	int backoff_ms; /* first backoff, doubled each time, def. 250 */
	int max_wait_ms; /* cap of one Retry-After wait, default 30000 */
	const char *user_agent; /* borrowed; default "hollowfs/VERSION" */
};

void engine_opts_default(struct engine_opts *o);

/*
 * How a request to a source's origin is authenticated, filled by the
 * source (source_ops.auth) and applied by the engine to requests that go
 * to the origin host only, never after a redirect to another host.
 * Strings are borrowed; any may be NULL.
 */
struct http_auth {
	const char *header; /* a full header line: "Authorization: ..." */
	const char *aws_sigv4; /* CURLOPT_AWS_SIGV4 provider, "aws:amz:..." */
	const char *userpwd; /* with aws_sigv4: "KEY_ID:SECRET" */
};

/* A plain request. Strings are borrowed until engine_http_submit returns. */
struct http_req {
	const char *url;
	const char *auth; /* a full header line ("Authorization: ..."),
				 * sent to the origin host only; may be NULL */
	bool head; /* HEAD instead of GET */
	bool no_retry; /* one attempt (probes) */
	size_t max_body; /* larger bodies fail with -EFBIG; 0: 64 MiB */
	uint64_t range_off; /* with range_len > 0: ask for these bytes */
	uint64_t range_len;
};

/* What came back; every string is owned and freed by http_result_release. */
struct http_result {
	int err; /* 0, or the negative errno of the failure */
	long status; /* final HTTP status (0 for file:, or none) */
	char *url; /* the URL that answered (after redirects) */
	char *body; /* NUL-terminated, body_len bytes */
	size_t body_len;
	int64_t content_length; /* -1 when unknown */
	char *etag; /* as sent, quotes included */
	char *last_modified;
	char *content_type;
	char *link_next; /* Link: <...>; rel="next", resolved absolute */
	char *linked_etag; /* X-Linked-Etag */
	int64_t linked_size; /* X-Linked-Size, -1 when absent */
	char *repo_commit; /* X-Repo-Commit */
	char *error_code; /* X-Error-Code */
	char *error_message; /* X-Error-Message */
};

void http_result_release(struct http_result *r);

struct engine;
struct sched;

/* Starts the engine thread. Returns 0, -ENOMEM, or -EIO when libcurl
 * cannot be initialised. */
int engine_new(const struct engine_opts *opts, struct engine **out)
	__attribute__((warn_unused_result));

/* Cancels every transfer (waiters get -ECANCELED), joins the thread and
 * frees. Returns within about a second whatever the servers do. Accepts
 * NULL. */
void engine_free(struct engine *e);

/* Attaches the scheduler the engine pulls blob transfers from (once,
 * before any blob work; sched_new does it). */
void engine_attach_sched(struct engine *e, struct sched *s);

/* Wakes the engine thread: new work is queued. Thread-safe; NULL is a
 * no-op (a scheduler without an engine, in unit tests). */
void engine_kick(struct engine *e);

typedef void (*http_done_fn)(void *arg, struct http_result *res);

/*
 * Queues a plain request; done is called once from the engine thread with
 * the result (which the callee owns and must release). Returns 0, or an
 * error (then done is not called).
 */
int engine_http_submit(struct engine *e, const struct http_req *req,
		       http_done_fn done, void *arg)
	__attribute__((warn_unused_result));

/* The same, waiting for the result. Returns res->err. */
int engine_http(struct engine *e, const struct http_req *req,
		struct http_result *res) __attribute__((warn_unused_result));

/* Counters since start (for status and benchmarks). */
struct engine_stats {
	uint64_t bytes_fetched; /* body bytes written into blobs */
	uint64_t requests; /* HTTP requests sent, retries included */
	uint64_t retries;
	uint64_t failures; /* transfers that failed for good */
};
void engine_get_stats(struct engine *e, struct engine_stats *st);

#endif
