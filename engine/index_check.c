/* SPDX-License-Identifier: MIT */
/*
 * The offline check's queries (check.c): it opens the index on a
 * connection of its own (tc_index_check_open(), in index.c), marks the
 * inodes whose content cannot be trusted in a temporary table, compares
 * reference counts with what the inodes say, and repairs in one
 * transaction.
 */
#include <errno.h>
#include <stdio.h>

#include "index_i.h"

int tc_index_check_contents(struct tc_index *ix, tc_index_content_fn fn,
			    void *ctx)
{
	sqlite3_stmt *st;
	int rc;

	/* One blob per content up to a chunk; one per chunk beyond (whose
	 * size the blob row says). */
	rc = sqlite3_prepare_v2(ix->db,
				"SELECT i.ino, i.hash, i.size, b.data FROM inode i"
				" LEFT JOIN blob b ON b.hash = i.hash"
				" WHERE i.hash IS NOT NULL AND"
				" coalesce(i.nchunks, 0) < 2"
				" UNION ALL SELECT c.ino, c.hash,"
				" coalesce(b.size, -1), b.data FROM chunk c"
				" LEFT JOIN blob b ON b.hash = c.hash",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return tc_ix_errno(rc);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const uint8_t *h = sqlite3_column_blob(st, 1);
		bool inl = sqlite3_column_type(st, 3) != SQLITE_NULL;

		if (sqlite3_column_bytes(st, 1) != TC_HASH_LEN)
			h = NULL;
		fn(ctx, sqlite3_column_int64(st, 0), h,
		   (uint64_t)sqlite3_column_int64(st, 2),
		   inl ? sqlite3_column_blob(st, 3) : NULL,
		   inl ? (size_t)sqlite3_column_bytes(st, 3) : 0);
	}
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : tc_ix_errno(rc);
}

int tc_index_check_mark_bad(struct tc_index *ix, int64_t ino)
{
	sqlite3_stmt *st;
	int rc;

	rc = sqlite3_prepare_v2(ix->db, "INSERT OR IGNORE INTO bad(ino)"
					" VALUES(?1)", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return tc_ix_errno(rc);
	sqlite3_bind_int64(st, 1, ino);
	rc = sqlite3_step(st);
	sqlite3_finalize(st);
	return rc == SQLITE_DONE ? 0 : tc_ix_errno(rc);
}

int tc_index_check_refcounts(struct tc_index *ix, uint64_t *drift)
{
	sqlite3_stmt *st;
	int rc;

	/* what the rows say (for the report) and what remains once the
	 * untrustworthy entries are dropped (for the repair) */
	rc = tc_ix_exec(ix, "CREATE TEMP VIEW uses AS SELECT ino, hash, size"
			    " FROM inode WHERE hash IS NOT NULL AND"
			    " coalesce(nchunks, 0) < 2 UNION ALL SELECT c.ino,"
			    " c.hash, b.size FROM chunk c LEFT JOIN blob b ON"
			    " b.hash = c.hash;"
			    "CREATE TEMP TABLE want_all AS SELECT hash,"
			    " count(*) AS refs, max(size) AS size FROM uses"
			    " GROUP BY hash;"
			    "CREATE TEMP TABLE want AS SELECT hash, count(*)"
			    " AS refs, max(size) AS size FROM uses WHERE ino"
			    " NOT IN (SELECT ino FROM bad) GROUP BY hash");
	if (rc)
		return rc;
	rc = sqlite3_prepare_v2(ix->db,
				"SELECT (SELECT count(*) FROM blob b LEFT JOIN"
				" want_all w ON w.hash = b.hash WHERE w.refs IS"
				" NULL OR w.refs != b.refs) + (SELECT count(*)"
				" FROM want_all w WHERE w.hash NOT IN (SELECT"
				" hash FROM blob))",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return tc_ix_errno(rc);
	*drift = sqlite3_step(st) == SQLITE_ROW
			 ? (uint64_t)sqlite3_column_int64(st, 0)
			 : 0;
	sqlite3_finalize(st);
	return 0;
}

static int exists(struct tc_index *ix, const char *sql, const uint8_t *hash,
		  bool *out)
{
	sqlite3_stmt *st;
	int rc = sqlite3_prepare_v2(ix->db, sql, -1, &st, NULL);

	*out = false;
	if (rc != SQLITE_OK)
		return tc_ix_errno(rc);
	sqlite3_bind_blob(st, 1, hash, TC_HASH_LEN, SQLITE_STATIC);
	rc = sqlite3_step(st);
	*out = rc == SQLITE_ROW;
	sqlite3_finalize(st);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : tc_ix_errno(rc);
}

int tc_index_check_blob_state(struct tc_index *ix, const uint8_t *hash,
			      bool after_repair, bool *used, bool *pending)
{
	int rc;

	rc = exists(ix,
		    after_repair ? "SELECT 1 FROM want WHERE hash = ?1"
				 : "SELECT 1 FROM want_all WHERE hash = ?1",
		    hash, used);
	*pending = false;
	/* an index from before the pending table has none */
	if (!rc && !*used &&
	    exists(ix, "SELECT 1 FROM pending WHERE hash = ?1", hash, pending))
		*pending = false;
	return rc;
}

int tc_index_check_repair(struct tc_index *ix)
{
	return tc_ix_exec(ix,
			  "BEGIN IMMEDIATE;"
			  "DELETE FROM dentry WHERE ino IN (SELECT ino FROM bad);"
			  "DELETE FROM xattr WHERE ino IN (SELECT ino FROM bad);"
			  "DELETE FROM tag WHERE ino IN (SELECT ino FROM bad);"
			  "DELETE FROM chunk WHERE ino IN (SELECT ino FROM bad);"
			  "DELETE FROM inode WHERE ino IN (SELECT ino FROM bad);"
			  /* refcounts from the rows that remain; contents
			   * kept inside the index stay where they are */
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
