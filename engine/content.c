/* SPDX-License-Identifier: MIT */
/*
 * Published content, as readers get it: loading, promotion into RAM,
 * verification, reading.
 *
 * A content up to one chunk (tc_config.chunk_size) is one blob: inside the
 * index when small, else a file. A get pins it on the node: a RAM item (a
 * hit, or promoted from its blob after verifying the hash) or the blob
 * file's descriptor, verified once. Larger contents are chunks (the
 * chunk rows of the index), loaded one by one as they are read: each from
 * RAM, or promoted when the content fits RAM, or read from its file, which
 * is checked against its hash the first time it is read from disk
 * (remembered in blob.c until the store is closed: blob files never
 * change). So every byte served from disk is verified, for large files as
 * for small; a mismatch gives EIO, counts in corruptions and drops the
 * entry.
 *
 * Reads copy from the pinned content without any engine lock (a content
 * is immutable; chunks load under the content's own mutex). Promotion of
 * a whole content happens in one place, load_from_disk(), kept out of the
 * hit path (STYLE point 7). Dirty state reads the chunks it did not write
 * through tc_content_chunk_src() (publish.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "engine_i.h"

/* Read buffer of a chunk verification pass. */
#define VERIFY_BUF (1 << 16)

struct tc_content *tc_content_new(uint64_t size)
{
	struct tc_content *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	atomic_init(&c->refs, 1);
	c->size = size;
	c->fd = -1;
	return c;
}

void tc_content_set_nlocked(struct tc_node *n, struct tc_content *c)
{
	TC_ASSERT_NLOCKED(n);
	tc_node_content_unref(n->body->content);
	n->body->content = c;
}

/* Drop entry @ino whose content @hash is missing or corrupt (tiercachefs(8),
 * NOTES, Integrity). */
static void drop_corrupt(struct tc_engine *eng, uint64_t ino,
			 const uint8_t *hash)
{
	struct tc_inval_list inv = { 0 };
	char hex[TC_HASH_HEX + 1];

	tc_hash_hex(hash, hex);
	tc_err(eng, "blob %s of inode %llu is missing or corrupt: entry dropped",
	       hex, (unsigned long long)ino);
	tc_count(eng, corruptions, 1);
	tc_ram_drop(eng->ram, hash);
	tc_lock(eng);
	if (tc_txn_begin_locked(eng) == 0)
		(void)!tc_txn_end_locked(eng,
					 tc_node_drop_locked(eng, ino, &inv));
	tc_unlock(eng);
	tc_inval_deliver(eng, &inv);
}

/* Check that blob file @fd holds @len bytes hashing to @hash (once: then
 * remembered). */
static int verify_file(struct tc_engine *eng, int fd, const uint8_t *hash,
		       uint64_t len)
{
	XXH128_canonical_t can;
	XXH3_state_t *hs;
	struct stat st;
	char *buf;
	int rc = 0;

	if (fstat(fd, &st) || (uint64_t)st.st_size != len)
		return -EIO;
	if (tc_blob_is_verified(eng, hash))
		return 0;
	hs = XXH3_createState();
	buf = malloc(VERIFY_BUF);
	if (!hs || !buf) {
		rc = -ENOMEM;
		goto out;
	}
	XXH3_128bits_reset(hs);
	for (uint64_t off = 0; !rc && off < len;) {
		size_t k = len - off > VERIFY_BUF ? VERIFY_BUF
						  : (size_t)(len - off);
		rc = tc_blob_pread_all(&eng->blobs, fd, buf, k, (off_t)off);
		XXH3_128bits_update(hs, buf, k);
		off += k;
	}
	XXH128_canonicalFromHash(&can, XXH3_128bits_digest(hs));
	if (!rc && memcmp(can.digest, hash, TC_HASH_LEN))
		rc = -EIO;
	if (!rc)
		tc_blob_set_verified(eng, hash);
out:
	free(buf);
	XXH3_freeState(hs);
	return rc;
}

/* Read blob @hash of @len bytes (inline in the index, or its file) into a
 * new RAM item and verify it: -EIO when it does not match or is missing. */
static int read_verified(struct tc_engine *eng, const uint8_t *hash,
			 uint64_t len, struct tc_ram_item **out)
{
	struct tc_ram_item *it = tc_ram_alloc(len);
	uint8_t got[TC_HASH_LEN];
	bool inline_data;
	int rc;

	if (!it)
		return -ENOMEM;
	memcpy(it->hash, hash, TC_HASH_LEN);
	tc_lock(eng);
	inline_data = tc_index_blob_is_inline(&eng->ix, hash);
	rc = inline_data ? tc_index_blob_data(&eng->ix, hash, it->data, len) : 0;
	tc_unlock(eng);
	if (!rc && inline_data) {
		tc_hash_buf(it->data, it->size, got);
		rc = memcmp(got, hash, TC_HASH_LEN) ? -EIO : 0;
	} else if (!rc) {
		rc = tc_blob_read_verified(&eng->blobs, hash, it->data, len);
	}
	if (rc) {
		tc_ram_unref(it);
		return rc == -ENOENT ? -EIO : rc;
	}
	*out = it;
	return 0;
}

/* Open blob file @hash (@len bytes) for reading, verified. */
static int open_verified(struct tc_engine *eng, const uint8_t *hash,
			 uint64_t len, int *fd)
{
	int rc = tc_blob_open_read(&eng->blobs, hash, fd);

	if (!rc) {
		rc = verify_file(eng, *fd, hash, len);
		if (rc)
			close(*fd);
	}
	return rc;
}

/* Load one blob of @len bytes: from RAM, else promoted when @promote and
 * it fits, else inline (a private RAM copy) or its verified file. */
static int load_blob(struct tc_engine *eng, const uint8_t *hash, uint64_t len,
		     bool promote, int64_t ram_ttl, struct tc_ram_item **ram,
		     int *fd)
{
	int64_t now = tc_now(eng);
	bool inline_data;
	int rc;

	*ram = tc_ram_get(eng->ram, hash, now);
	if (*ram)
		return 0;
	tc_lock(eng);
	inline_data = tc_index_blob_is_inline(&eng->ix, hash);
	tc_unlock(eng);
	promote = promote && tc_ram_fits(eng->ram, len);
	if (!promote && !inline_data)
		return open_verified(eng, hash, len, fd);
	rc = read_verified(eng, hash, len, ram);
	if (!rc && promote) {
		*ram = tc_ram_insert(eng->ram, *ram, now, ram_ttl);
		tc_count(eng, promotions, 1);
	}
	return rc;
}

/* Loaded chunk @i of @c: its RAM item (referenced for the caller) or file
 * descriptor (valid while the caller holds @c). */
static int chunk_get(struct tc_content *c, size_t i, struct tc_ram_item **ram,
		     int *fd)
{
	struct tc_cchunk *k = &c->chunks[i];
	uint64_t len = c->size - (uint64_t)i * c->chunk < c->chunk
			       ? c->size - (uint64_t)i * c->chunk
			       : c->chunk;
	struct tc_ram_item *it = NULL;
	int nfd = -1, rc;

	*ram = NULL;
	*fd = -1;
	pthread_mutex_lock(&c->lock);
	if (k->ram) {
		*ram = k->ram;
		atomic_fetch_add(&k->ram->refs, 1);
	} else {
		*fd = k->fd;
	}
	rc = k->bad ? -EIO : 0;
	pthread_mutex_unlock(&c->lock);
	if (*ram || *fd >= 0 || rc)
		return rc;
	rc = load_blob(c->eng, k->hash, len, c->promote, c->ram_ttl, &it, &nfd);
	if (rc == -EIO) {
		bool first;
		pthread_mutex_lock(&c->lock);
		first = !k->bad;
		k->bad = true;
		pthread_mutex_unlock(&c->lock);
		if (first)
			drop_corrupt(c->eng, c->ino, k->hash);
	}
	if (rc)
		return rc;
	pthread_mutex_lock(&c->lock);
	if (!k->ram && k->fd < 0) {
		k->ram = it;
		k->fd = nfd;
		it = NULL;
		nfd = -1;
	}
	*ram = k->ram;
	if (*ram)
		atomic_fetch_add(&k->ram->refs, 1);
	*fd = k->fd;
	pthread_mutex_unlock(&c->lock);
	tc_ram_unref(it);
	if (nfd >= 0)
		close(nfd);
	return 0;
}

/* A content in chunks, listed from the index (chunks load as read). */
static int load_chunked(struct tc_engine *eng, struct tc_node *n,
			const struct tc_inode *m, struct tc_content *c,
			bool *ram_hit)
{
	uint8_t (*hashes)[TC_HASH_LEN];
	size_t count;
	int rc;

	tc_lock(eng);
	rc = tc_index_chunks(&eng->ix, n->ino, &hashes, &count);
	c->ram_ttl = rc ? -1 : tc_policy_ram_ttl_locked(eng, n->ino);
	tc_unlock(eng);
	if (rc)
		return rc;
	if (count != m->nchunks ||
	    count != (m->size + eng->chunk_size - 1) / eng->chunk_size) {
		free(hashes);
		return -EIO;
	}
	c->chunks = calloc(count, sizeof(*c->chunks));
	if (!c->chunks) {
		free(hashes);
		return -ENOMEM;
	}
	pthread_mutex_init(&c->lock, NULL);
	for (size_t i = 0; i < count; i++) {
		memcpy(c->chunks[i].hash, hashes[i], TC_HASH_LEN);
		c->chunks[i].fd = -1;
	}
	free(hashes);
	c->eng = eng;
	c->ino = n->ino;
	c->chunk = eng->chunk_size;
	c->nchunks = count;
	c->promote = m->size <= eng->max_ram_item;
	*ram_hit = tc_ram_contains(eng->ram, c->chunks[0].hash);
	return 0;
}

/*
 * The content of @m is not in RAM: load it (verified) and promote it when
 * it fits, keep a private RAM copy of an inline content that does not, or
 * keep the blob's verified descriptor. Only here is the tag-rule query for
 * a RAM idle limit made.
 */
static TC_NOINLINE int load_from_disk(struct tc_engine *eng, struct tc_node *n,
				      const struct tc_inode *m,
				      struct tc_content *c)
{
	int64_t ram_ttl;
	int rc;

	tc_lock(eng);
	ram_ttl = tc_policy_ram_ttl_locked(eng, n->ino);
	tc_unlock(eng);
	rc = load_blob(eng, m->hash, m->size, true, ram_ttl, &c->ram, &c->fd);
	if (rc == -EIO)
		drop_corrupt(eng, n->ino, m->hash);
	return rc;
}

int tc_content_load_nlocked(struct tc_engine *eng, struct tc_node *n,
			    bool *ram_hit)
{
	struct tc_content *c;
	struct tc_inode m;
	int rc = 0;

	TC_ASSERT_NLOCKED(n);
	tc_lock(eng);
	m = n->body->meta;
	tc_unlock(eng);
	c = tc_content_new(m.size);
	if (!c)
		return -ENOMEM;
	*ram_hit = true;
	if (m.nchunks > 1) {
		rc = load_chunked(eng, n, &m, c, ram_hit);
	} else if (m.hash_set && m.size > 0) {
		c->ram = tc_ram_get(eng->ram, m.hash, tc_now(eng));
		if (!c->ram) {
			*ram_hit = false;
			rc = load_from_disk(eng, n, &m, c);
		}
	}
	if (rc) {
		tc_node_content_unref(c);
		return rc;
	}
	tc_content_set_nlocked(n, c);
	return 0;
}

/* Copy from chunked content @c. */
static ssize_t read_chunked(struct tc_content *c, char *buf, size_t size,
			    uint64_t off)
{
	size_t done = 0;

	while (done < size) {
		size_t i = (size_t)((off + done) / c->chunk);
		uint64_t in = off + done - (uint64_t)i * c->chunk;
		uint64_t left = c->chunk - in;
		size_t k = size - done < left ? size - done : (size_t)left;
		struct tc_ram_item *it;
		int fd, rc;

		rc = chunk_get(c, i, &it, &fd);
		if (rc)
			return done ? (ssize_t)done : rc;
		if (it) {
			memcpy(buf + done, it->data + in, k);
			tc_ram_unref(it);
		} else {
			ssize_t r = pread(fd, buf + done, k, (off_t)in);
			if (r < 0)
				return done ? (ssize_t)done : -errno;
			if ((size_t)r < k)
				return (ssize_t)(done + (size_t)r);
		}
		done += k;
	}
	return (ssize_t)done;
}

ssize_t tc_content_read(struct tc_content *c, void *buf, size_t size,
			uint64_t off)
{
	ssize_t n;

	if (off >= c->size)
		return 0;
	if (size > c->size - off)
		size = c->size - off;
	if (c->nchunks)
		return read_chunked(c, buf, size, off);
	if (c->ram) {
		memcpy(buf, c->ram->data + off, size);
		return (ssize_t)size;
	}
	if (c->fd < 0)
		return 0;
	n = pread(c->fd, buf, size, (off_t)off);
	return n < 0 ? -errno : n;
}

int tc_content_span(struct tc_content *c, uint64_t off, size_t size,
		    struct tc_span *s)
{
	struct tc_ram_item *it;
	uint64_t in, left;
	size_t i, len;
	int fd, rc;

	if (off >= c->size)
		return -EAGAIN;
	left = c->size - off;
	len = size < left ? size : (size_t)left;
	if (!c->nchunks) {
		if (c->ram) {
			atomic_fetch_add(&c->ram->refs, 1);
			s->hold = c->ram;
			s->data = c->ram->data + off;
		} else if (c->fd >= 0) {
			s->fd = c->fd;
			s->pos = (off_t)off;
		} else {
			return -EAGAIN;
		}
		s->len = len;
		return 0;
	}
	i = (size_t)(off / c->chunk);
	in = off - (uint64_t)i * c->chunk;
	/* Within one chunk only (or running past the end of the last): a
	 * short reply would look like the end of the file. */
	if (in + size > c->chunk && i + 1 < c->nchunks)
		return -EAGAIN;
	rc = chunk_get(c, i, &it, &fd);
	if (rc)
		return rc;
	if (it) {
		s->hold = it;
		s->data = it->data + in;
	} else {
		s->fd = fd;
		s->pos = (off_t)in;
	}
	s->len = len;
	return 0;
}

void tc_span_done(struct tc_span *s)
{
	tc_ram_unref(s->hold);
	if (s->own_fd && s->fd >= 0)
		close(s->fd);
	s->hold = NULL;
	s->fd = -1;
	s->own_fd = false;
}

bool tc_content_ok(const struct tc_content *c)
{
	return c->nchunks || c->ram || c->fd >= 0 || c->size == 0;
}

/* ------------------------------------------------------------------ */
/* Chunks for dirty state                                             */
/* ------------------------------------------------------------------ */

static int src_read(void *ctx, const uint8_t *hash, uint64_t len,
		    uint64_t off, void *buf, size_t n)
{
	struct tc_engine *eng = ctx;
	struct tc_ram_item *it = NULL;
	int fd = -1, rc;

	rc = load_blob(eng, hash, len, len <= eng->max_ram_item, -1, &it, &fd);
	if (rc) {
		if (rc == -EIO)
			tc_count(eng, corruptions, 1);
		return rc;
	}
	if (it) {
		memcpy(buf, it->data + off, n);
		tc_ram_unref(it);
		return 0;
	}
	rc = tc_blob_pread_all(&eng->blobs, fd, buf, n, (off_t)off);
	close(fd);
	return rc;
}

static void src_hold(void *ctx, const uint8_t *hash)
{
	struct tc_engine *eng = ctx;

	tc_lock(eng);
	tc_blob_hold_locked(eng, hash);
	tc_unlock(eng);
}

static void src_release(void *ctx, const uint8_t *hash)
{
	struct tc_engine *eng = ctx;

	tc_lock(eng);
	tc_blob_release_locked(eng, hash);
	tc_unlock(eng);
}

ssize_t tc_content_read_node(struct tc_engine *eng, struct tc_node *n,
			     void *buf, size_t size, uint64_t off,
			     int (*load)(struct tc_engine *eng,
					 struct tc_node *n))
{
	struct tc_content *c;
	ssize_t rc;

	tc_mutex_lock(&n->body->lock);
	if (n->body->dirty) {
		rc = tc_dirty_read(&eng->blobs, n->body->dirty, buf, size, off);
		tc_mutex_unlock(&n->body->lock);
	} else if ((rc = load(eng, n)) != 0) {
		tc_mutex_unlock(&n->body->lock);
	} else {
		c = n->body->content;
		atomic_fetch_add(&c->refs, 1);
		tc_mutex_unlock(&n->body->lock);
		rc = tc_content_read(c, buf, size, off);
		tc_node_content_unref(c);
	}
	if (rc > 0)
		tc_count(eng, read_bytes, (uint64_t)rc);
	return rc;
}

void tc_content_chunk_src(struct tc_engine *eng, struct tc_chunk_src *src)
{
	src->read = src_read;
	src->hold = src_hold;
	src->release = src_release;
	src->ctx = eng;
}

struct tc_dirty *tc_content_dirty_new(struct tc_engine *eng)
{
	struct tc_chunk_src src;
	struct tc_dirty *d;

	tc_content_chunk_src(eng, &src);
	d = tc_dirty_new(eng->chunk_size, &src);
	if (d)
		d->mtime = d->touched = tc_now(eng);
	return d;
}

/* ------------------------------------------------------------------ */
/* The hash of a whole content in chunks                              */
/* ------------------------------------------------------------------ */

void tc_content_remember_hash(struct tc_engine *eng,
			      const struct tc_inode *was, const uint8_t *hash)
{
	struct tc_inode m;

	/* A hint in the row: no harm when it is lost. */
	tc_lock(eng);
	if (tc_node_meta_locked(eng, was->ino, &m) == 0 && !m.hash_set &&
	    m.nchunks == was->nchunks && m.size == was->size &&
	    m.mtime == was->mtime && tc_txn_begin_locked(eng) == 0) {
		struct tc_node *n = tc_node_find_locked(eng, was->ino);
		m.hash_set = true;
		memcpy(m.hash, hash, TC_HASH_LEN);
		if (tc_txn_end_locked(
			eng, tc_index_inode_update(&eng->ix, &m)) == 0 &&
		    n && n->body)
			n->body->meta = m;
	}
	tc_unlock(eng);
}

int tc_content_whole_hash(struct tc_engine *eng, uint64_t ino, uint8_t *hash)
{
	struct tc_inode m;
	uint8_t (*hashes)[TC_HASH_LEN] = NULL;
	XXH128_canonical_t can;
	XXH3_state_t *hs = NULL;
	char *buf = NULL;
	size_t count = 0;
	int rc;

	struct tc_inode m0;

	tc_lock(eng);
	rc = tc_node_meta_locked(eng, ino, &m);
	m0 = m;
	if (!rc && m.hash_set) {
		memcpy(hash, m.hash, TC_HASH_LEN);
		tc_unlock(eng);
		return 0;
	}
	if (!rc)
		rc = tc_index_chunks(&eng->ix, ino, &hashes, &count);
	tc_unlock(eng);
	if (rc)
		return rc;
	hs = XXH3_createState();
	buf = malloc(eng->chunk_size);
	if (!hs || !buf) {
		rc = -ENOMEM;
		goto out;
	}
	XXH3_128bits_reset(hs);
	for (size_t i = 0; !rc && i < count; i++) {
		uint64_t start = (uint64_t)i * eng->chunk_size;
		uint64_t len = m.size - start < eng->chunk_size
				       ? m.size - start
				       : eng->chunk_size;
		rc = src_read(eng, hashes[i], len, 0, buf, (size_t)len);
		if (!rc)
			XXH3_128bits_update(hs, buf, (size_t)len);
	}
	XXH128_canonicalFromHash(&can, XXH3_128bits_digest(hs));
	memcpy(hash, can.digest, TC_HASH_LEN);
	if (!rc)
		tc_content_remember_hash(eng, &m0, hash);
out:
	free(buf);
	free(hashes);
	XXH3_freeState(hs);
	return rc;
}
