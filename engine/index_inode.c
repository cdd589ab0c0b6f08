/* SPDX-License-Identifier: MIT */
/*
 * Inode rows of the index (index.c has the connection and the schema): a
 * row read into struct tc_inode, with its optional columns (a NULL ttl,
 * mode, hash or schema is "unset"), and rows inserted and updated whole.
 * Every engine file that keeps an inode goes through these three calls.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "index_i.h"

static int64_t opt_col(sqlite3_stmt *st, int c)
{
	return sqlite3_column_type(st, c) == SQLITE_NULL
		       ? -1
		       : sqlite3_column_int64(st, c);
}

void tc_ix_inode_from_row(sqlite3_stmt *st, int c, struct tc_inode *o)
{
	const void *h;

	memset(o, 0, sizeof(*o));
	o->ino = (uint64_t)sqlite3_column_int64(st, c + 0);
	o->mode = (uint32_t)sqlite3_column_int64(st, c + 1);
	o->uid = (uint32_t)sqlite3_column_int64(st, c + 2);
	o->gid = (uint32_t)sqlite3_column_int64(st, c + 3);
	o->nlink = (uint32_t)sqlite3_column_int64(st, c + 4);
	o->rdev = (uint64_t)sqlite3_column_int64(st, c + 5);
	o->size = (uint64_t)sqlite3_column_int64(st, c + 6);
	o->atime = sqlite3_column_int64(st, c + 7);
	o->mtime = sqlite3_column_int64(st, c + 8);
	o->ctime = sqlite3_column_int64(st, c + 9);
	h = sqlite3_column_blob(st, c + 10);
	if (h && sqlite3_column_bytes(st, c + 10) == TC_HASH_LEN) {
		memcpy(o->hash, h, TC_HASH_LEN);
		o->hash_set = true;
	}
	o->ttl = opt_col(st, c + 11);
	o->ttl_mode = (int)opt_col(st, c + 12);
	o->dttl = opt_col(st, c + 13);
	o->dttl_mode = (int)opt_col(st, c + 14);
	o->expires = sqlite3_column_int64(st, c + 15);
	if (sqlite3_column_type(st, c + 16) != SQLITE_NULL)
		snprintf(o->schema, sizeof(o->schema), "%s",
			 (const char *)sqlite3_column_text(st, c + 16));
	o->lru = sqlite3_column_int64(st, c + 17);
	o->nchunks = (uint32_t)sqlite3_column_int64(st, c + 18);
}

int tc_index_inode_get(struct tc_index *ix, uint64_t ino, struct tc_inode *out)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_INODE_GET);
	int rc;

	sqlite3_bind_int64(st, 1, (int64_t)ino);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		tc_ix_inode_from_row(st, 0, out);
		rc = 0;
	} else if (rc == SQLITE_DONE) {
		rc = -ENOENT;
	} else {
		tc_logb(ix->base, TC_LOG_ERR, "index: %s",
			sqlite3_errmsg(ix->db));
		rc = tc_ix_errno(rc);
	}
	sqlite3_reset(st);
	return rc;
}

static void bind_opt_int(sqlite3_stmt *st, int col, int64_t v)
{
	if (v < 0)
		sqlite3_bind_null(st, col);
	else
		sqlite3_bind_int64(st, col, v);
}

static void bind_inode(sqlite3_stmt *st, const struct tc_inode *o)
{
	sqlite3_bind_int64(st, 2, o->mode);
	sqlite3_bind_int64(st, 3, o->uid);
	sqlite3_bind_int64(st, 4, o->gid);
	sqlite3_bind_int64(st, 5, o->nlink);
	sqlite3_bind_int64(st, 6, (int64_t)o->rdev);
	sqlite3_bind_int64(st, 7, (int64_t)o->size);
	sqlite3_bind_int64(st, 8, o->atime);
	sqlite3_bind_int64(st, 9, o->mtime);
	sqlite3_bind_int64(st, 10, o->ctime);
	if (o->hash_set)
		sqlite3_bind_blob(st, 11, o->hash, TC_HASH_LEN,
				  SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, 11);
	bind_opt_int(st, 12, o->ttl);
	bind_opt_int(st, 13, o->ttl_mode);
	bind_opt_int(st, 14, o->dttl);
	bind_opt_int(st, 15, o->dttl_mode);
	if (o->expires > 0)
		sqlite3_bind_int64(st, 16, o->expires);
	else
		sqlite3_bind_null(st, 16);
	if (o->schema[0])
		sqlite3_bind_text(st, 17, o->schema, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, 17);
	if (S_ISREG(o->mode))
		sqlite3_bind_int64(st, 18, o->lru);
	else
		sqlite3_bind_null(st, 18);
	if (o->nchunks > 1)
		sqlite3_bind_int64(st, 20, o->nchunks);
	else
		sqlite3_bind_null(st, 20);
}

void tc_index_inode_as_stored(struct tc_inode *o)
{
	/* What bind_inode() writes as NULL reads back as these. */
	o->ttl = o->ttl < 0 ? -1 : o->ttl;
	o->ttl_mode = o->ttl_mode < 0 ? -1 : o->ttl_mode;
	o->dttl = o->dttl < 0 ? -1 : o->dttl;
	o->dttl_mode = o->dttl_mode < 0 ? -1 : o->dttl_mode;
	if (!o->hash_set)
		memset(o->hash, 0, sizeof(o->hash));
	if (o->expires < 0)
		o->expires = 0;
	if (!S_ISREG(o->mode))
		o->lru = 0;
	if (o->nchunks < 2)
		o->nchunks = 0;
	o->target = NULL;
}

int tc_index_inode_insert(struct tc_index *ix, struct tc_inode *o)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_INODE_INSERT);
	int rc;

	assert(o->ino > 0);
	sqlite3_bind_int64(st, 1, (int64_t)o->ino);
	bind_inode(st, o);
	if (o->target)
		sqlite3_bind_blob(st, 19, o->target, (int)strlen(o->target),
				  SQLITE_TRANSIENT);
	rc = tc_ix_step_done(ix, st);
	return rc;
}

int tc_index_inode_update(struct tc_index *ix, const struct tc_inode *o)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_INODE_UPDATE);

	sqlite3_bind_int64(st, 1, (int64_t)o->ino);
	bind_inode(st, o);
	return tc_ix_step_done(ix, st);
}

/* Run the narrow update @id of @ino with the @n values @v as ?2, ?3... */
static int update_columns(struct tc_index *ix, enum tc_stmt id,
			  uint64_t ino, const int64_t *v, int n)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, id);

	sqlite3_bind_int64(st, 1, (int64_t)ino);
	for (int i = 0; i < n; i++)
		sqlite3_bind_int64(st, i + 2, v[i]);
	return tc_ix_step_done(ix, st);
}

int tc_index_inode_times(struct tc_index *ix, const struct tc_inode *o)
{
	const int64_t v[] = { o->mtime, o->ctime };

	return update_columns(ix, ST_INODE_TIMES, o->ino, v, 2);
}

int tc_index_inode_attrs(struct tc_index *ix, const struct tc_inode *o)
{
	const int64_t v[] = { o->mode,  o->uid,	  o->gid,
			      o->atime, o->mtime, o->ctime };

	return update_columns(ix, ST_INODE_ATTRS, o->ino, v, 6);
}

int tc_index_inode_links(struct tc_index *ix, const struct tc_inode *o)
{
	const int64_t v[] = { o->nlink, o->mtime, o->ctime };

	return update_columns(ix, ST_INODE_LINKS, o->ino, v, 3);
}
