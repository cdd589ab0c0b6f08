/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the offline integrity check (engine/check.c, tc_check()):
 * a sound store passes; a store with a missing blob, a corrupt blob, an
 * orphan blob and a leftover temporary file is reported, repaired with
 * fix, and passes afterwards; a store in use is refused; blob files are
 * read through the blob ops table.
 */
#include "util.h"

/* Above the size up to which contents may live inline in the index
 * (64 KiB by default), so each content has a blob file to damage. */
#define BLOB_LEN (256 * 1024)

static void close_engine(struct tcu *fx)
{
	tc_engine_close(fx->eng);
	fx->eng = NULL;
}

static void test_check_sound(void **state)
{
	struct tcu *fx = *state;
	struct tc_check_report rep;
	uint64_t d;

	tcu_put_fill(fx, "a", BLOB_LEN, 1);
	tcu_put_fill(fx, "b", BLOB_LEN, 1); /* same content as a */
	tcu_put_fill(fx, "c", BLOB_LEN, 2);
	d = tcu_mkdir_at(fx, TC_ROOT_INO, "d");
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, d, "e", "small", 5), 0);
	close_engine(fx);

	memset(&rep, 0xff, sizeof(rep));
	assert_int_equal(tc_check(fx->store, false, NULL, &rep, tcu_log, NULL), 0);
	assert_int_equal(rep.entries, 4);
	assert_int_equal(rep.missing_blobs, 0);
	assert_int_equal(rep.corrupt_blobs, 0);
	assert_int_equal(rep.orphan_blobs, 0);
	assert_int_equal(rep.refcount_drift, 0);
	assert_int_equal(rep.counter_drift, 0);
	assert_int_equal(rep.temp_files, 0);
	assert_int_equal(rep.fixed, 0);
}

static void test_check_busy(void **state)
{
	struct tcu *fx = *state;
	struct tc_check_report rep;

	tcu_put(fx, "k", "v");
	assert_int_equal(tc_check(fx->store, false, NULL, &rep, tcu_log, NULL),
			 -EBUSY);
	tcu_assert_value(fx, "k", "v");
}

static void test_check_and_fix(void **state)
{
	struct tcu *fx = *state;
	struct tc_check_report rep;
	char path[PATH_MAX], h[33], orphan_hash[33];
	char *orphan = malloc(BLOB_LEN);
	int fd;

	assert_non_null(orphan);
	tcu_put_fill(fx, "missing", BLOB_LEN, 1);
	tcu_put_fill(fx, "corrupt", BLOB_LEN, 2);
	tcu_put_fill(fx, "fine", BLOB_LEN, 3);
	tcu_hash(fx, "missing", h);
	close_engine(fx);

	/* A missing blob. */
	assert_int_equal(unlink(tcu_store_path(fx, TCU_BLOB, h, path,
					       sizeof(path))),
			 0);
	/* A corrupt blob (same length, one byte changed). */
	tcu_open(fx);
	tcu_hash(fx, "corrupt", h);
	close_engine(fx);
	fd = open(tcu_store_path(fx, TCU_BLOB, h, path, sizeof(path)), O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "X", 1, 10), 1);
	close(fd);
	/* An orphan blob: valid content, no row. */
	tcu_fill(orphan, BLOB_LEN, 4);
	tcu_xxh_hex(orphan, BLOB_LEN, orphan_hash);
	tcu_store_path(fx, TCU_BLOB, orphan_hash, path, sizeof(path));
	{
		char dir[PATH_MAX];

		snprintf(dir, sizeof(dir), "%s", path);
		*strrchr(dir, '/') = '\0';
		mkdir(dir, 0700);
	}
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, orphan, BLOB_LEN), BLOB_LEN);
	close(fd);
	free(orphan);
	/* A leftover temporary file. */
	{
		char tmp[PATH_MAX];

		tcu_store_path(fx, TCU_TMP, NULL, tmp, sizeof(tmp));
		assert_true(snprintf(path, sizeof(path), "%s/leftover", tmp) <
			    (int)sizeof(path));
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		assert_true(fd >= 0);
		close(fd);
	}

	/* Check only: everything reported, nothing changed. */
	memset(&rep, 0, sizeof(rep));
	assert_int_equal(tc_check(fx->store, false, NULL, &rep, tcu_log, NULL), 1);
	assert_int_equal(rep.missing_blobs, 1);
	assert_int_equal(rep.corrupt_blobs, 1);
	assert_int_equal(rep.temp_files, 1);
	/* The corrupt blob is referenced (by a row that cannot be trusted):
	 * it is not an orphan, and no refcount is wrong. */
	assert_int_equal(rep.orphan_blobs, 1);
	assert_int_equal(rep.refcount_drift, 0);
	assert_int_equal(rep.fixed, 0);
	assert_true(tcu_exists(tcu_store_path(fx, TCU_BLOB, orphan_hash, path,
					      sizeof(path))));

	/* Fix: sound afterwards. */
	memset(&rep, 0, sizeof(rep));
	assert_int_equal(tc_check(fx->store, true, NULL, &rep, tcu_log, NULL), 0);
	assert_true(rep.fixed >= 4);
	assert_false(tcu_exists(tcu_store_path(fx, TCU_BLOB, orphan_hash, path,
					       sizeof(path))));
	memset(&rep, 0, sizeof(rep));
	assert_int_equal(tc_check(fx->store, false, NULL, &rep, tcu_log, NULL), 0);
	assert_int_equal(rep.entries, 1);

	/* The entries it could not trust are gone; the rest is intact. */
	tcu_open(fx);
	assert_false(tcu_present(fx, "missing"));
	assert_false(tcu_present(fx, "corrupt"));
	tcu_assert_fill(fx, "fine", BLOB_LEN, 3);
	tcu_assert_stat(fx->eng, "disk_items", 1);
	tcu_assert_stat(fx->eng, "disk_bytes", BLOB_LEN);
	tcu_assert_stat(fx->eng, "blob_bytes", BLOB_LEN);
}

/* Contents inside the index are checked too. */
static void test_check_inline(void **state)
{
	struct tcu *fx = *state;
	struct tc_check_report rep;
	char h[33];

	fx->cfg.inline_max = 64 * 1024;
	tcu_reopen(fx);
	tcu_put_fill(fx, "bad", 4096, 1);
	tcu_put_fill(fx, "good", 4096, 2);
	tcu_put_fill(fx, "file", BLOB_LEN, 3);
	tcu_hash(fx, "bad", h);
	close_engine(fx);

	memset(&rep, 0xff, sizeof(rep));
	assert_int_equal(tc_check(fx->store, false, NULL, &rep, tcu_log, NULL), 0);
	assert_int_equal(rep.entries, 3);
	assert_int_equal(rep.corrupt_blobs, 0);

	assert_int_equal(tcu_index_content(fx, h, true), 1);
	memset(&rep, 0, sizeof(rep));
	assert_int_equal(tc_check(fx->store, false, NULL, &rep, tcu_log, NULL), 1);
	assert_int_equal(rep.corrupt_blobs, 1);
	assert_int_equal(rep.missing_blobs, 0);
	assert_int_equal(rep.orphan_blobs, 0);
	assert_int_equal(rep.refcount_drift, 0);
	memset(&rep, 0, sizeof(rep));
	assert_int_equal(tc_check(fx->store, true, NULL, &rep, tcu_log, NULL), 0);
	assert_true(rep.fixed >= 1);
	assert_int_equal(tcu_index_content(fx, h, false), -ENOENT);

	tcu_open(fx);
	assert_false(tcu_present(fx, "bad"));
	tcu_assert_fill(fx, "good", 4096, 2);
	tcu_assert_fill(fx, "file", BLOB_LEN, 3);
	tcu_assert_stat(fx->eng, "blob_bytes", 4096 + BLOB_LEN);
}

/* Blob files are read through the ops table: a read that fails is a blob
 * that cannot be trusted. */
static void test_check_reads_through_ops(void **state)
{
	struct tcu *fx = *state;
	static struct tcu_faults flt;
	struct tc_check_report rep;

	tcu_put_fill(fx, "file", BLOB_LEN, 1);
	tcu_put(fx, "inline", "small");
	close_engine(fx);
	tcu_faults_init(&flt);
	flt.read_errno = EIO;
	assert_int_equal(tc_check(fx->store, false, &flt.ops, &rep, tcu_log,
				  NULL),
			 1);
	assert_true(flt.reads > 0);
	assert_int_equal(rep.entries, 2);
	assert_int_equal(rep.corrupt_blobs, 1);
	assert_int_equal(rep.missing_blobs, 0);
	assert_int_equal(rep.orphan_blobs, 0);

	/* The file itself is fine: working ops (counted) find nothing. */
	flt.read_errno = 0;
	flt.reads = 0;
	assert_int_equal(tc_check(fx->store, false, &flt.ops, &rep, tcu_log,
				  NULL),
			 0);
	assert_true(flt.reads > 0);
	assert_int_equal(rep.corrupt_blobs, 0);
	assert_int_equal(tc_check(fx->store, false, NULL, &rep, tcu_log, NULL),
			 0);
	tcu_open(fx);
	tcu_assert_fill(fx, "file", BLOB_LEN, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, tcu_setup, tcu_teardown)
		T(test_check_sound),
		T(test_check_busy),
		T(test_check_and_fix),
		T(test_check_inline),
		T(test_check_reads_through_ops),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
