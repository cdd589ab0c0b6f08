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
 *   - A set whose primary is down fails without reaching the replicas:
 *     such a set goes to the first live replica instead (set_by_key with
 *     that server's group key), where readers look while the primary is
 *     down. A failed set of a mutable value (names, generations,
 *     directories) is followed by a delete, which the library sends to the
 *     replicas even then: readers see nothing rather than an older value.
 *     (A primary that comes back with the copies it had serves those
 *     again: older versions, which revalidating mounts do not take over
 *     newer ones they hold.)
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

#include "sharedclient_i.h"

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

	rc = tc_sh_servers_parse(cfg->servers, &sh->servers, &sh->nservers, err,
				 sizeof(err));
	if (rc) {
		tc_sh_log(sh, TC_LOG_ERR, "shared=: %s", err);
		return rc;
	}
	if (cfg->key && cfg->key_len < TC_SHARED_KEY_MIN) {
		tc_sh_log(sh, TC_LOG_ERR, "shared_key: %zu bytes, at least %d",
			  cfg->key_len, TC_SHARED_KEY_MIN);
		return -EINVAL;
	}
	if (cfg->replicas < 1) {
		tc_sh_log(sh, TC_LOG_ERR, "shared_replicas: at least 1");
		return -EINVAL;
	}
	if (ns && (!*ns || strlen(ns) > 32 ||
		   !tc_sh_charset_valid(ns, strlen(ns), "_.-"))) {
		tc_sh_log(sh, TC_LOG_ERR,
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
			tc_sh_hex(id, sizeof(id), nsbuf + 1);
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
	sh->writer = cfg->writer ? cfg->writer : tc_sh_random_nonce();
	return 0;
}

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
		rc = tc_sh_open_memcached(sh, cfg);
	if (!rc) {
		sh->ring = calloc(DROPPED_RING, sizeof(*sh->ring));
		if (!sh->ring)
			rc = -ENOMEM;
	}
	if (!rc) {
		rc = -pthread_create(&sh->thread, NULL, tc_sh_push_main, sh);
		sh->thread_started = rc == 0;
	}
	if (rc) {
		tc_shared_close(sh);
		return rc;
	}
	tc_sh_log(sh, TC_LOG_INFO,
		  "shared: %u servers, %u copies, namespace %.*s, %s", sh->nservers,
		  cfg->replicas < sh->nservers ? cfg->replicas : sh->nservers,
		  (int)(sh->prefix_len - 5), sh->prefix + 4,
		  sh->keyed ? "authenticated" : "no key");
	*out = sh;
	return 0;
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
		tc_sh_push_free(p);
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
	tc_sh_cache_clear_locked(sh);
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

/* Bump generation @id and log the event. Queued names the bump concerns
 * are discarded first, under the gate, so none lands after it with the
 * new generation. */
static int bump_and_log(struct tc_shared *sh, const char *id,
			const char *tag, uint8_t type)
{
	memcached_st *mc = tc_sh_mc_get(sh);
	int rc, rc2;

	if (!mc)
		return -EIO;
	pthread_mutex_lock(&sh->gate);
	tc_sh_q_discard_names(sh, tag);
	rc = tc_sh_gen_bump(sh, mc, id);
	pthread_mutex_unlock(&sh->gate);
	rc2 = tc_sh_event_append(sh, mc, type, tag ? tag : "", "");
	tc_sh_mc_put(sh, mc);
	return rc ? rc : rc2;
}

int tc_shared_evict_tag(struct tc_shared *sh, const char *tag)
{
	char id[80];

	if (!tag || !tc_sh_tag_valid(tag, strlen(tag)))
		return -EINVAL;
	tc_sh_gen_id(id, tag, strlen(tag));
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

	if (!tc_sh_path_valid(dir) || !schema || !tc_sh_schema_valid(schema))
		return -EINVAL;
	mc = tc_sh_mc_get(sh);
	if (!mc)
		return -EIO;
	klen = tc_sh_key_path(sh, 'd', dir, key);
	rc = tc_sh_dir_encode(sh, dir, schema, key, klen, &b);
	if (!rc)
		rc = tc_sh_mc_store(sh, mc, key, klen, b.p, b.len, 0, true);
	free(b.p);
	if (!rc)
		tc_sh_cache_put(sh, key + sh->prefix_len, 0, schema);
	rc2 = tc_sh_event_append(sh, mc, TC_SHARED_EV_SCHEMA, dir, schema);
	tc_sh_mc_put(sh, mc);
	return rc ? rc : rc2;
}
