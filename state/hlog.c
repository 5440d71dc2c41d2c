/*
 * hlog.c: one sink; a line is escaped, then written with one fputs under
 * log_lock.
 *
 * Lock order: log_lock is a leaf. It guards sink and to_syslog, and is
 * held across the write of one line so that hlog_set_sink() can return
 * only once nobody writes to the old sink. It is taken around fork() so
 * that a child never inherits it locked.
 */
#include "state/hlog.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#define MSG_MAX 1024
/* Each byte may become "\xNN"; a "..." marks a cut. */
#define LINE_MAX_BYTES (4 * MSG_MAX + 64)

_Atomic int hlog_debug_cats;
_Atomic int hlog_max_level = HLOG_DEBUG;

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static FILE *sink; /* protected by log_lock */
static bool to_syslog; /* protected by log_lock */

/* A fork while another thread writes a line must not leave the child
 * with log_lock held (glibc does the same for stdio's locks). */
static void lock_for_fork(void)
{
	pthread_mutex_lock(&log_lock);
}

static void unlock_after_fork(void)
{
	pthread_mutex_unlock(&log_lock);
}

__attribute__((constructor)) static void hlog_init(void)
{
	pthread_atfork(lock_for_fork, unlock_after_fork, unlock_after_fork);
}

static const struct {
	const char *name;
	int cat;
} cat_names[] = {
	{ "fs", HLOG_FS },	 { "fetch", HLOG_FETCH },
	{ "sched", HLOG_SCHED }, { "state", HLOG_STATE },
	{ "http", HLOG_HTTP },	 { "all", HLOG_ALL },
	{ "1", HLOG_ALL },
};

int hlog_set_debug(const char *spec)
{
	int cats = 0;
	const char *p = spec;

	while (*p) {
		size_t len = strcspn(p, ",+:");
		size_t i;

		for (i = 0; i < sizeof(cat_names) / sizeof(cat_names[0]); i++) {
			if (strlen(cat_names[i].name) == len &&
			    !strncmp(cat_names[i].name, p, len))
				break;
		}
		if (i == sizeof(cat_names) / sizeof(cat_names[0]))
			return -EINVAL;
		cats |= cat_names[i].cat;
		p += len;
		if (*p)
			p++;
	}
	hlog_set_debug_cats(cats);
	return 0;
}

void hlog_set_debug_cats(int cats)
{
	atomic_store_explicit(&hlog_debug_cats, cats & HLOG_ALL,
			      memory_order_relaxed);
}

int hlog_get_debug_cats(void)
{
	return atomic_load_explicit(&hlog_debug_cats, memory_order_relaxed);
}

void hlog_set_level(enum hlog_level max_level)
{
	atomic_store_explicit(&hlog_max_level, (int)max_level,
			      memory_order_relaxed);
}

void hlog_set_sink(FILE *f, bool use_syslog)
{
	pthread_mutex_lock(&log_lock);
	if (use_syslog && !to_syslog)
		openlog("hollowfs", LOG_PID, LOG_DAEMON);
	sink = f;
	to_syslog = use_syslog;
	pthread_mutex_unlock(&log_lock);
}

static const char *level_name(enum hlog_level level)
{
	switch (level) {
	case HLOG_ERR:
		return "error";
	case HLOG_WARN:
		return "warning";
	case HLOG_INFO:
		return "info";
	default:
		return "debug";
	}
}

static const char *cat_name(enum hlog_cat cat)
{
	size_t i;

	for (i = 0; i < sizeof(cat_names) / sizeof(cat_names[0]); i++)
		if (cat_names[i].cat == (int)cat)
			return cat_names[i].name;
	return "?";
}

/*
 * Length of the UTF-8 character at p (at most n bytes) when it is well
 * formed (shortest form, no surrogate, at most U+10FFFF) and printable
 * (not a C1 control); else 0.
 */
static size_t utf8_printable_len(const unsigned char *p, size_t n)
{
	uint32_t cp;
	size_t len, i;

	if (p[0] >= 0xc2 && p[0] <= 0xdf) {
		len = 2;
		cp = p[0] & 0x1f;
	} else if (p[0] >= 0xe0 && p[0] <= 0xef) {
		len = 3;
		cp = p[0] & 0x0f;
	} else if (p[0] >= 0xf0 && p[0] <= 0xf4) {
		len = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff) ||
	    (cp >= 0x80 && cp <= 0x9f))
		return 0;
	return len;
}

size_t hlog_escape(const char *msg, char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *p = (const unsigned char *)msg;
	size_t n = strlen(msg), o = 0;

	while (n) {
		size_t len = 1;

		if (*p < 0x20 || *p == 0x7f) {
			len = 0;
		} else if (*p >= 0x80) {
			len = utf8_printable_len(p, n);
		}
		if (len) {
			if (o + len >= outlen)
				break;
			memcpy(out + o, p, len);
			o += len;
			p += len;
			n -= len;
			continue;
		}
		if (o + 4 >= outlen)
			break;
		out[o++] = '\\';
		out[o++] = 'x';
		out[o++] = hex[*p >> 4];
		out[o++] = hex[*p & 0xf];
		p++;
		n--;
	}
	out[o] = '\0';
	return o;
}

void hlog_msg(enum hlog_level level, enum hlog_cat cat, const char *fmt, ...)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char msg[MSG_MAX], safe[LINE_MAX_BYTES], line[LINE_MAX_BYTES + 64];
	struct timespec ts;
	long day_s;
	va_list ap;
	int n;

	if ((int)level < HLOG_ERR || level > HLOG_DEBUG)
		level = HLOG_ERR;
	if (!hlog_enabled(level, cat))
		return;
	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0)
		snprintf(msg, sizeof(msg), "(unprintable message)");
	hlog_escape(msg, safe, sizeof(safe) - 4);
	if (n >= (int)sizeof(msg))
		strcat(safe, "...");

	clock_gettime(CLOCK_REALTIME, &ts);
	/* UTC time of day by arithmetic: gmtime_r() takes libc's time zone
	 * lock, which a child forked while another thread held it would
	 * never get. */
	day_s = (long)(ts.tv_sec % 86400);
	snprintf(line, sizeof(line),
		 "%02ld:%02ld:%02ld.%03ld hollowfs %s: %s: %s\n", day_s / 3600,
		 day_s / 60 % 60, day_s % 60, ts.tv_nsec / 1000000,
		 level_name(level), cat_name(cat), safe);

	pthread_mutex_lock(&log_lock);
	if (to_syslog && !sink) {
		syslog(prio[level], "%s: %s: %s", level_name(level),
		       cat_name(cat), safe);
	} else {
		FILE *f = sink ? sink : stderr;

		fputs(line, f);
		fflush(f);
	}
	pthread_mutex_unlock(&log_lock);
}
