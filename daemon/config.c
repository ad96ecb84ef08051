/*
 * tcached's settings: one table of keys shared by the command line and the
 * configuration file (tcached.conf(5)), so that every flag is also a key and
 * both are checked the same way.  Layers are applied in order, later ones
 * winning: defaults, the file, the environment, the flags.
 */
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tcached.h"

/* A configuration file is a few lines; anything this big is a mistake. */
#define CONFIG_MAX_BYTES (64 * 1024)

enum config_kind { K_PATH, K_TTL, K_IDLE, K_MAX_ENTRIES, K_MAX_CLIENTS,
	K_ALLOW_UID, K_ALLOW_GID, K_READONLY_UID, K_READONLY_GID, K_SYNC };

static const struct {
	const char *name;
	enum config_kind kind;
} config_keys[CONFIG_NKEYS] = {
	[CONFIG_SOCKET] = { "socket", K_PATH },
	[CONFIG_DB] = { "db", K_PATH },
	[CONFIG_TTL] = { "ttl", K_TTL },
	[CONFIG_MAX_ENTRIES] = { "max-entries", K_MAX_ENTRIES },
	[CONFIG_IDLE] = { "idle-timeout", K_IDLE },
	[CONFIG_MAX_CLIENTS] = { "max-clients", K_MAX_CLIENTS },
	[CONFIG_ALLOW_UID] = { "allow-uid", K_ALLOW_UID },
	[CONFIG_ALLOW_GID] = { "allow-gid", K_ALLOW_GID },
	[CONFIG_READONLY_UID] = { "readonly-uid", K_READONLY_UID },
	[CONFIG_READONLY_GID] = { "readonly-gid", K_READONLY_GID },
	[CONFIG_SYNC] = { "sync", K_SYNC },
	[CONFIG_LOG] = { "log", K_PATH },
};

void config_init(struct config *cfg)
{
	memset(cfg, 0, sizeof *cfg);
	cfg->ttl_ms = SERVER_DEFAULT_TTL_MS;
	cfg->idle_ms = SERVER_DEFAULT_IDLE_MS;
	cfg->max_clients = SERVER_DEFAULT_MAX_CLIENTS;
}

void config_free(struct config *cfg)
{
	size_t i;

	for (i = 0; i < cfg->nowned; i++)
		free(cfg->owned[i]);
	cfg->nowned = 0;
}

int config_key(const char *name)
{
	int i;

	for (i = 0; i < CONFIG_NKEYS; i++)
		if (strcmp(config_keys[i].name, name) == 0)
			return i;
	return -1;
}

const char *config_key_name(int key)
{
	return config_keys[key].name;
}

int config_key_repeatable(int key)
{
	enum config_kind k = config_keys[key].kind;

	return k == K_ALLOW_UID || k == K_ALLOW_GID || k == K_READONLY_UID ||
	    k == K_READONLY_GID;
}

static int config_id(const char *arg, int group, uint32_t *out)
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

/* Adds to one of the allow / read-only lists; fresh empties it first. */
static const char *config_allow(struct config *cfg, enum config_kind k,
    const char *arg, int fresh)
{
	int group = k == K_ALLOW_GID || k == K_READONLY_GID;
	size_t *n = k == K_ALLOW_UID ? &cfg->nallow_uid :
	    k == K_ALLOW_GID ? &cfg->nallow_gid :
	    k == K_READONLY_UID ? &cfg->nreadonly_uid : &cfg->nreadonly_gid;
	uint32_t id;

	if (fresh)
		*n = 0;
	if (*n >= SERVER_MAX_ALLOW)
		return "too many (at most 16)";
	if (config_id(arg, group, &id) != 0)
		return group ? "no such group" : "no such user";
	if (k == K_ALLOW_UID)
		cfg->allow_uid[(*n)++] = (uid_t)id;
	else if (k == K_ALLOW_GID)
		cfg->allow_gid[(*n)++] = (gid_t)id;
	else if (k == K_READONLY_UID)
		cfg->readonly_uid[(*n)++] = (uid_t)id;
	else
		cfg->readonly_gid[(*n)++] = (gid_t)id;
	return NULL;
}

static void config_set_path(struct config *cfg, int key, const char *value)
{
	if (key == CONFIG_SOCKET)
		cfg->socket_path = value;
	else if (key == CONFIG_DB)
		cfg->db_path = value;
	else
		cfg->log_path = value;
}

/*
 * Sets key to value, which must outlive cfg.  fresh: the first value of a
 * repeatable key from this layer, which replaces the lists of earlier
 * layers rather than adding to them.  NULL, or what is wrong with value.
 */
const char *config_set(struct config *cfg, int key, const char *value,
    int fresh)
{
	enum config_kind k = config_keys[key].kind;
	uint64_t v;

	switch (k) {
	case K_PATH:
		if (value[0] == '\0')
			return "an empty path";
		config_set_path(cfg, key, value);
		return NULL;
	case K_TTL:
		if (parse_duration_ms(value, &v) != 0 || v == 0)
			return "not a duration (24h, 90m, 7d)";
		cfg->ttl_ms = v;
		return NULL;
	case K_IDLE:
		if (parse_duration_ms(value, &v) != 0 || v == 0)
			return "not a duration (60s, 5m)";
		cfg->idle_ms = v;
		return NULL;
	case K_MAX_ENTRIES:
		if (parse_u64(value, &v) != 0)
			return "not a number";
		cfg->max_entries = v;
		return NULL;
	case K_MAX_CLIENTS:
		if (parse_u64(value, &v) != 0 || v == 0 || v > 1000000)
			return "not in 1..1000000";
		cfg->max_clients = (unsigned)v;
		return NULL;
	case K_SYNC:
		if (strcmp(value, "normal") != 0 && strcmp(value, "full") != 0)
			return "must be normal or full";
		cfg->sync_full = strcmp(value, "full") == 0;
		return NULL;
	default:
		return config_allow(cfg, k, value, fresh);
	}
}

/*
 * The environment's layer: $TCACHE_SOCKET and $TCACHE_DB beat the file.
 * Dropping the file's path lets tc_default_socket/tc_default_db, which
 * look at the variable first, decide.
 */
void config_apply_env(struct config *cfg)
{
	const char *v;

	if ((v = getenv("TCACHE_SOCKET")) != NULL && v[0] != '\0')
		cfg->socket_path = NULL;
	if ((v = getenv("TCACHE_DB")) != NULL && v[0] != '\0')
		cfg->db_path = NULL;
}

/* $XDG_CONFIG_HOME/tcache/tcached.conf, else ~/.config/...; NULL: none. */
char *config_default_path(char *buf, size_t len)
{
	const char *v = getenv("XDG_CONFIG_HOME");
	const char *sub = "";
	int n;

	if (v == NULL || v[0] != '/') {
		if ((v = getenv("HOME")) == NULL || v[0] == '\0')
			return NULL;
		sub = "/.config";
	}
	n = snprintf(buf, len, "%s%s/tcache/tcached.conf", v, sub);
	return n < 0 || (size_t)n >= len ? NULL : buf;
}

static int config_own(struct config *cfg, char *p)
{
	if (cfg->nowned >= sizeof cfg->owned / sizeof cfg->owned[0]) {
		free(p);
		return -1;
	}
	cfg->owned[cfg->nowned++] = p;
	return 0;
}

/* The file's whole text, NUL-terminated, in *out (owned by cfg). */
static int config_read(struct config *cfg, const char *path, char **out,
    size_t *len)
{
	struct stat st;
	char *buf;
	size_t got = 0;
	ssize_t n;
	int fd;

	do
		fd = open(path, O_RDONLY | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) != 0 || S_ISDIR(st.st_mode)) {
		if (errno == 0 || S_ISDIR(st.st_mode))
			errno = EISDIR;
		close(fd);
		return -1;
	}
	if ((buf = malloc(CONFIG_MAX_BYTES + 1)) == NULL) {
		close(fd);
		errno = ENOMEM;
		return -1;
	}
	while (got <= CONFIG_MAX_BYTES &&
	    (n = read(fd, buf + got, CONFIG_MAX_BYTES + 1 - got)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			close(fd);
			return -1;
		}
		got += (size_t)n;
	}
	close(fd);
	if (got > CONFIG_MAX_BYTES) {
		free(buf);
		errno = EFBIG;
		return -1;
	}
	buf[got] = '\0';
	*out = buf;
	*len = got;
	return config_own(cfg, buf);
}

static char *config_trim(char *s, char *end)
{
	while (s < end && (*s == ' ' || *s == '\t'))
		s++;
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' ||
	    end[-1] == '\r'))
		end--;
	*end = '\0';
	return s;
}

/* ~/x is $HOME/x; other relative paths would depend on tcached's cwd. */
static const char *config_path_value(struct config *cfg, const char *value)
{
	const char *home = getenv("HOME");
	char *p;

	if (value[0] == '/')
		return value;
	if (value[0] != '~' || value[1] != '/' || home == NULL ||
	    home[0] == '\0')
		return NULL;
	if ((p = malloc(strlen(home) + strlen(value))) == NULL)
		return NULL;
	snprintf(p, strlen(home) + strlen(value), "%s%s", home, value + 1);
	return config_own(cfg, p) == 0 ? p : NULL;
}

static int config_error(const char *path, unsigned line, const char *what,
    const char *detail)
{
	fprintf(stderr, "tcached: %s:%u: %s%s%s\n", path, line, what,
	    detail != NULL ? ": " : "", detail != NULL ? detail : "");
	return -1;
}

/* One `key = value` line; seen[] holds the line each key was last set on. */
static int config_line(struct config *cfg, const char *path, unsigned line,
    char *text, unsigned seen[CONFIG_NKEYS])
{
	char *eq = strchr(text, '='), *key, *value;
	const char *why, *v;
	char what[96];
	int k;

	if (eq == NULL)
		return config_error(path, line, "expected `key = value`", NULL);
	key = config_trim(text, eq);
	value = config_trim(eq + 1, eq + 1 + strlen(eq + 1));
	if ((k = config_key(key)) < 0) {
		snprintf(what, sizeof what, "unknown key '%.64s'", key);
		return config_error(path, line, what,
		    "see tcached.conf(5) for the keys");
	}
	snprintf(what, sizeof what, "%s = %.64s", key, value);
	if (value[0] == '\0')
		return config_error(path, line, what, "no value");
	if (seen[k] != 0 && !config_key_repeatable(k)) {
		char first[32];

		snprintf(first, sizeof first, "already set on line %u", seen[k]);
		return config_error(path, line, what, first);
	}
	v = value;
	if (config_keys[k].kind == K_PATH &&
	    (v = config_path_value(cfg, value)) == NULL)
		return config_error(path, line, what, "not an absolute path "
		    "(nor ~/...)");
	if ((why = config_set(cfg, k, v, seen[k] == 0)) != NULL)
		return config_error(path, line, what, why);
	seen[k] = line;
	return 0;
}

/*
 * Whether a default file that could not be opened is simply not there for
 * us: missing, or behind a directory we may not search (another user's
 * HOME inherited through `setpriv` or `sudo -E`).  A file we can see but
 * not read is an error.
 */
static int config_absent(const char *path)
{
	struct stat st;
	int err = errno;

	if (err == ENOENT || err == ENOTDIR)
		return 1;
	if (err == EACCES && stat(path, &st) != 0)
		return 1;
	errno = err;
	return 0;
}

/*
 * Applies the file at path.  A missing file is fine unless required (it
 * was named by --config).  Errors are printed; -1 then.
 */
int config_load(struct config *cfg, const char *path, int required)
{
	unsigned seen[CONFIG_NKEYS] = { 0 }, line = 0;
	char *text, *p, *nl;
	size_t len;

	if (config_read(cfg, path, &text, &len) != 0) {
		if (!required && config_absent(path))
			return 0;
		fprintf(stderr, "tcached: cannot read %s: %s\n", path,
		    errno == EFBIG ? "larger than 64 KiB" : strerror(errno));
		return -1;
	}
	if (strlen(text) != len) {
		fprintf(stderr, "tcached: %s: not a text file (a NUL byte)\n",
		    path);
		return -1;
	}
	for (p = text; *p != '\0'; p = nl) {
		line++;
		if ((nl = strchr(p, '\n')) == NULL)
			nl = p + strlen(p);
		else
			*nl++ = '\0';
		p = config_trim(p, p + strlen(p));
		if (*p == '\0' || *p == '#')
			continue;
		if (config_line(cfg, path, line, p, seen) != 0)
			return -1;
	}
	cfg->config_path = path;
	return 0;
}
