/* SPDX-License-Identifier: MIT */
/*
 * Which entries carry a tag: the tags in use, and the paths of the entries
 * that carry one (tiercache.h, Tags; the daemon shows them as /.tags).
 *
 * Everything comes from the tag table, whose key is (tag, ino): the tags in
 * use are found one index seek at a time (tc_index_tag_next), and the
 * entries of one tag are read a page at a time (tc_index_tag_inos_after)
 * without looking at any entry of another tag. Each entry is shown as a
 * lookup would see it: its row (the live node's copy when there is one,
 * fresher for sliding deadlines), then each of its names, kept when its
 * directory expects no other schema version. A directory's path and
 * expected version are worked out once per page (a small cache keyed by
 * inode number), so entries that share directories cost about two index
 * lookups each.
 *
 * Pages are gathered under the engine lock and handed to the caller after
 * it is dropped: a long listing never holds the lock for long, and the
 * callbacks may call the engine. A listing is no lookup: nothing is
 * counted and nothing dropped on the way (the sweep and lookups do that).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine_i.h"

/* Entries per page: bounds how long a page holds the engine lock (a few
 * milliseconds) and the memory its paths take. */
#define PAGE 256

/* Directories remembered during a page, direct-mapped by inode number:
 * the entries of one tag tend to live in a few directories. */
#define DIR_SLOTS 64

struct dir_slot {
	uint64_t ino;    /* 0: empty */
	bool linked;     /* it has a path (every directory up is named) */
	char *path;      /* "" for the root, else "/a/b" */
	size_t len;
	char schema[65]; /* version expected of entries in it, "" none */
};

struct dir_cache {
	struct dir_slot slot[DIR_SLOTS];
};

/* The paths of one page, NUL-terminated, one after the other. */
struct page {
	char *buf;
	size_t len, cap;
};

static void dirs_clear(struct dir_cache *c)
{
	for (size_t i = 0; i < DIR_SLOTS; i++)
		free(c->slot[i].path);
	memset(c, 0, sizeof(*c));
}

/* Path and expected schema of directory @dir into *@out; -ENOMEM, -EIO. A
 * directory that lost its name on the way up is !linked (its entries are
 * not shown). */
static int dir_info_locked(struct tc_engine *eng, struct dir_cache *c,
			   uint64_t dir, struct dir_slot **out)
{
	struct dir_slot *s = &c->slot[dir % DIR_SLOTS];
	int rc;

	*out = s;
	if (s->ino == dir)
		return 0;
	free(s->path);
	memset(s, 0, sizeof(*s));
	rc = tc_index_dir_path(&eng->ix, dir, &s->path, &s->len);
	if (rc == -ENOENT || rc == -ELOOP)
		return 0; /* s->ino stays 0: asked again, still unlinked */
	if (!rc)
		rc = tc_policy_dir_schema_locked(eng, dir, s->schema);
	if (rc)
		return rc;
	s->ino = dir;
	s->linked = true;
	return 0;
}

static int page_add(struct page *p, const char *dir, size_t dlen,
		    const char *name, size_t nlen)
{
	size_t need = dlen + 1 + nlen + 1;

	if (p->len + need > p->cap) {
		size_t cap = p->cap ? p->cap : 16384;
		char *b;

		while (cap < p->len + need)
			cap *= 2;
		b = realloc(p->buf, cap);
		if (!b)
			return -ENOMEM;
		p->buf = b;
		p->cap = cap;
	}
	memcpy(p->buf + p->len, dir, dlen);
	p->buf[p->len + dlen] = '/';
	memcpy(p->buf + p->len + dlen + 1, name, nlen);
	p->buf[p->len + need - 1] = '\0';
	p->len += need;
	return 0;
}

/* One entry's names being looked at (tc_index_names_of). */
struct names {
	struct tc_engine *eng;
	struct dir_cache *dirs;
	const struct tc_inode *m;
	struct page *out; /* NULL: only whether one name is visible */
	bool found;
	int err;
};

static int name_one(void *ctx, uint64_t parent, const char *name, size_t len,
		    uint64_t ino)
{
	struct names *c = ctx;
	struct dir_slot *d;

	(void)ino;
	c->err = dir_info_locked(c->eng, c->dirs, parent, &d);
	if (c->err)
		return 1;
	if (!d->linked || len == 0)
		return 0;
	/* Another version than its directory expects: discarded when met. */
	if (d->schema[0] && S_ISREG(c->m->mode) &&
	    strcmp(d->schema, c->m->schema) != 0)
		return 0;
	c->found = true;
	if (!c->out)
		return 1;
	c->err = page_add(c->out, d->path, d->len, name, len);
	return c->err != 0;
}

/* The visible names of entry @ino, as paths into @out (or, when @out is
 * NULL, only whether it has one): *@found. 0 or -errno. */
static int entry_names_locked(struct tc_engine *eng, uint64_t ino,
			      int64_t now, struct dir_cache *dirs,
			      struct page *out, bool *found)
{
	struct names c = { .eng = eng, .dirs = dirs, .out = out };
	struct tc_inode m;
	int rc;

	*found = false;
	rc = tc_node_meta_locked(eng, ino, &m);
	if (rc == -ENOENT)
		return 0; /* gone since the page was read */
	if (rc)
		return rc;
	/* Unlinked (open somewhere) or expired: a lookup finds it absent. */
	if (m.nlink == 0 || (m.expires > 0 && m.expires <= now))
		return 0;
	c.m = &m;
	rc = tc_index_names_of(&eng->ix, ino, name_one, &c);
	*found = c.found;
	return rc ? rc : c.err;
}

/* Whether some visible entry carries @tag. */
static int in_use_locked(struct tc_engine *eng, const char *tag, bool *used)
{
	struct dir_cache *dirs = calloc(1, sizeof(*dirs));
	int64_t now = tc_now(eng);
	uint64_t inos[PAGE], after = 0;
	size_t n = 0;
	int rc;

	*used = false;
	if (!dirs)
		return -ENOMEM;
	do {
		rc = tc_index_tag_inos_after(&eng->ix, tag, after, inos, PAGE,
					     &n);
		for (size_t i = 0; !rc && !*used && i < n; i++)
			rc = entry_names_locked(eng, inos[i], now, dirs, NULL,
						used);
		if (n)
			after = inos[n - 1];
	} while (!rc && !*used && n == PAGE);
	dirs_clear(dirs);
	free(dirs);
	return rc;
}

int tc_tag_in_use(struct tc_engine *eng, const char *tag)
{
	bool used;
	int rc;

	if (!tag || !tc_tag_valid(tag, strlen(tag)))
		return -EINVAL;
	tc_lock(eng);
	rc = in_use_locked(eng, tag, &used);
	tc_unlock(eng);
	return rc ? rc : used ? 0 : -ENOENT;
}

int tc_tags_list(struct tc_engine *eng, tc_tag_fn fn, void *ctx)
{
	char tag[65] = "", next[65];
	bool used = false;
	int rc;

	for (;;) {
		/* One tag handed out per hold of the lock; tags no visible
		 * entry carries are skipped under it. */
		tc_lock(eng);
		do {
			rc = tc_index_tag_next(&eng->ix, tag, next);
			if (!rc) {
				memcpy(tag, next, sizeof(tag));
				rc = in_use_locked(eng, tag, &used);
			}
		} while (!rc && !used);
		tc_unlock(eng);
		if (rc || fn(ctx, tag))
			break;
	}
	return rc == -ENOENT ? 0 : rc;
}

/* Hand the paths of @p to @fn: 1 when it asked to stop. */
static int page_emit(const struct page *p, tc_path_fn fn, void *ctx)
{
	for (size_t off = 0; off < p->len;) {
		size_t len = strlen(p->buf + off);

		if (fn(ctx, p->buf + off, len))
			return 1;
		off += len + 1;
	}
	return 0;
}

int tc_tag_paths(struct tc_engine *eng, const char *tag, tc_path_fn fn,
		 void *ctx)
{
	struct dir_cache *dirs;
	struct page out = { 0 };
	uint64_t inos[PAGE], after = 0;
	size_t n = 0;
	int rc;

	if (!tag || !tc_tag_valid(tag, strlen(tag)))
		return -EINVAL;
	dirs = calloc(1, sizeof(*dirs));
	if (!dirs)
		return -ENOMEM;
	do {
		int64_t now;
		bool found;

		out.len = 0;
		tc_lock(eng);
		now = tc_now(eng);
		rc = tc_index_tag_inos_after(&eng->ix, tag, after, inos, PAGE,
					     &n);
		for (size_t i = 0; !rc && i < n; i++)
			rc = entry_names_locked(eng, inos[i], now, dirs, &out,
						&found);
		/* Names may change once the lock is dropped. */
		dirs_clear(dirs);
		tc_unlock(eng);
		if (!rc && page_emit(&out, fn, ctx))
			break;
		if (n)
			after = inos[n - 1];
	} while (!rc && n == PAGE);
	free(out.buf);
	free(dirs);
	return rc;
}
