/*
 * tcached's internal header: the shared structs, and every module's
 * functions under a heading named after its file.
 */
#ifndef TCACHED_H
#define TCACHED_H

#include <sys/queue.h>
#include <sys/types.h>

#include <stdint.h>

#include "../proto/proto.h"
#include "store.h"

struct event_base;
struct event;
struct evconnlistener;

/* Daemon limits and defaults, with their units. */
#define SERVER_DEFAULT_TTL_MS (24ull * 3600 * 1000)	/* DESIGN.md: 24 hours */
#define SERVER_DEFAULT_IDLE_MS (60ull * 1000)	/* idle client: 60 s */
#define SERVER_DEFAULT_MAX_CLIENTS 1024u	/* connections at once */
#define SERVER_MAX_ALLOW 16			/* entries of each --allow-* and
						   --readonly-* list */
#define SERVER_SWEEP_MS 1000u			/* expiry sweep period */
#define SERVER_STEP_ROWS 256u			/* rows a sweep/invalidate step
						   deletes at most; fewer when
						   they take longer than
						   SERVER_STEP_US (server.c) */
#define SERVER_ACCEPT_PAUSE_MS 1000u		/* after EMFILE/ENFILE */
#define SERVER_SHUTDOWN_MS 2000u		/* grace for in-flight replies */
#define SERVER_REFUSALS_LOGGED 10u		/* refusal lines a second; the
						   rest are counted */
#define CONN_OUT_HIGH (256u * 1024)		/* stop reading a client whose
						   unsent replies pass this: a
						   client that never reads holds
						   this plus one reply, so 1,000
						   of them cannot take gigabytes */
#define CONN_OUT_LOW (64u * 1024)		/* and resume at or below this */

struct config {
	const char *socket_path;
	const char *db_path;
	const char *log_path;		/* NULL: stderr */
	uint64_t ttl_ms;
	uint64_t max_entries;		/* 0: unbounded */
	uint64_t idle_ms;
	unsigned max_clients;
	int sync_full;
	uid_t allow_uid[SERVER_MAX_ALLOW];
	size_t nallow_uid;
	gid_t allow_gid[SERVER_MAX_ALLOW];
	size_t nallow_gid;
	uid_t readonly_uid[SERVER_MAX_ALLOW];	/* served, but may not write */
	size_t nreadonly_uid;
	gid_t readonly_gid[SERVER_MAX_ALLOW];
	size_t nreadonly_gid;
	const char *config_path;	/* the file read, if any */
	char *owned[8];			/* the file's text and paths */
	size_t nowned;
};

/* config.c: the keys shared by the flags and tcached.conf(5). */
enum {
	CONFIG_SOCKET, CONFIG_DB, CONFIG_TTL, CONFIG_MAX_ENTRIES, CONFIG_IDLE,
	CONFIG_MAX_CLIENTS, CONFIG_ALLOW_UID, CONFIG_ALLOW_GID,
	CONFIG_READONLY_UID, CONFIG_READONLY_GID, CONFIG_SYNC, CONFIG_LOG,
	CONFIG_NKEYS
};

void config_init(struct config *cfg);
void config_free(struct config *cfg);
int config_key(const char *name);
const char *config_key_name(int key);
int config_key_repeatable(int key);
const char *config_set(struct config *cfg, int key, const char *value,
		       int fresh);
void config_apply_env(struct config *cfg);
char *config_default_path(char *buf, size_t len);
int config_load(struct config *cfg, const char *path, int required);

enum conn_state {
	CONN_HELLO,		/* waiting for HELLO */
	CONN_READY,		/* reading and answering frames in order */
	CONN_WAIT_COMMIT,	/* reply held until the group commit; input
				   left unread so replies stay in order */
	CONN_JOB,		/* a multi-step invalidate or gc is running */
	CONN_DRAINING,		/* an error reply is being flushed; then close */
	CONN_DEAD		/* closed; freed by the reaper */
};

enum conn_job { CONN_JOB_NONE, CONN_JOB_INVALIDATE, CONN_JOB_GC };

/* Bytes [off, len) of data; conn.c. */
struct conn_bytes {
	uint8_t *data;
	size_t off, len, cap;
};

struct conn {
	TAILQ_ENTRY(conn) entry;	/* server's conns, or its dead list */
	TAILQ_ENTRY(conn) wait_entry;	/* server's waiting or jobs list */
	struct server *srv;
	int fd;
	struct event *ev_read;		/* in epoll while reading, and until
					   input comes after (conn_read_on) */
	struct event *ev_write;		/* added while the socket is full */
	struct event *ev_idle;		/* the idle timeout (conn_idle_cb) */
	struct conn_bytes in;		/* input not answered yet: a partial
					   frame, or what waits behind a
					   held reply; usually empty */
	struct conn_bytes out;		/* replies the socket has not taken */
	uint64_t active_ms;		/* last progress, or the start of a
					   wait on the client (monotonic) */
	int reading;			/* input is wanted */
	int in_process;			/* answering a batch: replies go out
					   together at its end */
	enum conn_state state;
	int listed;			/* on a waiting or jobs list */
	int paused;			/* output backed up: not reading */
	int readonly;			/* role: may look up, never write */
	int denied_logged;		/* a refused write was logged */
	uid_t uid;
	gid_t gid;
	pid_t pid;
	proto_buf reply;		/* held until commit */
	uint64_t txn;			/* the reply needs transactions from
					   this one (store_txn_serial) on */
	enum conn_job job;
	struct store_filter filter;
	char *filter_arg;
	uint64_t job_count;
	uint64_t job_txn;		/* transaction of the job's first step */
};
TAILQ_HEAD(conn_list, conn);

struct server {
	struct event_base *base;
	const struct config *cfg;
	struct store *store;
	struct evconnlistener *listener;
	int lock_fd;
	int unlink_socket;		/* we bound it: remove it at exit */
	dev_t sock_dev;
	ino_t sock_ino;
	struct event *ev_term, *ev_int, *ev_hup, *ev_sweep, *ev_commit,
	    *ev_jobs, *ev_reap, *ev_resume, *ev_deadline;
	struct conn_list conns;
	struct conn_list dead;
	struct conn_list waiting;
	struct conn_list jobs;
	unsigned nconns;
	uint64_t start_ms;
	int stopping;
	uint64_t refused_second;	/* the second refusals are logged for */
	unsigned refused_logged;	/* lines logged in it */
	uint64_t refused_quiet;		/* refusals since, not logged */
	proto_buf scratch;		/* encoding of immediate replies */
};

/* server.c */
int server_init(struct server *srv, const struct config *cfg);
int server_run(struct server *srv);
void server_free(struct server *srv);
uint64_t server_now_ms(void);
uint64_t server_mono_us(void);
/* Rows for the next sweep, eviction or invalidation step, and what the
 * last one removed in how long (server.c). */
unsigned server_step_rows(void);
void server_step_done(uint64_t removed, uint64_t us);
void server_schedule_commit(struct server *srv);
void server_schedule_jobs(struct server *srv);
void server_store_failed(struct server *srv, int rc);

/* conn.c */
void conn_accept(struct server *srv, int fd);
void conn_close(struct conn *c);
void conn_free(struct conn *c);
void conn_deliver(struct conn *c, int committed);
int conn_committed(const struct conn *c);
void conn_job_step(struct conn *c);
void conn_shutdown(struct conn *c);

/* log.c */
int log_open(const char *path);
void log_reopen(void);
void log_close(void);
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Copies s into buf with unprintable bytes as '?', for logging client data. */
const char *log_scrub(const char *s, char *buf, size_t len);

#endif
