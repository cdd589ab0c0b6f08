/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of I/O without a handle (engine/nohandle.c: tc_read_ino(),
 * tc_write_ino(), tc_publish_ino(), tc_publish_name(), tc_touch(), and the
 * maintenance round that publishes after a quiet period and lets go of
 * content nobody read), as the daemon's cache_mode=kernel uses them.
 */
#include "engine_i.h"
#include "util.h"

/* ------------------------------------------------------------------ */
/* Content without handles (tc_read_ino() & co., handleless_writes)   */
/* ------------------------------------------------------------------ */

/* One second of the injected clock. */
#define TC_NS_PER_S_TEST INT64_C(1000000000)

/* Reopen fx's engine with writes arriving without handles. */
static void hl_reopen(struct tcu *fx)
{
	fx->cfg.handleless_writes = true;
	fx->cfg.quiet_ns = TC_NS_PER_S_TEST;
	tcu_reopen(fx);
}

/* Inode of root/@p name with a lookup reference (the kernel's). */
static uint64_t hl_lookup(struct tcu *fx, const char *name)
{
	struct tc_attr a;

	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, name, &a), 0);
	return a.st.st_ino;
}

static void hl_assert_read(struct tcu *fx, uint64_t ino, const char *want)
{
	char buf[256];
	ssize_t n = tc_read_ino(fx->eng, ino, buf, sizeof(buf), 0);

	assert_int_equal(n, strlen(want));
	assert_memory_equal(buf, want, (size_t)n);
}

static void test_ino_write_then_rename_publishes(void **state)
{
	struct tcu *fx = *state;
	char before[33], after[33], ref[33];
	uint64_t ino;

	hl_reopen(fx);
	tcu_put(fx, "k", "old value");
	tcu_put(fx, "ref", "new value!");
	tcu_hash(fx, "ref", ref);
	ino = hl_lookup(fx, "k");
	tcu_hash(fx, "k", before);
	assert_int_equal(tc_write_ino(fx->eng, ino, "new value!", 10, 0), 10);
	/* Every reader sees the write at once; nothing is published yet. */
	hl_assert_read(fx, ino, "new value!");
	tcu_hash(fx, "k", after);
	assert_string_equal(after, before);
	/* A rename is coming: what was written is published first. */
	assert_int_equal(tc_publish_name(fx->eng, TC_ROOT_INO, "k"), 0);
	tcu_hash(fx, "k", after);
	assert_string_equal(after, ref);
	assert_int_equal(tc_publish_name(fx->eng, TC_ROOT_INO, "absent"), 0);
	assert_int_equal(tc_publish_name(fx->eng, TC_ROOT_INO, ""), 0);
	tc_forget(fx->eng, ino, 1);
	tcu_reopen(fx);
	tcu_assert_value(fx, "k", "new value!");
}

struct seen {
	char name[16];
	struct tc_attr a;
};

static int seen_one(void *ctx, const char *name, const struct tc_attr *a,
		    uint64_t off)
{
	struct seen *s = ctx;

	(void)off;
	if (!strcmp(name, s->name))
		s->a = *a;
	return 0;
}

/* A listing of a file whose writes are not published yet marks its
 * attributes unsettled (the row's size is not the writer's: handed to the
 * kernel, it would cut the kernel's copy back) and takes no lookup
 * reference for it; once published, the entry is whole again. */
static void test_listing_of_a_file_being_written(void **state)
{
	struct tcu *fx = *state;
	struct seen s = { .name = "k" };
	struct tc_node *n;
	uint64_t ino;

	hl_reopen(fx);
	tcu_put(fx, "k", "v1");
	ino = hl_lookup(fx, "k");
	assert_int_equal(tc_write_ino(fx->eng, ino, "a longer value", 14, 0),
			 14);
	assert_int_equal(tc_readdir(fx->eng, TC_ROOT_INO, 0, true, seen_one, &s),
			 0);
	assert_int_equal(s.a.st.st_ino, ino);
	assert_true(s.a.unsettled);
	/* No reference was taken: one forget lets the node go. */
	tc_forget(fx->eng, ino, 1);
	tc_lock(fx->eng);
	n = tc_node_find_locked(fx->eng, ino);
	/* (the dirty state keeps the node, without the kernel's count) */
	assert_true(!n || n->nlookup == 0);
	tc_unlock(fx->eng);
	ino = hl_lookup(fx, "k");
	assert_int_equal(tc_publish_ino(fx->eng, ino, false), 0);
	memset(&s.a, 0, sizeof(s.a));
	assert_int_equal(tc_readdir(fx->eng, TC_ROOT_INO, 0, true, seen_one, &s),
			 0);
	assert_false(s.a.unsettled);
	assert_int_equal(s.a.st.st_size, 14);
	tc_lock(fx->eng);
	assert_int_equal(tc_node_find_locked(fx->eng, ino)->nlookup, 2);
	tc_unlock(fx->eng);
	tc_forget(fx->eng, ino, 2);
}

static void test_ino_truncate_waits_for_writes(void **state)
{
	struct tcu *fx = *state;
	char h0[33], h[33], ref[33];
	struct tc_attr a;
	struct stat st = { 0 };
	uint64_t ino;

	hl_reopen(fx);
	tcu_put(fx, "k", "the old content");
	tcu_put(fx, "ref", "fresh");
	tcu_hash(fx, "ref", ref);
	tcu_hash(fx, "k", h0);
	ino = hl_lookup(fx, "k");
	/* An O_TRUNC open of the kernel: a SETATTR of the size, no handle. */
	assert_int_equal(tc_setattr(fx->eng, ino, &st, TC_SET_SIZE, NULL, &a),
			 0);
	assert_int_equal(a.st.st_size, 0);
	tcu_maintain(fx);
	tcu_hash(fx, "k", h);
	assert_string_equal(h, h0); /* the empty file is not published */
	assert_int_equal(tc_write_ino(fx->eng, ino, "fresh", 5, 0), 5);
	tcu_advance(fx, TC_NS_PER_S_TEST / 2);
	tcu_maintain(fx); /* not quiet long enough */
	tcu_hash(fx, "k", h);
	assert_string_equal(h, h0);
	tcu_advance(fx, TC_NS_PER_S_TEST);
	tcu_maintain(fx); /* quiet: published whole */
	tcu_hash(fx, "k", h);
	assert_string_equal(h, ref);
	tc_forget(fx->eng, ino, 1);
}

static void test_ino_publish_and_fsync(void **state)
{
	struct tcu *fx = *state;
	char h[33], ref[33];
	uint64_t ino;

	hl_reopen(fx);
	tcu_put(fx, "k", "x");
	tcu_put(fx, "ref", "xyz");
	tcu_hash(fx, "ref", ref);
	ino = hl_lookup(fx, "k");
	assert_int_equal(tc_write_ino(fx->eng, ino, "yz", 2, 1), 2);
	assert_int_equal(tc_publish_ino(fx->eng, ino, true), 0);
	tcu_hash(fx, "k", h);
	assert_string_equal(h, ref);
	/* Nothing dirty: an fsync makes what was published durable. */
	assert_int_equal(tc_publish_ino(fx->eng, ino, true), 0);
	assert_int_equal(tc_publish_ino(fx->eng, ino, false), 0);
	/* Errors. */
	assert_int_equal(tc_publish_ino(fx->eng, TC_ROOT_INO, false), -EISDIR);
	assert_int_equal(tc_write_ino(fx->eng, ino, "a", 1, -1), -EINVAL);
	assert_int_equal(tc_write_ino(fx->eng, ino, "a", 1,
				      (off_t)fx->cfg.disk_size),
			 -EFBIG);
	assert_int_equal(tc_read_ino(fx->eng, 999999, h, 1, 0), -ENOENT);
	tc_forget(fx->eng, ino, 1);
}

static void test_ino_read_keeps_content_while_read(void **state)
{
	struct tcu *fx = *state;
	uint64_t ino;

	hl_reopen(fx);
	tcu_put(fx, "k", "cached value");
	ino = hl_lookup(fx, "k");
	tcu_flush_ram(fx);
	tc_engine_reset_stats(fx->eng);
	/* The first read loads the content (a get from disk), later reads
	 * use what the node keeps. */
	hl_assert_read(fx, ino, "cached value");
	hl_assert_read(fx, ino, "cached value");
	tcu_assert_stat(fx->eng, "gets", 1);
	tcu_assert_stat(fx->eng, "disk_hits", 1);
	tcu_maintain(fx); /* read since the last round: kept */
	hl_assert_read(fx, ino, "cached value");
	tcu_assert_stat(fx->eng, "gets", 1);
	tcu_maintain(fx);
	tcu_maintain(fx); /* not read for a round: let go */
	tcu_flush_ram(fx); /* nothing pins it now */
	tcu_assert_stat(fx->eng, "ram_items", 0);
	hl_assert_read(fx, ino, "cached value");
	tcu_assert_stat(fx->eng, "gets", 2);
	tcu_assert_stat(fx->eng, "disk_hits", 2);
	tc_forget(fx->eng, ino, 1);
}

static void test_ino_read_span(void **state)
{
	struct tcu *fx = *state;
	enum { LEN = 100000 };
	char *want = malloc(LEN), *got = malloc(LEN);
	struct tc_span sp;
	uint64_t ino;

	assert_non_null(want);
	assert_non_null(got);
	fx->cfg.max_ram_item = 4096; /* served from its blob file */
	fx->cfg.inline_max = 0;
	hl_reopen(fx);
	tcu_put_fill(fx, "big", LEN, 7);
	tcu_fill(want, LEN, 7);
	ino = hl_lookup(fx, "big");
	assert_int_equal(tc_read_span_ino(fx->eng, ino, 0, LEN, &sp), 0);
	assert_true(sp.fd >= 0);
	assert_int_equal(sp.pos, 0);
	assert_int_equal(sp.len, LEN);
	assert_int_equal(pread(sp.fd, got, LEN, 0), LEN);
	assert_memory_equal(got, want, LEN);
	/* The descriptor is the span's: the node letting go of its copy
	 * does not close it. */
	tcu_maintain(fx);
	tcu_maintain(fx);
	assert_int_equal(pread(sp.fd, got, 10, 5), 10);
	assert_memory_equal(got, want + 5, 10);
	tc_span_done(&sp);
	/* Unpublished writes: copy reads only. */
	assert_int_equal(tc_write_ino(fx->eng, ino, "x", 1, 0), 1);
	assert_int_equal(tc_read_span_ino(fx->eng, ino, 0, 1, &sp), -EAGAIN);
	assert_int_equal(tc_read_ino(fx->eng, ino, got, 2, 0), 2);
	assert_int_equal(got[0], 'x');
	assert_int_equal(got[1], want[1]);
	/* RAM content: the bytes of its RAM item. */
	tcu_put(fx, "small", "s");
	{
		uint64_t s = hl_lookup(fx, "small");
		assert_int_equal(tc_read_span_ino(fx->eng, s, 0, 4096, &sp),
				 0);
		assert_int_equal(sp.fd, -1);
		assert_int_equal(sp.len, 1);
		assert_memory_equal(sp.data, "s", 1);
		tc_span_done(&sp);
		assert_int_equal(tc_read_span_ino(fx->eng, s, 1, 1, &sp),
				 -EAGAIN);
		tc_forget(fx->eng, s, 1);
	}
	tc_forget(fx->eng, ino, 1);
	free(want);
	free(got);
}

static void test_ino_removed_entry_stays_readable(void **state)
{
	struct tcu *fx = *state;
	uint64_t ino;

	hl_reopen(fx);
	tcu_put(fx, "k", "still here");
	ino = hl_lookup(fx, "k");
	hl_assert_read(fx, ino, "still here");
	assert_int_equal(tc_unlink(fx->eng, TC_ROOT_INO, "k"), 0);
	assert_false(tcu_present(fx, "k"));
	/* The kernel's reference keeps the inode; its content reloads after
	 * the node let go of it. */
	tcu_maintain(fx);
	tcu_maintain(fx);
	tcu_flush_ram(fx);
	hl_assert_read(fx, ino, "still here");
	tc_forget(fx->eng, ino, 1);
}

static void test_touch_slides_ttl(void **state)
{
	struct tcu *fx = *state;
	uint64_t ino;

	fx->cfg.ttl_ns = 10 * TC_NS_PER_S_TEST;
	fx->cfg.ttl_mode = TC_TTL_SLIDING;
	hl_reopen(fx);
	tcu_put(fx, "k", "v");
	ino = hl_lookup(fx, "k");
	tcu_advance(fx, 8 * TC_NS_PER_S_TEST);
	tc_touch(fx->eng, ino); /* a revalidation: the deadline moves */
	tc_touch(fx->eng, 424242); /* unknown: ignored */
	tc_forget(fx->eng, ino, 1);
	tcu_advance(fx, 8 * TC_NS_PER_S_TEST);
	assert_true(tcu_present(fx, "k"));
	tcu_advance(fx, 11 * TC_NS_PER_S_TEST);
	assert_false(tcu_present(fx, "k"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, tcu_setup, tcu_teardown)
		T(test_ino_write_then_rename_publishes),
		T(test_ino_truncate_waits_for_writes),
		T(test_listing_of_a_file_being_written),
		T(test_ino_publish_and_fsync),
		T(test_ino_read_keeps_content_while_read),
		T(test_ino_read_span),
		T(test_ino_removed_entry_stays_readable),
		T(test_touch_slides_ttl),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
