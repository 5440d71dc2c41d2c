/*
 * shards.c: the headers of a sharded safetensors model, fetched before
 * the loader opens each shard (see shards.h).
 *
 * An index is handled once per mount: the first open claims it in a
 * small table (seen_lock), wants all its chunks with a done callback
 * (holding a blob reference), and the callback, on whatever thread
 * completed them (the engine's, or a worker's), hands the job to the
 * worker pool's BULK lane, where the index is read from the blob's data
 * file (bracketed by fblob_reply_begin/end, so an eviction cannot punch
 * it meanwhile), its reference dropped, the JSON parsed and the shard
 * headers wanted. A fetch that fails (or a mount stopping) forgets the
 * claim, so a later open tries again; a bad index stays handled.
 *
 * Threads and locks: shards_on_open on FUSE workers; the done callback
 * with no lock held; the job on a worker. seen_lock guards only the
 * table, a leaf taken for a few assignments: nothing is called under it.
 * The table is per process (a process serves one mount, fs/mount.c),
 * keyed by the fs and the index's manifest index, static storage so that
 * nothing is left to free; past SHARDS_SEEN_MAX indexes, an index is
 * read again at each open (the shard headers are then DONE: cheap).
 */
#include "fs/shards.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fetch/prefetch.h"
#include "fetch/sched.h"
#include "fetch/work.h"
#include "fs/fs_i.h"
#include "state/hlog.h"
#include "state/manifest.h"

#define SHARD_SUFFIX ".safetensors"
#define INDEX_SUFFIX ".safetensors.index.json"

/* Indexes remembered as handled, per process. */
#define SHARDS_SEEN_MAX 64

struct seen_ent {
	const struct fs *fs;
	uint64_t idx;
};

static pthread_mutex_t seen_lock = PTHREAD_MUTEX_INITIALIZER;
static struct seen_ent seen[SHARDS_SEEN_MAX]; /* seen_lock */
static size_t nseen; /* seen_lock */

/* One index being read. */
struct index_job {
	struct work w; /* first: the pool hands it back */
	struct fs *fs; /* borrowed: outlives the pool (fs/fs.h order) */
	struct fblob *fb; /* a reference to the index's blob, or NULL */
	uint64_t idx; /* the index's manifest index */
};

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n > m && !strcmp(s + n - m, suffix);
}

/* True when (fs, idx) was not claimed yet: it is now. */
static bool seen_claim(const struct fs *fs, uint64_t idx)
{
	bool fresh = true;
	size_t i;

	pthread_mutex_lock(&seen_lock);
	for (i = 0; i < nseen && fresh; i++)
		fresh = seen[i].fs != fs || seen[i].idx != idx;
	if (fresh && nseen < SHARDS_SEEN_MAX)
		seen[nseen++] = (struct seen_ent){ .fs = fs, .idx = idx };
	pthread_mutex_unlock(&seen_lock);
	return fresh;
}

/* The claim of (fs, idx) goes: the next open reads the index again. */
static void seen_forget(const struct fs *fs, uint64_t idx)
{
	size_t i;

	pthread_mutex_lock(&seen_lock);
	for (i = 0; i < nseen; i++) {
		if (seen[i].fs == fs && seen[i].idx == idx) {
			seen[i] = seen[--nseen];
			break;
		}
	}
	pthread_mutex_unlock(&seen_lock);
}

/* The decimal digits that end at end (exclusive), at most 10 of them,
 * going back no further than start: their count into *ndigits, their
 * value into *v. */
static void digits_before(const char *start, const char *end, size_t *ndigits,
			  uint64_t *v)
{
	const char *p = end;
	uint64_t x = 0;

	while (p > start && end - p < 10 && p[-1] >= '0' && p[-1] <= '9')
		p--;
	*ndigits = (size_t)(end - p);
	for (; p < end; p++)
		x = x * 10 + (uint64_t)(*p - '0');
	*v = x;
}

bool shards_next_name(const char *name, char *out, size_t outlen)
{
	const char *end, *of;
	size_t nd, kd;
	uint64_t total, k;
	int len;

	if (!has_suffix(name, SHARD_SUFFIX))
		return false;
	end = name + strlen(name) - strlen(SHARD_SUFFIX);
	digits_before(name, end, &nd, &total);
	if (!nd || nd > 9 || end - nd - name < 4 ||
	    memcmp(end - nd - 4, "-of-", 4))
		return false;
	of = end - nd - 4;
	digits_before(name, of, &kd, &k);
	if (!kd || kd > 9 || of - kd == name || of[-(ptrdiff_t)kd - 1] != '-')
		return false;
	if (!k || k >= total)
		return false; /* not a shard number, or the last one */
	len = snprintf(out, outlen, "%.*s%0*" PRIu64 "-of-%.*s%s",
		       (int)(of - kd - name), name, (int)kd, k + 1, (int)nd,
		       end - nd, SHARD_SUFFIX);
	return len > 0 && (size_t)len < outlen;
}

/*
 * Queues the header chunks of file idx at SCHED_READAHEAD: chunk 0, or
 * as many as its tensor map asks for (fetch/prefetch.h); nothing when
 * the map is built already. Holds a blob reference only for the call.
 * Returns 0 or a negative errno.
 */
static int want_header(struct fs *fs, uint64_t idx)
{
	const struct mentry *e = &fs->manifest->entries[idx];
	struct prefetch_file *pf = fs->inodes[idx].pf;
	struct fblob *fb = NULL;
	uint64_t last = 0;
	int err;

	if (e->type != MENTRY_FILE || e->size < 8)
		return -EINVAL;
	if (pf && !prefetch_file_header_want(pf, &last))
		return 0; /* parsed already (or not a valid header) */
	err = fs_inode_fblob(fs, idx, &fb);
	if (err)
		return err;
	if (last >= fblob_nchunks(fb))
		last = fblob_nchunks(fb) - 1;
	err = sched_want(fs->sched, fb, 0, last, SCHED_READAHEAD, NULL, NULL,
			 NULL);
	fblob_put(fb);
	return err < 0 ? err : 0;
}

/* ---- the index ---- */

static void index_job_free(struct index_job *job)
{
	fblob_put(job->fb);
	free(job);
}

/* Reads the whole index (its chunks DONE) into a new NUL-terminated
 * buffer; drops the job's blob reference. */
static int index_read(struct index_job *job, char **out)
{
	uint64_t size = job->fs->manifest->entries[job->idx].size;
	uint64_t got = 0;
	char *buf;
	int token, err = 0;
	ssize_t r;

	*out = NULL;
	buf = malloc(size + 1);
	if (!buf)
		return -ENOMEM;
	if (!fblob_reply_begin(job->fb, 0, size, &token)) {
		free(buf);
		return -ESTALE; /* evicted or failed since */
	}
	while (got < size) {
		r = pread(fblob_data_fd(job->fb), buf + got, size - got,
			  (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			err = r < 0 ? -errno : -EIO;
			break;
		}
		got += (uint64_t)r;
	}
	fblob_reply_end(job->fb, token);
	fblob_put(job->fb);
	job->fb = NULL;
	if (err) {
		free(buf);
		return err;
	}
	buf[size] = '\0';
	*out = buf;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * The distinct file names of the weight_map of index root, sorted, into
 * *names (borrowed from root; free the array), their count into *n.
 * -EINVAL when there is no weight_map object or a value is not a string.
 */
static int weight_map_files(json_t *root, const char ***names, size_t *n)
{
	json_t *map = json_object_get(root, "weight_map"); /* NULL: no object */
	const char **v, *key;
	size_t i, k = 0;
	json_t *val;

	*names = NULL;
	*n = 0;
	if (!json_is_object(map))
		return -EINVAL;
	v = calloc(json_object_size(map) + 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	json_object_foreach(map, key, val)
	{
		if (!json_is_string(val)) {
			free(v);
			return -EINVAL;
		}
		v[k++] = json_string_value(val);
	}
	qsort(v, k, sizeof(*v), cmp_str);
	for (i = 0, *n = 0; i < k; i++)
		if (!*n || strcmp(v[*n - 1], v[i]))
			v[(*n)++] = v[i];
	*names = v;
	return 0;
}

/* The manifest index of name, relative to the folder of the index idx. */
static int resolve(struct fs *fs, uint64_t idx, const char *name, uint64_t *out)
{
	const struct manifest *m = fs->manifest;
	const char *dir = m->entries[m->entries[idx].parent].path;
	char *path;
	int err;

	if (!*name || *name == '/')
		return -ENOENT;
	if (!*dir)
		return manifest_find(m, name, out);
	if (asprintf(&path, "%s/%s", dir, name) < 0)
		return -ENOMEM;
	err = manifest_find(m, path, out);
	free(path);
	return err;
}

/* Parses the index and queues its shards' headers. */
static void index_plan(struct index_job *job, const char *text, size_t len)
{
	const char *ipath = job->fs->manifest->entries[job->idx].path;
	const char **names = NULL, *unknown = NULL;
	size_t n = 0, i, queued = 0, missing = 0;
	json_error_t jerr;
	json_t *root;
	uint64_t sidx;
	int err;

	root = json_loadb(text, len, 0, &jerr);
	if (!root) {
		hlog(HLOG_INFO, HLOG_FS,
		     "not reading the shards of '%s': bad JSON at line %d: %s",
		     ipath, jerr.line, jerr.text);
		goto out;
	}
	err = weight_map_files(root, &names, &n);
	if (err) {
		hlog(HLOG_INFO, HLOG_FS, "not reading the shards of '%s': %s",
		     ipath,
		     err == -EINVAL ? "no \"weight_map\" of file names" :
				      strerror(-err));
		goto out;
	}
	for (i = 0; i < n && queued < SHARDS_AHEAD_MAX; i++) {
		if (work_cancelled())
			break;
		if (resolve(job->fs, job->idx, names[i], &sidx) ||
		    job->fs->manifest->entries[sidx].type != MENTRY_FILE) {
			missing++;
			unknown = unknown ? unknown : names[i];
			continue;
		}
		err = want_header(job->fs, sidx);
		if (err && err != -EINVAL)
			hlog(HLOG_DEBUG, HLOG_FS,
			     "want of the header of '%s' failed: %s",
			     job->fs->manifest->entries[sidx].path,
			     strerror(-err));
		queued += !err;
	}
	if (missing)
		hlog(HLOG_INFO, HLOG_FS,
		     "'%s': not in its folder: '%s' (%zu of its %zu shard names)",
		     ipath, unknown, missing, n);
	hlog(HLOG_DEBUG, HLOG_FS,
	     "'%s': headers of %zu of its %zu shards queued", ipath, queued, n);
out:
	free(names);
	json_decref(root);
}

/* On a worker of the pool. */
static void index_run(struct work *w, bool cancelled)
{
	struct index_job *job = (struct index_job *)w;
	char *text = NULL;
	int err;

	if (cancelled) {
		index_job_free(job);
		return;
	}
	err = index_read(job, &text);
	if (err) {
		hlog(HLOG_DEBUG, HLOG_FS, "reading '%s' for its shards: %s",
		     job->fs->manifest->entries[job->idx].path, strerror(-err));
		seen_forget(job->fs, job->idx);
	} else {
		index_plan(job, text,
			   job->fs->manifest->entries[job->idx].size);
	}
	free(text);
	index_job_free(job);
}

/* The index's chunks are DONE (err 0), or failed: any thread, no lock. */
static void index_fetched(void *arg, int err)
{
	struct index_job *job = arg;

	if (!err)
		err = sched_submit_bulk(job->fs->sched, &job->w);
	if (!err)
		return; /* the pool owns the job now */
	hlog(HLOG_DEBUG, HLOG_FS, "not reading the shards of '%s': %s",
	     job->fs->manifest->entries[job->idx].path, strerror(-err));
	seen_forget(job->fs, job->idx);
	index_job_free(job);
}

/* First open of an index in this mount: fetch it, then index_run. */
static void index_opened(struct fs *fs, uint64_t idx)
{
	const struct mentry *e = &fs->manifest->entries[idx];
	struct index_job *job;
	int err;

	if (!e->size || !seen_claim(fs, idx))
		return;
	if (e->size > SHARDS_INDEX_MAX_BYTES) { /* said once: stays claimed */
		hlog(HLOG_INFO, HLOG_FS,
		     "not reading the shards of '%s': larger than %u MiB",
		     e->path, SHARDS_INDEX_MAX_BYTES >> 20);
		return;
	}
	job = calloc(1, sizeof(*job));
	if (!job) {
		err = -ENOMEM;
		goto out_forget;
	}
	job->w.run = index_run;
	job->fs = fs;
	job->idx = idx;
	err = fs_inode_fblob(fs, idx, &job->fb);
	if (err)
		goto out_free;
	/* The reader's own reads come at SCHED_DEMAND: one fetch. */
	err = sched_want(fs->sched, job->fb, 0, fblob_nchunks(job->fb) - 1,
			 SCHED_READAHEAD, index_fetched, job, NULL);
	if (err == 0)
		return; /* index_fetched owns the job (it may have run) */
	if (err == 1)
		err = sched_submit_bulk(fs->sched, &job->w);
	if (!err)
		return;
out_free:
	index_job_free(job);
out_forget:
	hlog(HLOG_DEBUG, HLOG_FS, "not reading the shards of '%s': %s", e->path,
	     strerror(-err));
	seen_forget(fs, idx);
}

/* ---- shards ---- */

/* A shard was opened: queue the header of the next one. */
static void shard_opened(struct fs *fs, uint64_t idx)
{
	const struct mentry *e = &fs->manifest->entries[idx];
	char next[256];
	uint64_t nidx;
	int err;

	if (!shards_next_name(e->name, next, sizeof(next)) ||
	    manifest_lookup(fs->manifest, e->parent, next, &nidx))
		return;
	err = want_header(fs, nidx);
	if (err && err != -EINVAL)
		hlog(HLOG_DEBUG, HLOG_FS,
		     "want of the header of '%s' failed: %s",
		     fs->manifest->entries[nidx].path, strerror(-err));
}

void shards_on_open(struct fs *fs, uint64_t idx)
{
	const struct mentry *e = &fs->manifest->entries[idx];

	if (e->type != MENTRY_FILE)
		return;
	if (has_suffix(e->name, INDEX_SUFFIX))
		index_opened(fs, idx);
	else if (has_suffix(e->name, SHARD_SUFFIX))
		shard_opened(fs, idx);
}
