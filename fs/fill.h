/*
 * fill: the background fill of a mount (issue 11 "Background fill").
 *
 * One thread completes files nobody has to read: every file of the
 * snapshot with -o prefetch=all (small ones first, then the rest in
 * manifest order), each file opened with prefetch=open or all, what
 * user.hollowfs.prefetch / hollowfs prefetch asks for, and, in every
 * mode, the next files of a folder a reader walks in order (find | xargs
 * cat, a dataset loader): folder-order prefetch.
 *
 * The thread never reads or writes data: it wants a file's chunks from
 * the scheduler (SCHED_BACKGROUND; SCHED_READAHEAD for folder-order
 * prefetch, which a reader is about to need) a slice at a time, and
 * waits for the done callbacks. A bounded number of files (below) are in
 * flight, each holding one fblob reference, dropped when the file is
 * done, so the fill keeps few blobs open. Demand reads come first: the
 * scheduler's priorities and its connection reserve see to that.
 *
 * Threads: the fill thread; fill_opened, fill_read, fill_queue,
 * fill_stats and fill_file_status are called from FUSE workers and only
 * take fill->lock for a few steps (fill_queue of a folder: a walk of its
 * subtree in the manifest, no I/O). Done callbacks run on whatever
 * thread completes the chunks and only take fill->lock.
 *
 * Not persisted: files queued by the xattr or the command and not done at
 * unmount are not queued again by the next mount (prefetch=all queues
 * everything again, and chunks already DONE cost nothing; run hollowfs
 * prefetch again for the rest).
 */
#ifndef HOLLOWFS_FS_FILL_H
#define HOLLOWFS_FS_FILL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fs;
struct fill;

/*
 * Folder-order prefetch: how far ahead of a walking reader. The window
 * starts at FILL_WALK_FILES files and doubles each time the reader
 * catches up with it (reads a file the walk has queued but not finished),
 * up to FILL_WALK_PER_CONN files per connection (-o connections), at most
 * FILL_WALK_FILES_MAX; never more than FILL_WALK_BYTES of files. Small
 * files cost a round trip each per connection, so the walk only passes
 * 1/RTT files/s per connection if more files are queued than connections
 * are busy: with 16 connections at 20 ms RTT that is about 600 files/s
 * (as many as curl --parallel-max 16 fetches), with 32 about 1,100.
 */
#define FILL_WALK_FILES 32
#define FILL_WALK_PER_CONN 3
#define FILL_WALK_FILES_MAX 192
#define FILL_WALK_BYTES (16u << 20)
/*
 * Files in flight at once, in all, each holding one open blob: the
 * largest walk window and FILL_MAX_BACKGROUND more, at most half of the
 * blobs the descriptor limit allows (nofile_blob_budget). Of them, at
 * most FILL_MAX_BACKGROUND for the background queue (the rest are kept
 * for folder-order prefetch, so a big fill never delays it).
 */
#define FILL_MAX_BACKGROUND 8
/* A file's chunks are wanted this many bytes at a time. */
#define FILL_SLICE_BYTES (64u << 20)

/*
 * Allocates the fill of fs (fs_attach done: it borrows fs, its manifest
 * and its scheduler, which must outlive it). No thread yet. Returns 0 or
 * -ENOMEM.
 */
int fill_new(struct fs *fs, struct fill **out)
	__attribute__((warn_unused_result));

/* Starts the thread once the mount is up; with prefetch=all, queues
 * every file. Returns 0 or a pthread_create error. */
int fill_start(struct fill *f) __attribute__((warn_unused_result));

/*
 * Stops the thread: unregisters every want it has in flight (chunks
 * already queued stay queued until the scheduler stops), drops its fblob
 * references and joins. Prompt: waits on no transfer. Call at unmount
 * before sched_shutdown/engine_free. Idempotent; a no-op without
 * fill_start.
 */
void fill_stop(struct fill *f);

/* fill_stop, then frees. Accepts NULL. */
void fill_free(struct fill *f);

/* File idx was opened: with prefetch=open or all it is completed in the
 * background, after what is queued already. Cheap; any thread. These
 * and the functions below accept a NULL fill (no fill: nothing done). */
void fill_opened(struct fill *f, uint64_t idx);

/* A read of file idx: folder-order prefetch (see above). Cheap (one
 * lock, a few steps); call on every read, or at least the first read of
 * each handle. */
void fill_read(struct fill *f, uint64_t idx);

/*
 * Queues file idx, or with recursive every file under folder idx (a
 * folder without recursive queues its own files only). Returns 0,
 * -ENOENT (no such entry) or -ESHUTDOWN (the fill was stopped).
 */
int fill_queue(struct fill *f, uint64_t idx, bool recursive)
	__attribute__((warn_unused_result));

struct fill_stats {
	uint64_t files_queued, files_done, files_failed; /* since mount */
	uint64_t bytes_queued, bytes_done; /* of those files */
	uint64_t files_inflight;
};

void fill_stats(struct fill *f, struct fill_stats *st);

/*
 * What the fill knows of file idx, for a user.hollowfs.prefetch getxattr:
 * "none" (never queued), "queued", "running", "done", or "failed: REASON"
 * (the first error of its last fill). Writes a NUL-terminated string.
 */
void fill_file_status(struct fill *f, uint64_t idx, char *buf, size_t len);

#endif
