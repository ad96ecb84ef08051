/*
 * libFuzzer harness for the wire codec (proto/codec.c) and the small
 * parsers (proto/parse.c): the input is what a peer writes on the socket.
 *
 * Frames are taken off the input the way tcached's conn_process does
 * (header, then that many bytes); whatever is left when a header is refused
 * or promises more than there is goes to the decoder as one body anyway, so
 * every input reaches proto_decode whatever its first four bytes say.
 *
 * Crashing is not the only failure.  The harness aborts when:
 * - the decoder returns a code it does not document, or PROTO_OK with a
 *   "why", or an error without one, or an error and a message not zeroed;
 * - a message it accepted does not encode again to the very bytes it came
 *   from (the wire format has one encoding per message: a decoder that
 *   accepts what the encoder would never write, or an encoder that drops
 *   or alters a field, breaks this);
 * - an encoding that fails does not leave the buffer as it was;
 * - a string parser accepts what it should refuse or refuses what it
 *   should accept, or writes its output on failure.
 * Every string and number of an accepted message is fed to the parsers, so
 * the fuzzer drives them through the same input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../proto/proto.h"
#include "fuzz.h"

unsigned long fuzz_frames_ok;
unsigned long fuzz_frames_refused;

#define SENTINEL 0x5a5a5a5a5a5a5a5aull

static void fuzz_fail(const char *what)
{
	fprintf(stderr, "fuzz_proto: check failed: %s\n", what);
	abort();
}

#define CHECK(cond) do { if (!(cond)) fuzz_fail(#cond); } while (0)

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static size_t digits(const char *s)
{
	size_t n = 0;

	while (is_digit(s[n]))
		n++;
	return n;
}

/* The value of s's leading digits, when they fit a u64. */
static int prefix_value(const char *s, size_t n, uint64_t *v)
{
	char buf[32];

	/* Leading zeros add nothing: the parsers take any number of them. */
	while (n > 1 && s[0] == '0') {
		s++;
		n--;
	}
	if (n == 0 || n >= sizeof buf)
		return -1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	return parse_u64(buf, v);
}

static void check_parse_u64(const char *s)
{
	size_t n = digits(s), lead = 0;
	uint64_t v = SENTINEL;
	char buf[32];

	if (parse_u64(s, &v) != 0) {
		CHECK(v == SENTINEL);
		/* Up to 19 digits always fit. */
		CHECK(!(n > 0 && n <= 19 && s[n] == '\0'));
		return;
	}
	CHECK(n > 0 && s[n] == '\0');
	while (lead + 1 < n && s[lead] == '0')
		lead++;
	snprintf(buf, sizeof buf, "%llu", (unsigned long long)v);
	CHECK(strcmp(buf, s + lead) == 0);
}

static const struct {
	const char *suffix;
	uint64_t ms;
} units[] = {
	{ "ms", 1 }, { "s", 1000 }, { "", 1000 }, { "m", 60000 },
	{ "h", 3600000 }, { "d", 86400000 },
};

static void check_parse_duration(const char *s)
{
	size_t n = digits(s);
	uint64_t ms = SENTINEL, v;
	int want = -1, rc;

	if (prefix_value(s, n, &v) == 0) {
		for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
			if (strcmp(s + n, units[i].suffix) != 0)
				continue;
			if (v <= UINT64_MAX / units[i].ms) {
				want = 0;
				v *= units[i].ms;
			}
		}
	}
	rc = parse_duration_ms(s, &ms);
	CHECK(rc == want);
	if (rc != 0)
		CHECK(ms == SENTINEL);
	else if (want == 0)
		CHECK(ms == v);
}

static void check_parse_seconds(const char *s)
{
	size_t n = digits(s);
	uint64_t us = SENTINEL, whole;

	if (parse_seconds_us(s, &us) != 0) {
		CHECK(us == SENTINEL);
		/* Whole seconds that fit are accepted. */
		if (s[n] == '\0' && prefix_value(s, n, &whole) == 0)
			CHECK(whole > UINT64_MAX / 1000000);
		return;
	}
	CHECK(n > 0);
	CHECK(s[n] == '\0' || (s[n] == '.' && is_digit(s[n + 1])));
	if (prefix_value(s, n, &whole) == 0) {
		CHECK(whole <= UINT64_MAX / 1000000);
		CHECK(us >= whole * 1000000);
		CHECK(us - whole * 1000000 < 1000000);
	}
}

static void fz_str(const char *s)
{
	CHECK(s != NULL);
	check_parse_u64(s);
	check_parse_duration(s);
	check_parse_seconds(s);
}

static void fz_u64(uint64_t v)
{
	char buf[32], small[8];
	size_t len = 1 + (size_t)(v % sizeof small);

	parse_format_duration(v, buf, sizeof buf);
	CHECK(buf[0] != '\0' && strlen(buf) < sizeof buf - 1);
	memset(small, 'x', sizeof small);
	parse_format_duration(v, small, len);
	CHECK(memchr(small, '\0', len) != NULL);
	/* Truncated, the text is a prefix of the whole one. */
	CHECK(strncmp(small, buf, strlen(small)) == 0);
	parse_format_duration(v, NULL, 0);
}

static void fz_inputs(const tc_input *in, uint32_t n)
{
	CHECK(n == 0 || in != NULL);
	for (uint32_t i = 0; i < n; i++) {
		CHECK(in[i].kind <= TC_INPUT_INTERFACE);
		fz_str(in[i].path);
	}
}

static void fz_entry(const tc_entry *e)
{
	fz_str(e->project);
	fz_str(e->test);
	fz_str(e->root);
	fz_str(e->message);
	CHECK(e->outcome >= TC_PASS && e->outcome <= TC_ERROR);
	fz_u64(e->id);
	fz_u64(e->duration_us);
	fz_u64(e->created_ms);
	fz_u64(e->expires_ms);
	fz_u64(e->hits);
	fz_u64(e->last_used_ms);
}

/* Every string and number of an accepted message, through the parsers. */
static void fz_walk(const proto_msg *m)
{
	const tc_daemon_status *st = &m->u.status_r;

	switch (m->type) {
	case PROTO_HELLO:
	case PROTO_HELLO | PROTO_REPLY:
		fz_str(m->u.hello.name);
		fz_u64(m->u.hello.version);
		break;
	case PROTO_STATUS | PROTO_REPLY:
		fz_str(st->version);
		fz_str(st->socket);
		fz_str(st->db);
		fz_u64(st->uptime_ms);
		fz_u64(st->entries);
		fz_u64(st->ttl_ms);
		break;
	case PROTO_LOOKUP:
		CHECK(m->u.lookup.n == 0 || m->u.lookup.keys != NULL);
		break;
	case PROTO_LOOKUP | PROTO_REPLY:
		for (uint32_t i = 0; i < m->u.lookup_r.n; i++) {
			const tc_result *r = &m->u.lookup_r.results[i];

			fz_u64(r->duration_us);
			fz_inputs(r->inputs, r->ninputs);
		}
		break;
	case PROTO_RECORD:
		for (uint32_t i = 0; i < m->u.record.n; i++) {
			const tc_record *r = &m->u.record.records[i];

			fz_str(r->project);
			fz_str(r->test);
			fz_str(r->root);
			fz_str(r->message);
			fz_u64(r->duration_us);
			fz_u64(r->ttl_ms);
			fz_inputs(r->inputs, r->ninputs);
		}
		break;
	case PROTO_INVALIDATE:
		fz_str(m->u.invalidate.arg);
		break;
	case PROTO_STATS | PROTO_REPLY:
		for (uint32_t i = 0; i < m->u.stats_r.n; i++) {
			fz_str(m->u.stats_r.stats[i].name);
			fz_u64(m->u.stats_r.stats[i].value);
		}
		break;
	case PROTO_LIST:
		fz_str(m->u.list.test_glob);
		fz_str(m->u.list.path);
		CHECK(m->u.list.limit >= 1 && m->u.list.limit <= TC_MAX_LIST);
		break;
	case PROTO_LIST | PROTO_REPLY:
		for (uint32_t i = 0; i < m->u.list_r.n; i++)
			fz_entry(&m->u.list_r.entries[i]);
		fz_u64(m->u.list_r.next);
		break;
	case PROTO_EXPLAIN:
		fz_str(m->u.explain.project);
		fz_str(m->u.explain.test);
		break;
	case PROTO_EXPLAIN | PROTO_REPLY:
		if (m->u.explain_r.found) {
			fz_entry(&m->u.explain_r.entry);
			fz_inputs(m->u.explain_r.inputs,
			    m->u.explain_r.ninputs);
		}
		break;
	case PROTO_INVALIDATE | PROTO_REPLY:
		fz_u64(m->u.invalidate_r.count);
		break;
	case PROTO_GC | PROTO_REPLY:
		fz_u64(m->u.gc_r.removed);
		break;
	case PROTO_SLOWEST:
		CHECK(m->u.slowest.n >= 1 && m->u.slowest.n <= TC_MAX_SLOWEST);
		break;
	case PROTO_SLOWEST | PROTO_REPLY:
		for (uint32_t i = 0; i < m->u.slowest_r.n; i++) {
			fz_str(m->u.slowest_r.slow[i].project);
			fz_str(m->u.slowest_r.slow[i].test);
			fz_u64(m->u.slowest_r.slow[i].duration_us);
			fz_u64(m->u.slowest_r.slow[i].saved_us);
		}
		break;
	case PROTO_ERROR:
		fz_str(m->u.error.message);
		CHECK(m->u.error.code != 0);
		break;
	default:
		break;
	}
}

/* An accepted body encodes back to itself, after whatever the buffer
 * already held; a failed encoding leaves the buffer alone. */
static void check_roundtrip(proto_msg *m, const uint8_t *body, size_t len,
    size_t prefix)
{
	proto_buf b;
	uint32_t flen;
	uint8_t type;
	int rc;

	proto_buf_init(&b);
	for (size_t i = 0; i < prefix; i++) {
		/* A HELLO per byte would be big; any frame will do. */
		proto_msg gc = { .type = PROTO_GC };

		CHECK(proto_encode(&b, &gc) == PROTO_OK);
	}
	prefix = b.len;
	rc = proto_encode(&b, m);
	CHECK(rc != -1);	/* out of memory: not what is tested */
	CHECK(rc == PROTO_OK);
	CHECK(b.len == prefix + TC_FRAME_HEADER + len);
	CHECK(proto_frame_len(b.data + prefix, &flen) == PROTO_OK);
	CHECK(flen == len);
	CHECK(memcmp(b.data + prefix + TC_FRAME_HEADER, body, len) == 0);

	/* No type byte is 0x00: encoding one must fail and leave b alone. */
	type = m->type;
	m->type = 0;
	CHECK(proto_encode(&b, m) == PROTO_E_UNKNOWN);
	m->type = type;
	CHECK(b.len == prefix + TC_FRAME_HEADER + len);
	proto_buf_free(&b);
}

static int is_zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i] != 0)
			return 0;
	return 1;
}

static void fz_body(const uint8_t *data, size_t len, size_t salt)
{
	char why[128];
	proto_msg m;
	uint8_t *body = NULL;
	int rc;

	/* A copy of exactly len bytes, so that ASan sees any read past the
	 * frame even when more input follows it. */
	if (len > 0) {
		if ((body = malloc(len)) == NULL)
			return;
		memcpy(body, data, len);
	}
	memset(why, 'x', sizeof why);
	rc = proto_decode(body, len, &m, why, sizeof why);
	CHECK(memchr(why, '\0', sizeof why) != NULL);
	CHECK(proto_err_name(rc) != NULL);
	CHECK(proto_type_name(len > 0 ? body[0] : 0) != NULL);
	switch (rc) {
	case PROTO_OK:
		fuzz_frames_ok++;
		CHECK(why[0] == '\0');
		CHECK(len > 0 && m.type == body[0]);
		fz_walk(&m);
		check_roundtrip(&m, body, len, salt % 3);
		proto_msg_free(&m);
		break;
	case PROTO_E_MALFORMED:
	case PROTO_E_UNKNOWN:
	case PROTO_E_LIMIT:
		fuzz_frames_refused++;
		CHECK(why[0] != '\0');
		CHECK(is_zero(&m, sizeof m));
		break;
	default:
		fuzz_fail("proto_decode returned an undocumented code");
	}
	free(body);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t off = 0;

	while (size - off >= TC_FRAME_HEADER) {
		uint32_t len = 0;
		int rc = proto_frame_len(data + off, &len);

		if (rc == PROTO_OK) {
			CHECK(len >= 1 && len <= TC_MAX_FRAME);
		} else {
			CHECK((rc == PROTO_E_MALFORMED && len == 0) ||
			    (rc == PROTO_E_TOO_LARGE && len > TC_MAX_FRAME));
			break;
		}
		if (len > size - off - TC_FRAME_HEADER)
			break;		/* the daemon would wait for more */
		fz_body(data + off + TC_FRAME_HEADER, len, off);
		off += TC_FRAME_HEADER + len;
	}
	/* What no complete frame covered, decoded as a body of its own. */
	if (off < size)
		fz_body(data + off, size - off, off);
	return 0;
}
