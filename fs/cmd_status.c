/*
 * cmd_status.c: hollowfs status [MOUNTPOINT | -o cache=DIR] [--json]
 * (DESIGN.md "Command line").
 *
 * Of a live mount: every file with its size, cached bytes and a progress
 * bar, read through the mount (user.hollowfs.cached and .chunks of each
 * file), plus what the daemon is doing (its user.hollowfs.stats, read
 * twice STATUS_RATE_MS apart for the fetch rate). Of a cache folder
 * without a mount: the files of every snapshot saved in it, each found
 * in its blob's sidecar (state/peek.h), and the blobs no snapshot names.
 * Totals at the bottom; --json prints one object instead, for scripts.
 */
#include "fs/cmd.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "fs/cli.h"
#include "fs/stats.h"
#include "state/cache.h"
#include "state/clock.h"
#include "state/peek.h"
#include "state/units.h"

#define STATUS_USAGE "hollowfs status [MOUNTPOINT | -o cache=DIR] [--json]"
#define STATUS_RATE_MS 1000 /* between the two looks at a mount's stats */
#define STATUS_BAR 20 /* cells of a progress bar */
#define STATUS_PATH_MAX_COL 60 /* longer paths push their row right */

struct row {
	char *path; /* owned */
	long snap; /* index in the snapshots, -1: a blob no one names */
	uint64_t size, cached, chunks_done, chunks;
};

struct status {
	struct row *rows;
	size_t n, alloc;
	/* the snapshots, by index (borrowed from cmd_files or stats) */
	const struct cmd_snapshot *snaps;
	size_t nsnaps;
	struct cmd_snapshot live_snap; /* borrowed from the stats */
	const char *mountpoint, *cache;
	/* a live mount: its stats, and bytes fetched per second */
	bool live;
	struct fs_stats st;
	uint64_t rate;
};

static int row_add(struct status *s, const char *path, long snap,
		   struct row **out)
{
	struct row *r;

	if (s->n == s->alloc) {
		size_t n = s->alloc ? 2 * s->alloc : 64;
		struct row *v = realloc(s->rows, n * sizeof(*v));

		if (!v)
			return -ENOMEM;
		s->rows = v;
		s->alloc = n;
	}
	r = &s->rows[s->n];
	memset(r, 0, sizeof(*r));
	r->snap = snap;
	r->path = strdup(path);
	if (!r->path)
		return -ENOMEM;
	s->n++;
	*out = r;
	return 0;
}

static void status_release(struct status *s)
{
	size_t i;

	for (i = 0; i < s->n; i++)
		free(s->rows[i].path);
	free(s->rows);
	fs_stats_release(&s->st);
}

/* ---- a live mount ---- */

static int xattr_u64(const char *path, const char *name, uint64_t *a,
		     uint64_t *b)
{
	char buf[64];
	ssize_t n = getxattr(path, name, buf, sizeof(buf) - 1);

	if (n < 0)
		return -errno;
	buf[n] = '\0';
	if (b)
		return sscanf(buf, "%" SCNu64 "/%" SCNu64, a, b) == 2 ?
			       0 :
			       -EBADMSG;
	return sscanf(buf, "%" SCNu64, a) == 1 ? 0 : -EBADMSG;
}

/* Every file under dir (a path in the mount; rel its path from the
 * root, "" for the root). */
static int walk_mount(struct status *s, const char *dir, const char *rel)
{
	char path[PATH_MAX], sub[PATH_MAX];
	struct dirent *d;
	struct row *r;
	struct stat st;
	DIR *dp;
	int err = 0;

	dp = opendir(dir);
	if (!dp) {
		err = -errno;
		fprintf(stderr, "hollowfs: cannot list '%s': %s\n", dir,
			strerror(-err));
		return err;
	}
	while (!err && (d = readdir(dp))) {
		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, d->d_name) >=
			    (int)sizeof(path) ||
		    snprintf(sub, sizeof(sub), "%s%s%s", rel, *rel ? "/" : "",
			     d->d_name) >= (int)sizeof(sub)) {
			err = -ENAMETOOLONG;
			break;
		}
		if (lstat(path, &st) < 0) {
			err = -errno;
			break;
		}
		if (S_ISDIR(st.st_mode)) {
			err = walk_mount(s, path, sub);
			continue;
		}
		if (!S_ISREG(st.st_mode))
			continue;
		err = row_add(s, sub, 0, &r);
		if (err)
			break;
		r->size = (uint64_t)st.st_size;
		err = xattr_u64(path, "user.hollowfs.cached", &r->cached, NULL);
		if (!err)
			err = xattr_u64(path, "user.hollowfs.chunks",
					&r->chunks_done, &r->chunks);
		if (err)
			fprintf(stderr,
				"hollowfs: cannot read the state of "
				"'%s': %s\n",
				path, strerror(-err));
	}
	closedir(dp);
	return err;
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000),
			       (long)(ms % 1000) * 1000000 };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static int status_mount(struct status *s, const char *mnt)
{
	struct fs_stats later;
	uint64_t t0, dt;
	int err;

	err = cmd_mount_stats(mnt, &s->st);
	if (err)
		return err;
	t0 = clock_now_ms();
	s->live = true;
	s->mountpoint = mnt;
	s->cache = s->st.cache;
	s->live_snap.source = s->st.source;
	s->live_snap.version = s->st.version;
	s->snaps = &s->live_snap;
	s->nsnaps = 1;
	err = walk_mount(s, mnt, "");
	if (err)
		return err;
	dt = clock_now_ms() - t0;
	if (dt < STATUS_RATE_MS)
		sleep_ms(STATUS_RATE_MS - dt);
	err = cmd_mount_stats(mnt, &later);
	if (err)
		return err;
	dt = clock_now_ms() - t0;
	s->rate = later.bytes_fetched > s->st.bytes_fetched ?
			  (later.bytes_fetched - s->st.bytes_fetched) * 1000 /
				  (dt ? dt : 1) :
			  0;
	/* The later counters, the first strings (they are the same):
	 * s->snaps and s->cache point at these. */
	fs_stats_release(&later);
	later.source = s->st.source;
	later.version = s->st.version;
	later.cache = s->st.cache;
	s->st.source = s->st.version = s->st.cache = NULL;
	fs_stats_release(&s->st);
	s->st = later;
	return 0;
}

/* ---- a cache folder ---- */

static int status_cache(struct status *s, struct cache *c,
			const struct cmd_files *f)
{
	struct blob_peek p;
	struct row *r;
	size_t i;
	int err;

	s->cache = cache_dir(c);
	s->snaps = f->snaps;
	s->nsnaps = f->nsnaps;
	for (i = 0; i < f->n; i++) {
		const struct cmd_file *cf = &f->v[i];

		err = row_add(s, cf->path, cf->snap, &r);
		if (err)
			return err;
		r->size = cf->size;
		if (!cf->hex[0])
			continue;
		err = blob_peek_open(c, cf->hex, false, &p);
		if (err) {
			fprintf(stderr,
				"hollowfs: cannot read the state of '%s': "
				"%s\n",
				cf->path, strerror(-err));
			return err;
		}
		if (p.sc) {
			r->cached = blob_peek_done_bytes(&p);
			r->chunks_done = p.sc->done_count;
			r->chunks = p.sc->nchunks;
			if (cf->snap < 0)
				r->size = p.sc->layout.file_size;
		}
		blob_peek_release(&p);
	}
	return 0;
}

/* ---- output ---- */

static const char *or_unknown(const char *s)
{
	return s ? s : "?";
}

static void print_row(int width, const char *name, uint64_t size,
		      uint64_t cached)
{
	char sz[UNITS_BYTES_MAX], ca[UNITS_BYTES_MAX], bar[STATUS_BAR + 3];

	units_bytes(size, sz, sizeof(sz));
	units_bytes(cached, ca, sizeof(ca));
	units_bar(cached, size, STATUS_BAR, bar, sizeof(bar));
	printf("  %-*s %10s %10s  %s %3u%%\n", width, name, sz, ca, bar,
	       units_percent(cached, size));
}

static void print_text(const struct status *s)
{
	uint64_t size = 0, cached = 0;
	char rate[UNITS_BYTES_MAX];
	long snap = -2;
	char total[64];
	int width;
	size_t i;

	snprintf(total, sizeof(total), "TOTAL %zu file%s", s->n,
		 s->n == 1 ? "" : "s");
	width = (int)strlen(total);
	for (i = 0; i < s->n; i++) {
		int len = (int)strlen(s->rows[i].path);

		if (len > width)
			width = len > STATUS_PATH_MAX_COL ?
					STATUS_PATH_MAX_COL :
					len;
	}
	if (s->live)
		printf("mounted at %s, cache %s\n", s->mountpoint,
		       or_unknown(s->cache));
	else
		printf("cache %s\n", s->cache);
	for (i = 0; i < s->n; i++) {
		const struct row *r = &s->rows[i];

		if (r->snap != snap) {
			snap = r->snap;
			if (snap >= 0)
				printf("%s @ %s\n",
				       or_unknown(s->snaps[snap].source),
				       or_unknown(s->snaps[snap].version));
			else
				printf("blobs no saved snapshot names\n");
			printf("  %-*s %10s %10s  PROGRESS\n", width, "FILE",
			       "SIZE", "CACHED");
		}
		print_row(width, r->path, r->size, r->cached);
		size += r->size;
		cached += r->cached;
	}
	if (!s->n)
		printf("  no files\n");
	print_row(width, total, size, cached);
	if (!s->live)
		return;
	units_bytes(s->rate, rate, sizeof(rate));
	printf("fetching %s/s, %" PRIu64 " of %" PRIu64
	       " connections in use, chunks queued: %" PRIu64
	       " demand, %" PRIu64 " readahead, %" PRIu64
	       " background, %" PRIu64 " in flight\n",
	       rate, s->st.conn_in_use, s->st.conn_max, s->st.queued[0],
	       s->st.queued[1], s->st.queued[2], s->st.inflight);
}

static json_t *jstr(const char *v)
{
	return v ? json_string(v) : json_null();
}

static json_t *jnum(uint64_t v)
{
	return json_integer((json_int_t)v);
}

static json_t *row_json(const struct row *r, bool blob)
{
	return json_pack("{s:o, s:o, s:o, s:o, s:o}", blob ? "blob" : "path",
			 jstr(blob ? r->path + 9 : r->path), "size",
			 jnum(r->size), "cached", jnum(r->cached), "chunks",
			 jnum(r->chunks), "chunks_done", jnum(r->chunks_done));
}

static json_t *live_json(const struct status *s)
{
	if (!s->live)
		return json_null();
	return json_pack(
		"{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o,"
		" s:{s:o, s:o, s:o}}",
		"fetch_rate", jnum(s->rate), "connections_in_use",
		jnum(s->st.conn_in_use), "connections_max",
		jnum(s->st.conn_max), "inflight", jnum(s->st.inflight),
		"bytes_fetched", jnum(s->st.bytes_fetched), "bytes_served",
		jnum(s->st.bytes_served), "bytes_from_cache",
		jnum(s->st.bytes_from_cache), "reads", jnum(s->st.reads),
		"read_errors", jnum(s->st.read_errors), "requests",
		jnum(s->st.requests), "retries", jnum(s->st.retries), "errors",
		jnum(s->st.errors), "queued", "demand", jnum(s->st.queued[0]),
		"readahead", jnum(s->st.queued[1]), "background",
		jnum(s->st.queued[2]));
}

static int print_json(const struct status *s)
{
	json_t *o, *snaps = json_array(), *blobs = json_array(), *files;
	uint64_t size = 0, cached = 0;
	char *text = NULL;
	size_t i, k;
	int bad = !snaps || !blobs;

	for (k = 0; k < s->nsnaps && !bad; k++) {
		files = json_array();
		bad |= !files;
		for (i = 0; i < s->n && !bad; i++)
			if (s->rows[i].snap == (long)k)
				bad |= json_array_append_new(
					files, row_json(&s->rows[i], false));
		bad |= json_array_append_new(
			snaps, json_pack("{s:o, s:o, s:o}", "source",
					 jstr(s->snaps[k].source), "version",
					 jstr(s->snaps[k].version), "files",
					 files ? files : json_null()));
	}
	for (i = 0; i < s->n && !bad; i++) {
		size += s->rows[i].size;
		cached += s->rows[i].cached;
		if (s->rows[i].snap < 0)
			bad |= json_array_append_new(
				blobs, row_json(&s->rows[i], true));
	}
	o = bad ? NULL :
		  json_pack("{s:o, s:o, s:O, s:O, s:{s:o, s:o, s:o}, s:o}",
			    "mountpoint", jstr(s->mountpoint), "cache",
			    jstr(s->cache), "snapshots", snaps, "blobs", blobs,
			    "total", "files", jnum(s->n), "size", jnum(size),
			    "cached", jnum(cached), "live", live_json(s));
	if (o)
		text = json_dumps(o, JSON_INDENT(2) | JSON_ENSURE_ASCII);
	json_decref(o);
	json_decref(snaps);
	json_decref(blobs);
	if (!text) {
		fprintf(stderr, "hollowfs: out of memory\n");
		return -ENOMEM;
	}
	printf("%s\n", text);
	free(text);
	return 0;
}

int cmd_status(int argc, char *argv[])
{
	struct status s = { 0 };
	struct cache *c = NULL;
	struct cmd_files f = { 0 };
	struct cmd_args a;
	int ret, err;

	ret = cmd_args_parse(argc, argv, STATUS_USAGE, true, false, &a);
	if (ret)
		return ret == CMD_ARGS_HELP ? CLI_EXIT_OK : ret;
	if (a.mountpoint) {
		err = status_mount(&s, a.mountpoint);
	} else {
		err = cmd_cache_open(&a, &c);
		if (!err)
			err = cmd_cache_files(c, &a, NULL, NULL, true, &f);
		if (!err)
			err = status_cache(&s, c, &f);
	}
	if (err == -ENOMEM)
		fprintf(stderr, "hollowfs: out of memory\n");
	if (!err) {
		if (a.json)
			err = print_json(&s);
		else
			print_text(&s);
	}
	ret = err ? CLI_EXIT_ERR : CLI_EXIT_OK;
	if (fflush(stdout) == EOF)
		ret = CLI_EXIT_ERR;
	status_release(&s);
	cmd_files_release(&f);
	cache_free(c);
	cmd_args_release(&a);
	return ret;
}
