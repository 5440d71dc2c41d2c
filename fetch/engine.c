/*
 * engine.c: the thread that owns the libcurl multi handle.
 *
 * Everything curl happens on the engine thread: it creates, drives and
 * frees every easy handle. Other threads only touch the submit queue
 * (e->lock) and call curl_multi_wakeup(), which libcurl documents as
 * thread-safe.
 *
 * Blob transfers stream from the write callback straight into the blob
 * file with pwrite() at their offset, feeding the chunk's xxh3 state; no
 * buffer of chunk size exists, so memory is O(connections).
 *
 * The engine thread's one role (DESIGN.md "Threads"): drive the multi
 * handle. Its curl callbacks only write bytes and record what happened;
 * the waiters a completed chunk satisfies (FUSE replies, uncached
 * re-submits) are collected on e->fire and called after
 * curl_multi_perform returns, never inside a curl callback. It reads no
 * file (chunk probes and file:// sources are the worker pool's, see
 * fetch/work.h) and speaks only http and https: a redirect elsewhere
 * (file://, ftp://...) fails the request.
 *
 * Lock order: e->lock, then nothing. It is never held across a curl call,
 * a callback or I/O.
 */
#include "fetch/engine.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <curl/curl.h>
#include <xxhash.h>

#include "fetch/fetch_i.h"
#include "fetch/http.h"
#include "fetch/sched.h"
#include "state/cache.h"
#include "state/clock.h"
#include "state/hlog.h"

#define BODY_MAX_DEFAULT (64u << 20)
#define BACKOFF_CAP_MS 10000
#define RECV_BUFFER_BYTES (256 << 10)
#define IDLE_POLL_MS 1000
#define STALL_CHECK_MS 100
#define PROGRESS_BYTES (64u << 10) /* body bytes that renew the budget */
#define LOW_SPEED_BPS 1024 /* slower over a stall window: cut, retried */
#define FAIL_MEMORY_MS 2000 /* see fail_recall() */
#define FAIL_RECORDS 32
/* A job of a blob whose server has not said yet whether it honours Range
 * waits this long while its first request is out. */
#define RANGES_WAIT_MS 5
/* ...for at most this long after that request started. */
#define RANGES_PROBE_MS 300
/* -o prefetch_rate: no more background transfers run than give each
 * this share of the cap, far above LOW_SPEED_BPS. */
#define BG_MIN_SHARE_BPS (256u << 10)
#define BG_BURST_MS 100 /* the cap's bucket holds this long's bytes */
/* Background transfers stay paused this long after the last demand
 * transfer, so that a reader issuing reads one after the other (random
 * reads, each a short transfer) never shares the link or the disk with
 * the fill; the fill runs while it pauses. */
#define BG_QUIET_MS 100
/* SigV4 for S3 signs the payload: ours is always empty (GET, HEAD). */
#define AMZ_EMPTY_SHA256         \
	"x-amz-content-sha256: " \
	"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

enum xfer_kind { XFER_HTTP, XFER_BLOB };

/* What the chunk a whole-file stream is passing is to it. */
enum own {
	OWN_UNDECIDED, /* its first byte has not come yet */
	OWN_MAIN, /* the next chunk of the transfer's own job */
	OWN_RIDE, /* the next chunk of a job riding along (xfer.cur) */
	OWN_CLAIMED, /* nobody had it: claimed in passing (xfer.claimed) */
	OWN_SKIP, /* DONE, or someone else's: its bytes are dropped */
};

/* A job of the same blob that a whole-file stream completes on its way. */
struct ride {
	struct ride *next;
	struct fetch_job job;
	uint64_t done_upto; /* its chunks before this one are DONE */
};

/* A blob transfer that failed for good a moment ago (fail_recall). */
struct fail_rec {
	char hex[33]; /* the blob's name in the cache; "" when unused */
	uint64_t first, last; /* chunks not completed */
	uint64_t at_ms; /* when it failed */
	uint64_t good_ms; /* where its budget ran from */
	int err;
};

/* One request in flight or waiting to be retried; engine thread only. */
struct xfer {
	struct xfer *next;
	struct engine *e;
	enum xfer_kind kind;
	CURL *easy;
	struct curl_slist *hdrs;
	char errbuf[CURL_ERROR_SIZE];

	char *url; /* the URL of this attempt (owned) */
	char *origin; /* the first URL; auth goes to its host only */
	char *auth; /* header line (owned), or NULL */
	char *aws_sigv4, *userpwd; /* XFER_HTTP: SigV4 (owned, the second
				 * wiped), or NULL; XFER_BLOB: in job */
	char *if_match; /* XFER_HTTP: If-Match ETag (owned), or NULL */
	int hops; /* redirects followed */
	int attempt; /* tries made, 0 before the first */
	int fails; /* failed tries since one landed new bytes */
	bool fresh; /* blob: this try landed bytes not had before */
	uint64_t retry_at_ms; /* when waiting */
	uint64_t progress_ms; /* when a byte last arrived (or the start) */
	int wait_ms; /* server-requested wait for the next try */
	/*
	 * The budget (engine_opts.budget_ms) runs from good_ms: the first
	 * try, or the last time PROGRESS_BYTES more body bytes had come in.
	 * When it is spent the transfer fails, whatever retries are left:
	 * stalls, trickles, backoffs and Retry-After waits all count.
	 */
	uint64_t good_ms;
	uint64_t rx; /* body bytes received, every try */
	uint64_t credit_rx; /* rx at good_ms */
	uint64_t win_ms, win_rx; /* low-speed window: its start, rx then */

	/* The response being received (reset per attempt). */
	long status;
	bool validated; /* blob: headers checked, bytes may land */
	bool stop_ok; /* blob: aborted on purpose, all bytes in */
	int err; /* set by a callback: the cause of an abort */
	bool fatal; /* err is not worth a retry */
	uint64_t range_last; /* blob 206: last byte its Content-Range names */
	bool bg_paused; /* background blob: paused (rate cap, demand) */
	char why[256]; /* why a callback aborted, for the log, or "" */
	char *h_location, *h_content_range, *h_etag;
	char *h_content_encoding, *h_transfer_encoding;
	int64_t h_retry_after_ms; /* -1 when absent */
	int64_t h_ratelimit_ms; /* -1 when absent */
	int64_t h_linked_size; /* X-Linked-Size, -1 when absent */

	/* XFER_HTTP */
	bool head, no_retry;
	uint64_t range_off, range_len;
	size_t max_body;
	size_t body_alloc;
	struct http_result res;
	http_done_fn done;
	void *arg;

	/* XFER_BLOB */
	struct fetch_job job;
	uint64_t pos; /* next byte to write */
	uint64_t chunk_idx; /* chunk whose hash state is in hs */
	XXH3_state_t *hs;
	/*
	 * A whole-file stream: the server answered a range request with the
	 * whole file (200), so this transfer reads the file from its start
	 * to its end. It completes its own job's chunks, those of jobs of
	 * the same blob that came while it had not passed them (rides), and
	 * any other chunk nobody has (claimed in passing); it skips DONE
	 * chunks and other transfers' chunks without writing them.
	 */
	bool stream;
	bool handed_over; /* its job rides on another stream: end quietly */
	uint64_t spos; /* stream: the file offset of the next body byte */
	uint64_t shigh; /* stream: the furthest spos of any try */
	enum own own; /* stream: the chunk at spos */
	struct ride *cur; /* OWN_RIDE: whose chunk it is */
	struct fetch_job claimed; /* OWN_CLAIMED: its one-chunk job */
	struct ride *rides;
};

struct engine {
	struct engine_opts o;
	char user_agent[64];
	char *proxy; /* for xfer_set_proxy, or NULL: libcurl's own choice */
	bool proxy_http_only; /* proxy is $HTTP_PROXY: for http:// only */
	CURLM *multi;
	pthread_t thread;
	bool thread_started;

	pthread_mutex_t lock;
	struct xfer *submitted; /* protected by lock */
	_Atomic bool stop;
	struct sched *_Atomic sched;
	_Atomic uint64_t bg_rate; /* background cap, bytes/s; 0: none */
	int64_t bg_tokens; /* engine thread: bytes background may take */
	uint64_t bg_refill_ms; /* engine thread: bg_tokens' last refill */
	bool bg_paused_any; /* engine thread: some xfer is bg_paused */
	bool bg_yield; /* engine thread: a demand transfer runs, or ran
			* less than BG_QUIET_MS ago */
	uint64_t demand_ms; /* engine thread: when one last ran, ms + 1 */
	unsigned int bg_turn; /* engine thread: who is unpaused first */

	/* engine thread only */
	struct sched_waiter *fire; /* satisfied in callbacks, to call */
	struct xfer *active; /* added to multi */
	struct xfer *waiting; /* backing off, or not started */
	int nactive;
	struct fail_rec fails[FAIL_RECORDS]; /* a ring */
	unsigned int fails_next;

	_Atomic uint64_t st_bytes, st_requests, st_retries, st_failures;
	_Atomic int st_active; /* nactive, for other threads */
};

void engine_opts_default(struct engine_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->connections = 16;
	o->connect_timeout_ms = 10000;
	o->stall_timeout_ms = 10000;
	o->retries = 4;
	o->backoff_ms = 250;
	o->max_wait_ms = 30000;
	o->budget_ms = ENGINE_BUDGET_MS_DEFAULT;
}

void http_result_release(struct http_result *r)
{
	free(r->url);
	free(r->body);
	free(r->etag);
	free(r->last_modified);
	free(r->content_type);
	free(r->link_next);
	free(r->linked_etag);
	free(r->repo_commit);
	free(r->error_code);
	free(r->error_message);
	free(r->content_range);
	free(r->encoding);
	free(r->bucket_region);
	memset(r, 0, sizeof(*r));
	r->content_length = -1;
	r->linked_size = -1;
}

static int curl_errno(CURLcode rc)
{
	switch (rc) {
	case CURLE_OK:
		return 0;
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return -EHOSTUNREACH;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	case CURLE_PARTIAL_FILE:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return -ECONNRESET;
	case CURLE_FILE_COULDNT_READ_FILE:
		return -ENOENT;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
		return -EPROTO;
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		return -EINVAL;
	default:
		return -EIO;
	}
}

static bool curl_retryable(int err)
{
	return err == -ECONNRESET || err == -ETIMEDOUT ||
	       err == -ECONNREFUSED || err == -EIO || err == -EHOSTUNREACH;
}

static bool status_retryable(long status)
{
	return status == 408 || status == 429 || status >= 500;
}

static void set_str(char **dst, const char *p, size_t n)
{
	free(*dst);
	*dst = http_header_value(p, n);
}

/* A header that is a list (RFC 9110 5.3): a second line adds to it. */
static void add_to_list(char **dst, const char *p, size_t n)
{
	char *v = http_header_value(p, n), *out = NULL;

	if (v && !*dst)
		out = v;
	else if (v && asprintf(&out, "%s, %s", *dst, v) < 0)
		out = NULL;
	if (out != v)
		free(v);
	free(*dst);
	/* Out of memory: keep a value that is not identity. */
	*dst = out ? out : strdup("?");
}

static size_t header_cb(char *buf, size_t size, size_t nitems, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * nitems;
	const char *colon;
	size_t nlen;
	const char *val;
	size_t vlen;

	x->progress_ms = clock_now_ms();
	if (len >= 5 && !strncmp(buf, "HTTP/", 5)) {
		/* A new response (after 1xx): forget the last one's headers. */
		free(x->h_location);
		free(x->h_content_range);
		free(x->h_etag);
		free(x->h_content_encoding);
		free(x->h_transfer_encoding);
		x->h_location = x->h_content_range = x->h_etag = NULL;
		x->h_content_encoding = x->h_transfer_encoding = NULL;
		x->h_retry_after_ms = x->h_ratelimit_ms = -1;
		x->h_linked_size = -1;
		return len;
	}
	colon = memchr(buf, ':', len);
	if (!colon)
		return len;
	nlen = (size_t)(colon - buf);
	val = colon + 1;
	vlen = len - nlen - 1;
#define IS(name) (nlen == strlen(name) && !strncasecmp(buf, name, nlen))
	if (IS("location")) {
		set_str(&x->h_location, val, vlen);
	} else if (IS("content-range")) {
		set_str(&x->h_content_range, val, vlen);
	} else if (IS("etag")) {
		set_str(&x->h_etag, val, vlen);
	} else if (IS("content-encoding")) {
		add_to_list(&x->h_content_encoding, val, vlen);
	} else if (IS("transfer-encoding")) {
		add_to_list(&x->h_transfer_encoding, val, vlen);
	} else if (IS("x-linked-size") && x->kind == XFER_BLOB) {
		char *v = http_header_value(val, vlen);

		x->h_linked_size = v ? strtoll(v, NULL, 10) : -1;
		free(v);
	} else if (IS("retry-after") || IS("ratelimit")) {
		char *v = http_header_value(val, vlen);

		if (v && IS("retry-after") &&
		    http_parse_retry_after(v, (int64_t)time(NULL),
					   &x->h_retry_after_ms))
			x->h_retry_after_ms = -1;
		else if (v && IS("ratelimit") &&
			 http_parse_ratelimit(v, &x->h_ratelimit_ms))
			x->h_ratelimit_ms = -1;
		free(v);
	} else if (x->kind == XFER_HTTP) {
		struct http_result *r = &x->res;

		if (IS("content-length")) {
			char *v = http_header_value(val, vlen);

			r->content_length = v ? strtoll(v, NULL, 10) : -1;
			free(v);
		} else if (IS("last-modified")) {
			set_str(&r->last_modified, val, vlen);
		} else if (IS("content-type")) {
			set_str(&r->content_type, val, vlen);
		} else if (IS("link")) {
			char *v = http_header_value(val, vlen);
			char *next = NULL;

			if (v && !http_parse_link_next(v, x->url, &next)) {
				free(r->link_next);
				r->link_next = next;
			}
			free(v);
		} else if (IS("x-linked-etag")) {
			set_str(&r->linked_etag, val, vlen);
		} else if (IS("x-linked-size")) {
			char *v = http_header_value(val, vlen);

			r->linked_size = v ? strtoll(v, NULL, 10) : -1;
			free(v);
		} else if (IS("x-repo-commit")) {
			set_str(&r->repo_commit, val, vlen);
		} else if (IS("x-error-code")) {
			set_str(&r->error_code, val, vlen);
		} else if (IS("x-error-message")) {
			set_str(&r->error_message, val, vlen);
		} else if (IS("x-amz-bucket-region")) {
			set_str(&r->bucket_region, val, vlen);
		}
	}
#undef IS
	return len;
}

/*
 * n body bytes came in: they renew the budget every PROGRESS_BYTES
 * (re-read bytes of a restarted stream count: the server is alive).
 */
static void xfer_got(struct xfer *x, size_t n)
{
	uint64_t now = clock_now_ms();

	x->progress_ms = now;
	x->rx += n;
	if (x->rx - x->credit_rx >= PROGRESS_BYTES) {
		x->credit_rx = x->rx;
		x->good_ms = now;
	}
}

static size_t http_write_cb(char *data, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	struct http_result *r = &x->res;
	size_t len = size * nmemb;
	long status = 0;

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 200 && status < 300)
		xfer_got(x, len);
	else
		x->progress_ms = clock_now_ms(); /* an error body: alive */
	if (r->body_len + len > x->max_body) {
		x->err = -EFBIG;
		x->fatal = true;
		return 0;
	}
	if (r->body_len + len + 1 > x->body_alloc) {
		size_t want = x->body_alloc ? x->body_alloc : 16384;
		char *nb;

		while (want < r->body_len + len + 1)
			want *= 2;
		nb = realloc(r->body, want);
		if (!nb) {
			x->err = -ENOMEM;
			x->fatal = true;
			return 0;
		}
		r->body = nb;
		x->body_alloc = want;
	}
	memcpy(r->body + r->body_len, data, len);
	r->body_len += len;
	r->body[r->body_len] = '\0';
	return len;
}

/* The number of chunks of the job's file. */
static uint64_t job_nchunks(const struct fetch_job *j)
{
	return (j->file_size + j->chunk_size - 1) / j->chunk_size;
}

/* The first chunk a stream has not decided about: jobs from there on
 * may ride along. A stream waiting to restart starts over at 0. */
static uint64_t stream_next(const struct xfer *x)
{
	uint64_t idx = x->spos / x->job.chunk_size;

	return x->own == OWN_UNDECIDED ? idx : idx + 1;
}

/* A stream of fb that will still pass chunk first (active, or waiting
 * to restart), other than self; NULL when none. */
static struct xfer *stream_find(struct engine *e, struct fblob *fb,
				uint64_t first, const struct xfer *self)
{
	struct xfer *lists[2] = { e->active, e->waiting };

	for (int i = 0; i < 2; i++)
		for (struct xfer *o = lists[i]; o; o = o->next)
			if (o != self && o->kind == XFER_BLOB && o->stream &&
			    !o->handed_over && o->job.fb == fb &&
			    first >= stream_next(o))
				return o;
	return NULL;
}

/* Job (its chunks from done_upto on still to come) rides along on o;
 * the job is consumed. Returns 0 or -ENOMEM (job untouched). */
static int stream_add_ride(struct xfer *o, struct fetch_job *job,
			   uint64_t done_upto)
{
	struct ride *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->job = *job;
	r->done_upto = done_upto;
	r->next = o->rides;
	o->rides = r;
	memset(job, 0, sizeof(*job));
	return 0;
}

/* True when no job of the stream has a chunk left to come. */
static bool stream_idle(const struct xfer *x)
{
	return x->chunk_idx >= x->job.first + x->job.count && !x->rides;
}

/*
 * True when a transfer of fb's bytes at prio or more urgent started less
 * than RANGES_PROBE_MS ago and is running (its first answer, which says
 * whether the server honours Range, is near). One that stalls or waits
 * to retry holds up no other request of the file, and a background one
 * no demand: a read right after an open (whose fill has begun) must not
 * wait a round trip more for it; at worst a server that ignores Range
 * sends two whole-file answers, and the one behind stops.
 */
static bool blob_probe_running(const struct engine *e, struct fblob *fb,
			       enum sched_prio prio)
{
	uint64_t now = clock_now_ms();
	bool young = false, old = false;

	for (struct xfer *o = e->active; o; o = o->next) {
		if (o->kind != XFER_BLOB || o->job.fb != fb)
			continue;
		if (now - o->good_ms >= RANGES_PROBE_MS)
			old = true;
		else if (o->job.prio <= prio)
			young = true;
	}
	if (old) /* no answer in time: wait no more for this file */
		sched_blob_set_ranges(fb, 3);
	return young && !old;
}

/* True when another whole-file stream of x's file is further on. */
static bool stream_behind_another(const struct xfer *x)
{
	struct xfer *lists[2] = { x->e->active, x->e->waiting };

	for (int i = 0; i < 2; i++)
		for (struct xfer *o = lists[i]; o; o = o->next)
			if (o != x && o->kind == XFER_BLOB && o->stream &&
			    !o->handed_over && o->job.fb == x->job.fb &&
			    o->spos > x->spos)
				return true;
	return false;
}

/*
 * The try of a stream is over: the chunk it claimed in passing goes back
 * (requeued with err 0, so a reader who came to wait on it meanwhile is
 * served by the next try; failed with err), and the next try starts
 * over at the beginning of the file.
 */
static void stream_stop(struct xfer *x, int err)
{
	if (x->own == OWN_CLAIMED)
		sched_job_end(atomic_load(&x->e->sched), &x->claimed,
			      x->claimed.first, err);
	x->own = OWN_UNDECIDED;
	x->cur = NULL;
	x->spos = 0;
}

/*
 * A 200 of the file's length answered a range request: the server
 * ignores Range. The transfer reads the whole file, once; when another
 * stream of the blob will still pass this job's chunks, the job rides on
 * it instead and this transfer ends (-ECANCELED, handed_over).
 */
static int stream_begin(struct xfer *x)
{
	struct engine *e = x->e;
	char ubuf[512];
	struct xfer *o;

	if (!x->stream) {
		o = stream_find(e, x->job.fb, x->chunk_idx, x);
		if (o && !stream_add_ride(o, &x->job, x->chunk_idx)) {
			x->handed_over = true;
			return -ECANCELED;
		}
		hlog(HLOG_INFO, HLOG_FETCH,
		     "'%s' ignores Range: reading '%s' whole, once",
		     http_log_url(x->url, ubuf, sizeof(ubuf)),
		     fblob_name(x->job.fb));
		x->stream = true;
	}
	x->spos = 0;
	x->own = OWN_UNDECIDED;
	return 0;
}

/* Refuses the response for good: why it is never stored goes to the log
 * line of the failure. */
static int blob_refuse(struct xfer *x, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int blob_refuse(struct xfer *x, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(x->why, sizeof(x->why), fmt, ap);
	va_end(ap);
	x->fatal = true;
	return -EPROTO;
}

/*
 * Checks the response of a blob transfer before its first byte lands.
 * Returns 0, 1 for a body that is not ours (an error or a redirect), or
 * a negative errno (x->fatal set when retrying is useless).
 */
static int blob_validate(struct xfer *x)
{
	struct fetch_job *j = &x->job;
	struct sched *s = atomic_load(&x->e->sched);
	bool whole = false;
	char ubuf[512];

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
	if (x->status != 206 && x->status != 200)
		return 1; /* an error or redirect body: not ours */
	/* We ask for identity; an encoded body is not the file's bytes. */
	if (!http_coding_identity(x->h_content_encoding, false))
		return blob_refuse(x,
				   "HTTP %ld with Content-Encoding '%s': an "
				   "encoded body is never stored",
				   x->status, x->h_content_encoding);
	if (!http_coding_identity(x->h_transfer_encoding, true))
		return blob_refuse(x,
				   "HTTP %ld with Transfer-Encoding '%s': an "
				   "encoded body is never stored",
				   x->status, x->h_transfer_encoding);
	if (!j->pinned && j->etag && x->h_etag &&
	    !http_etag_equal(j->etag, x->h_etag)) {
		hlog(HLOG_ERR, HLOG_FETCH,
		     "'%s' changed on the server: ETag %s, expected %s",
		     http_log_url(x->url, ubuf, sizeof(ubuf)), x->h_etag,
		     j->etag);
		x->fatal = true;
		return -ESTALE;
	}
	if (x->status == 206) {
		uint64_t a, b, total;
		const char *cr = x->h_content_range;

		if (x->stream) {
			hlog(HLOG_WARN, HLOG_FETCH,
			     "HTTP 206 from '%s' to a request without Range",
			     http_log_url(x->url, ubuf, sizeof(ubuf)));
			return -EPROTO;
		}
		if (!cr || http_parse_content_range(cr, &a, &b, &total)) {
			hlog(HLOG_WARN, HLOG_FETCH,
			     "bad Content-Range '%s' from '%s'",
			     cr ? cr : "(none)",
			     http_log_url(x->url, ubuf, sizeof(ubuf)));
			return -EPROTO;
		}
		if (total != j->file_size) {
			hlog(HLOG_ERR, HLOG_FETCH,
			     "'%s' changed on the server: size %" PRIu64
			     ", expected %" PRIu64,
			     http_log_url(x->url, ubuf, sizeof(ubuf)), total,
			     j->file_size);
			x->fatal = true;
			return -ESTALE;
		}
		if (a != x->pos || b < a || b >= j->end) {
			hlog(HLOG_WARN, HLOG_FETCH,
			     "Content-Range '%s' from '%s' does not match the "
			     "range asked for (bytes %" PRIu64 "-%" PRIu64 ")",
			     cr, http_log_url(x->url, ubuf, sizeof(ubuf)),
			     x->pos, j->end - 1);
			return -EPROTO;
		}
		x->range_last = b;
		sched_blob_set_ranges(j->fb, 1);
	} else {
		curl_off_t cl = -1;

		curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
				  &cl);
		/* Chunked, or HTTP/2 without content-length: its end cannot
		 * be told from a cut connection. */
		if (cl < 0)
			return blob_refuse(x, "HTTP 200 of unknown length to a "
					      "range request: never stored");
		if ((uint64_t)cl != j->file_size) {
			hlog(HLOG_ERR, HLOG_FETCH,
			     "'%s' changed on the server: size %lld, expected "
			     "%" PRIu64,
			     http_log_url(x->url, ubuf, sizeof(ubuf)),
			     (long long)cl, j->file_size);
			x->fatal = true;
			return -ESTALE;
		}
		whole = true;
		sched_blob_set_ranges(j->fb, 2);
	}
	if (!j->pinned && !j->etag && x->h_etag && s) {
		sched_learn_etag(s, j->fb, x->h_etag);
		j->etag = strdup(x->h_etag);
	}
	return whole ? stream_begin(x) : 0;
}

/* The chunk whose last byte just landed: its sums entry, then DONE. */
static int blob_chunk_complete(struct xfer *x)
{
	uint64_t sum = XXH3_64bits_digest(x->hs);
	int err;

	if (!sum)
		sum = 1;
	err = cache_sums_write(x->job.sums_fd, x->chunk_idx, sum);
	if (err)
		return err;
	sched_chunk_done(atomic_load(&x->e->sched), &x->job, x->chunk_idx,
			 &x->e->fire);
	x->chunk_idx++;
	XXH3_64bits_reset(x->hs);
	return 0;
}

/*
 * The stream reaches chunk idx: it writes it when one of its jobs has it
 * next, or when it can claim it (nobody has it); it skips it when it is
 * DONE or another transfer's. Returns false when the stream has nothing
 * left to do: no job of it waits, and every chunk from idx on is DONE.
 */
static bool stream_decide(struct xfer *x, uint64_t idx)
{
	struct fetch_job *j = &x->job;
	struct ride *r;

	XXH3_64bits_reset(x->hs);
	x->cur = NULL;
	if (idx == x->chunk_idx && idx < j->first + j->count) {
		x->own = OWN_MAIN;
		return true;
	}
	for (r = x->rides; r; r = r->next) {
		if (idx == r->done_upto && idx < r->job.first + r->job.count) {
			x->own = OWN_RIDE;
			x->cur = r;
			return true;
		}
	}
	x->own = OWN_SKIP;
	/* Nothing of its own left, behind another stream of the file: that
	 * one passes (and claims) everything from here on. */
	if (stream_idle(x) && stream_behind_another(x))
		return false;
	if (fblob_all_done(j->fb, idx, idx))
		return !stream_idle(x) ||
		       !fblob_all_done(j->fb, idx, job_nchunks(j) - 1);
	if (sched_claim_chunk(atomic_load(&x->e->sched), j->fb, idx,
			      &x->claimed, &x->e->fire))
		x->own = OWN_CLAIMED;
	return true;
}

/* The stream's chunk idx has all its bytes: its sums entry, then DONE
 * for the job it belongs to, which ends once its last chunk is in. */
static int stream_chunk_complete(struct xfer *x, uint64_t idx)
{
	struct sched *s = atomic_load(&x->e->sched);
	struct fetch_job *job = &x->job;
	uint64_t sum = XXH3_64bits_digest(x->hs);
	struct ride **pp, *r = x->cur;
	int err;

	if (x->own == OWN_RIDE)
		job = &r->job;
	else if (x->own == OWN_CLAIMED)
		job = &x->claimed;
	err = cache_sums_write(job->sums_fd, idx, sum ? sum : 1);
	if (err)
		return err;
	sched_chunk_done(s, job, idx, &x->e->fire);
	/* A job ended with all its chunks DONE fires no waiter here. */
	if (x->own == OWN_MAIN) {
		x->chunk_idx++;
	} else if (x->own == OWN_CLAIMED) {
		sched_job_end(s, &x->claimed, idx + 1, 0);
	} else if (++r->done_upto == r->job.first + r->job.count) {
		for (pp = &x->rides; *pp != r; pp = &(*pp)->next)
			;
		*pp = r->next;
		sched_job_end(s, &r->job, r->done_upto, 0);
		free(r);
	}
	x->own = OWN_UNDECIDED;
	x->cur = NULL;
	return 0;
}

/* Whole-file stream bytes: written for the chunks it completes, dropped
 * for the others. Returns what blob_write_cb returns. */
static size_t stream_write(struct xfer *x, const char *p, size_t len)
{
	struct fetch_job *j = &x->job;
	size_t left = len;
	int err;

	while (left && x->spos < j->file_size) {
		uint64_t idx = x->spos / j->chunk_size;
		uint64_t cend = (idx + 1) * (uint64_t)j->chunk_size;
		size_t n = left;

		if (cend > j->file_size)
			cend = j->file_size;
		if (n > cend - x->spos)
			n = (size_t)(cend - x->spos);
		if (x->own == OWN_UNDECIDED && !stream_decide(x, idx)) {
			x->stop_ok = true; /* nothing left to do */
			return 0;
		}
		if (x->own != OWN_SKIP) {
			err = pwrite_all(j->data_fd, p, n, x->spos);
			if (err)
				goto fail;
			XXH3_64bits_update(x->hs, p, n);
			atomic_fetch_add(&x->e->st_bytes, n);
			if (x->spos + n < cend)
				sched_chunk_landed(
					atomic_load(&x->e->sched), j->fb, idx,
					(uint32_t)(x->spos + n -
						   idx * j->chunk_size),
					&x->e->fire);
		}
		x->spos += n;
		p += n;
		left -= n;
		if (x->spos > x->shigh) {
			x->shigh = x->spos;
			x->fresh = true;
		}
		if (x->spos == cend) {
			if (x->own != OWN_SKIP) {
				err = stream_chunk_complete(x, idx);
				if (err)
					goto fail;
			}
			x->own = OWN_UNDECIDED;
		}
	}
	return len;
fail:
	x->err = err;
	x->fatal = true;
	return 0;
}

/*
 * Blob bytes: pwrite them at their offset, hash them chunk by chunk and
 * complete each chunk as its last byte lands (or, for a whole-file
 * stream, stream_write). Returning less than len makes curl abort the
 * transfer.
 */
static bool background_take(struct xfer *x, size_t len);

static size_t blob_write_cb(char *data, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	struct fetch_job *j = &x->job;
	size_t len = size * nmemb;
	const char *p = data;
	size_t left = len;
	int err;

	if (!background_take(x, len))
		return CURL_WRITEFUNC_PAUSE; /* delivered again on unpause */
	x->progress_ms = clock_now_ms();
	if (!x->validated) {
		err = blob_validate(x);
		if (err > 0)
			return len; /* error body: discarded */
		if (err) {
			x->err = err;
			return 0;
		}
		x->validated = true;
	}
	if (sched_blob_cancelled(j->fb)) {
		x->err = fblob_error(j->fb) ? fblob_error(j->fb) : -ECANCELED;
		x->fatal = true;
		return 0;
	}
	xfer_got(x, len);
	if (x->stream)
		return stream_write(x, p, len);
	while (left && x->pos < j->end) {
		/* The chunk's own end, and where this transfer stops in it
		 * (before it, for a prefix: a partial job). */
		uint64_t cend = (x->chunk_idx + 1) * (uint64_t)j->chunk_size;
		uint64_t chunk_end;
		size_t n = left;

		if (cend > j->file_size)
			cend = j->file_size;
		chunk_end = cend < j->end ? cend : j->end;
		if (n > chunk_end - x->pos)
			n = (size_t)(chunk_end - x->pos);
		err = pwrite_all(j->data_fd, p, n, x->pos);
		if (err) {
			x->err = err;
			x->fatal = true;
			return 0;
		}
		XXH3_64bits_update(x->hs, p, n);
		x->pos += n;
		x->fresh = true;
		p += n;
		left -= n;
		atomic_fetch_add(&x->e->st_bytes, n);
		if (x->pos < cend)
			sched_chunk_landed(
				atomic_load(&x->e->sched), j->fb, x->chunk_idx,
				(uint32_t)(x->pos -
					   x->chunk_idx * j->chunk_size),
				&x->e->fire);
		if (x->pos == cend) {
			err = blob_chunk_complete(x);
			if (err) {
				x->err = err;
				x->fatal = true;
				return 0;
			}
		}
	}
	if (x->pos == j->end && left) {
		/* All our bytes are in (a 206 cannot send more). */
		x->stop_ok = true;
		return 0;
	}
	return len;
}

static void xfer_reset_response(struct xfer *x)
{
	free(x->h_location);
	free(x->h_content_range);
	free(x->h_etag);
	free(x->h_content_encoding);
	free(x->h_transfer_encoding);
	x->h_location = x->h_content_range = x->h_etag = NULL;
	x->h_content_encoding = x->h_transfer_encoding = NULL;
	x->h_retry_after_ms = x->h_ratelimit_ms = -1;
	x->h_linked_size = -1;
	x->status = 0;
	x->validated = false;
	x->stop_ok = false;
	x->err = 0;
	x->fatal = false;
	x->range_last = 0;
	x->why[0] = '\0';
	x->errbuf[0] = '\0';
	if (x->kind == XFER_HTTP) {
		http_result_release(&x->res);
		x->body_alloc = 0;
	}
}

static void xfer_free(struct xfer *x)
{
	if (!x)
		return;
	xfer_reset_response(x);
	if (x->kind == XFER_HTTP)
		http_result_release(&x->res);
	curl_slist_free_all(x->hdrs);
	free(x->url);
	free(x->origin);
	free(x->auth);
	free(x->aws_sigv4);
	free(x->if_match);
	if (x->userpwd) {
		explicit_bzero(x->userpwd, strlen(x->userpwd));
		free(x->userpwd);
	}
	if (x->hs)
		XXH3_freeState(x->hs);
	free(x);
}

/*
 * The proxy (DESIGN.md "Sources"), read once before any thread starts:
 * -o proxy= wins ("" means none). Without it libcurl reads https_proxy,
 * all_proxy and no_proxy itself, but only the lower-case http_proxy (a
 * CGI program gets HTTP_PROXY from a client's "Proxy:" header, httpoxy);
 * a daemon has no such client, so HTTP_PROXY is honoured here.
 */
static int engine_proxy_init(struct engine *e, const char *opt)
{
	const char *p = opt;
	char ubuf[512];

	e->o.proxy = NULL; /* borrowed: e->proxy is the copy */
	if (!p && !getenv("http_proxy")) {
		p = getenv("HTTP_PROXY");
		e->proxy_http_only = true;
		if (p && !*p)
			p = NULL;
	}
	if (!p)
		return 0;
	e->proxy = strdup(p);
	if (!e->proxy)
		return -ENOMEM;
	if (*p)
		hlog(HLOG_INFO, HLOG_FETCH, "%s requests go through proxy '%s'",
		     e->proxy_http_only ? "http://" : "all",
		     http_log_url(p, ubuf, sizeof(ubuf)));
	else
		hlog(HLOG_INFO, HLOG_FETCH, "proxies are off (-o proxy=)");
	return 0;
}

/* Every easy handle, blob or plain, gets its proxy here. NO_PROXY still
 * applies: libcurl reads it whenever CURLOPT_NOPROXY is not set. */
static void xfer_set_proxy(const struct engine *e, CURL *c, const char *url)
{
	if (e->proxy &&
	    (!e->proxy_http_only || !strncasecmp(url, "http://", 7)))
		curl_easy_setopt(c, CURLOPT_PROXY, e->proxy);
}

/* Builds the easy handle of one attempt and adds it to the multi handle;
 * on error nothing is left behind. */
static int xfer_start(struct engine *e, struct xfer *x)
{
	CURL *c;
	char range[64];
	bool to_origin = http_same_origin(x->url, x->origin);
	bool blob = x->kind == XFER_BLOB;
	const char *sigv4 = blob ? x->job.aws_sigv4 : x->aws_sigv4;
	const char *userpwd = blob ? x->job.userpwd : x->userpwd;
	const char *match = blob ? (x->job.if_match ? x->job.etag : NULL) :
				   x->if_match;
	char *if_match = NULL;

	xfer_reset_response(x);
	curl_slist_free_all(x->hdrs);
	x->hdrs = curl_slist_append(NULL, "Accept-Encoding: identity");
	if (x->hdrs && x->auth && to_origin)
		x->hdrs = curl_slist_append(x->hdrs, x->auth);
	if (x->hdrs && sigv4 && to_origin)
		x->hdrs = curl_slist_append(x->hdrs, AMZ_EMPTY_SHA256);
	if (x->hdrs && match && to_origin) {
		if (asprintf(&if_match, "If-Match: %s", match) < 0)
			if_match = NULL;
		x->hdrs = if_match ? curl_slist_append(x->hdrs, if_match) :
				     NULL;
		free(if_match);
	}
	if (!x->hdrs)
		return -ENOMEM;
	c = curl_easy_init();
	if (!c)
		return -ENOMEM;
	curl_easy_setopt(c, CURLOPT_URL, x->url);
	curl_easy_setopt(c, CURLOPT_PRIVATE, x);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, x->hdrs);
	if (sigv4 && to_origin) {
		curl_easy_setopt(c, CURLOPT_AWS_SIGV4, sigv4);
		if (userpwd)
			curl_easy_setopt(c, CURLOPT_USERPWD, userpwd);
	}
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_USERAGENT, e->user_agent);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, header_cb);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
			 (long)e->o.connect_timeout_ms);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	/* Waiting for a connection to multiplex on only pays off where
	 * HTTP/2 can be negotiated (TLS); on http:// it would queue every
	 * transfer behind the first HTTP/1.1 one. */
	curl_easy_setopt(c, CURLOPT_PIPEWAIT,
			 (long)!strncasecmp(x->url, "https:", 6));
	curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	curl_easy_setopt(c, CURLOPT_BUFFERSIZE, (long)RECV_BUFFER_BYTES);
	xfer_set_proxy(e, c, x->url);
	if (x->kind == XFER_BLOB) {
		/* A stream asks for the whole file: its server ignores Range. */
		if (!x->stream) {
			snprintf(range, sizeof(range), "%" PRIu64 "-%" PRIu64,
				 x->pos, x->job.end - 1);
			curl_easy_setopt(c, CURLOPT_RANGE, range);
		}
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, blob_write_cb);
	} else {
		if (x->head)
			curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
		if (x->range_len) {
			snprintf(range, sizeof(range), "%" PRIu64 "-%" PRIu64,
				 x->range_off, x->range_off + x->range_len - 1);
			curl_easy_setopt(c, CURLOPT_RANGE, range);
		}
		curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_write_cb);
	}
	curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
	if (curl_multi_add_handle(e->multi, c) != CURLM_OK) {
		curl_easy_cleanup(c);
		return -EIO;
	}
	x->easy = c;
	x->bg_paused = false;
	x->progress_ms = clock_now_ms();
	if (!x->good_ms)
		x->good_ms = x->progress_ms; /* the budget starts */
	x->win_ms = x->progress_ms;
	x->win_rx = x->rx;
	x->fresh = false;
	x->next = e->active;
	e->active = x;
	e->nactive++;
	atomic_store(&e->st_active, e->nactive);
	atomic_fetch_add(&e->st_requests, 1);
	return 0;
}

static void list_remove(struct xfer **head, struct xfer *x)
{
	struct xfer **pp;

	for (pp = head; *pp; pp = &(*pp)->next) {
		if (*pp == x) {
			*pp = x->next;
			x->next = NULL;
			return;
		}
	}
}

/* Takes x out of the multi handle (it stays allocated). */
static void xfer_detach(struct engine *e, struct xfer *x)
{
	list_remove(&e->active, x);
	e->nactive--;
	atomic_store(&e->st_active, e->nactive);
	curl_multi_remove_handle(e->multi, x->easy);
	curl_easy_cleanup(x->easy);
	x->easy = NULL;
}

static const char *xfer_what(struct xfer *x, char *buf, size_t len)
{
	char ubuf[512];

	if (x->kind == XFER_BLOB && x->stream)
		snprintf(buf, len, "whole-file GET of '%s'",
			 fblob_name(x->job.fb));
	else if (x->kind == XFER_BLOB)
		snprintf(buf, len,
			 "range GET of '%s' chunks %" PRIu64 "-%" PRIu64,
			 fblob_name(x->job.fb), x->pos / x->job.chunk_size,
			 (x->job.end - 1) / x->job.chunk_size);
	else
		snprintf(buf, len, "%s '%s'", x->head ? "HEAD" : "GET",
			 http_log_url(x->url, ubuf, sizeof(ubuf)));
	return buf;
}

/*
 * Remembers that chunks [first, end) of a blob just failed for good with
 * err, their budget having run from good_ms (a ring of FAIL_RECORDS).
 */
static void fail_remember(struct engine *e, const struct fetch_job *job,
			  uint64_t first, uint64_t good_ms, int err)
{
	struct fail_rec *r = &e->fails[e->fails_next++ % FAIL_RECORDS];

	if (!job->fb || first >= job->first + job->count)
		return;
	snprintf(r->hex, sizeof(r->hex), "%s", fblob_hex(job->fb));
	r->first = first;
	r->last = job->first + job->count - 1;
	r->at_ms = clock_now_ms();
	r->good_ms = good_ms;
	r->err = err;
}

/*
 * A failed read is asked again at once: the kernel follows a failed
 * readahead with a read of the one page, and readers of the same chunks
 * pile up. A job that overlaps chunks which failed for good less than
 * FAIL_MEMORY_MS ago inherits that failure's budget instead of a fresh
 * one (so the second ask of a read that used its whole budget fails at
 * once). Returns the record, or NULL.
 */
static const struct fail_rec *fail_recall(struct engine *e,
					  const struct fetch_job *job)
{
	const struct fail_rec *best = NULL;
	uint64_t now = clock_now_ms();

	for (int i = 0; i < FAIL_RECORDS; i++) {
		const struct fail_rec *r = &e->fails[i];

		if (!r->hex[0] || now - r->at_ms >= FAIL_MEMORY_MS ||
		    r->first >= job->first + job->count ||
		    r->last < job->first || strcmp(r->hex, fblob_hex(job->fb)))
			continue;
		if (!best || r->good_ms < best->good_ms)
			best = r;
	}
	return best;
}

/* Whether a failure says the server cannot deliver (worth remembering),
 * rather than the cache (a full disk) or an ending (unmount, a change). */
static bool fail_memorable(int err)
{
	return err && err != -ECANCELED && err != -ENOSPC && err != -EDQUOT &&
	       err != -ENOMEM && err != -ESTALE;
}

/* The transfer is over for good: hand back the job or the result. */
static void xfer_finish(struct engine *e, struct xfer *x, int err)
{
	struct sched *s = atomic_load(&e->sched);

	if (x->kind == XFER_BLOB && x->handed_over) {
		xfer_free(x); /* its job rides on another stream */
		return;
	}
	if (err)
		atomic_fetch_add(&e->st_failures, 1);
	if (x->kind == XFER_BLOB) {
		struct ride *r;

		if (x->stream)
			stream_stop(x, err);
		if (fail_memorable(err))
			fail_remember(e, &x->job, x->chunk_idx, x->good_ms,
				      err);
		/* A prefix that came: its hash state, for the next job of
		 * the chunk. */
		if (!err && x->job.partial && x->pos == x->job.end)
			sched_prefix_keep(s, x->job.fb, x->chunk_idx,
					  x->pos - x->chunk_idx *
							   x->job.chunk_size,
					  x->hs);
		/* A chunk whose bytes were half written is not done. */
		sched_job_end(s, &x->job, x->chunk_idx, err);
		memset(&x->job, 0, sizeof(x->job));
		while ((r = x->rides)) {
			x->rides = r->next;
			if (fail_memorable(err))
				fail_remember(e, &r->job, r->done_upto,
					      x->good_ms, err);
			sched_job_end(s, &r->job, r->done_upto, err);
			free(r);
		}
	} else {
		struct http_result res = x->res;
		http_done_fn done = x->done;
		void *arg = x->arg;

		res.err = err;
		res.status = x->status;
		if (!res.url)
			res.url = strdup(x->url);
		if (!res.etag && x->h_etag)
			res.etag = strdup(x->h_etag);
		if (x->h_content_range)
			res.content_range = strdup(x->h_content_range);
		if (!http_coding_identity(x->h_content_encoding, false))
			res.encoding = strdup(x->h_content_encoding);
		else if (!http_coding_identity(x->h_transfer_encoding, true))
			res.encoding = strdup(x->h_transfer_encoding);
		memset(&x->res, 0, sizeof(x->res));
		done(arg, &res);
	}
	xfer_free(x);
}

/*
 * How loud a final failure is: a blob transfer's failure becomes a read
 * error, logged here once; a plain request's caller (a listing, a HEAD)
 * turns it into its own message, so here it is only information.
 */
static enum hlog_level fail_level(const struct xfer *x, int err)
{
	if (x->kind != XFER_BLOB)
		return HLOG_INFO;
	/* Unmounting, or the blob failed for another reason already said:
	 * nobody is owed a line. */
	if (err == -ECANCELED)
		return HLOG_DEBUG;
	/* Fetched ahead or in the background: no reader waits on it (one
	 * who comes to want it asks again, and hears of it then). */
	if (x->job.prio != SCHED_DEMAND)
		return HLOG_INFO;
	/* A full cache disk: the read is answered uncached (fs/ops.c). */
	return err == -ENOSPC || err == -EDQUOT ? HLOG_WARN : HLOG_ERR;
}

static int backoff_ms(struct engine *e, struct xfer *x)
{
	int64_t ms = (int64_t)e->o.backoff_ms
		     << (x->fails > 10 ? 10 : x->fails - 1);

	if (ms > BACKOFF_CAP_MS)
		ms = BACKOFF_CAP_MS;
	/* jitter: 75% .. 125% */
	ms = ms * 3 / 4 + (ms > 1 ? random() % (ms / 2 + 1) : 0);
	if (x->wait_ms > ms)
		ms = x->wait_ms;
	return (int)ms;
}

/*
 * A try failed: schedules another, or finishes with err when none is
 * left. Only tries that landed no new bytes count against the retries;
 * the budget bounds them all in time.
 */
static void xfer_retry(struct engine *e, struct xfer *x, int err,
		       const char *why)
{
	uint64_t now = clock_now_ms();
	char what[600];
	int ms;

	x->attempt++;
	if (x->fresh)
		x->fails = 0; /* progress earns retries */
	x->fresh = false;
	x->fails++;
	if (x->no_retry || x->fails > e->o.retries) {
		hlog(fail_level(x, err), HLOG_FETCH,
		     "%s failed: %s after %d tries",
		     xfer_what(x, what, sizeof(what)), why, x->attempt);
		xfer_finish(e, x, err);
		return;
	}
	ms = backoff_ms(e, x);
	x->wait_ms = 0; /* a server's wait is for the try after it only */
	if (now + (uint64_t)ms >= x->good_ms + (uint64_t)e->o.budget_ms) {
		hlog(fail_level(x, err), HLOG_FETCH,
		     "%s failed: %s after %d tries; %" PRIu64
		     " s without progress, the next try would pass the %d s "
		     "budget",
		     xfer_what(x, what, sizeof(what)), why, x->attempt,
		     (now - x->good_ms) / 1000, e->o.budget_ms / 1000);
		xfer_finish(e, x, err);
		return;
	}
	if (x->kind == XFER_BLOB && x->stream)
		stream_stop(x, 0);
	hlog(HLOG_INFO, HLOG_FETCH,
	     "%s: %s, retrying in %d ms (try %d, %d of %d retries used)",
	     xfer_what(x, what, sizeof(what)), why, ms, x->attempt + 1,
	     x->fails, e->o.retries);
	atomic_fetch_add(&e->st_retries, 1);
	x->retry_at_ms = now + (uint64_t)ms;
	x->next = e->waiting;
	e->waiting = x;
}

/* Restarts at once from a new URL (redirect, or back to the origin),
 * or with url NULL from the same one (the rest after a short 206). */
static void xfer_redirect(struct engine *e, struct xfer *x, char *url)
{
	if (url) {
		free(x->url);
		x->url = url;
	}
	x->retry_at_ms = 0;
	x->next = e->waiting;
	e->waiting = x;
}

static void xfer_done(struct engine *e, struct xfer *x, CURLcode rc)
{
	char why[CURL_ERROR_SIZE + 600], ubuf[512];
	int err = x->err;
	long status = 0;

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
	x->status = status;
	xfer_detach(e, x);

	if (x->kind == XFER_BLOB && x->handed_over) {
		xfer_finish(e, x, 0);
		return;
	}
	if (x->kind == XFER_BLOB && x->stop_ok)
		rc = CURLE_OK;
	if (err) {
		snprintf(why, sizeof(why), "%s",
			 x->why[0] ? x->why : strerror(-err));
		if (x->fatal || x->kind == XFER_HTTP) {
			if (!x->fatal)
				goto retry;
			/* -ESTALE: blob_validate said what changed, once. */
			if (err != -ESTALE)
				hlog(fail_level(x, err), HLOG_FETCH,
				     "%s failed: %s",
				     xfer_what(x, ubuf, sizeof(ubuf)), why);
			xfer_finish(e, x, err);
			return;
		}
		goto retry;
	}
	if (rc != CURLE_OK) {
		err = curl_errno(rc);
		snprintf(why, sizeof(why), "%s",
			 x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc));
		if (!curl_retryable(err)) {
			hlog(fail_level(x, err), HLOG_FETCH, "%s failed: %s",
			     xfer_what(x, ubuf, sizeof(ubuf)), why);
			xfer_finish(e, x, err);
			return;
		}
		goto retry;
	}
	if (status >= 300 && status < 400 && status != 304) {
		char *next;

		if (!x->h_location) {
			err = -EPROTO;
			snprintf(why, sizeof(why), "HTTP %ld without Location",
				 status);
			goto fail;
		}
		if (++x->hops > ENGINE_MAX_REDIRECTS) {
			err = -ELOOP;
			snprintf(why, sizeof(why), "more than %d redirects",
				 ENGINE_MAX_REDIRECTS);
			goto fail;
		}
		if (x->kind == XFER_BLOB && x->h_linked_size >= 0 &&
		    (uint64_t)x->h_linked_size != x->job.file_size) {
			/* The origin says the file it redirects to differs. */
			err = -ESTALE;
			snprintf(why, sizeof(why),
				 "X-Linked-Size %" PRId64 ", expected %" PRIu64,
				 x->h_linked_size, x->job.file_size);
			goto fail;
		}
		if (http_url_resolve(x->url, x->h_location, &next)) {
			err = -EPROTO;
			snprintf(why, sizeof(why), "bad Location '%s'",
				 http_log_url(x->h_location, ubuf,
					      sizeof(ubuf)));
			goto fail;
		}
		if (strncasecmp(next, "http://", 7) &&
		    strncasecmp(next, "https://", 8)) {
			err = -EPROTO;
			snprintf(why, sizeof(why),
				 "redirect to '%s' refused: only http and "
				 "https are followed",
				 http_log_url(next, ubuf, sizeof(ubuf)));
			free(next);
			goto fail;
		}
		hlog(HLOG_DEBUG, HLOG_HTTP, "HTTP %ld: redirected to '%s'",
		     status, http_log_url(next, ubuf, sizeof(ubuf)));
		if (x->kind == XFER_BLOB && !http_same_origin(next, x->origin))
			sched_set_redirect(atomic_load(&e->sched), x->job.fb,
					   next);
		xfer_redirect(e, x, next);
		return;
	}
	if (status >= 400) {
		bool redirected = strcmp(x->url, x->origin) != 0;

		err = http_status_errno(status);
		snprintf(why, sizeof(why), "HTTP %ld", status);
		if (status == 412 && x->kind == XFER_BLOB && x->job.if_match) {
			/* If-Match failed: the object is not the one listed. */
			err = -ESTALE;
			snprintf(why, sizeof(why),
				 "HTTP 412: it changed on the server since it "
				 "was listed (ETag %s)",
				 x->job.etag ? x->job.etag : "?");
			goto fail;
		}
		if (redirected &&
		    (status == 400 || status == 403 || status == 410) &&
		    x->hops <= ENGINE_MAX_REDIRECTS) {
			/* An expired signed URL: resolve it again. */
			char *origin = strdup(x->origin);

			if (!origin)
				goto fail;
			hlog(HLOG_INFO, HLOG_FETCH,
			     "'%s' answered HTTP %ld: resolving it again",
			     http_log_url(x->url, ubuf, sizeof(ubuf)), status);
			if (x->kind == XFER_BLOB)
				sched_set_redirect(atomic_load(&e->sched),
						   x->job.fb, NULL);
			x->hops++;
			xfer_redirect(e, x, origin);
			return;
		}
		if (status_retryable(status)) {
			x->wait_ms = 0;
			if (x->h_retry_after_ms >= 0)
				x->wait_ms = (int)x->h_retry_after_ms;
			if (x->h_ratelimit_ms > x->wait_ms)
				x->wait_ms = (int)x->h_ratelimit_ms;
			if (x->wait_ms > e->o.max_wait_ms)
				x->wait_ms = e->o.max_wait_ms;
			goto retry;
		}
		if (x->kind == XFER_HTTP) {
			/* The caller reads the status and the error headers. */
			xfer_finish(e, x, err);
			return;
		}
		goto fail;
	}
	if (x->kind == XFER_BLOB && x->stream) {
		if (!x->stop_ok && x->spos < x->job.file_size) {
			err = -ECONNRESET;
			snprintf(why, sizeof(why),
				 "short body: %" PRIu64 " bytes missing",
				 x->job.file_size - x->spos);
			goto retry;
		}
		xfer_finish(e, x, 0);
		return;
	}
	if (x->kind == XFER_BLOB) {
		if (x->pos < x->job.end && x->validated && status == 206 &&
		    x->pos == x->range_last + 1) {
			/* A legal short answer (RFC 9110 14.4): all it said
			 * it would send came. Not a failure: ask for the
			 * rest at once. */
			hlog(HLOG_DEBUG, HLOG_HTTP,
			     "%s: a short 206 ended at %" PRIu64
			     ", asking for the rest",
			     xfer_what(x, ubuf, sizeof(ubuf)), x->pos);
			x->attempt++;
			xfer_redirect(e, x, NULL);
			return;
		}
		if (x->pos < x->job.end) {
			err = -ECONNRESET;
			snprintf(why, sizeof(why),
				 "short body: %" PRIu64 " bytes missing",
				 x->job.end - x->pos);
			goto retry;
		}
		xfer_finish(e, x, 0);
		return;
	}
	xfer_finish(e, x, 0);
	return;
retry:
	xfer_retry(e, x, err, why);
	return;
fail:
	hlog(fail_level(x, err), HLOG_FETCH, "%s failed: %s",
	     xfer_what(x, ubuf, sizeof(ubuf)), why);
	xfer_finish(e, x, err);
}

/* A job from the scheduler becomes a transfer. */
static int blob_xfer_new(struct engine *e, struct fetch_job *job,
			 struct xfer **out)
{
	struct xfer *x = calloc(1, sizeof(*x));
	int64_t exp;

	*out = NULL;
	if (!x)
		return -ENOMEM;
	x->e = e;
	x->kind = XFER_BLOB;
	x->job = *job;
	x->pos = job->off;
	x->chunk_idx = job->first;
	x->hs = XXH3_createState();
	exp = http_url_expiry(job->url);
	if (exp && exp < (int64_t)time(NULL) + 30 &&
	    strcmp(job->url, job->origin)) {
		/* A cached signed URL about to expire: start at the origin. */
		x->url = strdup(job->origin);
	} else {
		x->url = strdup(job->url);
	}
	x->origin = strdup(job->origin);
	x->auth = job->auth ? strdup(job->auth) : NULL;
	if (!x->hs || !x->url || !x->origin || (job->auth && !x->auth)) {
		x->job.fb = NULL; /* the caller still owns the job */
		xfer_free(x);
		return -ENOMEM;
	}
	if (job->hs_init) /* after a prefix fetched before */
		XXH3_copyState(x->hs, job->hs_init);
	else
		XXH3_64bits_reset(x->hs);
	*out = x;
	return 0;
}

static bool xfer_is_background(const struct xfer *x)
{
	return x->kind == XFER_BLOB && x->job.prio == SCHED_BACKGROUND;
}

static int background_count(const struct engine *e)
{
	const struct xfer *x;
	int n = 0;

	for (x = e->active; x; x = x->next)
		n += xfer_is_background(x);
	return n;
}

/*
 * Background transfers yield to demand and keep under -o prefetch_rate
 * by pausing: their write callback returns CURL_WRITEFUNC_PAUSE (libcurl
 * keeps those bytes and hands them over again on unpause; the server
 * stops sending once the socket's window is full), and
 * engine_pace_background unpauses them.
 *  - Demand: while a SCHED_DEMAND transfer runs, and BG_QUIET_MS after,
 *    every background one is paused, so a parked read does not share the
 *    link with a dozen background streams (it got a 1/13 share of it at
 *    20 ms RTT before: 0.1-0.36 s per 4 KiB read instead of about 0.05),
 *    nor does a reader of one read after the other (at loopback the
 *    fill of the file being read randomly took half of each read).
 *  - The cap: one token bucket for all background transfers, filled at
 *    the cap and holding BG_BURST_MS of it; a callback takes its bytes,
 *    and pauses its transfer while the bucket is empty. (Tried first:
 *    CURLOPT_MAX_RECV_SPEED_LARGE, shared out among them. libcurl 7.88
 *    checks it only between reads, and one read loop takes a whole 4 MiB
 *    run on a fast link: nothing was slowed.)
 * A paused transfer is held, not stalled: its stall, trickle and budget
 * clocks restart while we hold it. Demand and readahead transfers never
 * wait; a chunk a reader comes to need while a background transfer has
 * it waits with that transfer. Engine thread.
 */
static bool background_take(struct xfer *x, size_t len)
{
	struct engine *e = x->e;

	if (!xfer_is_background(x))
		return true;
	if (!e->bg_yield) {
		if (!atomic_load(&e->bg_rate))
			return true;
		if (e->bg_tokens > 0) {
			e->bg_tokens -= (int64_t)len;
			return true;
		}
	}
	x->bg_paused = true;
	e->bg_paused_any = true;
	return false;
}

/* A paused transfer's clocks restart: pausing is not stalling. */
static void xfer_hold(struct xfer *x, uint64_t now)
{
	x->progress_ms = now;
	x->win_ms = now;
	x->win_rx = x->rx;
	x->good_ms = now;
	x->credit_rx = x->rx;
}

static void engine_pace_background(struct engine *e, int *next_ms)
{
	uint64_t rate = atomic_load(&e->bg_rate), now = clock_now_ms();
	int64_t burst = (int64_t)(rate * BG_BURST_MS / 1000);
	unsigned int n = 0, i, first, pass;
	struct xfer *x;
	int ms;

	e->bg_yield = false;
	for (x = e->active; x; x = x->next) {
		if (x->kind == XFER_BLOB && x->job.prio == SCHED_DEMAND)
			e->demand_ms = now + 1;
		if (x->bg_paused) {
			xfer_hold(x, now);
			n++;
		}
	}
	if (e->demand_ms && now + 1 - e->demand_ms < BG_QUIET_MS) {
		e->bg_yield = true;
		if (e->bg_paused_any) {
			/* Look again when the quiet time is over. */
			ms = (int)(BG_QUIET_MS - (now + 1 - e->demand_ms)) + 1;
			if (*next_ms < 0 || ms < *next_ms)
				*next_ms = ms;
		}
	}
	if (rate && e->bg_refill_ms)
		e->bg_tokens +=
			(int64_t)((now - e->bg_refill_ms) * rate / 1000);
	e->bg_refill_ms = now;
	if (burst < RECV_BUFFER_BYTES)
		burst = RECV_BUFFER_BYTES;
	if (e->bg_tokens > burst)
		e->bg_tokens = burst;
	if (!e->bg_paused_any || e->bg_yield)
		return; /* the quiet time's end wakes the loop */
	if (rate && e->bg_tokens <= 0) {
		ms = (int)((uint64_t)-e->bg_tokens * 1000 / rate) + 1;
		if (*next_ms < 0 || ms < *next_ms)
			*next_ms = ms;
		return;
	}
	/* The first one unpaused takes the bucket (libcurl hands it its
	 * bytes at once): a different one first each time, for fairness. */
	e->bg_paused_any = false;
	first = n ? e->bg_turn++ % n : 0;
	for (pass = 0; pass < 2; pass++) {
		i = 0;
		for (x = e->active; x; x = x->next) {
			if (!x->bg_paused)
				continue;
			if ((i++ >= first) != !pass)
				continue;
			x->bg_paused = false;
			curl_easy_pause(x->easy, CURLPAUSE_CONT);
		}
	}
}

/* Room for one more background transfer under the cap. */
static bool background_room(const struct engine *e)
{
	uint64_t rate = atomic_load(&e->bg_rate), most;

	if (!rate)
		return true;
	most = rate / BG_MIN_SHARE_BPS;
	if (most < 1)
		most = 1;
	if (most > (uint64_t)e->o.connections)
		most = (uint64_t)e->o.connections;
	return (uint64_t)background_count(e) < most;
}

void engine_set_background_rate(struct engine *e, uint64_t bytes_per_s)
{
	atomic_store(&e->bg_rate, bytes_per_s);
	curl_multi_wakeup(e->multi);
}

static void engine_pull_jobs(struct engine *e, int *next_ms)
{
	struct sched *s = atomic_load(&e->sched);
	int reserve = e->o.connections / 4;

	if (!s)
		return;
	while (e->nactive < e->o.connections && !atomic_load(&e->stop)) {
		bool background = e->nactive < e->o.connections - reserve &&
				  background_room(e);
		const struct fail_rec *rec;
		struct fetch_job job;
		struct xfer *x, *o;
		int ms = -1, err;

		if (!sched_take_job(s, background, &job, &ms)) {
			if (ms >= 0 && (*next_ms < 0 || ms < *next_ms))
				*next_ms = ms;
			return;
		}
		rec = fail_recall(e, &job);
		if (rec &&
		    clock_now_ms() >= rec->good_ms + (uint64_t)e->o.budget_ms) {
			hlog(HLOG_INFO, HLOG_FETCH,
			     "'%s' chunks %" PRIu64 "-%" PRIu64
			     " failed a moment ago without progress for the "
			     "whole %d s budget: not asked again yet",
			     fblob_name(job.fb), job.first,
			     job.first + job.count - 1, e->o.budget_ms / 1000);
			sched_job_end(s, &job, job.first, rec->err);
			continue;
		}
		o = stream_find(e, job.fb, job.first, NULL);
		if (o && !stream_add_ride(o, &job, job.first))
			continue; /* the stream will pass them */
		if (!sched_blob_ranges(job.fb) &&
		    blob_probe_running(e, job.fb, job.prio)) {
			/* Its first answer says whether Range works. */
			sched_job_defer(s, &job, RANGES_WAIT_MS);
			continue;
		}
		err = blob_xfer_new(e, &job, &x);
		if (!err && rec)
			x->good_ms = rec->good_ms;
		if (!err)
			err = xfer_start(e, x);
		if (err) {
			if (x)
				xfer_finish(e, x, err);
			else
				sched_job_end(s, &job, job.first, err);
			return;
		}
	}
}

/* Starts waiting transfers whose time has come, if slots are free. */
static void engine_start_waiting(struct engine *e, int *next_ms)
{
	uint64_t now = clock_now_ms();
	struct xfer **pp = &e->waiting;
	int err;

	while (*pp) {
		struct xfer *x = *pp;

		if (x->retry_at_ms > now) {
			int ms = (int)(x->retry_at_ms - now);

			if (*next_ms < 0 || ms < *next_ms)
				*next_ms = ms;
			pp = &x->next;
			continue;
		}
		if (x->kind == XFER_BLOB && sched_blob_cancelled(x->job.fb)) {
			err = fblob_error(x->job.fb);
			*pp = x->next;
			xfer_finish(e, x, err ? err : -ECANCELED);
			continue;
		}
		if (e->nactive >= e->o.connections)
			return;
		*pp = x->next;
		x->next = NULL;
		err = xfer_start(e, x);
		if (err)
			xfer_finish(e, x, err);
	}
}

/*
 * Stops transfers of blobs failed by sched_fail_blob (linked cancel), and
 * transfers that received nothing for the stall timeout (retried). Asks
 * to be called again within STALL_CHECK_MS while transfers run.
 */
static void engine_reap(struct engine *e, int *next_ms)
{
	struct xfer *x = e->active, *next;
	uint64_t now = clock_now_ms();
	uint64_t stall_ms = (uint64_t)e->o.stall_timeout_ms;
	char why[128], what[600];

	for (; x; x = next) {
		next = x->next;
		if (x->kind == XFER_BLOB && x->handed_over) {
			continue; /* ends with its curl message */
		} else if (x->kind == XFER_BLOB &&
			   sched_blob_cancelled(x->job.fb)) {
			int err = fblob_error(x->job.fb);

			xfer_detach(e, x);
			xfer_finish(e, x, err ? err : -ECANCELED);
		} else if (now - x->good_ms >= (uint64_t)e->o.budget_ms) {
			/* The budget is spent, whatever retries are left. */
			xfer_detach(e, x);
			x->attempt++;
			hlog(fail_level(x, -ETIMEDOUT), HLOG_FETCH,
			     "%s failed: no progress for %d s (the budget) "
			     "after %d tries",
			     xfer_what(x, what, sizeof(what)),
			     e->o.budget_ms / 1000, x->attempt);
			xfer_finish(e, x, -ETIMEDOUT);
		} else if (now - x->progress_ms >= stall_ms) {
			snprintf(why, sizeof(why), "no data for %d ms",
				 e->o.stall_timeout_ms);
			xfer_detach(e, x);
			xfer_retry(e, x, -ETIMEDOUT, why);
		} else if (now - x->win_ms >= stall_ms &&
			   x->rx - x->win_rx <
				   LOW_SPEED_BPS * stall_ms / 1000) {
			/* A trickle: bytes come, but too few to matter (or
			 * only headers came: no data). */
			if (x->rx == x->win_rx)
				snprintf(why, sizeof(why), "no data for %d ms",
					 e->o.stall_timeout_ms);
			else
				snprintf(why, sizeof(why),
					 "too slow: %" PRIu64 " bytes in %d ms",
					 x->rx - x->win_rx,
					 e->o.stall_timeout_ms);
			xfer_detach(e, x);
			xfer_retry(e, x, -ETIMEDOUT, why);
		} else if (now - x->win_ms >= stall_ms) {
			x->win_ms = now;
			x->win_rx = x->rx;
		}
	}
	if (e->active && (*next_ms < 0 || *next_ms > STALL_CHECK_MS))
		*next_ms = STALL_CHECK_MS;
}

static void engine_shutdown(struct engine *e)
{
	struct xfer *x;

	while ((x = e->active)) {
		xfer_detach(e, x);
		xfer_finish(e, x, -ECANCELED);
	}
	while ((x = e->waiting)) {
		e->waiting = x->next;
		xfer_finish(e, x, -ECANCELED);
	}
	pthread_mutex_lock(&e->lock);
	x = e->submitted;
	e->submitted = NULL;
	pthread_mutex_unlock(&e->lock);
	while (x) {
		struct xfer *next = x->next;

		xfer_finish(e, x, -ECANCELED);
		x = next;
	}
	if (atomic_load(&e->sched))
		sched_cancel_all(atomic_load(&e->sched), -ECANCELED);
}

/* Appends the submitted requests to the waiting list, oldest first. */
static void engine_take_submitted(struct engine *e)
{
	struct xfer *sub, *rev = NULL, **tail = &e->waiting;

	pthread_mutex_lock(&e->lock);
	sub = e->submitted;
	e->submitted = NULL;
	pthread_mutex_unlock(&e->lock);
	while (sub) {
		struct xfer *next = sub->next;

		sub->next = rev;
		rev = sub;
		sub = next;
	}
	while (*tail)
		tail = &(*tail)->next;
	*tail = rev;
}

static void *engine_main(void *arg)
{
	struct engine *e = arg;

	while (!atomic_load(&e->stop)) {
		struct CURLMsg *msg;
		struct xfer *x;
		int running, left, next_ms = -1;

		curl_multi_perform(e->multi, &running);
		while ((msg = curl_multi_info_read(e->multi, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE,
					  (char **)&x);
			xfer_done(e, x, msg->data.result);
		}
		/* Out of every curl callback now: answer the readers. */
		sched_waiters_fire(e->fire);
		e->fire = NULL;
		engine_take_submitted(e);
		engine_reap(e, &next_ms);
		engine_start_waiting(e, &next_ms);
		engine_pull_jobs(e, &next_ms);
		engine_pace_background(e, &next_ms);
		if (next_ms < 0 || next_ms > IDLE_POLL_MS)
			next_ms = IDLE_POLL_MS;
		curl_multi_poll(e->multi, NULL, 0, next_ms, NULL);
	}
	engine_shutdown(e);
	return NULL;
}

static void curl_init_once(void)
{
	curl_global_init(CURL_GLOBAL_ALL);
}

int engine_new(const struct engine_opts *opts, struct engine **out)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	struct engine *e;
	int err;

	*out = NULL;
	pthread_once(&once, curl_init_once);
	e = calloc(1, sizeof(*e));
	if (!e)
		return -ENOMEM;
	e->o = *opts;
	if (e->o.connections < 1)
		e->o.connections = 1;
	if (e->o.budget_ms <= 0)
		e->o.budget_ms = ENGINE_BUDGET_MS_DEFAULT;
	snprintf(e->user_agent, sizeof(e->user_agent), "%s",
		 opts->user_agent ? opts->user_agent :
				    "hollowfs/" HOLLOWFS_VERSION);
	pthread_mutex_init(&e->lock, NULL);
	err = engine_proxy_init(e, opts->proxy);
	if (err)
		goto out_free;
	e->multi = curl_multi_init();
	if (!e->multi) {
		err = -EIO;
		goto out_free;
	}
	curl_multi_setopt(e->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
			  (long)e->o.connections);
	curl_multi_setopt(e->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
			  (long)e->o.connections);
	curl_multi_setopt(e->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
	err = -pthread_create(&e->thread, NULL, engine_main, e);
	if (err)
		goto out_free;
	e->thread_started = true;
	*out = e;
	return 0;
out_free:
	if (e->multi)
		curl_multi_cleanup(e->multi);
	pthread_mutex_destroy(&e->lock);
	free(e->proxy);
	free(e);
	return err;
}

void engine_free(struct engine *e)
{
	struct sched *s;

	if (!e)
		return;
	/* No job may kick the engine once it is gone: stop the scheduler's
	 * work (waiters answered, worker pool joined) first. */
	s = atomic_load(&e->sched);
	if (s)
		sched_shutdown(s);
	atomic_store(&e->stop, true);
	curl_multi_wakeup(e->multi);
	if (e->thread_started)
		pthread_join(e->thread, NULL);
	curl_multi_cleanup(e->multi);
	pthread_mutex_destroy(&e->lock);
	free(e->proxy);
	free(e);
}

void engine_attach_sched(struct engine *e, struct sched *s)
{
	atomic_store(&e->sched, s);
	curl_multi_wakeup(e->multi);
}

void engine_kick(struct engine *e)
{
	if (e)
		curl_multi_wakeup(e->multi);
}

int engine_http_submit(struct engine *e, const struct http_req *req,
		       http_done_fn done, void *arg)
{
	struct xfer *x;

	if (atomic_load(&e->stop))
		return -ECANCELED;
	x = calloc(1, sizeof(*x));
	if (!x)
		return -ENOMEM;
	x->e = e;
	x->kind = XFER_HTTP;
	x->url = strdup(req->url);
	x->origin = strdup(req->url);
	x->auth = req->auth ? strdup(req->auth) : NULL;
	x->aws_sigv4 = req->aws_sigv4 ? strdup(req->aws_sigv4) : NULL;
	x->userpwd = req->userpwd ? strdup(req->userpwd) : NULL;
	x->if_match = req->if_match ? strdup(req->if_match) : NULL;
	x->head = req->head;
	x->no_retry = req->no_retry;
	x->range_off = req->range_off;
	x->range_len = req->range_len;
	x->max_body = req->max_body ? req->max_body : BODY_MAX_DEFAULT;
	x->done = done;
	x->arg = arg;
	x->res.content_length = -1;
	x->res.linked_size = -1;
	if (!x->url || !x->origin || (req->auth && !x->auth) ||
	    (req->aws_sigv4 && !x->aws_sigv4) ||
	    (req->if_match && !x->if_match) || (req->userpwd && !x->userpwd)) {
		xfer_free(x);
		return -ENOMEM;
	}
	pthread_mutex_lock(&e->lock);
	x->next = e->submitted;
	e->submitted = x;
	pthread_mutex_unlock(&e->lock);
	curl_multi_wakeup(e->multi);
	return 0;
}

struct sync_wait {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	struct http_result *res;
};

static void sync_done(void *arg, struct http_result *res)
{
	struct sync_wait *w = arg;

	pthread_mutex_lock(&w->lock);
	*w->res = *res;
	w->done = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

int engine_http(struct engine *e, const struct http_req *req,
		struct http_result *res)
{
	struct sync_wait w = { .res = res };
	int err;

	memset(res, 0, sizeof(*res));
	res->content_length = -1;
	res->linked_size = -1;
	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cond, NULL);
	err = engine_http_submit(e, req, sync_done, &w);
	if (err) {
		res->err = err;
		goto out;
	}
	pthread_mutex_lock(&w.lock);
	while (!w.done)
		pthread_cond_wait(&w.cond, &w.lock);
	pthread_mutex_unlock(&w.lock);
out:
	pthread_cond_destroy(&w.cond);
	pthread_mutex_destroy(&w.lock);
	return res->err;
}

void engine_get_stats(struct engine *e, struct engine_stats *st)
{
	st->bytes_fetched = atomic_load(&e->st_bytes);
	st->requests = atomic_load(&e->st_requests);
	st->retries = atomic_load(&e->st_retries);
	st->failures = atomic_load(&e->st_failures);
	st->transfers = (unsigned int)atomic_load(&e->st_active);
	st->connections = (unsigned int)e->o.connections;
}
