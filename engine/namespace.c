/* SPDX-License-Identifier: MIT */
/*
 * The namespace: lookup, create (of every node type), symlink, readlink,
 * link, unlink, rmdir, readdir, getattr, forget and statfs; rename is in
 * rename.c. Each operation pins the nodes it works on, checks, then changes
 * the index in one transaction (txn.c), rolling the node copies back when
 * it fails.
 *
 * Lookups are where the cache policy meets the names: an expired or
 * schema-discarded entry found on the way is dropped and reported absent
 * (tc_ns_find_locked), and a lookup of an absent name counts a miss (once
 * per program, not once per kernel retry; taken back when the program then
 * creates the name, which is a put).
 */
#include <errno.h>
#include <string.h>
#include <sys/statvfs.h>
#include <xxhash.h>

#include "engine_i.h"

/* A second miss of the same name this soon after the first is the kernel
 * retrying its own lookup, not a program asking again. */
#define MISS_REPEAT_NS INT64_C(10000000)

/* Longest symlink target, with its NUL (PATH_MAX). */
#define TARGET_MAX 4096

/* ------------------------------------------------------------------ */
/* Misses                                                             */
/* ------------------------------------------------------------------ */

static uint64_t name_hash(const char *name)
{
	return XXH3_64bits(name, strlen(name));
}

/* A lookup found nothing: count a miss, remembered so that a create of the
 * same name right after can take it back. */
static void note_miss_locked(struct tc_engine *eng, uint64_t parent,
			     const char *name)
{
	uint64_t h = name_hash(name);
	unsigned last = (eng->recent_miss_pos + TC_RECENT_MISSES - 1) %
			TC_RECENT_MISSES,
		 i;
	int64_t now = tc_now(eng);

	/* The kernel asks twice for a cached name that turned out absent
	 * (revalidation, then a fresh lookup): one miss, not two. */
	if (eng->recent_miss[last].parent == parent &&
	    eng->recent_miss[last].name_hash == h &&
	    now - eng->recent_miss[last].when < MISS_REPEAT_NS)
		return;
	i = eng->recent_miss_pos++ % TC_RECENT_MISSES;
	eng->recent_miss[i].parent = parent;
	eng->recent_miss[i].name_hash = h;
	eng->recent_miss[i].when = now;
	tc_count(eng, misses, 1);
}

void tc_ns_unnote_miss_locked(struct tc_engine *eng, uint64_t parent,
			      const char *name)
{
	uint64_t h = name_hash(name);

	TC_ASSERT_LOCKED(eng);
	for (unsigned i = 0; i < TC_RECENT_MISSES; i++) {
		if (eng->recent_miss[i].parent == parent &&
		    eng->recent_miss[i].name_hash == h) {
			eng->recent_miss[i].parent = 0;
			atomic_fetch_sub(&eng->counters.misses, 1);
			return;
		}
	}
}

/* ------------------------------------------------------------------ */
/* Finding entries                                                    */
/* ------------------------------------------------------------------ */

int tc_ns_check_name(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || strchr(name, '/'))
		return -EINVAL;
	if (len > TC_NAME_MAX)
		return -ENAMETOOLONG;
	return 0;
}

int tc_ns_dir_get_locked(struct tc_engine *eng, uint64_t parent,
			 struct tc_node **out)
{
	int rc = tc_node_get_locked(eng, parent, out);

	if (rc)
		return rc;
	if (!S_ISDIR((*out)->body->meta.mode))
		rc = -ENOTDIR;
	else if ((*out)->body->meta.nlink == 0)
		rc = -ENOENT;
	if (rc) {
		tc_node_unpin_locked(eng, *out);
		*out = NULL;
	}
	return rc;
}

int tc_ns_find_locked(struct tc_engine *eng, uint64_t parent, const char *name,
		      struct tc_node **out, struct tc_inval_list *inv)
{
	uint64_t ino = 0;
	int rc;

	rc = tc_index_dentry_get(&eng->ix, parent, name, &ino);
	if (!rc)
		rc = tc_node_get_locked(eng, ino, out);
	if (rc)
		return rc;
	if (tc_policy_visible_locked(eng, parent, &(*out)->body->meta,
				     tc_now(eng)))
		return 0;
	rc = tc_txn_begin_locked(eng);
	if (!rc)
		rc = tc_txn_end_locked(eng, tc_node_drop_locked(eng, ino, inv));
	tc_node_unpin_locked(eng, *out);
	*out = NULL;
	return rc ? rc : -ENOENT;
}

int tc_lookup(struct tc_engine *eng, uint64_t parent, const char *name,
	      struct tc_attr *out)
{
	struct tc_inval_list inv = { 0 };
	struct tc_node *dir = NULL, *n = NULL;
	int rc;

	rc = tc_ns_check_name(name);
	if (rc)
		return rc;
	tc_lock(eng);
	rc = tc_ns_dir_get_locked(eng, parent, &dir);
	if (rc)
		goto out;
	rc = tc_ns_find_locked(eng, parent, name, &n, &inv);
	if (rc == -ENOENT)
		note_miss_locked(eng, parent, name);
	if (rc)
		goto out;
	tc_node_ref_lookup(n);
out:
	if (dir)
		tc_node_unpin_locked(eng, dir);
	tc_unlock(eng);
	if (n) {
		tc_node_attr(eng, n, out);
		tc_node_unpin(eng, n);
	}
	tc_inval_deliver(eng, &inv);
	return rc;
}

void tc_forget(struct tc_engine *eng, uint64_t ino, uint64_t nlookup)
{
	struct tc_node *n;

	tc_lock(eng);
	n = tc_node_find_locked(eng, ino);
	/* A saturated count is no longer exact: that node stays. */
	if (n && n->nlookup != UINT32_MAX) {
		n->nlookup = n->nlookup > nlookup ? n->nlookup -
						    (uint32_t)nlookup : 0;
		tc_node_release_locked(eng, n);
	}
	tc_unlock(eng);
}

int tc_getattr(struct tc_engine *eng, uint64_t ino, struct tc_attr *out)
{
	struct tc_node *n;
	int rc;

	rc = tc_node_get(eng, ino, &n);
	if (rc)
		return rc;
	tc_node_attr(eng, n, out);
	tc_node_unpin(eng, n);
	return 0;
}

void tc_statfs(struct tc_engine *eng, struct tc_statfs *out)
{
	tc_lock(eng);
	out->limit_bytes = eng->disk_size;
	out->used_bytes = eng->size.disk_bytes;
	out->items = eng->size.disk_items;
	out->limit_items = eng->disk_items;
	tc_unlock(eng);
	if (!out->limit_bytes) {
		struct statvfs sv;
		if (fstatvfs(eng->store_fd, &sv) == 0)
			out->limit_bytes = (uint64_t)sv.f_blocks * sv.f_frsize;
		if (out->limit_bytes < out->used_bytes)
			out->limit_bytes = out->used_bytes;
	}
}

/* ------------------------------------------------------------------ */
/* Creating                                                           */
/* ------------------------------------------------------------------ */

/* -EEXIST when @name in @dir is taken by a visible entry; 0 when free (an
 * invisible, expired or discarded, entry is dropped on the way). */
static int name_free_locked(struct tc_engine *eng, uint64_t dir,
			    const char *name, struct tc_inval_list *inv)
{
	struct tc_node *old = NULL;
	int rc = tc_ns_find_locked(eng, dir, name, &old, inv);

	if (rc == 0) {
		tc_node_unpin_locked(eng, old);
		return -EEXIST;
	}
	return rc == -ENOENT ? 0 : rc;
}

/* The regular file @name in @dir that a replacing create takes the place
 * of (*@victim, pinned), or none; -EEXIST when the name is taken
 * otherwise. */
static int victim_locked(struct tc_engine *eng, struct tc_node *dir,
			 const char *name, bool replace,
			 struct tc_node **victim, struct tc_inval_list *inv)
{
	int rc;

	*victim = NULL;
	if (!replace)
		return name_free_locked(eng, dir->ino, name, inv);
	rc = tc_ns_find_locked(eng, dir->ino, name, victim, inv);
	if (rc == 0 && !S_ISREG((*victim)->body->meta.mode)) {
		tc_node_unpin_locked(eng, *victim);
		*victim = NULL;
		return -EEXIST;
	}
	return rc == -ENOENT ? 0 : rc;
}

/* Create inode @m named @name in @dir and pin it. Its own transaction. */
static int create_locked(struct tc_engine *eng, struct tc_node *dir,
			 const char *name, struct tc_inode *m,
			 struct tc_dirty *dirty, bool replace,
			 struct tc_node **out, struct tc_inval_list *inv)
{
	int64_t now = tc_now(eng);
	struct tc_node *victim;
	int rc;

	rc = victim_locked(eng, dir, name, replace, &victim, inv);
	if (rc)
		return rc;
	m->atime = m->mtime = m->ctime = now;
	m->nlink = S_ISDIR(m->mode) ? 2 : 1;
	m->lru = now;
	m->ttl = -1;
	m->ttl_mode = -1;
	rc = tc_policy_inherit_locked(eng, dir->ino, m);
	if (!rc && tc_reserve_short(eng))
		rc = -ENOSPC; /* the reserve is for what was accepted */
	if (!rc)
		rc = tc_txn_begin_locked(eng);
	if (rc)
		goto out;
	/* As a rename over it: the old inode lives on for whoever holds it,
	 * and the name changes inode in one step. */
	if (victim) {
		rc = tc_ns_remove_dentry_locked(eng, dir, name, victim);
		tc_inval_add(inv, dir->ino, name, strlen(name), victim->ino);
	}
	if (S_ISREG(m->mode)) {
		if (!rc)
			rc = tc_policy_make_room_locked(eng, 0, 1, 0, inv);
		tc_policy_resolve_locked(eng, m, now);
	}
	/* Numbers come from memory and never go back, not even when a lost
	 * group takes rows back: the kernel may still hold those. */
	m->ino = ++eng->last_ino;
	if (!rc)
		rc = tc_index_inode_insert(&eng->ix, m);
	if (!rc)
		rc = tc_index_dentry_insert(&eng->ix, dir->ino, name, m->ino);
	if (!rc) {
		tc_txn_note_name_locked(eng, dir->ino, name, m->ino);
		dir->body->meta.mtime = dir->body->meta.ctime = now;
		if (S_ISDIR(m->mode))
			dir->body->meta.nlink++;
		rc = tc_node_dir_changed_locked(eng, dir, S_ISDIR(m->mode));
	}
	if (!rc && S_ISREG(m->mode))
		tc_txn_account_locked(eng, 0, 1);
	rc = tc_txn_end_locked(eng, rc);
	if (rc) {
		/* dir->body->meta may be ahead of the row now: reload it. */
		tc_node_reload_locked(eng, (struct tc_node *[]){ dir, victim },
				      victim ? 2 : 1);
		goto out;
	}
	tc_ns_unnote_miss_locked(eng, dir->ino, name);
	rc = tc_node_get_new_locked(eng, m, out);
	/* A new node: nobody can hold its lock before we let go of ours. */
	if (!rc && dirty)
		(*out)->body->dirty = dirty;
out:
	if (victim)
		tc_node_unpin_locked(eng, victim);
	return rc;
}

int tc_ns_make_node(struct tc_engine *eng, uint64_t parent, const char *name,
		    struct tc_inode *m, const struct tc_ctx *ctx,
		    struct tc_dirty *dirty, bool replace, struct tc_node **out)
{
	struct tc_inval_list inv = { 0 };
	struct tc_node *dir = NULL;
	int rc;

	*out = NULL;
	rc = tc_ns_check_name(name);
	if (rc)
		return rc;
	if (tc_reserve_short(eng))
		(void)tc_commit_reclaim(eng); /* deleted files may free room */
	tc_lock(eng);
	rc = tc_ns_dir_get_locked(eng, parent, &dir);
	if (rc)
		goto out;
	m->uid = ctx->uid;
	m->gid = ctx->gid;
	if (dir->body->meta.mode & S_ISGID) {
		m->gid = dir->body->meta.gid;
		if (S_ISDIR(m->mode))
			m->mode |= S_ISGID;
	}
	rc = create_locked(eng, dir, name, m, dirty, replace, out, &inv);
	if (!rc)
		tc_node_ref_lookup(*out);
out:
	if (dir)
		tc_node_unpin_locked(eng, dir);
	tc_unlock(eng);
	tc_inval_deliver(eng, &inv);
	return rc;
}

/* Make @m, reply its attributes, drop the pin (the lookup stays). */
static int make_and_attr(struct tc_engine *eng, uint64_t parent,
			 const char *name, struct tc_inode *m,
			 const struct tc_ctx *ctx, struct tc_attr *out)
{
	bool reg = S_ISREG(m->mode) && eng->shared;
	struct tc_dirty *d = NULL;
	struct tc_node *n;
	int rc;

	/* A regular file made so has no publish of its own to tell the
	 * shared tier about it. Without handles (cache_mode=kernel creates
	 * so) its writes come next: an empty version to publish after the
	 * quiet period, which they complete, tells the others the whole
	 * file, not an empty one first. */
	if (reg && eng->handleless) {
		d = tc_content_dirty_new(eng);
		if (!d)
			return -ENOMEM;
	}
	rc = tc_ns_make_node(eng, parent, name, m, ctx, d, false, &n);
	if (rc) {
		tc_dirty_free(&eng->blobs, d);
		return rc;
	}
	if (reg && !d) {
		tc_lock(eng);
		tc_sharedpub_names_locked(eng, n->ino);
		tc_unlock(eng);
	}
	tc_node_attr(eng, n, out);
	tc_node_unpin(eng, n);
	return 0;
}

int tc_mknod(struct tc_engine *eng, uint64_t parent, const char *name,
	     mode_t mode, dev_t rdev, const struct tc_ctx *ctx,
	     struct tc_attr *out)
{
	struct tc_inode m = { 0 };

	switch (mode & S_IFMT) {
	case S_IFREG:
	case S_IFDIR:
	case S_IFIFO:
	case S_IFSOCK:
		break;
	case S_IFCHR:
	case S_IFBLK:
		/* Stored inert: a FUSE mount is nodev, so opening one as a
		 * device is refused by the kernel; only the numbers matter. */
		m.rdev = (uint64_t)rdev;
		break;
	default:
		return -EINVAL;
	}
	m.mode = (mode & S_IFMT) | (mode & 07777 & ~ctx->umask);
	return make_and_attr(eng, parent, name, &m, ctx, out);
}

int tc_symlink(struct tc_engine *eng, uint64_t parent, const char *name,
	       const char *target, const struct tc_ctx *ctx,
	       struct tc_attr *out)
{
	struct tc_inode m = { 0 };
	size_t len = strlen(target);

	if (len == 0)
		return -ENOENT;
	if (len >= TARGET_MAX)
		return -ENAMETOOLONG;
	m.mode = S_IFLNK | 0777;
	m.size = len;
	m.target = target;
	return make_and_attr(eng, parent, name, &m, ctx, out);
}

int tc_readlink(struct tc_engine *eng, uint64_t ino, char *buf, size_t size)
{
	struct tc_node *n;
	int rc;

	tc_lock(eng);
	rc = tc_node_get_locked(eng, ino, &n);
	if (rc)
		goto out;
	if (!S_ISLNK(n->body->meta.mode))
		rc = -EINVAL;
	else
		rc = tc_index_readlink(&eng->ix, ino, buf, size);
	tc_node_unpin_locked(eng, n);
out:
	tc_unlock(eng);
	return rc;
}

int tc_link(struct tc_engine *eng, uint64_t ino, uint64_t newparent,
	    const char *newname, struct tc_attr *out)
{
	struct tc_inval_list inv = { 0 };
	struct tc_node *dir = NULL, *n = NULL;
	int rc;

	rc = tc_ns_check_name(newname);
	if (rc)
		return rc;
	tc_lock(eng);
	rc = tc_ns_dir_get_locked(eng, newparent, &dir);
	if (!rc)
		rc = tc_node_get_locked(eng, ino, &n);
	if (rc)
		goto out;
	if (S_ISDIR(n->body->meta.mode))
		rc = -EPERM;
	else if (n->body->meta.nlink == 0)
		rc = -ENOENT;
	else
		rc = name_free_locked(eng, newparent, newname, &inv);
	if (!rc)
		rc = tc_txn_begin_locked(eng);
	if (rc)
		goto out;
	rc = tc_index_dentry_insert(&eng->ix, newparent, newname, ino);
	if (!rc) {
		tc_txn_note_name_locked(eng, newparent, newname, ino);
		n->body->meta.nlink++;
		n->body->meta.ctime = tc_now(eng);
		rc = tc_index_inode_links(&eng->ix, &n->body->meta);
	}
	if (!rc) {
		dir->body->meta.mtime = dir->body->meta.ctime =
		    n->body->meta.ctime;
		rc = tc_node_dir_changed_locked(eng, dir, false);
	}
	rc = tc_txn_end_locked(eng, rc);
	if (rc) {
		tc_node_reload_locked(eng, (struct tc_node *[]){ n, dir }, 2);
		goto out;
	}
	tc_ns_unnote_miss_locked(eng, newparent, newname);
	tc_node_ref_lookup(n);
out:
	if (dir)
		tc_node_unpin_locked(eng, dir);
	tc_unlock(eng);
	if (n) {
		if (!rc)
			tc_node_attr(eng, n, out);
		tc_node_unpin(eng, n);
	}
	tc_inval_deliver(eng, &inv);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Removing                                                           */
/* ------------------------------------------------------------------ */

int tc_ns_remove_dentry_locked(struct tc_engine *eng, struct tc_node *dir,
			       const char *name, struct tc_node *victim)
{
	int64_t now = tc_now(eng);
	int rc;

	rc = tc_index_dentry_delete(&eng->ix, dir->ino, name);
	if (rc)
		return rc;
	tc_txn_note_name_locked(eng, dir->ino, name, victim->ino);
	if (S_ISDIR(victim->body->meta.mode)) {
		victim->body->meta.nlink = 0;
		dir->body->meta.nlink--;
	} else {
		victim->body->meta.nlink--;
	}
	victim->body->meta.ctime = now;
	dir->body->meta.mtime = dir->body->meta.ctime = now;
	if (S_ISREG(victim->body->meta.mode) && victim->body->meta.nlink == 0) {
		tc_txn_account_locked(eng, -(int64_t)victim->body->meta.size,
				      -1);
		tc_count(eng, deletes, 1);
	}
	rc = tc_index_inode_links(&eng->ix, &victim->body->meta);
	if (!rc)
		rc = tc_node_dir_changed_locked(
		    eng, dir, S_ISDIR(victim->body->meta.mode));
	return rc;
}

static int remove_entry(struct tc_engine *eng, uint64_t parent,
			const char *name, bool want_dir)
{
	struct tc_inval_list inv = { 0 };
	struct tc_node *dir = NULL, *n = NULL;
	int rc;

	rc = tc_ns_check_name(name);
	if (rc)
		return rc;
	tc_lock(eng);
	rc = tc_ns_dir_get_locked(eng, parent, &dir);
	if (!rc)
		rc = tc_ns_find_locked(eng, parent, name, &n, &inv);
	if (rc)
		goto out;
	if (want_dir && !S_ISDIR(n->body->meta.mode))
		rc = -ENOTDIR;
	else if (!want_dir && S_ISDIR(n->body->meta.mode))
		rc = -EISDIR;
	else if (want_dir && !tc_index_dir_empty(&eng->ix, n->ino))
		rc = -ENOTEMPTY;
	if (!rc)
		rc = tc_txn_begin_locked(eng);
	if (rc)
		goto out;
	rc = tc_txn_end_locked(eng, tc_ns_remove_dentry_locked(eng, dir, name,
							       n));
	if (rc)
		tc_node_reload_locked(eng, (struct tc_node *[]){ dir, n }, 2);
	else
		tc_sharedpub_tombstone_locked(eng, parent, name);
out:
	if (n)
		tc_node_unpin_locked(eng, n);
	if (dir)
		tc_node_unpin_locked(eng, dir);
	tc_unlock(eng);
	tc_inval_deliver(eng, &inv);
	return rc;
}

int tc_unlink(struct tc_engine *eng, uint64_t parent, const char *name)
{
	return remove_entry(eng, parent, name, false);
}

int tc_rmdir(struct tc_engine *eng, uint64_t parent, const char *name)
{
	if (!strcmp(name, "."))
		return -EINVAL;
	if (!strcmp(name, ".."))
		return -ENOTEMPTY;
	return remove_entry(eng, parent, name, true);
}

/* ------------------------------------------------------------------ */
/* Listing                                                            */
/* ------------------------------------------------------------------ */

struct listing {
	struct tc_engine *eng;
	bool plus;
	int64_t now;
	char want_schema[65];
	tc_dirent_fn fn;
	void *ctx;
};

/* One dentry of tc_readdir(): hide what a lookup would find invisible. */
static int list_one(void *ctx, uint64_t id, const char *raw, size_t len,
		    const struct tc_inode *row)
{
	struct listing *l = ctx;
	struct tc_engine *eng = l->eng;
	char name[TC_NAME_MAX + 1];
	struct tc_inode m = *row;
	struct tc_attr a;
	struct tc_node *n;

	if (len > TC_NAME_MAX || len == 0)
		return 0;
	memcpy(name, raw, len);
	name[len] = '\0';
	n = tc_node_find_locked(eng, m.ino);
	if (n && n->body)
		m = n->body->meta; /* fresher: sliding expiry, sizes */
	if (m.expires > 0 && m.expires <= l->now)
		return 0;
	if (l->want_schema[0] && S_ISREG(m.mode) &&
	    strcmp(l->want_schema, m.schema))
		return 0;
	tc_node_fill_attr(eng, &m, &a);
	/* A writer's size is in its dirty state, under the node's lock,
	 * which is not taken under ours: only whether there is one is read
	 * (as tc_node_release_locked() does). The kernel, which sent those
	 * writes, keeps its own size; a lookup or getattr gives the real
	 * one (tc_node_attr()). */
	a.unsettled = n && n->body && n->body->dirty;
	if (l->fn(l->ctx, name, &a, id + 2))
		return 1;
	/* readdirplus hands the kernel a lookup reference (a node without
	 * a body: a listing of a large directory loads no rows twice) */
	if (l->plus && !a.unsettled)
		(void)!tc_node_hold_locked(eng, m.ino);
	return 0;
}

int tc_readdir(struct tc_engine *eng, uint64_t ino, uint64_t off, bool plus,
	       tc_dirent_fn fn, void *ctx)
{
	struct listing l = { .eng = eng, .plus = plus, .fn = fn, .ctx = ctx };
	struct tc_node *dir = NULL;
	uint64_t parent = TC_ROOT_INO;
	struct tc_attr a;
	int rc;

	l.now = tc_now(eng);
	tc_lock(eng);
	rc = tc_ns_dir_get_locked(eng, ino, &dir);
	if (rc)
		goto out;
	/* Cookies: 1 ".", 2 "..", then dentry id + 2. */
	if (off < 1) {
		tc_node_fill_attr(eng, &dir->body->meta, &a);
		if (fn(ctx, ".", &a, 1))
			goto out;
	}
	if (off < 2) {
		if (ino != TC_ROOT_INO)
			(void)!tc_index_parent_of(&eng->ix, ino, &parent);
		memset(&a, 0, sizeof(a));
		a.st.st_ino = parent;
		a.st.st_mode = S_IFDIR;
		if (fn(ctx, "..", &a, 2))
			goto out;
	}
	/* Entries of another schema version are absent here too (they are
	 * discarded, and counted, when looked up). */
	if (tc_policy_dir_schema_locked(eng, ino, l.want_schema))
		l.want_schema[0] = '\0';
	rc = tc_index_list_dir(&eng->ix, ino, off > 2 ? off - 2 : 0, list_one,
			       &l);
out:
	if (dir)
		tc_node_unpin_locked(eng, dir);
	tc_unlock(eng);
	return rc;
}
