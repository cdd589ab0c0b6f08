/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of publishing in chunks (engine/publish.c, with content.c
 * reading), on a store of 4 KiB chunks: contents around chunk boundaries
 * read back whole with the right hash; a small change to a large file
 * stores one chunk, not the file; identical chunks are stored once across
 * files and across versions, and those no version uses any more are
 * deleted; a file moves between one blob and chunks as it grows and
 * shrinks; a corrupt chunk gives EIO and counts; --check verifies chunks.
 */
#include "util.h"

#define CH 4096
#define TC_NS_PER_S_UNIT INT64_C(1000000000)

/* A fresh store of 4 KiB chunks (the size is the store's, fixed at its
 * creation) with everything in blob files. */
static int c_setup(void **state)
{
	struct tcu *fx = tcu_new();

	if (!fx)
		return -1;
	fx->cfg.chunk_size = CH;
	fx->cfg.inline_max = 0;
	fx->cfg.max_ram_item = 8 * CH; /* larger ones come from disk */
	if (tc_engine_open(&fx->cfg, &fx->eng) != 0) {
		fprintf(stderr, "setup: %s\n", tc_engine_last_error());
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

static int blob_files(struct tcu *fx)
{
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/blobs", fx->store);
	return tcu_count_files(path);
}

/* Write @len bytes of @seed at @off of @name (no truncation), close. */
static void pwrite_at(struct tcu *fx, const char *name, size_t len,
		      unsigned seed, off_t off)
{
	uint64_t ino = tcu_ino_at(fx->eng, TC_ROOT_INO, name);
	char *buf = malloc(len);
	struct tc_file *f;

	assert_non_null(buf);
	tcu_fill(buf, len, seed);
	assert_int_equal(tc_open(fx->eng, ino, O_WRONLY, &f), 0);
	assert_int_equal(tc_write(f, buf, len, off), (ssize_t)len);
	assert_int_equal(tc_release(f), 0);
	free(buf);
}

static void test_boundaries(void **state)
{
	struct tcu *fx = *state;
	static const size_t sizes[] = { 1,      CH - 1, CH,	 CH + 1,
					2 * CH, 2 * CH + 1, 10 * CH + 7 };
	char name[16], want[33], got[33];

	for (size_t i = 0; i < sizeof(sizes) / sizeof(*sizes); i++) {
		snprintf(name, sizeof(name), "k%zu", i);
		tcu_put_fill(fx, name, sizes[i], (unsigned)i + 1);
		tcu_fill_hex(sizes[i], (unsigned)i + 1, want);
		tcu_hash(fx, name, got);
		assert_string_equal(got, want);
	}
	tcu_flush_ram(fx);
	tcu_reopen(fx);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(*sizes); i++) {
		snprintf(name, sizeof(name), "k%zu", i);
		tcu_assert_fill(fx, name, sizes[i], (unsigned)i + 1);
	}
	/* Logical and physical bytes agree: every byte stored once. */
	assert_int_equal(tcu_stat(fx->eng, "disk_bytes"),
			 tcu_stat(fx->eng, "blob_bytes"));
}

static void test_small_change_one_chunk(void **state)
{
	struct tcu *fx = *state;
	size_t len = 64 * CH;
	char *want = malloc(len);
	double blob0;
	int files0;

	assert_non_null(want);
	tcu_put_fill(fx, "big", len, 3);
	files0 = blob_files(fx);
	blob0 = tcu_stat(fx->eng, "blob_bytes");
	assert_int_equal(files0, 64);
	/* One byte in chunk 5: one new chunk, the old one goes. */
	pwrite_at(fx, "big", 1, 99, 5 * CH + 17);
	assert_int_equal(blob_files(fx), files0);
	assert_int_equal(tcu_stat(fx->eng, "blob_bytes"), blob0);
	tcu_fill(want, len, 3);
	{
		char b;
		tcu_fill(&b, 1, 99);
		want[5 * CH + 17] = b;
	}
	tcu_flush_ram(fx);
	tcu_assert_value_at(fx, TC_ROOT_INO, "big", want, len);
	/* The whole hash of a content rewritten in place: computed. */
	{
		char got[33], exp[33];
		tcu_hash(fx, "big", got);
		tcu_xxh_hex(want, len, exp);
		assert_string_equal(got, exp);
	}
	free(want);
}

static void test_sharing_files_and_versions(void **state)
{
	struct tcu *fx = *state;
	size_t len = 16 * CH;
	char *a = malloc(len);

	assert_non_null(a);
	tcu_put_fill(fx, "a", len, 5);
	tcu_put_fill(fx, "b", len, 5); /* the same content */
	assert_int_equal(blob_files(fx), 16);
	assert_int_equal(tcu_stat(fx->eng, "blob_bytes"), len);
	assert_int_equal(tcu_stat(fx->eng, "disk_bytes"), 2 * len);
	/* b's last chunk changes: b shares the other 15 with a. */
	pwrite_at(fx, "b", CH, 6, (off_t)(15 * CH));
	assert_int_equal(blob_files(fx), 17);
	assert_int_equal(tcu_stat(fx->eng, "blob_bytes"), len + CH);
	/* a goes: only what b uses stays. */
	assert_int_equal(tcu_del_at(fx->eng, TC_ROOT_INO, "a"), 0);
	assert_int_equal(blob_files(fx), 16);
	assert_int_equal(tcu_stat(fx->eng, "blob_bytes"), len);
	tcu_fill(a, len, 5);
	tcu_fill(a + 15 * CH, CH, 6);
	tcu_flush_ram(fx);
	tcu_assert_value_at(fx, TC_ROOT_INO, "b", a, len);
	free(a);
}

static void test_grow_and_shrink(void **state)
{
	struct tcu *fx = *state;
	char buf[3 * CH];
	uint64_t ino;
	struct tc_file *f;
	struct tc_attr a;
	struct stat st = { 0 };

	tcu_put_fill(fx, "f", CH / 2, 7);          /* one blob */
	pwrite_at(fx, "f", 2 * CH, 8, CH / 2);      /* now in chunks */
	tcu_fill(buf, CH / 2, 7);
	tcu_fill(buf + CH / 2, 2 * CH, 8);
	tcu_flush_ram(fx);
	tcu_assert_value_at(fx, TC_ROOT_INO, "f", buf, CH / 2 + 2 * CH);
	/* Cut back to one chunk and a bit, then to less than one. */
	ino = tcu_ino_at(fx->eng, TC_ROOT_INO, "f");
	st.st_size = CH + 10;
	assert_int_equal(tc_setattr(fx->eng, ino, &st, TC_SET_SIZE, NULL, &a),
			 0);
	tcu_flush_ram(fx);
	tcu_assert_value_at(fx, TC_ROOT_INO, "f", buf, CH + 10);
	st.st_size = 100;
	assert_int_equal(tc_setattr(fx->eng, ino, &st, TC_SET_SIZE, NULL, &a),
			 0);
	tcu_flush_ram(fx);
	tcu_assert_value_at(fx, TC_ROOT_INO, "f", buf, 100);
	assert_int_equal(blob_files(fx), 1);
	/* Grow by truncate: zeros, stored sparse and once. */
	st.st_size = 3 * CH;
	assert_int_equal(tc_setattr(fx->eng, ino, &st, TC_SET_SIZE, NULL, &a),
			 0);
	memset(buf + 100, 0, sizeof(buf) - 100);
	tcu_flush_ram(fx);
	assert_int_equal(tc_open(fx->eng, ino, O_RDONLY, &f), 0);
	{
		char *got = NULL;
		size_t n = 0;
		assert_int_equal(tcu_read_all(f, &got, &n), 0);
		assert_int_equal(n, 3 * CH);
		assert_memory_equal(got, buf, n);
		free(got);
	}
	assert_int_equal(tc_release(f), 0);
	/* The first chunk, and one chunk of zeros for the two others. */
	assert_int_equal(blob_files(fx), 2);
}

static void test_corrupt_chunk(void **state)
{
	struct tcu *fx = *state;
	char hex[33], path[PATH_MAX], *got = NULL;
	size_t n;
	int fd;

	tcu_put_fill(fx, "big", 16 * CH, 11);
	/* Damage chunk 9 on disk, keeping its size. */
	{
		char *all = malloc(16 * CH);
		assert_non_null(all);
		tcu_fill(all, 16 * CH, 11);
		tcu_xxh_hex(all + 9 * CH, CH, hex);
		free(all);
	}
	snprintf(path, sizeof(path), "%s/blobs/%.2s/%s", fx->store, hex,
		 hex + 2);
	fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "XYZ", 3, 100), 3);
	close(fd);
	tcu_flush_ram(fx);
	tcu_reopen(fx); /* nothing verified yet */
	assert_int_equal(tcu_get_at(fx->eng, TC_ROOT_INO, "big", &got, &n),
			 -EIO);
	free(got);
	assert_int_equal(tcu_stat(fx->eng, "corruptions"), 1);
	assert_false(tcu_present(fx, "big"));
	/* --check finds the damaged one in a store it did not drop yet. */
	tcu_put_fill(fx, "big2", 16 * CH, 12);
	{
		char *all = malloc(16 * CH);
		struct tc_check_report rep;
		assert_non_null(all);
		tcu_fill(all, 16 * CH, 12);
		tcu_xxh_hex(all + 3 * CH, CH, hex);
		free(all);
		snprintf(path, sizeof(path), "%s/blobs/%.2s/%s", fx->store,
			 hex, hex + 2);
		fd = open(path, O_WRONLY);
		assert_true(fd >= 0);
		assert_int_equal(pwrite(fd, "XYZ", 3, 5), 3);
		close(fd);
		tc_engine_close(fx->eng);
		fx->eng = NULL;
		assert_int_equal(tc_check(fx->store, false, NULL, &rep, NULL,
					  NULL),
				 1);
		assert_int_equal(rep.corrupt_blobs, 1);
		assert_int_equal(tc_check(fx->store, true, NULL, &rep, NULL,
					  NULL),
				 0);
		assert_int_equal(tc_check(fx->store, false, NULL, &rep, NULL,
					  NULL),
				 0);
		tcu_open(fx);
		assert_false(tcu_present(fx, "big2"));
	}
}

/* fsyncs the engine makes per sync= mode, all through the blob ops table:
 * a publish at close syncs nothing under fsync, everything it wrote under
 * close; fsync syncs the content and the index; never syncs nothing. */
static int fsyncs_of(struct tcu *fx, enum tc_sync mode, bool call_fsync)
{
	struct tcu_faults flt;
	struct tc_file *f;
	struct tc_attr a;
	char buf[3 * CH];

	fx->cfg.sync = mode;
	tcu_use_faults(fx, &flt);
	tcu_fill(buf, sizeof(buf), 9);
	assert_int_equal(tc_create(fx->eng, TC_ROOT_INO, "s", 0644,
				   O_WRONLY | O_CREAT, &fx->ctx, &a, &f),
			 0);
	assert_int_equal(tc_write(f, buf, sizeof(buf), 0), sizeof(buf));
	flt.fsyncs = 0;
	if (call_fsync)
		assert_int_equal(tc_fsync(f, false), 0);
	assert_int_equal(tc_flush(f), 0);
	assert_int_equal(tc_release(f), 0);
	tc_forget(fx->eng, a.st.st_ino, 1);
	assert_int_equal(tcu_del_at(fx->eng, TC_ROOT_INO, "s"), 0);
	tcu_drop_faults(fx);
	tcu_open(fx);
	return flt.fsyncs;
}

static void test_fsyncs_per_sync_mode(void **state)
{
	struct tcu *fx = *state;
	int never = fsyncs_of(fx, TC_SYNC_NEVER, true);
	int at_close = fsyncs_of(fx, TC_SYNC_FSYNC, false);
	int with_fsync = fsyncs_of(fx, TC_SYNC_FSYNC, true);
	int sync_close = fsyncs_of(fx, TC_SYNC_CLOSE, false);

	assert_int_equal(never, 0);
	assert_int_equal(at_close, 0);
	/* three chunk files, their directories, and the WAL */
	assert_true(with_fsync >= 4);
	assert_true(sync_close >= 4);
}

/* A durable publish of many chunks syncs each chunk file once and each blob
 * directory they went to once, however many chunks went there (the syncs
 * are batched, not two per chunk); the rest is the WAL. */
static void test_durable_publish_syncs_each_directory_once(void **state)
{
	enum { N = 40 };
	struct tcu *fx = *state;
	bool dir_used[256] = { false };
	struct tcu_faults flt;
	char *buf = malloc(N * CH), hex[33];
	struct tc_file *f;
	struct tc_attr a;
	int dirs = 0, before, syncs;

	assert_non_null(buf);
	tcu_fill(buf, N * CH, 23);
	for (int i = 0; i < N; i++) {
		unsigned b;

		tcu_xxh_hex(buf + (size_t)i * CH, CH, hex);
		assert_int_equal(sscanf(hex, "%2x", &b), 1);
		dirs += !dir_used[b];
		dir_used[b] = true;
	}
	assert_true(dirs < N); /* some chunks share a directory */
	fx->cfg.sync = TC_SYNC_FSYNC;
	tcu_use_faults(fx, &flt);
	assert_int_equal(tc_create(fx->eng, TC_ROOT_INO, "many", 0644,
				   O_WRONLY | O_CREAT, &fx->ctx, &a, &f),
			 0);
	assert_int_equal(tc_write(f, buf, N * CH, 0), N * CH);
	before = flt.fsyncs;
	assert_int_equal(tc_fsync(f, false), 0);
	syncs = flt.fsyncs - before;
	assert_int_equal(tc_release(f), 0);
	tc_forget(fx->eng, a.st.st_ino, 1);
	tcu_drop_faults(fx);
	tcu_open(fx);
	tcu_assert_fill(fx, "many", N * CH, 23);
	/* N files, one sync per directory, and one or two of the WAL */
	assert_in_range(syncs - N - dirs, 1, 2);
	free(buf);
}

/* A preallocated file is holes: all of its whole chunks are one file of
 * zeros, made, renamed and synced once by the fsync (not once a chunk), and
 * a publish at close then fsync syncs that file once. */
static void test_preallocated_holes_stored_once(void **state)
{
	struct tcu *fx = *state;
	struct tcu_faults flt;
	struct tc_file *f;
	struct tc_attr a;
	char *zeros = calloc(1, 64 * CH);

	assert_non_null(zeros);
	tcu_use_faults(fx, &flt);
	assert_int_equal(tc_create(fx->eng, TC_ROOT_INO, "p", 0644,
				   O_RDWR | O_CREAT, &fx->ctx, &a, &f),
			 0);
	assert_int_equal(tc_fallocate(f, 0, 0, 64 * CH), 0);
	flt.fsyncs = 0;
	assert_int_equal(tc_fsync(f, false), 0);
	/* the file of zeros, its directory, the WAL */
	assert_in_range(flt.fsyncs, 1, 4);
	assert_int_equal(blob_files(fx), 1);
	/* Again at close, then fsync of the published version. */
	assert_int_equal(tc_write(f, "x", 1, 70 * CH), 1);
	assert_int_equal(tc_flush(f), 0);
	flt.fsyncs = 0;
	assert_int_equal(tc_fsync(f, false), 0);
	assert_in_range(flt.fsyncs, 1, 6);
	assert_int_equal(tc_release(f), 0);
	tc_forget(fx->eng, a.st.st_ino, 1);
	assert_int_equal(blob_files(fx), 2); /* zeros, and the last chunk */
	tcu_flush_ram(fx);
	zeros = realloc(zeros, 70 * CH + 1);
	assert_non_null(zeros);
	memset(zeros, 0, 70 * CH + 1);
	zeros[70 * CH] = 'x';
	tcu_assert_value_at(fx, TC_ROOT_INO, "p", zeros, 70 * CH + 1);
	free(zeros);
	tcu_drop_faults(fx);
	tcu_open(fx);
}

/* A chunk that cannot be written fails the publish with ENOSPC and
 * changes nothing; a chunk that cannot be read gives EIO. */
static void test_chunk_write_and_read_errors(void **state)
{
	struct tcu *fx = *state;
	struct tcu_faults flt;
	struct tc_file *f;
	char *got = NULL;
	size_t n;
	uint64_t ino;

	tcu_put_fill(fx, "k", 6 * CH, 1);
	tcu_use_faults(fx, &flt);
	ino = tcu_ino_at(fx->eng, TC_ROOT_INO, "k");
	assert_int_equal(tc_open(fx->eng, ino, O_WRONLY, &f), 0);
	{
		char x[CH];
		tcu_fill(x, CH, 2);
		assert_int_equal(tc_write(f, x, CH, 2 * CH), CH);
	}
	flt.write_errno = ENOSPC;
	assert_int_equal(tc_fsync(f, false), -ENOSPC);
	flt.write_errno = 0;
	assert_int_equal(tc_release(f), 0); /* published now */
	tcu_flush_ram(fx);
	flt.read_errno = EIO;
	tc_engine_close(fx->eng);
	fx->eng = NULL;
	tcu_open(fx); /* nothing verified */
	assert_int_equal(tcu_get_at(fx->eng, TC_ROOT_INO, "k", &got, &n), -EIO);
	free(got);
	flt.read_errno = 0;
	tcu_drop_faults(fx);
	tcu_open(fx);
}

/* An entry read exactly at its deadline is gone, by lookup and by the
 * sweep alike. */
static void test_expired_exactly_at_deadline(void **state)
{
	struct tcu *fx = *state;
	struct tc_attr a;

	tcu_put(fx, "a", "1");
	tcu_put(fx, "b", "2");
	assert_int_equal(tc_setxattr(fx->eng, tcu_ino_at(fx->eng, TC_ROOT_INO,
							  "a"),
				     "user.tiercache.ttl", "10s", 3, 0),
			 0);
	assert_int_equal(tc_setxattr(fx->eng, tcu_ino_at(fx->eng, TC_ROOT_INO,
							  "b"),
				     "user.tiercache.ttl", "10s", 3, 0),
			 0);
	tcu_advance(fx, 10 * TC_NS_PER_S_UNIT - 1);
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "a", &a), 0);
	tc_forget(fx->eng, a.st.st_ino, 1);
	tcu_advance(fx, 1); /* exactly the deadline */
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "a", &a), -ENOENT);
	tcu_maintain(fx); /* the sweep, with b at its deadline too */
	assert_int_equal(tcu_stat(fx->eng, "expirations"), 2);
	assert_false(tcu_present(fx, "b"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, c_setup, tcu_teardown)
		T(test_boundaries),
		T(test_small_change_one_chunk),
		T(test_sharing_files_and_versions),
		T(test_grow_and_shrink),
		T(test_corrupt_chunk),
		T(test_fsyncs_per_sync_mode),
		T(test_durable_publish_syncs_each_directory_once),
		T(test_preallocated_holes_stored_once),
		T(test_chunk_write_and_read_errors),
		T(test_expired_exactly_at_deadline),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
