/*
 * source_hf: SOURCE hf://[datasets/|spaces/]OWNER/NAME[@REVISION][/SUBDIR]
 * and hf://NAME, the Hugging Face Hub or a mirror (DESIGN.md "Sources",
 * shared/HF-API.md).
 *
 * The scheme itself is source_hf_ops (fetch/source_i.h), with its
 * environment policy (HF_TOKEN, HUGGING_FACE_HUB_TOKEN, HF_TOKEN_PATH or
 * $HF_HOME/token; HF_HUB_OFFLINE; HF_ENDPOINT) and its option
 * -o hf_cache=. What is declared here are its pure parts, exported so
 * they can be tested and fuzzed alone, and hf_cache_export(), which
 * places a verified file into a huggingface_hub cache (HF-API.md
 * section 6).
 */
#ifndef HOLLOWFS_FETCH_SOURCE_HF_H
#define HOLLOWFS_FETCH_SOURCE_HF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fetch/engine.h"
#include "fetch/source.h"
#include "state/manifest.h"

#define HF_ENDPOINT_DEFAULT "https://huggingface.co"
#define HF_MAX_PAGES 10000 /* tree pages followed at most */

enum hf_repo_type { HF_MODEL, HF_DATASET, HF_SPACE };

/* A parsed SOURCE; every string owned, freed by hf_spec_release(). */
struct hf_spec {
	enum hf_repo_type type;
	char *repo_id; /* "OWNER/NAME", or "NAME" (legacy ids) */
	char *revision; /* percent-decoded; "main" by default */
	char *subdir; /* "a/b" (no empty, "." or ".." component),
				 * or NULL for the whole repo */
};

/*
 * Parses hf://[datasets/|spaces/]OWNER/NAME[@REVISION][/SUBDIR] (the
 * scheme in any case). REVISION ends at the next '/', except refs/pr/N
 * and refs/convert/WORD, which are taken whole; any other '/' in a
 * revision is written %2F (feat%2Fx). SUBDIR is taken literally, empty
 * components dropped. Returns 0, -EINVAL with one line in err
 * ("malformed SOURCE '...': ..."), or -ENOMEM. On error *out is empty.
 */
int hf_spec_parse(const char *spec, struct hf_spec *out, char *err,
		  size_t errlen) __attribute__((warn_unused_result));
void hf_spec_release(struct hf_spec *s);

/* "models", "datasets", "spaces": the API path and cache folder word. */
const char *hf_type_plural(enum hf_repo_type type);

/* A revision as one URL path segment, '/' escaped too (refs/pr/1 is
 * refs%2Fpr%2F1). New string, or NULL when out of memory. */
char *hf_escape_revision(const char *rev);
/* A repo path for a URL: every component escaped, '/' kept. New string
 * or NULL. */
char *hf_escape_path(const char *path);
/* ENDPOINT/[datasets/|spaces/]REPO_ID/resolve/REV/PATH, with REV and
 * PATH escaped as above. New string or NULL. */
char *hf_resolve_url(const char *endpoint, enum hf_repo_type type,
		     const char *repo_id, const char *rev, const char *path);

/* What the revision endpoint said (hf_revision_parse). Strings owned;
 * hf_revision_release() frees them. */
struct hf_revision {
	char *commit; /* "sha": 40 lowercase hex */
	char *id; /* canonical repo id, or NULL when absent */
	int64_t mtime; /* "lastModified", or 0 */
	bool gated; /* "gated" is "auto", "manual" or true */
};

/* Parses the JSON answer of /api/{type}s/{id}/revision/{rev}: 0,
 * -EBADMSG when it is no JSON object or has no 40-hex "sha", -ENOMEM. */
int hf_revision_parse(const char *body, size_t len, struct hf_revision *out)
	__attribute__((warn_unused_result));
void hf_revision_release(struct hf_revision *r);

/*
 * One listing in progress: each /tree page is handed to
 * hf_tree_page_parse(), which adds its entries to m.
 */
struct hf_tree {
	struct manifest *m; /* borrowed, entries are added to it */
	const char *resolve_base; /* ENDPOINT/[prefix]REPO/resolve/COMMIT */
	const char *subdir; /* NULL, or "a/b": only entries below it are
				 * kept, with paths relative to it */
	const char *where; /* for log lines: "OWNER/NAME@REV" */
	int64_t mtime; /* of every entry */
	size_t max_entries; /* manifest entries, the root excluded */
	int max_depth; /* folders deep at most */
	/* Out: */
	bool capped; /* max_entries reached (warned once) */
	bool subdir_is_file; /* the subdir itself is a file */
	size_t skipped; /* entries dropped (20 warned, then
				 * counted) */
	size_t unverified; /* files kept without a usable hash */
};

/*
 * Adds the entries of one /tree page (a JSON array; body need not be
 * NUL-terminated). "directory" entries become folders, "file" entries
 * files: size from lfs.size, else size; content id and hash kind from
 * lfs.oid ("sha256") or else oid ("git-sha1"), lowercased; without a
 * usable hash a file has neither (a warning); url = resolve_base + '/' +
 * hf_escape_path(path). Entries with a path that can't be a manifest
 * path (absolute, "..", empty components, NUL), duplicates and entries
 * outside subdir are dropped with a warning; other types are ignored.
 * Returns 0 (also when capped), -EBADMSG when the body is not a JSON
 * array, -EACCES when a hash is redacted ("****": the caller may not
 * read the repo, a gated one), or -ENOMEM.
 */
int hf_tree_page_parse(struct hf_tree *t, const char *body, size_t len)
	__attribute__((warn_unused_result));

/* Which request an answer belongs to, for hf_map_error(). */
enum hf_req { HF_REQ_REVISION, HF_REQ_TREE };

/*
 * Turns the answer of an hf source's request (res, and rc returned by
 * engine_http) into one line in err and a negative errno, per HF-API.md
 * section 4: X-Error-Code RevisionNotFound, EntryNotFound, GatedRepo,
 * then RepoNotFound and 401 (a token refused when one was sent), 403,
 * 429. Network failures keep their errno. Returns 0 for a 2xx answer
 * (err untouched). src must be an hf source.
 */
int hf_map_error(const struct source *src, enum hf_req what,
		 const struct http_result *res, int rc, char *err,
		 size_t errlen) __attribute__((warn_unused_result));

/*
 * The huggingface_hub cache folder: $HF_HUB_CACHE, $HUGGINGFACE_HUB_CACHE,
 * $HF_HOME/hub, $XDG_CACHE_HOME/huggingface/hub, ~/.cache/huggingface/hub
 * (a leading "~/" expanded). 0, -ENOENT (no HOME), -ENAMETOOLONG.
 */
int hf_cache_resolve_dir(char *out, size_t outlen)
	__attribute__((warn_unused_result));

/*
 * Places file entry idx of m, listed by the hf source src, into the
 * huggingface_hub cache at hf_cache_dir, from blob_path, a complete and
 * verified local copy of it (its size must be the entry's):
 *   {models,datasets,spaces}--OWNER--NAME/blobs/<etag>  a hard link of
 *       blob_path, or a copy when link(2) fails with EXDEV, EPERM,
 *       EMLINK or EOPNOTSUPP; both go through a temporary name and a
 *       rename, so blobs/<etag> is never partial;
 *   .../snapshots/<commit>/<path>  a relative symlink to
 *       ../../blobs/<etag> (one more "../" per folder of path; path is
 *       from the repo root, SUBDIR included);
 *   .../refs/<revision>  the commit, without a newline, when the
 *       revision is not a full commit id.
 * etag is the sha256 for LFS files, the git blob sha1 for the others, as
 * huggingface_hub names blobs. Existing correct entries are kept; a blob
 * of the wrong size, a symlink elsewhere or a stale ref are replaced
 * atomically. Safe against concurrent callers (threads or processes).
 * Returns 0; -EINVAL (not an hf source or a file entry, no commit, a
 * blob_path of the wrong size or kind); -ENODATA (the entry has no hash
 * to name the blob); or the errno of a file system call.
 */
int hf_cache_export(const char *hf_cache_dir, const struct source *src,
		    const struct manifest *m, uint64_t idx,
		    const char *blob_path) __attribute__((warn_unused_result));

#endif
