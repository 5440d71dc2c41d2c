/*
 * fs: the FUSE side of a mount (DESIGN.md "The FUSE side").
 *
 * A struct fs is what every FUSE operation of fs/ops.c works on: the
 * manifest of the pinned snapshot (inode = manifest index + 1, so
 * FUSE_ROOT_ID is entry 0), the source that says where each file's bytes
 * come from, the scheduler that fetches them, and a per-inode table that
 * keeps each file's fblob from its first open until unmount.
 *
 * Life cycle, in mount.c's order:
 *   fs_new()       before the session is created (it is its userdata);
 *   fs_attach()    once the snapshot is listed, before the mount;
 *   ...            fuse_session_loop_mt() with fs_ll_ops;
 *   fs_detach()    after engine_free(), before sched_free(): drops every
 *                  fblob reference the inode table holds;
 *   fs_free()      after sched_free() (parked reads answered by it may
 *                  still look at the inode table) and after
 *                  fuse_session_destroy().
 */
#ifndef HOLLOWFS_FS_FS_H
#define HOLLOWFS_FS_FS_H

#include <stdint.h>
#include <sys/types.h>

struct fuse_lowlevel_ops;
struct manifest;
struct sched;
struct source;

/* -o prefetch=: which files the background fill completes. */
enum fs_prefetch {
	FS_PREFETCH_NONE, /* none: only what is read */
	FS_PREFETCH_OPEN, /* files that were opened (the default) */
	FS_PREFETCH_ALL, /* every file, small ones first */
};

struct fs_opts {
	uid_t uid; /* owner shown for every entry */
	gid_t gid;
	uint32_t chunk_size; /* bytes; also st_blksize */
	uint64_t readahead_max; /* largest readahead window in bytes;
				 * 0 disables readahead */
	uint64_t kernel_readahead; /* bytes for the bdi's read_ahead_kb,
				    * 0: leave the kernel's */
	enum fs_prefetch prefetch; /* background fill */
	uint64_t prefetch_rate; /* background bytes/s, 0: no cap */
};

struct fs;

/* Allocates an empty fs with a copy of o. Returns 0 or -ENOMEM. */
int fs_new(const struct fs_opts *o, struct fs **out)
	__attribute__((warn_unused_result));

/*
 * Binds the snapshot: borrows src, m (finished) and s, which must outlive
 * the fs, and builds the inode table. Call once, before the mount.
 * Returns 0, -EINVAL (m not finished or empty) or -ENOMEM.
 */
int fs_attach(struct fs *fs, struct source *src, struct manifest *m,
	      struct sched *s) __attribute__((warn_unused_result));

/* Starts the background fill (after the mount) and stops it (at unmount,
 * before engine_free). */
int fs_start(struct fs *fs) __attribute__((warn_unused_result));
void fs_stop(struct fs *fs);

/* Drops the fblob references of the inode table (before sched_free). */
void fs_detach(struct fs *fs);

/* Frees the fs (after fs_detach and sched_free). Accepts NULL. */
void fs_free(struct fs *fs);

/* The low-level operations; the session's userdata is the struct fs. */
extern const struct fuse_lowlevel_ops fs_ll_ops;

#endif
