/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the engine's bottom floor (engine/base.c): the clock,
 * injected or CLOCK_REALTIME; the log, filtered by level; the one-line
 * error text of a failed open, kept per thread; and the mutex that knows
 * its owner, so that TC_ASSERT_HELD can tell the owner thread from the
 * others in debug builds.
 */
#include "engine_i.h"
#include "util.h"

#include <pthread.h>
#include <semaphore.h>
#include <time.h>

/* ------------------------------------------------------------------ */
/* Clock                                                              */
/* ------------------------------------------------------------------ */

struct fake_clock {
	int64_t now;
	int calls;
};

static int64_t fake_now(void *ctx)
{
	struct fake_clock *c = ctx;

	c->calls++;
	return c->now;
}

static int64_t realtime_ns(void)
{
	struct timespec ts;

	assert_int_equal(clock_gettime(CLOCK_REALTIME, &ts), 0);
	return (int64_t)ts.tv_sec * TC_NS_PER_S + ts.tv_nsec;
}

static void test_now_injected(void **state)
{
	struct fake_clock c = { .now = TCU_EPOCH_NS };
	struct tc_base b = { .clock = fake_now, .clock_ctx = &c };

	(void)state;
	assert_int_equal(tc_base_now(&b), TCU_EPOCH_NS);
	c.now += 5 * TCU_HOUR;
	assert_int_equal(tc_base_now(&b), TCU_EPOCH_NS + 5 * TCU_HOUR);
	/* Any value, even one far from the real time. */
	c.now = 42;
	assert_int_equal(tc_base_now(&b), 42);
	assert_int_equal(c.calls, 3);
}

static void test_now_realtime(void **state)
{
	struct tc_base b = { 0 };
	int64_t before, now, after;

	(void)state;
	before = realtime_ns();
	now = tc_base_now(&b);
	after = realtime_ns();
	assert_true(before <= now && now <= after);
}

static void test_ns_to_ts(void **state)
{
	struct timespec ts;

	(void)state;
	tc_ns_to_ts(0, &ts);
	assert_int_equal(ts.tv_sec, 0);
	assert_int_equal(ts.tv_nsec, 0);
	tc_ns_to_ts(TCU_EPOCH_NS + 500000000, &ts);
	assert_int_equal(ts.tv_sec, TCU_EPOCH_NS / TCU_SEC);
	assert_int_equal(ts.tv_nsec, 500000000);
	/* Before the epoch: tv_nsec stays in [0, 1e9). */
	tc_ns_to_ts(-1, &ts);
	assert_int_equal(ts.tv_sec, -1);
	assert_int_equal(ts.tv_nsec, 999999999);
	tc_ns_to_ts(-TCU_SEC, &ts);
	assert_int_equal(ts.tv_sec, -1);
	assert_int_equal(ts.tv_nsec, 0);
}

/* ------------------------------------------------------------------ */
/* Log                                                                */
/* ------------------------------------------------------------------ */

static void test_logb_levels(void **state)
{
	struct tcu_logcap lc = { 0 };
	struct tc_base b = { .log_fn = tcu_logcap_fn, .log_ctx = &lc,
			     .log_level = TC_LOG_WARNING };

	(void)state;
	tc_logb(&b, TC_LOG_ERR, "err %d", 1);
	assert_int_equal(lc.calls, 1);
	assert_int_equal(lc.last_level, TC_LOG_ERR);
	assert_string_equal(lc.last, "err 1");
	tc_logb(&b, TC_LOG_WARNING, "warn %s", "two");
	assert_int_equal(lc.calls, 2);
	assert_string_equal(lc.last, "warn two");
	/* Above the level: dropped. */
	tc_logb(&b, TC_LOG_INFO, "info");
	tc_logb(&b, TC_LOG_DEBUG, "debug");
	assert_int_equal(lc.calls, 2);
	assert_string_equal(lc.last, "warn two");

	b.log_level = TC_LOG_DEBUG;
	tc_logb(&b, TC_LOG_INFO, "info");
	tc_logb(&b, TC_LOG_DEBUG, "debug %d", 4);
	assert_int_equal(lc.calls, 4);
	assert_int_equal(lc.by_level[TC_LOG_INFO], 1);
	assert_int_equal(lc.by_level[TC_LOG_DEBUG], 1);
	assert_string_equal(lc.last, "debug 4");

	/* Messages above the level are dropped: at 0, even errors. */
	b.log_level = 0;
	tc_logb(&b, TC_LOG_ERR, "dropped");
	assert_int_equal(lc.calls, 4);

	/* No callback: nothing happens. */
	b.log_fn = NULL;
	b.log_level = TC_LOG_DEBUG;
	tc_logb(&b, TC_LOG_ERR, "nowhere");
	assert_int_equal(lc.calls, 4);
}

/* ------------------------------------------------------------------ */
/* Last error, per thread                                             */
/* ------------------------------------------------------------------ */

struct err_thread {
	char seen_at_start[64];
	char seen_at_end[64];
};

static void *err_thread_fn(void *arg)
{
	struct err_thread *t = arg;
	struct tc_base quiet = { 0 };

	snprintf(t->seen_at_start, sizeof(t->seen_at_start), "%s",
		 tc_engine_last_error());
	tc_set_last_error(&quiet, "thread %s", "error");
	snprintf(t->seen_at_end, sizeof(t->seen_at_end), "%s",
		 tc_engine_last_error());
	return NULL;
}

static void test_last_error_per_thread(void **state)
{
	struct tcu_logcap lc = { 0 };
	struct tc_base b = { .log_fn = tcu_logcap_fn, .log_ctx = &lc,
			     .log_level = TC_LOG_ERR };
	struct err_thread t = { "unset", "unset" };
	pthread_t th;

	(void)state;
	tc_clear_last_error();
	assert_string_equal(tc_engine_last_error(), "");
	tc_set_last_error(&b, "main error %d", 1);
	assert_string_equal(tc_engine_last_error(), "main error 1");
	/* It is logged as an error too. */
	assert_int_equal(lc.by_level[TC_LOG_ERR], 1);
	assert_string_equal(lc.last, "main error 1");

	/* Another thread starts with none and keeps its own. */
	assert_int_equal(pthread_create(&th, NULL, err_thread_fn, &t), 0);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_string_equal(t.seen_at_start, "");
	assert_string_equal(t.seen_at_end, "thread error");
	assert_string_equal(tc_engine_last_error(), "main error 1");

	tc_clear_last_error();
	assert_string_equal(tc_engine_last_error(), "");
}

/* ------------------------------------------------------------------ */
/* The owner-checked mutex                                            */
/* ------------------------------------------------------------------ */

#ifndef NDEBUG
struct mutex_thread {
	struct tc_mutex *l;
	sem_t go, done;
	bool held_by_main; /* tc_mutex_held() in the thread, main holding */
	bool held_own;     /* tc_mutex_held() in the thread, it holding */
};

static void *mutex_thread_fn(void *arg)
{
	struct mutex_thread *t = arg;

	t->held_by_main = tc_mutex_held(t->l);
	sem_post(&t->done);
	sem_wait(&t->go); /* main has unlocked */
	tc_mutex_lock(t->l);
	t->held_own = tc_mutex_held(t->l);
	sem_post(&t->done);
	sem_wait(&t->go); /* main has looked */
	tc_mutex_unlock(t->l);
	return NULL;
}
#endif

static void test_mutex_held_owner_only(void **state)
{
#ifdef NDEBUG
	(void)state;
	skip(); /* no owner field in release builds */
#else
	struct tc_mutex l;
	struct mutex_thread t = { .l = &l };
	pthread_t th;

	(void)state;
	tc_mutex_init(&l);
	assert_false(tc_mutex_held(&l));
	tc_mutex_lock(&l);
	assert_true(tc_mutex_held(&l));
	TC_ASSERT_HELD(&l);

	assert_int_equal(sem_init(&t.go, 0, 0), 0);
	assert_int_equal(sem_init(&t.done, 0, 0), 0);
	assert_int_equal(pthread_create(&th, NULL, mutex_thread_fn, &t), 0);
	sem_wait(&t.done);
	/* Held, but not by the asking thread. */
	assert_false(t.held_by_main);
	tc_mutex_unlock(&l);
	assert_false(tc_mutex_held(&l));

	sem_post(&t.go);
	sem_wait(&t.done);
	assert_true(t.held_own);
	assert_false(tc_mutex_held(&l)); /* the thread holds it, not main */
	sem_post(&t.go);
	assert_int_equal(pthread_join(th, NULL), 0);
	assert_false(tc_mutex_held(&l));

	sem_destroy(&t.go);
	sem_destroy(&t.done);
	tc_mutex_destroy(&l);
#endif
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_now_injected),
		cmocka_unit_test(test_now_realtime),
		cmocka_unit_test(test_ns_to_ts),
		cmocka_unit_test(test_logb_levels),
		cmocka_unit_test(test_last_error_per_thread),
		cmocka_unit_test(test_mutex_held_owner_only),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
