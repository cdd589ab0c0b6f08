/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of unpublished content (engine/dirty.c), on a blob store of
 * its own (no engine): writes kept in memory, spilled to a temporary file
 * past 1 MiB, holes and extensions reading as zeros, truncation both ways,
 * the XXH3-128 kept up to date by sequential writes (and recomputed, from
 * the spilled file through the blob ops table, after any other write), and
 * tc_dirty_store turning a spilled file into the blob by a rename.
 */
#include "engine_i.h"
#include "util.h"

/* dirty.c's DIRTY_SPILL: content larger than this lives in a file. */
#define SPILL (1u << 20)

struct dfx {
	char dir[64];
	int store_fd;
	struct tc_blob_store bs;
	struct tcu_faults flt;
	struct tc_dirty *d;
};

static int d_setup(void **state)
{
	struct dfx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->store_fd = -1;
	strcpy(f->dir, "/tmp/tcdirty.XXXXXX");
	if (!mkdtemp(f->dir))
		goto fail;
	f->store_fd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (f->store_fd < 0 ||
	    tc_blob_store_open(&f->bs, f->store_fd, tcu_faults_init(&f->flt)))
		goto fail;
	f->d = tc_dirty_new();
	if (!f->d)
		goto fail;
	*state = f;
	return 0;
fail:
	if (f->store_fd >= 0)
		close(f->store_fd);
	tcu_rm_rf(f->dir);
	free(f);
	return -1;
}

static int d_teardown(void **state)
{
	struct dfx *f = *state;

	tc_dirty_free(&f->bs, f->d);
	tc_blob_store_close(&f->bs);
	close(f->store_fd);
	tcu_rm_rf(f->dir);
	free(f);
	return 0;
}

static int tmp_count(struct dfx *f)
{
	char path[128];

	snprintf(path, sizeof(path), "%s/tmp", f->dir);
	return tcu_dir_count(path);
}

/* Write all of @buf at @off; must succeed. */
static void dwrite(struct dfx *f, const void *buf, size_t len, uint64_t off)
{
	assert_int_equal(tc_dirty_write(&f->bs, f->d, buf, len, off), 0);
}

/* The dirty state must hold exactly the @len bytes of @want (read back in
 * pieces, as the kernel reads). */
static void assert_content(struct dfx *f, const void *want, size_t len)
{
	char *got = malloc(len + 1);
	size_t off = 0;

	assert_non_null(got);
	assert_int_equal(f->d->size, len);
	while (off < len) {
		ssize_t n = tc_dirty_read(f->d, got + off, 65536, off);

		assert_true(n > 0);
		off += (size_t)n;
	}
	assert_int_equal(tc_dirty_read(f->d, got, 16, len), 0);
	if (memcmp(got, want, len) != 0) {
		for (size_t i = 0; i < len; i++)
			if (got[i] != ((const char *)want)[i]) {
				free(got);
				fail_msg("content differs at byte %zu", i);
			}
	}
	free(got);
}

static void assert_hash_of(struct dfx *f, const void *data, size_t len)
{
	uint8_t h[TC_HASH_LEN];
	char got[TC_HASH_HEX + 1], want[33];

	assert_int_equal(tc_dirty_hash(&f->bs, f->d, h), 0);
	tc_hash_hex(h, got);
	tcu_xxh_hex(data, len, want);
	assert_string_equal(got, want);
}

/* ------------------------------------------------------------------ */
/* Memory and spilling                                                */
/* ------------------------------------------------------------------ */

static void test_in_memory_writes(void **state)
{
	struct dfx *f = *state;
	char buf[16];

	assert_int_equal(f->d->size, 0);
	assert_int_equal(tc_dirty_read(f->d, buf, sizeof(buf), 0), 0);
	dwrite(f, "hello", 5, 0);
	dwrite(f, " world", 6, 5);
	dwrite(f, "J", 1, 0); /* overwrite */
	assert_content(f, "Jello world", 11);
	assert_int_equal(tc_dirty_read(f->d, buf, 3, 6), 3);
	assert_memory_equal(buf, "wor", 3);
	assert_int_equal(tc_dirty_read(f->d, buf, sizeof(buf), 9), 2);
	assert_int_equal(tc_dirty_read(f->d, buf, sizeof(buf), 11), 0);
	assert_int_equal(tc_dirty_read(f->d, buf, sizeof(buf), 1000), 0);
	/* A write of nothing extends nothing. */
	dwrite(f, "", 0, 100);
	assert_int_equal(f->d->size, 11);
	/* Small content never touches the disk. */
	assert_int_equal(f->d->fd, -1);
	assert_int_equal(tmp_count(f), 0);
	assert_int_equal(f->flt.writes, 0);
}

static void test_spill_past_limit(void **state)
{
	struct dfx *f = *state;
	char *want = malloc(SPILL + 1);

	assert_non_null(want);
	tcu_fill(want, SPILL + 1, 1);
	/* Exactly the limit stays in memory... */
	dwrite(f, want, SPILL, 0);
	assert_int_equal(f->d->fd, -1);
	assert_int_equal(tmp_count(f), 0);
	/* ...one byte more moves it to a temporary file. */
	dwrite(f, want + SPILL, 1, SPILL);
	assert_true(f->d->fd >= 0);
	assert_null(f->d->buf);
	assert_int_equal(tmp_count(f), 1);
	assert_true(f->flt.writes > 0); /* through the ops table */
	assert_content(f, want, SPILL + 1);
	/* Freeing it removes the file. */
	tc_dirty_free(&f->bs, f->d);
	f->d = NULL;
	assert_int_equal(tmp_count(f), 0);
	free(want);
}

static void test_spill_failure_keeps_memory(void **state)
{
	struct dfx *f = *state;
	char *want = malloc(2 * SPILL);

	assert_non_null(want);
	tcu_fill(want, 2 * SPILL, 2);
	dwrite(f, want, SPILL, 0);
	f->flt.write_errno = ENOSPC;
	assert_int_equal(tc_dirty_write(&f->bs, f->d, want + SPILL, SPILL,
					SPILL),
			 -ENOSPC);
	/* Nothing half-spilled: the memory copy is whole, no file left. */
	assert_int_equal(f->d->fd, -1);
	assert_int_equal(tmp_count(f), 0);
	assert_content(f, want, SPILL);
	f->flt.write_errno = 0;
	dwrite(f, want + SPILL, SPILL, SPILL);
	assert_true(f->d->fd >= 0);
	assert_content(f, want, 2 * SPILL);
	free(want);
}

/* ------------------------------------------------------------------ */
/* Holes and truncation                                               */
/* ------------------------------------------------------------------ */

static void test_sparse_zero_filled(void **state)
{
	struct dfx *f = *state;
	char want[128] = { 0 };
	char *big;

	/* In memory: a write past the end leaves zeros. */
	dwrite(f, "ab", 2, 0);
	dwrite(f, "yz", 2, 100);
	memcpy(want, "ab", 2);
	memcpy(want + 100, "yz", 2);
	assert_content(f, want, 102);

	/* A hole over bytes a truncation cut off reads as zeros too. */
	memset(want, 0, sizeof(want));
	assert_int_equal(tc_dirty_truncate(&f->bs, f->d, 0), 0);
	dwrite(f, "0123456789", 10, 0);
	assert_int_equal(tc_dirty_truncate(&f->bs, f->d, 4), 0);
	dwrite(f, "X", 1, 8);
	memcpy(want, "0123", 4);
	want[8] = 'X';
	assert_content(f, want, 9);

	/* Spilled: the same. */
	big = calloc(1, 3 * SPILL);
	assert_non_null(big);
	tcu_fill(big, 100, 3);
	dwrite(f, big, 100, 0);
	dwrite(f, "end", 3, 3 * SPILL - 3);
	memcpy(big + 3 * SPILL - 3, "end", 3);
	assert_true(f->d->fd >= 0);
	assert_content(f, big, 3 * SPILL);
	free(big);
}

static void test_truncate_up_down(void **state)
{
	struct dfx *f = *state;
	char want[64] = { 0 };
	char *big;

	/* In memory: down, then up again over the cut bytes. */
	dwrite(f, "0123456789", 10, 0);
	assert_int_equal(tc_dirty_truncate(&f->bs, f->d, 4), 0);
	memcpy(want, "0123", 4);
	assert_content(f, want, 4);
	assert_int_equal(tc_dirty_truncate(&f->bs, f->d, 10), 0);
	assert_content(f, want, 10);
	assert_int_equal(tc_dirty_truncate(&f->bs, f->d, 10), 0); /* same */
	assert_int_equal(tc_dirty_truncate(&f->bs, f->d, 0), 0);
	assert_content(f, want, 0);
	assert_int_equal(f->d->fd, -1);

	/* Up past the spill limit: to a file, all zeros after the data. */
	dwrite(f, "abc", 3, 0);
	assert_int_equal(tc_dirty_truncate(&f->bs, f->d, 2 * SPILL), 0);
	assert_true(f->d->fd >= 0);
	big = calloc(1, 2 * SPILL);
	assert_non_null(big);
	memcpy(big, "abc", 3);
	assert_content(f, big, 2 * SPILL);

	/* Spilled: down, and up over the cut part. */
	dwrite(f, "XYZ", 3, SPILL);
	assert_int_equal(tc_dirty_truncate(&f->bs, f->d, SPILL + 1), 0);
	assert_int_equal(tc_dirty_truncate(&f->bs, f->d, 2 * SPILL), 0);
	big[SPILL] = 'X';
	assert_content(f, big, 2 * SPILL);
	free(big);
}

/* ------------------------------------------------------------------ */
/* The hash                                                           */
/* ------------------------------------------------------------------ */

static void test_hash_sequential(void **state)
{
	struct dfx *f = *state;
	const size_t len = 3 * SPILL + 123, piece = 65536;
	char *want = malloc(len);

	assert_non_null(want);
	tcu_fill(want, len, 4);
	/* Empty and small, in memory. */
	assert_hash_of(f, "", 0);
	dwrite(f, want, 1000, 0);
	assert_hash_of(f, want, 1000);
	/* Appends past the spill limit: the hash keeps up without reading
	 * the file again (reads through the ops fail from here on). */
	for (size_t off = 1000; off < len; off += piece)
		dwrite(f, want + off, off + piece > len ? len - off : piece,
		       off);
	assert_true(f->d->fd >= 0);
	assert_false(f->d->hash_broken);
	assert_int_equal(f->d->hashed, len);
	f->flt.read_errno = EIO;
	assert_hash_of(f, want, len);
	assert_int_equal(f->flt.reads, 0);
	free(want);
}

static void test_hash_after_nonsequential(void **state)
{
	struct dfx *f = *state;
	const size_t len = 2 * SPILL;
	char *want = malloc(len);
	uint8_t h[TC_HASH_LEN];

	assert_non_null(want);
	tcu_fill(want, len, 5);

	/* In memory: an overwrite, a hole, a truncation. */
	dwrite(f, want, 5000, 0);
	dwrite(f, "over", 4, 100);
	memcpy(want + 100, "over", 4);
	assert_true(f->d->hash_broken);
	assert_hash_of(f, want, 5000);
	dwrite(f, want + 5000, 1000, 5000); /* sequential again */
	assert_hash_of(f, want, 6000);
	assert_int_equal(tc_dirty_truncate(&f->bs, f->d, 3000), 0);
	assert_hash_of(f, want, 3000);
	memset(want + 3000, 0, 7000);
	assert_int_equal(tc_dirty_truncate(&f->bs, f->d, 10000), 0);
	assert_hash_of(f, want, 10000);

	/* Spilled, then written out of order: rehashed from the file,
	 * through the ops table. */
	tcu_fill(want, len, 6);
	assert_int_equal(tc_dirty_truncate(&f->bs, f->d, 0), 0);
	dwrite(f, want + SPILL, SPILL, SPILL); /* the second half first */
	dwrite(f, want, SPILL, 0);
	assert_true(f->d->fd >= 0);
	assert_true(f->d->hash_broken);
	f->flt.read_errno = EIO;
	assert_int_equal(tc_dirty_hash(&f->bs, f->d, h), -EIO);
	f->flt.read_errno = 0;
	f->flt.reads = 0;
	assert_hash_of(f, want, len);
	assert_true(f->flt.reads > 0);
	/* Once rehashed, appends keep it up to date again. */
	assert_false(f->d->hash_broken);
	free(want);
}

/* ------------------------------------------------------------------ */
/* Storing                                                            */
/* ------------------------------------------------------------------ */

static void blob_path(struct dfx *f, const uint8_t *h, char *buf, size_t size)
{
	char name[TC_BLOB_NAME_LEN];

	tc_blob_name(h, name);
	snprintf(buf, size, "%s/blobs/%s", f->dir, name);
}

static void test_store_renames_spilled_file(void **state)
{
	struct dfx *f = *state;
	const size_t len = SPILL + 4096;
	char *want = malloc(len), path[PATH_MAX], tmp[PATH_MAX];
	uint8_t h[TC_HASH_LEN];
	struct stat before, after;
	char *got;
	int fd;

	assert_non_null(want);
	tcu_fill(want, len, 7);
	dwrite(f, want, len, 0);
	assert_true(f->d->fd >= 0);
	snprintf(tmp, sizeof(tmp), "%s/tmp/%s", f->dir, f->d->tmpname);
	assert_int_equal(stat(tmp, &before), 0);
	assert_int_equal(tc_dirty_hash(&f->bs, f->d, h), 0);

	f->flt.writes = f->flt.fsyncs = 0;
	assert_int_equal(tc_dirty_store(&f->bs, f->d, h, true), 0);
	/* The same file, renamed: nothing copied, only made durable (the
	 * file and its blob directory). */
	blob_path(f, h, path, sizeof(path));
	assert_int_equal(stat(path, &after), 0);
	assert_int_equal(after.st_ino, before.st_ino);
	assert_int_equal(after.st_size, len);
	assert_int_equal(f->flt.writes, 0);
	assert_int_equal(f->flt.fsyncs, 2);
	assert_int_equal(tmp_count(f), 0);
	assert_string_equal(f->d->tmpname, "");

	/* The blob outlives the dirty state. */
	tc_dirty_free(&f->bs, f->d);
	f->d = NULL;
	got = malloc(len);
	assert_non_null(got);
	fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, got, len), (ssize_t)len);
	close(fd);
	assert_memory_equal(got, want, len);
	assert_int_equal(tc_blob_read_verified(&f->bs, h, got, len), 0);
	free(got);
	free(want);
}

static void test_store_from_memory(void **state)
{
	struct dfx *f = *state;
	char path[PATH_MAX], got[16];
	uint8_t h[TC_HASH_LEN];

	dwrite(f, "small value", 11, 0);
	assert_int_equal(tc_dirty_hash(&f->bs, f->d, h), 0);
	assert_int_equal(tc_dirty_store(&f->bs, f->d, h, false), 0);
	blob_path(f, h, path, sizeof(path));
	assert_true(tcu_exists(path));
	assert_int_equal(tmp_count(f), 0);
	assert_int_equal(f->flt.fsyncs, 0); /* not durable: no fsync */
	assert_int_equal(tc_blob_read_verified(&f->bs, h, got, 11), 0);
	assert_memory_equal(got, "small value", 11);
	/* The dirty state still reads the same after storing. */
	assert_content(f, "small value", 11);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, d_setup, d_teardown)
		T(test_in_memory_writes),
		T(test_spill_past_limit),
		T(test_spill_failure_keeps_memory),
		T(test_sparse_zero_filled),
		T(test_truncate_up_down),
		T(test_hash_sequential),
		T(test_hash_after_nonsequential),
		T(test_store_renames_spilled_file),
		T(test_store_from_memory),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
