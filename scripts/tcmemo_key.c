/* SPDX-License-Identifier: MIT */
/*
 * tcmemo_key.c - the key of a run (SPEC §10): XXH3-128 over a sequence of
 * fields, each framed as a tag byte, a 64-bit little-endian length and the
 * bytes, so the encoding is injective: argument boundaries and order
 * count, and no field can pass for another. In order:
 *
 *   'T' a domain string naming the format (a new format, new keys)
 *   'N' the argument count, then 'A' each argument
 *   'W' the physical working directory
 *   'V' the count of -e variables, then for each (sorted by name): 'n' its
 *       name and 'v' its value, or 'u' when unset (unset is not empty)
 *   'i' when standard input is a terminal (not read), else 'I' the
 *       XXH3-128 and length of everything it holds
 *   'F' the count of -f files, then for each (sorted by path): 'p' the
 *       path as given and 'c' the XXH3-128 and length of its contents
 *
 * Nothing else: an unnamed environment variable (PATH too) does not change
 * the key. Streams enter as their own digest because their length is not
 * known before they are read.
 *
 * Standard input must be read to be hashed, so this file also decides what
 * the command reads on a miss: a regular file is rewound to where it was;
 * anything else (a pipe, a socket, a device) is copied into an unnamed
 * spool in $TMPDIR while it is hashed.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "tcmemo.h"

/* The domain string opening every key: a new format gets new keys. */
#define TM_KEY_DOMAIN "tcmemo key 1"

/* Hash one field: tag, 64-bit length, bytes. */
static void key_field(XXH3_state_t *st, char tag, const void *p, size_t n)
{
	unsigned char h[9];

	h[0] = (unsigned char)tag;
	tm_put_le64(h + 1, n);
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
		if (n < 0 && errno == EAGAIN && tm_wait_ready(fd, POLLIN) == 0)
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
			rc = tm_write_all(copy, buf, (size_t)n);
			if (rc < 0)
				goto out;
		}
	}
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(st));
	memcpy(out, c.digest, 16);
	tm_put_le64(out + 16, total);
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
	tmpl = tm_xasprintf("%s/tcmemo-stdin-XXXXXX", dir);
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
			tm_msg("cannot store standard input: %s",
			       strerror(-spool));
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

	tm_put_le64((unsigned char *)n, m->o.nfiles);
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
int tm_key_compute(struct tm_memo *m)
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
	tm_put_le64(n, argc);
	key_field(st, 'N', n, sizeof(n));
	for (size_t i = 0; i < argc; i++)
		key_str(st, 'A', m->o.cmd[i]);

	cwd = getcwd(NULL, 0);
	if (!cwd) {
		tm_msg("cannot get the working directory: %s", strerror(errno));
		goto out;
	}
	key_str(st, 'W', cwd);

	tm_put_le64(n, m->o.nvars);
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
