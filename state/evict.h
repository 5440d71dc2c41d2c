/*
 * evict: how much space the cache takes, and giving it back (DESIGN.md
 * "Cache layout"), shared by the daemon's evictor thread and `hollowfs
 * gc`.
 *
 * Usage is allocated blocks (st_blocks * 512), never apparent sizes (blob
 * data files are sparse), of every file under blobs/. "Last used" is the
 * mtime of a blob's lock file (cache_blob_touch, at every open), or of its
 * data file when it has no lock file.
 *
 * A blob is evicted only under its in-use lock held exclusively
 * (CACHE_INUSE_BYTE, state/cache.h), taken without waiting: a blob any
 * process has open (even this one, through another open file
 * description) is busy and left alone. Its files go in this order: the
 * sidecar (.state) first, then the .verified marker, the data file, the
 * sums and the lock file last; a crash between any two leaves a data file
 * without a sidecar (trusted for nothing: its chunks are probed against
 * their sums, or fetched again) or only files that the next gc removes
 * as orphans. Unlinking the data file removes our name only: a data file
 * hard-linked into a huggingface_hub export keeps its bytes there.
 *
 * No threads of its own, no locks other than the in-use byte, which is
 * held for the unlinks of one blob and never while waiting for anything;
 * every function may be called from any thread (the caller serializes
 * evictions of its own if it wants them counted once).
 */
#ifndef HOLLOWFS_STATE_EVICT_H
#define HOLLOWFS_STATE_EVICT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache;

/* Temporary files (NAME.tmp.*) younger than this may be being written by
 * a live process: cache_clean_orphans leaves them, and snapshots. */
#define EVICT_TMP_AGE_S 60

struct cache_usage {
	uint64_t bytes; /* allocated bytes of the files under blobs/ */
	uint64_t files; /* regular files under blobs/ */
	uint64_t blobs; /* data files (blobs/ab/HEX) */
	uint64_t fs_size; /* the cache's file system: f_blocks * f_frsize */
	uint64_t fs_free; /* and what an unprivileged user may still use */
};

/*
 * Measures the cache: one readdir per folder and one fstatat per file
 * (no open), so it is cheap enough to call every few seconds on 100,000
 * blobs. Files that vanish meanwhile are not counted. Returns 0 or the
 * error of reading a folder.
 */
int cache_usage(const struct cache *c, struct cache_usage *u)
	__attribute__((warn_unused_result));

/* The default of cache_min_free: 5% of the file system. */
uint64_t cache_min_free_default(const struct cache_usage *u);

/*
 * What usage must come down to so that it is at most max_bytes (0: no
 * limit) and at least min_free bytes of the file system are free: the
 * smaller of max_bytes and bytes - (min_free - fs_free). Saturates at 0.
 */
uint64_t evict_target(const struct cache_usage *u, uint64_t max_bytes,
		      uint64_t min_free);

struct evict_entry {
	char hex[33]; /* the blob's name */
	uint64_t bytes; /* allocated bytes of all its files */
	int64_t last_used_ns; /* lock file mtime, else data file mtime */
	uint64_t nlink; /* of its data file; 0: it has none (an orphan) */
};

/*
 * Every blob of the cache (every HEX that has a file in blobs/ab/, data
 * file or not), least recently used first (then by name). *out is a new
 * array (free(3)) of *n entries. Returns 0, -ENOMEM, or the error of
 * reading a folder.
 */
int evict_list(const struct cache *c, struct evict_entry **out, size_t *n)
	__attribute__((warn_unused_result));

/*
 * Evicts blob hex: opens its lock file (never creating it; a blob that
 * has none is evicted under a lock file made for the purpose), takes the
 * in-use lock exclusively without waiting, makes sure the lock file is
 * still the one linked there, then removes the blob's files in the order
 * above and releases. With dry_run nothing is removed (nor created).
 * *freed: allocated bytes of the files whose last link went (a data file
 * linked elsewhere too counts 0). Returns 0; -EBUSY when a process has
 * the blob open (or it is being evicted or made right now); -ENOENT when
 * it has no files; -EINVAL for a bad hex; or the error of an unlink (the
 * files after it in the order are left).
 */
int evict_blob(const struct cache *c, const char *hex, bool dry_run,
	       uint64_t *freed) __attribute__((warn_unused_result));

struct evict_count {
	uint64_t n; /* files, or blobs */
	uint64_t bytes; /* allocated bytes */
};

struct evict_result {
	struct evict_count blobs; /* blobs evicted (bytes: cache usage) */
	uint64_t disk_bytes; /* of those, freed on the disk (not linked
			      * elsewhere) */
	struct evict_count orphans; /* sidecars, sums, locks, markers of
				     * blobs without a data file */
	struct evict_count tmp; /* stale temporary files */
	struct evict_count snapshots; /* unreferenced snapshot manifests */
	struct evict_count busy; /* blobs left: in use by some process */
	uint64_t skipped; /* blobs the skip callback kept */
	uint64_t errors; /* files or blobs that could not be removed */
};

/*
 * Evicts least recently used blobs that no process has open and that
 * skip (when not NULL) does not keep (the daemon keeps the blobs it has
 * open itself) until cache usage is at most target_bytes. Adds to *r
 * (which the caller zeroes): what went, what was busy or skipped. With
 * dry_run, says what would go. Returns 0 (also when the target could not
 * be reached: r says why), or the error of measuring or listing.
 */
int evict_to(const struct cache *c, uint64_t target_bytes,
	     bool (*skip)(void *arg, const char *hex), void *arg, bool dry_run,
	     struct evict_result *r) __attribute__((warn_unused_result));

/*
 * Removes what no blob or mount needs; adds to *r what it removed (or,
 * with dry_run, would remove):
 *   - blobs/ab/HEX.state, .sums, .lock, .verified of a HEX whose data file
 *     is missing, under the in-use lock held exclusively (a process making
 *     a blob holds it shared from before its data file exists, so such a
 *     blob is busy, never an orphan), and checked missing again under it;
 *   - temporary files (NAME.tmp.*) in blobs/ab/, snapshots/KEY/ and
 *     refs/KEY/ older than EVICT_TMP_AGE_S;
 *   - snapshot manifests (snapshots/KEY/VERSION.json) that no ref of their
 *     source (refs/KEY/REF, which names a VERSION) points to, except the
 *     newest one of each KEY (so an offline remount of the last revision
 *     mounted still works) and any younger than EVICT_TMP_AGE_S (a mount
 *     saves the manifest, then its ref).
 * Refs, blob data files and anything it does not recognize are left.
 * Returns 0 or the error of reading a layout folder; a file that cannot
 * be removed counts in r->errors.
 */
int cache_clean_orphans(const struct cache *c, bool dry_run,
			struct evict_result *r)
	__attribute__((warn_unused_result));

#endif
