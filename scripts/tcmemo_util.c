/* SPDX-License-Identifier: MIT */
/*
 * tcmemo_util.c - the bottom floor of tcmemo: one-line messages, read and
 * write loops that finish their job (EINTR, short counts, descriptors
 * inherited non-blocking), little-endian fields of the entry format.
 * Everything above uses these; these use nothing of tcmemo's.
 */
#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tcmemo.h"

/* One line "tcmemo: ..." on stderr, in one write so that the lines of
 * concurrent runs do not mix. */
void tm_msg(const char *fmt, ...)
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

void tm_put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

void tm_put_le64(unsigned char *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

uint32_t tm_get_le32(const unsigned char *p)
{
	uint32_t v = 0;

	for (int i = 3; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

uint64_t tm_get_le64(const unsigned char *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

/* Sleep until fd is ready for events (a descriptor we inherited may be
 * non-blocking); 0 or -errno. */
int tm_wait_ready(int fd, short events)
{
	struct pollfd pf = {.fd = fd, .events = events};

	while (poll(&pf, 1, -1) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

/* Write all of buf; 0 or -errno. */
int tm_write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN && tm_wait_ready(fd, POLLOUT) == 0)
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
ssize_t tm_pread_full(int fd, void *buf, size_t n, uint64_t off)
{
	size_t got = 0;

	while (got < n) {
		ssize_t r =
		    pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
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
bool tm_same_file(int fd, const char *path)
{
	struct stat a, b;

	return fstat(fd, &a) == 0 && stat(path, &b) == 0 &&
	       a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

char *tm_xasprintf(const char *fmt, ...)
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
