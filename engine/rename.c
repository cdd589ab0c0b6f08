/* SPDX-License-Identifier: MIT */
/*
 * rename(2) and renameat2(2)'s RENAME_NOREPLACE and RENAME_EXCHANGE: the
 * checks POSIX asks for (a directory not into its own subtree, types
 * matching, an empty target directory) and one transaction that moves the
 * dentries. A directory moves with its whole subtree by one UPDATE of its
 * dentry; a replaced target is removed as by unlink (namespace.c). With a
 * shared tier the move is told to it (sharedpub.c): tombstones where the
 * names were, records where they are.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "engine_i.h"

/* Deepest directory tree walked when looking for a loop. */
#define MAX_DEPTH 100000

/* True when directory @anc is @ino or one of its ancestors. */
static int is_ancestor_locked(struct tc_engine *eng, uint64_t anc,
			      uint64_t ino, bool *out)
{
	int depth = 0;

	*out = false;
	while (ino != TC_ROOT_INO) {
		if (ino == anc) {
			*out = true;
			return 0;
		}
		if (++depth > MAX_DEPTH)
			return -ELOOP;
		if (tc_index_parent_of(&eng->ix, ino, &ino))
			return 0;
	}
	*out = anc == TC_ROOT_INO;
	return 0;
}

struct rename_op {
	struct tc_node *sdir, *ddir, *src, *dst;
	uint64_t sp, dp;
	const char *sn, *dn;
	unsigned flags;
};

/* -EINVAL when directory @moved would land inside itself (under @into). */
static int check_loop_locked(struct tc_engine *eng, struct rename_op *r,
			     struct tc_node *moved, uint64_t into)
{
	bool loop;
	int rc;

	if (!S_ISDIR(moved->body->meta.mode) || r->sdir == r->ddir)
		return 0;
	rc = is_ancestor_locked(eng, moved->ino, into, &loop);
	return rc ? rc : loop ? -EINVAL : 0;
}

static int rename_check_locked(struct tc_engine *eng, struct rename_op *r)
{
	int rc;

	if (r->dst && r->dst->ino == r->src->ino)
		return 0;
	rc = check_loop_locked(eng, r, r->src, r->dp);
	if (rc)
		return rc;
	if (r->flags & TC_RENAME_EXCHANGE)
		return r->dst ? check_loop_locked(eng, r, r->dst, r->sp)
			      : -ENOENT;
	if (!r->dst)
		return 0;
	if (r->flags & TC_RENAME_NOREPLACE)
		return -EEXIST;
	if (S_ISDIR(r->src->body->meta.mode) &&
	    !S_ISDIR(r->dst->body->meta.mode))
		return -ENOTDIR;
	if (!S_ISDIR(r->src->body->meta.mode) &&
	    S_ISDIR(r->dst->body->meta.mode))
		return -EISDIR;
	if (S_ISDIR(r->dst->body->meta.mode) &&
	    !tc_index_dir_empty(&eng->ix, r->dst->ino))
		return -ENOTEMPTY;
	return 0;
}

static int exchange_locked(struct tc_engine *eng, struct rename_op *r)
{
	char tmp[40];
	int rc;

	/* Swap through a name no user can create (it contains '/'). */
	snprintf(tmp, sizeof(tmp), "/x%llu", (unsigned long long)r->src->ino);
	rc = tc_index_dentry_move(&eng->ix, r->sp, r->sn, r->sp, tmp);
	if (!rc)
		rc = tc_index_dentry_move(&eng->ix, r->dp, r->dn, r->sp, r->sn);
	if (!rc)
		rc = tc_index_dentry_move(&eng->ix, r->sp, tmp, r->dp, r->dn);
	if (!rc && r->sdir != r->ddir) {
		int sd = S_ISDIR(r->src->body->meta.mode),
		    dd = S_ISDIR(r->dst->body->meta.mode);
		r->sdir->body->meta.nlink += (uint32_t)(dd - sd);
		r->ddir->body->meta.nlink += (uint32_t)(sd - dd);
	}
	return rc;
}

static int rename_apply_locked(struct tc_engine *eng, struct rename_op *r)
{
	int64_t now = tc_now(eng);
	uint64_t snlink = r->sdir->body->meta.nlink;
	uint64_t dnlink = r->ddir->body->meta.nlink;
	int rc = 0;

	tc_txn_note_name_locked(eng, r->sp, r->sn, r->src->ino);
	tc_txn_note_name_locked(eng, r->dp, r->dn, r->src->ino);
	if (r->flags & TC_RENAME_EXCHANGE) {
		rc = exchange_locked(eng, r);
		r->dst->body->meta.ctime = now;
	} else {
		if (r->dst)
			rc = tc_ns_remove_dentry_locked(eng, r->ddir, r->dn,
							r->dst);
		if (!rc)
			rc = tc_index_dentry_move(&eng->ix, r->sp, r->sn, r->dp,
						  r->dn);
		if (!rc && S_ISDIR(r->src->body->meta.mode) &&
		    r->sdir != r->ddir) {
			r->sdir->body->meta.nlink--;
			r->ddir->body->meta.nlink++;
		}
	}
	r->src->body->meta.ctime = now;
	r->sdir->body->meta.mtime = r->sdir->body->meta.ctime = now;
	r->ddir->body->meta.mtime = r->ddir->body->meta.ctime = now;
	if (!rc)
		rc = tc_index_inode_links(&eng->ix, &r->src->body->meta);
	if (!rc && r->dst)
		rc = tc_index_inode_links(&eng->ix, &r->dst->body->meta);
	if (!rc)
		rc = tc_node_dir_changed_locked(
		    eng, r->sdir, r->sdir->body->meta.nlink != snlink);
	if (!rc && r->ddir != r->sdir)
		rc = tc_node_dir_changed_locked(
		    eng, r->ddir, r->ddir->body->meta.nlink != dnlink);
	return rc;
}

int tc_rename(struct tc_engine *eng, uint64_t parent, const char *name,
	      uint64_t newparent, const char *newname, unsigned int flags)
{
	struct tc_inval_list inv = { 0 };
	struct rename_op r = { .sp = parent, .dp = newparent, .sn = name,
			       .dn = newname, .flags = flags };
	char old_path[TC_SHARED_PATH_MAX + 1];
	int rc;

	if (flags & ~(unsigned)(TC_RENAME_NOREPLACE | TC_RENAME_EXCHANGE) ||
	    (flags & TC_RENAME_NOREPLACE && flags & TC_RENAME_EXCHANGE))
		return -EINVAL;
	rc = tc_ns_check_name(name);
	if (!rc)
		rc = tc_ns_check_name(newname);
	if (rc)
		return rc;
	tc_lock(eng);
	rc = tc_ns_dir_get_locked(eng, parent, &r.sdir);
	if (!rc)
		rc = tc_ns_dir_get_locked(eng, newparent, &r.ddir);
	if (!rc)
		rc = tc_ns_find_locked(eng, parent, name, &r.src, &inv);
	if (rc)
		goto out;
	rc = tc_ns_find_locked(eng, newparent, newname, &r.dst, &inv);
	if (rc && rc != -ENOENT)
		goto out;
	rc = rename_check_locked(eng, &r);
	if (rc || (r.dst && r.dst->ino == r.src->ino))
		goto out; /* renaming a link onto itself does nothing */
	/* Where it was, for the shared tier's tombstones. */
	if (eng->shared && tc_node_path_locked(eng, r.src->ino, old_path,
					       sizeof(old_path)))
		old_path[0] = '\0';
	rc = tc_txn_begin_locked(eng);
	if (rc)
		goto out;
	rc = tc_txn_end_locked(eng, rename_apply_locked(eng, &r));
	if (rc) {
		tc_node_reload_locked(eng, (struct tc_node *[]){ r.sdir, r.ddir,
								r.src, r.dst },
				      4);
		goto out;
	}
	if (!r.dst)
		tc_ns_unnote_miss_locked(eng, newparent, newname);
	if (eng->shared && flags & TC_RENAME_EXCHANGE) {
		tc_sharedpub_moved_locked(eng, r.src->ino, NULL);
		tc_sharedpub_moved_locked(eng, r.dst->ino, NULL);
	} else if (eng->shared && old_path[0]) {
		tc_sharedpub_moved_locked(eng, r.src->ino, old_path);
	}
out:
	for (int i = 0; i < 4; i++) {
		struct tc_node *v[] = { r.dst, r.src, r.ddir, r.sdir };
		if (v[i])
			tc_node_unpin_locked(eng, v[i]);
	}
	tc_unlock(eng);
	tc_inval_deliver(eng, &inv);
	return rc;
}
