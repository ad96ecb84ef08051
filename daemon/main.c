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
"  --config FILE       read settings from FILE, where each option below\n"
"                      is a key\n"
"                      (default: $XDG_CONFIG_HOME/tcache/tcached.conf, else\n"
"                      ~/.config/tcache/tcached.conf, if it exists); see\n"
"                      tcached.conf(5).  Flags beat $TCACHE_SOCKET and\n"
"                      $TCACHE_DB, which beat the file\n"
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

/* The settings keep config.c's key numbers; the rest follow them. */
enum { OPT_CONFIG = CONFIG_NKEYS, OPT_VERSION, OPT_HELP };

static const struct option main_options[] = {
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "socket", required_argument, NULL, CONFIG_SOCKET },
	{ "db", required_argument, NULL, CONFIG_DB },
	{ "ttl", required_argument, NULL, CONFIG_TTL },
	{ "max-entries", required_argument, NULL, CONFIG_MAX_ENTRIES },
	{ "idle-timeout", required_argument, NULL, CONFIG_IDLE },
	{ "max-clients", required_argument, NULL, CONFIG_MAX_CLIENTS },
	{ "allow-uid", required_argument, NULL, CONFIG_ALLOW_UID },
	{ "allow-gid", required_argument, NULL, CONFIG_ALLOW_GID },
	{ "readonly-uid", required_argument, NULL, CONFIG_READONLY_UID },
	{ "readonly-gid", required_argument, NULL, CONFIG_READONLY_GID },
	{ "sync", required_argument, NULL, CONFIG_SYNC },
	{ "log", required_argument, NULL, CONFIG_LOG },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ "help", no_argument, NULL, OPT_HELP },
	{ NULL, 0, NULL, 0 }
};

/* The settings given as flags, applied after the file they beat. */
struct main_flag {
	int key;
	const char *value;
};

/* 0 to run, 1 to exit 0 (help, version), -1 for a usage error. */
static int main_parse(int argc, char **argv, struct main_flag *flags,
    size_t *nflags, const char **config)
{
	int opt;

	*nflags = 0;
	while ((opt = getopt_long(argc, argv, "", main_options, NULL)) != -1) {
		if (opt == OPT_HELP) {
			fputs(main_usage, stdout);
			return 1;
		}
		if (opt == OPT_VERSION) {
			printf("tcached %s\n", TC_VERSION);
			return 1;
		}
		if (opt == '?')
			return -1;
		if (opt == OPT_CONFIG) {
			*config = optarg;
			continue;
		}
		flags[*nflags].key = opt;
		flags[(*nflags)++].value = optarg;
	}
	if (optind < argc) {
		fprintf(stderr, "tcached: unexpected argument %s\n", argv[optind]);
		return -1;
	}
	return 0;
}

/* The flags' layer: a repeatable flag replaces the file's list. */
static int main_apply_flags(struct config *cfg, const struct main_flag *flags,
    size_t nflags)
{
	int seen[CONFIG_NKEYS] = { 0 };
	const char *why;
	size_t i;

	for (i = 0; i < nflags; i++) {
		why = config_set(cfg, flags[i].key, flags[i].value,
		    !seen[flags[i].key]);
		if (why != NULL) {
			fprintf(stderr, "tcached: --%s %s: %s\n",
			    config_key_name(flags[i].key), flags[i].value, why);
			return -1;
		}
		seen[flags[i].key] = 1;
	}
	return 0;
}

/* Defaults, then the file, the environment and the flags, each winning. */
static int main_configure(struct config *cfg, int argc, char **argv)
{
	static char path[PATH_MAX];
	struct main_flag *flags;
	const char *config = NULL;
	size_t nflags;
	int rc;

	if ((flags = calloc((size_t)argc, sizeof *flags)) == NULL) {
		fputs("tcached: out of memory\n", stderr);
		return -1;
	}
	rc = main_parse(argc, argv, flags, &nflags, &config);
	if (rc == 0 && config != NULL && config[0] == '\0') {
		fputs("tcached: --config: an empty path\n", stderr);
		rc = -1;
	}
	if (rc == 0 && config == NULL)
		config = config_default_path(path, sizeof path);
	if (rc == 0 && config != NULL &&
	    config_load(cfg, config, config != path) != 0)
		rc = -2;
	if (rc == 0) {
		config_apply_env(cfg);
		rc = main_apply_flags(cfg, flags, nflags);
	}
	free(flags);
	return rc;
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
	struct config cfg;
	struct server srv;
	int rc;

	config_init(&cfg);
	if ((rc = main_configure(&cfg, argc, argv)) != 0) {
		if (rc == -1)
			fputs("usage: tcached [--config FILE] [--socket PATH] "
			    "[--db PATH] ... (tcached --help)\n", stderr);
		config_free(&cfg);
		return rc < 0 ? 2 : 0;
	}
	if (cfg.socket_path == NULL &&
	    (cfg.socket_path = tc_default_socket(sock, sizeof sock)) == NULL) {
		fputs("tcached: the default socket path is too long\n", stderr);
		config_free(&cfg);
		return 1;
	}
	if (cfg.db_path == NULL &&
	    (cfg.db_path = tc_default_db(db, sizeof db)) == NULL) {
		fputs("tcached: no database path: set --db, $TCACHE_DB or $HOME\n",
		    stderr);
		config_free(&cfg);
		return 1;
	}
	if (log_open(cfg.log_path) != 0) {
		fprintf(stderr, "tcached: cannot open log %s: %s\n",
		    cfg.log_path, strerror(errno));
		config_free(&cfg);
		return 1;
	}
	if (cfg.config_path != NULL)
		log_info("settings from %s", cfg.config_path);
	main_raise_fd_limit(cfg.max_clients);
	rc = server_init(&srv, &cfg) == 0 && server_run(&srv) == 0 ? 0 : 1;
	server_free(&srv);
	if (rc == 0)
		log_info("stopped");
	log_close();
	config_free(&cfg);
	return rc;
}
