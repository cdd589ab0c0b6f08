/* SPDX-License-Identifier: MIT */
/*
 * Pushes: a bounded FIFO that callers append to without ever waiting on
 * the network, and the one thread that serves it (and probes the servers
 * once a second). When the queue is full the oldest pushes are dropped
 * and counted; a dropped name is remembered and its key deleted before
 * the next push, so other mounts miss rather than keep seeing the version
 * before it. A name is stamped with the generations current when it is
 * sent, under the gate that flush and evict_tag take (shared.c).
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

#include "sharedclient_i.h"

void tc_sh_push_free(struct push *p)
{
	if (!p)
		return;
	tc_shared_name_free(&p->name);
	free(p->data);
	if (p->kind == PUSH_FD && p->fd >= 0)
		close(p->fd);
	free(p);
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
	tc_sh_hash128(path, strlen(path), sh->ring[slot]);
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
	tc_sh_push_free(p);
}

/* Take ownership of @p and queue it, dropping the oldest to make room. */
static void q_add(struct tc_shared *sh, struct push *p)
{
	pthread_mutex_lock(&sh->qlock);
	if (p->mem > sh->queue_max || sh->stop) {
		pthread_mutex_unlock(&sh->qlock);
		count(sh, push_dropped, 1);
		tc_sh_push_free(p);
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
void tc_sh_q_discard_names(struct tc_shared *sh, const char *tag)
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
		tc_sh_push_free(p);
	}
}

int tc_shared_push_name(struct tc_shared *sh, const struct tc_shared_name *n)
{
	const char *tv[TC_SHARED_TAGS_MAX];
	size_t tl[TC_SHARED_TAGS_MAX];
	struct push *p;

	if (!tc_sh_path_valid(n->path) || tc_sh_tags_split(n->tags ? n->tags : "", tv,
						     tl) < 0 ||
	    !tc_sh_schema_valid(n->schema ? n->schema : ""))
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->kind = PUSH_NAME;
	p->fd = -1;
	if (tc_sh_name_copy(&p->name, n)) {
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
	struct timespec until = tc_sh_mono_ts(tc_sh_mono_now() + timeout_ns);
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

/* memcached's exptime for a name record: relative seconds, 0 = never,
 * -1 = already expired. */
static time_t name_exptime(struct tc_shared *sh, const struct tc_shared_name *n)
{
	int64_t rem;

	if (n->deleted)
		return TOMBSTONE_TTL_S;
	if (!n->expires_ns || n->ttl_mode == TC_TTL_SLIDING)
		return 0; /* sliding: reads elsewhere may extend it */
	rem = n->expires_ns - tc_sh_now(sh);
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
	size_t klen = tc_sh_key_path(sh, 'n', p->name.path, key);
	struct wbuf b = { 0 };
	int ntags = tc_sh_tags_split(p->name.tags, tv, tl);
	time_t exp = name_exptime(sh, &p->name);

	if (exp < 0) { /* expired while queued: only hide older ones */
		(void)memcached_delete(mc, key, klen, 0);
		return;
	}
	tc_sh_gen_id(ids[0], NULL, 0);
	for (int i = 0; i < ntags; i++)
		tc_sh_gen_id(ids[1 + i], tv[i], tl[i]);
	if (tc_sh_gens_current(sh, mc, ids, 1 + (size_t)ntags, gens)) {
		/* cannot stamp it: a miss elsewhere rather than a wrong
		 * stamp; an older record must not stay visible either */
		(void)memcached_delete(mc, key, klen, 0);
		return;
	}
	r.ns_gen = gens[0];
	r.ntags = (unsigned)ntags;
	for (int i = 0; i < ntags; i++)
		r.tag_gen[i] = gens[1 + i];
	if (tc_sh_name_encode(sh, &r, key, klen, &b) == 0 &&
	    tc_sh_mc_store(sh, mc, key, klen, b.p, b.len, exp, true) == 0)
		count(sh, pushes, 1);
	free(b.p);
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
		size_t klen = tc_sh_key_piece(sh, p->hash, i, key);

		if (!p->data && read_full(p->fd, buf, len, (off_t)off)) {
			count(sh, errors, 1);
			break;
		}
		b.len = 0;
		if (tc_sh_piece_encode(sh, p, i, (uint32_t)npieces, data, len, key,
				       klen, &b) ||
		    tc_sh_mc_store(sh, sh->mc_push, key, klen, b.p, b.len, 0, false))
			break; /* the rest is useless without this piece */
		if (i + 1 == npieces)
			count(sh, pushes, 1);
	}
	free(b.p);
	free(buf);
}

void *tc_sh_push_main(void *arg)
{
	struct tc_shared *sh = arg;
	int64_t next_probe = 0;

	pthread_mutex_lock(&sh->qlock);
	while (!sh->stop) {
		struct push *p;

		if (tc_sh_mono_now() >= next_probe) {
			pthread_mutex_unlock(&sh->qlock);
			tc_sh_probe_servers(sh);
			next_probe = tc_sh_mono_now() + PROBE_INTERVAL_NS;
			pthread_mutex_lock(&sh->qlock);
			continue;
		}
		if (sh->hold) {
			struct timespec until = tc_sh_mono_ts(next_probe);

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
			klen = tc_sh_key_name(sh, ph, key);
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
			tc_sh_push_free(p);
			pthread_mutex_lock(&sh->qlock);
			sh->busy = false;
		} else {
			struct timespec until = tc_sh_mono_ts(next_probe);

			pthread_cond_timedwait(&sh->qcond, &sh->qlock, &until);
		}
		if (!sh->qhead && !sh->ring_len && !sh->busy)
			pthread_cond_broadcast(&sh->qidle);
	}
	pthread_cond_broadcast(&sh->qidle);
	pthread_mutex_unlock(&sh->qlock);
	return NULL;
}
