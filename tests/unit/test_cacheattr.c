/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the user.tiercache.* attributes (engine/cacheattr.c): the
 * values of ttl, ttl_mode, tags, schema, expires, tier and hash, the errnos
 * of malformed, read-only and unknown ones, XATTR_CREATE and XATTR_REPLACE,
 * what listxattr shows of them, and the root's write-only controls.
 */
#include "util.h"

#include <sys/xattr.h>

static void test_xattr_tiercache(void **state)
{
	struct tcu *fx = *state;
	char buf[128];
	uint64_t ino, d;
	ssize_t n;

	tcu_put(fx, "k", "v");
	ino = tcu_ino_at(fx->eng, TC_ROOT_INO, "k");

	/* Read-only attributes. */
	assert_int_equal(tc_setxattr(fx->eng, ino, TC_XATTR_PREFIX "hash",
				     "00", 2, 0),
			 -EPERM);
	assert_int_equal(tc_setxattr(fx->eng, ino, TC_XATTR_PREFIX "tier",
				     "ram", 3, 0),
			 -EPERM);
	assert_int_equal(tc_setxattr(fx->eng, ino, TC_XATTR_PREFIX "expires",
				     "1", 1, 0),
			 -EPERM);
	n = tc_getxattr(fx->eng, ino, TC_XATTR_PREFIX "hash", buf, sizeof(buf));
	assert_int_equal(n, 32);
	for (int i = 0; i < 32; i++)
		assert_non_null(strchr("0123456789abcdef", buf[i]));

	/* No TTL: no expiry, no ttl attribute. */
	assert_int_equal(tc_getxattr(fx->eng, ino, TC_XATTR_PREFIX "expires",
				     buf, sizeof(buf)),
			 -ENODATA);

	/* ttl: malformed values change nothing. */
	assert_int_equal(tc_setxattr(fx->eng, ino, TC_XATTR_PREFIX "ttl",
				     "soon", 4, 0),
			 -EINVAL);
	assert_int_equal(tc_setxattr(fx->eng, ino, TC_XATTR_PREFIX "ttl",
				     "-5", 2, 0),
			 -EINVAL);
	assert_int_equal(tc_getxattr(fx->eng, ino, TC_XATTR_PREFIX "expires",
				     buf, sizeof(buf)),
			 -ENODATA);
	assert_int_equal(tc_setxattr(fx->eng, ino, TC_XATTR_PREFIX "ttl", "1h",
				     2, 0),
			 0);
	n = tcu_xattr_at(fx->eng, TC_ROOT_INO, "k", TC_XATTR_PREFIX "expires",
			 buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(strtoll(buf, NULL, 10),
			 TCU_EPOCH_NS / TCU_SEC + 3600);
	assert_int_equal(tc_setxattr(fx->eng, ino, TC_XATTR_PREFIX "ttl",
				     "none", 4, 0),
			 0);
	assert_int_equal(tc_getxattr(fx->eng, ino, TC_XATTR_PREFIX "expires",
				     buf, sizeof(buf)),
			 -ENODATA);

	/* ttl_mode. */
	assert_int_equal(tc_setxattr(fx->eng, ino, TC_XATTR_PREFIX "ttl_mode",
				     "sliding", 7, 0),
			 0);
	n = tc_getxattr(fx->eng, ino, TC_XATTR_PREFIX "ttl_mode", buf,
			sizeof(buf));
	assert_int_equal(n, 7);
	assert_memory_equal(buf, "sliding", 7);
	assert_int_equal(tc_setxattr(fx->eng, ino, TC_XATTR_PREFIX "ttl_mode",
				     "forever", 7, 0),
			 -EINVAL);

	/* tags: valid lists round-trip, invalid ones change nothing. */
	assert_int_equal(tc_setxattr(fx->eng, ino, TC_XATTR_PREFIX "tags",
				     "demo,text", 9, 0),
			 0);
	n = tc_getxattr(fx->eng, ino, TC_XATTR_PREFIX "tags", buf, sizeof(buf));
	assert_int_equal(n, 9);
	assert_memory_equal(buf, "demo,text", 9);
	assert_int_equal(tc_setxattr(fx->eng, ino, TC_XATTR_PREFIX "tags",
				     "bad tag", 7, 0),
			 -EINVAL);
	assert_int_equal(tc_setxattr(fx->eng, ino, TC_XATTR_PREFIX "tags",
				     "a,,b", 4, 0),
			 -EINVAL);
	n = tc_getxattr(fx->eng, ino, TC_XATTR_PREFIX "tags", buf, sizeof(buf));
	assert_int_equal(n, 9);
	{
		/* 33 tags is one too many. */
		char many[33 * 4];
		size_t len = 0;

		for (int i = 0; i < 33; i++)
			len += (size_t)sprintf(many + len, "%s%02d",
					       i ? "," : "", i);
		assert_int_equal(tc_setxattr(fx->eng, ino,
					     TC_XATTR_PREFIX "tags", many,
					     len, 0),
				 -EINVAL);
		/* 32 is fine. */
		len = (size_t)(strrchr(many, ',') - many);
		assert_int_equal(tc_setxattr(fx->eng, ino,
					     TC_XATTR_PREFIX "tags", many,
					     len, 0),
				 0);
	}

	/* schema. */
	assert_int_equal(tc_setxattr(fx->eng, ino, TC_XATTR_PREFIX "schema",
				     "v1.2+b", 6, 0),
			 0);
	n = tc_getxattr(fx->eng, ino, TC_XATTR_PREFIX "schema", buf,
			sizeof(buf));
	assert_int_equal(n, 6);
	assert_memory_equal(buf, "v1.2+b", 6);
	assert_int_equal(tc_setxattr(fx->eng, ino, TC_XATTR_PREFIX "schema",
				     "v 1", 3, 0),
			 -EINVAL);

	/* Unknown tiercache attribute: not something stored. */
	assert_int_equal(tc_getxattr(fx->eng, ino, TC_XATTR_PREFIX "nonsense",
				     buf, sizeof(buf)),
			 -ENODATA);

	/* A malformed control value is EINVAL and changes nothing. */
	assert_int_equal(tcu_root_ctl(fx, "flush", "bogus"), -EINVAL);
	tcu_assert_value(fx, "k", "v");

	/* A directory's ttl is a default for entries created below. */
	d = tcu_mkdir_at(fx, TC_ROOT_INO, "d");
	assert_int_equal(tc_setxattr(fx->eng, d, TC_XATTR_PREFIX "ttl", "10m",
				     3, 0),
			 0);
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, d, "child", "c", 1), 0);
	n = tcu_xattr_at(fx->eng, d, "child", TC_XATTR_PREFIX "expires", buf,
			 sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(strtoll(buf, NULL, 10), TCU_EPOCH_NS / TCU_SEC + 600);
}

/* listxattr and user.tiercache.*: the attributes set on the entry are
 * listed; the computed ones are read by name only, so cp -a and rsync -aX
 * do not try to write read-only attributes back (tiercachefs.8, decided
 * after tiercachefs(8), EXTENDED ATTRIBUTES was written). */
static void test_listxattr_tiercache(void **state)
{
	struct tcu *fx = *state;
	char list[1024];
	ssize_t n;
	uint64_t ino;

	tcu_put(fx, "k", "v");
	ino = tcu_ino_at(fx->eng, TC_ROOT_INO, "k");
	assert_int_equal(tc_setxattr(fx->eng, ino, TC_XATTR_PREFIX "tags", "t",
				     1, 0),
			 0);
	assert_int_equal(tc_setxattr(fx->eng, ino, TC_XATTR_PREFIX "ttl", "1h",
				     2, 0),
			 0);
	n = tc_listxattr(fx->eng, ino, list, sizeof(list));
	assert_true(n > 0);
	/* Set by the user: listed. */
	assert_true(tcu_list_has(list, n, TC_XATTR_PREFIX "tags"));
	assert_true(tcu_list_has(list, n, TC_XATTR_PREFIX "ttl"));
	/* Write-only controls: never listed. */
	assert_false(tcu_list_has(list, n, TC_XATTR_PREFIX "flush"));
	assert_false(tcu_list_has(list, n, TC_XATTR_PREFIX "evict_tag"));
	n = tc_listxattr(fx->eng, TC_ROOT_INO, list, sizeof(list));
	assert_true(n >= 0);
	assert_false(tcu_list_has(list, n, TC_XATTR_PREFIX "flush"));
	assert_false(tcu_list_has(list, n, TC_XATTR_PREFIX "reset_stats"));
	/* Computed, read-only: readable by name, not listed. */
	n = tc_listxattr(fx->eng, ino, list, sizeof(list));
	assert_false(tcu_list_has(list, n, TC_XATTR_PREFIX "hash"));
	assert_false(tcu_list_has(list, n, TC_XATTR_PREFIX "tier"));
	assert_false(tcu_list_has(list, n, TC_XATTR_PREFIX "expires"));
	assert_int_equal(tc_getxattr(fx->eng, ino, TC_XATTR_PREFIX "hash", NULL,
				     0),
			 32);
	assert_true(tc_getxattr(fx->eng, ino, TC_XATTR_PREFIX "tier", NULL,
				0) > 0);
	assert_true(tc_getxattr(fx->eng, ino, TC_XATTR_PREFIX "expires", NULL,
				0) > 0);
	/* Not set: not listed. */
	assert_false(tcu_list_has(list, n, TC_XATTR_PREFIX "schema"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, tcu_setup, tcu_teardown)
		T(test_xattr_tiercache),
		T(test_listxattr_tiercache),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
