/*
 * The small parsers of proto/parse.c against good and hostile input.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "proto/proto.h"

#define SENTINEL 0x5a5a5a5a5a5a5a5aull

struct good {
	const char	*in;
	uint64_t	 want;
};

typedef int (*parse_fn)(const char *, uint64_t *);

static void check_good(parse_fn fn, const struct good *g, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t v = SENTINEL;
		int rc = fn(g[i].in, &v);

		if (rc != 0 || v != g[i].want)
			fail_msg("\"%s\": rc %d, %llu", g[i].in, rc,
			    (unsigned long long)v);
	}
}

/* Failure must also leave the output alone. */
static void check_bad(parse_fn fn, const char *const *bad, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t v = SENTINEL;
		int rc = fn(bad[i], &v);

		if (rc != -1 || v != SENTINEL)
			fail_msg("\"%s\" accepted: rc %d, %llu", bad[i], rc,
			    (unsigned long long)v);
	}
	assert_int_equal(fn(NULL, &(uint64_t){ 0 }), -1);
}

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* Rejected by every parser. */
#define HOSTILE_COMMON \
	"", " ", "-1", "+1", " 1", "1 ", "1\n", "1\t", "\t1", "0x10", "1a", \
	"a1", "abc", "1e3", "--1", "1,000", "1_000", "\xef\xbc\x91"

static void test_u64(void **state)
{
	static const struct good good[] = {
		{ "0", 0 }, { "1", 1 }, { "007", 7 }, { "4096", 4096 },
		{ "18446744073709551615", UINT64_MAX },
		{ "00000000000000000000018446744073709551615", UINT64_MAX },
	};
	static const char *const bad[] = {
		HOSTILE_COMMON, "1.5", "1s",
		"18446744073709551616", "18446744073709551620",
		"99999999999999999999", "184467440737095516150",
	};

	(void)state;
	check_good(parse_u64, good, NELEM(good));
	check_bad(parse_u64, bad, NELEM(bad));
}

static void test_duration(void **state)
{
	static const struct good good[] = {
		{ "500ms", 500 }, { "30s", 30000 }, { "90m", 5400000 },
		{ "24h", 86400000 }, { "7d", 604800000 }, { "45", 45000 },
		{ "0", 0 }, { "0s", 0 }, { "0ms", 0 }, { "1d", 86400000 },
		{ "18446744073709551615ms", UINT64_MAX },
		{ "18446744073709551s", 18446744073709551000ull },
		{ "213503982334d", 213503982334ull * 86400000ull },
	};
	static const char *const bad[] = {
		HOSTILE_COMMON, "ms", "s", "m", "h", "d", "-1s", "+1s", "1.5s",
		"10x", "1 s", " 1s", "1s ", "1sec", "1S", "1MS", "1msx", "1ss",
		"1hm", "1h30m", "1us", "1w", "0x10s",
		"18446744073709552s", "213503982335d", "18446744073709551616ms",
		"18446744073709551616",
	};

	(void)state;
	check_good(parse_duration_ms, good, NELEM(good));
	check_bad(parse_duration_ms, bad, NELEM(bad));
}

static void test_seconds(void **state)
{
	static const struct good good[] = {
		{ "1.5", 1500000 }, { "0.000001", 1 }, { "12", 12000000 },
		{ "0", 0 }, { "0.0", 0 }, { "00.5", 500000 },
		{ "0.1234567", 123456 }, { "1.0000009", 1000000 },
		{ "0.0000001", 0 }, { "3.14159265358979", 3141592 },
		{ "18446744073709.551615", UINT64_MAX },
		{ "18446744073709", 18446744073709000000ull },
	};
	static const char *const bad[] = {
		HOSTILE_COMMON, ".", "1.", ".5", "1..2", "1.2.3", "1.5s",
		"1.5 ", "-0.5", "+0.5", "1.-5", "1.+5", "1e-3", "0.1e1",
		"1,5", "inf", "nan", "0x1p3",
		"18446744073709.551616", "18446744073710",
		"18446744073709551616",
	};

	(void)state;
	check_good(parse_seconds_us, good, NELEM(good));
	check_bad(parse_seconds_us, bad, NELEM(bad));
}

static void test_format(void **state)
{
	static const struct {
		uint64_t	 us;
		const char	*want;
	} cases[] = {
		{ 0, "0s" }, { 1, "1us" }, { 999, "999us" }, { 1000, "1ms" },
		{ 850000, "850ms" }, { 999999, "999ms" }, { 1000000, "1s" },
		{ 1500000, "1.5s" }, { 12000000, "12s" }, { 12049999, "12s" },
		{ 59999999, "59.9s" }, { 60000000, "1m" },
		{ 252000000, "4m12s" }, { 3599999999ull, "59m59s" },
		{ 3600000000ull, "1h" }, { 7500000000ull, "2h05m" },
		{ 86399999999ull, "23h59m" }, { 86400000000ull, "1d" },
		{ 3 * 86400000000ull + 4 * 3600000000ull, "3d4h" },
		{ UINT64_MAX, "213503982d8h" },
	};
	char buf[64];

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		memset(buf, 'x', sizeof(buf));
		parse_format_duration(cases[i].us, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].want);
	}
}

/* A short buffer is cut and terminated; a zero-length one is untouched. */
static void test_format_short(void **state)
{
	char buf[8];

	(void)state;
	memset(buf, 'x', sizeof(buf));
	parse_format_duration(252000000, buf, 4);
	assert_string_equal(buf, "4m1");
	assert_int_equal(buf[4], 'x');

	memset(buf, 'x', sizeof(buf));
	parse_format_duration(252000000, buf, 1);
	assert_int_equal(buf[0], '\0');
	assert_int_equal(buf[1], 'x');

	memset(buf, 'x', sizeof(buf));
	parse_format_duration(252000000, buf, 0);
	assert_int_equal(buf[0], 'x');
	parse_format_duration(252000000, NULL, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_u64),
		cmocka_unit_test(test_duration),
		cmocka_unit_test(test_seconds),
		cmocka_unit_test(test_format),
		cmocka_unit_test(test_format_short),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
