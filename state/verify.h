/*
 * verify: whole-file checks of a complete blob against the hash its
 * source published (DESIGN.md "Errors"; HF-API.md section 5), and the
 * marker that remembers a blob passed, so a remount does not hash it
 * again: CACHE/blobs/ab/HEX.verified holds "KIND HASH\n".
 */
#ifndef HOLLOWFS_STATE_VERIFY_H
#define HOLLOWFS_STATE_VERIFY_H

#include <stdbool.h>
#include <stddef.h>

struct blob;

/* The longest hex digest plus NUL (sha256). */
#define VERIFY_HEX_MAX 65

/* True when kind is one verify_blob knows: "sha256", "git-sha1". */
bool verify_kind_known(const char *kind);

/*
 * Hashes the blob's data file as kind ("sha256": its bytes; "git-sha1":
 * the git blob object, sha1 of "blob SIZE\0" + bytes) into hex, reading
 * in bounded blocks. cancelled (may be NULL) is asked between blocks: when
 * it returns true, the hash stops with -ECANCELED. Returns 0, -EINVAL for
 * an unknown kind, -ECANCELED, or a read error. Call only when every
 * chunk is DONE.
 */
int verify_blob(const struct blob *b, const char *kind,
		char hex[VERIFY_HEX_MAX], bool (*cancelled)(void))
	__attribute__((warn_unused_result));

/* Whether the marker says this blob passed kind/hash. */
bool verify_marked(const struct blob *b, const char *kind, const char *hash);

/* Writes the marker atomically. */
int verify_mark(const struct blob *b, const char *kind, const char *hash)
	__attribute__((warn_unused_result));

/*
 * Forgets the blob's content after a failed check: every chunk becomes
 * MISSING, the sums are cleared, the marker removed, the data punched
 * out (where the file system can), and the empty sidecar saved.
 * The caller makes sure no transfer of the blob is running.
 */
int verify_discard(struct blob *b) __attribute__((warn_unused_result));

#endif
