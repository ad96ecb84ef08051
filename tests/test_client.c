/*
 * libtcache against a real tcached: each test starts its own daemon
 * ($TCACHE_BUILD/tcached, default build/tcached) on a socket and database in
 * a fresh temporary directory, and stops it with SIGTERM, which must exit 0.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "client/tcache.h"
#include "proto/limits.h"

struct daemon {
	char dir[PATH_MAX];
	char sock[PATH_MAX];
	char db[PATH_MAX];
	char tcached[PATH_MAX];
	pid_t pid;
	tc_client *c;
};

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static void path_in(char *buf, const char *dir, const char *name)
{
	int n = snprintf(buf, PATH_MAX, "%s/%s", dir, name);

	assert_true(n > 0 && n < PATH_MAX);
}

static tc_client *client_for(const char *sock, int timeout_ms)
{
	tc_options o;
	tc_client *c;

	memset(&o, 0, sizeof o);
	o.socket = sock;
	o.timeout_ms = timeout_ms;
	c = tc_client_new(&o);
	assert_non_null(c);
	return c;
}

static pid_t daemon_spawn(struct daemon *d, const char *ttl)
{
	char log[PATH_MAX];
	pid_t pid;
	int fd;

	path_in(log, d->dir, "tcached.log");
	if ((pid = fork()) != 0)
		return pid;
	if ((fd = open(log, O_WRONLY|O_CREAT|O_APPEND, 0600)) != -1) {
		dup2(fd, 2);
		close(fd);
	}
	if (ttl != NULL)
		execl(d->tcached, "tcached", "--socket", d->sock, "--db", d->db,
		      "--ttl", ttl, (char *)NULL);
	else
		execl(d->tcached, "tcached", "--socket", d->sock, "--db", d->db,
		      (char *)NULL);
	_exit(127);
}

/* Starts tcached and waits until it answers a handshake. */
static int daemon_start(struct daemon *d, const char *ttl)
{
	int64_t until = now_ms() + 10000;
	tc_status st;

	if ((d->pid = daemon_spawn(d, ttl)) == -1)
		return -1;
	d->c = client_for(d->sock, 2000);
	while ((st = tc_connect(d->c)) != TC_OK && now_ms() < until)
		sleep_ms(10);
	if (st != TC_OK)
		fprintf(stderr, "tcached did not answer: %s\n",
			tc_client_error(d->c));
	return st == TC_OK ? 0 : -1;
}

static int rm_entry(const char *path, const struct stat *sb, int flag,
		    struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static int setup_with(void **state, const char *ttl)
{
	const char *build = getenv("TCACHE_BUILD");
	const char *tmp = getenv("TMPDIR");
	struct daemon *d = calloc(1, sizeof *d);

	if (d == NULL)
		return -1;
	*state = d;
	snprintf(d->dir, sizeof d->dir, "%s/tcc-XXXXXX",
		 tmp != NULL && *tmp != '\0' && strlen(tmp) < 40 ? tmp : "/tmp");
	if (mkdtemp(d->dir) == NULL)
		return -1;
	path_in(d->sock, d->dir, "s.sock");
	path_in(d->db, d->dir, "t.db");
	path_in(d->tcached, build != NULL && *build != '\0' ? build : "build",
		"tcached");
	return daemon_start(d, ttl);
}

static int setup(void **state)
{
	return setup_with(state, NULL);
}

/* Stops the daemon, if still running: SIGTERM must end it with status 0. */
static int daemon_stop(struct daemon *d)
{
	int status = 0;

	if (d->pid <= 0)
		return 0;
	kill(d->pid, SIGTERM);
	while (waitpid(d->pid, &status, 0) == -1 && errno == EINTR)
		;
	d->pid = 0;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
	struct daemon *d = *state;
	int rc;

	if (d == NULL)
		return 0;
	tc_client_free(d->c);
	rc = daemon_stop(d);
	if (rc != 0)
		fprintf(stderr, "tcached did not exit 0 on SIGTERM\n");
	nftw(d->dir, rm_entry, 16, FTW_DEPTH|FTW_PHYS);
	free(d);
	return rc;
}

static void key_of(unsigned i, const char *salt, uint8_t key[TC_DIGEST_BYTES])
{
	char buf[128];
	int n = snprintf(buf, sizeof buf, "%s/%u", salt, i);

	tc_hash_bytes(buf, (size_t)n, key);
}

static tc_record rec_of(const uint8_t *key, const char *test, int outcome)
{
	tc_record r;

	memset(&r, 0, sizeof r);
	memcpy(r.key, key, TC_DIGEST_BYTES);
	r.project = "";
	r.test = test;
	r.root = "/proj";
	r.outcome = (uint8_t)outcome;
	r.duration_us = 1500;
	return r;
}

static void put_one(tc_client *c, const tc_record *r, uint8_t want)
{
	uint8_t status = 0xee;

	assert_int_equal(tc_record_put(c, r, 1, &status), TC_OK);
	assert_int_equal(status, want);
}

static void lookup_one(tc_client *c, const uint8_t *key, tc_result *res)
{
	assert_int_equal(tc_lookup(c, (const uint8_t (*)[TC_DIGEST_BYTES])key,
				   1, res), TC_OK);
}

static void test_miss_then_hit(void **state)
{
	struct daemon *d = *state;
	uint8_t key[TC_DIGEST_BYTES];
	char found[] = "data/input.txt", decl[] = "src/a.c", env[] = "CC";
	tc_input in[3] = {
		{ TC_INPUT_FILE, decl, { 1 } },
		{ TC_INPUT_FOUND, found, { 2 } },
		{ TC_INPUT_ENV, env, { 3 } },
	};
	tc_record r;
	tc_result res;

	key_of(1, "hit", key);
	lookup_one(d->c, key, &res);
	assert_int_equal(res.found, 0);
	assert_false(tc_result_is_pass(&res));
	tc_results_clear(&res, 1);

	r = rec_of(key, "tests/t.py::test_a", TC_PASS);
	r.ninputs = 3;
	r.inputs = in;
	r.message = "ok";
	put_one(d->c, &r, TC_STORED);
	lookup_one(d->c, key, &res);
	assert_int_equal(res.found, 1);
	assert_int_equal(res.outcome, TC_PASS);
	assert_int_equal(res.flaky, 0);
	assert_int_equal(res.duration_us, 1500);
	assert_true(res.expires_ms > res.created_ms);
	assert_true(tc_result_is_pass(&res));
	/* only the discovered inputs come back */
	assert_int_equal(res.ninputs, 1);
	assert_int_equal(res.inputs[0].kind, TC_INPUT_FOUND);
	assert_string_equal(res.inputs[0].path, found);
	assert_int_equal(res.inputs[0].digest[0], 2);
	tc_results_clear(&res, 1);
	assert_null(res.inputs);
}

/* More than TC_MAX_BATCH in one call: the library splits the frames and
 * keeps every answer in its place. */
static void test_batch(void **state)
{
	struct daemon *d = *state;
	enum { N = 5000 };
	uint8_t (*keys)[TC_DIGEST_BYTES] = calloc(2 * N, sizeof *keys);
	tc_record *recs = calloc(N, sizeof *recs);
	tc_result *res = calloc(2 * N, sizeof *res);
	uint8_t *status = malloc(N);
	char (*tests)[32] = calloc(N, sizeof *tests);

	assert_true(keys && recs && res && status && tests);
	for (unsigned i = 0; i < 2 * N; i++)
		key_of(i, "batch", keys[i]);
	for (unsigned i = 0; i < N; i++) {
		snprintf(tests[i], sizeof tests[i], "batch::t%u", i);
		/* every third a failure, so answers cannot be all alike */
		recs[i] = rec_of(keys[2 * i], tests[i],
				 i % 3 == 0 ? TC_FAIL : TC_PASS);
		recs[i].duration_us = i;
	}
	memset(status, 0xee, N);
	assert_int_equal(tc_record_put(d->c, recs, N, status), TC_OK);
	for (unsigned i = 0; i < N; i++)
		assert_int_equal(status[i], TC_STORED);

	assert_int_equal(tc_lookup(d->c, (const uint8_t (*)[TC_DIGEST_BYTES])
				   keys, 2 * N, res), TC_OK);
	for (unsigned i = 0; i < 2 * N; i++) {
		if (i % 2 == 1) {
			assert_int_equal(res[i].found, 0);
			continue;
		}
		assert_int_equal(res[i].found, 1);
		assert_int_equal(res[i].duration_us, i / 2);
		assert_int_equal(res[i].outcome,
				 (i / 2) % 3 == 0 ? TC_FAIL : TC_PASS);
	}
	tc_results_clear(res, 2 * N);
	free(keys);
	free(recs);
	free(res);
	free(status);
	free(tests);
}

/* Records whose frame would pass TC_MAX_FRAME are split by size. */
static void test_big_records(void **state)
{
	struct daemon *d = *state;
	enum { N = 3000 };
	tc_record *recs = calloc(N, sizeof *recs);
	uint8_t *status = malloc(N);
	char *msg = malloc(TC_MAX_MESSAGE + 1), *test = malloc(TC_MAX_TEST + 2);
	uint8_t key[TC_DIGEST_BYTES];
	tc_result res;
	tc_stat *st;
	size_t n;

	assert_true(recs && status && msg && test);
	memset(msg, 'm', TC_MAX_MESSAGE);
	msg[TC_MAX_MESSAGE] = '\0';
	memset(test, 't', 2000);
	test[2000] = '\0';
	for (unsigned i = 0; i < N; i++) {
		key_of(i, "big", key);
		recs[i] = rec_of(key, test, TC_PASS);
		recs[i].message = msg;
	}
	/* 3000 * ~3 KiB: about twice a frame */
	memset(status, 0xee, N);
	assert_int_equal(tc_record_put(d->c, recs, N, status), TC_OK);
	for (unsigned i = 0; i < N; i++)
		assert_int_equal(status[i], TC_STORED);
	lookup_one(d->c, recs[N - 1].key, &res);
	assert_int_equal(res.found, 1);
	tc_results_clear(&res, 1);
	assert_int_equal(tc_stats(d->c, 0, &st, &n), TC_OK);
	assert_int_equal(tc_stats_get(st, n, "records"), N);
	tc_stats_free(st, n);

	/* one record over a limit cannot be sent */
	memset(test, 't', TC_MAX_TEST + 1);
	test[TC_MAX_TEST + 1] = '\0';
	assert_int_equal(tc_record_put(d->c, recs, 1, status), TC_EINVAL);
	assert_true(strlen(tc_client_error(d->c)) > 0);
	free(recs);
	free(status);
	free(msg);
	free(test);
}

static void test_fail_and_flaky(void **state)
{
	struct daemon *d = *state;
	uint8_t k1[TC_DIGEST_BYTES], k2[TC_DIGEST_BYTES];
	tc_record r;
	tc_result res;

	key_of(1, "fail", k1);
	r = rec_of(k1, "t::fails", TC_FAIL);
	put_one(d->c, &r, TC_STORED);
	lookup_one(d->c, k1, &res);
	assert_int_equal(res.found, 1);
	assert_int_equal(res.outcome, TC_FAIL);
	assert_false(tc_result_is_pass(&res));
	tc_results_clear(&res, 1);

	key_of(2, "flaky", k2);
	r = rec_of(k2, "t::flaky", TC_PASS);
	put_one(d->c, &r, TC_STORED);
	r.outcome = TC_FAIL;
	put_one(d->c, &r, TC_STORED_FLAKY);
	/* a pass recorded again does not make it trusted */
	r.outcome = TC_PASS;
	put_one(d->c, &r, TC_STORED_FLAKY);
	lookup_one(d->c, k2, &res);
	assert_int_equal(res.found, 1);
	assert_int_equal(res.flaky, 1);
	assert_false(tc_result_is_pass(&res));
	tc_results_clear(&res, 1);
}

static void put_inv(tc_client *c, unsigned i, const char *test,
		    const char *path)
{
	uint8_t key[TC_DIGEST_BYTES];
	char p[64];
	tc_input in = { TC_INPUT_FILE, p, { 0 } };
	tc_record r;

	snprintf(p, sizeof p, "%s", path);
	key_of(i, "inv", key);
	r = rec_of(key, test, TC_PASS);
	r.ninputs = 1;
	r.inputs = &in;
	put_one(c, &r, TC_STORED);
}

static uint64_t inv(tc_client *c, tc_invalidate_mode mode, const char *arg,
		    const uint8_t *key, int dry)
{
	uint64_t n = 12345;

	assert_int_equal(tc_invalidate(c, mode, arg, key, dry, &n), TC_OK);
	return n;
}

static void test_invalidate(void **state)
{
	struct daemon *d = *state;
	uint8_t key[TC_DIGEST_BYTES];
	tc_result res;

	put_inv(d->c, 0, "inv::a", "src/x.c");
	put_inv(d->c, 1, "inv::b", "src/sub/y.c");
	put_inv(d->c, 2, "inv::c", "srcx/z.c");
	put_inv(d->c, 3, "other::d", "lib/w.c");
	put_inv(d->c, 4, "other::e", "lib/v.c");
	put_inv(d->c, 5, "keep::f", "doc/f.txt");

	/* a directory matches below it, never a sibling with its prefix */
	assert_int_equal(inv(d->c, TC_INV_PATH, "/proj/src", NULL, 1), 2);
	assert_int_equal(inv(d->c, TC_INV_PATH, "/proj/src", NULL, 0), 2);
	assert_int_equal(inv(d->c, TC_INV_PATH, "/proj/src", NULL, 0), 0);
	assert_int_equal(inv(d->c, TC_INV_PATH, "/proj/srcx/z.c", NULL, 0), 1);
	assert_int_equal(inv(d->c, TC_INV_TEST, "other::*", NULL, 1), 2);
	assert_int_equal(inv(d->c, TC_INV_TEST, "other::?", NULL, 0), 2);
	key_of(5, "inv", key);
	assert_int_equal(inv(d->c, TC_INV_KEY, NULL, key, 0), 1);
	lookup_one(d->c, key, &res);
	assert_int_equal(res.found, 0);
	tc_results_clear(&res, 1);

	put_inv(d->c, 6, "all::g", "g.c");
	put_inv(d->c, 7, "all::h", "h.c");
	assert_int_equal(inv(d->c, TC_INV_ALL, NULL, NULL, 0), 2);
	assert_int_equal(inv(d->c, TC_INV_ALL, NULL, NULL, 0), 0);

	/* a relative path is refused before it is sent */
	assert_int_equal(tc_invalidate(d->c, TC_INV_PATH, "src", NULL, 0,
				       NULL), TC_EINVAL);
}

static void test_stats(void **state)
{
	struct daemon *d = *state;
	uint8_t k1[TC_DIGEST_BYTES], k2[TC_DIGEST_BYTES];
	tc_record r;
	tc_result res;
	tc_stat *st;
	size_t n;

	key_of(1, "stats", k1);
	key_of(2, "stats", k2);
	r = rec_of(k1, "stats::a", TC_PASS);
	r.duration_us = 250000;
	put_one(d->c, &r, TC_STORED);
	lookup_one(d->c, k1, &res);		/* hit */
	tc_results_clear(&res, 1);
	lookup_one(d->c, k1, &res);		/* hit */
	tc_results_clear(&res, 1);
	lookup_one(d->c, k2, &res);		/* miss */
	tc_results_clear(&res, 1);

	assert_int_equal(tc_stats(d->c, 0, &st, &n), TC_OK);
	assert_true(n > 0);
	assert_int_equal(tc_stats_get(st, n, "hits"), 2);
	assert_int_equal(tc_stats_get(st, n, "misses"), 1);
	assert_int_equal(tc_stats_get(st, n, "records"), 1);
	assert_int_equal(tc_stats_get(st, n, "time_saved_us"), 500000);
	assert_int_equal(tc_stats_get(st, n, "entries"), 1);
	assert_int_equal(tc_stats_get(st, n, "no such counter"), 0);
	tc_stats_free(st, n);

	assert_int_equal(tc_stats(d->c, 1, &st, &n), TC_OK);
	tc_stats_free(st, n);
	assert_int_equal(tc_stats(d->c, 0, &st, &n), TC_OK);
	assert_int_equal(tc_stats_get(st, n, "hits"), 0);
	assert_int_equal(tc_stats_get(st, n, "misses"), 0);
	assert_int_equal(tc_stats_get(st, n, "entries"), 1);	/* live */
	tc_stats_free(st, n);
}

static void test_status(void **state)
{
	struct daemon *d = *state;
	tc_daemon_status s;

	assert_int_equal(tc_status_get(d->c, &s), TC_OK);
	assert_int_equal(s.pid, d->pid);
	assert_non_null(s.version);
	assert_string_equal(s.socket, d->sock);
	assert_int_equal(s.ttl_ms, 24ull * 3600 * 1000);
	tc_daemon_status_clear(&s);
	assert_null(s.version);
}

static void test_list(void **state)
{
	struct daemon *d = *state;
	enum { N = 25 };
	uint8_t key[TC_DIGEST_BYTES];
	char tests[N][32];
	uint64_t after = 0, next, seen[N];
	size_t n, total = 0, pages = 0;
	tc_entry *e;
	tc_record r;

	for (unsigned i = 0; i < N; i++) {
		snprintf(tests[i], sizeof tests[i], "list::t%02u", i);
		key_of(i, "list", key);
		r = rec_of(key, tests[i], TC_PASS);
		put_one(d->c, &r, TC_STORED);
	}
	key_of(0, "other", key);
	r = rec_of(key, "elsewhere", TC_PASS);
	put_one(d->c, &r, TC_STORED);

	do {
		assert_int_equal(tc_list(d->c, "list::*", NULL, after, 10, &e,
					 &n, &next), TC_OK);
		assert_true(n <= 10);
		for (size_t i = 0; i < n; i++) {
			assert_true(total < N);
			assert_memory_equal(e[i].test, "list::t", 7);
			for (size_t j = 0; j < total; j++)
				assert_true(seen[j] != e[i].id);
			seen[total++] = e[i].id;
		}
		tc_entries_free(e, n);
		pages++;
		after = next;
	} while (next != 0 && pages < 10);
	assert_int_equal(total, N);
	assert_int_equal(pages, 3);

	assert_int_equal(tc_list(d->c, NULL, NULL, 0, 0, &e, &n, &next),
			 TC_OK);
	assert_int_equal(n, N + 1);
	assert_int_equal(next, 0);
	tc_entries_free(e, n);
}

static void test_explain(void **state)
{
	struct daemon *d = *state;
	uint8_t key[TC_DIGEST_BYTES];
	char a[] = "src/a.c", b[] = "data/b", env[] = "CC";
	tc_input in[3] = {
		{ TC_INPUT_FILE, a, { 1 } },
		{ TC_INPUT_FOUND, b, { 2 } },
		{ TC_INPUT_ENV, env, { 0 } },
	};
	tc_input *out;
	size_t n;
	tc_entry e;
	tc_record r;
	int found = -1;

	key_of(1, "explain", key);
	r = rec_of(key, "ex::t", TC_FAIL);
	r.project = "proj";
	r.message = "assert 1 == 2";
	r.ninputs = 3;
	r.inputs = in;
	put_one(d->c, &r, TC_STORED);

	assert_int_equal(tc_explain(d->c, "proj", "ex::t", &found, &e, &out,
				    &n), TC_OK);
	assert_int_equal(found, 1);
	assert_memory_equal(e.key, key, TC_DIGEST_BYTES);
	assert_string_equal(e.test, "ex::t");
	assert_string_equal(e.project, "proj");
	assert_string_equal(e.root, "/proj");
	assert_string_equal(e.message, "assert 1 == 2");
	assert_int_equal(e.outcome, TC_FAIL);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(out[i].kind,
				 strcmp(out[i].path, a) == 0 ? TC_INPUT_FILE :
				 strcmp(out[i].path, b) == 0 ? TC_INPUT_FOUND :
				 TC_INPUT_ENV);
	}
	tc_entry_clear(&e);
	tc_inputs_free(out, n);

	/* another project's test of the same name is not it */
	assert_int_equal(tc_explain(d->c, "", "ex::t", &found, &e, &out, &n),
			 TC_OK);
	assert_int_equal(found, 0);
	tc_entry_clear(&e);
	tc_inputs_free(out, n);
}

static void test_gc(void **state)
{
	struct daemon *d = *state;
	uint8_t key[TC_DIGEST_BYTES];
	uint64_t removed = 999;
	tc_record r;
	tc_result res;
	tc_entry *e;
	tc_stat *st;
	size_t n;
	uint64_t next;

	for (unsigned i = 0; i < 3; i++) {
		key_of(i, "gc", key);
		r = rec_of(key, "gc::t", TC_PASS);
		r.ttl_ms = 1;
		put_one(d->c, &r, TC_STORED);
	}
	key_of(9, "gc", key);
	r = rec_of(key, "gc::live", TC_PASS);
	put_one(d->c, &r, TC_STORED);
	sleep_ms(30);
	key_of(0, "gc", key);
	lookup_one(d->c, key, &res);
	assert_int_equal(res.found, 0);		/* expired: a miss at once */
	tc_results_clear(&res, 1);

	assert_int_equal(tc_gc(d->c, &removed), TC_OK);
	assert_true(removed <= 3);
	assert_int_equal(tc_list(d->c, NULL, NULL, 0, 100, &e, &n, &next),
			 TC_OK);
	assert_int_equal(n, 1);
	assert_string_equal(e[0].test, "gc::live");
	tc_entries_free(e, n);
	assert_int_equal(tc_stats(d->c, 0, &st, &n), TC_OK);
	assert_int_equal(tc_stats_get(st, n, "entries"), 1);
	tc_stats_free(st, n);
	assert_int_equal(tc_gc(d->c, &removed), TC_OK);
	assert_int_equal(removed, 0);
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void test_verify(void **state)
{
	struct daemon *d = *state;
	char root[PATH_MAX], file[PATH_MAX], absent[PATH_MAX];
	char rel[] = "found.txt", rel2[] = "later.txt";
	tc_input in[2] = {
		{ TC_INPUT_FOUND, rel, { 0 } },
		{ TC_INPUT_FOUND, rel2, { 0 } },	/* missing: zeros */
	};
	uint8_t key[TC_DIGEST_BYTES];
	tc_record r;
	tc_result res;

	path_in(root, d->dir, "root");
	assert_int_equal(mkdir(root, 0700), 0);
	path_in(file, root, rel);
	path_in(absent, root, rel2);
	write_text(file, "v1\n");
	assert_int_equal(tc_hash_file(file, in[0].digest), TC_OK);

	key_of(1, "verify", key);
	r = rec_of(key, "verify::t", TC_PASS);
	r.root = root;
	r.ninputs = 2;
	r.inputs = in;
	put_one(d->c, &r, TC_STORED);
	lookup_one(d->c, key, &res);
	assert_true(tc_result_is_pass(&res));
	assert_int_equal(res.ninputs, 2);
	assert_int_equal(tc_result_verify(&res, root), 1);

	write_text(file, "v2\n");
	assert_int_equal(tc_result_verify(&res, root), 0);
	write_text(file, "v1\n");
	assert_int_equal(tc_result_verify(&res, root), 1);
	write_text(absent, "");			/* creating it is a change */
	assert_int_equal(tc_result_verify(&res, root), 0);
	assert_int_equal(unlink(absent), 0);
	assert_int_equal(unlink(file), 0);	/* vanishing is a change */
	assert_int_equal(tc_result_verify(&res, root), 0);
	tc_results_clear(&res, 1);

	/* An interface digest cannot be confirmed by hashing the file, even
	 * when it happens to hold the file's digest. */
	write_text(file, "v1\n");
	in[0].kind = TC_INPUT_INTERFACE;
	memset(&res, 0, sizeof res);
	res.ninputs = 1;
	res.inputs = in;
	assert_int_equal(tc_result_verify(&res, root), 0);
	in[0].kind = TC_INPUT_FOUND;
	assert_int_equal(tc_result_verify(&res, root), 1);
}

static void test_daemon_killed(void **state)
{
	struct daemon *d = *state;
	uint8_t key[TC_DIGEST_BYTES];
	tc_client *old;
	tc_record r;
	tc_result res;
	int64_t t0;
	tc_status st;

	key_of(1, "killed", key);
	r = rec_of(key, "killed::t", TC_PASS);
	put_one(d->c, &r, TC_STORED);
	assert_int_equal(daemon_stop(d), 0);

	for (int i = 0; i < 2; i++) {
		t0 = now_ms();
		st = tc_lookup(d->c, (const uint8_t (*)[TC_DIGEST_BYTES])key,
			       1, &res);
		assert_int_equal(st, TC_EUNAVAIL);
		assert_true(now_ms() - t0 < 500);
		assert_int_equal(res.found, 0);
		assert_true(strlen(tc_client_error(d->c)) > 0);
	}

	/* a new daemon on the same socket: the old client comes back by
	 * itself, and the record survived the restart */
	old = d->c;
	assert_int_equal(daemon_start(d, NULL), 0);
	lookup_one(old, key, &res);
	assert_int_equal(res.found, 1);
	tc_results_clear(&res, 1);
	tc_client_free(old);
}

static void test_no_daemon(void **state)
{
	struct daemon *d = *state;
	struct sockaddr_un sa;
	char sock[PATH_MAX];
	int64_t t0;
	tc_client *c;
	int fd;

	path_in(sock, d->dir, "none.sock");
	c = client_for(sock, 5000);
	t0 = now_ms();
	assert_int_equal(tc_connect(c), TC_EUNAVAIL);
	assert_true(now_ms() - t0 < 500);
	assert_non_null(strstr(tc_client_error(c), sock));
	tc_client_free(c);

	/* a socket left by a dead daemon: refused, also at once */
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	path_in(sa.sun_path, d->dir, "stale.sock");
	fd = socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0);
	assert_true(fd != -1);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	close(fd);
	c = client_for(sa.sun_path, 5000);
	t0 = now_ms();
	assert_int_equal(tc_connect(c), TC_EUNAVAIL);
	assert_true(now_ms() - t0 < 500);
	tc_client_free(c);
}

/* A socket that accepts connections and never answers. */
static void test_timeout(void **state)
{
	struct daemon *d = *state;
	struct sockaddr_un sa;
	int64_t t0;
	tc_client *c;
	int fd;

	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	path_in(sa.sun_path, d->dir, "mute.sock");
	fd = socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC, 0);
	assert_true(fd != -1);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
	assert_int_equal(listen(fd, 4), 0);

	c = client_for(sa.sun_path, 200);
	t0 = now_ms();
	assert_int_equal(tc_connect(c), TC_ETIMEDOUT);
	assert_true(now_ms() - t0 >= 150 && now_ms() - t0 < 1500);
	tc_client_free(c);
	close(fd);
}

static void test_bad_socket_path(void **state)
{
	char longpath[300];
	tc_client *c;

	(void)state;
	memset(longpath, 'x', sizeof longpath - 1);
	longpath[0] = '/';
	longpath[sizeof longpath - 1] = '\0';
	c = client_for(longpath, 1000);
	assert_int_equal(tc_connect(c), TC_EINVAL);
	tc_client_free(c);
}

static void test_autostart(void **state)
{
	struct daemon *d = *state;
	char sock[PATH_MAX], db[PATH_MAX], bogus[PATH_MAX];
	tc_daemon_status s;
	tc_options o;
	tc_client *c;
	int64_t t0;

	path_in(sock, d->dir, "auto.sock");
	path_in(db, d->dir, "auto.db");
	path_in(bogus, d->dir, "no-such-tcached");
	memset(&o, 0, sizeof o);
	o.socket = sock;
	o.timeout_ms = 5000;
	o.autostart = 1;
	o.db = db;

	/* a daemon that cannot be executed is reported at once */
	o.daemon = bogus;
	c = tc_client_new(&o);
	assert_non_null(c);
	t0 = now_ms();
	assert_int_equal(tc_connect(c), TC_EUNAVAIL);
	assert_true(now_ms() - t0 < 1000);
	assert_non_null(strstr(tc_client_error(c), "no-such-tcached"));
	tc_client_free(c);

	o.daemon = d->tcached;
	c = tc_client_new(&o);
	assert_non_null(c);
	assert_int_equal(tc_connect(c), TC_OK);
	assert_int_equal(tc_status_get(c, &s), TC_OK);
	assert_string_equal(s.socket, sock);
	assert_string_equal(s.db, db);
	assert_true(s.pid > 0 && (pid_t)s.pid != d->pid);
	assert_int_equal(kill((pid_t)s.pid, SIGTERM), 0);
	tc_client_free(c);
	/* not our child: wait for it to go before its directory is removed */
	t0 = now_ms();
	while (kill((pid_t)s.pid, 0) == 0 && now_ms() - t0 < 5000)
		sleep_ms(10);
	assert_int_equal(kill((pid_t)s.pid, 0), -1);
	tc_daemon_status_clear(&s);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(tc_outcome_name(TC_PASS), "pass");
	assert_string_equal(tc_outcome_name(TC_FAIL), "fail");
	assert_string_equal(tc_outcome_name(TC_SKIP), "skip");
	assert_string_equal(tc_outcome_name(TC_ERROR), "error");
	assert_string_equal(tc_outcome_name(0), "?");
	assert_string_equal(tc_outcome_name(5), "?");
	for (int o = TC_PASS; o <= TC_ERROR; o++)
		assert_int_equal(tc_outcome_parse(tc_outcome_name(o)), o);
	assert_int_equal(tc_outcome_parse("PASS"), -1);
	assert_int_equal(tc_outcome_parse("passed"), -1);
	assert_int_equal(tc_outcome_parse(""), -1);
	assert_int_equal(tc_outcome_parse(NULL), -1);
	assert_string_equal(tc_status_name(TC_OK), "ok");
	assert_string_equal(tc_status_name(TC_EUNAVAIL), "daemon unavailable");
}

#define DAEMON_TEST(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		DAEMON_TEST(test_miss_then_hit),
		DAEMON_TEST(test_batch),
		DAEMON_TEST(test_big_records),
		DAEMON_TEST(test_fail_and_flaky),
		DAEMON_TEST(test_invalidate),
		DAEMON_TEST(test_stats),
		DAEMON_TEST(test_status),
		DAEMON_TEST(test_list),
		DAEMON_TEST(test_explain),
		DAEMON_TEST(test_gc),
		DAEMON_TEST(test_verify),
		DAEMON_TEST(test_daemon_killed),
		DAEMON_TEST(test_no_daemon),
		DAEMON_TEST(test_timeout),
		DAEMON_TEST(test_autostart),
		cmocka_unit_test(test_bad_socket_path),
		cmocka_unit_test(test_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
