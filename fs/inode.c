/*
 * inode.c: the inode table of a mount: inode = manifest index + 1, each
 * file's fblob opened on first use and kept until unmount.
 *
 * The table is built before the mount and read-only after, except for
 * the _Atomic fields of struct fs_inode, which are set with a
 * compare-exchange. Lock order: fs->open_lock, then nothing.
 */
#include "fs/fs.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fetch/sched.h"
#include "fetch/source.h"
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

		atomic_init(&inodes[i].fb, NULL);
		atomic_init(&inodes[i].warned_s, 0);
		if (e->type != MENTRY_DIR) {
			inodes[i].nlink = 1;
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
	return 0;
}

void fs_detach(struct fs *fs)
{
	size_t i;

	if (!fs || !fs->inodes)
		return;
	for (i = 0; i < fs->manifest->n; i++)
		fblob_put(atomic_exchange(&fs->inodes[i].fb, NULL));
}

void fs_free(struct fs *fs)
{
	struct fs_open_link *l, *next;

	if (!fs)
		return;
	/* Handles of files still open at unmount: no release came. */
	for (l = fs->open_list.next; l != &fs->open_list; l = next) {
		next = l->next;
		free(l);
	}
	pthread_mutex_destroy(&fs->open_lock);
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

int fs_inode_fblob(struct fs *fs, uint64_t idx, struct fblob **out)
{
	struct fs_inode *in = &fs->inodes[idx];
	struct fblob_target t;
	struct fblob *fb, *cur = NULL;
	char *idbuf;
	int err;

	fb = atomic_load(&in->fb);
	if (fb) {
		*out = fb;
		return 0;
	}
	idbuf = malloc(FS_ID_MAX);
	if (!idbuf)
		return -ENOMEM;
	source_target(fs->source, fs->manifest, idx, &t, idbuf, FS_ID_MAX);
	err = sched_open(fs->sched, &t, &fb); /* a new reference */
	free(idbuf);
	if (err)
		return err;
	if (!atomic_compare_exchange_strong(&in->fb, &cur, fb)) {
		/* Another open won: sched_open gave us the same fblob. */
		fblob_put(fb);
		fb = cur;
	}
	*out = fb;
	return 0;
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
