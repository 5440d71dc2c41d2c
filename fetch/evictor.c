/*
 * evictor.c: the size limit of a mount's cache (fetch/evictor.h).
 *
 * Thread roles: evictor_note_written and evictor_should_wait run on the
 * engine thread and only touch atomics; runs happen on a worker of the
 * pool (BULK lane), or on the worker retrying a write after ENOSPC, one
 * at a time (run_lock, held across the run's disk work but never across
 * network I/O; nothing else waits on it but another run).
 */
#include "fetch/evictor.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "fetch/sched.h"
#include "fetch/work.h"
#include "state/cache.h"
#include "state/clock.h"
#include "state/evict.h"
#include "state/hlog.h"
#include "state/units.h"

struct evictor {
	struct work w; /* first: the pool hands it back */
	struct cache *c;
	struct sched *s;
	uint64_t max; /* 0: no limit */
	uint64_t min_free_opt; /* or EVICTOR_MIN_FREE_DEFAULT */
	uint64_t job_bytes; /* the largest job; set once */
	pthread_mutex_t run_lock; /* one run at a time; then nothing */
	/* The last scan: allocated bytes then, and the target then (what
	 * usage may reach: the limit, less what min_free wants). */
	_Atomic uint64_t base, target;
	_Atomic uint64_t written; /* by this process since that scan */
	_Atomic uint64_t scan_ms; /* when */
	_Atomic bool pending; /* a run is queued or running */
	_Atomic bool stuck; /* the last run could not reach the target */
	_Atomic uint64_t ev_blobs, ev_bytes, p_chunks, p_bytes, runs;
	_Atomic uint64_t said_ms; /* last info line, ms + 1, or 0 */
	_Atomic uint64_t wait_since; /* jobs wait since, ms + 1, or 0 */
};

/* How often a run is due while nothing more can be freed. */
#define STUCK_RESCAN_MS 1000
/* The longest new chunks wait for a run at a time. */
#define WAIT_MAX_MS 1000
/* Totals are logged at most this often. */
#define SAY_EVERY_MS 60000

/*
 * What the cache may hold: at most max (when set), and no more than
 * leaves min_free of the file system free (what it holds now plus what
 * is free, less min_free).
 */
static uint64_t usage_limit(const struct cache_usage *u, uint64_t max,
			    uint64_t min_free)
{
	uint64_t room = u->bytes + u->fs_free;
	uint64_t lim = room > min_free ? room - min_free : 0;

	return max && max < lim ? max : lim;
}

/* A run brings usage this far below its target, so that the next one
 * is not due at the next chunk. */
static uint64_t low_water(const struct evictor *ev, uint64_t target)
{
	uint64_t margin = target / 16;

	if (margin > (256ull << 20))
		margin = 256ull << 20;
	if (margin < 2 * ev->job_bytes)
		margin = 2 * ev->job_bytes;
	return target > margin ? target - margin : 0;
}

/* Without a size limit only cache_min_free counts, which statvfs says
 * without a scan of the cache. */
static bool free_enough(struct evictor *ev)
{
	struct cache_usage u = { 0 };
	struct statvfs sv;
	uint64_t want;

	if (statvfs(cache_dir(ev->c), &sv))
		return false; /* the scan says */
	u.fs_size = (uint64_t)sv.f_blocks * sv.f_frsize;
	u.fs_free = (uint64_t)sv.f_bavail * sv.f_frsize;
	want = ev->min_free_opt == EVICTOR_MIN_FREE_DEFAULT ?
		       cache_min_free_default(&u) :
		       ev->min_free_opt;
	return u.fs_free >= want;
}

static bool skip_open(void *arg, const char *hex)
{
	return sched_blob_is_open(arg, hex);
}

static void say_freed(struct evictor *ev, const struct cache_usage *u,
		      uint64_t target, const struct evict_result *r,
		      uint64_t punched, uint64_t pbytes)
{
	char used[32], lim[32], fb[32], pb[32];
	uint64_t now = clock_now_ms() + 1, last = atomic_load(&ev->said_ms);
	/* Each run at debug level; the totals at info, once a minute. */
	bool loud = !last || now - last >= SAY_EVERY_MS;

	units_bytes(u->bytes, used, sizeof(used));
	units_bytes(target, lim, sizeof(lim));
	units_bytes(r->blobs.bytes, fb, sizeof(fb));
	units_bytes(pbytes, pb, sizeof(pb));
	hlog(HLOG_DEBUG, HLOG_STATE,
	     "cache at %s, over its target %s: evicted %" PRIu64
	     " files (%s), freed %" PRIu64 " chunks of open files (%s)",
	     used, lim, r->blobs.n, fb, punched, pb);
	if (!loud)
		return;
	atomic_store(&ev->said_ms, now);
	units_bytes(atomic_load(&ev->ev_bytes), fb, sizeof(fb));
	units_bytes(atomic_load(&ev->p_bytes), pb, sizeof(pb));
	hlog(HLOG_INFO, HLOG_STATE,
	     "cache kept under %s: %" PRIu64 " files evicted (%s), %" PRIu64
	     " chunks of open files freed (%s) since the mount",
	     lim, atomic_load(&ev->ev_blobs), fb, atomic_load(&ev->p_chunks),
	     pb);
}

uint64_t evictor_run(struct evictor *ev)
{
	struct evict_result r;
	struct cache_usage u;
	uint64_t min_free, target, low, freed = 0, pbytes = 0, punched = 0;
	uint64_t used;
	int err;

	pthread_mutex_lock(&ev->run_lock);
	atomic_fetch_add(&ev->runs, 1);
	memset(&r, 0, sizeof(r));
	/* Written from here on is not in the scan. */
	atomic_store(&ev->written, 0);
	if (!ev->max && free_enough(ev)) {
		/* No size limit and room on the disk: no scan needed. */
		atomic_store(&ev->scan_ms, clock_now_ms());
		atomic_store(&ev->target, UINT64_MAX);
		atomic_store(&ev->stuck, false);
		goto out;
	}
	err = cache_usage(ev->c, &u);
	if (err) {
		hlog(HLOG_WARN, HLOG_STATE, "measuring the cache failed: %s",
		     strerror(-err));
		goto out;
	}
	min_free = ev->min_free_opt == EVICTOR_MIN_FREE_DEFAULT ?
			   cache_min_free_default(&u) :
			   ev->min_free_opt;
	target = usage_limit(&u, ev->max, min_free);
	atomic_store(&ev->scan_ms, clock_now_ms());
	atomic_store(&ev->base, u.bytes);
	atomic_store(&ev->target, target);
	if (u.bytes + ev->job_bytes <= target) {
		atomic_store(&ev->stuck, false);
		goto out;
	}
	low = low_water(ev, target);
	used = u.bytes;
	/* Blobs no process has open, ours left to the steps below. */
	err = evict_to(ev->c, low, skip_open, ev->s, false, &r);
	used = u.bytes > r.blobs.bytes ? u.bytes - r.blobs.bytes : 0;
	if (!err && used > low && sched_close_idle(ev->s)) {
		/* Then the idle ones we kept open, now closed. */
		err = evict_to(ev->c, low, skip_open, ev->s, false, &r);
		used = u.bytes > r.blobs.bytes ? u.bytes - r.blobs.bytes : 0;
	}
	if (err)
		hlog(HLOG_WARN, HLOG_STATE,
		     "evicting from the cache failed: %s", strerror(-err));
	freed = r.blobs.bytes;
	if (used > low) {
		/* A file larger than what is left, streamed: its least
		 * recently read chunks go. */
		punched = sched_punch_lru(ev->s, used - low, &pbytes);
		freed += pbytes;
		used = used > pbytes ? used - pbytes : 0;
	}
	atomic_fetch_add(&ev->ev_blobs, r.blobs.n);
	atomic_fetch_add(&ev->ev_bytes, r.blobs.bytes);
	atomic_fetch_add(&ev->p_chunks, punched);
	atomic_fetch_add(&ev->p_bytes, pbytes);
	atomic_store(&ev->base, used);
	if (r.blobs.n || punched)
		say_freed(ev, &u, target, &r, punched, pbytes);
	if (used + ev->job_bytes > target && !r.blobs.n && !punched) {
		/* Everything left is in use: reads go on, over the limit
		 * (a run that freed something is followed by another). */
		if (!atomic_exchange(&ev->stuck, true)) {
			char a[32], b[32];

			units_bytes(used, a, sizeof(a));
			units_bytes(target, b, sizeof(b));
			hlog(HLOG_INFO, HLOG_STATE,
			     "the cache holds %s and may hold %s, but nothing "
			     "more can be evicted (every file left is in "
			     "use): fetching on over the limit",
			     a, b);
		}
	} else {
		atomic_store(&ev->stuck, false);
	}
out:
	pthread_mutex_unlock(&ev->run_lock);
	return freed;
}

static void run_job(struct work *w, bool cancelled)
{
	struct evictor *ev = (struct evictor *)w;

	if (!cancelled)
		(void)evictor_run(ev);
	atomic_store(&ev->pending, false);
}

void evictor_kick(struct evictor *ev)
{
	if (atomic_exchange(&ev->pending, true))
		return; /* one queued or running already */
	ev->w.run = run_job;
	if (sched_submit_bulk(ev->s, &ev->w))
		atomic_store(&ev->pending, false);
}

static bool due(struct evictor *ev)
{
	uint64_t written = atomic_load(&ev->written);
	uint64_t target = atomic_load(&ev->target);
	uint64_t since = clock_now_ms() - atomic_load(&ev->scan_ms);
	/* Under a limit, a scan every 1/32 of it written: other processes'
	 * writes are seen within that much. */
	uint64_t every = target == UINT64_MAX ? EVICTOR_SCAN_BYTES :
						target / 32;

	if (every < 2 * ev->job_bytes)
		every = 2 * ev->job_bytes;
	if (every > EVICTOR_SCAN_BYTES)
		every = EVICTOR_SCAN_BYTES;
	if (written >= every || since >= EVICTOR_TICK_MS)
		return true;
	/* Over the target with nothing to free: look again now and then,
	 * not at every chunk. */
	if (atomic_load(&ev->stuck) && since < STUCK_RESCAN_MS)
		return false;
	return target != UINT64_MAX &&
	       atomic_load(&ev->base) + written + ev->job_bytes > target;
}

void evictor_set_job_bytes(struct evictor *ev, uint64_t bytes)
{
	ev->job_bytes = bytes;
}

void evictor_note_written(struct evictor *ev, uint64_t len)
{
	atomic_fetch_add(&ev->written, len);
	if (due(ev))
		evictor_kick(ev);
}

bool evictor_should_wait(struct evictor *ev, uint64_t inflight)
{
	uint64_t target = atomic_load(&ev->target);

	if (target == UINT64_MAX || atomic_load(&ev->stuck))
		return false;
	uint64_t now = clock_now_ms() + 1, since;

	if (atomic_load(&ev->base) + atomic_load(&ev->written) + inflight +
		    ev->job_bytes <=
	    target) {
		atomic_store(&ev->wait_since, 0);
		return false;
	}
	/* Never more than WAIT_MAX_MS at a time: runs that keep freeing
	 * chunks a reader then needs again must not starve it; one job
	 * goes, over the limit, and the wait starts over. */
	since = atomic_load(&ev->wait_since);
	if (!since) {
		atomic_store(&ev->wait_since, now);
	} else if (now - since >= WAIT_MAX_MS) {
		atomic_store(&ev->wait_since, 0);
		return false;
	}
	evictor_kick(ev);
	return true;
}

int evictor_new(struct cache *c, struct sched *s, uint64_t max_bytes,
		uint64_t min_free, struct evictor **out)
{
	struct evictor *ev;

	*out = NULL;
	ev = calloc(1, sizeof(*ev));
	if (!ev)
		return -ENOMEM;
	ev->c = c;
	ev->s = s;
	ev->max = max_bytes;
	ev->min_free_opt = min_free;
	pthread_mutex_init(&ev->run_lock, NULL);
	atomic_init(&ev->target, UINT64_MAX);
	/* The first scan: a cache over its limit at mount is pruned now. */
	(void)evictor_run(ev);
	*out = ev;
	return 0;
}

void evictor_free(struct evictor *ev)
{
	if (!ev)
		return;
	pthread_mutex_destroy(&ev->run_lock);
	free(ev);
}

void evictor_get_stats(struct evictor *ev, struct evictor_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!ev)
		return;
	st->used = atomic_load(&ev->base) + atomic_load(&ev->written);
	st->limit = atomic_load(&ev->target);
	if (st->limit == UINT64_MAX)
		st->limit = 0;
	st->evicted_blobs = atomic_load(&ev->ev_blobs);
	st->evicted_bytes = atomic_load(&ev->ev_bytes);
	st->punched_chunks = atomic_load(&ev->p_chunks);
	st->punched_bytes = atomic_load(&ev->p_bytes);
	st->runs = atomic_load(&ev->runs);
}
