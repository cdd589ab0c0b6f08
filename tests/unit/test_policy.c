/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the cache policy (engine/policy.c): disk tier LRU eviction
 * under disk_size and disk_items, entry lifetimes (TTL: own, tag rule,
 * directory, mount default; absolute and sliding), schema discards,
 * evict_tag and flush. The value grammars are in test_parse.c.
 *
 * Time passes only through the injected clock; after each step the test
 * runs maintenance as the background thread would have meanwhile.
 */
#include "util.h"

#define ITEM 1000
#define STEP (2 * TCU_MIN)

static void step(struct tcu *fx)
{
	tcu_advance(fx, STEP);
	tcu_maintain(fx);
}

/* Invalidation callbacks seen. */
struct invals {
	int n;
	uint64_t parent[16], ino[16];
	char name[16][32];
};

static void on_inval(void *ctx, uint64_t parent, const char *name,
		     uint64_t ino)
{
	struct invals *iv = ctx;

	if (iv->n < 16) {
		iv->parent[iv->n] = parent;
		iv->ino[iv->n] = ino;
		snprintf(iv->name[iv->n], sizeof(iv->name[0]), "%s", name);
	}
	iv->n++;
}

static bool invalidated(const struct invals *iv, uint64_t parent,
			const char *name, uint64_t ino)
{
	for (int i = 0; i < iv->n && i < 16; i++)
		if (iv->parent[i] == parent && iv->ino[i] == ino &&
		    strcmp(iv->name[i], name) == 0)
			return true;
	return false;
}

static void disk_config(struct tcu *fx, uint64_t size, uint64_t items)
{
	fx->cfg.disk_size = size;
	fx->cfg.disk_items = items;
	tcu_reopen(fx);
}

/* ------------------------------------------------------------------ */
/* Disk LRU                                                           */
/* ------------------------------------------------------------------ */

static void test_disk_lru_items(void **state)
{
	struct tcu *fx = *state;
	struct invals iv = { 0 };
	struct tc_statfs sf;
	uint64_t ino_b, ino_a;

	disk_config(fx, 0, 3);
	tc_engine_set_inval(fx->eng, on_inval, &iv);
	tcu_put_fill(fx, "a", ITEM, 1);
	step(fx);
	tcu_put_fill(fx, "b", ITEM, 2);
	step(fx);
	tcu_put_fill(fx, "c", ITEM, 3);
	step(fx);
	ino_a = tcu_ino_at(fx->eng, TC_ROOT_INO, "a");
	ino_b = tcu_ino_at(fx->eng, TC_ROOT_INO, "b");
	tcu_assert_fill(fx, "a", ITEM, 1); /* a is now newer than b */
	step(fx);
	tcu_put_fill(fx, "d", ITEM, 4);    /* b must go */
	assert_false(tcu_present(fx, "b"));
	assert_true(tcu_present(fx, "a"));
	assert_true(tcu_present(fx, "c"));
	assert_true(tcu_present(fx, "d"));
	tcu_assert_stat(fx->eng, "disk_evictions", 1);
	tcu_assert_stat(fx->eng, "disk_items", 3);
	tc_statfs(fx->eng, &sf);
	assert_int_equal(sf.items, 3);
	assert_int_equal(sf.limit_items, 3);
	assert_true(invalidated(&iv, TC_ROOT_INO, "b", ino_b));
	step(fx);

	/* Order now: a (read), d (written), c (read next) -> a goes. */
	tcu_assert_fill(fx, "c", ITEM, 3);
	step(fx);
	tcu_put_fill(fx, "e", ITEM, 5);
	assert_false(tcu_present(fx, "a"));
	assert_true(tcu_present(fx, "c"));
	assert_true(tcu_present(fx, "d"));
	assert_true(tcu_present(fx, "e"));
	assert_true(invalidated(&iv, TC_ROOT_INO, "a", ino_a));
	tcu_assert_stat(fx->eng, "disk_evictions", 2);
	tcu_assert_fill(fx, "d", ITEM, 4);
	tc_engine_set_inval(fx->eng, NULL, NULL);
}

static void test_disk_lru_bytes(void **state)
{
	struct tcu *fx = *state;
	struct tc_statfs sf;

	disk_config(fx, 3 * ITEM + ITEM / 2, 0);
	tcu_put_fill(fx, "a", ITEM, 1);
	step(fx);
	tcu_put_fill(fx, "b", ITEM, 2);
	step(fx);
	tcu_put_fill(fx, "c", ITEM, 3);
	step(fx);
	tcu_assert_fill(fx, "a", ITEM, 1);
	step(fx);
	tcu_put_fill(fx, "d", ITEM, 4);
	step(fx);
	assert_false(tcu_present(fx, "b"));
	assert_true(tcu_present(fx, "a"));
	assert_true(tcu_present(fx, "c"));
	assert_true(tcu_present(fx, "d"));
	tc_statfs(fx->eng, &sf);
	assert_int_equal(sf.limit_bytes, 3 * ITEM + ITEM / 2);
	assert_int_equal(sf.used_bytes, 3 * ITEM);
	tcu_assert_stat(fx->eng, "disk_bytes", 3 * ITEM);
	tcu_assert_stat(fx->eng, "disk_evictions", 1);

	/* c grows: the least recently used other entry (a) makes room;
	 * c itself is never the victim of its own write. */
	tcu_put_fill(fx, "c", 2 * ITEM, 33);
	assert_false(tcu_present(fx, "a"));
	tcu_assert_fill(fx, "c", 2 * ITEM, 33);
	tcu_assert_fill(fx, "d", ITEM, 4);
	tc_statfs(fx->eng, &sf);
	assert_int_equal(sf.used_bytes, 3 * ITEM);
}

static void test_disk_efbig(void **state)
{
	struct tcu *fx = *state;
	char *big = malloc(4 * ITEM);

	assert_non_null(big);
	tcu_fill(big, 4 * ITEM, 9);
	disk_config(fx, 3 * ITEM + ITEM / 2, 0);
	tcu_put_fill(fx, "a", ITEM, 1);
	tcu_put_fill(fx, "b", ITEM, 2);

	/* A single file larger than disk_size fails with EFBIG... */
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, TC_ROOT_INO, "huge", big,
				    4 * ITEM),
			 -EFBIG);
	/* ...and a write that would take an existing key over the limit
	 * fails, leaving its content as it was. */
	{
		struct tc_attr a;
		struct tc_file *f;
		int rw, rf;

		assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "a", &a), 0);
		assert_int_equal(tc_open(fx->eng, a.st.st_ino, O_WRONLY, &f), 0);
		rw = tcu_write_all(f, big, 4 * ITEM, 0);
		rf = rw ? rw : tc_flush(f);
		if (rw != -EFBIG && rf != -EFBIG)
			fail_msg("write %d, flush %d: expected -EFBIG", rw, rf);
		tc_release(f);
		tc_forget(fx->eng, a.st.st_ino, 1);
	}
	free(big);
	tcu_assert_fill(fx, "a", ITEM, 1);
	tcu_assert_fill(fx, "b", ITEM, 2);
	tcu_assert_stat(fx->eng, "disk_evictions", 0);
	{
		char *got = NULL;
		size_t n = 0;
		int rc = tcu_get_at(fx->eng, TC_ROOT_INO, "huge", &got, &n);

		assert_true(rc == -ENOENT || (rc == 0 && n == 0));
		free(got);
	}
	/* A file of exactly disk_size is fine (it evicts everything). */
	tcu_put_fill(fx, "exact", 3 * ITEM + ITEM / 2, 4);
	tcu_assert_fill(fx, "exact", 3 * ITEM + ITEM / 2, 4);
}

static void test_disk_lru_ties_by_key(void **state)
{
	struct tcu *fx = *state;

	/* Same access time for all: the smallest key goes first,
	 * whatever the order of insertion. */
	disk_config(fx, 0, 2);
	tcu_put(fx, "b", "B");
	tcu_put(fx, "a", "A");
	tcu_put(fx, "c", "C");
	assert_false(tcu_present(fx, "a"));
	assert_true(tcu_present(fx, "b"));
	assert_true(tcu_present(fx, "c"));
}

static void test_evicted_while_open(void **state)
{
	struct tcu *fx = *state;
	struct tc_attr a;
	struct tc_file *f;
	char *got = NULL;
	size_t n;
	char want[ITEM];

	disk_config(fx, 0, 2);
	tcu_put_fill(fx, "a", ITEM, 1);
	step(fx);
	tcu_put_fill(fx, "b", ITEM, 2);
	step(fx);
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "a", &a), 0);
	assert_int_equal(tc_open(fx->eng, a.st.st_ino, O_RDONLY, &f), 0);
	step(fx);
	tcu_assert_fill(fx, "b", ITEM, 2);
	step(fx);
	tcu_put_fill(fx, "c", ITEM, 3);
	tcu_put_fill(fx, "d", ITEM, 4);
	step(fx);
	tcu_flush_ram(fx);
	tcu_assert_stat(fx->eng, "disk_items", 2);
	/* a was evicted (or kept while open); its handle still reads it. */
	assert_int_equal(tcu_read_all(f, &got, &n), 0);
	tcu_fill(want, ITEM, 1);
	assert_int_equal(n, ITEM);
	assert_memory_equal(got, want, ITEM);
	free(got);
	assert_int_equal(tc_release(f), 0);
	tc_forget(fx->eng, a.st.st_ino, 1);
	tcu_assert_fill(fx, "d", ITEM, 4);
}

/* ------------------------------------------------------------------ */
/* Lifetimes                                                          */
/* ------------------------------------------------------------------ */

static int set_x(struct tcu *fx, uint64_t parent, const char *name,
		 const char *attr, const char *val)
{
	char xname[64];
	uint64_t ino = tcu_ino_at(fx->eng, parent, name);

	if (!ino)
		return -ENOENT;
	snprintf(xname, sizeof(xname), TC_XATTR_PREFIX "%s", attr);
	return tc_setxattr(fx->eng, ino, xname, val, strlen(val), 0);
}

/* Expiry of @parent/@name in seconds after the epoch of the clock start,
 * -1 when it never expires. */
static long long expires_in(struct tcu *fx, uint64_t parent, const char *name)
{
	char buf[32];
	ssize_t n = tcu_xattr_at(fx->eng, parent, name,
				 TC_XATTR_PREFIX "expires", buf, sizeof(buf));

	if (n == -ENODATA)
		return -1;
	if (n < 0)
		fail_msg("expires of %s: %s", name, strerror((int)-n));
	return strtoll(buf, NULL, 10) - TCU_EPOCH_NS / TCU_SEC;
}

static void test_ttl_absolute(void **state)
{
	struct tcu *fx = *state;
	struct tc_attr a;

	tcu_put_fill(fx, "k", ITEM, 1);
	tcu_put(fx, "forever", "f");
	assert_int_equal(set_x(fx, TC_ROOT_INO, "k", "ttl", "10m"), 0);
	assert_int_equal(expires_in(fx, TC_ROOT_INO, "k"), 600);
	assert_int_equal(expires_in(fx, TC_ROOT_INO, "forever"), -1);
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "k", &a), 0);
	assert_true(a.valid_ns > 0 && a.valid_ns <= 10 * TCU_MIN);
	tc_forget(fx->eng, a.st.st_ino, 1);

	/* Reads do not extend an absolute lifetime. */
	tcu_advance(fx, 9 * TCU_MIN);
	tcu_maintain(fx);
	tcu_assert_fill(fx, "k", ITEM, 1);
	tcu_maintain(fx);
	tc_engine_reset_stats(fx->eng);
	tcu_advance(fx, 2 * TCU_MIN);

	/* Expired: invisible at once, before any sweep, and a miss. */
	assert_false(tcu_present(fx, "k"));
	assert_int_equal(tcu_get(fx, "k"), -ENOENT);
	assert_true(tcu_stat(fx->eng, "misses") >= 1);
	tcu_assert_value(fx, "forever", "f");

	/* The sweep reclaims it. */
	tcu_maintain(fx);
	tcu_assert_stat(fx->eng, "expirations", 1);
	tcu_assert_stat(fx->eng, "disk_items", 1);
	tcu_assert_stat(fx->eng, "blob_bytes", 1);

	/* A write restarts an absolute lifetime. */
	tcu_put(fx, "w", "1");
	assert_int_equal(set_x(fx, TC_ROOT_INO, "w", "ttl", "10m"), 0);
	tcu_advance(fx, 8 * TCU_MIN);
	tcu_put(fx, "w", "2");
	assert_int_equal(expires_in(fx, TC_ROOT_INO, "w"),
			 11 * 60 + 8 * 60 + 600);
	tcu_advance(fx, 8 * TCU_MIN);
	tcu_maintain(fx);
	tcu_assert_value(fx, "w", "2");
	tcu_advance(fx, 3 * TCU_MIN);
	assert_false(tcu_present(fx, "w"));
}

static void test_ttl_sliding(void **state)
{
	struct tcu *fx = *state;

	tcu_put(fx, "k", "v");
	assert_int_equal(set_x(fx, TC_ROOT_INO, "k", "ttl", "10m"), 0);
	assert_int_equal(set_x(fx, TC_ROOT_INO, "k", "ttl_mode", "sliding"), 0);
	for (int i = 0; i < 3; i++) {
		tcu_advance(fx, 8 * TCU_MIN);
		tcu_maintain(fx);
		tcu_assert_value(fx, "k", "v"); /* restarts the lifetime */
		tcu_maintain(fx);
	}
	/* 24 minutes after the write, alive; 11 idle minutes later, gone. */
	tcu_advance(fx, 11 * TCU_MIN);
	assert_false(tcu_present(fx, "k"));
	tcu_maintain(fx);
	tcu_assert_stat(fx->eng, "expirations", 1);
}

static void test_ttl_resolution_order(void **state)
{
	struct tcu *fx = *state;
	struct tc_tag_rule rules[] = {
		{ .tag = "short", .ttl_ns = 5 * TCU_MIN, .ram_ttl_ns = -1 },
		{ .tag = "none", .ttl_ns = 0, .ram_ttl_ns = -1 },
	};
	uint64_t d, e;

	fx->cfg.ttl_ns = TCU_HOUR;
	fx->cfg.tag_rules = rules;
	fx->cfg.n_tag_rules = 2;
	tcu_reopen(fx);

	/* Mount default. */
	tcu_put(fx, "top", "t");
	assert_int_equal(expires_in(fx, TC_ROOT_INO, "top"), 3600);

	/* Nearest ancestor directory with a ttl. */
	d = tcu_mkdir_at(fx, TC_ROOT_INO, "d");
	assert_int_equal(tc_setxattr(fx->eng, d, TC_XATTR_PREFIX "ttl", "30m",
				     3, 0),
			 0);
	e = tcu_mkdir_at(fx, d, "e");
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, e, "x", "x", 1), 0);
	assert_int_equal(expires_in(fx, e, "x"), 1800);

	/* A matching tag rule beats the directory. */
	assert_int_equal(set_x(fx, e, "x", "tags", "other,short"), 0);
	assert_int_equal(expires_in(fx, e, "x"), 300);
	/* A rule of 0 means "never". */
	assert_int_equal(set_x(fx, e, "x", "tags", "none"), 0);
	assert_int_equal(expires_in(fx, e, "x"), -1);
	assert_int_equal(set_x(fx, e, "x", "tags", "short"), 0);

	/* Its own ttl beats everything; removing it falls back. */
	assert_int_equal(set_x(fx, e, "x", "ttl", "2h"), 0);
	assert_int_equal(expires_in(fx, e, "x"), 7200);
	{
		uint64_t ino = tcu_ino_at(fx->eng, e, "x");

		assert_int_equal(tc_removexattr(fx->eng, ino,
						TC_XATTR_PREFIX "ttl"),
				 0);
	}
	assert_int_equal(expires_in(fx, e, "x"), 300);
	/* "none" removes it too (tiercachefs(8), EXTENDED ATTRIBUTES). */
	assert_int_equal(set_x(fx, e, "x", "ttl", "1h"), 0);
	assert_int_equal(expires_in(fx, e, "x"), 3600);
	assert_int_equal(set_x(fx, e, "x", "ttl", "none"), 0);
	assert_int_equal(expires_in(fx, e, "x"), 300);

	/* The mount default's lifetime runs out. */
	tcu_advance(fx, TCU_HOUR + TCU_SEC);
	assert_false(tcu_present(fx, "top"));
	assert_true(tcu_present(fx, "d"));
}

/* ttl=never: no deadline whatever the tag rules, the directory and the
 * mount say; on a directory, the default of entries created below it
 * afterwards (tiercachefs(8), EXTENDED ATTRIBUTES). */
static void test_ttl_never(void **state)
{
	struct tcu *fx = *state;
	struct tc_tag_rule rules[] = {
		{ .tag = "short", .ttl_ns = 5 * TCU_MIN, .ram_ttl_ns = -1 },
	};
	struct tc_attr a;
	uint64_t d, sub, other;

	fx->cfg.ttl_ns = TCU_HOUR;
	fx->cfg.tag_rules = rules;
	fx->cfg.n_tag_rules = 1;
	tcu_reopen(fx);
	d = tcu_mkdir_at(fx, TC_ROOT_INO, "d");
	assert_int_equal(tc_setxattr(fx->eng, d, TC_XATTR_PREFIX "ttl", "10m",
				     3, 0),
			 0);
	/* Against the mount default, a tag rule and a directory default. */
	tcu_put(fx, "m", "m");
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, TC_ROOT_INO, "t", "t", 1),
			 0);
	assert_int_equal(set_x(fx, TC_ROOT_INO, "t", "tags", "short"), 0);
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, d, "x", "x", 1), 0);
	assert_int_equal(expires_in(fx, TC_ROOT_INO, "m"), 3600);
	assert_int_equal(expires_in(fx, TC_ROOT_INO, "t"), 300);
	assert_int_equal(expires_in(fx, d, "x"), 600);
	assert_int_equal(set_x(fx, TC_ROOT_INO, "m", "ttl", "never"), 0);
	assert_int_equal(set_x(fx, TC_ROOT_INO, "t", "ttl", "never"), 0);
	assert_int_equal(set_x(fx, d, "x", "ttl", "never"), 0);
	assert_int_equal(expires_in(fx, TC_ROOT_INO, "m"), -1);
	assert_int_equal(expires_in(fx, TC_ROOT_INO, "t"), -1);
	assert_int_equal(expires_in(fx, d, "x"), -1);
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "m", &a), 0);
	assert_true(a.valid_ns == INT64_MAX);
	tc_forget(fx->eng, a.st.st_ino, 1);
	/* A write and a retag keep it: nothing resolves it away. */
	tcu_put(fx, "m", "m2");
	assert_int_equal(set_x(fx, TC_ROOT_INO, "t", "tags", "short,other"), 0);
	assert_int_equal(expires_in(fx, TC_ROOT_INO, "m"), -1);
	assert_int_equal(expires_in(fx, TC_ROOT_INO, "t"), -1);

	/* A directory's never is the default below it, for entries created
	 * afterwards (also in a subdirectory made later); a tag rule still
	 * comes before it, and an entry made before keeps its lifetime. */
	other = tcu_mkdir_at(fx, TC_ROOT_INO, "other");
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, other, "before", "b", 1),
			 0);
	assert_int_equal(tc_setxattr(fx->eng, other, TC_XATTR_PREFIX "ttl",
				     "never", 5, 0),
			 0);
	sub = tcu_mkdir_at(fx, other, "sub");
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, other, "after", "a", 1),
			 0);
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, sub, "deep", "d", 1), 0);
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, sub, "tagged", "g", 1),
			 0);
	assert_int_equal(set_x(fx, sub, "tagged", "tags", "short"), 0);
	assert_int_equal(expires_in(fx, other, "before"), 3600);
	assert_int_equal(expires_in(fx, other, "after"), -1);
	assert_int_equal(expires_in(fx, sub, "deep"), -1);
	assert_int_equal(expires_in(fx, sub, "tagged"), 300);

	/* Time passes: only the never entries stay, through sweeps and a
	 * reopen. */
	tcu_advance(fx, 2 * TCU_HOUR);
	tcu_maintain(fx);
	tcu_reopen(fx);
	tcu_advance(fx, 400 * 24 * TCU_HOUR);
	tcu_maintain(fx);
	tcu_assert_value(fx, "m", "m2");
	tcu_assert_value(fx, "t", "t");
	tcu_assert_value_at(fx, d, "x", "x", 1);
	tcu_assert_value_at(fx, other, "after", "a", 1);
	tcu_assert_value_at(fx, sub, "deep", "d", 1);
	assert_int_equal(tcu_ino_at(fx->eng, other, "before"), 0);
	assert_int_equal(tcu_ino_at(fx->eng, sub, "tagged"), 0);

	/* none gives it back to the defaults, counted from then. */
	assert_int_equal(set_x(fx, TC_ROOT_INO, "t", "ttl", "none"), 0);
	assert_int_equal(expires_in(fx, TC_ROOT_INO, "t"),
			 2 * 3600 + 400 * 86400 + 300);
	assert_int_equal(set_x(fx, TC_ROOT_INO, "m", "ttl", "0"), 0);
	assert_int_equal(expires_in(fx, TC_ROOT_INO, "m"),
			 2 * 3600 + 400 * 86400 + 3600);
}

static void test_expire_control(void **state)
{
	struct tcu *fx = *state;

	tcu_put_fill(fx, "k", ITEM, 1);
	tcu_put(fx, "stay", "s");
	assert_int_equal(set_x(fx, TC_ROOT_INO, "k", "ttl", "1m"), 0);
	tcu_advance(fx, 2 * TCU_MIN);
	/* The expire control sweeps now, without maintenance. */
	assert_int_equal(tcu_root_ctl(fx, "expire", "1"), 0);
	tcu_assert_stat(fx->eng, "expirations", 1);
	tcu_assert_stat(fx->eng, "disk_items", 1);
	tcu_assert_stat(fx->eng, "disk_bytes", 1);
	tcu_assert_value(fx, "stay", "s");
}

static void test_schema(void **state)
{
	struct tcu *fx = *state;
	char buf[80];
	uint64_t d;

	fx->cfg.schema = "v2";
	tcu_reopen(fx);
	/* New files take the expected version. */
	tcu_put(fx, "k", "v");
	assert_int_equal(tcu_xattr_at(fx->eng, TC_ROOT_INO, "k",
				      TC_XATTR_PREFIX "schema", buf,
				      sizeof(buf)),
			 2);
	assert_string_equal(buf, "v2");
	tcu_put(fx, "other", "o");

	/* An entry of another version is absent and discarded. */
	assert_int_equal(set_x(fx, TC_ROOT_INO, "k", "schema", "v1"), 0);
	assert_false(tcu_present(fx, "k"));
	tcu_maintain(fx);
	tcu_assert_stat(fx->eng, "schema_discards", 1);
	tcu_assert_value(fx, "other", "o");

	/* A directory's expected version governs its subtree. */
	d = tcu_mkdir_at(fx, TC_ROOT_INO, "d");
	assert_int_equal(tc_setxattr(fx->eng, d, TC_XATTR_PREFIX "schema", "s1",
				     2, 0),
			 0);
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, d, "x", "x", 1), 0);
	assert_int_equal(tcu_xattr_at(fx->eng, d, "x", TC_XATTR_PREFIX "schema",
				      buf, sizeof(buf)),
			 2);
	assert_string_equal(buf, "s1");
	tcu_assert_value_at(fx, d, "x", "x", 1);
	assert_int_equal(tc_setxattr(fx->eng, d, TC_XATTR_PREFIX "schema", "s2",
				     2, 0),
			 0);
	assert_int_equal(tcu_ino_at(fx->eng, d, "x"), 0);
	tcu_maintain(fx);
	tcu_assert_stat(fx->eng, "schema_discards", 2);
	tcu_assert_value(fx, "other", "o");
}

static void test_evict_tag_and_flush(void **state)
{
	struct tcu *fx = *state;
	struct invals iv = { 0 };
	uint64_t ino_a;

	tc_engine_set_inval(fx->eng, on_inval, &iv);
	tcu_put_fill(fx, "a", ITEM, 1);
	tcu_put_fill(fx, "b", ITEM, 2);
	tcu_put_fill(fx, "c", ITEM, 3);
	ino_a = tcu_ino_at(fx->eng, TC_ROOT_INO, "a");
	assert_int_equal(set_x(fx, TC_ROOT_INO, "a", "tags", "x,y"), 0);
	assert_int_equal(set_x(fx, TC_ROOT_INO, "b", "tags", "y"), 0);
	assert_int_equal(set_x(fx, TC_ROOT_INO, "c", "tags", "z,yy"), 0);

	assert_int_equal(tcu_root_ctl(fx, "evict_tag", "bad tag"), -EINVAL);
	assert_int_equal(tcu_root_ctl(fx, "evict_tag", "y"), 0);
	assert_false(tcu_present(fx, "a"));
	assert_false(tcu_present(fx, "b"));
	tcu_assert_fill(fx, "c", ITEM, 3);
	assert_true(invalidated(&iv, TC_ROOT_INO, "a", ino_a));
	tcu_assert_stat(fx->eng, "disk_items", 1);
	tcu_assert_stat(fx->eng, "blob_bytes", ITEM);

	/* flush=disk removes every entry. */
	tcu_put_fill(fx, "d", ITEM, 4);
	assert_int_equal(tcu_root_ctl(fx, "flush", "disk"), 0);
	assert_false(tcu_present(fx, "c"));
	assert_false(tcu_present(fx, "d"));
	tcu_assert_stat(fx->eng, "disk_items", 0);
	tcu_assert_stat(fx->eng, "disk_bytes", 0);
	tcu_assert_stat(fx->eng, "blob_bytes", 0);
	tcu_assert_stat(fx->eng, "ram_items", 0);

	/* flush=all too; the store stays usable. */
	tcu_put(fx, "e", "e");
	assert_int_equal(tcu_root_ctl(fx, "flush", "all"), 0);
	assert_false(tcu_present(fx, "e"));
	tcu_put(fx, "e", "again");
	tcu_assert_value(fx, "e", "again");
	tc_engine_set_inval(fx->eng, NULL, NULL);
}

static void test_disk_lru_ties_by_name(void **state)
{
	struct tcu *fx = *state;
	struct tc_attr a;
	uint64_t ad, z, d;

	/* Ties go by the entry's own name, not its path: z/a goes before
	 * a/b. With several names, the smallest counts. */
	disk_config(fx, 0, 3);
	z = tcu_mkdir_at(fx, TC_ROOT_INO, "z");
	d = tcu_mkdir_at(fx, TC_ROOT_INO, "a");
	/* Created last among the first three, so neither creation order
	 * nor inode number would pick it. */
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, d, "b", "2", 1), 0);
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, d, "c", "3", 1), 0);
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, z, "a", "1", 1), 0);
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, d, "d", "4", 1), 0);
	assert_int_equal(tc_lookup(fx->eng, z, "a", &a), -ENOENT);
	ad = tcu_ino_at(fx->eng, d, "d");
	assert_int_equal(tc_link(fx->eng, ad, TC_ROOT_INO, "0", &a), 0);
	tc_forget(fx->eng, ad, 1);
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, TC_ROOT_INO, "e", "5", 1),
			 0);
	/* a/d, also named "0", went; b and c stay. */
	assert_false(tcu_present(fx, "0"));
	assert_int_equal(tc_lookup(fx->eng, d, "d", &a), -ENOENT);
	tcu_assert_value_at(fx, d, "b", "2", 1);
	tcu_assert_value_at(fx, d, "c", "3", 1);
	tcu_assert_value(fx, "e", "5");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, tcu_setup, tcu_teardown)
		T(test_disk_lru_items),
		T(test_disk_lru_bytes),
		T(test_disk_efbig),
		T(test_disk_lru_ties_by_key),
		T(test_evicted_while_open),
		T(test_ttl_absolute),
		T(test_ttl_sliding),
		T(test_ttl_resolution_order),
		T(test_ttl_never),
		T(test_expire_control),
		T(test_schema),
		T(test_evict_tag_and_flush),
		T(test_disk_lru_ties_by_name),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
