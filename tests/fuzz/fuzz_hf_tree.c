/*
 * fuzz_hf_tree.c: libFuzzer target for the Hub tree-page parser,
 * hf_tree_page_parse() (fetch/source_hf.c): the JSON array a
 * /api/{type}s/{id}/tree/{rev} page answers, which becomes manifest
 * entries.
 *
 * Input: one mode byte, then the page. The mode picks the subfolder the
 * listing is for, a small entry cap or depth limit now and then (to reach
 * the cap and depth paths), and whether the same page is parsed twice (a
 * server repeating itself: duplicates). The body is copied into a buffer
 * of exactly its size (no NUL after it).
 *
 * Properties: nothing crashes, leaks or reads past the given length; the
 * return value is one the header documents; the depth limit holds, and
 * the entry cap up to the parent folders of the last entry added; every entry has a safe name (manifest_name_ok) below the root; a
 * file's hash is 40 (git-sha1) or 64 (sha256) lowercase hex digits, or
 * absent with no kind; its URL starts with the resolve base; the manifest
 * can be finished.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fetch/source_hf.h"
#include "state/hlog.h"
#include "state/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#define BASE                                        \
	"https://huggingface.co/org/model/resolve/" \
	"0123456789abcdef0123456789abcdef01234567"

static const char *const subdirs[] = { NULL, "a", "a/b", "sub dir" };

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static FILE *devnull;

	(void)argc;
	(void)argv;
	/* Skipped entries are warned about: keep the output clean. */
	devnull = fopen("/dev/null", "w");
	if (devnull)
		hlog_set_sink(devnull, false);
	return 0;
}

static bool lower_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[n] == '\0';
}

static void check(const struct hf_tree *t)
{
	const struct manifest *m = t->m;
	size_t i;

	/* One entry may bring its missing parent folders past the cap. */
	if (m->n < 1 || m->n - 1 > t->max_entries + (size_t)t->max_depth)
		__builtin_trap();
	for (i = 1; i < m->n; i++) {
		const struct mentry *en = &m->entries[i];
		int depth = 0;
		const char *q;

		if (!en->name || !manifest_name_ok(en->name) || !en->path)
			__builtin_trap();
		for (q = en->path; *q; q++)
			depth += *q == '/';
		if (depth + (en->type == MENTRY_DIR) > t->max_depth)
			__builtin_trap();
		if (en->type == MENTRY_DIR)
			continue;
		if (!en->url || strncmp(en->url, BASE "/", strlen(BASE) + 1))
			__builtin_trap();
		if (!en->hash_kind) {
			if (en->content_id)
				__builtin_trap();
		} else if (!strcmp(en->hash_kind, "git-sha1")) {
			if (!en->content_id || !lower_hex(en->content_id, 40))
				__builtin_trap();
		} else if (!strcmp(en->hash_kind, "sha256")) {
			if (!en->content_id || !lower_hex(en->content_id, 64))
				__builtin_trap();
		} else {
			__builtin_trap();
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hf_tree t = { 0 };
	struct manifest *m = NULL;
	char *body;
	uint8_t mode;
	int rc, pass;

	if (size < 1 || size > 1 << 20)
		return 0;
	mode = data[0];
	data++;
	size--;
	body = malloc(size ? size : 1);
	if (!body)
		return 0;
	memcpy(body, data, size);
	if (manifest_new(&m)) {
		free(body);
		return 0;
	}
	t.m = m;
	t.resolve_base = BASE;
	t.subdir = subdirs[mode & 3];
	t.where = "org/model@main";
	t.mtime = 1700000000;
	t.max_entries = mode & 4 ? 3 : 100000;
	t.max_depth = mode & 8 ? 1 : 64;
	for (pass = 0; pass < (mode & 16 ? 2 : 1); pass++) {
		rc = hf_tree_page_parse(&t, body, size);
		if (rc && rc != -EBADMSG && rc != -EACCES && rc != -ENOMEM)
			__builtin_trap();
		check(&t);
	}
	if (manifest_finish(m))
		__builtin_trap();
	manifest_free(m);
	free(body);
	return 0;
}
