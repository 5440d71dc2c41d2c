/*
 * mount: one mounted snapshot, from the options to the unmount
 * (DESIGN.md "The FUSE side", "Command line").
 *
 *   mount_open()   opens everything in this order: the log file, the fs
 *                  and the FUSE session (so an unknown option fails at
 *                  once), the source, the cache, the mountpoint check;
 *                  then daemonizes unless foreground; then starts the
 *                  engine and the scheduler, lists the snapshot, mounts
 *                  and, when daemonized, leaves the terminal;
 *   mount_run()    runs the multithreaded session loop until unmount
 *                  (fusermount3 -u, umount, SIGTERM, SIGINT, SIGHUP);
 *   mount_free()   stops the engine and the scheduler, unmounts, frees.
 *
 * Daemonizing is early: the parent waits on a pipe for one status byte
 * from the child and exits 0 once it reports "mounted", or with the
 * child's status when the child exits first, so mount_open() returns in
 * the child only. The child has printed its one error line to the
 * inherited stderr by then, so every failure, listing errors included,
 * reaches the terminal, and nothing is left mounted.
 *
 * Logging: the sink and level are set before any thread starts. With
 * foreground, logs go to stderr or the log file from the start. A daemon
 * child switches to the log file or syslog right after the fork, before
 * the engine and scheduler threads start; until it leaves the terminal
 * its only terminal output is the one error line of a failure (and the
 * warning that a saved snapshot is served). libfuse's own messages are
 * routed into the same sink once mounted.
 *
 * Not thread-safe: one thread opens, runs and frees a mount.
 */
#ifndef HOLLOWFS_FS_MOUNT_H
#define HOLLOWFS_FS_MOUNT_H

#include <stdbool.h>
#include <stdint.h>

#include "fetch/source.h"
#include "fs/fs.h"

struct fuse_args;

/* What to mount and how; strings borrowed for mount_open(). */
/* cache_min_free's default: 5% of the cache's filesystem. */
#define MOUNT_MIN_FREE_DEFAULT UINT64_MAX

struct mount_opts {
	const char *source; /* SOURCE as given */
	const char *mountpoint;
	const char *cache; /* -o cache=DIR, or NULL for the default */
	const char *log_file; /* -o log=FILE, or NULL */
	bool foreground; /* -f: no daemon; logs to stderr */
	bool offline; /* -o offline */
	int debug_cats; /* HLOG_* categories of debug logs */
	unsigned int max_threads; /* FUSE worker threads */
	unsigned int connections; /* parallel transfers */
	unsigned int timeout_s; /* stalled transfers */
	unsigned int connect_timeout_s;
	unsigned int retries;
	unsigned int deadline_s; /* a transfer without progress fails */
	const char *proxy; /* -o proxy=, "" for none; NULL: environment */
	struct fs_opts fs; /* owner, chunk size, readahead, prefetch */
	uint64_t cache_max; /* -o cache_max=, bytes; 0: no limit */
	uint64_t cache_min_free; /* bytes to keep free on the cache's
				  * filesystem, or MOUNT_MIN_FREE_DEFAULT */
	struct source_opts src; /* token_file, endpoint, options */
	struct fuse_args *args; /* libfuse's arguments, borrowed */
};

struct mount;

/* Routes libfuse's messages (fuse_set_log_func) to where they belong:
 * plain lines on stderr until a mount has started. Call first. */
void mount_log_init(void);

/*
 * Opens and mounts (see above); in a daemon, only the child returns.
 * Returns 0 with *out, or a negative errno after printing the one line
 * that says what failed ("hollowfs: ..."): -ENOPROTOOPT when an option
 * is not one of this mount's (a usage error), another errno otherwise.
 */
int mount_open(const struct mount_opts *o, struct mount **out)
	__attribute__((warn_unused_result));

/* Serves requests until unmounted: 0, or the loop's negative errno. */
int mount_run(struct mount *m) __attribute__((warn_unused_result));

/* Stops the threads, answers parked reads, unmounts and frees. In a
 * daemon child that failed before mounting, the parent reads the
 * failure. Accepts NULL. */
void mount_free(struct mount *m);

#endif
