/* SPDX-License-Identifier: MIT */
/*
 * tcmemo.c - run a command once per distinct input, replay it afterwards
 * (SPEC §10).
 *
 *   tcmemo [-C MOUNT] [-t TTL] [-g TAG]... [-f FILE]... [-e VAR]...
 *          [--cache-failures] -- COMMAND [ARG...]
 *
 * The results live in a tiercachefs mount like any other entry, so they
 * share its tiers, limits, lifetimes and tags (`evict_tag` drops a family
 * of results). Layout below MOUNT:
 *
 *   .tcmemo/XX/<32 hex>               one entry per key; XX = first 2 digits
 *   .tcmemo/tmp/<hex>.lock            a key's lock, while someone runs or
 *                                     waits for it
 *   .tcmemo/tmp/<hex>.<pid>.<n>.tmp   an entry being written
 *
 * Key. XXH3-128 over a sequence of fields, each framed as a tag byte, a
 * 64-bit little-endian length and the bytes, so the encoding is injective:
 * argument boundaries and order count, and no field can pass for another.
 * In order: a format string, the argument count and each argument, the
 * physical working directory, each -e variable (sorted by name: name, then
 * its value or an "unset" marker, so unset and empty differ), standard input
 * (a terminal is a marker; anything else is read to its end and enters as
 * its own XXH3-128 and length), and each -f FILE (sorted by path: the path
 * as given, then its contents' XXH3-128 and length). Nothing else: an
 * unnamed environment variable (PATH too) does not change the key.
 *
 * Entry. A 24-byte header ("TCMEMO", a NUL, format version 1, the 16-byte
 * key), then records of a type byte and a 32-bit little-endian length:
 * 1 = stdout bytes, 2 = stderr bytes, in the order the command wrote them,
 * and a final type 0 record of 20 bytes: exit status (32 bits), total
 * stdout bytes and total stderr bytes (64 bits each), which must end
 * exactly at the end of the file. An entry that does not parse (a crash of
 * the machine before the daemon made it durable, a stray write) is a miss
 * and is computed again; a partial entry can never parse, since the end
 * record comes last.
 *
 * A miss. The command runs with its stdout and stderr on pipes; each chunk
 * is passed through to ours at once (so a slow command shows progress) and
 * appended to a temporary file in .tcmemo/tmp/. Should our stdout go away
 * (`tcmemo ... | head`), its pipe is closed, so the command sees what it
 * would have seen without us, and the result is not cached: it is
 * incomplete. A standard input that is not a terminal was read before the
 * key could be known: the command gets a regular file at its start offset,
 * or a spool in $TMPDIR holding what we read. When the command exits 0
 * (any status with --cache-failures), the end record is written, the file
 * closed (which publishes it), its ttl and tags set, and it is renamed onto
 * the entry's name: rename is atomic in tiercachefs, so a reader, or a
 * tcmemo killed at any moment, never leaves or sees a partial entry.
 *
 * A command killed by a signal is not cached; tcmemo then kills itself with
 * the same signal, so its parent sees what it would have seen. Should
 * tcmemo die, the command gets SIGTERM (PR_SET_PDEATHSIG): nobody is left
 * to collect its output. SIGTERM and SIGHUP sent to tcmemo are passed on to
 * the command; SIGINT and SIGQUIT are not (the terminal sends them to the
 * whole process group already): tcmemo outlives them until the command
 * exits. Signals the caller ignored stay ignored, for tcmemo and command.
 *
 * Locking. Concurrent runs of one key compute once: each takes flock(2) on
 * the key's lock file (the kernel keeps flocks for a FUSE filesystem that
 * does not implement them, as tiercachefs), checks for the entry again once
 * it has it, and computes only if still missing. The holder removes the
 * lock file when done, while still holding it; so a lock counts only if,
 * once taken, the path still names the file that was locked, else it is
 * taken again (the pattern that makes removing lock files safe). Waiting
 * is bounded (-w, 10 minutes by default): on timeout the command runs
 * uncached, with a warning. A lock holder first sweeps .tcmemo/tmp/ for the
 * leftovers of killed runs: lock files nobody holds, temporary files whose
 * key nobody holds. flock does not reach across machines: mounts sharing a
 * tier (SPEC §9) each compute once.
 *
 * Exit status: the command's, unchanged, on a miss and on a hit. 2: bad
 * usage, or MOUNT missing, not a tiercachefs mount, read-only, or an input
 * of the key unreadable; nothing ran. 125: tcmemo itself failed while
 * running or replaying. 126/127: the command could not be executed / was
 * not found (as env(1)). A result that cannot be stored (mount full, a ttl
 * the mount refuses) is reported as a warning; the command's status stands.
 *
 * This is a small program, not a library: its only globals are the two
 * flags its signal handlers need.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "config.h"
#include "tiercache.h"

/* Exit statuses of tcmemo's own (see the top of the file). */
#define TM_EXIT_USAGE 2
#define TM_EXIT_INTERNAL 125
#define TM_EXIT_NOEXEC 126
#define TM_EXIT_NOTFOUND 127

/* Default bound on waiting for a concurrent run of the same key: longer
 * than a slow compile or download, short enough that a stuck run is
 * noticed the same day. */
#define TM_WAIT_DEFAULT "10m"

/* Once the wait timer fired, it fires again this often (µs), in case the
 * first signal came before flock() started to sleep. */
#define TM_WAIT_REPEAT_US 100000

/* One read of a full pipe (Linux pipes hold 64 KiB by default). */
#define TM_PIPE_BUF (64 * 1024)

/* The capture is written in pieces of this size: one FUSE write each
 * (libfuse's default max_write is 128 KiB). Also the replay's read size. */
#define TM_IO_BUF (128 * 1024)

/* Entry format (see the top of the file). */
#define TM_MAGIC "TCMEMO"       /* + NUL + version byte */
#define TM_MAGIC_LEN 7
#define TM_VERSION 1
#define TM_KEY_LEN 16
#define TM_HDR_LEN (TM_MAGIC_LEN + 1 + TM_KEY_LEN)
#define TM_REC_HDR 5            /* type byte + 32-bit length */
#define TM_END_LEN 20           /* status + stdout total + stderr total */
enum { TM_REC_END = 0, TM_REC_OUT = 1, TM_REC_ERR = 2 };

/* The domain string opening every key: a new format gets new keys. */
#define TM_KEY_DOMAIN "tcmemo key 1"

/* SPEC §5: at most 32 tags per entry. */
#define TM_TAGS_MAX 32

#define TM_DIR ".tcmemo"
#define TM_XATTR_TTL "user.tiercache.ttl"
#define TM_XATTR_TAGS "user.tiercache.tags"

/* Set by the signal handlers, read by the main flow. */
static volatile sig_atomic_t tm_child;  /* PID of the running command, 0 */
static volatile sig_atomic_t tm_alarm;  /* the lock wait's timer fired */

/* The signals tcmemo changes; the command gets them back as inherited. */
static const int tm_signals[] = { SIGPIPE, SIGINT, SIGQUIT, SIGTERM,
				  SIGHUP, SIGALRM };
#define TM_NSIG (sizeof(tm_signals) / sizeof(tm_signals[0]))

struct tm_opts {
	const char *dir;        /* -C, else $TCMEMO_DIR */
	const char *ttl;        /* -t, NULL: the mount's rules decide */
	char *tags;             /* -g, comma-joined; NULL: none (owned) */
	const char **files;     /* -f, sorted, unique (array owned) */
	size_t nfiles;
	const char **vars;      /* -e, sorted, unique (array owned) */
	size_t nvars;
	const char *wait_str;   /* -w as given, for messages */
	int64_t wait_ns;        /* 0: no limit */
	bool cache_failures;
	bool print_path;
	char **cmd;             /* COMMAND [ARG...], NULL-terminated (argv) */
};

struct tm_memo {
	struct tm_opts o;
	int stdin_fd;           /* the command's stdin on a miss; -1: tty */
	unsigned char key[TM_KEY_LEN];
	char hex[2 * TM_KEY_LEN + 1];
	char *base;             /* MOUNT/.tcmemo */
	char *tmpdir;           /* MOUNT/.tcmemo/tmp */
	char *fandir;           /* MOUNT/.tcmemo/XX */
	char *entry;            /* MOUNT/.tcmemo/XX/<hex> */
	char *lock;             /* MOUNT/.tcmemo/tmp/<hex>.lock */
	struct sigaction saved[TM_NSIG]; /* dispositions we inherited */
};

/* A validated entry, open for replay. */
struct tm_entry {
	int fd;
	int status;
};

/* The entry being written: records are assembled in buf, written out in
 * TM_IO_BUF pieces; adjacent chunks of one stream share a record. */
struct tm_capture {
	int fd;
	int err;                /* first write error (-errno), then discard */
	size_t len;             /* bytes waiting in buf */
	size_t rec;             /* offset in buf of the open record */
	int rec_type;           /* its type; TM_REC_END: no record open */
	uint32_t rec_len;
	uint64_t total[3];      /* bytes captured, by record type */
	unsigned char buf[TM_IO_BUF];
};

/* ------------------------------------------------------------------ */
/* Small helpers                                                       */
/* ------------------------------------------------------------------ */

/* One line "tcmemo: ..." on stderr, in one write so that the lines of
 * concurrent runs do not mix. */
static void tm_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void tm_msg(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n = snprintf(line, sizeof(line), "tcmemo: ");

	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	n = (int)strlen(line);
	line[n++] = '\n';
	if (write(STDERR_FILENO, line, (size_t)n) < 0) {
		/* nowhere left to report it */
	}
}

static void put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static void put_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get_le32(const unsigned char *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint64_t get_le64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Sleep until fd is ready for events (a descriptor we inherited may be
 * non-blocking); 0 or -errno. */
static int wait_ready(int fd, short events)
{
	struct pollfd pf = { .fd = fd, .events = events };

	while (poll(&pf, 1, -1) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

/* Write all of buf; 0 or -errno. */
static int write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN && wait_ready(fd, POLLOUT) == 0)
				continue;
			return -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Read n bytes at off; the count read (short only at end of file) or
 * -errno. */
static ssize_t pread_full(int fd, void *buf, size_t n, uint64_t off)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r = pread(fd, (char *)buf + got, n - got,
				  (off_t)(off + got));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

/* True when fd and path name the same file. */
static bool same_file(int fd, const char *path)
{
	struct stat a, b;

	return fstat(fd, &a) == 0 && stat(path, &b) == 0 &&
	       a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

static char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *xasprintf(const char *fmt, ...)
{
	char *s;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vasprintf(&s, fmt, ap);
	va_end(ap);
	if (rc < 0) {
		tm_msg("out of memory");
		exit(TM_EXIT_INTERNAL);
	}
	return s;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sort v and drop duplicates; returns the new count. */
static size_t sort_unique(const char **v, size_t n)
{
	size_t k = 0;

	qsort(v, n, sizeof(*v), cmp_str);
	for (size_t i = 0; i < n; i++)
		if (k == 0 || strcmp(v[k - 1], v[i]) != 0)
			v[k++] = v[i];
	return k;
}

/* 0, 1 and 2 open, so that no file we open takes their place. */
static void fds_sanitize(void)
{
	for (int fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		int n = open("/dev/null", O_RDWR);
		if (n >= 0 && n != fd) {
			dup2(n, fd);
			close(n);
		}
	}
}

/* ------------------------------------------------------------------ */
/* Command line                                                        */
/* ------------------------------------------------------------------ */

static void usage(FILE *f)
{
	fprintf(f,
"Usage: tcmemo [OPTION]... [--] COMMAND [ARG]...\n"
"Run COMMAND once per distinct input; afterwards replay its stdout, stderr\n"
"and exit status from a tiercachefs mount without running it.\n"
"\n"
"  -C, --mount=DIR       a directory in a tiercachefs mount (default:\n"
"                        $TCMEMO_DIR)\n"
"  -t, --ttl=TTL         lifetime of the result: 30s, 10m, 1h, 2d, never\n"
"  -g, --tag=TAG[,TAG]   tag the result (repeatable)\n"
"  -f, --file=FILE       the key includes FILE's contents (repeatable)\n"
"  -e, --env=VAR         the key includes variable VAR (repeatable)\n"
"  -w, --wait=DUR        wait at most DUR for a concurrent run of the same\n"
"                        key, then run uncached (default " TM_WAIT_DEFAULT
"; 0: no limit)\n"
"      --cache-failures  cache a non-zero exit status too\n"
"      --path            print where the result is stored and exit\n"
"  -h, --help            show this help and exit\n"
"  -V, --version         show the version and exit\n"
"\n"
"The key is the XXH3-128 of the arguments, the working directory, the -e\n"
"variables, standard input unless it is a terminal, and the -f contents.\n"
"Exit status: COMMAND's, on a run and on a replay; 2 bad usage or DIR;\n"
"125 tcmemo failed; 126 COMMAND not executable; 127 COMMAND not found.\n"
"See tcmemo(1).\n");
}

enum { OPT_CACHE_FAILURES = 256, OPT_PATH };

static const struct option tm_long_opts[] = {
	{ "mount", required_argument, NULL, 'C' },
	{ "ttl", required_argument, NULL, 't' },
	{ "tag", required_argument, NULL, 'g' },
	{ "file", required_argument, NULL, 'f' },
	{ "env", required_argument, NULL, 'e' },
	{ "wait", required_argument, NULL, 'w' },
	{ "cache-failures", no_argument, NULL, OPT_CACHE_FAILURES },
	{ "path", no_argument, NULL, OPT_PATH },
	{ "help", no_argument, NULL, 'h' },
	{ "version", no_argument, NULL, 'V' },
	{ NULL, 0, NULL, 0 },
};

/* Append the tags of one -g value (a comma list) to o->tags; 0 or -1
 * after printing why. */
static int opts_add_tags(struct tm_opts *o, const char *arg, size_t *ntags)
{
	const char *p = arg;

	for (;;) {
		size_t len = strcspn(p, ",");
		if (!tc_tag_valid(p, len)) {
			tm_msg("-g: invalid tag '%.*s' (1 to 64 of A-Z a-z 0-9 _ . : -)",
			       (int)len, p);
			return -1;
		}
		if (++*ntags > TM_TAGS_MAX) {
			tm_msg("-g: more than %d tags", TM_TAGS_MAX);
			return -1;
		}
		char *t = xasprintf("%s%s%.*s", o->tags ? o->tags : "",
				    o->tags ? "," : "", (int)len, p);
		free(o->tags);
		o->tags = t;
		if (!p[len])
			return 0;
		p += len + 1;
	}
}

/* A ttl tiercachefs accepts: a duration, "none" or "never". */
static bool ttl_valid(const char *s)
{
	int64_t ns;

	return strcmp(s, "never") == 0 || tc_parse_duration(s, &ns) == 0;
}

/*
 * Parse argv into o. Returns -1 to go on, else the exit status: 0 after
 * --help or --version, TM_EXIT_USAGE after printing one line on an error.
 */
static int opts_parse(int argc, char **argv, struct tm_opts *o)
{
	size_t ntags = 0;
	const char *wait = TM_WAIT_DEFAULT;
	int c;

	o->dir = getenv("TCMEMO_DIR");
	o->files = calloc((size_t)argc, sizeof(*o->files));
	o->vars = calloc((size_t)argc, sizeof(*o->vars));
	if (!o->files || !o->vars) {
		tm_msg("out of memory");
		return TM_EXIT_INTERNAL;
	}
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:C:t:g:f:e:w:hV", tm_long_opts,
				NULL)) != -1) {
		switch (c) {
		case 'C':
			o->dir = optarg;
			break;
		case 't':
			if (!ttl_valid(optarg)) {
				tm_msg("-t: invalid ttl '%s' (a duration such as 30s, 10m, 1h, 2d; none; never)",
				       optarg);
				return TM_EXIT_USAGE;
			}
			o->ttl = optarg;
			break;
		case 'g':
			if (opts_add_tags(o, optarg, &ntags) < 0)
				return TM_EXIT_USAGE;
			break;
		case 'f':
			o->files[o->nfiles++] = optarg;
			break;
		case 'e':
			if (!*optarg || strchr(optarg, '=')) {
				tm_msg("-e: invalid variable name '%s'", optarg);
				return TM_EXIT_USAGE;
			}
			o->vars[o->nvars++] = optarg;
			break;
		case 'w':
			wait = optarg;
			break;
		case OPT_CACHE_FAILURES:
			o->cache_failures = true;
			break;
		case OPT_PATH:
			o->print_path = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("tcmemo %s\n", PACKAGE_VERSION);
			return 0;
		case ':':
			tm_msg("option '%s' needs an argument (see tcmemo --help)",
			       argv[optind - 1]);
			return TM_EXIT_USAGE;
		default:
			if (optopt)
				tm_msg("unknown option '-%c' (see tcmemo --help)",
				       optopt);
			else
				tm_msg("unknown option '%s' (see tcmemo --help)",
				       argv[optind - 1]);
			return TM_EXIT_USAGE;
		}
	}
	if (tc_parse_duration(wait, &o->wait_ns) < 0) {
		tm_msg("-w: invalid duration '%s' (such as 30s, 10m, 1h; 0 for no limit)",
		       wait);
		return TM_EXIT_USAGE;
	}
	o->wait_str = wait;
	if (optind >= argc) {
		tm_msg("no command given (usage: tcmemo [OPTION]... -- COMMAND [ARG]...)");
		return TM_EXIT_USAGE;
	}
	o->cmd = argv + optind;
	if (!o->dir || !*o->dir) {
		tm_msg("no cache directory: give -C MOUNT or set TCMEMO_DIR");
		return TM_EXIT_USAGE;
	}
	o->nfiles = sort_unique(o->files, o->nfiles);
	o->nvars = sort_unique(o->vars, o->nvars);
	return -1;
}

/* ------------------------------------------------------------------ */
/* The mount                                                           */
/* ------------------------------------------------------------------ */

/* Undo the octal escapes of a /proc/self/mountinfo field, in place. */
static void unescape_octal(char *s)
{
	char *w = s;

	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' &&
		    r[2] >= '0' && r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
			*w++ = (char)((r[1] - '0') << 6 | (r[2] - '0') << 3 |
				      (r[3] - '0'));
			r += 3;
		} else {
			*w++ = *r;
		}
	}
	*w = '\0';
}

/*
 * Find the mount holding device dev in /proc/self/mountinfo. On success
 * *fstype and *mpoint are malloc'ed (the caller frees them).
 * 0, -ENOENT (no such mount), or -errno reading the table.
 */
static int mount_find(dev_t dev, char **fstype, char **mpoint)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;
	int rc = -ENOENT;

	if (!f)
		return -errno;
	while (rc == -ENOENT && getline(&line, &cap, f) > 0) {
		char *fields[6] = { 0 }, *save = NULL, *tok, *type = NULL;
		unsigned int maj, min;
		int i = 0;

		for (tok = strtok_r(line, " \n", &save); tok;
		     tok = strtok_r(NULL, " \n", &save)) {
			if (i < 6)
				fields[i] = tok;
			if (i > 5 && strcmp(tok, "-") == 0) {
				type = strtok_r(NULL, " \n", &save);
				break;
			}
			i++;
		}
		if (!type || !fields[4] ||
		    sscanf(fields[2], "%u:%u", &maj, &min) != 2 ||
		    makedev(maj, min) != dev)
			continue;
		unescape_octal(fields[4]);
		*fstype = strdup(type);
		*mpoint = strdup(fields[4]);
		rc = 0;
	}
	free(line);
	fclose(f);
	return rc;
}

/* True when the .stats at the root of mount point mp is tiercachefs's. */
static bool has_tiercache_stats(const char *mp)
{
	char *path = xasprintf("%s/.stats", mp);
	char buf[4096];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	ssize_t n = -1;

	free(path);
	if (fd >= 0) {
		n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
	}
	if (n <= 0)
		return false;
	buf[n] = '\0';
	return strstr(buf, "tiercache_") != NULL;
}

/*
 * 0 when dir is a directory in a writable tiercachefs mount: the mount
 * table says fuse.tiercachefs, or (a mount given another subtype= name)
 * it is FUSE and its root has tiercachefs's .stats. Else prints one line
 * and returns -1.
 */
static int check_mount(const char *dir)
{
	struct stat st;
	struct statvfs sv;
	char *fstype = NULL, *mp = NULL;
	int rc = -1, e;

	if (stat(dir, &st) < 0) {
		tm_msg("%s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		tm_msg("%s: not a directory", dir);
		return -1;
	}
	e = mount_find(st.st_dev, &fstype, &mp);
	if (e == -ENOENT) {
		tm_msg("%s: not a tiercachefs mount (not in the mount table)",
		       dir);
		goto out;
	}
	if (e < 0) {
		tm_msg("cannot read /proc/self/mountinfo: %s", strerror(-e));
		goto out;
	}
	if (!fstype || !mp) {
		tm_msg("out of memory");
		goto out;
	}
	if (strcmp(fstype, "fuse.tiercachefs") != 0 &&
	    !(strncmp(fstype, "fuse", 4) == 0 && has_tiercache_stats(mp))) {
		tm_msg("%s: not a tiercachefs mount (it is %s)", dir, fstype);
		goto out;
	}
	if (statvfs(dir, &sv) < 0) {
		tm_msg("%s: %s", dir, strerror(errno));
		goto out;
	}
	if (sv.f_flag & ST_RDONLY) {
		tm_msg("%s: read-only tiercachefs mount (tcmemo stores its results there)",
		       dir);
		goto out;
	}
	rc = 0;
out:
	free(fstype);
	free(mp);
	return rc;
}

/* mkdir that accepts an existing directory; 0 or -1 after printing. */
static int mkdir_once(const char *path)
{
	if (mkdir(path, 0777) == 0 || errno == EEXIST)
		return 0;
	tm_msg("cannot create %s: %s", path, strerror(errno));
	return -1;
}

/* ------------------------------------------------------------------ */
/* The key                                                             */
/* ------------------------------------------------------------------ */

/* Hash one field: tag, 64-bit length, bytes. */
static void key_field(XXH3_state_t *st, char tag, const void *p, size_t n)
{
	unsigned char h[9];

	h[0] = (unsigned char)tag;
	put_le64(h + 1, n);
	XXH3_128bits_update(st, h, sizeof(h));
	XXH3_128bits_update(st, p, n);
}

static void key_str(XXH3_state_t *st, char tag, const char *s)
{
	key_field(st, tag, s, strlen(s));
}

/*
 * Read fd to its end: its XXH3-128 (canonical) and length go to out[24];
 * each byte read is also written to copy when copy >= 0. 0 or -errno.
 */
static int hash_stream(int fd, int copy, unsigned char out[24])
{
	XXH3_state_t *st = XXH3_createState();
	unsigned char *buf = malloc(TM_IO_BUF);
	XXH128_canonical_t c;
	uint64_t total = 0;
	int rc = 0;

	if (!st || !buf) {
		rc = -ENOMEM;
		goto out;
	}
	XXH3_128bits_reset(st);
	for (;;) {
		ssize_t n = read(fd, buf, TM_IO_BUF);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN && wait_ready(fd, POLLIN) == 0)
			continue;
		if (n < 0) {
			rc = -errno;
			goto out;
		}
		if (n == 0)
			break;
		XXH3_128bits_update(st, buf, (size_t)n);
		total += (uint64_t)n;
		if (copy >= 0) {
			rc = write_all(copy, buf, (size_t)n);
			if (rc < 0)
				goto out;
		}
	}
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(st));
	memcpy(out, c.digest, 16);
	put_le64(out + 16, total);
out:
	free(buf);
	XXH3_freeState(st);
	return rc;
}

/* An unnamed, already unlinked file in $TMPDIR (else /tmp); fd or
 * -errno. */
static int spool_create(void)
{
	const char *dir = getenv("TMPDIR");
	char *tmpl;
	int fd;

	if (!dir || !*dir)
		dir = "/tmp";
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	tmpl = xasprintf("%s/tcmemo-stdin-XXXXXX", dir);
	fd = mkostemp(tmpl, O_CLOEXEC);
	if (fd < 0)
		fd = -errno;
	else
		unlink(tmpl);
	free(tmpl);
	return fd;
}

/*
 * Hash standard input into st and decide what the command reads on a
 * miss (m->stdin_fd): a terminal is left alone (a marker in the key); a
 * regular file is read and rewound to where it was; anything else is
 * copied into a spool while it is hashed. 0 or -1 after printing.
 */
static int key_stdin(struct tm_memo *m, XXH3_state_t *st)
{
	unsigned char d[24];
	struct stat sb;
	off_t off = -1;
	int rc, spool = -1;

	m->stdin_fd = -1;
	if (isatty(STDIN_FILENO)) {
		key_field(st, 'i', "", 0);
		return 0;
	}
	if (fstat(STDIN_FILENO, &sb) == 0 && S_ISREG(sb.st_mode))
		off = lseek(STDIN_FILENO, 0, SEEK_CUR);
	if (off < 0) {
		spool = spool_create();
		if (spool < 0) {
			tm_msg("cannot store standard input: %s", strerror(-spool));
			return -1;
		}
	}
	rc = hash_stream(STDIN_FILENO, spool, d);
	if (rc < 0) {
		tm_msg("reading standard input: %s", strerror(-rc));
		if (spool >= 0)
			close(spool);
		return -1;
	}
	if (spool >= 0) {
		lseek(spool, 0, SEEK_SET);
		m->stdin_fd = spool;
	} else {
		lseek(STDIN_FILENO, off, SEEK_SET);
		m->stdin_fd = STDIN_FILENO;
	}
	key_field(st, 'I', d, sizeof(d));
	return 0;
}

/* Hash the -f files into st; 0 or -1 after printing. */
static int key_files(struct tm_memo *m, XXH3_state_t *st)
{
	unsigned char d[24];
	char n[8];

	put_le64((unsigned char *)n, m->o.nfiles);
	key_field(st, 'F', n, sizeof(n));
	for (size_t i = 0; i < m->o.nfiles; i++) {
		const char *path = m->o.files[i];
		struct stat sb;
		int fd = open(path, O_RDONLY | O_CLOEXEC), rc;

		if (fd < 0) {
			tm_msg("-f %s: %s", path, strerror(errno));
			return -1;
		}
		if (fstat(fd, &sb) == 0 && S_ISDIR(sb.st_mode)) {
			tm_msg("-f %s: is a directory (name its files)", path);
			close(fd);
			return -1;
		}
		rc = hash_stream(fd, -1, d);
		close(fd);
		if (rc < 0) {
			tm_msg("-f %s: %s", path, strerror(-rc));
			return -1;
		}
		key_str(st, 'p', path);
		key_field(st, 'c', d, sizeof(d));
	}
	return 0;
}

/* Compute m->key and m->hex (see the top of the file); 0 or -1 after
 * printing. */
static int key_compute(struct tm_memo *m)
{
	XXH3_state_t *st = XXH3_createState();
	XXH128_canonical_t c;
	unsigned char n[8];
	char *cwd = NULL;
	size_t argc = 0;
	int rc = -1;

	if (!st) {
		tm_msg("out of memory");
		return -1;
	}
	XXH3_128bits_reset(st);
	key_str(st, 'T', TM_KEY_DOMAIN);

	while (m->o.cmd[argc])
		argc++;
	put_le64(n, argc);
	key_field(st, 'N', n, sizeof(n));
	for (size_t i = 0; i < argc; i++)
		key_str(st, 'A', m->o.cmd[i]);

	cwd = getcwd(NULL, 0);
	if (!cwd) {
		tm_msg("cannot get the working directory: %s", strerror(errno));
		goto out;
	}
	key_str(st, 'W', cwd);

	put_le64(n, m->o.nvars);
	key_field(st, 'V', n, sizeof(n));
	for (size_t i = 0; i < m->o.nvars; i++) {
		const char *v = getenv(m->o.vars[i]);
		key_str(st, 'n', m->o.vars[i]);
		if (v)
			key_str(st, 'v', v);
		else
			key_field(st, 'u', "", 0);
	}

	if (key_stdin(m, st) < 0 || key_files(m, st) < 0)
		goto out;

	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(st));
	memcpy(m->key, c.digest, TM_KEY_LEN);
	for (int i = 0; i < TM_KEY_LEN; i++)
		snprintf(m->hex + 2 * i, 3, "%02x", m->key[i]);
	rc = 0;
out:
	free(cwd);
	XXH3_freeState(st);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Entries: read and replay                                            */
/* ------------------------------------------------------------------ */

/*
 * Open m->entry and check it whole (header, every record header, the end
 * record at the end of the file). 0 with e filled (the caller replays or
 * closes e->fd), -ENOENT when there is no entry, -EBADMSG when it does
 * not parse, -errno when it cannot be read.
 */
static int entry_open(struct tm_memo *m, struct tm_entry *e)
{
	unsigned char h[TM_HDR_LEN], r[TM_REC_HDR + TM_END_LEN];
	uint64_t off = TM_HDR_LEN, total[3] = { 0, 0, 0 };
	struct stat st;
	ssize_t n;
	int fd, rc = -EBADMSG;

	fd = open(m->entry, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		goto out;
	}
	n = pread_full(fd, h, sizeof(h), 0);
	if (n < 0) {
		rc = (int)n;
		goto out;
	}
	if (n != (ssize_t)sizeof(h) || memcmp(h, TM_MAGIC, TM_MAGIC_LEN) != 0 ||
	    h[TM_MAGIC_LEN] != TM_VERSION ||
	    memcmp(h + TM_MAGIC_LEN + 1, m->key, TM_KEY_LEN) != 0)
		goto out;
	for (;;) {
		n = pread_full(fd, r, TM_REC_HDR, off);
		if (n < 0) {
			rc = (int)n;
			goto out;
		}
		if (n != TM_REC_HDR)
			goto out;
		uint32_t len = get_le32(r + 1);
		if (r[0] == TM_REC_OUT || r[0] == TM_REC_ERR) {
			total[r[0]] += len;
			off += TM_REC_HDR + (uint64_t)len;
			continue;
		}
		if (r[0] != TM_REC_END || len < TM_END_LEN ||
		    off + TM_REC_HDR + len != (uint64_t)st.st_size)
			goto out;
		n = pread_full(fd, r + TM_REC_HDR, TM_END_LEN, off + TM_REC_HDR);
		if (n < 0) {
			rc = (int)n;
			goto out;
		}
		if (n != TM_END_LEN)
			goto out;
		uint32_t status = get_le32(r + TM_REC_HDR);
		if (status > 255 ||
		    get_le64(r + TM_REC_HDR + 4) != total[TM_REC_OUT] ||
		    get_le64(r + TM_REC_HDR + 12) != total[TM_REC_ERR])
			goto out;
		e->fd = fd;
		e->status = (int)status;
		return 0;
	}
out:
	close(fd);
	return rc;
}

/*
 * Replay a validated entry on our stdout and stderr, record by record, and
 * close it. Returns the stored exit status, or TM_EXIT_INTERNAL after
 * printing why the replay failed. A closed stdout kills us with SIGPIPE,
 * as it would kill the command.
 */
static int entry_replay(struct tm_memo *m, struct tm_entry *e)
{
	unsigned char *buf = malloc(TM_IO_BUF), r[TM_REC_HDR];
	uint64_t off = TM_HDR_LEN;
	int rc = TM_EXIT_INTERNAL;
	ssize_t n;

	if (!buf) {
		tm_msg("out of memory");
		goto out;
	}
	for (;;) {
		n = pread_full(e->fd, r, TM_REC_HDR, off);
		if (n != TM_REC_HDR)
			goto read_error;
		if (r[0] == TM_REC_END)
			break;
		int dest = r[0] == TM_REC_OUT ? STDOUT_FILENO : STDERR_FILENO;
		uint64_t left = get_le32(r + 1);
		off += TM_REC_HDR;
		while (left) {
			size_t want = left < TM_IO_BUF ? (size_t)left : TM_IO_BUF;
			n = pread_full(e->fd, buf, want, off);
			if (n != (ssize_t)want)
				goto read_error;
			int w = write_all(dest, buf, want);
			if (w < 0) {
				if (w != -EPIPE)
					tm_msg("writing %s: %s",
					       dest == STDOUT_FILENO ? "stdout" : "stderr",
					       strerror(-w));
				goto out;
			}
			off += want;
			left -= want;
		}
	}
	rc = e->status;
	goto out;
read_error:
	tm_msg("%s: cannot read the stored result: %s", m->entry,
	       n < 0 ? strerror((int)-n) : "truncated");
out:
	free(buf);
	close(e->fd);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Entries: capture                                                    */
/* ------------------------------------------------------------------ */

static void cap_close_record(struct tm_capture *c)
{
	if (c->rec_type == TM_REC_END)
		return;
	put_le32(c->buf + c->rec + 1, c->rec_len);
	c->rec_type = TM_REC_END;
}

/* Write out what buf holds (ending the open record); after a write
 * error, later data is dropped and c->err says why. */
static void cap_flush(struct tm_capture *c)
{
	cap_close_record(c);
	if (!c->err && c->len)
		c->err = write_all(c->fd, c->buf, c->len);
	c->len = 0;
}

/* Start an entry on fd (the header); the caller frees the result. */
static struct tm_capture *cap_new(int fd, const unsigned char key[TM_KEY_LEN])
{
	struct tm_capture *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->fd = fd;
	c->rec_type = TM_REC_END;
	memcpy(c->buf, TM_MAGIC, TM_MAGIC_LEN);
	c->buf[TM_MAGIC_LEN] = TM_VERSION;
	memcpy(c->buf + TM_MAGIC_LEN + 1, key, TM_KEY_LEN);
	c->len = TM_HDR_LEN;
	return c;
}

/* Append n bytes the command wrote to stream type (TM_REC_OUT/ERR). */
static void cap_put(struct tm_capture *c, int type, const char *p, size_t n)
{
	while (n) {
		if (c->rec_type != type || c->len == sizeof(c->buf)) {
			cap_close_record(c);
			if (sizeof(c->buf) - c->len < TM_REC_HDR + 1)
				cap_flush(c);
			c->rec = c->len;
			c->buf[c->len] = (unsigned char)type;
			c->len += TM_REC_HDR;
			c->rec_type = type;
			c->rec_len = 0;
		}
		size_t k = sizeof(c->buf) - c->len;
		if (k > n)
			k = n;
		memcpy(c->buf + c->len, p, k);
		c->len += k;
		c->rec_len += (uint32_t)k;
		c->total[type] += k;
		p += k;
		n -= k;
	}
}

/* Write the end record and everything pending; 0 or -errno. */
static int cap_finish(struct tm_capture *c, int status)
{
	unsigned char *p;

	cap_close_record(c);
	if (sizeof(c->buf) - c->len < TM_REC_HDR + TM_END_LEN)
		cap_flush(c);
	p = c->buf + c->len;
	p[0] = TM_REC_END;
	put_le32(p + 1, TM_END_LEN);
	put_le32(p + 5, (uint32_t)status);
	put_le64(p + 9, c->total[TM_REC_OUT]);
	put_le64(p + 17, c->total[TM_REC_ERR]);
	c->len += TM_REC_HDR + TM_END_LEN;
	cap_flush(c);
	return c->err;
}

/* ------------------------------------------------------------------ */
/* Running the command                                                 */
/* ------------------------------------------------------------------ */

static void on_signal(int sig)
{
	pid_t pid = (pid_t)tm_child;

	if ((sig == SIGTERM || sig == SIGHUP) && pid > 0)
		kill(pid, sig);
}

/*
 * From now on a child may run: SIGTERM and SIGHUP are passed on, SIGINT
 * and SIGQUIT wait for the child (the terminal sent them to it too), and
 * a closed stdout is an EPIPE we handle. A signal the caller ignored stays
 * ignored. The inherited dispositions were saved in m->saved.
 */
static void signals_for_child(struct tm_memo *m)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < TM_NSIG; i++) {
		int sig = tm_signals[i];
		if (sig == SIGALRM || m->saved[i].sa_handler == SIG_IGN)
			continue;
		sa.sa_handler = sig == SIGPIPE ? SIG_IGN : on_signal;
		sa.sa_flags = SA_RESTART;
		sigaction(sig, &sa, NULL);
	}
}

/*
 * Start the command: stdin from m->stdin_fd (unless a terminal), stdout
 * and stderr on out and err (-1: ours). Returns the child's PID, or
 * -errno: the command could not be started (already reported, the child
 * already reaped; -ENOENT: not found).
 */
static pid_t spawn(struct tm_memo *m, int out, int err)
{
	sigset_t block, old;
	pid_t parent = getpid(), pid;
	int ep[2], e = 0;
	ssize_t n;

	if (pipe2(ep, O_CLOEXEC) < 0) {
		tm_msg("pipe: %s", strerror(errno));
		return -EIO;
	}
	sigemptyset(&block);
	for (size_t i = 0; i < TM_NSIG; i++)
		sigaddset(&block, tm_signals[i]);
	sigprocmask(SIG_BLOCK, &block, &old);
	pid = fork();
	if (pid == 0) {
		for (size_t i = 0; i < TM_NSIG; i++)
			sigaction(tm_signals[i], &m->saved[i], NULL);
		sigprocmask(SIG_SETMASK, &old, NULL);
		prctl(PR_SET_PDEATHSIG, SIGTERM);
		if (getppid() != parent)
			_exit(TM_EXIT_INTERNAL);
		if ((m->stdin_fd > STDIN_FILENO &&
		     dup2(m->stdin_fd, STDIN_FILENO) < 0) ||
		    (out >= 0 && dup2(out, STDOUT_FILENO) < 0) ||
		    (err >= 0 && dup2(err, STDERR_FILENO) < 0)) {
			e = errno;
		} else {
			execvp(m->o.cmd[0], m->o.cmd);
			e = errno;
		}
		if (write(ep[1], &e, sizeof(e)) < 0) {
			/* the parent reports what it can */
		}
		_exit(e == ENOENT ? TM_EXIT_NOTFOUND : TM_EXIT_NOEXEC);
	}
	if (pid > 0)
		tm_child = (sig_atomic_t)pid;
	e = errno;
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(ep[1]);
	if (pid < 0) {
		close(ep[0]);
		tm_msg("fork: %s", strerror(e));
		return -EIO;
	}
	do
		n = read(ep[0], &e, sizeof(e));
	while (n < 0 && errno == EINTR);
	close(ep[0]);
	if (n == (ssize_t)sizeof(e)) {
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		tm_child = 0;
		tm_msg("%s: %s", m->o.cmd[0], strerror(e));
		return -e;
	}
	return pid;
}

/* The exit status the command had, from our own: the signal that killed
 * it kills us too (no core file of ours), else 128 + signal. */
static int exit_like(int status)
{
	struct rlimit no_core = { 0, 0 };
	sigset_t set;
	int sig;

	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (!WIFSIGNALED(status))
		return TM_EXIT_INTERNAL;
	sig = WTERMSIG(status);
	fflush(stdout);
	setrlimit(RLIMIT_CORE, &no_core);
	signal(sig, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, sig);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	raise(sig);
	return 128 + sig;
}

static int reap(pid_t pid)
{
	int status = 0;

	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	tm_child = 0;
	return status;
}

/* The exit status for a command that could not start (spawn's -errno). */
static int spawn_status(pid_t rc)
{
	if (rc == -ENOENT)
		return TM_EXIT_NOTFOUND;
	return rc == -EIO ? TM_EXIT_INTERNAL : TM_EXIT_NOEXEC;
}

/* Run the command with our own stdout and stderr, caching nothing;
 * returns the exit status to use. */
static int run_uncached(struct tm_memo *m)
{
	pid_t pid;

	signals_for_child(m);
	pid = spawn(m, -1, -1);
	if (pid < 0)
		return spawn_status(pid);
	return exit_like(reap(pid));
}

/* What became of a captured run. */
struct tm_run {
	int status;     /* wait status */
	bool cut;       /* a stream was closed early: the output is partial */
};

/*
 * Run the command with stdout and stderr on pipes, passing each chunk on
 * to ours and into c, until both streams end; then reap it. 0, or the
 * -errno of spawn() (the command did not start).
 */
static int run_captured(struct tm_memo *m, struct tm_capture *c,
			struct tm_run *r)
{
	struct pollfd pf[2];
	int p[2][2], dest[2] = { STDOUT_FILENO, STDERR_FILENO };
	char *buf = malloc(TM_PIPE_BUF);
	pid_t pid;

	r->cut = false;
	if (!buf || pipe2(p[0], O_CLOEXEC) < 0) {
		tm_msg("pipe: %s", strerror(buf ? errno : ENOMEM));
		free(buf);
		return -EIO;
	}
	if (pipe2(p[1], O_CLOEXEC) < 0) {
		tm_msg("pipe: %s", strerror(errno));
		close(p[0][0]);
		close(p[0][1]);
		free(buf);
		return -EIO;
	}
	signals_for_child(m);
	pid = spawn(m, p[0][1], p[1][1]);
	close(p[0][1]);
	close(p[1][1]);
	for (int i = 0; i < 2; i++)
		pf[i] = (struct pollfd){ .fd = p[i][0], .events = POLLIN };
	if (pid < 0) {
		close(p[0][0]);
		close(p[1][0]);
		free(buf);
		return (int)pid;
	}
	while (pf[0].fd >= 0 || pf[1].fd >= 0) {
		if (poll(pf, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			tm_msg("poll: %s", strerror(errno));
			r->cut = true;
			break;
		}
		for (int i = 0; i < 2; i++) {
			if (pf[i].fd < 0 || !pf[i].revents)
				continue;
			ssize_t n = read(pf[i].fd, buf, TM_PIPE_BUF);
			if (n < 0 && (errno == EINTR || errno == EAGAIN))
				continue;
			if (n > 0) {
				cap_put(c, i + 1, buf, (size_t)n);
				int w = write_all(dest[i], buf, (size_t)n);
				if (w == 0)
					continue;
				if (w != -EPIPE)
					tm_msg("writing %s: %s",
					       i ? "stderr" : "stdout",
					       strerror(-w));
				r->cut = true;
			}
			close(pf[i].fd);
			pf[i].fd = -1;
		}
	}
	for (int i = 0; i < 2; i++)
		if (pf[i].fd >= 0)
			close(pf[i].fd);
	free(buf);
	r->status = reap(pid);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Locking                                                             */
/* ------------------------------------------------------------------ */

static void on_alarm(int sig)
{
	(void)sig;
	tm_alarm = 1;
}

/* Arm (ns > 0) or disarm (ns == 0) the lock wait's timer. */
static void wait_timer(int64_t ns)
{
	struct itimerval it;

	memset(&it, 0, sizeof(it));
	if (ns > 0) {
		it.it_value.tv_sec = (time_t)(ns / 1000000000);
		it.it_value.tv_usec = (suseconds_t)(ns % 1000000000 / 1000);
		if (!it.it_value.tv_sec && !it.it_value.tv_usec)
			it.it_value.tv_usec = 1;
		it.it_interval.tv_usec = TM_WAIT_REPEAT_US;
	}
	setitimer(ITIMER_REAL, &it, NULL);
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/*
 * Take the key's lock, waiting at most m->o.wait_ns (0: no limit).
 * 1 with *fdp holding it, 0 when the wait timed out, -errno when the lock
 * file cannot be used.
 */
static int lock_acquire(struct tm_memo *m, int *fdp)
{
	int64_t deadline = m->o.wait_ns ? now_ns() + m->o.wait_ns : 0;
	struct sigaction sa, old;
	int fd, rc;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm;
	sigemptyset(&sa.sa_mask);
	for (;;) {
		fd = open(m->lock, O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
		if (fd < 0)
			return -errno;
		if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
			if (errno != EWOULDBLOCK) {
				rc = -errno;
				close(fd);
				return rc;
			}
			int64_t left = deadline ? deadline - now_ns() : 0;
			if (deadline && left <= 0) {
				close(fd);
				return 0;
			}
			tm_alarm = 0;
			sigaction(SIGALRM, &sa, &old);
			wait_timer(left);
			rc = tm_alarm ? -1 : flock(fd, LOCK_EX);
			int e = errno;
			wait_timer(0);
			sigaction(SIGALRM, &old, NULL);
			if (rc < 0) {
				close(fd);
				if (tm_alarm)
					return 0;
				if (e != EINTR)
					return -e;
				continue;
			}
		}
		if (same_file(fd, m->lock)) {
			*fdp = fd;
			return 1;
		}
		/* The holder removed it once done: take the current one. */
		close(fd);
	}
}

/* Drop the key's lock, removing the lock file while still holding it
 * (when it is still ours). */
static void lock_release(struct tm_memo *m, int fd)
{
	if (same_file(fd, m->lock))
		unlink(m->lock);
	close(fd);
}

/* Remove the lock file at path if nobody holds it. Returns true when
 * nobody held it (whether or not it still existed). */
static bool lock_reap(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool free_ = false;

	if (fd < 0)
		return errno == ENOENT;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
		free_ = true;
		if (same_file(fd, path))
			unlink(path);
	}
	close(fd);
	return free_;
}

/* True for a name starting with a key's 32 hex digits. */
static bool has_key_prefix(const char *name)
{
	for (int i = 0; i < 2 * TM_KEY_LEN; i++)
		if (!((name[i] >= '0' && name[i] <= '9') ||
		      (name[i] >= 'a' && name[i] <= 'f')))
			return false;
	return true;
}

/*
 * Remove what killed runs left in .tcmemo/tmp: lock files nobody holds,
 * and temporary entries whose key nobody holds (ours included: we hold
 * our key, so any temporary of it is a leftover). Best effort, silent.
 * Called by a lock holder before it computes.
 */
static void sweep(struct tm_memo *m)
{
	DIR *d = opendir(m->tmpdir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		const char *name = de->d_name, *rest = name + 2 * TM_KEY_LEN;
		size_t len = strlen(name);

		if (len < 2 * TM_KEY_LEN + 4 || !has_key_prefix(name))
			continue;
		if (strcmp(rest, ".lock") == 0) {
			if (strncmp(name, m->hex, 2 * TM_KEY_LEN) != 0) {
				char *p = xasprintf("%s/%s", m->tmpdir, name);
				lock_reap(p);
				free(p);
			}
			continue;
		}
		if (rest[0] != '.' || strcmp(name + len - 4, ".tmp") != 0)
			continue;
		char *lock = xasprintf("%s/%.*s.lock", m->tmpdir,
				       2 * TM_KEY_LEN, name);
		char *p = xasprintf("%s/%s", m->tmpdir, name);
		if (strncmp(name, m->hex, 2 * TM_KEY_LEN) == 0 ||
		    lock_reap(lock))
			unlink(p);
		free(p);
		free(lock);
	}
	closedir(d);
}

/* ------------------------------------------------------------------ */
/* A miss                                                              */
/* ------------------------------------------------------------------ */

/* Create a temporary entry for the key; fd, with *pathp malloc'ed, or
 * -errno. */
static int tmp_create(struct tm_memo *m, char **pathp)
{
	for (unsigned int i = 0; i < 1000; i++) {
		char *p = xasprintf("%s/%s.%ld.%u.tmp", m->tmpdir, m->hex,
				    (long)getpid(), i);
		int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd >= 0) {
			*pathp = p;
			return fd;
		}
		int e = errno;
		free(p);
		if (e != EEXIST)
			return -e;
	}
	return -EEXIST;
}

/* Give the closed temporary entry at tmp its ttl and tags, then rename it
 * onto the entry's name. 0, or -errno with *what naming the step. */
static int publish(struct tm_memo *m, const char *tmp, const char **what)
{
	*what = "setting the ttl";
	if (m->o.ttl &&
	    setxattr(tmp, TM_XATTR_TTL, m->o.ttl, strlen(m->o.ttl), 0) < 0)
		return -errno;
	*what = "setting the tags";
	if (m->o.tags && setxattr(tmp, TM_XATTR_TAGS, m->o.tags,
				  strlen(m->o.tags), 0) < 0)
		return -errno;
	*what = "creating its directory";
	if (mkdir(m->fandir, 0777) < 0 && errno != EEXIST)
		return -errno;
	*what = "renaming it into place";
	if (rename(tmp, m->entry) < 0)
		return -errno;
	return 0;
}

/*
 * Compute the result while holding the key's lock (lfd, released here):
 * run the command, capture, publish when cacheable. Returns the exit
 * status to use.
 */
static int compute(struct tm_memo *m, int lfd)
{
	struct tm_capture *c = NULL;
	struct tm_run r;
	const char *what = "writing it";
	char *tmp = NULL;
	bool published = false;
	int tfd, rc, status;

	sweep(m);
	tfd = tmp_create(m, &tmp);
	if (tfd < 0) {
		tm_msg("warning: cannot create a file in %s: %s; running uncached",
		       m->tmpdir, strerror(-tfd));
		lock_release(m, lfd);
		return run_uncached(m);
	}
	c = cap_new(tfd, m->key);
	if (!c) {
		tm_msg("out of memory");
		status = TM_EXIT_INTERNAL;
		goto out;
	}
	rc = run_captured(m, c, &r);
	if (rc < 0) {
		status = spawn_status(rc);
		goto out;
	}
	bool cacheable = WIFEXITED(r.status) && !r.cut &&
			 (WEXITSTATUS(r.status) == 0 || m->o.cache_failures);
	if (cacheable) {
		rc = cap_finish(c, WEXITSTATUS(r.status));
		if (close(tfd) < 0 && !rc)
			rc = -errno;
		tfd = -1;
		if (!rc)
			rc = publish(m, tmp, &what);
		if (rc < 0)
			tm_msg("warning: result not cached: %s: %s", what,
			       strerror(-rc));
		published = rc == 0;
	}
	status = r.status;
	lock_release(m, lfd);
	free(c);
	if (tfd >= 0)
		close(tfd);
	if (!published)
		unlink(tmp);
	free(tmp);
	return exit_like(status);
out:
	free(c);
	close(tfd);
	unlink(tmp);
	free(tmp);
	lock_release(m, lfd);
	return status;
}

/* ------------------------------------------------------------------ */
/* main                                                                */
/* ------------------------------------------------------------------ */

/* Look the key up, wait for a concurrent run, compute; returns the exit
 * status. */
static int memo_run(struct tm_memo *m)
{
	struct tm_entry e;
	int lfd = -1, rc;

	rc = entry_open(m, &e);
	if (rc == 0)
		return entry_replay(m, &e);
	rc = lock_acquire(m, &lfd);
	if (rc == 0) {
		tm_msg("warning: another run of this command is still going after %s; running uncached",
		       m->o.wait_str);
		return run_uncached(m);
	}
	if (rc < 0) {
		tm_msg("warning: cannot lock %s: %s; running uncached",
		       m->lock, strerror(-rc));
		return run_uncached(m);
	}
	rc = entry_open(m, &e);
	if (rc == 0) {
		lock_release(m, lfd);
		return entry_replay(m, &e);
	}
	if (rc == -EBADMSG) {
		tm_msg("warning: %s is damaged; running the command again",
		       m->entry);
		unlink(m->entry);
	} else if (rc != -ENOENT) {
		tm_msg("warning: cannot read %s: %s; running the command again",
		       m->entry, strerror(-rc));
	}
	return compute(m, lfd);
}

static void memo_free(struct tm_memo *m)
{
	free(m->o.tags);
	free(m->o.files);
	free(m->o.vars);
	free(m->base);
	free(m->tmpdir);
	free(m->fandir);
	free(m->entry);
	free(m->lock);
	if (m->stdin_fd > STDIN_FILENO)
		close(m->stdin_fd);
}

int main(int argc, char **argv)
{
	struct tm_memo m;
	int rc;

	memset(&m, 0, sizeof(m));
	m.stdin_fd = -1;
	fds_sanitize();
	for (size_t i = 0; i < TM_NSIG; i++)
		sigaction(tm_signals[i], NULL, &m.saved[i]);
	rc = opts_parse(argc, argv, &m.o);
	if (rc >= 0)
		goto out;
	rc = TM_EXIT_USAGE;
	if (check_mount(m.o.dir) < 0 || key_compute(&m) < 0)
		goto out;
	m.base = xasprintf("%s/" TM_DIR, m.o.dir);
	m.tmpdir = xasprintf("%s/tmp", m.base);
	m.fandir = xasprintf("%s/%.2s", m.base, m.hex);
	m.entry = xasprintf("%s/%s", m.fandir, m.hex);
	m.lock = xasprintf("%s/%s.lock", m.tmpdir, m.hex);
	if (m.o.print_path) {
		printf("%s\n", m.entry);
		rc = fflush(stdout) == 0 ? 0 : TM_EXIT_INTERNAL;
		goto out;
	}
	if (mkdir_once(m.base) < 0 || mkdir_once(m.tmpdir) < 0)
		goto out;
	rc = memo_run(&m);
out:
	memo_free(&m);
	return rc;
}
