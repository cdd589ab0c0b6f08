/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the tag queries (engine/tags.c): the tags in use, whether
 * one is, and the paths of the entries that carry one; only visible
 * entries count (not expired, not of another schema version, not
 * unlinked), through retagging, renames, hard links and listings longer
 * than one page; the callbacks may call the engine.
 */
#include "util.h"

/* What a listing handed out: the strings joined by '|'. */
struct seen {
	char buf[8192];
	size_t len;
	int n, stop_after;
	struct tc_engine *eng; /* set: each callback calls the engine */
};

static void seen_add(struct seen *s, const char *v, size_t len)
{
	if (s->len + len + 2 < sizeof(s->buf)) {
		if (s->len)
			s->buf[s->len++] = '|';
		memcpy(s->buf + s->len, v, len);
		s->len += len;
		s->buf[s->len] = '\0';
	}
	s->n++;
}

static int on_tag(void *ctx, const char *tag)
{
	struct seen *s = ctx;

	seen_add(s, tag, strlen(tag));
	if (s->eng)
		assert_int_equal(tc_tag_in_use(s->eng, tag), 0);
	return s->stop_after && s->n >= s->stop_after;
}

static int on_path(void *ctx, const char *path, size_t len)
{
	struct seen *s = ctx;

	assert_int_equal(strlen(path), len);
	seen_add(s, path, len);
	if (s->eng)
		assert_int_equal(tc_tag_in_use(s->eng, "t"), 0);
	return s->stop_after && s->n >= s->stop_after;
}

static const char *tags_of(struct tcu *fx)
{
	static struct seen s;

	memset(&s, 0, sizeof(s));
	assert_int_equal(tc_tags_list(fx->eng, on_tag, &s), 0);
	return s.buf;
}

static const char *paths_of(struct tcu *fx, const char *tag)
{
	static struct seen s;

	memset(&s, 0, sizeof(s));
	assert_int_equal(tc_tag_paths(fx->eng, tag, on_path, &s), 0);
	return s.buf;
}

static int tag(struct tcu *fx, uint64_t parent, const char *name,
	       const char *tags)
{
	uint64_t ino = tcu_ino_at(fx->eng, parent, name);

	if (!ino)
		return -ENOENT;
	return tc_setxattr(fx->eng, ino, TC_XATTR_PREFIX "tags", tags,
			   strlen(tags), 0);
}

static void test_tags_in_use(void **state)
{
	struct tcu *fx = *state;
	struct seen s = { 0 };
	uint64_t d;

	assert_string_equal(tags_of(fx), "");
	assert_int_equal(tc_tag_in_use(fx->eng, "x"), -ENOENT);
	assert_int_equal(tc_tag_in_use(fx->eng, "bad tag"), -EINVAL);
	assert_int_equal(tc_tag_in_use(fx->eng, ""), -EINVAL);
	assert_int_equal(tc_tag_paths(fx->eng, "a/b", on_path, &s), -EINVAL);

	tcu_put(fx, "a", "1");
	tcu_put(fx, "b", "2");
	d = tcu_mkdir_at(fx, TC_ROOT_INO, "d");
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, d, "c", "3", 1), 0);
	assert_int_equal(tag(fx, TC_ROOT_INO, "a", "y,x"), 0);
	assert_int_equal(tag(fx, TC_ROOT_INO, "b", "y"), 0);
	assert_int_equal(tag(fx, d, "c", "z:1,Y"), 0);
	/* Byte order, each once. */
	assert_string_equal(tags_of(fx), "Y|x|y|z:1");
	assert_int_equal(tc_tag_in_use(fx->eng, "x"), 0);
	assert_int_equal(tc_tag_in_use(fx->eng, "X"), -ENOENT);

	/* Retagging, removing the tags, unlinking. */
	assert_int_equal(tag(fx, TC_ROOT_INO, "a", "w"), 0);
	assert_string_equal(tags_of(fx), "Y|w|y|z:1");
	assert_int_equal(tc_removexattr(fx->eng,
					tcu_ino_at(fx->eng, TC_ROOT_INO, "b"),
					TC_XATTR_PREFIX "tags"),
			 0);
	assert_string_equal(tags_of(fx), "Y|w|z:1");
	assert_int_equal(tc_unlink(fx->eng, d, "c"), 0);
	assert_string_equal(tags_of(fx), "w");
	assert_int_equal(tc_tag_in_use(fx->eng, "Y"), -ENOENT);

	/* A callback may stop the listing, and may call the engine. */
	assert_int_equal(tag(fx, TC_ROOT_INO, "b", "b1,b2,b3"), 0);
	s.stop_after = 2;
	s.eng = fx->eng;
	assert_int_equal(tc_tags_list(fx->eng, on_tag, &s), 0);
	assert_string_equal(s.buf, "b1|b2");
}

static void test_tag_paths(void **state)
{
	struct tcu *fx = *state;
	struct seen s = { 0 };
	struct tc_attr a;
	uint64_t d, e, ino;

	d = tcu_mkdir_at(fx, TC_ROOT_INO, "d");
	e = tcu_mkdir_at(fx, d, "e");
	tcu_put(fx, "top", "1");
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, e, "deep", "2", 1), 0);
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, d, "mid", "3", 1), 0);
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, d, "other", "4", 1), 0);
	assert_int_equal(tag(fx, TC_ROOT_INO, "top", "t"), 0);
	assert_int_equal(tag(fx, e, "deep", "u,t"), 0);
	assert_int_equal(tag(fx, d, "mid", "t"), 0);
	assert_int_equal(tag(fx, d, "other", "u"), 0);
	/* In the order the entries were created. */
	assert_string_equal(paths_of(fx, "t"), "/top|/d/e/deep|/d/mid");
	assert_string_equal(paths_of(fx, "u"), "/d/e/deep|/d/other");
	assert_string_equal(paths_of(fx, "nobody"), "");

	/* Renames (of the entry, of a directory above it) and hard links. */
	assert_int_equal(tc_rename(fx->eng, d, "e", TC_ROOT_INO, "e2", 0), 0);
	assert_int_equal(tc_rename(fx->eng, TC_ROOT_INO, "top", d, "top2", 0),
			 0);
	assert_string_equal(paths_of(fx, "t"), "/d/top2|/e2/deep|/d/mid");
	ino = tcu_ino_at(fx->eng, d, "mid");
	assert_int_equal(tc_link(fx->eng, ino, TC_ROOT_INO, "alias", &a), 0);
	tc_forget(fx->eng, ino, 1);
	assert_string_equal(paths_of(fx, "t"),
			    "/d/top2|/e2/deep|/d/mid|/alias");
	/* Names are bytes: a newline passes through as it is. */
	assert_int_equal(tc_rename(fx->eng, TC_ROOT_INO, "alias", TC_ROOT_INO,
				   "two\nlines", 0),
			 0);
	assert_string_equal(paths_of(fx, "t"),
			    "/d/top2|/e2/deep|/d/mid|/two\nlines");

	/* Stopping, and calling the engine from the callback. */
	s.stop_after = 2;
	s.eng = fx->eng;
	assert_int_equal(tc_tag_paths(fx->eng, "t", on_path, &s), 0);
	assert_string_equal(s.buf, "/d/top2|/e2/deep");
}

/* Expired, discarded and unlinked entries are left out, without being
 * counted or dropped: a listing is no lookup. */
static void test_tag_paths_visible_only(void **state)
{
	struct tcu *fx = *state;
	struct tc_attr a;
	struct tc_file *f;
	uint64_t d, ino;

	d = tcu_mkdir_at(fx, TC_ROOT_INO, "d");
	tcu_put(fx, "short", "s");
	tcu_put(fx, "long", "l");
	tcu_put(fx, "held", "h");
	assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, d, "v1", "v", 1), 0);
	assert_int_equal(tag(fx, TC_ROOT_INO, "short", "t,s"), 0);
	assert_int_equal(tag(fx, TC_ROOT_INO, "long", "t"), 0);
	assert_int_equal(tag(fx, TC_ROOT_INO, "held", "t,h"), 0);
	assert_int_equal(tag(fx, d, "v1", "t,v"), 0);
	assert_int_equal(tc_setxattr(fx->eng,
				     tcu_ino_at(fx->eng, TC_ROOT_INO, "short"),
				     TC_XATTR_PREFIX "ttl", "1m", 2, 0),
			 0);
	assert_string_equal(paths_of(fx, "t"), "/short|/long|/held|/d/v1");
	assert_string_equal(tags_of(fx), "h|s|t|v");

	/* Expired, before any sweep. */
	tcu_advance(fx, 2 * TCU_MIN);
	tc_engine_reset_stats(fx->eng);
	assert_string_equal(paths_of(fx, "t"), "/long|/held|/d/v1");
	assert_string_equal(tags_of(fx), "h|t|v");
	assert_int_equal(tc_tag_in_use(fx->eng, "s"), -ENOENT);

	/* Of another version than its directory now expects. */
	assert_int_equal(tc_setxattr(fx->eng, d, TC_XATTR_PREFIX "schema", "v2",
				     2, 0),
			 0);
	assert_string_equal(paths_of(fx, "t"), "/long|/held");
	assert_string_equal(tags_of(fx), "h|t");
	tcu_assert_stat(fx->eng, "expirations", 0);
	tcu_assert_stat(fx->eng, "schema_discards", 0);
	tcu_assert_stat(fx->eng, "misses", 0);

	/* Unlinked while open: gone from the listing, still readable. */
	assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, "held", &a), 0);
	ino = a.st.st_ino;
	assert_int_equal(tc_open(fx->eng, ino, O_RDONLY, &f), 0);
	assert_int_equal(tc_unlink(fx->eng, TC_ROOT_INO, "held"), 0);
	assert_string_equal(paths_of(fx, "t"), "/long");
	assert_string_equal(tags_of(fx), "t");
	assert_int_equal(tc_tag_in_use(fx->eng, "h"), -ENOENT);
	tc_release(f);
	tc_forget(fx->eng, ino, 1);

	/* The sweep and the reopen change nothing of what is shown. */
	tcu_maintain(fx);
	tcu_reopen(fx);
	assert_string_equal(paths_of(fx, "t"), "/long");
}

static int count_path(void *ctx, const char *path, size_t len)
{
	unsigned char *seen = ctx;
	unsigned i;

	assert_true(len > 3);
	/* "/dN/kI" */
	assert_int_equal(sscanf(strrchr(path, '/'), "/k%u", &i), 1);
	assert_true(i < 1000);
	seen[i]++;
	return 0;
}

/* More entries than one page, spread over more directories than the
 * page's cache holds, each listed once. */
static void test_tag_paths_pages(void **state)
{
	struct tcu *fx = *state;
	unsigned char seen[1000] = { 0 };
	uint64_t dirs[100];
	char name[32];

	for (int i = 0; i < 100; i++) {
		snprintf(name, sizeof(name), "d%d", i);
		dirs[i] = tcu_mkdir_at(fx, TC_ROOT_INO, name);
	}
	for (unsigned i = 0; i < 1000; i++) {
		uint64_t dir = dirs[(i * 7) % 100];

		snprintf(name, sizeof(name), "k%u", i);
		assert_int_equal(tcu_put_at(fx->eng, &fx->ctx, dir, name, "x",
					    1),
				 0);
		assert_int_equal(tag(fx, dir, name, i % 2 ? "odd,all" : "all"),
				 0);
	}
	assert_int_equal(tc_tag_paths(fx->eng, "all", count_path, seen), 0);
	for (unsigned i = 0; i < 1000; i++)
		assert_int_equal(seen[i], 1);
	memset(seen, 0, sizeof(seen));
	assert_int_equal(tc_tag_paths(fx->eng, "odd", count_path, seen), 0);
	for (unsigned i = 0; i < 1000; i++)
		assert_int_equal(seen[i], i % 2);
	assert_string_equal(tags_of(fx), "all|odd");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, tcu_setup, tcu_teardown)
		T(test_tags_in_use),
		T(test_tag_paths),
		T(test_tag_paths_visible_only),
		T(test_tag_paths_pages),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
