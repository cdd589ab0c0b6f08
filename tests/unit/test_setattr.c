/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of engine/setattr.c: setattr (truncation, mode, owner,
 * times) and fallocate in each mode, against a model of the file's bytes
 * and size.
 */
#include "util.h"

#include "engine_i.h"

#include <linux/falloc.h>

/* ------------------------------------------------------------------ */
/* setattr and truncation                                             */
/* ------------------------------------------------------------------ */

static void test_setattr(void **state)
{
	struct tcu *fx = *state;
	struct tc_attr a, out;
	struct stat st;
	uint64_t ino, dir;

	tcu_put(fx, "k", "0123456789");
	ino = tcu_ino_at(fx->eng, TC_ROOT_INO, "k");
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "k", &a), 0);

	memset(&st, 0, sizeof(st));
	st.st_mode = 0600;
	assert_int_equal(tc_setattr(fx->eng, ino, &st, TC_SET_MODE, NULL, &out),
			 0);
	assert_int_equal(out.st.st_mode & 07777, 0600);
	assert_true(S_ISREG(out.st.st_mode)); /* type kept */

	st.st_mtim.tv_sec = 1234567890;
	st.st_mtim.tv_nsec = 5;
	assert_int_equal(tc_setattr(fx->eng, ino, &st, TC_SET_MTIME, NULL,
				    &out),
			 0);
	assert_int_equal(out.st.st_mtim.tv_sec, 1234567890);

	/* Truncate, then extend: the extension reads as zeros. */
	st.st_size = 4;
	assert_int_equal(tc_setattr(fx->eng, ino, &st, TC_SET_SIZE, NULL, &out),
			 0);
	assert_int_equal(out.st.st_size, 4);
	tcu_assert_value(fx, "k", "0123");
	st.st_size = 6;
	assert_int_equal(tc_setattr(fx->eng, ino, &st, TC_SET_SIZE, NULL, &out),
			 0);
	tcu_assert_value_at(fx, TC_ROOT_INO, "k", "0123\0\0", 6);

	assert_int_equal(tc_getattr(fx->eng, ino, &out), 0);
	assert_int_equal(out.st.st_mode & 07777, 0600);
	assert_int_equal(out.st.st_size, 6);
	tc_forget(fx->eng, a.st.st_ino, 1);

	dir = tcu_mkdir_at(fx, TC_ROOT_INO, "d");
	st.st_size = 0;
	assert_int_equal(tc_setattr(fx->eng, dir, &st, TC_SET_SIZE, NULL, &out),
			 -EISDIR);
	assert_int_equal(tc_setattr(fx->eng, UINT64_C(0x7ffffffffff), &st,
				    TC_SET_MODE, NULL, &out),
			 -ENOENT);
}

/* A SETATTR writes its columns (mode, owner, times) to the row, which a
 * reopened engine reads back; on a file with no names left it changes
 * the open file's attributes only, and the row goes with its last
 * reference. */
static void test_setattr_rows(void **state)
{
	struct tcu *fx = *state;
	struct tc_attr a, out;
	struct tc_inode row;
	struct tc_file *f;
	struct stat st;
	uint64_t ino;

	tcu_put(fx, "k", "0123456789");
	ino = tcu_ino_at(fx->eng, TC_ROOT_INO, "k");
	memset(&st, 0, sizeof(st));
	st.st_mode = 0640;
	st.st_uid = 7;
	st.st_gid = 8;
	st.st_atim.tv_sec = 1000;
	st.st_mtim.tv_sec = 2000;
	st.st_ctim.tv_sec = 3000;
	assert_int_equal(tc_setattr(fx->eng, ino, &st,
				    TC_SET_MODE | TC_SET_UID | TC_SET_GID |
					TC_SET_ATIME | TC_SET_MTIME |
					TC_SET_CTIME,
				    NULL, &out),
			 0);
	tcu_reopen(fx);
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "k", &a), 0);
	assert_int_equal(a.st.st_mode, S_IFREG | 0640);
	assert_int_equal(a.st.st_uid, 7);
	assert_int_equal(a.st.st_gid, 8);
	assert_int_equal(a.st.st_atim.tv_sec, 1000);
	assert_int_equal(a.st.st_mtim.tv_sec, 2000);
	assert_int_equal(a.st.st_ctim.tv_sec, 3000);
	assert_int_equal(a.st.st_size, 10);

	/* Unlinked, still open: the handle sees the change, the row not. */
	assert_int_equal(tc_open(fx->eng, a.st.st_ino, O_RDONLY, &f), 0);
	assert_int_equal(tc_unlink(fx->eng, TC_ROOT_INO, "k"), 0);
	st.st_mode = 0600;
	assert_int_equal(tc_setattr(fx->eng, a.st.st_ino, &st, TC_SET_MODE,
				    NULL, &out),
			 0);
	assert_int_equal(out.st.st_mode, S_IFREG | 0600);
	assert_int_equal(tc_getattr(fx->eng, a.st.st_ino, &out), 0);
	assert_int_equal(out.st.st_mode, S_IFREG | 0600);
	tc_lock(fx->eng);
	assert_int_equal(tc_index_inode_get(&fx->eng->ix, a.st.st_ino, &row),
			 0);
	tc_unlock(fx->eng);
	assert_int_equal(row.mode, S_IFREG | 0640);
	assert_int_equal(row.nlink, 0);
	assert_int_equal(tc_release(f), 0);
	tc_forget(fx->eng, a.st.st_ino, 1);
	tc_lock(fx->eng);
	assert_int_equal(tc_index_inode_get(&fx->eng->ix, a.st.st_ino, &row),
			 -ENOENT);
	tc_unlock(fx->eng);
}

/* A truncation without a writable handle is published at once; with one,
 * by that handle's last close. */
static void test_truncate_publishing(void **state)
{
	struct tcu *fx = *state;
	struct stat st = { 0 };
	struct tc_attr a, out;
	struct tc_file *w;
	char h[33], want[33];

	tcu_put(fx, "k", "0123456789");
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "k", &a), 0);

	st.st_size = 4;
	assert_int_equal(tc_setattr(fx->eng, a.st.st_ino, &st, TC_SET_SIZE,
				    NULL, &out),
			 0);
	assert_int_equal(out.st.st_size, 4);
	tcu_hash(fx, "k", h);
	tcu_xxh_hex("0123", 4, want);
	assert_string_equal(h, want);

	/* A writer is open: visible at once, published at its close. */
	assert_int_equal(tc_open(fx->eng, a.st.st_ino, O_WRONLY, &w), 0);
	st.st_size = 2;
	assert_int_equal(tc_setattr(fx->eng, a.st.st_ino, &st, TC_SET_SIZE,
				    NULL, &out),
			 0);
	tcu_assert_value(fx, "k", "01");
	tcu_hash(fx, "k", h);
	assert_string_equal(h, want);
	assert_int_equal(tc_release(w), 0);
	tcu_hash(fx, "k", h);
	tcu_xxh_hex("01", 2, want);
	assert_string_equal(h, want);

	/* Through the handle (ftruncate): its flush publishes. */
	assert_int_equal(tc_open(fx->eng, a.st.st_ino, O_RDWR, &w), 0);
	st.st_size = 1;
	assert_int_equal(tc_setattr(fx->eng, a.st.st_ino, &st, TC_SET_SIZE, w,
				    &out),
			 0);
	tcu_hash(fx, "k", h);
	assert_string_equal(h, want);
	assert_int_equal(tc_flush(w), 0);
	tcu_hash(fx, "k", h);
	tcu_xxh_hex("0", 1, want);
	assert_string_equal(h, want);
	assert_int_equal(tc_release(w), 0);
	tc_forget(fx->eng, a.st.st_ino, 1);
	tcu_reopen(fx);
	tcu_assert_value(fx, "k", "0");
}

/* ------------------------------------------------------------------ */
/* fallocate                                                          */
/* ------------------------------------------------------------------ */

/* What a file holds, as the test expects it. */
struct fa_model {
	unsigned char *b;
	size_t size, cap;
};

static void fa_resize(struct fa_model *m, size_t size)
{
	if (size > m->cap) {
		m->b = realloc(m->b, size);
		assert_non_null(m->b);
		m->cap = size;
	}
	if (size > m->size)
		memset(m->b + m->size, 0, size - m->size);
	m->size = size;
}

/* The model of fallocate(2) on Linux for the supported modes. */
static void fa_apply(struct fa_model *m, int mode, size_t off, size_t len)
{
	size_t end = off + len;

	if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE) &&
	    off < m->size)
		memset(m->b + off, 0, (end < m->size ? end : m->size) - off);
	if (!(mode & FALLOC_FL_KEEP_SIZE) && end > m->size)
		fa_resize(m, end);
}

/* The content seen through @f (and its size) equals the model. */
static void fa_check(struct tcu *fx, struct tc_file *f,
		     const struct fa_model *m)
{
	struct tc_attr a;
	char *buf = NULL;
	size_t len = 0;

	assert_int_equal(tc_getattr(fx->eng, tc_file_ino(f), &a), 0);
	assert_int_equal(a.st.st_size, m->size);
	assert_int_equal(tcu_read_all(f, &buf, &len), 0);
	assert_int_equal(len, m->size);
	if (len)
		assert_memory_equal(buf, m->b, len);
	free(buf);
}

static void test_fallocate_modes(void **state)
{
	struct tcu *fx = *state;
	struct fa_model m = { 0 };
	struct tc_attr a;
	struct tc_file *f, *ro;
	char *buf = NULL;
	size_t len = 0;
	uint64_t ino;
	double puts;

	fa_resize(&m, 100);
	tcu_fill(m.b, 100, 3);
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, TC_ROOT_INO, "f", m.b,
				    100),
			 0);
	ino = tcu_ino_at(fx->eng, TC_ROOT_INO, "f");
	assert_int_equal(tc_open(fx->eng, ino, O_RDWR, &f), 0);

	/* Changes nothing: allocation inside the file, keep-size anywhere,
	 * punching past the end. Nothing is published either. */
	puts = tcu_stat(fx->eng, "puts");
	assert_int_equal(tc_fallocate(f, 0, 0, 100), 0);
	assert_int_equal(tc_fallocate(f, FALLOC_FL_KEEP_SIZE, 50, 4096), 0);
	assert_int_equal(tc_fallocate(f, FALLOC_FL_PUNCH_HOLE |
						 FALLOC_FL_KEEP_SIZE,
				      100, 50),
			 0);
	fa_check(fx, f, &m);
	assert_int_equal(tc_release(f), 0);
	tcu_assert_stat(fx->eng, "puts", puts);
	assert_int_equal(tc_open(fx->eng, ino, O_RDWR, &f), 0);

	/* Each mode, against the model. */
	static const struct {
		int mode;
		size_t off, len;
	} steps[] = {
		{ 0, 200, 50 },                                     /* grow */
		{ FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 10, 20 },
		{ FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 240, 100 },
		{ FALLOC_FL_ZERO_RANGE, 30, 10 },                   /* inside */
		{ FALLOC_FL_ZERO_RANGE, 245, 55 },                  /* grows */
		{ FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, 290, 100 },
		{ FALLOC_FL_ZERO_RANGE, 400, 1 },                   /* past */
		{ FALLOC_FL_KEEP_SIZE, 0, 1 << 20 },
	};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		assert_int_equal(tcu_write_all(f, "xyz", 3, 5), 0);
		memcpy(m.b + 5, "xyz", 3);
		assert_int_equal(tc_fallocate(f, steps[i].mode,
					      (off_t)steps[i].off,
					      (off_t)steps[i].len),
				 0);
		fa_apply(&m, steps[i].mode, steps[i].off, steps[i].len);
		fa_check(fx, f, &m);
	}
	assert_int_equal(m.size, 401);

	/* Errors, in vfs_fallocate()'s order; none changes anything. */
	assert_int_equal(tc_fallocate(f, 0, -1, 10), -EINVAL);
	assert_int_equal(tc_fallocate(f, 0, 0, 0), -EINVAL);
	assert_int_equal(tc_fallocate(f, FALLOC_FL_PUNCH_HOLE, 0, 10),
			 -EOPNOTSUPP);
	assert_int_equal(tc_fallocate(f, FALLOC_FL_PUNCH_HOLE |
						 FALLOC_FL_ZERO_RANGE |
						 FALLOC_FL_KEEP_SIZE,
				      0, 10),
			 -EOPNOTSUPP);
	assert_int_equal(tc_fallocate(f, FALLOC_FL_COLLAPSE_RANGE, 0, 4096),
			 -EOPNOTSUPP);
	assert_int_equal(tc_fallocate(f, FALLOC_FL_INSERT_RANGE, 0, 4096),
			 -EOPNOTSUPP);
	assert_int_equal(tc_fallocate(f, 0, INT64_MAX, 1), -EFBIG);
	assert_int_equal(tc_fallocate(f, 0, (off_t)fx->cfg.disk_size, 1),
			 -EFBIG);
	assert_int_equal(tc_fallocate(f, FALLOC_FL_KEEP_SIZE,
				      (off_t)fx->cfg.disk_size - 10, 11),
			 -EFBIG);
	assert_int_equal(tc_open(fx->eng, ino, O_RDONLY, &ro), 0);
	assert_int_equal(tc_fallocate(ro, 0, 0, 1000), -EBADF);
	assert_int_equal(tc_fallocate(ro, -1, 0, 1000), -EOPNOTSUPP);
	assert_int_equal(tc_release(ro), 0);
	fa_check(fx, f, &m);

	/* Published at release like a write, and there after a reopen. */
	assert_int_equal(tc_release(f), 0);
	tcu_assert_stat(fx->eng, "puts", puts + 1);
	tcu_reopen(fx);
	assert_int_equal(tcu_get_at(fx->eng, TC_ROOT_INO, "f", &buf, &len), 0);
	assert_int_equal(len, m.size);
	assert_memory_equal(buf, m.b, len);
	free(buf);

	/* A new empty file grows by allocation alone. */
	assert_int_equal(tc_create(fx->eng, TC_ROOT_INO, "g", 0644,
				   O_WRONLY | O_CREAT, &fx->ctx, &a, &f),
			 0);
	assert_int_equal(tc_fallocate(f, 0, 0, 8192), 0);
	assert_int_equal(tc_release(f), 0);
	tc_forget(fx->eng, a.st.st_ino, 1);
	assert_int_equal(tcu_get_at(fx->eng, TC_ROOT_INO, "g", &buf, &len), 0);
	assert_int_equal(len, 8192);
	for (size_t i = 0; i < len; i++)
		assert_int_equal(buf[i], 0);
	free(buf);
	free(m.b);
}

/* Random writes and fallocate calls on a file that crosses the size where
 * dirty state moves to a temporary file, checked after every step. */
static void test_fallocate_random(void **state)
{
	struct tcu *fx = *state;
	static const int modes[] = {
		0,
		FALLOC_FL_KEEP_SIZE,
		FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		FALLOC_FL_ZERO_RANGE,
		FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
	};
	const size_t span = 3 << 20; /* several chunks */
	struct fa_model m = { 0 };
	unsigned char *data = malloc(span);
	uint32_t x = 12345;
	struct tc_attr a;
	struct tc_file *f;
	char *buf = NULL;
	size_t len = 0;

	assert_non_null(data);
	tcu_fill(data, span, 9);
	assert_int_equal(tc_create(fx->eng, TC_ROOT_INO, "r", 0644,
				   O_RDWR | O_CREAT, &fx->ctx, &a, &f),
			 0);
	for (int step = 0; step < 60; step++) {
		size_t off, n;

		x = x * 1103515245u + 12345u;
		off = (x >> 4) % span;
		x = x * 1103515245u + 12345u;
		n = 1 + (x >> 4) % (span / 4);
		if (off + n > span)
			n = span - off;
		if (step % 3 == 0) {
			assert_int_equal(tcu_write_all(f, data + off, n,
						       (off_t)off),
					 0);
			if (off + n > m.size)
				fa_resize(&m, off + n);
			memcpy(m.b + off, data + off, n);
		} else {
			int mode = modes[(x >> 20) % 5];

			assert_int_equal(tc_fallocate(f, mode, (off_t)off,
						      (off_t)n),
					 0);
			fa_apply(&m, mode, off, n);
		}
		fa_check(fx, f, &m);
		if (step % 20 == 19) { /* publish, go on from there */
			assert_int_equal(tc_fsync(f, false), 0);
			fa_check(fx, f, &m);
		}
	}
	assert_int_equal(tc_release(f), 0);
	tc_forget(fx->eng, a.st.st_ino, 1);
	tcu_reopen(fx);
	assert_int_equal(tcu_get_at(fx->eng, TC_ROOT_INO, "r", &buf, &len), 0);
	assert_int_equal(len, m.size);
	assert_memory_equal(buf, m.b, len);
	free(buf);
	free(m.b);
	free(data);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, tcu_setup, tcu_teardown)
		T(test_setattr),
		T(test_setattr_rows),
		T(test_truncate_publishing),
		T(test_fallocate_modes),
		T(test_fallocate_random),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
