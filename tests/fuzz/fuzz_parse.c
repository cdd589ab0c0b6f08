/* SPDX-License-Identifier: MIT */
/*
 * fuzz_parse: the value parsers every entry point shares (engine/parse.c):
 * tc_parse_size, tc_parse_duration, tc_parse_ttl_mode, tc_parse_sync,
 * tc_tag_valid and tc_schema_valid.
 *
 * The input, as a NUL-terminated string, goes to every parser; the raw bytes
 * (exact-size copy, so ASan sees any read past the end) go to the
 * validators. Each result is compared with a reference written here from
 * the documented grammar (tiercache.h; tiercachefs(8), Mount options and EXTENDED ATTRIBUTES), independently of the
 * engine's code:
 *
 *   size      digits, optional K/M/G/T (powers of 1024, either case), an
 *             optional B after them ("16MB", "100b"), or "none"/"0";
 *             -EINVAL when malformed, -ERANGE when well-formed but over
 *             UINT64_MAX
 *   duration  digits, optional s/m/h/d, or "none"/"0"; nanoseconds must
 *             fit an int64_t, else -ERANGE
 *   ttl_mode  exactly "absolute" or "sliding"
 *   sync      exactly "fsync", "close" or "never"
 *   tag       [A-Za-z0-9_.:-]{1,64}
 *   schema    [A-Za-z0-9_.+-]{1,64}
 *
 * and every accepted size or duration must round-trip: formatted back (in
 * bytes or seconds, and in every unit that divides it) it parses to the
 * same value.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "tiercache.h"

__extension__ typedef unsigned __int128 fz_u128;

/* ------------------------------------------------------------------ */
/* Reference implementations                                          */
/* ------------------------------------------------------------------ */

static bool ref_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool ref_is_none(const char *s)
{
	static const char none[] = "none";

	for (int i = 0; i < 4; i++)
		if (s[i] != none[i] && s[i] != none[i] - 'a' + 'A')
			return false;
	return s[4] == '\0';
}

/*
 * Value of the decimal digits s[0..n), computed digit by digit on 128 bits
 * (unlike the engine's 64-bit overflow test) and saturated at 2^80: above
 * every limit checked here, and low enough that a shift by 40 or a product
 * with 86400e9 stays within 128 bits.
 */
static fz_u128 ref_digits(const char *s, size_t n)
{
	const fz_u128 cap = (fz_u128)1 << 80;
	fz_u128 v = 0;

	for (size_t i = 0; i < n; i++) {
		v = v * 10 + (fz_u128)(s[i] - '0');
		if (v > cap)
			v = cap;
	}
	return v;
}

static int ref_size(const char *s, uint64_t *out)
{
	size_t nd = 0, i;
	unsigned shift = 0;
	fz_u128 v;

	if (ref_is_none(s)) {
		*out = 0;
		return 0;
	}
	while (ref_is_digit(s[nd]))
		nd++;
	if (nd == 0)
		return -EINVAL;
	i = nd;
	switch (s[i]) {
	case 'k': case 'K': shift = 10; i++; break;
	case 'm': case 'M': shift = 20; i++; break;
	case 'g': case 'G': shift = 30; i++; break;
	case 't': case 'T': shift = 40; i++; break;
	default: break;
	}
	if (s[i] == 'b' || s[i] == 'B')
		i++;
	if (s[i] != '\0')
		return -EINVAL; /* malformed, whatever the digits */
	v = ref_digits(s, nd) << shift;
	if (v > UINT64_MAX)
		return -ERANGE;
	*out = (uint64_t)v;
	return 0;
}

static int ref_duration(const char *s, int64_t *out)
{
	size_t nd = 0, i;
	unsigned mult = 1;
	fz_u128 v;

	if (ref_is_none(s)) {
		*out = 0;
		return 0;
	}
	while (ref_is_digit(s[nd]))
		nd++;
	if (nd == 0)
		return -EINVAL;
	i = nd;
	switch (s[i]) {
	case 's': i++; break;
	case 'm': mult = 60; i++; break;
	case 'h': mult = 3600; i++; break;
	case 'd': mult = 86400; i++; break;
	default: break;
	}
	if (s[i] != '\0')
		return -EINVAL;
	v = ref_digits(s, nd) * mult * 1000000000u;
	if (v > INT64_MAX)
		return -ERANGE;
	*out = (int64_t)v;
	return 0;
}

static bool ref_word(const char *s, size_t len, const char *extra)
{
	if (len < 1 || len > 64)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			  (c >= '0' && c <= '9');

		for (const char *e = extra; !ok && *e; e++)
			ok = c == *e;
		if (!ok)
			return false;
	}
	return true;
}

/* ------------------------------------------------------------------ */
/* Properties                                                         */
/* ------------------------------------------------------------------ */

static void check_size_value(const char *text, uint64_t want)
{
	uint64_t got = 0;
	int rc = tc_parse_size(text, &got);

	FZ_CHECK(rc == 0 && got == want,
		 "size round trip: '%s' gave rc %d value %" PRIu64
		 ", expected %" PRIu64, text, rc, got, want);
}

/* Format @v in bytes and in every unit dividing it; each must parse back. */
static void size_round_trip(uint64_t v)
{
	static const char units[] = "KMGT";
	char buf[64];

	snprintf(buf, sizeof(buf), "%" PRIu64, v);
	check_size_value(buf, v);
	snprintf(buf, sizeof(buf), "%" PRIu64 "B", v);
	check_size_value(buf, v);
	for (int u = 0; u < 4; u++) {
		unsigned shift = 10u * (unsigned)(u + 1);

		if (v & ((UINT64_C(1) << shift) - 1))
			break;
		snprintf(buf, sizeof(buf), "%" PRIu64 "%c", v >> shift,
			 units[u]);
		check_size_value(buf, v);
		snprintf(buf, sizeof(buf), "%" PRIu64 "%cb", v >> shift,
			 units[u] - 'A' + 'a');
		check_size_value(buf, v);
	}
}

static void check_duration_value(const char *text, int64_t want)
{
	int64_t got = 0;
	int rc = tc_parse_duration(text, &got);

	FZ_CHECK(rc == 0 && got == want,
		 "duration round trip: '%s' gave rc %d value %" PRId64
		 ", expected %" PRId64, text, rc, got, want);
}

static void duration_round_trip(int64_t ns)
{
	static const struct { char suffix; int64_t secs; } units[] = {
		{ 'm', 60 }, { 'h', 3600 }, { 'd', 86400 },
	};
	int64_t s = ns / 1000000000;
	char buf[64];

	FZ_CHECK(ns >= 0 && ns % 1000000000 == 0,
		 "duration %" PRId64 " ns is not whole seconds", ns);
	snprintf(buf, sizeof(buf), "%" PRId64, s);
	check_duration_value(buf, ns);
	snprintf(buf, sizeof(buf), "%" PRId64 "s", s);
	check_duration_value(buf, ns);
	for (size_t u = 0; u < sizeof(units) / sizeof(units[0]); u++) {
		if (s % units[u].secs)
			continue;
		snprintf(buf, sizeof(buf), "%" PRId64 "%c", s / units[u].secs,
			 units[u].suffix);
		check_duration_value(buf, ns);
	}
}

static void check_size(const char *s)
{
	uint64_t got = UINT64_C(0xdeadbeef), want = 0;
	int rc = tc_parse_size(s, &got), ref = ref_size(s, &want);

	FZ_CHECK(rc == ref, "tc_parse_size('%s') = %d, reference %d", s, rc,
		 ref);
	if (rc)
		return;
	FZ_CHECK(got == want, "tc_parse_size('%s') = %" PRIu64
		 ", reference %" PRIu64, s, got, want);
	size_round_trip(got);
}

static void check_duration(const char *s)
{
	int64_t got = -1, want = 0;
	int rc = tc_parse_duration(s, &got), ref = ref_duration(s, &want);

	FZ_CHECK(rc == ref, "tc_parse_duration('%s') = %d, reference %d", s,
		 rc, ref);
	if (rc)
		return;
	FZ_CHECK(got == want, "tc_parse_duration('%s') = %" PRId64
		 ", reference %" PRId64, s, got, want);
	duration_round_trip(got);
}

static void check_enums(const char *s)
{
	enum tc_ttl_mode mode = (enum tc_ttl_mode)-1;
	enum tc_sync sync = (enum tc_sync)-1;
	int rc;

	rc = tc_parse_ttl_mode(s, &mode);
	if (!strcmp(s, "absolute"))
		FZ_CHECK(rc == 0 && mode == TC_TTL_ABSOLUTE, "ttl_mode '%s'", s);
	else if (!strcmp(s, "sliding"))
		FZ_CHECK(rc == 0 && mode == TC_TTL_SLIDING, "ttl_mode '%s'", s);
	else
		FZ_CHECK(rc == -EINVAL, "ttl_mode '%s' gave %d", s, rc);

	rc = tc_parse_sync(s, &sync);
	if (!strcmp(s, "fsync"))
		FZ_CHECK(rc == 0 && sync == TC_SYNC_FSYNC, "sync '%s'", s);
	else if (!strcmp(s, "close"))
		FZ_CHECK(rc == 0 && sync == TC_SYNC_CLOSE, "sync '%s'", s);
	else if (!strcmp(s, "never"))
		FZ_CHECK(rc == 0 && sync == TC_SYNC_NEVER, "sync '%s'", s);
	else
		FZ_CHECK(rc == -EINVAL, "sync '%s' gave %d", s, rc);
}

/* The validators on @s[0..len), which need not be NUL-terminated. */
static void check_words(const char *s, size_t len)
{
	bool tag = tc_tag_valid(s, len), schema = tc_schema_valid(s, len);

	FZ_CHECK(tag == ref_word(s, len, "_.:-"),
		 "tc_tag_valid(%zu bytes '%.*s') = %d", len, (int)len, s, tag);
	FZ_CHECK(schema == ref_word(s, len, "_.+-"),
		 "tc_schema_valid(%zu bytes '%.*s') = %d", len, (int)len, s,
		 schema);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	uint64_t u;
	int64_t i;
	enum tc_ttl_mode m;
	enum tc_sync s;

	(void)argc;
	(void)argv;
	/* NULL is documented as malformed, not a crash. */
	FZ_EQ(tc_parse_size(NULL, &u), -EINVAL, "tc_parse_size(NULL)");
	FZ_EQ(tc_parse_duration(NULL, &i), -EINVAL, "tc_parse_duration(NULL)");
	FZ_EQ(tc_parse_ttl_mode(NULL, &m), -EINVAL, "tc_parse_ttl_mode(NULL)");
	FZ_EQ(tc_parse_sync(NULL, &s), -EINVAL, "tc_parse_sync(NULL)");
	FZ_CHECK(!tc_tag_valid(NULL, 0) && !tc_schema_valid(NULL, 0),
		 "NULL validates");
	/* The extremes of the ranges, once. */
	size_round_trip(UINT64_MAX);
	size_round_trip(UINT64_C(0xffffff) << 40);
	duration_round_trip(INT64_MAX / 1000000000 * 1000000000);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *raw = malloc(size ? size : 1), *s = malloc(size + 1);
	size_t slen;

	FZ_CHECK(raw && s, "out of memory");
	if (size)
		memcpy(raw, data, size);
	memcpy(s, raw, size);
	s[size] = '\0';
	slen = strlen(s);

	check_size(s);
	check_duration(s);
	check_enums(s);
	check_words(raw, size);
	if (slen != size)
		check_words(s, slen);
	/* Every prefix: the length bound and the byte loop's end. */
	for (size_t n = 0; n < size && n <= 66; n++)
		check_words(raw, n);

	free(raw);
	free(s);
	return 0;
}
