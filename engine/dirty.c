/* SPDX-License-Identifier: MIT */
/*
 * Unpublished content: what the writers of one node have written since its
 * last publish, shared by all its handles (content.c owns the node and
 * decides when to publish; this file only keeps the bytes).
 *
 * A content is a row of chunks of tc_config.chunk_size bytes (the last one
 * shorter), and dirty state is copy-on-write per chunk: a slot per chunk
 * says where its bytes are now:
 *
 *   ZERO  a hole (a file extended by truncate or by a write past its end,
 *         or a whole chunk zeroed by fallocate);
 *   BASE  unchanged since the published version (its chunk hash);
 *   HELD  a chunk shared from another content (copy_file_range), held in
 *         memory against deletion until the publish references it;
 *   MEM   written: the chunk's bytes in memory;
 *   TMP   written and sealed: hashed into a temporary file in the store,
 *         renamed into place as the chunk's blob by the publish.
 *
 * So a small change to a large file costs the chunk it touched, not the
 * file: publishing hashes and writes only MEM and TMP slots. A writer holds
 * at most MEM_MAX chunks in memory; beyond that the least recently written
 * are sealed, which is what a long sequential write does as it goes, so
 * its data touches the disk once. The XXH3 hash of the whole content is
 * kept up to date while writes are sequential appends from offset 0 (a
 * file written once in order has it for free); otherwise it is unknown
 * until someone asks (content.c).
 *
 * Bytes of BASE and HELD slots are read through the caller's chunk reader
 * (verified against their hash there).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "engine_i.h"

/* Chunks a writer keeps in memory before sealing the least recently
 * written ones: bounds one writer's RAM at a few chunks while random
 * writes to a handful of chunks stay cheap. */
#define MEM_MAX 4

enum { SLOT_ZERO, SLOT_BASE, SLOT_HELD, SLOT_MEM, SLOT_TMP };

struct tc_dslot {
	uint8_t state;
	uint8_t hash[TC_HASH_LEN]; /* BASE, HELD, TMP */
	char *buf;                 /* MEM: the chunk's bytes */
	size_t cap;                /* MEM: allocated */
	int fd;                    /* TMP */
	char tmpname[32];          /* TMP */
	uint64_t used;             /* MEM: write clock, for sealing */
};

static uint64_t slot_len(const struct tc_dirty *d, size_t i)
{
	uint64_t start = (uint64_t)i * d->chunk;

	return d->size - start < d->chunk ? d->size - start : d->chunk;
}

static size_t slots_for(const struct tc_dirty *d, uint64_t size)
{
	return (size_t)((size + d->chunk - 1) / d->chunk);
}

struct tc_dirty *tc_dirty_new(uint64_t chunk, const struct tc_chunk_src *src)
{
	struct tc_dirty *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->chunk = chunk;
	d->src = *src;
	return d;
}

/* Make room for @n slots. */
static int grow_slots(struct tc_dirty *d, size_t n)
{
	struct tc_dslot *v;
	size_t cap;

	if (n <= d->cap)
		return 0;
	/* Most contents are one chunk: a slot, doubled when they grow. */
	cap = d->cap ? d->cap : 1;
	while (cap < n)
		cap *= 2;
	v = realloc(d->slots, cap * sizeof(*v));
	if (!v)
		return -ENOMEM;
	memset(v + d->cap, 0, (cap - d->cap) * sizeof(*v));
	d->slots = v;
	d->cap = cap;
	return 0;
}

/* Forget what slot @i holds (it becomes ZERO). */
static void slot_clear(struct tc_blob_store *bs, struct tc_dirty *d, size_t i)
{
	struct tc_dslot *s = &d->slots[i];

	if (s->state == SLOT_MEM) {
		free(s->buf);
		d->nmem--;
	} else if (s->state == SLOT_TMP) {
		tc_blob_tmp_discard(bs, s->fd, s->tmpname);
	} else if (s->state == SLOT_HELD) {
		d->src.release(d->src.ctx, s->hash);
	}
	memset(s, 0, sizeof(*s));
	s->fd = -1;
}

void tc_dirty_free(struct tc_blob_store *bs, struct tc_dirty *d)
{
	if (!d)
		return;
	for (size_t i = 0; i < d->nslots; i++)
		slot_clear(bs, d, i);
	free(d->slots);
	if (d->hstate)
		XXH3_freeState(d->hstate);
	free(d);
}

int tc_dirty_set_base(struct tc_dirty *d, uint64_t size,
		      const uint8_t (*hashes)[TC_HASH_LEN], size_t n)
{
	int rc;

	if (n != slots_for(d, size))
		return -EIO;
	rc = grow_slots(d, n);
	if (rc)
		return rc;
	for (size_t i = 0; i < n; i++) {
		d->slots[i].state = SLOT_BASE;
		d->slots[i].fd = -1;
		memcpy(d->slots[i].hash, hashes[i], TC_HASH_LEN);
	}
	d->nslots = n;
	d->size = size;
	/* Only what is written from offset 0 on can be hashed as it comes. */
	d->hash_broken = size > 0;
	return 0;
}

/* Read @n bytes at @off of slot @i into @buf; @len is the slot's current
 * length (a chunk is verified whole against its hash). */
static int slot_read(struct tc_blob_store *bs, struct tc_dirty *d, size_t i,
		     uint64_t len, uint64_t off, void *buf, size_t n)
{
	struct tc_dslot *s = &d->slots[i];

	switch (s->state) {
	case SLOT_ZERO:
		memset(buf, 0, n);
		return 0;
	case SLOT_MEM:
		memcpy(buf, s->buf + off, n);
		return 0;
	case SLOT_TMP:
		return tc_blob_pread_all(bs, s->fd, buf, n, (off_t)off);
	default:
		return d->src.read(d->src.ctx, s->hash, len, off, buf, n);
	}
}

/* Turn slot @i (now @curlen bytes long) into MEM, about to be @len bytes
 * long: its first @keep bytes are kept, the rest zeroed. */
static int make_mem(struct tc_blob_store *bs, struct tc_dirty *d, size_t i,
		    uint64_t curlen, uint64_t keep, uint64_t len)
{
	struct tc_dslot *s = &d->slots[i];
	size_t cap;
	char *buf;
	int rc;

	if (s->state == SLOT_MEM) {
		if (len > s->cap) {
			cap = s->cap ? s->cap : 4096;
			while (cap < len)
				cap *= 2;
			buf = realloc(s->buf, cap);
			if (!buf)
				return -ENOMEM;
			s->buf = buf;
			s->cap = cap;
		}
		if (len > keep)
			memset(s->buf + keep, 0, len - keep);
		return 0;
	}
	cap = len ? len : 1;
	buf = calloc(1, cap);
	if (!buf)
		return -ENOMEM;
	rc = keep ? slot_read(bs, d, i, curlen, 0, buf, keep) : 0;
	if (rc) {
		free(buf);
		return rc;
	}
	slot_clear(bs, d, i);
	s->state = SLOT_MEM;
	s->buf = buf;
	s->cap = cap;
	d->nmem++;
	return 0;
}

/* Set the size to @size: slots beyond go, the last one's length changes
 * (its bytes, not its hash, are kept: it becomes MEM), new slots are
 * holes. */
static int resize(struct tc_blob_store *bs, struct tc_dirty *d, uint64_t size)
{
	size_t n = slots_for(d, size), last;
	uint64_t ol, nl, start;
	int rc;

	if (size == d->size)
		return 0;
	rc = grow_slots(d, n);
	if (rc)
		return rc;
	for (size_t i = n; i < d->nslots; i++)
		slot_clear(bs, d, i);
	if (d->nslots > n)
		d->nslots = n;
	if (d->nslots) {
		last = d->nslots - 1;
		start = (uint64_t)last * d->chunk;
		ol = d->size - start < d->chunk ? d->size - start : d->chunk;
		nl = size - start < d->chunk ? size - start : d->chunk;
		if (ol != nl && d->slots[last].state != SLOT_ZERO) {
			rc = make_mem(bs, d, last, ol, ol < nl ? ol : nl, nl);
			if (rc)
				return rc;
		}
	}
	for (size_t i = d->nslots; i < n; i++) {
		memset(&d->slots[i], 0, sizeof(d->slots[i]));
		d->slots[i].fd = -1;
	}
	d->nslots = n;
	d->size = size;
	return 0;
}

/* Seal MEM slot @i: hash its bytes into a temporary file. */
static int seal(struct tc_blob_store *bs, struct tc_dirty *d, size_t i)
{
	struct tc_dslot *s = &d->slots[i];
	uint64_t len = slot_len(d, i);
	char name[32];
	int fd, rc;

	rc = tc_blob_tmp_create(bs, &fd, name);
	if (rc)
		return rc;
	rc = tc_blob_pwrite_all(bs, fd, s->buf, len, 0);
	if (rc) {
		tc_blob_tmp_discard(bs, fd, name);
		return rc;
	}
	tc_hash_buf(s->buf, len, s->hash);
	free(s->buf);
	s->buf = NULL;
	s->cap = 0;
	s->state = SLOT_TMP;
	s->fd = fd;
	memcpy(s->tmpname, name, sizeof(name));
	d->nmem--;
	return 0;
}

/* Seal hole @i: a chunk of zeros like any other, but its file is sparse
 * and the hash of a whole chunk of zeros is computed once. */
static int seal_hole(struct tc_blob_store *bs, struct tc_dirty *d, size_t i)
{
	struct tc_dslot *s = &d->slots[i];
	uint64_t len = slot_len(d, i);
	char name[32];
	int fd, rc;

	if (len != d->chunk || !d->zero_hashed) {
		char *zeros = calloc(1, len ? len : 1);
		if (!zeros)
			return -ENOMEM;
		tc_hash_buf(zeros, len, s->hash);
		free(zeros);
		if (len == d->chunk) {
			memcpy(d->zero_hash, s->hash, TC_HASH_LEN);
			d->zero_hashed = true;
		}
	} else {
		memcpy(s->hash, d->zero_hash, TC_HASH_LEN);
	}
	rc = tc_blob_tmp_create(bs, &fd, name);
	if (rc)
		return rc;
	if (ftruncate(fd, (off_t)len)) {
		rc = -errno;
		tc_blob_tmp_discard(bs, fd, name);
		return rc;
	}
	s->state = SLOT_TMP;
	s->fd = fd;
	memcpy(s->tmpname, name, sizeof(name));
	return 0;
}

/* Keep at most MEM_MAX chunks in memory: seal the least recently written
 * (but never @keep, the one being written). */
static int bound_memory(struct tc_blob_store *bs, struct tc_dirty *d,
			size_t keep)
{
	while (d->nmem > MEM_MAX) {
		size_t old = SIZE_MAX;
		int rc;

		for (size_t i = 0; i < d->nslots; i++)
			if (d->slots[i].state == SLOT_MEM && i != keep &&
			    (old == SIZE_MAX ||
			     d->slots[i].used < d->slots[old].used))
				old = i;
		if (old == SIZE_MAX)
			return 0;
		rc = seal(bs, d, old);
		if (rc)
			return rc;
	}
	return 0;
}

/*
 * The streaming hash of the whole starts late: while sequential writes
 * stay within the first chunk, d->hashed only counts their bytes, which
 * are all in slot 0 (a small content, the common case, never needs a
 * state: the chunk's own hash is the whole's). Once the content outgrows
 * the chunk, or the whole hash is asked for while slot 0 is a sealed file,
 * the state is made and fed those bytes. Fails only for memory or a failed
 * read; the caller then treats the whole hash as unknown.
 */
static int hash_catch_up(struct tc_blob_store *bs, struct tc_dirty *d)
{
	struct tc_dslot *s = d->nslots ? &d->slots[0] : NULL;
	char tmp[16384];
	int rc = 0;

	if (d->hstate)
		return 0;
	d->hstate = XXH3_createState();
	if (!d->hstate)
		return -ENOMEM;
	XXH3_128bits_reset(d->hstate);
	if (s && s->state == SLOT_MEM) {
		XXH3_128bits_update(d->hstate, s->buf, (size_t)d->hashed);
		return 0;
	}
	for (uint64_t q = 0; !rc && q < d->hashed; q += sizeof(tmp)) {
		size_t k = d->hashed - q < sizeof(tmp) ? (size_t)(d->hashed - q)
						       : sizeof(tmp);
		rc = slot_read(bs, d, 0, slot_len(d, 0), q, tmp, k);
		if (!rc)
			XXH3_128bits_update(d->hstate, tmp, k);
	}
	if (rc) {
		XXH3_freeState(d->hstate);
		d->hstate = NULL;
	}
	return rc;
}

int tc_dirty_write(struct tc_blob_store *bs, struct tc_dirty *d,
		   const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;
	uint64_t end = off + len, pos = off;
	size_t last = 0;
	int rc;

	if (len == 0)
		return 0; /* writes nothing, extends nothing (POSIX) */
	d->from_shared = false; /* a local write: its publish is ours */
	/* A failed write changes nothing: the chunks it lands in are loaded
	 * first (what can fail), then the size moves, then bytes are
	 * copied (what cannot). */
	for (uint64_t q = off; q < end && q < d->size;) {
		size_t i = (size_t)(q / d->chunk);
		uint64_t sl = slot_len(d, i);
		rc = make_mem(bs, d, i, sl, sl, sl);
		if (rc)
			return rc;
		q = (uint64_t)(i + 1) * d->chunk;
	}
	if (end > d->size) {
		rc = resize(bs, d, end);
		if (rc)
			return rc;
	}
	/* Keep the whole hash going while writes are sequential appends. */
	if (!d->hash_broken && off == d->hashed && off + len >= d->hashed &&
	    off == d->size - len) {
		if (!d->hstate && end > d->chunk && hash_catch_up(bs, d))
			d->hash_broken = true;
		else if (d->hstate)
			XXH3_128bits_update(d->hstate, buf, len);
		d->hashed = end;
	} else {
		d->hash_broken = true;
	}
	while (pos < end) {
		size_t i = (size_t)(pos / d->chunk);
		uint64_t start = (uint64_t)i * d->chunk, sl = slot_len(d, i);
		uint64_t in = pos - start;
		size_t k = end - pos < sl - in ? (size_t)(end - pos)
					       : (size_t)(sl - in);

		rc = make_mem(bs, d, i, sl, sl, sl);
		if (rc)
			return rc; /* ENOMEM only: the chunk was a hole */
		memcpy(d->slots[i].buf + in, p, k);
		d->slots[i].used = ++d->clock;
		last = i;
		p += k;
		pos += k;
	}
	/* Sealing may fail (ENOSPC): the chunks then stay in memory, and
	 * the publish reports it. */
	(void)!bound_memory(bs, d, last);
	return 0;
}

int tc_dirty_truncate(struct tc_blob_store *bs, struct tc_dirty *d,
		      uint64_t size)
{
	if (size == d->size)
		return 0;
	d->from_shared = false;
	if (size < d->hashed || size > d->size)
		d->hash_broken = true;
	return resize(bs, d, size);
}

int tc_dirty_zero(struct tc_blob_store *bs, struct tc_dirty *d, uint64_t off,
		  uint64_t len)
{
	static const char zeros[65536];
	uint64_t end = off + len;

	if (off >= d->size || len == 0)
		return 0;
	if (end > d->size)
		end = d->size;
	d->from_shared = false;
	while (off < end) {
		size_t i = (size_t)(off / d->chunk);
		uint64_t start = (uint64_t)i * d->chunk, sl = slot_len(d, i);
		uint64_t in = off - start;
		uint64_t k = end - off < sl - in ? end - off : sl - in;
		int rc;

		if (in == 0 && k == sl) {
			/* A whole chunk: a hole, whatever it held. */
			slot_clear(bs, d, i);
			d->hash_broken = true;
		} else {
			/* Part of one: zeros written (at most a chunk). */
			for (uint64_t q = 0; q < k; q += sizeof(zeros)) {
				size_t n = k - q < sizeof(zeros)
						   ? (size_t)(k - q)
						   : sizeof(zeros);
				rc = tc_dirty_write(bs, d, zeros, n, off + q);
				if (rc)
					return rc;
			}
		}
		off += k;
	}
	return 0;
}

ssize_t tc_dirty_read(struct tc_blob_store *bs, struct tc_dirty *d, void *buf,
		      size_t size, uint64_t off)
{
	char *p = buf;
	uint64_t pos = off, end;
	int rc;

	if (off >= d->size)
		return 0;
	if (size > d->size - off)
		size = (size_t)(d->size - off);
	end = off + size;
	while (pos < end) {
		size_t i = (size_t)(pos / d->chunk);
		uint64_t start = (uint64_t)i * d->chunk, sl = slot_len(d, i);
		uint64_t in = pos - start;
		size_t k = end - pos < sl - in ? (size_t)(end - pos)
					       : (size_t)(sl - in);

		rc = slot_read(bs, d, i, sl, in, p, k);
		if (rc)
			return rc;
		p += k;
		pos += k;
	}
	return (ssize_t)size;
}

bool tc_dirty_whole_hash(struct tc_blob_store *bs, struct tc_dirty *d,
			 uint8_t *hash)
{
	XXH128_canonical_t c;

	if (d->hash_broken || d->hashed != d->size)
		return false;
	if (!d->hstate && d->size == 0) {
		tc_hash_buf("", 0, hash);
		return true;
	}
	if (!d->hstate && d->slots[0].state == SLOT_MEM) {
		tc_hash_buf(d->slots[0].buf, (size_t)d->size, hash);
		return true;
	}
	if (hash_catch_up(bs, d))
		return false;
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(d->hstate));
	memcpy(hash, c.digest, TC_HASH_LEN);
	return true;
}

int tc_dirty_seal(struct tc_blob_store *bs, struct tc_dirty *d,
		  uint64_t inline_max)
{
	bool zero_file = false; /* a whole chunk of zeros has a file here */

	/* A small content kept in memory may go inside the index as is. */
	if (d->nslots == 1 && d->slots[0].state == SLOT_MEM &&
	    d->size <= inline_max) {
		tc_hash_buf(d->slots[0].buf, d->size, d->slots[0].hash);
		return 0;
	}
	for (size_t i = 0; i < d->nslots; i++) {
		struct tc_dslot *s = &d->slots[i];
		int rc = 0;

		if (s->state == SLOT_MEM) {
			rc = seal(bs, d, i);
		} else if (s->state == SLOT_ZERO && zero_file &&
			   slot_len(d, i) == d->chunk) {
			/* The same bytes as the hole sealed before it: one
			 * file for all (a preallocated gigabyte is 1,024 of
			 * them). It stays a hole, with the hash the publish
			 * references; the publish stores that earlier file
			 * (or finds the blob there already) first. */
			memcpy(s->hash, d->zero_hash, TC_HASH_LEN);
		} else if (s->state == SLOT_ZERO) {
			rc = seal_hole(bs, d, i);
			if (!rc && slot_len(d, i) == d->chunk)
				zero_file = true;
		}
		if (rc)
			return rc;
	}
	return 0;
}

size_t tc_dirty_slots(const struct tc_dirty *d)
{
	return d->nslots;
}

void tc_dirty_slot(const struct tc_dirty *d, size_t i,
		   struct tc_dirty_slot *out)
{
	const struct tc_dslot *s = &d->slots[i];

	out->len = slot_len(d, i);
	memcpy(out->hash, s->hash, TC_HASH_LEN);
	out->changed = s->state != SLOT_BASE;
	out->file = s->state == SLOT_TMP ? s->fd : -1;
	out->data = s->state == SLOT_MEM ? s->buf : NULL;
	out->held = s->state == SLOT_HELD;
}

int tc_dirty_slot_store(struct tc_blob_store *bs, struct tc_dirty *d, size_t i,
			bool durable)
{
	struct tc_dslot *s = &d->slots[i];
	int rc;

	if (s->state != SLOT_TMP)
		return 0;
	/* Held from before the file takes its name until the publish
	 * references it: a blob of that hash that lost its last reference
	 * earlier (retired, or released by another writer) must not have its
	 * file deleted from under this one. */
	d->src.hold(d->src.ctx, s->hash);
	rc = tc_blob_commit_tmp(bs, s->fd, s->tmpname, s->hash, durable);
	if (rc) {
		d->src.release(d->src.ctx, s->hash);
		return rc;
	}
	close(s->fd);
	s->fd = -1;
	s->tmpname[0] = '\0';
	s->state = SLOT_HELD;
	return 0;
}

void tc_dirty_slot_discard_tmp(struct tc_blob_store *bs, struct tc_dirty *d,
			       size_t i)
{
	struct tc_dslot *s = &d->slots[i];

	if (s->state != SLOT_TMP)
		return;
	/* Its content is a blob already (held by the caller's hold). */
	tc_blob_tmp_discard(bs, s->fd, s->tmpname);
	s->fd = -1;
	s->tmpname[0] = '\0';
	s->state = SLOT_HELD;
}

int tc_dirty_share(struct tc_blob_store *bs, struct tc_dirty *d, size_t i,
		   const uint8_t *hash)
{
	struct tc_dslot *s;

	if (i >= d->nslots)
		return -EINVAL;
	slot_clear(bs, d, i);
	s = &d->slots[i];
	s->state = SLOT_HELD;
	memcpy(s->hash, hash, TC_HASH_LEN);
	d->hash_broken = true;
	return 0;
}
