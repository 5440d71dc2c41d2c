/*
 * work: the worker pool that runs every blocking job of the fetch side
 * (DESIGN.md "Threads: one role each").
 *
 * The engine thread only drives libcurl, FUSE workers only answer from
 * the cache, the saver only syncs. Whatever reads or hashes files, copies
 * them or waits on a local disk runs here instead: chunk probes against
 * .sums, file:// reads (pread from the source file), whole-file
 * verification and the hooks that follow it (hf_cache export).
 *
 * Jobs come in three lanes so that a long job never holds up a short one
 * a reader waits for:
 *   WORK_FAST  probes of one chunk (a reader may wait on them);
 *   WORK_IO    file:// reads (a reader waits on them, but a slow disk
 *              must not stop probes);
 *   WORK_BULK  whole-file verification and export (minutes, nobody
 *              waits on them).
 * Thread 0 runs only FAST jobs; the others take FAST, then IO, then BULK
 * work, and at most nthreads - 2 BULK jobs run at once (at least one).
 *
 * A job checks work_cancelled() between blocks (1 MiB or so) and returns
 * early when it is true; workq_stop() sets it, lets the workers run every
 * queued job with cancelled set (so each frees what it holds) and joins
 * them, so stopping takes about one block's time per worker.
 *
 * Lock order: q->lock, then nothing. No job runs under it.
 */
#ifndef HOLLOWFS_FETCH_WORK_H
#define HOLLOWFS_FETCH_WORK_H

#include <stdbool.h>

enum work_lane { WORK_FAST, WORK_IO, WORK_BULK, WORK_NLANES };

struct work;

/*
 * run is called once, on a worker thread with no lock held. cancelled is
 * true when the pool is stopping: the job should only release what it
 * holds. The job owns w (usually embedded in a struct of its own) and
 * frees it.
 */
typedef void (*work_fn)(struct work *w, bool cancelled);

struct work {
	struct work *next; /* q->lock, while queued */
	work_fn run;
};

struct workq;

/* Starts nthreads workers (at least 2). Returns 0, -ENOMEM or the error
 * of pthread_create. */
int workq_new(int nthreads, struct workq **out)
	__attribute__((warn_unused_result));

/*
 * Queues w (w->run set by the caller) on lane. Returns 0, or -ECANCELED
 * once workq_stop has begun (then w is not run: the caller still owns
 * it). Never blocks on anything but q->lock.
 */
int workq_submit(struct workq *q, enum work_lane lane, struct work *w)
	__attribute__((warn_unused_result));

/* Sets the cancel flag, runs what is queued with cancelled set, joins
 * the workers. Idempotent. */
void workq_stop(struct workq *q);

/* workq_stop, then frees. Accepts NULL. */
void workq_free(struct workq *q);

/* True on a worker thread of a pool that is stopping; false on any other
 * thread. Long jobs call it between blocks. */
bool work_cancelled(void);

/* Jobs queued or running (tests, status). */
unsigned int workq_pending(struct workq *q);

#endif
