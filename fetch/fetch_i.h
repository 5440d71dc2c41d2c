/*
 * fetch_i.h: what the engine and the scheduler share inside fetch/.
 *
 * A fetch_job is one range request for a run of adjacent chunks of one
 * fblob. The scheduler hands it out (sched_take_job) with its chunks
 * INFLIGHT and their cross-process lock bytes held; the engine reports
 * each chunk as it completes (sched_chunk_done) and hands the job back
 * (sched_job_end), which fails or requeues whatever was not completed.
 */
#ifndef HOLLOWFS_FETCH_FETCH_I_H
#define HOLLOWFS_FETCH_FETCH_I_H

#include <stdbool.h>
#include <stdint.h>

#include "fetch/sched.h"

struct fetch_job {
	struct fblob *fb; /* a reference, dropped by sched_job_end */
	uint64_t first; /* first chunk */
	uint64_t count; /* chunks in the run */
	uint64_t off, end; /* bytes [off, end) of the run */
	/* end is inside its one chunk: a prefix for the readers of its
	 * first bytes; the chunk is not completed (sched_job_end) */
	bool partial;
	/* off is inside chunk first, after a prefix fetched before: the
	 * xxh3 state of the chunk's bytes below off (an XXH3_state_t,
	 * owned), to go on from; NULL when off starts the chunk */
	void *hs_init;
	enum sched_prio prio;
	char *url; /* where to start: the origin URL, or a cached
				 * redirect target (owned) */
	char *origin; /* the origin URL (owned) */
	char *auth; /* header line for the origin host (owned) */
	char *aws_sigv4; /* SigV4 provider, or NULL (owned) */
	char *userpwd; /* "KEY_ID:SECRET", or NULL (owned, wiped) */
	char *etag; /* expected ETag, or NULL (owned) */
	bool if_match; /* send If-Match: etag to the origin */
	bool pinned; /* immutable: no ETag learned or compared */
	uint64_t file_size;
	uint32_t chunk_size;
	int data_fd, sums_fd, lock_fd; /* borrowed from the blob */
};

/*
 * Takes the next job: the highest-priority queued run of chunks, at most
 * max_run long. With background false, BACKGROUND work is not taken.
 * Before returning, it claims each chunk's lock byte and reads its .sums
 * entry: a chunk with an entry may be complete on disk (another process,
 * or a run that died before its sidecar was saved), so it leaves the run
 * and a worker probes it (it becomes DONE, or is queued again with its
 * entry cleared). Runs of file:// blobs are handed to the worker pool
 * here and never returned. Returns 1 with *job filled, 0 when there is
 * nothing to do now; *next_ms receives when deferred work (chunks locked
 * by another process) should be looked at again, or -1.
 */
int sched_take_job(struct sched *s, bool background, struct fetch_job *job,
		   int *next_ms);

/*
 * Chunk idx of the job has all its bytes and its sums entry on disk:
 * marks it DONE and releases its lock byte. The waiters it satisfies are
 * added to *fire, for the caller to fire with sched_waiters_fire() once
 * it is out of any callback (the engine: after curl_multi_perform); with
 * fire NULL they are fired before returning.
 */
void sched_chunk_done(struct sched *s, struct fetch_job *job, uint64_t idx,
		      struct sched_waiter **fire);

/*
 * A prefix job of chunk idx of fb ended with its len first bytes written
 * and hashed into st (copied): the next job of the chunk goes on from
 * there rather than fetching them again. Engine thread.
 */
void sched_prefix_keep(struct sched *s, struct fblob *fb, uint64_t idx,
		       uint64_t len, const void *st);

/*
 * The first bytes of chunk idx of fb, from its start, are written to the
 * data file (its chunk is INFLIGHT here): parked reads that need no more
 * of it than that, and whose other chunks are in, are added to *fire.
 * Engine thread only; lock-free unless such a read waits.
 */
void sched_chunk_landed(struct sched *s, struct fblob *fb, uint64_t idx,
			uint32_t bytes, struct sched_waiter **fire);

/* Calls and frees a list of waiters detached by sched_chunk_done; no
 * lock may be held. Accepts NULL. */
void sched_waiters_fire(struct sched_waiter *w);

/*
 * The job is over. Chunks from done_upto on were not completed: with err
 * 0 they are requeued (cancelled without error), else they become FAILED
 * and their waiters get err. Releases the lock bytes, frees the job's
 * strings and drops its reference.
 */
void sched_job_end(struct sched *s, struct fetch_job *job, uint64_t done_upto,
		   int err);

/*
 * A whole-file stream (a server that ignores Range) passes chunk idx of
 * fb: claims it when nobody has it (MISSING, QUEUED or FAILED, and its
 * lock byte free in every process) as a one-chunk job in *job: INFLIGHT,
 * its lock byte held, a reference on fb, no strings. Complete it with
 * sched_chunk_done, then hand it back with sched_job_end. Returns false
 * and leaves the chunk as it was otherwise (a reader that came to wait
 * on it meanwhile is queued for, or failed out of memory: added to *fire
 * as sched_chunk_done does). Engine thread; reads no file.
 */
bool sched_claim_chunk(struct sched *s, struct fblob *fb, uint64_t idx,
		       struct fetch_job *job, struct sched_waiter **fire);

/* The blob's redirect target to reuse (NULL: forget it). */
void sched_set_redirect(struct sched *s, struct fblob *fb, const char *url);

/* Records the ETag first seen for a blob with none expected. */
void sched_learn_etag(struct sched *s, struct fblob *fb, const char *etag);

/*
 * Whether fb's server honours Range: 0 unknown (no answer yet), 1 yes (a
 * 206 came), 2 no (a 200 of the whole file came), 3 unknown but no
 * longer waited for (the first request got no answer in time). While 0 the
 * engine keeps one request of the blob in flight, so that a server that
 * ignores Range is found out once, not by every request of a readahead
 * window each reading the whole file. Engine thread; atomic.
 */
int sched_blob_ranges(struct fblob *fb);
void sched_blob_set_ranges(struct fblob *fb, int v);

/* The job goes back to the queue untouched, not to be taken again for
 * delay_ms (a Range answer is awaited). */
void sched_job_defer(struct sched *s, struct fetch_job *job, int delay_ms);

/* True once sched_fail_blob was called for fb (or shutdown began). */
bool sched_blob_cancelled(struct fblob *fb);

/* Shutdown of the engine: no more fetches; every waiter gets err. */
void sched_cancel_all(struct sched *s, int err);

/* True when at least one job is queued at priority prio or higher. */
bool sched_has_work(struct sched *s, enum sched_prio prio);

#endif
