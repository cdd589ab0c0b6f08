/* SPDX-License-Identifier: MIT */
/*
 * The node table's storage: where the struct tc_node of every inode the
 * kernel holds lives, and how one is found by inode number. node.c decides
 * when a node comes and goes; this file only keeps them.
 *
 * The table is sized for the case that matters: a kernel holding a million
 * names, nearly all of them idle (no body, no pin), so the bytes per node
 * are the daemon's memory. Two choices keep them low:
 *
 *   - Nodes live in slabs of TC_NTAB_SLAB, never in a malloc chunk each: no
 *     allocator header and no rounding (a 40-byte node used 48 or 64
 *     bytes), and a node never moves, so a struct tc_node * stays valid
 *     until tc_ntab_free(). A freed node goes on a free list threaded
 *     through the slabs (its ino holds the next free number) and is the
 *     first one reused. Slabs are not given back: the table keeps its peak,
 *     as malloc would.
 *   - The index is open addressing with linear probing over 32-bit node
 *     numbers (the slab position + 1; 0 is an empty slot), no chain
 *     pointer in the node: 4 bytes per slot, at most 3/4 full, so 5 to 11
 *     bytes per node. Removal shifts the rest of the probe run back
 *     (backward-shift deletion), so there are no tombstones and a search
 *     ends at the first empty slot.
 *
 * A probe reads the node to compare its ino: one cache miss per probe,
 * about one probe per lookup at this load. The callers hold eng->lock;
 * nothing here locks.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine_i.h"

/* Slots of a new table: small stores stay small. */
#define NTAB_MIN_SLOTS 1024

/* Fibonacci hashing of the inode number: consecutive numbers (the common
 * case) spread over the whole table. */
static size_t home(const struct tc_ntab *t, uint64_t ino)
{
	return (size_t)((ino * UINT64_C(0x9E3779B97F4A7C15)) >> t->shift);
}

static struct tc_node *at(const struct tc_ntab *t, uint32_t num)
{
	uint32_t i = num - 1;

	return &t->slabs[i / TC_NTAB_SLAB][i % TC_NTAB_SLAB];
}

int tc_ntab_init(struct tc_ntab *t)
{
	memset(t, 0, sizeof(*t));
	t->slots = calloc(NTAB_MIN_SLOTS, sizeof(*t->slots));
	if (!t->slots)
		return -ENOMEM;
	t->mask = NTAB_MIN_SLOTS - 1;
	t->shift = 64 - 10;
	return 0;
}

void tc_ntab_fini(struct tc_ntab *t)
{
	for (size_t i = 0; i < t->nslabs; i++)
		free(t->slabs[i]);
	free(t->slabs);
	free(t->slots);
	memset(t, 0, sizeof(*t));
}

struct tc_node *tc_ntab_find(const struct tc_ntab *t, uint64_t ino)
{
	for (size_t i = home(t, ino);; i = (i + 1) & t->mask) {
		uint32_t num = t->slots[i];
		struct tc_node *n;

		if (!num)
			return NULL;
		n = at(t, num);
		if (n->ino == ino)
			return n;
	}
}

static void place(struct tc_ntab *t, uint32_t num)
{
	size_t i = home(t, at(t, num)->ino);

	while (t->slots[i])
		i = (i + 1) & t->mask;
	t->slots[i] = num;
}

/* Twice the slots, everything placed again. Fails only for memory. */
static int grow(struct tc_ntab *t)
{
	size_t old = t->mask + 1;
	uint32_t *ov = t->slots, *v = calloc(2 * old, sizeof(*v));

	if (!v)
		return -ENOMEM;
	t->slots = v;
	t->mask = 2 * old - 1;
	t->shift--;
	for (size_t i = 0; i < old; i++)
		if (ov[i])
			place(t, ov[i]);
	free(ov);
	return 0;
}

/* A free node number, its node zeroed, or 0 for want of memory. */
static uint32_t take_num(struct tc_ntab *t)
{
	uint32_t num;

	if (t->free) {
		num = t->free;
		t->free = (uint32_t)at(t, num)->ino;
	} else {
		if (t->used == UINT32_MAX - 1)
			return 0;
		if (t->used % TC_NTAB_SLAB == 0) {
			size_t k = t->used / TC_NTAB_SLAB;
			struct tc_node *s, **v;

			if (k == t->nslabs) {
				v = realloc(t->slabs, (k + 1) * sizeof(*v));
				if (!v)
					return 0;
				t->slabs = v;
				s = malloc(TC_NTAB_SLAB * sizeof(*s));
				if (!s)
					return 0;
				t->slabs[k] = s;
				t->nslabs = k + 1;
			}
		}
		num = ++t->used;
	}
	memset(at(t, num), 0, sizeof(struct tc_node));
	return num;
}

struct tc_node *tc_ntab_add(struct tc_ntab *t, uint64_t ino)
{
	uint32_t num;

	/* Keep a quarter free; a table that cannot grow still takes nodes
	 * while one slot stays empty (every search ends at one). */
	if ((t->count + 1) * 4 > (t->mask + 1) * 3 && grow(t) &&
	    t->count + 1 >= t->mask + 1)
		return NULL;
	num = take_num(t);
	if (!num)
		return NULL;
	at(t, num)->ino = ino;
	place(t, num);
	t->count++;
	return at(t, num);
}

/* Is slot @k, holding a node whose home is @h, movable back into the
 * hole at @i (that is: @h is not cyclically within (i, k])? */
static bool can_fill(size_t i, size_t k, size_t h)
{
	return i <= k ? (h <= i || h > k) : (h <= i && h > k);
}

uint32_t tc_ntab_unlink(struct tc_ntab *t, struct tc_node *n)
{
	size_t i = home(t, n->ino), k;
	uint32_t num;

	while (at(t, t->slots[i]) != n)
		i = (i + 1) & t->mask;
	num = t->slots[i];
	for (k = (i + 1) & t->mask; t->slots[k]; k = (k + 1) & t->mask) {
		if (can_fill(i, k, home(t, at(t, t->slots[k])->ino))) {
			t->slots[i] = t->slots[k];
			i = k;
		}
	}
	t->slots[i] = 0;
	t->count--;
	return num;
}

void tc_ntab_free(struct tc_ntab *t, uint32_t num)
{
	struct tc_node *n = at(t, num);

	n->body = NULL;
	n->ino = t->free;
	t->free = num;
}

struct tc_node *tc_ntab_next(const struct tc_ntab *t, size_t *pos)
{
	while (*pos <= t->mask) {
		uint32_t num = t->slots[(*pos)++];
		if (num)
			return at(t, num);
	}
	return NULL;
}
