/*
 * store.c: the SQLite database of tcached.  The only module that includes
 * sqlite3.h.  Every call does a short, bounded amount of work: callers that
 * need more (invalidation, sweeping, eviction) call the *_step functions
 * again on later turns of the event loop.
 *
 * Writes happen inside one open write transaction that the daemon commits
 * once per turn of the loop (group commit): store_begin opens it if needed,
 * store_commit ends it.  A frame's records go inside a savepoint, so a frame
 * that fails takes none of its records and none of anybody else's with it.
 *
 * Functions return STORE_OK or a negative STORE_E* code, with a message in
 * store_error().
 */
#ifndef TC_STORE_H
#define TC_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "../client/tcache.h"

enum {
	STORE_OK = 0,
	STORE_EFAIL = -1,	/* any other SQLite error */
	STORE_EFULL = -2,	/* disk or database full: writes fail, reads go on */
	STORE_ECORRUPT = -3,	/* the file is damaged: store_recover() */
	STORE_ENEWER = -4,	/* written by a newer tcached: refuse to start */
	STORE_ENOMEM = -5
};

struct store;

struct store_config {
	const char *path;
	uint64_t ttl_ms;	/* default time to live of a record */
	uint64_t max_entries;	/* 0: unbounded */
	int sync_full;		/* synchronous=FULL instead of NORMAL */
};

/*
 * Opens (creating the file and its directory's schema if needed), migrates
 * an older schema, refuses a newer one (STORE_ENEWER).  A file that is not
 * a database or fails its check is renamed to PATH.damaged-YYYYmmddTHHMMSS
 * (with its -wal and -shm), a warning is written to err, and a fresh
 * database is started: a cache must never crash-loop on its own file.
 * On failure *out is NULL and err says why.
 */
int store_open(struct store **out, const struct store_config *cfg,
	       char *err, size_t errlen);
void store_close(struct store *s);
const char *store_error(const struct store *s);

/* Moves the damaged database aside and starts a fresh one (see store_open).
 * Any open transaction is lost. */
int store_recover(struct store *s, char *err, size_t errlen);

/* Write transactions (group commit).  store_begin first writes up to
 * 1,024 of the hits that lookups counted in memory since (store_touches of
 * them, at most STORE_TOUCH_MAX: a caller opens one before a lookup could
 * pass that); the rest wait for later ones, and LIST and EXPLAIN show them
 * meanwhile. */
#define STORE_TOUCH_MAX 32768u
int store_begin(struct store *s);
/* The same, writing at most limit of those hits. */
int store_begin_touches(struct store *s, unsigned limit);
size_t store_touches(const struct store *s);
/*
 * Lookups outside a write transaction share one read transaction, opened
 * by the first of them, which calls fn(arg) then: the caller must then
 * call store_end_read soon (at the end of its event loop's turn), or it
 * would read an old snapshot.  Without fn each lookup reads on its own.
 */
void store_set_read_hook(struct store *s, void (*fn)(void *), void *arg);
void store_end_read(struct store *s);
int store_in_txn(const struct store *s);
/* Persists the counters with the transaction. */
int store_commit(struct store *s);
void store_rollback(struct store *s);
int store_savepoint(struct store *s);
int store_release(struct store *s);
/* Undo everything since store_savepoint; the transaction stays open. */
int store_rollback_savepoint(struct store *s);
/*
 * Write transactions are numbered from 1 by store_begin.  store_txn_serial
 * is the open one's number (0: none); store_lost_serial the number of the
 * last one that ended without a commit: rolled back, by us or by SQLite on
 * its own (disk full, I/O error), or lost with a damaged file.  A reply
 * held for transaction n may say "stored" only if n is committed, that is
 * when the commit succeeded and n > store_lost_serial.
 */
uint64_t store_txn_serial(const struct store *s);
uint64_t store_lost_serial(const struct store *s);

/*
 * Looks a key up at time now_ms.  res->found is 0 for no live entry.  On a
 * found entry, res->inputs holds its discovered (TC_INPUT_FOUND) inputs,
 * malloc'd: free with proto_result_clear.  Counts the hit or the miss; a
 * hit also bumps the entry's hit count and last use, inside the open write
 * transaction if there is one (the caller opens it first).
 */
int store_lookup(struct store *s, const uint8_t key[TC_DIGEST_BYTES],
		 uint64_t now_ms, tc_result *res);

/* Inside a transaction.  *flaky is set to 1 when the key held a live entry
 * with another outcome (the entry is then marked flaky). */
int store_record(struct store *s, const tc_record *rec, uint64_t now_ms,
		 int *flaky);

struct store_filter {
	int mode;		/* tc_invalidate_mode */
	const char *arg;	/* absolute path or glob */
	uint8_t key[TC_DIGEST_BYTES];
};

/* Counts matching entries without removing them (read only). */
int store_invalidate_count(struct store *s, const struct store_filter *f,
			   uint64_t *count);
/* Removes at most limit matching entries inside the open transaction;
 * *removed says how many, and fewer than limit means there are no more. */
int store_invalidate_step(struct store *s, const struct store_filter *f,
			  unsigned limit, uint64_t *removed);

/* Removes at most limit entries expired at now_ms; as above. */
int store_sweep_step(struct store *s, uint64_t now_ms, unsigned limit,
		     uint64_t *removed);
/* Removes at most limit least recently used entries while the store holds
 * more than max_entries. */
int store_evict_step(struct store *s, unsigned limit, uint64_t *removed);
/*
 * 1 while the WAL is long and a checkpointer thread is still copying it
 * into the database: the steps above should wait a little.  The WAL
 * starts over only when a transaction begins with all of it copied, which
 * steps taken back to back never leave time for, so it would grow by
 * every step's pages for as long as they run.
 */
int store_wal_behind(struct store *s);
uint64_t store_entries(const struct store *s);

/* One page of entries with id > after, ordered by id.  *next is 0 at the
 * end.  Free with proto_entries_free. */
int store_list(struct store *s, const char *test_glob, const char *path,
	       uint64_t after, uint32_t limit, tc_entry **out, size_t *n,
	       uint64_t *next);

/* The newest entry of (project, test), live or not, with all its inputs;
 * free with proto_entry_clear and proto_inputs_free. */
int store_explain(struct store *s, const char *project, const char *test,
		  int *found, tc_entry *entry, tc_input **inputs,
		  size_t *ninputs);

/* Counters (PROTOCOL.md, STATS) but uptime_ms, which the daemon adds;
 * the _today and _7d figures are of the local day of the real-time clock.
 * *out is malloc'd: proto_stats_free. */
int store_stats(struct store *s, tc_stat **out, size_t *n);
/* Zeroes the persisted counters and the days (committed with the next
 * transaction). */
void store_stats_reset(struct store *s);

/* The limit (1..TC_MAX_SLOWEST) slowest entries live at now_ms, passing
 * and not flaky, slowest first: a walk down an index that looks at no more
 * than 10,000 rows, so it may return fewer while many expired entries wait
 * for the sweep.  Free with proto_slow_free. */
int store_slowest(struct store *s, uint64_t now_ms, uint32_t limit,
		  tc_slow **out, size_t *n);

#endif
