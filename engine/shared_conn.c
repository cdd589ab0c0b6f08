/* SPDX-License-Identifier: MIT */
/*
 * The shared tier's connections: the libmemcached handles (a pool of
 * clones for synchronous calls, one for the push thread, one per server
 * for the probes), their behaviours, and the two requests everything else
 * is built of: a multi-get that finds its way around dead servers
 * (tc_sh_mc_mget) and a store that never leaves an older copy visible
 * behind a failed write (tc_sh_mc_store). Why each is built so, measured
 * against libmemcached 1.1, is in shared.c's essay and at each function.
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

#include "sharedclient_i.h"

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
			tc_sh_log(sh, TC_LOG_ERR, "shared: memcached behavior %d: %s",
				  (int)set[i].b, memcached_strerror(mc, rc));
			return -EINVAL;
		}
	}
	return 0;
}

memcached_st *tc_sh_mc_get(struct tc_shared *sh)
{
	struct timespec wait = { .tv_sec = POOL_WAIT_MS / 1000,
				 .tv_nsec = (POOL_WAIT_MS % 1000) * MSEC };
	memcached_return_t rc;
	memcached_st *mc = memcached_pool_fetch(sh->pool, &wait, &rc);

	if (!mc) {
		count(sh, errors, 1);
		tc_sh_log(sh, TC_LOG_DEBUG, "shared: no free connection: %s",
			  memcached_strerror(NULL, rc));
	}
	return mc;
}

void tc_sh_mc_put(struct tc_shared *sh, memcached_st *mc)
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
int tc_sh_key_route(struct tc_shared *sh, memcached_st *mc, const char *key,
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
		tc_sh_log(sh, TC_LOG_DEBUG, "shared: mget: %s",
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
		tc_sh_log(sh, TC_LOG_DEBUG, "shared: fetch: %s / %s",
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
		s[i].route = tc_sh_key_route(sh, mc, s[i].key, s[i].klen);
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
int tc_sh_mc_mget(struct tc_shared *sh, memcached_st *mc, struct slot *s,
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
				     tc_sh_key_route(sh, mc, s[i].key, s[i].klen) ==
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
bool tc_sh_primary_up(struct tc_shared *sh, memcached_st *mc,
		      const char *key, size_t klen)
{
	return server_up(sh, memcached_generate_hash(mc, key, klen));
}

void tc_sh_slots_free(struct slot *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(s[i].val);
}

/*
 * The library writes the replicas' copies as quiet sets it does not flush:
 * they wait in the connection's buffer for the next request to that
 * server, which may never come. Send them now.
 */
void tc_sh_mc_flush_replicas(struct tc_shared *sh, memcached_st *mc)
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
int tc_sh_mc_store(struct tc_shared *sh, memcached_st *mc, const char *key,
		   size_t klen, const void *val, size_t vlen, time_t exp,
		   bool mutable_)
{
	memcached_return_t rc = MEMCACHED_FAILURE;
	bool up = tc_sh_primary_up(sh, mc, key, klen);

	uint32_t idx = memcached_generate_hash(mc, key, klen);
	int alt = -1;

	for (int attempt = 0; up && attempt < 2; attempt++) {
		rc = memcached_set(mc, key, klen, val, vlen, exp, 0);
		if (memcached_success(rc)) {
			count(sh, pushed_bytes, vlen);
			tc_sh_mc_flush_replicas(sh, mc);
			return 0;
		}
	}
	/* The primary is down (or has just died): store on the first live
	 * replica (and the servers after it), where readers look while the
	 * primary is down (tc_sh_key_route()). */
	for (unsigned r = 1; r < sh->copies && alt < 0; r++)
		if (server_up(sh, idx + r))
			alt = (int)((idx + r) % sh->nservers);
	for (int attempt = 0; alt >= 0 && attempt < 2; attempt++) {
		rc = memcached_set_by_key(mc, sh->route[alt],
					  strlen(sh->route[alt]), key, klen,
					  val, vlen, exp, 0);
		if (memcached_success(rc)) {
			count(sh, pushed_bytes, vlen);
			tc_sh_mc_flush_replicas(sh, mc);
			return 0;
		}
	}
	count(sh, errors, 1);
	tc_sh_log(sh, TC_LOG_DEBUG, "shared: set %.*s: %s", (int)klen, key,
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
	tc_sh_mc_flush_replicas(sh, mc);
	return -EIO;
}

/* Probe every server (a get of a key nobody stores): the servers_up
 * gauge, and a log line when one goes down or comes back. */
void tc_sh_probe_servers(struct tc_shared *sh)
{
	char key[KEY_MAX];
	size_t klen = tc_sh_key_make(sh, key, "probe");
	uint64_t up = 0;
	bool came_back = false;

	for (unsigned i = 0; i < sh->nservers; i++) {
		memcached_return_t rc;
		size_t vlen;
		uint32_t flags;
		char *v = memcached_get(sh->probe[i], key, klen, &vlen, &flags,
					&rc);
		bool ok = v || rc == MEMCACHED_NOTFOUND;

		free(v);
		if (ok != atomic_load(&sh->probe_up[i]))
			tc_sh_log(sh, ok ? TC_LOG_INFO : TC_LOG_WARNING,
				  "shared: server %s:%u is %s", sh->servers[i].host,
				  sh->servers[i].port, ok ? "up" : "down");
		came_back |= ok && !atomic_load(&sh->probe_up[i]);
		atomic_store(&sh->probe_up[i], ok);
		up += ok;
	}
	atomic_store_explicit(&sh->servers_up, up, memory_order_relaxed);
	/* The push handle still counts a server that came back as failed for
	 * up to retry_s and would fail its next stores at once: a fresh
	 * clone of the template (which never talks to anyone) does not. */
	if (came_back) {
		memcached_st *fresh = memcached_clone(NULL, sh->master);

		if (fresh) {
			memcached_free(sh->mc_push);
			sh->mc_push = fresh;
		}
	}
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
		tc_sh_log(sh, TC_LOG_ERR, "shared: no route to some server");
		return -EINVAL;
	}
	return 0;
}

int tc_sh_open_memcached(struct tc_shared *sh,
			 const struct tc_shared_config *cfg)
{
	unsigned replicas = cfg->replicas;
	unsigned tmo = cfg->timeout_ms ? cfg->timeout_ms : 200;
	unsigned retry = cfg->retry_s ? cfg->retry_s : 1;
	int rc;

	if (replicas > sh->nservers) {
		tc_sh_log(sh, TC_LOG_WARNING,
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
			tc_sh_log(sh, TC_LOG_ERR, "shared=: server %s:%u: %s",
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
