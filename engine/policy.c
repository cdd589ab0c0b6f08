/* SPDX-License-Identifier: MIT */
/*
 * Cache policy: what makes the namespace a cache.
 *
 *   - Lifetimes. An entry's TTL is resolved, whenever it is written or its
 *     ttl, ttl_mode or tags change, from (first match wins) its own ttl, the
 *     first [tag NAME] rule (config-file order) for a tag it carries, the
 *     ttl its nearest ancestor directory had when the entry was created
 *     (copied into the row then: inode.dttl), and the mount's ttl=. The
 *     deadline is stored (inode.expires, indexed) so a lookup checks it
 *     without computing anything, and the sweep finds expired rows by index.
 *   - Recency. A read records its time in the node (and moves a sliding
 *     deadline); the node table writes it to the index in batches.
 *   - Schema versions. A directory's schema (or the mount's schema= at the
 *     root) is the version expected below it; a file whose version differs
 *     is invisible and discarded when met. Walking up for the expected
 *     version happens only when some directory has one (eng->any_dir_schema).
 *   - Limits and bulk removal. Writes make room by evicting least recently
 *     used entries (inode.lru, indexed; batched access times applied first),
 *     skipping entries that are open; the sweep, evict_tag and flush drop
 *     entries in batches.
 *
 * Everything here runs with the engine lock held (the _locked functions).
 * The user.tiercache.* attributes that set these policies are in
 * cacheattr.c.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_i.h"

/* Expired rows dropped per sweep round: bounds how long one round holds the
 * engine lock; the next round (a second later) continues. */
#define SWEEP_MAX 4096

/* Rows read per batch of a scan (eviction candidates, expired, flush). */
#define BATCH 256

/* Reads of one entry closer together than this record one access: disk LRU
 * order at one-second granularity is all a disk tier needs, and hot keys
 * then cost no bookkeeping at all. */
#define ACCESS_GRANULARITY_NS INT64_C(1000000000)

/* Directory walks give up beyond this depth (a loop would be corruption). */
#define MAX_DEPTH 4096

/* ------------------------------------------------------------------ */
/* Lifetimes                                                          */
/* ------------------------------------------------------------------ */

enum tc_ttl_mode tc_policy_mode(struct tc_engine *eng,
				const struct tc_inode *ino)
{
	if (ino->ttl_mode >= 0)
		return (enum tc_ttl_mode)ino->ttl_mode;
	if (ino->dttl_mode >= 0)
		return (enum tc_ttl_mode)ino->dttl_mode;
	return eng->ttl_mode;
}

struct rule_match {
	struct tc_engine *eng;
	size_t offset; /* of the field in struct tc_tag_rule_i */
	size_t best_i;
	int64_t best;
};

static int match_rule(void *ctx, const char *tag)
{
	struct rule_match *r = ctx;

	for (size_t i = 0; i < r->eng->n_rules && i < r->best_i; i++) {
		const struct tc_tag_rule_i *rule = &r->eng->rules[i];
		int64_t v = *(const int64_t *)(const void *)((const char *)rule +
							     r->offset);
		if (v >= 0 && !strcmp(rule->tag, tag)) {
			r->best_i = i;
			r->best = v;
		}
	}
	return 0;
}

/* The value of the first tag rule (config-file order) that matches one of
 * @ino's tags and sets the field at @offset, or -1. */
static int64_t tag_rule_locked(struct tc_engine *eng, uint64_t ino,
			       size_t offset)
{
	struct rule_match r = { eng, offset, SIZE_MAX, -1 };

	if (!eng->n_rules)
		return -1;
	(void)!tc_index_tags_of(&eng->ix, ino, match_rule, &r);
	return r.best;
}

int64_t tc_policy_ram_ttl_locked(struct tc_engine *eng, uint64_t ino)
{
	return tag_rule_locked(eng, ino,
			       offsetof(struct tc_tag_rule_i, ram_ttl_ns));
}

int64_t tc_policy_ttl_locked(struct tc_engine *eng, const struct tc_inode *ino)
{
	int64_t t;

	if (ino->ttl >= 0)
		return ino->ttl;
	t = tag_rule_locked(eng, ino->ino,
			    offsetof(struct tc_tag_rule_i, ttl_ns));
	if (t >= 0)
		return t;
	if (ino->dttl >= 0)
		return ino->dttl;
	return eng->ttl_ns;
}

void tc_policy_resolve_locked(struct tc_engine *eng, struct tc_inode *ino,
			      int64_t from)
{
	if (S_ISREG(ino->mode))
		ino->expires = tc_deadline(from, tc_policy_ttl_locked(eng, ino));
}

void tc_policy_note_access_locked(struct tc_engine *eng, struct tc_node *n,
				  int64_t now)
{
	bool changed = false;

	TC_ASSERT_LOCKED(eng);
	/* A sliding deadline moves at every read, exactly. */
	if (n->body->meta.expires > 0 &&
	    tc_policy_mode(eng, &n->body->meta) == TC_TTL_SLIDING) {
		int64_t ttl = tc_policy_ttl_locked(eng, &n->body->meta);
		if (ttl > 0) {
			n->body->meta.expires = tc_deadline(now, ttl);
			changed = true;
		}
	}
	if (now - n->body->meta.lru >= ACCESS_GRANULARITY_NS) {
		n->body->meta.lru = now;
		changed = true;
	}
	if (changed)
		tc_node_touch_locked(eng, n);
}

/* ------------------------------------------------------------------ */
/* Schema versions and inherited defaults                             */
/* ------------------------------------------------------------------ */

int tc_policy_dir_schema_locked(struct tc_engine *eng, uint64_t dir,
				char out[65])
{
	struct tc_inode m;
	int depth = 0, rc;

	out[0] = '\0';
	if (eng->any_dir_schema) {
		for (;;) {
			rc = tc_node_meta_locked(eng, dir, &m);
			if (rc)
				return rc;
			if (m.schema[0]) {
				memcpy(out, m.schema, 65);
				return 0;
			}
			if (dir == TC_ROOT_INO || ++depth > MAX_DEPTH ||
			    tc_index_parent_of(&eng->ix, dir, &dir))
				break;
		}
	}
	if (eng->schema)
		snprintf(out, 65, "%s", eng->schema);
	return 0;
}

int tc_policy_inherit_locked(struct tc_engine *eng, uint64_t parent,
			     struct tc_inode *child)
{
	uint64_t dir = parent;
	struct tc_inode m;
	int depth = 0, rc;

	child->dttl = -1;
	child->dttl_mode = -1;
	if (S_ISREG(child->mode)) {
		rc = tc_policy_dir_schema_locked(eng, parent, child->schema);
		if (rc)
			return rc;
	}
	if (!eng->any_dir_ttl)
		return 0;
	while (child->dttl < 0 || child->dttl_mode < 0) {
		if (tc_node_meta_locked(eng, dir, &m))
			break;
		if (child->dttl < 0 && m.ttl >= 0)
			child->dttl = m.ttl;
		if (child->dttl_mode < 0 && m.ttl_mode >= 0)
			child->dttl_mode = m.ttl_mode;
		if (dir == TC_ROOT_INO || ++depth > MAX_DEPTH ||
		    tc_index_parent_of(&eng->ix, dir, &dir))
			break;
	}
	return 0;
}

bool tc_policy_visible_locked(struct tc_engine *eng, uint64_t parent,
			      struct tc_inode *ino, int64_t now)
{
	char want[65];

	if (ino->nlink == 0)
		return false;
	if (ino->expires > 0 && ino->expires <= now) {
		tc_count(eng, expirations, 1);
		return false;
	}
	if (!S_ISREG(ino->mode) || (!eng->any_dir_schema && !eng->schema))
		return true;
	if (tc_policy_dir_schema_locked(eng, parent, want) || !want[0])
		return true;
	if (strcmp(want, ino->schema) == 0)
		return true;
	tc_count(eng, schema_discards, 1);
	return false;
}

/* ------------------------------------------------------------------ */
/* Limits and sweeps                                                  */
/* ------------------------------------------------------------------ */

static bool over_limits(struct tc_engine *eng, int64_t dbytes, int64_t ditems)
{
	if (eng->disk_size && dbytes > 0 &&
	    eng->size.disk_bytes + (uint64_t)dbytes > eng->disk_size)
		return true;
	if (eng->disk_items && ditems > 0 &&
	    eng->size.disk_items + (uint64_t)ditems > eng->disk_items)
		return true;
	return false;
}

int tc_policy_make_room_locked(struct tc_engine *eng, int64_t dbytes,
			       int64_t ditems, uint64_t keep,
			       struct tc_inval_list *inv)
{
	uint64_t cand[BATCH];
	size_t n;
	int rc;

	TC_ASSERT_LOCKED(eng);
	if (eng->disk_size && dbytes > 0 && (uint64_t)dbytes > eng->disk_size)
		return -EFBIG;
	if (!over_limits(eng, dbytes, ditems))
		return 0;
	rc = tc_node_apply_atimes_locked(eng);
	while (!rc && over_limits(eng, dbytes, ditems)) {
		bool evicted = false;

		rc = tc_index_lru_oldest(&eng->ix, cand, BATCH, &n);
		for (size_t i = 0; !rc && i < n &&
				   over_limits(eng, dbytes, ditems);
		     i++) {
			struct tc_node *node = tc_node_find_locked(eng, cand[i]);
			if (cand[i] == keep ||
			    (node && node->body && node->body->nopen))
				continue; /* pinned by an open handle */
			rc = tc_node_drop_locked(eng, cand[i], inv);
			if (!rc)
				tc_count(eng, disk_evictions, 1);
			evicted = true;
		}
		if (!rc && !evicted)
			rc = -ENOSPC;
	}
	return rc;
}

int tc_policy_sweep_locked(struct tc_engine *eng, struct tc_inval_list *inv)
{
	int64_t now = tc_now(eng);
	uint64_t batch[BATCH];
	size_t total = 0, n;
	int rc = 0;

	while (!rc && total < SWEEP_MAX) {
		rc = tc_index_expired(&eng->ix, now, batch, BATCH, &n);
		if (rc || !n)
			break;
		rc = tc_txn_begin_locked(eng);
		for (size_t i = 0; !rc && i < n; i++) {
			struct tc_node *node = tc_node_find_locked(eng, batch[i]);
			/* A live node may have a fresher (sliding) deadline. */
			if (node && node->body &&
			    (node->body->meta.expires == 0 ||
			     node->body->meta.expires > now))
				continue;
			rc = tc_node_drop_locked(eng, batch[i], inv);
			if (!rc)
				tc_count(eng, expirations, 1);
		}
		if (rc)
			tc_txn_rollback_locked(eng);
		else
			rc = tc_txn_commit_locked(eng);
		total += n;
		if (n < BATCH)
			break;
	}
	return rc;
}

int tc_policy_evict_tag_locked(struct tc_engine *eng, const char *tag,
			       struct tc_inval_list *inv)
{
	uint64_t *inos;
	size_t n;
	int rc;

	rc = tc_index_tag_inos(&eng->ix, tag, &inos, &n);
	if (rc)
		return rc;
	rc = tc_txn_begin_locked(eng);
	if (rc)
		goto out;
	for (size_t i = 0; !rc && i < n; i++) {
		rc = tc_node_drop_locked(eng, inos[i], inv);
		if (!rc)
			tc_count(eng, disk_evictions, 1);
	}
	rc = tc_txn_end_locked(eng, rc);
out:
	free(inos);
	return rc;
}

int tc_policy_flush_disk_locked(struct tc_engine *eng,
				struct tc_inval_list *inv)
{
	uint64_t batch[BATCH], after = 0;
	size_t n;
	int rc;

	/* Directories stay: they hold no cache content, and their ttl and
	 * schema settings are configuration. */
	rc = tc_txn_begin_locked(eng);
	if (rc)
		return rc;
	do {
		rc = tc_index_nondirs(&eng->ix, after, batch, BATCH, &n);
		for (size_t i = 0; !rc && i < n; i++) {
			rc = tc_node_drop_locked(eng, batch[i], inv);
			if (!rc)
				tc_count(eng, disk_evictions, 1);
		}
		if (n)
			after = batch[n - 1];
	} while (!rc && n == BATCH);
	return tc_txn_end_locked(eng, rc);
}
