/* SPDX-License-Identifier: MIT */
/*
 * Publishing: turning a node's dirty state (dirty.c) into its new content.
 *
 * Dirty state begins from the published content's chunk list, without
 * copying anything (copy-on-write per chunk). A publish hashes only the
 * chunks that changed (sealing them into temporary files, or keeping one
 * small content in memory to go inside the index), then:
 *
 *   1. one operation records every new blob file as pending, committed at
 *      once, before the file exists under its name: a crash in between
 *      leaves nothing the next open cannot find;
 *   2. the sealed files are renamed into place (fsynced first when the
 *      publish is durable), and held in memory until step 3 references
 *      them, so nothing reaps them meanwhile;
 *   3. one operation makes room, takes a reference to each new chunk,
 *      drops those of the chunks it replaces, rewrites the chunk rows that
 *      changed and the inode row.
 *
 * A crash before step 3's commit leaves the old content; after it, the
 * new. A small change to a large file costs the chunks it touched plus a
 * few rows. On failure the dirty state and the previous content stay as
 * they were, and a later publish starts again from the slots.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_i.h"

/* Bytes copied per step when an old single blob larger than a chunk (a
 * store written before contents were chunked) becomes dirty state. */
#define COPY_STEP 65536

/* Dirty state from a content the chunk rows cannot describe: copy it. */
static int begin_by_copy(struct tc_engine *eng, struct tc_node *n,
			 struct tc_dirty *d)
{
	bool hit;
	int rc = 0;

	if (!n->body->content)
		rc = tc_content_load_nlocked(eng, n, &hit);
	for (uint64_t off = 0; !rc && off < n->body->content->size;) {
		char buf[COPY_STEP];
		ssize_t k =
		    tc_content_read(n->body->content, buf, sizeof(buf), off);
		if (k <= 0) {
			rc = k ? (int)k : -EIO;
			break;
		}
		rc = tc_dirty_write(&eng->blobs, d, buf, (size_t)k, off);
		off += (uint64_t)k;
	}
	return rc;
}

/* Point @d at @n's published chunks. */
static int begin_from_base(struct tc_engine *eng, struct tc_node *n,
			   struct tc_dirty *d)
{
	uint8_t (*hashes)[TC_HASH_LEN] = NULL;
	struct tc_inode m;
	size_t count = 0;
	int rc = 0;

	tc_lock(eng);
	m = n->body->meta;
	if (m.nchunks > 1)
		rc = tc_index_chunks(&eng->ix, n->ino, &hashes, &count);
	tc_unlock(eng);
	if (rc)
		return rc;
	if (m.size == 0)
		return 0;
	if (m.nchunks > 1)
		rc = tc_dirty_set_base(d, m.size,
				       (const uint8_t (*)[TC_HASH_LEN])hashes,
				       count);
	else if (m.size <= eng->chunk_size && m.hash_set)
		rc = tc_dirty_set_base(d, m.size,
				       (const uint8_t (*)[TC_HASH_LEN])&m.hash,
				       1);
	else
		rc = begin_by_copy(eng, n, d);
	free(hashes);
	return rc;
}

int tc_content_dirty_begin_nlocked(struct tc_engine *eng, struct tc_node *n,
				   bool empty)
{
	struct tc_dirty *d;
	int rc = 0;

	TC_ASSERT_NLOCKED(n);
	if (n->body->dirty)
		return 0;
	d = tc_content_dirty_new(eng);
	if (!d)
		return -ENOMEM;
	if (!empty)
		rc = begin_from_base(eng, n, d);
	if (rc) {
		tc_dirty_free(&eng->blobs, d);
		return rc;
	}
	d->mtime = d->touched = tc_now(eng);
	n->body->dirty = d;
	return 0;
}

void tc_content_dirty_end_nlocked(struct tc_engine *eng, struct tc_node *n)
{
	TC_ASSERT_NLOCKED(n);
	tc_dirty_free(&eng->blobs, n->body->dirty);
	n->body->dirty = NULL;
}

/* Step 1: pending rows for the sealed files whose blobs are new; a hold
 * (and no file) for those that exist. */
static int publish_pending(struct tc_engine *eng, struct tc_dirty *d,
			   struct tc_inval_list *inv)
{
	size_t ns = tc_dirty_slots(d);
	bool any = false;
	int rc;

	tc_lock(eng);
	rc = tc_txn_begin_locked(eng);
	for (size_t i = 0; !rc && i < ns; i++) {
		struct tc_dirty_slot s;

		tc_dirty_slot(d, i, &s);
		if (s.file < 0)
			continue;
		if (tc_blob_known_locked(eng, s.hash)) {
			tc_blob_hold_locked(eng, s.hash);
			tc_dirty_slot_discard_tmp(&eng->blobs, d, i);
			continue;
		}
		rc = tc_blob_pending_locked(eng, s.hash);
		any = true;
	}
	if (!rc)
		rc = tc_txn_end_locked(eng, 0);
	else
		tc_txn_rollback_locked(eng);
	if (!rc && any)
		rc = tc_commit_locked(eng, inv);
	tc_unlock(eng);
	return rc;
}

/* Step 2: the sealed files become blobs. A durable publish syncs its files
 * together: the writeback of all starts first, then each is waited for,
 * then all are renamed, and each blob directory they went to is synced
 * once. On a journalling filesystem the first sync of a batch then commits
 * what the others need, where file by file it was two journal commits a
 * chunk. */
static int publish_files(struct tc_engine *eng, struct tc_dirty *d,
			 bool durable)
{
	bool dirs[256] = { false }; /* blob directories to sync */
	size_t ns = tc_dirty_slots(d);
	struct tc_dirty_slot s;
	int rc = 0;

	for (size_t i = 0; durable && i < ns; i++) {
		tc_dirty_slot(d, i, &s);
		if (s.file >= 0)
			tc_blob_start_sync(s.file);
	}
	for (size_t i = 0; durable && !rc && i < ns; i++) {
		tc_dirty_slot(d, i, &s);
		if (s.file >= 0)
			rc = tc_blob_fsync(&eng->blobs, s.file);
	}
	for (size_t i = 0; !rc && i < ns; i++) {
		tc_dirty_slot(d, i, &s);
		rc = tc_dirty_slot_store(&eng->blobs, d, i, false);
		if (!rc && s.file >= 0)
			dirs[s.hash[0]] = true;
	}
	for (unsigned b = 0; durable && !rc && b < 256; b++)
		if (dirs[b])
			rc = tc_blob_sync_dir(&eng->blobs, (uint8_t)b);
	return rc;
}

/* Drop the references of chunk rows @ino has from @from on. */
static int cut_chunks_locked(struct tc_engine *eng, uint64_t ino, size_t from)
{
	uint8_t (*v)[TC_HASH_LEN];
	size_t count;
	int rc = tc_index_chunks_cut(&eng->ix, ino, from, &v, &count);

	for (size_t i = 0; !rc && i < count; i++)
		rc = tc_blob_unref_locked(eng, v[i]);
	free(v);
	return rc;
}

/* Step 3, the rows: reference the new single blob or chunks, drop the
 * ones replaced. @m is the row before, updated in place. */
static int publish_rows_locked(struct tc_engine *eng, struct tc_node *n,
			       struct tc_dirty *d, struct tc_inode *m)
{
	size_t ns = tc_dirty_slots(d), nold = 0;
	uint8_t (*old)[TC_HASH_LEN] = NULL;
	struct tc_dirty_slot s;
	int rc = 0;

	if (m->nchunks > 1)
		rc = tc_index_chunks(&eng->ix, n->ino, &old, &nold);
	if (ns > 1) {
		for (size_t i = 0; !rc && i < ns; i++) {
			tc_dirty_slot(d, i, &s);
			if (i < nold && !memcmp(old[i], s.hash, TC_HASH_LEN))
				continue;
			rc = tc_blob_ref_locked(eng, s.hash, s.len, NULL, true);
			if (!rc)
				rc = tc_index_chunk_set(&eng->ix, n->ino, i,
							s.hash);
			if (!rc && i < nold)
				rc = tc_blob_unref_locked(eng, old[i]);
		}
		if (!rc && nold > ns)
			rc = cut_chunks_locked(eng, n->ino, ns);
	} else {
		if (ns == 1) {
			tc_dirty_slot(d, 0, &s);
			rc = tc_blob_ref_locked(eng, s.hash, s.len,
						s.data ? s.data : NULL,
						!s.data);
		}
		if (!rc && nold)
			rc = cut_chunks_locked(eng, n->ino, 0);
	}
	if (!rc && tc_inode_owns_hash(m))
		rc = tc_blob_unref_locked(eng, m->hash);
	free(old);
	if (rc)
		return rc;
	m->nchunks = ns > 1 ? (uint32_t)ns : 0;
	m->hash_set = false;
	if (ns == 1) {
		memcpy(m->hash, s.hash, TC_HASH_LEN);
		m->hash_set = true;
	} else if (ns > 1) {
		m->hash_set = tc_dirty_whole_hash(&eng->blobs, d, m->hash);
	}
	return 0;
}

/* Step 3: one operation. */
static int publish_commit_locked(struct tc_engine *eng, struct tc_node *n,
				 struct tc_dirty *d, struct tc_inval_list *inv)
{
	struct tc_inode m = n->body->meta;
	int64_t now = tc_now(eng);
	bool reg = m.nlink > 0 && S_ISREG(m.mode);
	int64_t delta = (int64_t)d->size - (int64_t)m.size;
	int rc;

	rc = tc_txn_begin_locked(eng);
	if (rc)
		return rc;
	if (reg)
		rc = tc_policy_make_room_locked(eng, delta, 0, n->ino, inv);
	if (!rc)
		rc = publish_rows_locked(eng, n, d, &m);
	if (!rc) {
		if (reg)
			tc_txn_account_locked(eng, delta, 0);
		m.size = d->size;
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
		n->body->meta = m;
		n->data_gen++;
		n->pub_group = (uint32_t)eng->group_id;
	}
	return rc;
}

/* The new content readers get: a small content in memory goes to RAM at
 * once; others load as they are read. */
static struct tc_content *published_content(struct tc_engine *eng,
					    struct tc_dirty *d,
					    int64_t ram_ttl)
{
	struct tc_content *c;
	struct tc_dirty_slot s;

	if (tc_dirty_slots(d) != 1)
		return NULL; /* loaded again at the next read */
	tc_dirty_slot(d, 0, &s);
	if (!s.data || !tc_ram_fits(eng->ram, s.len))
		return NULL;
	c = tc_content_new(d->size);
	if (c) {
		struct tc_ram_item *it = tc_ram_alloc(s.len);
		if (!it) {
			tc_node_content_unref(c);
			return NULL;
		}
		memcpy(it->hash, s.hash, TC_HASH_LEN);
		memcpy(it->data, s.data, s.len);
		c->ram = tc_ram_insert(eng->ram, it, tc_now(eng), ram_ttl);
	}
	return c;
}

/* Steps 1 to 3 (see the top); -ENOSPC when the store has no room. */
static int publish_once(struct tc_engine *eng, struct tc_node *n,
			struct tc_dirty *d, bool durable,
			struct tc_inval_list *inv, int64_t *ram_ttl)
{
	int rc;

	if (tc_reserve_short(eng) && d->size > 0)
		return -ENOSPC; /* the reserve is for what was accepted */
	rc = tc_dirty_seal(&eng->blobs, d, eng->inline_max);
	if (!rc)
		rc = publish_pending(eng, d, inv);
	if (!rc)
		rc = publish_files(eng, d, durable);
	if (rc)
		return rc;
	tc_lock(eng);
	rc = publish_commit_locked(eng, n, d, inv);
	*ram_ttl = rc ? -1 : tc_policy_ram_ttl_locked(eng, n->ino);
	tc_unlock(eng);
	return rc;
}

int tc_content_publish_nlocked(struct tc_engine *eng, struct tc_node *n,
			       bool durable)
{
	struct tc_inval_list inv = { 0 };
	struct tc_dirty *d = n->body->dirty;
	int64_t ram_ttl = -1;
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
	rc = publish_once(eng, n, d, durable, &inv, &ram_ttl);
	/* Deleted entries' files may still wait for a WAL fsync: free their
	 * space now and try once more. */
	if (rc == -ENOSPC && tc_commit_reclaim(eng))
		rc = publish_once(eng, n, d, durable, &inv, &ram_ttl);
	tc_inval_deliver(eng, &inv);
	if (rc)
		return rc;
	/* Tell the other mounts (queued, never waited for), unless it is
	 * what the shared tier told us. */
	if (!d->from_shared) { /* a program's write, not a copy */
		tc_sharedpub_publish(eng, n, d);
		tc_count(eng, puts, 1);
		tc_count(eng, write_bytes, d->size);
	}
	tc_content_set_nlocked(n, published_content(eng, d, ram_ttl));
	tc_content_dirty_end_nlocked(eng, n);
	/* Published; durable once its group is committed and synced. */
	return durable ? tc_commit_sync(eng) : 0;
}

/* Published at close without fsync: make the blobs and the index durable. */
int tc_content_sync_nlocked(struct tc_engine *eng, struct tc_node *n)
{
	uint8_t (*v)[TC_HASH_LEN] = NULL;
	struct tc_inode m;
	size_t count = 0;
	int fd, rc = 0;

	tc_lock(eng);
	m = n->body->meta;
	if (m.nchunks > 1)
		rc = tc_index_chunks(&eng->ix, n->ino, &v, &count);
	tc_unlock(eng);
	if (!rc && tc_inode_owns_hash(&m) &&
	    tc_blob_open_read(&eng->blobs, m.hash, &fd) == 0) {
		rc = tc_blob_fsync(&eng->blobs, fd);
		close(fd);
	}
	for (size_t i = 0; !rc && i < count; i++) {
		/* a run of one chunk (zeros, mostly) is one file */
		if (i > 0 && !memcmp(v[i], v[i - 1], TC_HASH_LEN))
			continue;
		if (tc_blob_open_read(&eng->blobs, v[i], &fd))
			continue;
		rc = tc_blob_fsync(&eng->blobs, fd);
		close(fd);
	}
	free(v);
	return rc ? rc : tc_commit_sync(eng);
}
