/*
 * cmd_common.c: what hollowfs status and hollowfs verify share (see
 * fs/cmd.h): their arguments, the files named by a cache's saved
 * snapshots, and a mount's stats xattr. Single-threaded, no locks.
 */
#include "fs/cmd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fetch/http.h"
#include "fetch/source.h"
#include "fs/cli.h"
#include "fs/stats.h"
#include "state/blob.h"
#include "state/cache.h"
#include "state/fsutil.h"
#include "state/manifest.h"

/* Room for a content identity, as fs/inode.c has. */
#define CMD_ID_MAX 8192
/* The largest snapshot file read (a listing of a million files). */
#define CMD_SNAPSHOT_MAX (1024u << 20)

static int set_opt(struct cmd_args *a, const char *opt)
{
	char **dst;
	const char *val;

	if (!strncmp(opt, "cache=", 6)) {
		dst = &a->cache;
		val = opt + 6;
	} else if (!strncmp(opt, "endpoint=", 9)) {
		dst = &a->endpoint;
		val = opt + 9;
	} else {
		fprintf(stderr,
			"hollowfs: unknown option '%s' (cache=DIR and "
			"endpoint=URL are known here)\n",
			opt);
		return -EINVAL;
	}
	if (!*val) {
		fprintf(stderr, "hollowfs: option '%s' needs a value\n", opt);
		return -EINVAL;
	}
	free(*dst);
	*dst = strdup(val);
	return *dst ? 0 : -ENOMEM;
}

/* -o a=b,c=d */
static int set_opts(struct cmd_args *a, const char *opts)
{
	char *copy = strdup(opts), *tok, *save = NULL;
	int err = copy ? 0 : -ENOMEM;

	for (tok = copy ? strtok_r(copy, ",", &save) : NULL; tok && !err;
	     tok = strtok_r(NULL, ",", &save))
		err = set_opt(a, tok);
	free(copy);
	return err;
}

int cmd_args_parse(int argc, char *argv[], const char *usage, bool json_ok,
		   bool repair_ok, struct cmd_args *a)
{
	int i, err = 0;

	memset(a, 0, sizeof(*a));
	for (i = 1; i < argc && !err; i++) {
		const char *s = argv[i];

		if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
			printf("usage: %s\n", usage);
			cmd_args_release(a);
			return CMD_ARGS_HELP;
		} else if (json_ok && !strcmp(s, "--json")) {
			a->json = true;
		} else if (repair_ok && !strcmp(s, "--repair")) {
			a->repair = true;
		} else if (!strcmp(s, "-o")) {
			if (i + 1 == argc) {
				fprintf(stderr, "hollowfs: -o needs options\n");
				err = -EINVAL;
			} else {
				err = set_opts(a, argv[++i]);
			}
		} else if (!strncmp(s, "-o", 2)) {
			err = set_opts(a, s + 2);
		} else if (s[0] == '-' || a->mountpoint) {
			fprintf(stderr, "hollowfs: unexpected argument '%s'\n",
				s);
			err = -EINVAL;
		} else {
			a->mountpoint = strdup(s);
			if (!a->mountpoint)
				err = -ENOMEM;
		}
	}
	if (!err && a->mountpoint && a->cache) {
		fprintf(stderr, "hollowfs: give a MOUNTPOINT or -o cache=DIR, "
				"not both\n");
		err = -EINVAL;
	}
	if (!err)
		return 0;
	if (err == -ENOMEM)
		fprintf(stderr, "hollowfs: out of memory\n");
	fprintf(stderr, "usage: %s\n", usage);
	cmd_args_release(a);
	return CLI_EXIT_USAGE;
}

void cmd_args_release(struct cmd_args *a)
{
	free(a->mountpoint);
	free(a->cache);
	free(a->endpoint);
	memset(a, 0, sizeof(*a));
}

int cmd_cache_open(const struct cmd_args *a, struct cache **out)
{
	char dir[PATH_MAX];
	struct stat st;
	int err;

	*out = NULL;
	err = cache_resolve_dir(a->cache, dir, sizeof(dir));
	if (err) {
		fprintf(stderr, "hollowfs: cannot find the cache folder: %s\n",
			strerror(-err));
		return err;
	}
	/* Looking must not make one. */
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		fprintf(stderr, "hollowfs: no cache at '%s'\n", dir);
		return -ENOENT;
	}
	err = cache_new(dir, out);
	if (err)
		fprintf(stderr, "hollowfs: cannot open the cache '%s': %s\n",
			dir, strerror(-err));
	return err;
}

static int snap_add(struct cmd_files *f, const struct manifest *m)
{
	struct cmd_snapshot *sn;

	if (f->nsnaps == f->snaps_alloc) {
		size_t n = f->snaps_alloc ? 2 * f->snaps_alloc : 8;
		struct cmd_snapshot *v = realloc(f->snaps, n * sizeof(*v));

		if (!v)
			return -ENOMEM;
		f->snaps = v;
		f->snaps_alloc = n;
	}
	sn = &f->snaps[f->nsnaps];
	sn->source = m->source ? strdup(m->source) : NULL;
	sn->version = m->version ? strdup(m->version) : NULL;
	f->nsnaps++;
	if ((m->source && !sn->source) || (m->version && !sn->version))
		return -ENOMEM;
	return 0;
}

/* Appends a zeroed file; *out points at it until the next add. */
static int file_add(struct cmd_files *f, struct cmd_file **out)
{
	if (f->n == f->alloc) {
		size_t n = f->alloc ? 2 * f->alloc : 64;
		struct cmd_file *v = realloc(f->v, n * sizeof(*v));

		if (!v)
			return -ENOMEM;
		f->v = v;
		f->alloc = n;
	}
	*out = &f->v[f->n++];
	memset(*out, 0, sizeof(**out));
	return 0;
}

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* The files of snapshot m, named through src. */
static int snapshot_files(struct cmd_files *f, const struct cache *c,
			  const struct source *src, const struct manifest *m,
			  char *idbuf)
{
	long snap = (long)f->nsnaps - 1;
	struct fblob_target t;
	struct cmd_file *cf;
	uint32_t cs;
	size_t i;
	int err;

	for (i = 0; i < m->n; i++) {
		const struct mentry *e = &m->entries[i];

		if (e->type != MENTRY_FILE)
			continue;
		err = file_add(f, &cf);
		if (err)
			return err;
		cf->snap = snap;
		cf->size = e->size;
		cf->path = strdup(e->path);
		if (!cf->path)
			return -ENOMEM;
		if (!e->size)
			continue; /* an empty file has no blob */
		source_target(src, m, i, &t, idbuf, CMD_ID_MAX);
		/* Whichever chunk size a mount stored it with (-ENOENT: none
		 * did; the default's name then). */
		(void)blob_find(c, t.kind, t.content_id, t.size, 0, cf->hex,
				&cs);
		if (t.hash_kind && t.hash) {
			cf->hash_kind = dup_or_null(t.hash_kind);
			cf->hash = dup_or_null(t.hash);
			if (!cf->hash_kind || !cf->hash)
				return -ENOMEM;
		}
	}
	return 0;
}

/* Reads a whole file of at most CMD_SNAPSHOT_MAX bytes at dirfd/name. */
static int read_small(int dirfd, const char *name, char **out, size_t *len)
{
	struct stat st;
	char *buf = NULL;
	ssize_t n;
	int fd, err = 0;

	*out = NULL;
	fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		err = -errno;
		goto out_close;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > CMD_SNAPSHOT_MAX) {
		err = -EFBIG;
		goto out_close;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		err = -ENOMEM;
		goto out_close;
	}
	n = pread(fd, buf, (size_t)st.st_size, 0);
	if (n != st.st_size) {
		err = n < 0 ? -errno : -EIO;
		free(buf);
		goto out_close;
	}
	buf[n] = '\0';
	*out = buf;
	*len = (size_t)n;
out_close:
	close(fd);
	return err;
}

/* One saved snapshot file: its files are added, or it is skipped with a
 * line on stderr. Only -ENOMEM is returned. */
static int snapshot_load(struct cmd_files *f, const struct cmd_args *a,
			 const struct cache *c, int dirfd, const char *name,
			 const char *source, const char *version, char *idbuf)
{
	struct source_opts so = { .endpoint = a->endpoint, .env = true };
	struct source *src = NULL;
	struct manifest *m = NULL;
	char why[512] = "", shown[2048], *text = NULL;
	size_t len = 0;
	int err;

	err = read_small(dirfd, name, &text, &len);
	if (!err)
		err = manifest_from_json(text, len, &m);
	free(text);
	if (err == -ENOMEM)
		return err;
	if (err) {
		fprintf(stderr, "hollowfs: skipping saved snapshot '%s': %s\n",
			name, strerror(-err));
		return 0;
	}
	/* A mount shows its source as a log line would (fs/ops.c). */
	if ((source &&
	     (!m->source ||
	      strcmp(source, http_log_url(m->source, shown, sizeof(shown))))) ||
	    (version && (!m->version || strcmp(version, m->version))))
		goto out;
	if (!m->source) {
		fprintf(stderr,
			"hollowfs: skipping saved snapshot '%s': it does not "
			"say its source\n",
			name);
		goto out;
	}
	err = source_open(m->source, &so, &src, why, sizeof(why));
	if (err == -ENOMEM)
		goto out;
	if (err) {
		fprintf(stderr, "hollowfs: skipping the snapshot of '%s': %s\n",
			m->source, why);
		err = 0;
		goto out;
	}
	err = snap_add(f, m);
	if (!err)
		err = snapshot_files(f, c, src, m, idbuf);
out:
	source_free(src);
	manifest_free(m);
	return err;
}

/* Every KEY/VERSION.json under snapshots/. */
static int snapshots_walk(struct cmd_files *f, struct cache *c,
			  const struct cmd_args *a, const char *source,
			  const char *version)
{
	char path[PATH_MAX], *idbuf;
	struct dirent *kd, *vd;
	DIR *top, *sub;
	int err = 0;

	if (snprintf(path, sizeof(path), "%s/snapshots", cache_dir(c)) >=
	    (int)sizeof(path))
		return 0;
	top = opendir(path);
	if (!top)
		return 0; /* none saved */
	idbuf = malloc(CMD_ID_MAX);
	if (!idbuf) {
		closedir(top);
		return -ENOMEM;
	}
	while (!err && (kd = readdir(top))) {
		if (kd->d_name[0] == '.')
			continue;
		sub = dir_stream_at(dirfd(top), kd->d_name);
		if (!sub)
			continue;
		while (!err && (vd = readdir(sub))) {
			size_t n = strlen(vd->d_name);

			/* PATH.tmp.RANDOM of a save under way: not one. */
			if (vd->d_name[0] == '.' || n < 6 ||
			    strcmp(vd->d_name + n - 5, ".json"))
				continue;
			err = snapshot_load(f, a, c, dirfd(sub), vd->d_name,
					    source, version, idbuf);
		}
		closedir(sub);
	}
	free(idbuf);
	closedir(top);
	return err;
}

static bool is_hex32(const char *s)
{
	size_t i;

	for (i = 0; i < 32; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[32] == '\0';
}

static int cmp_hex(const void *x, const void *y)
{
	return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* The blobs under blobs/ab/ that no listed file names. */
static int unnamed_walk(struct cmd_files *f, struct cache *c)
{
	char path[PATH_MAX], name[64];
	const char **named = NULL;
	struct dirent *fd_ent, *bd;
	struct cmd_file *cf;
	size_t nnamed = 0, i;
	DIR *top, *sub;
	int err = 0;

	if (snprintf(path, sizeof(path), "%s/blobs", cache_dir(c)) >=
	    (int)sizeof(path))
		return 0;
	top = opendir(path);
	if (!top)
		return 0;
	named = malloc((f->n ? f->n : 1) * sizeof(*named));
	if (!named) {
		closedir(top);
		return -ENOMEM;
	}
	for (i = 0; i < f->n; i++)
		if (f->v[i].hex[0])
			named[nnamed++] = f->v[i].hex;
	qsort(named, nnamed, sizeof(*named), cmp_hex);
	while (!err && (fd_ent = readdir(top))) {
		if (strlen(fd_ent->d_name) != 2)
			continue;
		sub = dir_stream_at(dirfd(top), fd_ent->d_name);
		if (!sub)
			continue;
		while (!err && (bd = readdir(sub))) {
			const char *key = bd->d_name;
			struct stat st;

			if (!is_hex32(key) ||
			    bsearch(&key, named, nnamed, sizeof(*named),
				    cmp_hex) ||
			    fstatat(dirfd(sub), key, &st, AT_SYMLINK_NOFOLLOW) <
				    0 ||
			    !S_ISREG(st.st_mode))
				continue;
			err = file_add(f, &cf);
			if (err)
				break;
			cf->snap = -1;
			cf->size = (uint64_t)st.st_size;
			memcpy(cf->hex, key, 33); /* is_hex32: 32 + NUL */
			snprintf(name, sizeof(name), "blobs/%.2s/%.32s", key,
				 key);
			cf->path = strdup(name);
			if (!cf->path)
				err = -ENOMEM;
		}
		closedir(sub);
	}
	free(named);
	closedir(top);
	return err;
}

static int cmp_file(const void *x, const void *y)
{
	const struct cmd_file *a = x, *b = y;

	/* Unnamed blobs (-1) last. */
	if (a->snap != b->snap)
		return a->snap < 0	 ? 1 :
		       b->snap < 0	 ? -1 :
		       a->snap < b->snap ? -1 :
					   1;
	return strcmp(a->path, b->path);
}

int cmd_cache_files(struct cache *c, const struct cmd_args *a,
		    const char *source, const char *version, bool unnamed,
		    struct cmd_files *out)
{
	int err;

	memset(out, 0, sizeof(*out));
	err = snapshots_walk(out, c, a, source, version);
	if (!err && unnamed)
		err = unnamed_walk(out, c);
	if (!err && out->n)
		qsort(out->v, out->n, sizeof(*out->v), cmp_file);
	if (err == -ENOMEM)
		fprintf(stderr, "hollowfs: out of memory\n");
	return err;
}

void cmd_files_release(struct cmd_files *f)
{
	size_t i;

	for (i = 0; i < f->n; i++) {
		free(f->v[i].path);
		free(f->v[i].hash_kind);
		free(f->v[i].hash);
	}
	for (i = 0; i < f->nsnaps; i++) {
		free(f->snaps[i].source);
		free(f->snaps[i].version);
	}
	free(f->v);
	free(f->snaps);
	memset(f, 0, sizeof(*f));
}

int cmd_mount_stats(const char *mnt, struct fs_stats *st)
{
	char buf[16384];
	ssize_t n;
	int err;

	memset(st, 0, sizeof(*st));
	n = getxattr(mnt, "user.hollowfs.stats", buf, sizeof(buf) - 1);
	if (n < 0) {
		err = -errno;
		if (err == -ENODATA || err == -ENOTSUP) {
			fprintf(stderr,
				"hollowfs: '%s' is not the root of a "
				"hollowfs mount\n",
				mnt);
			return -ENOTSUP;
		}
		fprintf(stderr, "hollowfs: cannot read the stats of '%s': %s\n",
			mnt, strerror(-err));
		return err;
	}
	err = fs_stats_parse(buf, (size_t)n, st);
	if (err)
		fprintf(stderr,
			"hollowfs: the stats of '%s' do not parse: %s\n", mnt,
			strerror(-err));
	return err;
}
