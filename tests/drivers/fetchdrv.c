/*
 * fetchdrv: drives fetch/ (engine + scheduler) and state/ without FUSE,
 * for the integration tests of the engine against scripts/testserver.py.
 *
 *   fetchdrv --cache DIR [options] URL
 *
 * Opens the blob of URL in the cache, has --readers threads each wait for
 * the chunks (single-flight: one fetch between them), optionally copies
 * the blob to --out, and prints one JSON line with the outcome:
 *   {"err": 0, "error": "", "elapsed_ms": N, "shutdown_ms": N,
 *    "bytes_fetched": N, "requests": N, "retries": N, "done": N,
 *    "nchunks": N, "durable": N}
 * Exit status: 0 when every wait succeeded, 1 when one failed, 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fetch/engine.h"
#include "fetch/sched.h"
#include "state/blob.h"
#include "state/cache.h"
#include "state/chunkmap.h"
#include "state/hlog.h"

struct drv {
	struct sched *sched;
	struct fblob *fb;
	uint64_t first, last;
	int timeout_ms;
	enum sched_prio prio;
	int err;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void *reader(void *arg)
{
	struct drv *d = arg;

	d->err = sched_wait(d->sched, d->fb, d->first, d->last, d->prio,
			    d->timeout_ms);
	return NULL;
}

static int copy_out(struct blob *b, const char *path)
{
	char buf[1 << 16];
	uint64_t off = 0;
	FILE *f = fopen(path, "wb");
	int err = 0;

	if (!f)
		return -errno;
	while (off < b->layout.file_size) {
		size_t n = sizeof(buf);

		if (n > b->layout.file_size - off)
			n = (size_t)(b->layout.file_size - off);
		err = pread_all(b->files.data_fd, buf, n, off);
		if (err)
			break;
		if (fwrite(buf, 1, n, f) != n) {
			err = -EIO;
			break;
		}
		off += n;
	}
	if (fclose(f) && !err)
		err = -EIO;
	return err;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: fetchdrv --cache DIR [--size N] [--etag E] "
		"[--chunk-size N] [--connections N] [--readers N] "
		"[--first C] [--last C] [--timeout-ms N] "
		"[--stall-timeout-ms N] [--connect-timeout-ms N] "
		"[--retries N] [--backoff-ms N] [--max-wait-ms N] "
		"[--out FILE] [--shutdown-after-ms N] [--auth LINE] "
		"[--prio demand|readahead|background] [--debug CATS] URL\n");
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "cache", required_argument, NULL, 'c' },
		{ "size", required_argument, NULL, 's' },
		{ "etag", required_argument, NULL, 'e' },
		{ "chunk-size", required_argument, NULL, 'k' },
		{ "connections", required_argument, NULL, 'n' },
		{ "readers", required_argument, NULL, 'r' },
		{ "first", required_argument, NULL, 'F' },
		{ "last", required_argument, NULL, 'L' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "stall-timeout-ms", required_argument, NULL, 'S' },
		{ "connect-timeout-ms", required_argument, NULL, 'C' },
		{ "retries", required_argument, NULL, 'R' },
		{ "backoff-ms", required_argument, NULL, 'B' },
		{ "max-wait-ms", required_argument, NULL, 'W' },
		{ "out", required_argument, NULL, 'o' },
		{ "shutdown-after-ms", required_argument, NULL, 'x' },
		{ "auth", required_argument, NULL, 'a' },
		{ "prio", required_argument, NULL, 'p' },
		{ "debug", required_argument, NULL, 'd' },
		{ NULL, 0, NULL, 0 },
	};
	struct engine_opts eo;
	struct sched_opts so;
	struct fblob_target t = { .kind = "http" };
	struct engine *e = NULL;
	struct sched *s = NULL;
	struct cache *c = NULL;
	struct engine_stats st = { 0 };
	struct fblob *fb = NULL;
	uint64_t elapsed = 0;
	const char *cache_dir = NULL, *out = NULL;
	int64_t size = -1, first = -1, last = -1;
	int readers = 1, timeout_ms = 120000, shutdown_after = -1;
	enum sched_prio prio = SCHED_DEMAND;
	struct drv *d = NULL;
	pthread_t *th = NULL;
	uint64_t t0, t_shut = 0, done = 0, durable = 0, nchunks = 0;
	int opt, err = 0, i;

	engine_opts_default(&eo);
	sched_opts_default(&so);
	while ((opt = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		/* clang-format off */
		switch (opt) {
		case 'c': cache_dir = optarg; break;
		case 's': size = strtoll(optarg, NULL, 0); break;
		case 'e': t.etag = optarg; break;
		case 'k': so.chunk_size = (uint32_t)strtoul(optarg, NULL, 0); break;
		case 'n': eo.connections = atoi(optarg); break;
		case 'r': readers = atoi(optarg); break;
		case 'F': first = strtoll(optarg, NULL, 0); break;
		case 'L': last = strtoll(optarg, NULL, 0); break;
		case 't': timeout_ms = atoi(optarg); break;
		case 'S': eo.stall_timeout_ms = atoi(optarg); break;
		case 'C': eo.connect_timeout_ms = atoi(optarg); break;
		case 'R': eo.retries = atoi(optarg); break;
		case 'B': eo.backoff_ms = atoi(optarg); break;
		case 'W': eo.max_wait_ms = atoi(optarg); break;
		case 'o': out = optarg; break;
		case 'x': shutdown_after = atoi(optarg); break;
		case 'a': t.auth = optarg; break;
		case 'p':
			prio = !strcmp(optarg, "background") ? SCHED_BACKGROUND :
			       !strcmp(optarg, "readahead") ? SCHED_READAHEAD :
							      SCHED_DEMAND;
			break;
		/* clang-format on */
		case 'd':
			if (hlog_set_debug(optarg)) {
				usage();
				return 2;
			}
			break;
		default:
			usage();
			return 2;
		}
	}
	if (!cache_dir || optind != argc - 1 || readers < 1) {
		usage();
		return 2;
	}
	t.url = argv[optind];
	t.name = t.url;
	t.content_id = t.url;

	err = cache_new(cache_dir, &c);
	if (err)
		goto out;
	err = engine_new(&eo, &e);
	if (err)
		goto out;
	if (size < 0) {
		struct http_req req = { .url = t.url,
					.head = true,
					.auth = t.auth };
		struct http_result res;

		err = engine_http(e, &req, &res);
		size = res.content_length;
		http_result_release(&res);
		if (!err && size < 0)
			err = -EPROTO;
		if (err)
			goto out;
	}
	t.size = (uint64_t)size;
	err = sched_new(&so, c, e, &s);
	if (err)
		goto out;
	err = sched_open(s, &t, &fb);
	if (err)
		goto out;
	nchunks = fblob_blob(fb)->nchunks;
	if (first < 0)
		first = 0;
	if (last < 0)
		last = (int64_t)nchunks - 1;
	d = calloc((size_t)readers, sizeof(*d));
	th = calloc((size_t)readers, sizeof(*th));
	if (!d || !th) {
		err = -ENOMEM;
		goto out;
	}
	t0 = now_ms();
	if (nchunks) {
		for (i = 0; i < readers; i++) {
			d[i] = (struct drv){ .sched = s,
					     .fb = fb,
					     .first = (uint64_t)first,
					     .last = (uint64_t)last,
					     .timeout_ms = timeout_ms,
					     .prio = prio };
			if (pthread_create(&th[i], NULL, reader, &d[i])) {
				err = -EAGAIN;
				readers = i;
				break;
			}
		}
		if (shutdown_after >= 0) {
			/* Stop everything mid-transfer; waiters must wake. */
			usleep((useconds_t)shutdown_after * 1000);
			t_shut = now_ms();
			engine_get_stats(e, &st);
			engine_free(e);
			e = NULL;
			t_shut = now_ms() - t_shut;
		}
		for (i = 0; i < readers; i++) {
			pthread_join(th[i], NULL);
			if (d[i].err && !err)
				err = d[i].err;
		}
	}
	elapsed = now_ms() - t0;
	if (e)
		engine_get_stats(e, &st);
	done = chunkmap_done_count(fblob_blob(fb)->map);
	if (!err && out)
		err = copy_out(fblob_blob(fb), out);
out:
	engine_free(e);
	if (s) {
		sched_save_all(s);
		if (fb)
			durable = chunkmap_durable_count(fblob_blob(fb)->map);
	}
	sched_free(s);
	cache_free(c);
	free(d);
	free(th);
	printf("{\"err\": %d, \"error\": \"%s\", \"elapsed_ms\": %" PRIu64
	       ", \"shutdown_ms\": %" PRIu64 ", \"bytes_fetched\": %" PRIu64
	       ", \"requests\": %" PRIu64 ", \"retries\": %" PRIu64
	       ", \"done\": %" PRIu64 ", \"nchunks\": %" PRIu64
	       ", \"durable\": %" PRIu64 "}\n",
	       err, err ? strerror(-err) : "", elapsed, t_shut,
	       st.bytes_fetched, st.requests, st.retries, done, nchunks,
	       durable);
	return err ? 1 : 0;
}
