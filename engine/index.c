/* SPDX-License-Identifier: MIT */
/*
 * The index: one SQLite database (STORE/index.db, WAL mode) holding the
 * namespace and all metadata. The disk tier is the source of truth; this is
 * its catalogue. This file owns the connection (open, checks, format,
 * transactions, the clean-shutdown mark); the inode rows are in
 * index_inode.c, the other queries in index_query.c, the offline check's in
 * index_check.c. No other engine file sees SQLite.
 *
 * Tables:
 *   meta(key, value)         format version, size counters, flags
 *   inode(ino, …)            one row per inode of any type; ino never reused
 *                            (AUTOINCREMENT) so the kernel's inode numbers
 *                            stay unique over the store's life
 *   dentry(id, parent, name, ino)
 *                            names are BLOBs (any bytes but '/' and NUL);
 *                            id is the readdir cookie; renaming a directory
 *                            is one UPDATE of its dentry
 *   blob(hash, size, refs, data)
 *                            reference counts of content-addressed blobs;
 *                            small contents live in data, the rest in files
 *   chunk(ino, idx, hash)    the chunks of a content larger than one chunk
 *                            (inode.nchunks of them): each row holds a
 *                            reference to its blob; inode.hash is then the
 *                            whole content's hash, or NULL when unknown
 *   xattr(ino, name, value)  user.* attributes
 *   tag(tag, ino, pos)       tags, indexed both ways for evict_tag
 *   pending(hash)            blob files that may not be referenced yet
 *
 * All statements are prepared once at open and used under the engine lock
 * (asserted). Writes are grouped in explicit transactions by the caller
 * (txn.c); synchronous=NORMAL in WAL mode makes a commit cost no fsync, and
 * a commit that must be durable (fsync, sync=close) raises it to FULL for
 * itself.
 *
 * Format changes: meta.format is TC_FORMAT_VERSION; an older store is
 * migrated by migrate() step by step, a newer one refused.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "index_i.h"

static const char *const schema_sql =
	"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value)"
	" WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS inode("
	" ino INTEGER PRIMARY KEY AUTOINCREMENT,"
	" mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,"
	" nlink INTEGER NOT NULL, rdev INTEGER NOT NULL DEFAULT 0,"
	" size INTEGER NOT NULL DEFAULT 0,"
	" atime INTEGER NOT NULL, mtime INTEGER NOT NULL,"
	" ctime INTEGER NOT NULL,"
	" hash BLOB, target BLOB,"
	" ttl INTEGER, ttl_mode INTEGER, dttl INTEGER, dttl_mode INTEGER,"
	" expires INTEGER, schema TEXT, lru INTEGER, nchunks INTEGER);"
	"CREATE INDEX IF NOT EXISTS inode_lru ON inode(lru, ino)"
	" WHERE lru IS NOT NULL;"
	"CREATE INDEX IF NOT EXISTS inode_expires ON inode(expires)"
	" WHERE expires IS NOT NULL;"
	"CREATE INDEX IF NOT EXISTS inode_orphan ON inode(nlink)"
	" WHERE nlink = 0;"
	"CREATE TABLE IF NOT EXISTS dentry("
	" id INTEGER PRIMARY KEY, parent INTEGER NOT NULL,"
	" name BLOB NOT NULL, ino INTEGER NOT NULL);"
	"CREATE UNIQUE INDEX IF NOT EXISTS dentry_name ON dentry(parent, name);"
	"CREATE INDEX IF NOT EXISTS dentry_order ON dentry(parent, id);"
	"CREATE INDEX IF NOT EXISTS dentry_ino ON dentry(ino);"
	"CREATE TABLE IF NOT EXISTS blob(hash BLOB PRIMARY KEY,"
	" size INTEGER NOT NULL, refs INTEGER NOT NULL, data BLOB);"
	"CREATE TABLE IF NOT EXISTS xattr(ino INTEGER NOT NULL,"
	" name TEXT NOT NULL, value BLOB NOT NULL, PRIMARY KEY(ino, name))"
	" WITHOUT ROWID;"
	"CREATE TABLE IF NOT EXISTS tag(tag TEXT NOT NULL, ino INTEGER NOT NULL,"
	" pos INTEGER NOT NULL, PRIMARY KEY(tag, ino)) WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS tag_ino ON tag(ino);"
	"CREATE TABLE IF NOT EXISTS chunk(ino INTEGER NOT NULL,"
	" idx INTEGER NOT NULL, hash BLOB NOT NULL, PRIMARY KEY(ino, idx))"
	" WITHOUT ROWID;"
	"CREATE INDEX IF NOT EXISTS chunk_hash ON chunk(hash);"
	/* blob files being written: a crash before their commit leaves
	 * them unreferenced, and the next open deletes them */
	"CREATE TABLE IF NOT EXISTS pending(hash BLOB PRIMARY KEY)"
	" WITHOUT ROWID;";

static const char *const stmt_sql[ST__COUNT] = {
	[ST_BEGIN] = "BEGIN IMMEDIATE",
	[ST_COMMIT] = "COMMIT",
	[ST_ROLLBACK] = "ROLLBACK",
	[ST_SAVEPOINT] = "SAVEPOINT op",
	[ST_RELEASE] = "RELEASE op",
	[ST_ROLLBACK_TO] = "ROLLBACK TO op",
	[ST_INODE_GET] = "SELECT " TC_INODE_COLS " FROM inode WHERE ino = ?1",
	[ST_INODE_INSERT] =
		"INSERT INTO inode(ino, mode, uid, gid, nlink, rdev, size, atime,"
		" mtime, ctime, hash, target, ttl, ttl_mode, dttl, dttl_mode,"
		" expires, schema, lru, nchunks) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7,"
		" ?8, ?9, ?10, ?11, ?19, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?20)",
	[ST_INODE_UPDATE] =
		"UPDATE inode SET mode = ?2, uid = ?3, gid = ?4, nlink = ?5,"
		" rdev = ?6, size = ?7, atime = ?8, mtime = ?9, ctime = ?10,"
		" hash = ?11, ttl = ?12, ttl_mode = ?13, dttl = ?14,"
		" dttl_mode = ?15, expires = ?16, schema = ?17, lru = ?18,"
		" nchunks = ?20 WHERE ino = ?1",
	/* What a change of names changes: no index but inode_orphan. */
	[ST_INODE_LINKS] = "UPDATE inode SET nlink = ?2, mtime = ?3,"
			   " ctime = ?4 WHERE ino = ?1",
	/* What chmod, chown and utimens change: no index at all. */
	[ST_INODE_ATTRS] = "UPDATE inode SET mode = ?2, uid = ?3, gid = ?4,"
			   " atime = ?5, mtime = ?6, ctime = ?7 WHERE ino = ?1",
	/* A directory's queued row (node.c): no index at all. */
	[ST_INODE_TIMES] = "UPDATE inode SET mtime = ?2, ctime = ?3"
			   " WHERE ino = ?1",
	[ST_INODE_DELETE] = "DELETE FROM inode WHERE ino = ?1",
	[ST_INODE_SET_LRU] = "UPDATE inode SET lru = max(coalesce(lru, 0), ?2),"
			     " expires = coalesce(?3, expires) WHERE ino = ?1"
			     " AND lru IS NOT NULL",
	[ST_DENTRY_GET] = "SELECT ino FROM dentry WHERE parent = ?1"
			  " AND name = ?2",
	[ST_DENTRY_INSERT] = "INSERT INTO dentry(parent, name, ino)"
			     " VALUES(?1, ?2, ?3)",
	[ST_DENTRY_DELETE] = "DELETE FROM dentry WHERE parent = ?1"
			     " AND name = ?2",
	[ST_DENTRY_MOVE] = "UPDATE dentry SET parent = ?3, name = ?4"
			   " WHERE parent = ?1 AND name = ?2",
	[ST_DENTRY_ANY_CHILD] = "SELECT 1 FROM dentry WHERE parent = ?1"
				" LIMIT 1",
	[ST_DENTRY_LIST] = "SELECT d.id, d.name, i.ino, i.mode, i.uid, i.gid,"
			   " i.nlink, i.rdev, i.size, i.atime, i.mtime,"
			   " i.ctime, i.hash, i.ttl, i.ttl_mode, i.dttl,"
			   " i.dttl_mode, i.expires, i.schema, i.lru, i.nchunks"
			   " FROM dentry d JOIN inode i ON i.ino = d.ino"
			   " WHERE d.parent = ?1 AND d.id > ?2"
			   " ORDER BY d.id",
	[ST_DENTRY_PARENT] = "SELECT parent FROM dentry WHERE ino = ?1"
			     " LIMIT 1",
	[ST_DENTRY_OF_INO] = "SELECT parent, name FROM dentry WHERE ino = ?1",
	[ST_DENTRY_DELETE_INO] = "DELETE FROM dentry WHERE ino = ?1",
	[ST_BLOB_GET] = "SELECT refs FROM blob WHERE hash = ?1",
	[ST_BLOB_DATA] = "SELECT data FROM blob WHERE hash = ?1"
			 " AND data IS NOT NULL",
	[ST_BLOB_REF] = "INSERT INTO blob(hash, size, refs, data)"
			" VALUES(?1, ?2, 1, ?3)"
			" ON CONFLICT(hash) DO UPDATE SET refs = refs + 1",
	[ST_BLOB_UNREF] = "UPDATE blob SET refs = refs - 1 WHERE hash = ?1",
	[ST_BLOB_DROP_LAST] = "DELETE FROM blob WHERE hash = ?1",
	[ST_BLOB_INFO] = "SELECT refs, size, data IS NULL FROM blob"
			 " WHERE hash = ?1",
	[ST_XATTR_GET] = "SELECT value FROM xattr WHERE ino = ?1"
			 " AND name = ?2",
	[ST_XATTR_SET] = "INSERT OR REPLACE INTO xattr(ino, name, value)"
			 " VALUES(?1, ?2, ?3)",
	[ST_XATTR_DELETE] = "DELETE FROM xattr WHERE ino = ?1 AND name = ?2",
	[ST_XATTR_LIST] = "SELECT name FROM xattr WHERE ino = ?1"
			  " ORDER BY name",
	[ST_XATTR_DELETE_INO] = "DELETE FROM xattr WHERE ino = ?1",
	[ST_TAG_ADD] = "INSERT OR IGNORE INTO tag(tag, ino, pos)"
		       " VALUES(?1, ?2, ?3)",
	[ST_TAG_DELETE_INO] = "DELETE FROM tag WHERE ino = ?1",
	[ST_TAG_LIST_INO] = "SELECT tag FROM tag WHERE ino = ?1 ORDER BY pos",
	[ST_TAG_INOS] = "SELECT t.ino FROM tag t JOIN inode i ON i.ino = t.ino"
			" WHERE t.tag = ?1 AND i.nlink > 0",
	[ST_META_SET] = "INSERT OR REPLACE INTO meta(key, value)"
			" VALUES(?1, ?2)",
	/* Least recently used first, ties broken by the entry's name. */
	[ST_LRU_OLDEST] = "SELECT i.ino, i.lru, (SELECT min(d.name) FROM"
			  " dentry d WHERE d.ino = i.ino) AS k FROM inode i"
			  " WHERE i.lru IS NOT NULL AND i.nlink > 0"
			  " ORDER BY i.lru, k, i.ino LIMIT ?1",
	[ST_EXPIRED] = "SELECT ino FROM inode WHERE expires IS NOT NULL"
		       " AND expires <= ?1 AND nlink > 0 LIMIT ?2",
	[ST_ORPHANS] = "SELECT ino FROM inode WHERE nlink = 0",
	[ST_READLINK] = "SELECT target FROM inode WHERE ino = ?1",
	[ST_PENDING_ADD] = "INSERT OR IGNORE INTO pending(hash) VALUES(?1)",
	[ST_PENDING_DEL] = "DELETE FROM pending WHERE hash = ?1",
	[ST_PENDING_LIST] = "SELECT hash FROM pending",
	[ST_XATTR_NAMES_LEN] = "SELECT coalesce(sum(length(name) + 1), 0)"
			       " FROM xattr WHERE ino = ?1 AND name != ?2",
	[ST_NONDIR_INOS] = "SELECT ino FROM inode WHERE nlink > 0 AND"
			   " (mode & 61440) != 16384 AND ino > ?1"
			   " ORDER BY ino LIMIT ?2",
	/* Names in a directory and below it (directories have no lru). */
	[ST_SUBTREE_NAMES] = "WITH RECURSIVE sub(ino) AS (SELECT ?1 UNION"
			     " SELECT d.ino FROM dentry d JOIN sub ON"
			     " d.parent = sub.ino JOIN inode i ON"
			     " i.ino = d.ino WHERE i.lru IS NULL)"
			     " SELECT d.parent, d.name, d.ino FROM dentry d"
			     " WHERE d.parent IN sub",
	[ST_CHUNK_LIST] = "SELECT idx, hash FROM chunk WHERE ino = ?1"
			  " ORDER BY idx",
	[ST_CHUNK_SET] = "INSERT OR REPLACE INTO chunk(ino, idx, hash)"
			 " VALUES(?1, ?2, ?3)",
	[ST_CHUNK_CUT] = "DELETE FROM chunk WHERE ino = ?1 AND idx >= ?2"
			 " RETURNING hash",
	/* The tags in use, one index seek each (the primary key). */
	[ST_TAG_NEXT] = "SELECT min(tag) FROM tag WHERE tag > ?1",
	[ST_TAG_INOS_AFTER] = "SELECT ino FROM tag WHERE tag = ?1 AND ino > ?2"
			      " ORDER BY ino LIMIT ?3",
	/* The name of a directory (it has one): a step of a path walk. */
	[ST_DENTRY_NAME] = "SELECT parent, name FROM dentry WHERE ino = ?1"
			   " LIMIT 1",
};

int tc_ix_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_DONE:
	case SQLITE_ROW:
		return 0;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EPROTO;
	default:
		return -EIO;
	}
}

int tc_ix_fail(struct tc_index *ix, int rc)
{
	int sys = sqlite3_system_errno(ix->db);

	/* An I/O error of SQLite's is often the filesystem being full (a
	 * WAL write at ENOSPC): say so, as a write(2) would. */
	if ((rc & 0xff) == SQLITE_IOERR || (rc & 0xff) == SQLITE_FULL) {
		if (sys == ENOSPC || sys == EDQUOT)
			return -ENOSPC;
		if (sys == EIO)
			return -EIO;
	}
	return tc_ix_errno(rc);
}

int tc_ix_exec(struct tc_index *ix, const char *sql)
{
	int rc = sqlite3_exec(ix->db, sql, NULL, NULL, NULL);

	return rc == SQLITE_OK ? 0 : tc_ix_fail(ix, rc);
}

static void assert_locked(struct tc_index *ix)
{
#ifndef NDEBUG
	if (ix->lock)
		TC_ASSERT_HELD(ix->lock);
#else
	(void)ix;
#endif
}

sqlite3_stmt *tc_ix_stmt(struct tc_index *ix, enum tc_stmt which)
{
	sqlite3_stmt *st = ix->st[which];

	assert_locked(ix);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return st;
}

int tc_ix_step_done(struct tc_index *ix, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW)
		rc = SQLITE_DONE;
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		tc_logb(ix->base, TC_LOG_ERR, "index: %s",
			sqlite3_errmsg(ix->db));
		return tc_ix_fail(ix, rc);
	}
	return 0;
}

int tc_ix_exec_int(struct tc_index *ix, enum tc_stmt which, int64_t v)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, which);

	sqlite3_bind_int64(st, 1, v);
	return tc_ix_step_done(ix, st);
}

int tc_ix_collect(sqlite3_stmt *st, uint64_t **out, size_t *count)
{
	uint64_t *v = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	while (sqlite3_step(st) == SQLITE_ROW) {
		if (n == cap) {
			uint64_t *nv;
			cap = cap ? cap * 2 : 64;
			nv = realloc(v, cap * sizeof(*nv));
			if (!nv) {
				rc = -ENOMEM;
				break;
			}
			v = nv;
		}
		v[n++] = (uint64_t)sqlite3_column_int64(st, 0);
	}
	sqlite3_reset(st);
	if (rc) {
		free(v);
		v = NULL;
		n = 0;
	}
	*out = v;
	*count = n;
	return rc;
}

int tc_ix_collect_max(struct tc_index *ix, sqlite3_stmt *st, uint64_t *out,
		      size_t max, size_t *count)
{
	size_t n = 0;
	int rc;

	while (n < max && (rc = sqlite3_step(st)) == SQLITE_ROW)
		out[n++] = (uint64_t)sqlite3_column_int64(st, 0);
	if (n < max && rc != SQLITE_DONE) {
		sqlite3_reset(st);
		tc_logb(ix->base, TC_LOG_ERR, "index: %s",
			sqlite3_errmsg(ix->db));
		return tc_ix_errno(rc);
	}
	sqlite3_reset(st);
	*count = n;
	return 0;
}

const char *tc_index_errmsg(struct tc_index *ix)
{
	return ix->db ? sqlite3_errmsg(ix->db) : "no index";
}

/* ------------------------------------------------------------------ */
/* meta                                                               */
/* ------------------------------------------------------------------ */

static int64_t meta_get(sqlite3 *db, const char *key, int64_t dflt,
			bool *found)
{
	sqlite3_stmt *st;
	int64_t v = dflt;

	*found = false;
	if (sqlite3_prepare_v2(db, "SELECT value FROM meta WHERE key = ?1", -1,
			       &st, NULL) != SQLITE_OK)
		return dflt;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		v = sqlite3_column_int64(st, 0);
		*found = true;
	}
	sqlite3_finalize(st);
	return v;
}

int64_t tc_index_meta_get(struct tc_index *ix, const char *key, int64_t dflt)
{
	bool found;

	return meta_get(ix->db, key, dflt, &found);
}

int tc_index_meta_set(struct tc_index *ix, const char *key, int64_t value)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_META_SET);

	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, value);
	return tc_ix_step_done(ix, st);
}

int tc_index_dir_flags(struct tc_index *ix, int64_t *flags)
{
	sqlite3_stmt *st;
	bool found;
	int rc;

	/* Kept in meta once known: scanning every inode for them took
	 * seconds per mount at a million entries. */
	*flags = meta_get(ix->db, "dir_flags", 0, &found);
	if (found)
		return 0;
	rc = sqlite3_prepare_v2(ix->db,
				"SELECT (SELECT 1 FROM inode WHERE lru IS NULL"
				" AND schema IS NOT NULL LIMIT 1),"
				" (SELECT 1 FROM inode WHERE lru IS NULL"
				" AND ttl IS NOT NULL LIMIT 1)",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return tc_ix_errno(rc);
	if (sqlite3_step(st) == SQLITE_ROW)
		*flags = (sqlite3_column_type(st, 0) != SQLITE_NULL
				  ? TC_DIR_SCHEMA
				  : 0) |
			 (sqlite3_column_type(st, 1) != SQLITE_NULL ? TC_DIR_TTL
								    : 0);
	sqlite3_finalize(st);
	return tc_index_meta_set(ix, "dir_flags", *flags);
}

/* ------------------------------------------------------------------ */
/* Opening                                                            */
/* ------------------------------------------------------------------ */

static int64_t pragma_int(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;
	int64_t v = -1;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int64(st, 0);
		sqlite3_finalize(st);
	}
	return v;
}

/* Upgrade an index of format @from to TC_FORMAT_VERSION, one step at a
 * time, inside the opening transaction (the tables new in a format are
 * made by schema_sql already). */
static int migrate(struct tc_index *ix, int64_t from)
{
	int rc = 0;

	/* 1 -> 2: contents in chunks (the chunk table, inode.nchunks). */
	if (from < 2 && pragma_int(ix->db, "SELECT count(*) FROM"
					   " pragma_table_info('inode') WHERE"
					   " name = 'nchunks'") == 0)
		rc = tc_ix_exec(ix, "ALTER TABLE inode ADD COLUMN nchunks INTEGER");
	if (!rc)
		rc = tc_ix_exec(ix, "UPDATE meta SET value = 2 WHERE key = 'format'");
	return rc;
}

static int create_root(struct tc_index *ix)
{
	int64_t now = tc_base_now(ix->base);
	char sql[512];

	snprintf(sql, sizeof(sql),
		 "INSERT INTO inode(ino, mode, uid, gid, nlink, atime, mtime,"
		 " ctime, schema) VALUES(%d, %u, %u, %u, 2, %lld, %lld, %lld,"
		 " NULL);"
		 "INSERT INTO meta(key, value) VALUES('format', %d);",
		 TC_ROOT_INO, (unsigned)(S_IFDIR | 0755), (unsigned)getuid(),
		 (unsigned)getgid(), (long long)now, (long long)now,
		 (long long)now, TC_FORMAT_VERSION);
	return tc_ix_exec(ix, sql);
}

static int count_sizes(struct tc_index *ix, struct tc_index_counters *c)
{
	sqlite3_stmt *st;
	int rc;

	rc = sqlite3_prepare_v2(ix->db,
				"SELECT (SELECT count(*) FROM inode WHERE lru"
				" IS NOT NULL AND nlink > 0),"
				" (SELECT coalesce(sum(size), 0) FROM inode"
				" WHERE lru IS NOT NULL AND nlink > 0),"
				" (SELECT coalesce(sum(size), 0) FROM blob)",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return tc_ix_errno(rc);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		c->disk_items = (uint64_t)sqlite3_column_int64(st, 0);
		c->disk_bytes = (uint64_t)sqlite3_column_int64(st, 1);
		c->blob_bytes = (uint64_t)sqlite3_column_int64(st, 2);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	return tc_ix_errno(rc);
}

/*
 * After a clean shutdown the WAL was checkpointed and removed, so the
 * database file must hold exactly page_count pages: a cheap check that
 * catches a truncated index without reading it all (quick_check is O(size):
 * seconds per mount at a million entries).
 */
static int size_check(struct tc_index *ix)
{
	int64_t pages = pragma_int(ix->db, "PRAGMA page_count");
	int64_t page_size = pragma_int(ix->db, "PRAGMA page_size");
	struct stat sb;

	if (pages < 0 || page_size <= 0 || stat(ix->path, &sb))
		return -EPROTO;
	return sb.st_size < pages * page_size ? -EPROTO : 0;
}

/* SQLite's own structural check of the index; -EPROTO when it fails. */
static int quick_check(struct tc_index *ix)
{
	sqlite3_stmt *st;
	int rc;

	rc = sqlite3_prepare_v2(ix->db, "PRAGMA quick_check", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return tc_ix_errno(rc);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		rc = strcmp((const char *)sqlite3_column_text(st, 0), "ok")
			     ? -EPROTO
			     : 0;
	else
		rc = tc_ix_errno(rc) ? tc_ix_errno(rc) : -EPROTO;
	sqlite3_finalize(st);
	return rc;
}

/* Counters kept in meta by a clean shutdown, or recomputed. */
static int restore_counters(struct tc_index *ix, struct tc_index_counters *c)
{
	bool f1, f2, f3;

	if (ix->clean) {
		c->disk_bytes = (uint64_t)meta_get(ix->db, "disk_bytes", 0, &f1);
		c->disk_items = (uint64_t)meta_get(ix->db, "disk_items", 0, &f2);
		c->blob_bytes = (uint64_t)meta_get(ix->db, "blob_bytes", 0, &f3);
		if (f1 && f2 && f3)
			return 0;
	}
	return count_sizes(ix, c);
}

/* SQLite's allocator keeps global usage statistics by default, under a
 * process-wide mutex taken by every malloc and free: dozens per statement.
 * Nothing here reads them. Effective only before SQLite initialises
 * (the first open of the process); later calls are refused, harmlessly. */
static void sqlite_setup(void)
{
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

/* Open the database file and check that it is one, without changing it. */
static int connect(struct tc_index *ix, const char *store, int flags)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;
	int rc;

	pthread_once(&once, sqlite_setup);
	snprintf(ix->path, sizeof(ix->path), "%s/index.db", store);
	rc = sqlite3_open_v2(ix->path, &ix->db, flags | SQLITE_OPEN_NOMUTEX,
			     NULL);
	if (rc != SQLITE_OK)
		return tc_ix_errno(rc);
	sqlite3_extended_result_codes(ix->db, 0);
	sqlite3_busy_timeout(ix->db, 5000);
	return tc_ix_exec(ix, "SELECT count(*) FROM sqlite_master");
}

static int prepare_all(struct tc_index *ix)
{
	ix->st = calloc(ST__COUNT, sizeof(*ix->st));
	if (!ix->st)
		return -ENOMEM;
	for (int i = 0; i < ST__COUNT; i++) {
		int rc = sqlite3_prepare_v3(ix->db, stmt_sql[i], -1,
					    SQLITE_PREPARE_PERSISTENT,
					    &ix->st[i], NULL);
		if (rc != SQLITE_OK) {
			tc_logb(ix->base, TC_LOG_ERR,
				"index: preparing statement %d: %s", i,
				sqlite3_errmsg(ix->db));
			return tc_ix_errno(rc);
		}
	}
	return 0;
}

int tc_index_open(struct tc_index *ix, const char *store,
		  const struct tc_base *base, struct tc_mutex *lock,
		  bool sync_off, bool create, struct tc_index_counters *counters)
{
	char wal[4200];
	bool found, wal_left, f;
	int64_t format;
	int rc;

	ix->base = base;
	ix->lock = lock;
	ix->wal_fd = -1;
	snprintf(wal, sizeof(wal), "%s/index.db-wal", store);
	wal_left = access(wal, F_OK) == 0; /* a crash left it */
	rc = connect(ix, store, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
	if (rc)
		return rc;
	/* The store lock makes this process the index's only user: exclusive
	 * locking spares every transaction its fcntl() lock calls and keeps
	 * the WAL index in heap memory instead of a shared -shm mapping. It
	 * must be set before WAL mode is entered. sync=never: a pure cache,
	 * not even checkpoints fsync. */
	rc = tc_ix_exec(ix, "PRAGMA locking_mode=EXCLUSIVE;"
			    "PRAGMA journal_mode=WAL;"
			    "PRAGMA synchronous=NORMAL;"
			    "PRAGMA cache_size=-16384;"
			    "PRAGMA temp_store=MEMORY;");
	if (!rc && sync_off)
		rc = tc_ix_exec(ix, "PRAGMA synchronous=OFF");
	if (rc)
		return rc;
	format = meta_get(ix->db, "format", 0, &found);
	if (found && format > TC_FORMAT_VERSION)
		return -EPROTONOSUPPORT;
	rc = tc_ix_exec(ix, "BEGIN IMMEDIATE");
	if (rc)
		return rc;
	rc = tc_ix_exec(ix, schema_sql);
	if (!rc && !found)
		rc = create ? create_root(ix) : -EPROTO;
	else if (!rc && format < TC_FORMAT_VERSION)
		rc = migrate(ix, format);
	if (rc) {
		(void)!tc_ix_exec(ix, "ROLLBACK");
		return rc;
	}
	rc = tc_ix_exec(ix, "COMMIT");
	if (rc)
		return rc;
	/* The full check only after an unclean shutdown. */
	ix->clean = found && !wal_left &&
		    meta_get(ix->db, "clean", 0, &f) == 1;
	rc = ix->clean ? size_check(ix) : quick_check(ix);
	if (!rc)
		rc = prepare_all(ix);
	if (!rc)
		rc = restore_counters(ix, counters);
	/* Until tc_index_mark_clean() at close, the store is open. */
	if (!rc)
		rc = tc_ix_exec(ix, "INSERT OR REPLACE INTO meta(key, value)"
				    " VALUES('clean', 0)");
	ix->ready = !rc;
	return rc;
}

int tc_index_check_open(struct tc_index *ix, const char *store,
			const struct tc_base *base)
{
	int rc;

	ix->base = base;
	ix->lock = NULL;
	ix->wal_fd = -1;
	snprintf(ix->path, sizeof(ix->path), "%s/index.db", store);
	if (access(ix->path, F_OK))
		return -ENOENT;
	rc = connect(ix, store, SQLITE_OPEN_READWRITE);
	if (!rc)
		rc = quick_check(ix);
	if (!rc)
		rc = tc_ix_exec(ix, "CREATE TEMP TABLE bad(ino INTEGER"
				    " PRIMARY KEY)");
	return rc;
}

void tc_index_close(struct tc_index *ix)
{
	ix->ready = false;
	if (ix->wal_fd >= 0)
		close(ix->wal_fd);
	ix->wal_fd = -1;
	if (ix->st) {
		for (int i = 0; i < ST__COUNT; i++)
			sqlite3_finalize(ix->st[i]);
		free(ix->st);
		ix->st = NULL;
	}
	if (ix->db) {
		sqlite3_close(ix->db);
		ix->db = NULL;
	}
}

/* ------------------------------------------------------------------ */
/* Transactions                                                       */
/* ------------------------------------------------------------------ */

int tc_index_begin(struct tc_index *ix)
{
	return tc_ix_step_done(ix, tc_ix_stmt(ix, ST_BEGIN));
}

int tc_index_commit(struct tc_index *ix, bool durable)
{
	int rc;

	if (durable)
		(void)!tc_ix_exec(ix, "PRAGMA synchronous=FULL");
	rc = tc_ix_step_done(ix, tc_ix_stmt(ix, ST_COMMIT));
	if (durable)
		(void)!tc_ix_exec(ix, "PRAGMA synchronous=NORMAL");
	return rc;
}

void tc_index_rollback(struct tc_index *ix)
{
	if (!sqlite3_get_autocommit(ix->db))
		(void)!tc_ix_step_done(ix, tc_ix_stmt(ix, ST_ROLLBACK));
}

int tc_index_savepoint(struct tc_index *ix)
{
	return tc_ix_step_done(ix, tc_ix_stmt(ix, ST_SAVEPOINT));
}

int tc_index_release(struct tc_index *ix)
{
	return tc_ix_step_done(ix, tc_ix_stmt(ix, ST_RELEASE));
}

int tc_index_rollback_to(struct tc_index *ix)
{
	int rc = tc_ix_step_done(ix, tc_ix_stmt(ix, ST_ROLLBACK_TO));

	/* ROLLBACK TO keeps the savepoint open: release it, now empty. */
	if (!rc)
		rc = tc_index_release(ix);
	return rc;
}

int tc_index_wal_fd(struct tc_index *ix, int *fd)
{
	char path[sizeof(ix->path) + 8];
	struct stat st;

	assert_locked(ix);
	/* With exclusive locking the WAL lives as long as the connection;
	 * reopen it only if it was replaced (never, in practice). */
	if (ix->wal_fd >= 0 && fstat(ix->wal_fd, &st) == 0 && st.st_nlink > 0) {
		*fd = ix->wal_fd;
		return 0;
	}
	if (ix->wal_fd >= 0)
		close(ix->wal_fd);
	snprintf(path, sizeof(path), "%s-wal", ix->path);
	ix->wal_fd = open(path, O_RDONLY | O_CLOEXEC);
	if (ix->wal_fd < 0)
		return -errno;
	*fd = ix->wal_fd;
	return 0;
}

bool tc_index_in_txn(struct tc_index *ix)
{
	assert_locked(ix);
	return !sqlite3_get_autocommit(ix->db);
}

int tc_index_checkpoint(struct tc_index *ix)
{
	assert_locked(ix);
	return tc_ix_exec(ix, "PRAGMA wal_checkpoint(PASSIVE)");
}

int tc_index_mark_clean(struct tc_index *ix, const struct tc_index_counters *c)
{
	int rc = tc_index_begin(ix);

	if (rc)
		return rc;
	rc = tc_index_meta_set(ix, "disk_bytes", (int64_t)c->disk_bytes);
	if (!rc)
		rc = tc_index_meta_set(ix, "disk_items", (int64_t)c->disk_items);
	if (!rc)
		rc = tc_index_meta_set(ix, "blob_bytes", (int64_t)c->blob_bytes);
	if (!rc)
		rc = tc_index_meta_set(ix, "clean", 1);
	if (!rc)
		rc = tc_index_commit(ix, true);
	if (rc)
		tc_index_rollback(ix);
	return rc;
}
