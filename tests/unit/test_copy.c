/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of copy_file_range inside the store (engine/copy.c), on 4 KiB
 * chunks: a whole copy shares every chunk (blob bytes and files do not
 * grow) and reads back equal; unaligned ranges, a copy out of a dirty
 * source, a copy within one file and a copy past the source's end give
 * exactly what a byte copy would; the destination stays whole when the
 * source is overwritten or removed before the destination is published.
 */
#include "util.h"

#define CH 4096

static int c_setup(void **state)
{
	struct tcu *fx = tcu_new();

	if (!fx)
		return -1;
	fx->cfg.chunk_size = CH;
	fx->cfg.inline_max = 0;
	if (tc_engine_open(&fx->cfg, &fx->eng) != 0) {
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

static int blob_files(struct tcu *fx)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/blobs", fx->store);
	return tcu_count_files(path);
}

/* Create (or truncate) @name, open for writing; its inode in *@ino. */
static struct tc_file *create(struct tcu *fx, const char *name, uint64_t *ino)
{
	struct tc_file *f;
	struct tc_attr a;
	int rc = tc_create(fx->eng, TC_ROOT_INO, name, 0644,
			   O_WRONLY | O_CREAT | O_TRUNC, &fx->ctx, &a, &f);

	if (rc == -EEXIST) {
		*ino = tcu_ino_at(fx->eng, TC_ROOT_INO, name);
		assert_int_equal(tc_open(fx->eng, *ino, O_WRONLY | O_TRUNC, &f),
				 0);
		return f;
	}
	assert_int_equal(rc, 0);
	*ino = a.st.st_ino;
	tc_forget(fx->eng, *ino, 1);
	return f;
}

static void test_whole_copy_shares(void **state)
{
	struct tcu *fx = *state;
	size_t len = 40 * CH + 123;
	uint64_t src = 0, dst = 0;
	struct tc_file *f;
	double blob0;
	int files0;

	tcu_put_fill(fx, "src", len, 1);
	src = tcu_ino_at(fx->eng, TC_ROOT_INO, "src");
	blob0 = tcu_stat(fx->eng, "blob_bytes");
	files0 = blob_files(fx);
	f = create(fx, "dst", &dst);
	assert_int_equal(tc_copy_range(fx->eng, src, 0, dst, 0, 1 << 30),
			 (ssize_t)len);
	assert_int_equal(tc_release(f), 0);
	assert_int_equal(tcu_stat(fx->eng, "blob_bytes"), blob0);
	assert_int_equal(blob_files(fx), files0);
	assert_int_equal(tcu_stat(fx->eng, "disk_bytes"), 2 * len);
	tcu_flush_ram(fx);
	tcu_assert_fill(fx, "dst", len, 1);
	{
		char a[33], b[33];
		tcu_hash(fx, "src", a);
		tcu_hash(fx, "dst", b);
		assert_string_equal(a, b);
	}
	/* The source goes: the copy keeps every chunk. */
	assert_int_equal(tcu_del_at(fx->eng, TC_ROOT_INO, "src"), 0);
	assert_int_equal(blob_files(fx), files0);
	tcu_flush_ram(fx);
	tcu_assert_fill(fx, "dst", len, 1);
}

/* Copy [@soff, +@n) of a fill to @doff of a destination holding another
 * fill, against a byte copy. */
static void check_range(struct tcu *fx, size_t slen, size_t dlen, off_t soff,
			off_t doff, size_t n)
{
	char *s = malloc(slen), *want = calloc(1, dlen + slen + (size_t)doff);
	uint64_t src, dst;
	struct tc_file *f;
	size_t end, copied;
	ssize_t rc;

	assert_non_null(s);
	assert_non_null(want);
	tcu_fill(s, slen, 2);
	tcu_fill(want, dlen, 3);
	tcu_put_fill(fx, "s", slen, 2);
	tcu_put_fill(fx, "d", dlen, 3);
	src = tcu_ino_at(fx->eng, TC_ROOT_INO, "s");
	dst = tcu_ino_at(fx->eng, TC_ROOT_INO, "d");
	assert_int_equal(tc_open(fx->eng, dst, O_WRONLY, &f), 0);
	rc = tc_copy_range(fx->eng, src, soff, dst, doff, n);
	copied = (size_t)soff >= slen ? 0
		 : slen - (size_t)soff < n ? slen - (size_t)soff : n;
	assert_int_equal(rc, (ssize_t)copied);
	assert_int_equal(tc_release(f), 0);
	memcpy(want + doff, s + soff, copied);
	end = copied && (size_t)doff + copied > dlen ? (size_t)doff + copied
						     : dlen;
	tcu_flush_ram(fx);
	tcu_assert_value_at(fx, TC_ROOT_INO, "d", want, end);
	free(s);
	free(want);
}

static void test_ranges(void **state)
{
	struct tcu *fx = *state;

	check_range(fx, 10 * CH, 12 * CH, 2 * CH, 4 * CH, 5 * CH); /* aligned */
	check_range(fx, 10 * CH, 12 * CH, 2 * CH + 1, 4 * CH + 1, 5 * CH);
	check_range(fx, 10 * CH, 12 * CH, 100, 7 * CH, 3 * CH + 5);
	check_range(fx, 10 * CH + 7, 3 * CH, 8 * CH, 3 * CH, 4 * CH); /* tail */
	check_range(fx, 10 * CH, 2 * CH, 0, 6 * CH, 10 * CH); /* past end */
	check_range(fx, 5 * CH, 5 * CH, 9 * CH, 0, CH); /* past the source */
	check_range(fx, 100, 0, 0, 0, 100); /* a small single blob */
}

static void test_dirty_source_and_same_file(void **state)
{
	struct tcu *fx = *state;
	char want[6 * CH];
	uint64_t src, dst;
	struct tc_file *w, *f;

	tcu_put_fill(fx, "s", 6 * CH, 4);
	src = tcu_ino_at(fx->eng, TC_ROOT_INO, "s");
	/* Unpublished writes in the source are copied too. */
	assert_int_equal(tc_open(fx->eng, src, O_WRONLY, &w), 0);
	assert_int_equal(tc_write(w, "DIRTY", 5, CH), 5);
	f = create(fx, "d", &dst);
	assert_int_equal(tc_copy_range(fx->eng, src, 0, dst, 0, 6 * CH),
			 6 * CH);
	assert_int_equal(tc_release(f), 0);
	tcu_fill(want, sizeof(want), 4);
	memcpy(want + CH, "DIRTY", 5);
	tcu_flush_ram(fx);
	tcu_assert_value_at(fx, TC_ROOT_INO, "d", want, sizeof(want));
	/* Within one file, overlapping: as memmove. */
	assert_int_equal(tc_copy_range(fx->eng, src, 0, src, CH / 2, 2 * CH),
			 2 * CH);
	assert_int_equal(tc_release(w), 0);
	memmove(want + CH / 2, want, 2 * CH);
	tcu_flush_ram(fx);
	tcu_assert_value_at(fx, TC_ROOT_INO, "s", want, sizeof(want));
}

static void test_source_changes_before_publish(void **state)
{
	struct tcu *fx = *state;
	uint64_t src, dst;
	struct tc_file *f;

	tcu_put_fill(fx, "s", 8 * CH, 5);
	src = tcu_ino_at(fx->eng, TC_ROOT_INO, "s");
	f = create(fx, "d", &dst);
	assert_int_equal(tc_copy_range(fx->eng, src, 0, dst, 0, 8 * CH),
			 8 * CH);
	/* The source is overwritten and removed before d is published:
	 * the chunks d names are held for it. */
	tcu_put_fill(fx, "s", 8 * CH, 6);
	assert_int_equal(tcu_del_at(fx->eng, TC_ROOT_INO, "s"), 0);
	assert_int_equal(tc_release(f), 0);
	tcu_flush_ram(fx);
	tcu_assert_fill(fx, "d", 8 * CH, 5);
	assert_int_equal(blob_files(fx), 8);
	/* A copy that is never published leaves nothing behind. */
	tcu_put_fill(fx, "t", 4 * CH, 7);
	src = tcu_ino_at(fx->eng, TC_ROOT_INO, "t");
	f = create(fx, "e", &dst);
	assert_int_equal(tc_copy_range(fx->eng, src, 0, dst, 0, 4 * CH),
			 4 * CH);
	assert_int_equal(tcu_del_at(fx->eng, TC_ROOT_INO, "t"), 0);
	assert_int_equal(tcu_del_at(fx->eng, TC_ROOT_INO, "e"), 0);
	assert_int_equal(tc_release(f), 0);
	assert_int_equal(blob_files(fx), 8);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, c_setup, tcu_teardown)
		T(test_whole_copy_shares),
		T(test_ranges),
		T(test_dirty_source_and_same_file),
		T(test_source_changes_before_publish),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
