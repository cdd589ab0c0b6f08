/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of unpublished content (engine/dirty.c), on a blob store of
 * its own (no engine) and small chunks (4 KiB): copy-on-write per chunk
 * over a base of published chunks read through a fake chunk source, writes
 * at any offset, holes and extensions reading as zeros, truncation both
 * ways across chunk boundaries, at most a few chunks in memory (the rest
 * sealed into temporary files), the whole hash kept by sequential writes,
 * sealing for a publish (hashes of exactly the chunks' bytes; unchanged
 * chunks untouched; one small content kept in memory), and storing a
 * sealed chunk as a blob by a rename. A random sequence of operations is
 * checked byte for byte against a model.
 */
#include "engine_i.h"
#include "util.h"

#define CH 4096u

/* The fake source: chunks by hash, with read and hold counts. */
struct fake_chunk {
	uint8_t hash[TC_HASH_LEN];
	unsigned char *data;
	size_t len;
	int holds;
};

struct dfx {
	char dir[64];
	int store_fd;
	struct tc_blob_store bs;
	struct tcu_faults flt;
	struct tc_dirty *d;
	struct fake_chunk chunks[64];
	size_t nchunks;
	unsigned reads;
};

static struct fake_chunk *fake_find(struct dfx *f, const uint8_t *hash)
{
	for (size_t i = 0; i < f->nchunks; i++)
		if (!memcmp(f->chunks[i].hash, hash, TC_HASH_LEN))
			return &f->chunks[i];
	return NULL;
}

static int fake_read(void *ctx, const uint8_t *hash, uint64_t len,
		     uint64_t off, void *buf, size_t n)
{
	struct dfx *f = ctx;
	struct fake_chunk *c = fake_find(f, hash);

	if (!c || c->len != len || off + n > len)
		return -EIO;
	f->reads++;
	memcpy(buf, c->data + off, n);
	return 0;
}

static void fake_hold(void *ctx, const uint8_t *hash)
{
	struct fake_chunk *c = fake_find(ctx, hash);

	if (c)
		c->holds++;
}

static void fake_release(void *ctx, const uint8_t *hash)
{
	struct fake_chunk *c = fake_find(ctx, hash);

	if (c)
		c->holds--;
}

/* Add a chunk of @len bytes of @seed to the fake source; its hash. */
static const uint8_t *fake_add(struct dfx *f, size_t len, unsigned seed)
{
	struct fake_chunk *c = &f->chunks[f->nchunks++];

	c->data = malloc(len ? len : 1);
	assert_non_null(c->data);
	for (size_t i = 0; i < len; i++)
		c->data[i] = (unsigned char)(seed * 131 + i * 7);
	c->len = len;
	tc_hash_buf(c->data, len, c->hash);
	return c->hash;
}

static int d_setup(void **state)
{
	struct dfx *f = calloc(1, sizeof(*f));
	struct tc_chunk_src src;

	if (!f)
		return -1;
	f->store_fd = -1;
	strcpy(f->dir, "/tmp/tcdirty.XXXXXX");
	if (!mkdtemp(f->dir))
		goto fail;
	f->store_fd = open(f->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (f->store_fd < 0 ||
	    tc_blob_store_open(&f->bs, f->store_fd, tcu_faults_init(&f->flt)))
		goto fail;
	src = (struct tc_chunk_src){ fake_read, fake_hold, fake_release, f };
	f->d = tc_dirty_new(CH, &src);
	if (!f->d)
		goto fail;
	*state = f;
	return 0;
fail:
	if (f->store_fd >= 0)
		close(f->store_fd);
	tcu_rm_rf(f->dir);
	free(f);
	return -1;
}

static int d_teardown(void **state)
{
	struct dfx *f = *state;

	tc_dirty_free(&f->bs, f->d);
	for (size_t i = 0; i < f->nchunks; i++)
		free(f->chunks[i].data);
	tc_blob_store_close(&f->bs);
	close(f->store_fd);
	tcu_rm_rf(f->dir);
	free(f);
	return 0;
}

/* The dirty content read whole equals @want (@len bytes). */
static void assert_content(struct dfx *f, const unsigned char *want,
			   size_t len)
{
	unsigned char *got = malloc(len + 100);
	ssize_t n;

	assert_non_null(got);
	assert_int_equal(f->d->size, len);
	n = tc_dirty_read(&f->bs, f->d, got, len + 100, 0);
	assert_int_equal(n, (ssize_t)len);
	if (len)
		assert_memory_equal(got, want, len);
	/* Unaligned pieces too. */
	for (size_t off = 1; off < len; off += 1777) {
		size_t k = len - off < 3000 ? len - off : 3000;
		n = tc_dirty_read(&f->bs, f->d, got, k, off);
		assert_int_equal(n, (ssize_t)k);
		assert_memory_equal(got, want + off, k);
	}
	free(got);
}

static size_t count_tmp(struct dfx *f)
{
	char path[100];

	snprintf(path, sizeof(path), "%s/tmp", f->dir);
	return (size_t)tcu_count_files(path);
}

static void test_small_in_memory(void **state)
{
	struct dfx *f = *state;
	struct tc_dirty_slot s;

	assert_int_equal(tc_dirty_write(&f->bs, f->d, "hello", 5, 0), 0);
	assert_int_equal(tc_dirty_write(&f->bs, f->d, "J", 1, 0), 0);
	assert_content(f, (const unsigned char *)"Jello", 5);
	assert_int_equal(tc_dirty_slots(f->d), 1);
	/* A small content stays in memory for the index. */
	assert_int_equal(tc_dirty_seal(&f->bs, f->d, 100), 0);
	tc_dirty_slot(f->d, 0, &s);
	assert_non_null(s.data);
	assert_int_equal(s.file, -1);
	assert_true(s.changed);
	{
		uint8_t h[TC_HASH_LEN];
		tc_hash_buf("Jello", 5, h);
		assert_memory_equal(s.hash, h, TC_HASH_LEN);
	}
	assert_int_equal(count_tmp(f), 0);
}

/* Sequential writes within one chunk keep no hash state: the whole hash is
 * computed from the chunk when asked, from memory or from its sealed file,
 * and one made when the content outgrows the chunk starts from the bytes
 * already there. */
static void test_whole_hash_started_late(void **state)
{
	struct dfx *f = *state;
	unsigned char *want = malloc(2 * CH);
	uint8_t x[TC_HASH_LEN], y[TC_HASH_LEN];

	assert_non_null(want);
	for (size_t i = 0; i < 2 * CH; i++)
		want[i] = (unsigned char)(i * 7 + 3);
	/* Empty: the hash of nothing. */
	assert_true(tc_dirty_whole_hash(&f->bs, f->d, x));
	tc_hash_buf("", 0, y);
	assert_memory_equal(x, y, TC_HASH_LEN);
	assert_int_equal(tc_dirty_write(&f->bs, f->d, want, 100, 0), 0);
	assert_int_equal(tc_dirty_write(&f->bs, f->d, want + 100, 900, 100),
			 0);
	assert_null(f->d->hstate);
	assert_true(tc_dirty_whole_hash(&f->bs, f->d, x));
	tc_hash_buf(want, 1000, y);
	assert_memory_equal(x, y, TC_HASH_LEN);
	/* Sealed into a temporary file: read back for the hash. */
	assert_int_equal(tc_dirty_seal(&f->bs, f->d, 0), 0);
	assert_true(tc_dirty_whole_hash(&f->bs, f->d, x));
	assert_memory_equal(x, y, TC_HASH_LEN);
	tc_dirty_free(&f->bs, f->d);
	f->d = tc_dirty_new(CH, &(struct tc_chunk_src){ fake_read, fake_hold,
							 fake_release, f });
	assert_non_null(f->d);
	/* Across the chunk's end: the state starts with the first chunk. */
	assert_int_equal(tc_dirty_write(&f->bs, f->d, want, CH - 10, 0), 0);
	assert_null(f->d->hstate);
	assert_int_equal(tc_dirty_write(&f->bs, f->d, want + CH - 10, CH + 10,
					CH - 10),
			 0);
	assert_non_null(f->d->hstate);
	assert_true(tc_dirty_whole_hash(&f->bs, f->d, x));
	tc_hash_buf(want, 2 * CH, y);
	assert_memory_equal(x, y, TC_HASH_LEN);
	/* A write elsewhere: unknown. */
	assert_int_equal(tc_dirty_write(&f->bs, f->d, "z", 1, 5), 0);
	assert_false(tc_dirty_whole_hash(&f->bs, f->d, x));
	free(want);
}

static void test_base_copy_on_write(void **state)
{
	struct dfx *f = *state;
	const uint8_t *h[3];
	unsigned char want[3 * CH - 100];
	uint8_t hashes[3][TC_HASH_LEN];
	struct tc_dirty_slot s;

	for (int i = 0; i < 3; i++) {
		h[i] = fake_add(f, i < 2 ? CH : CH - 100, (unsigned)i);
		memcpy(hashes[i], h[i], TC_HASH_LEN);
		memcpy(want + (size_t)i * CH, f->chunks[i].data,
		       f->chunks[i].len);
	}
	assert_int_equal(tc_dirty_set_base(f->d, sizeof(want),
					   (const uint8_t (*)[TC_HASH_LEN])
						   hashes,
					   3),
			 0);
	assert_int_equal(f->reads, 0); /* nothing copied */
	assert_content(f, want, sizeof(want));
	/* One byte in the middle chunk: only it changes. */
	assert_int_equal(tc_dirty_write(&f->bs, f->d, "X", 1, CH + 10), 0);
	want[CH + 10] = 'X';
	assert_content(f, want, sizeof(want));
	assert_int_equal(tc_dirty_seal(&f->bs, f->d, 0), 0);
	for (int i = 0; i < 3; i++) {
		tc_dirty_slot(f->d, (size_t)i, &s);
		assert_int_equal(s.changed, i == 1);
		if (i != 1)
			assert_memory_equal(s.hash, hashes[i], TC_HASH_LEN);
	}
	tc_dirty_slot(f->d, 1, &s);
	{
		uint8_t x[TC_HASH_LEN];
		tc_hash_buf(want + CH, CH, x);
		assert_memory_equal(s.hash, x, TC_HASH_LEN);
	}
	assert_true(s.file >= 0);
	assert_int_equal(count_tmp(f), 1);
	/* The whole hash is unknown: the base was not written in order. */
	{
		uint8_t x[TC_HASH_LEN];
		assert_false(tc_dirty_whole_hash(&f->bs, f->d, x));
	}
}

static void test_holes_and_truncate(void **state)
{
	struct dfx *f = *state;
	unsigned char want[3 * CH];

	memset(want, 0, sizeof(want));
	/* A write past the end leaves a hole of zeros. */
	assert_int_equal(tc_dirty_write(&f->bs, f->d, "end", 3, 2 * CH + 5), 0);
	memcpy(want + 2 * CH + 5, "end", 3);
	assert_content(f, want, 2 * CH + 8);
	/* Cut into the middle of the second chunk, grow again: zeros. */
	assert_int_equal(tc_dirty_write(&f->bs, f->d, "mid", 3, CH + 100), 0);
	assert_int_equal(tc_dirty_truncate(&f->bs, f->d, CH + 101), 0);
	memset(want + CH + 101, 0, sizeof(want) - CH - 101);
	want[CH + 100] = 'm';
	assert_content(f, want, CH + 101);
	assert_int_equal(tc_dirty_truncate(&f->bs, f->d, 3 * CH), 0);
	assert_content(f, want, 3 * CH);
	assert_int_equal(tc_dirty_truncate(&f->bs, f->d, 0), 0);
	assert_content(f, want, 0);
	assert_int_equal(tc_dirty_slots(f->d), 0);
}

/* Zeroing (fallocate's punch-hole and zero-range): whole chunks become
 * holes without a read, parts are written; the size stays. */
static void test_zero_range(void **state)
{
	struct dfx *f = *state;
	unsigned char want[3 * CH];
	uint8_t hashes[3][TC_HASH_LEN], zh[TC_HASH_LEN];
	struct tc_dirty_slot s;
	unsigned char *zeros = calloc(1, CH);

	assert_non_null(zeros);
	for (int i = 0; i < 3; i++) {
		memcpy(hashes[i], fake_add(f, CH, (unsigned)i + 20),
		       TC_HASH_LEN);
		memcpy(want + (size_t)i * CH, f->chunks[i].data, CH);
	}
	assert_int_equal(tc_dirty_set_base(f->d, sizeof(want),
					   (const uint8_t (*)[TC_HASH_LEN])
						   hashes,
					   3),
			 0);
	/* All of chunk 1: a hole, nothing read. */
	assert_int_equal(tc_dirty_zero(&f->bs, f->d, CH, CH), 0);
	assert_int_equal(f->reads, 0);
	assert_int_equal(f->d->nmem, 0);
	memset(want + CH, 0, CH);
	assert_content(f, want, sizeof(want));
	f->reads = 0;
	/* Part of chunk 0 and past the end: chunk 0 is copied and zeroed,
	 * the size stays. */
	assert_int_equal(tc_dirty_zero(&f->bs, f->d, 100, 50), 0);
	assert_int_equal(tc_dirty_zero(&f->bs, f->d, 3 * CH - 10, 1000), 0);
	memset(want + 100, 0, 50);
	memset(want + 3 * CH - 10, 0, 10);
	assert_int_equal(f->d->nmem, 2);
	assert_content(f, want, sizeof(want));
	/* A written chunk zeroed whole drops its bytes too. */
	assert_int_equal(tc_dirty_zero(&f->bs, f->d, 0, CH), 0);
	assert_int_equal(f->d->nmem, 1);
	memset(want, 0, CH);
	assert_content(f, want, sizeof(want));
	assert_int_equal(tc_dirty_seal(&f->bs, f->d, 0), 0);
	tc_hash_buf(zeros, CH, zh);
	for (int i = 0; i < 2; i++) {
		tc_dirty_slot(f->d, (size_t)i, &s);
		assert_true(s.changed);
		assert_memory_equal(s.hash, zh, TC_HASH_LEN);
	}
	/* one file of zeros for both holes, one for chunk 2 */
	assert_int_equal(count_tmp(f), 2);
	free(zeros);
}

static void test_memory_bounded(void **state)
{
	struct dfx *f = *state;
	unsigned char *want = malloc(32 * CH);

	assert_non_null(want);
	/* A long sequential write seals what it left behind as it goes. */
	for (size_t i = 0; i < 32 * CH; i++)
		want[i] = (unsigned char)(i * 13);
	for (size_t off = 0; off < 32 * CH; off += 1000) {
		size_t k = 32 * CH - off < 1000 ? 32 * CH - off : 1000;
		assert_int_equal(tc_dirty_write(&f->bs, f->d, want + off, k,
						off),
				 0);
	}
	assert_true(f->d->nmem <= 4);
	assert_true(count_tmp(f) >= 28);
	assert_content(f, want, 32 * CH);
	/* Written in order from 0: the whole hash is known. */
	{
		uint8_t x[TC_HASH_LEN], y[TC_HASH_LEN];
		assert_true(tc_dirty_whole_hash(&f->bs, f->d, x));
		tc_hash_buf(want, 32 * CH, y);
		assert_memory_equal(x, y, TC_HASH_LEN);
	}
	free(want);
}

static void test_store_and_share(void **state)
{
	struct dfx *f = *state;
	const uint8_t *h = fake_add(f, CH, 9);
	struct tc_dirty_slot s;
	char name[TC_BLOB_NAME_LEN], path[200];
	uint8_t x[TC_HASH_LEN];

	assert_int_equal(tc_dirty_write(&f->bs, f->d, "a", 1, 2 * CH - 1), 0);
	/* Slot 0 shares a chunk held for it. */
	fake_hold(f, h);
	assert_int_equal(tc_dirty_share(&f->bs, f->d, 0, h), 0);
	assert_int_equal(tc_dirty_seal(&f->bs, f->d, 0), 0);
	tc_dirty_slot(f->d, 0, &s);
	assert_true(s.held);
	assert_memory_equal(s.hash, h, TC_HASH_LEN);
	tc_dirty_slot(f->d, 1, &s);
	assert_true(s.file >= 0);
	memcpy(x, s.hash, TC_HASH_LEN);
	/* Stored: renamed into blobs/, then held like a shared one. */
	assert_int_equal(tc_dirty_slot_store(&f->bs, f->d, 1, false), 0);
	tc_blob_name(x, name);
	snprintf(path, sizeof(path), "%s/blobs/%s", f->dir, name);
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(count_tmp(f), 0);
	tc_dirty_slot(f->d, 1, &s);
	assert_true(s.held);
	assert_int_equal(f->chunks[0].holds, 1);
	tc_dirty_free(&f->bs, f->d);
	f->d = NULL;
	assert_int_equal(f->chunks[0].holds, 0);
}

/* Random writes, truncates and shares against a model. */
static void test_random_against_model(void **state)
{
	struct dfx *f = *state;
	size_t cap = 12 * CH, size = 0;
	unsigned char *m = calloc(1, cap), *buf = malloc(3 * CH);
	unsigned seed = 12345;

	assert_non_null(m);
	assert_non_null(buf);
	for (int step = 0; step < 2000; step++) {
		unsigned r = (seed = seed * 1103515245u + 12345u) >> 8;
		size_t off = r % (10 * CH), len = (r >> 3) % (2 * CH) + 1;

		switch (r % 6) {
		case 5: /* zeroed: holes for whole chunks, the size stays */
			assert_int_equal(tc_dirty_zero(&f->bs, f->d, off, len),
					 0);
			if (off < size)
				memset(m + off, 0,
				       off + len < size ? len : size - off);
			break;
		case 0:
		case 1:
		case 2:
			for (size_t i = 0; i < len; i++)
				buf[i] = (unsigned char)(step + i);
			assert_int_equal(tc_dirty_write(&f->bs, f->d, buf, len,
							off),
					 0);
			if (off > size)
				memset(m + size, 0, off - size);
			memcpy(m + off, buf, len);
			if (off + len > size)
				size = off + len;
			break;
		case 3:
			assert_int_equal(tc_dirty_truncate(&f->bs, f->d, off),
					 0);
			if (off > size)
				memset(m + size, 0, off - size);
			size = off;
			break;
		case 4: {
			/* a whole aligned chunk shared from the source */
			size_t i = off / CH;
			const uint8_t *h;
			if (f->nchunks == 64 || (i + 1) * CH > size)
				break;
			h = fake_add(f, CH, (unsigned)step);
			fake_hold(f, h);
			assert_int_equal(tc_dirty_share(&f->bs, f->d, i, h), 0);
			memcpy(m + i * CH, f->chunks[f->nchunks - 1].data, CH);
		}
		}
		if (step % 97 == 0)
			assert_content(f, m, size);
		/* When the whole hash is known, it is the model's. */
		if (step % 13 == 0) {
			uint8_t x[TC_HASH_LEN], y[TC_HASH_LEN];
			if (tc_dirty_whole_hash(&f->bs, f->d, x)) {
				tc_hash_buf(m, size, y);
				assert_memory_equal(x, y, TC_HASH_LEN);
			}
		}
	}
	assert_content(f, m, size);
	/* Sealed for a publish, every slot hashes to its bytes. */
	assert_int_equal(tc_dirty_seal(&f->bs, f->d, 0), 0);
	for (size_t i = 0; i < tc_dirty_slots(f->d); i++) {
		struct tc_dirty_slot s;
		uint8_t x[TC_HASH_LEN];
		tc_dirty_slot(f->d, i, &s);
		tc_hash_buf(m + i * CH, (size_t)s.len, x);
		assert_memory_equal(s.hash, x, TC_HASH_LEN);
	}
	assert_content(f, m, size);
	free(m);
	free(buf);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, d_setup, d_teardown)
		T(test_small_in_memory),
		T(test_whole_hash_started_late),
		T(test_base_copy_on_write),
		T(test_holes_and_truncate),
		T(test_zero_range),
		T(test_memory_bounded),
		T(test_store_and_share),
		T(test_random_against_model),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
