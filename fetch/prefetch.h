/*
 * prefetch: what to fetch ahead of the reader (DESIGN.md "Prefetch").
 *
 * Readahead per open file handle: a read that starts where the last one
 * ended (within PREFETCH_SLACK_BYTES, since the kernel sends its own
 * readahead reads in parallel and they may arrive slightly out of order)
 * grows the window, one chunk first, then doubling up to
 * prefetch_opts.readahead_max; any other read resets it. The chunks past
 * the read, up to the window, that this sequential run has not asked for
 * yet are planned; the caller wants them at SCHED_READAHEAD priority.
 *
 * A struct prefetch_stream is embedded in whatever stands for an open
 * file (fs/ops.c's handle). It has its own lock, taken only inside
 * prefetch_plan() and prefetch_stream_release(), around a few
 * assignments: nothing is called with it held.
 */
#ifndef HOLLOWFS_FETCH_PREFETCH_H
#define HOLLOWFS_FETCH_PREFETCH_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

/* Reads that start this close to where the last one ended still count
 * as sequential. */
#define PREFETCH_SLACK_BYTES (1u << 20)

struct prefetch_opts {
	uint64_t chunk_size; /* bytes, not 0 */
	uint64_t readahead_max; /* largest window in bytes; 0: none */
};

/* The readahead state of one open file. */
struct prefetch_stream {
	pthread_mutex_t lock; /* guards the fields below; then nothing */
	bool seen; /* a read happened */
	uint64_t last_off; /* start of the last read */
	uint64_t next_off; /* end of the last read */
	uint64_t window; /* readahead bytes, 0: none */
	uint64_t ra_next; /* chunks below it were planned already */
};

void prefetch_stream_init(struct prefetch_stream *ps);

/*
 * Frees the contents (the lock). Takes the lock once first, so that a
 * prefetch_plan() that ran on another thread is ordered before the
 * release for thread checkers, which cannot see the order the kernel
 * gives (RELEASE comes after the last READ of a handle was answered).
 */
void prefetch_stream_release(struct prefetch_stream *ps);

/*
 * Records a read of [off, off + len), whose last chunk is last_chunk, of
 * a file of nchunks chunks (nchunks > last_chunk). Returns true with
 * [*from, *to] (chunk indexes, *to < nchunks) to fetch ahead, or false
 * when nothing is to be asked for. Thread-safe.
 */
bool prefetch_plan(struct prefetch_stream *ps, const struct prefetch_opts *o,
		   uint64_t off, uint64_t len, uint64_t last_chunk,
		   uint64_t nchunks, uint64_t *from, uint64_t *to);

#endif
