/* SPDX-License-Identifier: MIT */
/*
 * The shared tier's client (engine/shared*.c): name records and contents on
 * a pool of memcached servers, shared by every mount configured with the
 * same servers (and key). The design essay is at the top of shared.c; this
 * header is the contract the engine programs against. It knows nothing of
 * SQLite, nodes or FUSE: names are mount-relative paths, contents are
 * byte strings addressed by their XXH3-128 hash.
 *
 * Threads: every function may be called from any thread, concurrently,
 * except tc_shared_close() (no other call may run or start) and
 * tc_shared_poll() (serialised internally: a second caller waits).
 * Synchronous calls take a connection from an internal pool; pushes are
 * only queued and served by one background thread.
 *
 * Errors: 0 or -errno, as in the rest of the engine. Every failure of the
 * servers (down, slow, restarted empty, answering garbage) is a miss to the
 * caller (-ENOENT or -EIO, see each function) and a counter, never a wrong
 * byte.
 */
#ifndef TC_SHARED_I_H
#define TC_SHARED_I_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tiercache.h"

/** Bytes of a content hash (XXH3-128, canonical big-endian form). */
#define TC_SHARED_HASH_LEN 16

/** Contents are stored in pieces of this many bytes (the last is shorter):
 *  well under memcached's default 1 MiB item limit with room for the
 *  header and MAC, and large enough that a 100 MiB file is 200 keys. */
#define TC_SHARED_PIECE (512 * 1024)

/** Longest mount-relative path of a name record, in bytes. */
#define TC_SHARED_PATH_MAX 4096

/** Most tags one name record carries (SPEC §5 allows 32). */
#define TC_SHARED_TAGS_MAX 32

/** A key file holds at least this many bytes of secret, at most the max. */
#define TC_SHARED_KEY_MIN 32
#define TC_SHARED_KEY_MAX 4096

struct tc_shared;

/**
 * Configuration of tc_shared_open(). Initialise with
 * tc_shared_config_init(), then override. Everything is borrowed: it must
 * stay valid until tc_shared_open() returns (the key is copied).
 */
struct tc_shared_config {
	/** "HOST:PORT[,HOST:PORT...]" (required). HOST is a name, an IPv4
	 *  address or a bracketed IPv6 address. See
	 *  tc_shared_check_servers(). */
	const char *servers;
	/** Copies of each item on distinct servers (>= 1; default 1).
	 *  Capped at the number of servers. */
	unsigned replicas;
	/** How long generations and directory schemas learned from the
	 *  servers are trusted before being asked again; default 1 s, 0 asks
	 *  every time. Bounds how late another mount's flush, evict_tag or
	 *  schema change is seen by tc_shared_get_name(). */
	int64_t revalidate_ns;
	/** Secret shared by the mounts (tc_shared_load_key()), or NULL: no
	 *  authentication. At least TC_SHARED_KEY_MIN bytes. */
	const uint8_t *key;
	size_t key_len;
	/** Namespace of the keys, [A-Za-z0-9_.-]{1,32}, or NULL: "pub"
	 *  without a key, a name derived from the key with one (so caches
	 *  with different keys never collide on the same servers). Mounts
	 *  share only within one namespace; independent caches on one pool
	 *  of servers use different namespaces. Mounts with different keys
	 *  must not share one: each would replace the other's generations,
	 *  and neither would see anything. */
	const char *name_space;
	/** Bytes of copied data the push queue holds before dropping its
	 *  oldest pushes; default 64 MiB. */
	size_t queue_max_bytes;
	/** Identity of this mount in records and events; 0: random. */
	uint64_t writer;
	/** Connect and I/O poll timeout in ms; default 200 (a dead or stalled
	 *  server costs at most about this per request). */
	unsigned timeout_ms;
	/** Seconds a failed server is left alone before it is tried again;
	 *  default 1. */
	unsigned retry_s;
	tc_log_fn log_fn; /**< NULL: no logging */
	void *log_ctx;
	int log_level;    /**< messages above this level are dropped */
	tc_clock_fn clock; /**< NULL: CLOCK_REALTIME */
	void *clock_ctx;
};

/** Fill @p cfg with the defaults above; servers stays NULL. */
void tc_shared_config_init(struct tc_shared_config *cfg);

/* tc_shared_check_servers(), tc_shared_load_key() and tc_shared_key_free()
 * are public (tiercache.h): the daemon checks options with them. */

/**
 * Create a client and start its push thread. No server needs to be up: a
 * client with every server down works (every call a miss) and picks the
 * servers up when they answer.
 * @return 0 and *@p out, -EINVAL (bad configuration, logged at TC_LOG_ERR),
 *         -ENOMEM, or another -errno if the thread cannot start.
 */
int tc_shared_open(const struct tc_shared_config *cfg,
		   struct tc_shared **out) TC_WUR;

/**
 * Stop the push thread and free everything. Pushes still queued are
 * dropped and counted in push_dropped (call tc_shared_drain() first to
 * send them). NULL is a no-op. No other call may be running.
 */
void tc_shared_close(struct tc_shared *sh);

/** This mount's writer id (as stamped into records and events). */
uint64_t tc_shared_writer(const struct tc_shared *sh);

/**
 * One name record: what another mount needs to answer a lookup of @path.
 * Filled by tc_shared_get_name() (strings allocated, release with
 * tc_shared_name_free()); read (never kept) by tc_shared_push_name().
 */
struct tc_shared_name {
	char *path;         /**< mount-relative, "/a/b" */
	uint8_t hash[TC_SHARED_HASH_LEN]; /**< content, if has_content */
	bool has_content;   /**< false: empty content (or not a file) */
	uint64_t size;
	uint32_t mode, uid, gid;
	int64_t mtime_ns;
	int64_t expires_ns; /**< absolute, 0 = never */
	int ttl_mode;       /**< enum tc_ttl_mode */
	char *tags;         /**< "a,b" or "" (NULL on push means "") */
	char *schema;       /**< "" = none (NULL on push means "") */
	int64_t version_ns; /**< the writer's publish time */
	uint64_t writer;    /**< filled from the client on push */
	bool deleted;       /**< a tombstone: unlinked by @writer */
};

/** Free the strings of @p n (not @p n itself) and clear them. */
void tc_shared_name_free(struct tc_shared_name *n);

/**
 * Queue @p n for the servers (copied; the caller keeps @p n). Never waits
 * on the network. The push thread stamps it with the generations current
 * when it is sent. A queued push of the same path is not merged: pushes go
 * out in order.
 * @return 0 (queued, or dropped when the queue cannot hold it: counted),
 *         -EINVAL for a malformed path, tags or schema, -ENOMEM.
 */
int tc_shared_push_name(struct tc_shared *sh,
			const struct tc_shared_name *n) TC_WUR;

/**
 * Queue the content @p data of @p len bytes, whose hash is @p hash
 * (trusted: the caller computed it), copying it. When the queue would
 * exceed queue_max_bytes the oldest pushes are dropped (counted); a content
 * larger than the whole queue is dropped at once. Empty contents are never
 * stored (nothing to fetch).
 * @return 0 or -ENOMEM.
 */
int tc_shared_push_content(struct tc_shared *sh, const uint8_t *hash,
			   const void *data, size_t len) TC_WUR;

/**
 * Queue the content of @p size bytes readable at offset 0 of @p fd (a blob
 * file: it must not change until sent). The fd is dup()ed, the caller
 * keeps its own; no data is copied, so large contents cost no memory. At
 * most 64 such pushes wait; beyond, the oldest pushes are dropped.
 * @return 0, -ENOMEM, or -errno of dup().
 */
int tc_shared_push_content_fd(struct tc_shared *sh, const uint8_t *hash,
			      uint64_t size, int fd) TC_WUR;

/**
 * Hold (@p hold true) or release the push thread. While held it sends
 * nothing: pushes still queue, and the oldest drop when it is full. For
 * tests (to fill the queue deterministically) and for a caller that knows
 * the servers are unreachable. Released by default.
 */
void tc_shared_hold(struct tc_shared *sh, bool hold);

/**
 * Wait until every push queued before the call has been sent (or failed),
 * at most @p timeout_ns (monotonic). For unmount and tests.
 * @return 0, or -ETIMEDOUT with pushes still pending.
 */
int tc_shared_drain(struct tc_shared *sh, int64_t timeout_ns) TC_WUR;

/**
 * Look @p path up. Synchronous, bounded by the timeouts (a dead server
 * costs one retry on the replica).
 * @return 0 and *@p out (a record, possibly a tombstone: out->deleted;
 *         release with tc_shared_name_free()), -ENOENT when absent,
 *         expired, stale (pushed before a flush, evict_tag of one of its
 *         tags, or of another schema than its directory's) or rejected
 *         (bad MAC, garbage, a record of another path), -EIO when the
 *         servers could not answer, -EINVAL for a malformed path. Both
 *         -ENOENT and -EIO are a miss to the caller; *@p out is untouched
 *         on failure.
 */
int tc_shared_get_name(struct tc_shared *sh, const char *path,
		       struct tc_shared_name *out) TC_WUR;

/**
 * Fetch the content @p hash of @p size bytes into @p buf (@p size bytes),
 * all pieces in one request, and verify it (hash of the whole, and each
 * piece's MAC with a key). @p buf may hold garbage on failure.
 * @return 0, -ENOENT when some piece is absent, -EIO when the content
 *         failed verification (counted in rejected) or the servers could
 *         not answer.
 */
int tc_shared_get_content(struct tc_shared *sh, const uint8_t *hash,
			  uint64_t size, void *buf) TC_WUR;

/**
 * As tc_shared_get_content(), writing to @p fd at offsets 0..@p size
 * (pwrite) in batches of a few pieces, so any size fits in bounded memory.
 * The file holds unverified bytes until 0 is returned: on failure the
 * caller must discard it (a temporary file).
 * @return as tc_shared_get_content(), or -errno of pwrite().
 */
int tc_shared_get_content_fd(struct tc_shared *sh, const uint8_t *hash,
			     uint64_t size, int fd) TC_WUR;

/**
 * Remove every shared entry carrying @p tag, for every mount: bumps the
 * tag's generation (records stamped with the old one become stale) and
 * logs an event for tc_shared_poll(). Queued name pushes carrying the tag
 * are discarded.
 * @return 0, -EINVAL for a malformed tag, -EIO when the servers could not
 *         take it (the mounts that saw nothing keep their entries).
 */
int tc_shared_evict_tag(struct tc_shared *sh, const char *tag) TC_WUR;

/**
 * Remove every shared name (directories' schemas stay, as SPEC §5 flush):
 * bumps the namespace generation, logs an event, discards queued name
 * pushes. Contents stay: they are immutable and unreachable without names.
 * @return 0 or -EIO.
 */
int tc_shared_flush(struct tc_shared *sh) TC_WUR;

/**
 * Record that directory @p dir expects @p schema ("" = none) for its
 * subtree, for every mount: tc_shared_get_name() then treats files below
 * whose schema differs as absent, and an event is logged.
 * @return 0, -EINVAL for a malformed path or schema, -EIO.
 */
int tc_shared_set_schema(struct tc_shared *sh, const char *dir,
			 const char *schema) TC_WUR;

enum tc_shared_event_type {
	TC_SHARED_EV_FLUSH = 1,  /**< another mount flushed */
	TC_SHARED_EV_EVICT_TAG,  /**< ... evicted ev->tag */
	TC_SHARED_EV_SCHEMA,     /**< ... set ev->dir's schema to ev->schema */
	/** Events were lost (servers evicted or restarted, or this mount
	 *  fell too far behind): drop whatever was learned from the shared
	 *  tier, it may have been flushed or evicted meanwhile. */
	TC_SHARED_EV_RESYNC,
};

/** One event. Pointers are valid during the callback only. */
struct tc_shared_event {
	enum tc_shared_event_type type;
	const char *tag;    /**< EVICT_TAG */
	const char *dir;    /**< SCHEMA */
	const char *schema; /**< SCHEMA ("" = none) */
	uint64_t writer;    /**< who caused it (0 for RESYNC) */
	int64_t when_ns;    /**< its writer's clock */
};

typedef void (*tc_shared_event_fn)(void *ctx,
				   const struct tc_shared_event *ev);

/**
 * Report, through @p fn, the events other mounts caused since the last
 * call, oldest first (this mount's own are skipped). The first call only
 * finds where the log stands. Meant for the maintenance thread, about once
 * per revalidate interval; @p fn runs on the caller's thread, holding
 * only the lock that serialises polls: it may call anything but
 * tc_shared_poll() and tc_shared_close().
 * @return the number of events reported (>= 0), or -EIO when the event
 *         log could not be read (nothing reported; try again later).
 */
int tc_shared_poll(struct tc_shared *sh, tc_shared_event_fn fn,
		   void *ctx) TC_WUR;

/** A snapshot of the client's counters (relaxed atomics) and gauges. */
struct tc_shared_stats {
	uint64_t hits;          /**< get_name/get_content answered */
	uint64_t misses;        /**< ... absent, stale or rejected */
	uint64_t errors;        /**< server trouble (requests that failed) */
	uint64_t rejected;      /**< values failing MAC, format or hash */
	uint64_t stale;         /**< names older than a generation/schema */
	uint64_t pushed_bytes;  /**< value bytes stored */
	uint64_t fetched_bytes; /**< content bytes fetched and verified */
	uint64_t pushes;        /**< pushes sent successfully */
	uint64_t push_dropped;  /**< pushes dropped (queue full or close) */
	uint64_t events;        /**< events reported by tc_shared_poll() */
	uint64_t resyncs;       /**< RESYNC events reported */
	uint64_t queue_items;   /**< gauge: pushes waiting */
	uint64_t queue_bytes;   /**< gauge: bytes they hold in memory */
	uint64_t servers;       /**< gauge: servers configured */
	uint64_t servers_up;    /**< gauge: servers that answered the last
				 *   probe (one per second) */
};

void tc_shared_stats(struct tc_shared *sh, struct tc_shared_stats *out);

#endif /* TC_SHARED_I_H */
