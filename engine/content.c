/* SPDX-License-Identifier: MIT */
/*
 * Content: open, read, write, flush, fsync, release, and the publishing
 * and loading behind them.
 *
 * Writes. The first write to a node creates its dirty state (dirty.c) from
 * its current content; every handle reads through it. Publishing hashes
 * the content, stores the blob (a spilled file is renamed into place, so a
 * large write touches the disk once; contents up to inline_max live in the
 * index instead) and commits one transaction that points the inode at it
 * and moves blob reference counts. A crash before the commit leaves the
 * old content; after it, the new. The last writable handle's close
 * publishes (and fsync does). Truncation and fallocate are in setattr.c.
 *
 * Reads. A get (open for reading) pins the content: a RAM item (a hit, or
 * promoted from its blob after verifying the hash) or, for items larger
 * than max_ram_item, the blob file's descriptor. Reads copy from the pinned
 * content without any engine lock. Promotion happens in one place,
 * load_from_disk(), kept out of the hit path (STYLE point 7).
 *
 * I/O without a handle (cache_mode=kernel) is in nohandle.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_i.h"

/* Bytes copied per step when a write begins from published content. */
#define COPY_CHUNK 65536

static struct tc_content *content_new(uint64_t size)
{
	struct tc_content *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	atomic_init(&c->refs, 1);
	c->size = size;
	c->fd = -1;
	return c;
}

/* Replace the content @n readers use by @c (node->lock held). */
static void content_set_nlocked(struct tc_node *n, struct tc_content *c)
{
	TC_ASSERT_NLOCKED(n);
	tc_node_content_unref(n->content);
	n->content = c;
}

/* Drop an entry whose blob is missing or corrupt (tiercachefs(8),
 * NOTES, Integrity). */
static void drop_corrupt(struct tc_engine *eng, struct tc_node *n,
			 const uint8_t *hash)
{
	struct tc_inval_list inv = { 0 };
	char hex[TC_HASH_HEX + 1];

	tc_hash_hex(hash, hex);
	tc_err(eng, "blob %s of inode %llu is missing or corrupt: entry dropped",
	       hex, (unsigned long long)n->ino);
	tc_count(eng, corruptions, 1);
	tc_ram_drop(eng->ram, hash);
	tc_lock(eng);
	if (tc_txn_begin_locked(eng) == 0)
		(void)!tc_txn_end_locked(eng,
					 tc_node_drop_locked(eng, n->ino, &inv));
	tc_unlock(eng);
	tc_inval_deliver(eng, &inv);
}

/* Read the content of @m (inline in the index when @inline_data, else its
 * blob file) into a new RAM item and verify it: -EIO when it does not
 * match its hash or is missing. */
static int read_verified(struct tc_engine *eng, const struct tc_inode *m,
			 bool inline_data, struct tc_ram_item **out)
{
	struct tc_ram_item *it = tc_ram_alloc(m->size);
	uint8_t got[TC_HASH_LEN];
	int rc;

	if (!it)
		return -ENOMEM;
	memcpy(it->hash, m->hash, TC_HASH_LEN);
	if (inline_data) {
		tc_lock(eng);
		rc = tc_index_blob_data(&eng->ix, m->hash, it->data, m->size);
		tc_unlock(eng);
		if (!rc) {
			tc_hash_buf(it->data, it->size, got);
			rc = memcmp(got, m->hash, TC_HASH_LEN) ? -EIO : 0;
		}
	} else {
		rc = tc_blob_read_verified(&eng->blobs, m->hash, it->data,
					   m->size);
	}
	if (rc) {
		tc_ram_unref(it);
		return rc == -ENOENT ? -EIO : rc;
	}
	*out = it;
	return 0;
}

/*
 * The content of @m is not in RAM: load it (verified) and promote it when
 * it fits, keep a private RAM copy of an inline content that does not, or
 * keep the blob's descriptor for large items. Only here is the tag-rule
 * query for a RAM idle limit made.
 */
static TC_NOINLINE int load_from_disk(struct tc_engine *eng, struct tc_node *n,
				      const struct tc_inode *m,
				      struct tc_content *c, int64_t now)
{
	struct tc_ram_item *it;
	bool inline_data, fits = tc_ram_fits(eng->ram, m->size);
	int64_t ram_ttl;
	int rc;

	tc_lock(eng);
	ram_ttl = tc_policy_ram_ttl_locked(eng, n->ino);
	inline_data = tc_index_blob_is_inline(&eng->ix, m->hash);
	tc_unlock(eng);
	if (fits || inline_data) {
		rc = read_verified(eng, m, inline_data, &it);
		if (rc)
			goto out;
		if (fits) {
			it = tc_ram_insert(eng->ram, it, now, ram_ttl);
			tc_count(eng, promotions, 1);
		}
		c->ram = it;
		return 0;
	}
	rc = tc_blob_open_read(&eng->blobs, m->hash, &c->fd);
	if (!rc) {
		struct stat st;
		if (fstat(c->fd, &st) || (uint64_t)st.st_size != m->size)
			rc = -EIO;
	}
out:
	if (rc == -EIO)
		drop_corrupt(eng, n, m->hash);
	return rc;
}

/*
 * Load the published content of @n and pin it on the node. The hit path is
 * a RAM probe and a pin; *@ram_hit says which tier served it.
 */
int tc_content_load_nlocked(struct tc_engine *eng, struct tc_node *n,
			    bool *ram_hit)
{
	int64_t now = tc_now(eng);
	struct tc_content *c;
	struct tc_inode m;
	int rc = 0;

	TC_ASSERT_NLOCKED(n);
	tc_lock(eng);
	m = n->meta;
	tc_unlock(eng);
	c = content_new(m.size);
	if (!c)
		return -ENOMEM;
	*ram_hit = true;
	if (m.hash_set && m.size > 0) {
		c->ram = tc_ram_get(eng->ram, m.hash, now);
		if (!c->ram) {
			*ram_hit = false;
			rc = load_from_disk(eng, n, &m, c, now);
		}
	}
	if (rc) {
		tc_node_content_unref(c);
		return rc;
	}
	content_set_nlocked(n, c);
	return 0;
}

ssize_t tc_content_read(struct tc_content *c, void *buf, size_t size,
			uint64_t off)
{
	ssize_t n;

	if (off >= c->size)
		return 0;
	if (size > c->size - off)
		size = c->size - off;
	if (c->ram) {
		memcpy(buf, c->ram->data + off, size);
		return (ssize_t)size;
	}
	if (c->fd < 0)
		return 0;
	n = pread(c->fd, buf, size, (off_t)off);
	return n < 0 ? -errno : n;
}

int tc_content_dirty_begin_nlocked(struct tc_engine *eng, struct tc_node *n,
			       bool empty)
{
	struct tc_dirty *d;
	bool hit;
	int rc = 0;

	TC_ASSERT_NLOCKED(n);
	if (n->dirty)
		return 0;
	d = tc_dirty_new();
	if (!d)
		return -ENOMEM;
	if (!empty && !n->content)
		rc = tc_content_load_nlocked(eng, n, &hit);
	for (uint64_t off = 0; !empty && !rc && off < n->content->size;) {
		char buf[COPY_CHUNK];
		ssize_t k = tc_content_read(n->content, buf, sizeof(buf), off);
		if (k <= 0) {
			rc = k ? (int)k : -EIO;
			break;
		}
		rc = tc_dirty_write(&eng->blobs, d, buf, (size_t)k, off);
		off += (uint64_t)k;
	}
	if (rc) {
		tc_dirty_free(&eng->blobs, d);
		return rc;
	}
	d->mtime = d->touched = tc_now(eng);
	n->dirty = d;
	return 0;
}

void tc_content_dirty_end_nlocked(struct tc_engine *eng, struct tc_node *n)
{
	TC_ASSERT_NLOCKED(n);
	tc_dirty_free(&eng->blobs, n->dirty);
	n->dirty = NULL;
}

/* The new content readers get after publishing @d as @hash. */
static struct tc_content *published_content(struct tc_engine *eng,
					    struct tc_dirty *d,
					    const uint8_t *hash, int64_t now,
					    int64_t ram_ttl)
{
	struct tc_content *c = content_new(d->size);

	if (!c || d->size == 0)
		return c;
	if (d->fd < 0 && tc_ram_fits(eng->ram, d->size)) {
		struct tc_ram_item *it = tc_ram_alloc(d->size);
		if (it) {
			memcpy(it->hash, hash, TC_HASH_LEN);
			memcpy(it->data, d->buf, d->size);
			c->ram = tc_ram_insert(eng->ram, it, now, ram_ttl);
		}
	}
	if (!c->ram && tc_blob_open_read(&eng->blobs, hash, &c->fd)) {
		tc_node_content_unref(c);
		c = NULL; /* loaded again at the next read */
	}
	return c;
}

/* The transaction of a publish: room, blob references, the inode row. */
static int publish_commit_locked(struct tc_engine *eng, struct tc_node *n,
				 struct tc_dirty *d, const uint8_t *hash,
				 bool *wrote, bool inline_data, bool durable,
				 struct tc_inval_list *inv)
{
	struct tc_inode m = n->meta;
	int64_t now = tc_now(eng);
	bool reg = m.nlink > 0 && S_ISREG(m.mode);
	int rc;

	rc = tc_txn_begin_locked(eng);
	if (rc)
		return rc;
	if (reg)
		rc = tc_policy_make_room_locked(
			eng, (int64_t)d->size - (int64_t)m.size, 0, n->ino, inv);
	if (!rc && d->size > 0) {
		/* The blob may have lost its last reference since we looked:
		 * then its file is gone or going, write it now. */
		if (!*wrote && !inline_data &&
		    !tc_blob_known_locked(eng, hash)) {
			rc = tc_dirty_store(&eng->blobs, d, hash, durable);
			*wrote = !rc;
		}
		if (!rc)
			rc = tc_blob_ref_locked(eng, hash, d->size,
						inline_data ? d->buf : NULL,
						*wrote);
	}
	if (!rc && m.hash_set)
		rc = tc_blob_unref_locked(eng, m.hash);
	if (!rc) {
		if (reg)
			tc_txn_account_locked(
				eng, (int64_t)d->size - (int64_t)m.size, 0);
		m.size = d->size;
		m.hash_set = d->size > 0;
		memcpy(m.hash, hash, TC_HASH_LEN);
		m.mtime = m.ctime = d->mtime;
		m.lru = now;
		tc_policy_resolve_locked(eng, &m, now);
		rc = tc_index_inode_update(&eng->ix, &m);
	}
	if (rc) {
		tc_txn_rollback_locked(eng);
		return rc;
	}
	rc = tc_txn_commit_locked(eng);
	if (!rc) {
		n->meta = m;
		n->data_gen++;
		n->pub_group = eng->group_id;
	}
	return rc;
}

int tc_content_publish_nlocked(struct tc_engine *eng, struct tc_node *n,
			       bool durable)
{
	struct tc_inval_list inv = { 0 };
	struct tc_dirty *d = n->dirty;
	uint8_t hash[TC_HASH_LEN] = { 0 };
	bool wrote = false, inline_data;
	int64_t ram_ttl;
	int rc;

	TC_ASSERT_NLOCKED(n);
	if (!d)
		return 0;
	if (d->failed)
		return d->failed;
	if (eng->sync == TC_SYNC_CLOSE)
		durable = true;
	if (eng->sync == TC_SYNC_NEVER)
		durable = false;
	if (eng->disk_size && d->size > eng->disk_size)
		return -EFBIG;
	if (tc_reserve_short(eng) && d->size > 0)
		return -ENOSPC; /* the reserve is for what was accepted */
	inline_data = d->fd < 0 && d->size <= eng->inline_max;
	if (d->size > 0) {
		rc = tc_dirty_hash(&eng->blobs, d, hash);
		if (rc)
			return rc;
	}
	if (d->size > 0 && !inline_data) {
		bool known;
		/* Pending, and committed so, before the file exists: a crash
		 * before the commit that references it leaves nothing the next
		 * open cannot find. */
		tc_lock(eng);
		known = tc_blob_known_locked(eng, hash);
		if (!known)
			rc = tc_txn_begin_locked(eng);
		if (!known && !rc)
			rc = tc_txn_end_locked(eng,
					       tc_blob_pending_locked(eng, hash));
		if (!known && !rc)
			rc = tc_commit_locked(eng, &inv);
		tc_unlock(eng);
		if (!rc && !known) {
			rc = tc_dirty_store(&eng->blobs, d, hash, durable);
			wrote = !rc;
		}
		if (rc) {
			tc_inval_deliver(eng, &inv);
			return rc;
		}
	}
	tc_lock(eng);
	rc = publish_commit_locked(eng, n, d, hash, &wrote, inline_data,
				   durable, &inv);
	ram_ttl = rc ? -1 : tc_policy_ram_ttl_locked(eng, n->ino);
	/* Tell the other mounts (queued, never waited for), unless it is
	 * what the shared tier told us. */
	if (!rc && !d->from_shared)
		tc_sharedpub_publish_locked(eng, n, d, hash);
	tc_unlock(eng);
	if (rc) {
		if (wrote && d->fd >= 0 && !d->tmpname[0])
			/* The spilled file became the blob: take it back so
			 * later writes cannot touch a published blob. */
			(void)!tc_blob_uncommit(&eng->blobs, hash, d->tmpname);
		tc_inval_deliver(eng, &inv);
		return rc;
	}
	if (!d->from_shared) { /* a program's write, not a copy */
		tc_count(eng, puts, 1);
		tc_count(eng, write_bytes, d->size);
	}
	content_set_nlocked(n, published_content(eng, d, hash, tc_now(eng),
						 ram_ttl));
	tc_content_dirty_end_nlocked(eng, n);
	tc_inval_deliver(eng, &inv);
	/* Published; durable once its group is committed and synced. */
	return durable ? tc_commit_sync(eng) : 0;
}

/* ------------------------------------------------------------------ */
/* Handles                                                            */
/* ------------------------------------------------------------------ */

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
	tc_mutex_lock(&n->lock);
	if (flags & O_TRUNC && acc != O_RDONLY) {
		tc_content_dirty_end_nlocked(eng, n);
		rc = tc_content_dirty_begin_nlocked(eng, n, true);
	} else if (acc != O_WRONLY && !n->dirty) {
		if (!n->content)
			rc = tc_content_load_nlocked(eng, n, &hit);
		else
			hit = n->content->ram || n->content->size == 0;
		if (!rc && n->content && !n->content->ram &&
		    n->content->fd < 0 && n->content->size > 0)
			rc = -EIO;
	}
	tc_mutex_unlock(&n->lock);
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
	n->nopen++;
	if (acc != O_RDONLY)
		n->nwriters++;
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
	if (!rc && S_ISDIR(n->meta.mode))
		rc = -EISDIR;
	else if (!rc && !S_ISREG(n->meta.mode))
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
			n->nwriters--;
			tc_unlock(eng);
		}
		tc_node_attr(eng, n, out);
	} else {
		tc_forget(eng, n->ino, 1);
	}
	tc_node_unpin(eng, n);
	return rc;
}

ssize_t tc_read(struct tc_file *f, void *buf, size_t size, off_t off)
{
	struct tc_node *n = f->node;
	struct tc_content *c;
	ssize_t rc;

	if ((f->flags & O_ACCMODE) == O_WRONLY)
		return -EBADF;
	if (off < 0)
		return -EINVAL;
	tc_mutex_lock(&n->lock);
	if (n->dirty) {
		rc = tc_dirty_read(n->dirty, buf, size, (uint64_t)off);
		tc_mutex_unlock(&n->lock);
		goto out;
	}
	if (!n->content) {
		bool hit;
		rc = tc_content_load_nlocked(f->eng, n, &hit);
		if (rc) {
			tc_mutex_unlock(&n->lock);
			return rc;
		}
	}
	c = n->content;
	atomic_fetch_add(&c->refs, 1);
	tc_mutex_unlock(&n->lock);
	rc = tc_content_read(c, buf, size, (uint64_t)off);
	tc_node_content_unref(c);
out:
	if (rc > 0)
		tc_count(f->eng, read_bytes, (uint64_t)rc);
	return rc;
}

int tc_read_fd(struct tc_file *f, int *fd)
{
	struct tc_node *n = f->node;
	int rc = -EAGAIN;

	tc_mutex_lock(&n->lock);
	if (!n->dirty && n->content && !n->content->ram &&
	    n->content->fd >= 0) {
		/* The handle pins the content through the node (nopen > 0),
		 * which keeps this descriptor open until tc_release(). */
		*fd = n->content->fd;
		rc = 0;
	}
	tc_mutex_unlock(&n->lock);
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
	tc_mutex_lock(&n->lock);
	rc = tc_content_dirty_begin_nlocked(eng, n, false);
	if (rc)
		goto out;
	if (f->flags & O_APPEND)
		off = (off_t)n->dirty->size;
	end = (uint64_t)off + size;
	if (end < (uint64_t)off || (eng->disk_size && end > eng->disk_size)) {
		rc = -EFBIG;
		goto out;
	}
	rc = tc_dirty_write(&eng->blobs, n->dirty, buf, size, (uint64_t)off);
	if (!rc) {
		n->dirty->mtime = n->dirty->touched = tc_now(eng);
		n->dirty->written = true;
	}
out:
	tc_mutex_unlock(&n->lock);
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
	last = f->node->nwriters <= 1;
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
	tc_mutex_lock(&n->lock);
	/* A shell's "> file" closes a dup of the handle before writing:
	 * publishing the bare truncation then would be a put of nothing. */
	if (n->dirty && n->dirty->written)
		rc = tc_content_publish_nlocked(f->eng, n, false);
	tc_mutex_unlock(&n->lock);
	return rc ? rc : lost_error(f->eng, n);
}

/* Published at close without fsync: make the blob and the index durable. */
int tc_content_sync_nlocked(struct tc_engine *eng, struct tc_node *n)
{
	struct tc_inode m;
	int fd, rc = 0;

	tc_lock(eng);
	m = n->meta;
	tc_unlock(eng);
	if (m.hash_set && tc_blob_open_read(&eng->blobs, m.hash, &fd) == 0) {
		rc = tc_blob_fsync(&eng->blobs, fd);
		close(fd);
	}
	return rc ? rc : tc_commit_sync(eng);
}

int tc_fsync(struct tc_file *f, bool datasync)
{
	struct tc_engine *eng = f->eng;
	struct tc_node *n = f->node;
	int rc = 0;

	(void)datasync;
	tc_mutex_lock(&n->lock);
	if (n->dirty)
		rc = tc_content_publish_nlocked(eng, n, true);
	else if (eng->sync != TC_SYNC_NEVER)
		rc = tc_content_sync_nlocked(eng, n);
	tc_mutex_unlock(&n->lock);
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
	tc_mutex_lock(&n->lock);
	if (writer && last_writer(f) && n->dirty) {
		rc = tc_content_publish_nlocked(eng, n, false);
		if (rc) {
			/* Nobody can publish it any more: drop it. */
			tc_err(eng, "publishing inode %llu failed: %s",
			       (unsigned long long)n->ino, strerror(-rc));
			tc_content_dirty_end_nlocked(eng, n);
		}
	}
	/* Content is swapped under node->lock (readers hold it to look at
	 * n->content); the pin keeps the node alive until the unref. */
	tc_lock(eng);
	if (f->prev)
		f->prev->next = f->next;
	else
		eng->files = f->next;
	if (f->next)
		f->next->prev = f->prev;
	n->nopen--;
	if (writer)
		n->nwriters--;
	if (n->nopen == 0) {
		/* Unpin the content; the RAM tier or the blob keeps it. */
		c = n->content;
		n->content = NULL;
	}
	n->pins++;
	tc_unlock(eng);
	tc_mutex_unlock(&n->lock);
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
