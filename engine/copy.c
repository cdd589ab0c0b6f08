/* SPDX-License-Identifier: MIT */
/*
 * copy_file_range(2) inside the mount: the destination shares the source's
 * chunks instead of copying their bytes (coreutils cp uses it), so copying
 * a large cached file is a metadata operation. Whole chunks at the same
 * alignment in both files become slots of the destination's dirty state
 * naming the source's blobs (held until the destination's publish takes
 * its references); what is left over at unaligned edges is copied.
 *
 * The source is read as published when it has no dirty state (its chunk
 * list is taken under the engine lock and held, so a concurrent overwrite
 * or unlink of the source cannot take the blobs away), and copied byte by
 * byte from its dirty state otherwise. The two nodes' locks are never held
 * together.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine_i.h"

/* Bytes copied per step when bytes must be copied. */
#define STEP (UINT64_C(1) << 20)

struct source {
	uint64_t size;
	size_t n;                      /* chunks (1: a single blob) */
	uint8_t (*hashes)[TC_HASH_LEN];
	bool dirty;                    /* copy bytes from its dirty state */
};

/* Pinned regular-file node @ino. */
static int reg_node(struct tc_engine *eng, uint64_t ino, struct tc_node **out)
{
	int rc;

	tc_lock(eng);
	rc = tc_node_get_locked(eng, ino, out);
	if (!rc && !S_ISREG((*out)->body->meta.mode)) {
		rc = S_ISDIR((*out)->body->meta.mode) ? -EISDIR : -EINVAL;
		tc_node_unpin_locked(eng, *out);
	}
	tc_unlock(eng);
	return rc;
}

/* What the source holds now: its chunk list, held, or "dirty". */
static int source_get(struct tc_engine *eng, struct tc_node *n,
		      struct source *s)
{
	struct tc_inode m;
	int rc = 0;

	memset(s, 0, sizeof(*s));
	tc_mutex_lock(&n->body->lock);
	s->dirty = n->body->dirty != NULL;
	tc_lock(eng);
	m = n->body->meta;
	s->size = s->dirty ? n->body->dirty->size : m.size;
	if (!s->dirty && m.nchunks > 1) {
		rc = tc_index_chunks(&eng->ix, n->ino, &s->hashes, &s->n);
	} else if (!s->dirty && m.hash_set) {
		s->hashes = malloc(TC_HASH_LEN);
		rc = s->hashes ? 0 : -ENOMEM;
		if (!rc) {
			memcpy(s->hashes[0], m.hash, TC_HASH_LEN);
			s->n = 1;
		}
	}
	for (size_t i = 0; !rc && i < s->n; i++)
		tc_blob_hold_locked(eng, s->hashes[i]);
	tc_unlock(eng);
	tc_mutex_unlock(&n->body->lock);
	return rc;
}

static void source_put(struct tc_engine *eng, struct source *s)
{
	tc_lock(eng);
	for (size_t i = 0; i < s->n; i++)
		tc_blob_release_locked(eng, s->hashes[i]);
	tc_unlock(eng);
	free(s->hashes);
}

/* Read @len bytes at @off of the source into @buf. */
static int source_read(struct tc_engine *eng, struct tc_node *n,
		       const struct source *s, uint64_t off, char *buf,
		       size_t len)
{
	struct tc_chunk_src src;
	uint64_t c = eng->chunk_size;
	size_t done = 0;

	if (s->dirty) {
		ssize_t k;
		tc_mutex_lock(&n->body->lock);
		k = n->body->dirty ? tc_dirty_read(&eng->blobs, n->body->dirty,
						   buf, len, off)
				   : -EAGAIN;
		tc_mutex_unlock(&n->body->lock);
		if (k == -EAGAIN)
			return -EAGAIN; /* published meanwhile: start again */
		return k == (ssize_t)len ? 0 : k < 0 ? (int)k : -EIO;
	}
	tc_content_chunk_src(eng, &src);
	while (done < len) {
		size_t i = s->n > 1 ? (size_t)((off + done) / c) : 0;
		uint64_t start = s->n > 1 ? (uint64_t)i * c : 0;
		uint64_t clen = s->n > 1 && s->size - start > c ? c
								: s->size - start;
		uint64_t in = off + done - start;
		size_t k = len - done < clen - in ? len - done
						  : (size_t)(clen - in);
		int rc = src.read(src.ctx, s->hashes[i], clen, in, buf + done,
				  k);
		if (rc)
			return rc;
		done += k;
	}
	return 0;
}

/* Share whole source chunks where both offsets are chunk-aligned: each
 * shared chunk advances *@pos. */
static int share_chunks_nlocked(struct tc_engine *eng, struct tc_node *dst,
				const struct source *s, uint64_t off_in,
				uint64_t off_out, uint64_t len, uint64_t *pos)
{
	uint64_t c = eng->chunk_size;
	struct tc_dirty *d = dst->body->dirty;
	int rc = 0;

	while (!rc && *pos < len) {
		uint64_t so = off_in + *pos, dof = off_out + *pos;
		size_t i = (size_t)(so / c), j = (size_t)(dof / c);
		uint64_t clen;

		if (so % c || dof % c || i >= s->n)
			break;
		clen = s->size - (uint64_t)i * c > c ? c
						     : s->size - (uint64_t)i * c;
		/* The whole chunk, landing as a whole slot of the same
		 * length (a short last chunk only at the end of the file). */
		if (len - *pos < clen ||
		    (clen < c && d->size != dof + clen))
			break;
		tc_lock(eng);
		tc_blob_hold_locked(eng, s->hashes[i]);
		tc_unlock(eng);
		rc = tc_dirty_share(&eng->blobs, d, j, s->hashes[i]);
		*pos += clen;
	}
	return rc;
}

ssize_t tc_copy_range(struct tc_engine *eng, uint64_t ino_in, off_t off_in,
		      uint64_t ino_out, off_t off_out, size_t len)
{
	struct tc_node *src = NULL, *dst = NULL;
	struct source s = { 0 };
	uint64_t n = 0, pos = 0;
	char *buf = NULL;
	int rc;

	if (off_in < 0 || off_out < 0)
		return -EINVAL;
	rc = reg_node(eng, ino_in, &src);
	if (!rc)
		rc = reg_node(eng, ino_out, &dst);
	if (!rc)
		rc = source_get(eng, src, &s);
	if (rc)
		goto out;
	n = (uint64_t)off_in >= s.size ? 0 : s.size - (uint64_t)off_in;
	if (n > len)
		n = len;
	if (eng->disk_size && (uint64_t)off_out + n > eng->disk_size) {
		rc = -EFBIG;
		goto out;
	}
	/* The same file: bytes (ranges may overlap). */
	if (src == dst)
		s.dirty = true;
	tc_mutex_lock(&dst->body->lock);
	rc = tc_content_dirty_begin_nlocked(eng, dst, false);
	/* Grow first, so that shared slots exist at their length. */
	if (!rc && n && (uint64_t)off_out + n > dst->body->dirty->size)
		rc = tc_dirty_truncate(&eng->blobs, dst->body->dirty,
				       (uint64_t)off_out + n);
	if (!rc && !s.dirty)
		rc = share_chunks_nlocked(eng, dst, &s, (uint64_t)off_in,
					  (uint64_t)off_out, n, &pos);
	if (!rc && n) {
		dst->body->dirty->mtime = dst->body->dirty->touched =
		    tc_now(eng);
		dst->body->dirty->written = true;
	}
	tc_mutex_unlock(&dst->body->lock);
	/* What could not be shared is copied. */
	if (!rc && pos < n && !(buf = malloc(STEP)))
		rc = -ENOMEM;
	while (!rc && pos < n) {
		size_t k = n - pos < STEP ? (size_t)(n - pos) : (size_t)STEP;
		rc = source_read(eng, src, &s, (uint64_t)off_in + pos, buf, k);
		if (rc == -EAGAIN) {
			/* The source was published meanwhile: its chunks. */
			source_put(eng, &s);
			rc = source_get(eng, src, &s);
			continue;
		}
		if (rc)
			break;
		tc_mutex_lock(&dst->body->lock);
		rc = tc_content_dirty_begin_nlocked(eng, dst, false);
		if (!rc)
			rc = tc_dirty_write(&eng->blobs, dst->body->dirty, buf,
					    k, (uint64_t)off_out + pos);
		tc_mutex_unlock(&dst->body->lock);
		pos += k;
	}
out:
	free(buf);
	if (s.hashes)
		source_put(eng, &s);
	if (src)
		tc_node_unpin(eng, src);
	if (dst)
		tc_node_unpin(eng, dst);
	return rc ? rc : (ssize_t)n;
}
