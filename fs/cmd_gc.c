/*
 * cmd_gc.c: hollowfs gc [-o cache=DIR] [--max SIZE] [--dry-run]
 * (DESIGN.md "Command line").
 *
 * Cleans a cache: first what nothing needs (cache_clean_orphans: files of
 * blobs without a data file, stale temporary files, snapshot manifests no
 * ref names but the newest of each source), then the least recently used
 * blobs no process has open, until the cache holds at most --max (when
 * given) and its file system has cache_min_free free (default 5% of it).
 * Prints one short table of what went, by kind, and a total line, with
 * what was kept because a process has it open.
 *
 * Safe while mounts of the same cache run: every blob is removed under
 * its in-use lock held exclusively, taken without waiting (state/evict.h);
 * a blob any mount has open is busy and left. Single-threaded; the only
 * locks are those.
 */
#include "fs/cmd.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs/cli.h"
#include "state/cache.h"
#include "state/evict.h"
#include "state/units.h"

#define GC_USAGE                                                            \
	"hollowfs gc [-o cache=DIR] [-o cache_min_free=SIZE] [--max SIZE] " \
	"[--dry-run]"

struct gc_args {
	struct cmd_args a; /* only a.cache is used */
	bool have_max, have_min_free, dry_run;
	uint64_t max, min_free;
};

static int bad_size(const char *what, const char *val)
{
	fprintf(stderr,
		"hollowfs: %s '%s': expected a size such as 20G or 500M\n",
		what, val);
	return -EINVAL;
}

/* One of -o's comma-separated options. */
static int set_opt(struct gc_args *g, const char *opt)
{
	if (!strcmp(opt, "cache=") || !strcmp(opt, "cache_min_free=")) {
		fprintf(stderr, "hollowfs: option '%s' needs a value\n", opt);
		return -EINVAL;
	}
	if (!strncmp(opt, "cache=", 6)) {
		free(g->a.cache);
		g->a.cache = strdup(opt + 6);
		return g->a.cache ? 0 : -ENOMEM;
	}
	if (!strncmp(opt, "cache_min_free=", 15)) {
		if (units_parse(opt + 15, true, UINT64_MAX, &g->min_free))
			return bad_size("cache_min_free", opt + 15);
		g->have_min_free = true;
		return 0;
	}
	fprintf(stderr,
		"hollowfs: unknown option '%s' (cache=DIR and "
		"cache_min_free=SIZE are known here)\n",
		opt);
	return -EINVAL;
}

static int set_opts(struct gc_args *g, const char *opts)
{
	char *copy = strdup(opts), *tok, *save = NULL;
	int err = copy ? 0 : -ENOMEM;

	for (tok = copy ? strtok_r(copy, ",", &save) : NULL; tok && !err;
	     tok = strtok_r(NULL, ",", &save))
		err = set_opt(g, tok);
	free(copy);
	return err;
}

/* 0, CMD_ARGS_HELP, or CLI_EXIT_USAGE after one line on stderr. */
static int gc_parse(int argc, char *argv[], struct gc_args *g)
{
	int i, err = 0;

	memset(g, 0, sizeof(*g));
	for (i = 1; i < argc && !err; i++) {
		const char *s = argv[i];

		if (!strcmp(s, "-h") || !strcmp(s, "--help")) {
			printf("usage: %s\n", GC_USAGE);
			cmd_args_release(&g->a);
			return CMD_ARGS_HELP;
		} else if (!strcmp(s, "--dry-run") || !strcmp(s, "-n")) {
			g->dry_run = true;
		} else if (!strcmp(s, "--max") || !strncmp(s, "--max=", 6)) {
			const char *v = s[5] == '=' ? s + 6 : NULL;

			if (!v && i + 1 == argc) {
				fprintf(stderr, "hollowfs: --max needs a "
						"size\n");
				err = -EINVAL;
				break;
			}
			if (!v)
				v = argv[++i];
			if (units_parse(v, true, UINT64_MAX, &g->max))
				err = bad_size("--max", v);
			g->have_max = true;
		} else if (!strcmp(s, "-o")) {
			if (i + 1 == argc) {
				fprintf(stderr, "hollowfs: -o needs options\n");
				err = -EINVAL;
			} else {
				err = set_opts(g, argv[++i]);
			}
		} else if (!strncmp(s, "-o", 2)) {
			err = set_opts(g, s + 2);
		} else {
			fprintf(stderr, "hollowfs: unexpected argument '%s'\n",
				s);
			err = -EINVAL;
		}
	}
	if (!err)
		return 0;
	if (err == -ENOMEM)
		fprintf(stderr, "hollowfs: out of memory\n");
	cmd_args_release(&g->a);
	return CLI_EXIT_USAGE;
}

static void print_row(const char *what, const struct evict_count *n)
{
	char size[UNITS_BYTES_MAX];

	units_bytes(n->bytes, size, sizeof(size));
	printf("%-18s %8" PRIu64 " %11s\n", what, n->n, size);
}

static void print_result(const struct gc_args *g, const struct evict_result *r,
			 const struct cache_usage *after)
{
	struct evict_count total = { 0 };
	char size[UNITS_BYTES_MAX], busy[UNITS_BYTES_MAX],
		left[UNITS_BYTES_MAX];

	total.bytes = r->blobs.bytes + r->orphans.bytes + r->tmp.bytes +
		      r->snapshots.bytes;
	printf("%-18s %8s %11s\n", g->dry_run ? "would remove" : "removed",
	       "count", "size");
	print_row("blobs", &r->blobs);
	print_row("orphan files", &r->orphans);
	print_row("temporary files", &r->tmp);
	print_row("snapshots", &r->snapshots);
	units_bytes(total.bytes, size, sizeof(size));
	units_bytes(r->busy.bytes, busy, sizeof(busy));
	units_bytes(after->bytes, left, sizeof(left));
	printf("%s %s; kept %" PRIu64
	       " blob%s in use (%s); cache %s in %" PRIu64 " blob%s%s\n",
	       g->dry_run ? "would free" : "freed", size, r->busy.n,
	       r->busy.n == 1 ? "" : "s", busy, left, after->blobs,
	       after->blobs == 1 ? "" : "s",
	       g->dry_run ? " (dry run: nothing removed)" : "");
	if (r->errors)
		printf("%" PRIu64 " file%s could not be removed\n", r->errors,
		       r->errors == 1 ? "" : "s");
}

int cmd_gc(int argc, char *argv[])
{
	struct evict_result r;
	struct cache_usage u, after;
	struct cache *c = NULL;
	struct gc_args g;
	uint64_t min_free, target;
	int ret, err;

	ret = gc_parse(argc, argv, &g);
	if (ret)
		return ret == CMD_ARGS_HELP ? CLI_EXIT_OK : ret;
	memset(&r, 0, sizeof(r));
	err = cmd_cache_open(&g.a, &c);
	if (err)
		goto out;
	err = cache_clean_orphans(c, g.dry_run, &r);
	if (!err)
		err = cache_usage(c, &u);
	if (err) {
		fprintf(stderr, "hollowfs: cannot read the cache '%s': %s\n",
			cache_dir(c), strerror(-err));
		goto out;
	}
	min_free = g.have_min_free ? g.min_free : cache_min_free_default(&u);
	target = evict_target(&u, 0, min_free);
	if (g.have_max && g.max < target)
		target = g.max;
	if (target < u.bytes)
		err = evict_to(c, target, NULL, NULL, g.dry_run, &r);
	if (!err)
		err = cache_usage(c, &after);
	if (err) {
		fprintf(stderr, "hollowfs: cannot prune the cache '%s': %s\n",
			cache_dir(c), strerror(-err));
		goto out;
	}
	if (g.dry_run) {
		after.bytes -= r.blobs.bytes < after.bytes ? r.blobs.bytes :
							     after.bytes;
		after.blobs -= r.blobs.n < after.blobs ? r.blobs.n :
							 after.blobs;
	}
	print_result(&g, &r, &after);
out:
	ret = err ? CLI_EXIT_ERR : CLI_EXIT_OK;
	if (fflush(stdout) == EOF)
		ret = CLI_EXIT_ERR;
	cache_free(c);
	cmd_args_release(&g.a);
	return ret;
}
