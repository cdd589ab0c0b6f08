/* SPDX-License-Identifier: MIT */
/*
 * stats.c - the text of the virtual /.stats file.
 *
 * The engine reports its statistics as (name, help, kind, value) through
 * tc_engine_stats(); this file formats them in the Prometheus text exposition
 * format (version 0.0.4), so `promtool check metrics` accepts the file and a
 * node_exporter textfile collector can scrape it. Every metric gets the
 * tiercache_ prefix, counters get the _total suffix, and each has its
 * # HELP and # TYPE lines. fileops.c calls tcfs_stats_render() at every open
 * of .stats and serves the rendered text from the handle, so a reader
 * always gets one consistent snapshot.
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tcfs.h"

#define TCFS_METRIC_PREFIX "tiercache_"
#define TCFS_COUNTER_SUFFIX "_total"

/* Longest metric name we emit; the engine's names are short, this only bounds
 * the stack buffer. */
#define TCFS_METRIC_NAME_MAX 128

/* Integral values below this are printed without exponent or fraction
 * (2^53: every integer up to it is exact in a double). */
#define TCFS_EXACT_INT_MAX 9007199254740992.0

void tcfs_text_free(struct tcfs_text *t)
{
	free(t->buf);
	t->buf = NULL;
	t->len = 0;
	t->cap = 0;
}

/* Make room for @p need more bytes plus the NUL. Sets t->err on failure. */
static int tcfs_text_reserve(struct tcfs_text *t, size_t need)
{
	size_t cap = t->cap ? t->cap : 4096;
	char *buf;

	if (t->err)
		return t->err;
	if (t->len + need + 1 <= t->cap)
		return 0;
	while (cap < t->len + need + 1)
		cap *= 2;
	buf = realloc(t->buf, cap);
	if (!buf) {
		t->err = -ENOMEM;
		return t->err;
	}
	t->buf = buf;
	t->cap = cap;
	return 0;
}

void tcfs_text_add(struct tcfs_text *t, const char *s, size_t n)
{
	if (tcfs_text_reserve(t, n) < 0)
		return;
	memcpy(t->buf + t->len, s, n);
	t->len += n;
	t->buf[t->len] = '\0';
}

/* Append formatted text; errors are remembered in t->err. */
static void __attribute__((format(printf, 2, 3)))
tcfs_text_printf(struct tcfs_text *t, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		t->err = t->err ? t->err : -EINVAL;
		return;
	}
	if (tcfs_text_reserve(t, (size_t)n) < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(t->buf + t->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	t->len += (size_t)n;
}

/* Append @p s with backslash and newline escaped, as HELP lines require. */
static void tcfs_text_help(struct tcfs_text *t, const char *s)
{
	size_t n;

	while (*s) {
		n = strcspn(s, "\\\n");
		tcfs_text_add(t, s, n);
		s += n;
		if (*s == '\\')
			tcfs_text_add(t, "\\\\", 2);
		else if (*s == '\n')
			tcfs_text_add(t, "\\n", 2);
		if (*s)
			s++;
	}
}

/* Full metric name: prefix, the engine's name with characters outside
 * [A-Za-z0-9_] replaced by '_', and _total for counters. */
static void tcfs_metric_name(char *out, size_t size, const char *name,
			     enum tc_stat_kind kind)
{
	size_t n = strlen(TCFS_METRIC_PREFIX);
	size_t sfx = strlen(TCFS_COUNTER_SUFFIX);
	size_t len = strlen(name);
	size_t i;

	memcpy(out, TCFS_METRIC_PREFIX, n);
	for (i = 0; name[i] && n + 1 < size; i++, n++) {
		char c = name[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9') || c == '_';
		out[n] = ok ? c : '_';
	}
	out[n] = '\0';
	if (kind != TC_STAT_COUNTER)
		return;
	if (len >= sfx && strcmp(name + len - sfx, TCFS_COUNTER_SUFFIX) == 0)
		return;
	if (n + sfx < size)
		memcpy(out + n, TCFS_COUNTER_SUFFIX, sfx + 1);
}

/* Append a sample value as Prometheus parses it. */
static void tcfs_text_value(struct tcfs_text *t, double v)
{
	if (isnan(v))
		tcfs_text_printf(t, "NaN");
	else if (isinf(v))
		tcfs_text_printf(t, v > 0 ? "+Inf" : "-Inf");
	else if (v == floor(v) && fabs(v) < TCFS_EXACT_INT_MAX)
		tcfs_text_printf(t, "%.0f", v);
	else
		tcfs_text_printf(t, "%.17g", v);
}

/* What the emitter needs: the text, and the mode (HELP texts say what
 * the counters of reads count in it). */
struct tcfs_stats_ctx {
	struct tcfs_text *t;
	bool kernel;
};

/* Added to the HELP of the counters of reads in cache_mode=kernel. */
#define TCFS_KERNEL_NOTE                                                    \
	" In cache_mode=kernel only what reaches the daemon is counted: a "  \
	"get is the first read of a content after the kernel learned of it " \
	"(or after the daemon let it go); repeat opens and reads the "       \
	"kernel's caches serve are not seen."

static bool tcfs_counts_reads(const char *name)
{
	static const char *const names[] = {"gets", "ram_hits", "disk_hits",
					    "read_bytes", "hit_ratio"};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(name, names[i]) == 0)
			return true;
	return false;
}

/* tc_stat_fn: one metric family with its single sample. */
static void tcfs_stats_emit(void *ctx, const char *name, const char *help,
			    enum tc_stat_kind kind, double value)
{
	struct tcfs_stats_ctx *c = ctx;
	struct tcfs_text *t = c->t;
	char full[TCFS_METRIC_NAME_MAX];

	tcfs_metric_name(full, sizeof(full), name, kind);
	tcfs_text_printf(t, "# HELP %s ", full);
	tcfs_text_help(t, help && *help ? help : name);
	if (c->kernel && tcfs_counts_reads(name))
		tcfs_text_help(t, TCFS_KERNEL_NOTE);
	tcfs_text_printf(t, "\n# TYPE %s %s\n%s ", full,
			 kind == TC_STAT_COUNTER ? "counter" : "gauge", full);
	tcfs_text_value(t, value);
	tcfs_text_printf(t, "\n");
}

int tcfs_stats_render(struct tc_engine *eng, bool kernel,
		      struct tcfs_text *out)
{
	struct tcfs_stats_ctx c = {.t = out, .kernel = kernel};

	tc_engine_stats(eng, tcfs_stats_emit, &c);
	/* Which mode is on: one sample per mode, 1 for the one in force. */
	tcfs_text_printf(out,
			 "# HELP " TCFS_METRIC_PREFIX "cache_mode Where hits "
			 "are served (tiercachefs(8), cache_mode=): 1 for the "
			 "mode in force.\n"
			 "# TYPE " TCFS_METRIC_PREFIX "cache_mode gauge\n"
			 TCFS_METRIC_PREFIX "cache_mode{mode=\"kernel\"} %d\n"
			 TCFS_METRIC_PREFIX "cache_mode{mode=\"daemon\"} %d\n",
			 kernel, !kernel);
	return out->err;
}
