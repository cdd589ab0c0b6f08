/* SPDX-License-Identifier: MIT */
/*
 * Reading: a name (with the namespace generation and the ancestors'
 * directory schemas in the same request, then the record's tag
 * generations) and judged by SPEC §5's rules; a content, all its pieces,
 * each piece's envelope checked and the whole checked against its hash
 * before the caller may use a byte of it.
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
#include <xxhash.h>

#include "sharedclient_i.h"

/* The directories above @path, deepest last: "/", "/a", "/a/b" for
 * "/a/b/c". Returns how many (each malloc'd), or -ENOMEM. */
static int ancestors(const char *path, char ***out)
{
	size_t n = 0, len = strlen(path);
	char **v;

	for (size_t i = 0; i < len; i++)
		n += path[i] == '/';
	if (len == 1)
		n = 0; /* the root has none */
	v = calloc(n ? n : 1, sizeof(*v));
	if (!v)
		return -ENOMEM;
	for (size_t i = 0, k = 0; k < n; i++) {
		if (path[i] != '/')
			continue;
		v[k] = strndup(path, i ? i : 1);
		if (!v[k]) {
			while (k--)
				free(v[k]);
			free(v);
			return -ENOMEM;
		}
		k++;
	}
	*out = v;
	return (int)n;
}

struct lookup {
	char **anc;     /* ancestor directories */
	int nanc;
	char **schema;  /* their schemas ("" none), once known */
	struct slot *s; /* 0: name, 1: ns generation, then directories */
	char (*keys)[KEY_MAX];
	size_t *anc_slot; /* slot of each ancestor, or 0: cached */
	size_t n;
	bool ns_slot;     /* slot 1 is the namespace generation */
};


static void lookup_free(struct lookup *l)
{
	for (int i = 0; i < l->nanc; i++) {
		free(l->anc[i]);
		if (l->schema)
			free(l->schema[i]);
	}
	free(l->anc);
	free(l->schema);
	if (l->s)
		tc_sh_slots_free(l->s, l->n);
	free(l->s);
	free(l->keys);
	free(l->anc_slot);
}

/* Build the request of a lookup: the name, the namespace generation and
 * the ancestors' schemas that are not cached. */
static int lookup_prepare(struct tc_shared *sh, const char *path,
			  struct lookup *l)
{
	char cname[KEY_MAX];
	uint64_t ns;
	size_t cap;

	l->nanc = ancestors(path, &l->anc);
	if (l->nanc < 0)
		return -ENOMEM;
	cap = 2 + (size_t)l->nanc;
	l->schema = calloc(cap, sizeof(*l->schema));
	l->s = calloc(cap, sizeof(*l->s));
	l->keys = malloc(cap * KEY_MAX);
	l->anc_slot = calloc(cap, sizeof(*l->anc_slot));
	if (!l->schema || !l->s || !l->keys || !l->anc_slot)
		return -ENOMEM;
	l->s[0].klen = tc_sh_key_path(sh, 'n', path, l->keys[0]);
	l->n = 1;
	if (!tc_sh_cache_gen(sh, "g:ns", &ns)) {
		l->s[l->n++].klen = tc_sh_key_make(sh, l->keys[1], "g:ns");
		l->ns_slot = true;
	}
	for (int i = 0; i < l->nanc; i++) {
		size_t k = tc_sh_key_path(sh, 'd', l->anc[i], cname);

		/* the cache name of a directory is its key's suffix */
		if (tc_sh_cache_dir(sh, cname + sh->prefix_len, &l->schema[i]))
			continue;
		memcpy(l->keys[l->n], cname, k + 1);
		l->s[l->n].klen = k;
		l->anc_slot[i] = l->n++;
	}
	for (size_t i = 0; i < l->n; i++)
		l->s[i].key = l->keys[i];
	return 0;
}

/* Absorb what the request brought besides the name: the namespace
 * generation (if valid) and the directories' schemas. */
static int lookup_absorb(struct tc_shared *sh, struct lookup *l)
{
	uint64_t ns;

	if (l->ns_slot && l->s[1].found &&
	    tc_sh_gen_decode(sh, l->s[1].key, l->s[1].klen, l->s[1].val,
			     l->s[1].vlen, &ns) == 0)
		tc_sh_cache_put(sh, "g:ns", ns, NULL);
	for (int i = 0; i < l->nanc; i++) {
		struct slot *s;

		if (!l->anc_slot[i])
			continue;
		s = &l->s[l->anc_slot[i]];
		if (s->found && tc_sh_dir_decode(sh, l->anc[i], s->key, s->klen,
						 s->val, s->vlen, &l->schema[i])) {
			count(sh, rejected, 1);
			s->found = false;
		}
		if (!s->found)
			l->schema[i] = strdup("");
		if (!l->schema[i])
			return -ENOMEM;
		tc_sh_cache_put(sh, s->key + sh->prefix_len, 0, l->schema[i]);
	}
	return 0;
}

/* The schema the nearest ancestor expects, or NULL. */
static const char *lookup_expected(const struct lookup *l)
{
	for (int i = l->nanc - 1; i >= 0; i--)
		if (l->schema[i][0])
			return l->schema[i];
	return NULL;
}

/* Is the record @r current: generations, expiry, schema? */
static bool record_current(struct tc_shared *sh, memcached_st *mc,
			   struct name_rec *r, const struct lookup *l,
			   int *rc)
{
	const char *tv[TC_SHARED_TAGS_MAX];
	size_t tl[TC_SHARED_TAGS_MAX];
	char ids[1 + TC_SHARED_TAGS_MAX][80];
	uint64_t gens[1 + TC_SHARED_TAGS_MAX];
	int ntags = tc_sh_tags_split(r->n.tags, tv, tl);
	const char *want;

	tc_sh_gen_id(ids[0], NULL, 0);
	for (int i = 0; i < ntags; i++)
		tc_sh_gen_id(ids[1 + i], tv[i], tl[i]);
	*rc = tc_sh_gens_current(sh, mc, ids, 1 + (size_t)ntags, gens);
	if (*rc)
		return false;
	*rc = -ENOENT;
	if (gens[0] != r->ns_gen)
		return false;
	for (int i = 0; i < ntags; i++)
		if (gens[1 + i] != r->tag_gen[i])
			return false;
	if (r->n.expires_ns && r->n.expires_ns <= tc_sh_now(sh))
		return false;
	want = lookup_expected(l);
	if (want && !r->n.deleted && S_ISREG(r->n.mode) &&
	    strcmp(want, r->n.schema))
		return false;
	*rc = 0;
	return true;
}

int tc_shared_get_name(struct tc_shared *sh, const char *path,
		       struct tc_shared_name *out)
{
	struct lookup l = { 0 };
	struct name_rec r = { 0 };
	memcached_st *mc = NULL;
	int rc;

	if (!tc_sh_path_valid(path))
		return -EINVAL;
	rc = lookup_prepare(sh, path, &l);
	if (rc)
		goto out;
	mc = tc_sh_mc_get(sh);
	if (!mc) {
		rc = -EIO;
		goto out;
	}
	/* -EIO: some key could not be asked; even with the name at hand,
	 * an unknown directory schema cannot be taken for none */
	rc = tc_sh_mc_mget(sh, mc, l.s, l.n, NULL, NULL);
	if (rc)
		goto out;
	rc = lookup_absorb(sh, &l);
	if (rc)
		goto out;
	if (!l.s[0].found) {
		rc = -ENOENT;
		goto out;
	}
	rc = tc_sh_name_decode(sh, l.s[0].key, l.s[0].klen, l.s[0].val, l.s[0].vlen,
			       &r);
	if (rc == 0 && strcmp(r.n.path, path)) {
		tc_shared_name_free(&r.n);
		rc = -EBADMSG; /* a key collision, or a record moved */
	}
	if (rc == -EBADMSG) {
		count(sh, rejected, 1);
		rc = -ENOENT;
	}
	if (rc)
		goto out;
	if (!record_current(sh, mc, &r, &l, &rc)) {
		if (rc == -ENOENT)
			count(sh, stale, 1);
		tc_shared_name_free(&r.n);
		goto out;
	}
	*out = r.n;
out:
	tc_sh_mc_put(sh, mc);
	lookup_free(&l);
	count(sh, hits, rc == 0);
	count(sh, misses, rc != 0 && rc != -EINVAL);
	return rc;
}

struct fetch {
	struct tc_shared *sh;
	struct slot *s;
	uint64_t size;
	uint32_t npieces, first; /* slot i is piece first + i */
	unsigned char *buf;      /* piece first lands at buf */
};

static int piece_sink(void *ctx, size_t i, const char *val, size_t vlen)
{
	struct fetch *f = ctx;
	uint32_t piece = f->first + (uint32_t)i;
	uint64_t off = (uint64_t)piece * TC_SHARED_PIECE;
	size_t want = f->size - off < TC_SHARED_PIECE
			      ? (size_t)(f->size - off)
			      : TC_SHARED_PIECE;
	struct rbuf b;
	const uint8_t *data;

	if (tc_sh_env_open(f->sh, f->s[i].key, f->s[i].klen, val, vlen, T_PIECE,
			   &b))
		return -EBADMSG;
	if (tc_sh_rb_uint(&b, 8) != f->size || tc_sh_rb_uint(&b, 4) != piece ||
	    tc_sh_rb_uint(&b, 4) != f->npieces || b.len - b.off != want)
		return -EBADMSG;
	data = tc_sh_rb_take(&b, want);
	if (!data)
		return -EBADMSG;
	memcpy(f->buf + (size_t)i * TC_SHARED_PIECE, data, want);
	return 0;
}

/* Fetch pieces [first, first + n) into @buf. 0, -ENOENT, -EIO. */
static int fetch_pieces(struct tc_shared *sh, memcached_st *mc,
			const uint8_t *hash, uint64_t size, uint32_t npieces,
			uint32_t first, uint32_t n, unsigned char *buf)
{
	struct slot *s = calloc(n, sizeof(*s));
	char (*keys)[KEY_MAX] = malloc((size_t)n * KEY_MAX);
	struct fetch f = { sh, s, size, npieces, first, buf };
	int rc = -ENOMEM;

	if (!s || !keys)
		goto out;
	for (uint32_t i = 0; i < n; i++) {
		s[i].klen = tc_sh_key_piece(sh, hash, first + i, keys[i]);
		s[i].key = keys[i];
	}
	rc = tc_sh_mc_mget(sh, mc, s, n, piece_sink, &f);
	for (uint32_t i = 0; i < n && rc != -EIO; i++) {
		if (s[i].found && s[i].sink_rc) {
			count(sh, rejected, 1);
			rc = -EIO;
		} else if (!s[i].found) {
			rc = -ENOENT;
		}
	}
out:
	free(s);
	free(keys);
	return rc;
}

static void digest(XXH3_state_t *st, uint8_t out[16])
{
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, XXH3_128bits_digest(st));
	memcpy(out, c.digest, 16);
}

/*
 * The body of both content reads: pieces in batches of @batch, fed in
 * order to the hash and to @emit (which stores them). @buf holds one
 * batch, or (when @emit is NULL) the whole content.
 */
static int get_content(struct tc_shared *sh, const uint8_t *hash,
		       uint64_t size, unsigned char *buf, uint32_t batch,
		       int (*emit)(void *, const void *, size_t, uint64_t),
		       void *ectx)
{
	uint64_t np64 = (size + TC_SHARED_PIECE - 1) / TC_SHARED_PIECE;
	XXH3_state_t *st = NULL;
	memcached_st *mc = NULL;
	uint8_t got[16];
	int rc = 0;

	if (np64 > UINT32_MAX)
		return -EINVAL;
	st = XXH3_createState();
	if (!st)
		return -ENOMEM;
	XXH3_128bits_reset(st);
	if (size) {
		mc = tc_sh_mc_get(sh);
		if (!mc)
			rc = -EIO;
	}
	for (uint32_t first = 0; first < np64 && !rc; first += batch) {
		uint32_t n = np64 - first < batch ? (uint32_t)(np64 - first)
						  : batch;
		uint64_t off = (uint64_t)first * TC_SHARED_PIECE;
		size_t len = size - off < (uint64_t)n * TC_SHARED_PIECE
				     ? (size_t)(size - off)
				     : (size_t)n * TC_SHARED_PIECE;
		unsigned char *dst = emit ? buf : buf + off;

		rc = fetch_pieces(sh, mc, hash, size, (uint32_t)np64, first, n,
				  dst);
		if (!rc)
			XXH3_128bits_update(st, dst, len);
		if (!rc && emit)
			rc = emit(ectx, dst, len, off);
	}
	tc_sh_mc_put(sh, mc);
	if (!rc) {
		digest(st, got);
		if (memcmp(got, hash, 16)) {
			count(sh, rejected, 1);
			rc = size ? -EIO : -ENOENT;
		}
	}
	XXH3_freeState(st);
	count(sh, hits, rc == 0);
	count(sh, misses, rc != 0);
	if (!rc)
		count(sh, fetched_bytes, size);
	return rc;
}

int tc_shared_get_content(struct tc_shared *sh, const uint8_t *hash,
			  uint64_t size, void *buf)
{
	return get_content(sh, hash, size, buf, FETCH_BATCH, NULL, NULL);
}

static int emit_fd(void *ctx, const void *data, size_t len, uint64_t off)
{
	int fd = *(int *)ctx;
	size_t done = 0;

	while (done < len) {
		ssize_t w = pwrite(fd, (const char *)data + done, len - done,
				   (off_t)(off + done));

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		done += (size_t)w;
	}
	return 0;
}

int tc_shared_get_content_fd(struct tc_shared *sh, const uint8_t *hash,
			     uint64_t size, int fd)
{
	size_t cap = size < (uint64_t)FD_BATCH * TC_SHARED_PIECE
			     ? (size_t)size
			     : (size_t)FD_BATCH * TC_SHARED_PIECE;
	unsigned char *buf = malloc(cap ? cap : 1);
	int rc;

	if (!buf)
		return -ENOMEM;
	rc = get_content(sh, hash, size, buf, FD_BATCH, emit_fd, &fd);
	free(buf);
	return rc;
}
