/*
 * prefetch.c: readahead planning per open file handle, in streams, and
 * format-aware planning per remote file (see fetch/prefetch.h).
 *
 * Lock order: a prefetch_stream's lock, released; then a prefetch_file's
 * lock. Neither is held across a call out but malloc/calloc.
 */
#include "fetch/prefetch.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fetch/format.h"

/* ---- streams per handle ---- */

void prefetch_stream_init(struct prefetch_stream *ps)
{
	pthread_mutex_init(&ps->lock, NULL);
	ps->clock = 0;
	memset(ps->runs, 0, sizeof(ps->runs));
}

void prefetch_stream_release(struct prefetch_stream *ps)
{
	pthread_mutex_lock(&ps->lock);
	pthread_mutex_unlock(&ps->lock);
	pthread_mutex_destroy(&ps->lock);
}

/* Does a read at off continue r? *dist ranks the candidates. */
static bool run_matches(const struct prefetch_run *r, uint64_t off,
			uint64_t chunk, uint64_t *dist)
{
	uint64_t planned_end;

	if (!r->used)
		return false;
	if (off <= r->next_off) {
		*dist = r->next_off - off;
		return *dist <= PREFETCH_SLACK_BYTES;
	}
	*dist = off - r->next_off;
	if (*dist <= PREFETCH_SLACK_BYTES)
		return true;
	/* A forward skip into what the stream planned keeps it. */
	planned_end = r->ra_next > UINT64_MAX / chunk ? UINT64_MAX :
							r->ra_next * chunk;
	return off < planned_end;
}

/* The stream a read at off continues, or NULL. */
static struct prefetch_run *find_run(struct prefetch_stream *ps, uint64_t off,
				     uint64_t chunk)
{
	struct prefetch_run *best = NULL;
	uint64_t d, best_d = UINT64_MAX;
	size_t i;

	for (i = 0; i < PREFETCH_STREAMS; i++) {
		if (run_matches(&ps->runs[i], off, chunk, &d) && d < best_d) {
			best = &ps->runs[i];
			best_d = d;
		}
	}
	return best;
}

/* A free slot, else the least recently used one. */
static struct prefetch_run *lru_run(struct prefetch_stream *ps)
{
	struct prefetch_run *r = &ps->runs[0];
	size_t i;

	for (i = 1; i < PREFETCH_STREAMS && r->used; i++)
		if (ps->runs[i].used < r->used)
			r = &ps->runs[i];
	return r;
}

bool prefetch_plan(struct prefetch_stream *ps, const struct prefetch_opts *o,
		   uint64_t off, uint64_t len, uint64_t last_chunk,
		   uint64_t nchunks, uint64_t *from, uint64_t *to)
{
	uint64_t chunk = o->chunk_size, max = o->readahead_max, base, n;
	struct prefetch_run *r;
	bool want = false;

	pthread_mutex_lock(&ps->lock);
	r = find_run(ps, off, chunk);
	if (!r) {
		/* Not a continuation: only the chunks it covers. */
		r = lru_run(ps);
		r->start = off;
		r->next_off = off + len;
		r->run_bytes = len;
		r->window = 0;
		r->ra_next = last_chunk + 1;
		r->used = ++ps->clock;
		goto out;
	}
	r->used = ++ps->clock;
	if (off + len > r->next_off)
		r->next_off = off + len;
	r->run_bytes += len;
	if (!max || r->run_bytes < chunk)
		goto out; /* not yet a chunk's worth: nothing ahead */
	if (!r->window)
		r->window = chunk < max ? chunk : max;
	else
		r->window = r->window * 2 < max ? r->window * 2 : max;
	n = r->window / chunk ? r->window / chunk : 1;
	/* Ahead of the furthest read of the stream, not of this one. */
	base = (r->next_off - 1) / chunk;
	if (base < last_chunk)
		base = last_chunk;
	*from = base + 1 > r->ra_next ? base + 1 : r->ra_next;
	*to = base + n < nchunks - 1 ? base + n : nchunks - 1;
	if (*from <= *to) {
		r->ra_next = *to + 1;
		want = true;
	}
out:
	pthread_mutex_unlock(&ps->lock);
	return want;
}

/* The longest random read whose end in the next chunk is fetched as a
 * prefix (prefetch_reaches_into). */
#define REACH_MAX_BYTES (1024 * 1024)

bool prefetch_reaches_into(struct prefetch_stream *ps, uint64_t off,
			   uint64_t len, uint64_t chunk_size,
			   uint64_t last_chunk)
{
	bool reach = false;
	size_t i;

	if (!chunk_size)
		return false;
	pthread_mutex_lock(&ps->lock);
	for (i = 0; i < PREFETCH_STREAMS && !reach; i++) {
		const struct prefetch_run *r = &ps->runs[i];

		/* Contiguous reads of at most REACH_MAX_BYTES (one random
		 * read, whatever READs the kernel cut it into) into the
		 * chunk after the one they began in. A longer run is a
		 * sequential reader: it gets whole chunks. */
		reach = r->used && !r->window && r->start <= off &&
			off + len <= r->next_off &&
			r->run_bytes == r->next_off - r->start &&
			r->run_bytes <= REACH_MAX_BYTES &&
			r->start / chunk_size + 1 == last_chunk;
	}
	pthread_mutex_unlock(&ps->lock);
	return reach;
}

/* ---- per remote file: the tensor map ---- */

enum pf_state {
	PF_WANT, /* header bytes [0, need) wanted */
	PF_LOADING, /* a thread reads and parses them */
	PF_READY, /* map built */
	PF_FAILED, /* not a valid header: plain readahead */
};

struct prefetch_file {
	pthread_mutex_t lock; /* guards everything below */
	enum format_kind kind;
	uint64_t size;
	uint64_t chunk;
	uint64_t nchunks;
	uint64_t need; /* header bytes wanted (PF_WANT) */
	enum pf_state state;
	struct format_map *map; /* PF_READY; then immutable */
	uint64_t *planned; /* PF_READY: bit per chunk already asked for */
	uint64_t window; /* bytes planned ahead of a touch; grows */
};

int prefetch_file_new(const char *name, uint64_t size, uint64_t chunk_size,
		      struct prefetch_file **out)
{
	enum format_kind kind = format_kind_from_name(name);
	struct prefetch_file *pf;

	*out = NULL;
	if (kind == FORMAT_NONE || size < 8 || !chunk_size)
		return 0;
	pf = calloc(1, sizeof(*pf));
	if (!pf)
		return -ENOMEM;
	pthread_mutex_init(&pf->lock, NULL);
	pf->kind = kind;
	pf->size = size;
	pf->chunk = chunk_size;
	pf->nchunks = (size + chunk_size - 1) / chunk_size;
	pf->need = 8;
	pf->state = PF_WANT;
	*out = pf;
	return 0;
}

void prefetch_file_free(struct prefetch_file *pf)
{
	if (!pf)
		return;
	pthread_mutex_destroy(&pf->lock);
	format_map_free(pf->map);
	free(pf->planned);
	free(pf);
}

bool prefetch_file_header_want(struct prefetch_file *pf, uint64_t *last_chunk)
{
	bool want;

	pthread_mutex_lock(&pf->lock);
	want = pf->state == PF_WANT;
	if (want)
		*last_chunk = (pf->need - 1) / pf->chunk;
	pthread_mutex_unlock(&pf->lock);
	return want;
}

bool prefetch_file_ready(struct prefetch_file *pf)
{
	bool ready;

	pthread_mutex_lock(&pf->lock);
	ready = pf->state == PF_READY;
	pthread_mutex_unlock(&pf->lock);
	return ready;
}

static void mark(uint64_t *bits, uint64_t i)
{
	bits[i / 64] |= 1ull << (i % 64);
}

static bool marked(const uint64_t *bits, uint64_t i)
{
	return bits[i / 64] >> (i % 64) & 1;
}

/* Installs map (PF_READY) with its bitmap; the header's chunks count as
 * planned. Called with pf->lock held; bits allocated by the caller. */
static void attach_locked(struct prefetch_file *pf, struct format_map *map,
			  uint64_t *bits)
{
	uint64_t c, hdr_last;

	pf->map = map;
	pf->planned = bits;
	pf->state = PF_READY;
	pf->window = 0;
	hdr_last = map->data_off ? (map->data_off - 1) / pf->chunk : 0;
	for (c = 0; c <= hdr_last && c < pf->nchunks; c++)
		mark(bits, c);
}

void prefetch_file_attach(struct prefetch_file *pf, struct format_map *map)
{
	uint64_t *bits = calloc(pf->nchunks / 64 + 1, sizeof(*bits));

	pthread_mutex_lock(&pf->lock);
	if (!bits || pf->state == PF_READY) {
		pf->state = pf->state == PF_READY ? PF_READY : PF_FAILED;
		pthread_mutex_unlock(&pf->lock);
		free(bits);
		format_map_free(map);
		return;
	}
	attach_locked(pf, map, bits);
	pthread_mutex_unlock(&pf->lock);
}

/* Reads [0, n) of fd into a new buffer. */
static int read_head(int fd, uint64_t n, uint8_t **out)
{
	uint8_t *buf = malloc(n ? n : 1);
	uint64_t got = 0;
	ssize_t r;

	*out = NULL;
	if (!buf)
		return -ENOMEM;
	while (got < n) {
		r = pread(fd, buf + got, n - got, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			int err = r < 0 ? -errno : -EIO;

			free(buf);
			return err;
		}
		got += (uint64_t)r;
	}
	*out = buf;
	return 0;
}

int prefetch_file_load(struct prefetch_file *pf, int fd)
{
	struct format_map *map = NULL;
	uint64_t need, n, next = 0, *bits = NULL;
	uint8_t *buf;
	int err;

	pthread_mutex_lock(&pf->lock);
	if (pf->state != PF_WANT) {
		pthread_mutex_unlock(&pf->lock);
		return -EALREADY;
	}
	pf->state = PF_LOADING;
	need = pf->need;
	pthread_mutex_unlock(&pf->lock);

	/* The whole chunks wanted are DONE: parse all of them, which often
	 * saves a round. */
	n = ((need - 1) / pf->chunk + 1) * pf->chunk;
	if (n > pf->size)
		n = pf->size;
	if (n > (uint64_t)FORMAT_HEADER_MAX + 8)
		n = need > (uint64_t)FORMAT_HEADER_MAX + 8 ?
			    need :
			    (uint64_t)FORMAT_HEADER_MAX + 8;
	err = read_head(fd, n, &buf);
	if (!err) {
		err = format_parse(pf->kind, buf, (size_t)n, pf->size, &next,
				   &map);
		free(buf);
	}
	if (!err) {
		bits = calloc(pf->nchunks / 64 + 1, sizeof(*bits));
		if (!bits) {
			format_map_free(map);
			err = -ENOMEM;
		}
	}

	pthread_mutex_lock(&pf->lock);
	if (!err) {
		attach_locked(pf, map, bits);
	} else if (err == -EAGAIN && next > n) {
		pf->need = next;
		pf->state = PF_WANT;
	} else {
		pf->state = PF_FAILED;
		if (err == -EAGAIN)
			err = -EINVAL; /* asked for what it had: a bug */
	}
	pthread_mutex_unlock(&pf->lock);
	return err;
}

/*
 * Adds the chunks of [from, to] not planned yet to out (merging runs),
 * marking them; false once out is full. Called with pf->lock held.
 */
static bool take_locked(struct prefetch_file *pf, uint64_t from, uint64_t to,
			struct prefetch_range *out, size_t *n)
{
	uint64_t c;

	for (c = from; c <= to && c < pf->nchunks; c++) {
		if (marked(pf->planned, c))
			continue;
		if (*n && out[*n - 1].to + 1 == c) {
			out[*n - 1].to = c;
		} else {
			if (*n == PREFETCH_MAX_RANGES)
				return false;
			out[*n].from = c;
			out[*n].to = c;
			(*n)++;
		}
		mark(pf->planned, c);
	}
	return true;
}

/* The end of the bytes to have ahead of a touch at off, by tensors. */
static uint64_t format_target_locked(struct prefetch_file *pf,
				     const struct prefetch_opts *o,
				     uint64_t off)
{
	const struct format_map *map = pf->map;
	uint64_t max = o->readahead_max, cap, end;
	size_t i;

	cap = off + max < pf->size ? off + max : pf->size;
	end = off + pf->window < cap ? off + pf->window : cap;
	/* The rest of the tensor touched. */
	i = format_map_find(map, off);
	if (i < map->n && map->ext[i].off <= off && map->ext[i].end > end)
		end = map->ext[i].end < cap ? map->ext[i].end : cap;
	/* And on to the end of the tensor the window ends in. */
	i = end ? format_map_find(map, end - 1) : map->n;
	if (i < map->n && map->ext[i].off < end && map->ext[i].end <= cap)
		end = map->ext[i].end;
	return end;
}

size_t prefetch_plan_file(struct prefetch_stream *ps, struct prefetch_file *pf,
			  const struct prefetch_opts *o, uint64_t off,
			  uint64_t len, uint64_t first_chunk,
			  uint64_t last_chunk, uint64_t nchunks,
			  struct prefetch_range *out)
{
	uint64_t from = 0, to = 0, c, end;
	bool seq;
	size_t n = 0;

	seq = prefetch_plan(ps, o, off, len, last_chunk, nchunks, &from, &to);
	if (!pf) {
		if (!seq)
			return 0;
		out[0].from = from;
		out[0].to = to;
		return 1;
	}
	pthread_mutex_lock(&pf->lock);
	if (pf->state != PF_READY || pf->nchunks != nchunks ||
	    !o->readahead_max) {
		pthread_mutex_unlock(&pf->lock);
		if (!seq)
			return 0;
		out[0].from = from;
		out[0].to = to;
		return 1;
	}
	/* The demand covers the read's own chunks. */
	for (c = first_chunk; c <= last_chunk && c < nchunks; c++)
		mark(pf->planned, c);
	/* Reads of the header alone (tools that list tensors) plan nothing
	 * more; each touch of tensor data (a loader at work, in whatever
	 * order) grows the window, one chunk first, then doubling. */
	if (off + len <= pf->map->data_off)
		goto out;
	if (!pf->window)
		pf->window = o->chunk_size < o->readahead_max ?
				     o->chunk_size :
				     o->readahead_max;
	else
		pf->window = pf->window * 2 < o->readahead_max ?
				     pf->window * 2 :
				     o->readahead_max;
	end = format_target_locked(pf, o, off);
	if (end > off + len && last_chunk + 1 < nchunks)
		(void)take_locked(pf, last_chunk + 1, (end - 1) / o->chunk_size,
				  out, &n);
out:
	if (seq)
		(void)take_locked(pf, from, to, out, &n);
	pthread_mutex_unlock(&pf->lock);
	return n;
}
