/*
 * cli: the hollowfs command line (DESIGN.md "Command line").
 *
 *   hollowfs [mount] [-f] [-d] [-o opt[,opt...]] SOURCE MOUNTPOINT
 *   hollowfs status | prefetch | verify | gc ...
 *
 * Parses the arguments, dispatches the subcommand, and returns the exit
 * status: 0 success, 1 runtime error (source, cache, listing, mount), 2
 * bad usage (options, arguments, a subcommand not implemented yet). It
 * also works as mount(8)'s helper ('mount -t fuse.hollowfs' and
 * /etc/fstab), whose words it accepts.
 */
#ifndef HOLLOWFS_FS_CLI_H
#define HOLLOWFS_FS_CLI_H

enum cli_exit { CLI_EXIT_OK = 0, CLI_EXIT_ERR = 1, CLI_EXIT_USAGE = 2 };

/* Runs the command line argv[0..argc); returns the exit status. */
int cli_main(int argc, char *argv[]);

#endif
