/* SPDX-License-Identifier: MIT */
/*
 * Unpublished content: what the writers of one node have written since its
 * last publish, shared by all its handles (content.c owns the node and
 * decides when to publish; this file only keeps the bytes).
 *
 * Content stays in memory while small and moves to a temporary file in the
 * store once it outgrows DIRTY_SPILL, so one writer's RAM is bounded while
 * small values (the common case for a cache) never touch the disk before
 * they are published. The XXH3 hash is kept up to date while writes are
 * sequential appends, so publishing a large file that was written once
 * does not read it again; any other write marks the hash for a full pass
 * at publish. A spilled file becomes the blob by a rename (the data is
 * written once).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "engine_i.h"

/*
 * Dirty content stays in memory up to this size, then moves to a temporary
 * file in the store: bounds the RAM one writer can hold, while small values
 * never touch the disk before publishing.
 */
#define DIRTY_SPILL (UINT64_C(1) << 20)

/* Buffer of a rehashing pass over a spilled file. */
#define REHASH_CHUNK (1 << 20)

struct tc_dirty *tc_dirty_new(void)
{
	struct tc_dirty *d = calloc(1, sizeof(*d));

	if (!d)
		return NULL;
	d->fd = -1;
	d->hstate = XXH3_createState();
	if (!d->hstate) {
		free(d);
		return NULL;
	}
	XXH3_128bits_reset(d->hstate);
	return d;
}

void tc_dirty_free(struct tc_blob_store *bs, struct tc_dirty *d)
{
	if (!d)
		return;
	if (d->fd >= 0)
		tc_blob_tmp_discard(bs, d->fd, d->tmpname);
	free(d->buf);
	if (d->hstate)
		XXH3_freeState(d->hstate);
	free(d);
}

/* Move in-memory dirty content to a temporary file. */
static int spill(struct tc_blob_store *bs, struct tc_dirty *d)
{
	int rc = tc_blob_tmp_create(bs, &d->fd, d->tmpname);

	if (rc)
		return rc;
	rc = tc_blob_pwrite_all(bs, d->fd, d->buf, d->size, 0);
	if (rc) {
		tc_blob_tmp_discard(bs, d->fd, d->tmpname);
		d->fd = -1;
		d->tmpname[0] = '\0';
		return rc;
	}
	free(d->buf);
	d->buf = NULL;
	d->cap = 0;
	return 0;
}

int tc_dirty_write(struct tc_blob_store *bs, struct tc_dirty *d,
		   const void *buf, size_t len, uint64_t off)
{
	uint64_t end = off + len;
	int rc;

	if (len == 0)
		return 0; /* writes nothing, extends nothing (POSIX) */
	d->from_shared = false; /* a local write: its publish is ours */
	if (d->fd < 0 && end > DIRTY_SPILL) {
		rc = spill(bs, d);
		if (rc)
			return rc;
	}
	if (d->fd >= 0) {
		rc = tc_blob_pwrite_all(bs, d->fd, buf, len, (off_t)off);
		if (rc)
			return rc;
	} else {
		if (end > d->cap) {
			size_t cap = d->cap ? d->cap : 4096;
			char *nb;
			while (cap < end)
				cap *= 2;
			nb = realloc(d->buf, cap);
			if (!nb)
				return -ENOMEM;
			d->buf = nb;
			d->cap = cap;
		}
		if (off > d->size)
			memset(d->buf + d->size, 0, off - d->size);
		memcpy(d->buf + off, buf, len);
	}
	/* Keep the hash going while writes are sequential appends. */
	if (!d->hash_broken && off == d->hashed && off >= d->size) {
		XXH3_128bits_update(d->hstate, buf, len);
		d->hashed = end;
	} else if (off < d->hashed || off > d->size) {
		d->hash_broken = true;
	}
	if (end > d->size)
		d->size = end;
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
	if (d->fd >= 0) {
		if (ftruncate(d->fd, (off_t)size))
			return -errno;
	} else if (size > DIRTY_SPILL) {
		int rc = spill(bs, d);
		if (rc)
			return rc;
		if (ftruncate(d->fd, (off_t)size))
			return -errno;
	} else if (size > d->size) {
		static const char zero[4096];
		uint64_t pos = d->size;
		while (pos < size) {
			size_t k = size - pos > sizeof(zero) ? sizeof(zero)
							      : size - pos;
			int rc = tc_dirty_write(bs, d, zero, k, pos);
			if (rc)
				return rc;
			pos += k;
		}
		d->hash_broken = true;
	}
	d->size = size;
	return 0;
}

ssize_t tc_dirty_read(struct tc_dirty *d, void *buf, size_t size,
		      uint64_t off)
{
	ssize_t n;

	if (off >= d->size)
		return 0;
	if (size > d->size - off)
		size = d->size - off;
	if (d->fd < 0) {
		memcpy(buf, d->buf + off, size);
		return (ssize_t)size;
	}
	n = pread(d->fd, buf, size, (off_t)off);
	return n < 0 ? -errno : n;
}

/* Feed the whole content to a fresh hash state. */
static int rehash(struct tc_blob_store *bs, struct tc_dirty *d)
{
	char *buf;
	int rc = 0;

	XXH3_128bits_reset(d->hstate);
	if (d->fd < 0) {
		XXH3_128bits_update(d->hstate, d->buf, d->size);
		return 0;
	}
	buf = malloc(REHASH_CHUNK);
	if (!buf)
		return -ENOMEM;
	for (uint64_t off = 0; !rc && off < d->size;) {
		size_t k = d->size - off > REHASH_CHUNK ? REHASH_CHUNK
							: d->size - off;
		rc = tc_blob_pread_all(bs, d->fd, buf, k, (off_t)off);
		if (!rc)
			XXH3_128bits_update(d->hstate, buf, k);
		off += k;
	}
	free(buf);
	return rc;
}

int tc_dirty_hash(struct tc_blob_store *bs, struct tc_dirty *d, uint8_t *hash)
{
	XXH128_canonical_t c;

	if (d->hash_broken || d->hashed != d->size) {
		int rc = rehash(bs, d);
		if (rc)
			return rc;
		d->hashed = d->size;
		d->hash_broken = false;
	}
	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(d->hstate));
	memcpy(hash, c.digest, TC_HASH_LEN);
	return 0;
}

void tc_dirty_adopt_tmp(struct tc_dirty *d, int fd, const char *name,
			uint64_t size)
{
	d->fd = fd;
	snprintf(d->tmpname, sizeof(d->tmpname), "%s", name);
	d->size = size;
	d->hash_broken = true; /* read once more at publish */
}

int tc_dirty_store(struct tc_blob_store *bs, struct tc_dirty *d,
		   const uint8_t *hash, bool durable)
{
	int rc;

	if (d->fd >= 0) {
		rc = tc_blob_commit_tmp(bs, d->fd, d->tmpname, hash, durable);
		if (!rc)
			d->tmpname[0] = '\0'; /* the file is the blob now */
		return rc;
	}
	return tc_blob_write(bs, hash, d->buf, d->size, durable);
}
