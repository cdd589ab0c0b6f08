/* SPDX-License-Identifier: MIT */
/*
 * The shared tier's record formats: every value is an envelope ("tc1",
 * a type letter, an auth byte, the body, and with a key a keyed BLAKE2b
 * MAC over the memcached key and everything before it; see shared.c's
 * essay), with little-endian integers and u16-length strings. Here are
 * the writers and readers of bodies, the envelope and its MAC, the names
 * of the keys, and the encoders and decoders of names, generations,
 * directories, events and content pieces. A decoder returns -EBADMSG for
 * anything that is not exactly what an encoder writes.
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

#include <sodium.h>

#include "sharedclient_i.h"

void tc_sh_wb_put(struct wbuf *b, const void *d, size_t n)
{
	if (b->fail)
		return;
	if (b->len + n > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		uint8_t *np;

		while (cap < b->len + n)
			cap *= 2;
		np = realloc(b->p, cap);
		if (!np) {
			b->fail = true;
			return;
		}
		b->p = np;
		b->cap = cap;
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
}

void tc_sh_wb_u8(struct wbuf *b, uint8_t v)
{
	tc_sh_wb_put(b, &v, 1);
}

void tc_sh_wb_u16(struct wbuf *b, uint16_t v)
{
	uint8_t x[2] = { (uint8_t)v, (uint8_t)(v >> 8) };

	tc_sh_wb_put(b, x, 2);
}

void tc_sh_wb_u32(struct wbuf *b, uint32_t v)
{
	uint8_t x[4];

	for (int i = 0; i < 4; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	tc_sh_wb_put(b, x, 4);
}

void tc_sh_wb_u64(struct wbuf *b, uint64_t v)
{
	uint8_t x[8];

	for (int i = 0; i < 8; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	tc_sh_wb_put(b, x, 8);
}

void tc_sh_wb_str(struct wbuf *b, const char *s)
{
	size_t n = s ? strlen(s) : 0;

	tc_sh_wb_u16(b, (uint16_t)n); /* callers bounded n */
	tc_sh_wb_put(b, s ? s : "", n);
}

const uint8_t *tc_sh_rb_take(struct rbuf *b, size_t n)
{
	const uint8_t *r;

	if (b->bad || b->len - b->off < n) {
		b->bad = true;
		return NULL;
	}
	r = b->p + b->off;
	b->off += n;
	return r;
}

uint64_t tc_sh_rb_uint(struct rbuf *b, int bytes)
{
	const uint8_t *x = tc_sh_rb_take(b, (size_t)bytes);
	uint64_t v = 0;

	if (!x)
		return 0;
	for (int i = 0; i < bytes; i++)
		v |= (uint64_t)x[i] << (8 * i);
	return v;
}

/* A string of at most @max bytes without NUL, into *out (malloc). */
void tc_sh_rb_str(struct rbuf *b, size_t max, char **out)
{
	size_t n = (size_t)tc_sh_rb_uint(b, 2);
	const uint8_t *s;

	*out = NULL;
	if (n > max) {
		b->bad = true;
		return;
	}
	s = tc_sh_rb_take(b, n);
	if (!s || memchr(s, 0, n)) {
		b->bad = true;
		return;
	}
	*out = malloc(n + 1);
	if (!*out) {
		b->bad = true;
		return;
	}
	memcpy(*out, s, n);
	(*out)[n] = '\0';
}

static void mac(struct tc_shared *sh, const char *key, size_t klen,
		const uint8_t *data, size_t n, uint8_t out[MAC_LEN])
{
	crypto_generichash_state st;
	uint8_t kl[2] = { (uint8_t)klen, (uint8_t)(klen >> 8) };

	crypto_generichash_init(&st, sh->mac_key, sizeof(sh->mac_key),
				MAC_LEN);
	crypto_generichash_update(&st, kl, 2);
	crypto_generichash_update(&st, (const uint8_t *)key, klen);
	crypto_generichash_update(&st, data, n);
	crypto_generichash_final(&st, out, MAC_LEN);
}

void tc_sh_env_begin(struct tc_shared *sh, struct wbuf *b, char type)
{
	uint8_t head[ENV_HEAD] = { 't', 'c', '1', (uint8_t)type,
				   sh->keyed ? 1 : 0 };

	tc_sh_wb_put(b, head, sizeof(head));
}

/* Append the MAC (keyed) and check the buffer. 0 or -ENOMEM. */
int tc_sh_env_seal(struct tc_shared *sh, struct wbuf *b, const char *key,
		   size_t klen)
{
	if (sh->keyed && !b->fail) {
		uint8_t m[MAC_LEN];

		mac(sh, key, klen, b->p, b->len, m);
		tc_sh_wb_put(b, m, MAC_LEN);
	}
	return b->fail ? -ENOMEM : 0;
}

/* Check the envelope of @val (stored under @key) and find its body.
 * -EBADMSG when it is not of @type, of the other trust mode, or its MAC
 * fails. */
int tc_sh_env_open(struct tc_shared *sh, const char *key, size_t klen,
		   const void *val, size_t vlen, char type, struct rbuf *body)
{
	const uint8_t *v = val;
	size_t end = vlen;

	if (vlen < ENV_HEAD || memcmp(v, "tc1", 3) || v[3] != (uint8_t)type ||
	    v[4] != (sh->keyed ? 1 : 0))
		return -EBADMSG;
	if (sh->keyed) {
		uint8_t m[MAC_LEN];

		if (vlen < ENV_HEAD + MAC_LEN)
			return -EBADMSG;
		end = vlen - MAC_LEN;
		mac(sh, key, klen, v, end, m);
		if (sodium_memcmp(m, v + end, MAC_LEN))
			return -EBADMSG;
	}
	body->p = v + ENV_HEAD;
	body->len = end - ENV_HEAD;
	body->off = 0;
	body->bad = false;
	return 0;
}

size_t tc_sh_key_make(struct tc_shared *sh, char *out, const char *fmt, ...)
{
	va_list ap;
	int n;

	memcpy(out, sh->prefix, sh->prefix_len);
	va_start(ap, fmt);
	n = vsnprintf(out + sh->prefix_len, KEY_MAX - sh->prefix_len, fmt, ap);
	va_end(ap);
	return sh->prefix_len + (size_t)n; /* formats are bounded */
}

size_t tc_sh_key_name(struct tc_shared *sh, const uint8_t ph[16],
		      char out[KEY_MAX])
{
	char h[33];

	tc_sh_hex(ph, 16, h);
	return tc_sh_key_make(sh, out, "n:%s", h);
}

size_t tc_sh_key_path(struct tc_shared *sh, char kind, const char *path,
		      char out[KEY_MAX])
{
	uint8_t ph[16];
	char h[33];

	tc_sh_hash128(path, strlen(path), ph);
	tc_sh_hex(ph, 16, h);
	return tc_sh_key_make(sh, out, "%c:%s", kind, h);
}

size_t tc_sh_key_piece(struct tc_shared *sh, const uint8_t *hash,
		       uint32_t i, char out[KEY_MAX])
{
	char h[33];

	tc_sh_hex(hash, 16, h);
	return tc_sh_key_make(sh, out, "c:%s:%x", h, i);
}

int tc_sh_name_encode(struct tc_shared *sh, const struct name_rec *r,
		      const char *key, size_t klen, struct wbuf *b)
{
	const struct tc_shared_name *n = &r->n;

	tc_sh_env_begin(sh, b, T_NAME);
	tc_sh_wb_u8(b, (n->has_content ? NF_CONTENT : 0) |
			    (n->deleted ? NF_DELETED : 0));
	tc_sh_wb_put(b, n->hash, 16);
	tc_sh_wb_u64(b, n->size);
	tc_sh_wb_u32(b, n->mode);
	tc_sh_wb_u32(b, n->uid);
	tc_sh_wb_u32(b, n->gid);
	tc_sh_wb_u32(b, (uint32_t)n->ttl_mode);
	tc_sh_wb_u64(b, (uint64_t)n->mtime_ns);
	tc_sh_wb_u64(b, (uint64_t)n->expires_ns);
	tc_sh_wb_u64(b, (uint64_t)n->version_ns);
	tc_sh_wb_u64(b, n->writer);
	tc_sh_wb_u64(b, r->ns_gen);
	tc_sh_wb_str(b, n->path);
	tc_sh_wb_str(b, n->tags);
	tc_sh_wb_str(b, n->schema);
	tc_sh_wb_u8(b, (uint8_t)r->ntags);
	for (unsigned i = 0; i < r->ntags; i++)
		tc_sh_wb_u64(b, r->tag_gen[i]);
	return tc_sh_env_seal(sh, b, key, klen);
}

/* -EBADMSG for anything malformed (r is then empty), -ENOMEM. */
int tc_sh_name_decode(struct tc_shared *sh, const char *key, size_t klen,
		      const void *val, size_t vlen, struct name_rec *r)
{
	struct rbuf b;
	const uint8_t *h;
	const char *tv[TC_SHARED_TAGS_MAX];
	size_t tl[TC_SHARED_TAGS_MAX];
	unsigned flags;
	int ntags;

	memset(r, 0, sizeof(*r));
	if (tc_sh_env_open(sh, key, klen, val, vlen, T_NAME, &b))
		return -EBADMSG;
	flags = (unsigned)tc_sh_rb_uint(&b, 1);
	h = tc_sh_rb_take(&b, 16);
	if (h)
		memcpy(r->n.hash, h, 16);
	r->n.has_content = flags & NF_CONTENT;
	r->n.deleted = flags & NF_DELETED;
	r->n.size = tc_sh_rb_uint(&b, 8);
	r->n.mode = (uint32_t)tc_sh_rb_uint(&b, 4);
	r->n.uid = (uint32_t)tc_sh_rb_uint(&b, 4);
	r->n.gid = (uint32_t)tc_sh_rb_uint(&b, 4);
	r->n.ttl_mode = (int)(int32_t)tc_sh_rb_uint(&b, 4);
	r->n.mtime_ns = (int64_t)tc_sh_rb_uint(&b, 8);
	r->n.expires_ns = (int64_t)tc_sh_rb_uint(&b, 8);
	r->n.version_ns = (int64_t)tc_sh_rb_uint(&b, 8);
	r->n.writer = tc_sh_rb_uint(&b, 8);
	r->ns_gen = tc_sh_rb_uint(&b, 8);
	tc_sh_rb_str(&b, TC_SHARED_PATH_MAX, &r->n.path);
	tc_sh_rb_str(&b, TC_SHARED_TAGS_MAX * 65, &r->n.tags);
	tc_sh_rb_str(&b, 64, &r->n.schema);
	r->ntags = (unsigned)tc_sh_rb_uint(&b, 1);
	if (!b.bad) {
		ntags = tc_sh_tags_split(r->n.tags, tv, tl);
		if (ntags < 0 || (unsigned)ntags != r->ntags ||
		    (flags & ~(unsigned)(NF_CONTENT | NF_DELETED)) ||
		    !tc_sh_path_valid(r->n.path) || !tc_sh_schema_valid(r->n.schema))
			b.bad = true;
	}
	for (unsigned i = 0; i < r->ntags && !b.bad; i++)
		r->tag_gen[i] = tc_sh_rb_uint(&b, 8);
	if (b.bad || b.off != b.len) {
		tc_shared_name_free(&r->n);
		return -EBADMSG;
	}
	return 0;
}

int tc_sh_gen_encode(struct tc_shared *sh, uint64_t nonce, const char *key,
		     size_t klen, struct wbuf *b)
{
	tc_sh_env_begin(sh, b, T_GEN);
	tc_sh_wb_u64(b, nonce);
	tc_sh_wb_u64(b, (uint64_t)tc_sh_now(sh));
	tc_sh_wb_u64(b, sh->writer);
	return tc_sh_env_seal(sh, b, key, klen);
}

int tc_sh_gen_decode(struct tc_shared *sh, const char *key, size_t klen,
		     const void *val, size_t vlen, uint64_t *nonce)
{
	struct rbuf b;

	if (tc_sh_env_open(sh, key, klen, val, vlen, T_GEN, &b))
		return -EBADMSG;
	*nonce = tc_sh_rb_uint(&b, 8);
	tc_sh_rb_uint(&b, 8);
	tc_sh_rb_uint(&b, 8);
	if (b.bad || b.off != b.len || *nonce == 0)
		return -EBADMSG;
	return 0;
}

int tc_sh_dir_encode(struct tc_shared *sh, const char *dir,
		     const char *schema, const char *key, size_t klen,
		     struct wbuf *b)
{
	tc_sh_env_begin(sh, b, T_DIR);
	tc_sh_wb_u64(b, (uint64_t)tc_sh_now(sh));
	tc_sh_wb_u64(b, sh->writer);
	tc_sh_wb_str(b, dir);
	tc_sh_wb_str(b, schema);
	return tc_sh_env_seal(sh, b, key, klen);
}

/* The schema directory @dir's record holds, into *schema (malloc). */
int tc_sh_dir_decode(struct tc_shared *sh, const char *dir, const char *key,
		     size_t klen, const void *val, size_t vlen, char **schema)
{
	struct rbuf b;
	char *d = NULL;
	int rc = -EBADMSG;

	*schema = NULL;
	if (tc_sh_env_open(sh, key, klen, val, vlen, T_DIR, &b))
		return -EBADMSG;
	tc_sh_rb_uint(&b, 8);
	tc_sh_rb_uint(&b, 8);
	tc_sh_rb_str(&b, TC_SHARED_PATH_MAX, &d);
	tc_sh_rb_str(&b, 64, schema);
	if (!b.bad && b.off == b.len && strcmp(d, dir) == 0 &&
	    tc_sh_schema_valid(*schema))
		rc = 0;
	free(d);
	if (rc) {
		free(*schema);
		*schema = NULL;
	}
	return rc;
}

int tc_sh_event_encode(struct tc_shared *sh, uint8_t type, const char *a,
		       const char *bstr, const char *key, size_t klen,
		       struct wbuf *b)
{
	tc_sh_env_begin(sh, b, T_EVENT);
	tc_sh_wb_u8(b, type);
	tc_sh_wb_u64(b, (uint64_t)tc_sh_now(sh));
	tc_sh_wb_u64(b, sh->writer);
	tc_sh_wb_str(b, a);
	tc_sh_wb_str(b, bstr);
	return tc_sh_env_seal(sh, b, key, klen);
}

int tc_sh_event_decode(struct tc_shared *sh, const char *key, size_t klen,
		       const void *val, size_t vlen, struct event_rec *e)
{
	struct rbuf b;

	memset(e, 0, sizeof(*e));
	if (tc_sh_env_open(sh, key, klen, val, vlen, T_EVENT, &b))
		return -EBADMSG;
	e->type = (uint8_t)tc_sh_rb_uint(&b, 1);
	e->when = (int64_t)tc_sh_rb_uint(&b, 8);
	e->writer = tc_sh_rb_uint(&b, 8);
	tc_sh_rb_str(&b, TC_SHARED_PATH_MAX, &e->a);
	tc_sh_rb_str(&b, 64, &e->b);
	if (!b.bad && b.off == b.len &&
	    ((e->type == TC_SHARED_EV_FLUSH) ||
	     (e->type == TC_SHARED_EV_EVICT_TAG &&
	      tc_sh_tag_valid(e->a, strlen(e->a))) ||
	     (e->type == TC_SHARED_EV_SCHEMA && tc_sh_path_valid(e->a) &&
	      tc_sh_schema_valid(e->b))))
		return 0;
	free(e->a);
	free(e->b);
	return -EBADMSG;
}

int tc_sh_piece_encode(struct tc_shared *sh, const struct push *p,
		       uint32_t i, uint32_t count_, const void *data,
		       size_t len, const char *key, size_t klen,
		       struct wbuf *b)
{
	tc_sh_env_begin(sh, b, T_PIECE);
	tc_sh_wb_u64(b, p->size);
	tc_sh_wb_u32(b, i);
	tc_sh_wb_u32(b, count_);
	tc_sh_wb_put(b, data, len);
	return tc_sh_env_seal(sh, b, key, klen);
}

void tc_shared_name_free(struct tc_shared_name *n)
{
	free(n->path);
	free(n->tags);
	free(n->schema);
	n->path = n->tags = n->schema = NULL;
}

int tc_sh_name_copy(struct tc_shared_name *dst,
		    const struct tc_shared_name *src)
{
	*dst = *src;
	dst->path = strdup(src->path);
	dst->tags = strdup(src->tags ? src->tags : "");
	dst->schema = strdup(src->schema ? src->schema : "");
	if (!dst->path || !dst->tags || !dst->schema) {
		tc_shared_name_free(dst);
		return -ENOMEM;
	}
	return 0;
}
