/* SPDX-License-Identifier: MIT */
/*
 * Micro-benchmark of the engine's hot paths, to show their cost stays flat
 * as the store grows:
 *
 *   ram hit   open(O_RDONLY) + read(4 KiB) + release of a key held in RAM
 *   disk hit  the same with the RAM tier unable to hold it (the engine
 *             reopened with max_ram_item below the value size)
 *   put 4KiB  create + write(4 KiB) + release of a new key
 *   lookup    lookup + forget of a present key (what the kernel asks before
 *             it caches the dentry)
 *   getattr   getattr of a key the kernel holds (a lookup reference), as
 *             the kernel asks when its attributes have timed out
 *   chmod, rename, unlink+forget
 *             of the keys the put phase made, each held as the kernel
 *             holds them
 *
 *   bench_engine [-n ENTRIES] [-d DIR] [-s SIZE] [-i ITERS] [-I INLINE] [-k] [-M]
 *
 * The store is made in a mkdtemp() directory below DIR (default /tmp) with
 * sync=never and no disk limits, filled with ENTRIES keys of SIZE distinct
 * bytes each (default 1000 keys of 4096 bytes) in the root directory, then
 * each operation is timed over ITERS iterations (default 200000) cycling
 * over 1000 keys picked at random among the ENTRIES. The store is removed
 * at the end unless -k. -I sets tc_config.inline_max (contents up to that
 * size stored inside the index; default: the engine's). -M runs only the
 * puts and the metadata phases. Each row gives
 * wall-clock ns/op and the benchmark thread's CPU ns/op (steadier on a
 * busy machine). Not a test: meson builds it, nobody runs it but you.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tiercache.h"

#define SAMPLES 1000 /* keys the timed loops cycle over */

struct bench {
	uint64_t entries;
	size_t size;
	uint64_t iters;
	long long inline_max; /* -1: the engine's default */
	char dir[4096];
	char store[4200];
	struct tc_config cfg;
	struct tc_engine *eng;
	struct tc_ctx ctx;
	uint64_t sample[SAMPLES]; /* key numbers */
	uint64_t ino[SAMPLES];    /* their inodes, looked up once */
	char *val;
	char *buf;
};

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* CPU time of the calling thread: less disturbed than wall time when the
 * machine is busy (it leaves out the engine's background thread). */
static int64_t cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void die(const char *what, int rc)
{
	fprintf(stderr, "bench_engine: %s: %s\n", what, strerror(-rc));
	exit(1);
}

static void key_name(char *buf, size_t size, const char *prefix, uint64_t i)
{
	snprintf(buf, size, "%s%08" PRIu64, prefix, i);
}

/* Distinct content per key: the first 8 bytes carry its number. */
static void make_value(struct bench *b, uint64_t i)
{
	memcpy(b->val, &i, sizeof(i) < b->size ? sizeof(i) : b->size);
}

static void put(struct bench *b, const char *name)
{
	struct tc_attr a;
	struct tc_file *f;
	ssize_t n;
	int rc;

	rc = tc_create(b->eng, TC_ROOT_INO, name, S_IFREG | 0644,
		       O_WRONLY | O_CREAT | O_TRUNC, &b->ctx, &a, &f);
	if (rc)
		die("create", rc);
	n = tc_write(f, b->val, b->size, 0);
	if (n != (ssize_t)b->size)
		die("write", n < 0 ? (int)n : -EIO);
	rc = tc_release(f);
	if (rc)
		die("release", rc);
	tc_forget(b->eng, a.st.st_ino, 1);
}

static void get(struct bench *b, uint64_t ino)
{
	struct tc_file *f;
	ssize_t n;
	int rc;

	rc = tc_open(b->eng, ino, O_RDONLY, &f);
	if (rc)
		die("open", rc);
	n = tc_read(f, b->buf, b->size, 0);
	if (n != (ssize_t)b->size)
		die("read", n < 0 ? (int)n : -EIO);
	tc_release(f);
}

static void open_engine(struct bench *b)
{
	int rc = tc_engine_open(&b->cfg, &b->eng);

	if (rc) {
		fprintf(stderr, "bench_engine: open %s: %s (%s)\n", b->store,
			strerror(-rc), tc_engine_last_error());
		exit(1);
	}
}

/* Look the sample keys up once, holding a reference (as the kernel's
 * dentry cache does), so the timed loops measure open/read/release. */
static void hold_samples(struct bench *b)
{
	char name[32];

	for (int i = 0; i < SAMPLES; i++) {
		struct tc_attr a;
		int rc;

		key_name(name, sizeof(name), "key", b->sample[i]);
		rc = tc_lookup(b->eng, TC_ROOT_INO, name, &a);
		if (rc)
			die("lookup", rc);
		b->ino[i] = a.st.st_ino;
	}
}

static void drop_samples(struct bench *b)
{
	for (int i = 0; i < SAMPLES; i++)
		tc_forget(b->eng, b->ino[i], 1);
}

struct stat_q {
	const char *name;
	double value;
};

static void stat_cb(void *ctx, const char *name, const char *help,
		    enum tc_stat_kind kind, double value)
{
	struct stat_q *q = ctx;

	(void)help;
	(void)kind;
	if (strcmp(name, q->name) == 0)
		q->value = value;
}

static double stat_value(struct bench *b, const char *name)
{
	struct stat_q q = { name, -1 };

	tc_engine_stats(b->eng, stat_cb, &q);
	return q.value;
}

static int64_t cpu_start;

/* Start timing a phase: returns the wall clock; remembers the CPU clock. */
static int64_t start(void)
{
	cpu_start = cpu_ns();
	return now_ns();
}

static void row(struct bench *b, const char *op, int64_t ns, uint64_t ops)
{
	int64_t cpu = cpu_ns() - cpu_start;

	printf("%10" PRIu64 "  %-32s %10.0f %10.0f %10" PRIu64 "\n",
	       b->entries, op, (double)ns / (double)ops,
	       (double)cpu / (double)ops, ops);
	fflush(stdout);
}

static double bench_gets(struct bench *b)
{
	int64_t t0 = start();

	for (uint64_t i = 0; i < b->iters; i++)
		get(b, b->ino[i % SAMPLES]);
	return (double)(now_ns() - t0);
}

/* chmod, rename and unlink of the @p n keys the put phase made, each
 * held by a lookup reference as the kernel holds them (the unlinked
 * ones are forgotten afterwards, as the kernel's FORGET does). */
static void bench_metadata(struct bench *b, uint64_t n)
{
	char name[32], to[32];
	uint64_t *ino = calloc(n, sizeof(*ino));
	struct tc_attr a;
	struct stat st;
	int64_t t0;
	int rc;

	if (!ino)
		die("calloc", -ENOMEM);
	for (uint64_t i = 0; i < n; i++) {
		key_name(name, sizeof(name), "new", i);
		rc = tc_lookup(b->eng, TC_ROOT_INO, name, &a);
		if (rc)
			die("lookup", rc);
		ino[i] = a.st.st_ino;
	}
	memset(&st, 0, sizeof(st));
	st.st_mode = 0600;
	t0 = start();
	for (uint64_t i = 0; i < n; i++) {
		rc = tc_setattr(b->eng, ino[i], &st, TC_SET_MODE, NULL, &a);
		if (rc)
			die("setattr", rc);
	}
	row(b, "chmod (held key)", now_ns() - t0, n);
	t0 = start();
	for (uint64_t i = 0; i < n; i++) {
		key_name(name, sizeof(name), "new", i);
		key_name(to, sizeof(to), "ren", i);
		rc = tc_rename(b->eng, TC_ROOT_INO, name, TC_ROOT_INO, to, 0);
		if (rc)
			die("rename", rc);
	}
	row(b, "rename (held key)", now_ns() - t0, n);
	t0 = start();
	for (uint64_t i = 0; i < n; i++) {
		key_name(name, sizeof(name), "ren", i);
		rc = tc_unlink(b->eng, TC_ROOT_INO, name);
		if (rc)
			die("unlink", rc);
		tc_forget(b->eng, ino[i], 1);
	}
	row(b, "unlink+forget (held key)", now_ns() - t0, n);
	free(ino);
}

static int rm_one(const char *path, const struct stat *st, int type,
		  struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	remove(path);
	return 0;
}

static void usage(void)
{
	fprintf(stderr,
		"usage: bench_engine [-n ENTRIES] [-d DIR] [-s SIZE] "
		"[-i ITERS] [-I INLINE_MAX] [-k] [-M]\n");
	exit(2);
}

int main(int argc, char **argv)
{
	static struct bench b;
	const char *parent = "/tmp";
	bool keep = false, meta_only = false;
	char name[32];
	uint64_t seed = 88172645463325252ull;
	int64_t t0;
	double before_ram, before_disk;
	int opt;

	b.entries = 1000;
	b.size = 4096;
	b.iters = 200000;
	b.inline_max = -1;
	while ((opt = getopt(argc, argv, "n:d:s:i:I:kMh")) != -1) {
		switch (opt) {
		case 'n':
			b.entries = strtoull(optarg, NULL, 10);
			break;
		case 'd':
			parent = optarg;
			break;
		case 's':
			b.size = strtoull(optarg, NULL, 10);
			break;
		case 'i':
			b.iters = strtoull(optarg, NULL, 10);
			break;
		case 'I':
			b.inline_max = strtoll(optarg, NULL, 10);
			break;
		case 'k':
			keep = true;
			break;
		case 'M':
			meta_only = true;
			break;
		default:
			usage();
		}
	}
	if (b.entries < SAMPLES || b.size < 8 || b.iters == 0)
		usage();

	snprintf(b.dir, sizeof(b.dir), "%s/tcbench.XXXXXX", parent);
	if (!mkdtemp(b.dir)) {
		perror("bench_engine: mkdtemp");
		return 1;
	}
	snprintf(b.store, sizeof(b.store), "%s/store", b.dir);
	b.val = malloc(b.size);
	b.buf = malloc(b.size);
	if (!b.val || !b.buf)
		return 1;
	for (size_t i = 0; i < b.size; i++)
		b.val[i] = (char)(i * 131 + 7);
	b.ctx.uid = getuid();
	b.ctx.gid = getgid();
	b.ctx.umask = 022;

	tc_config_init(&b.cfg);
	b.cfg.store = b.store;
	b.cfg.sync = TC_SYNC_NEVER;
	b.cfg.disk_size = 0;
	b.cfg.disk_items = 0;
	if (b.inline_max >= 0)
		b.cfg.inline_max = (uint64_t)b.inline_max;
	open_engine(&b);
	fprintf(stderr, "inline_max %llu\n",
		(unsigned long long)b.cfg.inline_max);

	/* Fill. */
	fprintf(stderr, "filling %" PRIu64 " entries of %zu bytes in %s...\n",
		b.entries, b.size, b.store);
	t0 = start();
	for (uint64_t i = 0; i < b.entries; i++) {
		key_name(name, sizeof(name), "key", i);
		make_value(&b, i);
		put(&b, name);
		if (i && i % 100000 == 0)
			fprintf(stderr, "  %" PRIu64 " (%.0f ns/put)\n", i,
				(double)(now_ns() - t0) / (double)i);
	}
	printf("%10s  %-32s %10s %10s %10s\n", "entries", "operation",
	       "ns/op", "cpu ns/op", "ops");
	row(&b, "fill (put, growing store)", now_ns() - t0, b.entries);

	for (int i = 0; i < SAMPLES; i++) {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		b.sample[i] = seed % b.entries;
	}

	if (meta_only)
		goto puts;

	/* Lookup. */
	t0 = start();
	for (uint64_t i = 0; i < b.iters; i++) {
		struct tc_attr a;
		int rc;

		key_name(name, sizeof(name), "key", b.sample[i % SAMPLES]);
		rc = tc_lookup(b.eng, TC_ROOT_INO, name, &a);
		if (rc)
			die("lookup", rc);
		tc_forget(b.eng, a.st.st_ino, 1);
	}
	row(&b, "lookup+forget", now_ns() - t0, b.iters);

	/* Getattr of held keys. */
	hold_samples(&b);
	t0 = start();
	for (uint64_t i = 0; i < b.iters; i++) {
		struct tc_attr a;
		int rc = tc_getattr(b.eng, b.ino[i % SAMPLES], &a);

		if (rc)
			die("getattr", rc);
	}
	row(&b, "getattr (held key)", now_ns() - t0, b.iters);

	/* RAM hits: warm the samples into RAM, then time. */
	for (int i = 0; i < SAMPLES; i++)
		get(&b, b.ino[i]);
	before_ram = stat_value(&b, "ram_hits");
	row(&b, "ram hit (open+read+release)", (int64_t)bench_gets(&b),
	    b.iters);
	if (stat_value(&b, "ram_hits") - before_ram != (double)b.iters)
		fprintf(stderr, "warning: only %.0f of %" PRIu64
				" gets were RAM hits\n",
			stat_value(&b, "ram_hits") - before_ram, b.iters);

	/* Puts of new keys into the full store. */
puts:
	t0 = start();
	for (uint64_t i = 0; i < b.iters / 10; i++) {
		key_name(name, sizeof(name), "new", i);
		make_value(&b, b.entries + i);
		put(&b, name);
	}
	row(&b, "put 4KiB (create+write+release)", now_ns() - t0,
	    b.iters / 10);
	bench_metadata(&b, b.iters / 10);
	if (meta_only)
		goto out;
	drop_samples(&b);

	/* Disk hits: reopen so that nothing fits in RAM. */
	tc_engine_close(b.eng);
	b.cfg.max_ram_item = b.size - 1;
	t0 = start();
	open_engine(&b);
	row(&b, "engine open (full store)", now_ns() - t0, 1);
	hold_samples(&b);
	for (int i = 0; i < SAMPLES; i++)
		get(&b, b.ino[i]); /* warm the page cache */
	before_disk = stat_value(&b, "disk_hits");
	row(&b, "disk hit (open+read+release)", (int64_t)bench_gets(&b),
	    b.iters);
	if (stat_value(&b, "disk_hits") - before_disk != (double)b.iters)
		fprintf(stderr, "warning: only %.0f of %" PRIu64
				" gets were disk hits\n",
			stat_value(&b, "disk_hits") - before_disk, b.iters);
	drop_samples(&b);

out:
	t0 = start();
	tc_engine_close(b.eng);
	row(&b, "engine close", now_ns() - t0, 1);
	if (keep)
		fprintf(stderr, "store kept in %s\n", b.store);
	else
		nftw(b.dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	free(b.val);
	free(b.buf);
	return 0;
}
