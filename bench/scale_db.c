/*
 * scale_db: writes a tcache database of N entries directly with SQLite, as
 * tcached itself would have written it, for bench/scale.py.  Building a
 * million entries through the daemon would take minutes; this takes
 * seconds, and tcached then opens the file as its own.
 *
 * Usage: scale_db SCHEMA.SQL OUT N SEED live|expired
 *        scale_db expire LIVE OUT
 *
 * What a pytest suite records (contrib/pytest/tcache_pytest): each test
 * module declares one list of inputs (its file, conftest.py, the config,
 * the interfaces of what it imports, a few environment variables), shared
 * by all its tests, so the entries share a few hundred input sets; and
 * each test adds the files whose function bodies ran (0 to 2 here, 1 on
 * average) as discovered inputs of its own.
 *
 * The shape is shared with scale_client.c through scale.h: entry i has key
 * scale_key(seed, i), set scale_set_of(i), and so on, so a client can look
 * up, or record more of, the same population without reading the file.
 *
 * "live" entries expire in a week; "expired" ones expired before the file
 * was written, so tcached's first sweep finds them all due.  "expire"
 * copies a live file with every entry expired at its creation, in a
 * fraction of the time of writing it again.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "scale.h"

static sqlite3 *db;

static void __attribute__((noreturn)) die(const char *what)
{
	fprintf(stderr, "scale_db: %s: %s\n", what,
	    db != NULL ? sqlite3_errmsg(db) : "?");
	exit(1);
}

static void exec(const char *sql)
{
	char *msg = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		fprintf(stderr, "scale_db: %s: %s\n", sql, msg ? msg : "?");
		exit(1);
	}
}

static sqlite3_stmt *prep(const char *sql)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		die(sql);
	return st;
}

static void step(sqlite3_stmt *st, const char *what)
{
	if (sqlite3_step(st) != SQLITE_DONE)
		die(what);
	sqlite3_reset(st);
}

static char *slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0) {
		fprintf(stderr, "scale_db: %s: %s\n", path, strerror(errno));
		exit(1);
	}
	if ((buf = malloc((size_t)n + 1)) == NULL ||
	    fread(buf, 1, (size_t)n, f) != (size_t)n) {
		fprintf(stderr, "scale_db: reading %s failed\n", path);
		exit(1);
	}
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* store.c's store_set_hash: FNV-1a over the rows as stored, in order, so
 * that a record of the same inputs finds and shares the set. */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	while (n-- > 0) {
		h ^= *b++;
		h *= 0x100000001b3ull;
	}
	return h;
}

static void write_sets(void)
{
	sqlite3_stmt *set = prep("INSERT INTO inputsets(id, hash) "
	    "VALUES (?1, ?2)");
	sqlite3_stmt *row = prep("INSERT INTO setinputs(setid, kind, path, "
	    "abspath, digest) VALUES (?1, ?2, ?3, ?4, ?5)");
	struct scale_input in[SCALE_SET_ROWS];
	char abs[SCALE_PATH * 2];
	unsigned char has;

	for (unsigned j = 0; j < SCALE_SETS; j++) {
		uint64_t h = 0xcbf29ce484222325ull;
		size_t n = scale_set_rows(j, in);

		for (size_t k = 0; k < n; k++) {
			unsigned char kind = in[k].kind;

			has = kind != SCALE_KIND_ENV;
			snprintf(abs, sizeof abs, "%s/%s", SCALE_ROOT,
			    in[k].path);
			h = fnv(h, &kind, 1);
			h = fnv(h, in[k].path, strlen(in[k].path) + 1);
			h = fnv(h, &has, 1);
			if (has)
				h = fnv(h, abs, strlen(abs) + 1);
			h = fnv(h, in[k].digest, SCALE_DIGEST);
			sqlite3_bind_int64(row, 1, j + 1);
			sqlite3_bind_int(row, 2, kind);
			sqlite3_bind_text(row, 3, in[k].path, -1,
			    SQLITE_TRANSIENT);
			if (has)
				sqlite3_bind_text(row, 4, abs, -1,
				    SQLITE_TRANSIENT);
			else
				sqlite3_bind_null(row, 4);
			sqlite3_bind_blob(row, 5, in[k].digest, SCALE_DIGEST,
			    SQLITE_TRANSIENT);
			step(row, "setinputs");
		}
		sqlite3_bind_int64(set, 1, j + 1);
		sqlite3_bind_int64(set, 2, (int64_t)h);
		step(set, "inputsets");
	}
	sqlite3_finalize(set);
	sqlite3_finalize(row);
}

static void write_entries(uint64_t n, uint64_t seed, int live, int64_t now)
{
	sqlite3_stmt *ent = prep("INSERT INTO entries(id, key, project, test, "
	    "root, outcome, flaky, duration_us, message, created, expires, "
	    "hits, last_used, inputset) VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, "
	    "?7, '', ?8, ?9, 0, ?10, ?11)");
	sqlite3_stmt *inp = prep("INSERT INTO inputs(entry, kind, path, "
	    "abspath, digest) VALUES (?1, 1, ?2, ?3, ?4)");
	struct scale_input found[SCALE_FOUND_MAX];
	uint8_t key[SCALE_DIGEST];
	char test[SCALE_PATH], abs[SCALE_PATH * 2];
	/* Recorded over the last day with a week's ttl, or over the day
	 * before with one day's, which ran out before now. */
	int64_t day = 24ll * 3600 * 1000;

	for (uint64_t i = 0; i < n; i++) {
		uint64_t h = scale_mix(seed ^ 0x5ca1e, i);
		/* In record order, as ids are: the sweep then meets entries
		 * in id order, as it would. */
		int64_t created = now - day - (live ? 0 : day) +
		    (int64_t)((double)i / (double)n * (double)day);
		int64_t expires = created + (live ? 7 * day : day);
		size_t nf;

		scale_key(seed, i, key);
		scale_test(i, test, sizeof test);
		sqlite3_bind_int64(ent, 1, (int64_t)i + 1);
		sqlite3_bind_blob(ent, 2, key, SCALE_DIGEST, SQLITE_STATIC);
		sqlite3_bind_text(ent, 3, SCALE_PROJECT, -1, SQLITE_STATIC);
		sqlite3_bind_text(ent, 4, test, -1, SQLITE_STATIC);
		sqlite3_bind_text(ent, 5, SCALE_ROOT, -1, SQLITE_STATIC);
		sqlite3_bind_int(ent, 6, scale_outcome(h));
		sqlite3_bind_int64(ent, 7, (int64_t)(h >> 40) % 2000000);
		sqlite3_bind_int64(ent, 8, created);
		sqlite3_bind_int64(ent, 9, expires);
		sqlite3_bind_int64(ent, 10, created);
		sqlite3_bind_int64(ent, 11, scale_set_of(i) + 1);
		step(ent, "entries");
		nf = scale_found(seed, i, found);
		for (size_t k = 0; k < nf; k++) {
			snprintf(abs, sizeof abs, "%s/%s", SCALE_ROOT,
			    found[k].path);
			sqlite3_bind_int64(inp, 1, (int64_t)i + 1);
			sqlite3_bind_text(inp, 2, found[k].path, -1,
			    SQLITE_STATIC);
			sqlite3_bind_text(inp, 3, abs, -1, SQLITE_STATIC);
			sqlite3_bind_blob(inp, 4, found[k].digest,
			    SCALE_DIGEST, SQLITE_STATIC);
			step(inp, "inputs");
		}
	}
	sqlite3_finalize(ent);
	sqlite3_finalize(inp);
}

/* Each index is faster made once over the rows, by a sort, than kept up
 * on every insert: drops them, and returns their SQL (NULL-terminated,
 * malloc'd) to make them again.  The key's UNIQUE index stays, as the
 * schema made it. */
static char **drop_indexes(void)
{
	sqlite3_stmt *st = prep("SELECT name, sql FROM sqlite_master WHERE "
	    "type = 'index' AND sql IS NOT NULL");
	char **sql = calloc(64, sizeof *sql), **names = calloc(64,
	    sizeof *names), drop[256];
	size_t n = 0;

	if (sql == NULL || names == NULL)
		die("calloc");
	while (n < 63 && sqlite3_step(st) == SQLITE_ROW) {
		names[n] = strdup((const char *)sqlite3_column_text(st, 0));
		sql[n] = strdup((const char *)sqlite3_column_text(st, 1));
		if (names[n] == NULL || sql[n] == NULL)
			die("strdup");
		n++;
	}
	sqlite3_finalize(st);
	for (size_t k = 0; k < n; k++) {
		snprintf(drop, sizeof drop, "DROP INDEX \"%s\"", names[k]);
		exec(drop);
		free(names[k]);
	}
	free(names);
	return sql;
}

static void make_indexes(char **sql)
{
	for (size_t k = 0; sql[k] != NULL; k++) {
		exec(sql[k]);
		free(sql[k]);
	}
	free(sql);
}

static void sync_file(const char *path)
{
	int fd;

	if ((fd = open(path, O_RDONLY)) == -1 || fsync(fd) != 0 ||
	    close(fd) != 0) {
		perror(path);
		exit(1);
	}
}

/* OUT: a copy of the (closed, checkpointed) file LIVE whose entries all
 * expired when they were made, so still in the order of their ids. */
static int expire(const char *live, const char *out)
{
	char buf[1 << 16], *sql;
	sqlite3_stmt *st;
	FILE *in, *to;
	size_t n;

	if ((in = fopen(live, "rb")) == NULL || (to = fopen(out, "wb")) ==
	    NULL) {
		perror(live);
		return 1;
	}
	while ((n = fread(buf, 1, sizeof buf, in)) > 0)
		if (fwrite(buf, 1, n, to) != n) {
			perror(out);
			return 1;
		}
	if (ferror(in) || fclose(in) != 0 || fclose(to) != 0) {
		perror(out);
		return 1;
	}
	if (sqlite3_open(out, &db) != SQLITE_OK)
		die(out);
	exec("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; "
	    "PRAGMA locking_mode = EXCLUSIVE; PRAGMA cache_size = -2000000; "
	    "PRAGMA temp_store = MEMORY");
	st = prep("SELECT sql FROM sqlite_master WHERE name = "
	    "'entries_expires'");
	if (sqlite3_step(st) != SQLITE_ROW ||
	    (sql = strdup((const char *)sqlite3_column_text(st, 0))) == NULL)
		die("entries_expires");
	sqlite3_finalize(st);
	exec("BEGIN");
	exec("DROP INDEX entries_expires");
	exec("UPDATE entries SET expires = created");
	exec(sql);
	exec("COMMIT");
	free(sql);
	exec("PRAGMA synchronous = FULL; PRAGMA locking_mode = NORMAL; "
	    "PRAGMA journal_mode = WAL");
	if (sqlite3_close(db) != SQLITE_OK)
		die("close");
	sync_file(out);
	printf("{\"expired\": \"%s\"}\n", out);
	return 0;
}

int main(int argc, char **argv)
{
	char **indexes;
	struct timespec ts;
	uint64_t n, seed;
	int live;
	char *schema;

	if (argc == 4 && strcmp(argv[1], "expire") == 0)
		return expire(argv[2], argv[3]);
	if (argc != 6 || (strcmp(argv[5], "live") != 0 &&
	    strcmp(argv[5], "expired") != 0)) {
		fprintf(stderr, "usage: scale_db SCHEMA.SQL OUT N SEED "
		    "live|expired | scale_db expire LIVE OUT\n");
		return 2;
	}
	n = strtoull(argv[3], NULL, 10);
	seed = strtoull(argv[4], NULL, 10);
	live = strcmp(argv[5], "live") == 0;
	schema = slurp(argv[1]);
	if (remove(argv[2]) != 0 && errno != ENOENT) {
		perror(argv[2]);
		return 1;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	if (sqlite3_open(argv[2], &db) != SQLITE_OK)
		die(argv[2]);
	/* Nothing to protect while building: no journal, no syncs, and a
	 * cache that holds the whole file so every index insert is in
	 * memory.  The file is synced once at the end. */
	exec("PRAGMA journal_mode = OFF; PRAGMA synchronous = OFF; "
	    "PRAGMA locking_mode = EXCLUSIVE; PRAGMA cache_size = -2000000; "
	    "PRAGMA temp_store = MEMORY");
	exec("BEGIN");
	exec(schema);
	indexes = drop_indexes();
	write_sets();
	write_entries(n, seed, live, (int64_t)ts.tv_sec * 1000 +
	    ts.tv_nsec / 1000000);
	make_indexes(indexes);
	exec("COMMIT");
	/* As tcached leaves it: in WAL mode, synced. */
	exec("PRAGMA synchronous = FULL; PRAGMA locking_mode = NORMAL; "
	    "PRAGMA journal_mode = WAL");
	if (sqlite3_close(db) != SQLITE_OK)
		die("close");
	/* On disk before any timing: a later fsync of tcached's (its first
	 * checkpoint) would otherwise write the whole file back. */
	sync_file(argv[2]);
	free(schema);
	printf("{\"entries\": %" PRIu64 ", \"sets\": %u}\n", n, SCALE_SETS);
	return 0;
}
