/*
 * One client connection: its socket under a raw libevent event, a frame
 * reader that checks each header before it waits for a body, and the
 * dispatch of each request.
 *
 * States (enum conn_state): HELLO -> READY <-> WAIT_COMMIT / JOB, and
 * DRAINING -> DEAD on an error reply.  While a reply waits for the group
 * commit the rest of the client's input stays unread, so replies keep the
 * order of requests.  A connection is freed by the server's reaper, never
 * inside its own callback.
 *
 * Why not a bufferevent (which this file used until bench/latency.py
 * measured both): a one-key lookup's round trip is a few microseconds of
 * work inside two wake-ups, and a bufferevent added four system calls to
 * each (FIONREAD before every read, and an epoll_ctl to add and another to
 * remove EV_WRITE around every reply, which it writes only on the next turn
 * of the loop), plus two timer re-arms and a copy through its evbuffers.
 * On one CPU bench/lat_echo answered in 14.2-16.5 us a round trip through
 * a bufferevent set up as this file had it, 9.1-10.9 through a raw event
 * (1.3-1.6x); tcached's one-key hit went from 18.2 to 15.2 us when this
 * file changed, with the same store and client.  Here a request is one
 * read(2) into a buffer shared by all connections, and its reply one
 * write(2) at the end of the callback that read it (the replies to a
 * pipelined batch go out together); EV_WRITE is asked for only when the
 * socket is full.  A connection keeps a buffer of its own only for what
 * it could not take or send at once (a partial frame, input behind a held
 * reply, output the socket did not take), so a thousand idle clients hold
 * almost nothing.  The idle timeout is one timer a connection that is
 * re-armed when it fires, against the time of the last progress, not at
 * every request.
 */
#include <sys/socket.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "tcached.h"

#define CONN_READ_BYTES (64u * 1024)	/* one read(2) into the shared buffer,
					   and the most a partial frame's
					   buffer grows by at a time */
#define CONN_OUT_KEEP 4096u		/* output buffer kept once empty */

static void conn_process(struct conn *c);
static void conn_flush(struct conn *c);
static void conn_start_job(struct conn *c, enum conn_job job);

/* The idle clock: a coarse monotonic one (a few ms), read at each
 * progress, so it must be cheap. */
static uint64_t conn_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* --- byte buffers: [off, len) of data is what is held --- */

static size_t conn_bytes_held(const struct conn_bytes *b)
{
	return b->len - b->off;
}

/* Room for n more bytes after len, growing by doubling, but to no more
 * than at_least when that is enough (0: no such bound); 0, or -1 out of
 * memory. */
static int conn_bytes_room(struct conn_bytes *b, size_t n, size_t at_least)
{
	size_t cap;
	uint8_t *p;

	if (b->off > 0) {
		memmove(b->data, b->data + b->off, b->len - b->off);
		b->len -= b->off;
		b->off = 0;
	}
	if (b->cap - b->len >= n)
		return 0;
	/* Doubling, so a large frame costs few copies; a partial frame's
	 * buffer stops at the frame's length, so it is never twice what
	 * came. */
	cap = b->cap * 2 > b->len + n ? b->cap * 2 : b->len + n;
	if (at_least != 0 && cap > at_least && at_least >= b->len + n)
		cap = at_least;
	if ((p = realloc(b->data, cap)) == NULL)
		return -1;
	b->data = p;
	b->cap = cap;
	return 0;
}

static int conn_bytes_add(struct conn_bytes *b, const void *p, size_t n)
{
	if (conn_bytes_room(b, n, 0) != 0)
		return -1;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

/* Drops n bytes from the front; an empty buffer over keep is freed. */
static void conn_bytes_take(struct conn_bytes *b, size_t n, size_t keep)
{
	b->off += n;
	if (b->off < b->len)
		return;
	b->off = b->len = 0;
	if (b->cap > keep) {
		free(b->data);
		b->data = NULL;
		b->cap = 0;
	}
}

static void conn_bytes_free(struct conn_bytes *b)
{
	free(b->data);
	memset(b, 0, sizeof *b);
}

/* --- reading and writing --- */

/* Reading is turned on at once, and off lazily: the event stays in epoll
 * until input comes while it is off (conn_read_cb), so a request that
 * waits for the group commit, answered in the same turn of the loop,
 * costs no epoll_ctl. */
static void conn_read_on(struct conn *c)
{
	if (!c->reading) {
		c->reading = 1;
		c->active_ms = conn_now_ms();
	}
	if (!event_pending(c->ev_read, EV_READ, NULL) &&
	    event_add(c->ev_read, NULL) != 0) {
		log_warn("cannot watch the connection of pid %ld", (long)c->pid);
		conn_close(c);
	}
}

static void conn_read_off(struct conn *c)
{
	c->reading = 0;
}

/*
 * Writes what output the socket takes.  The rest waits for EV_WRITE; a
 * draining connection is closed once it is all out.  Inside conn_process
 * it waits for the end of the batch.
 */
static void conn_flush(struct conn *c)
{
	struct conn_bytes *o = &c->out;
	ssize_t n;

	if (c->state == CONN_DEAD || c->in_process)
		return;
	while (conn_bytes_held(o) > 0) {
		n = send(c->fd, o->data + o->off, conn_bytes_held(o),
		    MSG_NOSIGNAL);
		if (n > 0) {
			conn_bytes_take(o, (size_t)n, CONN_OUT_KEEP);
			c->active_ms = conn_now_ms();
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (event_pending(c->ev_write, EV_WRITE, NULL))
				return;
			/* The write timeout runs from here. */
			c->active_ms = conn_now_ms();
			if (event_add(c->ev_write, NULL) != 0)
				conn_close(c);
			return;
		}
		conn_close(c);		/* the peer is gone */
		return;
	}
	if (event_pending(c->ev_write, EV_WRITE, NULL))
		event_del(c->ev_write);
	if (c->state == CONN_DRAINING)
		conn_close(c);
}

static void conn_send(struct conn *c, const proto_msg *m)
{
	proto_buf *b = &c->srv->scratch;

	if (c->state == CONN_DEAD)
		return;
	proto_buf_reset(b);
	if (proto_encode(b, m) != PROTO_OK) {
		/* Our own reply over a limit is a bug, not the client's. */
		log_warn("cannot encode a %s reply for pid %ld",
		    proto_type_name(m->type), (long)c->pid);
		conn_close(c);
		return;
	}
	if (conn_bytes_add(&c->out, b->data, b->len) != 0) {
		conn_close(c);
		return;
	}
	conn_flush(c);
}

/* Error codes after which the stream cannot be trusted any more.  DENIED
 * here is a read-only peer's write: the stream is fine and its lookups
 * may go on (a refused peer never gets this far: conn_refuse). */
static int conn_err_fatal(int code)
{
	return code != PROTO_E_LIMIT && code != PROTO_E_STORE &&
	    code != PROTO_E_DENIED;
}

static void conn_error(struct conn *c, int code, const char *why)
{
	proto_msg m = { .type = PROTO_ERROR };

	m.u.error.code = (uint16_t)code;
	m.u.error.message = why;
	if (c->state != CONN_DEAD && conn_err_fatal(code)) {
		/* conn_flush closes it once the reply is out. */
		c->state = CONN_DRAINING;
		conn_read_off(c);
	}
	conn_send(c, &m);
}

static void conn_store_error(struct conn *c, int rc)
{
	const char *msg = store_error(c->srv->store);

	conn_error(c, PROTO_E_STORE, msg);
	server_store_failed(c->srv, rc);
}

/* Hold reply m until the open transaction commits; the reply also needs
 * every transaction since the one numbered since (0: only the open one). */
static void conn_wait_commit(struct conn *c, const proto_msg *m,
    uint64_t since)
{
	proto_buf_reset(&c->reply);
	if (proto_encode(&c->reply, m) != PROTO_OK) {
		conn_close(c);
		return;
	}
	c->txn = since != 0 ? since : store_txn_serial(c->srv->store);
	c->state = CONN_WAIT_COMMIT;
	c->listed = 1;
	conn_read_off(c);
	TAILQ_INSERT_TAIL(&c->srv->waiting, c, wait_entry);
	server_schedule_commit(c->srv);
}

static void conn_hello(struct conn *c, const proto_msg *req)
{
	proto_msg m = { .type = PROTO_HELLO | PROTO_REPLY };

	if (req->u.hello.version != TC_PROTO_VERSION) {
		conn_error(c, PROTO_E_VERSION,
		    "unsupported protocol version; this tcached speaks 1");
		return;
	}
	m.u.hello.version = TC_PROTO_VERSION;
	/* Tells a read-only peer at once, so it can skip its records. */
	m.u.hello.name = c->readonly ? "tcached/" TC_VERSION " read-only" :
	    "tcached/" TC_VERSION;
	c->state = CONN_READY;
	conn_send(c, &m);
}

static void conn_status(struct conn *c)
{
	const struct config *cfg = c->srv->cfg;
	proto_msg m = { .type = PROTO_STATUS | PROTO_REPLY };

	m.u.status_r.version = (char *)TC_VERSION;
	m.u.status_r.pid = (uint32_t)getpid();
	m.u.status_r.uptime_ms = server_now_ms() - c->srv->start_ms;
	m.u.status_r.socket = (char *)cfg->socket_path;
	m.u.status_r.db = (char *)cfg->db_path;
	m.u.status_r.entries = store_entries(c->srv->store);
	m.u.status_r.ttl_ms = cfg->ttl_ms;
	m.u.status_r.max_entries = cfg->max_entries;
	conn_send(c, &m);
}

static void conn_lookup(struct conn *c, const proto_msg *req)
{
	struct store *st = c->srv->store;
	uint32_t n = req->u.lookup.n;
	proto_msg m = { .type = PROTO_LOOKUP | PROTO_REPLY };
	tc_result *res;
	uint64_t now = server_now_ms();
	int rc = STORE_OK;

	if ((res = calloc(n ? n : 1, sizeof *res)) == NULL) {
		conn_error(c, PROTO_E_BUSY, "out of memory");
		return;
	}
	/* Hit counts wait in memory for the next transaction (store_touch):
	 * one is opened here only when these could overflow them.  If none
	 * can be opened (disk full) the lookups are still answered. */
	if (store_touches(st) + n > STORE_TOUCH_MAX && store_begin(st) ==
	    STORE_OK)
		server_schedule_commit(c->srv);
	for (uint32_t i = 0; i < n && rc == STORE_OK; i++)
		rc = store_lookup(st, req->u.lookup.keys[i], now, &res[i]);
	if (rc == STORE_OK) {
		m.u.lookup_r.n = n;
		m.u.lookup_r.results = res;
		conn_send(c, &m);
	} else
		conn_store_error(c, rc);
	for (uint32_t i = 0; i < n; i++)
		proto_result_clear(&res[i]);
	free(res);
}

static const char *conn_outcome_name(uint8_t outcome)
{
	static const char *const names[] = { "?", "pass", "fail", "skip",
	    "error" };

	return outcome < sizeof names / sizeof names[0] ? names[outcome] : "?";
}

/*
 * A record that disagrees with a live entry under the same key (same
 * inputs, another outcome) is either a flaky test or a client planting
 * results: the entry is marked flaky and never a hit again, the reply
 * says TC_STORED_FLAKY, and the log says who.  Bounded, so a client that
 * sends 4096 of them cannot flood the log.
 */
#define CONN_CONFLICTS_LOGGED 3

static void conn_log_conflicts(const struct conn *c, const proto_msg *req,
    const uint8_t *status)
{
	const tc_record *rec;
	char test[160], project[80];
	uint32_t seen = 0;

	for (uint32_t i = 0; i < req->u.record.n; i++) {
		if (status[i] != TC_STORED_FLAKY)
			continue;
		if (seen++ >= CONN_CONFLICTS_LOGGED)
			continue;
		rec = &req->u.record.records[i];
		log_warn("conflicting record from uid %ld pid %ld: %s%s%s now "
		    "%s, but a live entry with the same inputs says otherwise: "
		    "marked flaky", (long)c->uid, (long)c->pid,
		    log_scrub(rec->project, project, sizeof project),
		    rec->project[0] ? " " : "",
		    log_scrub(rec->test, test, sizeof test),
		    conn_outcome_name(rec->outcome));
	}
	if (seen > CONN_CONFLICTS_LOGGED)
		log_warn("conflicting records from uid %ld pid %ld: %lu more in "
		    "that request, all marked flaky", (long)c->uid,
		    (long)c->pid, (unsigned long)(seen - CONN_CONFLICTS_LOGGED));
}

static void conn_record(struct conn *c, const proto_msg *req)
{
	struct store *st = c->srv->store;
	uint32_t n = req->u.record.n;
	proto_msg m = { .type = PROTO_RECORD | PROTO_REPLY };
	uint8_t *status;
	uint64_t now = server_now_ms();
	int rc, flaky;

	if ((status = calloc(n ? n : 1, 1)) == NULL) {
		conn_error(c, PROTO_E_BUSY, "out of memory");
		return;
	}
	if ((rc = store_begin(st)) == STORE_OK)
		rc = store_savepoint(st);
	for (uint32_t i = 0; i < n && rc == STORE_OK; i++) {
		flaky = 0;
		rc = store_record(st, &req->u.record.records[i], now, &flaky);
		status[i] = flaky ? TC_STORED_FLAKY : TC_STORED;
	}
	if (rc == STORE_OK)
		rc = store_release(st);
	if (rc != STORE_OK) {
		if (store_in_txn(st))
			store_rollback_savepoint(st);
		conn_store_error(c, rc);
	} else {
		conn_log_conflicts(c, req, status);
		m.u.record_r.n = n;
		m.u.record_r.status = status;
		conn_wait_commit(c, &m, 0);
	}
	free(status);
}

static void conn_invalidate(struct conn *c, const proto_msg *req)
{
	proto_msg m = { .type = PROTO_INVALIDATE | PROTO_REPLY };
	struct store_filter *f = &c->filter;
	int rc;

	f->mode = req->u.invalidate.mode;
	memcpy(f->key, req->u.invalidate.key, sizeof f->key);
	free(c->filter_arg);
	if ((c->filter_arg = strdup(req->u.invalidate.arg)) == NULL) {
		conn_error(c, PROTO_E_BUSY, "out of memory");
		return;
	}
	f->arg = c->filter_arg;
	if (f->mode == TC_INV_PATH && f->arg[0] != '/') {
		conn_error(c, PROTO_E_MALFORMED, "invalidate path must be absolute");
		return;
	}
	if (req->u.invalidate.dry_run) {
		rc = store_invalidate_count(c->srv->store, f,
		    &m.u.invalidate_r.count);
		if (rc != STORE_OK)
			conn_store_error(c, rc);
		else
			conn_send(c, &m);
		free(c->filter_arg);
		c->filter_arg = NULL;
		return;
	}
	conn_start_job(c, CONN_JOB_INVALIDATE);
}

static void conn_stats(struct conn *c, const proto_msg *req)
{
	proto_msg m = { .type = PROTO_STATS | PROTO_REPLY };
	tc_stat *st, *grown;
	size_t n;
	int rc;

	if (req->u.stats.reset) {
		if ((rc = store_begin(c->srv->store)) != STORE_OK) {
			conn_store_error(c, rc);
			return;
		}
		store_stats_reset(c->srv->store);
	}
	if ((rc = store_stats(c->srv->store, &st, &n)) != STORE_OK) {
		conn_store_error(c, rc);
		return;
	}
	if ((grown = realloc(st, (n + 1) * sizeof *st)) == NULL ||
	    (grown[n].name = strdup("uptime_ms")) == NULL) {
		proto_stats_free(grown != NULL ? grown : st, n);
		conn_error(c, PROTO_E_BUSY, "out of memory");
		return;
	}
	st = grown;
	st[n++].value = server_now_ms() - c->srv->start_ms;
	m.u.stats_r.n = (uint32_t)n;
	m.u.stats_r.stats = st;
	if (req->u.stats.reset)
		conn_wait_commit(c, &m, 0);
	else
		conn_send(c, &m);
	proto_stats_free(st, n);
}

/* Entries as a reader should see them: with the hits counted so far. */
static void conn_apply_hits(struct conn *c)
{
	struct store *st = c->srv->store;

	if (store_touches(st) > 0 && store_begin(st) == STORE_OK)
		server_schedule_commit(c->srv);
}

static void conn_list(struct conn *c, const proto_msg *req)
{
	proto_msg m = { .type = PROTO_LIST | PROTO_REPLY };
	tc_entry *e = NULL;
	size_t n = 0;
	uint32_t limit = req->u.list.limit;
	int rc;

	if (limit == 0 || limit > TC_MAX_LIST)
		limit = TC_MAX_LIST;
	conn_apply_hits(c);
	rc = store_list(c->srv->store, req->u.list.test_glob,
	    req->u.list.path, req->u.list.after, limit, &e, &n,
	    &m.u.list_r.next);
	if (rc != STORE_OK) {
		conn_store_error(c, rc);
		return;
	}
	m.u.list_r.n = (uint32_t)n;
	m.u.list_r.entries = e;
	conn_send(c, &m);
	proto_entries_free(e, n);
}

static void conn_explain(struct conn *c, const proto_msg *req)
{
	proto_msg m = { .type = PROTO_EXPLAIN | PROTO_REPLY };
	tc_input *in = NULL;
	size_t n = 0;
	int found = 0, rc;

	conn_apply_hits(c);
	rc = store_explain(c->srv->store, req->u.explain.project,
	    req->u.explain.test, &found, &m.u.explain_r.entry, &in, &n);
	if (rc != STORE_OK) {
		conn_store_error(c, rc);
		return;
	}
	m.u.explain_r.found = (uint8_t)found;
	m.u.explain_r.inputs = in;
	m.u.explain_r.ninputs = (uint32_t)n;
	conn_send(c, &m);
	if (found)
		proto_entry_clear(&m.u.explain_r.entry);
	proto_inputs_free(in, n);
}

static void conn_slowest(struct conn *c, const proto_msg *req)
{
	proto_msg m = { .type = PROTO_SLOWEST | PROTO_REPLY };
	tc_slow *sl = NULL;
	size_t n = 0;
	int rc;

	rc = store_slowest(c->srv->store, server_now_ms(), req->u.slowest.n,
	    &sl, &n);
	if (rc != STORE_OK) {
		conn_store_error(c, rc);
		return;
	}
	m.u.slowest_r.n = (uint32_t)n;
	m.u.slowest_r.slow = sl;
	conn_send(c, &m);
	proto_slow_free(sl, n);
}

/* Input stays unread while the job runs, so replies keep their order. */
static void conn_start_job(struct conn *c, enum conn_job job)
{
	c->job = job;
	c->job_count = 0;
	c->job_txn = 0;
	c->state = CONN_JOB;
	c->listed = 1;
	conn_read_off(c);
	TAILQ_INSERT_TAIL(&c->srv->jobs, c, wait_entry);
	server_schedule_jobs(c->srv);
}

/* Requests a read-only peer may not make: those that change entries or
 * counters.  A LOOKUP's hit count and last use are bookkeeping, allowed;
 * a dry-run INVALIDATE only counts. */
static int conn_writes(const proto_msg *m)
{
	switch (m->type) {
	case PROTO_RECORD:
	case PROTO_GC:
		return 1;
	case PROTO_INVALIDATE:
		return !m->u.invalidate.dry_run;
	case PROTO_STATS:
		return m->u.stats.reset != 0;
	default:
		return 0;
	}
}

static void conn_deny_write(struct conn *c, const proto_msg *m)
{
	char why[128];

	/* Once a connection: a client retrying in a loop must not flood. */
	if (!c->denied_logged) {
		c->denied_logged = 1;
		log_warn("denied %s from read-only uid %ld gid %ld (pid %ld)",
		    proto_type_name(m->type), (long)c->uid, (long)c->gid,
		    (long)c->pid);
	}
	snprintf(why, sizeof why, "read-only client (uid %ld): %s not allowed",
	    (long)c->uid, proto_type_name(m->type));
	conn_error(c, PROTO_E_DENIED, why);
}

static void conn_dispatch(struct conn *c, const proto_msg *m)
{
	if (m->type == PROTO_HELLO) {
		conn_hello(c, m);
		return;
	}
	if (c->state == CONN_HELLO) {
		conn_error(c, PROTO_E_HANDSHAKE, "HELLO must come first");
		return;
	}
	if (c->readonly && conn_writes(m)) {
		conn_deny_write(c, m);
		return;
	}
	switch (m->type) {
	case PROTO_STATUS:	conn_status(c); break;
	case PROTO_LOOKUP:	conn_lookup(c, m); break;
	case PROTO_RECORD:	conn_record(c, m); break;
	case PROTO_INVALIDATE:	conn_invalidate(c, m); break;
	case PROTO_STATS:	conn_stats(c, m); break;
	case PROTO_LIST:	conn_list(c, m); break;
	case PROTO_EXPLAIN:	conn_explain(c, m); break;
	case PROTO_GC:		conn_start_job(c, CONN_JOB_GC); break;
	case PROTO_SLOWEST:	conn_slowest(c, m); break;
	default:
		/* A reply type sent to us: well formed, but not a request. */
		conn_error(c, PROTO_E_UNKNOWN, "not a request type");
		break;
	}
}

/* Takes whole frames off p[0..len) while the connection may answer;
 * returns the bytes taken. */
static size_t conn_frames(struct conn *c, const uint8_t *p, size_t len)
{
	char why[128];
	size_t used = 0;
	uint32_t flen;
	proto_msg m;
	int rc;

	while ((c->state == CONN_HELLO || c->state == CONN_READY) &&
	    !c->paused) {
		if (conn_bytes_held(&c->out) > CONN_OUT_HIGH) {
			c->paused = 1;
			conn_read_off(c);
			break;
		}
		if (len - used < TC_FRAME_HEADER)
			break;
		if ((rc = proto_frame_len(p + used, &flen)) != PROTO_OK) {
			conn_error(c, rc, rc == PROTO_E_TOO_LARGE ?
			    "frame over 4 MiB" : "empty frame");
			break;
		}
		if (len - used - TC_FRAME_HEADER < flen)
			break;
		rc = proto_decode(p + used + TC_FRAME_HEADER, flen, &m, why,
		    sizeof why);
		used += TC_FRAME_HEADER + flen;
		if (rc != PROTO_OK) {
			conn_error(c, rc, why);
			continue;
		}
		conn_dispatch(c, &m);
		proto_msg_free(&m);
	}
	return used;
}

/* Answers the frames held in c->in, then writes the replies together; a
 * connection paused for its output resumes once that is down to
 * CONN_OUT_LOW. */
static void conn_process(struct conn *c)
{
	struct conn_bytes *in = &c->in;

	for (;;) {
		if (conn_bytes_held(in) > 0 && !c->paused) {
			c->in_process = 1;
			conn_bytes_take(in, conn_frames(c, in->data + in->off,
			    conn_bytes_held(in)), 0);
			c->in_process = 0;
		}
		conn_flush(c);
		if (!c->paused || (c->state != CONN_HELLO &&
		    c->state != CONN_READY) ||
		    conn_bytes_held(&c->out) > CONN_OUT_LOW)
			return;
		c->paused = 0;
		conn_read_on(c);
	}
}

/* EOF, or an error: the client is gone. */
static void conn_read_failed(struct conn *c, ssize_t n)
{
	if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK ||
	    errno == EINTR))
		return;
	conn_close(c);
}

/* More of the partial frame in c->in, read into c->in itself, which grows
 * with what comes (up to the frame's length, checked already). */
static void conn_read_more(struct conn *c)
{
	struct conn_bytes *in = &c->in;
	size_t held = conn_bytes_held(in), need = TC_FRAME_HEADER, want;
	uint32_t flen;
	ssize_t n;

	if (held >= TC_FRAME_HEADER &&
	    proto_frame_len(in->data + in->off, &flen) == PROTO_OK)
		need = TC_FRAME_HEADER + (size_t)flen;
	want = need > held ? need - held : 1;
	if (want > CONN_READ_BYTES)
		want = CONN_READ_BYTES;
	if (conn_bytes_room(in, want, need > held ? need : held + 1) != 0) {
		conn_error(c, PROTO_E_BUSY, "out of memory");
		return;
	}
	n = read(c->fd, in->data + in->len, in->cap - in->len);
	if (n <= 0) {
		conn_read_failed(c, n);
		return;
	}
	in->len += (size_t)n;
	c->active_ms = conn_now_ms();
	conn_process(c);
}

static void conn_read_cb(evutil_socket_t fd, short what, void *arg)
{
	/* Shared by every connection: only one reads at a time, and what a
	 * connection does not answer at once is copied to its own c->in. */
	static uint8_t buf[CONN_READ_BYTES];
	struct conn *c = arg;
	size_t used;
	ssize_t n;

	(void)what;
	if (!c->reading) {
		/* Turned off lazily (conn_read_off): now it costs a call. */
		event_del(c->ev_read);
		return;
	}
	if (conn_bytes_held(&c->in) > 0) {
		conn_read_more(c);
		return;
	}
	n = read(fd, buf, sizeof buf);
	if (n <= 0) {
		conn_read_failed(c, n);
		return;
	}
	c->active_ms = conn_now_ms();
	c->in_process = 1;
	used = conn_frames(c, buf, (size_t)n);
	c->in_process = 0;
	if (used < (size_t)n && (c->state == CONN_HELLO ||
	    c->state == CONN_READY || c->state == CONN_WAIT_COMMIT ||
	    c->state == CONN_JOB) &&
	    conn_bytes_add(&c->in, buf + used, (size_t)n - used) != 0) {
		conn_error(c, PROTO_E_BUSY, "out of memory");
		return;
	}
	conn_process(c);
}

static void conn_write_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	(void)fd;
	(void)what;
	conn_process(c);
}

static void conn_idle_arm(struct conn *c, uint64_t ms)
{
	struct timeval tv;

	if (ms == 0)
		ms = 1;
	tv.tv_sec = (time_t)(ms / 1000);
	tv.tv_usec = (suseconds_t)(ms % 1000) * 1000;
	if (evtimer_add(c->ev_idle, &tv) != 0)
		log_warn("cannot arm the idle timer of pid %ld", (long)c->pid);
}

/*
 * The idle timeout: a client we wait on, for a request (reading) or for
 * room to write its replies (output held), that made no progress for
 * --idle-timeout is closed.  One held by a commit or a job is not idle.
 */
static void conn_idle_cb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;
	uint64_t idle = c->srv->cfg->idle_ms, quiet;
	int waiting = c->reading || conn_bytes_held(&c->out) > 0;

	(void)fd;
	(void)what;
	if (c->state == CONN_DEAD)
		return;
	quiet = conn_now_ms() - c->active_ms;
	if (!waiting) {
		conn_idle_arm(c, idle);
		return;
	}
	if (quiet >= idle) {
		log_info("closing idle connection of pid %ld", (long)c->pid);
		conn_close(c);
		return;
	}
	conn_idle_arm(c, idle - quiet);
}

/*
 * After a successful commit: 1 when every transaction c's reply needs was
 * committed.  One that SQLite rolled back on its own while c waited (a
 * disk full or an I/O error in another client's request) took c's writes
 * with it, though the commit that follows succeeds.
 */
int conn_committed(const struct conn *c)
{
	return c->txn != 0 && c->txn > store_lost_serial(c->srv->store);
}

/* Called by the server after a group commit, or its failure. */
void conn_deliver(struct conn *c, int committed)
{
	c->listed = 0;
	c->txn = 0;
	if (c->state == CONN_DEAD) {
		/* The reaper passed it over while it was listed. */
		event_active(c->srv->ev_reap, EV_TIMEOUT, 0);
		return;
	}
	c->state = CONN_READY;
	if (committed) {
		if (conn_bytes_add(&c->out, c->reply.data, c->reply.len) != 0) {
			conn_close(c);
			return;
		}
	} else
		conn_error(c, PROTO_E_STORE, store_error(c->srv->store));
	proto_buf_reset(&c->reply);
	if (c->state == CONN_READY) {
		conn_read_on(c);
		conn_process(c);	/* writes the reply, takes what waited */
	}
}

/* One bounded step of the connection's invalidate or gc job.  When it has
 * done all it must, its reply waits for the commit of its last step. */
void conn_job_step(struct conn *c)
{
	struct store *st = c->srv->store;
	proto_msg m = { .type = PROTO_GC | PROTO_REPLY };
	uint64_t removed = 0, t0;
	unsigned limit = server_step_rows();
	int rc, lost;

	if (c->state == CONN_DEAD || c->srv->stopping) {
		TAILQ_REMOVE(&c->srv->jobs, c, wait_entry);
		c->listed = 0;
		if (c->state == CONN_DEAD)
			event_active(c->srv->ev_reap, EV_TIMEOUT, 0);
		else
			conn_error(c, PROTO_E_BUSY, "tcached is shutting down");
		return;
	}
	/* A step whose transaction did not commit (a full disk) is undone:
	 * its rows are back, and the next step would remove them again, and
	 * so on for as long as the disk stays full.  The job fails there;
	 * the steps committed before it stay done. */
	lost = c->job_txn != 0 && store_lost_serial(st) >= c->job_txn;
	if (lost)
		rc = STORE_EFAIL;
	else if ((rc = store_begin(st)) == STORE_OK) {
		if (c->job_txn == 0)
			c->job_txn = store_txn_serial(st);
		t0 = server_mono_us();
		if (c->job == CONN_JOB_GC)
			rc = store_sweep_step(st, server_now_ms(), limit,
			    &removed);
		else
			rc = store_invalidate_step(st, &c->filter, limit,
			    &removed);
		server_step_done(removed, server_mono_us() - t0);
	}
	if (!lost)
		server_schedule_commit(c->srv);
	c->job_count += removed;
	if (rc == STORE_OK && removed == limit)
		return;			/* more to do on the next turn */
	TAILQ_REMOVE(&c->srv->jobs, c, wait_entry);
	c->listed = 0;
	free(c->filter_arg);
	c->filter_arg = NULL;
	if (rc != STORE_OK) {
		c->job_txn = 0;
		c->state = CONN_READY;
		conn_read_on(c);
		if (lost)	/* the failed commit was logged already */
			conn_error(c, PROTO_E_STORE, store_error(st));
		else
			conn_store_error(c, rc);
		if (c->state == CONN_READY)
			conn_process(c);	/* what came during the job */
		return;
	}
	if (c->job == CONN_JOB_GC)
		m.u.gc_r.removed = c->job_count;
	else {
		m.type = PROTO_INVALIDATE | PROTO_REPLY;
		m.u.invalidate_r.count = c->job_count;
	}
	c->job = CONN_JOB_NONE;
	conn_wait_commit(c, &m, c->job_txn);
	c->job_txn = 0;
}

/* Who is on the other end, from the kernel: never from what it says. */
struct conn_peer {
	struct ucred cred;
	gid_t *groups;			/* supplementary groups, or NULL */
	size_t ngroups;
};

#define CONN_PEERGROUPS_FIRST 64	/* groups asked for at first */

/*
 * The peer's supplementary groups as they were at its connect()
 * (SO_PEERGROUPS, Linux 4.13): a CI job's user is often in the cache's
 * group only as a supplementary one.  A kernel without it gives none, and
 * the primary group alone counts.  -1 when they cannot be read: the
 * caller refuses, for a --readonly-gid must not be missed.
 */
static int conn_peer_groups(int fd, struct conn_peer *p)
{
	socklen_t len = CONN_PEERGROUPS_FIRST * sizeof(gid_t);
	gid_t *g = NULL, *grown;

	/* The kernel's set is fixed at connect: a second try is enough. */
	for (int tries = 0; tries < 3; tries++) {
		if ((grown = realloc(g, len > 0 ? len : sizeof *g)) == NULL)
			break;
		g = grown;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, g, &len) == 0) {
			p->groups = g;
			p->ngroups = len / sizeof *g;
			return 0;
		}
		if (errno == ENOPROTOOPT) {
			free(g);
			return 0;
		}
		if (errno != ERANGE)
			break;
	}
	free(g);
	return -1;
}

static int conn_peer_in(const struct conn_peer *p, const gid_t *list,
    size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (list[i] == p->cred.gid)
			return 1;
		for (size_t j = 0; j < p->ngroups; j++)
			if (list[i] == p->groups[j])
				return 1;
	}
	return 0;
}

/* A read-only peer is served (it need not be allowed as well); the role
 * wins over --allow-uid, our own uid and root alike, so that a CI job run
 * as the daemon's user can still be kept from writing. */
static int conn_peer_readonly(const struct config *cfg,
    const struct conn_peer *p)
{
	for (size_t i = 0; i < cfg->nreadonly_uid; i++)
		if (cfg->readonly_uid[i] == p->cred.uid)
			return 1;
	return conn_peer_in(p, cfg->readonly_gid, cfg->nreadonly_gid);
}

static int conn_peer_allowed(const struct config *cfg,
    const struct conn_peer *p)
{
	if (p->cred.uid == geteuid() || p->cred.uid == 0)
		return 1;
	for (size_t i = 0; i < cfg->nallow_uid; i++)
		if (cfg->allow_uid[i] == p->cred.uid)
			return 1;
	return conn_peer_in(p, cfg->allow_gid, cfg->nallow_gid);
}

/* Best effort: the peer is about to be dropped anyway. */
static void conn_refuse(int fd, int code, const char *why)
{
	proto_buf b;
	proto_msg m = { .type = PROTO_ERROR };

	m.u.error.code = (uint16_t)code;
	m.u.error.message = why;
	proto_buf_init(&b);
	if (proto_encode(&b, &m) == PROTO_OK)
		(void)send(fd, b.data, b.len, MSG_NOSIGNAL | MSG_DONTWAIT);
	proto_buf_free(&b);
	close(fd);
}

/* 1 when a refusal may be logged: SERVER_REFUSALS_LOGGED lines a second,
 * so another user connecting in a loop cannot fill our disk with the log;
 * the refusals not logged are counted in the next second's first line. */
static int conn_log_refusal(struct server *srv)
{
	uint64_t second = server_now_ms() / 1000;

	if (second != srv->refused_second) {
		if (srv->refused_quiet > 0)
			log_warn("%llu more connections refused, not logged",
			    (unsigned long long)srv->refused_quiet);
		srv->refused_second = second;
		srv->refused_logged = 0;
		srv->refused_quiet = 0;
	}
	if (srv->refused_logged >= SERVER_REFUSALS_LOGGED) {
		srv->refused_quiet++;
		return 0;
	}
	srv->refused_logged++;
	return 1;
}

/* 1: serve read-write, 2: read-only, 0: refuse (and log why). */
static int conn_peer_role(struct server *srv, int fd, const struct ucred *cred)
{
	const struct config *cfg = srv->cfg;
	struct conn_peer p = { *cred, NULL, 0 };
	int role;

	if (cfg->nallow_gid + cfg->nreadonly_gid > 0 &&
	    conn_peer_groups(fd, &p) != 0) {
		log_warn("refused connection from uid %ld gid %ld (pid %ld): "
		    "SO_PEERGROUPS: %s", (long)cred->uid, (long)cred->gid,
		    (long)cred->pid, strerror(errno));
		return 0;
	}
	role = conn_peer_readonly(cfg, &p) ? 2 : conn_peer_allowed(cfg, &p);
	free(p.groups);
	if (role == 0 && conn_log_refusal(srv))
		log_warn("refused connection from uid %ld gid %ld (pid %ld)",
		    (long)cred->uid, (long)cred->gid, (long)cred->pid);
	return role;
}

void conn_accept(struct server *srv, int fd)
{
	struct ucred cred;
	socklen_t clen = sizeof cred;
	struct conn *c;
	int role;

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) != 0) {
		log_warn("SO_PEERCRED: %s", strerror(errno));
		close(fd);
		return;
	}
	if ((role = conn_peer_role(srv, fd, &cred)) == 0) {
		conn_refuse(fd, PROTO_E_DENIED, "uid not allowed by tcached");
		return;
	}
	if (srv->stopping || srv->nconns >= srv->cfg->max_clients) {
		conn_refuse(fd, PROTO_E_BUSY, srv->stopping ?
		    "tcached is shutting down" : "too many connections");
		return;
	}
	if ((c = calloc(1, sizeof *c)) == NULL) {
		close(fd);
		return;
	}
	c->srv = srv;
	c->uid = cred.uid;
	c->gid = cred.gid;
	c->pid = cred.pid;
	c->readonly = role == 2;
	c->state = CONN_HELLO;
	c->fd = fd;
	proto_buf_init(&c->reply);
	/* The listener made fd non-blocking and close-on-exec. */
	c->ev_read = event_new(srv->base, fd, EV_READ | EV_PERSIST,
	    conn_read_cb, c);
	c->ev_write = event_new(srv->base, fd, EV_WRITE | EV_PERSIST,
	    conn_write_cb, c);
	c->ev_idle = evtimer_new(srv->base, conn_idle_cb, c);
	if (c->ev_read == NULL || c->ev_write == NULL || c->ev_idle == NULL ||
	    event_add(c->ev_read, NULL) != 0) {
		conn_free(c);
		return;
	}
	c->reading = 1;
	c->active_ms = conn_now_ms();
	conn_idle_arm(c, srv->cfg->idle_ms);
	TAILQ_INSERT_TAIL(&srv->conns, c, entry);
	srv->nconns++;
}

/* Marks c closed; the server's reaper frees it once no list holds it. */
void conn_close(struct conn *c)
{
	struct server *srv = c->srv;

	if (c->state == CONN_DEAD)
		return;
	c->state = CONN_DEAD;
	c->reading = 0;
	event_del(c->ev_read);
	event_del(c->ev_write);
	event_del(c->ev_idle);
	TAILQ_REMOVE(&srv->conns, c, entry);
	TAILQ_INSERT_TAIL(&srv->dead, c, entry);
	srv->nconns--;
	event_active(srv->ev_reap, EV_TIMEOUT, 0);
}

void conn_free(struct conn *c)
{
	if (c->ev_read != NULL)
		event_free(c->ev_read);
	if (c->ev_write != NULL)
		event_free(c->ev_write);
	if (c->ev_idle != NULL)
		event_free(c->ev_idle);
	close(c->fd);
	conn_bytes_free(&c->in);
	conn_bytes_free(&c->out);
	proto_buf_free(&c->reply);
	free(c->filter_arg);
	free(c);
}

/* Shutdown: a connection with nothing in flight is closed once its
 * output is flushed; one waiting on a commit is answered first. */
void conn_shutdown(struct conn *c)
{
	if (c->state == CONN_HELLO || c->state == CONN_READY) {
		c->state = CONN_DRAINING;
		conn_read_off(c);
		conn_flush(c);		/* closes it once the output is out */
	}
}
