/* SPDX-License-Identifier: MIT */
/*
 * The index's queries beyond the inode rows: names (dentries), blob rows and
 * pending blob files, user.* attributes, tags (by entry, and by tag: the
 * tags in use and who carries one), the path of a directory, and the scans
 * that eviction, expiry and flush walk. Each function runs prepared statements of index.c
 * under the engine lock and returns 0 or -errno; iterations call back per
 * row, and collections return arrays the caller frees.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "index_i.h"

/* ------------------------------------------------------------------ */
/* Inode rows (the rest of them)                                      */
/* ------------------------------------------------------------------ */

int tc_index_inode_purge(struct tc_index *ix, uint64_t ino)
{
	int rc = tc_ix_exec_int(ix, ST_INODE_DELETE, (int64_t)ino);

	if (!rc)
		rc = tc_ix_exec_int(ix, ST_XATTR_DELETE_INO, (int64_t)ino);
	if (!rc)
		rc = tc_ix_exec_int(ix, ST_TAG_DELETE_INO, (int64_t)ino);
	return rc;
}

int tc_index_last_ino(struct tc_index *ix, uint64_t *ino)
{
	sqlite3_stmt *st;
	int rc;

	rc = sqlite3_prepare_v2(ix->db,
				"SELECT max(coalesce((SELECT seq FROM"
				" sqlite_sequence WHERE name = 'inode'), 0),"
				" coalesce((SELECT max(ino) FROM inode), 0))",
				-1, &st, NULL);
	if (rc != SQLITE_OK)
		return tc_ix_errno(rc);
	rc = sqlite3_step(st);
	*ino = rc == SQLITE_ROW ? (uint64_t)sqlite3_column_int64(st, 0) : 0;
	sqlite3_finalize(st);
	return rc == SQLITE_ROW ? 0 : tc_ix_errno(rc);
}

int tc_index_set_lru(struct tc_index *ix, uint64_t ino, int64_t lru,
		     int64_t expires)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_INODE_SET_LRU);

	sqlite3_bind_int64(st, 1, (int64_t)ino);
	sqlite3_bind_int64(st, 2, lru);
	if (expires > 0)
		sqlite3_bind_int64(st, 3, expires);
	return tc_ix_step_done(ix, st);
}

int tc_index_readlink(struct tc_index *ix, uint64_t ino, char *buf,
		      size_t size)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_READLINK);
	int rc;

	sqlite3_bind_int64(st, 1, (int64_t)ino);
	rc = sqlite3_step(st) == SQLITE_ROW ? 0 : -EIO;
	if (!rc) {
		size_t len = (size_t)sqlite3_column_bytes(st, 0);
		if (len + 1 > size) {
			rc = -ERANGE;
		} else {
			if (len)
				memcpy(buf, sqlite3_column_blob(st, 0), len);
			buf[len] = '\0';
		}
	}
	sqlite3_reset(st);
	return rc;
}

int tc_index_orphans(struct tc_index *ix, uint64_t **out, size_t *count)
{
	return tc_ix_collect(tc_ix_stmt(ix, ST_ORPHANS), out, count);
}

/* ------------------------------------------------------------------ */
/* Names                                                              */
/* ------------------------------------------------------------------ */

static void bind_name(sqlite3_stmt *st, int col, const char *name)
{
	sqlite3_bind_blob(st, col, name, (int)strlen(name), SQLITE_STATIC);
}

int tc_index_dentry_get(struct tc_index *ix, uint64_t parent, const char *name,
			uint64_t *ino)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_DENTRY_GET);
	int rc;

	sqlite3_bind_int64(st, 1, (int64_t)parent);
	bind_name(st, 2, name);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*ino = (uint64_t)sqlite3_column_int64(st, 0);
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE ? -ENOENT : tc_ix_errno(rc);
	}
	sqlite3_reset(st);
	return rc;
}

int tc_index_dentry_insert(struct tc_index *ix, uint64_t parent,
			   const char *name, uint64_t ino)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_DENTRY_INSERT);

	sqlite3_bind_int64(st, 1, (int64_t)parent);
	bind_name(st, 2, name);
	sqlite3_bind_int64(st, 3, (int64_t)ino);
	return tc_ix_step_done(ix, st);
}

int tc_index_dentry_delete(struct tc_index *ix, uint64_t parent,
			   const char *name)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_DENTRY_DELETE);

	sqlite3_bind_int64(st, 1, (int64_t)parent);
	bind_name(st, 2, name);
	return tc_ix_step_done(ix, st);
}

int tc_index_dentry_move(struct tc_index *ix, uint64_t p1, const char *n1,
			 uint64_t p2, const char *n2)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_DENTRY_MOVE);

	sqlite3_bind_int64(st, 1, (int64_t)p1);
	bind_name(st, 2, n1);
	sqlite3_bind_int64(st, 3, (int64_t)p2);
	bind_name(st, 4, n2);
	return tc_ix_step_done(ix, st);
}

int tc_index_dentries_drop(struct tc_index *ix, uint64_t ino)
{
	return tc_ix_exec_int(ix, ST_DENTRY_DELETE_INO, (int64_t)ino);
}

int tc_index_parent_of(struct tc_index *ix, uint64_t ino, uint64_t *parent)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_DENTRY_PARENT);
	int rc;

	sqlite3_bind_int64(st, 1, (int64_t)ino);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*parent = (uint64_t)sqlite3_column_int64(st, 0);
		rc = 0;
	} else {
		rc = rc == SQLITE_DONE ? -ENOENT : tc_ix_errno(rc);
	}
	sqlite3_reset(st);
	return rc;
}

bool tc_index_dir_empty(struct tc_index *ix, uint64_t dir)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_DENTRY_ANY_CHILD);
	bool empty;

	sqlite3_bind_int64(st, 1, (int64_t)dir);
	empty = sqlite3_step(st) != SQLITE_ROW;
	sqlite3_reset(st);
	return empty;
}

/* Call @fn for each row of @st: (parent, name[, ino]) columns. */
static int each_name(struct tc_index *ix, sqlite3_stmt *st, uint64_t ino,
		     tc_index_name_fn fn, void *ctx)
{
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		uint64_t i = sqlite3_column_count(st) > 2
				     ? (uint64_t)sqlite3_column_int64(st, 2)
				     : ino;
		if (fn(ctx, (uint64_t)sqlite3_column_int64(st, 0),
		       sqlite3_column_blob(st, 1),
		       (size_t)sqlite3_column_bytes(st, 1), i)) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : tc_ix_errno(rc);
}

int tc_index_names_of(struct tc_index *ix, uint64_t ino, tc_index_name_fn fn,
		      void *ctx)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_DENTRY_OF_INO);

	sqlite3_bind_int64(st, 1, (int64_t)ino);
	return each_name(ix, st, ino, fn, ctx);
}

int tc_index_subtree_names(struct tc_index *ix, uint64_t dir,
			   tc_index_name_fn fn, void *ctx)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_SUBTREE_NAMES);

	sqlite3_bind_int64(st, 1, (int64_t)dir);
	return each_name(ix, st, 0, fn, ctx);
}

int tc_index_list_dir(struct tc_index *ix, uint64_t dir, uint64_t after_id,
		      tc_index_dirent_fn fn, void *ctx)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_DENTRY_LIST);
	int rc;

	sqlite3_bind_int64(st, 1, (int64_t)dir);
	sqlite3_bind_int64(st, 2, (int64_t)after_id);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct tc_inode m;
		tc_ix_inode_from_row(st, 2, &m);
		/* The callback may run other statements, not this one. */
		if (fn(ctx, (uint64_t)sqlite3_column_int64(st, 0),
		       sqlite3_column_blob(st, 1),
		       (size_t)sqlite3_column_bytes(st, 1), &m)) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : tc_ix_errno(rc);
}

/* ------------------------------------------------------------------ */
/* Blobs                                                              */
/* ------------------------------------------------------------------ */

static void bind_hash(sqlite3_stmt *st, int col, const uint8_t *hash)
{
	sqlite3_bind_blob(st, col, hash, TC_HASH_LEN, SQLITE_STATIC);
}

int64_t tc_index_blob_refs(struct tc_index *ix, const uint8_t *hash)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_BLOB_GET);
	int64_t refs = 0;

	bind_hash(st, 1, hash);
	if (sqlite3_step(st) == SQLITE_ROW)
		refs = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return refs;
}

int tc_index_blob_ref(struct tc_index *ix, const uint8_t *hash, uint64_t size,
		      const void *inline_data)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_BLOB_REF);

	bind_hash(st, 1, hash);
	sqlite3_bind_int64(st, 2, (int64_t)size);
	if (inline_data)
		sqlite3_bind_blob(st, 3, inline_data, (int)size, SQLITE_STATIC);
	return tc_ix_step_done(ix, st);
}

int tc_index_blob_unref(struct tc_index *ix, const uint8_t *hash,
			int64_t *refs, uint64_t *size, bool *file)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_BLOB_INFO);
	int64_t had = 0;
	int rc;

	*refs = 1;
	*size = 0;
	*file = false;
	bind_hash(st, 1, hash);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		had = sqlite3_column_int64(st, 0);
		*size = (uint64_t)sqlite3_column_int64(st, 1);
		*file = sqlite3_column_int(st, 2) != 0;
	}
	sqlite3_reset(st);
	if (rc == SQLITE_DONE)
		return 0;
	if (rc != SQLITE_ROW)
		return tc_ix_errno(rc);
	if (had <= 1) {
		/* The last one: the row goes (an update would rewrite its
		 * inline data only for the delete to follow). */
		st = tc_ix_stmt(ix, ST_BLOB_DROP_LAST);
		bind_hash(st, 1, hash);
		rc = tc_ix_step_done(ix, st);
		if (!rc)
			*refs = 0;
		return rc;
	}
	st = tc_ix_stmt(ix, ST_BLOB_UNREF);
	bind_hash(st, 1, hash);
	rc = tc_ix_step_done(ix, st);
	if (!rc)
		*refs = had - 1;
	return rc;
}

int tc_index_blob_data(struct tc_index *ix, const uint8_t *hash, void *dst,
		       size_t len)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_BLOB_DATA);
	int rc = -ENOENT;

	bind_hash(st, 1, hash);
	if (sqlite3_step(st) == SQLITE_ROW) {
		const void *data = sqlite3_column_blob(st, 0);
		rc = -EIO;
		if ((size_t)sqlite3_column_bytes(st, 0) == len) {
			if (len)
				memcpy(dst, data, len);
			rc = 0;
		}
	}
	sqlite3_reset(st);
	return rc;
}

bool tc_index_blob_is_inline(struct tc_index *ix, const uint8_t *hash)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_BLOB_DATA);
	bool found;

	bind_hash(st, 1, hash);
	found = sqlite3_step(st) == SQLITE_ROW;
	sqlite3_reset(st);
	return found;
}

static int exec_hash(struct tc_index *ix, enum tc_stmt which,
		     const uint8_t *hash)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, which);

	bind_hash(st, 1, hash);
	return tc_ix_step_done(ix, st);
}

int tc_index_pending_add(struct tc_index *ix, const uint8_t *hash)
{
	return exec_hash(ix, ST_PENDING_ADD, hash);
}

int tc_index_pending_del(struct tc_index *ix, const uint8_t *hash)
{
	return exec_hash(ix, ST_PENDING_DEL, hash);
}

int tc_index_pending_list(struct tc_index *ix, uint8_t (**out)[TC_HASH_LEN],
			  size_t *count)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_PENDING_LIST);
	uint8_t (*v)[TC_HASH_LEN] = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	while (sqlite3_step(st) == SQLITE_ROW) {
		if (sqlite3_column_bytes(st, 0) != TC_HASH_LEN)
			continue;
		if (n == cap) {
			void *nv;
			cap = cap ? cap * 2 : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				rc = -ENOMEM;
				break;
			}
			v = nv;
		}
		memcpy(v[n++], sqlite3_column_blob(st, 0), TC_HASH_LEN);
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

/* ------------------------------------------------------------------ */
/* Chunks                                                             */
/* ------------------------------------------------------------------ */

/* Step @st collecting column @col as hashes into a new array. */
static int collect_hashes(sqlite3_stmt *st, int col,
			  uint8_t (**out)[TC_HASH_LEN], size_t *count,
			  bool check_seq)
{
	uint8_t (*v)[TC_HASH_LEN] = NULL;
	size_t n = 0, cap = 0;
	int rc;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (sqlite3_column_bytes(st, col) != TC_HASH_LEN ||
		    (check_seq && sqlite3_column_int64(st, 0) != (int64_t)n)) {
			rc = SQLITE_CORRUPT;
			break;
		}
		if (n == cap) {
			void *nv;
			cap = cap ? cap * 2 : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				rc = SQLITE_NOMEM;
				break;
			}
			v = nv;
		}
		memcpy(v[n++], sqlite3_column_blob(st, col), TC_HASH_LEN);
	}
	sqlite3_reset(st);
	if (rc != SQLITE_DONE) {
		free(v);
		*out = NULL;
		*count = 0;
		return rc == SQLITE_CORRUPT ? -EIO : tc_ix_errno(rc);
	}
	*out = v;
	*count = n;
	return 0;
}

int tc_index_chunks(struct tc_index *ix, uint64_t ino,
		    uint8_t (**out)[TC_HASH_LEN], size_t *count)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_CHUNK_LIST);

	sqlite3_bind_int64(st, 1, (int64_t)ino);
	return collect_hashes(st, 1, out, count, true);
}

int tc_index_chunk_set(struct tc_index *ix, uint64_t ino, uint64_t idx,
		       const uint8_t *hash)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_CHUNK_SET);

	sqlite3_bind_int64(st, 1, (int64_t)ino);
	sqlite3_bind_int64(st, 2, (int64_t)idx);
	sqlite3_bind_blob(st, 3, hash, TC_HASH_LEN, SQLITE_STATIC);
	return tc_ix_step_done(ix, st);
}

int tc_index_chunks_cut(struct tc_index *ix, uint64_t ino, uint64_t idx,
			uint8_t (**out)[TC_HASH_LEN], size_t *count)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_CHUNK_CUT);

	sqlite3_bind_int64(st, 1, (int64_t)ino);
	sqlite3_bind_int64(st, 2, (int64_t)idx);
	return collect_hashes(st, 0, out, count, false);
}

/* ------------------------------------------------------------------ */
/* user.* attributes                                                  */
/* ------------------------------------------------------------------ */

ssize_t tc_index_xattr_get(struct tc_index *ix, uint64_t ino, const char *name,
			   void *buf, size_t size)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_XATTR_GET);
	ssize_t rc = -ENODATA;

	sqlite3_bind_int64(st, 1, (int64_t)ino);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW) {
		size_t len = (size_t)sqlite3_column_bytes(st, 0);
		if (size == 0) {
			rc = (ssize_t)len;
		} else if (len > size) {
			rc = -ERANGE;
		} else {
			if (len)
				memcpy(buf, sqlite3_column_blob(st, 0), len);
			rc = (ssize_t)len;
		}
	}
	sqlite3_reset(st);
	return rc;
}

int tc_index_xattr_set(struct tc_index *ix, uint64_t ino, const char *name,
		       const void *value, size_t size)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_XATTR_SET);

	sqlite3_bind_int64(st, 1, (int64_t)ino);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	sqlite3_bind_blob(st, 3, size ? value : "", (int)size, SQLITE_STATIC);
	return tc_ix_step_done(ix, st);
}

int64_t tc_index_xattr_names_len(struct tc_index *ix, uint64_t ino,
				 const char *name)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_XATTR_NAMES_LEN);
	int64_t used = 0;

	sqlite3_bind_int64(st, 1, (int64_t)ino);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		used = sqlite3_column_int64(st, 0);
	sqlite3_reset(st);
	return used;
}

size_t tc_index_xattr_list(struct tc_index *ix, uint64_t ino, char *buf,
			   size_t size)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_XATTR_LIST);
	size_t used = 0;

	sqlite3_bind_int64(st, 1, (int64_t)ino);
	while (sqlite3_step(st) == SQLITE_ROW) {
		size_t len = (size_t)sqlite3_column_bytes(st, 0) + 1;
		if (size && used + len <= size)
			memcpy(buf + used, sqlite3_column_text(st, 0), len);
		used += len;
	}
	sqlite3_reset(st);
	return used;
}

int tc_index_xattr_delete(struct tc_index *ix, uint64_t ino, const char *name)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_XATTR_DELETE);
	int rc;

	sqlite3_bind_int64(st, 1, (int64_t)ino);
	sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
	rc = tc_ix_step_done(ix, st);
	if (!rc && sqlite3_changes(ix->db) == 0)
		rc = -ENODATA;
	return rc;
}

/* ------------------------------------------------------------------ */
/* Tags                                                               */
/* ------------------------------------------------------------------ */

int tc_index_tags_set(struct tc_index *ix, uint64_t ino, char tags[][65],
		      int count)
{
	int rc = tc_ix_exec_int(ix, ST_TAG_DELETE_INO, (int64_t)ino);

	for (int i = 0; !rc && i < count; i++) {
		sqlite3_stmt *st = tc_ix_stmt(ix, ST_TAG_ADD);
		sqlite3_bind_text(st, 1, tags[i], -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (int64_t)ino);
		sqlite3_bind_int(st, 3, i);
		rc = tc_ix_step_done(ix, st);
	}
	return rc;
}

int tc_index_tags_of(struct tc_index *ix, uint64_t ino, tc_index_tag_fn fn,
		     void *ctx)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_TAG_LIST_INO);
	int rc;

	sqlite3_bind_int64(st, 1, (int64_t)ino);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (fn(ctx, (const char *)sqlite3_column_text(st, 0))) {
			rc = SQLITE_DONE;
			break;
		}
	}
	sqlite3_reset(st);
	return rc == SQLITE_DONE ? 0 : tc_ix_errno(rc);
}

int tc_index_tag_inos(struct tc_index *ix, const char *tag, uint64_t **out,
		      size_t *count)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_TAG_INOS);

	sqlite3_bind_text(st, 1, tag, -1, SQLITE_STATIC);
	return tc_ix_collect(st, out, count);
}

int tc_index_tag_inos_after(struct tc_index *ix, const char *tag,
			    uint64_t after, uint64_t *out, size_t max,
			    size_t *count)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_TAG_INOS_AFTER);

	sqlite3_bind_text(st, 1, tag, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, (int64_t)after);
	sqlite3_bind_int64(st, 3, (int64_t)max);
	return tc_ix_collect_max(ix, st, out, max, count);
}

int tc_index_tag_next(struct tc_index *ix, const char *after, char out[65])
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_TAG_NEXT);
	int rc;

	sqlite3_bind_text(st, 1, after, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
		snprintf(out, 65, "%s",
			 (const char *)sqlite3_column_text(st, 0));
		rc = 0;
	} else {
		rc = rc == SQLITE_ROW || rc == SQLITE_DONE ? -ENOENT
							   : tc_ix_errno(rc);
	}
	sqlite3_reset(st);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Paths                                                              */
/* ------------------------------------------------------------------ */

/* Directories deeper than this are taken for a loop (corruption). */
#define PATH_DEPTH_MAX 100000

int tc_index_dir_path(struct tc_index *ix, uint64_t dir, char **out,
		      size_t *len)
{
	char *path = NULL;
	size_t n = 0;
	int depth = 0, rc = 0;

	/* Walk up, putting each directory's name in front of the path. */
	while (!rc && dir != TC_ROOT_INO) {
		sqlite3_stmt *st = tc_ix_stmt(ix, ST_DENTRY_NAME);
		size_t nlen;
		char *p;

		sqlite3_bind_int64(st, 1, (int64_t)dir);
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW) {
			rc = rc == SQLITE_DONE ? -ENOENT : tc_ix_errno(rc);
			sqlite3_reset(st);
			break;
		}
		nlen = (size_t)sqlite3_column_bytes(st, 1);
		p = malloc(n + nlen + 2);
		if (!p) {
			rc = -ENOMEM;
		} else {
			p[0] = '/';
			if (nlen)
				memcpy(p + 1, sqlite3_column_blob(st, 1), nlen);
			if (n)
				memcpy(p + 1 + nlen, path, n);
			n += nlen + 1;
			p[n] = '\0';
			free(path);
			path = p;
			rc = 0;
		}
		dir = (uint64_t)sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
		if (!rc && ++depth > PATH_DEPTH_MAX)
			rc = -ELOOP;
	}
	if (!rc && !path)
		path = strdup("");
	if (!rc && !path)
		rc = -ENOMEM;
	if (rc) {
		free(path);
		path = NULL;
		n = 0;
	}
	*out = path;
	*len = n;
	return rc;
}

/* ------------------------------------------------------------------ */
/* Scans                                                              */
/* ------------------------------------------------------------------ */

int tc_index_lru_oldest(struct tc_index *ix, uint64_t *out, size_t max,
			size_t *count)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_LRU_OLDEST);

	sqlite3_bind_int64(st, 1, (int64_t)max);
	return tc_ix_collect_max(ix, st, out, max, count);
}

int tc_index_expired(struct tc_index *ix, int64_t now, uint64_t *out,
		     size_t max, size_t *count)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_EXPIRED);

	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int64(st, 2, (int64_t)max);
	return tc_ix_collect_max(ix, st, out, max, count);
}

int tc_index_nondirs(struct tc_index *ix, uint64_t after, uint64_t *out,
		     size_t max, size_t *count)
{
	sqlite3_stmt *st = tc_ix_stmt(ix, ST_NONDIR_INOS);

	sqlite3_bind_int64(st, 1, (int64_t)after);
	sqlite3_bind_int64(st, 2, (int64_t)max);
	return tc_ix_collect_max(ix, st, out, max, count);
}
