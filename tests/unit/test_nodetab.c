/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the node table's storage (engine/nodetab.c), on its own:
 * no engine, no lock. A random sequence of adds, unlinks, frees and finds
 * is checked against a model (which inode numbers are in, and at which
 * address each node was handed out) after every step, through several
 * growths of the index and with the free list reused; iteration visits
 * every node exactly once; the slabs stay at the peak count of nodes.
 */
#include <stdlib.h>
#include <string.h>

#include "engine_i.h"
#include "util.h"

/* xorshift64*: the same sequence on every run. */
static uint64_t rnd(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * UINT64_C(2685821657736338717);
}

/* Inode numbers of the model: dense ones (as the engine hands out) and
 * sparse ones (large, and multiples that collide in a small index). */
static uint64_t ino_of(size_t i)
{
	return i % 3 == 0 ? (uint64_t)i + 2
			  : (i % 3 == 1 ? (uint64_t)i << 20 : UINT64_MAX - i);
}

static void check_all(const struct tc_ntab *t, struct tc_node **model,
		      size_t pool, size_t count)
{
	size_t seen = 0, pos = 0;
	struct tc_node *n;

	assert_int_equal(t->count, count);
	for (size_t i = 0; i < pool; i++) {
		n = tc_ntab_find(t, ino_of(i));
		assert_ptr_equal(n, model[i]);
		if (n) {
			assert_int_equal(n->ino, ino_of(i));
			/* What the owner wrote in it survived every move of
			 * the index. */
			assert_int_equal(n->data_gen, (uint32_t)i * 7 + 1);
		}
	}
	while ((n = tc_ntab_next(t, &pos))) {
		assert_int_equal(n->pins, 0);
		n->pins = 1; /* visited */
		seen++;
	}
	assert_int_equal(seen, count);
	pos = 0;
	while ((n = tc_ntab_next(t, &pos)))
		n->pins = 0;
}

static void test_against_model(void **state)
{
	enum { POOL = 6000, STEPS = 60000 };
	static struct tc_node *model[POOL];
	struct tc_ntab t;
	uint64_t seed = 0x1234567;
	size_t count = 0, peak = 0, grown = 0, last_slots;

	(void)state;
	memset(model, 0, sizeof(model));
	assert_int_equal(tc_ntab_init(&t), 0);
	last_slots = t.mask + 1;
	for (int step = 0; step < STEPS; step++) {
		size_t i = (size_t)(rnd(&seed) % POOL);
		/* Mostly adds at first, then as many unlinks as adds. */
		bool add = rnd(&seed) % 100 < (step < STEPS / 3 ? 80 : 50);

		if (!model[i] && add) {
			struct tc_node *n = tc_ntab_add(&t, ino_of(i));

			assert_non_null(n);
			assert_int_equal(n->ino, ino_of(i));
			assert_null(n->body);
			assert_int_equal(n->nlookup, 0);
			n->data_gen = (uint32_t)i * 7 + 1;
			model[i] = n;
			count++;
		} else if (model[i] && !add) {
			uint32_t num = tc_ntab_unlink(&t, model[i]);

			/* Out of the index, still readable until freed. */
			assert_null(tc_ntab_find(&t, ino_of(i)));
			assert_int_equal(model[i]->ino, ino_of(i));
			tc_ntab_free(&t, num);
			model[i] = NULL;
			count--;
		} else {
			assert_ptr_equal(tc_ntab_find(&t, ino_of(i)), model[i]);
		}
		if (count > peak)
			peak = count;
		if (t.mask + 1 != last_slots) {
			grown++;
			last_slots = t.mask + 1;
			check_all(&t, model, POOL, count);
		}
		/* Never more than 3/4 full. */
		assert_true(t.count * 4 <= (t.mask + 1) * 3);
		if (step % 5000 == 0)
			check_all(&t, model, POOL, count);
	}
	check_all(&t, model, POOL, count);
	assert_true(grown >= 2);
	/* Freed numbers are reused: the slabs hold the peak, no more. */
	assert_int_equal(t.nslabs, (peak + TC_NTAB_SLAB - 1) / TC_NTAB_SLAB);
	/* Absent numbers are not found. */
	assert_null(tc_ntab_find(&t, 1));
	assert_null(tc_ntab_find(&t, UINT64_MAX - POOL - 1));
	tc_ntab_fini(&t);
}

/* Unlinking every node in slot order, the way an unmount does (take the
 * node at a slot until the slot is empty), empties the table: the nodes
 * that backward-shift deletion moves are never skipped. */
static void test_drain_in_slot_order(void **state)
{
	enum { N = 5000 };
	struct tc_ntab t;
	size_t drained = 0;

	(void)state;
	assert_int_equal(tc_ntab_init(&t), 0);
	for (size_t i = 0; i < N; i++)
		assert_non_null(tc_ntab_add(&t, ino_of(i)));
	for (size_t b = 0; b <= t.mask; b++) {
		while (t.slots[b]) {
			size_t pos = b;
			struct tc_node *n = tc_ntab_next(&t, &pos);

			tc_ntab_free(&t, tc_ntab_unlink(&t, n));
			drained++;
		}
	}
	assert_int_equal(drained, N);
	assert_int_equal(t.count, 0);
	for (size_t i = 0; i < N; i++)
		assert_null(tc_ntab_find(&t, ino_of(i)));
	tc_ntab_fini(&t);
}

/* A node costs its 40 bytes in a slab plus at most 11 bytes of index. */
static void test_bytes_per_node(void **state)
{
	enum { N = 100000 };
	struct tc_ntab t;
	size_t bytes;

	(void)state;
	assert_int_equal(tc_ntab_init(&t), 0);
	for (size_t i = 0; i < N; i++)
		assert_non_null(tc_ntab_add(&t, (uint64_t)i + 2));
	bytes = t.nslabs * TC_NTAB_SLAB * sizeof(struct tc_node) +
		(t.mask + 1) * sizeof(*t.slots);
	assert_true(bytes <= (size_t)N * 52);
	tc_ntab_fini(&t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_against_model),
		cmocka_unit_test(test_drain_in_slot_order),
		cmocka_unit_test(test_bytes_per_node),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
