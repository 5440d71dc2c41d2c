/*
 * sched.c: single-flight chunk requests, priorities, waiters, the jobs
 * of the worker pool (probes, file:// copies, verification) and the
 * saver.
 *
 * Chunk states live in each blob's chunk map; every transition is made
 * under s->lock, together with the waiter lists and the queues, so "is it
 * done, else wait" and "mark it done, detach the waiters" are atomic with
 * each other. Waiters are called after the unlock.
 *
 * Thread roles: the engine thread calls sched_take_job, sched_chunk_done
 * and sched_job_end; worker jobs (probe_run, copy_run, verify_run) do all
 * reading and hashing of files; the saver thread (saver_main) only calls
 * blob_save and frees closed blobs.
 *
 * Lock order: s->lock, then a chunk map's internal lock. Nothing else is
 * taken under s->lock, and no I/O, fsync, callback or curl call happens
 * under it (STYLE.md section 4). Functions named _locked assert that the
 * calling thread holds s->lock (in builds without NDEBUG).
 */
#include "fetch/sched.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "fetch/engine.h"
#include "fetch/evictor.h"
#include "fetch/fetch_i.h"
#include "fetch/http.h"
#include "fetch/work.h"
#include "state/blob.h"
#include "state/cache.h"
#include "state/chunkmap.h"
#include "state/clock.h"
#include "state/hlog.h"
#include "state/peek.h"
#include "state/sidecar.h"
#include "state/units.h"
#include "state/verify.h"

#define DEFER_FOREIGN_MS 100 /* look again at a chunk another process has */
/* A chunk another process holds this long: its peer may be frozen
 * (SIGSTOP, docker pause, D state), so readers get its bytes uncached. */
#define FOREIGN_WAIT_MS 10000
#define STUCK_MAX 64 /* chunks remembered as held elsewhere, per blob */
#define LOCAL_MAX_INFLIGHT 8 /* file:// copy jobs queued or running */
#define COPY_BLOCK_BYTES (1u << 20) /* file:// copies read by 1 MiB */
#define WORKERS_DEFAULT 4
#define OPEN_BLOBS_DEFAULT 256
#define IDLE_CLOSE_MS_DEFAULT 10000
/* How long sched_open waits for the saver to close an idle blob when
 * max_open_blobs are open. */
#define OPEN_WAIT_MS 5000
/* How often the engine looks again while new chunks wait for the
 * evictor. */
#define EVICT_POLL_MS 20
/* A file whose write failed for lack of space again this soon after an
 * eviction is read uncached rather than retried. */
#define NOSPACE_RETRY_MS 2000
/* A chunk fetched as a prefix is asked for up to a multiple of this. */
#define PREFIX_ALIGN (64 * 1024)
/* The most prefixes a blob remembers the hash state of. */
#define PSTATES_MAX 16

enum waiter_state { W_PENDING, W_FIRING, W_CANCELLED };

struct sched_waiter {
	struct sched_waiter *next; /* in fb->waiters; s->lock */
	struct fblob *fb;
	uint64_t first, last;
	uint64_t off, end; /* the bytes it needs: [off, end) */
	sched_done_fn done;
	void *arg;
	int err;
	enum waiter_state state; /* s->lock */
};

/* A wanted range; a hint: the chunk states are the truth. */
struct qent {
	struct qent *next;
	struct fblob *fb; /* a reference */
	uint64_t first, last;
	uint64_t not_before_ms; /* deferred (chunk locked elsewhere) */
};

/* Where a blob's whole-file check stands; s->lock. */
enum verify_state {
	VS_IDLE, /* not queued: incomplete, or a check was cut short */
	VS_QUEUED, /* a verify job is queued or running */
	VS_DONE, /* verified and hooks run, or found corrupt */
};

struct fblob {
	struct sched *s;
	struct fblob *next; /* in s->blobs */
	int refs; /* s->lock */
	/* s->lock: monotonic ms + 1 when refs last reached 0 (the blob is
	 * idle: open only for whoever wants it next), 0 when it was looked
	 * up since. Only a lookup clears it: the saver's own short
	 * references leave it alone. */
	uint64_t idle_ms;
	struct blob *b; /* owned; read-only fields */
	char *url, *auth, *name; /* owned, immutable */
	char *aws_sigv4, *userpwd; /* owned, immutable; may be NULL */
	bool if_match; /* immutable */
	char *etag; /* s->lock */
	char *redirect; /* s->lock: cached redirect target */
	uint8_t *qprio; /* s->lock: prio a chunk is queued at */
	struct sched_waiter *waiters; /* s->lock */
	_Atomic int fatal_err; /* 0, or why the blob failed */
	bool pinned; /* immutable */
	char *hash_kind, *hash; /* owned, immutable; may be NULL */
	char *local_path; /* owned, immutable; file:// or NULL */
	_Atomic bool verified; /* passed its hash */
	enum verify_state vstate; /* s->lock */
	/* The incremental check: bytes [0, vhashed) are in vctx. vhashed is
	 * s->lock; vctx belongs to the one verify job (vstate QUEUED). */
	uint64_t vhashed;
	struct verify_ctx *vctx;
	/* Splice replies from the data file running, counted by the parity
	 * of rgen when they began: a punch or a discard bumps rgen and waits
	 * for the count of the old parity to drain (fblob_reply_begin). */
	_Atomic unsigned int rgen;
	_Atomic int rcount[2];
	/* Per chunk: s->read_seq at its last read (0: never read), for the
	 * least-recently-read order of punching; relaxed. */
	_Atomic uint32_t *last_read;
	/*
	 * Per chunk not DONE: how many bytes from its start a transfer of
	 * this process has written (sched_chunk_landed). A parked read is
	 * answered as soon as its bytes are in, not when its whole chunk
	 * is. Only grows, written by the engine thread alone, until a punch
	 * or a discard takes the chunk (they reset it before the chunk
	 * leaves DONE, under the lock).
	 */
	_Atomic uint32_t *landed;
	/* Per chunk: the least landed a parked read of it waits for,
	 * UINT32_MAX when none (so the engine takes the lock only then). */
	_Atomic uint32_t *need;
	/* Per chunk QUEUED or INFLIGHT: 0 when it is wanted whole, else the
	 * bytes from its start that are all its readers want of it (the
	 * tail of a random read that reaches into it): it is fetched as a
	 * prefix (sched_want_read's tail_prefix), not completed; s->lock
	 * for writes, read lock-free by job_claim. */
	_Atomic uint32_t *pwant;
	/* The xxh3 states of chunk prefixes fetched (sched_prefix_keep),
	 * up to PSTATES_MAX, the oldest replaced; s->lock. */
	struct pstate {
		uint64_t idx, len;
		XXH3_state_t *st; /* NULL: free slot */
	} pstates[PSTATES_MAX];
	unsigned int pstate_next; /* s->lock: the slot to replace next */
	bool punching; /* s->lock: the evictor is punching chunks of it */
	_Atomic int ranges; /* sched_blob_ranges (fetch/fetch_i.h) */
	uint64_t nospace_ms; /* s->lock: last ENOSPC retry, ms + 1, or 0 */
	/* Chunks another process has held since a time (s->lock); nstuck is
	 * atomic so that claims check it without the lock. */
	struct stuck {
		uint64_t idx, since_ms;
		bool warned; /* its give-up was logged */
	} stuck[STUCK_MAX];
	_Atomic int nstuck;
	bool saving; /* s->lock: the saver is in blob_save */
	/* s->lock: when a fetch was first wanted, and the bytes DONE then
	 * (for the line logged when the file is complete) */
	uint64_t want_ms, want_done;
	bool discarding; /* s->lock: the saver must keep off */
	bool vreset; /* s->lock: the check must start over (chunks lost) */
};

struct sched {
	struct sched_opts o;
	struct cache *cache;
	struct engine *engine;

	pthread_mutex_t lock;
	struct fblob *blobs; /* open, in use or idle; lock */
	size_t nopen; /* lock: blobs open or being opened or closed */
	_Atomic uint32_t read_seq; /* reads noted, for last_read */
	_Atomic uint64_t inflight_bytes; /* of chunks claimed, not written */
	/* The cache's size limit, or NULL; set once, after the engine
	 * thread started (sched_set_evictor). */
	_Atomic(struct evictor *) ev;
	bool close_requested; /* lock: nopen passed the soft bound */
	pthread_cond_t closed_cond; /* with lock: an idle blob was closed */
	struct qent *q[3]; /* per priority, FIFO; lock */
	struct qent **qtail[3];

	pthread_t saver;
	pthread_cond_t saver_cond; /* with lock */
	pthread_cond_t saved_cond; /* with lock */
	pthread_cond_t discard_cond; /* with lock: a blob_save ended */
	bool stopping; /* lock */
	bool save_requested; /* lock */
	uint64_t save_gen; /* lock: saver rounds completed */
	unsigned int local_inflight; /* lock: file:// copy jobs */
	struct workq *work; /* the worker pool; owned */
	_Atomic bool shutdown;
};

/* The sched whose lock this thread holds, for the _locked asserts. */
static _Thread_local const struct sched *lock_holder;

static void sched_lock(struct sched *s)
{
	pthread_mutex_lock(&s->lock);
	lock_holder = s;
}

static struct evictor *sched_ev(struct sched *s)
{
	return atomic_load(&s->ev);
}

static void sched_unlock(struct sched *s)
{
	lock_holder = NULL;
	pthread_mutex_unlock(&s->lock);
}

static void sched_cond_wait(struct sched *s, pthread_cond_t *c,
			    const struct timespec *deadline)
{
	lock_holder = NULL;
	if (deadline)
		pthread_cond_timedwait(c, &s->lock, deadline);
	else
		pthread_cond_wait(c, &s->lock);
	lock_holder = s;
}

#define assert_locked(s) assert(lock_holder == (s))

static bool verify_due_locked(struct fblob *fb);
static void verify_submit(struct sched *s, struct fblob *fb);

/*
 * Whether reads of fb are held until its verdict: it has a hash, every
 * chunk is DONE, and it is neither verified nor failed yet. From the
 * moment its last chunk lands no byte of it is served before the check
 * says it is good (DESIGN.md: verification holds at every moment).
 * Lock-free: each field is atomic or immutable.
 */
static bool fblob_held(const struct fblob *fb)
{
	struct fblob *f = (struct fblob *)fb;

	return fb->hash && !atomic_load(&f->verified) &&
	       !atomic_load(&f->fatal_err) &&
	       chunkmap_done_count(fb->b->map) == fb->b->nchunks;
}

void sched_opts_default(struct sched_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->chunk_size = 4u << 20;
	o->max_run_chunks = 4;
	o->save_interval_ms = 1000;
	o->workers = WORKERS_DEFAULT;
	o->max_open_blobs = OPEN_BLOBS_DEFAULT;
	o->idle_close_ms = IDLE_CLOSE_MS_DEFAULT;
}

struct blob *fblob_blob(const struct fblob *fb)
{
	return fb->b;
}

int fblob_data_fd(const struct fblob *fb)
{
	return fb->b->files.data_fd;
}

uint64_t fblob_nchunks(const struct fblob *fb)
{
	return fb->b->nchunks;
}

uint32_t fblob_chunk_size(const struct fblob *fb)
{
	return fb->b->layout.chunk_size;
}

const char *fblob_hex(const struct fblob *fb)
{
	return fb->b->hex;
}

bool fblob_chunks_for(const struct fblob *fb, uint64_t off, uint64_t len,
		      uint64_t *first, uint64_t *last)
{
	return chunkmap_chunks_for(fb->b->map, off, len, first, last);
}

static uint64_t chunk_len(const struct fblob *fb, uint64_t idx);

/* The bytes of chunk idx, from its start, that a read ending at end
 * needs. */
static uint32_t read_need(const struct fblob *fb, uint64_t idx, uint64_t end)
{
	uint64_t start = idx * fb->b->layout.chunk_size;
	uint64_t cend = start + chunk_len(fb, idx);

	return (uint32_t)((end < cend ? end : cend) - start);
}

/* Whether the bytes a read ending at end needs of chunk idx are in the
 * data file: the chunk is DONE, or enough of it has landed. Lock-free. */
static bool chunk_has(const struct fblob *fb, uint64_t idx, uint64_t end)
{
	return chunkmap_get(fb->b->map, idx) == CHUNK_DONE ||
	       atomic_load(&fb->landed[idx]) >= read_need(fb, idx, end);
}

/* Whether chunks [first, last] have the bytes a read ending at end
 * needs. */
static bool read_has(const struct fblob *fb, uint64_t first, uint64_t last,
		     uint64_t end)
{
	uint64_t i;

	for (i = first; i <= last; i++)
		if (!chunk_has(fb, i, end))
			return false;
	return true;
}

bool fblob_servable(const struct fblob *fb, uint64_t off, uint64_t len)
{
	uint64_t first, last;

	if (!fblob_chunks_for(fb, off, len, &first, &last))
		return false;
	/* Not all DONE, the file is not complete: it cannot be held. */
	if (!chunkmap_all_done(fb->b->map, first, last))
		return read_has(fb, first, last, off + len);
	return !fblob_held(fb);
}

/*
 * A reply counts itself under the parity of rgen it saw, checking rgen
 * again after counting: a punch that bumped rgen in between is waiting
 * for the old parity, and this reply retries under the new one. Then it
 * checks its chunks are still DONE: one that a punch took (set INFLIGHT
 * before its bump, its landed bytes reset before that) is not, so no
 * reply ever reads a punched hole.
 */
bool fblob_reply_begin(struct fblob *fb, uint64_t off, uint64_t len, int *token)
{
	uint64_t first, last;
	unsigned int g;

	if (!fblob_chunks_for(fb, off, len, &first, &last))
		return false;

	for (;;) {
		g = atomic_load(&fb->rgen);
		atomic_fetch_add(&fb->rcount[g & 1], 1);
		if (atomic_load(&fb->rgen) == g)
			break;
		atomic_fetch_sub(&fb->rcount[g & 1], 1);
	}
	*token = (int)(g & 1);
	if (!atomic_load(&fb->fatal_err) &&
	    read_has(fb, first, last, off + len))
		return true;
	atomic_fetch_sub(&fb->rcount[g & 1], 1);
	return false;
}

/* Waits (up to timeout_ms) for the replies begun before this call to
 * end; new ones see what the caller changed before calling. */
static void replies_drain(struct fblob *fb, int timeout_ms)
{
	unsigned int old = atomic_fetch_add(&fb->rgen, 1);
	uint64_t deadline = clock_now_ms() + (uint64_t)timeout_ms;
	struct timespec ms = { 0, 1000000 };

	while (atomic_load(&fb->rcount[old & 1]) && clock_now_ms() < deadline)
		nanosleep(&ms, NULL);
}

void fblob_note_read(struct fblob *fb, uint64_t first, uint64_t last)
{
	uint32_t seq = atomic_fetch_add_explicit(&fb->s->read_seq, 1,
						 memory_order_relaxed) +
		       1;
	uint64_t i;

	if (!seq) /* wrapped: 0 means never */
		seq = 1;
	for (i = first; i <= last && i < fb->b->nchunks; i++)
		atomic_store_explicit(&fb->last_read[i], seq,
				      memory_order_relaxed);
}

void fblob_reply_end(struct fblob *fb, int token)
{
	atomic_fetch_sub(&fb->rcount[token & 1], 1);
}

bool fblob_all_done(const struct fblob *fb, uint64_t first, uint64_t last)
{
	return chunkmap_all_done(fb->b->map, first, last);
}

uint64_t fblob_done_bytes(const struct fblob *fb)
{
	return chunkmap_done_bytes(fb->b->map);
}

uint64_t fblob_done_count(const struct fblob *fb)
{
	return chunkmap_done_count(fb->b->map);
}

const char *fblob_name(const struct fblob *fb)
{
	return fb->name;
}

const char *fblob_url(const struct fblob *fb)
{
	return fb->url;
}

int fblob_error(const struct fblob *fb)
{
	return atomic_load(&((struct fblob *)fb)->fatal_err);
}

bool fblob_verified(const struct fblob *fb)
{
	return atomic_load(&((struct fblob *)fb)->verified);
}

const char *fblob_hash_kind(const struct fblob *fb)
{
	return fb->hash_kind;
}

const char *fblob_hash(const struct fblob *fb)
{
	return fb->hash;
}

static uint64_t chunk_len(const struct fblob *fb, uint64_t idx)
{
	uint64_t off, len;

	chunkmap_chunk_range(fb->b->map, idx, &off, &len);
	return len;
}

int sched_blob_ranges(struct fblob *fb)
{
	return atomic_load(&fb->ranges);
}

void sched_blob_set_ranges(struct fblob *fb, int v)
{
	atomic_store(&fb->ranges, v);
}

bool sched_blob_cancelled(struct fblob *fb)
{
	return atomic_load(&fb->fatal_err) != 0 ||
	       atomic_load(&fb->s->shutdown);
}

/* Frees a string holding a secret (SigV4 "KEY_ID:SECRET"), wiped first. */
static void free_secret(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

static void fblob_destroy(struct fblob *fb)
{
	int err;

	err = blob_save(fb->b);
	if (err)
		hlog(HLOG_WARN, HLOG_STATE,
		     "saving the state of '%s' failed: %s", fb->name,
		     strerror(-err));
	blob_free(fb->b);
	free(fb->url);
	free(fb->auth);
	free(fb->aws_sigv4);
	free_secret(fb->userpwd);
	free(fb->name);
	free(fb->etag);
	free(fb->redirect);
	free(fb->qprio);
	free(fb->last_read);
	free(fb->landed);
	free(fb->need);
	free(fb->pwant);
	for (unsigned int k = 0; k < PSTATES_MAX; k++)
		XXH3_freeState(fb->pstates[k].st);
	free(fb->hash_kind);
	free(fb->hash);
	free(fb->local_path);
	verify_ctx_free(fb->vctx);
	free(fb);
}

void fblob_get(struct fblob *fb)
{
	sched_lock(fb->s);
	fb->refs++;
	sched_unlock(fb->s);
}

static void fblob_unlink_locked(struct sched *s, struct fblob *fb)
{
	struct fblob **pp;

	assert_locked(s);

	for (pp = &s->blobs; *pp; pp = &(*pp)->next) {
		if (*pp == fb) {
			*pp = fb->next;
			break;
		}
	}
}

/* The soft bound of open blobs: past it the saver closes idle ones. */
static size_t open_soft_max(const struct sched *s)
{
	return s->o.max_open_blobs - s->o.max_open_blobs / 4;
}

/*
 * The last reference goes: the blob stays open, idle, for whoever wants
 * it next, until the saver closes it (idle for idle_close_ms, or least
 * recently used first when more than the soft bound are open), so the
 * caller (a FUSE worker, the engine) never waits for an fsync.
 */
void fblob_put(struct fblob *fb)
{
	struct sched *s;

	if (!fb)
		return;
	s = fb->s;
	sched_lock(s);
	if (--fb->refs == 0 && !fb->idle_ms) {
		fb->idle_ms = clock_now_ms() + 1;
		if (s->nopen > open_soft_max(s) && !s->close_requested) {
			s->close_requested = true;
			pthread_cond_signal(&s->saver_cond);
		}
	}
	sched_unlock(s);
}

/* A reference to an open blob found by name: no longer idle. */
static void fblob_revive_locked(struct sched *s, struct fblob *fb)
{
	assert_locked(s);
	fb->refs++;
	fb->idle_ms = 0;
}

/*
 * Counts a blob about to be opened. At the hard bound (max_open_blobs:
 * what the descriptor limit allows) it asks the saver to close idle
 * blobs and waits for one to go, up to OPEN_WAIT_MS: -EMFILE when every
 * open blob stays in use.
 */
static int open_slot_reserve(struct sched *s)
{
	uint64_t until = clock_now_ms() + OPEN_WAIT_MS, now;
	int err = 0;

	sched_lock(s);
	while (s->nopen >= s->o.max_open_blobs) {
		struct timespec ts;

		now = clock_now_ms();
		if (s->stopping || atomic_load(&s->shutdown)) {
			err = -ECANCELED;
			break;
		}
		if (now >= until) {
			err = -EMFILE;
			break;
		}
		s->close_requested = true;
		pthread_cond_signal(&s->saver_cond);
		ts = clock_deadline_in_ms((int)(until - now));
		sched_cond_wait(s, &s->closed_cond, &ts);
	}
	if (!err)
		s->nopen++;
	if (s->nopen > open_soft_max(s) && !s->close_requested) {
		s->close_requested = true;
		pthread_cond_signal(&s->saver_cond);
	}
	sched_unlock(s);
	if (err == -EMFILE)
		hlog(HLOG_WARN, HLOG_SCHED,
		     "%zu files are open and in use, as many as the "
		     "descriptor limit allows: opening one more failed",
		     (size_t)s->o.max_open_blobs);
	return err;
}

static void open_slot_release(struct sched *s)
{
	sched_lock(s);
	s->nopen--;
	pthread_cond_broadcast(&s->closed_cond);
	sched_unlock(s);
}

/* The name in the cache of t's blob, at this scheduler's chunk size. */
static void target_hex(const struct sched *s, const struct fblob_target *t,
		       char hex[33])
{
	blob_identity_hex(t->kind, t->content_id, t->size, s->o.chunk_size,
			  hex);
}

/* The open fblob named hex, or NULL; s->lock held. */
static struct fblob *find_locked(struct sched *s, const char *hex)
{
	struct fblob *it;

	assert_locked(s);
	for (it = s->blobs; it; it = it->next)
		if (!strcmp(it->b->hex, hex))
			return it;
	return NULL;
}

int sched_peek(struct sched *s, const struct fblob_target *t,
	       struct sched_peek *p)
{
	struct blob_peek bp;
	struct fblob *fb;
	int err;

	memset(p, 0, sizeof(*p));
	target_hex(s, t, p->hex);
	p->nchunks = chunk_count(t->size, s->o.chunk_size);
	sched_lock(s);
	fb = find_locked(s, p->hex);
	if (fb) {
		p->open = true;
		p->done_bytes = fblob_done_bytes(fb);
		p->done_count = fblob_done_count(fb);
	}
	sched_unlock(s);
	if (p->open)
		return 0;
	err = blob_peek_open(s->cache, p->hex, false, &bp);
	if (err)
		return err;
	if (bp.sc && bp.sc->nchunks == p->nchunks &&
	    bp.sc->layout.file_size == t->size) {
		p->done_bytes = blob_peek_done_bytes(&bp);
		p->done_count = bp.sc->done_count;
	}
	blob_peek_release(&bp);
	return 0;
}

/* Finds the open fblob of t's identity and takes a reference. */
static bool sched_lookup(struct sched *s, const struct fblob_target *t,
			 struct fblob **out)
{
	char hex[33];
	struct fblob *it;

	target_hex(s, t, hex);
	sched_lock(s);
	it = find_locked(s, hex);
	if (it)
		fblob_revive_locked(s, it);
	sched_unlock(s);
	*out = it;
	return it != NULL;
}

int sched_open(struct sched *s, const struct fblob_target *t,
	       struct fblob **out)
{
	struct fblob *fb, *it;
	struct blob *b = NULL;
	bool verify;
	uint64_t i;
	int err;

	*out = NULL;
	if (sched_lookup(s, t, out))
		return 0;
	err = open_slot_reserve(s);
	if (err)
		return err;
	err = blob_open(s->cache, t->kind, t->content_id, t->size,
			s->o.chunk_size, &b);
	if (err) {
		open_slot_release(s);
		/* No room for its files: make some for the next open. */
		if ((err == -ENOSPC || err == -EDQUOT) && sched_ev(s))
			evictor_kick(sched_ev(s));
		return err;
	}
	fb = calloc(1, sizeof(*fb));
	if (!fb) {
		err = -ENOMEM;
		goto out_blob;
	}
	fb->s = s;
	fb->refs = 1;
	fb->b = b;
	fb->url = strdup(t->url);
	fb->auth = t->auth ? strdup(t->auth) : NULL;
	fb->aws_sigv4 = t->aws_sigv4 ? strdup(t->aws_sigv4) : NULL;
	fb->userpwd = t->userpwd ? strdup(t->userpwd) : NULL;
	fb->if_match = t->if_match;
	fb->name = strdup(t->name ? t->name : t->url);
	fb->etag = t->etag ? strdup(t->etag) : NULL;
	fb->qprio = malloc(b->nchunks ? b->nchunks : 1);
	fb->last_read =
		calloc(b->nchunks ? b->nchunks : 1, sizeof(*fb->last_read));
	fb->landed = calloc(b->nchunks ? b->nchunks : 1, sizeof(*fb->landed));
	fb->need = malloc((b->nchunks ? b->nchunks : 1) * sizeof(*fb->need));
	fb->pwant = calloc(b->nchunks ? b->nchunks : 1, sizeof(*fb->pwant));
	for (i = 0; fb->need && i < (b->nchunks ? b->nchunks : 1); i++)
		atomic_init(&fb->need[i], UINT32_MAX);
	fb->pinned = t->pinned;
	fb->local_path = t->local_path ? strdup(t->local_path) : NULL;
	if (t->hash_kind && t->hash && verify_kind_known(t->hash_kind)) {
		fb->hash_kind = strdup(t->hash_kind);
		fb->hash = strdup(t->hash);
		if (fb->hash_kind && fb->hash)
			atomic_store(&fb->verified,
				     chunkmap_done_count(b->map) ==
						     b->nchunks &&
					     verify_marked(b, t->hash_kind,
							   t->hash));
	}
	if (!fb->url || !fb->name || !fb->qprio || !fb->last_read ||
	    !fb->landed || !fb->need || !fb->pwant || (t->auth && !fb->auth) ||
	    (t->etag && !fb->etag) || (t->local_path && !fb->local_path) ||
	    (t->aws_sigv4 && !fb->aws_sigv4) || (t->userpwd && !fb->userpwd) ||
	    (fb->hash_kind == NULL) != (fb->hash == NULL)) {
		err = -ENOMEM;
		goto out_fb;
	}
	memset(fb->qprio, SCHED_BACKGROUND, b->nchunks ? b->nchunks : 1);

	sched_lock(s);
	it = find_locked(s, b->hex);
	if (it) {
		/* Opened meanwhile by another thread: share it. */
		fblob_revive_locked(s, it);
		s->nopen--; /* ours is freed below */
		sched_unlock(s);
		*out = it;
		err = 0;
		goto out_fb; /* frees our copy, blob included */
	}
	fb->next = s->blobs;
	s->blobs = fb;
	/* Complete already: checked now, or its hooks run (verified before). */
	verify = verify_due_locked(fb);
	sched_unlock(s);
	if (verify)
		verify_submit(s, fb);
	*out = fb;
	return 0;
out_fb:
	if (fb) {
		free(fb->url);
		free(fb->auth);
		free(fb->aws_sigv4);
		free_secret(fb->userpwd);
		free(fb->name);
		free(fb->etag);
		free(fb->qprio);
		free(fb->last_read);
		free(fb->landed);
		free(fb->need);
		free(fb->pwant);
		free(fb->hash_kind);
		free(fb->hash);
		free(fb->local_path);
		b = fb->b;
		free(fb);
	}
out_blob:
	blob_free(b);
	if (err)
		open_slot_release(s);
	return err;
}

/* Appends a queue entry; takes a reference on fb. */
static void queue_add_locked(struct sched *s, struct fblob *fb,
			     enum sched_prio prio, uint64_t first,
			     uint64_t last, uint64_t not_before_ms,
			     struct qent *q)
{
	assert_locked(s);
	q->fb = fb;
	q->first = first;
	q->last = last;
	q->not_before_ms = not_before_ms;
	q->next = NULL;
	fb->refs++;
	*s->qtail[prio] = q;
	s->qtail[prio] = &q->next;
}

/*
 * Marks the wanted chunks QUEUED (lifting their priority). Returns true
 * when a queue entry is needed (a chunk changed), false when every chunk
 * is DONE, INFLIGHT or already queued at prio or better. *all_done says
 * whether every chunk is DONE.
 */
static bool want_mark_locked(struct fblob *fb, uint64_t first, uint64_t last,
			     uint32_t tail, enum sched_prio prio,
			     bool *all_done)
{
	struct chunkmap *map = fb->b->map;
	bool need = false;
	uint64_t i;

	assert_locked(fb->s);
	*all_done = true;
	for (i = first; i <= last; i++) {
		enum chunk_state st = chunkmap_get(map, i);
		uint32_t pw = i == last ? tail : 0, had;

		if (st == CHUNK_DONE)
			continue;
		*all_done = false;
		had = atomic_load(&fb->pwant[i]);
		if (st == CHUNK_MISSING || st == CHUNK_FAILED) {
			chunkmap_set(map, i, CHUNK_QUEUED);
			fb->qprio[i] = (uint8_t)prio;
			atomic_store(&fb->pwant[i], pw);
			need = true;
			continue;
		}
		/* Wanted whole now, or a longer prefix: queued as it is, or
		 * fetched whole after the prefix in flight. */
		if (!pw || (had && pw > had))
			atomic_store(&fb->pwant[i], had && pw ? pw : 0);
		if (st == CHUNK_QUEUED && fb->qprio[i] > prio) {
			fb->qprio[i] = (uint8_t)prio;
			need = true;
		}
	}
	return need;
}

/*
 * Lowers the need of chunks [first, last] to what waiter w needs of them,
 * for those not in yet. Then the engine takes the lock when they land.
 */
static void need_lower_locked(struct fblob *fb, const struct sched_waiter *w)
{
	uint64_t i;

	assert_locked(fb->s);
	for (i = w->first; i <= w->last; i++) {
		uint32_t n = read_need(fb, i, w->end);

		if (chunkmap_get(fb->b->map, i) != CHUNK_DONE &&
		    n > atomic_load(&fb->landed[i]) &&
		    n < atomic_load(&fb->need[i]))
			atomic_store(&fb->need[i], n);
	}
}

/* Recomputes the need of chunks [lo, hi] from the waiters left. */
static void need_update_locked(struct fblob *fb, uint64_t lo, uint64_t hi)
{
	const struct sched_waiter *w;
	uint64_t i;

	assert_locked(fb->s);
	for (i = lo; i <= hi && i < fb->b->nchunks; i++) {
		uint32_t m = UINT32_MAX, got = atomic_load(&fb->landed[i]);

		if (chunkmap_get(fb->b->map, i) != CHUNK_DONE) {
			for (w = fb->waiters; w; w = w->next) {
				uint32_t n;

				if (i < w->first || i > w->last)
					continue;
				n = read_need(fb, i, w->end);
				if (n > got && n < m)
					m = n;
			}
		}
		atomic_store(&fb->need[i], m);
	}
}

/* sched_want, for the bytes up to end of chunks [first, last]. */
static int want(struct sched *s, struct fblob *fb, uint64_t first,
		uint64_t last, uint64_t end, uint32_t tail,
		enum sched_prio prio, sched_done_fn done, void *arg,
		struct sched_waiter **wp)
{
	struct sched_waiter *w = NULL;
	struct qent *q = NULL;
	bool all_done, need;
	int err;

	if (wp)
		*wp = NULL;
	if (last >= fb->b->nchunks || first > last)
		return -EINVAL;
	if (chunkmap_all_done(fb->b->map, first, last) &&
	    (!done || !fblob_held(fb)))
		return 1;
	err = atomic_load(&fb->fatal_err);
	if (err)
		return err;
	if (s->o.offline)
		return -ENETDOWN;
	if (atomic_load(&s->shutdown))
		return -ECANCELED;
	if (done) {
		w = calloc(1, sizeof(*w));
		if (!w)
			return -ENOMEM;
	}
	q = calloc(1, sizeof(*q));
	if (!q) {
		free(w);
		return -ENOMEM;
	}

	sched_lock(s);
	/* Again under the lock: sched_fail_blob and sched_cancel_all set
	 * their flag before they take it to detach the waiters. */
	err = atomic_load(&fb->fatal_err);
	if (!err && atomic_load(&s->shutdown))
		err = -ECANCELED;
	if (err) {
		sched_unlock(s);
		free(w);
		free(q);
		return err;
	}
	need = want_mark_locked(fb, first, last, tail, prio, &all_done);
	if (need && !fb->want_ms) {
		fb->want_ms = clock_now_ms();
		fb->want_done = chunkmap_done_bytes(fb->b->map);
	}
	if (all_done && (!w || !fblob_held(fb))) {
		sched_unlock(s);
		free(w);
		free(q);
		return 1;
	}
	/* All DONE but held for the verdict: only the waiter, no fetch. */
	if (need) {
		queue_add_locked(s, fb, prio, first, last, 0, q);
		q = NULL;
	}
	if (w) {
		w->fb = fb;
		w->first = first;
		w->last = last;
		w->end = end;
		w->done = done;
		w->arg = arg;
		w->state = W_PENDING;
		/* The need first, then landed: the engine stores landed,
		 * then loads the need, so one of us sees the other. */
		need_lower_locked(fb, w);
		if (read_has(fb, first, last, end) && !fblob_held(fb)) {
			sched_unlock(s);
			free(w);
			free(q);
			if (need)
				engine_kick(s->engine);
			return 1; /* its bytes are in: no waiter */
		}
		w->next = fb->waiters;
		fb->waiters = w;
		if (wp)
			*wp = w;
	}
	sched_unlock(s);
	free(q);
	if (need)
		engine_kick(s->engine);
	return 0;
}

int sched_want(struct sched *s, struct fblob *fb, uint64_t first, uint64_t last,
	       enum sched_prio prio, sched_done_fn done, void *arg,
	       struct sched_waiter **wp)
{
	uint64_t end = (last + 1) * (uint64_t)fb->b->layout.chunk_size;

	if (end > fb->b->layout.file_size)
		end = fb->b->layout.file_size;
	return want(s, fb, first, last, end, 0, prio, done, arg, wp);
}

int sched_want_read(struct sched *s, struct fblob *fb, uint64_t off,
		    uint64_t len, bool tail_prefix, enum sched_prio prio,
		    sched_done_fn done, void *arg, struct sched_waiter **wp)
{
	uint64_t first, last;
	uint32_t tail = 0;

	if (wp)
		*wp = NULL;
	if (!fblob_chunks_for(fb, off, len, &first, &last))
		return -EINVAL;
	if (tail_prefix)
		tail = read_need(fb, last, off + len);
	return want(s, fb, first, last, off + len, tail, prio, done, arg, wp);
}

int sched_cancel(struct sched *s, struct sched_waiter *w)
{
	struct sched_waiter **pp;
	int ret = -EALREADY;

	sched_lock(s);
	if (w->state == W_PENDING) {
		for (pp = &w->fb->waiters; *pp; pp = &(*pp)->next) {
			if (*pp == w) {
				*pp = w->next;
				break;
			}
		}
		w->state = W_CANCELLED;
		ret = 0;
	}
	sched_unlock(s);
	if (!ret)
		free(w);
	return ret;
}

/*
 * Detaches the waiters that are now satisfied (every chunk DONE or with
 * the bytes they need landed) or that need a FAILED chunk (they get err)
 * onto *fire. Called after a change to chunks [lo, hi].
 */
static void waiters_collect_locked(struct fblob *fb, uint64_t lo, uint64_t hi,
				   int err, struct sched_waiter **fire)
{
	struct sched_waiter **pp = &fb->waiters;

	assert_locked(fb->s);
	while (*pp) {
		struct sched_waiter *w = *pp;
		bool hit = w->first <= hi && w->last >= lo;
		bool ready = false;
		int werr = 0;

		if (hit) {
			uint64_t i;

			ready = true;
			for (i = w->first; i <= w->last; i++) {
				enum chunk_state st =
					chunkmap_get(fb->b->map, i);

				if (st == CHUNK_FAILED) {
					werr = err ? err : -EIO;
					break;
				}
				if (st != CHUNK_DONE &&
				    atomic_load(&fb->landed[i]) <
					    read_need(fb, i, w->end))
					ready = false;
			}
			if (werr)
				ready = true;
			else if (ready && fblob_held(fb))
				ready = false; /* until the verdict */
		}
		if (!ready) {
			pp = &w->next;
			continue;
		}
		*pp = w->next;
		w->state = W_FIRING;
		w->err = werr;
		w->next = *fire;
		*fire = w;
	}
	need_update_locked(fb, lo, hi);
}

static void waiters_fire(struct sched_waiter *w)
{
	while (w) {
		struct sched_waiter *next = w->next;

		w->done(w->arg, w->err);
		free(w);
		w = next;
	}
}

void sched_waiters_fire(struct sched_waiter *w)
{
	waiters_fire(w);
}

/*
 * Whether fb has work for a verify job: it has a hash, no job is queued
 * or finished, and either it is verified (its hooks are to run), or the
 * chunk where its in-order hash stopped is DONE, or everything is hashed
 * (the verdict). Marks it queued; the caller submits the job
 * (verify_submit) after the unlock.
 */
static bool verify_due_locked(struct fblob *fb)
{
	struct blob *b = fb->b;
	uint64_t next = fb->vhashed / b->layout.chunk_size;
	bool due;

	assert_locked(fb->s);
	if (!fb->hash || fb->vstate != VS_IDLE || atomic_load(&fb->fatal_err))
		return false;
	due = atomic_load(&fb->verified) ||
	      fb->vhashed >= b->layout.file_size ||
	      (next < b->nchunks && chunkmap_get(b->map, next) == CHUNK_DONE);
	if (due)
		fb->vstate = VS_QUEUED;
	return due;
}

/* The one info line of a file fetched to its end in this process. */
static void log_complete(struct sched *s, struct fblob *fb, const char *kind)
{
	uint64_t size = fb->b->layout.file_size, t0, done0, ms;
	char sz[UNITS_BYTES_MAX], rate[UNITS_BYTES_MAX];

	sched_lock(s);
	t0 = fb->want_ms;
	done0 = fb->want_done;
	fb->want_ms = 0; /* once */
	sched_unlock(s);
	if (!t0)
		return; /* completed by nobody's fetch here, or said */
	ms = clock_now_ms() - t0;
	units_bytes(size, sz, sizeof(sz));
	units_bytes((size - done0) * 1000 / (ms ? ms : 1), rate, sizeof(rate));
	hlog(HLOG_INFO, HLOG_FETCH,
	     "'%s' complete: %s in %" PRIu64 ".%03" PRIu64 " s (%s/s), %s%s",
	     fb->name, sz, ms / 1000, ms % 1000, rate,
	     kind ? "verified " : "not verified (no published hash)",
	     kind ? kind : "");
}

/* Forgets the prefix state of chunk idx (DONE, or its bytes gone). */
static void pstate_drop_locked(struct fblob *fb, uint64_t idx)
{
	unsigned int k;

	assert_locked(fb->s);
	for (k = 0; k < PSTATES_MAX; k++) {
		if (fb->pstates[k].st && fb->pstates[k].idx == idx) {
			XXH3_freeState(fb->pstates[k].st);
			fb->pstates[k].st = NULL;
		}
	}
}

void sched_prefix_keep(struct sched *s, struct fblob *fb, uint64_t idx,
		       uint64_t len, const void *st)
{
	XXH3_state_t *copy = XXH3_createState();
	struct pstate *p;

	if (!copy)
		return; /* the next job starts the chunk over */
	XXH3_copyState(copy, st);
	sched_lock(s);
	pstate_drop_locked(fb, idx);
	p = &fb->pstates[fb->pstate_next++ % PSTATES_MAX];
	XXH3_freeState(p->st);
	p->idx = idx;
	p->len = len;
	p->st = copy;
	sched_unlock(s);
}

void sched_chunk_done(struct sched *s, struct fetch_job *job, uint64_t idx,
		      struct sched_waiter **fire)
{
	struct fblob *fb = job->fb;
	struct sched_waiter *mine = NULL;
	bool verify, complete;

	sched_lock(s);
	chunkmap_set(fb->b->map, idx, CHUNK_DONE);
	pstate_drop_locked(fb, idx);
	waiters_collect_locked(fb, idx, idx, 0, fire ? fire : &mine);
	verify = verify_due_locked(fb);
	complete = chunkmap_done_count(fb->b->map) == fb->b->nchunks;
	sched_unlock(s);
	cache_chunk_unlock(job->lock_fd, idx);
	atomic_fetch_sub(&s->inflight_bytes, chunk_len(fb, idx));
	if (sched_ev(s))
		evictor_note_written(sched_ev(s), chunk_len(fb, idx));
	if (complete && !fb->hash) /* else its verdict says it */
		log_complete(s, fb, NULL);
	if (verify)
		verify_submit(s, fb); /* queues only: never runs it here */
	waiters_fire(mine);
}

void sched_chunk_landed(struct sched *s, struct fblob *fb, uint64_t idx,
			uint32_t bytes, struct sched_waiter **fire)
{
	if (bytes <= atomic_load(&fb->landed[idx]))
		return;
	atomic_store(&fb->landed[idx], bytes);
	if (bytes < atomic_load(&fb->need[idx]))
		return; /* nobody waits for these bytes */
	sched_lock(s);
	waiters_collect_locked(fb, idx, idx, 0, fire);
	sched_unlock(s);
}

static void job_release(struct fetch_job *job)
{
	XXH3_freeState(job->hs_init);
	free(job->url);
	free(job->origin);
	free(job->auth);
	free(job->aws_sigv4);
	free_secret(job->userpwd);
	free(job->etag);
	fblob_put(job->fb);
	memset(job, 0, sizeof(*job));
}

/* Returns chunks [from, to] of a job to the queue, deferred by delay_ms. */
static void requeue_locked(struct sched *s, struct fblob *fb, uint64_t from,
			   uint64_t to, enum sched_prio prio, uint64_t delay_ms,
			   struct qent *q)
{
	uint64_t i;

	assert_locked(s);
	for (i = from; i <= to; i++) {
		chunkmap_set(fb->b->map, i, CHUNK_QUEUED);
		if (fb->qprio[i] > prio)
			fb->qprio[i] = (uint8_t)prio;
	}
	queue_add_locked(s, fb, prio, from, to,
			 delay_ms ? clock_now_ms() + delay_ms : 0, q);
}

/*
 * A chunk write failed for lack of space: a worker runs the evictor and
 * queues the chunks again when it freed something; else their readers
 * hear -ENOSPC (fs/ops.c answers them from memory, uncached).
 */
struct nospace_work {
	struct work w; /* first: the pool hands it back */
	struct sched *s;
	struct fblob *fb; /* a reference */
	uint64_t first, last;
	enum sched_prio prio;
};

static void nospace_run(struct work *w, bool cancelled)
{
	struct nospace_work *nw = (struct nospace_work *)w;
	struct sched *s = nw->s;
	struct fblob *fb = nw->fb;
	struct sched_waiter *fire = NULL;
	uint64_t i;
	int res = -ENOSPC;

	if (!cancelled && evictor_run(sched_ev(s)) > 0)
		res = sched_want(s, fb, nw->first, nw->last, nw->prio, NULL,
				 NULL, NULL);
	if (res < 0) {
		sched_lock(s);
		for (i = nw->first; i <= nw->last; i++)
			if (chunkmap_get(fb->b->map, i) == CHUNK_MISSING)
				chunkmap_set(fb->b->map, i, CHUNK_FAILED);
		waiters_collect_locked(fb, nw->first, nw->last,
				       cancelled ? -ECANCELED : -ENOSPC, &fire);
		sched_unlock(s);
		waiters_fire(fire);
	}
	fblob_put(fb);
	free(nw);
}

/* Hands chunks [first, last] (set MISSING, their waiters kept) to a
 * nospace_work: true, or false when the caller must fail them. */
static bool nospace_retry(struct sched *s, struct fblob *fb, uint64_t first,
			  uint64_t last, enum sched_prio prio)
{
	struct nospace_work *nw;
	uint64_t now = clock_now_ms() + 1, i;

	if (!sched_ev(s) || atomic_load(&s->shutdown))
		return false;
	sched_lock(s);
	/* One retry at a time per file, and not again at once. */
	if (fb->nospace_ms && now - fb->nospace_ms < NOSPACE_RETRY_MS) {
		sched_unlock(s);
		return false;
	}
	fb->nospace_ms = now;
	sched_unlock(s);
	nw = calloc(1, sizeof(*nw));
	if (!nw)
		return false;
	nw->w.run = nospace_run;
	nw->s = s;
	nw->fb = fb;
	nw->first = first;
	nw->last = last;
	nw->prio = prio;
	fblob_get(fb);
	sched_lock(s);
	for (i = first; i <= last; i++)
		if (chunkmap_get(fb->b->map, i) == CHUNK_INFLIGHT)
			chunkmap_set(fb->b->map, i, CHUNK_MISSING);
	sched_unlock(s);
	if (!workq_submit(s->work, WORK_BULK, &nw->w))
		return true;
	fblob_put(fb);
	free(nw);
	sched_lock(s);
	for (i = first; i <= last; i++)
		if (chunkmap_get(fb->b->map, i) == CHUNK_MISSING)
			chunkmap_set(fb->b->map, i, CHUNK_INFLIGHT);
	sched_unlock(s);
	return false;
}

void sched_job_end(struct sched *s, struct fetch_job *job, uint64_t done_upto,
		   int err)
{
	struct fblob *fb = job->fb;
	uint64_t end = job->first + job->count, i;
	struct sched_waiter *fire = NULL;
	struct qent *q = NULL;
	bool requeue = !err && done_upto < end && !atomic_load(&s->shutdown);

	if (job->partial && done_upto < end)
		atomic_fetch_sub(&s->inflight_bytes, job->end - job->off);
	else
		for (i = done_upto; i < end; i++) /* claimed, never written */
			atomic_fetch_sub(&s->inflight_bytes, chunk_len(fb, i));

	if ((err == -ENOSPC || err == -EDQUOT) && done_upto < end &&
	    nospace_retry(s, fb, done_upto, end - 1, job->prio)) {
		for (i = done_upto; i < end; i++)
			cache_chunk_unlock(job->lock_fd, i);
		job_release(job);
		return;
	}

	if (requeue)
		q = calloc(1, sizeof(*q));
	/* Changed on the server: the blob fails for good before any reader
	 * of these chunks hears of it, so none asks again in between. */
	if (err == -ESTALE)
		sched_fail_blob(s, fb, err);
	sched_lock(s);
	/* A prefix that came: its readers had their bytes as they landed;
	 * the chunk is not complete. Fetched whole only if wanted so now. */
	if (requeue && job->partial && done_upto < end &&
	    atomic_load(&fb->pwant[done_upto]) &&
	    atomic_load(&fb->need[done_upto]) == UINT32_MAX) {
		chunkmap_set(fb->b->map, done_upto, CHUNK_MISSING);
		requeue = false;
	} else if (done_upto < end) {
		if (requeue && q) {
			requeue_locked(s, fb, done_upto, end - 1, job->prio, 0,
				       q);
			q = NULL;
		} else {
			if (!err)
				err = -ECANCELED;
			for (i = done_upto; i < end; i++)
				if (chunkmap_get(fb->b->map, i) ==
				    CHUNK_INFLIGHT)
					chunkmap_set(fb->b->map, i,
						     CHUNK_FAILED);
			waiters_collect_locked(fb, done_upto, end - 1, err,
					       &fire);
		}
	}
	sched_unlock(s);
	for (i = done_upto; i < end; i++)
		cache_chunk_unlock(job->lock_fd, i);
	free(q);
	waiters_fire(fire);
	job_release(job);
	if (requeue)
		engine_kick(s->engine);
}

void sched_job_defer(struct sched *s, struct fetch_job *job, int delay_ms)
{
	struct fblob *fb = job->fb;
	uint64_t i, end = job->first + job->count;
	struct qent *q = calloc(1, sizeof(*q));

	for (i = job->first; i < end; i++) {
		atomic_fetch_sub(&s->inflight_bytes, chunk_len(fb, i));
		cache_chunk_unlock(job->lock_fd, i);
	}
	sched_lock(s);
	if (q) {
		requeue_locked(s, fb, job->first, end - 1, job->prio,
			       (uint64_t)delay_ms, q);
		q = NULL;
	} else {
		for (i = job->first; i < end; i++)
			chunkmap_set(fb->b->map, i, CHUNK_FAILED);
	}
	sched_unlock(s);
	job_release(job);
}

void sched_fail_blob(struct sched *s, struct fblob *fb, int err)
{
	struct sched_waiter *fire = NULL, *w;
	int expected = 0;

	if (!atomic_compare_exchange_strong(&fb->fatal_err, &expected, err))
		return;
	sched_lock(s);
	while ((w = fb->waiters)) {
		fb->waiters = w->next;
		w->state = W_FIRING;
		w->err = err;
		w->next = fire;
		fire = w;
	}
	sched_unlock(s);
	waiters_fire(fire);
	engine_kick(s->engine);
}

/* True when a waiter of fb needs chunk idx. */
static bool wanted_locked(struct fblob *fb, uint64_t idx)
{
	assert_locked(fb->s);
	for (struct sched_waiter *w = fb->waiters; w; w = w->next)
		if (w->first <= idx && idx <= w->last)
			return true;
	return false;
}

bool sched_claim_chunk(struct sched *s, struct fblob *fb, uint64_t idx,
		       struct fetch_job *job, struct sched_waiter **fire)
{
	struct sched_waiter *mine = NULL;
	struct blob *b = fb->b;
	enum chunk_state was;
	struct qent *q;

	if (idx >= b->nchunks || fb->local_path)
		return false;
	sched_lock(s);
	was = chunkmap_get(b->map, idx);
	if (atomic_load(&fb->fatal_err) || atomic_load(&s->shutdown) ||
	    (was != CHUNK_MISSING && was != CHUNK_QUEUED &&
	     was != CHUNK_FAILED)) {
		sched_unlock(s);
		return false;
	}
	chunkmap_set(b->map, idx, CHUNK_INFLIGHT);
	sched_unlock(s);
	if (!cache_chunk_trylock(b->files.lock_fd, idx)) {
		memset(job, 0, sizeof(*job));
		fblob_get(fb);
		job->fb = fb;
		job->first = idx;
		job->count = 1;
		job->prio = SCHED_BACKGROUND;
		job->off = idx * (uint64_t)b->layout.chunk_size;
		job->end = job->off + b->layout.chunk_size;
		if (job->end > b->layout.file_size)
			job->end = b->layout.file_size;
		job->file_size = b->layout.file_size;
		job->chunk_size = b->layout.chunk_size;
		job->pinned = fb->pinned;
		job->data_fd = b->files.data_fd;
		job->sums_fd = b->files.sums_fd;
		job->lock_fd = b->files.lock_fd;
		return true;
	}
	/* Another process fetches it: as it was (a QUEUED chunk keeps its
	 * queue entry), or queued, deferred, when a reader came to wait on
	 * it meanwhile (it saw INFLIGHT and queued nothing). */
	q = calloc(1, sizeof(*q));
	sched_lock(s);
	if (chunkmap_get(b->map, idx) != CHUNK_INFLIGHT) {
		/* not ours any more (the blob failed) */
	} else if (was == CHUNK_QUEUED || !wanted_locked(fb, idx)) {
		chunkmap_set(b->map, idx, was);
	} else if (q) {
		requeue_locked(s, fb, idx, idx, SCHED_DEMAND, DEFER_FOREIGN_MS,
			       q);
		q = NULL;
	} else {
		chunkmap_set(b->map, idx, CHUNK_FAILED);
		waiters_collect_locked(fb, idx, idx, -ENOMEM,
				       fire ? fire : &mine);
	}
	sched_unlock(s);
	free(q);
	waiters_fire(mine);
	return false;
}

void sched_set_redirect(struct sched *s, struct fblob *fb, const char *url)
{
	char *copy = url ? strdup(url) : NULL, *old;

	sched_lock(s);
	old = fb->redirect;
	fb->redirect = copy;
	sched_unlock(s);
	free(old);
}

void sched_learn_etag(struct sched *s, struct fblob *fb, const char *etag)
{
	char *copy = strdup(etag);

	sched_lock(s);
	if (!fb->etag) {
		fb->etag = copy;
		copy = NULL;
	}
	sched_unlock(s);
	free(copy);
}

bool sched_has_work(struct sched *s, enum sched_prio prio)
{
	bool any = false;
	int p;

	sched_lock(s);
	for (p = 0; p <= (int)prio; p++)
		any = any || s->q[p];
	sched_unlock(s);
	return any;
}

/* Unlinks *pp from queue p, fixing the tail. */
static struct qent *queue_unlink_locked(struct sched *s, int p,
					struct qent **pp)
{
	struct qent *q = *pp;

	assert_locked(s);

	*pp = q->next;
	if (s->qtail[p] == &q->next)
		s->qtail[p] = pp;
	q->next = NULL;
	return q;
}

/*
 * Picks a run of QUEUED chunks from the queues and marks it INFLIGHT.
 * Returns 1 with job filled, 0 if nothing is ready (*next_ms: when a
 * deferred entry ripens). Dead entries go to *dead, to be dropped after
 * the unlock.
 */
static int pick_locked(struct sched *s, bool background, struct fetch_job *job,
		       int *next_ms, struct qent **dead)
{
	uint64_t now = clock_now_ms();
	int p, maxp = background ? SCHED_BACKGROUND : SCHED_READAHEAD;

	assert_locked(s);
	for (p = 0; p <= maxp; p++) {
		struct qent **pp = &s->q[p];

		while (*pp) {
			struct qent *q = *pp;
			struct fblob *fb = q->fb;
			struct chunkmap *map = fb->b->map;
			uint64_t i, n;

			if (atomic_load(&fb->fatal_err)) {
				q = queue_unlink_locked(s, p, pp);
				q->next = *dead;
				*dead = q;
				continue;
			}
			if (fb->local_path &&
			    s->local_inflight >= LOCAL_MAX_INFLIGHT) {
				/* Enough file:// copies: the next one kicks. */
				pp = &q->next;
				continue;
			}
			if (q->not_before_ms > now) {
				int ms = (int)(q->not_before_ms - now);

				if (*next_ms < 0 || ms < *next_ms)
					*next_ms = ms;
				pp = &q->next;
				continue;
			}
			for (i = q->first; i <= q->last; i++)
				if (chunkmap_get(map, i) == CHUNK_QUEUED)
					break;
			if (i > q->last) {
				q = queue_unlink_locked(s, p, pp);
				q->next = *dead;
				*dead = q;
				continue;
			}
			/* A chunk wanted as a prefix goes alone. */
			for (n = 0; i + n <= q->last &&
				    n < (uint64_t)s->o.max_run_chunks &&
				    chunkmap_get(map, i + n) == CHUNK_QUEUED &&
				    !(n && (atomic_load(&fb->pwant[i + n]) ||
					    atomic_load(&fb->pwant[i])));
			     n++)
				chunkmap_set(map, i + n, CHUNK_INFLIGHT);
			q->first = i + n;
			if (q->first > q->last) {
				q = queue_unlink_locked(s, p, pp);
				q->next = *dead;
				*dead = q;
			}
			memset(job, 0, sizeof(*job));
			job->fb = fb;
			fb->refs++;
			job->first = i;
			job->count = n;
			job->prio = (enum sched_prio)p;
			job->url =
				strdup(fb->redirect ? fb->redirect : fb->url);
			job->origin = strdup(fb->url);
			job->auth = fb->auth ? strdup(fb->auth) : NULL;
			job->aws_sigv4 = fb->aws_sigv4 ? strdup(fb->aws_sigv4) :
							 NULL;
			job->userpwd = fb->userpwd ? strdup(fb->userpwd) : NULL;
			job->if_match = fb->if_match;
			job->etag = fb->etag && !fb->pinned ? strdup(fb->etag) :
							      NULL;
			job->pinned = fb->pinned;
			return 1;
		}
	}
	return 0;
}

static void qents_drop(struct qent *q)
{
	while (q) {
		struct qent *next = q->next;

		fblob_put(q->fb);
		free(q);
		q = next;
	}
}

/* Copies the job's fields that the worker jobs below own for a while. */
struct job_work {
	struct work w; /* first: the pool hands it back */
	struct sched *s;
	struct fetch_job job; /* its reference and lock bytes */
};

static struct job_work *job_work_new(struct sched *s, work_fn run)
{
	struct job_work *jw = calloc(1, sizeof(*jw));

	if (jw) {
		jw->w.run = run;
		jw->s = s;
	}
	return jw;
}

/*
 * Worker (FAST lane): chunk job->first has a .sums entry, so it may be
 * complete on disk. It is DONE when the entry matches its bytes;
 * otherwise the stale entry is cleared and the chunk queued again, to be
 * fetched. The job holds the chunk's lock byte, so no other process
 * writes the chunk meanwhile.
 */
static void probe_run(struct work *w, bool cancelled)
{
	struct job_work *jw = (struct job_work *)w;
	struct fetch_job *job = &jw->job;
	struct fblob *fb = job->fb;
	uint64_t idx = job->first;
	bool done = false;
	int err = 0;

	if (cancelled) {
		sched_job_end(jw->s, job, idx, -ECANCELED);
		free(jw);
		return;
	}
	err = blob_probe_chunk(fb->b, idx, &done);
	if (err)
		hlog(HLOG_WARN, HLOG_STATE,
		     "checking chunk %" PRIu64 " of '%s' on disk failed: %s",
		     idx, fb->name, strerror(-err));
	if (done) {
		hlog(HLOG_DEBUG, HLOG_SCHED,
		     "'%s' chunk %" PRIu64 " found complete on disk", fb->name,
		     idx);
		sched_chunk_done(jw->s, job, idx, NULL);
		sched_job_end(jw->s, job, idx + 1, 0);
	} else {
		err = cache_sums_write(job->sums_fd, idx, 0);
		/* Requeued (fetched next time), or failed if the entry stays. */
		sched_job_end(jw->s, job, idx, err);
	}
	free(jw);
}

/* Hands chunk idx of job (claimed: INFLIGHT, lock byte held) to a probe. */
static void probe_submit(struct sched *s, const struct fetch_job *job,
			 uint64_t idx)
{
	struct job_work *jw = job_work_new(s, probe_run);
	struct fetch_job one = *job;

	one.url = one.origin = one.auth = one.etag = NULL;
	one.aws_sigv4 = one.userpwd = NULL;
	one.first = idx;
	one.count = 1;
	fblob_get(job->fb);
	if (!jw) {
		sched_job_end(s, &one, idx, -ENOMEM);
		return;
	}
	jw->job = one;
	if (workq_submit(s->work, WORK_FAST, &jw->w))
		probe_run(&jw->w, true); /* stopping: give it back */
}

/*
 * Chunk idx of fb is held by another process: since when (its first
 * sighting is now). With no room left, the oldest record is reused.
 */
static uint64_t stuck_since(struct sched *s, struct fblob *fb, uint64_t idx,
			    uint64_t now)
{
	int i, n, oldest = 0;
	uint64_t since = now;

	sched_lock(s);
	n = atomic_load(&fb->nstuck);
	for (i = 0; i < n; i++) {
		if (fb->stuck[i].idx == idx) {
			since = fb->stuck[i].since_ms;
			goto out;
		}
		if (fb->stuck[i].since_ms < fb->stuck[oldest].since_ms)
			oldest = i;
	}
	if (n < STUCK_MAX)
		atomic_store(&fb->nstuck, ++n);
	else
		i = oldest;
	fb->stuck[i].idx = idx;
	fb->stuck[i].since_ms = now;
	fb->stuck[i].warned = false;
out:
	sched_unlock(s);
	return since;
}

/* Chunk idx was claimed: no longer held elsewhere. */
static void stuck_forget(struct sched *s, struct fblob *fb, uint64_t idx)
{
	int i, n;

	if (!atomic_load(&fb->nstuck))
		return;
	sched_lock(s);
	n = atomic_load(&fb->nstuck);
	for (i = 0; i < n; i++) {
		if (fb->stuck[i].idx == idx) {
			fb->stuck[i] = fb->stuck[n - 1];
			atomic_store(&fb->nstuck, n - 1);
			break;
		}
	}
	sched_unlock(s);
}

/* Starts the clocks of the chunks of [from, end) another process holds;
 * leaves the others as they were (a lock taken to look is let go). */
static void stuck_note_rest(struct sched *s, const struct fetch_job *job,
			    uint64_t from, uint64_t end, uint64_t now)
{
	uint64_t j;

	for (j = from; j < end; j++) {
		if (cache_chunk_trylock(job->lock_fd, j))
			(void)stuck_since(s, job->fb, j, now);
		else
			cache_chunk_unlock(job->lock_fd, j);
	}
}

/*
 * Gives up waiting for chunk idx, which another process has held for
 * FOREIGN_WAIT_MS: its waiters get -ENOLCK, which readers answer with
 * bytes fetched into memory (fs/ops.c), and the chunk is FAILED, so the
 * next want queues it again (and gives up at once while it stays held).
 */
static void stuck_give_up(struct sched *s, const struct fetch_job *job,
			  uint64_t idx)
{
	struct fetch_job one = *job;
	struct fblob *fb = job->fb;
	bool say = false;
	int i, n;

	sched_lock(s);
	n = atomic_load(&fb->nstuck);
	for (i = 0; i < n; i++) {
		if (fb->stuck[i].idx == idx) {
			say = !fb->stuck[i].warned;
			fb->stuck[i].warned = true;
			break;
		}
	}
	sched_unlock(s);
	if (say) /* once per chunk, not once per reader */
		hlog(HLOG_WARN, HLOG_SCHED,
		     "'%s' chunk %" PRIu64 " is held by another process for "
		     "over %d s (frozen?): its readers are served uncached",
		     fb->name, idx, FOREIGN_WAIT_MS / 1000);
	one.url = one.origin = one.auth = one.etag = NULL;
	one.aws_sigv4 = one.userpwd = NULL;
	one.first = idx;
	one.count = 1;
	fblob_get(job->fb);
	/* Unlocking a byte another process holds changes nothing. */
	sched_job_end(s, &one, idx, -ENOLCK);
}

/*
 * Claims the lock bytes of the job's chunks, on the engine thread: it
 * reads the 8-byte .sums entry of each, never chunk data. A chunk with an
 * entry leaves the run for a probe on the worker pool; so does one locked
 * by another process (deferred). Returns false when the job has nothing
 * left to fetch (it was ended).
 */
/*
 * A job whose first chunk had a prefix fetched before (and still in the
 * data file) goes on from the prefix's end with its hash state, rather
 * than fetching those bytes again.
 */
static void pstate_resume(struct sched *s, struct fetch_job *job)
{
	struct fblob *fb = job->fb;
	XXH3_state_t *st = NULL;
	uint64_t len = 0;
	unsigned int k;

	if (fb->local_path)
		return;
	sched_lock(s);
	for (k = 0; k < PSTATES_MAX; k++) {
		struct pstate *p = &fb->pstates[k];

		if (!p->st || p->idx != job->first ||
		    p->len > atomic_load(&fb->landed[job->first]) ||
		    job->off + p->len >= job->end)
			continue;
		st = XXH3_createState();
		if (st) {
			XXH3_copyState(st, p->st);
			len = p->len;
		}
		break;
	}
	sched_unlock(s);
	if (st) {
		job->off += len;
		job->hs_init = st;
	}
}

static bool job_claim(struct sched *s, struct fetch_job *job)
{
	struct fblob *fb = job->fb;
	struct blob *b = fb->b;
	uint64_t end = job->first + job->count, i;
	uint64_t stop = end, requeue_from = end, delay_ms = 0;
	struct qent *q;
	uint32_t pw;

	job->data_fd = b->files.data_fd;
	job->sums_fd = b->files.sums_fd;
	job->lock_fd = b->files.lock_fd;

	for (i = job->first; i < end; i++) {
		uint64_t sum = 0;

		if (cache_chunk_trylock(b->files.lock_fd, i)) {
			uint64_t now = clock_now_ms();

			if (i == job->first &&
			    now - stuck_since(s, fb, i, now) >=
				    FOREIGN_WAIT_MS) {
				stuck_give_up(s, job, i);
				job->first++;
				job->count--;
				continue;
			}
			/* Another process fetches it: look again later. The
			 * clocks of the rest of the run held with it start
			 * now too, so a frozen peer costs one wait, not one
			 * per chunk it holds. */
			stuck_note_rest(s, job, i + 1, end, now);
			stop = requeue_from = i;
			delay_ms = DEFER_FOREIGN_MS;
			break;
		}
		stuck_forget(s, fb, i);
		/* A read error counts as no entry: the chunk is fetched. */
		if (blob_sums_entry(b, i, &sum) || !sum)
			continue;
		probe_submit(s, job, i);
		if (i == job->first) {
			job->first++;
			job->count--;
			continue;
		}
		/* In the middle: the run stops before it. */
		stop = i;
		requeue_from = i + 1;
		break;
	}
	if (requeue_from < end) {
		/* Not claimed: back to the queue. */
		q = calloc(1, sizeof(*q));
		sched_lock(s);
		if (q) {
			requeue_locked(s, fb, requeue_from, end - 1, job->prio,
				       delay_ms, q);
		} else {
			for (i = requeue_from; i < end; i++)
				chunkmap_set(b->map, i, CHUNK_FAILED);
		}
		sched_unlock(s);
	}
	job->count = stop - job->first;
	if (!job->count) {
		job_release(job);
		return false;
	}
	job->off = job->first * (uint64_t)b->layout.chunk_size;
	job->end = (job->first + job->count) * (uint64_t)b->layout.chunk_size;
	if (job->end > b->layout.file_size)
		job->end = b->layout.file_size;
	pw = atomic_load(&fb->pwant[job->first]);
	/* Only where Range is known to work: a whole-file answer is never
	 * cut to a prefix. */
	if (job->count == 1 && pw && sched_blob_ranges(fb) == 1 &&
	    !fb->local_path) {
		uint64_t pe = job->off + (pw + PREFIX_ALIGN - 1) /
						 PREFIX_ALIGN * PREFIX_ALIGN;

		if (pe < job->end) {
			job->end = pe;
			job->partial = true;
		}
	}
	pstate_resume(s, job);
	job->file_size = b->layout.file_size;
	job->chunk_size = b->layout.chunk_size;
	return true;
}

/*
 * Copies chunks [*idx, job end) of a file:// blob from its source file,
 * on the worker pool: pread, pwrite at the same offset, the chunk's xxh3
 * into .sums, then DONE. *idx ends at the first chunk not completed.
 * Checks for cancellation between blocks.
 */
static int copy_chunks(struct sched *s, struct fetch_job *job, uint64_t *idx)
{
	struct fblob *fb = job->fb;
	uint64_t end = job->first + job->count;
	XXH3_state_t *hs = NULL;
	struct stat st;
	char *buf = NULL;
	int fd, err = 0;

	fd = open(fb->local_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		hlog(HLOG_ERR, HLOG_FETCH, "cannot open '%s': %s",
		     fb->local_path, strerror(-err));
		return err;
	}
	if (fstat(fd, &st) < 0) {
		err = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != job->file_size) {
		hlog(HLOG_ERR, HLOG_FETCH,
		     "'%s' changed: size %lld, expected %" PRIu64,
		     fb->local_path, (long long)st.st_size, job->file_size);
		err = -ESTALE;
		goto out;
	}
	buf = malloc(COPY_BLOCK_BYTES);
	hs = XXH3_createState();
	if (!buf || !hs) {
		err = -ENOMEM;
		goto out;
	}
	for (; *idx < end; (*idx)++) {
		uint64_t off = *idx * (uint64_t)job->chunk_size;
		uint64_t cend = off + job->chunk_size, sum;

		if (cend > job->file_size)
			cend = job->file_size;
		XXH3_64bits_reset(hs);
		while (off < cend) {
			size_t n = COPY_BLOCK_BYTES;

			if (cend - off < n)
				n = (size_t)(cend - off);

			if (work_cancelled() || sched_blob_cancelled(fb)) {
				err = fblob_error(fb);
				err = err ? err : -ECANCELED;
				goto out;
			}
			err = pread_all(fd, buf, n, off);
			if (err) {
				hlog(HLOG_ERR, HLOG_FETCH,
				     "reading '%s' at %" PRIu64 " failed: %s",
				     fb->local_path, off, strerror(-err));
				goto out;
			}
			err = pwrite_all(job->data_fd, buf, n, off);
			if (err)
				goto out;
			XXH3_64bits_update(hs, buf, n);
			off += n;
		}
		sum = XXH3_64bits_digest(hs);
		err = cache_sums_write(job->sums_fd, *idx, sum ? sum : 1);
		if (err)
			goto out;
		sched_chunk_done(s, job, *idx, NULL);
	}
out:
	if (hs)
		XXH3_freeState(hs);
	free(buf);
	close(fd);
	return err;
}

/* Worker (IO lane): a claimed run of a file:// blob. */
static void copy_run(struct work *w, bool cancelled)
{
	struct job_work *jw = (struct job_work *)w;
	struct sched *s = jw->s;
	uint64_t idx = jw->job.first;
	int err = cancelled ? -ECANCELED : copy_chunks(s, &jw->job, &idx);

	sched_lock(s);
	s->local_inflight--;
	sched_unlock(s);
	sched_job_end(s, &jw->job, idx, err); /* ESTALE fails the blob */
	free(jw);
	engine_kick(s->engine); /* the next file:// run */
}

/* Hands a claimed file:// job to the pool; the job is consumed. */
static void copy_submit(struct sched *s, struct fetch_job *job)
{
	struct job_work *jw = job_work_new(s, copy_run);

	if (!jw) {
		sched_lock(s);
		s->local_inflight--;
		sched_unlock(s);
		sched_job_end(s, job, job->first, -ENOMEM);
		return;
	}
	jw->job = *job;
	memset(job, 0, sizeof(*job));
	if (workq_submit(s->work, WORK_IO, &jw->w))
		copy_run(&jw->w, true);
}

int sched_take_job(struct sched *s, bool background, struct fetch_job *job,
		   int *next_ms)
{
	for (;;) {
		struct qent *dead = NULL;
		bool local;
		int got;

		*next_ms = -1;
		/* Over the size limit, new chunks wait for the evictor (those
		 * in flight are the slack). */
		if (sched_ev(s) &&
		    evictor_should_wait(sched_ev(s),
					atomic_load(&s->inflight_bytes))) {
			*next_ms = EVICT_POLL_MS;
			return 0;
		}
		sched_lock(s);
		got = 0;
		if (!s->stopping && !atomic_load(&s->shutdown))
			got = pick_locked(s, background, job, next_ms, &dead);
		local = got && job->fb->local_path;
		if (local)
			s->local_inflight++;
		sched_unlock(s);
		qents_drop(dead);
		if (!got)
			return 0;
		if (!job->url || !job->origin ||
		    (job->fb->auth && !job->auth) ||
		    (job->fb->aws_sigv4 && !job->aws_sigv4) ||
		    (job->fb->userpwd && !job->userpwd)) {
			if (local) {
				sched_lock(s);
				s->local_inflight--;
				sched_unlock(s);
			}
			sched_job_end(s, job, job->first, -ENOMEM);
			continue;
		}
		if (!job_claim(s, job)) {
			if (local) {
				sched_lock(s);
				s->local_inflight--;
				sched_unlock(s);
			}
			continue;
		}
		/* Counted as cache space from now: the limit holds with what
		 * is in flight. */
		/* Whole chunks, as sched_chunk_done takes them back, even
		 * when the job goes on after a prefix; a prefix job its bytes
		 * (sched_job_end takes them back). */
		atomic_fetch_add(
			&s->inflight_bytes,
			job->end - (job->partial ?
					    job->off :
					    job->first *
						    (uint64_t)fblob_chunk_size(
							    job->fb)));
		if (!local)
			return 1;
		copy_submit(s, job);
	}
}

struct uncached_read {
	struct work w; /* first: file:// reads run on the pool */
	sched_bytes_fn done;
	void *arg;
	uint64_t off;
	size_t len;
	struct fblob *fb; /* a reference */
};

/*
 * Checks an uncached answer as blob transfers are checked (engine.c,
 * blob_validate): a 206, not encoded, whose Content-Range is exactly the
 * bytes asked for, of the file's size, with the blob's ETag, and a body
 * of that length. Says why in one line. Returns 0 or a negative errno.
 */
static int uncached_check(struct uncached_read *ur, struct http_result *res)
{
	struct fblob *fb = ur->fb;
	uint64_t end = ur->off + ur->len - 1;
	char ubuf[512], *etag = NULL;
	const char *why = NULL;
	int err = 0;

	/* A 200 (Range ignored) is larger than a read: -EFBIG. */
	if (res->err && !(res->err == -EFBIG && res->status == 200))
		return res->err; /* the engine said why */
	if (res->status != 206) {
		why = "not a 206";
		err = -EPROTO;
	} else if (res->encoding) {
		why = "an encoded body";
		err = -EPROTO;
	} else {
		err = http_check_content_range(res->content_range, ur->off,
					       ur->len,
					       fb->b->layout.file_size);
		why = err == -ESTALE ? "the file's size changed" :
				       "another Content-Range";
	}
	if (!err && !fb->pinned) {
		sched_lock(fb->s);
		if (fb->etag && res->etag &&
		    !http_etag_equal(fb->etag, res->etag))
			etag = strdup(fb->etag);
		sched_unlock(fb->s);
		if (etag) {
			why = "the ETag changed";
			err = -ESTALE;
		}
	}
	if (!err && res->body_len != ur->len) {
		why = "a short body";
		err = -EPROTO;
	}
	if (!err)
		return 0;
	hlog(HLOG_ERR, HLOG_FETCH,
	     "uncached read of '%s' bytes %" PRIu64 "-%" PRIu64
	     " refused: %s (HTTP %ld, Content-Range '%s', ETag %s%s%s%s) "
	     "from '%s'",
	     fb->name, ur->off, end, why, res->status,
	     res->content_range ? res->content_range : "",
	     res->etag ? res->etag : "-", etag ? ", expected " : "",
	     etag ? etag : "", res->encoding ? ", encoded" : "",
	     http_log_url(res->url ? res->url : fb->url, ubuf, sizeof(ubuf)));
	free(etag);
	/* Changed on the server: the blob fails for good, as when cached. */
	if (err == -ESTALE)
		sched_fail_blob(fb->s, fb, err);
	return err;
}

static void uncached_done(void *arg, struct http_result *res)
{
	struct uncached_read *ur = arg;
	int err = uncached_check(ur, res);

	ur->done(ur->arg, err, err ? NULL : res->body, err ? 0 : ur->len);
	http_result_release(res);
	fblob_put(ur->fb);
	free(ur);
}

/* Worker (IO lane): an uncached read of a file:// blob, by pread. */
static void uncached_local_run(struct work *w, bool cancelled)
{
	struct uncached_read *ur = (struct uncached_read *)w;
	char *buf = NULL;
	int err = -ECANCELED, fd = -1;

	if (!cancelled) {
		buf = malloc(ur->len);
		fd = open(ur->fb->local_path, O_RDONLY | O_CLOEXEC);
		if (!buf)
			err = -ENOMEM;
		else if (fd < 0)
			err = -errno;
		else
			err = pread_all(fd, buf, ur->len, ur->off);
		if (fd >= 0)
			close(fd);
	}
	ur->done(ur->arg, err, err ? NULL : buf, err ? 0 : ur->len);
	free(buf);
	fblob_put(ur->fb);
	free(ur);
}

int sched_read_uncached(struct sched *s, struct fblob *fb, uint64_t off,
			size_t len, sched_bytes_fn done, void *arg)
{
	struct http_req req = {
		.url = fb->url,
		.auth = fb->auth,
		.aws_sigv4 = fb->aws_sigv4,
		.userpwd = fb->userpwd,
		.range_off = off,
		.range_len = len,
		.max_body = len,
	};
	struct uncached_read *ur;
	char *etag = NULL;
	int err;

	if (!len || (!s->engine && !fb->local_path))
		return -EINVAL;
	/* A pinned object is asked for as it was listed, like the cached
	 * path does (s3://: a changed object answers 412). */
	if (s->o.offline)
		return -ENETDOWN;
	ur = calloc(1, sizeof(*ur));
	if (!ur)
		return -ENOMEM;
	if (fb->if_match) {
		sched_lock(s);
		etag = fb->etag ? strdup(fb->etag) : NULL;
		sched_unlock(s);
		req.if_match = etag;
	}
	ur->done = done;
	ur->arg = arg;
	ur->off = off;
	ur->len = len;
	ur->fb = fb;
	fblob_get(fb);
	if (fb->local_path) {
		ur->w.run = uncached_local_run;
		err = workq_submit(s->work, WORK_IO, &ur->w);
	} else {
		err = engine_http_submit(s->engine, &req, uncached_done, ur);
	}
	free(etag); /* copied by engine_http_submit */
	if (err) {
		fblob_put(fb);
		free(ur);
	}
	return err;
}

struct sync_waiter {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool fired;
	int err;
};

static void sync_done(void *arg, int err)
{
	struct sync_waiter *sw = arg;

	pthread_mutex_lock(&sw->lock);
	sw->fired = true;
	sw->err = err;
	pthread_cond_signal(&sw->cond);
	pthread_mutex_unlock(&sw->lock);
}

int sched_wait(struct sched *s, struct fblob *fb, uint64_t first, uint64_t last,
	       enum sched_prio prio, int timeout_ms)
{
	struct sync_waiter sw = { .fired = false };
	struct sched_waiter *w;
	struct timespec deadline;
	int ret;

	pthread_mutex_init(&sw.lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&sw.cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	/* Held across the want, so sync_done cannot finish before we wait;
	 * sync_done is never called under a scheduler lock. */
	pthread_mutex_lock(&sw.lock);
	ret = sched_want(s, fb, first, last, prio, sync_done, &sw, &w);
	if (ret) {
		pthread_mutex_unlock(&sw.lock);
		ret = ret > 0 ? 0 : ret;
		goto out;
	}
	deadline = clock_deadline_in_ms(timeout_ms);
	while (!sw.fired) {
		if (pthread_cond_timedwait(&sw.cond, &sw.lock, &deadline) ==
		    ETIMEDOUT)
			break;
	}
	if (sw.fired) {
		ret = sw.err;
		pthread_mutex_unlock(&sw.lock);
		goto out;
	}
	pthread_mutex_unlock(&sw.lock);
	if (sched_cancel(s, w) == 0) {
		ret = -ETIMEDOUT;
		goto out;
	}
	/* It is firing right now: wait for sync_done to finish. */
	pthread_mutex_lock(&sw.lock);
	while (!sw.fired)
		pthread_cond_wait(&sw.cond, &sw.lock);
	ret = sw.err;
	pthread_mutex_unlock(&sw.lock);
out:
	/* sync_done may still hold sw.lock for its unlock: take it once. */
	pthread_mutex_lock(&sw.lock);
	pthread_mutex_unlock(&sw.lock);
	pthread_cond_destroy(&sw.cond);
	pthread_mutex_destroy(&sw.lock);
	return ret;
}

/*
 * A corrupt blob is thrown away, with the saver kept off it (blob_save
 * must never run beside it: it would write the bits back) and after the
 * splice replies that were reading its data file are done, so no reader
 * ever gets the zeros of a punched hole. Its chunks become MISSING under
 * s->lock. The blob has failed already, so no new reply starts.
 */
static void discard(struct sched *s, struct fblob *fb)
{
	uint64_t i;
	int err;

	sched_lock(s);
	for (i = 0; i < fb->b->nchunks; i++)
		atomic_store(&fb->landed[i], 0);
	sched_unlock(s);
	replies_drain(fb, 5000);
	sched_lock(s);
	fb->discarding = true;
	while (fb->saving)
		sched_cond_wait(s, &s->discard_cond, NULL);
	for (i = 0; i < fb->b->nchunks; i++)
		chunkmap_set(fb->b->map, i, CHUNK_MISSING);
	sched_unlock(s);
	err = verify_discard(fb->b);
	if (err)
		hlog(HLOG_WARN, HLOG_STATE, "discarding '%s' failed: %s",
		     fb->name, strerror(-err));
	sched_lock(s);
	fb->discarding = false;
	sched_unlock(s);
}

/* The verdict on fb, whose bytes hashed to got. */
static void verdict(struct sched *s, struct fblob *fb, const char *got)
{
	struct sched_waiter *fire = NULL;
	int err;

	if (strcmp(got, fb->hash)) {
		hlog(HLOG_ERR, HLOG_STATE,
		     "'%s' is corrupt: %s %s, expected %s; its cached "
		     "bytes are discarded and reads fail until a remount",
		     fb->name, fb->hash_kind, got, fb->hash);
		/* Every held read, the one that completed it included, gets
		 * EIO now; then the kernel's pages go, then the bytes. */
		sched_fail_blob(s, fb, -EBADMSG);
		if (s->o.on_corrupt)
			s->o.on_corrupt(s->o.on_verified_arg, fb);
		discard(s, fb);
		return;
	}
	err = verify_mark(fb->b, fb->hash_kind, fb->hash);
	if (err)
		hlog(HLOG_WARN, HLOG_STATE,
		     "recording the check of '%s' failed: %s", fb->name,
		     strerror(-err));
	sched_lock(s);
	atomic_store(&fb->verified, true);
	waiters_collect_locked(fb, 0, fb->b->nchunks ? fb->b->nchunks - 1 : 0,
			       0, &fire);
	sched_unlock(s);
	hlog(HLOG_DEBUG, HLOG_STATE, "'%s' verified (%s)", fb->name,
	     fb->hash_kind);
	log_complete(s, fb, fb->hash_kind);
	waiters_fire(fire); /* the reads held for it */
}

/*
 * A verify job (worker pool, BULK lane, no lock held): hashes fb's DONE
 * chunks in file order from where the hash stopped, as they land, so
 * the verdict comes the moment the last one does; then the hooks run
 * (export) once. Returns 1 when the check is over for good (verified and
 * announced, or corrupt), 0 when it waits for the next chunk in order,
 * or -ECANCELED.
 */
static int verify_advance(struct sched *s, struct fblob *fb)
{
	struct blob *b = fb->b;
	uint64_t size = b->layout.file_size, pos;
	char got[VERIFY_HEX_MAX];
	int err = 0;

	if (atomic_load(&fb->fatal_err))
		return 1;
	if (atomic_load(&fb->verified))
		goto hooks;
	if (!fb->vctx)
		err = verify_ctx_new(fb->hash_kind, size, &fb->vctx);
	for (;;) {
		uint64_t idx, len;
		bool ready;

		if (err)
			goto fail;
		sched_lock(s);
		pos = fb->vhashed;
		idx = pos / b->layout.chunk_size;
		ready = pos < size && chunkmap_get(b->map, idx) == CHUNK_DONE;
		sched_unlock(s);
		if (!ready)
			break;
		len = size - pos < b->layout.chunk_size ? size - pos :
							  b->layout.chunk_size;
		err = verify_ctx_feed(fb->vctx, b->files.data_fd, pos, len,
				      work_cancelled);
		if (!err) {
			sched_lock(s);
			fb->vhashed = pos + len;
			sched_unlock(s);
		}
	}
	if (pos < size)
		return 0;
	err = verify_ctx_final(fb->vctx, got);
	verify_ctx_free(fb->vctx);
	fb->vctx = NULL;
	if (err)
		goto fail;
	verdict(s, fb, got);
	if (atomic_load(&fb->fatal_err))
		return 1;
hooks:
	if (work_cancelled())
		return -ECANCELED;
	if (s->o.on_verified)
		s->o.on_verified(s->o.on_verified_arg, fb);
	return 1;
fail:
	verify_ctx_free(fb->vctx);
	fb->vctx = NULL;
	sched_lock(s);
	fb->vhashed = 0;
	sched_unlock(s);
	if (err == -ECANCELED)
		return err;
	/* Our own cache file cannot be read: its reads would wait for a
	 * verdict that never comes, so the file fails instead. */
	hlog(HLOG_ERR, HLOG_STATE, "checking the %s of '%s' failed: %s",
	     fb->hash_kind, fb->name, strerror(-err));
	sched_fail_blob(s, fb, -EIO);
	return 1;
}

struct verify_work {
	struct work w; /* first: the pool hands it back */
	struct sched *s;
	struct fblob *fb; /* a reference */
};

static void verify_run(struct work *w, bool cancelled)
{
	struct verify_work *vw = (struct verify_work *)w;
	struct sched *s = vw->s;
	struct fblob *fb = vw->fb;
	int st = cancelled ? -ECANCELED : verify_advance(s, fb);
	bool again;

	sched_lock(s);
	fb->vstate = st == 1 ? VS_DONE : VS_IDLE;
	if (fb->vreset) {
		/* A failed save dropped chunks meanwhile: start over. */
		fb->vreset = false;
		verify_ctx_free(fb->vctx);
		fb->vctx = NULL;
		fb->vhashed = 0;
		atomic_store(&fb->verified, false);
		fb->vstate = VS_IDLE;
		st = 0;
	}
	/* A chunk that landed in order while the job was finishing. */
	again = st == 0 && verify_due_locked(fb);
	sched_unlock(s);
	if (again)
		verify_submit(s, fb);
	fblob_put(fb);
	free(vw);
}

/* Queues fb's check (its vstate is VS_QUEUED); undoes that when the pool
 * is stopping or memory is short. Never blocks. */
static void verify_submit(struct sched *s, struct fblob *fb)
{
	struct verify_work *vw = calloc(1, sizeof(*vw));

	if (vw) {
		vw->w.run = verify_run;
		vw->s = s;
		vw->fb = fb;
		fblob_get(fb);
		if (!workq_submit(s->work, WORK_BULK, &vw->w))
			return;
		fblob_put(fb);
		free(vw);
	}
	sched_lock(s);
	fb->vstate = VS_IDLE;
	sched_unlock(s);
}

/*
 * A failed save may have dropped chunks that were not durable
 * (blob_save): they are MISSING again. The reads waiting on fb get them
 * queued again (a read held for the verdict of a then complete file
 * waits on them now), and the file's check starts over, since those
 * bytes will be fetched anew.
 */
static void after_failed_save(struct sched *s, struct fblob *fb)
{
	struct range {
		uint64_t first, last;
	} *r = NULL;
	struct sched_waiter *w;
	size_t n = 0, i;

	sched_lock(s);
	for (w = fb->waiters; w; w = w->next)
		n++;
	if (n)
		r = calloc(n, sizeof(*r));
	n = 0;
	for (w = fb->waiters; w && r; w = w->next) {
		r[n].first = w->first;
		r[n++].last = w->last;
	}
	if (fb->hash && !atomic_load(&fb->fatal_err)) {
		atomic_store(&fb->verified, false);
		if (fb->vstate == VS_QUEUED) {
			fb->vreset = true; /* the running job does it */
		} else {
			verify_ctx_free(fb->vctx);
			fb->vctx = NULL;
			fb->vhashed = 0;
			fb->vstate = VS_IDLE;
		}
	}
	sched_unlock(s);
	for (i = 0; i < n; i++) {
		int res = sched_want(s, fb, r[i].first, r[i].last, SCHED_DEMAND,
				     NULL, NULL, NULL);

		if (res < 0) /* the waiter hears of the blob's failure */
			hlog(HLOG_DEBUG, HLOG_SCHED,
			     "queueing '%s' chunks %" PRIu64 "-%" PRIu64
			     " again failed: %s",
			     fb->name, r[i].first, r[i].last, strerror(-res));
	}
	free(r);
}

static int idle_cmp(const void *a, const void *b)
{
	const struct fblob *x = *(struct fblob *const *)a;
	const struct fblob *y = *(struct fblob *const *)b;

	return x->idle_ms < y->idle_ms ? -1 : x->idle_ms > y->idle_ms;
}

/*
 * Unlinks the idle blobs to close now and returns them as a list: those
 * idle for idle_close_ms, and, least recently used first, as many as
 * bring the open count down to the soft bound. A blob that failed for
 * good stays open (it answers EIO until unmount) unless the count needs
 * it gone.
 */
static struct fblob *idle_pick_locked(struct sched *s, bool all)
{
	struct fblob **idle, *fb, *out = NULL;
	uint64_t now = clock_now_ms() + 1;
	size_t n = 0, i, open, soft = open_soft_max(s);

	assert_locked(s);
	s->close_requested = false;
	for (fb = s->blobs; fb; fb = fb->next)
		n += fb->refs == 0 && fb->idle_ms;
	if (!n)
		return NULL;
	idle = calloc(n, sizeof(*idle));
	if (!idle)
		return NULL;
	n = 0;
	for (fb = s->blobs; fb; fb = fb->next)
		if (fb->refs == 0 && fb->idle_ms)
			idle[n++] = fb;
	qsort(idle, n, sizeof(*idle), idle_cmp);
	open = s->nopen;
	for (i = 0; i < n; i++) {
		bool old = now - idle[i]->idle_ms >= s->o.idle_close_ms &&
			   !atomic_load(&idle[i]->fatal_err);

		if (!old && !all && open <= soft)
			continue;
		fblob_unlink_locked(s, idle[i]);
		idle[i]->next = out;
		out = idle[i];
		open--;
	}
	free(idle);
	return out;
}

/* Saves and frees the blobs of list (unlinked by idle_pick_locked), then
 * lets a sched_open waiting for a slot go on. Returns how many. */
static size_t close_list(struct sched *s, struct fblob *list)
{
	struct fblob *next;
	size_t n = 0;

	for (; list; list = next, n++) {
		next = list->next;
		fblob_destroy(list);
	}
	if (n) {
		sched_lock(s);
		s->nopen -= n;
		pthread_cond_broadcast(&s->closed_cond);
		sched_unlock(s);
	}
	return n;
}

/* One saver round over every open blob, then closes the idle ones due:
 * syncs and sidecars only, nothing that reads or hashes a whole file. */
static void saver_round(struct sched *s)
{
	struct fblob **open_refs = NULL, *closing, *fb;
	size_t n = 0, i;

	sched_lock(s);
	closing = idle_pick_locked(s, false);
	for (fb = s->blobs; fb; fb = fb->next)
		n++;
	if (n)
		open_refs = calloc(n, sizeof(*open_refs));
	if (open_refs) {
		i = 0;
		for (fb = s->blobs; fb; fb = fb->next) {
			fb->refs++;
			open_refs[i++] = fb;
		}
	} else {
		n = 0;
	}
	sched_unlock(s);

	for (i = 0; i < n; i++) {
		bool skip;
		int err;

		fb = open_refs[i];
		sched_lock(s);
		skip = fb->discarding;
		fb->saving = !skip;
		sched_unlock(s);
		if (!skip) {
			err = blob_save(fb->b);
			if (err)
				hlog(HLOG_WARN, HLOG_STATE,
				     "saving the state of '%s' failed: %s",
				     fb->name, strerror(-err));
			sched_lock(s);
			fb->saving = false;
			pthread_cond_broadcast(&s->discard_cond);
			sched_unlock(s);
			if (err)
				after_failed_save(s, fb);
		}
		fblob_put(fb);
	}
	free(open_refs);
	close_list(s, closing);
}

static void *saver_main(void *arg)
{
	struct sched *s = arg;

	sched_lock(s);
	while (!s->stopping) {
		struct timespec ts;
		bool requested;

		ts = clock_deadline_in_ms(s->o.save_interval_ms);
		if (!s->save_requested && !s->close_requested)
			sched_cond_wait(s, &s->saver_cond, &ts);
		if (s->stopping)
			break;
		requested = s->save_requested;
		s->save_requested = false;
		sched_unlock(s);
		saver_round(s);
		sched_lock(s);
		if (requested) {
			s->save_gen++;
			pthread_cond_broadcast(&s->saved_cond);
		}
	}
	sched_unlock(s);
	return NULL;
}

void sched_save_all(struct sched *s)
{
	uint64_t gen;

	sched_lock(s);
	gen = s->save_gen;
	s->save_requested = true;
	pthread_cond_signal(&s->saver_cond);
	while (s->save_gen == gen && !s->stopping)
		sched_cond_wait(s, &s->saved_cond, NULL);
	sched_unlock(s);
}

int sched_new(const struct sched_opts *opts, struct cache *cache,
	      struct engine *engine, struct sched **out)
{
	struct sched *s;
	pthread_condattr_t ca;
	int err, p;

	*out = NULL;
	if (!chunk_size_valid(opts->chunk_size))
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->o = *opts;
	if (s->o.max_run_chunks < 1)
		s->o.max_run_chunks = 1;
	if (s->o.save_interval_ms < 10)
		s->o.save_interval_ms = 10;
	s->cache = cache;
	s->engine = engine;
	for (p = 0; p < 3; p++)
		s->qtail[p] = &s->q[p];
	pthread_mutex_init(&s->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->saver_cond, &ca);
	pthread_condattr_destroy(&ca);
	pthread_cond_init(&s->saved_cond, NULL);
	pthread_cond_init(&s->discard_cond, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->closed_cond, &ca);
	pthread_condattr_destroy(&ca);
	if (s->o.max_open_blobs < 4)
		s->o.max_open_blobs = 4;
	err = workq_new(s->o.workers, &s->work);
	if (!err) {
		err = -pthread_create(&s->saver, NULL, saver_main, s);
		if (err)
			workq_free(s->work);
	}
	if (err) {
		pthread_cond_destroy(&s->saver_cond);
		pthread_cond_destroy(&s->saved_cond);
		pthread_cond_destroy(&s->discard_cond);
		pthread_cond_destroy(&s->closed_cond);
		pthread_mutex_destroy(&s->lock);
		free(s);
		return err;
	}
	if (engine)
		engine_attach_sched(engine, s);
	*out = s;
	return 0;
}

/* ---- the evictor's side (fetch/evictor.c) ---- */

void sched_set_evictor(struct sched *s, struct evictor *ev)
{
	if (ev)
		evictor_set_job_bytes(ev, (uint64_t)s->o.max_run_chunks *
						  s->o.chunk_size);
	atomic_store(&s->ev, ev);
}

int sched_submit_bulk(struct sched *s, struct work *w)
{
	return workq_submit(s->work, WORK_BULK, w);
}

bool sched_blob_is_open(struct sched *s, const char *hex)
{
	bool open;

	sched_lock(s);
	open = find_locked(s, hex) != NULL;
	sched_unlock(s);
	return open;
}

size_t sched_close_idle(struct sched *s)
{
	struct fblob *closing;

	sched_lock(s);
	closing = idle_pick_locked(s, true);
	sched_unlock(s);
	return close_list(s, closing);
}

struct punch_cand {
	struct fblob *fb;
	uint64_t idx;
	uint32_t seq; /* last read; UINT32_MAX for never read */
};

static int punch_cmp(const void *a, const void *b)
{
	const struct punch_cand *x = a, *y = b;

	if (x->seq != y->seq)
		return x->seq < y->seq ? -1 : 1;
	if (x->fb != y->fb)
		return (uintptr_t)x->fb < (uintptr_t)y->fb ? -1 : 1;
	return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/* The chunks of fb the evictor may take back: DONE, not wanted, and
 * hashed already when the file's check is still running. */
static uint64_t punchable_limit_locked(struct fblob *fb)
{
	assert_locked(fb->s);
	if (atomic_load(&fb->fatal_err) || fb->discarding || fb->punching ||
	    fb->saving)
		return 0;
	if (!fb->hash)
		return fb->b->nchunks;
	if (atomic_load(&fb->verified))
		return 0; /* complete and checked: kept whole */
	return fb->vhashed / fb->b->layout.chunk_size;
}

static size_t punch_collect_locked(struct sched *s, struct punch_cand *c,
				   size_t max)
{
	struct fblob *fb;
	size_t n = 0;
	uint64_t i, lim;

	assert_locked(s);
	for (fb = s->blobs; fb; fb = fb->next) {
		lim = punchable_limit_locked(fb);
		for (i = 0; i < lim; i++) {
			uint32_t seq;

			if (chunkmap_get(fb->b->map, i) != CHUNK_DONE ||
			    wanted_locked(fb, i))
				continue;
			if (c && n < max) {
				seq = atomic_load_explicit(
					&fb->last_read[i],
					memory_order_relaxed);
				c[n].fb = fb;
				c[n].idx = i;
				c[n].seq = seq ? seq : UINT32_MAX;
			}
			n++;
		}
	}
	return n;
}

/*
 * Punches chunks idx[0..n) of fb, which this process alone has open:
 * they leave DONE (INFLIGHT: no one fetches or serves them meanwhile),
 * the replies begun before drain, blob_punch clears their sums and
 * sidecar bits and then punches; then they are MISSING, and queued again
 * where a reader came to want them meanwhile.
 */
static uint64_t punch_blob(struct sched *s, struct fblob *fb, uint64_t *idx,
			   size_t n, uint64_t *freed)
{
	uint64_t got = 0, *wanted;
	size_t i, k = 0, nw = 0;
	bool kept;
	int err;

	*freed = 0;
	wanted = calloc(n ? n : 1, sizeof(*wanted));
	if (!wanted)
		return 0;
	if (cache_blob_inuse_upgrade(fb->b->files.lock_fd)) {
		free(wanted); /* another process has it open */
		return 0;
	}
	sched_lock(s);
	while (fb->saving)
		sched_cond_wait(s, &s->discard_cond, NULL);
	if (punchable_limit_locked(fb) == 0) {
		sched_unlock(s);
		goto out;
	}
	fb->punching = true;
	fb->discarding = true; /* the saver keeps off: blob_punch saves */
	for (i = 0; i < n; i++) {
		if (chunkmap_get(fb->b->map, idx[i]) != CHUNK_DONE ||
		    wanted_locked(fb, idx[i]))
			continue;
		/* Its bytes are no longer in, before it is not DONE: a
		 * reply that sees it not DONE sees that too. */
		atomic_store(&fb->landed[idx[i]], 0);
		chunkmap_set(fb->b->map, idx[i], CHUNK_INFLIGHT);
		idx[k++] = idx[i];
	}
	sched_unlock(s);
	replies_drain(fb, 5000);
	err = k ? blob_punch(fb->b, idx, k, freed) : 0;
	if (err)
		hlog(err == -EMLINK ? HLOG_DEBUG : HLOG_WARN, HLOG_STATE,
		     "freeing cached chunks of '%s' failed: %s", fb->name,
		     strerror(-err));
	/* Beside an export nothing changed: the chunks are DONE again. Any
	 * other error may have come after some holes were punched (a failed
	 * fallocate) or after their sums were cleared (a failed save): they
	 * are fetched again, never trusted. */
	kept = err == -EMLINK;
	sched_lock(s);
	for (i = 0; i < k; i++) {
		chunkmap_set(fb->b->map, idx[i],
			     kept ? CHUNK_DONE : CHUNK_MISSING);
		if (!kept && wanted_locked(fb, idx[i]))
			wanted[nw++] = idx[i];
	}
	got = kept ? 0 : k;
	fb->punching = false;
	fb->discarding = false;
	pthread_cond_broadcast(&s->discard_cond);
	sched_unlock(s);
	for (i = 0; i < nw; i++) {
		int res = sched_want(s, fb, wanted[i], wanted[i], SCHED_DEMAND,
				     NULL, NULL, NULL);

		if (res < 0) /* its waiters hear of the blob's failure */
			hlog(HLOG_DEBUG, HLOG_SCHED,
			     "queueing chunk %" PRIu64 " of '%s' again "
			     "failed: %s",
			     wanted[i], fb->name, strerror(-res));
	}
out:
	if (cache_blob_inuse_downgrade(fb->b->files.lock_fd))
		hlog(HLOG_WARN, HLOG_STATE,
		     "'%s': taking its in-use lock back failed", fb->name);
	free(wanted);
	return got;
}

uint64_t sched_punch_lru(struct sched *s, uint64_t want, uint64_t *freed)
{
	struct punch_cand *c = NULL;
	struct fblob **held = NULL;
	uint64_t total = 0, punched = 0, f, *idx = NULL;
	size_t n = 0, max, i, j, take;

	*freed = 0;
	sched_lock(s);
	max = punch_collect_locked(s, NULL, 0);
	sched_unlock(s);
	if (!max)
		return 0;
	c = calloc(max, sizeof(*c));
	idx = calloc(max, sizeof(*idx));
	held = calloc(max, sizeof(*held));
	if (!c || !idx || !held)
		goto out;
	sched_lock(s);
	n = punch_collect_locked(s, c, max);
	if (n > max)
		n = max;
	for (i = 0; i < n; i++) {
		held[i] = c[i].fb;
		held[i]->refs++; /* dropped below */
	}
	sched_unlock(s);
	qsort(c, n, sizeof(*c), punch_cmp);
	/* The least recently read first, as many as want asks for. */
	for (take = 0; take < n && total < want; take++)
		total += chunk_len(c[take].fb, c[take].idx);
	for (i = 0; i < take; i++) {
		size_t k = 0;

		if (!c[i].fb)
			continue; /* punched with an earlier one of its blob */
		for (j = i; j < take; j++) {
			if (c[j].fb == c[i].fb) {
				idx[k++] = c[j].idx;
				if (j > i)
					c[j].fb = NULL;
			}
		}
		punched += punch_blob(s, c[i].fb, idx, k, &f);
		*freed += f;
	}
out:
	for (i = 0; i < n; i++)
		fblob_put(held[i]);
	free(held);
	free(idx);
	free(c);
	return punched;
}

void sched_cancel_all(struct sched *s, int err)
{
	struct sched_waiter *fire = NULL;
	struct qent *dead = NULL;
	struct fblob *fb;
	int p;

	atomic_store(&s->shutdown, true);
	sched_lock(s);
	for (p = 0; p < 3; p++) {
		while (s->q[p]) {
			struct qent *q = queue_unlink_locked(s, p, &s->q[p]);

			q->next = dead;
			dead = q;
		}
	}
	for (fb = s->blobs; fb; fb = fb->next) {
		struct sched_waiter *w;

		while ((w = fb->waiters)) {
			fb->waiters = w->next;
			w->state = W_FIRING;
			w->err = err;
			w->next = fire;
			fire = w;
		}
	}
	sched_unlock(s);
	waiters_fire(fire);
	qents_drop(dead);
}

void sched_shutdown(struct sched *s)
{
	sched_cancel_all(s, -ECANCELED);
	/* Jobs still queued run cancelled: they end their chunks and drop
	 * their references; a running verification stops at its next
	 * block. */
	workq_stop(s->work);
}

int sched_settle(struct sched *s, int timeout_ms)
{
	struct timespec ts = { 0, 5 * 1000000 };
	int waited = 0;

	while (workq_pending(s->work)) {
		if (waited >= timeout_ms)
			return -ETIMEDOUT;
		nanosleep(&ts, NULL);
		waited += 5;
	}
	return 0;
}

void sched_free(struct sched *s)
{
	struct fblob *fb;

	if (!s)
		return;
	sched_shutdown(s);
	sched_lock(s);
	s->stopping = true;
	pthread_cond_broadcast(&s->saver_cond);
	pthread_cond_broadcast(&s->saved_cond);
	pthread_cond_broadcast(&s->closed_cond);
	sched_unlock(s);
	pthread_join(s->saver, NULL);
	saver_round(s); /* saves open blobs, frees closed ones */

	/* Blobs still referenced by the caller are saved and freed too. */
	while ((fb = s->blobs)) {
		s->blobs = fb->next;
		fblob_destroy(fb);
	}
	workq_free(s->work);
	pthread_cond_destroy(&s->saver_cond);
	pthread_cond_destroy(&s->saved_cond);
	pthread_cond_destroy(&s->discard_cond);
	pthread_cond_destroy(&s->closed_cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void sched_get_stats(struct sched *s, struct sched_stats *st)
{
	struct fblob *fb;
	uint64_t i;

	memset(st, 0, sizeof(*st));
	st->cache_dir = s->cache ? cache_dir(s->cache) : NULL;
	if (s->engine) /* atomics of its own: no lock */
		engine_get_stats(s->engine, &st->engine);
	sched_lock(s);
	for (fb = s->blobs; fb; fb = fb->next) {
		st->open_blobs++;
		for (i = 0; i < fb->b->nchunks; i++) {
			enum chunk_state cs = chunkmap_get(fb->b->map, i);

			if (cs == CHUNK_QUEUED && fb->qprio[i] < 3)
				st->queued[fb->qprio[i]]++;
			else if (cs == CHUNK_INFLIGHT)
				st->inflight++;
		}
	}
	sched_unlock(s);
}
