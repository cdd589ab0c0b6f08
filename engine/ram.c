/* SPDX-License-Identifier: MIT */
/*
 * The RAM tier: contents kept in process memory, keyed by their XXH3-128
 * hash (so identical contents are held once here too), bounded by bytes and
 * by item count, evicted least recently used.
 *
 * Structure: a chained hash table (power-of-two buckets, grown at load 1)
 * plus an intrusive doubly linked LRU list; lookup, insert, touch and evict
 * are O(1). One mutex guards both; a hit holds it for a hash probe, a
 * reference increment and (at most once per RAM_TOUCH_NS per item) an LRU
 * relink, so hold times stay tiny. Items are reference counted: the table
 * holds one reference, every open handle that reads the content one more
 * (a pin). Eviction skips pinned items (SQLite pcache1's PAGE_IS_PINNED), so
 * memory is reclaimed only from unpinned ones; an item dropped from the
 * table while pinned is freed by its last unref.
 *
 * Called by engine.c on open (get/promote), publish (insert) and by
 * maintenance (idle expiry).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine_i.h"

/*
 * A hit relinks its item at most this often: LRU order at a 1 ms
 * granularity costs nothing measurable in hit ratio, and spares hot items
 * constant pointer writes under the lock (memcached's ITEM_UPDATE_INTERVAL).
 */
#define RAM_TOUCH_NS INT64_C(1000000)

/* Initial bucket count; grows by doubling. */
#define RAM_MIN_BUCKETS 1024

struct tc_ram {
	struct tc_mutex lock;
	struct tc_ram_item **buckets; /* lock */
	size_t nbuckets;              /* lock */
	struct tc_ram_item *head;     /* most recently used; lock */
	struct tc_ram_item *tail;     /* least recently used; lock */
	uint64_t items, bytes;        /* lock */
	uint64_t limit_bytes, limit_items, max_item; /* lock */
	int64_t ttl_ns;               /* lock */
	int64_t min_item_ttl;         /* smallest per-item ttl set; lock */
	struct tc_counters *counters;
};

static size_t bucket_of(const struct tc_ram *ram, const uint8_t *hash)
{
	uint64_t h;

	memcpy(&h, hash, sizeof(h));
	return (size_t)(h & (ram->nbuckets - 1));
}

int tc_ram_open(struct tc_counters *counters, struct tc_ram **out)
{
	struct tc_ram *ram = calloc(1, sizeof(*ram));

	if (!ram)
		return -ENOMEM;
	ram->nbuckets = RAM_MIN_BUCKETS;
	ram->buckets = calloc(ram->nbuckets, sizeof(*ram->buckets));
	if (!ram->buckets) {
		free(ram);
		return -ENOMEM;
	}
	tc_mutex_init(&ram->lock);
	ram->counters = counters;
	*out = ram;
	return 0;
}

void tc_ram_unref(struct tc_ram_item *item)
{
	if (item && atomic_fetch_sub(&item->refs, 1) == 1)
		free(item);
}

void tc_ram_close(struct tc_ram *ram)
{
	struct tc_ram_item *it, *next;

	if (!ram)
		return;
	for (it = ram->head; it; it = next) {
		next = it->next;
		it->in_table = false;
		tc_ram_unref(it);
	}
	free(ram->buckets);
	tc_mutex_destroy(&ram->lock);
	free(ram);
}

void tc_ram_set_limits(struct tc_ram *ram, uint64_t bytes, uint64_t items,
		       uint64_t max_item, int64_t ttl_ns)
{
	tc_mutex_lock(&ram->lock);
	ram->limit_bytes = bytes;
	ram->limit_items = items;
	ram->max_item = max_item;
	ram->ttl_ns = ttl_ns;
	tc_mutex_unlock(&ram->lock);
}

static void lru_unlink_rlocked(struct tc_ram *ram, struct tc_ram_item *it)
{
	TC_ASSERT_HELD(&ram->lock);
	if (it->prev)
		it->prev->next = it->next;
	else
		ram->head = it->next;
	if (it->next)
		it->next->prev = it->prev;
	else
		ram->tail = it->prev;
	it->prev = it->next = NULL;
}

static void lru_push_head_rlocked(struct tc_ram *ram, struct tc_ram_item *it)
{
	TC_ASSERT_HELD(&ram->lock);
	it->prev = NULL;
	it->next = ram->head;
	if (ram->head)
		ram->head->prev = it;
	ram->head = it;
	if (!ram->tail)
		ram->tail = it;
}

static struct tc_ram_item *find_rlocked(struct tc_ram *ram, const uint8_t *hash)
{
	TC_ASSERT_HELD(&ram->lock);
	struct tc_ram_item *it = ram->buckets[bucket_of(ram, hash)];

	while (it && memcmp(it->hash, hash, TC_HASH_LEN) != 0)
		it = it->hnext;
	return it;
}

/* Unlink @it from table and list and drop the table's reference. */
static void remove_rlocked(struct tc_ram *ram, struct tc_ram_item *it)
{
	TC_ASSERT_HELD(&ram->lock);
	struct tc_ram_item **pp = &ram->buckets[bucket_of(ram, it->hash)];

	while (*pp != it)
		pp = &(*pp)->hnext;
	*pp = it->hnext;
	lru_unlink_rlocked(ram, it);
	it->in_table = false;
	ram->items--;
	ram->bytes -= it->size;
	tc_ram_unref(it);
}

static bool pinned(struct tc_ram_item *it)
{
	return atomic_load(&it->refs) > 1;
}

/* Evict unpinned items from the tail until the limits hold with @need
 * more bytes and @need_items more items. */
static void evict_rlocked(struct tc_ram *ram, uint64_t need, uint64_t need_items)
{
	TC_ASSERT_HELD(&ram->lock);
	struct tc_ram_item *it = ram->tail, *prev;

	while (it && ((ram->limit_bytes && ram->bytes + need > ram->limit_bytes) ||
		      (ram->limit_items &&
		       ram->items + need_items > ram->limit_items))) {
		prev = it->prev;
		if (!pinned(it)) {
			remove_rlocked(ram, it);
			atomic_fetch_add(&ram->counters->ram_evictions, 1);
		}
		it = prev;
	}
}

static void grow_rlocked(struct tc_ram *ram)
{
	TC_ASSERT_HELD(&ram->lock);
	size_t n = ram->nbuckets * 2;
	struct tc_ram_item **b = calloc(n, sizeof(*b));

	if (!b)
		return; /* keep the smaller table: slower, still correct */
	for (size_t i = 0; i < ram->nbuckets; i++) {
		struct tc_ram_item *it = ram->buckets[i], *next;
		for (; it; it = next) {
			uint64_t h;
			next = it->hnext;
			memcpy(&h, it->hash, sizeof(h));
			it->hnext = b[h & (n - 1)];
			b[h & (n - 1)] = it;
		}
	}
	free(ram->buckets);
	ram->buckets = b;
	ram->nbuckets = n;
}

struct tc_ram_item *tc_ram_get(struct tc_ram *ram, const uint8_t *hash,
			       int64_t now)
{
	struct tc_ram_item *it;

	tc_mutex_lock(&ram->lock);
	it = find_rlocked(ram, hash);
	if (it) {
		atomic_fetch_add(&it->refs, 1);
		if (now - it->last_access >= RAM_TOUCH_NS && it != ram->head) {
			lru_unlink_rlocked(ram, it);
			lru_push_head_rlocked(ram, it);
		}
		if (now > it->last_access)
			it->last_access = now;
	}
	tc_mutex_unlock(&ram->lock);
	return it;
}

struct tc_ram_item *tc_ram_alloc(size_t size)
{
	struct tc_ram_item *it = malloc(sizeof(*it) + size);

	if (!it)
		return NULL;
	memset(it, 0, sizeof(*it));
	it->size = size;
	atomic_init(&it->refs, 1);
	return it;
}

bool tc_ram_fits(struct tc_ram *ram, uint64_t size)
{
	bool fits;

	tc_mutex_lock(&ram->lock);
	fits = (!ram->max_item || size <= ram->max_item) &&
	       (!ram->limit_bytes || size <= ram->limit_bytes);
	tc_mutex_unlock(&ram->lock);
	return fits;
}

static void set_item_ttl_rlocked(struct tc_ram *ram, struct tc_ram_item *it,
				int64_t ttl_ns)
{
	TC_ASSERT_HELD(&ram->lock);
	if (ttl_ns < 0)
		return;
	it->ttl_ns = ttl_ns;
	if (ttl_ns > 0 && (!ram->min_item_ttl || ttl_ns < ram->min_item_ttl))
		ram->min_item_ttl = ttl_ns;
}

struct tc_ram_item *tc_ram_insert(struct tc_ram *ram, struct tc_ram_item *item,
				  int64_t now, int64_t ttl_ns)
{
	struct tc_ram_item *old;
	size_t b;

	tc_mutex_lock(&ram->lock);
	old = find_rlocked(ram, item->hash);
	if (old) {
		set_item_ttl_rlocked(ram, old, ttl_ns);
		atomic_fetch_add(&old->refs, 1);
		old->last_access = now;
		lru_unlink_rlocked(ram, old);
		lru_push_head_rlocked(ram, old);
		tc_mutex_unlock(&ram->lock);
		tc_ram_unref(item);
		return old;
	}
	if ((ram->max_item && item->size > ram->max_item) ||
	    (ram->limit_bytes && item->size > ram->limit_bytes)) {
		tc_mutex_unlock(&ram->lock);
		return item;
	}
	evict_rlocked(ram, item->size, 1);
	if (ram->items >= ram->nbuckets)
		grow_rlocked(ram);
	b = bucket_of(ram, item->hash);
	item->hnext = ram->buckets[b];
	ram->buckets[b] = item;
	item->in_table = true;
	item->last_access = now;
	item->ttl_ns = -1;
	set_item_ttl_rlocked(ram, item, ttl_ns);
	lru_push_head_rlocked(ram, item);
	ram->items++;
	ram->bytes += item->size;
	atomic_fetch_add(&item->refs, 1); /* the table's reference */
	tc_mutex_unlock(&ram->lock);
	return item;
}

bool tc_ram_contains(struct tc_ram *ram, const uint8_t *hash)
{
	bool found;

	tc_mutex_lock(&ram->lock);
	found = find_rlocked(ram, hash) != NULL;
	tc_mutex_unlock(&ram->lock);
	return found;
}

uint64_t tc_ram_expire(struct tc_ram *ram, int64_t now)
{
	struct tc_ram_item *it, *prev;
	uint64_t n = 0;

	int64_t floor;

	tc_mutex_lock(&ram->lock);
	/* No item idle for less than the smallest ttl in force can expire:
	 * the walk from the LRU end stops there. */
	floor = ram->ttl_ns;
	if (ram->min_item_ttl && (!floor || ram->min_item_ttl < floor))
		floor = ram->min_item_ttl;
	for (it = floor > 0 ? ram->tail : NULL; it; it = prev) {
		int64_t ttl = it->ttl_ns >= 0 ? it->ttl_ns : ram->ttl_ns;
		prev = it->prev;
		if (now - it->last_access < floor)
			break; /* the rest is more recent */
		if (ttl <= 0 || now - it->last_access < ttl || pinned(it))
			continue;
		remove_rlocked(ram, it);
		n++;
	}
	tc_mutex_unlock(&ram->lock);
	return n;
}

void tc_ram_retune(struct tc_ram *ram, const uint8_t *hash, int64_t ttl_ns)
{
	struct tc_ram_item *it;

	tc_mutex_lock(&ram->lock);
	it = find_rlocked(ram, hash);
	if (it) {
		it->ttl_ns = -1;
		set_item_ttl_rlocked(ram, it, ttl_ns);
	}
	tc_mutex_unlock(&ram->lock);
}

void tc_ram_drop(struct tc_ram *ram, const uint8_t *hash)
{
	struct tc_ram_item *it;

	tc_mutex_lock(&ram->lock);
	it = find_rlocked(ram, hash);
	if (it)
		remove_rlocked(ram, it);
	tc_mutex_unlock(&ram->lock);
}

void tc_ram_flush(struct tc_ram *ram)
{
	struct tc_ram_item *it, *prev;

	tc_mutex_lock(&ram->lock);
	for (it = ram->tail; it; it = prev) {
		prev = it->prev;
		if (!pinned(it))
			remove_rlocked(ram, it);
	}
	tc_mutex_unlock(&ram->lock);
}

void tc_ram_usage(struct tc_ram *ram, uint64_t *items, uint64_t *bytes)
{
	tc_mutex_lock(&ram->lock);
	*items = ram->items;
	*bytes = ram->bytes;
	tc_mutex_unlock(&ram->lock);
}
