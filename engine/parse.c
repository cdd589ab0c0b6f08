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

/* A unit suffix and what it multiplies by. */
struct unit {
	char suffix;
	uint64_t mult;
};

static const struct unit size_units[] = {
	{ 'K', UINT64_C(1) << 10 }, { 'M', UINT64_C(1) << 20 },
	{ 'G', UINT64_C(1) << 30 }, { 'T', UINT64_C(1) << 40 }, { 0, 0 },
};

static const struct unit duration_units[] = {
	{ 's', 1 }, { 'm', 60 }, { 'h', 3600 }, { 'd', 86400 }, { 0, 0 },
};

/*
 * The grammar both sizes and durations share: "none", or digits with an
 * optional suffix from @units (compared case-insensitively when @fold; a
 * trailing B is accepted with @allow_b, as in "16MB"). The value times the
 * suffix must not exceed @max. -EINVAL for a malformed string, even one
 * whose digits overflow; then -ERANGE.
 */
static int parse_scaled(const char *s, const struct unit *units, bool fold,
			bool allow_b, uint64_t max, uint64_t *out)
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
	for (const struct unit *u = units; u->suffix; u++) {
		char c = fold ? (char)toupper((unsigned char)*p) : *p;
		if (c == u->suffix) {
			mult = u->mult;
			p++;
			break;
		}
	}
	if (allow_b && toupper((unsigned char)*p) == 'B')
		p++;
	if (*p)
		return -EINVAL;
	if (overflow || v > max / mult)
		return -ERANGE;
	*out = v * mult;
	return 0;
}

int tc_parse_size(const char *s, uint64_t *out)
{
	return parse_scaled(s, size_units, true, true, UINT64_MAX, out);
}

int tc_parse_duration(const char *s, int64_t *out_ns)
{
	uint64_t secs;
	/* Result in ns must fit an int64_t (about 292 years). */
	int rc = parse_scaled(s, duration_units, false, false,
			      (uint64_t)INT64_MAX / UINT64_C(1000000000),
			      &secs);

	if (!rc)
		*out_ns = (int64_t)(secs * UINT64_C(1000000000));
	return rc;
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
