/*
 * tcache explain: why a test is not a cached pass.  It compares the inputs
 * of the newest entry recorded for the test with the inputs as they are
 * now, and says what changed: files added, removed or changed, discovered
 * files changed, environment variables changed, and the entry's own state
 * (its outcome, flaky, expired).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "../proto/proto.h"
#include "cli.h"

/* A comparison in progress; the changes are reported as they are found. */
struct cli_explain {
	const struct cli *cli;
	const tc_entry *e;
	json j;
	int changes;		/* found so far */
	int discovered_changed;
};

static void cli_explain_change(struct cli_explain *x, const char *change,
    const char *kind, const char *name)
{
	x->changes++;
	if (x->cli->json) {
		json_object_begin(&x->j);
		json_kv_string(&x->j, "change", change);
		json_kv_string(&x->j, "kind", kind);
		json_kv_string(&x->j, "name", name);
		json_object_end(&x->j);
	} else if (strcmp(kind, "env") == 0)
		printf("env %s %s\n", name, change);
	else if (strcmp(kind, "discovered") == 0)
		printf("%s (discovered): %s\n", change, name);
	else
		printf("%s: %s\n", change, name);
}

static int cli_explain_cmp(const void *a, const void *b)
{
	const tc_input *const *x = a, *const *y = b;

	return strcmp((*x)->path, (*y)->path);
}

/* The recorded inputs of one kind, sorted by path; *n counts them. */
static const tc_input **cli_explain_kind(const tc_input *in, size_t nin,
    int kind, size_t *n)
{
	const tc_input **v;

	*n = 0;
	if ((v = calloc(nin + 1, sizeof *v)) == NULL)
		return NULL;
	for (size_t i = 0; i < nin; i++)
		if (in[i].kind == kind)
			v[(*n)++] = &in[i];
	qsort(v, *n, sizeof *v, cli_explain_cmp);
	return v;
}

/* Declared files: both lists sorted by path, walked side by side. */
static int cli_explain_files(struct cli_explain *x, const struct cli_key *k,
    const tc_input *in, size_t nin)
{
	const tc_input **rec;
	size_t nrec, i = 0, j = 0;
	int c;

	if ((rec = cli_explain_kind(in, nin, TC_INPUT_FILE, &nrec)) == NULL)
		return -1;
	while (i < nrec || j < k->nfiles) {
		if (i == nrec)
			c = 1;
		else if (j == k->nfiles)
			c = -1;
		else
			c = strcmp(rec[i]->path, k->files[j].path);
		if (c < 0)
			cli_explain_change(x, "removed", "file", rec[i++]->path);
		else if (c > 0)
			cli_explain_change(x, "added", "file", k->files[j++].path);
		else {
			if (memcmp(rec[i]->digest, k->files[j].digest,
			    TC_DIGEST_BYTES) != 0)
				cli_explain_change(x, "changed", "file",
				    rec[i]->path);
			i++;
			j++;
		}
	}
	free(rec);
	return 0;
}

/* 1 when a recorded file no longer has its digest; paths are relative to
 * the root the entry was recorded under. */
static int cli_explain_differs(const struct cli_explain *x,
    const tc_input *in)
{
	uint8_t d[TC_DIGEST_BYTES];
	char path[PATH_MAX * 2];

	if (in->path[0] == '/')
		snprintf(path, sizeof path, "%s", in->path);
	else
		snprintf(path, sizeof path, "%s/%s", x->e->root, in->path);
	memset(d, 0, sizeof d);
	if (tc_hash_file(path, d) != TC_OK && errno != ENOENT)
		d[0] ^= 1;	/* unreadable now: not the same */
	return memcmp(d, in->digest, sizeof d) != 0;
}

/* Discovered files are not in the key: hash them again, as a lookup
 * would before it trusts a hit. */
static void cli_explain_discovered(struct cli_explain *x, const tc_input *in,
    size_t nin)
{
	for (size_t i = 0; i < nin; i++) {
		if (in[i].kind == TC_INPUT_FOUND && cli_explain_differs(x, &in[i])) {
			cli_explain_change(x, "changed", "discovered",
			    in[i].path);
			x->discovered_changed = 1;
		}
	}
}

/*
 * Without --dep and --env (a test recorded by another client, such as the
 * pytest plugin): check every recorded file against the disk and every
 * recorded variable against the environment.  Inputs named @... (the
 * interpreter, installed packages, options) only their recorder can check.
 */
static void cli_explain_recorded(struct cli_explain *x, const tc_input *in,
    size_t nin)
{
	uint8_t d[TC_DIGEST_BYTES];
	const char *v;
	size_t hidden = 0;

	for (size_t i = 0; i < nin; i++) {
		if (in[i].kind == TC_INPUT_FILE && cli_explain_differs(x, &in[i]))
			cli_explain_change(x, "changed", "file", in[i].path);
		if (in[i].kind != TC_INPUT_ENV)
			continue;
		if (in[i].path[0] == '@') {
			hidden++;
			continue;
		}
		memset(d, 0, sizeof d);
		if ((v = getenv(in[i].path)) != NULL)
			tc_hash_bytes(v, strlen(v), d);
		if (memcmp(d, in[i].digest, sizeof d) != 0)
			cli_explain_change(x, "changed", "env", in[i].path);
	}
	cli_explain_discovered(x, in, nin);
	if (x->changes == 0 && !x->cli->json)
		printf("no recorded file or variable changed%s\n", hidden ?
		    "; if the test still ran, its environment did (interpreter, "
		    "installed packages, options, platform)" : "");
}

static void cli_explain_env(struct cli_explain *x, const struct cli_key *k,
    const tc_input *in, size_t nin)
{
	uint8_t d[TC_DIGEST_BYTES];
	size_t i, e;

	for (e = 0; e < k->nenv; e++) {
		memset(d, 0, sizeof d);
		if (k->env[e].value != NULL)
			tc_hash_bytes(k->env[e].value, strlen(k->env[e].value),
			    d);
		for (i = 0; i < nin; i++)
			if (in[i].kind == TC_INPUT_ENV &&
			    strcmp(in[i].path, k->env[e].name) == 0)
				break;
		if (i == nin)
			cli_explain_change(x, "added", "env", k->env[e].name);
		else if (memcmp(d, in[i].digest, sizeof d) != 0)
			cli_explain_change(x, "changed", "env", k->env[e].name);
	}
	for (i = 0; i < nin; i++) {
		if (in[i].kind != TC_INPUT_ENV)
			continue;
		for (e = 0; e < k->nenv; e++)
			if (strcmp(in[i].path, k->env[e].name) == 0)
				break;
		if (e == k->nenv)
			cli_explain_change(x, "removed", "env", in[i].path);
	}
}

static void cli_explain_head(struct cli_explain *x, const tc_entry *e,
    uint64_t now)
{
	char dur[32], ago[32], exp[32];

	if (x->cli->json) {
		json_kv_bool(&x->j, "found", 1);
		json_kv_hex(&x->j, "recorded_key", e->key, sizeof e->key);
		json_kv_string(&x->j, "outcome", tc_outcome_name(e->outcome));
		json_kv_bool(&x->j, "flaky", e->flaky);
		json_kv_bool(&x->j, "expired", e->expires_ms <= now);
		json_kv_seconds(&x->j, "duration", e->duration_us);
		json_kv_u64(&x->j, "created_ms", e->created_ms);
		json_kv_u64(&x->j, "expires_ms", e->expires_ms);
		json_kv_string(&x->j, "message", e->message);
		json_key(&x->j, "changes");
		json_array_begin(&x->j);
		return;
	}
	cli_format_duration(e->duration_us, dur, sizeof dur);
	cli_format_duration(now > e->created_ms ?
	    (now - e->created_ms) * 1000 : 0, ago, sizeof ago);
	if (e->expires_ms > now)
		cli_format_duration((e->expires_ms - now) * 1000, exp,
		    sizeof exp);
	printf("last record of %s: %s in %s, %s ago, ", e->test,
	    tc_outcome_name(e->outcome), dur, ago);
	if (e->expires_ms > now)
		printf("expires in %s\n", exp);
	else
		printf("expired\n");
	if (e->message != NULL && *e->message != '\0')
		printf("message: %s\n", e->message);
}

/* The verdict; 1 when the entry is a cached pass for the inputs of now. */
static int cli_explain_verdict(struct cli_explain *x, const tc_entry *e,
    const struct cli_key *k, uint64_t now)
{
	/* Without a key of now (recorded mode) only the files can tell. */
	int match = k != NULL ? memcmp(e->key, k->key, sizeof e->key) == 0 :
	    x->changes == 0;
	int pass = e->outcome == TC_PASS && !e->flaky && e->expires_ms > now &&
	    !x->discovered_changed;
	const char *why[4];
	char outcome[32];
	size_t n = 0;

	if (e->outcome != TC_PASS) {
		snprintf(outcome, sizeof outcome, "outcome was %s",
		    tc_outcome_name(e->outcome));
		why[n++] = outcome;
	}
	if (e->flaky)
		why[n++] = "flaky";
	if (e->expires_ms <= now)
		why[n++] = "expired";
	if (x->discovered_changed)
		why[n++] = "a discovered input changed";
	if (x->cli->json) {
		json_array_end(&x->j);
		json_key(&x->j, "reasons");
		json_array_begin(&x->j);
		for (size_t i = 0; i < n; i++)
			json_string(&x->j, why[i]);
		json_array_end(&x->j);
		json_kv_bool(&x->j, "key_matches", match);
		json_kv_bool(&x->j, "cached_pass", match && pass);
		return match && pass;
	}
	for (size_t i = 0; i < n; i++)
		printf("%s\n", why[i]);
	if (k == NULL) {
		if (x->changes > 0)
			printf("the inputs changed\n");
		else if (pass)
			printf("the entry is a cached pass for these inputs\n");
		return match && pass;
	}
	if (match && pass)
		printf("key matches; the entry is a cached pass\n");
	else if (match)
		printf("key matches, but the entry is not a cached pass\n");
	else if (x->changes == 0)
		printf("key differs: the entry was recorded with other "
		    "inputs than --dep and --env give\n");
	else
		printf("key differs: the inputs changed\n");
	return match && pass;
}

static int cli_explain_found(const struct cli *cli, const struct cli_key *k,
    const tc_entry *e, const tc_input *in, size_t nin)
{
	struct cli_explain x;
	uint64_t now = cli_now_ms();
	int pass;

	memset(&x, 0, sizeof x);
	x.cli = cli;
	if (cli->json) {
		json_init(&x.j, stdout);
		json_object_begin(&x.j);
		json_kv_string(&x.j, "test", cli->test);
		json_kv_hex(&x.j, "key", k->key, sizeof k->key);
	}
	x.e = e;
	cli_explain_head(&x, e, now);
	if (cli->ndeps == 0 && cli->nenvs == 0) {
		cli_explain_recorded(&x, in, nin);
		pass = cli_explain_verdict(&x, e, NULL, now);
		if (cli->json)
			json_finish(&x.j);
		return pass ? CLI_OK : CLI_MISS;
	}
	if (cli_explain_files(&x, k, in, nin) == -1) {
		fprintf(stderr, "tcache: out of memory\n");
		return CLI_ERROR;
	}
	cli_explain_discovered(&x, in, nin);
	cli_explain_env(&x, k, in, nin);
	pass = cli_explain_verdict(&x, e, k, now);
	if (cli->json)
		json_finish(&x.j);
	return pass ? CLI_OK : CLI_MISS;
}

static int cli_explain_key(const struct cli *cli, const struct cli_key *k)
{
	tc_entry e;
	tc_input *in = NULL;
	size_t nin = 0;
	int found = 0, rc;
	tc_client *c;
	tc_status st;
	json j;

	if ((c = cli_client(cli)) == NULL)
		return CLI_ERROR;
	memset(&e, 0, sizeof e);
	st = tc_explain(c, cli->project, cli->test, &found, &e, &in, &nin);
	if (st != TC_OK)
		rc = cli_fail(cli, c, st);
	else if (found)
		rc = cli_explain_found(cli, k, &e, in, nin);
	else {
		if (cli->json) {
			json_init(&j, stdout);
			json_object_begin(&j);
			json_kv_string(&j, "test", cli->test);
			json_kv_hex(&j, "key", k->key, sizeof k->key);
			json_kv_bool(&j, "found", 0);
			json_finish(&j);
		} else
			printf("no record of %s\n", cli->test);
		rc = CLI_MISS;
	}
	/* Both hold nothing, or what the library filled in. */
	tc_entry_clear(&e);
	tc_inputs_free(in, nin);
	tc_client_free(c);
	return rc;
}

int cli_explain(const struct cli_cmd *cmd, int argc, char **argv)
{
	struct cli cli;
	struct cli_key k;
	int rc;

	rc = cli_parse(&cli, cmd, CLI_A_TEST | CLI_A_NEEDTEST | CLI_A_INPUTS,
	    argc, argv);
	if (rc != CLI_PROCEED)
		goto out;
	if ((rc = cli_key_compute(&cli, &k)) == CLI_PROCEED)
		rc = cli_explain_key(&cli, &k);
	cli_key_free(&k);
out:
	cli_free(&cli);
	return rc;
}
