/*
 * libtcache's connection to tcached: connecting (and starting the daemon
 * when asked), the handshake, one request and its reply at a time, each
 * within the call's timeout, and the calls of tcache.h built on them.
 *
 * A connection is either in step with the daemon or closed: any failure
 * that may leave part of a frame on the wire (a timeout, a short write, a
 * reply that does not parse) closes it, and the next call connects again.
 * Only the error replies after which the daemon keeps the connection (LIMIT
 * and STORE) leave it open.
 *
 * The timeout bounds each frame's round trip (and the connection before
 * it), so a batch split into several frames has a budget for each.
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../proto/proto.h"
#include "tcache.h"

#ifndef TC_VERSION
#define TC_VERSION "0"
#endif

/* Per-call timeout when the options give none, in milliseconds. */
#define CLIENT_TIMEOUT_MS 5000
/* Between attempts to reach a daemon being started, in milliseconds. */
#define CLIENT_RETRY_MS 10
/* Bytes of the last error message. */
#define CLIENT_ERRLEN (TC_MAX_MESSAGE + 256)
/* The least a read asks for: a usual reply comes whole in one recv. */
#define CLIENT_READ_MIN 4096

struct tc_client {
	char *socket;			/* path of tcached's socket */
	char *daemon;			/* tcached to autostart; NULL: $PATH's */
	char *db;			/* --db for it; NULL: its default */
	int timeout_ms;			/* budget of one call */
	int autostart;			/* start tcached when none answers */
	int own_peer;			/* serve us only a tcached of ours */
	int fd;				/* connection, or -1 */
	proto_buf out;			/* the frame being sent */
	uint8_t *in;			/* what was received: [inoff, inlen) */
	size_t incap, inoff, inlen;	/* is not taken yet */
	char err[CLIENT_ERRLEN];	/* message of the last failure */
};

static tc_status client_fail(tc_client *, tc_status, const char *, ...)
	__attribute__((format(printf, 3, 4)));

static tc_status client_fail(tc_client *c, tc_status st, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->err, sizeof c->err, fmt, ap);
	va_end(ap);
	return st;
}

static void client_close(tc_client *c)
{
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	c->inoff = c->inlen = 0;	/* bytes of a connection now gone */
}

/* Closes the connection, which a failure left out of step. */
static tc_status client_drop(tc_client *c, tc_status st)
{
	client_close(c);
	return st;
}

static int64_t client_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t client_deadline(const tc_client *c)
{
	return client_now_ms() + c->timeout_ms;
}

static int client_left(int64_t deadline)
{
	int64_t left = deadline - client_now_ms();

	return left > 0 ? (int)left : 0;
}

/* 1 when fd is ready for events, 0 at the deadline, -1 on error. */
static int client_wait(int fd, short events, int64_t deadline)
{
	struct pollfd pfd = { fd, events, 0 };
	int n;

	for (;;) {
		n = poll(&pfd, 1, client_left(deadline));
		if (n == -1 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n != 0 || client_left(deadline) == 0)
			return n;
	}
}

static void client_sleep(int ms)
{
	struct timespec ts = { 0, (long)ms * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* --- the client --- */

static char *client_strdup(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

/*
 * 1 when the default socket is the fallback under /tmp (tc_default_socket
 * with neither $TCACHE_SOCKET nor $XDG_RUNTIME_DIR set): another user may
 * have made /tmp/tcache-UID before us and serve passes from there.  A path
 * named on purpose is trusted, since a shared tcached (CI) serves others.
 */
static int client_default_in_tmp(void)
{
	static const char *const overrides[] = {
		"TCACHE_SOCKET", "XDG_RUNTIME_DIR",
	};
	const char *v;

	for (size_t i = 0; i < sizeof overrides / sizeof overrides[0]; i++)
		if ((v = getenv(overrides[i])) != NULL && v[0] != '\0')
			return 0;
	return 1;
}

tc_client *tc_client_new(const tc_options *opts)
{
	static const tc_options none;
	char sock[TC_MAX_PATH + 1];
	tc_client *c;

	if (opts == NULL)
		opts = &none;
	if ((c = calloc(1, sizeof *c)) == NULL)
		return NULL;
	c->fd = -1;
	proto_buf_init(&c->out);
	c->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms :
	    CLIENT_TIMEOUT_MS;
	c->autostart = opts->autostart;
	c->own_peer = opts->socket == NULL && client_default_in_tmp();
	/* A default too long for the buffer leaves "" for tc_connect to refuse. */
	if (opts->socket == NULL && tc_default_socket(sock, sizeof sock) == NULL)
		sock[0] = '\0';
	c->socket = strdup(opts->socket != NULL ? opts->socket : sock);
	c->daemon = client_strdup(opts->daemon);
	c->db = client_strdup(opts->db);
	if (c->socket == NULL || (opts->daemon != NULL && c->daemon == NULL) ||
	    (opts->db != NULL && c->db == NULL)) {
		tc_client_free(c);
		return NULL;
	}
	return c;
}

void tc_client_free(tc_client *c)
{
	if (c == NULL)
		return;
	client_close(c);
	proto_buf_free(&c->out);
	free(c->in);
	free(c->socket);
	free(c->daemon);
	free(c->db);
	free(c);
}

const char *tc_client_error(const tc_client *c)
{
	return c->err;
}

const char *tc_status_name(tc_status s)
{
	switch (s) {
	case TC_OK:
		return "ok";
	case TC_EUNAVAIL:
		return "daemon unavailable";
	case TC_ETIMEDOUT:
		return "timed out";
	case TC_EPROTO:
		return "protocol error";
	case TC_ESERVER:
		return "daemon error";
	case TC_EINVAL:
		return "invalid argument";
	case TC_EIO:
		return "I/O error";
	case TC_ENOMEM:
		return "out of memory";
	}
	return "unknown error";
}

/* --- frames --- */

static tc_status client_send(tc_client *c, int64_t deadline)
{
	const uint8_t *p = c->out.data;
	size_t left = c->out.len;
	ssize_t n;
	int r;

	while (left > 0) {
		n = send(c->fd, p, left, MSG_NOSIGNAL);
		if (n > 0) {
			p += n;
			left -= (size_t)n;
			continue;
		}
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK)
			return client_fail(c, TC_EUNAVAIL, "%s: send: %s",
			    c->socket, strerror(errno));
		if ((r = client_wait(c->fd, POLLOUT, deadline)) == 0)
			return client_fail(c, TC_ETIMEDOUT,
			    "%s: no progress sending within %d ms", c->socket,
			    c->timeout_ms);
		if (r == -1)
			return client_fail(c, TC_EUNAVAIL, "%s: poll: %s",
			    c->socket, strerror(errno));
	}
	return TC_OK;
}

/*
 * Receives until n bytes are held in c->in.  Each recv takes whatever has
 * come, up to the buffer's size, so a usual reply is one recv, header and
 * body; what is past the frame stays for the next.  The reply to a
 * request just sent cannot be there yet, so it waits first: a recv that
 * would fail with EAGAIN is a system call for nothing.
 */
static tc_status client_fill(tc_client *c, size_t n, int64_t deadline)
{
	size_t cap;
	uint8_t *p;
	ssize_t got;
	int r;

	if (c->inlen - c->inoff >= n)
		return TC_OK;
	if (c->inoff > 0) {
		memmove(c->in, c->in + c->inoff, c->inlen - c->inoff);
		c->inlen -= c->inoff;
		c->inoff = 0;
	}
	if (c->incap < n || c->incap < CLIENT_READ_MIN) {
		cap = n > CLIENT_READ_MIN ? n : CLIENT_READ_MIN;
		if ((p = realloc(c->in, cap)) == NULL)
			return client_fail(c, TC_ENOMEM, "out of memory");
		c->in = p;
		c->incap = cap;
	}
	while (c->inlen < n) {
		if ((r = client_wait(c->fd, POLLIN, deadline)) == 0)
			return client_fail(c, TC_ETIMEDOUT,
			    "%s: no reply within %d ms", c->socket,
			    c->timeout_ms);
		if (r == -1)
			return client_fail(c, TC_EUNAVAIL, "%s: poll: %s",
			    c->socket, strerror(errno));
		got = recv(c->fd, c->in + c->inlen, c->incap - c->inlen, 0);
		if (got > 0) {
			c->inlen += (size_t)got;
			continue;
		}
		if (got == 0)
			return client_fail(c, TC_EUNAVAIL,
			    "%s: tcached closed the connection", c->socket);
		if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
			continue;
		return client_fail(c, TC_EUNAVAIL, "%s: recv: %s", c->socket,
		    strerror(errno));
	}
	return TC_OK;
}

/* Reads one frame; *body points at its *len bytes in c->in, valid until
 * the next read. */
static tc_status client_recv_frame(tc_client *c, const uint8_t **body,
				   uint32_t *len, int64_t deadline)
{
	tc_status st;
	int rc;

	if ((st = client_fill(c, TC_FRAME_HEADER, deadline)) != TC_OK)
		return st;
	/* The length is checked before anything is allocated for it. */
	if ((rc = proto_frame_len(c->in + c->inoff, len)) != PROTO_OK)
		return client_fail(c, TC_EPROTO, "%s: bad reply frame (%s)",
		    c->socket, proto_err_name(rc));
	if ((st = client_fill(c, TC_FRAME_HEADER + (size_t)*len, deadline)) !=
	    TC_OK)
		return st;
	*body = c->in + c->inoff + TC_FRAME_HEADER;
	c->inoff += TC_FRAME_HEADER + (size_t)*len;
	return TC_OK;
}

/*
 * A daemon that refuses a peer (DENIED, BUSY) sends its error frame and
 * closes at once, so our send may fail with EPIPE while the reason is
 * already waiting in our receive buffer: read it without waiting, and keep
 * the send's message if there is none.
 */
static tc_status client_recv_refusal(tc_client *c, const uint8_t **body,
				      uint32_t *len)
{
	char saved[CLIENT_ERRLEN];
	tc_status st;

	memcpy(saved, c->err, sizeof saved);
	if ((st = client_recv_frame(c, body, len, client_now_ms())) != TC_OK)
		memcpy(c->err, saved, sizeof saved);
	return st;
}

/* The daemon closes the connection after every error but these. */
static int client_error_keeps(uint16_t code)
{
	return code == PROTO_E_LIMIT || code == PROTO_E_STORE;
}

/* Sends the frame in c->out, reads and decodes the reply into *reply;
 * TC_OK only when the reply has the type that answers request type. */
static tc_status client_exchange(tc_client *c, uint8_t type, proto_msg *reply,
				 int64_t deadline)
{
	const uint8_t *body = NULL;
	char why[256];
	uint32_t len;
	uint16_t code;
	tc_status st;
	int rc;

	if ((st = client_send(c, deadline)) != TC_OK &&
	    (st != TC_EUNAVAIL || client_recv_refusal(c, &body, &len) != TC_OK))
		return client_drop(c, st);
	if (st == TC_OK &&
	    (st = client_recv_frame(c, &body, &len, deadline)) != TC_OK)
		return client_drop(c, st);
	if ((rc = proto_decode(body, len, reply, why, sizeof why)) != PROTO_OK) {
		if (rc == -1)
			return client_drop(c, client_fail(c, TC_ENOMEM,
			    "out of memory"));
		return client_drop(c, client_fail(c, TC_EPROTO,
		    "%s: bad reply: %s", c->socket, why));
	}
	if (reply->type == PROTO_ERROR) {
		code = reply->u.error.code;
		client_fail(c, TC_ESERVER, "tcached: %s (%s)",
		    reply->u.error.message, proto_err_name(code));
		proto_msg_free(reply);
		return client_error_keeps(code) ? TC_ESERVER :
		    client_drop(c, TC_ESERVER);
	}
	if (reply->type != (type | PROTO_REPLY)) {
		client_fail(c, TC_EPROTO, "%s: %s answered by %s", c->socket,
		    proto_type_name(type), proto_type_name(reply->type));
		proto_msg_free(reply);
		return client_drop(c, TC_EPROTO);
	}
	return TC_OK;
}

/* Encodes m into c->out; the PROTO_* result, and a message. */
static int client_encode(tc_client *c, const proto_msg *m)
{
	int rc;

	proto_buf_reset(&c->out);
	if ((rc = proto_encode(&c->out, m)) == -1)
		client_fail(c, TC_ENOMEM, "out of memory");
	else if (rc != PROTO_OK)
		client_fail(c, TC_EINVAL, "%s request: %s",
		    proto_type_name(m->type), rc == PROTO_E_LIMIT ?
		    "a field or the frame is over its limit" :
		    proto_err_name(rc));
	return rc;
}

static tc_status client_rpc(tc_client *c, const proto_msg *m,
			    proto_msg *reply, int64_t deadline)
{
	int rc;

	if ((rc = client_encode(c, m)) != PROTO_OK)
		return rc == -1 ? TC_ENOMEM : TC_EINVAL;
	return client_exchange(c, m->type, reply, deadline);
}

/* --- connecting --- */

/* With own_peer, the tcached on fd must run as us (or as root). */
static tc_status client_peer(tc_client *c, int fd)
{
	struct ucred cred;
	socklen_t len = sizeof cred;

	if (!c->own_peer)
		return TC_OK;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1)
		return client_fail(c, TC_EUNAVAIL, "%s: SO_PEERCRED: %s",
		    c->socket, strerror(errno));
	if (cred.uid == getuid() || cred.uid == geteuid() || cred.uid == 0)
		return TC_OK;
	return client_fail(c, TC_EUNAVAIL, "%s: tcached there runs as uid "
	    "%lu, not as us: refusing it", c->socket,
	    (unsigned long)cred.uid);
}

/*
 * One attempt at the socket.  *absent is set when nothing listens there
 * (no socket, or a socket left by a dead daemon): the case to start one.
 */
static tc_status client_dial(tc_client *c, int64_t deadline, int *absent)
{
	struct sockaddr_un sa;
	size_t len = strlen(c->socket);
	socklen_t sl = sizeof(int);
	int fd, err = 0;
	tc_status st;

	*absent = 0;
	memset(&sa, 0, sizeof sa);
	sa.sun_family = AF_UNIX;
	if (len == 0 || len >= sizeof sa.sun_path)
		return client_fail(c, TC_EINVAL, "socket path \"%s\": %s",
		    c->socket, len == 0 ? "empty" : "too long");
	memcpy(sa.sun_path, c->socket, len + 1);
	fd = socket(AF_UNIX, SOCK_STREAM|SOCK_CLOEXEC|SOCK_NONBLOCK, 0);
	if (fd == -1)
		return client_fail(c, TC_EUNAVAIL, "socket: %s",
		    strerror(errno));
	for (;;) {
		if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0)
			break;
		err = errno;
		/* A full listen queue: the daemon is there but busy. */
		if (err == EAGAIN && client_left(deadline) > 0) {
			client_sleep(CLIENT_RETRY_MS);
			continue;
		}
		if (err == EINTR || err == EINPROGRESS) {
			if (client_wait(fd, POLLOUT, deadline) != 1)
				err = ETIMEDOUT;
			else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err,
			    &sl) == -1)
				err = errno;
			if (err == 0)
				break;
		}
		close(fd);
		*absent = err == ENOENT || err == ECONNREFUSED;
		return client_fail(c, err == ETIMEDOUT || err == EAGAIN ?
		    TC_ETIMEDOUT : TC_EUNAVAIL, "no tcached on %s: %s",
		    c->socket, strerror(err));
	}
	if ((st = client_peer(c, fd)) != TC_OK) {
		close(fd);
		return st;
	}
	c->fd = fd;
	return TC_OK;
}

static tc_status client_hello(tc_client *c, int64_t deadline)
{
	proto_msg m, r;
	tc_status st;

	memset(&m, 0, sizeof m);
	m.type = PROTO_HELLO;
	m.u.hello.version = TC_PROTO_VERSION;
	m.u.hello.name = "libtcache/" TC_VERSION;
	if ((st = client_rpc(c, &m, &r, deadline)) != TC_OK)
		return client_drop(c, st);
	if (r.u.hello.version != TC_PROTO_VERSION) {
		client_fail(c, TC_EPROTO, "%s: tcached speaks protocol %u, "
		    "not %u", c->socket, r.u.hello.version, TC_PROTO_VERSION);
		proto_msg_free(&r);
		return client_drop(c, TC_EPROTO);
	}
	proto_msg_free(&r);
	return TC_OK;
}

/* path made absolute against the current directory, malloc'd. */
static char *client_abspath(const char *path)
{
	char cwd[PATH_MAX], *out;
	size_t len;

	if (path[0] == '/' || getcwd(cwd, sizeof cwd) == NULL)
		return strdup(path);
	len = strlen(cwd) + 1 + strlen(path) + 1;
	if ((out = malloc(len)) != NULL)
		snprintf(out, len, "%s/%s", cwd, path);
	return out;
}

/*
 * In the grandchild: detach, give it /dev/null for stdio, keep only the
 * status pipe (on fd 3, closed by exec), restore the signals a caller may
 * have blocked or ignored, and exec.  Only async-signal-safe calls.
 */
static void client_exec(char *const argv[], int status_fd)
{
	sigset_t all;
	int fd, err, s;

	s = fcntl(status_fd, F_DUPFD_CLOEXEC, 3);
	if ((fd = open("/dev/null", O_RDWR)) == -1 || s == -1)
		goto fail;
	if (dup2(fd, 0) == -1 || dup2(fd, 1) == -1 || dup2(fd, 2) == -1)
		goto fail;
	if (s != 3 && (dup2(s, 3) == -1 || fcntl(3, F_SETFD, FD_CLOEXEC) == -1))
		goto fail;
	status_fd = 3;
	if (close_range(4, ~0u, 0) == -1)
		for (fd = 4; fd < 1024; fd++)
			close(fd);
	sigfillset(&all);
	sigprocmask(SIG_UNBLOCK, &all, NULL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	execvp(argv[0], argv);
fail:
	err = errno;
	while (write(status_fd, &err, sizeof err) == -1 && errno == EINTR)
		;
	_exit(127);
}

/* Waits for the exec of the daemon: 0 once it happened, else its errno. */
static int client_exec_status(int fd, int64_t deadline)
{
	int err = 0;
	ssize_t n;

	for (;;) {
		if (client_wait(fd, POLLIN, deadline) != 1)
			return 0;	/* slow exec: let the retries judge */
		n = read(fd, &err, sizeof err);
		if (n == -1 && (errno == EINTR || errno == EAGAIN))
			continue;
		return n == (ssize_t)sizeof err ? err : 0;
	}
}

/*
 * Starts `tcached --socket S [--db D]` in a session of its own.  The child
 * forks the daemon and exits at once, so it is reaped here and the daemon
 * is nobody's zombie.
 */
static tc_status client_spawn(tc_client *c, char *const argv[],
			      int64_t deadline)
{
	int fds[2], status, err;
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) == -1)
		return client_fail(c, TC_EUNAVAIL, "pipe: %s", strerror(errno));
	if ((pid = fork()) == -1) {
		err = errno;
		close(fds[0]);
		close(fds[1]);
		return client_fail(c, TC_EUNAVAIL, "fork: %s", strerror(err));
	}
	if (pid == 0) {
		close(fds[0]);
		if (setsid() == -1 || (pid = fork()) == -1)
			_exit(127);
		if (pid == 0)
			client_exec(argv, fds[1]);
		_exit(0);
	}
	close(fds[1]);
	while (waitpid(pid, &status, 0) == -1 && errno == EINTR)
		;
	err = client_exec_status(fds[0], deadline);
	close(fds[0]);
	if (err != 0)
		return client_fail(c, TC_EUNAVAIL, "cannot start %s: %s",
		    argv[0], strerror(err));
	return TC_OK;
}

static tc_status client_autostart(tc_client *c, int64_t deadline)
{
	char *sock = client_abspath(c->socket), *db = NULL;
	char *argv[7];
	int n = 0;
	tc_status st = TC_ENOMEM;

	if (c->db != NULL)
		db = client_abspath(c->db);
	if (sock == NULL || (c->db != NULL && db == NULL)) {
		client_fail(c, st, "out of memory");
		goto out;
	}
	argv[n++] = c->daemon != NULL ? c->daemon : (char *)"tcached";
	argv[n++] = (char *)"--socket";
	argv[n++] = sock;
	if (db != NULL) {
		argv[n++] = (char *)"--db";
		argv[n++] = db;
	}
	argv[n] = NULL;
	st = client_spawn(c, argv, deadline);
out:
	free(sock);
	free(db);
	return st;
}

/* Connects within deadline, starting the daemon if allowed and none is
 * there, then shakes hands. */
static tc_status client_connect(tc_client *c, int64_t deadline)
{
	tc_status st;
	int absent;

	if (c->fd != -1)
		return TC_OK;
	st = client_dial(c, deadline, &absent);
	if (st != TC_OK && absent && c->autostart) {
		if ((st = client_autostart(c, deadline)) != TC_OK)
			return st;
		do {
			client_sleep(CLIENT_RETRY_MS);
			st = client_dial(c, deadline, &absent);
		} while (st != TC_OK && absent && client_left(deadline) > 0);
		if (st != TC_OK && absent)
			return client_fail(c, TC_EUNAVAIL, "started tcached, "
			    "but nothing answered on %s within %d ms",
			    c->socket, c->timeout_ms);
	}
	if (st != TC_OK)
		return st;
	return client_hello(c, deadline);
}

tc_status tc_connect(tc_client *c)
{
	return client_connect(c, client_deadline(c));
}

/* One request and its reply, connecting first when needed. */
static tc_status client_call(tc_client *c, const proto_msg *m,
			     proto_msg *reply)
{
	int64_t deadline = client_deadline(c);
	tc_status st;

	if ((st = client_connect(c, deadline)) != TC_OK)
		return st;
	return client_rpc(c, m, reply, deadline);
}

/* --- requests --- */

tc_status tc_status_get(tc_client *c, tc_daemon_status *out)
{
	proto_msg m, r;
	tc_status st;

	memset(out, 0, sizeof *out);
	memset(&m, 0, sizeof m);
	m.type = PROTO_STATUS;
	if ((st = client_call(c, &m, &r)) != TC_OK)
		return st;
	*out = r.u.status_r;
	memset(&r.u.status_r, 0, sizeof r.u.status_r);
	proto_msg_free(&r);
	return TC_OK;
}

void tc_daemon_status_clear(tc_daemon_status *s)
{
	free(s->version);
	free(s->socket);
	free(s->db);
	memset(s, 0, sizeof *s);
}

/* One LOOKUP frame of n keys; the results are moved into results. */
static tc_status client_lookup_frame(tc_client *c,
				     const uint8_t (*keys)[TC_DIGEST_BYTES],
				     uint32_t n, tc_result *results)
{
	proto_msg m, r;
	tc_status st;

	memset(&m, 0, sizeof m);
	m.type = PROTO_LOOKUP;
	m.u.lookup.n = n;
	m.u.lookup.keys = keys;
	if ((st = client_call(c, &m, &r)) != TC_OK)
		return st;
	if (r.u.lookup_r.n != n) {
		client_fail(c, TC_EPROTO, "%s: %u results for %u keys",
		    c->socket, r.u.lookup_r.n, n);
		proto_msg_free(&r);
		return client_drop(c, TC_EPROTO);
	}
	memcpy(results, r.u.lookup_r.results, n * sizeof *results);
	free(r.u.lookup_r.results);
	r.u.lookup_r.results = NULL;
	r.u.lookup_r.n = 0;
	proto_msg_free(&r);
	return TC_OK;
}

tc_status tc_lookup(tc_client *c, const uint8_t (*keys)[TC_DIGEST_BYTES],
		    size_t n, tc_result *results)
{
	size_t off, k;
	tc_status st;

	if (n > 0)
		memset(results, 0, n * sizeof *results);
	for (off = 0; off < n; off += k) {
		k = n - off < TC_MAX_BATCH ? n - off : TC_MAX_BATCH;
		st = client_lookup_frame(c, keys + off, (uint32_t)k,
		    results + off);
		if (st != TC_OK) {
			tc_results_clear(results, off);
			return st;
		}
	}
	return TC_OK;
}

void tc_results_clear(tc_result *results, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		proto_result_clear(&results[i]);
		memset(&results[i], 0, sizeof results[i]);
	}
}

int tc_result_is_pass(const tc_result *r)
{
	return r->found && r->outcome == TC_PASS && !r->flaky;
}

/* 1 when the input at path still has digest (missing matches zeros). */
static int client_input_same(const char *path, const uint8_t *digest)
{
	static const uint8_t zero[TC_DIGEST_BYTES];
	uint8_t now[TC_DIGEST_BYTES];

	if (tc_hash_file(path, now) == TC_OK)
		return memcmp(now, digest, TC_DIGEST_BYTES) == 0;
	if (errno == ENOENT || errno == ENOTDIR)
		return memcmp(zero, digest, TC_DIGEST_BYTES) == 0;
	return 0;
}

/* Anything that cannot be checked counts as changed: a stale pass is the
 * one unforgivable bug. */
int tc_result_verify(const tc_result *r, const char *root)
{
	char path[TC_MAX_PATH + 1];
	const tc_input *in;
	int n;

	for (uint32_t i = 0; i < r->ninputs; i++) {
		in = &r->inputs[i];
		if (in->kind == TC_INPUT_ENV)
			continue;
		/* The daemon never sends one; a file digest cannot confirm
		 * an interface digest. */
		if (in->kind == TC_INPUT_INTERFACE)
			return 0;
		if (in->path == NULL || in->path[0] == '\0')
			return 0;
		if (in->path[0] == '/' || root == NULL)
			n = snprintf(path, sizeof path, "%s", in->path);
		else
			n = snprintf(path, sizeof path, "%s/%s", root,
			    in->path);
		if (n < 0 || (size_t)n >= sizeof path)
			return 0;
		if (!client_input_same(path, in->digest))
			return 0;
	}
	return 1;
}

/* Sends the RECORD frame in c->out and takes its n statuses. */
static tc_status client_record_frame(tc_client *c, uint32_t n, uint8_t *status,
				     int64_t deadline)
{
	proto_msg r;
	tc_status st;

	if ((st = client_exchange(c, PROTO_RECORD, &r, deadline)) != TC_OK)
		return st;
	if (r.u.record_r.n != n) {
		client_fail(c, TC_EPROTO, "%s: %u statuses for %u records",
		    c->socket, r.u.record_r.n, n);
		proto_msg_free(&r);
		return client_drop(c, TC_EPROTO);
	}
	if (status != NULL)
		memcpy(status, r.u.record_r.status, n);
	proto_msg_free(&r);
	return TC_OK;
}

/*
 * Frames of at most TC_MAX_BATCH records, halved while a frame would be
 * over TC_MAX_FRAME; one record that cannot be encoded alone is TC_EINVAL
 * (the records before it are stored).
 */
tc_status tc_record_put(tc_client *c, const tc_record *recs, size_t n,
			uint8_t *status)
{
	size_t off = 0, k, batch = TC_MAX_BATCH;
	int64_t deadline;
	proto_msg m;
	tc_status st;
	int rc;

	memset(&m, 0, sizeof m);
	m.type = PROTO_RECORD;
	while (off < n) {
		k = n - off < batch ? n - off : batch;
		deadline = client_deadline(c);
		if ((st = client_connect(c, deadline)) != TC_OK)
			return st;
		m.u.record.n = (uint32_t)k;
		m.u.record.records = (tc_record *)(uintptr_t)(recs + off);
		if ((rc = client_encode(c, &m)) == PROTO_E_LIMIT && k > 1) {
			batch = k / 2;
			continue;
		}
		if (rc != PROTO_OK)
			return rc == -1 ? TC_ENOMEM : client_fail(c, TC_EINVAL,
			    "record %zu (%s): over a protocol limit", off,
			    recs[off].test != NULL ? recs[off].test : "");
		st = client_record_frame(c, (uint32_t)k,
		    status != NULL ? status + off : NULL, deadline);
		if (st != TC_OK)
			return st;
		off += k;
	}
	return TC_OK;
}

tc_status tc_invalidate(tc_client *c, tc_invalidate_mode mode,
			const char *arg, const uint8_t key[TC_DIGEST_BYTES],
			int dry_run, uint64_t *count)
{
	proto_msg m, r;
	tc_status st;

	if (count != NULL)
		*count = 0;
	if (mode == TC_INV_PATH && (arg == NULL || arg[0] != '/'))
		return client_fail(c, TC_EINVAL, "invalidate: path \"%s\" "
		    "is not absolute", arg != NULL ? arg : "");
	memset(&m, 0, sizeof m);
	m.type = PROTO_INVALIDATE;
	m.u.invalidate.mode = (uint8_t)mode;
	m.u.invalidate.dry_run = dry_run != 0;
	m.u.invalidate.arg = arg != NULL ? arg : "";
	if (key != NULL)
		memcpy(m.u.invalidate.key, key, TC_DIGEST_BYTES);
	if ((st = client_call(c, &m, &r)) != TC_OK)
		return st;
	if (count != NULL)
		*count = r.u.invalidate_r.count;
	proto_msg_free(&r);
	return TC_OK;
}

tc_status tc_stats(tc_client *c, int reset, tc_stat **stats, size_t *n)
{
	proto_msg m, r;
	tc_status st;

	*stats = NULL;
	*n = 0;
	memset(&m, 0, sizeof m);
	m.type = PROTO_STATS;
	m.u.stats.reset = reset != 0;
	if ((st = client_call(c, &m, &r)) != TC_OK)
		return st;
	*stats = r.u.stats_r.stats;
	*n = r.u.stats_r.n;
	r.u.stats_r.stats = NULL;
	r.u.stats_r.n = 0;
	proto_msg_free(&r);
	return TC_OK;
}

void tc_stats_free(tc_stat *stats, size_t n)
{
	proto_stats_free(stats, n);
}

uint64_t tc_stats_get(const tc_stat *stats, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (stats[i].name != NULL && strcmp(stats[i].name, name) == 0)
			return stats[i].value;
	return 0;
}

tc_status tc_slowest(tc_client *c, uint32_t n, tc_slow **out, size_t *nout)
{
	proto_msg m, r;
	tc_status st;

	*out = NULL;
	*nout = 0;
	if (n == 0 || n > TC_MAX_SLOWEST)
		return client_fail(c, TC_EINVAL, "slowest: %" PRIu32 " is not "
		    "in 1..%u", n, TC_MAX_SLOWEST);
	memset(&m, 0, sizeof m);
	m.type = PROTO_SLOWEST;
	m.u.slowest.n = n;
	if ((st = client_call(c, &m, &r)) != TC_OK)
		return st;
	*out = r.u.slowest_r.slow;
	*nout = r.u.slowest_r.n;
	r.u.slowest_r.slow = NULL;
	r.u.slowest_r.n = 0;
	proto_msg_free(&r);
	return TC_OK;
}

void tc_slowest_free(tc_slow *s, size_t n)
{
	proto_slow_free(s, n);
}

/* A limit of 0, or over TC_MAX_LIST, asks for as many as a page holds. */
tc_status tc_list(tc_client *c, const char *test_glob, const char *path,
		  uint64_t after, uint32_t limit, tc_entry **entries,
		  size_t *n, uint64_t *next)
{
	proto_msg m, r;
	tc_status st;

	*entries = NULL;
	*n = 0;
	*next = 0;
	memset(&m, 0, sizeof m);
	m.type = PROTO_LIST;
	m.u.list.test_glob = test_glob != NULL ? test_glob : "";
	m.u.list.path = path != NULL ? path : "";
	m.u.list.limit = limit == 0 || limit > TC_MAX_LIST ? TC_MAX_LIST :
	    limit;
	m.u.list.after = after;
	if ((st = client_call(c, &m, &r)) != TC_OK)
		return st;
	*entries = r.u.list_r.entries;
	*n = r.u.list_r.n;
	*next = r.u.list_r.next;
	r.u.list_r.entries = NULL;
	r.u.list_r.n = 0;
	proto_msg_free(&r);
	return TC_OK;
}

void tc_entries_free(tc_entry *entries, size_t n)
{
	proto_entries_free(entries, n);
}

void tc_entry_clear(tc_entry *e)
{
	proto_entry_clear(e);
}

tc_status tc_explain(tc_client *c, const char *project, const char *test,
		     int *found, tc_entry *entry, tc_input **inputs,
		     size_t *ninputs)
{
	proto_msg m, r;
	tc_status st;

	*found = 0;
	memset(entry, 0, sizeof *entry);
	*inputs = NULL;
	*ninputs = 0;
	memset(&m, 0, sizeof m);
	m.type = PROTO_EXPLAIN;
	m.u.explain.project = project != NULL ? project : "";
	m.u.explain.test = test != NULL ? test : "";
	if ((st = client_call(c, &m, &r)) != TC_OK)
		return st;
	*found = r.u.explain_r.found;
	*entry = r.u.explain_r.entry;
	*inputs = r.u.explain_r.inputs;
	*ninputs = r.u.explain_r.ninputs;
	memset(&r.u.explain_r, 0, sizeof r.u.explain_r);
	proto_msg_free(&r);
	return TC_OK;
}

tc_status tc_gc(tc_client *c, uint64_t *removed)
{
	proto_msg m, r;
	tc_status st;

	if (removed != NULL)
		*removed = 0;
	memset(&m, 0, sizeof m);
	m.type = PROTO_GC;
	if ((st = client_call(c, &m, &r)) != TC_OK)
		return st;
	if (removed != NULL)
		*removed = r.u.gc_r.removed;
	proto_msg_free(&r);
	return TC_OK;
}

/* --- names --- */

static const char *const client_outcomes[] = {
	[TC_PASS] = "pass",
	[TC_FAIL] = "fail",
	[TC_SKIP] = "skip",
	[TC_ERROR] = "error"
};

const char *tc_outcome_name(int outcome)
{
	if (outcome >= TC_PASS && outcome <= TC_ERROR)
		return client_outcomes[outcome];
	return "?";
}

int tc_outcome_parse(const char *name)
{
	if (name == NULL)
		return -1;
	for (int o = TC_PASS; o <= TC_ERROR; o++)
		if (strcmp(name, client_outcomes[o]) == 0)
			return o;
	return -1;
}
