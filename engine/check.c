/* SPDX-License-Identifier: MIT */
/*
 * Offline integrity check of a store (tiercachefs --check [--fix]).
 *
 * Works on the files directly, not through an open engine, so it can look
 * at what opening would tidy away (temporary files) and report it. Takes
 * the store lock, so it refuses a mounted store. Checks, in order:
 *   1. leftover temporary files in tmp/;
 *   2. every inode's blob: present, of the right size, hashing to its name;
 *   3. every blob row's refcount against the inodes that use it;
 *   4. blob files no row references.
 * With fix, entries whose blob cannot be trusted are dropped (all their
 * names), refcounts are rewritten, unreferenced blobs and temporary files
 * deleted, all in one transaction plus file deletions after it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "engine_i.h"

struct checker {
	const char *store;
	bool fix;
	struct tc_check_report *rep;
	tc_log_fn log_fn;
	void *log_ctx;
	int store_fd, lock_fd, blobs_fd, tmp_fd;
	sqlite3 *db;
};

static void say(struct checker *c, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void say(struct checker *c, int level, const char *fmt, ...)
{
	va_list ap;

	if (!c->log_fn)
		return;
	va_start(ap, fmt);
	c->log_fn(c->log_ctx, level, fmt, ap);
	va_end(ap);
}

static int exec(struct checker *c, const char *sql)
{
	int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK) {
		say(c, TC_LOG_ERR, "index: %s", sqlite3_errmsg(c->db));
		return tc_sql_errno(rc);
	}
	return 0;
}

static void check_tmp(struct checker *c)
{
	int fd = openat(c->tmp_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		c->rep->temp_files++;
		say(c, TC_LOG_WARNING, "leftover temporary file tmp/%s",
		    de->d_name);
		if (c->fix && unlinkat(c->tmp_fd, de->d_name, 0) == 0)
			c->rep->fixed++;
	}
	closedir(d);
}

/* 0 when blob @hash holds @size bytes hashing to @hash; -ENOENT, -EIO. */
static int verify_blob(struct checker *c, const uint8_t *hash, uint64_t size)
{
	char name[TC_BLOB_NAME_LEN];
	XXH3_state_t *hs;
	XXH128_canonical_t can;
	static _Thread_local char buf[1 << 16];
	struct stat st;
	uint64_t off = 0;
	int fd, rc = 0;

	tc_blob_name(hash, name);
	fd = openat(c->blobs_fd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -ENOENT;
	if (fstat(fd, &st) || (uint64_t)st.st_size != size) {
		close(fd);
		return -EIO;
	}
	hs = XXH3_createState();
	if (!hs) {
		close(fd);
		return -ENOMEM;
	}
	XXH3_128bits_reset(hs);
	while (off < size) {
		ssize_t n = pread(fd, buf, sizeof(buf), (off_t)off);
		if (n <= 0) {
			rc = -EIO;
			break;
		}
		XXH3_128bits_update(hs, buf, (size_t)n);
		off += (uint64_t)n;
	}
	XXH128_canonicalFromHash(&can, XXH3_128bits_digest(hs));
	XXH3_freeState(hs);
	close(fd);
	if (!rc && memcmp(can.digest, hash, TC_HASH_LEN))
		rc = -EIO;
	return rc;
}

/* Step 2: every inode's blob. Bad inodes are dropped with fix. */
static int check_inodes(struct checker *c)
{
	sqlite3_stmt *st, *del;
	int rc;

	rc = sqlite3_prepare_v2(c->db,
				"SELECT i.ino, i.hash, i.size, b.data FROM inode i"
				" LEFT JOIN blob b ON b.hash = i.hash"
				" WHERE i.hash IS NOT NULL",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return tc_sql_errno(rc);
	rc = sqlite3_prepare_v2(c->db,
				"INSERT INTO bad(ino) VALUES(?1)", -1, &del,
				NULL);
	if (rc != SQLITE_OK) {
		sqlite3_finalize(st);
		return tc_sql_errno(rc);
	}
	while (sqlite3_step(st) == SQLITE_ROW) {
		int64_t ino = sqlite3_column_int64(st, 0);
		const uint8_t *h = sqlite3_column_blob(st, 1);
		uint64_t size = (uint64_t)sqlite3_column_int64(st, 2);
		char hex[TC_HASH_HEX + 1];

		c->rep->entries++;
		hex[0] = '\0';
		if (sqlite3_column_bytes(st, 1) != TC_HASH_LEN) {
			rc = -EIO;
		} else if (sqlite3_column_type(st, 3) != SQLITE_NULL) {
			/* kept inside the index */
			uint8_t got[TC_HASH_LEN];
			tc_hash_buf(sqlite3_column_blob(st, 3),
				    (size_t)sqlite3_column_bytes(st, 3), got);
			rc = (uint64_t)sqlite3_column_bytes(st, 3) != size ||
					     memcmp(got, h, TC_HASH_LEN)
				     ? -EIO
				     : 0;
			tc_hash_hex(h, hex);
		} else {
			rc = verify_blob(c, h, size);
			tc_hash_hex(h, hex);
		}
		if (!rc)
			continue;
		if (rc == -ENOENT) {
			c->rep->missing_blobs++;
			say(c, TC_LOG_WARNING,
			    "inode %lld: blob %s is missing", (long long)ino,
			    hex);
		} else {
			c->rep->corrupt_blobs++;
			say(c, TC_LOG_WARNING,
			    "inode %lld: blob does not match its hash",
			    (long long)ino);
		}
		sqlite3_reset(del);
		sqlite3_bind_int64(del, 1, ino);
		sqlite3_step(del);
	}
	sqlite3_finalize(st);
	sqlite3_finalize(del);
	return 0;
}

static int count_query(struct checker *c, const char *sql, uint64_t *out)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);

	if (rc != SQLITE_OK)
		return tc_sql_errno(rc);
	*out = sqlite3_step(st) == SQLITE_ROW
		       ? (uint64_t)sqlite3_column_int64(st, 0)
		       : 0;
	sqlite3_finalize(st);
	return 0;
}

/* Step 3: refcounts (computed over inodes not marked bad). */
static int check_refs(struct checker *c)
{
	uint64_t drift = 0;
	int rc;

	/* what the rows say (for the report) and what remains once the
	 * untrustworthy entries are dropped (for the repair) */
	rc = exec(c, "CREATE TEMP TABLE want_all AS SELECT hash, count(*) AS"
		     " refs, max(size) AS size FROM inode WHERE hash IS NOT"
		     " NULL GROUP BY hash;"
		     "CREATE TEMP TABLE want AS SELECT hash, count(*) AS refs,"
		     " max(size) AS size FROM inode WHERE hash IS NOT NULL"
		     " AND ino NOT IN (SELECT ino FROM bad) GROUP BY hash");
	if (rc)
		return rc;
	rc = count_query(c,
			 "SELECT (SELECT count(*) FROM blob b LEFT JOIN"
			 " want_all w ON w.hash = b.hash WHERE w.refs IS NULL"
			 " OR w.refs != b.refs) + (SELECT count(*) FROM"
			 " want_all w WHERE w.hash NOT IN (SELECT hash FROM"
			 " blob))",
			 &drift);
	if (rc)
		return rc;
	c->rep->refcount_drift = drift;
	if (drift)
		say(c, TC_LOG_WARNING, "%llu blob reference counts are wrong",
		    (unsigned long long)drift);
	return 0;
}

/* Step 4: blob files the index does not reference. */
static int check_orphan_blobs(struct checker *c, const char *table,
			      bool report, uint8_t (**doomed)[16],
			      size_t *ndoomed)
{
	sqlite3_stmt *st, *pend = NULL;
	size_t cap = 0;
	char sql[128];
	int rc;

	snprintf(sql, sizeof(sql), "SELECT 1 FROM %s WHERE hash = ?1", table);
	rc = sqlite3_prepare_v2(c->db, sql, -1, &st, NULL);
	if (rc == SQLITE_OK && report &&
	    sqlite3_prepare_v2(c->db, "SELECT 1 FROM pending WHERE hash = ?1",
			       -1, &pend, NULL) != SQLITE_OK)
		pend = NULL; /* an index from before the pending table */
	if (rc != SQLITE_OK)
		return tc_sql_errno(rc);
	for (int i = 0; i < 256; i++) {
		char sub[3];
		struct dirent *de;
		DIR *d;
		int fd;

		snprintf(sub, sizeof(sub), "%02x", i);
		fd = openat(c->blobs_fd, sub,
			    O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || !(d = fdopendir(fd))) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		while ((de = readdir(d))) {
			char hex[TC_HASH_HEX + 1];
			uint8_t h[TC_HASH_LEN];
			bool used;

			if (de->d_name[0] == '.')
				continue;
			if (report)
				c->rep->blobs++;
			hex[0] = sub[0];
			hex[1] = sub[1];
			hex[2] = '\0';
			if (strlen(de->d_name) == TC_HASH_HEX - 2)
				memcpy(hex + 2, de->d_name, TC_HASH_HEX - 1);
			if (strlen(de->d_name) != TC_HASH_HEX - 2 ||
			    tc_hash_parse(hex, h)) {
				if (!report)
					continue;
				say(c, TC_LOG_WARNING,
				    "stray file blobs/%s/%s", sub, de->d_name);
				c->rep->orphan_blobs++;
				if (c->fix &&
				    unlinkat(dirfd(d), de->d_name, 0) == 0)
					c->rep->fixed++;
				continue;
			}
			sqlite3_reset(st);
			sqlite3_bind_blob(st, 1, h, TC_HASH_LEN,
					  SQLITE_TRANSIENT);
			used = sqlite3_step(st) == SQLITE_ROW;
			if (used)
				continue;
			if (report && pend) {
				sqlite3_reset(pend);
				sqlite3_bind_blob(pend, 1, h, TC_HASH_LEN,
						  SQLITE_TRANSIENT);
				used = sqlite3_step(pend) == SQLITE_ROW;
			}
			if (report && used) {
				/* a publish the crash cut short */
				c->rep->pending_blobs++;
				say(c, TC_LOG_INFO,
				    "blob %s of an interrupted publish", hex);
			} else if (report) {
				c->rep->orphan_blobs++;
				say(c, TC_LOG_WARNING,
				    "blob %s is not referenced", hex);
			}
			if (*ndoomed == cap) {
				void *v;
				cap = cap ? cap * 2 : 64;
				v = realloc(*doomed, cap * sizeof(**doomed));
				if (!v)
					continue;
				*doomed = v;
			}
			memcpy((*doomed)[(*ndoomed)++], h, TC_HASH_LEN);
		}
		closedir(d);
	}
	sqlite3_finalize(st);
	sqlite3_finalize(pend);
	return 0;
}

/* Drop bad inodes and rewrite the blob table from the inodes. */
static int repair(struct checker *c)
{
	return exec(c, "BEGIN IMMEDIATE;"
		       "DELETE FROM dentry WHERE ino IN (SELECT ino FROM bad);"
		       "DELETE FROM xattr WHERE ino IN (SELECT ino FROM bad);"
		       "DELETE FROM tag WHERE ino IN (SELECT ino FROM bad);"
		       "DELETE FROM inode WHERE ino IN (SELECT ino FROM bad);"
		       /* refcounts from the rows that remain; contents kept
			* inside the index stay where they are */
		       "DELETE FROM blob WHERE hash NOT IN"
		       " (SELECT hash FROM want);"
		       "UPDATE blob SET refs = (SELECT w.refs FROM want w"
		       " WHERE w.hash = blob.hash);"
		       "INSERT INTO blob(hash, size, refs) SELECT hash, size,"
		       " refs FROM want WHERE hash NOT IN"
		       " (SELECT hash FROM blob);"
		       "DELETE FROM pending;"
		       /* the counters a clean shutdown kept are stale now:
			* the next mount recounts */
		       "INSERT OR REPLACE INTO meta(key, value)"
		       " VALUES('clean', 0);"
		       "COMMIT;");
}

static int open_dirs(struct checker *c)
{
	char path[4096];
	int rc;

	c->store_fd = open(c->store, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->store_fd < 0)
		return -errno;
	c->lock_fd = openat(c->store_fd, "lock", O_RDWR | O_CLOEXEC);
	if (c->lock_fd >= 0 && flock(c->lock_fd, LOCK_EX | LOCK_NB))
		return -EBUSY;
	c->blobs_fd = openat(c->store_fd, "blobs",
			     O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	c->tmp_fd = openat(c->store_fd, "tmp",
			   O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->blobs_fd < 0)
		return -ENOENT;
	snprintf(path, sizeof(path), "%s/index.db", c->store);
	if (access(path, F_OK))
		return -ENOENT;
	rc = sqlite3_open_v2(path, &c->db, SQLITE_OPEN_READWRITE, NULL);
	if (rc != SQLITE_OK)
		return tc_sql_errno(rc);
	rc = exec(c, "PRAGMA quick_check");
	if (!rc)
		rc = exec(c, "CREATE TEMP TABLE bad(ino INTEGER PRIMARY KEY)");
	return rc;
}

int tc_check(const char *store, bool fix, struct tc_check_report *rep,
	     tc_log_fn log_fn, void *log_ctx)
{
	struct checker c = { .store = store, .fix = fix, .rep = rep,
			     .log_fn = log_fn, .log_ctx = log_ctx,
			     .store_fd = -1, .lock_fd = -1, .blobs_fd = -1,
			     .tmp_fd = -1 };
	uint8_t(*doomed)[16] = NULL;
	size_t ndoomed = 0;
	uint64_t problems;
	int rc;

	memset(rep, 0, sizeof(*rep));
	rc = open_dirs(&c);
	if (rc)
		goto out;
	if (c.tmp_fd >= 0)
		check_tmp(&c);
	rc = check_inodes(&c);
	if (!rc)
		rc = check_refs(&c);
	if (!rc)
		rc = check_orphan_blobs(&c, "want_all", true, &doomed,
					&ndoomed);
	if (rc)
		goto out;
	/* Temporary files and the blobs of interrupted publishes are what a
	 * crash leaves: the next mount reclaims them, so they are reported
	 * and (with fix) removed, but the store is sound with them. */
	problems = rep->missing_blobs + rep->corrupt_blobs +
		   rep->refcount_drift + rep->orphan_blobs +
		   rep->counter_drift;
	if (fix && (problems || rep->pending_blobs)) {
		rc = repair(&c);
		if (rc)
			goto out;
		rep->fixed += rep->missing_blobs + rep->corrupt_blobs +
			      rep->refcount_drift;
		for (size_t i = 0; i < ndoomed; i++) {
			char name[TC_BLOB_NAME_LEN];
			tc_blob_name(doomed[i], name);
			if (unlinkat(c.blobs_fd, name, 0) == 0)
				rep->fixed++;
		}
		/* Blobs only the dropped entries used go too. */
		ndoomed = 0;
		rc = check_orphan_blobs(&c, "want", false, &doomed, &ndoomed);
		if (rc)
			goto out;
		for (size_t i = 0; i < ndoomed; i++) {
			char name[TC_BLOB_NAME_LEN];
			tc_blob_name(doomed[i], name);
			(void)unlinkat(c.blobs_fd, name, 0);
		}
		rc = rep->fixed >= problems ? 0 : 1;
	} else {
		rc = problems ? 1 : 0;
	}
out:
	free(doomed);
	if (c.db)
		sqlite3_close(c.db);
	{
		int fds[] = { c.store_fd, c.lock_fd, c.blobs_fd, c.tmp_fd };
		for (size_t i = 0; i < sizeof(fds) / sizeof(*fds); i++)
			if (fds[i] >= 0)
				close(fds[i]);
	}
	return rc;
}
