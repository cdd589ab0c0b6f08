/* SPDX-License-Identifier: MIT */
/*
 * Private to the shared tier's client (engine/shared*.c): its constants,
 * the client's structure and the functions its files share. The engine
 * programs against shared_i.h only. The files stand on floors, each
 * calling only those below it (the design essay is at the top of
 * shared.c):
 *
 *   shared.c        open, close, stats, flush, evict_tag, set_schema
 *   shared_get.c    reading names and contents
 *   shared_push.c   the push queue and its thread
 *   shared_event.c  the event log and tc_shared_poll()
 *   shared_gen.c    generations and the cache of what was learned
 *   shared_conn.c   libmemcached: handles, multi-get, store, probes
 *   shared_rec.c    the record formats, the envelope and its MAC
 *   shared_base.c   log, clock, hashes; paths, tags, servers, key files
 *
 * Functions shared between the files are named tc_sh_*.
 */
#ifndef TC_SHAREDCLIENT_I_H
#define TC_SHAREDCLIENT_I_H

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include <libmemcached/memcached.h>
#include <libmemcachedutil-1.0/pool.h>

#include "shared_i.h"

#define NSEC INT64_C(1000000000)
#define MSEC INT64_C(1000000)

/* Values of the envelope. */
#define ENV_HEAD 5 /* "tc1", type, auth */
#define MAC_LEN 32 /* keyed BLAKE2b-256 */

#define T_NAME 'n'
#define T_PIECE 'c'
#define T_GEN 'g'
#define T_DIR 'd'
#define T_EVENT 'e'

/* Room for one memcached key: prefix (<= 4 + 33 + 1), a type, 32 hex
 * digits, an index; memcached allows 250. */
#define KEY_MAX 128

/* Defaults and bounds, each with its reason. */
#define DEFAULT_QUEUE_BYTES ((size_t)64 << 20) /* a few seconds of a fast
						* network, little memory */
#define QUEUE_MAX_ITEMS 65536  /* bounds bookkeeping of tiny pushes */
#define QUEUE_MAX_FDS 64       /* open descriptors held by fd pushes */
#define DROPPED_RING 4096      /* dropped names awaiting a delete: 64 KiB */
#define CACHE_MAX 8192         /* cached generations + directories; the
				* cache is emptied when full */
#define CACHE_BUCKETS 1024
#define POOL_MAX 16            /* concurrent synchronous requests */
#define POOL_WAIT_MS 500       /* beyond, a request is a miss: overload */
#define PROBE_INTERVAL_NS NSEC /* servers_up freshness */
#define EVENT_TTL_S 86400      /* a mount more than a day behind resyncs */
#define TOMBSTONE_TTL_S 86400  /* as long as an event: revalidating mounts
				* see the deletion long before */
#define EVENTS_PER_POLL 256    /* one request's worth */
#define EVENT_GAP_MAX 100000   /* further behind than this: resync */
#define EVENT_GRACE_NS (2 * NSEC) /* an event counted but not yet written:
				   * its writer is between incr and set */
#define FETCH_BATCH 256        /* pieces per mget (128 MiB) */
#define FD_BATCH 8             /* pieces buffered by the fd variant */
#define RELATIVE_EXPIRY_MAX (30 * 86400) /* memcached reads larger
					  * expirations as absolute times */


enum push_kind { PUSH_NAME, PUSH_CONTENT, PUSH_FD };

/* One queued push. Owned by the queue, then by the push thread. */
struct push {
	struct push *next;
	enum push_kind kind;
	size_t mem; /* bytes counted in qbytes */
	struct tc_shared_name name; /* PUSH_NAME: a deep copy */
	uint8_t hash[TC_SHARED_HASH_LEN];
	uint64_t size;
	int fd;              /* PUSH_FD: our dup */
	unsigned char *data; /* PUSH_CONTENT: our copy */
};

/* A cached generation ("g:...") or directory schema ("d:..."). */
struct cent {
	struct cent *next;
	int64_t at;     /* when learned (sh clock) */
	uint64_t nonce; /* generations */
	char *schema;   /* directories: "" = none */
	char name[];
};

struct server {
	char host[256];
	unsigned port;
};

struct tc_shared {
	/* Configuration, immutable after open. */
	char prefix[48];
	size_t prefix_len;
	bool keyed;
	uint8_t mac_key[32];
	int64_t revalidate_ns;
	size_t queue_max;
	uint64_t writer;
	tc_log_fn log_fn;
	void *log_ctx;
	int log_level;
	tc_clock_fn clock;
	void *clock_ctx;
	struct server *servers;
	unsigned nservers;

	memcached_st *master;   /* template of the pool's clones */
	memcached_pool_st *pool;
	memcached_st *mc_push;  /* push thread only */
	memcached_st **probe;   /* push thread only, one per server */
	atomic_bool *probe_up;  /* written by the push thread */
	unsigned copies;        /* replicas actually used */
	/* route[i]: a group key the continuum maps to server i, to send a
	 * request to server i (and its replicas) instead of a key's own */
	char (*route)[24];

	/* The push queue. */
	pthread_mutex_t qlock;
	pthread_cond_t qcond; /* work arrived, or stop */
	pthread_cond_t qidle; /* queue and ring empty, thread idle */
	struct push *qhead, *qtail;   /* qlock */
	size_t qitems, qbytes, qfds;  /* qlock */
	uint8_t (*ring)[TC_SHARED_HASH_LEN]; /* dropped names; qlock */
	size_t ring_head, ring_len;   /* qlock */
	bool busy;                    /* thread serving one; qlock */
	bool hold;                    /* tc_shared_hold(); qlock */
	bool stop;                    /* qlock */
	pthread_t thread;
	bool thread_started;
	/* Held by the push thread while it stamps and stores one name, and
	 * by flush/evict_tag while they discard queued names and bump: a
	 * name dequeued before a flush cannot land after it with the new
	 * generation. Never taken with qlock held. */
	pthread_mutex_t gate;

	/* Generations and directory schemas. */
	pthread_mutex_t cache_lock;
	struct cent *cache[CACHE_BUCKETS]; /* cache_lock */
	size_t ncache;                     /* cache_lock */

	/* The event log reader (tc_shared_poll()). */
	pthread_mutex_t poll_lock;
	enum { POLL_UNINIT, POLL_ABSENT, POLL_TRACKING } pstate; /* poll_lock */
	uint64_t pepoch, plast; /* poll_lock */
	bool phad;              /* poll_lock: pepoch/plast survive ABSENT */
	int64_t pgap_since;     /* poll_lock; 0 = no gap */

	struct {
		atomic_uint_fast64_t hits, misses, errors, rejected, stale,
			pushed_bytes, fetched_bytes, pushes, push_dropped,
			events, resyncs;
	} c;
	atomic_uint_fast64_t servers_up;
};

#define count(sh, f, n) atomic_fetch_add_explicit(&(sh)->c.f, (n), \
						 memory_order_relaxed)

struct wbuf {
	uint8_t *p;
	size_t len, cap;
	bool fail;
};


struct rbuf {
	const uint8_t *p;
	size_t len, off;
	bool bad;
};

/* A decoded name record with the generations it was stamped with. */
struct name_rec {
	struct tc_shared_name n;
	uint64_t ns_gen;
	unsigned ntags;
	uint64_t tag_gen[TC_SHARED_TAGS_MAX];
};

#define NF_CONTENT 1
#define NF_DELETED 2

struct event_rec {
	uint8_t type;
	int64_t when;
	uint64_t writer;
	char *a, *b;
};

struct slot {
	const char *key;
	size_t klen;
	bool found;   /* a value arrived (valid or not) */
	bool unknown; /* not found, and no server that holds it answered */
	int route;    /* ROUTE_PRIMARY, or the server asked instead */
	int sink_rc;  /* what the sink said of it */
	char *val;    /* copy, when there is no sink */
	size_t vlen;
};

/* Receives the value of slot @i; returns 0 or -EBADMSG (kept in sink_rc). */
typedef int (*sink_fn)(void *ctx, size_t i, const char *val, size_t vlen);

#define ROUTE_PRIMARY (-1)
#define ROUTE_NONE (-2)

/* shared_base.c */
void tc_sh_log(struct tc_shared *sh, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
int64_t tc_sh_now(struct tc_shared *sh);
int64_t tc_sh_mono_now(void);
struct timespec tc_sh_mono_ts(int64_t ns);
void tc_sh_hex(const uint8_t *b, size_t n, char *out);
void tc_sh_hash128(const void *buf, size_t len, uint8_t out[16]);
uint64_t tc_sh_random_nonce(void);
bool tc_sh_path_valid(const char *p);
bool tc_sh_charset_valid(const char *s, size_t len, const char *extra);
bool tc_sh_tag_valid(const char *t, size_t len);
bool tc_sh_schema_valid(const char *s);
int tc_sh_tags_split(const char *tags, const char *v[], size_t len[]);
int tc_sh_servers_parse(const char *s, struct server **out, unsigned *n,
			char *err, size_t errlen);

/* shared_rec.c */
void tc_sh_wb_put(struct wbuf *b, const void *d, size_t n);
void tc_sh_wb_u8(struct wbuf *b, uint8_t v);
void tc_sh_wb_u16(struct wbuf *b, uint16_t v);
void tc_sh_wb_u32(struct wbuf *b, uint32_t v);
void tc_sh_wb_u64(struct wbuf *b, uint64_t v);
void tc_sh_wb_str(struct wbuf *b, const char *s);
const uint8_t *tc_sh_rb_take(struct rbuf *b, size_t n);
uint64_t tc_sh_rb_uint(struct rbuf *b, int bytes);
void tc_sh_rb_str(struct rbuf *b, size_t max, char **out);
void tc_sh_env_begin(struct tc_shared *sh, struct wbuf *b, char type);
int tc_sh_env_seal(struct tc_shared *sh, struct wbuf *b, const char *key,
		   size_t klen);
int tc_sh_env_open(struct tc_shared *sh, const char *key, size_t klen,
		   const void *val, size_t vlen, char type, struct rbuf *body);
size_t tc_sh_key_make(struct tc_shared *sh, char *out, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
size_t tc_sh_key_name(struct tc_shared *sh, const uint8_t ph[16],
		      char out[KEY_MAX]);
size_t tc_sh_key_path(struct tc_shared *sh, char kind, const char *path,
		      char out[KEY_MAX]);
size_t tc_sh_key_piece(struct tc_shared *sh, const uint8_t *hash,
		       uint32_t i, char out[KEY_MAX]);
int tc_sh_name_encode(struct tc_shared *sh, const struct name_rec *r,
		      const char *key, size_t klen, struct wbuf *b);
int tc_sh_name_decode(struct tc_shared *sh, const char *key, size_t klen,
		      const void *val, size_t vlen, struct name_rec *r);
int tc_sh_gen_encode(struct tc_shared *sh, uint64_t nonce, const char *key,
		     size_t klen, struct wbuf *b);
int tc_sh_gen_decode(struct tc_shared *sh, const char *key, size_t klen,
		     const void *val, size_t vlen, uint64_t *nonce);
int tc_sh_dir_encode(struct tc_shared *sh, const char *dir,
		     const char *schema, const char *key, size_t klen,
		     struct wbuf *b);
int tc_sh_dir_decode(struct tc_shared *sh, const char *dir, const char *key,
		     size_t klen, const void *val, size_t vlen, char **schema);
int tc_sh_event_encode(struct tc_shared *sh, uint8_t type, const char *a,
		       const char *bstr, const char *key, size_t klen,
		       struct wbuf *b);
int tc_sh_event_decode(struct tc_shared *sh, const char *key, size_t klen,
		       const void *val, size_t vlen, struct event_rec *e);
int tc_sh_piece_encode(struct tc_shared *sh, const struct push *p,
		       uint32_t i, uint32_t count_, const void *data,
		       size_t len, const char *key, size_t klen,
		       struct wbuf *b);
int tc_sh_name_copy(struct tc_shared_name *dst,
		    const struct tc_shared_name *src);

/* shared_conn.c */
memcached_st *tc_sh_mc_get(struct tc_shared *sh);
void tc_sh_mc_put(struct tc_shared *sh, memcached_st *mc);
int tc_sh_mc_mget(struct tc_shared *sh, memcached_st *mc, struct slot *s,
		  size_t n, sink_fn sink, void *ctx);
int tc_sh_key_route(struct tc_shared *sh, memcached_st *mc, const char *key,
		    size_t klen);
bool tc_sh_primary_up(struct tc_shared *sh, memcached_st *mc,
		      const char *key, size_t klen);
void tc_sh_slots_free(struct slot *s, size_t n);
void tc_sh_mc_flush_replicas(struct tc_shared *sh, memcached_st *mc);
int tc_sh_mc_store(struct tc_shared *sh, memcached_st *mc, const char *key,
		   size_t klen, const void *val, size_t vlen, time_t exp,
		   bool mutable_);
void tc_sh_probe_servers(struct tc_shared *sh);
int tc_sh_open_memcached(struct tc_shared *sh,
			 const struct tc_shared_config *cfg);

/* shared_gen.c */
void tc_sh_cache_clear_locked(struct tc_shared *sh);
/* Forget cached generation or directory @name (NULL: everything). */
void tc_sh_cache_forget(struct tc_shared *sh, const char *name);
void tc_sh_cache_put(struct tc_shared *sh, const char *name, uint64_t nonce,
		     const char *schema);
bool tc_sh_cache_gen(struct tc_shared *sh, const char *name, uint64_t *nonce);
bool tc_sh_cache_dir(struct tc_shared *sh, const char *name, char **schema);
void tc_sh_gen_id(char out[80], const char *tag, size_t tlen);
int tc_sh_gens_current(struct tc_shared *sh, memcached_st *mc,
		       char (*ids)[80], size_t n, uint64_t *out);
int tc_sh_gen_bump(struct tc_shared *sh, memcached_st *mc, const char *id);

/* shared_event.c */
int tc_sh_event_append(struct tc_shared *sh, memcached_st *mc,
		       uint8_t type, const char *a, const char *bstr);

/* shared_push.c */
void tc_sh_push_free(struct push *p);
void tc_sh_q_discard_names(struct tc_shared *sh, const char *tag);
void *tc_sh_push_main(void *arg);


#endif /* TC_SHAREDCLIENT_I_H */
