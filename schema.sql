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
	last_used   INTEGER NOT NULL
);
-- The expiry sweep and LRU eviction are range scans from the oldest end.
CREATE INDEX entries_expires ON entries(expires);
CREATE INDEX entries_last_used ON entries(last_used);
-- explain (newest entry of a test) and invalidate --test with a literal
-- prefix (GLOB uses the index up to the first wildcard).
CREATE INDEX entries_test ON entries(test, project, created);
CREATE INDEX entries_flaky ON entries(flaky) WHERE flaky = 1;

CREATE TABLE inputs (
	entry   INTEGER NOT NULL REFERENCES entries(id) ON DELETE CASCADE,
	kind    INTEGER NOT NULL,		-- 0 file, 1 discovered file, 2 env
	path    TEXT    NOT NULL,		-- relative to root, or the env name
	abspath TEXT,				-- root/path for files, NULL for env
	digest  BLOB    NOT NULL,
	PRIMARY KEY (entry, kind, path)
) WITHOUT ROWID;
-- invalidate PATH: abspath = P, or P/ <= abspath < P0 ('0' follows '/'),
-- so a directory's files are one range and its sibling srcx is outside it.
CREATE INDEX inputs_abspath ON inputs(abspath, entry) WHERE abspath IS NOT NULL;

-- Counters that persist across restarts (hits, misses, time_saved_us, ...).
CREATE TABLE counters (
	name  TEXT PRIMARY KEY,
	value INTEGER NOT NULL
) WITHOUT ROWID;

PRAGMA user_version = 1;
