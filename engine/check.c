/* SPDX-License-Identifier: MIT */
/*
 * Offline integrity check of a store (tiercachefs --check [--fix]).
 *
 * Works on the files directly, not through an open engine, so it can look
 * at what opening would tidy away (temporary files) and report it. Takes
 * the store lock, so it refuses a mounted store. Checks, in order:
 *   1. leftover temporary files in tmp/;
 *   2. every inode's content: inline in the index or a blob file, of the
 *      right size, hashing to its name (read through the blob ops table,
 *      so tests can make it fail);
 *   3. every blob row's refcount against the inodes that use it;
 *   4. blob files no row references.
 * With fix, entries whose content cannot be trusted are dropped (all their
 * names), refcounts are rewritten, unreferenced blobs and temporary files
 * deleted, all in one transaction plus file deletions after it. The SQL is
 * in index_check.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "engine_i.h"

struct checker {
	bool fix;
	struct tc_check_report *rep;
	struct tc_base base;
	int store_fd, lock_fd;
	struct tc_blob_store blobs;
	struct tc_index ix;
	int err; /* first error of a callback */
};

#define say(c, level, ...) tc_logb(&(c)->base, level, __VA_ARGS__)

static void check_tmp(struct checker *c)
{
	int fd = openat(c->blobs.tmp_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		c->rep->temp_files++;
		say(c, TC_LOG_WARNING, "leftover temporary file tmp/%s",
		    de->d_name);
		if (c->fix && unlinkat(c->blobs.tmp_fd, de->d_name, 0) == 0)
			c->rep->fixed++;
	}
	closedir(d);
}

/* Step 2, per inode: is its content what its hash says? */
static void check_content(void *ctx, int64_t ino, const uint8_t *hash,
			  uint64_t size, const void *data, size_t len)
{
	struct checker *c = ctx;
	uint8_t got[TC_HASH_LEN];
	int rc;

	c->rep->entries++;
	if (!hash) {
		rc = -EIO;
	} else if (data) {
		/* kept inside the index */
		tc_hash_buf(data, len, got);
		rc = len != size || memcmp(got, hash, TC_HASH_LEN) ? -EIO : 0;
	} else {
		rc = tc_blob_verify(&c->blobs, hash, size);
	}
	if (!rc)
		return;
	if (rc == -ENOENT) {
		char hex[TC_HASH_HEX + 1];
		tc_hash_hex(hash, hex);
		c->rep->missing_blobs++;
		say(c, TC_LOG_WARNING, "inode %lld: blob %s is missing",
		    (long long)ino, hex);
	} else {
		c->rep->corrupt_blobs++;
		say(c, TC_LOG_WARNING, "inode %lld: blob does not match its hash",
		    (long long)ino);
	}
	rc = tc_index_check_mark_bad(&c->ix, ino);
	if (rc && !c->err)
		c->err = rc;
}

struct doomed {
	uint8_t (*v)[TC_HASH_LEN];
	size_t n, cap;
};

static void doom(struct doomed *d, const uint8_t *h)
{
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 64;
		void *v = realloc(d->v, cap * sizeof(*d->v));
		if (!v)
			return;
		d->v = v;
		d->cap = cap;
	}
	memcpy(d->v[d->n++], h, TC_HASH_LEN);
}

/* One file in blobs/XX/: report (first pass) and doom it when no inode
 * uses it. */
static int check_blob_file(struct checker *c, DIR *dir, const char *sub,
			   const char *name, bool report, struct doomed *d)
{
	char hex[TC_HASH_HEX + 1];
	uint8_t h[TC_HASH_LEN];
	bool used, pending;
	int rc;

	if (report)
		c->rep->blobs++;
	hex[0] = sub[0];
	hex[1] = sub[1];
	hex[2] = '\0';
	if (strlen(name) == TC_HASH_HEX - 2)
		memcpy(hex + 2, name, TC_HASH_HEX - 1);
	if (strlen(name) != TC_HASH_HEX - 2 || tc_hash_parse(hex, h)) {
		if (!report)
			return 0;
		say(c, TC_LOG_WARNING, "stray file blobs/%s/%s", sub, name);
		c->rep->orphan_blobs++;
		if (c->fix && unlinkat(dirfd(dir), name, 0) == 0)
			c->rep->fixed++;
		return 0;
	}
	rc = tc_index_check_blob_state(&c->ix, h, !report, &used, &pending);
	if (rc || used)
		return rc;
	if (report && pending) {
		/* a publish the crash cut short */
		c->rep->pending_blobs++;
		say(c, TC_LOG_INFO, "blob %s of an interrupted publish", hex);
	} else if (report) {
		c->rep->orphan_blobs++;
		say(c, TC_LOG_WARNING, "blob %s is not referenced", hex);
	}
	doom(d, h);
	return 0;
}

/* Step 4: blob files the index does not reference (all inodes, or after
 * the repair those that remain). */
static int check_orphan_blobs(struct checker *c, bool report,
			      struct doomed *d)
{
	int rc = 0;

	for (int i = 0; !rc && i < 256; i++) {
		char sub[3];
		struct dirent *de;
		DIR *dir;
		int fd;

		snprintf(sub, sizeof(sub), "%02x", i);
		fd = openat(c->blobs.blobs_fd, sub,
			    O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd < 0 || !(dir = fdopendir(fd))) {
			if (fd >= 0)
				close(fd);
			continue;
		}
		while (!rc && (de = readdir(dir)))
			if (de->d_name[0] != '.')
				rc = check_blob_file(c, dir, sub, de->d_name,
						     report, d);
		closedir(dir);
	}
	return rc;
}

static int open_dirs(struct checker *c, const char *store,
		     const struct tc_blob_ops *ops)
{
	c->store_fd = open(store, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (c->store_fd < 0)
		return -errno;
	c->lock_fd = openat(c->store_fd, "lock", O_RDWR | O_CLOEXEC);
	if (c->lock_fd >= 0 && flock(c->lock_fd, LOCK_EX | LOCK_NB))
		return -EBUSY;
	if (faccessat(c->store_fd, "blobs", F_OK, 0))
		return -ENOENT;
	return tc_blob_store_open(&c->blobs, c->store_fd, ops);
}

static void unlink_all(struct checker *c, const struct doomed *d,
		       uint64_t *count)
{
	for (size_t i = 0; i < d->n; i++)
		if (tc_blob_unlink(&c->blobs, d->v[i]) == 0 && count)
			(*count)++;
}

/* Repair, then delete the blobs nothing references any more. */
static int fix(struct checker *c, struct doomed *d, uint64_t problems)
{
	int rc = tc_index_check_repair(&c->ix);

	if (rc)
		return rc;
	c->rep->fixed += c->rep->missing_blobs + c->rep->corrupt_blobs +
			 c->rep->refcount_drift;
	unlink_all(c, d, &c->rep->fixed);
	/* Blobs only the dropped entries used go too. */
	d->n = 0;
	rc = check_orphan_blobs(c, false, d);
	if (rc)
		return rc;
	unlink_all(c, d, NULL);
	return c->rep->fixed >= problems ? 0 : 1;
}

int tc_check(const char *store, bool fix_it, const struct tc_blob_ops *ops,
	     struct tc_check_report *rep, tc_log_fn log_fn, void *log_ctx)
{
	struct checker c = { .fix = fix_it, .rep = rep,
			     .base = { .log_fn = log_fn, .log_ctx = log_ctx,
				       .log_level = TC_LOG_DEBUG },
			     .store_fd = -1, .lock_fd = -1,
			     .blobs = { .blobs_fd = -1, .tmp_fd = -1 },
			     .ix = { .wal_fd = -1 } };
	struct doomed d = { 0 };
	uint64_t problems;
	int rc;

	memset(rep, 0, sizeof(*rep));
	rc = open_dirs(&c, store, ops);
	if (!rc)
		rc = tc_index_check_open(&c.ix, store, &c.base);
	if (rc)
		goto out;
	check_tmp(&c);
	rc = tc_index_check_contents(&c.ix, check_content, &c);
	if (!rc)
		rc = c.err;
	if (!rc)
		rc = tc_index_check_refcounts(&c.ix, &rep->refcount_drift);
	if (!rc && rep->refcount_drift)
		say(&c, TC_LOG_WARNING, "%llu blob reference counts are wrong",
		    (unsigned long long)rep->refcount_drift);
	if (!rc)
		rc = check_orphan_blobs(&c, true, &d);
	if (rc)
		goto out;
	/* Temporary files and the blobs of interrupted publishes are what a
	 * crash leaves: the next mount reclaims them, so they are reported
	 * and (with fix) removed, but the store is sound with them. */
	problems = rep->missing_blobs + rep->corrupt_blobs +
		   rep->refcount_drift + rep->orphan_blobs +
		   rep->counter_drift;
	if (fix_it && (problems || rep->pending_blobs))
		rc = fix(&c, &d, problems);
	else
		rc = problems ? 1 : 0;
out:
	free(d.v);
	tc_index_close(&c.ix);
	tc_blob_store_close(&c.blobs);
	if (c.store_fd >= 0)
		close(c.store_fd);
	if (c.lock_fd >= 0)
		close(c.lock_fd);
	return rc;
}
