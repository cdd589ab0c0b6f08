/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the index layer (engine/index.c, engine/index_query.c):
 * a struct tc_index opened directly on a temporary store, no engine around
 * it, driven through the tc_index_* functions of engine_i.h. Inode rows,
 * dentries, names, listings, blob rows, pending blob files, user.*
 * attributes, tags, the scans eviction, expiry and flush walk, meta and the
 * directory flags, the clean-shutdown mark and its counters, and the
 * refusal of a newer format and of a file that is no index.
 *
 * The index asserts its lock in debug builds: each test holds it from
 * setup to teardown, as the engine lock would be held.
 */
#include "engine_i.h"
#include "util.h"

struct ixf {
	char dir[64];
	int64_t now;
	struct tc_base base;
	struct tc_mutex lock;
	struct tc_index ix;
	struct tc_index_counters c;
};

static int64_t ixf_clock(void *ctx)
{
	return ((struct ixf *)ctx)->now;
}

/* Open (creating) the index of store @dir into @ix. */
static int ix_open_at(struct ixf *f, const char *dir, struct tc_index *ix,
		      bool create, struct tc_index_counters *c)
{
	memset(ix, 0, sizeof(*ix));
	memset(c, 0, sizeof(*c));
	return tc_index_open(ix, dir, &f->base, &f->lock, false, create, c);
}

static void ix_reopen(struct ixf *f)
{
	tc_index_close(&f->ix);
	assert_int_equal(ix_open_at(f, f->dir, &f->ix, true, &f->c), 0);
}

static int ix_setup(void **state)
{
	struct ixf *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	strcpy(f->dir, "/tmp/tcindex.XXXXXX");
	if (!mkdtemp(f->dir)) {
		free(f);
		return -1;
	}
	f->now = TCU_EPOCH_NS;
	f->base = (struct tc_base){ tcu_log, NULL, TC_LOG_WARNING, ixf_clock,
				    f };
	tc_mutex_init(&f->lock);
	tc_mutex_lock(&f->lock);
	if (ix_open_at(f, f->dir, &f->ix, true, &f->c)) {
		tc_index_close(&f->ix);
		tc_mutex_unlock(&f->lock);
		tcu_rm_rf(f->dir);
		free(f);
		return -1;
	}
	*state = f;
	return 0;
}

static int ix_teardown(void **state)
{
	struct ixf *f = *state;

	tc_index_close(&f->ix);
	tc_mutex_unlock(&f->lock);
	tc_mutex_destroy(&f->lock);
	tcu_rm_rf(f->dir);
	free(f);
	return 0;
}

/* A row of type @mode with nothing optional set. */
static struct tc_inode row(uint32_t mode)
{
	struct tc_inode m = { 0 };

	m.mode = mode;
	m.nlink = S_ISDIR(mode) ? 2 : 1;
	m.uid = 1000;
	m.gid = 100;
	m.atime = m.mtime = m.ctime = TCU_EPOCH_NS;
	m.ttl = m.dttl = -1;
	m.ttl_mode = m.dttl_mode = -1;
	m.lru = TCU_EPOCH_NS;
	return m;
}

static uint64_t insert(struct ixf *f, struct tc_inode *m)
{
	uint64_t last;

	/* The engine numbers inodes (from tc_index_last_ino()); so do we. */
	assert_int_equal(tc_index_last_ino(&f->ix, &last), 0);
	m->ino = last + 1;
	assert_int_equal(tc_index_inode_insert(&f->ix, m), 0);
	assert_true(m->ino > TC_ROOT_INO);
	return m->ino;
}

/* A new inode of type @mode named @parent/@name, last used at @lru. */
static uint64_t make(struct ixf *f, uint64_t parent, const char *name,
		     uint32_t mode, int64_t lru)
{
	struct tc_inode m = row(mode);
	uint64_t ino;

	m.lru = lru;
	ino = insert(f, &m);
	assert_int_equal(tc_index_dentry_insert(&f->ix, parent, name, ino), 0);
	return ino;
}

static void hash_of(const char *s, uint8_t h[TC_HASH_LEN])
{
	tc_hash_buf(s, strlen(s), h);
}

/* ------------------------------------------------------------------ */
/* Inode rows                                                         */
/* ------------------------------------------------------------------ */

static void test_inode_round_trip(void **state)
{
	struct ixf *f = *state;
	struct tc_inode m = row(S_IFREG | 0640), got, bare, d;
	char buf[16];
	uint64_t ino, sym;

	/* The root exists from the start. */
	assert_int_equal(tc_index_inode_get(&f->ix, TC_ROOT_INO, &got), 0);
	assert_true(S_ISDIR(got.mode));
	assert_int_equal(got.nlink, 2);

	m.rdev = 0;
	m.size = 42;
	m.atime = 11;
	m.mtime = 12;
	m.ctime = 13;
	m.hash_set = true;
	for (int i = 0; i < TC_HASH_LEN; i++)
		m.hash[i] = (uint8_t)(i * 17);
	m.ttl = 5 * TCU_SEC;
	m.ttl_mode = TC_TTL_SLIDING;
	m.dttl = 7 * TCU_SEC;
	m.dttl_mode = TC_TTL_ABSOLUTE;
	m.expires = TCU_EPOCH_NS + TCU_HOUR;
	strcpy(m.schema, "v1.2");
	m.lru = 99;
	ino = insert(f, &m);
	assert_int_equal(tc_index_inode_get(&f->ix, ino, &got), 0);
	assert_int_equal(got.ino, ino);
	assert_int_equal(got.mode, S_IFREG | 0640);
	assert_int_equal(got.uid, 1000);
	assert_int_equal(got.gid, 100);
	assert_int_equal(got.nlink, 1);
	assert_int_equal(got.size, 42);
	assert_int_equal(got.atime, 11);
	assert_int_equal(got.mtime, 12);
	assert_int_equal(got.ctime, 13);
	assert_true(got.hash_set);
	assert_memory_equal(got.hash, m.hash, TC_HASH_LEN);
	assert_int_equal(got.ttl, 5 * TCU_SEC);
	assert_int_equal(got.ttl_mode, TC_TTL_SLIDING);
	assert_int_equal(got.dttl, 7 * TCU_SEC);
	assert_int_equal(got.dttl_mode, TC_TTL_ABSOLUTE);
	assert_int_equal(got.expires, TCU_EPOCH_NS + TCU_HOUR);
	assert_string_equal(got.schema, "v1.2");
	assert_int_equal(got.lru, 99);

	/* Unset fields read back unset. */
	bare = row(S_IFREG | 0600);
	ino = insert(f, &bare);
	assert_int_equal(tc_index_inode_get(&f->ix, ino, &got), 0);
	assert_false(got.hash_set);
	assert_int_equal(got.ttl, -1);
	assert_int_equal(got.ttl_mode, -1);
	assert_int_equal(got.dttl, -1);
	assert_int_equal(got.dttl_mode, -1);
	assert_int_equal(got.expires, 0);
	assert_string_equal(got.schema, "");

	/* Only regular files have a recency. */
	d = row(S_IFDIR | 0755);
	d.lru = 77;
	insert(f, &d);
	assert_int_equal(tc_index_inode_get(&f->ix, d.ino, &got), 0);
	assert_int_equal(got.lru, 0);

	/* Update. */
	got = bare;
	got.ino = ino;
	got.size = 1234;
	got.ttl = TCU_MIN;
	got.expires = 555;
	strcpy(got.schema, "s");
	assert_int_equal(tc_index_inode_update(&f->ix, &got), 0);
	assert_int_equal(tc_index_inode_get(&f->ix, ino, &got), 0);
	assert_int_equal(got.size, 1234);
	assert_int_equal(got.ttl, TCU_MIN);
	assert_int_equal(got.expires, 555);
	assert_string_equal(got.schema, "s");

	/* A symlink's target. */
	m = row(S_IFLNK | 0777);
	m.target = "a/b";
	m.size = 3;
	sym = insert(f, &m);
	assert_int_equal(tc_index_readlink(&f->ix, sym, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "a/b");
	assert_int_equal(tc_index_readlink(&f->ix, sym, buf, 4), 0);
	assert_int_equal(tc_index_readlink(&f->ix, sym, buf, 3), -ERANGE);

	assert_int_equal(tc_index_inode_get(&f->ix, UINT64_C(0x7ffffffffff),
					    &got),
			 -ENOENT);
}

static int count_tag(void *ctx, const char *tag)
{
	(void)tag;
	(*(int *)ctx)++;
	return 0;
}

static void test_inode_purge(void **state)
{
	struct ixf *f = *state;
	struct tc_inode m = row(S_IFREG | 0644), got;
	char tags[1][65] = { "t" };
	uint64_t ino, other, *inos, next;
	size_t n;
	int ntags = 0;
	char buf[8];

	ino = insert(f, &m);
	m = row(S_IFREG | 0644);
	other = insert(f, &m);
	assert_int_equal(tc_index_xattr_set(&f->ix, ino, "user.a", "1", 1), 0);
	assert_int_equal(tc_index_xattr_set(&f->ix, other, "user.a", "2", 1),
			 0);
	assert_int_equal(tc_index_tags_set(&f->ix, ino, tags, 1), 0);
	assert_int_equal(tc_index_tags_set(&f->ix, other, tags, 1), 0);

	/* The row goes with its attributes and tags; the other stays. */
	assert_int_equal(tc_index_inode_purge(&f->ix, ino), 0);
	assert_int_equal(tc_index_inode_get(&f->ix, ino, &got), -ENOENT);
	assert_int_equal(tc_index_xattr_get(&f->ix, ino, "user.a", buf,
					    sizeof(buf)),
			 -ENODATA);
	assert_int_equal(tc_index_tags_of(&f->ix, ino, count_tag, &ntags), 0);
	assert_int_equal(ntags, 0);
	assert_int_equal(tc_index_tag_inos(&f->ix, "t", &inos, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(inos[0], other);
	free(inos);
	assert_int_equal(tc_index_xattr_get(&f->ix, other, "user.a", buf,
					    sizeof(buf)),
			 1);

	/* Inode numbers are never reused, not even the last one's. */
	assert_int_equal(tc_index_inode_purge(&f->ix, other), 0);
	m = row(S_IFREG | 0644);
	next = insert(f, &m);
	assert_true(next > other);
}

static void test_set_lru_and_orphans(void **state)
{
	struct ixf *f = *state;
	struct tc_inode m = row(S_IFREG | 0644), got;
	uint64_t ino, dir, gone, *orph;
	size_t n;

	m.lru = 100;
	m.expires = 1000;
	ino = insert(f, &m);
	dir = make(f, TC_ROOT_INO, "d", S_IFDIR | 0755, 0);

	/* Recency only moves forward. */
	assert_int_equal(tc_index_set_lru(&f->ix, ino, 50, 0), 0);
	assert_int_equal(tc_index_inode_get(&f->ix, ino, &got), 0);
	assert_int_equal(got.lru, 100);
	assert_int_equal(got.expires, 1000);
	assert_int_equal(tc_index_set_lru(&f->ix, ino, 200, 0), 0);
	assert_int_equal(tc_index_inode_get(&f->ix, ino, &got), 0);
	assert_int_equal(got.lru, 200);
	assert_int_equal(got.expires, 1000); /* 0: deadline unchanged */
	assert_int_equal(tc_index_set_lru(&f->ix, ino, 300, 5000), 0);
	assert_int_equal(tc_index_inode_get(&f->ix, ino, &got), 0);
	assert_int_equal(got.lru, 300);
	assert_int_equal(got.expires, 5000);
	/* A directory has no recency to set. */
	assert_int_equal(tc_index_set_lru(&f->ix, dir, 400, 0), 0);
	assert_int_equal(tc_index_inode_get(&f->ix, dir, &got), 0);
	assert_int_equal(got.lru, 0);

	/* Orphans: rows without links. */
	assert_int_equal(tc_index_orphans(&f->ix, &orph, &n), 0);
	assert_int_equal(n, 0);
	free(orph);
	m = row(S_IFREG | 0644);
	m.nlink = 0;
	gone = insert(f, &m);
	assert_int_equal(tc_index_orphans(&f->ix, &orph, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(orph[0], gone);
	free(orph);
}

/* ------------------------------------------------------------------ */
/* Dentries and names                                                 */
/* ------------------------------------------------------------------ */

static void test_dentries(void **state)
{
	struct ixf *f = *state;
	static const char odd[] = "\xff\x01 odd \x7f";
	uint64_t d, file, got, parent;

	d = make(f, TC_ROOT_INO, "d", S_IFDIR | 0755, 0);
	file = make(f, d, "f", S_IFREG | 0644, 1);
	assert_int_equal(tc_index_dentry_get(&f->ix, TC_ROOT_INO, "d", &got),
			 0);
	assert_int_equal(got, d);
	assert_int_equal(tc_index_dentry_get(&f->ix, d, "f", &got), 0);
	assert_int_equal(got, file);
	assert_int_equal(tc_index_dentry_get(&f->ix, d, "absent", &got),
			 -ENOENT);
	assert_int_equal(tc_index_dentry_get(&f->ix, TC_ROOT_INO, "f", &got),
			 -ENOENT);
	/* A name is unique in its directory. */
	assert_int_equal(tc_index_dentry_insert(&f->ix, d, "f", d), -EEXIST);
	/* Names are bytes. */
	assert_int_equal(tc_index_dentry_insert(&f->ix, d, odd, file), 0);
	assert_int_equal(tc_index_dentry_get(&f->ix, d, odd, &got), 0);
	assert_int_equal(got, file);

	assert_false(tc_index_dir_empty(&f->ix, d));
	assert_true(tc_index_dir_empty(&f->ix, file));
	assert_int_equal(tc_index_parent_of(&f->ix, file, &parent), 0);
	assert_int_equal(parent, d);
	assert_int_equal(tc_index_parent_of(&f->ix, TC_ROOT_INO, &parent),
			 -ENOENT);

	/* Move across directories. */
	assert_int_equal(tc_index_dentry_move(&f->ix, d, "f", TC_ROOT_INO,
					      "g"),
			 0);
	assert_int_equal(tc_index_dentry_get(&f->ix, d, "f", &got), -ENOENT);
	assert_int_equal(tc_index_dentry_get(&f->ix, TC_ROOT_INO, "g", &got),
			 0);
	assert_int_equal(got, file);

	/* Delete one name, then every name of the inode. */
	assert_int_equal(tc_index_dentry_delete(&f->ix, TC_ROOT_INO, "g"), 0);
	assert_int_equal(tc_index_dentry_get(&f->ix, TC_ROOT_INO, "g", &got),
			 -ENOENT);
	assert_int_equal(tc_index_dentry_insert(&f->ix, TC_ROOT_INO, "h",
						file),
			 0);
	assert_int_equal(tc_index_dentries_drop(&f->ix, file), 0);
	assert_int_equal(tc_index_dentry_get(&f->ix, TC_ROOT_INO, "h", &got),
			 -ENOENT);
	assert_int_equal(tc_index_dentry_get(&f->ix, d, odd, &got), -ENOENT);
	assert_true(tc_index_dir_empty(&f->ix, d));
	assert_int_equal(tc_index_parent_of(&f->ix, file, &parent), -ENOENT);
}

static void test_transactions(void **state)
{
	struct ixf *f = *state;
	uint64_t got;

	assert_false(tc_index_in_txn(&f->ix));
	assert_int_equal(tc_index_begin(&f->ix), 0);
	assert_true(tc_index_in_txn(&f->ix));
	make(f, TC_ROOT_INO, "undone", S_IFREG | 0644, 1);
	tc_index_rollback(&f->ix);
	assert_false(tc_index_in_txn(&f->ix));
	assert_int_equal(tc_index_dentry_get(&f->ix, TC_ROOT_INO, "undone",
					     &got),
			 -ENOENT);

	assert_int_equal(tc_index_begin(&f->ix), 0);
	make(f, TC_ROOT_INO, "kept", S_IFREG | 0644, 1);
	assert_int_equal(tc_index_commit(&f->ix, true), 0);
	assert_false(tc_index_in_txn(&f->ix));
	assert_int_equal(tc_index_checkpoint(&f->ix), 0);
	ix_reopen(f);
	assert_int_equal(tc_index_dentry_get(&f->ix, TC_ROOT_INO, "kept", &got),
			 0);
	/* A rollback without a transaction does nothing. */
	tc_index_rollback(&f->ix);
	assert_false(tc_index_in_txn(&f->ix));
}

#define MAX_NAMES 16

struct names {
	int n, stop_after;
	uint64_t parent[MAX_NAMES], ino[MAX_NAMES];
	char name[MAX_NAMES][32];
};

static int collect_name(void *ctx, uint64_t parent, const char *name,
			size_t len, uint64_t ino)
{
	struct names *s = ctx;

	assert_true(s->n < MAX_NAMES && len < sizeof(s->name[0]));
	s->parent[s->n] = parent;
	s->ino[s->n] = ino;
	memcpy(s->name[s->n], name, len); /* not NUL-terminated */
	s->name[s->n][len] = '\0';
	s->n++;
	return s->stop_after && s->n >= s->stop_after;
}

/* Index of @parent/@name in @s (exactly once), or -1. */
static int find_name(const struct names *s, uint64_t parent, const char *name)
{
	int at = -1;

	for (int i = 0; i < s->n; i++)
		if (s->parent[i] == parent && !strcmp(s->name[i], name)) {
			assert_int_equal(at, -1);
			at = i;
		}
	return at;
}

static void test_names_of(void **state)
{
	struct ixf *f = *state;
	struct names s = { 0 };
	uint64_t d, sub, file, x, lone;
	struct tc_inode m = row(S_IFREG | 0644);

	d = make(f, TC_ROOT_INO, "d", S_IFDIR | 0755, 0);
	file = make(f, TC_ROOT_INO, "a", S_IFREG | 0644, 1);
	assert_int_equal(tc_index_dentry_insert(&f->ix, d, "b", file), 0);
	assert_int_equal(tc_index_dentry_insert(&f->ix, d, "c", file), 0);
	lone = insert(f, &m);

	assert_int_equal(tc_index_names_of(&f->ix, file, collect_name, &s), 0);
	assert_int_equal(s.n, 3);
	assert_true(find_name(&s, TC_ROOT_INO, "a") >= 0);
	assert_true(find_name(&s, d, "b") >= 0);
	assert_true(find_name(&s, d, "c") >= 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(s.ino[i], file);

	/* A nonzero return stops the iteration. */
	memset(&s, 0, sizeof(s));
	s.stop_after = 1;
	assert_int_equal(tc_index_names_of(&f->ix, file, collect_name, &s), 0);
	assert_int_equal(s.n, 1);
	memset(&s, 0, sizeof(s));
	assert_int_equal(tc_index_names_of(&f->ix, lone, collect_name, &s), 0);
	assert_int_equal(s.n, 0);

	/* Every name in a directory and below it, not beside it. */
	sub = make(f, d, "sub", S_IFDIR | 0755, 0);
	x = make(f, sub, "x", S_IFREG | 0644, 1);
	memset(&s, 0, sizeof(s));
	assert_int_equal(tc_index_subtree_names(&f->ix, d, collect_name, &s),
			 0);
	assert_int_equal(s.n, 4);
	assert_true(find_name(&s, d, "b") >= 0);
	assert_true(find_name(&s, d, "c") >= 0);
	assert_int_equal(s.ino[find_name(&s, d, "sub")], sub);
	assert_int_equal(s.ino[find_name(&s, sub, "x")], x);
	assert_int_equal(find_name(&s, TC_ROOT_INO, "a"), -1);
}

struct dirents {
	struct ixf *f;
	int n, stop_after;
	uint64_t id[32], ino[32];
	char name[32][8];
};

static int collect_dirent(void *ctx, uint64_t id, const char *name,
			  size_t len, const struct tc_inode *m)
{
	struct dirents *l = ctx;
	struct tc_inode again;

	assert_true(l->n < 32 && len < sizeof(l->name[0]));
	memcpy(l->name[l->n], name, len); /* not NUL-terminated */
	l->name[l->n][len] = '\0';
	/* The callback may use the other index functions. */
	assert_int_equal(tc_index_inode_get(&l->f->ix, m->ino, &again), 0);
	assert_int_equal(again.mode, m->mode);
	l->id[l->n] = id;
	l->ino[l->n] = m->ino;
	l->n++;
	return l->stop_after && l->n >= l->stop_after;
}

static void test_list_dir_paging(void **state)
{
	struct ixf *f = *state;
	struct dirents *l = calloc(1, sizeof(*l));
	uint64_t d, inos[10];
	char name[8];

	assert_non_null(l);
	d = make(f, TC_ROOT_INO, "d", S_IFDIR | 0755, 0);
	/* Created in reverse name order: a listing follows creation. */
	for (int i = 9; i >= 0; i--) {
		snprintf(name, sizeof(name), "n%02d", i);
		inos[i] = make(f, d, name, S_IFREG | 0644, 1);
	}
	l->f = f;
	assert_int_equal(tc_index_list_dir(&f->ix, d, 0, collect_dirent, l), 0);
	assert_int_equal(l->n, 10);
	for (int i = 0; i < 10; i++) {
		snprintf(name, sizeof(name), "n%02d", 9 - i);
		assert_string_equal(l->name[i], name);
		assert_int_equal(l->ino[i], inos[9 - i]);
		if (i)
			assert_true(l->id[i] > l->id[i - 1]);
	}

	/* Resume after the 4th entry's id: the 6 others, in order. */
	{
		uint64_t after = l->id[3], ids[10];

		memcpy(ids, l->id, sizeof(ids));
		memset(l, 0, sizeof(*l));
		l->f = f;
		assert_int_equal(tc_index_list_dir(&f->ix, d, after,
						   collect_dirent, l),
				 0);
		assert_int_equal(l->n, 6);
		for (int i = 0; i < 6; i++)
			assert_int_equal(l->id[i], ids[4 + i]);
	}

	/* A nonzero return stops the listing. */
	memset(l, 0, sizeof(*l));
	l->f = f;
	l->stop_after = 3;
	assert_int_equal(tc_index_list_dir(&f->ix, d, 0, collect_dirent, l), 0);
	assert_int_equal(l->n, 3);
	memset(l, 0, sizeof(*l));
	l->f = f;
	assert_int_equal(tc_index_list_dir(&f->ix, inos[0], 0, collect_dirent,
					   l),
			 0);
	assert_int_equal(l->n, 0);
	free(l);
}

/* ------------------------------------------------------------------ */
/* Blob rows and pending blob files                                   */
/* ------------------------------------------------------------------ */

static void test_blob_rows(void **state)
{
	struct ixf *f = *state;
	static const char data[] = "inline data";
	uint8_t hi[TC_HASH_LEN], hf[TC_HASH_LEN], hu[TC_HASH_LEN];
	char buf[32];
	int64_t refs;
	uint64_t size;
	bool file;

	hash_of(data, hi);
	hash_of("file", hf);
	hash_of("unknown", hu);

	/* Inline: the first reference inserts the row with the data. */
	assert_int_equal(tc_index_blob_refs(&f->ix, hi), 0);
	assert_int_equal(tc_index_blob_ref(&f->ix, hi, strlen(data), data), 0);
	assert_int_equal(tc_index_blob_refs(&f->ix, hi), 1);
	assert_true(tc_index_blob_is_inline(&f->ix, hi));
	assert_int_equal(tc_index_blob_data(&f->ix, hi, buf, strlen(data)), 0);
	assert_memory_equal(buf, data, strlen(data));
	assert_int_equal(tc_index_blob_data(&f->ix, hi, buf, strlen(data) - 1),
			 -EIO);
	assert_int_equal(tc_index_blob_ref(&f->ix, hi, strlen(data), NULL), 0);
	assert_int_equal(tc_index_blob_refs(&f->ix, hi), 2);
	assert_true(tc_index_blob_is_inline(&f->ix, hi)); /* data kept */

	assert_int_equal(tc_index_blob_unref(&f->ix, hi, &refs, &size, &file),
			 0);
	assert_int_equal(refs, 1);
	assert_int_equal(size, strlen(data));
	assert_false(file);
	assert_int_equal(tc_index_blob_unref(&f->ix, hi, &refs, &size, &file),
			 0);
	assert_int_equal(refs, 0); /* the last reference takes the row */
	assert_int_equal(tc_index_blob_refs(&f->ix, hi), 0);
	assert_false(tc_index_blob_is_inline(&f->ix, hi));
	assert_int_equal(tc_index_blob_data(&f->ix, hi, buf, strlen(data)),
			 -ENOENT);

	/* In a file: no data in the index. */
	assert_int_equal(tc_index_blob_ref(&f->ix, hf, 1000, NULL), 0);
	assert_false(tc_index_blob_is_inline(&f->ix, hf));
	assert_int_equal(tc_index_blob_data(&f->ix, hf, buf, 4), -ENOENT);
	assert_int_equal(tc_index_blob_unref(&f->ix, hf, &refs, &size, &file),
			 0);
	assert_int_equal(refs, 0);
	assert_int_equal(size, 1000);
	assert_true(file);
	assert_int_equal(tc_index_blob_refs(&f->ix, hf), 0);

	/* An unknown blob reports one reference. */
	assert_int_equal(tc_index_blob_unref(&f->ix, hu, &refs, &size, &file),
			 0);
	assert_int_equal(refs, 1);
	assert_int_equal(size, 0);
	assert_false(file);
	assert_int_equal(tc_index_blob_refs(&f->ix, hu), 0);
}

static bool has_hash(uint8_t (*v)[TC_HASH_LEN], size_t n, const uint8_t *h)
{
	for (size_t i = 0; i < n; i++)
		if (!memcmp(v[i], h, TC_HASH_LEN))
			return true;
	return false;
}

static void test_pending(void **state)
{
	struct ixf *f = *state;
	uint8_t (*v)[TC_HASH_LEN];
	uint8_t h1[TC_HASH_LEN], h2[TC_HASH_LEN];
	size_t n;

	hash_of("one", h1);
	hash_of("two", h2);
	assert_int_equal(tc_index_pending_list(&f->ix, &v, &n), 0);
	assert_int_equal(n, 0);
	free(v);
	assert_int_equal(tc_index_pending_add(&f->ix, h1), 0);
	assert_int_equal(tc_index_pending_add(&f->ix, h1), 0); /* once */
	assert_int_equal(tc_index_pending_add(&f->ix, h2), 0);
	assert_int_equal(tc_index_pending_list(&f->ix, &v, &n), 0);
	assert_int_equal(n, 2);
	assert_true(has_hash(v, n, h1));
	assert_true(has_hash(v, n, h2));
	free(v);
	assert_int_equal(tc_index_pending_del(&f->ix, h1), 0);
	assert_int_equal(tc_index_pending_del(&f->ix, h1), 0);
	assert_int_equal(tc_index_pending_list(&f->ix, &v, &n), 0);
	assert_int_equal(n, 1);
	assert_memory_equal(v[0], h2, TC_HASH_LEN);
	free(v);
	/* Pending rows are kept across a reopen (a crash's record). */
	ix_reopen(f);
	assert_int_equal(tc_index_pending_list(&f->ix, &v, &n), 0);
	assert_int_equal(n, 1);
	free(v);
}

/* ------------------------------------------------------------------ */
/* user.* attributes and tags                                         */
/* ------------------------------------------------------------------ */

static void test_xattrs(void **state)
{
	struct ixf *f = *state;
	struct tc_inode m = row(S_IFREG | 0644);
	static const char want[] = "user.a\0user.bb\0user.c";
	char buf[64];
	uint64_t ino, other;

	ino = insert(f, &m);
	m = row(S_IFREG | 0644);
	other = insert(f, &m);
	assert_int_equal(tc_index_xattr_get(&f->ix, ino, "user.a", buf,
					    sizeof(buf)),
			 -ENODATA);
	/* Inserted out of order; listed by name. */
	assert_int_equal(tc_index_xattr_set(&f->ix, ino, "user.c", "a\0b", 3),
			 0);
	assert_int_equal(tc_index_xattr_set(&f->ix, ino, "user.a", "1", 1), 0);
	assert_int_equal(tc_index_xattr_set(&f->ix, ino, "user.bb", NULL, 0),
			 0);

	assert_int_equal(tc_index_xattr_get(&f->ix, ino, "user.c", NULL, 0), 3);
	assert_int_equal(tc_index_xattr_get(&f->ix, ino, "user.c", buf,
					    sizeof(buf)),
			 3);
	assert_memory_equal(buf, "a\0b", 3);
	assert_int_equal(tc_index_xattr_get(&f->ix, ino, "user.c", buf, 2),
			 -ERANGE);
	assert_int_equal(tc_index_xattr_get(&f->ix, ino, "user.bb", buf,
					    sizeof(buf)),
			 0);
	/* Setting again replaces the value. */
	assert_int_equal(tc_index_xattr_set(&f->ix, ino, "user.a", "22", 2), 0);
	assert_int_equal(tc_index_xattr_get(&f->ix, ino, "user.a", buf,
					    sizeof(buf)),
			 2);
	assert_memory_equal(buf, "22", 2);

	/* Listing: total length with or without room. */
	assert_int_equal(tc_index_xattr_list(&f->ix, ino, NULL, 0),
			 sizeof(want));
	memset(buf, 'X', sizeof(buf));
	assert_int_equal(tc_index_xattr_list(&f->ix, ino, buf, sizeof(buf)),
			 sizeof(want));
	assert_memory_equal(buf, want, sizeof(want));
	assert_int_equal(tc_index_xattr_list(&f->ix, other, buf, sizeof(buf)),
			 0);

	/* Length of the listing without one name. */
	assert_int_equal(tc_index_xattr_names_len(&f->ix, ino, "user.a"),
			 sizeof("user.bb") + sizeof("user.c"));
	assert_int_equal(tc_index_xattr_names_len(&f->ix, ino, "user.zzz"),
			 sizeof(want));
	assert_int_equal(tc_index_xattr_names_len(&f->ix, other, "user.a"), 0);

	assert_int_equal(tc_index_xattr_delete(&f->ix, ino, "user.bb"), 0);
	assert_int_equal(tc_index_xattr_delete(&f->ix, ino, "user.bb"),
			 -ENODATA);
	assert_int_equal(tc_index_xattr_delete(&f->ix, other, "user.a"),
			 -ENODATA);
	assert_int_equal(tc_index_xattr_list(&f->ix, ino, buf, sizeof(buf)),
			 sizeof("user.a") + sizeof("user.c"));
	assert_memory_equal(buf, "user.a\0user.c", sizeof("user.a\0user.c"));
}

struct tag_list {
	int n, stop_after;
	char tag[8][65];
};

static int collect_tag(void *ctx, const char *tag)
{
	struct tag_list *t = ctx;

	assert_true(t->n < 8);
	snprintf(t->tag[t->n++], sizeof(t->tag[0]), "%s", tag);
	return t->stop_after && t->n >= t->stop_after;
}

static void test_tags(void **state)
{
	struct ixf *f = *state;
	struct tc_inode m = row(S_IFREG | 0644);
	char tags[3][65] = { "b", "a", "c" }, one[1][65] = { "a" },
	     z[1][65] = { "z" };
	struct tag_list t = { 0 };
	uint64_t ino, other, *inos;
	size_t n;

	ino = insert(f, &m);
	m = row(S_IFREG | 0644);
	other = insert(f, &m);

	/* In the order written. */
	assert_int_equal(tc_index_tags_set(&f->ix, ino, tags, 3), 0);
	assert_int_equal(tc_index_tags_of(&f->ix, ino, collect_tag, &t), 0);
	assert_int_equal(t.n, 3);
	assert_string_equal(t.tag[0], "b");
	assert_string_equal(t.tag[1], "a");
	assert_string_equal(t.tag[2], "c");
	memset(&t, 0, sizeof(t));
	t.stop_after = 1;
	assert_int_equal(tc_index_tags_of(&f->ix, ino, collect_tag, &t), 0);
	assert_int_equal(t.n, 1);

	assert_int_equal(tc_index_tags_set(&f->ix, other, one, 1), 0);
	assert_int_equal(tc_index_tag_inos(&f->ix, "a", &inos, &n), 0);
	assert_int_equal(n, 2);
	assert_true((inos[0] == ino && inos[1] == other) ||
		    (inos[0] == other && inos[1] == ino));
	free(inos);

	/* Setting replaces every tag. */
	assert_int_equal(tc_index_tags_set(&f->ix, ino, z, 1), 0);
	assert_int_equal(tc_index_tag_inos(&f->ix, "a", &inos, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(inos[0], other);
	free(inos);
	memset(&t, 0, sizeof(t));
	assert_int_equal(tc_index_tags_of(&f->ix, ino, collect_tag, &t), 0);
	assert_int_equal(t.n, 1);
	assert_string_equal(t.tag[0], "z");
	assert_int_equal(tc_index_tags_set(&f->ix, ino, NULL, 0), 0);
	memset(&t, 0, sizeof(t));
	assert_int_equal(tc_index_tags_of(&f->ix, ino, collect_tag, &t), 0);
	assert_int_equal(t.n, 0);
	assert_int_equal(tc_index_tag_inos(&f->ix, "z", &inos, &n), 0);
	assert_int_equal(n, 0);
	free(inos);
}

/* The tags in use, one seek each, and the inodes of one tag by pages. */
static void test_tags_by_tag(void **state)
{
	struct ixf *f = *state;
	char ab[2][65] = { "b", "a" }, b[1][65] = { "b" }, next[65];
	uint64_t inos[10], first = 0, last = 0, out[4];
	size_t n;

	assert_int_equal(tc_index_tag_next(&f->ix, "", next), -ENOENT);
	for (int i = 0; i < 10; i++) {
		struct tc_inode m = row(S_IFREG | 0644);

		inos[i] = insert(f, &m);
		assert_int_equal(tc_index_tags_set(&f->ix, inos[i],
						   i == 3 ? ab : b, i == 3 ? 2 : 1),
				 0);
	}
	assert_int_equal(tc_index_tag_next(&f->ix, "", next), 0);
	assert_string_equal(next, "a");
	assert_int_equal(tc_index_tag_next(&f->ix, "a", next), 0);
	assert_string_equal(next, "b");
	assert_int_equal(tc_index_tag_next(&f->ix, "b", next), -ENOENT);
	assert_int_equal(tc_index_tag_next(&f->ix, "A", next), 0);
	assert_string_equal(next, "a");

	/* Pages of 4, ascending, resuming after the last one seen. */
	for (int page = 0; page < 3; page++) {
		assert_int_equal(tc_index_tag_inos_after(&f->ix, "b", last, out,
							 4, &n),
				 0);
		assert_int_equal(n, page < 2 ? 4 : 2);
		for (size_t i = 0; i < n; i++) {
			assert_int_equal(out[i], inos[page * 4 + (int)i]);
			assert_true(out[i] > last);
			if (!first)
				first = out[i];
		}
		last = out[n - 1];
	}
	assert_int_equal(first, inos[0]);
	assert_int_equal(tc_index_tag_inos_after(&f->ix, "b", last, out, 4, &n),
			 0);
	assert_int_equal(n, 0);
	assert_int_equal(tc_index_tag_inos_after(&f->ix, "a", 0, out, 4, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(out[0], inos[3]);
}

static void test_dir_path(void **state)
{
	struct ixf *f = *state;
	static const char odd[] = "new\nline";
	uint64_t d, e, file, lost;
	char *path;
	size_t len;

	d = make(f, TC_ROOT_INO, "d", S_IFDIR | 0755, 0);
	e = make(f, d, odd, S_IFDIR | 0755, 0);
	file = make(f, e, "f", S_IFREG | 0644, 1);
	(void)file;
	assert_int_equal(tc_index_dir_path(&f->ix, TC_ROOT_INO, &path, &len),
			 0);
	assert_string_equal(path, "");
	assert_int_equal(len, 0);
	free(path);
	assert_int_equal(tc_index_dir_path(&f->ix, d, &path, &len), 0);
	assert_string_equal(path, "/d");
	assert_int_equal(len, 2);
	free(path);
	assert_int_equal(tc_index_dir_path(&f->ix, e, &path, &len), 0);
	assert_string_equal(path, "/d/new\nline");
	assert_int_equal(len, strlen("/d/new\nline"));
	free(path);
	/* A move is seen at once. */
	assert_int_equal(tc_index_dentry_move(&f->ix, TC_ROOT_INO, "d",
					      TC_ROOT_INO, "D"),
			 0);
	assert_int_equal(tc_index_dir_path(&f->ix, e, &path, &len), 0);
	assert_string_equal(path, "/D/new\nline");
	free(path);
	/* A directory without a name (or below one) has no path. */
	lost = make(f, d, "lost", S_IFDIR | 0755, 0);
	assert_int_equal(tc_index_dentry_delete(&f->ix, TC_ROOT_INO, "D"), 0);
	path = (char *)1;
	assert_int_equal(tc_index_dir_path(&f->ix, lost, &path, &len), -ENOENT);
	assert_null(path);
	assert_int_equal(tc_index_dir_path(&f->ix, 999999, &path, &len),
			 -ENOENT);
}

/* ------------------------------------------------------------------ */
/* Scans                                                              */
/* ------------------------------------------------------------------ */

static void test_lru_oldest(void **state)
{
	struct ixf *f = *state;
	struct tc_inode m;
	uint64_t z, mm, k, b, a, out[8];
	size_t n;

	/* Inserted so that inode numbers do not give the expected order:
	 * lru 10: b, z; lru 20: a, k (names q and c: its key is c);
	 * lru 30: m. */
	z = make(f, TC_ROOT_INO, "z", S_IFREG | 0644, 10);
	mm = make(f, TC_ROOT_INO, "m", S_IFREG | 0644, 30);
	k = make(f, TC_ROOT_INO, "q", S_IFREG | 0644, 20);
	assert_int_equal(tc_index_dentry_insert(&f->ix, TC_ROOT_INO, "c", k),
			 0);
	b = make(f, TC_ROOT_INO, "b", S_IFREG | 0644, 10);
	a = make(f, TC_ROOT_INO, "a", S_IFREG | 0644, 20);
	/* Neither a directory nor an unlinked file is a candidate. */
	make(f, TC_ROOT_INO, "dir", S_IFDIR | 0755, 1);
	m = row(S_IFREG | 0644);
	m.lru = 1;
	m.nlink = 0;
	insert(f, &m);

	assert_int_equal(tc_index_lru_oldest(&f->ix, out, 8, &n), 0);
	assert_int_equal(n, 5);
	assert_int_equal(out[0], b);
	assert_int_equal(out[1], z);
	assert_int_equal(out[2], a);
	assert_int_equal(out[3], k);
	assert_int_equal(out[4], mm);
	assert_int_equal(tc_index_lru_oldest(&f->ix, out, 2, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(out[0], b);
	assert_int_equal(out[1], z);
}

static int cmp_u64(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;

	return a < b ? -1 : a > b;
}

static void test_expired(void **state)
{
	struct ixf *f = *state;
	struct tc_inode m;
	uint64_t e100, e200, out[8];
	size_t n;

	m = row(S_IFREG | 0644);
	m.expires = 100;
	e100 = insert(f, &m);
	m = row(S_IFREG | 0644);
	m.expires = 300;
	insert(f, &m);
	m = row(S_IFREG | 0644);
	m.expires = 200;
	e200 = insert(f, &m);
	m = row(S_IFREG | 0644); /* never expires */
	insert(f, &m);
	m = row(S_IFREG | 0644);
	m.expires = 50;
	m.nlink = 0; /* already unlinked */
	insert(f, &m);

	assert_int_equal(tc_index_expired(&f->ix, 99, out, 8, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(tc_index_expired(&f->ix, 200, out, 8, &n), 0);
	assert_int_equal(n, 2);
	qsort(out, n, sizeof(out[0]), cmp_u64);
	assert_int_equal(out[0], e100);
	assert_int_equal(out[1], e200);
	assert_int_equal(tc_index_expired(&f->ix, 200, out, 1, &n), 0);
	assert_int_equal(n, 1);
	assert_true(out[0] == e100 || out[0] == e200);
}

static void test_nondirs_paging(void **state)
{
	struct ixf *f = *state;
	struct tc_inode m;
	uint64_t want[4], out[8], after = 0;
	size_t n, total = 0;
	int calls = 0;

	make(f, TC_ROOT_INO, "d", S_IFDIR | 0755, 0);
	want[0] = make(f, TC_ROOT_INO, "f1", S_IFREG | 0644, 1);
	want[1] = make(f, TC_ROOT_INO, "ln", S_IFLNK | 0777, 0);
	make(f, TC_ROOT_INO, "d2", S_IFDIR | 0755, 0);
	want[2] = make(f, TC_ROOT_INO, "fifo", S_IFIFO | 0600, 0);
	m = row(S_IFREG | 0644);
	m.nlink = 0;
	insert(f, &m);
	want[3] = make(f, TC_ROOT_INO, "f2", S_IFREG | 0644, 1);

	/* Pages of 3, ascending, resumed after the last inode seen. */
	do {
		assert_int_equal(tc_index_nondirs(&f->ix, after, out, 3, &n),
				 0);
		for (size_t i = 0; i < n; i++) {
			assert_true(total < 4);
			assert_int_equal(out[i], want[total]);
			total++;
		}
		if (n)
			after = out[n - 1];
		calls++;
	} while (n == 3);
	assert_int_equal(total, 4);
	assert_int_equal(calls, 2);
}

/* ------------------------------------------------------------------ */
/* meta, the clean mark, formats                                      */
/* ------------------------------------------------------------------ */

static void test_dir_flags(void **state)
{
	struct ixf *f = *state;
	struct tc_index other;
	struct tc_index_counters c;
	struct tc_inode m;
	char dir[96];
	int64_t flags = -1;

	/* Found by scanning the directories, once. */
	m = row(S_IFDIR | 0755);
	strcpy(m.schema, "s1");
	insert(f, &m);
	m = row(S_IFDIR | 0755);
	m.ttl = TCU_HOUR;
	insert(f, &m);
	assert_int_equal(tc_index_dir_flags(&f->ix, &flags), 0);
	assert_int_equal(flags, TC_DIR_SCHEMA | TC_DIR_TTL);

	/* Then kept in meta: what meta says is what counts. */
	assert_int_equal(tc_index_meta_set(&f->ix, "dir_flags", TC_DIR_TTL), 0);
	assert_int_equal(tc_index_dir_flags(&f->ix, &flags), 0);
	assert_int_equal(flags, TC_DIR_TTL);
	ix_reopen(f);
	assert_int_equal(tc_index_dir_flags(&f->ix, &flags), 0);
	assert_int_equal(flags, TC_DIR_TTL);

	/* Regular files with a schema or a ttl are not directories. */
	snprintf(dir, sizeof(dir), "%s/other", f->dir);
	assert_int_equal(mkdir(dir, 0700), 0);
	assert_int_equal(ix_open_at(f, dir, &other, true, &c), 0);
	m = row(S_IFREG | 0644);
	strcpy(m.schema, "s1");
	m.ttl = TCU_HOUR;
	m.ino = 2;
	assert_int_equal(tc_index_inode_insert(&other, &m), 0);
	assert_int_equal(tc_index_dir_flags(&other, &flags), 0);
	assert_int_equal(flags, 0);
	tc_index_close(&other);
}

static void test_clean_mark_counters(void **state)
{
	struct ixf *f = *state;
	struct tc_inode m = row(S_IFREG | 0644);
	const struct tc_index_counters fake = { .disk_bytes = 7,
						.disk_items = 3,
						.blob_bytes = 5 };
	uint8_t h[TC_HASH_LEN];

	/* A new store was not shut down cleanly: it is checked in full. */
	assert_false(f->ix.clean);
	assert_int_equal(f->c.disk_items, 0);
	hash_of("content", h);
	m.size = 1000;
	m.hash_set = true;
	memcpy(m.hash, h, TC_HASH_LEN);
	insert(f, &m);
	assert_int_equal(tc_index_blob_ref(&f->ix, h, 1000, NULL), 0);

	/* Without the mark, the counters are counted from the rows. */
	ix_reopen(f);
	assert_false(f->ix.clean);
	assert_int_equal(f->c.disk_items, 1);
	assert_int_equal(f->c.disk_bytes, 1000);
	assert_int_equal(f->c.blob_bytes, 1000);

	/* With it, they are the ones it recorded (no counting), once. */
	assert_int_equal(tc_index_mark_clean(&f->ix, &fake), 0);
	ix_reopen(f);
	assert_true(f->ix.clean);
	assert_int_equal(f->c.disk_bytes, 7);
	assert_int_equal(f->c.disk_items, 3);
	assert_int_equal(f->c.blob_bytes, 5);
	ix_reopen(f);
	assert_false(f->ix.clean);
	assert_int_equal(f->c.disk_items, 1);
	assert_int_equal(f->c.disk_bytes, 1000);
	assert_int_equal(f->c.blob_bytes, 1000);
}

static void index_path(struct ixf *f, char *buf, size_t size)
{
	snprintf(buf, size, "%s/index.db", f->dir);
}

static void test_newer_format_refused(void **state)
{
	struct ixf *f = *state;
	uint64_t got;

	make(f, TC_ROOT_INO, "k", S_IFREG | 0644, 1);
	assert_int_equal(tc_index_meta_set(&f->ix, "format",
					   TC_FORMAT_VERSION + 1),
			 0);
	tc_index_close(&f->ix);
	assert_int_equal(ix_open_at(f, f->dir, &f->ix, true, &f->c),
			 -EPROTONOSUPPORT);
	tc_index_close(&f->ix);
	/* Refused without a change: back at the format it knows, the same
	 * store opens with its content. */
	{
		sqlite3 *db;
		char path[PATH_MAX];

		index_path(f, path, sizeof(path));
		assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_exec(db,
					      "UPDATE meta SET value = 2 WHERE"
					      " key = 'format'",
					      NULL, NULL, NULL),
				 SQLITE_OK);
		sqlite3_close(db);
	}
	assert_int_equal(ix_open_at(f, f->dir, &f->ix, true, &f->c), 0);
	assert_int_equal(tc_index_dentry_get(&f->ix, TC_ROOT_INO, "k", &got),
			 0);
}

static void test_garbage_refused(void **state)
{
	struct ixf *f = *state;
	char path[PATH_MAX], garbage[8192];
	FILE *fp;

	tc_index_close(&f->ix);
	index_path(f, path, sizeof(path));
	tcu_fill(garbage, sizeof(garbage), 1);
	fp = fopen(path, "w");
	assert_non_null(fp);
	assert_int_equal(fwrite(garbage, 1, sizeof(garbage), fp),
			 sizeof(garbage));
	fclose(fp);
	assert_int_equal(ix_open_at(f, f->dir, &f->ix, true, &f->c), -EPROTO);
	tc_index_close(&f->ix);

	/* An empty store, not to be created: no index there. */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(ix_open_at(f, f->dir, &f->ix, false, &f->c), -EPROTO);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, ix_setup, ix_teardown)
		T(test_inode_round_trip),
		T(test_inode_purge),
		T(test_set_lru_and_orphans),
		T(test_dentries),
		T(test_transactions),
		T(test_names_of),
		T(test_list_dir_paging),
		T(test_blob_rows),
		T(test_pending),
		T(test_xattrs),
		T(test_tags),
		T(test_tags_by_tag),
		T(test_dir_path),
		T(test_lru_oldest),
		T(test_expired),
		T(test_nondirs_paging),
		T(test_dir_flags),
		T(test_clean_mark_counters),
		T(test_newer_format_refused),
		T(test_garbage_refused),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
