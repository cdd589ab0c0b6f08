/* SPDX-License-Identifier: MIT */
/*
 * tcswap.c - exchange two paths atomically.
 *
 *   tcswap OLD NEW
 *
 * One renameat2(RENAME_EXCHANGE): afterwards OLD names what NEW named and
 * NEW what OLD named, and no process ever sees a moment when either name
 * is missing or both name the same thing. Both must exist, on the same
 * filesystem; they may be files or directories, even one of each.
 *
 * Its use with tiercachefs (README, tcmemo(1)): publish a set of keys at
 * once. Build the new set in a staging directory, swap it with the live
 * directory, remove the old set (now under the staging name). A reader
 * that opens the live directory by path sees the whole old set or the
 * whole new one. Shells and Python's os module have no renameat2, hence
 * this program; nothing in it is specific to tiercachefs (ext4, xfs,
 * btrfs and tmpfs support the exchange too).
 *
 * Exit status: 0 swapped; 1 the swap failed (one line says why); 2 bad
 * usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "config.h"

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

static int swap_paths(const char *a, const char *b)
{
#ifdef HAVE_RENAMEAT2
	return renameat2(AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE);
#else
	return (int)syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b,
			    RENAME_EXCHANGE);
#endif
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: tcswap OLD NEW\n"
	    "Exchange OLD and NEW atomically (renameat2 RENAME_EXCHANGE): "
	    "build a set\n"
	    "of keys in a staging directory, then swap it with the live one.\n"
	    "\n"
	    "  -h, --help     show this help and exit\n"
	    "  -V, --version  show the version and exit\n"
	    "\n"
	    "Exit status: 0 swapped, 1 the swap failed, 2 bad usage. See "
	    "tcmemo(1).\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	struct stat st;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+hV", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("tcswap %s\n", PACKAGE_VERSION);
			return 0;
		default:
			fprintf(stderr,
				"tcswap: unknown option '%s' (usage: tcswap "
				"OLD NEW)\n",
				argv[optind - 1]);
			return 2;
		}
	}
	if (argc - optind != 2) {
		fprintf(stderr,
			"tcswap: expected two paths, got %d (usage: tcswap OLD "
			"NEW)\n",
			argc - optind);
		return 2;
	}
	const char *a = argv[optind], *b = argv[optind + 1];
	if (swap_paths(a, b) == 0)
		return 0;
	int e = errno;
	if (e == ENOENT && lstat(a, &st) < 0)
		fprintf(stderr, "tcswap: %s: %s\n", a, strerror(errno));
	else if (e == ENOENT && lstat(b, &st) < 0)
		fprintf(stderr, "tcswap: %s: %s\n", b, strerror(errno));
	else if (e == EXDEV)
		fprintf(stderr,
			"tcswap: cannot swap %s and %s: not on the same "
			"filesystem\n",
			a, b);
	else if (e == EINVAL || e == ENOSYS)
		fprintf(stderr,
			"tcswap: cannot swap %s and %s: %s (the filesystem or "
			"kernel cannot exchange paths, or one is inside the "
			"other)\n",
			a, b, strerror(e));
	else
		fprintf(stderr, "tcswap: cannot swap %s and %s: %s\n", a, b,
			strerror(e));
	return 1;
}
