/* SPDX-License-Identifier: MIT */
/*
 * request.c - what every FUSE handler needs of a request: the daemon's state
 * and a handle's engine file, the timeouts and entries of replies (an entry
 * whose reference the kernel did not take is dropped at once, so lookup
 * counts never leak), the caller's identity, which inodes are the daemon's
 * own (.stats, .tags and its files, snapshots), and the names reserved for
 * them.
 *
 * The handlers (ops.c, fileops.c, dirops.c, xattrops.c) all stand on this
 * file; it calls nothing of theirs.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "tcfs.h"

struct tcfs *tcfs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

struct tc_file *tcfs_file(const struct fuse_file_info *fi)
{
	return (struct tc_file *)(uintptr_t)fi->fh;
}

/* Deadlines closer than this are not halved (see tcfs_timeout_of). */
#define TCFS_HALVE_MIN_NS INT64_C(50000000)

/* Timeout of a reply, in seconds: what the entry allows, at most
 * fs->timeout_max_ns (60 s, or revalidate= in kernel mode, and at most
 * shared_revalidate= with a shared tier). */
static double tcfs_timeout_of(const struct tcfs *fs, int64_t valid_ns)
{
	if (valid_ns <= 0)
		return 0.0;
	/* Kernel mode: revalidations are our only sign of reads, so an entry
	 * with a deadline is looked up again halfway to it, while a sliding
	 * one can still be kept alive (and an expired one is gone sooner). */
	if (fs->kernel && valid_ns != INT64_MAX &&
	    valid_ns > TCFS_HALVE_MIN_NS)
		valid_ns /= 2;
	if (valid_ns >= fs->timeout_max_ns)
		return (double)fs->timeout_max_ns / 1e9;
	return (double)valid_ns / 1e9;
}

double tcfs_timeout(fuse_req_t req, int64_t valid_ns)
{
	return tcfs_timeout_of(tcfs_of(req), valid_ns);
}

void tcfs_entry_fill(fuse_req_t req, struct fuse_entry_param *e,
		     const struct tc_attr *a)
{
	memset(e, 0, sizeof(*e));
	e->ino = a->st.st_ino;
	e->attr = a->st;
	e->attr_timeout = tcfs_timeout(req, a->valid_ns);
	e->entry_timeout = e->attr_timeout;
	/* A snapshot of .stats, a file of /.tags: the next path walk must
	 * look the name up again (snapshots.c, tags.c). */
	if (tcfs_snap_ino(e->ino) || tcfs_tagfile_ino(e->ino))
		e->entry_timeout = 0.0;
}

/* The inode is the daemon's own, not the engine's: .stats (a snapshot of
 * it in kernel mode), /.tags or one of its files. */
bool tcfs_is_virtual_ino(fuse_ino_t ino)
{
	return ino == TCFS_STATS_INO || tcfs_snap_ino(ino) ||
	       ino == TCFS_TAGS_INO || tcfs_tagfile_ino(ino);
}

/* A virtual file read from the text its open rendered (daemon mode). */
bool tcfs_is_text_ino(fuse_ino_t ino)
{
	return ino == TCFS_STATS_INO || tcfs_tagfile_ino(ino);
}

void tcfs_forget_one(struct tcfs *fs, fuse_ino_t ino, uint64_t nlookup)
{
	if (tcfs_snap_ino(ino))
		tcfs_snap_forget(&fs->snaps, ino, nlookup);
	else if (tcfs_tagfile_ino(ino))
		tcfs_tags_forget(&fs->tags, ino, nlookup);
	else if (!tcfs_is_virtual_ino(ino))
		tc_forget(fs->eng, ino, nlookup);
}

/* Drop a lookup reference the kernel did not take. */
static void tcfs_unref(fuse_req_t req, fuse_ino_t ino)
{
	struct tcfs *fs = tcfs_of(req);

	tcfs_forget_one(fs, ino, 1);
}

/* Reply with an entry whose lookup reference the engine took; drop it again
 * when the kernel did not get the reply. */
void tcfs_reply_entry(fuse_req_t req, const struct tc_attr *a)
{
	struct fuse_entry_param e;

	tcfs_entry_fill(req, &e, a);
	if (fuse_reply_entry(req, &e) != 0)
		tcfs_unref(req, e.ino);
}

struct tc_ctx tcfs_ctx(fuse_req_t req)
{
	const struct fuse_ctx *fc = fuse_req_ctx(req);
	struct tc_ctx c = {.uid = fc->uid, .gid = fc->gid, .umask = fc->umask};
	return c;
}

/* ------------------------------------------------------------------ */
/* Reserved names                                                     */
/* ------------------------------------------------------------------ */

bool tcfs_is_stats_name(fuse_ino_t parent, const char *name)
{
	return parent == TC_ROOT_INO && strcmp(name, TCFS_STATS_NAME) == 0;
}

bool tcfs_is_tags_name(fuse_ino_t parent, const char *name)
{
	return parent == TC_ROOT_INO && strcmp(name, TCFS_TAGS_NAME) == 0;
}

/* Answer EPERM when @name in @parent is reserved: .stats, .tags, or any
 * name in /.tags. */
bool tcfs_refuse_reserved(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (!tcfs_is_stats_name(parent, name) &&
	    !tcfs_is_tags_name(parent, name) && parent != TCFS_TAGS_INO)
		return false;
	fuse_reply_err(req, EPERM);
	return true;
}
