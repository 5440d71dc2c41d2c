/*
 * prefetch.c: readahead planning per open file (see fetch/prefetch.h).
 *
 * Lock order: prefetch_stream->lock only, never held across a call out.
 */
#include "fetch/prefetch.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

void prefetch_stream_init(struct prefetch_stream *ps)
{
	pthread_mutex_init(&ps->lock, NULL);
	ps->seen = false;
	ps->last_off = 0;
	ps->next_off = 0;
	ps->window = 0;
	ps->ra_next = 0;
}

void prefetch_stream_release(struct prefetch_stream *ps)
{
	pthread_mutex_lock(&ps->lock);
	pthread_mutex_unlock(&ps->lock);
	pthread_mutex_destroy(&ps->lock);
}

bool prefetch_plan(struct prefetch_stream *ps, const struct prefetch_opts *o,
		   uint64_t off, uint64_t len, uint64_t last_chunk,
		   uint64_t nchunks, uint64_t *from, uint64_t *to)
{
	uint64_t chunk = o->chunk_size, max = o->readahead_max;
	bool seq, want = false;

	pthread_mutex_lock(&ps->lock);
	seq = ps->seen && off >= ps->last_off &&
	      off <= ps->next_off + PREFETCH_SLACK_BYTES &&
	      off + PREFETCH_SLACK_BYTES >= ps->next_off;
	if (!seq || !max) {
		ps->window = 0;
		ps->ra_next = 0;
	} else if (!ps->window) {
		ps->window = chunk < max ? chunk : max;
	} else {
		ps->window = ps->window * 2 < max ? ps->window * 2 : max;
	}
	ps->seen = true;
	ps->last_off = off;
	ps->next_off = off + len;
	if (ps->window) {
		uint64_t n = ps->window / chunk ? ps->window / chunk : 1;

		*from = last_chunk + 1 > ps->ra_next ? last_chunk + 1 :
						       ps->ra_next;
		*to = last_chunk + n < nchunks - 1 ? last_chunk + n :
						     nchunks - 1;
		if (*from <= *to) {
			ps->ra_next = *to + 1;
			want = true;
		}
	}
	pthread_mutex_unlock(&ps->lock);
	return want;
}
