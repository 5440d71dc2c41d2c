/*
 * prefetch: what to fetch ahead of the reader (DESIGN.md "Prefetch").
 *
 * Readahead per open file handle, in streams: a handle keeps up to
 * PREFETCH_STREAMS sequential runs, so that interleaved readers of one
 * handle (threads of a loader, the kernel's async readahead arriving out
 * of order) are each recognised. A read continues the stream whose end
 * it starts at (within PREFETCH_SLACK_BYTES either way) or whose planned
 * window it skips forward into; any other read starts a new stream in
 * place of the least recently used one and fetches only the chunks it
 * covers. A stream plans nothing until it has read at least a chunk's
 * worth of bytes; then each continuation grows its window, one chunk
 * first, then doubling up to prefetch_opts.readahead_max, and the chunks
 * past the read, up to the window, that the stream has not asked for yet
 * are planned; the caller wants them at SCHED_READAHEAD priority.
 *
 * Format-aware planning (fetch/format.h): a struct prefetch_file, one per
 * remote file for the life of the mount, learns the tensor map of a
 * .safetensors or .gguf file from its header; prefetch_plan_file() then
 * answers a read inside a tensor with whole chunks to the tensor's end
 * and on in offset order up to a per-file window that grows (one chunk,
 * then doubling up to readahead_max) with each read of tensor data,
 * each chunk planned at most once per file whatever order the loader
 * touches tensors in. Reads of the header alone plan nothing more.
 *
 * Locks: a struct prefetch_stream (embedded in fs/ops.c's handle) and a
 * struct prefetch_file each have their own lock, taken only inside the
 * functions below around a few assignments; the stream's is never held
 * with the file's. Nothing is called with either held, except the
 * allocation of the planned-chunk bitmap. prefetch_file_load() reads the
 * blob with no lock held.
 */
#ifndef HOLLOWFS_FETCH_PREFETCH_H
#define HOLLOWFS_FETCH_PREFETCH_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Reads that start this close to where a stream ended (before or after)
 * still continue it. */
#define PREFETCH_SLACK_BYTES (1u << 20)

/* Sequential runs tracked per handle. */
#define PREFETCH_STREAMS 8

/* Most ranges one prefetch_plan_file() returns. */
#define PREFETCH_MAX_RANGES 8

struct prefetch_opts {
	uint64_t chunk_size; /* bytes, not 0 */
	uint64_t readahead_max; /* largest window in bytes; 0: none */
};

/* One sequential run of reads. */
struct prefetch_run {
	uint64_t start; /* where its first read began */
	uint64_t next_off; /* end of its furthest read */
	uint64_t run_bytes; /* bytes it has read */
	uint64_t window; /* readahead bytes, 0: none yet */
	uint64_t ra_next; /* chunks below it were planned already */
	uint64_t used; /* LRU stamp; 0: the slot is free */
};

/* The readahead state of one open file. */
struct prefetch_stream {
	pthread_mutex_t lock; /* guards the fields below; then nothing */
	uint64_t clock; /* LRU stamps */
	struct prefetch_run runs[PREFETCH_STREAMS];
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

/*
 * Whether the read of [off, off + len) just recorded (prefetch_plan)
 * only reaches into chunk last_chunk: it belongs to a run of contiguous
 * reads of at most 1 MiB with no window yet (a random read, which the
 * kernel may cut into several READs) that began in the chunk before.
 * Such a read wants only the start of that chunk. Thread-safe.
 */
bool prefetch_reaches_into(struct prefetch_stream *ps, uint64_t off,
			   uint64_t len, uint64_t chunk_size,
			   uint64_t last_chunk);

/* ---- format-aware planning, per remote file ---- */

/* Chunks [from, to] to want at SCHED_READAHEAD. */
struct prefetch_range {
	uint64_t from;
	uint64_t to;
};

struct format_map;

/* One remote file; see prefetch_file_new(). Opaque. */
struct prefetch_file;

/*
 * A new object for the file named name (its last path component is
 * enough) of size bytes in chunks of chunk_size. *out is NULL (and 0
 * returned) when the name is not a format we know: callers then use
 * prefetch_plan() alone. -ENOMEM.
 */
int prefetch_file_new(const char *name, uint64_t size, uint64_t chunk_size,
		      struct prefetch_file **out)
	__attribute__((warn_unused_result));
void prefetch_file_free(struct prefetch_file *pf); /* accepts NULL */

/*
 * True when the header is wanted: *last_chunk is the last chunk of the
 * header bytes needed now (from chunk 0). Want [0, *last_chunk] (at open,
 * at SCHED_READAHEAD or higher), and once they are DONE call
 * prefetch_file_load(). False once the map is built or parsing failed
 * (then planning falls back to prefetch_plan()). Thread-safe.
 */
bool prefetch_file_header_want(struct prefetch_file *pf, uint64_t *last_chunk);

/*
 * Reads the header bytes wanted from fd (the blob's data fd; the caller
 * made sure those chunks are DONE) and parses them. 0: the map is built;
 * -EAGAIN: more header bytes are needed (prefetch_file_header_want says
 * which); -EALREADY: built already or another thread is loading; another
 * negative errno: not a valid header, format-aware planning is off for
 * the file (one debug line is the caller's). Thread-safe; no lock held
 * while reading.
 */
int prefetch_file_load(struct prefetch_file *pf, int fd)
	__attribute__((warn_unused_result));

/* Attaches a map built elsewhere (takes ownership); for tests. */
void prefetch_file_attach(struct prefetch_file *pf, struct format_map *map);

/* True once the file has a tensor map. */
bool prefetch_file_ready(struct prefetch_file *pf);

/*
 * prefetch_plan() for a file that may have a tensor map (pf may be NULL):
 * records the read of [off, off + len) on chunks [first_chunk,
 * last_chunk] and writes up to PREFETCH_MAX_RANGES ranges of chunks to
 * want ahead into out; returns how many. With a map, the plan follows
 * the tensors; without, it is prefetch_plan()'s. Thread-safe.
 */
size_t prefetch_plan_file(struct prefetch_stream *ps, struct prefetch_file *pf,
			  const struct prefetch_opts *o, uint64_t off,
			  uint64_t len, uint64_t first_chunk,
			  uint64_t last_chunk, uint64_t nchunks,
			  struct prefetch_range *out);

#endif
