/*
 * main.c: the hollowfs executable. Everything else, the command line
 * included, is in the fs/ library (fs/cli.c, fs/mount.c), so tests and
 * tools can link it.
 */
#include "fs/cli.h"

int main(int argc, char *argv[])
{
	return cli_main(argc, argv);
}
