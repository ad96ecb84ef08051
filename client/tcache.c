/*
 * tcache: the command-line client of tcached.  main finds the subcommand
 * in the table and hands it its arguments; the subcommands are in cli*.c.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

static int tcache_help(const struct cli_cmd *cmd, int argc, char **argv);

#define TCACHE_TEST_HELP \
"  --test ID         the test's id (with --project, part of the key)\n"
#define TCACHE_DEP_HELP \
"  --dep PATH        a file the test depends on; a directory stands for\n" \
"                    every file below it (repeatable); relative to --root\n" \
"                    when it is given, else to the current directory\n" \
"  --env NAME        an environment variable the test depends on\n" \
"                    (repeatable); the platform always counts\n"
#define TCACHE_INPUT_HELP TCACHE_TEST_HELP TCACHE_DEP_HELP

static const struct cli_cmd tcache_cmds[] = {
	{ "status", cli_status, "[--json]",
	  "Show the daemon's version, pid, uptime, socket, database, entries\n"
	  "and TTL.  Exits 3 when no daemon answers.\n" },
	{ "stats", cli_stats, "[--reset] [--json | --prometheus]",
	  "Show hits, misses, hit rate and time saved today, over the last 7\n"
	  "days and in all; entries, database size, the expired, invalidated\n"
	  "and evicted counts; and the 10 slowest cached tests (what a hit of\n"
	  "each saves).  Days are the daemon's local calendar days.\n"
	  "  --reset           then zero the counters and the days\n"
	  "  --prometheus      the counters in the Prometheus text format, for\n"
	  "                    node_exporter's textfile collector\n" },
	{ "top", cli_top, "[--interval SEC] [--count N]",
	  "Show the stats table again every SEC seconds until interrupted.  On\n"
	  "a terminal each one replaces the last; into a pipe or a file they\n"
	  "follow one another (with --json, one object a line).\n"
	  "  --interval SEC    seconds between refreshes (default 2, at least\n"
	  "                    0.1)\n"
	  "  --count N         stop after N refreshes\n" },
	{ "hash", cli_hash, "FILE...",
	  "Print the BLAKE2b-256 of each FILE, as b2sum -l 256 does.  Exits 4\n"
	  "if a file cannot be read, after the others.\n" },
	{ "key", cli_key, "--test ID [--dep PATH]... [--env NAME]...",
	  "Print the key of a test with these inputs.\n" TCACHE_INPUT_HELP },
	{ "lookup", cli_lookup,
	  "--test ID [--dep PATH]... [--env NAME]... [--quiet]",
	  "Exit 0 and print \"hit\" when a pass of the test with these inputs\n"
	  "is cached, else exit 1 and print \"miss\".\n" TCACHE_INPUT_HELP
	  "  -q, --quiet       print nothing\n" },
	{ "record", cli_record,
	  "--test ID --outcome OUTCOME [--duration SEC] [--dep PATH]... "
	  "[--env NAME]... [--ttl DUR] [--message TEXT]",
	  "Record the outcome of a test with these inputs.\n" TCACHE_INPUT_HELP
	  "  --outcome OUTCOME pass, fail, skip or error\n"
	  "  --duration SEC    how long the test took, in seconds (1.5)\n"
	  "  --ttl DUR         keep it this long (30m, 24h, 7d; default: the\n"
	  "                    daemon's)\n"
	  "  --message TEXT    a short note kept with the entry\n" },
	{ "run", cli_run,
	  "[--test ID] [--dep PATH]... [--env NAME]... [--ttl DUR] -- CMD [ARG]...",
	  "Skip CMD when a pass of it with these inputs is cached; else run it,\n"
	  "record pass (exit 0) or fail, and exit with its status (128 + N when\n"
	  "killed by signal N).  Nothing is recorded if an input changed while\n"
	  "CMD ran.  When the daemon is unavailable CMD just runs.\n"
	  "  --test ID         the test's id (default: the command line)\n"
	  TCACHE_DEP_HELP
	  "  --ttl DUR         keep the outcome this long\n"
	  "  -q, --quiet       no notes on stderr\n" },
	{ "invalidate", cli_invalidate,
	  "PATH... | --test PATTERN | --key HEX | --all [--dry-run]",
	  "Remove the entries with an input at PATH or below it, or whose test\n"
	  "id matches PATTERN (* ? [...]), or under a key, or all of them.\n"
	  "  --test PATTERN    the entries whose test id matches PATTERN\n"
	  "  --key HEX         the entry under this key (64 hex digits, as\n"
	  "                    'tcache key' prints it)\n"
	  "  --all             every entry\n"
	  "  --dry-run         only count them\n" },
	{ "ls", cli_ls, "[--test PATTERN] [--path PATH]",
	  "List the entries: key, outcome, flaky, hits, duration, time to\n"
	  "expiry and test id.\n"
	  "  --test PATTERN    only test ids matching PATTERN (* ? [...])\n"
	  "  --path PATH       only entries with an input at or below PATH\n" },
	{ "explain", cli_explain, "--test ID [--dep PATH]... [--env NAME]...",
	  "Say why a test is not a cached pass: compare the inputs of its\n"
	  "newest entry with the inputs of now.  Without --dep and --env (a\n"
	  "test recorded by the pytest plugin), check each recorded file and\n"
	  "variable instead.  Exits 0 when it is a cached pass, 1 otherwise.\n"
	  "Python interface digests are computed by\n"
	  "$TCACHE_PYTHON -m tcache_pytest.interface (default python3).\n"
	  TCACHE_INPUT_HELP },
	{ "gc", cli_gc, "[--json]",
	  "Remove the expired entries now (the daemon also sweeps them).\n" },
	{ "help", tcache_help, "[COMMAND]",
	  "Show the commands, or the full help of COMMAND.\n" },
};

static const struct cli_cmd *tcache_find(const char *name)
{
	for (size_t i = 0; i < nitems(tcache_cmds); i++)
		if (strcmp(tcache_cmds[i].name, name) == 0)
			return &tcache_cmds[i];
	return NULL;
}

static void tcache_list(FILE *f)
{
	fprintf(f, "usage: tcache COMMAND [OPTIONS]\n\n"
	    "tcache asks tcached whether a test's passing result is already "
	    "known.\n\ncommands:\n");
	for (size_t i = 0; i < nitems(tcache_cmds); i++)
		fprintf(f, "  %-11s %s\n", tcache_cmds[i].name,
		    tcache_cmds[i].usage);
	fprintf(f, "\noptions:\n"
	    "  -h, --help  this list\n"
	    "  --version   print the version\n"
	    "\nEvery command but help also takes --json, --socket PATH, "
	    "--timeout DUR,\n--project NAME, --root DIR and -h, --help.  "
	    "See 'tcache help COMMAND'\nfor the options of each, "
	    "'man tcache' for all of it.\n");
}

static int tcache_help(const struct cli_cmd *cmd, int argc, char **argv)
{
	const struct cli_cmd *what;

	if (argc > 1 && (strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "--help") == 0)) {
		cli_print_help(cmd, stdout);
		return CLI_OK;
	}
	if (argc > 2)
		return cli_usage(cmd, "too many arguments");
	if (argc < 2) {
		tcache_list(stdout);
		return CLI_OK;
	}
	if ((what = tcache_find(argv[1])) == NULL)
		return cli_usage(cmd, "unknown command '%s'", argv[1]);
	cli_print_help(what, stdout);
	return CLI_OK;
}

int main(int argc, char **argv)
{
	const struct cli_cmd *cmd;
	int rc;

	if (argc < 2) {
		fprintf(stderr, "usage: tcache COMMAND [OPTIONS] "
		    "(see 'tcache help')\n");
		return CLI_USAGE;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)
		return tcache_help(tcache_find("help"), 1, argv + 1);
	if (strcmp(argv[1], "--version") == 0) {
		printf("tcache %s\n", TC_VERSION);
		return CLI_OK;
	}
	if ((cmd = tcache_find(argv[1])) == NULL) {
		fprintf(stderr, "tcache: unknown command '%s' "
		    "(see 'tcache help')\n", argv[1]);
		return CLI_USAGE;
	}
	rc = cmd->fn(cmd, argc - 1, argv + 1);
	/* Output lost to a full disk or a closed pipe is a failure too. */
	if (fflush(stdout) == EOF || ferror(stdout)) {
		fprintf(stderr, "tcache: standard output: write error\n");
		return rc == CLI_OK ? CLI_ERROR : rc;
	}
	return rc;
}
