/*
 * cmd: the subcommands that look at a cache or a mount (hollowfs status,
 * hollowfs verify; DESIGN.md "Command line"), one file each, and what
 * they share (fs/cmd_common.c): their arguments, the files a cache's
 * saved snapshots name, and a mount's stats xattr.
 *
 * They run in the hollowfs process of the command, single-threaded, and
 * print to stdout (results) and stderr (one line per failure).
 */
#ifndef HOLLOWFS_FS_CMD_H
#define HOLLOWFS_FS_CMD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cache;
struct fs_stats;

/* hollowfs status [MOUNTPOINT | -o cache=DIR] [--json] */
int cmd_status(int argc, char *argv[]);
/* hollowfs verify [MOUNTPOINT | -o cache=DIR] [--repair] */
int cmd_verify(int argc, char *argv[]);
/* hollowfs prefetch [--wait] PATH... */
int cmd_prefetch(int argc, char *argv[]);
/* hollowfs gc [-o cache=DIR] [--max SIZE] [--dry-run] (fs/cmd_gc.c) */
int cmd_gc(int argc, char *argv[]);

/* What the arguments said. Strings owned. */
struct cmd_args {
	char *mountpoint; /* or NULL: the cache */
	char *cache; /* -o cache=DIR, or NULL: the default */
	char *endpoint; /* -o endpoint=URL, for naming hf:// files */
	bool json; /* --json */
	bool repair; /* --repair */
};

/*
 * Parses argv[1..argc) of a subcommand (argv[0] is its name): MOUNTPOINT,
 * -o cache=DIR,endpoint=URL (also -oOPTS), --json when json_ok, --repair
 * when repair_ok, -h/--help. Returns 0, CMD_ARGS_HELP after printing
 * the usage for --help (exit 0), or CLI_EXIT_USAGE after one line on
 * stderr.
 */
#define CMD_ARGS_HELP (-1)
int cmd_args_parse(int argc, char *argv[], const char *usage, bool json_ok,
		   bool repair_ok, struct cmd_args *a);
void cmd_args_release(struct cmd_args *a);

/* A snapshot saved in the cache: where the files came from. */
struct cmd_snapshot {
	char *source, *version; /* owned; may be NULL */
};

/* One file of a snapshot, or one blob no snapshot names. */
struct cmd_file {
	char *path; /* owned: its path, or "blobs/ab/HEX" */
	long snap; /* index in snaps, or -1: a blob no snapshot names */
	uint64_t size;
	char hex[33]; /* its blob; "" for an empty file */
	char *hash_kind, *hash; /* owned, published hash; may be NULL */
};

struct cmd_files {
	struct cmd_file *v;
	size_t n, alloc;
	struct cmd_snapshot *snaps;
	size_t nsnaps, snaps_alloc;
};

/*
 * Opens the cache of a (a->cache or the default) without creating it:
 * -ENOENT (after a line on stderr) when there is none.
 */
int cmd_cache_open(const struct cmd_args *a, struct cache **out)
	__attribute__((warn_unused_result));

/*
 * Lists the files of every snapshot saved in c (CACHE/snapshots/KEY/
 * VERSION.json), named through their source's target op (source_target:
 * the blob each would be stored in), sorted by snapshot then path; with
 * source set, only snapshots of that source and version. With unnamed,
 * the blobs no listed snapshot names are added too (snap -1). A snapshot
 * that cannot be read, or whose source cannot be opened, is skipped
 * with a line on stderr. Returns 0 or -ENOMEM.
 */
int cmd_cache_files(struct cache *c, const struct cmd_args *a,
		    const char *source, const char *version, bool unnamed,
		    struct cmd_files *out) __attribute__((warn_unused_result));
void cmd_files_release(struct cmd_files *f);

/*
 * Reads and parses the stats xattr of the mount at mnt: 0, -ENOTSUP
 * (after a line on stderr) when mnt is not a hollowfs mount, or another
 * error (also said).
 */
int cmd_mount_stats(const char *mnt, struct fs_stats *st)
	__attribute__((warn_unused_result));

#endif
