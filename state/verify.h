/*
 * verify: whole-file checks of a complete blob against the hash its
 * source published (DESIGN.md "Errors"; HF-API.md section 5), and the
 * marker that remembers a blob passed, so a remount does not hash it
 * again: CACHE/blobs/ab/HEX.verified holds "KIND HASH INO BIRTH\n", bound
 * like the sidecar to the data file that was hashed (its inode number and
 * birth time): a marker of another data file is not trusted.
 */
#ifndef HOLLOWFS_STATE_VERIFY_H
#define HOLLOWFS_STATE_VERIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/*
 * An incremental check: the hash of a blob's bytes fed in file order as
 * they become available, so the verdict is ready the moment the last
 * chunk lands. verify_ctx_new starts one for a file of size bytes
 * (git-sha1 hashes its "blob SIZE" header first): 0, -EINVAL for an
 * unknown kind, -ENOMEM.
 */
struct verify_ctx;
int verify_ctx_new(const char *kind, uint64_t size, struct verify_ctx **out)
	__attribute__((warn_unused_result));

/* Feeds bytes [off, off + len) of fd, read in bounded blocks; cancelled
 * (may be NULL) is asked between blocks. Returns 0, -ECANCELED or a read
 * error; after an error the context holds part of the range: free it. */
int verify_ctx_feed(struct verify_ctx *c, int fd, uint64_t off, uint64_t len,
		    bool (*cancelled)(void))
	__attribute__((warn_unused_result));

/* The digest of everything fed, as lowercase hex. Once. */
int verify_ctx_final(struct verify_ctx *c, char hex[VERIFY_HEX_MAX])
	__attribute__((warn_unused_result));
void verify_ctx_free(struct verify_ctx *c); /* accepts NULL */

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
