/*
 * json.c: a small streaming JSON writer for the machine output of
 * `tcache --json`.  It writes straight to a FILE and keeps only the nesting
 * state, so there is nothing to free.  Test ids and paths are bytes, not
 * text: strings are escaped so that any bytes give valid JSON (control
 * characters as \uXXXX, invalid UTF-8 as U+FFFD).
 */
#ifndef TC_JSON_H
#define TC_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Objects and arrays nested deeper than this are a programming error. */
#define JSON_MAX_DEPTH 16

typedef struct json {
	FILE *f;
	int depth;			/* open objects and arrays */
	uint8_t members[JSON_MAX_DEPTH]; /* the container at each depth
					   has a member: a comma is due */
	char closer[JSON_MAX_DEPTH];	/* '}' or ']' for each open one */
	uint8_t after_key;		/* a key was written: its value is due */
} json;

void json_init(json *j, FILE *f);
/* Closes what is still open and ends the line. */
void json_finish(json *j);

void json_object_begin(json *j);
void json_object_end(json *j);
void json_array_begin(json *j);
void json_array_end(json *j);
void json_key(json *j, const char *key);

/* NULL writes null. */
void json_string(json *j, const char *s);
void json_string_len(json *j, const char *s, size_t len);
void json_u64(json *j, uint64_t v);
void json_bool(json *j, int v);
void json_null(json *j);
/* Six significant digits; NaN and infinities as null. */
void json_double(json *j, double v);
/* Microseconds written as decimal seconds, exactly: 1500000 -> 1.5. */
void json_seconds(json *j, uint64_t us);
/* Lowercase hex of a byte string. */
void json_hex(json *j, const uint8_t *data, size_t len);

/* A key and its value, in one call. */
void json_kv_string(json *j, const char *key, const char *s);
void json_kv_u64(json *j, const char *key, uint64_t v);
void json_kv_bool(json *j, const char *key, int v);
void json_kv_seconds(json *j, const char *key, uint64_t us);
void json_kv_hex(json *j, const char *key, const uint8_t *data, size_t len);

#endif
