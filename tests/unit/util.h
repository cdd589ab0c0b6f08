/* SPDX-License-Identifier: MIT */
/*
 * Shared helpers of the engine's unit tests.
 *
 * Every test runs against a real engine opened in a fresh mkdtemp()
 * directory (cmocka setup/teardown: tcu_setup(), tcu_teardown()), with the
 * background thread off, so the test drives maintenance itself with
 * tc_engine_maintain(), and with an injected clock the test advances
 * (tcu_advance()), so TTL and LRU tests need no sleeps.
 *
 * The helpers speak the public API (tiercache.h) only and follow its
 * reference rules: every lookup/create/mknod they make is balanced by a
 * tc_forget() before they return. What the tests know of the store's layout
 * on disk is kept in one function, tcu_store_path(), so a layout change
 * (e.g. small blobs moving inline into the index) is one edit here. The
 * exception is the last section, compiled only into tests that include
 * "engine_i.h" before this file: helpers that reach internal state.
 *
 * Also shared: a blob ops table that fails on demand (tcu_faults, STYLE
 * point 13), a log callback that records what the engine said
 * (tcu_logcap), and the XXH3-128 of a buffer as the engine names it.
 *
 * Everything is static inline: each test file is its own executable.
 */
#ifndef TC_TEST_UTIL_H
#define TC_TEST_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>
#include <xxhash.h>

#include "tiercache.h"

#define TCU_SEC INT64_C(1000000000)
#define TCU_MIN (60 * TCU_SEC)
#define TCU_HOUR (60 * TCU_MIN)

/* Start of the injected clock: a fixed, realistic wall-clock time
 * (2023-11-14), so expiry arithmetic is tested on real magnitudes. */
#define TCU_EPOCH_NS (INT64_C(1700000000) * TCU_SEC)

/** One test's world: a temporary directory holding the store, the config
 *  it was opened with, the engine and the injected clock. */
struct tcu {
	char dir[64];     /**< mkdtemp directory, removed at teardown */
	char store[96];   /**< dir/store, created by the engine */
	struct tc_config cfg;
	struct tc_engine *eng;
	struct tc_ctx ctx; /**< caller identity for new entries */
	int64_t now;       /**< injected clock, ns; accessed atomically */
};

/* ------------------------------------------------------------------ */
/* Fixture                                                            */
/* ------------------------------------------------------------------ */

static inline int64_t tcu_clock(void *ctx)
{
	struct tcu *fx = ctx;

	return __atomic_load_n(&fx->now, __ATOMIC_RELAXED);
}

/* Engine messages at warning level or worse go to stderr, so a failing
 * test's log shows the engine's reason. */
static inline void tcu_log(void *ctx, int level, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
static inline void tcu_log(void *ctx, int level, const char *fmt, va_list ap)
{
	(void)ctx;
	fprintf(stderr, "engine[%d]: ", level);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
}

/** Advance the injected clock by @p ns. */
static inline void tcu_advance(struct tcu *fx, int64_t ns)
{
	__atomic_add_fetch(&fx->now, ns, __ATOMIC_RELAXED);
}

/** Open fx->eng with fx->cfg; fails the test on error. */
static inline void tcu_open(struct tcu *fx)
{
	int rc = tc_engine_open(&fx->cfg, &fx->eng);

	if (rc != 0)
		fail_msg("tc_engine_open(%s): %s (%s)", fx->store,
			 strerror(-rc), tc_engine_last_error());
}

/** Close and reopen the engine with (a possibly changed) fx->cfg. */
static inline void tcu_reopen(struct tcu *fx)
{
	tc_engine_close(fx->eng);
	fx->eng = NULL;
	tcu_open(fx);
}

/** Run one round of maintenance; it must succeed. */
static inline void tcu_maintain(struct tcu *fx)
{
	assert_int_equal(tc_engine_maintain(fx->eng), 0);
}

/** Prepare fx without opening an engine (for tests that need a special
 *  config from the start, and for the fixture itself). */
static inline struct tcu *tcu_new(void)
{
	struct tcu *fx = calloc(1, sizeof(*fx));

	if (!fx)
		return NULL;
	strcpy(fx->dir, "/tmp/tcunit.XXXXXX");
	if (!mkdtemp(fx->dir)) {
		free(fx);
		return NULL;
	}
	snprintf(fx->store, sizeof(fx->store), "%s/store", fx->dir);
	tc_config_init(&fx->cfg);
	fx->cfg.store = fx->store;
	fx->cfg.background = false;
	fx->cfg.clock = tcu_clock;
	fx->cfg.clock_ctx = fx;
	fx->cfg.log_fn = tcu_log;
	fx->cfg.log_ctx = fx;
	fx->cfg.log_level = TC_LOG_WARNING;
	fx->now = TCU_EPOCH_NS;
	fx->ctx.uid = getuid();
	fx->ctx.gid = getgid();
	fx->ctx.umask = 022;
	return fx;
}

/** cmocka setup: a fresh store with the default config, opened. */
static inline int tcu_setup(void **state)
{
	struct tcu *fx = tcu_new();

	if (!fx)
		return -1;
	if (tc_engine_open(&fx->cfg, &fx->eng) != 0) {
		fprintf(stderr, "setup: %s\n", tc_engine_last_error());
		rmdir(fx->dir);
		free(fx);
		return -1;
	}
	*state = fx;
	return 0;
}

static inline int tcu_rm_one(const char *path, const struct stat *st,
			     int type, struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	remove(path);
	return 0;
}

/** Remove a directory tree (the test's temporary directory). */
static inline void tcu_rm_rf(const char *dir)
{
	nftw(dir, tcu_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/** cmocka teardown: close the engine, remove the directory. */
static inline int tcu_teardown(void **state)
{
	struct tcu *fx = *state;

	if (!fx)
		return 0;
	tc_engine_close(fx->eng);
	tcu_rm_rf(fx->dir);
	free(fx);
	return 0;
}

/* ------------------------------------------------------------------ */
/* Store layout: the one place that knows it                          */
/* ------------------------------------------------------------------ */

enum tcu_path {
	TCU_INDEX, /**< the SQLite index */
	TCU_BLOBS, /**< the blob directory */
	TCU_BLOB,  /**< the blob file of @p hash (32 lowercase hex) */
	TCU_TMP,   /**< the temporary-file directory */
	TCU_LOCK,  /**< the lock file */
};

/**
 * Path of a piece of the store in @p buf: STORE/index.db, STORE/blobs,
 * STORE/blobs/XX/YYYY... (XX: the hash's first two hex digits, the file
 * name: the other 30), STORE/tmp, STORE/lock. Contents up to
 * tc_config.inline_max live in the index instead of a blob file: see
 * tcu_index_content().
 */
static inline const char *tcu_store_path(const struct tcu *fx,
					 enum tcu_path what, const char *hash,
					 char *buf, size_t size)
{
	switch (what) {
	case TCU_INDEX:
		snprintf(buf, size, "%s/index.db", fx->store);
		break;
	case TCU_BLOBS:
		snprintf(buf, size, "%s/blobs", fx->store);
		break;
	case TCU_BLOB:
		assert_int_equal(strlen(hash), 32);
		snprintf(buf, size, "%s/blobs/%.2s/%s", fx->store, hash,
			 hash + 2);
		break;
	case TCU_TMP:
		snprintf(buf, size, "%s/tmp", fx->store);
		break;
	case TCU_LOCK:
		snprintf(buf, size, "%s/lock", fx->store);
		break;
	}
	return buf;
}

/**
 * The index's copy of content @p hash: its blob row (blob.hash, 16 bytes;
 * blob.data, the content when it is stored inline, else NULL). With
 * @p corrupt, flip one byte of the inline content. The engine holds the
 * index exclusively, so an open engine is closed first and reopened after
 * (its RAM tier is then empty).
 * @return 1 when the content is inline, 0 when the row has no inline
 *         content (it is in a blob file), -ENOENT when there is no row.
 */
static inline int tcu_index_content(struct tcu *fx, const char *hash,
				    bool corrupt)
{
	char path[PATH_MAX];
	unsigned char key[16];
	bool was_open = fx->eng != NULL;
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc = -ENOENT;

	assert_int_equal(strlen(hash), 32);
	for (int i = 0; i < 16; i++) {
		unsigned int b;

		assert_int_equal(sscanf(hash + 2 * i, "%2x", &b), 1);
		key[i] = (unsigned char)b;
	}
	if (was_open) {
		tc_engine_close(fx->eng);
		fx->eng = NULL;
	}
	snprintf(path, sizeof(path), "%s/index.db", fx->store);
	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE,
					 NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT data FROM blob WHERE hash = ?1",
					    -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_blob(st, 1, key, sizeof(key), SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		const unsigned char *data = sqlite3_column_blob(st, 0);
		int len = sqlite3_column_bytes(st, 0);

		rc = sqlite3_column_type(st, 0) == SQLITE_NULL ? 0 : 1;
		if (rc == 1 && corrupt && len > 0) {
			unsigned char *copy = malloc((size_t)len);
			sqlite3_stmt *up = NULL;

			assert_non_null(copy);
			memcpy(copy, data, (size_t)len);
			copy[len / 2] ^= 0x5a;
			assert_int_equal(sqlite3_prepare_v2(db,
					"UPDATE blob SET data = ?2 WHERE hash = ?1",
					-1, &up, NULL),
					 SQLITE_OK);
			sqlite3_bind_blob(up, 1, key, sizeof(key),
					  SQLITE_STATIC);
			sqlite3_bind_blob(up, 2, copy, len, SQLITE_STATIC);
			assert_int_equal(sqlite3_step(up), SQLITE_DONE);
			sqlite3_finalize(up);
			free(copy);
		}
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	if (was_open)
		tcu_open(fx);
	return rc;
}

static inline bool tcu_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/** Number of entries (other than . and ..) in directory @p path, or -1. */
static inline int tcu_dir_count(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/** Number of regular files below directory @p path (recursively). */
static inline int tcu_count_files(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int n = 0;

	if (!d)
		return 0;
	while ((de = readdir(d)) != NULL) {
		char sub[PATH_MAX];
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (snprintf(sub, sizeof(sub), "%s/%s", path, de->d_name) >=
		    (int)sizeof(sub))
			continue;
		if (lstat(sub, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode))
			n += tcu_count_files(sub);
		else if (S_ISREG(st.st_mode))
			n++;
	}
	closedir(d);
	return n;
}

/* ------------------------------------------------------------------ */
/* Namespace and content                                              */
/* ------------------------------------------------------------------ */

/** Deterministic content: @p len bytes from @p seed. */
static inline void tcu_fill(void *buf, size_t len, unsigned int seed)
{
	unsigned char *p = buf;
	uint32_t x = seed * 2654435761u + 1;

	for (size_t i = 0; i < len; i++) {
		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		p[i] = (unsigned char)x;
	}
}

/** Write all of @p data at @p off through @p f. @return 0 or -errno. */
static inline int tcu_write_all(struct tc_file *f, const void *data,
				size_t len, off_t off)
{
	const char *p = data;

	while (len > 0) {
		ssize_t n = tc_write(f, p, len, off);

		if (n < 0)
			return (int)n;
		if (n == 0)
			return -EIO;
		p += n;
		off += n;
		len -= (size_t)n;
	}
	return 0;
}

/** Read the whole content through @p f into a malloc'd buffer (caller
 *  frees; NUL-terminated for convenience). @return 0 or -errno. */
static inline int tcu_read_all(struct tc_file *f, char **out, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap + 1);
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t r;

		if (n == cap) {
			char *nb = realloc(buf, cap * 2 + 1);

			if (!nb) {
				rc = -ENOMEM;
				break;
			}
			buf = nb;
			cap *= 2;
		}
		r = tc_read(f, buf + n, cap - n, (off_t)n);
		if (r < 0) {
			rc = (int)r;
			break;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	if (rc) {
		free(buf);
		return rc;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return 0;
}

/**
 * Put: make @p parent/@p name hold exactly @p data (create, or open with
 * O_TRUNC when it exists), write, release (publish). Lookup references
 * taken are dropped. @return 0 or the first -errno.
 */
static inline int tcu_put_at(struct tc_engine *eng, const struct tc_ctx *ctx,
			     uint64_t parent, const char *name,
			     const void *data, size_t len)
{
	struct tc_attr attr;
	struct tc_file *f = NULL;
	uint64_t ino;
	int rc, rc2;

	rc = tc_create(eng, parent, name, S_IFREG | 0644,
		       O_WRONLY | O_CREAT | O_TRUNC, ctx, &attr, &f);
	if (rc == -EEXIST) {
		rc = tc_lookup(eng, parent, name, &attr);
		if (rc)
			return rc;
		rc = tc_open(eng, attr.st.st_ino, O_WRONLY | O_TRUNC, &f);
		if (rc) {
			tc_forget(eng, attr.st.st_ino, 1);
			return rc;
		}
	} else if (rc) {
		return rc;
	}
	ino = attr.st.st_ino;
	rc = tcu_write_all(f, data, len, 0);
	rc2 = tc_release(f);
	if (!rc)
		rc = rc2;
	tc_forget(eng, ino, 1);
	return rc;
}

/** Get: lookup, open for reading (a "get"), read all, release, forget.
 *  *@p out is malloc'd (caller frees). @return 0 or -errno. */
static inline int tcu_get_at(struct tc_engine *eng, uint64_t parent,
			     const char *name, char **out, size_t *len)
{
	struct tc_attr attr;
	struct tc_file *f;
	int rc;

	rc = tc_lookup(eng, parent, name, &attr);
	if (rc)
		return rc;
	rc = tc_open(eng, attr.st.st_ino, O_RDONLY, &f);
	if (rc == 0) {
		rc = tcu_read_all(f, out, len);
		tc_release(f);
	}
	tc_forget(eng, attr.st.st_ino, 1);
	return rc;
}

/** Put a string value under the root; fails the test on error. */
static inline void tcu_put(struct tcu *fx, const char *name, const char *val)
{
	int rc = tcu_put_at(fx->eng, &fx->ctx, TC_ROOT_INO, name, val,
			    strlen(val));

	if (rc)
		fail_msg("put %s: %s", name, strerror(-rc));
}

/** Put @p len bytes of tcu_fill(@p seed) under the root. */
static inline void tcu_put_fill(struct tcu *fx, const char *name, size_t len,
				unsigned int seed)
{
	char *buf = malloc(len ? len : 1);
	int rc;

	assert_non_null(buf);
	tcu_fill(buf, len, seed);
	rc = tcu_put_at(fx->eng, &fx->ctx, TC_ROOT_INO, name, buf, len);
	free(buf);
	if (rc)
		fail_msg("put %s: %s", name, strerror(-rc));
}

/** Assert that @p parent/@p name reads back as exactly @p data. */
static inline void tcu_assert_value_at(struct tcu *fx, uint64_t parent,
				       const char *name, const void *data,
				       size_t len)
{
	char *got = NULL;
	size_t n = 0;
	int rc = tcu_get_at(fx->eng, parent, name, &got, &n);

	if (rc)
		fail_msg("get %s: %s", name, strerror(-rc));
	if (n != len || memcmp(got, data, len) != 0) {
		free(got);
		fail_msg("get %s: %zu bytes, expected %zu / other content",
			 name, n, len);
	}
	free(got);
}

/** Assert that root/@p name holds the string @p val. */
static inline void tcu_assert_value(struct tcu *fx, const char *name,
				    const char *val)
{
	tcu_assert_value_at(fx, TC_ROOT_INO, name, val, strlen(val));
}

/** Assert that root/@p name holds tcu_fill(@p len, @p seed). */
static inline void tcu_assert_fill(struct tcu *fx, const char *name,
				   size_t len, unsigned int seed)
{
	char *buf = malloc(len ? len : 1);

	assert_non_null(buf);
	tcu_fill(buf, len, seed);
	tcu_assert_value_at(fx, TC_ROOT_INO, name, buf, len);
	free(buf);
}

/** Get root/@p name, discarding the content. @return 0 or -errno. */
static inline int tcu_get(struct tcu *fx, const char *name)
{
	char *got = NULL;
	size_t n;
	int rc = tcu_get_at(fx->eng, TC_ROOT_INO, name, &got, &n);

	free(got);
	return rc;
}

/** Delete (unlink) @p parent/@p name. @return 0 or -errno. */
static inline int tcu_del_at(struct tc_engine *eng, uint64_t parent,
			     const char *name)
{
	return tc_unlink(eng, parent, name);
}

/** Inode of @p parent/@p name (reference dropped), or 0 when absent. */
static inline uint64_t tcu_ino_at(struct tc_engine *eng, uint64_t parent,
				  const char *name)
{
	struct tc_attr attr;

	if (tc_lookup(eng, parent, name, &attr) != 0)
		return 0;
	tc_forget(eng, attr.st.st_ino, 1);
	return attr.st.st_ino;
}

/** True when root/@p name is visible. */
static inline bool tcu_present(struct tcu *fx, const char *name)
{
	return tcu_ino_at(fx->eng, TC_ROOT_INO, name) != 0;
}

/** Make directory @p parent/@p name; returns its inode (reference
 *  dropped: a directory lives on without it). Fails the test on error. */
static inline uint64_t tcu_mkdir_at(struct tcu *fx, uint64_t parent,
				    const char *name)
{
	struct tc_attr attr;
	int rc = tc_mknod(fx->eng, parent, name, S_IFDIR | 0755, 0, &fx->ctx,
			  &attr);

	if (rc)
		fail_msg("mkdir %s: %s", name, strerror(-rc));
	tc_forget(fx->eng, attr.st.st_ino, 1);
	return attr.st.st_ino;
}

/**
 * Read xattr @p xname of @p parent/@p name as a NUL-terminated string into
 * @p buf. @return the value length, or -errno (of the lookup or getxattr).
 */
static inline ssize_t tcu_xattr_at(struct tc_engine *eng, uint64_t parent,
				   const char *name, const char *xname,
				   char *buf, size_t size)
{
	struct tc_attr attr;
	ssize_t n;
	int rc = tc_lookup(eng, parent, name, &attr);

	if (rc)
		return rc;
	n = tc_getxattr(eng, attr.st.st_ino, xname, buf, size - 1);
	tc_forget(eng, attr.st.st_ino, 1);
	if (n >= 0)
		buf[n] = '\0';
	return n;
}

/** Hash (32 hex + NUL) of root/@p name into @p hash; fails on error. */
static inline void tcu_hash(struct tcu *fx, const char *name, char hash[33])
{
	char buf[64];
	ssize_t n = tcu_xattr_at(fx->eng, TC_ROOT_INO, name,
				 TC_XATTR_PREFIX "hash", buf, sizeof(buf));

	if (n != 32)
		fail_msg("hash of %s: %zd (%s)", name, n,
			 n < 0 ? strerror((int)-n) : buf);
	memcpy(hash, buf, 33);
}

/** Assert where root/@p name is served from: "ram" or "disk". */
#define tcu_assert_tier(fx, name, want)                                      \
	do {                                                                 \
		char tier_[16];                                              \
		ssize_t n_ = tcu_xattr_at((fx)->eng, TC_ROOT_INO, (name),    \
					  TC_XATTR_PREFIX "tier", tier_,     \
					  sizeof(tier_));                    \
		if (n_ < 0)                                                  \
			fail_msg("tier of %s: %s", (name),                   \
				 strerror((int)-n_));                        \
		if (strcmp(tier_, (want)) != 0)                              \
			fail_msg("tier of %s: got \"%s\", expected \"%s\"",  \
				 (name), tier_, (want));                     \
	} while (0)

/** Set a root control attribute (flush, evict_tag, expire, ...). */
static inline int tcu_root_ctl(struct tcu *fx, const char *attr,
			       const char *val)
{
	char name[64];

	snprintf(name, sizeof(name), TC_XATTR_PREFIX "%s", attr);
	return tc_setxattr(fx->eng, TC_ROOT_INO, name, val, strlen(val), 0);
}

/** Empty the RAM tier (flush=ram); fails the test on error. */
static inline void tcu_flush_ram(struct tcu *fx)
{
	assert_int_equal(tcu_root_ctl(fx, "flush", "ram"), 0);
}

/* ------------------------------------------------------------------ */
/* Statistics                                                         */
/* ------------------------------------------------------------------ */

struct tcu_stat_q {
	const char *name;
	double value;
	bool found;
};

static inline void tcu_stat_cb(void *ctx, const char *name, const char *help,
			       enum tc_stat_kind kind, double value)
{
	struct tcu_stat_q *q = ctx;

	(void)help;
	(void)kind;
	if (strcmp(name, q->name) == 0) {
		q->value = value;
		q->found = true;
	}
}

/** Value of statistic @p name (e.g. "ram_hits"); fails when absent. */
static inline double tcu_stat(struct tc_engine *eng, const char *name)
{
	struct tcu_stat_q q = { .name = name };

	tc_engine_stats(eng, tcu_stat_cb, &q);
	if (!q.found)
		fail_msg("statistic %s not reported", name);
	return q.value;
}

/** Assert statistic @p name equals the integer @p want. */
#define tcu_assert_stat(eng, name, want)                                     \
	do {                                                                 \
		double v_ = tcu_stat((eng), (name));                         \
		if (v_ != (double)(want))                                    \
			fail_msg("stat %s: got %.0f, expected %.0f", (name), \
				 v_, (double)(want));                        \
	} while (0)

/* ------------------------------------------------------------------ */
/* Hashes, listings                                                   */
/* ------------------------------------------------------------------ */

/** XXH3-128 of @p data as 32 lowercase hex digits (canonical order): the
 *  name the engine gives a content. */
static inline void tcu_xxh_hex(const void *data, size_t len, char out[33])
{
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, XXH3_128bits(data, len));
	for (int i = 0; i < 16; i++)
		sprintf(out + 2 * i, "%02x", c.digest[i]);
}

/** Hash (hex) of @p len bytes of tcu_fill(@p seed). */
static inline void tcu_fill_hex(size_t len, unsigned int seed, char out[33])
{
	char *buf = malloc(len ? len : 1);

	assert_non_null(buf);
	tcu_fill(buf, len, seed);
	tcu_xxh_hex(buf, len, out);
	free(buf);
}

/** True when the blob file of content @p hash (hex) exists. */
static inline bool tcu_blob_exists(const struct tcu *fx, const char *hash)
{
	char path[PATH_MAX];

	return tcu_exists(tcu_store_path(fx, TCU_BLOB, hash, path,
					 sizeof(path)));
}

/** True when the NUL-separated list @p list of @p len bytes (a listxattr
 *  result) holds @p name. */
static inline bool tcu_list_has(const char *list, ssize_t len,
				const char *name)
{
	for (ssize_t i = 0; i < len; i += (ssize_t)strlen(list + i) + 1)
		if (strcmp(list + i, name) == 0)
			return true;
	return false;
}

/* ------------------------------------------------------------------ */
/* Fault injection                                                    */
/* ------------------------------------------------------------------ */

/**
 * A blob ops table (tc_config.blob_ops, tc_check()) that passes calls to
 * libc until told to fail: a nonzero *_errno makes every such call fail
 * with that errno. Counts the calls. Give it static storage in a test: an
 * engine still open when an assertion fails must not see a dead frame.
 */
struct tcu_faults {
	int write_errno, read_errno, fsync_errno;
	int writes, reads, fsyncs; /* calls seen; atomic */
	struct tc_blob_ops ops;    /* ops.ctx is this struct */
};

static inline ssize_t tcu_f_pwrite(void *ctx, int fd, const void *buf,
				   size_t n, off_t off)
{
	struct tcu_faults *f = ctx;

	__atomic_add_fetch(&f->writes, 1, __ATOMIC_RELAXED);
	if (f->write_errno) {
		errno = f->write_errno;
		return -1;
	}
	return pwrite(fd, buf, n, off);
}

static inline ssize_t tcu_f_pread(void *ctx, int fd, void *buf, size_t n,
				  off_t off)
{
	struct tcu_faults *f = ctx;

	__atomic_add_fetch(&f->reads, 1, __ATOMIC_RELAXED);
	if (f->read_errno) {
		errno = f->read_errno;
		return -1;
	}
	return pread(fd, buf, n, off);
}

static inline int tcu_f_fsync(void *ctx, int fd)
{
	struct tcu_faults *f = ctx;

	__atomic_add_fetch(&f->fsyncs, 1, __ATOMIC_RELAXED);
	if (f->fsync_errno) {
		errno = f->fsync_errno;
		return -1;
	}
	return fsync(fd);
}

/** Reset @p f: no faults, no calls counted, its ops table ready. */
static inline const struct tc_blob_ops *tcu_faults_init(struct tcu_faults *f)
{
	memset(f, 0, sizeof(*f));
	f->ops.pwrite = tcu_f_pwrite;
	f->ops.pread = tcu_f_pread;
	f->ops.fsync = tcu_f_fsync;
	f->ops.ctx = f;
	return &f->ops;
}

/** Reopen fx->eng with blob I/O through @p f (reset first). */
static inline void tcu_use_faults(struct tcu *fx, struct tcu_faults *f)
{
	tc_engine_close(fx->eng); /* it may still use the old ops */
	fx->eng = NULL;
	fx->cfg.blob_ops = tcu_faults_init(f);
	tcu_open(fx);
}

/** Close the engine while the ops table is still alive; the next open
 *  uses the libc calls again. */
static inline void tcu_drop_faults(struct tcu *fx)
{
	tc_engine_close(fx->eng);
	fx->eng = NULL;
	fx->cfg.blob_ops = NULL;
}

/* ------------------------------------------------------------------ */
/* Log capture                                                        */
/* ------------------------------------------------------------------ */

/** What a tcu_logcap_fn() callback saw (set cfg.log_ctx to one). */
struct tcu_logcap {
	int calls;           /**< messages passed to the callback */
	int by_level[8];     /**< of them, per level (TC_LOG_*) */
	int last_level;
	char last[512];      /**< the last message, formatted */
	char first_err[512]; /**< the first TC_LOG_ERR message */
};

static inline void tcu_logcap_fn(void *ctx, int level, const char *fmt,
				 va_list ap)
	__attribute__((format(printf, 3, 0)));
static inline void tcu_logcap_fn(void *ctx, int level, const char *fmt,
				 va_list ap)
{
	struct tcu_logcap *lc = ctx;

	lc->calls++;
	if (level >= 0 && level < 8)
		lc->by_level[level]++;
	lc->last_level = level;
	vsnprintf(lc->last, sizeof(lc->last), fmt, ap);
	if (level == TC_LOG_ERR && !lc->first_err[0])
		snprintf(lc->first_err, sizeof(lc->first_err), "%s", lc->last);
	fprintf(stderr, "engine[%d]: %s\n", level, lc->last);
}

/* ------------------------------------------------------------------ */
/* Internal state (tests that include "engine_i.h" first)             */
/* ------------------------------------------------------------------ */

#ifdef TC_ENGINE_I_H

/** The index row of @p ino, read under the engine lock: 0 or -ENOENT. */
static inline int tcu_row(struct tc_engine *eng, uint64_t ino,
			  struct tc_inode *out)
{
	int rc;

	tc_lock(eng);
	rc = tc_index_inode_get(&eng->ix, ino, out);
	tc_unlock(eng);
	return rc;
}

/** Binary form of the 32-hex-digit hash @p hex; fails the test when
 *  malformed. */
static inline void tcu_hash_bin(const char *hex, uint8_t out[TC_HASH_LEN])
{
	assert_int_equal(tc_hash_parse(hex, out), 0);
}

#endif /* TC_ENGINE_I_H */

#endif /* TC_TEST_UTIL_H */
