/* SPDX-License-Identifier: MIT */
/*
 * fuzz_xattr: the extended attributes of tiercachefs(8), EXTENDED ATTRIBUTES through tc_setxattr,
 * tc_getxattr, tc_removexattr and tc_listxattr, against a model.
 *
 * One engine per process (LLVMFuzzerInitialize), on a store in a temporary
 * directory, with a fixed injected clock and sync=never. Each input starts
 * from the same state, rebuilt cheaply: the root's attributes removed, a
 * file "f" (content "hello") and a directory "d" recreated at the root.
 * The input is then a sequence of operations, each
 *
 *   byte   operation (set, set, set, get, remove, list) x target (f, d, root)
 *   byte   attribute name: one of user.tiercache.{ttl,ttl_mode,expires,
 *          tags,schema,tier,hash,evict_tag,flush,expire,reset_stats},
 *          malformed user.tiercache.* names, plain user.* names, other
 *          namespaces, over-long names, or a name taken from the input
 *   byte   (set) flags: XATTR_CREATE / XATTR_REPLACE, for user.* names
 *   byte   (set) value length: < 200 that many input bytes; 200..253
 *          (n-200)*48 input bytes; 254, 255: 64 KiB and 64 KiB + 1 bytes
 *   bytes  (set) the value
 *
 * The model holds, per target, the user.tiercache.* state (ttl, ttl_mode,
 * tags, schema, the tier of f's content) and the user.* attributes. Every
 * operation's return code is predicted from tiercachefs(8), EXTENDED ATTRIBUTES and the API comments
 * (EINVAL for malformed values, EPERM for read-only and misplaced ones,
 * ENOTSUP for other namespaces, ENOENT once f was flushed or evicted by
 * tag, ...), and after each one the target's every attribute is read back
 * and compared, so a rejected set that changed something is caught. A
 * successful set of ttl, ttl_mode, tags or schema must read back normalised
 * (a ttl in its largest exact unit, tags without duplicates) and setting
 * that value again must be accepted and change nothing. listxattr must
 * list exactly the user.* names and the user.tiercache.* ones that are set,
 * each readable; every get and list is also checked with a zero size (the
 * length) and a buffer one byte short (ERANGE).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "fuzz_eng.h"

#define NS_PER_S INT64_C(1000000000)
#define XCREATE 1  /* XATTR_CREATE */
#define XREPLACE 2 /* XATTR_REPLACE */

/* Longest user.tiercache.* value the engine takes (MAX_TAGS * 66 + 16 in
 * policy.c: 32 tags of 64 bytes and their commas fit): an implementation
 * limit, longer values are malformed. */
#define TC_VALUE_MAX 2128

enum { T_FILE, T_DIR, T_ROOT, T_N };
static const char *const target_names[] = { "f", "d", "root" };

enum attr {
	A_TTL,
	A_TTL_MODE,
	A_EXPIRES,
	A_TAGS,
	A_SCHEMA,
	A_TIER,
	A_HASH,
	A_EVICT_TAG,
	A_FLUSH,
	A_EXPIRE,
	A_RESET_STATS,
	A_UNKNOWN,
};

static const char *const attr_names[] = {
	"ttl",	"ttl_mode",  "expires", "tags",	  "schema",	 "tier",
	"hash", "evict_tag", "flush",	"expire", "reset_stats",
};

static bool attr_readonly(enum attr a)
{
	return a == A_EXPIRES || a == A_TIER || a == A_HASH;
}

static bool attr_control(enum attr a)
{
	return a >= A_EVICT_TAG && a <= A_RESET_STATS;
}

struct uattr {
	char *name;
	struct fz_buf val;
};

struct target {
	uint64_t ino;
	bool reg;	 /* the file (else a directory) */
	bool dead;	 /* flushed or evicted: every call gives ENOENT */
	int64_t ttl;	 /* own ttl in ns, <0 unset */
	int ttl_mode;	 /* <0 unset */
	char tags[TC_VALUE_MAX + 1]; /* normalised, "" none */
	char schema[65];
	bool in_ram; /* f: its content is in the RAM tier */
	struct uattr *ua;
	size_t nua;
};

static struct {
	struct fz_eng fx;
	struct target t[T_N];
	char hash_hex[33]; /* of "hello" */
} S;

static const char file_content[] = "hello";

/* ------------------------------------------------------------------ */
/* Reference rules                                                    */
/* ------------------------------------------------------------------ */

enum cls { C_OTHER, C_USER, C_TC };

static enum cls classify(const char *name)
{
	if (!strncmp(name, TC_XATTR_PREFIX, strlen(TC_XATTR_PREFIX)))
		return C_TC;
	if (!strncmp(name, "user.", 5) && name[5])
		return C_USER;
	return C_OTHER;
}

static enum attr attr_of(const char *name)
{
	const char *s = name + strlen(TC_XATTR_PREFIX);

	for (int a = 0; a < A_UNKNOWN; a++)
		if (!strcmp(s, attr_names[a]))
			return (enum attr)a;
	return A_UNKNOWN;
}

static bool word_ok(const char *s, size_t len, const char *extra)
{
	if (len < 1 || len > 64)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || (c && strchr(extra, c))))
			return false;
	}
	return true;
}

/* Normalise a tag list ("b,a,b" -> "b,a": first occurrences, in order).
 * @return false when malformed (a bad tag, an empty one, more than 32). */
static bool tags_normalise(const char *v, char *out)
{
	char seen[32][65];
	size_t start = 0, len = strlen(v), used = 0;
	int n = 0, count = 0;

	out[0] = '\0';
	if (len == 0)
		return true;
	for (size_t i = 0; i <= len; i++) {
		size_t tl = i - start;
		bool dup = false;

		if (i < len && v[i] != ',')
			continue;
		if (!word_ok(v + start, tl, "_.:-") || ++count > 32)
			return false;
		for (int k = 0; k < n && !dup; k++)
			dup = strlen(seen[k]) == tl &&
			      !memcmp(seen[k], v + start, tl);
		if (!dup) {
			memcpy(seen[n], v + start, tl);
			seen[n][tl] = '\0';
			used += (size_t)sprintf(out + used, "%s%s",
						n ? "," : "", seen[n]);
			n++;
		}
		start = i + 1;
	}
	return true;
}

static bool has_tag(const char *list, const char *tag)
{
	size_t tl = strlen(tag);

	for (const char *p = list; *p;) {
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);

		if (l == tl && !memcmp(p, tag, tl))
			return true;
		if (!e)
			break;
		p = e + 1;
	}
	return false;
}

/* A ttl in its largest exact unit, as the man page's examples write it ("1h"). */
static void format_ttl(int64_t ns, char *out, size_t size)
{
	int64_t s = ns / NS_PER_S;

	if (s % 86400 == 0)
		snprintf(out, size, "%" PRId64 "d", s / 86400);
	else if (s % 3600 == 0)
		snprintf(out, size, "%" PRId64 "h", s / 3600);
	else if (s % 60 == 0)
		snprintf(out, size, "%" PRId64 "m", s / 60);
	else
		snprintf(out, size, "%" PRId64 "s", s);
}

/*
 * Expected value of readable attribute @a of @t into @out.
 * @return 0, or the -errno a get must give.
 */
static int expect_attr(const struct target *t, enum attr a, char *out,
		       size_t size)
{
	if (t->dead)
		return -ENOENT;
	switch (a) {
	case A_TTL:
		if (t->ttl < 0)
			return -ENODATA;
		format_ttl(t->ttl, out, size);
		return 0;
	case A_TTL_MODE:
		if (t->ttl_mode < 0)
			return -ENODATA;
		snprintf(out, size, "%s", t->ttl_mode ? "sliding" : "absolute");
		return 0;
	case A_EXPIRES:
		/* The mount has no ttl=, no tag rules, and f was created
		 * under a directory without one: only its own ttl counts,
		 * from the (fixed) time it was set. Overflow: never. */
		if (!t->reg || t->ttl <= 0 || t->ttl > INT64_MAX - FZ_EPOCH_NS)
			return -ENODATA;
		snprintf(out, size, "%" PRId64,
			 (FZ_EPOCH_NS + t->ttl) / NS_PER_S +
				 ((FZ_EPOCH_NS + t->ttl) % NS_PER_S != 0));
		return 0;
	case A_TAGS:
		if (!t->reg || !t->tags[0])
			return -ENODATA;
		snprintf(out, size, "%s", t->tags);
		return 0;
	case A_SCHEMA:
		if (!t->schema[0])
			return -ENODATA;
		snprintf(out, size, "%s", t->schema);
		return 0;
	case A_TIER:
		if (!t->reg)
			return -ENODATA;
		snprintf(out, size, "%s", t->in_ram ? "ram" : "disk");
		return 0;
	case A_HASH:
		if (!t->reg)
			return -ENODATA;
		snprintf(out, size, "%s", S.hash_hex);
		return 0;
	default:
		return -ENODATA; /* control attributes are write-only */
	}
}

static struct uattr *ua_find(struct target *t, const char *name)
{
	for (size_t i = 0; i < t->nua; i++)
		if (!strcmp(t->ua[i].name, name))
			return &t->ua[i];
	return NULL;
}

static void ua_clear(struct target *t)
{
	for (size_t i = 0; i < t->nua; i++) {
		free(t->ua[i].name);
		fz_buf_free(&t->ua[i].val);
	}
	free(t->ua);
	t->ua = NULL;
	t->nua = 0;
}

/* ------------------------------------------------------------------ */
/* Checks against the engine                                          */
/* ------------------------------------------------------------------ */

/* getxattr @name of @t must give @want (0: the @len bytes of @val). */
static void check_get(const struct target *t, const char *name, int want,
		      const void *val, size_t len)
{
	ssize_t n = tc_getxattr(S.fx.eng, t->ino, name, NULL, 0);
	char *buf;

	if (want) {
		FZ_CHECK(n == want, "getxattr(%s, %s, size 0) = %zd, want %d",
			 target_names[t - S.t], name, n, want);
		return;
	}
	FZ_CHECK(n == (ssize_t)len, "getxattr(%s, %s, size 0) = %zd, want %zu",
		 target_names[t - S.t], name, n, len);
	buf = malloc(len + 1);
	FZ_CHECK(buf != NULL, "out of memory");
	n = tc_getxattr(S.fx.eng, t->ino, name, buf, len + 1);
	FZ_CHECK(n == (ssize_t)len && (!len || !memcmp(buf, val, len)),
		 "getxattr(%s, %s) = %zd '%.*s', want %zu '%.*s'",
		 target_names[t - S.t], name, n, n > 0 ? (int)n : 0, buf, len,
		 (int)len, (const char *)val);
	if (len > 1) { /* (size 0 asks for the length) */
		n = tc_getxattr(S.fx.eng, t->ino, name, buf, len - 1);
		FZ_CHECK(n == -ERANGE,
			 "getxattr(%s, %s) one byte short = %zd, want ERANGE",
			 target_names[t - S.t], name, n);
	}
	free(buf);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* listxattr of @t must list exactly the model's readable names. */
static void check_list(const struct target *t)
{
	char *want[64 + 4], *got[64 + 4], val[TC_VALUE_MAX + 64], *buf;
	size_t nwant = 0, ngot = 0;
	ssize_t n = tc_listxattr(S.fx.eng, t->ino, NULL, 0), n2;

	if (t->dead) {
		FZ_EQ(n, -ENOENT, "listxattr of a dead target");
		return;
	}
	FZ_CHECK(n >= 0, "listxattr(%s, size 0) = %zd", target_names[t - S.t],
		 n);
	for (size_t i = 0; i < t->nua && nwant < 64; i++)
		want[nwant++] = t->ua[i].name;
	FZ_CHECK(t->nua <= 64, "too many user attributes for the model");
	for (int a = 0; a < A_UNKNOWN; a++) {
		static char full[A_UNKNOWN][40];

		if (a == A_EXPIRES || a == A_TIER || a == A_HASH ||
		    attr_control((enum attr)a) ||
		    expect_attr(t, (enum attr)a, val, sizeof(val)))
			continue;
		snprintf(full[a], sizeof(full[a]), TC_XATTR_PREFIX "%s",
			 attr_names[a]);
		want[nwant++] = full[a];
	}
	buf = malloc((size_t)n + 1);
	FZ_CHECK(buf != NULL, "out of memory");
	n2 = tc_listxattr(S.fx.eng, t->ino, buf, (size_t)n + 1);
	FZ_CHECK(n2 == n, "listxattr(%s) = %zd, with size 0 %zd",
		 target_names[t - S.t], n2, n);
	FZ_CHECK(n == 0 || buf[n - 1] == '\0', "listxattr: unterminated");
	for (ssize_t off = 0; off < n; off += (ssize_t)strlen(buf + off) + 1) {
		FZ_CHECK(ngot < 64 + 4, "listxattr(%s): too many names",
			 target_names[t - S.t]);
		got[ngot++] = buf + off;
	}
	qsort(want, nwant, sizeof(*want), cmp_str);
	qsort(got, ngot, sizeof(*got), cmp_str);
	FZ_CHECK(ngot == nwant, "listxattr(%s): %zu names, model %zu",
		 target_names[t - S.t], ngot, nwant);
	for (size_t i = 0; i < ngot; i++)
		FZ_CHECK(!strcmp(got[i], want[i]),
			 "listxattr(%s): '%s', model '%s'",
			 target_names[t - S.t], got[i], want[i]);
	if (n > 1) {
		n2 = tc_listxattr(S.fx.eng, t->ino, buf, (size_t)n - 1);
		FZ_EQ(n2, -ERANGE, "listxattr one byte short");
	}
	free(buf);
}

/* Every attribute of @t, read back, must equal the model. */
static void check_target(struct target *t)
{
	char name[64], val[TC_VALUE_MAX + 64];

	for (int a = 0; a < A_UNKNOWN; a++) {
		int want = expect_attr(t, (enum attr)a, val, sizeof(val));

		snprintf(name, sizeof(name), TC_XATTR_PREFIX "%s",
			 attr_names[a]);
		check_get(t, name, want, val, want ? 0 : strlen(val));
	}
	for (size_t i = 0; i < t->nua; i++)
		check_get(t, t->ua[i].name, t->dead ? -ENOENT : 0,
			  t->ua[i].val.p, t->ua[i].val.len);
	check_list(t);
}

/* ------------------------------------------------------------------ */
/* Operations                                                         */
/* ------------------------------------------------------------------ */

/* A control attribute set on the root: its effect on the model. */
static int control(enum attr a, const char *v)
{
	struct target *f = &S.t[T_FILE];

	switch (a) {
	case A_EVICT_TAG:
		if (!word_ok(v, strlen(v), "_.:-"))
			return -EINVAL;
		if (!f->dead && has_tag(f->tags, v))
			f->dead = true;
		return 0;
	case A_FLUSH:
		if (!strcmp(v, "ram")) {
			f->in_ram = false;
			return 0;
		}
		if (!strcmp(v, "disk") || !strcmp(v, "all")) {
			f->in_ram = false;
			f->dead = true;
			return 0;
		}
		return -EINVAL;
	default: /* expire (nothing expires: the clock stands still),
		  * reset_stats */
		return 0;
	}
}

/*
 * Predict a user.tiercache.* set and apply it to the model.
 * @return the expected return code.
 */
/* XATTR_CREATE of a present attribute, XATTR_REPLACE of an absent one:
 * checked once the value is known to be valid. */
static int flags_refuse(const struct target *t, enum attr a, int flags)
{
	char cur[TC_VALUE_MAX + 16];
	bool exists = expect_attr(t, a, cur, sizeof(cur)) == 0;

	if (exists && (flags & XCREATE))
		return -EEXIST;
	if (!exists && (flags & XREPLACE))
		return -ENODATA;
	return 0;
}

static int model_set_tc(struct target *t, const char *name, const char *val,
			size_t len, int flags)
{
	enum attr a = attr_of(name);
	char v[TC_VALUE_MAX], tags[TC_VALUE_MAX + 1];
	int64_t ns;
	enum tc_ttl_mode mode;

	if (a == A_UNKNOWN)
		return -EINVAL;
	if (attr_readonly(a))
		return -EPERM;
	/* One trailing NUL (tools include it) is accepted; another NUL
	 * anywhere is malformed. */
	if (len && val[len - 1] == '\0')
		len--;
	if (len >= TC_VALUE_MAX || memchr(val, '\0', len))
		return -EINVAL;
	memcpy(v, val, len);
	v[len] = '\0';
	if (t->dead)
		return -ENOENT;
	if (attr_control(a))
		return t == &S.t[T_ROOT] ? control(a, v) : -EPERM;
	switch (a) {
	case A_TTL:
		if (tc_parse_duration(v, &ns))
			return -EINVAL;
		if (flags_refuse(t, a, flags))
			return flags_refuse(t, a, flags);
		t->ttl = ns > 0 ? ns : -1; /* none/0 removes it */
		return 0;
	case A_TTL_MODE:
		if (tc_parse_ttl_mode(v, &mode))
			return -EINVAL;
		if (flags_refuse(t, a, flags))
			return flags_refuse(t, a, flags);
		t->ttl_mode = (int)mode;
		return 0;
	case A_TAGS:
		if (!t->reg)
			return -EPERM;
		if (!tags_normalise(v, tags))
			return -EINVAL;
		if (flags_refuse(t, a, flags))
			return flags_refuse(t, a, flags);
		memcpy(t->tags, tags, sizeof(tags));
		return 0;
	case A_SCHEMA:
		if (!word_ok(v, len, "_.+-"))
			return -EINVAL;
		if (flags_refuse(t, a, flags))
			return flags_refuse(t, a, flags);
		memcpy(t->schema, v, len + 1);
		return 0;
	default:
		return -EINVAL;
	}
}

static int model_set_user(struct target *t, const char *name,
			  const uint8_t *val, size_t len, int flags)
{
	struct uattr *u;

	if (len > TC_XATTR_SIZE_MAX)
		return -E2BIG;
	if (strlen(name) > 255)
		return -ERANGE;
	if (t->dead)
		return -ENOENT;
	u = ua_find(t, name);
	if (u && (flags & XCREATE))
		return -EEXIST;
	if (!u && (flags & XREPLACE))
		return -ENODATA;
	if (!u) {
		t->ua = realloc(t->ua, (t->nua + 1) * sizeof(*t->ua));
		FZ_CHECK(t->ua != NULL, "out of memory");
		u = &t->ua[t->nua++];
		memset(u, 0, sizeof(*u));
		u->name = strdup(name);
		FZ_CHECK(u->name != NULL, "out of memory");
	}
	u->val.len = 0;
	fz_buf_write(&u->val, 0, val, len);
	return 0;
}

static int model_remove(struct target *t, const char *name)
{
	char val[TC_VALUE_MAX + 64];
	struct uattr *u;
	enum attr a;
	int rc;

	switch (classify(name)) {
	case C_OTHER:
		return -ENOTSUP;
	case C_USER:
		if (t->dead)
			return -ENOENT;
		u = ua_find(t, name);
		if (!u)
			return -ENODATA;
		free(u->name);
		fz_buf_free(&u->val);
		*u = t->ua[--t->nua];
		return 0;
	case C_TC:
		break;
	}
	a = attr_of(name);
	if (a == A_UNKNOWN)
		return -ENODATA;
	if (attr_readonly(a) || attr_control(a))
		return -EPERM;
	rc = expect_attr(t, a, val, sizeof(val));
	if (rc)
		return rc;
	if (a == A_TTL)
		t->ttl = -1;
	else if (a == A_TTL_MODE)
		t->ttl_mode = -1;
	else if (a == A_TAGS)
		t->tags[0] = '\0';
	else
		t->schema[0] = '\0';
	return 0;
}

/* After a successful set of @name: its normalised value, set again, must
 * be accepted and change nothing. */
static void check_reset(struct target *t, const char *name)
{
	char val[TC_VALUE_MAX + 64];
	enum attr a = attr_of(name);
	int want = expect_attr(t, a, val, sizeof(val)), rc;

	if (want)
		return; /* removed ("none", no tags) */
	rc = tc_setxattr(S.fx.eng, t->ino, name, val, strlen(val), 0);
	FZ_CHECK(rc == 0, "setxattr(%s, %s, '%s') of its own value: %s",
		 target_names[t - S.t], name, val, strerror(-rc));
	rc = model_set_tc(t, name, val, strlen(val), 0);
	FZ_CHECK(rc == 0, "model refuses its own value '%s' for %s", val,
		 name);
	check_target(t);
}

/* ------------------------------------------------------------------ */
/* Input decoding                                                     */
/* ------------------------------------------------------------------ */

/* The attribute name of the next operation into @out. */
static void pick_name(struct fz_in *in, char *out, size_t size)
{
	static const char *const fixed[] = {
		TC_XATTR_PREFIX,	/* empty attribute */
		TC_XATTR_PREFIX "TTL",	/* names are case-sensitive */
		TC_XATTR_PREFIX "ttl.", /* exact names only */
		TC_XATTR_PREFIX "nope",
		"user.a",
		"user.b",
		"user.tiercache", /* a plain user attribute */
		"user.",	  /* no name: not user.* */
		"trusted.a",
		"security.a",
		"system.posix_acl_access",
		"",
		"user",
	};
	uint8_t c = fz_u8(in) % (A_UNKNOWN + 13 + 4);

	if (c < A_UNKNOWN) {
		snprintf(out, size, TC_XATTR_PREFIX "%s", attr_names[c]);
	} else if (c < A_UNKNOWN + 13) {
		snprintf(out, size, "%s", fixed[c - A_UNKNOWN]);
	} else if (c < A_UNKNOWN + 15) {
		/* 255 bytes (the longest accepted) or 256 (ERANGE). */
		size_t len = c == A_UNKNOWN + 13 ? 255 : 256;

		memcpy(out, "user.", 5);
		memset(out + 5, 'n', len - 5);
		out[len] = '\0';
	} else {
		/* "user." or "user.tiercache." and up to 31 input bytes. */
		const char *pfx = c == A_UNKNOWN + 15 ? "user."
						      : TC_XATTR_PREFIX;
		size_t n, pl = strlen(pfx);
		const uint8_t *p = fz_bytes(in, fz_u8(in) % 32, &n);

		memcpy(out, pfx, pl);
		memcpy(out + pl, p, n);
		out[pl + n] = '\0'; /* an embedded NUL shortens the name */
	}
}

/* The value of a set: a pointer into the input or into @big. */
static const uint8_t *pick_value(struct fz_in *in, size_t *len, uint8_t *big)
{
	uint8_t c = fz_u8(in);

	if (c >= 254) {
		*len = TC_XATTR_SIZE_MAX + (c == 255);
		memset(big, 'v', *len);
		return big;
	}
	return fz_bytes(in, c < 200 ? c : (size_t)(c - 200) * 48, len);
}

static void op_set(struct target *t, const char *name, int flags,
		   const uint8_t *val, size_t len)
{
	int want, rc;
	bool tc = classify(name) == C_TC;

	switch (classify(name)) {
	case C_OTHER:
		want = -ENOTSUP;
		break;
	case C_USER:
		want = model_set_user(t, name, val, len, flags);
		break;
	default:
		want = model_set_tc(t, name, (const char *)val, len, flags);
		break;
	}
	rc = tc_setxattr(S.fx.eng, t->ino, name, val, len, flags);
	FZ_CHECK(rc == want, "setxattr(%s, '%s', %zu bytes '%.*s', flags %d) "
		 "= %d (%s), model %d (%s)", target_names[t - S.t], name, len,
		 len > 80 ? 80 : (int)len, (const char *)val, flags, rc,
		 strerror(-rc), want, strerror(-want));
	if (rc == 0 && tc && attr_control(attr_of(name))) {
		for (int i = 0; i < T_N; i++)
			check_target(&S.t[i]);
		return;
	}
	check_target(t);
	if (rc == 0 && tc)
		check_reset(t, name);
}

static void op_get(struct target *t, const char *name)
{
	char val[TC_VALUE_MAX + 64];
	struct uattr *u;

	switch (classify(name)) {
	case C_OTHER:
		check_get(t, name, -ENOTSUP, NULL, 0);
		break;
	case C_USER:
		u = t->dead ? NULL : ua_find(t, name);
		if (u)
			check_get(t, name, 0, u->val.p, u->val.len);
		else
			check_get(t, name, t->dead ? -ENOENT : -ENODATA, NULL,
				  0);
		break;
	case C_TC: {
		int want = expect_attr(t, attr_of(name), val, sizeof(val));

		check_get(t, name, want, val, want ? 0 : strlen(val));
		break;
	}
	}
}

static void op_remove(struct target *t, const char *name)
{
	int want = model_remove(t, name);
	int rc = tc_removexattr(S.fx.eng, t->ino, name);

	FZ_CHECK(rc == want, "removexattr(%s, '%s') = %d (%s), model %d (%s)",
		 target_names[t - S.t], name, rc, strerror(-rc), want,
		 strerror(-want));
	check_target(t);
}

/* ------------------------------------------------------------------ */
/* State                                                              */
/* ------------------------------------------------------------------ */

static void reset_target(struct target *t, uint64_t ino, bool reg)
{
	ua_clear(t);
	memset(t, 0, sizeof(*t));
	t->ino = ino;
	t->reg = reg;
	t->ttl = -1;
	t->ttl_mode = -1;
	t->in_ram = reg; /* just published: in RAM */
}

/* Back to the state every input starts from. */
static void reset(void)
{
	struct tc_engine *eng = S.fx.eng;
	char *list;
	ssize_t n;
	int rc;

	static const enum attr root_attrs[] = { A_TTL, A_TTL_MODE, A_SCHEMA };

	for (size_t i = 0; i < 3; i++) {
		char name[64];

		snprintf(name, sizeof(name), TC_XATTR_PREFIX "%s",
			 attr_names[root_attrs[i]]);
		rc = tc_removexattr(eng, TC_ROOT_INO, name);
		FZ_CHECK(rc == 0 || rc == -ENODATA, "reset: remove %s: %d",
			 name, rc);
	}
	n = tc_listxattr(eng, TC_ROOT_INO, NULL, 0);
	FZ_CHECK(n >= 0, "reset: listxattr: %zd", n);
	list = malloc((size_t)n + 1);
	FZ_CHECK(list != NULL, "out of memory");
	FZ_EQ(tc_listxattr(eng, TC_ROOT_INO, list, (size_t)n + 1), n,
	      "reset: listxattr");
	for (ssize_t off = 0; off < n; off += (ssize_t)strlen(list + off) + 1)
		FZ_EQ(tc_removexattr(eng, TC_ROOT_INO, list + off), 0,
		      "reset: removexattr");
	free(list);
	rc = tc_unlink(eng, TC_ROOT_INO, "f");
	FZ_CHECK(rc == 0 || rc == -ENOENT, "reset: unlink f: %d", rc);
	rc = tc_rmdir(eng, TC_ROOT_INO, "d");
	FZ_CHECK(rc == 0 || rc == -ENOENT, "reset: rmdir d: %d", rc);
	reset_target(&S.t[T_FILE],
		     fz_eng_put_new(&S.fx, TC_ROOT_INO, "f", file_content,
				    strlen(file_content)),
		     true);
	reset_target(&S.t[T_DIR], fz_eng_mkdir(&S.fx, TC_ROOT_INO, "d"),
		     false);
	reset_target(&S.t[T_ROOT], TC_ROOT_INO, false);
}

static void cleanup(void)
{
	for (int i = 0; i < T_N; i++)
		ua_clear(&S.t[i]);
	fz_eng_destroy(&S.fx);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	XXH128_canonical_t c;

	(void)argc;
	(void)argv;
	XXH128_canonicalFromHash(&c, XXH3_128bits(file_content,
						  strlen(file_content)));
	for (int i = 0; i < 16; i++)
		snprintf(S.hash_hex + 2 * i, 3, "%02x", c.digest[i]);
	fz_eng_init(&S.fx, "xattr");
	fz_eng_open(&S.fx);
	atexit(cleanup);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fz_in in = { data, size };
	static uint8_t big[TC_XATTR_SIZE_MAX + 1];
	char name[300];

	reset();
	check_target(&S.t[T_FILE]);
	while (fz_more(&in)) {
		uint8_t op = fz_u8(&in);
		struct target *t = &S.t[(op / 6) % T_N];
		const uint8_t *val;
		size_t len;
		int flags;

		pick_name(&in, name, sizeof(name));
		switch (op % 6) {
		case 0:
		case 1:
		case 2:
			flags = fz_u8(&in) & 3;
			val = pick_value(&in, &len, big);
			op_set(t, name, flags, val, len);
			break;
		case 3:
			op_get(t, name);
			break;
		case 4:
			op_remove(t, name);
			break;
		default:
			check_list(t);
			break;
		}
	}
	return 0;
}
