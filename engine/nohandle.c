/* SPDX-License-Identifier: MIT */
/*
 * I/O without a handle (tc_config::handleless_writes, the daemon's
 * cache_mode=kernel). The kernel opens and closes files without telling
 * us and keeps written pages until it writes them back, so reads and
 * writes name only the inode (tc_read_ino() & co.) and work on the same
 * node state as handles (content.c). A read loads the content onto the
 * node and it stays there while the kernel holds the inode, marked as
 * read; each maintenance round (tc_content_maintain()) lets go of content
 * nobody read since the round before, so a RAM item is not pinned for as
 * long as the kernel remembers a name. Publishing has no last close to
 * wait for: fsync, the release of the last writable handle (for a caller
 * that has one: the daemon's creates in cache_mode=kernel keep none), a
 * rename of the file (tc_publish_name()), a quiet period without writes
 * (maintenance), and unmount publish; a truncate alone does not, the
 * writes after it complete it. (The SETATTR of times the kernel sends
 * after a writeback is no such signal: a background pass may send it
 * before its writes are served, and a close may send none.)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_i.h"

/* Pinned node of regular file @ino. */
static int ino_node(struct tc_engine *eng, uint64_t ino, struct tc_node **out)
{
	struct tc_node *n;
	int rc;

	tc_lock(eng);
	rc = tc_node_get_locked(eng, ino, &n);
	if (!rc && !S_ISREG(n->body->meta.mode)) {
		rc = S_ISDIR(n->body->meta.mode) ? -EISDIR : -EINVAL;
		tc_node_unpin_locked(eng, n);
	}
	tc_unlock(eng);
	if (!rc)
		*out = n;
	return rc;
}

/* The published content of @n for a read without a handle, loaded (a get,
 * counted by tier, with recency) when the node holds none. */
static int ino_content_nlocked(struct tc_engine *eng, struct tc_node *n)
{
	bool hit;
	int rc;

	TC_ASSERT_NLOCKED(n);
	n->body->content_read = true;
	if (n->body->content)
		return 0;
	/* Dropped as corrupt: the kernel retries a failed read, once per
	 * page; count and log the corruption once. */
	if (n->body->corrupt)
		return -EIO;
	rc = tc_content_load_nlocked(eng, n, &hit);
	if (rc == -EIO)
		n->body->corrupt = true;
	if (rc)
		return rc;
	if (!tc_content_ok(n->body->content))
		return -EIO;
	tc_count(eng, gets, 1);
	if (hit)
		tc_count(eng, ram_hits, 1);
	else
		tc_count(eng, disk_hits, 1);
	tc_lock(eng);
	tc_policy_note_access_locked(eng, n, tc_now(eng));
	tc_unlock(eng);
	return 0;
}

ssize_t tc_read_ino(struct tc_engine *eng, uint64_t ino, void *buf,
		    size_t size, off_t off)
{
	struct tc_node *n;
	ssize_t rc;

	if (off < 0)
		return -EINVAL;
	rc = ino_node(eng, ino, &n);
	if (rc)
		return rc;
	rc = tc_content_read_node(eng, n, buf, size, (uint64_t)off,
				  ino_content_nlocked);
	tc_node_unpin(eng, n);
	return rc;
}

int tc_read_span_ino(struct tc_engine *eng, uint64_t ino, off_t off,
		     size_t size, struct tc_span *s)
{
	struct tc_node *n;
	int rc;

	*s = (struct tc_span){ .fd = -1 };
	if (off < 0)
		return -EINVAL;
	rc = ino_node(eng, ino, &n);
	if (rc)
		return rc;
	tc_mutex_lock(&n->body->lock);
	rc = n->body->dirty ? -EAGAIN : ino_content_nlocked(eng, n);
	if (!rc)
		rc = tc_content_span(n->body->content, (uint64_t)off, size, s);
	if (!rc && s->fd >= 0) {
		/* A descriptor of its own: the node may let go of its copy
		 * (a publish, maintenance) while the caller still splices. */
		s->fd = fcntl(s->fd, F_DUPFD_CLOEXEC, 0);
		s->own_fd = true;
		if (s->fd < 0) {
			rc = -errno;
			tc_span_done(s);
		}
	}
	tc_mutex_unlock(&n->body->lock);
	tc_node_unpin(eng, n);
	if (!rc)
		tc_count(eng, read_bytes, s->len);
	return rc;
}

ssize_t tc_write_ino(struct tc_engine *eng, uint64_t ino, const void *buf,
		     size_t size, off_t off)
{
	struct tc_node *n;
	uint64_t end;
	int rc;

	if (off < 0)
		return -EINVAL;
	end = (uint64_t)off + size;
	rc = ino_node(eng, ino, &n);
	if (rc)
		return rc;
	tc_mutex_lock(&n->body->lock);
	rc = tc_content_dirty_begin_nlocked(eng, n, false);
	if (!rc && (end < (uint64_t)off ||
		    (eng->disk_size && end > eng->disk_size)))
		rc = -EFBIG;
	if (!rc)
		rc = tc_dirty_write(&eng->blobs, n->body->dirty, buf, size,
				    (uint64_t)off);
	if (!rc) {
		n->body->dirty->mtime = n->body->dirty->touched = tc_now(eng);
		n->body->dirty->written = true;
	} else if (n->body->dirty && !n->body->dirty->failed) {
		/* The kernel reports this at close or fsync; what the other
		 * writes of this version left must not be published. */
		n->body->dirty->failed = rc;
	}
	tc_mutex_unlock(&n->body->lock);
	tc_node_unpin(eng, n);
	return rc ? rc : (ssize_t)size;
}

int tc_publish_ino(struct tc_engine *eng, uint64_t ino, bool durable)
{
	struct tc_node *n;
	int rc;

	rc = ino_node(eng, ino, &n);
	if (rc)
		return rc;
	tc_mutex_lock(&n->body->lock);
	if (n->body->dirty)
		rc = tc_content_publish_nlocked(eng, n, durable);
	else if (durable && eng->sync != TC_SYNC_NEVER)
		rc = tc_content_sync_nlocked(eng, n);
	tc_mutex_unlock(&n->body->lock);
	tc_node_unpin(eng, n);
	return rc;
}

int tc_publish_name(struct tc_engine *eng, uint64_t parent,
		    const char *name)
{
	struct tc_inval_list inv = { 0 };
	struct tc_node *n = NULL;
	uint64_t ino = 0;
	int rc;

	if (tc_ns_check_name(name))
		return 0;
	tc_lock(eng);
	rc = tc_ns_find_locked(eng, parent, name, &n, &inv);
	if (!rc) {
		ino = n->ino;
		tc_node_unpin_locked(eng, n);
	}
	tc_unlock(eng);
	tc_inval_deliver(eng, &inv);
	if (rc)
		return 0;
	rc = tc_publish_ino(eng, ino, false);
	return rc == -EISDIR || rc == -EINVAL || rc == -ENOENT ? 0 : rc;
}

void tc_touch(struct tc_engine *eng, uint64_t ino)
{
	struct tc_node *n;

	tc_lock(eng);
	n = tc_node_find_locked(eng, ino);
	if (n && tc_nbody_load_locked(eng, n) == 0) {
		if (S_ISREG(n->body->meta.mode))
			tc_policy_note_access_locked(eng, n, tc_now(eng));
		tc_nbody_idle_locked(eng, n);
	}
	tc_unlock(eng);
}

/* Pin every node maintenance may have work for, into a new array. */
static struct tc_node **maintain_candidates(struct tc_engine *eng,
					    size_t *count)
{
	struct tc_node **v = NULL, **nv;
	size_t n = 0, cap = 0;

	tc_lock(eng);
	/* Only a body holds content or dirty state: the walk is over the
	 * bodies, not every name the kernel holds. */
	for (struct tc_nbody *b = eng->bodies.all; b; b = b->next) {
		/* A peek without node->lock, as the node table's own release
		 * does: the work is decided under it. */
		if (b->nopen || !S_ISREG(b->meta.mode) ||
		    (!b->content && !b->dirty))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 64;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv)
				break; /* the next round goes on */
			v = nv;
		}
		b->node->pins++;
		v[n++] = b->node;
	}
	tc_unlock(eng);
	*count = n;
	return v;
}

int tc_content_maintain(struct tc_engine *eng)
{
	struct tc_inval_list inv = { 0 };
	int64_t now = tc_now(eng);
	struct tc_node **v;
	size_t count;
	int first = 0;

	v = maintain_candidates(eng, &count);
	for (size_t i = 0; i < count; i++) {
		struct tc_node *n = v[i];
		struct tc_content *c = NULL;
		uint32_t nopen, nwriters;
		int rc = 0;

		tc_mutex_lock(&n->body->lock);
		tc_lock(eng);
		nopen = n->body->nopen;
		nwriters = n->body->nwriters;
		tc_unlock(eng);
		if (eng->handleless && n->body->dirty &&
		    n->body->dirty->failed && !nwriters) {
			/* A version some of whose writes failed: the program
			 * was told (at close or fsync); keep the one before. */
			tc_warn(eng,
				"inode %llu: dropping writes that were "
				"not all stored (%s)",
				(unsigned long long)n->ino,
				strerror(-n->body->dirty->failed));
			tc_content_dirty_end_nlocked(eng, n);
			tc_inval_add_inode(&inv, n->ino);
		} else if (eng->handleless && n->body->dirty && !nwriters &&
			   now - n->body->dirty->touched >= eng->quiet_ns) {
			rc = tc_content_publish_nlocked(eng, n, false);
			if (rc && !n->body->dirty->complained) {
				/* Kept and tried again each round (space may
				 * come back); logged once. */
				tc_err(eng, "publishing inode %llu after its "
					    "writes: %s (tried again)",
				       (unsigned long long)n->ino,
				       strerror(-rc));
				n->body->dirty->complained = true;
			}
			if (rc && !first)
				first = rc;
		}
		/* No handle pins it (its reads use the node's descriptor
		 * unreferenced) and nobody read it since the last round. */
		if (!nopen && !n->body->dirty && !n->body->content_read) {
			c = n->body->content;
			n->body->content = NULL;
		}
		n->body->content_read = false;
		tc_mutex_unlock(&n->body->lock);
		tc_node_content_unref(c);
		tc_node_unpin(eng, n);
	}
	free(v);
	tc_inval_deliver(eng, &inv);
	return first;
}
