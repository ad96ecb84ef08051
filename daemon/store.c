/*
 * store.c: tcached's SQLite database (store.h).  The only module that
 * includes sqlite3.h.
 *
 * Every statement is prepared once, when the database is opened, and every
 * query is a point lookup or an index range: the work of one call is
 * bounded by its limit, never by the size of the database.
 *
 * The counters of STATS live in memory and are written to the counters
 * table inside the group commit, so counting a lookup costs no write of its
 * own; so do the figures of the current day (the days table).  The number of entries is kept in memory too (count(*) is a scan).
 */
#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "../proto/limits.h"
#include "../proto/proto.h"
#include "store.h"

#include "schema.h"

/* The schema version schema.sql sets with PRAGMA user_version. */
#define STORE_VERSION 3

/* A file under this size is checked with PRAGMA quick_check at open; a
 * bigger one only by its first reads, to keep the daemon's start fast:
 * the check reads the whole file, ~1 ms a MiB when it is in the page
 * cache (8 MiB: ~10 ms) and 10 to 20 a MiB when it is not. */
#define STORE_CHECK_BYTES (8ll * 1024 * 1024)

/* How long a statement waits for another process's lock, in ms: short,
 * because the caller is an event loop. */
#define STORE_BUSY_MS 1000

/* Frames (pages) in the WAL from which the checkpointer copies it into
 * the database: SQLite's own default for its automatic checkpoint. */
#define STORE_CKPT_FRAMES 1000

/*
 * The WAL starts over from its beginning only when a write transaction
 * begins with every frame of it copied, which a checkpointer beside a
 * busy writer never leaves: each commit adds frames while it copies.  A
 * WAL that only grows would fill a disk that the database itself could
 * not, and once full it could not be copied into a file that cannot grow.
 * From STORE_WAL_LONG_FRAMES (16 MiB) on, bulk deletes wait for the
 * checkpointer (store_wal_behind).  Records do not wait: from
 * STORE_WAL_TAIL_FROM (8 MiB) on, a commit of records copies what the
 * thread has left itself (the frames since its last batch began), so that
 * the next transaction starts the WAL over; so does any commit from
 * STORE_WAL_MAX_FRAMES (64 MiB) on.  That holds the loop for a sync of
 * the file (1-50 ms), once in 8 MiB of records, where SQLite's own
 * checkpoint copied everything every 4 MiB.
 */
#define STORE_WAL_LONG_FRAMES 4096
#define STORE_WAL_TAIL_FROM 2048
#define STORE_WAL_MAX_FRAMES 16384

/*
 * A statement that writes rows of several tables inside a transaction (a
 * sweep or invalidation step, with its triggers and cascades) first copies
 * each page it changes into a statement journal, to undo itself alone on
 * an error.  Past 64 KiB SQLite spills that journal to a temporary file,
 * made, written and deleted for every statement: 30-50 % of what a step of
 * deletes costs.  A step is bounded (SERVER_STEP_US), so its journal stays
 * in memory up to this (set with the other SQLite settings, store_open).
 */
#define STORE_STMTJRNL_BYTES (4 * 1024 * 1024)

/* Days of the days table kept: a year and a bit, for "this week" and
 * whatever a user graphs from it, bounded whatever the uptime. */
#define STORE_DAYS_KEEP 400

/* Index rows SLOWEST looks at, at most: expired entries still waiting for
 * the sweep are skipped, and a walk past this many is cut short (the list
 * is then shorter until the sweep catches up), so that a request never
 * costs more than a few milliseconds however many have expired (10,000
 * rows of the index alone: ~1 ms on a 1M-entry file, where reading
 * each row took 30 ms). */
#define STORE_SLOWEST_SCAN 10000

/* Page cache, in KiB (a negative cache_size is KiB). */
#define STORE_CACHE_KIB 8192

/* Bytes of the error message kept for store_error(). */
#define STORE_MSG_LEN 512

/* Sets with a record's hash compared row by row before a new one is made:
 * a genuine 64-bit collision is all but impossible, so this only bounds
 * the work a crafted one could cause (it then costs sharing, never
 * correctness). */
#define STORE_SET_CANDIDATES 4

/* FNV-1a, 64 bits: a set's hash is an index key, not a defence. */
#define STORE_FNV_BASIS 0xcbf29ce484222325ull
#define STORE_FNV_PRIME 0x100000001b3ull

/*
 * v1 -> v2: the declared inputs move out of inputs into sets.  Each
 * entry's become a set of its own, numbered like the entry, with the hash
 * -id: a record's hash meets it only by chance (and is then compared row
 * by row), so old entries share nothing and new records share from then
 * on.
 */
static const char store_v1_to_v2[] =
	"CREATE TABLE inputsets (id INTEGER PRIMARY KEY, "
	"    hash INTEGER NOT NULL);"
	"CREATE INDEX inputsets_hash ON inputsets(hash);"
	"CREATE TABLE setinputs ("
	"    setid INTEGER NOT NULL REFERENCES inputsets(id) "
	"        ON DELETE CASCADE,"
	"    kind INTEGER NOT NULL, path TEXT NOT NULL, abspath TEXT,"
	"    digest BLOB NOT NULL, PRIMARY KEY (setid, kind, path)"
	") WITHOUT ROWID;"
	"CREATE INDEX setinputs_abspath ON setinputs(abspath, setid) "
	"    WHERE abspath IS NOT NULL;"
	"ALTER TABLE entries ADD COLUMN inputset INTEGER "
	"    REFERENCES inputsets(id);"
	"CREATE INDEX entries_inputset ON entries(inputset);"
	"INSERT INTO inputsets(id, hash) SELECT DISTINCT entry, -entry "
	"    FROM inputs WHERE kind <> 1;"
	"INSERT INTO setinputs(setid, kind, path, abspath, digest) "
	"    SELECT entry, kind, path, abspath, digest FROM inputs "
	"    WHERE kind <> 1;"
	"UPDATE entries SET inputset = id "
	"    WHERE id IN (SELECT id FROM inputsets);"
	"DELETE FROM inputs WHERE kind <> 1;"
	"CREATE TRIGGER entries_release_deleted AFTER DELETE ON entries "
	"WHEN OLD.inputset IS NOT NULL BEGIN "
	"    DELETE FROM inputsets WHERE id = OLD.inputset AND NOT EXISTS "
	"        (SELECT 1 FROM entries WHERE inputset = OLD.inputset); "
	"END;"
	"CREATE TRIGGER entries_release_updated AFTER UPDATE OF inputset "
	"ON entries WHEN OLD.inputset IS NOT NULL AND "
	"    OLD.inputset IS NOT NEW.inputset BEGIN "
	"    DELETE FROM inputsets WHERE id = OLD.inputset AND NOT EXISTS "
	"        (SELECT 1 FROM entries WHERE inputset = OLD.inputset); "
	"END;";

/* v2 -> v3: per-day figures, and the index of SLOWEST (built once, at
 * the first start of this version: about a second a million entries). */
static const char store_v2_to_v3[] =
	"CREATE INDEX entries_slowest ON entries(outcome, flaky, "
	"    duration_us, expires) WHERE outcome = 1 AND flaky = 0;"
	"CREATE TABLE days (day INTEGER PRIMARY KEY, "
	"    hits INTEGER NOT NULL, misses INTEGER NOT NULL, "
	"    time_saved_us INTEGER NOT NULL);";

/*
 * store_migrations[v] upgrades a database of version v to v + 1, inside
 * the transaction that also sets the new user_version.  Version 0 is a new
 * database, which runs schema.sql instead.
 */
static const char *const store_migrations[STORE_VERSION] = {
	NULL,
	store_v1_to_v2,
	store_v2_to_v3,
};

/* The counters of STATS that persist, in the order STATS lists them.  The
 * first three are read counters: a rolled back write does not undo them. */
enum store_counter {
	C_HITS,
	C_MISSES,
	C_TIME_SAVED,
	C_RECORDS,
	C_EXPIRED,
	C_INVALIDATED,
	C_EVICTED,
	C_FLAKY_MARKED,
	C__COUNT
};
#define C__FIRST_WRITE C_RECORDS

static const char *const store_counter_names[C__COUNT] = {
	[C_HITS] = "hits",
	[C_MISSES] = "misses",
	[C_TIME_SAVED] = "time_saved_us",
	[C_RECORDS] = "records",
	[C_EXPIRED] = "expired",
	[C_INVALIDATED] = "invalidated",
	[C_EVICTED] = "evicted",
	[C_FLAKY_MARKED] = "flaky_marked",
};

/* What a day of the days table counts: the read counters, per day. */
enum store_daily { D_HITS, D_MISSES, D_TIME_SAVED, D__COUNT };

/* STATS's names for them, today and over the last 7 days (today too). */
static const char *const store_daily_names[2][D__COUNT] = {
	{ "hits_today", "misses_today", "time_saved_today_us" },
	{ "hits_7d", "misses_7d", "time_saved_7d_us" },
};

/* The order STATS lists them in (PROTOCOL.md). */
static const enum store_counter store_stats_order[C__COUNT] = {
	C_HITS, C_MISSES, C_RECORDS, C_TIME_SAVED, C_EXPIRED,
	C_INVALIDATED, C_EVICTED, C_FLAKY_MARKED
};

#define STORE_ENTRY_COLS \
	"id, key, project, test, root, outcome, flaky, duration_us, " \
	"created, expires, hits, last_used, message"

/* Entries with an input at ?A or below it: ?A exactly, or ?B <= abspath <
 * ?C with ?B = A "/" and ?C = A "0" ('0' follows '/'), so the sibling
 * A "x" falls outside.  Both are ranges of inputs_abspath (an entry's own
 * inputs) or of setinputs_abspath (its set's). */
#define STORE_UNDER(a, b, c) \
	"abspath = " a " OR (abspath >= " b " AND abspath < " c ")"

enum store_stmt {
	S_BEGIN,
	S_BEGIN_READ,
	S_COMMIT,
	S_ROLLBACK,
	S_SAVEPOINT,
	S_RELEASE,
	S_ROLLBACK_TO,
	S_COUNTERS,
	S_COUNTER_SET,
	S_ENTRIES,
	S_LOOKUP,
	S_HIT,
	S_INPUTS_KIND,
	S_INPUTS_ALL,
	S_FIND,
	S_INSERT,
	S_UPDATE,
	S_DEL_INPUTS,
	S_ADD_INPUT,
	S_SET_FIND,
	S_SET_ROWS,
	S_SET_NEW,
	S_SET_ADD,
	S_COUNT_PATH,
	S_COUNT_TEST,
	S_COUNT_KEY,
	S_DEL_PATH,
	S_DEL_PATH_SET,
	S_DEL_TEST,
	S_DEL_KEY,
	S_DEL_ALL,
	S_SWEEP,
	S_EVICT,
	S_LIST,
	S_EXPLAIN,
	S_FLAKY,
	S_SIZE,
	S_DAY_GET,
	S_DAY_SET,
	S_DAYS_RANGE,
	S_DAYS_PRUNE,
	S_DAYS_CLEAR,
	S_SLOWEST,
	S_SLOWEST_ROW,
	S__COUNT
};

static const char *const store_sql[S__COUNT] = {
	[S_BEGIN] = "BEGIN IMMEDIATE",
	[S_BEGIN_READ] = "BEGIN",
	[S_COMMIT] = "COMMIT",
	[S_ROLLBACK] = "ROLLBACK",
	[S_SAVEPOINT] = "SAVEPOINT frame",
	[S_RELEASE] = "RELEASE frame",
	[S_ROLLBACK_TO] = "ROLLBACK TO frame",
	[S_COUNTERS] = "SELECT name, value FROM counters",
	[S_COUNTER_SET] =
	    "INSERT OR REPLACE INTO counters(name, value) VALUES (?1, ?2)",
	[S_ENTRIES] = "SELECT count(*) FROM entries",
	/* The entry and the inputs a hit returns in one statement: the entry
	 * is one row (key is unique), so the inputs come in the order of
	 * their primary key, by path, without a sort. */
	[S_LOOKUP] = "SELECT e.id, e.outcome, e.flaky, e.duration_us, "
	    "e.created, e.expires, i.path, i.digest FROM entries AS e "
	    "LEFT JOIN inputs AS i ON i.entry = e.id AND i.kind = 1 "
	    "WHERE e.key = ?1 AND e.expires > ?2 ORDER BY i.path",
	/* max: a record made since the hit may have set a later one. */
	[S_HIT] = "UPDATE entries SET hits = hits + ?3, "
	    "last_used = max(last_used, ?2) WHERE id = ?1",
	[S_INPUTS_KIND] = "SELECT kind, path, digest FROM inputs "
	    "WHERE entry = ?1 AND kind = ?2 ORDER BY path",
	[S_INPUTS_ALL] = "SELECT kind, path, digest FROM setinputs "
	    "WHERE setid = (SELECT inputset FROM entries WHERE id = ?1) "
	    "UNION ALL SELECT kind, path, digest FROM inputs "
	    "WHERE entry = ?1 ORDER BY kind, path",
	[S_FIND] = "SELECT id, outcome, flaky, expires FROM entries "
	    "WHERE key = ?1",
	[S_INSERT] = "INSERT INTO entries(key, project, test, root, outcome, "
	    "flaky, duration_us, message, created, expires, hits, last_used, "
	    "inputset) "
	    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0, ?9, ?12)",
	[S_UPDATE] = "UPDATE entries SET project = ?2, test = ?3, root = ?4, "
	    "outcome = ?5, flaky = ?6, duration_us = ?7, message = ?8, "
	    "created = ?9, expires = ?10, last_used = ?9, inputset = ?12, "
	    "hits = CASE WHEN ?11 THEN 0 ELSE hits END WHERE id = ?1",
	[S_DEL_INPUTS] = "DELETE FROM inputs WHERE entry = ?1",
	[S_ADD_INPUT] = "INSERT OR REPLACE INTO inputs(entry, kind, path, "
	    "abspath, digest) VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_SET_FIND] = "SELECT id FROM inputsets WHERE hash = ?1 LIMIT ?2",
	[S_SET_ROWS] = "SELECT kind, path, abspath, digest FROM setinputs "
	    "WHERE setid = ?1 ORDER BY kind, path",
	[S_SET_NEW] = "INSERT INTO inputsets(hash) VALUES (?1)",
	[S_SET_ADD] = "INSERT INTO setinputs(setid, kind, path, abspath, "
	    "digest) VALUES (?1, ?2, ?3, ?4, ?5)",
	[S_COUNT_PATH] = "SELECT count(*) FROM (SELECT entry FROM inputs "
	    "WHERE " STORE_UNDER("?1", "?2", "?3") " UNION SELECT id FROM "
	    "entries WHERE inputset IN (SELECT setid FROM setinputs WHERE "
	    STORE_UNDER("?1", "?2", "?3") "))",
	[S_COUNT_TEST] = "SELECT count(*) FROM entries WHERE test GLOB ?1",
	[S_COUNT_KEY] = "SELECT count(*) FROM entries WHERE key = ?1",
	[S_DEL_PATH] = "DELETE FROM entries WHERE id IN (SELECT DISTINCT "
	    "entry FROM inputs WHERE " STORE_UNDER("?1", "?2", "?3")
	    " LIMIT ?4)",
	/* Set first: an entry comes once per row of its set in the range,
	 * and DISTINCT stops the walk as soon as it has ?4 entries. */
	[S_DEL_PATH_SET] = "DELETE FROM entries WHERE id IN (SELECT DISTINCT "
	    "e.id FROM setinputs CROSS JOIN entries AS e "
	    "ON e.inputset = setinputs.setid WHERE "
	    STORE_UNDER("?1", "?2", "?3") " LIMIT ?4)",
	[S_DEL_TEST] = "DELETE FROM entries WHERE id IN (SELECT id FROM "
	    "entries WHERE test GLOB ?1 LIMIT ?2)",
	[S_DEL_KEY] = "DELETE FROM entries WHERE key = ?1",
	[S_DEL_ALL] = "DELETE FROM entries WHERE id IN (SELECT id FROM "
	    "entries ORDER BY id LIMIT ?1)",
	[S_SWEEP] = "DELETE FROM entries WHERE id IN (SELECT id FROM entries "
	    "WHERE expires <= ?1 ORDER BY expires LIMIT ?2)",
	[S_EVICT] = "DELETE FROM entries WHERE id IN (SELECT id FROM entries "
	    "ORDER BY last_used, id LIMIT ?1)",
	[S_LIST] = "SELECT " STORE_ENTRY_COLS " FROM entries WHERE id > ?1 "
	    "AND (?2 IS NULL OR test GLOB ?2) AND (?3 IS NULL OR id IN "
	    "(SELECT entry FROM inputs WHERE " STORE_UNDER("?3", "?4", "?5")
	    ") OR inputset IN (SELECT setid FROM setinputs WHERE "
	    STORE_UNDER("?3", "?4", "?5") ")) ORDER BY id LIMIT ?6",
	[S_EXPLAIN] = "SELECT " STORE_ENTRY_COLS " FROM entries "
	    "WHERE test = ?2 AND project = ?1 "
	    "ORDER BY created DESC, id DESC LIMIT 1",
	[S_FLAKY] = "SELECT count(*) FROM entries WHERE flaky = 1",
	[S_SIZE] = "SELECT page_count * page_size "
	    "FROM pragma_page_count(), pragma_page_size()",
	[S_DAY_GET] = "SELECT hits, misses, time_saved_us FROM days "
	    "WHERE day = ?1",
	[S_DAY_SET] = "INSERT OR REPLACE INTO days(day, hits, misses, "
	    "time_saved_us) VALUES (?1, ?2, ?3, ?4)",
	[S_DAYS_RANGE] = "SELECT day, hits, misses, time_saved_us FROM days "
	    "WHERE day > ?1 AND day <= ?2",
	[S_DAYS_PRUNE] = "DELETE FROM days WHERE day <= ?1",
	[S_DAYS_CLEAR] = "DELETE FROM days",
	/* Down entries_slowest alone, a covering walk (its WHERE repeated,
	 * for the index to apply): the caller skips the expired, stops
	 * (STORE_SLOWEST_SCAN), and reads the others' rows (S_SLOWEST_ROW). */
	[S_SLOWEST] = "SELECT id, expires FROM entries "
	    "WHERE outcome = 1 AND flaky = 0 "
	    "ORDER BY duration_us DESC, expires DESC, id DESC",
	[S_SLOWEST_ROW] = "SELECT project, test, duration_us, hits "
	    "FROM entries WHERE id = ?1",
};

/* A path filter turned into the three bounds of STORE_UNDER. */
struct store_range {
	char exact[TC_MAX_PATH + 1];
	char lo[TC_MAX_PATH + 2];
	char hi[TC_MAX_PATH + 2];
};

/*
 * The checkpointer: a thread with a connection of its own that copies the
 * WAL into the database (PRAGMA wal_checkpoint(PASSIVE)), so that the
 * event loop never does.  A checkpoint writes pages all over the file and
 * syncs it: tens of milliseconds for a thousand frames of a big database,
 * and the loop would answer nobody meanwhile.  A passive checkpoint runs
 * beside the loop's readers and writer, and copies only frames that are
 * committed: what is durable and when stays exactly as it was.  The loop's
 * commits tell it (store_wal_hook) when the WAL holds STORE_CKPT_FRAMES.
 *
 * Without the thread (locking_mode=EXCLUSIVE admits no second connection;
 * a thread or connection that could not be made; an error it cannot get
 * past) the loop checkpoints itself as SQLite would have.
 */
struct store_ckpt {
	sqlite3 *db;			/* the thread's own */
	pthread_t thread;
	pthread_mutex_t mu;		/* guards what follows */
	pthread_cond_t cv;
	int running;			/* the thread runs: ends with store_detach */
	int stop;
	int work;			/* a commit left STORE_CKPT_FRAMES or more */
	int busy;			/* copying now */
	int broken;			/* it stopped on an error: the loop copies */
	int frames;			/* in the WAL at the last commit */
	int log, copied;		/* the last checkpoint's: frames in the
					   WAL, and of them in the database */
};

/* One day's figures in memory, as they will be written to its row. */
struct store_day {
	int used;
	int dirty;			/* not yet committed */
	int64_t day;			/* local date, days since 1970-01-01 */
	uint64_t v[D__COUNT];
};

struct store {
	sqlite3 *db;
	sqlite3_stmt *st[S__COUNT];
	char *path;
	uint64_t ttl_ms;
	uint64_t max_entries;
	int sync_full;
	int no_space;			/* the last attach failed on a full disk */
	int exclusive;			/* locking_mode=EXCLUSIVE: store_open */

	int in_txn;
	int in_savepoint;
	int sp_whole;			/* the savepoint is the transaction */
	sqlite3_int64 txn_changes;	/* total_changes at BEGIN */
	int txn_reset;			/* the counters were reset since BEGIN */
	uint64_t txn_serial;		/* the last transaction begun */
	uint64_t lost_serial;		/* the last one that did not commit */
	uint64_t entries;
	uint64_t counters[C__COUNT];
	int dirty;			/* counters not yet written */
	/* days[0] is today, from day_lo_ms to day_hi_ms (Unix ms); days[1]
	 * the day before the last change of day, until it is committed (the
	 * sweep's transaction each second commits it). */
	struct store_day days[2];
	int64_t day_lo_ms, day_hi_ms;
	int days_clear;			/* a reset: the table goes at the save */
	int days_prune;			/* the day changed: drop the oldest */
	/* Hits outside a transaction, applied by the next store_begin, so
	 * that a lookup costs no write of its own (store_touch). */
	struct store_touched { int64_t id; uint64_t ms, n; }
	    touched[STORE_TOUCH_MAX];
	size_t ntouched;
	int touched_sorted;		/* by id, as store_touch_flush left them */
	int64_t touched_max;		/* no id above this is among them */
	/* Lookups outside a write transaction share a read transaction until
	 * store_end_read, which read_hook asks the caller to run. */
	int in_read;
	void (*read_hook)(void *);
	void *read_arg;

	/* What a rollback restores: the state at BEGIN and at SAVEPOINT. */
	uint64_t txn_entries;
	uint64_t txn_counters[C__COUNT];
	uint64_t sp_entries;
	uint64_t sp_counters[C__COUNT];

	struct store_range range;
	char abspath[2 * TC_MAX_PATH + 2];
	/* A record's declared inputs, sorted (store_declared). */
	const tc_input **sorted;
	size_t sorted_cap;
	struct store_ckpt ckpt;
	uint64_t bulk_txn;		/* the last transaction that deleted */
	char msg[STORE_MSG_LEN];
};

/* Why an attach failed: a damaged file is moved aside, anything else is
 * reported. */
enum store_attach_rc { ATTACH_OK, ATTACH_DAMAGED, ATTACH_FAIL };

static void store_txn_lost(struct store *);
static int store_touch_flush(struct store *, size_t);

static void __attribute__((format(printf, 3, 4)))
store_errf(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (len == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
}

static int store_code(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_FULL:
		return STORE_EFULL;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return STORE_ECORRUPT;
	case SQLITE_NOMEM:
		return STORE_ENOMEM;
	default:
		return STORE_EFAIL;
	}
}

/*
 * A full disk does not always come back as SQLITE_FULL: a wal-index that
 * cannot grow, a truncation or a sync fail with an I/O error whose errno is
 * ENOSPC.  Such an error is a full disk too, so that the reply and the log
 * say so and not "disk I/O error".  "" when rc is no such error.
 */
static const char *store_no_space(sqlite3 *db, int rc)
{
	int e;

	if ((rc & 0xff) != SQLITE_IOERR || db == NULL)
		return "";
	e = sqlite3_system_errno(db);
	return e == ENOSPC || e == EDQUOT ? " (disk full)" : "";
}

/* An SQLite call failed: keep its message, notice a transaction that
 * SQLite rolled back on its own (disk full, I/O error), map the code. */
static int store_fail(struct store *s, int rc, const char *what)
{
	const char *full = store_no_space(s->db, rc);

	store_errf(s->msg, sizeof s->msg, "%s: %s%s", what,
	    s->db != NULL ? sqlite3_errmsg(s->db) : sqlite3_errstr(rc), full);
	if (s->in_txn && s->db != NULL && sqlite3_get_autocommit(s->db))
		store_txn_lost(s);
	return full[0] != '\0' ? STORE_EFULL : store_code(rc);
}

/* A statement's bindings go with its reset, so that no pointer of a
 * caller's outlives the call. */
static void store_done(sqlite3_stmt *st)
{
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
}

static int64_t store_i64(uint64_t v)
{
	return v > INT64_MAX ? INT64_MAX : (int64_t)v;
}

static uint64_t store_u64(sqlite3_stmt *st, int col)
{
	int64_t v = sqlite3_column_int64(st, col);

	return v < 0 ? 0 : (uint64_t)v;
}

/* Runs a statement that returns no rows. */
static int store_run(struct store *s, enum store_stmt id)
{
	sqlite3_stmt *st = s->st[id];
	int rc;

	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE && rc != SQLITE_ROW) {
		rc = store_fail(s, rc, store_sql[id]);
		store_done(st);
		return rc;
	}
	store_done(st);
	return STORE_OK;
}

/* Runs a statement that returns one integer (a count). */
static int store_count(struct store *s, enum store_stmt id, uint64_t *out)
{
	sqlite3_stmt *st = s->st[id];
	int rc;

	*out = 0;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = store_u64(st, 0);
		rc = SQLITE_DONE;
	}
	if (rc != SQLITE_DONE) {
		rc = store_fail(s, rc, store_sql[id]);
		store_done(st);
		return rc;
	}
	store_done(st);
	return STORE_OK;
}

/* Runs a DELETE; *removed is the number of entries it removed (not the
 * inputs that went with them by ON DELETE CASCADE). */
static int store_delete(struct store *s, enum store_stmt id,
    enum store_counter counter, uint64_t *removed)
{
	int rc;

	*removed = 0;
	if ((rc = store_run(s, id)) != STORE_OK)
		return rc;
	*removed = (uint64_t)sqlite3_changes(s->db);
	s->bulk_txn = s->txn_serial;
	if (*removed > s->entries)
		s->entries = 0;
	else
		s->entries -= *removed;
	s->counters[counter] += *removed;
	if (*removed > 0)
		s->dirty = 1;
	return STORE_OK;
}

/* --- opening, checking, moving a damaged file aside --- */

/* Runs SQL text that returns no rows of interest (PRAGMAs, the schema). */
static int store_exec(sqlite3 *db, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;
	int rc;

	if ((rc = sqlite3_exec(db, sql, NULL, NULL, &msg)) != SQLITE_OK) {
		store_errf(err, errlen, "%s", msg != NULL ? msg :
		    sqlite3_errstr(rc));
		sqlite3_free(msg);
	}
	return rc;
}

/* One integer from SQL text, at open time. */
static int store_query_int(sqlite3 *db, const char *sql, int64_t *out)
{
	sqlite3_stmt *st;
	int rc;

	*out = 0;
	if ((rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL)) != SQLITE_OK)
		return rc;
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE)
		rc = SQLITE_OK;
	sqlite3_finalize(st);
	return rc;
}

/* PRAGMA quick_check: "ok", or rows naming what is wrong. */
static int store_quick_check(struct store *s, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	const unsigned char *txt;
	int rc;

	rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check(1)", -1, &st, NULL);
	if (rc != SQLITE_OK)
		goto fail;
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		txt = sqlite3_column_text(st, 0);
		if (txt == NULL || strcmp((const char *)txt, "ok") != 0) {
			store_errf(err, errlen, "quick_check: %s",
			    txt != NULL ? (const char *)txt : "no answer");
			sqlite3_finalize(st);
			return ATTACH_DAMAGED;
		}
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	if (rc == SQLITE_OK || rc == SQLITE_DONE)
		return ATTACH_OK;
fail:
	store_errf(err, errlen, "quick_check: %s", sqlite3_errmsg(s->db));
	return store_code(rc) == STORE_ECORRUPT ? ATTACH_DAMAGED : ATTACH_FAIL;
}

/* Fails with the SQLite message; a damaged file is told apart. */
static int store_attach_fail(struct store *s, int rc, const char *what,
    char *err, size_t errlen)
{
	const char *full = store_no_space(s->db, rc);

	s->no_space = full[0] != '\0' || (rc & 0xff) == SQLITE_FULL;
	store_errf(err, errlen, "%s: %s: %s%s", s->path, what,
	    sqlite3_errmsg(s->db), full);
	return store_code(rc) == STORE_ECORRUPT ? ATTACH_DAMAGED : ATTACH_FAIL;
}

/* Settings for this connection; journal_mode=WAL is written into the
 * file, so it comes only after the version check. */
static int store_pragmas(struct store *s, char *err, size_t errlen)
{
	char sql[256];
	int rc;

	snprintf(sql, sizeof sql,
	    "PRAGMA journal_mode = WAL; PRAGMA synchronous = %s; "
	    "PRAGMA foreign_keys = ON; PRAGMA cache_size = -%d; "
	    /* A frame's savepoint journals every page it touches; in memory
	     * that journal is a chunk list SQLite walks from its head on each
	     * access, quadratic in a big frame (3-10x slower records), while a
	     * temporary file is random access. */
	    "PRAGMA temp_store = FILE;",
	    s->sync_full ? "FULL" : "NORMAL", STORE_CACHE_KIB);
	if ((rc = store_exec(s->db, sql, err, errlen)) != SQLITE_OK)
		return store_code(rc) == STORE_ECORRUPT ? ATTACH_DAMAGED :
		    ATTACH_FAIL;
	return ATTACH_OK;
}

/* Creates the schema of a new file, or migrates an older one, in one
 * transaction: a crash leaves the file as it was. */
static int store_upgrade(struct store *s, int64_t version, char *err,
    size_t errlen)
{
	char sql[64];
	int rc;

	if ((rc = store_exec(s->db, "BEGIN IMMEDIATE", err, errlen)) != SQLITE_OK)
		goto fail;
	if (version == 0)
		rc = store_exec(s->db, store_schema_sql, err, errlen);
	for (int64_t v = version; v > 0 && v < STORE_VERSION &&
	    rc == SQLITE_OK; v++)
		rc = store_exec(s->db, store_migrations[v], err, errlen);
	if (rc == SQLITE_OK) {
		snprintf(sql, sizeof sql, "PRAGMA user_version = %d",
		    STORE_VERSION);
		rc = store_exec(s->db, sql, err, errlen);
	}
	if (rc == SQLITE_OK)
		rc = store_exec(s->db, "COMMIT", err, errlen);
	if (rc == SQLITE_OK)
		return ATTACH_OK;
	if (!sqlite3_get_autocommit(s->db))
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
fail:
	return store_code(rc) == STORE_ECORRUPT ? ATTACH_DAMAGED : ATTACH_FAIL;
}

/*
 * Reads the version before anything writes to the file: a newer file must
 * be left exactly as it is.  0 with no tables is a new file; 0 with tables
 * is somebody else's database, which is refused rather than moved aside.
 */
static int store_version(struct store *s, int64_t *version, int *refused,
    char *err, size_t errlen)
{
	int64_t tables;
	int rc;

	if ((rc = store_query_int(s->db, "PRAGMA user_version", version)) !=
	    SQLITE_OK)
		return store_attach_fail(s, rc, "reading the version", err,
		    errlen);
	if (*version > STORE_VERSION) {
		store_errf(err, errlen, "%s: written by a newer tcached "
		    "(schema version %lld; this tcached reads up to %d): "
		    "refusing to open it; use a newer tcached or another --db",
		    s->path, (long long)*version, STORE_VERSION);
		*refused = STORE_ENEWER;
		return ATTACH_FAIL;
	}
	rc = store_query_int(s->db, "SELECT count(*) FROM sqlite_master",
	    &tables);
	if (rc != SQLITE_OK)
		return store_attach_fail(s, rc, "reading the schema", err,
		    errlen);
	if (*version < 0 || (*version == 0 && tables > 0)) {
		store_errf(err, errlen, "%s: an SQLite database that is not "
		    "tcache's (no schema version): refusing to touch it",
		    s->path);
		return ATTACH_FAIL;
	}
	return ATTACH_OK;
}

/* --- the days table --- */

/*
 * The local calendar day of t_ms, as days since 1970-01-01 of the local
 * date, and the Unix ms at which it begins and ends (23 or 25 hours apart
 * across a change of daylight saving time).  -1 when the C library cannot
 * say.
 */
static int store_day_of(int64_t t_ms, int64_t *day, int64_t *lo,
    int64_t *hi)
{
	time_t t = (time_t)(t_ms / 1000), start, end;
	struct tm tm, date, midnight;

	if (localtime_r(&t, &tm) == NULL)
		return -1;
	/* The date read as a UTC midnight: a day number that no zone's
	 * rules (nor a change of them) can shift. */
	memset(&date, 0, sizeof date);
	date.tm_year = tm.tm_year;
	date.tm_mon = tm.tm_mon;
	date.tm_mday = tm.tm_mday;
	if ((start = timegm(&date)) == (time_t)-1)
		return -1;
	*day = (int64_t)start / 86400;
	midnight = date;
	midnight.tm_isdst = -1;
	start = mktime(&midnight);
	midnight = date;
	midnight.tm_mday++;
	midnight.tm_isdst = -1;
	end = mktime(&midnight);
	if (start == (time_t)-1 || end == (time_t)-1 || end <= start ||
	    t < start || t >= end)
		return -1;
	*lo = (int64_t)start * 1000;
	*hi = (int64_t)end * 1000;
	return 0;
}

/* A day's row, zeros when it has none.  An error leaves zeros too: the
 * figures of a day are worth no failed lookup. */
static void store_day_load(struct store *s, struct store_day *d)
{
	sqlite3_stmt *st = s->st[S_DAY_GET];

	memset(d->v, 0, sizeof d->v);
	if (sqlite3_bind_int64(st, 1, d->day) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW) {
		d->v[D_HITS] = store_u64(st, 0);
		d->v[D_MISSES] = store_u64(st, 1);
		d->v[D_TIME_SAVED] = store_u64(st, 2);
	}
	store_done(st);
}

/*
 * Makes days[0] the day of now_ms: a comparison while the day lasts.  The
 * day that ends stays in days[1] until a commit writes it; a second change
 * of day before any commit (the sweep commits every second) would lose
 * it.  A clock set back to that day takes it back.
 */
static void store_day_roll(struct store *s, uint64_t now_ms)
{
	int64_t now = store_i64(now_ms), day, lo, hi;
	struct store_day d;

	if (s->days[0].used && now >= s->day_lo_ms && now < s->day_hi_ms)
		return;
	if (store_day_of(now, &day, &lo, &hi) == -1) {
		/* No local time: the day goes on, asked again in a minute. */
		day = s->days[0].used ? s->days[0].day : now / 86400000;
		lo = now;
		hi = now + 60 * 1000;
	}
	s->day_lo_ms = lo;
	s->day_hi_ms = hi;
	if (s->days[0].used && s->days[0].day == day)
		return;
	s->days_prune = 1;
	if (s->days[1].used && s->days[1].day == day) {
		d = s->days[0];
		s->days[0] = s->days[1];
		s->days[1] = d;
		return;
	}
	if (s->days[0].used)
		s->days[1] = s->days[0];
	memset(&s->days[0], 0, sizeof s->days[0]);
	s->days[0].used = 1;
	s->days[0].day = day;
	if (!s->days_clear)	/* a reset not yet committed: the rows go */
		store_day_load(s, &s->days[0]);
}

static void store_day_count(struct store *s, uint64_t now_ms, int hit,
    uint64_t dur)
{
	struct store_day *d;

	store_day_roll(s, now_ms);
	d = &s->days[0];
	if (hit) {
		d->v[D_HITS]++;
		d->v[D_TIME_SAVED] += dur;
	} else
		d->v[D_MISSES]++;
	d->dirty = 1;
}

/* With the counters, inside the transaction: what a reset or a change of
 * day asks for, then the days that counted since the last commit. */
static int store_days_save(struct store *s)
{
	sqlite3_stmt *st = s->st[S_DAY_SET];
	struct store_day *d;
	int rc;

	if (s->days_clear && (rc = store_run(s, S_DAYS_CLEAR)) != STORE_OK)
		return rc;
	if (s->days_prune && s->days[0].used) {
		if ((rc = sqlite3_bind_int64(s->st[S_DAYS_PRUNE], 1,
		    s->days[0].day - STORE_DAYS_KEEP)) != SQLITE_OK) {
			rc = store_fail(s, rc, "pruning the days");
			store_done(s->st[S_DAYS_PRUNE]);
			return rc;
		}
		if ((rc = store_run(s, S_DAYS_PRUNE)) != STORE_OK)
			return rc;
	}
	for (int i = 0; i < 2; i++) {
		d = &s->days[i];
		if (!d->used || !d->dirty)
			continue;
		if ((rc = sqlite3_bind_int64(st, 1, d->day)) != SQLITE_OK ||
		    (rc = sqlite3_bind_int64(st, 2,
		    store_i64(d->v[D_HITS]))) != SQLITE_OK ||
		    (rc = sqlite3_bind_int64(st, 3,
		    store_i64(d->v[D_MISSES]))) != SQLITE_OK ||
		    (rc = sqlite3_bind_int64(st, 4,
		    store_i64(d->v[D_TIME_SAVED]))) != SQLITE_OK) {
			rc = store_fail(s, rc, "saving a day");
			store_done(st);
			return rc;
		}
		if ((rc = store_run(s, S_DAY_SET)) != STORE_OK)
			return rc;
	}
	return STORE_OK;
}

/* A commit wrote what store_days_save wrote. */
static void store_days_saved(struct store *s)
{
	s->days_clear = s->days_prune = 0;
	s->days[0].dirty = s->days[1].dirty = 0;
}

/* Today's figures (out[0]) and the last 7 days' with today (out[1]): the
 * days in memory, and the rows of the others (7 at most). */
static int store_days_sum(struct store *s, uint64_t now_ms,
    uint64_t out[2][D__COUNT])
{
	sqlite3_stmt *st = s->st[S_DAYS_RANGE];
	int64_t today, day;
	int rc, mem;

	store_day_roll(s, now_ms);
	memset(out, 0, 2 * sizeof out[0]);
	today = s->days[0].day;
	for (int i = 0; i < 2; i++) {
		if (!s->days[i].used || s->days[i].day <= today - 7 ||
		    s->days[i].day > today)
			continue;
		for (int k = 0; k < D__COUNT; k++) {
			out[1][k] += s->days[i].v[k];
			if (i == 0)
				out[0][k] += s->days[i].v[k];
		}
	}
	if (s->days_clear)
		return STORE_OK;
	if ((rc = sqlite3_bind_int64(st, 1, today - 7)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 2, today)) != SQLITE_OK)
		goto fail;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		day = sqlite3_column_int64(st, 0);
		mem = 0;
		for (int i = 0; i < 2; i++)
			mem |= s->days[i].used && s->days[i].day == day;
		for (int k = 0; !mem && k < D__COUNT; k++)
			out[1][k] += store_u64(st, 1 + k);
	}
	if (rc != SQLITE_DONE)
		goto fail;
	store_done(st);
	return STORE_OK;
fail:
	rc = store_fail(s, rc, "reading the days");
	store_done(st);
	return rc;
}

/* The first reads of an opened database, which also find damage. */
static int store_load(struct store *s, char *err, size_t errlen)
{
	sqlite3_stmt *st = s->st[S_COUNTERS];
	const char *name;
	int rc;

	memset(s->counters, 0, sizeof s->counters);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		name = (const char *)sqlite3_column_text(st, 0);
		for (int i = 0; name != NULL && i < C__COUNT; i++) {
			if (strcmp(name, store_counter_names[i]) == 0)
				s->counters[i] = store_u64(st, 1);
		}
	}
	store_done(st);
	if (rc != SQLITE_DONE)
		return store_attach_fail(s, rc, "reading the counters", err,
		    errlen);
	if ((rc = store_count(s, S_ENTRIES, &s->entries)) != STORE_OK) {
		store_errf(err, errlen, "%s: %s", s->path, s->msg);
		return rc == STORE_ECORRUPT ? ATTACH_DAMAGED : ATTACH_FAIL;
	}
	/* Today's row, read again at the first count or STATS. */
	memset(s->days, 0, sizeof s->days);
	s->days_clear = 0;
	s->days_prune = 0;
	return ATTACH_OK;
}

static int store_prepare(struct store *s, char *err, size_t errlen)
{
	int rc;

	for (int i = 0; i < S__COUNT; i++) {
		rc = sqlite3_prepare_v3(s->db, store_sql[i], -1,
		    SQLITE_PREPARE_PERSISTENT, &s->st[i], NULL);
		if (rc != SQLITE_OK)
			return store_attach_fail(s, rc, store_sql[i], err,
			    errlen);
	}
	return ATTACH_OK;
}

/* --- the checkpointer (struct store_ckpt) --- */

static void *store_ckpt_run(void *arg)
{
	struct store_ckpt *ck = arg;
	struct timespec nap = { 0, 2 * 1000 * 1000 };
	int rc, log, copied, again = 0;

	pthread_mutex_lock(&ck->mu);
	for (;;) {
		while (!ck->stop && !ck->work && !again)
			pthread_cond_wait(&ck->cv, &ck->mu);
		if (ck->stop)
			break;
		ck->work = 0;
		ck->busy = 1;
		pthread_mutex_unlock(&ck->mu);
		if (again)
			nanosleep(&nap, NULL);
		log = copied = 0;
		rc = sqlite3_wal_checkpoint_v2(ck->db, NULL,
		    SQLITE_CHECKPOINT_PASSIVE, &log, &copied);
		pthread_mutex_lock(&ck->mu);
		ck->busy = 0;
		/* Frames a reader still needs stay: again, after a nap, as
		 * long as that copies more. */
		again = rc == SQLITE_OK && copied < log && copied > ck->copied;
		if (rc == SQLITE_OK) {
			ck->log = log;
			ck->copied = copied;
		} else if ((rc & 0xff) != SQLITE_BUSY &&
		    (rc & 0xff) != SQLITE_LOCKED && (rc & 0xff) != SQLITE_FULL &&
		    (rc & 0xff) != SQLITE_IOERR) {
			/* Damage or worse: the loop's own reads will find it;
			 * until the file is reopened the loop copies. */
			ck->broken = 1;
			break;
		}
		/* A full disk or an I/O error: the next commit tries again. */
	}
	pthread_mutex_unlock(&ck->mu);
	return NULL;
}

/* Starts the checkpointer; without it the loop checkpoints (the hook). */
static void store_ckpt_start(struct store *s)
{
	struct store_ckpt *ck = &s->ckpt;
	sigset_t all, old;
	char sql[64];
	int rc;

	memset(ck, 0, sizeof *ck);
	if (s->exclusive || !sqlite3_threadsafe())
		return;
	if (sqlite3_open_v2(s->path, &ck->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
		goto fail;
	/* Only the loop's connection, the last to close, checkpoints at
	 * close (and removes the WAL). */
	sqlite3_db_config(ck->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	snprintf(sql, sizeof sql, "PRAGMA synchronous = %s",
	    s->sync_full ? "FULL" : "NORMAL");
	if (sqlite3_exec(ck->db, sql, NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	if (pthread_mutex_init(&ck->mu, NULL) != 0)
		goto fail;
	if (pthread_cond_init(&ck->cv, NULL) != 0) {
		pthread_mutex_destroy(&ck->mu);
		goto fail;
	}
	/* Signals are the loop's to take: the thread blocks them all. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = pthread_create(&ck->thread, NULL, store_ckpt_run, ck);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0) {
		pthread_cond_destroy(&ck->cv);
		pthread_mutex_destroy(&ck->mu);
		goto fail;
	}
	ck->running = 1;
	return;
fail:
	sqlite3_close(ck->db);
	ck->db = NULL;
}

static void store_ckpt_stop(struct store *s)
{
	struct store_ckpt *ck = &s->ckpt;

	if (ck->running) {
		pthread_mutex_lock(&ck->mu);
		ck->stop = 1;
		pthread_cond_signal(&ck->cv);
		pthread_mutex_unlock(&ck->mu);
		pthread_join(ck->thread, NULL);
		pthread_cond_destroy(&ck->cv);
		pthread_mutex_destroy(&ck->mu);
	}
	sqlite3_close(ck->db);
	memset(ck, 0, sizeof *ck);
}

/* After each commit of the loop's connection, with the frames now in the
 * WAL (sqlite3_wal_hook, which replaces SQLite's automatic checkpoint). */
static int store_wal_hook(void *arg, sqlite3 *db, const char *name,
    int frames)
{
	struct store *s = arg;
	struct store_ckpt *ck = &s->ckpt;
	int inline_copy = frames >= STORE_CKPT_FRAMES;
	/* A bulk delete waits for the thread instead (store_wal_behind). */
	int bulk = s->bulk_txn == s->txn_serial;

	if (ck->running) {
		pthread_mutex_lock(&ck->mu);
		if (frames < ck->frames)	/* the WAL started over */
			ck->log = ck->copied = 0;
		ck->frames = frames;
		if (!ck->broken) {
			/* What is left after the thread, while it rests:
			 * the tail of records, or a WAL grown too long. */
			inline_copy = !ck->busy && ck->copied < frames &&
			    (frames >= STORE_WAL_MAX_FRAMES ||
			    (!bulk && frames >= STORE_WAL_TAIL_FROM));
			/* Frames go to it in batches (each checkpoint
			 * syncs the file twice, whatever it copies), and
			 * all of a long WAL of bulk deletes, which wait for
			 * it to start over. */
			if (!inline_copy && (frames - ck->log >=
			    STORE_CKPT_FRAMES || (bulk &&
			    frames >= STORE_WAL_LONG_FRAMES &&
			    ck->copied < frames))) {
				ck->work = 1;
				pthread_cond_signal(&ck->cv);
			}
		}
		pthread_mutex_unlock(&ck->mu);
	}
	/* An error here is not the commit's, which has succeeded; one while
	 * the thread copies (SQLITE_BUSY) leaves it to the next commit. */
	if (inline_copy)
		(void)sqlite3_wal_checkpoint_v2(db, name,
		    SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	return SQLITE_OK;
}

int store_wal_behind(struct store *s)
{
	struct store_ckpt *ck = &s->ckpt;
	int behind;

	if (!ck->running)
		return 0;
	pthread_mutex_lock(&ck->mu);
	behind = !ck->broken && ck->frames >= STORE_WAL_LONG_FRAMES &&
	    !(ck->log >= ck->frames && ck->copied == ck->log);
	pthread_mutex_unlock(&ck->mu);
	return behind;
}

static void store_detach(struct store *s)
{
	/* The checkpointer's connection closes first: the loop's, the last,
	 * then checkpoints what is left at close. */
	store_ckpt_stop(s);
	for (int i = 0; i < S__COUNT; i++) {
		sqlite3_finalize(s->st[i]);
		s->st[i] = NULL;
	}
	sqlite3_close(s->db);
	s->db = NULL;
	s->ntouched = 0;		/* their ids were the old file's */
	s->in_read = 0;
	if (s->in_txn)
		s->lost_serial = s->txn_serial;
	s->in_txn = s->in_savepoint = 0;
}

static int store_file_small(const char *path)
{
	struct stat sb;

	if (stat(path, &sb) == -1)
		return 1;	/* a missing file is new: nothing to check */
	return sb.st_size < STORE_CHECK_BYTES;
}

/* Opens s->path and brings it to STORE_VERSION.  *refused is set to
 * STORE_ENEWER for a file of a newer tcached. */
static int store_attach(struct store *s, int *refused, char *err,
    size_t errlen)
{
	int64_t version;
	int rc;

	rc = sqlite3_open_v2(s->path, &s->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		if (s->db == NULL)
			store_errf(err, errlen, "%s: %s", s->path,
			    sqlite3_errstr(rc));
		else
			return store_attach_fail(s, rc, "open", err, errlen);
		return store_code(rc) == STORE_ECORRUPT ? ATTACH_DAMAGED :
		    ATTACH_FAIL;
	}
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, STORE_BUSY_MS);
	/* Before the first read: SQLite then keeps the wal-index in memory
	 * and never makes the -shm file (see store_open). */
	if (s->exclusive && (rc = store_exec(s->db,
	    "PRAGMA locking_mode = EXCLUSIVE", err, errlen)) != SQLITE_OK)
		return ATTACH_FAIL;
	/* Closing checkpoints a WAL into the file: not on a file that is
	 * refused, which must stay exactly as it is. */
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	if ((rc = store_version(s, &version, refused, err, errlen)) !=
	    ATTACH_OK)
		return rc;
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, NULL);
	if (store_file_small(s->path) &&
	    (rc = store_quick_check(s, err, errlen)) != ATTACH_OK)
		return rc;
	if ((rc = store_pragmas(s, err, errlen)) != ATTACH_OK)
		return rc;
	if (version < STORE_VERSION &&
	    (rc = store_upgrade(s, version, err, errlen)) != ATTACH_OK)
		return rc;
	if ((rc = store_query_int(s->db, "PRAGMA user_version", &version)) !=
	    SQLITE_OK)
		return store_attach_fail(s, rc, "reading the version", err,
		    errlen);
	if (version != STORE_VERSION) {
		store_errf(err, errlen, "%s: schema version %lld after "
		    "setup, expected %d", s->path, (long long)version,
		    STORE_VERSION);
		return ATTACH_FAIL;
	}
	if ((rc = store_prepare(s, err, errlen)) != ATTACH_OK ||
	    (rc = store_load(s, err, errlen)) != ATTACH_OK)
		return rc;
	sqlite3_wal_hook(s->db, store_wal_hook, s);
	store_ckpt_start(s);
	return ATTACH_OK;
}

/* Renames one file if it exists; 0, or -1 with errno. */
static int store_rename(const char *from, const char *to)
{
	if (rename(from, to) == -1 && errno != ENOENT)
		return -1;
	return 0;
}

/* PATH becomes PATH.damaged-YYYYmmddTHHMMSS (or ...-N when that is
 * taken), with its -wal and -shm beside it under the same name. */
static int store_move_aside(const char *path, char *to, size_t tolen)
{
	static const char *const sfx[] = { "-wal", "-shm", "" };
	char stamp[32], from[PATH_MAX + 8], dst[PATH_MAX + 72];
	struct stat sb;
	struct tm tm;
	time_t t = time(NULL);
	int n;

	if (localtime_r(&t, &tm) == NULL ||
	    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%S", &tm) == 0)
		snprintf(stamp, sizeof stamp, "%lld", (long long)t);
	for (int i = 0; i < 100; i++) {
		if (i == 0)
			n = snprintf(to, tolen, "%s.damaged-%s", path, stamp);
		else
			n = snprintf(to, tolen, "%s.damaged-%s-%d", path,
			    stamp, i);
		if (n < 0 || (size_t)n >= tolen) {
			errno = ENAMETOOLONG;
			return -1;
		}
		if (lstat(to, &sb) == -1 && errno == ENOENT)
			break;
	}
	/* The main file goes last: a crash halfway leaves it in place to
	 * be found damaged again. */
	for (size_t i = 0; i < sizeof sfx / sizeof sfx[0]; i++) {
		n = snprintf(from, sizeof from, "%s%s", path, sfx[i]);
		if (n < 0 || (size_t)n >= sizeof from) {
			errno = ENAMETOOLONG;
			return -1;
		}
		n = snprintf(dst, sizeof dst, "%s%s", to, sfx[i]);
		if (n < 0 || (size_t)n >= sizeof dst) {
			errno = ENAMETOOLONG;
			return -1;
		}
		if (store_rename(from, dst) == -1)
			return -1;
	}
	return 0;
}

/* The file is damaged: moves it aside and attaches a fresh one, once. */
static int store_reattach(struct store *s, const char *why, char *err,
    size_t errlen)
{
	char aside[PATH_MAX + 64], reason[STORE_MSG_LEN];
	int refused = 0;

	snprintf(reason, sizeof reason, "%s", why);
	/* quick_check's answer spans lines ("*** in database main ***\n
	 * Page 337: ..."): the log gets it as one line. */
	for (char *p = reason; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r' || *p == '\t')
			*p = ' ';
	store_detach(s);
	if (store_move_aside(s->path, aside, sizeof aside) == -1) {
		store_errf(err, errlen, "%s is damaged (%s) and cannot be "
		    "moved aside: %s", s->path, reason, strerror(errno));
		return STORE_ECORRUPT;
	}
	if (store_attach(s, &refused, err, errlen) != ATTACH_OK) {
		store_detach(s);
		return STORE_EFAIL;
	}
	store_errf(err, errlen, "database %s was damaged (%s); "
	    "moved it to %s and started an empty one", s->path, reason,
	    aside);
	return STORE_OK;
}

/*
 * A WAL database is read through its wal-index, the -shm file, which a
 * start on a full disk cannot make (and a clean stop removed it).  Rather
 * than not start, and so answer no lookup at all until someone frees
 * space, the file is opened again in locking_mode=EXCLUSIVE, where SQLite
 * keeps the wal-index in its own memory: lookups are answered, records
 * fail as on any full disk and work once space is back.  The price, until
 * tcached restarts, is that no other process can open the database while
 * tcached runs (tcached's own lock keeps other daemons out anyway).
 */
static int store_attach_full(struct store *s, int *refused, char *err,
    size_t errlen)
{
	char first[STORE_MSG_LEN];
	int rc;

	snprintf(first, sizeof first, "%s", err);
	store_detach(s);
	s->exclusive = 1;
	if ((rc = store_attach(s, refused, err, errlen)) != ATTACH_OK) {
		/* The first reason is the one to tell. */
		store_errf(err, errlen, "%s", first);
		return rc == ATTACH_DAMAGED ? ATTACH_FAIL : rc;
	}
	store_errf(err, errlen, "%s; opened it with locking_mode=EXCLUSIVE "
	    "(the wal-index in memory, no other process can open the file "
	    "until tcached restarts): lookups are answered, records are "
	    "refused until space is freed", first);
	return ATTACH_OK;
}

int store_open(struct store **out, const struct store_config *cfg,
    char *err, size_t errlen)
{
	struct store *s;
	int rc, refused = 0;

	*out = NULL;
	if (errlen > 0)
		err[0] = '\0';
	if ((s = calloc(1, sizeof *s)) == NULL ||
	    (s->path = strdup(cfg->path)) == NULL) {
		free(s);
		store_errf(err, errlen, "out of memory");
		return STORE_ENOMEM;
	}
	s->ttl_ms = cfg->ttl_ms;
	s->max_entries = cfg->max_entries;
	s->sync_full = cfg->sync_full;
	/* SQLite counts every allocation under a global mutex for
	 * sqlite3_memory_used(), which nothing here reads: a tenth of what a
	 * lookup costs.  Refused once SQLite is in use (a second store in
	 * one process), where it is set already. */
	(void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
	(void)sqlite3_config(SQLITE_CONFIG_STMTJRNL_SPILL, STORE_STMTJRNL_BYTES);
	rc = store_attach(s, &refused, err, errlen);
	if (rc == ATTACH_FAIL && s->no_space && refused == 0)
		rc = store_attach_full(s, &refused, err, errlen);
	if (rc == ATTACH_DAMAGED)
		rc = store_reattach(s, err, err, errlen);
	else if (rc == ATTACH_FAIL)
		rc = refused != 0 ? refused : STORE_EFAIL;
	if (rc != STORE_OK) {
		store_detach(s);
		free(s->path);
		free(s);
		return rc;
	}
	*out = s;
	return STORE_OK;
}

int store_recover(struct store *s, char *err, size_t errlen)
{
	uint64_t keep[C__COUNT];
	struct store_day days[2];
	int rc;

	if (errlen > 0)
		err[0] = '\0';
	/* The counters describe the daemon's work, not the file's: they
	 * survive the file, and so do the days in memory. */
	memcpy(keep, s->counters, sizeof keep);
	memcpy(days, s->days, sizeof days);
	if ((rc = store_reattach(s, s->msg, err, errlen)) != STORE_OK)
		return rc;
	memcpy(s->counters, keep, sizeof keep);
	memcpy(s->days, days, sizeof days);
	s->days[0].dirty = s->days[0].used;
	s->days[1].dirty = s->days[1].used;
	s->dirty = 1;
	return STORE_OK;
}

/* Writes what the daemon has not yet committed (counters, or a whole open
 * transaction): nothing acknowledged depends on it, so a failure is only
 * rolled back. */
void store_close(struct store *s)
{
	if (s == NULL)
		return;
	store_end_read(s);
	if (s->db != NULL && s->in_txn)
		(void)store_touch_flush(s, SIZE_MAX);
	if (s->db != NULL && (s->in_txn || s->dirty || s->ntouched > 0) &&
	    (store_begin(s) != STORE_OK || store_commit(s) != STORE_OK))
		store_rollback(s);
	store_detach(s);
	free(s->sorted);
	free(s->path);
	free(s);
}

const char *store_error(const struct store *s)
{
	return s->msg;
}

uint64_t store_entries(const struct store *s)
{
	return s->entries;
}

/* --- transactions --- */

/* SQLite ended the transaction itself (or ROLLBACK did): the entries are
 * what they were at BEGIN, and the counters of writes too. */
static void store_txn_lost(struct store *s)
{
	if (s->in_txn)
		s->lost_serial = s->txn_serial;
	s->in_txn = s->in_savepoint = 0;
	s->entries = s->txn_entries;
	memcpy(&s->counters[C__FIRST_WRITE], &s->txn_counters[C__FIRST_WRITE],
	    (C__COUNT - C__FIRST_WRITE) * sizeof s->counters[0]);
	s->dirty = 1;
}

/* Hits in memory (store_touch) that one store_begin writes: ~2 ms. */
#define STORE_TOUCH_STEP 1024

/* Opens the write transaction and writes at most limit of the hits
 * counted in memory. */
static int store_begin_some(struct store *s, size_t limit)
{
	int rc;

	if (s->db == NULL) {
		store_errf(s->msg, sizeof s->msg, "no database open");
		return STORE_EFAIL;
	}
	if (s->in_txn)
		return STORE_OK;
	store_end_read(s);
	if ((rc = store_run(s, S_BEGIN)) != STORE_OK)
		return rc;
	s->in_txn = 1;
	s->txn_serial++;
	s->txn_entries = s->entries;
	memcpy(s->txn_counters, s->counters, sizeof s->counters);
	(void)store_touch_flush(s, limit);
	/* A hit that could not be written (a full disk) may have taken the
	 * transaction with it: the caller gets one all the same, without
	 * those hits, which are lost. */
	if (!s->in_txn)
		return store_begin_some(s, 0);
	s->txn_changes = sqlite3_total_changes64(s->db);
	s->txn_reset = 0;
	return STORE_OK;
}

/* With a bounded part of the hits waiting: STORE_TOUCH_STEP take about
 * 2 ms, a whole STORE_TOUCH_MAX the event loop could not afford at once. */
int store_begin(struct store *s)
{
	return store_begin_some(s, STORE_TOUCH_STEP);
}

int store_begin_touches(struct store *s, unsigned limit)
{
	return store_begin_some(s, limit);
}

void store_set_read_hook(struct store *s, void (*fn)(void *), void *arg)
{
	s->read_hook = fn;
	s->read_arg = arg;
}

/*
 * Without a transaction SQLite starts and ends one for every statement,
 * and each takes and drops its locks on the file and the wal-index (four
 * fcntl calls, more than the lookup itself).  So lookups outside a write
 * transaction open a read transaction that the caller ends at the end of
 * its turn (store_end_read, asked for by the read hook): one for a whole
 * batch, or several.  Without a hook (a caller that never ends it) each
 * statement has its own, as before.
 */
static int store_read_begin(struct store *s)
{
	int rc;

	if (s->in_txn || s->in_read || s->read_hook == NULL)
		return STORE_OK;
	if ((rc = store_run(s, S_BEGIN_READ)) != STORE_OK)
		return rc;
	s->in_read = 1;
	s->read_hook(s->read_arg);
	return STORE_OK;
}

void store_end_read(struct store *s)
{
	if (!s->in_read)
		return;
	s->in_read = 0;
	/* A read transaction commits nothing; an error (SQLite may have ended
	 * it already) leaves ROLLBACK to end whatever is left. */
	if (s->db != NULL && !sqlite3_get_autocommit(s->db) &&
	    store_run(s, S_COMMIT) != STORE_OK &&
	    !sqlite3_get_autocommit(s->db))
		(void)store_run(s, S_ROLLBACK);
}

size_t store_touches(const struct store *s)
{
	return s->ntouched;
}

int store_in_txn(const struct store *s)
{
	return s->in_txn;
}

uint64_t store_txn_serial(const struct store *s)
{
	return s->in_txn ? s->txn_serial : 0;
}

uint64_t store_lost_serial(const struct store *s)
{
	return s->lost_serial;
}

static int store_save_counters(struct store *s)
{
	sqlite3_stmt *st = s->st[S_COUNTER_SET];
	int rc;

	for (int i = 0; i < C__COUNT; i++) {
		if ((rc = sqlite3_bind_text(st, 1, store_counter_names[i], -1,
		    SQLITE_STATIC)) != SQLITE_OK ||
		    (rc = sqlite3_bind_int64(st, 2,
		    store_i64(s->counters[i]))) != SQLITE_OK) {
			rc = store_fail(s, rc, "saving the counters");
			store_done(st);
			return rc;
		}
		if ((rc = store_run(s, S_COUNTER_SET)) != STORE_OK)
			return rc;
	}
	return store_days_save(s);
}

int store_commit(struct store *s)
{
	int rc, saved = s->dirty;

	if (!s->in_txn)
		return STORE_OK;
	if (s->dirty && (rc = store_save_counters(s)) != STORE_OK)
		return rc;
	if ((rc = store_run(s, S_COMMIT)) != STORE_OK)
		return rc;
	s->in_txn = s->in_savepoint = 0;
	s->dirty = 0;
	if (saved)
		store_days_saved(s);
	return STORE_OK;
}

void store_rollback(struct store *s)
{
	if (!s->in_txn)
		return;
	/* A failed ROLLBACK leaves SQLite to roll back on close. */
	(void)store_run(s, S_ROLLBACK);
	store_txn_lost(s);
}

int store_savepoint(struct store *s)
{
	int rc;

	if ((rc = store_begin(s)) != STORE_OK)
		return rc;
	if (s->in_savepoint) {
		store_errf(s->msg, sizeof s->msg, "savepoint already open");
		return STORE_EFAIL;
	}
	/*
	 * A savepoint journals the first change of every page in a copy of
	 * its own (a temporary file past 64 KiB): a third of what a batch of
	 * records costs.  When the transaction holds nothing yet but hit
	 * counts (which decide no answer), the frame needs none: undoing it
	 * is rolling the whole transaction back.
	 */
	s->sp_whole = !s->txn_reset &&
	    sqlite3_total_changes64(s->db) == s->txn_changes;
	if (!s->sp_whole && (rc = store_run(s, S_SAVEPOINT)) != STORE_OK)
		return rc;
	s->in_savepoint = 1;
	s->sp_entries = s->entries;
	memcpy(s->sp_counters, s->counters, sizeof s->counters);
	return STORE_OK;
}

int store_release(struct store *s)
{
	int rc;

	if (!s->in_savepoint)
		return STORE_OK;
	if (!s->sp_whole && (rc = store_run(s, S_RELEASE)) != STORE_OK)
		return rc;
	s->in_savepoint = s->sp_whole = 0;
	return STORE_OK;
}

int store_rollback_savepoint(struct store *s)
{
	int rc;

	if (!s->in_savepoint) {
		store_errf(s->msg, sizeof s->msg, "no savepoint open");
		return STORE_EFAIL;
	}
	if (s->sp_whole) {
		/* Nobody's writes but the frame's (and hit counts, which
		 * decide nothing) are in the transaction: it is rolled back
		 * and begun again under the same number, on which no reply
		 * that says "stored" depends. */
		s->in_savepoint = s->sp_whole = 0;
		if ((rc = store_run(s, S_ROLLBACK)) != STORE_OK ||
		    (rc = store_run(s, S_BEGIN)) != STORE_OK) {
			if (!sqlite3_get_autocommit(s->db))
				(void)store_run(s, S_ROLLBACK);
			store_txn_lost(s);
			return rc;
		}
		s->txn_changes = sqlite3_total_changes64(s->db);
	} else if ((rc = store_run(s, S_ROLLBACK_TO)) != STORE_OK ||
	    (rc = store_run(s, S_RELEASE)) != STORE_OK)
		return rc;
	s->in_savepoint = 0;
	s->entries = s->sp_entries;
	memcpy(&s->counters[C__FIRST_WRITE], &s->sp_counters[C__FIRST_WRITE],
	    (C__COUNT - C__FIRST_WRITE) * sizeof s->counters[0]);
	return STORE_OK;
}

/* --- reading rows --- */

static void store_digest(sqlite3_stmt *st, int col, uint8_t *out)
{
	const void *b = sqlite3_column_blob(st, col);
	int n = sqlite3_column_bytes(st, col);

	memset(out, 0, TC_DIGEST_BYTES);
	if (b != NULL && n > 0)
		memcpy(out, b, n < TC_DIGEST_BYTES ? (size_t)n :
		    TC_DIGEST_BYTES);
}

static char *store_text(sqlite3_stmt *st, int col)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	return strdup(t != NULL ? (const char *)t : "");
}

/* Reads the inputs of an entry (kind < 0: all kinds) into a malloc'd
 * array; at most TC_MAX_INPUTS, which is all a record may carry. */
static int store_inputs(struct store *s, int64_t id, int kind,
    tc_input **out, size_t *n)
{
	enum store_stmt sid = kind < 0 ? S_INPUTS_ALL : S_INPUTS_KIND;
	sqlite3_stmt *st = s->st[sid];
	tc_input *in = NULL, *grown;
	size_t cap = 0, len = 0;
	int rc;

	*out = NULL;
	*n = 0;
	if ((rc = sqlite3_bind_int64(st, 1, id)) != SQLITE_OK ||
	    (kind >= 0 && (rc = sqlite3_bind_int(st, 2, kind)) != SQLITE_OK))
		goto fail;
	while (len < TC_MAX_INPUTS && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (len == cap) {
			cap = cap ? cap * 2 : 8;
			if ((grown = realloc(in, cap * sizeof *in)) == NULL)
				goto nomem;
			in = grown;
		}
		in[len].kind = (uint8_t)sqlite3_column_int(st, 0);
		store_digest(st, 2, in[len].digest);
		if ((in[len].path = store_text(st, 1)) == NULL)
			goto nomem;
		len++;
	}
	if (len < TC_MAX_INPUTS && rc != SQLITE_DONE)
		goto fail;
	store_done(st);
	*out = in;
	*n = len;
	return STORE_OK;
nomem:
	rc = SQLITE_NOMEM;
fail:
	rc = store_fail(s, rc, "reading inputs");
	store_done(st);
	proto_inputs_free(in, len);
	return rc;
}

/* Fills e from a row of STORE_ENTRY_COLS. */
static int store_row_entry(sqlite3_stmt *st, tc_entry *e)
{
	memset(e, 0, sizeof *e);
	e->id = store_u64(st, 0);
	store_digest(st, 1, e->key);
	e->outcome = (uint8_t)sqlite3_column_int(st, 5);
	e->flaky = sqlite3_column_int(st, 6) != 0;
	e->duration_us = store_u64(st, 7);
	e->created_ms = store_u64(st, 8);
	e->expires_ms = store_u64(st, 9);
	e->hits = store_u64(st, 10);
	e->last_used_ms = store_u64(st, 11);
	e->project = store_text(st, 2);
	e->test = store_text(st, 3);
	e->root = store_text(st, 4);
	e->message = store_text(st, 12);
	if (e->project == NULL || e->test == NULL || e->root == NULL ||
	    e->message == NULL) {
		proto_entry_clear(e);
		return -1;
	}
	return 0;
}

/* --- lookup and record --- */

static void store_count_lookup(struct store *s, uint64_t now_ms, int hit,
    uint64_t dur)
{
	if (hit) {
		s->counters[C_HITS]++;
		s->counters[C_TIME_SAVED] += dur;
	} else
		s->counters[C_MISSES]++;
	store_day_count(s, now_ms, hit, dur);
	s->dirty = 1;
}

/* A failure other than damage does not spoil the answer: lookups go on
 * when the disk is full. */
static int store_hit_write(struct store *s, int64_t id, uint64_t ms,
    uint64_t n)
{
	sqlite3_stmt *st = s->st[S_HIT];
	int rc;

	if ((rc = sqlite3_bind_int64(st, 1, id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 2, store_i64(ms))) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 3, store_i64(n))) != SQLITE_OK) {
		rc = store_fail(s, rc, "counting a hit");
		store_done(st);
	} else
		rc = store_run(s, S_HIT);
	return rc == STORE_ECORRUPT ? rc : STORE_OK;
}

static int store_touched_cmp(const void *a, const void *b)
{
	const struct store_touched *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

/* The first of the hits in memory with id (they are sorted), or ntouched. */
static size_t store_touch_find(struct store *s, int64_t id)
{
	size_t lo = 0, hi = s->ntouched, mid;

	if (s->ntouched > 1 && !s->touched_sorted)
		qsort(s->touched, s->ntouched, sizeof s->touched[0],
		    store_touched_cmp);
	s->touched_sorted = 1;
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (s->touched[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/*
 * Forgets the hits in memory of entry id, which a record is resetting (a
 * dead entry recorded again), or which are a removed entry's whose id a
 * new one takes: they must not be added to it later.
 */
static void store_touch_drop(struct store *s, int64_t id)
{
	if (s->ntouched == 0 || id > s->touched_max)
		return;
	for (size_t i = store_touch_find(s, id);
	    i < s->ntouched && s->touched[i].id == id; i++)
		s->touched[i].n = 0;
}

/* Entry e as a reader must see it: with its hits still in memory. */
static void store_touch_merge(struct store *s, tc_entry *e)
{
	int64_t id = (int64_t)e->id;

	if (s->ntouched == 0 || id > s->touched_max)
		return;
	for (size_t i = store_touch_find(s, id);
	    i < s->ntouched && s->touched[i].id == id; i++) {
		if (s->touched[i].n == 0)
			continue;
		e->hits += s->touched[i].n;
		if (s->touched[i].ms > e->last_used_ms)
			e->last_used_ms = s->touched[i].ms;
	}
}

/*
 * Writes at most limit of the hits counted in memory, the lowest ids
 * first: in the order of the ids they are one pass along the table and
 * along the last_used index (entries made together are used together),
 * where the order of the lookups is a random walk over both, several
 * times the cost.  Repeated hits of an entry are one write.  The rest
 * stay, sorted, for the next call.
 */
static int store_touch_flush(struct store *s, size_t limit)
{
	struct store_touched *t = s->touched;
	size_t n = s->ntouched, i, j;
	uint64_t hits, ms;
	int rc = STORE_OK;

	if (n > 1 && !s->touched_sorted)
		qsort(t, n, sizeof *t, store_touched_cmp);
	s->touched_sorted = 1;
	for (i = 0; i < n && i < limit && rc == STORE_OK && s->in_txn; i = j) {
		hits = ms = 0;
		for (j = i; j < n && t[j].id == t[i].id; j++) {
			hits += t[j].n;
			ms = t[j].n > 0 && t[j].ms > ms ? t[j].ms : ms;
		}
		if (hits > 0)		/* 0: dropped (store_touch_drop) */
			rc = store_hit_write(s, t[i].id, ms, hits);
	}
	/* Written or not (a failure other than damage loses them, as the
	 * transaction's rollback would), they leave the list; after one that
	 * took the transaction with it (a full disk) all of them do, or each
	 * later transaction would begin by failing the same way. */
	if (!s->in_txn)
		i = n;
	memmove(t, t + i, (n - i) * sizeof *t);
	s->ntouched = n - i;
	if (s->ntouched == 0)
		s->touched_max = 0;
	return rc;
}

/*
 * A hit's count and last use ride on the open transaction.  Without one
 * they wait in memory, to be written when the daemon is idle
 * (store_begin_touches), or STORE_TOUCH_STEP at a time by the next
 * transactions (a record's, the sweep's within SERVER_SWEEP_MS, one the
 * caller opens when store_touches nears STORE_TOUCH_MAX), in the order
 * of their ids (store_touch_flush): a transaction of their own would put
 * a WAL write and its locks in every lookup's round trip, and written in
 * the lookup's own reply they would double what it costs.  A crash loses
 * at most those counts, which decide no answer; readers see them
 * (store_touch_merge), a record that resets them drops them
 * (store_touch_drop).  Repeated hits of one entry in a row take one slot.
 */
static int store_touch(struct store *s, int64_t id, uint64_t now_ms)
{
	if (s->in_txn)
		return store_hit_write(s, id, now_ms, 1);
	if (s->ntouched > 0 && s->touched[s->ntouched - 1].id == id) {
		s->touched[s->ntouched - 1].n++;
		s->touched[s->ntouched - 1].ms = now_ms;
	} else if (s->ntouched < STORE_TOUCH_MAX) {
		s->touched[s->ntouched].id = id;
		s->touched[s->ntouched].ms = now_ms;
		s->touched[s->ntouched].n = 1;
		s->ntouched++;
		s->touched_sorted = s->ntouched == 1;
		if (id > s->touched_max)
			s->touched_max = id;
	}
	return STORE_OK;
}

/* Adds the discovered input of the row st is on (S_LOOKUP) to res. */
static int store_lookup_input(sqlite3_stmt *st, tc_result *res,
    size_t *cap)
{
	const unsigned char *t = sqlite3_column_text(st, 6);
	size_t len = (size_t)sqlite3_column_bytes(st, 6);
	tc_input *in;

	if (res->ninputs == *cap) {
		*cap = *cap ? *cap * 2 : 4;
		if ((in = realloc(res->inputs, *cap * sizeof *in)) == NULL)
			return -1;
		res->inputs = in;
	}
	in = &res->inputs[res->ninputs];
	in->kind = TC_INPUT_FOUND;
	store_digest(st, 7, in->digest);
	if ((in->path = malloc(len + 1)) == NULL)
		return -1;
	if (len > 0)
		memcpy(in->path, t, len);
	in->path[len] = '\0';
	res->ninputs++;
	return 0;
}

int store_lookup(struct store *s, const uint8_t key[TC_DIGEST_BYTES],
    uint64_t now_ms, tc_result *res)
{
	sqlite3_stmt *st = s->st[S_LOOKUP];
	size_t cap = 0;
	int64_t id;
	int rc, hit;

	memset(res, 0, sizeof *res);
	if ((rc = store_read_begin(s)) != STORE_OK)
		return rc;
	if ((rc = sqlite3_bind_blob(st, 1, key, TC_DIGEST_BYTES,
	    SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 2, store_i64(now_ms))) != SQLITE_OK)
		goto fail;
	if ((rc = sqlite3_step(st)) == SQLITE_DONE) {
		store_done(st);
		store_count_lookup(s, now_ms, 0, 0);
		return STORE_OK;
	}
	if (rc != SQLITE_ROW)
		goto fail;
	id = sqlite3_column_int64(st, 0);
	res->outcome = (uint8_t)sqlite3_column_int(st, 1);
	res->flaky = sqlite3_column_int(st, 2) != 0;
	res->duration_us = store_u64(st, 3);
	res->created_ms = store_u64(st, 4);
	res->expires_ms = store_u64(st, 5);
	/* A row an input, or one with NULLs for an entry with none; at most
	 * TC_MAX_INPUTS, which is all a record may carry. */
	while (rc == SQLITE_ROW && sqlite3_column_type(st, 6) != SQLITE_NULL &&
	    res->ninputs < TC_MAX_INPUTS) {
		if (store_lookup_input(st, res, &cap) == -1) {
			rc = SQLITE_NOMEM;
			goto fail;
		}
		rc = sqlite3_step(st);
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		goto fail;
	store_done(st);
	res->found = 1;
	hit = res->outcome == TC_PASS && !res->flaky;
	store_count_lookup(s, now_ms, hit, res->duration_us);
	if (hit && (rc = store_touch(s, id, now_ms)) != STORE_OK) {
		proto_result_clear(res);
		memset(res, 0, sizeof *res);
		return rc;
	}
	return STORE_OK;
fail:
	rc = store_fail(s, rc, "lookup");
	store_done(st);
	proto_result_clear(res);
	memset(res, 0, sizeof *res);
	return rc;
}

/* Where an input lives on disk, for invalidation by path: root/path for a
 * relative file, the path itself for an absolute one, NULL for env. */
static const char *store_abspath(struct store *s, const char *root,
    const tc_input *in)
{
	size_t rl;
	int n;

	if (in->kind == TC_INPUT_ENV)
		return NULL;
	if (in->path[0] == '/')
		return in->path;
	rl = strlen(root);
	while (rl > 0 && root[rl - 1] == '/')
		rl--;
	n = snprintf(s->abspath, sizeof s->abspath, "%.*s/%s", (int)rl, root,
	    in->path);
	if (n < 0 || (size_t)n >= sizeof s->abspath)
		return "";
	return s->abspath;
}

static int store_bind_input(struct store *s, sqlite3_stmt *st, int64_t id,
    const char *root, const tc_input *in)
{
	const char *abs;
	int rc;

	if (in->path == NULL) {
		store_errf(s->msg, sizeof s->msg, "input without a path");
		return STORE_EFAIL;
	}
	if ((abs = store_abspath(s, root, in)) != NULL && abs[0] == '\0') {
		store_errf(s->msg, sizeof s->msg, "input path too long");
		return STORE_EFAIL;
	}
	if ((rc = sqlite3_bind_int64(st, 1, id)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int(st, 2, in->kind)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(st, 3, in->path, -1, SQLITE_STATIC)) !=
	    SQLITE_OK ||
	    (rc = abs != NULL ? sqlite3_bind_text(st, 4, abs, -1,
	    SQLITE_STATIC) : sqlite3_bind_null(st, 4)) != SQLITE_OK ||
	    (rc = sqlite3_bind_blob(st, 5, in->digest, TC_DIGEST_BYTES,
	    SQLITE_STATIC)) != SQLITE_OK)
		return store_fail(s, rc, "binding an input");
	return STORE_OK;
}

/* Adds the entry's own inputs: those it discovered (its set holds the
 * others).  Duplicates: the last one wins. */
static int store_add_inputs(struct store *s, int64_t id, const tc_record *rec)
{
	sqlite3_stmt *st = s->st[S_ADD_INPUT];
	const char *root = rec->root != NULL ? rec->root : "";
	int rc;

	for (uint32_t i = 0; i < rec->ninputs; i++) {
		if (rec->inputs[i].kind != TC_INPUT_FOUND)
			continue;
		if ((rc = store_bind_input(s, st, id, root,
		    &rec->inputs[i])) != STORE_OK) {
			store_done(st);
			return rc;
		}
		if ((rc = store_run(s, S_ADD_INPUT)) != STORE_OK)
			return rc;
	}
	return STORE_OK;
}

/* --- sets of declared inputs --- */

/* By kind, then path as SQLite's BINARY collation orders them (strcmp
 * compares unsigned bytes too), then by place in the record. */
static int store_input_cmp(const void *a, const void *b)
{
	const tc_input *x = *(const tc_input *const *)a;
	const tc_input *y = *(const tc_input *const *)b;
	int c;

	if (x->kind != y->kind)
		return x->kind < y->kind ? -1 : 1;
	if ((c = strcmp(x->path, y->path)) != 0)
		return c;
	return x < y ? -1 : x > y;
}

static int store_sorted_grow(struct store *s, size_t n)
{
	const tc_input **p;

	if (n <= s->sorted_cap)
		return STORE_OK;
	if ((p = realloc(s->sorted, n * sizeof *p)) == NULL) {
		store_errf(s->msg, sizeof s->msg, "out of memory");
		return STORE_ENOMEM;
	}
	s->sorted = p;
	s->sorted_cap = n;
	return STORE_OK;
}

/*
 * Checks every input of rec, and puts its declared ones (all but the
 * discovered) in s->sorted by store_input_cmp, keeping only the last of
 * duplicates as the INSERT OR REPLACE of one row per input did: the
 * client's order and repeats do not make another set.
 */
static int store_declared(struct store *s, const tc_record *rec, size_t *n)
{
	const char *root = rec->root != NULL ? rec->root : "";
	const char *abs;
	const tc_input *in;
	size_t len = 0, kept = 0;
	int rc;

	*n = 0;
	if ((rc = store_sorted_grow(s, rec->ninputs)) != STORE_OK)
		return rc;
	for (uint32_t i = 0; i < rec->ninputs; i++) {
		in = &rec->inputs[i];
		if (in->path == NULL) {
			store_errf(s->msg, sizeof s->msg, "input without a path");
			return STORE_EFAIL;
		}
		if ((abs = store_abspath(s, root, in)) != NULL &&
		    abs[0] == '\0') {
			store_errf(s->msg, sizeof s->msg, "input path too long");
			return STORE_EFAIL;
		}
		if (in->kind != TC_INPUT_FOUND)
			s->sorted[len++] = in;
	}
	if (len > 1)
		qsort(s->sorted, len, sizeof *s->sorted, store_input_cmp);
	for (size_t i = 0; i < len; i++) {
		if (i + 1 < len && s->sorted[i]->kind ==
		    s->sorted[i + 1]->kind && strcmp(s->sorted[i]->path,
		    s->sorted[i + 1]->path) == 0)
			continue;
		s->sorted[kept++] = s->sorted[i];
	}
	*n = kept;
	return STORE_OK;
}

static uint64_t store_fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	while (n-- > 0) {
		h ^= *b++;
		h *= STORE_FNV_PRIME;
	}
	return h;
}

/* The hash of a set: its rows as they would be stored, in order. */
static int64_t store_set_hash(struct store *s, const char *root, size_t n)
{
	const tc_input *in;
	const char *abs;
	uint64_t h = STORE_FNV_BASIS;
	unsigned char kind, has;

	for (size_t i = 0; i < n; i++) {
		in = s->sorted[i];
		kind = in->kind;
		abs = store_abspath(s, root, in);
		has = abs != NULL;
		h = store_fnv(h, &kind, 1);
		h = store_fnv(h, in->path, strlen(in->path) + 1);
		h = store_fnv(h, &has, 1);
		if (abs != NULL)
			h = store_fnv(h, abs, strlen(abs) + 1);
		h = store_fnv(h, in->digest, TC_DIGEST_BYTES);
	}
	return (int64_t)h;
}

/* 1 when column col holds the len bytes at p (text, or a blob). */
static int store_col_is(sqlite3_stmt *st, int col, const void *p, size_t len)
{
	const void *v = sqlite3_column_type(st, col) == SQLITE_BLOB ?
	    sqlite3_column_blob(st, col) : sqlite3_column_text(st, col);

	if ((size_t)sqlite3_column_bytes(st, col) != len)
		return 0;
	return len == 0 || (v != NULL && memcmp(v, p, len) == 0);
}

/* 1 when the row of S_SET_ROWS is in (with root). */
static int store_row_is(struct store *s, sqlite3_stmt *st, const char *root,
    const tc_input *in)
{
	const char *abs = store_abspath(s, root, in);

	if (sqlite3_column_int64(st, 0) != in->kind ||
	    sqlite3_column_type(st, 1) != SQLITE_TEXT ||
	    !store_col_is(st, 1, in->path, strlen(in->path)) ||
	    sqlite3_column_type(st, 3) != SQLITE_BLOB ||
	    !store_col_is(st, 3, in->digest, TC_DIGEST_BYTES))
		return 0;
	if (abs == NULL)
		return sqlite3_column_type(st, 2) == SQLITE_NULL;
	return sqlite3_column_type(st, 2) == SQLITE_TEXT &&
	    store_col_is(st, 2, abs, strlen(abs));
}

/* *equal: set id holds exactly the n inputs of s->sorted, which one
 * range read of its primary key tells. */
static int store_set_equal(struct store *s, int64_t id, const char *root,
    size_t n, int *equal)
{
	sqlite3_stmt *st = s->st[S_SET_ROWS];
	size_t i = 0;
	int rc;

	*equal = 0;
	if ((rc = sqlite3_bind_int64(st, 1, id)) != SQLITE_OK)
		goto fail;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (i == n || !store_row_is(s, st, root, s->sorted[i]))
			break;
		i++;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		goto fail;
	*equal = rc == SQLITE_DONE && i == n;
	store_done(st);
	return STORE_OK;
fail:
	rc = store_fail(s, rc, "reading a set");
	store_done(st);
	return rc;
}

/* The ids of at most STORE_SET_CANDIDATES sets with this hash. */
static int store_set_find(struct store *s, int64_t hash, int64_t *ids,
    size_t *n)
{
	sqlite3_stmt *st = s->st[S_SET_FIND];
	int rc;

	*n = 0;
	if ((rc = sqlite3_bind_int64(st, 1, hash)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int(st, 2, STORE_SET_CANDIDATES)) != SQLITE_OK)
		goto fail;
	while (*n < STORE_SET_CANDIDATES &&
	    (rc = sqlite3_step(st)) == SQLITE_ROW)
		ids[(*n)++] = sqlite3_column_int64(st, 0);
	if (*n < STORE_SET_CANDIDATES && rc != SQLITE_DONE)
		goto fail;
	store_done(st);
	return STORE_OK;
fail:
	rc = store_fail(s, rc, "finding a set");
	store_done(st);
	return rc;
}

/* A new set of the n inputs of s->sorted; *id is its id. */
static int store_set_new(struct store *s, int64_t hash, const char *root,
    size_t n, int64_t *id)
{
	sqlite3_stmt *st = s->st[S_SET_ADD];
	int rc;

	if ((rc = sqlite3_bind_int64(s->st[S_SET_NEW], 1, hash)) !=
	    SQLITE_OK) {
		rc = store_fail(s, rc, "binding a hash");
		store_done(s->st[S_SET_NEW]);
		return rc;
	}
	if ((rc = store_run(s, S_SET_NEW)) != STORE_OK)
		return rc;
	*id = sqlite3_last_insert_rowid(s->db);
	for (size_t i = 0; i < n; i++) {
		if ((rc = store_bind_input(s, st, *id, root, s->sorted[i])) !=
		    STORE_OK) {
			store_done(st);
			return rc;
		}
		if ((rc = store_run(s, S_SET_ADD)) != STORE_OK)
			return rc;
	}
	return STORE_OK;
}

/* The set of rec's declared inputs, an equal one reused or a new one;
 * *id is 0 when it declares none. */
static int store_set_get(struct store *s, const tc_record *rec, int64_t *id)
{
	const char *root = rec->root != NULL ? rec->root : "";
	int64_t ids[STORE_SET_CANDIDATES], hash;
	size_t n, ncand;
	int rc, equal;

	*id = 0;
	if ((rc = store_declared(s, rec, &n)) != STORE_OK || n == 0)
		return rc;
	hash = store_set_hash(s, root, n);
	if ((rc = store_set_find(s, hash, ids, &ncand)) != STORE_OK)
		return rc;
	for (size_t i = 0; i < ncand; i++) {
		if ((rc = store_set_equal(s, ids[i], root, n, &equal)) !=
		    STORE_OK)
			return rc;
		if (equal) {
			*id = ids[i];
			return STORE_OK;
		}
	}
	return store_set_new(s, hash, root, n, id);
}

/* A message is a summary: cut at TC_MAX_MESSAGE bytes, not inside a UTF-8
 * sequence. */
static int store_message_len(const char *m)
{
	size_t n = strnlen(m, TC_MAX_MESSAGE + 1);

	if (n > TC_MAX_MESSAGE) {
		n = TC_MAX_MESSAGE;
		while (n > 0 && ((unsigned char)m[n] & 0xc0) == 0x80)
			n--;
	}
	return (int)n;
}

/* Binds ?2..?10 and ?12, shared by S_INSERT and S_UPDATE. */
static int store_bind_record(struct store *s, sqlite3_stmt *st,
    const tc_record *rec, int flaky, uint64_t now_ms, int64_t setid)
{
	const char *msg = rec->message != NULL ? rec->message : "";
	uint64_t ttl = rec->ttl_ms != 0 ? rec->ttl_ms : s->ttl_ms;
	uint64_t now = (uint64_t)store_i64(now_ms);
	uint64_t expires = ttl > INT64_MAX - now ? INT64_MAX : now + ttl;
	int rc;

	if ((rc = sqlite3_bind_text(st, 2, rec->project != NULL ?
	    rec->project : "", -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(st, 3, rec->test != NULL ? rec->test : "",
	    -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_text(st, 4, rec->root != NULL ? rec->root : "",
	    -1, SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int(st, 5, rec->outcome)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int(st, 6, flaky)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 7, store_i64(rec->duration_us))) !=
	    SQLITE_OK ||
	    (rc = sqlite3_bind_text(st, 8, msg, store_message_len(msg),
	    SQLITE_STATIC)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 9, (int64_t)now)) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 10, (int64_t)expires)) != SQLITE_OK ||
	    (rc = setid != 0 ? sqlite3_bind_int64(st, 12, setid) :
	    sqlite3_bind_null(st, 12)) != SQLITE_OK)
		return store_fail(s, rc, "binding a record");
	return STORE_OK;
}

/* The entry under rec->key, if any: its id, and how the new record sees
 * it (*live: unexpired; *flaky: the flaky mark the entry keeps). */
static int store_find(struct store *s, const tc_record *rec, uint64_t now_ms,
    int64_t *id, int *live, int *flaky, int *conflict)
{
	sqlite3_stmt *st = s->st[S_FIND];
	int rc;

	*id = 0;
	*live = *flaky = *conflict = 0;
	if ((rc = sqlite3_bind_blob(st, 1, rec->key, TC_DIGEST_BYTES,
	    SQLITE_STATIC)) != SQLITE_OK)
		goto fail;
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*id = sqlite3_column_int64(st, 0);
		*live = sqlite3_column_int64(st, 3) > store_i64(now_ms);
		if (*live) {
			*conflict = sqlite3_column_int(st, 1) != rec->outcome;
			*flaky = sqlite3_column_int(st, 2) != 0;
		}
		rc = SQLITE_DONE;
	}
	if (rc != SQLITE_DONE)
		goto fail;
	store_done(st);
	return STORE_OK;
fail:
	rc = store_fail(s, rc, "finding a key");
	store_done(st);
	return rc;
}

static int store_path_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const tc_input *)elem)->path);
}

/*
 * *same: the discovered inputs of rec are those entry id holds, digests
 * and all.  Two outcomes under one key make a test flaky only when they
 * were seen with the same inputs; a discovered file that changed between
 * them explains the difference (the key does not cover it).
 */
static int store_same_found(struct store *s, int64_t id, const tc_record *rec,
    int *same)
{
	tc_input *in, *hit;
	size_t n, mine = 0;
	int rc;

	*same = 0;
	if ((rc = store_inputs(s, id, TC_INPUT_FOUND, &in, &n)) != STORE_OK)
		return rc;
	*same = 1;
	for (uint32_t i = 0; i < rec->ninputs && *same; i++) {
		if (rec->inputs[i].kind != TC_INPUT_FOUND)
			continue;
		mine++;
		hit = bsearch(rec->inputs[i].path, in, n, sizeof *in,
		    store_path_cmp);
		*same = hit != NULL && memcmp(hit->digest,
		    rec->inputs[i].digest, TC_DIGEST_BYTES) == 0;
	}
	*same = *same && mine == n;
	proto_inputs_free(in, n);
	return STORE_OK;
}

/* Inserts or replaces the entry row, which refers to set setid (0: none);
 * *id is its id.  A replaced set is released by a trigger. */
static int store_put_entry(struct store *s, const tc_record *rec,
    uint64_t now_ms, int64_t *id, int live, int flaky, int64_t setid)
{
	enum store_stmt sid = *id != 0 ? S_UPDATE : S_INSERT;
	sqlite3_stmt *st = s->st[sid];
	int rc;

	if ((rc = store_bind_record(s, st, rec, flaky, now_ms, setid)) !=
	    STORE_OK)
		goto out;
	if (sid == S_UPDATE)
		rc = sqlite3_bind_int64(st, 1, *id);
	else
		rc = sqlite3_bind_blob(st, 1, rec->key, TC_DIGEST_BYTES,
		    SQLITE_STATIC);
	if (rc == SQLITE_OK && sid == S_UPDATE)
		rc = sqlite3_bind_int(st, 11, !live);
	if (rc != SQLITE_OK) {
		rc = store_fail(s, rc, "binding a record");
		goto out;
	}
	if ((rc = store_run(s, sid)) != STORE_OK)
		return rc;
	if (sid == S_INSERT) {
		*id = sqlite3_last_insert_rowid(s->db);
		s->entries++;
	}
	return STORE_OK;
out:
	store_done(st);
	return rc;
}

int store_record(struct store *s, const tc_record *rec, uint64_t now_ms,
    int *flaky)
{
	sqlite3_stmt *del = s->st[S_DEL_INPUTS];
	int64_t id, setid;
	int rc, live, mark, conflict, same, fresh;

	*flaky = 0;
	if (!s->in_txn) {
		store_errf(s->msg, sizeof s->msg, "record outside a transaction");
		return STORE_EFAIL;
	}
	if (rec->ninputs > TC_MAX_INPUTS ||
	    (rec->ninputs > 0 && rec->inputs == NULL)) {
		store_errf(s->msg, sizeof s->msg, "bad input list (%u inputs)",
		    (unsigned)rec->ninputs);
		return STORE_EFAIL;
	}
	if ((rc = store_find(s, rec, now_ms, &id, &live, &mark, &conflict)) !=
	    STORE_OK)
		return rc;
	/* A dead entry recorded again starts from no hits. */
	if (id != 0 && !live)
		store_touch_drop(s, id);
	if (conflict) {
		if ((rc = store_same_found(s, id, rec, &same)) != STORE_OK)
			return rc;
		if (!same)
			conflict = mark = 0;	/* other inputs: a new state */
		else if (!mark) {
			s->counters[C_FLAKY_MARKED]++;
			s->dirty = 1;
		}
		mark = mark || conflict;
	}
	if ((rc = store_set_get(s, rec, &setid)) != STORE_OK)
		return rc;
	if (id != 0) {
		if ((rc = sqlite3_bind_int64(del, 1, id)) != SQLITE_OK) {
			rc = store_fail(s, rc, "binding an id");
			store_done(del);
			return rc;
		}
		if ((rc = store_run(s, S_DEL_INPUTS)) != STORE_OK)
			return rc;
	}
	fresh = id == 0;
	if ((rc = store_put_entry(s, rec, now_ms, &id, live, mark, setid)) !=
	    STORE_OK || (rc = store_add_inputs(s, id, rec)) != STORE_OK)
		return rc;
	if (fresh)
		store_touch_drop(s, id);	/* a removed entry's, of that id */
	s->counters[C_RECORDS]++;
	s->dirty = 1;
	*flaky = conflict;
	return STORE_OK;
}

/* --- invalidation, expiry, eviction --- */

/* Turns a path into the bounds of STORE_UNDER: a trailing '/' is dropped,
 * so "/" becomes "" and matches every absolute path. */
static int store_set_range(struct store *s, const char *path)
{
	struct store_range *r = &s->range;
	size_t n = path != NULL ? strnlen(path, TC_MAX_PATH + 1) : 0;

	if (n > TC_MAX_PATH) {
		store_errf(s->msg, sizeof s->msg, "path over %u bytes",
		    TC_MAX_PATH);
		return STORE_EFAIL;
	}
	while (n > 0 && path[n - 1] == '/')
		n--;
	memcpy(r->exact, path != NULL ? path : "", n);
	r->exact[n] = '\0';
	memcpy(r->lo, r->exact, n);
	memcpy(r->hi, r->exact, n);
	memcpy(r->lo + n, "/", 2);
	memcpy(r->hi + n, "0", 2);
	return STORE_OK;
}

static int store_bind_range(struct store *s, sqlite3_stmt *st, int first)
{
	struct store_range *r = &s->range;
	int rc;

	if ((rc = sqlite3_bind_text(st, first, r->exact, -1, SQLITE_STATIC)) !=
	    SQLITE_OK || (rc = sqlite3_bind_text(st, first + 1, r->lo, -1,
	    SQLITE_STATIC)) != SQLITE_OK || (rc = sqlite3_bind_text(st,
	    first + 2, r->hi, -1, SQLITE_STATIC)) != SQLITE_OK)
		return store_fail(s, rc, "binding a path");
	return STORE_OK;
}

/* Binds a filter's argument to the count (step == 0) or the delete
 * statement of its mode; *id says which statement. */
static int store_bind_filter(struct store *s, const struct store_filter *f,
    int step, enum store_stmt *id)
{
	static const enum store_stmt count[] = { S__COUNT, S_COUNT_PATH,
	    S_COUNT_TEST, S_COUNT_KEY, S_ENTRIES };
	static const enum store_stmt del[] = { S__COUNT, S_DEL_PATH,
	    S_DEL_TEST, S_DEL_KEY, S_DEL_ALL };
	sqlite3_stmt *st;
	int rc = SQLITE_OK;

	if (f->mode < TC_INV_PATH || f->mode > TC_INV_ALL) {
		store_errf(s->msg, sizeof s->msg, "unknown invalidate mode %d",
		    f->mode);
		return STORE_EFAIL;
	}
	*id = step ? del[f->mode] : count[f->mode];
	st = s->st[*id];
	switch (f->mode) {
	case TC_INV_PATH:
		if ((rc = store_set_range(s, f->arg)) != STORE_OK)
			return rc;
		return store_bind_range(s, st, 1);
	case TC_INV_TEST:
		rc = sqlite3_bind_text(st, 1, f->arg != NULL ? f->arg : "", -1,
		    SQLITE_STATIC);
		break;
	case TC_INV_KEY:
		rc = sqlite3_bind_blob(st, 1, f->key, TC_DIGEST_BYTES,
		    SQLITE_STATIC);
		break;
	}
	if (rc != SQLITE_OK)
		return store_fail(s, rc, "binding a filter");
	return STORE_OK;
}

int store_invalidate_count(struct store *s, const struct store_filter *f,
    uint64_t *count)
{
	enum store_stmt id = S__COUNT;
	int rc;

	*count = 0;
	if (f->mode == TC_INV_ALL) {
		*count = s->entries;
		return STORE_OK;
	}
	if ((rc = store_bind_filter(s, f, 0, &id)) != STORE_OK) {
		if (id != S__COUNT)
			store_done(s->st[id]);
		return rc;
	}
	return store_count(s, id, count);
}

/* Binds the LIMIT of a step statement, the parameter after the others. */
static int store_bind_limit(struct store *s, enum store_stmt id, int col,
    uint64_t limit)
{
	int rc;

	if ((rc = sqlite3_bind_int64(s->st[id], col, store_i64(limit))) !=
	    SQLITE_OK) {
		rc = store_fail(s, rc, "binding a limit");
		store_done(s->st[id]);
		return rc;
	}
	return STORE_OK;
}

/* Invalidation by path, after the entries whose own inputs matched: those
 * whose set has a row in the range store_bind_filter set, at most limit,
 * added to *removed. */
static int store_invalidate_sets(struct store *s, uint64_t limit,
    uint64_t *removed)
{
	uint64_t more;
	int rc;

	if ((rc = store_bind_range(s, s->st[S_DEL_PATH_SET], 1)) != STORE_OK) {
		store_done(s->st[S_DEL_PATH_SET]);
		return rc;
	}
	if ((rc = store_bind_limit(s, S_DEL_PATH_SET, 4, limit)) != STORE_OK ||
	    (rc = store_delete(s, S_DEL_PATH_SET, C_INVALIDATED, &more)) !=
	    STORE_OK)
		return rc;
	*removed += more;
	return STORE_OK;
}

int store_invalidate_step(struct store *s, const struct store_filter *f,
    unsigned limit, uint64_t *removed)
{
	static const int limit_col[] = { 0, 4, 2, 0, 1 };
	enum store_stmt id = S__COUNT;
	int rc;

	*removed = 0;
	if (!s->in_txn) {
		store_errf(s->msg, sizeof s->msg, "invalidate outside a "
		    "transaction");
		return STORE_EFAIL;
	}
	if ((rc = store_bind_filter(s, f, 1, &id)) != STORE_OK) {
		if (id != S__COUNT)
			store_done(s->st[id]);
		return rc;
	}
	if (limit == 0) {
		store_done(s->st[id]);
		return STORE_OK;
	}
	if (limit_col[f->mode] != 0 && (rc = store_bind_limit(s, id,
	    limit_col[f->mode], limit)) != STORE_OK)
		return rc;
	if ((rc = store_delete(s, id, C_INVALIDATED, removed)) != STORE_OK ||
	    f->mode != TC_INV_PATH || *removed >= limit)
		return rc;
	return store_invalidate_sets(s, limit - *removed, removed);
}

int store_sweep_step(struct store *s, uint64_t now_ms, unsigned limit,
    uint64_t *removed)
{
	int rc;

	*removed = 0;
	if (!s->in_txn) {
		store_errf(s->msg, sizeof s->msg, "sweep outside a transaction");
		return STORE_EFAIL;
	}
	if (limit == 0)
		return STORE_OK;
	if ((rc = sqlite3_bind_int64(s->st[S_SWEEP], 1, store_i64(now_ms))) !=
	    SQLITE_OK) {
		rc = store_fail(s, rc, "binding a time");
		store_done(s->st[S_SWEEP]);
		return rc;
	}
	if ((rc = store_bind_limit(s, S_SWEEP, 2, limit)) != STORE_OK)
		return rc;
	return store_delete(s, S_SWEEP, C_EXPIRED, removed);
}

int store_evict_step(struct store *s, unsigned limit, uint64_t *removed)
{
	uint64_t excess;
	int rc;

	*removed = 0;
	if (s->max_entries == 0 || s->entries <= s->max_entries || limit == 0)
		return STORE_OK;
	if (!s->in_txn) {
		store_errf(s->msg, sizeof s->msg, "evict outside a transaction");
		return STORE_EFAIL;
	}
	(void)store_touch_flush(s, SIZE_MAX);	/* recent use counts */
	if (!s->in_txn)		/* lost to a hit that could not be written */
		return STORE_EFAIL;
	excess = s->entries - s->max_entries;
	if ((rc = store_bind_limit(s, S_EVICT, 1, excess < limit ? excess :
	    limit)) != STORE_OK)
		return rc;
	return store_delete(s, S_EVICT, C_EVICTED, removed);
}

/* --- list, explain, stats --- */

static int store_bind_list(struct store *s, const char *test_glob,
    const char *path, uint64_t after, uint32_t limit)
{
	sqlite3_stmt *st = s->st[S_LIST];
	int rc;

	if ((rc = sqlite3_bind_int64(st, 1, store_i64(after))) != SQLITE_OK ||
	    (rc = sqlite3_bind_int64(st, 6, limit)) != SQLITE_OK)
		goto fail;
	if (test_glob != NULL && test_glob[0] != '\0' &&
	    (rc = sqlite3_bind_text(st, 2, test_glob, -1, SQLITE_STATIC)) !=
	    SQLITE_OK)
		goto fail;
	if (path != NULL && path[0] != '\0') {
		if ((rc = store_set_range(s, path)) != STORE_OK)
			return rc;
		return store_bind_range(s, st, 3);
	}
	return STORE_OK;
fail:
	return store_fail(s, rc, "binding a list");
}

int store_list(struct store *s, const char *test_glob, const char *path,
    uint64_t after, uint32_t limit, tc_entry **out, size_t *n,
    uint64_t *next)
{
	sqlite3_stmt *st = s->st[S_LIST];
	tc_entry *e;
	size_t len = 0;
	int rc;

	*out = NULL;
	*n = 0;
	*next = 0;
	if (limit > TC_MAX_LIST)
		limit = TC_MAX_LIST;
	if ((e = calloc(limit ? limit : 1, sizeof *e)) == NULL) {
		store_errf(s->msg, sizeof s->msg, "out of memory");
		return STORE_ENOMEM;
	}
	if ((rc = store_bind_list(s, test_glob, path, after, limit)) !=
	    STORE_OK)
		goto out;
	while (len < limit && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (store_row_entry(st, &e[len]) == -1) {
			rc = SQLITE_NOMEM;
			break;
		}
		store_touch_merge(s, &e[len]);
		len++;
	}
	if (len < limit && rc != SQLITE_DONE) {
		rc = store_fail(s, rc, "list");
		goto out;
	}
	store_done(st);
	if (len == limit && len > 0)
		*next = e[len - 1].id;
	*out = e;
	*n = len;
	return STORE_OK;
out:
	store_done(st);
	proto_entries_free(e, len);
	return rc;
}

int store_explain(struct store *s, const char *project, const char *test,
    int *found, tc_entry *entry, tc_input **inputs, size_t *ninputs)
{
	sqlite3_stmt *st = s->st[S_EXPLAIN];
	int rc;

	*found = 0;
	*inputs = NULL;
	*ninputs = 0;
	memset(entry, 0, sizeof *entry);
	if ((rc = sqlite3_bind_text(st, 1, project != NULL ? project : "", -1,
	    SQLITE_STATIC)) != SQLITE_OK || (rc = sqlite3_bind_text(st, 2,
	    test != NULL ? test : "", -1, SQLITE_STATIC)) != SQLITE_OK)
		goto fail;
	if ((rc = sqlite3_step(st)) == SQLITE_DONE) {
		store_done(st);
		return STORE_OK;
	}
	if (rc != SQLITE_ROW)
		goto fail;
	if (store_row_entry(st, entry) == -1) {
		rc = SQLITE_NOMEM;
		goto fail;
	}
	store_touch_merge(s, entry);
	store_done(st);
	if ((rc = store_inputs(s, (int64_t)entry->id, -1, inputs, ninputs)) !=
	    STORE_OK) {
		proto_entry_clear(entry);
		return rc;
	}
	*found = 1;
	return STORE_OK;
fail:
	rc = store_fail(s, rc, "explain");
	store_done(st);
	return rc;
}

/* Bytes of the database: its pages, and the WAL not yet checkpointed. */
static int store_db_bytes(struct store *s, uint64_t *bytes)
{
	char wal[PATH_MAX + 8];
	struct stat sb;
	int rc, n;

	if ((rc = store_count(s, S_SIZE, bytes)) != STORE_OK)
		return rc;
	n = snprintf(wal, sizeof wal, "%s-wal", s->path);
	if (n > 0 && (size_t)n < sizeof wal && stat(wal, &sb) == 0 &&
	    sb.st_size > 0)
		*bytes += (uint64_t)sb.st_size;
	return STORE_OK;
}

int store_stats(struct store *s, tc_stat **out, size_t *n)
{
	enum { LIVE = 3, DAYS = 2 * D__COUNT, ALL = C__COUNT + LIVE + DAYS };
	static const char *const live[LIVE] = { "entries", "flaky_entries",
	    "db_bytes" };
	uint64_t v[LIVE], days[2][D__COUNT];
	struct timespec ts;
	tc_stat *st;
	const char *name;
	uint64_t value;
	size_t i, k;
	int rc;

	_Static_assert(ALL + 1 <= TC_MAX_STATS, "STATS, uptime_ms too, fits");
	*out = NULL;
	*n = 0;
	v[0] = s->entries;
	if (clock_gettime(CLOCK_REALTIME, &ts) == -1) {
		store_errf(s->msg, sizeof s->msg, "clock_gettime: %s",
		    strerror(errno));
		return STORE_EFAIL;
	}
	if ((rc = store_count(s, S_FLAKY, &v[1])) != STORE_OK ||
	    (rc = store_db_bytes(s, &v[2])) != STORE_OK ||
	    (rc = store_days_sum(s, (uint64_t)ts.tv_sec * 1000 +
	    (uint64_t)ts.tv_nsec / 1000000, days)) != STORE_OK)
		return rc;
	if ((st = calloc(ALL, sizeof *st)) == NULL)
		goto nomem;
	for (i = 0; i < ALL; i++) {
		if (i < C__COUNT) {
			name = store_counter_names[store_stats_order[i]];
			value = s->counters[store_stats_order[i]];
		} else if (i < C__COUNT + LIVE) {
			name = live[i - C__COUNT];
			value = v[i - C__COUNT];
		} else {
			k = i - C__COUNT - LIVE;
			name = store_daily_names[k / D__COUNT][k % D__COUNT];
			value = days[k / D__COUNT][k % D__COUNT];
		}
		st[i].value = value;
		if ((st[i].name = strdup(name)) == NULL) {
			proto_stats_free(st, i);
			goto nomem;
		}
	}
	*out = st;
	*n = ALL;
	return STORE_OK;
nomem:
	store_errf(s->msg, sizeof s->msg, "out of memory");
	return STORE_ENOMEM;
}

void store_stats_reset(struct store *s)
{
	memset(s->counters, 0, sizeof s->counters);
	for (int i = 0; i < 2; i++) {
		memset(s->days[i].v, 0, sizeof s->days[i].v);
		s->days[i].dirty = 0;
	}
	s->days[1].used = 0;
	s->days_clear = 1;
	s->dirty = 1;
	s->txn_reset = 1;
}

/* Hits of entry id counted in memory and not yet written. */
static uint64_t store_touch_pending(struct store *s, int64_t id)
{
	uint64_t n = 0;

	if (s->ntouched == 0 || id > s->touched_max)
		return 0;
	for (size_t i = store_touch_find(s, id);
	    i < s->ntouched && s->touched[i].id == id; i++)
		n += s->touched[i].n;
	return n;
}

/* Fills sl from entry id's row (S_SLOWEST_ROW). */
static int store_slow_row(struct store *s, int64_t id, tc_slow *sl)
{
	sqlite3_stmt *st = s->st[S_SLOWEST_ROW];
	int rc;

	if ((rc = sqlite3_bind_int64(st, 1, id)) != SQLITE_OK ||
	    (rc = sqlite3_step(st)) != SQLITE_ROW) {
		store_done(st);
		/* The index named it, the table must have it. */
		return rc == SQLITE_DONE ? SQLITE_CORRUPT : rc;
	}
	sl->duration_us = store_u64(st, 2);
	sl->hits = store_u64(st, 3) + store_touch_pending(s, id);
	sl->saved_us = sl->hits != 0 && sl->duration_us > UINT64_MAX /
	    sl->hits ? UINT64_MAX : sl->duration_us * sl->hits;
	sl->project = store_text(st, 0);
	sl->test = store_text(st, 1);
	store_done(st);
	return sl->project == NULL || sl->test == NULL ? SQLITE_NOMEM :
	    SQLITE_OK;
}

int store_slowest(struct store *s, uint64_t now_ms, uint32_t limit,
    tc_slow **out, size_t *n)
{
	sqlite3_stmt *st = s->st[S_SLOWEST];
	tc_slow *sl;
	size_t len = 0;
	unsigned seen = 0;
	int rc = SQLITE_DONE;

	*out = NULL;
	*n = 0;
	if (limit > TC_MAX_SLOWEST)
		limit = TC_MAX_SLOWEST;
	if ((sl = calloc(limit ? limit : 1, sizeof *sl)) == NULL) {
		store_errf(s->msg, sizeof s->msg, "out of memory");
		return STORE_ENOMEM;
	}
	while (len < limit && seen++ < STORE_SLOWEST_SCAN &&
	    (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (store_u64(st, 1) <= now_ms)
			continue;	/* expired, not yet swept */
		/* Counted first: a failed row is freed with the others. */
		len++;
		if ((rc = store_slow_row(s, sqlite3_column_int64(st, 0),
		    &sl[len - 1])) != SQLITE_OK)
			break;
		rc = SQLITE_ROW;
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		rc = store_fail(s, rc, "slowest");
		store_done(st);
		proto_slow_free(sl, len);
		return rc;
	}
	store_done(st);
	*out = sl;
	*n = len;
	return STORE_OK;
}
