/*
 * fill.c: the background fill of a mount (fs/fill.h).
 *
 * Two FIFO queues of file indexes: "walk" (folder-order prefetch, wanted
 * at SCHED_READAHEAD, taken first) and "background" (prefetch=all, opened
 * files, the xattr; SCHED_BACKGROUND). A file is in a queue while its
 * state is ST_QUEUED; an index may sit in both (a queued file a reader
 * walks towards is pushed to the walk queue too) and an entry whose state
 * is no longer ST_QUEUED when it comes out is skipped.
 *
 * The fill thread takes files from the queues while fewer than
 * max_inflight are in flight, opens each one's fblob (a new
 * reference) and wants its chunks a slice at a time. The done callback
 * only moves the job to the ready list and wakes the thread, which wants
 * the next slice or finishes the file: drops the reference, records the
 * result. So the thread blocks on nothing but its condition variable and
 * sched_open (which may wait a moment for a free descriptor).
 *
 * Lock order: fill->lock, then sched->lock (sched_want and sched_cancel
 * are called under fill->lock, so a done callback, which takes fill->lock
 * first thing, cannot race the bookkeeping of its job). fblob_put and
 * fs_inode_fblob are called with no lock held.
 */
#include "fs/fill.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "fetch/sched.h"
#include "fs/fs.h"
#include "fs/fs_i.h"
#include "state/fsutil.h"
#include "state/hlog.h"
#include "state/manifest.h"

/* Per entry state; a negative value is the -errno of a failed fill. */
enum {
	ST_NONE = 0,
	ST_QUEUED,
	ST_RUNNING,
	ST_DONE,
};

#define POS_NONE UINT32_MAX

enum { Q_WALK, Q_BG, Q_N };

/* A growable FIFO of entry indexes. */
struct ring {
	uint64_t *v;
	size_t head, len, cap;
};

/* A file in flight. */
struct fill_job {
	struct fill_job *next_all; /* in fill->jobs; lock */
	struct fill_job *next_ready; /* in fill->ready; lock */
	struct fill *f;
	uint64_t idx;
	struct fblob *fb; /* a reference, dropped when the file is done */
	uint64_t next_chunk, nchunks, slice_chunks;
	uint64_t want_first, want_last; /* the slice wanted now */
	int q; /* Q_WALK or Q_BG: which limit it counts against */
	struct sched_waiter *w; /* lock: registered and not fired yet */
	int err; /* lock: done's error */
};

struct fill {
	struct fs *fs; /* borrowed */
	const struct manifest *m; /* borrowed, finished */
	pthread_t thread;
	bool started, joined; /* fill_start / fill_stop, caller's thread */
	uint32_t walk_max; /* read-only: the largest walk window, files */
	int max_inflight; /* read-only: files in flight at once, in all */

	pthread_mutex_t lock;
	pthread_cond_t cond; /* work, a ready job, a callback returned */
	bool stop; /* lock */
	struct ring q[Q_N]; /* lock */
	int32_t *st; /* lock: per entry, ST_* or -errno */
	uint32_t *posof; /* read-only: entry's index among its siblings */
	uint32_t *walk_last; /* lock: per folder, the child read last */
	uint32_t *walk_ahead; /* lock: per folder, furthest child queued */
	uint32_t *walk_win; /* lock: per folder, the window (0: not grown) */
	struct fill_job *jobs; /* lock: every file in flight */
	struct fill_job *ready; /* lock: of them, those whose done fired */
	int inflight[Q_N]; /* lock */
	struct fill_stats stats; /* lock */
};

static int ring_push(struct ring *r, uint64_t v)
{
	if (r->len == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 64, i;
		uint64_t *nv = malloc(cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		for (i = 0; i < r->len; i++)
			nv[i] = r->v[(r->head + i) % r->cap];
		free(r->v);
		r->v = nv;
		r->cap = cap;
		r->head = 0;
	}
	r->v[(r->head + r->len) % r->cap] = v;
	r->len++;
	return 0;
}

static bool ring_pop(struct ring *r, uint64_t *v)
{
	if (!r->len)
		return false;
	*v = r->v[r->head];
	r->head = (r->head + 1) % r->cap;
	r->len--;
	return true;
}

/*
 * The walk window's ceiling and the files in flight, from the connections
 * (the walk keeps them all busy) and the descriptor limit (each file in
 * flight holds an open blob: at most half of the blobs it allows).
 */
static void fill_limits(struct fill *f)
{
	struct sched_stats st;
	struct rlimit rl;
	uint64_t walk, most, budget;

	sched_get_stats(f->fs->sched, &st); /* no blob open yet: cheap */
	walk = (uint64_t)FILL_WALK_PER_CONN * st.engine.connections;
	if (walk < FILL_WALK_FILES)
		walk = FILL_WALK_FILES;
	if (walk > FILL_WALK_FILES_MAX)
		walk = FILL_WALK_FILES_MAX;
	most = walk + FILL_MAX_BACKGROUND;
	if (!getrlimit(RLIMIT_NOFILE, &rl)) {
		budget = nofile_blob_budget(rl.rlim_cur, st.engine.connections,
					    0) /
			 2;
		if (most > budget)
			most = budget; /* nofile_blob_budget: at least 16 */
		if (walk > most)
			walk = most;
	}
	f->walk_max = (uint32_t)walk;
	f->max_inflight = (int)most;
}

int fill_new(struct fs *fs, struct fill **out)
{
	const struct manifest *m = fs->manifest;
	struct fill *f;
	size_t i, j;

	*out = NULL;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->fs = fs;
	f->m = m;
	f->st = calloc(m->n, sizeof(*f->st));
	f->posof = calloc(m->n, sizeof(*f->posof));
	f->walk_last = malloc(m->n * sizeof(*f->walk_last));
	f->walk_ahead = malloc(m->n * sizeof(*f->walk_ahead));
	f->walk_win = calloc(m->n, sizeof(*f->walk_win));
	if (!f->st || !f->posof || !f->walk_last || !f->walk_ahead ||
	    !f->walk_win) {
		fill_free(f);
		return -ENOMEM;
	}
	for (i = 0; i < m->n; i++) {
		const struct mentry *e = &m->entries[i];

		f->walk_last[i] = POS_NONE;
		f->walk_ahead[i] = POS_NONE;
		for (j = 0; j < e->nchildren && j < POS_NONE; j++)
			f->posof[e->children[j]] = (uint32_t)j;
	}
	fill_limits(f);
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);
	*out = f;
	return 0;
}

/* Queues file idx on queue q unless it is queued, running or done (walk:
 * a file queued on the background queue is pushed again, to come
 * sooner). Returns 0 or -ENOMEM. */
static int queue_file_locked(struct fill *f, uint64_t idx, int q)
{
	const struct mentry *e = &f->m->entries[idx];
	int32_t st = f->st[idx];
	int err;

	if (e->type != MENTRY_FILE || st == ST_RUNNING || st == ST_DONE)
		return 0;
	if (st == ST_QUEUED && q != Q_WALK)
		return 0;
	if (!e->size) {
		f->st[idx] = ST_DONE; /* nothing to fetch */
		return 0;
	}
	err = ring_push(&f->q[q], idx);
	if (err)
		return err;
	if (st != ST_QUEUED) {
		f->st[idx] = ST_QUEUED;
		f->stats.files_queued++;
		f->stats.bytes_queued += e->size;
	}
	pthread_cond_signal(&f->cond);
	return 0;
}

/* ---- the done callback and the jobs ---- */

static void on_slice_done(void *arg, int err)
{
	struct fill_job *j = arg;
	struct fill *f = j->f;

	pthread_mutex_lock(&f->lock);
	j->w = NULL;
	j->err = err;
	j->next_ready = f->ready;
	f->ready = j;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

static void job_unlink_locked(struct fill *f, struct fill_job *j)
{
	struct fill_job **pp;

	for (pp = &f->jobs; *pp; pp = &(*pp)->next_all) {
		if (*pp == j) {
			*pp = j->next_all;
			j->next_all = NULL;
			return;
		}
	}
}

/* The file is over (err 0: complete): records it, frees the job. Called
 * unlocked, on the fill thread. */
static void job_finish(struct fill *f, struct fill_job *j, int err)
{
	const struct mentry *e = &f->m->entries[j->idx];

	fblob_put(j->fb);
	pthread_mutex_lock(&f->lock);
	job_unlink_locked(f, j);
	f->inflight[j->q]--;
	if (!err) {
		f->st[j->idx] = ST_DONE;
		f->stats.files_done++;
	} else if (err == -ECANCELED) {
		f->st[j->idx] = ST_NONE; /* stopping: not its fault */
	} else {
		f->st[j->idx] = err;
		f->stats.files_failed++;
	}
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
	if (err && err != -ECANCELED && err != -ENETDOWN)
		hlog(HLOG_INFO, HLOG_FS, "background fill of '%s' stopped: %s",
		     e->path, strerror(-err));
	free(j);
}

/*
 * Wants the job's next slices until one has to be waited for (then its
 * callback takes it on), or the file is complete or failed (finished
 * here). Unlocked on entry, on the fill thread.
 */
static void job_advance(struct fill *f, struct fill_job *j)
{
	struct sched *s = f->fs->sched;
	enum sched_prio prio = j->q == Q_WALK ? SCHED_READAHEAD :
						SCHED_BACKGROUND;
	const uint32_t cs = fblob_chunk_size(j->fb);
	uint64_t first, last, bytes;
	int res;

	for (;;) {
		if (j->next_chunk >= j->nchunks) {
			job_finish(f, j, 0);
			return;
		}
		first = j->next_chunk;
		last = first + j->slice_chunks - 1;
		if (last >= j->nchunks)
			last = j->nchunks - 1;
		pthread_mutex_lock(&f->lock);
		if (f->stop) {
			pthread_mutex_unlock(&f->lock);
			job_finish(f, j, -ECANCELED);
			return;
		}
		j->want_first = first;
		j->want_last = last;
		res = sched_want(s, j->fb, first, last, prio, on_slice_done, j,
				 &j->w);
		if (res == 0) {
			pthread_mutex_unlock(&f->lock);
			return; /* on_slice_done moves it to f->ready */
		}
		j->w = NULL;
		if (res == 1) {
			/* Already cached: account for it and go on. */
			bytes = (last + 1 - first) * (uint64_t)cs;
			if ((last + 1) * (uint64_t)cs >
			    f->m->entries[j->idx].size)
				bytes -= (last + 1) * (uint64_t)cs -
					 f->m->entries[j->idx].size;
			f->stats.bytes_done += bytes;
			j->next_chunk = last + 1;
		}
		pthread_mutex_unlock(&f->lock);
		if (res < 0) {
			job_finish(f, j, res);
			return;
		}
	}
}

/* A slice's callback fired: account for it, go on or finish. */
static void job_slice_done(struct fill *f, struct fill_job *j)
{
	const uint32_t cs = fblob_chunk_size(j->fb);
	uint64_t size = f->m->entries[j->idx].size, end;

	if (j->err) {
		job_finish(f, j, j->err);
		return;
	}
	end = (j->want_last + 1) * (uint64_t)cs;
	if (end > size)
		end = size;
	pthread_mutex_lock(&f->lock);
	f->stats.bytes_done += end - j->want_first * (uint64_t)cs;
	pthread_mutex_unlock(&f->lock);
	j->next_chunk = j->want_last + 1;
	job_advance(f, j);
}

/* Starts the fill of file idx (its state is ST_RUNNING, counted in
 * inflight[q]). Unlocked, on the fill thread. */
static void job_begin(struct fill *f, uint64_t idx, int q)
{
	struct fill_job *j;
	uint32_t cs;
	int err;

	j = calloc(1, sizeof(*j));
	if (!j) {
		/* Not queued again: a later open or xattr will. */
		pthread_mutex_lock(&f->lock);
		f->st[idx] = -ENOMEM;
		f->stats.files_failed++;
		f->inflight[q]--;
		pthread_mutex_unlock(&f->lock);
		return;
	}
	j->f = f;
	j->idx = idx;
	j->q = q;
	pthread_mutex_lock(&f->lock);
	j->next_all = f->jobs;
	f->jobs = j;
	pthread_mutex_unlock(&f->lock);
	err = fs_inode_fblob(f->fs, idx, &j->fb); /* a new reference */
	if (err) {
		j->fb = NULL;
		job_finish(f, j, err);
		return;
	}
	cs = fblob_chunk_size(j->fb);
	j->nchunks = fblob_nchunks(j->fb);
	j->slice_chunks = FILL_SLICE_BYTES / cs ? FILL_SLICE_BYTES / cs : 1;
	job_advance(f, j);
}

/* ---- the thread ---- */

/* The next file to start, by the limits, or false. */
static bool take_locked(struct fill *f, uint64_t *idx, int *q)
{
	int total = f->inflight[Q_WALK] + f->inflight[Q_BG];

	if (total >= f->max_inflight)
		return false;
	while (ring_pop(&f->q[Q_WALK], idx)) {
		if (f->st[*idx] == ST_QUEUED) {
			*q = Q_WALK;
			return true;
		}
	}
	if (f->inflight[Q_BG] >= FILL_MAX_BACKGROUND)
		return false;
	while (ring_pop(&f->q[Q_BG], idx)) {
		if (f->st[*idx] == ST_QUEUED) {
			*q = Q_BG;
			return true;
		}
	}
	return false;
}

/* At stop: unregisters every want in flight and waits for callbacks
 * already running to return, then drops every job's reference. */
static void fill_drain(struct fill *f)
{
	struct sched *s = f->fs->sched;
	struct fill_job *j, *list;
	bool racing;

	pthread_mutex_lock(&f->lock);
	for (;;) {
		racing = false;
		for (j = f->jobs; j; j = j->next_all) {
			if (!j->w)
				continue;
			if (sched_cancel(s, j->w) == 0)
				j->w = NULL; /* done will never be called */
			else
				racing = true; /* done is being called */
		}
		if (!racing)
			break;
		/* A callback is blocked on our lock: let it end. */
		pthread_cond_wait(&f->cond, &f->lock);
	}
	/* No want is registered any more: nobody else touches the jobs. */
	list = f->jobs;
	f->jobs = NULL;
	f->ready = NULL;
	pthread_mutex_unlock(&f->lock);
	while (list) {
		j = list->next_all;
		fblob_put(list->fb);
		free(list);
		list = j;
	}
}

static void *fill_main(void *arg)
{
	struct fill *f = arg;
	struct fill_job *j;
	uint64_t idx;
	int q;

	pthread_mutex_lock(&f->lock);
	while (!f->stop) {
		if (f->ready) {
			j = f->ready;
			f->ready = j->next_ready;
			pthread_mutex_unlock(&f->lock);
			job_slice_done(f, j);
			pthread_mutex_lock(&f->lock);
			continue;
		}
		if (take_locked(f, &idx, &q)) {
			f->st[idx] = ST_RUNNING;
			f->inflight[q]++;
			pthread_mutex_unlock(&f->lock);
			job_begin(f, idx, q);
			pthread_mutex_lock(&f->lock);
			continue;
		}
		pthread_cond_wait(&f->cond, &f->lock);
	}
	pthread_mutex_unlock(&f->lock);
	fill_drain(f);
	return NULL;
}

int fill_start(struct fill *f)
{
	const struct manifest *m = f->m;
	uint64_t small = f->fs->opts.chunk_size;
	size_t i;
	int pass, err;

	if (f->fs->opts.prefetch == FS_PREFETCH_ALL) {
		pthread_mutex_lock(&f->lock);
		/* Small files first (one chunk or less), then the rest. */
		for (pass = 0; pass < 2; pass++) {
			for (i = 0; i < m->n; i++) {
				const struct mentry *e = &m->entries[i];

				if (e->type != MENTRY_FILE ||
				    (e->size <= small) != !pass)
					continue;
				if (queue_file_locked(f, i, Q_BG))
					break; /* out of memory: the rest not */
			}
		}
		pthread_mutex_unlock(&f->lock);
	}
	err = pthread_create(&f->thread, NULL, fill_main, f);
	if (err)
		return -err;
	(void)pthread_setname_np(f->thread, "hollowfs-fill"); /* for top */
	f->started = true;
	return 0;
}

void fill_stop(struct fill *f)
{
	if (!f || !f->started || f->joined)
		return;
	pthread_mutex_lock(&f->lock);
	f->stop = true;
	pthread_cond_broadcast(&f->cond);
	pthread_mutex_unlock(&f->lock);
	pthread_join(f->thread, NULL);
	f->joined = true;
}

void fill_free(struct fill *f)
{
	int i;

	if (!f)
		return;
	fill_stop(f);
	if (f->st) { /* initialised (fill_new got that far) */
		pthread_mutex_destroy(&f->lock);
		pthread_cond_destroy(&f->cond);
	}
	for (i = 0; i < Q_N; i++)
		free(f->q[i].v);
	free(f->st);
	free(f->posof);
	free(f->walk_last);
	free(f->walk_ahead);
	free(f->walk_win);
	free(f);
}

/* ---- what FUSE operations call ---- */

void fill_opened(struct fill *f, uint64_t idx)
{
	if (!f || f->fs->opts.prefetch == FS_PREFETCH_NONE || idx >= f->m->n)
		return;
	pthread_mutex_lock(&f->lock);
	if (!f->stop && f->st[idx] != ST_DONE)
		(void)queue_file_locked(f, idx, Q_BG); /* best effort */
	pthread_mutex_unlock(&f->lock);
}

/* Position of the file before pos among folder p's children, skipping
 * folders (at most 64), or POS_NONE. */
static uint32_t prev_file_pos(const struct fill *f, const struct mentry *p,
			      uint32_t pos)
{
	uint32_t i, steps = 0;

	for (i = pos; i > 0 && steps < 64; i--, steps++)
		if (f->m->entries[p->children[i - 1]].type == MENTRY_FILE)
			return i - 1;
	return POS_NONE;
}

void fill_read(struct fill *f, uint64_t idx)
{
	const struct mentry *e, *p;
	uint64_t bytes = 0;
	uint32_t pos, last, from, win, i, nfiles = 0;

	if (!f || idx >= f->m->n)
		return;
	e = &f->m->entries[idx];
	if (e->type != MENTRY_FILE || !idx)
		return;
	p = &f->m->entries[e->parent];
	pos = f->posof[idx];
	pthread_mutex_lock(&f->lock);
	last = f->walk_last[e->parent];
	if (last == pos || f->stop) {
		pthread_mutex_unlock(&f->lock);
		return; /* another read of the same file: nothing new */
	}
	f->walk_last[e->parent] = pos;
	if (last == POS_NONE || last > pos ||
	    prev_file_pos(f, p, pos) != last) {
		/* Not the next file after the last one read: no walk. */
		f->walk_ahead[e->parent] = POS_NONE;
		f->walk_win[e->parent] = 0;
		pthread_mutex_unlock(&f->lock);
		return;
	}
	from = f->walk_ahead[e->parent];
	win = f->walk_win[e->parent] ? f->walk_win[e->parent] : FILL_WALK_FILES;
	if (win > f->walk_max)
		win = f->walk_max; /* a low descriptor limit */
	if (from != POS_NONE && from >= pos &&
	    (f->st[idx] == ST_QUEUED || f->st[idx] == ST_RUNNING)) {
		/* The reader caught up with the walk: reach further. */
		win = win * 2 < f->walk_max ? win * 2 : f->walk_max;
	}
	f->walk_win[e->parent] = win;
	from = from == POS_NONE || from < pos ? pos + 1 : from + 1;
	/* The window: the next win files after pos, or FILL_WALK_BYTES of
	 * them, whichever is less. */
	for (i = pos + 1; i < p->nchildren; i++) {
		uint64_t c = p->children[i];
		const struct mentry *ce = &f->m->entries[c];

		if (ce->type != MENTRY_FILE)
			continue;
		if (bytes + ce->size > FILL_WALK_BYTES)
			break; /* a big file: the reader's readahead does it */
		nfiles++;
		bytes += ce->size;
		if (i >= from && queue_file_locked(f, c, Q_WALK))
			break;
		f->walk_ahead[e->parent] = i;
		if (nfiles >= win)
			break;
	}
	pthread_mutex_unlock(&f->lock);
}

/* Queues every file under folder idx (recursive) or its own files. */
static int queue_tree_locked(struct fill *f, uint64_t idx, bool recursive)
{
	const struct mentry *e = &f->m->entries[idx];
	uint64_t *stack = NULL;
	size_t n = 0, alloc = 0, i;
	int err = 0;

	if (e->type == MENTRY_FILE)
		return queue_file_locked(f, idx, Q_BG);
	if (!recursive) {
		for (i = 0; i < e->nchildren && !err; i++)
			err = queue_file_locked(f, e->children[i], Q_BG);
		return err;
	}
	/* Depth first, without recursion: a stack of folders to do. */
	stack = malloc(16 * sizeof(*stack));
	if (!stack)
		return -ENOMEM;
	alloc = 16;
	stack[n++] = idx;
	while (n && !err) {
		const struct mentry *d = &f->m->entries[stack[--n]];

		for (i = 0; i < d->nchildren && !err; i++) {
			uint64_t c = d->children[i];

			if (f->m->entries[c].type == MENTRY_FILE) {
				err = queue_file_locked(f, c, Q_BG);
				continue;
			}
			if (n == alloc) {
				uint64_t *ns = realloc(
					stack, alloc * 2 * sizeof(*stack));

				if (!ns) {
					err = -ENOMEM;
					break;
				}
				stack = ns;
				alloc *= 2;
			}
			stack[n++] = c;
		}
	}
	free(stack);
	return err;
}

int fill_queue(struct fill *f, uint64_t idx, bool recursive)
{
	int err;

	if (!f)
		return -ESHUTDOWN;
	if (idx >= f->m->n)
		return -ENOENT;
	pthread_mutex_lock(&f->lock);
	if (f->stop) {
		pthread_mutex_unlock(&f->lock);
		return -ESHUTDOWN;
	}
	if (f->m->entries[idx].type == MENTRY_FILE && f->st[idx] == ST_DONE)
		f->st[idx] = ST_NONE; /* asked again: check it again */
	err = queue_tree_locked(f, idx, recursive);
	pthread_mutex_unlock(&f->lock);
	return err;
}

void fill_stats(struct fill *f, struct fill_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (!f)
		return;
	pthread_mutex_lock(&f->lock);
	*st = f->stats;
	st->files_inflight =
		(uint64_t)(f->inflight[Q_WALK] + f->inflight[Q_BG]);
	pthread_mutex_unlock(&f->lock);
}

void fill_file_status(struct fill *f, uint64_t idx, char *buf, size_t len)
{
	static const char *const names[] = { "none", "queued", "running",
					     "done" };
	int32_t st;

	if (!f || idx >= f->m->n) {
		snprintf(buf, len, "none");
		return;
	}
	pthread_mutex_lock(&f->lock);
	st = f->st[idx];
	pthread_mutex_unlock(&f->lock);
	if (st < 0)
		snprintf(buf, len, "failed: %s", strerror(-st));
	else
		snprintf(buf, len, "%s", names[st]);
}
