/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of transactions (engine/txn.c) on a live engine, through its
 * internal functions under the engine lock: a rollback restores the size
 * counters as they were at begin and forgets the doomed blobs; a commit
 * deletes the files of blobs that lost their last reference in it, and
 * only then, unless something referenced them again; tc_txn_end_locked
 * commits on 0 and rolls back on an error.
 */
#include "engine_i.h"
#include "util.h"

/* Above inline_max (64 KiB by default): the content has a blob file. */
#define BLOB_LEN (256 * 1024)

/* Put @name (BLOB_LEN bytes of @seed); its inode and hash (hex). */
static uint64_t put_blob(struct tcu *fx, const char *name, unsigned int seed,
			 char hex[33])
{
	tcu_put_fill(fx, name, BLOB_LEN, seed);
	tcu_hash(fx, name, hex);
	assert_true(tcu_blob_exists(fx, hex));
	return tcu_ino_at(fx->eng, TC_ROOT_INO, name);
}

static void assert_sizes_equal(const struct tc_index_counters *a,
			       const struct tc_index_counters *b)
{
	assert_int_equal(a->disk_bytes, b->disk_bytes);
	assert_int_equal(a->disk_items, b->disk_items);
	assert_int_equal(a->blob_bytes, b->blob_bytes);
}

static void test_rollback_restores_counters(void **state)
{
	struct tcu *fx = *state;
	struct tc_engine *eng = fx->eng;
	struct tc_index_counters before;
	char hex[33];
	uint64_t ino;

	ino = put_blob(fx, "k", 1, hex);
	tcu_put_fill(fx, "other", 1000, 2);
	tc_lock(eng);
	before = eng->size;
	assert_int_equal(before.disk_items, 2);
	assert_int_equal(tc_txn_begin_locked(eng), 0);
	assert_true(tc_index_in_txn(&eng->ix));
	/* Drop k (its blob goes with it) and move the counters more. */
	assert_int_equal(tc_node_drop_locked(eng, ino, NULL), 0);
	tc_txn_account_locked(eng, 500, 2);
	assert_int_equal(eng->size.disk_items, 3);
	assert_int_equal(eng->size.disk_bytes,
			 before.disk_bytes - BLOB_LEN + 500);
	assert_int_equal(eng->size.blob_bytes, before.blob_bytes - BLOB_LEN);
	assert_int_equal(eng->n_doomed, 1);

	tc_txn_rollback_locked(eng);
	assert_false(tc_index_in_txn(&eng->ix));
	assert_sizes_equal(&eng->size, &before);
	assert_int_equal(eng->n_doomed, 0);
	tc_unlock(eng);

	/* The row and the blob file are as they were. */
	assert_true(tcu_blob_exists(fx, hex));
	tcu_flush_ram(fx);
	tcu_assert_fill(fx, "k", BLOB_LEN, 1);
	tcu_assert_stat(eng, "disk_items", 2);
	tcu_assert_stat(eng, "blob_bytes", BLOB_LEN + 1000);
}

static void test_commit_reaps_doomed_blobs(void **state)
{
	struct tcu *fx = *state;
	struct tc_engine *eng = fx->eng;
	uint8_t h[TC_HASH_LEN];
	char hex[33];
	uint64_t ino;

	ino = put_blob(fx, "k", 1, hex);
	tcu_hash_bin(hex, h);
	tc_lock(eng);
	assert_int_equal(tc_txn_begin_locked(eng), 0);
	assert_int_equal(tc_node_drop_locked(eng, ino, NULL), 0);
	assert_int_equal(tc_index_blob_refs(&eng->ix, h), 0);
	/* Until the commit, the file stays: a rollback may need it. */
	assert_true(tcu_blob_exists(fx, hex));
	assert_int_equal(tc_txn_commit_locked(eng), 0);
	assert_false(tcu_blob_exists(fx, hex));
	assert_int_equal(eng->n_doomed, 0);
	tc_unlock(eng);

	assert_false(tcu_present(fx, "k"));
	tcu_assert_stat(eng, "disk_items", 0);
	tcu_assert_stat(eng, "blob_bytes", 0);
}

static void test_commit_keeps_rereferenced_blob(void **state)
{
	struct tcu *fx = *state;
	struct tc_engine *eng = fx->eng;
	uint8_t h[TC_HASH_LEN];
	char hex[33];

	put_blob(fx, "k", 1, hex);
	tcu_hash_bin(hex, h);
	tc_lock(eng);
	assert_int_equal(tc_txn_begin_locked(eng), 0);
	/* The last reference goes, and a new one comes, in one transaction
	 * (a publish of the same content over a dropped entry). */
	assert_int_equal(tc_blob_unref_locked(eng, h), 0);
	assert_int_equal(eng->n_doomed, 1);
	assert_int_equal(tc_blob_ref_locked(eng, h, BLOB_LEN, NULL, false), 0);
	assert_int_equal(tc_txn_commit_locked(eng), 0);
	assert_int_equal(tc_index_blob_refs(&eng->ix, h), 1);
	tc_unlock(eng);

	assert_true(tcu_blob_exists(fx, hex));
	tcu_assert_stat(eng, "blob_bytes", BLOB_LEN);
	tcu_flush_ram(fx);
	tcu_assert_fill(fx, "k", BLOB_LEN, 1);
}

static void test_txn_end(void **state)
{
	struct tcu *fx = *state;
	struct tc_engine *eng = fx->eng;
	struct tc_index_counters before;
	char ha[33], hb[33];
	uint64_t a, b;

	a = put_blob(fx, "a", 1, ha);
	b = put_blob(fx, "b", 2, hb);

	/* 0: commit (and reap). */
	tc_lock(eng);
	assert_int_equal(tc_txn_begin_locked(eng), 0);
	assert_int_equal(tc_txn_end_locked(eng, tc_node_drop_locked(eng, a,
								     NULL)),
			 0);
	assert_false(tc_index_in_txn(&eng->ix));
	tc_unlock(eng);
	assert_false(tcu_present(fx, "a"));
	assert_false(tcu_blob_exists(fx, ha));

	/* An error: roll back, and return it. */
	tc_lock(eng);
	before = eng->size;
	assert_int_equal(tc_txn_begin_locked(eng), 0);
	assert_int_equal(tc_node_drop_locked(eng, b, NULL), 0);
	assert_int_equal(tc_txn_end_locked(eng, -EIO), -EIO);
	assert_false(tc_index_in_txn(&eng->ix));
	assert_sizes_equal(&eng->size, &before);
	tc_unlock(eng);
	assert_true(tcu_blob_exists(fx, hb));
	tcu_flush_ram(fx);
	tcu_assert_fill(fx, "b", BLOB_LEN, 2);
	tcu_assert_stat(eng, "disk_items", 1);

	/* And the counters survive a reopen as committed. */
	tcu_reopen(fx);
	tcu_assert_stat(fx->eng, "disk_items", 1);
	tcu_assert_stat(fx->eng, "disk_bytes", BLOB_LEN);
	tcu_assert_stat(fx->eng, "blob_bytes", BLOB_LEN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, tcu_setup, tcu_teardown)
		T(test_rollback_restores_counters),
		T(test_commit_reaps_doomed_blobs),
		T(test_commit_keeps_rereferenced_blob),
		T(test_txn_end),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
