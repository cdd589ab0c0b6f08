/* SPDX-License-Identifier: MIT */
/*
 * The event log: how a mount's flush, evict_tag and schema change reach
 * the other mounts' local tiers (see shared.c's essay). A counter (the
 * one incr of the client) numbers the events, one authenticated record
 * each; tc_shared_poll() reads what others logged since its last call, in
 * order, and reports a RESYNC whenever events may have been lost (a new
 * epoch, a missing record after the grace period, a gap too wide).
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
#include <sodium.h>

#include "sharedclient_i.h"

int tc_sh_event_append(struct tc_shared *sh, memcached_st *mc,
		       uint8_t type, const char *a, const char *bstr)
{
	char ckey[KEY_MAX], key[KEY_MAX];
	size_t cklen = tc_sh_key_make(sh, ckey, "e:seq"), klen;
	uint64_t epoch, seq = 0;
	memcached_return_t mrc;
	struct wbuf b = { 0 };
	int rc;

	/* A random epoch in the high half: a recreated counter is told
	 * from the one it replaces. */
	randombytes_buf(&epoch, sizeof(epoch));
	epoch = ((epoch & 0x7fffffff) | 1) << 32;
	if (!tc_sh_primary_up(sh, mc, ckey, cklen)) { /* counters have no replica */
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
		tc_sh_log(sh, TC_LOG_DEBUG, "shared: event counter: %s",
			  memcached_last_error_message(mc));
		return -EIO;
	}
	klen = tc_sh_key_make(sh, key, "e:%016llx", (unsigned long long)seq);
	rc = tc_sh_event_encode(sh, type, a, bstr, key, klen, &b);
	if (!rc)
		rc = tc_sh_mc_store(sh, mc, key, klen, b.p, b.len, EVENT_TTL_S,
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

	s.klen = tc_sh_key_make(sh, key, "e:seq");
	rc = tc_sh_mc_mget(sh, mc, &s, 1, NULL, NULL);
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
	tc_sh_slots_free(&s, 1);
	*seq = v;
	return rc;
}

/* Another mount's event changed a generation or a directory's schema:
 * forget the cached one before the caller acts on the event, or its next
 * lookups would take records stamped with the old one for current until
 * the cache expires. */
static void forget_what_changed(struct tc_shared *sh,
				const struct tc_shared_event *ev)
{
	char id[80], key[KEY_MAX];

	if (ev->type == TC_SHARED_EV_FLUSH) {
		tc_sh_gen_id(id, NULL, 0);
		tc_sh_cache_forget(sh, id);
	} else if (ev->type == TC_SHARED_EV_EVICT_TAG) {
		tc_sh_gen_id(id, ev->tag, strlen(ev->tag));
		tc_sh_cache_forget(sh, id);
	} else if (ev->type == TC_SHARED_EV_SCHEMA) {
		/* the cache name of a directory is its key's suffix */
		tc_sh_key_path(sh, 'd', ev->dir, key);
		tc_sh_cache_forget(sh, key + sh->prefix_len);
	}
}

static void report_resync(struct tc_shared *sh, tc_shared_event_fn fn,
			  void *ctx, int *reported)
{
	struct tc_shared_event ev = { .type = TC_SHARED_EV_RESYNC,
				      .tag = "", .dir = "", .schema = "" };

	count(sh, resyncs, 1);
	count(sh, events, 1);
	(*reported)++;
	tc_sh_log(sh, TC_LOG_INFO, "shared: events were lost: resync");
	tc_sh_cache_forget(sh, NULL); /* whatever was learned may be old */
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
		s[i].klen = tc_sh_key_make(sh, keys[i], "e:%016llx",
					   (unsigned long long)(first + i));
		s[i].key = keys[i];
	}
	rc = tc_sh_mc_mget(sh, mc, s, n, NULL, NULL);
	for (size_t i = 0; i < n; i++) {
		struct event_rec e;

		if (s[i].unknown)
			break; /* its server is down: later, in order */
		if (!s[i].found) {
			int64_t now = tc_sh_now(sh);

			if (!sh->pgap_since)
				sh->pgap_since = now;
			if (now - sh->pgap_since < EVENT_GRACE_NS)
				break; /* its writer may be about to set it */
			lost = true; /* and the whole gap with it */
			sh->plast = first + i;
			continue;
		} else if (tc_sh_event_decode(sh, s[i].key, s[i].klen, s[i].val,
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
				forget_what_changed(sh, &ev);
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
	tc_sh_slots_free(s, n);
	free(keys);
	return *reported ? 0 : rc;
}

int tc_shared_poll(struct tc_shared *sh, tc_shared_event_fn fn, void *ctx)
{
	memcached_st *mc = tc_sh_mc_get(sh);
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
	tc_sh_mc_put(sh, mc);
	return rc < 0 ? rc : reported;
}
