/*
 * test_hlog.c: the log sink (state/hlog.c): levels and debug categories,
 * escaping of control bytes and of what is not UTF-8, and swapping the
 * sink while other threads log (no line lost, torn or written to a FILE
 * after hlog_set_sink() let go of it).
 *
 * Every test logs to a tmpfile and reads it back.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "state/hlog.h"

struct fx {
	FILE *f;
	char buf[1 << 16];
};

static int fx_setup(void **state)
{
	struct fx *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return -1;
	fx->f = tmpfile();
	if (!fx->f) {
		free(fx);
		return -1;
	}
	hlog_set_sink(fx->f, false);
	hlog_set_level(HLOG_DEBUG);
	hlog_set_debug_cats(0);
	*state = fx;
	return 0;
}

static int fx_teardown(void **state)
{
	struct fx *fx = *state;

	hlog_set_sink(NULL, false);
	hlog_set_level(HLOG_DEBUG);
	hlog_set_debug_cats(0);
	fclose(fx->f);
	free(fx);
	return 0;
}

/* What was logged so far; the file is emptied. */
static const char *logged(struct fx *fx)
{
	size_t n;

	rewind(fx->f);
	n = fread(fx->buf, 1, sizeof(fx->buf) - 1, fx->f);
	fx->buf[n] = '\0';
	rewind(fx->f);
	if (ftruncate(fileno(fx->f), 0))
		fail_msg("ftruncate: %s", strerror(errno));
	return fx->buf;
}

static size_t count_lines(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

/* The message part of a single logged line, after "CAT: ". */
static const char *message(struct fx *fx, const char *cat)
{
	const char *s = logged(fx), *p;
	char tag[32];

	assert_int_equal(count_lines(s), 1);
	snprintf(tag, sizeof(tag), " %s: ", cat);
	p = strstr(s, tag);
	assert_non_null(p);
	return p + strlen(tag);
}

static void test_line_format(void **state)
{
	struct fx *fx = *state;
	const char *s;

	hlog(HLOG_ERR, HLOG_FETCH, "range GET failed for '%s' chunk %d", "a",
	     3);
	s = logged(fx);
	assert_int_equal(count_lines(s), 1);
	/* "HH:MM:SS.mmm hollowfs error: fetch: ..." */
	assert_int_equal(s[2], ':');
	assert_int_equal(s[8], '.');
	assert_non_null(strstr(s, " hollowfs error: fetch: range GET failed "
				  "for 'a' chunk 3\n"));
}

static void test_levels(void **state)
{
	struct fx *fx = *state;
	const char *s;

	hlog_set_level(HLOG_WARN);
	hlog(HLOG_ERR, HLOG_FS, "e");
	hlog(HLOG_WARN, HLOG_FS, "w");
	hlog(HLOG_INFO, HLOG_FS, "i");
	hlog_set_debug_cats(HLOG_ALL);
	hlog(HLOG_DEBUG, HLOG_FS, "d"); /* the level still rules */
	s = logged(fx);
	assert_int_equal(count_lines(s), 2);
	assert_non_null(strstr(s, "error: fs: e\n"));
	assert_non_null(strstr(s, "warning: fs: w\n"));

	hlog_set_level(HLOG_ERR);
	hlog(HLOG_WARN, HLOG_FS, "w");
	assert_string_equal(logged(fx), "");

	hlog_set_level(HLOG_INFO);
	hlog(HLOG_INFO, HLOG_STATE, "i");
	assert_int_equal(count_lines(logged(fx)), 1);
}

static void test_debug_categories(void **state)
{
	struct fx *fx = *state;
	const char *s;

	/* Off by default. */
	hlog(HLOG_DEBUG, HLOG_FETCH, "nothing");
	assert_string_equal(logged(fx), "");

	assert_int_equal(hlog_set_debug("fetch,state"), 0);
	assert_int_equal(hlog_get_debug_cats(), HLOG_FETCH | HLOG_STATE);
	hlog(HLOG_DEBUG, HLOG_FETCH, "f");
	hlog(HLOG_DEBUG, HLOG_STATE, "s");
	hlog(HLOG_DEBUG, HLOG_HTTP, "h");
	s = logged(fx);
	assert_int_equal(count_lines(s), 2);
	assert_non_null(strstr(s, "debug: fetch: f\n"));
	assert_non_null(strstr(s, "debug: state: s\n"));

	assert_int_equal(hlog_set_debug("http+sched:fs"), 0);
	assert_int_equal(hlog_get_debug_cats(),
			 HLOG_HTTP | HLOG_SCHED | HLOG_FS);
	assert_int_equal(hlog_set_debug("all"), 0);
	assert_int_equal(hlog_get_debug_cats(), HLOG_ALL);
	assert_int_equal(hlog_set_debug("1"), 0);
	assert_int_equal(hlog_get_debug_cats(), HLOG_ALL);
	assert_int_equal(hlog_set_debug(""), 0);
	assert_int_equal(hlog_get_debug_cats(), 0);

	/* A bad word changes nothing. */
	assert_int_equal(hlog_set_debug("fetch"), 0);
	assert_int_equal(hlog_set_debug("fetch,bogus"), -EINVAL);
	assert_int_equal(hlog_set_debug("fetc"), -EINVAL);
	assert_int_equal(hlog_set_debug("fetch,,"), -EINVAL);
	assert_int_equal(hlog_get_debug_cats(), HLOG_FETCH);

	/* The variable may still be assigned (fs/ did it before). */
	hlog_debug_cats = HLOG_FS;
	hlog(HLOG_DEBUG, HLOG_FS, "x");
	assert_int_equal(count_lines(logged(fx)), 1);
	hlog_set_debug_cats(~0);
	assert_int_equal(hlog_get_debug_cats(), HLOG_ALL);
}

/* A remote name with a newline can't make a second line, nor an ESC
 * sequence reach the terminal. */
static void test_escapes_controls(void **state)
{
	struct fx *fx = *state;
	const char *m;

	hlog(HLOG_WARN, HLOG_FETCH, "skipping '%s': bad",
	     "x\nhh:mm:ss hollowfs error: fs: forged");
	m = message(fx, "fetch");
	assert_string_equal(m, "skipping 'x\\x0ahh:mm:ss hollowfs error: fs: "
			       "forged': bad\n");

	hlog(HLOG_WARN, HLOG_FETCH, "%s", "a\x1b[31mred\x1b[0m\r\t\x7f\x01z");
	m = message(fx, "fetch");
	assert_string_equal(m, "a\\x1b[31mred\\x1b[0m\\x0d\\x09\\x7f\\x01z\n");
}

static void test_escapes_non_utf8(void **state)
{
	struct fx *fx = *state;
	const char *m;

	/* UTF-8 text stays as it is. */
	hlog(HLOG_WARN, HLOG_FS, "%s",
	     "\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	m = message(fx, "fs");
	assert_string_equal(
		m, "\xc3\xa9t\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\n");

	/* C1 controls (U+009B is a CSI), stray and cut bytes, overlong
	 * forms and surrogates are escaped byte by byte. */
	hlog(HLOG_WARN, HLOG_FS, "%s",
	     "\xc2\x9b"
	     "1m|\xff|\x80|\xc3|\xc0\xaf|"
	     "\xed\xa0\x80|\xe2\x82");
	m = message(fx, "fs");
	assert_string_equal(m, "\\xc2\\x9b1m|\\xff|\\x80|\\xc3|\\xc0\\xaf|"
			       "\\xed\\xa0\\x80|\\xe2\\x82\n");
}

static void test_escape_bounds(void **state)
{
	char out[8];

	assert_int_equal(hlog_escape("abc", out, sizeof(out)), 3);
	assert_string_equal(out, "abc");
	/* Cut at a whole escape, never in the middle of one. */
	assert_int_equal(hlog_escape("ab\n\n", out, sizeof(out)), 6);
	assert_string_equal(out, "ab\\x0a");
	/* ... or of a character. */
	assert_int_equal(hlog_escape("abcdef\xc3\xa9", out, sizeof(out)), 6);
	assert_string_equal(out, "abcdef");
	assert_int_equal(hlog_escape("x", out, 1), 0);
	assert_string_equal(out, "");
}

static void test_long_message_cut(void **state)
{
	struct fx *fx = *state;
	char big[3000];
	const char *s;

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	hlog(HLOG_ERR, HLOG_FS, "%s", big);
	s = logged(fx);
	assert_int_equal(count_lines(s), 1);
	assert_non_null(strstr(s, "aaa...\n"));

	/* Escapes may make a line four times the message: still one line. */
	memset(big, '\n', sizeof(big) - 1);
	hlog(HLOG_ERR, HLOG_FS, "%s", big);
	s = logged(fx);
	assert_int_equal(count_lines(s), 1);
	assert_non_null(strstr(s, "\\x0a\\x0a...\n"));
}

/* ---- the sink swapped while threads log -------------------------------- */

#define NTHREADS 4
#define NMSG 2000

static void *logger(void *arg)
{
	int id = (int)(intptr_t)arg;

	for (int i = 0; i < NMSG; i++)
		hlog(HLOG_INFO, HLOG_SCHED, "thread %d message %d", id, i);
	return NULL;
}

static size_t count_good_lines(FILE *f)
{
	char line[256];
	size_t n = 0;

	rewind(f);
	while (fgets(line, sizeof(line), f)) {
		int id, i;
		const char *m = strstr(line, " info: sched: thread ");

		if (!m ||
		    sscanf(m, " info: sched: thread %d message %d", &id, &i) !=
			    2 ||
		    line[strlen(line) - 1] != '\n')
			fail_msg("torn line '%s'", line);
		n++;
	}
	return n;
}

static void test_sink_swap_under_load(void **state)
{
	FILE *cur;
	pthread_t th[NTHREADS];
	size_t total = 0;
	int i, swaps;

	(void)state;
	cur = tmpfile();
	assert_non_null(cur);
	hlog_set_sink(cur, false);
	for (i = 0; i < NTHREADS; i++)
		assert_int_equal(pthread_create(&th[i], NULL, logger,
						(void *)(intptr_t)i),
				 0);
	/*
	 * Swap while they log, then count the old FILE's lines and fclose it
	 * at once: a line written to it after hlog_set_sink() returned would
	 * be lost from the count, or be a use after free under ASan.
	 */
	for (swaps = 0; swaps < 200; swaps++) {
		FILE *next = tmpfile();

		assert_non_null(next);
		hlog_set_sink(next, false);
		total += count_good_lines(cur);
		fclose(cur);
		cur = next;
		sched_yield();
	}
	for (i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	hlog_set_sink(NULL, false);
	total += count_good_lines(cur);
	fclose(cur);
	assert_int_equal(total, NTHREADS * NMSG);
}

/* A child forked while other threads write lines can still log: it does
 * not inherit hlog's lock held by a thread that is gone. */
static void test_fork_while_logging(void **state)
{
	FILE *f = tmpfile();
	pthread_t th[2];
	int i;

	(void)state;
	assert_non_null(f);
	hlog_set_sink(f, false);
	for (i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, logger,
						(void *)(intptr_t)i),
				 0);
	for (i = 0; i < 20; i++) {
		int pfd[2], status;
		char byte = 0;
		pid_t pid;

		assert_int_equal(pipe(pfd), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (!pid) {
			/* A deadlock dies of SIGALRM without writing the
			 * byte. The child ends with SIGKILL: sanitizers
			 * would report the parent's threads as leaked at
			 * its exit. */
			alarm(5);
			hlog(HLOG_ERR, HLOG_FS, "child %d", i);
			if (write(pfd[1], "y", 1) != 1)
				_exit(1);
			raise(SIGKILL);
		}
		close(pfd[1]);
		assert_int_equal(read(pfd[0], &byte, 1), 1);
		assert_int_equal(byte, 'y');
		close(pfd[0]);
		assert_int_equal(waitpid(pid, &status, 0), pid);
	}
	for (i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	hlog_set_sink(NULL, false);
	fclose(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, fx_setup, fx_teardown)
		T(test_line_format),
		T(test_levels),
		T(test_debug_categories),
		T(test_escapes_controls),
		T(test_escapes_non_utf8),
		T(test_escape_bounds),
		T(test_long_message_cut),
		cmocka_unit_test(test_sink_swap_under_load),
		cmocka_unit_test(test_fork_while_logging),
#undef T
	};

	return cmocka_run_group_tests_name("hlog", tests, NULL, NULL);
}
