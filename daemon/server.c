/*
 * The server: the listening socket (made safely, or inherited from systemd),
 * the one-instance lock, signals, the group commit, multi-step jobs, the
 * expiry sweep, and the reaper that frees closed connections.
 */
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "tcached.h"

#define SERVER_LISTEN_BACKLOG 512
#define SERVER_SD_LISTEN_FDS_START 3	/* sd_listen_fds(3) */

uint64_t server_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The mkdir of each missing component; the caller sets the umask. */
static int server_mkdirs_each(const char *dir, mode_t mode)
{
	char buf[PATH_MAX];
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof buf) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, dir, len + 1);
	for (char *p = buf + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char saved = *p;
		*p = '\0';
		if (mkdir(buf, mode) != 0 && errno != EEXIST)
			return -1;
		*p = saved;
		if (saved == '\0')
			return 0;
	}
}

/* mkdir -p, creating missing directories with mode exactly: under a
 * umask of 077 a shared socket's directory would come out 0700 and shut
 * out the very users --allow-uid lets in. */
static int server_mkdirs(const char *dir, mode_t mode)
{
	mode_t old = umask(0);
	int rc = server_mkdirs_each(dir, mode);
	int err = errno;

	umask(old);
	errno = err;
	return rc;
}

static int server_dirname(const char *path, char *dir, size_t len)
{
	const char *slash = strrchr(path, '/');
	size_t n;

	if (slash == NULL) {
		if (len < 2)
			return -1;
		strcpy(dir, ".");
		return 0;
	}
	n = slash == path ? 1 : (size_t)(slash - path);
	if (n >= len)
		return -1;
	memcpy(dir, path, n);
	dir[n] = '\0';
	return 0;
}

/* The socket's directory must be ours and closed to writers other than us,
 * or anyone could replace the socket under our clients. */
static int server_check_dir(const char *dir, int shared)
{
	struct stat st;

	if (server_mkdirs(dir, shared ? 0711 : 0700) != 0) {
		log_warn("cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	/* Another user's symbolic link (a /tmp/tcache-UID made before us)
	 * could be turned to a directory of theirs after our check. */
	if (lstat(dir, &st) != 0) {
		log_warn("%s: %s", dir, strerror(errno));
		return -1;
	}
	if (S_ISLNK(st.st_mode) && st.st_uid != geteuid() && st.st_uid != 0) {
		log_warn("socket directory %s is a symbolic link of uid %ld: "
		    "refusing it", dir, (long)st.st_uid);
		return -1;
	}
	if (stat(dir, &st) != 0) {
		log_warn("%s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		log_warn("%s is not a directory", dir);
		return -1;
	}
	if (st.st_uid != geteuid()) {
		log_warn("socket directory %s belongs to uid %ld, not to us "
		    "(uid %ld): refusing it", dir, (long)st.st_uid,
		    (long)geteuid());
		return -1;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		log_warn("socket directory %s is writable by others (mode %03o): "
		    "refusing it", dir, (unsigned)(st.st_mode & 0777));
		return -1;
	}
	/* Not changed for them: the directory is the operator's to open. */
	if (shared && (st.st_mode & (S_IXGRP | S_IXOTH)) == 0)
		log_warn("socket directory %s has mode %03o: the users and groups "
		    "of --allow-*/--readonly-* cannot reach the socket", dir,
		    (unsigned)(st.st_mode & 0777));
	return 0;
}

/* One tcached per socket: an flock on SOCKET.lock, held for our life. */
static int server_lock(struct server *srv, const char *sock)
{
	char path[PATH_MAX], pidbuf[32] = "";
	int fd, n;
	ssize_t got;

	n = snprintf(path, sizeof path, "%s.lock", sock);
	if (n < 0 || (size_t)n >= sizeof path) {
		log_warn("socket path too long: %s", sock);
		return -1;
	}
	if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0) {
		log_warn("cannot open lock file %s: %s", path, strerror(errno));
		return -1;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
		got = pread(fd, pidbuf, sizeof pidbuf - 1, 0);
		pidbuf[got > 0 ? got : 0] = '\0';
		pidbuf[strcspn(pidbuf, "\n")] = '\0';
		log_warn("another tcached (pid %s) is already serving %s",
		    pidbuf[0] ? pidbuf : "?", sock);
		close(fd);
		return -1;
	}
	n = snprintf(pidbuf, sizeof pidbuf, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) != 0 || pwrite(fd, pidbuf, (size_t)n, 0) != n)
		log_warn("cannot write pid to %s: %s", path, strerror(errno));
	srv->lock_fd = fd;
	return 0;
}

/* LISTEN_FDS from systemd: fd 3 is our listening socket. */
static int server_inherited_fd(void)
{
	const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
	uint64_t p, n;
	int type;
	socklen_t len = sizeof type;

	if (pid == NULL || fds == NULL || parse_u64(pid, &p) != 0 ||
	    parse_u64(fds, &n) != 0 || p != (uint64_t)getpid() || n < 1)
		return -1;
	unsetenv("LISTEN_PID");
	unsetenv("LISTEN_FDS");
	unsetenv("LISTEN_FDNAMES");
	if (getsockopt(SERVER_SD_LISTEN_FDS_START, SOL_SOCKET, SO_TYPE, &type,
	    &len) != 0 || type != SOCK_STREAM) {
		log_warn("LISTEN_FDS set but fd 3 is not a stream socket");
		return -2;
	}
	if (n > 1)
		log_warn("LISTEN_FDS=%llu: using fd 3 only", (unsigned long long)n);
	return SERVER_SD_LISTEN_FDS_START;
}

static int server_bind(struct server *srv, const char *path, int shared)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t old;
	int fd;

	if (strlen(path) >= sizeof sa.sun_path) {
		log_warn("socket path too long (%zu bytes, at most %zu): %s",
		    strlen(path), sizeof sa.sun_path - 1, path);
		return -1;
	}
	memcpy(sa.sun_path, path, strlen(path) + 1);
	/* We hold the lock, so a socket already there is a crashed daemon's. */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_warn("%s exists and is not a socket: refusing to "
			    "replace it", path);
			return -1;
		}
		if (unlink(path) != 0) {
			log_warn("cannot remove stale socket %s: %s", path,
			    strerror(errno));
			return -1;
		}
		log_info("replaced a stale socket at %s", path);
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_warn("socket: %s", strerror(errno));
		return -1;
	}
	/* The umask makes the socket 0600 from the start: no chmod race. */
	old = umask(shared ? 0111 : 0177);
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
		umask(old);
		log_warn("bind %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	umask(old);
	if (listen(fd, SERVER_LISTEN_BACKLOG) != 0 || stat(path, &st) != 0) {
		log_warn("listen %s: %s", path, strerror(errno));
		close(fd);
		unlink(path);
		return -1;
	}
	srv->unlink_socket = 1;
	srv->sock_dev = st.st_dev;
	srv->sock_ino = st.st_ino;
	return fd;
}

static void server_accept_cb(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	(void)l;
	(void)sa;
	(void)salen;
	conn_accept(arg, fd);
}

static void server_accept_error_cb(struct evconnlistener *l, void *arg)
{
	struct server *srv = arg;
	struct timeval tv = { SERVER_ACCEPT_PAUSE_MS / 1000,
	    (SERVER_ACCEPT_PAUSE_MS % 1000) * 1000 };
	int err = EVUTIL_SOCKET_ERROR();

	if (err == EINTR || err == EAGAIN || err == ECONNABORTED)
		return;
	/* Out of descriptors: pause instead of spinning on accept. */
	log_warn("accept: %s; pausing new connections for %u ms",
	    strerror(err), SERVER_ACCEPT_PAUSE_MS);
	evconnlistener_disable(l);
	evtimer_add(srv->ev_resume, &tv);
}

static void server_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	(void)fd;
	(void)what;
	if (!srv->stopping && srv->listener != NULL)
		evconnlistener_enable(srv->listener);
}

void server_schedule_commit(struct server *srv)
{
	/* Runs after every callback already active in this turn of the
	 * loop, so all clients that spoke in this turn share one commit.
	 * Activating an active event again is a no-op. */
	event_active(srv->ev_commit, EV_TIMEOUT, 0);
}

void server_schedule_jobs(struct server *srv)
{
	struct timeval now = { 0, 0 };

	/* A timer, not event_active: jobs yield to I/O between steps. */
	if (!evtimer_pending(srv->ev_jobs, NULL))
		evtimer_add(srv->ev_jobs, &now);
}

/*
 * A full disk fails every write, and a client that retries would get a
 * warning logged per attempt, often onto the very disk that is full.  So
 * the log says when the disk fills and when writes work again, each at
 * most once a SERVER_FULL_LOG_MS, and counts the refusals in between.  One
 * server per process: the state is the file's.
 */
#define SERVER_FULL_LOG_MS 60000
static struct {
	int full;			/* the last write failed for space */
	uint64_t refused;		/* writes failed since the last line */
	uint64_t full_logged_ms;	/* when each line was last logged */
	uint64_t back_logged_ms;
} server_space;

static int server_space_due(uint64_t *last, uint64_t now)
{
	if (*last != 0 && now - *last < SERVER_FULL_LOG_MS)
		return 0;
	*last = now;
	return 1;
}

static void server_space_full(struct server *srv)
{
	uint64_t now = server_now_ms();

	server_space.refused++;
	if (!server_space_due(&server_space.full_logged_ms, now))
		goto out;
	if (server_space.full)
		log_warn("disk still full: %llu writes refused since the "
		    "last line; %s", (unsigned long long)server_space.refused,
		    store_error(srv->store));
	else
		log_warn("disk full: %s; records are refused (ERROR STORE) "
		    "until space is freed, lookups go on",
		    store_error(srv->store));
	server_space.refused = 0;
out:
	server_space.full = 1;
}

/* A write was committed. */
static void server_space_back(void)
{
	if (!server_space.full)
		return;
	server_space.full = 0;
	if (server_space_due(&server_space.back_logged_ms, server_now_ms()))
		log_info("database writable again (%llu writes refused "
		    "since the last line)",
		    (unsigned long long)server_space.refused);
	server_space.refused = 0;
}

/* A store call failed: a damaged file is moved aside and replaced. */
void server_store_failed(struct server *srv, int rc)
{
	char err[512], why[256];
	struct conn *c;

	if (rc == STORE_EFULL)
		server_space_full(srv);
	if (rc != STORE_ECORRUPT)
		return;
	/* One line for the event: store_recover's message names the reason
	 * and where the file went; only when it says nothing is ours. */
	snprintf(why, sizeof why, "%s", store_error(srv->store));
	while ((c = TAILQ_FIRST(&srv->waiting)) != NULL) {
		TAILQ_REMOVE(&srv->waiting, c, wait_entry);
		conn_deliver(c, 0);
	}
	if (store_recover(srv->store, err, sizeof err) != STORE_OK)
		log_warn("database damaged (%s) and cannot be recovered: %s",
		    why, err);
	else if (err[0] != '\0')
		log_warn("%s", err);
	else
		log_warn("database damaged (%s); started afresh", why);
}

/* Lookups opened a read transaction: it ends with the turn, in the
 * commit callback, so that a batch (or all of a turn's) reads in one. */
static void server_read_hook(void *arg)
{
	server_schedule_commit(arg);
}

/*
 * The hits that lookups counted in memory (store_touch) are written when
 * no client has spoken for SERVER_TOUCH_IDLE_MS (longer than a lookup of
 * 4,096 keys takes), SERVER_TOUCH_STEP at a time (~2 ms of SQLite each)
 * one after the other while none speaks, so that neither a lookup's reply
 * nor a busy loop waits for them; each other transaction (a record's,
 * the sweep's tick) writes as many too.  One server a process: the timer
 * is the file's.
 */
#define SERVER_TOUCH_IDLE_MS 50
#define SERVER_TOUCH_STEP 1024u
static struct event *server_touch_ev;

static void server_touch_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	struct timeval now = { 0, 0 };
	int rc;

	(void)fd;
	(void)what;
	if (srv->stopping || store_in_txn(srv->store))
		return;
	/* A transaction of its own, committed at once: no reply waits on
	 * it, and nothing else joins it. */
	if ((rc = store_begin_touches(srv->store, SERVER_TOUCH_STEP)) ==
	    STORE_OK && (rc = store_commit(srv->store)) != STORE_OK)
		store_rollback(srv->store);
	if (rc != STORE_OK) {
		server_store_failed(srv, rc);
		return;
	}
	server_space_back();
	/* The next step after whatever I/O is waiting; a client that speaks
	 * meanwhile puts it off again (server_touch_later). */
	if (store_touches(srv->store) > 0)
		evtimer_add(server_touch_ev, &now);
}

/* Every turn that commits (or reads) puts the writing of hits off again. */
static void server_touch_later(struct server *srv)
{
	struct timeval tv = { 0, SERVER_TOUCH_IDLE_MS * 1000 };

	if (server_touch_ev != NULL && !srv->stopping &&
	    store_touches(srv->store) > 0)
		evtimer_add(server_touch_ev, &tv);
}

/*
 * The longest a delete step and a commit held the loop, by the clock and
 * in the loop thread's CPU time, logged at exit: a client that waited
 * much longer than the CPU the loop spent waited for the machine (another
 * process had the CPU), not for tcached's own work (bench/scale.py reads
 * the line).  One server a process.
 */
static struct server_longest {
	uint64_t n, wall_us, cpu_us;
} server_longest_step, server_longest_commit;
static uint64_t server_step_cpu;	/* at the start of the step */

static uint64_t server_cpu_us(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0)
		return 0;
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void server_longest_add(struct server_longest *l, uint64_t wall_us,
    uint64_t cpu_us)
{
	l->n++;
	if (wall_us > l->wall_us)
		l->wall_us = wall_us;
	if (cpu_us > l->cpu_us)
		l->cpu_us = cpu_us;
}

static void server_commit_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	struct conn_list ready = TAILQ_HEAD_INITIALIZER(ready);
	struct conn *c;
	uint64_t t0, cpu0;
	int rc = STORE_OK;

	(void)fd;
	(void)what;
	store_end_read(srv->store);
	if (store_in_txn(srv->store)) {
		t0 = server_mono_us();
		cpu0 = server_cpu_us();
		if ((rc = store_commit(srv->store)) == STORE_OK)
			server_space_back();
		else {
			/* A full disk is logged by server_store_failed. */
			if (rc != STORE_EFULL)
				log_warn("commit failed: %s",
				    store_error(srv->store));
			store_rollback(srv->store);
		}
		server_longest_add(&server_longest_commit,
		    server_mono_us() - t0, server_cpu_us() - cpu0);
	}
	/* Deliver from a private list: a delivered client may queue again. */
	TAILQ_CONCAT(&ready, &srv->waiting, wait_entry);
	while ((c = TAILQ_FIRST(&ready)) != NULL) {
		TAILQ_REMOVE(&ready, c, wait_entry);
		conn_deliver(c, rc == STORE_OK && conn_committed(c));
		if (srv->stopping && c->state != CONN_DEAD)
			conn_shutdown(c);
	}
	if (rc != STORE_OK)
		server_store_failed(srv, rc);
	server_touch_later(srv);
}

/*
 * While the checkpointer is behind a long WAL (store_wal_behind), bulk
 * deletes wait SERVER_WAL_WAIT_MS at a time, the loop answering clients
 * meanwhile, at most SERVER_WAL_WAITS times in a row (half a second: a
 * checkpoint of a big file on a busy machine can take that long): a reader
 * of another process could hold the checkpoint back for as long as it
 * likes, and the work must go on then, if slowly.
 */
#define SERVER_WAL_WAIT_MS 2
#define SERVER_WAL_WAITS 250

static int server_wal_wait(struct server *srv, struct event *ev,
    unsigned *waited)
{
	struct timeval tv = { 0, SERVER_WAL_WAIT_MS * 1000 };

	if (!srv->stopping && *waited < SERVER_WAL_WAITS &&
	    store_wal_behind(srv->store)) {
		++*waited;
		evtimer_add(ev, &tv);
		return 1;
	}
	*waited = 0;
	return 0;
}

static void server_jobs_cb(evutil_socket_t fd, short what, void *arg)
{
	static unsigned waited;
	struct server *srv = arg;
	struct conn *c, *next;

	(void)fd;
	(void)what;
	if (server_wal_wait(srv, srv->ev_jobs, &waited))
		return;
	for (c = TAILQ_FIRST(&srv->jobs); c != NULL; c = next) {
		next = TAILQ_NEXT(c, wait_entry);
		conn_job_step(c);
	}
	if (!TAILQ_EMPTY(&srv->jobs))
		server_schedule_jobs(srv);
}

uint64_t server_mono_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/*
 * The rows of one sweep, eviction or invalidation step.  A step and then
 * its commit hold the loop, so a step takes as many rows as fit in
 * SERVER_STEP_US of SQLite, as the steps before it measured: a row costs
 * from a few microseconds (a small database, all in memory) to a hundred
 * (a million entries, each of its indexes' pages read and journaled), so
 * no one count fits every database.  One server a process.
 */
#define SERVER_STEP_US 1000u
#define SERVER_STEP_MIN 8u
static unsigned server_rows = 64;

unsigned server_step_rows(void)
{
	server_step_cpu = server_cpu_us();
	return server_rows;
}

void server_step_done(uint64_t removed, uint64_t us)
{
	uint64_t fit;

	server_longest_add(&server_longest_step, us,
	    server_cpu_us() - server_step_cpu);
	/* A few rows say little about the next hundred. */
	if (removed < SERVER_STEP_MIN)
		return;
	fit = removed * SERVER_STEP_US / (us > 0 ? us : 1);
	/* Halfway there: one slow step (a page fault, a busy CPU) does not
	 * swing it. */
	fit = (server_rows + fit) / 2;
	server_rows = fit < SERVER_STEP_MIN ? SERVER_STEP_MIN :
	    fit > SERVER_STEP_ROWS ? SERVER_STEP_ROWS : (unsigned)fit;
}

/* The expiry sweep and LRU eviction: a bounded step a tick; if a step was
 * full, come back at once (after I/O) rather than in a second. */
static void server_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	/* The transaction of the last step: one that did not commit (a full
	 * disk) removed nothing, and coming back at once would take the same
	 * rows again, at once, for as long as the disk stays full. */
	static uint64_t step_txn;
	static unsigned waited;
	struct server *srv = arg;
	struct timeval tv = { SERVER_SWEEP_MS / 1000, 0 };
	uint64_t swept = 0, evicted = 0, t0;
	unsigned limit = server_step_rows();
	int rc, undone;

	(void)fd;
	(void)what;
	if (server_wal_wait(srv, srv->ev_sweep, &waited))
		return;
	undone = step_txn != 0 && store_lost_serial(srv->store) >= step_txn;
	if ((rc = store_begin(srv->store)) == STORE_OK) {
		t0 = server_mono_us();
		rc = store_sweep_step(srv->store, server_now_ms(), limit,
		    &swept);
		/* One step a turn: eviction waits for a sweep that is not
		 * full. */
		if (rc == STORE_OK && swept < limit)
			rc = store_evict_step(srv->store, limit - swept,
			    &evicted);
		server_step_done(swept + evicted, server_mono_us() - t0);
	}
	if (rc != STORE_OK)
		server_store_failed(srv, rc);
	step_txn = 0;
	if (store_in_txn(srv->store)) {
		step_txn = store_txn_serial(srv->store);
		server_schedule_commit(srv);
	}
	if (swept + evicted == limit && !undone)
		tv.tv_sec = 0;
	evtimer_add(srv->ev_sweep, &tv);
}

static void server_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;
	struct conn *c, *next;

	(void)fd;
	(void)what;
	for (c = TAILQ_FIRST(&srv->dead); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (c->listed)
			continue;	/* a commit or job still holds it */
		TAILQ_REMOVE(&srv->dead, c, entry);
		conn_free(c);
	}
	if (srv->stopping && srv->nconns == 0 && TAILQ_EMPTY(&srv->dead))
		event_base_loopexit(srv->base, NULL);
}

static void server_stop(struct server *srv, const char *why)
{
	struct timeval tv = { SERVER_SHUTDOWN_MS / 1000,
	    (SERVER_SHUTDOWN_MS % 1000) * 1000 };
	struct conn *c, *next;

	if (srv->stopping)
		return;
	if (srv->refused_quiet > 0)
		log_warn("%llu more connections refused, not logged",
		    (unsigned long long)srv->refused_quiet);
	log_info("%s: shutting down", why);
	srv->stopping = 1;
	if (srv->listener != NULL) {
		evconnlistener_free(srv->listener);
		srv->listener = NULL;
	}
	for (c = TAILQ_FIRST(&srv->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		conn_shutdown(c);
	}
	server_schedule_commit(srv);
	server_schedule_jobs(srv);
	evtimer_add(srv->ev_deadline, &tv);
	event_active(srv->ev_reap, EV_TIMEOUT, 0);
}

static void server_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct server *srv = arg;

	(void)what;
	if (sig == SIGHUP) {
		log_reopen();
		log_info("SIGHUP: log reopened");
		return;
	}
	server_stop(srv, sig == SIGTERM ? "SIGTERM" : "SIGINT");
}

static void server_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	(void)fd;
	(void)what;
	log_warn("clients still connected after %u ms: closing them",
	    SERVER_SHUTDOWN_MS);
	event_base_loopexit(srv->base, NULL);
}

static int server_events(struct server *srv)
{
	struct event_base *b = srv->base;
	struct timeval tv = { SERVER_SWEEP_MS / 1000, 0 };

	srv->ev_term = evsignal_new(b, SIGTERM, server_signal_cb, srv);
	srv->ev_int = evsignal_new(b, SIGINT, server_signal_cb, srv);
	srv->ev_hup = evsignal_new(b, SIGHUP, server_signal_cb, srv);
	srv->ev_sweep = evtimer_new(b, server_sweep_cb, srv);
	srv->ev_commit = event_new(b, -1, 0, server_commit_cb, srv);
	srv->ev_jobs = evtimer_new(b, server_jobs_cb, srv);
	srv->ev_reap = event_new(b, -1, 0, server_reap_cb, srv);
	srv->ev_resume = evtimer_new(b, server_resume_cb, srv);
	srv->ev_deadline = evtimer_new(b, server_deadline_cb, srv);
	server_touch_ev = evtimer_new(b, server_touch_cb, srv);
	if (!server_touch_ev || !srv->ev_term || !srv->ev_int ||
	    !srv->ev_hup || !srv->ev_sweep ||
	    !srv->ev_commit || !srv->ev_jobs || !srv->ev_reap ||
	    !srv->ev_resume || !srv->ev_deadline)
		return -1;
	if (evsignal_add(srv->ev_term, NULL) || evsignal_add(srv->ev_int, NULL) ||
	    evsignal_add(srv->ev_hup, NULL) || evtimer_add(srv->ev_sweep, &tv))
		return -1;
	return 0;
}

static int server_open_store(struct server *srv)
{
	const struct config *cfg = srv->cfg;
	struct store_config sc = { cfg->db_path, cfg->ttl_ms,
	    cfg->max_entries, cfg->sync_full };
	char dir[PATH_MAX], err[1024] = "";

	if (server_dirname(cfg->db_path, dir, sizeof dir) != 0 ||
	    server_mkdirs(dir, 0700) != 0) {
		log_warn("cannot create the directory of %s: %s", cfg->db_path,
		    strerror(errno));
		return -1;
	}
	if (store_open(&srv->store, &sc, err, sizeof err) != STORE_OK) {
		log_warn("%s", err);
		return -1;
	}
	if (err[0] != '\0')
		log_warn("%s", err);
	store_set_read_hook(srv->store, server_read_hook, srv);
	return 0;
}

/* The socket is listening already (ours, or systemd's): a backlog of 0
 * tells libevent not to listen() again with its own smaller backlog. */
static int server_listen(struct server *srv)
{
	const struct config *cfg = srv->cfg;
	/* A read-only peer of another uid needs the socket open too; the
	 * credentials check at accept is what keeps the rest out. */
	int shared = cfg->nallow_uid > 0 || cfg->nallow_gid > 0 ||
	    cfg->nreadonly_uid > 0 || cfg->nreadonly_gid > 0;
	char dir[PATH_MAX];
	int fd;

	if (server_dirname(cfg->socket_path, dir, sizeof dir) != 0) {
		log_warn("socket path too long: %s", cfg->socket_path);
		return -1;
	}
	if ((fd = server_inherited_fd()) == -2)
		return -1;
	if (fd < 0 && server_check_dir(dir, shared) != 0)
		return -1;
	if (server_lock(srv, cfg->socket_path) != 0)
		return -1;
	if (fd >= 0) {
		log_info("using the listening socket from systemd (fd %d)", fd);
		if (evutil_make_socket_nonblocking(fd) != 0 ||
		    evutil_make_socket_closeonexec(fd) != 0)
			return -1;
	} else if ((fd = server_bind(srv, cfg->socket_path, shared)) < 0)
		return -1;
	srv->listener = evconnlistener_new(srv->base, server_accept_cb, srv,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 0, fd);
	if (srv->listener == NULL) {
		log_warn("cannot listen on %s", cfg->socket_path);
		close(fd);
		return -1;
	}
	evconnlistener_set_error_cb(srv->listener, server_accept_error_cb);
	return 0;
}

static void server_log_ids(const char *what, const char *kind,
    const unsigned *ids, size_t n)
{
	char buf[SERVER_MAX_ALLOW * 12 + 1];
	size_t len = 0;

	if (n == 0)
		return;
	buf[0] = '\0';
	for (size_t i = 0; i < n && len < sizeof buf; i++)
		len += (size_t)snprintf(buf + len, sizeof buf - len, "%s%u",
		    i ? "," : "", ids[i]);
	log_info("%s %s %s", what, kind, buf);
}

/* Who may connect, and who may only read: one line each, so an operator
 * sees from the log what a CI sidecar was started with. */
static void server_log_access(const struct config *cfg)
{
	unsigned ids[SERVER_MAX_ALLOW];

	for (size_t i = 0; i < cfg->nallow_uid; i++)
		ids[i] = (unsigned)cfg->allow_uid[i];
	server_log_ids("also serving", "uid", ids, cfg->nallow_uid);
	for (size_t i = 0; i < cfg->nallow_gid; i++)
		ids[i] = (unsigned)cfg->allow_gid[i];
	server_log_ids("also serving", "gid", ids, cfg->nallow_gid);
	for (size_t i = 0; i < cfg->nreadonly_uid; i++)
		ids[i] = (unsigned)cfg->readonly_uid[i];
	server_log_ids("read-only for", "uid", ids, cfg->nreadonly_uid);
	for (size_t i = 0; i < cfg->nreadonly_gid; i++)
		ids[i] = (unsigned)cfg->readonly_gid[i];
	server_log_ids("read-only for", "gid", ids, cfg->nreadonly_gid);
}

int server_init(struct server *srv, const struct config *cfg)
{
	memset(srv, 0, sizeof *srv);
	srv->cfg = cfg;
	srv->lock_fd = -1;
	srv->start_ms = server_now_ms();
	TAILQ_INIT(&srv->conns);
	TAILQ_INIT(&srv->dead);
	TAILQ_INIT(&srv->waiting);
	TAILQ_INIT(&srv->jobs);
	proto_buf_init(&srv->scratch);
	/* A client that vanishes must not kill us with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	if ((srv->base = event_base_new()) == NULL) {
		log_warn("cannot create the event loop");
		return -1;
	}
	if (server_events(srv) != 0) {
		log_warn("cannot set up events");
		return -1;
	}
	if (server_listen(srv) != 0 || server_open_store(srv) != 0)
		return -1;
	log_info("tcached %s listening on %s; database %s (%llu entries); "
	    "ttl %llus", TC_VERSION, cfg->socket_path, cfg->db_path,
	    (unsigned long long)store_entries(srv->store),
	    (unsigned long long)(cfg->ttl_ms / 1000));
	server_log_access(cfg);
	return 0;
}

int server_run(struct server *srv)
{
	if (event_base_dispatch(srv->base) < 0) {
		log_warn("event loop failed");
		return -1;
	}
	return 0;
}

static void server_unlink_socket(struct server *srv)
{
	struct stat st;
	const char *path = srv->cfg->socket_path;

	/* Only the socket we bound: never one a successor has put there. */
	if (srv->unlink_socket && lstat(path, &st) == 0 &&
	    st.st_dev == srv->sock_dev && st.st_ino == srv->sock_ino &&
	    unlink(path) != 0)
		log_warn("cannot remove %s: %s", path, strerror(errno));
}

void server_free(struct server *srv)
{
	struct conn *c;
	struct event **evs[] = { &srv->ev_term, &srv->ev_int, &srv->ev_hup,
	    &srv->ev_sweep, &srv->ev_commit, &srv->ev_jobs, &srv->ev_reap,
	    &srv->ev_resume, &srv->ev_deadline };

	if (srv->listener != NULL)
		evconnlistener_free(srv->listener);
	srv->listener = NULL;
	/* Anything still waiting is answered with what the commit says. */
	if (srv->store != NULL && srv->base != NULL)
		server_commit_cb(-1, 0, srv);
	while ((c = TAILQ_FIRST(&srv->jobs)) != NULL) {
		TAILQ_REMOVE(&srv->jobs, c, wait_entry);
		c->listed = 0;
	}
	while ((c = TAILQ_FIRST(&srv->conns)) != NULL)
		conn_close(c);
	while ((c = TAILQ_FIRST(&srv->dead)) != NULL) {
		TAILQ_REMOVE(&srv->dead, c, entry);
		conn_free(c);
	}
	server_unlink_socket(srv);
	if (server_longest_step.n > 0 || server_longest_commit.n > 0)
		log_info("longest delete step %.1f ms (%.1f ms of CPU) of %llu; "
		    "longest commit %.1f ms (%.1f ms of CPU) of %llu",
		    server_longest_step.wall_us / 1000.0,
		    server_longest_step.cpu_us / 1000.0,
		    (unsigned long long)server_longest_step.n,
		    server_longest_commit.wall_us / 1000.0,
		    server_longest_commit.cpu_us / 1000.0,
		    (unsigned long long)server_longest_commit.n);
	for (size_t i = 0; i < sizeof evs / sizeof evs[0]; i++)
		if (*evs[i] != NULL)
			event_free(*evs[i]);
	if (server_touch_ev != NULL)
		event_free(server_touch_ev);
	server_touch_ev = NULL;
	if (srv->store != NULL)
		store_close(srv->store);
	if (srv->base != NULL)
		event_base_free(srv->base);
	proto_buf_free(&srv->scratch);
	if (srv->lock_fd >= 0)
		close(srv->lock_fd);
}
