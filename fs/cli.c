/*
 * cli.c: the hollowfs command line (see fs/cli.h; DESIGN.md "Command
 * line"): the subcommands, the options of a mount (fuse_opt, the words
 * of mount(8) and fstab), --help and --version. What a mount does with
 * them is fs/mount.c.
 *
 * A scheme's own options (-o hf_cache=) are not listed here: an option
 * no one here knows is offered to the sources (source_option_check),
 * then to libfuse. No threads, no locks.
 */
#define FUSE_USE_VERSION 312

#include "fs/cli.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "fetch/source.h"
#include "fs/cmd.h"
#include "fs/mount.h"
#include "state/hlog.h"
#include "state/sidecar.h"
#include "state/units.h"

#ifndef HOLLOWFS_VERSION
#define HOLLOWFS_VERSION "unknown"
#endif

#define CLI_SRC_OPTS_MAX 16

/* What the command line asked for. Strings are owned. */
struct cli {
	char *source;
	char *mountpoint;
	char *cache;
	char *token_file;
	char *log_file;
	char *endpoint;
	char *proxy; /* -o proxy=, "" for none; NULL: the environment */
	bool foreground;
	bool fuse_debug;
	bool help;
	bool version;
	bool offline;
	bool have_fsname;
	bool have_subtype;
	bool in_debug; /* the last option was debug= */
	int debug_cats; /* HLOG_* categories of debug= */
	uint64_t chunk_size;
	uint64_t readahead;
	uint64_t kernel_readahead;
	uint64_t prefetch_rate; /* bytes/s, 0: no cap */
	uint64_t cache_max; /* 0: no limit */
	uint64_t cache_min_free; /* CACHE_MIN_FREE_DEFAULT: 5% */
	int prefetch; /* enum fs_prefetch */
	unsigned int connections;
	unsigned int max_threads;
	unsigned int timeout_s;
	unsigned int connect_timeout_s;
	unsigned int retries;
	unsigned int deadline_s;
	unsigned int max_entries; /* 0: the sources' default */
	uid_t uid;
	gid_t gid;
	/* Scheme options, name=value split in srcopt_bufs (owned). */
	struct source_option srcopts[CLI_SRC_OPTS_MAX];
	char *srcopt_bufs[CLI_SRC_OPTS_MAX];
	size_t nsrcopts;
};

enum {
	KEY_HELP,
	KEY_VERSION,
	KEY_FOREGROUND,
	KEY_FUSE_DEBUG,
	KEY_CACHE,
	KEY_CHUNK_SIZE,
	KEY_CONNECTIONS,
	KEY_MAX_THREADS,
	KEY_READAHEAD,
	KEY_KERNEL_READAHEAD,
	KEY_PREFETCH,
	KEY_PREFETCH_RATE,
	KEY_CACHE_MAX,
	KEY_CACHE_MIN_FREE,
	KEY_TIMEOUT,
	KEY_CONNECT_TIMEOUT,
	KEY_RETRIES,
	KEY_DEADLINE,
	KEY_MAX_ENTRIES,
	KEY_OFFLINE,
	KEY_TOKEN_FILE,
	KEY_ENDPOINT,
	KEY_PROXY,
	KEY_DEBUG,
	KEY_LOG,
	KEY_UID,
	KEY_GID,
	KEY_FSNAME,
	KEY_SUBTYPE,
	KEY_IGNORE,
};

/* Value options are listed with and without '=', so "-o cache" alone is
 * reported as a missing value rather than an unknown option. */
#define VALUE_OPT(name, key) \
	FUSE_OPT_KEY(name "=", key), FUSE_OPT_KEY(name, key)

/* clang-format off */
static const struct fuse_opt cli_opts[] = {
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("-f", KEY_FOREGROUND),
	FUSE_OPT_KEY("-d", KEY_FUSE_DEBUG),
	FUSE_OPT_KEY("--debug", KEY_FUSE_DEBUG),
	FUSE_OPT_KEY("debug", KEY_FUSE_DEBUG),
	VALUE_OPT("cache", KEY_CACHE),
	VALUE_OPT("chunk_size", KEY_CHUNK_SIZE),
	VALUE_OPT("connections", KEY_CONNECTIONS),
	VALUE_OPT("max_threads", KEY_MAX_THREADS),
	VALUE_OPT("readahead", KEY_READAHEAD),
	VALUE_OPT("kernel_readahead", KEY_KERNEL_READAHEAD),
	VALUE_OPT("prefetch", KEY_PREFETCH),
	VALUE_OPT("prefetch_rate", KEY_PREFETCH_RATE),
	VALUE_OPT("cache_max", KEY_CACHE_MAX),
	VALUE_OPT("cache_min_free", KEY_CACHE_MIN_FREE),
	VALUE_OPT("timeout", KEY_TIMEOUT),
	VALUE_OPT("connect_timeout", KEY_CONNECT_TIMEOUT),
	VALUE_OPT("retries", KEY_RETRIES),
	VALUE_OPT("deadline", KEY_DEADLINE),
	VALUE_OPT("max_entries", KEY_MAX_ENTRIES),
	FUSE_OPT_KEY("offline", KEY_OFFLINE),
	VALUE_OPT("token_file", KEY_TOKEN_FILE),
	VALUE_OPT("endpoint", KEY_ENDPOINT),
	VALUE_OPT("proxy", KEY_PROXY),
	FUSE_OPT_KEY("debug=", KEY_DEBUG),
	VALUE_OPT("log", KEY_LOG),
	VALUE_OPT("uid", KEY_UID),
	VALUE_OPT("gid", KEY_GID),
	FUSE_OPT_KEY("fsname=", KEY_FSNAME),
	FUSE_OPT_KEY("subtype=", KEY_SUBTYPE),
	/* Always read-only, whatever mount(8) passes ("rw" unless told
	 * "ro"): fs/ops.c refuses every change. */
	FUSE_OPT_KEY("ro", KEY_IGNORE),
	FUSE_OPT_KEY("rw", KEY_IGNORE),
	/* mount(8) and fstab words that mean nothing to a FUSE mount. */
	FUSE_OPT_KEY("defaults", KEY_IGNORE),
	FUSE_OPT_KEY("_netdev", KEY_IGNORE),
	FUSE_OPT_KEY("user", KEY_IGNORE),
	FUSE_OPT_KEY("nouser", KEY_IGNORE),
	FUSE_OPT_KEY("users", KEY_IGNORE),
	FUSE_OPT_KEY("auto", KEY_IGNORE),
	FUSE_OPT_KEY("noauto", KEY_IGNORE),
	FUSE_OPT_KEY("nofail", KEY_IGNORE),
	FUSE_OPT_KEY("comment=", KEY_IGNORE),
	FUSE_OPT_END
};

static const char usage_text[] =
"usage: hollowfs [mount] [-f] [-d] [-o opt[,opt...]] SOURCE MOUNTPOINT\n"
"       hollowfs COMMAND [ARGS...]\n"
"\n"
"Mounts SOURCE read-only at MOUNTPOINT. Every file shows its real size at\n"
"once; its bytes are fetched on first read, chunk by chunk, into a sparse\n"
"local copy in the cache, and reads of cached chunks never touch the\n"
"network again.\n"
"\n"
"SOURCE:\n"
"    hf://[datasets/|spaces/]OWNER/NAME[@REVISION][/SUBDIR]\n"
"                           a Hugging Face repo, pinned to one commit\n"
"    http://HOST/PATH/, https://HOST/PATH/\n"
"                           a folder index (nginx, Apache) or one file\n"
"    file:///ABS/PATH       a local or network folder\n"
"    s3://BUCKET[/PREFIX]   an S3 bucket (AWS or -o endpoint=), each object\n"
"                           pinned by its ETag; credentials as the AWS CLI\n"
"                           finds them: $AWS_ACCESS_KEY_ID and\n"
"                           $AWS_SECRET_ACCESS_KEY ($AWS_SESSION_TOKEN),\n"
"                           else $AWS_PROFILE (default: default) in\n"
"                           ~/.aws/credentials and ~/.aws/config, else\n"
"                           anonymous\n"
"\n"
"commands:\n"
"    mount                  mount SOURCE at MOUNTPOINT (the default: the\n"
"                           word may be left out)\n"
"    status [MOUNTPOINT | -o cache=DIR] [--json]\n"
"                           per-file size, cached bytes and progress,\n"
"                           totals; of a mount also the fetch rate,\n"
"                           connections in use and queued chunks\n"
"    prefetch [--wait] PATH...\n"
"                           fill files, or folders recursively, in the\n"
"                           background (user.hollowfs.prefetch); --wait\n"
"                           shows the progress until all are cached\n"
"    verify [MOUNTPOINT | -o cache=DIR] [--repair]\n"
"                           check cached chunks against their sums and\n"
"                           complete files against their published hash;\n"
"                           --repair drops what is wrong (exit status 1\n"
"                           when anything is)\n"
"    gc [-o cache=DIR] [--max SIZE] [--dry-run]\n"
"                           prune the cache, safely beside live mounts:\n"
"                           files of lost blobs, stale temporary files,\n"
"                           snapshots no ref names (the newest of each\n"
"                           source stays), then least recently used blobs\n"
"                           no process has open, down to --max and to 5%\n"
"                           of the file system free (-o cache_min_free=)\n";

/* Several strings: C compilers need not take one longer than 4095 bytes. */
static const char options_text[] =
"\n"
"general options:\n"
"    -h, --help             print this help and exit\n"
"    -V, --version          print version information and exit\n"
"    -f                     stay in the foreground\n"
"    -d, -o debug           libfuse debug output and -o debug=fs\n"
"                           (implies -f)\n"
"    -o opt[,opt...]        mount options\n"
"\n"
"hollowfs options:\n"
"    -o cache=DIR           cache folder (default: $XDG_CACHE_HOME/hollowfs,\n"
"                           ~/.cache/hollowfs, /var/cache/hollowfs as root);\n"
"                           private: yours, not writable by others\n"
"    -o chunk_size=N        unit of fetching and caching, a multiple of 4K\n"
"                           from 64K to 64M (default: 4M)\n"
"    -o connections=N       parallel transfers, 1 to 256 (default: 16)\n"
"    -o max_threads=N       FUSE worker threads, 1 to 1024 (default: 16)\n"
"    -o readahead=N         largest readahead window of an open file, 0 to\n"
"                           turn readahead off (default: 64M)\n"
"    -o kernel_readahead=N  the kernel's readahead for the mount, set as\n"
"                           root (default: 4M; 0 leaves the kernel's)\n"
"    -o prefetch=MODE       background fill: none; open (default: files\n"
"                           that were opened are completed); all (every\n"
"                           file, small ones first)\n"
"    -o prefetch_rate=N     cap background fill at N bytes/s (default: 0,\n"
"                           no cap)\n"
"    -o cache_max=N         most the cache may hold, counted in allocated\n"
"                           blocks; least recently used files go first\n"
"                           (default: 0, no limit)\n"
"    -o cache_min_free=N    keep this much of the cache's filesystem free\n"
"                           (default: 5% of its size)\n"
"    -o timeout=SECS        fail a transfer that stalls this long\n"
"                           (default: 10)\n"
"    -o connect_timeout=SECS\n"
"                           give up connecting after this long (default: 10)\n"
"    -o retries=N           attempts after a failed one, 0 to 100\n"
"                           (default: 4); a try that gets new bytes\n"
"                           earns its retry back\n"
"    -o deadline=SECS       fail a transfer, and so the read waiting for\n"
"                           it, that got no 64K for this long, its stalls,\n"
"                           tries and waits included (default: 50)\n"
"    -o max_entries=N       most files and folders a listing may have\n"
"                           (default: 1000000); a larger http(s) listing\n"
"                           fails the mount, others stop there\n";

static const char options_more_text[] =
"    -o offline             never fetch: serve the snapshot saved in the\n"
"                           cache and the chunks already cached (also\n"
"                           HF_HUB_OFFLINE=1 for hf:// sources)\n"
"    -o token_file=PATH     read the access token from PATH (default for\n"
"                           hf:// sources: $HF_TOKEN,\n"
"                           $HUGGING_FACE_HUB_TOKEN, then the file\n"
"                           $HF_TOKEN_PATH or $HF_HOME/token, default\n"
"                           ~/.cache/huggingface/token)\n"
"    -o endpoint=URL        hf://: the Hub endpoint (default: $HF_ENDPOINT,\n"
"                           else https://huggingface.co); s3://: any\n"
"                           S3-compatible server (default:\n"
"                           $AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, else\n"
"                           AWS)\n"
"    -o region=NAME         s3:// only: the bucket's region (default:\n"
"                           $AWS_REGION, $AWS_DEFAULT_REGION, the profile's\n"
"                           region, else us-east-1)\n"
"    -o s3_path_style=0|1   s3:// only: 1 for ENDPOINT/BUCKET/KEY URLs (the\n"
"                           default with -o endpoint=), 0 for\n"
"                           BUCKET.HOST/KEY (the default for AWS)\n"
"    -o proxy=URL           send every request through this HTTP(S) or\n"
"                           SOCKS proxy (default: $https_proxy,\n"
"                           $HTTPS_PROXY, $http_proxy, $HTTP_PROXY and\n"
"                           $all_proxy by scheme); hosts in $NO_PROXY\n"
"                           still go direct; -o proxy= (empty): no proxy\n"
"    -o hf_cache=DIR        hf:// only: place each verified, complete file\n"
"                           into the huggingface_hub cache at DIR (e.g.\n"
"                           ~/.cache/huggingface/hub), for use without\n"
"                           the mount\n"
"    -o debug=CATS          debug logs of categories fs, fetch, sched, state,\n"
"                           http, joined by commas, or all\n"
"    -o log=FILE            append logs to FILE (default: stderr with -f,\n"
"                           else syslog)\n"
"    -o uid=N, -o gid=N     owner of every file and folder (default: the\n"
"                           mounting user)\n"
"    -o allow_other         let other users read the mount (non-root users\n"
"                           need user_allow_other in /etc/fuse.conf)\n"
"    -o ro, -o rw           accepted for mount(8); the mount is always\n"
"                           read-only\n";

static const char notes_text[] =
"\n"
"Sizes take a K, M or G suffix (powers of 1024).\n"
"\n"
"It also works as 'mount -t fuse.hollowfs SOURCE MOUNTPOINT -o opts' and\n"
"from /etc/fstab. Unmount with 'fusermount3 -u MOUNTPOINT' or umount(8).\n"
"\n"
"Extended attributes of each file: user.hollowfs.cached (bytes cached),\n"
"user.hollowfs.chunks (cached/total chunks), user.hollowfs.source (URL),\n"
"user.hollowfs.sha256 (when the source knows it), user.hollowfs.blob (its\n"
"name in the cache); of the root: user.hollowfs.stats (live counters,\n"
"JSON).\n"
"\n"
"exit status: 0 mounted (with -f: unmounted cleanly), 1 error, 2 bad usage\n"
"(or a command not implemented yet)\n";
/* clang-format on */

static int bad_value(const char *name, const char *val, const char *why)
{
	fprintf(stderr, "hollowfs: bad value '%s' for option %s: %s\n", val,
		name, why);
	return -1;
}

static int parse_uint(const char *name, const char *val, unsigned int lo,
		      unsigned int hi, unsigned int *out)
{
	char why[64];
	uint64_t v;

	if (units_parse(val, false, hi, &v) || v < lo) {
		snprintf(why, sizeof(why),
			 "expected a whole number from %u to %u", lo, hi);
		return bad_value(name, val, why);
	}
	*out = (unsigned int)v;
	return 0;
}

static int set_str(char **dst, const char *val)
{
	char *s = strdup(val);

	if (!s) {
		fprintf(stderr, "hollowfs: out of memory\n");
		return -1;
	}
	free(*dst);
	*dst = s;
	return 0;
}

/* A proxy libcurl can use: a scheme it knows (or none: http), a host. */
static bool proxy_url_ok(const char *val)
{
	static const char *const schemes[] = { "http://",   "https://",
					       "socks4://", "socks4a://",
					       "socks5://", "socks5h://" };
	const char *host = strstr(val, "://");
	size_t i;

	if (!host)
		return *val != ':' && !strpbrk(val, " \t/");
	for (i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
		if (!strncmp(val, schemes[i], strlen(schemes[i])))
			return host[3] && host[3] != '/' && host[3] != ':';
	return false;
}

/* Scheme options (-o hf_cache=...) are the sources' to check: returns 0
 * when arg is one (kept), 1 when it is not (for libfuse), -1 after the
 * line. */
static int source_opt(struct cli *c, const char *arg)
{
	char line[512], *buf, *eq;
	int res;

	buf = strdup(arg);
	if (!buf) {
		fprintf(stderr, "hollowfs: out of memory\n");
		return -1;
	}
	eq = strchr(buf, '=');
	if (eq)
		*eq = '\0';
	res = source_option_check(buf, eq ? eq + 1 : "", line, sizeof(line));
	if (res) {
		free(buf);
		if (res > 0)
			return 1;
		fprintf(stderr, "hollowfs: %s\n", line);
		return -1;
	}
	if (c->nsrcopts == CLI_SRC_OPTS_MAX) {
		free(buf);
		fprintf(stderr, "hollowfs: too many source options\n");
		return -1;
	}
	c->srcopt_bufs[c->nsrcopts] = buf;
	c->srcopts[c->nsrcopts].name = buf;
	c->srcopts[c->nsrcopts].value = eq ? eq + 1 : "";
	c->nsrcopts++;
	return 0;
}

/* fuse_opt_parse callback: returns 0 to consume arg, 1 to pass it on to
 * libfuse, -1 after printing the one line that says what is wrong. */
static int opt_proc(void *data, const char *arg, int key,
		    struct fuse_args *outargs)
{
	struct cli *c = data;
	const char *eq = strchr(arg, '=');
	const char *val = eq ? eq + 1 : "";
	unsigned int id;
	uint64_t v;

	(void)outargs;
	/*
	 * "-o debug=fetch,state" reaches us as "debug=fetch" then "state":
	 * a category word right after debug= continues it.
	 */
	if (key == FUSE_OPT_KEY_OPT && c->in_debug && !strchr(arg, '=') &&
	    !hlog_set_debug(arg)) {
		c->debug_cats |= hlog_get_debug_cats();
		return 0;
	}
	c->in_debug = key == KEY_DEBUG;
	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		if (!c->source)
			return set_str(&c->source, arg);
		if (!c->mountpoint)
			return set_str(&c->mountpoint, arg);
		fprintf(stderr,
			"hollowfs: unexpected argument '%s' (try "
			"'hollowfs --help')\n",
			arg);
		return -1;
	case FUSE_OPT_KEY_OPT:
		/* systemd's x-* fstab options are for systemd. */
		if (!strncmp(arg, "x-", 2))
			return 0;
		/* A source's own option, or libfuse's (or it complains). */
		return source_opt(c, arg);
	case KEY_HELP:
		c->help = true;
		return 0;
	case KEY_VERSION:
		c->version = true;
		return 0;
	case KEY_FOREGROUND:
		c->foreground = true;
		return 0;
	case KEY_FUSE_DEBUG:
		c->fuse_debug = true;
		return 1;
	case KEY_CACHE:
		if (!*val)
			return bad_value("cache", val, "expected a folder");
		return set_str(&c->cache, val);
	case KEY_CHUNK_SIZE:
		if (units_parse(val, true, UINT64_MAX, &v) ||
		    !chunk_size_valid(v))
			return bad_value("chunk_size", val,
					 "expected a multiple of 4K from 64K "
					 "to 64M, such as 4M");
		c->chunk_size = v;
		return 0;
	case KEY_CONNECTIONS:
		return parse_uint("connections", val, 1, 256, &c->connections);
	case KEY_MAX_THREADS:
		return parse_uint("max_threads", val, 1, 1024, &c->max_threads);
	case KEY_READAHEAD:
		if (units_parse(val, true, 1ull << 40, &v))
			return bad_value("readahead", val,
					 "expected a size such as 64M, or 0");
		c->readahead = v;
		return 0;
	case KEY_KERNEL_READAHEAD:
		if (units_parse(val, true, 1ull << 30, &v))
			return bad_value("kernel_readahead", val,
					 "expected a size such as 4M, or 0");
		c->kernel_readahead = v;
		return 0;
	case KEY_PREFETCH:
		if (!strcmp(val, "none"))
			c->prefetch = FS_PREFETCH_NONE;
		else if (!strcmp(val, "open"))
			c->prefetch = FS_PREFETCH_OPEN;
		else if (!strcmp(val, "all"))
			c->prefetch = FS_PREFETCH_ALL;
		else
			return bad_value("prefetch", val,
					 "expected none, open or all");
		return 0;
	case KEY_PREFETCH_RATE:
		if (units_parse(val, true, 1ull << 40, &v))
			return bad_value("prefetch_rate", val,
					 "expected bytes per second such as "
					 "50M, or 0 for no cap");
		c->prefetch_rate = v;
		return 0;
	case KEY_CACHE_MAX:
		if (units_parse(val, true, UINT64_MAX, &v))
			return bad_value("cache_max", val,
					 "expected a size such as 20G, or 0 "
					 "for no limit");
		c->cache_max = v;
		return 0;
	case KEY_CACHE_MIN_FREE:
		if (units_parse(val, true, UINT64_MAX - 1, &v))
			return bad_value("cache_min_free", val,
					 "expected a size such as 10G, or 0");
		c->cache_min_free = v;
		return 0;
	case KEY_TIMEOUT:
		return parse_uint("timeout", val, 1, 86400, &c->timeout_s);
	case KEY_CONNECT_TIMEOUT:
		return parse_uint("connect_timeout", val, 1, 86400,
				  &c->connect_timeout_s);
	case KEY_RETRIES:
		return parse_uint("retries", val, 0, 100, &c->retries);
	case KEY_DEADLINE:
		return parse_uint("deadline", val, 1, 86400, &c->deadline_s);
	case KEY_MAX_ENTRIES:
		return parse_uint("max_entries", val, 1, 100000000,
				  &c->max_entries);
	case KEY_OFFLINE:
		c->offline = true;
		return 0;
	case KEY_TOKEN_FILE:
		if (!*val)
			return bad_value("token_file", val, "expected a file");
		return set_str(&c->token_file, val);
	case KEY_ENDPOINT:
		if (strncmp(val, "http://", 7) && strncmp(val, "https://", 8))
			return bad_value("endpoint", val,
					 "expected an http:// or https:// URL");
		return set_str(&c->endpoint, val);
	case KEY_PROXY:
		if (!eq)
			return bad_value("proxy", val,
					 "expected a URL, or nothing after "
					 "'=' for no proxy");
		if (*val && !proxy_url_ok(val))
			return bad_value(
				"proxy", val,
				"expected http://, https://, "
				"socks4[a]:// or socks5[h]://HOST[:PORT]");
		return set_str(&c->proxy, val);
	case KEY_DEBUG:
		if (hlog_set_debug(val))
			return bad_value("debug", val,
					 "expected fs, fetch, sched, state, "
					 "http or all, joined by commas");
		c->debug_cats |= hlog_get_debug_cats();
		return 0;
	case KEY_LOG:
		if (!*val)
			return bad_value("log", val, "expected a file");
		return set_str(&c->log_file, val);
	case KEY_UID:
		if (parse_uint("uid", val, 0, UINT32_MAX - 1, &id))
			return -1;
		c->uid = (uid_t)id;
		return 0;
	case KEY_GID:
		if (parse_uint("gid", val, 0, UINT32_MAX - 1, &id))
			return -1;
		c->gid = (gid_t)id;
		return 0;
	case KEY_FSNAME:
		c->have_fsname = true;
		return 1;
	case KEY_SUBTYPE:
		c->have_subtype = true;
		return 1;
	case KEY_IGNORE:
		return 0;
	}
	return 1;
}

static void cli_init(struct cli *c)
{
	memset(c, 0, sizeof(*c));
	c->chunk_size = 4u << 20;
	c->readahead = 64u << 20;
	c->kernel_readahead = 4u << 20;
	c->prefetch = FS_PREFETCH_OPEN;
	c->cache_min_free = MOUNT_MIN_FREE_DEFAULT;
	c->connections = 16;
	c->max_threads = 16;
	c->timeout_s = 10;
	c->connect_timeout_s = 10;
	c->retries = 4;
	c->deadline_s = 50;
	c->uid = getuid();
	c->gid = getgid();
}

static void cli_release(struct cli *c)
{
	size_t i;

	free(c->source);
	free(c->mountpoint);
	free(c->cache);
	free(c->token_file);
	free(c->log_file);
	free(c->endpoint);
	free(c->proxy);
	for (i = 0; i < c->nsrcopts; i++)
		free(c->srcopt_bufs[i]);
}

/* The options every hollowfs mount has, for libfuse. 0 or -ENOMEM. */
static int add_mount_opts(struct fuse_args *args, const struct cli *c)
{
	char *opts = NULL, *fsname = NULL;
	int err = -ENOMEM;

	/* Not "ro": setxattr (user.hollowfs.prefetch) must reach us; every
	 * write is still EROFS from fs/ops.c. */
	if (fuse_opt_add_opt(&opts, "default_permissions"))
		goto out;
	if (!c->have_fsname) {
		/* /proc/mounts is world-readable: no user:password@ there. */
		const char *s = c->source, *host = strstr(s, "://");
		const char *at = host ? strchr(host + 3, '@') : NULL;
		const char *slash = host ? strchr(host + 3, '/') : NULL;
		int res;

		if (at && (!slash || at < slash))
			res = asprintf(&fsname, "fsname=%.*s%s",
				       (int)(host + 3 - s), s, at + 1);
		else
			res = asprintf(&fsname, "fsname=%s", s);
		if (res < 0) {
			fsname = NULL;
			goto out;
		}
		if (fuse_opt_add_opt_escaped(&opts, fsname))
			goto out;
	}
	if (!c->have_subtype && fuse_opt_add_opt(&opts, "subtype=hollowfs"))
		goto out;
	if (fuse_opt_add_arg(args, "-o") || fuse_opt_add_arg(args, opts))
		goto out;
	err = 0;
out:
	free(fsname);
	free(opts);
	return err;
}

/* ---- the subcommands ---- */

static void print_help(void)
{
	fputs(usage_text, stdout);
	fputs(options_text, stdout);
	fputs(notes_text, stdout);
	fputs(options_more_text, stdout);
	printf("\nFUSE options:\n");
	fflush(stdout);
	fuse_lowlevel_help();
}

static void print_version(void)
{
	printf("hollowfs %s\n", HOLLOWFS_VERSION);
	printf("FUSE library version %s\n", fuse_pkgversion());
	fflush(stdout);
	fuse_lowlevel_version();
}

/* The options of a mount, from what was parsed. */
static void mount_opts_fill(const struct cli *c, struct fuse_args *args,
			    struct mount_opts *mo)
{
	memset(mo, 0, sizeof(*mo));
	mo->source = c->source;
	mo->mountpoint = c->mountpoint;
	mo->cache = c->cache;
	mo->log_file = c->log_file;
	mo->foreground = c->foreground;
	mo->offline = c->offline;
	mo->debug_cats = c->debug_cats;
	mo->max_threads = c->max_threads;
	mo->connections = c->connections;
	mo->src.max_entries = c->max_entries;
	mo->src.max_inflight = (int)c->connections; /* HEADs of a listing */
	mo->timeout_s = c->timeout_s;
	mo->connect_timeout_s = c->connect_timeout_s;
	mo->retries = c->retries;
	mo->deadline_s = c->deadline_s;
	mo->fs.uid = c->uid;
	mo->fs.gid = c->gid;
	mo->fs.chunk_size = (uint32_t)c->chunk_size;
	mo->fs.readahead_max = c->readahead;
	mo->fs.kernel_readahead = c->kernel_readahead;
	mo->fs.prefetch = (enum fs_prefetch)c->prefetch;
	mo->fs.prefetch_rate = c->prefetch_rate;
	mo->cache_max = c->cache_max;
	mo->cache_min_free = c->cache_min_free;
	mo->src.token_file = c->token_file;
	mo->src.endpoint = c->endpoint;
	mo->proxy = c->proxy;
	mo->src.env = true;
	mo->src.options = c->srcopts;
	mo->src.noptions = c->nsrcopts;
	mo->args = args;
}

/* hollowfs [mount] [-f] [-d] [-o opt[,opt...]] SOURCE MOUNTPOINT */
static int cmd_mount(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct mount *m = NULL;
	struct mount_opts mo;
	struct cli c;
	int ret = CLI_EXIT_USAGE, err;

	cli_init(&c);
	if (fuse_opt_parse(&args, &c, cli_opts, opt_proc) == -1)
		goto out;
	if (c.help || c.version) {
		if (c.help)
			print_help();
		else
			print_version();
		ret = CLI_EXIT_OK;
		goto out;
	}
	if (!c.source || !c.mountpoint) {
		fprintf(stderr,
			"hollowfs: missing %s (try 'hollowfs --help')\n",
			c.source ? "MOUNTPOINT" : "SOURCE and MOUNTPOINT");
		goto out;
	}
	if (c.fuse_debug) {
		c.foreground = true;
		c.debug_cats |= HLOG_FS;
	}
	if (add_mount_opts(&args, &c)) {
		fprintf(stderr, "hollowfs: out of memory\n");
		goto out;
	}
	mount_opts_fill(&c, &args, &mo);
	err = mount_open(&mo, &m);
	if (err) {
		ret = err == -ENOPROTOOPT ? CLI_EXIT_USAGE : CLI_EXIT_ERR;
		goto out;
	}
	ret = mount_run(m) ? CLI_EXIT_ERR : CLI_EXIT_OK;
	mount_free(m);
out:
	fuse_opt_free_args(&args);
	cli_release(&c);
	return ret;
}

static const struct {
	const char *name;
	int (*run)(int argc, char *argv[]); /* argv[0] is the command */
} commands[] = {
	{ "status", cmd_status },
	{ "prefetch", cmd_prefetch },
	{ "verify", cmd_verify },
	{ "gc", cmd_gc },
};

int cli_main(int argc, char *argv[])
{
	size_t i;

	mount_log_init(); /* fuse_opt_parse may say something */
	if (argc < 2)
		return cmd_mount(argc, argv);
	if (!strcmp(argv[1], "mount")) {
		/* "hollowfs mount ARGS" is "hollowfs ARGS". */
		argv[1] = argv[0];
		return cmd_mount(argc - 1, argv + 1);
	}
	/* A SOURCE has a scheme, so a bare word is never one. */
	for (i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	return cmd_mount(argc, argv);
}
