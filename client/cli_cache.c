/*
 * tcache key, lookup, record and invalidate: the commands a test runner
 * without a plugin calls around each test.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../proto/proto.h"
#include "cli.h"

#define CLI_A_KEYED (CLI_A_TEST | CLI_A_NEEDTEST | CLI_A_INPUTS)

int cli_key(const struct cli_cmd *cmd, int argc, char **argv)
{
	struct cli cli;
	struct cli_key k;
	char hex[2 * TC_DIGEST_BYTES + 1];
	json j;
	int rc;

	if ((rc = cli_parse(&cli, cmd, CLI_A_KEYED, argc, argv)) != CLI_PROCEED)
		goto out;
	if ((rc = cli_key_compute(&cli, &k)) == CLI_PROCEED) {
		rc = CLI_OK;
		if (cli.json) {
			json_init(&j, stdout);
			json_object_begin(&j);
			json_kv_hex(&j, "key", k.key, sizeof k.key);
			json_kv_string(&j, "project", cli.project);
			json_kv_string(&j, "test", cli.test);
			json_kv_string(&j, "root", cli.root);
			json_kv_hex(&j, "source_digest", k.src, sizeof k.src);
			json_kv_hex(&j, "env_digest", k.envd, sizeof k.envd);
			json_kv_u64(&j, "files", k.nfiles);
			json_finish(&j);
		} else {
			tc_hex(k.key, hex);
			printf("%s\n", hex);
		}
	}
	cli_key_free(&k);
out:
	cli_free(&cli);
	return rc;
}

/* Why a found or missing entry is not a cached pass; NULL for a hit. */
static const char *cli_lookup_reason(const tc_result *r, int verified,
    char *buf, size_t len)
{
	if (!r->found)
		return "no entry";
	if (r->outcome != TC_PASS) {
		snprintf(buf, len, "outcome was %s", tc_outcome_name(r->outcome));
		return buf;
	}
	if (r->flaky)
		return "flaky";
	if (!verified)
		return "a discovered input changed";
	return NULL;
}

static void cli_lookup_print(const struct cli *cli, const tc_result *r,
    const char *reason)
{
	json j;

	if (!cli->json) {
		if (!cli->quiet)
			printf("%s\n", reason == NULL ? "hit" : "miss");
		return;
	}
	json_init(&j, stdout);
	json_object_begin(&j);
	json_kv_bool(&j, "hit", reason == NULL);
	json_kv_string(&j, "test", cli->test);
	json_kv_string(&j, "outcome",
	    r != NULL && r->found ? tc_outcome_name(r->outcome) : NULL);
	json_kv_bool(&j, "flaky", r != NULL && r->found && r->flaky);
	json_key(&j, "duration");
	if (r != NULL && r->found)
		json_seconds(&j, r->duration_us);
	else
		json_null(&j);
	json_kv_string(&j, "reason", reason);
	json_finish(&j);
}

static int cli_lookup_key(const struct cli *cli, const struct cli_key *k)
{
	char buf[64];
	const char *reason;
	tc_result r;
	tc_client *c;
	tc_status st;

	if ((c = cli_client(cli)) == NULL)
		return CLI_ERROR;
	memset(&r, 0, sizeof r);
	st = tc_lookup(c, (const uint8_t (*)[TC_DIGEST_BYTES])k->key, 1, &r);
	if (st != TC_OK) {
		int rc = cli_fail(cli, c, st);

		tc_client_free(c);
		return rc;
	}
	reason = cli_lookup_reason(&r, tc_result_is_pass(&r) &&
	    tc_result_verify(&r, cli->root), buf, sizeof buf);
	cli_lookup_print(cli, &r, reason);
	tc_results_clear(&r, 1);
	tc_client_free(c);
	return reason == NULL ? CLI_OK : CLI_MISS;
}

int cli_lookup(const struct cli_cmd *cmd, int argc, char **argv)
{
	struct cli cli;
	struct cli_key k;
	int rc;

	rc = cli_parse(&cli, cmd, CLI_A_KEYED | CLI_A_QUIET, argc, argv);
	if (rc != CLI_PROCEED)
		goto out;
	if (cli_disabled()) {
		cli_lookup_print(&cli, NULL, "cache disabled");
		rc = CLI_MISS;
		goto out;
	}
	if ((rc = cli_key_compute(&cli, &k)) == CLI_PROCEED)
		rc = cli_lookup_key(&cli, &k);
	cli_key_free(&k);
out:
	cli_free(&cli);
	return rc;
}

static void cli_record_print(const struct cli *cli, const struct cli_key *k,
    int flaky)
{
	json j;

	if (!cli->json) {
		printf("stored%s\n", flaky ? " (flaky: outcome disagrees with "
		    "the cached one)" : "");
		return;
	}
	json_init(&j, stdout);
	json_object_begin(&j);
	json_kv_bool(&j, "stored", 1);
	json_kv_bool(&j, "flaky", flaky);
	json_kv_hex(&j, "key", k->key, sizeof k->key);
	json_kv_string(&j, "test", cli->test);
	json_kv_string(&j, "outcome", tc_outcome_name(cli->outcome));
	json_finish(&j);
}

static int cli_record_key(const struct cli *cli, const struct cli_key *k)
{
	tc_client *c;
	tc_status st;
	int flaky, rc = CLI_OK;

	if ((c = cli_client(cli)) == NULL)
		return CLI_ERROR;
	st = cli_key_record(cli, c, k, cli->outcome, cli->duration_us,
	    cli->message, &flaky);
	if (st != TC_OK)
		rc = cli_fail(cli, c, st);
	else
		cli_record_print(cli, k, flaky);
	tc_client_free(c);
	return rc;
}

int cli_record(const struct cli_cmd *cmd, int argc, char **argv)
{
	struct cli cli;
	struct cli_key k;
	int rc;

	rc = cli_parse(&cli, cmd, CLI_A_KEYED | CLI_A_RECORD | CLI_A_TTL,
	    argc, argv);
	if (rc != CLI_PROCEED)
		goto out;
	if (cli.outcome == 0) {
		rc = cli_usage(cmd, "--outcome is required");
		goto out;
	}
	if ((rc = cli_key_compute(&cli, &k)) == CLI_PROCEED)
		rc = cli_record_key(&cli, &k);
	cli_key_free(&k);
out:
	cli_free(&cli);
	return rc;
}

/* Invalidates each operand path; *count is the sum.  An exit status. */
static int cli_invalidate_paths(const struct cli *cli, tc_client *c,
    uint64_t *count)
{
	static const uint8_t zero[TC_DIGEST_BYTES];
	char abs[PATH_MAX];
	uint64_t n;
	tc_status st;

	for (int i = 0; i < cli->argc; i++) {
		if (cli_abspath(cli->argv[i], abs, sizeof abs) == -1) {
			fprintf(stderr, "tcache: %s: %s\n", cli->argv[i],
			    strerror(errno));
			return CLI_ERROR;
		}
		st = tc_invalidate(c, TC_INV_PATH, abs, zero, cli->dry_run, &n);
		if (st != TC_OK)
			return cli_fail(cli, c, st);
		*count += n;
	}
	return CLI_OK;
}

static int cli_invalidate_one(const struct cli *cli, tc_client *c,
    const uint8_t key[TC_DIGEST_BYTES], uint64_t *count)
{
	tc_status st;

	if (cli->argc > 0)
		return cli_invalidate_paths(cli, c, count);
	if (cli->test != NULL)
		st = tc_invalidate(c, TC_INV_TEST, cli->test, key,
		    cli->dry_run, count);
	else if (cli->key != NULL)
		st = tc_invalidate(c, TC_INV_KEY, "", key, cli->dry_run,
		    count);
	else
		st = tc_invalidate(c, TC_INV_ALL, "", key, cli->dry_run,
		    count);
	return st == TC_OK ? CLI_OK : cli_fail(cli, c, st);
}

static void cli_invalidate_print(const struct cli *cli, uint64_t n)
{
	json j;

	if (cli->json) {
		json_init(&j, stdout);
		json_object_begin(&j);
		json_kv_u64(&j, "invalidated", n);
		json_kv_bool(&j, "dry_run", cli->dry_run);
		json_finish(&j);
	} else if (cli->dry_run)
		printf("would invalidate %" PRIu64 " %s\n", n,
		    cli_plural(n, "entry", "entries"));
	else
		printf("%" PRIu64 " %s invalidated\n", n,
		    cli_plural(n, "entry", "entries"));
}

int cli_invalidate(const struct cli_cmd *cmd, int argc, char **argv)
{
	struct cli cli;
	uint8_t key[TC_DIGEST_BYTES] = { 0 };
	uint64_t n = 0;
	tc_client *c;
	int rc;

	rc = cli_parse(&cli, cmd, CLI_A_TEST | CLI_A_INVALIDATE |
	    CLI_A_OPERANDS, argc, argv);
	if (rc != CLI_PROCEED)
		goto out;
	if ((cli.argc > 0) + (cli.test != NULL) + (cli.key != NULL) +
	    cli.all != 1) {
		rc = cli_usage(cmd, "give one of PATH..., --test, --key, --all");
		goto out;
	}
	if (cli.key != NULL && tc_unhex(cli.key, key) == -1) {
		rc = cli_usage(cmd, "bad --key '%s' (64 hex digits)", cli.key);
		goto out;
	}
	if ((c = cli_client(&cli)) == NULL) {
		rc = CLI_ERROR;
		goto out;
	}
	if ((rc = cli_invalidate_one(&cli, c, key, &n)) == CLI_OK)
		cli_invalidate_print(&cli, n);
	tc_client_free(c);
out:
	cli_free(&cli);
	return rc;
}
