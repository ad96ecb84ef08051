/*
 * What every subcommand of tcache shares: option parsing, usage and help,
 * the daemon connection and its errors, the project root, absolute paths,
 * and the derivation of a test's key from its inputs.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "../proto/proto.h"
#include "cli.h"

#define nitems(a) (sizeof(a) / sizeof((a)[0]))

enum cli_optval {
	CLI_OPT_JSON = 256,
	CLI_OPT_SOCKET,
	CLI_OPT_TIMEOUT,
	CLI_OPT_PROJECT,
	CLI_OPT_ROOT,
	CLI_OPT_TEST,
	CLI_OPT_DEP,
	CLI_OPT_ENV,
	CLI_OPT_OUTCOME,
	CLI_OPT_DURATION,
	CLI_OPT_MESSAGE,
	CLI_OPT_TTL,
	CLI_OPT_RESET,
	CLI_OPT_KEY,
	CLI_OPT_ALL,
	CLI_OPT_DRY_RUN,
	CLI_OPT_PATH,
	CLI_OPT_PROMETHEUS,
	CLI_OPT_INTERVAL,
	CLI_OPT_COUNT
};

/* Every option of every subcommand; accept 0 is common to all. */
static const struct cli_opt {
	const char *name;
	int has_arg;
	int val;
	int accept;
} cli_opts[] = {
	{ "help", no_argument, 'h', 0 },
	{ "json", no_argument, CLI_OPT_JSON, 0 },
	{ "socket", required_argument, CLI_OPT_SOCKET, 0 },
	{ "timeout", required_argument, CLI_OPT_TIMEOUT, 0 },
	{ "project", required_argument, CLI_OPT_PROJECT, 0 },
	{ "root", required_argument, CLI_OPT_ROOT, 0 },
	{ "test", required_argument, CLI_OPT_TEST, CLI_A_TEST },
	{ "dep", required_argument, CLI_OPT_DEP, CLI_A_INPUTS },
	{ "env", required_argument, CLI_OPT_ENV, CLI_A_INPUTS },
	{ "quiet", no_argument, 'q', CLI_A_QUIET },
	{ "outcome", required_argument, CLI_OPT_OUTCOME, CLI_A_RECORD },
	{ "duration", required_argument, CLI_OPT_DURATION, CLI_A_RECORD },
	{ "message", required_argument, CLI_OPT_MESSAGE, CLI_A_RECORD },
	{ "ttl", required_argument, CLI_OPT_TTL, CLI_A_TTL },
	{ "reset", no_argument, CLI_OPT_RESET, CLI_A_RESET },
	{ "key", required_argument, CLI_OPT_KEY, CLI_A_INVALIDATE },
	{ "all", no_argument, CLI_OPT_ALL, CLI_A_INVALIDATE },
	{ "dry-run", no_argument, CLI_OPT_DRY_RUN, CLI_A_INVALIDATE },
	{ "path", required_argument, CLI_OPT_PATH, CLI_A_PATH },
	{ "prometheus", no_argument, CLI_OPT_PROMETHEUS, CLI_A_PROM },
	{ "interval", required_argument, CLI_OPT_INTERVAL, CLI_A_TOP },
	{ "count", required_argument, CLI_OPT_COUNT, CLI_A_TOP },
};

static const char cli_common_help[] =
"common options:\n"
"  --json            machine output: one JSON object\n"
"  --socket PATH     the daemon's socket (default: $TCACHE_SOCKET,\n"
"                    $XDG_RUNTIME_DIR/tcache/tcached.sock, /tmp/tcache-UID/)\n"
"  --timeout DUR     how long to wait for the daemon (500ms, 5s; default 5s)\n"
"  --project NAME    project id in the key (default: $TCACHE_PROJECT, \"\")\n"
"  --root DIR        project root (default: the git top-level, else .)\n"
"  -h, --help        this help\n"
"\n"
"environment: TCACHE_AUTOSTART=0 never starts tcached; TCACHE_DISABLE=1\n"
"makes lookup a miss and run just run the command; TCACHE_MEMO=off hashes\n"
"every --dep file afresh (default: a memo of digests in ~/.cache/tcache);\n"
"TCACHE_HASH_THREADS=N hashes a large --dep tree with N threads.\n"
"exit status: 0 ok or hit, 1 miss, 2 usage, 3 daemon unavailable, 4 error\n";

void cli_print_help(const struct cli_cmd *cmd, FILE *f)
{
	/* help parses no options: listing the common ones there would lie. */
	fprintf(f, "usage: tcache %s %s\n\n%s%s%s", cmd->name, cmd->usage,
	    cmd->help, strcmp(cmd->name, "help") == 0 ?
	    "  -h, --help        this help\n" : "\n",
	    strcmp(cmd->name, "help") == 0 ? "" : cli_common_help);
}

int cli_usage(const struct cli_cmd *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "tcache %s: ", cmd->name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nusage: tcache %s %s\n(see 'tcache help %s')\n",
	    cmd->name, cmd->usage, cmd->name);
	return CLI_USAGE;
}

/* A boolean environment variable: unset or empty is def. */
int cli_env_flag(const char *name, int def)
{
	const char *v = getenv(name);

	if (v == NULL || *v == '\0')
		return def;
	if (strcmp(v, "0") == 0 || strcmp(v, "no") == 0 ||
	    strcmp(v, "false") == 0 || strcmp(v, "off") == 0)
		return 0;
	return 1;
}

int cli_disabled(void)
{
	return cli_env_flag("TCACHE_DISABLE", 0);
}

const char *cli_plural(uint64_t n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}

uint64_t cli_now_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) == -1)
		return 0;
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void cli_format_duration(uint64_t us, char *buf, size_t len)
{
	parse_format_duration(us, buf, len);
}

/* The longopts of one subcommand: the common ones and those it accepts. */
static void cli_longopts(int accept, struct option *lo, char *shortopts,
    size_t shortlen)
{
	size_t n = 0;

	snprintf(shortopts, shortlen, "%s:h%s",
	    (accept & CLI_A_STOP) ? "+" : "", (accept & CLI_A_QUIET) ? "q" : "");
	for (size_t i = 0; i < nitems(cli_opts); i++) {
		if (cli_opts[i].accept != 0 &&
		    (cli_opts[i].accept & accept) == 0)
			continue;
		lo[n].name = cli_opts[i].name;
		lo[n].has_arg = cli_opts[i].has_arg;
		lo[n].flag = NULL;
		lo[n].val = cli_opts[i].val;
		n++;
	}
	memset(&lo[n], 0, sizeof lo[n]);
}

static int cli_opt_timeout(struct cli *cli, const char *arg)
{
	uint64_t ms;

	if (parse_duration_ms(arg, &ms) == -1 || ms == 0 || ms > INT_MAX)
		return cli_usage(cli->cmd, "bad --timeout '%s' (500ms, 5s, ...)",
		    arg);
	cli->timeout_ms = (int)ms;
	return CLI_PROCEED;
}

static int cli_opt_env(struct cli *cli, const char *name)
{
	size_t len = strlen(name);

	/* '@' names are the command's own (@platform). */
	if (len == 0 || len > TC_MAX_NAME || name[0] == '@' ||
	    strchr(name, '=') != NULL)
		return cli_usage(cli->cmd, "bad --env name '%s'", name);
	for (size_t i = 0; i < cli->nenvs; i++)
		if (strcmp(cli->envs[i], name) == 0)
			return CLI_PROCEED;
	cli->envs[cli->nenvs++] = name;
	return CLI_PROCEED;
}

static int cli_opt_record(struct cli *cli, int val, const char *arg)
{
	switch (val) {
	case CLI_OPT_OUTCOME:
		cli->outcome = tc_outcome_parse(arg);
		if (cli->outcome <= 0)
			return cli_usage(cli->cmd, "bad --outcome '%s' "
			    "(pass, fail, skip or error)", arg);
		break;
	case CLI_OPT_DURATION:
		if (parse_seconds_us(arg, &cli->duration_us) == -1)
			return cli_usage(cli->cmd, "bad --duration '%s' "
			    "(seconds, as 1.5)", arg);
		break;
	case CLI_OPT_MESSAGE:
		if (strlen(arg) > TC_MAX_MESSAGE)
			return cli_usage(cli->cmd, "--message is longer than "
			    "%u bytes", TC_MAX_MESSAGE);
		cli->message = arg;
		break;
	case CLI_OPT_TTL:
		if (parse_duration_ms(arg, &cli->ttl_ms) == -1 ||
		    cli->ttl_ms == 0)
			return cli_usage(cli->cmd, "bad --ttl '%s' "
			    "(30s, 90m, 24h, 7d)", arg);
		break;
	case CLI_OPT_PROMETHEUS:
		cli->prometheus = 1;
		break;
	case CLI_OPT_INTERVAL:
		/* Under 0.1 s a redraw would be most of what the loop does. */
		if (parse_seconds_us(arg, &cli->interval_us) == -1 ||
		    cli->interval_us < 100000 ||
		    cli->interval_us > 86400ull * 1000000)
			return cli_usage(cli->cmd, "bad --interval '%s' "
			    "(seconds, 0.1 to 86400)", arg);
		break;
	case CLI_OPT_COUNT:
		if (parse_u64(arg, &cli->count) == -1 || cli->count == 0)
			return cli_usage(cli->cmd, "bad --count '%s' "
			    "(a number of refreshes, 1 or more)", arg);
		break;
	}
	return CLI_PROCEED;
}

static int cli_opt(struct cli *cli, int val, const char *arg)
{
	switch (val) {
	case 'h':
		cli_print_help(cli->cmd, stdout);
		return CLI_OK;
	case 'q':
		cli->quiet = 1;
		break;
	case CLI_OPT_JSON:
		cli->json = 1;
		break;
	case CLI_OPT_SOCKET:
		cli->socket = arg;
		break;
	case CLI_OPT_TIMEOUT:
		return cli_opt_timeout(cli, arg);
	case CLI_OPT_PROJECT:
		cli->project = arg;
		break;
	case CLI_OPT_ROOT:
		if (realpath(arg, cli->root) == NULL)
			return cli_usage(cli->cmd, "--root %s: %s", arg,
			    strerror(errno));
		cli->root_given = 1;
		break;
	case CLI_OPT_TEST:
		cli->test = arg;
		break;
	case CLI_OPT_DEP:
		cli->deps[cli->ndeps++] = arg;
		break;
	case CLI_OPT_ENV:
		return cli_opt_env(cli, arg);
	case CLI_OPT_RESET:
		cli->reset = 1;
		break;
	case CLI_OPT_KEY:
		cli->key = arg;
		break;
	case CLI_OPT_ALL:
		cli->all = 1;
		break;
	case CLI_OPT_DRY_RUN:
		cli->dry_run = 1;
		break;
	case CLI_OPT_PATH:
		cli->path = arg;
		break;
	default:
		return cli_opt_record(cli, val, arg);
	}
	return CLI_PROCEED;
}

static int cli_badopt(struct cli *cli, int c, char **argv)
{
	const char *what = argv[optind - 1];
	char shortname[3] = { '-', (char)optopt, '\0' };

	/* An unknown letter inside a cluster (-qx) is only in optopt. */
	if (optopt > 0 && optopt < 128 && strncmp(what, "--", 2) != 0)
		what = shortname;
	if (c == ':')
		return cli_usage(cli->cmd, "option '%s' needs an argument",
		    what);
	return cli_usage(cli->cmd, "unknown option '%s'", what);
}

/*
 * The root of a project: the nearest directory at or above the current
 * one that holds a .git entry (a directory, or the file of a worktree or
 * submodule), else the current directory.  git itself is not run: it
 * costs a fork and may not be installed.
 */
static int cli_find_root(struct cli *cli)
{
	char dir[PATH_MAX], probe[PATH_MAX + 8];
	struct stat st;
	char *slash;

	if (getcwd(dir, sizeof dir) == NULL) {
		fprintf(stderr, "tcache: current directory: %s\n",
		    strerror(errno));
		return CLI_ERROR;
	}
	for (;;) {
		snprintf(probe, sizeof probe, "%s/.git",
		    strcmp(dir, "/") == 0 ? "" : dir);
		if (lstat(probe, &st) == 0) {
			memcpy(cli->root, dir, strlen(dir) + 1);
			return CLI_PROCEED;
		}
		if (strcmp(dir, "/") == 0)
			break;
		slash = strrchr(dir, '/');
		slash[slash == dir ? 1 : 0] = '\0';
	}
	if (getcwd(cli->root, sizeof cli->root) == NULL) {
		fprintf(stderr, "tcache: current directory: %s\n",
		    strerror(errno));
		return CLI_ERROR;
	}
	return CLI_PROCEED;
}

/* The tcached to autostart: the one beside this tcache, else $PATH's. */
static void cli_find_daemon(struct cli *cli)
{
	char exe[PATH_MAX];
	ssize_t n;
	char *slash;
	int len;

	snprintf(cli->daemon, sizeof cli->daemon, "tcached");
	n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n <= 0 || (size_t)n >= sizeof exe - 1)
		return;
	exe[n] = '\0';
	if ((slash = strrchr(exe, '/')) == NULL)
		return;
	*slash = '\0';
	len = snprintf(cli->daemon, sizeof cli->daemon, "%s/tcached", exe);
	if (len < 0 || (size_t)len >= sizeof cli->daemon ||
	    access(cli->daemon, X_OK) == -1)
		snprintf(cli->daemon, sizeof cli->daemon, "tcached");
}

/*
 * With --root, a relative --dep names a path in the project, wherever the
 * command runs from: `tcache lookup --root /p --dep src` is the same from
 * any directory.  Without it, relative means relative to the current
 * directory, as in a shell (`--dep ../src` from a subdirectory).
 */
static int cli_join_deps(struct cli *cli)
{
	size_t len;
	char *p;

	if (!cli->root_given)
		return CLI_PROCEED;
	cli->joined = calloc(cli->ndeps + 1, sizeof *cli->joined);
	if (cli->joined == NULL)
		goto nomem;
	for (size_t i = 0; i < cli->ndeps; i++) {
		if (cli->deps[i][0] == '/')
			continue;
		len = strlen(cli->root) + 1 + strlen(cli->deps[i]) + 1;
		if ((p = malloc(len)) == NULL)
			goto nomem;
		snprintf(p, len, "%s/%s", cli->root, cli->deps[i]);
		cli->joined[cli->njoined++] = p;
		cli->deps[i] = p;
	}
	return CLI_PROCEED;
nomem:
	fprintf(stderr, "tcache: out of memory\n");
	return CLI_ERROR;
}

/* What the options cannot check one at a time. */
static int cli_check(struct cli *cli, int accept)
{
	if (cli->argc > 0 && !(accept & CLI_A_OPERANDS))
		return cli_usage(cli->cmd, "unexpected argument '%s'",
		    cli->argv[0]);
	if ((accept & CLI_A_NEEDTEST) && cli->test == NULL)
		return cli_usage(cli->cmd, "--test ID is required");
	if (cli->test != NULL && strlen(cli->test) > TC_MAX_TEST)
		return cli_usage(cli->cmd, "--test is longer than %u bytes",
		    TC_MAX_TEST);
	if (cli->test != NULL && *cli->test == '\0')
		return cli_usage(cli->cmd, "--test is empty");
	if (strlen(cli->project) > TC_MAX_NAME)
		return cli_usage(cli->cmd, "--project is longer than %u bytes",
		    TC_MAX_NAME);
	if (!(accept & CLI_A_INPUTS))
		return CLI_PROCEED;
	if (cli->root[0] == '\0')
		return cli_find_root(cli);
	return cli_join_deps(cli);
}

/*
 * Parses a subcommand's argv (argv[0] is its name).  Returns CLI_PROCEED,
 * or the exit status when the command is done: after --help, or a usage
 * error (already reported).
 */
int cli_parse(struct cli *cli, const struct cli_cmd *cmd, int accept,
	      int argc, char **argv)
{
	struct option lo[nitems(cli_opts) + 1];
	char shortopts[8];
	const char *env;
	int c, rc;

	memset(cli, 0, sizeof *cli);
	cli->cmd = cmd;
	env = getenv("TCACHE_PROJECT");
	cli->project = env != NULL ? env : "";
	/* No more --dep or --env than arguments. */
	cli->deps = calloc((size_t)argc, sizeof *cli->deps);
	cli->envs = calloc((size_t)argc, sizeof *cli->envs);
	if (cli->deps == NULL || cli->envs == NULL) {
		fprintf(stderr, "tcache: out of memory\n");
		return CLI_ERROR;
	}
	cli_longopts(accept, lo, shortopts, sizeof shortopts);
	opterr = 0;
	/* 0, not 1: glibc then also re-reads the '+' of shortopts. */
	optind = 0;
	while ((c = getopt_long(argc, argv, shortopts, lo, NULL)) != -1) {
		if (c == '?' || c == ':')
			return cli_badopt(cli, c, argv);
		if ((rc = cli_opt(cli, c, optarg)) != CLI_PROCEED)
			return rc;
	}
	cli->argc = argc - optind;
	cli->argv = argv + optind;
	cli_find_daemon(cli);
	return cli_check(cli, accept);
}

void cli_free(struct cli *cli)
{
	for (size_t i = 0; i < cli->njoined; i++)
		free(cli->joined[i]);
	free(cli->joined);
	cli->joined = NULL;
	cli->njoined = 0;
	free(cli->deps);
	free(cli->envs);
	cli->deps = NULL;
	cli->envs = NULL;
}

tc_client *cli_client(const struct cli *cli)
{
	tc_options o;
	tc_client *c;

	memset(&o, 0, sizeof o);
	o.socket = cli->socket;
	o.timeout_ms = cli->timeout_ms;
	o.autostart = cli_env_flag("TCACHE_AUTOSTART", 1);
	o.daemon = cli->daemon;
	if ((c = tc_client_new(&o)) == NULL)
		fprintf(stderr, "tcache: out of memory\n");
	return c;
}

/* Reports a failed call on c; returns the exit status it deserves. */
int cli_fail(const struct cli *cli, tc_client *c, tc_status st)
{
	const char *msg = c != NULL ? tc_client_error(c) : NULL;

	if (msg == NULL || *msg == '\0')
		msg = tc_status_name(st);
	if (st == TC_EUNAVAIL || st == TC_ETIMEDOUT) {
		fprintf(stderr, "tcache: daemon unavailable: %s\n", msg);
		return CLI_UNAVAIL;
	}
	fprintf(stderr, "tcache %s: %s\n", cli->cmd->name, msg);
	return CLI_ERROR;
}

/* Appends the components of path to out (an absolute path), resolving
 * "." and ".." lexically. */
static int cli_normalise(char *out, size_t len, const char *path)
{
	const char *p = path, *end;
	size_t olen = strlen(out), n;
	char *slash;

	while (*p != '\0') {
		end = strchrnul(p, '/');
		n = (size_t)(end - p);
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			slash = strrchr(out, '/');
			olen = slash == out ? 1 : (size_t)(slash - out);
			out[olen] = '\0';
		} else if (n > 0 && !(n == 1 && p[0] == '.')) {
			if (olen + (olen > 1) + n + 1 > len)
				return -1;
			if (olen > 1)
				out[olen++] = '/';
			memcpy(out + olen, p, n);
			olen += n;
			out[olen] = '\0';
		}
		p = *end == '/' ? end + 1 : end;
	}
	return 0;
}

/*
 * path made absolute: symlinks resolved in the part of it that exists (a
 * deleted file still names the entries recorded under its real directory),
 * "." and ".." resolved lexically in the rest.  0, or -1 with errno.
 */
int cli_abspath(const char *path, char *out, size_t len)
{
	char lex[PATH_MAX], real[PATH_MAX];
	size_t cut;

	if (path[0] == '/')
		snprintf(lex, sizeof lex, "/");
	else if (getcwd(lex, sizeof lex) == NULL)
		return -1;
	if (cli_normalise(lex, sizeof lex, path) == -1) {
		errno = ENAMETOOLONG;
		return -1;
	}
	/* Find the longest existing prefix, then put the rest back. */
	for (cut = strlen(lex);;) {
		char save = lex[cut];

		lex[cut] = '\0';
		if (realpath(cut == 0 ? "/" : lex, real) != NULL) {
			lex[cut] = save;
			break;
		}
		lex[cut] = save;
		if (errno != ENOENT && errno != ENOTDIR)
			return -1;
		while (cut > 0 && lex[--cut] != '/')
			;
	}
	if (strlen(real) >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(out, real, strlen(real) + 1);
	if (lex[cut] != '\0' && cli_normalise(out, len, lex + cut) == -1) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

static int cli_key_env(const struct cli *cli, struct cli_key *k)
{
	struct utsname u;

	if (uname(&u) == -1) {
		fprintf(stderr, "tcache: uname: %s\n", strerror(errno));
		return CLI_ERROR;
	}
	snprintf(k->platform, sizeof k->platform, "%s/%s", u.sysname,
	    u.machine);
	k->env = calloc(cli->nenvs + 1, sizeof *k->env);
	if (k->env == NULL) {
		fprintf(stderr, "tcache: out of memory\n");
		return CLI_ERROR;
	}
	for (size_t i = 0; i < cli->nenvs; i++) {
		k->env[i].name = cli->envs[i];
		k->env[i].value = getenv(cli->envs[i]);
	}
	k->env[cli->nenvs].name = "@platform";
	k->env[cli->nenvs].value = k->platform;
	k->nenv = cli->nenvs + 1;
	return CLI_PROCEED;
}

/*
 * 1 when the --dep path, which does not resolve, is collected as an absent
 * file; not when it names an existing one once normalised
 * ("build/../src/a.c" before build/ is made is src/a.c).  Asks the
 * collection itself, so that the warning cannot disagree with the key.
 */
static int cli_dep_absent(const struct cli *cli, const char *path)
{
	static const uint8_t zero[TC_DIGEST_BYTES];
	tc_input *in;
	size_t n;
	int absent;

	if (tc_inputs_collect(cli->root, &path, 1, &in, &n, NULL, 0) != TC_OK)
		return 0;	/* the collection proper reports it */
	absent = n == 1 && memcmp(in[0].digest, zero, sizeof zero) == 0;
	tc_inputs_free(in, n);
	return absent;
}

/*
 * A --dep that does not exist is a sound input (creating it changes the key)
 * but usually a typo or a wrong directory, and then edits to the real files
 * would never change the key: say so on every use.
 */
static void cli_warn_missing(const struct cli *cli)
{
	struct stat st;

	for (size_t i = 0; i < cli->ndeps; i++)
		if (stat(cli->deps[i], &st) != 0 &&
		    (errno == ENOENT || errno == ENOTDIR) &&
		    cli_dep_absent(cli, cli->deps[i]))
			fprintf(stderr, "tcache: warning: --dep %s does not exist; "
			    "it counts as an absent file\n", cli->deps[i]);
}

/*
 * The --dep files through the digest memo ($TCACHE_MEMO, PROTOCOL.md "The
 * digest memo"), which is written back at once; without it when it is off
 * or cannot be had (the memo only saves time).
 */
static tc_status cli_collect(const struct cli *cli, tc_input **files,
			     size_t *n, char *err, size_t errlen)
{
	tc_memo *memo = NULL;
	tc_status st;

	if (tc_memo_open(NULL, &memo) != TC_OK)
		memo = NULL;
	st = tc_inputs_collect_memo(memo, cli->root, cli->deps, cli->ndeps,
	    files, n, err, errlen);
	if (st == TC_OK)
		(void)tc_memo_save(memo);
	tc_memo_free(memo);
	return st;
}

/*
 * Collects and hashes the test's inputs and derives its key (PROTOCOL.md,
 * "Keys").  CLI_PROCEED, or an exit status after a message.
 */
int cli_key_compute(const struct cli *cli, struct cli_key *k)
{
	char err[256] = "";
	tc_status st;
	int rc;

	memset(k, 0, sizeof *k);
	cli_warn_missing(cli);
	st = cli_collect(cli, &k->files, &k->nfiles, err, sizeof err);
	if (st != TC_OK) {
		fprintf(stderr, "tcache: %s\n", *err ? err : tc_status_name(st));
		return CLI_ERROR;
	}
	if ((rc = cli_key_env(cli, k)) != CLI_PROCEED)
		return rc;
	if (tc_source_digest(k->files, k->nfiles, k->src) != TC_OK ||
	    tc_env_digest(k->env, k->nenv, k->envd) != TC_OK) {
		fprintf(stderr, "tcache: duplicate input\n");
		return CLI_ERROR;
	}
	if (k->nfiles + k->nenv > TC_MAX_INPUTS) {
		fprintf(stderr, "tcache: more than %u inputs\n", TC_MAX_INPUTS);
		return CLI_ERROR;
	}
	tc_key_derive(cli->project, cli->test, k->src, k->envd, k->key);
	return CLI_PROCEED;
}

/* 1 when the declared files still hash to what k holds. */
int cli_key_unchanged(const struct cli *cli, const struct cli_key *k)
{
	uint8_t src[TC_DIGEST_BYTES];
	char err[256];
	tc_input *files;
	size_t n;
	int same;

	if (cli_collect(cli, &files, &n, err, sizeof err) != TC_OK)
		return 0;
	same = tc_source_digest(files, n, src) == TC_OK &&
	    memcmp(src, k->src, sizeof src) == 0;
	tc_inputs_free(files, n);
	return same;
}

/*
 * The inputs of a record: the declared files, then every environment
 * variable with the digest of its value (zeros when unset).  The paths are
 * k's; free only the array.  NULL when out of memory.
 */
static tc_input *cli_key_inputs(const struct cli_key *k, size_t *n)
{
	tc_input *in;
	size_t i;

	in = calloc(k->nfiles + k->nenv, sizeof *in);
	if (in == NULL)
		return NULL;
	if (k->nfiles > 0)
		memcpy(in, k->files, k->nfiles * sizeof *in);
	for (i = 0; i < k->nenv; i++) {
		tc_input *e = &in[k->nfiles + i];

		e->kind = TC_INPUT_ENV;
		e->path = (char *)k->env[i].name;
		if (k->env[i].value != NULL)
			tc_hash_bytes(k->env[i].value, strlen(k->env[i].value),
			    e->digest);
	}
	*n = k->nfiles + k->nenv;
	return in;
}

/* Records k's outcome; *flaky says whether the entry is now flaky. */
tc_status cli_key_record(const struct cli *cli, tc_client *c,
    const struct cli_key *k, int outcome, uint64_t duration_us,
    const char *message, int *flaky)
{
	tc_record rec;
	tc_input *in;
	uint8_t status = TC_STORED;
	size_t n;
	tc_status st;

	*flaky = 0;
	if ((in = cli_key_inputs(k, &n)) == NULL)
		return TC_ENOMEM;
	memset(&rec, 0, sizeof rec);
	memcpy(rec.key, k->key, sizeof rec.key);
	rec.project = cli->project;
	rec.test = cli->test;
	rec.root = cli->root;
	rec.outcome = (uint8_t)outcome;
	rec.duration_us = duration_us;
	rec.ttl_ms = cli->ttl_ms;
	rec.message = message;
	rec.ninputs = (uint32_t)n;
	rec.inputs = in;
	st = tc_record_put(c, &rec, 1, &status);
	*flaky = st == TC_OK && status == TC_STORED_FLAKY;
	free(in);
	return st;
}

void cli_key_free(struct cli_key *k)
{
	tc_inputs_free(k->files, k->nfiles);
	free(k->env);
	k->files = NULL;
	k->env = NULL;
	k->nfiles = k->nenv = 0;
}
