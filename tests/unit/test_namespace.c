/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the namespace (engine/namespace.c): lookup, getattr, mknod
 * of every node type, symlink and readlink, hard links, unlink and rmdir,
 * readdir with resumable cookies and readdirplus references, each with the
 * errors tiercache.h documents; name rules, misses (counted once per
 * program, taken back by a creation), setgid directories and statfs.
 * Rename is in test_rename.c.
 */
#include "util.h"

#include <sys/sysmacros.h>

/* ------------------------------------------------------------------ */
/* lookup / getattr / mknod                                           */
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
	assert_int_equal(tc_mknod(fx->eng, TC_ROOT_INO, "file", S_IFREG | 0644, 0,
				  &fx->ctx, &a),
			 -EEXIST);
	assert_int_equal(tc_mknod(fx->eng, UINT64_C(0x7ffffffffff), "x",
				  S_IFREG | 0644, 0, &fx->ctx, &a),
			 -ENOENT);
	assert_int_equal(tc_mknod(fx->eng, file, "x", S_IFREG | 0644, 0,
				  &fx->ctx, &a),
			 -ENOTDIR);

	/* The daemon owns .stats: to the engine it is an ordinary name. */
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, ".stats", &a),
			 -ENOENT);
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, TC_ROOT_INO, ".stats",
				    "x", 1),
			 0);
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, ".stats", &a), 0);
	tc_forget(fx->eng, (uint64_t)a.st.st_ino, 1);
}

static void test_mknod_types(void **state)
{
	struct tcu *fx = *state;
	struct tc_attr a, l;

	assert_int_equal(tc_mknod(fx->eng, TC_ROOT_INO, "fifo", S_IFIFO | 0600, 0,
				  &fx->ctx, &a),
			 0);
	assert_true(S_ISFIFO(a.st.st_mode));
	tc_forget(fx->eng, a.st.st_ino, 1);
	assert_int_equal(tc_mknod(fx->eng, TC_ROOT_INO, "sock",
				  S_IFSOCK | 0600, 0, &fx->ctx, &a),
			 0);
	assert_true(S_ISSOCK(a.st.st_mode));
	tc_forget(fx->eng, a.st.st_ino, 1);
	assert_int_equal(tc_mknod(fx->eng, TC_ROOT_INO, "dir", S_IFDIR | 0777, 0,
				  &fx->ctx, &a),
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
	assert_null(find_name(l, ".stats") >= 0 ? "stats" : NULL);

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

	/* The engine's root lists no .stats (the daemon adds it). */
	list_paged(fx, TC_ROOT_INO, l, 2, true);
	assert_int_equal(l->n, 4);
	assert_true(find_name(l, ".stats") < 0);
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
/* Names, misses, special cases                                       */
/* ------------------------------------------------------------------ */

static void test_name_rules(void **state)
{
	struct tcu *fx = *state;
	struct tc_attr a;
	char target[4097], buf[4097];
	uint64_t d;

	tcu_put(fx, "k", "v");
	d = tcu_mkdir_at(fx, TC_ROOT_INO, "d");
	/* Empty names and names with a slash. */
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "", &a), -EINVAL);
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "d/k", &a), -EINVAL);
	assert_int_equal(tc_mknod(fx->eng, TC_ROOT_INO, "a/b", S_IFREG | 0644, 0,
				  &fx->ctx, &a),
			 -EINVAL);
	assert_int_equal(tc_symlink(fx->eng, TC_ROOT_INO, "", "t", &fx->ctx,
				    &a),
			 -EINVAL);
	assert_int_equal(tc_unlink(fx->eng, TC_ROOT_INO, ""), -EINVAL);
	assert_int_equal(tc_rmdir(fx->eng, TC_ROOT_INO, "d/"), -EINVAL);
	assert_int_equal(tc_link(fx->eng, tcu_ino_at(fx->eng, TC_ROOT_INO, "k"),
				 d, "x/y", &a),
			 -EINVAL);
	assert_int_equal(tc_rename(fx->eng, TC_ROOT_INO, "k", d, "x/y", 0),
			 -EINVAL);
	tcu_assert_value(fx, "k", "v");

	/* "." and "..". */
	assert_int_equal(tc_rmdir(fx->eng, d, "."), -EINVAL);
	assert_int_equal(tc_rmdir(fx->eng, d, ".."), -ENOTEMPTY);
	assert_int_equal(tcu_ino_at(fx->eng, TC_ROOT_INO, "d"), d);

	/* Types mknod does not make. */
	assert_int_equal(tc_mknod(fx->eng, TC_ROOT_INO, "l", S_IFLNK | 0777, 0,
				  &fx->ctx, &a),
			 -EINVAL);
	assert_int_equal(tc_mknod(fx->eng, TC_ROOT_INO, "n", 0644, 0, &fx->ctx,
				  &a),
			 -EINVAL);
	assert_false(tcu_present(fx, "l"));

	/* Symlink targets: not empty, shorter than PATH_MAX. */
	assert_int_equal(tc_symlink(fx->eng, TC_ROOT_INO, "ln", "", &fx->ctx,
				    &a),
			 -ENOENT);
	memset(target, 't', 4096);
	target[4096] = '\0';
	assert_int_equal(tc_symlink(fx->eng, TC_ROOT_INO, "ln", target,
				    &fx->ctx, &a),
			 -ENAMETOOLONG);
	target[4095] = '\0';
	assert_int_equal(tc_symlink(fx->eng, TC_ROOT_INO, "ln", target,
				    &fx->ctx, &a),
			 0);
	assert_int_equal(a.st.st_size, 4095);
	assert_int_equal(tc_readlink(fx->eng, a.st.st_ino, buf, sizeof(buf)),
			 0);
	assert_string_equal(buf, target);
	tc_forget(fx->eng, a.st.st_ino, 1);
}

static void test_misses(void **state)
{
	struct tcu *fx = *state;
	struct tc_attr a;
	uint64_t d, k;

	tcu_put(fx, "k", "v");
	k = tcu_ino_at(fx->eng, TC_ROOT_INO, "k");
	d = tcu_mkdir_at(fx, TC_ROOT_INO, "d");
	tc_engine_reset_stats(fx->eng);

	/* A lookup of an absent name is a miss; the kernel asking again at
	 * once (revalidation, then a fresh lookup) is the same one. */
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "x", &a), -ENOENT);
	tcu_assert_stat(fx->eng, "misses", 1);
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "x", &a), -ENOENT);
	tcu_assert_stat(fx->eng, "misses", 1);
	/* Later, it is another program asking: another miss. */
	tcu_advance(fx, TCU_SEC);
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "x", &a), -ENOENT);
	tcu_assert_stat(fx->eng, "misses", 2);
	/* Another name, or the same name in another directory. */
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "y", &a), -ENOENT);
	assert_int_equal(tc_lookup(fx->eng, d, "y", &a), -ENOENT);
	tcu_assert_stat(fx->eng, "misses", 4);

	/* A miss the name's creation follows was a put: taken back, by
	 * mknod, symlink, link and rename alike. */
	tcu_advance(fx, TCU_SEC);
	assert_int_equal(tc_lookup(fx->eng, d, "n1", &a), -ENOENT);
	assert_int_equal(tc_mknod(fx->eng, d, "n1", S_IFIFO | 0600, 0, &fx->ctx,
				  &a),
			 0);
	tc_forget(fx->eng, a.st.st_ino, 1);
	assert_int_equal(tc_lookup(fx->eng, d, "n2", &a), -ENOENT);
	assert_int_equal(tc_symlink(fx->eng, d, "n2", "t", &fx->ctx, &a), 0);
	tc_forget(fx->eng, a.st.st_ino, 1);
	assert_int_equal(tc_lookup(fx->eng, d, "n3", &a), -ENOENT);
	assert_int_equal(tc_link(fx->eng, k, d, "n3", &a), 0);
	tc_forget(fx->eng, k, 1);
	assert_int_equal(tc_lookup(fx->eng, d, "n4", &a), -ENOENT);
	assert_int_equal(tc_rename(fx->eng, TC_ROOT_INO, "k", d, "n4", 0), 0);
	tcu_assert_stat(fx->eng, "misses", 4);

	/* No directory to look in: an error, not a miss. */
	assert_int_equal(tc_lookup(fx->eng, UINT64_C(0x7ffffffffff), "z", &a),
			 -ENOENT);
	assert_int_equal(tc_lookup(fx->eng, k, "z", &a), -ENOTDIR);
	tcu_assert_stat(fx->eng, "misses", 4);
}

static void test_removed_directory_and_inode(void **state)
{
	struct tcu *fx = *state;
	struct tc_attr a, root;
	struct listing *l = calloc(1, sizeof(*l));
	uint64_t d, k;

	assert_non_null(l);
	assert_int_equal(tc_getattr(fx->eng, TC_ROOT_INO, &root), 0);
	assert_int_equal(root.st.st_nlink, 2);
	assert_int_equal(tc_mknod(fx->eng, TC_ROOT_INO, "d", S_IFDIR | 0755, 0,
				  &fx->ctx, &a),
			 0);
	d = a.st.st_ino;
	assert_int_equal(a.st.st_nlink, 2);
	/* A subdirectory's ".." is a link to its parent. */
	assert_int_equal(tc_getattr(fx->eng, TC_ROOT_INO, &root), 0);
	assert_int_equal(root.st.st_nlink, 3);

	/* Removed while the kernel still knows it: nothing can go in. */
	assert_int_equal(tc_rmdir(fx->eng, TC_ROOT_INO, "d"), 0);
	assert_int_equal(tc_getattr(fx->eng, TC_ROOT_INO, &root), 0);
	assert_int_equal(root.st.st_nlink, 2);
	assert_int_equal(tc_lookup(fx->eng, d, "x", &a), -ENOENT);
	assert_int_equal(tc_mknod(fx->eng, d, "x", S_IFREG | 0644, 0, &fx->ctx,
				  &a),
			 -ENOENT);
	assert_int_equal(tc_readdir(fx->eng, d, 0, false, collect, l),
			 -ENOENT);
	tc_forget(fx->eng, d, 1);

	/* An unlinked inode cannot get a name back. */
	tcu_put(fx, "k", "v");
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "k", &a), 0);
	k = a.st.st_ino;
	assert_int_equal(tc_unlink(fx->eng, TC_ROOT_INO, "k"), 0);
	assert_int_equal(tc_link(fx->eng, k, TC_ROOT_INO, "back", &a), -ENOENT);
	assert_false(tcu_present(fx, "back"));
	tc_forget(fx->eng, k, 1);
	free(l);
}

static void test_setgid_directory(void **state)
{
	struct tcu *fx = *state;
	struct stat st = { 0 };
	struct tc_attr a;
	uint64_t g;

	g = tcu_mkdir_at(fx, TC_ROOT_INO, "g");
	st.st_mode = 02775;
	st.st_gid = 4242;
	assert_int_equal(tc_setattr(fx->eng, g, &st, TC_SET_MODE | TC_SET_GID,
				    NULL, &a),
			 0);
	assert_int_equal(a.st.st_mode & 07777, 02775);
	/* New entries take the directory's group; a new directory its
	 * setgid bit too. */
	assert_int_equal(tc_mknod(fx->eng, g, "f", S_IFREG | 0666, 0, &fx->ctx,
				  &a),
			 0);
	assert_int_equal(a.st.st_gid, 4242);
	assert_int_equal(a.st.st_mode & 07777, 0644);
	tc_forget(fx->eng, a.st.st_ino, 1);
	assert_int_equal(tc_mknod(fx->eng, g, "sub", S_IFDIR | 0777, 0, &fx->ctx,
				  &a),
			 0);
	assert_int_equal(a.st.st_gid, 4242);
	assert_int_equal(a.st.st_mode & 07777, 02755);
	tc_forget(fx->eng, a.st.st_ino, 1);
	/* Elsewhere, the caller's group. */
	assert_int_equal(tc_mknod(fx->eng, TC_ROOT_INO, "f", S_IFREG | 0666, 0,
				  &fx->ctx, &a),
			 0);
	assert_int_equal(a.st.st_gid, fx->ctx.gid);
	tc_forget(fx->eng, a.st.st_ino, 1);
}

static void test_statfs(void **state)
{
	struct tcu *fx = *state;
	struct tc_statfs sf;
	struct tc_attr a;
	uint64_t ino;

	tc_statfs(fx->eng, &sf);
	assert_int_equal(sf.items, 0);
	assert_int_equal(sf.used_bytes, 0);
	assert_int_equal(sf.limit_bytes, 10ull << 30);
	assert_int_equal(sf.limit_items, 0);

	tcu_put_fill(fx, "a", 1000, 1);
	tcu_put_fill(fx, "b", 2000, 2);
	tcu_mkdir_at(fx, TC_ROOT_INO, "d"); /* directories hold nothing */
	ino = tcu_ino_at(fx->eng, TC_ROOT_INO, "b");
	assert_int_equal(tc_link(fx->eng, ino, TC_ROOT_INO, "b2", &a), 0);
	tc_forget(fx->eng, ino, 1);
	tc_statfs(fx->eng, &sf);
	assert_int_equal(sf.items, 2); /* a link is the same entry */
	assert_int_equal(sf.used_bytes, 3000);
	assert_int_equal(tc_unlink(fx->eng, TC_ROOT_INO, "a"), 0);
	tc_statfs(fx->eng, &sf);
	assert_int_equal(sf.items, 1);
	assert_int_equal(sf.used_bytes, 2000);

	/* Without disk_size, the store's filesystem is the limit. */
	fx->cfg.disk_size = 0;
	fx->cfg.disk_items = 5;
	tcu_reopen(fx);
	tc_statfs(fx->eng, &sf);
	assert_true(sf.limit_bytes >= sf.used_bytes && sf.limit_bytes > 0);
	assert_int_equal(sf.limit_items, 5);
	assert_int_equal(sf.items, 1);
}

/* ------------------------------------------------------------------ */
/* Device nodes                                                       */
/* ------------------------------------------------------------------ */

static void test_mknod_devices(void **state)
{
	struct tcu *fx = *state;
	const dev_t null = makedev(1, 3), disk = makedev(259, 65537);
	struct tc_attr a;
	struct tc_file *f;
	uint64_t chr, blk;

	assert_int_equal(tc_mknod(fx->eng, TC_ROOT_INO, "null", S_IFCHR | 0666,
				  null, &fx->ctx, &a),
			 0);
	assert_true(S_ISCHR(a.st.st_mode));
	assert_int_equal(a.st.st_mode & 07777, 0644); /* umask 022 */
	assert_int_equal(a.st.st_rdev, null);
	assert_int_equal(a.st.st_size, 0);
	chr = a.st.st_ino;
	tc_forget(fx->eng, chr, 1);
	assert_int_equal(tc_mknod(fx->eng, TC_ROOT_INO, "disk", S_IFBLK | 0600,
				  disk, &fx->ctx, &a),
			 0);
	assert_true(S_ISBLK(a.st.st_mode));
	assert_int_equal(a.st.st_rdev, disk);
	assert_int_equal(major(a.st.st_rdev), 259);
	assert_int_equal(minor(a.st.st_rdev), 65537);
	blk = a.st.st_ino;
	tc_forget(fx->eng, blk, 1);
	/* Other types ignore rdev. */
	assert_int_equal(tc_mknod(fx->eng, TC_ROOT_INO, "fifo", S_IFIFO | 0600,
				  null, &fx->ctx, &a),
			 0);
	assert_int_equal(a.st.st_rdev, 0);
	tc_forget(fx->eng, a.st.st_ino, 1);
	assert_int_equal(tc_mknod(fx->eng, TC_ROOT_INO, "null", S_IFCHR | 0666,
				  null, &fx->ctx, &a),
			 -EEXIST);

	/* No content: not opened through the engine. */
	assert_int_equal(tc_open(fx->eng, chr, O_RDONLY, &f), -EINVAL);

	/* Link, rename, getattr keep the numbers; after a reopen too. */
	assert_int_equal(tc_link(fx->eng, chr, TC_ROOT_INO, "null2", &a), 0);
	assert_int_equal(a.st.st_nlink, 2);
	assert_int_equal(a.st.st_rdev, null);
	tc_forget(fx->eng, chr, 1);
	assert_int_equal(tc_rename(fx->eng, TC_ROOT_INO, "disk", TC_ROOT_INO,
				   "sda", 0),
			 0);
	tcu_reopen(fx);
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "null2", &a), 0);
	assert_true(S_ISCHR(a.st.st_mode));
	assert_int_equal(a.st.st_rdev, null);
	assert_int_equal(a.st.st_nlink, 2);
	tc_forget(fx->eng, a.st.st_ino, 1);
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "sda", &a), 0);
	assert_true(S_ISBLK(a.st.st_mode));
	assert_int_equal(a.st.st_rdev, disk);
	assert_int_equal(tc_getattr(fx->eng, a.st.st_ino, &a), 0);
	assert_int_equal(a.st.st_rdev, disk);
	tc_forget(fx->eng, a.st.st_ino, 1);
	assert_int_equal(tc_unlink(fx->eng, TC_ROOT_INO, "null"), 0);
	assert_int_equal(tc_unlink(fx->eng, TC_ROOT_INO, "null2"), 0);
	assert_int_equal(tc_unlink(fx->eng, TC_ROOT_INO, "sda"), 0);
	assert_false(tcu_present(fx, "null2"));
	/* Device nodes are not cache items. */
	tcu_assert_stat(fx->eng, "disk_items", 0);
}
int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, tcu_setup, tcu_teardown)
		T(test_create_lookup_getattr),
		T(test_lookup_errors),
		T(test_mknod_types),
		T(test_link_unlink),
		T(test_unlink_rmdir_errors),
		T(test_readdir_cookies),
		T(test_readdir_plus_and_root),
		T(test_symlink),
		T(test_name_rules),
		T(test_misses),
		T(test_removed_directory_and_inode),
		T(test_setgid_directory),
		T(test_statfs),
		T(test_mknod_devices),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
