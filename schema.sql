-- The one definition of the tcache database.  tcached compiles this file in
-- (Makefile: build/schema.h) and runs it on a new database; migrations from
-- older versions live in daemon/store.c.  The version is PRAGMA user_version.
-- Times are Unix milliseconds; digests and keys are 32-byte BLAKE2b blobs.

CREATE TABLE entries (
	id          INTEGER PRIMARY KEY,	-- also LIST's paging cursor
	key         BLOB    NOT NULL UNIQUE,
	project     TEXT    NOT NULL,
	test        TEXT    NOT NULL,
	root        TEXT    NOT NULL,		-- absolute project root of the last record
	outcome     INTEGER NOT NULL,		-- 1 pass, 2 fail, 3 skip, 4 error
	flaky       INTEGER NOT NULL DEFAULT 0,
	duration_us INTEGER NOT NULL,
	message     TEXT    NOT NULL DEFAULT '',
	created     INTEGER NOT NULL,
	expires     INTEGER NOT NULL,
	hits        INTEGER NOT NULL DEFAULT 0,
	last_used   INTEGER NOT NULL,
	-- The declared inputs (files and env), shared by every entry that
	-- declares the same list: NULL for none.  Last, where the v1 -> v2
	-- migration's ALTER TABLE puts it.
	inputset    INTEGER REFERENCES inputsets(id)
);
-- The expiry sweep and LRU eviction are range scans from the oldest end.
CREATE INDEX entries_expires ON entries(expires);
CREATE INDEX entries_last_used ON entries(last_used);
-- explain (newest entry of a test) and invalidate --test with a literal
-- prefix (GLOB uses the index up to the first wildcard).
CREATE INDEX entries_test ON entries(test, project, created);
CREATE INDEX entries_flaky ON entries(flaky) WHERE flaky = 1;
-- The entries of a set: invalidation through a set, and whether a set is
-- still used.
CREATE INDEX entries_inputset ON entries(inputset);
-- The slowest cached tests (SLOWEST): the longest passing entries first,
-- one walk down this index however big the table.  It covers the walk
-- (outcome and flaky too, which SQLite 3.40 does not take from the WHERE),
-- so that expired entries not yet swept are skipped without reading their
-- rows.
CREATE INDEX entries_slowest ON entries(outcome, flaky, duration_us, expires)
	WHERE outcome = 1 AND flaky = 0;

-- A suite's tests mostly declare the same few hundred files: each distinct
-- list of declared inputs (kinds 0, 2 and 3) is stored once.  hash is a
-- 64-bit FNV-1a of its rows, to find a candidate; reuse compares the rows
-- exactly.  A set lives while an entry refers to it (the triggers below).
CREATE TABLE inputsets (
	id   INTEGER PRIMARY KEY,
	hash INTEGER NOT NULL
);
CREATE INDEX inputsets_hash ON inputsets(hash);

CREATE TABLE setinputs (
	setid   INTEGER NOT NULL REFERENCES inputsets(id) ON DELETE CASCADE,
	kind    INTEGER NOT NULL,		-- 0 file, 2 env, 3 interface
	path    TEXT    NOT NULL,		-- relative to root, or the env name
	abspath TEXT,				-- root/path for files, NULL for env
	digest  BLOB    NOT NULL,
	PRIMARY KEY (setid, kind, path)
) WITHOUT ROWID;
CREATE INDEX setinputs_abspath ON setinputs(abspath, setid)
	WHERE abspath IS NOT NULL;

-- The inputs of one entry alone: the files it discovered (kind 1).
CREATE TABLE inputs (
	entry   INTEGER NOT NULL REFERENCES entries(id) ON DELETE CASCADE,
	kind    INTEGER NOT NULL,		-- 1 discovered file
	path    TEXT    NOT NULL,		-- relative to root
	abspath TEXT,				-- root/path
	digest  BLOB    NOT NULL,
	PRIMARY KEY (entry, kind, path)
) WITHOUT ROWID;
-- invalidate PATH: abspath = P, or P/ <= abspath < P0 ('0' follows '/'),
-- so a directory's files are one range and its sibling srcx is outside it.
CREATE INDEX inputs_abspath ON inputs(abspath, entry) WHERE abspath IS NOT NULL;

-- An entry that goes (any DELETE: invalidate, sweep, evict) or changes
-- its set releases the old one, which goes with its rows when no entry
-- refers to it any more.  One probe of entries_inputset: no counter that
-- could drift, and recording an entry writes nothing to a shared set.
CREATE TRIGGER entries_release_deleted AFTER DELETE ON entries
WHEN OLD.inputset IS NOT NULL BEGIN
	DELETE FROM inputsets WHERE id = OLD.inputset AND NOT EXISTS
	    (SELECT 1 FROM entries WHERE inputset = OLD.inputset);
END;
CREATE TRIGGER entries_release_updated AFTER UPDATE OF inputset ON entries
WHEN OLD.inputset IS NOT NULL AND OLD.inputset IS NOT NEW.inputset BEGIN
	DELETE FROM inputsets WHERE id = OLD.inputset AND NOT EXISTS
	    (SELECT 1 FROM entries WHERE inputset = OLD.inputset);
END;

-- Counters that persist across restarts (hits, misses, time_saved_us, ...).
CREATE TABLE counters (
	name  TEXT PRIMARY KEY,
	value INTEGER NOT NULL
) WITHOUT ROWID;

-- Hits, misses and time saved per calendar day of the daemon's local
-- time (day: days since 1970-01-01 of the local date), for "today" and
-- "last 7 days"; written with the counters, the last 400 days kept.
CREATE TABLE days (
	day           INTEGER PRIMARY KEY,
	hits          INTEGER NOT NULL,
	misses        INTEGER NOT NULL,
	time_saved_us INTEGER NOT NULL
);

PRAGMA user_version = 3;
