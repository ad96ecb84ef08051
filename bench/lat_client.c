/*
 * The clients of bench/latency.py: one request in flight, each round trip
 * timed, for as many seconds as asked after a warm-up.
 *
 *   lat_client sizes
 *       "REQ HIT MISS": bytes of a one-key LOOKUP frame and of its reply for
 *       the entry `record` stores (hit) and for an absent key (miss), so
 *       the references move the same bytes.
 *   lat_client record SOCKET
 *       stores that entry in the tcached on SOCKET, through libtcache.
 *   lat_client tcache SOCKET hit|miss SECONDS
 *       tc_lookup of one key, present (a pass, checked) or absent.
 *   lat_client raw SOCKET REQ REP SECONDS
 *       write REQ bytes, read REP bytes (bench/lat_echo on the other end).
 *   lat_client redis SOCKET KEY REP SECONDS
 *       Redis GET KEY whose whole reply is REP bytes (checked), written and
 *       read as `raw` does.
 *
 * Every timed mode prints one line of JSON: n, p50_ns, p99_ns, per_s.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../client/tcache.h"
#include "../proto/proto.h"

#define LAT_WARMUP 300			/* round trips before timing */
#define LAT_MAX_SAMPLES (4u << 20)	/* at most this many are kept */
#define LAT_BUF 65536

/* The entry of the hit: a pass with two discovered inputs, as the pytest
 * plugin records a test that imported two modules of its project. */
static const char *const lat_found[] = { "src/pkg/core.py",
	"src/pkg/util/helpers.py" };
#define LAT_NFOUND (sizeof lat_found / sizeof lat_found[0])

static void lat_key(uint8_t key[TC_DIGEST_BYTES], int hit)
{
	memset(key, hit ? 0x11 : 0x22, TC_DIGEST_BYTES);
}

static void lat_inputs(tc_input in[LAT_NFOUND])
{
	for (size_t i = 0; i < LAT_NFOUND; i++) {
		in[i].kind = TC_INPUT_FOUND;
		in[i].path = (char *)lat_found[i];
		memset(in[i].digest, 0x40 + (int)i, TC_DIGEST_BYTES);
	}
}

static uint64_t lat_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void lat_die(const char *what, const char *why)
{
	fprintf(stderr, "lat_client: %s: %s\n", what, why);
	exit(1);
}

/* --- timing --- */

typedef int (*lat_fn)(void *arg);

static int lat_cmp(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static uint32_t lat_rank(const uint32_t *v, size_t n, double p)
{
	/* Nearest rank, as bench/common.py's percentile. */
	size_t k = (size_t)(p / 100.0 * (double)n + 0.5);

	k = k < 1 ? 0 : k - 1;
	return v[k < n ? k : n - 1];
}

static void lat_time(lat_fn fn, void *arg, double seconds)
{
	uint32_t *ns = malloc(LAT_MAX_SAMPLES * sizeof *ns);
	uint64_t t0, t, start, end;
	size_t n = 0;

	if (ns == NULL)
		lat_die("malloc", strerror(errno));
	for (int i = 0; i < LAT_WARMUP; i++)
		if (fn(arg) != 0)
			lat_die("warm-up", "round trip failed");
	start = t = lat_now_ns();
	end = start + (uint64_t)(seconds * 1e9);
	while (t < end && n < LAT_MAX_SAMPLES) {
		t0 = t;
		if (fn(arg) != 0)
			lat_die("round trip", "failed");
		t = lat_now_ns();
		ns[n++] = t - t0 > UINT32_MAX ? UINT32_MAX : (uint32_t)(t - t0);
	}
	if (n == 0)
		lat_die("timing", "no round trip in the time given");
	qsort(ns, n, sizeof *ns, lat_cmp);
	printf("{\"n\": %zu, \"p50_ns\": %u, \"p99_ns\": %u, \"per_s\": %.1f}\n",
	    n, lat_rank(ns, n, 50), lat_rank(ns, n, 99),
	    (double)n * 1e9 / (double)(t - start));
	free(ns);
}

/* --- raw and Redis: a blocking socket, write then read --- */

struct lat_raw {
	int fd;
	size_t req_len, rep_len;
	unsigned char req[LAT_BUF], rep[LAT_BUF];
};

static int lat_dial(const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof sa.sun_path)
		lat_die(path, "socket path too long");
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd == -1 || connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0)
		lat_die(path, strerror(errno));
	return fd;
}

static int lat_raw_trip(void *arg)
{
	struct lat_raw *r = arg;
	size_t got = 0;
	ssize_t n;

	if (write(r->fd, r->req, r->req_len) != (ssize_t)r->req_len)
		return -1;
	while (got < r->rep_len) {
		n = read(r->fd, r->rep + got, r->rep_len - got);
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

static size_t lat_size(const char *s)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (*s == '\0' || *end != '\0' || v == 0 || v > LAT_BUF)
		lat_die(s, "not a size from 1 to 65536");
	return v;
}

static void lat_raw_main(char **argv)
{
	static struct lat_raw r;

	r.fd = lat_dial(argv[2]);
	r.req_len = lat_size(argv[3]);
	r.rep_len = lat_size(argv[4]);
	memset(r.req, 'q', r.req_len);
	lat_time(lat_raw_trip, &r, atof(argv[5]));
	close(r.fd);
}

static void lat_redis_main(char **argv)
{
	static struct lat_raw r;
	const char *key = argv[3];
	char head[32];
	int n, hn;

	r.fd = lat_dial(argv[2]);
	r.rep_len = lat_size(argv[4]);
	n = snprintf((char *)r.req, sizeof r.req,
	    "*2\r\n$3\r\nGET\r\n$%zu\r\n%s\r\n", strlen(key), key);
	if (n < 0 || (size_t)n >= sizeof r.req)
		lat_die(key, "key too long");
	r.req_len = (size_t)n;
	/* The value is REP minus "$LEN\r\n" and "\r\n": the first reply
	 * must be exactly that bulk string, or the sizes are not alike. */
	if (lat_raw_trip(&r) != 0)
		lat_die("redis", "GET failed");
	for (size_t v = 1; v < r.rep_len; v++) {
		hn = snprintf(head, sizeof head, "$%zu\r\n", v);
		if ((size_t)hn + v + 2 == r.rep_len) {
			if (memcmp(r.rep, head, (size_t)hn) != 0 ||
			    memcmp(r.rep + r.rep_len - 2, "\r\n", 2) != 0)
				lat_die("redis", "GET reply is not a bulk string "
				    "of the expected size");
			lat_time(lat_raw_trip, &r, atof(argv[5]));
			close(r.fd);
			return;
		}
	}
	lat_die("redis", "no value length makes a reply of that size");
}

/* --- libtcache --- */

struct lat_tc {
	tc_client *c;
	uint8_t key[1][TC_DIGEST_BYTES];
	int hit;
};

static int lat_tc_trip(void *arg)
{
	struct lat_tc *t = arg;
	tc_result res;
	int ok;

	if (tc_lookup(t->c, (const uint8_t (*)[TC_DIGEST_BYTES])t->key, 1,
	    &res) != TC_OK)
		return -1;
	/* The sizes of `sizes` hold only for this very entry. */
	ok = t->hit ? tc_result_is_pass(&res) && res.ninputs == LAT_NFOUND :
	    !res.found;
	tc_results_clear(&res, 1);
	return ok ? 0 : -1;
}

static tc_client *lat_tc_client(const char *sock)
{
	tc_options o = { .socket = sock, .timeout_ms = 10000 };
	tc_client *c = tc_client_new(&o);

	if (c == NULL)
		lat_die("tc_client_new", "out of memory");
	if (tc_connect(c) != TC_OK)
		lat_die(sock, tc_client_error(c));
	return c;
}

static void lat_record_main(char **argv)
{
	tc_client *c = lat_tc_client(argv[2]);
	tc_input in[LAT_NFOUND];
	tc_record r;
	uint8_t st;

	memset(&r, 0, sizeof r);
	lat_key(r.key, 1);
	lat_inputs(in);
	r.project = "bench";
	r.test = "tests/test_latency.py::test_one";
	r.root = "/nonexistent/bench-root";
	r.outcome = TC_PASS;
	r.duration_us = 1234;
	r.ninputs = LAT_NFOUND;
	r.inputs = in;
	if (tc_record_put(c, &r, 1, &st) != TC_OK)
		lat_die("record", tc_client_error(c));
	tc_client_free(c);
}

static void lat_tc_main(char **argv)
{
	static struct lat_tc t;

	if (strcmp(argv[3], "hit") != 0 && strcmp(argv[3], "miss") != 0)
		lat_die(argv[3], "neither hit nor miss");
	t.hit = strcmp(argv[3], "hit") == 0;
	lat_key(t.key[0], t.hit);
	t.c = lat_tc_client(argv[2]);
	if (lat_tc_trip(&t) != 0)
		lat_die("lookup", t.hit ? "the key is not a cached pass with "
		    "its two inputs (run `record` first)" : "the key is present");
	lat_time(lat_tc_trip, &t, atof(argv[4]));
	tc_client_free(t.c);
}

static size_t lat_encoded(const proto_msg *m)
{
	proto_buf b;
	size_t len;

	proto_buf_init(&b);
	if (proto_encode(&b, m) != PROTO_OK)
		lat_die("proto_encode", "failed");
	len = b.len;
	proto_buf_free(&b);
	return len;
}

static void lat_sizes_main(void)
{
	uint8_t key[1][TC_DIGEST_BYTES];
	tc_input in[LAT_NFOUND];
	tc_result res;
	proto_msg m;
	size_t req, hit, miss;

	memset(&m, 0, sizeof m);
	lat_key(key[0], 1);
	m.type = PROTO_LOOKUP;
	m.u.lookup.n = 1;
	m.u.lookup.keys = (const uint8_t (*)[TC_DIGEST_BYTES])key;
	req = lat_encoded(&m);
	memset(&res, 0, sizeof res);
	lat_inputs(in);
	res.found = 1;
	res.outcome = TC_PASS;
	res.duration_us = 1234;
	res.created_ms = res.expires_ms = 1700000000000ull;
	res.ninputs = LAT_NFOUND;
	res.inputs = in;
	memset(&m, 0, sizeof m);
	m.type = PROTO_LOOKUP | PROTO_REPLY;
	m.u.lookup_r.n = 1;
	m.u.lookup_r.results = &res;
	hit = lat_encoded(&m);
	res.found = 0;
	res.ninputs = 0;
	miss = lat_encoded(&m);
	printf("%zu %zu %zu\n", req, hit, miss);
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";

	if (strcmp(mode, "sizes") == 0 && argc == 2)
		lat_sizes_main();
	else if (strcmp(mode, "record") == 0 && argc == 3)
		lat_record_main(argv);
	else if (strcmp(mode, "tcache") == 0 && argc == 5)
		lat_tc_main(argv);
	else if (strcmp(mode, "raw") == 0 && argc == 6)
		lat_raw_main(argv);
	else if (strcmp(mode, "redis") == 0 && argc == 6)
		lat_redis_main(argv);
	else {
		fprintf(stderr, "usage: lat_client sizes | record SOCKET | "
		    "tcache SOCKET hit|miss SECONDS |\n"
		    "       raw SOCKET REQ REP SECONDS | "
		    "redis SOCKET KEY REP SECONDS\n");
		return 2;
	}
	return 0;
}
