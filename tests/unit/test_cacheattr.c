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

/* Set user.tiercache.@attr of @ino to the string @v with @flags. */
static int set_ca(struct tcu *fx, uint64_t ino, const char *attr,
		  const char *v, int flags)
{
	char name[64];

	snprintf(name, sizeof(name), TC_XATTR_PREFIX "%s", attr);
	return tc_setxattr(fx->eng, ino, name, v, strlen(v), flags);
}

/* user.tiercache.@attr of @ino as a string in @buf, or -errno. */
static ssize_t get_ca(struct tcu *fx, uint64_t ino, const char *attr,
		      char *buf, size_t size)
{
	char name[64];
	ssize_t n;

	snprintf(name, sizeof(name), TC_XATTR_PREFIX "%s", attr);
	n = tc_getxattr(fx->eng, ino, name, buf, size - 1);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

#define assert_ca(fx, ino, attr, want)                                        \
	do {                                                                  \
		char v_[256];                                                 \
		ssize_t n_ = get_ca((fx), (ino), (attr), v_, sizeof(v_));     \
		if (n_ < 0)                                                   \
			fail_msg("%s: %s", (attr), strerror((int)-n_));       \
		assert_string_equal(v_, (want));                              \
	} while (0)

/* XATTR_CREATE on a present attribute is EEXIST, XATTR_REPLACE on an
 * absent one ENODATA, as for any attribute (setxattr(2)). */
static void test_create_replace_flags(void **state)
{
	struct tcu *fx = *state;
	static const struct {
		const char *attr, *v1, *v2;
		bool on_dir;
	} attrs[] = {
		{ "ttl", "1h", "2h", true },
		{ "ttl_mode", "sliding", "absolute", true },
		{ "tags", "a,b", "c", false },
		{ "schema", "v1", "v2", true },
	};
	char buf[64];
	uint64_t file, dir;

	tcu_put(fx, "k", "v");
	file = tcu_ino_at(fx->eng, TC_ROOT_INO, "k");
	dir = tcu_mkdir_at(fx, TC_ROOT_INO, "d");
	for (size_t i = 0; i < sizeof(attrs) / sizeof(attrs[0]); i++) {
		const char *a = attrs[i].attr;

		for (int on = 0; on < 2; on++) {
			uint64_t ino = on ? dir : file;

			if (on && !attrs[i].on_dir)
				continue;
			/* Absent: REPLACE refused, nothing set. */
			assert_int_equal(set_ca(fx, ino, a, attrs[i].v1,
						XATTR_REPLACE),
					 -ENODATA);
			assert_int_equal(get_ca(fx, ino, a, buf, sizeof(buf)),
					 -ENODATA);
			assert_int_equal(set_ca(fx, ino, a, attrs[i].v1,
						XATTR_CREATE),
					 0);
			assert_ca(fx, ino, a, attrs[i].v1);
			/* Present: CREATE refused, value kept. */
			assert_int_equal(set_ca(fx, ino, a, attrs[i].v2,
						XATTR_CREATE),
					 -EEXIST);
			assert_ca(fx, ino, a, attrs[i].v1);
			assert_int_equal(set_ca(fx, ino, a, attrs[i].v2,
						XATTR_REPLACE),
					 0);
			assert_ca(fx, ino, a, attrs[i].v2);
			/* No flag: either way. */
			assert_int_equal(set_ca(fx, ino, a, attrs[i].v1, 0), 0);
			assert_ca(fx, ino, a, attrs[i].v1);
		}
	}
	/* A refused REPLACE of a ttl leaves the entry without a deadline. */
	tcu_put(fx, "fresh", "f");
	assert_int_equal(set_ca(fx, tcu_ino_at(fx->eng, TC_ROOT_INO, "fresh"),
				"ttl", "1m", XATTR_REPLACE),
			 -ENODATA);
	assert_int_equal(get_ca(fx, tcu_ino_at(fx->eng, TC_ROOT_INO, "fresh"),
				"expires", buf, sizeof(buf)),
			 -ENODATA);
	/* Removed, it can be created again. */
	assert_int_equal(tc_removexattr(fx->eng, file, TC_XATTR_PREFIX "ttl"),
			 0);
	assert_int_equal(set_ca(fx, file, "ttl", "5m", XATTR_CREATE), 0);
	assert_ca(fx, file, "ttl", "5m");
}

static void test_ttl_values(void **state)
{
	struct tcu *fx = *state;
	static const struct {
		const char *in, *out;
	} v[] = {
		{ "90", "90s" },   { "90s", "90s" }, { "120s", "2m" },
		{ "7200", "2h" },  { "3601s", "3601s" }, { "86400s", "1d" },
		{ "2d", "2d" },    { "48h", "2d" },  { "36h", "36h" },
	};
	char buf[64];
	uint64_t ino;

	tcu_put(fx, "k", "v");
	ino = tcu_ino_at(fx->eng, TC_ROOT_INO, "k");
	/* Read back in the largest unit that divides it. */
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		assert_int_equal(set_ca(fx, ino, "ttl", v[i].in, 0), 0);
		assert_ca(fx, ino, "ttl", v[i].out);
	}
	/* 0 and none remove it. */
	assert_int_equal(set_ca(fx, ino, "ttl", "0", 0), 0);
	assert_int_equal(get_ca(fx, ino, "ttl", buf, sizeof(buf)), -ENODATA);
	assert_int_equal(get_ca(fx, ino, "expires", buf, sizeof(buf)),
			 -ENODATA);
	assert_int_equal(set_ca(fx, ino, "ttl", "1h", 0), 0);
	assert_int_equal(set_ca(fx, ino, "ttl", "none", 0), 0);
	assert_int_equal(get_ca(fx, ino, "ttl", buf, sizeof(buf)), -ENODATA);

	/* expires: whole seconds, rounded up. */
	tcu_advance(fx, TCU_SEC / 2);
	assert_int_equal(set_ca(fx, ino, "ttl", "1m", 0), 0);
	snprintf(buf, sizeof(buf), "%lld",
		 (long long)(TCU_EPOCH_NS / TCU_SEC + 61));
	assert_ca(fx, ino, "expires", buf);

	/* A value may carry one trailing NUL, no other. */
	assert_int_equal(tc_setxattr(fx->eng, ino, TC_XATTR_PREFIX "ttl", "3m",
				     3, 0),
			 0);
	assert_ca(fx, ino, "ttl", "3m");
	assert_int_equal(tc_setxattr(fx->eng, ino, TC_XATTR_PREFIX "ttl",
				     "3\0m", 3, 0),
			 -EINVAL);
	assert_int_equal(set_ca(fx, ino, "ttl", "3x", 0), -EINVAL);
	assert_ca(fx, ino, "ttl", "3m");

	/* Lengths and short buffers. */
	assert_int_equal(tc_getxattr(fx->eng, ino, TC_XATTR_PREFIX "ttl", NULL,
				     0),
			 2);
	assert_int_equal(tc_getxattr(fx->eng, ino, TC_XATTR_PREFIX "ttl", buf,
				     1),
			 -ERANGE);
	assert_int_equal(tc_getxattr(fx->eng, ino, TC_XATTR_PREFIX "hash", buf,
				     31),
			 -ERANGE);
	/* never: a ttl of its own, shown as such, with no expiry; listed
	 * (so cp -a and rsync -X carry it); XATTR_CREATE sees it. */
	assert_int_equal(set_ca(fx, ino, "ttl", "never", 0), 0);
	assert_ca(fx, ino, "ttl", "never");
	assert_int_equal(get_ca(fx, ino, "expires", buf, sizeof(buf)),
			 -ENODATA);
	{
		char list[256];
		ssize_t n = tc_listxattr(fx->eng, ino, list, sizeof(list));

		assert_true(n > 0);
		assert_true(tcu_list_has(list, n, TC_XATTR_PREFIX "ttl"));
	}
	assert_int_equal(set_ca(fx, ino, "ttl", "never", XATTR_CREATE),
			 -EEXIST);
	assert_int_equal(set_ca(fx, ino, "ttl", "NEVER", XATTR_REPLACE), 0);
	assert_ca(fx, ino, "ttl", "never");
	assert_int_equal(set_ca(fx, ino, "ttl", "nevermore", 0), -EINVAL);
	assert_int_equal(set_ca(fx, ino, "ttl", "never ", 0), -EINVAL);
	assert_ca(fx, ino, "ttl", "never");
	/* A duration replaces it; none and 0 still remove the ttl. */
	assert_int_equal(set_ca(fx, ino, "ttl", "2m", 0), 0);
	assert_ca(fx, ino, "ttl", "2m");
	assert_int_equal(set_ca(fx, ino, "ttl", "never", 0), 0);
	assert_int_equal(set_ca(fx, ino, "ttl", "none", 0), 0);
	assert_int_equal(get_ca(fx, ino, "ttl", buf, sizeof(buf)), -ENODATA);
	assert_int_equal(set_ca(fx, ino, "ttl", "never", 0), 0);
	assert_int_equal(set_ca(fx, ino, "ttl", "0", 0), 0);
	assert_int_equal(get_ca(fx, ino, "ttl", buf, sizeof(buf)), -ENODATA);
	assert_int_equal(set_ca(fx, ino, "ttl", "never", 0), 0);
	assert_int_equal(tc_removexattr(fx->eng, ino, TC_XATTR_PREFIX "ttl"),
			 0);
	assert_int_equal(get_ca(fx, ino, "ttl", buf, sizeof(buf)), -ENODATA);
	/* On a directory too. */
	{
		uint64_t d = tcu_mkdir_at(fx, TC_ROOT_INO, "nd");

		assert_int_equal(set_ca(fx, d, "ttl", "never", 0), 0);
		assert_ca(fx, d, "ttl", "never");
		assert_int_equal(set_ca(fx, d, "ttl", "none", 0), 0);
		assert_int_equal(get_ca(fx, d, "ttl", buf, sizeof(buf)),
				 -ENODATA);
	}
	assert_int_equal(set_ca(fx, ino, "ttl", "3m", 0), 0);

	/* ttl_mode shows the entry's own setting only. */
	assert_int_equal(get_ca(fx, ino, "ttl_mode", buf, sizeof(buf)),
			 -ENODATA);
	assert_int_equal(set_ca(fx, ino, "ttl_mode", "absolute", 0), 0);
	assert_ca(fx, ino, "ttl_mode", "absolute");
}

static void test_tier_and_schema_values(void **state)
{
	struct tcu *fx = *state;
	char buf[80];
	uint64_t ino;

	fx->cfg.schema = "v3";
	tcu_reopen(fx);
	tcu_put(fx, "k", "v");
	ino = tcu_ino_at(fx->eng, TC_ROOT_INO, "k");
	assert_ca(fx, ino, "tier", "ram");
	tcu_flush_ram(fx);
	assert_ca(fx, ino, "tier", "disk");
	assert_ca(fx, ino, "schema", "v3");

	/* The root reads the mount's schema until it has one of its own. */
	assert_ca(fx, TC_ROOT_INO, "schema", "v3");
	assert_int_equal(set_ca(fx, TC_ROOT_INO, "schema", "v4", 0), 0);
	assert_ca(fx, TC_ROOT_INO, "schema", "v4");
	assert_int_equal(tc_removexattr(fx->eng, TC_ROOT_INO,
					TC_XATTR_PREFIX "schema"),
			 0);
	assert_ca(fx, TC_ROOT_INO, "schema", "v3");

	/* Tags: an empty list removes them; one of 65 bytes is invalid. */
	assert_int_equal(set_ca(fx, ino, "tags", "x,y", 0), 0);
	assert_int_equal(set_ca(fx, ino, "tags", "", 0), 0);
	assert_int_equal(get_ca(fx, ino, "tags", buf, sizeof(buf)), -ENODATA);
	memset(buf, 't', 65);
	buf[65] = '\0';
	assert_int_equal(set_ca(fx, ino, "tags", buf, 0), -EINVAL);
	assert_int_equal(set_ca(fx, ino, "schema", buf, 0), -EINVAL);
	buf[64] = '\0';
	assert_int_equal(set_ca(fx, ino, "tags", buf, 0), 0);
}

static void test_errnos(void **state)
{
	struct tcu *fx = *state;
	struct tc_attr a;
	char buf[64];
	uint64_t file, dir, sym, fifo, gone = UINT64_C(0x7ffffffffff);

	tcu_put(fx, "k", "v");
	file = tcu_ino_at(fx->eng, TC_ROOT_INO, "k");
	dir = tcu_mkdir_at(fx, TC_ROOT_INO, "d");
	assert_int_equal(tc_symlink(fx->eng, TC_ROOT_INO, "ln", "k", &fx->ctx,
				    &a),
			 0);
	sym = a.st.st_ino;
	tc_forget(fx->eng, sym, 1);
	assert_int_equal(tc_mknod(fx->eng, TC_ROOT_INO, "fifo", S_IFIFO | 0600, 0,
				  &fx->ctx, &a),
			 0);
	fifo = a.st.st_ino;
	tc_forget(fx->eng, fifo, 1);

	/* Unknown names. */
	assert_int_equal(set_ca(fx, file, "nonsense", "1", 0), -EINVAL);
	assert_int_equal(get_ca(fx, file, "nonsense", buf, sizeof(buf)),
			 -ENODATA);
	assert_int_equal(tc_removexattr(fx->eng, file,
					TC_XATTR_PREFIX "nonsense"),
			 -ENODATA);
	assert_int_equal(set_ca(fx, file, "", "1", 0), -EINVAL);

	/* Computed ones cannot be removed either. */
	assert_int_equal(tc_removexattr(fx->eng, file, TC_XATTR_PREFIX "hash"),
			 -EPERM);
	assert_int_equal(tc_removexattr(fx->eng, file, TC_XATTR_PREFIX "tier"),
			 -EPERM);
	assert_int_equal(tc_removexattr(fx->eng, file,
					TC_XATTR_PREFIX "expires"),
			 -EPERM);
	/* Removing what is not set. */
	assert_int_equal(tc_removexattr(fx->eng, file, TC_XATTR_PREFIX "ttl"),
			 -ENODATA);

	/* Controls: the root's, write-only. */
	assert_int_equal(set_ca(fx, file, "flush", "ram", 0), -EPERM);
	assert_int_equal(set_ca(fx, dir, "expire", "1", 0), -EPERM);
	assert_int_equal(set_ca(fx, file, "reset_stats", "1", 0), -EPERM);
	assert_int_equal(get_ca(fx, TC_ROOT_INO, "flush", buf, sizeof(buf)),
			 -ENODATA);
	assert_int_equal(tc_removexattr(fx->eng, TC_ROOT_INO,
					TC_XATTR_PREFIX "flush"),
			 -EPERM);
	assert_int_equal(set_ca(fx, TC_ROOT_INO, "flush", "ram", 0), 0);
	assert_int_equal(set_ca(fx, TC_ROOT_INO, "expire", "1", 0), 0);
	assert_int_equal(set_ca(fx, TC_ROOT_INO, "reset_stats", "1", 0), 0);
	assert_int_equal(set_ca(fx, TC_ROOT_INO, "evict_tag", "none-such", 0),
			 0);

	/* Which entries take which attributes. */
	assert_int_equal(set_ca(fx, dir, "tags", "t", 0), -EPERM);
	assert_int_equal(set_ca(fx, sym, "ttl", "1h", 0), -EPERM);
	assert_int_equal(set_ca(fx, fifo, "schema", "v1", 0), -EPERM);
	assert_int_equal(get_ca(fx, sym, "ttl", buf, sizeof(buf)), -ENODATA);
	assert_int_equal(get_ca(fx, dir, "hash", buf, sizeof(buf)), -ENODATA);
	assert_int_equal(get_ca(fx, dir, "tier", buf, sizeof(buf)), -ENODATA);

	/* An inode that does not exist. */
	assert_int_equal(get_ca(fx, gone, "ttl", buf, sizeof(buf)), -ENOENT);
	assert_int_equal(set_ca(fx, gone, "ttl", "1h", 0), -ENOENT);
	assert_int_equal(tc_removexattr(fx->eng, gone, TC_XATTR_PREFIX "ttl"),
			 -ENOENT);
	tcu_assert_value(fx, "k", "v");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, tcu_setup, tcu_teardown)
		T(test_xattr_tiercache),
		T(test_listxattr_tiercache),
		T(test_create_replace_flags),
		T(test_ttl_values),
		T(test_tier_and_schema_values),
		T(test_errnos),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
