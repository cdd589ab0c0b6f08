/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the value grammars (engine/parse.c) the daemon's options,
 * the config file and the user.tiercache.* attributes share: sizes,
 * durations, TTL and sync modes, tags and schema versions. The grammar is
 * the one tiercache.h documents (and tests/fuzz/fuzz_parse.c's reference
 * implements): valid values, boundaries, overflow and garbage.
 */
#include "util.h"

#include <inttypes.h>

static void size_ok(const char *s, uint64_t want)
{
	uint64_t v = 12345;
	int rc = tc_parse_size(s, &v);

	if (rc != 0 || v != want)
		fail_msg("tc_parse_size(\"%s\"): rc %d value %llu, expected %llu",
			 s, rc, (unsigned long long)v,
			 (unsigned long long)want);
}

static void size_bad(const char *s, int want)
{
	uint64_t v = 12345;
	int rc = tc_parse_size(s, &v);

	if (rc != want)
		fail_msg("tc_parse_size(\"%s\"): rc %d, expected %d", s, rc,
			 want);
}

static void test_parse_size(void **state)
{
	(void)state;
	size_ok("0", 0);
	size_ok("none", 0);
	size_ok("1", 1);
	size_ok("4096", 4096);
	size_ok("1K", 1024);
	size_ok("1k", 1024);
	size_ok("16M", 16ull << 20);
	size_ok("16MB", 16ull << 20);
	size_ok("16mb", 16ull << 20);
	size_ok("1G", 1ull << 30);
	size_ok("10G", 10ull << 30);
	size_ok("2T", 2ull << 40);
	size_ok("18446744073709551615", UINT64_MAX);
	size_ok("16777215T", 16777215ull << 40);

	size_bad("", -EINVAL);
	size_bad("-1", -EINVAL);
	size_bad("-1K", -EINVAL);
	size_bad("K", -EINVAL);
	size_bad("1X", -EINVAL);
	size_bad("1KK", -EINVAL);
	size_bad("1.5G", -EINVAL);
	size_bad("12 ", -EINVAL);
	size_bad("nonsense", -EINVAL);
	size_bad("18446744073709551616", -ERANGE);
	size_bad("99999999999999999999999", -ERANGE);
	size_bad("16777216T", -ERANGE);
	size_bad("18014398509481984K", -ERANGE);
}

static void dur_ok(const char *s, int64_t want)
{
	int64_t v = 12345;
	int rc = tc_parse_duration(s, &v);

	if (rc != 0 || v != want)
		fail_msg("tc_parse_duration(\"%s\"): rc %d value %lld, "
			 "expected %lld",
			 s, rc, (long long)v, (long long)want);
}

static void dur_bad(const char *s, int want)
{
	int64_t v = 12345;
	int rc = tc_parse_duration(s, &v);

	if (rc != want)
		fail_msg("tc_parse_duration(\"%s\"): rc %d, expected %d", s,
			 rc, want);
}

static void test_parse_duration(void **state)
{
	(void)state;
	dur_ok("0", 0);
	dur_ok("none", 0);
	dur_ok("10", 10 * TCU_SEC);
	dur_ok("10s", 10 * TCU_SEC);
	dur_ok("5m", 5 * TCU_MIN);
	dur_ok("1h", TCU_HOUR);
	dur_ok("2d", 48 * TCU_HOUR);
	dur_ok("9223372036", INT64_C(9223372036) * TCU_SEC);

	dur_bad("", -EINVAL);
	dur_bad("-5", -EINVAL);
	dur_bad("-5m", -EINVAL);
	dur_bad("5w", -EINVAL);
	dur_bad("5ms", -EINVAL);
	dur_bad("m", -EINVAL);
	dur_bad("1.5h", -EINVAL);
	dur_bad("soon", -EINVAL);
	dur_bad("9223372037", -ERANGE);       /* > INT64_MAX ns */
	dur_bad("106752d", -ERANGE);
	dur_bad("99999999999999999999999", -ERANGE);
}

static void test_parse_enums(void **state)
{
	enum tc_ttl_mode m = TC_TTL_SLIDING;
	enum tc_sync y = TC_SYNC_NEVER;

	(void)state;
	assert_int_equal(tc_parse_ttl_mode("absolute", &m), 0);
	assert_int_equal(m, TC_TTL_ABSOLUTE);
	assert_int_equal(tc_parse_ttl_mode("sliding", &m), 0);
	assert_int_equal(m, TC_TTL_SLIDING);
	assert_int_equal(tc_parse_ttl_mode("", &m), -EINVAL);
	assert_int_equal(tc_parse_ttl_mode("slide", &m), -EINVAL);
	assert_int_equal(tc_parse_ttl_mode("absolutely", &m), -EINVAL);
	assert_int_equal(m, TC_TTL_SLIDING);

	assert_int_equal(tc_parse_sync("fsync", &y), 0);
	assert_int_equal(y, TC_SYNC_FSYNC);
	assert_int_equal(tc_parse_sync("close", &y), 0);
	assert_int_equal(y, TC_SYNC_CLOSE);
	assert_int_equal(tc_parse_sync("never", &y), 0);
	assert_int_equal(y, TC_SYNC_NEVER);
	assert_int_equal(tc_parse_sync("", &y), -EINVAL);
	assert_int_equal(tc_parse_sync("always", &y), -EINVAL);
	assert_int_equal(tc_parse_sync("fsync2", &y), -EINVAL);
	assert_int_equal(y, TC_SYNC_NEVER);
}

#define VALID(fn, s) fn((s), strlen(s))

static void test_tag_schema_valid(void **state)
{
	char s64[65], s65[66];

	(void)state;
	memset(s64, 'a', 64);
	s64[64] = '\0';
	memset(s65, 'a', 65);
	s65[65] = '\0';

	assert_true(VALID(tc_tag_valid, "a"));
	assert_true(VALID(tc_tag_valid, "Demo_1.2:x-y"));
	assert_true(VALID(tc_tag_valid, s64));
	assert_false(VALID(tc_tag_valid, s65));
	assert_false(VALID(tc_tag_valid, ""));
	assert_false(VALID(tc_tag_valid, "a,b"));
	assert_false(VALID(tc_tag_valid, "a b"));
	assert_false(VALID(tc_tag_valid, "a+b"));
	assert_false(VALID(tc_tag_valid, "a/b"));
	assert_false(VALID(tc_tag_valid, "caf\xc3\xa9"));
	/* Only @len bytes count. */
	assert_true(tc_tag_valid("abc,def", 3));
	assert_false(tc_tag_valid("abc,def", 4));

	assert_true(VALID(tc_schema_valid, "1"));
	assert_true(VALID(tc_schema_valid, "v1.2+build-3_x"));
	assert_true(VALID(tc_schema_valid, s64));
	assert_false(VALID(tc_schema_valid, s65));
	assert_false(VALID(tc_schema_valid, ""));
	assert_false(VALID(tc_schema_valid, "v1:2"));
	assert_false(VALID(tc_schema_valid, "v 1"));
	assert_false(VALID(tc_schema_valid, "v1,2"));
	assert_true(tc_schema_valid("v1 trailing", 2));
}

/* ------------------------------------------------------------------ */
/* Boundaries, suffixes, garbage                                      */
/* ------------------------------------------------------------------ */

/* "@v@unit" as a string in @buf. */
static const char *num(char *buf, size_t size, uint64_t v, const char *unit)
{
	snprintf(buf, size, "%" PRIu64 "%s", v, unit);
	return buf;
}

static void test_size_unit_boundaries(void **state)
{
	static const struct {
		const char *unit;
		unsigned shift;
	} units[] = { { "", 0 }, { "K", 10 }, { "M", 20 }, { "G", 30 },
		      { "T", 40 }, { "kb", 10 }, { "gB", 30 } };
	char buf[64];

	(void)state;
	/* The largest multiple of each unit that fits, and one more. */
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		uint64_t max = UINT64_MAX >> units[i].shift;

		size_ok(num(buf, sizeof(buf), max, units[i].unit),
			max << units[i].shift);
		if (units[i].shift)
			size_bad(num(buf, sizeof(buf), max + 1, units[i].unit),
				 -ERANGE);
		size_ok(num(buf, sizeof(buf), 0, units[i].unit), 0);
	}
	size_bad("18446744073709551616B", -ERANGE);
	/* Digits that overflow before a malformed tail: malformed. */
	size_bad("99999999999999999999999Q", -EINVAL);
	size_bad("99999999999999999999999 ", -EINVAL);
	size_bad("99999999999999999999999KK", -EINVAL);
	/* Leading zeros are digits like any other. */
	size_ok("007", 7);
	size_ok("0000000000000000000000001K", 1024);
}

static void test_size_suffix_bytes(void **state)
{
	char s[4] = "1";

	(void)state;
	/* After the digits, one byte: only a unit or a B. */
	for (int c = 1; c < 256; c++) {
		uint64_t v = 0;
		const char *unit = strchr("KkMmGgTt", c);
		bool ok = (unit && c) || c == 'B' || c == 'b' ||
			  (c >= '0' && c <= '9');
		int rc;

		s[1] = (char)c;
		s[2] = '\0';
		rc = tc_parse_size(s, &v);
		if (ok != (rc == 0))
			fail_msg("tc_parse_size(\"1\\x%02x\"): rc %d", c, rc);
	}
	/* A unit then a B, in either case; one B only. */
	size_ok("3Kb", 3 << 10);
	size_ok("3mB", 3 << 20);
	size_ok("3b", 3);
	size_bad("3BB", -EINVAL);
	size_bad("3bK", -EINVAL);
	size_bad("B", -EINVAL);
	size_bad("KB", -EINVAL);
}

static void test_size_garbage(void **state)
{
	uint64_t v;

	(void)state;
	size_ok("NONE", 0);
	size_ok("None", 0);
	size_bad("none ", -EINVAL);
	size_bad("nonee", -EINVAL);
	size_bad("non", -EINVAL);
	size_bad(" 1", -EINVAL);
	size_bad("+1", -EINVAL);
	size_bad("0x10", -EINVAL);
	size_bad("1e3", -EINVAL);
	size_bad("1 K", -EINVAL);
	size_bad("1\n", -EINVAL);
	assert_int_equal(tc_parse_size(NULL, &v), -EINVAL);
}

static void test_duration_unit_boundaries(void **state)
{
	static const struct {
		const char *unit;
		int64_t secs;
	} units[] = { { "", 1 }, { "s", 1 }, { "m", 60 }, { "h", 3600 },
		      { "d", 86400 } };
	const uint64_t max_s = (uint64_t)INT64_MAX / UINT64_C(1000000000);
	char buf[64];

	(void)state;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		uint64_t max = max_s / (uint64_t)units[i].secs;

		dur_ok(num(buf, sizeof(buf), max, units[i].unit),
		       (int64_t)max * units[i].secs * TCU_SEC);
		dur_bad(num(buf, sizeof(buf), max + 1, units[i].unit),
			-ERANGE);
		dur_ok(num(buf, sizeof(buf), 0, units[i].unit), 0);
	}
	dur_bad("99999999999999999999999h", -ERANGE);
	dur_bad("99999999999999999999999w", -EINVAL);
	dur_ok("0090s", 90 * TCU_SEC);
}

static void test_duration_garbage(void **state)
{
	char s[3] = "1";
	int64_t v;

	(void)state;
	/* After the digits, one byte: only s, m, h or d (lower case). */
	for (int c = 1; c < 256; c++) {
		bool ok = (c && strchr("smhd", c)) || (c >= '0' && c <= '9');
		int rc;

		s[1] = (char)c;
		rc = tc_parse_duration(s, &v);
		if (ok != (rc == 0))
			fail_msg("tc_parse_duration(\"1\\x%02x\"): rc %d", c,
				 rc);
	}
	dur_ok("NONE", 0);
	dur_ok("nOnE", 0);
	dur_bad("1H", -EINVAL);
	dur_bad("1D", -EINVAL);
	dur_bad("1sB", -EINVAL);
	dur_bad("1hm", -EINVAL);
	dur_bad("1h30m", -EINVAL);
	dur_bad(" 5", -EINVAL);
	dur_bad("+5", -EINVAL);
	dur_bad("5 ", -EINVAL);
	assert_int_equal(tc_parse_duration(NULL, &v), -EINVAL);
}

static void test_enums_strict(void **state)
{
	enum tc_ttl_mode m;
	enum tc_sync y;

	(void)state;
	assert_int_equal(tc_parse_ttl_mode(NULL, &m), -EINVAL);
	assert_int_equal(tc_parse_ttl_mode("Sliding", &m), -EINVAL);
	assert_int_equal(tc_parse_ttl_mode("ABSOLUTE", &m), -EINVAL);
	assert_int_equal(tc_parse_ttl_mode("sliding ", &m), -EINVAL);
	assert_int_equal(tc_parse_sync(NULL, &y), -EINVAL);
	assert_int_equal(tc_parse_sync("Never", &y), -EINVAL);
	assert_int_equal(tc_parse_sync("close\n", &y), -EINVAL);
	assert_int_equal(tc_parse_sync("none", &y), -EINVAL);
}

/* Reference of the two word grammars: alphanumerics and @extra. */
static bool ref_word_char(int c, const char *extra)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || (c && strchr(extra, c));
}

static void test_word_bytes(void **state)
{
	char s[3];

	(void)state;
	/* Every byte, alone and after a valid one. */
	for (int c = 0; c < 256; c++) {
		s[0] = (char)c;
		s[1] = '\0';
		if (tc_tag_valid(s, 1) != ref_word_char(c, "_.:-"))
			fail_msg("tc_tag_valid(\"\\x%02x\")", c);
		if (tc_schema_valid(s, 1) != ref_word_char(c, "_.+-"))
			fail_msg("tc_schema_valid(\"\\x%02x\")", c);
		s[0] = 'a';
		s[1] = (char)c;
		if (tc_tag_valid(s, 2) != ref_word_char(c, "_.:-"))
			fail_msg("tc_tag_valid(\"a\\x%02x\")", c);
		if (tc_schema_valid(s, 2) != ref_word_char(c, "_.+-"))
			fail_msg("tc_schema_valid(\"a\\x%02x\")", c);
	}
	/* An embedded NUL is a byte like any other, and not a valid one. */
	assert_false(tc_tag_valid("a\0b", 3));
	assert_false(tc_schema_valid("a\0b", 3));
	assert_false(tc_tag_valid(NULL, 0));
	assert_false(tc_tag_valid("abc", 0));
	assert_false(tc_schema_valid(NULL, 3));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, tcu_setup, tcu_teardown)
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_parse_enums),
		cmocka_unit_test(test_tag_schema_valid),
		cmocka_unit_test(test_size_unit_boundaries),
		cmocka_unit_test(test_size_suffix_bytes),
		cmocka_unit_test(test_size_garbage),
		cmocka_unit_test(test_duration_unit_boundaries),
		cmocka_unit_test(test_duration_garbage),
		cmocka_unit_test(test_enums_strict),
		cmocka_unit_test(test_word_bytes),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
