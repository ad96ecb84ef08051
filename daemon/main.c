/*
 * tcached: the tcache daemon.  Parses its options, then hands over to the
 * server.  Runs in the foreground and logs to stderr: a service manager
 * (systemd, launchd, a CI job) is the norm.
 */
#include <sys/resource.h>

#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tcached.h"

static const char main_usage[] =
"usage: tcached [options]\n"
"\n"
"The tcache daemon: keeps test outcomes in SQLite and answers tcache clients\n"
"on a Unix socket.  Runs in the foreground and logs to stderr.\n"
"\n"
"  --socket PATH       socket (default: $TCACHE_SOCKET, else\n"
"                      $XDG_RUNTIME_DIR/tcache/tcached.sock, else\n"
"                      /tmp/tcache-$UID/tcached.sock)\n"
"  --db PATH           database (default: $TCACHE_DB, else\n"
"                      $XDG_STATE_HOME/tcache/tcache.db, else\n"
"                      ~/.local/state/tcache/tcache.db)\n"
"  --ttl DUR           how long a record lives (default 24h; 500ms 30s 90m 7d)\n"
"  --max-entries N     keep at most N entries, evicting the least recently\n"
"                      used (default: no bound)\n"
"  --idle-timeout DUR  close a client silent this long (default 60s)\n"
"  --max-clients N     connections at once (default 1024)\n"
"  --allow-uid UID     also serve this user (name or number; repeatable);\n"
"                      the socket is then open to others, who are checked\n"
"                      by their credentials (SO_PEERCRED)\n"
"  --allow-gid GID     also serve this group, primary or supplementary\n"
"                      (name or number; repeatable)\n"
"  --readonly-uid UID  serve this user read-only (name or number;\n"
"                      repeatable): it may look up, list and explain, but\n"
"                      RECORD, INVALIDATE, GC and a STATS reset get ERROR\n"
"                      DENIED.  Wins over --allow-uid, even for our own\n"
"                      user or root: e.g. a pull request's CI job\n"
"  --readonly-gid GID  the same for a group, primary or supplementary\n"
"  --sync MODE         normal (default: a crash of tcached loses nothing\n"
"                      acknowledged) or full (a power loss neither)\n"
"  --log FILE          log to FILE instead of stderr; SIGHUP reopens it\n"
"  --version           print the version and exit\n"
"  --help              print this help and exit\n"
"\n"
"Signals: SIGTERM and SIGINT stop it cleanly, SIGHUP reopens the log.\n"
"A listening socket passed by systemd (LISTEN_FDS) is used when present.\n";

enum {
	OPT_SOCKET = 256, OPT_DB, OPT_TTL, OPT_MAX_ENTRIES, OPT_IDLE,
	OPT_MAX_CLIENTS, OPT_ALLOW_UID, OPT_ALLOW_GID, OPT_READONLY_UID,
	OPT_READONLY_GID, OPT_SYNC, OPT_LOG, OPT_VERSION, OPT_HELP
};

static const struct option main_options[] = {
	{ "socket", required_argument, NULL, OPT_SOCKET },
	{ "db", required_argument, NULL, OPT_DB },
	{ "ttl", required_argument, NULL, OPT_TTL },
	{ "max-entries", required_argument, NULL, OPT_MAX_ENTRIES },
	{ "idle-timeout", required_argument, NULL, OPT_IDLE },
	{ "max-clients", required_argument, NULL, OPT_MAX_CLIENTS },
	{ "allow-uid", required_argument, NULL, OPT_ALLOW_UID },
	{ "allow-gid", required_argument, NULL, OPT_ALLOW_GID },
	{ "readonly-uid", required_argument, NULL, OPT_READONLY_UID },
	{ "readonly-gid", required_argument, NULL, OPT_READONLY_GID },
	{ "sync", required_argument, NULL, OPT_SYNC },
	{ "log", required_argument, NULL, OPT_LOG },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 }
};

static int main_bad(const char *opt, const char *arg, const char *what)
{
	fprintf(stderr, "tcached: %s %s: %s\n", opt, arg, what);
	return -1;
}

static int main_id(const char *arg, int group, uint32_t *out)
{
	uint64_t v;
	struct passwd *pw;
	struct group *gr;

	if (parse_u64(arg, &v) == 0 && v < UINT32_MAX) {
		*out = (uint32_t)v;
		return 0;
	}
	if (group && (gr = getgrnam(arg)) != NULL) {
		*out = gr->gr_gid;
		return 0;
	}
	if (!group && (pw = getpwnam(arg)) != NULL) {
		*out = pw->pw_uid;
		return 0;
	}
	return -1;
}

/* Adds a uid or gid to one of the --allow-* / --readonly-* lists. */
static int main_allow(struct config *cfg, int opt, const char *arg)
{
	int group = opt == OPT_ALLOW_GID || opt == OPT_READONLY_GID;
	int ro = opt == OPT_READONLY_UID || opt == OPT_READONLY_GID;
	const char *name = ro ? (group ? "--readonly-gid" : "--readonly-uid") :
	    (group ? "--allow-gid" : "--allow-uid");
	size_t *n = ro ? (group ? &cfg->nreadonly_gid : &cfg->nreadonly_uid) :
	    (group ? &cfg->nallow_gid : &cfg->nallow_uid);
	uint32_t id;

	if (*n >= SERVER_MAX_ALLOW)
		return main_bad(name, arg, "too many (at most 16)");
	if (main_id(arg, group, &id) != 0)
		return main_bad(name, arg, group ? "no such group" :
		    "no such user");
	if (ro && group)
		cfg->readonly_gid[(*n)++] = (gid_t)id;
	else if (ro)
		cfg->readonly_uid[(*n)++] = (uid_t)id;
	else if (group)
		cfg->allow_gid[(*n)++] = (gid_t)id;
	else
		cfg->allow_uid[(*n)++] = (uid_t)id;
	return 0;
}

static int main_option(struct config *cfg, int opt, const char *arg)
{
	uint64_t v;

	switch (opt) {
	case OPT_SOCKET:
		cfg->socket_path = arg;
		return 0;
	case OPT_DB:
		cfg->db_path = arg;
		return 0;
	case OPT_LOG:
		cfg->log_path = arg;
		return 0;
	case OPT_TTL:
		if (parse_duration_ms(arg, &cfg->ttl_ms) != 0 || cfg->ttl_ms == 0)
			return main_bad("--ttl", arg, "not a duration (24h, 90m, 7d)");
		return 0;
	case OPT_IDLE:
		if (parse_duration_ms(arg, &cfg->idle_ms) != 0 || cfg->idle_ms == 0)
			return main_bad("--idle-timeout", arg, "not a duration");
		return 0;
	case OPT_MAX_ENTRIES:
		if (parse_u64(arg, &cfg->max_entries) != 0)
			return main_bad("--max-entries", arg, "not a number");
		return 0;
	case OPT_MAX_CLIENTS:
		if (parse_u64(arg, &v) != 0 || v == 0 || v > 1000000)
			return main_bad("--max-clients", arg, "not in 1..1000000");
		cfg->max_clients = (unsigned)v;
		return 0;
	case OPT_ALLOW_UID:
	case OPT_ALLOW_GID:
	case OPT_READONLY_UID:
	case OPT_READONLY_GID:
		return main_allow(cfg, opt, arg);
	case OPT_SYNC:
		if (strcmp(arg, "normal") != 0 && strcmp(arg, "full") != 0)
			return main_bad("--sync", arg, "must be normal or full");
		cfg->sync_full = strcmp(arg, "full") == 0;
		return 0;
	}
	return -1;
}

/* 0 to run, 1 to exit 0 (help, version), -1 for a usage error. */
static int main_parse(struct config *cfg, int argc, char **argv)
{
	int opt;

	while ((opt = getopt_long(argc, argv, "", main_options, NULL)) != -1) {
		if (opt == OPT_HELP) {
			fputs(main_usage, stdout);
			return 1;
		}
		if (opt == OPT_VERSION) {
			printf("tcached %s\n", TC_VERSION);
			return 1;
		}
		if (opt == '?' || main_option(cfg, opt, optarg) != 0)
			return -1;
	}
	if (optind < argc) {
		fprintf(stderr, "tcached: unexpected argument %s\n", argv[optind]);
		return -1;
	}
	return 0;
}

/* Descriptors besides the clients': the listener, the database and its
 * -wal and -shm, the log, the lock file, libevent's own. */
#define MAIN_SPARE_FDS 32

/*
 * Raises the soft descriptor limit to what --max-clients needs (never past
 * the hard limit), so that the default 1024 clients fit under a default
 * soft limit of 1024; when it cannot, says how many clients will fit.
 */
static void main_raise_fd_limit(unsigned max_clients)
{
	struct rlimit rl;
	rlim_t want = (rlim_t)max_clients + MAIN_SPARE_FDS;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want ?
	    rl.rlim_max : want;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < want)
		log_warn("descriptor limit %llu: about %llu clients fit, not "
		    "--max-clients %u",
		    (unsigned long long)rl.rlim_cur,
		    (unsigned long long)(rl.rlim_cur > MAIN_SPARE_FDS ?
		    rl.rlim_cur - MAIN_SPARE_FDS : 0), max_clients);
}

int main(int argc, char **argv)
{
	static char sock[PATH_MAX], db[PATH_MAX];
	struct config cfg = {
		.ttl_ms = SERVER_DEFAULT_TTL_MS,
		.idle_ms = SERVER_DEFAULT_IDLE_MS,
		.max_clients = SERVER_DEFAULT_MAX_CLIENTS,
	};
	struct server srv;
	int rc;

	if ((rc = main_parse(&cfg, argc, argv)) != 0) {
		if (rc < 0)
			fputs("usage: tcached [--socket PATH] [--db PATH] "
			    "[--ttl DUR] ... (tcached --help)\n", stderr);
		return rc < 0 ? 2 : 0;
	}
	if (cfg.socket_path == NULL &&
	    (cfg.socket_path = tc_default_socket(sock, sizeof sock)) == NULL) {
		fputs("tcached: the default socket path is too long\n", stderr);
		return 1;
	}
	if (cfg.db_path == NULL &&
	    (cfg.db_path = tc_default_db(db, sizeof db)) == NULL) {
		fputs("tcached: no database path: set --db, $TCACHE_DB or $HOME\n",
		    stderr);
		return 1;
	}
	if (log_open(cfg.log_path) != 0) {
		fprintf(stderr, "tcached: cannot open log %s: %s\n",
		    cfg.log_path, strerror(errno));
		return 1;
	}
	main_raise_fd_limit(cfg.max_clients);
	rc = server_init(&srv, &cfg) == 0 && server_run(&srv) == 0 ? 0 : 1;
	server_free(&srv);
	if (rc == 0)
		log_info("stopped");
	log_close();
	return rc;
}
