/* SPDX-License-Identifier: MIT */
/*
 * ops.c - the FUSE low-level operations.
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
 * Permissions are the kernel's job: the session always runs with
 * default_permissions, so mode bits, ownership, the sticky bit and chown
 * rules are enforced before a request reaches us. Locks (flock, fcntl) are
 * left to the kernel too, which handles them locally, as for any local
 * filesystem: getlk/setlk/flock are deliberately not implemented.
 *
 * The virtual /.stats (tiercachefs(8), STATISTICS) is the daemon's own, not
 * the engine's: its inode TCFS_STATS_INO is never allocated by the engine,
 * a lookup of ".stats" in the root is answered before asking the engine,
 * the name is reserved for every operation that would create, remove or
 * rename it (EPERM), the root's listing shows it after "..", and each
 * operation on that inode is handled by the tcfs_stats_* helpers. Every open renders the whole text
 * into the handle and opens it with direct_io, so `cat` always shows
 * exactly one fresh snapshot, whatever the size attribute says.
 *
 * The virtual /.tags directory (tiercachefs(8), TAGS) is the daemon's too,
 * served by tags.c: its name is reserved like .stats, nothing may be made,
 * removed, renamed or changed in it (EPERM), the root's listing shows it
 * after .stats, and its files are handled as .stats is in each mode (a
 * render at each open, or a snapshot per lookup in kernel mode).
 *
 * cache_mode=kernel (tiercachefs(8)): the kernel's caches are the first
 * tier. The init request asks for the writeback cache and the session
 * answers OPEN, OPENDIR and FLUSH with ENOSYS, which the kernel remembers
 * for the connection: opens of existing files, closes and listings of
 * cached directories never reach us, so a hot open+read+close costs no
 * round trip. READ and WRITE then come without handles (fh 0, or the
 * handle of a create): they go to the engine by inode (tc_read_ino() &
 * co.), and the engine publishes at fsync, at the release of a create's
 * handle, before a rename of the file, before a computed attribute is
 * read, after a quiet period and at unmount. ATOMIC_O_TRUNC stays off: with no
 * OPEN the kernel would truncate only its own copy, so an O_TRUNC open
 * arrives as SETATTR(size). Entry and attribute timeouts are bounded by
 * revalidate= and each entry's deadline, and every lookup is a
 * revalidation that feeds recency (tc_touch()). .stats is served by
 * snapshots.c, one inode per lookup. With sync=close, FLUSH is answered
 * (and publishes durably): every close then costs a round trip.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "tcfs.h"

_Static_assert(TC_ROOT_INO == FUSE_ROOT_ID, "engine and FUSE root differ");

/* Largest write request: fewer round trips for big files. libfuse lowers it
 * to what its buffer holds. */
#define TCFS_MAX_WRITE (1U << 20)

/* statfs block size: the unit df(1) counts in. */
#define TCFS_BLOCK_SIZE 4096

/* statfs free inode count when the disk tier has no item limit. */
#define TCFS_FILES_UNLIMITED UINT32_MAX

static struct tcfs *tcfs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct tc_file *tcfs_file(const struct fuse_file_info *fi)
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

static double tcfs_timeout(fuse_req_t req, int64_t valid_ns)
{
	return tcfs_timeout_of(tcfs_of(req), valid_ns);
}

static void tcfs_entry_fill(fuse_req_t req, struct fuse_entry_param *e,
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
static bool tcfs_is_virtual_ino(fuse_ino_t ino)
{
	return ino == TCFS_STATS_INO || tcfs_snap_ino(ino) ||
	       ino == TCFS_TAGS_INO || tcfs_tagfile_ino(ino);
}

/* A virtual file read from the text its open rendered (daemon mode). */
static bool tcfs_is_text_ino(fuse_ino_t ino)
{
	return ino == TCFS_STATS_INO || tcfs_tagfile_ino(ino);
}

static void tcfs_forget_one(struct tcfs *fs, fuse_ino_t ino, uint64_t nlookup)
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
static void tcfs_reply_entry(fuse_req_t req, const struct tc_attr *a)
{
	struct fuse_entry_param e;

	tcfs_entry_fill(req, &e, a);
	if (fuse_reply_entry(req, &e) != 0)
		tcfs_unref(req, e.ino);
}

static struct tc_ctx tcfs_ctx(fuse_req_t req)
{
	const struct fuse_ctx *fc = fuse_req_ctx(req);
	struct tc_ctx c = {.uid = fc->uid, .gid = fc->gid, .umask = fc->umask};
	return c;
}

/* ------------------------------------------------------------------ */
/* .stats, and what /.tags shares with it                             */
/* ------------------------------------------------------------------ */

static bool tcfs_is_stats_name(fuse_ino_t parent, const char *name)
{
	return parent == TC_ROOT_INO && strcmp(name, TCFS_STATS_NAME) == 0;
}

static bool tcfs_is_tags_name(fuse_ino_t parent, const char *name)
{
	return parent == TC_ROOT_INO && strcmp(name, TCFS_TAGS_NAME) == 0;
}

/* Answer EPERM when @name in @parent is reserved: .stats, .tags, or any
 * name in /.tags. */
static bool tcfs_refuse_reserved(fuse_req_t req, fuse_ino_t parent,
				 const char *name)
{
	if (!tcfs_is_stats_name(parent, name) &&
	    !tcfs_is_tags_name(parent, name) && parent != TCFS_TAGS_INO)
		return false;
	fuse_reply_err(req, EPERM);
	return true;
}

/* Attributes of .stats: a read-only file of the daemon's owner, changed
 * now (it is regenerated at every open). Size 0: reads use direct_io. */
static void tcfs_stats_attr(struct tc_attr *a)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	memset(a, 0, sizeof(*a));
	a->st.st_ino = TCFS_STATS_INO;
	a->st.st_mode = S_IFREG | 0444;
	a->st.st_nlink = 1;
	a->st.st_uid = geteuid();
	a->st.st_gid = getegid();
	a->st.st_blksize = TCFS_BLOCK_SIZE;
	a->st.st_atim = now;
	a->st.st_mtim = now;
	a->st.st_ctim = now;
	a->valid_ns = TCFS_TIMEOUT_MAX_NS;
}

/* Open .stats or a file of /.tags: render its text into the handle. */
static void tcfs_stats_open(fuse_req_t req, fuse_ino_t ino,
			    struct fuse_file_info *fi)
{
	struct tcfs *fs = tcfs_of(req);
	struct tcfs_text *t;
	int rc = -ENOMEM;

	/* Not even root may write it: EPERM, not EACCES. */
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	t = calloc(1, sizeof(*t));
	if (t)
		rc = ino == TCFS_STATS_INO
			     ? tcfs_stats_render(fs->eng, false, t)
			     : tcfs_tags_render(&fs->tags, fs->eng, ino, t);
	if (rc < 0) {
		if (t)
			tcfs_text_free(t);
		free(t);
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = (uintptr_t)t;
	fi->direct_io = 1;
	if (fuse_reply_open(req, fi) != 0) {
		tcfs_text_free(t);
		free(t);
	}
}

static void tcfs_stats_read(fuse_req_t req, size_t size, off_t off,
			    struct fuse_file_info *fi)
{
	struct tcfs_text *t = (struct tcfs_text *)(uintptr_t)fi->fh;

	if (off < 0 || (size_t)off >= t->len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	if (size > t->len - (size_t)off)
		size = t->len - (size_t)off;
	/* Reply from a private copy: once the reply is written the program
	 * may close the file, and the release (on another thread) frees the
	 * text while fuse_reply_buf's caller is still returning from writev
	 * (a sanitizer checks the buffer after the call). */
	{
		char *copy = malloc(size);
		if (!copy) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
		memcpy(copy, t->buf + off, size);
		fuse_reply_buf(req, copy, size);
		free(copy);
	}
}

static void tcfs_stats_release(fuse_req_t req, struct fuse_file_info *fi)
{
	struct tcfs_text *t = (struct tcfs_text *)(uintptr_t)fi->fh;

	tcfs_text_free(t);
	free(t);
	fuse_reply_err(req, 0);
}

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
 * daemon mode). */
static bool tcfs_init_kernel(struct fuse_conn_info *conn)
{
	const unsigned int need =
	    FUSE_CAP_NO_OPEN_SUPPORT | FUSE_CAP_WRITEBACK_CACHE;

	if ((conn->capable & need) != need)
		return false;
	/* Written pages stay in the kernel until it writes them back. */
	tcfs_want(conn, FUSE_CAP_WRITEBACK_CACHE);
	tcfs_want(conn, FUSE_CAP_NO_OPEN_SUPPORT);
	tcfs_want(conn, FUSE_CAP_NO_OPENDIR_SUPPORT);
	/* No OPEN reaches us: an O_TRUNC open must come as a SETATTR. */
	conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
	/* We drop pages ourselves when content changes under an inode;
	 * checking mtimes would only cost GETATTRs. */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	return true;
}

static void tcfs_init(void *userdata, struct fuse_conn_info *conn)
{
	struct tcfs *fs = userdata;

	if (fs->kernel && !tcfs_init_kernel(conn)) {
		fuse_log(FUSE_LOG_WARNING,
			 "cache_mode=kernel needs a kernel with no-open "
			 "support and the writeback cache: running as "
			 "cache_mode=daemon\n");
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

static void tcfs_getattr(fuse_req_t req, fuse_ino_t ino,
			 struct fuse_file_info *fi)
{
	struct tc_attr a;
	int rc;

	(void)fi;
	if (ino == TCFS_STATS_INO) {
		tcfs_stats_attr(&a);
		fuse_reply_attr(req, &a.st, tcfs_timeout(req, a.valid_ns));
		return;
	}
	rc = 0;
	if (ino == TCFS_TAGS_INO)
		tcfs_tags_dir_attr(&a);
	else if (tcfs_tagfile_ino(ino))
		rc = tcfs_tags_attr(&tcfs_of(req)->tags, ino, &a);
	else if (tcfs_snap_ino(ino))
		rc = tcfs_snap_attr(&tcfs_of(req)->snaps, ino, &a);
	else
		rc = tc_getattr(tcfs_of(req)->eng, ino, &a);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	fuse_reply_attr(req, &a.st, tcfs_timeout(req, a.valid_ns));
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
	/* Kernel mode: the SETATTR of mtime and ctime that follows a
	 * writeback is no signal to publish on: a background pass may send
	 * it before its WRITEs are served, and a close whose writes did not
	 * change the times sends none (tiercachefs(8), CACHE MODES). */
	rc = tc_setattr(fs->eng, ino, attr, tcfs_set_mask(to_set), f, &a);
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

/* ------------------------------------------------------------------ */
/* Content                                                            */
/* ------------------------------------------------------------------ */

/* Reply to open/create for handle @p f; when the kernel did not get it,
 * release the handle (and for create drop the entry's reference too). */
static void tcfs_reply_opened(fuse_req_t req, struct tc_file *f,
			      const struct tc_attr *created,
			      struct fuse_file_info *fi)
{
	struct fuse_entry_param e;
	int rc;

	fi->fh = (uintptr_t)f;
	fi->keep_cache = tc_file_keep_cache(f);
	/* Nothing to publish when a read-only descriptor closes: spare the
	 * kernel the flush round trip. */
	fi->noflush = (fi->flags & O_ACCMODE) == O_RDONLY;
	if (created) {
		tcfs_entry_fill(req, &e, created);
		rc = fuse_reply_create(req, &e, fi);
	} else {
		rc = fuse_reply_open(req, fi);
	}
	if (rc == 0)
		return;
	(void)tc_release(f);
	if (created)
		tc_forget(tcfs_of(req)->eng, created->st.st_ino, 1);
}

static void tcfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct tc_file *f;
	int rc;

	/* Kernel mode: the kernel remembers this answer for the connection
	 * and opens every existing file on its own from then on. */
	if (tcfs_of(req)->kernel) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	if (tcfs_is_text_ino(ino)) {
		tcfs_stats_open(req, ino, fi);
		return;
	}
	rc = tc_open(tcfs_of(req)->eng, ino, fi->flags, &f);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	tcfs_reply_opened(req, f, NULL, fi);
}

/* create() of a name that appeared since the kernel's lookup: without
 * O_EXCL this is a plain open of the existing file. Takes a lookup
 * reference on success, like tc_create(). */
static int tcfs_open_existing(struct tc_engine *eng, fuse_ino_t parent,
			      const char *name, int flags, struct tc_attr *a,
			      struct tc_file **f)
{
	int rc;

	rc = tc_lookup(eng, parent, name, a);
	if (rc < 0)
		return rc;
	rc = S_ISDIR(a->st.st_mode) ? -EISDIR
				    : tc_open(eng, a->st.st_ino, flags, f);
	if (rc < 0)
		tc_forget(eng, a->st.st_ino, 1);
	return rc;
}

/*
 * Kernel mode: create without a handle. Once the kernel has had ENOSYS for
 * an OPEN it sends no RELEASE for the files it creates either (measured on
 * 6.18), so a handle would never be freed; the node is made as by mknod,
 * its writes come by inode like any other's, and fh 0 tells a RELEASE that
 * still comes (before the first OPEN) that there is nothing to free.
 */
static void tcfs_create_kernel(fuse_req_t req, fuse_ino_t parent,
			       const char *name, mode_t mode,
			       struct fuse_file_info *fi)
{
	struct tc_engine *eng = tcfs_of(req)->eng;
	struct tc_ctx c = tcfs_ctx(req);
	struct fuse_entry_param e;
	struct stat zero;
	struct tc_attr a;
	int rc;

	rc = tc_mknod(eng, parent, name, (mode & 07777) | S_IFREG, 0, &c, &a);
	if (rc == -EEXIST && !(fi->flags & O_EXCL)) {
		rc = tc_lookup(eng, parent, name, &a);
		if (rc == 0 && S_ISDIR(a.st.st_mode)) {
			tc_forget(eng, a.st.st_ino, 1);
			rc = -EISDIR;
		} else if (rc == 0 && (fi->flags & O_TRUNC) &&
			   (fi->flags & O_ACCMODE) != O_RDONLY) {
			memset(&zero, 0, sizeof(zero));
			rc = tc_setattr(eng, a.st.st_ino, &zero, TC_SET_SIZE,
					NULL, &a);
			if (rc < 0)
				tc_forget(eng, a.st.st_ino, 1);
		}
	}
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	fi->fh = 0;
	fi->keep_cache = 1;
	tcfs_entry_fill(req, &e, &a);
	if (fuse_reply_create(req, &e, fi) != 0)
		tc_forget(eng, e.ino, 1);
}

static void tcfs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
			mode_t mode, struct fuse_file_info *fi)
{
	struct tc_engine *eng = tcfs_of(req)->eng;
	struct tc_ctx c = tcfs_ctx(req);
	struct tc_file *f;
	struct tc_attr a;
	int rc;

	if (tcfs_refuse_reserved(req, parent, name))
		return;
	if (tcfs_of(req)->kernel) {
		tcfs_create_kernel(req, parent, name, mode, fi);
		return;
	}
	rc = tc_create(eng, parent, name, mode, fi->flags, &c, &a, &f);
	if (rc == -EEXIST && !(fi->flags & O_EXCL))
		rc = tcfs_open_existing(eng, parent, name, fi->flags, &a, &f);
	if (rc < 0) {
		fuse_reply_err(req, -rc);
		return;
	}
	tcfs_reply_opened(req, f, &a, fi);
}

/* Read from the memory copy (RAM tier or unpublished writes). */
static void tcfs_read_copy(fuse_req_t req, struct tc_file *f, size_t size,
			   off_t off)
{
	char *buf = malloc(size ? size : 1);
	ssize_t n;

	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n = tc_read(f, buf, size, off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

/* Kernel mode: read by inode (no handle, or a create's: the kernel also
 * reads pages of files opened write-only). */
static void tcfs_read_ino(fuse_req_t req, fuse_ino_t ino, size_t size,
			  off_t off)
{
	struct tc_engine *eng = tcfs_of(req)->eng;
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);
	bool virt = tcfs_is_virtual_ino(ino);
	char *buf;
	ssize_t n;
	off_t pos;
	int fd, rc;

	rc = virt ? -EAGAIN : tc_read_fd_ino(eng, ino, off, size, &fd, &pos);
	if (rc == -EIO) {
		fuse_reply_err(req, EIO);
		return;
	}
	if (rc == 0) {
		bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		bv.buf[0].fd = fd;
		bv.buf[0].pos = pos;
		fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
		close(fd); /* the reply has been written */
		return;
	}
	buf = malloc(size ? size : 1);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	if (tcfs_snap_ino(ino))
		n = (ssize_t)tcfs_snap_read(&tcfs_of(req)->snaps, ino, buf,
					    size, off < 0 ? 0 : (uint64_t)off);
	else if (tcfs_tagfile_ino(ino))
		n = (ssize_t)tcfs_tags_read(&tcfs_of(req)->tags, ino, buf,
					    size, off < 0 ? 0 : (uint64_t)off);
	else if (virt)
		n = -EISDIR;
	else
		n = tc_read_ino(eng, ino, buf, size, off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
	free(buf);
}

static void tcfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(size);
	struct tc_file *f;
	off_t pos;
	int fd, rc;

	if (tcfs_of(req)->kernel) {
		tcfs_read_ino(req, ino, size, off);
		return;
	}
	if (tcfs_is_text_ino(ino)) {
		tcfs_stats_read(req, size, off, fi);
		return;
	}
	f = tcfs_file(fi);
	rc = tc_read_fd(f, off, size, &fd, &pos);
	if (rc == -EIO) {
		fuse_reply_err(req, EIO);
		return;
	}
	if (rc < 0) {
		tcfs_read_copy(req, f, size, off);
		return;
	}
	/* Published content in a blob file (a chunk of it): libfuse splices
	 * it to the kernel (or copies it when splice is not available); a
	 * short read at the end of the file is handled there. */
	bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	bv.buf[0].fd = fd;
	bv.buf[0].pos = pos;
	fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
}

static void tcfs_write(fuse_req_t req, fuse_ino_t ino, const char *buf,
		       size_t size, off_t off, struct fuse_file_info *fi)
{
	ssize_t n;

	if (tcfs_is_virtual_ino(ino)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	/* Kernel mode: the writeback cache computed the offset (O_APPEND
	 * included) and may write a create's pages with fh 0 or the other
	 * way round: the inode's dirty state is what counts. */
	if (tcfs_of(req)->kernel)
		n = tc_write_ino(tcfs_of(req)->eng, ino, buf, size, off);
	else
		n = tc_write(tcfs_file(fi), buf, size, off);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

static void tcfs_flush(fuse_req_t req, fuse_ino_t ino,
		       struct fuse_file_info *fi)
{
	struct tcfs *fs = tcfs_of(req);

	if (tcfs_is_virtual_ino(ino)) {
		fuse_reply_err(req, fs->kernel && !fs->flush_publishes ? ENOSYS
								      : 0);
		return;
	}
	/* Kernel mode: ENOSYS, remembered for the connection, keeps closes
	 * in the kernel; with sync=close every close publishes durably. */
	if (fs->kernel) {
		fuse_reply_err(req, fs->flush_publishes
					? -tc_publish_ino(fs->eng, ino, true)
					: ENOSYS);
		return;
	}
	fuse_reply_err(req, -tc_flush(tcfs_file(fi)));
}

static void tcfs_release(fuse_req_t req, fuse_ino_t ino,
			 struct fuse_file_info *fi)
{
	if (tcfs_is_text_ino(ino) && fi->fh) {
		tcfs_stats_release(req, fi);
		return;
	}
	if (!fi->fh) { /* kernel mode: a file the kernel opened itself */
		fuse_reply_err(req, 0);
		return;
	}
	/* The kernel ignores the result; the engine has logged a failure. */
	fuse_reply_err(req, -tc_release(tcfs_file(fi)));
}

static void tcfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
		       struct fuse_file_info *fi)
{
	if (tcfs_is_virtual_ino(ino)) {
		fuse_reply_err(req, 0);
		return;
	}
	if (tcfs_of(req)->kernel || !fi->fh) {
		fuse_reply_err(req, -tc_publish_ino(tcfs_of(req)->eng, ino,
						    true));
		return;
	}
	fuse_reply_err(req, -tc_fsync(tcfs_file(fi), datasync != 0));
}

static void tcfs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
			   off_t len, struct fuse_file_info *fi)
{
	if (tcfs_is_virtual_ino(ino)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	/* Never ENOSYS: the kernel would stop asking for every mode. */
	if (tcfs_of(req)->kernel || !fi->fh)
		fuse_reply_err(req, -tc_fallocate_ino(tcfs_of(req)->eng, ino,
						      mode, off, len));
	else
		fuse_reply_err(req,
			       -tc_fallocate(tcfs_file(fi), mode, off, len));
}

static void tcfs_copy_file_range(fuse_req_t req, fuse_ino_t ino_in,
				 off_t off_in, struct fuse_file_info *fi_in,
				 fuse_ino_t ino_out, off_t off_out,
				 struct fuse_file_info *fi_out, size_t len,
				 int flags)
{
	ssize_t n;

	(void)fi_in;
	(void)fi_out;
	if (tcfs_is_virtual_ino(ino_in) || tcfs_is_virtual_ino(ino_out)) {
		/* Never ENOSYS: the kernel would stop asking. */
		fuse_reply_err(req, tcfs_is_virtual_ino(ino_out) ? EPERM : EINVAL);
		return;
	}
	if (flags) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	n = tc_copy_range(tcfs_of(req)->eng, ino_in, off_in, ino_out, off_out,
			  len);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

/* ------------------------------------------------------------------ */
/* Directories                                                        */
/* ------------------------------------------------------------------ */

static void tcfs_opendir(fuse_req_t req, fuse_ino_t ino,
			 struct fuse_file_info *fi)
{
	/* Kernel mode: the kernel caches listings; a change it did not make
	 * drops them (inval.c). */
	if (tcfs_of(req)->kernel) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	if (tcfs_is_virtual_ino(ino) && ino != TCFS_TAGS_INO) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	fi->fh = 0; /* listings resume from the cookie, no handle state */
	fuse_reply_open(req, fi);
}

/* A reply buffer being filled by tc_readdir(). */
struct tcfs_dirbuf {
	fuse_req_t req;
	bool plus;
	bool root; /* listing the root: .stats comes after ".." */
	char *buf;
	size_t size;
	size_t used;
	/* With plus: the inodes whose lookup reference the engine took for
	 * entries in buf, to drop them if the reply does not reach the
	 * kernel. */
	uint64_t *refs;
	size_t n_refs;
	size_t cap_refs;
	bool oom; /* stopped early for lack of memory */
};

static bool tcfs_is_dot(const char *name)
{
	return strcmp(name, ".") == 0 || strcmp(name, "..") == 0;
}

/* Room for one more reference; false when memory is short. */
static bool tcfs_dirbuf_ref_room(struct tcfs_dirbuf *d)
{
	size_t cap = d->cap_refs ? 2 * d->cap_refs : 64;
	uint64_t *r;

	if (d->n_refs < d->cap_refs)
		return true;
	r = realloc(d->refs, cap * sizeof(*r));
	if (!r)
		return false;
	d->refs = r;
	d->cap_refs = cap;
	return true;
}

/* Add one readdirplus entry. @return its size (> room: it did not fit). */
static size_t tcfs_dirbuf_add_plus(struct tcfs_dirbuf *d, const char *name,
				   const struct tc_attr *attr, uint64_t off)
{
	size_t room = d->size - d->used;
	struct fuse_entry_param e;
	struct tc_attr stats;
	bool ref;
	size_t len;

	if (attr->st.st_ino == TCFS_STATS_INO) {
		tcfs_stats_attr(&stats);
		attr = &stats;
	}
	tcfs_entry_fill(d->req, &e, attr);
	/* only the engine's inodes are counted (and dropped on failure) */
	ref = !tcfs_is_dot(name) && !tcfs_is_virtual_ino(e.ino);
	/* attributes only, the kernel takes no reference: the dots, and in
	 * kernel mode .stats (whose every lookup is a new snapshot) */
	if (tcfs_is_dot(name) ||
	    (e.ino == TCFS_STATS_INO && tcfs_of(d->req)->kernel))
		e.ino = 0;
	if (ref && !tcfs_dirbuf_ref_room(d)) {
		d->oom = true;
		return room + 1;
	}
	len = fuse_add_direntry_plus(d->req, d->buf + d->used, room, name, &e,
				     (off_t)off);
	if (len <= room && ref)
		d->refs[d->n_refs++] = e.ino;
	return len;
}

/* The daemon's entries in the root's listing come right after "..", whose
 * cookie is 2: .stats at 3, .tags at 4; the engine's cookies above 2 are
 * shifted up by TCFS_ROOT_VIRTUAL there. */
#define TCFS_ROOT_VIRTUAL 2
#define TCFS_ROOT_FIRST_COOKIE 3

static int tcfs_dirbuf_put(struct tcfs_dirbuf *d, const char *name,
			   const struct tc_attr *attr, uint64_t off);

/* Add the daemon's entries from cookie @from on to a listing of the root:
 * 1 when the buffer is full. */
static int tcfs_dirbuf_add_virtual(struct tcfs_dirbuf *d, uint64_t from)
{
	struct tc_attr a;

	if (from <= TCFS_ROOT_FIRST_COOKIE) {
		tcfs_stats_attr(&a);
		if (tcfs_dirbuf_put(d, TCFS_STATS_NAME, &a,
				    TCFS_ROOT_FIRST_COOKIE))
			return 1;
	}
	tcfs_tags_dir_attr(&a);
	return tcfs_dirbuf_put(d, TCFS_TAGS_NAME, &a,
			       TCFS_ROOT_FIRST_COOKIE + 1);
}

/* tc_dirent_fn: 0 when the entry was taken, 1 when the buffer is full. */
static int tcfs_dirbuf_add(void *ctx, const char *name,
			   const struct tc_attr *attr, uint64_t off)
{
	struct tcfs_dirbuf *d = ctx;

	if (!d->root)
		return tcfs_dirbuf_put(d, name, attr, off);
	if (off < TCFS_ROOT_FIRST_COOKIE) {
		if (tcfs_dirbuf_put(d, name, attr, off))
			return 1;
		return off == TCFS_ROOT_FIRST_COOKIE - 1
			       ? tcfs_dirbuf_add_virtual(d,
							 TCFS_ROOT_FIRST_COOKIE)
			       : 0;
	}
	return tcfs_dirbuf_put(d, name, attr, off + TCFS_ROOT_VIRTUAL);
}

static int tcfs_dirbuf_put(struct tcfs_dirbuf *d, const char *name,
			   const struct tc_attr *attr, uint64_t off)
{
	size_t room = d->size - d->used;
	size_t len;

	if (d->plus)
		len = tcfs_dirbuf_add_plus(d, name, attr, off);
	else
		len = fuse_add_direntry(d->req, d->buf + d->used, room, name,
					&attr->st, (off_t)off);
	if (len > room)
		return 1;
	d->used += len;
	return 0;
}

static void tcfs_dirbuf_unref(struct tcfs_dirbuf *d)
{
	struct tc_engine *eng = tcfs_of(d->req)->eng;
	size_t i;

	for (i = 0; i < d->n_refs; i++)
		tc_forget(eng, d->refs[i], 1);
}

static void tcfs_do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size,
			    off_t off, bool plus)
{
	struct tcfs_dirbuf d = {.req = req, .plus = plus, .size = size,
				.root = ino == TC_ROOT_INO};
	uint64_t from = (uint64_t)off;
	bool full = false;
	int rc = 0;

	if (ino == TCFS_TAGS_INO) {
		tcfs_tags_readdir(req, tcfs_of(req)->eng, size, off, plus);
		return;
	}
	if (tcfs_is_virtual_ino(ino)) {
		fuse_reply_err(req, ENOTDIR);
		return;
	}
	d.buf = malloc(size ? size : 1);
	if (!d.buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	/* The root resumes after "..": the daemon's entries not listed yet
	 * (.stats and .tags), then the engine's; after them, in the engine's
	 * cookies. */
	if (d.root && from >= TCFS_ROOT_FIRST_COOKIE - 1 &&
	    from < TCFS_ROOT_FIRST_COOKIE + TCFS_ROOT_VIRTUAL - 1 &&
	    tcfs_dirbuf_add_virtual(&d, from + 1))
		full = true; /* the rest comes in the next reply */
	if (full && d.used == 0)
		rc = -EINVAL; /* not even one entry fits */
	if (d.root && from >= TCFS_ROOT_FIRST_COOKIE - 1)
		from = from >= TCFS_ROOT_FIRST_COOKIE + TCFS_ROOT_VIRTUAL
			       ? from - TCFS_ROOT_VIRTUAL
			       : TCFS_ROOT_FIRST_COOKIE - 1;
	if (!rc && !full)
		rc = tc_readdir(tcfs_of(req)->eng, ino, from, plus,
				tcfs_dirbuf_add, &d);
	/* An empty reply would mean the end of the directory. */
	if (rc == 0 && d.oom && d.used == 0)
		rc = -ENOMEM;
	if (rc < 0) {
		tcfs_dirbuf_unref(&d);
		fuse_reply_err(req, -rc);
	} else if (fuse_reply_buf(req, d.buf, d.used) != 0) {
		tcfs_dirbuf_unref(&d);
	}
	free(d.refs);
	free(d.buf);
}

static void tcfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			 struct fuse_file_info *fi)
{
	(void)fi;
	tcfs_do_readdir(req, ino, size, off, false);
}

static void tcfs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size,
			     off_t off, struct fuse_file_info *fi)
{
	(void)fi;
	tcfs_do_readdir(req, ino, size, off, true);
}

static void tcfs_releasedir(fuse_req_t req, fuse_ino_t ino,
			    struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

static void tcfs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			  struct fuse_file_info *fi)
{
	/* Namespace changes reach the index in groups: commit and sync the
	 * group now (as sync= allows), so a rename or an unlink followed by
	 * fsync of its directory survives a crash. */
	(void)ino;
	(void)datasync;
	(void)fi;
	fuse_reply_err(req, -tc_sync(tcfs_of(req)->eng));
}

/* ------------------------------------------------------------------ */
/* Extended attributes                                                */
/* ------------------------------------------------------------------ */

static void tcfs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			  const char *value, size_t size, int flags)
{
	if (tcfs_is_virtual_ino(ino)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	fuse_reply_err(req, -tc_setxattr(tcfs_of(req)->eng, ino, name, value,
					 size, flags));
}

/* Reply to getxattr/listxattr: the length when @p size is 0, else the
 * value. @p n is the engine's result for the same @p size. */
static void tcfs_reply_xattr(fuse_req_t req, size_t size, const char *buf,
			     ssize_t n)
{
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else if (size == 0)
		fuse_reply_xattr(req, (size_t)n);
	else
		fuse_reply_buf(req, buf, (size_t)n);
}

static void tcfs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name,
			  size_t size)
{
	char *buf = NULL;
	ssize_t n;

	if (tcfs_is_virtual_ino(ino)) {
		fuse_reply_err(req, ENODATA);
		return;
	}
	/* Kernel mode: what the kernel wrote back may wait for a quiet
	 * period; the computed attributes (hash, tier) describe what was
	 * written, so publish it first. */
	if (tcfs_of(req)->kernel &&
	    strncmp(name, TC_XATTR_PREFIX, strlen(TC_XATTR_PREFIX)) == 0)
		(void)!tc_publish_ino(tcfs_of(req)->eng, ino, false);
	if (size > 0) {
		buf = malloc(size);
		if (!buf) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
	}
	n = tc_getxattr(tcfs_of(req)->eng, ino, name, buf, size);
	tcfs_reply_xattr(req, size, buf, n);
	free(buf);
}

static void tcfs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	char *buf = NULL;
	ssize_t n;

	if (tcfs_is_virtual_ino(ino)) {
		tcfs_reply_xattr(req, size, NULL, 0);
		return;
	}
	if (size > 0) {
		buf = malloc(size);
		if (!buf) {
			fuse_reply_err(req, ENOMEM);
			return;
		}
	}
	n = tc_listxattr(tcfs_of(req)->eng, ino, buf, size);
	tcfs_reply_xattr(req, size, buf, n);
	free(buf);
}

static void tcfs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	if (tcfs_is_virtual_ino(ino)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	fuse_reply_err(req, -tc_removexattr(tcfs_of(req)->eng, ino, name));
}

const struct fuse_lowlevel_ops tcfs_ops = {
    .init = tcfs_init,
    .lookup = tcfs_lookup,
    .forget = tcfs_forget,
    .forget_multi = tcfs_forget_multi,
    .getattr = tcfs_getattr,
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
