/*
 * inode.c: the inode table of a mount: inode = manifest index + 1. It
 * holds what a file is (its manifest entry), never an open blob: a blob
 * is opened through the scheduler when a handle or a parked read needs
 * it, and the scheduler closes it once it has been idle (DESIGN.md "Blob
 * lifetime, sharing and eviction").
 *
 * The table is built before the mount and read-only after, except for
 * the _Atomic fields of struct fs_inode. Lock order: fs->open_lock, then
 * nothing.
 */
#include "fs/fs.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fetch/prefetch.h"
#include "fetch/sched.h"
#include "fetch/source.h"
#include "fs/fill.h"
#include "fs/fs_i.h"
#include "state/clock.h"
#include "state/hlog.h"
#include "state/manifest.h"

/* Room for a content identity (URL plus ETag or mtime). */
#define FS_ID_MAX 8192

int fs_new(const struct fs_opts *o, struct fs **out)
{
	struct fs *fs;

	*out = NULL;
	fs = calloc(1, sizeof(*fs));
	if (!fs)
		return -ENOMEM;
	fs->opts = *o;
	pthread_mutex_init(&fs->open_lock, NULL);
	fs->open_list.prev = &fs->open_list;
	fs->open_list.next = &fs->open_list;
	*out = fs;
	return 0;
}

int fs_attach(struct fs *fs, struct source *src, struct manifest *m,
	      struct sched *s)
{
	struct fs_inode *inodes;
	size_t i, j;

	if (!m->finished || !m->n || m->entries[0].type != MENTRY_DIR)
		return -EINVAL;
	inodes = calloc(m->n, sizeof(*inodes));
	if (!inodes)
		return -ENOMEM;
	for (i = 0; i < m->n; i++) {
		const struct mentry *e = &m->entries[i];

		atomic_init(&inodes[i].warned_s, 0);
		if (e->type != MENTRY_DIR) {
			inodes[i].nlink = 1;
			/* Only model files get one; failing to only loses
			 * the format-aware readahead. */
			if (prefetch_file_new(e->name, e->size,
					      fs->opts.chunk_size,
					      &inodes[i].pf))
				inodes[i].pf = NULL;
			continue;
		}
		/* find(1) may trust st_nlink - 2 as the subfolder count. */
		inodes[i].nlink = 2;
		for (j = 0; j < e->nchildren; j++)
			if (m->entries[e->children[j]].type == MENTRY_DIR)
				inodes[i].nlink++;
	}
	fs->source = src;
	fs->manifest = m;
	fs->sched = s;
	fs->inodes = inodes;
	fs->total_bytes = manifest_total_bytes(m);
	fs->nfiles = manifest_file_count(m);
	return fill_new(fs, &fs->fill);
}

int fs_start(struct fs *fs)
{
	return fill_start(fs->fill);
}

void fs_stop(struct fs *fs)
{
	if (fs)
		fill_stop(fs->fill);
}

void fs_detach(struct fs *fs)
{
	struct fs_open_link *l;

	if (!fs)
		return;
	/* Handles of files still open at unmount: no release will come. */
	pthread_mutex_lock(&fs->open_lock);
	for (l = fs->open_list.next; l != &fs->open_list; l = l->next) {
		fblob_put(l->fb);
		l->fb = NULL;
	}
	pthread_mutex_unlock(&fs->open_lock);
}

void fs_free(struct fs *fs)
{
	struct fs_open_link *l, *next;
	size_t i;

	if (!fs)
		return;
	fill_free(fs->fill);
	/* Handles of files still open at unmount: no release came. */
	for (l = fs->open_list.next; l != &fs->open_list; l = next) {
		next = l->next;
		free(l);
	}
	pthread_mutex_destroy(&fs->open_lock);
	for (i = 0; fs->inodes && i < fs->manifest->n; i++)
		prefetch_file_free(fs->inodes[i].pf);
	free(fs->inodes);
	free(fs);
}

void fs_open_add(struct fs *fs, struct fs_open_link *l)
{
	pthread_mutex_lock(&fs->open_lock);
	l->prev = &fs->open_list;
	l->next = fs->open_list.next;
	l->next->prev = l;
	fs->open_list.next = l;
	pthread_mutex_unlock(&fs->open_lock);
}

void fs_open_del(struct fs *fs, struct fs_open_link *l)
{
	pthread_mutex_lock(&fs->open_lock);
	l->prev->next = l->next;
	l->next->prev = l->prev;
	pthread_mutex_unlock(&fs->open_lock);
}

const struct mentry *fs_entry(const struct fs *fs, uint64_t ino, uint64_t *idx)
{
	if (ino < 1 || ino > fs->manifest->n)
		return NULL;
	*idx = ino - 1;
	return &fs->manifest->entries[ino - 1];
}

void fs_fill_attr(const struct fs *fs, uint64_t idx, struct stat *st)
{
	const struct mentry *e = &fs->manifest->entries[idx];

	memset(st, 0, sizeof(*st));
	st->st_ino = idx + 1;
	st->st_nlink = fs->inodes[idx].nlink;
	st->st_uid = fs->opts.uid;
	st->st_gid = fs->opts.gid;
	st->st_blksize = fs->opts.chunk_size;
	st->st_mtim.tv_sec = e->mtime;
	st->st_atim = st->st_mtim;
	st->st_ctim = st->st_mtim;
	if (e->type == MENTRY_DIR) {
		st->st_mode = S_IFDIR | 0555;
		return;
	}
	st->st_mode = S_IFREG | 0444;
	st->st_size = (off_t)e->size;
	/* What the file will take once cached, as du(1) expects. */
	st->st_blocks = (blkcnt_t)((e->size + 511) / 512);
}

/* The target of file idx into *t, its strings in the returned buffer
 * (free it after use); NULL when out of memory. */
static char *inode_target(struct fs *fs, uint64_t idx, struct fblob_target *t)
{
	char *idbuf = malloc(FS_ID_MAX);

	if (idbuf)
		source_target(fs->source, fs->manifest, idx, t, idbuf,
			      FS_ID_MAX);
	return idbuf;
}

int fs_inode_fblob(struct fs *fs, uint64_t idx, struct fblob **out)
{
	struct fblob_target t;
	char *idbuf = inode_target(fs, idx, &t);
	int err;

	*out = NULL;
	if (!idbuf)
		return -ENOMEM;
	err = sched_open(fs->sched, &t, out); /* a new reference */
	free(idbuf);
	return err;
}

int fs_inode_peek(struct fs *fs, uint64_t idx, struct sched_peek *p)
{
	struct fblob_target t;
	char *idbuf = inode_target(fs, idx, &t);
	int err;

	if (!idbuf)
		return -ENOMEM;
	err = sched_peek(fs->sched, &t, p);
	free(idbuf);
	return err;
}

void fs_warn(struct fs *fs, uint64_t idx, const char *what, int err)
{
	_Atomic int64_t *last = &fs->inodes[idx].warned_s;
	int64_t now = (int64_t)(clock_now_ms() / 1000) + 1, prev;

	prev = atomic_load(last);
	if (prev && now - prev < FS_WARN_INTERVAL_S)
		return;
	if (!atomic_compare_exchange_strong(last, &prev, now))
		return; /* another thread is saying it */
	hlog(HLOG_WARN, HLOG_FS, "%s '%s': %s", what,
	     fs->manifest->entries[idx].path, strerror(-err));
}
