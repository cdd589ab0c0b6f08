/* SPDX-License-Identifier: MIT */
/*
 * Private to the index files (index.c, index_query.c, index_check.c): the
 * prepared statements and the helpers that run them. No other engine file
 * sees SQLite.
 */
#ifndef TC_INDEX_I_H
#define TC_INDEX_I_H

#include <sqlite3.h>

#include "engine_i.h"

/* Prepared statements, indexes into ix->st[] (SQL text in index.c). */
enum tc_stmt {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_SAVEPOINT,
	ST_RELEASE,
	ST_ROLLBACK_TO,
	ST_INODE_GET,
	ST_INODE_INSERT,
	ST_INODE_UPDATE,
	ST_INODE_LINKS,
	ST_INODE_ATTRS,
	ST_INODE_TIMES,
	ST_INODE_DELETE,
	ST_INODE_SET_LRU,
	ST_DENTRY_GET,
	ST_DENTRY_INSERT,
	ST_DENTRY_DELETE,
	ST_DENTRY_MOVE,
	ST_DENTRY_ANY_CHILD,
	ST_DENTRY_LIST,
	ST_DENTRY_PARENT,
	ST_DENTRY_OF_INO,
	ST_DENTRY_DELETE_INO,
	ST_BLOB_GET,
	ST_BLOB_DATA,
	ST_BLOB_REF,
	ST_BLOB_UNREF,
	ST_BLOB_DROP_LAST,
	ST_BLOB_INFO,
	ST_XATTR_GET,
	ST_XATTR_SET,
	ST_XATTR_DELETE,
	ST_XATTR_LIST,
	ST_XATTR_DELETE_INO,
	ST_TAG_ADD,
	ST_TAG_DELETE_INO,
	ST_TAG_LIST_INO,
	ST_TAG_INOS,
	ST_META_SET,
	ST_LRU_OLDEST,
	ST_EXPIRED,
	ST_ORPHANS,
	ST_READLINK,
	ST_PENDING_ADD,
	ST_PENDING_DEL,
	ST_PENDING_LIST,
	ST_XATTR_NAMES_LEN,
	ST_NONDIR_INOS,
	ST_SUBTREE_NAMES,
	ST_CHUNK_LIST,
	ST_CHUNK_SET,
	ST_CHUNK_CUT,
	ST_TAG_NEXT,
	ST_TAG_INOS_AFTER,
	ST_DENTRY_NAME,
	ST__COUNT
};

/* Columns of an inode row as tc_ix_inode_from_row() reads them. */
#define TC_INODE_COLS                                                          \
	"ino, mode, uid, gid, nlink, rdev, size, atime, mtime, ctime, hash, " \
	"ttl, ttl_mode, dttl, dttl_mode, expires, schema, lru, nchunks"

/* Statement @which, reset and unbound, ready to bind. Asserts the lock. */
sqlite3_stmt *tc_ix_stmt(struct tc_index *ix, enum tc_stmt which);
/* Step @st to its end and reset it: 0 or -errno (logged). */
int tc_ix_step_done(struct tc_index *ix, sqlite3_stmt *st) TC_WUR;
/* Run statement @which, whose only parameter is an integer, to its end. */
int tc_ix_exec_int(struct tc_index *ix, enum tc_stmt which,
		   int64_t v) TC_WUR;
int tc_ix_exec(struct tc_index *ix, const char *sql) TC_WUR;
int tc_ix_errno(int rc);
/* The errno for SQLite result @rc on @ix, from the failed system call when
 * there was one (ENOSPC for a full filesystem, whatever SQLite calls it). */
int tc_ix_fail(struct tc_index *ix, int rc);
void tc_ix_inode_from_row(sqlite3_stmt *st, int col, struct tc_inode *out);
/* Step the bound statement @st to its end, collecting its first column as
 * integers into a new array (*out, freed by the caller). -ENOMEM. */
int tc_ix_collect(sqlite3_stmt *st, uint64_t **out, size_t *count) TC_WUR;
/* Step the bound @st, collecting up to @max first-column integers. */
int tc_ix_collect_max(struct tc_index *ix, sqlite3_stmt *st, uint64_t *out,
		      size_t max, size_t *count) TC_WUR;

#endif /* TC_INDEX_I_H */
