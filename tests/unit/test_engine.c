/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the engine as a whole (engine/engine.c): the lifecycle
 * (open, close, reopen, the store lock), when dirty state is visible and
 * when it is published, concurrency (many threads on shared keys, no value
 * ever torn) and scale (100,000 entries).
 *
 * Crashes are simulated with fork(): the child opens the store, does its
 * work and _exit()s without closing the engine; the parent reopens.
 */
#include "util.h"

#include <pthread.h>
#include <sys/wait.h>

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
	/* No zero-copy descriptor while there are unpublished writes. */
	{
		int fd;

		assert_int_equal(tc_read_fd(r, &fd), -EAGAIN);
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

/* A child crashes after fsync, with more unpublished writes: the store has
 * exactly what was published. */
static void test_crash_after_fsync(void **state)
{
	struct tcu *fx = *state;
	pid_t pid;
	int status;

	tc_engine_close(fx->eng);
	fx->eng = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct tc_engine *eng;
		struct tc_attr a;
		struct tc_file *w;

		if (tc_engine_open(&fx->cfg, &eng))
			_exit(10);
		if (tcu_put_at(eng, &fx->ctx, TC_ROOT_INO, "k", "first", 5))
			_exit(11);
		if (tc_lookup(eng, TC_ROOT_INO, "k", &a) ||
		    tc_open(eng, a.st.st_ino, O_WRONLY | O_TRUNC, &w))
			_exit(12);
		if (tcu_write_all(w, "second", 6, 0) || tc_fsync(w, false))
			_exit(13);
		if (tcu_write_all(w, "THIRD!", 6, 0))
			_exit(14);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	tcu_open(fx);
	tcu_assert_value(fx, "k", "second");
}

/* ------------------------------------------------------------------ */
/* Lifecycle                                                          */
/* ------------------------------------------------------------------ */

static void test_reopen_persistence(void **state)
{
	struct tcu *fx = *state;
	uint64_t d, sub, f, ln, lnk, gone;
	struct tc_attr a;
	char buf[64], h[33], h2[33];

	d = tcu_mkdir_at(fx, TC_ROOT_INO, "dir");
	sub = tcu_mkdir_at(fx, d, "sub");
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, sub, "file", "payload",
				    7),
			 0);
	f = tcu_ino_at(fx->eng, sub, "file");
	assert_int_equal(tc_link(fx->eng, f, TC_ROOT_INO, "hard", &a), 0);
	tc_forget(fx->eng, f, 1);
	assert_int_equal(tc_symlink(fx->eng, d, "ln", "sub/file", &fx->ctx, &a),
			 0);
	ln = a.st.st_ino;
	tc_forget(fx->eng, ln, 1);
	assert_int_equal(tc_mknod(fx->eng, TC_ROOT_INO, "fifo", S_IFIFO | 0600,
				  &fx->ctx, &a),
			 0);
	tc_forget(fx->eng, a.st.st_ino, 1);
	assert_int_equal(tc_setxattr(fx->eng, f, "user.note", "kept", 4, 0), 0);
	assert_int_equal(tc_setxattr(fx->eng, f, TC_XATTR_PREFIX "tags",
				     "t1,t2", 5, 0),
			 0);
	assert_int_equal(tc_setxattr(fx->eng, f, TC_XATTR_PREFIX "ttl", "2h",
				     2, 0),
			 0);
	{
		struct stat st = { .st_mode = 0640 };

		assert_int_equal(tc_setattr(fx->eng, f, &st, TC_SET_MODE, NULL,
					    &a),
				 0);
	}
	tcu_put_fill(fx, "big", 300000, 11);
	tcu_hash(fx, "big", h);
	tcu_put(fx, "gone", "deleted before close");
	gone = tcu_ino_at(fx->eng, TC_ROOT_INO, "gone");
	assert_int_equal(tc_unlink(fx->eng, TC_ROOT_INO, "gone"), 0);

	tcu_reopen(fx);

	assert_int_equal(tcu_ino_at(fx->eng, TC_ROOT_INO, "dir"), d);
	assert_int_equal(tcu_ino_at(fx->eng, d, "sub"), sub);
	assert_int_equal(tcu_ino_at(fx->eng, sub, "file"), f);
	assert_int_equal(tcu_ino_at(fx->eng, TC_ROOT_INO, "hard"), f);
	tcu_assert_value_at(fx, sub, "file", "payload", 7);
	tcu_assert_value(fx, "hard", "payload");
	assert_int_equal(tc_getattr(fx->eng, f, &a), 0);
	assert_int_equal(a.st.st_nlink, 2);
	assert_int_equal(a.st.st_mode & 07777, 0640);
	assert_int_equal(tc_readlink(fx->eng, ln, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "sub/file");
	assert_int_equal(tc_getxattr(fx->eng, f, "user.note", buf, sizeof(buf)),
			 4);
	assert_memory_equal(buf, "kept", 4);
	assert_int_equal(tc_getxattr(fx->eng, f, TC_XATTR_PREFIX "tags", buf,
				     sizeof(buf)),
			 5);
	assert_memory_equal(buf, "t1,t2", 5);
	assert_true(tcu_xattr_at(fx->eng, TC_ROOT_INO, "hard",
				 TC_XATTR_PREFIX "expires", buf,
				 sizeof(buf)) > 0);
	assert_int_equal(strtoll(buf, NULL, 10), TCU_EPOCH_NS / TCU_SEC + 7200);
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "fifo", &a), 0);
	assert_true(S_ISFIFO(a.st.st_mode));
	tc_forget(fx->eng, a.st.st_ino, 1);
	tcu_assert_fill(fx, "big", 300000, 11);
	tcu_hash(fx, "big", h2);
	assert_string_equal(h, h2);
	assert_false(tcu_present(fx, "gone"));

	/* Inode numbers are never reused, across a reopen too. */
	tcu_put(fx, "new", "n");
	lnk = tcu_ino_at(fx->eng, TC_ROOT_INO, "new");
	assert_int_not_equal(lnk, gone);
}

static void test_close_publishes_open_handles(void **state)
{
	struct tcu *fx = *state;
	struct tc_attr a;
	struct tc_file *w;

	assert_int_equal(tc_create(fx->eng, TC_ROOT_INO, "k", S_IFREG | 0644,
				   O_WRONLY | O_CREAT, &fx->ctx, &a, &w),
			 0);
	assert_int_equal(tcu_write_all(w, "unreleased", 10, 0), 0);
	/* Closing the engine publishes and frees w. */
	tc_engine_close(fx->eng);
	fx->eng = NULL;
	tcu_open(fx);
	tcu_assert_value(fx, "k", "unreleased");
	tc_engine_close(NULL); /* a no-op */
}

/* Child process: try to open the store; exit 0 on -EBUSY, 1 on success,
 * 2 on anything else. */
static int open_in_child(struct tcu *fx)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		struct tc_engine *eng = NULL;
		int rc = tc_engine_open(&fx->cfg, &eng);

		if (rc == -EBUSY)
			_exit(0);
		if (rc == 0)
			_exit(1); /* no close: leave the store alone */
		_exit(2);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void test_second_opener_refused(void **state)
{
	struct tcu *fx = *state;
	struct tc_engine *second = NULL;
	struct tc_file *w;
	struct tc_attr a;
	int rc;

	/* Live state the refused opener must not disturb: a published key,
	 * and a write in progress. */
	tcu_put(fx, "k", "value");
	assert_int_equal(tc_create(fx->eng, TC_ROOT_INO, "w", S_IFREG | 0644,
				   O_WRONLY | O_CREAT, &fx->ctx, &a, &w),
			 0);
	assert_int_equal(tcu_write_all(w, "in progress", 11, 0), 0);

	/* Another process is refused. */
	assert_int_equal(open_in_child(fx), 0);
	/* So is a second engine in this process. */
	rc = tc_engine_open(&fx->cfg, &second);
	if (rc == 0)
		tc_engine_close(second);
	assert_int_equal(rc, -EBUSY);
	assert_true(strlen(tc_engine_last_error()) > 0);

	/* The first engine is unaffected. */
	tcu_assert_value(fx, "k", "value");
	tcu_assert_value(fx, "w", "in progress");
	assert_int_equal(tc_release(w), 0);
	tc_forget(fx->eng, a.st.st_ino, 1);
	tcu_assert_value(fx, "w", "in progress");
	tcu_put(fx, "k2", "after");

	/* Once closed, the store can be opened again. */
	tc_engine_close(fx->eng);
	fx->eng = NULL;
	assert_int_equal(open_in_child(fx), 1);
	tcu_open(fx);
	tcu_assert_value(fx, "k2", "after");
}

static void test_open_errors(void **state)
{
	struct tcu *fx = *state;
	struct tc_config cfg;
	struct tc_engine *eng = NULL;
	char path[PATH_MAX];

	/* A store that is a file, not a directory. */
	tc_config_init(&cfg);
	snprintf(path, sizeof(path), "%s/file", fx->dir);
	{
		FILE *fp = fopen(path, "w");

		assert_non_null(fp);
		fclose(fp);
	}
	cfg.store = path;
	cfg.background = false;
	assert_true(tc_engine_open(&cfg, &eng) < 0);
	assert_null(eng);
	assert_true(strlen(tc_engine_last_error()) > 0);

	/* A corrupt index: -EPROTO. */
	tc_engine_close(fx->eng);
	fx->eng = NULL;
	{
		FILE *fp = fopen(tcu_store_path(fx, TCU_INDEX, NULL, path,
						sizeof(path)),
				 "w");

		assert_non_null(fp);
		fputs("this is not an SQLite database, not even close......"
		      "..............................................",
		      fp);
		fclose(fp);
	}
	tcu_store_path(fx, TCU_INDEX, NULL, path, sizeof(path));
	{
		char wal[PATH_MAX + 8];

		snprintf(wal, sizeof(wal), "%s-wal", path);
		unlink(wal);
		snprintf(wal, sizeof(wal), "%s-shm", path);
		unlink(wal);
	}
	assert_int_equal(tc_engine_open(&fx->cfg, &eng), -EPROTO);
	assert_true(strlen(tc_engine_last_error()) > 0);
}

static void test_store_created(void **state)
{
	struct tcu *fx = tcu_new();
	struct stat st;
	char path[PATH_MAX];

	(void)state;
	assert_non_null(fx);
	/* A store directory that does not exist yet: created, mode 0700. */
	snprintf(fx->store, sizeof(fx->store), "%s/new", fx->dir);
	tcu_open(fx);
	assert_int_equal(stat(fx->store, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_true(tcu_exists(tcu_store_path(fx, TCU_INDEX, NULL, path,
					      sizeof(path))));
	assert_true(tcu_exists(tcu_store_path(fx, TCU_TMP, NULL, path,
					      sizeof(path))));
	tcu_put(fx, "k", "v");
	tcu_assert_value(fx, "k", "v");
	*state = fx; /* teardown removes it */
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

/* ------------------------------------------------------------------ */
/* Scale                                                              */
/* ------------------------------------------------------------------ */

#define MANY 100000

static int count_cb(void *ctx, const char *name, const struct tc_attr *attr,
		    uint64_t off)
{
	uint64_t *n = ctx;

	(void)name;
	(void)attr;
	(void)off;
	(*n)++;
	return 0;
}

static void test_100k_entries(void **state)
{
	struct tcu *fx = *state;
	char name[32], val[32];
	struct tc_statfs sf;
	uint64_t d, n = 0;

	fx->cfg.sync = TC_SYNC_NEVER;
	tcu_reopen(fx);
	d = tcu_mkdir_at(fx, TC_ROOT_INO, "many");
	for (int i = 0; i < MANY; i++) {
		int len = snprintf(val, sizeof(val), "value-%d", i);
		int rc;

		snprintf(name, sizeof(name), "key%06d", i);
		rc = tcu_put_at(fx->eng, &fx->ctx, d, name, val, (size_t)len);
		if (rc)
			fail_msg("put %s: %s", name, strerror(-rc));
	}
	tc_statfs(fx->eng, &sf);
	assert_int_equal(sf.items, MANY);
	tcu_assert_stat(fx->eng, "disk_items", MANY);

	for (int i = 0; i < MANY; i++) {
		int len = snprintf(val, sizeof(val), "value-%d", i);

		snprintf(name, sizeof(name), "key%06d", i);
		tcu_assert_value_at(fx, d, name, val, (size_t)len);
	}
	assert_int_equal(tc_readdir(fx->eng, d, 0, false, count_cb, &n), 0);
	assert_int_equal(n, MANY + 2);

	/* And after a reopen. */
	tcu_reopen(fx);
	for (int i = 0; i < MANY; i += 97) {
		int len = snprintf(val, sizeof(val), "value-%d", i);

		snprintf(name, sizeof(name), "key%06d", i);
		tcu_assert_value_at(fx, d, name, val, (size_t)len);
	}
	tc_statfs(fx->eng, &sf);
	assert_int_equal(sf.items, MANY);
}

/* ------------------------------------------------------------------ */
/* Content without handles (tc_read_ino() & co., handleless_writes)   */
/* ------------------------------------------------------------------ */

/* One second of the injected clock. */
#define TC_NS_PER_S_TEST INT64_C(1000000000)

/* Reopen fx's engine with writes arriving without handles. */
static void hl_reopen(struct tcu *fx)
{
	fx->cfg.handleless_writes = true;
	fx->cfg.quiet_ns = TC_NS_PER_S_TEST;
	tcu_reopen(fx);
}

/* Inode of root/@p name with a lookup reference (the kernel's). */
static uint64_t hl_lookup(struct tcu *fx, const char *name)
{
	struct tc_attr a;

	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, name, &a), 0);
	return a.st.st_ino;
}

static void hl_assert_read(struct tcu *fx, uint64_t ino, const char *want)
{
	char buf[256];
	ssize_t n = tc_read_ino(fx->eng, ino, buf, sizeof(buf), 0);

	assert_int_equal(n, strlen(want));
	assert_memory_equal(buf, want, (size_t)n);
}

static void test_ino_write_then_rename_publishes(void **state)
{
	struct tcu *fx = *state;
	char before[33], after[33], ref[33];
	uint64_t ino;

	hl_reopen(fx);
	tcu_put(fx, "k", "old value");
	tcu_put(fx, "ref", "new value!");
	tcu_hash(fx, "ref", ref);
	ino = hl_lookup(fx, "k");
	tcu_hash(fx, "k", before);
	assert_int_equal(tc_write_ino(fx->eng, ino, "new value!", 10, 0), 10);
	/* Every reader sees the write at once; nothing is published yet. */
	hl_assert_read(fx, ino, "new value!");
	tcu_hash(fx, "k", after);
	assert_string_equal(after, before);
	/* A rename is coming: what was written is published first. */
	assert_int_equal(tc_publish_name(fx->eng, TC_ROOT_INO, "k"), 0);
	tcu_hash(fx, "k", after);
	assert_string_equal(after, ref);
	assert_int_equal(tc_publish_name(fx->eng, TC_ROOT_INO, "absent"), 0);
	assert_int_equal(tc_publish_name(fx->eng, TC_ROOT_INO, ""), 0);
	tc_forget(fx->eng, ino, 1);
	tcu_reopen(fx);
	tcu_assert_value(fx, "k", "new value!");
}

static void test_ino_truncate_waits_for_writes(void **state)
{
	struct tcu *fx = *state;
	char h0[33], h[33], ref[33];
	struct tc_attr a;
	struct stat st = { 0 };
	uint64_t ino;

	hl_reopen(fx);
	tcu_put(fx, "k", "the old content");
	tcu_put(fx, "ref", "fresh");
	tcu_hash(fx, "ref", ref);
	tcu_hash(fx, "k", h0);
	ino = hl_lookup(fx, "k");
	/* An O_TRUNC open of the kernel: a SETATTR of the size, no handle. */
	assert_int_equal(tc_setattr(fx->eng, ino, &st, TC_SET_SIZE, NULL, &a),
			 0);
	assert_int_equal(a.st.st_size, 0);
	tcu_maintain(fx);
	tcu_hash(fx, "k", h);
	assert_string_equal(h, h0); /* the empty file is not published */
	assert_int_equal(tc_write_ino(fx->eng, ino, "fresh", 5, 0), 5);
	tcu_advance(fx, TC_NS_PER_S_TEST / 2);
	tcu_maintain(fx); /* not quiet long enough */
	tcu_hash(fx, "k", h);
	assert_string_equal(h, h0);
	tcu_advance(fx, TC_NS_PER_S_TEST);
	tcu_maintain(fx); /* quiet: published whole */
	tcu_hash(fx, "k", h);
	assert_string_equal(h, ref);
	tc_forget(fx->eng, ino, 1);
}

static void test_ino_publish_and_fsync(void **state)
{
	struct tcu *fx = *state;
	char h[33], ref[33];
	uint64_t ino;

	hl_reopen(fx);
	tcu_put(fx, "k", "x");
	tcu_put(fx, "ref", "xyz");
	tcu_hash(fx, "ref", ref);
	ino = hl_lookup(fx, "k");
	assert_int_equal(tc_write_ino(fx->eng, ino, "yz", 2, 1), 2);
	assert_int_equal(tc_publish_ino(fx->eng, ino, true), 0);
	tcu_hash(fx, "k", h);
	assert_string_equal(h, ref);
	/* Nothing dirty: an fsync makes what was published durable. */
	assert_int_equal(tc_publish_ino(fx->eng, ino, true), 0);
	assert_int_equal(tc_publish_ino(fx->eng, ino, false), 0);
	/* Errors. */
	assert_int_equal(tc_publish_ino(fx->eng, TC_ROOT_INO, false), -EISDIR);
	assert_int_equal(tc_write_ino(fx->eng, ino, "a", 1, -1), -EINVAL);
	assert_int_equal(tc_write_ino(fx->eng, ino, "a", 1,
				      (off_t)fx->cfg.disk_size),
			 -EFBIG);
	assert_int_equal(tc_read_ino(fx->eng, 999999, h, 1, 0), -ENOENT);
	tc_forget(fx->eng, ino, 1);
}

static void test_ino_read_keeps_content_while_read(void **state)
{
	struct tcu *fx = *state;
	uint64_t ino;

	hl_reopen(fx);
	tcu_put(fx, "k", "cached value");
	ino = hl_lookup(fx, "k");
	tcu_flush_ram(fx);
	tc_engine_reset_stats(fx->eng);
	/* The first read loads the content (a get from disk), later reads
	 * use what the node keeps. */
	hl_assert_read(fx, ino, "cached value");
	hl_assert_read(fx, ino, "cached value");
	tcu_assert_stat(fx->eng, "gets", 1);
	tcu_assert_stat(fx->eng, "disk_hits", 1);
	tcu_maintain(fx); /* read since the last round: kept */
	hl_assert_read(fx, ino, "cached value");
	tcu_assert_stat(fx->eng, "gets", 1);
	tcu_maintain(fx);
	tcu_maintain(fx); /* not read for a round: let go */
	tcu_flush_ram(fx); /* nothing pins it now */
	tcu_assert_stat(fx->eng, "ram_items", 0);
	hl_assert_read(fx, ino, "cached value");
	tcu_assert_stat(fx->eng, "gets", 2);
	tcu_assert_stat(fx->eng, "disk_hits", 2);
	tc_forget(fx->eng, ino, 1);
}

static void test_ino_read_fd_of_large_item(void **state)
{
	struct tcu *fx = *state;
	enum { LEN = 100000 };
	char *want = malloc(LEN), *got = malloc(LEN);
	uint64_t ino;
	int fd;

	assert_non_null(want);
	assert_non_null(got);
	fx->cfg.max_ram_item = 4096; /* served from its blob file */
	fx->cfg.inline_max = 0;
	hl_reopen(fx);
	tcu_put_fill(fx, "big", LEN, 7);
	tcu_fill(want, LEN, 7);
	ino = hl_lookup(fx, "big");
	assert_int_equal(tc_read_fd_ino(fx->eng, ino, &fd), 0);
	assert_int_equal(pread(fd, got, LEN, 0), LEN);
	assert_memory_equal(got, want, LEN);
	/* The descriptor is the caller's: the node letting go of its copy
	 * does not close it. */
	tcu_maintain(fx);
	tcu_maintain(fx);
	assert_int_equal(pread(fd, got, 10, 5), 10);
	assert_memory_equal(got, want + 5, 10);
	close(fd);
	/* Unpublished writes: copy reads only. */
	assert_int_equal(tc_write_ino(fx->eng, ino, "x", 1, 0), 1);
	assert_int_equal(tc_read_fd_ino(fx->eng, ino, &fd), -EAGAIN);
	assert_int_equal(tc_read_ino(fx->eng, ino, got, 2, 0), 2);
	assert_int_equal(got[0], 'x');
	assert_int_equal(got[1], want[1]);
	/* RAM content: copy reads. */
	tcu_put(fx, "small", "s");
	{
		uint64_t s = hl_lookup(fx, "small");
		assert_int_equal(tc_read_fd_ino(fx->eng, s, &fd), -EAGAIN);
		tc_forget(fx->eng, s, 1);
	}
	tc_forget(fx->eng, ino, 1);
	free(want);
	free(got);
}

static void test_ino_removed_entry_stays_readable(void **state)
{
	struct tcu *fx = *state;
	uint64_t ino;

	hl_reopen(fx);
	tcu_put(fx, "k", "still here");
	ino = hl_lookup(fx, "k");
	hl_assert_read(fx, ino, "still here");
	assert_int_equal(tc_unlink(fx->eng, TC_ROOT_INO, "k"), 0);
	assert_false(tcu_present(fx, "k"));
	/* The kernel's reference keeps the inode; its content reloads after
	 * the node let go of it. */
	tcu_maintain(fx);
	tcu_maintain(fx);
	tcu_flush_ram(fx);
	hl_assert_read(fx, ino, "still here");
	tc_forget(fx->eng, ino, 1);
}

static void test_touch_slides_ttl(void **state)
{
	struct tcu *fx = *state;
	uint64_t ino;

	fx->cfg.ttl_ns = 10 * TC_NS_PER_S_TEST;
	fx->cfg.ttl_mode = TC_TTL_SLIDING;
	hl_reopen(fx);
	tcu_put(fx, "k", "v");
	ino = hl_lookup(fx, "k");
	tcu_advance(fx, 8 * TC_NS_PER_S_TEST);
	tc_touch(fx->eng, ino); /* a revalidation: the deadline moves */
	tc_touch(fx->eng, 424242); /* unknown: ignored */
	tc_forget(fx->eng, ino, 1);
	tcu_advance(fx, 8 * TC_NS_PER_S_TEST);
	assert_true(tcu_present(fx, "k"));
	tcu_advance(fx, 11 * TC_NS_PER_S_TEST);
	assert_false(tcu_present(fx, "k"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, tcu_setup, tcu_teardown)
		T(test_dirty_visible_before_publish),
		T(test_publish_at_last_release),
		T(test_crash_after_fsync),
		T(test_reopen_persistence),
		T(test_close_publishes_open_handles),
		T(test_second_opener_refused),
		T(test_open_errors),
		cmocka_unit_test_teardown(test_store_created, tcu_teardown),
		T(test_threads_no_torn_values),
		T(test_100k_entries),
		T(test_ino_write_then_rename_publishes),
		T(test_ino_truncate_waits_for_writes),
		T(test_ino_publish_and_fsync),
		T(test_ino_read_keeps_content_while_read),
		T(test_ino_read_fd_of_large_item),
		T(test_ino_removed_entry_stays_readable),
		T(test_touch_slides_ttl),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
