/* SPDX-License-Identifier: MIT */
/*
 * inval.c - tell the kernel about entries the engine removed on its own.
 *
 * When the engine evicts, expires or discards an entry, or a control xattr
 * (evict_tag, flush) removes entries, the kernel may still hold a cached
 * dentry for it. The engine reports each removal through the tc_inval_fn
 * callback, from whatever thread did the work (a FUSE worker, the engine's
 * background thread). fuse_lowlevel_notify_inval_entry() must not be called
 * there: it writes to /dev/fuse and the kernel may block it on the parent
 * directory's lock, which a request in flight on the calling worker could
 * hold. So the callback only queues (parent, name) and one dedicated thread
 * sends the notifications in order.
 *
 * The kernel may keep an entry for as long as its reply's timeout says: up
 * to TCFS_TIMEOUT_MAX_NS (60 s, ops.c), and never past the entry's own
 * deadline. A notification dropped because the queue is full (or at
 * shutdown) leaves a removed name visible until that timeout at worst; the
 * engine never serves content for it, since a lookup or open of a removed
 * inode fails.
 *
 * In cache_mode=kernel the kernel also caches directory listings (no
 * OPENDIR reaches us) and keeps the pages of files it read. A removed
 * name then also drops its directory's cached listing (an inode
 * notification on the directory: fuse_lowlevel_notify_inval_entry only
 * does that when the kernel still has the dentry). That one is sent at
 * once, from the caller's thread, before the request that made the change
 * is answered: the kernel takes no directory lock for it, and so a
 * listing right after setfattr of a schema, evict_tag or flush is already
 * the new one. A NULL name from
 * the engine drops an inode's attributes and pages (its content changed
 * under the same inode number).
 *
 * Also here: tcfs_block_signals(), used by every thread the daemon starts
 * besides the FUSE workers.
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tcfs.h"

/* Most notifications queued at once. A flush of a huge cache queues one per
 * entry; beyond this they are dropped (entry timeouts bound staleness) so
 * memory stays bounded: 64 Ki entries of at most ~300 bytes is ~20 MiB. */
#define TCFS_INVAL_QUEUE_MAX 65536

/* How long shutdown waits for a notification in progress. One can block on
 * a directory lock held by a request that will never be answered (the loop
 * has ended after a signal); it returns once /dev/fuse is closed. */
#define TCFS_INVAL_JOIN_SECONDS 5

struct tcfs_inval_item {
	struct tcfs_inval_item *next;
	uint64_t parent; /* the directory, or the inode when !has_name */
	bool has_name;
	size_t namelen;
	char name[]; /* NUL-terminated */
};

void tcfs_inval_init(struct tcfs_inval *q, struct fuse_session *se)
{
	memset(q, 0, sizeof(*q));
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	q->se = se;
}

void tcfs_inval_queue(void *ctx, uint64_t parent, const char *name,
		      uint64_t ino)
{
	struct tcfs_inval *q = ctx;
	size_t len = name ? strlen(name) : 0;
	struct tcfs_inval_item *it;

	it = malloc(sizeof(*it) + len + 1);
	if (!it)
		return;
	it->next = NULL;
	it->parent = name ? parent : ino;
	it->has_name = name != NULL;
	it->namelen = len;
	memcpy(it->name, name ? name : "", len + 1);

	pthread_mutex_lock(&q->lock);
	if (q->stop || q->len >= TCFS_INVAL_QUEUE_MAX) {
		pthread_mutex_unlock(&q->lock);
		free(it);
		return;
	}
	/* The directory's cached listing (offset 0, length 0: all of its
	 * pages), dropped now; -ENOENT: the kernel has not cached it. The
	 * engine has already made the change, so a listing read again from
	 * here on is the new one. Sent under the lock: tcfs_inval_stop()
	 * takes it, so no caller still uses the session once it returns. */
	if (name && q->dirs)
		(void)fuse_lowlevel_notify_inval_inode(q->se, parent, 0, 0);
	if (q->tail)
		q->tail->next = it;
	else
		q->head = it;
	q->tail = it;
	q->len++;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->lock);
}

/* Take the oldest item, waiting for one; NULL when stopping. */
static struct tcfs_inval_item *tcfs_inval_pop(struct tcfs_inval *q)
{
	struct tcfs_inval_item *it;

	pthread_mutex_lock(&q->lock);
	while (!q->stop && !q->head)
		pthread_cond_wait(&q->cond, &q->lock);
	it = q->stop ? NULL : q->head;
	if (it) {
		q->head = it->next;
		if (!q->head)
			q->tail = NULL;
		q->len--;
	}
	pthread_mutex_unlock(&q->lock);
	return it;
}

void tcfs_block_signals(sigset_t *old)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, old);
}

static void *tcfs_inval_thread(void *arg)
{
	struct tcfs_inval *q = arg;
	struct tcfs_inval_item *it;
	int rc;

	while ((it = tcfs_inval_pop(q))) {
		if (it->has_name)
			rc = fuse_lowlevel_notify_inval_entry(
			    q->se, it->parent, it->name, it->namelen);
		else
			rc = fuse_lowlevel_notify_inval_inode(q->se, it->parent,
							      0, 0);
		/* -ENOENT: the kernel had no such dentry, the common case. */
		if (rc < 0 && rc != -ENOENT)
			fuse_log(FUSE_LOG_DEBUG, "invalidating %llu/%s: %s\n",
				 (unsigned long long)it->parent, it->name,
				 strerror(-rc));
		free(it);
	}
	return NULL;
}

int tcfs_inval_start(struct tcfs_inval *q)
{
	sigset_t old;
	int rc;

	/* Signals go to the FUSE workers, which end the session loop. */
	tcfs_block_signals(&old);
	rc = pthread_create(&q->thread, NULL, tcfs_inval_thread, q);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		return -rc;
	q->started = true;
	return 0;
}

int tcfs_inval_stop(struct tcfs_inval *q)
{
	struct tcfs_inval_item *it, *next;
	struct timespec deadline;
	int rc;

	pthread_mutex_lock(&q->lock);
	q->stop = true;
	it = q->head;
	q->head = NULL;
	q->tail = NULL;
	q->len = 0;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);

	for (; it; it = next) {
		next = it->next;
		free(it);
	}
	if (!q->started)
		return 0;
	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += TCFS_INVAL_JOIN_SECONDS;
	rc = pthread_timedjoin_np(q->thread, NULL, &deadline);
	if (rc != 0) {
		fuse_log(FUSE_LOG_WARNING,
			 "invalidation thread did not stop: %s\n",
			 strerror(rc));
		return -rc;
	}
	q->started = false;
	return 0;
}

void tcfs_inval_destroy(struct tcfs_inval *q)
{
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
}
