/*
 * cmd_prefetch.c: hollowfs prefetch [--wait] PATH... (issue 11
 * "Background fill").
 *
 * Sets user.hollowfs.prefetch=1 on each PATH, a file or a folder inside a
 * hollowfs mount: the daemon's fill (fs/fill.h) queues it, a folder
 * recursively. With --wait it then follows every file under the paths
 * until each is cached whole: it reads user.hollowfs.cached of the files
 * not complete yet every PREFETCH_POLL_MS, and their
 * user.hollowfs.prefetch, which says "failed: REASON" when the fill of a
 * file failed (that file is given up with one line, exit status 1). On
 * a terminal it shows one progress line refreshed in place (bytes
 * done/total, rate, ETA); otherwise a plain line every PREFETCH_LINE_MS.
 *
 * Runs in the hollowfs process of the command, single-threaded, no locks.
 */
#include "fs/cmd.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "fs/cli.h"
#include "state/clock.h"
#include "state/units.h"

#define PREFETCH_USAGE "hollowfs prefetch [--wait] PATH..."
#define PREFETCH_XATTR "user.hollowfs.prefetch"
#define PREFETCH_POLL_MS 500
#define PREFETCH_LINE_MS 5000 /* not a terminal: a line this often */
#define PREFETCH_RATE_WINDOW 10 /* polls the rate is measured over */

struct pfile {
	char *path; /* owned */
	uint64_t size, cached;
	bool over; /* complete, or given up */
};

struct pwait {
	struct pfile *v;
	size_t n, alloc;
	uint64_t total, done; /* bytes of the files, and cached */
	bool failed; /* a file's fill failed: exit status 1 */
};

/* nftw has no user argument. */
static struct pwait *walk_into;
static int walk_err;

static int walk_add(const char *path, const struct stat *st, int type,
		    struct FTW *ftw)
{
	struct pwait *w = walk_into;
	struct pfile *f;

	(void)ftw;
	if (type != FTW_F || !S_ISREG(st->st_mode))
		return 0;
	if (w->n == w->alloc) {
		size_t alloc = w->alloc ? w->alloc * 2 : 64;
		struct pfile *v = realloc(w->v, alloc * sizeof(*v));

		if (!v) {
			walk_err = -ENOMEM;
			return 1;
		}
		w->v = v;
		w->alloc = alloc;
	}
	f = &w->v[w->n];
	memset(f, 0, sizeof(*f));
	f->path = strdup(path);
	if (!f->path) {
		walk_err = -ENOMEM;
		return 1;
	}
	f->size = (uint64_t)st->st_size;
	w->total += f->size;
	w->n++;
	return 0;
}

/*
 * The root of the mount that holds path (the topmost folder above it on
 * the same device) into root; 0, or -errno of a stat.
 */
static int mount_root(const char *path, char *root, size_t len)
{
	char cur[PATH_MAX], up[PATH_MAX + 4];
	struct stat st, ust;

	if (!realpath(path, cur))
		return -errno;
	if (stat(cur, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode)) {
		char *slash = strrchr(cur, '/');

		if (slash == cur)
			slash[1] = '\0';
		else if (slash)
			*slash = '\0';
		if (stat(cur, &st) < 0)
			return -errno;
	}
	while (strcmp(cur, "/")) {
		char *slash;

		snprintf(up, sizeof(up), "%s/..", cur);
		if (stat(up, &ust) < 0 || ust.st_dev != st.st_dev)
			break;
		slash = strrchr(cur, '/');
		if (slash == cur)
			slash[1] = '\0';
		else
			*slash = '\0';
	}
	snprintf(root, len, "%s", cur);
	return 0;
}

/* Queues path; one line on stderr and an error when it cannot. */
static int queue_path(const char *path)
{
	char root[PATH_MAX], buf[64];
	struct stat st;
	int err;

	if (stat(path, &st) < 0) {
		err = -errno;
		fprintf(stderr, "hollowfs: '%s': %s\n", path, strerror(-err));
		return err;
	}
	err = mount_root(path, root, sizeof(root));
	if (!err && getxattr(root, "user.hollowfs.stats", buf, 0) < 0)
		err = -ENOTSUP;
	if (err) {
		fprintf(stderr, "hollowfs: '%s' is not in a hollowfs mount\n",
			path);
		return err;
	}
	if (setxattr(path, PREFETCH_XATTR, "1", 1, 0) < 0) {
		err = -errno;
		if (err == -EROFS || err == -ENOTSUP)
			fprintf(stderr,
				"hollowfs: '%s': this mount does not take "
				"prefetch requests (%s): is its daemon older "
				"than this command?\n",
				path, strerror(-err));
		else
			fprintf(stderr, "hollowfs: cannot prefetch '%s': %s\n",
				path, strerror(-err));
		return err;
	}
	return 0;
}

/* Looks at the files not over yet: their cached bytes, a failed fill. */
static void poll_files(struct pwait *w)
{
	char buf[256];
	size_t i;
	ssize_t n;

	w->done = 0;
	for (i = 0; i < w->n; i++) {
		struct pfile *f = &w->v[i];

		if (f->over) {
			w->done += f->cached;
			continue;
		}
		n = getxattr(f->path, "user.hollowfs.cached", buf,
			     sizeof(buf) - 1);
		if (n < 0) {
			fprintf(stderr, "%shollowfs: '%s': %s\n",
				isatty(STDERR_FILENO) ? "\r\033[K" : "",
				f->path, strerror(errno));
			f->over = true;
			w->failed = true;
			continue;
		}
		buf[n] = '\0';
		f->cached = strtoull(buf, NULL, 10);
		w->done += f->cached;
		if (f->cached >= f->size) {
			f->over = true;
			continue;
		}
		n = getxattr(f->path, PREFETCH_XATTR, buf, sizeof(buf) - 1);
		if (n < 0)
			continue; /* no status: only the bytes tell */
		buf[n] = '\0';
		if (!strncmp(buf, "failed", 6)) {
			fprintf(stderr,
				"%shollowfs: '%s': background fill %s\n",
				isatty(STDERR_FILENO) ? "\r\033[K" : "",
				f->path, buf);
			f->over = true;
			w->failed = true;
		}
	}
}

static bool all_over(const struct pwait *w)
{
	size_t i;

	for (i = 0; i < w->n; i++)
		if (!w->v[i].over)
			return false;
	return true;
}

static void show(const struct pwait *w, uint64_t rate, bool tty, bool last)
{
	char done[UNITS_BYTES_MAX], total[UNITS_BYTES_MAX];
	char rbuf[UNITS_BYTES_MAX], eta[32];
	uint64_t left = w->total > w->done ? w->total - w->done : 0;

	units_bytes(w->done, done, sizeof(done));
	units_bytes(w->total, total, sizeof(total));
	units_bytes(rate, rbuf, sizeof(rbuf));
	if (!left)
		snprintf(eta, sizeof(eta), "done");
	else if (!rate)
		snprintf(eta, sizeof(eta), "ETA --");
	else if (left / rate >= 3600)
		snprintf(eta, sizeof(eta), "ETA %" PRIu64 "h%02" PRIu64 "m",
			 left / rate / 3600, left / rate / 60 % 60);
	else
		snprintf(eta, sizeof(eta), "ETA %" PRIu64 "m%02" PRIu64 "s",
			 left / rate / 60, left / rate % 60);
	printf("%s%s / %s (%u%%), %s/s, %s%s", tty ? "\r\033[K" : "", done,
	       total, units_percent(w->done, w->total), rbuf, eta,
	       tty && !last ? "" : "\n");
	fflush(stdout);
}

static int wait_files(struct pwait *w)
{
	uint64_t hist_ms[PREFETCH_RATE_WINDOW], hist_done[PREFETCH_RATE_WINDOW];
	uint64_t now, rate = 0, last_line = 0;
	bool tty = isatty(STDOUT_FILENO);
	unsigned int k = 0;
	struct timespec ts = { 0, PREFETCH_POLL_MS * 1000000L };

	for (;;) {
		poll_files(w);
		now = clock_now_ms();
		/* The rate over the last PREFETCH_RATE_WINDOW polls. */
		hist_ms[k % PREFETCH_RATE_WINDOW] = now;
		hist_done[k % PREFETCH_RATE_WINDOW] = w->done;
		if (k) {
			unsigned int o = 0; /* the oldest look kept */

			if (k >= PREFETCH_RATE_WINDOW - 1)
				o = (k + 1) % PREFETCH_RATE_WINDOW;

			if (now > hist_ms[o] && w->done >= hist_done[o])
				rate = (w->done - hist_done[o]) * 1000 /
				       (now - hist_ms[o]);
		}
		k++;
		if (all_over(w)) {
			show(w, rate, tty, true);
			return w->failed ? CLI_EXIT_ERR : CLI_EXIT_OK;
		}
		if (tty || now - last_line >= PREFETCH_LINE_MS) {
			show(w, rate, tty, false);
			last_line = now;
		}
		nanosleep(&ts, NULL);
	}
}

static void usage(FILE *out)
{
	fprintf(out,
		"usage: " PREFETCH_USAGE "\n"
		"Fill files, or every file under folders, of a hollowfs mount "
		"in the\nbackground. --wait: show the progress and return "
		"once all of them are\ncached (exit status 1 if the fill of "
		"one failed).\n");
}

int cmd_prefetch(int argc, char *argv[])
{
	struct pwait w = { 0 };
	bool wait = false, opts_done = false;
	int i, npaths = 0, ret = CLI_EXIT_OK;
	size_t j;

	for (i = 1; i < argc; i++) {
		if (opts_done || argv[i][0] != '-') {
			npaths++;
			continue;
		}
		if (!strcmp(argv[i], "--")) {
			opts_done = true;
		} else if (!strcmp(argv[i], "--wait")) {
			wait = true;
		} else if (!strcmp(argv[i], "-h") ||
			   !strcmp(argv[i], "--help")) {
			usage(stdout);
			return CLI_EXIT_OK;
		} else {
			fprintf(stderr,
				"hollowfs: prefetch: unknown option '%s' "
				"(usage: " PREFETCH_USAGE ")\n",
				argv[i]);
			return CLI_EXIT_USAGE;
		}
	}
	if (!npaths) {
		fprintf(stderr,
			"hollowfs: prefetch: no PATH given (usage: " PREFETCH_USAGE
			")\n");
		return CLI_EXIT_USAGE;
	}
	opts_done = false;
	walk_into = &w;
	for (i = 1; i < argc; i++) {
		if (!opts_done && argv[i][0] == '-') {
			opts_done = !strcmp(argv[i], "--");
			continue;
		}
		if (queue_path(argv[i])) {
			ret = CLI_EXIT_ERR;
			continue;
		}
		if (!wait)
			continue;
		walk_err = 0;
		if (nftw(argv[i], walk_add, 16, FTW_PHYS | FTW_MOUNT) < 0 &&
		    !walk_err)
			walk_err = -errno;
		if (walk_err) {
			fprintf(stderr, "hollowfs: cannot list '%s': %s\n",
				argv[i], strerror(-walk_err));
			ret = CLI_EXIT_ERR;
		}
	}
	if (wait && w.n && wait_files(&w) != CLI_EXIT_OK)
		ret = CLI_EXIT_ERR;
	for (j = 0; j < w.n; j++)
		free(w.v[j].path);
	free(w.v);
	return ret;
}
