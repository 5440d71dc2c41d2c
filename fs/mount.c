/*
 * mount.c: one mounted snapshot (see fs/mount.h): the order of a mount,
 * daemonizing, libfuse's log messages, signals and the session loop.
 *
 * Threads: mount_open() runs on the main thread before any other thread
 * exists until engine_new(); the engine, the scheduler's threads and
 * libfuse's workers then call back into the mount only through
 * on_verified() and on_corrupt(), which read fields set before the
 * snapshot was published (ready). Lock order: captured_lock only, held
 * for a copy.
 */
#define FUSE_USE_VERSION 312

#include "fs/mount.h"

#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fetch/engine.h"
#include "fetch/evictor.h"
#include "fetch/sched.h"
#include "fetch/source.h"
#include "fs/fs.h"
#include "state/cache.h"
#include "state/fsutil.h"
#include "state/hlog.h"
#include "state/manifest.h"

/* statfs's f_type of a FUSE mount. */
#define FUSE_SUPER_MAGIC 0x65735546

/* Exit statuses the daemon parent passes on (DESIGN.md "Command line"). */
enum { MOUNT_EXIT_OK = 0, MOUNT_EXIT_ERR = 1 };

struct mount {
	struct fuse_session *se;
	struct fs *fs;
	struct source *src;
	struct cache *cache;
	struct engine *engine;
	struct sched *sched;
	struct evictor *ev; /* the cache's size limit */
	struct manifest *m;
	char *mnt; /* the mountpoint's real path (owned) */
	FILE *logf; /* -o log=, or NULL (owned) */
	int notify_fd; /* daemon child: the pipe to the parent */
	unsigned int max_threads;
	uint64_t kernel_readahead; /* bytes for read_ahead_kb, 0: leave */
	pthread_t ra_thread; /* sets it once INIT is answered */
	bool ra_started;
	bool handlers; /* libfuse's signal handlers are set */
	bool mounted;
	/* Set once the snapshot is listed and the session exists: the
	 * scheduler's callbacks may come earlier (at open) and then do
	 * nothing. */
	_Atomic bool ready;
};

/* ---- libfuse's messages ---- */

enum fuse_log_mode {
	FLOG_PLAIN, /* before the mount: warnings as plain lines */
	FLOG_CAPTURE, /* during the mount: keep the error for our line */
	FLOG_HLOG, /* mounted: into the log sink */
};

static _Atomic int fuse_log_mode = FLOG_PLAIN;
static pthread_mutex_t captured_lock = PTHREAD_MUTEX_INITIALIZER;
static char captured[1024]; /* protected by captured_lock */

/* Sends one complete line of libfuse's to where it belongs now. */
static void fuse_log_line(enum fuse_log_level level, const char *msg)
{
	int mode = atomic_load(&fuse_log_mode);
	enum hlog_level hl;

	if (mode == FLOG_CAPTURE && level <= FUSE_LOG_ERR) {
		pthread_mutex_lock(&captured_lock);
		snprintf(captured, sizeof(captured), "%s", msg);
		pthread_mutex_unlock(&captured_lock);
		return;
	}
	if (mode != FLOG_HLOG && level <= FUSE_LOG_WARNING) {
		if (!strncmp(msg, "fuse: ", 6))
			msg += 6;
		fprintf(stderr, "hollowfs: %s\n", msg);
		return;
	}
	if (level <= FUSE_LOG_ERR)
		hl = HLOG_ERR;
	else if (level == FUSE_LOG_WARNING)
		hl = HLOG_WARN;
	else if (level < FUSE_LOG_DEBUG)
		hl = HLOG_INFO;
	else
		hl = HLOG_DEBUG;
	hlog(hl, HLOG_FS, "%s", msg);
}

/*
 * libfuse's log function. libfuse builds some lines with several calls
 * ("unknown option(s): `", "-o ", "x'", "\n"), so pieces are gathered
 * per thread until the newline.
 */
static __attribute__((format(printf, 2, 0))) void
on_fuse_log(enum fuse_log_level level, const char *fmt, va_list ap)
{
	static _Thread_local char line[1024];
	static _Thread_local size_t len;
	bool eol;

	if (len < sizeof(line) - 1)
		vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	len = strlen(line);
	eol = len && line[len - 1] == '\n';
	if (!eol && len < sizeof(line) - 1)
		return;
	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		line[--len] = '\0';
	if (len)
		fuse_log_line(level, line);
	len = 0;
	line[0] = '\0';
}

void mount_log_init(void)
{
	fuse_set_log_func(on_fuse_log);
}

/* ---- daemonizing ---- */

static volatile sig_atomic_t child_pid;

/* The parent: a ^C while the child lists and mounts stops the child. */
static void forward_signal(int sig)
{
	(void)sig;
	if (child_pid > 0)
		kill((pid_t)child_pid, SIGTERM);
}

static __attribute__((noreturn)) void wait_for_child(pid_t pid, int rfd)
{
	struct sigaction sa;
	char status = 1;
	ssize_t n;
	int ws = 0;

	child_pid = pid;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = forward_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	do
		n = read(rfd, &status, 1);
	while (n < 0 && errno == EINTR);
	if (n == 1 && status == 0)
		_exit(MOUNT_EXIT_OK);
	/* The child failed and said why: exit with its status. */
	while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(ws) && WEXITSTATUS(ws))
		_exit(WEXITSTATUS(ws));
	_exit(MOUNT_EXIT_ERR);
}

/*
 * Forks. The parent waits in wait_for_child and never returns; the child
 * returns 0 with *notify_fd, on which it writes one byte 0 once mounted
 * (or exits, which the parent reads as a failure). A negative errno after
 * the error line.
 */
static int daemonize_early(int *notify_fd)
{
	int pfd[2], err;
	pid_t pid;

	*notify_fd = -1;
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		err = -errno;
		goto fail;
	}
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		err = -errno;
		close(pfd[0]);
		close(pfd[1]);
		goto fail;
	}
	if (pid > 0) {
		close(pfd[1]);
		wait_for_child(pid, pfd[0]);
	}
	close(pfd[0]);
	if (setsid() < 0 || chdir("/") < 0) {
		err = -errno;
		close(pfd[1]);
		goto fail;
	}
	*notify_fd = pfd[1];
	return 0;
fail:
	fprintf(stderr, "hollowfs: cannot daemonize: %s\n", strerror(-err));
	return err;
}

/* The child is mounted: leave the terminal and tell the parent. The log
 * sink was chosen before the threads started (set_log_sink). */
static void detach_from_terminal(int notify_fd)
{
	char ok = 0;
	int fd;

	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	while (write(notify_fd, &ok, 1) < 0 && errno == EINTR)
		;
	close(notify_fd);
}

/*
 * The log sink and level for the life of the process, set while no other
 * thread runs: in the foreground, the log file or stderr, everything; in
 * a daemon child, the log file or syslog, everything, as it will be once
 * detached (its terminal only gets the one line of a failure).
 */
static void set_log_sink(const struct mount *m, bool foreground)
{
	if (foreground)
		hlog_set_sink(m->logf ? m->logf : stderr, false);
	else
		hlog_set_sink(m->logf, !m->logf);
	hlog_set_level(HLOG_DEBUG);
}

/* ---- the scheduler's callbacks ---- */

/*
 * on_verified (no lock held): a complete file passed its hash; the
 * source decides what follows (fetch/source.h source_blob_verified).
 */
static void on_verified(void *arg, struct fblob *fb)
{
	struct mount *m = arg;

	if (!atomic_load(&m->ready))
		return;
	source_blob_verified(m->src, m->m, m->cache, fb);
}

/*
 * on_corrupt (no lock held): a complete file failed its hash and was
 * discarded. The kernel may still hold its pages (keep_cache), so they
 * are dropped for every path with that content, and reads come to us and
 * fail with EIO until a remount.
 */
static void on_corrupt(void *arg, struct fblob *fb)
{
	struct mount *m = arg;
	const char *hash = fblob_hash(fb);
	size_t i;

	if (!atomic_load(&m->ready) || !hash)
		return;
	for (i = 0; i < m->m->n; i++) {
		const struct mentry *e = &m->m->entries[i];

		if (e->type == MENTRY_FILE && e->content_id &&
		    !strcmp(e->content_id, hash))
			fuse_lowlevel_notify_inval_inode(m->se, i + 1, 0, 0);
	}
}

/* ---- the kernel's readahead for the mount ---- */

struct ra_job {
	char *mnt; /* owned copy */
	uint64_t bytes;
};

/*
 * The kernel caps a FUSE mount's readahead at its bdi's read_ahead_kb
 * (128 KiB unless set), taking the smaller of it and our max_readahead
 * when it processes the INIT reply. So the bdi's value is raised after
 * that: the stat below waits for INIT to be answered (every request
 * does), then names the bdi (MAJ:MIN of st_dev). Files opened from then
 * on get the larger window. Only root may write it: otherwise one debug
 * line and the kernel's value stays.
 */
static void *kernel_readahead_main(void *arg)
{
	struct ra_job *j = arg;
	char path[96], val[32];
	struct statfs sf;
	struct stat st;
	int fd, len;

	/* Ours still (not the folder under it after an early unmount). */
	if (statfs(j->mnt, &sf) < 0 || sf.f_type != FUSE_SUPER_MAGIC) {
		hlog(HLOG_DEBUG, HLOG_FS,
		     "kernel readahead left as it is: '%s' is not mounted",
		     j->mnt);
		goto out;
	}
	if (stat(j->mnt, &st) < 0) {
		hlog(HLOG_DEBUG, HLOG_FS,
		     "kernel readahead left as it is: cannot stat '%s': %s",
		     j->mnt, strerror(errno));
		goto out;
	}
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb",
		 major(st.st_dev), minor(st.st_dev));
	len = snprintf(val, sizeof(val), "%" PRIu64 "\n",
		       (j->bytes + 1023) / 1024);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, val, (size_t)len) != len) {
		hlog(HLOG_DEBUG, HLOG_FS,
		     "kernel readahead left at the kernel's (128 KiB unless "
		     "set): cannot write %s: %s",
		     path, strerror(errno));
	} else {
		hlog(HLOG_DEBUG, HLOG_FS,
		     "kernel readahead set to %" PRIu64 " KiB (%s)",
		     (j->bytes + 1023) / 1024, path);
	}
	if (fd >= 0)
		close(fd);
out:
	free(j->mnt);
	free(j);
	return NULL;
}

/* Starts kernel_readahead_main; failing to is only a debug line. */
static void start_kernel_readahead(struct mount *m)
{
	struct ra_job *j;

	if (!m->kernel_readahead || !m->mnt)
		return;
	j = calloc(1, sizeof(*j));
	if (j)
		j->mnt = strdup(m->mnt);
	if (!j || !j->mnt) {
		free(j);
		return;
	}
	j->bytes = m->kernel_readahead;
	if (pthread_create(&m->ra_thread, NULL, kernel_readahead_main, j)) {
		hlog(HLOG_DEBUG, HLOG_FS,
		     "kernel readahead left as it is: "
		     "cannot start a thread");
		free(j->mnt);
		free(j);
		return;
	}
	m->ra_started = true;
}

/* ---- the steps of mount_open ---- */

/* Checks MOUNTPOINT; *out is its real path. An errno after the line. */
static int check_mountpoint(const char *mnt, char **out)
{
	struct stat st;
	int err;

	*out = NULL;
	if (stat(mnt, &st) < 0)
		goto fail;
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr,
			"hollowfs: mountpoint '%s' is not a folder: "
			"%s\n",
			mnt, strerror(ENOTDIR));
		return -ENOTDIR;
	}
	*out = realpath(mnt, NULL);
	if (*out)
		return 0;
fail:
	err = -errno;
	fprintf(stderr, "hollowfs: mountpoint '%s' is not accessible: %s\n",
		mnt, strerror(-err));
	return err;
}

/* The log file, the fs and the session: what fails on bad options. */
static int open_session(struct mount *m, const struct mount_opts *o)
{
	int err;

	if (o->log_file) {
		m->logf = fopen(o->log_file, "ae");
		if (!m->logf) {
			err = -errno;
			fprintf(stderr,
				"hollowfs: cannot open log file '%s': "
				"%s\n",
				o->log_file, strerror(-err));
			return err;
		}
		setvbuf(m->logf, NULL, _IOLBF, 0);
	}
	if (o->foreground)
		set_log_sink(m, true);
	err = fs_new(&o->fs, &m->fs);
	if (err) {
		fprintf(stderr, "hollowfs: %s\n", strerror(-err));
		return err;
	}
	/* Parses libfuse's options: an unknown one fails here, at once. */
	m->se = fuse_session_new(o->args, &fs_ll_ops, sizeof(fs_ll_ops), m->fs);
	if (!m->se)
		return -ENOPROTOOPT; /* libfuse said why */
	return 0;
}

/* The source, the cache folder and the mountpoint. */
static int open_source_and_cache(struct mount *m, const struct mount_opts *o,
				 bool *offline)
{
	char errbuf[1024], cache_dir[PATH_MAX];
	int err;

	errbuf[0] = '\0';
	err = source_open(o->source, &o->src, &m->src, errbuf, sizeof(errbuf));
	if (err) {
		fprintf(stderr, "hollowfs: %s\n",
			errbuf[0] ? errbuf : strerror(-err));
		return err;
	}
	*offline = o->offline || source_env_offline(m->src);
	err = cache_resolve_dir(o->cache, cache_dir, sizeof(cache_dir));
	if (err) {
		fprintf(stderr,
			"hollowfs: cannot choose a cache directory "
			"(set -o cache=DIR): %s\n",
			strerror(-err));
		return err;
	}
	/* The cache is private: one another user can write could plant
	 * links and bytes that every reader of the mount is served. */
	err = cache_check_private(cache_dir, errbuf, sizeof(errbuf));
	if (err == -EPERM) {
		fprintf(stderr,
			"hollowfs: cache directory '%s' is not private (%s): "
			"refusing it; use a folder of your own that only you "
			"can write (chmod 700), or -o cache=DIR\n",
			cache_dir, errbuf);
		return err;
	}
	err = cache_new(cache_dir, &m->cache);
	if (err) {
		fprintf(stderr,
			"hollowfs: cache directory '%s' is not "
			"%s: %s\n",
			cache_dir,
			err == -EPERM || err == -ELOOP ? "usable" : "writable",
			strerror(-err));
		return err;
	}
	return check_mountpoint(o->mountpoint, &m->mnt);
}

/* The engine and scheduler threads, then the snapshot and the tree. */
static int start_and_list(struct mount *m, const struct mount_opts *o,
			  bool offline)
{
	struct engine_opts eo;
	struct sched_opts so;
	char errbuf[1024];
	bool used_saved = false;
	const char *version;
	int err;

	engine_opts_default(&eo);
	eo.connections = (int)o->connections;
	eo.connect_timeout_ms = (int)o->connect_timeout_s * 1000;
	eo.stall_timeout_ms = (int)o->timeout_s * 1000;
	eo.retries = (int)o->retries;
	eo.budget_ms = (int)o->deadline_s * 1000;
	eo.proxy = o->proxy;
	err = engine_new(&eo, &m->engine);
	if (err) {
		fprintf(stderr, "hollowfs: cannot start the fetch engine: %s\n",
			strerror(-err));
		return err;
	}
	sched_opts_default(&so);
	so.chunk_size = o->fs.chunk_size;
	/* Blobs are closed when idle, so any number of files is served
	 * under the descriptor limit (raised to the hard one first). */
	so.max_open_blobs = nofile_blob_budget(nofile_raise(), o->connections,
					       o->max_threads);
	so.offline = offline;
	so.on_verified = on_verified;
	so.on_corrupt = on_corrupt;
	so.on_verified_arg = m;
	engine_set_background_rate(m->engine, o->fs.prefetch_rate);
	err = sched_new(&so, m->cache, m->engine, &m->sched);
	if (err) {
		fprintf(stderr, "hollowfs: cannot start the scheduler: %s\n",
			strerror(-err));
		return err;
	}
	/* Measures the cache now, and prunes it if it is over its limit. */
	err = evictor_new(m->cache, m->sched, o->cache_max, o->cache_min_free,
			  &m->ev);
	if (err) {
		fprintf(stderr, "hollowfs: cannot start the evictor: %s\n",
			strerror(-err));
		return err;
	}
	sched_set_evictor(m->sched, m->ev);

	errbuf[0] = '\0';
	err = source_snapshot(m->src, m->engine, m->cache, offline, &m->m,
			      &used_saved, errbuf, sizeof(errbuf));
	if (err) {
		fprintf(stderr, "hollowfs: %s\n",
			errbuf[0] ? errbuf : strerror(-err));
		return err;
	}
	version = m->m->version ? m->m->version : "(unknown)";
	if (used_saved && offline) {
		hlog(HLOG_INFO, HLOG_FS,
		     "offline: serving snapshot %s of '%s' from the cache",
		     version, o->source);
	} else if (used_saved) {
		hlog(HLOG_WARN, HLOG_FS,
		     "'%s' is unreachable: serving snapshot %s saved in the "
		     "cache",
		     o->source, version);
		if (!o->foreground) /* the terminal is still ours */
			fprintf(stderr,
				"hollowfs: warning: '%s' is "
				"unreachable: serving snapshot %s saved in the "
				"cache\n",
				o->source, version);
	}
	atomic_store(&m->ready, true);
	err = fs_attach(m->fs, m->src, m->m, m->sched);
	if (err)
		fprintf(stderr, "hollowfs: cannot build the tree of '%s': %s\n",
			o->source, strerror(-err));
	return err;
}

/* Mounts the session; the error line carries libfuse's reason. */
static int mount_session(struct mount *m)
{
	char why_buf[sizeof(captured)];
	const char *why = why_buf;
	int res;

	if (fuse_set_signal_handlers(m->se)) {
		fprintf(stderr, "hollowfs: cannot set signal handlers\n");
		return -EIO;
	}
	m->handlers = true;
	atomic_store(&fuse_log_mode, FLOG_CAPTURE);
	res = fuse_session_mount(m->se, m->mnt);
	atomic_store(&fuse_log_mode, FLOG_PLAIN);
	if (!res) {
		m->mounted = true;
		atomic_store(&fuse_log_mode, FLOG_HLOG);
		return 0;
	}
	pthread_mutex_lock(&captured_lock);
	memcpy(why_buf, captured, sizeof(why_buf));
	pthread_mutex_unlock(&captured_lock);
	if (!strncmp(why, "fuse: ", 6))
		why += 6;
	if (*why)
		fprintf(stderr, "hollowfs: cannot mount on '%s': %s\n", m->mnt,
			why);
	else
		fprintf(stderr, "hollowfs: cannot mount on '%s'\n", m->mnt);
	return -EIO;
}

int mount_open(const struct mount_opts *o, struct mount **out)
{
	struct mount *m;
	bool offline = false;
	int err;

	*out = NULL;
	m = calloc(1, sizeof(*m));
	if (!m) {
		fprintf(stderr, "hollowfs: out of memory\n");
		return -ENOMEM;
	}
	m->notify_fd = -1;
	m->max_threads = o->max_threads;
	m->kernel_readahead = o->fs.kernel_readahead;
	hlog_set_debug_cats(o->debug_cats);
	if (!o->foreground) {
		/* Until the fork, only what stops the mount reaches the
		 * terminal: warnings and errors. */
		hlog_set_level(HLOG_WARN);
	}
	err = open_session(m, o);
	if (!err)
		err = open_source_and_cache(m, o, &offline);
	if (err)
		goto fail;
	if (!o->foreground) {
		err = daemonize_early(&m->notify_fd);
		if (err)
			goto fail;
		/* The child, still alone: no thread has started yet. */
		set_log_sink(m, false);
	}
	/* Only the child (or the foreground process) from here on. */
	signal(SIGPIPE, SIG_IGN);
	err = start_and_list(m, o, offline);
	if (!err)
		err = mount_session(m);
	if (!err) {
		err = fs_start(m->fs);
		if (err)
			fprintf(stderr, "hollowfs: cannot start the fill: %s\n",
				strerror(-err));
	}
	if (err)
		goto fail;
	if (m->notify_fd >= 0) {
		detach_from_terminal(m->notify_fd);
		m->notify_fd = -1;
	}
	hlog(HLOG_INFO, HLOG_FS,
	     "mounted '%s' on '%s': %zu files, %" PRIu64 " bytes", o->source,
	     m->mnt, manifest_file_count(m->m), manifest_total_bytes(m->m));
	*out = m;
	return 0;
fail:
	mount_free(m);
	return err;
}

int mount_run(struct mount *m)
{
	struct fuse_loop_config *cfg;
	int res;

	cfg = fuse_loop_cfg_create();
	if (!cfg)
		return -ENOMEM;
	fuse_loop_cfg_set_max_threads(cfg, m->max_threads);
	fuse_loop_cfg_set_clone_fd(cfg, 0);
	start_kernel_readahead(m);
	res = fuse_session_loop_mt(m->se, cfg);
	fuse_loop_cfg_destroy(cfg);
	if (res < 0)
		hlog(HLOG_ERR, HLOG_FS, "session loop failed: %s",
		     strerror(-res));
	else
		hlog(HLOG_INFO, HLOG_FS, "unmounting '%s'", m->mnt);
	return res < 0 ? res : 0;
}

void mount_free(struct mount *m)
{
	if (!m)
		return;
	/*
	 * Parked reads are answered (with errors) by engine_free and
	 * sched_free while the session still exists; then unmount.
	 */
	fs_stop(m->fs);
	engine_free(m->engine);
	fs_detach(m->fs);
	sched_free(m->sched);
	evictor_free(m->ev);
	if (m->mounted)
		fuse_session_unmount(m->se);
	if (m->handlers)
		fuse_remove_signal_handlers(m->se);
	if (m->se)
		fuse_session_destroy(m->se);
	/* Unmounted and the channel closed: its stat has returned. */
	if (m->ra_started)
		pthread_join(m->ra_thread, NULL);
	fs_free(m->fs);
	manifest_free(m->m);
	source_free(m->src);
	cache_free(m->cache);
	if (m->notify_fd >= 0)
		close(m->notify_fd); /* the parent reads a failure */
	free(m->mnt);
	if (m->logf) {
		hlog_set_sink(NULL, false);
		fclose(m->logf);
	}
	free(m);
}
