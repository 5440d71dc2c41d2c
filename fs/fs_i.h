/*
 * fs_i.h: the fs state shared by fs/inode.c and fs/ops.c.
 *
 * After fs_attach the manifest, the source and everything in struct fs
 * but the _Atomic fields are read-only, so operations read them from any
 * worker thread without a lock.
 */
#ifndef HOLLOWFS_FS_FS_I_H
#define HOLLOWFS_FS_FS_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#include "fs/fs.h"
#include "state/manifest.h"

struct fblob;
struct sched_peek;

/* Attribute and entry timeouts: a pinned snapshot never changes. */
#define FS_TIMEOUT_S 86400.0

/* Seconds between two EIO warnings for one file. */
#define FS_WARN_INTERVAL_S 60

struct fs_inode {
	/* Monotonic second of the last warning about this file + 1, or 0. */
	_Atomic int64_t warned_s;
	uint32_t nlink; /* folders: 2 + subfolders; files: 1 */
	/* .safetensors and .gguf files: their tensor map and format-aware
	 * readahead (fetch/prefetch.h), owned, until fs_free; else NULL. */
	struct prefetch_file *pf;
};

/*
 * Links the open file handles of a mount, so that fs_free frees the ones
 * the kernel never released (unmounted while files were open). Must be
 * the first member of a handle: fs_free frees it as one block.
 */
struct fs_open_link {
	struct fs_open_link *prev, *next; /* fs->open_lock */
	/* The handle's reference to its blob (NULL for an empty file):
	 * dropped by the release, or by fs_detach for a handle no release
	 * came for. */
	struct fblob *fb;
};

struct fs {
	struct fs_opts opts;
	pthread_mutex_t open_lock; /* guards open_list; then nothing */
	struct fs_open_link open_list; /* sentinel of open handles */
	struct source *source; /* borrowed */
	struct manifest *manifest; /* borrowed, finished */
	struct sched *sched; /* borrowed */
	struct fs_inode *inodes; /* manifest->n of them, owned */
	struct fill *fill; /* the background fill, owned (fs/fill.h) */
	uint64_t total_bytes; /* over files, for statfs */
	size_t nfiles;
	/* Counters of the stats xattr (fs/stats.h), relaxed. */
	_Atomic uint64_t st_reads, st_read_errors;
	_Atomic uint64_t st_bytes_served, st_bytes_from_cache;
};

/* The entry of inode ino, with its index in *idx; NULL when ino is not
 * an inode of the manifest. */
const struct mentry *fs_entry(const struct fs *fs, uint64_t ino, uint64_t *idx);

/* Registers and unregisters an open handle (see struct fs_open_link). */
void fs_open_add(struct fs *fs, struct fs_open_link *l);
void fs_open_del(struct fs *fs, struct fs_open_link *l);

/* Attributes of entry idx: 0444 files, 0555 folders, owned by opts. */
void fs_fill_attr(const struct fs *fs, uint64_t idx, struct stat *st);

/*
 * A new reference to the fblob of file idx (drop it with fblob_put),
 * opening its blob through sched_open when it is not open. Returns 0 or
 * sched_open's error.
 */
int fs_inode_fblob(struct fs *fs, uint64_t idx, struct fblob **out)
	__attribute__((warn_unused_result));

/* What the cache holds of file idx, without opening or creating
 * anything when its blob is not open (sched_peek). */
int fs_inode_peek(struct fs *fs, uint64_t idx, struct sched_peek *p)
	__attribute__((warn_unused_result));

/*
 * Logs "what: 'path': strerror(-err)" at WARN for file idx, at most once
 * every FS_WARN_INTERVAL_S seconds per file (a failing read is retried
 * by every 4 KiB read of a program; one line says it).
 */
void fs_warn(struct fs *fs, uint64_t idx, const char *what, int err);

#endif
