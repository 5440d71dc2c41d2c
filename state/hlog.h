/*
 * hlog: the one logging sink of hollowfs (STYLE.md section 5).
 *
 * Threads: every function may be called from any thread at any time. The
 * level and the debug categories are atomics, read with a relaxed load by
 * hlog() (a disabled debug message costs one load and one branch). The
 * sink is swapped under hlog's own lock, which a message also holds while
 * it is written: once hlog_set_sink() returns, no thread writes to the old
 * FILE any more, so the caller may fclose() it. That lock is a leaf:
 * nothing else is taken under it, and it is held only for one write.
 *
 * Every line is escaped before it is written: control bytes (below 0x20,
 * and 0x7f), C1 controls (U+0080 to U+009F) and bytes that are not UTF-8
 * appear as \xNN, so a remote name can neither break a line nor reach a
 * terminal as an escape sequence.
 */
#ifndef HOLLOWFS_STATE_HLOG_H
#define HOLLOWFS_STATE_HLOG_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
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

/* Categories whose DEBUG messages are emitted; 0 by default. Read it
 * with hlog_get_debug_cats(), change it with hlog_set_debug_cats() or
 * hlog_set_debug() (a plain assignment is atomic too, but sequentially
 * consistent, which nothing here needs). */
extern _Atomic int hlog_debug_cats;

/* Messages less severe than this are dropped (DEBUG ones still need
 * their category); HLOG_DEBUG by default. Set it with hlog_set_level(). */
extern _Atomic int hlog_max_level;
void hlog_set_level(enum hlog_level max_level);

/*
 * Parses "fetch,state" (or "all", "1") into hlog_debug_cats.
 * Returns 0, or -EINVAL naming nothing when a word is unknown (then the
 * categories are unchanged).
 */
int hlog_set_debug(const char *spec) __attribute__((warn_unused_result));
void hlog_set_debug_cats(int cats);
int hlog_get_debug_cats(void);

/* Sends messages to FILE (borrowed; default stderr), or to syslog if NULL
 * and use_syslog is set. After it returns the old FILE is not used. */
void hlog_set_sink(FILE *f, bool use_syslog);

/*
 * Writes msg into out (outlen bytes, at least 1) with the escaping
 * described above, NUL-terminated, cut at a whole character or escape
 * when it does not fit. Returns the length written.
 */
size_t hlog_escape(const char *msg, char *out, size_t outlen);

/* Formats, escapes and writes one line, if level and cat are enabled. */
void hlog_msg(enum hlog_level level, enum hlog_cat cat, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* A DEBUG message is tested on its category first: when debugging is off
 * (the usual case) that is the only test. */
#define hlog_enabled(level, cat)                                              \
	((level) == HLOG_DEBUG ?                                              \
		 ((atomic_load_explicit(&hlog_debug_cats,                     \
					memory_order_relaxed) &               \
		   (cat)) != 0 &&                                             \
		  atomic_load_explicit(&hlog_max_level,                       \
				       memory_order_relaxed) >= HLOG_DEBUG) : \
		 (int)(level) <= atomic_load_explicit(&hlog_max_level,        \
						      memory_order_relaxed))

/* Debug messages cost one branch when disabled. */
#define hlog(level, cat, ...)                              \
	do {                                               \
		if (hlog_enabled(level, cat))              \
			hlog_msg(level, cat, __VA_ARGS__); \
	} while (0)

#endif
