/*
 * libtcache: ask tcached whether a test's passing result is already known,
 * record outcomes, invalidate entries, read statistics, and derive the keys.
 *
 * No global state: every call that talks to the daemon goes through a
 * tc_client, which holds the connection, the timeout and the last error
 * message.  No call aborts or exits.  When the daemon cannot be reached a
 * call returns TC_EUNAVAIL, and a caller must then treat every lookup as a
 * miss: a cache outage never fails a test run.
 *
 * Keys, digests and the wire format are specified in proto/PROTOCOL.md.
 */
#ifndef TCACHE_H
#define TCACHE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TC_DIGEST_BYTES 32

typedef enum tc_status {
	TC_OK = 0,
	TC_EUNAVAIL,	/* no daemon answers on the socket */
	TC_ETIMEDOUT,	/* the daemon did not answer within the timeout */
	TC_EPROTO,	/* the daemon's reply did not parse */
	TC_ESERVER,	/* the daemon answered with an error reply */
	TC_EINVAL,	/* bad argument: over a limit, bad path, ... */
	TC_EIO,		/* a local file could not be read */
	TC_ENOMEM
} tc_status;

typedef enum tc_outcome {
	TC_PASS = 1,
	TC_FAIL = 2,
	TC_SKIP = 3,
	TC_ERROR = 4
} tc_outcome;

typedef enum tc_input_kind {
	TC_INPUT_FILE = 0,	/* declared file: part of the key */
	TC_INPUT_FOUND = 1,	/* discovered while the test ran: checked on lookup */
	TC_INPUT_ENV = 2,	/* environment variable: path is its name, digest
				   the BLAKE2b of its value (zeros when unset) */
	TC_INPUT_INTERFACE = 3	/* declared Python file, part of the key like
				   TC_INPUT_FILE, but its digest is the file's
				   interface digest (PROTOCOL.md), which only
				   Python computes */
} tc_input_kind;

/* One input of an entry.  path is relative to the project root for files
 * inside it, absolute for files outside it. */
typedef struct tc_input {
	uint8_t kind;				/* tc_input_kind */
	char *path;
	uint8_t digest[TC_DIGEST_BYTES];
} tc_input;

/* An environment variable for the env digest; value NULL means unset. */
typedef struct tc_env {
	const char *name;
	const char *value;
} tc_env;

/* One record, as sent to the daemon.  The library never frees it. */
typedef struct tc_record {
	uint8_t key[TC_DIGEST_BYTES];
	const char *project;
	const char *test;
	const char *root;		/* absolute project root */
	uint8_t outcome;		/* tc_outcome */
	uint64_t duration_us;
	uint64_t ttl_ms;		/* 0: the daemon's default */
	const char *message;		/* may be NULL */
	uint32_t ninputs;
	const tc_input *inputs;		/* files, discovered files, env */
} tc_record;

/* Per-record answer to a RECORD. */
enum {
	TC_STORED = 0,		/* committed */
	TC_STORED_FLAKY = 1	/* committed; it disagreed with the outcome
				   already stored, so the entry is now flaky */
};

/* The answer to one key of a lookup.  inputs are the discovered inputs
 * (TC_INPUT_FOUND) that the caller must still verify, see tc_result_verify. */
typedef struct tc_result {
	uint8_t found;			/* 0: no live entry under the key */
	uint8_t outcome;
	uint8_t flaky;
	uint64_t duration_us;
	uint64_t created_ms;		/* Unix time, milliseconds */
	uint64_t expires_ms;
	uint32_t ninputs;
	tc_input *inputs;
} tc_result;

/* An entry, as `tcache ls` and `tcache explain` see it. */
typedef struct tc_entry {
	uint64_t id;
	uint8_t key[TC_DIGEST_BYTES];
	char *project;
	char *test;
	char *root;
	uint8_t outcome;
	uint8_t flaky;
	uint64_t duration_us;
	uint64_t created_ms;
	uint64_t expires_ms;
	uint64_t hits;
	uint64_t last_used_ms;
	char *message;
} tc_entry;

typedef struct tc_stat {
	char *name;
	uint64_t value;
} tc_stat;

/* One of the slowest passing entries: the biggest savings of a hit. */
typedef struct tc_slow {
	char *project;
	char *test;
	uint64_t duration_us;		/* what a hit saves */
	uint64_t hits;			/* since it was last recorded */
	uint64_t saved_us;		/* duration_us * hits */
} tc_slow;

typedef struct tc_daemon_status {
	char *version;
	uint32_t pid;
	uint64_t uptime_ms;
	char *socket;
	char *db;
	uint64_t entries;
	uint64_t ttl_ms;
	uint64_t max_entries;
} tc_daemon_status;

typedef enum tc_invalidate_mode {
	TC_INV_PATH = 1,	/* an absolute path: that file, or a directory and
				   everything below it */
	TC_INV_TEST = 2,	/* a glob over test ids (* ? [...]) */
	TC_INV_KEY = 3,
	TC_INV_ALL = 4
} tc_invalidate_mode;

typedef struct tc_client tc_client;

typedef struct tc_options {
	const char *socket;	/* NULL: tc_default_socket() */
	int timeout_ms;		/* per call; 0: 5000 */
	int autostart;		/* start tcached when nothing answers */
	const char *daemon;	/* tcached to start; NULL: "tcached" on PATH */
	const char *db;		/* --db for an autostarted daemon; may be NULL */
} tc_options;

/* Never NULL (NULL only when out of memory).  Does not connect yet. */
tc_client *tc_client_new(const tc_options *opts);
void tc_client_free(tc_client *c);
/* Connects and performs the version handshake; lookups connect lazily. */
tc_status tc_connect(tc_client *c);
/* The message of the last failed call on c. */
const char *tc_client_error(const tc_client *c);
const char *tc_status_name(tc_status s);

/* Socket path from $TCACHE_SOCKET, $XDG_RUNTIME_DIR/tcache/tcached.sock or
 * /tmp/tcache-$UID/tcached.sock.  Returns buf, or NULL if it does not fit. */
char *tc_default_socket(char *buf, size_t len);
/* Database path from $TCACHE_DB, $XDG_STATE_HOME/tcache/tcache.db or
 * ~/.local/state/tcache/tcache.db. */
char *tc_default_db(char *buf, size_t len);

tc_status tc_status_get(tc_client *c, tc_daemon_status *out);
void tc_daemon_status_clear(tc_daemon_status *s);

/* n keys of TC_DIGEST_BYTES each; results must hold n.  Any n: the library
 * splits it into frames.  Free with tc_results_clear. */
tc_status tc_lookup(tc_client *c, const uint8_t (*keys)[TC_DIGEST_BYTES],
		    size_t n, tc_result *results);
void tc_results_clear(tc_result *results, size_t n);
/* A cached pass that may be reported without running the test: found, pass,
 * not flaky.  The caller must also run tc_result_verify. */
int tc_result_is_pass(const tc_result *r);
/* 1 when every discovered input of r still has its recorded digest under
 * root, 0 when one changed or vanished. */
int tc_result_verify(const tc_result *r, const char *root);

/* status (may be NULL) receives TC_STORED or TC_STORED_FLAKY per record.
 * TC_OK means every record is committed. */
tc_status tc_record_put(tc_client *c, const tc_record *recs, size_t n,
			uint8_t *status);

tc_status tc_invalidate(tc_client *c, tc_invalidate_mode mode,
			const char *arg, const uint8_t key[TC_DIGEST_BYTES],
			int dry_run, uint64_t *count);

tc_status tc_stats(tc_client *c, int reset, tc_stat **stats, size_t *n);
void tc_stats_free(tc_stat *stats, size_t n);
/* The value of the counter named name, 0 if absent. */
uint64_t tc_stats_get(const tc_stat *stats, size_t n, const char *name);

/* The n (1..100) slowest live, passing, non-flaky entries, slowest
 * first; *nout may be fewer.  Free with tc_slowest_free. */
tc_status tc_slowest(tc_client *c, uint32_t n, tc_slow **out, size_t *nout);
void tc_slowest_free(tc_slow *s, size_t n);

/* One page of entries; *next is the cursor for the next page, 0 at the end.
 * test_glob and path may be NULL. */
tc_status tc_list(tc_client *c, const char *test_glob, const char *path,
		  uint64_t after, uint32_t limit, tc_entry **entries,
		  size_t *n, uint64_t *next);
void tc_entries_free(tc_entry *entries, size_t n);
void tc_entry_clear(tc_entry *e);

/* The newest entry recorded for (project, test), with all its inputs. */
tc_status tc_explain(tc_client *c, const char *project, const char *test,
		     int *found, tc_entry *entry, tc_input **inputs,
		     size_t *ninputs);

/* Sweeps expired entries now; *removed counts them. */
tc_status tc_gc(tc_client *c, uint64_t *removed);

/* --- hashing (proto/PROTOCOL.md, "Keys") --- */

void tc_hash_bytes(const void *data, size_t len, uint8_t out[TC_DIGEST_BYTES]);
/* BLAKE2b-256 of a file's bytes; TC_EIO with errno set on failure. */
tc_status tc_hash_file(const char *path, uint8_t out[TC_DIGEST_BYTES]);
/* Over the TC_INPUT_FILE inputs (others are ignored), sorted by path;
 * TC_EINVAL on a duplicate path. */
tc_status tc_source_digest(const tc_input *inputs, size_t n,
			   uint8_t out[TC_DIGEST_BYTES]);
/* Over (name, value) sorted by name; TC_EINVAL on a duplicate name. */
tc_status tc_env_digest(const tc_env *vars, size_t n,
			uint8_t out[TC_DIGEST_BYTES]);
void tc_key_derive(const char *project, const char *test,
		   const uint8_t src[TC_DIGEST_BYTES],
		   const uint8_t env[TC_DIGEST_BYTES],
		   uint8_t out[TC_DIGEST_BYTES]);

/* Hashes each path (relative to the current directory or absolute; a
 * directory stands for every regular file below it, .git excluded) into
 * TC_INPUT_FILE inputs named relative to root.  A path that does not exist
 * is an input with an all-zero digest, so creating it changes the key.
 * Sorted by path, duplicates removed.  Free with tc_inputs_free.  Many
 * files are hashed by as many threads as the process may use CPUs (at most
 * 8; $TCACHE_HASH_THREADS=N sets it, 1 for none). */
tc_status tc_inputs_collect(const char *root, const char *const *paths,
			    size_t npaths, tc_input **out, size_t *nout,
			    char *err, size_t errlen);
void tc_inputs_free(tc_input *inputs, size_t n);

/* --- the digest memo (proto/PROTOCOL.md, "The digest memo") --- */

/*
 * Digests of files remembered by (device, inode, size, mtime, ctime), so
 * that an unchanged file is not read again.  A file changed within the
 * racy window (2 s) before it was hashed, or before the memo file was
 * written, is never remembered or trusted; a damaged, truncated or foreign
 * memo file, or one that is not ours alone, is ignored.  One memo is used
 * by one thread at a time.
 */
typedef struct tc_memo tc_memo;

typedef struct tc_memo_counts {
	uint64_t hits;		/* digests taken from the memo: files unread */
	uint64_t hashed;	/* files read and hashed */
	uint64_t racy;		/* of those, changed too recently to remember */
} tc_memo_counts;

/* The memo file: $TCACHE_MEMO, else $XDG_CACHE_HOME/tcache/digests, else
 * ~/.cache/tcache/digests.  NULL when $TCACHE_MEMO is off (or 0, no,
 * false), when there is no home, or when it does not fit in buf. */
char *tc_default_memo(char *buf, size_t len);
/* Opens the memo at path (NULL: tc_default_memo); *out is NULL, with
 * TC_OK, when the memo is off.  The file is read when first needed, and
 * not at all for files that hash sooner than it reads.  A missing or
 * unusable file is an empty memo, and a directory that is not the
 * caller's own one that is never read or written.  TC_ENOMEM only. */
tc_status tc_memo_open(const char *path, tc_memo **out);
/* tc_hash_file through the memo m (NULL: none). */
tc_status tc_memo_hash_file(tc_memo *m, const char *path,
			    uint8_t out[TC_DIGEST_BYTES]);
/* tc_inputs_collect through the memo m (NULL: none). */
tc_status tc_inputs_collect_memo(tc_memo *m, const char *root,
				 const char *const *paths, size_t npaths,
				 tc_input **out, size_t *nout,
				 char *err, size_t errlen);
/* Writes m back, when it learnt anything, to a temporary file renamed over
 * the memo (mode 0600, its directory made 0700 when missing).  TC_EIO
 * when it could not: nothing is lost but the time to hash again. */
tc_status tc_memo_save(tc_memo *m);
void tc_memo_counts_get(const tc_memo *m, tc_memo_counts *out);
void tc_memo_free(tc_memo *m);

/* hex must hold 2 * TC_DIGEST_BYTES + 1 bytes. */
void tc_hex(const uint8_t digest[TC_DIGEST_BYTES], char *hex);
/* 0 on success, -1 unless hex is exactly 64 hex digits. */
int tc_unhex(const char *hex, uint8_t digest[TC_DIGEST_BYTES]);

const char *tc_outcome_name(int outcome);	/* "pass", ...; "?" */
int tc_outcome_parse(const char *name);		/* -1 when unknown */

#ifdef __cplusplus
}
#endif
#endif
