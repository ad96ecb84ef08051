/*
 * A streaming JSON writer: see json.h.  Output errors are left in the
 * FILE's error flag; the caller checks it once when it flushes.
 */
#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <string.h>

#include "json.h"

void json_init(json *j, FILE *f)
{
	memset(j, 0, sizeof *j);
	j->f = f;
}

/* Writes the comma that separates this value or key from the previous one. */
static void json_sep(json *j)
{
	if (j->after_key) {
		j->after_key = 0;
		return;
	}
	if (j->depth == 0)
		return;
	if (j->members[j->depth - 1])
		putc(',', j->f);
	j->members[j->depth - 1] = 1;
}

static void json_open(json *j, int c)
{
	json_sep(j);
	assert(j->depth < JSON_MAX_DEPTH);
	putc(c, j->f);
	j->closer[j->depth] = c == '{' ? '}' : ']';
	j->members[j->depth++] = 0;
}

static void json_close(json *j, int c)
{
	assert(j->depth > 0 && !j->after_key);
	assert(j->closer[j->depth - 1] == c);
	j->depth--;
	putc(c, j->f);
}

void json_object_begin(json *j)
{
	json_open(j, '{');
}

void json_object_end(json *j)
{
	json_close(j, '}');
}

void json_array_begin(json *j)
{
	json_open(j, '[');
}

void json_array_end(json *j)
{
	json_close(j, ']');
}

/*
 * The length of the valid UTF-8 sequence at s, or 0 when it is not one:
 * overlong forms, surrogates and code points past U+10FFFF are invalid.
 */
static size_t json_utf8_len(const unsigned char *s, size_t n)
{
	uint32_t cp, min;
	size_t len, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
		min = 0x80;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3;
		cp = s[0] & 0x0f;
		min = 0x800;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
		min = 0x10000;
	} else
		return 0;
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

static void json_escape_byte(json *j, unsigned char c)
{
	switch (c) {
	case '"':
		fputs("\\\"", j->f);
		break;
	case '\\':
		fputs("\\\\", j->f);
		break;
	case '\b':
		fputs("\\b", j->f);
		break;
	case '\f':
		fputs("\\f", j->f);
		break;
	case '\n':
		fputs("\\n", j->f);
		break;
	case '\r':
		fputs("\\r", j->f);
		break;
	case '\t':
		fputs("\\t", j->f);
		break;
	default:
		/* DEL too: it is legal JSON but garbles a terminal. */
		if (c < 0x20 || c == 0x7f)
			fprintf(j->f, "\\u%04x", (unsigned)c);
		else
			putc(c, j->f);
	}
}

void json_string_len(json *j, const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, n;

	json_sep(j);
	putc('"', j->f);
	while (i < len) {
		n = json_utf8_len(p + i, len - i);
		if (n == 0) {
			fputs("\\ufffd", j->f);
			i++;
		} else if (n == 1) {
			json_escape_byte(j, p[i]);
			i++;
		} else {
			fwrite(p + i, 1, n, j->f);
			i += n;
		}
	}
	putc('"', j->f);
}

void json_string(json *j, const char *s)
{
	if (s == NULL)
		json_null(j);
	else
		json_string_len(j, s, strlen(s));
}

void json_key(json *j, const char *key)
{
	assert(j->depth > 0 && !j->after_key);
	json_string(j, key);
	putc(':', j->f);
	j->after_key = 1;
}

void json_u64(json *j, uint64_t v)
{
	json_sep(j);
	fprintf(j->f, "%" PRIu64, v);
}

void json_bool(json *j, int v)
{
	json_sep(j);
	fputs(v ? "true" : "false", j->f);
}

void json_null(json *j)
{
	json_sep(j);
	fputs("null", j->f);
}

void json_double(json *j, double v)
{
	if (!isfinite(v)) {
		json_null(j);
		return;
	}
	json_sep(j);
	fprintf(j->f, "%.6g", v);
}

void json_seconds(json *j, uint64_t us)
{
	char frac[8];
	int n;

	json_sep(j);
	fprintf(j->f, "%" PRIu64, us / 1000000);
	if (us % 1000000 == 0)
		return;
	n = snprintf(frac, sizeof frac, "%06" PRIu64, us % 1000000);
	/* Trailing zeros say nothing: 1.500000 is written 1.5. */
	while (n > 0 && frac[n - 1] == '0')
		frac[--n] = '\0';
	fprintf(j->f, ".%s", frac);
}

void json_hex(json *j, const uint8_t *data, size_t len)
{
	json_sep(j);
	putc('"', j->f);
	for (size_t i = 0; i < len; i++)
		fprintf(j->f, "%02x", (unsigned)data[i]);
	putc('"', j->f);
}

void json_kv_string(json *j, const char *key, const char *s)
{
	json_key(j, key);
	json_string(j, s);
}

void json_kv_u64(json *j, const char *key, uint64_t v)
{
	json_key(j, key);
	json_u64(j, v);
}

void json_kv_bool(json *j, const char *key, int v)
{
	json_key(j, key);
	json_bool(j, v);
}

void json_kv_seconds(json *j, const char *key, uint64_t us)
{
	json_key(j, key);
	json_seconds(j, us);
}

void json_kv_hex(json *j, const char *key, const uint8_t *data, size_t len)
{
	json_key(j, key);
	json_hex(j, data, len);
}

void json_finish(json *j)
{
	assert(!j->after_key);
	while (j->depth > 0)
		json_close(j, j->closer[j->depth - 1]);
	putc('\n', j->f);
}
