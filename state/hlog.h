/* hlog: the one logging sink of hollowfs (STYLE.md section 5). */
#ifndef HOLLOWFS_STATE_HLOG_H
#define HOLLOWFS_STATE_HLOG_H

#include <stdbool.h>
#include <stdio.h>

enum hlog_level { HLOG_ERR, HLOG_WARN, HLOG_INFO, HLOG_DEBUG };

enum hlog_cat {
	HLOG_FS = 1 << 0,
	HLOG_FETCH = 1 << 1,
	HLOG_SCHED = 1 << 2,
	HLOG_STATE = 1 << 3,
	HLOG_HTTP = 1 << 4,
	HLOG_ALL = (1 << 5) - 1,
};

/* Categories whose DEBUG messages are emitted; 0 by default. */
extern int hlog_debug_cats;

/* Messages less severe than this are dropped (DEBUG ones still need
 * their category); HLOG_DEBUG by default. */
extern int hlog_max_level;
void hlog_set_level(enum hlog_level max_level);

/*
 * Parses "fetch,state" (or "all", "1") into hlog_debug_cats.
 * Returns 0, or -EINVAL naming nothing when a word is unknown.
 */
int hlog_set_debug(const char *spec) __attribute__((warn_unused_result));

/* Sends messages to FILE (borrowed; default stderr), or to syslog if NULL
 * and use_syslog is set. */
void hlog_set_sink(FILE *f, bool use_syslog);

void hlog_msg(enum hlog_level level, enum hlog_cat cat, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define hlog_enabled(level, cat)          \
	((int)(level) <= hlog_max_level && \
	 ((level) != HLOG_DEBUG || (hlog_debug_cats & (cat))))

/* Debug messages cost one branch when disabled. */
#define hlog(level, cat, ...)                              \
	do {                                               \
		if (hlog_enabled(level, cat))              \
			hlog_msg(level, cat, __VA_ARGS__); \
	} while (0)

#endif
