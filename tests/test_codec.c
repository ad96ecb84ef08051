/*
 * The wire codec: every message type round-trips; every truncation, every
 * bad value, every count and string over its limit is refused with the
 * right code and leaves nothing allocated (run under valgrind to see that);
 * an encode over a limit leaves the buffer as it was.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "proto/proto.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* --- sample messages --- */

static char path_max[TC_MAX_PATH + 1];
static char test_max[TC_MAX_TEST + 1];
static char name_max[TC_MAX_NAME + 1];
static char msg_max[TC_MAX_MESSAGE + 1];

static tc_input s_inputs[4];
static tc_input s_found[2];
static tc_record s_records[2];
static tc_result s_results[3];
static tc_entry s_entries[2];
static tc_stat s_stats[3];
static tc_slow s_slow[2];
static uint8_t s_keys[3][TC_DIGEST_LEN];
static uint8_t s_status[3] = { TC_STORED, TC_STORED_FLAKY, TC_STORED };

static proto_msg samples[40];
static size_t nsamples;

static void fill_digest(uint8_t *d, unsigned seed)
{
	for (unsigned i = 0; i < TC_DIGEST_LEN; i++)
		d[i] = (uint8_t)(seed * 31 + i * 7 + 1);
}

static void fill_str(char *s, size_t n, char c)
{
	memset(s, c, n);
	s[n] = '\0';
}

static proto_msg *add(uint8_t type)
{
	proto_msg *m;

	assert_true(nsamples < NELEM(samples));
	m = &samples[nsamples++];
	memset(m, 0, sizeof(*m));
	m->type = type;
	return m;
}

static void make_inputs(void)
{
	s_inputs[0] = (tc_input){ .kind = TC_INPUT_FILE, .path = "src/a.c" };
	fill_digest(s_inputs[0].digest, 1);
	s_inputs[1] = (tc_input){ .kind = TC_INPUT_ENV, .path = "PATH" };
	s_inputs[2] = (tc_input){ .kind = TC_INPUT_FILE, .path = "" };
	fill_digest(s_inputs[2].digest, 2);
	s_inputs[3] = (tc_input){ .kind = TC_INPUT_INTERFACE,
	    .path = "pkg/mod.py" };
	fill_digest(s_inputs[3].digest, 6);
	s_found[0] = (tc_input){ .kind = TC_INPUT_FOUND, .path = "d/x.json" };
	fill_digest(s_found[0].digest, 3);
	s_found[1] = (tc_input){ .kind = TC_INPUT_FOUND, .path = path_max };
	fill_digest(s_found[1].digest, 4);
}

static void make_records(void)
{
	s_records[0] = (tc_record){
		.project = "", .test = "tests/test_a.py::test_one[x-1]",
		.root = "/home/u/p", .outcome = TC_PASS,
		.duration_us = 1234567, .ttl_ms = 0, .message = NULL,
		.ninputs = NELEM(s_inputs), .inputs = s_inputs
	};
	fill_digest(s_records[0].key, 5);
	s_records[1] = (tc_record){
		.project = name_max, .test = test_max, .root = path_max,
		.outcome = TC_ERROR, .duration_us = UINT64_MAX,
		.ttl_ms = 604800000, .message = msg_max,
		.ninputs = 2, .inputs = s_found
	};
	fill_digest(s_records[1].key, 6);
}

static void make_results(void)
{
	s_results[0] = (tc_result){
		.found = 1, .outcome = TC_PASS, .flaky = 0, .duration_us = 5,
		.created_ms = 1700000000000ull, .expires_ms = 1700086400000ull,
		.ninputs = 2, .inputs = s_found
	};
	s_results[1] = (tc_result){ .found = 0 };
	s_results[2] = (tc_result){
		.found = 1, .outcome = TC_FAIL, .flaky = 1,
		.duration_us = UINT64_MAX, .created_ms = 1, .expires_ms = 2
	};
}

static void make_entries(void)
{
	s_entries[0] = (tc_entry){
		.id = 1, .project = "proj", .test = "t::a", .root = "/r",
		.outcome = TC_PASS, .flaky = 0, .duration_us = 10,
		.created_ms = 11, .expires_ms = 12, .hits = 13,
		.last_used_ms = 14, .message = ""
	};
	fill_digest(s_entries[0].key, 7);
	s_entries[1] = (tc_entry){
		.id = UINT64_MAX, .project = name_max, .test = test_max,
		.root = path_max, .outcome = TC_SKIP, .flaky = 1,
		.duration_us = UINT64_MAX, .created_ms = UINT64_MAX,
		.expires_ms = UINT64_MAX, .hits = UINT64_MAX,
		.last_used_ms = UINT64_MAX, .message = msg_max
	};
	fill_digest(s_entries[1].key, 8);
	s_stats[0] = (tc_stat){ "hits", 10 };
	s_stats[1] = (tc_stat){ "time_saved_us", UINT64_MAX };
	s_stats[2] = (tc_stat){ name_max, 0 };
	s_slow[0] = (tc_slow){ "", "tests/test_a.py::test_slow", 90000000,
	    3, 270000000 };
	s_slow[1] = (tc_slow){ name_max, test_max, UINT64_MAX, UINT64_MAX,
	    UINT64_MAX };
	for (unsigned i = 0; i < NELEM(s_keys); i++)
		fill_digest(s_keys[i], 20 + i);
}

static void make_requests(void)
{
	proto_msg *m;

	m = add(PROTO_HELLO);
	m->u.hello.version = TC_PROTO_VERSION;
	m->u.hello.name = "pytest-tcache 0.1";
	m = add(PROTO_HELLO);		/* a version mismatch is no decode error */
	m->u.hello.version = 7;
	add(PROTO_STATUS);
	m = add(PROTO_LOOKUP);
	m->u.lookup.n = NELEM(s_keys);
	m->u.lookup.keys = (const uint8_t (*)[TC_DIGEST_LEN])s_keys;
	add(PROTO_LOOKUP);
	m = add(PROTO_RECORD);
	m->u.record.n = NELEM(s_records);
	m->u.record.records = s_records;
	m = add(PROTO_INVALIDATE);
	m->u.invalidate.mode = TC_INV_PATH;
	m->u.invalidate.dry_run = 1;
	m->u.invalidate.arg = "/home/u/p/src";
	m = add(PROTO_INVALIDATE);
	m->u.invalidate.mode = TC_INV_KEY;
	fill_digest(m->u.invalidate.key, 9);
	m = add(PROTO_STATS);
	m->u.stats.reset = 1;
	add(PROTO_STATS);
	m = add(PROTO_LIST);
	m->u.list.test_glob = "tests/test_a.py::*";
	m->u.list.path = "";
	m->u.list.limit = TC_MAX_LIST;
	m->u.list.after = 99;
	m = add(PROTO_LIST);
	m->u.list.path = path_max;
	m->u.list.limit = 1;
	m = add(PROTO_EXPLAIN);
	m->u.explain.project = "";
	m->u.explain.test = test_max;
	add(PROTO_GC);
	m = add(PROTO_SLOWEST);
	m->u.slowest.n = 10;
	m = add(PROTO_SLOWEST);
	m->u.slowest.n = TC_MAX_SLOWEST;
}

static void make_replies(void)
{
	proto_msg *m;

	m = add(PROTO_HELLO | PROTO_REPLY);
	m->u.hello.version = TC_PROTO_VERSION;
	m->u.hello.name = name_max;
	m = add(PROTO_STATUS | PROTO_REPLY);
	m->u.status_r = (tc_daemon_status){
		"tcached 0.1.0", 4242, UINT64_MAX, "/run/tcache/tcached.sock",
		path_max, 12, 86400000, 0
	};
	m = add(PROTO_LOOKUP | PROTO_REPLY);
	m->u.lookup_r.n = NELEM(s_results);
	m->u.lookup_r.results = s_results;
	m = add(PROTO_RECORD | PROTO_REPLY);
	m->u.record_r.n = NELEM(s_status);
	m->u.record_r.status = s_status;
	m = add(PROTO_INVALIDATE | PROTO_REPLY);
	m->u.invalidate_r.count = 17;
	m = add(PROTO_STATS | PROTO_REPLY);
	m->u.stats_r.n = NELEM(s_stats);
	m->u.stats_r.stats = s_stats;
	m = add(PROTO_LIST | PROTO_REPLY);
	m->u.list_r.n = NELEM(s_entries);
	m->u.list_r.entries = s_entries;
	m->u.list_r.next = 3;
	add(PROTO_LIST | PROTO_REPLY);
	m = add(PROTO_EXPLAIN | PROTO_REPLY);
	m->u.explain_r.found = 1;
	m->u.explain_r.entry = s_entries[1];
	m->u.explain_r.ninputs = NELEM(s_inputs);
	m->u.explain_r.inputs = s_inputs;
	add(PROTO_EXPLAIN | PROTO_REPLY);
	m = add(PROTO_GC | PROTO_REPLY);
	m->u.gc_r.removed = 5;
	m = add(PROTO_SLOWEST | PROTO_REPLY);
	m->u.slowest_r.n = NELEM(s_slow);
	m->u.slowest_r.slow = s_slow;
	add(PROTO_SLOWEST | PROTO_REPLY);
	m = add(PROTO_ERROR);
	m->u.error.code = PROTO_E_LIMIT;
	m->u.error.message = "test id over 4096 bytes";
}

static int setup(void **state)
{
	(void)state;
	fill_str(path_max, TC_MAX_PATH, 'p');
	fill_str(test_max, TC_MAX_TEST, 't');
	fill_str(name_max, TC_MAX_NAME, 'n');
	fill_str(msg_max, TC_MAX_MESSAGE, 'm');
	make_inputs();
	make_records();
	make_results();
	make_entries();
	nsamples = 0;
	make_requests();
	make_replies();
	return 0;
}

/* --- comparing a decoded message with what was encoded --- */

/* NULL was encoded as ""; a decoded string is never NULL. */
static void str_eq(const char *want, const char *got)
{
	assert_non_null(got);
	assert_string_equal(want != NULL ? want : "", got);
}

static void inputs_eq(const tc_input *want, const tc_input *got, uint32_t n)
{
	if (n == 0) {
		assert_null(got);
		return;
	}
	for (uint32_t i = 0; i < n; i++) {
		assert_int_equal(want[i].kind, got[i].kind);
		str_eq(want[i].path, got[i].path);
		assert_memory_equal(want[i].digest, got[i].digest,
		    TC_DIGEST_LEN);
	}
}

static void entry_eq(const tc_entry *want, const tc_entry *got)
{
	assert_true(want->id == got->id);
	assert_memory_equal(want->key, got->key, TC_DIGEST_LEN);
	str_eq(want->project, got->project);
	str_eq(want->test, got->test);
	str_eq(want->root, got->root);
	assert_int_equal(want->outcome, got->outcome);
	assert_int_equal(want->flaky, got->flaky);
	assert_true(want->duration_us == got->duration_us);
	assert_true(want->created_ms == got->created_ms);
	assert_true(want->expires_ms == got->expires_ms);
	assert_true(want->hits == got->hits);
	assert_true(want->last_used_ms == got->last_used_ms);
	str_eq(want->message, got->message);
}

static void record_eq(const tc_record *want, const tc_record *got)
{
	assert_memory_equal(want->key, got->key, TC_DIGEST_LEN);
	str_eq(want->project, got->project);
	str_eq(want->test, got->test);
	str_eq(want->root, got->root);
	assert_int_equal(want->outcome, got->outcome);
	assert_true(want->duration_us == got->duration_us);
	assert_true(want->ttl_ms == got->ttl_ms);
	str_eq(want->message, got->message);
	assert_int_equal(want->ninputs, got->ninputs);
	inputs_eq(want->inputs, got->inputs, want->ninputs);
}

static void result_eq(const tc_result *want, const tc_result *got)
{
	assert_int_equal(want->found, got->found);
	if (!want->found) {
		assert_int_equal(got->ninputs, 0);
		assert_null(got->inputs);
		return;
	}
	assert_int_equal(want->outcome, got->outcome);
	assert_int_equal(want->flaky, got->flaky);
	assert_true(want->duration_us == got->duration_us);
	assert_true(want->created_ms == got->created_ms);
	assert_true(want->expires_ms == got->expires_ms);
	assert_int_equal(want->ninputs, got->ninputs);
	inputs_eq(want->inputs, got->inputs, want->ninputs);
}

static void status_eq(const tc_daemon_status *want,
    const tc_daemon_status *got)
{
	str_eq(want->version, got->version);
	assert_int_equal(want->pid, got->pid);
	assert_true(want->uptime_ms == got->uptime_ms);
	str_eq(want->socket, got->socket);
	str_eq(want->db, got->db);
	assert_true(want->entries == got->entries);
	assert_true(want->ttl_ms == got->ttl_ms);
	assert_true(want->max_entries == got->max_entries);
}

static void lists_eq(const proto_msg *want, const proto_msg *got)
{
	switch (want->type) {
	case PROTO_LOOKUP:
		assert_int_equal(want->u.lookup.n, got->u.lookup.n);
		if (want->u.lookup.n > 0)
			assert_memory_equal(want->u.lookup.keys,
			    got->u.lookup.keys,
			    want->u.lookup.n * TC_DIGEST_LEN);
		break;
	case PROTO_LOOKUP | PROTO_REPLY:
		assert_int_equal(want->u.lookup_r.n, got->u.lookup_r.n);
		for (uint32_t i = 0; i < want->u.lookup_r.n; i++)
			result_eq(&want->u.lookup_r.results[i],
			    &got->u.lookup_r.results[i]);
		break;
	case PROTO_RECORD:
		assert_int_equal(want->u.record.n, got->u.record.n);
		for (uint32_t i = 0; i < want->u.record.n; i++)
			record_eq(&want->u.record.records[i],
			    &got->u.record.records[i]);
		break;
	case PROTO_RECORD | PROTO_REPLY:
		assert_int_equal(want->u.record_r.n, got->u.record_r.n);
		assert_memory_equal(want->u.record_r.status,
		    got->u.record_r.status, want->u.record_r.n);
		break;
	case PROTO_STATS | PROTO_REPLY:
		assert_int_equal(want->u.stats_r.n, got->u.stats_r.n);
		for (uint32_t i = 0; i < want->u.stats_r.n; i++) {
			str_eq(want->u.stats_r.stats[i].name,
			    got->u.stats_r.stats[i].name);
			assert_true(want->u.stats_r.stats[i].value ==
			    got->u.stats_r.stats[i].value);
		}
		break;
	case PROTO_LIST | PROTO_REPLY:
		assert_int_equal(want->u.list_r.n, got->u.list_r.n);
		for (uint32_t i = 0; i < want->u.list_r.n; i++)
			entry_eq(&want->u.list_r.entries[i],
			    &got->u.list_r.entries[i]);
		assert_true(want->u.list_r.next == got->u.list_r.next);
		break;
	case PROTO_SLOWEST | PROTO_REPLY:
		assert_int_equal(want->u.slowest_r.n, got->u.slowest_r.n);
		for (uint32_t i = 0; i < want->u.slowest_r.n; i++) {
			const tc_slow *w = &want->u.slowest_r.slow[i];
			const tc_slow *g = &got->u.slowest_r.slow[i];

			str_eq(w->project, g->project);
			str_eq(w->test, g->test);
			assert_true(w->duration_us == g->duration_us);
			assert_true(w->hits == g->hits);
			assert_true(w->saved_us == g->saved_us);
		}
		break;
	default:
		fail_msg("no list in type 0x%02x", want->type);
	}
}

static void msg_eq(const proto_msg *want, const proto_msg *got)
{
	assert_int_equal(want->type, got->type);
	switch (want->type) {
	case PROTO_HELLO:
	case PROTO_HELLO | PROTO_REPLY:
		assert_int_equal(want->u.hello.version, got->u.hello.version);
		str_eq(want->u.hello.name, got->u.hello.name);
		break;
	case PROTO_STATUS:
	case PROTO_GC:
		break;
	case PROTO_STATUS | PROTO_REPLY:
		status_eq(&want->u.status_r, &got->u.status_r);
		break;
	case PROTO_INVALIDATE:
		assert_int_equal(want->u.invalidate.mode, got->u.invalidate.mode);
		assert_int_equal(want->u.invalidate.dry_run,
		    got->u.invalidate.dry_run);
		str_eq(want->u.invalidate.arg, got->u.invalidate.arg);
		assert_memory_equal(want->u.invalidate.key,
		    got->u.invalidate.key, TC_DIGEST_LEN);
		break;
	case PROTO_INVALIDATE | PROTO_REPLY:
		assert_true(want->u.invalidate_r.count ==
		    got->u.invalidate_r.count);
		break;
	case PROTO_STATS:
		assert_int_equal(want->u.stats.reset, got->u.stats.reset);
		break;
	case PROTO_LIST:
		str_eq(want->u.list.test_glob, got->u.list.test_glob);
		str_eq(want->u.list.path, got->u.list.path);
		assert_int_equal(want->u.list.limit, got->u.list.limit);
		assert_true(want->u.list.after == got->u.list.after);
		break;
	case PROTO_EXPLAIN:
		str_eq(want->u.explain.project, got->u.explain.project);
		str_eq(want->u.explain.test, got->u.explain.test);
		break;
	case PROTO_EXPLAIN | PROTO_REPLY:
		assert_int_equal(want->u.explain_r.found,
		    got->u.explain_r.found);
		if (!want->u.explain_r.found) {
			assert_null(got->u.explain_r.inputs);
			assert_null(got->u.explain_r.entry.test);
			break;
		}
		entry_eq(&want->u.explain_r.entry, &got->u.explain_r.entry);
		assert_int_equal(want->u.explain_r.ninputs,
		    got->u.explain_r.ninputs);
		inputs_eq(want->u.explain_r.inputs, got->u.explain_r.inputs,
		    want->u.explain_r.ninputs);
		break;
	case PROTO_GC | PROTO_REPLY:
		assert_true(want->u.gc_r.removed == got->u.gc_r.removed);
		break;
	case PROTO_SLOWEST:
		assert_int_equal(want->u.slowest.n, got->u.slowest.n);
		break;
	case PROTO_ERROR:
		assert_int_equal(want->u.error.code, got->u.error.code);
		str_eq(want->u.error.message, got->u.error.message);
		break;
	default:
		lists_eq(want, got);
	}
}

/* --- helpers --- */

static int is_zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i] != 0)
			return 0;
	return 1;
}

/* Decodes from an exact-size heap copy, so that valgrind sees any read
 * past the end; a failure must leave m empty and explain itself. */
static int decode_copy(const uint8_t *body, size_t len, proto_msg *m)
{
	uint8_t *copy = malloc(len > 0 ? len : 1);
	char why[128];
	int rc;

	assert_non_null(copy);
	if (len > 0)
		memcpy(copy, body, len);
	memset(why, 'x', sizeof(why));
	rc = proto_decode(copy, len, m, why, sizeof(why));
	free(copy);
	assert_non_null(memchr(why, '\0', sizeof(why)));
	if (rc == PROTO_OK) {
		assert_string_equal(why, "");
	} else {
		assert_true(why[0] != '\0');
		assert_true(is_zero(m, sizeof(*m)));
	}
	return rc;
}

static void expect_decode(const uint8_t *body, size_t len, int want)
{
	proto_msg m;
	int rc = decode_copy(body, len, &m);

	if (rc != want)
		fail_msg("decode of %zu bytes: %s, want %s", len,
		    proto_err_name(rc), proto_err_name(want));
	proto_msg_free(&m);
}

/* Encodes m alone and returns its frame's body length (b holds the frame). */
static size_t encode_one(proto_buf *b, const proto_msg *m)
{
	uint32_t len;

	proto_buf_reset(b);
	assert_int_equal(proto_encode(b, m), PROTO_OK);
	assert_true(b->len > TC_FRAME_HEADER);
	assert_int_equal(proto_frame_len(b->data, &len), PROTO_OK);
	assert_int_equal(len, b->len - TC_FRAME_HEADER);
	return len;
}

/* --- round trips --- */

static void test_roundtrip(void **state)
{
	proto_buf b;

	(void)state;
	proto_buf_init(&b);
	for (size_t i = 0; i < nsamples; i++) {
		proto_msg got;
		size_t len = encode_one(&b, &samples[i]);

		assert_int_equal(b.data[TC_FRAME_HEADER], samples[i].type);
		assert_int_equal(decode_copy(b.data + TC_FRAME_HEADER, len,
		    &got), PROTO_OK);
		msg_eq(&samples[i], &got);
		proto_msg_free(&got);
		assert_true(is_zero(&got.u, sizeof(got.u)));
	}
	proto_buf_free(&b);
	assert_null(b.data);
}

/* Frames appended one after another come back in order. */
static void test_pipeline(void **state)
{
	proto_buf b;
	size_t off = 0, n = 0;

	(void)state;
	proto_buf_init(&b);
	for (size_t i = 0; i < nsamples; i++)
		assert_int_equal(proto_encode(&b, &samples[i]), PROTO_OK);
	while (off < b.len) {
		proto_msg got;
		uint32_t len;

		assert_true(b.len - off > TC_FRAME_HEADER);
		assert_int_equal(proto_frame_len(b.data + off, &len), PROTO_OK);
		off += TC_FRAME_HEADER;
		assert_true(len <= b.len - off);
		assert_int_equal(proto_decode(b.data + off, len, &got, NULL, 0),
		    PROTO_OK);
		msg_eq(&samples[n++], &got);
		proto_msg_free(&got);
		off += len;
	}
	assert_int_equal(n, nsamples);
	proto_buf_free(&b);
}

/* Every prefix of every message is truncated; one byte more is trailing. */
static void test_truncated_trailing(void **state)
{
	proto_buf b;

	(void)state;
	proto_buf_init(&b);
	for (size_t i = 0; i < nsamples; i++) {
		size_t len = encode_one(&b, &samples[i]);
		uint8_t *more = malloc(len + 1);

		for (size_t cut = 0; cut < len; cut++)
			expect_decode(b.data + TC_FRAME_HEADER, cut,
			    PROTO_E_MALFORMED);
		assert_non_null(more);
		memcpy(more, b.data + TC_FRAME_HEADER, len);
		for (unsigned extra = 0; extra < 256; extra += 0x55) {
			more[len] = (uint8_t)extra;
			expect_decode(more, len + 1, PROTO_E_MALFORMED);
		}
		free(more);
	}
	proto_buf_free(&b);
}

/* --- hostile bodies, built by hand --- */

struct bb {
	uint8_t	*d;
	size_t	 n;
	size_t	 cap;
};

static void bb_start(struct bb *b, uint8_t type)
{
	b->cap = 256 * 1024;
	b->d = malloc(b->cap);
	assert_non_null(b->d);
	b->d[0] = type;
	b->n = 1;
}

static void bb_uint(struct bb *b, uint64_t v, size_t n)
{
	assert_true(b->n + n <= b->cap);
	for (size_t i = n; i-- > 0; v >>= 8)
		b->d[b->n + i] = (uint8_t)v;
	b->n += n;
}

static void bb_fill(struct bb *b, uint8_t c, size_t n)
{
	assert_true(b->n + n <= b->cap);
	memset(b->d + b->n, c, n);
	b->n += n;
}

/* A string of n bytes c. */
static void bb_str(struct bb *b, size_t n, char c)
{
	bb_uint(b, n, 4);
	bb_fill(b, (uint8_t)c, n);
}

static void bb_expect(struct bb *b, int want)
{
	expect_decode(b->d, b->n, want);
	free(b->d);
	b->d = NULL;
}

static void test_empty_and_unknown(void **state)
{
	static const uint8_t unknown[] = {
		0x00, 0x0b, 0x10, 0x7f, 0x80, 0x8b, 0x90, 0xfe
	};
	proto_msg m;
	char why[64];

	(void)state;
	expect_decode((const uint8_t *)"", 0, PROTO_E_MALFORMED);
	assert_int_equal(proto_decode(NULL, 0, &m, why, sizeof(why)),
	    PROTO_E_MALFORMED);
	for (size_t i = 0; i < NELEM(unknown); i++) {
		expect_decode(&unknown[i], 1, PROTO_E_UNKNOWN);
		assert_int_equal(proto_decode(&unknown[i], 1, &m, why,
		    sizeof(why)), PROTO_E_UNKNOWN);
		assert_non_null(strstr(why, "unknown"));
	}
	/* A tiny why is cut, never overrun. */
	memset(why, 'x', sizeof(why));
	assert_int_equal(proto_decode(unknown, 1, &m, why, 4),
	    PROTO_E_UNKNOWN);
	assert_int_equal(why[3], '\0');
	assert_int_equal(why[4], 'x');
}

static void test_frame_len(void **state)
{
	static const struct {
		uint8_t		hdr[TC_FRAME_HEADER];
		int		want;
		uint32_t	len;
	} cases[] = {
		{ { 0, 0, 0, 0 }, PROTO_E_MALFORMED, 0 },
		{ { 0, 0, 0, 1 }, PROTO_OK, 1 },
		{ { 0, 0x40, 0, 0 }, PROTO_OK, TC_MAX_FRAME },
		{ { 0, 0x40, 0, 1 }, PROTO_E_TOO_LARGE, TC_MAX_FRAME + 1 },
		{ { 0x7f, 0xff, 0xff, 0xff }, PROTO_E_TOO_LARGE, 0x7fffffff },
		{ { 0xff, 0xff, 0xff, 0xff }, PROTO_E_TOO_LARGE, 0xffffffff },
		{ { 0x01, 0x02, 0x03, 0x04 }, PROTO_E_TOO_LARGE, 0x01020304 },
		{ { 0, 0x01, 0x02, 0x03 }, PROTO_OK, 0x010203 },
	};

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		uint32_t len = 0;

		assert_int_equal(proto_frame_len(cases[i].hdr, &len),
		    cases[i].want);
		assert_int_equal(len, cases[i].len);
	}
}

static void test_strings(void **state)
{
	struct bb b;

	(void)state;
	bb_start(&b, PROTO_HELLO);	/* NUL inside */
	bb_uint(&b, 1, 4);
	bb_uint(&b, 3, 4);
	bb_fill(&b, 'a', 1);
	bb_fill(&b, 0, 1);
	bb_fill(&b, 'b', 1);
	bb_expect(&b, PROTO_E_MALFORMED);

	bb_start(&b, PROTO_HELLO);	/* NUL at the end */
	bb_uint(&b, 1, 4);
	bb_str(&b, 1, '\0');
	bb_expect(&b, PROTO_E_MALFORMED);

	bb_start(&b, PROTO_HELLO);
	bb_uint(&b, 1, 4);
	bb_str(&b, TC_MAX_NAME, 'a');
	bb_expect(&b, PROTO_OK);

	bb_start(&b, PROTO_HELLO);
	bb_uint(&b, 1, 4);
	bb_str(&b, TC_MAX_NAME + 1, 'a');
	bb_expect(&b, PROTO_E_LIMIT);

	bb_start(&b, PROTO_HELLO);	/* a length no body could hold */
	bb_uint(&b, 1, 4);
	bb_uint(&b, 0xffffffff, 4);
	bb_expect(&b, PROTO_E_LIMIT);

	bb_start(&b, PROTO_EXPLAIN);
	bb_str(&b, 0, 0);
	bb_str(&b, TC_MAX_TEST + 1, 't');
	bb_expect(&b, PROTO_E_LIMIT);

	bb_start(&b, PROTO_ERROR);
	bb_uint(&b, PROTO_E_STORE, 2);
	bb_str(&b, TC_MAX_MESSAGE + 1, 'm');
	bb_expect(&b, PROTO_E_LIMIT);

	bb_start(&b, PROTO_ERROR);	/* code 0 is no error */
	bb_uint(&b, 0, 2);
	bb_str(&b, 2, 'm');
	bb_expect(&b, PROTO_E_MALFORMED);
}

static void test_bools(void **state)
{
	static const uint8_t stats[][2] = {
		{ PROTO_STATS, 2 }, { PROTO_STATS, 0xff },
		{ PROTO_EXPLAIN | PROTO_REPLY, 2 },
	};
	static const uint8_t lookup_r[] = {	/* found = 2 */
		PROTO_LOOKUP | PROTO_REPLY, 0, 0, 0, 1, 2
	};
	static const uint8_t record_r[] = {	/* status 2 */
		PROTO_RECORD | PROTO_REPLY, 0, 0, 0, 2, 0, 2
	};
	static const uint8_t ok[] = { PROTO_STATS, 1 };

	(void)state;
	for (size_t i = 0; i < NELEM(stats); i++)
		expect_decode(stats[i], 2, PROTO_E_MALFORMED);
	expect_decode(lookup_r, sizeof(lookup_r), PROTO_E_MALFORMED);
	expect_decode(record_r, sizeof(record_r), PROTO_E_MALFORMED);
	expect_decode(ok, sizeof(ok), PROTO_OK);
}

/* One RECORD with one input, with a chosen outcome and input kind. */
static void bb_record(struct bb *b, uint8_t outcome, uint8_t kind)
{
	bb_start(b, PROTO_RECORD);
	bb_uint(b, 1, 4);
	bb_fill(b, 0xab, TC_DIGEST_LEN);
	bb_str(b, 1, 'p');
	bb_str(b, 4, 't');
	bb_str(b, 2, 'r');
	bb_uint(b, outcome, 1);
	bb_uint(b, 100, 8);
	bb_uint(b, 0, 8);
	bb_str(b, 0, 0);
	bb_uint(b, 1, 4);
	bb_uint(b, kind, 1);
	bb_str(b, 5, 'f');
	bb_fill(b, 0xcd, TC_DIGEST_LEN);
}

static void test_enums(void **state)
{
	struct bb b;
	uint8_t inv[2 + 4 + TC_DIGEST_LEN + 1] = { PROTO_INVALIDATE };

	(void)state;
	for (unsigned o = 0; o < 256; o++) {
		bb_record(&b, (uint8_t)o, TC_INPUT_FOUND);
		bb_expect(&b, o >= TC_PASS && o <= TC_ERROR ? PROTO_OK :
		    PROTO_E_MALFORMED);
	}
	for (unsigned k = 0; k < 256; k++) {
		bb_record(&b, TC_FAIL, (uint8_t)k);
		bb_expect(&b, k <= TC_INPUT_INTERFACE ? PROTO_OK :
		    PROTO_E_MALFORMED);
	}
	for (unsigned mode = 0; mode < 256; mode++) {
		inv[1] = (uint8_t)mode;
		expect_decode(inv, sizeof(inv), mode >= TC_INV_PATH &&
		    mode <= TC_INV_ALL ? PROTO_OK : PROTO_E_MALFORMED);
	}
	inv[1] = TC_INV_ALL;
	inv[2] = 2;				/* dry_run */
	expect_decode(inv, sizeof(inv), PROTO_E_MALFORMED);
}

static void bb_list(struct bb *b, uint32_t limit)
{
	bb_start(b, PROTO_LIST);
	bb_str(b, 1, '*');
	bb_str(b, 0, 0);
	bb_uint(b, limit, 4);
	bb_uint(b, 0, 8);
}

static void test_counts(void **state)
{
	struct bb b;

	(void)state;
	bb_start(&b, PROTO_LOOKUP);
	bb_uint(&b, TC_MAX_BATCH + 1, 4);
	bb_fill(&b, 1, (TC_MAX_BATCH + 1) * TC_DIGEST_LEN);
	bb_expect(&b, PROTO_E_LIMIT);

	bb_start(&b, PROTO_LOOKUP);
	bb_uint(&b, 0xffffffff, 4);
	bb_expect(&b, PROTO_E_LIMIT);

	bb_start(&b, PROTO_LOOKUP);
	bb_uint(&b, TC_MAX_BATCH, 4);
	bb_fill(&b, 1, TC_MAX_BATCH * TC_DIGEST_LEN);
	bb_expect(&b, PROTO_OK);

	bb_start(&b, PROTO_RECORD | PROTO_REPLY);
	bb_uint(&b, TC_MAX_BATCH + 1, 4);
	bb_fill(&b, 0, TC_MAX_BATCH + 1);
	bb_expect(&b, PROTO_E_LIMIT);

	bb_start(&b, PROTO_STATS | PROTO_REPLY);
	bb_uint(&b, TC_MAX_STATS + 1, 4);
	for (unsigned i = 0; i <= TC_MAX_STATS; i++) {
		bb_str(&b, 1, 'a');
		bb_uint(&b, i, 8);
	}
	bb_expect(&b, PROTO_E_LIMIT);

	bb_start(&b, PROTO_LIST | PROTO_REPLY);
	bb_uint(&b, TC_MAX_LIST + 1, 4);
	bb_expect(&b, PROTO_E_LIMIT);

	bb_record(&b, TC_PASS, TC_INPUT_FILE);	/* inputs: 1 -> over */
	b.n -= 4 + 1 + 4 + 5 + TC_DIGEST_LEN;
	bb_uint(&b, TC_MAX_INPUTS + 1, 4);
	bb_expect(&b, PROTO_E_LIMIT);

	bb_list(&b, 0);
	bb_expect(&b, PROTO_E_MALFORMED);
	bb_list(&b, 1);
	bb_expect(&b, PROTO_OK);
	bb_list(&b, TC_MAX_LIST);
	bb_expect(&b, PROTO_OK);
	bb_list(&b, TC_MAX_LIST + 1);
	bb_expect(&b, PROTO_E_LIMIT);

	/* SLOWEST n: 1..TC_MAX_SLOWEST, as LIST's limit. */
	static const struct { uint32_t n; int want; } slowest[] = {
		{ 0, PROTO_E_MALFORMED }, { 1, PROTO_OK },
		{ TC_MAX_SLOWEST, PROTO_OK },
		{ TC_MAX_SLOWEST + 1, PROTO_E_LIMIT },
		{ UINT32_MAX, PROTO_E_LIMIT },
	};
	for (size_t i = 0; i < NELEM(slowest); i++) {
		bb_start(&b, PROTO_SLOWEST);
		bb_uint(&b, slowest[i].n, 4);
		bb_expect(&b, slowest[i].want);
	}
	bb_start(&b, PROTO_SLOWEST | PROTO_REPLY);
	bb_uint(&b, TC_MAX_SLOWEST + 1, 4);
	bb_expect(&b, PROTO_E_LIMIT);
	/* A project over its 256 bytes in a reply. */
	bb_start(&b, PROTO_SLOWEST | PROTO_REPLY);
	bb_uint(&b, 1, 4);
	bb_str(&b, TC_MAX_NAME + 1, 'p');
	bb_str(&b, 1, 't');
	bb_fill(&b, 0, 3 * 8);
	bb_expect(&b, PROTO_E_LIMIT);
}

/*
 * Counts at their limits in bodies one byte too short for that many of the
 * smallest possible elements are refused before any element is read.
 */
static void test_count_past_end(void **state)
{
	static const struct {
		uint8_t		type;
		uint32_t	count;
		size_t		min;	/* smallest element on the wire */
	} cases[] = {
		{ PROTO_LOOKUP, TC_MAX_BATCH, TC_DIGEST_LEN },
		{ PROTO_LOOKUP | PROTO_REPLY, TC_MAX_BATCH, 1 },
		{ PROTO_RECORD | PROTO_REPLY, TC_MAX_BATCH, 1 },
		{ PROTO_RECORD, 1000, 69 },
		{ PROTO_STATS | PROTO_REPLY, TC_MAX_STATS, 4 + 8 },
		{ PROTO_LIST | PROTO_REPLY, TC_MAX_LIST, 98 },
		{ PROTO_SLOWEST | PROTO_REPLY, TC_MAX_SLOWEST, 4 + 4 + 3 * 8 },
	};
	struct bb b;
	proto_msg m;
	char why[128];

	(void)state;
	for (size_t i = 0; i < NELEM(cases); i++) {
		bb_start(&b, cases[i].type);
		bb_uint(&b, cases[i].count, 4);
		bb_fill(&b, 0, cases[i].count * cases[i].min - 1);
		assert_int_equal(proto_decode(b.d, b.n, &m, why, sizeof(why)),
		    PROTO_E_MALFORMED);
		assert_non_null(strstr(why, "count past the end"));
		bb_expect(&b, PROTO_E_MALFORMED);
		bb_start(&b, cases[i].type);
		bb_uint(&b, cases[i].count, 4);
		bb_expect(&b, PROTO_E_MALFORMED);
	}
}

static uint64_t vm_bytes(void)
{
	char buf[64];
	ssize_t n;
	int fd = open("/proc/self/statm", O_RDONLY);
	uint64_t pages;

	if (fd == -1)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	buf[strcspn(buf, " ")] = '\0';
	if (parse_u64(buf, &pages) == -1)
		return 0;
	return pages * (uint64_t)sysconf(_SC_PAGESIZE);
}

/*
 * In a child with little address space to spare, counts at their limits in
 * tiny bodies must come back MALFORMED, not out of memory: nothing may be
 * allocated for a count the body cannot hold.
 */
static int hostile_counts_child(void)
{
	static const uint8_t bodies[][80] = {
		{ PROTO_RECORD, 0, 0, 0x10, 0 },
		{ PROTO_LOOKUP | PROTO_REPLY, 0, 0, 0x10, 0, 1, 1, 0 },
		{ PROTO_LIST | PROTO_REPLY, 0, 0, 0x03, 0xe8 },
		{ PROTO_EXPLAIN | PROTO_REPLY, 1 },
		/* one record of empty strings claiming TC_MAX_INPUTS inputs */
		{ PROTO_RECORD, 0, 0, 0, 1, [49] = TC_PASS,
		  [70] = 0, 0, 0x40, 0 },
	};
	proto_msg m;

	for (size_t i = 0; i < NELEM(bodies); i++) {
		if (proto_decode(bodies[i], sizeof(bodies[i]), &m, NULL, 0) !=
		    PROTO_E_MALFORMED)
			return 1;
	}
	return 0;
}

static void test_huge_counts(void **state)
{
	const char *preload = getenv("LD_PRELOAD");
	uint64_t vm = vm_bytes();
	pid_t pid;
	int st;

	(void)state;
	if (preload != NULL && strstr(preload, "vgpreload") != NULL)
		skip();		/* valgrind owns the address space */
	assert_true(vm > 0);
	pid = fork();
	assert_true(pid != -1);
	if (pid == 0) {
		struct rlimit rl;

		rl.rlim_cur = rl.rlim_max = vm + 256 * 1024;
		if (setrlimit(RLIMIT_AS, &rl) == -1)
			_exit(2);
		_exit(hostile_counts_child());
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* --- encoding over limits --- */

/* enc must fail with want and leave b exactly as it was. */
static void expect_encode_fails(proto_buf *b, const proto_msg *m, int want)
{
	size_t len = b->len;
	uint8_t *copy = malloc(len);

	assert_non_null(copy);
	memcpy(copy, b->data, len);
	assert_int_equal(proto_encode(b, m), want);
	assert_int_equal(b->len, len);
	assert_memory_equal(b->data, copy, len);
	free(copy);
}

static void test_encode_limits(void **state)
{
	char over_path[TC_MAX_PATH + 2], over_name[TC_MAX_NAME + 2];
	char over_msg[TC_MAX_MESSAGE + 2];
	tc_input in = { .kind = TC_INPUT_FILE, .path = "a" };
	tc_record r = { .project = "p", .test = "t", .root = "/",
	    .outcome = TC_PASS, .ninputs = 1, .inputs = &in };
	proto_msg m = { .type = PROTO_RECORD };
	proto_buf b;

	(void)state;
	fill_str(over_path, TC_MAX_PATH + 1, 'p');
	fill_str(over_name, TC_MAX_NAME + 1, 'n');
	fill_str(over_msg, TC_MAX_MESSAGE + 1, 'm');
	proto_buf_init(&b);
	assert_int_equal(proto_encode(&b, &samples[0]), PROTO_OK);
	m.u.record.n = 1;
	m.u.record.records = &r;
	assert_int_equal(proto_encode(&b, &m), PROTO_OK);

	r.test = over_path;
	expect_encode_fails(&b, &m, PROTO_E_LIMIT);
	r.test = "t";
	r.project = over_name;
	expect_encode_fails(&b, &m, PROTO_E_LIMIT);
	r.project = "p";
	r.root = over_path;
	expect_encode_fails(&b, &m, PROTO_E_LIMIT);
	r.root = "/";
	r.message = over_msg;
	expect_encode_fails(&b, &m, PROTO_E_LIMIT);
	r.message = NULL;
	in.path = over_path;
	expect_encode_fails(&b, &m, PROTO_E_LIMIT);
	in.path = "a";
	in.kind = TC_INPUT_INTERFACE + 1;
	expect_encode_fails(&b, &m, PROTO_E_LIMIT);
	in.kind = TC_INPUT_INTERFACE;
	assert_int_equal(proto_encode(&b, &m), PROTO_OK);
	in.kind = TC_INPUT_ENV;
	r.outcome = 0;
	expect_encode_fails(&b, &m, PROTO_E_LIMIT);
	r.outcome = 5;
	expect_encode_fails(&b, &m, PROTO_E_LIMIT);
	r.outcome = TC_SKIP;
	r.inputs = NULL;		/* a count without a list */
	expect_encode_fails(&b, &m, PROTO_E_LIMIT);
	r.inputs = &in;
	assert_int_equal(proto_encode(&b, &m), PROTO_OK);

	m = (proto_msg){ .type = PROTO_HELLO };
	m.u.hello.name = over_name;
	expect_encode_fails(&b, &m, PROTO_E_LIMIT);
	m = (proto_msg){ .type = PROTO_LIST };
	expect_encode_fails(&b, &m, PROTO_E_LIMIT);	/* limit 0 */
	m.u.list.limit = TC_MAX_LIST + 1;
	expect_encode_fails(&b, &m, PROTO_E_LIMIT);
	m.u.list.limit = 10;
	m.u.list.test_glob = over_path;
	expect_encode_fails(&b, &m, PROTO_E_LIMIT);
	m = (proto_msg){ .type = PROTO_INVALIDATE };
	expect_encode_fails(&b, &m, PROTO_E_LIMIT);	/* mode 0 */
	m = (proto_msg){ .type = PROTO_SLOWEST };
	expect_encode_fails(&b, &m, PROTO_E_LIMIT);	/* n 0 */
	m.u.slowest.n = TC_MAX_SLOWEST + 1;
	expect_encode_fails(&b, &m, PROTO_E_LIMIT);
	m = (proto_msg){ .type = PROTO_SLOWEST | PROTO_REPLY };
	m.u.slowest_r.n = 1;
	m.u.slowest_r.slow = &(tc_slow){ .project = over_path };
	expect_encode_fails(&b, &m, PROTO_E_LIMIT);	/* project > 256 */
	m = (proto_msg){ .type = 0x0b };
	expect_encode_fails(&b, &m, PROTO_E_UNKNOWN);
	proto_buf_free(&b);
}

static void test_encode_counts(void **state)
{
	tc_input *in = calloc(TC_MAX_INPUTS + 1, sizeof(*in));
	uint8_t (*keys)[TC_DIGEST_LEN] = calloc(TC_MAX_BATCH + 1,
	    TC_DIGEST_LEN);
	tc_record r = { .outcome = TC_PASS, .inputs = in };
	proto_msg m = { .type = PROTO_RECORD };
	proto_buf b;

	(void)state;
	assert_non_null(in);
	assert_non_null(keys);
	proto_buf_init(&b);
	assert_int_equal(proto_encode(&b, &samples[1]), PROTO_OK);
	m.u.record.n = 1;
	m.u.record.records = &r;
	r.ninputs = TC_MAX_INPUTS + 1;
	expect_encode_fails(&b, &m, PROTO_E_LIMIT);
	r.ninputs = TC_MAX_INPUTS;
	assert_int_equal(proto_encode(&b, &m), PROTO_OK);

	m = (proto_msg){ .type = PROTO_LOOKUP };
	m.u.lookup.keys = (const uint8_t (*)[TC_DIGEST_LEN])keys;
	m.u.lookup.n = TC_MAX_BATCH + 1;
	expect_encode_fails(&b, &m, PROTO_E_LIMIT);
	m = (proto_msg){ .type = PROTO_STATS | PROTO_REPLY };
	m.u.stats_r.n = TC_MAX_STATS + 1;
	m.u.stats_r.stats = (tc_stat *)in;	/* never read: over first */
	expect_encode_fails(&b, &m, PROTO_E_LIMIT);
	m = (proto_msg){ .type = PROTO_LIST | PROTO_REPLY };
	m.u.list_r.n = TC_MAX_LIST + 1;
	m.u.list_r.entries = (tc_entry *)in;
	expect_encode_fails(&b, &m, PROTO_E_LIMIT);
	m = (proto_msg){ .type = PROTO_SLOWEST | PROTO_REPLY };
	m.u.slowest_r.n = TC_MAX_SLOWEST + 1;
	m.u.slowest_r.slow = (tc_slow *)in;
	expect_encode_fails(&b, &m, PROTO_E_LIMIT);
	proto_buf_free(&b);
	free(keys);
	free(in);
}

/*
 * Records of maximal strings: 439 of them fit one frame, 440 do not.  The
 * body is 1 + 4 + n * (69 + 256 + 4096 + 4096 + 1024) bytes.
 */
static void test_encode_frame_limit(void **state)
{
	enum { FIT = 439, WIRE = 69 + TC_MAX_NAME + TC_MAX_TEST +
	    TC_MAX_PATH + TC_MAX_MESSAGE };
	tc_record *r = calloc(FIT + 1, sizeof(*r));
	proto_msg m = { .type = PROTO_RECORD }, got;
	proto_buf b;
	size_t len;

	(void)state;
	_Static_assert(5 + FIT * (size_t)WIRE <= TC_MAX_FRAME, "fits");
	_Static_assert(5 + (FIT + 1) * (size_t)WIRE > TC_MAX_FRAME, "over");
	assert_non_null(r);
	for (size_t i = 0; i <= FIT; i++) {
		r[i] = s_records[1];
		r[i].ninputs = 0;
		r[i].inputs = NULL;
	}
	proto_buf_init(&b);
	assert_int_equal(proto_encode(&b, &samples[0]), PROTO_OK);
	m.u.record.records = r;
	m.u.record.n = FIT + 1;
	expect_encode_fails(&b, &m, PROTO_E_LIMIT);
	/* the buffer grew to one frame past its content at most */
	assert_true(b.cap <= b.len + TC_FRAME_HEADER + TC_MAX_FRAME);

	m.u.record.n = FIT;
	len = encode_one(&b, &m);
	assert_int_equal(len, 5 + FIT * (size_t)WIRE);
	assert_int_equal(decode_copy(b.data + TC_FRAME_HEADER, len, &got),
	    PROTO_OK);
	msg_eq(&m, &got);
	proto_msg_free(&got);
	proto_buf_free(&b);
	free(r);
}

/* An error reply is always sendable: its message is cut, not refused. */
static void test_encode_error_cut(void **state)
{
	char longmsg[3 * TC_MAX_MESSAGE];
	proto_msg m = { .type = PROTO_ERROR }, got;
	proto_buf b;
	size_t len;

	(void)state;
	fill_str(longmsg, sizeof(longmsg) - 1, 'e');
	m.u.error.code = PROTO_E_STORE;
	m.u.error.message = longmsg;
	proto_buf_init(&b);
	len = encode_one(&b, &m);
	assert_int_equal(decode_copy(b.data + TC_FRAME_HEADER, len, &got),
	    PROTO_OK);
	assert_int_equal(got.u.error.code, PROTO_E_STORE);
	assert_int_equal(strlen(got.u.error.message), TC_MAX_MESSAGE);
	proto_msg_free(&got);
	proto_buf_free(&b);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(proto_type_name(PROTO_LOOKUP), "LOOKUP");
	assert_string_equal(proto_type_name(PROTO_GC | PROTO_REPLY),
	    "GC reply");
	assert_string_equal(proto_type_name(PROTO_ERROR), "ERROR");
	assert_string_equal(proto_type_name(0), "unknown");
	assert_string_equal(proto_type_name(0x80), "unknown");
	assert_string_equal(proto_type_name(0x8b), "unknown");
	assert_string_equal(proto_type_name(PROTO_SLOWEST), "SLOWEST");
	assert_string_equal(proto_type_name(PROTO_SLOWEST | PROTO_REPLY),
	    "SLOWEST reply");
	assert_string_equal(proto_type_name(-1), "unknown");
	assert_string_equal(proto_type_name(1000), "unknown");
	assert_string_equal(proto_err_name(PROTO_OK), "OK");
	assert_string_equal(proto_err_name(PROTO_E_TOO_LARGE), "TOO_LARGE");
	assert_string_equal(proto_err_name(PROTO_E_BUSY), "BUSY");
	assert_string_equal(proto_err_name(-1), "NOMEM");
	assert_string_equal(proto_err_name(10), "unknown");
	assert_string_equal(proto_err_name(-7), "unknown");
	for (int t = 0; t < 256; t++)
		assert_non_null(proto_type_name(t));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_pipeline),
		cmocka_unit_test(test_truncated_trailing),
		cmocka_unit_test(test_empty_and_unknown),
		cmocka_unit_test(test_frame_len),
		cmocka_unit_test(test_strings),
		cmocka_unit_test(test_bools),
		cmocka_unit_test(test_enums),
		cmocka_unit_test(test_counts),
		cmocka_unit_test(test_count_past_end),
		cmocka_unit_test(test_huge_counts),
		cmocka_unit_test(test_encode_limits),
		cmocka_unit_test(test_encode_counts),
		cmocka_unit_test(test_encode_frame_limit),
		cmocka_unit_test(test_encode_error_cut),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, setup, NULL);
}
