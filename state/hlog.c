/* hlog.c: one sink; a line is written with one fputs under the stdio lock. */
#include "state/hlog.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

int hlog_debug_cats;
int hlog_max_level = HLOG_DEBUG;
static FILE *sink;
static bool to_syslog;

static const struct {
	const char *name;
	int cat;
} cat_names[] = {
	{ "fs", HLOG_FS },	 { "fetch", HLOG_FETCH }, { "sched", HLOG_SCHED },
	{ "state", HLOG_STATE }, { "http", HLOG_HTTP },	  { "all", HLOG_ALL },
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
	hlog_debug_cats = cats;
	return 0;
}

void hlog_set_level(enum hlog_level max_level)
{
	hlog_max_level = (int)max_level;
}

void hlog_set_sink(FILE *f, bool use_syslog)
{
	sink = f;
	to_syslog = use_syslog;
	if (use_syslog)
		openlog("hollowfs", LOG_PID, LOG_DAEMON);
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

void hlog_msg(enum hlog_level level, enum hlog_cat cat, const char *fmt, ...)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char msg[1024], line[1200];
	struct timespec ts;
	struct tm tm;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (to_syslog && !sink) {
		syslog(prio[level], "%s: %s: %s", level_name(level),
		       cat_name(cat), msg);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	snprintf(line, sizeof(line),
		 "%02d:%02d:%02d.%03ld hollowfs %s: %s: %s\n", tm.tm_hour,
		 tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000, level_name(level),
		 cat_name(cat), msg);
	fputs(line, sink ? sink : stderr);
	fflush(sink ? sink : stderr);
}
