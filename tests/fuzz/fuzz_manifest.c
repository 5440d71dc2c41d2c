/*
 * fuzz_manifest.c: libFuzzer target for manifest_from_json().
 *
 * Properties: parsing never crashes or leaks; an error returns nothing and
 * is -EBADMSG (or -ENOMEM); an accepted manifest is a consistent tree
 * (parents first, every entry found by path and by name, children sorted);
 * and its JSON form parses back to the same JSON text.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "state/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_tree(const struct manifest *m)
{
	uint64_t idx;
	size_t i, j;

	if (!m->finished || !m->n || m->entries[0].type != MENTRY_DIR)
		__builtin_trap();
	for (i = 0; i < m->n; i++) {
		const struct mentry *e = &m->entries[i];

		if (manifest_find(m, e->path, &idx) || idx != i)
			__builtin_trap();
		if (i &&
		    (e->parent >= i ||
		     m->entries[e->parent].type != MENTRY_DIR ||
		     !manifest_name_ok(e->name) ||
		     manifest_lookup(m, e->parent, e->name, &idx) || idx != i))
			__builtin_trap();
		if (e->type == MENTRY_FILE &&
		    (e->nchildren || e->size > INT64_MAX))
			__builtin_trap();
		for (j = 1; j < e->nchildren; j++)
			if (strcmp(m->entries[e->children[j - 1]].name,
				   m->entries[e->children[j]].name) >= 0)
				__builtin_trap();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct manifest *m = (void *)1, *m2 = NULL;
	char *json = NULL, *json2 = NULL;
	int err;

	err = manifest_from_json((const char *)data, size, &m);
	if (err) {
		if (m || (err != -EBADMSG && err != -ENOMEM))
			__builtin_trap();
		return 0;
	}
	check_tree(m);
	err = manifest_to_json(m, &json);
	if (err == -ENOMEM)
		goto out;
	if (err)
		__builtin_trap(); /* what was parsed must print */
	err = manifest_from_json(json, strlen(json), &m2);
	if (err == -ENOMEM)
		goto out;
	if (err || m2->n != m->n)
		__builtin_trap();
	err = manifest_to_json(m2, &json2);
	if (!err && strcmp(json, json2))
		__builtin_trap();
out:
	free(json2);
	free(json);
	manifest_free(m2);
	manifest_free(m);
	return 0;
}
