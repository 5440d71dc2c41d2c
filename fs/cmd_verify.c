/*
 * cmd_verify.c: hollowfs verify [MOUNTPOINT | -o cache=DIR] [--repair]
 * (DESIGN.md "Command line").
 *
 * Checks what a cache says is complete: every chunk its sidecar records
 * against the chunk's .sums entry (cache_chunk_check), then every
 * complete file whose source published a hash (sha256, git-sha1) against
 * it (state/verify.h). One line per bad chunk or file, a summary, exit
 * status 1 when anything was wrong (repaired or not).
 *
 * With --repair, what is wrong is dropped so that the next read fetches
 * it again: the chunk's bit leaves the sidecar, then its sums entry is
 * cleared (state/peek.h); a corrupt file loses all its chunks and its
 * .verified marker. Safe beside live mounts of the same cache: a chunk is
 * repaired only while this process holds its lock byte
 * (cache_chunk_trylock), which every process fetching it holds, and is
 * checked again under it; a chunk another process holds is left alone
 * and said so. A mount that has the chunk in memory keeps serving it
 * until it is remounted.
 *
 * Of a MOUNTPOINT, the cache and snapshot of that mount are checked
 * (from its user.hollowfs.stats); of a cache folder, every saved
 * snapshot and the blobs none names (chunks only: no hash is known).
 */
#include "fs/cmd.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>

#include "fs/cli.h"
#include "fs/stats.h"
#include "state/cache.h"
#include "state/peek.h"
#include "state/sidecar.h"
#include "state/verify.h"

#define VERIFY_USAGE "hollowfs verify [MOUNTPOINT | -o cache=DIR] [--repair]"

struct tally {
	uint64_t blobs, chunks, hashed; /* checked */
	uint64_t bad_chunks, bad_files, errors, dropped, busy;
};

/* Drops chunks [first, last] of p, holding their lock bytes; says how
 * it went at the end of the line begun by the caller. */
static void repair(const struct cache *c, struct blob_peek *p, uint64_t first,
		   uint64_t last, bool recheck, struct tally *t)
{
	uint64_t i, held, off, len;
	bool ok = false;
	int err = 0;

	for (held = first; held <= last; held++)
		if (cache_chunk_trylock(p->lock_fd, held))
			break;
	if (held <= last) {
		printf(": in use by another process, left alone\n");
		t->busy++;
		goto out_unlock;
	}
	if (recheck) {
		/* Fetched again meanwhile? Then it is good now. */
		blob_peek_chunk_range(p, first, &off, &len);
		err = cache_chunk_check(p->data_fd, p->sums_fd, first, off, len,
					&ok);
		if (!err && ok) {
			printf(": fetched again meanwhile, now good\n");
			goto out_unlock;
		}
	}
	err = blob_peek_drop(c, p, first, last);
	if (err) {
		printf(": dropping it failed: %s\n", strerror(-err));
		t->errors++;
	} else {
		printf(": dropped\n");
		t->dropped += last - first + 1;
	}
out_unlock:
	for (i = first; i < held; i++)
		cache_chunk_unlock(p->lock_fd, i);
}

/* The whole-file hash of p's data, into got. */
static int hash_file(const struct blob_peek *p, const char *kind,
		     char got[VERIFY_HEX_MAX])
{
	struct verify_ctx *ctx = NULL;
	int err;

	err = verify_ctx_new(kind, p->sc->layout.file_size, &ctx);
	if (!err)
		err = verify_ctx_feed(ctx, p->data_fd, 0,
				      p->sc->layout.file_size, NULL);
	if (!err)
		err = verify_ctx_final(ctx, got);
	verify_ctx_free(ctx);
	return err;
}

static void verify_one(const struct cache *c, const struct cmd_file *f,
		       bool do_repair, struct tally *t)
{
	char got[VERIFY_HEX_MAX];
	struct blob_peek p;
	uint64_t i, off, len, bad = 0;
	bool ok;
	int err;

	err = blob_peek_open(c, f->hex, true, &p);
	if (err == -ENOENT)
		return; /* nothing of it cached */
	if (err) {
		printf("'%s': cannot be checked: %s\n", f->path,
		       strerror(-err));
		t->errors++;
		return;
	}
	if (!p.sc)
		goto out; /* no sidecar it trusts: nothing complete */
	t->blobs++;
	for (i = 0; i < p.sc->nchunks; i++) {
		if (!sidecar_test(p.sc, i))
			continue;
		blob_peek_chunk_range(&p, i, &off, &len);
		err = cache_chunk_check(p.data_fd, p.sums_fd, i, off, len, &ok);
		t->chunks++;
		if (err) {
			printf("'%s': chunk %" PRIu64 " cannot be read: %s\n",
			       f->path, i, strerror(-err));
			t->errors++;
			bad++;
			continue;
		}
		if (ok)
			continue;
		bad++;
		t->bad_chunks++;
		printf("'%s': chunk %" PRIu64 " (bytes %" PRIu64 "-%" PRIu64
		       ") does not match its sum",
		       f->path, i, off, off + len - 1);
		if (do_repair)
			repair(c, &p, i, i, true, t);
		else
			printf("\n");
	}
	/* A file with a bad chunk is said by its chunks. */
	if (bad || p.sc->done_count != p.sc->nchunks ||
	    !verify_kind_known(f->hash_kind) || !f->hash)
		goto out;
	err = hash_file(&p, f->hash_kind, got);
	t->hashed++;
	if (err) {
		printf("'%s': its %s cannot be computed: %s\n", f->path,
		       f->hash_kind, strerror(-err));
		t->errors++;
		goto out;
	}
	if (!strcmp(got, f->hash))
		goto out;
	t->bad_files++;
	printf("'%s': %s is %s, expected %s", f->path, f->hash_kind, got,
	       f->hash);
	if (do_repair && p.sc->nchunks)
		repair(c, &p, 0, p.sc->nchunks - 1, false, t);
	else
		printf("\n");
out:
	blob_peek_release(&p);
}

static int cmp_hex_idx(const void *x, const void *y, void *arg)
{
	const struct cmd_file *v = arg;
	size_t a = *(const size_t *)x, b = *(const size_t *)y;
	int d = strcmp(v[a].hex, v[b].hex);

	return d ? d : a < b ? -1 : a > b;
}

/* Checks each blob once (a file in two snapshots is one blob), under the
 * name of the first file naming it. */
static int verify_files(const struct cache *c, const struct cmd_files *f,
			bool do_repair, struct tally *t)
{
	size_t *order, i;
	bool *first;

	order = malloc((f->n ? f->n : 1) * sizeof(*order));
	first = calloc(f->n ? f->n : 1, sizeof(*first));
	if (!order || !first) {
		free(order);
		free(first);
		fprintf(stderr, "hollowfs: out of memory\n");
		return -ENOMEM;
	}
	for (i = 0; i < f->n; i++)
		order[i] = i;
	qsort_r(order, f->n, sizeof(*order), cmp_hex_idx, f->v);
	for (i = 0; i < f->n; i++)
		first[order[i]] = f->v[order[i]].hex[0] &&
				  (!i || strcmp(f->v[order[i]].hex,
						f->v[order[i - 1]].hex));
	for (i = 0; i < f->n; i++)
		if (first[i])
			verify_one(c, &f->v[i], do_repair, t);
	free(order);
	free(first);
	return 0;
}

/*
 * The blob of each file, as the mount at mnt names it (user.hollowfs.blob):
 * the mount knows what identified its files (an hf:// endpoint, say),
 * which its saved snapshot does not say.
 */
static int mount_blobs(const char *mnt, struct cmd_files *f)
{
	char path[PATH_MAX], hex[64];
	ssize_t n;
	size_t i;

	for (i = 0; i < f->n; i++) {
		struct cmd_file *cf = &f->v[i];

		if (!cf->hex[0])
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", mnt, cf->path) >=
		    (int)sizeof(path))
			return -ENAMETOOLONG;
		n = getxattr(path, "user.hollowfs.blob", hex, sizeof(hex) - 1);
		if (n < 0 || n >= (ssize_t)sizeof(cf->hex)) {
			int err = n < 0 ? -errno : -EBADMSG;

			fprintf(stderr,
				"hollowfs: cannot read the blob of '%s': %s\n",
				path, strerror(-err));
			return err;
		}
		memcpy(cf->hex, hex, (size_t)n);
		cf->hex[n] = '\0';
	}
	return 0;
}

int cmd_verify(int argc, char *argv[])
{
	struct cmd_files f = { 0 };
	struct fs_stats st = { 0 };
	struct tally t = { 0 };
	struct cache *c = NULL;
	struct cmd_args a;
	int ret, err = 0;

	ret = cmd_args_parse(argc, argv, VERIFY_USAGE, false, true, &a);
	if (ret)
		return ret == CMD_ARGS_HELP ? CLI_EXIT_OK : ret;
	if (a.mountpoint) {
		err = cmd_mount_stats(a.mountpoint, &st);
		if (!err && !st.cache) {
			fprintf(stderr,
				"hollowfs: '%s' does not say its cache\n",
				a.mountpoint);
			err = -EINVAL;
		}
		if (!err) {
			a.cache = strdup(st.cache);
			err = a.cache ? 0 : -ENOMEM;
		}
	}
	err = err ? err : cmd_cache_open(&a, &c);
	if (!err)
		err = cmd_cache_files(c, &a, st.source, st.version,
				      !a.mountpoint, &f);
	if (!err && a.mountpoint)
		err = mount_blobs(a.mountpoint, &f);
	if (!err)
		err = verify_files(c, &f, a.repair, &t);
	if (!err) {
		printf("checked %" PRIu64 " chunk%s of %" PRIu64
		       " file%s, %" PRIu64 " whole file%s against its hash: ",
		       t.chunks, t.chunks == 1 ? "" : "s", t.blobs,
		       t.blobs == 1 ? "" : "s", t.hashed,
		       t.hashed == 1 ? "" : "s");
		if (!t.bad_chunks && !t.bad_files && !t.errors)
			printf("all good\n");
		else
			printf("%" PRIu64 " bad chunk%s, %" PRIu64
			       " corrupt file%s, %" PRIu64 " error%s; %" PRIu64
			       " chunk%s dropped, %" PRIu64 " left in use\n",
			       t.bad_chunks, t.bad_chunks == 1 ? "" : "s",
			       t.bad_files, t.bad_files == 1 ? "" : "s",
			       t.errors, t.errors == 1 ? "" : "s", t.dropped,
			       t.dropped == 1 ? "" : "s", t.busy);
		ret = t.bad_chunks || t.bad_files || t.errors ? CLI_EXIT_ERR :
								CLI_EXIT_OK;
	} else {
		ret = CLI_EXIT_ERR;
	}
	if (fflush(stdout) == EOF)
		ret = CLI_EXIT_ERR;
	cmd_files_release(&f);
	cache_free(c);
	fs_stats_release(&st);
	cmd_args_release(&a);
	return ret;
}
