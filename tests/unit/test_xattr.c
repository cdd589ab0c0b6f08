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

/* A name of @len bytes: "user." then digits of @i, padded with 'n'. */
static void long_name(char *buf, size_t len, int i)
{
	int k = snprintf(buf, len + 1, "user.%04d", i);

	memset(buf + k, 'n', len - (size_t)k);
	buf[len] = '\0';
}

/* listxattr(2) cannot return more than 64 KiB: a name that would make the
 * listing longer is refused with ENOSPC (cp -a and rsync -X would fail on
 * the file otherwise), as ext4 refuses it when full. */
static void test_listing_limit(void **state)
{
	struct tcu *fx = *state;
	char name[256], *list;
	ssize_t len;
	uint64_t ino;
	int count = 0, rc;

	tcu_put(fx, "k", "v");
	ino = tcu_ino_at(fx->eng, TC_ROOT_INO, "k");
	for (;;) {
		long_name(name, 255, count);
		rc = tc_setxattr(fx->eng, ino, name, "", 0, 0);
		if (rc)
			break;
		assert_true(++count < 1000);
	}
	assert_int_equal(rc, -ENOSPC);
	/* Refused only near the limit (256 bytes a name). */
	assert_true(count * 256 > 65536 - 1024);
	len = tc_listxattr(fx->eng, ino, NULL, 0);
	assert_int_equal(len, count * 256);
	assert_true(len <= 65536);
	list = malloc(65536);
	assert_non_null(list);
	assert_int_equal(tc_listxattr(fx->eng, ino, list, 65536), len);
	long_name(name, 255, 0);
	assert_true(tcu_list_has(list, len, name));
	free(list);

	/* Nothing stored by the refused call. */
	long_name(name, 255, count);
	assert_int_equal(tc_getxattr(fx->eng, ino, name, NULL, 0), -ENODATA);
	/* An attribute that exists may still change: the listing does not
	 * grow. */
	long_name(name, 255, 3);
	assert_int_equal(tc_setxattr(fx->eng, ino, name, "new", 3, 0), 0);
	assert_int_equal(tc_setxattr(fx->eng, ino, name, "newer", 5,
				     XATTR_REPLACE),
			 0);
	/* Still full; a removal makes room. */
	long_name(name, 255, count);
	assert_int_equal(tc_setxattr(fx->eng, ino, name, "", 0, 0), -ENOSPC);
	long_name(name, 255, 0);
	assert_int_equal(tc_removexattr(fx->eng, ino, name), 0);
	long_name(name, 255, count);
	assert_int_equal(tc_setxattr(fx->eng, ino, name, "", 0, 0), 0);
	/* Other inodes have their own room. */
	assert_int_equal(tc_setxattr(fx->eng, TC_ROOT_INO, name, "", 0, 0), 0);
}

static void test_names_and_namespaces(void **state)
{
	struct tcu *fx = *state;
	struct tc_attr a;
	char name[300], buf[16];
	uint64_t ino, gone = UINT64_C(0x7ffffffffff);

	tcu_put(fx, "k", "v");
	ino = tcu_ino_at(fx->eng, TC_ROOT_INO, "k");

	/* Names up to 255 bytes (XATTR_NAME_MAX); longer: ERANGE. */
	long_name(name, 255, 1);
	assert_int_equal(tc_setxattr(fx->eng, ino, name, "x", 1, 0), 0);
	assert_int_equal(tc_getxattr(fx->eng, ino, name, buf, sizeof(buf)), 1);
	long_name(name, 256, 2);
	assert_int_equal(tc_setxattr(fx->eng, ino, name, "x", 1, 0), -ERANGE);

	/* Only user.* with a name after the prefix is stored. */
	assert_int_equal(tc_setxattr(fx->eng, ino, "user.", "x", 1, 0),
			 -ENOTSUP);
	assert_int_equal(tc_setxattr(fx->eng, ino, "User.x", "x", 1, 0),
			 -ENOTSUP);
	assert_int_equal(tc_setxattr(fx->eng, ino, "usr.x", "x", 1, 0),
			 -ENOTSUP);
	assert_int_equal(tc_setxattr(fx->eng, ino, "system.posix_acl_access",
				     "x", 1, 0),
			 -ENOTSUP);
	assert_int_equal(tc_getxattr(fx->eng, ino, "trusted.x", buf,
				     sizeof(buf)),
			 -ENOTSUP);
	assert_int_equal(tc_removexattr(fx->eng, ino, "security.selinux"),
			 -ENOTSUP);

	/* A value of nothing (no buffer) is a value. */
	assert_int_equal(tc_setxattr(fx->eng, ino, "user.none", NULL, 0, 0), 0);
	assert_int_equal(tc_getxattr(fx->eng, ino, "user.none", buf,
				     sizeof(buf)),
			 0);

	/* Attributes belong to the inode: a hard link shows them. */
	assert_int_equal(tc_link(fx->eng, ino, TC_ROOT_INO, "k2", &a), 0);
	tc_forget(fx->eng, ino, 1);
	assert_int_equal(tcu_xattr_at(fx->eng, TC_ROOT_INO, "k2", "user.none",
				      buf, sizeof(buf)),
			 0);
	/* ...and go with it. */
	assert_int_equal(tc_unlink(fx->eng, TC_ROOT_INO, "k"), 0);
	assert_int_equal(tc_unlink(fx->eng, TC_ROOT_INO, "k2"), 0);
	tcu_put(fx, "k", "again");
	ino = tcu_ino_at(fx->eng, TC_ROOT_INO, "k");
	assert_int_equal(tc_listxattr(fx->eng, ino, NULL, 0), 0);

	/* An inode that does not exist. */
	assert_int_equal(tc_getxattr(fx->eng, gone, "user.a", buf, sizeof(buf)),
			 -ENOENT);
	assert_int_equal(tc_setxattr(fx->eng, gone, "user.a", "1", 1, 0),
			 -ENOENT);
	assert_int_equal(tc_listxattr(fx->eng, gone, buf, sizeof(buf)),
			 -ENOENT);
	assert_int_equal(tc_removexattr(fx->eng, gone, "user.a"), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, tcu_setup, tcu_teardown)
		T(test_xattr_user),
		T(test_listing_limit),
		T(test_names_and_namespaces),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
