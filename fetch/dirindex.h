/*
 * dirindex: pure parsers for what HTTP servers say about a folder
 * (DESIGN.md "Sources"): an nginx JSON autoindex body, an HTML index page
 * (nginx, Apache and alike), the dates they print, and the percent
 * escapes of their links. No network, no global state: every function
 * reads at most the length it is given, so each can be fuzzed
 * (tests/fuzz/fuzz_dirindex.c).
 *
 * Every name that comes out of a listing is one safe path component
 * (manifest_name_ok(), no embedded NUL after decoding). Names failing
 * that are dropped, each with one warning that shows the name with its
 * non-printable bytes escaped.
 */
#ifndef HOLLOWFS_FETCH_DIRINDEX_H
#define HOLLOWFS_FETCH_DIRINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DIRINDEX_SIZE_UNKNOWN (-1)
#define DIRINDEX_MTIME_UNKNOWN INT64_MIN

struct dirindex_entry {
	char *name; /* decoded component (owned) */
	bool is_dir;
	int64_t size; /* bytes, or DIRINDEX_SIZE_UNKNOWN */
	int64_t mtime; /* seconds since the epoch, or
			 * DIRINDEX_MTIME_UNKNOWN */
};

struct dirindex {
	struct dirindex_entry *entries; /* owned */
	size_t n, alloc;
	size_t nlinks; /* HTML: <a href> seen, kept or not */
	size_t dropped; /* entries dropped for an unsafe name */
	bool truncated; /* stopped at max_entries */
};

void dirindex_free(struct dirindex *d); /* accepts NULL */

/*
 * Parses an nginx JSON autoindex body (autoindex_format json): an array
 * of {"name", "type": "file" | "directory" | other (ignored), "mtime"
 * (HTTP date), "size" (files)}. Members that are not objects, or lack a
 * string name, are ignored. body need not be NUL-terminated. folder_url
 * is only used in log lines. At most max_entries entries are kept
 * (truncated is set beyond). Returns 0 and a new *out, -EBADMSG when the
 * body is not a JSON array (so it is no JSON autoindex), or -ENOMEM.
 */
int dirindex_parse_json(const char *body, size_t len, const char *folder_url,
			size_t max_entries, struct dirindex **out)
	__attribute__((warn_unused_result));

/*
 * Parses an HTML index page of folder_url (absolute, ending in '/', in
 * the canonical form of source_http: lowercase scheme and host, every
 * path component escaped as url_escape_component does). Every
 * <a href="..."> is a candidate (counted in nlinks); kept are the links
 * to direct children of folder_url: relative ("x", "./x", "x/"), or
 * absolute paths or URLs leading into folder_url. Skipped silently:
 * parent and self links, query and fragment links (Apache's
 * "?C=N;O=D"), links to other hosts or paths, deeper paths. A trailing
 * '/' makes a folder. Names are percent-decoded (a bad escape or %00
 * drops the link with a warning). The text after a link up to the end
 * of its line is searched for a date ("23-Nov-2026 18:00",
 * "2026-11-23 18:00") and an exact size (digits only; "1.2M" is unknown).
 * The same name linked twice (icons that are links) is kept once.
 * Returns 0 and a new *out (possibly empty: look at nlinks), or -ENOMEM.
 */
int dirindex_parse_html(const char *body, size_t len, const char *folder_url,
			size_t max_entries, struct dirindex **out)
	__attribute__((warn_unused_result));

/*
 * Parses s[0, len) as a date: RFC 7231 IMF-fixdate ("Mon, 23 Nov 2026
 * 18:00:00 GMT"), the obsolete RFC 850 and asctime forms, nginx
 * autoindex ("23-Nov-2026 18:00") or Apache autoindex ("2026-11-23 18:00"
 * with optional ":SS"), all as UTC. Surrounding blanks are allowed.
 * Returns 0 and *out, or -EINVAL.
 */
int dirindex_parse_date(const char *s, size_t len, int64_t *out)
	__attribute__((warn_unused_result));

/*
 * Percent-decodes s[0, len) into a new NUL-terminated string (*out_len
 * bytes, may be NULL). -EINVAL on a bad escape or an embedded NUL
 * (literal or %00), -ENOMEM.
 */
int dirindex_unescape(const char *s, size_t len, char **out, size_t *out_len)
	__attribute__((warn_unused_result));

/* Percent-encodes s[0, len): RFC 3986 unreserved bytes (A-Z a-z 0-9
 * - . _ ~) are kept, all else becomes %XX (uppercase). New string, or
 * NULL on ENOMEM. */
char *dirindex_escape(const char *s, size_t len);

/* Writes name[0, len) for a log line into buf: control bytes (C0, DEL,
 * UTF-8 C1), backslash and quote as \xHH, shortened to fit with "...".
 * Returns buf. */
char *dirindex_printable(const char *name, size_t len, char *buf,
			 size_t buflen);

#endif
