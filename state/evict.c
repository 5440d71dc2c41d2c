/*
 * evict.c: cache usage, the LRU list of blobs, eviction of one blob under
 * its in-use lock, pruning to a size, and removing orphans (see
 * state/evict.h).
 *
 * No threads, no state: everything is read from the cache folder each
 * time (one readdir per fan-out folder, one fstatat per file), and the
 * only lock is a blob's in-use byte, taken without waiting and held only
 * for that blob's unlinks.
 */
#include "state/evict.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "state/cache.h"
#include "state/fsutil.h"

#define NAME_LEN 96 /* longest cache file name we group: HEX.state.tmp.X */
#define REF_MAX 4096

/* The files of a blob, in the order eviction removes them. */
static const char *const blob_suffixes[] = { ".state", ".verified", "", ".sums",
					     ".lock" };

enum bkind {
	BK_DATA,
	BK_STATE,
	BK_SUMS,
	BK_LOCK,
	BK_MARKER,
	BK_TMP,
	BK_OTHER,
};

/* One file of a fan-out folder. */
struct bent {
	char name[NAME_LEN];
	size_t keylen; /* its blob's name is name[0, keylen) */
	enum bkind kind;
	uint64_t bytes; /* allocated */
	int64_t mtime_ns;
	uint64_t nlink;
};

struct bents {
	struct bent *v;
	size_t n, alloc;
};

static int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * 1000000000 + ts->tv_nsec;
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ts_ns(&ts);
}

static bool is_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

/* What name is, for a blob named name[0, *keylen); BK_OTHER when it is no
 * blob's file (then *keylen is 0). */
static enum bkind classify(const char *name, const char *fan, size_t *keylen)
{
	const char *dot = strchr(name, '.');
	size_t k = dot ? (size_t)(dot - name) : strlen(name);

	*keylen = 0;
	if (k < 2 || k > 64 || !is_hex(name, k) || memcmp(name, fan, 2))
		return BK_OTHER;
	*keylen = k;
	if (!dot)
		return BK_DATA;
	if (strstr(dot, ".tmp."))
		return BK_TMP;
	if (!strcmp(dot, ".state"))
		return BK_STATE;
	if (!strcmp(dot, ".sums"))
		return BK_SUMS;
	if (!strcmp(dot, ".lock"))
		return BK_LOCK;
	if (!strcmp(dot, ".verified"))
		return BK_MARKER;
	*keylen = 0;
	return BK_OTHER;
}

static bool is_fan(const char *name)
{
	return strlen(name) == 2 && is_hex(name, 2);
}

/* Lists the regular files of the fan-out folder dirfd (named fan) into
 * l (emptied first). */
static int fan_list(int dirfd, const char *fan, struct bents *l)
{
	struct dirent *de;
	struct stat st;
	DIR *d;
	int err = 0;

	l->n = 0;
	d = dir_stream_at(dirfd, ".");
	if (!d)
		return -errno;
	for (;;) {
		struct bent *e;

		errno = 0;
		de = readdir(d);
		if (!de) {
			err = -errno;
			break;
		}
		if (de->d_name[0] == '.' || strlen(de->d_name) >= NAME_LEN)
			continue;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue; /* gone meanwhile, or not ours */
		if (l->n == l->alloc) {
			size_t na = l->alloc ? 2 * l->alloc : 256;
			struct bent *v = realloc(l->v, na * sizeof(*v));

			if (!v) {
				err = -ENOMEM;
				break;
			}
			l->v = v;
			l->alloc = na;
		}
		e = &l->v[l->n++];
		strcpy(e->name, de->d_name);
		e->kind = classify(e->name, fan, &e->keylen);
		e->bytes = (uint64_t)st.st_blocks * 512;
		e->mtime_ns = ts_ns(&st.st_mtim);
		e->nlink = st.st_nlink;
	}
	closedir(d);
	return err;
}

static int bent_cmp(const void *pa, const void *pb)
{
	const struct bent *a = pa, *b = pb;
	size_t n = a->keylen < b->keylen ? a->keylen : b->keylen;
	int c = memcmp(a->name, b->name, n);

	if (c)
		return c;
	if (a->keylen != b->keylen)
		return a->keylen < b->keylen ? -1 : 1;
	return strcmp(a->name, b->name);
}

/* One blob's files in a sorted list: v[first, first + count). */
struct bgroup {
	int dirfd;
	const struct bent *v;
	size_t count;
	char hex[65];
	bool has_data;
	uint64_t bytes, nlink;
	int64_t last_used_ns;
};

typedef int (*group_fn)(void *arg, const struct bgroup *g);
typedef int (*fan_fn)(void *arg, int dirfd, const char *fan,
		      const struct bents *l);

/* Calls fn for every fan-out folder of blobs/, with its files listed. */
static int for_each_fan(const struct cache *c, fan_fn fn, void *arg)
{
	int blobs = cache_area_fd(c, AREA_BLOBS);
	struct bents l = { 0 };
	struct dirent *de;
	DIR *d;
	int err = 0;

	d = dir_stream_at(blobs, ".");
	if (!d)
		return -errno;
	for (;;) {
		int fd;

		errno = 0;
		de = readdir(d);
		if (!de) {
			err = -errno;
			break;
		}
		if (!is_fan(de->d_name))
			continue;
		if (dir_open_at(blobs, de->d_name, 0700, false, &fd))
			continue; /* not a folder, or a link: not ours */
		err = fan_list(fd, de->d_name, &l);
		if (!err)
			err = fn(arg, fd, de->d_name, &l);
		close(fd);
		if (err)
			break;
	}
	closedir(d);
	free(l.v);
	return err;
}

/* Calls fn for every blob of a sorted fan-out list. */
static int for_each_group(int dirfd, struct bents *l, group_fn fn, void *arg)
{
	size_t i = 0, j;
	int err;

	if (l->n)
		qsort(l->v, l->n, sizeof(*l->v), bent_cmp);
	while (i < l->n) {
		struct bgroup g;
		int64_t lock_ns = -1, data_ns = -1, any_ns = 0;

		if (!l->v[i].keylen) {
			i++;
			continue;
		}
		memset(&g, 0, sizeof(g));
		g.dirfd = dirfd;
		g.v = &l->v[i];
		memcpy(g.hex, l->v[i].name, l->v[i].keylen);
		g.hex[l->v[i].keylen] = 0;
		for (j = i; j < l->n && l->v[j].keylen == l->v[i].keylen &&
			    !memcmp(l->v[j].name, l->v[i].name, l->v[i].keylen);
		     j++) {
			const struct bent *e = &l->v[j];

			g.bytes += e->bytes;
			if (e->mtime_ns > any_ns)
				any_ns = e->mtime_ns;
			if (e->kind == BK_DATA) {
				g.has_data = true;
				g.nlink = e->nlink;
				data_ns = e->mtime_ns;
			} else if (e->kind == BK_LOCK) {
				lock_ns = e->mtime_ns;
			}
		}
		g.count = j - i;
		g.last_used_ns = lock_ns >= 0 ? lock_ns :
				 data_ns >= 0 ? data_ns :
						any_ns;
		err = fn(arg, &g);
		if (err)
			return err;
		i = j;
	}
	return 0;
}

static int usage_fan(void *arg, int dirfd, const char *fan,
		     const struct bents *l)
{
	struct cache_usage *u = arg;
	size_t i;

	(void)dirfd;
	(void)fan;
	for (i = 0; i < l->n; i++) {
		u->bytes += l->v[i].bytes;
		u->files++;
		u->blobs += l->v[i].kind == BK_DATA;
	}
	return 0;
}

int cache_usage(const struct cache *c, struct cache_usage *u)
{
	struct statvfs vfs;

	memset(u, 0, sizeof(*u));
	if (fstatvfs(cache_area_fd(c, AREA_BLOBS), &vfs) < 0)
		return -errno;
	u->fs_size = (uint64_t)vfs.f_blocks * vfs.f_frsize;
	u->fs_free = (uint64_t)vfs.f_bavail * vfs.f_frsize;
	return for_each_fan(c, usage_fan, u);
}

uint64_t cache_min_free_default(const struct cache_usage *u)
{
	return u->fs_size / 20;
}

uint64_t evict_target(const struct cache_usage *u, uint64_t max_bytes,
		      uint64_t min_free)
{
	uint64_t target = u->bytes;

	if (max_bytes && max_bytes < target)
		target = max_bytes;
	if (u->fs_free < min_free) {
		uint64_t need = min_free - u->fs_free;
		uint64_t t = u->bytes > need ? u->bytes - need : 0;

		if (t < target)
			target = t;
	}
	return target;
}

struct list_ctx {
	struct evict_entry *v;
	size_t n, alloc;
};

static int list_group(void *arg, const struct bgroup *g)
{
	struct list_ctx *lc = arg;
	struct evict_entry *e;

	if (strlen(g->hex) >= sizeof(e->hex))
		return 0; /* not a name this version makes */
	if (lc->n == lc->alloc) {
		size_t na = lc->alloc ? 2 * lc->alloc : 1024;
		struct evict_entry *v = realloc(lc->v, na * sizeof(*v));

		if (!v)
			return -ENOMEM;
		lc->v = v;
		lc->alloc = na;
	}
	e = &lc->v[lc->n++];
	strcpy(e->hex, g->hex);
	e->bytes = g->bytes;
	e->last_used_ns = g->last_used_ns;
	e->nlink = g->has_data ? g->nlink : 0;
	return 0;
}

static int list_fan(void *arg, int dirfd, const char *fan,
		    const struct bents *l)
{
	(void)fan;
	return for_each_group(dirfd, (struct bents *)l, list_group, arg);
}

static int entry_cmp(const void *pa, const void *pb)
{
	const struct evict_entry *a = pa, *b = pb;

	if (a->last_used_ns != b->last_used_ns)
		return a->last_used_ns < b->last_used_ns ? -1 : 1;
	return strcmp(a->hex, b->hex);
}

int evict_list(const struct cache *c, struct evict_entry **out, size_t *n)
{
	struct list_ctx lc = { 0 };
	int err;

	*out = NULL;
	*n = 0;
	err = for_each_fan(c, list_fan, &lc);
	if (err) {
		free(lc.v);
		return err;
	}
	if (lc.n)
		qsort(lc.v, lc.n, sizeof(*lc.v), entry_cmp);
	*out = lc.v;
	*n = lc.n;
	return 0;
}

/* Has blob hex any of its files in dirfd? */
static bool any_file(int dirfd, const char *hex)
{
	char name[NAME_LEN];
	struct stat st;
	size_t i;

	for (i = 0; i < sizeof(blob_suffixes) / sizeof(blob_suffixes[0]); i++) {
		snprintf(name, sizeof(name), "%s%s", hex, blob_suffixes[i]);
		if (!fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW))
			return true;
	}
	return false;
}

/*
 * Evicts blob hex (see evict_blob); with orphan_only, only when it has no
 * data file, checked under the lock (-EEXIST otherwise). *count: the
 * files removed (or that would be).
 */
static int evict_one(const struct cache *c, const char *hex, bool orphan_only,
		     bool dry_run, uint64_t *freed, uint64_t *count)
{
	char fan[3], name[NAME_LEN], lock[NAME_LEN];
	bool made_lock = false;
	struct stat st;
	size_t i;
	int dfd, fd, err;

	*freed = 0;
	*count = 0;
	if (strlen(hex) < 2 || strlen(hex) > 64 || !is_hex(hex, strlen(hex)))
		return -EINVAL;
	memcpy(fan, hex, 2);
	fan[2] = 0;
	err = dir_open_at(cache_area_fd(c, AREA_BLOBS), fan, 0700, false, &dfd);
	if (err)
		return err == -ELOOP || err == -ENOTDIR ? -ENOENT : err;
	snprintf(lock, sizeof(lock), "%s.lock", hex);
	fd = openat(dfd, lock, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0 && errno == ENOENT && !any_file(dfd, hex)) {
		err = -ENOENT; /* nothing to evict: make nothing either */
		goto out;
	}
	if (fd < 0 && errno == ENOENT && !dry_run) {
		/* No process has it open (an opener makes the lock file
		 * first): evicted under a new one, removed with the rest. */
		fd = openat(dfd, lock,
			    O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC |
				    O_NONBLOCK,
			    0600);
		made_lock = fd >= 0;
		if (fd < 0 && errno == EEXIST)
			errno = EAGAIN; /* an opener made it just now */
	}
	if (fd < 0 && !(errno == ENOENT && dry_run)) {
		err = errno == EAGAIN ? -EBUSY : -errno;
		goto out;
	}
	if (fd >= 0) {
		if (fstat(fd, &st) < 0) {
			err = -errno;
			goto out;
		}
		if (!S_ISREG(st.st_mode)) {
			err = -EINVAL;
			goto out;
		}
		err = cache_blob_inuse_upgrade(fd);
		if (err) {
			err = err == -EAGAIN ? -EBUSY : err;
			goto out;
		}
		/* Unlinked meanwhile: another evictor got there first, and
		 * a new blob may be being made under the same name. */
		if (!cache_fd_linked_at(dfd, lock, fd)) {
			err = -EBUSY;
			goto out;
		}
	}
	if (orphan_only && !fstatat(dfd, hex, &st, AT_SYMLINK_NOFOLLOW)) {
		err = -EEXIST;
		goto out;
	}
	err = -ENOENT;
	for (i = 0; i < sizeof(blob_suffixes) / sizeof(blob_suffixes[0]); i++) {
		bool ours = made_lock && !strcmp(blob_suffixes[i], ".lock");

		snprintf(name, sizeof(name), "%s%s", hex, blob_suffixes[i]);
		if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (!ours) {
			(*count)++;
			err = 0;
			if (st.st_nlink <= 1)
				*freed += (uint64_t)st.st_blocks * 512;
		}
		if (dry_run)
			continue;
		if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT) {
			err = -errno;
			break; /* never the data before its sidecar */
		}
	}
out:
	if (fd >= 0)
		close(fd); /* releases the in-use lock */
	close(dfd);
	return err;
}

int evict_blob(const struct cache *c, const char *hex, bool dry_run,
	       uint64_t *freed)
{
	uint64_t count;

	return evict_one(c, hex, false, dry_run, freed, &count);
}

int evict_to(const struct cache *c, uint64_t target_bytes,
	     bool (*skip)(void *arg, const char *hex), void *arg, bool dry_run,
	     struct evict_result *r)
{
	struct evict_entry *v = NULL;
	struct cache_usage u;
	uint64_t used, freed, count;
	size_t i, n = 0;
	int err;

	err = cache_usage(c, &u);
	if (err)
		return err;
	used = u.bytes;
	if (used <= target_bytes)
		return 0;
	err = evict_list(c, &v, &n);
	if (err)
		return err;
	for (i = 0; i < n && used > target_bytes; i++) {
		if (skip && skip(arg, v[i].hex)) {
			r->skipped++;
			continue;
		}
		err = evict_one(c, v[i].hex, false, dry_run, &freed, &count);
		if (err == -EBUSY) {
			r->busy.n++;
			r->busy.bytes += v[i].bytes;
			continue;
		}
		if (err == -ENOENT)
			continue; /* gone meanwhile */
		if (err) {
			r->errors++;
			continue;
		}
		r->blobs.n++;
		r->blobs.bytes += v[i].bytes;
		r->disk_bytes += freed;
		used -= v[i].bytes < used ? v[i].bytes : used;
	}
	free(v);
	return 0;
}

/* Removes name in dirfd if it is a temporary file older than the age. */
static void clean_tmp(int dirfd, const char *name, int64_t mtime_ns,
		      uint64_t bytes, bool dry_run, struct evict_result *r)
{
	if (mtime_ns > now_ns() - (int64_t)EVICT_TMP_AGE_S * 1000000000)
		return;
	if (!dry_run && unlinkat(dirfd, name, 0) < 0) {
		if (errno != ENOENT)
			r->errors++;
		return;
	}
	r->tmp.n++;
	r->tmp.bytes += bytes;
}

struct orphan_ctx {
	const struct cache *c;
	bool dry_run;
	struct evict_result *r;
};

static int orphan_group(void *arg, const struct bgroup *g)
{
	struct orphan_ctx *oc = arg;
	uint64_t freed, count;
	size_t i;
	int err;

	for (i = 0; i < g->count; i++)
		if (g->v[i].kind == BK_TMP)
			clean_tmp(g->dirfd, g->v[i].name, g->v[i].mtime_ns,
				  g->v[i].bytes, oc->dry_run, oc->r);
	if (g->has_data)
		return 0;
	for (i = 0; i < g->count; i++)
		if (g->v[i].kind != BK_TMP && g->v[i].kind != BK_OTHER)
			break;
	if (i == g->count)
		return 0; /* only temporary files */
	err = evict_one(oc->c, g->hex, true, oc->dry_run, &freed, &count);
	if (!err) {
		oc->r->orphans.n += count;
		oc->r->orphans.bytes += freed;
	} else if (err != -EBUSY && err != -EEXIST && err != -ENOENT) {
		oc->r->errors++;
	}
	return 0;
}

static int orphan_fan(void *arg, int dirfd, const char *fan,
		      const struct bents *l)
{
	(void)fan;
	return for_each_group(dirfd, (struct bents *)l, orphan_group, arg);
}

/* A file of a snapshots/KEY or refs/KEY folder. */
struct kfile {
	char *name;
	int64_t mtime_ns;
	uint64_t bytes;
	bool referenced;
};

static void kfiles_free(struct kfile *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}

/* The regular files of dirfd, temporary ones cleaned on the way. */
static int key_files(int dirfd, bool dry_run, struct evict_result *r,
		     struct kfile **out, size_t *n)
{
	struct kfile *v = NULL;
	size_t alloc = 0;
	struct dirent *de;
	struct stat st;
	DIR *d;
	int err = 0;

	*out = NULL;
	*n = 0;
	d = dir_stream_at(dirfd, ".");
	if (!d)
		return -errno;
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			err = -errno;
			break;
		}
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		if (strstr(de->d_name, ".tmp.")) {
			clean_tmp(dirfd, de->d_name, ts_ns(&st.st_mtim),
				  (uint64_t)st.st_blocks * 512, dry_run, r);
			continue;
		}
		if (*n == alloc) {
			size_t na = alloc ? 2 * alloc : 16;
			struct kfile *nv = realloc(v, na * sizeof(*nv));

			if (!nv) {
				err = -ENOMEM;
				break;
			}
			v = nv;
			alloc = na;
		}
		v[*n].name = strdup(de->d_name);
		if (!v[*n].name) {
			err = -ENOMEM;
			break;
		}
		v[*n].mtime_ns = ts_ns(&st.st_mtim);
		v[*n].bytes = (uint64_t)st.st_blocks * 512;
		v[*n].referenced = false;
		(*n)++;
	}
	closedir(d);
	if (err) {
		kfiles_free(v, *n);
		*n = 0;
		return err;
	}
	*out = v;
	return 0;
}

/* The VERSION a ref file names, as its manifest's file name. */
static bool ref_target(int dirfd, const char *name, char *out, size_t outlen)
{
	char buf[REF_MAX];
	ssize_t len;
	int fd;

	fd = openat(dirfd, name,
		    O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return false;
	len = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (len <= 0)
		return false;
	buf[len] = 0;
	if (buf[len - 1] == '\n')
		buf[--len] = 0;
	if (!len || strchr(buf, '\n') || strlen(buf) != (size_t)len)
		return false;
	if (cache_escape_name(buf, out, outlen - strlen(".json")))
		return false;
	strcat(out, ".json");
	return true;
}

/* One KEY: cleans refs/KEY's temporary files, then the manifests of
 * snapshots/KEY none of its refs names, but the newest. */
static int clean_key(const struct cache *c, const char *key, bool dry_run,
		     struct evict_result *r)
{
	struct kfile *snaps = NULL, *refs = NULL;
	size_t ns = 0, nr = 0, i, j, newest = 0;
	char target[NAME_MAX + 1];
	int sfd, rfd = -1, err;
	int64_t old = now_ns() - (int64_t)EVICT_TMP_AGE_S * 1000000000;

	err = dir_open_at(cache_area_fd(c, AREA_SNAPSHOTS), key, 0700, false,
			  &sfd);
	if (err)
		return 0; /* not a folder: not ours */
	err = key_files(sfd, dry_run, r, &snaps, &ns);
	if (err)
		goto out;
	if (!dir_open_at(cache_area_fd(c, AREA_REFS), key, 0700, false, &rfd)) {
		err = key_files(rfd, dry_run, r, &refs, &nr);
		if (err)
			goto out;
	}
	for (i = 0; i < nr; i++) {
		if (!ref_target(rfd, refs[i].name, target, sizeof(target)))
			continue;
		for (j = 0; j < ns; j++)
			if (!strcmp(snaps[j].name, target))
				snaps[j].referenced = true;
	}
	for (i = 1; i < ns; i++)
		if (snaps[i].mtime_ns > snaps[newest].mtime_ns ||
		    (snaps[i].mtime_ns == snaps[newest].mtime_ns &&
		     strcmp(snaps[i].name, snaps[newest].name) > 0))
			newest = i;
	for (i = 0; i < ns; i++) {
		size_t len = strlen(snaps[i].name);

		if (snaps[i].referenced || i == newest ||
		    snaps[i].mtime_ns > old || len < 6 ||
		    strcmp(snaps[i].name + len - 5, ".json"))
			continue;
		if (!dry_run && unlinkat(sfd, snaps[i].name, 0) < 0) {
			if (errno != ENOENT)
				r->errors++;
			continue;
		}
		r->snapshots.n++;
		r->snapshots.bytes += snaps[i].bytes;
	}
out:
	kfiles_free(snaps, ns);
	kfiles_free(refs, nr);
	if (rfd >= 0)
		close(rfd);
	close(sfd);
	return err;
}

/* Temporary files of refs/KEY folders that have no snapshots/KEY. */
static int clean_refs_tmp(const struct cache *c, const char *key, bool dry_run,
			  struct evict_result *r)
{
	struct kfile *refs = NULL;
	size_t nr = 0;
	int rfd, err;

	if (!faccessat(cache_area_fd(c, AREA_SNAPSHOTS), key, F_OK,
		       AT_SYMLINK_NOFOLLOW))
		return 0; /* done by clean_key */
	if (dir_open_at(cache_area_fd(c, AREA_REFS), key, 0700, false, &rfd))
		return 0;
	err = key_files(rfd, dry_run, r, &refs, &nr);
	kfiles_free(refs, nr);
	close(rfd);
	return err;
}

/* Calls fn for every folder name in the layout folder area. */
static int for_each_key(const struct cache *c, enum cache_area area,
			int (*fn)(const struct cache *c, const char *key,
				  bool dry_run, struct evict_result *r),
			bool dry_run, struct evict_result *r)
{
	struct dirent *de;
	DIR *d;
	int err = 0;

	d = dir_stream_at(cache_area_fd(c, area), ".");
	if (!d)
		return -errno;
	for (;;) {
		errno = 0;
		de = readdir(d);
		if (!de) {
			err = -errno;
			break;
		}
		if (de->d_name[0] == '.')
			continue;
		err = fn(c, de->d_name, dry_run, r);
		if (err)
			break;
	}
	closedir(d);
	return err;
}

int cache_clean_orphans(const struct cache *c, bool dry_run,
			struct evict_result *r)
{
	struct orphan_ctx oc = { .c = c, .dry_run = dry_run, .r = r };
	int err;

	err = for_each_fan(c, orphan_fan, &oc);
	if (!err)
		err = for_each_key(c, AREA_SNAPSHOTS, clean_key, dry_run, r);
	if (!err)
		err = for_each_key(c, AREA_REFS, clean_refs_tmp, dry_run, r);
	return err;
}
