/* test_manifest.c: building the tree, names and paths, JSON. */
#include <errno.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "state/manifest.h"

#define GIB (1ull << 30)

static int m_setup(void **state)
{
	struct manifest *m = NULL;

	assert_int_equal(manifest_new(&m), 0);
	*state = m;
	return 0;
}

static int m_teardown(void **state)
{
	manifest_free(*state);
	return 0;
}

static void add_file(struct manifest *m, const char *path, uint64_t size)
{
	assert_int_equal(manifest_add(m, path, MENTRY_FILE, size, 100, NULL,
				      NULL, NULL),
			 0);
}

static uint64_t find(const struct manifest *m, const char *path)
{
	uint64_t idx = UINT64_MAX;

	assert_int_equal(manifest_find(m, path, &idx), 0);
	return idx;
}

static void test_new_has_root(void **state)
{
	struct manifest *m = *state;
	uint64_t idx = 99;

	assert_int_equal(m->n, 1);
	assert_string_equal(m->entries[0].name, "");
	assert_string_equal(m->entries[0].path, "");
	assert_int_equal(m->entries[0].type, MENTRY_DIR);
	assert_int_equal(m->entries[0].parent, 0);
	assert_false(m->finished);
	assert_int_equal(manifest_find(m, "", &idx), 0);
	assert_int_equal(idx, 0);
	manifest_free(NULL);
}

static void test_name_ok(void **state)
{
	char name[300];

	assert_true(manifest_name_ok("a"));
	assert_true(manifest_name_ok("..."));
	assert_true(manifest_name_ok(".hidden"));
	assert_true(manifest_name_ok("a b\tc"));
	assert_false(manifest_name_ok(NULL));
	assert_false(manifest_name_ok(""));
	assert_false(manifest_name_ok("."));
	assert_false(manifest_name_ok(".."));
	assert_false(manifest_name_ok("a/b"));
	assert_false(manifest_name_ok("/"));
	memset(name, 'n', sizeof(name));
	name[255] = 0;
	assert_true(manifest_name_ok(name));
	name[255] = 'n';
	name[256] = 0;
	assert_false(manifest_name_ok(name));
}

static void test_add_and_find(void **state)
{
	struct manifest *m = *state;
	uint64_t a, ab, abc, x, idx;

	assert_int_equal(manifest_add(m, "a/b/c.bin", MENTRY_FILE, 5 * GIB, 42,
				      "sha-of-c", "sha256", "https://h/c"),
			 0);
	/* Parents made on the way, as folders, in order. */
	assert_int_equal(m->n, 4);
	a = find(m, "a");
	ab = find(m, "a/b");
	abc = find(m, "a/b/c.bin");
	assert_int_equal(a, 1);
	assert_int_equal(ab, 2);
	assert_int_equal(abc, 3);
	assert_int_equal(m->entries[a].type, MENTRY_DIR);
	assert_int_equal(m->entries[a].parent, 0);
	assert_int_equal(m->entries[ab].parent, a);
	assert_int_equal(m->entries[abc].parent, ab);
	assert_string_equal(m->entries[ab].name, "b");
	assert_string_equal(m->entries[ab].path, "a/b");
	assert_int_equal(m->entries[ab].size, 0);
	assert_null(m->entries[ab].content_id);
	assert_string_equal(m->entries[abc].name, "c.bin");
	assert_int_equal(m->entries[abc].size, 5 * GIB);
	assert_int_equal(m->entries[abc].mtime, 42);
	assert_string_equal(m->entries[abc].content_id, "sha-of-c");
	assert_string_equal(m->entries[abc].hash_kind, "sha256");
	assert_string_equal(m->entries[abc].url, "https://h/c");

	add_file(m, "a/x", 1);
	x = find(m, "a/x");
	assert_int_equal(m->entries[x].parent, a);
	assert_int_equal(m->n, 5);

	assert_int_equal(manifest_find(m, "a/b/c", &idx), -ENOENT);
	assert_int_equal(manifest_find(m, "a/", &idx), -ENOENT);
	assert_int_equal(manifest_find(m, "/a", &idx), -ENOENT);
	assert_int_equal(manifest_find(m, NULL, &idx), -ENOENT);
	/* Lookup works before finish too. */
	assert_int_equal(manifest_lookup(m, a, "b", &idx), 0);
	assert_int_equal(idx, ab);
	assert_int_equal(manifest_lookup(m, a, "nope", &idx), -ENOENT);
	assert_int_equal(manifest_lookup(m, abc, "b", &idx), -ENOTDIR);
	assert_int_equal(manifest_lookup(m, 0, "", &idx), -ENOENT);
}

static void test_strings_are_copied(void **state)
{
	struct manifest *m = *state;
	char path[] = "dir/file", id[] = "id";
	uint64_t idx;

	assert_int_equal(
		manifest_add(m, path, MENTRY_FILE, 1, 0, id, NULL, NULL), 0);
	path[0] = 'X';
	id[0] = 'X';
	idx = find(m, "dir/file");
	assert_string_equal(m->entries[idx].content_id, "id");
}

static void test_bad_paths(void **state)
{
	static const char *const bad[] = {
		"",   "/a", "a/", "a//b", "./a",  "a/./b", "a/../b",
		"..", ".",  "/",  "a/..", "../x", "//",
	};
	struct manifest *m = *state;
	char longc[300], longp[PATH_MAX + 10];
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(manifest_add(m, bad[i], MENTRY_FILE, 1, 0,
					      NULL, NULL, NULL),
				 -EINVAL);
	assert_int_equal(manifest_add(m, NULL, MENTRY_FILE, 1, 0, NULL, NULL,
				      NULL),
			 -EINVAL);
	assert_int_equal(manifest_add(m, "ok", (enum mentry_type)7, 1, 0, NULL,
				      NULL, NULL),
			 -EINVAL);
	memset(longc, 'c', sizeof(longc));
	longc[256] = 0; /* one component of 256 bytes */
	assert_int_equal(manifest_add(m, longc, MENTRY_FILE, 1, 0, NULL, NULL,
				      NULL),
			 -EINVAL);
	longc[255] = 0;
	add_file(m, longc, 1); /* 255 is fine */
	for (i = 0; i + 2 < sizeof(longp); i += 2)
		memcpy(longp + i, "d/", 2);
	longp[PATH_MAX] = 0; /* "d/d/d/...": too long as a whole */
	assert_int_equal(manifest_add(m, longp, MENTRY_FILE, 1, 0, NULL, NULL,
				      NULL),
			 -EINVAL);
	/* Nothing half-added. */
	assert_int_equal(m->n, 2);
}

static void test_duplicates(void **state)
{
	struct manifest *m = *state;
	uint64_t idx;

	add_file(m, "a/f", 1);
	assert_int_equal(manifest_add(m, "a/f", MENTRY_FILE, 2, 0, NULL, NULL,
				      NULL),
			 -EEXIST);
	assert_int_equal(manifest_add(m, "a/f", MENTRY_DIR, 0, 0, NULL, NULL,
				      NULL),
			 -EEXIST);
	assert_int_equal(manifest_add(m, "a", MENTRY_FILE, 2, 0, NULL, NULL,
				      NULL),
			 -EEXIST);
	/* A folder again, made up or listed: fine, it takes the mtime. */
	assert_int_equal(
		manifest_add(m, "a", MENTRY_DIR, 0, 555, NULL, NULL, NULL), 0);
	assert_int_equal(
		manifest_add(m, "a", MENTRY_DIR, 0, 777, NULL, NULL, NULL), 0);
	idx = find(m, "a");
	assert_int_equal(m->entries[idx].mtime, 777);
	assert_int_equal(m->n, 3);
	assert_int_equal(m->entries[find(m, "a/f")].size, 1);
}

static void test_file_as_parent(void **state)
{
	struct manifest *m = *state;

	add_file(m, "a/f", 1);
	assert_int_equal(manifest_add(m, "a/f/g", MENTRY_FILE, 1, 0, NULL, NULL,
				      NULL),
			 -ENOTDIR);
	assert_int_equal(manifest_add(m, "a/f/g/h", MENTRY_DIR, 0, 0, NULL,
				      NULL, NULL),
			 -ENOTDIR);
	assert_int_equal(m->n, 3);
}

static void test_sizes(void **state)
{
	struct manifest *m = *state;

	assert_int_equal(manifest_add(m, "huge", MENTRY_FILE,
				      (uint64_t)INT64_MAX + 1, 0, NULL, NULL,
				      NULL),
			 -EOVERFLOW);
	add_file(m, "max", INT64_MAX);
	/* A folder has no size. */
	assert_int_equal(manifest_add(m, "d", MENTRY_DIR, 12345, 0, NULL, NULL,
				      NULL),
			 0);
	assert_int_equal(m->entries[find(m, "d")].size, 0);
}

static void test_finish_sorts_and_freezes(void **state)
{
	struct manifest *m = *state;
	static const char *const names[] = { "b",  "a", "B", "\xc3\xa9",
					     "a0", "_", "aa" };
	const struct mentry *root;
	uint64_t idx;
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		add_file(m, names[i], i);
	add_file(m, "z/2", 1);
	add_file(m, "z/1", 1);
	assert_int_equal(manifest_finish(m), 0);
	assert_true(m->finished);
	assert_int_equal(manifest_finish(m), 0); /* again: no-op */
	root = &m->entries[0];
	assert_int_equal(root->nchildren, 8);
	for (i = 1; i < root->nchildren; i++)
		assert_true(strcmp(m->entries[root->children[i - 1]].name,
				   m->entries[root->children[i]].name) < 0);
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		assert_int_equal(manifest_lookup(m, 0, names[i], &idx), 0);
		assert_string_equal(m->entries[idx].name, names[i]);
	}
	assert_int_equal(manifest_lookup(m, 0, "c", &idx), -ENOENT);
	assert_int_equal(manifest_lookup(m, 0, "0", &idx), -ENOENT);
	assert_int_equal(manifest_lookup(m, 0, "\xff", &idx), -ENOENT);
	assert_int_equal(manifest_lookup(m, 0, NULL, &idx), -ENOENT);
	assert_int_equal(manifest_lookup(m, find(m, "z"), "1", &idx), 0);
	assert_int_equal(idx, find(m, "z/1"));
	assert_int_equal(manifest_lookup(m, find(m, "b"), "x", &idx), -ENOTDIR);
	assert_int_equal(manifest_lookup(m, m->n, "x", &idx), -ENOENT);
	/* A file has no children; read-only now. */
	assert_int_equal(m->entries[find(m, "b")].nchildren, 0);
	assert_int_equal(manifest_add(m, "new", MENTRY_FILE, 1, 0, NULL, NULL,
				      NULL),
			 -EBUSY);
}

static void test_totals(void **state)
{
	struct manifest *m = *state;

	assert_int_equal(manifest_total_bytes(m), 0);
	assert_int_equal(manifest_file_count(m), 0);
	add_file(m, "a/b", 5 * GIB);
	add_file(m, "a/c", 3);
	assert_int_equal(
		manifest_add(m, "d", MENTRY_DIR, 0, 0, NULL, NULL, NULL), 0);
	assert_int_equal(manifest_total_bytes(m), 5 * GIB + 3);
	assert_int_equal(manifest_file_count(m), 2);
	/* Saturates instead of wrapping. */
	add_file(m, "x", INT64_MAX);
	add_file(m, "y", INT64_MAX);
	add_file(m, "z", INT64_MAX);
	assert_int_equal(manifest_total_bytes(m), UINT64_MAX);
}

/* 20,000 files in one folder: hashed while building, bisected after. */
static void test_big_folder(void **state)
{
	struct manifest *m = *state;
	char name[32];
	uint64_t idx;
	int i;

	for (i = 0; i < 20000; i++) {
		snprintf(name, sizeof(name), "dir/f%05d", (i * 7919) % 20000);
		add_file(m, name, (uint64_t)i);
	}
	assert_int_equal(manifest_finish(m), 0);
	assert_int_equal(m->entries[1].nchildren, 20000);
	for (i = 0; i < 20000; i++) {
		snprintf(name, sizeof(name), "f%05d", i);
		assert_int_equal(manifest_lookup(m, 1, name, &idx), 0);
		assert_string_equal(m->entries[idx].name, name);
	}
}

static void check_same(const struct manifest *a, const struct manifest *b)
{
	size_t i, j;

	assert_int_equal(a->n, b->n);
	for (i = 0; i < a->n; i++) {
		const struct mentry *x = &a->entries[i], *y = &b->entries[i];

		assert_string_equal(x->path, y->path);
		assert_string_equal(x->name, y->name);
		assert_int_equal(x->parent, y->parent);
		assert_int_equal(x->type, y->type);
		assert_int_equal(x->size, y->size);
		assert_int_equal(x->mtime, y->mtime);
		assert_int_equal(!x->content_id, !y->content_id);
		if (x->content_id)
			assert_string_equal(x->content_id, y->content_id);
		assert_int_equal(!x->hash_kind, !y->hash_kind);
		if (x->hash_kind)
			assert_string_equal(x->hash_kind, y->hash_kind);
		assert_int_equal(!x->url, !y->url);
		if (x->url)
			assert_string_equal(x->url, y->url);
		assert_int_equal(x->nchildren, y->nchildren);
		for (j = 0; j < x->nchildren; j++)
			assert_int_equal(x->children[j], y->children[j]);
	}
}

static void test_json_round_trip(void **state)
{
	struct manifest *m = *state, *back = NULL;
	char *json = NULL, *json2 = NULL;

	assert_int_equal(manifest_add(m, "models/llama/model.safetensors",
				      MENTRY_FILE, 17 * GIB, 1700000000,
				      "e3b0c442", "sha256",
				      "https://hf.co/x/resolve/abc/model"),
			 0);
	assert_int_equal(manifest_add(m, "models", MENTRY_DIR, 0, -5, NULL,
				      NULL, NULL),
			 0);
	assert_int_equal(manifest_add(m, "README.md", MENTRY_FILE, 0, 1,
				      "\"etag\"", "etag", NULL),
			 0);
	assert_int_equal(manifest_add(m, "empty", MENTRY_DIR, 0, 3, NULL, NULL,
				      NULL),
			 0);
	assert_int_equal(manifest_add(m, "\xc3\xa9t\xc3\xa9 \"q\"\\",
				      MENTRY_FILE, 9, 0, NULL, NULL, NULL),
			 0);
	assert_int_equal(manifest_finish(m), 0);
	m->source = strdup("hf://org/model");
	m->version = strdup("abc123");

	assert_int_equal(manifest_to_json(m, &json), 0);
	assert_non_null(strstr(json, "\"format\":1"));
	assert_int_equal(manifest_from_json(json, strlen(json), &back), 0);
	assert_true(back->finished);
	assert_string_equal(back->source, "hf://org/model");
	assert_string_equal(back->version, "abc123");
	check_same(m, back);
	/* And the text is stable. */
	assert_int_equal(manifest_to_json(back, &json2), 0);
	assert_string_equal(json, json2);
	free(json2);
	free(json);
	manifest_free(back);
}

static void test_json_empty_and_optional(void **state)
{
	struct manifest *m = *state, *back = NULL;
	char *json = NULL;
	static const char text[] =
		"{\"format\": 1, \"source\": null, \"entries\": ["
		" {\"path\": \"d\", \"type\": \"dir\"},"
		" {\"path\": \"d/f\", \"type\": \"file\", \"size\": 3,"
		"  \"id\": null, \"future\": [1, 2]}]}";

	assert_int_equal(manifest_to_json(m, &json), 0);
	assert_int_equal(manifest_from_json(json, strlen(json), &back), 0);
	assert_int_equal(back->n, 1);
	assert_null(back->source);
	assert_null(back->version);
	manifest_free(back);
	free(json);
	/* Absent or null optional fields, and unknown keys, are fine. */
	assert_int_equal(manifest_from_json(text, strlen(text), &back), 0);
	assert_int_equal(back->n, 3);
	assert_int_equal(back->entries[2].size, 3);
	assert_null(back->entries[2].content_id);
	manifest_free(back);
	/* Only len bytes are read. */
	assert_int_equal(manifest_from_json(text, 10, &back), -EBADMSG);
}

static void test_json_rejects_non_utf8(void **state)
{
	struct manifest *m = *state;
	char *json = (void *)1;

	add_file(m, "bad\xff", 1);
	assert_int_equal(manifest_to_json(m, &json), -EILSEQ);
	assert_null(json);
}

/* The cases are written with ' for " to stay readable. */
static void test_json_malformed(void **state)
{
	static const char *const bad[] = {
		"",
		"not json",
		"{'format': 1, 'entries': [",
		"[]",
		"null",
		"{}",
		"{'entries': []}",
		"{'format': 2, 'entries': []}",
		"{'format': '1', 'entries': []}",
		"{'format': 1.0, 'entries': []}",
		"{'format': 1}",
		"{'format': 1, 'entries': {}}",
		"{'format': 1, 'entries': [1]}",
		"{'format': 1, 'entries': [null]}",
		"{'format': 1, 'source': 1, 'entries': []}",
		"{'format': 1, 'version': true, 'entries': []}",
		"{'format': 1, 'entries': []} trailing",
	/* Entries: E( fields ) */
#define E(fields) "{'format': 1, 'entries': [{" fields "}]}"
		E("'type': 'file', 'size': 1"),
		E("'path': 5, 'type': 'file', 'size': 1"),
		E("'path': 'a', 'size': 1"),
		E("'path': 'a', 'type': 'link', 'size': 1"),
		E("'path': 'a', 'type': 0"),
		E("'path': 'a', 'type': 'file'"),
		E("'path': 'a', 'type': 'file', 'size': -1"),
		E("'path': 'a', 'type': 'file', 'size': '1'"),
		E("'path': 'a', 'type': 'file', 'size': 1.5"),
		E("'path': 'a', 'type': 'file', 'size': 99999999999999999999"),
		E("'path': 'a', 'type': 'dir', 'size': -1"),
		E("'path': 'a', 'type': 'file', 'size': 1, 'mtime': 'now'"),
		E("'path': 'a', 'type': 'file', 'size': 1, 'id': 7"),
		E("'path': 'a', 'type': 'file', 'size': 1, 'hash': []"),
		E("'path': 'a', 'type': 'file', 'size': 1, 'url': {}"),
		E("'path': '../x', 'type': 'file', 'size': 1"),
		E("'path': '/x', 'type': 'file', 'size': 1"),
		E("'path': '', 'type': 'dir'"),
		E("'path': 'a\\u0000b', 'type': 'file', 'size': 1"),
		E("'path': 'a', 'path': 'b', 'type': 'file', 'size': 1"),
		E("'path': 'a', 'type': 'file', 'size': 1}, "
		  "{'path': 'a', 'type': 'file', 'size': 2"),
		E("'path': 'a', 'type': 'file', 'size': 1}, "
		  "{'path': 'a/b', 'type': 'file', 'size': 2"),
#undef E
	};
	struct manifest *back = (void *)1;
	char text[256];
	size_t i, j;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int err;

		assert_true(strlen(bad[i]) < sizeof(text));
		for (j = 0; bad[i][j]; j++)
			text[j] = bad[i][j] == '\'' ? '"' : bad[i][j];
		text[j] = 0;
		err = manifest_from_json(text, j, &back);
		if (err != -EBADMSG)
			fail_msg("case %zu: %d for %s", i, err, text);
		assert_null(back);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, m_setup, m_teardown)
		T(test_new_has_root),
		T(test_name_ok),
		T(test_add_and_find),
		T(test_strings_are_copied),
		T(test_bad_paths),
		T(test_duplicates),
		T(test_file_as_parent),
		T(test_sizes),
		T(test_finish_sorts_and_freezes),
		T(test_totals),
		T(test_big_folder),
		T(test_json_round_trip),
		T(test_json_empty_and_optional),
		T(test_json_rejects_non_utf8),
		T(test_json_malformed),
#undef T
	};

	return cmocka_run_group_tests_name("manifest", tests, NULL, NULL);
}
