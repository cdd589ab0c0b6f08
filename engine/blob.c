/* SPDX-License-Identifier: MIT */
/*
 * The blob directory: immutable files named by the XXH3-128 hash of their
 * content, fanned out by the first two hex digits (STORE/blobs/ab/cdef…) so
 * no directory grows past a few thousand entries per million blobs.
 *
 * A blob is written to a temporary file in STORE/tmp and renamed into place
 * (git's finalize_object_file, ccache's AtomicFile): a reader or a crash
 * sees no blob or the whole blob. Renaming over an existing blob is
 * harmless, its content is the same by construction. tmp/ is emptied when a
 * store is opened, which removes what a crash left behind.
 *
 * All data I/O and every fsync go through struct tc_blob_ops so tests can
 * inject EIO and ENOSPC, and count what is made durable.
 *
 * A blob's life in the index is here too (the second half of the file):
 * before a publish writes a new blob file it is recorded as pending, so a
 * crash before the commit that references it leaves nothing the next open
 * cannot find; the publish then takes a reference; the last reference
 * going deletes the row in the caller's transaction and the file once its
 * commit is durable (tc_blob_retire_locked, then tc_blob_reap_locked after
 * the WAL fsync that covers it), so neither a rolled-back transaction nor a
 * crash of the machine loses a file that a committed row still names.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "engine_i.h"

static ssize_t libc_pwrite(void *ctx, int fd, const void *buf, size_t n,
			   off_t off)
{
	return pwrite(fd, buf, n, off);
}

static ssize_t libc_pread(void *ctx, int fd, void *buf, size_t n, off_t off)
{
	return pread(fd, buf, n, off);
}

static int libc_fsync(void *ctx, int fd)
{
	return fsync(fd);
}

static const struct tc_blob_ops libc_ops = {
	.pwrite = libc_pwrite,
	.pread = libc_pread,
	.fsync = libc_fsync,
};

void tc_hash_buf(const void *buf, size_t len, uint8_t *hash)
{
	XXH128_hash_t h = XXH3_128bits(buf, len);
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, h);
	memcpy(hash, c.digest, TC_HASH_LEN);
}

void tc_hash_hex(const uint8_t *hash, char out[TC_HASH_HEX + 1])
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 0; i < TC_HASH_LEN; i++) {
		out[2 * i] = hex[hash[i] >> 4];
		out[2 * i + 1] = hex[hash[i] & 15];
	}
	out[TC_HASH_HEX] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int tc_hash_parse(const char *hex, uint8_t *hash)
{
	for (int i = 0; i < TC_HASH_LEN; i++) {
		int hi = hexval(hex[2 * i]), lo;
		if (hi < 0)
			return -EINVAL;
		lo = hexval(hex[2 * i + 1]);
		if (lo < 0)
			return -EINVAL;
		hash[i] = (uint8_t)(hi << 4 | lo);
	}
	return hex[TC_HASH_HEX] ? -EINVAL : 0;
}

void tc_blob_name(const uint8_t *hash, char out[TC_BLOB_NAME_LEN])
{
	char hex[TC_HASH_HEX + 1];

	tc_hash_hex(hash, hex);
	out[0] = hex[0];
	out[1] = hex[1];
	out[2] = '/';
	memcpy(out + 3, hex + 2, TC_HASH_HEX - 2 + 1);
}

static int open_subdir(int dirfd, const char *name, int *out)
{
	int fd;

	if (mkdirat(dirfd, name, 0700) && errno != EEXIST)
		return -errno;
	fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	*out = fd;
	return 0;
}

int tc_blob_store_open(struct tc_blob_store *bs, int store_fd,
		       const struct tc_blob_ops *ops)
{
	int rc;

	memset(bs, 0, sizeof(*bs));
	bs->blobs_fd = bs->tmp_fd = -1;
	bs->store_fd = store_fd;
	bs->ops = ops ? ops : &libc_ops;
	rc = open_subdir(store_fd, "blobs", &bs->blobs_fd);
	if (!rc)
		rc = open_subdir(store_fd, "tmp", &bs->tmp_fd);
	for (int i = 0; !rc && i < 256; i++) {
		char sub[3];
		snprintf(sub, sizeof(sub), "%02x", i);
		if (mkdirat(bs->blobs_fd, sub, 0700) && errno != EEXIST)
			rc = -errno;
	}
	if (rc)
		tc_blob_store_close(bs);
	return rc;
}

void tc_blob_store_close(struct tc_blob_store *bs)
{
	if (bs->blobs_fd >= 0)
		close(bs->blobs_fd);
	if (bs->tmp_fd >= 0)
		close(bs->tmp_fd);
	bs->blobs_fd = bs->tmp_fd = -1;
}

uint64_t tc_blob_clean_tmp(struct tc_blob_store *bs)
{
	int fd = openat(bs->tmp_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	struct dirent *de;
	uint64_t n = 0;
	DIR *d;

	if (fd < 0)
		return 0;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return 0;
	}
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		if (unlinkat(bs->tmp_fd, de->d_name, 0) == 0)
			n++;
	}
	closedir(d);
	return n;
}

int tc_blob_tmp_create(struct tc_blob_store *bs, int *fd, char name[32])
{
	uint64_t seq = atomic_fetch_add(&bs->tmp_seq, 1);

	snprintf(name, 32, "%d.%llu", (int)getpid(),
		 (unsigned long long)seq);
	*fd = openat(bs->tmp_fd, name,
		     O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	return *fd < 0 ? -errno : 0;
}

void tc_blob_tmp_discard(struct tc_blob_store *bs, int fd, const char *name)
{
	if (fd >= 0)
		close(fd);
	if (name && *name)
		unlinkat(bs->tmp_fd, name, 0);
}

int tc_blob_pwrite_all(struct tc_blob_store *bs, int fd, const void *buf,
		       size_t len, off_t off)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = bs->ops->pwrite(bs->ops->ctx, fd, p, len, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

int tc_blob_pread_all(struct tc_blob_store *bs, int fd, void *buf, size_t len,
		      off_t off)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = bs->ops->pread(bs->ops->ctx, fd, p, len, off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO; /* shorter than the index says */
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

int tc_blob_fsync(struct tc_blob_store *bs, int fd)
{
	return bs->ops->fsync(bs->ops->ctx, fd) ? -errno : 0;
}

void tc_blob_start_sync(int fd)
{
	/* A hint: the fsync that follows reports any error. */
	(void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
}

int tc_blob_sync_dir(struct tc_blob_store *bs, uint8_t dir)
{
	char name[3];
	int dfd, rc;

	snprintf(name, sizeof(name), "%02x", dir); /* as tc_blob_name() */
	dfd = openat(bs->blobs_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	rc = tc_blob_fsync(bs, dfd);
	close(dfd);
	return rc;
}

int tc_blob_commit_tmp(struct tc_blob_store *bs, int fd, const char *name,
		       const uint8_t *hash, bool durable)
{
	char bname[TC_BLOB_NAME_LEN];
	int rc;

	if (durable) {
		rc = tc_blob_fsync(bs, fd);
		if (rc)
			return rc;
	}
	tc_blob_name(hash, bname);
	if (renameat(bs->tmp_fd, name, bs->blobs_fd, bname))
		return -errno;
	return durable ? tc_blob_sync_dir(bs, hash[0]) : 0;
}

int tc_blob_open_read(struct tc_blob_store *bs, const uint8_t *hash, int *fd)
{
	char bname[TC_BLOB_NAME_LEN];

	tc_blob_name(hash, bname);
	*fd = openat(bs->blobs_fd, bname, O_RDONLY | O_CLOEXEC);
	if (*fd < 0)
		return errno == ENOENT ? -EIO : -errno;
	return 0;
}

int tc_blob_read_verified(struct tc_blob_store *bs, const uint8_t *hash,
			  void *buf, size_t len)
{
	uint8_t got[TC_HASH_LEN];
	struct stat st;
	int fd, rc;

	rc = tc_blob_open_read(bs, hash, &fd);
	if (rc)
		return rc;
	if (fstat(fd, &st) || (uint64_t)st.st_size != len) {
		close(fd);
		return -EIO;
	}
	rc = tc_blob_pread_all(bs, fd, buf, len, 0);
	close(fd);
	if (rc)
		return rc;
	tc_hash_buf(buf, len, got);
	return memcmp(got, hash, TC_HASH_LEN) ? -EIO : 0;
}

int tc_blob_unlink(struct tc_blob_store *bs, const uint8_t *hash)
{
	char bname[TC_BLOB_NAME_LEN];

	tc_blob_name(hash, bname);
	if (unlinkat(bs->blobs_fd, bname, 0) && errno != ENOENT)
		return -errno;
	return 0;
}

int tc_blob_uncommit(struct tc_blob_store *bs, const uint8_t *hash,
		     char name[32])
{
	char bname[TC_BLOB_NAME_LEN];
	uint64_t seq = atomic_fetch_add(&bs->tmp_seq, 1);

	tc_blob_name(hash, bname);
	snprintf(name, 32, "%d.%llu", (int)getpid(), (unsigned long long)seq);
	if (renameat(bs->blobs_fd, bname, bs->tmp_fd, name)) {
		name[0] = '\0';
		return -errno;
	}
	return 0;
}

int tc_blob_verify(struct tc_blob_store *bs, const uint8_t *hash, uint64_t size)
{
	XXH3_state_t *hs;
	XXH128_canonical_t can;
	struct stat st;
	char *buf;
	uint64_t off = 0;
	int fd, rc = 0;

	rc = tc_blob_open_read(bs, hash, &fd);
	if (rc)
		return rc == -EIO ? -ENOENT : rc;
	if (fstat(fd, &st) || (uint64_t)st.st_size != size) {
		close(fd);
		return -EIO;
	}
	hs = XXH3_createState();
	buf = malloc(1 << 16);
	if (!hs || !buf) {
		rc = -ENOMEM;
		goto out;
	}
	XXH3_128bits_reset(hs);
	while (!rc && off < size) {
		size_t k = size - off > (1 << 16) ? (1 << 16) : size - off;
		rc = tc_blob_pread_all(bs, fd, buf, k, (off_t)off);
		XXH3_128bits_update(hs, buf, k);
		off += k;
	}
	XXH128_canonicalFromHash(&can, XXH3_128bits_digest(hs));
	if (!rc && memcmp(can.digest, hash, TC_HASH_LEN))
		rc = -EIO;
out:
	free(buf);
	XXH3_freeState(hs);
	close(fd);
	return rc;
}

/* ------------------------------------------------------------------ */
/* A blob's life in the index                                         */
/* ------------------------------------------------------------------ */

bool tc_blob_known_locked(struct tc_engine *eng, const uint8_t *hash)
{
	TC_ASSERT_LOCKED(eng);
	return tc_index_blob_refs(&eng->ix, hash) > 0;
}

int tc_blob_pending_locked(struct tc_engine *eng, const uint8_t *hash)
{
	TC_ASSERT_LOCKED(eng);
	return tc_index_pending_add(&eng->ix, hash);
}

int tc_blob_ref_locked(struct tc_engine *eng, const uint8_t *hash,
		       uint64_t size, const void *inline_data, bool wrote)
{
	bool known = tc_blob_known_locked(eng, hash);
	int rc;

	rc = tc_index_blob_ref(&eng->ix, hash, size, inline_data);
	if (!rc && wrote)
		rc = tc_index_pending_del(&eng->ix, hash);
	if (!rc && !known)
		eng->size.blob_bytes += size;
	return rc;
}

int tc_blob_unref_locked(struct tc_engine *eng, const uint8_t *hash)
{
	int64_t refs;
	uint64_t size;
	bool file;
	int rc;

	TC_ASSERT_LOCKED(eng);
	rc = tc_index_blob_unref(&eng->ix, hash, &refs, &size, &file);
	if (rc || refs > 0)
		return rc;
	/* The row is gone; the file is deleted after the commit: until then
	 * (and if a crash comes first) the pending row says it may be
	 * garbage, and the next open deletes it. */
	if (file)
		rc = tc_index_pending_add(&eng->ix, hash);
	if (rc)
		return rc;
	/* Out of RAM now (nothing names it); the file after the commit. */
	tc_ram_drop(eng->ram, hash);
	eng->size.blob_bytes -= size;
	if (eng->n_doomed == eng->cap_doomed) {
		size_t cap = eng->cap_doomed ? eng->cap_doomed * 2 : 64;
		void *v = realloc(eng->doomed, cap * sizeof(*eng->doomed));
		if (!v)
			return -ENOMEM;
		eng->doomed = v;
		eng->cap_doomed = cap;
	}
	memcpy(eng->doomed[eng->n_doomed++], hash, TC_HASH_LEN);
	return 0;
}

static struct tc_hold *find_hold(struct tc_engine *eng, const uint8_t *hash)
{
	for (size_t i = 0; i < eng->n_holds; i++)
		if (!memcmp(eng->holds[i].hash, hash, TC_HASH_LEN))
			return &eng->holds[i];
	return NULL;
}

void tc_blob_hold_locked(struct tc_engine *eng, const uint8_t *hash)
{
	struct tc_hold *h;

	TC_ASSERT_LOCKED(eng);
	h = find_hold(eng, hash);
	if (h) {
		h->count++;
		return;
	}
	if (eng->n_holds == eng->cap_holds) {
		size_t cap = eng->cap_holds ? eng->cap_holds * 2 : 16;
		void *v = realloc(eng->holds, cap * sizeof(*eng->holds));
		if (!v)
			return; /* rare; the slot's publish writes it again */
		eng->holds = v;
		eng->cap_holds = cap;
	}
	h = &eng->holds[eng->n_holds++];
	memcpy(h->hash, hash, TC_HASH_LEN);
	h->count = 1;
}

void tc_blob_release_locked(struct tc_engine *eng, const uint8_t *hash)
{
	struct tc_hold *h;

	TC_ASSERT_LOCKED(eng);
	h = find_hold(eng, hash);
	if (!h || --h->count)
		return;
	*h = eng->holds[--eng->n_holds];
	/* Nothing references it: a stored chunk whose publish never came,
	 * or a shared one whose source went meanwhile. A pending row, if
	 * any, goes at the next open. */
	if (!tc_blob_known_locked(eng, hash))
		(void)tc_blob_unlink(&eng->blobs, hash);
}

/* Verified chunks: a direct-mapped table, so a collision only means one
 * more verification. */
#define VERIFIED_SLOTS 16384

static size_t verified_slot(const uint8_t *hash)
{
	uint64_t v;

	memcpy(&v, hash, sizeof(v));
	return (size_t)(v % VERIFIED_SLOTS);
}

bool tc_blob_is_verified(struct tc_engine *eng, const uint8_t *hash)
{
	bool ok;

	if (!eng->verified)
		return false;
	pthread_mutex_lock(&eng->verified_lock);
	ok = !memcmp(eng->verified[verified_slot(hash)], hash, TC_HASH_LEN);
	pthread_mutex_unlock(&eng->verified_lock);
	return ok;
}

void tc_blob_set_verified(struct tc_engine *eng, const uint8_t *hash)
{
	if (!eng->verified)
		return;
	pthread_mutex_lock(&eng->verified_lock);
	memcpy(eng->verified[verified_slot(hash)], hash, TC_HASH_LEN);
	pthread_mutex_unlock(&eng->verified_lock);
}

/* Delete retired blob @hash's file unless referenced again or held; with
 * @aside, move it into tmp/ under a name put there for the caller to
 * delete after dropping the lock (a rename is cheap, freeing a large
 * file's blocks is not). True when it went. */
static bool reap_one_locked(struct tc_engine *eng, const uint8_t *hash,
			    char aside[32])
{
	if (tc_blob_known_locked(eng, hash) || find_hold(eng, hash))
		return false;
	if (aside)
		return tc_blob_uncommit(&eng->blobs, hash, aside) == 0;
	(void)tc_blob_unlink(&eng->blobs, hash);
	return false;
}

void tc_blob_retire_locked(struct tc_engine *eng)
{
	size_t n = (size_t)(eng->retired_seq - eng->reaped_seq);

	TC_ASSERT_LOCKED(eng);
	if (!eng->n_doomed)
		return;
	if (n + eng->n_doomed > eng->cap_retired) {
		size_t cap = eng->cap_retired ? eng->cap_retired : 64;
		void *v;

		while (cap < n + eng->n_doomed)
			cap *= 2;
		v = realloc(eng->retired, cap * sizeof(*eng->retired));
		if (!v) {
			/* Rare: delete them now, as if the commit were synced. */
			for (size_t i = 0; i < eng->n_doomed; i++)
				(void)reap_one_locked(eng, eng->doomed[i],
						      NULL);
			eng->n_doomed = 0;
			return;
		}
		eng->retired = v;
		eng->cap_retired = cap;
	}
	memcpy(eng->retired[n], eng->doomed, eng->n_doomed * TC_HASH_LEN);
	if (eng->retired_seq == eng->synced_seq)
		eng->unsynced_since = tc_mono_ns();
	eng->retired_seq += eng->n_doomed;
	eng->n_doomed = 0;
	/* sync=never promises no durability: nothing waits for an fsync,
	 * and the committer deletes the files now, whoever committed. */
	if (eng->sync == TC_SYNC_NEVER) {
		eng->synced_seq = eng->retired_seq;
		if (eng->committer_running)
			pthread_cond_signal(&eng->commit_cond);
	}
}

size_t tc_blob_reap_locked(struct tc_engine *eng, char (*aside)[32],
			   size_t max)
{
	size_t n = (size_t)(eng->retired_seq - eng->reaped_seq);
	size_t k = (size_t)(eng->synced_seq - eng->reaped_seq), moved = 0;

	TC_ASSERT_LOCKED(eng);
	if (eng->synced_seq <= eng->reaped_seq)
		return 0;
	if (aside && k > max)
		k = max;
	for (size_t i = 0; i < k; i++)
		if (reap_one_locked(eng, eng->retired[i],
				    aside ? aside[moved] : NULL))
			moved++;
	memmove(eng->retired, eng->retired + k, (n - k) * TC_HASH_LEN);
	eng->reaped_seq += k;
	return moved;
}

int tc_blob_reclaim_pending_locked(struct tc_engine *eng)
{
	uint8_t (*v)[TC_HASH_LEN];
	size_t n;
	int rc;

	TC_ASSERT_LOCKED(eng);
	rc = tc_index_pending_list(&eng->ix, &v, &n);
	for (size_t i = 0; !rc && i < n; i++) {
		if (!tc_blob_known_locked(eng, v[i]))
			(void)tc_blob_unlink(&eng->blobs, v[i]);
		rc = tc_index_pending_del(&eng->ix, v[i]);
	}
	free(v);
	return rc;
}
