/*
 * tcache status, stats, top, hash, ls and gc: looking at the daemon and
 * its entries.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../proto/proto.h"
#include "cli.h"

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

/* Entries asked for per LIST page. */
#define CLI_LS_PAGE TC_MAX_LIST

static void cli_status_print(const struct cli *cli, const tc_daemon_status *s)
{
	char up[32], ttl[32];
	json j;

	if (cli->json) {
		json_init(&j, stdout);
		json_object_begin(&j);
		json_kv_string(&j, "version", s->version);
		json_kv_u64(&j, "pid", s->pid);
		json_kv_u64(&j, "uptime_ms", s->uptime_ms);
		json_kv_string(&j, "socket", s->socket);
		json_kv_string(&j, "db", s->db);
		json_kv_u64(&j, "entries", s->entries);
		json_kv_u64(&j, "ttl_ms", s->ttl_ms);
		json_kv_u64(&j, "max_entries", s->max_entries);
		json_finish(&j);
		return;
	}
	cli_format_duration(s->uptime_ms * 1000, up, sizeof up);
	cli_format_duration(s->ttl_ms * 1000, ttl, sizeof ttl);
	printf("tcached %s pid %" PRIu32 ", up %s, socket %s, db %s, "
	    "%" PRIu64 " %s, ttl %s", s->version, s->pid, up, s->socket, s->db,
	    s->entries, cli_plural(s->entries, "entry", "entries"), ttl);
	if (s->max_entries != 0)
		printf(", max %" PRIu64 " entries", s->max_entries);
	printf("\n");
}

int cli_status(const struct cli_cmd *cmd, int argc, char **argv)
{
	struct cli cli;
	tc_daemon_status s;
	tc_client *c;
	tc_status st;
	int rc;

	if ((rc = cli_parse(&cli, cmd, 0, argc, argv)) != CLI_PROCEED)
		goto out;
	if ((c = cli_client(&cli)) == NULL) {
		rc = CLI_ERROR;
		goto out;
	}
	memset(&s, 0, sizeof s);
	if ((st = tc_status_get(c, &s)) == TC_OK) {
		cli_status_print(&cli, &s);
		tc_daemon_status_clear(&s);
		rc = CLI_OK;
	} else
		rc = cli_fail(&cli, c, st);
	tc_client_free(c);
out:
	cli_free(&cli);
	return rc;
}

/* 1536 -> "1.5 KiB". */
static void cli_format_bytes(uint64_t n, char *buf, size_t len)
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB" };
	uint64_t div = 1024, tenths;
	size_t u = 0;

	if (n < 1024) {
		snprintf(buf, len, "%" PRIu64 " B", n);
		return;
	}
	while (u + 1 < nitems(units) && n / div >= 1024) {
		div *= 1024;
		u++;
	}
	/* One decimal, rounded, in integers where they cannot overflow. */
	if (n <= UINT64_MAX / 10 - div)
		tenths = (n * 10 + div / 2) / div;
	else
		tenths = n / div * 10;
	snprintf(buf, len, "%" PRIu64 ".%" PRIu64 " %s", tenths / 10,
	    tenths % 10, units[u]);
}

/* Tests the stats table lists, and the most SLOWEST returns. */
#define CLI_SLOWEST 10

/* What one look at the daemon brings back: the counters and the slowest
 * cached tests (none from a daemon too old to answer SLOWEST). */
struct cli_view {
	tc_stat *s;
	size_t n;
	tc_slow *slow;
	size_t nslow;
	int have_slow;
	char why[256];		/* why not, when !have_slow */
};

static void cli_view_free(struct cli_view *v)
{
	tc_stats_free(v->s, v->n);
	tc_slowest_free(v->slow, v->nslow);
	memset(v, 0, sizeof *v);
}

static uint64_t cli_get(const struct cli_view *v, const char *name)
{
	return tc_stats_get(v->s, v->n, name);
}

static tc_status cli_view_get(tc_client *c, int reset, struct cli_view *v)
{
	tc_status st;

	memset(v, 0, sizeof *v);
	if ((st = tc_stats(c, reset, &v->s, &v->n)) != TC_OK)
		return st;
	st = tc_slowest(c, CLI_SLOWEST, &v->slow, &v->nslow);
	/* An older daemon answers UNKNOWN (and hangs up), a failing one
	 * STORE: the counters are still worth showing. */
	if (st == TC_ESERVER) {
		snprintf(v->why, sizeof v->why, "%s", tc_client_error(c));
		return TC_OK;
	}
	if (st != TC_OK) {
		cli_view_free(v);
		return st;
	}
	v->have_slow = 1;
	return TC_OK;
}

static void cli_json_rate(json *j, const char *key, uint64_t hits,
    uint64_t misses)
{
	json_key(j, key);
	if (hits + misses == 0)
		json_null(j);
	else
		json_double(j, (double)hits / (double)(hits + misses));
}

static void cli_stats_json(const struct cli_view *v, FILE *f)
{
	json j;

	json_init(&j, f);
	json_object_begin(&j);
	for (size_t i = 0; i < v->n; i++)
		json_kv_u64(&j, v->s[i].name, v->s[i].value);
	cli_json_rate(&j, "hit_rate", cli_get(v, "hits"),
	    cli_get(v, "misses"));
	cli_json_rate(&j, "hit_rate_today", cli_get(v, "hits_today"),
	    cli_get(v, "misses_today"));
	cli_json_rate(&j, "hit_rate_7d", cli_get(v, "hits_7d"),
	    cli_get(v, "misses_7d"));
	json_key(&j, "slowest");
	if (!v->have_slow)
		json_null(&j);
	else {
		json_array_begin(&j);
		for (size_t i = 0; i < v->nslow; i++) {
			json_object_begin(&j);
			json_kv_string(&j, "project", v->slow[i].project);
			json_kv_string(&j, "test", v->slow[i].test);
			json_kv_seconds(&j, "duration", v->slow[i].duration_us);
			json_kv_u64(&j, "duration_us", v->slow[i].duration_us);
			json_kv_u64(&j, "hits", v->slow[i].hits);
			json_kv_u64(&j, "saved_us", v->slow[i].saved_us);
			json_object_end(&j);
		}
		json_array_end(&j);
	}
	json_finish(&j);
}

/* One row of the period table: hits, misses, hit rate, time saved. */
static void cli_stats_row(FILE *f, const char *label, uint64_t hits,
    uint64_t misses, uint64_t saved_us)
{
	char rate[16], saved[32];

	if (hits + misses == 0)
		snprintf(rate, sizeof rate, "-");
	else
		snprintf(rate, sizeof rate, "%.1f%%",
		    100.0 * (double)hits / (double)(hits + misses));
	cli_format_duration(saved_us, saved, sizeof saved);
	fprintf(f, "%-12s %10" PRIu64 " %10" PRIu64 " %9s %11s\n", label, hits,
	    misses, rate, saved);
}

/*
 * The table of tcache stats and tcache top:
 *
 *                    hits     misses  hit rate  time saved
 *   today              12          3     80.0%       4m12s
 *   ...
 */
static void cli_stats_table(const struct cli_view *v, FILE *f)
{
	char buf[64], dur[32], saved[32];

	fprintf(f, "%-12s %10s %10s %9s %11s\n", "", "hits", "misses",
	    "hit rate", "time saved");
	cli_stats_row(f, "today", cli_get(v, "hits_today"),
	    cli_get(v, "misses_today"), cli_get(v, "time_saved_today_us"));
	cli_stats_row(f, "last 7 days", cli_get(v, "hits_7d"),
	    cli_get(v, "misses_7d"), cli_get(v, "time_saved_7d_us"));
	cli_stats_row(f, "all time", cli_get(v, "hits"), cli_get(v, "misses"),
	    cli_get(v, "time_saved_us"));
	cli_format_bytes(cli_get(v, "db_bytes"), buf, sizeof buf);
	fprintf(f, "\n%-12s %" PRIu64 " (%" PRIu64 " flaky), database %s\n",
	    "entries", cli_get(v, "entries"), cli_get(v, "flaky_entries"),
	    buf);
	fprintf(f, "%-12s %" PRIu64 "; expired %" PRIu64 ", invalidated %"
	    PRIu64 ", evicted %" PRIu64 "\n", "records", cli_get(v, "records"),
	    cli_get(v, "expired"), cli_get(v, "invalidated"),
	    cli_get(v, "evicted"));
	if (!v->have_slow) {
		fprintf(f, "\nslowest cached tests: not answered (%s)\n",
		    v->why);
		return;
	}
	if (v->nslow == 0) {
		fprintf(f, "\nslowest cached tests: none\n");
		return;
	}
	fprintf(f, "\nslowest cached tests\n%10s %8s %11s  %s\n", "duration",
	    "hits", "saved", "test");
	for (size_t i = 0; i < v->nslow; i++) {
		cli_format_duration(v->slow[i].duration_us, dur, sizeof dur);
		cli_format_duration(v->slow[i].saved_us, saved, sizeof saved);
		fprintf(f, "%10s %8" PRIu64 " %11s  %s%s%s\n", dur,
		    v->slow[i].hits, saved, v->slow[i].project,
		    v->slow[i].project[0] != '\0' ? ": " : "",
		    v->slow[i].test);
	}
}

/*
 * The Prometheus text exposition format, 0.0.4 (what node_exporter's
 * textfile collector reads): a HELP and a TYPE line per metric, then its
 * samples.  Counters end in _total, times are in seconds.
 */
struct cli_prom {
	const char *metric;
	const char *type;
	const char *help;
	const char *stat;	/* the STATS name */
	int us;			/* microseconds, shown as seconds */
	int ms;			/* milliseconds, shown as seconds */
};

static const struct cli_prom cli_prom_metrics[] = {
	{ "tcache_hits_total", "counter",
	  "Lookups answered with a cached pass.", "hits", 0, 0 },
	{ "tcache_misses_total", "counter",
	  "Lookups with no cached pass.", "misses", 0, 0 },
	{ "tcache_time_saved_seconds_total", "counter",
	  "Recorded durations of the tests that hits skipped.",
	  "time_saved_us", 1, 0 },
	{ "tcache_records_total", "counter", "Outcomes recorded.",
	  "records", 0, 0 },
	{ "tcache_expired_total", "counter",
	  "Entries removed because they expired.", "expired", 0, 0 },
	{ "tcache_invalidated_total", "counter",
	  "Entries removed by invalidation.", "invalidated", 0, 0 },
	{ "tcache_evicted_total", "counter",
	  "Entries evicted to stay under --max-entries.", "evicted", 0, 0 },
	{ "tcache_flaky_marked_total", "counter",
	  "Entries marked flaky (a pass and a fail under one key).",
	  "flaky_marked", 0, 0 },
	{ "tcache_entries", "gauge", "Entries in the database.", "entries",
	  0, 0 },
	{ "tcache_flaky_entries", "gauge", "Entries marked flaky.",
	  "flaky_entries", 0, 0 },
	{ "tcache_db_bytes", "gauge",
	  "Size of the database file and its write-ahead log.", "db_bytes",
	  0, 0 },
	{ "tcache_uptime_seconds", "gauge", "Time since tcached started.",
	  "uptime_ms", 0, 1 },
};

/* A day figure per period: today and the last 7 days (today included). */
static const struct cli_prom cli_prom_periods[] = {
	{ "tcache_period_hits", "gauge",
	  "Hits in the period, by the daemon's local calendar days.",
	  "hits_", 0, 0 },
	{ "tcache_period_misses", "gauge",
	  "Misses in the period, by the daemon's local calendar days.",
	  "misses_", 0, 0 },
	{ "tcache_period_time_saved_seconds", "gauge",
	  "Time saved by hits in the period, by the daemon's local "
	  "calendar days.", "time_saved_", 1, 0 },
};

static void cli_prom_value(FILE *f, uint64_t v, int us, int ms)
{
	if (us)
		fprintf(f, "%" PRIu64 ".%06" PRIu64 "\n", v / 1000000,
		    v % 1000000);
	else if (ms)
		fprintf(f, "%" PRIu64 ".%03" PRIu64 "\n", v / 1000, v % 1000);
	else
		fprintf(f, "%" PRIu64 "\n", v);
}

static void cli_stats_prometheus(const struct cli_view *v, FILE *f)
{
	static const char *const period[2] = { "today", "7d" };
	char name[64];

	for (size_t i = 0; i < nitems(cli_prom_metrics); i++) {
		const struct cli_prom *m = &cli_prom_metrics[i];

		fprintf(f, "# HELP %s %s\n# TYPE %s %s\n%s ", m->metric,
		    m->help, m->metric, m->type, m->metric);
		cli_prom_value(f, cli_get(v, m->stat), m->us, m->ms);
	}
	for (size_t i = 0; i < nitems(cli_prom_periods); i++) {
		const struct cli_prom *m = &cli_prom_periods[i];

		fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", m->metric, m->help,
		    m->metric, m->type);
		for (size_t k = 0; k < nitems(period); k++) {
			/* hits_today, time_saved_today_us, hits_7d, ... */
			snprintf(name, sizeof name, "%s%s%s", m->stat,
			    period[k], m->us ? "_us" : "");
			fprintf(f, "%s{period=\"%s\"} ", m->metric, period[k]);
			cli_prom_value(f, cli_get(v, name), m->us, m->ms);
		}
	}
}

static void cli_stats_show(const struct cli *cli, const struct cli_view *v)
{
	if (cli->json)
		cli_stats_json(v, stdout);
	else if (cli->prometheus)
		cli_stats_prometheus(v, stdout);
	else
		cli_stats_table(v, stdout);
}

int cli_stats(const struct cli_cmd *cmd, int argc, char **argv)
{
	struct cli cli;
	struct cli_view v;
	tc_client *c;
	tc_status st;
	int rc;

	if ((rc = cli_parse(&cli, cmd, CLI_A_RESET | CLI_A_PROM, argc,
	    argv)) != CLI_PROCEED)
		goto out;
	if (cli.json && cli.prometheus) {
		rc = cli_usage(cmd, "--json and --prometheus are two formats: "
		    "choose one");
		goto out;
	}
	if ((c = cli_client(&cli)) == NULL) {
		rc = CLI_ERROR;
		goto out;
	}
	if ((st = cli_view_get(c, cli.reset, &v)) == TC_OK) {
		cli_stats_show(&cli, &v);
		if (cli.reset && !cli.json && !cli.prometheus)
			printf("counters reset\n");
		cli_view_free(&v);
		rc = CLI_OK;
	} else
		rc = cli_fail(&cli, c, st);
	tc_client_free(c);
out:
	cli_free(&cli);
	return rc;
}

/* Sleeps us microseconds, through signals that do not end the process. */
static void cli_sleep_us(uint64_t us)
{
	struct timespec t = { (time_t)(us / 1000000),
	    (long)(us % 1000000) * 1000 };

	while (nanosleep(&t, &t) == -1 && errno == EINTR)
		;
}

/*
 * tcache top: the stats table again every --interval seconds until
 * interrupted, or --count times.  On a terminal each one replaces the
 * last (clear screen, cursor home); into a pipe or a file they follow one
 * another, with no escapes.  A daemon that stops answering is said so and
 * asked again at the next refresh, but the first look must succeed.
 */
int cli_top(const struct cli_cmd *cmd, int argc, char **argv)
{
	struct cli cli;
	struct cli_view v;
	tc_client *c = NULL;
	tc_status st;
	char when[64], every[32];
	struct tm tm;
	time_t now;
	uint64_t interval;
	int rc, tty;

	if ((rc = cli_parse(&cli, cmd, CLI_A_TOP, argc, argv)) != CLI_PROCEED)
		goto out;
	interval = cli.interval_us != 0 ? cli.interval_us : 2000000;
	tty = !cli.json && isatty(STDOUT_FILENO);
	if ((c = cli_client(&cli)) == NULL) {
		rc = CLI_ERROR;
		goto out;
	}
	for (uint64_t i = 0; cli.count == 0 || i < cli.count; i++) {
		if (i > 0)
			cli_sleep_us(interval);
		st = cli_view_get(c, 0, &v);
		if (st != TC_OK && i == 0) {
			rc = cli_fail(&cli, c, st);
			goto out;
		}
		if (tty)
			fputs("\033[H\033[2J", stdout);
		else if (i > 0 && !cli.json)
			putchar('\n');
		if (!cli.json) {
			now = time(NULL);
			if (localtime_r(&now, &tm) == NULL ||
			    strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S",
			    &tm) == 0)
				snprintf(when, sizeof when, "%lld",
				    (long long)now);
			cli_format_duration(interval, every, sizeof every);
			printf("tcache top  %s  every %s%s\n\n", when, every,
			    tty ? ", Ctrl-C to stop" : "");
		}
		if (st == TC_OK) {
			if (cli.json)
				cli_stats_json(&v, stdout);
			else
				cli_stats_table(&v, stdout);
			cli_view_free(&v);
		} else
			printf("tcached does not answer: %s\n",
			    tc_client_error(c));
		if (fflush(stdout) == EOF) {
			rc = CLI_ERROR;
			goto out;
		}
	}
	rc = CLI_OK;
out:
	tc_client_free(c);
	cli_free(&cli);
	return rc;
}

int cli_hash(const struct cli_cmd *cmd, int argc, char **argv)
{
	struct cli cli;
	uint8_t d[TC_DIGEST_BYTES];
	char hex[2 * TC_DIGEST_BYTES + 1];
	tc_memo *memo = NULL;
	json j;
	int rc;

	rc = cli_parse(&cli, cmd, CLI_A_OPERANDS, argc, argv);
	if (rc != CLI_PROCEED)
		goto out;
	if (cli.argc == 0) {
		rc = cli_usage(cmd, "no FILE given");
		goto out;
	}
	rc = CLI_OK;
	if (tc_memo_open(NULL, &memo) != TC_OK)
		memo = NULL;	/* the memo only saves time */
	json_init(&j, stdout);
	if (cli.json) {
		json_object_begin(&j);
		json_key(&j, "files");
		json_array_begin(&j);
	}
	for (int i = 0; i < cli.argc; i++) {
		const char *path = cli.argv[i];
		int ok = tc_memo_hash_file(memo, path, d) == TC_OK;
		int err = errno;

		if (!ok) {
			fprintf(stderr, "tcache: %s: %s\n", path, strerror(err));
			rc = CLI_ERROR;
		}
		if (cli.json) {
			json_object_begin(&j);
			json_kv_string(&j, "path", path);
			if (ok)
				json_kv_hex(&j, "digest", d, sizeof d);
			else
				json_kv_string(&j, "error", strerror(err));
			json_object_end(&j);
		} else if (ok) {
			tc_hex(d, hex);
			printf("%s  %s\n", hex, path);
		}
	}
	if (cli.json)
		json_finish(&j);
	(void)tc_memo_save(memo);
	tc_memo_free(memo);
out:
	cli_free(&cli);
	return rc;
}

static void cli_ls_json(json *j, const tc_entry *e)
{
	json_object_begin(j);
	json_kv_u64(j, "id", e->id);
	json_kv_hex(j, "key", e->key, sizeof e->key);
	json_kv_string(j, "project", e->project);
	json_kv_string(j, "test", e->test);
	json_kv_string(j, "root", e->root);
	json_kv_string(j, "outcome", tc_outcome_name(e->outcome));
	json_kv_bool(j, "flaky", e->flaky);
	json_kv_seconds(j, "duration", e->duration_us);
	json_kv_u64(j, "created_ms", e->created_ms);
	json_kv_u64(j, "expires_ms", e->expires_ms);
	json_kv_u64(j, "hits", e->hits);
	json_kv_u64(j, "last_used_ms", e->last_used_ms);
	json_kv_string(j, "message", e->message);
	json_object_end(j);
}

static void cli_ls_line(const tc_entry *e, uint64_t now)
{
	char hex[2 * TC_DIGEST_BYTES + 1], dur[32], exp[32];

	tc_hex(e->key, hex);
	cli_format_duration(e->duration_us, dur, sizeof dur);
	if (e->expires_ms <= now)
		snprintf(exp, sizeof exp, "expired");
	else
		cli_format_duration((e->expires_ms - now) * 1000, exp,
		    sizeof exp);
	printf("%.12s  %-7s %-5s %6" PRIu64 "  %8s  %8s  %s\n", hex,
	    tc_outcome_name(e->outcome), e->flaky ? "flaky" : "", e->hits,
	    dur, exp, e->test);
}

/* Lists every page of entries; *count says how many. */
static int cli_ls_pages(const struct cli *cli, tc_client *c, const char *path,
    json *j, uint64_t *count)
{
	uint64_t after = 0, next, now = cli_now_ms();
	tc_entry *e;
	size_t n;
	tc_status st;

	do {
		st = tc_list(c, cli->test, path, after, CLI_LS_PAGE, &e, &n,
		    &next);
		if (st != TC_OK)
			return cli_fail(cli, c, st);
		for (size_t i = 0; i < n; i++) {
			if (cli->json)
				cli_ls_json(j, &e[i]);
			else {
				if (*count == 0 && i == 0)
					printf("%-12s  %-7s %-5s %6s  %8s  %8s  "
					    "%s\n", "KEY", "OUTCOME", "FLAKY",
					    "HITS", "DURATION", "EXPIRES",
					    "TEST");
				cli_ls_line(&e[i], now);
			}
		}
		*count += n;
		tc_entries_free(e, n);
		/* A cursor that does not move would page for ever. */
		if (next != 0 && next <= after)
			break;
		after = next;
	} while (next != 0);
	return CLI_OK;
}

int cli_ls(const struct cli_cmd *cmd, int argc, char **argv)
{
	struct cli cli;
	char path[PATH_MAX];
	uint64_t count = 0;
	tc_client *c;
	json j;
	int rc;

	rc = cli_parse(&cli, cmd, CLI_A_TEST | CLI_A_PATH, argc, argv);
	if (rc != CLI_PROCEED)
		goto out;
	if (cli.path != NULL && cli_abspath(cli.path, path, sizeof path) == -1) {
		fprintf(stderr, "tcache: %s: %s\n", cli.path, strerror(errno));
		rc = CLI_ERROR;
		goto out;
	}
	if ((c = cli_client(&cli)) == NULL) {
		rc = CLI_ERROR;
		goto out;
	}
	json_init(&j, stdout);
	if (cli.json) {
		json_object_begin(&j);
		json_key(&j, "entries");
		json_array_begin(&j);
	}
	rc = cli_ls_pages(&cli, c, cli.path != NULL ? path : NULL, &j, &count);
	if (rc == CLI_OK && cli.json)
		json_finish(&j);
	else if (rc == CLI_OK && count == 0)
		printf("no entries\n");
	tc_client_free(c);
out:
	cli_free(&cli);
	return rc;
}

int cli_gc(const struct cli_cmd *cmd, int argc, char **argv)
{
	struct cli cli;
	uint64_t n = 0;
	tc_client *c;
	tc_status st;
	json j;
	int rc;

	if ((rc = cli_parse(&cli, cmd, 0, argc, argv)) != CLI_PROCEED)
		goto out;
	if ((c = cli_client(&cli)) == NULL) {
		rc = CLI_ERROR;
		goto out;
	}
	if ((st = tc_gc(c, &n)) != TC_OK)
		rc = cli_fail(&cli, c, st);
	else if (cli.json) {
		json_init(&j, stdout);
		json_object_begin(&j);
		json_kv_u64(&j, "removed", n);
		json_finish(&j);
		rc = CLI_OK;
	} else {
		printf("%" PRIu64 " expired %s removed\n", n,
		    cli_plural(n, "entry", "entries"));
		rc = CLI_OK;
	}
	tc_client_free(c);
out:
	cli_free(&cli);
	return rc;
}
