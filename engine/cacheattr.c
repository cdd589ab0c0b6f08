/* SPDX-License-Identifier: MIT */
/*
 * The user.tiercache.* attributes (tiercachefs(8), EXTENDED ATTRIBUTES):
 * parsing, validation and effects. Per entry: ttl, ttl_mode, tags, schema
 * (read-write) and expires, tier, hash (computed, read-only); on the root,
 * the write-only controls evict_tag, flush, expire and reset_stats. The
 * policies they set are applied by policy.c; this file turns attribute
 * writes into row changes (one transaction each) and control writes into
 * policy calls, and queues the invalidations the kernel needs when a
 * deadline moves or a subtree's expected schema changes.
 *
 * Called through xattr.c, which filters the namespaces; takes the engine
 * lock itself. With a shared tier, what a user sets here is told to it:
 * an entry's new ttl, mode or tags travel in its name record, a
 * directory's schema, evict_tag and flush reach the other mounts through
 * the client's generations and events (sent after the engine lock is
 * dropped; the shared tier's trouble is logged and counted, never an
 * error of the setxattr). tc_cacheattr_dir_schema() is the way back in:
 * another mount's schema change, applied without telling anyone.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/xattr.h>

#include "engine_i.h"

/* Most tags an entry may carry. */
#define MAX_TAGS 32

/* A formatted attribute value: the longest is a full tag list. */
#define VALUE_MAX (MAX_TAGS * 66 + 16)

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
	int64_t s = ns / TC_NS_PER_S;

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

struct joined {
	char *out;
	size_t size, used;
};

static int join_tag(void *ctx, const char *tag)
{
	struct joined *j = ctx;

	j->used += (size_t)snprintf(j->out + j->used, j->size - j->used,
				    "%s%s", j->used ? "," : "", tag);
	return j->used >= j->size;
}

/* Tags of @ino joined with commas into @out ("" when none). */
static void tags_of_locked(struct tc_engine *eng, uint64_t ino, char *out,
			   size_t size)
{
	struct joined j = { out, size, 0 };

	out[0] = '\0';
	(void)!tc_index_tags_of(&eng->ix, ino, join_tag, &j);
}

/* Is @m's whole content in RAM now (every chunk of it)? */
static bool in_ram_locked(struct tc_engine *eng, const struct tc_inode *m)
{
	uint8_t (*v)[TC_HASH_LEN];
	size_t count;
	bool all = true;

	if (m->nchunks < 2)
		return !m->hash_set || tc_ram_contains(eng->ram, m->hash);
	if (tc_index_chunks(&eng->ix, m->ino, &v, &count))
		return false;
	for (size_t i = 0; all && i < count; i++)
		all = tc_ram_contains(eng->ram, v[i]);
	free(v);
	return all;
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
			snprintf(out, size, "never");
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
			 m->expires / TC_NS_PER_S + (m->expires % TC_NS_PER_S != 0));
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
		snprintf(out, size, "%s", in_ram_locked(eng, m) ? "ram" : "disk");
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

ssize_t tc_cacheattr_get(struct tc_engine *eng, uint64_t ino,
			 const char *name, void *buf, size_t size)
{
	enum attr_id a = attr_id(name);
	char val[VALUE_MAX];
	struct tc_inode m;
	int rc;

	tc_lock(eng);
	rc = tc_node_meta_locked(eng, ino, &m);
	if (!rc && a == A_HASH && S_ISREG(m.mode) && m.nchunks > 1 &&
	    !m.hash_set) {
		/* A content in chunks rewritten in place: its whole hash is
		 * computed when first asked for (reading it all). */
		uint8_t h[TC_HASH_LEN];
		tc_unlock(eng);
		rc = tc_content_whole_hash(eng, ino, h);
		if (rc)
			return rc;
		tc_hash_hex(h, val);
		return reply_str(val, buf, size);
	}
	if (!rc)
		rc = attr_value_locked(eng, &m, a, val, sizeof(val));
	tc_unlock(eng);
	if (rc)
		return rc;
	return reply_str(val, buf, size);
}

ssize_t tc_cacheattr_list(struct tc_engine *eng, uint64_t ino, char *buf,
			  size_t size, size_t used)
{
	char val[VALUE_MAX];
	struct tc_inode m;
	int rc;

	tc_lock(eng);
	rc = tc_node_meta_locked(eng, ino, &m);
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
	tc_unlock(eng);
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

/* Queue an invalidation of every name below directory @dir (its expected
 * schema changed: entries the kernel cached may be of the wrong version
 * now). A rare, administrative operation: one recursive query. */
static int add_inval(void *ctx, uint64_t parent, const char *name, size_t len,
		     uint64_t ino)
{
	tc_inval_add(ctx, parent, name, len, ino);
	return 0;
}

static void inval_subtree_locked(struct tc_engine *eng, uint64_t dir,
				 struct tc_inval_list *inv)
{
	(void)!tc_index_subtree_names(&eng->ix, dir, add_inval, inv);
}

/* Write @m back (row and live node) in its own transaction, after
 * re-resolving its lifetime from now when @resolve; @ntags >= 0 replaces
 * its tags. An invalidation of its names is queued when its deadline
 * moved (the kernel may cache it for that long). */
static int save_inode_locked(struct tc_engine *eng, struct tc_inode *m,
			     bool resolve, char tags[][65], int ntags,
			     struct tc_inval_list *inv)
{
	struct tc_node *n = tc_node_find_locked(eng, m->ino);
	int64_t old_expires = m->expires;
	int rc;

	rc = tc_txn_begin_locked(eng);
	if (rc)
		return rc;
	if (ntags >= 0)
		rc = tc_index_tags_set(&eng->ix, m->ino, tags, ntags);
	if (!rc && resolve)
		tc_policy_resolve_locked(eng, m, tc_now(eng));
	if (!rc)
		rc = tc_index_inode_update(&eng->ix, m);
	rc = tc_txn_end_locked(eng, rc);
	if (!rc && n && n->body)
		n->body->meta = *m;
	if (!rc && inv && m->expires != old_expires)
		tc_inval_names_locked(eng, m->ino, inv);
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
		return tc_policy_evict_tag_locked(eng, tag, inv);
	case A_FLUSH:
		if (len == 3 && !memcmp(v, "ram", 3)) {
			tc_ram_flush(eng->ram);
			return 0;
		}
		if ((len == 4 && !memcmp(v, "disk", 4)) ||
		    (len == 3 && !memcmp(v, "all", 3))) {
			tc_ram_flush(eng->ram);
			return tc_policy_flush_disk_locked(eng, inv);
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

/* Remember in the index that some directory has a schema or a ttl. */
static int save_dir_flags_locked(struct tc_engine *eng)
{
	int64_t flags = (eng->any_dir_schema ? TC_DIR_SCHEMA : 0) |
			(eng->any_dir_ttl ? TC_DIR_TTL : 0);
	int rc = tc_txn_begin_locked(eng);

	if (rc)
		return rc;
	return tc_txn_end_locked(eng,
				 tc_index_meta_set(&eng->ix, "dir_flags", flags));
}

/* XATTR_CREATE on a present attribute, XATTR_REPLACE on an absent one. */
static int check_flags_locked(struct tc_engine *eng, const struct tc_inode *m,
			      enum attr_id a, int flags)
{
	char cur[VALUE_MAX];
	bool exists;

	if (!(flags & (XATTR_CREATE | XATTR_REPLACE)))
		return 0;
	exists = attr_value_locked(eng, m, a, cur, sizeof(cur)) == 0;
	if (exists && (flags & XATTR_CREATE))
		return -EEXIST;
	if (!exists && (flags & XATTR_REPLACE))
		return -ENODATA;
	return 0;
}

/* What a successful change must tell the shared tier, after the lock. */
struct tell {
	enum { TELL_NONE, TELL_FLUSH, TELL_EVICT_TAG, TELL_SCHEMA } what;
	char arg[65];                        /* the tag or the schema */
	char path[TC_SHARED_PATH_MAX + 1];   /* the directory */
};

/* Remember for tell_shared() what @a's change @v of @m means to it, and
 * queue the name records of a regular file whose metadata changed. */
static void tell_locked(struct tc_engine *eng, const struct tc_inode *m,
			enum attr_id a, const char *v, struct tell *t)
{
	if (!eng->shared)
		return;
	if (a == A_EVICT_TAG) {
		t->what = TELL_EVICT_TAG;
		snprintf(t->arg, sizeof(t->arg), "%s", v);
	} else if (a == A_FLUSH && strcmp(v, "ram")) {
		t->what = TELL_FLUSH;
		tc_sharedpub_flushed_locked(eng);
	} else if (a == A_SCHEMA && S_ISDIR(m->mode) &&
		   !tc_node_path_locked(eng, m->ino, t->path, sizeof(t->path))) {
		t->what = TELL_SCHEMA;
		snprintf(t->arg, sizeof(t->arg), "%s", v);
	} else if (S_ISREG(m->mode) && (a == A_TTL || a == A_TTL_MODE ||
					a == A_TAGS || a == A_SCHEMA)) {
		tc_sharedpub_names_locked(eng, m->ino);
	}
}

/* Send what tell_locked() kept (synchronous: call without locks). */
static void tell_shared(struct tc_engine *eng, const struct tell *t)
{
	int rc = 0;

	switch (t->what) {
	case TELL_NONE:
		return;
	case TELL_FLUSH:
		rc = tc_shared_flush(eng->shared);
		break;
	case TELL_EVICT_TAG:
		rc = tc_shared_evict_tag(eng->shared, t->arg);
		break;
	case TELL_SCHEMA:
		rc = tc_shared_set_schema(eng->shared, t->path, t->arg);
		break;
	}
	if (rc)
		tc_warn(eng, "shared tier: the other mounts may not see this "
			     "%s: %s",
			t->what == TELL_FLUSH	    ? "flush"
			: t->what == TELL_EVICT_TAG ? "evict_tag"
						    : "schema change",
			strerror(-rc));
}

int tc_cacheattr_set(struct tc_engine *eng, uint64_t ino, const char *name,
		     const char *value, size_t size, int flags)
{
	struct tc_inval_list inv = { 0 };
	enum attr_id a = attr_id(name);
	char v[VALUE_MAX], tags[MAX_TAGS][65];
	struct tell tell = { .what = TELL_NONE };
	struct tc_inode m, orig;
	bool reg, dir;
	int ntags = -1, rc;

	if (a == A_UNKNOWN)
		return -EINVAL;
	if (a == A_EXPIRES || a == A_TIER || a == A_HASH)
		return -EPERM;
	rc = value_str(value ? value : "", size, v, sizeof(v));
	if (rc)
		return rc;
	tc_lock(eng);
	rc = tc_node_meta_locked(eng, ino, &m);
	if (rc)
		goto out;
	orig = m;
	reg = S_ISREG(m.mode);
	dir = S_ISDIR(m.mode);
	if (is_control(a)) {
		rc = ino == TC_ROOT_INO
			     ? control_locked(eng, a, v, strlen(v), &inv)
			     : -EPERM;
		/* Administrative and rare: on disk at once, space freed. */
		if (!rc && (a != A_FLUSH || strcmp(v, "ram")) &&
		    a != A_RESET_STATS)
			rc = tc_commit_locked(eng, &inv);
		if (!rc)
			tell_locked(eng, &m, a, v, &tell);
		goto out;
	}
	if (!(reg || dir) || (a == A_TAGS && !reg)) {
		rc = -EPERM;
		goto out;
	}
	switch (a) {
	case A_TTL: {
		int64_t ns;
		/* "never" is a ttl of its own (0 in the row: no deadline,
		 * whatever the tag rules, directories and mount say); "none"
		 * and 0 remove the entry's own ttl. */
		if (!strcasecmp(v, "never")) {
			m.ttl = 0;
			break;
		}
		rc = tc_parse_duration(v, &ns);
		if (rc)
			rc = -EINVAL;
		else
			m.ttl = ns > 0 ? ns : -1;
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
	/* The value is valid: now XATTR_CREATE / XATTR_REPLACE, against the
	 * attribute as it was (@orig). */
	if (!rc)
		rc = check_flags_locked(eng, &orig, a, flags);
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
		rc = save_dir_flags_locked(eng);
	if (!rc)
		tell_locked(eng, &m, a, v, &tell);
out:
	tc_unlock(eng);
	tc_inval_deliver(eng, &inv);
	if (!rc)
		tell_shared(eng, &tell);
	return rc;
}

int tc_cacheattr_remove(struct tc_engine *eng, uint64_t ino,
			const char *name)
{
	struct tc_inval_list inv = { 0 };
	enum attr_id a = attr_id(name);
	struct tell tell = { .what = TELL_NONE };
	char val[VALUE_MAX];
	struct tc_inode m;
	int rc;

	if (a == A_UNKNOWN)
		return -ENODATA;
	if (a == A_EXPIRES || a == A_TIER || a == A_HASH || is_control(a))
		return -EPERM;
	tc_lock(eng);
	rc = tc_node_meta_locked(eng, ino, &m);
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
	if (!rc)
		tell_locked(eng, &m, a, "", &tell);
out:
	tc_unlock(eng);
	tc_inval_deliver(eng, &inv);
	if (!rc)
		tell_shared(eng, &tell);
	return rc;
}

int tc_cacheattr_dir_schema(struct tc_engine *eng, uint64_t ino,
			    const char *schema)
{
	struct tc_inval_list inv = { 0 };
	size_t len = strlen(schema);
	struct tc_inode m;
	int rc;

	if (len > 64 || (len && !tc_schema_valid(schema, len)))
		return -EINVAL;
	tc_lock(eng);
	rc = tc_node_meta_locked(eng, ino, &m);
	if (!rc && !S_ISDIR(m.mode))
		rc = -ENOTDIR;
	if (rc || !strcmp(m.schema, schema))
		goto out;
	memcpy(m.schema, schema, len + 1);
	rc = save_inode_locked(eng, &m, false, NULL, -1, &inv);
	if (rc)
		goto out;
	inval_subtree_locked(eng, ino, &inv);
	if (len && !eng->any_dir_schema) {
		eng->any_dir_schema = true;
		rc = save_dir_flags_locked(eng);
	}
out:
	tc_unlock(eng);
	tc_inval_deliver(eng, &inv);
	return rc;
}
