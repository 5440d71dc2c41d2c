/* test_dirindex.c: listing parsers (nginx JSON, nginx and Apache HTML),
 * dates, percent escapes, hostile names and bounds. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "fetch/dirindex.h"
#include "state/hlog.h"

#define MAXE 1000
#define FOLDER "http://example.org/pub/models/"

/* 2026-11-23 18:00:00 UTC */
#define T_2026_11_23_1800 INT64_C(1795456800)

/* ---- helpers ---------------------------------------------------------- */

static FILE *logf_;

static int log_setup(void **state)
{
	logf_ = tmpfile();
	assert_non_null(logf_);
	hlog_set_sink(logf_, false);
	return 0;
}

static int log_teardown(void **state)
{
	hlog_set_sink(NULL, false);
	fclose(logf_);
	logf_ = NULL;
	return 0;
}

/* What was logged since the setup (static buffer). */
static const char *logged(void)
{
	static char buf[16384];
	size_t n;

	fflush(logf_);
	rewind(logf_);
	n = fread(buf, 1, sizeof(buf) - 1, logf_);
	buf[n] = '\0';
	fseek(logf_, 0, SEEK_END);
	return buf;
}

static size_t count_lines(const char *s, const char *needle)
{
	size_t n = 0;

	while ((s = strstr(s, needle))) {
		n++;
		s += strlen(needle);
	}
	return n;
}

/* A copy of s without its NUL, so that ASan sees any read past len. */
static char *exact(const char *s, size_t *len)
{
	char *p;

	*len = strlen(s);
	p = malloc(*len ? *len : 1);
	assert_non_null(p);
	memcpy(p, s, *len);
	return p;
}

static struct dirindex *json(const char *body, size_t max)
{
	struct dirindex *d = NULL;
	size_t len;
	char *b = exact(body, &len);

	assert_int_equal(dirindex_parse_json(b, len, FOLDER, max, &d), 0);
	free(b);
	assert_non_null(d);
	return d;
}

static struct dirindex *html_at(const char *folder, const char *body,
				size_t max)
{
	struct dirindex *d = NULL;
	size_t len;
	char *b = exact(body, &len);

	assert_int_equal(dirindex_parse_html(b, len, folder, max, &d), 0);
	free(b);
	assert_non_null(d);
	return d;
}

static struct dirindex *html(const char *body)
{
	return html_at(FOLDER, body, MAXE);
}

static const struct dirindex_entry *find(const struct dirindex *d,
					 const char *name)
{
	size_t i;

	for (i = 0; i < d->n; i++)
		if (!strcmp(d->entries[i].name, name))
			return &d->entries[i];
	return NULL;
}

static const struct dirindex_entry *must(const struct dirindex *d,
					 const char *name)
{
	const struct dirindex_entry *en = find(d, name);

	if (!en)
		fail_msg("no entry '%s'", name);
	return en;
}

/* ---- nginx JSON autoindex --------------------------------------------- */

static const char nginx_json[] =
	"[\n"
	"{ \"name\":\"config.json\", \"type\":\"file\", "
	"\"mtime\":\"Mon, 23 Nov 2026 18:00:00 GMT\", \"size\":1234 },\n"
	"{ \"name\":\"model-00001-of-00002.safetensors\", \"type\":\"file\", "
	"\"mtime\":\"Tue, 24 Nov 2026 07:05:09 GMT\", \"size\":4976698672 },\n"
	"{ \"name\":\"tokenizer\", \"type\":\"directory\", "
	"\"mtime\":\"Mon, 23 Nov 2026 18:00:00 GMT\" },\n"
	"{ \"name\":\"socket\", \"type\":\"other\", "
	"\"mtime\":\"Mon, 23 Nov 2026 18:00:00 GMT\" },\n"
	"{ \"name\":\"with space \\u00e9.bin\", \"type\":\"file\", "
	"\"mtime\":\"Mon, 23 Nov 2026 18:00:00 GMT\", \"size\":0 }\n"
	"]\n";

static void test_json_nginx_sample(void **state)
{
	struct dirindex *d = json(nginx_json, MAXE);
	const struct dirindex_entry *en;

	assert_int_equal(d->n, 4);
	assert_false(d->truncated);
	assert_int_equal(d->dropped, 0);
	en = must(d, "config.json");
	assert_false(en->is_dir);
	assert_int_equal(en->size, 1234);
	assert_int_equal(en->mtime, T_2026_11_23_1800);
	en = must(d, "model-00001-of-00002.safetensors");
	assert_int_equal(en->size, INT64_C(4976698672));
	assert_int_equal(en->mtime, T_2026_11_23_1800 + 13 * 3600 + 5 * 60 + 9);
	en = must(d, "tokenizer");
	assert_true(en->is_dir);
	assert_int_equal(en->size, DIRINDEX_SIZE_UNKNOWN);
	en = must(d, "with space \xc3\xa9.bin"); /* JSON names are raw */
	assert_int_equal(en->size, 0);
	assert_null(find(d, "socket"));
	dirindex_free(d);
}

static void test_json_empty_folder(void **state)
{
	struct dirindex *d = json("[]", MAXE);

	assert_int_equal(d->n, 0);
	assert_int_equal(d->nlinks, 0);
	dirindex_free(d);
}

static void test_json_not_an_array(void **state)
{
	static const char *const bodies[] = {
		"{\"name\":\"x\"}",
		"\"x\"",
		"[1, 2",
		"<html></html>",
		"",
		"[{\"name\":\"a\",\"type\":\"file\"}] trailing",
	};
	size_t i;

	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		struct dirindex *d = (void *)1;
		size_t len;
		char *b = exact(bodies[i], &len);

		assert_int_equal(dirindex_parse_json(b, len, FOLDER, MAXE, &d),
				 -EBADMSG);
		assert_null(d);
		free(b);
	}
}

static void test_json_odd_members_ignored(void **state)
{
	struct dirindex *d =
		json("[1, \"x\", null, [], {}, {\"name\":5,\"type\":\"file\"},"
		     "{\"name\":\"notype\"},"
		     "{\"name\":\"neg\",\"type\":\"file\",\"size\":-5,"
		     "\"mtime\":\"yesterday\"},"
		     "{\"name\":\"real\",\"type\":\"file\",\"size\":1.5},"
		     "{\"name\":\"dir\",\"type\":\"directory\",\"size\":7}]",
		     MAXE);

	assert_int_equal(d->n, 3);
	assert_int_equal(must(d, "neg")->size, DIRINDEX_SIZE_UNKNOWN);
	assert_int_equal(must(d, "neg")->mtime, DIRINDEX_MTIME_UNKNOWN);
	assert_int_equal(must(d, "real")->size, DIRINDEX_SIZE_UNKNOWN);
	assert_int_equal(must(d, "dir")->size, DIRINDEX_SIZE_UNKNOWN);
	dirindex_free(d);
}

static void test_json_hostile_names_dropped(void **state)
{
	struct dirindex *d = json(
		"[{\"name\":\"..\",\"type\":\"directory\"},"
		"{\"name\":\".\",\"type\":\"directory\"},"
		"{\"name\":\"\",\"type\":\"file\",\"size\":1},"
		"{\"name\":\"../../etc/passwd\",\"type\":\"file\",\"size\":1},"
		"{\"name\":\"/abs\",\"type\":\"file\",\"size\":1},"
		"{\"name\":\"nul\\u0000byte\",\"type\":\"file\",\"size\":1},"
		"{\"name\":\"bell\\u0007\\u001b[31m\",\"type\":\"file\","
		"\"size\":1},"
		"{\"name\":\"ok\",\"type\":\"file\",\"size\":1}]",
		MAXE);
	const char *log = logged();

	/* Control bytes are legal in names: kept, but logged escaped. */
	assert_int_equal(d->n, 2);
	must(d, "ok");
	must(d, "bell\a\x1b[31m");
	assert_int_equal(d->dropped, 6);
	assert_int_equal(count_lines(log, "skipping unsafe name"), 6);
	assert_non_null(strstr(log, "listing of '" FOLDER
				    "': skipping unsafe name '..'"));
	assert_non_null(strstr(log, "'../../etc/passwd'"));
	assert_non_null(strstr(log, "'nul\\x00byte'"));
	assert_null(strchr(log, '\x1b'));
	dirindex_free(d);
}

static void test_json_cap(void **state)
{
	struct dirindex *d = json(nginx_json, 2);

	assert_int_equal(d->n, 2);
	assert_true(d->truncated);
	dirindex_free(d);
}

static void test_json_bounded_by_len(void **state)
{
	struct dirindex *d = (void *)1;
	const char *body = "[{\"name\":\"a\",\"type\":\"file\",\"size\":1}]"
			   "GARBAGE";
	size_t full = strlen(body) - strlen("GARBAGE");

	/* Only len bytes are read: the garbage behind does not count. */
	assert_int_equal(dirindex_parse_json(body, full, FOLDER, MAXE, &d), 0);
	assert_int_equal(d->n, 1);
	dirindex_free(d);
	d = (void *)1;
	assert_int_equal(dirindex_parse_json(body, full - 1, FOLDER, MAXE, &d),
			 -EBADMSG);
	assert_null(d);
}

/* ---- nginx HTML autoindex --------------------------------------------- */

static const char nginx_html[] =
	"<html>\r\n<head><title>Index of /pub/models/</title></head>\r\n"
	"<body>\r\n<h1>Index of /pub/models/</h1><hr><pre>"
	"<a href=\"../\">../</a>\r\n"
	"<a href=\"tokenizer/\">tokenizer/</a>"
	"                                         23-Nov-2026 18:00"
	"                   -\r\n"
	"<a href=\"config.json\">config.json</a>"
	"                                        23-Nov-2026 18:00"
	"                1234\r\n"
	"<a href=\"model%20final.safetensors\">model final.safetensors</a>"
	"                            24-Nov-2026 07:05"
	"          4976698672\r\n"
	"<a href=\"./a:b.txt\">a:b.txt</a>"
	"                                            23-Nov-2026 18:00"
	"                   7\r\n"
	"<a href=\"R%26D%20%C3%A9t%C3%A9.txt\">R&amp;D \xc3\xa9t\xc3\xa9.txt"
	"</a>                                 23-Nov-2026 18:00"
	"                   1\r\n"
	"<a href=\"very-long-name-that-nginx-shortens-in-the-text.bin\">"
	"very-long-name-that-nginx-shortens-in-the-..&gt;</a>"
	" 23-Nov-2026 18:00                  42\r\n"
	"</pre><hr></body>\r\n</html>\r\n";

static void test_html_nginx_sample(void **state)
{
	struct dirindex *d = html(nginx_html);
	const struct dirindex_entry *en;

	assert_int_equal(d->nlinks, 7);
	assert_int_equal(d->n, 6);
	assert_int_equal(d->dropped, 0);
	assert_null(find(d, ".."));
	en = must(d, "tokenizer");
	assert_true(en->is_dir);
	assert_int_equal(en->mtime, T_2026_11_23_1800);
	assert_int_equal(en->size, DIRINDEX_SIZE_UNKNOWN);
	en = must(d, "config.json");
	assert_false(en->is_dir);
	assert_int_equal(en->size, 1234);
	assert_int_equal(en->mtime, T_2026_11_23_1800);
	en = must(d, "model final.safetensors");
	assert_int_equal(en->size, INT64_C(4976698672));
	assert_int_equal(en->mtime, T_2026_11_23_1800 + 13 * 3600 + 5 * 60);
	assert_int_equal(must(d, "a:b.txt")->size, 7);
	assert_int_equal(must(d, "R&D \xc3\xa9t\xc3\xa9.txt")->size, 1);
	assert_int_equal(
		must(d, "very-long-name-that-nginx-shortens-in-the-text.bin")
			->size,
		42);
	assert_string_equal(logged(), "");
	dirindex_free(d);
}

/* ---- Apache HTML autoindex -------------------------------------------- */

static const char apache_html[] =
	"<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 3.2 Final//EN\">\n"
	"<html>\n <head>\n  <title>Index of /pub/models</title>\n </head>\n"
	" <body>\n<h1>Index of /pub/models</h1>\n  <table>\n"
	"   <tr><th valign=\"top\"><img src=\"/icons/blank.gif\" "
	"alt=\"[ICO]\"></th><th><a href=\"?C=N;O=D\">Name</a></th>"
	"<th><a href=\"?C=M;O=A\">Last modified</a></th>"
	"<th><a href=\"?C=S;O=A\">Size</a></th>"
	"<th><a href=\"?C=D;O=A\">Description</a></th></tr>\n"
	"   <tr><th colspan=\"5\"><hr></th></tr>\n"
	"<tr><td valign=\"top\"><img src=\"/icons/back.gif\" "
	"alt=\"[PARENTDIR]\"></td><td><a href=\"/pub/\">Parent Directory</a>"
	"</td><td>&nbsp;</td><td align=\"right\">  - </td><td>&nbsp;</td>"
	"</tr>\n"
	"<tr><td valign=\"top\"><a href=\"README.md\"><img "
	"src=\"/icons/text.gif\" alt=\"[TXT]\"></a></td><td>"
	"<a href=\"README.md\">README.md</a></td><td align=\"right\">"
	"2026-11-23 18:00  </td><td align=\"right\">123 </td>"
	"<td>&nbsp;</td></tr>\n"
	"<tr><td valign=\"top\"><img src=\"/icons/unknown.gif\" "
	"alt=\"[   ]\"></td><td><a href=\"model.safetensors\">"
	"model.safetensors</a></td><td align=\"right\">2026-11-23 18:00:30 "
	"</td><td align=\"right\">4.6G</td><td>&nbsp;</td></tr>\n"
	"<tr><td valign=\"top\"><img src=\"/icons/folder.gif\" "
	"alt=\"[DIR]\"></td><td><a href=\"sub%20dir/\">sub dir/</a></td>"
	"<td align=\"right\">2026-11-23 18:00  </td><td align=\"right\">"
	"  - </td><td>&nbsp;</td></tr>\n"
	"<tr><td valign=\"top\"><img src=\"/icons/unknown.gif\" "
	"alt=\"[   ]\"></td><td><a href=\"a%26b%3Fc.bin\">a&amp;b?c.bin</a>"
	"</td><td align=\"right\">2026-11-23 18:00  </td>"
	"<td align=\"right\"> 17K</td><td>&nbsp;</td></tr>\n"
	"   <tr><th colspan=\"5\"><hr></th></tr>\n</table>\n"
	"<address>Apache/2.4.57 (Debian) Server at example.org Port 80"
	"</address>\n</body></html>\n";

static void test_html_apache_sample(void **state)
{
	struct dirindex *d = html(apache_html);
	const struct dirindex_entry *en;

	/* 4 sort links, the parent, README twice (icon and name), 3 more */
	assert_int_equal(d->nlinks, 10);
	assert_int_equal(d->n, 4);
	en = must(d, "README.md");
	assert_int_equal(en->size, 123);
	assert_int_equal(en->mtime, T_2026_11_23_1800);
	en = must(d, "model.safetensors");
	assert_int_equal(en->size, DIRINDEX_SIZE_UNKNOWN); /* "4.6G" */
	assert_int_equal(en->mtime, T_2026_11_23_1800 + 30);
	en = must(d, "sub dir");
	assert_true(en->is_dir);
	en = must(d, "a&b?c.bin");
	assert_int_equal(en->size, DIRINDEX_SIZE_UNKNOWN);
	assert_string_equal(logged(), "");
	dirindex_free(d);
}

static void test_html_apache_plain_list(void **state)
{
	/* IndexOptions -FancyIndexing: a bare list, no metadata. */
	struct dirindex *d =
		html("<html><body><h1>Index of /pub/models</h1><ul>"
		     "<li><a href=\"/pub/\"> Parent Directory</a></li>\n"
		     "<li><a href=\"a.bin\"> a.bin</a></li>\n"
		     "<li><a href=\"b/\"> b/</a></li>\n</ul></body></html>");

	assert_int_equal(d->n, 2);
	assert_int_equal(must(d, "a.bin")->size, DIRINDEX_SIZE_UNKNOWN);
	assert_int_equal(must(d, "a.bin")->mtime, DIRINDEX_MTIME_UNKNOWN);
	assert_true(must(d, "b")->is_dir);
	dirindex_free(d);
}

/* ---- links ------------------------------------------------------------ */

static void test_html_link_forms(void **state)
{
	struct dirindex *d = html(
		"<A HREF=\"upper.bin\">x</A>\n"
		"<a class=x href='single.bin'>x</a>\n"
		"<a href=unquoted.bin>x</a>\n"
		"<a\thref = \"spaced.bin\" >x</a>\n"
		"<a href=\"  padded.bin \">x</a>\n"
		"<a href=\"./dot.bin\">x</a>\n"
		"<a href=\"/pub/models/abs-path.bin\">x</a>\n"
		"<a href=\"http://example.org/pub/models/abs-url.bin\">x</a>\n"
		"<a href=\"HTTP://EXAMPLE.ORG/pub/models/abs-url-case.bin\">"
		"x</a>\n"
		"<a href=\"//example.org/pub/models/net-path.bin\">x</a>\n"
		"<a href=\"/pub/%6dodels/escaped-base.bin\">x</a>\n"
		"<a href=\"&#x65;nt&#105;ty.bin\">x</a>\n"
		"<a name=\"anchor-only\">x</a>\n"
		"<abbr href=\"not-a-link.bin\">x</abbr>\n"
		"<!-- <a href=\"commented.bin\">x</a> -->\n");

	assert_int_equal(d->n, 12);
	must(d, "upper.bin");
	must(d, "single.bin");
	must(d, "unquoted.bin");
	must(d, "spaced.bin");
	must(d, "padded.bin");
	must(d, "dot.bin");
	must(d, "abs-path.bin");
	must(d, "abs-url.bin");
	must(d, "abs-url-case.bin");
	must(d, "net-path.bin");
	must(d, "escaped-base.bin");
	must(d, "entity.bin");
	assert_null(find(d, "not-a-link.bin"));
	assert_null(find(d, "commented.bin"));
	dirindex_free(d);
}

static void test_html_links_elsewhere_skipped(void **state)
{
	struct dirindex *d = html(
		"<a href=\"../\">up</a>\n"
		"<a href=\"..\">up</a>\n"
		"<a href=\"./\">self</a>\n"
		"<a href=\"\">self</a>\n"
		"<a href=\"/\">root</a>\n"
		"<a href=\"/pub/\">parent</a>\n"
		"<a href=\"/pub/models/\">self</a>\n"
		"<a href=\"/pub/models\">self without slash</a>\n"
		"<a href=\"/pub/modelsX/a.bin\">sibling</a>\n"
		"<a href=\"/other/a.bin\">other path</a>\n"
		"<a href=\"/pub/models/deep/a.bin\">deeper</a>\n"
		"<a href=\"sub/deeper.bin\">deeper</a>\n"
		"<a href=\"http://evil.example/pub/models/a.bin\">host</a>\n"
		"<a href=\"https://example.org/pub/models/a.bin\">scheme</a>\n"
		"<a href=\"http://example.org:8080/pub/models/a.bin\">"
		"port</a>\n"
		"<a href=\"//evil.example/pub/models/a.bin\">host</a>\n"
		"<a href=\"//example.org.evil/pub/models/a.bin\">host</a>\n"
		"<a href=\"mailto:root@example.org\">mail</a>\n"
		"<a href=\"javascript:alert(1)\">js</a>\n"
		"<a href=\"?C=N;O=D\">sort</a>\n"
		"<a href=\"a.bin?download=1\">query</a>\n"
		"<a href=\"#top\">fragment</a>\n"
		"<a href=\"a.bin#frag\">fragment</a>\n"
		"<a href=\"ok.bin\">ok</a>\n");

	assert_int_equal(d->nlinks, 24);
	assert_int_equal(d->n, 1);
	must(d, "ok.bin");
	assert_int_equal(d->dropped, 0);
	assert_string_equal(logged(), ""); /* silently: not names */
	dirindex_free(d);
}

static void test_html_hostile_names_dropped(void **state)
{
	char body[2048], longname[300];
	struct dirindex *d;
	const char *log;

	memset(longname, 'x', 256); /* one byte over the limit */
	longname[256] = '\0';
	snprintf(body, sizeof(body),
		 "<a href=\"%%2e%%2e/\">x</a>\n" /* ".." once decoded */
		 "<a href=\"%%2E\">x</a>\n" /* "." */
		 "<a href=\"a%%2Fb\">x</a>\n" /* '/' inside */
		 "<a href=\"nul%%00byte\">x</a>\n" /* embedded NUL */
		 "<a href=\"bad%%zzescape\">x</a>\n" /* not hex */
		 "<a href=\"short%%4\">x</a>\n" /* cut escape */
		 "<a href=\"end%%\">x</a>\n"
		 "<a href=\"esc%%1b%%5b31m\">x</a>\n" /* kept, logged safe */
		 "<a href=\"%s\">x</a>\n"
		 "<a href=\"fine%%20name\">x</a>\n",
		 longname);
	d = html(body);
	log = logged();
	assert_int_equal(d->n, 2);
	must(d, "fine name");
	must(d, "esc\x1b[31m");
	assert_int_equal(d->dropped, 8);
	assert_int_equal(count_lines(log, "skipping unsafe name"), 8);
	assert_non_null(strstr(log, "skipping unsafe name '..'"));
	assert_non_null(strstr(log, "skipping unsafe name 'nul%00byte'"));
	assert_non_null(strstr(log, "skipping unsafe name 'bad%zzescape'"));
	assert_non_null(strstr(log, "skipping unsafe name 'a/b'"));
	assert_null(strchr(log, '\x1b'));
	dirindex_free(d);
}

static void test_html_warnings_bounded(void **state)
{
	size_t cap = 200 * 32 + 1, o = 0, i;
	char *body = malloc(cap);
	struct dirindex *d;
	const char *log;

	assert_non_null(body);
	for (i = 0; i < 200; i++)
		o += (size_t)snprintf(body + o, cap - o,
				      "<a href=\"%%2e%%2e\">x</a>\n");
	d = html(body);
	log = logged();
	assert_int_equal(d->n, 0);
	assert_int_equal(d->dropped, 200);
	assert_int_equal(count_lines(log, "skipping unsafe name"), 20);
	assert_non_null(strstr(log, "skipped 180 more unsafe names"));
	dirindex_free(d);
	free(body);
}

static void test_html_no_links(void **state)
{
	struct dirindex *d = html("<html><body><p>Hello</p></body></html>");

	assert_int_equal(d->n, 0);
	assert_int_equal(d->nlinks, 0);
	dirindex_free(d);
	d = html("");
	assert_int_equal(d->nlinks, 0);
	dirindex_free(d);
	d = html("plain text, no markup at all\n");
	assert_int_equal(d->nlinks, 0);
	dirindex_free(d);
}

static void test_html_truncated_markup(void **state)
{
	static const char *const bodies[] = {
		"<a",
		"<a ",
		"<a href",
		"<a href=",
		"<a href=\"",
		"<a href=\"x",
		"<a href=\"x\"",
		"<a href='x",
		"<a href=x",
		"<!-- <a href=x>",
		"<a href=\"x\">text</a",
		"<a href=\"x\">text</a> 23-Nov-20",
		"<a href=\"&#x",
		"<a href=\"&#1234567890123;\">",
		"<",
		"<a href=\"x\">t</a> 23-Nov-2026 18:00  12",
	};
	size_t i;

	for (i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		struct dirindex *d = html(bodies[i]);

		assert_true(d->n <= 1);
		dirindex_free(d);
	}
}

static void test_html_metadata_edges(void **state)
{
	struct dirindex *d = html(
		/* the size belongs to this line only */
		"<a href=\"a\">a</a> 23-Nov-2026 18:00 -\n"
		"55\n"
		/* no date, a number: not a size */
		"<a href=\"b\">b</a> 777\n"
		/* a size too large for int64 is not taken */
		"<a href=\"c\">c</a> 23-Nov-2026 18:00 99999999999999999999\n"
		/* the next link's metadata are not ours */
		"<a href=\"d\">d</a><a href=\"e\">e</a> 23-Nov-2026 18:00 5\n");

	assert_int_equal(must(d, "a")->size, DIRINDEX_SIZE_UNKNOWN);
	assert_int_equal(must(d, "a")->mtime, T_2026_11_23_1800);
	assert_int_equal(must(d, "b")->size, DIRINDEX_SIZE_UNKNOWN);
	assert_int_equal(must(d, "b")->mtime, DIRINDEX_MTIME_UNKNOWN);
	assert_int_equal(must(d, "c")->size, DIRINDEX_SIZE_UNKNOWN);
	assert_int_equal(must(d, "d")->size, DIRINDEX_SIZE_UNKNOWN);
	assert_int_equal(must(d, "d")->mtime, DIRINDEX_MTIME_UNKNOWN);
	assert_int_equal(must(d, "e")->size, 5);
	dirindex_free(d);
}

static void test_html_duplicates(void **state)
{
	struct dirindex *d =
		html("<a href=\"x\"><img src=i.gif></a> <a href=\"x\">x</a> "
		     "23-Nov-2026 18:00 9\n"
		     "<a href=\"x/\">x/</a>\n"
		     "<a href=\"y\">y</a> 23-Nov-2026 18:00 1\n"
		     "<a href=\"./y\">y</a> 24-Nov-2026 18:00 2\n");
	size_t i, files = 0, dirs = 0;

	/* Same name and kind merged, first metadata kept; a file and a
	 * folder of one name are both returned (the caller drops one). */
	for (i = 0; i < d->n; i++) {
		if (!strcmp(d->entries[i].name, "x")) {
			if (d->entries[i].is_dir) {
				dirs++;
			} else {
				files++;
				assert_int_equal(d->entries[i].size, 9);
			}
		}
	}
	assert_int_equal(files, 1);
	assert_int_equal(dirs, 1);
	assert_int_equal(must(d, "y")->size, 1);
	assert_int_equal(d->n, 3);
	dirindex_free(d);
}

static void test_html_cap(void **state)
{
	struct dirindex *d = html_at(FOLDER, nginx_html, 3);

	assert_int_equal(d->n, 3);
	assert_true(d->truncated);
	dirindex_free(d);
	d = html_at(FOLDER, nginx_html, 6);
	assert_int_equal(d->n, 6);
	assert_false(d->truncated);
	dirindex_free(d);
}

/* Each name linked three times (icon, name, a "download" link): only
 * more different names than max_entries truncate, however many links. */
static void test_html_cap_counts_names_not_links(void **state)
{
	char body[4096];
	struct dirindex *d;
	size_t off = 0;
	int i, k;

	for (i = 0; i < 5; i++)
		for (k = 0; k < 3; k++)
			off += (size_t)snprintf(body + off, sizeof(body) - off,
						"<a href=\"n%d.bin\">x</a>\n",
						i);
	d = html_at(FOLDER, body, 5);
	assert_int_equal(d->n, 5);
	assert_false(d->truncated);
	assert_non_null(find(d, "n4.bin"));
	dirindex_free(d);
	d = html_at(FOLDER, body, 4);
	assert_int_equal(d->n, 4);
	assert_true(d->truncated);
	dirindex_free(d);
	d = html_at(FOLDER, body, 1);
	assert_int_equal(d->n, 1);
	assert_true(d->truncated);
	dirindex_free(d);
	d = html_at(FOLDER, body, 0);
	assert_int_equal(d->n, 0);
	assert_true(d->truncated);
	dirindex_free(d);
}

static void test_html_root_and_escaped_folders(void **state)
{
	struct dirindex *d;

	d = html_at("http://example.org/",
		    "<a href=\"/a.bin\">a</a><a href=\"/x/b.bin\">b</a>"
		    "<a href=\"c/\">c</a><a href=\"/\">root</a>",
		    MAXE);
	assert_int_equal(d->n, 2);
	must(d, "a.bin");
	assert_true(must(d, "c")->is_dir);
	dirindex_free(d);

	d = html_at("http://example.org:8080/my%20d%C3%AEr/",
		    "<a href=\"/my%20d%c3%aer/a.bin\">a</a>"
		    "<a href=\"/my d\xc3\xaer/b.bin\">b</a>"
		    "<a href=\"//example.org:8080/my%20d%C3%AEr/c.bin\">c</a>"
		    "<a href=\"//example.org/my%20d%C3%AEr/d.bin\">d</a>"
		    "<a href=\"/my%20dir/e.bin\">e</a>",
		    MAXE);
	assert_int_equal(d->n, 3);
	must(d, "a.bin");
	must(d, "b.bin");
	must(d, "c.bin");
	dirindex_free(d);

	/* A folder URL that is not one: nothing is a child of it. */
	d = html_at("not a url", "<a href=\"a\">a</a>", MAXE);
	assert_int_equal(d->nlinks, 0);
	assert_int_equal(d->n, 0);
	dirindex_free(d);
}

/* ---- dates ------------------------------------------------------------ */

static int64_t date(const char *s)
{
	int64_t t = -42;

	if (dirindex_parse_date(s, strlen(s), &t))
		fail_msg("date '%s' rejected", s);
	return t;
}

static void test_date_forms(void **state)
{
	assert_int_equal(date("Mon, 23 Nov 2026 18:00:00 GMT"),
			 T_2026_11_23_1800);
	assert_int_equal(date("Monday, 23-Nov-26 18:00:00 GMT"),
			 T_2026_11_23_1800);
	assert_int_equal(date("Mon Nov 23 18:00:00 2026"), T_2026_11_23_1800);
	assert_int_equal(date("Sun Nov  6 08:49:37 1994"), 784111777);
	assert_int_equal(date("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
	assert_int_equal(date("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777);
	assert_int_equal(date("23-Nov-2026 18:00"), T_2026_11_23_1800);
	assert_int_equal(date("3-Nov-2026 18:00"),
			 T_2026_11_23_1800 - 20 * 86400);
	assert_int_equal(date("23-nov-2026 18:00:59"), T_2026_11_23_1800 + 59);
	assert_int_equal(date("2026-11-23 18:00"), T_2026_11_23_1800);
	assert_int_equal(date("2026-11-23 18:00:01"), T_2026_11_23_1800 + 1);
	assert_int_equal(date("  2026-11-23 18:00 \t"), T_2026_11_23_1800);
	assert_int_equal(date("Thu, 01 Jan 1970 00:00:00 GMT"), 0);
	assert_int_equal(date("Wed, 31 Dec 1969 23:59:59 GMT"), -1);
	assert_int_equal(date("Thu, 29 Feb 2024 00:00:00 UTC"), 1709164800);
	assert_int_equal(date("Fri, 01 Jan 9999 00:00:00 GMT"),
			 INT64_C(253370764800));
}

static void test_date_rejects(void **state)
{
	static const char *const bad[] = {
		"",
		"   ",
		"yesterday",
		"Mon, 23 Nov 2026 18:00:00",
		"Mon, 23 Nov 2026 18:00:00 CET",
		"Mon, 23 Foo 2026 18:00:00 GMT",
		"Mon, 32 Nov 2026 18:00:00 GMT",
		"Mon, 31 Nov 2026 18:00:00 GMT",
		"Sun, 29 Feb 2026 00:00:00 GMT",
		"Mon, 23 Nov 2026 24:00:00 GMT",
		"Mon, 23 Nov 2026 18:60:00 GMT",
		"Mon, 23 Nov 2026 18:00:61 GMT",
		"Mon, 23 Nov 26 18:00:00 GMT",
		"Mon, 23 Nov 2026 18:00 GMT",
		"Xyz, 23 Nov 2026 18:00:00 GMT",
		"Mon 23 Nov 2026 18:00:00 GMT",
		"Mon, 23 Nov 2026 18:00:00 GMT junk",
		"23-Nov-2026",
		"23-Nov-2026 18",
		"23-Nov-2026 18:0",
		"2026-13-01 00:00",
		"2026-00-10 00:00",
		"2026-11-00 00:00",
		"123-Nov-2026 18:00",
		"23/Nov/2026 18:00",
		"2026-11-23T18:00:00Z",
		"0999-01-01 00:00",
		"Mon Nov 23 18:00:00",
		"-1-Nov-2026 18:00",
		"1.2G",
	};
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int64_t t = 7;

		if (dirindex_parse_date(bad[i], strlen(bad[i]), &t) != -EINVAL)
			fail_msg("date '%s' accepted", bad[i]);
		assert_int_equal(t, 7);
	}
}

static void test_date_bounded_by_len(void **state)
{
	const char *s = "2026-11-23 18:00:01";
	int64_t t;

	/* len stops before ":01": the seconds are not read */
	assert_int_equal(dirindex_parse_date(s, 16, &t), 0);
	assert_int_equal(t, T_2026_11_23_1800);
	assert_int_equal(dirindex_parse_date(s, 15, &t), -EINVAL);
	assert_int_equal(dirindex_parse_date(s, 0, &t), -EINVAL);
}

/* ---- escapes ---------------------------------------------------------- */

static void test_escape_round_trip_all_bytes(void **state)
{
	char raw[255], *esc, *dec = NULL;
	size_t i, n;

	for (i = 0; i < sizeof(raw); i++)
		raw[i] = (char)(i + 1);
	esc = dirindex_escape(raw, sizeof(raw));
	assert_non_null(esc);
	for (i = 0; esc[i]; i++)
		assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklm"
				       "nopqrstuvwxyz0123456789-._~%",
				       esc[i]));
	assert_int_equal(dirindex_unescape(esc, strlen(esc), &dec, &n), 0);
	assert_int_equal(n, sizeof(raw));
	assert_memory_equal(dec, raw, sizeof(raw));
	free(dec);
	free(esc);
}

static void test_escape_forms(void **state)
{
	char *s = dirindex_escape("a b/c%d~e.f_g-h\xc3\xa9", 17);

	assert_string_equal(s, "a%20b%2Fc%25d~e.f_g-h%C3%A9");
	free(s);
	s = dirindex_escape("", 0);
	assert_string_equal(s, "");
	free(s);
	s = dirindex_escape("ab", 1); /* bounded by len */
	assert_string_equal(s, "a");
	free(s);
}

static void test_unescape_forms(void **state)
{
	static const char *const bad[] = {
		"%", "%4", "a%zz", "%g0", "%0g", "%00", "a%00b", "100%",
	};
	char *out = NULL;
	size_t i, n;

	assert_int_equal(dirindex_unescape("a%2fb%2F%41+", 12, &out, &n), 0);
	assert_string_equal(out, "a/b/A+"); /* '+' stays a plus */
	assert_int_equal(n, 6);
	free(out);
	/* bounded: the escape cut by len is bad, "41" is not read */
	assert_int_equal(dirindex_unescape("ab%41", 3, &out, NULL), -EINVAL);
	assert_int_equal(dirindex_unescape("ab%41", 2, &out, NULL), 0);
	assert_string_equal(out, "ab");
	free(out);
	/* a literal NUL inside len is an embedded NUL */
	out = (void *)1;
	assert_int_equal(dirindex_unescape("a\0b", 3, &out, &n), -EINVAL);
	assert_null(out);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		out = (void *)1;
		if (dirindex_unescape(bad[i], strlen(bad[i]), &out, &n) !=
		    -EINVAL)
			fail_msg("'%s' accepted", bad[i]);
		assert_null(out);
	}
}

static void test_printable(void **state)
{
	char buf[64];

	assert_string_equal(dirindex_printable("plain \xc3\xa9", 8, buf,
					       sizeof(buf)),
			    "plain \xc3\xa9");
	assert_string_equal(dirindex_printable("a\nb\x1b[0m\x7f\\'", 10, buf,
					       sizeof(buf)),
			    "a\\x0ab\\x1b[0m\\x7f\\x5c\\x27");
	/* UTF-8 encoded C1 controls (U+0085, U+009B) too */
	assert_string_equal(dirindex_printable("x\xc2\x85y\xc2\x9b", 6, buf,
					       sizeof(buf)),
			    "x\\xc2\\x85y\\xc2\\x9b");
	assert_string_equal(dirindex_printable("nul\0x", 5, buf, sizeof(buf)),
			    "nul\\x00x");
	assert_string_equal(dirindex_printable("abcdefghijkl", 12, buf, 8),
			    "abcd...");
	assert_string_equal(dirindex_printable("\n\n\n\n", 4, buf, 10),
			    "\\x0a...");
	assert_string_equal(dirindex_printable("abc", 3, buf, 1), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, log_setup, log_teardown)
		T(test_json_nginx_sample),
		T(test_json_empty_folder),
		T(test_json_not_an_array),
		T(test_json_odd_members_ignored),
		T(test_json_hostile_names_dropped),
		T(test_json_cap),
		T(test_json_bounded_by_len),
		T(test_html_nginx_sample),
		T(test_html_apache_sample),
		T(test_html_apache_plain_list),
		T(test_html_link_forms),
		T(test_html_links_elsewhere_skipped),
		T(test_html_hostile_names_dropped),
		T(test_html_warnings_bounded),
		T(test_html_no_links),
		T(test_html_truncated_markup),
		T(test_html_metadata_edges),
		T(test_html_duplicates),
		T(test_html_cap),
		T(test_html_cap_counts_names_not_links),
		T(test_html_root_and_escaped_folders),
		T(test_date_forms),
		T(test_date_rejects),
		T(test_date_bounded_by_len),
		T(test_escape_round_trip_all_bytes),
		T(test_escape_forms),
		T(test_unescape_forms),
		T(test_printable),
#undef T
	};

	return cmocka_run_group_tests_name("dirindex", tests, NULL, NULL);
}
