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
#include <stdatomic.h>
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

enum xfer_kind { XFER_HTTP, XFER_BLOB };

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
	int hops; /* redirects followed */
	int attempt; /* 0 for the first */
	uint64_t retry_at_ms; /* when waiting */
	uint64_t progress_ms; /* when a byte last arrived (or the start) */
	int wait_ms; /* server-requested wait for the next try */

	/* The response being received (reset per attempt). */
	long status;
	bool validated; /* blob: headers checked, bytes may land */
	bool stop_ok; /* blob: aborted on purpose, all bytes in */
	int err; /* set by a callback: the cause of an abort */
	bool fatal; /* err is not worth a retry */
	uint64_t skip; /* blob: body bytes to drop (a 200 reply) */
	char *h_location, *h_content_range, *h_etag;
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
};

struct engine {
	struct engine_opts o;
	char user_agent[64];
	CURLM *multi;
	pthread_t thread;
	bool thread_started;

	pthread_mutex_t lock;
	struct xfer *submitted; /* protected by lock */
	_Atomic bool stop;
	struct sched *_Atomic sched;

	/* engine thread only */
	struct sched_waiter *fire; /* satisfied in callbacks, to call */
	struct xfer *active; /* added to multi */
	struct xfer *waiting; /* backing off, or not started */
	int nactive;

	_Atomic uint64_t st_bytes, st_requests, st_retries, st_failures;
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
		x->h_location = x->h_content_range = x->h_etag = NULL;
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
		}
	}
#undef IS
	return len;
}

static size_t http_write_cb(char *data, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	struct http_result *r = &x->res;
	size_t len = size * nmemb;

	x->progress_ms = clock_now_ms();
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

/*
 * Checks the response of a blob transfer before its first byte lands.
 * Returns 0, or a negative errno (x->fatal set when retrying is useless).
 */
static int blob_validate(struct xfer *x)
{
	struct fetch_job *j = &x->job;
	struct sched *s = atomic_load(&x->e->sched);
	char ubuf[512];

	curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &x->status);
	if (x->status != 206 && x->status != 200)
		return 1; /* an error or redirect body: not ours */
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
	} else {
		curl_off_t cl = -1;

		curl_easy_getinfo(x->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T,
				  &cl);
		if (cl >= 0 && (uint64_t)cl != j->file_size) {
			hlog(HLOG_ERR, HLOG_FETCH,
			     "'%s' changed on the server: size %lld, expected "
			     "%" PRIu64,
			     http_log_url(x->url, ubuf, sizeof(ubuf)),
			     (long long)cl, j->file_size);
			x->fatal = true;
			return -ESTALE;
		}
		/* The server ignored Range: drop what comes before ours. */
		x->skip = x->pos;
		hlog(HLOG_DEBUG, HLOG_HTTP,
		     "'%s' ignored Range: skipping %" PRIu64 " bytes",
		     http_log_url(x->url, ubuf, sizeof(ubuf)), x->skip);
	}
	if (!j->pinned && !j->etag && x->h_etag && s) {
		sched_learn_etag(s, j->fb, x->h_etag);
		j->etag = strdup(x->h_etag);
	}
	return 0;
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
 * Blob bytes: skip what a 200 sends before our range, pwrite the rest at
 * its offset, hash it chunk by chunk and complete each chunk as its last
 * byte lands. Returning less than len makes curl abort the transfer.
 */
static size_t blob_write_cb(char *data, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	struct fetch_job *j = &x->job;
	size_t len = size * nmemb;
	const char *p = data;
	size_t left = len;
	int err;

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
	if (x->skip) {
		size_t n = left < x->skip ? left : (size_t)x->skip;

		x->skip -= n;
		p += n;
		left -= n;
	}
	while (left && x->pos < j->end) {
		uint64_t chunk_end =
			(x->chunk_idx + 1) * (uint64_t)j->chunk_size;
		size_t n = left;

		if (chunk_end > j->end)
			chunk_end = j->end;
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
		p += n;
		left -= n;
		atomic_fetch_add(&x->e->st_bytes, n);
		if (x->pos == chunk_end) {
			err = blob_chunk_complete(x);
			if (err) {
				x->err = err;
				x->fatal = true;
				return 0;
			}
		}
	}
	if (x->pos == j->end && (left || x->status == 200)) {
		/* All our bytes are in; a 200 would send the rest of the file. */
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
	x->h_location = x->h_content_range = x->h_etag = NULL;
	x->h_retry_after_ms = x->h_ratelimit_ms = -1;
	x->h_linked_size = -1;
	x->status = 0;
	x->validated = false;
	x->stop_ok = false;
	x->err = 0;
	x->fatal = false;
	x->skip = 0;
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
	if (x->hs)
		XXH3_freeState(x->hs);
	free(x);
}

/* Builds the easy handle of one attempt and adds it to the multi handle;
 * on error nothing is left behind. */
static int xfer_start(struct engine *e, struct xfer *x)
{
	CURL *c;
	char range[64];
	bool to_origin = http_same_origin(x->url, x->origin);

	xfer_reset_response(x);
	curl_slist_free_all(x->hdrs);
	x->hdrs = curl_slist_append(NULL, "Accept-Encoding: identity");
	if (x->hdrs && x->auth && to_origin)
		x->hdrs = curl_slist_append(x->hdrs, x->auth);
	if (!x->hdrs)
		return -ENOMEM;
	c = curl_easy_init();
	if (!c)
		return -ENOMEM;
	curl_easy_setopt(c, CURLOPT_URL, x->url);
	curl_easy_setopt(c, CURLOPT_PRIVATE, x);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, x->hdrs);
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
	if (x->kind == XFER_BLOB) {
		snprintf(range, sizeof(range), "%" PRIu64 "-%" PRIu64, x->pos,
			 x->job.end - 1);
		curl_easy_setopt(c, CURLOPT_RANGE, range);
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
	x->progress_ms = clock_now_ms();
	x->next = e->active;
	e->active = x;
	e->nactive++;
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
	curl_multi_remove_handle(e->multi, x->easy);
	curl_easy_cleanup(x->easy);
	x->easy = NULL;
}

static const char *xfer_what(struct xfer *x, char *buf, size_t len)
{
	char ubuf[512];

	if (x->kind == XFER_BLOB)
		snprintf(buf, len,
			 "range GET of '%s' chunks %" PRIu64 "-%" PRIu64,
			 fblob_name(x->job.fb), x->pos / x->job.chunk_size,
			 (x->job.end - 1) / x->job.chunk_size);
	else
		snprintf(buf, len, "%s '%s'", x->head ? "HEAD" : "GET",
			 http_log_url(x->url, ubuf, sizeof(ubuf)));
	return buf;
}

/* The transfer is over for good: hand back the job or the result. */
static void xfer_finish(struct engine *e, struct xfer *x, int err)
{
	struct sched *s = atomic_load(&e->sched);

	if (err)
		atomic_fetch_add(&e->st_failures, 1);
	if (x->kind == XFER_BLOB) {
		uint64_t done_upto = x->chunk_idx;

		/* A chunk whose bytes were half written is not done. */
		sched_job_end(s, &x->job, done_upto, err);
		memset(&x->job, 0, sizeof(x->job));
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
	/* A full cache disk: the read is answered uncached (fs/ops.c). */
	return err == -ENOSPC || err == -EDQUOT ? HLOG_WARN : HLOG_ERR;
}

static int backoff_ms(struct engine *e, struct xfer *x)
{
	int64_t ms = (int64_t)e->o.backoff_ms
		     << (x->attempt > 10 ? 10 : x->attempt - 1);

	if (ms > BACKOFF_CAP_MS)
		ms = BACKOFF_CAP_MS;
	/* jitter: 75% .. 125% */
	ms = ms * 3 / 4 + (ms > 1 ? random() % (ms / 2 + 1) : 0);
	if (x->wait_ms > ms)
		ms = x->wait_ms;
	return (int)ms;
}

/* Schedules another attempt, or finishes with err when none is left. */
static void xfer_retry(struct engine *e, struct xfer *x, int err,
		       const char *why)
{
	char what[600];
	int ms;

	x->attempt++;
	if (x->no_retry || x->attempt > e->o.retries) {
		hlog(fail_level(x, err), HLOG_FETCH,
		     "%s failed: %s after %d tries",
		     xfer_what(x, what, sizeof(what)), why, x->attempt);
		xfer_finish(e, x, err);
		return;
	}
	ms = backoff_ms(e, x);
	hlog(HLOG_INFO, HLOG_FETCH, "%s: %s, retrying in %d ms (try %d of %d)",
	     xfer_what(x, what, sizeof(what)), why, ms, x->attempt + 1,
	     e->o.retries + 1);
	atomic_fetch_add(&e->st_retries, 1);
	x->retry_at_ms = clock_now_ms() + (uint64_t)ms;
	x->next = e->waiting;
	e->waiting = x;
}

/* Restarts at once from a new URL (redirect, or back to the origin). */
static void xfer_redirect(struct engine *e, struct xfer *x, char *url)
{
	free(x->url);
	x->url = url;
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

	if (x->kind == XFER_BLOB && x->stop_ok)
		rc = CURLE_OK;
	if (err) {
		snprintf(why, sizeof(why), "%s", strerror(-err));
		if (x->fatal || x->kind == XFER_HTTP) {
			if (!x->fatal)
				goto retry;
			hlog(fail_level(x, err), HLOG_FETCH, "%s failed: %s",
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
	if (x->kind == XFER_BLOB) {
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
	XXH3_64bits_reset(x->hs);
	*out = x;
	return 0;
}

static void engine_pull_jobs(struct engine *e, int *next_ms)
{
	struct sched *s = atomic_load(&e->sched);
	int reserve = e->o.connections / 4;

	if (!s)
		return;
	while (e->nactive < e->o.connections && !atomic_load(&e->stop)) {
		struct fetch_job job;
		struct xfer *x;
		int ms = -1, err;
		bool background = e->nactive < e->o.connections - reserve;

		if (!sched_take_job(s, background, &job, &ms)) {
			if (ms >= 0 && (*next_ms < 0 || ms < *next_ms))
				*next_ms = ms;
			return;
		}
		err = blob_xfer_new(e, &job, &x);
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
	char why[64];

	for (; x; x = next) {
		next = x->next;
		if (x->kind == XFER_BLOB && sched_blob_cancelled(x->job.fb)) {
			int err = fblob_error(x->job.fb);

			xfer_detach(e, x);
			xfer_finish(e, x, err ? err : -ECANCELED);
		} else if (now - x->progress_ms >=
			   (uint64_t)e->o.stall_timeout_ms) {
			snprintf(why, sizeof(why), "no data for %d ms",
				 e->o.stall_timeout_ms);
			xfer_detach(e, x);
			xfer_retry(e, x, -ETIMEDOUT, why);
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
	snprintf(e->user_agent, sizeof(e->user_agent), "%s",
		 opts->user_agent ? opts->user_agent :
				    "hollowfs/" HOLLOWFS_VERSION);
	pthread_mutex_init(&e->lock, NULL);
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
	x->head = req->head;
	x->no_retry = req->no_retry;
	x->range_off = req->range_off;
	x->range_len = req->range_len;
	x->max_body = req->max_body ? req->max_body : BODY_MAX_DEFAULT;
	x->done = done;
	x->arg = arg;
	x->res.content_length = -1;
	x->res.linked_size = -1;
	if (!x->url || !x->origin || (req->auth && !x->auth)) {
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
}
