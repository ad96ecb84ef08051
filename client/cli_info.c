/*
 * tcache status, stats, hash, ls and gc: looking at the daemon and its
 * entries.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

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

static void cli_stats_json(const tc_stat *s, size_t n, uint64_t hits,
    uint64_t misses)
{
	json j;

	json_init(&j, stdout);
	json_object_begin(&j);
	for (size_t i = 0; i < n; i++)
		json_kv_u64(&j, s[i].name, s[i].value);
	json_key(&j, "hit_rate");
	if (hits + misses == 0)
		json_null(&j);
	else
		json_double(&j, (double)hits / (double)(hits + misses));
	json_finish(&j);
}

static void cli_stats_print(const tc_stat *s, size_t n)
{
	uint64_t hits = tc_stats_get(s, n, "hits");
	uint64_t misses = tc_stats_get(s, n, "misses");
	char buf[64];

	printf("%-16s %" PRIu64 "\n", "hits", hits);
	printf("%-16s %" PRIu64 "\n", "misses", misses);
	if (hits + misses == 0)
		printf("%-16s -\n", "hit rate");
	else
		printf("%-16s %.1f%%\n", "hit rate",
		    100.0 * (double)hits / (double)(hits + misses));
	cli_format_duration(tc_stats_get(s, n, "time_saved_us"), buf,
	    sizeof buf);
	printf("%-16s %s\n", "time saved", buf);
	printf("%-16s %" PRIu64 "\n", "records", tc_stats_get(s, n, "records"));
	printf("%-16s %" PRIu64 "\n", "entries", tc_stats_get(s, n, "entries"));
	printf("%-16s %" PRIu64 "\n", "flaky entries",
	    tc_stats_get(s, n, "flaky_entries"));
	cli_format_bytes(tc_stats_get(s, n, "db_bytes"), buf, sizeof buf);
	printf("%-16s %s\n", "database size", buf);
	printf("%-16s %" PRIu64 "\n", "expired", tc_stats_get(s, n, "expired"));
	printf("%-16s %" PRIu64 "\n", "invalidated",
	    tc_stats_get(s, n, "invalidated"));
	printf("%-16s %" PRIu64 "\n", "evicted", tc_stats_get(s, n, "evicted"));
}

int cli_stats(const struct cli_cmd *cmd, int argc, char **argv)
{
	struct cli cli;
	tc_stat *s = NULL;
	size_t n = 0;
	tc_client *c;
	tc_status st;
	int rc;

	if ((rc = cli_parse(&cli, cmd, CLI_A_RESET, argc, argv)) != CLI_PROCEED)
		goto out;
	if ((c = cli_client(&cli)) == NULL) {
		rc = CLI_ERROR;
		goto out;
	}
	if ((st = tc_stats(c, cli.reset, &s, &n)) == TC_OK) {
		if (cli.json)
			cli_stats_json(s, n, tc_stats_get(s, n, "hits"),
			    tc_stats_get(s, n, "misses"));
		else {
			cli_stats_print(s, n);
			if (cli.reset)
				printf("counters reset\n");
		}
		tc_stats_free(s, n);
		rc = CLI_OK;
	} else
		rc = cli_fail(&cli, c, st);
	tc_client_free(c);
out:
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
