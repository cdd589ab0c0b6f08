/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of opening and closing a store (engine/store.c): a new store
 * is created, everything persists across a reopen, the store lock refuses a
 * second opener, a crash after fsync keeps what was published, closing
 * publishes the handles still open (and reports a publish that failed),
 * damaged indexes are refused, and 100,000 entries work.
 *
 * Crashes are simulated with fork(): the child opens the store, does its
 * work and _exit()s without closing the engine; the parent reopens.
 */
#include "engine_i.h"
#include "util.h"

#include <sys/wait.h>

/* ------------------------------------------------------------------ */
/* Lifecycle                                                          */
/* ------------------------------------------------------------------ */

static void test_store_created(void **state)
{
	struct tcu *fx = tcu_new();
	struct stat st;
	char path[PATH_MAX];

	(void)state;
	assert_non_null(fx);
	/* A store directory that does not exist yet: created, mode 0700. */
	snprintf(fx->store, sizeof(fx->store), "%s/new", fx->dir);
	tcu_open(fx);
	assert_int_equal(stat(fx->store, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0700);
	assert_true(tcu_exists(tcu_store_path(fx, TCU_INDEX, NULL, path,
					      sizeof(path))));
	assert_true(tcu_exists(tcu_store_path(fx, TCU_TMP, NULL, path,
					      sizeof(path))));
	tcu_put(fx, "k", "v");
	tcu_assert_value(fx, "k", "v");
	*state = fx; /* teardown removes it */
}

static void test_reopen_persistence(void **state)
{
	struct tcu *fx = *state;
	uint64_t d, sub, f, ln, lnk, gone;
	struct tc_attr a;
	char buf[64], h[33], h2[33];

	d = tcu_mkdir_at(fx, TC_ROOT_INO, "dir");
	sub = tcu_mkdir_at(fx, d, "sub");
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, sub, "file", "payload",
				    7),
			 0);
	f = tcu_ino_at(fx->eng, sub, "file");
	assert_int_equal(tc_link(fx->eng, f, TC_ROOT_INO, "hard", &a), 0);
	tc_forget(fx->eng, f, 1);
	assert_int_equal(tc_symlink(fx->eng, d, "ln", "sub/file", &fx->ctx, &a),
			 0);
	ln = a.st.st_ino;
	tc_forget(fx->eng, ln, 1);
	assert_int_equal(tc_mknod(fx->eng, TC_ROOT_INO, "fifo", S_IFIFO | 0600, 0,
				  &fx->ctx, &a),
			 0);
	tc_forget(fx->eng, a.st.st_ino, 1);
	assert_int_equal(tc_setxattr(fx->eng, f, "user.note", "kept", 4, 0), 0);
	assert_int_equal(tc_setxattr(fx->eng, f, TC_XATTR_PREFIX "tags",
				     "t1,t2", 5, 0),
			 0);
	assert_int_equal(tc_setxattr(fx->eng, f, TC_XATTR_PREFIX "ttl", "2h",
				     2, 0),
			 0);
	{
		struct stat st = { .st_mode = 0640 };

		assert_int_equal(tc_setattr(fx->eng, f, &st, TC_SET_MODE, NULL,
					    &a),
				 0);
	}
	tcu_put_fill(fx, "big", 300000, 11);
	tcu_hash(fx, "big", h);
	tcu_put(fx, "gone", "deleted before close");
	gone = tcu_ino_at(fx->eng, TC_ROOT_INO, "gone");
	assert_int_equal(tc_unlink(fx->eng, TC_ROOT_INO, "gone"), 0);

	tcu_reopen(fx);

	assert_int_equal(tcu_ino_at(fx->eng, TC_ROOT_INO, "dir"), d);
	assert_int_equal(tcu_ino_at(fx->eng, d, "sub"), sub);
	assert_int_equal(tcu_ino_at(fx->eng, sub, "file"), f);
	assert_int_equal(tcu_ino_at(fx->eng, TC_ROOT_INO, "hard"), f);
	tcu_assert_value_at(fx, sub, "file", "payload", 7);
	tcu_assert_value(fx, "hard", "payload");
	assert_int_equal(tc_getattr(fx->eng, f, &a), 0);
	assert_int_equal(a.st.st_nlink, 2);
	assert_int_equal(a.st.st_mode & 07777, 0640);
	assert_int_equal(tc_readlink(fx->eng, ln, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "sub/file");
	assert_int_equal(tc_getxattr(fx->eng, f, "user.note", buf, sizeof(buf)),
			 4);
	assert_memory_equal(buf, "kept", 4);
	assert_int_equal(tc_getxattr(fx->eng, f, TC_XATTR_PREFIX "tags", buf,
				     sizeof(buf)),
			 5);
	assert_memory_equal(buf, "t1,t2", 5);
	assert_true(tcu_xattr_at(fx->eng, TC_ROOT_INO, "hard",
				 TC_XATTR_PREFIX "expires", buf,
				 sizeof(buf)) > 0);
	assert_int_equal(strtoll(buf, NULL, 10), TCU_EPOCH_NS / TCU_SEC + 7200);
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "fifo", &a), 0);
	assert_true(S_ISFIFO(a.st.st_mode));
	tc_forget(fx->eng, a.st.st_ino, 1);
	tcu_assert_fill(fx, "big", 300000, 11);
	tcu_hash(fx, "big", h2);
	assert_string_equal(h, h2);
	assert_false(tcu_present(fx, "gone"));

	/* Inode numbers are never reused, across a reopen too. */
	tcu_put(fx, "new", "n");
	lnk = tcu_ino_at(fx->eng, TC_ROOT_INO, "new");
	assert_int_not_equal(lnk, gone);
}

static void test_close_publishes_open_handles(void **state)
{
	struct tcu *fx = *state;
	struct tc_attr a;
	struct tc_file *w;

	assert_int_equal(tc_create(fx->eng, TC_ROOT_INO, "k", S_IFREG | 0644,
				   O_WRONLY | O_CREAT, &fx->ctx, &a, &w),
			 0);
	assert_int_equal(tcu_write_all(w, "unreleased", 10, 0), 0);
	/* Closing the engine publishes and frees w. */
	assert_int_equal(tc_engine_close(fx->eng), 0);
	fx->eng = NULL;
	tcu_open(fx);
	tcu_assert_value(fx, "k", "unreleased");
	tc_engine_close(NULL); /* a no-op */
}

/* A publish that fails at close: its error is what close returns, and it
 * is logged as an error (the daemon exits 1 with it). */
static void test_close_reports_failed_publish(void **state)
{
	struct tcu *fx = *state;
	/* static: the engine may outlive this frame if an assert fails */
	static struct tcu_faults flt;
	static struct tcu_logcap lc;
	const size_t len = 100 * 1024; /* over inline_max: a blob file */
	char *buf = malloc(len), tmp[PATH_MAX];
	struct tc_attr a;
	struct tc_file *w;
	int rc;

	assert_non_null(buf);
	memset(&lc, 0, sizeof(lc));
	fx->cfg.log_fn = tcu_logcap_fn;
	fx->cfg.log_ctx = &lc;
	tcu_use_faults(fx, &flt);
	tcu_put(fx, "k", "before");
	assert_int_equal(tc_create(fx->eng, TC_ROOT_INO, "new", S_IFREG | 0644,
				   O_WRONLY | O_CREAT, &fx->ctx, &a, &w),
			 0);
	tcu_fill(buf, len, 1);
	assert_int_equal(tcu_write_all(w, buf, len, 0), 0);
	assert_int_equal(lc.by_level[TC_LOG_ERR], 0);

	/* The disk fills up; the handle is never released. */
	flt.write_errno = ENOSPC;
	rc = tc_engine_close(fx->eng);
	fx->eng = NULL;
	assert_int_equal(rc, -ENOSPC);
	assert_true(lc.by_level[TC_LOG_ERR] >= 1);
	assert_non_null(strstr(lc.first_err, "publish"));
	free(buf);

	/* The store is sound: the new entry empty, the rest intact. */
	fx->cfg.log_fn = tcu_log;
	fx->cfg.log_ctx = fx;
	fx->cfg.blob_ops = NULL;
	tcu_open(fx);
	tcu_assert_value(fx, "k", "before");
	tcu_assert_value(fx, "new", "");
	assert_int_equal(tcu_dir_count(tcu_store_path(fx, TCU_TMP, NULL, tmp,
						      sizeof(tmp))),
			 0);
}

/* A clean close marks the index, so the next open trusts its counters;
 * after a crash, the open checks the index and counts again. */
static void test_clean_mark(void **state)
{
	struct tcu *fx = *state;
	pid_t pid;
	int status;

	tcu_put_fill(fx, "a", 1000, 1);
	tcu_put_fill(fx, "b", 300000, 2);
	tcu_put_fill(fx, "b2", 300000, 2); /* shares b's blob */
	tcu_reopen(fx);
	assert_true(fx->eng->ix.clean);
	tcu_assert_stat(fx->eng, "disk_items", 3);
	tcu_assert_stat(fx->eng, "disk_bytes", 601000);
	tcu_assert_stat(fx->eng, "blob_bytes", 301000);

	tc_engine_close(fx->eng);
	fx->eng = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct tc_engine *eng;
		char val[500];

		if (tc_engine_open(&fx->cfg, &eng))
			_exit(10);
		tcu_fill(val, sizeof(val), 3);
		if (tcu_put_at(eng, &fx->ctx, TC_ROOT_INO, "c", val,
			       sizeof(val)) ||
		    tc_unlink(eng, TC_ROOT_INO, "a"))
			_exit(11);
		_exit(0); /* crash */
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	tcu_open(fx);
	assert_false(fx->eng->ix.clean);
	tcu_assert_stat(fx->eng, "disk_items", 3);
	tcu_assert_stat(fx->eng, "disk_bytes", 600500);
	tcu_assert_stat(fx->eng, "blob_bytes", 300500);
	tcu_reopen(fx);
	assert_true(fx->eng->ix.clean);
	tcu_assert_stat(fx->eng, "disk_items", 3);
	tcu_assert_stat(fx->eng, "disk_bytes", 600500);
	tcu_assert_stat(fx->eng, "blob_bytes", 300500);
}

/* Child process: try to open the store; exit 0 on -EBUSY, 1 on success,
 * 2 on anything else. */
static int open_in_child(struct tcu *fx)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		struct tc_engine *eng = NULL;
		int rc = tc_engine_open(&fx->cfg, &eng);

		if (rc == -EBUSY)
			_exit(0);
		if (rc == 0)
			_exit(1); /* no close: leave the store alone */
		_exit(2);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void test_second_opener_refused(void **state)
{
	struct tcu *fx = *state;
	struct tc_engine *second = NULL;
	struct tc_file *w;
	struct tc_attr a;
	int rc;

	/* Live state the refused opener must not disturb: a published key,
	 * and a write in progress. */
	tcu_put(fx, "k", "value");
	assert_int_equal(tc_create(fx->eng, TC_ROOT_INO, "w", S_IFREG | 0644,
				   O_WRONLY | O_CREAT, &fx->ctx, &a, &w),
			 0);
	assert_int_equal(tcu_write_all(w, "in progress", 11, 0), 0);

	/* Another process is refused. */
	assert_int_equal(open_in_child(fx), 0);
	/* So is a second engine in this process. */
	rc = tc_engine_open(&fx->cfg, &second);
	if (rc == 0)
		tc_engine_close(second);
	assert_int_equal(rc, -EBUSY);
	assert_true(strlen(tc_engine_last_error()) > 0);

	/* The first engine is unaffected. */
	tcu_assert_value(fx, "k", "value");
	tcu_assert_value(fx, "w", "in progress");
	assert_int_equal(tc_release(w), 0);
	tc_forget(fx->eng, a.st.st_ino, 1);
	tcu_assert_value(fx, "w", "in progress");
	tcu_put(fx, "k2", "after");

	/* Once closed, the store can be opened again. */
	tc_engine_close(fx->eng);
	fx->eng = NULL;
	assert_int_equal(open_in_child(fx), 1);
	tcu_open(fx);
	tcu_assert_value(fx, "k2", "after");
}

static void test_open_errors(void **state)
{
	struct tcu *fx = *state;
	struct tc_config cfg;
	struct tc_engine *eng = NULL;
	char path[PATH_MAX];

	/* A store that is a file, not a directory. */
	tc_config_init(&cfg);
	snprintf(path, sizeof(path), "%s/file", fx->dir);
	{
		FILE *fp = fopen(path, "w");

		assert_non_null(fp);
		fclose(fp);
	}
	cfg.store = path;
	cfg.background = false;
	assert_true(tc_engine_open(&cfg, &eng) < 0);
	assert_null(eng);
	assert_true(strlen(tc_engine_last_error()) > 0);

	/* A corrupt index: -EPROTO. */
	tc_engine_close(fx->eng);
	fx->eng = NULL;
	{
		FILE *fp = fopen(tcu_store_path(fx, TCU_INDEX, NULL, path,
						sizeof(path)),
				 "w");

		assert_non_null(fp);
		fputs("this is not an SQLite database, not even close......"
		      "..............................................",
		      fp);
		fclose(fp);
	}
	tcu_store_path(fx, TCU_INDEX, NULL, path, sizeof(path));
	{
		char wal[PATH_MAX + 8];

		snprintf(wal, sizeof(wal), "%s-wal", path);
		unlink(wal);
		snprintf(wal, sizeof(wal), "%s-shm", path);
		unlink(wal);
	}
	assert_int_equal(tc_engine_open(&fx->cfg, &eng), -EPROTO);
	assert_true(strlen(tc_engine_last_error()) > 0);
}

/* ------------------------------------------------------------------ */
/* Crashes                                                            */
/* ------------------------------------------------------------------ */

/* A child crashes after fsync, with more unpublished writes: the store has
 * exactly what was published. */
static void test_crash_after_fsync(void **state)
{
	struct tcu *fx = *state;
	pid_t pid;
	int status;

	tc_engine_close(fx->eng);
	fx->eng = NULL;
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct tc_engine *eng;
		struct tc_attr a;
		struct tc_file *w;

		if (tc_engine_open(&fx->cfg, &eng))
			_exit(10);
		if (tcu_put_at(eng, &fx->ctx, TC_ROOT_INO, "k", "first", 5))
			_exit(11);
		if (tc_lookup(eng, TC_ROOT_INO, "k", &a) ||
		    tc_open(eng, a.st.st_ino, O_WRONLY | O_TRUNC, &w))
			_exit(12);
		if (tcu_write_all(w, "second", 6, 0) || tc_fsync(w, false))
			_exit(13);
		if (tcu_write_all(w, "THIRD!", 6, 0))
			_exit(14);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	tcu_open(fx);
	tcu_assert_value(fx, "k", "second");
}

/* ------------------------------------------------------------------ */
/* Scale                                                              */
/* ------------------------------------------------------------------ */

#define MANY 100000

static int count_cb(void *ctx, const char *name, const struct tc_attr *attr,
		    uint64_t off)
{
	uint64_t *n = ctx;

	(void)name;
	(void)attr;
	(void)off;
	(*n)++;
	return 0;
}

static void test_100k_entries(void **state)
{
	struct tcu *fx = *state;
	char name[32], val[32];
	struct tc_statfs sf;
	uint64_t d, n = 0;

	fx->cfg.sync = TC_SYNC_NEVER;
	tcu_reopen(fx);
	d = tcu_mkdir_at(fx, TC_ROOT_INO, "many");
	for (int i = 0; i < MANY; i++) {
		int len = snprintf(val, sizeof(val), "value-%d", i);
		int rc;

		snprintf(name, sizeof(name), "key%06d", i);
		rc = tcu_put_at(fx->eng, &fx->ctx, d, name, val, (size_t)len);
		if (rc)
			fail_msg("put %s: %s", name, strerror(-rc));
	}
	tc_statfs(fx->eng, &sf);
	assert_int_equal(sf.items, MANY);
	tcu_assert_stat(fx->eng, "disk_items", MANY);

	for (int i = 0; i < MANY; i++) {
		int len = snprintf(val, sizeof(val), "value-%d", i);

		snprintf(name, sizeof(name), "key%06d", i);
		tcu_assert_value_at(fx, d, name, val, (size_t)len);
	}
	assert_int_equal(tc_readdir(fx->eng, d, 0, false, count_cb, &n), 0);
	assert_int_equal(n, MANY + 2);

	/* And after a reopen. */
	tcu_reopen(fx);
	for (int i = 0; i < MANY; i += 97) {
		int len = snprintf(val, sizeof(val), "value-%d", i);

		snprintf(name, sizeof(name), "key%06d", i);
		tcu_assert_value_at(fx, d, name, val, (size_t)len);
	}
	tc_statfs(fx->eng, &sf);
	assert_int_equal(sf.items, MANY);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, tcu_setup, tcu_teardown)
		cmocka_unit_test_teardown(test_store_created, tcu_teardown),
		T(test_reopen_persistence),
		T(test_close_publishes_open_handles),
		T(test_close_reports_failed_publish),
		T(test_clean_mark),
		T(test_second_opener_refused),
		T(test_open_errors),
		T(test_crash_after_fsync),
		T(test_100k_entries),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
