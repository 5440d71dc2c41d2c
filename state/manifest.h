/*
 * manifest: the listed tree of one snapshot of a source. Entry 0 is the
 * root folder; an entry's index + 1 is its FUSE inode number.
 *
 * Building: manifest_new(), manifest_add() for each listed path (missing
 * parent folders are created), then manifest_finish(), which sorts every
 * folder's children by name for manifest_lookup(). After finish the
 * manifest is read-only and may be shared by threads without a lock.
 */
#ifndef HOLLOWFS_STATE_MANIFEST_H
#define HOLLOWFS_STATE_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum mentry_type { MENTRY_DIR, MENTRY_FILE };

struct mentry {
	char *name; /* last component; "" for the root */
	char *path; /* relative path from the root; "" for root */
	uint64_t parent; /* index of the parent; the root's is 0 */
	enum mentry_type type;
	uint64_t size; /* bytes; 0 for folders */
	int64_t mtime; /* seconds since the epoch */
	char *content_id; /* ETag, sha256, git oid...; may be NULL */
	char *hash_kind; /* "sha256", "sha1", "etag", ...; may be NULL */
	char *url; /* source-specific locator; may be NULL */
	uint64_t *children; /* folder: indexes sorted by name (strcmp),
				 * set by finish; owned by the manifest */
	size_t nchildren;
};

struct manifest {
	struct mentry *entries; /* owned */
	size_t n, alloc;
	char *source; /* the SOURCE it lists; may be NULL */
	char *version; /* snapshot version (a commit); may be NULL */
	bool finished;
};

/* A manifest comes from manifest_new() or manifest_from_json() only (they
 * allocate more than the struct). */
int manifest_new(struct manifest **out) __attribute__((warn_unused_result));
void manifest_free(struct manifest *m); /* accepts NULL */

/* True when name may be one path component: not empty, not "." or "..",
 * no '/', shorter than 256 bytes (NUL cannot occur in a C string; parsers
 * reject embedded NULs before calling). */
bool manifest_name_ok(const char *name);

/*
 * Adds path ("a/b/c", no leading or trailing '/', no empty, "." or ".."
 * component, shorter than PATH_MAX) with the given metadata; strings are
 * copied, NULL allowed. Missing parent folders are created, with this
 * entry's mtime. A folder's size is 0 whatever is passed. Returns 0;
 * -EINVAL for a bad path or type; -EOVERFLOW for a file size past
 * INT64_MAX (st_size is an off_t); -EEXIST when the path exists (a folder
 * added again is not an error: its mtime is updated); -ENOTDIR when a
 * parent is a file; -EBUSY after finish; -ENOMEM. On error nothing is
 * added.
 */
int manifest_add(struct manifest *m, const char *path, enum mentry_type type,
		 uint64_t size, int64_t mtime, const char *content_id,
		 const char *hash_kind, const char *url)
	__attribute__((warn_unused_result));

/* 0 (also when already finished) or -ENOMEM (then still unfinished). */
int manifest_finish(struct manifest *m) __attribute__((warn_unused_result));

/* Child of folder parent called name: 0 and *idx, or -ENOENT / -ENOTDIR.
 * A binary search after finish, a scan before. */
int manifest_lookup(const struct manifest *m, uint64_t parent, const char *name,
		    uint64_t *idx);

/* Entry at a relative path ("" is the root): 0 and *idx, or -ENOENT. */
int manifest_find(const struct manifest *m, const char *path, uint64_t *idx);

/* Totals over files. */
uint64_t manifest_total_bytes(const struct manifest *m);
size_t manifest_file_count(const struct manifest *m);

/*
 * JSON form (jansson):
 * {"format": 1, "source": "...", "version": "...", "entries": [
 *   {"path": "a/b", "type": "file", "size": 1, "mtime": 0,
 *    "id": "...", "hash": "etag", "url": "..."}, ...]}
 * The root is not listed; entries are in index order, so parsing gives
 * back the same indexes (inode numbers). to_json returns a new malloc'd
 * string (free() it); -EILSEQ when a string is not UTF-8, -ENOMEM.
 * from_json checks every field and path as manifest_add does and
 * returns -EBADMSG for malformed JSON or fields, or -ENOMEM (the manifest
 * is finished on success). "path" and "type" are required, and "size" for
 * files; a missing or null optional field is NULL (mtime: 0); a duplicated
 * key is refused; unknown keys are ignored.
 */
int manifest_to_json(const struct manifest *m, char **out)
	__attribute__((warn_unused_result));
int manifest_from_json(const char *text, size_t len, struct manifest **out)
	__attribute__((warn_unused_result));

#endif
