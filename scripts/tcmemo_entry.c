/* SPDX-License-Identifier: MIT */
/*
 * tcmemo_entry.c - the entry format: writing a result as the command runs
 * (the capture), checking a stored one whole, replaying it.
 *
 *   header   "TCMEMO", a NUL, format version 1, the 16-byte key (24 bytes)
 *   records  a type byte and a 32-bit little-endian length, then the
 *            bytes: 1 = stdout, 2 = stderr, in the order the command wrote
 *            them (adjacent chunks of one stream share a record)
 *   end      a type 0 record of 20 bytes: the exit status (32 bits), the
 *            stdout and stderr totals (64 bits each); it ends exactly at
 *            the end of the file
 *
 * The key in the header guards against a file renamed onto the wrong name.
 * The end record comes last, so no prefix of an entry parses: an entry cut
 * short (a crash of the machine before the daemon made it durable) or
 * otherwise damaged is a miss, computed again, never replayed in part. A
 * replay writes each record to the descriptor of its stream, so each
 * stream is exact and, on one terminal, they interleave as they did.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tcmemo.h"

#define TM_MAGIC "TCMEMO" /* + NUL + version byte */
#define TM_MAGIC_LEN 7
#define TM_VERSION 1
#define TM_HDR_LEN (TM_MAGIC_LEN + 1 + TM_KEY_LEN)
#define TM_REC_HDR 5  /* type byte + 32-bit length */
#define TM_END_LEN 20 /* status + stdout total + stderr total */
enum { TM_REC_END = 0, TM_REC_OUT = 1, TM_REC_ERR = 2 };

/* The entry being written: records are assembled in buf and written out
 * TM_IO_BUF at a time. */
struct tm_capture {
	int fd;
	int err;      /* first write error (-errno), then discard */
	size_t len;   /* bytes waiting in buf */
	size_t rec;   /* offset in buf of the open record */
	int rec_type; /* its type; TM_REC_END: no record open */
	uint32_t rec_len;
	uint64_t total[3]; /* bytes captured, by record type */
	unsigned char buf[TM_IO_BUF];
};

/*
 * Open m->entry and check it whole (header, every record header, the end
 * record at the end of the file). 0 with e filled (the caller replays or
 * closes e->fd), -ENOENT when there is no entry, -EBADMSG when it does
 * not parse, -errno when it cannot be read.
 */
int tm_entry_open(struct tm_memo *m, struct tm_entry *e)
{
	unsigned char h[TM_HDR_LEN], r[TM_REC_HDR + TM_END_LEN];
	uint64_t off = TM_HDR_LEN, total[3] = {0, 0, 0};
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
	n = tm_pread_full(fd, h, sizeof(h), 0);
	if (n < 0) {
		rc = (int)n;
		goto out;
	}
	if (n != (ssize_t)sizeof(h) || memcmp(h, TM_MAGIC, TM_MAGIC_LEN) != 0 ||
	    h[TM_MAGIC_LEN] != TM_VERSION ||
	    memcmp(h + TM_MAGIC_LEN + 1, m->key, TM_KEY_LEN) != 0)
		goto out;
	for (;;) {
		n = tm_pread_full(fd, r, TM_REC_HDR, off);
		if (n < 0) {
			rc = (int)n;
			goto out;
		}
		if (n != TM_REC_HDR)
			goto out;
		uint32_t len = tm_get_le32(r + 1);
		if (r[0] == TM_REC_OUT || r[0] == TM_REC_ERR) {
			total[r[0]] += len;
			off += TM_REC_HDR + (uint64_t)len;
			continue;
		}
		if (r[0] != TM_REC_END || len < TM_END_LEN ||
		    off + TM_REC_HDR + len != (uint64_t)st.st_size)
			goto out;
		n = tm_pread_full(fd, r + TM_REC_HDR, TM_END_LEN,
				  off + TM_REC_HDR);
		if (n < 0) {
			rc = (int)n;
			goto out;
		}
		if (n != TM_END_LEN)
			goto out;
		uint32_t status = tm_get_le32(r + TM_REC_HDR);
		if (status > 255 ||
		    tm_get_le64(r + TM_REC_HDR + 4) != total[TM_REC_OUT] ||
		    tm_get_le64(r + TM_REC_HDR + 12) != total[TM_REC_ERR])
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
int tm_entry_replay(struct tm_memo *m, struct tm_entry *e)
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
		n = tm_pread_full(e->fd, r, TM_REC_HDR, off);
		if (n != TM_REC_HDR)
			goto read_error;
		if (r[0] == TM_REC_END)
			break;
		int dest = r[0] == TM_REC_OUT ? STDOUT_FILENO : STDERR_FILENO;
		uint64_t left = tm_get_le32(r + 1);
		off += TM_REC_HDR;
		while (left) {
			size_t want =
			    left < TM_IO_BUF ? (size_t)left : TM_IO_BUF;
			n = tm_pread_full(e->fd, buf, want, off);
			if (n != (ssize_t)want)
				goto read_error;
			int w = tm_write_all(dest, buf, want);
			if (w < 0) {
				if (w != -EPIPE)
					tm_msg("writing %s: %s",
					       dest == STDOUT_FILENO ? "stdout"
								     : "stderr",
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

static void cap_close_record(struct tm_capture *c)
{
	if (c->rec_type == TM_REC_END)
		return;
	tm_put_le32(c->buf + c->rec + 1, c->rec_len);
	c->rec_type = TM_REC_END;
}

/* Write out what buf holds (ending the open record); after a write
 * error, later data is dropped and c->err says why. */
static void cap_flush(struct tm_capture *c)
{
	cap_close_record(c);
	if (!c->err && c->len)
		c->err = tm_write_all(c->fd, c->buf, c->len);
	c->len = 0;
}

/* Start an entry on fd (its header); NULL when out of memory. The caller
 * frees the result with free() and closes fd. */
struct tm_capture *tm_cap_new(int fd, const unsigned char key[TM_KEY_LEN])
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

/* Append n bytes the command wrote to stream 1 (stdout) or 2 (stderr):
 * the record types are the descriptor numbers. After a write error the
 * bytes are dropped; tm_cap_finish() reports it. */
void tm_cap_put(struct tm_capture *c, int stream, const char *p, size_t n)
{
	int type = stream == 1 ? TM_REC_OUT : TM_REC_ERR;

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

/* Write the end record (status 0..255) and everything pending; 0, or the
 * -errno of the first write that failed since tm_cap_new(). */
int tm_cap_finish(struct tm_capture *c, int status)
{
	unsigned char *p;

	cap_close_record(c);
	if (sizeof(c->buf) - c->len < TM_REC_HDR + TM_END_LEN)
		cap_flush(c);
	p = c->buf + c->len;
	p[0] = TM_REC_END;
	tm_put_le32(p + 1, TM_END_LEN);
	tm_put_le32(p + 5, (uint32_t)status);
	tm_put_le64(p + 9, c->total[TM_REC_OUT]);
	tm_put_le64(p + 17, c->total[TM_REC_ERR]);
	c->len += TM_REC_HDR + TM_END_LEN;
	cap_flush(c);
	return c->err;
}
