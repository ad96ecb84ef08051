/*
 * Unit tests of daemon/store.c on a temporary database.  Times are passed
 * explicitly: nothing sleeps.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "daemon/store.h"
#include "proto/limits.h"
#include "proto/proto.h"

#define TTL 1000u		/* default time to live in the tests, ms */
#define T0 1000000u		/* a "now" far from zero */

struct fx {
	char dir[64];
	char path[128];
	struct store *s;
	struct store_config cfg;
};

/* --- helpers --- */

static void key_of(uint8_t key[TC_DIGEST_BYTES], unsigned n)
{
	memset(key, 0, TC_DIGEST_BYTES);
	key[0] = (uint8_t)(n >> 8);
	key[1] = (uint8_t)n;
	key[31] = 0xee;
}

static void fx_open(struct fx *f)
{
	char err[1024];

	err[0] = 'x';
	assert_int_equal(store_open(&f->s, &f->cfg, err, sizeof err),
	    STORE_OK);
	assert_non_null(f->s);
	assert_string_equal(err, "");
}

static int fx_setup_max(void **state, uint64_t max)
{
	struct fx *f = calloc(1, sizeof *f);

	assert_non_null(f);
	snprintf(f->dir, sizeof f->dir, "/tmp/tcache-store-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof f->path, "%s/tcache.db", f->dir);
	f->cfg.path = f->path;
	f->cfg.ttl_ms = TTL;
	f->cfg.max_entries = max;
	fx_open(f);
	*state = f;
	return 0;
}

static int fx_setup(void **state)
{
	return fx_setup_max(state, 0);
}

static int fx_setup_max3(void **state)
{
	return fx_setup_max(state, 3);
}

static int fx_teardown(void **state)
{
	struct fx *f = *state;
	struct dirent *de;
	char p[512];
	DIR *d;

	store_close(f->s);
	assert_non_null(d = opendir(f->dir));
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof p, "%s/%s", f->dir, de->d_name);
		assert_int_equal(unlink(p), 0);
	}
	closedir(d);
	assert_int_equal(rmdir(f->dir), 0);
	free(f);
	return 0;
}

static void fx_reopen(struct fx *f)
{
	store_close(f->s);
	f->s = NULL;
	fx_open(f);
}

/* Records one entry under root in its own transaction; returns the flaky
 * flag. */
static int put_root(struct store *s, unsigned k, const char *test,
    const char *root, int outcome, uint64_t now, const tc_input *in,
    uint32_t nin)
{
	tc_record r = { .project = "proj", .test = test, .root = root,
	    .outcome = (uint8_t)outcome, .duration_us = 100 + k,
	    .message = "msg", .ninputs = nin, .inputs = in };
	int flaky = -1;

	key_of(r.key, k);
	assert_int_equal(store_begin(s), STORE_OK);
	assert_int_equal(store_record(s, &r, now, &flaky), STORE_OK);
	assert_int_equal(store_commit(s), STORE_OK);
	assert_int_equal(store_in_txn(s), 0);
	return flaky;
}

static int put(struct store *s, unsigned k, const char *test, int outcome,
    uint64_t now, const tc_input *in, uint32_t nin)
{
	return put_root(s, k, test, "/p", outcome, now, in, nin);
}

static void put_path(struct store *s, unsigned k, const char *path,
    uint64_t now)
{
	tc_input in = { .kind = TC_INPUT_FILE, .path = (char *)path };

	memset(in.digest, 0x11, sizeof in.digest);
	put(s, k, "t", TC_PASS, now, &in, 1);
}

/* 1 when the key has a live entry at now (counts a lookup). */
static int live(struct store *s, unsigned k, uint64_t now)
{
	uint8_t key[TC_DIGEST_BYTES];
	tc_result r;
	int found;

	key_of(key, k);
	assert_int_equal(store_lookup(s, key, now, &r), STORE_OK);
	found = r.found;
	proto_result_clear(&r);
	return found;
}

static uint64_t stat_of(struct store *s, const char *name)
{
	tc_stat *st;
	size_t n;
	uint64_t v = UINT64_MAX;

	assert_int_equal(store_stats(s, &st, &n), STORE_OK);
	for (size_t i = 0; i < n; i++) {
		if (strcmp(st[i].name, name) == 0)
			v = st[i].value;
	}
	proto_stats_free(st, n);
	assert_true(v != UINT64_MAX);
	return v;
}

static uint64_t inv_count(struct store *s, int mode, const char *arg)
{
	struct store_filter f = { .mode = mode, .arg = arg };
	uint64_t n = UINT64_MAX;

	assert_int_equal(store_invalidate_count(s, &f, &n), STORE_OK);
	return n;
}

/* Removes everything the filter matches in steps of limit; returns the
 * total, and the number of steps in *steps. */
static uint64_t inv_run(struct store *s, const struct store_filter *f,
    unsigned limit, unsigned *steps)
{
	uint64_t total = 0, removed;

	*steps = 0;
	assert_int_equal(store_begin(s), STORE_OK);
	do {
		assert_int_equal(store_invalidate_step(s, f, limit, &removed),
		    STORE_OK);
		assert_true(removed <= limit);
		total += removed;
		(*steps)++;
	} while (removed == limit);
	assert_int_equal(store_commit(s), STORE_OK);
	return total;
}

static uint64_t inv_path(struct store *s, const char *path)
{
	struct store_filter f = { .mode = TC_INV_PATH, .arg = path };
	unsigned steps;

	return inv_run(s, &f, 100, &steps);
}

static long file_size(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 ? (long)sb.st_size : -1;
}

static void *file_read(const char *path, long *len)
{
	FILE *fp = fopen(path, "rb");
	char *buf;

	assert_non_null(fp);
	*len = file_size(path);
	assert_true(*len >= 0);
	assert_non_null(buf = malloc((size_t)*len + 1));
	assert_int_equal(fread(buf, 1, (size_t)*len, fp), (size_t)*len);
	fclose(fp);
	return buf;
}

/* The name of the first "tcache.db.damaged-*" file in dir (not -wal or
 * -shm), or "" when there is none. */
static void damaged_name(const char *dir, char *out, size_t len)
{
	struct dirent *de;
	size_t n;
	DIR *d;

	out[0] = '\0';
	assert_non_null(d = opendir(dir));
	while ((de = readdir(d)) != NULL) {
		n = strlen(de->d_name);
		if (strncmp(de->d_name, "tcache.db.damaged-", 18) == 0 &&
		    (n < 4 || (strcmp(de->d_name + n - 4, "-wal") != 0 &&
		    strcmp(de->d_name + n - 4, "-shm") != 0)))
			snprintf(out, len, "%s/%s", dir, de->d_name);
	}
	closedir(d);
}

/* One integer from the database, read beside the store on a connection
 * of its own. */
static int64_t db_int(const struct fx *f, const char *sql)
{
	sqlite3_stmt *st;
	sqlite3 *db;
	int64_t v;

	assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY,
	    NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	assert_int_equal(sqlite3_finalize(st), SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	return v;
}

static void db_exec(const struct fx *f, const char *sql)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static int64_t nsets(const struct fx *f)
{
	return db_int(f, "SELECT count(*) FROM inputsets");
}

static int64_t nsetrows(const struct fx *f)
{
	return db_int(f, "SELECT count(*) FROM setinputs");
}

/* The set of the entry of test (0: none). */
static int64_t set_of(const struct fx *f, const char *test)
{
	char sql[256];

	snprintf(sql, sizeof sql, "SELECT coalesce(max(inputset), 0) FROM "
	    "entries WHERE test = '%s'", test);
	return db_int(f, sql);
}

/* Every set is used by an entry, every set row has its set. */
static void assert_no_orphans(const struct fx *f)
{
	assert_int_equal(db_int(f, "SELECT count(*) FROM inputsets WHERE id "
	    "NOT IN (SELECT inputset FROM entries WHERE inputset IS NOT "
	    "NULL)"), 0);
	assert_int_equal(db_int(f, "SELECT count(*) FROM setinputs WHERE "
	    "setid NOT IN (SELECT id FROM inputsets)"), 0);
	assert_int_equal(db_int(f, "SELECT count(*) FROM entries WHERE "
	    "inputset IS NOT NULL AND inputset NOT IN (SELECT id FROM "
	    "inputsets)"), 0);
}

/* --- lookup and record --- */

static void test_record_lookup_hit(void **state)
{
	struct fx *f = *state;
	tc_input in[3] = {
		{ .kind = TC_INPUT_FILE, .path = "src/a.c" },
		{ .kind = TC_INPUT_FOUND, .path = "data/x.txt" },
		{ .kind = TC_INPUT_ENV, .path = "HOME" },
	};
	uint8_t key[TC_DIGEST_BYTES];
	tc_result r;

	memset(in[1].digest, 0xab, TC_DIGEST_BYTES);
	assert_int_equal(put(f->s, 1, "t1", TC_PASS, T0, in, 3), 0);
	assert_int_equal(store_entries(f->s), 1);

	key_of(key, 1);
	assert_int_equal(store_lookup(f->s, key, T0 + 10, &r), STORE_OK);
	assert_int_equal(r.found, 1);
	assert_int_equal(r.outcome, TC_PASS);
	assert_int_equal(r.flaky, 0);
	assert_int_equal(r.duration_us, 101);
	assert_int_equal(r.created_ms, T0);
	assert_int_equal(r.expires_ms, T0 + TTL);
	/* Only the discovered inputs come back, for the client to verify. */
	assert_int_equal(r.ninputs, 1);
	assert_int_equal(r.inputs[0].kind, TC_INPUT_FOUND);
	assert_string_equal(r.inputs[0].path, "data/x.txt");
	assert_memory_equal(r.inputs[0].digest, in[1].digest, TC_DIGEST_BYTES);
	proto_result_clear(&r);

	assert_int_equal(live(f->s, 2, T0), 0);
	assert_int_equal(stat_of(f->s, "hits"), 1);
	assert_int_equal(stat_of(f->s, "misses"), 1);
	assert_int_equal(stat_of(f->s, "time_saved_us"), 101);
	assert_int_equal(stat_of(f->s, "records"), 1);
	assert_int_equal(stat_of(f->s, "entries"), 1);
	assert_true(stat_of(f->s, "db_bytes") > 0);
}

static void test_hit_bumps_entry(void **state)
{
	struct fx *f = *state;
	tc_entry e;
	tc_input *in;
	size_t nin;
	int found;

	put(f->s, 1, "t1", TC_PASS, T0, NULL, 0);
	/* Without a transaction the hits wait for the next one (the same
	 * entry's twice in one slot), and a reader sees them meanwhile;
	 * within one they are written at once. */
	assert_int_equal(live(f->s, 1, T0 + 1), 1);
	assert_int_equal(live(f->s, 1, T0 + 2), 1);
	assert_int_equal(store_touches(f->s), 1);
	assert_int_equal(store_explain(f->s, "proj", "t1", &found, &e, &in,
	    &nin), STORE_OK);
	assert_int_equal(e.hits, 2);
	assert_int_equal(e.last_used_ms, T0 + 2);
	proto_entry_clear(&e);
	proto_inputs_free(in, nin);
	assert_int_equal(store_begin(f->s), STORE_OK);
	assert_int_equal(store_touches(f->s), 0);
	assert_int_equal(live(f->s, 1, T0 + 5), 1);
	assert_int_equal(store_commit(f->s), STORE_OK);
	assert_int_equal(store_explain(f->s, "proj", "t1", &found, &e, &in,
	    &nin), STORE_OK);
	assert_int_equal(found, 1);
	assert_int_equal(e.hits, 3);
	assert_int_equal(e.last_used_ms, T0 + 5);
	proto_entry_clear(&e);
	proto_inputs_free(in, nin);
	assert_int_equal(stat_of(f->s, "hits"), 3);
}

/* A record that brings a dead entry back starts it from no hits, though
 * a hit of its past life still waits in memory. */
static void test_hits_reset_by_record(void **state)
{
	struct fx *f = *state;
	tc_record r = { .project = "proj", .test = "t1", .root = "/p",
	    .outcome = TC_PASS };
	tc_entry e;
	tc_input *in;
	size_t nin;
	int found, flaky;

	put(f->s, 1, "t1", TC_PASS, T0, NULL, 0);
	assert_int_equal(live(f->s, 1, T0 + 1), 1);
	assert_int_equal(store_touches(f->s), 1);
	assert_int_equal(store_begin_touches(f->s, 0), STORE_OK);
	assert_int_equal(store_touches(f->s), 1);
	key_of(r.key, 1);
	assert_int_equal(store_record(f->s, &r, T0 + TTL + 1, &flaky),
	    STORE_OK);
	assert_int_equal(store_commit(f->s), STORE_OK);
	assert_int_equal(store_begin(f->s), STORE_OK);
	assert_int_equal(store_touches(f->s), 0);
	assert_int_equal(store_commit(f->s), STORE_OK);
	assert_int_equal(store_explain(f->s, "proj", "t1", &found, &e, &in,
	    &nin), STORE_OK);
	assert_int_equal(found, 1);
	assert_int_equal(e.hits, 0);
	assert_int_equal(e.last_used_ms, T0 + TTL + 1);
	proto_entry_clear(&e);
	proto_inputs_free(in, nin);
}

static void test_fail_is_not_a_hit(void **state)
{
	struct fx *f = *state;
	uint8_t key[TC_DIGEST_BYTES];
	tc_result r;

	put(f->s, 1, "t1", TC_FAIL, T0, NULL, 0);
	key_of(key, 1);
	assert_int_equal(store_lookup(f->s, key, T0 + 1, &r), STORE_OK);
	assert_int_equal(r.found, 1);
	assert_int_equal(r.outcome, TC_FAIL);
	proto_result_clear(&r);
	assert_int_equal(stat_of(f->s, "hits"), 0);
	assert_int_equal(stat_of(f->s, "misses"), 1);
	assert_int_equal(stat_of(f->s, "time_saved_us"), 0);
}

static void test_expiry(void **state)
{
	struct fx *f = *state;
	tc_record r = { .project = "", .test = "t", .root = "/p",
	    .outcome = TC_PASS, .ttl_ms = 50 };
	int flaky;

	put(f->s, 1, "t1", TC_PASS, T0, NULL, 0);
	assert_int_equal(live(f->s, 1, T0 + TTL - 1), 1);
	assert_int_equal(live(f->s, 1, T0 + TTL), 0);
	/* A record's own ttl wins over the default. */
	key_of(r.key, 2);
	assert_int_equal(store_begin(f->s), STORE_OK);
	assert_int_equal(store_record(f->s, &r, T0, &flaky), STORE_OK);
	assert_int_equal(store_commit(f->s), STORE_OK);
	assert_int_equal(live(f->s, 2, T0 + 49), 1);
	assert_int_equal(live(f->s, 2, T0 + 50), 0);
	/* An expired entry is still there until swept. */
	assert_int_equal(store_entries(f->s), 2);
}

static void test_flaky(void **state)
{
	struct fx *f = *state;
	uint8_t key[TC_DIGEST_BYTES];
	tc_result r;

	assert_int_equal(put(f->s, 1, "t1", TC_PASS, T0, NULL, 0), 0);
	assert_int_equal(put(f->s, 1, "t1", TC_PASS, T0 + 1, NULL, 0), 0);
	assert_int_equal(put(f->s, 1, "t1", TC_FAIL, T0 + 2, NULL, 0), 1);
	assert_int_equal(stat_of(f->s, "flaky_marked"), 1);
	assert_int_equal(stat_of(f->s, "flaky_entries"), 1);
	/* Flaky stays until the entry is replaced after expiry. */
	assert_int_equal(put(f->s, 1, "t1", TC_PASS, T0 + 3, NULL, 0), 1);
	assert_int_equal(stat_of(f->s, "flaky_marked"), 1);
	key_of(key, 1);
	assert_int_equal(store_lookup(f->s, key, T0 + 4, &r), STORE_OK);
	assert_int_equal(r.found, 1);
	assert_int_equal(r.outcome, TC_PASS);
	assert_int_equal(r.flaky, 1);
	proto_result_clear(&r);
	assert_int_equal(stat_of(f->s, "hits"), 0);
	assert_int_equal(stat_of(f->s, "misses"), 1);

	/* Recorded again after it expired: a clean entry. */
	assert_int_equal(put(f->s, 1, "t1", TC_FAIL, T0 + 3 + TTL, NULL, 0),
	    0);
	assert_int_equal(stat_of(f->s, "flaky_entries"), 0);
	assert_int_equal(store_entries(f->s), 1);
	assert_int_equal(stat_of(f->s, "records"), 5);
}

/* Outcomes that differ because a discovered file changed (the key does not
 * cover it) are not flaky: the newer record simply replaces the entry. */
static void test_flaky_needs_same_discovered_inputs(void **state)
{
	struct fx *f = *state;
	tc_input a = { .kind = TC_INPUT_FOUND, .path = (char *)"data.txt" };
	tc_input b = a;

	memset(a.digest, 0xaa, sizeof a.digest);
	memset(b.digest, 0xbb, sizeof b.digest);
	assert_int_equal(put(f->s, 1, "t1", TC_PASS, T0, &a, 1), 0);
	assert_int_equal(put(f->s, 1, "t1", TC_FAIL, T0 + 1, &b, 1), 0);
	assert_int_equal(put(f->s, 1, "t1", TC_PASS, T0 + 2, &a, 1), 0);
	assert_int_equal(stat_of(f->s, "flaky_entries"), 0);
	assert_int_equal(stat_of(f->s, "flaky_marked"), 0);
	/* The same discovered inputs and another outcome: flaky. */
	assert_int_equal(put(f->s, 1, "t1", TC_FAIL, T0 + 3, &a, 1), 1);
	assert_int_equal(stat_of(f->s, "flaky_entries"), 1);
	assert_int_equal(stat_of(f->s, "flaky_marked"), 1);
	/* A discovered input gone is another state too. */
	assert_int_equal(put(f->s, 1, "t1", TC_PASS, T0 + 4, NULL, 0), 0);
	assert_int_equal(stat_of(f->s, "flaky_entries"), 0);
}

static void test_message_truncated(void **state)
{
	struct fx *f = *state;
	char msg[TC_MAX_MESSAGE + 500];
	tc_record r = { .project = "", .test = "t", .root = "/p",
	    .outcome = TC_FAIL, .message = msg };
	tc_entry e;
	tc_input *in;
	size_t nin;
	int found, flaky;

	memset(msg, 'm', sizeof msg - 1);
	msg[sizeof msg - 1] = '\0';
	/* A two-byte UTF-8 character across the cut is not split. */
	msg[TC_MAX_MESSAGE - 1] = (char)0xc3;
	msg[TC_MAX_MESSAGE] = (char)0xa9;
	key_of(r.key, 1);
	assert_int_equal(store_begin(f->s), STORE_OK);
	assert_int_equal(store_record(f->s, &r, T0, &flaky), STORE_OK);
	assert_int_equal(store_commit(f->s), STORE_OK);
	assert_int_equal(store_explain(f->s, "", "t", &found, &e, &in, &nin),
	    STORE_OK);
	assert_int_equal(found, 1);
	assert_int_equal(strlen(e.message), TC_MAX_MESSAGE - 1);
	proto_entry_clear(&e);
	proto_inputs_free(in, nin);
}

static void test_record_needs_txn(void **state)
{
	struct fx *f = *state;
	tc_record r = { .project = "", .test = "t", .root = "/p",
	    .outcome = TC_PASS };
	int flaky;

	assert_int_equal(store_record(f->s, &r, T0, &flaky), STORE_EFAIL);
	assert_true(strlen(store_error(f->s)) > 0);
	assert_int_equal(store_entries(f->s), 0);
}

/* --- transactions --- */

static void test_savepoint_rollback(void **state)
{
	struct fx *f = *state;
	tc_record r = { .project = "", .test = "t", .root = "/p",
	    .outcome = TC_PASS };
	int flaky;

	assert_int_equal(store_begin(f->s), STORE_OK);
	assert_int_equal(store_savepoint(f->s), STORE_OK);
	key_of(r.key, 1);
	assert_int_equal(store_record(f->s, &r, T0, &flaky), STORE_OK);
	assert_int_equal(store_release(f->s), STORE_OK);

	assert_int_equal(store_savepoint(f->s), STORE_OK);
	key_of(r.key, 2);
	assert_int_equal(store_record(f->s, &r, T0, &flaky), STORE_OK);
	key_of(r.key, 3);
	assert_int_equal(store_record(f->s, &r, T0, &flaky), STORE_OK);
	assert_int_equal(store_entries(f->s), 3);
	assert_int_equal(store_rollback_savepoint(f->s), STORE_OK);
	assert_int_equal(store_in_txn(f->s), 1);
	assert_int_equal(store_entries(f->s), 1);
	assert_int_equal(store_commit(f->s), STORE_OK);

	assert_int_equal(live(f->s, 1, T0), 1);
	assert_int_equal(live(f->s, 2, T0), 0);
	assert_int_equal(live(f->s, 3, T0), 0);
	assert_int_equal(stat_of(f->s, "records"), 1);
	fx_reopen(f);
	assert_int_equal(store_entries(f->s), 1);
	assert_int_equal(live(f->s, 1, T0), 1);
}

/* The first frame of a transaction needs no savepoint of its own (the
 * transaction is one): undoing it undoes only it, and the transaction
 * stays open under the same number; the frames after it get one. */
static void test_savepoint_first_frame(void **state)
{
	struct fx *f = *state;
	tc_record r = { .project = "", .test = "t", .root = "/p",
	    .outcome = TC_PASS };
	uint64_t serial;
	int flaky;

	put(f->s, 1, "t1", TC_PASS, T0, NULL, 0);
	assert_int_equal(store_begin(f->s), STORE_OK);
	serial = store_txn_serial(f->s);
	assert_int_equal(store_savepoint(f->s), STORE_OK);
	key_of(r.key, 2);
	assert_int_equal(store_record(f->s, &r, T0, &flaky), STORE_OK);
	key_of(r.key, 3);
	assert_int_equal(store_record(f->s, &r, T0, &flaky), STORE_OK);
	assert_int_equal(store_entries(f->s), 3);
	assert_int_equal(store_rollback_savepoint(f->s), STORE_OK);
	assert_int_equal(store_in_txn(f->s), 1);
	assert_int_equal(store_txn_serial(f->s), serial);
	assert_true(store_lost_serial(f->s) < serial);
	assert_int_equal(store_entries(f->s), 1);

	assert_int_equal(store_savepoint(f->s), STORE_OK);
	key_of(r.key, 4);
	assert_int_equal(store_record(f->s, &r, T0, &flaky), STORE_OK);
	assert_int_equal(store_release(f->s), STORE_OK);
	assert_int_equal(store_savepoint(f->s), STORE_OK);
	key_of(r.key, 5);
	assert_int_equal(store_record(f->s, &r, T0, &flaky), STORE_OK);
	assert_int_equal(store_rollback_savepoint(f->s), STORE_OK);
	assert_int_equal(store_entries(f->s), 2);
	assert_int_equal(store_commit(f->s), STORE_OK);

	assert_int_equal(live(f->s, 1, T0), 1);
	assert_int_equal(live(f->s, 2, T0), 0);
	assert_int_equal(live(f->s, 3, T0), 0);
	assert_int_equal(live(f->s, 4, T0), 1);
	assert_int_equal(live(f->s, 5, T0), 0);
	assert_int_equal(stat_of(f->s, "records"), 2);
	fx_reopen(f);
	assert_int_equal(store_entries(f->s), 2);
	assert_int_equal(live(f->s, 4, T0), 1);
}

static void test_rollback(void **state)
{
	struct fx *f = *state;
	tc_record r = { .project = "", .test = "t", .root = "/p",
	    .outcome = TC_PASS };
	int flaky;

	put(f->s, 1, "t", TC_PASS, T0, NULL, 0);
	assert_int_equal(store_begin(f->s), STORE_OK);
	key_of(r.key, 2);
	assert_int_equal(store_record(f->s, &r, T0, &flaky), STORE_OK);
	store_rollback(f->s);
	assert_int_equal(store_in_txn(f->s), 0);
	assert_int_equal(store_entries(f->s), 1);
	assert_int_equal(stat_of(f->s, "records"), 1);
	assert_int_equal(live(f->s, 2, T0), 0);
}

/* --- invalidation --- */

/* Entries 1..6: /p/src/a.c, /p/src/sub/b.c, /p/srcx/c.c, /p/src.c, env
 * only, /etc/conf (absolute, outside the root). */
static void put_tree(struct store *s)
{
	tc_input env = { .kind = TC_INPUT_ENV, .path = "HOME" };
	tc_input found = { .kind = TC_INPUT_FOUND, .path = "src/sub/b.c" };

	put_path(s, 1, "src/a.c", T0);
	put(s, 2, "t", TC_PASS, T0, &found, 1);
	put_path(s, 3, "srcx/c.c", T0);
	put_path(s, 4, "src.c", T0);
	put(s, 5, "t", TC_PASS, T0, &env, 1);
	put_path(s, 6, "/etc/conf", T0);
	assert_int_equal(store_entries(s), 6);
}

static void test_invalidate_path_file(void **state)
{
	struct fx *f = *state;

	put_tree(f->s);
	assert_int_equal(inv_count(f->s, TC_INV_PATH, "/p/src/a.c"), 1);
	assert_int_equal(inv_count(f->s, TC_INV_PATH, "/etc/conf"), 1);
	assert_int_equal(inv_count(f->s, TC_INV_PATH, "/p/src/a"), 0);
	assert_int_equal(inv_path(f->s, "/p/src/a.c"), 1);
	assert_int_equal(live(f->s, 1, T0), 0);
	assert_int_equal(store_entries(f->s), 5);
	assert_int_equal(stat_of(f->s, "invalidated"), 1);
}

static void test_invalidate_path_dir(void **state)
{
	struct fx *f = *state;

	put_tree(f->s);
	/* Dry run: counted, nothing removed. */
	assert_int_equal(inv_count(f->s, TC_INV_PATH, "/p/src"), 2);
	assert_int_equal(inv_count(f->s, TC_INV_PATH, "/p/src/"), 2);
	assert_int_equal(inv_count(f->s, TC_INV_PATH, "/p/src//"), 2);
	assert_int_equal(inv_count(f->s, TC_INV_PATH, "/p"), 4);
	assert_int_equal(inv_count(f->s, TC_INV_PATH, "/"), 5);
	assert_int_equal(store_entries(f->s), 6);

	assert_int_equal(inv_path(f->s, "/p/src/"), 2);
	assert_int_equal(live(f->s, 1, T0), 0);
	assert_int_equal(live(f->s, 2, T0), 0);
	/* Siblings that share the prefix are untouched. */
	assert_int_equal(live(f->s, 3, T0), 1);
	assert_int_equal(live(f->s, 4, T0), 1);
	assert_int_equal(inv_path(f->s, "/p/srcx"), 1);
	assert_int_equal(live(f->s, 4, T0), 1);
	assert_int_equal(inv_path(f->s, "/"), 2);
	assert_int_equal(live(f->s, 5, T0), 1);
	assert_int_equal(store_entries(f->s), 1);
	assert_int_equal(stat_of(f->s, "invalidated"), 5);
}

static void test_invalidate_test_key_all(void **state)
{
	struct fx *f = *state;
	struct store_filter fk = { .mode = TC_INV_KEY };
	struct store_filter fa = { .mode = TC_INV_ALL };
	struct store_filter ft = { .mode = TC_INV_TEST, .arg = "mod::*" };
	uint64_t n;
	unsigned steps;

	put(f->s, 1, "mod::test_a", TC_PASS, T0, NULL, 0);
	put(f->s, 2, "mod::test_b", TC_PASS, T0, NULL, 0);
	put(f->s, 3, "other::x", TC_PASS, T0, NULL, 0);
	put(f->s, 4, "other::y", TC_PASS, T0, NULL, 0);
	put(f->s, 5, "z", TC_PASS, T0, NULL, 0);
	assert_int_equal(inv_count(f->s, TC_INV_TEST, "mod::*"), 2);
	assert_int_equal(inv_count(f->s, TC_INV_TEST, "mod::test_[a]"), 1);
	assert_int_equal(inv_count(f->s, TC_INV_TEST, "MOD::*"), 0);
	assert_int_equal(inv_count(f->s, TC_INV_TEST, "*::?"), 2);
	assert_int_equal(inv_run(f->s, &ft, 100, &steps), 2);
	assert_int_equal(live(f->s, 1, T0), 0);
	assert_int_equal(live(f->s, 3, T0), 1);

	key_of(fk.key, 3);
	assert_int_equal(store_invalidate_count(f->s, &fk, &n), STORE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(inv_run(f->s, &fk, 100, &steps), 1);
	assert_int_equal(live(f->s, 3, T0), 0);
	assert_int_equal(live(f->s, 4, T0), 1);

	assert_int_equal(store_invalidate_count(f->s, &fa, &n), STORE_OK);
	assert_int_equal(n, 2);
	assert_int_equal(inv_run(f->s, &fa, 100, &steps), 2);
	assert_int_equal(store_entries(f->s), 0);
	assert_int_equal(stat_of(f->s, "invalidated"), 5);
}

static void test_invalidate_steps(void **state)
{
	struct fx *f = *state;
	struct store_filter fp = { .mode = TC_INV_PATH, .arg = "/p/dir" };
	struct store_filter fa = { .mode = TC_INV_ALL };
	tc_input in[3] = {
		{ .kind = TC_INPUT_FILE, .path = "dir/a" },
		{ .kind = TC_INPUT_FILE, .path = "dir/b" },
		{ .kind = TC_INPUT_FOUND, .path = "dir/c" },
	};
	unsigned steps;

	for (unsigned k = 1; k <= 10; k++)
		put(f->s, k, "t", TC_PASS, T0, in, 3);
	put(f->s, 11, "t", TC_PASS, T0, NULL, 0);
	/* Three inputs an entry: a step still removes limit entries. */
	assert_int_equal(inv_run(f->s, &fp, 3, &steps), 10);
	assert_int_equal(steps, 4);
	assert_int_equal(store_entries(f->s), 1);
	assert_int_equal(live(f->s, 11, T0), 1);
	for (unsigned k = 1; k <= 6; k++)
		put(f->s, k, "t", TC_PASS, T0, in, 3);
	assert_int_equal(inv_run(f->s, &fa, 2, &steps), 7);
	assert_int_equal(steps, 4);
	assert_int_equal(store_entries(f->s), 0);
	assert_int_equal(stat_of(f->s, "invalidated"), 17);
}

/* Entries matched through their set, their own inputs, or both: each
 * counted and removed once, a step still removes limit entries. */
static void test_invalidate_sets_steps(void **state)
{
	struct fx *f = *state;
	struct store_filter fp = { .mode = TC_INV_PATH, .arg = "/p/dir" };
	tc_input decl[2] = {
		{ .kind = TC_INPUT_FILE, .path = "dir/a" },
		{ .kind = TC_INPUT_FILE, .path = "dir/b" },
	};
	tc_input both[3] = {
		{ .kind = TC_INPUT_FILE, .path = "dir/a" },
		{ .kind = TC_INPUT_FILE, .path = "dir/b" },
		{ .kind = TC_INPUT_FOUND, .path = "dir/c" },
	};
	tc_input own = { .kind = TC_INPUT_FOUND, .path = "dir/c" };
	tc_input other = { .kind = TC_INPUT_FILE, .path = "dirx/a" };
	unsigned steps;
	tc_entry *e;
	size_t n;
	uint64_t next;

	for (unsigned k = 1; k <= 10; k++)
		put(f->s, k, "t", TC_PASS, T0, decl, 2);
	put(f->s, 11, "t", TC_PASS, T0, &own, 1);
	put(f->s, 12, "t", TC_PASS, T0, &own, 1);
	put(f->s, 13, "t", TC_PASS, T0, both, 3);
	put(f->s, 14, "t", TC_PASS, T0, &other, 1);
	assert_int_equal(nsets(f), 2);
	assert_int_equal(inv_count(f->s, TC_INV_PATH, "/p/dir"), 13);
	assert_int_equal(inv_count(f->s, TC_INV_PATH, "/p/dir/b"), 11);
	assert_int_equal(inv_count(f->s, TC_INV_PATH, "/p/dirx"), 1);
	assert_int_equal(store_list(f->s, NULL, "/p/dir", 0, 100, &e, &n,
	    &next), STORE_OK);
	assert_int_equal(n, 13);
	proto_entries_free(e, n);
	assert_int_equal(inv_run(f->s, &fp, 3, &steps), 13);
	assert_int_equal(steps, 5);
	assert_int_equal(store_entries(f->s), 1);
	assert_int_equal(live(f->s, 14, T0), 1);
	assert_int_equal(nsets(f), 1);
	assert_int_equal(nsetrows(f), 1);
	assert_int_equal(db_int(f, "SELECT count(*) FROM inputs"), 0);
	assert_no_orphans(f);
	assert_int_equal(stat_of(f->s, "invalidated"), 13);
}

/* --- sets of declared inputs --- */

static void digests(tc_input *in, size_t n, unsigned first)
{
	for (size_t i = 0; i < n; i++)
		memset(in[i].digest, (int)(first + i), TC_DIGEST_BYTES);
}

static void test_sets_shared(void **state)
{
	struct fx *f = *state;
	tc_input a[4] = {
		{ .kind = TC_INPUT_FILE, .path = "src/a.c" },
		{ .kind = TC_INPUT_ENV, .path = "HOME" },
		{ .kind = TC_INPUT_FOUND, .path = "data/x" },
		{ .kind = TC_INPUT_FILE, .path = "src/b.c" },
	};
	/* a's declared inputs in another order, after a stale duplicate:
	 * the last of duplicates wins, as it always did. */
	tc_input b[5] = {
		{ .kind = TC_INPUT_FILE, .path = "src/b.c" },
		{ .kind = TC_INPUT_FOUND, .path = "data/y" },
		{ .kind = TC_INPUT_ENV, .path = "HOME" },
		{ .kind = TC_INPUT_FILE, .path = "src/a.c" },
		{ .kind = TC_INPUT_FILE, .path = "src/b.c" },
	};
	tc_input c[4];
	uint8_t key[TC_DIGEST_BYTES];
	tc_result r;
	tc_entry e;
	tc_input *got;
	size_t n;
	int found;

	digests(a, 4, 1);
	memset(b[0].digest, 0x77, TC_DIGEST_BYTES);
	memset(b[1].digest, 0x55, TC_DIGEST_BYTES);
	memcpy(b[2].digest, a[1].digest, TC_DIGEST_BYTES);
	memcpy(b[3].digest, a[0].digest, TC_DIGEST_BYTES);
	memcpy(b[4].digest, a[3].digest, TC_DIGEST_BYTES);
	put(f->s, 1, "t1", TC_PASS, T0, a, 4);
	put(f->s, 2, "t2", TC_PASS, T0, b, 5);
	assert_int_equal(nsets(f), 1);
	assert_int_equal(nsetrows(f), 3);
	assert_int_equal(set_of(f, "t1"), set_of(f, "t2"));
	/* The discovered inputs stay each entry's own. */
	assert_int_equal(db_int(f, "SELECT count(*) FROM inputs"), 2);
	key_of(key, 2);
	assert_int_equal(store_lookup(f->s, key, T0, &r), STORE_OK);
	assert_int_equal(r.found, 1);
	assert_int_equal(r.ninputs, 1);
	assert_string_equal(r.inputs[0].path, "data/y");
	proto_result_clear(&r);
	assert_int_equal(store_explain(f->s, "proj", "t2", &found, &e, &got,
	    &n), STORE_OK);
	assert_int_equal(found, 1);
	assert_int_equal(n, 4);
	assert_string_equal(got[0].path, "src/a.c");
	assert_string_equal(got[1].path, "src/b.c");
	assert_memory_equal(got[1].digest, a[3].digest, TC_DIGEST_BYTES);
	assert_string_equal(got[2].path, "data/y");
	assert_int_equal(got[2].kind, TC_INPUT_FOUND);
	assert_string_equal(got[3].path, "HOME");
	assert_int_equal(got[3].kind, TC_INPUT_ENV);
	proto_entry_clear(&e);
	proto_inputs_free(got, n);

	/* One digest apart: a set of its own. */
	memcpy(c, a, sizeof c);
	memset(c[1].digest, 0x99, TC_DIGEST_BYTES);
	put(f->s, 3, "t3", TC_PASS, T0, c, 4);
	assert_int_equal(nsets(f), 2);
	assert_int_equal(nsetrows(f), 6);
	assert_true(set_of(f, "t3") != set_of(f, "t1"));
	/* Another root: the same relative paths are other files. */
	put_root(f->s, 4, "t4", "/q", TC_PASS, T0, a, 4);
	assert_int_equal(nsets(f), 3);
	assert_int_equal(inv_count(f->s, TC_INV_PATH, "/q/src/a.c"), 1);
	assert_int_equal(inv_count(f->s, TC_INV_PATH, "/p/src/a.c"), 3);
	assert_no_orphans(f);
}

/* A set goes with the last entry that uses it, whichever way the entries
 * go; the hit, flaky and expiry rules do not see sets. */
static void test_sets_released(void **state)
{
	struct fx *f = *state;
	struct store_filter fk = { .mode = TC_INV_KEY };
	struct store_filter fa = { .mode = TC_INV_ALL };
	tc_input a[2] = {
		{ .kind = TC_INPUT_FILE, .path = "src/a.c" },
		{ .kind = TC_INPUT_ENV, .path = "HOME" },
	};
	tc_input c = { .kind = TC_INPUT_FILE, .path = "src/c.c" };
	uint64_t removed;
	unsigned steps;

	digests(a, 2, 1);
	put(f->s, 1, "t1", TC_PASS, T0, a, 2);
	put(f->s, 2, "t2", TC_PASS, T0 + 5, a, 2);
	put(f->s, 3, "t3", TC_PASS, T0, a, 2);
	put(f->s, 4, "t4", TC_PASS, T0, &c, 1);
	assert_int_equal(nsets(f), 2);

	key_of(fk.key, 1);
	assert_int_equal(inv_run(f->s, &fk, 10, &steps), 1);
	assert_int_equal(nsets(f), 2);
	assert_int_equal(nsetrows(f), 3);
	assert_int_equal(live(f->s, 2, T0), 1);
	assert_int_equal(stat_of(f->s, "hits"), 1);
	/* Another outcome on the same inputs: flaky, same set. */
	assert_int_equal(put(f->s, 2, "t2", TC_FAIL, T0 + 5, a, 2), 1);
	assert_int_equal(set_of(f, "t2"), set_of(f, "t3"));
	assert_int_equal(live(f->s, 2, T0 + 6), 1);
	assert_int_equal(stat_of(f->s, "hits"), 1);
	assert_int_equal(stat_of(f->s, "flaky_marked"), 1);

	/* 3 and 4 expire; 2, recorded later, keeps the set. */
	assert_int_equal(store_begin(f->s), STORE_OK);
	assert_int_equal(store_sweep_step(f->s, T0 + TTL, 10, &removed),
	    STORE_OK);
	assert_int_equal(removed, 2);
	assert_int_equal(store_commit(f->s), STORE_OK);
	assert_int_equal(nsets(f), 1);
	assert_int_equal(nsetrows(f), 2);
	assert_int_equal(live(f->s, 2, T0 + TTL), 1);
	assert_no_orphans(f);

	assert_int_equal(inv_run(f->s, &fa, 10, &steps), 1);
	assert_int_equal(nsets(f), 0);
	assert_int_equal(nsetrows(f), 0);
	assert_no_orphans(f);
}

/* Recording a key again with other inputs lets go of its old set. */
static void test_sets_replaced(void **state)
{
	struct fx *f = *state;
	tc_input a[2] = {
		{ .kind = TC_INPUT_FILE, .path = "src/a.c" },
		{ .kind = TC_INPUT_FILE, .path = "src/b.c" },
	};
	tc_input c = { .kind = TC_INPUT_FILE, .path = "src/c.c" };
	int64_t first;

	digests(a, 2, 1);
	put(f->s, 1, "t1", TC_PASS, T0, a, 2);
	first = set_of(f, "t1");
	put(f->s, 1, "t1", TC_PASS, T0, a, 2);
	assert_int_equal(set_of(f, "t1"), first);
	put(f->s, 1, "t1", TC_PASS, T0, &c, 1);
	assert_true(set_of(f, "t1") != first);
	assert_int_equal(nsets(f), 1);
	assert_int_equal(nsetrows(f), 1);
	assert_int_equal(inv_count(f->s, TC_INV_PATH, "/p/src/a.c"), 0);
	assert_int_equal(inv_count(f->s, TC_INV_PATH, "/p/src/c.c"), 1);
	put(f->s, 1, "t1", TC_PASS, T0, NULL, 0);
	assert_int_equal(set_of(f, "t1"), 0);
	assert_int_equal(nsets(f), 0);
	assert_int_equal(nsetrows(f), 0);

	/* A set still used by another entry stays. */
	put(f->s, 1, "t1", TC_PASS, T0, a, 2);
	put(f->s, 2, "t2", TC_PASS, T0, a, 2);
	put(f->s, 1, "t1", TC_PASS, T0, &c, 1);
	assert_int_equal(nsets(f), 2);
	assert_int_equal(nsetrows(f), 3);
	assert_int_equal(inv_count(f->s, TC_INV_PATH, "/p/src/a.c"), 1);
	assert_no_orphans(f);
}

/* A set is reused only when its rows are the record's, whatever its hash
 * says: here the stored rows change under an unchanged hash. */
static void test_sets_exact(void **state)
{
	struct fx *f = *state;
	tc_input a[2] = {
		{ .kind = TC_INPUT_FILE, .path = "src/a.c" },
		{ .kind = TC_INPUT_ENV, .path = "HOME" },
	};
	tc_entry e;
	tc_input *got;
	size_t n;
	int found;

	digests(a, 2, 1);
	put(f->s, 1, "t1", TC_PASS, T0, a, 2);
	db_exec(f, "UPDATE setinputs SET digest = zeroblob(32) "
	    "WHERE path = 'HOME'");
	put(f->s, 2, "t2", TC_PASS, T0, a, 2);
	assert_int_equal(nsets(f), 2);
	assert_int_equal(db_int(f, "SELECT count(DISTINCT hash) FROM "
	    "inputsets"), 1);
	assert_int_equal(store_explain(f->s, "proj", "t2", &found, &e, &got,
	    &n), STORE_OK);
	assert_int_equal(n, 2);
	assert_memory_equal(got[1].digest, a[1].digest, TC_DIGEST_BYTES);
	proto_entry_clear(&e);
	proto_inputs_free(got, n);
	/* One row more than the record is not equal either. */
	db_exec(f, "INSERT INTO setinputs SELECT setid, 0, 'src/z.c', "
	    "'/p/src/z.c', digest FROM setinputs WHERE path = 'HOME' AND "
	    "setid = (SELECT max(id) FROM inputsets)");
	put(f->s, 3, "t3", TC_PASS, T0, a, 2);
	assert_int_equal(nsets(f), 3);
	put(f->s, 4, "t4", TC_PASS, T0, a, 2);
	assert_int_equal(nsets(f), 3);
	assert_int_equal(set_of(f, "t4"), set_of(f, "t3"));
}

/* --- sweep and eviction --- */

static void test_sweep(void **state)
{
	struct fx *f = *state;
	uint64_t removed;

	for (unsigned k = 1; k <= 5; k++)
		put(f->s, k, "t", TC_PASS, T0 + k, NULL, 0);
	assert_int_equal(store_begin(f->s), STORE_OK);
	/* At T0 + TTL + 3, entries 1..3 have expired. */
	assert_int_equal(store_sweep_step(f->s, T0 + TTL + 3, 2, &removed),
	    STORE_OK);
	assert_int_equal(removed, 2);
	assert_int_equal(store_sweep_step(f->s, T0 + TTL + 3, 2, &removed),
	    STORE_OK);
	assert_int_equal(removed, 1);
	assert_int_equal(store_sweep_step(f->s, T0 + TTL + 3, 2, &removed),
	    STORE_OK);
	assert_int_equal(removed, 0);
	assert_int_equal(store_commit(f->s), STORE_OK);
	assert_int_equal(store_entries(f->s), 2);
	assert_int_equal(live(f->s, 4, T0 + 5), 1);
	assert_int_equal(live(f->s, 5, T0 + 5), 1);
	assert_int_equal(stat_of(f->s, "expired"), 3);
	fx_reopen(f);
	assert_int_equal(store_entries(f->s), 2);
	assert_int_equal(stat_of(f->s, "expired"), 3);
}

static void test_evict(void **state)
{
	struct fx *f = *state;
	tc_input x = { .kind = TC_INPUT_FILE, .path = "x" };
	tc_input y = { .kind = TC_INPUT_FILE, .path = "y" };
	uint64_t removed;

	/* 2 and 3 use set x, 4 and 5 set y. */
	for (unsigned k = 1; k <= 6; k++)
		put(f->s, k, "t", TC_PASS, T0 + k, k == 2 || k == 3 ? &x : &y,
		    k >= 2 && k <= 5);
	assert_int_equal(nsets(f), 2);
	/* Entry 1 is used again: the least recently used are 2, 3, 4. */
	assert_int_equal(store_begin(f->s), STORE_OK);
	assert_int_equal(live(f->s, 1, T0 + 10), 1);
	assert_int_equal(store_evict_step(f->s, 2, &removed), STORE_OK);
	assert_int_equal(removed, 2);
	assert_int_equal(store_evict_step(f->s, 2, &removed), STORE_OK);
	assert_int_equal(removed, 1);
	assert_int_equal(store_evict_step(f->s, 2, &removed), STORE_OK);
	assert_int_equal(removed, 0);
	assert_int_equal(store_commit(f->s), STORE_OK);
	assert_int_equal(store_entries(f->s), 3);
	assert_int_equal(live(f->s, 1, T0 + 11), 1);
	assert_int_equal(live(f->s, 2, T0 + 11), 0);
	assert_int_equal(live(f->s, 3, T0 + 11), 0);
	assert_int_equal(live(f->s, 4, T0 + 11), 0);
	assert_int_equal(live(f->s, 5, T0 + 11), 1);
	assert_int_equal(live(f->s, 6, T0 + 11), 1);
	assert_int_equal(stat_of(f->s, "evicted"), 3);
	assert_int_equal(nsets(f), 1);
	assert_int_equal(inv_count(f->s, TC_INV_PATH, "/p/y"), 1);
	assert_no_orphans(f);
}

/* --- list and explain --- */

static void test_list(void **state)
{
	struct fx *f = *state;
	tc_input in = { .kind = TC_INPUT_FILE, .path = "lib/x.c" };
	uint8_t key[TC_DIGEST_BYTES];
	tc_entry *e;
	size_t n, total = 0;
	uint64_t after = 0, next, prev = 0;
	unsigned pages = 0;

	for (unsigned k = 1; k <= 7; k++)
		put(f->s, k, k % 2 ? "odd" : "even", TC_PASS, T0, &in,
		    k == 4 || k == 5);
	do {
		assert_int_equal(store_list(f->s, NULL, NULL, after, 3, &e, &n,
		    &next), STORE_OK);
		for (size_t i = 0; i < n; i++) {
			assert_true(e[i].id > prev);
			prev = e[i].id;
			assert_string_equal(e[i].project, "proj");
			assert_string_equal(e[i].root, "/p");
			assert_string_equal(e[i].message, "msg");
			assert_int_equal(e[i].expires_ms, T0 + TTL);
		}
		total += n;
		pages++;
		proto_entries_free(e, n);
		after = next;
	} while (next != 0);
	assert_int_equal(total, 7);
	assert_int_equal(pages, 3);

	assert_int_equal(store_list(f->s, "ev*", "", 0, 100, &e, &n, &next),
	    STORE_OK);
	assert_int_equal(n, 3);
	assert_int_equal(next, 0);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(e[i].test, "even");
	proto_entries_free(e, n);

	assert_int_equal(store_list(f->s, NULL, "/p/lib/", 0, 100, &e, &n,
	    &next), STORE_OK);
	assert_int_equal(n, 2);
	key_of(key, 4);
	assert_memory_equal(e[0].key, key, TC_DIGEST_BYTES);
	proto_entries_free(e, n);

	assert_int_equal(store_list(f->s, "odd", "/p/lib", 0, 100, &e, &n,
	    &next), STORE_OK);
	assert_int_equal(n, 1);
	proto_entries_free(e, n);
	assert_int_equal(store_list(f->s, NULL, "/p/li", 0, 100, &e, &n,
	    &next), STORE_OK);
	assert_int_equal(n, 0);
	proto_entries_free(e, n);
}

static void test_explain(void **state)
{
	struct fx *f = *state;
	tc_input in[4] = {
		{ .kind = TC_INPUT_FILE, .path = "src/a.c" },
		{ .kind = TC_INPUT_FOUND, .path = "data" },
		{ .kind = TC_INPUT_ENV, .path = "HOME" },
		{ .kind = TC_INPUT_INTERFACE, .path = "pkg/m.py" },
	};
	uint8_t key[TC_DIGEST_BYTES];
	tc_entry e;
	tc_input *got;
	size_t n;
	int found;

	put(f->s, 1, "t", TC_PASS, T0, NULL, 0);
	digests(in, 4, 1);
	put(f->s, 2, "t", TC_FAIL, T0 + 2 * TTL, in, 4);
	put(f->s, 3, "t", TC_PASS, T0 + 1, NULL, 0);
	assert_int_equal(store_explain(f->s, "proj", "t", &found, &e, &got,
	    &n), STORE_OK);
	assert_int_equal(found, 1);
	key_of(key, 2);
	assert_memory_equal(e.key, key, TC_DIGEST_BYTES);
	assert_int_equal(e.outcome, TC_FAIL);
	assert_int_equal(e.created_ms, T0 + 2 * TTL);
	assert_int_equal(n, 4);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(got[i].kind, i);
		assert_string_equal(got[i].path, in[i].path);
		assert_memory_equal(got[i].digest, in[i].digest,
		    TC_DIGEST_BYTES);
	}
	proto_entry_clear(&e);
	proto_inputs_free(got, n);

	/* Other projects' entries are not explained. */
	assert_int_equal(store_explain(f->s, "other", "t", &found, &e, &got,
	    &n), STORE_OK);
	assert_int_equal(found, 0);
	assert_null(got);
	assert_int_equal(n, 0);
}

/*
 * Interface inputs (kind 3) are declared: kept in the shared set, apart
 * from a file input of the same path, never handed to a lookup, and found
 * by path like any file.
 */
static void test_interface_inputs(void **state)
{
	struct fx *f = *state;
	tc_input in[3] = {
		{ .kind = TC_INPUT_INTERFACE, .path = "pkg/m.py" },
		{ .kind = TC_INPUT_FOUND, .path = "pkg/m.py" },
		{ .kind = TC_INPUT_FILE, .path = "pkg/m.py" },
	};
	uint8_t key[TC_DIGEST_BYTES];
	tc_result r;
	tc_entry *e;
	size_t n;
	uint64_t next;

	digests(in, 3, 1);
	put(f->s, 1, "a", TC_PASS, T0, in, 3);
	put(f->s, 2, "b", TC_PASS, T0, in, 3);
	assert_int_equal(nsets(f), 1);
	assert_int_equal(nsetrows(f), 2);	/* kinds 3 and 0 */
	put(f->s, 3, "c", TC_PASS, T0, in, 1);	/* kind 3 alone */
	assert_int_equal(nsets(f), 2);
	key_of(key, 1);
	assert_int_equal(store_lookup(f->s, key, T0, &r), STORE_OK);
	assert_int_equal(r.found, 1);
	assert_int_equal(r.ninputs, 1);
	assert_int_equal(r.inputs[0].kind, TC_INPUT_FOUND);
	proto_result_clear(&r);
	assert_int_equal(store_list(f->s, "c", "/p/pkg", 0, 100, &e, &n,
	    &next), STORE_OK);
	assert_int_equal(n, 1);
	proto_entries_free(e, n);
	assert_int_equal(inv_count(f->s, TC_INV_PATH, "/p/pkg/m.py"), 3);
	assert_int_equal(inv_path(f->s, "/p/pkg"), 3);
	assert_int_equal(store_entries(f->s), 0);
	assert_no_orphans(f);
}

/* --- counters --- */

static void test_stats_persist(void **state)
{
	struct fx *f = *state;

	put(f->s, 1, "t", TC_PASS, T0, NULL, 0);
	assert_int_equal(store_begin(f->s), STORE_OK);
	assert_int_equal(live(f->s, 1, T0), 1);
	assert_int_equal(live(f->s, 2, T0), 0);
	assert_int_equal(store_commit(f->s), STORE_OK);
	/* Counted after the last commit: saved by close. */
	assert_int_equal(live(f->s, 3, T0), 0);
	fx_reopen(f);
	assert_int_equal(stat_of(f->s, "hits"), 1);
	assert_int_equal(stat_of(f->s, "misses"), 2);
	assert_int_equal(stat_of(f->s, "records"), 1);
	assert_int_equal(stat_of(f->s, "time_saved_us"), 101);
	assert_int_equal(stat_of(f->s, "entries"), 1);

	store_stats_reset(f->s);
	assert_int_equal(stat_of(f->s, "hits"), 0);
	assert_int_equal(store_begin(f->s), STORE_OK);
	assert_int_equal(store_commit(f->s), STORE_OK);
	fx_reopen(f);
	assert_int_equal(stat_of(f->s, "hits"), 0);
	assert_int_equal(stat_of(f->s, "misses"), 0);
	assert_int_equal(stat_of(f->s, "records"), 0);
	/* Entries are not a counter: reset leaves them. */
	assert_int_equal(stat_of(f->s, "entries"), 1);
}

static void test_stats_names(void **state)
{
	static const char *const names[] = { "hits", "misses", "records",
	    "time_saved_us", "expired", "invalidated", "evicted",
	    "flaky_marked", "entries", "flaky_entries", "db_bytes",
	    "hits_today", "misses_today", "time_saved_today_us", "hits_7d",
	    "misses_7d", "time_saved_7d_us" };
	struct fx *f = *state;
	tc_stat *st;
	size_t n;

	assert_int_equal(store_stats(f->s, &st, &n), STORE_OK);
	assert_int_equal(n, sizeof names / sizeof names[0]);
	for (size_t i = 0; i < n; i++)
		assert_string_equal(st[i].name, names[i]);
	proto_stats_free(st, n);
}

/* --- days --- */

/* A day's row of the days table: its misses, or -1 without a row. */
static int64_t day_misses(const struct fx *f, int64_t day)
{
	char sql[128];

	snprintf(sql, sizeof sql, "SELECT coalesce((SELECT misses FROM days "
	    "WHERE day = %lld), -1)", (long long)day);
	return db_int(f, sql);
}

/*
 * Lookups count into the local calendar day of their time: a change of
 * day keeps the day that ended until a commit writes it, a clock set back
 * to it takes it back, and days older than 400 go at the next save.
 */
static void test_days_roll(void **state)
{
	const uint64_t day = 86400000;
	struct fx *f = *state;
	const char *tz = getenv("TZ");
	char old[64];

	snprintf(old, sizeof old, "%s", tz != NULL ? tz : "");
	assert_int_equal(setenv("TZ", "UTC", 1), 0);
	tzset();
	assert_int_equal(live(f->s, 1, T0), 0);			/* day 0 */
	assert_int_equal(live(f->s, 1, T0 + 1), 0);
	assert_int_equal(live(f->s, 1, T0 + day), 0);		/* day 1 */
	assert_int_equal(live(f->s, 1, T0 + 5), 0);		/* day 0 */
	/* No write of their own: nothing in the table before a commit. */
	assert_int_equal(db_int(f, "SELECT count(*) FROM days"), 0);
	assert_int_equal(store_begin(f->s), STORE_OK);
	assert_int_equal(store_commit(f->s), STORE_OK);
	assert_int_equal(day_misses(f, 0), 3);
	assert_int_equal(day_misses(f, 1), 1);
	/* Day 500: days 0 and 1 are past 400 days and go. */
	assert_int_equal(live(f->s, 1, T0 + 500 * day), 0);
	assert_int_equal(store_begin(f->s), STORE_OK);
	assert_int_equal(store_commit(f->s), STORE_OK);
	assert_int_equal(day_misses(f, 500), 1);
	assert_int_equal(db_int(f, "SELECT count(*) FROM days"), 1);
	/* A reopened store goes on from the day's row. */
	fx_reopen(f);
	assert_int_equal(live(f->s, 1, T0 + 500 * day + 7), 0);
	fx_reopen(f);
	assert_int_equal(day_misses(f, 500), 2);
	/* A reset empties the table with the next commit. */
	store_stats_reset(f->s);
	assert_int_equal(store_begin(f->s), STORE_OK);
	assert_int_equal(store_commit(f->s), STORE_OK);
	assert_int_equal(db_int(f, "SELECT count(*) FROM days"), 0);
	if (tz != NULL)
		assert_int_equal(setenv("TZ", old, 1), 0);
	else
		assert_int_equal(unsetenv("TZ"), 0);
	tzset();
}

/* SLOWEST: live passing entries that are not flaky, longest first, with
 * the hits still in memory. */
static void test_slowest(void **state)
{
	struct fx *f = *state;
	tc_slow *sl;
	size_t n;

	put(f->s, 1, "one", TC_PASS, T0, NULL, 0);
	put(f->s, 2, "two", TC_PASS, T0, NULL, 0);
	put(f->s, 3, "fail", TC_FAIL, T0, NULL, 0);
	db_exec(f, "UPDATE entries SET duration_us = 100 * id");
	assert_int_equal(live(f->s, 1, T0 + 1), 1);	/* a hit in memory */
	assert_int_equal(store_slowest(f->s, T0 + 1, 10, &sl, &n), STORE_OK);
	assert_int_equal(n, 2);
	assert_string_equal(sl[0].test, "two");
	assert_int_equal(sl[0].duration_us, 200);
	assert_int_equal(sl[0].hits, 0);
	assert_string_equal(sl[1].test, "one");
	assert_int_equal(sl[1].hits, 1);
	assert_int_equal(sl[1].saved_us, 100);
	proto_slow_free(sl, n);
	assert_int_equal(store_slowest(f->s, T0 + 1, 1, &sl, &n), STORE_OK);
	assert_int_equal(n, 1);
	assert_string_equal(sl[0].test, "two");
	proto_slow_free(sl, n);
	/* Expired: none. */
	assert_int_equal(store_slowest(f->s, T0 + TTL, 10, &sl, &n), STORE_OK);
	assert_int_equal(n, 0);
	proto_slow_free(sl, n);
}

/* --- files: newer, foreign, damaged --- */

static void make_db(const char *path, const char *sql)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

static void write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

static void refused_unchanged(struct fx *f, const char *sql, int code,
    const char *needle)
{
	char err[1024], aside[512];
	struct store *s = (struct store *)1;
	void *before, *after;
	long lb, la;

	make_db(f->path, sql);
	before = file_read(f->path, &lb);
	assert_int_equal(store_open(&s, &f->cfg, err, sizeof err), code);
	assert_null(s);
	assert_non_null(strstr(err, needle));
	after = file_read(f->path, &la);
	assert_int_equal(la, lb);
	assert_memory_equal(before, after, (size_t)lb);
	damaged_name(f->dir, aside, sizeof aside);
	assert_string_equal(aside, "");
	free(before);
	free(after);
}

static void test_newer_refused(void **state)
{
	struct fx *f = *state;

	store_close(f->s);
	f->s = NULL;
	assert_int_equal(unlink(f->path), 0);
	refused_unchanged(f, "CREATE TABLE entries(x); "
	    "PRAGMA user_version = 99;", STORE_ENEWER, "99");
}

static void copy_file(const char *from, const char *to)
{
	void *buf;
	long len;

	buf = file_read(from, &len);
	write_file(to, buf, (size_t)len);
	free(buf);
}

/* A newer file whose last writes are still in its WAL: opening it must not
 * checkpoint them into it. */
static void test_newer_wal_unchanged(void **state)
{
	struct fx *f = *state;
	char src[128], wal[256], srcwal[256], err[1024];
	struct store *s;
	void *b1, *b2, *w1, *w2;
	long l1, l2, lw1, lw2;
	sqlite3 *db;

	store_close(f->s);
	f->s = NULL;
	assert_int_equal(unlink(f->path), 0);
	snprintf(src, sizeof src, "%s/src.db", f->dir);
	snprintf(srcwal, sizeof srcwal, "%s-wal", src);
	snprintf(wal, sizeof wal, "%s-wal", f->path);
	assert_int_equal(sqlite3_open(src, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA journal_mode = WAL; "
	    "CREATE TABLE entries(x); INSERT INTO entries VALUES (1); "
	    "PRAGMA user_version = 7;", NULL, NULL, NULL), SQLITE_OK);
	/* A copy taken while the writer is open keeps its WAL. */
	copy_file(src, f->path);
	copy_file(srcwal, wal);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	assert_true(file_size(wal) > 0);
	b1 = file_read(f->path, &l1);
	w1 = file_read(wal, &lw1);
	assert_int_equal(store_open(&s, &f->cfg, err, sizeof err),
	    STORE_ENEWER);
	assert_non_null(strstr(err, "7"));
	b2 = file_read(f->path, &l2);
	w2 = file_read(wal, &lw2);
	assert_int_equal(l1, l2);
	assert_memory_equal(b1, b2, (size_t)l1);
	assert_int_equal(lw1, lw2);
	assert_memory_equal(w1, w2, (size_t)lw1);
	free(b1);
	free(b2);
	free(w1);
	free(w2);
}

static void test_foreign_refused(void **state)
{
	struct fx *f = *state;

	store_close(f->s);
	f->s = NULL;
	assert_int_equal(unlink(f->path), 0);
	refused_unchanged(f, "CREATE TABLE notes(x); INSERT INTO notes "
	    "VALUES (1);", STORE_EFAIL, "not tcache's");
}

/* Opens over a damaged file: moved aside with a warning, a fresh store
 * that works. */
static void reopen_damaged(struct fx *f, const void *bytes, long len)
{
	char err[1024], aside[512];
	void *moved;
	long mlen;

	assert_int_equal(store_open(&f->s, &f->cfg, err, sizeof err),
	    STORE_OK);
	assert_non_null(f->s);
	assert_non_null(strstr(err, "damaged"));
	damaged_name(f->dir, aside, sizeof aside);
	assert_true(aside[0] != '\0');
	assert_non_null(strstr(err, aside));
	moved = file_read(aside, &mlen);
	assert_int_equal(mlen, len);
	assert_memory_equal(moved, bytes, (size_t)len);
	free(moved);

	assert_int_equal(store_entries(f->s), 0);
	put(f->s, 1, "t", TC_PASS, T0, NULL, 0);
	assert_int_equal(live(f->s, 1, T0), 1);
	fx_reopen(f);
	assert_int_equal(live(f->s, 1, T0), 1);
}

static void test_garbage_moved_aside(void **state)
{
	struct fx *f = *state;
	unsigned char buf[8192];
	uint32_t x = 12345;

	store_close(f->s);
	f->s = NULL;
	for (size_t i = 0; i < sizeof buf; i++) {
		x = x * 1103515245u + 12345u;
		buf[i] = (unsigned char)(x >> 16);
	}
	write_file(f->path, buf, sizeof buf);
	reopen_damaged(f, buf, (long)sizeof buf);
}

static void test_truncated_moved_aside(void **state)
{
	struct fx *f = *state;
	tc_input in[2] = {
		{ .kind = TC_INPUT_FILE, .path = "some/rather/long/path/a.c" },
		{ .kind = TC_INPUT_FOUND, .path = "another/long/path/b.txt" },
	};
	void *bytes;
	long len;

	for (unsigned k = 1; k <= 400; k++)
		put(f->s, k, "a/test/id/that/takes/some/room", TC_PASS, T0,
		    in, 2);
	store_close(f->s);
	f->s = NULL;
	assert_int_equal(file_size(f->path) > 65536, 1);
	assert_int_equal(truncate(f->path, file_size(f->path) / 2), 0);
	bytes = file_read(f->path, &len);
	reopen_damaged(f, bytes, len);
	free(bytes);
}

static void test_recover(void **state)
{
	struct fx *f = *state;
	char err[1024], aside[512];

	put(f->s, 1, "t", TC_PASS, T0, NULL, 0);
	assert_int_equal(live(f->s, 1, T0), 1);
	assert_int_equal(store_begin(f->s), STORE_OK);
	assert_int_equal(store_recover(f->s, err, sizeof err), STORE_OK);
	assert_non_null(strstr(err, "damaged"));
	assert_int_equal(store_in_txn(f->s), 0);
	damaged_name(f->dir, aside, sizeof aside);
	assert_true(aside[0] != '\0');
	assert_int_equal(store_entries(f->s), 0);
	assert_int_equal(live(f->s, 1, T0), 0);
	/* The daemon's counters outlive the file. */
	assert_int_equal(stat_of(f->s, "hits"), 1);
	put(f->s, 2, "t", TC_PASS, T0, NULL, 0);
	assert_int_equal(live(f->s, 2, T0), 1);
}

/* --- migrations --- */

/* schema.sql as version 1 had it (comments dropped). */
static const char schema_v1[] =
	"CREATE TABLE entries ("
	" id          INTEGER PRIMARY KEY,"
	" key         BLOB    NOT NULL UNIQUE,"
	" project     TEXT    NOT NULL,"
	" test        TEXT    NOT NULL,"
	" root        TEXT    NOT NULL,"
	" outcome     INTEGER NOT NULL,"
	" flaky       INTEGER NOT NULL DEFAULT 0,"
	" duration_us INTEGER NOT NULL,"
	" message     TEXT    NOT NULL DEFAULT '',"
	" created     INTEGER NOT NULL,"
	" expires     INTEGER NOT NULL,"
	" hits        INTEGER NOT NULL DEFAULT 0,"
	" last_used   INTEGER NOT NULL"
	" );"
	" CREATE INDEX entries_expires ON entries(expires);"
	" CREATE INDEX entries_last_used ON entries(last_used);"
	" CREATE INDEX entries_test ON entries(test, project, created);"
	" CREATE INDEX entries_flaky ON entries(flaky) WHERE flaky = 1;"
	" CREATE TABLE inputs ("
	" entry   INTEGER NOT NULL REFERENCES entries(id) ON DELETE CASCADE,"
	" kind    INTEGER NOT NULL,"
	" path    TEXT    NOT NULL,"
	" abspath TEXT,"
	" digest  BLOB    NOT NULL,"
	" PRIMARY KEY (entry, kind, path)"
	" ) WITHOUT ROWID;"
	" CREATE INDEX inputs_abspath ON inputs(abspath, entry) "
	"WHERE abspath IS NOT NULL;"
	" CREATE TABLE counters ("
	" name  TEXT PRIMARY KEY,"
	" value INTEGER NOT NULL"
	" ) WITHOUT ROWID;"
	" PRAGMA user_version = 1;";

/* Writes a version 1 entry k with the inputs (kind, path) of in, as
 * tcached 1 did: every input a row of inputs, abspath /p/path. */
static void v1_entry(sqlite3 *db, unsigned k, const char *test,
    const tc_input *in, size_t nin)
{
	uint8_t key[TC_DIGEST_BYTES];
	char abs[256];
	sqlite3_stmt *st;

	key_of(key, k);
	assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO entries(id, key, "
	    "project, test, root, outcome, duration_us, created, expires, "
	    "last_used) VALUES (?1, ?2, 'proj', ?3, '/p', 1, 7, ?4, ?5, ?4)",
	    -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_bind_int(st, 1, (int)k), SQLITE_OK);
	assert_int_equal(sqlite3_bind_blob(st, 2, key, TC_DIGEST_BYTES,
	    SQLITE_STATIC), SQLITE_OK);
	assert_int_equal(sqlite3_bind_text(st, 3, test, -1, SQLITE_STATIC),
	    SQLITE_OK);
	assert_int_equal(sqlite3_bind_int64(st, 4, T0), SQLITE_OK);
	assert_int_equal(sqlite3_bind_int64(st, 5, T0 + 100 * TTL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	assert_int_equal(sqlite3_finalize(st), SQLITE_OK);
	for (size_t i = 0; i < nin; i++) {
		assert_int_equal(sqlite3_prepare_v2(db, "INSERT INTO inputs("
		    "entry, kind, path, abspath, digest) VALUES (?1, ?2, ?3, "
		    "?4, ?5)", -1, &st, NULL), SQLITE_OK);
		snprintf(abs, sizeof abs, "/p/%s", in[i].path);
		assert_int_equal(sqlite3_bind_int(st, 1, (int)k), SQLITE_OK);
		assert_int_equal(sqlite3_bind_int(st, 2, in[i].kind), SQLITE_OK);
		assert_int_equal(sqlite3_bind_text(st, 3, in[i].path, -1,
		    SQLITE_STATIC), SQLITE_OK);
		assert_int_equal(in[i].kind == TC_INPUT_ENV ?
		    sqlite3_bind_null(st, 4) : sqlite3_bind_text(st, 4, abs,
		    -1, SQLITE_STATIC), SQLITE_OK);
		assert_int_equal(sqlite3_bind_blob(st, 5, in[i].digest,
		    TC_DIGEST_BYTES, SQLITE_STATIC), SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_DONE);
		assert_int_equal(sqlite3_finalize(st), SQLITE_OK);
	}
}

static void assert_found(struct store *s, unsigned k, const char *found)
{
	uint8_t key[TC_DIGEST_BYTES];
	tc_result r;

	key_of(key, k);
	assert_int_equal(store_lookup(s, key, T0, &r), STORE_OK);
	assert_int_equal(r.found, 1);
	assert_int_equal(r.ninputs, found != NULL);
	if (found != NULL) {
		assert_int_equal(r.inputs[0].kind, TC_INPUT_FOUND);
		assert_string_equal(r.inputs[0].path, found);
	}
	proto_result_clear(&r);
}

/* A version 1 file opens as the current version (through 2) with every
 * entry and input. */
static void test_migrate_v1(void **state)
{
	struct fx *f = *state;
	tc_input in1[3] = {
		{ .kind = TC_INPUT_FILE, .path = "src/a.c" },
		{ .kind = TC_INPUT_FOUND, .path = "data/x" },
		{ .kind = TC_INPUT_ENV, .path = "HOME" },
	};
	tc_input in2[2] = {
		{ .kind = TC_INPUT_FILE, .path = "lib/b.c" },
		{ .kind = TC_INPUT_FOUND, .path = "lib/d.txt" },
	};
	tc_input *got;
	tc_entry e;
	sqlite3 *db;
	size_t n;
	int found;

	digests(in1, 3, 1);
	digests(in2, 2, 4);
	store_close(f->s);
	f->s = NULL;
	assert_int_equal(unlink(f->path), 0);
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, schema_v1, NULL, NULL, NULL),
	    SQLITE_OK);
	v1_entry(db, 1, "t1", in1, 3);
	v1_entry(db, 2, "t2", in2, 2);
	v1_entry(db, 3, "t3", NULL, 0);
	assert_int_equal(sqlite3_exec(db, "INSERT INTO counters VALUES "
	    "('records', 3)", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);

	fx_open(f);
	assert_int_equal(db_int(f, "PRAGMA user_version"), 3);
	assert_int_equal(store_entries(f->s), 3);
	assert_int_equal(stat_of(f->s, "records"), 3);
	assert_int_equal(nsets(f), 2);
	assert_int_equal(nsetrows(f), 3);
	assert_int_equal(db_int(f, "SELECT count(*) FROM inputs"), 2);
	assert_no_orphans(f);
	assert_found(f->s, 1, "data/x");
	assert_found(f->s, 2, "lib/d.txt");
	assert_found(f->s, 3, NULL);

	assert_int_equal(store_explain(f->s, "proj", "t1", &found, &e, &got,
	    &n), STORE_OK);
	assert_int_equal(found, 1);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(got[i].kind, in1[i].kind);
		assert_string_equal(got[i].path, in1[i].path);
		assert_memory_equal(got[i].digest, in1[i].digest,
		    TC_DIGEST_BYTES);
	}
	proto_entry_clear(&e);
	proto_inputs_free(got, n);

	/* Declared and discovered inputs both still invalidate. */
	assert_int_equal(inv_count(f->s, TC_INV_PATH, "/p/src/a.c"), 1);
	assert_int_equal(inv_path(f->s, "/p/src/a.c"), 1);
	assert_int_equal(live(f->s, 1, T0), 0);
	assert_int_equal(inv_path(f->s, "/p/lib/d.txt"), 1);
	assert_int_equal(live(f->s, 2, T0), 0);
	assert_int_equal(nsets(f), 0);
	assert_int_equal(nsetrows(f), 0);
	assert_int_equal(live(f->s, 3, T0), 1);

	/* And records go on, into sets of their own. */
	put(f->s, 4, "t4", TC_PASS, T0, in1, 3);
	put(f->s, 5, "t5", TC_PASS, T0, in1, 3);
	assert_int_equal(nsets(f), 1);
	fx_reopen(f);
	assert_found(f->s, 5, "data/x");
}

/* --- query plans --- */

/* Every step of the plan of sql searches an index: no full scan of
 * entries or inputs (an ordered index walk with a LIMIT is allowed when
 * named in allow). */
static void assert_no_sort(sqlite3 *db, const char *sql)
{
	char eqp[2048];
	sqlite3_stmt *st;
	const char *d;

	snprintf(eqp, sizeof eqp, "EXPLAIN QUERY PLAN %s", sql);
	assert_int_equal(sqlite3_prepare_v2(db, eqp, -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		d = (const char *)sqlite3_column_text(st, 3);
		assert_non_null(d);
		if (strstr(d, "TEMP B-TREE") != NULL)
			fail_msg("a sort in \"%s\": %s", sql, d);
	}
	assert_int_equal(sqlite3_finalize(st), SQLITE_OK);
}

static void assert_indexed(sqlite3 *db, const char *sql, const char *allow)
{
	char eqp[2048];
	sqlite3_stmt *st;
	const char *d;
	int steps = 0;

	snprintf(eqp, sizeof eqp, "EXPLAIN QUERY PLAN %s", sql);
	assert_int_equal(sqlite3_prepare_v2(db, eqp, -1, &st, NULL), SQLITE_OK);
	while (sqlite3_step(st) == SQLITE_ROW) {
		d = (const char *)sqlite3_column_text(st, 3);
		assert_non_null(d);
		if (strncmp(d, "SCAN entries", 12) == 0 ||
		    strncmp(d, "SCAN e ", 7) == 0 ||
		    strncmp(d, "SCAN i ", 7) == 0 ||
		    strncmp(d, "SCAN inputs", 11) == 0 ||
		    strncmp(d, "SCAN setinputs", 14) == 0 ||
		    strncmp(d, "SCAN inputsets", 14) == 0) {
			if (allow == NULL || strstr(d, allow) == NULL)
				fail_msg("full scan in \"%s\": %s", sql, d);
		}
		steps++;
	}
	assert_int_equal(sqlite3_finalize(st), SQLITE_OK);
	assert_true(steps > 0);
}

static void test_query_plans(void **state)
{
	/* The statements of daemon/store.c that must stay index ranges. */
	static const char *const sql[] = {
		"SELECT count(*) FROM (SELECT entry FROM inputs WHERE "
		"abspath = ?1 OR (abspath >= ?2 AND abspath < ?3) UNION "
		"SELECT id FROM entries WHERE inputset IN (SELECT setid FROM "
		"setinputs WHERE abspath = ?1 OR (abspath >= ?2 AND "
		"abspath < ?3)))",
		"DELETE FROM entries WHERE id IN (SELECT DISTINCT entry FROM "
		"inputs WHERE abspath = ?1 OR (abspath >= ?2 AND abspath < ?3) "
		"LIMIT ?4)",
		"DELETE FROM entries WHERE id IN (SELECT DISTINCT e.id FROM "
		"setinputs CROSS JOIN entries AS e ON e.inputset = "
		"setinputs.setid WHERE abspath = ?1 OR (abspath >= ?2 AND "
		"abspath < ?3) LIMIT ?4)",
		"SELECT id, key, project, test, root, outcome, flaky, "
		"duration_us, created, expires, hits, last_used, message FROM "
		"entries WHERE id > ?1 AND (?2 IS NULL OR test GLOB ?2) AND "
		"(?3 IS NULL OR id IN (SELECT entry FROM inputs WHERE "
		"abspath = ?3 OR (abspath >= ?4 AND abspath < ?5)) OR "
		"inputset IN (SELECT setid FROM setinputs WHERE abspath = ?3 "
		"OR (abspath >= ?4 AND abspath < ?5))) ORDER BY id LIMIT ?6",
		"SELECT kind, path, digest FROM setinputs WHERE setid = "
		"(SELECT inputset FROM entries WHERE id = ?1) UNION ALL "
		"SELECT kind, path, digest FROM inputs WHERE entry = ?1 "
		"ORDER BY kind, path",
		"SELECT id FROM inputsets WHERE hash = ?1 LIMIT ?2",
		"SELECT kind, path, abspath, digest FROM setinputs "
		"WHERE setid = ?1 ORDER BY kind, path",
		/* What the triggers run for every entry that goes. */
		"DELETE FROM inputsets WHERE id = ?1 AND NOT EXISTS "
		"(SELECT 1 FROM entries WHERE inputset = ?1)",
		"DELETE FROM setinputs WHERE setid = ?1",
		"DELETE FROM entries WHERE id IN (SELECT id FROM entries "
		"WHERE expires <= ?1 ORDER BY expires LIMIT ?2)",
		"SELECT id, key, project, test, root, outcome, flaky, "
		"duration_us, created, expires, hits, last_used, message FROM "
		"entries WHERE test = ?2 AND project = ?1 "
		"ORDER BY created DESC, id DESC LIMIT 1",
		"SELECT e.id, e.outcome, e.flaky, e.duration_us, e.created, "
		"e.expires, i.path, i.digest FROM entries AS e LEFT JOIN "
		"inputs AS i ON i.entry = e.id AND i.kind = 1 "
		"WHERE e.key = ?1 AND e.expires > ?2 ORDER BY i.path",
		"SELECT kind, path, digest FROM inputs WHERE entry = ?1 AND "
		"kind = ?2 ORDER BY path",
		"DELETE FROM inputs WHERE entry = ?1",
		"SELECT count(*) FROM entries WHERE flaky = 1",
		"SELECT count(*) FROM entries WHERE test GLOB 'mod::*'",
	};
	struct fx *f = *state;
	sqlite3 *db;

	put_tree(f->s);
	assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY,
	    NULL), SQLITE_OK);
	for (size_t i = 0; i < sizeof sql / sizeof sql[0]; i++)
		assert_indexed(db, sql[i], NULL);
	assert_indexed(db, "DELETE FROM entries WHERE id IN (SELECT id FROM "
	    "entries ORDER BY last_used, id LIMIT ?1)",
	    "USING COVERING INDEX entries_last_used");
	/* A lookup's inputs come in index order: no sort a key. */
	assert_no_sort(db, "SELECT e.id, e.outcome, e.flaky, e.duration_us, "
	    "e.created, e.expires, i.path, i.digest FROM entries AS e LEFT "
	    "JOIN inputs AS i ON i.entry = e.id AND i.kind = 1 "
	    "WHERE e.key = ?1 AND e.expires > ?2 ORDER BY i.path");
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
}

/*
 * The daemon holds a RECORD's reply for the group commit and may say
 * "stored" only when the transaction that took it committed: one that
 * ended otherwise (rolled back, or lost with a damaged file) must show in
 * store_lost_serial, even when a later transaction commits.
 */
static void test_txn_serial(void **state)
{
	struct fx *f = *state;
	char err[1024];
	uint64_t first, second, third;

	assert_int_equal(store_txn_serial(f->s), 0);
	assert_int_equal(store_begin(f->s), STORE_OK);
	assert_int_not_equal(first = store_txn_serial(f->s), 0);
	assert_int_equal(store_begin(f->s), STORE_OK);
	assert_int_equal(store_txn_serial(f->s), first);
	assert_int_equal(store_savepoint(f->s), STORE_OK);
	assert_int_equal(store_rollback_savepoint(f->s), STORE_OK);
	assert_true(store_lost_serial(f->s) < first);
	store_rollback(f->s);
	assert_int_equal(store_txn_serial(f->s), 0);
	assert_int_equal(store_lost_serial(f->s), first);

	assert_int_equal(store_begin(f->s), STORE_OK);
	second = store_txn_serial(f->s);
	assert_true(second > first);
	assert_int_equal(store_commit(f->s), STORE_OK);
	assert_int_equal(store_txn_serial(f->s), 0);
	assert_int_equal(store_lost_serial(f->s), first);

	assert_int_equal(store_begin(f->s), STORE_OK);
	third = store_txn_serial(f->s);
	assert_true(third > second);
	assert_int_equal(store_recover(f->s, err, sizeof err), STORE_OK);
	assert_int_equal(store_txn_serial(f->s), 0);
	assert_int_equal(store_lost_serial(f->s), third);
	/* The file moved aside and its -wal and -shm: the teardown
	 * removes them. */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)
		T(test_record_lookup_hit),
		T(test_hit_bumps_entry),
		T(test_hits_reset_by_record),
		T(test_fail_is_not_a_hit),
		T(test_expiry),
		T(test_flaky),
		T(test_flaky_needs_same_discovered_inputs),
		T(test_message_truncated),
		T(test_record_needs_txn),
		T(test_savepoint_rollback),
		T(test_savepoint_first_frame),
		T(test_rollback),
		T(test_txn_serial),
		T(test_invalidate_path_file),
		T(test_invalidate_path_dir),
		T(test_invalidate_test_key_all),
		T(test_invalidate_steps),
		T(test_invalidate_sets_steps),
		T(test_sets_shared),
		T(test_sets_released),
		T(test_sets_replaced),
		T(test_sets_exact),
		T(test_migrate_v1),
		T(test_sweep),
		cmocka_unit_test_setup_teardown(test_evict, fx_setup_max3,
		    fx_teardown),
		T(test_list),
		T(test_explain),
		T(test_interface_inputs),
		T(test_stats_persist),
		T(test_stats_names),
		T(test_days_roll),
		T(test_slowest),
		T(test_newer_refused),
		T(test_newer_wal_unchanged),
		T(test_foreign_refused),
		T(test_garbage_moved_aside),
		T(test_truncated_moved_aside),
		T(test_recover),
		T(test_query_plans),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
