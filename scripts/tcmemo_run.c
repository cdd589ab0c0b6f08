/* SPDX-License-Identifier: MIT */
/*
 * tcmemo_run.c - running the command, and the exit status it leaves us.
 *
 * A captured run gives the command pipes for stdout and stderr; each chunk
 * that arrives is passed on to ours at once (a slow command shows its
 * progress) and appended to the capture. Should our stdout or stderr go
 * away (`tcmemo ... | head`), that pipe is closed, so the command sees
 * what it would have seen without us, and the run is marked cut: its
 * output is partial and must not be stored. An uncached run gives the
 * command our own descriptors. Either way its stdin is the one
 * tcmemo_key.c prepared.
 *
 * Signals. A command killed by a signal makes tcmemo kill itself with the
 * same signal (no core file of ours), so its parent sees what it would
 * have seen. Should tcmemo die, the command gets SIGTERM
 * (PR_SET_PDEATHSIG): nobody is left to collect its output. SIGTERM and
 * SIGHUP sent to tcmemo are passed on to the command; SIGINT and SIGQUIT
 * are not (a terminal sends them to the whole process group already), and
 * tcmemo outlives them until the command exits. A signal the caller
 * ignored stays ignored, in tcmemo and in the command, which gets every
 * disposition back as tcmemo inherited it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "tcmemo.h"

/* One read of a full pipe (Linux pipes hold 64 KiB by default). */
#define TM_PIPE_BUF (64 * 1024)

/* The signals tcmemo changes; the command gets them back as inherited. */
static const int tm_signals[] = {SIGPIPE, SIGINT, SIGQUIT,
				 SIGTERM, SIGHUP, SIGALRM};
_Static_assert(sizeof(tm_signals) / sizeof(tm_signals[0]) == TM_NSIG,
	       "TM_NSIG counts tm_signals");

/* PID of the running command, 0: for on_signal(). */
static volatile sig_atomic_t tm_child;

/* Save the dispositions tcmemo inherited, for the command. */
void tm_run_save_signals(struct tm_memo *m)
{
	for (size_t i = 0; i < TM_NSIG; i++)
		sigaction(tm_signals[i], NULL, &m->saved[i]);
}

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
int tm_run_exit_like(int status)
{
	struct rlimit no_core = {0, 0};
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
int tm_run_failed_status(pid_t rc)
{
	if (rc == -ENOENT)
		return TM_EXIT_NOTFOUND;
	return rc == -EIO ? TM_EXIT_INTERNAL : TM_EXIT_NOEXEC;
}

/* Run the command with our own stdout and stderr, caching nothing;
 * returns the exit status to use. */
int tm_run_uncached(struct tm_memo *m)
{
	pid_t pid;

	signals_for_child(m);
	pid = spawn(m, -1, -1);
	if (pid < 0)
		return tm_run_failed_status(pid);
	return tm_run_exit_like(reap(pid));
}

/*
 * Run the command with stdout and stderr on pipes, passing each chunk on
 * to ours and into c, until both streams end; then reap it. 0, or the
 * -errno of spawn() (the command did not start).
 */
int tm_run_captured(struct tm_memo *m, struct tm_capture *c, struct tm_run *r)
{
	struct pollfd pf[2];
	int p[2][2], dest[2] = {STDOUT_FILENO, STDERR_FILENO};
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
		pf[i] = (struct pollfd){.fd = p[i][0], .events = POLLIN};
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
				tm_cap_put(c, i + 1, buf, (size_t)n);
				int w = tm_write_all(dest[i], buf, (size_t)n);
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
