/*
 * tcache run: skip a command whose passing result is cached, else run it
 * and record how it went.  The cache may only ever save time: when the
 * daemon is away, slow or wrong, the command runs and its status is ours.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../proto/proto.h"
#include "cli.h"

/* Exit statuses of a command that could not be run, as env(1) and sh. */
#define CLI_RUN_ENOEXEC 126
#define CLI_RUN_ENOENT 127

/*
 * The child to forward signals to.  A handler can reach nothing else, so
 * this is the one mutable global of the command; it is set only while a
 * child runs.
 */
static volatile sig_atomic_t cli_run_child;

/* What a run found out, for the summary. */
struct cli_run_state {
	int cached;		/* skipped: a cached pass */
	int recorded;
	int status;		/* the command's exit status */
	uint64_t duration_us;
};

static uint64_t cli_run_clock_us(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/*
 * Signals sent to tcache by a process (kill, timeout(1)) go on to the
 * child.  Those from the terminal (si_code SI_KERNEL: ^C, ^\, hangup) are
 * not forwarded: the terminal already sent them to the whole process
 * group, and a second ^C makes some runners give up their cleanup.
 */
static void cli_run_forward(int sig, siginfo_t *si, void *ctx)
{
	int saved = errno;

	(void)ctx;
	if (cli_run_child > 0 && si->si_code != SI_KERNEL)
		kill((pid_t)cli_run_child, sig);
	errno = saved;
}

static const int cli_run_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };
#define CLI_RUN_NSIG (sizeof cli_run_signals / sizeof cli_run_signals[0])

static void cli_run_signals_set(struct sigaction *old)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof sa);
	sa.sa_sigaction = cli_run_forward;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < CLI_RUN_NSIG; i++)
		sigaction(cli_run_signals[i], &sa, &old[i]);
}

static void cli_run_signals_restore(const struct sigaction *old)
{
	for (size_t i = 0; i < CLI_RUN_NSIG; i++)
		sigaction(cli_run_signals[i], &old[i], NULL);
}

static int cli_run_wait(pid_t pid)
{
	int ws;

	while (waitpid(pid, &ws, 0) == -1) {
		if (errno != EINTR) {
			fprintf(stderr, "tcache: waitpid: %s\n", strerror(errno));
			return CLI_RUN_ENOEXEC;
		}
	}
	if (WIFSIGNALED(ws))
		return 128 + WTERMSIG(ws);
	return WEXITSTATUS(ws);
}

/* Runs argv with our stdio; its exit status, 128 + signal when killed. */
static int cli_run_exec(char **argv, uint64_t *elapsed_us)
{
	struct sigaction old[CLI_RUN_NSIG];
	uint64_t start = cli_run_clock_us();
	pid_t pid;
	int status;

	fflush(NULL);
	cli_run_signals_set(old);
	if ((pid = fork()) == -1) {
		fprintf(stderr, "tcache: fork: %s\n", strerror(errno));
		cli_run_signals_restore(old);
		return CLI_RUN_ENOEXEC;
	}
	if (pid == 0) {
		cli_run_signals_restore(old);
		execvp(argv[0], argv);
		fprintf(stderr, "tcache: %s: %s\n", argv[0], strerror(errno));
		_exit(errno == ENOENT ? CLI_RUN_ENOENT : CLI_RUN_ENOEXEC);
	}
	cli_run_child = pid;
	status = cli_run_wait(pid);
	cli_run_child = 0;
	cli_run_signals_restore(old);
	*elapsed_us = cli_run_clock_us() - start;
	return status;
}

/* The default test id: the command line joined by spaces.  An exit
 * status when it is over the limit or memory runs out. */
static int cli_run_test_id(const struct cli *cli, char **out)
{
	size_t len = 0, off = 0;
	char *id;

	for (int i = 0; i < cli->argc; i++)
		len += strlen(cli->argv[i]) + 1;
	if (len - 1 > TC_MAX_TEST)
		return cli_usage(cli->cmd, "the command line is over %u "
		    "bytes: give --test", TC_MAX_TEST);
	if ((id = malloc(len)) == NULL) {
		fprintf(stderr, "tcache: out of memory\n");
		return CLI_ERROR;
	}
	for (int i = 0; i < cli->argc; i++) {
		size_t n = strlen(cli->argv[i]);

		memcpy(id + off, cli->argv[i], n);
		off += n;
		id[off++] = i + 1 < cli->argc ? ' ' : '\0';
	}
	*out = id;
	return CLI_PROCEED;
}

/* 1 when the daemon holds a verified pass for k.  Failures only warn:
 * *usable says whether to record afterwards. */
static int cli_run_lookup(const struct cli *cli, const struct cli_key *k,
    uint64_t *saved_us, int *usable)
{
	tc_result r;
	tc_client *c;
	tc_status st;
	int hit = 0;

	*usable = 0;
	if ((c = cli_client(cli)) == NULL)
		return 0;
	memset(&r, 0, sizeof r);
	st = tc_lookup(c, (const uint8_t (*)[TC_DIGEST_BYTES])k->key, 1, &r);
	if (st == TC_OK) {
		*usable = 1;
		hit = tc_result_is_pass(&r) && tc_result_verify(&r, cli->root);
		*saved_us = r.duration_us;
		tc_results_clear(&r, 1);
	} else if (!cli->quiet)
		fprintf(stderr, "tcache: %s: %s; running without the cache\n",
		    st == TC_EUNAVAIL || st == TC_ETIMEDOUT ?
		    "daemon unavailable" : "lookup failed",
		    *tc_client_error(c) ? tc_client_error(c) :
		    tc_status_name(st));
	tc_client_free(c);
	return hit;
}

/* Records the outcome of a run; failures only warn. */
static int cli_run_record(const struct cli *cli, const struct cli_key *k,
    const struct cli_run_state *rs)
{
	char msg[64];
	tc_client *c;
	tc_status st;
	int flaky;

	if (!cli_key_unchanged(cli, k)) {
		fprintf(stderr, "tcache: the inputs of %s changed while it ran; "
		    "not recorded\n", cli->test);
		return 0;
	}
	if (rs->status > 128)
		snprintf(msg, sizeof msg, "killed by signal %d",
		    rs->status - 128);
	else
		snprintf(msg, sizeof msg, "exit status %d", rs->status);
	/* A new connection: the daemon may have dropped an idle one while
	 * the command ran. */
	if ((c = cli_client(cli)) == NULL)
		return 0;
	st = cli_key_record(cli, c, k, rs->status == 0 ? TC_PASS : TC_FAIL,
	    rs->duration_us, rs->status == 0 ? NULL : msg, &flaky);
	if (st != TC_OK)
		fprintf(stderr, "tcache: %s not recorded: %s\n", cli->test,
		    *tc_client_error(c) ? tc_client_error(c) :
		    tc_status_name(st));
	else if (flaky && !cli->quiet)
		fprintf(stderr, "tcache: %s is flaky: its outcome disagrees "
		    "with the cached one\n", cli->test);
	tc_client_free(c);
	return st == TC_OK;
}

static void cli_run_summary(const struct cli *cli, const struct cli_key *k,
    const struct cli_run_state *rs)
{
	json j;

	if (!cli->json)
		return;
	json_init(&j, stdout);
	json_object_begin(&j);
	json_kv_string(&j, "test", cli->test);
	if (k != NULL)
		json_kv_hex(&j, "key", k->key, sizeof k->key);
	json_kv_bool(&j, "cached", rs->cached);
	json_kv_u64(&j, "status", (uint64_t)rs->status);
	json_kv_seconds(&j, "duration", rs->duration_us);
	json_kv_bool(&j, "recorded", rs->recorded);
	json_finish(&j);
}

/* The cached path: lookup, then run and record unless it was a pass. */
static void cli_run_cached(const struct cli *cli, struct cli_run_state *rs)
{
	struct cli_key k;
	char saved[32];
	int usable = 0;

	if (cli_key_compute(cli, &k) != CLI_PROCEED) {
		fprintf(stderr, "tcache: running %s without the cache\n",
		    cli->test);
		rs->status = cli_run_exec(cli->argv, &rs->duration_us);
		cli_run_summary(cli, NULL, rs);
	} else if (cli_run_lookup(cli, &k, &rs->duration_us, &usable)) {
		rs->cached = 1;
		rs->status = 0;
		cli_format_duration(rs->duration_us, saved, sizeof saved);
		if (!cli->quiet)
			fprintf(stderr, "tcache: cached pass for %s, skipped "
			    "(saved %s)\n", cli->test, saved);
		cli_run_summary(cli, &k, rs);
	} else {
		rs->status = cli_run_exec(cli->argv, &rs->duration_us);
		/* ^C is the user's verdict on the run, not the test's. */
		if (usable && rs->status != 128 + SIGINT)
			rs->recorded = cli_run_record(cli, &k, rs);
		cli_run_summary(cli, &k, rs);
	}
	cli_key_free(&k);
}

int cli_run(const struct cli_cmd *cmd, int argc, char **argv)
{
	struct cli cli;
	struct cli_run_state rs;
	char *id = NULL;
	int rc;

	rc = cli_parse(&cli, cmd, CLI_A_TEST | CLI_A_INPUTS | CLI_A_TTL |
	    CLI_A_QUIET | CLI_A_OPERANDS | CLI_A_STOP, argc, argv);
	if (rc != CLI_PROCEED)
		goto out;
	if (cli.argc == 0) {
		rc = cli_usage(cmd, "no command given");
		goto out;
	}
	if (cli.test == NULL) {
		if ((rc = cli_run_test_id(&cli, &id)) != CLI_PROCEED)
			goto out;
		cli.test = id;
	}
	memset(&rs, 0, sizeof rs);
	if (cli_disabled()) {
		rs.status = cli_run_exec(cli.argv, &rs.duration_us);
		cli_run_summary(&cli, NULL, &rs);
	} else
		cli_run_cached(&cli, &rs);
	rc = rs.status;
out:
	free(id);
	cli_free(&cli);
	return rc;
}
