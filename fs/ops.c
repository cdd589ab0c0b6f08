/* SPDX-License-Identifier: MIT */
/*
 * ops.c - the FUSE low-level operations: the namespace handlers, the
 * session's init, and the table that names every handler.
 *
 * Each handler translates one kernel request into one engine call
 * (tiercache.h) and replies; errors are converted once, at the edge, with
 * fuse_reply_err(req, -rc). FUSE inode numbers are the engine's (the root is
 * 1 in both), so there is no inode table here: the engine keeps the lookup
 * counts the kernel holds. Every reply that hands the kernel a reference
 * (entry, create, readdirplus) is checked: when the kernel did not take it
 * (the request was interrupted, the mount is gone) the reference is dropped
 * at once, so lookup counts never leak.
 *
 * The handlers are split by what they work on: names and attributes here,
 * a file's content and the daemon's text files in fileops.c, listings in
 * dirops.c, extended attributes in xattrops.c. The helpers they share are
 * in request.c, declared in tcfs.h.
 *
 * Permissions are the kernel's job: whenever a user other than root can
 * reach the mount the session runs with default_permissions, so mode
 * bits, ownership, the sticky bit and chown rules are enforced before a
 * request reaches us; a mount only root can enter needs only access(2)
 * answered (tcfs_access; options.c decides). Locks (flock, fcntl) are
 * left to the kernel too, which handles them locally, as for any local
 * filesystem: getlk/setlk/flock are deliberately not implemented.
 *
 * The names .stats and .tags in the root belong to the daemon, not the
 * engine (fileops.c, snapshots.c, tags.c): a lookup of either is answered
 * here before asking the engine, and they, like every name in /.tags, are
 * reserved for every operation that would create, remove or rename them
 * (EPERM).
 *
 * cache_mode=kernel (tiercachefs(8)): the kernel's caches are the first
 * tier. The session answers OPEN, OPENDIR and FLUSH with ENOSYS, which the
 * kernel remembers for the connection: opens of existing files, closes and
 * listings of cached directories never reach us, so a hot open+read+close
 * costs no round trip (fileops.c and dirops.c say what comes instead).
 * Writes come through at once, without the writeback cache (see
 * tcfs_init_kernel).
 * ATOMIC_O_TRUNC stays off: with no OPEN the kernel would truncate only its
 * own copy, so an O_TRUNC open arrives as SETATTR(size). Entry and
 * attribute timeouts are bounded by revalidate= and each entry's deadline,
 * and every lookup is a revalidation that feeds recency (tc_touch()).
 * .stats is served by snapshots.c, one inode per lookup.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/statvfs.h>

#include "tcfs.h"

_Static_assert(TC_ROOT_INO == FUSE_ROOT_ID, "engine and FUSE root differ");

/* Largest write request: fewer round trips for big files. libfuse lowers it
 * to what its buffer holds. */
#define TCFS_MAX_WRITE (1U << 20)

/* statfs free inode count when the disk tier has no item limit. */
#define TCFS_FILES_UNLIMITED UINT32_MAX

/* ------------------------------------------------------------------ */
/* Session                                                            */
/* ------------------------------------------------------------------ */

static void tcfs_want(struct fuse_conn_info *conn, unsigned int cap)
{
	if (conn->capable & cap)
		conn->want |= cap;
}

/* cache_mode=kernel: the capabilities of the kernel as the first tier, or
 * false when this kernel lacks one of them (then the session runs in
 * daemon mode).
 *
 * No writeback cache. With it the kernel batches small writes, but it keeps
 * each regular file's times itself and writes them back synchronously: a
 * SETATTR after every create's close, after every unlink and rename (the
 * ctime), and it drops the block count at every close, so the next stat or
 * fstat (Python's open() makes one) is a GETATTR. Measured here, 6.18, one
 * round of each, against the same daemon with it: create+write+close +25%,
 * unlink +20%, Python get x1.6, a stat after reads served by the kernel
 * (x6); the price is that every write() call is a request (with the
 * kernel's security.capability query before it): 4 KiB dd writes /3.
 * A cache's values are mostly written whole and read many times. */
static bool tcfs_init_kernel(struct fuse_conn_info *conn)
{
	if (!(conn->capable & FUSE_CAP_NO_OPEN_SUPPORT))
		return false;
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	tcfs_want(conn, FUSE_CAP_NO_OPEN_SUPPORT);
	tcfs_want(conn, FUSE_CAP_NO_OPENDIR_SUPPORT);
	/* No OPEN reaches us: an O_TRUNC open must come as a SETATTR. */
	conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
	/* We drop pages ourselves when content changes under an inode;
	 * checking mtimes would only cost GETATTRs. */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	return true;
}

/* Readahead of the mount: four of the largest READs (max_write, which also
 * sets the kernel's max_pages), so that a cold sequential read keeps several
 * in flight. The kernel gives a FUSE mount 128 KiB and lets only root raise
 * it (sysfs); it takes the smaller of the knob and our reply to the init
 * request, so both are set there, before the reply. Measured here (cold
 * dd of 128 MiB): 128 KiB 0.6 GB/s, 1 MiB 1.0, 4 MiB 1.2, 8 MiB 1.1. Best
 * effort: the mount works either way (tiercachefs(8), NOTES). */
#define TCFS_READAHEAD (4 * TCFS_MAX_WRITE)

static void tcfs_raise_readahead(struct tcfs *fs, struct fuse_conn_info *conn)
{
	unsigned kb = 0;
	FILE *f;

	conn->max_readahead = TCFS_READAHEAD;
	f = fs->readahead_knob[0] ? fopen(fs->readahead_knob, "r+e") : NULL;
	if (!f)
		return;
	if (fscanf(f, "%u", &kb) == 1 && kb < TCFS_READAHEAD / 1024) {
		rewind(f);
		if (fprintf(f, "%u\n", TCFS_READAHEAD / 1024) < 0 || fflush(f))
			fuse_log(FUSE_LOG_DEBUG, "readahead stays %u KiB: %s\n",
				 kb, strerror(errno));
	}
	fclose(f);
}

static void tcfs_init(void *userdata, struct fuse_conn_info *conn)
{
	struct tcfs *fs = userdata;

	if (fs->kernel && !tcfs_init_kernel(conn)) {
		fuse_log(FUSE_LOG_WARNING,
			 "cache_mode=kernel needs a kernel with no-open "
			 "support: running as cache_mode=daemon\n");
		fs->kernel = false;
		fs->timeout_max_ns = fs->daemon_timeout_ns;
	}
	/* O_TRUNC reaches open(), so truncating opens are one request. */
	if (!fs->kernel)
		tcfs_want(conn, FUSE_CAP_ATOMIC_O_TRUNC);
	/* Reads from a blob go to the kernel by splice(2), without a copy
	 * through our memory (see tcfs_read). */
	tcfs_want(conn, FUSE_CAP_SPLICE_WRITE);
	tcfs_want(conn, FUSE_CAP_SPLICE_MOVE);
	/* Locks stay in the kernel (see the top of this file). */
	conn->want &= ~(FUSE_CAP_POSIX_LOCKS | FUSE_CAP_FLOCK_LOCKS);
	conn->max_write = TCFS_MAX_WRITE;
	tcfs_raise_readahead(fs, conn);
}

/* ------------------------------------------------------------------ */
/* Namespace                                                          */
/* ------------------------------------------------------------------ */

static void tcfs_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct tcfs *fs = tcfs_of(req);
	struct tc_attr a;
	int rc;

	if (tcfs_is_stats_name(parent, name)) {
		rc = 0;
		if (fs->kernel)
			rc = tcfs_snap_new(&fs->snaps, fs->eng, &a);
		else
			tcfs_stats_attr(&a);
		if (rc < 0)
			fuse_reply_err(req, -rc);
		else
			tcfs_reply_entry(req, &a);
		return;
	}
	if (tcfs_is_tags_name(parent, name) || parent == TCFS_TAGS_INO) {
		rc = 0;
		if (parent == TCFS_TAGS_INO)
			rc = tcfs_tags_lookup(&fs->tags, fs->eng, fs->kernel,
					      name, &a);
		else
			tcfs_tags_dir_attr(&a);
		if (rc < 0)
			fuse_reply_err(req, -rc);
		else
			tcfs_reply_entry(req, &a);
		return;
	}
	/* With a shared tier, a miss here may be another mount's publish,
	 * and a hit may have been overwritten or unlinked there. */
	rc = tc_lookup_shared(fs->eng, parent, name, &a);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	/* In kernel mode a lookup of a known name is the kernel revalidating
	 * it: the only sign of use we get for hits. */
	if (fs->kernel)
		tc_touch(fs->eng, a.st.st_ino);
	tcfs_reply_entry(req, &a);
}

static void tcfs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	tcfs_forget_one(tcfs_of(req), ino, nlookup);
	fuse_reply_none(req);
}

static void tcfs_forget_multi(fuse_req_t req, size_t count,
			      struct fuse_forget_data *forgets)
{
	struct tcfs *fs = tcfs_of(req);
	size_t i;

	for (i = 0; i < count; i++)
		tcfs_forget_one(fs, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

/* The attributes of @p ino, the daemon's own inodes included. */
static int tcfs_attr_of(fuse_req_t req, fuse_ino_t ino, struct tc_attr *a)
{
	if (ino == TCFS_STATS_INO) {
		tcfs_stats_attr(a);
		return 0;
	}
	if (ino == TCFS_TAGS_INO) {
		tcfs_tags_dir_attr(a);
		return 0;
	}
	if (tcfs_tagfile_ino(ino))
		return tcfs_tags_attr(&tcfs_of(req)->tags, ino, a);
	if (tcfs_snap_ino(ino))
		return tcfs_snap_attr(&tcfs_of(req)->snaps, ino, a);
	return tc_getattr(tcfs_of(req)->eng, ino, a);
}

static void tcfs_getattr(fuse_req_t req, fuse_ino_t ino,
			 struct fuse_file_info *fi)
{
	struct tc_attr a;
	int rc;

	(void)fi;
	rc = tcfs_attr_of(req, ino, &a);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	fuse_reply_attr(req, &a.st, tcfs_timeout(req, a.valid_ns));
}

/* access(2) and chdir(2) reach the daemon only on a mount without
 * default_permissions, where every caller is root (options.c,
 * tcfs_opts_kernel_checks): root may do anything but execute what has no
 * execute bit at all, directories excepted, as on a local filesystem. */
static void tcfs_access(fuse_req_t req, fuse_ino_t ino, int mask)
{
	struct tc_attr a;
	int rc;

	rc = tcfs_attr_of(req, ino, &a);
	if (rc == 0 && (mask & X_OK) && !S_ISDIR(a.st.st_mode) &&
	    !(a.st.st_mode & (S_IXUSR | S_IXGRP | S_IXOTH)))
		rc = -EACCES;
	fuse_reply_err(req, -rc);
}

/* FUSE_SET_ATTR_* bits to TC_SET_* bits; others are ignored. */
static int tcfs_set_mask(int valid)
{
	static const struct {
		int fuse;
		int tc;
	} map[] = {
	    {FUSE_SET_ATTR_MODE, TC_SET_MODE},
	    {FUSE_SET_ATTR_UID, TC_SET_UID},
	    {FUSE_SET_ATTR_GID, TC_SET_GID},
	    {FUSE_SET_ATTR_SIZE, TC_SET_SIZE},
	    {FUSE_SET_ATTR_ATIME, TC_SET_ATIME},
	    {FUSE_SET_ATTR_MTIME, TC_SET_MTIME},
	    {FUSE_SET_ATTR_ATIME_NOW, TC_SET_ATIME_NOW},
	    {FUSE_SET_ATTR_MTIME_NOW, TC_SET_MTIME_NOW},
	    {FUSE_SET_ATTR_CTIME, TC_SET_CTIME},
	};
	int mask = 0;
	size_t i;

	for (i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		if (valid & map[i].fuse)
			mask |= map[i].tc;
	return mask;
}

static void tcfs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr,
			 int to_set, struct fuse_file_info *fi)
{
	struct tcfs *fs = tcfs_of(req);
	struct tc_file *f = fi ? tcfs_file(fi) : NULL;
	struct tc_attr a;
	int rc;

	if (tcfs_is_virtual_ino(ino)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	/* A SETATTR is no signal to publish on (tiercachefs(8), CACHE
	 * MODES): the writes of a file come by themselves, and the engine
	 * publishes them after a quiet period. */
	rc = tc_setattr(fs->eng, ino, attr, tcfs_set_mask(to_set), f, &a);
	if (rc == 0) /* a truncate or chown that clears set-ID bits */
		rc = tcfs_proto_kill_suidgid(fs->eng, ino, &a);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	fuse_reply_attr(req, &a.st, tcfs_timeout(req, a.valid_ns));
}

static void tcfs_readlink(fuse_req_t req, fuse_ino_t ino)
{
	char buf[PATH_MAX + 1];
	int rc;

	rc = tc_readlink(tcfs_of(req)->eng, ino, buf, sizeof(buf));
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	fuse_reply_readlink(req, buf);
}

static void tcfs_mknod(fuse_req_t req, fuse_ino_t parent, const char *name,
		       mode_t mode, dev_t rdev)
{
	struct tc_ctx c = tcfs_ctx(req);
	struct tc_attr a;
	int rc;

	/* The kernel has checked CAP_MKNOD for device nodes; the mount is
	 * nodev, so they are stored with their numbers and stay inert. */
	if (tcfs_refuse_reserved(req, parent, name))
		return;
	rc = tc_mknod(tcfs_of(req)->eng, parent, name, mode, rdev, &c, &a);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	tcfs_reply_entry(req, &a);
}

static void tcfs_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name,
		       mode_t mode)
{
	tcfs_mknod(req, parent, name, (mode & ~S_IFMT) | S_IFDIR, 0);
}

static void tcfs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent,
			 const char *name)
{
	struct tc_ctx c = tcfs_ctx(req);
	struct tc_attr a;
	int rc;

	if (tcfs_refuse_reserved(req, parent, name))
		return;
	rc = tc_symlink(tcfs_of(req)->eng, parent, name, link, &c, &a);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	tcfs_reply_entry(req, &a);
}

static void tcfs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent,
		      const char *newname)
{
	struct tc_attr a;
	int rc;

	if (tcfs_is_virtual_ino(ino)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (tcfs_refuse_reserved(req, newparent, newname))
		return;
	rc = tc_link(tcfs_of(req)->eng, ino, newparent, newname, &a);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	tcfs_reply_entry(req, &a);
}

static void tcfs_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (tcfs_refuse_reserved(req, parent, name))
		return;
	fuse_reply_err(req, -tc_unlink(tcfs_of(req)->eng, parent, name));
}

static void tcfs_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	if (tcfs_refuse_reserved(req, parent, name))
		return;
	fuse_reply_err(req, -tc_rmdir(tcfs_of(req)->eng, parent, name));
}

/* Kernel mode: publish what was written to @name before it is renamed
 * (the write-then-rename idiom: close() has returned, so the kernel's
 * writes of it have all been served; after a crash the new name must hold
 * a whole version). Nothing is counted: a miss is only a lookup's. */
static void tcfs_publish_name(fuse_req_t req, fuse_ino_t parent,
			      const char *name)
{
	(void)!tc_publish_name(tcfs_of(req)->eng, parent, name);
}

static void tcfs_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
			fuse_ino_t newparent, const char *newname,
			unsigned int flags)
{
	unsigned int tcflags = 0;

	if (flags & RENAME_NOREPLACE)
		tcflags |= TC_RENAME_NOREPLACE;
	if (flags & RENAME_EXCHANGE)
		tcflags |= TC_RENAME_EXCHANGE;
	if (tcfs_refuse_reserved(req, parent, name) ||
	    tcfs_refuse_reserved(req, newparent, newname))
		return;
	/* RENAME_WHITEOUT and anything newer: not supported. */
	if (flags & ~(unsigned int)(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (tcfs_of(req)->kernel) {
		tcfs_publish_name(req, parent, name);
		if (flags & RENAME_EXCHANGE)
			tcfs_publish_name(req, newparent, newname);
	}
	fuse_reply_err(req, -tc_rename(tcfs_of(req)->eng, parent, name,
				       newparent, newname, tcflags));
}

static void tcfs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct tc_statfs s;
	struct statvfs v;
	uint64_t used;

	(void)ino;
	tc_statfs(tcfs_of(req)->eng, &s);
	memset(&v, 0, sizeof(v));
	used = s.used_bytes < s.limit_bytes ? s.used_bytes : s.limit_bytes;
	v.f_bsize = TCFS_BLOCK_SIZE;
	v.f_frsize = TCFS_BLOCK_SIZE;
	v.f_blocks = s.limit_bytes / TCFS_BLOCK_SIZE;
	v.f_bfree = (s.limit_bytes - used) / TCFS_BLOCK_SIZE;
	v.f_bavail = v.f_bfree;
	if (s.limit_items) {
		v.f_files = s.limit_items;
		v.f_ffree =
		    s.items < s.limit_items ? s.limit_items - s.items : 0;
	} else {
		v.f_ffree = TCFS_FILES_UNLIMITED;
		v.f_files = s.items + v.f_ffree;
	}
	v.f_favail = v.f_ffree;
	v.f_namemax = TC_NAME_MAX;
	fuse_reply_statfs(req, &v);
}

const struct fuse_lowlevel_ops tcfs_ops = {
    .init = tcfs_init,
    .lookup = tcfs_lookup,
    .forget = tcfs_forget,
    .forget_multi = tcfs_forget_multi,
    .getattr = tcfs_getattr,
    .access = tcfs_access,
    .setattr = tcfs_setattr,
    .readlink = tcfs_readlink,
    .mknod = tcfs_mknod,
    .mkdir = tcfs_mkdir,
    .unlink = tcfs_unlink,
    .rmdir = tcfs_rmdir,
    .symlink = tcfs_symlink,
    .rename = tcfs_rename,
    .link = tcfs_link,
    .open = tcfs_open,
    .read = tcfs_read,
    .write = tcfs_write,
    .flush = tcfs_flush,
    .release = tcfs_release,
    .fsync = tcfs_fsync,
    .fallocate = tcfs_fallocate,
    .copy_file_range = tcfs_copy_file_range,
    .opendir = tcfs_opendir,
    .readdir = tcfs_readdir,
    .readdirplus = tcfs_readdirplus,
    .releasedir = tcfs_releasedir,
    .fsyncdir = tcfs_fsyncdir,
    .statfs = tcfs_statfs,
    .setxattr = tcfs_setxattr,
    .getxattr = tcfs_getxattr,
    .listxattr = tcfs_listxattr,
    .removexattr = tcfs_removexattr,
    .create = tcfs_create,
};
