/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of extended attributes (engine/xattr.c): user.* attributes
 * stored like any filesystem stores them (values up to 64 KiB, E2BIG
 * beyond, ERANGE for a short buffer, XATTR_CREATE and XATTR_REPLACE, a
 * listing that may not outgrow what listxattr(2) returns), and ENOTSUP for
 * the namespaces other than user. The user.tiercache.* attributes are in
 * test_cacheattr.c.
 */
#include "util.h"

#include <sys/xattr.h>

static void test_xattr_user(void **state)
{
	struct tcu *fx = *state;
	char buf[256], list[1024];
	char *big;
	ssize_t n;
	uint64_t ino;

	tcu_put(fx, "k", "v");
	ino = tcu_ino_at(fx->eng, TC_ROOT_INO, "k");

	assert_int_equal(tc_getxattr(fx->eng, ino, "user.color", buf,
				     sizeof(buf)),
			 -ENODATA);
	assert_int_equal(tc_setxattr(fx->eng, ino, "user.color", "blue", 4, 0),
			 0);
	assert_int_equal(tc_getxattr(fx->eng, ino, "user.color", NULL, 0), 4);
	assert_int_equal(tc_getxattr(fx->eng, ino, "user.color", buf,
				     sizeof(buf)),
			 4);
	assert_memory_equal(buf, "blue", 4);
	assert_int_equal(tc_getxattr(fx->eng, ino, "user.color", buf, 2),
			 -ERANGE);

	/* CREATE / REPLACE. */
	assert_int_equal(tc_setxattr(fx->eng, ino, "user.color", "red", 3,
				     XATTR_CREATE),
			 -EEXIST);
	assert_int_equal(tc_setxattr(fx->eng, ino, "user.shape", "x", 1,
				     XATTR_REPLACE),
			 -ENODATA);
	assert_int_equal(tc_setxattr(fx->eng, ino, "user.color", "red", 3,
				     XATTR_REPLACE),
			 0);
	assert_int_equal(tc_getxattr(fx->eng, ino, "user.color", buf,
				     sizeof(buf)),
			 3);
	assert_memory_equal(buf, "red", 3);
	/* Empty and binary values. */
	assert_int_equal(tc_setxattr(fx->eng, ino, "user.empty", "", 0, 0), 0);
	assert_int_equal(tc_getxattr(fx->eng, ino, "user.empty", buf,
				     sizeof(buf)),
			 0);
	assert_int_equal(tc_setxattr(fx->eng, ino, "user.bin", "a\0b", 3, 0),
			 0);
	assert_int_equal(tc_getxattr(fx->eng, ino, "user.bin", buf,
				     sizeof(buf)),
			 3);
	assert_memory_equal(buf, "a\0b", 3);

	/* Listing: stored names and readable user.tiercache.* ones. */
	n = tc_listxattr(fx->eng, ino, NULL, 0);
	assert_true(n > 0 && n < (ssize_t)sizeof(list));
	assert_int_equal(tc_listxattr(fx->eng, ino, list, sizeof(list)), n);
	assert_true(tcu_list_has(list, n, "user.color"));
	assert_true(tcu_list_has(list, n, "user.empty"));
	assert_true(tcu_list_has(list, n, "user.bin"));
	assert_int_equal(tc_listxattr(fx->eng, ino, list, 3), -ERANGE);

	/* Remove. */
	assert_int_equal(tc_removexattr(fx->eng, ino, "user.color"), 0);
	assert_int_equal(tc_getxattr(fx->eng, ino, "user.color", buf,
				     sizeof(buf)),
			 -ENODATA);
	assert_int_equal(tc_removexattr(fx->eng, ino, "user.color"), -ENODATA);
	n = tc_listxattr(fx->eng, ino, list, sizeof(list));
	assert_true(n > 0);
	assert_false(tcu_list_has(list, n, "user.color"));

	/* Largest value: 64 KiB; one byte more is E2BIG. */
	big = malloc(TC_XATTR_SIZE_MAX + 1);
	assert_non_null(big);
	tcu_fill(big, TC_XATTR_SIZE_MAX + 1, 3);
	assert_int_equal(tc_setxattr(fx->eng, ino, "user.big", big,
				     TC_XATTR_SIZE_MAX, 0),
			 0);
	{
		char *back = malloc(TC_XATTR_SIZE_MAX);

		assert_non_null(back);
		assert_int_equal(tc_getxattr(fx->eng, ino, "user.big", back,
					     TC_XATTR_SIZE_MAX),
				 TC_XATTR_SIZE_MAX);
		assert_memory_equal(back, big, TC_XATTR_SIZE_MAX);
		free(back);
	}
	assert_int_equal(tc_setxattr(fx->eng, ino, "user.big2", big,
				     TC_XATTR_SIZE_MAX + 1, 0),
			 -E2BIG);
	free(big);

	/* Other namespaces are not supported. */
	assert_int_equal(tc_setxattr(fx->eng, ino, "trusted.x", "1", 1, 0),
			 -ENOTSUP);
	assert_int_equal(tc_setxattr(fx->eng, ino, "security.x", "1", 1, 0),
			 -ENOTSUP);
	assert_int_equal(tc_getxattr(fx->eng, ino, "system.x", buf,
				     sizeof(buf)),
			 -ENOTSUP);
	assert_int_equal(tc_removexattr(fx->eng, ino, "trusted.x"), -ENOTSUP);

	/* Directories and symlinks carry user xattrs too. */
	{
		uint64_t d = tcu_mkdir_at(fx, TC_ROOT_INO, "d");

		assert_int_equal(tc_setxattr(fx->eng, d, "user.d", "dd", 2, 0),
				 0);
		assert_int_equal(tc_getxattr(fx->eng, d, "user.d", buf,
					     sizeof(buf)),
				 2);
	}
	/* Stored xattrs follow the inode through a rename. */
	assert_int_equal(tc_rename(fx->eng, TC_ROOT_INO, "k", TC_ROOT_INO,
				   "k2", 0),
			 0);
	assert_int_equal(tcu_xattr_at(fx->eng, TC_ROOT_INO, "k2", "user.bin",
				      buf, sizeof(buf)),
			 3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, tcu_setup, tcu_teardown)
		T(test_xattr_user),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
