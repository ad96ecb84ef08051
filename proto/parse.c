/*
 * Small strict parsers shared by tcached and tcache: numbers, durations and
 * decimal seconds from the command line or the environment.  Every one
 * rejects empty input, signs, spaces, trailing bytes and overflow, and
 * leaves its output alone on failure.
 */
#include <stdio.h>
#include <string.h>

#include "proto.h"

#define US_PER_MS	1000u
#define US_PER_S	1000000u
#define US_PER_MIN	(60u * US_PER_S)
#define US_PER_HOUR	(60u * US_PER_MIN)
#define US_PER_DAY	(24ull * US_PER_HOUR)

/* Reads the leading digits of s into *v; returns how many, 0 on overflow
 * or when there are none. */
static size_t parse_digits(const char *s, uint64_t *v)
{
	uint64_t n = 0;
	size_t i;

	for (i = 0; s[i] >= '0' && s[i] <= '9'; i++) {
		unsigned d = (unsigned)(s[i] - '0');

		if (n > (UINT64_MAX - d) / 10)
			return 0;
		n = n * 10 + d;
	}
	*v = n;
	return i;
}

static int parse_mul(uint64_t a, uint64_t b, uint64_t *out)
{
	if (b != 0 && a > UINT64_MAX / b)
		return -1;
	*out = a * b;
	return 0;
}

int parse_u64(const char *s, uint64_t *out)
{
	uint64_t v;
	size_t n;

	if (s == NULL || (n = parse_digits(s, &v)) == 0 || s[n] != '\0')
		return -1;
	*out = v;
	return 0;
}

static const struct {
	const char	*suffix;
	uint64_t	 ms;
} parse_units[] = {
	{ "ms", 1 },
	{ "s", 1000 },
	{ "", 1000 },		/* a bare number is seconds */
	{ "m", 60ull * 1000 },
	{ "h", 60ull * 60 * 1000 },
	{ "d", 24ull * 60 * 60 * 1000 },
};

int parse_duration_ms(const char *s, uint64_t *ms)
{
	uint64_t v;
	size_t n;

	if (s == NULL || (n = parse_digits(s, &v)) == 0)
		return -1;
	for (size_t i = 0; i < sizeof(parse_units) / sizeof(parse_units[0]);
	    i++) {
		if (strcmp(s + n, parse_units[i].suffix) == 0)
			return parse_mul(v, parse_units[i].ms, ms);
	}
	return -1;
}

int parse_seconds_us(const char *s, uint64_t *us)
{
	uint64_t whole, frac = 0, scale = US_PER_S, v;
	size_t n;

	if (s == NULL || (n = parse_digits(s, &whole)) == 0)
		return -1;
	s += n;
	if (*s == '.') {
		/* A point must be followed by digits; past six they are
		 * below a microsecond and only checked. */
		if (*++s < '0' || *s > '9')
			return -1;
		for (; *s >= '0' && *s <= '9'; s++) {
			if (scale == 1)
				continue;
			scale /= 10;
			frac += (uint64_t)(*s - '0') * scale;
		}
	}
	if (*s != '\0' || parse_mul(whole, US_PER_S, &v) == -1 ||
	    v > UINT64_MAX - frac)
		return -1;
	*us = v + frac;
	return 0;
}

/*
 * Two units at most, the larger first, truncated rather than rounded so a
 * duration never reads longer than it was: "850ms", "1.5s", "4m12s",
 * "2h05m", "3d4h".
 */
/* "4m12s", "2h05m"; a zero second unit is left out: "24h" reads "1d". */
static void parse_format_pair(char *buf, size_t len, uint64_t major,
    char munit, uint64_t minor, char nunit)
{
	if (minor == 0)
		snprintf(buf, len, "%llu%c", (unsigned long long)major, munit);
	else
		snprintf(buf, len, nunit == 'h' ? "%llu%c%llu%c" :
		    "%llu%c%02llu%c", (unsigned long long)major, munit,
		    (unsigned long long)minor, nunit);
}

void parse_format_duration(uint64_t us, char *buf, size_t len)
{
	if (buf == NULL || len == 0)
		return;
	if (us == 0)
		snprintf(buf, len, "0s");
	else if (us < US_PER_MS)
		snprintf(buf, len, "%uus", (unsigned)us);
	else if (us < US_PER_S)
		snprintf(buf, len, "%ums", (unsigned)(us / US_PER_MS));
	else if (us < US_PER_MIN && us / (US_PER_S / 10) % 10 != 0)
		snprintf(buf, len, "%u.%us", (unsigned)(us / US_PER_S),
		    (unsigned)(us / (US_PER_S / 10) % 10));
	else if (us < US_PER_MIN)
		snprintf(buf, len, "%us", (unsigned)(us / US_PER_S));
	else if (us < US_PER_HOUR)
		parse_format_pair(buf, len, us / US_PER_MIN, 'm',
		    us / US_PER_S % 60, 's');
	else if (us < US_PER_DAY)
		parse_format_pair(buf, len, us / US_PER_HOUR, 'h',
		    us / US_PER_MIN % 60, 'm');
	else
		parse_format_pair(buf, len, us / US_PER_DAY, 'd',
		    us / US_PER_HOUR % 24, 'h');
}
