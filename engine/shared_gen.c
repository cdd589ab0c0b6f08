/* SPDX-License-Identifier: MIT */
/*
 * Generations and the reader's cache (see shared.c's essay): a name
 * record carries the nonces of the namespace's and its tags' generations
 * current when it was pushed; flush and evict_tag replace a nonce, which
 * makes every record stamped with the old one stale. Nonces and
 * directory schemas learned from the servers are cached for
 * revalidate_ns, which bounds how late another mount's change is seen.
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
#include <xxhash.h>

#include "sharedclient_i.h"

static size_t cache_bucket(const char *name)
{
	return (size_t)(XXH3_64bits(name, strlen(name)) % CACHE_BUCKETS);
}

void tc_sh_cache_clear_locked(struct tc_shared *sh)
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

void tc_sh_cache_forget(struct tc_shared *sh, const char *name)
{
	pthread_mutex_lock(&sh->cache_lock);
	if (!name) {
		tc_sh_cache_clear_locked(sh);
	} else {
		struct cent **pp = &sh->cache[cache_bucket(name)];

		while (*pp && strcmp((*pp)->name, name))
			pp = &(*pp)->next;
		if (*pp) {
			struct cent *e = *pp;

			*pp = e->next;
			free(e->schema);
			free(e);
			sh->ncache--;
		}
	}
	pthread_mutex_unlock(&sh->cache_lock);
}

static bool cache_fresh(struct tc_shared *sh, const struct cent *e)
{
	return sh->revalidate_ns > 0 && tc_sh_now(sh) - e->at < sh->revalidate_ns;
}

/* Remember a generation's nonce, or a directory's schema (copied). */
void tc_sh_cache_put(struct tc_shared *sh, const char *name, uint64_t nonce,
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
			tc_sh_cache_clear_locked(sh);
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
	e->at = tc_sh_now(sh);
	pthread_mutex_unlock(&sh->cache_lock);
}

/* A fresh cached generation into *nonce. */
bool tc_sh_cache_gen(struct tc_shared *sh, const char *name, uint64_t *nonce)
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
bool tc_sh_cache_dir(struct tc_shared *sh, const char *name, char **schema)
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

/* Cache name / key suffix of a generation: "g:ns" or "g:t:TAG". */
void tc_sh_gen_id(char out[80], const char *tag, size_t tlen)
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
	uint64_t v = tc_sh_random_nonce();
	memcached_return_t mrc;
	int rc = tc_sh_gen_encode(sh, v, key, klen, &b);

	if (rc)
		goto out;
	if (!tc_sh_primary_up(sh, mc, key, klen)) {
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
		tc_sh_mc_flush_replicas(sh, mc);
		*nonce = v;
		goto out;
	}
	if (mrc == MEMCACHED_NOTSTORED || mrc == MEMCACHED_DATA_EXISTS) {
		struct slot s = { .key = key, .klen = klen };

		rc = tc_sh_mc_mget(sh, mc, &s, 1, NULL, NULL);
		if (rc == 0 && (!s.found || tc_sh_gen_decode(sh, key, klen, s.val,
							     s.vlen, nonce)))
			rc = -EIO; /* lost a race with a deletion: later */
		tc_sh_slots_free(&s, 1);
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
int tc_sh_gens_current(struct tc_shared *sh, memcached_st *mc,
		       char (*ids)[80], size_t n, uint64_t *out)
{
	struct slot s[1 + TC_SHARED_TAGS_MAX];
	char keys[1 + TC_SHARED_TAGS_MAX][KEY_MAX];
	size_t idx[1 + TC_SHARED_TAGS_MAX], m = 0;
	int rc = 0;

	for (size_t i = 0; i < n; i++) {
		if (tc_sh_cache_gen(sh, ids[i], &out[i]))
			continue;
		memset(&s[m], 0, sizeof(s[m]));
		s[m].klen = tc_sh_key_make(sh, keys[m], "%s", ids[i]);
		s[m].key = keys[m];
		idx[m++] = i;
	}
	if (!m)
		return 0;
	rc = tc_sh_mc_mget(sh, mc, s, m, NULL, NULL);
	for (size_t j = 0; j < m && rc == 0; j++) {
		uint64_t v;

		if (s[j].found &&
		    tc_sh_gen_decode(sh, s[j].key, s[j].klen, s[j].val, s[j].vlen,
				     &v) == 0) {
			out[idx[j]] = v;
		} else if (s[j].found) {
			/* garbage: replace it, which makes every record
			 * stamped with whatever it was stale */
			struct wbuf b = { 0 };

			count(sh, rejected, 1);
			v = tc_sh_random_nonce();
			rc = tc_sh_gen_encode(sh, v, s[j].key, s[j].klen, &b);
			if (!rc)
				rc = tc_sh_mc_store(sh, mc, s[j].key, s[j].klen, b.p,
						    b.len, 0, true);
			free(b.p);
			out[idx[j]] = v;
		} else {
			rc = gen_create(sh, mc, s[j].key, s[j].klen,
					&out[idx[j]]);
		}
		if (rc == 0)
			tc_sh_cache_put(sh, ids[idx[j]], out[idx[j]], NULL);
	}
	tc_sh_slots_free(s, m);
	return rc;
}

/* Replace generation @id by a fresh nonce (flush, evict_tag). */
int tc_sh_gen_bump(struct tc_shared *sh, memcached_st *mc, const char *id)
{
	char key[KEY_MAX];
	size_t klen = tc_sh_key_make(sh, key, "%s", id);
	struct wbuf b = { 0 };
	uint64_t v = tc_sh_random_nonce();
	int rc = tc_sh_gen_encode(sh, v, key, klen, &b);

	if (!rc)
		rc = tc_sh_mc_store(sh, mc, key, klen, b.p, b.len, 0, true);
	free(b.p);
	if (!rc)
		tc_sh_cache_put(sh, id, v, NULL);
	return rc;
}
