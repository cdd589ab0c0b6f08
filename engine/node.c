/* SPDX-License-Identifier: MIT */
/*
 * The node table: an inode the kernel knows (lookup references) or that has
 * open handles is a struct tc_node in a hash table keyed by inode number. A
 * node is small; what it holds while in use is its body (nodebody.c): the
 * copy of the index row (node->body->meta), so that getattr and open of a
 * known inode do not touch SQLite, the shared dirty state of writers and
 * the loaded content of readers. Pinning a node gives it its body (read
 * from the index if it had none); when the last pin or handle goes, the
 * body becomes idle and the body cache decides how long it stays. A node
 * leaves the table when the kernel has forgotten it, no handle is open and
 * no thread pins it; if its link count is zero by then, its row and its
 * blob reference go too (unlinked-but-open files; passthrough_ll's
 * refcount mirroring the kernel's lookup count). With the committer
 * running they go with the next group commit, not on the FORGET that
 * follows every unlink: the row says nlink 0 meanwhile, which every query
 * already skips, and a crash leaves an orphan the next mount deletes.
 *
 * Also here, because they follow the nodes:
 *   - invalidation lists: changes the kernel did not make itself (eviction,
 *     expiry, flush, ...) are collected under the engine lock and handed to
 *     the daemon's callback after it is dropped;
 *   - paths: the mount-relative path of an inode, walked up its names (the
 *     shared tier keys its name records by path);
 *   - the access-time batch: LRU recency and sliding deadlines live in the
 *     node and reach the index in batches (tc_node_apply_atimes_locked), so
 *     a read never waits for a SQLite write.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_i.h"

/* ------------------------------------------------------------------ */
/* Invalidation                                                       */
/* ------------------------------------------------------------------ */

static int add_name(void *ctx, uint64_t parent, const char *name, size_t len,
		    uint64_t ino)
{
	tc_inval_add(ctx, parent, name, len, ino);
	return 0;
}

void tc_inval_names_locked(struct tc_engine *eng, uint64_t ino,
			   struct tc_inval_list *inv)
{
	(void)!tc_index_names_of(&eng->ix, ino, add_name, inv);
}

void tc_inval_deliver(struct tc_engine *eng, struct tc_inval_list *l)
{
	tc_inval_fn fn;
	void *ctx;

	pthread_mutex_lock(&eng->inval_lock);
	fn = eng->inval_fn;
	ctx = eng->inval_ctx;
	pthread_mutex_unlock(&eng->inval_lock);
	for (size_t i = 0; i < l->n; i++) {
		if (fn)
			fn(ctx, l->v[i].parent, l->v[i].name, l->v[i].ino);
		free(l->v[i].name);
	}
	free(l->v);
	memset(l, 0, sizeof(*l));
}

void tc_engine_set_inval(struct tc_engine *eng, tc_inval_fn fn, void *ctx)
{
	pthread_mutex_lock(&eng->inval_lock);
	eng->inval_fn = fn;
	eng->inval_ctx = ctx;
	pthread_mutex_unlock(&eng->inval_lock);
}

/* ------------------------------------------------------------------ */
/* Paths                                                              */
/* ------------------------------------------------------------------ */

/* Directory walks give up beyond this depth (a loop would be corruption). */
#define PATH_DEPTH_MAX 4096

struct first_name {
	uint64_t parent;
	char name[TC_NAME_MAX + 1];
	bool found;
};

static int take_first(void *ctx, uint64_t parent, const char *name,
		      size_t len, uint64_t ino)
{
	struct first_name *f = ctx;

	(void)ino;
	if (len > TC_NAME_MAX)
		return 0;
	memcpy(f->name, name, len);
	f->name[len] = '\0';
	f->parent = parent;
	f->found = true;
	return 1;
}

int tc_node_path_locked(struct tc_engine *eng, uint64_t ino, char *buf,
			size_t size)
{
	size_t pos = size - 1;
	int depth = 0;

	TC_ASSERT_LOCKED(eng);
	if (size < 2)
		return -ENAMETOOLONG;
	buf[pos] = '\0';
	while (ino != TC_ROOT_INO) {
		struct first_name f = { .found = false };
		size_t len;

		if (++depth > PATH_DEPTH_MAX ||
		    tc_index_names_of(&eng->ix, ino, take_first, &f) ||
		    !f.found)
			return -ENOENT;
		len = strlen(f.name);
		if (len + 1 > pos)
			return -ENAMETOOLONG;
		pos -= len;
		memcpy(buf + pos, f.name, len);
		buf[--pos] = '/';
		ino = f.parent;
	}
	if (pos == size - 1)
		buf[--pos] = '/'; /* the root itself */
	memmove(buf, buf + pos, size - pos);
	return 0;
}

/* ------------------------------------------------------------------ */
/* The table                                                          */
/* ------------------------------------------------------------------ */

/* One node per name the kernel holds: its bytes are the daemon's memory
 * at a million names (nodetab.c). */
_Static_assert(sizeof(struct tc_node) <= 40, "struct tc_node grew");

struct tc_node *tc_node_find_locked(struct tc_engine *eng, uint64_t ino)
{
	TC_ASSERT_LOCKED(eng);
	return tc_ntab_find(&eng->nodes, ino);
}

/* The miss of tc_node_get_locked(): a new node, or a body to load. */
static TC_NOINLINE int node_load_locked(struct tc_engine *eng, uint64_t ino,
					struct tc_node *n,
					const struct tc_inode *row,
					struct tc_node **out)
{
	bool fresh = !n;
	int rc;

	if (fresh) {
		n = tc_ntab_add(&eng->nodes, ino);
		if (!n)
			return -ENOMEM;
	}
	rc = tc_nbody_attach_locked(eng, n, row);
	if (rc) {
		if (fresh)
			tc_ntab_free(&eng->nodes,
				     tc_ntab_unlink(&eng->nodes, n));
		return rc;
	}
	n->pins++;
	*out = n;
	return 0;
}

int tc_node_get_locked(struct tc_engine *eng, uint64_t ino,
		       struct tc_node **out)
{
	struct tc_node *n = tc_node_find_locked(eng, ino);

	if (!n || !n->body)
		return node_load_locked(eng, ino, n, NULL, out);
	n->pins++;
	n->body->used = true;
	*out = n;
	return 0;
}

int tc_node_get_new_locked(struct tc_engine *eng, const struct tc_inode *row,
			   struct tc_node **out)
{
	struct tc_inode m = *row;

	tc_index_inode_as_stored(&m);
	return node_load_locked(eng, m.ino, tc_node_find_locked(eng, m.ino),
				&m, out);
}

int tc_node_hold_locked(struct tc_engine *eng, uint64_t ino)
{
	struct tc_node *n = tc_node_find_locked(eng, ino);

	if (!n)
		n = tc_ntab_add(&eng->nodes, ino);
	if (!n)
		return -ENOMEM;
	tc_node_ref_lookup(n);
	return 0;
}

int tc_node_meta_locked(struct tc_engine *eng, uint64_t ino,
			struct tc_inode *out)
{
	struct tc_node *n = tc_node_find_locked(eng, ino);

	if (n && n->body) {
		*out = n->body->meta;
		return 0;
	}
	return tc_index_inode_get(&eng->ix, ino, out);
}

/* Read @n's row back into its body (after a failed operation). A
 * directory whose times wait for the group's commit keeps its own when
 * they are later: the row lacks what the group's earlier operations did
 * (a failed one may have set them too; later is harmless). Its link count
 * never waits, so the row's is right. */
static void reload_one_locked(struct tc_engine *eng, struct tc_node *n)
{
	struct tc_inode *m = &n->body->meta;
	int64_t mtime = m->mtime, ctime = m->ctime;

	if (tc_index_inode_get(&eng->ix, n->ino, m) || !n->body->row_pending)
		return;
	m->mtime = mtime > m->mtime ? mtime : m->mtime;
	m->ctime = ctime > m->ctime ? ctime : m->ctime;
}

void tc_node_reload_locked(struct tc_engine *eng, struct tc_node **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] && v[i]->body)
			reload_one_locked(eng, v[i]);
}

void tc_node_reload_all_locked(struct tc_engine *eng, uint64_t group, int err,
			       struct tc_inval_list *inv)
{
	struct tc_node *n;
	size_t pos = 0;

	TC_ASSERT_LOCKED(eng);
	while ((n = tc_ntab_next(&eng->nodes, &pos))) {
		struct tc_inode m;
		if (tc_index_inode_get(&eng->ix, n->ino, &m) == 0) {
			if (n->body)
				n->body->meta = m;
		} else {
			/* Its creation was lost (a node without a body has no
			 * row to load: ENOENT). */
			if (n->body)
				n->body->meta.nlink = 0;
			n->lost_err = err;
		}
		if (n->pub_group == (uint32_t)group)
			n->lost_err = err;
		n->data_gen++; /* the kernel's pages may be ahead */
		if (inv)
			tc_inval_names_locked(eng, n->ino, inv);
	}
}

/* Delete the row of inode @m with its xattrs and tags and drop its blob
 * reference, inside the caller's transaction. */
static int purge_locked(struct tc_engine *eng, const struct tc_inode *m)
{
	uint8_t (*v)[TC_HASH_LEN] = NULL;
	size_t count = 0;
	int rc = tc_index_inode_purge(&eng->ix, m->ino);

	if (!rc && tc_inode_owns_hash(m))
		rc = tc_blob_unref_locked(eng, m->hash);
	if (!rc && m->nchunks > 1)
		rc = tc_index_chunks_cut(&eng->ix, m->ino, 0, &v, &count);
	for (size_t i = 0; !rc && i < count; i++)
		rc = tc_blob_unref_locked(eng, v[i]);
	free(v);
	return rc;
}

/* Purge @m in a transaction of its own, or in the one already open. */
static int destroy_locked(struct tc_engine *eng, const struct tc_inode *m)
{
	int rc;

	if (tc_txn_in_op_locked(eng))
		return purge_locked(eng, m);
	rc = tc_txn_begin_locked(eng);
	if (rc)
		return rc;
	return tc_txn_end_locked(eng, purge_locked(eng, m));
}

/* Queue @ino in @v (*@n of *@cap) for the committer's next round: false
 * when it cannot wait (no committer, no memory) and the caller does the
 * work now. The first item queued outside a group wakes the committer. */
static bool queue_locked(struct tc_engine *eng, uint64_t **v, size_t *n,
			 size_t *cap, uint64_t ino)
{
	if (!eng->committer_running)
		return false;
	if (*n == *cap) {
		size_t c = *cap ? 2 * *cap : 64;
		uint64_t *w = realloc(*v, c * sizeof(*w));
		if (!w)
			return false;
		*v = w;
		*cap = c;
	}
	if (!eng->n_rows && !eng->n_purges) {
		eng->later_since = tc_mono_ns();
		if (!eng->group_open)
			pthread_cond_signal(&eng->commit_cond);
	}
	(*v)[(*n)++] = ino;
	return true;
}

/* Purge @m with the committer's next round, or now. */
static void purge_soon_locked(struct tc_engine *eng, const struct tc_inode *m)
{
	if (!queue_locked(eng, &eng->purges, &eng->n_purges, &eng->cap_purges,
			  m->ino))
		(void)!destroy_locked(eng, m);
}

/* Queue @n's row for the group's commit: false when the caller writes it. */
static bool queue_row_locked(struct tc_engine *eng, struct tc_node *n)
{
	if (!n->body->row_pending &&
	    queue_locked(eng, &eng->rows, &eng->n_rows, &eng->cap_rows, n->ino))
		n->body->row_pending = true;
	return n->body->row_pending;
}

/* Write @n's queued times now (inside an operation): no longer pending. */
static int write_row_locked(struct tc_engine *eng, struct tc_node *n)
{
	int rc = tc_index_inode_times(&eng->ix, &n->body->meta);

	if (!rc)
		n->body->row_pending = false;
	return rc;
}

int tc_node_dir_changed_locked(struct tc_engine *eng, struct tc_node *n,
				 bool links)
{
	TC_ASSERT_LOCKED(eng);
	/* A link count is written at once (see reload_one_locked()), with
	 * the times. */
	if (links)
		return tc_index_inode_links(&eng->ix, &n->body->meta);
	if (queue_row_locked(eng, n))
		return 0;
	return write_row_locked(eng, n);
}

int tc_node_write_rows_locked(struct tc_engine *eng)
{
	int rc = 0;

	for (size_t i = 0; !rc && i < eng->n_rows; i++) {
		struct tc_node *n = tc_node_find_locked(eng, eng->rows[i]);
		if (!n || !n->body || !n->body->row_pending)
			continue; /* written when it left, or since */
		rc = write_row_locked(eng, n);
		if (!rc)
			tc_nbody_idle_locked(eng, n);
	}
	if (!rc)
		eng->n_rows = 0;
	return rc;
}

void tc_node_drop_rows_locked(struct tc_engine *eng)
{
	for (size_t i = 0; i < eng->n_rows; i++) {
		struct tc_node *n = tc_node_find_locked(eng, eng->rows[i]);
		if (n && n->body)
			n->body->row_pending = false;
	}
	eng->n_rows = 0;
}

int tc_node_purge_forgotten_locked(struct tc_engine *eng)
{
	int rc;

	if (!eng->n_purges || eng->in_op)
		return 0;
	rc = tc_txn_begin_locked(eng);
	if (!rc) {
		for (size_t i = 0; !rc && i < eng->n_purges; i++) {
			struct tc_inode m;
			/* The node is gone: the row says what to drop (and a
			 * row already gone loses no reference twice). */
			rc = tc_index_inode_get(&eng->ix, eng->purges[i], &m);
			if (rc == -ENOENT)
				rc = 0;
			else if (!rc && m.nlink == 0)
				rc = purge_locked(eng, &m);
		}
		rc = tc_txn_end_locked(eng, rc);
	}
	eng->n_purges = 0;
	return rc;
}

void tc_node_release_locked(struct tc_engine *eng, struct tc_node *n)
{
	uint32_t num;
	bool doomed;

	TC_ASSERT_LOCKED(eng);
	if (n->pins || (n->body && n->body->nopen))
		return;
	if (n->nlookup || (n->body && n->body->dirty)) {
		tc_nbody_idle_locked(eng, n);
		return;
	}
	/* The row must carry the batched recency (and a sliding deadline)
	 * before the body, which is fresher than the row, goes away; not
	 * when the row goes with it. */
	doomed = n->body && n->body->meta.nlink == 0 && n->ino != TC_ROOT_INO;
	if (n->body && n->body->atime_pending && !doomed) {
		if (tc_txn_in_op_locked(eng))
			(void)!tc_node_apply_atimes_locked(eng);
		else
			(void)!tc_node_flush_atimes_locked(eng);
		if (n->body)
			n->body->atime_pending = false;
	}
	/* A row waiting for the commit: written now, in the group that
	 * changed it (unless it goes). */
	if (n->body && n->body->row_pending && !doomed) {
		if (tc_txn_in_op_locked(eng))
			(void)!write_row_locked(eng, n);
		else if (!tc_txn_begin_locked(eng))
			(void)!tc_txn_end_locked(eng, write_row_locked(eng, n));
	}
	num = tc_ntab_unlink(&eng->nodes, n);
	/* A body with no links is busy: never evicted before this. */
	if (doomed)
		purge_soon_locked(eng, &n->body->meta);
	tc_nbody_free_locked(eng, n);
	tc_ntab_free(&eng->nodes, num);
}

void tc_node_unpin_locked(struct tc_engine *eng, struct tc_node *n)
{
	n->pins--;
	tc_node_release_locked(eng, n);
}

int tc_node_get(struct tc_engine *eng, uint64_t ino, struct tc_node **out)
{
	int rc;

	tc_lock(eng);
	rc = tc_node_get_locked(eng, ino, out);
	tc_unlock(eng);
	return rc;
}

void tc_node_unpin(struct tc_engine *eng, struct tc_node *n)
{
	tc_lock(eng);
	tc_node_unpin_locked(eng, n);
	tc_unlock(eng);
}

int tc_node_drop_locked(struct tc_engine *eng, uint64_t ino,
			struct tc_inval_list *inv)
{
	struct tc_node *n = tc_node_find_locked(eng, ino);
	struct tc_inode m;
	int rc;

	rc = tc_index_inode_get(&eng->ix, ino, &m);
	if (rc)
		return rc == -ENOENT ? 0 : rc;
	if (inv)
		tc_inval_names_locked(eng, ino, inv);
	rc = tc_index_dentries_drop(&eng->ix, ino);
	if (rc)
		return rc;
	if (S_ISREG(m.mode) && m.nlink > 0)
		tc_txn_account_locked(eng, -(int64_t)m.size, -1);
	m.nlink = 0;
	if (n) {
		/* The node keeps the row, its body the link count (busy). */
		rc = tc_nbody_load_locked(eng, n);
		if (rc)
			return rc;
		n->body->meta.nlink = 0;
		tc_txn_note_node_locked(eng, n);
		return tc_index_inode_update(&eng->ix, &m);
	}
	return purge_locked(eng, &m);
}

int tc_node_drop_orphans_locked(struct tc_engine *eng)
{
	uint64_t *inos;
	size_t n;
	int rc;

	rc = tc_index_orphans(&eng->ix, &inos, &n);
	for (size_t i = 0; !rc && i < n; i++) {
		struct tc_inode m;
		if (tc_index_inode_get(&eng->ix, inos[i], &m) == 0)
			rc = destroy_locked(eng, &m);
	}
	free(inos);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Attributes                                                         */
/* ------------------------------------------------------------------ */

void tc_node_fill_attr(struct tc_engine *eng, const struct tc_inode *m,
		       struct tc_attr *out)
{
	struct stat *st = &out->st;
	int64_t now;

	memset(out, 0, sizeof(*out));
	st->st_ino = m->ino;
	st->st_mode = m->mode;
	st->st_nlink = m->nlink;
	st->st_uid = m->uid;
	st->st_gid = m->gid;
	st->st_rdev = m->rdev;
	st->st_size = (off_t)m->size;
	st->st_blksize = 4096;
	st->st_blocks = (blkcnt_t)((m->size + 511) / 512);
	tc_ns_to_ts(m->atime, &st->st_atim);
	tc_ns_to_ts(m->mtime, &st->st_mtim);
	tc_ns_to_ts(m->ctime, &st->st_ctim);
	out->valid_ns = INT64_MAX;
	if (m->expires > 0) {
		now = tc_now(eng);
		out->valid_ns = m->expires > now ? m->expires - now : 0;
	}
}

void tc_node_attr(struct tc_engine *eng, struct tc_node *n,
		  struct tc_attr *out)
{
	struct tc_inode m;

	/* The node's lock first: a publish holds it while it moves the
	 * dirty state into the row, so the row and the dirty state are seen
	 * on the same side of it (a copy of the row taken before a publish
	 * and no dirty state after it would say size 0). */
	tc_mutex_lock(&n->body->lock);
	tc_lock(eng);
	m = n->body->meta;
	tc_unlock(eng);
	if (n->body->dirty) {
		m.size = n->body->dirty->size;
		m.mtime = m.ctime = n->body->dirty->mtime;
	}
	tc_mutex_unlock(&n->body->lock);
	tc_node_fill_attr(eng, &m, out);
}

/* ------------------------------------------------------------------ */
/* Access times                                                       */
/* ------------------------------------------------------------------ */

void tc_node_touch_locked(struct tc_engine *eng, struct tc_node *n)
{
	TC_ASSERT_LOCKED(eng);
	if (n->body->atime_pending)
		return;
	if (eng->n_atimes == TC_ATIME_BATCH)
		(void)!tc_node_flush_atimes_locked(eng);
	eng->atimes[eng->n_atimes++] = n->ino;
	n->body->atime_pending = true;
}

int tc_node_apply_atimes_locked(struct tc_engine *eng)
{
	int rc = 0;

	for (size_t i = 0; !rc && i < eng->n_atimes; i++) {
		struct tc_node *n = tc_node_find_locked(eng, eng->atimes[i]);
		/* Gone: it wrote its row when it left the table. */
		if (!n || !n->body || !n->body->atime_pending)
			continue;
		rc = tc_index_set_lru(&eng->ix, n->ino, n->body->meta.lru,
				      n->body->meta.expires);
		n->body->atime_pending = false;
		tc_nbody_idle_locked(eng, n);
	}
	if (!rc)
		eng->n_atimes = 0;
	return rc;
}

int tc_node_flush_atimes_locked(struct tc_engine *eng)
{
	int rc;

	if (!eng->n_atimes)
		return 0;
	rc = tc_txn_begin_locked(eng);
	if (!rc)
		rc = tc_txn_end_locked(eng, tc_node_apply_atimes_locked(eng));
	eng->n_atimes = 0; /* recency is a hint: never retry forever */
	return rc;
}
