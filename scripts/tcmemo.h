/* SPDX-License-Identifier: MIT */
/*
 * tcmemo.h - what the files of tcmemo share; private to scripts/tcmemo*.c.
 *
 * tcmemo is one program in floors, each file calling only the ones below
 * it (STYLE.md 18):
 *
 *   tcmemo.c          command line, mount check, the hit/miss flow, publish
 *   tcmemo_run.c      running the command: signals, pipes, its exit status
 *   tcmemo_key.c      the key            tcmemo_entry.c  the entry format
 *   tcmemo_lock.c     the per-key lock and the sweep of leftovers
 *   tcmemo_util.c     messages, I/O loops, little-endian fields
 *
 * tcmemo_run.c writes what the command prints through tcmemo_entry.c's
 * capture; the key, entry and lock files know nothing of each other.
 * Functions return 0 or -errno unless they say otherwise; those that print
 * their own message say so.
 */
#ifndef TCMEMO_H
#define TCMEMO_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Exit statuses of tcmemo's own (tcmemo.1, EXIT STATUS). */
#define TM_EXIT_USAGE 2	     /* bad usage or mount; nothing ran */
#define TM_EXIT_INTERNAL 125 /* tcmemo failed running or replaying */
#define TM_EXIT_NOEXEC 126   /* the command could not be executed */
#define TM_EXIT_NOTFOUND 127 /* the command was not found */

/* Unit of file I/O: the capture is written in pieces of this size, one
 * FUSE write each (libfuse's default max_write is 128 KiB); hashing and
 * replay read this much at a time. */
#define TM_IO_BUF (128 * 1024)

#define TM_KEY_LEN 16 /* XXH3-128 */

/* Signals whose disposition tcmemo changes (tcmemo_run.c lists them). */
#define TM_NSIG 6

/* The command line (tcmemo.c fills it; strings point into argv). */
struct tm_opts {
	const char *dir;    /* -C, else $TCMEMO_DIR */
	const char *ttl;    /* -t, NULL: the mount's rules decide */
	char *tags;	    /* -g, comma-joined; NULL: none (owned) */
	const char **files; /* -f, sorted, unique (array owned) */
	size_t nfiles;
	const char **vars; /* -e, sorted, unique (array owned) */
	size_t nvars;
	const char *wait_str; /* -w as given, for messages */
	int64_t wait_ns;      /* 0: no limit */
	bool cache_failures;
	bool print_path;
	char **cmd; /* COMMAND [ARG...], NULL-terminated (argv) */
};

/* One invocation: its options, key and paths. */
struct tm_memo {
	struct tm_opts o;
	int stdin_fd; /* the command's stdin on a miss; -1: tty */
	unsigned char key[TM_KEY_LEN];
	char hex[2 * TM_KEY_LEN + 1];
	char *base;			 /* MOUNT/.tcmemo */
	char *tmpdir;			 /* MOUNT/.tcmemo/tmp */
	char *fandir;			 /* MOUNT/.tcmemo/XX */
	char *entry;			 /* MOUNT/.tcmemo/XX/<hex> */
	char *lock;			 /* MOUNT/.tcmemo/tmp/<hex>.lock */
	struct sigaction saved[TM_NSIG]; /* dispositions we inherited */
};

/* A checked entry, open for replay. */
struct tm_entry {
	int fd;
	int status;
};

/* An entry being written (tcmemo_entry.c). */
struct tm_capture;

/* What became of a captured run. */
struct tm_run {
	int status; /* wait status */
	bool cut;   /* a stream was closed early: output partial */
};

/* -- tcmemo_util.c ------------------------------------------------------ */

/* One line "tcmemo: ..." on stderr, in one write (concurrent runs' lines
 * do not mix). */
void tm_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* asprintf that exits TM_EXIT_INTERNAL when out of memory; free() it. */
char *tm_xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void tm_put_le32(unsigned char *p, uint32_t v);
void tm_put_le64(unsigned char *p, uint64_t v);
uint32_t tm_get_le32(const unsigned char *p);
uint64_t tm_get_le64(const unsigned char *p);
int tm_wait_ready(int fd, short events);
int tm_write_all(int fd, const void *buf, size_t n);
ssize_t tm_pread_full(int fd, void *buf, size_t n, uint64_t off);
bool tm_same_file(int fd, const char *path);

/* -- tcmemo_key.c ------------------------------------------------------- */

int tm_key_compute(struct tm_memo *m);

/* -- tcmemo_entry.c ----------------------------------------------------- */

int tm_entry_open(struct tm_memo *m, struct tm_entry *e);
int tm_entry_replay(struct tm_memo *m, struct tm_entry *e);
struct tm_capture *tm_cap_new(int fd, const unsigned char key[TM_KEY_LEN]);
void tm_cap_put(struct tm_capture *c, int stream, const char *p, size_t n);
int tm_cap_finish(struct tm_capture *c, int status);

/* -- tcmemo_lock.c ------------------------------------------------------ */

int tm_lock_acquire(struct tm_memo *m, int *fdp);
void tm_lock_release(struct tm_memo *m, int fd);
void tm_lock_sweep(struct tm_memo *m);

/* -- tcmemo_run.c ------------------------------------------------------- */

void tm_run_save_signals(struct tm_memo *m);
int tm_run_uncached(struct tm_memo *m);
int tm_run_captured(struct tm_memo *m, struct tm_capture *c, struct tm_run *r);
int tm_run_failed_status(int rc);
int tm_run_exit_like(int status);

#endif
