/* SPDX-License-Identifier: MIT */
/*
 * dirops.c - the FUSE operations on directories: opendir, readdir,
 * readdirplus, releasedir and fsyncdir.
 *
 * A listing keeps no state between requests: opendir hands out no handle,
 * and each READDIR resumes from the cookie of the last entry the kernel
 * got (tc_readdir()). A readdirplus reply hands the kernel a lookup
 * reference for each entry in it, so the references the engine took for
 * the entries put in the buffer are remembered, and dropped again when the
 * reply does not reach the kernel.
 *
 * The root's listing also shows the daemon's own entries, right after
 * "..": .stats, then .tags. Their cookies are ours, and the engine's
 * cookies that follow are shifted past them. The listing of /.tags itself
 * is tags.c's.
 *
 * cache_mode=kernel (tiercachefs(8)): OPENDIR is answered with ENOSYS,
 * which the kernel remembers for the connection: it caches listings
 * itself, and a change it did not make drops them (inval.c). Every lookup
 * of .stats is a new snapshot there, so readdirplus gives the kernel its
 * attributes but no reference.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "tcfs.h"

void tcfs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
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
	ref = !tcfs_is_dot(name) && !tcfs_is_virtual_ino(e.ino) &&
	      !attr->unsettled;
	/* attributes only, the kernel takes no reference: the dots, in
	 * kernel mode .stats (whose every lookup is a new snapshot), and a
	 * file being written (its attributes are not the writer's: the
	 * kernel then keeps what it knows, and only the name is added) */
	if (tcfs_is_dot(name) || attr->unsettled ||
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

void tcfs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		  struct fuse_file_info *fi)
{
	(void)fi;
	tcfs_do_readdir(req, ino, size, off, false);
}

void tcfs_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		      struct fuse_file_info *fi)
{
	(void)fi;
	tcfs_do_readdir(req, ino, size, off, true);
}

void tcfs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, 0);
}

void tcfs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
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
