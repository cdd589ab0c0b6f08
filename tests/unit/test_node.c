/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the node table (engine/node.c) on a live engine, through
 * its internal functions under the engine lock: nodes pinned and unpinned,
 * kept by the kernel's lookup references and by open handles, an unlinked
 * inode's row purged when its last reference goes, the table growing, the
 * access-time batch reaching the index only when applied, the inodes a
 * crash left without links, and invalidation lists collected under the
 * lock and delivered through tc_engine_set_inval() after it. Also the node
 * bodies (engine/nodebody.c) the node table loads and drops: an idle body
 * is evicted from a small cache and read again with every change intact,
 * busy bodies stay, the cache stays within its bound, a rolled-back drop
 * and a lost group bring bodies (and nodes without one) back in line.
 */
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "engine_i.h"
#include "util.h"

/* Above inline_max (64 KiB by default): the content has a blob file. */
#define BLOB_LEN (256 * 1024)

static struct tc_node *find(struct tc_engine *eng, uint64_t ino)
{
	struct tc_node *n;

	tc_lock(eng);
	n = tc_node_find_locked(eng, ino);
	tc_unlock(eng);
	return n;
}

/* Open @ino for reading and release it at once: one get. */
static void read_once(struct tcu *fx, uint64_t ino)
{
	struct tc_file *f;

	assert_int_equal(tc_open(fx->eng, ino, O_RDONLY, &f), 0);
	assert_int_equal(tc_release(f), 0);
}

/* ------------------------------------------------------------------ */
/* References                                                         */
/* ------------------------------------------------------------------ */

static void test_get_pin_unpin_release(void **state)
{
	struct tcu *fx = *state;
	struct tc_engine *eng = fx->eng;
	struct tc_node *n, *again;
	uint64_t ino;

	tcu_put(fx, "k", "v");
	ino = tcu_ino_at(eng, TC_ROOT_INO, "k");
	tc_lock(eng);
	/* Nothing holds it: not in the table. */
	assert_null(tc_node_find_locked(eng, ino));
	assert_int_equal(tc_node_get_locked(eng, ino, &n), 0);
	assert_int_equal(n->ino, ino);
	assert_int_equal(n->pins, 1);
	assert_true(S_ISREG(n->body->meta.mode));
	assert_int_equal(n->body->meta.size, 1);
	assert_ptr_equal(tc_node_find_locked(eng, ino), n);
	assert_int_equal(tc_node_get_locked(eng, ino, &again), 0);
	assert_ptr_equal(again, n);
	assert_int_equal(n->pins, 2);
	/* A release while pinned does nothing. */
	tc_node_release_locked(eng, n);
	assert_ptr_equal(tc_node_find_locked(eng, ino), n);
	tc_node_unpin_locked(eng, n);
	assert_int_equal(n->pins, 1);
	assert_ptr_equal(tc_node_find_locked(eng, ino), n);
	tc_node_unpin_locked(eng, n);
	assert_null(tc_node_find_locked(eng, ino));
	/* An unknown inode is no node. */
	assert_int_equal(tc_node_get_locked(eng, UINT64_C(0x7ffffffffff), &n),
			 -ENOENT);
	assert_null(tc_node_find_locked(eng, UINT64_C(0x7ffffffffff)));
	tc_unlock(eng);
	/* tc_node_unpin() takes the lock itself. */
	tc_lock(eng);
	assert_int_equal(tc_node_get_locked(eng, ino, &n), 0);
	tc_unlock(eng);
	tc_node_unpin(eng, n);
	assert_null(find(eng, ino));
}

static void test_lookup_and_open_keep_node(void **state)
{
	struct tcu *fx = *state;
	struct tc_engine *eng = fx->eng;
	struct tc_attr a;
	struct tc_file *f;
	struct tc_node *n;

	tcu_put(fx, "k", "v");
	assert_int_equal(tc_lookup(eng, TC_ROOT_INO, "k", &a), 0);
	n = find(eng, a.st.st_ino);
	assert_non_null(n);
	assert_int_equal(n->nlookup, 1);
	assert_int_equal(n->pins, 0);
	assert_int_equal(tc_lookup(eng, TC_ROOT_INO, "k", &a), 0);
	assert_int_equal(n->nlookup, 2);
	tc_forget(eng, a.st.st_ino, 1);
	assert_ptr_equal(find(eng, a.st.st_ino), n);
	assert_int_equal(n->nlookup, 1);

	/* An open handle keeps it past the last forget (more forgets than
	 * lookups count as all of them). */
	assert_int_equal(tc_open(eng, a.st.st_ino, O_RDONLY, &f), 0);
	assert_int_equal(n->body->nopen, 1);
	tc_forget(eng, a.st.st_ino, 5);
	assert_int_equal(n->nlookup, 0);
	assert_ptr_equal(find(eng, a.st.st_ino), n);
	assert_int_equal(tc_release(f), 0);
	assert_null(find(eng, a.st.st_ino));
	/* A forget of a node not in the table is harmless. */
	tc_forget(eng, a.st.st_ino, 1);
	tcu_assert_value(fx, "k", "v");
}

static void test_unlinked_row_purged_at_last_reference(void **state)
{
	struct tcu *fx = *state;
	struct tc_engine *eng = fx->eng;
	struct tc_inode row;
	struct tc_attr a;
	struct tc_file *f;
	uint8_t h[TC_HASH_LEN];
	char hex[33];

	tcu_put_fill(fx, "k", BLOB_LEN, 1);
	tcu_hash(fx, "k", hex);
	tcu_hash_bin(hex, h);
	assert_int_equal(tc_lookup(eng, TC_ROOT_INO, "k", &a), 0);
	assert_int_equal(tc_open(eng, a.st.st_ino, O_RDONLY, &f), 0);
	assert_int_equal(tc_unlink(eng, TC_ROOT_INO, "k"), 0);

	/* No name, but a row (nlink 0) and its blob, while referenced. */
	assert_int_equal(tcu_row(eng, a.st.st_ino, &row), 0);
	assert_int_equal(row.nlink, 0);
	assert_true(tcu_blob_exists(fx, hex));
	assert_int_equal(tc_release(f), 0);
	assert_int_equal(tcu_row(eng, a.st.st_ino, &row), 0);
	assert_true(tcu_blob_exists(fx, hex));

	/* The last reference takes the row and the blob. */
	tc_forget(eng, a.st.st_ino, 1);
	assert_int_equal(tcu_row(eng, a.st.st_ino, &row), -ENOENT);
	assert_false(tcu_blob_exists(fx, hex));
	tc_lock(eng);
	assert_int_equal(tc_index_blob_refs(&eng->ix, h), 0);
	tc_unlock(eng);
	tcu_assert_stat(eng, "blob_bytes", 0);
}

static void test_drop_live_node(void **state)
{
	struct tcu *fx = *state;
	struct tc_engine *eng = fx->eng;
	struct tc_inval_list inv = { 0 };
	struct tc_inode row;
	struct tc_attr a;
	struct tc_node *n;

	tcu_put(fx, "k", "v");
	assert_int_equal(tc_lookup(eng, TC_ROOT_INO, "k", &a), 0);
	n = find(eng, a.st.st_ino);
	assert_non_null(n);

	/* Dropped (as by eviction) while the kernel holds it: the names go,
	 * the row stays unlinked until the last forget. */
	tc_lock(eng);
	assert_int_equal(tc_txn_begin_locked(eng), 0);
	assert_int_equal(tc_node_drop_locked(eng, a.st.st_ino, &inv), 0);
	assert_int_equal(tc_txn_commit_locked(eng), 0);
	assert_int_equal(n->body->meta.nlink, 0);
	assert_int_equal(eng->size.disk_items, 0);
	tc_unlock(eng);
	assert_int_equal(inv.n, 1);
	assert_int_equal(inv.v[0].parent, TC_ROOT_INO);
	assert_string_equal(inv.v[0].name, "k");
	tc_inval_deliver(eng, &inv);
	assert_false(tcu_present(fx, "k"));
	assert_int_equal(tcu_row(eng, a.st.st_ino, &row), 0);
	assert_int_equal(row.nlink, 0);
	tc_forget(eng, a.st.st_ino, 1);
	assert_int_equal(tcu_row(eng, a.st.st_ino, &row), -ENOENT);

	/* Dropping what is already gone is no error. */
	tc_lock(eng);
	assert_int_equal(tc_node_drop_locked(eng, a.st.st_ino, NULL), 0);
	tc_unlock(eng);
}

static void test_table_grows(void **state)
{
	struct tcu *fx = *state;
	struct tc_engine *eng = fx->eng;
	enum { N = 3000 };
	static uint64_t inos[N];
	static struct tc_node *nodes[N];
	size_t slots = eng->nodes.mask + 1, base = eng->nodes.count;

	tc_lock(eng);
	assert_int_equal(tc_txn_begin_locked(eng), 0);
	for (int i = 0; i < N; i++) {
		struct tc_inode m = { 0 };

		m.mode = S_IFREG | 0644;
		m.nlink = 1;
		m.ttl = m.dttl = -1;
		m.ttl_mode = m.dttl_mode = -1;
		m.ino = ++eng->last_ino;
		assert_int_equal(tc_index_inode_insert(&eng->ix, &m), 0);
		inos[i] = m.ino;
	}
	assert_int_equal(tc_txn_commit_locked(eng), 0);
	for (int i = 0; i < N; i++)
		assert_int_equal(tc_node_get_locked(eng, inos[i], &nodes[i]),
				 0);
	assert_int_equal(eng->nodes.count, base + N);
	assert_true(eng->nodes.mask + 1 > slots);
	assert_true((eng->nodes.mask + 1) * 3 >= eng->nodes.count * 4);
	/* Every node is still found after the rehashing. */
	for (int i = 0; i < N; i++)
		assert_ptr_equal(tc_node_find_locked(eng, inos[i]), nodes[i]);
	for (int i = 0; i < N; i++)
		tc_node_unpin_locked(eng, nodes[i]);
	assert_int_equal(eng->nodes.count, base);
	for (int i = 0; i < N; i += 97)
		assert_null(tc_node_find_locked(eng, inos[i]));
	tc_unlock(eng);
}

static void test_drop_orphans(void **state)
{
	struct tcu *fx = *state;
	struct tc_engine *eng = fx->eng;
	struct tc_inode m, row;
	uint8_t h[TC_HASH_LEN];
	char hex[33];
	uint64_t ino;

	tcu_put_fill(fx, "k", BLOB_LEN, 1);
	tcu_hash(fx, "k", hex);
	tcu_hash_bin(hex, h);
	ino = tcu_ino_at(eng, TC_ROOT_INO, "k");

	/* What a crash leaves: an inode without links that still holds a
	 * reference to a blob another entry shares. */
	assert_int_equal(tcu_row(eng, ino, &m), 0);
	m.nlink = 0;
	tc_lock(eng);
	assert_int_equal(tc_txn_begin_locked(eng), 0);
	m.ino = ++eng->last_ino;
	assert_int_equal(tc_index_inode_insert(&eng->ix, &m), 0);
	assert_int_equal(tc_blob_ref_locked(eng, h, BLOB_LEN, NULL, false), 0);
	assert_int_equal(tc_txn_commit_locked(eng), 0);
	assert_int_equal(tc_index_blob_refs(&eng->ix, h), 2);
	assert_int_equal(tc_node_drop_orphans_locked(eng), 0);
	assert_int_equal(tc_index_blob_refs(&eng->ix, h), 1);
	tc_unlock(eng);
	assert_int_equal(tcu_row(eng, m.ino, &row), -ENOENT);
	assert_int_equal(tcu_row(eng, ino, &row), 0);
	assert_true(tcu_blob_exists(fx, hex));
	tcu_flush_ram(fx);
	tcu_assert_fill(fx, "k", BLOB_LEN, 1);
}

/* ------------------------------------------------------------------ */
/* Access times                                                       */
/* ------------------------------------------------------------------ */

static void test_atime_batch(void **state)
{
	struct tcu *fx = *state;
	struct tc_engine *eng = fx->eng;
	struct tc_inode row;
	struct tc_attr a;
	struct tc_node *n;
	int64_t t0, t1, deadline;

	tcu_put(fx, "k", "v");
	assert_int_equal(tc_lookup(eng, TC_ROOT_INO, "k", &a), 0);
	n = find(eng, a.st.st_ino);
	assert_non_null(n);
	assert_int_equal(tcu_row(eng, a.st.st_ino, &row), 0);
	t0 = row.lru;
	assert_int_equal(t0, TCU_EPOCH_NS);

	/* A read records its time in the node only. */
	tcu_advance(fx, 2 * TCU_SEC);
	t1 = fx->now;
	read_once(fx, a.st.st_ino);
	assert_int_equal(n->body->meta.lru, t1);
	assert_true(n->body->atime_pending);
	assert_int_equal(eng->n_atimes, 1);
	assert_int_equal(tcu_row(eng, a.st.st_ino, &row), 0);
	assert_int_equal(row.lru, t0);
	/* Another read within a second costs nothing. */
	tcu_advance(fx, TCU_SEC / 2);
	read_once(fx, a.st.st_ino);
	assert_int_equal(n->body->meta.lru, t1);
	assert_int_equal(eng->n_atimes, 1);

	/* Maintenance applies the batch. */
	tcu_maintain(fx);
	assert_false(n->body->atime_pending);
	assert_int_equal(eng->n_atimes, 0);
	assert_int_equal(tcu_row(eng, a.st.st_ino, &row), 0);
	assert_int_equal(row.lru, t1);

	/* A sliding deadline moves in the node, then in the row. */
	assert_int_equal(tc_setxattr(eng, a.st.st_ino, TC_XATTR_PREFIX "ttl",
				     "10m", 3, 0),
			 0);
	assert_int_equal(tc_setxattr(eng, a.st.st_ino,
				     TC_XATTR_PREFIX "ttl_mode", "sliding", 7,
				     0),
			 0);
	tcu_advance(fx, 2 * TCU_SEC);
	deadline = fx->now + 10 * TCU_MIN;
	read_once(fx, a.st.st_ino);
	assert_int_equal(n->body->meta.expires, deadline);
	assert_int_equal(tcu_row(eng, a.st.st_ino, &row), 0);
	assert_true(row.expires < deadline);
	tc_lock(eng);
	assert_int_equal(tc_txn_begin_locked(eng), 0);
	assert_int_equal(tc_node_apply_atimes_locked(eng), 0);
	assert_int_equal(tc_txn_commit_locked(eng), 0);
	tc_unlock(eng);
	assert_int_equal(tcu_row(eng, a.st.st_ino, &row), 0);
	assert_int_equal(row.expires, deadline);
	assert_int_equal(row.lru, fx->now);

	/* A node leaving the table writes its pending time first. */
	tcu_advance(fx, 2 * TCU_SEC);
	read_once(fx, a.st.st_ino);
	assert_true(n->body->atime_pending);
	tc_forget(eng, a.st.st_ino, 1);
	assert_null(find(eng, a.st.st_ino));
	assert_int_equal(tcu_row(eng, a.st.st_ino, &row), 0);
	assert_int_equal(row.lru, fx->now);
	assert_int_equal(row.expires, fx->now + 10 * TCU_MIN);
}

/* ------------------------------------------------------------------ */
/* Invalidations                                                      */
/* ------------------------------------------------------------------ */

struct seen {
	int n;
	uint64_t parent[8], ino[8];
	char name[8][16];
};

static void on_inval(void *ctx, uint64_t parent, const char *name,
		     uint64_t ino)
{
	struct seen *s = ctx;

	assert_true(s->n < 8);
	s->parent[s->n] = parent;
	s->ino[s->n] = ino;
	snprintf(s->name[s->n], sizeof(s->name[0]), "%s", name);
	s->n++;
}

static void test_inval_collect_and_deliver(void **state)
{
	struct tcu *fx = *state;
	struct tc_engine *eng = fx->eng;
	struct tc_inval_list inv = { 0 };
	struct seen s = { 0 };
	struct tc_attr a;
	uint64_t ino, d;

	tcu_put(fx, "k", "v");
	ino = tcu_ino_at(eng, TC_ROOT_INO, "k");
	d = tcu_mkdir_at(fx, TC_ROOT_INO, "d");
	assert_int_equal(tc_link(eng, ino, d, "k2", &a), 0);
	tc_forget(eng, ino, 1);

	/* Collected under the lock: every name of the inode. */
	tc_lock(eng);
	tc_inval_names_locked(eng, ino, &inv);
	tc_unlock(eng);
	assert_int_equal(inv.n, 2);

	/* Delivered without it, to the callback, and the list emptied. */
	tc_engine_set_inval(eng, on_inval, &s);
	tc_inval_deliver(eng, &inv);
	assert_int_equal(inv.n, 0);
	assert_null(inv.v);
	assert_int_equal(s.n, 2);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(s.ino[i], ino);
		if (s.parent[i] == TC_ROOT_INO)
			assert_string_equal(s.name[i], "k");
		else if (s.parent[i] == d)
			assert_string_equal(s.name[i], "k2");
		else
			fail_msg("invalidation of parent %llu",
				 (unsigned long long)s.parent[i]);
	}

	/* Names are copied, @len bytes of them. */
	tc_inval_add(&inv, 7, "abcdef", 3, 9);
	tc_inval_deliver(eng, &inv);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.name[2], "abc");
	assert_int_equal(s.parent[2], 7);
	assert_int_equal(s.ino[2], 9);

	/* Without a callback the list is only freed. */
	tc_engine_set_inval(eng, NULL, NULL);
	for (int i = 0; i < 40; i++) /* past the first growth */
		tc_inval_add(&inv, 1, "x", 1, (uint64_t)i);
	assert_int_equal(inv.n, 40);
	tc_inval_deliver(eng, &inv);
	assert_int_equal(inv.n, 0);
	assert_int_equal(s.n, 3);
	/* An empty list is fine too. */
	tc_inval_deliver(eng, &inv);
}

/* ------------------------------------------------------------------ */
/* Bodies                                                             */
/* ------------------------------------------------------------------ */

/* Idle bodies the body tests let the cache keep. */
#define CAP 4

static void limit_cache(struct tc_engine *eng, uint32_t cap)
{
	tc_lock(eng);
	assert_int_equal(tc_nbody_cache_limit_locked(eng, cap), 0);
	tc_unlock(eng);
}

/* Put "pad0".."pad<count-1>" and take a lookup reference on each, as the
 * kernel does; their inodes in @inos. */
static void hold_pads(struct tcu *fx, uint64_t *inos, int count)
{
	for (int i = 0; i < count; i++) {
		char name[16];
		struct tc_attr a;

		snprintf(name, sizeof(name), "pad%d", i);
		tcu_put(fx, name, "p");
		assert_int_equal(tc_lookup(fx->eng, TC_ROOT_INO, name, &a), 0);
		inos[i] = a.st.st_ino;
	}
}

/* Getattr of every pad: more body loads than the cache has slots, so any
 * body idle before is evicted. */
static void churn(struct tcu *fx, const uint64_t *inos, int count)
{
	for (int i = 0; i < count; i++) {
		struct tc_attr a;

		assert_int_equal(tc_getattr(fx->eng, inos[i], &a), 0);
		assert_int_equal(a.st.st_size, 1);
	}
}

static bool has_body(struct tc_engine *eng, uint64_t ino)
{
	struct tc_node *n;
	bool b;

	tc_lock(eng);
	n = tc_node_find_locked(eng, ino);
	assert_non_null(n);
	b = n->body != NULL;
	tc_unlock(eng);
	return b;
}

static uint64_t body_loads(struct tc_engine *eng)
{
	uint64_t v;

	tc_lock(eng);
	v = eng->bodies.loads;
	tc_unlock(eng);
	return v;
}

static void forget_all(struct tcu *fx, const uint64_t *inos, int count)
{
	for (int i = 0; i < count; i++)
		tc_forget(fx->eng, inos[i], 1);
}

static void test_body_evicted_and_reloaded(void **state)
{
	struct tcu *fx = *state;
	struct tc_engine *eng = fx->eng;
	uint64_t pads[3 * CAP], ino, loads;
	struct stat st = {.st_mode = 0600};
	struct tc_attr a;
	char buf[16];

	limit_cache(eng, CAP);
	hold_pads(fx, pads, 3 * CAP);
	tcu_put(fx, "k", "v");
	assert_int_equal(tc_lookup(eng, TC_ROOT_INO, "k", &a), 0);
	ino = a.st.st_ino;

	/* Held by the kernel only: after the churn the node has no body. */
	churn(fx, pads, 3 * CAP);
	assert_false(has_body(eng, ino));

	/* Each change is made on a body loaded again, then evicted. */
	assert_int_equal(tc_setattr(eng, ino, &st, TC_SET_MODE, NULL, &a), 0);
	churn(fx, pads, 3 * CAP);
	assert_false(has_body(eng, ino));
	assert_int_equal(tc_rename(eng, TC_ROOT_INO, "k", TC_ROOT_INO, "k2", 0),
			 0);
	churn(fx, pads, 3 * CAP);
	assert_int_equal(
	    tc_setxattr(eng, ino, "user.tiercache.ttl", "1h", 2, 0), 0);
	assert_int_equal(tc_setxattr(eng, ino, "user.color", "red", 3, 0), 0);
	churn(fx, pads, 3 * CAP);
	tcu_put(fx, "k2", "a new value");
	churn(fx, pads, 3 * CAP);
	assert_false(has_body(eng, ino));

	/* One load brings every change back; the next getattr needs none. */
	loads = body_loads(eng);
	assert_int_equal(tc_getattr(eng, ino, &a), 0);
	assert_int_equal(body_loads(eng), loads + 1);
	assert_int_equal(tc_getattr(eng, ino, &a), 0);
	assert_int_equal(body_loads(eng), loads + 1);
	assert_int_equal(a.st.st_mode, S_IFREG | 0600);
	assert_int_equal(a.st.st_size, strlen("a new value"));
	assert_int_equal(a.st.st_nlink, 1);
	assert_true(a.valid_ns > 0 && a.valid_ns <= 3600 * TC_NS_PER_S);
	tc_lock(eng);
	assert_int_equal(tc_node_find_locked(eng, ino)->body->meta.ttl,
			 3600 * TC_NS_PER_S);
	tc_unlock(eng);
	assert_int_equal(tc_getxattr(eng, ino, "user.color", buf, sizeof(buf)),
			 3);
	assert_memory_equal(buf, "red", 3);
	assert_int_equal(tcu_ino_at(eng, TC_ROOT_INO, "k2"), ino);
	tcu_assert_value(fx, "k2", "a new value");
	tc_forget(eng, ino, 1);
	forget_all(fx, pads, 3 * CAP);
}

static void test_body_cache_bounded(void **state)
{
	struct tcu *fx = *state;
	struct tc_engine *eng = fx->eng;
	enum { PADS = 40 };
	uint64_t pads[PADS];
	size_t idle = 0, nodes = 0, listed = 0;
	struct tc_file *f;
	struct tc_node *n;

	limit_cache(eng, CAP);
	hold_pads(fx, pads, PADS);
	assert_int_equal(tc_open(eng, pads[0], O_RDONLY, &f), 0);
	churn(fx, pads, PADS);
	churn(fx, pads, PADS);
	tc_lock(eng);
	for (size_t pos = 0; (n = tc_ntab_next(&eng->nodes, &pos));) {
		nodes++;
		if (n->body && !tc_nbody_busy(n))
			idle++;
	}
	/* Every name is still held; only CAP idle bodies are kept, plus
	 * the open one. */
	assert_true(nodes >= PADS);
	assert_true(idle <= CAP);
	assert_true(eng->bodies.live <= CAP + 1);
	for (struct tc_nbody *b = eng->bodies.all; b; b = b->next) {
		assert_ptr_equal(b->node->body, b);
		listed++;
	}
	assert_int_equal(listed, eng->bodies.live);
	assert_non_null(tc_node_find_locked(eng, pads[0])->body);
	assert_int_equal(tc_node_find_locked(eng, pads[0])->body->nopen, 1);
	tc_unlock(eng);
	assert_int_equal(tc_release(f), 0);
	forget_all(fx, pads, PADS);
	/* Nothing holds them: their nodes and bodies are gone; the root's
	 * node stays, held as the kernel holds it. */
	tc_lock(eng);
	nodes = eng->nodes.count;
	idle = eng->bodies.live;
	tc_unlock(eng);
	assert_int_equal(nodes, 1);
	assert_true(idle <= 1);
	assert_null(find(eng, pads[1]));
}

static void test_busy_bodies_stay(void **state)
{
	struct tcu *fx = *state;
	struct tc_engine *eng = fx->eng;
	uint64_t pads[3 * CAP], w, u;
	struct tc_file *fw, *fu;
	struct tc_inode row;
	struct tc_attr a;

	limit_cache(eng, CAP);
	hold_pads(fx, pads, 3 * CAP);
	tcu_put(fx, "w", "old");
	tcu_put(fx, "u", "gone soon");
	w = tcu_ino_at(eng, TC_ROOT_INO, "w");
	u = tcu_ino_at(eng, TC_ROOT_INO, "u");

	/* Dirty state without a close, and an unlinked open file. */
	assert_int_equal(tc_open(eng, w, O_WRONLY, &fw), 0);
	assert_int_equal(tc_write(fw, "newer", 5, 0), 5);
	assert_int_equal(tc_open(eng, u, O_RDONLY, &fu), 0);
	assert_int_equal(tc_unlink(eng, TC_ROOT_INO, "u"), 0);
	churn(fx, pads, 3 * CAP);
	assert_true(has_body(eng, w));
	assert_true(has_body(eng, u));
	assert_int_equal(tc_getattr(eng, w, &a), 0);
	assert_int_equal(a.st.st_size, 5);
	assert_int_equal(tc_getattr(eng, u, &a), 0);
	assert_int_equal(a.st.st_nlink, 0);

	assert_int_equal(tc_release(fw), 0);
	assert_int_equal(tc_release(fu), 0);
	/* The unlinked file's row went with its last reference. */
	assert_null(find(eng, u));
	assert_int_equal(tcu_row(eng, u, &row), -ENOENT);
	tcu_assert_value(fx, "w", "newer");
	forget_all(fx, pads, 3 * CAP);
}

/* A getattr that meets a publish in progress. */
struct attr_race {
	struct tc_engine *eng;
	uint64_t ino;
	struct tc_attr a;
	int rc;
	pid_t tid;
};

static void *getattr_thread(void *arg)
{
	struct attr_race *r = arg;

	__atomic_store_n(&r->tid, (pid_t)syscall(SYS_gettid), __ATOMIC_RELEASE);
	r->rc = tc_getattr(r->eng, r->ino, &r->a);
	return NULL;
}

/* True once thread @tid sleeps (waits on a lock). */
static bool thread_sleeps(pid_t tid)
{
	char path[64], buf[512], *p;
	ssize_t k;
	int fd;

	snprintf(path, sizeof(path), "/proc/self/task/%d/stat", (int)tid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return false;
	k = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (k <= 0)
		return false;
	buf[k] = '\0';
	p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] == 'S';
}

/* A getattr waiting while a publish moves dirty state into the row sees
 * one side of it, never the row from before and no dirty state (size 0). */
static void test_getattr_during_publish(void **state)
{
	struct tcu *fx = *state;
	struct tc_engine *eng = fx->eng;
	struct attr_race r = { .eng = eng };
	struct timespec t0, t;
	struct tc_file *f;
	struct tc_node *n;
	pthread_t th;

	tcu_put(fx, "k", "");
	r.ino = tcu_ino_at(eng, TC_ROOT_INO, "k");
	assert_int_equal(tc_open(eng, r.ino, O_WRONLY, &f), 0);
	assert_int_equal(tc_write(f, "twelve bytes", 12, 0), 12);
	n = f->node;
	/* Hold the node's lock as a publish does, let the reader block on
	 * it, then publish. */
	tc_mutex_lock(&n->body->lock);
	assert_int_equal(pthread_create(&th, NULL, getattr_thread, &r), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		pid_t tid = __atomic_load_n(&r.tid, __ATOMIC_ACQUIRE);

		if (tid && thread_sleeps(tid))
			break;
		clock_gettime(CLOCK_MONOTONIC, &t);
		assert_true(t.tv_sec - t0.tv_sec < 10);
		sched_yield();
	}
	assert_int_equal(tc_content_publish_nlocked(eng, n, false), 0);
	tc_mutex_unlock(&n->body->lock);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_int_equal(r.rc, 0);
	assert_int_equal(r.a.st.st_size, 12);
	assert_int_equal(tc_release(f), 0);
	tcu_assert_value(fx, "k", "twelve bytes");
}

/* A rolled-back drop of a node held without a body: the drop loads it
 * (its zero links keep it), the rollback reads the row back. */
static void test_rollback_reloads_dropped_body(void **state)
{
	struct tcu *fx = *state;
	struct tc_engine *eng = fx->eng;
	uint64_t pads[3 * CAP], ino;
	struct tc_node *n;
	struct tc_attr a;

	limit_cache(eng, CAP);
	hold_pads(fx, pads, 3 * CAP);
	tcu_put(fx, "k", "v");
	assert_int_equal(tc_lookup(eng, TC_ROOT_INO, "k", &a), 0);
	ino = a.st.st_ino;
	churn(fx, pads, 3 * CAP);
	assert_false(has_body(eng, ino));

	tc_lock(eng);
	assert_int_equal(tc_txn_begin_locked(eng), 0);
	assert_int_equal(tc_node_drop_locked(eng, ino, NULL), 0);
	n = tc_node_find_locked(eng, ino);
	assert_non_null(n->body);
	assert_int_equal(n->body->meta.nlink, 0);
	assert_true(tc_nbody_busy(n));
	tc_txn_rollback_locked(eng);
	assert_int_equal(n->body->meta.nlink, 1);
	tc_unlock(eng);

	churn(fx, pads, 3 * CAP);
	assert_int_equal(tc_getattr(eng, ino, &a), 0);
	assert_int_equal(a.st.st_nlink, 1);
	tcu_assert_value(fx, "k", "v");
	tc_forget(eng, ino, 1);
	forget_all(fx, pads, 3 * CAP);
}

/* Lose the open group as SQLite does when it ends a transaction itself,
 * and let the commit path bring the nodes back in line. */
static void lose_group(struct tc_engine *eng)
{
	struct tc_inval_list inv = {0};

	tc_lock(eng);
	assert_int_equal(tc_txn_begin_locked(eng), 0);
	tc_index_rollback(&eng->ix);
	tc_txn_rollback_locked(eng);
	assert_true(eng->lost_pending);
	(void)!tc_commit_locked(eng, &inv);
	assert_false(eng->lost_pending);
	eng->committer_running = false;
	tc_unlock(eng);
	tc_inval_deliver(eng, &inv);
}

static void test_lost_group_reloads_nodes(void **state)
{
	struct tcu *fx = *state;
	struct tc_engine *eng = fx->eng;
	uint64_t pads[3 * CAP], k, p, gone, kept;
	struct stat st = {.st_mode = 0600};
	struct tc_inode root;
	struct tc_file *f, *fk;
	struct tc_attr a;

	limit_cache(eng, CAP);
	hold_pads(fx, pads, 3 * CAP);
	tcu_put(fx, "k", "v");
	tcu_put(fx, "p", "published before");
	assert_int_equal(tc_lookup(eng, TC_ROOT_INO, "k", &a), 0);
	k = a.st.st_ino;
	assert_int_equal(tc_lookup(eng, TC_ROOT_INO, "p", &a), 0);
	p = a.st.st_ino;

	/* From here operations join one group that is not committed (as
	 * with a committer thread that has not run yet). */
	assert_int_equal(tcu_row(eng, TC_ROOT_INO, &root), 0);
	tcu_advance(fx, TCU_SEC);
	tc_lock(eng);
	eng->committer_running = true;
	tc_unlock(eng);
	assert_int_equal(tc_setattr(eng, k, &st, TC_SET_MODE, NULL, &a), 0);
	tcu_put(fx, "p", "published in the lost group");
	assert_int_equal(tc_create(eng, TC_ROOT_INO, "gone", 0644, O_WRONLY,
				   &fx->ctx, &a, &f),
			 0);
	gone = a.st.st_ino;
	assert_int_equal(tc_release(f), 0);
	assert_int_equal(tc_create(eng, TC_ROOT_INO, "kept", 0644, O_WRONLY,
				   &fx->ctx, &a, &fk),
			 0);
	kept = a.st.st_ino;
	churn(fx, pads, 3 * CAP);
	assert_false(has_body(eng, k));
	assert_false(has_body(eng, p));
	assert_false(has_body(eng, gone));
	assert_true(has_body(eng, kept));

	lose_group(eng);

	/* The root's times, queued by the creates, went with the group. */
	assert_int_equal(tc_getattr(eng, TC_ROOT_INO, &a), 0);
	assert_int_equal((int64_t)a.st.st_mtim.tv_sec * TCU_SEC +
				 a.st.st_mtim.tv_nsec,
			 root.mtime);
	/* Rows as committed: the chmod and the publish are undone. */
	assert_int_equal(tc_getattr(eng, k, &a), 0);
	assert_int_equal(a.st.st_mode, S_IFREG | 0644);
	tcu_assert_value(fx, "p", "published before");
	/* The creations are lost: without a body there is no row to load,
	 * with one (an open handle) it has no links and reports the error
	 * once. */
	assert_int_equal(tc_getattr(eng, gone, &a), -ENOENT);
	assert_int_equal(tc_getattr(eng, kept, &a), 0);
	assert_int_equal(a.st.st_nlink, 0);
	assert_int_equal(tc_flush(fk), -EIO);
	assert_int_equal(tc_flush(fk), 0);
	assert_int_equal(tc_release(fk), 0);
	/* The publish the group held reports it at the next writer's close. */
	assert_int_equal(tc_open(eng, p, O_WRONLY, &f), 0);
	assert_int_equal(tc_flush(f), -EIO);
	assert_int_equal(tc_release(f), 0);
	assert_false(tcu_present(fx, "gone"));
	assert_false(tcu_present(fx, "kept"));

	tc_forget(eng, k, 1);
	tc_forget(eng, p, 1);
	tc_forget(eng, gone, 1);
	tc_forget(eng, kept, 1);
	assert_null(find(eng, gone));
	assert_null(find(eng, kept));
	forget_all(fx, pads, 3 * CAP);
}

/* readdirplus hands the kernel references without loading rows. */
static int count_entry(void *ctx, const char *name, const struct tc_attr *a,
		       uint64_t off)
{
	(void)name;
	(void)a;
	(void)off;
	(*(int *)ctx)++;
	return 0;
}

static void test_readdirplus_holds_without_bodies(void **state)
{
	struct tcu *fx = *state;
	struct tc_engine *eng = fx->eng;
	uint64_t loads, ino[5];
	int seen = 0;

	for (int i = 0; i < 5; i++) {
		char name[8];
		snprintf(name, sizeof(name), "e%d", i);
		tcu_put(fx, name, "x");
		ino[i] = tcu_ino_at(eng, TC_ROOT_INO, name);
	}
	loads = body_loads(eng);
	assert_int_equal(
	    tc_readdir(eng, TC_ROOT_INO, 0, true, count_entry, &seen), 0);
	assert_true(seen >= 5);
	/* At most the directory's own body was loaded. */
	assert_true(body_loads(eng) <= loads + 1);
	loads = body_loads(eng);
	for (int i = 0; i < 5; i++) {
		struct tc_attr a;
		assert_false(has_body(eng, ino[i]));
		assert_int_equal(tc_getattr(eng, ino[i], &a), 0);
		assert_int_equal(a.st.st_size, 1);
		tc_forget(eng, ino[i], 1);
		assert_null(find(eng, ino[i]));
	}
	/* One load per getattr. */
	assert_int_equal(body_loads(eng), loads + 5);
}

/* The node table holds the root as the kernel does: creates in the root
 * do not read its row again each time (a new file's body is the row it
 * wrote, so no body is loaded at all). */
static void test_root_stays_loaded(void **state)
{
	struct tcu *fx = *state;
	struct tc_engine *eng = fx->eng;
	struct tc_node *root;
	uint64_t loads, nlookup;

	tcu_put(fx, "first", "1");
	tc_lock(eng);
	loads = eng->bodies.loads;
	tc_unlock(eng);
	for (int i = 0; i < 10; i++) {
		char name[16];

		snprintf(name, sizeof(name), "k%d", i);
		tcu_put(fx, name, "v");
	}
	tc_lock(eng);
	root = tc_node_find_locked(eng, TC_ROOT_INO);
	nlookup = root ? root->nlookup : 0;
	loads = eng->bodies.loads - loads;
	tc_unlock(eng);
	assert_int_equal(nlookup, 1);
	assert_int_equal(loads, 0);
}

/* The body of a node is its row, field by field. */
static void assert_body_is_row(struct tc_engine *eng, uint64_t ino)
{
	struct tc_inode row, m;
	struct tc_node *n;

	assert_int_equal(tcu_row(eng, ino, &row), 0);
	tc_lock(eng);
	n = tc_node_find_locked(eng, ino);
	assert_non_null(n);
	assert_non_null(n->body);
	m = n->body->meta;
	tc_unlock(eng);
	assert_int_equal(m.ino, row.ino);
	assert_int_equal(m.mode, row.mode);
	assert_int_equal(m.uid, row.uid);
	assert_int_equal(m.gid, row.gid);
	assert_int_equal(m.nlink, row.nlink);
	assert_int_equal(m.rdev, row.rdev);
	assert_int_equal(m.size, row.size);
	assert_int_equal(m.atime, row.atime);
	assert_int_equal(m.mtime, row.mtime);
	assert_int_equal(m.ctime, row.ctime);
	assert_int_equal(m.hash_set, row.hash_set);
	if (m.hash_set)
		assert_memory_equal(m.hash, row.hash, TC_HASH_LEN);
	assert_int_equal(m.ttl, row.ttl);
	assert_int_equal(m.ttl_mode, row.ttl_mode);
	assert_int_equal(m.dttl, row.dttl);
	assert_int_equal(m.dttl_mode, row.dttl_mode);
	assert_int_equal(m.expires, row.expires);
	assert_string_equal(m.schema, row.schema);
	assert_int_equal(m.lru, row.lru);
	assert_int_equal(m.nchunks, row.nchunks);
	assert_null(m.target);
}

/* A create builds the node's body from the row it wrote, without reading
 * it back: what it holds must be what a read would give. */
static void test_created_body_is_its_row(void **state)
{
	struct tcu *fx = *state;
	struct tc_attr a;
	struct tc_file *f;
	uint64_t d;

	d = tcu_mkdir_at(fx, TC_ROOT_INO, "d");
	assert_int_equal(tc_setxattr(fx->eng, d, TC_XATTR_PREFIX "ttl", "1h", 2,
				     0),
			 0);
	assert_int_equal(tc_setxattr(fx->eng, d, TC_XATTR_PREFIX "schema", "v2",
				     2, 0),
			 0);
	assert_int_equal(tc_create(fx->eng, d, "f", S_IFREG | 0640, O_WRONLY,
				   &fx->ctx, &a, &f),
			 0);
	assert_body_is_row(fx->eng, a.st.st_ino);
	assert_int_equal(tc_release(f), 0);
	tc_forget(fx->eng, a.st.st_ino, 1);

	assert_int_equal(tc_symlink(fx->eng, d, "l", "f", &fx->ctx, &a), 0);
	assert_body_is_row(fx->eng, a.st.st_ino);
	tc_forget(fx->eng, a.st.st_ino, 1);
	assert_int_equal(tc_mknod(fx->eng, d, "sub", S_IFDIR | 0700, 0,
				  &fx->ctx, &a),
			 0);
	assert_body_is_row(fx->eng, a.st.st_ino);
	tc_forget(fx->eng, a.st.st_ino, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, tcu_setup, tcu_teardown)
	    T(test_get_pin_unpin_release),
	    T(test_lookup_and_open_keep_node),
	    T(test_unlinked_row_purged_at_last_reference),
	    T(test_drop_live_node),
	    T(test_table_grows),
	    T(test_drop_orphans),
	    T(test_atime_batch),
	    T(test_inval_collect_and_deliver),
	    T(test_body_evicted_and_reloaded),
	    T(test_body_cache_bounded),
	    T(test_busy_bodies_stay),
	    T(test_rollback_reloads_dropped_body),
	    T(test_lost_group_reloads_nodes),
	    T(test_readdirplus_holds_without_bodies),
	    T(test_getattr_during_publish),
	    T(test_created_body_is_its_row),
	    T(test_root_stays_loaded),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
