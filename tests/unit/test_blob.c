/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the content-addressed blob store (engine/blob.c): contents
 * are named by their XXH3-128, identical contents are stored once and a blob
 * lives exactly as long as something references it (an entry, a lookup
 * reference or an open handle). A store left behind by a crash (temporary
 * files, a blob no row references, an inode unlinked while open) opens
 * cleanly. Blob I/O goes through the injectable ops table: ENOSPC keeps
 * the previous content, EIO and a corrupt blob are reported, never served.
 */
#include "util.h"

#include <sys/wait.h>

/* Contents of blob-file tests: well above the size up to which contents
 * may live inline in the index (64 KiB by default), so they have a file. */
#define BLOB_LEN (256 * 1024)

/* A BLOB_LEN buffer that lives as long as the test binary (the tests'
 * buffers are too large for a thread's stack under ASan to be comfortable). */
static char *big_buf(int which)
{
	static char bufs[2][BLOB_LEN];

	return bufs[which];
}

static int blob_count(struct tcu *fx)
{
	char path[PATH_MAX];

	return tcu_count_files(tcu_store_path(fx, TCU_BLOBS, NULL, path,
					      sizeof(path)));
}

static void test_hash_is_xxh3_128(void **state)
{
	struct tcu *fx = *state;
	char got[33], want[33];

	tcu_put(fx, "hello", "hello");
	tcu_hash(fx, "hello", got);
	tcu_xxh_hex("hello", 5, want);
	assert_string_equal(got, want);

	tcu_put_fill(fx, "big", 100000, 5);
	tcu_hash(fx, "big", got);
	tcu_fill_hex(100000, 5, want);
	assert_string_equal(got, want);

	tcu_put(fx, "empty", "");
	tcu_hash(fx, "empty", got);
	tcu_xxh_hex("", 0, want);
	assert_string_equal(got, want);

	/* The blob is named by the hash. */
	tcu_hash(fx, "big", got);
	assert_true(tcu_blob_exists(fx, got));
}

static void test_dedup(void **state)
{
	struct tcu *fx = *state;
	char ha[33], hb[33];

	tcu_put_fill(fx, "a", BLOB_LEN, 1);
	tcu_put_fill(fx, "b", BLOB_LEN, 1);
	tcu_hash(fx, "a", ha);
	tcu_hash(fx, "b", hb);
	assert_string_equal(ha, hb);

	/* Two keys, one blob file; logical bytes count twice, physical once. */
	assert_true(tcu_blob_exists(fx, ha));
	assert_int_equal(blob_count(fx), 1);
	tcu_assert_stat(fx->eng, "disk_items", 2);
	tcu_assert_stat(fx->eng, "disk_bytes", 2 * BLOB_LEN);
	tcu_assert_stat(fx->eng, "blob_bytes", BLOB_LEN);

	/* Deleting one keeps the other readable, from the disk tier. */
	assert_int_equal(tcu_del_at(fx->eng, TC_ROOT_INO, "a"), 0);
	assert_true(tcu_blob_exists(fx, ha));
	tcu_flush_ram(fx);
	tcu_assert_fill(fx, "b", BLOB_LEN, 1);
	tcu_assert_stat(fx->eng, "disk_items", 1);
	tcu_assert_stat(fx->eng, "disk_bytes", BLOB_LEN);
	tcu_assert_stat(fx->eng, "blob_bytes", BLOB_LEN);

	/* The blob goes with the last reference. */
	assert_int_equal(tcu_del_at(fx->eng, TC_ROOT_INO, "b"), 0);
	assert_false(tcu_blob_exists(fx, ha));
	assert_int_equal(blob_count(fx), 0);
	tcu_assert_stat(fx->eng, "disk_items", 0);
	tcu_assert_stat(fx->eng, "disk_bytes", 0);
	tcu_assert_stat(fx->eng, "blob_bytes", 0);
}

static void test_dedup_across_overwrite(void **state)
{
	struct tcu *fx = *state;
	char hx[33], hy[33];

	tcu_put_fill(fx, "a", BLOB_LEN, 1);
	tcu_put_fill(fx, "b", BLOB_LEN, 1);
	tcu_hash(fx, "a", hx);

	/* Overwriting a moves it to a new blob; b keeps the old one. */
	tcu_put_fill(fx, "a", BLOB_LEN, 2);
	tcu_hash(fx, "a", hy);
	assert_string_not_equal(hx, hy);
	assert_true(tcu_blob_exists(fx, hx));
	assert_true(tcu_blob_exists(fx, hy));
	tcu_flush_ram(fx);
	tcu_assert_fill(fx, "b", BLOB_LEN, 1);
	tcu_assert_fill(fx, "a", BLOB_LEN, 2);
	tcu_assert_stat(fx->eng, "blob_bytes", 2 * BLOB_LEN);

	/* Overwriting b with a's content: the old blob goes, one remains. */
	tcu_put_fill(fx, "b", BLOB_LEN, 2);
	assert_false(tcu_blob_exists(fx, hx));
	assert_true(tcu_blob_exists(fx, hy));
	assert_int_equal(blob_count(fx), 1);
	tcu_assert_stat(fx->eng, "blob_bytes", BLOB_LEN);

	/* A hard link is one entry: no second reference to count. */
	{
		struct tc_attr a;
		uint64_t ino = tcu_ino_at(fx->eng, TC_ROOT_INO, "a");

		assert_int_equal(tc_link(fx->eng, ino, TC_ROOT_INO, "a2", &a),
				 0);
		tc_forget(fx->eng, ino, 1);
	}
	assert_int_equal(tcu_del_at(fx->eng, TC_ROOT_INO, "a"), 0);
	assert_int_equal(tcu_del_at(fx->eng, TC_ROOT_INO, "b"), 0);
	assert_true(tcu_blob_exists(fx, hy));
	tcu_assert_fill(fx, "a2", BLOB_LEN, 2);
	assert_int_equal(tcu_del_at(fx->eng, TC_ROOT_INO, "a2"), 0);
	assert_false(tcu_blob_exists(fx, hy));
	tcu_assert_stat(fx->eng, "blob_bytes", 0);
}

static void test_blob_pinned_by_references(void **state)
{
	struct tcu *fx = *state;
	struct tc_attr a;
	struct tc_file *f;
	char h[33];
	char *got = NULL;
	size_t n;

	/* Served from disk only, so the handle reads the blob itself. */
	fx->cfg.max_ram_item = 1024;
	tcu_reopen(fx);

	tcu_put_fill(fx, "k", BLOB_LEN, 9);
	tcu_hash(fx, "k", h);

	/* An open handle keeps the blob past the unlink. */
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "k", &a), 0);
	assert_int_equal(tc_open(fx->eng, a.st.st_ino, O_RDONLY, &f), 0);
	tc_forget(fx->eng, a.st.st_ino, 1);
	assert_int_equal(tc_unlink(fx->eng, TC_ROOT_INO, "k"), 0);
	assert_true(tcu_blob_exists(fx, h));
	assert_int_equal(tcu_read_all(f, &got, &n), 0);
	assert_int_equal(n, BLOB_LEN);
	{
		char *want = big_buf(0);

		tcu_fill(want, BLOB_LEN, 9);
		assert_memory_equal(got, want, BLOB_LEN);
	}
	free(got);
	assert_int_equal(tc_release(f), 0);
	assert_false(tcu_blob_exists(fx, h));

	/* So does a lookup reference. */
	tcu_put_fill(fx, "k", BLOB_LEN, 9);
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "k", &a), 0);
	assert_int_equal(tc_unlink(fx->eng, TC_ROOT_INO, "k"), 0);
	assert_true(tcu_blob_exists(fx, h));
	tc_forget(fx->eng, a.st.st_ino, 1);
	assert_false(tcu_blob_exists(fx, h));
}

/* Write @p len bytes of @p data to @p path (creating directories). */
static void write_file(const char *path, const void *data, size_t len)
{
	char dir[PATH_MAX];
	int fd;

	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = '\0';
	mkdir(dir, 0700);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
}

static void test_crash_leftovers(void **state)
{
	struct tcu *fx = *state;
	char path[PATH_MAX], tmpdir[PATH_MAX], h_orphan[33];
	char *orphan = malloc(BLOB_LEN);

	assert_non_null(orphan);
	tcu_put_fill(fx, "keep", BLOB_LEN, 1);
	tc_engine_close(fx->eng);
	fx->eng = NULL;

	/* What a crash leaves: temporary files, and a blob committed just
	 * before its index row (the content of seed 2, no row). */
	tcu_store_path(fx, TCU_TMP, NULL, tmpdir, sizeof(tmpdir));
	assert_true(snprintf(path, sizeof(path), "%s/partial.1234", tmpdir) <
		    (int)sizeof(path));
	write_file(path, "half a blo", 10);
	assert_true(snprintf(path, sizeof(path), "%s/.hidden", tmpdir) <
		    (int)sizeof(path));
	write_file(path, "x", 1);
	tcu_fill(orphan, BLOB_LEN, 2);
	tcu_xxh_hex(orphan, BLOB_LEN, h_orphan);
	write_file(tcu_store_path(fx, TCU_BLOB, h_orphan, path, sizeof(path)),
		   orphan, BLOB_LEN);
	free(orphan);

	tcu_open(fx);
	assert_int_equal(tcu_dir_count(tmpdir), 0);
	tcu_flush_ram(fx);
	tcu_assert_fill(fx, "keep", BLOB_LEN, 1);
	assert_false(tcu_present(fx, "partial.1234"));

	/* The same content put now is stored and reclaimed normally. */
	tcu_put_fill(fx, "again", BLOB_LEN, 2);
	tcu_flush_ram(fx);
	tcu_assert_fill(fx, "again", BLOB_LEN, 2);
	{
		char h[33];

		tcu_hash(fx, "again", h);
		assert_string_equal(h, h_orphan);
	}
	assert_int_equal(tcu_del_at(fx->eng, TC_ROOT_INO, "again"), 0);
	assert_false(tcu_blob_exists(fx, h_orphan));
	tcu_assert_fill(fx, "keep", BLOB_LEN, 1);
}

/* Crash with an inode unlinked while still open, and a write not yet
 * published: the child process exits without closing the engine. Contents
 * of @len bytes (in blob files, or inline in the index when small). */
static void crash_unlinked_open_inode(struct tcu *fx, size_t len)
{
	char h_gone[33], h_old[33];
	bool inline_data = len <= fx->cfg.inline_max;
	pid_t pid;
	int status;

	tcu_fill_hex(len, 3, h_gone);
	tcu_fill_hex(len, 4, h_old);
	tc_engine_close(fx->eng);
	fx->eng = NULL;

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct tc_engine *eng;
		struct tc_attr a;
		struct tc_file *f, *w;
		char *buf = big_buf(0);

		if (tc_engine_open(&fx->cfg, &eng))
			_exit(10);
		tcu_fill(buf, len, 3);
		if (tcu_put_at(eng, &fx->ctx, TC_ROOT_INO, "gone", buf, len))
			_exit(11);
		tcu_fill(buf, len, 4);
		if (tcu_put_at(eng, &fx->ctx, TC_ROOT_INO, "old", buf, len))
			_exit(12);
		if (tc_lookup(eng, TC_ROOT_INO, "gone", &a) ||
		    tc_open(eng, a.st.st_ino, O_RDONLY, &f))
			_exit(13);
		if (tc_unlink(eng, TC_ROOT_INO, "gone"))
			_exit(14);
		/* Unpublished new content for "old". */
		if (tc_lookup(eng, TC_ROOT_INO, "old", &a) ||
		    tc_open(eng, a.st.st_ino, O_WRONLY | O_TRUNC, &w))
			_exit(15);
		tcu_fill(buf, len, 5);
		if (tcu_write_all(w, buf, len, 0))
			_exit(16);
		_exit(0); /* crash: no release, no close */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	tcu_open(fx);
	tcu_maintain(fx);
	assert_false(tcu_present(fx, "gone"));
	assert_false(tcu_blob_exists(fx, h_gone));
	assert_int_equal(tcu_index_content(fx, h_gone, false), -ENOENT);
	/* The store has the old content, whole. */
	tcu_assert_fill(fx, "old", len, 4);
	{
		char h[33];

		tcu_hash(fx, "old", h);
		assert_string_equal(h, h_old);
		assert_int_equal(tcu_index_content(fx, h, false),
				 inline_data ? 1 : 0);
	}
	assert_int_equal(blob_count(fx), inline_data ? 0 : 1);
	tcu_assert_stat(fx->eng, "blob_bytes", len);
	tcu_assert_stat(fx->eng, "disk_items", 1);
	{
		char tmpdir[PATH_MAX];

		tcu_store_path(fx, TCU_TMP, NULL, tmpdir, sizeof(tmpdir));
		assert_int_equal(tcu_dir_count(tmpdir), 0);
	}
}

static void test_crash_unlinked_open_inode(void **state)
{
	crash_unlinked_open_inode(*state, BLOB_LEN);
}

static void test_corrupt_blob(void **state)
{
	struct tcu *fx = *state;
	char h[33], path[PATH_MAX];
	int fd;

	tcu_put_fill(fx, "bad", BLOB_LEN, 1);
	tcu_put_fill(fx, "good", BLOB_LEN, 2);
	tcu_hash(fx, "bad", h);
	tcu_flush_ram(fx);

	/* Flip one byte in the middle of the blob. */
	fd = open(tcu_store_path(fx, TCU_BLOB, h, path, sizeof(path)), O_RDWR);
	assert_true(fd >= 0);
	{
		unsigned char c;

		assert_int_equal(pread(fd, &c, 1, BLOB_LEN / 2), 1);
		c ^= 0x5a;
		assert_int_equal(pwrite(fd, &c, 1, BLOB_LEN / 2), 1);
	}
	close(fd);

	assert_int_equal(tcu_get(fx, "bad"), -EIO);
	assert_false(tcu_present(fx, "bad"));
	tcu_assert_stat(fx->eng, "corruptions", 1);
	tcu_assert_fill(fx, "good", BLOB_LEN, 2);

	/* A missing blob is reported the same way. */
	tcu_hash(fx, "good", h);
	tcu_flush_ram(fx);
	assert_int_equal(unlink(tcu_store_path(fx, TCU_BLOB, h, path,
					       sizeof(path))),
			 0);
	assert_int_equal(tcu_get(fx, "good"), -EIO);
	assert_false(tcu_present(fx, "good"));
}

/* ------------------------------------------------------------------ */
/* Contents inside the index (tc_config.inline_max)                   */
/* ------------------------------------------------------------------ */

#define INLINE_MAX (64 * 1024)
#define SMALL 4096

static void use_inline(struct tcu *fx, uint64_t max)
{
	fx->cfg.inline_max = max;
	tcu_reopen(fx);
}

static void test_inline_dedup(void **state)
{
	struct tcu *fx = *state;
	char ha[33], hb[33];

	use_inline(fx, INLINE_MAX);
	tcu_put_fill(fx, "a", SMALL, 1);
	tcu_put_fill(fx, "b", SMALL, 1);
	tcu_hash(fx, "a", ha);
	tcu_hash(fx, "b", hb);
	assert_string_equal(ha, hb);
	{
		char want[33];

		tcu_fill_hex(SMALL, 1, want);
		assert_string_equal(ha, want);
	}

	/* In the index, once; no file. */
	assert_false(tcu_blob_exists(fx, ha));
	assert_int_equal(blob_count(fx), 0);
	assert_int_equal(tcu_index_content(fx, ha, false), 1);
	tcu_assert_stat(fx->eng, "disk_items", 2);
	tcu_assert_stat(fx->eng, "disk_bytes", 2 * SMALL);
	tcu_assert_stat(fx->eng, "blob_bytes", SMALL);

	/* Deleting one keeps the other readable from the index. */
	assert_int_equal(tcu_del_at(fx->eng, TC_ROOT_INO, "a"), 0);
	tcu_flush_ram(fx);
	tc_engine_reset_stats(fx->eng);
	tcu_assert_fill(fx, "b", SMALL, 1);
	tcu_assert_stat(fx->eng, "disk_hits", 1);
	tcu_assert_stat(fx->eng, "blob_bytes", SMALL);

	/* The content goes with the last reference. */
	assert_int_equal(tcu_del_at(fx->eng, TC_ROOT_INO, "b"), 0);
	tcu_assert_stat(fx->eng, "blob_bytes", 0);
	assert_int_equal(tcu_index_content(fx, ha, false), -ENOENT);
}

static void test_inline_boundary(void **state)
{
	struct tcu *fx = *state;
	char h_at[33], h_over[33];

	use_inline(fx, SMALL);
	tcu_put_fill(fx, "at", SMALL, 1);       /* exactly inline_max */
	tcu_put_fill(fx, "over", SMALL + 1, 2); /* one byte more */
	tcu_hash(fx, "at", h_at);
	tcu_hash(fx, "over", h_over);
	assert_false(tcu_blob_exists(fx, h_at));
	assert_true(tcu_blob_exists(fx, h_over));
	assert_int_equal(tcu_index_content(fx, h_at, false), 1);
	assert_int_equal(tcu_index_content(fx, h_over, false), 0);
	tcu_assert_fill(fx, "at", SMALL, 1);
	tcu_assert_fill(fx, "over", SMALL + 1, 2);

	/* inline_max 0: every content in a file. */
	use_inline(fx, 0);
	tcu_put_fill(fx, "tiny", 10, 3);
	{
		char h[33];

		tcu_hash(fx, "tiny", h);
		assert_true(tcu_blob_exists(fx, h));
		assert_int_equal(tcu_index_content(fx, h, false), 0);
	}
	/* What was inline stays readable. */
	tcu_assert_fill(fx, "at", SMALL, 1);
}

static void test_inline_file_transitions(void **state)
{
	struct tcu *fx = *state;
	char h1[33], h2[33], h3[33];

	use_inline(fx, INLINE_MAX);
	tcu_put_fill(fx, "k", SMALL, 1);
	tcu_hash(fx, "k", h1);
	/* small -> large: the inline content goes, a file comes. */
	tcu_put_fill(fx, "k", BLOB_LEN, 2);
	tcu_hash(fx, "k", h2);
	assert_true(tcu_blob_exists(fx, h2));
	assert_int_equal(tcu_index_content(fx, h1, false), -ENOENT);
	tcu_assert_fill(fx, "k", BLOB_LEN, 2);
	/* large -> small: the file goes. */
	tcu_put_fill(fx, "k", SMALL, 3);
	tcu_hash(fx, "k", h3);
	assert_false(tcu_blob_exists(fx, h2));
	assert_int_equal(tcu_index_content(fx, h2, false), -ENOENT);
	assert_int_equal(tcu_index_content(fx, h3, false), 1);
	assert_int_equal(blob_count(fx), 0);
	tcu_assert_stat(fx->eng, "blob_bytes", SMALL);
	tcu_assert_fill(fx, "k", SMALL, 3);
	/* And it persists. */
	tcu_reopen(fx);
	tcu_assert_fill(fx, "k", SMALL, 3);
	tcu_hash(fx, "k", h1);
	assert_string_equal(h1, h3);
}

static void test_inline_corrupt(void **state)
{
	struct tcu *fx = *state;
	char h[33];

	use_inline(fx, INLINE_MAX);
	tcu_put_fill(fx, "bad", SMALL, 1);
	tcu_put_fill(fx, "good", SMALL, 2);
	tcu_hash(fx, "bad", h);
	/* Reopens the engine: RAM is empty afterwards. */
	assert_int_equal(tcu_index_content(fx, h, true), 1);
	assert_int_equal(tcu_get(fx, "bad"), -EIO);
	assert_false(tcu_present(fx, "bad"));
	tcu_assert_stat(fx->eng, "corruptions", 1);
	tcu_assert_fill(fx, "good", SMALL, 2);
}

static void test_inline_crash_unlinked_open_inode(void **state)
{
	struct tcu *fx = *state;

	use_inline(fx, INLINE_MAX);
	crash_unlinked_open_inode(fx, SMALL);
}

/* ------------------------------------------------------------------ */
/* Fault injection                                                    */
/* ------------------------------------------------------------------ */

static void test_enospc_keeps_previous(void **state)
{
	struct tcu *fx = *state;
	/* static: the engine may outlive this frame if an assert fails */
	static struct tcu_faults flt;
	struct tc_attr a;
	struct tc_file *f;
	char *buf = big_buf(1);
	int rw, rf;

	tcu_use_faults(fx, &flt);
	tcu_put_fill(fx, "k", BLOB_LEN, 1);
	assert_true(flt.writes > 0); /* blob writes go through the ops */

	flt.write_errno = ENOSPC;
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "k", &a), 0);
	assert_int_equal(tc_open(fx->eng, a.st.st_ino, O_WRONLY | O_TRUNC, &f),
			 0);
	tcu_fill(buf, BLOB_LEN, 2);
	rw = tcu_write_all(f, buf, BLOB_LEN, 0);
	rf = rw ? rw : tc_flush(f);
	if (rw != -ENOSPC && rf != -ENOSPC)
		fail_msg("write %d, flush %d: expected -ENOSPC from either",
			 rw, rf);
	tc_release(f); /* may fail again, or publish nothing new */
	tc_forget(fx->eng, a.st.st_ino, 1);

	/* Even a close that retries the publish leaves the old content. */
	tc_engine_close(fx->eng);
	fx->eng = NULL;
	flt.write_errno = 0;
	tcu_open(fx);
	tcu_flush_ram(fx);
	tcu_assert_fill(fx, "k", BLOB_LEN, 1);

	/* A new key that cannot be stored does not appear half-written. */
	flt.write_errno = ENOSPC;
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, TC_ROOT_INO, "new", buf,
				    BLOB_LEN),
			 -ENOSPC);
	flt.write_errno = 0;
	{
		char *got = NULL;
		size_t n = 0;
		int rc = tcu_get_at(fx->eng, TC_ROOT_INO, "new", &got, &n);

		/* Absent, or present and empty: never a partial value. */
		assert_true(rc == -ENOENT || (rc == 0 && n == 0) ||
			    (rc == 0 && n == BLOB_LEN &&
			     memcmp(got, buf, BLOB_LEN) == 0));
		free(got);
	}
	tcu_drop_faults(fx);
}

static void test_read_eio(void **state)
{
	struct tcu *fx = *state;
	/* static: the engine may outlive this frame if an assert fails */
	static struct tcu_faults flt;

	tcu_use_faults(fx, &flt);
	tcu_put_fill(fx, "k", BLOB_LEN, 1);
	tcu_flush_ram(fx);
	flt.read_errno = EIO;
	assert_int_equal(tcu_get(fx, "k"), -EIO);
	assert_true(flt.reads > 0);
	flt.read_errno = 0;
	tcu_drop_faults(fx);
}

static void test_fsync_eio(void **state)
{
	struct tcu *fx = *state;
	/* static: the engine may outlive this frame if an assert fails */
	static struct tcu_faults flt;
	struct tc_attr a;
	struct tc_file *f;
	char *buf = big_buf(1);

	fx->cfg.sync = TC_SYNC_FSYNC;
	tcu_use_faults(fx, &flt);
	assert_int_equal(tc_create(fx->eng, TC_ROOT_INO, "k", S_IFREG | 0644,
				   O_WRONLY | O_CREAT, &fx->ctx, &a, &f),
			 0);
	tcu_fill(buf, BLOB_LEN, 1);
	assert_int_equal(tcu_write_all(f, buf, BLOB_LEN, 0), 0);
	flt.fsync_errno = EIO;
	assert_int_equal(tc_fsync(f, false), -EIO);
	flt.fsync_errno = 0;
	tc_release(f);
	tc_forget(fx->eng, a.st.st_ino, 1);

	/* sync=never: fsync is never called, even on request. */
	fx->cfg.sync = TC_SYNC_NEVER;
	tcu_use_faults(fx, &flt);
	flt.fsync_errno = EIO;
	assert_int_equal(tc_create(fx->eng, TC_ROOT_INO, "n", S_IFREG | 0644,
				   O_WRONLY | O_CREAT, &fx->ctx, &a, &f),
			 0);
	assert_int_equal(tcu_write_all(f, buf, BLOB_LEN, 0), 0);
	assert_int_equal(tc_fsync(f, false), 0);
	assert_int_equal(tc_release(f), 0);
	tc_forget(fx->eng, a.st.st_ino, 1);
	assert_int_equal(flt.fsyncs, 0);
	flt.fsync_errno = 0;
	tcu_assert_fill(fx, "n", BLOB_LEN, 1);
	tcu_drop_faults(fx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, tcu_setup, tcu_teardown)
		T(test_hash_is_xxh3_128),
		T(test_dedup),
		T(test_dedup_across_overwrite),
		T(test_blob_pinned_by_references),
		T(test_crash_leftovers),
		T(test_crash_unlinked_open_inode),
		T(test_corrupt_blob),
		T(test_inline_dedup),
		T(test_inline_boundary),
		T(test_inline_file_transitions),
		T(test_inline_corrupt),
		T(test_inline_crash_unlinked_open_inode),
		T(test_enospc_keeps_previous),
		T(test_read_eio),
		T(test_fsync_eio),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
