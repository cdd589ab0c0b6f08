/* SPDX-License-Identifier: MIT */
/*
 * The shared tier: name records and contents on memcached servers, so that
 * a lookup that misses on one mount can be answered by another mount's
 * publish. The engine calls this module; it knows nothing of the engine.
 *
 * What is stored (every key starts with "tc1:NS:", NS the namespace):
 *
 *   n:HEX(XXH3-128(path))   name record: path, content hash, size, mode,
 *                           owner, mtime, expiry, ttl mode, tags, schema,
 *                           version, writer, tombstone flag, and the
 *                           generations it was pushed under
 *   c:HASH:INDEX            one piece (TC_SHARED_PIECE bytes) of a content
 *   g:ns, g:t:TAG           generations: the namespace's, each tag's
 *   d:HEX(XXH3-128(dir))    a directory's expected schema
 *   e:seq, e:SEQ            the event log: a counter and one record each
 *
 * Every value is an envelope: "tc1" and a type letter, an auth byte (0: no
 * key, 1: keyed), the body, and with a key a 32-byte keyed BLAKE2b MAC over
 * the memcached key and everything before the MAC. Binding the key means a
 * valid record cannot be moved to another name, piece or generation.
 * Integers are little-endian; strings are a u16 length and bytes.
 *
 * Deletion across mounts without scanning (the memcached "generation"
 * technique): a name record stores the generations of the namespace and of
 * each of its tags current when it was pushed; flush and evict_tag replace
 * the generation; a reader compares and treats a record with an old one as
 * absent. Our generations are random 64-bit nonces in ordinary (replicated,
 * authenticated) values, compared for equality, rather than incr counters:
 * libmemcached does not replicate incr/add, only set and delete; a counter
 * has no room for a MAC; and a lost counter starts again from its initial
 * value, which would revive every record pushed under those numbers. A lost
 * nonce is replaced by a fresh one (memcached add, so concurrent mounts
 * agree), which makes every older record stale: losing a generation costs
 * misses, never resurrects a flushed name. Readers cache generations and
 * directory schemas for revalidate_ns, which bounds how late a change is
 * seen.
 *
 * Schema changes are directory records, not generations: SPEC §5 says an
 * entry whose schema differs from its directory's (the nearest ancestor
 * that has one) is absent, and one that matches stays. get_name fetches the
 * ancestors' records in the same request as the name (then from the cache)
 * and applies exactly that rule. flush leaves them, as it leaves
 * directories' settings.
 *
 * The event log tells the other mounts' local tiers what happened: a
 * counter (the one incr we use: sequence numbers must be unique) and one
 * authenticated record per event, expiring after a day. The counter's
 * initial value carries a random epoch in its high 32 bits, so a counter
 * recreated after a restart is told from the old one; events that cannot
 * be found after a grace period, or a new epoch, are reported as one
 * RESYNC. Events carry the writer id so a mount skips its own.
 *
 * Failure handling is libmemcached's own where it has one: binary
 * protocol, consistent hashing (ketama), NUMBER_OF_REPLICAS = replicas - 1
 * (copies on the next servers of the list, which we sort so that every
 * mount agrees on it), short connect and poll timeouts, and a server that
 * refused a connection left alone for retry_s, then tried again. Failed
 * servers are never removed from the continuum: that would remap keys to
 * servers that never held them (measured, ../shared/memcached-facts.md).
 * What the library leaves to us, measured in test_shared.c:
 *
 *   - A read that meets a server that has just died fails once (the
 *     connection was open); asking again for the keys still missing lets
 *     the library go to the replica.
 *   - It fails over only when it cannot connect. A server that accepts
 *     connections and never answers (stopped, swapping) costs a timeout on
 *     every request. So the push thread probes every server once a second
 *     (a get on a single-server handle: the servers_up gauge), and keys
 *     whose primary did not answer go straight to their first live replica
 *     (mget_by_key with a group key that hashes to that server); keys with
 *     no live copy are not asked at all, a miss at once.
 *   - It skips unreachable servers without saying which keys it skipped.
 *     A key missing after trouble is absent when one of its servers
 *     answered the probe (the server asked is the first it could reach,
 *     and its answer stands), unknown (-EIO) otherwise; after a timeout,
 *     unknown. The difference matters: an absent generation is created, an
 *     absent event counter means lost events.
 *   - A set whose primary is down fails without reaching the replicas, so
 *     a failed set of a mutable value (names, generations, directories) is
 *     followed by a delete, which the library sends to the replicas even
 *     then: readers see nothing rather than an older value.
 *   - Replica copies are written as quiet sets left in the connection's
 *     buffer; we flush after each store, or the last pushes would have no
 *     replica until the next request.
 *
 * memcached_st is not thread-safe: synchronous calls borrow a clone from a
 * memcached_pool_st, the push thread has its own, and so do the probes.
 *
 * Pushes never wait on the network: they are copied into a bounded FIFO
 * that one thread serves. When full, the oldest pushes are dropped and
 * counted; a dropped name is remembered (its 16-byte path hash, in a ring)
 * and its key deleted before the next push, so another mount falls back to
 * a miss rather than keep seeing the version before it.
 *
 * Trust. With a key, a writer without it can delete or evict items (misses)
 * and nothing else: every value it writes fails its MAC (counted in
 * rejected), and a valid value moved to another key fails too (the MAC
 * covers the key). Generations and events are ordinary authenticated
 * values; the event counter is the one thing a MAC cannot cover (memcached
 * increments it in place): forging it costs a RESYNC, never wrong data.
 * Mounts with different keys must not share a namespace (by default each
 * key gets its own): each would take the other's generations for garbage
 * and replace them.
 *
 * For the man page, what anyone who can reach the servers can do to
 * mounts WITHOUT shared_key: whatever a mount can, since nothing tells
 * them apart: publish any name with content of their choosing, overwrite,
 * delete or hide any name, replay an older record of a name, point a name
 * at any content in the cache, change a name's size, mode, owner, times,
 * tags or schema, and forge flush, evict_tag and schema changes and
 * resyncs. What they cannot do is make a mount serve bytes that do not
 * match the hash the name record gives: contents are checked against
 * their XXH3-128, which catches corruption and accidents (servers
 * answering garbage) but is not a cryptographic hash, so even that holds
 * against mistakes, not against a determined forger. Use shared_key
 * whenever anyone who can reach the servers is not trusted.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libmemcached/memcached.h>
#include <libmemcachedutil-1.0/pool.h>
#include <sodium.h>
#include <xxhash.h>

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

/* ------------------------------------------------------------------ */
/* Structures                                                         */
/* ------------------------------------------------------------------ */

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

/* ------------------------------------------------------------------ */
/* Small services                                                     */
/* ------------------------------------------------------------------ */

static void sh_log(struct tc_shared *sh, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void sh_log(struct tc_shared *sh, int level, const char *fmt, ...)
{
	va_list ap;

	if (!sh->log_fn || level > sh->log_level)
		return;
	va_start(ap, fmt);
	sh->log_fn(sh->log_ctx, level, fmt, ap);
	va_end(ap);
}

static int64_t sh_now(struct tc_shared *sh)
{
	struct timespec ts;

	if (sh->clock)
		return sh->clock(sh->clock_ctx);
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * NSEC + ts.tv_nsec;
}

static int64_t mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NSEC + ts.tv_nsec;
}

static struct timespec mono_ts(int64_t ns)
{
	struct timespec ts = { .tv_sec = ns / NSEC, .tv_nsec = ns % NSEC };

	return ts;
}

static void hex(const uint8_t *b, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

/* XXH3-128 in the canonical (big-endian) form the engine uses. */
static void hash128(const void *buf, size_t len, uint8_t out[16])
{
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, XXH3_128bits(buf, len));
	memcpy(out, c.digest, 16);
}

static uint64_t random_nonce(void)
{
	uint64_t v;

	do
		randombytes_buf(&v, sizeof(v));
	while (v == 0);
	return v;
}

/* ------------------------------------------------------------------ */
/* Validation                                                         */
/* ------------------------------------------------------------------ */

static bool path_valid(const char *p)
{
	size_t len;

	if (!p || p[0] != '/')
		return false;
	len = strlen(p);
	if (len > TC_SHARED_PATH_MAX)
		return false;
	if (len == 1)
		return true;
	if (p[len - 1] == '/')
		return false;
	for (const char *c = p; *c; c++) {
		if (*c != '/')
			continue;
		/* no empty, "." or ".." component */
		if (c[1] == '/' ||
		    (c[1] == '.' && (c[2] == '/' || c[2] == '\0')) ||
		    (c[1] == '.' && c[2] == '.' && (c[3] == '/' || !c[3])))
			return false;
	}
	return true;
}

static bool charset_valid(const char *s, size_t len, const char *extra)
{
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || strchr(extra, c)) || !c)
			return false;
	}
	return true;
}

/* SPEC §5: tags [A-Za-z0-9_.:-]{1,64}, schemas [A-Za-z0-9_.+-]{1,64}. */
static bool tag_valid(const char *t, size_t len)
{
	return len >= 1 && len <= 64 && charset_valid(t, len, "_.:-");
}

static bool schema_valid(const char *s)
{
	size_t len = strlen(s);

	return len <= 64 && charset_valid(s, len, "_.+-");
}

/* Split "a,b" into at most TC_SHARED_TAGS_MAX tags (pointers into
 * @tags). Returns the count, or -EINVAL. */
static int tags_split(const char *tags, const char *v[], size_t len[])
{
	int n = 0;
	const char *p = tags;

	if (!*tags)
		return 0;
	for (;;) {
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);

		if (n == TC_SHARED_TAGS_MAX || !tag_valid(p, l))
			return -EINVAL;
		v[n] = p;
		len[n] = l;
		n++;
		if (!e)
			return n;
		p = e + 1;
	}
}

static int server_cmp(const void *a, const void *b)
{
	const struct server *x = a, *y = b;
	int c = strcmp(x->host, y->host);

	if (c)
		return c;
	return (x->port > y->port) - (x->port < y->port);
}

/* Parse "HOST:PORT[,HOST:PORT...]" into a sorted array (free()d by the
 * caller). HOST: [A-Za-z0-9._-]+ or [IPV6]. -EINVAL with @err set. */
static int servers_parse(const char *s, struct server **out, unsigned *n,
			 char *err, size_t errlen)
{
	struct server *v = NULL;
	unsigned cnt = 0;
	const char *p = s;
	int rc = -EINVAL;

	if (!s || !*s) {
		snprintf(err, errlen, "no servers (expected HOST:PORT[,...])");
		return -EINVAL;
	}
	for (;;) {
		const char *e = strchr(p, ','), *colon, *h0, *h1;
		size_t l = e ? (size_t)(e - p) : strlen(p);
		unsigned long port = 0;
		struct server *nv;

		if (p[0] == '[') {
			h0 = p + 1;
			h1 = memchr(p, ']', l);
			if (!h1 || h1 == h0 || h1 + 1 >= p + l ||
			    h1[1] != ':' || !charset_valid(h0, h1 - h0, ":.")) {
				goto bad;
			}
			colon = h1 + 1;
		} else {
			colon = memchr(p, ':', l);
			h0 = p;
			h1 = colon;
			if (!colon || colon == p ||
			    !charset_valid(p, colon - p, "._-"))
				goto bad;
		}
		if ((size_t)(h1 - h0) >= sizeof(v->host) ||
		    colon + 1 == p + l || (size_t)(p + l - colon - 1) > 5)
			goto bad;
		for (const char *d = colon + 1; d < p + l; d++) {
			if (*d < '0' || *d > '9')
				goto bad;
			port = port * 10 + (unsigned long)(*d - '0');
		}
		if (port == 0 || port > 65535)
			goto bad;
		if (cnt == 256) {
			snprintf(err, errlen, "more than 256 servers");
			goto out;
		}
		nv = realloc(v, (cnt + 1) * sizeof(*v));
		if (!nv) {
			rc = -ENOMEM;
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		v = nv;
		memcpy(v[cnt].host, h0, h1 - h0);
		v[cnt].host[h1 - h0] = '\0';
		v[cnt].port = (unsigned)port;
		cnt++;
		if (!e)
			break;
		p = e + 1;
		continue;
bad:
		snprintf(err, errlen,
			 "malformed server '%.*s' (expected HOST:PORT[,HOST:PORT...])",
			 (int)(l > 80 ? 80 : l), p);
		goto out;
	}
	/* The same order on every mount: replicas live on the next servers
	 * of the list, so the list order decides where they are. */
	qsort(v, cnt, sizeof(*v), server_cmp);
	for (unsigned i = 1; i < cnt; i++) {
		if (server_cmp(&v[i - 1], &v[i]) == 0) {
			snprintf(err, errlen, "server %s:%u listed twice",
				 v[i].host, v[i].port);
			goto out;
		}
	}
	*out = v;
	*n = cnt;
	v = NULL;
	rc = 0;
out:
	free(v);
	return rc;
}

int tc_shared_check_servers(const char *servers, char *err, size_t errlen)
{
	struct server *v;
	unsigned n;
	char dummy[1];
	int rc;

	if (!err) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	rc = servers_parse(servers, &v, &n, err, errlen);
	if (rc == 0)
		free(v);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The key file                                                       */
/* ------------------------------------------------------------------ */

int tc_shared_load_key(const char *path, uint8_t **key, size_t *len,
		       char *err, size_t errlen)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t got = 0;
	int fd, rc;
	char dummy[1];

	if (!err) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st)) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		goto out;
	}
	rc = -EINVAL;
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		rc = -EPERM;
		snprintf(err, errlen, "%s: owned by uid %u, neither us nor root",
			 path, (unsigned)st.st_uid);
		goto out;
	}
	if (st.st_mode & 077) {
		rc = -EPERM;
		snprintf(err, errlen,
			 "%s: accessible by group or others (mode %03o): "
			 "chmod 600 it", path, (unsigned)(st.st_mode & 0777));
		goto out;
	}
	if (st.st_size < TC_SHARED_KEY_MIN || st.st_size > TC_SHARED_KEY_MAX) {
		snprintf(err, errlen, "%s: %lld bytes, a key has %d to %d",
			 path, (long long)st.st_size, TC_SHARED_KEY_MIN,
			 TC_SHARED_KEY_MAX);
		goto out;
	}
	buf = malloc(TC_SHARED_KEY_MAX);
	if (!buf) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (;;) {
		ssize_t r = read(fd, buf + got, TC_SHARED_KEY_MAX - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			snprintf(err, errlen, "%s: %s", path, strerror(-rc));
			goto out;
		}
		if (r == 0 || (got += (size_t)r) == TC_SHARED_KEY_MAX)
			break;
	}
	if (got < TC_SHARED_KEY_MIN || got != (size_t)st.st_size) {
		snprintf(err, errlen, "%s: changed while read", path);
		goto out;
	}
	*key = buf;
	*len = got;
	buf = NULL;
	rc = 0;
out:
	if (buf) {
		sodium_memzero(buf, TC_SHARED_KEY_MAX);
		free(buf);
	}
	close(fd);
	return rc;
}

void tc_shared_key_free(uint8_t *key, size_t len)
{
	if (!key)
		return;
	sodium_memzero(key, len);
	free(key);
}

/* ------------------------------------------------------------------ */
/* Encoding                                                           */
/* ------------------------------------------------------------------ */

struct wbuf {
	uint8_t *p;
	size_t len, cap;
	bool fail;
};

static void wb_put(struct wbuf *b, const void *d, size_t n)
{
	if (b->fail)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		uint8_t *np;

		while (cap < b->len + n)
			cap *= 2;
		np = realloc(b->p, cap);
		if (!np) {
			b->fail = true;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
}

static void wb_u8(struct wbuf *b, uint8_t v)
{
	wb_put(b, &v, 1);
}

static void wb_u16(struct wbuf *b, uint16_t v)
{
	uint8_t x[2] = { (uint8_t)v, (uint8_t)(v >> 8) };

	wb_put(b, x, 2);
}

static void wb_u32(struct wbuf *b, uint32_t v)
{
	uint8_t x[4];

	for (int i = 0; i < 4; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	wb_put(b, x, 4);
}

static void wb_u64(struct wbuf *b, uint64_t v)
{
	uint8_t x[8];

	for (int i = 0; i < 8; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	wb_put(b, x, 8);
}

static void wb_str(struct wbuf *b, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	wb_u16(b, (uint16_t)n); /* callers bounded n */
	wb_put(b, s ? s : "", n);
}

struct rbuf {
	const uint8_t *p;
	size_t len, off;
	bool bad;
};

static const uint8_t *rb_take(struct rbuf *b, size_t n)
{
	const uint8_t *r;

	if (b->bad || b->len - b->off < n) {
		b->bad = true;
		return NULL;
	}
	r = b->p + b->off;
	b->off += n;
	return r;
}

static uint64_t rb_uint(struct rbuf *b, int bytes)
{
	const uint8_t *x = rb_take(b, (size_t)bytes);
	uint64_t v = 0;

	if (!x)
		return 0;
	for (int i = 0; i < bytes; i++)
		v |= (uint64_t)x[i] << (8 * i);
	return v;
}

/* A string of at most @max bytes without NUL, into *out (malloc). */
static void rb_str(struct rbuf *b, size_t max, char **out)
{
	size_t n = (size_t)rb_uint(b, 2);
	const uint8_t *s;

	*out = NULL;
	if (n > max) {
		b->bad = true;
		return;
	}
	s = rb_take(b, n);
	if (!s || memchr(s, 0, n)) {
		b->bad = true;
		return;
	}
	*out = malloc(n + 1);
	if (!*out) {
		b->bad = true;
		return;
	}
	memcpy(*out, s, n);
	(*out)[n] = '\0';
}

static void mac(struct tc_shared *sh, const char *key, size_t klen,
		const uint8_t *data, size_t n, uint8_t out[MAC_LEN])
{
	crypto_generichash_state st;
	uint8_t kl[2] = { (uint8_t)klen, (uint8_t)(klen >> 8) };

	crypto_generichash_init(&st, sh->mac_key, sizeof(sh->mac_key),
				MAC_LEN);
	crypto_generichash_update(&st, kl, 2);
	crypto_generichash_update(&st, (const uint8_t *)key, klen);
	crypto_generichash_update(&st, data, n);
	crypto_generichash_final(&st, out, MAC_LEN);
}

static void env_begin(struct tc_shared *sh, struct wbuf *b, char type)
{
	uint8_t head[ENV_HEAD] = { 't', 'c', '1', (uint8_t)type,
				   sh->keyed ? 1 : 0 };

	wb_put(b, head, sizeof(head));
}

/* Append the MAC (keyed) and check the buffer. 0 or -ENOMEM. */
static int env_seal(struct tc_shared *sh, struct wbuf *b, const char *key,
		    size_t klen)
{
	if (sh->keyed && !b->fail) {
		uint8_t m[MAC_LEN];

		mac(sh, key, klen, b->p, b->len, m);
		wb_put(b, m, MAC_LEN);
	}
	return b->fail ? -ENOMEM : 0;
}

/* Check the envelope of @val (stored under @key) and find its body.
 * -EBADMSG when it is not of @type, of the other trust mode, or its MAC
 * fails. */
static int env_open(struct tc_shared *sh, const char *key, size_t klen,
		    const void *val, size_t vlen, char type, struct rbuf *body)
{
	const uint8_t *v = val;
	size_t end = vlen;

	if (vlen < ENV_HEAD || memcmp(v, "tc1", 3) || v[3] != (uint8_t)type ||
	    v[4] != (sh->keyed ? 1 : 0))
		return -EBADMSG;
	if (sh->keyed) {
		uint8_t m[MAC_LEN];

		if (vlen < ENV_HEAD + MAC_LEN)
			return -EBADMSG;
		end = vlen - MAC_LEN;
		mac(sh, key, klen, v, end, m);
		if (sodium_memcmp(m, v + end, MAC_LEN))
			return -EBADMSG;
	}
	body->p = v + ENV_HEAD;
	body->len = end - ENV_HEAD;
	body->off = 0;
	body->bad = false;
	return 0;
}

/* ------------------------------------------------------------------ */
/* Records                                                            */
/* ------------------------------------------------------------------ */

static size_t key_make(struct tc_shared *sh, char *out, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static size_t key_make(struct tc_shared *sh, char *out, const char *fmt, ...)
{
	va_list ap;
	int n;

	memcpy(out, sh->prefix, sh->prefix_len);
	va_start(ap, fmt);
	n = vsnprintf(out + sh->prefix_len, KEY_MAX - sh->prefix_len, fmt, ap);
	va_end(ap);
	return sh->prefix_len + (size_t)n; /* formats are bounded */
}

static size_t key_name(struct tc_shared *sh, const uint8_t ph[16],
		       char out[KEY_MAX])
{
	char h[33];

	hex(ph, 16, h);
	return key_make(sh, out, "n:%s", h);
}

static size_t key_path(struct tc_shared *sh, char kind, const char *path,
		       char out[KEY_MAX])
{
	uint8_t ph[16];
	char h[33];

	hash128(path, strlen(path), ph);
	hex(ph, 16, h);
	return key_make(sh, out, "%c:%s", kind, h);
}

static size_t key_piece(struct tc_shared *sh, const uint8_t *hash,
			uint32_t i, char out[KEY_MAX])
{
	char h[33];

	hex(hash, 16, h);
	return key_make(sh, out, "c:%s:%x", h, i);
}

/* A decoded name record with the generations it was stamped with. */
struct name_rec {
	struct tc_shared_name n;
	uint64_t ns_gen;
	unsigned ntags;
	uint64_t tag_gen[TC_SHARED_TAGS_MAX];
};

#define NF_CONTENT 1
#define NF_DELETED 2

static int name_encode(struct tc_shared *sh, const struct name_rec *r,
		       const char *key, size_t klen, struct wbuf *b)
{
	const struct tc_shared_name *n = &r->n;

	env_begin(sh, b, T_NAME);
	wb_u8(b, (n->has_content ? NF_CONTENT : 0) |
		      (n->deleted ? NF_DELETED : 0));
	wb_put(b, n->hash, 16);
	wb_u64(b, n->size);
	wb_u32(b, n->mode);
	wb_u32(b, n->uid);
	wb_u32(b, n->gid);
	wb_u32(b, (uint32_t)n->ttl_mode);
	wb_u64(b, (uint64_t)n->mtime_ns);
	wb_u64(b, (uint64_t)n->expires_ns);
	wb_u64(b, (uint64_t)n->version_ns);
	wb_u64(b, n->writer);
	wb_u64(b, r->ns_gen);
	wb_str(b, n->path);
	wb_str(b, n->tags);
	wb_str(b, n->schema);
	wb_u8(b, (uint8_t)r->ntags);
	for (unsigned i = 0; i < r->ntags; i++)
		wb_u64(b, r->tag_gen[i]);
	return env_seal(sh, b, key, klen);
}

/* -EBADMSG for anything malformed (r is then empty), -ENOMEM. */
static int name_decode(struct tc_shared *sh, const char *key, size_t klen,
		       const void *val, size_t vlen, struct name_rec *r)
{
	struct rbuf b;
	const uint8_t *h;
	const char *tv[TC_SHARED_TAGS_MAX];
	size_t tl[TC_SHARED_TAGS_MAX];
	unsigned flags;
	int ntags;

	memset(r, 0, sizeof(*r));
	if (env_open(sh, key, klen, val, vlen, T_NAME, &b))
		return -EBADMSG;
	flags = (unsigned)rb_uint(&b, 1);
	h = rb_take(&b, 16);
	if (h)
		memcpy(r->n.hash, h, 16);
	r->n.has_content = flags & NF_CONTENT;
	r->n.deleted = flags & NF_DELETED;
	r->n.size = rb_uint(&b, 8);
	r->n.mode = (uint32_t)rb_uint(&b, 4);
	r->n.uid = (uint32_t)rb_uint(&b, 4);
	r->n.gid = (uint32_t)rb_uint(&b, 4);
	r->n.ttl_mode = (int)(int32_t)rb_uint(&b, 4);
	r->n.mtime_ns = (int64_t)rb_uint(&b, 8);
	r->n.expires_ns = (int64_t)rb_uint(&b, 8);
	r->n.version_ns = (int64_t)rb_uint(&b, 8);
	r->n.writer = rb_uint(&b, 8);
	r->ns_gen = rb_uint(&b, 8);
	rb_str(&b, TC_SHARED_PATH_MAX, &r->n.path);
	rb_str(&b, TC_SHARED_TAGS_MAX * 65, &r->n.tags);
	rb_str(&b, 64, &r->n.schema);
	r->ntags = (unsigned)rb_uint(&b, 1);
	if (!b.bad) {
		ntags = tags_split(r->n.tags, tv, tl);
		if (ntags < 0 || (unsigned)ntags != r->ntags ||
		    (flags & ~(unsigned)(NF_CONTENT | NF_DELETED)) ||
		    !path_valid(r->n.path) || !schema_valid(r->n.schema))
			b.bad = true;
	}
	for (unsigned i = 0; i < r->ntags && !b.bad; i++)
		r->tag_gen[i] = rb_uint(&b, 8);
	if (b.bad || b.off != b.len) {
		tc_shared_name_free(&r->n);
		return -EBADMSG;
	}
	return 0;
}

static int gen_encode(struct tc_shared *sh, uint64_t nonce, const char *key,
		      size_t klen, struct wbuf *b)
{
	env_begin(sh, b, T_GEN);
	wb_u64(b, nonce);
	wb_u64(b, (uint64_t)sh_now(sh));
	wb_u64(b, sh->writer);
	return env_seal(sh, b, key, klen);
}

static int gen_decode(struct tc_shared *sh, const char *key, size_t klen,
		      const void *val, size_t vlen, uint64_t *nonce)
{
	struct rbuf b;

	if (env_open(sh, key, klen, val, vlen, T_GEN, &b))
		return -EBADMSG;
	*nonce = rb_uint(&b, 8);
	rb_uint(&b, 8);
	rb_uint(&b, 8);
	if (b.bad || b.off != b.len || *nonce == 0)
		return -EBADMSG;
	return 0;
}

static int dir_encode(struct tc_shared *sh, const char *dir,
		      const char *schema, const char *key, size_t klen,
		      struct wbuf *b)
{
	env_begin(sh, b, T_DIR);
	wb_u64(b, (uint64_t)sh_now(sh));
	wb_u64(b, sh->writer);
	wb_str(b, dir);
	wb_str(b, schema);
	return env_seal(sh, b, key, klen);
}

/* The schema directory @dir's record holds, into *schema (malloc). */
static int dir_decode(struct tc_shared *sh, const char *dir, const char *key,
		      size_t klen, const void *val, size_t vlen, char **schema)
{
	struct rbuf b;
	char *d = NULL;
	int rc = -EBADMSG;

	*schema = NULL;
	if (env_open(sh, key, klen, val, vlen, T_DIR, &b))
		return -EBADMSG;
	rb_uint(&b, 8);
	rb_uint(&b, 8);
	rb_str(&b, TC_SHARED_PATH_MAX, &d);
	rb_str(&b, 64, schema);
	if (!b.bad && b.off == b.len && strcmp(d, dir) == 0 &&
	    schema_valid(*schema))
		rc = 0;
	free(d);
	if (rc) {
		free(*schema);
		*schema = NULL;
	}
	return rc;
}

struct event_rec {
	uint8_t type;
	int64_t when;
	uint64_t writer;
	char *a, *b;
};

static int event_encode(struct tc_shared *sh, uint8_t type, const char *a,
			const char *bstr, const char *key, size_t klen,
			struct wbuf *b)
{
	env_begin(sh, b, T_EVENT);
	wb_u8(b, type);
	wb_u64(b, (uint64_t)sh_now(sh));
	wb_u64(b, sh->writer);
	wb_str(b, a);
	wb_str(b, bstr);
	return env_seal(sh, b, key, klen);
}

static int event_decode(struct tc_shared *sh, const char *key, size_t klen,
			const void *val, size_t vlen, struct event_rec *e)
{
	struct rbuf b;

	memset(e, 0, sizeof(*e));
	if (env_open(sh, key, klen, val, vlen, T_EVENT, &b))
		return -EBADMSG;
	e->type = (uint8_t)rb_uint(&b, 1);
	e->when = (int64_t)rb_uint(&b, 8);
	e->writer = rb_uint(&b, 8);
	rb_str(&b, TC_SHARED_PATH_MAX, &e->a);
	rb_str(&b, 64, &e->b);
	if (!b.bad && b.off == b.len &&
	    ((e->type == TC_SHARED_EV_FLUSH) ||
	     (e->type == TC_SHARED_EV_EVICT_TAG &&
	      tag_valid(e->a, strlen(e->a))) ||
	     (e->type == TC_SHARED_EV_SCHEMA && path_valid(e->a) &&
	      schema_valid(e->b))))
		return 0;
	free(e->a);
	free(e->b);
	return -EBADMSG;
}

/* ------------------------------------------------------------------ */
/* memcached                                                          */
/* ------------------------------------------------------------------ */

static int mc_configure(struct tc_shared *sh, memcached_st *mc,
			unsigned replicas, unsigned timeout_ms,
			unsigned retry_s)
{
	static const struct {
		memcached_behavior_t b;
		int which; /* 0 fixed value, 1 timeout ms, 2 timeout us,
			    * 3 retry s, 4 replicas */
		uint64_t v;
	} set[] = {
		{ MEMCACHED_BEHAVIOR_BINARY_PROTOCOL, 0, 1 },
		{ MEMCACHED_BEHAVIOR_KETAMA, 0, 1 },
		{ MEMCACHED_BEHAVIOR_TCP_NODELAY, 0, 1 },
		{ MEMCACHED_BEHAVIOR_REMOVE_FAILED_SERVERS, 0, 0 },
		{ MEMCACHED_BEHAVIOR_CONNECT_TIMEOUT, 1, 0 },
		{ MEMCACHED_BEHAVIOR_POLL_TIMEOUT, 1, 0 },
		{ MEMCACHED_BEHAVIOR_SND_TIMEOUT, 2, 0 },
		{ MEMCACHED_BEHAVIOR_RCV_TIMEOUT, 2, 0 },
		{ MEMCACHED_BEHAVIOR_RETRY_TIMEOUT, 3, 0 },
		{ MEMCACHED_BEHAVIOR_NUMBER_OF_REPLICAS, 4, 0 },
	};

	for (size_t i = 0; i < sizeof(set) / sizeof(*set); i++) {
		uint64_t v = set[i].which == 1	 ? timeout_ms
			     : set[i].which == 2 ? (uint64_t)timeout_ms * 1000
			     : set[i].which == 3 ? retry_s
			     : set[i].which == 4 ? replicas - 1
						 : set[i].v;
		memcached_return_t rc = memcached_behavior_set(mc, set[i].b, v);

		if (memcached_failed(rc)) {
			sh_log(sh, TC_LOG_ERR, "shared: memcached behavior %d: %s",
			       (int)set[i].b, memcached_strerror(mc, rc));
			return -EINVAL;
		}
	}
	return 0;
}

static memcached_st *mc_get(struct tc_shared *sh)
{
	struct timespec wait = { .tv_sec = POOL_WAIT_MS / 1000,
				 .tv_nsec = (POOL_WAIT_MS % 1000) * MSEC };
	memcached_return_t rc;
	memcached_st *mc = memcached_pool_fetch(sh->pool, &wait, &rc);

	if (!mc) {
		count(sh, errors, 1);
		sh_log(sh, TC_LOG_DEBUG, "shared: no free connection: %s",
		       memcached_strerror(NULL, rc));
	}
	return mc;
}

static void mc_put(struct tc_shared *sh, memcached_st *mc)
{
	if (mc)
		memcached_pool_release(sh->pool, mc);
}

/* A request answered definitively (found, or not there). */
static bool mc_settled(memcached_return_t rc)
{
	return rc == MEMCACHED_SUCCESS || rc == MEMCACHED_END ||
	       rc == MEMCACHED_NOTFOUND;
}

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

static size_t slot_find(struct slot *s, size_t n, size_t *hint,
			const char *key, size_t klen)
{
	for (size_t k = 0; k < n; k++) {
		size_t i = (*hint + k) % n;

		if (s[i].klen == klen && !memcmp(s[i].key, key, klen)) {
			*hint = i + 1;
			return i;
		}
	}
	return n;
}

#define ROUTE_PRIMARY (-1)
#define ROUTE_NONE (-2)

static bool server_up(struct tc_shared *sh, unsigned i)
{
	return atomic_load_explicit(&sh->probe_up[i % sh->nservers],
				    memory_order_relaxed);
}

/*
 * Where to ask for @key: its primary when that answered the last probe,
 * else the first of its replicas that did (ROUTE_NONE: no copy is
 * reachable). The library fails over to a replica only when it cannot
 * connect; a server that accepts connections and never answers (stopped,
 * overloaded) would cost a timeout on every request and never be passed.
 */
static int key_route(struct tc_shared *sh, memcached_st *mc, const char *key,
		     size_t klen)
{
	uint32_t idx = memcached_generate_hash(mc, key, klen);

	if (server_up(sh, idx))
		return ROUTE_PRIMARY;
	for (unsigned r = 1; r < sh->copies; r++)
		if (server_up(sh, idx + r))
			return (int)((idx + r) % sh->nservers);
	return ROUTE_NONE;
}

/* One mget for the slots not found yet that go to @route (a group key
 * that hashes to that server makes the library start there). True when
 * every server asked answered. */
static bool mget_round(struct tc_shared *sh, memcached_st *mc,
		       struct slot *s, size_t n, sink_fn sink, void *ctx,
		       int route, bool *timeout)
{
	const char **keys = malloc(n * sizeof(*keys));
	size_t *lens = malloc(n * sizeof(*lens));
	size_t m = 0, hint = 0;
	memcached_result_st res;
	memcached_result_st *r;
	memcached_return_t rc;
	bool ok = true;

	if (!keys || !lens) {
		free(keys);
		free(lens);
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		if (!s[i].found && !s[i].unknown && s[i].route == route) {
			keys[m] = s[i].key;
			lens[m++] = s[i].klen;
		}
	}
	if (m == 0) {
		free(keys);
		free(lens);
		return true;
	}
	if (route == ROUTE_PRIMARY)
		rc = memcached_mget(mc, keys, lens, m);
	else
		rc = memcached_mget_by_key(mc, sh->route[route],
					   strlen(sh->route[route]), keys,
					   lens, m);
	free(keys);
	free(lens);
	/* A failure may be that of the last key's server only, with the
	 * others' requests sent: read what answers come. */
	if (memcached_failed(rc)) {
		sh_log(sh, TC_LOG_DEBUG, "shared: mget: %s",
		       memcached_last_error_message(mc));
		ok = false;
	}
	if (!memcached_result_create(mc, &res))
		return false;
	for (unsigned errs = 0;;) {
		size_t i;
		const char *v;
		size_t vl;

		r = memcached_fetch_result(mc, &res, &rc);
		if (!r && rc == MEMCACHED_TIMEOUT)
			*timeout = true;
		if (!r) {
			/* One server's error (a timeout) ends the call while
			 * the others' answers wait: call again for them, at
			 * most once per server. */
			if (mc_settled(rc) || ++errs > sh->nservers)
				break;
			ok = false;
			continue;
		}
		i = slot_find(s, n, &hint, memcached_result_key_value(r),
			      memcached_result_key_length(r));
		v = memcached_result_value(r);
		vl = memcached_result_length(r);
		if (i == n || s[i].found)
			continue;
		s[i].found = true;
		if (sink) {
			s[i].sink_rc = sink(ctx, i, v, vl);
			continue;
		}
		s[i].val = malloc(vl ? vl : 1);
		if (!s[i].val) {
			s[i].found = false;
			ok = false;
			continue;
		}
		memcpy(s[i].val, v, vl);
		s[i].vlen = vl;
	}
	/* The library skips servers it cannot reach without saying so in
	 * the result; the query's error state (cleared as each query
	 * starts) tells. */
	if (memcached_last_error(mc) == MEMCACHED_TIMEOUT)
		*timeout = true;
	if (!mc_settled(rc) || memcached_last_error(mc) != MEMCACHED_SUCCESS) {
		sh_log(sh, TC_LOG_DEBUG, "shared: fetch: %s / %s",
		       memcached_strerror(mc, rc),
		       memcached_last_error_message(mc));
		ok = false;
	}
	memcached_result_free(&res);
	return ok;
}

/* Ask for every slot still missing, each through its route: one request
 * to the usual servers, and one per server standing in for a down one. */
static bool mget_routes(struct tc_shared *sh, memcached_st *mc,
			struct slot *s, size_t n, sink_fn sink, void *ctx,
			bool *timeout)
{
	bool ok = true, *seen = calloc(sh->nservers, sizeof(*seen));

	if (!seen)
		return false;
	for (size_t i = 0; i < n; i++) {
		if (s[i].found || s[i].unknown)
			continue;
		s[i].route = key_route(sh, mc, s[i].key, s[i].klen);
		s[i].unknown = s[i].route == ROUTE_NONE;
	}
	ok = mget_round(sh, mc, s, n, sink, ctx, ROUTE_PRIMARY, timeout);
	for (size_t i = 0; i < n; i++) {
		int r = s[i].route;

		if (r >= 0 && !s[i].found && !s[i].unknown && !seen[r]) {
			seen[r] = true;
			ok &= mget_round(sh, mc, s, n, sink, ctx, r, timeout);
		}
	}
	free(seen);
	return ok;
}

/*
 * Fetch the values of @n keys (as few requests as the routes allow): each
 * found slot is copied (or given to @sink). Keys with no copy on a server
 * that answered the last probe are not asked at all: unknown, at once.
 * When some server failed, the keys still missing are asked once more,
 * which lets the library go to the replica of a server it has just found
 * dead. A key still missing after that is absent if one of its servers
 * answered the last probe (the library asks the first it can connect to:
 * that one's answer stands), unknown otherwise. After a timeout every key
 * still missing is unknown, without a second try: the library does not
 * fail over from a server that connects but does not answer, so asking
 * again would cost one more timeout for the same silence, and which server
 * it was is not known. The probe takes it out of the routes within a
 * second or so.
 * Returns 0 (slots not found are absent), or -EIO when some slot is
 * unknown (the others are still valid).
 */
static int mc_mget(struct tc_shared *sh, memcached_st *mc, struct slot *s,
		   size_t n, sink_fn sink, void *ctx)
{
	bool missing = false, timeout = false;
	int rc = 0;

	if (!mget_routes(sh, mc, s, n, sink, ctx, &timeout)) {
		for (size_t i = 0; i < n; i++)
			missing |= !s[i].found && !s[i].unknown;
		if (missing && !timeout &&
		    !mget_routes(sh, mc, s, n, sink, ctx, &timeout)) {
			for (size_t i = 0; i < n; i++)
				if (!s[i].found &&
				    (timeout ||
				     key_route(sh, mc, s[i].key, s[i].klen) ==
					     ROUTE_NONE))
					s[i].unknown = true;
		} else if (missing && timeout) {
			for (size_t i = 0; i < n; i++)
				s[i].unknown |= !s[i].found;
		}
	}
	for (size_t i = 0; i < n; i++)
		if (s[i].unknown)
			rc = -EIO;
	if (rc)
		count(sh, errors, 1);
	return rc;
}

/* The primary of @key answered the last probe: writing is worth trying
 * (the library writes the primary first and gives up when it fails). */
static bool primary_up(struct tc_shared *sh, memcached_st *mc,
		       const char *key, size_t klen)
{
	return server_up(sh, memcached_generate_hash(mc, key, klen));
}

static void slots_free(struct slot *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(s[i].val);
}

/*
 * The library writes the replicas' copies as quiet sets it does not flush:
 * they wait in the connection's buffer for the next request to that
 * server, which may never come. Send them now.
 */
static void mc_flush_replicas(struct tc_shared *sh, memcached_st *mc)
{
	if (sh->copies > 1)
		(void)memcached_flush_buffers(mc);
}

/*
 * Store @val under @key (and its replicas). Tried twice (the first try may
 * meet a connection that died). When it still fails and the value is
 * @mutable_, delete the key: the library sends deletes to the replicas even
 * when the primary is down, so no older copy outlives the failed write.
 */
static int mc_store(struct tc_shared *sh, memcached_st *mc, const char *key,
		    size_t klen, const void *val, size_t vlen, time_t exp,
		    bool mutable_)
{
	memcached_return_t rc = MEMCACHED_FAILURE;
	bool up = primary_up(sh, mc, key, klen);

	for (int attempt = 0; up && attempt < 2; attempt++) {
		rc = memcached_set(mc, key, klen, val, vlen, exp, 0);
		if (memcached_success(rc)) {
			count(sh, pushed_bytes, vlen);
			mc_flush_replicas(sh, mc);
			return 0;
		}
	}
	count(sh, errors, 1);
	sh_log(sh, TC_LOG_DEBUG, "shared: set %.*s: %s", (int)klen, key,
	       up ? memcached_last_error_message(mc) : "primary down");
	if (mutable_ && up) {
		(void)memcached_delete(mc, key, klen, 0);
	} else if (mutable_ && sh->copies > 1) {
		/* start at the first replica: the primary may not answer */
		uint32_t r = (memcached_generate_hash(mc, key, klen) + 1) %
			     sh->nservers;

		(void)memcached_delete_by_key(mc, sh->route[r],
					      strlen(sh->route[r]), key, klen,
					      0);
	}
	mc_flush_replicas(sh, mc);
	return -EIO;
}

/* ------------------------------------------------------------------ */
/* Cache of generations and directory schemas                         */
/* ------------------------------------------------------------------ */

static size_t cache_bucket(const char *name)
{
	return (size_t)(XXH3_64bits(name, strlen(name)) % CACHE_BUCKETS);
}

static void cache_clear_locked(struct tc_shared *sh)
{
	for (size_t i = 0; i < CACHE_BUCKETS; i++) {
		struct cent *e = sh->cache[i];

		while (e) {
			struct cent *next = e->next;

			free(e->schema);
			free(e);
			e = next;
		}
		sh->cache[i] = NULL;
	}
	sh->ncache = 0;
}

static struct cent *cache_find_locked(struct tc_shared *sh, const char *name)
{
	for (struct cent *e = sh->cache[cache_bucket(name)]; e; e = e->next)
		if (strcmp(e->name, name) == 0)
			return e;
	return NULL;
}

static bool cache_fresh(struct tc_shared *sh, const struct cent *e)
{
	return sh->revalidate_ns > 0 && sh_now(sh) - e->at < sh->revalidate_ns;
}

/* Remember a generation's nonce, or a directory's schema (copied). */
static void cache_put(struct tc_shared *sh, const char *name, uint64_t nonce,
		      const char *schema)
{
	struct cent *e;
	char *sc = schema ? strdup(schema) : NULL;

	if (sh->revalidate_ns <= 0 || (schema && !sc)) {
		free(sc);
		return;
	}
	pthread_mutex_lock(&sh->cache_lock);
	e = cache_find_locked(sh, name);
	if (!e) {
		size_t b = cache_bucket(name);

		if (sh->ncache >= CACHE_MAX)
			cache_clear_locked(sh);
		e = calloc(1, sizeof(*e) + strlen(name) + 1);
		if (!e) {
			pthread_mutex_unlock(&sh->cache_lock);
			free(sc);
			return;
		}
		strcpy(e->name, name);
		e->next = sh->cache[b];
		sh->cache[b] = e;
		sh->ncache++;
	}
	free(e->schema);
	e->schema = sc;
	e->nonce = nonce;
	e->at = sh_now(sh);
	pthread_mutex_unlock(&sh->cache_lock);
}

/* A fresh cached generation into *nonce. */
static bool cache_gen(struct tc_shared *sh, const char *name, uint64_t *nonce)
{
	struct cent *e;
	bool hit = false;

	pthread_mutex_lock(&sh->cache_lock);
	e = cache_find_locked(sh, name);
	if (e && cache_fresh(sh, e)) {
		*nonce = e->nonce;
		hit = true;
	}
	pthread_mutex_unlock(&sh->cache_lock);
	return hit;
}

/* A fresh cached directory schema, copied into *schema. */
static bool cache_dir(struct tc_shared *sh, const char *name, char **schema)
{
	struct cent *e;
	bool hit = false;

	pthread_mutex_lock(&sh->cache_lock);
	e = cache_find_locked(sh, name);
	if (e && e->schema && cache_fresh(sh, e)) {
		*schema = strdup(e->schema);
		hit = *schema != NULL;
	}
	pthread_mutex_unlock(&sh->cache_lock);
	return hit;
}

/* ------------------------------------------------------------------ */
/* Generations                                                        */
/* ------------------------------------------------------------------ */

/* Cache name / key suffix of a generation: "g:ns" or "g:t:TAG". */
static void gen_id(char out[80], const char *tag, size_t tlen)
{
	if (!tag)
		snprintf(out, 80, "g:ns");
	else
		snprintf(out, 80, "g:t:%.*s", (int)tlen, tag);
}

/*
 * Create the generation @id, absent on the servers: add (atomic on its
 * server, so concurrent mounts agree on one nonce), then set the winner's
 * value so the replicas hold it too. 0 and *nonce, or -EIO.
 */
static int gen_create(struct tc_shared *sh, memcached_st *mc, const char *key,
		      size_t klen, uint64_t *nonce)
{
	struct wbuf b = { 0 };
	uint64_t v = random_nonce();
	memcached_return_t mrc;
	int rc = gen_encode(sh, v, key, klen, &b);

	if (rc)
		goto out;
	if (!primary_up(sh, mc, key, klen)) {
		/* add goes to the primary only: nobody can create it now */
		count(sh, errors, 1);
		rc = -EIO;
		goto out;
	}
	mrc = memcached_add(mc, key, klen, (const char *)b.p, b.len, 0, 0);
	if (memcached_success(mrc)) {
		count(sh, pushed_bytes, b.len);
		(void)memcached_set(mc, key, klen, (const char *)b.p, b.len, 0,
				    0);
		mc_flush_replicas(sh, mc);
		*nonce = v;
		goto out;
	}
	if (mrc == MEMCACHED_NOTSTORED || mrc == MEMCACHED_DATA_EXISTS) {
		struct slot s = { .key = key, .klen = klen };

		rc = mc_mget(sh, mc, &s, 1, NULL, NULL);
		if (rc == 0 && (!s.found || gen_decode(sh, key, klen, s.val,
						       s.vlen, nonce)))
			rc = -EIO; /* lost a race with a deletion: later */
		slots_free(&s, 1);
		goto out;
	}
	count(sh, errors, 1);
	rc = -EIO;
out:
	free(b.p);
	return rc;
}

/*
 * The current nonces of the generations @ids[0..n) (cache names), from the
 * cache or one request; absent ones are created, garbage ones replaced.
 * 0, or -EIO when some could not be known.
 */
static int gens_current(struct tc_shared *sh, memcached_st *mc,
			char (*ids)[80], size_t n, uint64_t *out)
{
	struct slot s[1 + TC_SHARED_TAGS_MAX];
	char keys[1 + TC_SHARED_TAGS_MAX][KEY_MAX];
	size_t idx[1 + TC_SHARED_TAGS_MAX], m = 0;
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		if (cache_gen(sh, ids[i], &out[i]))
			continue;
		memset(&s[m], 0, sizeof(s[m]));
		s[m].klen = key_make(sh, keys[m], "%s", ids[i]);
		s[m].key = keys[m];
		idx[m++] = i;
	}
	if (!m)
		return 0;
	rc = mc_mget(sh, mc, s, m, NULL, NULL);
	for (size_t j = 0; j < m && rc == 0; j++) {
		uint64_t v;

		if (s[j].found &&
		    gen_decode(sh, s[j].key, s[j].klen, s[j].val, s[j].vlen,
			       &v) == 0) {
			out[idx[j]] = v;
		} else if (s[j].found) {
			/* garbage: replace it, which makes every record
			 * stamped with whatever it was stale */
			struct wbuf b = { 0 };

			count(sh, rejected, 1);
			v = random_nonce();
			rc = gen_encode(sh, v, s[j].key, s[j].klen, &b);
			if (!rc)
				rc = mc_store(sh, mc, s[j].key, s[j].klen, b.p,
					      b.len, 0, true);
			free(b.p);
			out[idx[j]] = v;
		} else {
			rc = gen_create(sh, mc, s[j].key, s[j].klen,
					&out[idx[j]]);
		}
		if (rc == 0)
			cache_put(sh, ids[idx[j]], out[idx[j]], NULL);
	}
	slots_free(s, m);
	return rc;
}

/* Replace generation @id by a fresh nonce (flush, evict_tag). */
static int gen_bump(struct tc_shared *sh, memcached_st *mc, const char *id)
{
	char key[KEY_MAX];
	size_t klen = key_make(sh, key, "%s", id);
	struct wbuf b = { 0 };
	uint64_t v = random_nonce();
	int rc = gen_encode(sh, v, key, klen, &b);

	if (!rc)
		rc = mc_store(sh, mc, key, klen, b.p, b.len, 0, true);
	free(b.p);
	if (!rc)
		cache_put(sh, id, v, NULL);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Events                                                             */
/* ------------------------------------------------------------------ */

static int event_append(struct tc_shared *sh, memcached_st *mc,
			uint8_t type, const char *a, const char *bstr)
{
	char ckey[KEY_MAX], key[KEY_MAX];
	size_t cklen = key_make(sh, ckey, "e:seq"), klen;
	uint64_t epoch, seq = 0;
	memcached_return_t mrc;
	struct wbuf b = { 0 };
	int rc;

	/* A random epoch in the high half: a recreated counter is told
	 * from the one it replaces. */
	randombytes_buf(&epoch, sizeof(epoch));
	epoch = ((epoch & 0x7fffffff) | 1) << 32;
	if (!primary_up(sh, mc, ckey, cklen)) { /* counters have no replica */
		count(sh, errors, 1);
		return -EIO;
	}
	mrc = memcached_increment_with_initial(mc, ckey, cklen, 1, epoch, 0,
					       &seq);
	if (memcached_failed(mrc))
		mrc = memcached_increment_with_initial(mc, ckey, cklen, 1,
						       epoch, 0, &seq);
	if (memcached_failed(mrc)) {
		count(sh, errors, 1);
		sh_log(sh, TC_LOG_DEBUG, "shared: event counter: %s",
		       memcached_last_error_message(mc));
		return -EIO;
	}
	klen = key_make(sh, key, "e:%016llx", (unsigned long long)seq);
	rc = event_encode(sh, type, a, bstr, key, klen, &b);
	if (!rc)
		rc = mc_store(sh, mc, key, klen, b.p, b.len, EVENT_TTL_S,
			      false);
	free(b.p);
	return rc;
}

/* Read the event counter: 0 and *seq, -ENOENT (absent), -EIO. */
static int event_counter(struct tc_shared *sh, memcached_st *mc,
			 uint64_t *seq)
{
	char key[KEY_MAX];
	struct slot s = { .key = key };
	uint64_t v = 0;
	int rc;

	s.klen = key_make(sh, key, "e:seq");
	rc = mc_mget(sh, mc, &s, 1, NULL, NULL);
	if (rc == 0 && !s.found)
		rc = -ENOENT;
	if (rc == 0) {
		/* memcached keeps counters in decimal */
		if (s.vlen == 0 || s.vlen > 20)
			rc = -EIO;
		for (size_t i = 0; i < s.vlen && !rc; i++) {
			if (s.val[i] < '0' || s.val[i] > '9' ||
			    v > (UINT64_MAX - 9) / 10)
				rc = -EIO;
			else
				v = v * 10 + (uint64_t)(s.val[i] - '0');
		}
		if (rc)
			count(sh, rejected, 1);
	}
	slots_free(&s, 1);
	*seq = v;
	return rc;
}

static void report_resync(struct tc_shared *sh, tc_shared_event_fn fn,
			  void *ctx, int *reported)
{
	struct tc_shared_event ev = { .type = TC_SHARED_EV_RESYNC,
				      .tag = "", .dir = "", .schema = "" };

	count(sh, resyncs, 1);
	count(sh, events, 1);
	(*reported)++;
	sh_log(sh, TC_LOG_INFO, "shared: events were lost: resync");
	fn(ctx, &ev);
}

/* Report the events (plast, cur] of the current epoch, in order, stopping
 * at one that is not there yet (within the grace period). poll_lock. */
static int poll_fetch_locked(struct tc_shared *sh, memcached_st *mc,
			     uint64_t cur, tc_shared_event_fn fn, void *ctx,
			     int *reported)
{
	struct slot s[EVENTS_PER_POLL];
	char (*keys)[KEY_MAX];
	uint64_t first = sh->plast + 1;
	size_t n;
	bool lost = false;
	int rc;

	if (cur <= sh->plast)
		return 0;
	if (cur - sh->plast > EVENT_GAP_MAX) {
		report_resync(sh, fn, ctx, reported);
		sh->plast = cur;
		sh->pgap_since = 0;
		return 0;
	}
	n = cur - sh->plast < EVENTS_PER_POLL ? (size_t)(cur - sh->plast)
					      : EVENTS_PER_POLL;
	keys = malloc(n * KEY_MAX);
	if (!keys)
		return -ENOMEM;
	memset(s, 0, n * sizeof(*s));
	for (size_t i = 0; i < n; i++) {
		s[i].klen = key_make(sh, keys[i], "e:%016llx",
				     (unsigned long long)(first + i));
		s[i].key = keys[i];
	}
	rc = mc_mget(sh, mc, s, n, NULL, NULL);
	for (size_t i = 0; i < n; i++) {
		struct event_rec e;

		if (s[i].unknown)
			break; /* its server is down: later, in order */
		if (!s[i].found) {
			int64_t now = sh_now(sh);

			if (!sh->pgap_since)
				sh->pgap_since = now;
			if (now - sh->pgap_since < EVENT_GRACE_NS)
				break; /* its writer may be about to set it */
			lost = true; /* and the whole gap with it */
			sh->plast = first + i;
			continue;
		} else if (event_decode(sh, s[i].key, s[i].klen, s[i].val,
					s[i].vlen, &e)) {
			count(sh, rejected, 1);
			lost = true;
		} else {
			if (lost)
				report_resync(sh, fn, ctx, reported);
			lost = false;
			if (e.writer != sh->writer) {
				struct tc_shared_event ev = {
					.type = e.type,
					.tag = e.type == TC_SHARED_EV_EVICT_TAG
						       ? e.a : "",
					.dir = e.type == TC_SHARED_EV_SCHEMA
						       ? e.a : "",
					.schema = e.b,
					.writer = e.writer,
					.when_ns = e.when,
				};

				count(sh, events, 1);
				(*reported)++;
				fn(ctx, &ev);
			}
			free(e.a);
			free(e.b);
		}
		sh->plast = first + i;
		sh->pgap_since = 0;
	}
	if (lost)
		report_resync(sh, fn, ctx, reported);
	slots_free(s, n);
	free(keys);
	return *reported ? 0 : rc;
}

int tc_shared_poll(struct tc_shared *sh, tc_shared_event_fn fn, void *ctx)
{
	memcached_st *mc = mc_get(sh);
	uint64_t cur, epoch;
	int reported = 0, rc;

	if (!mc)
		return -EIO;
	pthread_mutex_lock(&sh->poll_lock);
	rc = event_counter(sh, mc, &cur);
	if (rc == -EIO)
		goto out;
	epoch = cur >> 32;
	switch (sh->pstate) {
	case POLL_UNINIT:
		/* A new client has learned nothing: start from here. */
		if (rc == 0) {
			sh->pstate = POLL_TRACKING;
			sh->pepoch = epoch;
			sh->plast = cur;
		} else {
			sh->pstate = POLL_ABSENT;
		}
		rc = 0;
		goto out;
	case POLL_ABSENT:
		if (rc == -ENOENT) {
			rc = 0;
			goto out;
		}
		sh->pstate = POLL_TRACKING;
		if (sh->phad && epoch == sh->pepoch)
			break; /* the same counter, unreachable for a while */
		/* Created since: every event of this epoch is new. */
		sh->pepoch = epoch;
		sh->plast = (epoch << 32) - 1;
		sh->pgap_since = 0;
		break;
	case POLL_TRACKING:
		if (rc == -ENOENT) {
			report_resync(sh, fn, ctx, &reported);
			sh->pstate = POLL_ABSENT;
			sh->phad = true;
			rc = 0;
			goto out;
		}
		if (epoch != sh->pepoch || cur < sh->plast) {
			report_resync(sh, fn, ctx, &reported);
			sh->pepoch = epoch;
			sh->plast = (epoch << 32) - 1;
			sh->pgap_since = 0;
		}
		break;
	}
	rc = poll_fetch_locked(sh, mc, cur, fn, ctx, &reported);
out:
	pthread_mutex_unlock(&sh->poll_lock);
	mc_put(sh, mc);
	return rc < 0 ? rc : reported;
}

/* ------------------------------------------------------------------ */
/* Open, close, stats                                                 */
/* ------------------------------------------------------------------ */

void tc_shared_config_init(struct tc_shared_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->replicas = 1;
	cfg->revalidate_ns = NSEC;
	cfg->queue_max_bytes = DEFAULT_QUEUE_BYTES;
	cfg->timeout_ms = 200;
	cfg->retry_s = 1;
	cfg->log_level = TC_LOG_WARNING;
}

static void derive(const uint8_t *key, size_t len, const char *purpose,
		   uint8_t *out, size_t outlen)
{
	crypto_generichash_state st;

	crypto_generichash_init(&st, NULL, 0, outlen);
	crypto_generichash_update(&st, (const uint8_t *)purpose,
				  strlen(purpose) + 1);
	crypto_generichash_update(&st, key, len);
	crypto_generichash_final(&st, out, outlen);
}

static int open_config(struct tc_shared *sh, const struct tc_shared_config *cfg)
{
	char err[160];
	const char *ns = cfg->name_space;
	char nsbuf[24];
	int rc;

	rc = servers_parse(cfg->servers, &sh->servers, &sh->nservers, err,
			   sizeof(err));
	if (rc) {
		sh_log(sh, TC_LOG_ERR, "shared=: %s", err);
		return rc;
	}
	if (cfg->key && cfg->key_len < TC_SHARED_KEY_MIN) {
		sh_log(sh, TC_LOG_ERR, "shared_key: %zu bytes, at least %d",
		       cfg->key_len, TC_SHARED_KEY_MIN);
		return -EINVAL;
	}
	if (cfg->replicas < 1) {
		sh_log(sh, TC_LOG_ERR, "shared_replicas: at least 1");
		return -EINVAL;
	}
	if (ns && (!*ns || strlen(ns) > 32 ||
		   !charset_valid(ns, strlen(ns), "_.-"))) {
		sh_log(sh, TC_LOG_ERR,
		       "shared namespace '%s': [A-Za-z0-9_.-]{1,32}", ns);
		return -EINVAL;
	}
	if (cfg->key) {
		uint8_t id[8];

		sh->keyed = true;
		derive(cfg->key, cfg->key_len, "tiercachefs shared mac v1",
		       sh->mac_key, sizeof(sh->mac_key));
		if (!ns) {
			derive(cfg->key, cfg->key_len,
			       "tiercachefs shared namespace v1", id,
			       sizeof(id));
			nsbuf[0] = 'k';
			hex(id, sizeof(id), nsbuf + 1);
			ns = nsbuf;
		}
	}
	if (!ns)
		ns = "pub";
	sh->prefix_len = (size_t)snprintf(sh->prefix, sizeof(sh->prefix),
					  "tc1:%s:", ns);
	sh->revalidate_ns = cfg->revalidate_ns;
	sh->queue_max = cfg->queue_max_bytes ? cfg->queue_max_bytes
					     : DEFAULT_QUEUE_BYTES;
	sh->writer = cfg->writer ? cfg->writer : random_nonce();
	return 0;
}

/* A group key for each server (see struct tc_shared.route). Servers own
 * long stretches of the continuum, so a few tries find each. */
static int find_routes(struct tc_shared *sh)
{
	unsigned found = 0;

	sh->route = calloc(sh->nservers, sizeof(*sh->route));
	if (!sh->route)
		return -ENOMEM;
	for (unsigned j = 0; found < sh->nservers && j < 1000000; j++) {
		char g[24];
		int len = snprintf(g, sizeof(g), "tc-route-%u", j);
		uint32_t i = memcached_generate_hash(sh->master, g, (size_t)len);

		if (i < sh->nservers && !sh->route[i][0]) {
			memcpy(sh->route[i], g, (size_t)len + 1);
			found++;
		}
	}
	if (found < sh->nservers) {
		sh_log(sh, TC_LOG_ERR, "shared: no route to some server");
		return -EINVAL;
	}
	return 0;
}

static int open_memcached(struct tc_shared *sh,
			  const struct tc_shared_config *cfg)
{
	unsigned replicas = cfg->replicas;
	unsigned tmo = cfg->timeout_ms ? cfg->timeout_ms : 200;
	unsigned retry = cfg->retry_s ? cfg->retry_s : 1;
	int rc;

	if (replicas > sh->nservers) {
		sh_log(sh, TC_LOG_WARNING,
		       "shared_replicas=%u with %u servers: %u copies",
		       replicas, sh->nservers, sh->nservers);
		replicas = sh->nservers;
	}
	sh->master = memcached_create(NULL);
	sh->probe = calloc(sh->nservers, sizeof(*sh->probe));
	sh->probe_up = calloc(sh->nservers, sizeof(*sh->probe_up));
	sh->copies = replicas;
	for (unsigned i = 0; sh->probe_up && i < sh->nservers; i++)
		atomic_init(&sh->probe_up[i], true); /* until the first probe */
	if (!sh->master || !sh->probe || !sh->probe_up)
		return -ENOMEM;
	rc = mc_configure(sh, sh->master, replicas, tmo, retry);
	for (unsigned i = 0; i < sh->nservers && !rc; i++) {
		memcached_return_t mrc =
			memcached_server_add(sh->master, sh->servers[i].host,
					     (in_port_t)sh->servers[i].port);

		sh->probe[i] = memcached_create(NULL);
		if (!sh->probe[i])
			return -ENOMEM;
		rc = mc_configure(sh, sh->probe[i], 1, tmo, retry);
		if (!rc && memcached_success(mrc))
			mrc = memcached_server_add(
				sh->probe[i], sh->servers[i].host,
				(in_port_t)sh->servers[i].port);
		if (!rc && memcached_failed(mrc)) {
			sh_log(sh, TC_LOG_ERR, "shared=: server %s:%u: %s",
			       sh->servers[i].host, sh->servers[i].port,
			       memcached_strerror(sh->master, mrc));
			rc = -EINVAL;
		}
	}
	if (rc)
		return rc;
	rc = find_routes(sh);
	if (rc)
		return rc;
	sh->mc_push = memcached_clone(NULL, sh->master);
	sh->pool = memcached_pool_create(sh->master, 1, POOL_MAX);
	if (!sh->mc_push || !sh->pool)
		return -ENOMEM;
	return 0;
}

static void *push_main(void *arg);

static int init_sync(struct tc_shared *sh)
{
	pthread_condattr_t ca;
	int rc;

	pthread_mutex_init(&sh->qlock, NULL);
	pthread_mutex_init(&sh->gate, NULL);
	pthread_mutex_init(&sh->cache_lock, NULL);
	pthread_mutex_init(&sh->poll_lock, NULL);
	rc = pthread_condattr_init(&ca);
	if (rc)
		return -rc;
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&sh->qcond, &ca);
	pthread_cond_init(&sh->qidle, &ca);
	pthread_condattr_destroy(&ca);
	return 0;
}

int tc_shared_open(const struct tc_shared_config *cfg, struct tc_shared **out)
{
	struct tc_shared *sh;
	int rc;

	if (sodium_init() < 0)
		return -EIO;
	sh = calloc(1, sizeof(*sh));
	if (!sh)
		return -ENOMEM;
	sh->log_fn = cfg->log_fn;
	sh->log_ctx = cfg->log_ctx;
	sh->log_level = cfg->log_level;
	sh->clock = cfg->clock;
	sh->clock_ctx = cfg->clock_ctx;
	rc = init_sync(sh);
	if (rc) {
		free(sh);
		return rc;
	}
	rc = open_config(sh, cfg);
	if (!rc)
		rc = open_memcached(sh, cfg);
	if (!rc) {
		sh->ring = calloc(DROPPED_RING, sizeof(*sh->ring));
		if (!sh->ring)
			rc = -ENOMEM;
	}
	if (!rc) {
		rc = -pthread_create(&sh->thread, NULL, push_main, sh);
		sh->thread_started = rc == 0;
	}
	if (rc) {
		tc_shared_close(sh);
		return rc;
	}
	sh_log(sh, TC_LOG_INFO,
	       "shared: %u servers, %u copies, namespace %.*s, %s", sh->nservers,
	       cfg->replicas < sh->nservers ? cfg->replicas : sh->nservers,
	       (int)(sh->prefix_len - 5), sh->prefix + 4,
	       sh->keyed ? "authenticated" : "no key");
	*out = sh;
	return 0;
}

static void push_free(struct push *p)
{
	if (!p)
		return;
	tc_shared_name_free(&p->name);
	free(p->data);
	if (p->kind == PUSH_FD && p->fd >= 0)
		close(p->fd);
	free(p);
}

void tc_shared_close(struct tc_shared *sh)
{
	struct push *p;

	if (!sh)
		return;
	if (sh->thread_started) {
		pthread_mutex_lock(&sh->qlock);
		sh->stop = true;
		pthread_cond_broadcast(&sh->qcond);
		pthread_mutex_unlock(&sh->qlock);
		pthread_join(sh->thread, NULL);
	}
	while ((p = sh->qhead)) {
		sh->qhead = p->next;
		count(sh, push_dropped, 1);
		push_free(p);
	}
	if (sh->pool)
		memcached_pool_destroy(sh->pool); /* gives the master back */
	memcached_free(sh->master);
	memcached_free(sh->mc_push);
	for (unsigned i = 0; sh->probe && i < sh->nservers; i++)
		memcached_free(sh->probe[i]);
	free(sh->probe);
	free((void *)sh->probe_up);
	free(sh->route);
	free(sh->servers);
	free(sh->ring);
	cache_clear_locked(sh);
	sodium_memzero(sh->mac_key, sizeof(sh->mac_key));
	pthread_mutex_destroy(&sh->qlock);
	pthread_mutex_destroy(&sh->gate);
	pthread_mutex_destroy(&sh->cache_lock);
	pthread_mutex_destroy(&sh->poll_lock);
	pthread_cond_destroy(&sh->qcond);
	pthread_cond_destroy(&sh->qidle);
	free(sh);
}

uint64_t tc_shared_writer(const struct tc_shared *sh)
{
	return sh->writer;
}

void tc_shared_stats(struct tc_shared *sh, struct tc_shared_stats *out)
{
#define L(f) atomic_load_explicit(&sh->c.f, memory_order_relaxed)
	out->hits = L(hits);
	out->misses = L(misses);
	out->errors = L(errors);
	out->rejected = L(rejected);
	out->stale = L(stale);
	out->pushed_bytes = L(pushed_bytes);
	out->fetched_bytes = L(fetched_bytes);
	out->pushes = L(pushes);
	out->push_dropped = L(push_dropped);
	out->events = L(events);
	out->resyncs = L(resyncs);
#undef L
	pthread_mutex_lock(&sh->qlock);
	out->queue_items = sh->qitems;
	out->queue_bytes = sh->qbytes;
	pthread_mutex_unlock(&sh->qlock);
	out->servers = sh->nservers;
	out->servers_up =
		atomic_load_explicit(&sh->servers_up, memory_order_relaxed);
}

/* ------------------------------------------------------------------ */
/* The push queue                                                     */
/* ------------------------------------------------------------------ */

void tc_shared_name_free(struct tc_shared_name *n)
{
	free(n->path);
	free(n->tags);
	free(n->schema);
	n->path = n->tags = n->schema = NULL;
}

static int name_copy(struct tc_shared_name *dst,
		     const struct tc_shared_name *src)
{
	*dst = *src;
	dst->path = strdup(src->path);
	dst->tags = strdup(src->tags ? src->tags : "");
	dst->schema = strdup(src->schema ? src->schema : "");
	if (!dst->path || !dst->tags || !dst->schema) {
		tc_shared_name_free(dst);
		return -ENOMEM;
	}
	return 0;
}

/* Remember that the name @path's key must be deleted. qlock. */
static void ring_add_locked(struct tc_shared *sh, const char *path)
{
	size_t slot;

	if (sh->ring_len == DROPPED_RING) { /* forget the oldest */
		sh->ring_head = (sh->ring_head + 1) % DROPPED_RING;
		sh->ring_len--;
	}
	slot = (sh->ring_head + sh->ring_len) % DROPPED_RING;
	hash128(path, strlen(path), sh->ring[slot]);
	sh->ring_len++;
}

static void q_unlink_locked(struct tc_shared *sh, struct push *prev,
			    struct push *p)
{
	if (prev)
		prev->next = p->next;
	else
		sh->qhead = p->next;
	if (sh->qtail == p)
		sh->qtail = prev;
	sh->qitems--;
	sh->qbytes -= p->mem;
	if (p->kind == PUSH_FD)
		sh->qfds--;
}

static void q_drop_oldest_locked(struct tc_shared *sh)
{
	struct push *p = sh->qhead;

	q_unlink_locked(sh, NULL, p);
	if (p->kind == PUSH_NAME)
		ring_add_locked(sh, p->name.path);
	count(sh, push_dropped, 1);
	push_free(p);
}

/* Take ownership of @p and queue it, dropping the oldest to make room. */
static void q_add(struct tc_shared *sh, struct push *p)
{
	pthread_mutex_lock(&sh->qlock);
	if (p->mem > sh->queue_max || sh->stop) {
		pthread_mutex_unlock(&sh->qlock);
		count(sh, push_dropped, 1);
		push_free(p);
		return;
	}
	while (sh->qhead &&
	       (sh->qbytes + p->mem > sh->queue_max ||
		sh->qitems >= QUEUE_MAX_ITEMS ||
		(p->kind == PUSH_FD && sh->qfds >= QUEUE_MAX_FDS)))
		q_drop_oldest_locked(sh);
	p->next = NULL;
	if (sh->qtail)
		sh->qtail->next = p;
	else
		sh->qhead = p;
	sh->qtail = p;
	sh->qitems++;
	sh->qbytes += p->mem;
	if (p->kind == PUSH_FD)
		sh->qfds++;
	pthread_cond_signal(&sh->qcond);
	pthread_mutex_unlock(&sh->qlock);
}

static bool has_tag(const char *tags, const char *tag)
{
	size_t l = strlen(tag);

	for (const char *p = tags; *p;) {
		const char *e = strchr(p, ',');
		size_t pl = e ? (size_t)(e - p) : strlen(p);

		if (pl == l && !memcmp(p, tag, l))
			return true;
		if (!e)
			break;
		p = e + 1;
	}
	return false;
}

/* Discard queued name pushes carrying @tag (NULL: all of them). */
static void q_discard_names(struct tc_shared *sh, const char *tag)
{
	struct push *prev = NULL, *p, *next, *gone = NULL;

	pthread_mutex_lock(&sh->qlock);
	for (p = sh->qhead; p; p = next) {
		next = p->next;
		if (p->kind == PUSH_NAME && (!tag || has_tag(p->name.tags, tag))) {
			q_unlink_locked(sh, prev, p);
			p->next = gone;
			gone = p;
		} else {
			prev = p;
		}
	}
	if (!sh->qhead && !sh->ring_len && !sh->busy)
		pthread_cond_broadcast(&sh->qidle);
	pthread_mutex_unlock(&sh->qlock);
	while ((p = gone)) {
		gone = p->next;
		push_free(p);
	}
}

int tc_shared_push_name(struct tc_shared *sh, const struct tc_shared_name *n)
{
	const char *tv[TC_SHARED_TAGS_MAX];
	size_t tl[TC_SHARED_TAGS_MAX];
	struct push *p;

	if (!path_valid(n->path) || tags_split(n->tags ? n->tags : "", tv,
					       tl) < 0 ||
	    !schema_valid(n->schema ? n->schema : ""))
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->kind = PUSH_NAME;
	p->fd = -1;
	if (name_copy(&p->name, n)) {
		free(p);
		return -ENOMEM;
	}
	p->name.writer = sh->writer;
	p->mem = sizeof(*p) + strlen(p->name.path) + strlen(p->name.tags) +
		 strlen(p->name.schema);
	q_add(sh, p);
	return 0;
}

int tc_shared_push_content(struct tc_shared *sh, const uint8_t *hash,
			   const void *data, size_t len)
{
	struct push *p;

	if (len == 0)
		return 0;
	if (len > sh->queue_max) { /* would be dropped at once */
		count(sh, push_dropped, 1);
		return 0;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->data = malloc(len);
	if (!p->data) {
		free(p);
		return -ENOMEM;
	}
	memcpy(p->data, data, len);
	p->kind = PUSH_CONTENT;
	p->fd = -1;
	memcpy(p->hash, hash, TC_SHARED_HASH_LEN);
	p->size = len;
	p->mem = sizeof(*p) + len;
	q_add(sh, p);
	return 0;
}

int tc_shared_push_content_fd(struct tc_shared *sh, const uint8_t *hash,
			      uint64_t size, int fd)
{
	struct push *p;

	if (size == 0)
		return 0;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (p->fd < 0) {
		int rc = -errno;

		free(p);
		return rc;
	}
	p->kind = PUSH_FD;
	memcpy(p->hash, hash, TC_SHARED_HASH_LEN);
	p->size = size;
	p->mem = sizeof(*p);
	q_add(sh, p);
	return 0;
}

void tc_shared_hold(struct tc_shared *sh, bool hold)
{
	pthread_mutex_lock(&sh->qlock);
	sh->hold = hold;
	pthread_cond_signal(&sh->qcond);
	pthread_mutex_unlock(&sh->qlock);
}

int tc_shared_drain(struct tc_shared *sh, int64_t timeout_ns)
{
	struct timespec until = mono_ts(mono_now() + timeout_ns);
	int rc = 0;

	pthread_mutex_lock(&sh->qlock);
	while ((sh->qhead || sh->ring_len || sh->busy) && !sh->stop) {
		if (pthread_cond_timedwait(&sh->qidle, &sh->qlock, &until) ==
		    ETIMEDOUT) {
			rc = sh->qhead || sh->ring_len || sh->busy ? -ETIMEDOUT
								   : 0;
			break;
		}
	}
	pthread_mutex_unlock(&sh->qlock);
	return rc;
}

/* ------------------------------------------------------------------ */
/* The push thread                                                    */
/* ------------------------------------------------------------------ */

/* memcached's exptime for a name record: relative seconds, 0 = never,
 * -1 = already expired. */
static time_t name_exptime(struct tc_shared *sh, const struct tc_shared_name *n)
{
	int64_t rem;

	if (n->deleted)
		return TOMBSTONE_TTL_S;
	if (!n->expires_ns || n->ttl_mode == TC_TTL_SLIDING)
		return 0; /* sliding: reads elsewhere may extend it */
	rem = n->expires_ns - sh_now(sh);
	if (rem <= 0)
		return -1;
	if (rem / NSEC >= RELATIVE_EXPIRY_MAX)
		return 0;
	return (time_t)(rem / NSEC + 2); /* never before our own check */
}

static void serve_name(struct tc_shared *sh, struct push *p)
{
	memcached_st *mc = sh->mc_push;
	const char *tv[TC_SHARED_TAGS_MAX];
	size_t tl[TC_SHARED_TAGS_MAX];
	char ids[1 + TC_SHARED_TAGS_MAX][80];
	uint64_t gens[1 + TC_SHARED_TAGS_MAX];
	struct name_rec r = { .n = p->name };
	char key[KEY_MAX];
	size_t klen = key_path(sh, 'n', p->name.path, key);
	struct wbuf b = { 0 };
	int ntags = tags_split(p->name.tags, tv, tl);
	time_t exp = name_exptime(sh, &p->name);

	if (exp < 0) { /* expired while queued: only hide older ones */
		(void)memcached_delete(mc, key, klen, 0);
		return;
	}
	gen_id(ids[0], NULL, 0);
	for (int i = 0; i < ntags; i++)
		gen_id(ids[1 + i], tv[i], tl[i]);
	if (gens_current(sh, mc, ids, 1 + (size_t)ntags, gens)) {
		/* cannot stamp it: a miss elsewhere rather than a wrong
		 * stamp; an older record must not stay visible either */
		(void)memcached_delete(mc, key, klen, 0);
		return;
	}
	r.ns_gen = gens[0];
	r.ntags = (unsigned)ntags;
	for (int i = 0; i < ntags; i++)
		r.tag_gen[i] = gens[1 + i];
	if (name_encode(sh, &r, key, klen, &b) == 0 &&
	    mc_store(sh, mc, key, klen, b.p, b.len, exp, true) == 0)
		count(sh, pushes, 1);
	free(b.p);
}

static int piece_encode(struct tc_shared *sh, const struct push *p,
			uint32_t i, uint32_t count_, const void *data,
			size_t len, const char *key, size_t klen,
			struct wbuf *b)
{
	env_begin(sh, b, T_PIECE);
	wb_u64(b, p->size);
	wb_u32(b, i);
	wb_u32(b, count_);
	wb_put(b, data, len);
	return env_seal(sh, b, key, klen);
}

static int read_full(int fd, void *buf, size_t len, off_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t r = pread(fd, (char *)buf + got, len - got,
				  off + (off_t)got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO; /* shorter than announced */
		got += (size_t)r;
	}
	return 0;
}

static void serve_content(struct tc_shared *sh, struct push *p)
{
	uint64_t npieces = (p->size + TC_SHARED_PIECE - 1) / TC_SHARED_PIECE;
	unsigned char *buf = NULL;
	struct wbuf b = { 0 };

	if (npieces > UINT32_MAX)
		return;
	if (p->kind == PUSH_FD) {
		buf = malloc(TC_SHARED_PIECE);
		if (!buf) {
			count(sh, errors, 1);
			return;
		}
	}
	for (uint32_t i = 0; i < npieces; i++) {
		uint64_t off = (uint64_t)i * TC_SHARED_PIECE;
		size_t len = p->size - off < TC_SHARED_PIECE
				     ? (size_t)(p->size - off)
				     : TC_SHARED_PIECE;
		const void *data = p->data ? p->data + off : buf;
		char key[KEY_MAX];
		size_t klen = key_piece(sh, p->hash, i, key);

		if (!p->data && read_full(p->fd, buf, len, (off_t)off)) {
			count(sh, errors, 1);
			break;
		}
		b.len = 0;
		if (piece_encode(sh, p, i, (uint32_t)npieces, data, len, key,
				 klen, &b) ||
		    mc_store(sh, sh->mc_push, key, klen, b.p, b.len, 0, false))
			break; /* the rest is useless without this piece */
		if (i + 1 == npieces)
			count(sh, pushes, 1);
	}
	free(b.p);
	free(buf);
}

/* Probe every server (a get of a key nobody stores): the servers_up
 * gauge, and a log line when one goes down or comes back. */
static void probe_servers(struct tc_shared *sh)
{
	char key[KEY_MAX];
	size_t klen = key_make(sh, key, "probe");
	uint64_t up = 0;

	for (unsigned i = 0; i < sh->nservers; i++) {
		memcached_return_t rc;
		size_t vlen;
		uint32_t flags;
		char *v = memcached_get(sh->probe[i], key, klen, &vlen, &flags,
					&rc);
		bool ok = v || rc == MEMCACHED_NOTFOUND;

		free(v);
		if (ok != atomic_load(&sh->probe_up[i]))
			sh_log(sh, ok ? TC_LOG_INFO : TC_LOG_WARNING,
			       "shared: server %s:%u is %s", sh->servers[i].host,
			       sh->servers[i].port, ok ? "up" : "down");
		atomic_store(&sh->probe_up[i], ok);
		up += ok;
	}
	atomic_store_explicit(&sh->servers_up, up, memory_order_relaxed);
}

static void *push_main(void *arg)
{
	struct tc_shared *sh = arg;
	int64_t next_probe = 0;

	pthread_mutex_lock(&sh->qlock);
	while (!sh->stop) {
		struct push *p;

		if (mono_now() >= next_probe) {
			pthread_mutex_unlock(&sh->qlock);
			probe_servers(sh);
			next_probe = mono_now() + PROBE_INTERVAL_NS;
			pthread_mutex_lock(&sh->qlock);
			continue;
		}
		if (sh->hold) {
			struct timespec until = mono_ts(next_probe);

			pthread_cond_timedwait(&sh->qcond, &sh->qlock, &until);
			continue;
		}
		if (sh->ring_len) {
			uint8_t ph[TC_SHARED_HASH_LEN];
			char key[KEY_MAX];
			size_t klen;

			memcpy(ph, sh->ring[sh->ring_head], sizeof(ph));
			sh->ring_head = (sh->ring_head + 1) % DROPPED_RING;
			sh->ring_len--;
			sh->busy = true;
			pthread_mutex_unlock(&sh->qlock);
			klen = key_name(sh, ph, key);
			(void)memcached_delete(sh->mc_push, key, klen, 0);
			pthread_mutex_lock(&sh->qlock);
			sh->busy = false;
		} else if ((p = sh->qhead)) {
			q_unlink_locked(sh, NULL, p);
			sh->busy = true;
			pthread_mutex_unlock(&sh->qlock);
			if (p->kind == PUSH_NAME) {
				pthread_mutex_lock(&sh->gate);
				serve_name(sh, p);
				pthread_mutex_unlock(&sh->gate);
			} else {
				serve_content(sh, p);
			}
			push_free(p);
			pthread_mutex_lock(&sh->qlock);
			sh->busy = false;
		} else {
			struct timespec until = mono_ts(next_probe);

			pthread_cond_timedwait(&sh->qcond, &sh->qlock, &until);
		}
		if (!sh->qhead && !sh->ring_len && !sh->busy)
			pthread_cond_broadcast(&sh->qidle);
	}
	pthread_cond_broadcast(&sh->qidle);
	pthread_mutex_unlock(&sh->qlock);
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Reading names                                                      */
/* ------------------------------------------------------------------ */

/* The directories above @path, deepest last: "/", "/a", "/a/b" for
 * "/a/b/c". Returns how many (each malloc'd), or -ENOMEM. */
static int ancestors(const char *path, char ***out)
{
	size_t n = 0, len = strlen(path);
	char **v;

	for (size_t i = 0; i < len; i++)
		n += path[i] == '/';
	if (len == 1)
		n = 0; /* the root has none */
	v = calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0, k = 0; k < n; i++) {
		if (path[i] != '/')
			continue;
		v[k] = strndup(path, i ? i : 1);
		if (!v[k]) {
			while (k--)
				free(v[k]);
			free(v);
			return -ENOMEM;
		}
		k++;
	}
	*out = v;
	return (int)n;
}

struct lookup {
	char **anc;     /* ancestor directories */
	int nanc;
	char **schema;  /* their schemas ("" none), once known */
	struct slot *s; /* 0: name, 1: ns generation, then directories */
	char (*keys)[KEY_MAX];
	size_t *anc_slot; /* slot of each ancestor, or 0: cached */
	size_t n;
	bool ns_slot;     /* slot 1 is the namespace generation */
};

static void lookup_free(struct lookup *l)
{
	for (int i = 0; i < l->nanc; i++) {
		free(l->anc[i]);
		if (l->schema)
			free(l->schema[i]);
	}
	free(l->anc);
	free(l->schema);
	if (l->s)
		slots_free(l->s, l->n);
	free(l->s);
	free(l->keys);
	free(l->anc_slot);
}

/* Build the request of a lookup: the name, the namespace generation and
 * the ancestors' schemas that are not cached. */
static int lookup_prepare(struct tc_shared *sh, const char *path,
			  struct lookup *l)
{
	char cname[KEY_MAX];
	uint64_t ns;
	size_t cap;

	l->nanc = ancestors(path, &l->anc);
	if (l->nanc < 0)
		return -ENOMEM;
	cap = 2 + (size_t)l->nanc;
	l->schema = calloc(cap, sizeof(*l->schema));
	l->s = calloc(cap, sizeof(*l->s));
	l->keys = malloc(cap * KEY_MAX);
	l->anc_slot = calloc(cap, sizeof(*l->anc_slot));
	if (!l->schema || !l->s || !l->keys || !l->anc_slot)
		return -ENOMEM;
	l->s[0].klen = key_path(sh, 'n', path, l->keys[0]);
	l->n = 1;
	if (!cache_gen(sh, "g:ns", &ns)) {
		l->s[l->n++].klen = key_make(sh, l->keys[1], "g:ns");
		l->ns_slot = true;
	}
	for (int i = 0; i < l->nanc; i++) {
		size_t k = key_path(sh, 'd', l->anc[i], cname);

		/* the cache name of a directory is its key's suffix */
		if (cache_dir(sh, cname + sh->prefix_len, &l->schema[i]))
			continue;
		memcpy(l->keys[l->n], cname, k + 1);
		l->s[l->n].klen = k;
		l->anc_slot[i] = l->n++;
	}
	for (size_t i = 0; i < l->n; i++)
		l->s[i].key = l->keys[i];
	return 0;
}

/* Absorb what the request brought besides the name: the namespace
 * generation (if valid) and the directories' schemas. */
static int lookup_absorb(struct tc_shared *sh, struct lookup *l)
{
	uint64_t ns;

	if (l->ns_slot && l->s[1].found &&
	    gen_decode(sh, l->s[1].key, l->s[1].klen, l->s[1].val,
		       l->s[1].vlen, &ns) == 0)
		cache_put(sh, "g:ns", ns, NULL);
	for (int i = 0; i < l->nanc; i++) {
		struct slot *s;

		if (!l->anc_slot[i])
			continue;
		s = &l->s[l->anc_slot[i]];
		if (s->found && dir_decode(sh, l->anc[i], s->key, s->klen,
					   s->val, s->vlen, &l->schema[i])) {
			count(sh, rejected, 1);
			s->found = false;
		}
		if (!s->found)
			l->schema[i] = strdup("");
		if (!l->schema[i])
			return -ENOMEM;
		cache_put(sh, s->key + sh->prefix_len, 0, l->schema[i]);
	}
	return 0;
}

/* The schema the nearest ancestor expects, or NULL. */
static const char *lookup_expected(const struct lookup *l)
{
	for (int i = l->nanc - 1; i >= 0; i--)
		if (l->schema[i][0])
			return l->schema[i];
	return NULL;
}

/* Is the record @r current: generations, expiry, schema? */
static bool record_current(struct tc_shared *sh, memcached_st *mc,
			   struct name_rec *r, const struct lookup *l,
			   int *rc)
{
	const char *tv[TC_SHARED_TAGS_MAX];
	size_t tl[TC_SHARED_TAGS_MAX];
	char ids[1 + TC_SHARED_TAGS_MAX][80];
	uint64_t gens[1 + TC_SHARED_TAGS_MAX];
	int ntags = tags_split(r->n.tags, tv, tl);
	const char *want;

	gen_id(ids[0], NULL, 0);
	for (int i = 0; i < ntags; i++)
		gen_id(ids[1 + i], tv[i], tl[i]);
	*rc = gens_current(sh, mc, ids, 1 + (size_t)ntags, gens);
	if (*rc)
		return false;
	*rc = -ENOENT;
	if (gens[0] != r->ns_gen)
		return false;
	for (int i = 0; i < ntags; i++)
		if (gens[1 + i] != r->tag_gen[i])
			return false;
	if (r->n.expires_ns && r->n.expires_ns <= sh_now(sh))
		return false;
	want = lookup_expected(l);
	if (want && !r->n.deleted && S_ISREG(r->n.mode) &&
	    strcmp(want, r->n.schema))
		return false;
	*rc = 0;
	return true;
}

int tc_shared_get_name(struct tc_shared *sh, const char *path,
		       struct tc_shared_name *out)
{
	struct lookup l = { 0 };
	struct name_rec r = { 0 };
	memcached_st *mc = NULL;
	int rc;

	if (!path_valid(path))
		return -EINVAL;
	rc = lookup_prepare(sh, path, &l);
	if (rc)
		goto out;
	mc = mc_get(sh);
	if (!mc) {
		rc = -EIO;
		goto out;
	}
	/* -EIO: some key could not be asked; even with the name at hand,
	 * an unknown directory schema cannot be taken for none */
	rc = mc_mget(sh, mc, l.s, l.n, NULL, NULL);
	if (rc)
		goto out;
	rc = lookup_absorb(sh, &l);
	if (rc)
		goto out;
	if (!l.s[0].found) {
		rc = -ENOENT;
		goto out;
	}
	rc = name_decode(sh, l.s[0].key, l.s[0].klen, l.s[0].val, l.s[0].vlen,
			 &r);
	if (rc == 0 && strcmp(r.n.path, path)) {
		tc_shared_name_free(&r.n);
		rc = -EBADMSG; /* a key collision, or a record moved */
	}
	if (rc == -EBADMSG) {
		count(sh, rejected, 1);
		rc = -ENOENT;
	}
	if (rc)
		goto out;
	if (!record_current(sh, mc, &r, &l, &rc)) {
		if (rc == -ENOENT)
			count(sh, stale, 1);
		tc_shared_name_free(&r.n);
		goto out;
	}
	*out = r.n;
out:
	mc_put(sh, mc);
	lookup_free(&l);
	count(sh, hits, rc == 0);
	count(sh, misses, rc != 0 && rc != -EINVAL);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Reading contents                                                   */
/* ------------------------------------------------------------------ */

struct fetch {
	struct tc_shared *sh;
	struct slot *s;
	uint64_t size;
	uint32_t npieces, first; /* slot i is piece first + i */
	unsigned char *buf;      /* piece first lands at buf */
};

static int piece_sink(void *ctx, size_t i, const char *val, size_t vlen)
{
	struct fetch *f = ctx;
	uint32_t piece = f->first + (uint32_t)i;
	uint64_t off = (uint64_t)piece * TC_SHARED_PIECE;
	size_t want = f->size - off < TC_SHARED_PIECE
			      ? (size_t)(f->size - off)
			      : TC_SHARED_PIECE;
	struct rbuf b;
	const uint8_t *data;

	if (env_open(f->sh, f->s[i].key, f->s[i].klen, val, vlen, T_PIECE,
		     &b))
		return -EBADMSG;
	if (rb_uint(&b, 8) != f->size || rb_uint(&b, 4) != piece ||
	    rb_uint(&b, 4) != f->npieces || b.len - b.off != want)
		return -EBADMSG;
	data = rb_take(&b, want);
	if (!data)
		return -EBADMSG;
	memcpy(f->buf + (size_t)i * TC_SHARED_PIECE, data, want);
	return 0;
}

/* Fetch pieces [first, first + n) into @buf. 0, -ENOENT, -EIO. */
static int fetch_pieces(struct tc_shared *sh, memcached_st *mc,
			const uint8_t *hash, uint64_t size, uint32_t npieces,
			uint32_t first, uint32_t n, unsigned char *buf)
{
	struct slot *s = calloc(n, sizeof(*s));
	char (*keys)[KEY_MAX] = malloc((size_t)n * KEY_MAX);
	struct fetch f = { sh, s, size, npieces, first, buf };
	int rc = -ENOMEM;

	if (!s || !keys)
		goto out;
	for (uint32_t i = 0; i < n; i++) {
		s[i].klen = key_piece(sh, hash, first + i, keys[i]);
		s[i].key = keys[i];
	}
	rc = mc_mget(sh, mc, s, n, piece_sink, &f);
	for (uint32_t i = 0; i < n && rc != -EIO; i++) {
		if (s[i].found && s[i].sink_rc) {
			count(sh, rejected, 1);
			rc = -EIO;
		} else if (!s[i].found) {
			rc = -ENOENT;
		}
	}
out:
	free(s);
	free(keys);
	return rc;
}

static void digest(XXH3_state_t *st, uint8_t out[16])
{
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(st));
	memcpy(out, c.digest, 16);
}

/*
 * The body of both content reads: pieces in batches of @batch, fed in
 * order to the hash and to @emit (which stores them). @buf holds one
 * batch, or (when @emit is NULL) the whole content.
 */
static int get_content(struct tc_shared *sh, const uint8_t *hash,
		       uint64_t size, unsigned char *buf, uint32_t batch,
		       int (*emit)(void *, const void *, size_t, uint64_t),
		       void *ectx)
{
	uint64_t np64 = (size + TC_SHARED_PIECE - 1) / TC_SHARED_PIECE;
	XXH3_state_t *st = NULL;
	memcached_st *mc = NULL;
	uint8_t got[16];
	int rc = 0;

	if (np64 > UINT32_MAX)
		return -EINVAL;
	st = XXH3_createState();
	if (!st)
		return -ENOMEM;
	XXH3_128bits_reset(st);
	if (size) {
		mc = mc_get(sh);
		if (!mc)
			rc = -EIO;
	}
	for (uint32_t first = 0; first < np64 && !rc; first += batch) {
		uint32_t n = np64 - first < batch ? (uint32_t)(np64 - first)
						  : batch;
		uint64_t off = (uint64_t)first * TC_SHARED_PIECE;
		size_t len = size - off < (uint64_t)n * TC_SHARED_PIECE
				     ? (size_t)(size - off)
				     : (size_t)n * TC_SHARED_PIECE;
		unsigned char *dst = emit ? buf : buf + off;

		rc = fetch_pieces(sh, mc, hash, size, (uint32_t)np64, first, n,
				  dst);
		if (!rc)
			XXH3_128bits_update(st, dst, len);
		if (!rc && emit)
			rc = emit(ectx, dst, len, off);
	}
	mc_put(sh, mc);
	if (!rc) {
		digest(st, got);
		if (memcmp(got, hash, 16)) {
			count(sh, rejected, 1);
			rc = size ? -EIO : -ENOENT;
		}
	}
	XXH3_freeState(st);
	count(sh, hits, rc == 0);
	count(sh, misses, rc != 0);
	if (!rc)
		count(sh, fetched_bytes, size);
	return rc;
}

int tc_shared_get_content(struct tc_shared *sh, const uint8_t *hash,
			  uint64_t size, void *buf)
{
	return get_content(sh, hash, size, buf, FETCH_BATCH, NULL, NULL);
}

static int emit_fd(void *ctx, const void *data, size_t len, uint64_t off)
{
	int fd = *(int *)ctx;
	size_t done = 0;

	while (done < len) {
		ssize_t w = pwrite(fd, (const char *)data + done, len - done,
				   (off_t)(off + done));

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		done += (size_t)w;
	}
	return 0;
}

int tc_shared_get_content_fd(struct tc_shared *sh, const uint8_t *hash,
			     uint64_t size, int fd)
{
	size_t cap = size < (uint64_t)FD_BATCH * TC_SHARED_PIECE
			     ? (size_t)size
			     : (size_t)FD_BATCH * TC_SHARED_PIECE;
	unsigned char *buf = malloc(cap ? cap : 1);
	int rc;

	if (!buf)
		return -ENOMEM;
	rc = get_content(sh, hash, size, buf, FD_BATCH, emit_fd, &fd);
	free(buf);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Flush, evict_tag, schema                                           */
/* ------------------------------------------------------------------ */

/* Bump generation @id and log the event. Queued names the bump concerns
 * are discarded first, under the gate, so none lands after it with the
 * new generation. */
static int bump_and_log(struct tc_shared *sh, const char *id,
			const char *tag, uint8_t type)
{
	memcached_st *mc = mc_get(sh);
	int rc, rc2;

	if (!mc)
		return -EIO;
	pthread_mutex_lock(&sh->gate);
	q_discard_names(sh, tag);
	rc = gen_bump(sh, mc, id);
	pthread_mutex_unlock(&sh->gate);
	rc2 = event_append(sh, mc, type, tag ? tag : "", "");
	mc_put(sh, mc);
	return rc ? rc : rc2;
}

int tc_shared_evict_tag(struct tc_shared *sh, const char *tag)
{
	char id[80];

	if (!tag || !tag_valid(tag, strlen(tag)))
		return -EINVAL;
	gen_id(id, tag, strlen(tag));
	return bump_and_log(sh, id, tag, TC_SHARED_EV_EVICT_TAG);
}

int tc_shared_flush(struct tc_shared *sh)
{
	return bump_and_log(sh, "g:ns", NULL, TC_SHARED_EV_FLUSH);
}

int tc_shared_set_schema(struct tc_shared *sh, const char *dir,
			 const char *schema)
{
	char key[KEY_MAX];
	size_t klen;
	struct wbuf b = { 0 };
	memcached_st *mc;
	int rc, rc2;

	if (!path_valid(dir) || !schema || !schema_valid(schema))
		return -EINVAL;
	mc = mc_get(sh);
	if (!mc)
		return -EIO;
	klen = key_path(sh, 'd', dir, key);
	rc = dir_encode(sh, dir, schema, key, klen, &b);
	if (!rc)
		rc = mc_store(sh, mc, key, klen, b.p, b.len, 0, true);
	free(b.p);
	if (!rc)
		cache_put(sh, key + sh->prefix_len, 0, schema);
	rc2 = event_append(sh, mc, TC_SHARED_EV_SCHEMA, dir, schema);
	mc_put(sh, mc);
	return rc ? rc : rc2;
}
