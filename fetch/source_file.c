/*
 * source_file.c: SOURCE file:///ABS/PATH, a local or network folder (or
 * one file, mounted in a folder of its own) (DESIGN.md "Sources").
 *
 * The tree is walked with openat(O_NOFOLLOW) and fstatat(no follow):
 * symlinks are never followed out of the tree (they are skipped, as are
 * sockets, devices and FIFOs), so the listing shows exactly the regular
 * files and folders under PATH. Only PATH itself may be a symlink.
 * Each file's bytes are read by the worker pool with pread from the file
 * itself, never through curl (file_target gives the scheduler its path);
 * its identity is its file:// URL plus its mtime (no content id).
 *
 * No locks: one thread lists.
 */
#include "fetch/source.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fetch/dirindex.h"
#include "fetch/source_i.h"
#include "state/hlog.h"
#include "state/manifest.h"

#define FILE_FORM "file:///ABSOLUTE/PATH"

struct source_file {
	struct source base; /* first */
	char *path; /* absolute, no trailing '/' but for "/" */
};

struct fwalk {
	struct source_file *fs;
	struct manifest *m;
	size_t count; /* entries added */
	bool capped;
	char *err;
	size_t errlen;
};

/*
 * "file://" + every component of root, then of rel, escaped
 * (url_escape_component). New string, or NULL on ENOMEM.
 */
static char *file_url(const char *root, const char *rel)
{
	const char *parts[2] = { root, rel };
	char *url, *o;
	size_t need = sizeof("file://") + 3 * (strlen(root) + strlen(rel)) + 2;
	int k;

	url = malloc(need);
	if (!url)
		return NULL;
	o = url + sprintf(url, "file://");
	for (k = 0; k < 2; k++) {
		const char *p = parts[k];

		while (*p) {
			size_t n;
			char *esc;

			while (*p == '/')
				p++;
			n = strcspn(p, "/");
			if (!n)
				break;
			esc = dirindex_escape(p, n);
			if (!esc) {
				free(url);
				return NULL;
			}
			*o++ = '/';
			o = stpcpy(o, esc); /* 3 * n at most: fits */
			free(esc);
			p += n;
		}
	}
	if (o == url + 7)
		*o++ = '/';
	*o = '\0';
	return url;
}

/* The absolute path of rel, for log lines, into buf. */
static const char *abs_shown(const struct fwalk *w, const char *rel, char *buf,
			     size_t buflen)
{
	char tmp[PATH_MAX * 2];

	snprintf(tmp, sizeof(tmp), "%s%s%s", w->fs->path,
		 strcmp(w->fs->path, "/") && *rel ? "/" : "", rel);
	return dirindex_printable(tmp, strlen(tmp), buf, buflen);
}

static bool fwalk_room(struct fwalk *w)
{
	if (w->count < w->fs->base.max_entries)
		return true;
	if (!w->capped)
		hlog(HLOG_WARN, HLOG_FETCH,
		     "listing of '%s' stopped at %zu entries: the rest is not "
		     "shown",
		     w->fs->path, w->count);
	w->capped = true;
	return false;
}

/* Returns 0 (also when the entry was skipped with a warning) or a fatal
 * error (-ENOMEM). */
static int fwalk_add(struct fwalk *w, const char *rel, const struct stat *st,
		     bool is_dir)
{
	char shown[512];
	char *url = NULL;
	int err;

	if (!is_dir) {
		url = file_url(w->fs->path, rel);
		if (!url)
			return -ENOMEM;
	}
	err = manifest_add(w->m, rel, is_dir ? MENTRY_DIR : MENTRY_FILE,
			   is_dir ? 0 : (uint64_t)st->st_size,
			   (int64_t)st->st_mtim.tv_sec, NULL, NULL, url);
	free(url);
	if (err == -ENOMEM)
		return err;
	if (err) {
		hlog(HLOG_WARN, HLOG_FETCH,
		     "listing of '%s': skipping '%s': %s", w->fs->path,
		     abs_shown(w, rel, shown, sizeof(shown)), strerror(-err));
		return 0;
	}
	w->count++;
	return 0;
}

/*
 * Lists the folder open as dfd (taken: closed here), at rel in the
 * manifest. A folder that can't be read is an error at the root and a
 * warning below it. Returns 0, -ENOMEM, or the root's error.
 */
static int fwalk_dir(struct fwalk *w, int dfd, const char *rel, int depth)
{
	char shown[512];
	struct dirent *de;
	DIR *dir;
	int err = 0;

	dir = fdopendir(dfd);
	if (!dir) {
		err = -errno;
		close(dfd);
		goto out;
	}
	for (;;) {
		const char *name;
		struct stat st;
		char *child;
		int cfd;

		errno = 0;
		de = readdir(dir);
		if (!de) {
			err = -errno;
			break;
		}
		name = de->d_name;
		if (!strcmp(name, ".") || !strcmp(name, ".."))
			continue;
		if (!manifest_name_ok(name)) {
			hlog(HLOG_WARN, HLOG_FETCH,
			     "listing of '%s': skipping unsafe name '%s'",
			     w->fs->path,
			     dirindex_printable(name, strlen(name), shown,
						sizeof(shown)));
			continue;
		}
		child = source_join(rel, *rel ? "/" : "", name, "");
		if (!child) {
			err = -ENOMEM;
			break;
		}
		if (fstatat(dirfd(dir), name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			/* Gone since readdir, or unreadable: not fatal. */
			hlog(HLOG_WARN, HLOG_FETCH, "skipping '%s': %s",
			     abs_shown(w, child, shown, sizeof(shown)),
			     strerror(errno));
			free(child);
			continue;
		}
		if (!S_ISREG(st.st_mode) && !S_ISDIR(st.st_mode)) {
			hlog(HLOG_DEBUG, HLOG_FETCH, "skipping '%s': %s",
			     abs_shown(w, child, shown, sizeof(shown)),
			     S_ISLNK(st.st_mode) ? "a symlink" :
						   "not a regular file");
			free(child);
			continue;
		}
		if (!fwalk_room(w)) {
			free(child);
			break;
		}
		err = fwalk_add(w, child, &st, S_ISDIR(st.st_mode));
		if (err || !S_ISDIR(st.st_mode)) {
			free(child);
			if (err)
				break;
			continue;
		}
		if (depth + 1 > w->fs->base.max_depth) {
			hlog(HLOG_WARN, HLOG_FETCH,
			     "listing of '%s': not entering '%s': more than %d "
			     "folders deep",
			     w->fs->path,
			     abs_shown(w, child, shown, sizeof(shown)),
			     w->fs->base.max_depth);
			free(child);
			continue;
		}
		cfd = openat(dirfd(dir), name,
			     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (cfd < 0) {
			hlog(HLOG_WARN, HLOG_FETCH,
			     "skipping folder '%s': cannot read it: %s",
			     abs_shown(w, child, shown, sizeof(shown)),
			     strerror(errno));
			free(child);
			continue;
		}
		err = fwalk_dir(w, cfd, child, depth + 1);
		free(child);
		if (err)
			break;
	}
	closedir(dir);
out:
	if (!err || err == -ENOMEM)
		return err;
	if (depth == 0) {
		snprintf(w->err, w->errlen, "cannot read '%s': %s", w->fs->path,
			 strerror(-err));
		return err;
	}
	/* Below the root: what could be read is kept. */
	hlog(HLOG_WARN, HLOG_FETCH, "listing of folder '%s' is incomplete: %s",
	     abs_shown(w, rel, shown, sizeof(shown)), strerror(-err));
	return 0;
}

static int file_list(struct source *src, struct engine *e,
		     struct manifest **out, char *err, size_t errlen)
{
	struct source_file *fs = (struct source_file *)src;
	struct fwalk w = { .fs = fs, .err = err, .errlen = errlen };
	struct stat st;
	int rc, fd;

	(void)e; /* local files are listed without the network */
	*out = NULL;
	if (errlen)
		err[0] = '\0';
	rc = manifest_new(&w.m);
	if (rc)
		goto out;
	if (stat(fs->path, &st) < 0) {
		rc = -errno;
		if (rc == -ENOENT || rc == -ENOTDIR)
			snprintf(err, errlen, "'%s' does not exist", fs->path);
		else
			snprintf(err, errlen, "cannot read '%s': %s", fs->path,
				 strerror(-rc));
		goto out;
	}
	if (S_ISREG(st.st_mode)) {
		/* One file: a folder holding it, under its own name. */
		const char *name = strrchr(fs->path, '/') + 1;

		rc = fwalk_add(&w, name, &st, false);
		if (!rc && !w.count) {
			snprintf(err, errlen,
				 "'%s': its name cannot be a file "
				 "name",
				 fs->path);
			rc = -EINVAL;
		}
	} else if (S_ISDIR(st.st_mode)) {
		fd = open(fs->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0) {
			rc = -errno;
			snprintf(err, errlen, "cannot read '%s': %s", fs->path,
				 strerror(-rc));
			goto out;
		}
		rc = fwalk_dir(&w, fd, "", 0);
	} else {
		snprintf(err, errlen,
			 "'%s' is neither a folder nor a regular "
			 "file",
			 fs->path);
		rc = -EINVAL;
	}
	if (!rc)
		rc = source_list_finish(src, w.m, "listing");
	if (rc)
		goto out;
	hlog(HLOG_INFO, HLOG_FETCH, "listed '%s': %zu files, %" PRIu64 " bytes",
	     fs->path, manifest_file_count(w.m), manifest_total_bytes(w.m));
	*out = w.m;
	w.m = NULL;
out:
	source_list_failed(fs->path, rc, err, errlen);
	manifest_free(w.m);
	return rc;
}

/*
 * The path of a file: SOURCE, decoded, slashes collapsed, no trailing
 * slash. "file://localhost/..." is the same as "file:///...".
 */
static int file_parse(const char *spec, char **out, char *err, size_t errlen)
{
	const char *p = spec + strlen("file:");
	char *dec = NULL, *o;
	const char *q;
	int rc;

	*out = NULL;
	if (strncmp(p, "//", 2))
		goto bad_form;
	p += 2;
	if (!strncasecmp(p, "localhost/", 10))
		p += 9;
	if (*p != '/')
		goto bad_form;
	rc = dirindex_unescape(p, strlen(p), &dec, NULL);
	if (rc == -EINVAL) {
		snprintf(err, errlen,
			 "malformed SOURCE '%s': bad percent-escape in the "
			 "path (write '%%' as %%25)",
			 spec);
		return rc;
	}
	if (rc)
		return rc;
	/* Collapse "//" and drop the trailing '/', in place. */
	for (o = dec, q = dec; *q; q++) {
		if (*q == '/' && o > dec && o[-1] == '/')
			continue;
		*o++ = *q;
	}
	if (o > dec + 1 && o[-1] == '/')
		o--;
	*o = '\0';
	if (strlen(dec) >= PATH_MAX) {
		free(dec);
		snprintf(err, errlen,
			 "malformed SOURCE '%s': the path is too "
			 "long",
			 spec);
		return -ENAMETOOLONG;
	}
	*out = dec;
	return 0;
bad_form:
	snprintf(err, errlen,
		 "malformed SOURCE '%s': expected %s (an "
		 "absolute path)",
		 spec, FILE_FORM);
	return -EINVAL;
}

static void file_free(struct source *src)
{
	struct source_file *fs = (struct source_file *)src;

	free(fs->path);
	free(fs);
}

static int file_open(const char *spec, const struct source_opts *o,
		     struct source **out, char *err, size_t errlen)
{
	struct source_file *fs;
	int rc;

	fs = (struct source_file *)source_alloc(sizeof(*fs), &source_file_ops,
						"file", spec, o);
	if (!fs)
		return source_open_done(NULL, -ENOMEM, out, err, errlen);
	rc = file_parse(spec, &fs->path, err, errlen);
	if (!rc) {
		fs->base.cache_key = strdup(fs->path);
		if (!fs->base.cache_key)
			rc = -ENOMEM;
	}
	return source_open_done(&fs->base, rc, out, err, errlen);
}

/*
 * The bytes of a file:// entry never go through curl: the worker pool
 * preads them from the file itself (fetch/sched.c, copy_run). Its path,
 * decoded from the entry's file:// URL (so a one-file source works too),
 * follows the identity in idbuf; t->local_path stays NULL (reads then
 * fail) only if it does not fit or does not decode.
 */
static void file_target(const struct source *src, const struct manifest *m,
			uint64_t idx, struct fblob_target *t, char *idbuf,
			size_t idlen)
{
	const char *url = m->entries[idx].url;
	size_t used;
	int n;

	source_url_target(src, m, idx, t, idbuf, idlen);
	used = strlen(idbuf) + 1;
	if (!url || strncmp(url, "file://", 7) || used >= idlen)
		return;
	n = snprintf(idbuf + used, idlen - used, "%s", url + 7);
	if (n <= 0 || (size_t)n >= idlen - used || url_unescape(idbuf + used) ||
	    idbuf[used] != '/')
		return;
	t->local_path = idbuf + used;
}

const struct source_ops source_file_ops = {
	.scheme = "file",
	.open = file_open,
	.list = file_list,
	.target = file_target,
	.free = file_free,
};
