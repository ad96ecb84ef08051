/*
 * Writes the seed corpus of tests/fuzz/corpus: one frame of every message
 * type both ways, a whole session as one stream, fields at their limits,
 * and frames broken in each way the decoder must refuse.  The frames come
 * from proto_encode, so the seeds follow the codec when it changes.
 * Usage: seeds DIR  (see `make fuzz-seeds`).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../proto/proto.h"

static const char *outdir;
static int failed;

static void save(const char *name, const uint8_t *p, size_t n)
{
	char path[4096];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", outdir, name);
	if ((f = fopen(path, "wb")) == NULL) {
		fprintf(stderr, "seeds: %s: %s\n", path, strerror(errno));
		failed = 1;
		return;
	}
	if ((n > 0 && fwrite(p, 1, n, f) != n) | (fclose(f) != 0)) {
		fprintf(stderr, "seeds: %s: write failed\n", path);
		failed = 1;
	}
}

/* Appends m's frame to b; a seed that does not encode is a bug here. */
static void enc(proto_buf *b, const proto_msg *m)
{
	int rc = proto_encode(b, m);

	if (rc != PROTO_OK) {
		fprintf(stderr, "seeds: type 0x%02x does not encode: %s\n",
		    m->type, proto_err_name(rc));
		exit(1);
	}
}

static void seed(const char *name, const proto_msg *m)
{
	proto_buf b;

	proto_buf_init(&b);
	enc(&b, m);
	save(name, b.data, b.len);
	proto_buf_free(&b);
}

/* m's frame with the body byte at off (0: the type) replaced by v. */
static void seed_patched(const char *name, const proto_msg *m, size_t off,
    uint8_t v)
{
	proto_buf b;

	proto_buf_init(&b);
	enc(&b, m);
	b.data[TC_FRAME_HEADER + off] = v;
	save(name, b.data, b.len);
	proto_buf_free(&b);
}

/* m's frame with its last cut bytes gone, the header saying so. */
static void seed_cut(const char *name, const proto_msg *m, size_t cut)
{
	proto_buf b;
	size_t n;

	proto_buf_init(&b);
	enc(&b, m);
	n = b.len - TC_FRAME_HEADER - cut;
	b.data[0] = (uint8_t)(n >> 24);
	b.data[1] = (uint8_t)(n >> 16);
	b.data[2] = (uint8_t)(n >> 8);
	b.data[3] = (uint8_t)n;
	save(name, b.data, b.len - cut);
	proto_buf_free(&b);
}

static void seed_raw(const char *name, const char *bytes, size_t n)
{
	save(name, (const uint8_t *)bytes, n);
}

static void fill(uint8_t *d, uint8_t v)
{
	for (size_t i = 0; i < TC_DIGEST_LEN; i++)
		d[i] = (uint8_t)(v + i);
}

int main(int argc, char **argv)
{
	static char longpath[TC_MAX_PATH + 1], longname[TC_MAX_NAME + 1];
	static char longmsg[TC_MAX_MESSAGE + 1];
	uint8_t keys[3][TC_DIGEST_LEN];
	tc_input in[4] = {
		{ TC_INPUT_FILE, "src/a.py", { 0 } },
		{ TC_INPUT_FOUND, "/usr/lib/python3/x.py", { 0 } },
		{ TC_INPUT_ENV, "@platform", { 0 } },
		{ TC_INPUT_INTERFACE, "src/b.py", { 0 } },
	};
	tc_record rec[2];
	tc_result res[2];
	tc_entry ent[2];
	tc_stat st[3] = { { "hits", 12 }, { "misses", 3 }, { "records", 90061 } };
	uint8_t status[2] = { TC_STORED, TC_STORED_FLAKY };
	proto_msg m;
	proto_buf b;

	if (argc != 2) {
		fprintf(stderr, "usage: seeds DIR\n");
		return 2;
	}
	outdir = argv[1];
	memset(longpath, 'p', TC_MAX_PATH);
	longpath[0] = '/';
	memset(longname, 'n', TC_MAX_NAME);
	memset(longmsg, 'm', TC_MAX_MESSAGE);
	for (int i = 0; i < 3; i++)
		fill(keys[i], (uint8_t)(0x10 * i));
	for (int i = 0; i < 4; i++)
		fill(in[i].digest, (uint8_t)(0x40 + i));

	memset(rec, 0, sizeof rec);
	fill(rec[0].key, 1);
	rec[0].project = "proj";
	rec[0].test = "tests/test_a.py::test_one[x-1]";
	rec[0].root = "/home/u/proj";
	rec[0].outcome = TC_PASS;
	rec[0].duration_us = 1500000;
	rec[0].ttl_ms = 86400000;
	rec[0].message = NULL;
	rec[0].ninputs = 4;
	rec[0].inputs = in;
	rec[1] = rec[0];
	fill(rec[1].key, 2);
	rec[1].outcome = TC_FAIL;
	rec[1].message = "AssertionError: 1 != 2";
	rec[1].ninputs = 0;
	rec[1].inputs = NULL;

	memset(res, 0, sizeof res);
	res[0].found = 1;
	res[0].outcome = TC_PASS;
	res[0].duration_us = 250;
	res[0].created_ms = 1763700000000ull;
	res[0].expires_ms = 1764300000000ull;
	res[0].ninputs = 1;
	res[0].inputs = &in[1];

	memset(ent, 0, sizeof ent);
	ent[0].id = 7;
	fill(ent[0].key, 3);
	ent[0].project = "proj";
	ent[0].test = "tests/test_a.py::test_one";
	ent[0].root = "/home/u/proj";
	ent[0].outcome = TC_SKIP;
	ent[0].duration_us = 61000000;
	ent[0].created_ms = 1763700000000ull;
	ent[0].expires_ms = 1764300000000ull;
	ent[0].hits = 4;
	ent[0].last_used_ms = 1763800000000ull;
	ent[0].message = "skipped: no network";
	ent[1] = ent[0];
	ent[1].id = 8;
	ent[1].outcome = TC_ERROR;
	ent[1].flaky = 1;
	ent[1].message = "";

	/* --- requests --- */
	memset(&m, 0, sizeof m);
	m.type = PROTO_HELLO;
	m.u.hello.version = TC_PROTO_VERSION;
	m.u.hello.name = "tcache 0.1.0";
	seed("req-hello", &m);
	m.u.hello.version = 2;
	seed("req-hello-v2", &m);
	m.u.hello.name = longname;
	m.u.hello.version = TC_PROTO_VERSION;
	seed("req-hello-longest-name", &m);
	m.u.hello.name = "30s";		/* a number the parsers take */
	seed("req-hello-duration", &m);
	m.u.hello.name = "18446744073709551615";
	seed("req-hello-u64max", &m);
	m.u.hello.name = "1.000001";
	seed("req-hello-seconds", &m);

	memset(&m, 0, sizeof m);
	m.type = PROTO_STATUS;
	seed("req-status", &m);
	m.type = PROTO_GC;
	seed("req-gc", &m);

	memset(&m, 0, sizeof m);
	m.type = PROTO_LOOKUP;
	seed("req-lookup-0", &m);
	m.u.lookup.n = 3;
	m.u.lookup.keys = (const uint8_t (*)[TC_DIGEST_LEN])keys;
	seed("req-lookup-3", &m);

	memset(&m, 0, sizeof m);
	m.type = PROTO_RECORD;
	m.u.record.n = 2;
	m.u.record.records = rec;
	seed("req-record-2", &m);
	m.u.record.n = 1;
	seed("req-record-1", &m);

	{
		tc_record big = rec[0];
		tc_input bigin = { TC_INPUT_FILE, longpath, { 0 } };

		big.project = longname;
		big.root = longpath;
		big.message = longmsg;
		big.ninputs = 1;
		big.inputs = &bigin;
		m.u.record.n = 1;
		m.u.record.records = &big;
		seed("req-record-longest", &m);
	}

	memset(&m, 0, sizeof m);
	m.type = PROTO_INVALIDATE;
	m.u.invalidate.mode = TC_INV_PATH;
	m.u.invalidate.arg = "/home/u/proj/src/a.py";
	seed("req-invalidate-path", &m);
	m.u.invalidate.mode = TC_INV_TEST;
	m.u.invalidate.arg = "tests/*::test_[ab]?";
	m.u.invalidate.dry_run = 1;
	seed("req-invalidate-test-dry", &m);
	m.u.invalidate.mode = TC_INV_KEY;
	m.u.invalidate.arg = "";
	fill(m.u.invalidate.key, 9);
	seed("req-invalidate-key", &m);
	m.u.invalidate.mode = TC_INV_ALL;
	seed("req-invalidate-all", &m);

	memset(&m, 0, sizeof m);
	m.type = PROTO_STATS;
	seed("req-stats", &m);
	m.u.stats.reset = 1;
	seed("req-stats-reset", &m);

	memset(&m, 0, sizeof m);
	m.type = PROTO_LIST;
	m.u.list.test_glob = "*test_a*";
	m.u.list.path = "src/a.py";
	m.u.list.limit = 100;
	m.u.list.after = 7;
	seed("req-list", &m);
	m.u.list.limit = TC_MAX_LIST;
	m.u.list.test_glob = "";
	m.u.list.path = "";
	seed("req-list-max", &m);

	memset(&m, 0, sizeof m);
	m.type = PROTO_EXPLAIN;
	m.u.explain.project = "proj";
	m.u.explain.test = "tests/test_a.py::test_one";
	seed("req-explain", &m);

	/* --- replies --- */
	memset(&m, 0, sizeof m);
	m.type = PROTO_HELLO | PROTO_REPLY;
	m.u.hello.version = TC_PROTO_VERSION;
	m.u.hello.name = "tcached 0.1.0";
	seed("rep-hello", &m);

	memset(&m, 0, sizeof m);
	m.type = PROTO_STATUS | PROTO_REPLY;
	m.u.status_r.version = "0.1.0";
	m.u.status_r.pid = 4242;
	m.u.status_r.uptime_ms = 3723000;
	m.u.status_r.socket = "/run/user/1000/tcache/tcached.sock";
	m.u.status_r.db = "/home/u/.local/state/tcache/tcache.db";
	m.u.status_r.entries = 1234;
	m.u.status_r.ttl_ms = 604800000;
	m.u.status_r.max_entries = 1000000;
	seed("rep-status", &m);

	memset(&m, 0, sizeof m);
	m.type = PROTO_LOOKUP | PROTO_REPLY;
	m.u.lookup_r.n = 2;
	m.u.lookup_r.results = res;
	seed("rep-lookup-2", &m);

	memset(&m, 0, sizeof m);
	m.type = PROTO_RECORD | PROTO_REPLY;
	m.u.record_r.n = 2;
	m.u.record_r.status = status;
	seed("rep-record-2", &m);

	memset(&m, 0, sizeof m);
	m.type = PROTO_INVALIDATE | PROTO_REPLY;
	m.u.invalidate_r.count = 17;
	seed("rep-invalidate", &m);

	memset(&m, 0, sizeof m);
	m.type = PROTO_STATS | PROTO_REPLY;
	m.u.stats_r.n = 3;
	m.u.stats_r.stats = st;
	seed("rep-stats", &m);

	memset(&m, 0, sizeof m);
	m.type = PROTO_LIST | PROTO_REPLY;
	m.u.list_r.n = 2;
	m.u.list_r.entries = ent;
	m.u.list_r.next = 9;
	seed("rep-list-2", &m);
	m.u.list_r.n = 0;
	m.u.list_r.entries = NULL;
	m.u.list_r.next = 0;
	seed("rep-list-0", &m);

	memset(&m, 0, sizeof m);
	m.type = PROTO_EXPLAIN | PROTO_REPLY;
	seed("rep-explain-none", &m);
	m.u.explain_r.found = 1;
	m.u.explain_r.entry = ent[0];
	m.u.explain_r.ninputs = 4;
	m.u.explain_r.inputs = in;
	seed("rep-explain", &m);

	memset(&m, 0, sizeof m);
	m.type = PROTO_GC | PROTO_REPLY;
	m.u.gc_r.removed = 3;
	seed("rep-gc", &m);

	memset(&m, 0, sizeof m);
	m.type = PROTO_SLOWEST;
	m.u.slowest.n = 10;
	seed("req-slowest", &m);
	seed_patched("bad-slowest-zero", &m, 4, 0);
	m.type = PROTO_SLOWEST | PROTO_REPLY;
	m.u.slowest_r.n = 2;
	m.u.slowest_r.slow = (tc_slow[]){
		{ "", "tests/test_a.py::test_slow", 90000000, 3, 270000000 },
		{ "proj", "t", 1, 0, 0 },
	};
	seed("rep-slowest", &m);
	seed_cut("bad-slowest-reply-short", &m, 5);

	memset(&m, 0, sizeof m);
	m.type = PROTO_ERROR;
	m.u.error.code = PROTO_E_STORE;
	m.u.error.message = "database or disk is full";
	seed("rep-error", &m);

	/* --- a session: HELLO, LOOKUP, RECORD, STATS in one stream --- */
	proto_buf_init(&b);
	memset(&m, 0, sizeof m);
	m.type = PROTO_HELLO;
	m.u.hello.version = TC_PROTO_VERSION;
	m.u.hello.name = "pytest";
	enc(&b, &m);
	memset(&m, 0, sizeof m);
	m.type = PROTO_LOOKUP;
	m.u.lookup.n = 1;
	m.u.lookup.keys = (const uint8_t (*)[TC_DIGEST_LEN])keys;
	enc(&b, &m);
	memset(&m, 0, sizeof m);
	m.type = PROTO_RECORD;
	m.u.record.n = 1;
	m.u.record.records = rec;
	enc(&b, &m);
	memset(&m, 0, sizeof m);
	m.type = PROTO_STATS;
	enc(&b, &m);
	save("stream-session", b.data, b.len);
	/* The same, its last frame cut short: the daemon would wait. */
	save("stream-session-cut", b.data, b.len - 1);
	proto_buf_free(&b);

	/* --- frames the decoder must refuse --- */
	memset(&m, 0, sizeof m);
	m.type = PROTO_RECORD;
	m.u.record.n = 1;
	m.u.record.records = rec;
	seed_cut("bad-record-truncated", &m, 1);
	seed_patched("bad-record-outcome-0", &m, 1 + 4 + TC_DIGEST_LEN +
	    4 + 4 + 4 + 30 + 4 + 12, 0);
	seed_patched("bad-record-count-4097", &m, 1 + 2, 0x10);
	seed_patched("bad-type-0x42", &m, 0, 0x42);
	seed_patched("bad-type-0x00", &m, 0, 0x00);

	memset(&m, 0, sizeof m);
	m.type = PROTO_STATS;
	m.u.stats.reset = 1;
	seed_patched("bad-stats-bool-2", &m, 1, 2);
	memset(&m, 0, sizeof m);
	m.type = PROTO_HELLO;
	m.u.hello.version = TC_PROTO_VERSION;
	m.u.hello.name = "a\001b";
	seed_patched("bad-hello-nul", &m, 1 + 4 + 4 + 1, 0);
	seed_patched("bad-hello-name-over", &m, 1 + 4 + 2, 0x01);
	memset(&m, 0, sizeof m);
	m.type = PROTO_LIST;
	m.u.list.limit = 1;
	seed_patched("bad-list-limit-0", &m, 1 + 4 + 4 + 3, 0);
	seed_patched("bad-list-limit-over", &m, 1 + 4 + 4 + 2, 0x10);
	memset(&m, 0, sizeof m);
	m.type = PROTO_ERROR;
	m.u.error.code = 1;
	m.u.error.message = "x";
	seed_patched("bad-error-code-0", &m, 2, 0);
	memset(&m, 0, sizeof m);
	m.type = PROTO_GC | PROTO_REPLY;
	seed_cut("bad-gc-reply-short", &m, 3);

	seed_raw("bad-header-zero", "\0\0\0\0\x02", 5);
	seed_raw("bad-header-over", "\0\x40\0\x01\x02", 5);
	seed_raw("bad-header-past-end", "\0\0\0\x09\x01\0\0\0\x01", 9);
	seed_raw("bad-trailing", "\0\0\0\x02\x02\x00", 6);
	seed_raw("bad-lookup-count-past-end", "\0\0\0\x05\x03\0\0\0\x02", 9);
	return failed;
}
