/* SPDX-License-Identifier: MIT */
/*
 * Node bodies: the part of a node (node.c) that exists only while needed,
 * and the bounded cache that keeps idle ones.
 *
 * The kernel may hold a lookup reference on every name of a large tree
 * (1,000,000 after a find(1) or an rsync), and the node table must keep a
 * node for each: the inode number, the lookup count, the generations that
 * decide whether the kernel's pages are still good. Everything else a node
 * carries (the copy of its row, its handle counts, the mutex of its data,
 * its dirty state and loaded content, about 330 bytes) is its body, which
 * only a node in use needs. So a body exists while its node is pinned or
 * open, has dirty state, waits in the access-time batch, or has no link
 * left (the row and blob go when the node leaves the table, and the body's
 * copy says so); the body of an idle node stays in a cache of
 * TC_NBODY_CACHE slots, so that a getattr or open of a file used recently
 * does not reach SQLite, and is read again from the index when evicted.
 *
 * The cache is a clock (SQLite pcache1 skips pinned pages the same way;
 * memcached and Redis age items with a bit, not a relinked list): a body
 * takes a slot when it is loaded, and keeps it while busy; a pin sets its
 * reference bit. Loading a body advances the hand at most TC_NBODY_PROBE
 * slots: a busy body is skipped, a used one loses its bit, the first idle
 * unused one is evicted and its slot taken. When the probe finds none, the
 * new body stays outside the slots and is freed as soon as it is idle
 * (tc_nbody_idle_locked(), called by node.c whenever a reference goes), so
 * idle bodies never exceed the slots, and a scan of many names does not
 * push out a working set whose bits are set.
 *
 * Every body is also on one list (eng->bodies.all), which the maintenance
 * round walks for content and dirty state without handles: its cost is
 * that of the bodies, not of every name the kernel holds.
 *
 * The index is the truth for every field of a body except those that make
 * it busy: the batched access times (node.c writes them before the body
 * may go) and a dropped entry's link count. Callers under the engine lock
 * hold body pointers only of nodes they pinned: loading a body may evict
 * any idle one. Called by node.c only; calls index.c, ram.c, base.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine_i.h"

/*
 * Slots one load looks at for a victim: a bound on the cost of a load
 * when most slots are busy (thousands of open files), while 128 slots
 * whose bits a hot working set keeps set still leave a free one to the
 * next load after a few loads.
 */
#define TC_NBODY_PROBE 128

int tc_nbody_cache_init(struct tc_nbody_cache *c, uint32_t cap)
{
	memset(c, 0, sizeof(*c));
	c->slots = calloc(cap ? cap : 1, sizeof(*c->slots));
	if (!c->slots)
		return -ENOMEM;
	c->cap = cap ? cap : 1;
	return 0;
}

void tc_nbody_cache_free(struct tc_nbody_cache *c)
{
	free(c->slots);
	c->slots = NULL;
}

void tc_node_content_unref(struct tc_content *c)
{
	if (!c || atomic_fetch_sub(&c->refs, 1) != 1)
		return;
	tc_ram_unref(c->ram);
	if (c->fd >= 0)
		close(c->fd);
	for (size_t i = 0; i < c->nchunks; i++) {
		tc_ram_unref(c->chunks[i].ram);
		if (c->chunks[i].fd >= 0)
			close(c->chunks[i].fd);
	}
	if (c->chunks)
		pthread_mutex_destroy(&c->lock);
	free(c->chunks);
	free(c);
}

bool tc_nbody_busy(const struct tc_node *n)
{
	const struct tc_nbody *b = n->body;

	return n->pins || b->nopen || b->dirty || b->atime_pending ||
	       b->row_pending || b->meta.nlink == 0;
}

void tc_nbody_free_locked(struct tc_engine *eng, struct tc_node *n)
{
	struct tc_nbody *b = n->body;

	TC_ASSERT_LOCKED(eng);
	if (!b)
		return;
	assert(!b->dirty);
	if (b->slot != TC_NBODY_UNCACHED)
		eng->bodies.slots[b->slot] = NULL;
	if (b->prev)
		b->prev->next = b->next;
	else
		eng->bodies.all = b->next;
	if (b->next)
		b->next->prev = b->prev;
	tc_node_content_unref(b->content);
	tc_mutex_destroy(&b->lock);
	free(b);
	n->body = NULL;
	eng->bodies.live--;
}

void tc_nbody_idle_locked(struct tc_engine *eng, struct tc_node *n)
{
	TC_ASSERT_LOCKED(eng);
	if (n->body && n->body->slot == TC_NBODY_UNCACHED && !tc_nbody_busy(n))
		tc_nbody_free_locked(eng, n);
}

/* Give @n's new body a slot, evicting an idle unused body; it stays
 * uncached when the probe finds none. */
static void cache_insert_locked(struct tc_engine *eng, struct tc_node *n)
{
	struct tc_nbody_cache *c = &eng->bodies;

	for (int i = 0; i < TC_NBODY_PROBE; i++) {
		uint32_t at = c->hand;
		struct tc_node *x = c->slots[at];

		c->hand = at + 1 < c->cap ? at + 1 : 0;
		if (x) {
			if (tc_nbody_busy(x))
				continue;
			if (x->body->used) {
				x->body->used = false;
				continue;
			}
			tc_nbody_free_locked(eng, x);
		}
		c->slots[at] = n;
		n->body->slot = at;
		return;
	}
}

int tc_nbody_load_locked(struct tc_engine *eng, struct tc_node *n)
{
	return tc_nbody_attach_locked(eng, n, NULL);
}

int tc_nbody_attach_locked(struct tc_engine *eng, struct tc_node *n,
			   const struct tc_inode *row)
{
	struct tc_nbody *b;
	int rc;

	TC_ASSERT_LOCKED(eng);
	if (n->body) {
		n->body->used = true;
		return 0;
	}
	b = calloc(1, sizeof(*b));
	if (!b)
		return -ENOMEM;
	if (row) {
		b->meta = *row;
	} else {
		rc = tc_index_inode_get(&eng->ix, n->ino, &b->meta);
		if (rc) {
			free(b);
			return rc;
		}
		eng->bodies.loads++;
	}
	b->slot = TC_NBODY_UNCACHED;
	b->used = true;
	tc_mutex_init(&b->lock);
	b->node = n;
	b->next = eng->bodies.all;
	if (b->next)
		b->next->prev = b;
	eng->bodies.all = b;
	n->body = b;
	eng->bodies.live++;
	cache_insert_locked(eng, n);
	return 0;
}

int tc_nbody_cache_limit_locked(struct tc_engine *eng, uint32_t cap)
{
	struct tc_nbody_cache *c = &eng->bodies;
	struct tc_node **v;

	TC_ASSERT_LOCKED(eng);
	if (!cap)
		cap = 1;
	for (uint32_t i = cap; i < c->cap; i++) {
		struct tc_node *x = c->slots[i];
		if (!x)
			continue;
		c->slots[i] = NULL;
		x->body->slot = TC_NBODY_UNCACHED;
		tc_nbody_idle_locked(eng, x);
	}
	v = realloc(c->slots, cap * sizeof(*v));
	if (!v && cap > c->cap)
		return -ENOMEM;
	if (v)
		c->slots = v;
	for (uint32_t i = c->cap; i < cap; i++)
		c->slots[i] = NULL;
	c->cap = cap;
	if (c->hand >= cap)
		c->hand = 0;
	return 0;
}
