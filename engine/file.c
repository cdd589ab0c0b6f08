/* SPDX-License-Identifier: MIT */
/*
 * Open handles: open, create, read, write, flush, fsync, release.
 *
 * A get (an open for reading) pins the published content on the node
 * (content.c); the first write starts the node's dirty state, shared by
 * all its handles, and the last writable handle's close publishes it
 * (publish.c), as does fsync. A lost group's error (commit.c) reaches the
 * program at its next flush or fsync.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_i.h"

static int open_node(struct tc_engine *eng, struct tc_node *n, int flags,
		     struct tc_file **out)
{
	int acc = flags & O_ACCMODE;
	struct tc_file *f;
	bool hit = true, counted;
	int rc = 0;

	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->eng = eng;
	f->node = n;
	f->flags = flags;
	tc_mutex_lock(&n->body->lock);
	if (flags & O_TRUNC && acc != O_RDONLY) {
		tc_content_dirty_end_nlocked(eng, n);
		rc = tc_content_dirty_begin_nlocked(eng, n, true);
	} else if (acc != O_WRONLY && !n->body->dirty) {
		if (!n->body->content)
			rc = tc_content_load_nlocked(eng, n, &hit);
		else
			hit = n->body->content->ram ||
			      n->body->content->size == 0 ||
			      (n->body->content->nchunks &&
			       n->body->content->chunks[0].ram);
		if (!rc && n->body->content && !tc_content_ok(n->body->content))
			rc = -EIO;
	}
	tc_mutex_unlock(&n->body->lock);
	if (rc) {
		free(f);
		return rc;
	}
	counted = acc != O_WRONLY;
	if (counted) {
		tc_count(eng, gets, 1);
		if (hit)
			tc_count(eng, ram_hits, 1);
		else
			tc_count(eng, disk_hits, 1);
	}
	tc_lock(eng);
	f->next = eng->files;
	if (eng->files)
		eng->files->prev = f;
	eng->files = f;
	n->body->nopen++;
	if (acc != O_RDONLY)
		n->body->nwriters++;
	if (counted)
		tc_policy_note_access_locked(eng, n, tc_now(eng));
	f->keep_cache = n->cached_gen == n->data_gen;
	n->cached_gen = n->data_gen;
	tc_unlock(eng);
	*out = f;
	return 0;
}

int tc_open(struct tc_engine *eng, uint64_t ino, int flags,
	    struct tc_file **out)
{
	struct tc_node *n;
	int rc;

	tc_lock(eng);
	rc = tc_node_get_locked(eng, ino, &n);
	if (!rc && S_ISDIR(n->body->meta.mode))
		rc = -EISDIR;
	else if (!rc && !S_ISREG(n->body->meta.mode))
		rc = -EINVAL;
	if (rc == -EISDIR || rc == -EINVAL)
		tc_node_unpin_locked(eng, n);
	tc_unlock(eng);
	if (rc)
		return rc;
	rc = open_node(eng, n, flags, out);
	tc_node_unpin(eng, n);
	return rc;
}

int tc_create(struct tc_engine *eng, uint64_t parent, const char *name,
	      mode_t mode, int flags, const struct tc_ctx *ctx,
	      struct tc_attr *out, struct tc_file **fout)
{
	struct tc_inode m = { 0 };
	struct tc_node *n;
	int rc;

	m.mode = S_IFREG | (mode & 07777 & ~ctx->umask);
	rc = tc_ns_make_node(eng, parent, name, &m, ctx, NULL, false, &n);
	if (rc)
		return rc;
	/* A new file is empty: no get, no content to load. Opened writable
	 * it starts an empty dirty state, so its close publishes a put. */
	rc = open_node(eng, n,
		       (flags & ~O_ACCMODE) | O_WRONLY |
			       ((flags & O_ACCMODE) == O_RDONLY ? 0 : O_TRUNC),
		       fout);
	if (!rc) {
		(*fout)->flags = flags;
		if ((flags & O_ACCMODE) == O_RDONLY) {
			tc_lock(eng);
			n->body->nwriters--;
			tc_unlock(eng);
		}
		tc_node_attr(eng, n, out);
	} else {
		tc_forget(eng, n->ino, 1);
	}
	tc_node_unpin(eng, n);
	return rc;
}

/* The content of a handle's node, loaded when it holds none. */
static int handle_content_nlocked(struct tc_engine *eng, struct tc_node *n)
{
	bool hit;

	return n->body->content ? 0 : tc_content_load_nlocked(eng, n, &hit);
}

ssize_t tc_read(struct tc_file *f, void *buf, size_t size, off_t off)
{
	if ((f->flags & O_ACCMODE) == O_WRONLY)
		return -EBADF;
	if (off < 0)
		return -EINVAL;
	return tc_content_read_node(f->eng, f->node, buf, size, (uint64_t)off,
				    handle_content_nlocked);
}

int tc_read_span(struct tc_file *f, off_t off, size_t size,
		 struct tc_span *s)
{
	struct tc_node *n = f->node;
	int rc = -EAGAIN;

	*s = (struct tc_span){ .fd = -1 };
	if ((f->flags & O_ACCMODE) == O_WRONLY)
		return -EBADF;
	if (off < 0)
		return -EINVAL;
	tc_mutex_lock(&n->body->lock);
	/* The handle pins the content through the node (nopen > 0), which
	 * keeps its descriptors open until tc_release(). */
	if (!n->body->dirty && n->body->content)
		rc = tc_content_span(n->body->content, (uint64_t)off, size, s);
	tc_mutex_unlock(&n->body->lock);
	if (!rc)
		tc_count(f->eng, read_bytes, s->len);
	return rc;
}

ssize_t tc_write(struct tc_file *f, const void *buf, size_t size, off_t off)
{
	struct tc_engine *eng = f->eng;
	struct tc_node *n = f->node;
	uint64_t end;
	int rc;

	if ((f->flags & O_ACCMODE) == O_RDONLY)
		return -EBADF;
	if (off < 0)
		return -EINVAL;
	tc_mutex_lock(&n->body->lock);
	rc = tc_content_dirty_begin_nlocked(eng, n, false);
	if (rc)
		goto out;
	if (f->flags & O_APPEND)
		off = (off_t)n->body->dirty->size;
	end = (uint64_t)off + size;
	if (end < (uint64_t)off || (eng->disk_size && end > eng->disk_size)) {
		rc = -EFBIG;
		goto out;
	}
	rc = tc_dirty_write(&eng->blobs, n->body->dirty, buf, size,
			    (uint64_t)off);
	if (!rc) {
		n->body->dirty->mtime = n->body->dirty->touched = tc_now(eng);
		n->body->dirty->written = true;
	}
out:
	tc_mutex_unlock(&n->body->lock);
	return rc ? rc : (ssize_t)size;
}

/* The error a lost group left for @n's last publish, once. */
static int lost_error(struct tc_engine *eng, struct tc_node *n)
{
	int err;

	tc_lock(eng);
	err = n->lost_err;
	n->lost_err = 0;
	tc_unlock(eng);
	return err;
}

/* True when @f is the only writable handle of its node. */
static bool last_writer(struct tc_file *f)
{
	bool last;

	tc_lock(f->eng);
	last = f->node->body->nwriters <= 1;
	tc_unlock(f->eng);
	return last;
}

int tc_flush(struct tc_file *f)
{
	struct tc_node *n = f->node;
	int rc = 0;

	if ((f->flags & O_ACCMODE) == O_RDONLY)
		return 0;
	if (!last_writer(f))
		return lost_error(f->eng, n);
	tc_mutex_lock(&n->body->lock);
	/* A shell's "> file" closes a dup of the handle before writing:
	 * publishing the bare truncation then would be a put of nothing. */
	if (n->body->dirty && n->body->dirty->written)
		rc = tc_content_publish_nlocked(f->eng, n, false);
	tc_mutex_unlock(&n->body->lock);
	return rc ? rc : lost_error(f->eng, n);
}

int tc_fsync(struct tc_file *f, bool datasync)
{
	struct tc_engine *eng = f->eng;
	struct tc_node *n = f->node;
	int rc = 0;

	(void)datasync;
	tc_mutex_lock(&n->body->lock);
	if (n->body->dirty)
		rc = tc_content_publish_nlocked(eng, n, true);
	else if (eng->sync != TC_SYNC_NEVER)
		rc = tc_content_sync_nlocked(eng, n);
	tc_mutex_unlock(&n->body->lock);
	return rc ? rc : lost_error(eng, n);
}

int tc_release(struct tc_file *f)
{
	struct tc_content *c = NULL;
	struct tc_engine *eng;
	struct tc_node *n;
	bool writer;
	int rc = 0;

	if (!f)
		return 0;
	eng = f->eng;
	n = f->node;
	writer = (f->flags & O_ACCMODE) != O_RDONLY;
	tc_mutex_lock(&n->body->lock);
	if (writer && last_writer(f) && n->body->dirty) {
		rc = tc_content_publish_nlocked(eng, n, false);
		if (rc) {
			/* Nobody can publish it any more: drop it. */
			tc_err(eng, "publishing inode %llu failed: %s",
			       (unsigned long long)n->ino, strerror(-rc));
			tc_content_dirty_end_nlocked(eng, n);
		}
	}
	/* Content is swapped under node->lock (readers hold it to look at
	 * n->body->content); the pin keeps the node alive until the unref. */
	tc_lock(eng);
	if (f->prev)
		f->prev->next = f->next;
	else
		eng->files = f->next;
	if (f->next)
		f->next->prev = f->prev;
	n->body->nopen--;
	if (writer)
		n->body->nwriters--;
	if (n->body->nopen == 0) {
		/* Unpin the content; the RAM tier or the blob keeps it. */
		c = n->body->content;
		n->body->content = NULL;
	}
	n->pins++;
	tc_unlock(eng);
	tc_mutex_unlock(&n->body->lock);
	tc_node_content_unref(c);
	tc_node_unpin(eng, n);
	free(f);
	return rc;
}

uint64_t tc_file_ino(const struct tc_file *f)
{
	return f->node->ino;
}

bool tc_file_keep_cache(const struct tc_file *f)
{
	return f->keep_cache;
}
