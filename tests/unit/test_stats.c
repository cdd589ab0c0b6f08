/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the counters and gauges (engine/stats.c), read through
 * tc_engine_stats() after known sequences of operations, against the
 * definitions of tiercachefs(8), STATISTICS: a get is an open for reading, a RAM or a disk hit
 * by where the content is at that moment; a miss is a lookup of an absent,
 * expired or discarded name that is not then created.
 */
#include "util.h"

#define ITEM 1000

static const char *const counters[] = {
	"gets", "ram_hits", "disk_hits", "misses", "puts", "deletes",
	"ram_evictions", "disk_evictions", "expirations", "schema_discards",
	"promotions", "corruptions", "read_bytes", "write_bytes",
};

static const char *const gauges[] = {
	"ram_items", "ram_bytes", "ram_limit_bytes", "disk_items", "disk_bytes",
	"disk_limit_bytes", "blob_bytes", "hit_ratio", "uptime_seconds",
};

#define NCOUNTERS (sizeof(counters) / sizeof(counters[0]))
#define NGAUGES (sizeof(gauges) / sizeof(gauges[0]))

struct seen {
	int n;
	char names[64][40];
	enum tc_stat_kind kinds[64];
	double values[64];
	bool help_ok;
};

static void collect(void *ctx, const char *name, const char *help,
		    enum tc_stat_kind kind, double value)
{
	struct seen *s = ctx;

	if (!help || !*help || strchr(help, '\n'))
		s->help_ok = false;
	if (s->n < 64) {
		snprintf(s->names[s->n], sizeof(s->names[0]), "%s", name);
		s->kinds[s->n] = kind;
		s->values[s->n] = value;
	}
	s->n++;
}

static int occurrences(const struct seen *s, const char *name, int *at)
{
	int k = 0;

	for (int i = 0; i < s->n && i < 64; i++)
		if (strcmp(s->names[i], name) == 0) {
			k++;
			*at = i;
		}
	return k;
}

static void test_all_metrics_reported(void **state)
{
	struct tcu *fx = *state;
	struct seen *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	int at = -1;

	assert_non_null(a);
	assert_non_null(b);
	a->help_ok = b->help_ok = true;
	tc_engine_stats(fx->eng, collect, a);
	assert_true(a->help_ok);
	for (size_t i = 0; i < NCOUNTERS; i++) {
		if (occurrences(a, counters[i], &at) != 1)
			fail_msg("counter %s reported %d times", counters[i],
				 occurrences(a, counters[i], &at));
		assert_int_equal(a->kinds[at], TC_STAT_COUNTER);
		assert_true(a->values[at] == 0);
	}
	for (size_t i = 0; i < NGAUGES; i++) {
		if (occurrences(a, gauges[i], &at) != 1)
			fail_msg("gauge %s reported %d times", gauges[i],
				 occurrences(a, gauges[i], &at));
		assert_int_equal(a->kinds[at], TC_STAT_GAUGE);
	}
	/* Names carry neither the prefix nor the _total suffix. */
	for (int i = 0; i < a->n && i < 64; i++) {
		assert_null(strstr(a->names[i], "tiercache_"));
		assert_null(strstr(a->names[i], "_total"));
	}
	/* A fixed order. */
	tcu_put(fx, "k", "v");
	tc_engine_stats(fx->eng, collect, b);
	assert_int_equal(a->n, b->n);
	for (int i = 0; i < a->n && i < 64; i++)
		assert_string_equal(a->names[i], b->names[i]);
	free(a);
	free(b);
}

static void test_limits_gauges(void **state)
{
	struct tcu *fx = *state;

	tcu_assert_stat(fx->eng, "ram_limit_bytes", 256ull << 20);
	tcu_assert_stat(fx->eng, "disk_limit_bytes", 10ull << 30);
	tcu_assert_stat(fx->eng, "hit_ratio", 0);
	assert_true(tcu_stat(fx->eng, "uptime_seconds") >= 0);
	fx->cfg.ram_size = 12345;
	fx->cfg.disk_size = 67890;
	tcu_reopen(fx);
	tcu_assert_stat(fx->eng, "ram_limit_bytes", 12345);
	tcu_assert_stat(fx->eng, "disk_limit_bytes", 67890);
}

static void test_known_sequence(void **state)
{
	struct tcu *fx = *state;
	struct tc_attr a;
	struct tc_file *f;
	double ratio;

	tcu_put_fill(fx, "a", ITEM, 1);
	tcu_put_fill(fx, "b", 2 * ITEM, 2);
	tcu_assert_stat(fx->eng, "puts", 2);
	tcu_assert_stat(fx->eng, "write_bytes", 3 * ITEM);
	tcu_assert_stat(fx->eng, "gets", 0);
	tcu_flush_ram(fx);

	/* Disk hit, promoted; then a RAM hit. */
	tcu_assert_fill(fx, "a", ITEM, 1);
	tcu_assert_stat(fx->eng, "gets", 1);
	tcu_assert_stat(fx->eng, "disk_hits", 1);
	tcu_assert_stat(fx->eng, "ram_hits", 0);
	tcu_assert_stat(fx->eng, "promotions", 1);
	tcu_assert_stat(fx->eng, "read_bytes", ITEM);
	tcu_assert_fill(fx, "a", ITEM, 1);
	tcu_assert_stat(fx->eng, "gets", 2);
	tcu_assert_stat(fx->eng, "disk_hits", 1);
	tcu_assert_stat(fx->eng, "ram_hits", 1);
	tcu_assert_stat(fx->eng, "read_bytes", 2 * ITEM);

	/* Neither a lookup of a present name, getattr, nor an open for
	 * writing is a get or a miss. */
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "b", &a), 0);
	assert_int_equal(tc_getattr(fx->eng, a.st.st_ino, &a), 0);
	assert_int_equal(tc_open(fx->eng, a.st.st_ino, O_WRONLY, &f), 0);
	assert_int_equal(tc_release(f), 0);
	tc_forget(fx->eng, a.st.st_ino, 1);
	tcu_assert_stat(fx->eng, "gets", 2);
	tcu_assert_stat(fx->eng, "misses", 0);

	/* A miss. */
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "nope", &a), -ENOENT);
	tcu_assert_stat(fx->eng, "misses", 1);

	/* A delete. */
	assert_int_equal(tcu_del_at(fx->eng, TC_ROOT_INO, "b"), 0);
	tcu_assert_stat(fx->eng, "deletes", 1);
	assert_int_equal(tcu_del_at(fx->eng, TC_ROOT_INO, "b"), -ENOENT);
	tcu_assert_stat(fx->eng, "deletes", 1);

	/* hit_ratio = (ram_hits + disk_hits) / (... + misses) = 2/3. */
	ratio = tcu_stat(fx->eng, "hit_ratio");
	assert_true(ratio > 0.6666 && ratio < 0.6667);

	/* Gauges. */
	tcu_assert_stat(fx->eng, "ram_items", 1);
	tcu_assert_stat(fx->eng, "ram_bytes", ITEM);
	tcu_assert_stat(fx->eng, "disk_items", 1);
	tcu_assert_stat(fx->eng, "disk_bytes", ITEM);
	tcu_assert_stat(fx->eng, "blob_bytes", ITEM);

	/* An overwrite is a put. */
	tcu_put_fill(fx, "a", ITEM, 3);
	tcu_assert_stat(fx->eng, "puts", 3);
	tcu_assert_stat(fx->eng, "write_bytes", 4 * ITEM);
	tcu_assert_stat(fx->eng, "ram_evictions", 0);
	tcu_assert_stat(fx->eng, "disk_evictions", 0);
	tcu_assert_stat(fx->eng, "expirations", 0);
	tcu_assert_stat(fx->eng, "corruptions", 0);
}

static void test_miss_then_create_is_put(void **state)
{
	struct tcu *fx = *state;
	struct tc_attr a;
	struct tc_file *f;

	/* What the kernel does for open(O_CREAT): lookup, then create. */
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "new", &a), -ENOENT);
	assert_int_equal(tc_create(fx->eng, TC_ROOT_INO, "new", S_IFREG | 0644,
				   O_WRONLY | O_CREAT, &fx->ctx, &a, &f),
			 0);
	assert_int_equal(tcu_write_all(f, "v", 1, 0), 0);
	assert_int_equal(tc_release(f), 0);
	tc_forget(fx->eng, a.st.st_ino, 1);
	tcu_assert_stat(fx->eng, "misses", 0);
	tcu_assert_stat(fx->eng, "puts", 1);

	/* A lookup not followed by a create stays a miss. */
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "other", &a),
			 -ENOENT);
	tcu_put(fx, "unrelated", "u");
	tcu_assert_stat(fx->eng, "misses", 1);
	tcu_assert_stat(fx->eng, "hit_ratio", 0);
}

static void test_expired_is_miss(void **state)
{
	struct tcu *fx = *state;
	uint64_t ino;

	tcu_put(fx, "k", "v");
	ino = tcu_ino_at(fx->eng, TC_ROOT_INO, "k");
	assert_int_equal(tc_setxattr(fx->eng, ino, TC_XATTR_PREFIX "ttl", "1m",
				     2, 0),
			 0);
	tcu_advance(fx, 2 * TCU_MIN);
	assert_int_equal(tcu_get(fx, "k"), -ENOENT);
	tcu_assert_stat(fx->eng, "misses", 1);
	tcu_assert_stat(fx->eng, "gets", 0);
	tcu_maintain(fx);
	tcu_assert_stat(fx->eng, "expirations", 1);
	tcu_assert_stat(fx->eng, "disk_items", 0);
	tcu_assert_stat(fx->eng, "deletes", 0); /* an expiry is not a delete */
}

static void test_reset(void **state)
{
	struct tcu *fx = *state;

	tcu_put_fill(fx, "a", ITEM, 1);
	tcu_assert_fill(fx, "a", ITEM, 1);
	assert_int_equal(tcu_get(fx, "absent"), -ENOENT);
	tc_engine_reset_stats(fx->eng);
	for (size_t i = 0; i < NCOUNTERS; i++)
		tcu_assert_stat(fx->eng, counters[i], 0);
	tcu_assert_stat(fx->eng, "disk_items", 1);
	tcu_assert_stat(fx->eng, "disk_bytes", ITEM);
	tcu_assert_stat(fx->eng, "hit_ratio", 0);

	/* The same through the root control attribute. */
	tcu_assert_fill(fx, "a", ITEM, 1);
	tcu_assert_stat(fx->eng, "gets", 1);
	assert_int_equal(tcu_root_ctl(fx, "reset_stats", "1"), 0);
	tcu_assert_stat(fx->eng, "gets", 0);
	tcu_assert_stat(fx->eng, "disk_items", 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, tcu_setup, tcu_teardown)
		T(test_all_metrics_reported),
		T(test_limits_gauges),
		T(test_known_sequence),
		T(test_miss_then_create_is_put),
		T(test_expired_is_miss),
		T(test_reset),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
