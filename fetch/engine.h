/*
 * engine: one thread driving a libcurl multi handle (DESIGN.md "Fetching").
 *
 * The engine thread alone owns the CURLM and every easy handle. Other
 * threads hand it work: plain HTTP requests (engine_http_submit, for
 * listings and HEADs) and blob range transfers, which it pulls from the
 * scheduler (fetch/sched.h) whenever a connection slot is free.
 *
 * It follows redirects itself (at most ENGINE_MAX_REDIRECTS), to http
 * and https only: the auth header is sent only to the origin host of the
 * request, never to another host. It retries with exponential backoff
 * and jitter, honours Retry-After and RateLimit on 429/503, and times out
 * connects, stalled transfers and trickles (under 1 KiB/s over a stall
 * timeout). Every request, plain or blob, has a budget in time
 * (engine_opts.budget_ms): once it has gone that long without receiving
 * 64 KiB, retries, backoffs and waits included, it fails, so a read whose
 * bytes cannot be had fails within about budget_ms. A retry is counted
 * only against tries that landed no new bytes; a legal short 206 is no
 * failure at all (the rest is asked for at once).
 *
 * What a server sends is checked before a byte of it lands in a blob: a
 * 206 must carry the Content-Range asked for; an encoded body
 * (Content-Encoding, or a Transfer-Encoding other than chunked) and a
 * 200 of unknown length are refused; a 200 of the file's length (the
 * server ignores Range) turns the transfer into one whole-file stream
 * that completes every chunk it passes. HTTP and curl errors are
 * translated into negative errno values here, once, with one log line
 * saying why.
 */
#ifndef HOLLOWFS_FETCH_ENGINE_H
#define HOLLOWFS_FETCH_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ENGINE_MAX_REDIRECTS 10
#define ENGINE_BUDGET_MS_DEFAULT 50000

struct engine_opts {
	int connections; /* parallel transfers, default 16 */
	int connect_timeout_ms; /* default 10000 */
	int stall_timeout_ms; /* no byte for this long fails, default 10000 */
	int retries; /* further attempts after the first, default 4 */
	int backoff_ms; /* first backoff, doubled each time, def. 250 */
	int max_wait_ms; /* cap of one Retry-After wait, default 30000 */
	int budget_ms; /* a request that receives no 64 KiB for this
				 * long fails, retries and waits included;
				 * default ENGINE_BUDGET_MS_DEFAULT */
	const char *user_agent; /* borrowed; default "hollowfs/VERSION" */
	/* -o proxy=: NULL follows the environment (libcurl's *_proxy and
	 * no_proxy, plus HTTP_PROXY for http:// when http_proxy is unset);
	 * "" turns proxies off; else every request goes through it (NO_PROXY
	 * hosts excepted). Borrowed for engine_new, copied. */
	const char *proxy;
};

void engine_opts_default(struct engine_opts *o);

/*
 * How a request to a source's origin is authenticated, filled by the
 * source (source_ops.auth) and applied by the engine to requests that go
 * to the origin host only, never after a redirect to another host.
 * Strings are borrowed; any may be NULL. With aws_sigv4, the engine also
 * sends x-amz-content-sha256 (of the empty body: it only GETs and HEADs),
 * which S3 requires and libcurl before 8.1 does not add.
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
	const char *aws_sigv4; /* sign with CURLOPT_AWS_SIGV4 (origin
				 * host only), or NULL; see struct http_auth */
	const char *userpwd; /* its "KEY_ID:SECRET", or NULL */
	const char *if_match; /* an ETag to send as If-Match (origin host
			       * only): a changed object answers 412 */
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
	char *content_range; /* Content-Range */
	char *encoding; /* the Content-Encoding (or else Transfer-Encoding,
				 * chunked aside) the body is in, or NULL when
				 * the body is the bytes as they are */
	char *bucket_region; /* X-Amz-Bucket-Region (S3) */
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
	unsigned int transfers; /* in progress now (connections in use) */
	unsigned int connections; /* the most at once (-o connections) */
};
void engine_get_stats(struct engine *e, struct engine_stats *st);

/* -o prefetch_rate: SCHED_BACKGROUND transfers together receive at most
 * bytes_per_s (0: no cap). Any thread, any time. */
void engine_set_background_rate(struct engine *e, uint64_t bytes_per_s);

#endif
