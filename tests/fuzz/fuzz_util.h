/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers of the fuzz targets (tests/fuzz/fuzz_*.c).
 *
 * Every target is one C file defining LLVMFuzzerInitialize() and
 * LLVMFuzzerTestOneInput(). It is linked twice: with libFuzzer under clang
 * (fuzz_<target>, run by tests/fuzz/run.sh), and with replay.c, a small main
 * that runs each file of the seed corpus once, so the normal gcc build
 * replays the corpora as regression tests (suite 'unit').
 *
 * A violated property ends the process through fz_fail(): a message naming
 * the check, then abort(), which libFuzzer records as a crash and saves the
 * input. Targets keep all their state per input or reset it cheaply, so a
 * saved input reproduces on its own.
 *
 * Everything is static inline: each target is its own executable.
 */
#ifndef TC_FUZZ_UTIL_H
#define TC_FUZZ_UTIL_H

#include <errno.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The libFuzzer entry points (declared here for -Wmissing-prototypes). */
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static inline void __attribute__((noreturn, format(printf, 4, 5)))
fz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fprintf(stderr, "\n==FUZZ CHECK FAILED== %s:%d: %s\n  ", file, line,
		cond);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

/** Fail (abort) with a printf-style message unless @p cond holds. */
#define FZ_CHECK(cond, ...)                                                  \
	do {                                                                 \
		if (!(cond))                                                 \
			fz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__);     \
	} while (0)

/** Fail unless the int-like @p got equals @p want (both printed). */
#define FZ_EQ(got, want, what)                                               \
	do {                                                                 \
		long long g_ = (long long)(got), w_ = (long long)(want);     \
		if (g_ != w_)                                                \
			fz_fail(__FILE__, __LINE__, #got " == " #want,       \
				"%s: got %lld (%s), expected %lld (%s)",     \
				(what), g_, g_ < 0 ? strerror((int)-g_) : "",\
				w_, w_ < 0 ? strerror((int)-w_) : "");       \
	} while (0)

/*
 * Known findings, not fixed yet: each has an id and an input in
 * tests/fuzz/crashers/. By default they fail like any other; with
 * TC_FUZZ_KNOWN=id[,id...] (or "all") the targets accept the engine's
 * current behaviour for those, so a fuzzing session can get past them.
 * Remove the id and its exception once the engine is fixed.
 */
static inline bool fz_known(const char *id)
{
	const char *env = getenv("TC_FUZZ_KNOWN");
	size_t len = strlen(id);

	if (!env)
		return false;
	for (const char *p = env; *p;) {
		size_t n = strcspn(p, ",");

		if ((n == 3 && !strncmp(p, "all", 3)) ||
		    (n == len && !strncmp(p, id, n)))
			return true;
		p += n + (p[n] == ',');
	}
	return false;
}

/* ------------------------------------------------------------------ */
/* Reading an input                                                   */
/* ------------------------------------------------------------------ */

/** A cursor over the fuzzer's bytes; reads past the end give zeros. */
struct fz_in {
	const uint8_t *p;
	size_t n;
};

static inline bool fz_more(const struct fz_in *in)
{
	return in->n > 0;
}

static inline uint8_t fz_u8(struct fz_in *in)
{
	uint8_t v;

	if (!in->n)
		return 0;
	v = *in->p++;
	in->n--;
	return v;
}

static inline uint16_t fz_u16(struct fz_in *in)
{
	uint16_t lo = fz_u8(in);

	return (uint16_t)(lo | (uint16_t)fz_u8(in) << 8);
}

/** Up to @p max bytes of the input (fewer at its end); *@p len is set. */
static inline const uint8_t *fz_bytes(struct fz_in *in, size_t max,
				      size_t *len)
{
	const uint8_t *p = in->p;

	*len = max < in->n ? max : in->n;
	in->p += *len;
	in->n -= *len;
	return p;
}

/* ------------------------------------------------------------------ */
/* Temporary directories                                              */
/* ------------------------------------------------------------------ */

/*
 * Parent of the temporary stores: $TC_FUZZ_TMPDIR, else /dev/shm (tmpfs: a
 * store per input costs no disk I/O), else /tmp.
 */
static inline const char *fz_tmp_parent(void)
{
	const char *env = getenv("TC_FUZZ_TMPDIR");

	if (env && *env)
		return env;
	if (access("/dev/shm", W_OK | X_OK) == 0)
		return "/dev/shm";
	return "/tmp";
}

/** mkdtemp() below fz_tmp_parent() into @p buf; aborts on failure. */
static inline void fz_mkdtemp(char *buf, size_t size, const char *tag)
{
	int n = snprintf(buf, size, "%s/tcfuzz-%s.XXXXXX", fz_tmp_parent(),
			 tag);

	FZ_CHECK(n > 0 && (size_t)n < size, "temporary path too long");
	FZ_CHECK(mkdtemp(buf) != NULL, "mkdtemp %s: %s", buf,
		 strerror(errno));
}

static inline int fz_rm_one(const char *path, const struct stat *st,
			    int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	remove(path);
	return 0;
}

/** Remove the directory tree @p dir. */
static inline void fz_rm_rf(const char *dir)
{
	nftw(dir, fz_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* ------------------------------------------------------------------ */
/* Growable byte buffers (model contents)                             */
/* ------------------------------------------------------------------ */

struct fz_buf {
	uint8_t *p;
	size_t len, cap;
};

static inline void fz_buf_reserve(struct fz_buf *b, size_t len)
{
	size_t cap;

	if (len <= b->cap)
		return;
	cap = b->cap ? b->cap : 64;
	while (cap < len)
		cap *= 2;
	b->p = realloc(b->p, cap);
	FZ_CHECK(b->p != NULL, "out of memory (%zu bytes)", cap);
	b->cap = cap;
}

/** Set the length to @p len, zero-filling what grows. */
static inline void fz_buf_resize(struct fz_buf *b, size_t len)
{
	fz_buf_reserve(b, len);
	if (len > b->len)
		memset(b->p + b->len, 0, len - b->len);
	b->len = len;
}

/** Write @p n bytes at @p off, zero-filling a hole before it. */
static inline void fz_buf_write(struct fz_buf *b, size_t off, const void *src,
				size_t n)
{
	if (off + n > b->len)
		fz_buf_resize(b, off + n);
	if (n)
		memcpy(b->p + off, src, n);
}

static inline void fz_buf_copy(struct fz_buf *dst, const struct fz_buf *src)
{
	fz_buf_reserve(dst, src->len);
	if (src->len)
		memcpy(dst->p, src->p, src->len);
	dst->len = src->len;
}

static inline void fz_buf_free(struct fz_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

#endif /* TC_FUZZ_UTIL_H */
