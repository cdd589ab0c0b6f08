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
 *   - Schema versions. A directory's schema (or the mount's schema= at the
 *     root) is the version expected below it; a file whose version differs
 *     is invisible and discarded when met. Walking up for the expected
 *     version happens only when some directory has one (eng->any_dir_schema).
 *   - Limits. Writes make room by evicting least recently used entries
 *     (inode.lru, indexed; batched access times applied first), skipping
 *     entries that are open.
 *   - The user.tiercache.* attributes: parsing, validation and effects.
 *
 * Called by engine.c with eng->lock held (the _locked functions) and by the
 * xattr entry points (which take the locks themselves).
 */
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine_i.h"

#define NS_PER_S INT64_C(1000000000)

/* Most tags an entry may carry (SPEC §5). */
#define MAX_TAGS 32

/* Expired rows dropped per sweep round: bounds how long one round holds the
 * engine lock; the next round (a second later) continues. */
#define SWEEP_MAX 4096

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

/* The value of the first tag rule (config-file order) that matches one of
 * @ino's tags and sets the field at @offset, or -1. */
static int64_t tag_rule_locked(struct tc_engine *eng, uint64_t ino,
			       size_t offset)
{
	sqlite3_stmt *st;
	int64_t best = -1;
	size_t best_i = SIZE_MAX;

	if (!eng->n_rules)
		return -1;
	st = tc_stmt_locked(eng, ST_TAG_LIST_INO);
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	while (sqlite3_step(st) == SQLITE_ROW) {
		const char *tag = (const char *)sqlite3_column_text(st, 0);
		for (size_t i = 0; i < eng->n_rules && i < best_i; i++) {
			int64_t v = *(const int64_t *)(const void *)((
				const char *)&eng->rules[i] + offset);
			if (v >= 0 && !strcmp(eng->rules[i].tag, tag)) {
				best_i = i;
				best = v;
			}
		}
	}
	sqlite3_reset(st);
	return best;
}

static int64_t tag_rule_ttl_locked(struct tc_engine *eng, uint64_t ino)
{
	return tag_rule_locked(eng, ino, offsetof(struct tc_tag_rule_i, ttl_ns));
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
	t = tag_rule_ttl_locked(eng, ino->ino);
	if (t >= 0)
		return t;
	if (ino->dttl >= 0)
		return ino->dttl;
	return eng->ttl_ns;
}

int tc_policy_resolve_locked(struct tc_engine *eng, struct tc_inode *ino,
			     int64_t from)
{
	int64_t ttl;

	if (!S_ISREG(ino->mode))
		return 0;
	ttl = tc_policy_ttl_locked(eng, ino);
	ino->expires = tc_deadline(from, ttl);
	return 0;
}

/* Row of @ino, fresh from the node table when the node is live. */
static int inode_fresh_locked(struct tc_engine *eng, uint64_t ino,
			      struct tc_inode *out)
{
	struct tc_node *n = tc_node_find_locked(eng, ino);

	if (n) {
		*out = n->meta;
		return 0;
	}
	return tc_inode_get_locked(eng, ino, out);
}

static int parent_of_locked(struct tc_engine *eng, uint64_t ino,
			    uint64_t *parent)
{
	sqlite3_stmt *st = tc_stmt_locked(eng, ST_DENTRY_PARENT);
	int rc;

	sqlite3_bind_int64(st, 1, (int64_t)ino);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*parent = (uint64_t)sqlite3_column_int64(st, 0);
		rc = 0;
	} else {
		rc = -ENOENT;
	}
	sqlite3_reset(st);
	return rc;
}

int tc_policy_dir_schema_locked(struct tc_engine *eng, uint64_t dir,
				char out[65])
{
	struct tc_inode m;
	int depth = 0, rc;

	out[0] = '\0';
	if (!eng->any_dir_schema) {
		if (eng->schema)
			snprintf(out, 65, "%s", eng->schema);
		return 0;
	}
	for (;;) {
		rc = inode_fresh_locked(eng, dir, &m);
		if (rc)
			return rc;
		if (m.schema[0]) {
			memcpy(out, m.schema, 65);
			return 0;
		}
		if (dir == TC_ROOT_INO || ++depth > 4096)
			break;
		rc = parent_of_locked(eng, dir, &dir);
		if (rc)
			break;
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
		if (inode_fresh_locked(eng, dir, &m))
			break;
		if (child->dttl < 0 && m.ttl >= 0)
			child->dttl = m.ttl;
		if (child->dttl_mode < 0 && m.ttl_mode >= 0)
			child->dttl_mode = m.ttl_mode;
		if (dir == TC_ROOT_INO || ++depth > 4096 ||
		    parent_of_locked(eng, dir, &dir))
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
	    eng->disk_bytes + (uint64_t)dbytes > eng->disk_size)
		return true;
	if (eng->disk_items && ditems > 0 &&
	    eng->disk_items_now + (uint64_t)ditems > eng->disk_items)
		return true;
	return false;
}

int tc_policy_make_room_locked(struct tc_engine *eng, int64_t dbytes,
			       int64_t ditems, uint64_t keep,
			       struct tc_inval_list *inv)
{
	uint64_t cand[256];
	size_t n;
	int rc;

	if (eng->disk_size && dbytes > 0 && (uint64_t)dbytes > eng->disk_size)
		return -EFBIG;
	if (!over_limits(eng, dbytes, ditems))
		return 0;
	rc = tc_apply_atimes_locked(eng);
	if (rc)
		return rc;
	while (over_limits(eng, dbytes, ditems)) {
		sqlite3_stmt *st = tc_stmt_locked(eng, ST_LRU_OLDEST);
		bool evicted = false;

		sqlite3_bind_int64(st, 1, 256);
		n = 0;
		while (n < 256 && sqlite3_step(st) == SQLITE_ROW)
			cand[n++] = (uint64_t)sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
		for (size_t i = 0; i < n && over_limits(eng, dbytes, ditems);
		     i++) {
			struct tc_node *node = tc_node_find_locked(eng, cand[i]);
			if (cand[i] == keep || (node && node->nopen))
				continue; /* pinned by an open handle */
			rc = tc_inode_drop_locked(eng, cand[i], inv);
			if (rc)
				return rc;
			tc_count(eng, disk_evictions, 1);
			evicted = true;
		}
		if (!evicted)
			return -ENOSPC;
	}
	return 0;
}

int tc_policy_sweep_locked(struct tc_engine *eng, struct tc_inval_list *inv)
{
	int64_t now = tc_now(eng);
	uint64_t batch[256];
	size_t total = 0, n;
	int rc = 0;

	while (!rc && total < SWEEP_MAX) {
		sqlite3_stmt *st = tc_stmt_locked(eng, ST_EXPIRED);
		sqlite3_bind_int64(st, 1, now);
		n = 0;
		while (n < 256 && sqlite3_step(st) == SQLITE_ROW)
			batch[n++] = (uint64_t)sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
		if (!n)
			break;
		rc = tc_index_begin_locked(eng);
		for (size_t i = 0; !rc && i < n; i++) {
			struct tc_node *node = tc_node_find_locked(eng, batch[i]);
			/* A live node may have a fresher (sliding) deadline. */
			if (node && (node->meta.expires == 0 ||
				     node->meta.expires > now))
				continue;
			rc = tc_inode_drop_locked(eng, batch[i], inv);
			if (!rc)
				tc_count(eng, expirations, 1);
		}
		if (!rc)
			rc = tc_index_commit_locked(eng, false);
		else
			tc_index_rollback_locked(eng);
		total += n;
		if (n < 256)
			break;
	}
	return rc;
}

/* ------------------------------------------------------------------ */
/* user.tiercache.* attributes                                        */
/* ------------------------------------------------------------------ */

enum attr_id {
	A_TTL,
	A_TTL_MODE,
	A_EXPIRES,
	A_TAGS,
	A_SCHEMA,
	A_TIER,
	A_HASH,
	A_EVICT_TAG,
	A_FLUSH,
	A_EXPIRE,
	A_RESET_STATS,
	A_UNKNOWN
};

static const char *const attr_names[] = {
	[A_TTL] = "ttl",
	[A_TTL_MODE] = "ttl_mode",
	[A_EXPIRES] = "expires",
	[A_TAGS] = "tags",
	[A_SCHEMA] = "schema",
	[A_TIER] = "tier",
	[A_HASH] = "hash",
	[A_EVICT_TAG] = "evict_tag",
	[A_FLUSH] = "flush",
	[A_EXPIRE] = "expire",
	[A_RESET_STATS] = "reset_stats",
};

static enum attr_id attr_id(const char *name)
{
	const char *s = name + strlen(TC_XATTR_PREFIX);

	for (int i = 0; i < A_UNKNOWN; i++)
		if (!strcmp(s, attr_names[i]))
			return (enum attr_id)i;
	return A_UNKNOWN;
}

static bool is_control(enum attr_id a)
{
	return a == A_EVICT_TAG || a == A_FLUSH || a == A_EXPIRE ||
	       a == A_RESET_STATS;
}

/* Format a duration in the largest unit that divides it exactly. */
static void format_duration(int64_t ns, char *out, size_t size)
{
	int64_t s = ns / NS_PER_S;

	if (s % 86400 == 0)
		snprintf(out, size, "%" PRId64 "d", s / 86400);
	else if (s % 3600 == 0)
		snprintf(out, size, "%" PRId64 "h", s / 3600);
	else if (s % 60 == 0)
		snprintf(out, size, "%" PRId64 "m", s / 60);
	else
		snprintf(out, size, "%" PRId64 "s", s);
}

static ssize_t reply_str(const char *s, void *buf, size_t size)
{
	size_t len = strlen(s);

	if (size == 0)
		return (ssize_t)len;
	if (len > size)
		return -ERANGE;
	memcpy(buf, s, len);
	return (ssize_t)len;
}

/* Tags of @ino joined with commas into @out ("" when none). */
static void tags_of_locked(struct tc_engine *eng, uint64_t ino, char *out,
			   size_t size)
{
	sqlite3_stmt *st = tc_stmt_locked(eng, ST_TAG_LIST_INO);
	size_t used = 0;

	out[0] = '\0';
	sqlite3_bind_int64(st, 1, (int64_t)ino);
	while (sqlite3_step(st) == SQLITE_ROW) {
		used += (size_t)snprintf(out + used, size - used, "%s%s",
					 used ? "," : "",
					 sqlite3_column_text(st, 0));
		if (used >= size)
			break;
	}
	sqlite3_reset(st);
}

/* Value of readable attribute @a of @m into @out; -ENODATA when absent. */
static int attr_value_locked(struct tc_engine *eng, const struct tc_inode *m,
			     enum attr_id a, char *out, size_t size)
{
	bool reg = S_ISREG(m->mode), dir = S_ISDIR(m->mode);

	switch (a) {
	case A_TTL:
		if (!(reg || dir) || m->ttl < 0)
			return -ENODATA;
		if (m->ttl == 0)
			snprintf(out, size, "none");
		else
			format_duration(m->ttl, out, size);
		return 0;
	case A_TTL_MODE:
		if (!(reg || dir) || m->ttl_mode < 0)
			return -ENODATA;
		snprintf(out, size, "%s",
			 m->ttl_mode == TC_TTL_SLIDING ? "sliding"
						       : "absolute");
		return 0;
	case A_EXPIRES:
		if (!reg || m->expires <= 0)
			return -ENODATA;
		/* seconds, rounded up (without overflowing near INT64_MAX) */
		snprintf(out, size, "%" PRId64,
			 m->expires / NS_PER_S + (m->expires % NS_PER_S != 0));
		return 0;
	case A_TAGS:
		if (!reg)
			return -ENODATA;
		tags_of_locked(eng, m->ino, out, size);
		return out[0] ? 0 : -ENODATA;
	case A_SCHEMA:
		/* -o schema= is the root's expected version until the root
		 * gets one of its own */
		if (dir && m->ino == TC_ROOT_INO && !m->schema[0] &&
		    eng->schema) {
			snprintf(out, size, "%s", eng->schema);
			return 0;
		}
		if (!(reg || dir) || !m->schema[0])
			return -ENODATA;
		snprintf(out, size, "%s", m->schema);
		return 0;
	case A_TIER:
		if (!reg)
			return -ENODATA;
		snprintf(out, size, "%s",
			 !m->hash_set || tc_ram_contains(eng->ram, m->hash)
				 ? "ram"
				 : "disk");
		return 0;
	case A_HASH: {
		uint8_t h[TC_HASH_LEN];
		if (!reg)
			return -ENODATA;
		if (m->hash_set)
			memcpy(h, m->hash, TC_HASH_LEN);
		else
			tc_hash_buf("", 0, h);
		tc_hash_hex(h, out);
		return 0;
	}
	default:
		return -ENODATA;
	}
}

ssize_t tc_policy_getxattr(struct tc_engine *eng, uint64_t ino,
			   const char *name, void *buf, size_t size)
{
	enum attr_id a = attr_id(name);
	char val[MAX_TAGS * 66 + 16];
	struct tc_inode m;
	int rc;

	pthread_mutex_lock(&eng->lock);
	rc = inode_fresh_locked(eng, ino, &m);
	if (!rc)
		rc = attr_value_locked(eng, &m, a, val, sizeof(val));
	pthread_mutex_unlock(&eng->lock);
	if (rc)
		return rc;
	return reply_str(val, buf, size);
}

ssize_t tc_policy_listxattr(struct tc_engine *eng, uint64_t ino, char *buf,
			    size_t size, size_t used)
{
	char val[MAX_TAGS * 66 + 16];
	struct tc_inode m;
	int rc;

	pthread_mutex_lock(&eng->lock);
	rc = inode_fresh_locked(eng, ino, &m);
	for (int a = 0; !rc && a < A_UNKNOWN; a++) {
		char full[64];
		size_t len;
		/* Only what a user sets is listed: computed attributes (tier,
		 * hash, expires) are read by name. Listing them would make
		 * rsync -X and cp -a copy them out as plain xattrs and fail
		 * to write them back in (they are read-only). */
		if (is_control((enum attr_id)a) || a == A_EXPIRES ||
		    a == A_TIER || a == A_HASH ||
		    attr_value_locked(eng, &m, (enum attr_id)a, val,
				      sizeof(val)))
			continue;
		len = (size_t)snprintf(full, sizeof(full), "%s%s",
				       TC_XATTR_PREFIX, attr_names[a]) + 1;
		if (size && used + len <= size)
			memcpy(buf + used, full, len);
		used += len;
	}
	pthread_mutex_unlock(&eng->lock);
	return rc ? rc : (ssize_t)used;
}

/* Parse a tag list "a,b,c" into @tags (NUL-terminated copies in @store).
 * An empty value means no tags. */
static int parse_tags(const char *v, size_t len, char tags[][65], int *count)
{
	size_t start = 0;

	*count = 0;
	if (len == 0)
		return 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && v[i] != ',')
			continue;
		if (!tc_tag_valid(v + start, i - start))
			return -EINVAL;
		if (*count == MAX_TAGS)
			return -EINVAL;
		memcpy(tags[*count], v + start, i - start);
		tags[*count][i - start] = '\0';
		(*count)++;
		start = i + 1;
	}
	return 0;
}

static int set_tags_locked(struct tc_engine *eng, uint64_t ino,
			   char tags[][65], int count)
{
	sqlite3_stmt *st = tc_stmt_locked(eng, ST_TAG_DELETE_INO);
	int rc;

	sqlite3_bind_int64(st, 1, (int64_t)ino);
	rc = tc_step_done(eng, st);
	for (int i = 0; !rc && i < count; i++) {
		st = tc_stmt_locked(eng, ST_TAG_ADD);
		sqlite3_bind_text(st, 1, tags[i], -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, (int64_t)ino);
		sqlite3_bind_int(st, 3, i);
		rc = tc_step_done(eng, st);
	}
	return rc;
}

/* Write @m back (row and live node) in its own transaction, after
 * re-resolving its lifetime from now. */
/* Queue an invalidation of every name of @ino: the kernel may have cached
 * the entry with a timeout bounded by a deadline that just moved. */
static void inval_names_locked(struct tc_engine *eng, uint64_t ino,
			       struct tc_inval_list *inv)
{
	sqlite3_stmt *st = tc_stmt_locked(eng, ST_DENTRY_OF_INO);

	sqlite3_bind_int64(st, 1, (int64_t)ino);
	while (sqlite3_step(st) == SQLITE_ROW)
		tc_inval_add(inv, (uint64_t)sqlite3_column_int64(st, 0),
			     sqlite3_column_blob(st, 1),
			     (size_t)sqlite3_column_bytes(st, 1), ino);
	sqlite3_reset(st);
}

/* Queue an invalidation of every name below directory @dir (its expected
 * schema changed: entries the kernel cached may be of the wrong version
 * now). A rare, administrative operation: one recursive query. */
static void inval_subtree_locked(struct tc_engine *eng, uint64_t dir,
				 struct tc_inval_list *inv)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(eng->db,
			       "WITH RECURSIVE sub(ino) AS (SELECT ?1 UNION"
			       " SELECT d.ino FROM dentry d JOIN sub ON"
			       " d.parent = sub.ino JOIN inode i ON"
			       " i.ino = d.ino WHERE i.lru IS NULL)"
			       " SELECT d.parent, d.name, d.ino FROM dentry d"
			       " WHERE d.parent IN sub",
			       -1, &st, NULL) != SQLITE_OK)
		return;
	sqlite3_bind_int64(st, 1, (int64_t)dir);
	while (sqlite3_step(st) == SQLITE_ROW)
		tc_inval_add(inv, (uint64_t)sqlite3_column_int64(st, 0),
			     sqlite3_column_blob(st, 1),
			     (size_t)sqlite3_column_bytes(st, 1),
			     (uint64_t)sqlite3_column_int64(st, 2));
	sqlite3_finalize(st);
}

static int save_inode_locked(struct tc_engine *eng, struct tc_inode *m,
			     bool resolve, char tags[][65], int ntags,
			     struct tc_inval_list *inv)
{
	struct tc_node *n = tc_node_find_locked(eng, m->ino);
	int64_t old_expires = m->expires;
	int rc;

	rc = tc_index_begin_locked(eng);
	if (rc)
		return rc;
	if (ntags >= 0)
		rc = set_tags_locked(eng, m->ino, tags, ntags);
	if (!rc && resolve)
		rc = tc_policy_resolve_locked(eng, m, tc_now(eng));
	if (!rc)
		rc = tc_inode_update_locked(eng, m);
	if (!rc)
		rc = tc_index_commit_locked(eng, false);
	else
		tc_index_rollback_locked(eng);
	if (!rc && n)
		n->meta = *m;
	if (!rc && inv && m->expires != old_expires)
		inval_names_locked(eng, m->ino, inv);
	return rc;
}

/* Remove every entry that carries @tag. */
static int evict_tag_locked(struct tc_engine *eng, const char *tag,
			    struct tc_inval_list *inv)
{
	sqlite3_stmt *st = tc_stmt_locked(eng, ST_TAG_INOS);
	uint64_t *inos;
	size_t n;
	int rc;

	sqlite3_bind_text(st, 1, tag, -1, SQLITE_STATIC);
	rc = tc_collect_inos_locked(eng, st, &inos, &n);
	if (!rc)
		rc = tc_index_begin_locked(eng);
	for (size_t i = 0; !rc && i < n; i++) {
		rc = tc_inode_drop_locked(eng, inos[i], inv);
		if (!rc)
			tc_count(eng, disk_evictions, 1);
	}
	if (!rc)
		rc = tc_index_commit_locked(eng, false);
	else if (n)
		tc_index_rollback_locked(eng);
	free(inos);
	return rc;
}

/* Remove every non-directory entry (flush=disk|all): regular files,
 * symlinks, FIFOs and sockets. Directories stay: they hold no cache
 * content, and their ttl and schema settings are configuration. */
static int flush_disk_locked(struct tc_engine *eng, struct tc_inval_list *inv)
{
	uint64_t after = 0;
	int rc;

	rc = tc_index_begin_locked(eng);
	while (!rc) {
		sqlite3_stmt *st = tc_stmt_locked(eng, ST_NONDIR_INOS);
		uint64_t batch[256];
		size_t n = 0;

		sqlite3_bind_int64(st, 1, (int64_t)after);
		while (n < 256 && sqlite3_step(st) == SQLITE_ROW)
			batch[n++] = (uint64_t)sqlite3_column_int64(st, 0);
		sqlite3_reset(st);
		for (size_t i = 0; !rc && i < n; i++) {
			rc = tc_inode_drop_locked(eng, batch[i], inv);
			if (!rc)
				tc_count(eng, disk_evictions, 1);
		}
		if (n < 256)
			break;
		after = batch[n - 1];
	}
	if (!rc)
		rc = tc_index_commit_locked(eng, false);
	else
		tc_index_rollback_locked(eng);
	return rc;
}

static int control_locked(struct tc_engine *eng, enum attr_id a,
			  const char *v, size_t len,
			  struct tc_inval_list *inv)
{
	char tag[65];

	switch (a) {
	case A_EVICT_TAG:
		if (!tc_tag_valid(v, len))
			return -EINVAL;
		memcpy(tag, v, len);
		tag[len] = '\0';
		return evict_tag_locked(eng, tag, inv);
	case A_FLUSH:
		if (len == 3 && !memcmp(v, "ram", 3)) {
			tc_ram_flush(eng->ram);
			return 0;
		}
		if ((len == 4 && !memcmp(v, "disk", 4)) ||
		    (len == 3 && !memcmp(v, "all", 3))) {
			tc_ram_flush(eng->ram);
			return flush_disk_locked(eng, inv);
		}
		return -EINVAL;
	case A_EXPIRE:
		return tc_policy_sweep_locked(eng, inv);
	case A_RESET_STATS:
		tc_engine_reset_stats(eng);
		return 0;
	default:
		return -EINVAL;
	}
}

/* Copy an xattr value into a NUL-terminated string; values with an
 * embedded NUL are malformed. A single trailing NUL (from tools that
 * include it) is accepted. */
static int value_str(const char *v, size_t len, char *out, size_t size)
{
	if (len && v[len - 1] == '\0')
		len--;
	if (len >= size || memchr(v, '\0', len))
		return -EINVAL;
	memcpy(out, v, len);
	out[len] = '\0';
	return 0;
}

int tc_policy_setxattr(struct tc_engine *eng, uint64_t ino, const char *name,
		       const char *value, size_t size)
{
	struct tc_inval_list inv = { 0 };
	enum attr_id a = attr_id(name);
	char v[MAX_TAGS * 66 + 16], tags[MAX_TAGS][65];
	struct tc_inode m;
	bool reg, dir;
	int ntags = -1, rc;

	if (a == A_UNKNOWN)
		return -EINVAL;
	if (a == A_EXPIRES || a == A_TIER || a == A_HASH)
		return -EPERM;
	rc = value_str(value ? value : "", size, v, sizeof(v));
	if (rc)
		return rc;
	pthread_mutex_lock(&eng->lock);
	rc = inode_fresh_locked(eng, ino, &m);
	if (rc)
		goto out;
	reg = S_ISREG(m.mode);
	dir = S_ISDIR(m.mode);
	if (is_control(a)) {
		rc = ino == TC_ROOT_INO
			     ? control_locked(eng, a, v, strlen(v), &inv)
			     : -EPERM;
		goto out;
	}
	if (!(reg || dir) || (a == A_TAGS && !reg)) {
		rc = -EPERM;
		goto out;
	}
	switch (a) {
	case A_TTL: {
		int64_t ns;
		rc = tc_parse_duration(v, &ns);
		if (rc)
			rc = -EINVAL;
		else
			m.ttl = ns > 0 ? ns : -1; /* none/0 removes it */
		break;
	}
	case A_TTL_MODE: {
		enum tc_ttl_mode mode;
		rc = tc_parse_ttl_mode(v, &mode);
		if (!rc)
			m.ttl_mode = (int)mode;
		break;
	}
	case A_TAGS:
		rc = parse_tags(v, strlen(v), tags, &ntags);
		break;
	case A_SCHEMA:
		if (!tc_schema_valid(v, strlen(v)))
			rc = -EINVAL;
		else
			memcpy(m.schema, v, strlen(v) + 1); /* <= 64 */
		break;
	default:
		rc = -EINVAL;
	}
	if (rc)
		goto out;
	rc = save_inode_locked(eng, &m, reg, tags, ntags, &inv);
	if (!rc && a == A_TAGS && m.hash_set)
		tc_ram_retune(eng->ram, m.hash,
			      tc_policy_ram_ttl_locked(eng, ino));
	if (!rc && dir && a == A_SCHEMA) {
		eng->any_dir_schema = true;
		inval_subtree_locked(eng, ino, &inv);
	}
	if (!rc && dir && (a == A_TTL || a == A_TTL_MODE))
		eng->any_dir_ttl = true;
	if (!rc && dir)
		rc = tc_meta_set_locked(eng, "dir_flags",
					(eng->any_dir_schema ? TC_DIR_SCHEMA
							     : 0) |
						(eng->any_dir_ttl ? TC_DIR_TTL
								  : 0));
out:
	pthread_mutex_unlock(&eng->lock);
	tc_inval_deliver(eng, &inv);
	return rc;
}

int tc_policy_removexattr(struct tc_engine *eng, uint64_t ino,
			  const char *name)
{
	struct tc_inval_list inv = { 0 };
	enum attr_id a = attr_id(name);
	char val[MAX_TAGS * 66 + 16];
	struct tc_inode m;
	int rc;

	if (a == A_UNKNOWN)
		return -ENODATA;
	if (a == A_EXPIRES || a == A_TIER || a == A_HASH || is_control(a))
		return -EPERM;
	pthread_mutex_lock(&eng->lock);
	rc = inode_fresh_locked(eng, ino, &m);
	if (!rc)
		rc = attr_value_locked(eng, &m, a, val, sizeof(val));
	if (rc)
		goto out;
	switch (a) {
	case A_TTL:
		m.ttl = -1;
		break;
	case A_TTL_MODE:
		m.ttl_mode = -1;
		break;
	case A_SCHEMA:
		m.schema[0] = '\0';
		break;
	default:
		break;
	}
	rc = save_inode_locked(eng, &m, S_ISREG(m.mode), NULL,
			       a == A_TAGS ? 0 : -1, &inv);
	if (!rc && a == A_TAGS && m.hash_set)
		tc_ram_retune(eng->ram, m.hash, -1);
	if (!rc && S_ISDIR(m.mode) && a == A_SCHEMA)
		inval_subtree_locked(eng, ino, &inv);
out:
	pthread_mutex_unlock(&eng->lock);
	tc_inval_deliver(eng, &inv);
	return rc;
}
