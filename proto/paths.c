/*
 * Default socket and database paths (DESIGN.md, "Daemon"), shared by tcached
 * and libtcache so that both sides always agree on where to meet.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "proto.h"

/* buf = a + b, or NULL when it does not fit. */
static char *paths_join(char *buf, size_t len, const char *a, const char *b)
{
	int n = snprintf(buf, len, "%s%s", a, b);

	return n < 0 || (size_t)n >= len ? NULL : buf;
}

static const char *paths_env(const char *name)
{
	const char *v = getenv(name);

	return v != NULL && v[0] != '\0' ? v : NULL;
}

char *tc_default_socket(char *buf, size_t len)
{
	const char *v;
	char dir[64];

	if ((v = paths_env("TCACHE_SOCKET")) != NULL)
		return paths_join(buf, len, v, "");
	if ((v = paths_env("XDG_RUNTIME_DIR")) != NULL)
		return paths_join(buf, len, v, "/tcache/tcached.sock");
	snprintf(dir, sizeof dir, "/tmp/tcache-%lu", (unsigned long)getuid());
	return paths_join(buf, len, dir, "/tcached.sock");
}

char *tc_default_db(char *buf, size_t len)
{
	const char *v;

	if ((v = paths_env("TCACHE_DB")) != NULL)
		return paths_join(buf, len, v, "");
	if ((v = paths_env("XDG_STATE_HOME")) != NULL)
		return paths_join(buf, len, v, "/tcache/tcache.db");
	if ((v = paths_env("HOME")) != NULL)
		return paths_join(buf, len, v, "/.local/state/tcache/tcache.db");
	return NULL;
}
