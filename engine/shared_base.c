/* SPDX-License-Identifier: MIT */
/*
 * The shared-tier client's small services (log, clock, hashes, nonces)
 * and the grammars of what it is given: paths, tags, schemas, server
 * lists, key files. The bottom of the client (shared.c's essay has the
 * design): everything above may call it; it calls nothing of the client.
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
#include <xxhash.h>

#include "sharedclient_i.h"

void tc_sh_log(struct tc_shared *sh, int level, const char *fmt, ...)
{
	va_list ap;

	if (!sh->log_fn || level > sh->log_level)
		return;
	va_start(ap, fmt);
	sh->log_fn(sh->log_ctx, level, fmt, ap);
	va_end(ap);
}

int64_t tc_sh_now(struct tc_shared *sh)
{
	struct timespec ts;

	if (sh->clock)
		return sh->clock(sh->clock_ctx);
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * NSEC + ts.tv_nsec;
}

int64_t tc_sh_mono_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * NSEC + ts.tv_nsec;
}

struct timespec tc_sh_mono_ts(int64_t ns)
{
	struct timespec ts = { .tv_sec = ns / NSEC, .tv_nsec = ns % NSEC };

	return ts;
}

void tc_sh_hex(const uint8_t *b, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[b[i] >> 4];
		out[2 * i + 1] = digits[b[i] & 15];
	}
	out[2 * n] = '\0';
}

/* XXH3-128 in the canonical (big-endian) form the engine uses. */
void tc_sh_hash128(const void *buf, size_t len, uint8_t out[16])
{
	XXH128_canonical_t c;

	XXH128_canonicalFromHash(&c, XXH3_128bits(buf, len));
	memcpy(out, c.digest, 16);
}

uint64_t tc_sh_random_nonce(void)
{
	uint64_t v;

	do
		randombytes_buf(&v, sizeof(v));
	while (v == 0);
	return v;
}

bool tc_sh_path_valid(const char *p)
{
	size_t len;

	if (!p || p[0] != '/')
		return false;
	len = strlen(p);
	if (len > TC_SHARED_PATH_MAX)
		return false;
	if (len == 1)
		return true;
	if (p[len - 1] == '/')
		return false;
	for (const char *c = p; *c; c++) {
		if (*c != '/')
			continue;
		/* no empty, "." or ".." component */
		if (c[1] == '/' ||
		    (c[1] == '.' && (c[2] == '/' || c[2] == '\0')) ||
		    (c[1] == '.' && c[2] == '.' && (c[3] == '/' || !c[3])))
			return false;
	}
	return true;
}

bool tc_sh_charset_valid(const char *s, size_t len, const char *extra)
{
	for (size_t i = 0; i < len; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		      (c >= '0' && c <= '9') || strchr(extra, c)) || !c)
			return false;
	}
	return true;
}

/* SPEC §5: tags [A-Za-z0-9_.:-]{1,64}, schemas [A-Za-z0-9_.+-]{1,64}. */
bool tc_sh_tag_valid(const char *t, size_t len)
{
	return len >= 1 && len <= 64 && tc_sh_charset_valid(t, len, "_.:-");
}

bool tc_sh_schema_valid(const char *s)
{
	size_t len = strlen(s);

	return len <= 64 && tc_sh_charset_valid(s, len, "_.+-");
}

/* Split "a,b" into at most TC_SHARED_TAGS_MAX tags (pointers into
 * @tags). Returns the count, or -EINVAL. */
int tc_sh_tags_split(const char *tags, const char *v[], size_t len[])
{
	int n = 0;
	const char *p = tags;

	if (!*tags)
		return 0;
	for (;;) {
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);

		if (n == TC_SHARED_TAGS_MAX || !tc_sh_tag_valid(p, l))
			return -EINVAL;
		v[n] = p;
		len[n] = l;
		n++;
		if (!e)
			return n;
		p = e + 1;
	}
}

static int server_cmp(const void *a, const void *b)
{
	const struct server *x = a, *y = b;
	int c = strcmp(x->host, y->host);

	if (c)
		return c;
	return (x->port > y->port) - (x->port < y->port);
}

/* Parse "HOST:PORT[,HOST:PORT...]" into a sorted array (free()d by the
 * caller). HOST: [A-Za-z0-9._-]+ or [IPV6]. -EINVAL with @err set. */
int tc_sh_servers_parse(const char *s, struct server **out, unsigned *n,
			char *err, size_t errlen)
{
	struct server *v = NULL;
	unsigned cnt = 0;
	const char *p = s;
	int rc = -EINVAL;

	if (!s || !*s) {
		snprintf(err, errlen, "no servers (expected HOST:PORT[,...])");
		return -EINVAL;
	}
	for (;;) {
		const char *e = strchr(p, ','), *colon, *h0, *h1;
		size_t l = e ? (size_t)(e - p) : strlen(p);
		unsigned long port = 0;
		struct server *nv;

		if (p[0] == '[') {
			h0 = p + 1;
			h1 = memchr(p, ']', l);
			if (!h1 || h1 == h0 || h1 + 1 >= p + l ||
			    h1[1] != ':' || !tc_sh_charset_valid(h0, h1 - h0, ":.")) {
				goto bad;
			}
			colon = h1 + 1;
		} else {
			colon = memchr(p, ':', l);
			h0 = p;
			h1 = colon;
			if (!colon || colon == p ||
			    !tc_sh_charset_valid(p, colon - p, "._-"))
				goto bad;
		}
		if ((size_t)(h1 - h0) >= sizeof(v->host) ||
		    colon + 1 == p + l || (size_t)(p + l - colon - 1) > 5)
			goto bad;
		for (const char *d = colon + 1; d < p + l; d++) {
			if (*d < '0' || *d > '9')
				goto bad;
			port = port * 10 + (unsigned long)(*d - '0');
		}
		if (port == 0 || port > 65535)
			goto bad;
		if (cnt == 256) {
			snprintf(err, errlen, "more than 256 servers");
			goto out;
		}
		nv = realloc(v, (cnt + 1) * sizeof(*v));
		if (!nv) {
			rc = -ENOMEM;
			snprintf(err, errlen, "out of memory");
			goto out;
		}
		v = nv;
		memcpy(v[cnt].host, h0, h1 - h0);
		v[cnt].host[h1 - h0] = '\0';
		v[cnt].port = (unsigned)port;
		cnt++;
		if (!e)
			break;
		p = e + 1;
		continue;
bad:
		snprintf(err, errlen,
			 "malformed server '%.*s' (expected HOST:PORT[,HOST:PORT...])",
			 (int)(l > 80 ? 80 : l), p);
		goto out;
	}
	/* The same order on every mount: replicas live on the next servers
	 * of the list, so the list order decides where they are. */
	qsort(v, cnt, sizeof(*v), server_cmp);
	for (unsigned i = 1; i < cnt; i++) {
		if (server_cmp(&v[i - 1], &v[i]) == 0) {
			snprintf(err, errlen, "server %s:%u listed twice",
				 v[i].host, v[i].port);
			goto out;
		}
	}
	*out = v;
	*n = cnt;
	v = NULL;
	rc = 0;
out:
	free(v);
	return rc;
}

int tc_shared_check_servers(const char *servers, char *err, size_t errlen)
{
	struct server *v;
	unsigned n;
	char dummy[1];
	int rc;

	if (!err) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	rc = tc_sh_servers_parse(servers, &v, &n, err, errlen);
	if (rc == 0)
		free(v);
	return rc;
}

int tc_shared_load_key(const char *path, uint8_t **key, size_t *len,
		       char *err, size_t errlen)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t got = 0;
	int fd, rc;
	char dummy[1];

	if (!err) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	if (fstat(fd, &st)) {
		rc = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		goto out;
	}
	rc = -EINVAL;
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: not a regular file", path);
		goto out;
	}
	if (st.st_uid != geteuid() && st.st_uid != 0) {
		rc = -EPERM;
		snprintf(err, errlen, "%s: owned by uid %u, neither us nor root",
			 path, (unsigned)st.st_uid);
		goto out;
	}
	if (st.st_mode & 077) {
		rc = -EPERM;
		snprintf(err, errlen,
			 "%s: accessible by group or others (mode %03o): "
			 "chmod 600 it", path, (unsigned)(st.st_mode & 0777));
		goto out;
	}
	if (st.st_size < TC_SHARED_KEY_MIN || st.st_size > TC_SHARED_KEY_MAX) {
		snprintf(err, errlen, "%s: %lld bytes, a key has %d to %d",
			 path, (long long)st.st_size, TC_SHARED_KEY_MIN,
			 TC_SHARED_KEY_MAX);
		goto out;
	}
	buf = malloc(TC_SHARED_KEY_MAX);
	if (!buf) {
		rc = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (;;) {
		ssize_t r = read(fd, buf + got, TC_SHARED_KEY_MAX - got);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			snprintf(err, errlen, "%s: %s", path, strerror(-rc));
			goto out;
		}
		if (r == 0 || (got += (size_t)r) == TC_SHARED_KEY_MAX)
			break;
	}
	if (got < TC_SHARED_KEY_MIN || got != (size_t)st.st_size) {
		snprintf(err, errlen, "%s: changed while read", path);
		goto out;
	}
	*key = buf;
	*len = got;
	buf = NULL;
	rc = 0;
out:
	if (buf) {
		sodium_memzero(buf, TC_SHARED_KEY_MAX);
		free(buf);
	}
	close(fd);
	return rc;
}

void tc_shared_key_free(uint8_t *key, size_t len)
{
	if (!key)
		return;
	sodium_memzero(key, len);
	free(key);
}
