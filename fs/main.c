/* SPDX-License-Identifier: MIT */
/*
 * main.c - startup and shutdown of the tiercachefs daemon, and --check.
 *
 * Mounting goes: parse the command line and config file (options.c); unless
 * in the foreground, fork at once; in the child create the FUSE session,
 * open the engine (which takes the store lock and starts its background
 * thread), install the signal handlers, mount, start the invalidation thread
 * (inval.c), and only then detach and tell the waiting parent that all went
 * well. So every startup error (bad option, store in use, corrupt index,
 * mount failure) is printed on the terminal as one line and becomes the
 * exit status of the command, which matters for mount(8) and fstab; and the
 * engine's threads and SQLite connection are created in the process that
 * uses them (fuse_daemonize() would fork after they exist, and its parent
 * always exits 0).
 *
 * Shutdown, on SIGTERM/SIGINT/SIGHUP or when the filesystem is unmounted:
 * the session loop returns, the kernel mount is removed, the invalidation
 * thread stops, and tc_engine_close() publishes all dirty state (also of
 * handles still open) and closes the index. Exit status 0.
 *
 * Logging: the engine's messages and libfuse's go through fuse_log(), to
 * stderr until the daemon detaches and to syslog afterwards.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "config.h"
#include "tcfs.h"

/* Longest log message; longer ones are cut. */
#define TCFS_LOG_MAX 1024

/* How long a store held by another process is waited for, in steps: the
 * previous daemon of an unmount closes it within milliseconds. */
#define TCFS_BUSY_WAIT_MS 500
#define TCFS_BUSY_STEP_MS 50

/* Idle worker threads the multi-threaded loop keeps: enough for bursts of
 * parallel requests without creating threads, few enough to stay cheap. */
#define TCFS_IDLE_THREADS 10

/*
 * Where log messages go: stderr until the daemon detaches, then syslog.
 * libfuse sometimes logs one line in pieces (its "unknown option(s)"
 * message), so pieces are joined here until the newline. The daemon's only
 * global: fuse_set_log_func() takes no context.
 */
static struct {
	atomic_bool syslog;
	pthread_mutex_t lock;
	char partial[TCFS_LOG_MAX]; /* protected by lock */
	size_t partial_len;	    /* protected by lock */
} tcfs_log = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void tcfs_log_line(enum fuse_log_level level, const char *m, int len)
{
	if (strncmp(m, "fuse: ", 6) == 0) {
		m += 6;
		len -= 6;
	}
	if (atomic_load(&tcfs_log.syslog))
		syslog((int)level, "%.*s", len, m);
	else if (level <= FUSE_LOG_WARNING)
		fprintf(stderr, "%s: %.*s\n", TCFS_NAME, len, m);
	else
		fprintf(stderr, "%.*s\n", len, m);
}

static void __attribute__((format(printf, 2, 0)))
tcfs_log_func(enum fuse_log_level level, const char *fmt, va_list ap)
{
	char msg[TCFS_LOG_MAX];
	size_t len, room;

	pthread_mutex_lock(&tcfs_log.lock);
	len = tcfs_log.partial_len;
	memcpy(msg, tcfs_log.partial, len);
	vsnprintf(msg + len, sizeof(msg) - len, fmt, ap);
	len = strlen(msg);
	room = sizeof(msg) - 1;
	if (len > 0 && msg[len - 1] != '\n' && len < room) {
		memcpy(tcfs_log.partial, msg, len);
		tcfs_log.partial_len = len;
		pthread_mutex_unlock(&tcfs_log.lock);
		return;
	}
	tcfs_log.partial_len = 0;
	if (len > 0 && msg[len - 1] == '\n')
		len--;
	tcfs_log_line(level, msg, (int)len);
	pthread_mutex_unlock(&tcfs_log.lock);
}

/* tc_log_fn: the engine's messages, to fuse_log(); held back while the
 * engine opens (see struct tcfs). */
static void __attribute__((format(printf, 3, 0)))
tcfs_engine_log(void *ctx, int level, const char *fmt, va_list ap)
{
	struct tcfs *fs = ctx;
	char msg[TCFS_LOG_MAX];
	char lvl;
	size_t len;

	if (level > fs->log_level)
		return;
	if (level < FUSE_LOG_EMERG || level > FUSE_LOG_DEBUG)
		level = FUSE_LOG_ERR;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	len = strlen(msg);
	if (len > 0 && msg[len - 1] == '\n')
		msg[--len] = '\0';
	pthread_mutex_lock(&fs->log_lock);
	if (fs->opening) {
		lvl = (char)('0' + level);
		tcfs_text_add(&fs->held, &lvl, 1);
		tcfs_text_add(&fs->held, msg, len);
		tcfs_text_add(&fs->held, "\n", 1);
		pthread_mutex_unlock(&fs->log_lock);
		return;
	}
	pthread_mutex_unlock(&fs->log_lock);
	fuse_log((enum fuse_log_level)level, "%s\n", msg);
}

/* End the opening phase: log the held messages (@p replay) or drop them. */
static void tcfs_log_opened(struct tcfs *fs, bool replay)
{
	struct tcfs_text held;
	char *line, *nl;

	pthread_mutex_lock(&fs->log_lock);
	fs->opening = false;
	held = fs->held;
	memset(&fs->held, 0, sizeof(fs->held));
	pthread_mutex_unlock(&fs->log_lock);
	for (line = held.buf; replay && line && *line; line = nl + 1) {
		nl = strchr(line, '\n');
		if (!nl)
			break;
		*nl = '\0';
		fuse_log((enum fuse_log_level)(line[0] - '0'), "%s\n",
			 line + 1);
	}
	tcfs_text_free(&held);
}

static void tcfs_state_init(struct tcfs *fs, int log_level)
{
	memset(fs, 0, sizeof(*fs));
	fs->log_level = log_level;
	pthread_mutex_init(&fs->log_lock, NULL);
	tcfs_snaps_init(&fs->snaps);
	tcfs_tags_init(&fs->tags);
}

/* What cache_mode= and revalidate= decide for the session. */
static void tcfs_state_mode(struct tcfs *fs, const struct tcfs_opts *o)
{
	fs->kernel = o->cache_mode == TCFS_CACHE_KERNEL;
	fs->flush_publishes = o->cfg.sync == TC_SYNC_CLOSE;
	fs->timeout_max_ns = TCFS_TIMEOUT_MAX_NS;
	if (fs->kernel && o->revalidate_ns > 0 &&
	    o->revalidate_ns < TCFS_TIMEOUT_MAX_NS)
		fs->timeout_max_ns = o->revalidate_ns;
	/* Other mounts change names without the kernel knowing: it must
	 * look them up again (and so revalidate them) at least as often as
	 * the shared tier is trusted. */
	fs->daemon_timeout_ns = TCFS_TIMEOUT_MAX_NS;
	if (o->cfg.shared_servers &&
	    o->cfg.shared_revalidate_ns < TCFS_TIMEOUT_MAX_NS) {
		fs->daemon_timeout_ns = o->cfg.shared_revalidate_ns;
		if (o->cfg.shared_revalidate_ns < fs->timeout_max_ns)
			fs->timeout_max_ns = o->cfg.shared_revalidate_ns;
	}
}

/* ------------------------------------------------------------------ */
/* --check                                                            */
/* ------------------------------------------------------------------ */

static void tcfs_check_line(const char *what, uint64_t n, uint64_t *total)
{
	printf("  %-16s %" PRIu64 "\n", what, n);
	*total += n;
}

/* tiercachefs --check [--fix] STORE. @return the exit status: 0 sound,
 * 1 problems (remaining), 2 the check could not run. */
static int tcfs_check(const struct tcfs_opts *o, struct tcfs *fs)
{
	struct tc_check_report r;
	uint64_t problems = 0;
	int rc;

	memset(&r, 0, sizeof(r));
	rc = tc_check(o->store, o->fix, NULL, &r, tcfs_engine_log, fs);
	if (rc == -EBUSY) {
		fprintf(stderr, "%s: %s: store in use (unmount it first)\n",
			TCFS_NAME, o->store);
		return 2;
	}
	if (rc < 0) {
		fprintf(stderr, "%s: %s: cannot check the store: %s\n",
			TCFS_NAME, o->store, strerror(-rc));
		return 2;
	}
	printf("%s: %" PRIu64 " entries, %" PRIu64 " blobs\n", o->store,
	       r.entries, r.blobs);
	tcfs_check_line("missing blobs", r.missing_blobs, &problems);
	tcfs_check_line("corrupt blobs", r.corrupt_blobs, &problems);
	tcfs_check_line("orphan blobs", r.orphan_blobs, &problems);
	tcfs_check_line("refcount drift", r.refcount_drift, &problems);
	tcfs_check_line("counter drift", r.counter_drift, &problems);
	{
		/* a crash's leftovers: reported, reclaimed by the next
		 * mount, not problems */
		uint64_t leftovers = 0;
		tcfs_check_line("temporary files", r.temp_files, &leftovers);
		tcfs_check_line("interrupted", r.pending_blobs, &leftovers);
	}
	if (o->fix)
		printf("  %-16s %" PRIu64 "\n", "fixed", r.fixed);
	if (rc == 0)
		printf(problems ? "store is sound after repair\n"
				: "store is sound\n");
	else if (o->fix)
		printf("problems remain\n");
	else
		printf("problems found: run 'tiercachefs --check --fix %s' "
		       "to repair\n",
		       o->store);
	return rc == 0 ? 0 : 1;
}

/* ------------------------------------------------------------------ */
/* Mounting                                                           */
/* ------------------------------------------------------------------ */

/*
 * Fork; the parent waits until the child reports that the mount is up
 * (one 0 byte on the pipe) and exits 0, or until the child exits, whose
 * status it passes on. Returns in the child only, with the pipe's write end.
 */
static int tcfs_fork(void)
{
	int p[2], st;
	ssize_t n;
	pid_t pid;
	char ok = 1;

	fflush(NULL);
	if (pipe2(p, O_CLOEXEC) < 0 || (pid = fork()) < 0) {
		fprintf(stderr, "%s: cannot start the daemon: %s\n", TCFS_NAME,
			strerror(errno));
		exit(1);
	}
	if (pid == 0) {
		close(p[0]);
		setsid();
		return p[1];
	}
	close(p[1]);
	do
		n = read(p[0], &ok, 1);
	while (n < 0 && errno == EINTR);
	if (n == 1 && ok == 0)
		_exit(0);
	if (waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st))
		_exit(WEXITSTATUS(st));
	_exit(1);
}

/* Become a daemon: stdio to /dev/null, logs to syslog, cwd /, and release
 * the waiting parent. */
static void tcfs_detach(int ready)
{
	int fd = open("/dev/null", O_RDWR);
	char ok = 0;

	openlog(TCFS_NAME, LOG_PID, LOG_DAEMON);
	atomic_store(&tcfs_log.syslog, true);
	if (chdir("/") < 0)
		fuse_log(FUSE_LOG_WARNING, "chdir /: %s\n", strerror(errno));
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	if (write(ready, &ok, 1) != 1)
		fuse_log(FUSE_LOG_WARNING, "cannot release the parent: %s\n",
			 strerror(errno));
	close(ready);
}

/* The one line for a failed tc_engine_open(). */
static void tcfs_open_error(const char *store, int rc)
{
	const char *why = tc_engine_last_error();
	const char *hint = "";

	if (rc == -EPROTO)
		hint = "; run 'tiercachefs --check STORE'";
	if (why && *why && strstr(why, "--check"))
		hint = "";
	if (why && *why) {
		fprintf(stderr, "%s: %s%s\n", TCFS_NAME, why, hint);
		return;
	}
	if (rc == -EBUSY)
		why = "store in use by another process";
	else if (rc == -EPROTO)
		why = "store index is corrupt";
	else if (rc == -EPROTONOSUPPORT)
		why = "store index has a newer format than this tiercachefs";
	else
		why = strerror(-rc);
	fprintf(stderr, "%s: %s: %s%s\n", TCFS_NAME, store, why, hint);
}

/* Open the engine, with its threads blocking the signals that end the
 * loop (they belong to the FUSE workers). A store still locked is retried
 * briefly: umount(8) returns before the previous daemon has closed the
 * store, so `umount; mount` would otherwise fail. @return 0 or -errno
 * (printed). */
static int tcfs_engine_start(struct tcfs *fs, struct tcfs_opts *o)
{
	sigset_t old;
	int rc, waited;

	o->cfg.log_fn = tcfs_engine_log;
	o->cfg.log_ctx = fs;
	o->cfg.log_level = fs->log_level;
	fs->opening = true;
	tcfs_block_signals(&old);
	for (waited = 0;; waited += TCFS_BUSY_STEP_MS) {
		rc = tc_engine_open(&o->cfg, &fs->eng);
		if (rc != -EBUSY || waited >= TCFS_BUSY_WAIT_MS)
			break;
		usleep(TCFS_BUSY_STEP_MS * 1000);
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	tcfs_log_opened(fs, rc == 0);
	if (rc < 0) {
		fs->eng = NULL;
		tcfs_open_error(o->store, rc);
	}
	return rc;
}

/* Undo the octal escapes (\\040 for a space) of a path in mountinfo. */
static void tcfs_unescape(char *s)
{
	char *d = s;

	for (; *s; s++, d++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' &&
		    s[2] <= '7' && s[3] >= '0' && s[3] <= '7') {
			*d = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 +
				    (s[3] - '0'));
			s += 3;
		} else {
			*d = *s;
		}
	}
	*d = '\0';
}

/* Find the readahead knob of our new mount at @mountpoint (resolved) for
 * tcfs_init(), which raises it: its device number comes from mountinfo (a
 * stat() of the mount would wait for the loop that is not running yet). */
static void tcfs_find_readahead(struct tcfs *fs, const char *mountpoint)
{
	char *line = NULL, dev[32] = "";
	size_t cap = 0;
	FILE *f;

	f = fopen("/proc/self/mountinfo", "re");
	while (f && getline(&line, &cap, f) > 0) {
		char d[32], mp[4096];

		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT ...: the last match is the
		 * newest mount there, ours. */
		if (sscanf(line, "%*s %*s %31s %*s %4095s", d, mp) != 2)
			continue;
		tcfs_unescape(mp);
		if (!strcmp(mp, mountpoint))
			memcpy(dev, d, sizeof(dev));
	}
	if (f)
		fclose(f);
	free(line);
	if (dev[0])
		snprintf(fs->readahead_knob, sizeof(fs->readahead_knob),
			 "/sys/class/bdi/%s/read_ahead_kb", dev);
}

static int tcfs_loop(struct tcfs *fs, const struct tcfs_opts *o)
{
	struct fuse_loop_config *lc;
	int rc;

	if (o->single_thread)
		return fuse_session_loop(fs->se);
	lc = fuse_loop_cfg_create();
	if (!lc)
		return -ENOMEM;
	fuse_loop_cfg_set_clone_fd(lc, 1);
	fuse_loop_cfg_set_idle_threads(lc, TCFS_IDLE_THREADS);
	rc = fuse_session_loop_mt(fs->se, lc);
	fuse_loop_cfg_destroy(lc);
	return rc;
}

/* Everything up to a running loop. @return 0, or -1 after printing why and
 * undoing what was done. */
static int tcfs_start(struct tcfs *fs, struct tcfs_opts *o,
		      struct fuse_args *args)
{
	fs->se = fuse_session_new(args, &tcfs_ops, sizeof(tcfs_ops), fs);
	if (!fs->se)
		return -1; /* libfuse said why */
	tcfs_inval_init(&fs->inval, fs->se);
	fs->inval.dirs = fs->kernel;
	if (tcfs_engine_start(fs, o) < 0)
		goto fail_session;
	if (fuse_set_signal_handlers(fs->se) < 0)
		goto fail_engine;
	if (fuse_session_mount(fs->se, o->mountpoint) < 0)
		goto fail_signals; /* libfuse said why */
	tcfs_find_readahead(fs, o->mountpoint);
	if (tcfs_proto_install(fs->se) < 0) {
		fprintf(stderr, "%s: out of memory\n", TCFS_NAME);
		goto fail_mount;
	}
	if (tcfs_inval_start(&fs->inval) < 0) {
		fprintf(stderr, "%s: cannot start a thread\n", TCFS_NAME);
		goto fail_mount;
	}
	tc_engine_set_inval(fs->eng, tcfs_inval_queue, &fs->inval);
	return 0;

fail_mount:
	fuse_session_unmount(fs->se);
fail_signals:
	fuse_remove_signal_handlers(fs->se);
fail_engine:
	(void)tc_engine_close(fs->eng);
	fs->eng = NULL;
fail_session:
	fuse_session_destroy(fs->se);
	tcfs_inval_destroy(&fs->inval);
	fs->se = NULL;
	return -1;
}

/* After the loop: unmount, publish, close. @return the error of a final
 * publish that failed (its writes are lost), or 0. */
static int tcfs_stop(struct tcfs *fs)
{
	bool stuck;
	int rc;

	fuse_remove_signal_handlers(fs->se);
	tc_engine_set_inval(fs->eng, NULL, NULL);
	fuse_session_unmount(fs->se);
	stuck = tcfs_inval_stop(&fs->inval) < 0;
	rc = tc_engine_close(fs->eng);
	fs->eng = NULL;
	if (rc < 0)
		fuse_log(FUSE_LOG_ERR,
			 "unmount: unpublished writes were lost: %s\n",
			 strerror(-rc));
	if (stuck)
		return rc; /* the thread still uses the session: leave both */
	fuse_session_destroy(fs->se);
	tcfs_inval_destroy(&fs->inval);
	return rc;
}

static int tcfs_mount(struct tcfs_opts *o, struct tcfs *fs)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	int ready = -1, rc;

	if (tcfs_opts_fuse_args(o, &args) < 0) {
		fprintf(stderr, "%s: out of memory\n", TCFS_NAME);
		return 1;
	}
	if (!o->foreground)
		ready = tcfs_fork();
	if (tcfs_start(fs, o, &args) < 0) {
		fuse_opt_free_args(&args);
		return 1;
	}
	fuse_opt_free_args(&args);
	if (ready >= 0)
		tcfs_detach(ready);
	fuse_log(FUSE_LOG_INFO, "mounted %s on %s\n", o->store, o->mountpoint);
	/* > 0 is the signal that ended the loop: a clean shutdown too. */
	rc = tcfs_loop(fs, o);
	if (rc < 0)
		fuse_log(FUSE_LOG_ERR, "session loop failed: %s\n",
			 strerror(-rc));
	if (tcfs_stop(fs) < 0)
		rc = -EIO;
	return rc < 0 ? 1 : 0;
}

int main(int argc, char **argv)
{
	struct tcfs_opts o;
	struct tcfs fs;
	int status;

	fuse_set_log_func(tcfs_log_func);
	if (tcfs_opts_parse(argc, argv, &o) < 0) {
		status = o.check ? 2 : 1;
		goto out;
	}
	if (o.help || o.version) {
		if (o.help)
			tcfs_opts_usage(stdout);
		else
			printf("%s %s (libfuse %s)\n", TCFS_NAME,
			       PACKAGE_VERSION, fuse_pkgversion());
		status = 0;
		goto out;
	}
	tcfs_state_init(&fs, o.debug ? TC_LOG_DEBUG : TC_LOG_INFO);
	tcfs_state_mode(&fs, &o);
	if (o.check)
		status = tcfs_check(&o, &fs);
	else
		status = tcfs_mount(&o, &fs);
	tcfs_snaps_destroy(&fs.snaps);
	tcfs_tags_destroy(&fs.tags);
	pthread_mutex_destroy(&fs.log_lock);
out:
	tcfs_opts_free(&o);
	return status;
}
