/* SPDX-License-Identifier: MIT */
/*
 * tcmemo.c - run a command once per distinct input, replay it afterwards
 * (SPEC §10, tcmemo.1).
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
 * This file is the top floor (see tcmemo.h): the command line, the check
 * that MOUNT is a writable tiercachefs mount, and the flow of a run. The
 * key is computed (tcmemo_key.c) and the entry looked up; a hit is
 * replayed (tcmemo_entry.c). A miss takes the key's lock (tcmemo_lock.c)
 * and looks again: another run may have computed it meanwhile. Still
 * missing, the command runs with its output captured (tcmemo_run.c) into
 * a temporary entry. When it exited 0 (any status with --cache-failures),
 * was not killed by a signal, and its output was not cut, the temporary is
 * closed (which publishes its content), given its ttl and tags, and
 * renamed onto the entry's name: rename is atomic in tiercachefs, so a
 * reader never sees, and a tcmemo killed at any moment never leaves, a
 * partial entry. Waiting for the lock is bounded (-w, 10 minutes by
 * default): then the command runs uncached, with a warning.
 *
 * Exit status: the command's, unchanged, on a miss and on a hit. 2: bad
 * usage, or MOUNT missing, not a tiercachefs mount or read-only, or an
 * input of the key unreadable; nothing ran. 125: tcmemo failed while
 * running or replaying. 126/127: the command could not be executed / was
 * not found (as env(1)). A result that cannot be stored (mount full, a ttl
 * the mount refuses) is reported as a warning; the command's status
 * stands.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "config.h"
#include "tcmemo.h"
#include "tiercache.h"

/* Default bound on waiting for a concurrent run of the same key: longer
 * than a slow compile or download, short enough that a stuck run is
 * noticed the same day. */
#define TM_WAIT_DEFAULT "10m"

/* SPEC §5: at most 32 tags per entry. */
#define TM_TAGS_MAX 32

#define TM_DIR ".tcmemo"
#define TM_XATTR_TTL "user.tiercache.ttl"
#define TM_XATTR_TAGS "user.tiercache.tags"

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

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: tcmemo [OPTION]... [--] COMMAND [ARG]...\n"
		"Run COMMAND once per distinct input; afterwards replay its "
		"stdout, stderr\n"
		"and exit status from a tiercachefs mount without running it.\n"
		"\n"
		"  -C, --mount=DIR       a directory in a tiercachefs mount "
		"(default:\n"
		"                        $TCMEMO_DIR)\n"
		"  -t, --ttl=TTL         lifetime of the result: 30s, 10m, 1h, "
		"2d, never\n"
		"  -g, --tag=TAG[,TAG]   tag the result (repeatable)\n"
		"  -f, --file=FILE       the key includes FILE's contents "
		"(repeatable)\n"
		"  -e, --env=VAR         the key includes variable VAR "
		"(repeatable)\n"
		"  -w, --wait=DUR        wait at most DUR for a concurrent run "
		"of the same\n"
		"                        key, then run uncached "
		"(default " TM_WAIT_DEFAULT "; 0: no limit)\n"
		"      --cache-failures  cache a non-zero exit status too\n"
		"      --path            print where the result is stored and "
		"exit\n"
		"  -h, --help            show this help and exit\n"
		"  -V, --version         show the version and exit\n"
		"\n"
		"The key is the XXH3-128 of the arguments, the working "
		"directory, the -e\n"
		"variables, standard input unless it is a terminal, and the -f "
		"contents.\n"
		"Exit status: COMMAND's, on a run and on a replay; 2 bad usage "
		"or DIR;\n"
		"125 tcmemo failed; 126 COMMAND not executable; 127 COMMAND "
		"not found.\n"
		"See tcmemo(1).\n");
}

enum { OPT_CACHE_FAILURES = 256, OPT_PATH };

static const struct option tm_long_opts[] = {
    {"mount", required_argument, NULL, 'C'},
    {"ttl", required_argument, NULL, 't'},
    {"tag", required_argument, NULL, 'g'},
    {"file", required_argument, NULL, 'f'},
    {"env", required_argument, NULL, 'e'},
    {"wait", required_argument, NULL, 'w'},
    {"cache-failures", no_argument, NULL, OPT_CACHE_FAILURES},
    {"path", no_argument, NULL, OPT_PATH},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};

/* Append the tags of one -g value (a comma list) to o->tags; 0 or -1
 * after printing why. */
static int opts_add_tags(struct tm_opts *o, const char *arg, size_t *ntags)
{
	const char *p = arg;

	for (;;) {
		size_t len = strcspn(p, ",");
		if (!tc_tag_valid(p, len)) {
			tm_msg("-g: invalid tag '%.*s' (1 to 64 of A-Z a-z 0-9 "
			       "_ . : -)",
			       (int)len, p);
			return -1;
		}
		if (++*ntags > TM_TAGS_MAX) {
			tm_msg("-g: more than %d tags", TM_TAGS_MAX);
			return -1;
		}
		char *t = tm_xasprintf("%s%s%.*s", o->tags ? o->tags : "",
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
				tm_msg("-t: invalid ttl '%s' (a duration such "
				       "as 30s, 10m, 1h, 2d; none; never)",
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
				tm_msg("-e: invalid variable name '%s'",
				       optarg);
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
			tm_msg(
			    "option '%s' needs an argument (see tcmemo --help)",
			    argv[optind - 1]);
			return TM_EXIT_USAGE;
		default:
			if (optopt)
				tm_msg(
				    "unknown option '-%c' (see tcmemo --help)",
				    optopt);
			else
				tm_msg(
				    "unknown option '%s' (see tcmemo --help)",
				    argv[optind - 1]);
			return TM_EXIT_USAGE;
		}
	}
	if (tc_parse_duration(wait, &o->wait_ns) < 0) {
		tm_msg("-w: invalid duration '%s' (such as 30s, 10m, 1h; 0 for "
		       "no limit)",
		       wait);
		return TM_EXIT_USAGE;
	}
	o->wait_str = wait;
	if (optind >= argc) {
		tm_msg("no command given (usage: tcmemo [OPTION]... -- COMMAND "
		       "[ARG]...)");
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

/* Undo the octal escapes of a /proc/self/mountinfo field, in place. */
static void unescape_octal(char *s)
{
	char *w = s;

	for (char *r = s; *r; r++) {
		if (r[0] == '\\' && r[1] >= '0' && r[1] <= '3' && r[2] >= '0' &&
		    r[2] <= '7' && r[3] >= '0' && r[3] <= '7') {
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
		char *fields[6] = {0}, *save = NULL, *tok, *type = NULL;
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
	char *path = tm_xasprintf("%s/.stats", mp);
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
		tm_msg("%s: read-only tiercachefs mount (tcmemo stores its "
		       "results there)",
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

/* Create a temporary entry for the key; fd, with *pathp malloc'ed, or
 * -errno. */
static int tmp_create(struct tm_memo *m, char **pathp)
{
	for (unsigned int i = 0; i < 1000; i++) {
		char *p = tm_xasprintf("%s/%s.%ld.%u.tmp", m->tmpdir, m->hex,
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
	if (m->o.tags &&
	    setxattr(tmp, TM_XATTR_TAGS, m->o.tags, strlen(m->o.tags), 0) < 0)
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

	tm_lock_sweep(m);
	tfd = tmp_create(m, &tmp);
	if (tfd < 0) {
		tm_msg(
		    "warning: cannot create a file in %s: %s; running uncached",
		    m->tmpdir, strerror(-tfd));
		tm_lock_release(m, lfd);
		return tm_run_uncached(m);
	}
	c = tm_cap_new(tfd, m->key);
	if (!c) {
		tm_msg("out of memory");
		status = TM_EXIT_INTERNAL;
		goto out;
	}
	rc = tm_run_captured(m, c, &r);
	if (rc < 0) {
		status = tm_run_failed_status(rc);
		goto out;
	}
	bool cacheable = WIFEXITED(r.status) && !r.cut &&
			 (WEXITSTATUS(r.status) == 0 || m->o.cache_failures);
	if (cacheable) {
		rc = tm_cap_finish(c, WEXITSTATUS(r.status));
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
	tm_lock_release(m, lfd);
	free(c);
	if (tfd >= 0)
		close(tfd);
	if (!published)
		unlink(tmp);
	free(tmp);
	return tm_run_exit_like(status);
out:
	free(c);
	close(tfd);
	unlink(tmp);
	free(tmp);
	tm_lock_release(m, lfd);
	return status;
}

/* Look the key up, wait for a concurrent run, compute; returns the exit
 * status. */
static int memo_run(struct tm_memo *m)
{
	struct tm_entry e;
	int lfd = -1, rc;

	rc = tm_entry_open(m, &e);
	if (rc == 0)
		return tm_entry_replay(m, &e);
	rc = tm_lock_acquire(m, &lfd);
	if (rc == 0) {
		tm_msg("warning: another run of this command is still going "
		       "after %s; running uncached",
		       m->o.wait_str);
		return tm_run_uncached(m);
	}
	if (rc < 0) {
		tm_msg("warning: cannot lock %s: %s; running uncached", m->lock,
		       strerror(-rc));
		return tm_run_uncached(m);
	}
	rc = tm_entry_open(m, &e);
	if (rc == 0) {
		tm_lock_release(m, lfd);
		return tm_entry_replay(m, &e);
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
	tm_run_save_signals(&m);
	rc = opts_parse(argc, argv, &m.o);
	if (rc >= 0)
		goto out;
	rc = TM_EXIT_USAGE;
	if (check_mount(m.o.dir) < 0 || tm_key_compute(&m) < 0)
		goto out;
	m.base = tm_xasprintf("%s/" TM_DIR, m.o.dir);
	m.tmpdir = tm_xasprintf("%s/tmp", m.base);
	m.fandir = tm_xasprintf("%s/%.2s", m.base, m.hex);
	m.entry = tm_xasprintf("%s/%s", m.fandir, m.hex);
	m.lock = tm_xasprintf("%s/%s.lock", m.tmpdir, m.hex);
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
