/*
 * tput: the load client and the in-process SQLite reference of
 * bench/throughput.py (issue 6, parts 2 and 3).
 *
 *   tput fill SOCK N                      records N entries (key space "fill")
 *   tput lookup SOCK N BATCH hit|miss SECS
 *   tput record SOCK CLIENTS BATCH SEED SECS
 *   tput ref-lookup DB N BATCH hit|miss SECS
 *   tput ref-record DB BATCH SEED SECS normal|full
 *
 * Each timed command runs for about SECS seconds and prints one line,
 * "rate=<per second> n=<keys or records> secs=<elapsed>", and fails
 * (exit 1) when an answer is wrong: a hit not found, a miss found, a
 * record not stored.
 *
 * The records look like the pytest plugin's (contrib/pytest/tcache_pytest):
 * a test id "tests/test_mNN.py::test_case_NNNN[pN]" of one of 20 modules of
 * 50 tests, project "bench", an absolute root, a pass of a few ms, no
 * message, the daemon's default ttl; 9 declared inputs that every test of
 * its module shares (the module, conftest.py and pyproject.toml as files,
 * four package modules as interfaces, two environment variables), whose
 * digests change every 1,000 records (a new version of the code, so new
 * sets now and then); and one discovered input of its own (a data file the
 * test opened).  Keys are BLAKE2b of (key space, index): random in the
 * key index, as real keys are.
 *
 * The reference does with SQLite alone, on the same file and schema, what
 * a minimal store must for the same requests:
 *   lookup: in one read transaction per batch, the entry row by key
 *           (prepared, unexpired) and, for a hit, its discovered inputs,
 *           copied out;
 *   record: in one write transaction per batch (BEGIN IMMEDIATE, the same
 *           synchronous setting, WAL, foreign keys on as tcached has them):
 *           the record's set found by its 64-bit hash (created with its
 *           rows when new; no row by row comparison), the entry inserted
 *           (INSERT OR REPLACE) and its discovered input row inserted.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "client/tcache.h"

#define MODULES 20
#define TESTS_PER_MODULE 50
#define VERSION_EVERY 1000	/* records between changes of the code */
#define NDECLARED 9
#define NINPUTS (NDECLARED + 1)
#define ROOT "/home/dev/src/bench-project"
#define MAX_CLIENTS 64
#define MAX_BATCH 4096
#define REF_CACHE_KIB 65536	/* the reference's page cache: generous */

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void die(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "tput: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static long arg_long(const char *s, long min)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min)
		die("bad number: %s", s);
	return v;
}

static double arg_double(const char *s)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || *end != '\0' || v < 0)
		die("bad duration: %s", s);
	return v;
}

/* --- the records --- */

static void key_of(const char *space, uint64_t i, uint8_t key[TC_DIGEST_BYTES])
{
	char buf[128];
	int n = snprintf(buf, sizeof buf, "tput:%s:%" PRIu64, space, i);

	tc_hash_bytes(buf, (size_t)n, key);
}

static void digest_of(const char *what, uint64_t version, unsigned module,
    uint8_t out[TC_DIGEST_BYTES])
{
	char buf[160];
	int n = snprintf(buf, sizeof buf, "%s@%" PRIu64 "/%u", what, version,
	    module);

	tc_hash_bytes(buf, (size_t)n, out);
}

/* One record and the storage its strings live in. */
struct rec {
	tc_record r;
	tc_input in[NINPUTS];
	char test[96];
	char paths[NINPUTS][64];
};

static void make_record(struct rec *x, const char *space, uint64_t i)
{
	static const char *const shared[] = {
		"tests/conftest.py", "pyproject.toml", "src/pkg/__init__.py",
		"src/pkg/core.py", "src/pkg/util.py",
	};
	unsigned module = (unsigned)((i / TESTS_PER_MODULE) % MODULES);
	uint64_t version = i / VERSION_EVERY;
	unsigned k = 0;

	memset(&x->r, 0, sizeof x->r);
	key_of(space, i, x->r.key);
	snprintf(x->test, sizeof x->test,
	    "tests/test_m%02u.py::test_case_%04u[p%u]", module,
	    (unsigned)(i % TESTS_PER_MODULE), (unsigned)(i % 3));
	/* Declared: the module, two files and three interfaces every module
	 * shares, its own package module, two environment variables. */
	snprintf(x->paths[k], sizeof x->paths[k], "tests/test_m%02u.py", module);
	x->in[k].kind = TC_INPUT_FILE;
	k++;
	for (unsigned j = 0; j < 5; j++, k++) {
		snprintf(x->paths[k], sizeof x->paths[k], "%s", shared[j]);
		x->in[k].kind = j < 2 ? TC_INPUT_FILE : TC_INPUT_INTERFACE;
	}
	snprintf(x->paths[k], sizeof x->paths[k], "src/pkg/m%02u.py", module);
	x->in[k++].kind = TC_INPUT_INTERFACE;
	snprintf(x->paths[k], sizeof x->paths[k], "PYTHONHASHSEED");
	x->in[k++].kind = TC_INPUT_ENV;
	snprintf(x->paths[k], sizeof x->paths[k], "BENCH_MODE");
	x->in[k++].kind = TC_INPUT_ENV;
	/* Discovered: a data file this test opened. */
	snprintf(x->paths[k], sizeof x->paths[k], "tests/data/case_%04u.json",
	    (unsigned)(i % 1000));
	x->in[k++].kind = TC_INPUT_FOUND;
	for (unsigned j = 0; j < NINPUTS; j++) {
		x->in[j].path = x->paths[j];
		/* The shared files change with the version; a module's own
		 * files with it too, so every module gets a new set. */
		digest_of(x->paths[j], version, module, x->in[j].digest);
	}
	x->r.project = "bench";
	x->r.test = x->test;
	x->r.root = ROOT;
	x->r.outcome = TC_PASS;
	x->r.duration_us = 1000 + (i * 7919) % 20000;
	x->r.ttl_ms = 0;
	x->r.message = "";
	x->r.ninputs = NINPUTS;
	x->r.inputs = x->in;
}

/* --- through tcached --- */

static tc_client *client_for(const char *sock)
{
	tc_options o = { .socket = sock, .timeout_ms = 60000 };
	tc_client *c = tc_client_new(&o);
	tc_status st;

	if (c == NULL)
		die("out of memory");
	if ((st = tc_connect(c)) != TC_OK)
		die("connect: %s: %s", tc_status_name(st), tc_client_error(c));
	return c;
}

/* rs and status: room for n, the caller's. */
static void put_all(tc_client *c, const struct rec *recs, size_t n,
    tc_record *rs, uint8_t *status)
{
	tc_status st;

	for (size_t i = 0; i < n; i++)
		rs[i] = recs[i].r;
	if ((st = tc_record_put(c, rs, n, status)) != TC_OK)
		die("record: %s: %s", tc_status_name(st), tc_client_error(c));
	for (size_t i = 0; i < n; i++)
		if (status[i] != TC_STORED)
			die("record: a record came back flaky");
}

static int cmd_fill(const char *sock, uint64_t n)
{
	struct rec *recs = calloc(1000, sizeof *recs);
	tc_record *rs = calloc(1000, sizeof *rs);
	uint8_t status[1000];
	tc_client *c = client_for(sock);

	if (recs == NULL || rs == NULL)
		die("out of memory");
	for (uint64_t off = 0; off < n; off += 1000) {
		size_t k = n - off < 1000 ? (size_t)(n - off) : 1000;

		for (size_t i = 0; i < k; i++)
			make_record(&recs[i], "fill", off + i);
		put_all(c, recs, k, rs, status);
	}
	tc_client_free(c);
	free(recs);
	free(rs);
	printf("filled=%" PRIu64 "\n", n);
	return 0;
}

static void report(uint64_t n, double secs)
{
	printf("rate=%.1f n=%" PRIu64 " secs=%.4f\n", secs > 0 ? n / secs : 0,
	    n, secs);
}

/* Keys of a lookup batch: the next batch of the fill (hits) or of a key
 * space never recorded (misses), wrapping around n. */
static void next_keys(uint8_t (*keys)[TC_DIGEST_BYTES], size_t batch,
    int hit, uint64_t n, uint64_t *cursor)
{
	for (size_t i = 0; i < batch; i++) {
		key_of(hit ? "fill" : "miss", *cursor % n, keys[i]);
		(*cursor)++;
	}
}

/* One untimed pass over the n keys, as the reference makes one: what is
 * measured is the rate with the database in the page cache. */
static void warm(tc_client *c, int hit, uint64_t n)
{
	uint8_t (*keys)[TC_DIGEST_BYTES] = calloc(1000, sizeof *keys);
	tc_result *res = calloc(1000, sizeof *res);
	uint64_t cursor = 0;
	tc_status st;

	if (keys == NULL || res == NULL)
		die("out of memory");
	while (cursor < n) {
		size_t k = n - cursor < 1000 ? (size_t)(n - cursor) : 1000;

		next_keys(keys, k, hit, n, &cursor);
		if ((st = tc_lookup(c, (const uint8_t (*)[TC_DIGEST_BYTES])keys,
		    k, res)) != TC_OK)
			die("lookup: %s: %s", tc_status_name(st),
			    tc_client_error(c));
		tc_results_clear(res, k);
	}
	free(keys);
	free(res);
}

static int cmd_lookup(const char *sock, uint64_t n, size_t batch, int hit,
    double secs)
{
	uint8_t (*keys)[TC_DIGEST_BYTES] = calloc(batch, sizeof *keys);
	tc_result *res = calloc(batch, sizeof *res);
	tc_client *c = client_for(sock);
	uint64_t cursor = 0, done = 0;
	double t0, t1, spent = 0;
	tc_status st;

	if (keys == NULL || res == NULL)
		die("out of memory");
	warm(c, hit, n);
	t0 = now_s();
	do {
		/* Key derivation is the caller's work, not the lookup's. */
		next_keys(keys, batch, hit, n, &cursor);
		t1 = now_s();
		if ((st = tc_lookup(c, (const uint8_t (*)[TC_DIGEST_BYTES])keys,
		    batch, res)) != TC_OK)
			die("lookup: %s: %s", tc_status_name(st),
			    tc_client_error(c));
		spent += now_s() - t1;
		for (size_t i = 0; i < batch; i++)
			if (res[i].found != hit || (hit && (res[i].ninputs != 1 ||
			    res[i].inputs[0].kind != TC_INPUT_FOUND)))
				die("lookup: wrong answer (%s expected)",
				    hit ? "a hit with its input" : "a miss");
		tc_results_clear(res, batch);
		done += batch;
	} while (now_s() - t0 < secs);
	report(done, spent);
	tc_client_free(c);
	free(keys);
	free(res);
	return 0;
}

struct loader {
	pthread_t th;
	const char *sock;
	const char *seed;
	size_t batch;
	double secs;
	uint64_t done;
	double end;
};

static atomic_uint_fast64_t next_index;
static double start_at;
static pthread_barrier_t ready;

static void *load_run(void *arg)
{
	struct loader *l = arg;
	struct rec *recs = calloc(l->batch, sizeof *recs);
	tc_record *rs = calloc(l->batch, sizeof *rs);
	uint8_t *status = calloc(l->batch, 1);
	tc_client *c = client_for(l->sock);
	uint64_t first;

	if (recs == NULL || rs == NULL || status == NULL)
		die("out of memory");
	pthread_barrier_wait(&ready);
	pthread_barrier_wait(&ready);	/* start_at is set */
	do {
		first = atomic_fetch_add(&next_index, l->batch);
		for (size_t i = 0; i < l->batch; i++)
			make_record(&recs[i], l->seed, first + i);
		put_all(c, recs, l->batch, rs, status);
		l->done += l->batch;
	} while (now_s() - start_at < l->secs);
	l->end = now_s();
	tc_client_free(c);
	free(recs);
	free(rs);
	free(status);
	return NULL;
}

static int cmd_record(const char *sock, unsigned clients, size_t batch,
    const char *seed, double secs)
{
	struct loader l[MAX_CLIENTS];
	uint64_t done = 0;
	double end = 0;
	int rc;

	if ((rc = pthread_barrier_init(&ready, NULL, clients + 1)) != 0)
		die("pthread_barrier_init: %s", strerror(rc));
	for (unsigned i = 0; i < clients; i++) {
		l[i] = (struct loader){ .sock = sock, .seed = seed,
		    .batch = batch, .secs = secs };
		if ((rc = pthread_create(&l[i].th, NULL, load_run, &l[i])) != 0)
			die("pthread_create: %s", strerror(rc));
	}
	pthread_barrier_wait(&ready);	/* every client connected */
	start_at = now_s();
	pthread_barrier_wait(&ready);
	for (unsigned i = 0; i < clients; i++) {
		if ((rc = pthread_join(l[i].th, NULL)) != 0)
			die("pthread_join: %s", strerror(rc));
		done += l[i].done;
		if (l[i].end > end)
			end = l[i].end;
	}
	report(done, end - start_at);
	return 0;
}

/* --- the SQLite reference --- */

static sqlite3 *ref_open(const char *path, const char *sync)
{
	char sql[256];
	sqlite3 *db = NULL;
	char *msg = NULL;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
		die("%s: %s", path, db ? sqlite3_errmsg(db) : "cannot open");
	sqlite3_busy_timeout(db, 5000);
	snprintf(sql, sizeof sql, "PRAGMA journal_mode = WAL; "
	    "PRAGMA synchronous = %s; PRAGMA foreign_keys = ON; "
	    "PRAGMA cache_size = -%d;", sync, REF_CACHE_KIB);
	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK)
		die("pragmas: %s", msg ? msg : "?");
	return db;
}

static sqlite3_stmt *ref_prepare(sqlite3 *db, const char *sql)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &st,
	    NULL) != SQLITE_OK)
		die("%s: %s", sql, sqlite3_errmsg(db));
	return st;
}

static void ref_exec(sqlite3 *db, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);

	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		die("%s: %s", sqlite3_sql(st), sqlite3_errmsg(db));
	sqlite3_reset(st);
}

/* What a lookup answers for one discovered input. */
struct ref_input {
	int kind;
	char path[256];
	uint8_t digest[TC_DIGEST_BYTES];
};

struct ref_lookup {
	sqlite3 *db;
	sqlite3_stmt *begin, *commit, *entry, *inputs;
	struct ref_input got[8];
};

/* One batch in one read transaction: each entry row, and a hit's
 * discovered inputs copied out. */
static void ref_lookup_batch(struct ref_lookup *x,
    uint8_t (*keys)[TC_DIGEST_BYTES], size_t batch, tc_result *res)
{
	uint64_t now = now_ms();
	int rc, m;

	ref_exec(x->db, x->begin);
	for (size_t i = 0; i < batch; i++) {
		tc_result *r = &res[i];

		memset(r, 0, sizeof *r);
		sqlite3_bind_blob(x->entry, 1, keys[i], TC_DIGEST_BYTES,
		    SQLITE_STATIC);
		sqlite3_bind_int64(x->entry, 2, (int64_t)now);
		if ((rc = sqlite3_step(x->entry)) == SQLITE_DONE) {
			sqlite3_reset(x->entry);
			continue;
		}
		if (rc != SQLITE_ROW)
			die("lookup: %s", sqlite3_errmsg(x->db));
		r->found = 1;
		r->outcome = (uint8_t)sqlite3_column_int(x->entry, 1);
		r->flaky = (uint8_t)sqlite3_column_int(x->entry, 2);
		r->duration_us = (uint64_t)sqlite3_column_int64(x->entry, 3);
		r->created_ms = (uint64_t)sqlite3_column_int64(x->entry, 4);
		r->expires_ms = (uint64_t)sqlite3_column_int64(x->entry, 5);
		sqlite3_bind_int64(x->inputs, 1,
		    sqlite3_column_int64(x->entry, 0));
		sqlite3_reset(x->entry);
		for (m = 0; m < 8 && (rc = sqlite3_step(x->inputs)) ==
		    SQLITE_ROW; m++) {
			struct ref_input *g = &x->got[m];
			const void *d = sqlite3_column_blob(x->inputs, 2);
			const unsigned char *p = sqlite3_column_text(x->inputs,
			    1);

			g->kind = sqlite3_column_int(x->inputs, 0);
			snprintf(g->path, sizeof g->path, "%s",
			    p ? (const char *)p : "");
			if (d != NULL && sqlite3_column_bytes(x->inputs, 2) ==
			    TC_DIGEST_BYTES)
				memcpy(g->digest, d, TC_DIGEST_BYTES);
		}
		if (m < 8 && rc != SQLITE_DONE)
			die("inputs: %s", sqlite3_errmsg(x->db));
		sqlite3_reset(x->inputs);
		r->ninputs = (uint32_t)m;
	}
	ref_exec(x->db, x->commit);
}

static int cmd_ref_lookup(const char *path, uint64_t n, size_t batch, int hit,
    double secs)
{
	struct ref_lookup x;
	uint8_t (*keys)[TC_DIGEST_BYTES] = calloc(batch > 1000 ? batch : 1000,
	    sizeof *keys);
	tc_result *res = calloc(batch > 1000 ? batch : 1000, sizeof *res);
	uint64_t cursor = 0, done = 0;
	double t0, t1, spent = 0;

	if (keys == NULL || res == NULL)
		die("out of memory");
	x.db = ref_open(path, "NORMAL");
	x.begin = ref_prepare(x.db, "BEGIN");
	x.commit = ref_prepare(x.db, "COMMIT");
	x.entry = ref_prepare(x.db, "SELECT id, outcome, flaky, "
	    "duration_us, created, expires FROM entries "
	    "WHERE key = ?1 AND expires > ?2");
	x.inputs = ref_prepare(x.db, "SELECT kind, path, digest "
	    "FROM inputs WHERE entry = ?1 AND kind = 1 ORDER BY path");
	/* The untimed pass, as the client makes one. */
	while (cursor < n) {
		size_t k = n - cursor < 1000 ? (size_t)(n - cursor) : 1000;

		next_keys(keys, k, hit, n, &cursor);
		ref_lookup_batch(&x, keys, k, res);
	}
	cursor = 0;
	t0 = now_s();
	do {
		next_keys(keys, batch, hit, n, &cursor);
		t1 = now_s();
		ref_lookup_batch(&x, keys, batch, res);
		spent += now_s() - t1;
		for (size_t i = 0; i < batch; i++)
			if (res[i].found != hit || (hit && (res[i].ninputs != 1 ||
			    x.got[0].kind != TC_INPUT_FOUND)))
				die("ref-lookup: wrong answer (%s expected)",
				    hit ? "a hit with its input" : "a miss");
		done += batch;
	} while (now_s() - t0 < secs);
	report(done, spent);
	sqlite3_finalize(x.begin);
	sqlite3_finalize(x.commit);
	sqlite3_finalize(x.entry);
	sqlite3_finalize(x.inputs);
	if (sqlite3_close(x.db) != SQLITE_OK)
		die("close: %s", sqlite3_errmsg(x.db));
	free(keys);
	free(res);
	return 0;
}

/* FNV-1a over a record's declared inputs as stored (kind, path, abspath,
 * digest), in the order make_record gives them. */
static int64_t ref_set_hash(const tc_record *r, char (*abs)[160])
{
	uint64_t h = 0xcbf29ce484222325ull;

	for (uint32_t i = 0; i < r->ninputs; i++) {
		const tc_input *in = &r->inputs[i];
		const unsigned char *p;
		size_t len;

		if (in->kind == TC_INPUT_FOUND)
			continue;
		h = (h ^ in->kind) * 0x100000001b3ull;
		for (p = (const unsigned char *)in->path; *p; p++)
			h = (h ^ *p) * 0x100000001b3ull;
		len = strlen(abs[i]);
		for (size_t j = 0; j < len; j++)
			h = (h ^ (unsigned char)abs[i][j]) * 0x100000001b3ull;
		for (size_t j = 0; j < TC_DIGEST_BYTES; j++)
			h = (h ^ in->digest[j]) * 0x100000001b3ull;
	}
	return (int64_t)h;
}

static void bind_input(sqlite3_stmt *st, int64_t owner, const tc_input *in,
    const char *abs)
{
	sqlite3_bind_int64(st, 1, owner);
	sqlite3_bind_int(st, 2, in->kind);
	sqlite3_bind_text(st, 3, in->path, -1, SQLITE_STATIC);
	if (abs[0] != '\0')
		sqlite3_bind_text(st, 4, abs, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 4);
	sqlite3_bind_blob(st, 5, in->digest, TC_DIGEST_BYTES, SQLITE_STATIC);
}

static int cmd_ref_record(const char *path, size_t batch, const char *seed,
    double secs, const char *sync)
{
	sqlite3 *db = ref_open(path, sync);
	sqlite3_stmt *begin = ref_prepare(db, "BEGIN IMMEDIATE");
	sqlite3_stmt *commit = ref_prepare(db, "COMMIT");
	sqlite3_stmt *find = ref_prepare(db,
	    "SELECT id FROM inputsets WHERE hash = ?1 LIMIT 1");
	sqlite3_stmt *newset = ref_prepare(db,
	    "INSERT INTO inputsets(hash) VALUES (?1)");
	sqlite3_stmt *setrow = ref_prepare(db, "INSERT INTO setinputs(setid, "
	    "kind, path, abspath, digest) VALUES (?1, ?2, ?3, ?4, ?5)");
	sqlite3_stmt *put = ref_prepare(db, "INSERT OR REPLACE INTO "
	    "entries(key, project, test, root, outcome, flaky, duration_us, "
	    "message, created, expires, hits, last_used, inputset) VALUES "
	    "(?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?8, ?9, 0, ?8, ?10)");
	sqlite3_stmt *found = ref_prepare(db, "INSERT OR REPLACE INTO "
	    "inputs(entry, kind, path, abspath, digest) "
	    "VALUES (?1, ?2, ?3, ?4, ?5)");
	struct rec *recs = calloc(batch, sizeof *recs);
	char abs[NINPUTS][160];
	uint64_t next = 0, done = 0, now;
	int64_t setid, entry;
	double t0, t1, spent = 0;
	int rc;

	if (recs == NULL)
		die("out of memory");
	t0 = now_s();
	do {
		for (size_t i = 0; i < batch; i++)
			make_record(&recs[i], seed, next++);
		t1 = now_s();
		now = now_ms();
		ref_exec(db, begin);
		for (size_t i = 0; i < batch; i++) {
			const tc_record *r = &recs[i].r;
			int64_t hash;

			for (uint32_t j = 0; j < r->ninputs; j++)
				if (r->inputs[j].kind == TC_INPUT_ENV)
					abs[j][0] = '\0';
				else
					snprintf(abs[j], sizeof abs[j], "%s/%s",
					    r->root, r->inputs[j].path);
			hash = ref_set_hash(r, abs);
			sqlite3_bind_int64(find, 1, hash);
			if ((rc = sqlite3_step(find)) == SQLITE_ROW) {
				setid = sqlite3_column_int64(find, 0);
				sqlite3_reset(find);
			} else if (rc == SQLITE_DONE) {
				sqlite3_reset(find);
				sqlite3_bind_int64(newset, 1, hash);
				ref_exec(db, newset);
				setid = sqlite3_last_insert_rowid(db);
				for (uint32_t j = 0; j < r->ninputs; j++) {
					if (r->inputs[j].kind == TC_INPUT_FOUND)
						continue;
					bind_input(setrow, setid, &r->inputs[j],
					    abs[j]);
					ref_exec(db, setrow);
				}
			} else
				die("find set: %s", sqlite3_errmsg(db));
			sqlite3_bind_blob(put, 1, r->key, TC_DIGEST_BYTES,
			    SQLITE_STATIC);
			sqlite3_bind_text(put, 2, r->project, -1, SQLITE_STATIC);
			sqlite3_bind_text(put, 3, r->test, -1, SQLITE_STATIC);
			sqlite3_bind_text(put, 4, r->root, -1, SQLITE_STATIC);
			sqlite3_bind_int(put, 5, r->outcome);
			sqlite3_bind_int64(put, 6, (int64_t)r->duration_us);
			sqlite3_bind_text(put, 7, r->message, -1, SQLITE_STATIC);
			sqlite3_bind_int64(put, 8, (int64_t)now);
			sqlite3_bind_int64(put, 9, (int64_t)now + 86400000);
			sqlite3_bind_int64(put, 10, setid);
			ref_exec(db, put);
			entry = sqlite3_last_insert_rowid(db);
			for (uint32_t j = 0; j < r->ninputs; j++) {
				if (r->inputs[j].kind != TC_INPUT_FOUND)
					continue;
				bind_input(found, entry, &r->inputs[j], abs[j]);
				ref_exec(db, found);
			}
		}
		ref_exec(db, commit);
		spent += now_s() - t1;
		done += batch;
	} while (now_s() - t0 < secs);
	report(done, spent);
	sqlite3_finalize(begin);
	sqlite3_finalize(commit);
	sqlite3_finalize(find);
	sqlite3_finalize(newset);
	sqlite3_finalize(setrow);
	sqlite3_finalize(put);
	sqlite3_finalize(found);
	if (sqlite3_close(db) != SQLITE_OK)
		die("close: %s", sqlite3_errmsg(db));
	free(recs);
	return 0;
}

static int hit_arg(const char *s)
{
	if (strcmp(s, "hit") == 0)
		return 1;
	if (strcmp(s, "miss") == 0)
		return 0;
	die("hit or miss, not %s", s);
	return 0;
}

static size_t batch_arg(const char *s)
{
	long b = arg_long(s, 1);

	if (b > MAX_BATCH)
		die("batch over 4096: %s", s);
	return (size_t)b;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	if (strcmp(cmd, "fill") == 0 && argc == 4)
		return cmd_fill(argv[2], (uint64_t)arg_long(argv[3], 1));
	if (strcmp(cmd, "lookup") == 0 && argc == 7)
		return cmd_lookup(argv[2], (uint64_t)arg_long(argv[3], 1),
		    batch_arg(argv[4]), hit_arg(argv[5]), arg_double(argv[6]));
	if (strcmp(cmd, "record") == 0 && argc == 7) {
		long clients = arg_long(argv[3], 1);

		if (clients > MAX_CLIENTS)
			die("at most 64 clients, not %s", argv[3]);
		return cmd_record(argv[2], (unsigned)clients,
		    batch_arg(argv[4]), argv[5], arg_double(argv[6]));
	}
	if (strcmp(cmd, "ref-lookup") == 0 && argc == 7)
		return cmd_ref_lookup(argv[2], (uint64_t)arg_long(argv[3], 1),
		    batch_arg(argv[4]), hit_arg(argv[5]), arg_double(argv[6]));
	if (strcmp(cmd, "ref-record") == 0 && argc == 7) {
		const char *sync = strcmp(argv[6], "full") == 0 ? "FULL" :
		    strcmp(argv[6], "normal") == 0 ? "NORMAL" : NULL;

		if (sync == NULL)
			die("normal or full, not %s", argv[6]);
		return cmd_ref_record(argv[2], batch_arg(argv[3]), argv[4],
		    arg_double(argv[5]), sync);
	}
	fprintf(stderr, "usage: tput fill SOCK N\n"
	    "       tput lookup SOCK N BATCH hit|miss SECS\n"
	    "       tput record SOCK CLIENTS BATCH SEED SECS\n"
	    "       tput ref-lookup DB N BATCH hit|miss SECS\n"
	    "       tput ref-record DB BATCH SEED SECS normal|full\n");
	return 2;
}
