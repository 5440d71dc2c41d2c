/*
 * work.c: the worker pool (see work.h for the lanes and the thread rules).
 *
 * Lock order: q->lock, then nothing. A job is unlinked under the lock and
 * run after the unlock; its completion is counted under the lock again.
 */
#include "fetch/work.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

struct worker {
	struct workq *q;
	pthread_t thread;
	int idx;
};

struct workq {
	pthread_mutex_t lock;
	pthread_cond_t cond; /* work queued, or stopping */
	struct work *head[WORK_NLANES]; /* FIFO per lane; lock */
	struct work **tail[WORK_NLANES]; /* lock */
	unsigned int running[WORK_NLANES]; /* lock */
	unsigned int pending; /* queued + running; lock */
	unsigned int bulk_max;
	bool stopping; /* lock */
	bool joined; /* only workq_stop's caller */
	_Atomic bool cancel; /* read by jobs between blocks */
	int nthreads;
	struct worker *workers;
};

/* The pool whose worker this thread is, or NULL. */
static _Thread_local struct workq *current_q;

bool work_cancelled(void)
{
	return current_q &&
	       atomic_load_explicit(&current_q->cancel, memory_order_relaxed);
}

/* The next job this worker may run: FAST first, then IO, then BULK
 * (within its cap); thread 0 only takes FAST. */
static struct work *take_locked(struct workq *q, int idx, int *lane)
{
	int l, last = idx == 0 ? WORK_FAST : WORK_BULK;

	for (l = WORK_FAST; l <= last; l++) {
		struct work *w = q->head[l];

		if (!w)
			continue;
		if (l == WORK_BULK && q->running[l] >= q->bulk_max &&
		    !q->stopping)
			continue;
		q->head[l] = w->next;
		if (!q->head[l])
			q->tail[l] = &q->head[l];
		w->next = NULL;
		q->running[l]++;
		*lane = l;
		return w;
	}
	return NULL;
}

static void *worker_main(void *arg)
{
	struct worker *me = arg;
	struct workq *q = me->q;

	current_q = q;
	pthread_mutex_lock(&q->lock);
	for (;;) {
		struct work *w;
		bool cancelled;
		int lane = 0;

		w = take_locked(q, me->idx, &lane);
		if (!w) {
			/* Stopping: the others drain the lanes thread 0
			 * may not take. */
			if (q->stopping)
				break;
			pthread_cond_wait(&q->cond, &q->lock);
			continue;
		}
		cancelled = q->stopping;
		pthread_mutex_unlock(&q->lock);

		w->run(w, cancelled); /* frees w */

		pthread_mutex_lock(&q->lock);
		q->running[lane]--;
		q->pending--;
		/* A BULK slot may have freed up for a waiting worker. */
		if (lane == WORK_BULK && q->head[WORK_BULK])
			pthread_cond_signal(&q->cond);
	}
	pthread_mutex_unlock(&q->lock);
	current_q = NULL;
	return NULL;
}

int workq_new(int nthreads, struct workq **out)
{
	struct workq *q;
	int err = 0, i, l;

	*out = NULL;
	if (nthreads < 2)
		nthreads = 2;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->workers = calloc((size_t)nthreads, sizeof(*q->workers));
	if (!q->workers) {
		free(q);
		return -ENOMEM;
	}
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	for (l = 0; l < WORK_NLANES; l++)
		q->tail[l] = &q->head[l];
	q->bulk_max = nthreads > 3 ? (unsigned int)nthreads - 2 : 1;
	for (i = 0; i < nthreads; i++) {
		q->workers[i].q = q;
		q->workers[i].idx = i;
		err = -pthread_create(&q->workers[i].thread, NULL, worker_main,
				      &q->workers[i]);
		if (err)
			break;
		q->nthreads++;
	}
	if (err) {
		workq_free(q);
		return err;
	}
	*out = q;
	return 0;
}

int workq_submit(struct workq *q, enum work_lane lane, struct work *w)
{
	pthread_mutex_lock(&q->lock);
	if (q->stopping) {
		pthread_mutex_unlock(&q->lock);
		return -ECANCELED;
	}
	w->next = NULL;
	*q->tail[lane] = w;
	q->tail[lane] = &w->next;
	q->pending++;
	/* Thread 0 sleeps through IO and BULK work it may not take: wake
	 * everyone then, so a worker that may take it does. */
	if (lane == WORK_FAST)
		pthread_cond_signal(&q->cond);
	else
		pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	return 0;
}

void workq_stop(struct workq *q)
{
	int i;

	if (!q || q->joined)
		return;
	atomic_store(&q->cancel, true);
	pthread_mutex_lock(&q->lock);
	q->stopping = true;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	for (i = 0; i < q->nthreads; i++)
		pthread_join(q->workers[i].thread, NULL);
	q->joined = true;
}

void workq_free(struct workq *q)
{
	if (!q)
		return;
	workq_stop(q);
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->lock);
	free(q->workers);
	free(q);
}

unsigned int workq_pending(struct workq *q)
{
	unsigned int n;

	pthread_mutex_lock(&q->lock);
	n = q->pending;
	pthread_mutex_unlock(&q->lock);
	return n;
}
