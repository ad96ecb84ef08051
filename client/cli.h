/*
 * The tcache command: shared option parsing, the daemon connection, key
 * derivation, and one cli_* function per subcommand (cli.c, cli_cache.c,
 * cli_info.c, cli_run.c, cli_explain.c).  tcache.c holds main and the
 * table of subcommands.  Everything goes through the public API of
 * tcache.h.
 */
#ifndef TC_CLI_H
#define TC_CLI_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "tcache.h"
#include "json.h"

/* Exit codes (DESIGN.md, "Client library and CLI"). */
enum cli_exit {
	CLI_OK = 0,		/* done, or a cached pass */
	CLI_MISS = 1,		/* no cached pass */
	CLI_USAGE = 2,		/* bad command line */
	CLI_UNAVAIL = 3,	/* the daemon did not answer, or too late */
	CLI_ERROR = 4		/* anything else */
};

/* cli_parse's answer when the command should go on. */
#define CLI_PROCEED (-1)

struct cli_cmd {
	const char *name;
	int (*fn)(const struct cli_cmd *cmd, int argc, char **argv);
	const char *usage;	/* the arguments after the name, one line */
	const char *help;	/* what it does, and its own options */
};

/* What a subcommand accepts, beyond the common options. */
enum cli_accept {
	CLI_A_TEST = 1 << 0,	/* --test: an id, or a glob for ls and
				   invalidate */
	CLI_A_NEEDTEST = 1 << 1, /* --test is required */
	CLI_A_INPUTS = 1 << 2,	/* --dep, --env; the project root is needed */
	CLI_A_QUIET = 1 << 3,	/* --quiet */
	CLI_A_RECORD = 1 << 4,	/* --outcome, --duration, --message */
	CLI_A_TTL = 1 << 5,	/* --ttl */
	CLI_A_RESET = 1 << 6,	/* --reset */
	CLI_A_INVALIDATE = 1 << 7, /* --key, --all, --dry-run */
	CLI_A_PATH = 1 << 8,	/* --path */
	CLI_A_OPERANDS = 1 << 9, /* arguments after the options */
	CLI_A_STOP = 1 << 10,	/* options end at the first operand (run) */
	CLI_A_PROM = 1 << 11,	/* --prometheus */
	CLI_A_TOP = 1 << 12	/* --interval, --count */
};

/* A parsed command line.  Strings point into argv, but for the deps made
 * absolute against --root (in joined); the arrays are owned (cli_free). */
struct cli {
	const struct cli_cmd *cmd;
	const char *socket;		/* NULL: the library's default */
	int timeout_ms;			/* 0: the library's default */
	const char *project;		/* never NULL */
	char root[PATH_MAX];		/* absolute; with CLI_A_INPUTS only */
	int root_given;			/* by --root: relative deps are
					   relative to it, not to the cwd */
	int json;
	int quiet;
	int reset;
	int prometheus;
	uint64_t interval_us;		/* top's; 0 when not given */
	uint64_t count;			/* top's refreshes; 0: no end */
	int all;
	int dry_run;
	const char *test;		/* an id, or a glob */
	int outcome;			/* tc_outcome; 0 when not given */
	uint64_t duration_us;
	uint64_t ttl_ms;		/* 0: the daemon's default */
	const char *message;
	const char *key;		/* --key HEX, unchecked */
	const char *path;		/* --path, as given */
	const char **deps;
	size_t ndeps;
	char **joined;			/* the deps made absolute */
	size_t njoined;
	const char **envs;		/* unique, valid names */
	size_t nenvs;
	int argc;			/* operands */
	char **argv;
	char daemon[PATH_MAX];		/* tcached to autostart */
};

/*
 * A test's current inputs and its key: declared files, then the
 * environment (--env names and "@platform").
 */
struct cli_key {
	tc_input *files;
	size_t nfiles;
	tc_env *env;
	size_t nenv;
	char platform[160];		/* uname -s "/" uname -m */
	uint8_t src[TC_DIGEST_BYTES];
	uint8_t envd[TC_DIGEST_BYTES];
	uint8_t key[TC_DIGEST_BYTES];
};

/* cli.c */
int cli_parse(struct cli *cli, const struct cli_cmd *cmd, int accept,
	      int argc, char **argv);
void cli_free(struct cli *cli);
int cli_usage(const struct cli_cmd *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void cli_print_help(const struct cli_cmd *cmd, FILE *f);
int cli_env_flag(const char *name, int def);
int cli_disabled(void);
tc_client *cli_client(const struct cli *cli);
int cli_fail(const struct cli *cli, tc_client *c, tc_status st);
int cli_abspath(const char *path, char *out, size_t len);
int cli_key_compute(const struct cli *cli, struct cli_key *k);
int cli_key_unchanged(const struct cli *cli, const struct cli_key *k);
tc_status cli_key_record(const struct cli *cli, tc_client *c,
    const struct cli_key *k, int outcome, uint64_t duration_us,
    const char *message, int *flaky);
void cli_key_free(struct cli_key *k);
uint64_t cli_now_ms(void);
void cli_format_duration(uint64_t us, char *buf, size_t len);
const char *cli_plural(uint64_t n, const char *one, const char *many);

/* cli_cache.c */
int cli_key(const struct cli_cmd *cmd, int argc, char **argv);
int cli_lookup(const struct cli_cmd *cmd, int argc, char **argv);
int cli_record(const struct cli_cmd *cmd, int argc, char **argv);
int cli_invalidate(const struct cli_cmd *cmd, int argc, char **argv);

/* cli_info.c */
int cli_status(const struct cli_cmd *cmd, int argc, char **argv);
int cli_stats(const struct cli_cmd *cmd, int argc, char **argv);
int cli_top(const struct cli_cmd *cmd, int argc, char **argv);
int cli_hash(const struct cli_cmd *cmd, int argc, char **argv);
int cli_ls(const struct cli_cmd *cmd, int argc, char **argv);
int cli_gc(const struct cli_cmd *cmd, int argc, char **argv);

/* cli_run.c */
int cli_run(const struct cli_cmd *cmd, int argc, char **argv);

/* cli_explain.c */
int cli_explain(const struct cli_cmd *cmd, int argc, char **argv);

#endif
