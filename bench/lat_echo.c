/*
 * The reference server of bench/latency.py: on an AF_UNIX socket, reads
 * requests of REQ bytes and answers each with REP bytes, as tcached answers
 * a one-key LOOKUP.  Two styles, so that what a bufferevent costs over a
 * raw event is measured on its own:
 *
 *   event  a raw libevent event per connection, read(2) and write(2) in
 *          its callback: the least a libevent server can do;
 *   bev    a bufferevent per connection, set up the way tcached's conn.c
 *          set up its own (read and write timeouts, a write low
 *          watermark), input drained and replies written through evbuffers.
 *
 * Usage: lat_echo event|bev SOCKET REQ REP
 * Runs until SIGTERM or SIGINT; prints "ready" once it listens.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>

#define ECHO_MAX 65536			/* largest REQ or REP */
#define ECHO_IDLE_S 60			/* the bev style's timeouts, as tcached */
#define ECHO_OUT_LOW (64 * 1024)	/* and its write low watermark */

static size_t req_len, rep_len;
static int bev_style;			/* 1: bufferevent, 0: raw event */
static unsigned char reply[ECHO_MAX];

struct echo_conn {
	struct event *ev;
	int fd;
	size_t have;			/* bytes of the current request */
	unsigned char in[ECHO_MAX];
};

static void echo_close(struct echo_conn *c)
{
	event_free(c->ev);
	close(c->fd);
	free(c);
}

/* A reply too large for the socket buffer waits for room: rare, since one
 * request is in flight, and simpler than buffering in a reference. */
static int echo_write_all(int fd, const unsigned char *p, size_t len)
{
	struct pollfd pfd = { fd, POLLOUT, 0 };
	ssize_t n;

	while (len > 0) {
		n = write(fd, p, len);
		if (n > 0) {
			p += n;
			len -= (size_t)n;
		} else if (n == -1 && errno == EINTR) {
			continue;
		} else if (n == -1 && errno == EAGAIN) {
			if (poll(&pfd, 1, -1) == -1 && errno != EINTR)
				return -1;
		} else
			return -1;
	}
	return 0;
}

static void echo_event_cb(evutil_socket_t fd, short what, void *arg)
{
	struct echo_conn *c = arg;
	ssize_t n;
	size_t off = 0;

	(void)what;
	n = read(fd, c->in + c->have, sizeof c->in - c->have);
	if (n == -1 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		echo_close(c);
		return;
	}
	c->have += (size_t)n;
	while (c->have - off >= req_len) {
		off += req_len;
		if (echo_write_all(fd, reply, rep_len) != 0) {
			echo_close(c);
			return;
		}
	}
	memmove(c->in, c->in + off, c->have - off);
	c->have -= off;
}

static void echo_bev_read_cb(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);

	(void)arg;
	while (evbuffer_get_length(in) >= req_len) {
		/* As conn.c takes a frame: pulled up whole, then drained. */
		if (evbuffer_pullup(in, (ev_ssize_t)req_len) == NULL ||
		    evbuffer_drain(in, req_len) != 0 ||
		    bufferevent_write(bev, reply, rep_len) != 0) {
			bufferevent_free(bev);
			return;
		}
	}
}

static void echo_bev_event_cb(struct bufferevent *bev, short what, void *arg)
{
	(void)what;
	(void)arg;
	bufferevent_free(bev);
}

static void echo_accept_cb(evutil_socket_t lfd, short what, void *arg)
{
	struct event_base *base = arg;
	struct timeval idle = { ECHO_IDLE_S, 0 };
	struct bufferevent *bev;
	struct echo_conn *c;
	int fd;

	(void)what;
	fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd == -1)
		return;
	if (bev_style) {
		bev = bufferevent_socket_new(base, fd, BEV_OPT_CLOSE_ON_FREE);
		if (bev == NULL) {
			close(fd);
			return;
		}
		bufferevent_set_timeouts(bev, &idle, &idle);
		bufferevent_setwatermark(bev, EV_WRITE, ECHO_OUT_LOW, 0);
		bufferevent_setcb(bev, echo_bev_read_cb, NULL,
		    echo_bev_event_cb, NULL);
		bufferevent_enable(bev, EV_READ | EV_WRITE);
		return;
	}
	if ((c = calloc(1, sizeof *c)) == NULL) {
		close(fd);
		return;
	}
	c->fd = fd;
	c->ev = event_new(base, fd, EV_READ | EV_PERSIST, echo_event_cb, c);
	if (c->ev == NULL || event_add(c->ev, NULL) != 0) {
		if (c->ev != NULL)
			event_free(c->ev);
		close(fd);
		free(c);
	}
}

static void echo_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	(void)sig;
	(void)what;
	event_base_loopexit(arg, NULL);
}

int main(int argc, char **argv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct event_base *base;
	struct event *ev_listen, *ev_term, *ev_int;
	int fd;

	if (argc != 5 || (strcmp(argv[1], "event") != 0 &&
	    strcmp(argv[1], "bev") != 0)) {
		fprintf(stderr, "usage: lat_echo event|bev SOCKET REQ REP\n");
		return 2;
	}
	req_len = strtoul(argv[3], NULL, 10);
	rep_len = strtoul(argv[4], NULL, 10);
	if (req_len == 0 || req_len > ECHO_MAX || rep_len == 0 ||
	    rep_len > ECHO_MAX || strlen(argv[2]) >= sizeof sa.sun_path) {
		fprintf(stderr, "lat_echo: bad sizes or socket path\n");
		return 2;
	}
	bev_style = strcmp(argv[1], "bev") == 0;
	memset(reply, 'r', rep_len);
	signal(SIGPIPE, SIG_IGN);
	strcpy(sa.sun_path, argv[2]);
	(void)unlink(argv[2]);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    listen(fd, 64) != 0) {
		perror("lat_echo: socket");
		return 1;
	}
	if ((base = event_base_new()) == NULL) {
		fprintf(stderr, "lat_echo: event_base_new failed\n");
		return 1;
	}
	ev_listen = event_new(base, fd, EV_READ | EV_PERSIST, echo_accept_cb,
	    base);
	ev_term = evsignal_new(base, SIGTERM, echo_signal_cb, base);
	ev_int = evsignal_new(base, SIGINT, echo_signal_cb, base);
	if (ev_listen == NULL || ev_term == NULL || ev_int == NULL ||
	    event_add(ev_listen, NULL) != 0 || event_add(ev_term, NULL) != 0 ||
	    event_add(ev_int, NULL) != 0) {
		fprintf(stderr, "lat_echo: cannot set up events\n");
		return 1;
	}
	printf("ready\n");
	fflush(stdout);
	if (event_base_dispatch(base) < 0) {
		fprintf(stderr, "lat_echo: event loop failed\n");
		return 1;
	}
	event_free(ev_listen);
	event_free(ev_term);
	event_free(ev_int);
	event_base_free(base);
	close(fd);
	(void)unlink(argv[2]);
	return 0;
}
