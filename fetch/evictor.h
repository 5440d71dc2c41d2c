/*
 * evictor: keeps a mount's cache within its size limit (-o cache_max=)
 * and its file system's free space above -o cache_min_free= (DESIGN.md
 * "Blob lifetime, sharing and eviction").
 *
 * Accounting is a periodic scan, not a shared file: cache_usage()
 * (state/evict.h) adds up the allocated blocks of every file under
 * blobs/, which is what the disk really holds, whoever wrote it (every
 * process sharing the cache, a `hollowfs gc`, a crashed process's
 * leftovers), and it cannot drift: a shared counter would have to be
 * updated under a lock by every writer and would be wrong after any
 * kill -9. Between scans this process adds the chunks it writes to the
 * last scan's figure (and those it claimed and is fetching); a scan runs when that estimate reaches the limit,
 * after every EVICTOR_SCAN_BYTES written, and every EVICTOR_TICK_MS (to
 * see the other processes' writes).
 *
 * A run, on the worker pool's BULK lane (never the engine or a FUSE
 * worker), brings usage down to a little under the target: first
 * least-recently-used blobs no process has open (evict_to), then the
 * idle blobs this process keeps open, closed and evicted the same way,
 * then holes punched in the least recently read chunks of files this
 * process alone has open (sched_punch_lru: a file larger than the
 * limit being streamed). A job that would take the cache past the
 * limit waits for the run (sched_take_job asks evictor_should_wait), so
 * this process's writes stay within it, in-flight chunks included; when
 * nothing more can go, they no longer wait (one line) rather than hang
 * reads, and a write that finds the disk full is retried after a run or
 * answered uncached (fetch/sched.c).
 *
 * Thread-safe: the counters are atomic; runs are serialised by the
 * pending flag (one queued or running at a time).
 */
#ifndef HOLLOWFS_FETCH_EVICTOR_H
#define HOLLOWFS_FETCH_EVICTOR_H

#include <stdbool.h>
#include <stdint.h>

struct cache;
struct sched;

/* cache_min_free's default: 5% of the file system. */
#define EVICTOR_MIN_FREE_DEFAULT UINT64_MAX
/* A scan after this many bytes written, whatever the estimate says. */
#define EVICTOR_SCAN_BYTES (256ull << 20)
/* And at least this often. */
#define EVICTOR_TICK_MS 10000

struct evictor;

/*
 * An evictor for cache c and scheduler s (both must outlive it), with
 * max_bytes (0: no limit) and min_free (EVICTOR_MIN_FREE_DEFAULT for 5%
 * of the file system). Measures the cache once now. Does not attach
 * itself: the caller passes it to sched_set_evictor.
 */
int evictor_new(struct cache *c, struct sched *s, uint64_t max_bytes,
		uint64_t min_free, struct evictor **out)
	__attribute__((warn_unused_result));
void evictor_free(struct evictor *ev); /* after the scheduler stopped */

/* The largest job the scheduler hands out, in bytes (set once). */
void evictor_set_job_bytes(struct evictor *ev, uint64_t bytes);

/* The engine wrote len bytes of a chunk (from sched_chunk_done). */
void evictor_note_written(struct evictor *ev, uint64_t len);

/* Should new chunks wait for a run: would the largest job, with the
 * inflight bytes already claimed, take the cache past its target? */
bool evictor_should_wait(struct evictor *ev, uint64_t inflight);

/* Queues a run now (a write failed for lack of space, the saver's tick). */
void evictor_kick(struct evictor *ev);

/*
 * A run on the calling thread (a worker): returns the bytes freed. For
 * the retry after ENOSPC, and tests.
 */
uint64_t evictor_run(struct evictor *ev);

/* The last scan's figures, for the stats xattr and status. */
struct evictor_stats {
	uint64_t used; /* estimated allocated bytes */
	uint64_t limit; /* the target of the last scan (0: none) */
	uint64_t evicted_blobs, evicted_bytes; /* since the mount */
	uint64_t punched_chunks, punched_bytes;
	uint64_t runs;
};
void evictor_get_stats(struct evictor *ev, struct evictor_stats *st);

#endif
