/*
 * main.c: the hollowfs command line (DESIGN.md "Command line").
 *
 *   hollowfs [-f] [-d] [-o opt[,opt...]] SOURCE MOUNTPOINT
 *
 * Order of a mount: parse the options and create the FUSE session (so an
 * unknown option fails at once), open SOURCE, open the cache, check
 * MOUNTPOINT, then daemonize unless -f. Daemonizing is early: the parent
 * waits on a pipe for one status byte from the child and exits 0 once it
 * reports "mounted", or with the child's status when the child exits
 * first. The child has printed its one error line to the inherited stderr
 * by then, so every failure, listing errors included, reaches the
 * terminal, and nothing is left mounted. Only after a successful mount
 * does the child leave the terminal: stdin, stdout and stderr go to
 * /dev/null and logs to syslog or the log= file.
 *
 * Exit status: 0 success, 1 runtime error (source, cache, listing,
 * mount), 2 bad usage (options, arguments).
 */
#define FUSE_USE_VERSION 312

#include "fs/fs.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fetch/engine.h"
#include "fetch/sched.h"
#include "fetch/source.h"
#include "fetch/source_hf.h"
#include "state/cache.h"
#include "state/hlog.h"
#include "state/manifest.h"
#include "state/sidecar.h"

#ifndef HOLLOWFS_VERSION
#define HOLLOWFS_VERSION "unknown"
#endif

enum { EXIT_OK = 0, EXIT_ERR = 1, EXIT_USAGE = 2 };

#define TOKEN_MAX 4096

/* What the command line asked for. Strings are owned. */
struct cli {
	char *source;
	char *mountpoint;
	char *cache;
	char *token_file;
	char *log_file;
	char *endpoint;
	char *hf_cache;
	bool foreground;
	bool fuse_debug;
	bool help;
	bool version;
	bool offline;
	bool have_fsname;
	bool have_subtype;
	bool in_debug;		/* the last option was debug= */
	int debug_cats;		/* HLOG_* categories of debug= */
	uint64_t chunk_size;
	uint64_t readahead;
	unsigned int connections;
	unsigned int max_threads;
	unsigned int timeout_s;
	unsigned int connect_timeout_s;
	unsigned int retries;
	uid_t uid;
	gid_t gid;
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
	KEY_TIMEOUT,
	KEY_CONNECT_TIMEOUT,
	KEY_RETRIES,
	KEY_OFFLINE,
	KEY_TOKEN_FILE,
	KEY_ENDPOINT,
	KEY_HF_CACHE,
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
	VALUE_OPT("timeout", KEY_TIMEOUT),
	VALUE_OPT("connect_timeout", KEY_CONNECT_TIMEOUT),
	VALUE_OPT("retries", KEY_RETRIES),
	FUSE_OPT_KEY("offline", KEY_OFFLINE),
	VALUE_OPT("token_file", KEY_TOKEN_FILE),
	VALUE_OPT("endpoint", KEY_ENDPOINT),
	VALUE_OPT("hf_cache", KEY_HF_CACHE),
	FUSE_OPT_KEY("debug=", KEY_DEBUG),
	VALUE_OPT("log", KEY_LOG),
	VALUE_OPT("uid", KEY_UID),
	VALUE_OPT("gid", KEY_GID),
	FUSE_OPT_KEY("fsname=", KEY_FSNAME),
	FUSE_OPT_KEY("subtype=", KEY_SUBTYPE),
	/* Always read-only: "ro" is added anyway. mount(8) passes "rw"
	 * unless told "ro", so "rw" is accepted too. */
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
"usage: hollowfs [-f] [-d] [-o opt[,opt...]] SOURCE MOUNTPOINT\n"
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
"                           ~/.cache/hollowfs, /var/cache/hollowfs as root)\n"
"    -o chunk_size=N        unit of fetching and caching, a multiple of 4K\n"
"                           from 64K to 64M (default: 4M)\n"
"    -o connections=N       parallel transfers, 1 to 256 (default: 16)\n"
"    -o max_threads=N       FUSE worker threads, 1 to 1024 (default: 16)\n"
"    -o readahead=N         largest readahead window of an open file, 0 to\n"
"                           turn readahead off (default: 64M)\n"
"    -o timeout=SECS        fail a transfer that stalls this long\n"
"                           (default: 10)\n"
"    -o connect_timeout=SECS\n"
"                           give up connecting after this long (default: 10)\n"
"    -o retries=N           attempts after a failed one, 0 to 100\n"
"                           (default: 4)\n"
"    -o offline             never fetch: serve the snapshot saved in the\n"
"                           cache and the chunks already cached (also\n"
"                           HF_HUB_OFFLINE=1 for hf:// sources)\n"
"    -o token_file=PATH     read the access token from PATH (default for\n"
"                           hf:// sources: $HF_TOKEN,\n"
"                           $HUGGING_FACE_HUB_TOKEN, then the file\n"
"                           $HF_TOKEN_PATH or $HF_HOME/token, default\n"
"                           ~/.cache/huggingface/token)\n"
"    -o endpoint=URL        Hugging Face Hub endpoint (default: $HF_ENDPOINT,\n"
"                           else https://huggingface.co)\n"
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
"                           read-only\n"
"\n"
"Sizes take a K, M or G suffix (powers of 1024).\n"
"\n"
"It also works as 'mount -t fuse.hollowfs SOURCE MOUNTPOINT -o opts' and\n"
"from /etc/fstab. Unmount with 'fusermount3 -u MOUNTPOINT' or umount(8).\n"
"\n"
"Extended attributes of each file: user.hollowfs.cached (bytes cached),\n"
"user.hollowfs.chunks (cached/total chunks), user.hollowfs.source (URL),\n"
"user.hollowfs.sha256 (when the source knows it).\n"
"\n"
"exit status: 0 mounted (with -f: unmounted cleanly), 1 error, 2 bad usage\n";

/* ---- libfuse's messages ---- */

enum fuse_log_mode {
	FLOG_PLAIN,	/* before the mount: warnings as plain lines */
	FLOG_CAPTURE,	/* during the mount: keep the error for our line */
	FLOG_HLOG,	/* mounted: into the log sink */
};

static _Atomic int fuse_log_mode = FLOG_PLAIN;
static pthread_mutex_t captured_lock = PTHREAD_MUTEX_INITIALIZER;
static char captured[1024];	/* protected by captured_lock */

/* Sends one complete line of libfuse's to where it belongs now. */
static void fuse_log_line(enum fuse_log_level level, const char *msg)
{
	int mode = atomic_load(&fuse_log_mode);
	enum hlog_level hl;

	if (mode == FLOG_CAPTURE && level <= FUSE_LOG_ERR) {
		pthread_mutex_lock(&captured_lock);
		snprintf(captured, sizeof(captured), "%s", msg);
		pthread_mutex_unlock(&captured_lock);
		return;
	}
	if (mode != FLOG_HLOG && level <= FUSE_LOG_WARNING) {
		if (!strncmp(msg, "fuse: ", 6))
			msg += 6;
		fprintf(stderr, "hollowfs: %s\n", msg);
		return;
	}
	if (level <= FUSE_LOG_ERR)
		hl = HLOG_ERR;
	else if (level == FUSE_LOG_WARNING)
		hl = HLOG_WARN;
	else if (level < FUSE_LOG_DEBUG)
		hl = HLOG_INFO;
	else
		hl = HLOG_DEBUG;
	hlog(hl, HLOG_FS, "%s", msg);
}

/*
 * libfuse's log function. libfuse builds some lines with several calls
 * ("unknown option(s): `", "-o ", "x'", "\n"), so pieces are gathered
 * per thread until the newline.
 */
static __attribute__((format(printf, 2, 0))) void
on_fuse_log(enum fuse_log_level level, const char *fmt, va_list ap)
{
	static _Thread_local char line[1024];
	static _Thread_local size_t len;
	bool eol;

	if (len < sizeof(line) - 1)
		vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	len = strlen(line);
	eol = len && line[len - 1] == '\n';
	if (!eol && len < sizeof(line) - 1)
		return;
	while (len && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		line[--len] = '\0';
	if (len)
		fuse_log_line(level, line);
	len = 0;
	line[0] = '\0';
}

/* ---- option parsing ---- */

static int bad_value(const char *name, const char *val, const char *why)
{
	fprintf(stderr, "hollowfs: bad value '%s' for option %s: %s\n", val,
		name, why);
	return -1;
}

/*
 * Parses a decimal number with an optional K, M, G or T suffix (powers of
 * 1024, "K", "KB" or "KiB", any case) when sizes is set. 0, -EINVAL or
 * -ERANGE (above max).
 */
static int parse_number(const char *s, bool sizes, uint64_t max,
			uint64_t *out)
{
	unsigned long long v;
	unsigned int shift = 0;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -ERANGE;
	if (sizes && *end) {
		const char *units = "KMGT", *u = strchr(units, *end & ~0x20);

		if (!u || !*u)
			return -EINVAL;
		shift = 10 * (unsigned int)(u - units + 1);
		end++;
		if ((*end & ~0x20) == 'I' && (end[1] & ~0x20) == 'B')
			end += 2;
		else if ((*end & ~0x20) == 'B')
			end++;
	}
	if (*end)
		return -EINVAL;
	if (v > (UINT64_MAX >> shift) || (v << shift) > max)
		return -ERANGE;
	*out = v << shift;
	return 0;
}

static int parse_uint(const char *name, const char *val, unsigned int lo,
		      unsigned int hi, unsigned int *out)
{
	char why[64];
	uint64_t v;

	if (parse_number(val, false, hi, &v) || v < lo) {
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
		c->debug_cats |= hlog_debug_cats;
		return 0;
	}
	c->in_debug = key == KEY_DEBUG;
	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		if (!c->source)
			return set_str(&c->source, arg);
		if (!c->mountpoint)
			return set_str(&c->mountpoint, arg);
		fprintf(stderr, "hollowfs: unexpected argument '%s' (try "
			"'hollowfs --help')\n", arg);
		return -1;
	case FUSE_OPT_KEY_OPT:
		/* systemd's x-* fstab options are for systemd. */
		if (!strncmp(arg, "x-", 2))
			return 0;
		return 1;	/* libfuse's, or libfuse complains */
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
		if (parse_number(val, true, UINT64_MAX, &v) ||
		    !chunk_size_valid(v))
			return bad_value("chunk_size", val,
					 "expected a multiple of 4K from 64K "
					 "to 64M, such as 4M");
		c->chunk_size = v;
		return 0;
	case KEY_CONNECTIONS:
		return parse_uint("connections", val, 1, 256,
				  &c->connections);
	case KEY_MAX_THREADS:
		return parse_uint("max_threads", val, 1, 1024,
				  &c->max_threads);
	case KEY_READAHEAD:
		if (parse_number(val, true, 1ull << 40, &v))
			return bad_value("readahead", val,
					 "expected a size such as 64M, or 0");
		c->readahead = v;
		return 0;
	case KEY_TIMEOUT:
		return parse_uint("timeout", val, 1, 86400, &c->timeout_s);
	case KEY_CONNECT_TIMEOUT:
		return parse_uint("connect_timeout", val, 1, 86400,
				  &c->connect_timeout_s);
	case KEY_RETRIES:
		return parse_uint("retries", val, 0, 100, &c->retries);
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
	case KEY_HF_CACHE:
		if (!*val)
			return bad_value("hf_cache", val, "expected a folder");
		return set_str(&c->hf_cache, val);
	case KEY_DEBUG:
		if (hlog_set_debug(val))
			return bad_value("debug", val,
					 "expected fs, fetch, sched, state, "
					 "http or all, joined by commas");
		c->debug_cats |= hlog_debug_cats;
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
	c->connections = 16;
	c->max_threads = 16;
	c->timeout_s = 10;
	c->connect_timeout_s = 10;
	c->retries = 4;
	c->uid = getuid();
	c->gid = getgid();
}

static void cli_release(struct cli *c)
{
	free(c->source);
	free(c->mountpoint);
	free(c->cache);
	free(c->token_file);
	free(c->log_file);
	free(c->endpoint);
	free(c->hf_cache);
}

/* The options every hollowfs mount has, for libfuse. 0 or -ENOMEM. */
static int add_mount_opts(struct fuse_args *args, const struct cli *c)
{
	char *opts = NULL, *fsname = NULL;
	int err = -ENOMEM;

	if (fuse_opt_add_opt(&opts, "ro") ||
	    fuse_opt_add_opt(&opts, "default_permissions"))
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

/* ---- tokens ---- */

/*
 * Reads a token file into a new string (*out, owned, to wipe and free),
 * whitespace stripped. 0, -ENODATA when it is empty, -EFBIG when it is
 * larger than TOKEN_MAX, or the error of reading it.
 */
static int read_token_file(const char *path, char **out)
{
	char buf[TOKEN_MAX + 1];
	size_t len = 0, start = 0;
	ssize_t n;
	int fd, err = 0;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (;;) {
		n = read(fd, buf + len, sizeof(buf) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			goto out_close;
		}
		if (!n)
			break;
		len += (size_t)n;
		if (len == sizeof(buf)) {
			err = -EFBIG;
			goto out_close;
		}
	}
	while (len && strchr(" \t\r\n\f\v", buf[len - 1]))
		len--;
	while (start < len && strchr(" \t\r\n\f\v", buf[start]))
		start++;
	if (start == len) {
		err = -ENODATA;
		goto out_close;
	}
	*out = strndup(buf + start, len - start);
	if (!*out)
		err = -ENOMEM;
out_close:
	explicit_bzero(buf, sizeof(buf));
	close(fd);
	return err;
}

/* The default token file of the Hugging Face tools, or NULL. */
static char *hf_token_path(void)
{
	const char *p = getenv("HF_TOKEN_PATH"), *home;
	char *path = NULL;

	if (p && *p)
		return strdup(p);
	p = getenv("HF_HOME");
	if (p && *p) {
		if (asprintf(&path, "%s/token", p) < 0)
			return NULL;
		return path;
	}
	p = getenv("XDG_CACHE_HOME");
	if (p && *p) {
		if (asprintf(&path, "%s/huggingface/token", p) < 0)
			return NULL;
		return path;
	}
	home = getenv("HOME");
	if (!home || !*home)
		return NULL;
	if (asprintf(&path, "%s/.cache/huggingface/token", home) < 0)
		return NULL;
	return path;
}

/*
 * The token to send: token_file= if given (any source: the user chose
 * it), else for hf:// sources only $HF_TOKEN or the Hugging Face token
 * file, so a Hub token never goes to another server. 0 with *out owned
 * or NULL; -1 after printing the error line.
 */
/*
 * A token from the environment as huggingface_hub cleans it: line breaks
 * removed, surrounding white space stripped. A new string, or NULL when
 * nothing is left (errno 0) or out of memory (errno ENOMEM).
 */
static char *token_clean(const char *v)
{
	size_t len = strlen(v), i, n = 0;
	char *t;

	while (len && isspace((unsigned char)v[len - 1]))
		len--;
	while (len && isspace((unsigned char)*v)) {
		v++;
		len--;
	}
	t = malloc(len + 1);
	if (!t) {
		errno = ENOMEM;
		return NULL;
	}
	for (i = 0; i < len; i++)
		if (v[i] != '\r' && v[i] != '\n')
			t[n++] = v[i];
	t[n] = '\0';
	if (!n) {
		free(t);
		errno = 0;
		return NULL;
	}
	return t;
}

static int get_token(const struct cli *c, char **out)
{
	static const char *const env_names[] = { "HF_TOKEN",
						 "HUGGING_FACE_HUB_TOKEN" };
	const char *env;
	char *path;
	size_t i;
	int err;

	*out = NULL;
	if (c->token_file) {
		err = read_token_file(c->token_file, out);
		if (err == -ENODATA)
			fprintf(stderr, "hollowfs: token file '%s' is empty\n",
				c->token_file);
		else if (err)
			fprintf(stderr,
				"hollowfs: cannot read token file '%s': %s\n",
				c->token_file, strerror(-err));
		return err ? -1 : 0;
	}
	if (strncasecmp(c->source, "hf://", 5))
		return 0;	/* a Hub token never goes to another server */
	for (i = 0; i < sizeof(env_names) / sizeof(env_names[0]); i++) {
		env = getenv(env_names[i]);
		if (!env)
			continue;
		*out = token_clean(env);
		if (!*out && errno == ENOMEM) {
			fprintf(stderr, "hollowfs: out of memory\n");
			return -1;
		}
		if (*out)
			return 0;
	}
	path = hf_token_path();
	if (!path)
		return 0;
	err = read_token_file(path, out);
	if (err && err != -ENOENT)
		hlog(HLOG_DEBUG, HLOG_FS, "no token from '%s': %s", path,
		     strerror(-err));
	free(path);
	return 0;
}

/* ---- paths ---- */

/* An absolute form of path (the daemon runs in "/"); new string. */
static char *abs_path(const char *path)
{
	char cwd[PATH_MAX], *out;

	if (path[0] == '/')
		return strdup(path);
	if (!getcwd(cwd, sizeof(cwd)))
		return NULL;
	if (asprintf(&out, "%s/%s", cwd, path) < 0)
		return NULL;
	return out;
}

/* Checks MOUNTPOINT; *out is its real path. -1 after the error line. */
static int check_mountpoint(const char *mnt, char **out)
{
	struct stat st;

	*out = NULL;
	if (stat(mnt, &st) < 0) {
		fprintf(stderr, "hollowfs: mountpoint '%s' is not accessible: "
			"%s\n", mnt, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "hollowfs: mountpoint '%s' is not a folder: "
			"%s\n", mnt, strerror(ENOTDIR));
		return -1;
	}
	*out = realpath(mnt, NULL);
	if (!*out) {
		fprintf(stderr, "hollowfs: mountpoint '%s' is not accessible: "
			"%s\n", mnt, strerror(errno));
		return -1;
	}
	return 0;
}

/* ---- daemonizing ---- */

static volatile sig_atomic_t child_pid;

/* The parent: a ^C while the child lists and mounts stops the child. */
static void forward_signal(int sig)
{
	(void)sig;
	if (child_pid > 0)
		kill((pid_t)child_pid, SIGTERM);
}

static __attribute__((noreturn)) void wait_for_child(pid_t pid, int rfd)
{
	struct sigaction sa;
	char status = 1;
	ssize_t n;
	int ws = 0;

	child_pid = pid;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = forward_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	do
		n = read(rfd, &status, 1);
	while (n < 0 && errno == EINTR);
	if (n == 1 && status == 0)
		_exit(EXIT_OK);
	/* The child failed and said why: exit with its status. */
	while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(ws) && WEXITSTATUS(ws))
		_exit(WEXITSTATUS(ws));
	_exit(EXIT_ERR);
}

/*
 * Forks. The parent waits in wait_for_child and never returns; the child
 * returns 0 with *notify_fd, on which it writes one byte 0 once mounted
 * (or exits, which the parent reads as a failure). -1 after the error
 * line.
 */
static int daemonize_early(int *notify_fd)
{
	int pfd[2];
	pid_t pid;

	*notify_fd = -1;
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		fprintf(stderr, "hollowfs: cannot daemonize: %s\n",
			strerror(errno));
		return -1;
	}
	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "hollowfs: cannot daemonize: %s\n",
			strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid > 0) {
		close(pfd[1]);
		wait_for_child(pid, pfd[0]);
	}
	close(pfd[0]);
	if (setsid() < 0 || chdir("/") < 0) {
		fprintf(stderr, "hollowfs: cannot daemonize: %s\n",
			strerror(errno));
		close(pfd[1]);
		return -1;
	}
	*notify_fd = pfd[1];
	return 0;
}

/* The child is mounted: leave the terminal and tell the parent. */
static void detach_from_terminal(int notify_fd, FILE *logf)
{
	char ok = 0;
	int fd;

	hlog_set_sink(logf, !logf);
	hlog_set_level(HLOG_DEBUG);
	fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	while (write(notify_fd, &ok, 1) < 0 && errno == EINTR)
		;
	close(notify_fd);
}

/* True when the environment variable is 1, true, yes or on. */
static bool env_true(const char *name)
{
	const char *v = getenv(name);

	return v && (!strcmp(v, "1") || !strcasecmp(v, "true") ||
		     !strcasecmp(v, "yes") || !strcasecmp(v, "on"));
}

/* ---- the huggingface_hub cache export (-o hf_cache=) ---- */

/* Set up before the scheduler starts; src, m, cache and se are filled
 * in once the snapshot is listed and the session exists, then ready is
 * set. */
struct hf_export {
	char *dir;			/* absolute, owned; NULL: no export */
	struct source *src;		/* borrowed */
	struct manifest *m;		/* borrowed */
	struct cache *cache;		/* borrowed */
	struct fuse_session *se;	/* borrowed */
	_Atomic bool ready;
};

/*
 * The scheduler's on_corrupt (saver thread, no lock held): a complete
 * file failed its hash and was discarded. The kernel may still hold its
 * pages (keep_cache), so they are dropped for every path with that
 * content, and reads come to us and fail with EIO until a remount.
 */
static void on_corrupt_invalidate(void *arg, struct fblob *fb)
{
	struct hf_export *hx = arg;
	const char *hash = fblob_hash(fb);
	size_t i;

	if (!atomic_load(&hx->ready) || !hash)
		return;
	for (i = 0; i < hx->m->n; i++) {
		const struct mentry *e = &hx->m->entries[i];

		if (e->type == MENTRY_FILE && e->content_id &&
		    !strcmp(e->content_id, hash))
			fuse_lowlevel_notify_inval_inode(hx->se, i + 1, 0, 0);
	}
}

/*
 * The scheduler's on_verified (saver thread, no lock held): a complete
 * file passed its hash, so every path of the snapshot with that content
 * is placed into the huggingface_hub cache. Never a partial file: only
 * verified blobs come here, and hf_cache_export renames into place.
 */
static void on_verified_export(void *arg, struct fblob *fb)
{
	struct hf_export *hx = arg;
	const char *hash = fblob_hash(fb);
	char path[PATH_MAX];
	size_t i;
	int err;

	if (!atomic_load(&hx->ready) || !hash || !hx->dir)
		return;
	err = cache_blob_path(hx->cache, fblob_blob(fb)->hex, "", path,
			      sizeof(path));
	if (err)
		return;
	for (i = 0; i < hx->m->n; i++) {
		const struct mentry *e = &hx->m->entries[i];

		if (e->type != MENTRY_FILE || !e->content_id ||
		    strcmp(e->content_id, hash))
			continue;
		err = hf_cache_export(hx->dir, hx->src, hx->m, i, path);
		if (err)
			hlog(HLOG_WARN, HLOG_FS,
			     "exporting '%s' to the hf cache '%s' failed: %s",
			     e->path, hx->dir, strerror(-err));
		else
			hlog(HLOG_DEBUG, HLOG_FS,
			     "exported '%s' to the hf cache '%s'", e->path,
			     hx->dir);
	}
}

/* ---- main ---- */

static void print_version(void)
{
	printf("hollowfs %s\n", HOLLOWFS_VERSION);
	printf("FUSE library version %s\n", fuse_pkgversion());
	fflush(stdout);
	fuse_lowlevel_version();
}

static int run_loop(struct fuse_session *se, unsigned int max_threads)
{
	struct fuse_loop_config *cfg;
	int res;

	cfg = fuse_loop_cfg_create();
	if (!cfg)
		return -ENOMEM;
	fuse_loop_cfg_set_max_threads(cfg, max_threads);
	fuse_loop_cfg_set_clone_fd(cfg, 0);
	res = fuse_session_loop_mt(se, cfg);
	fuse_loop_cfg_destroy(cfg);
	return res;
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_session *se = NULL;
	struct source_opts srco;
	struct engine_opts eo;
	struct sched_opts so;
	struct fs_opts fo;
	struct cli c;
	struct fs *fs = NULL;
	struct source *src = NULL;
	struct cache *cache = NULL;
	struct engine *engine = NULL;
	struct sched *sched = NULL;
	struct manifest *m = NULL;
	struct hf_export hx = { .dir = NULL };
	char errbuf[1024], cache_dir[PATH_MAX];
	char *token = NULL, *cache_opt = NULL, *mnt = NULL;
	FILE *logf = NULL;
	bool used_saved = false, handlers = false, mounted = false;
	int ret = EXIT_USAGE, notify_fd = -1, err, res;

	cli_init(&c);
	fuse_set_log_func(on_fuse_log);
	if (fuse_opt_parse(&args, &c, cli_opts, opt_proc) == -1)
		goto out;
	if (c.help) {
		fputs(usage_text, stdout);
		printf("\nFUSE options:\n");
		fflush(stdout);
		fuse_lowlevel_help();
		ret = EXIT_OK;
		goto out;
	}
	if (c.version) {
		print_version();
		ret = EXIT_OK;
		goto out;
	}
	if (!c.source || !c.mountpoint) {
		fprintf(stderr,
			"hollowfs: missing %s (try 'hollowfs --help')\n",
			c.source ? "MOUNTPOINT" : "SOURCE and MOUNTPOINT");
		goto out;
	}
	hlog_debug_cats = c.debug_cats;
	if (c.fuse_debug) {
		c.foreground = true;
		hlog_debug_cats |= HLOG_FS;
	}
	if (add_mount_opts(&args, &c)) {
		fprintf(stderr, "hollowfs: out of memory\n");
		goto out;
	}

	ret = EXIT_ERR;
	if (c.log_file) {
		logf = fopen(c.log_file, "ae");
		if (!logf) {
			fprintf(stderr, "hollowfs: cannot open log file '%s': "
				"%s\n", c.log_file, strerror(errno));
			goto out;
		}
		setvbuf(logf, NULL, _IOLBF, 0);
	}
	if (c.foreground)
		hlog_set_sink(logf ? logf : stderr, false);
	if (get_token(&c, &token))
		goto out;

	fo.uid = c.uid;
	fo.gid = c.gid;
	fo.chunk_size = (uint32_t)c.chunk_size;
	fo.readahead_max = c.readahead;
	err = fs_new(&fo, &fs);
	if (err) {
		fprintf(stderr, "hollowfs: %s\n", strerror(-err));
		goto out;
	}
	/* Parses libfuse's options: an unknown one fails here, at once. */
	se = fuse_session_new(&args, &fs_ll_ops, sizeof(fs_ll_ops), fs);
	if (!se) {
		ret = EXIT_USAGE;	/* libfuse said why */
		goto out;
	}

	memset(&srco, 0, sizeof(srco));
	srco.token = token;
	srco.endpoint = c.endpoint ? c.endpoint : getenv("HF_ENDPOINT");
	if (srco.endpoint && !*srco.endpoint)
		srco.endpoint = NULL;
	errbuf[0] = '\0';
	err = source_open(c.source, &srco, &src, errbuf, sizeof(errbuf));
	if (err) {
		fprintf(stderr, "hollowfs: %s\n",
			errbuf[0] ? errbuf : strerror(-err));
		goto out;
	}
	if (!strcmp(src->kind, "hf") && env_true("HF_HUB_OFFLINE"))
		c.offline = true;	/* as huggingface_hub does */
	if (c.hf_cache) {
		if (strcmp(src->kind, "hf")) {
			fprintf(stderr, "hollowfs: bad value '%s' for option "
				"hf_cache: only hf:// sources have a "
				"huggingface_hub cache\n", c.hf_cache);
			ret = EXIT_USAGE;
			goto out;
		}
		hx.dir = abs_path(c.hf_cache);
		if (!hx.dir) {
			fprintf(stderr, "hollowfs: hf cache '%s': %s\n",
				c.hf_cache, strerror(errno));
			goto out;
		}
	}

	if (c.cache) {
		cache_opt = abs_path(c.cache);
		if (!cache_opt) {
			fprintf(stderr, "hollowfs: cache directory '%s': %s\n",
				c.cache, strerror(errno));
			goto out;
		}
	}
	err = cache_resolve_dir(cache_opt, cache_dir, sizeof(cache_dir));
	if (err) {
		fprintf(stderr, "hollowfs: cannot choose a cache directory "
			"(set -o cache=DIR): %s\n", strerror(-err));
		goto out;
	}
	err = cache_open(cache_dir, &cache);
	if (err) {
		fprintf(stderr, "hollowfs: cache directory '%s' is not "
			"writable: %s\n", cache_dir, strerror(-err));
		goto out;
	}

	if (check_mountpoint(c.mountpoint, &mnt))
		goto out;

	if (!c.foreground) {
		/* Until detached, only what stops the mount reaches the
		 * terminal: warnings and errors. */
		hlog_set_level(HLOG_WARN);
		if (daemonize_early(&notify_fd))
			goto out;
	}
	/* Only the child (or the foreground process) from here on. */
	signal(SIGPIPE, SIG_IGN);

	engine_opts_default(&eo);
	eo.connections = (int)c.connections;
	eo.connect_timeout_ms = (int)c.connect_timeout_s * 1000;
	eo.stall_timeout_ms = (int)c.timeout_s * 1000;
	eo.retries = (int)c.retries;
	err = engine_new(&eo, &engine);
	if (err) {
		fprintf(stderr, "hollowfs: cannot start the fetch engine: %s\n",
			strerror(-err));
		goto out;
	}
	sched_opts_default(&so);
	so.chunk_size = (uint32_t)c.chunk_size;
	so.offline = c.offline;
	so.on_verified = on_verified_export;
	so.on_corrupt = on_corrupt_invalidate;
	so.on_verified_arg = &hx;
	err = sched_new(&so, cache, engine, &sched);
	if (err) {
		fprintf(stderr, "hollowfs: cannot start the scheduler: %s\n",
			strerror(-err));
		goto out;
	}

	errbuf[0] = '\0';
	err = source_snapshot(src, engine, cache, c.offline, &m, &used_saved,
			      errbuf, sizeof(errbuf));
	if (err) {
		fprintf(stderr, "hollowfs: %s\n",
			errbuf[0] ? errbuf : strerror(-err));
		goto out;
	}
	if (used_saved && c.offline)
		hlog(HLOG_INFO, HLOG_FS,
		     "offline: serving snapshot %s of '%s' from the cache",
		     m->version ? m->version : "(unknown)", c.source);
	else if (used_saved)
		hlog(HLOG_WARN, HLOG_FS,
		     "'%s' is unreachable: serving snapshot %s saved in the "
		     "cache", c.source, m->version ? m->version : "(unknown)");
	hx.src = src;
	hx.m = m;
	hx.cache = cache;
	hx.se = se;
	atomic_store(&hx.ready, true);
	err = fs_attach(fs, src, m, sched);
	if (err) {
		fprintf(stderr, "hollowfs: cannot build the tree of '%s': %s\n",
			c.source, strerror(-err));
		goto out;
	}

	if (fuse_set_signal_handlers(se)) {
		fprintf(stderr, "hollowfs: cannot set signal handlers\n");
		goto out;
	}
	handlers = true;
	atomic_store(&fuse_log_mode, FLOG_CAPTURE);
	res = fuse_session_mount(se, mnt);
	atomic_store(&fuse_log_mode, FLOG_PLAIN);
	if (res) {
		char why_buf[sizeof(captured)];
		const char *why = why_buf;

		pthread_mutex_lock(&captured_lock);
		memcpy(why_buf, captured, sizeof(why_buf));
		pthread_mutex_unlock(&captured_lock);
		if (!strncmp(why, "fuse: ", 6))
			why += 6;
		if (*why)
			fprintf(stderr, "hollowfs: cannot mount on '%s': %s\n",
				mnt, why);
		else
			fprintf(stderr, "hollowfs: cannot mount on '%s'\n",
				mnt);
		goto out;
	}
	mounted = true;
	atomic_store(&fuse_log_mode, FLOG_HLOG);
	if (notify_fd >= 0) {
		detach_from_terminal(notify_fd, logf);
		notify_fd = -1;
	}
	hlog(HLOG_INFO, HLOG_FS, "mounted '%s' on '%s': %zu files, %" PRIu64
	     " bytes", c.source, mnt, manifest_file_count(m),
	     manifest_total_bytes(m));

	res = run_loop(se, c.max_threads);
	ret = res < 0 ? EXIT_ERR : EXIT_OK;
	if (res < 0)
		hlog(HLOG_ERR, HLOG_FS, "session loop failed: %s",
		     strerror(-res));
	else
		hlog(HLOG_INFO, HLOG_FS, "unmounting '%s'", mnt);

out:
	/*
	 * Parked reads are answered (with errors) by engine_free and
	 * sched_free while the session still exists; then unmount.
	 */
	engine_free(engine);
	fs_detach(fs);
	sched_free(sched);
	if (mounted)
		fuse_session_unmount(se);
	if (handlers)
		fuse_remove_signal_handlers(se);
	if (se)
		fuse_session_destroy(se);
	fs_free(fs);
	manifest_free(m);
	source_free(src);
	cache_free(cache);
	if (notify_fd >= 0)
		close(notify_fd);	/* the parent reads a failure */
	if (token) {
		explicit_bzero(token, strlen(token));
		free(token);
	}
	free(cache_opt);
	free(mnt);
	if (logf) {
		hlog_set_sink(NULL, false);
		fclose(logf);
	}
	fuse_opt_free_args(&args);
	free(hx.dir);
	cli_release(&c);
	return ret;
}
