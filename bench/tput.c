/*
 * tput: the load client and the in-process SQLite reference of
 * bench/throughput.py (issue 6, parts 2 and 3).
 *
 *   tput fill SOCK N                      records N entries (key space "fill")
 *   tput lookup SOCK N BATCH hit|miss SECS
 *   tput cmp-lookup SOCK DB N hit|miss SECS
 *   tput record SOCK CLIENTS BATCH SEED SECS
 *   tput cmp-record SOCK DB CLIENTS BATCH SEED SECS
 *   tput ref-record DB BATCH SEED SECS normal|full
 *
 * Each timed command runs for about SECS seconds and prints one line of
 * name=value: rate (keys or records a second through tcached), ref (the
 * same by the reference, for the cmp- commands, which take turns with it
 * in slices so that both see the same machine at the same moments),
 * hit_write_us (the CPU time tcached spent after a pass of lookups once
 * idle, writing the hit counts it had kept in memory and checkpointing
 * them, per key), daemon_us (its CPU time during the passes, per key),
 * after_us (its CPU time after a slice of records, its checkpointer's, per
 * record); and fails (exit 1) when an answer is wrong: a hit not found, a
 * miss found, a record not stored.  Lookups go in passes, each key of N
 * once, as a test run does, and tcached is let finish (quiesce) between
 * them and before each turn of the reference.

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
#include <dirent.h>
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

static void report(const char *name, uint64_t n, double secs)
{
	printf("%s=%.1f ", name, secs > 0 ? n / secs : 0);
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

static void check(const tc_result *res, size_t batch, int hit, const char *who)
{
	for (size_t i = 0; i < batch; i++)
		if (res[i].found != hit || (hit && (res[i].ninputs != 1 ||
		    res[i].inputs == NULL ||
		    res[i].inputs[0].kind != TC_INPUT_FOUND)))
			die("%s: wrong answer (%s expected)", who,
			    hit ? "a hit with its input" : "a miss");
}

/* The pid of the daemon behind c. */
static long daemon_pid(tc_client *c)
{
	tc_daemon_status ds;
	long pid;
	tc_status st;

	if ((st = tc_status_get(c, &ds)) != TC_OK)
		die("status: %s: %s", tc_status_name(st), tc_client_error(c));
	pid = (long)ds.pid;
	tc_daemon_status_clear(&ds);
	return pid;
}

/* Nanoseconds all threads of pid have run (schedstat), or -1. */
static long long cpu_ns(long pid)
{
	char path[64], file[384];
	long long sum = 0, ns;
	struct dirent *d;
	DIR *dir;
	FILE *f;

	/* Threads come and go: the list is read each time. */
	snprintf(path, sizeof path, "/proc/%ld/task", pid);
	if ((dir = opendir(path)) == NULL)
		return -1;
	while ((d = readdir(dir)) != NULL) {
		if (d->d_name[0] == '.')
			continue;
		snprintf(file, sizeof file, "%s/%s/schedstat", path, d->d_name);
		if ((f = fopen(file, "r")) == NULL)
			continue;
		if (fscanf(f, "%lld", &ns) == 1)
			sum += ns;
		fclose(f);
	}
	closedir(dir);
	return sum;
}

/*
 * Waits until the daemon has done what it does after replying (its
 * checkpointer copying the WAL, hit counts written when idle), so that
 * none of it runs in the reference's turn; returns the seconds it ran
 * meanwhile, which the caller reports (they are tcached's work, done off
 * the replies' path).
 */
/* Quiet long enough for tcached to have begun what it does when idle
 * (SERVER_TOUCH_IDLE_MS, 50 ms, before it writes hit counts), or only for
 * its checkpointer to have finished. */
#define QUIET_IDLE_MS 120
#define QUIET_MS 20

static double quiesce(long pid, int quiet_ms)
{
	struct timespec ts = { 0, 5 * 1000 * 1000 };
	long long first = cpu_ns(pid), prev = first, now;
	int still = 0;

	if (first < 0)
		return 0;
	while (still < quiet_ms / 5) {
		nanosleep(&ts, NULL);
		if ((now = cpu_ns(pid)) < 0)
			break;
		still = now == prev ? still + 1 : 0;
		prev = now;
	}
	return (double)(prev - first) / 1e9;
}

/* What a lookup client holds. */
struct looker {
	tc_client *c;
	size_t batch;
	uint8_t (*keys)[TC_DIGEST_BYTES];
	tc_result *res;
};

static void looker_init(struct looker *l, const char *sock, size_t batch)
{
	l->c = client_for(sock);
	l->batch = batch;
	l->keys = calloc(batch, sizeof *l->keys);
	l->res = calloc(batch, sizeof *l->res);
	if (l->keys == NULL || l->res == NULL)
		die("out of memory");
}

static void looker_free(struct looker *l)
{
	tc_client_free(l->c);
	free(l->keys);
	free(l->res);
}

/*
 * One pass: every one of the n keys looked up once, as a test run does,
 * in batches (the last may be short); the seconds spent in tc_lookup (key
 * derivation is the caller's work, not the lookup's), or until stop when
 * stop > 0.  *done counts the keys.
 */
static double looker_pass(struct looker *l, int hit, uint64_t n, double stop,
    uint64_t *done)
{
	uint64_t cursor = 0;
	double spent = 0, t;
	tc_status st;

	while (cursor < n && (stop <= 0 || now_s() < stop)) {
		size_t k = n - cursor < l->batch ? (size_t)(n - cursor) :
		    l->batch;

		next_keys(l->keys, k, hit, n, &cursor);
		t = now_s();
		if ((st = tc_lookup(l->c,
		    (const uint8_t (*)[TC_DIGEST_BYTES])l->keys, k, l->res)) !=
		    TC_OK)
			die("lookup: %s: %s", tc_status_name(st),
			    tc_client_error(l->c));
		spent += now_s() - t;
		check(l->res, k, hit, "lookup");
		tc_results_clear(l->res, k);
		*done += k;
	}
	return spent;
}

/* Through tcached: passes over the keys until secs have passed (a pass of
 * one-key requests may not end), the hits written between them. */
static int cmd_lookup(const char *sock, uint64_t n, size_t batch, int hit,
    double secs)
{
	struct looker l, warm;
	uint64_t done = 0, ignored = 0, passes = 0;
	double t0, spent = 0, written = 0;
	long pid;

	looker_init(&l, sock, batch);
	pid = daemon_pid(l.c);
	/* An untimed pass first, as the reference makes one: both read a
	 * warm cache. */
	looker_init(&warm, sock, 1000);
	(void)looker_pass(&warm, hit, n, 0, &ignored);
	looker_free(&warm);
	(void)quiesce(pid, QUIET_IDLE_MS);
	t0 = now_s();
	do {
		spent += looker_pass(&l, hit, n, t0 + secs, &done);
		passes++;
		written += quiesce(pid, hit ? QUIET_IDLE_MS : QUIET_MS);
	} while (now_s() - t0 < secs);
	report("rate", done, spent);
	if (hit)
		printf("hit_write_us=%.3f ", written * 1e6 / (double)done);
	printf("n=%" PRIu64 " passes=%" PRIu64 "\n", done, passes);
	looker_free(&l);
	return 0;
}

/* --- records through tcached --- */

struct loader {
	pthread_t th;
	const char *sock;
	const char *seed;
	size_t batch;
	uint64_t done;
	double end;			/* when its last request of a slice ended */
};

static atomic_uint_fast64_t next_index;
static double slice_end;		/* set before each slice */
static int last_slice;
static pthread_barrier_t slice_start, slice_done;

/* A client: records until slice_end, slice after slice, each request
 * waiting for its reply (which means committed). */
static void *load_run(void *arg)
{
	struct loader *l = arg;
	struct rec *recs = calloc(l->batch, sizeof *recs);
	tc_record *rs = calloc(l->batch, sizeof *rs);
	uint8_t *status = calloc(l->batch, 1);
	tc_client *c = client_for(l->sock);
	uint64_t first;
	int last;

	if (recs == NULL || rs == NULL || status == NULL)
		die("out of memory");
	do {
		pthread_barrier_wait(&slice_start);
		last = last_slice;
		while (!last && now_s() < slice_end) {
			first = atomic_fetch_add(&next_index, l->batch);
			for (size_t i = 0; i < l->batch; i++)
				make_record(&recs[i], l->seed, first + i);
			put_all(c, recs, l->batch, rs, status);
			l->done += l->batch;
		}
		l->end = now_s();
		pthread_barrier_wait(&slice_done);
	} while (!last);
	tc_client_free(c);
	free(recs);
	free(rs);
	free(status);
	return NULL;
}

struct ref_record;
static void ref_record_open(struct ref_record **out, const char *path,
    const char *sync, size_t batch);
static double ref_record_batch(struct ref_record *x, const char *seed,
    uint64_t *next);
static void ref_record_close(struct ref_record *x);

/*
 * clients at once, each with its own connection, in slices of SLICE_S;
 * with db, a slice of the reference (batches of REF_BATCH in one
 * transaction each, on the same file) after each of theirs, so that both
 * see the same machine and the same size of database.
 */
#define SLICE_S 0.1
#define REF_BATCH 100

static int cmd_record(const char *sock, const char *db, unsigned clients,
    size_t batch, const char *seed, double secs)
{
	struct loader l[MAX_CLIENTS];
	struct ref_record *ref = NULL;
	uint64_t done = 0, ref_done = 0, ref_next = 0;
	double t0, start, end, spent = 0, ref_spent = 0, stop, after = 0;
	char ref_seed[128];
	long pid = 0;
	int rc;

	snprintf(ref_seed, sizeof ref_seed, "%s-ref", seed);
	if (db != NULL) {
		tc_client *c = client_for(sock);

		pid = daemon_pid(c);
		tc_client_free(c);
		ref_record_open(&ref, db, "NORMAL", REF_BATCH);
	}
	if ((rc = pthread_barrier_init(&slice_start, NULL, clients + 1)) != 0 ||
	    (rc = pthread_barrier_init(&slice_done, NULL, clients + 1)) != 0)
		die("pthread_barrier_init: %s", strerror(rc));
	for (unsigned i = 0; i < clients; i++) {
		l[i] = (struct loader){ .sock = sock, .seed = seed,
		    .batch = batch };
		if ((rc = pthread_create(&l[i].th, NULL, load_run, &l[i])) != 0)
			die("pthread_create: %s", strerror(rc));
	}
	t0 = now_s();
	do {
		start = now_s();
		slice_end = start + SLICE_S;
		pthread_barrier_wait(&slice_start);
		pthread_barrier_wait(&slice_done);
		end = 0;
		for (unsigned i = 0; i < clients; i++)
			end = l[i].end > end ? l[i].end : end;
		spent += end - start;
		if (ref != NULL) {
			after += quiesce(pid, QUIET_MS);
			stop = now_s() + SLICE_S;
			do {
				ref_spent += ref_record_batch(ref, ref_seed,
				    &ref_next);
				ref_done += REF_BATCH;
			} while (now_s() < stop);
		}
	} while (now_s() - t0 < secs);
	last_slice = 1;
	pthread_barrier_wait(&slice_start);
	pthread_barrier_wait(&slice_done);
	for (unsigned i = 0; i < clients; i++) {
		if ((rc = pthread_join(l[i].th, NULL)) != 0)
			die("pthread_join: %s", strerror(rc));
		done += l[i].done;
	}
	report("rate", done, spent);
	if (ref != NULL) {
		report("ref", ref_done, ref_spent);
		printf("after_us=%.3f ", after * 1e6 / (double)done);
		ref_record_close(ref);
	}
	printf("n=%" PRIu64 "\n", done);
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

static void ref_close(sqlite3 *db, sqlite3_stmt **st, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sqlite3_finalize(st[i]);
	if (sqlite3_close(db) != SQLITE_OK)
		die("close: %s", sqlite3_errmsg(db));
}

/* What the reference's lookup answers for one discovered input. */
struct ref_input {
	int kind;
	char path[256];
	uint8_t digest[TC_DIGEST_BYTES];
};

enum { RL_BEGIN, RL_COMMIT, RL_ENTRY, RL_INPUTS, RL__N };

struct ref_lookup {
	sqlite3 *db;
	sqlite3_stmt *st[RL__N];
	struct ref_input got[8];
	tc_input in[8];
	uint8_t (*keys)[TC_DIGEST_BYTES];
	tc_result *res;
};

static void ref_lookup_open(struct ref_lookup *x, const char *path)
{
	x->db = ref_open(path, "NORMAL");
	x->st[RL_BEGIN] = ref_prepare(x->db, "BEGIN");
	x->st[RL_COMMIT] = ref_prepare(x->db, "COMMIT");
	x->st[RL_ENTRY] = ref_prepare(x->db, "SELECT id, outcome, flaky, "
	    "duration_us, created, expires FROM entries "
	    "WHERE key = ?1 AND expires > ?2");
	x->st[RL_INPUTS] = ref_prepare(x->db, "SELECT kind, path, digest "
	    "FROM inputs WHERE entry = ?1 AND kind = 1 ORDER BY path");
	x->keys = calloc(1000, sizeof *x->keys);
	x->res = calloc(1000, sizeof *x->res);
	if (x->keys == NULL || x->res == NULL)
		die("out of memory");
}

static void ref_lookup_close(struct ref_lookup *x)
{
	ref_close(x->db, x->st, RL__N);
	free(x->keys);
	free(x->res);
}

/* One batch in one read transaction: each entry row, and a hit's
 * discovered inputs copied out (into buffers of its own: the reference
 * allocates nothing). */
static void ref_lookup_batch(struct ref_lookup *x, size_t batch)
{
	sqlite3_stmt *entry = x->st[RL_ENTRY], *inputs = x->st[RL_INPUTS];
	uint64_t now = now_ms();
	int rc, m;

	ref_exec(x->db, x->st[RL_BEGIN]);
	for (size_t i = 0; i < batch; i++) {
		tc_result *r = &x->res[i];

		memset(r, 0, sizeof *r);
		sqlite3_bind_blob(entry, 1, x->keys[i], TC_DIGEST_BYTES,
		    SQLITE_STATIC);
		sqlite3_bind_int64(entry, 2, (int64_t)now);
		if ((rc = sqlite3_step(entry)) == SQLITE_DONE) {
			sqlite3_reset(entry);
			continue;
		}
		if (rc != SQLITE_ROW)
			die("lookup: %s", sqlite3_errmsg(x->db));
		r->found = 1;
		r->outcome = (uint8_t)sqlite3_column_int(entry, 1);
		r->flaky = (uint8_t)sqlite3_column_int(entry, 2);
		r->duration_us = (uint64_t)sqlite3_column_int64(entry, 3);
		r->created_ms = (uint64_t)sqlite3_column_int64(entry, 4);
		r->expires_ms = (uint64_t)sqlite3_column_int64(entry, 5);
		sqlite3_bind_int64(inputs, 1, sqlite3_column_int64(entry, 0));
		sqlite3_reset(entry);
		for (m = 0; m < 8 && (rc = sqlite3_step(inputs)) == SQLITE_ROW;
		    m++) {
			struct ref_input *g = &x->got[m];
			const void *d = sqlite3_column_blob(inputs, 2);
			const unsigned char *p = sqlite3_column_text(inputs, 1);

			g->kind = sqlite3_column_int(inputs, 0);
			snprintf(g->path, sizeof g->path, "%s",
			    p ? (const char *)p : "");
			if (d != NULL && sqlite3_column_bytes(inputs, 2) ==
			    TC_DIGEST_BYTES)
				memcpy(g->digest, d, TC_DIGEST_BYTES);
			x->in[m].kind = (uint8_t)g->kind;
			x->in[m].path = g->path;
		}
		if (m < 8 && rc != SQLITE_DONE)
			die("inputs: %s", sqlite3_errmsg(x->db));
		sqlite3_reset(inputs);
		r->ninputs = (uint32_t)m;
		r->inputs = x->in;
	}
	ref_exec(x->db, x->st[RL_COMMIT]);
}

/* A pass of the reference over the n keys, in batches of 1,000; the
 * seconds its batches took. */
static double ref_lookup_pass(struct ref_lookup *x, int hit, uint64_t n,
    uint64_t *done)
{
	uint64_t cursor = 0;
	double spent = 0, t;

	while (cursor < n) {
		size_t k = n - cursor < 1000 ? (size_t)(n - cursor) : 1000;

		next_keys(x->keys, k, hit, n, &cursor);
		t = now_s();
		ref_lookup_batch(x, k);
		spent += now_s() - t;
		check(x->res, k, hit, "ref-lookup");
		*done += k;
	}
	return spent;
}

/*
 * 1,000-key batches through tcached and by the reference on its file,
 * pass for pass in turn (each pass every key once), so that both see the
 * same machine at the same moments; the hits tcached counted are written
 * between passes (it does that once idle), and their CPU time is counted
 * apart.
 */
static int cmd_cmp_lookup(const char *sock, const char *db, uint64_t n,
    int hit, double secs)
{
	struct looker l;
	struct ref_lookup x;
	uint64_t done = 0, ref_done = 0, ignored = 0;
	long long daemon_ns = 0;
	long pid;
	double t0, spent = 0, ref_spent = 0, written = 0;

	looker_init(&l, sock, 1000);
	pid = daemon_pid(l.c);
	ref_lookup_open(&x, db);
	(void)looker_pass(&l, hit, n, 0, &ignored);
	(void)ref_lookup_pass(&x, hit, n, &ignored);
	(void)quiesce(pid, QUIET_IDLE_MS);
	t0 = now_s();
	do {
		long long c0 = cpu_ns(pid);

		spent += looker_pass(&l, hit, n, 0, &done);
		daemon_ns += cpu_ns(pid) - c0;
		written += quiesce(pid, hit ? QUIET_IDLE_MS : QUIET_MS);
		ref_spent += ref_lookup_pass(&x, hit, n, &ref_done);
	} while (now_s() - t0 < secs);
	report("rate", done, spent);
	report("ref", ref_done, ref_spent);
	if (hit)
		printf("hit_write_us=%.3f ", written * 1e6 / (double)done);
	printf("daemon_us=%.3f n=%" PRIu64 "\n",
	    (double)daemon_ns / 1e3 / (double)done, done);
	looker_free(&l);
	ref_lookup_close(&x);
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

enum { RR_BEGIN, RR_COMMIT, RR_FIND, RR_NEWSET, RR_SETROW, RR_PUT, RR_FOUND,
    RR__N };

struct ref_record {
	sqlite3 *db;
	sqlite3_stmt *st[RR__N];
	size_t batch;
	struct rec *recs;
};

static void ref_record_open(struct ref_record **out, const char *path,
    const char *sync, size_t batch)
{
	struct ref_record *x = calloc(1, sizeof *x);

	if (x == NULL || (x->recs = calloc(batch, sizeof *x->recs)) == NULL)
		die("out of memory");
	x->batch = batch;
	x->db = ref_open(path, sync);
	x->st[RR_BEGIN] = ref_prepare(x->db, "BEGIN IMMEDIATE");
	x->st[RR_COMMIT] = ref_prepare(x->db, "COMMIT");
	x->st[RR_FIND] = ref_prepare(x->db,
	    "SELECT id FROM inputsets WHERE hash = ?1 LIMIT 1");
	x->st[RR_NEWSET] = ref_prepare(x->db,
	    "INSERT INTO inputsets(hash) VALUES (?1)");
	x->st[RR_SETROW] = ref_prepare(x->db, "INSERT INTO setinputs(setid, "
	    "kind, path, abspath, digest) VALUES (?1, ?2, ?3, ?4, ?5)");
	x->st[RR_PUT] = ref_prepare(x->db, "INSERT OR REPLACE INTO "
	    "entries(key, project, test, root, outcome, flaky, duration_us, "
	    "message, created, expires, hits, last_used, inputset) VALUES "
	    "(?1, ?2, ?3, ?4, ?5, 0, ?6, ?7, ?8, ?9, 0, ?8, ?10)");
	x->st[RR_FOUND] = ref_prepare(x->db, "INSERT OR REPLACE INTO "
	    "inputs(entry, kind, path, abspath, digest) "
	    "VALUES (?1, ?2, ?3, ?4, ?5)");
	*out = x;
}

static void ref_record_close(struct ref_record *x)
{
	ref_close(x->db, x->st, RR__N);
	free(x->recs);
	free(x);
}

/* The set of r's declared inputs: found by its hash, or made. */
static int64_t ref_set(struct ref_record *x, const tc_record *r,
    char (*abs)[160])
{
	sqlite3_stmt *find = x->st[RR_FIND];
	int64_t hash = ref_set_hash(r, abs), setid;
	int rc;

	sqlite3_bind_int64(find, 1, hash);
	if ((rc = sqlite3_step(find)) == SQLITE_ROW) {
		setid = sqlite3_column_int64(find, 0);
		sqlite3_reset(find);
		return setid;
	}
	if (rc != SQLITE_DONE)
		die("find set: %s", sqlite3_errmsg(x->db));
	sqlite3_reset(find);
	sqlite3_bind_int64(x->st[RR_NEWSET], 1, hash);
	ref_exec(x->db, x->st[RR_NEWSET]);
	setid = sqlite3_last_insert_rowid(x->db);
	for (uint32_t j = 0; j < r->ninputs; j++) {
		if (r->inputs[j].kind == TC_INPUT_FOUND)
			continue;
		bind_input(x->st[RR_SETROW], setid, &r->inputs[j], abs[j]);
		ref_exec(x->db, x->st[RR_SETROW]);
	}
	return setid;
}

/* One batch of new records (key space seed, from *next on) in one write
 * transaction; the seconds it took (making the records is not counted). */
static double ref_record_batch(struct ref_record *x, const char *seed,
    uint64_t *next)
{
	sqlite3_stmt *put = x->st[RR_PUT];
	char abs[NINPUTS][160];
	uint64_t now;
	int64_t setid, entry;
	double t;

	for (size_t i = 0; i < x->batch; i++)
		make_record(&x->recs[i], seed, (*next)++);
	t = now_s();
	now = now_ms();
	ref_exec(x->db, x->st[RR_BEGIN]);
	for (size_t i = 0; i < x->batch; i++) {
		const tc_record *r = &x->recs[i].r;

		for (uint32_t j = 0; j < r->ninputs; j++)
			if (r->inputs[j].kind == TC_INPUT_ENV)
				abs[j][0] = '\0';
			else
				snprintf(abs[j], sizeof abs[j], "%s/%s",
				    r->root, r->inputs[j].path);
		setid = ref_set(x, r, abs);
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
		ref_exec(x->db, put);
		entry = sqlite3_last_insert_rowid(x->db);
		for (uint32_t j = 0; j < r->ninputs; j++) {
			if (r->inputs[j].kind != TC_INPUT_FOUND)
				continue;
			bind_input(x->st[RR_FOUND], entry, &r->inputs[j],
			    abs[j]);
			ref_exec(x->db, x->st[RR_FOUND]);
		}
	}
	ref_exec(x->db, x->st[RR_COMMIT]);
	return now_s() - t;
}

static int cmd_ref_record(const char *path, size_t batch, const char *seed,
    double secs, const char *sync)
{
	struct ref_record *x;
	uint64_t next = 0, done = 0;
	double t0, spent = 0;

	ref_record_open(&x, path, sync, batch);
	t0 = now_s();
	do {
		spent += ref_record_batch(x, seed, &next);
		done += batch;
	} while (now_s() - t0 < secs);
	report("rate", done, spent);
	printf("n=%" PRIu64 "\n", done);
	ref_record_close(x);
	return 0;
}

static int hit_arg(const char *s)
{
	if (strcmp(s, "hit") == 0)
		return 1;
	if (strcmp(s, "miss") == 0)
		return 0;
	die("hit or miss, not %s", s);
}

static size_t batch_arg(const char *s)
{
	long b = arg_long(s, 1);

	if (b > MAX_BATCH)
		die("batch over 4096: %s", s);
	return (size_t)b;
}

static unsigned clients_arg(const char *s)
{
	long c = arg_long(s, 1);

	if (c > MAX_CLIENTS)
		die("at most 64 clients, not %s", s);
	return (unsigned)c;
}

int main(int argc, char **argv)
{
	const char *cmd = argc > 1 ? argv[1] : "";

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (strcmp(cmd, "fill") == 0 && argc == 4)
		return cmd_fill(argv[2], (uint64_t)arg_long(argv[3], 1));
	if (strcmp(cmd, "lookup") == 0 && argc == 7)
		return cmd_lookup(argv[2], (uint64_t)arg_long(argv[3], 1),
		    batch_arg(argv[4]), hit_arg(argv[5]), arg_double(argv[6]));
	if (strcmp(cmd, "cmp-lookup") == 0 && argc == 7)
		return cmd_cmp_lookup(argv[2], argv[3],
		    (uint64_t)arg_long(argv[4], 1), hit_arg(argv[5]),
		    arg_double(argv[6]));
	if (strcmp(cmd, "record") == 0 && argc == 7)
		return cmd_record(argv[2], NULL, clients_arg(argv[3]),
		    batch_arg(argv[4]), argv[5], arg_double(argv[6]));
	if (strcmp(cmd, "cmp-record") == 0 && argc == 8)
		return cmd_record(argv[2], argv[3], clients_arg(argv[4]),
		    batch_arg(argv[5]), argv[6], arg_double(argv[7]));
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
	    "       tput cmp-lookup SOCK DB N hit|miss SECS\n"
	    "       tput record SOCK CLIENTS BATCH SEED SECS\n"
	    "       tput cmp-record SOCK DB CLIENTS BATCH SEED SECS\n"
	    "       tput ref-record DB BATCH SEED SECS normal|full\n");
	return 2;
}
