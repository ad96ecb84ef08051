/*
 * scale_client: the client side of bench/scale.py, against a tcached
 * serving a database that scale_db wrote (same SEED and N).  Each mode
 * prints one JSON object.
 *
 *   lookup SOCK SEED N COUNT
 *       COUNT single-key lookups of random entries, one in flight:
 *       round-trip p50/p99 and lookups/s.
 *   record SOCK SEED FROM COUNT BATCH
 *       records entries FROM .. FROM+COUNT-1 of the same population (new
 *       keys, the same input sets), BATCH a request, one in flight.
 *   invalidate SOCK SEED N PATH CAP_S
 *       invalidates PATH while a probe thread does back-to-back single
 *       lookups; how long it took, and the probe's round trips.  With
 *       CAP_S > 0 it stops waiting after CAP_S seconds (the job goes on
 *       until tcached stops) and says how many entries went meanwhile.
 *   idle SOCK SEED N SECONDS
 *       the probe alone for SECONDS: the stalls of the machine itself
 *       (other processes, the scheduler), to read the others against.
 *   drain SOCK SEED N TARGET TIMEOUT_S
 *       polls STATUS while the probe runs until tcached holds at most
 *       TARGET entries: its expiry sweep (a database of expired entries)
 *       or its eviction (--max-entries) at work.
 *
 * The probe's stall is its longest round trip minus its median: the time
 * a lookup waited behind whatever the daemon was doing instead.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "client/tcache.h"
#include "scale.h"

#define LONG_TIMEOUT_MS (600 * 1000)
#define POLL_US 10000

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, tc_client *c, tc_status st)
{
	fprintf(stderr, "scale_client: %s: %s (%s)\n", what,
	    tc_status_name(st), c != NULL ? tc_client_error(c) : "");
	exit(1);
}

static tc_client *client(const char *sock, int timeout_ms)
{
	tc_options o = { .socket = sock, .timeout_ms = timeout_ms };
	tc_client *c = tc_client_new(&o);
	tc_status st;

	if (c == NULL)
		die("tc_client_new", NULL, TC_ENOMEM);
	if ((st = tc_connect(c)) != TC_OK)
		die("connect", c, st);
	return c;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Nearest rank, as bench/common.py's percentile. */
static double pct(const double *sorted, size_t n, double p)
{
	long k;

	if (n == 0)
		return 0;
	k = (long)(p / 100.0 * (double)n + 0.5 + 0.5) - 1;
	if (k < 0)
		k = 0;
	if ((size_t)k >= n)
		k = (long)n - 1;
	return sorted[k];
}

static void lookup_one(tc_client *c, uint64_t seed, uint64_t i, int *found)
{
	uint8_t key[1][TC_DIGEST_BYTES];
	tc_result r;
	tc_status st;

	scale_key(seed, i, key[0]);
	if ((st = tc_lookup(c, (const uint8_t (*)[TC_DIGEST_BYTES])key, 1,
	    &r)) != TC_OK)
		die("lookup", c, st);
	*found = r.found;
	tc_results_clear(&r, 1);
}

static int mode_lookup(const char *sock, uint64_t seed, uint64_t n,
    size_t count)
{
	tc_client *c = client(sock, 0);
	double *rt = malloc(count * sizeof *rt), t0, t1, start;
	size_t found = 0;
	int f;

	if (rt == NULL)
		die("malloc", NULL, TC_ENOMEM);
	start = now_s();
	for (size_t k = 0; k < count; k++) {
		t0 = now_s();
		lookup_one(c, seed, scale_mix(seed ^ 0x100c, k) % n, &f);
		t1 = now_s();
		rt[k] = (t1 - t0) * 1e6;
		found += (size_t)f;
	}
	t1 = now_s() - start;
	qsort(rt, count, sizeof *rt, cmp_double);
	printf("{\"count\": %zu, \"found\": %zu, \"p50_us\": %.2f, "
	    "\"p99_us\": %.2f, \"max_us\": %.1f, \"per_s\": %.1f}\n", count,
	    found, pct(rt, count, 50), pct(rt, count, 99), rt[count - 1],
	    (double)count / t1);
	free(rt);
	tc_client_free(c);
	return 0;
}

/* Entry i of the population as a record (scale_db.c writes the same). */
struct rec_buf {
	struct scale_input rows[SCALE_SET_ROWS + SCALE_FOUND_MAX];
	tc_input in[SCALE_SET_ROWS + SCALE_FOUND_MAX];
	uint8_t key[SCALE_DIGEST];
	char test[SCALE_PATH];
};

static void make_record(uint64_t seed, uint64_t i, struct rec_buf *b,
    tc_record *r)
{
	uint64_t h = scale_mix(seed ^ 0x5ca1e, i);
	size_t n = scale_set_rows(scale_set_of(i), b->rows);

	n += scale_found(seed, i, b->rows + n);
	for (size_t k = 0; k < n; k++) {
		b->in[k].kind = b->rows[k].kind;
		b->in[k].path = b->rows[k].path;
		memcpy(b->in[k].digest, b->rows[k].digest, SCALE_DIGEST);
	}
	scale_key(seed, i, b->key);
	scale_test(i, b->test, sizeof b->test);
	memset(r, 0, sizeof *r);
	memcpy(r->key, b->key, SCALE_DIGEST);
	r->project = SCALE_PROJECT;
	r->test = b->test;
	r->root = SCALE_ROOT;
	r->outcome = (uint8_t)scale_outcome(h);
	r->duration_us = (h >> 40) % 2000000;
	r->ninputs = (uint32_t)n;
	r->inputs = b->in;
}

static int mode_record(const char *sock, uint64_t seed, uint64_t from,
    size_t count, size_t batch)
{
	tc_client *c = client(sock, 0);
	struct rec_buf *bufs = calloc(batch, sizeof *bufs);
	tc_record *recs = calloc(batch, sizeof *recs);
	size_t nreq = (count + batch - 1) / batch, done = 0;
	double *rt = malloc(nreq * sizeof *rt), t0, start, took;
	tc_status st;

	if (bufs == NULL || recs == NULL || rt == NULL)
		die("malloc", NULL, TC_ENOMEM);
	start = now_s();
	for (size_t q = 0; q < nreq; q++) {
		size_t m = count - done < batch ? count - done : batch;

		for (size_t k = 0; k < m; k++)
			make_record(seed, from + done + k, &bufs[k], &recs[k]);
		t0 = now_s();
		if ((st = tc_record_put(c, recs, m, NULL)) != TC_OK)
			die("record", c, st);
		rt[q] = (now_s() - t0) * 1e6;
		done += m;
	}
	took = now_s() - start;
	qsort(rt, nreq, sizeof *rt, cmp_double);
	printf("{\"count\": %zu, \"batch\": %zu, \"per_s\": %.1f, "
	    "\"request_p50_us\": %.1f, \"request_p99_us\": %.1f}\n", count,
	    batch, (double)count / took, pct(rt, nreq, 50),
	    pct(rt, nreq, 99));
	free(rt);
	free(recs);
	free(bufs);
	tc_client_free(c);
	return 0;
}

/* --- the probe: back-to-back lookups on a connection of its own --- */

struct probe {
	const char *sock;
	uint64_t seed, n;
	atomic_int stop;
	atomic_int started;
	int hits;		/* look up entries that exist */
	double *rt;		/* round trips, us */
	size_t len, cap;
	double worst_at;	/* when the longest one started, s */
	pthread_t thread;
};

static void *probe_run(void *arg)
{
	struct probe *p = arg;
	tc_client *c = client(p->sock, LONG_TIMEOUT_MS);
	double t0, t1, worst = -1;
	uint64_t k = 0;
	int f;

	atomic_store(&p->started, 1);
	while (!atomic_load(&p->stop)) {
		t0 = now_s();
		/* Keys of no entry unless SCALE_PROBE_HITS is set: a hit's
		 * count is written later, by the daemon's own work, which
		 * would then be part of what the probe measures. */
		lookup_one(c, p->seed, p->hits ? scale_mix(p->seed ^ 0x9b0be,
		    k) % p->n : (1ull << 40) + k, &f);
		k++;
		t1 = now_s();
		if (p->len == p->cap) {
			double *g;

			p->cap = p->cap ? p->cap * 2 : 65536;
			if ((g = realloc(p->rt, p->cap * sizeof *g)) == NULL)
				die("realloc", NULL, TC_ENOMEM);
			p->rt = g;
		}
		p->rt[p->len++] = (t1 - t0) * 1e6;
		if (t1 - t0 > worst) {
			worst = t1 - t0;
			p->worst_at = t0;
		}
	}
	tc_client_free(c);
	return NULL;
}

static void probe_start(struct probe *p, const char *sock, uint64_t seed,
    uint64_t n)
{
	memset(p, 0, sizeof *p);
	p->sock = sock;
	p->seed = seed;
	p->n = n ? n : 1;
	p->hits = getenv("SCALE_PROBE_HITS") != NULL;
	if (pthread_create(&p->thread, NULL, probe_run, p) != 0)
		die("pthread_create", NULL, TC_ENOMEM);
	while (!atomic_load(&p->started))
		usleep(100);
	usleep(20000);		/* a few hundred round trips of baseline */
}

/* Stops the probe and prints its figures as JSON members. */
static void probe_report(struct probe *p, double since)
{
	double *s, med, mx;
	size_t over = 0;

	atomic_store(&p->stop, 1);
	pthread_join(p->thread, NULL);
	if (p->len == 0) {
		printf("\"probe_count\": 0");
		return;
	}
	if ((s = malloc(p->len * sizeof *s)) == NULL)
		die("malloc", NULL, TC_ENOMEM);
	memcpy(s, p->rt, p->len * sizeof *s);
	qsort(s, p->len, sizeof *s, cmp_double);
	med = pct(s, p->len, 50);
	mx = s[p->len - 1];
	for (size_t k = 0; k < p->len; k++)
		over += p->rt[k] - med > 5000;
	printf("\"probe_count\": %zu, \"probe_p50_us\": %.1f, "
	    "\"probe_p99_us\": %.1f, \"probe_p999_us\": %.1f, "
	    "\"probe_max_us\": %.1f, \"stall_max_ms\": %.3f, "
	    "\"stall_p999_ms\": %.3f, \"stalls_over_5ms\": %zu, "
	    "\"worst_at_s\": %.3f", p->len, med, pct(s, p->len, 99),
	    pct(s, p->len, 99.9), mx, (mx - med) / 1000,
	    (pct(s, p->len, 99.9) - med) / 1000, over, p->worst_at - since);
	free(s);
	free(p->rt);
}

static uint64_t entries(tc_client *c)
{
	tc_daemon_status s;
	uint64_t n;
	tc_status st;

	if ((st = tc_status_get(c, &s)) != TC_OK)
		die("status", c, st);
	n = s.entries;
	tc_daemon_status_clear(&s);
	return n;
}

static int mode_invalidate(const char *sock, uint64_t seed, uint64_t n,
    const char *path, double cap)
{
	tc_client *c = client(sock, cap > 0 ? (int)(cap * 1000) :
	    LONG_TIMEOUT_MS);
	tc_client *s = client(sock, LONG_TIMEOUT_MS);
	struct probe p;
	uint8_t zero[TC_DIGEST_BYTES] = { 0 };
	uint64_t count = 0, before = entries(s);
	double t0, took;
	int capped = 0;
	tc_status st;

	probe_start(&p, sock, seed, n);
	t0 = now_s();
	st = tc_invalidate(c, TC_INV_PATH, path, zero, 0, &count);
	took = now_s() - t0;
	if (st == TC_ETIMEDOUT && cap > 0) {
		capped = 1;
		count = before - entries(s);
	} else if (st != TC_OK)
		die("invalidate", c, st);
	usleep(20000);		/* and whatever the last commit left */
	printf("{\"before\": %" PRIu64 ", \"removed\": %" PRIu64 ", "
	    "\"capped\": %s, \"seconds\": %.4f, \"per_s\": %.1f, ", before,
	    count, capped ? "true" : "false", took, (double)count / took);
	probe_report(&p, t0);
	printf("}\n");
	tc_client_free(c);
	tc_client_free(s);
	return 0;
}

static int mode_drain(const char *sock, uint64_t seed, uint64_t n,
    uint64_t target, double timeout)
{
	tc_client *c = client(sock, LONG_TIMEOUT_MS);
	struct probe p;
	double t0, first = 0, last = 0, end;
	uint64_t at_start, left;

	probe_start(&p, sock, seed, n);
	t0 = now_s();
	end = t0 + timeout;
	at_start = left = entries(c);
	/* From the last poll that saw nothing removed yet: a drain shorter
	 * than a poll still takes a poll's time, not none. */
	first = left > target ? 0 : t0;
	while (left > target && now_s() < end) {
		double before = now_s();

		usleep(POLL_US);
		left = entries(c);
		if (first == 0 && left < at_start)
			first = before;
	}
	last = now_s();
	usleep(20000);
	printf("{\"at_start\": %" PRIu64 ", \"left\": %" PRIu64 ", "
	    "\"seconds\": %.4f, \"per_s\": %.1f, \"waited_s\": %.3f, ",
	    at_start, left, first > 0 ? last - first : 0.0,
	    first > 0 ? (double)(at_start - left) / (last - first) : 0.0,
	    (first > 0 ? first : last) - t0);
	probe_report(&p, first > 0 ? first : t0);
	printf("}\n");
	tc_client_free(c);
	return left <= target ? 0 : 1;
}

static int mode_idle(const char *sock, uint64_t seed, uint64_t n,
    double seconds)
{
	struct probe p;
	double t0;

	probe_start(&p, sock, seed, n);
	t0 = now_s();
	usleep((useconds_t)(seconds * 1e6));
	printf("{\"seconds\": %.3f, ", now_s() - t0);
	probe_report(&p, t0);
	printf("}\n");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 6 && strcmp(argv[1], "lookup") == 0)
		return mode_lookup(argv[2], strtoull(argv[3], NULL, 10),
		    strtoull(argv[4], NULL, 10), strtoull(argv[5], NULL, 10));
	if (argc == 7 && strcmp(argv[1], "record") == 0)
		return mode_record(argv[2], strtoull(argv[3], NULL, 10),
		    strtoull(argv[4], NULL, 10), strtoull(argv[5], NULL, 10),
		    strtoull(argv[6], NULL, 10));
	if (argc == 7 && strcmp(argv[1], "invalidate") == 0)
		return mode_invalidate(argv[2], strtoull(argv[3], NULL, 10),
		    strtoull(argv[4], NULL, 10), argv[5], strtod(argv[6], NULL));
	if (argc == 6 && strcmp(argv[1], "idle") == 0)
		return mode_idle(argv[2], strtoull(argv[3], NULL, 10),
		    strtoull(argv[4], NULL, 10), strtod(argv[5], NULL));
	if (argc == 7 && strcmp(argv[1], "drain") == 0)
		return mode_drain(argv[2], strtoull(argv[3], NULL, 10),
		    strtoull(argv[4], NULL, 10), strtoull(argv[5], NULL, 10),
		    strtod(argv[6], NULL));
	fprintf(stderr, "usage: scale_client lookup SOCK SEED N COUNT | "
	    "record SOCK SEED FROM COUNT BATCH | invalidate SOCK SEED N PATH "
	    "CAP_S | idle SOCK SEED N SECONDS | drain SOCK SEED N TARGET "
	    "TIMEOUT_S\n");
	return 2;
}
