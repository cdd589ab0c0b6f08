/* SPDX-License-Identifier: MIT */
/*
 * Unit tests of the value grammars (engine/parse.c) the daemon's options,
 * the config file and the user.tiercache.* attributes share: sizes,
 * durations, TTL and sync modes, tags and schema versions. The grammar is
 * the one tiercache.h documents (and tests/fuzz/fuzz_parse.c's reference
 * implements): valid values, boundaries, overflow and garbage.
 */
#include "util.h"

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

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, tcu_setup, tcu_teardown)
		cmocka_unit_test(test_parse_size),
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_parse_enums),
		cmocka_unit_test(test_tag_schema_valid),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
