/*
 * sched: what to fetch, once, in what order (DESIGN.md "Fetching").
 *
 * A struct fblob is one remote file bound to its local blob. Readers ask
 * for chunks with sched_want(): chunks already DONE cost nothing, others
 * are queued once (single-flight: any number of wants of one chunk make
 * one fetch), and the waiter is called back when the last chunk it needs
 * is DONE, or with the first error of a chunk it needs. FUSE reads park
 * that way and never block a worker thread; tools and tests may block in
 * sched_wait() instead.
 *
 * Priorities: SCHED_DEMAND > SCHED_READAHEAD > SCHED_BACKGROUND. A DEMAND
 * want lifts a chunk queued at a lower priority. Background work leaves
 * connection slots free for demand.
 *
 * Threads (DESIGN.md "Threads: one role each"):
 *  - the engine thread takes jobs (sched_take_job) and reports chunks;
 *    it reads nothing but the 8-byte .sums entry of a chunk it claims;
 *  - a worker pool (fetch/work.h) probes chunks whose .sums entry says
 *    they may be complete on disk, copies file:// sources with pread,
 *    and checks complete blobs against their hash, then runs the
 *    on_verified / on_corrupt hooks;
 *  - the saver thread only syncs: every second (and when the last
 *    reference to a blob is dropped, and at sched_free) it calls
 *    blob_save() for blobs with new DONE chunks.
 *
 * Lock order: sched->lock, then a chunk map's internal lock. Waiter
 * callbacks are always called with no lock held.
 */
#ifndef HOLLOWFS_FETCH_SCHED_H
#define HOLLOWFS_FETCH_SCHED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fetch/engine.h"

enum sched_prio { SCHED_DEMAND, SCHED_READAHEAD, SCHED_BACKGROUND };

struct blob;
struct cache;
struct engine;
struct sched;
struct work;
struct fblob;
struct sched_waiter;

struct sched_opts {
	uint32_t chunk_size; /* bytes; default 4 MiB */
	int max_run_chunks; /* chunks in one request, default 4 */
	int save_interval_ms; /* saver period, default 1000 */
	bool offline; /* never fetch: wants of missing chunks fail
				 * with -ENETDOWN */
	int workers; /* worker pool threads, default 4 */
	/* Blobs open at once (each holds 4 descriptors), default 256: past
	 * 3/4 of it idle blobs are closed least recently used first, at it
	 * sched_open waits for one to close. The mount derives it from
	 * RLIMIT_NOFILE. */
	size_t max_open_blobs;
	/* A blob nobody references is closed after this long idle
	 * (default 10000): then other processes and `hollowfs gc` may
	 * evict it. */
	uint64_t idle_close_ms;
	/* Called on a worker thread, no lock held, once a blob with a hash
	 * is complete and verified (also at open when it was verified
	 * before); may be NULL. Long work checks work_cancelled() between
	 * blocks (fetch/work.h). */
	void (*on_verified)(void *arg, struct fblob *fb);
	/* Called the same way when a complete blob failed its hash, after
	 * it was failed and discarded (so caches above can drop it). */
	void (*on_corrupt)(void *arg, struct fblob *fb);
	void *on_verified_arg; /* for both */
};

void sched_opts_default(struct sched_opts *o);

/* Takes neither: cache and engine must outlive the scheduler. Attaches
 * itself to the engine and starts the saver thread. */
int sched_new(const struct sched_opts *opts, struct cache *cache,
	      struct engine *engine, struct sched **out)
	__attribute__((warn_unused_result));

/*
 * Stops all work: every waiter gets -ECANCELED, no job is handed out any
 * more, and the worker pool is stopped and joined (its jobs stop between
 * blocks, so this takes about a block's time, not a verification's).
 * Idempotent; engine_free calls it first thing, sched_free too.
 */
void sched_shutdown(struct sched *s);

/* sched_shutdown, stops the saver, saves every blob and frees it,
 * including blobs the caller still holds references to: drop no
 * reference after this. The engine must have been freed first, so no
 * transfer is running. Accepts NULL. */
void sched_free(struct sched *s);

/* Where a blob's bytes come from. Strings are copied. */
struct fblob_target {
	const char *kind; /* "http", "file", "hf": part of the identity */
	const char *content_id; /* ETag, sha256, url+mtime...: identity */
	uint64_t size;
	const char *url; /* absolute URL for range GETs */
	const char *auth; /* header line for the origin host, or NULL */
	const char *aws_sigv4; /* SigV4 provider for the origin host (as in
				 * struct http_auth), or NULL */
	const char *userpwd; /* its "KEY_ID:SECRET" (a secret), or NULL */
	const char *etag; /* expected ETag, or NULL (learned at first) */
	bool if_match; /* send If-Match: ETAG with every range request
				 * to the origin: a changed object is a 412
				 * (-ESTALE), never mixed bytes */
	const char *name; /* for log lines: the path in the mount */
	bool pinned; /* immutable content (a commit): no ETag is
				 * learned or compared, the hash is the check */
	const char *hash_kind; /* whole-file check when the last chunk
				 * lands: "sha256", "git-sha1", or NULL */
	const char *hash; /* expected hash, lowercase hex */
	const char *local_path; /* a local file to pread the bytes from
				 * (file:// sources) instead of url, on the
				 * worker pool; NULL for network sources */
};

/*
 * Returns a new reference to the fblob of target, opening its blob in the
 * cache when it is not open yet (one fblob per identity per process).
 * Drop it with fblob_put().
 */
int sched_open(struct sched *s, const struct fblob_target *t,
	       struct fblob **out) __attribute__((warn_unused_result));
void fblob_get(struct fblob *fb);

/* What the cache holds of a target's blob. */
struct sched_peek {
	char hex[33]; /* its name in the cache */
	bool open; /* open in this process (else read from its sidecar) */
	uint64_t nchunks;
	uint64_t done_count; /* complete chunks */
	uint64_t done_bytes; /* bytes they cover */
};

/*
 * Fills *p for target t: from the open fblob when there is one, else
 * from the blob's sidecar read as it is, creating, opening for good or
 * changing nothing (a blob never opened has nothing complete). 0, or an
 * error of reading the sidecar.
 */
int sched_peek(struct sched *s, const struct fblob_target *t,
	       struct sched_peek *p) __attribute__((warn_unused_result));
void fblob_put(struct fblob *fb); /* accepts NULL */

/* The local copy (fd, chunk map); valid while a reference is held.
 * For fetch/ and tests; fs/ uses the accessors below. */
struct blob *fblob_blob(const struct fblob *fb);

/* What fs/ needs of the local copy, valid while a reference is held. */
int fblob_data_fd(const struct fblob *fb); /* borrowed; pread/splice */
uint64_t fblob_nchunks(const struct fblob *fb);
uint32_t fblob_chunk_size(const struct fblob *fb);
const char *fblob_hex(const struct fblob *fb); /* name in the cache */
/* The chunks [*first, *last] covering [off, off + len); false when the
 * range is empty or past the end. */
bool fblob_chunks_for(const struct fblob *fb, uint64_t off, uint64_t len,
		      uint64_t *first, uint64_t *last);
/* True when every chunk of [first, last] is DONE. */
bool fblob_all_done(const struct fblob *fb, uint64_t first, uint64_t last);
/*
 * True when a read of [off, off + len) may be answered from the cache
 * now: its bytes are in the data file (their chunks are DONE, or the
 * transfer filling a chunk has written them already), and the file is
 * not complete-and-awaiting its verdict (reads of it are held until the
 * hash says it is good; the sched_want of such a read registers its
 * waiter and fires it with the verdict).
 */
bool fblob_servable(const struct fblob *fb, uint64_t off, uint64_t len);
/*
 * Brackets a reply of [off, off + len) spliced from the data file: begin
 * returns false when the blob has failed or the bytes are no longer in
 * (the evictor took a chunk back: fetch the bytes again, or read them
 * uncached), else true with a token for end. A discard or a punch waits
 * for every reply begun before it to end before it punches bytes out, so
 * no reply reads a hole.
 */
bool fblob_reply_begin(struct fblob *fb, uint64_t off, uint64_t len,
		       int *token);
void fblob_reply_end(struct fblob *fb, int token);

/* Notes a read of chunks [first, last]: eviction punches the least
 * recently read chunks of a file first. Lock-free. */
void fblob_note_read(struct fblob *fb, uint64_t first, uint64_t last);
uint64_t fblob_done_bytes(const struct fblob *fb);
uint64_t fblob_done_count(const struct fblob *fb);
const char *fblob_name(const struct fblob *fb);
const char *fblob_url(const struct fblob *fb);

/* Fatal error of the blob (-ESTALE: changed on the server, -EBADMSG:
 * its content failed its hash, ...), or 0. */
int fblob_error(const struct fblob *fb);

/* True once the whole content was checked against its hash. */
bool fblob_verified(const struct fblob *fb);

/* The target's hash kind and expected hash (NULL when none). */
const char *fblob_hash_kind(const struct fblob *fb);
const char *fblob_hash(const struct fblob *fb);

typedef void (*sched_done_fn)(void *arg, int err);

/*
 * Wants chunks [first, last] of fb at prio.
 *  - Returns 1 when all of them are DONE already: done is not called.
 *  - Returns 0 when done was registered (if not NULL; *wp, if not NULL,
 *    receives a handle for sched_cancel): done(arg, 0) is called once,
 *    with no lock held, from the thread that completes the last chunk, or
 *    done(arg, err) with the first error of one of these chunks.
 *  - Returns a negative errno when nothing was registered (fatal blob
 *    error, -ENETDOWN offline, -ENOMEM).
 * With done NULL it only queues (readahead, background fill).
 */
int sched_want(struct sched *s, struct fblob *fb, uint64_t first, uint64_t last,
	       enum sched_prio prio, sched_done_fn done, void *arg,
	       struct sched_waiter **wp) __attribute__((warn_unused_result));
/*
 * sched_want of the chunks of a read of [off, off + len), whose done
 * fires as soon as those bytes are in the data file: a transfer writing
 * a chunk answers the reads of its first bytes before its last byte
 * lands (it returns 1 when they are in already). With tail_prefix (a
 * random read that only reaches into its last chunk) it wants only the
 * first bytes of that chunk: fetched as a prefix, not completed, unless
 * another reader wants the chunk whole.
 */
int sched_want_read(struct sched *s, struct fblob *fb, uint64_t off,
		    uint64_t len, bool tail_prefix, enum sched_prio prio,
		    sched_done_fn done, void *arg, struct sched_waiter **wp)
	__attribute__((warn_unused_result));

/*
 * Unregisters a waiter before it fired: returns 0 and done will never be
 * called, or -EALREADY when done is being called (it will run to its end).
 * The waiter is freed by the scheduler after done returns, so the caller
 * must not call sched_cancel once its done has returned: serialise the
 * two with a lock of the caller's, taken first thing in done and around
 * sched_cancel (lock order: the caller's lock, then sched->lock; done is
 * called with no scheduler lock held, so this cannot deadlock).
 */
int sched_cancel(struct sched *s, struct sched_waiter *w);

/* Blocking want for tools and tests: 0, the chunk error, or -ETIMEDOUT
 * after timeout_ms (then the chunks stay queued). Holds no lock while
 * waiting. */
int sched_wait(struct sched *s, struct fblob *fb, uint64_t first, uint64_t last,
	       enum sched_prio prio, int timeout_ms)
	__attribute__((warn_unused_result));

/* Linked cancellation: fails the blob for good with err (negative), stops
 * its transfers and fails its waiters with err. */
void sched_fail_blob(struct sched *s, struct fblob *fb, int err);

typedef void (*sched_bytes_fn)(void *arg, int err, const char *buf, size_t len);

/*
 * Fetches bytes [off, off + len) of fb into memory, bypassing the cache:
 * for reads that must be answered when the cache cannot store them (disk
 * full). done is called once from the engine thread with the bytes
 * (borrowed for the call) or an error. len is at most a FUSE read, so
 * memory stays bounded. The answer is checked as the cached path checks
 * it: anything but a 206 of exactly these bytes, of the file's size, not
 * encoded, is -EPROTO; another ETag is -ESTALE and fails the blob. Each
 * with one log line. Returns 0, or an error (done not called).
 */
int sched_read_uncached(struct sched *s, struct fblob *fb, uint64_t off,
			size_t len, sched_bytes_fn done, void *arg)
	__attribute__((warn_unused_result));

/* Runs the saver's step for every open blob now (tests, unmount). */
void sched_save_all(struct sched *s);

/* Waits until the worker pool has nothing queued or running, or
 * timeout_ms passed: 0 or -ETIMEDOUT (tests and tools). */
int sched_settle(struct sched *s, int timeout_ms)
	__attribute__((warn_unused_result));

struct evictor;

/* Gives the scheduler the evictor of the cache's size limit (set once,
 * before any blob is opened; fetch/evictor.h). */
void sched_set_evictor(struct sched *s, struct evictor *ev);

/* For the evictor, on a worker: is the blob named hex open here? */
bool sched_blob_is_open(struct sched *s, const char *hex);

/* For the evictor, on a worker: closes every idle blob now (saved
 * first), so that other processes' evictions and ours may take them.
 * Returns how many were closed. */
size_t sched_close_idle(struct sched *s);

/*
 * For the evictor, on a worker: punches holes in the least recently read
 * complete chunks of blobs open here that no other process has open,
 * until want bytes were freed or none is left: never a chunk wanted or
 * queued, never one a check of the whole file has still to hash, never
 * a blob linked elsewhere (an export). Their bits leave the sidecar
 * before their bytes leave the disk. *freed gets the allocated bytes
 * given back. Returns the number of chunks punched.
 */
uint64_t sched_punch_lru(struct sched *s, uint64_t want, uint64_t *freed);

/* Runs fn(w) on the worker pool's BULK lane (the evictor's runs). */
int sched_submit_bulk(struct sched *s, struct work *w)
	__attribute__((warn_unused_result));

/* What the scheduler is doing now (the stats xattr, hollowfs status). */
struct sched_stats {
	uint64_t queued[3]; /* chunks QUEUED, by enum sched_prio */
	uint64_t inflight; /* chunks being fetched */
	uint64_t open_blobs;
	const char *cache_dir; /* borrowed from the cache */
	struct engine_stats engine; /* zero without an engine */
};

/* Counts over the open blobs under s->lock: O(their chunks), for an
 * occasional look, not for a hot path. */
void sched_get_stats(struct sched *s, struct sched_stats *st);

#endif
