/*
 * sched.c: single-flight chunk requests, priorities, waiters, the saver.
 *
 * Chunk states live in each blob's chunk map; every transition is made
 * under s->lock, together with the waiter lists and the queues, so "is it
 * done, else wait" and "mark it done, detach the waiters" are atomic with
 * each other. Waiters are called after the unlock.
 *
 * Lock order: s->lock, then a chunk map's internal lock. Nothing else is
 * taken under s->lock, and no I/O, fsync, callback or curl call happens
 * under it (STYLE.md section 4).
 */
#include "fetch/sched.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fetch/engine.h"
#include "fetch/fetch_i.h"
#include "state/hlog.h"
#include "state/verify.h"

#define DEFER_FOREIGN_MS 100	/* look again at a chunk another process has */

enum waiter_state { W_PENDING, W_FIRING, W_CANCELLED };

struct sched_waiter {
	struct sched_waiter *next;	/* in fb->waiters; s->lock */
	struct fblob *fb;
	uint64_t first, last;
	sched_done_fn done;
	void *arg;
	int err;
	enum waiter_state state;	/* s->lock */
};

/* A wanted range; a hint: the chunk states are the truth. */
struct qent {
	struct qent *next;
	struct fblob *fb;	/* a reference */
	uint64_t first, last;
	uint64_t not_before_ms;	/* deferred (chunk locked elsewhere) */
};

struct fblob {
	struct sched *s;
	struct fblob *next;		/* in s->blobs or s->closing */
	int refs;			/* s->lock */
	struct blob *b;			/* owned; read-only fields */
	char *url, *auth, *name;	/* owned, immutable */
	char *etag;			/* s->lock */
	char *redirect;			/* s->lock: cached redirect target */
	uint8_t *qprio;			/* s->lock: prio a chunk is queued at */
	struct sched_waiter *waiters;	/* s->lock */
	_Atomic int fatal_err;		/* 0, or why the blob failed */
	bool pinned;			/* immutable */
	char *hash_kind, *hash;		/* owned, immutable; may be NULL */
	_Atomic bool verified;		/* passed its hash */
	bool notified;			/* saver thread only: on_verified */
};

struct sched {
	struct sched_opts o;
	struct cache *cache;
	struct engine *engine;

	pthread_mutex_t lock;
	struct fblob *blobs;		/* open; lock */
	struct fblob *closing;		/* refs reached 0; lock */
	struct qent *q[3];		/* per priority, FIFO; lock */
	struct qent **qtail[3];

	pthread_t saver;
	pthread_cond_t saver_cond;	/* with lock */
	pthread_cond_t saved_cond;	/* with lock */
	bool stopping;			/* lock */
	bool save_requested;		/* lock */
	uint64_t save_gen;		/* lock: saver rounds completed */
	_Atomic bool shutdown;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* CLOCK_MONOTONIC time ms from now, for pthread_cond_timedwait on a
 * condition variable created with that clock. */
static struct timespec deadline_in_ms(int ms)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts.tv_nsec >= 1000000000) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000;
	}
	return ts;
}

void sched_opts_default(struct sched_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->chunk_size = 4u << 20;
	o->max_run_chunks = 4;
	o->save_interval_ms = 1000;
}

struct blob *fblob_blob(const struct fblob *fb)
{
	return fb->b;
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

bool sched_blob_cancelled(struct fblob *fb)
{
	return atomic_load(&fb->fatal_err) != 0 ||
	       atomic_load(&fb->s->shutdown);
}

static void fblob_destroy(struct fblob *fb)
{
	int err;

	err = blob_save(fb->b);
	if (err)
		hlog(HLOG_WARN, HLOG_STATE, "saving the state of '%s' failed: %s",
		     fb->name, strerror(-err));
	blob_free(fb->b);
	free(fb->url);
	free(fb->auth);
	free(fb->name);
	free(fb->etag);
	free(fb->redirect);
	free(fb->qprio);
	free(fb->hash_kind);
	free(fb->hash);
	free(fb);
}

void fblob_get(struct fblob *fb)
{
	pthread_mutex_lock(&fb->s->lock);
	fb->refs++;
	pthread_mutex_unlock(&fb->s->lock);
}

static void fblob_unlink_locked(struct sched *s, struct fblob *fb)
{
	struct fblob **pp;

	for (pp = &s->blobs; *pp; pp = &(*pp)->next) {
		if (*pp == fb) {
			*pp = fb->next;
			break;
		}
	}
}

/* The last reference goes: the saver thread saves and frees it, so the
 * caller (a FUSE worker, the engine) never waits for an fsync. */
void fblob_put(struct fblob *fb)
{
	struct sched *s;

	if (!fb)
		return;
	s = fb->s;
	pthread_mutex_lock(&s->lock);
	if (--fb->refs == 0) {
		fblob_unlink_locked(s, fb);
		fb->next = s->closing;
		s->closing = fb;
		pthread_cond_signal(&s->saver_cond);
	}
	pthread_mutex_unlock(&s->lock);
}

/* Finds the open fblob of t's identity and takes a reference. */
static bool sched_lookup(struct sched *s, const struct fblob_target *t,
			 struct fblob **out)
{
	uint8_t identity[16];
	char hex[33];
	struct fblob *it;

	cache_identity(t->kind, t->content_id, t->size, identity);
	cache_identity_hex(identity, hex);
	pthread_mutex_lock(&s->lock);
	for (it = s->blobs; it; it = it->next) {
		if (!strcmp(it->b->hex, hex)) {
			it->refs++;
			break;
		}
	}
	pthread_mutex_unlock(&s->lock);
	*out = it;
	return it != NULL;
}

int sched_open(struct sched *s, const struct fblob_target *t,
	       struct fblob **out)
{
	struct fblob *fb, *it;
	struct blob *b = NULL;
	int err;

	*out = NULL;
	if (sched_lookup(s, t, out))
		return 0;
	err = blob_open(s->cache, t->kind, t->content_id, t->size,
			s->o.chunk_size, &b);
	if (err)
		return err;
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
	fb->name = strdup(t->name ? t->name : t->url);
	fb->etag = t->etag ? strdup(t->etag) : NULL;
	fb->qprio = malloc(b->nchunks ? b->nchunks : 1);
	fb->pinned = t->pinned;
	if (t->hash_kind && t->hash && verify_kind_known(t->hash_kind)) {
		fb->hash_kind = strdup(t->hash_kind);
		fb->hash = strdup(t->hash);
		if (fb->hash_kind && fb->hash)
			atomic_store(&fb->verified,
				     chunkmap_done_count(b->map) == b->nchunks &&
					     verify_marked(b, t->hash_kind,
							   t->hash));
	}
	if (!fb->url || !fb->name || !fb->qprio || (t->auth && !fb->auth) ||
	    (t->etag && !fb->etag) ||
	    (fb->hash_kind == NULL) != (fb->hash == NULL)) {
		err = -ENOMEM;
		goto out_fb;
	}
	memset(fb->qprio, SCHED_BACKGROUND, b->nchunks ? b->nchunks : 1);

	pthread_mutex_lock(&s->lock);
	for (it = s->blobs; it; it = it->next) {
		if (!strcmp(it->b->hex, b->hex)) {
			/* Opened meanwhile by another thread: share it. */
			it->refs++;
			pthread_mutex_unlock(&s->lock);
			*out = it;
			err = 0;
			goto out_fb;	/* frees our copy, blob included */
		}
	}
	fb->next = s->blobs;
	s->blobs = fb;
	pthread_mutex_unlock(&s->lock);
	*out = fb;
	return 0;
out_fb:
	if (fb) {
		free(fb->url);
		free(fb->auth);
		free(fb->name);
		free(fb->etag);
		free(fb->qprio);
		free(fb->hash_kind);
		free(fb->hash);
		b = fb->b;
		free(fb);
	}
out_blob:
	blob_free(b);
	return err;
}

/* Appends a queue entry; takes a reference on fb. */
static void queue_add_locked(struct sched *s, struct fblob *fb,
			     enum sched_prio prio, uint64_t first,
			     uint64_t last, uint64_t not_before_ms,
			     struct qent *q)
{
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
			     enum sched_prio prio, bool *all_done)
{
	struct chunkmap *map = fb->b->map;
	bool need = false;
	uint64_t i;

	*all_done = true;
	for (i = first; i <= last; i++) {
		enum chunk_state st = chunkmap_get(map, i);

		if (st == CHUNK_DONE)
			continue;
		*all_done = false;
		if (st == CHUNK_MISSING || st == CHUNK_FAILED) {
			chunkmap_set(map, i, CHUNK_QUEUED);
			fb->qprio[i] = (uint8_t)prio;
			need = true;
		} else if (st == CHUNK_QUEUED && fb->qprio[i] > prio) {
			fb->qprio[i] = (uint8_t)prio;
			need = true;
		}
	}
	return need;
}

int sched_want(struct sched *s, struct fblob *fb, uint64_t first,
	       uint64_t last, enum sched_prio prio, sched_done_fn done,
	       void *arg, struct sched_waiter **wp)
{
	struct sched_waiter *w = NULL;
	struct qent *q = NULL;
	bool all_done, need;
	int err;

	if (wp)
		*wp = NULL;
	if (last >= fb->b->nchunks || first > last)
		return -EINVAL;
	if (chunkmap_all_done(fb->b->map, first, last))
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

	pthread_mutex_lock(&s->lock);
	/* Again under the lock: sched_fail_blob and sched_cancel_all set
	 * their flag before they take it to detach the waiters. */
	err = atomic_load(&fb->fatal_err);
	if (!err && atomic_load(&s->shutdown))
		err = -ECANCELED;
	if (err) {
		pthread_mutex_unlock(&s->lock);
		free(w);
		free(q);
		return err;
	}
	need = want_mark_locked(fb, first, last, prio, &all_done);
	if (all_done) {
		pthread_mutex_unlock(&s->lock);
		free(w);
		free(q);
		return 1;
	}
	if (need) {
		queue_add_locked(s, fb, prio, first, last, 0, q);
		q = NULL;
	}
	if (w) {
		w->fb = fb;
		w->first = first;
		w->last = last;
		w->done = done;
		w->arg = arg;
		w->state = W_PENDING;
		w->next = fb->waiters;
		fb->waiters = w;
		if (wp)
			*wp = w;
	}
	pthread_mutex_unlock(&s->lock);
	free(q);
	if (need)
		engine_kick(s->engine);
	return 0;
}

int sched_cancel(struct sched *s, struct sched_waiter *w)
{
	struct sched_waiter **pp;
	int ret = -EALREADY;

	pthread_mutex_lock(&s->lock);
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
	pthread_mutex_unlock(&s->lock);
	if (!ret)
		free(w);
	return ret;
}

/*
 * Detaches the waiters that are now satisfied (all chunks DONE) or that
 * need a FAILED chunk (they get err) onto *fire. Called after a change
 * to chunks [lo, hi].
 */
static void waiters_collect_locked(struct fblob *fb, uint64_t lo, uint64_t hi,
				   int err, struct sched_waiter **fire)
{
	struct sched_waiter **pp = &fb->waiters;

	while (*pp) {
		struct sched_waiter *w = *pp;
		bool hit = w->first <= hi && w->last >= lo;
		bool ready = false;
		int werr = 0;

		if (hit) {
			uint64_t i;

			ready = true;
			for (i = w->first; i <= w->last; i++) {
				enum chunk_state st = chunkmap_get(fb->b->map, i);

				if (st == CHUNK_FAILED) {
					werr = err ? err : -EIO;
					break;
				}
				if (st != CHUNK_DONE)
					ready = false;
			}
			if (werr)
				ready = true;
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

void sched_chunk_done(struct sched *s, struct fetch_job *job, uint64_t idx)
{
	struct fblob *fb = job->fb;
	struct sched_waiter *fire = NULL;

	pthread_mutex_lock(&s->lock);
	chunkmap_set(fb->b->map, idx, CHUNK_DONE);
	waiters_collect_locked(fb, idx, idx, 0, &fire);
	pthread_mutex_unlock(&s->lock);
	cache_chunk_unlock(job->lock_fd, idx);
	waiters_fire(fire);
}

static void job_release(struct fetch_job *job)
{
	free(job->url);
	free(job->origin);
	free(job->auth);
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

	for (i = from; i <= to; i++) {
		chunkmap_set(fb->b->map, i, CHUNK_QUEUED);
		if (fb->qprio[i] > prio)
			fb->qprio[i] = (uint8_t)prio;
	}
	queue_add_locked(s, fb, prio, from, to,
			 delay_ms ? now_ms() + delay_ms : 0, q);
}

void sched_job_end(struct sched *s, struct fetch_job *job, uint64_t done_upto,
		   int err)
{
	struct fblob *fb = job->fb;
	uint64_t end = job->first + job->count, i;
	struct sched_waiter *fire = NULL;
	struct qent *q = NULL;
	bool requeue = !err && done_upto < end && !atomic_load(&s->shutdown);

	if (requeue)
		q = calloc(1, sizeof(*q));
	pthread_mutex_lock(&s->lock);
	if (done_upto < end) {
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
	pthread_mutex_unlock(&s->lock);
	for (i = done_upto; i < end; i++)
		cache_chunk_unlock(job->lock_fd, i);
	free(q);
	waiters_fire(fire);
	if (err == -ESTALE)
		sched_fail_blob(s, fb, err);	/* changed on the server */
	job_release(job);
	if (requeue)
		engine_kick(s->engine);
}

void sched_fail_blob(struct sched *s, struct fblob *fb, int err)
{
	struct sched_waiter *fire = NULL, *w;
	int expected = 0;

	if (!atomic_compare_exchange_strong(&fb->fatal_err, &expected, err))
		return;
	pthread_mutex_lock(&s->lock);
	while ((w = fb->waiters)) {
		fb->waiters = w->next;
		w->state = W_FIRING;
		w->err = err;
		w->next = fire;
		fire = w;
	}
	pthread_mutex_unlock(&s->lock);
	waiters_fire(fire);
	engine_kick(s->engine);
}

void sched_set_redirect(struct sched *s, struct fblob *fb, const char *url)
{
	char *copy = url ? strdup(url) : NULL, *old;

	pthread_mutex_lock(&s->lock);
	old = fb->redirect;
	fb->redirect = copy;
	pthread_mutex_unlock(&s->lock);
	free(old);
}

void sched_learn_etag(struct sched *s, struct fblob *fb, const char *etag)
{
	char *copy = strdup(etag);

	pthread_mutex_lock(&s->lock);
	if (!fb->etag) {
		fb->etag = copy;
		copy = NULL;
	}
	pthread_mutex_unlock(&s->lock);
	free(copy);
}

bool sched_has_work(struct sched *s, enum sched_prio prio)
{
	bool any = false;
	int p;

	pthread_mutex_lock(&s->lock);
	for (p = 0; p <= (int)prio; p++)
		any = any || s->q[p];
	pthread_mutex_unlock(&s->lock);
	return any;
}

/* Unlinks *pp from queue p, fixing the tail. */
static struct qent *queue_unlink_locked(struct sched *s, int p,
					struct qent **pp)
{
	struct qent *q = *pp;

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
static int pick_locked(struct sched *s, bool background,
		       struct fetch_job *job, int *next_ms, struct qent **dead)
{
	uint64_t now = now_ms();
	int p, maxp = background ? SCHED_BACKGROUND : SCHED_READAHEAD;

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
			for (n = 0; i + n <= q->last &&
				    n < (uint64_t)s->o.max_run_chunks &&
				    chunkmap_get(map, i + n) == CHUNK_QUEUED;
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
			job->url = strdup(fb->redirect ? fb->redirect : fb->url);
			job->origin = strdup(fb->url);
			job->auth = fb->auth ? strdup(fb->auth) : NULL;
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

/*
 * Claims the lock bytes of the job's chunks and skips chunks that are
 * already complete on disk (another process, or an earlier run that died
 * before its sidecar was saved). Runs unlocked. Returns false when the
 * job has nothing left to fetch (it was ended).
 */
static bool job_claim(struct sched *s, struct fetch_job *job)
{
	struct fblob *fb = job->fb;
	struct blob *b = fb->b;
	uint64_t end = job->first + job->count, i;
	uint64_t stop = end, requeue_from = end, delay_ms = 0;
	struct qent *q;

	job->data_fd = b->files.data_fd;
	job->sums_fd = b->files.sums_fd;
	job->lock_fd = b->files.lock_fd;

	for (i = job->first; i < end; i++) {
		bool done = false;
		int err;

		if (cache_chunk_trylock(b->files.lock_fd, i)) {
			/* Another process fetches it: look again later. */
			stop = requeue_from = i;
			delay_ms = DEFER_FOREIGN_MS;
			break;
		}
		err = blob_probe_chunk(b, i, &done);
		if (err || !done)
			continue;
		hlog(HLOG_DEBUG, HLOG_SCHED,
		     "'%s' chunk %" PRIu64 " found complete on disk",
		     fb->name, i);
		sched_chunk_done(s, job, i);
		if (i == job->first) {
			job->first++;
			job->count--;
			continue;
		}
		/* Done in the middle: the run stops before it. */
		stop = i;
		requeue_from = i + 1;
		break;
	}
	if (requeue_from < end) {
		/* Not claimed: back to the queue. */
		q = calloc(1, sizeof(*q));
		pthread_mutex_lock(&s->lock);
		if (q) {
			requeue_locked(s, fb, requeue_from, end - 1, job->prio,
				       delay_ms, q);
		} else {
			for (i = requeue_from; i < end; i++)
				chunkmap_set(b->map, i, CHUNK_FAILED);
		}
		pthread_mutex_unlock(&s->lock);
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
	job->file_size = b->layout.file_size;
	job->chunk_size = b->layout.chunk_size;
	return true;
}

int sched_take_job(struct sched *s, bool background, struct fetch_job *job,
		   int *next_ms)
{
	for (;;) {
		struct qent *dead = NULL;
		int got;

		*next_ms = -1;
		pthread_mutex_lock(&s->lock);
		got = s->stopping ? 0 :
				    pick_locked(s, background, job, next_ms,
						&dead);
		pthread_mutex_unlock(&s->lock);
		qents_drop(dead);
		if (!got)
			return 0;
		if (!job->url || !job->origin ||
		    (job->fb->auth && !job->auth)) {
			sched_job_end(s, job, job->first, -ENOMEM);
			continue;
		}
		if (job_claim(s, job))
			return 1;
	}
}

struct uncached_read {
	sched_bytes_fn done;
	void *arg;
	size_t len;
	struct fblob *fb;	/* a reference */
};

static void uncached_done(void *arg, struct http_result *res)
{
	struct uncached_read *ur = arg;
	int err = res->err;

	/* 206 with exactly our bytes (or file://, which has no status). */
	if (!err && ((res->status != 206 && res->status != 0) ||
		     res->body_len != ur->len))
		err = -EPROTO;
	ur->done(ur->arg, err, err ? NULL : res->body, err ? 0 : ur->len);
	http_result_release(res);
	fblob_put(ur->fb);
	free(ur);
}

int sched_read_uncached(struct sched *s, struct fblob *fb, uint64_t off,
			size_t len, sched_bytes_fn done, void *arg)
{
	struct http_req req = {
		.url = fb->url,
		.auth = fb->auth,
		.range_off = off,
		.range_len = len,
		.max_body = len,
	};
	struct uncached_read *ur;
	int err;

	if (!len || !s->engine)
		return -EINVAL;
	if (s->o.offline)
		return -ENETDOWN;
	ur = calloc(1, sizeof(*ur));
	if (!ur)
		return -ENOMEM;
	ur->done = done;
	ur->arg = arg;
	ur->len = len;
	ur->fb = fb;
	fblob_get(fb);
	err = engine_http_submit(s->engine, &req, uncached_done, ur);
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

int sched_wait(struct sched *s, struct fblob *fb, uint64_t first,
	       uint64_t last, enum sched_prio prio, int timeout_ms)
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
	deadline = deadline_in_ms(timeout_ms);
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
 * A complete blob with a published hash is checked once (saver thread,
 * no lock held). A mismatch fails the blob for good in this process
 * (reads get EIO until a remount) and discards its bytes, so a corrupted
 * download is never served as good once detected.
 */
static void verify_step(struct sched *s, struct fblob *fb)
{
	struct blob *b = fb->b;
	char got[VERIFY_HEX_MAX];
	int err;

	if (!fb->hash || atomic_load(&fb->fatal_err))
		return;
	if (!atomic_load(&fb->verified)) {
		if (chunkmap_done_count(b->map) != b->nchunks)
			return;
		err = verify_blob(b, fb->hash_kind, got);
		if (err) {
			hlog(HLOG_WARN, HLOG_STATE,
			     "checking the %s of '%s' failed: %s",
			     fb->hash_kind, fb->name, strerror(-err));
			return;
		}
		if (strcmp(got, fb->hash)) {
			hlog(HLOG_ERR, HLOG_STATE,
			     "'%s' is corrupt: %s %s, expected %s; its cached "
			     "bytes are discarded and reads fail until a "
			     "remount", fb->name, fb->hash_kind, got, fb->hash);
			sched_fail_blob(s, fb, -EBADMSG);
			err = verify_discard(b);
			if (err)
				hlog(HLOG_WARN, HLOG_STATE,
				     "discarding '%s' failed: %s", fb->name,
				     strerror(-err));
			if (s->o.on_corrupt)
				s->o.on_corrupt(s->o.on_verified_arg, fb);
			return;
		}
		err = verify_mark(b, fb->hash_kind, fb->hash);
		if (err)
			hlog(HLOG_WARN, HLOG_STATE,
			     "recording the check of '%s' failed: %s",
			     fb->name, strerror(-err));
		atomic_store(&fb->verified, true);
		hlog(HLOG_DEBUG, HLOG_STATE, "'%s' verified (%s)", fb->name,
		     fb->hash_kind);
	}
	if (!fb->notified && s->o.on_verified) {
		fb->notified = true;
		s->o.on_verified(s->o.on_verified_arg, fb);
	}
}

/* One saver round over every open blob and every closing one. */
static void saver_round(struct sched *s)
{
	struct fblob **open_refs = NULL, *closing, *fb;
	size_t n = 0, i;

	pthread_mutex_lock(&s->lock);
	closing = s->closing;
	s->closing = NULL;
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
	pthread_mutex_unlock(&s->lock);

	for (i = 0; i < n; i++) {
		int err = blob_save(open_refs[i]->b);

		if (err)
			hlog(HLOG_WARN, HLOG_STATE,
			     "saving the state of '%s' failed: %s",
			     open_refs[i]->name, strerror(-err));
		verify_step(s, open_refs[i]);
		fblob_put(open_refs[i]);
	}
	free(open_refs);
	while (closing) {
		fb = closing->next;
		fblob_destroy(closing);
		closing = fb;
	}
}

static void *saver_main(void *arg)
{
	struct sched *s = arg;

	pthread_mutex_lock(&s->lock);
	while (!s->stopping) {
		struct timespec ts;
		bool requested;

		ts = deadline_in_ms(s->o.save_interval_ms);
		if (!s->save_requested && !s->closing)
			pthread_cond_timedwait(&s->saver_cond, &s->lock, &ts);
		if (s->stopping)
			break;
		requested = s->save_requested;
		s->save_requested = false;
		pthread_mutex_unlock(&s->lock);
		saver_round(s);
		pthread_mutex_lock(&s->lock);
		if (requested) {
			s->save_gen++;
			pthread_cond_broadcast(&s->saved_cond);
		}
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

void sched_save_all(struct sched *s)
{
	uint64_t gen;

	pthread_mutex_lock(&s->lock);
	gen = s->save_gen;
	s->save_requested = true;
	pthread_cond_signal(&s->saver_cond);
	while (s->save_gen == gen && !s->stopping)
		pthread_cond_wait(&s->saved_cond, &s->lock);
	pthread_mutex_unlock(&s->lock);
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
	err = -pthread_create(&s->saver, NULL, saver_main, s);
	if (err) {
		pthread_cond_destroy(&s->saver_cond);
		pthread_cond_destroy(&s->saved_cond);
		pthread_mutex_destroy(&s->lock);
		free(s);
		return err;
	}
	if (engine)
		engine_attach_sched(engine, s);
	*out = s;
	return 0;
}

void sched_cancel_all(struct sched *s, int err)
{
	struct sched_waiter *fire = NULL;
	struct qent *dead = NULL;
	struct fblob *fb;
	int p;

	atomic_store(&s->shutdown, true);
	pthread_mutex_lock(&s->lock);
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
	pthread_mutex_unlock(&s->lock);
	waiters_fire(fire);
	qents_drop(dead);
}

void sched_free(struct sched *s)
{
	struct fblob *fb;

	if (!s)
		return;
	sched_cancel_all(s, -ECANCELED);
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_broadcast(&s->saver_cond);
	pthread_cond_broadcast(&s->saved_cond);
	pthread_mutex_unlock(&s->lock);
	pthread_join(s->saver, NULL);
	saver_round(s);		/* saves open blobs, frees closed ones */

	/* Blobs still referenced by the caller are saved and freed too. */
	while ((fb = s->blobs)) {
		s->blobs = fb->next;
		fblob_destroy(fb);
	}
	pthread_cond_destroy(&s->saver_cond);
	pthread_cond_destroy(&s->saved_cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
