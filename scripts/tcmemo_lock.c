/* SPDX-License-Identifier: MIT */
/*
 * tcmemo_lock.c - one computation per key: the key's lock, and the sweep
 * of what killed runs leave.
 *
 * Each run that misses takes flock(2) on .tcmemo/tmp/<hex>.lock (the kernel
 * keeps flocks itself for a FUSE filesystem that does not implement them,
 * as tiercachefs), looks for the entry again once it holds the lock, and
 * computes only if it is still missing. The holder removes the lock file
 * when done, while still holding it, so lock files do not pile up; a lock
 * therefore counts only if, once taken, the path still names the file that
 * was locked, else it is taken again (the pattern that makes removing lock
 * files safe). Waiting is bounded: an interval timer interrupts flock(),
 * and keeps firing in case its first signal came before flock() slept.
 *
 * A run killed mid-way leaves its lock file and its temporary entry in
 * .tcmemo/tmp/. A lock holder sweeps that directory before it computes: a
 * lock file nobody holds goes, and so does a temporary entry whose key
 * nobody holds (only a key's holder writes its temporaries).
 *
 * flock does not reach across machines: mounts sharing a tier (SPEC §9)
 * each compute a key once.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "tcmemo.h"

/* Once the wait timer fired, it fires again this often (µs), in case the
 * first signal came before flock() started to sleep. */
#define TM_WAIT_REPEAT_US 100000

/* Set by the timer's handler: the lock wait timed out. */
static volatile sig_atomic_t tm_alarm;

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
int tm_lock_acquire(struct tm_memo *m, int *fdp)
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
		if (tm_same_file(fd, m->lock)) {
			*fdp = fd;
			return 1;
		}
		/* The holder removed it once done: take the current one. */
		close(fd);
	}
}

/* Drop the key's lock, removing the lock file while still holding it
 * (when it is still ours). */
void tm_lock_release(struct tm_memo *m, int fd)
{
	if (tm_same_file(fd, m->lock))
		unlink(m->lock);
	close(fd);
}

/* Remove the lock file at path if nobody holds it. Returns true when
 * nobody held it (whether or not it still existed). */
static bool lock_reap_one(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	bool free_ = false;

	if (fd < 0)
		return errno == ENOENT;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
		free_ = true;
		if (tm_same_file(fd, path))
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
void tm_lock_sweep(struct tm_memo *m)
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
				char *p =
				    tm_xasprintf("%s/%s", m->tmpdir, name);
				lock_reap_one(p);
				free(p);
			}
			continue;
		}
		if (rest[0] != '.' || strcmp(name + len - 4, ".tmp") != 0)
			continue;
		char *lock = tm_xasprintf("%s/%.*s.lock", m->tmpdir,
					  2 * TM_KEY_LEN, name);
		char *p = tm_xasprintf("%s/%s", m->tmpdir, name);
		if (strncmp(name, m->hex, 2 * TM_KEY_LEN) == 0 ||
		    lock_reap_one(lock))
			unlink(p);
		free(p);
		free(lock);
	}
	closedir(d);
}
