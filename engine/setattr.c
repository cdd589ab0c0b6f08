/* SPDX-License-Identifier: MIT */
/*
 * Changing a file without write(2): setattr (truncation, mode, owner,
 * times) and fallocate (allocate, keep-size, punch-hole, zero-range).
 *
 * Both go through the node's shared dirty state (content.c) like writes
 * do, so every handle sees the change at once and it is published with
 * the rest. A truncation without a writable handle is published at once
 * (nobody else would); fallocate that changes neither the bytes nor the
 * size creates no dirty state. The contents hold no holes: punched and
 * zeroed ranges are zeros, and allocation beyond the size zero-fills.
 * Metadata changes are one operation each (txn.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>

#include "engine_i.h"

static int setattr_size(struct tc_engine *eng, struct tc_node *n,
			uint64_t size, struct tc_file *f)
{
	bool writers, had_dirty;
	int rc;

	if (S_ISDIR(n->body->meta.mode))
		return -EISDIR;
	if (!S_ISREG(n->body->meta.mode))
		return -EINVAL;
	if (eng->disk_size && size > eng->disk_size)
		return -EFBIG;
	tc_mutex_lock(&n->body->lock);
	tc_lock(eng);
	writers = n->body->nwriters > 0;
	tc_unlock(eng);
	had_dirty = n->body->dirty != NULL;
	rc = tc_content_dirty_begin_nlocked(eng, n, size == 0);
	if (!rc)
		rc = tc_dirty_truncate(&eng->blobs, n->body->dirty, size);
	if (!rc) {
		n->body->dirty->mtime = n->body->dirty->touched = tc_now(eng);
		n->body->dirty->written = true;
	}
	/* Without a writable handle nobody else will publish it: publish
	 * now, and when that fails the truncation must not stay visible.
	 * Unless writes come without handles: then an O_TRUNC open is this
	 * truncate, and the writes that follow complete the version. */
	if (!writers && !eng->handleless &&
	    (!f || (f->flags & O_ACCMODE) == O_RDONLY)) {
		if (!rc)
			rc = tc_content_publish_nlocked(eng, n, false);
		if (rc && !had_dirty && n->body->dirty)
			tc_content_dirty_end_nlocked(eng, n);
	}
	tc_mutex_unlock(&n->body->lock);
	return rc;
}

/* The bits of a SETATTR that only sets times. */
#define TIMES_ONLY                                                           \
	(TC_SET_ATIME | TC_SET_MTIME | TC_SET_ATIME_NOW | TC_SET_MTIME_NOW |  \
	 TC_SET_CTIME)

static bool has_dirty(struct tc_node *n)
{
	bool dirty;

	tc_mutex_lock(&n->body->lock);
	dirty = n->body->dirty != NULL;
	tc_mutex_unlock(&n->body->lock);
	return dirty;
}

static int64_t ts_ns(const struct timespec *ts)
{
	return (int64_t)ts->tv_sec * TC_NS_PER_S + ts->tv_nsec;
}

/* Apply the metadata bits of @to_set to @m. */
static void apply_meta(struct tc_inode *m, const struct stat *st, int to_set,
		       int64_t now)
{
	if (to_set & TC_SET_MODE)
		m->mode = (m->mode & S_IFMT) | (st->st_mode & 07777);
	if (to_set & TC_SET_UID)
		m->uid = st->st_uid;
	if (to_set & TC_SET_GID)
		m->gid = st->st_gid;
	if (to_set & TC_SET_ATIME)
		m->atime = ts_ns(&st->st_atim);
	if (to_set & TC_SET_ATIME_NOW)
		m->atime = now;
	if (to_set & (TC_SET_MTIME | TC_SET_MTIME_NOW))
		m->mtime = to_set & TC_SET_MTIME_NOW ? now
						      : ts_ns(&st->st_mtim);
	if (to_set & TC_SET_CTIME)
		m->ctime = ts_ns(&st->st_ctim);
	else if (to_set & ~TC_SET_SIZE)
		m->ctime = now;
}

int tc_setattr(struct tc_engine *eng, uint64_t ino, const struct stat *st,
	       int to_set, struct tc_file *f, struct tc_attr *out)
{
	struct tc_node *n;
	int rc;

	rc = tc_node_get(eng, ino, &n);
	if (rc)
		return rc;
	if (to_set & TC_SET_SIZE) {
		rc = setattr_size(eng, n, (uint64_t)st->st_size, f);
		if (rc)
			goto out;
	}
	if (to_set & ~TC_SET_SIZE) {
		/* The kernel's times at the end of a writeback: the publish
		 * that follows writes the row (one operation, not two). */
		bool later = eng->handleless && !(to_set & ~TIMES_ONLY) &&
			     has_dirty(n);
		tc_lock(eng);
		/* The kernel's ctime after an unlink: the row goes with the
		 * last reference (or, after a crash, at the next mount). */
		if (S_ISREG(n->body->meta.mode) && n->body->meta.nlink == 0)
			later = true;
		if (later) {
			apply_meta(&n->body->meta, st, to_set, tc_now(eng));
		} else if (!(rc = tc_txn_begin_locked(eng))) {
			apply_meta(&n->body->meta, st, to_set, tc_now(eng));
			rc = tc_txn_end_locked(
			    eng,
			    tc_index_inode_attrs(&eng->ix, &n->body->meta));
			if (rc)
				tc_node_reload_locked(eng, &n, 1);
		}
		/* Mode and owner travel with the name to other mounts. */
		if (!rc && to_set & (TC_SET_MODE | TC_SET_UID | TC_SET_GID) &&
		    S_ISREG(n->body->meta.mode))
			tc_sharedpub_names_locked(eng, n->ino);
		tc_unlock(eng);
	}
	/* Unpublished writes must not override an explicit mtime. */
	if (!rc && to_set & (TC_SET_MTIME | TC_SET_MTIME_NOW)) {
		tc_mutex_lock(&n->body->lock);
		if (n->body->dirty)
			n->body->dirty->mtime = n->body->meta.mtime;
		tc_mutex_unlock(&n->body->lock);
	}
out:
	if (!rc)
		tc_node_attr(eng, n, out);
	tc_node_unpin(eng, n);
	return rc;
}

/* ------------------------------------------------------------------ */
/* fallocate                                                          */
/* ------------------------------------------------------------------ */

/* fallocate on pinned node @n; @writable: opened for writing. */
static int fallocate_node(struct tc_engine *eng, struct tc_node *n,
			  bool writable, int mode, off_t off, off_t len)
{
	uint64_t size, end, zero_end;
	bool zero, grow;
	mode_t type;
	int rc = 0;

	if (off < 0 || len <= 0)
		return -EINVAL;
	switch (mode) {
	case 0:
	case FALLOC_FL_KEEP_SIZE:
		zero = false;
		break;
	case FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE:
	case FALLOC_FL_ZERO_RANGE:
	case FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE:
		zero = true;
		break;
	default:
		return -EOPNOTSUPP;
	}
	grow = !(mode & FALLOC_FL_KEEP_SIZE);
	if (!writable)
		return -EBADF;
	tc_lock(eng);
	type = n->body->meta.mode & S_IFMT;
	tc_unlock(eng);
	if (S_ISDIR(type))
		return -EISDIR;
	if (!S_ISREG(type))
		return -ENODEV;
	end = (uint64_t)off + (uint64_t)len; /* both < 2^63: no wrap */
	if (end > INT64_MAX || (eng->disk_size && end > eng->disk_size))
		return -EFBIG;

	tc_mutex_lock(&n->body->lock);
	if (n->body->dirty) {
		size = n->body->dirty->size;
	} else {
		tc_lock(eng);
		size = n->body->meta.size;
		tc_unlock(eng);
	}
	zero_end = end < size ? end : size;
	zero = zero && (uint64_t)off < zero_end;
	grow = grow && end > size;
	if (!zero && !grow)
		goto out; /* the bytes and the size stay: no dirty state */
	rc = tc_content_dirty_begin_nlocked(eng, n, false);
	if (!rc && zero)
		rc = tc_dirty_zero(&eng->blobs, n->body->dirty, (uint64_t)off,
				   zero_end - (uint64_t)off);
	if (!rc && grow)
		rc = tc_dirty_truncate(&eng->blobs, n->body->dirty, end);
	if (!rc) {
		n->body->dirty->mtime = n->body->dirty->touched = tc_now(eng);
		n->body->dirty->written = true;
	}
out:
	tc_mutex_unlock(&n->body->lock);
	return rc;
}

int tc_fallocate(struct tc_file *f, int mode, off_t off, off_t len)
{
	return fallocate_node(f->eng, f->node,
			      (f->flags & O_ACCMODE) != O_RDONLY, mode, off,
			      len);
}

int tc_fallocate_ino(struct tc_engine *eng, uint64_t ino, int mode, off_t off,
		     off_t len)
{
	struct tc_node *n;
	int rc;

	rc = tc_node_get(eng, ino, &n);
	if (rc)
		return rc;
	/* The kernel checked that the file is open for writing. */
	rc = fallocate_node(eng, n, true, mode, off, len);
	tc_node_unpin(eng, n);
	return rc;
}
