/* SPDX-License-Identifier: MIT */
/*
 * fileops.c - the FUSE operations on a file's content: open, create, read,
 * write, flush, release, fsync, fallocate and copy_file_range, and the
 * daemon's own text files (.stats and the files of /.tags).
 *
 * In daemon mode every open or create of one of the engine's files gets an
 * engine handle (struct tc_file) in fi->fh, and the requests on the
 * descriptor go through it. Published content is read straight from its
 * blob file and spliced to the kernel; what lives only in memory (the RAM
 * tier, unpublished writes) is copied into the reply.
 *
 * The virtual /.stats (tiercachefs(8), STATISTICS) is the daemon's own, not
 * the engine's: its inode TCFS_STATS_INO is never allocated by the engine,
 * and each operation on that inode is handled by the tcfs_stats_* helpers
 * below. Every open renders the whole text into the handle and opens it
 * with direct_io, so `cat` always shows exactly one fresh snapshot,
 * whatever the size attribute says. The files of /.tags (tiercachefs(8),
 * TAGS; rendered by tags.c) are opened and read the same way. Nothing may
 * write to either (EPERM).
 *
 * cache_mode=kernel (tiercachefs(8)): OPEN is answered with ENOSYS, which
 * the kernel remembers for the connection, and from then on it opens
 * existing files on its own. READ and WRITE then come without handles
 * (fh 0: a create replies without one too, see tcfs_create_kernel): they
 * go to the engine by inode (tc_read_ino() & co.), and the engine
 * publishes at fsync, before a rename of the file, before a computed
 * attribute is read, after a quiet period and at unmount. FLUSH is
 * answered with ENOSYS as well, so closes stay in the kernel; with
 * sync=close it is answered (and publishes durably) instead, and every
 * close then costs a round trip. .stats and the files of /.tags are then
 * snapshots taken at lookup and read by inode (snapshots.c, tags.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tcfs.h"

/* ------------------------------------------------------------------ */
/* The daemon's text files: .stats and the files of /.tags            */
/* ------------------------------------------------------------------ */

/* Attributes of .stats: a read-only file of the daemon's owner, changed
 * now (it is regenerated at every open). Size 0: reads use direct_io. */
void tcfs_stats_attr(struct tc_attr *a)
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

/* Clear set-ID bits when the open asked for it (proto.c); on failure the
 * handle @f is released. */
static int tcfs_open_kill(struct tc_engine *eng, fuse_ino_t ino,
			  struct tc_file *f)
{
	int rc = tcfs_proto_kill_suidgid(eng, ino, NULL);

	if (rc < 0)
		(void)tc_release(f);
	return rc;
}

void tcfs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
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
	if (rc == 0) /* an O_TRUNC open that clears set-ID bits */
		rc = tcfs_open_kill(tcfs_of(req)->eng, ino, f);
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
	if (rc == 0)
		rc = tcfs_open_kill(eng, a->st.st_ino, *f);
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
			if (rc == 0)
				rc = tcfs_proto_kill_suidgid(eng, a.st.st_ino,
							     &a);
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

void tcfs_create(fuse_req_t req, fuse_ino_t parent, const char *name,
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

/* Reply with published bytes: spliced from their blob file (or copied by
 * libfuse when splice is not available), or sent straight from the RAM
 * item that holds them. */
static void tcfs_reply_span(fuse_req_t req, struct tc_span *s)
{
	struct fuse_bufvec bv = FUSE_BUFVEC_INIT(s->len);

	if (s->fd < 0) {
		fuse_reply_buf(req, s->data, s->len);
	} else {
		bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		bv.buf[0].fd = s->fd;
		bv.buf[0].pos = s->pos;
		fuse_reply_data(req, &bv, FUSE_BUF_SPLICE_MOVE);
	}
	tc_span_done(s); /* the reply has been written */
}

/* Kernel mode: read by inode (no handle, or a create's: the kernel also
 * reads pages of files opened write-only). */
static void tcfs_read_ino(fuse_req_t req, fuse_ino_t ino, size_t size,
			  off_t off)
{
	struct tc_engine *eng = tcfs_of(req)->eng;
	bool virt = tcfs_is_virtual_ino(ino);
	struct tc_span sp;
	char *buf;
	ssize_t n;
	int rc;

	rc = virt ? -EAGAIN : tc_read_span_ino(eng, ino, off, size, &sp);
	if (rc == -EIO) {
		fuse_reply_err(req, EIO);
		return;
	}
	if (rc == 0) {
		tcfs_reply_span(req, &sp);
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

void tcfs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
	       struct fuse_file_info *fi)
{
	struct tc_file *f;
	struct tc_span sp;
	int rc;

	if (tcfs_of(req)->kernel) {
		tcfs_read_ino(req, ino, size, off);
		return;
	}
	if (tcfs_is_text_ino(ino)) {
		tcfs_stats_read(req, size, off, fi);
		return;
	}
	f = tcfs_file(fi);
	rc = tc_read_span(f, off, size, &sp);
	if (rc == -EIO) {
		fuse_reply_err(req, EIO);
		return;
	}
	if (rc < 0)
		tcfs_read_copy(req, f, size, off);
	else
		tcfs_reply_span(req, &sp);
}

void tcfs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
		off_t off, struct fuse_file_info *fi)
{
	ssize_t n;

	if (tcfs_is_virtual_ino(ino)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	/* Kernel mode: the kernel computed the offset (O_APPEND included,
	 * from its size of the file) and may send a create's writes with fh
	 * 0 or the other way round: the inode's dirty state is what counts. */
	if (tcfs_of(req)->kernel)
		n = tc_write_ino(tcfs_of(req)->eng, ino, buf, size, off);
	else
		n = tc_write(tcfs_file(fi), buf, size, off);
	/* A write by someone without CAP_FSETID clears set-ID bits. */
	if (n >= 0) {
		int rc = tcfs_proto_kill_suidgid(tcfs_of(req)->eng, ino, NULL);
		if (rc < 0)
			n = rc;
	}
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, (size_t)n);
}

void tcfs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
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

void tcfs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
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

void tcfs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
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

void tcfs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off,
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

void tcfs_copy_file_range(fuse_req_t req, fuse_ino_t ino_in,
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
