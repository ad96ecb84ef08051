/*
 * The wire codec (proto/PROTOCOL.md): messages into frames, frame bodies
 * into messages.  No I/O.
 *
 * The encoder writes straight into a proto_buf that grows geometrically and
 * never past one frame beyond what it already holds; the first failure is
 * remembered and the buffer is rolled back to where the frame began.  The
 * decoder is a bounded cursor: every read is checked against the bytes left,
 * every count against its limit and against the smallest size its elements
 * can have on the wire before anything is allocated for it.  Errors are
 * sticky in both, so message layouts read as straight lines.
 *
 * Decisions the contract leaves open:
 * - Encoding a value out of its range (an outcome outside 1..4, an input
 *   kind outside 0..3, a LIST limit outside 1..TC_MAX_LIST, a NULL list with
 *   a count, a SLOWEST n outside 1..TC_MAX_SLOWEST) is PROTO_E_LIMIT, like a string over its limit; an unknown type
 *   is PROTO_E_UNKNOWN.  NULL strings encode as "".
 * - An ERROR reply's message is cut to TC_MAX_MESSAGE rather than refused,
 *   so that an error can always be sent.
 * - Decoding: bools, LOOKUP's found, RECORD statuses (0..1), outcomes,
 *   kinds and modes are checked (MALFORMED); a LIST limit of 0 is
 *   MALFORMED, over TC_MAX_LIST LIMIT; an ERROR code of 0 is MALFORMED.
 *   Running out of memory while decoding returns -1.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto.h"

_Static_assert(TC_DIGEST_LEN == TC_DIGEST_BYTES, "one digest size");
_Static_assert(TC_MAX_PATTERN <= TC_MAX_PATH, "an invalidate arg is a path or a glob");

/* Smallest wire size of each list element (all strings empty, no
 * sub-lists, results not found). */
#define WIRE_KEY	TC_DIGEST_LEN
#define WIRE_INPUT	(1 + 4 + TC_DIGEST_LEN)
#define WIRE_RESULT	1
#define WIRE_RECORD	(TC_DIGEST_LEN + 4 + 4 + 4 + 1 + 8 + 8 + 4 + 4)
#define WIRE_STATUS	1
#define WIRE_STAT	(4 + 8)
#define WIRE_ENTRY	(8 + TC_DIGEST_LEN + 4 + 4 + 4 + 1 + 1 + 5 * 8 + 4)
#define WIRE_SLOW	(4 + 4 + 3 * 8)

/* First allocation of a proto_buf: a HELLO or a LOOKUP of a few keys. */
#define BUF_MIN 256u

void proto_buf_init(proto_buf *b)
{
	b->data = NULL;
	b->len = 0;
	b->cap = 0;
}

void proto_buf_free(proto_buf *b)
{
	free(b->data);
	proto_buf_init(b);
}

void proto_buf_reset(proto_buf *b)
{
	b->len = 0;
}

/* --- encoding --- */

struct enc {
	proto_buf	*b;
	size_t		 start;		/* where this frame's header begins */
	int		 err;		/* first failure: PROTO_E_* or -1 */
};

static void enc_fail(struct enc *w, int err)
{
	if (w->err == 0)
		w->err = err;
}

static int enc_grow(struct enc *w, size_t need, size_t end)
{
	proto_buf *b = w->b;
	size_t cap = b->cap > BUF_MIN ? b->cap : BUF_MIN;
	uint8_t *p;

	while (cap < need && cap <= SIZE_MAX / 2)
		cap *= 2;
	if (cap < need)
		cap = need;
	if (cap > end)		/* enc_room made sure need <= end */
		cap = end;
	p = realloc(b->data, cap);
	if (p == NULL) {
		enc_fail(w, -1);
		return -1;
	}
	b->data = p;
	b->cap = cap;
	return 0;
}

/* Claims n more bytes of this frame; NULL after any failure. */
static uint8_t *enc_room(struct enc *w, size_t n)
{
	proto_buf *b = w->b;
	size_t end = w->start + TC_FRAME_HEADER + TC_MAX_FRAME;
	uint8_t *p;

	if (w->err != 0)
		return NULL;
	if (n > end - b->len) {
		enc_fail(w, PROTO_E_LIMIT);
		return NULL;
	}
	if (n > b->cap - b->len && enc_grow(w, b->len + n, end) == -1)
		return NULL;
	p = b->data + b->len;
	b->len += n;
	return p;
}

static void be_put(uint8_t *p, uint64_t v, size_t n)
{
	while (n-- > 0) {
		p[n] = (uint8_t)v;
		v >>= 8;
	}
}

static void put_uint(struct enc *w, uint64_t v, size_t n)
{
	uint8_t *p = enc_room(w, n);

	if (p != NULL)
		be_put(p, v, n);
}

static void put_u8(struct enc *w, uint8_t v)
{
	put_uint(w, v, 1);
}

static void put_u32(struct enc *w, uint32_t v)
{
	put_uint(w, v, 4);
}

static void put_u64(struct enc *w, uint64_t v)
{
	put_uint(w, v, 8);
}

static void put_bool(struct enc *w, uint8_t v)
{
	put_u8(w, v != 0);
}

static void put_range(struct enc *w, uint8_t v, uint8_t lo, uint8_t hi)
{
	if (v < lo || v > hi)
		enc_fail(w, PROTO_E_LIMIT);
	else
		put_u8(w, v);
}

static void put_bytes(struct enc *w, const void *s, size_t n)
{
	uint8_t *p;

	if (n == 0)
		return;
	if ((p = enc_room(w, n)) != NULL)
		memcpy(p, s, n);
}

static void put_digest(struct enc *w, const uint8_t *d)
{
	put_bytes(w, d, TC_DIGEST_LEN);
}

static void put_str(struct enc *w, const char *s, size_t max)
{
	size_t n = s == NULL ? 0 : strlen(s);

	if (n > max) {
		enc_fail(w, PROTO_E_LIMIT);
		return;
	}
	put_u32(w, (uint32_t)n);
	put_bytes(w, s, n);
}

/* Writes a list's count; 0 when its elements must not be written. */
static int put_count(struct enc *w, uint32_t n, uint32_t max, const void *list)
{
	if (n > max || (n > 0 && list == NULL)) {
		enc_fail(w, PROTO_E_LIMIT);
		return 0;
	}
	put_u32(w, n);
	return w->err == 0;
}

static void enc_inputs(struct enc *w, const tc_input *in, uint32_t n)
{
	if (!put_count(w, n, TC_MAX_INPUTS, in))
		return;
	for (uint32_t i = 0; i < n && w->err == 0; i++) {
		put_range(w, in[i].kind, TC_INPUT_FILE,
		    TC_INPUT_INTERFACE);
		put_str(w, in[i].path, TC_MAX_PATH);
		put_digest(w, in[i].digest);
	}
}

static void enc_result(struct enc *w, const tc_result *r)
{
	put_bool(w, r->found);
	if (!r->found)
		return;
	put_range(w, r->outcome, TC_PASS, TC_ERROR);
	put_bool(w, r->flaky);
	put_u64(w, r->duration_us);
	put_u64(w, r->created_ms);
	put_u64(w, r->expires_ms);
	enc_inputs(w, r->inputs, r->ninputs);
}

static void enc_record(struct enc *w, const tc_record *r)
{
	put_digest(w, r->key);
	put_str(w, r->project, TC_MAX_NAME);
	put_str(w, r->test, TC_MAX_TEST);
	put_str(w, r->root, TC_MAX_PATH);
	put_range(w, r->outcome, TC_PASS, TC_ERROR);
	put_u64(w, r->duration_us);
	put_u64(w, r->ttl_ms);
	put_str(w, r->message, TC_MAX_MESSAGE);
	enc_inputs(w, r->inputs, r->ninputs);
}

static void enc_entry(struct enc *w, const tc_entry *e)
{
	put_u64(w, e->id);
	put_digest(w, e->key);
	put_str(w, e->project, TC_MAX_NAME);
	put_str(w, e->test, TC_MAX_TEST);
	put_str(w, e->root, TC_MAX_PATH);
	put_range(w, e->outcome, TC_PASS, TC_ERROR);
	put_bool(w, e->flaky);
	put_u64(w, e->duration_us);
	put_u64(w, e->created_ms);
	put_u64(w, e->expires_ms);
	put_u64(w, e->hits);
	put_u64(w, e->last_used_ms);
	put_str(w, e->message, TC_MAX_MESSAGE);
}

static void enc_status_r(struct enc *w, const tc_daemon_status *s)
{
	put_str(w, s->version, TC_MAX_NAME);
	put_u32(w, s->pid);
	put_u64(w, s->uptime_ms);
	put_str(w, s->socket, TC_MAX_PATH);
	put_str(w, s->db, TC_MAX_PATH);
	put_u64(w, s->entries);
	put_u64(w, s->ttl_ms);
	put_u64(w, s->max_entries);
}

static void enc_lookup(struct enc *w, const proto_msg *m)
{
	uint32_t n = m->u.lookup.n;

	if (put_count(w, n, TC_MAX_BATCH, m->u.lookup.keys))
		put_bytes(w, m->u.lookup.keys, (size_t)n * TC_DIGEST_LEN);
}

static void enc_lookup_r(struct enc *w, const proto_msg *m)
{
	uint32_t n = m->u.lookup_r.n;

	if (!put_count(w, n, TC_MAX_BATCH, m->u.lookup_r.results))
		return;
	for (uint32_t i = 0; i < n && w->err == 0; i++)
		enc_result(w, &m->u.lookup_r.results[i]);
}

static void enc_record_req(struct enc *w, const proto_msg *m)
{
	uint32_t n = m->u.record.n;

	if (!put_count(w, n, TC_MAX_BATCH, m->u.record.records))
		return;
	for (uint32_t i = 0; i < n && w->err == 0; i++)
		enc_record(w, &m->u.record.records[i]);
}

static void enc_record_r(struct enc *w, const proto_msg *m)
{
	uint32_t n = m->u.record_r.n;

	if (!put_count(w, n, TC_MAX_BATCH, m->u.record_r.status))
		return;
	for (uint32_t i = 0; i < n && w->err == 0; i++)
		put_range(w, m->u.record_r.status[i], TC_STORED,
		    TC_STORED_FLAKY);
}

static void enc_invalidate(struct enc *w, const proto_msg *m)
{
	put_range(w, m->u.invalidate.mode, TC_INV_PATH, TC_INV_ALL);
	put_bool(w, m->u.invalidate.dry_run);
	put_str(w, m->u.invalidate.arg, TC_MAX_PATH);
	put_digest(w, m->u.invalidate.key);
}

static void enc_stats_r(struct enc *w, const proto_msg *m)
{
	uint32_t n = m->u.stats_r.n;

	if (!put_count(w, n, TC_MAX_STATS, m->u.stats_r.stats))
		return;
	for (uint32_t i = 0; i < n && w->err == 0; i++) {
		put_str(w, m->u.stats_r.stats[i].name, TC_MAX_NAME);
		put_u64(w, m->u.stats_r.stats[i].value);
	}
}

static void enc_list(struct enc *w, const proto_msg *m)
{
	put_str(w, m->u.list.test_glob, TC_MAX_PATTERN);
	put_str(w, m->u.list.path, TC_MAX_PATH);
	if (m->u.list.limit == 0 || m->u.list.limit > TC_MAX_LIST)
		enc_fail(w, PROTO_E_LIMIT);
	put_u32(w, m->u.list.limit);
	put_u64(w, m->u.list.after);
}

static void enc_list_r(struct enc *w, const proto_msg *m)
{
	uint32_t n = m->u.list_r.n;

	if (put_count(w, n, TC_MAX_LIST, m->u.list_r.entries)) {
		for (uint32_t i = 0; i < n && w->err == 0; i++)
			enc_entry(w, &m->u.list_r.entries[i]);
	}
	put_u64(w, m->u.list_r.next);
}

static void enc_explain_r(struct enc *w, const proto_msg *m)
{
	put_bool(w, m->u.explain_r.found);
	if (!m->u.explain_r.found)
		return;
	enc_entry(w, &m->u.explain_r.entry);
	enc_inputs(w, m->u.explain_r.inputs, m->u.explain_r.ninputs);
}

static void enc_slowest_r(struct enc *w, const proto_msg *m)
{
	uint32_t n = m->u.slowest_r.n;
	const tc_slow *sl = m->u.slowest_r.slow;

	if (!put_count(w, n, TC_MAX_SLOWEST, sl))
		return;
	for (uint32_t i = 0; i < n && w->err == 0; i++) {
		put_str(w, sl[i].project, TC_MAX_NAME);
		put_str(w, sl[i].test, TC_MAX_TEST);
		put_u64(w, sl[i].duration_us);
		put_u64(w, sl[i].hits);
		put_u64(w, sl[i].saved_us);
	}
}

static void enc_error(struct enc *w, const proto_msg *m)
{
	const char *s = m->u.error.message != NULL ? m->u.error.message : "";
	size_t n = strnlen(s, TC_MAX_MESSAGE);

	put_uint(w, m->u.error.code, 2);
	put_u32(w, (uint32_t)n);
	put_bytes(w, s, n);
}

static void enc_body(struct enc *w, const proto_msg *m)
{
	switch (m->type) {
	case PROTO_HELLO:
	case PROTO_HELLO | PROTO_REPLY:
		put_u32(w, m->u.hello.version);
		put_str(w, m->u.hello.name, TC_MAX_NAME);
		break;
	case PROTO_STATUS:
	case PROTO_GC:
		break;
	case PROTO_STATUS | PROTO_REPLY:
		enc_status_r(w, &m->u.status_r);
		break;
	case PROTO_LOOKUP:
		enc_lookup(w, m);
		break;
	case PROTO_LOOKUP | PROTO_REPLY:
		enc_lookup_r(w, m);
		break;
	case PROTO_RECORD:
		enc_record_req(w, m);
		break;
	case PROTO_RECORD | PROTO_REPLY:
		enc_record_r(w, m);
		break;
	case PROTO_INVALIDATE:
		enc_invalidate(w, m);
		break;
	case PROTO_INVALIDATE | PROTO_REPLY:
		put_u64(w, m->u.invalidate_r.count);
		break;
	case PROTO_STATS:
		put_bool(w, m->u.stats.reset);
		break;
	case PROTO_STATS | PROTO_REPLY:
		enc_stats_r(w, m);
		break;
	case PROTO_LIST:
		enc_list(w, m);
		break;
	case PROTO_LIST | PROTO_REPLY:
		enc_list_r(w, m);
		break;
	case PROTO_EXPLAIN:
		put_str(w, m->u.explain.project, TC_MAX_NAME);
		put_str(w, m->u.explain.test, TC_MAX_TEST);
		break;
	case PROTO_EXPLAIN | PROTO_REPLY:
		enc_explain_r(w, m);
		break;
	case PROTO_GC | PROTO_REPLY:
		put_u64(w, m->u.gc_r.removed);
		break;
	case PROTO_SLOWEST:
		if (m->u.slowest.n == 0 || m->u.slowest.n > TC_MAX_SLOWEST)
			enc_fail(w, PROTO_E_LIMIT);
		put_u32(w, m->u.slowest.n);
		break;
	case PROTO_SLOWEST | PROTO_REPLY:
		enc_slowest_r(w, m);
		break;
	case PROTO_ERROR:
		enc_error(w, m);
		break;
	default:
		enc_fail(w, PROTO_E_UNKNOWN);
		break;
	}
}

int proto_encode(proto_buf *b, const proto_msg *m)
{
	struct enc w = { b, b->len, 0 };

	enc_room(&w, TC_FRAME_HEADER);
	put_u8(&w, m->type);
	enc_body(&w, m);
	if (w.err != 0) {
		b->len = w.start;
		return w.err;
	}
	be_put(b->data + w.start, b->len - w.start - TC_FRAME_HEADER,
	    TC_FRAME_HEADER);
	return PROTO_OK;
}

int proto_frame_len(const uint8_t hdr[TC_FRAME_HEADER], uint32_t *len)
{
	uint32_t n = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 |
	    (uint32_t)hdr[2] << 8 | hdr[3];

	*len = n;
	if (n == 0)
		return PROTO_E_MALFORMED;
	if (n > TC_MAX_FRAME)
		return PROTO_E_TOO_LARGE;
	return PROTO_OK;
}

/* --- decoding --- */

struct dec {
	const uint8_t	*p;
	const uint8_t	*end;
	int		 err;		/* first failure: PROTO_E_* or -1 */
	const char	*field;		/* what was being read then */
	const char	*reason;
};

static void dec_fail(struct dec *d, int err, const char *field,
    const char *reason)
{
	if (d->err != 0)
		return;
	d->err = err;
	d->field = field;
	d->reason = reason;
}

/* n bytes from the cursor; NULL after any failure. */
static const uint8_t *get_bytes(struct dec *d, size_t n, const char *field)
{
	const uint8_t *p = d->p;

	if (d->err != 0)
		return NULL;
	if ((size_t)(d->end - p) < n) {
		dec_fail(d, PROTO_E_MALFORMED, field, "truncated");
		return NULL;
	}
	d->p += n;
	return p;
}

static uint64_t get_uint(struct dec *d, size_t n, const char *field)
{
	const uint8_t *p = get_bytes(d, n, field);
	uint64_t v = 0;

	if (p == NULL)
		return 0;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static uint8_t get_u8(struct dec *d, const char *field)
{
	return (uint8_t)get_uint(d, 1, field);
}

static uint32_t get_u32(struct dec *d, const char *field)
{
	return (uint32_t)get_uint(d, 4, field);
}

static uint64_t get_u64(struct dec *d, const char *field)
{
	return get_uint(d, 8, field);
}

/* A u8 that must lie in lo..hi: bools, outcomes, kinds, modes. */
static uint8_t get_range(struct dec *d, uint8_t lo, uint8_t hi,
    const char *field)
{
	uint8_t v = get_u8(d, field);

	if (d->err == 0 && (v < lo || v > hi)) {
		dec_fail(d, PROTO_E_MALFORMED, field, "value out of range");
		return 0;
	}
	return v;
}

static uint8_t get_bool(struct dec *d, const char *field)
{
	return get_range(d, 0, 1, field);
}

static uint8_t get_outcome(struct dec *d)
{
	return get_range(d, TC_PASS, TC_ERROR, "outcome");
}

static void get_digest(struct dec *d, uint8_t *out, const char *field)
{
	const uint8_t *p = get_bytes(d, TC_DIGEST_LEN, field);

	if (p != NULL)
		memcpy(out, p, TC_DIGEST_LEN);
}

/* A string of at most max bytes, malloc'd and NUL-terminated. */
static char *get_str(struct dec *d, uint32_t max, const char *field)
{
	uint32_t n = get_u32(d, field);
	const uint8_t *p;
	char *s;

	if (d->err != 0)
		return NULL;
	if (n > max) {
		dec_fail(d, PROTO_E_LIMIT, field, "string over its limit");
		return NULL;
	}
	if ((p = get_bytes(d, n, field)) == NULL)
		return NULL;
	if (memchr(p, '\0', n) != NULL) {
		dec_fail(d, PROTO_E_MALFORMED, field, "NUL byte in string");
		return NULL;
	}
	if ((s = malloc((size_t)n + 1)) == NULL) {
		dec_fail(d, -1, field, "out of memory");
		return NULL;
	}
	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

/*
 * A list's count, checked against its limit and against the bytes left
 * (count * the element's smallest wire size), so that a hostile count in a
 * short frame costs no allocation.
 */
static uint32_t get_count(struct dec *d, uint32_t max, size_t min,
    const char *field)
{
	uint32_t n = get_u32(d, field);

	if (d->err != 0)
		return 0;
	if (n > max) {
		dec_fail(d, PROTO_E_LIMIT, field, "count over its limit");
		return 0;
	}
	if ((uint64_t)n * min > (uint64_t)(d->end - d->p)) {
		dec_fail(d, PROTO_E_MALFORMED, field, "count past the end");
		return 0;
	}
	return n;
}

/* A zeroed array of n elements; NULL for none or on failure. */
static void *get_array(struct dec *d, uint32_t n, size_t size,
    const char *field)
{
	void *a;

	if (d->err != 0 || n == 0)
		return NULL;
	if ((a = calloc(n, size)) == NULL)
		dec_fail(d, -1, field, "out of memory");
	return a;
}

static tc_input *get_inputs(struct dec *d, uint32_t *np)
{
	uint32_t n = get_count(d, TC_MAX_INPUTS, WIRE_INPUT, "inputs");
	tc_input *in = get_array(d, n, sizeof(*in), "inputs");

	*np = in != NULL ? n : 0;
	for (uint32_t i = 0; i < *np && d->err == 0; i++) {
		in[i].kind = get_range(d, TC_INPUT_FILE,
		    TC_INPUT_INTERFACE, "input kind");
		in[i].path = get_str(d, TC_MAX_PATH, "input path");
		get_digest(d, in[i].digest, "input digest");
	}
	return in;
}

static void get_result(struct dec *d, tc_result *r)
{
	r->found = get_bool(d, "found");
	if (!r->found)
		return;
	r->outcome = get_outcome(d);
	r->flaky = get_bool(d, "flaky");
	r->duration_us = get_u64(d, "duration");
	r->created_ms = get_u64(d, "created");
	r->expires_ms = get_u64(d, "expires");
	r->inputs = get_inputs(d, &r->ninputs);
}

static void get_record(struct dec *d, tc_record *r)
{
	get_digest(d, r->key, "key");
	r->project = get_str(d, TC_MAX_NAME, "project");
	r->test = get_str(d, TC_MAX_TEST, "test");
	r->root = get_str(d, TC_MAX_PATH, "root");
	r->outcome = get_outcome(d);
	r->duration_us = get_u64(d, "duration");
	r->ttl_ms = get_u64(d, "ttl");
	r->message = get_str(d, TC_MAX_MESSAGE, "message");
	r->inputs = get_inputs(d, &r->ninputs);
}

static void get_entry(struct dec *d, tc_entry *e)
{
	e->id = get_u64(d, "id");
	get_digest(d, e->key, "key");
	e->project = get_str(d, TC_MAX_NAME, "project");
	e->test = get_str(d, TC_MAX_TEST, "test");
	e->root = get_str(d, TC_MAX_PATH, "root");
	e->outcome = get_outcome(d);
	e->flaky = get_bool(d, "flaky");
	e->duration_us = get_u64(d, "duration");
	e->created_ms = get_u64(d, "created");
	e->expires_ms = get_u64(d, "expires");
	e->hits = get_u64(d, "hits");
	e->last_used_ms = get_u64(d, "last used");
	e->message = get_str(d, TC_MAX_MESSAGE, "message");
}

static void dec_status_r(struct dec *d, tc_daemon_status *s)
{
	s->version = get_str(d, TC_MAX_NAME, "version");
	s->pid = get_u32(d, "pid");
	s->uptime_ms = get_u64(d, "uptime");
	s->socket = get_str(d, TC_MAX_PATH, "socket");
	s->db = get_str(d, TC_MAX_PATH, "db");
	s->entries = get_u64(d, "entries");
	s->ttl_ms = get_u64(d, "ttl");
	s->max_entries = get_u64(d, "max entries");
}

static void dec_lookup(struct dec *d, proto_msg *m)
{
	uint32_t n = get_count(d, TC_MAX_BATCH, WIRE_KEY, "keys");
	uint8_t (*keys)[TC_DIGEST_LEN] = get_array(d, n, TC_DIGEST_LEN, "keys");
	const uint8_t *p;

	if (keys == NULL)
		return;
	m->u.lookup.keys = (const uint8_t (*)[TC_DIGEST_LEN])keys;
	m->u.lookup.n = n;
	if ((p = get_bytes(d, (size_t)n * TC_DIGEST_LEN, "keys")) != NULL)
		memcpy(keys, p, (size_t)n * TC_DIGEST_LEN);
}

static void dec_lookup_r(struct dec *d, proto_msg *m)
{
	uint32_t n = get_count(d, TC_MAX_BATCH, WIRE_RESULT, "results");
	tc_result *r = get_array(d, n, sizeof(*r), "results");

	if (r == NULL)
		return;
	m->u.lookup_r.results = r;
	m->u.lookup_r.n = n;
	for (uint32_t i = 0; i < n && d->err == 0; i++)
		get_result(d, &r[i]);
}

static void dec_record(struct dec *d, proto_msg *m)
{
	uint32_t n = get_count(d, TC_MAX_BATCH, WIRE_RECORD, "records");
	tc_record *r = get_array(d, n, sizeof(*r), "records");

	if (r == NULL)
		return;
	m->u.record.records = r;
	m->u.record.n = n;
	for (uint32_t i = 0; i < n && d->err == 0; i++)
		get_record(d, &r[i]);
}

static void dec_record_r(struct dec *d, proto_msg *m)
{
	uint32_t n = get_count(d, TC_MAX_BATCH, WIRE_STATUS, "statuses");
	uint8_t *st = get_array(d, n, 1, "statuses");

	if (st == NULL)
		return;
	m->u.record_r.status = st;
	m->u.record_r.n = n;
	for (uint32_t i = 0; i < n && d->err == 0; i++)
		st[i] = get_range(d, TC_STORED, TC_STORED_FLAKY, "status");
}

static void dec_invalidate(struct dec *d, proto_msg *m)
{
	m->u.invalidate.mode = get_range(d, TC_INV_PATH, TC_INV_ALL, "mode");
	m->u.invalidate.dry_run = get_bool(d, "dry run");
	m->u.invalidate.arg = get_str(d, TC_MAX_PATH, "arg");
	get_digest(d, m->u.invalidate.key, "key");
}

static void dec_stats_r(struct dec *d, proto_msg *m)
{
	uint32_t n = get_count(d, TC_MAX_STATS, WIRE_STAT, "stats");
	tc_stat *st = get_array(d, n, sizeof(*st), "stats");

	if (st == NULL)
		return;
	m->u.stats_r.stats = st;
	m->u.stats_r.n = n;
	for (uint32_t i = 0; i < n && d->err == 0; i++) {
		st[i].name = get_str(d, TC_MAX_NAME, "stat name");
		st[i].value = get_u64(d, "stat value");
	}
}

static void dec_list(struct dec *d, proto_msg *m)
{
	m->u.list.test_glob = get_str(d, TC_MAX_PATTERN, "test glob");
	m->u.list.path = get_str(d, TC_MAX_PATH, "path");
	m->u.list.limit = get_u32(d, "limit");
	m->u.list.after = get_u64(d, "after");
	if (d->err == 0 && m->u.list.limit == 0)
		dec_fail(d, PROTO_E_MALFORMED, "limit", "zero");
	if (d->err == 0 && m->u.list.limit > TC_MAX_LIST)
		dec_fail(d, PROTO_E_LIMIT, "limit", "over its limit");
}

static void dec_list_r(struct dec *d, proto_msg *m)
{
	uint32_t n = get_count(d, TC_MAX_LIST, WIRE_ENTRY, "entries");
	tc_entry *e = get_array(d, n, sizeof(*e), "entries");

	if (e != NULL) {
		m->u.list_r.entries = e;
		m->u.list_r.n = n;
	}
	for (uint32_t i = 0; i < m->u.list_r.n && d->err == 0; i++)
		get_entry(d, &e[i]);
	m->u.list_r.next = get_u64(d, "next");
}

static void dec_explain_r(struct dec *d, proto_msg *m)
{
	m->u.explain_r.found = get_bool(d, "found");
	if (!m->u.explain_r.found)
		return;
	get_entry(d, &m->u.explain_r.entry);
	m->u.explain_r.inputs = get_inputs(d, &m->u.explain_r.ninputs);
}

static void dec_slowest_r(struct dec *d, proto_msg *m)
{
	uint32_t n = get_count(d, TC_MAX_SLOWEST, WIRE_SLOW, "slowest");
	tc_slow *sl = get_array(d, n, sizeof(*sl), "slowest");

	if (sl == NULL)
		return;
	m->u.slowest_r.slow = sl;
	m->u.slowest_r.n = n;
	for (uint32_t i = 0; i < n && d->err == 0; i++) {
		sl[i].project = get_str(d, TC_MAX_NAME, "project");
		sl[i].test = get_str(d, TC_MAX_TEST, "test");
		sl[i].duration_us = get_u64(d, "duration");
		sl[i].hits = get_u64(d, "hits");
		sl[i].saved_us = get_u64(d, "saved");
	}
}

static void dec_error(struct dec *d, proto_msg *m)
{
	m->u.error.code = (uint16_t)get_uint(d, 2, "code");
	if (d->err == 0 && m->u.error.code == 0)
		dec_fail(d, PROTO_E_MALFORMED, "code", "zero");
	m->u.error.message = get_str(d, TC_MAX_MESSAGE, "message");
}

static void dec_body(struct dec *d, proto_msg *m)
{
	switch (m->type) {
	case PROTO_HELLO:
	case PROTO_HELLO | PROTO_REPLY:
		m->u.hello.version = get_u32(d, "version");
		m->u.hello.name = get_str(d, TC_MAX_NAME, "name");
		break;
	case PROTO_STATUS:
	case PROTO_GC:
		break;
	case PROTO_STATUS | PROTO_REPLY:
		dec_status_r(d, &m->u.status_r);
		break;
	case PROTO_LOOKUP:
		dec_lookup(d, m);
		break;
	case PROTO_LOOKUP | PROTO_REPLY:
		dec_lookup_r(d, m);
		break;
	case PROTO_RECORD:
		dec_record(d, m);
		break;
	case PROTO_RECORD | PROTO_REPLY:
		dec_record_r(d, m);
		break;
	case PROTO_INVALIDATE:
		dec_invalidate(d, m);
		break;
	case PROTO_INVALIDATE | PROTO_REPLY:
		m->u.invalidate_r.count = get_u64(d, "count");
		break;
	case PROTO_STATS:
		m->u.stats.reset = get_bool(d, "reset");
		break;
	case PROTO_STATS | PROTO_REPLY:
		dec_stats_r(d, m);
		break;
	case PROTO_LIST:
		dec_list(d, m);
		break;
	case PROTO_LIST | PROTO_REPLY:
		dec_list_r(d, m);
		break;
	case PROTO_EXPLAIN:
		m->u.explain.project = get_str(d, TC_MAX_NAME, "project");
		m->u.explain.test = get_str(d, TC_MAX_TEST, "test");
		break;
	case PROTO_EXPLAIN | PROTO_REPLY:
		dec_explain_r(d, m);
		break;
	case PROTO_GC | PROTO_REPLY:
		m->u.gc_r.removed = get_u64(d, "removed");
		break;
	case PROTO_SLOWEST:
		/* As LIST's limit: 0 asks for nothing, over the cap is LIMIT. */
		m->u.slowest.n = get_u32(d, "n");
		if (d->err == 0 && m->u.slowest.n == 0)
			dec_fail(d, PROTO_E_MALFORMED, "n", "zero");
		if (d->err == 0 && m->u.slowest.n > TC_MAX_SLOWEST)
			dec_fail(d, PROTO_E_LIMIT, "n", "over its limit");
		break;
	case PROTO_SLOWEST | PROTO_REPLY:
		dec_slowest_r(d, m);
		break;
	case PROTO_ERROR:
		dec_error(d, m);
		break;
	default:
		dec_fail(d, PROTO_E_UNKNOWN, "type", "unknown message type");
		break;
	}
}

/* "RECORD test: string over its limit", for the error reply. */
static void dec_why(const struct dec *d, const uint8_t *body, size_t len,
    char *why, size_t whylen)
{
	if (why == NULL || whylen == 0)
		return;
	if (d->err == PROTO_OK)
		why[0] = '\0';
	else if (len == 0)
		snprintf(why, whylen, "empty frame");
	else if (d->err == PROTO_E_UNKNOWN)
		snprintf(why, whylen, "unknown message type 0x%02x", body[0]);
	else
		snprintf(why, whylen, "%s %s: %s", proto_type_name(body[0]),
		    d->field, d->reason);
}

int proto_decode(const uint8_t *body, size_t len, proto_msg *m,
		 char *why, size_t whylen)
{
	struct dec d = { NULL, NULL, 0, NULL, NULL };

	memset(m, 0, sizeof(*m));
	if (len == 0) {
		dec_fail(&d, PROTO_E_MALFORMED, "body", "empty");
	} else {
		d.p = body + 1;
		d.end = body + len;
		m->type = body[0];
		dec_body(&d, m);
		if (d.err == 0 && d.p != d.end)
			dec_fail(&d, PROTO_E_MALFORMED, "body", "trailing bytes");
	}
	dec_why(&d, body, len, why, whylen);
	if (d.err != 0) {
		proto_msg_free(m);
		memset(m, 0, sizeof(*m));
	}
	return d.err;
}

static void msg_free_records(tc_record *r, uint32_t n)
{
	if (r == NULL)
		return;
	for (uint32_t i = 0; i < n; i++) {
		free((void *)r[i].project);
		free((void *)r[i].test);
		free((void *)r[i].root);
		free((void *)r[i].message);
		proto_inputs_free((tc_input *)r[i].inputs, r[i].ninputs);
	}
	free(r);
}

static void msg_free_results(tc_result *r, uint32_t n)
{
	if (r == NULL)
		return;
	for (uint32_t i = 0; i < n; i++)
		proto_result_clear(&r[i]);
	free(r);
}

void proto_msg_free(proto_msg *m)
{
	switch (m->type) {
	case PROTO_HELLO:
	case PROTO_HELLO | PROTO_REPLY:
		free((void *)m->u.hello.name);
		break;
	case PROTO_STATUS | PROTO_REPLY:
		free(m->u.status_r.version);
		free(m->u.status_r.socket);
		free(m->u.status_r.db);
		break;
	case PROTO_LOOKUP:
		free((void *)m->u.lookup.keys);
		break;
	case PROTO_LOOKUP | PROTO_REPLY:
		msg_free_results(m->u.lookup_r.results, m->u.lookup_r.n);
		break;
	case PROTO_RECORD:
		msg_free_records(m->u.record.records, m->u.record.n);
		break;
	case PROTO_RECORD | PROTO_REPLY:
		free(m->u.record_r.status);
		break;
	case PROTO_INVALIDATE:
		free((void *)m->u.invalidate.arg);
		break;
	case PROTO_STATS | PROTO_REPLY:
		proto_stats_free(m->u.stats_r.stats, m->u.stats_r.n);
		break;
	case PROTO_LIST:
		free((void *)m->u.list.test_glob);
		free((void *)m->u.list.path);
		break;
	case PROTO_LIST | PROTO_REPLY:
		proto_entries_free(m->u.list_r.entries, m->u.list_r.n);
		break;
	case PROTO_EXPLAIN:
		free((void *)m->u.explain.project);
		free((void *)m->u.explain.test);
		break;
	case PROTO_EXPLAIN | PROTO_REPLY:
		proto_entry_clear(&m->u.explain_r.entry);
		proto_inputs_free(m->u.explain_r.inputs,
		    m->u.explain_r.ninputs);
		break;
	case PROTO_SLOWEST | PROTO_REPLY:
		proto_slow_free(m->u.slowest_r.slow, m->u.slowest_r.n);
		break;
	case PROTO_ERROR:
		free((void *)m->u.error.message);
		break;
	default:
		break;
	}
	memset(&m->u, 0, sizeof(m->u));
}

static const char *const proto_type_names[] = {
	[PROTO_HELLO] = "HELLO",
	[PROTO_STATUS] = "STATUS",
	[PROTO_LOOKUP] = "LOOKUP",
	[PROTO_RECORD] = "RECORD",
	[PROTO_INVALIDATE] = "INVALIDATE",
	[PROTO_STATS] = "STATS",
	[PROTO_LIST] = "LIST",
	[PROTO_EXPLAIN] = "EXPLAIN",
	[PROTO_GC] = "GC",
	[PROTO_SLOWEST] = "SLOWEST"
};

static const char *const proto_reply_names[] = {
	[PROTO_HELLO] = "HELLO reply",
	[PROTO_STATUS] = "STATUS reply",
	[PROTO_LOOKUP] = "LOOKUP reply",
	[PROTO_RECORD] = "RECORD reply",
	[PROTO_INVALIDATE] = "INVALIDATE reply",
	[PROTO_STATS] = "STATS reply",
	[PROTO_LIST] = "LIST reply",
	[PROTO_EXPLAIN] = "EXPLAIN reply",
	[PROTO_GC] = "GC reply",
	[PROTO_SLOWEST] = "SLOWEST reply"
};

#define NAMES_LEN (sizeof(proto_type_names) / sizeof(proto_type_names[0]))

const char *proto_type_name(int type)
{
	if (type == PROTO_ERROR)
		return "ERROR";
	if (type > 0 && (size_t)type < NAMES_LEN)
		return proto_type_names[type];
	if (type > PROTO_REPLY && (size_t)(type & ~PROTO_REPLY) < NAMES_LEN)
		return proto_reply_names[type & ~PROTO_REPLY];
	return "unknown";
}

static const char *const proto_err_names[] = {
	[PROTO_OK] = "OK",
	[PROTO_E_MALFORMED] = "MALFORMED",
	[PROTO_E_UNKNOWN] = "UNKNOWN",
	[PROTO_E_VERSION] = "VERSION",
	[PROTO_E_TOO_LARGE] = "TOO_LARGE",
	[PROTO_E_LIMIT] = "LIMIT",
	[PROTO_E_HANDSHAKE] = "HANDSHAKE",
	[PROTO_E_STORE] = "STORE",
	[PROTO_E_DENIED] = "DENIED",
	[PROTO_E_BUSY] = "BUSY"
};

const char *proto_err_name(int code)
{
	if (code == -1)
		return "NOMEM";
	if (code >= 0 && (size_t)code <
	    sizeof(proto_err_names) / sizeof(proto_err_names[0]))
		return proto_err_names[code];
	return "unknown";
}
