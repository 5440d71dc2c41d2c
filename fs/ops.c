/*
 * ops.c: the low-level FUSE operations of a mount (DESIGN.md "The FUSE
 * side"). Read-only: every changing operation gets EROFS.
 *
 * A read whose chunks are all DONE is answered at once with
 * fuse_reply_data() from the blob's fd (splice). Otherwise it is parked:
 * a struct pending_read is registered with sched_want() and answered by
 * whoever finishes first: the scheduler's done callback (the thread that
 * completes the last chunk, or the first error), or the interrupt
 * callback when sched_cancel() unregisters the waiter in time. No worker
 * thread ever waits for a chunk.
 *
 * Thread role (DESIGN.md "Threads"): these run on libfuse's worker
 * threads, which answer from the cache (splice), park reads that need
 * chunks and hand work to the scheduler; they never wait on a socket, on
 * a lock held across I/O, or on a hash of a whole file. Parked reads are
 * answered on whichever thread completes them: the engine thread (after
 * curl_multi_perform, never inside a curl callback) or a worker of the
 * pool (file:// sources, probes).
 *
 * Lock order: pending_read->lock, then sched->lock (inside sched_cancel);
 * a handle's prefetch_stream lock (fetch/prefetch.c), then nothing.
 * libfuse calls the interrupt callback holding the request's own lock,
 * which comes before both. No lock of ours is held across a
 * fuse_reply_*, a scheduler call that may call back, or logging.
 */
#define FUSE_USE_VERSION 312

#include "fs/fs.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "fetch/http.h"
#include "fetch/prefetch.h"
#include "fetch/sched.h"
#include "fetch/source.h"
#include "fs/fill.h"
#include "fs/fs_i.h"
#include "fs/shards.h"
#include "fs/stats.h"
#include "state/hlog.h"
#include "state/manifest.h"

#define XATTR_CACHED "user.hollowfs.cached"
#define XATTR_CHUNKS "user.hollowfs.chunks"
#define XATTR_SOURCE "user.hollowfs.source"
#define XATTR_SHA256 "user.hollowfs.sha256"
#define XATTR_STATS "user.hollowfs.stats" /* the root's */
#define XATTR_BLOB "user.hollowfs.blob" /* its name in the cache */
#define XATTR_PREFETCH "user.hollowfs.prefetch" /* set: fill_queue */

/* Per open file, in fi->fh. */
struct fhandle {
	struct fs_open_link link; /* first: fs_free may free it */
	uint64_t idx; /* manifest index */
	struct prefetch_stream ra; /* readahead; its own lock */
};

enum pr_state {
	PR_SETUP, /* op_read is still registering the interrupt hook */
	PR_PARKED, /* the callbacks own the reply */
	PR_DONE, /* done fired during setup: op_read replies */
	PR_CANCELLED, /* interrupted during setup: op_read says EINTR */
	PR_CLAIMED, /* someone is replying */
};

/* A parked read. Freed by whoever replies, after libfuse can no longer
 * call the interrupt callback with it. */
struct pending_read {
	pthread_mutex_t lock;
	fuse_req_t req;
	struct fs *fs;
	struct fblob *fb; /* a reference, dropped by pr_free */
	uint64_t idx; /* manifest index, for log lines */
	uint64_t off;
	size_t len;
	struct sched_waiter *waiter; /* valid while state is SETUP or
					 * PARKED: done has not returned */
	enum pr_state state; /* protected by lock */
	int err; /* protected by lock: done's error */
	bool cancel_tried; /* protected by lock */
};

static struct fs *req_fs(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static void fill_entry(struct fs *fs, uint64_t idx, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = idx + 1;
	e->generation = 1;
	e->attr_timeout = FS_TIMEOUT_S;
	e->entry_timeout = FS_TIMEOUT_S;
	fs_fill_attr(fs, idx, &e->attr);
}

/* ---- setup and metadata ---- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	unsigned long pipe_max = 0;
	FILE *f;

	(void)userdata;
	/* fuse_reply_data() can then move blob pages to the kernel. */
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	/* The snapshot never changes: nothing to invalidate. */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	/*
	 * conn->max_readahead already holds the largest window the kernel
	 * accepts (its bdi's read_ahead_kb, 128 KiB at mount time); keep
	 * it. fs/mount.c raises read_ahead_kb once INIT is answered (-o
	 * kernel_readahead=): the kernel then sends a sequential reader's
	 * data in READs of up to max_pages, several in flight, instead of
	 * 128 KiB ones; our readahead (per handle) works in whole chunks
	 * ahead of them.
	 *
	 * max_pages: libfuse asks for max_write's worth (1 MiB unless
	 * set). A reply spliced from the blob must fit, with its header, in
	 * libfuse's per-thread pipe, which grows to fs.pipe-max-size (1 MiB
	 * by default); a 1 MiB READ does not and is copied instead: a cat
	 * of a cached 1 GiB file ran at 0.85 GB/s against 2.3 GB/s with
	 * 512 KiB READs (README.md, "Readahead, model files and the
	 * kernel"). So READs are at most half the pipe, 128 KiB to 1 MiB.
	 * Nothing is ever written: max_write has no other use here.
	 */
	f = fopen("/proc/sys/fs/pipe-max-size", "re");
	if (!f || fscanf(f, "%lu", &pipe_max) != 1)
		pipe_max = 1ul << 20;
	if (f)
		fclose(f);
	pipe_max /= 2;
	if (pipe_max < 128ul << 10)
		pipe_max = 128ul << 10;
	if (pipe_max > 1ul << 20)
		pipe_max = 1ul << 20;
	if (conn->max_write > pipe_max)
		conn->max_write = (unsigned)pipe_max;
	/*
	 * Background requests (readahead READs, async direct I/O) in
	 * flight: the kernel's default of 12 is one reader's 4 MiB window
	 * in 512 KiB READs and a half; loaders read with many threads.
	 */
	conn->max_background = 64;
	conn->congestion_threshold = 48;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = req_fs(req);
	struct fuse_entry_param e;
	uint64_t pidx, idx;
	int err;

	if (!fs_entry(fs, parent, &pidx)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	err = manifest_lookup(fs->manifest, pidx, name, &idx);
	if (err == -ENOENT) {
		/* A negative entry the kernel may keep: imports and loaders
		 * probe many names that never appear. */
		memset(&e, 0, sizeof(e));
		e.entry_timeout = FS_TIMEOUT_S;
		fuse_reply_entry(req, &e);
		return;
	}
	if (err) {
		fuse_reply_err(req, -err);
		return;
	}
	fill_entry(fs, idx, &e);
	fuse_reply_entry(req, &e);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	/* Inodes are manifest indexes: stable, never freed. */
	(void)ino;
	(void)nlookup;
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count,
			    struct fuse_forget_data *forgets)
{
	(void)count;
	(void)forgets;
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct stat st;
	uint64_t idx;

	(void)fi;
	if (!fs_entry(fs, ino, &idx)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	fs_fill_attr(fs, idx, &st);
	fuse_reply_attr(req, &st, FS_TIMEOUT_S);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = req_fs(req);
	struct statvfs sv;

	(void)ino;
	memset(&sv, 0, sizeof(sv));
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_blocks = (fsblkcnt_t)((fs->total_bytes + 4095) / 4096);
	sv.f_files = (fsfilcnt_t)fs->manifest->n;
	sv.f_namemax = 255;
	sv.f_flag = ST_RDONLY;
	fuse_reply_statfs(req, &sv);
}

/* ---- folders ---- */

static void op_opendir(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	const struct mentry *e;
	uint64_t idx;

	e = fs_entry(fs, ino, &idx);
	if (!e) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (e->type != MENTRY_DIR) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	fi->fh = 0;
	fi->keep_cache = 1; /* listings never change */
	fi->cache_readdir = 1;
	fuse_reply_open(req, fi);
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino,
			  struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

/*
 * Directory offsets are positions: 0 is ".", 1 is "..", 2 + i is child i;
 * an entry's offset is the position of the next one.
 */
static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       bool plus)
{
	struct fs *fs = req_fs(req);
	const struct mentry *dir;
	uint64_t idx, pos;
	size_t used = 0;
	char *buf;

	dir = fs_entry(fs, ino, &idx);
	if (!dir) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (dir->type != MENTRY_DIR) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	for (pos = off < 0 ? 0 : (uint64_t)off; pos < 2 + dir->nchildren;
	     pos++) {
		const char *name;
		uint64_t cidx;
		size_t ent;

		if (pos == 0) {
			name = ".";
			cidx = idx;
		} else if (pos == 1) {
			name = "..";
			cidx = dir->parent;
		} else {
			cidx = dir->children[pos - 2];
			name = fs->manifest->entries[cidx].name;
		}
		if (plus) {
			struct fuse_entry_param e;

			fill_entry(fs, cidx, &e);
			ent = fuse_add_direntry_plus(req, buf + used,
						     size - used, name, &e,
						     (off_t)pos + 1);
		} else {
			struct stat st;

			fs_fill_attr(fs, cidx, &st);
			ent = fuse_add_direntry(req, buf + used, size - used,
						name, &st, (off_t)pos + 1);
		}
		if (ent > size - used)
			break; /* full: the kernel asks again from pos */
		used += ent;
	}
	fuse_reply_buf(req, buf, used);
	free(buf);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			   off_t off, struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, true);
}

/* ---- files ---- */

/* Wants the header chunks of a model file still wanted (at open, and
 * when parsing asks for more). */
static void want_tensor_header(struct fs *fs, struct prefetch_file *pf,
			       struct fblob *fb)
{
	uint64_t hdr_last;
	int err;

	if (!pf || !fb || !prefetch_file_header_want(pf, &hdr_last))
		return;
	err = sched_want(fs->sched, fb, 0, hdr_last, SCHED_READAHEAD, NULL,
			 NULL, NULL);
	if (err < 0)
		hlog(HLOG_DEBUG, HLOG_FS,
		     "want of the header of '%s' failed: %s", fblob_name(fb),
		     strerror(-err));
}

/*
 * The tensor map of a model file (fetch/prefetch.h): once the chunks of
 * its header are in the cache, parse them; want more when it asks.
 */
static void load_tensor_map(struct fs *fs, struct prefetch_file *pf,
			    struct fblob *fb)
{
	uint64_t hdr_last;
	int err;

	if (!pf || !prefetch_file_header_want(pf, &hdr_last) ||
	    !fblob_all_done(fb, 0, hdr_last))
		return;
	err = prefetch_file_load(pf, fblob_data_fd(fb));
	if (err == -EAGAIN)
		want_tensor_header(fs, pf, fb);
	else if (err && err != -EALREADY)
		hlog(HLOG_DEBUG, HLOG_FS, "no tensor map for '%s': %s",
		     fblob_name(fb), strerror(-err));
	else if (!err)
		hlog(HLOG_DEBUG, HLOG_FS, "tensor map of '%s' loaded",
		     fblob_name(fb));
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct fhandle *fh;
	const struct mentry *e;
	struct fblob *fb = NULL;
	uint64_t idx;
	int err;

	e = fs_entry(fs, ino, &idx);
	if (!e) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (e->type == MENTRY_DIR) {
		fuse_reply_err(req, EISDIR);
		return;
	}
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (e->size) {
		err = fs_inode_fblob(fs, idx, &fb); /* the handle's reference */
		if (err) {
			fs_warn(fs, idx, "cannot open the cache file of", err);
			fuse_reply_err(req, EIO);
			return;
		}
	}
	fh = calloc(1, sizeof(*fh));
	if (!fh) {
		fblob_put(fb);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	prefetch_stream_init(&fh->ra);
	want_tensor_header(fs, fs->inodes[idx].pf, fb); /* model files */
	fh->idx = idx;
	fh->link.fb = fb;
	fi->fh = (uint64_t)(uintptr_t)fh;
	/*
	 * A pinned snapshot never changes: the kernel keeps its pages across
	 * opens. Not while a file with a hash is unchecked: then each open
	 * drops them, so pages of a file found corrupt are never served
	 * again from the kernel's cache, even before the invalidation.
	 */
	fi->keep_cache = !fb || !fblob_hash(fb) || fblob_verified(fb);
	fi->noflush = 1; /* nothing to flush on close */
	fs_open_add(fs, &fh->link);
	if (fb)
		fill_opened(fs->fill, idx);
	shards_on_open(fs, idx); /* sharded models: the next headers */
	if (fuse_reply_open(req, fi) == -ENOENT) {
		/* The open was interrupted: no release will come. */
		fs_open_del(fs, &fh->link);
		prefetch_stream_release(&fh->ra);
		fblob_put(fh->link.fb);
		free(fh);
	}
}

static void op_release(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct fhandle *fh = (struct fhandle *)(uintptr_t)fi->fh;

	(void)ino;
	if (fh) {
		fs_open_del(req_fs(req), &fh->link);
		/*
		 * The kernel sends RELEASE only after every read of the
		 * handle was answered, and op_read touches fh only before it
		 * answers; the release of the stream takes its lock once,
		 * which makes that order visible to thread checkers.
		 */
		prefetch_stream_release(&fh->ra);
		fblob_put(fh->link.fb); /* NULL after fs_detach */
		free(fh);
	}
	fuse_reply_err(req, 0);
}

static void reply_uncached(fuse_req_t req, struct fs *fs, struct fblob *fb,
			   uint64_t idx, uint64_t off, size_t len, int cause);

/* Replies len bytes at off of fb's local copy (splice when offered). */
static void reply_from_blob(fuse_req_t req, struct fs *fs, struct fblob *fb,
			    uint64_t idx, uint64_t off, size_t len)
{
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(len);
	uint64_t first, last;
	int res, token;

	/* A blob found corrupt is never read from again: its bytes are
	 * being punched out once the replies begun before are over. So are
	 * chunks the evictor took back since they were found DONE: those
	 * bytes are read again, uncached (rare: the least recently read
	 * chunks go first). */
	if (!fblob_chunks_for(fb, off, len, &first, &last) ||
	    !fblob_reply_begin(fb, off, len, &token)) {
		if (fblob_error(fb))
			fuse_reply_err(req, EIO);
		else
			reply_uncached(req, fs, fb, idx, off, len, -ENOLCK);
		return;
	}
	fblob_note_read(fb, first, last);
	bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	bv.buf[0].fd = fblob_data_fd(fb);
	bv.buf[0].pos = (off_t)off;
	atomic_fetch_add(&req_fs(req)->st_bytes_served, len);
	/* On a local failure fuse_reply_data replies the error itself. */
	res = fuse_reply_data(req, &bv, 0);
	fblob_reply_end(fb, token);
	if (res < 0)
		hlog(HLOG_DEBUG, HLOG_FS,
		     "reply of %zu bytes at %" PRIu64 " of '%s' failed: %s",
		     len, off, fblob_name(fb), strerror(-res));
}

/* The reply to a read that failed with err (negative): EIO, said once. */
static void reply_read_error(fuse_req_t req, struct fs *fs, uint64_t idx,
			     int err)
{
	atomic_fetch_add(&fs->st_read_errors, 1);
	if (err == -ECANCELED) /* unmounting */
		hlog(HLOG_DEBUG, HLOG_FS, "read of '%s' cancelled",
		     fs->manifest->entries[idx].path);
	else
		fs_warn(fs, idx, "read failed for", err);
	fuse_reply_err(req, EIO);
}

static void pr_free(struct pending_read *pr)
{
	fblob_put(pr->fb);
	pthread_mutex_destroy(&pr->lock);
	free(pr);
}

/* A read answered from memory because the cache could not store it. */
struct uncached_reply {
	fuse_req_t req;
	struct fs *fs;
	uint64_t idx;
};

static void on_uncached_bytes(void *arg, int err, const char *buf, size_t len)
{
	struct uncached_reply *ur = arg;

	if (err) {
		reply_read_error(ur->req, ur->fs, ur->idx, err);
	} else {
		atomic_fetch_add(&ur->fs->st_bytes_served, len);
		fuse_reply_buf(ur->req, buf, len);
	}
	free(ur);
}

/*
 * The cache's disk is full (or over quota), or another process has held
 * the chunks for too long (frozen?): they could not be stored, but the
 * read is still answered, with bytes fetched into memory for it alone
 * (DESIGN.md "Fetching"). The cache stays consistent: the chunks were
 * never marked DONE. Takes over the reply of req.
 */
static void reply_uncached(fuse_req_t req, struct fs *fs, struct fblob *fb,
			   uint64_t idx, uint64_t off, size_t len, int cause)
{
	struct uncached_reply *ur = malloc(sizeof(*ur));
	int err;

	if (!ur) {
		reply_read_error(req, fs, idx, -ENOMEM);
		return;
	}
	*ur = (struct uncached_reply){ .req = req, .fs = fs, .idx = idx };
	/* The scheduler said why when it gave up on a held chunk. */
	if (cause != -ENOLCK)
		fs_warn(fs, idx, "cache full: serving uncached", cause);
	err = sched_read_uncached(fs->sched, fb, off, len, on_uncached_bytes,
				  ur);
	if (err) {
		free(ur);
		reply_read_error(req, fs, idx, err);
	}
}

/* Sends the reply a finished pending read deserves; frees it. */
static void pr_reply(struct pending_read *pr, enum pr_state st, int err)
{
	if (st == PR_CANCELLED)
		fuse_reply_err(pr->req, EINTR);
	else if (err == -ENOSPC || err == -EDQUOT || err == -ENOLCK)
		reply_uncached(pr->req, pr->fs, pr->fb, pr->idx, pr->off,
			       pr->len, err);
	else if (err)
		reply_read_error(pr->req, pr->fs, pr->idx, err);
	else
		reply_from_blob(pr->req, pr->fs, pr->fb, pr->idx, pr->off,
				pr->len);
	pr_free(pr);
}

/*
 * Interrupt callback. libfuse holds the request's lock around it, so it
 * never runs concurrently with fuse_req_interrupt_func() on the same
 * request. Called inline by fuse_req_interrupt_func() when the request
 * was interrupted before op_read registered it: then the state is
 * PR_SETUP and the reply is left to op_read (replying inline would free
 * the request under libfuse's feet).
 */
static void on_interrupt(fuse_req_t req, void *arg)
{
	struct pending_read *pr = arg;
	int res;

	(void)req;
	pthread_mutex_lock(&pr->lock);
	if ((pr->state != PR_SETUP && pr->state != PR_PARKED) ||
	    pr->cancel_tried) {
		pthread_mutex_unlock(&pr->lock);
		return;
	}
	/* done has not returned yet (it takes our lock first thing), so
	 * the waiter is still valid. */
	pr->cancel_tried = true;
	res = sched_cancel(pr->fs->sched, pr->waiter);
	if (res) {
		/* done is running: it replies. */
		pthread_mutex_unlock(&pr->lock);
		return;
	}
	if (pr->state == PR_SETUP) {
		pr->state = PR_CANCELLED;
		pthread_mutex_unlock(&pr->lock);
		return;
	}
	pr->state = PR_CLAIMED;
	pthread_mutex_unlock(&pr->lock);
	/*
	 * From libfuse's interrupt path: it holds a count on the request,
	 * and replying clears the hook, so this is the last call with pr.
	 */
	hlog(HLOG_DEBUG, HLOG_FS, "read of '%s' interrupted",
	     pr->fs->manifest->entries[pr->idx].path);
	pr_reply(pr, PR_CANCELLED, 0);
}

/* The scheduler's done callback: no lock held, any thread. */
static void on_chunks_done(void *arg, int err)
{
	struct pending_read *pr = arg;

	pthread_mutex_lock(&pr->lock);
	assert(pr->state == PR_SETUP || pr->state == PR_PARKED);
	pr->err = err;
	if (pr->state == PR_SETUP) {
		pr->state = PR_DONE; /* op_read replies */
		pthread_mutex_unlock(&pr->lock);
		return;
	}
	pr->state = PR_CLAIMED;
	pthread_mutex_unlock(&pr->lock);
	/* Waits for a running on_interrupt and keeps later ones away. */
	fuse_req_interrupt_func(pr->req, NULL, NULL);
	pr_reply(pr, PR_DONE, err);
}

/*
 * Parks a read of chunks [first, last]. Exactly one of op_read (here),
 * on_chunks_done and on_interrupt replies and frees pr.
 */
static void park_read(fuse_req_t req, struct fs *fs, struct fhandle *fh,
		      uint64_t off, size_t len, uint64_t first, uint64_t last,
		      bool random)
{
	struct pending_read *pr;
	enum pr_state st;
	int res, err;

	pr = calloc(1, sizeof(*pr));
	if (!pr) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_init(&pr->lock, NULL);
	pr->req = req;
	pr->fs = fs;
	fblob_get(fh->link.fb);
	pr->fb = fh->link.fb;
	pr->idx = fh->idx;
	pr->off = off;
	pr->len = len;
	pr->state = PR_SETUP;

	/* A random read that reaches into a chunk (not the one it began
	 * in) wants only its start. */
	res = sched_want_read(fs->sched, pr->fb, off, len, random, SCHED_DEMAND,
			      on_chunks_done, pr, &pr->waiter);
	if (res == 1) {
		/* Completed meanwhile: done will not be called. */
		pr_reply(pr, PR_DONE, 0);
		return;
	}
	if (res < 0) {
		hlog(HLOG_DEBUG, HLOG_FS,
		     "want of chunks %" PRIu64 "-%" PRIu64
		     " of '%s' failed: %s",
		     first, last, fblob_name(pr->fb), strerror(-res));
		pr_reply(pr, PR_DONE, res);
		return;
	}

	/* May call on_interrupt right here if already interrupted. */
	fuse_req_interrupt_func(req, on_interrupt, pr);

	pthread_mutex_lock(&pr->lock);
	if (pr->state == PR_SETUP) {
		pr->state = PR_PARKED; /* the callbacks own pr now */
		pthread_mutex_unlock(&pr->lock);
		return;
	}
	st = pr->state; /* PR_DONE or PR_CANCELLED */
	err = pr->err;
	pr->state = PR_CLAIMED;
	pthread_mutex_unlock(&pr->lock);
	fuse_req_interrupt_func(req, NULL, NULL);
	pr_reply(pr, st, err);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs *fs = req_fs(req);
	struct fhandle *fh = (struct fhandle *)(uintptr_t)fi->fh;
	const struct prefetch_opts ra_opts = {
		.chunk_size = fs->opts.chunk_size,
		.readahead_max = fs->opts.readahead_max,
	};
	struct prefetch_range ra[PREFETCH_MAX_RANGES];
	struct prefetch_file *pf;
	const struct mentry *e;
	uint64_t idx, first, last, uoff;
	struct fblob *fb;
	size_t len, nra, i;
	int res;

	e = fs_entry(fs, ino, &idx);
	if (!e || !fh) {
		fuse_reply_err(req, EBADF);
		return;
	}
	if (off < 0) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	uoff = (uint64_t)off;
	if (uoff >= e->size || !size || !fh->link.fb) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	len = e->size - uoff < size ? (size_t)(e->size - uoff) : size;
	fill_read(fs->fill, idx);
	/* Our own reference: once the reply is sent, a RELEASE on another
	 * thread may drop the handle's. */
	fb = fh->link.fb;
	fblob_get(fb);
	if (!fblob_chunks_for(fb, uoff, len, &first, &last)) {
		fuse_reply_buf(req, NULL, 0);
		fblob_put(fb);
		return;
	}
	/*
	 * Plan the readahead now: once the reply is sent, the file may be
	 * closed and fh freed by a RELEASE on another thread.
	 */
	pf = fs->inodes[idx].pf; /* the inode table's: until unmount */
	load_tensor_map(fs, pf, fb);
	nra = prefetch_plan_file(&fh->ra, pf, &ra_opts, uoff, len, first, last,
				 fblob_nchunks(fb), ra);
	atomic_fetch_add(&fs->st_reads, 1);
	if (fblob_servable(fb, uoff, len)) {
		atomic_fetch_add(&fs->st_bytes_from_cache, len);
		reply_from_blob(req, fs, fb, idx, uoff, len);
	} else {
		park_read(req, fs, fh, uoff, len, first, last,
			  nra == 0 && prefetch_reaches_into(&fh->ra, uoff, len,
							    ra_opts.chunk_size,
							    last));
	}
	/* req and fh may be gone: only fs and fb from here on. The demand
	 * is queued first; readahead never delays it. */
	for (i = 0; i < nra; i++) {
		res = sched_want(fs->sched, fb, ra[i].from, ra[i].to,
				 SCHED_READAHEAD, NULL, NULL, NULL);
		if (res < 0)
			hlog(HLOG_DEBUG, HLOG_FS,
			     "readahead of chunks %" PRIu64 "-%" PRIu64
			     " of '%s' failed: %s",
			     ra[i].from, ra[i].to, fblob_name(fb),
			     strerror(-res));
	}
	fblob_put(fb);
}

/* ---- extended attributes ---- */

/* Writes the value of name for entry idx into buf (NUL-terminated);
 * 0, -ENODATA, or an error of opening the file's blob. */
static int xattr_value(struct fs *fs, uint64_t idx, const char *name, char *buf,
		       size_t buflen)
{
	const struct mentry *e = &fs->manifest->entries[idx];
	struct sched_peek pk;
	const char *url;
	int err;

	if (e->type != MENTRY_FILE)
		return -ENODATA;
	if (!strcmp(name, XATTR_SOURCE)) {
		url = source_file_url(fs->source, fs->manifest, idx);
		if (!url)
			return -ENODATA;
		snprintf(buf, buflen, "%s", url);
		return 0;
	}
	if (!strcmp(name, XATTR_SHA256)) {
		if (!e->hash_kind || strcmp(e->hash_kind, "sha256") ||
		    !e->content_id)
			return -ENODATA;
		snprintf(buf, buflen, "%s", e->content_id);
		return 0;
	}
	if (!strcmp(name, XATTR_PREFETCH)) {
		fill_file_status(fs->fill, idx, buf, buflen);
		return 0;
	}
	if (strcmp(name, XATTR_CACHED) && strcmp(name, XATTR_CHUNKS) &&
	    strcmp(name, XATTR_BLOB))
		return -ENODATA;
	if (!e->size && !strcmp(name, XATTR_BLOB))
		return -ENODATA; /* an empty file has no blob */
	if (!e->size) {
		snprintf(buf, buflen, "%s",
			 strcmp(name, XATTR_CACHED) ? "0/0" : "0");
		return 0;
	}
	/* A file never opened is answered from its sidecar, if any: asking
	 * creates nothing and keeps no descriptor. */
	err = fs_inode_peek(fs, idx, &pk);
	if (err)
		return err;
	if (!strcmp(name, XATTR_BLOB))
		snprintf(buf, buflen, "%s", pk.hex);
	else if (!strcmp(name, XATTR_CACHED))
		snprintf(buf, buflen, "%" PRIu64, pk.done_bytes);
	else
		snprintf(buf, buflen, "%" PRIu64 "/%" PRIu64, pk.done_count,
			 pk.nchunks);
	return 0;
}

/* The root's stats (fs/stats.h) into *out, a new malloc'd string. */
static int stats_value(struct fs *fs, char **out)
{
	char source[2048];
	struct sched_stats ss;
	struct fs_stats st;
	int i;

	sched_get_stats(fs->sched, &ss);
	memset(&st, 0, sizeof(st));
	/* Anyone who may read the mount reads this: no user:password@. */
	if (fs->manifest->source)
		st.source = (char *)http_log_url(fs->manifest->source, source,
						 sizeof(source));
	st.version = fs->manifest->version;
	st.cache = (char *)ss.cache_dir;
	st.files = fs->nfiles;
	st.bytes = fs->total_bytes;
	st.bytes_fetched = ss.engine.bytes_fetched;
	st.bytes_served = atomic_load(&fs->st_bytes_served);
	st.bytes_from_cache = atomic_load(&fs->st_bytes_from_cache);
	st.reads = atomic_load(&fs->st_reads);
	st.read_errors = atomic_load(&fs->st_read_errors);
	st.requests = ss.engine.requests;
	st.retries = ss.engine.retries;
	st.errors = ss.engine.failures;
	st.conn_in_use = ss.engine.transfers;
	st.conn_max = ss.engine.connections;
	for (i = 0; i < 3; i++)
		st.queued[i] = ss.queued[i];
	st.inflight = ss.inflight;
	st.open_blobs = ss.open_blobs;
	return fs_stats_format(&st, out);
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			size_t size)
{
	struct fs *fs = req_fs(req);
	size_t buflen = 8192, len;
	uint64_t idx;
	char *buf;
	int err;

	if (!fs_entry(fs, ino, &idx)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (strncmp(name, "user.hollowfs.", 14)) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	if (!idx && !strcmp(name, XATTR_STATS)) {
		err = stats_value(fs, &buf);
	} else {
		buf = malloc(buflen);
		err = buf ? xattr_value(fs, idx, name, buf, buflen) : -ENOMEM;
	}
	if (err == -ENODATA || err == -ENOMEM) {
		fuse_reply_err(req, -err);
		goto out_free;
	}
	if (err) {
		fs_warn(fs, idx, "cannot open the cache file of", err);
		fuse_reply_err(req, EIO);
		goto out_free;
	}
	len = strlen(buf); /* no NUL in the value, as getfattr expects */
	if (!size)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, buf, len);
out_free:
	free(buf);
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	static const char file_names[] = XATTR_CACHED
		"\0" XATTR_CHUNKS "\0" XATTR_SOURCE "\0" XATTR_BLOB "\0";
	struct fs *fs = req_fs(req);
	const struct mentry *e;
	char names[sizeof(file_names) + sizeof(XATTR_SHA256)];
	size_t len = 0;
	uint64_t idx;

	e = fs_entry(fs, ino, &idx);
	if (!e) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (!idx) {
		memcpy(names, XATTR_STATS, sizeof(XATTR_STATS));
		len = sizeof(XATTR_STATS);
	} else if (e->type == MENTRY_FILE) {
		memcpy(names, file_names, sizeof(file_names) - 1);
		len = sizeof(file_names) - 1;
		if (e->hash_kind && !strcmp(e->hash_kind, "sha256") &&
		    e->content_id) {
			memcpy(names + len, XATTR_SHA256, sizeof(XATTR_SHA256));
			len += sizeof(XATTR_SHA256);
		}
	}
	if (!size)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, names, len);
}

/* ---- everything that would change the tree: EROFS ---- */

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
		       int to_set, struct fuse_file_info *fi)
{
	(void)ino;
	(void)attr;
	(void)to_set;
	(void)fi;
	fuse_reply_err(req, EROFS);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode, dev_t rdev)
{
	(void)parent;
	(void)name;
	(void)mode;
	(void)rdev;
	fuse_reply_err(req, EROFS);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		     mode_t mode)
{
	(void)parent;
	(void)name;
	(void)mode;
	fuse_reply_err(req, EROFS);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent;
	(void)name;
	fuse_reply_err(req, EROFS);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
		       const char *name)
{
	(void)link;
	(void)parent;
	(void)name;
	fuse_reply_err(req, EROFS);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname,
		      unsigned int flags)
{
	(void)parent;
	(void)name;
	(void)newparent;
	(void)newname;
	(void)flags;
	fuse_reply_err(req, EROFS);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		    const char *newname)
{
	(void)ino;
	(void)newparent;
	(void)newname;
	fuse_reply_err(req, EROFS);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		     size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	(void)buf;
	(void)size;
	(void)off;
	(void)fi;
	fuse_reply_err(req, EROFS);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name,
		      mode_t mode, struct fuse_file_info *fi)
{
	(void)parent;
	(void)name;
	(void)mode;
	(void)fi;
	fuse_reply_err(req, EROFS);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			const char *value, size_t size, int flags)
{
	struct fs *fs = req_fs(req);
	uint64_t idx;
	int err;

	(void)flags;
	if (!fs_entry(fs, ino, &idx)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	if (strcmp(name, XATTR_PREFETCH)) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (size != 1 || value[0] != '1') {
		fuse_reply_err(req, EINVAL); /* only "1" means something */
		return;
	}
	err = fill_queue(fs->fill, idx, true);
	fuse_reply_err(req, -err);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino;
	(void)name;
	fuse_reply_err(req, EROFS);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset,
			 off_t length, struct fuse_file_info *fi)
{
	(void)ino;
	(void)mode;
	(void)offset;
	(void)length;
	(void)fi;
	fuse_reply_err(req, EROFS);
}

static void op_copy_file_range(fuse_req_t req, fuse_ino_t ino_in, off_t off_in,
			       struct fuse_file_info *fi_in, fuse_ino_t ino_out,
			       off_t off_out, struct fuse_file_info *fi_out,
			       size_t len, int flags)
{
	(void)ino_in;
	(void)off_in;
	(void)fi_in;
	(void)ino_out;
	(void)off_out;
	(void)fi_out;
	(void)len;
	(void)flags;
	fuse_reply_err(req, EROFS);
}

const struct fuse_lowlevel_ops fs_ll_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.statfs = op_statfs,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.open = op_open,
	.read = op_read,
	.release = op_release,
	.getxattr = op_getxattr,
	.listxattr = op_listxattr,
	.setattr = op_setattr,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_unlink,
	.rmdir = op_unlink,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.write = op_write,
	.create = op_create,
	.setxattr = op_setxattr,
	.removexattr = op_removexattr,
	.fallocate = op_fallocate,
	.copy_file_range = op_copy_file_range,
};
