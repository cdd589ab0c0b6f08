/* SPDX-License-Identifier: MIT */
/*
 * Parsers for the values users type: sizes, durations, TTL modes, sync
 * modes, tags and schema versions. Shared by the daemon's options, the
 * config file and the user.tiercache.* xattrs so that every entry point
 * accepts exactly the same language. Each parser is strict: the whole
 * string must match, overflow is an error, nothing is silently clamped.
 */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "engine_i.h"

/* Parse an unsigned decimal prefix of @s; *end points after all its
 * digits. -ERANGE on overflow (with *end still past the digits, so the
 * caller can tell a malformed string, -EINVAL, from a too large one). */
static int parse_digits(const char *s, uint64_t *out, const char **end)
{
	uint64_t v = 0;
	const char *p = s;
	int rc = 0;

	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			rc = -ERANGE;
		else
			v = v * 10 + d;
	}
	*out = v;
	*end = p;
	return rc;
}

static bool is_none(const char *s)
{
	return strcasecmp(s, "none") == 0;
}

int tc_parse_size(const char *s, uint64_t *out)
{
	uint64_t v, mult = 1;
	const char *p;
	bool overflow;
	int rc;

	if (!s)
		return -EINVAL;
	if (is_none(s)) {
		*out = 0;
		return 0;
	}
	rc = parse_digits(s, &v, &p);
	if (rc == -EINVAL)
		return rc;
	overflow = rc == -ERANGE;
	switch (toupper((unsigned char)*p)) {
	case 'K': mult = UINT64_C(1) << 10; p++; break;
	case 'M': mult = UINT64_C(1) << 20; p++; break;
	case 'G': mult = UINT64_C(1) << 30; p++; break;
	case 'T': mult = UINT64_C(1) << 40; p++; break;
	default: break;
	}
	if (toupper((unsigned char)*p) == 'B' && (mult > 1 || p > s))
		p++;
	if (*p)
		return -EINVAL;
	if (overflow || v > UINT64_MAX / mult)
		return -ERANGE;
	*out = v * mult;
	return 0;
}

int tc_parse_duration(const char *s, int64_t *out_ns)
{
	uint64_t v, mult = 1;
	const char *p;
	bool overflow;
	int rc;

	if (!s)
		return -EINVAL;
	if (is_none(s)) {
		*out_ns = 0;
		return 0;
	}
	rc = parse_digits(s, &v, &p);
	if (rc == -EINVAL)
		return rc;
	overflow = rc == -ERANGE;
	switch (*p) {
	case 's': p++; break;
	case 'm': mult = 60; p++; break;
	case 'h': mult = 3600; p++; break;
	case 'd': mult = 86400; p++; break;
	default: break;
	}
	if (*p)
		return -EINVAL;
	/* Result in ns must fit an int64_t (about 292 years). */
	if (overflow || v > (uint64_t)INT64_MAX / mult / UINT64_C(1000000000))
		return -ERANGE;
	*out_ns = (int64_t)(v * mult * UINT64_C(1000000000));
	return 0;
}

int tc_parse_ttl_mode(const char *s, enum tc_ttl_mode *out)
{
	if (s && strcmp(s, "absolute") == 0)
		*out = TC_TTL_ABSOLUTE;
	else if (s && strcmp(s, "sliding") == 0)
		*out = TC_TTL_SLIDING;
	else
		return -EINVAL;
	return 0;
}

int tc_parse_sync(const char *s, enum tc_sync *out)
{
	if (s && strcmp(s, "fsync") == 0)
		*out = TC_SYNC_FSYNC;
	else if (s && strcmp(s, "close") == 0)
		*out = TC_SYNC_CLOSE;
	else if (s && strcmp(s, "never") == 0)
		*out = TC_SYNC_NEVER;
	else
		return -EINVAL;
	return 0;
}

/* True when s[0..len) is 1..64 characters of [A-Za-z0-9] and @extra. */
static bool word_valid(const char *s, size_t len, const char *extra)
{
	if (!s || len < 1 || len > 64)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (!(isascii(c) && isalnum(c)) && !(c && strchr(extra, c)))
			return false;
	}
	return true;
}

bool tc_tag_valid(const char *s, size_t len)
{
	return word_valid(s, len, "_.:-");
}

bool tc_schema_valid(const char *s, size_t len)
{
	return word_valid(s, len, "_.+-");
}
