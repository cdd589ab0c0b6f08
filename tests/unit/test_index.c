/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the namespace (engine/index.c): the POSIX tree the index
 * holds. Round trips of create/lookup/getattr/setattr, put/get/delete,
 * rename of files and directories with replace, NOREPLACE and EXCHANGE,
 * hard links, unlink/rmdir, readdir with resumable cookies, symlinks and
 * extended attributes, each with the errors the header documents.
 */
#include "util.h"

#include <sys/xattr.h>

/* ------------------------------------------------------------------ */
/* create / lookup / getattr / setattr                                */
/* ------------------------------------------------------------------ */

static void test_create_lookup_getattr(void **state)
{
	struct tcu *fx = *state;
	struct tc_attr c, l, g;
	struct tc_file *f;

	assert_int_equal(tc_create(fx->eng, TC_ROOT_INO, "k", S_IFREG | 0666,
				   O_WRONLY | O_CREAT, &fx->ctx, &c, &f),
			 0);
	assert_true(S_ISREG(c.st.st_mode));
	assert_int_equal(c.st.st_mode & 07777, 0644); /* umask 022 applied */
	assert_int_equal(c.st.st_size, 0);
	assert_int_equal(c.st.st_nlink, 1);
	assert_int_equal(c.st.st_uid, fx->ctx.uid);
	assert_int_equal(c.st.st_gid, fx->ctx.gid);
	assert_int_not_equal(c.st.st_ino, TC_ROOT_INO);
	assert_int_equal(tc_file_ino(f), c.st.st_ino);
	assert_int_equal(tcu_write_all(f, "hello", 5, 0), 0);
	/* Sizes include unpublished writes. */
	assert_int_equal(tc_getattr(fx->eng, c.st.st_ino, &g), 0);
	assert_int_equal(g.st.st_size, 5);
	assert_int_equal(tc_release(f), 0);

	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "k", &l), 0);
	assert_int_equal(l.st.st_ino, c.st.st_ino);
	assert_int_equal(l.st.st_size, 5);
	assert_true(S_ISREG(l.st.st_mode));
	assert_true(l.valid_ns > 0); /* no TTL: may be cached forever */
	assert_int_equal(tc_getattr(fx->eng, l.st.st_ino, &g), 0);
	assert_int_equal(g.st.st_ino, l.st.st_ino);
	assert_int_equal(g.st.st_size, 5);
	assert_int_equal(g.st.st_mode, l.st.st_mode);
	tc_forget(fx->eng, l.st.st_ino, 1);
	tc_forget(fx->eng, c.st.st_ino, 1);

	tcu_assert_value(fx, "k", "hello");

	/* The root is a directory. */
	assert_int_equal(tc_getattr(fx->eng, TC_ROOT_INO, &g), 0);
	assert_true(S_ISDIR(g.st.st_mode));
	assert_int_equal(tc_getattr(fx->eng, UINT64_C(0x7ffffffffff), &g),
			 -ENOENT);
}

static void test_lookup_errors(void **state)
{
	struct tcu *fx = *state;
	struct tc_attr a;
	char longname[TC_NAME_MAX + 2];
	uint64_t file;

	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "absent", &a),
			 -ENOENT);
	tcu_put(fx, "file", "x");
	file = tcu_ino_at(fx->eng, TC_ROOT_INO, "file");
	assert_int_equal(tc_lookup(fx->eng, file, "x", &a), -ENOTDIR);

	memset(longname, 'n', TC_NAME_MAX + 1);
	longname[TC_NAME_MAX + 1] = '\0';
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, longname, &a),
			 -ENAMETOOLONG);
	assert_int_equal(tc_mknod(fx->eng, TC_ROOT_INO, longname,
				  S_IFREG | 0644, 0, &fx->ctx, &a),
			 -ENAMETOOLONG);
	/* 255 bytes is allowed. */
	longname[TC_NAME_MAX] = '\0';
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, TC_ROOT_INO, longname,
				    "long", 4),
			 0);
	tcu_assert_value(fx, longname, "long");

	/* Existing name, missing or non-directory parent. */
	assert_int_equal(tc_mknod(fx->eng, TC_ROOT_INO, "file", S_IFREG | 0644,
				  0, &fx->ctx, &a),
			 -EEXIST);
	assert_int_equal(tc_mknod(fx->eng, UINT64_C(0x7ffffffffff), "x",
				  S_IFREG | 0644, 0, &fx->ctx, &a),
			 -ENOENT);
	assert_int_equal(
	    tc_mknod(fx->eng, file, "x", S_IFREG | 0644, 0, &fx->ctx, &a),
	    -ENOTDIR);

	/* The reserved .stats gives EPERM; an unknown file type EINVAL. */
	assert_int_equal(
	    tc_mknod(fx->eng, TC_ROOT_INO, "bad", 0644, 0, &fx->ctx, &a),
	    -EINVAL);
	assert_int_equal(tc_mknod(fx->eng, TC_ROOT_INO, TC_STATS_NAME,
				  S_IFREG | 0644, 0, &fx->ctx, &a),
			 -EPERM);
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, TC_ROOT_INO,
				    TC_STATS_NAME, "x", 1),
			 -EPERM);
	/* The daemon serves .stats: the engine's lookup says ENOENT. */
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, TC_STATS_NAME, &a),
			 -ENOENT);
	/* .stats is reserved at the root only. */
	{
		uint64_t d = tcu_mkdir_at(fx, TC_ROOT_INO, "d");

		assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, d,
					    TC_STATS_NAME, "sub", 3),
				 0);
	}
}

static void test_mknod_types(void **state)
{
	struct tcu *fx = *state;
	struct tc_attr a, l;

	assert_int_equal(tc_mknod(fx->eng, TC_ROOT_INO, "fifo", S_IFIFO | 0600,
				  0, &fx->ctx, &a),
			 0);
	assert_true(S_ISFIFO(a.st.st_mode));
	tc_forget(fx->eng, a.st.st_ino, 1);
	assert_int_equal(tc_mknod(fx->eng, TC_ROOT_INO, "sock", S_IFSOCK | 0600,
				  0, &fx->ctx, &a),
			 0);
	assert_true(S_ISSOCK(a.st.st_mode));
	tc_forget(fx->eng, a.st.st_ino, 1);
	assert_int_equal(tc_mknod(fx->eng, TC_ROOT_INO, "dir", S_IFDIR | 0777,
				  0, &fx->ctx, &a),
			 0);
	assert_true(S_ISDIR(a.st.st_mode));
	assert_int_equal(a.st.st_mode & 07777, 0755);
	tc_forget(fx->eng, a.st.st_ino, 1);

	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "fifo", &l), 0);
	assert_true(S_ISFIFO(l.st.st_mode));
	tc_forget(fx->eng, l.st.st_ino, 1);
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "dir", &l), 0);
	assert_true(S_ISDIR(l.st.st_mode));
	tc_forget(fx->eng, l.st.st_ino, 1);
}

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
/* rename                                                             */
/* ------------------------------------------------------------------ */

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

	/* .stats at the root can be neither source nor target. */
	assert_int_equal(tc_rename(fx->eng, TC_ROOT_INO, TC_STATS_NAME,
				   TC_ROOT_INO, "s", 0),
			 -EPERM);
	assert_int_equal(tc_rename(fx->eng, TC_ROOT_INO, "file", TC_ROOT_INO,
				   TC_STATS_NAME, 0),
			 -EPERM);
	tcu_assert_value(fx, "file", "F");
}

/* ------------------------------------------------------------------ */
/* link / unlink / rmdir                                              */
/* ------------------------------------------------------------------ */

static void test_link_unlink(void **state)
{
	struct tcu *fx = *state;
	struct tc_attr a, g;
	struct tc_file *f;
	uint64_t ino, d;

	tcu_put(fx, "a", "shared");
	ino = tcu_ino_at(fx->eng, TC_ROOT_INO, "a");
	d = tcu_mkdir_at(fx, TC_ROOT_INO, "d");
	assert_int_equal(tc_link(fx->eng, ino, d, "b", &a), 0);
	assert_int_equal(a.st.st_ino, ino);
	assert_int_equal(a.st.st_nlink, 2);
	tc_forget(fx->eng, ino, 1);
	assert_int_equal(tcu_ino_at(fx->eng, d, "b"), ino);
	tcu_assert_value_at(fx, d, "b", "shared", 6);

	/* A write through one name is seen through the other. */
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, d, "b", "changed", 7),
			 0);
	tcu_assert_value(fx, "a", "changed");

	/* Errors. */
	assert_int_equal(tc_link(fx->eng, ino, TC_ROOT_INO, "a", &a), -EEXIST);
	assert_int_equal(tc_link(fx->eng, d, TC_ROOT_INO, "dlink", &a), -EPERM);
	assert_int_equal(tc_link(fx->eng, UINT64_C(0x7ffffffffff), TC_ROOT_INO,
				 "x", &a),
			 -ENOENT);

	/* Unlinking one name keeps the other. */
	assert_int_equal(tc_unlink(fx->eng, TC_ROOT_INO, "a"), 0);
	assert_false(tcu_present(fx, "a"));
	tcu_assert_value_at(fx, d, "b", "changed", 7);
	assert_int_equal(tc_getattr(fx->eng, ino, &g), 0);
	assert_int_equal(g.st.st_nlink, 1);

	/* An unlinked inode stays readable through an open handle. */
	assert_int_equal(tc_lookup(fx->eng, d, "b", &a), 0);
	assert_int_equal(tc_open(fx->eng, ino, O_RDONLY, &f), 0);
	assert_int_equal(tc_unlink(fx->eng, d, "b"), 0);
	assert_int_equal(tcu_ino_at(fx->eng, d, "b"), 0);
	{
		char *got = NULL;
		size_t n;

		assert_int_equal(tcu_read_all(f, &got, &n), 0);
		assert_string_equal(got, "changed");
		free(got);
	}
	assert_int_equal(tc_getattr(fx->eng, ino, &g), 0);
	assert_int_equal(g.st.st_nlink, 0);
	assert_int_equal(tc_release(f), 0);
	tc_forget(fx->eng, ino, 1);
	/* ... and disappears with its last reference. */
	assert_int_equal(tc_getattr(fx->eng, ino, &g), -ENOENT);
}

static void test_unlink_rmdir_errors(void **state)
{
	struct tcu *fx = *state;
	uint64_t d;

	d = tcu_mkdir_at(fx, TC_ROOT_INO, "d");
	tcu_put(fx, "f", "x");
	assert_int_equal(tc_unlink(fx->eng, TC_ROOT_INO, "d"), -EISDIR);
	assert_int_equal(tc_unlink(fx->eng, TC_ROOT_INO, "absent"), -ENOENT);
	assert_int_equal(tc_unlink(fx->eng, TC_ROOT_INO, TC_STATS_NAME), -EPERM);
	assert_int_equal(tc_rmdir(fx->eng, TC_ROOT_INO, "f"), -ENOTDIR);
	assert_int_equal(tc_rmdir(fx->eng, TC_ROOT_INO, "absent"), -ENOENT);

	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, d, "inner", "i", 1), 0);
	assert_int_equal(tc_rmdir(fx->eng, TC_ROOT_INO, "d"), -ENOTEMPTY);
	assert_int_equal(tcu_ino_at(fx->eng, TC_ROOT_INO, "d"), d);
	assert_int_equal(tc_unlink(fx->eng, d, "inner"), 0);
	assert_int_equal(tc_rmdir(fx->eng, TC_ROOT_INO, "d"), 0);
	assert_false(tcu_present(fx, "d"));
	tcu_assert_value(fx, "f", "x");
}

/* ------------------------------------------------------------------ */
/* readdir                                                            */
/* ------------------------------------------------------------------ */

#define MAX_DIRENTS 128

struct listing {
	int n;         /* entries taken */
	int limit;     /* take at most this many per call */
	uint64_t last; /* cookie of the last taken entry */
	char names[MAX_DIRENTS][32];
	uint64_t inos[MAX_DIRENTS];
	mode_t modes[MAX_DIRENTS];
	off_t sizes[MAX_DIRENTS];
	int taken_this_call;
};

static int collect(void *ctx, const char *name, const struct tc_attr *attr,
		   uint64_t off)
{
	struct listing *l = ctx;

	if (l->taken_this_call >= l->limit || l->n >= MAX_DIRENTS)
		return 1;
	snprintf(l->names[l->n], sizeof(l->names[0]), "%s", name);
	l->inos[l->n] = attr->st.st_ino;
	l->modes[l->n] = attr->st.st_mode;
	l->sizes[l->n] = attr->st.st_size;
	l->n++;
	l->taken_this_call++;
	l->last = off;
	return 0;
}

/* List @ino in pages of @page entries; returns the number of calls. */
static int list_paged(struct tcu *fx, uint64_t ino, struct listing *l,
		      int page, bool plus)
{
	uint64_t off = 0;
	int calls = 0;

	l->limit = page;
	for (;;) {
		l->taken_this_call = 0;
		assert_int_equal(tc_readdir(fx->eng, ino, off, plus, collect,
					    l),
				 0);
		calls++;
		if (l->taken_this_call == 0)
			break;
		off = l->last;
		assert_true(calls < 1000);
	}
	return calls;
}

static int find_name(const struct listing *l, const char *name)
{
	int found = -1;

	for (int i = 0; i < l->n; i++) {
		if (strcmp(l->names[i], name) == 0) {
			if (found >= 0)
				fail_msg("\"%s\" listed twice", name);
			found = i;
		}
	}
	return found;
}

static void test_readdir_cookies(void **state)
{
	struct tcu *fx = *state;
	struct listing *l = calloc(1, sizeof(*l));
	uint64_t d;
	char name[16];
	int i, k;

	assert_non_null(l);
	d = tcu_mkdir_at(fx, TC_ROOT_INO, "d");
	for (i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "f%02d", i);
		assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, d, name, name,
					    strlen(name)),
				 0);
	}
	tcu_mkdir_at(fx, d, "subdir");

	/* Pages of 5: every entry exactly once, "." and ".." included. */
	list_paged(fx, d, l, 5, false);
	assert_int_equal(l->n, 23);
	k = find_name(l, ".");
	assert_true(k >= 0);
	assert_int_equal(l->inos[k], d);
	k = find_name(l, "..");
	assert_true(k >= 0);
	assert_int_equal(l->inos[k], TC_ROOT_INO);
	for (i = 0; i < 20; i++) {
		snprintf(name, sizeof(name), "f%02d", i);
		k = find_name(l, name);
		if (k < 0)
			fail_msg("%s not listed", name);
		assert_int_equal(l->inos[k], tcu_ino_at(fx->eng, d, name));
		assert_true(S_ISREG(l->modes[k]));
	}
	k = find_name(l, "subdir");
	assert_true(k >= 0);
	assert_true(S_ISDIR(l->modes[k]));
	assert_null(find_name(l, TC_STATS_NAME) >= 0 ? "stats" : NULL);

	/* One entry per call gives the same listing. */
	memset(l, 0, sizeof(*l));
	list_paged(fx, d, l, 1, false);
	assert_int_equal(l->n, 23);

	/* Entries removed mid-listing: the rest still come exactly once. */
	memset(l, 0, sizeof(*l));
	l->limit = 8;
	assert_int_equal(tc_readdir(fx->eng, d, 0, false, collect, l), 0);
	assert_int_equal(l->n, 8);
	{
		uint64_t off = l->last;
		bool removed[20] = { false };

		/* remove two listed entries and two not yet listed */
		for (i = 0; i < 20; i += 5) {
			snprintf(name, sizeof(name), "f%02d", i);
			assert_int_equal(tc_unlink(fx->eng, d, name), 0);
			removed[i] = true;
		}
		for (;;) {
			l->taken_this_call = 0;
			assert_int_equal(tc_readdir(fx->eng, d, off, false,
						    collect, l),
					 0);
			if (l->taken_this_call == 0)
				break;
			off = l->last;
		}
		for (i = 0; i < 20; i++) {
			snprintf(name, sizeof(name), "f%02d", i);
			k = find_name(l, name); /* fails on duplicates */
			if (!removed[i] && k < 0)
				fail_msg("%s lost after a removal", name);
		}
	}

	/* An empty directory lists "." and ".." only. */
	memset(l, 0, sizeof(*l));
	list_paged(fx, tcu_ino_at(fx->eng, d, "subdir"), l, 100, false);
	assert_int_equal(l->n, 2);

	/* Errors. */
	assert_int_equal(tc_readdir(fx->eng, tcu_ino_at(fx->eng, d, "f01"), 0,
				    false, collect, l),
			 -ENOTDIR);
	assert_int_equal(tc_readdir(fx->eng, UINT64_C(0x7ffffffffff), 0, false,
				    collect, l),
			 -ENOENT);
	free(l);
}

static void test_readdir_plus_and_root(void **state)
{
	struct tcu *fx = *state;
	struct listing *l = calloc(1, sizeof(*l));
	int k;

	assert_non_null(l);
	tcu_put(fx, "one", "1");
	tcu_put(fx, "two", "22");

	/* The root lists .stats: TC_STATS_INO, mode 0444, size 0. */
	list_paged(fx, TC_ROOT_INO, l, 2, true);
	assert_int_equal(l->n, 5);
	k = find_name(l, TC_STATS_NAME);
	assert_true(k >= 0);
	assert_int_equal(l->inos[k], TC_STATS_INO);
	assert_int_equal(l->modes[k] & 07777, 0444);
	assert_int_equal(l->sizes[k], 0);
	k = find_name(l, "two");
	assert_true(k >= 0);
	assert_int_equal(l->sizes[k], 2);
	assert_int_equal(l->inos[k], tcu_ino_at(fx->eng, TC_ROOT_INO, "two"));
	/* With plus, each regular entry taken holds a lookup reference:
	 * an unlinked entry stays reachable until it is forgotten. */
	assert_int_equal(tc_unlink(fx->eng, TC_ROOT_INO, "two"), 0);
	{
		struct tc_attr g;
		uint64_t ino = l->inos[k];

		assert_int_equal(tc_getattr(fx->eng, ino, &g), 0);
		assert_int_equal(g.st.st_nlink, 0);
		tc_forget(fx->eng, ino, 1);
		assert_int_equal(tc_getattr(fx->eng, ino, &g), -ENOENT);
	}
	k = find_name(l, "one");
	assert_true(k >= 0);
	tc_forget(fx->eng, l->inos[k], 1);
	free(l);
}

/* ------------------------------------------------------------------ */
/* symlink                                                            */
/* ------------------------------------------------------------------ */

static void test_symlink(void **state)
{
	struct tcu *fx = *state;
	struct tc_attr a, l;
	char buf[64];
	uint64_t file;

	assert_int_equal(tc_symlink(fx->eng, TC_ROOT_INO, "ln", "some/target",
				    &fx->ctx, &a),
			 0);
	assert_true(S_ISLNK(a.st.st_mode));
	assert_int_equal(a.st.st_size, strlen("some/target"));
	tc_forget(fx->eng, a.st.st_ino, 1);

	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "ln", &l), 0);
	assert_int_equal(l.st.st_ino, a.st.st_ino);
	assert_true(S_ISLNK(l.st.st_mode));
	assert_int_equal(tc_readlink(fx->eng, l.st.st_ino, buf, sizeof(buf)),
			 0);
	assert_string_equal(buf, "some/target");
	assert_int_equal(tc_readlink(fx->eng, l.st.st_ino, buf, 5), -ERANGE);
	tc_forget(fx->eng, l.st.st_ino, 1);

	assert_int_equal(tc_symlink(fx->eng, TC_ROOT_INO, "ln", "other",
				    &fx->ctx, &a),
			 -EEXIST);
	tcu_put(fx, "file", "x");
	file = tcu_ino_at(fx->eng, TC_ROOT_INO, "file");
	assert_int_equal(tc_readlink(fx->eng, file, buf, sizeof(buf)), -EINVAL);

	/* A symlink renames and unlinks like a file. */
	assert_int_equal(tc_rename(fx->eng, TC_ROOT_INO, "ln", TC_ROOT_INO,
				   "ln2", 0),
			 0);
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "ln2", &l), 0);
	assert_int_equal(tc_readlink(fx->eng, l.st.st_ino, buf, sizeof(buf)),
			 0);
	assert_string_equal(buf, "some/target");
	tc_forget(fx->eng, l.st.st_ino, 1);
	assert_int_equal(tc_unlink(fx->eng, TC_ROOT_INO, "ln2"), 0);
	assert_false(tcu_present(fx, "ln2"));
}

/* ------------------------------------------------------------------ */
/* xattrs                                                             */
/* ------------------------------------------------------------------ */

/* True when NUL-separated @list of @len bytes holds @name. */
static bool list_has(const char *list, ssize_t len, const char *name)
{
	for (ssize_t i = 0; i < len; i += (ssize_t)strlen(list + i) + 1)
		if (strcmp(list + i, name) == 0)
			return true;
	return false;
}

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
	assert_true(list_has(list, n, "user.color"));
	assert_true(list_has(list, n, "user.empty"));
	assert_true(list_has(list, n, "user.bin"));
	assert_int_equal(tc_listxattr(fx->eng, ino, list, 3), -ERANGE);

	/* Remove. */
	assert_int_equal(tc_removexattr(fx->eng, ino, "user.color"), 0);
	assert_int_equal(tc_getxattr(fx->eng, ino, "user.color", buf,
				     sizeof(buf)),
			 -ENODATA);
	assert_int_equal(tc_removexattr(fx->eng, ino, "user.color"), -ENODATA);
	n = tc_listxattr(fx->eng, ino, list, sizeof(list));
	assert_true(n > 0);
	assert_false(list_has(list, n, "user.color"));

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

/* listxattr and user.tiercache.*: the attributes set on the entry are
 * listed; the computed ones are read by name only, so cp -a and rsync -aX
 * do not try to write read-only attributes back (tiercachefs.8, decided
 * after SPEC §5 was written). */
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
	assert_true(list_has(list, n, TC_XATTR_PREFIX "tags"));
	assert_true(list_has(list, n, TC_XATTR_PREFIX "ttl"));
	/* Write-only controls: never listed. */
	assert_false(list_has(list, n, TC_XATTR_PREFIX "flush"));
	assert_false(list_has(list, n, TC_XATTR_PREFIX "evict_tag"));
	n = tc_listxattr(fx->eng, TC_ROOT_INO, list, sizeof(list));
	assert_true(n >= 0);
	assert_false(list_has(list, n, TC_XATTR_PREFIX "flush"));
	assert_false(list_has(list, n, TC_XATTR_PREFIX "reset_stats"));
	/* Computed, read-only: readable by name, not listed. */
	n = tc_listxattr(fx->eng, ino, list, sizeof(list));
	assert_false(list_has(list, n, TC_XATTR_PREFIX "hash"));
	assert_false(list_has(list, n, TC_XATTR_PREFIX "tier"));
	assert_false(list_has(list, n, TC_XATTR_PREFIX "expires"));
	assert_int_equal(tc_getxattr(fx->eng, ino, TC_XATTR_PREFIX "hash", NULL,
				     0),
			 32);
	assert_true(tc_getxattr(fx->eng, ino, TC_XATTR_PREFIX "tier", NULL,
				0) > 0);
	assert_true(tc_getxattr(fx->eng, ino, TC_XATTR_PREFIX "expires", NULL,
				0) > 0);
	/* Not set: not listed. */
	assert_false(list_has(list, n, TC_XATTR_PREFIX "schema"));
}

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

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, tcu_setup, tcu_teardown)
		T(test_create_lookup_getattr),
		T(test_lookup_errors),
		T(test_mknod_types),
		T(test_setattr),
		T(test_put_get_delete),
		T(test_write_offsets),
		T(test_rename_file),
		T(test_rename_replace),
		T(test_rename_noreplace),
		T(test_rename_exchange),
		T(test_rename_dir),
		T(test_link_unlink),
		T(test_unlink_rmdir_errors),
		T(test_readdir_cookies),
		T(test_readdir_plus_and_root),
		T(test_symlink),
		T(test_xattr_user),
		T(test_xattr_tiercache),
		T(test_listxattr_tiercache),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
