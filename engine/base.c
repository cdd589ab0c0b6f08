/* SPDX-License-Identifier: MIT */
/*
 * The bottom floor of the engine: the clock, the log, the one-line error
 * text of a failed open, and the mutex that knows its owner. Every other
 * file may call these; this file calls none of them.
 *
 * The clock is injectable (tc_config.clock) so that lifetimes can be
 * tested without sleeping; the log goes to the caller's callback and is
 * filtered by level before anything is formatted (Redis's serverLog).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine_i.h"

/* Per thread: an open that fails reports on the thread that called it. */
static _Thread_local char last_error[8192];

const char *tc_engine_last_error(void)
{
	return last_error;
}

void tc_clear_last_error(void)
{
	last_error[0] = '\0';
}

static void vlog(const struct tc_base *b, int level, const char *fmt,
		 va_list ap)
{
	if (!b->log_fn || level > b->log_level)
		return;
	b->log_fn(b->log_ctx, level, fmt, ap);
}

void tc_logb(const struct tc_base *b, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(b, level, fmt, ap);
	va_end(ap);
}

void tc_set_last_error(const struct tc_base *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	tc_logb(b, TC_LOG_ERR, "%s", last_error);
}

int64_t tc_base_now(const struct tc_base *b)
{
	struct timespec ts;

	if (b->clock)
		return b->clock(b->clock_ctx);
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * TC_NS_PER_S + ts.tv_nsec;
}

void tc_ns_to_ts(int64_t ns, struct timespec *ts)
{
	ts->tv_sec = ns / TC_NS_PER_S;
	ts->tv_nsec = ns % TC_NS_PER_S;
	if (ts->tv_nsec < 0) {
		ts->tv_sec--;
		ts->tv_nsec += TC_NS_PER_S;
	}
}

void tc_mutex_init(struct tc_mutex *l)
{
	pthread_mutex_init(&l->m, NULL);
#ifndef NDEBUG
	atomic_init(&l->held, false);
	atomic_init(&l->owner, (pthread_t)0);
#endif
}

void tc_mutex_destroy(struct tc_mutex *l)
{
	pthread_mutex_destroy(&l->m);
}

/* The owner fields follow the mutex across a wait, which releases it. */
static void before_wait(struct tc_mutex *l)
{
#ifndef NDEBUG
	atomic_store_explicit(&l->held, false, memory_order_relaxed);
#else
	(void)l;
#endif
}

static void after_wait(struct tc_mutex *l)
{
#ifndef NDEBUG
	atomic_store_explicit(&l->owner, pthread_self(), memory_order_relaxed);
	atomic_store_explicit(&l->held, true, memory_order_relaxed);
#else
	(void)l;
#endif
}

void tc_mutex_wait(struct tc_mutex *l, pthread_cond_t *cond)
{
	before_wait(l);
	pthread_cond_wait(cond, &l->m);
	after_wait(l);
}

void tc_mutex_timedwait(struct tc_mutex *l, pthread_cond_t *cond,
			int64_t ns)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ns += ts.tv_nsec;
	ts.tv_sec += ns / TC_NS_PER_S;
	ts.tv_nsec = ns % TC_NS_PER_S;
	before_wait(l);
	pthread_cond_timedwait(cond, &l->m, &ts);
	after_wait(l);
}

void tc_cond_init(pthread_cond_t *cond)
{
	pthread_condattr_t a;

	pthread_condattr_init(&a);
	pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
	pthread_cond_init(cond, &a);
	pthread_condattr_destroy(&a);
}

int64_t tc_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * TC_NS_PER_S + ts.tv_nsec;
}

/* ------------------------------------------------------------------ */
/* Invalidation lists                                                 */
/* ------------------------------------------------------------------ */

/* Room for one more invalidation; false when out of memory (the kernel's
 * entry or attributes then time out instead). */
static bool inval_room(struct tc_inval_list *l)
{
	struct tc_inval *v;
	size_t cap;

	if (l->n < l->cap)
		return true;
	cap = l->cap ? l->cap * 2 : 16;
	v = realloc(l->v, cap * sizeof(*v));
	if (!v)
		return false;
	l->v = v;
	l->cap = cap;
	return true;
}

void tc_inval_add(struct tc_inval_list *l, uint64_t parent, const char *name,
		  size_t len, uint64_t ino)
{
	char *copy;

	if (!inval_room(l))
		return;
	copy = strndup(name, len);
	if (!copy)
		return;
	l->v[l->n++] = (struct tc_inval){ parent, ino, copy };
}

void tc_inval_add_inode(struct tc_inval_list *l, uint64_t ino)
{
	if (inval_room(l))
		l->v[l->n++] = (struct tc_inval){ 0, ino, NULL };
}
