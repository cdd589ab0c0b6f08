/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of content (engine/content.c): writes at offsets, O_APPEND and
 * O_TRUNC, when dirty state is visible (at once, to every handle) and when
 * it is published (the last writable handle's flush or release, fsync, a
 * truncate without a writer), reads, tc_read_span, setattr and truncation,
 * and many threads on shared keys never reading a torn value.
 *
 * Crashes are simulated with fork(): the child opens the store, does its
 * work and _exit()s without closing the engine; the parent reopens.
 */
#include "util.h"

#include <pthread.h>
#include <sys/wait.h>

/* ------------------------------------------------------------------ */
/* put / get / delete, writes at offsets                              */
/* ------------------------------------------------------------------ */

static void test_put_get_delete(void **state)
{
	struct tcu *fx = *state;
	char *got = NULL;
	size_t n;

	tcu_put(fx, "key", "first value");
	tcu_assert_value(fx, "key", "first value");
	/* Overwrite with a shorter value: nothing of the old one remains. */
	tcu_put(fx, "key", "2nd");
	tcu_assert_value(fx, "key", "2nd");
	/* Empty value. */
	tcu_put(fx, "empty", "");
	tcu_assert_value(fx, "empty", "");
	/* Binary value with NULs, larger than a page. */
	tcu_put_fill(fx, "bin", 100000, 7);
	tcu_assert_fill(fx, "bin", 100000, 7);

	assert_int_equal(tcu_del_at(fx->eng, TC_ROOT_INO, "key"), 0);
	assert_false(tcu_present(fx, "key"));
	assert_int_equal(tcu_get_at(fx->eng, TC_ROOT_INO, "key", &got, &n),
			 -ENOENT);
	assert_int_equal(tcu_del_at(fx->eng, TC_ROOT_INO, "key"), -ENOENT);
	/* The others are untouched. */
	tcu_assert_value(fx, "empty", "");
	tcu_assert_fill(fx, "bin", 100000, 7);
	/* The name can be reused. */
	tcu_put(fx, "key", "third");
	tcu_assert_value(fx, "key", "third");
}

static void test_write_offsets(void **state)
{
	struct tcu *fx = *state;
	struct tc_attr a;
	struct tc_file *f;
	char buf[16];

	/* A write past the end leaves a hole that reads as zeros. */
	assert_int_equal(tc_create(fx->eng, TC_ROOT_INO, "k", S_IFREG | 0644,
				   O_RDWR | O_CREAT, &fx->ctx, &a, &f),
			 0);
	assert_int_equal(tcu_write_all(f, "ab", 2, 0), 0);
	assert_int_equal(tcu_write_all(f, "yz", 2, 6), 0);
	assert_int_equal(tcu_write_all(f, "CD", 2, 1), 0); /* overlapping */
	assert_int_equal(tc_read(f, buf, sizeof(buf), 0), 8);
	assert_memory_equal(buf, "aCD\0\0\0yz", 8);
	assert_int_equal(tc_read(f, buf, sizeof(buf), 8), 0);
	assert_int_equal(tc_read(f, buf, 3, 6), 2);
	assert_int_equal(tc_release(f), 0);
	tcu_assert_value_at(fx, TC_ROOT_INO, "k", "aCD\0\0\0yz", 8);

	/* O_APPEND writes at the end whatever the offset. */
	assert_int_equal(tc_open(fx->eng, a.st.st_ino, O_WRONLY | O_APPEND, &f),
			 0);
	assert_int_equal(tc_write(f, "++", 2, 0), 2);
	assert_int_equal(tc_release(f), 0);
	tcu_assert_value_at(fx, TC_ROOT_INO, "k", "aCD\0\0\0yz++", 10);

	/* A read-only handle cannot write. */
	assert_int_equal(tc_open(fx->eng, a.st.st_ino, O_RDONLY, &f), 0);
	assert_int_equal(tc_write(f, "x", 1, 0), -EBADF);
	assert_int_equal(tc_release(f), 0);

	/* O_TRUNC empties it. */
	assert_int_equal(tc_open(fx->eng, a.st.st_ino, O_WRONLY | O_TRUNC, &f),
			 0);
	assert_int_equal(tc_release(f), 0);
	tcu_assert_value(fx, "k", "");
	tc_forget(fx->eng, a.st.st_ino, 1);

	/* Directories cannot be opened as files. */
	assert_int_equal(tc_open(fx->eng, TC_ROOT_INO, O_RDONLY, &f), -EISDIR);
}

/* ------------------------------------------------------------------ */
/* Dirty state and publishing                                         */
/* ------------------------------------------------------------------ */

static void test_dirty_visible_before_publish(void **state)
{
	struct tcu *fx = *state;
	static const char newval[] = "new content, longer than the old";
	struct tc_attr a, g;
	struct tc_file *early, *w, *r;
	char buf[64], href[33], h[33];
	ssize_t n;

	tcu_put(fx, "k", "old");
	tcu_put(fx, "ref", newval);
	tcu_hash(fx, "ref", href);
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "k", &a), 0);

	/* A reader opened before the write... */
	assert_int_equal(tc_open(fx->eng, a.st.st_ino, O_RDONLY, &early), 0);
	assert_int_equal(tc_open(fx->eng, a.st.st_ino, O_WRONLY | O_TRUNC, &w),
			 0);
	assert_int_equal(tcu_write_all(w, newval, strlen(newval), 0), 0);

	/* ...and one opened after it both see the unpublished write. */
	assert_int_equal(tc_open(fx->eng, a.st.st_ino, O_RDONLY, &r), 0);
	n = tc_read(r, buf, sizeof(buf), 0);
	assert_int_equal(n, strlen(newval));
	assert_memory_equal(buf, newval, n);
	n = tc_read(early, buf, sizeof(buf), 0);
	assert_int_equal(n, strlen(newval));
	assert_memory_equal(buf, newval, n);
	assert_int_equal(tc_getattr(fx->eng, a.st.st_ino, &g), 0);
	assert_int_equal(g.st.st_size, strlen(newval));
	tcu_assert_value(fx, "k", newval);
	/* No zero-copy span while there are unpublished writes. */
	{
		struct tc_span sp;

		assert_int_equal(tc_read_span(r, 0, 1, &sp), -EAGAIN);
	}

	/* Flush of the last writable handle publishes. */
	assert_int_equal(tc_flush(w), 0);
	tcu_hash(fx, "k", h);
	assert_string_equal(h, href);
	assert_int_equal(tc_release(w), 0);
	assert_int_equal(tc_release(r), 0);
	assert_int_equal(tc_release(early), 0);
	tc_forget(fx->eng, a.st.st_ino, 1);

	tcu_reopen(fx);
	tcu_assert_value(fx, "k", newval);
}

/* Child: put k="before", then two writable handles write "two writers";
 * the first is flushed and released; with @p release_last the second is
 * released too. Then crash. */
static void two_writers_child(struct tcu *fx, bool release_last)
{
	struct tc_engine *eng;
	struct tc_attr a;
	struct tc_file *w1, *w2;

	if (tc_engine_open(&fx->cfg, &eng))
		_exit(10);
	if (tcu_put_at(eng, &fx->ctx, TC_ROOT_INO, "k", "before", 6))
		_exit(11);
	if (tc_lookup(eng, TC_ROOT_INO, "k", &a) ||
	    tc_open(eng, a.st.st_ino, O_WRONLY | O_TRUNC, &w1) ||
	    tc_open(eng, a.st.st_ino, O_WRONLY, &w2))
		_exit(12);
	if (tcu_write_all(w1, "two ", 4, 0) ||
	    tcu_write_all(w2, "writers", 7, 4))
		_exit(13);
	/* Not the last writable handle: neither publishes. */
	if (tc_flush(w1) || tc_release(w1))
		_exit(14);
	if (release_last && tc_release(w2))
		_exit(15);
	_exit(0); /* crash */
}

static void run_child(struct tcu *fx, bool release_last)
{
	pid_t pid;
	int status;

	tc_engine_close(fx->eng);
	fx->eng = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0)
		two_writers_child(fx, release_last);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	tcu_open(fx);
}

static void test_publish_at_last_release(void **state)
{
	struct tcu *fx = *state;

	run_child(fx, false);
	tcu_assert_value(fx, "k", "before");
	assert_int_equal(tc_unlink(fx->eng, TC_ROOT_INO, "k"), 0);
	run_child(fx, true);
	tcu_assert_value(fx, "k", "two writers");
}

/* Content of more than inline_max (64 KiB by default): a blob file. */
#define BLOB_LEN (256 * 1024)

/* fsync publishes at once, durably; without unpublished writes it makes
 * the published blob durable. */
static void test_fsync_publishes(void **state)
{
	struct tcu *fx = *state;
	/* static: the engine may outlive this frame if an assert fails */
	static struct tcu_faults flt;
	char h[33], want[33], *buf = malloc(BLOB_LEN);
	struct tc_attr a;
	struct tc_file *w;

	assert_non_null(buf);
	tcu_use_faults(fx, &flt);
	tcu_put(fx, "k", "v1");
	tcu_hash(fx, "k", h);
	tcu_xxh_hex("v1", 2, want);
	assert_string_equal(h, want);

	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "k", &a), 0);
	assert_int_equal(tc_open(fx->eng, a.st.st_ino, O_WRONLY | O_TRUNC, &w),
			 0);
	tcu_fill(buf, BLOB_LEN, 1);
	assert_int_equal(tcu_write_all(w, buf, BLOB_LEN, 0), 0);
	tcu_hash(fx, "k", h); /* the published content: still v1 */
	assert_string_equal(h, want);
	flt.fsyncs = 0;
	assert_int_equal(tc_fsync(w, false), 0);
	tcu_fill_hex(BLOB_LEN, 1, want);
	tcu_hash(fx, "k", h);
	assert_string_equal(h, want);
	assert_true(flt.fsyncs >= 1); /* the blob, made durable */

	flt.fsyncs = 0;
	assert_int_equal(tc_fsync(w, true), 0);
	assert_true(flt.fsyncs >= 1);
	assert_int_equal(tc_release(w), 0);
	tc_forget(fx->eng, a.st.st_ino, 1);
	tcu_hash(fx, "k", h);
	assert_string_equal(h, want);
	free(buf);
	tcu_drop_faults(fx);
	tcu_open(fx);
	tcu_assert_fill(fx, "k", BLOB_LEN, 1);
}

/* A handle's published content is readable without copying: through a
 * descriptor when it is in a blob file, straight from the RAM item when it
 * is in RAM (held while the span is, even if the entry goes); -EAGAIN at
 * the end. Every span counts in read_bytes. */
static void test_read_span(void **state)
{
	struct tcu *fx = *state;
	char *got = malloc(BLOB_LEN), *want = malloc(BLOB_LEN);
	struct tc_attr a;
	struct tc_file *f;
	struct tc_span sp;
	uint64_t before;

	assert_non_null(got);
	assert_non_null(want);
	fx->cfg.max_ram_item = 1024; /* the large one is read from disk */
	tcu_reopen(fx);
	tcu_put_fill(fx, "big", BLOB_LEN, 1);
	tcu_put(fx, "small", "s1");
	tcu_put(fx, "empty", "");

	before = tcu_stat(fx->eng, "read_bytes");
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "big", &a), 0);
	assert_int_equal(tc_open(fx->eng, a.st.st_ino, O_RDONLY, &f), 0);
	assert_int_equal(tc_read_span(f, 0, 2 * BLOB_LEN, &sp), 0);
	assert_true(sp.fd >= 0);
	assert_int_equal(sp.pos, 0);
	assert_int_equal(sp.len, BLOB_LEN); /* clipped at the end */
	assert_int_equal(pread(sp.fd, got, BLOB_LEN, 0), BLOB_LEN);
	tcu_fill(want, BLOB_LEN, 1);
	assert_memory_equal(got, want, BLOB_LEN);
	tc_span_done(&sp);
	assert_int_equal(tc_read_span(f, BLOB_LEN, 1, &sp), -EAGAIN);
	assert_int_equal(tc_release(f), 0);
	tc_forget(fx->eng, a.st.st_ino, 1);

	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "small", &a), 0);
	assert_int_equal(tc_open(fx->eng, a.st.st_ino, O_RDONLY, &f), 0);
	assert_int_equal(tc_read_span(f, 1, 100, &sp), 0); /* in RAM */
	assert_int_equal(sp.fd, -1);
	assert_int_equal(sp.len, 1);
	assert_memory_equal(sp.data, "1", 1);
	/* The entry and its RAM copy go; the span still holds the bytes. */
	assert_int_equal(tc_release(f), 0);
	tc_forget(fx->eng, a.st.st_ino, 1);
	assert_int_equal(tcu_del_at(fx->eng, TC_ROOT_INO, "small"), 0);
	tcu_flush_ram(fx);
	tcu_maintain(fx);
	assert_memory_equal(sp.data, "1", 1);
	tc_span_done(&sp);
	assert_int_equal(tcu_stat(fx->eng, "read_bytes") - before,
			 BLOB_LEN + 1);

	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "empty", &a), 0);
	assert_int_equal(tc_open(fx->eng, a.st.st_ino, O_RDONLY, &f), 0);
	assert_int_equal(tc_read_span(f, 0, 1, &sp), -EAGAIN);
	assert_int_equal(tc_release(f), 0);
	tc_forget(fx->eng, a.st.st_ino, 1);
	/* Not for a handle that cannot read. */
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "big", &a), 0);
	assert_int_equal(tc_open(fx->eng, a.st.st_ino, O_WRONLY, &f), 0);
	assert_int_equal(tc_read_span(f, 0, 1, &sp), -EBADF);
	assert_int_equal(tc_release(f), 0);
	tc_forget(fx->eng, a.st.st_ino, 1);
	free(got);
	free(want);
}

/* The kernel may keep its page cache when nothing was published since the
 * inode was last opened. */
static void test_keep_cache(void **state)
{
	struct tcu *fx = *state;
	struct tc_attr a;
	struct tc_file *f, *w;

	tcu_put(fx, "k", "v1");
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "k", &a), 0);
	assert_int_equal(tc_open(fx->eng, a.st.st_ino, O_RDONLY, &f), 0);
	assert_int_equal(tc_release(f), 0);
	assert_int_equal(tc_open(fx->eng, a.st.st_ino, O_RDONLY, &f), 0);
	assert_true(tc_file_keep_cache(f));
	assert_int_equal(tc_release(f), 0);

	assert_int_equal(tc_open(fx->eng, a.st.st_ino, O_WRONLY | O_TRUNC, &w),
			 0);
	assert_int_equal(tcu_write_all(w, "v2", 2, 0), 0);
	assert_int_equal(tc_release(w), 0);
	assert_int_equal(tc_open(fx->eng, a.st.st_ino, O_RDONLY, &f), 0);
	assert_false(tc_file_keep_cache(f));
	assert_int_equal(tc_release(f), 0);
	assert_int_equal(tc_open(fx->eng, a.st.st_ino, O_RDONLY, &f), 0);
	assert_true(tc_file_keep_cache(f));
	assert_int_equal(tc_release(f), 0);
	tc_forget(fx->eng, a.st.st_ino, 1);
}

static void test_handle_errors(void **state)
{
	struct tcu *fx = *state;
	struct tc_attr a;
	struct tc_file *f;
	char buf[4];

	assert_int_equal(tc_create(fx->eng, TC_ROOT_INO, "k", S_IFREG | 0644,
				   O_RDWR | O_CREAT, &fx->ctx, &a, &f),
			 0);
	assert_int_equal(tc_write(f, "x", 1, -1), -EINVAL);
	assert_int_equal(tc_read(f, buf, 1, -1), -EINVAL);
	/* Past disk_size (10 GiB by default): too big for the tier. */
	assert_int_equal(tc_write(f, "x", 1, (off_t)10 << 30), -EFBIG);
	assert_int_equal(tc_write(f, "ok", 2, 0), 2);
	assert_int_equal(tc_release(f), 0);
	tcu_assert_value(fx, "k", "ok");

	/* A write-only handle cannot read. */
	assert_int_equal(tc_open(fx->eng, a.st.st_ino, O_WRONLY, &f), 0);
	assert_int_equal(tc_read(f, buf, sizeof(buf), 0), -EBADF);
	assert_int_equal(tc_release(f), 0);
	tc_forget(fx->eng, a.st.st_ino, 1);

	/* Only regular files open. */
	assert_int_equal(tc_mknod(fx->eng, TC_ROOT_INO, "fifo", S_IFIFO | 0600, 0,
				  &fx->ctx, &a),
			 0);
	assert_int_equal(tc_open(fx->eng, a.st.st_ino, O_RDONLY, &f), -EINVAL);
	tc_forget(fx->eng, a.st.st_ino, 1);
	assert_int_equal(tc_symlink(fx->eng, TC_ROOT_INO, "ln", "k", &fx->ctx,
				    &a),
			 0);
	assert_int_equal(tc_open(fx->eng, a.st.st_ino, O_RDONLY, &f), -EINVAL);
	tc_forget(fx->eng, a.st.st_ino, 1);
	assert_int_equal(tc_open(fx->eng, UINT64_C(0x7ffffffffff), O_RDONLY,
				 &f),
			 -ENOENT);
	assert_int_equal(tc_release(NULL), 0);
}


/* ------------------------------------------------------------------ */
/* Threads                                                            */
/* ------------------------------------------------------------------ */

#define NTHREADS 4
#define NKEYS 8
#define OPS_PER_THREAD 2500
#define VAL_MAGIC 0x31564354u /* "TCV1" */

/* A self-describing value: the header says how long the whole value is
 * and which byte fills the rest, so any mix of two values, a prefix or a
 * stale tail is detected. */
struct val_hdr {
	uint32_t magic;
	uint32_t len;  /* whole value, header included */
	uint32_t fill; /* every byte after the header */
	uint32_t writer;
};

struct hammer {
	struct tcu *fx;
	int errors;     /* torn or unexpected results; atomic */
	char first[256]; /* first error message, under lock */
	pthread_mutex_t lock;
	long reads_ok, reads_empty, reads_absent, puts, deletes; /* atomic */
};

struct worker {
	struct hammer *h;
	int id;
	uint32_t rng;
};

static uint32_t rnd(struct worker *w)
{
	w->rng ^= w->rng << 13;
	w->rng ^= w->rng >> 17;
	w->rng ^= w->rng << 5;
	return w->rng;
}

static void report(struct hammer *h, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void report(struct hammer *h, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&h->lock);
	if (h->errors++ == 0) {
		va_start(ap, fmt);
		vsnprintf(h->first, sizeof(h->first), fmt, ap);
		va_end(ap);
	}
	pthread_mutex_unlock(&h->lock);
}

/* Check a value read back; @len 0 is an empty (just created) file. */
static bool value_ok(const unsigned char *buf, size_t len, char *why,
		     size_t wsize)
{
	struct val_hdr hdr;

	if (len == 0)
		return true;
	if (len < sizeof(hdr)) {
		snprintf(why, wsize, "short value: %zu bytes", len);
		return false;
	}
	memcpy(&hdr, buf, sizeof(hdr));
	if (hdr.magic != VAL_MAGIC || hdr.len != len) {
		snprintf(why, wsize, "header magic %08x len %u, read %zu",
			 hdr.magic, hdr.len, len);
		return false;
	}
	for (size_t i = sizeof(hdr); i < len; i++) {
		if (buf[i] != (unsigned char)hdr.fill) {
			snprintf(why, wsize,
				 "byte %zu of %zu is %02x, fill %02x (writer %u)",
				 i, len, buf[i], hdr.fill, hdr.writer);
			return false;
		}
	}
	return true;
}

static unsigned char *make_value(struct worker *w, size_t *len)
{
	struct val_hdr hdr;
	size_t n = sizeof(hdr) + rnd(w) % 20000;
	unsigned char *buf;

	if (rnd(w) % 16 == 0)
		n += 100000; /* now and then, one larger than a few pages */
	buf = malloc(n);
	if (!buf)
		return NULL;
	hdr.magic = VAL_MAGIC;
	hdr.len = (uint32_t)n;
	hdr.fill = rnd(w) & 0xff;
	hdr.writer = (uint32_t)w->id;
	memcpy(buf, &hdr, sizeof(hdr));
	memset(buf + sizeof(hdr), (int)hdr.fill, n - sizeof(hdr));
	*len = n;
	return buf;
}

static void do_get(struct worker *w, const char *key)
{
	struct hammer *h = w->h;
	struct tc_engine *eng = h->fx->eng;
	struct tc_attr a;
	struct tc_file *f;
	unsigned char *buf = NULL;
	size_t len = 0, cap = 0;
	char why[160];
	int rc;

	rc = tc_lookup(eng, TC_ROOT_INO, key, &a);
	if (rc == -ENOENT) {
		__atomic_add_fetch(&h->reads_absent, 1, __ATOMIC_RELAXED);
		return;
	}
	if (rc) {
		report(h, "lookup %s: %d", key, rc);
		return;
	}
	rc = tc_open(eng, a.st.st_ino, O_RDONLY, &f);
	if (rc == -ENOENT) {
		__atomic_add_fetch(&h->reads_absent, 1, __ATOMIC_RELAXED);
		tc_forget(eng, a.st.st_ino, 1);
		return;
	}
	if (rc) {
		report(h, "open %s: %d", key, rc);
		tc_forget(eng, a.st.st_ino, 1);
		return;
	}
	/* Read in 4 KiB pieces, as the kernel would. */
	for (;;) {
		ssize_t r;

		if (len + 4096 > cap) {
			cap = cap ? cap * 2 : 65536;
			buf = realloc(buf, cap);
			if (!buf)
				abort();
		}
		r = tc_read(f, buf + len, 4096, (off_t)len);
		if (r < 0) {
			report(h, "read %s at %zu: %zd", key, len, r);
			break;
		}
		if (r == 0)
			break;
		len += (size_t)r;
	}
	tc_release(f);
	tc_forget(eng, a.st.st_ino, 1);
	if (!value_ok(buf, len, why, sizeof(why)))
		report(h, "torn value under %s: %s", key, why);
	else if (len == 0)
		__atomic_add_fetch(&h->reads_empty, 1, __ATOMIC_RELAXED);
	else
		__atomic_add_fetch(&h->reads_ok, 1, __ATOMIC_RELAXED);
	free(buf);
}

/* Put by creating a new inode written in one call: it never has more
 * than one writer, so readers may see it empty or whole, nothing else. */
static void do_put_create(struct worker *w, const char *key)
{
	struct hammer *h = w->h;
	struct tc_engine *eng = h->fx->eng;
	struct tc_attr a;
	struct tc_file *f;
	unsigned char *val;
	size_t len;
	ssize_t n;
	int rc;

	rc = tc_create(eng, TC_ROOT_INO, key, S_IFREG | 0644,
		       O_WRONLY | O_CREAT, &h->fx->ctx, &a, &f);
	if (rc == -EEXIST) {
		rc = tc_unlink(eng, TC_ROOT_INO, key);
		if (rc && rc != -ENOENT)
			report(h, "unlink %s: %d", key, rc);
		return;
	}
	if (rc) {
		report(h, "create %s: %d", key, rc);
		return;
	}
	val = make_value(w, &len);
	n = tc_write(f, val, len, 0);
	if (n != (ssize_t)len)
		report(h, "write %s: %zd of %zu", key, n, len);
	rc = tc_release(f);
	if (rc)
		report(h, "release %s: %d", key, rc);
	tc_forget(eng, a.st.st_ino, 1);
	free(val);
	__atomic_add_fetch(&h->puts, 1, __ATOMIC_RELAXED);
}

/* Put by writing a private temporary name in pieces, publishing it, then
 * renaming it over the key (what tools do for atomic replacement). */
static void do_put_rename(struct worker *w, const char *key)
{
	struct hammer *h = w->h;
	struct tc_engine *eng = h->fx->eng;
	struct tc_attr a;
	struct tc_file *f;
	unsigned char *val;
	char tmp[32];
	size_t len, off;
	int rc;

	snprintf(tmp, sizeof(tmp), ".tmp.%d", w->id);
	rc = tc_create(eng, TC_ROOT_INO, tmp, S_IFREG | 0644,
		       O_WRONLY | O_CREAT | O_TRUNC, &h->fx->ctx, &a, &f);
	if (rc) {
		report(h, "create %s: %d", tmp, rc);
		return;
	}
	val = make_value(w, &len);
	for (off = 0; off < len; off += 4096) {
		size_t piece = len - off < 4096 ? len - off : 4096;

		rc = tcu_write_all(f, val + off, piece, (off_t)off);
		if (rc) {
			report(h, "write %s: %d", tmp, rc);
			break;
		}
	}
	rc = tc_release(f);
	if (rc)
		report(h, "release %s: %d", tmp, rc);
	tc_forget(eng, a.st.st_ino, 1);
	free(val);
	rc = tc_rename(eng, TC_ROOT_INO, tmp, TC_ROOT_INO, key, 0);
	if (rc)
		report(h, "rename %s -> %s: %d", tmp, key, rc);
	__atomic_add_fetch(&h->puts, 1, __ATOMIC_RELAXED);
}

static void do_delete(struct worker *w, const char *key)
{
	int rc = tc_unlink(w->h->fx->eng, TC_ROOT_INO, key);

	if (rc && rc != -ENOENT)
		report(w->h, "unlink %s: %d", key, rc);
	else if (rc == 0)
		__atomic_add_fetch(&w->h->deletes, 1, __ATOMIC_RELAXED);
}

static void *hammer_thread(void *arg)
{
	struct worker *w = arg;
	char key[16];

	for (int i = 0; i < OPS_PER_THREAD; i++) {
		uint32_t op = rnd(w) % 10;

		snprintf(key, sizeof(key), "key%u", rnd(w) % NKEYS);
		if (op < 5)
			do_get(w, key);
		else if (op < 7)
			do_put_create(w, key);
		else if (op < 9)
			do_put_rename(w, key);
		else
			do_delete(w, key);
		if (i % 500 == 0)
			tcu_advance(w->h->fx, TCU_SEC);
	}
	return NULL;
}

static void test_threads_no_torn_values(void **state)
{
	struct tcu *fx = *state;
	struct hammer h = { .fx = fx };
	struct worker w[NTHREADS];
	pthread_t th[NTHREADS];
	char key[16], why[160];

	/* A small RAM tier, so values move between tiers meanwhile. */
	fx->cfg.ram_size = 256 * 1024;
	fx->cfg.sync = TC_SYNC_NEVER;
	tcu_reopen(fx);
	pthread_mutex_init(&h.lock, NULL);
	for (int i = 0; i < NTHREADS; i++) {
		w[i].h = &h;
		w[i].id = i;
		w[i].rng = 0x9e3779b9u * (uint32_t)(i + 1);
		assert_int_equal(pthread_create(&th[i], NULL, hammer_thread,
						&w[i]),
				 0);
	}
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	pthread_mutex_destroy(&h.lock);
	print_message("hammer: %ld whole reads, %ld empty, %ld absent, "
		      "%ld puts, %ld deletes\n",
		      h.reads_ok, h.reads_empty, h.reads_absent, h.puts,
		      h.deletes);
	if (h.errors)
		fail_msg("%d errors; first: %s", h.errors, h.first);
	assert_true(h.reads_ok > 0);
	assert_true(h.puts > 0);

	/* What remains is whole, also after a reopen. */
	tcu_reopen(fx);
	for (int k = 0; k < NKEYS; k++) {
		char *got = NULL;
		size_t n = 0;
		int rc;

		snprintf(key, sizeof(key), "key%d", k);
		rc = tcu_get_at(fx->eng, TC_ROOT_INO, key, &got, &n);
		if (rc == -ENOENT)
			continue;
		assert_int_equal(rc, 0);
		if (!value_ok((unsigned char *)got, n, why, sizeof(why)))
			fail_msg("%s after reopen: %s", key, why);
		free(got);
	}
}
int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, tcu_setup, tcu_teardown)
		T(test_put_get_delete),
		T(test_write_offsets),
		T(test_dirty_visible_before_publish),
		T(test_publish_at_last_release),
		T(test_fsync_publishes),
		T(test_read_span),
		T(test_keep_cache),
		T(test_handle_errors),
		T(test_threads_no_torn_values),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
