/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the committer (engine/commit.c) with its thread running:
 * the file of a blob that lost its last reference is deleted only after a
 * WAL fsync made that commit durable, by the committer, and it stays while
 * every fsync fails; under sync=never nothing waits for an fsync; a full
 * store reclaims them at once. The row of an unlinked file the kernel
 * forgot goes with the next group commit, not in the FORGET, and the times
 * of a directory whose names changed reach its row once, at the commit.
 */
#include <time.h>

#include "engine_i.h"
#include "util.h"

/* Above inline_max (64 KiB by default): the content has a blob file. */
#define BLOB_LEN (256 * 1024)
#define DEADLINE_NS (10 * TCU_SEC)

static struct tcu_faults faults;

static int64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * TCU_SEC + ts.tv_nsec;
}

static void pause_ms(void)
{
	struct timespec ts = { 0, 1000000 };

	nanosleep(&ts, NULL);
}

/* Wait (with a deadline) until the blob file's existence is @want. */
static void wait_blob(struct tcu *fx, const char *hex, bool want)
{
	int64_t end = mono_ns() + DEADLINE_NS;

	while (tcu_blob_exists(fx, hex) != want) {
		assert_true(mono_ns() < end);
		pause_ms();
	}
}

/* Wait (with a deadline) until the ops table saw more than @n fsyncs. */
static void wait_fsyncs_above(int n)
{
	int64_t end = mono_ns() + DEADLINE_NS;

	while (__atomic_load_n(&faults.fsyncs, __ATOMIC_RELAXED) <= n) {
		assert_true(mono_ns() < end);
		pause_ms();
	}
}

/* Reopen with the committer running and blob I/O through the faults. */
static void start(struct tcu *fx, enum tc_sync sync)
{
	fx->cfg.background = true;
	fx->cfg.sync = sync;
	tcu_use_faults(fx, &faults);
}

static void put_blob(struct tcu *fx, const char *name, char hex[33])
{
	tcu_put_fill(fx, name, BLOB_LEN, 7);
	tcu_hash(fx, name, hex);
	assert_true(tcu_blob_exists(fx, hex));
}

static void test_blob_goes_after_a_durable_commit(void **state)
{
	struct tcu *fx = *state;
	char hex[33];
	int seen;

	start(fx, TC_SYNC_FSYNC);
	put_blob(fx, "k", hex);
	assert_int_equal(tc_sync(fx->eng), 0);

	/* Every fsync fails: the unlink commits, the file stays. */
	faults.fsync_errno = EIO;
	assert_int_equal(tc_unlink(fx->eng, TC_ROOT_INO, "k"), 0);
	assert_int_equal(tc_sync(fx->eng), -EIO);
	seen = __atomic_load_n(&faults.fsyncs, __ATOMIC_RELAXED);
	/* The committer tries its own fsync, and fails too. */
	wait_fsyncs_above(seen);
	assert_true(tcu_blob_exists(fx, hex));
	assert_false(tcu_present(fx, "k"));

	/* Once an fsync succeeds (the committer's retry), the file goes. */
	faults.fsync_errno = 0;
	wait_blob(fx, hex, false);
	tcu_assert_stat(fx->eng, "blob_bytes", 0);
	tcu_drop_faults(fx);
}

static void test_program_fsync_lets_the_committer_reap(void **state)
{
	struct tcu *fx = *state;
	char hex[33];

	start(fx, TC_SYNC_FSYNC);
	put_blob(fx, "k", hex);
	assert_int_equal(tc_unlink(fx->eng, TC_ROOT_INO, "k"), 0);
	assert_int_equal(tc_sync(fx->eng), 0);
	wait_blob(fx, hex, false);
	tcu_drop_faults(fx);
}

static void test_sync_never_reaps_without_fsync(void **state)
{
	struct tcu *fx = *state;
	char hex[33];

	start(fx, TC_SYNC_NEVER);
	put_blob(fx, "k", hex);
	assert_int_equal(tc_unlink(fx->eng, TC_ROOT_INO, "k"), 0);
	wait_blob(fx, hex, false);
	assert_int_equal(__atomic_load_n(&faults.fsyncs, __ATOMIC_RELAXED), 0);
	tcu_drop_faults(fx);
}

static void test_close_reaps_what_is_left(void **state)
{
	struct tcu *fx = *state;
	char hex[33];

	start(fx, TC_SYNC_FSYNC);
	put_blob(fx, "k", hex);
	faults.fsync_errno = EIO;
	assert_int_equal(tc_unlink(fx->eng, TC_ROOT_INO, "k"), 0);
	assert_int_equal(tc_sync(fx->eng), -EIO);
	assert_true(tcu_blob_exists(fx, hex));
	faults.fsync_errno = 0;
	/* Closing syncs and deletes it, whatever the committer got to. */
	tcu_drop_faults(fx);
	assert_false(tcu_blob_exists(fx, hex));
	tcu_open(fx);
	assert_false(tcu_present(fx, "k"));
}

/* The most holds any fsync saw (the fsync of a chunk's temporary file
 * comes just before it takes the blob's name). */
static struct tc_engine *watched;
static size_t holds_seen;

static int fsync_watching_holds(void *ctx, int fd)
{
	size_t n = __atomic_load_n(&watched->n_holds, __ATOMIC_RELAXED);

	if (n > holds_seen)
		holds_seen = n;
	return tcu_f_fsync(ctx, fd);
}

/* A blob file that takes its name is held from before, so that no reap
 * of an earlier blob of that hash (retired, its last reference gone) can
 * delete it before the publish references it. */
static void test_new_blob_file_is_held_before_it_is_named(void **state)
{
	struct tcu *fx = *state;

	start(fx, TC_SYNC_CLOSE); /* a durable publish fsyncs the file */
	watched = fx->eng;
	holds_seen = 0;
	faults.ops.fsync = fsync_watching_holds;
	tcu_put_fill(fx, "k", BLOB_LEN, 3);
	assert_true(holds_seen >= 1);
	/* Released once referenced: nothing keeps a file alive for ever. */
	assert_int_equal(__atomic_load_n(&fx->eng->n_holds, __ATOMIC_RELAXED),
			 0);
	tcu_drop_faults(fx);
}

/* A full store frees the deleted entries' files at once, in the caller. */
static void test_reclaim_deletes_at_once(void **state)
{
	struct tcu *fx = *state;
	char hex[33];

	start(fx, TC_SYNC_FSYNC);
	put_blob(fx, "k", hex);
	assert_int_equal(tc_unlink(fx->eng, TC_ROOT_INO, "k"), 0);
	assert_true(tc_commit_reclaim(fx->eng));
	assert_false(tcu_blob_exists(fx, hex)); /* no waiting */
	tcu_assert_stat(fx->eng, "blob_bytes", 0);
	/* Nothing left to free: no point in trying again. */
	assert_false(tc_commit_reclaim(fx->eng));
	tcu_drop_faults(fx);
}

/* The committer waits an hour: commits come from tc_sync() alone. */
static void start_slow(struct tcu *fx)
{
	fx->cfg.commit_interval_ns = 3600 * TCU_SEC;
	start(fx, TC_SYNC_NEVER);
}

static void test_forgotten_file_goes_with_the_next_commit(void **state)
{
	struct tcu *fx = *state;
	struct tc_attr a;
	struct tc_inode m;
	char hex[33];

	start_slow(fx);
	put_blob(fx, "k", hex);
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "k", &a), 0);
	assert_int_equal(tc_unlink(fx->eng, TC_ROOT_INO, "k"), 0);
	tc_forget(fx->eng, a.st.st_ino, 1);
	/* Queued: the row has no links, the blob its reference. */
	assert_int_equal(tcu_row(fx->eng, a.st.st_ino, &m), 0);
	assert_int_equal(m.nlink, 0);
	assert_true(tcu_blob_exists(fx, hex));
	assert_false(tcu_present(fx, "k"));
	tcu_assert_stat(fx->eng, "disk_items", 0);

	assert_int_equal(tc_sync(fx->eng), 0);
	assert_int_equal(tcu_row(fx->eng, a.st.st_ino, &m), -ENOENT);
	wait_blob(fx, hex, false);
	tcu_assert_stat(fx->eng, "blob_bytes", 0);
	tcu_drop_faults(fx);
}

/* A queued row is no entry: evict_tag leaves it (and does not count it),
 * and the blob it shares loses one reference, not two. */
static void test_queued_row_is_purged_once(void **state)
{
	struct tcu *fx = *state;
	char hex[33], hex_b[33];

	start_slow(fx);
	put_blob(fx, "a", hex);
	put_blob(fx, "b", hex_b);
	assert_string_equal(hex, hex_b);
	assert_int_equal(tc_setxattr(fx->eng,
				     tcu_ino_at(fx->eng, TC_ROOT_INO, "a"),
				     TC_XATTR_PREFIX "tags", "t", 1, 0),
			 0);
	assert_int_equal(tc_unlink(fx->eng, TC_ROOT_INO, "a"), 0);
	assert_int_equal(tcu_root_ctl(fx, "evict_tag", "t"), 0);
	tcu_assert_stat(fx->eng, "disk_evictions", 0);
	assert_int_equal(tc_sync(fx->eng), 0);
	assert_true(tcu_blob_exists(fx, hex));
	tcu_assert_fill(fx, "b", BLOB_LEN, 7);

	assert_int_equal(tc_unlink(fx->eng, TC_ROOT_INO, "b"), 0);
	assert_int_equal(tc_sync(fx->eng), 0);
	wait_blob(fx, hex, false);
	tcu_drop_faults(fx);
}

static int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * TCU_SEC + ts->tv_nsec;
}

static void test_directory_row_waits_for_the_commit(void **state)
{
	struct tcu *fx = *state;
	struct tc_inode before, row;
	struct tc_attr a;
	uint64_t d;

	start_slow(fx);
	d = tcu_mkdir_at(fx, TC_ROOT_INO, "d");
	/* Held, as the kernel holds a directory it works in (a directory
	 * that leaves the node table writes its row then). */
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "d", &a), 0);
	assert_int_equal(tc_sync(fx->eng), 0);
	assert_int_equal(tcu_row(fx->eng, d, &before), 0);

	tcu_advance(fx, TCU_SEC);
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, d, "a", "1", 1), 0);
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, d, "b", "2", 1), 0);
	assert_int_equal(tcu_del_at(fx->eng, d, "a"), 0);
	/* Its attributes change at once, its row at the commit. */
	assert_int_equal(tc_getattr(fx->eng, d, &a), 0);
	assert_int_equal(ts_ns(&a.st.st_mtim), before.mtime + TCU_SEC);
	assert_int_equal(ts_ns(&a.st.st_ctim), before.ctime + TCU_SEC);
	assert_int_equal(tcu_row(fx->eng, d, &row), 0);
	assert_int_equal(row.mtime, before.mtime);
	assert_int_equal(tc_sync(fx->eng), 0);
	assert_int_equal(tcu_row(fx->eng, d, &row), 0);
	assert_int_equal(row.mtime, before.mtime + TCU_SEC);
	assert_int_equal(row.ctime, before.ctime + TCU_SEC);

	/* A link count does not wait. */
	tcu_advance(fx, TCU_SEC);
	(void)tcu_mkdir_at(fx, d, "sub");
	assert_int_equal(tcu_row(fx->eng, d, &row), 0);
	assert_int_equal(row.nlink, before.nlink + 1);
	assert_int_equal(row.mtime, before.mtime + 2 * TCU_SEC);

	/* The next create's times wait again, until the kernel forgets the
	 * directory: it leaves the node table and writes its row. */
	tcu_advance(fx, TCU_SEC);
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, d, "c", "3", 1), 0);
	assert_int_equal(tcu_row(fx->eng, d, &row), 0);
	assert_int_equal(row.mtime, before.mtime + 2 * TCU_SEC);
	tc_forget(fx->eng, d, 1);
	assert_int_equal(tcu_row(fx->eng, d, &row), 0);
	assert_int_equal(row.mtime, before.mtime + 3 * TCU_SEC);
	/* And all of it is there after a close. */
	tcu_drop_faults(fx);
	tcu_open(fx);
	assert_int_equal(tc_getattr(fx->eng, d, &a), 0);
	assert_int_equal(ts_ns(&a.st.st_mtim), before.mtime + 3 * TCU_SEC);
	assert_int_equal(a.st.st_nlink, before.nlink + 1);
}

/* What the grouped test saw of one name. */
struct seen_attr {
	bool present;
	uint32_t mode, nlink;
	int64_t mtime, ctime;
};

static void snapshot(struct tcu *fx, uint64_t dir, int n,
		     struct seen_attr *out)
{
	for (int i = 0; i < n; i++) {
		char name[16];
		struct tc_attr a;

		snprintf(name, sizeof(name), "f%d", i);
		out[i].present = tc_lookup(fx->eng, dir, name, &a) == 0;
		if (!out[i].present)
			continue;
		out[i].mode = a.st.st_mode;
		out[i].nlink = (uint32_t)a.st.st_nlink;
		out[i].mtime = ts_ns(&a.st.st_mtim);
		out[i].ctime = ts_ns(&a.st.st_ctim);
		tc_forget(fx->eng, a.st.st_ino, 1);
	}
}

/*
 * Random creates, chmods, utimens, renames, unlinks and mkdirs in one
 * directory, grouped by the committer and committed only by tc_sync() and
 * closes: after every close, what the engine showed before (the entries,
 * their modes, link counts and times, the directory's) is what it finds
 * again, and tc_check() finds the store sound.
 */
static void test_grouped_changes_survive_a_close(void **state)
{
	enum { NAMES = 8, OPS = 3000 };
	struct tcu *fx = *state;
	struct seen_attr before[NAMES + 1], after[NAMES + 1];
	struct tc_check_report rep;
	uint32_t r = 12345;
	struct tc_attr a;
	uint64_t d;

	start_slow(fx);
	d = tcu_mkdir_at(fx, TC_ROOT_INO, "d");
	for (int op = 0; op < OPS; op++) {
		char x[16], y[16];
		struct stat st = { 0 };
		int i, j;

		r = r * 1103515245u + 12345u;
		i = (int)(r >> 8) % NAMES;
		j = (int)(r >> 16) % NAMES;
		snprintf(x, sizeof(x), "f%d", i);
		snprintf(y, sizeof(y), "f%d", j);
		tcu_advance(fx, 1000);
		switch ((r >> 24) % 8) {
		case 0:
			(void)tcu_put_at(fx->eng, &fx->ctx, d, x, "v", 1);
			break;
		case 1:
			(void)!tc_mknod(fx->eng, d, x, S_IFDIR | 0700, 0,
					&fx->ctx, &a);
			if (tc_lookup(fx->eng, d, x, &a) == 0)
				tc_forget(fx->eng, a.st.st_ino, 1);
			break;
		case 2:
		case 3:
			if (tc_lookup(fx->eng, d, x, &a))
				break;
			st.st_mode = (r >> 4) & 0777;
			st.st_mtim.tv_sec = (time_t)(r >> 12);
			(void)!tc_setattr(fx->eng, a.st.st_ino, &st,
					  (r & 1) ? TC_SET_MODE : TC_SET_MTIME,
					  NULL, &a);
			tc_forget(fx->eng, a.st.st_ino, 1);
			break;
		case 4:
			(void)!tc_rename(fx->eng, d, x, d, y, 0);
			break;
		case 5:
			if (tc_unlink(fx->eng, d, x) == -EISDIR)
				(void)!tc_rmdir(fx->eng, d, x);
			break;
		case 6:
			assert_int_equal(tc_sync(fx->eng), 0);
			break;
		default:
			if (op % 7)
				break;
			/* Close and reopen: nothing the engine showed is
			 * lost, and the store is sound. */
			snapshot(fx, d, NAMES, before);
			assert_int_equal(tc_getattr(fx->eng, d, &a), 0);
			before[NAMES].nlink = (uint32_t)a.st.st_nlink;
			before[NAMES].mtime = ts_ns(&a.st.st_mtim);
			tc_engine_close(fx->eng);
			fx->eng = NULL;
			assert_int_equal(tc_check(fx->store, false, NULL, &rep,
						  tcu_log, NULL),
					 0);
			tcu_open(fx);
			snapshot(fx, d, NAMES, after);
			assert_int_equal(tc_getattr(fx->eng, d, &a), 0);
			after[NAMES].nlink = (uint32_t)a.st.st_nlink;
			after[NAMES].mtime = ts_ns(&a.st.st_mtim);
			for (int k = 0; k < NAMES; k++) {
				assert_int_equal(after[k].present,
						 before[k].present);
				if (!before[k].present)
					continue;
				assert_int_equal(after[k].mode, before[k].mode);
				assert_int_equal(after[k].nlink,
						 before[k].nlink);
				assert_int_equal(after[k].mtime,
						 before[k].mtime);
				assert_int_equal(after[k].ctime,
						 before[k].ctime);
			}
			assert_int_equal(after[NAMES].nlink,
					 before[NAMES].nlink);
			assert_int_equal(after[NAMES].mtime,
					 before[NAMES].mtime);
			break;
		}
	}
	tcu_drop_faults(fx);
}

#define T(f) cmocka_unit_test_setup_teardown(f, tcu_setup, tcu_teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_blob_goes_after_a_durable_commit),
		T(test_program_fsync_lets_the_committer_reap),
		T(test_forgotten_file_goes_with_the_next_commit),
		T(test_queued_row_is_purged_once),
		T(test_directory_row_waits_for_the_commit),
		T(test_grouped_changes_survive_a_close),
		T(test_sync_never_reaps_without_fsync),
		T(test_close_reaps_what_is_left),
		T(test_reclaim_deletes_at_once),
		T(test_new_blob_file_is_held_before_it_is_named),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
