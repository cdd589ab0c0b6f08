/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the engine's side of the shared tier (engine/sharedpub.c,
 * engine/sharedtier.c) and of the paths they key records by
 * (tc_node_path_locked(), node.c), without any server: what two mounts
 * sharing a pool do is tests/integration/test_shared.py's, and the client
 * is test_shared.c's.
 *
 * Here: paths of nested entries, the version table (direct-mapped, a
 * collision forgets), a dirty state's from_shared mark cleared by a
 * write, an engine whose servers are all unreachable working on its own
 * tiers with quick misses, a malformed servers string refused at open, and
 * tc_lookup_shared() being tc_lookup() without a shared tier.
 */
#include <time.h>

#include "engine_i.h"
#include "util.h"

/* A loopback port nothing listens on: connections are refused at once. */
#define DEAD_SERVER "127.0.0.1:1"

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * TCU_SEC + ts.tv_nsec;
}

/* An engine on a shared tier whose only server is not there. */
static int setup_dead(void **state)
{
	struct tcu *fx = tcu_new();

	if (!fx)
		return -1;
	fx->cfg.shared_servers = DEAD_SERVER;
	if (tc_engine_open(&fx->cfg, &fx->eng) != 0) {
		fprintf(stderr, "setup: %s\n", tc_engine_last_error());
		tcu_rm_rf(fx->dir);
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

static void path_is(struct tcu *fx, uint64_t ino, const char *want)
{
	char buf[256];
	int rc;

	tc_lock(fx->eng);
	rc = tc_node_path_locked(fx->eng, ino, buf, sizeof(buf));
	tc_unlock(fx->eng);
	assert_int_equal(rc, 0);
	assert_string_equal(buf, want);
}

static void test_paths(void **state)
{
	struct tcu *fx = *state;
	uint64_t a = tcu_mkdir_at(fx, TC_ROOT_INO, "a");
	uint64_t b = tcu_mkdir_at(fx, a, "b b");
	char small[6];
	int rc;

	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, b, "c", "v", 1), 0);
	path_is(fx, TC_ROOT_INO, "/");
	path_is(fx, a, "/a");
	path_is(fx, b, "/a/b b");
	path_is(fx, tcu_ino_at(fx->eng, b, "c"), "/a/b b/c");
	tc_lock(fx->eng);
	rc = tc_node_path_locked(fx->eng, b, small, sizeof(small));
	tc_unlock(fx->eng);
	assert_int_equal(rc, -ENAMETOOLONG);
	/* After a rename, the new path. */
	assert_int_equal(tc_rename(fx->eng, a, "b b", TC_ROOT_INO, "z", 0), 0);
	path_is(fx, b, "/z");
}

static void test_version_table(void **state)
{
	struct tcu *fx = *state;
	struct tc_shver v = { .ino = 42, .version = 7, .writer = 9,
			      .checked = 5, .learned = true }, got;
	uint64_t inos[4];

	tc_lock(fx->eng);
	assert_false(tc_sharedpub_get_locked(fx->eng, 42, &got));
	tc_sharedpub_note_locked(fx->eng, &v);
	assert_true(tc_sharedpub_get_locked(fx->eng, 42, &got));
	assert_int_equal(got.version, 7);
	assert_int_equal(got.writer, 9);
	assert_int_equal(tc_sharedpub_learned_locked(fx->eng, inos, 4), 1);
	assert_int_equal(inos[0], 42);
	tc_sharedpub_untrust_locked(fx->eng);
	assert_true(tc_sharedpub_get_locked(fx->eng, 42, &got));
	assert_int_equal(got.checked, 0);
	assert_false(tc_sharedpub_get_locked(fx->eng, 43, &got));
	tc_sharedpub_forget_locked(fx->eng, 42);
	assert_false(tc_sharedpub_get_locked(fx->eng, 42, &got));
	tc_unlock(fx->eng);
}

static void test_write_clears_from_shared(void **state)
{
	struct tcu *fx = *state;
	struct tc_dirty *d = tc_content_dirty_new(fx->eng);

	assert_non_null(d);
	assert_int_equal(tc_dirty_write(&fx->eng->blobs, d, "abc", 3, 0), 0);
	d->from_shared = true;
	assert_int_equal(tc_dirty_truncate(&fx->eng->blobs, d, 2), 0);
	assert_false(d->from_shared);
	d->from_shared = true;
	assert_int_equal(tc_dirty_write(&fx->eng->blobs, d, "x", 1, 0), 0);
	assert_false(d->from_shared);
	tc_dirty_free(&fx->eng->blobs, d);
}

static void test_servers_unreachable(void **state)
{
	struct tcu *fx = *state;
	struct tc_attr a;
	int64_t t0;

	/* Writes, reads, unlinks: the local tiers do it all. */
	tcu_put(fx, "local", "value");
	tcu_assert_value(fx, "local", "value");
	assert_int_equal(tc_lookup_shared(fx->eng, TC_ROOT_INO, "local", &a), 0);
	tc_forget(fx->eng, a.st.st_ino, 1);
	/* Names nobody has: misses, quick ones, never an error. */
	t0 = mono_ns();
	for (int i = 0; i < 20; i++) {
		char name[32];

		snprintf(name, sizeof(name), "absent-%d", i);
		assert_int_equal(tc_lookup_shared(fx->eng, TC_ROOT_INO, name,
						  &a),
				 -ENOENT);
	}
	assert_true(mono_ns() - t0 < 10 * TCU_SEC);
	assert_int_equal(tcu_del_at(fx->eng, TC_ROOT_INO, "local"), 0);
	assert_int_equal(tc_lookup_shared(fx->eng, TC_ROOT_INO, "local", &a),
			 -ENOENT);
	tcu_maintain(fx); /* polls the (absent) event log: nothing happens */
	assert_true(tcu_stat(fx->eng, "shared_misses") >= 20);
	assert_true(tcu_stat(fx->eng, "shared_servers") == 1);
	assert_true(tcu_stat(fx->eng, "shared_hits") == 0);
}

static void test_bad_servers_refused(void **state)
{
	struct tcu *fx = tcu_new();
	struct tc_engine *eng = NULL;

	(void)state;
	assert_non_null(fx);
	fx->cfg.shared_servers = "127.0.0.1";
	fx->cfg.log_fn = NULL;
	assert_int_equal(tc_engine_open(&fx->cfg, &eng), -EINVAL);
	assert_non_null(strstr(tc_engine_last_error(), "shared"));
	tcu_rm_rf(fx->dir);
	free(fx);
}

static void test_without_shared_tier(void **state)
{
	struct tcu *fx = *state;
	struct tc_attr a;

	tcu_put(fx, "k", "v");
	assert_int_equal(tc_lookup_shared(fx->eng, TC_ROOT_INO, "k", &a), 0);
	tc_forget(fx->eng, a.st.st_ino, 1);
	assert_int_equal(tc_lookup_shared(fx->eng, TC_ROOT_INO, "nope", &a),
			 -ENOENT);
	assert_null(fx->eng->shared);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_paths, tcu_setup,
						tcu_teardown),
		cmocka_unit_test_setup_teardown(test_version_table, setup_dead,
						tcu_teardown),
		cmocka_unit_test_setup_teardown(test_write_clears_from_shared,
						tcu_setup, tcu_teardown),
		cmocka_unit_test_setup_teardown(test_servers_unreachable,
						setup_dead, tcu_teardown),
		cmocka_unit_test(test_bad_servers_refused),
		cmocka_unit_test_setup_teardown(test_without_shared_tier,
						tcu_setup, tcu_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
