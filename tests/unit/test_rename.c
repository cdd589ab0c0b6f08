/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of rename (engine/rename.c): files and directories, within and
 * across directories, over an existing target (whose readers keep their
 * content), RENAME_NOREPLACE and RENAME_EXCHANGE, and the errors POSIX asks
 * for (a directory into its own subtree, type mismatches, a non-empty
 * target directory).
 */
#include "util.h"

static void test_rename_file(void **state)
{
	struct tcu *fx = *state;
	uint64_t ino, d;

	tcu_put(fx, "a", "A");
	ino = tcu_ino_at(fx->eng, TC_ROOT_INO, "a");
	assert_int_equal(tc_rename(fx->eng, TC_ROOT_INO, "a", TC_ROOT_INO, "b",
				   0),
			 0);
	assert_false(tcu_present(fx, "a"));
	assert_int_equal(tcu_ino_at(fx->eng, TC_ROOT_INO, "b"), ino);
	tcu_assert_value(fx, "b", "A");

	/* Into another directory. */
	d = tcu_mkdir_at(fx, TC_ROOT_INO, "d");
	assert_int_equal(tc_rename(fx->eng, TC_ROOT_INO, "b", d, "c", 0), 0);
	assert_false(tcu_present(fx, "b"));
	assert_int_equal(tcu_ino_at(fx->eng, d, "c"), ino);
	tcu_assert_value_at(fx, d, "c", "A", 1);

	/* Onto itself: nothing changes. */
	assert_int_equal(tc_rename(fx->eng, d, "c", d, "c", 0), 0);
	tcu_assert_value_at(fx, d, "c", "A", 1);

	assert_int_equal(tc_rename(fx->eng, TC_ROOT_INO, "absent", TC_ROOT_INO,
				   "x", 0),
			 -ENOENT);
	assert_int_equal(tc_rename(fx->eng, d, "c", UINT64_C(0x7ffffffffff),
				   "x", 0),
			 -ENOENT);
	assert_int_equal(tc_rename(fx->eng, d, "c", d, "x", 1u << 7), -EINVAL);
	tcu_assert_value_at(fx, d, "c", "A", 1);
}

static void test_rename_replace(void **state)
{
	struct tcu *fx = *state;
	struct tc_attr a;
	struct tc_file *f;
	char *got = NULL;
	size_t n;
	uint64_t src;

	tcu_put(fx, "src", "new content");
	tcu_put(fx, "dst", "old content");
	src = tcu_ino_at(fx->eng, TC_ROOT_INO, "src");

	/* A reader of the replaced target keeps its content. */
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "dst", &a), 0);
	assert_int_equal(tc_open(fx->eng, a.st.st_ino, O_RDONLY, &f), 0);

	assert_int_equal(tc_rename(fx->eng, TC_ROOT_INO, "src", TC_ROOT_INO,
				   "dst", 0),
			 0);
	assert_false(tcu_present(fx, "src"));
	assert_int_equal(tcu_ino_at(fx->eng, TC_ROOT_INO, "dst"), src);
	tcu_assert_value(fx, "dst", "new content");

	assert_int_equal(tcu_read_all(f, &got, &n), 0);
	assert_string_equal(got, "old content");
	free(got);
	assert_int_equal(tc_release(f), 0);
	tc_forget(fx->eng, a.st.st_ino, 1);
	/* The replaced inode is gone with its last reference. */
	assert_int_equal(tc_getattr(fx->eng, a.st.st_ino, &a), -ENOENT);
}

static void test_rename_noreplace(void **state)
{
	struct tcu *fx = *state;

	tcu_put(fx, "a", "A");
	tcu_put(fx, "b", "B");
	assert_int_equal(tc_rename(fx->eng, TC_ROOT_INO, "a", TC_ROOT_INO, "b",
				   TC_RENAME_NOREPLACE),
			 -EEXIST);
	tcu_assert_value(fx, "a", "A");
	tcu_assert_value(fx, "b", "B");
	assert_int_equal(tc_rename(fx->eng, TC_ROOT_INO, "a", TC_ROOT_INO, "c",
				   TC_RENAME_NOREPLACE),
			 0);
	assert_false(tcu_present(fx, "a"));
	tcu_assert_value(fx, "c", "A");
	/* Both flags at once are invalid. */
	assert_int_equal(tc_rename(fx->eng, TC_ROOT_INO, "b", TC_ROOT_INO, "c",
				   TC_RENAME_NOREPLACE | TC_RENAME_EXCHANGE),
			 -EINVAL);
	tcu_assert_value(fx, "b", "B");
	tcu_assert_value(fx, "c", "A");
}

static void test_rename_exchange(void **state)
{
	struct tcu *fx = *state;
	uint64_t a, b, d, inner;

	tcu_put(fx, "a", "A");
	tcu_put(fx, "b", "B");
	a = tcu_ino_at(fx->eng, TC_ROOT_INO, "a");
	b = tcu_ino_at(fx->eng, TC_ROOT_INO, "b");
	assert_int_equal(tc_rename(fx->eng, TC_ROOT_INO, "a", TC_ROOT_INO, "b",
				   TC_RENAME_EXCHANGE),
			 0);
	assert_int_equal(tcu_ino_at(fx->eng, TC_ROOT_INO, "a"), b);
	assert_int_equal(tcu_ino_at(fx->eng, TC_ROOT_INO, "b"), a);
	tcu_assert_value(fx, "a", "B");
	tcu_assert_value(fx, "b", "A");

	/* A file with a directory, across parents. */
	d = tcu_mkdir_at(fx, TC_ROOT_INO, "d");
	inner = tcu_mkdir_at(fx, d, "inner");
	tcu_assert_value(fx, "a", "B");
	assert_int_equal(tc_rename(fx->eng, TC_ROOT_INO, "a", d, "inner",
				   TC_RENAME_EXCHANGE),
			 0);
	assert_int_equal(tcu_ino_at(fx->eng, TC_ROOT_INO, "a"), inner);
	assert_int_equal(tcu_ino_at(fx->eng, d, "inner"), b);
	tcu_assert_value_at(fx, d, "inner", "B", 1);

	/* Exchange needs both names. */
	assert_int_equal(tc_rename(fx->eng, TC_ROOT_INO, "b", TC_ROOT_INO,
				   "absent", TC_RENAME_EXCHANGE),
			 -ENOENT);
	tcu_assert_value(fx, "b", "A");
}

/* A rename stamps the entry's ctime and both directories' mtime and
 * ctime, and the rows keep them across a reopen. */
static void test_rename_times_persist(void **state)
{
	struct tcu *fx = *state;
	struct tc_attr f, dir, d2;
	uint64_t d;

	d = tcu_mkdir_at(fx, TC_ROOT_INO, "d");
	tcu_put(fx, "a", "A");
	tcu_advance(fx, 5 * TCU_SEC);
	assert_int_equal(tc_rename(fx->eng, TC_ROOT_INO, "a", d, "b", 0), 0);
	tcu_reopen(fx);
	assert_int_equal(tc_lookup(fx->eng, d, "b", &f), 0);
	assert_int_equal(tc_getattr(fx->eng, TC_ROOT_INO, &dir), 0);
	assert_int_equal(tc_getattr(fx->eng, d, &d2), 0);
	assert_int_equal(f.st.st_ctim.tv_sec, fx->now / TCU_SEC);
	assert_int_equal(dir.st.st_mtim.tv_sec, fx->now / TCU_SEC);
	assert_int_equal(dir.st.st_ctim.tv_sec, fx->now / TCU_SEC);
	assert_int_equal(d2.st.st_mtim.tv_sec, fx->now / TCU_SEC);
	assert_int_equal(d2.st.st_ctim.tv_sec, fx->now / TCU_SEC);
	assert_true(f.st.st_mtim.tv_sec < fx->now / TCU_SEC); /* content's */
	tc_forget(fx->eng, f.st.st_ino, 1);
}

static void test_rename_dir(void **state)
{
	struct tcu *fx = *state;
	uint64_t d, sub, e, f, other;
	struct tc_attr a;

	/* d/sub/leaf, d/top */
	d = tcu_mkdir_at(fx, TC_ROOT_INO, "d");
	sub = tcu_mkdir_at(fx, d, "sub");
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, sub, "leaf", "L", 1), 0);
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, d, "top", "T", 1), 0);
	e = tcu_mkdir_at(fx, TC_ROOT_INO, "e");

	/* Move the whole tree under e as "moved". */
	assert_int_equal(tc_rename(fx->eng, TC_ROOT_INO, "d", e, "moved", 0), 0);
	assert_false(tcu_present(fx, "d"));
	assert_int_equal(tcu_ino_at(fx->eng, e, "moved"), d);
	assert_int_equal(tcu_ino_at(fx->eng, d, "sub"), sub);
	tcu_assert_value_at(fx, sub, "leaf", "L", 1);
	tcu_assert_value_at(fx, d, "top", "T", 1);

	/* A directory cannot move into its own subtree. */
	assert_int_equal(tc_rename(fx->eng, e, "moved", sub, "x", 0), -EINVAL);
	assert_int_equal(tc_rename(fx->eng, e, "moved", d, "x", 0), -EINVAL);
	assert_int_equal(tcu_ino_at(fx->eng, e, "moved"), d);

	/* Over a non-empty directory: ENOTEMPTY; over an empty one: ok. */
	f = tcu_mkdir_at(fx, TC_ROOT_INO, "f");
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, f, "x", "x", 1), 0);
	assert_int_equal(tc_rename(fx->eng, e, "moved", TC_ROOT_INO, "f", 0),
			 -ENOTEMPTY);
	assert_int_equal(tcu_ino_at(fx->eng, TC_ROOT_INO, "f"), f);
	other = tcu_mkdir_at(fx, TC_ROOT_INO, "empty");
	assert_int_equal(tc_rename(fx->eng, e, "moved", TC_ROOT_INO, "empty",
				   0),
			 0);
	assert_int_equal(tcu_ino_at(fx->eng, TC_ROOT_INO, "empty"), d);
	assert_int_equal(tc_getattr(fx->eng, other, &a), -ENOENT);
	tcu_assert_value_at(fx, sub, "leaf", "L", 1);

	/* File over directory, directory over file. */
	tcu_put(fx, "file", "F");
	assert_int_equal(tc_rename(fx->eng, TC_ROOT_INO, "file", TC_ROOT_INO,
				   "empty", 0),
			 -EISDIR);
	assert_int_equal(tc_rename(fx->eng, TC_ROOT_INO, "empty", TC_ROOT_INO,
				   "file", 0),
			 -ENOTDIR);
	tcu_assert_value(fx, "file", "F");
	assert_int_equal(tcu_ino_at(fx->eng, TC_ROOT_INO, "empty"), d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, tcu_setup, tcu_teardown)
		T(test_rename_file),
		T(test_rename_replace),
		T(test_rename_noreplace),
		T(test_rename_exchange),
		T(test_rename_dir),
		T(test_rename_times_persist),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
