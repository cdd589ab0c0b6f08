/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the RAM tier (engine/ram.c): an LRU of contents bounded by
 * bytes (ram_size) and items (ram_items), fed by promotion on a read that
 * missed RAM, never holding items larger than max_ram_item, dropping items
 * idle for ram_ttl. Where an item is served from is observed through the
 * user.tiercache.tier xattr and the RAM gauges of tc_engine_stats().
 *
 * Time passes only through the injected clock; after each step the test
 * runs maintenance, as the background thread would have meanwhile, so the
 * engine may batch access times (STYLE point 7) and still be tested.
 */
#include "util.h"

#define ITEM 1000 /* bytes per test item */

/* Time between two accesses: long enough for any access-time batching. */
#define STEP (2 * TCU_MIN)

static void step(struct tcu *fx)
{
	tcu_advance(fx, STEP);
	tcu_maintain(fx);
}

/* Reopen with RAM limits; no idle expiry unless the test sets one. */
static void ram_config(struct tcu *fx, uint64_t size, uint64_t items)
{
	fx->cfg.ram_size = size;
	fx->cfg.ram_items = items;
	fx->cfg.ram_ttl_ns = 0;
	tcu_reopen(fx);
}

/* Get @name (ITEM bytes of seed @seed), checking the content, then step. */
static void get_step(struct tcu *fx, const char *name, unsigned int seed)
{
	tcu_assert_fill(fx, name, ITEM, seed);
	step(fx);
}

/* The RAM gauges never exceed the limits. */
static void assert_within(struct tcu *fx, uint64_t size, uint64_t items)
{
	double b = tcu_stat(fx->eng, "ram_bytes");
	double n = tcu_stat(fx->eng, "ram_items");

	if (size && b > (double)size)
		fail_msg("ram_bytes %.0f over ram_size %llu", b,
			 (unsigned long long)size);
	if (items && n > (double)items)
		fail_msg("ram_items %.0f over ram_items %llu", n,
			 (unsigned long long)items);
}

/* Put a..(a+n-1) with seeds 1..n, then empty RAM and zero the counters. */
static void put_items(struct tcu *fx, int n)
{
	char name[2] = "a";

	for (int i = 0; i < n; i++) {
		name[0] = (char)('a' + i);
		tcu_put_fill(fx, name, ITEM, (unsigned int)i + 1);
		step(fx);
	}
	tcu_flush_ram(fx);
	tc_engine_reset_stats(fx->eng); /* count evictions from here on */
	tcu_assert_stat(fx->eng, "ram_items", 0);
	tcu_assert_stat(fx->eng, "ram_bytes", 0);
	for (int i = 0; i < n; i++) {
		name[0] = (char)('a' + i);
		tcu_assert_tier(fx, name, "disk");
	}
}

static void test_promotion(void **state)
{
	struct tcu *fx = *state;

	put_items(fx, 1);
	tc_engine_reset_stats(fx->eng);
	/* First read: from disk, promoted. */
	tcu_assert_fill(fx, "a", ITEM, 1);
	tcu_assert_stat(fx->eng, "disk_hits", 1);
	tcu_assert_stat(fx->eng, "ram_hits", 0);
	tcu_assert_stat(fx->eng, "promotions", 1);
	tcu_assert_tier(fx, "a", "ram");
	tcu_assert_stat(fx->eng, "ram_items", 1);
	tcu_assert_stat(fx->eng, "ram_bytes", ITEM);
	/* Second read: from RAM, same content. */
	tcu_assert_fill(fx, "a", ITEM, 1);
	tcu_assert_stat(fx->eng, "disk_hits", 1);
	tcu_assert_stat(fx->eng, "ram_hits", 1);
	tcu_assert_stat(fx->eng, "promotions", 1);
}

static void test_lru_order_bytes(void **state)
{
	struct tcu *fx = *state;

	ram_config(fx, 3 * ITEM, 0);
	put_items(fx, 4);
	get_step(fx, "a", 1);
	get_step(fx, "b", 2);
	get_step(fx, "c", 3);
	tcu_assert_tier(fx, "a", "ram");
	tcu_assert_tier(fx, "b", "ram");
	tcu_assert_tier(fx, "c", "ram");
	tcu_assert_stat(fx->eng, "ram_bytes", 3 * ITEM);

	/* Touch a: b becomes the least recently used. */
	get_step(fx, "a", 1);
	get_step(fx, "d", 4);
	tcu_assert_tier(fx, "a", "ram");
	tcu_assert_tier(fx, "b", "disk");
	tcu_assert_tier(fx, "c", "ram");
	tcu_assert_tier(fx, "d", "ram");
	tcu_assert_stat(fx->eng, "ram_evictions", 1);
	assert_within(fx, 3 * ITEM, 0);

	/* Evicted from RAM, b is still on disk; reading it evicts c. */
	get_step(fx, "b", 2);
	tcu_assert_tier(fx, "b", "ram");
	tcu_assert_tier(fx, "c", "disk");
	tcu_assert_tier(fx, "a", "ram");
	tcu_assert_tier(fx, "d", "ram");
	tcu_assert_stat(fx->eng, "ram_evictions", 2);
	tcu_assert_stat(fx->eng, "ram_items", 3);
	assert_within(fx, 3 * ITEM, 0);
}

static void test_lru_order_items(void **state)
{
	struct tcu *fx = *state;

	ram_config(fx, 0, 2);
	put_items(fx, 3);
	get_step(fx, "a", 1);
	get_step(fx, "b", 2);
	get_step(fx, "a", 1);
	get_step(fx, "c", 3);
	tcu_assert_tier(fx, "a", "ram");
	tcu_assert_tier(fx, "b", "disk");
	tcu_assert_tier(fx, "c", "ram");
	tcu_assert_stat(fx->eng, "ram_items", 2);
	tcu_assert_stat(fx->eng, "ram_evictions", 1);
	assert_within(fx, 0, 2);

	get_step(fx, "c", 3);
	get_step(fx, "b", 2);
	tcu_assert_tier(fx, "a", "disk");
	tcu_assert_tier(fx, "b", "ram");
	tcu_assert_tier(fx, "c", "ram");
	assert_within(fx, 0, 2);
}

static void test_both_limits(void **state)
{
	struct tcu *fx = *state;
	char name[8];

	/* Items of ITEM bytes: the byte limit binds at 5, the item limit
	 * at 3; whichever is tighter wins. */
	ram_config(fx, 5 * ITEM, 3);
	for (int i = 0; i < 8; i++) {
		snprintf(name, sizeof(name), "k%d", i);
		tcu_put_fill(fx, name, ITEM, (unsigned int)i);
	}
	tcu_flush_ram(fx);
	for (int i = 0; i < 8; i++) {
		snprintf(name, sizeof(name), "k%d", i);
		tcu_assert_fill(fx, name, ITEM, (unsigned int)i);
		step(fx);
		assert_within(fx, 5 * ITEM, 3);
	}
	tcu_assert_stat(fx->eng, "ram_items", 3);
	for (int i = 0; i < 8; i++) {
		snprintf(name, sizeof(name), "k%d", i);
		tcu_assert_tier(fx, name, i >= 5 ? "ram" : "disk");
	}

	/* Bigger items: now the byte limit binds (2 of 2 KiB fit in 5). */
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "big%d", i);
		tcu_put_fill(fx, name, 2 * ITEM, 100 + (unsigned int)i);
	}
	tcu_flush_ram(fx);
	for (int i = 0; i < 4; i++) {
		snprintf(name, sizeof(name), "big%d", i);
		tcu_assert_fill(fx, name, 2 * ITEM, 100 + (unsigned int)i);
		step(fx);
		assert_within(fx, 5 * ITEM, 3);
	}
	tcu_assert_stat(fx->eng, "ram_items", 2);
	tcu_assert_stat(fx->eng, "ram_bytes", 4 * ITEM);
	tcu_assert_tier(fx, "big3", "ram");
	tcu_assert_tier(fx, "big2", "ram");
	tcu_assert_tier(fx, "big1", "disk");

	/* An item larger than the whole tier is served from disk. */
	tcu_put_fill(fx, "huge", 6 * ITEM, 7);
	tcu_flush_ram(fx);
	tcu_assert_fill(fx, "huge", 6 * ITEM, 7);
	tcu_assert_tier(fx, "huge", "disk");
	assert_within(fx, 5 * ITEM, 3);
	tcu_assert_fill(fx, "huge", 6 * ITEM, 7);
	assert_within(fx, 5 * ITEM, 3);
}

static void test_max_ram_item(void **state)
{
	struct tcu *fx = *state;

	fx->cfg.max_ram_item = ITEM;
	tcu_reopen(fx);

	tcu_put_fill(fx, "fits", ITEM, 1);       /* exactly the limit */
	tcu_put_fill(fx, "big", ITEM + 1, 2);    /* one byte over */
	/* Never in RAM, not even straight after the write. */
	tcu_assert_tier(fx, "big", "disk");
	tcu_flush_ram(fx);
	tc_engine_reset_stats(fx->eng);

	for (int i = 0; i < 3; i++) {
		tcu_assert_fill(fx, "big", ITEM + 1, 2);
		tcu_assert_tier(fx, "big", "disk");
		tcu_assert_fill(fx, "fits", ITEM, 1);
		tcu_assert_tier(fx, "fits", "ram");
	}
	tcu_assert_stat(fx->eng, "disk_hits", 3 + 1);
	tcu_assert_stat(fx->eng, "ram_hits", 2);
	tcu_assert_stat(fx->eng, "promotions", 1);
	tcu_assert_stat(fx->eng, "ram_items", 1);
	tcu_assert_stat(fx->eng, "ram_bytes", ITEM);
}

static void test_ram_ttl_idle(void **state)
{
	struct tcu *fx = *state;

	fx->cfg.ram_ttl_ns = TCU_HOUR;
	tcu_reopen(fx);
	tcu_put_fill(fx, "a", ITEM, 1);
	tcu_put_fill(fx, "b", ITEM, 2);
	tcu_flush_ram(fx);
	tcu_assert_fill(fx, "a", ITEM, 1);
	tcu_assert_fill(fx, "b", ITEM, 2);
	tcu_assert_tier(fx, "a", "ram");
	tcu_assert_tier(fx, "b", "ram");

	/* t+40m: a is read again; both stay (idle < 1h). */
	tcu_advance(fx, 40 * TCU_MIN);
	tcu_maintain(fx);
	tcu_assert_fill(fx, "a", ITEM, 1);
	tcu_assert_tier(fx, "a", "ram");
	tcu_assert_tier(fx, "b", "ram");

	/* t+70m: b idle 70m leaves RAM, a idle 30m stays. */
	tcu_advance(fx, 30 * TCU_MIN);
	tcu_maintain(fx);
	tcu_assert_tier(fx, "b", "disk");
	tcu_assert_tier(fx, "a", "ram");
	tcu_assert_stat(fx->eng, "ram_items", 1);

	/* t+110m: a idle 70m leaves too; both still on disk. */
	tcu_advance(fx, 40 * TCU_MIN);
	tcu_maintain(fx);
	tcu_assert_tier(fx, "a", "disk");
	tcu_assert_stat(fx->eng, "ram_items", 0);
	tcu_assert_stat(fx->eng, "ram_bytes", 0);
	tc_engine_reset_stats(fx->eng);
	tcu_assert_fill(fx, "a", ITEM, 1);
	tcu_assert_fill(fx, "b", ITEM, 2);
	tcu_assert_stat(fx->eng, "disk_hits", 2);
}

static void test_no_stale_content(void **state)
{
	struct tcu *fx = *state;

	/* A RAM copy never outlives the content it copies. */
	tcu_put(fx, "k", "version one");
	tcu_assert_value(fx, "k", "version one");
	tcu_assert_value(fx, "k", "version one");
	tcu_assert_tier(fx, "k", "ram");
	tcu_put(fx, "k", "version two, longer");
	tcu_assert_value(fx, "k", "version two, longer");

	tcu_put(fx, "other", "other content");
	tcu_assert_value(fx, "other", "other content");
	assert_int_equal(tc_rename(fx->eng, TC_ROOT_INO, "other", TC_ROOT_INO,
				   "k", 0),
			 0);
	tcu_assert_value(fx, "k", "other content");

	/* Truncation through setattr. */
	{
		struct stat st = { .st_size = 5 };
		struct tc_attr out;
		uint64_t ino = tcu_ino_at(fx->eng, TC_ROOT_INO, "k");

		assert_int_equal(tc_setattr(fx->eng, ino, &st, TC_SET_SIZE,
					    NULL, &out),
				 0);
	}
	tcu_assert_value(fx, "k", "other");

	/* A deleted key is not served from RAM. */
	assert_int_equal(tcu_del_at(fx->eng, TC_ROOT_INO, "k"), 0);
	assert_int_equal(tcu_get(fx, "k"), -ENOENT);
	tcu_put(fx, "k", "reborn");
	tcu_assert_value(fx, "k", "reborn");
}

static void test_flush_ram(void **state)
{
	struct tcu *fx = *state;

	tcu_put_fill(fx, "a", ITEM, 1);
	tcu_put_fill(fx, "b", ITEM, 2);
	tcu_assert_fill(fx, "a", ITEM, 1);
	tcu_assert_fill(fx, "b", ITEM, 2);
	tcu_assert_stat(fx->eng, "ram_items", 2);
	tcu_flush_ram(fx);
	tcu_assert_stat(fx->eng, "ram_items", 0);
	tcu_assert_stat(fx->eng, "ram_bytes", 0);
	tcu_assert_tier(fx, "a", "disk");
	tcu_assert_stat(fx->eng, "disk_items", 2);
	tcu_assert_fill(fx, "a", ITEM, 1);
	tcu_assert_fill(fx, "b", ITEM, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, tcu_setup, tcu_teardown)
		T(test_promotion),
		T(test_lru_order_bytes),
		T(test_lru_order_items),
		T(test_both_limits),
		T(test_max_ram_item),
		T(test_ram_ttl_idle),
		T(test_no_stale_content),
		T(test_flush_ram),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
