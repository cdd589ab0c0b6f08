/* SPDX-License-Identifier: MIT */
/*
 * Statistics: the engine reports name/value pairs, the daemon formats them
 * (memcached's ADD_STAT pattern). Counters are relaxed atomics bumped on the
 * hot path without locks; gauges are read under the lock that owns them.
 * With a shared tier its metrics follow (the client's counters are its
 * own: a reset remembers where they stood).
 */
#include <stdio.h>

#include "engine_i.h"

struct stat_def {
	const char *name;
	const char *help;
	size_t offset;
};

#define C(f, h) { #f, h, offsetof(struct tc_counters, f) }
static const struct stat_def counter_defs[] = {
	C(gets, "Opens of a file for reading."),
	C(ram_hits, "Gets served from the RAM tier."),
	C(disk_hits, "Gets served from the disk tier."),
	C(misses, "Lookups of absent, expired or discarded names."),
	C(puts, "Contents published (writes made visible)."),
	C(deletes, "Entries removed by unlink or rename over them."),
	C(ram_evictions, "Items evicted from the RAM tier."),
	C(disk_evictions, "Entries removed from the disk tier by LRU eviction, evict_tag or flush=disk|all."),
	C(expirations, "Entries removed because their TTL passed."),
	C(schema_discards, "Entries discarded for a schema mismatch."),
	C(promotions, "Contents promoted from disk into RAM."),
	C(corruptions, "Blobs whose content did not match their hash."),
	C(read_bytes, "Bytes the daemon served to reads (the kernel's page cache serves repeats)."),
	C(write_bytes, "Bytes published by programs."),
};
#undef C

/* The shared tier's metrics (tiercachefs(8), SHARED TIER), when there is
 * one: the engine's own counters, then the client's since the last
 * reset, then the gauges. */
static void shared_stats(struct tc_engine *eng, tc_stat_fn fn, void *ctx)
{
	struct tc_shared_stats s;

#define E(f) ((double)atomic_load_explicit(&eng->shc.f, memory_order_relaxed))
	fn(ctx, "shared_hits",
	   "Lookups missing here that the shared tier answered with another mount's publish.",
	   TC_STAT_COUNTER, E(hits));
	fn(ctx, "shared_misses",
	   "Lookups missing here that the shared tier did not answer either (absent, stale, rejected, remembered as absent, or servers unreachable).",
	   TC_STAT_COUNTER, E(misses));
	fn(ctx, "shared_updates",
	   "Entries replaced here by a newer version another mount published.",
	   TC_STAT_COUNTER, E(updates));
	fn(ctx, "shared_removals",
	   "Entries removed here because another mount unlinked them later.",
	   TC_STAT_COUNTER, E(removals));
	fn(ctx, "shared_events",
	   "Other mounts' flushes, evict_tags, schema changes and resyncs applied here.",
	   TC_STAT_COUNTER, E(events));
#undef E
	tc_shared_stats(eng->shared, &s);
#define D(f) ((double)(s.f - atomic_load(&eng->shared_zero.f)))
	fn(ctx, "shared_errors",
	   "Requests to the shared tier's servers that failed (down, slow, restarted): each a miss, never an error to a program.",
	   TC_STAT_COUNTER, D(errors));
	fn(ctx, "shared_rejected",
	   "Values from the shared tier that failed verification (MAC, format or content hash) and were ignored.",
	   TC_STAT_COUNTER, D(rejected));
	fn(ctx, "shared_pushed_bytes",
	   "Bytes this mount stored on the shared tier's servers (records and contents, each copy).",
	   TC_STAT_COUNTER, D(pushed_bytes));
	fn(ctx, "shared_fetched_bytes",
	   "Content bytes fetched from the shared tier and verified.",
	   TC_STAT_COUNTER, D(fetched_bytes));
	fn(ctx, "shared_pushes", "Pushes the servers took (names and contents).",
	   TC_STAT_COUNTER, D(pushes));
	fn(ctx, "shared_push_dropped",
	   "Pushes dropped because the queue was full (the oldest go first) or at unmount.",
	   TC_STAT_COUNTER, D(push_dropped));
#undef D
	fn(ctx, "shared_queue_items", "Pushes waiting to be sent.",
	   TC_STAT_GAUGE, (double)s.queue_items);
	fn(ctx, "shared_queue_bytes", "Bytes the waiting pushes hold in memory.",
	   TC_STAT_GAUGE, (double)s.queue_bytes);
	fn(ctx, "shared_servers", "Servers of the shared tier.", TC_STAT_GAUGE,
	   (double)s.servers);
	fn(ctx, "shared_servers_up",
	   "Servers of the shared tier that answered the last probe (once a second).",
	   TC_STAT_GAUGE, (double)s.servers_up);
}

void tc_engine_stats(struct tc_engine *eng, tc_stat_fn fn, void *ctx)
{
	uint64_t ram_items, ram_bytes, disk_bytes, disk_items, blob_bytes = 0;
	uint64_t hits, misses;

	for (size_t i = 0; i < sizeof(counter_defs) / sizeof(*counter_defs);
	     i++) {
		const atomic_uint_fast64_t *v =
			(const void *)((const char *)&eng->counters +
				       counter_defs[i].offset);
		fn(ctx, counter_defs[i].name, counter_defs[i].help,
		   TC_STAT_COUNTER,
		   (double)atomic_load_explicit(v, memory_order_relaxed));
	}

	/* RAM usage under the engine lock too: dropping a dead content from
	 * RAM happens under it, so the gauges agree with each other. */
	tc_lock(eng);
	tc_ram_usage(eng->ram, &ram_items, &ram_bytes);
	disk_bytes = eng->size.disk_bytes;
	disk_items = eng->size.disk_items;
	blob_bytes = eng->size.blob_bytes;
	tc_unlock(eng);

	fn(ctx, "ram_items",
	   "Distinct contents in the RAM tier (names sharing a content count once).",
	   TC_STAT_GAUGE, (double)ram_items);
	fn(ctx, "ram_bytes",
	   "Bytes of the distinct contents in the RAM tier (each counted once).",
	   TC_STAT_GAUGE, (double)ram_bytes);
	fn(ctx, "ram_limit_bytes", "RAM tier byte limit (0: none).",
	   TC_STAT_GAUGE, (double)eng->ram_size);
	fn(ctx, "disk_items", "Entries in the disk tier.", TC_STAT_GAUGE,
	   (double)disk_items);
	fn(ctx, "disk_bytes", "Logical bytes of all entries.", TC_STAT_GAUGE,
	   (double)disk_bytes);
	fn(ctx, "disk_limit_bytes", "Disk tier byte limit (0: none).",
	   TC_STAT_GAUGE, (double)eng->disk_size);
	fn(ctx, "blob_bytes", "Bytes of blobs after deduplication.",
	   TC_STAT_GAUGE, (double)blob_bytes);
	hits = atomic_load(&eng->counters.ram_hits) +
	       atomic_load(&eng->counters.disk_hits);
	misses = atomic_load(&eng->counters.misses);
	fn(ctx, "hit_ratio", "Hits over hits plus misses.", TC_STAT_GAUGE,
	   hits + misses ? (double)hits / (double)(hits + misses) : 0.0);
	fn(ctx, "uptime_seconds", "Seconds since the store was opened.",
	   TC_STAT_GAUGE, (double)(tc_now(eng) - eng->started_ns) / 1e9);
	if (eng->shared)
		shared_stats(eng, fn, ctx);
}

void tc_engine_reset_stats(struct tc_engine *eng)
{
	for (size_t i = 0; i < sizeof(counter_defs) / sizeof(*counter_defs);
	     i++) {
		atomic_uint_fast64_t *v =
			(void *)((char *)&eng->counters +
				 counter_defs[i].offset);
		atomic_store(v, 0);
	}
	if (eng->shared) {
		struct tc_shared_stats z;

		atomic_store(&eng->shc.hits, 0);
		atomic_store(&eng->shc.misses, 0);
		atomic_store(&eng->shc.updates, 0);
		atomic_store(&eng->shc.removals, 0);
		atomic_store(&eng->shc.events, 0);
		/* Called with the engine lock held too (the reset_stats
		 * control): atomics, no lock. */
		tc_shared_stats(eng->shared, &z);
		atomic_store(&eng->shared_zero.errors, z.errors);
		atomic_store(&eng->shared_zero.rejected, z.rejected);
		atomic_store(&eng->shared_zero.pushed_bytes, z.pushed_bytes);
		atomic_store(&eng->shared_zero.fetched_bytes, z.fetched_bytes);
		atomic_store(&eng->shared_zero.pushes, z.pushes);
		atomic_store(&eng->shared_zero.push_dropped, z.push_dropped);
	}
}
