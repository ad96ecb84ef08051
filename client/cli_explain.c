/*
 * tcache explain: why a test is not a cached pass.  It compares the inputs
 * of the newest entry recorded for the test with the inputs as they are
 * now, and says what changed: files added, removed or changed, discovered
 * files changed, environment variables changed, and the entry's own state
 * (its outcome, flaky, expired).
 *
 * Interface inputs (kind 3) hold a digest only Python computes (PROTOCOL.md,
 * "Interface digests"), so the digests of now come from a helper run once
 * for the entry: $TCACHE_PYTHON -m tcache_pytest.interface PATH...  With
 * them a changed discovered file is told apart: its interface changed, or
 * only the body of a function the test ran.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../proto/proto.h"
#include "cli.h"
#include "memo.h"

#define CLI_IFC_MODULE		"tcache_pytest.interface"
#define CLI_IFC_HEX		(2 * TC_DIGEST_BYTES)
/* Parsing a few thousand files takes seconds; a helper that takes this
 * long is stuck. */
#define CLI_IFC_TIMEOUT_MS	120000
/* Paths per run of the helper, in bytes: far below ARG_MAX. */
#define CLI_IFC_ARG_BYTES	(512 * 1024)

/* A comparison in progress; the changes are reported as they are found. */
struct cli_explain {
	const struct cli *cli;
	const tc_entry *e;
	json j;
	int changes;		/* found so far */
	int discovered_changed;
	/* The interface inputs sorted by path, and their digests of now
	 * (NULL when the helper failed: then they are unchecked). */
	const tc_input **ifc;
	size_t nifc;
	uint8_t (*now)[TC_DIGEST_BYTES];
	size_t unchecked;
	char ifc_error[1024];
};

/* One run of the helper. */
struct cli_ifc_run {
	pid_t pid;
	int fd[2];		/* its stdout and stderr; -1 once at EOF */
	char *out;		/* its stdout: less than cap bytes is sound */
	size_t len, cap;
	char err[512];		/* the tail of its stderr */
	size_t elen;
};

/*
 * change is "added", "removed", or for a file what changed: "content"
 * (its bytes), "interface" (its interface digest), "body" (its bytes but
 * not its interface); "changed" for a variable.
 */
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
	else if (strcmp(change, "content") == 0)
		printf("changed%s: %s\n", strcmp(kind, "discovered") == 0 ?
		    " (discovered)" : "", name);
	else if (strcmp(change, "interface") == 0 ||
	    strcmp(change, "body") == 0)
		printf("changed (%s): %s\n", change, name);
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
				cli_explain_change(x, "content", "file",
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
	struct stat sb;

	if (in->path[0] == '/')
		snprintf(path, sizeof path, "%s", in->path);
	else
		snprintf(path, sizeof path, "%s/%s", x->e->root, in->path);
	memset(d, 0, sizeof d);
	if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
		if (hash_listing(path, d) != TC_OK)
			memset(d, 0, sizeof d);	/* as the plugin's */
	} else if (tc_hash_file(path, d) != TC_OK && errno != ENOENT)
		d[0] ^= 1;	/* unreadable now: not the same */
	return memcmp(d, in->digest, sizeof d) != 0;
}

static const char *cli_ifc_python(void)
{
	const char *p = getenv("TCACHE_PYTHON");

	return p != NULL && *p != '\0' ? p : "python3";
}

static void cli_ifc_close(int *fd)
{
	if (*fd >= 0)
		close(*fd);	/* a read end: nothing is lost */
	*fd = -1;
}

/* Starts the helper: stdin /dev/null, stdout and stderr to pipes. */
static int cli_ifc_spawn(struct cli_ifc_run *r, char *const argv[],
    char *why, size_t wl)
{
	posix_spawn_file_actions_t fa;
	int out[2] = { -1, -1 }, err[2] = { -1, -1 }, rc = 0;

	if (pipe2(out, O_CLOEXEC) == -1 || pipe2(err, O_CLOEXEC) == -1)
		rc = errno;
	else if ((rc = posix_spawn_file_actions_init(&fa)) == 0) {
		if ((rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null",
		    O_RDONLY, 0)) == 0 &&
		    (rc = posix_spawn_file_actions_adddup2(&fa, out[1], 1)) ==
		    0 && (rc = posix_spawn_file_actions_adddup2(&fa, err[1],
		    2)) == 0)
			rc = posix_spawnp(&r->pid, argv[0], &fa, NULL, argv,
			    environ);
		posix_spawn_file_actions_destroy(&fa);
	}
	cli_ifc_close(&out[1]);
	cli_ifc_close(&err[1]);
	r->fd[0] = out[0];
	r->fd[1] = err[0];
	if (rc != 0) {
		cli_ifc_close(&r->fd[0]);
		cli_ifc_close(&r->fd[1]);
		snprintf(why, wl, "%s", strerror(rc));
		return -1;
	}
	return 0;
}

/* Where the next bytes of pipe i go, and how many fit.  Of stderr only
 * the tail is kept, for the message. */
static char *cli_ifc_room(struct cli_ifc_run *r, int i, size_t *room)
{
	size_t keep = sizeof r->err / 2;

	if (i == 0) {
		*room = r->cap - r->len;
		return r->out + r->len;
	}
	if (r->elen == sizeof r->err - 1) {
		memmove(r->err, r->err + r->elen - keep, keep);
		r->elen = keep;
	}
	*room = sizeof r->err - 1 - r->elen;
	return r->err + r->elen;
}

/* Reads what pipe i holds; -1 on an error or more output than expected. */
static int cli_ifc_take(struct cli_ifc_run *r, int i, char *why, size_t wl)
{
	size_t room;
	char *dst = cli_ifc_room(r, i, &room);
	ssize_t got = read(r->fd[i], dst, room);

	if (got == -1 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (got == -1) {
		snprintf(why, wl, "reading its output: %s", strerror(errno));
		return -1;
	}
	if (got == 0)
		cli_ifc_close(&r->fd[i]);
	else if (i == 1)
		r->elen += (size_t)got;
	else if ((r->len += (size_t)got) == r->cap) {
		snprintf(why, wl, "more output than expected");
		return -1;
	}
	return 0;
}

static int64_t cli_mono_ms(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads the helper's stdout and stderr to their ends, or to the deadline. */
static int cli_ifc_pump(struct cli_ifc_run *r, char *why, size_t wl)
{
	int64_t end = cli_mono_ms() + CLI_IFC_TIMEOUT_MS, left;
	struct pollfd p[2];

	while (r->fd[0] >= 0 || r->fd[1] >= 0) {
		if ((left = end - cli_mono_ms()) <= 0) {
			snprintf(why, wl, "no answer within %d s",
			    CLI_IFC_TIMEOUT_MS / 1000);
			return -1;
		}
		for (int i = 0; i < 2; i++)
			p[i] = (struct pollfd){ .fd = r->fd[i],
			    .events = POLLIN };
		if (poll(p, 2, (int)left) == -1) {
			if (errno == EINTR)
				continue;
			snprintf(why, wl, "poll: %s", strerror(errno));
			return -1;
		}
		for (int i = 0; i < 2; i++)
			if (p[i].revents != 0 && r->fd[i] >= 0 &&
			    cli_ifc_take(r, i, why, wl) == -1)
				return -1;
	}
	return 0;
}

/* The last line of the helper's stderr, control bytes made '?'. */
static const char *cli_ifc_stderr(struct cli_ifc_run *r)
{
	char *line;

	while (r->elen > 0 && (r->err[r->elen - 1] == '\n' ||
	    r->err[r->elen - 1] == '\r'))
		r->elen--;
	r->err[r->elen] = '\0';
	line = strrchr(r->err, '\n');
	line = line != NULL ? line + 1 : r->err;
	for (char *c = line; *c != '\0'; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	return line;
}

/* Reaps the helper, killed first when its output was refused; 0 when it
 * exited with status 0. */
static int cli_ifc_wait(struct cli_ifc_run *r, int refused, char *why,
    size_t wl)
{
	const char *said;
	int st;

	/* ESRCH: it has exited already, and waitpid reaps it. */
	if (refused && kill(r->pid, SIGKILL) == -1 && errno != ESRCH)
		fprintf(stderr, "tcache: kill: %s\n", strerror(errno));
	while (waitpid(r->pid, &st, 0) == -1) {
		if (errno != EINTR) {
			snprintf(why, wl, "waitpid: %s", strerror(errno));
			return -1;
		}
	}
	if (refused || (WIFEXITED(st) && WEXITSTATUS(st) == 0))
		return refused ? -1 : 0;
	said = cli_ifc_stderr(r);
	if (WIFEXITED(st))
		snprintf(why, wl, "exited with status %d%s%s%s",
		    WEXITSTATUS(st), *said ? " (" : "", said, *said ? ")" : "");
	else
		snprintf(why, wl, "killed by signal %d", WTERMSIG(st));
	return -1;
}

static int cli_ifc_is_hex(const char *p)
{
	for (int i = 0; i < CLI_IFC_HEX; i++)
		if (!((p[i] >= '0' && p[i] <= '9') ||
		    (p[i] >= 'a' && p[i] <= 'f')))
			return 0;
	return 1;
}

/* One line per path, in order: 64 lowercase hex digits, a space, the path
 * as given (compared by length: a path may hold a newline). */
static int cli_ifc_parse(const struct cli_ifc_run *r, char *const paths[],
    size_t n, uint8_t (*now)[TC_DIGEST_BYTES], char *why, size_t wl)
{
	const char *p = r->out, *end = r->out + r->len;
	char hex[CLI_IFC_HEX + 1];
	size_t i, pl;

	for (i = 0; i < n; i++, p += CLI_IFC_HEX + pl + 2) {
		pl = strlen(paths[i]);
		if ((size_t)(end - p) < CLI_IFC_HEX + pl + 2 ||
		    !cli_ifc_is_hex(p) || p[CLI_IFC_HEX] != ' ' ||
		    memcmp(p + CLI_IFC_HEX + 1, paths[i], pl) != 0 ||
		    p[CLI_IFC_HEX + 1 + pl] != '\n')
			break;
		memcpy(hex, p, CLI_IFC_HEX);
		hex[CLI_IFC_HEX] = '\0';
		if (tc_unhex(hex, now[i]) == -1)
			break;
	}
	if (i == n && p == end)
		return 0;
	snprintf(why, wl, "unexpected output %s line %zu", i == n ? "after" :
	    "at", i == n ? i : i + 1);
	return -1;
}

/* One run of the helper over n paths, into now[0..n). */
static int cli_ifc_batch(char *const paths[], size_t n,
    uint8_t (*now)[TC_DIGEST_BYTES], char *why, size_t wl)
{
	struct cli_ifc_run r = { .fd = { -1, -1 }, .cap = 1 };
	char **argv;
	int rc = -1, pumped;

	for (size_t i = 0; i < n; i++)
		r.cap += CLI_IFC_HEX + strlen(paths[i]) + 2;
	if ((argv = calloc(n + 4, sizeof *argv)) == NULL ||
	    (r.out = malloc(r.cap)) == NULL) {
		snprintf(why, wl, "out of memory");
		goto out;
	}
	argv[0] = (char *)cli_ifc_python();
	argv[1] = (char *)"-m";
	argv[2] = (char *)CLI_IFC_MODULE;
	memcpy(argv + 3, paths, n * sizeof *paths);
	if (cli_ifc_spawn(&r, argv, why, wl) == 0) {
		pumped = cli_ifc_pump(&r, why, wl);
		cli_ifc_close(&r.fd[0]);
		cli_ifc_close(&r.fd[1]);
		if (cli_ifc_wait(&r, pumped == -1, why, wl) == 0)
			rc = cli_ifc_parse(&r, paths, n, now, why, wl);
	}
out:
	free(argv);
	free(r.out);
	return rc;
}

/* Every interface input's digest of now, in runs of the helper that keep
 * its command line short; on failure x->ifc_error says why. */
static int cli_ifc_compute(struct cli_explain *x, char *const abs[])
{
	char why[640];
	size_t from, to, bytes;

	for (from = 0; from < x->nifc; from = to) {
		bytes = 0;
		for (to = from; to < x->nifc && (to == from ||
		    bytes + strlen(abs[to]) < CLI_IFC_ARG_BYTES); to++)
			bytes += strlen(abs[to]) + 1;
		if (cli_ifc_batch(abs + from, to - from, x->now + from, why,
		    sizeof why) == 0)
			continue;
		snprintf(x->ifc_error, sizeof x->ifc_error, "%s -m %s: %s; "
		    "set TCACHE_PYTHON to a Python that can import "
		    "tcache_pytest, or PYTHONPATH to the directory holding it",
		    cli_ifc_python(), CLI_IFC_MODULE, why);
		return -1;
	}
	return 0;
}

/* Where a recorded file is now: its paths are relative to the root the
 * entry was recorded under.  malloc'd. */
static char *cli_explain_where(const struct cli_explain *x,
    const tc_input *in)
{
	size_t rl = strlen(x->e->root), pl = strlen(in->path);
	char *p;

	if (in->path[0] == '/')
		return strdup(in->path);
	if ((p = malloc(rl + pl + 2)) == NULL)
		return NULL;
	memcpy(p, x->e->root, rl);
	p[rl] = '/';
	memcpy(p + rl + 1, in->path, pl + 1);
	return p;
}

static void cli_ifc_free_paths(char **abs, size_t n)
{
	for (size_t i = 0; abs != NULL && i < n; i++)
		free(abs[i]);
	free(abs);
}

static char **cli_ifc_paths(const struct cli_explain *x)
{
	char **abs = calloc(x->nifc + 1, sizeof *abs);

	for (size_t i = 0; abs != NULL && i < x->nifc; i++) {
		if ((abs[i] = cli_explain_where(x, x->ifc[i])) == NULL) {
			cli_ifc_free_paths(abs, i);
			return NULL;
		}
	}
	return abs;
}

/* Interface inputs: their digests of now come from the helper.  When it
 * cannot run, they are unchecked (never unchanged) and the rest is still
 * reported.  -1 when out of memory. */
static int cli_explain_interfaces(struct cli_explain *x, const tc_input *in,
    size_t nin)
{
	char **abs;

	if ((x->ifc = cli_explain_kind(in, nin, TC_INPUT_INTERFACE,
	    &x->nifc)) == NULL)
		return -1;
	if (x->nifc == 0)
		return 0;
	if ((abs = cli_ifc_paths(x)) == NULL ||
	    (x->now = calloc(x->nifc, sizeof *x->now)) == NULL) {
		cli_ifc_free_paths(abs, x->nifc);
		return -1;
	}
	if (cli_ifc_compute(x, abs) == -1) {
		free(x->now);
		x->now = NULL;
		x->unchecked = x->nifc;
		if (!x->cli->json)
			fprintf(stderr, "tcache: %zu interface %s not checked: "
			    "%s\n", x->nifc, cli_plural(x->nifc, "digest",
			    "digests"), x->ifc_error);
	}
	for (size_t i = 0; x->now != NULL && i < x->nifc; i++)
		if (memcmp(x->now[i], x->ifc[i]->digest, TC_DIGEST_BYTES) != 0)
			cli_explain_change(x, "interface", "interface",
			    x->ifc[i]->path);
	cli_ifc_free_paths(abs, x->nifc);
	return 0;
}

/* The interface input at path: -1 none, 0 unchanged, 1 changed,
 * 2 unchecked. */
static int cli_explain_ifc_state(const struct cli_explain *x,
    const char *path)
{
	tc_input key = { .path = (char *)path };
	const tc_input *kp = &key, **hit;

	if (x->nifc == 0 || (hit = bsearch(&kp, x->ifc, x->nifc,
	    sizeof *x->ifc, cli_explain_cmp)) == NULL)
		return -1;
	if (x->now == NULL)
		return 2;
	return memcmp(x->now[hit - x->ifc], (*hit)->digest,
	    TC_DIGEST_BYTES) != 0;
}

/* Discovered files are not in the key: hash them again, as a lookup
 * would before it trusts a hit.  One whose interface input is unchanged
 * had only a function body changed; one whose interface changed is
 * reported as such already. */
static void cli_explain_discovered(struct cli_explain *x, const tc_input *in,
    size_t nin)
{
	int ifc;

	for (size_t i = 0; i < nin; i++) {
		if (in[i].kind != TC_INPUT_FOUND ||
		    !cli_explain_differs(x, &in[i]))
			continue;
		x->discovered_changed = 1;
		if ((ifc = cli_explain_ifc_state(x, in[i].path)) == 0)
			cli_explain_change(x, "body", "discovered", in[i].path);
		else if (ifc != 1)
			cli_explain_change(x, "content", "discovered",
			    in[i].path);
	}
}

/* A recorded variable against the environment; 1 when it is one only its
 * recorder can check (@...: interpreter, packages, options). */
static int cli_explain_var(struct cli_explain *x, const tc_input *in)
{
	uint8_t d[TC_DIGEST_BYTES];
	const char *v;

	if (in->path[0] == '@')
		return 1;
	memset(d, 0, sizeof d);
	if ((v = getenv(in->path)) != NULL)
		tc_hash_bytes(v, strlen(v), d);
	if (memcmp(d, in->digest, sizeof d) != 0)
		cli_explain_change(x, "changed", "env", in->path);
	return 0;
}

/*
 * Without --dep and --env (a test recorded by another client, such as the
 * pytest plugin): check every recorded file against the disk and every
 * recorded variable against the environment.  -1 when out of memory.
 */
static int cli_explain_recorded(struct cli_explain *x, const tc_input *in,
    size_t nin)
{
	size_t hidden = 0;

	for (size_t i = 0; i < nin; i++) {
		if (in[i].kind == TC_INPUT_FILE && cli_explain_differs(x, &in[i]))
			cli_explain_change(x, "content", "file", in[i].path);
		else if (in[i].kind == TC_INPUT_ENV)
			hidden += (size_t)cli_explain_var(x, &in[i]);
	}
	if (cli_explain_interfaces(x, in, nin) == -1)
		return -1;
	cli_explain_discovered(x, in, nin);
	if (x->changes == 0 && x->unchecked == 0 && !x->cli->json)
		printf("no recorded file or variable changed%s\n", hidden ?
		    "; if the test still ran, its environment did (interpreter, "
		    "installed packages, options, platform)" : "");
	return 0;
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

static void cli_explain_verdict_json(struct cli_explain *x,
    const char *const *why, size_t n, int match, int pass)
{
	json_array_end(&x->j);
	json_key(&x->j, "reasons");
	json_array_begin(&x->j);
	for (size_t i = 0; i < n; i++)
		json_string(&x->j, why[i]);
	json_array_end(&x->j);
	json_kv_string(&x->j, "interface_error", x->unchecked > 0 ?
	    x->ifc_error : NULL);
	json_kv_bool(&x->j, "key_matches", match);
	json_kv_bool(&x->j, "cached_pass", match && pass);
}

/* The verdict; 1 when the entry is a cached pass for the inputs of now. */
static int cli_explain_verdict(struct cli_explain *x, const tc_entry *e,
    const struct cli_key *k, uint64_t now)
{
	/* Without a key of now (recorded mode) only the files can tell, and
	 * an unchecked one is never taken as unchanged. */
	int match = k != NULL ? memcmp(e->key, k->key, sizeof e->key) == 0 :
	    x->changes == 0 && x->unchecked == 0;
	int pass = e->outcome == TC_PASS && !e->flaky && e->expires_ms > now &&
	    !x->discovered_changed && x->unchecked == 0;
	const char *why[5];
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
	if (x->unchecked > 0)
		why[n++] = "interface digests not checked";
	if (x->cli->json) {
		cli_explain_verdict_json(x, why, n, match, pass);
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

/* Reports what changed; k is NULL to check the recorded inputs alone.
 * -1 when out of memory. */
static int cli_explain_compare(struct cli_explain *x, const struct cli_key *k,
    const tc_input *in, size_t nin)
{
	if (k == NULL)
		return cli_explain_recorded(x, in, nin);
	if (cli_explain_files(x, k, in, nin) == -1 ||
	    cli_explain_interfaces(x, in, nin) == -1)
		return -1;
	cli_explain_discovered(x, in, nin);
	cli_explain_env(x, k, in, nin);
	return 0;
}

static int cli_explain_found(const struct cli *cli, const struct cli_key *k,
    const tc_entry *e, const tc_input *in, size_t nin)
{
	struct cli_explain x;
	uint64_t now = cli_now_ms();
	const struct cli_key *given;
	int rc;

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
	given = cli->ndeps == 0 && cli->nenvs == 0 ? NULL : k;
	if (cli_explain_compare(&x, given, in, nin) == -1) {
		fprintf(stderr, "tcache: out of memory\n");
		rc = CLI_ERROR;
	} else
		rc = cli_explain_verdict(&x, e, given, now) ? CLI_OK :
		    CLI_MISS;
	if (cli->json && rc != CLI_ERROR)
		json_finish(&x.j);
	free(x.ifc);
	free(x.now);
	return rc;
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
