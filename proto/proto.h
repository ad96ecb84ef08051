/*
 * The wire codec shared by tcached and libtcache (proto/PROTOCOL.md).
 * It does no I/O: it turns messages into frames and frames into messages,
 * checking every length against proto/limits.h before it reads.
 */
#ifndef TC_PROTO_H
#define TC_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "limits.h"
#include "../client/tcache.h"

enum proto_type {
	PROTO_HELLO = 0x01,
	PROTO_STATUS = 0x02,
	PROTO_LOOKUP = 0x03,
	PROTO_RECORD = 0x04,
	PROTO_INVALIDATE = 0x05,
	PROTO_STATS = 0x06,
	PROTO_LIST = 0x07,
	PROTO_EXPLAIN = 0x08,
	PROTO_GC = 0x09,
	PROTO_SLOWEST = 0x0a,
	PROTO_REPLY = 0x80,	/* a reply's type is its request's | PROTO_REPLY */
	PROTO_ERROR = 0xff
};

/* Error reply codes (PROTOCOL.md, "Errors"); also the decoder's results. */
enum proto_err {
	PROTO_OK = 0,
	PROTO_E_MALFORMED = 1,	/* truncated, trailing bytes, bad value */
	PROTO_E_UNKNOWN = 2,	/* unknown message type */
	PROTO_E_VERSION = 3,	/* unsupported protocol version */
	PROTO_E_TOO_LARGE = 4,	/* frame length over TC_MAX_FRAME */
	PROTO_E_LIMIT = 5,	/* a count or a string over its limit */
	PROTO_E_HANDSHAKE = 6,	/* a request before HELLO */
	PROTO_E_STORE = 7,	/* the database failed; nothing was stored */
	PROTO_E_DENIED = 8,	/* peer not allowed, or read-only */
	PROTO_E_BUSY = 9	/* too many clients, or shutting down */
};

/*
 * A message.  A decoded one owns every pointer in it, each malloc'd on its
 * own (lists, their strings, their input lists), and proto_msg_free releases
 * them by type; a caller may take a list out of a decoded message and set
 * the field to NULL and its count to 0 before proto_msg_free.  Strings are
 * NUL-terminated (the wire forbids NUL bytes inside them).  For encoding,
 * the caller fills the fields with pointers it owns and never calls
 * proto_msg_free.
 */
typedef struct proto_msg {
	uint8_t type;
	union {
		struct { uint32_t version; const char *name; } hello;	/* both ways */
		tc_daemon_status status_r;
		struct { uint32_t n; const uint8_t (*keys)[TC_DIGEST_LEN]; } lookup;
		struct { uint32_t n; tc_result *results; } lookup_r;
		struct { uint32_t n; tc_record *records; } record;
		struct { uint32_t n; uint8_t *status; } record_r;
		struct {
			uint8_t mode;		/* tc_invalidate_mode */
			uint8_t dry_run;
			const char *arg;	/* path or glob; "" otherwise */
			uint8_t key[TC_DIGEST_LEN];
		} invalidate;
		struct { uint64_t count; } invalidate_r;
		struct { uint8_t reset; } stats;
		struct { uint32_t n; tc_stat *stats; } stats_r;
		struct {
			const char *test_glob;	/* "" for any */
			const char *path;	/* "" for any */
			uint32_t limit;
			uint64_t after;
		} list;
		struct { uint32_t n; tc_entry *entries; uint64_t next; } list_r;
		struct { const char *project; const char *test; } explain;
		struct {
			uint8_t found;
			tc_entry entry;
			uint32_t ninputs;
			tc_input *inputs;
		} explain_r;
		struct { uint64_t removed; } gc_r;
		struct { uint32_t n; } slowest;
		struct { uint32_t n; tc_slow *slow; } slowest_r;
		struct { uint16_t code; const char *message; } error;
	} u;
} proto_msg;

/* A growable output buffer that refuses to pass TC_FRAME_HEADER + TC_MAX_FRAME. */
typedef struct proto_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
} proto_buf;

void proto_buf_init(proto_buf *b);
void proto_buf_free(proto_buf *b);
void proto_buf_reset(proto_buf *b);

/*
 * Appends m as one whole frame (header and body) to b.  Returns PROTO_OK,
 * PROTO_E_LIMIT when a field or the frame is over a limit (b is then left as
 * it was), or -1 when out of memory.
 */
int proto_encode(proto_buf *b, const proto_msg *m);

/*
 * Reads a frame header.  Returns PROTO_OK and the body length, or
 * PROTO_E_TOO_LARGE / PROTO_E_MALFORMED (a zero length).
 */
int proto_frame_len(const uint8_t hdr[TC_FRAME_HEADER], uint32_t *len);

/*
 * Decodes one frame body.  On PROTO_OK m owns what it points to (free with
 * proto_msg_free); otherwise m holds nothing to free and why says what was
 * wrong (for the error reply).
 */
int proto_decode(const uint8_t *body, size_t len, proto_msg *m,
		 char *why, size_t whylen);
void proto_msg_free(proto_msg *m);

/* Release what a decoder or the store malloc'd inside these structs (each
 * string and list separately, not from an arena). */
void proto_result_clear(tc_result *r);
void proto_entry_clear(tc_entry *e);
void proto_entries_free(tc_entry *e, size_t n);
void proto_inputs_free(tc_input *in, size_t n);
void proto_stats_free(tc_stat *st, size_t n);
void proto_slow_free(tc_slow *s, size_t n);

const char *proto_type_name(int type);
const char *proto_err_name(int code);

/* --- small parsers shared by tcached and tcache (parse.c) --- */

/* Decimal u64, digits only: no sign, no space, no trailing bytes, no
 * overflow.  0 or -1. */
int parse_u64(const char *s, uint64_t *out);
/* "500ms", "30s", "90m", "24h", "7d"; a bare number is seconds. */
int parse_duration_ms(const char *s, uint64_t *ms);
/* Seconds as a decimal ("1.5") into microseconds. */
int parse_seconds_us(const char *s, uint64_t *us);
/* Formats a duration for people: "1.5s", "4m12s", "2h". */
void parse_format_duration(uint64_t us, char *buf, size_t len);

#endif
