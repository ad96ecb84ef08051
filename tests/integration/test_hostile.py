"""Hostile and broken clients through a raw socket: each gets its error
reply (where one can be sent) and its connection closed, or kept for LIMIT;
the daemon and a bystander connection opened before the attack carry on."""

import os
import signal
import socket
import struct
import threading
import time

import pytest

from conftest import (Raw, frame, s, u32, enc_record, enc_input, HELLO,
                      STATUS, LOOKUP, RECORD, INVALIDATE, STATS, EXPLAIN,
                      LIST, GC, E_MALFORMED, E_UNKNOWN, E_VERSION,
                      E_TOO_LARGE, E_LIMIT, E_HANDSHAKE, E_BUSY, INV_TEST)


def closes_with(code, *also):
    """An attack that must end in ERROR code, then the connection closed."""
    def check(c):
        got, msg = c.expect_error()
        assert got in (code,) + also, \
            "ERROR %d (%s), expected %d" % (got, msg, code)
        assert msg, "an error reply must say why"
        assert c.at_eof(), "connection not closed after ERROR %d" % code
        return msg
    return check


def keeps_with(code):
    """An attack answered by ERROR code, the connection still usable."""
    def check(c):
        got, msg = c.expect_error()
        assert got == code, "ERROR %d (%s), expected %d" % (got, msg, code)
        st = c.status()
        assert st["pid"] > 0
    return check


def no_reply_needed(c):
    """Anything but a hang or a success: an ERROR or a close."""
    try:
        t, r = c.recv_frame()
        assert t == 0xFF, "garbage got a non-error reply 0x%02x" % t
    except EOFError:
        pass
    assert c.at_eof(), "connection left open after garbage"


HELLO_OK = frame(bytes([HELLO]) + u32(1) + s("hostile"))


def msg(t, fields=b""):
    return frame(bytes([t]) + fields)


# (id, say HELLO first?, bytes to send, check)
ATTACKS = [
    ("huge-length", False, b"\xff\xff\xff\xff", closes_with(E_TOO_LARGE)),
    ("huge-length-after-hello", True, b"\xff\xff\xff\xff",
     closes_with(E_TOO_LARGE)),
    ("just-over-4MiB", True, u32(4 * 1024 * 1024 + 1) + b"\x02",
     closes_with(E_TOO_LARGE)),
    ("ff-flood", False, b"\xff" * 100000, closes_with(E_TOO_LARGE)),
    ("http", False, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
     closes_with(E_TOO_LARGE)),
    ("zero-length", False, u32(0), closes_with(E_MALFORMED)),
    ("zero-length-after-hello", True, u32(0), closes_with(E_MALFORMED)),
    ("status-before-hello", False, msg(STATUS), closes_with(E_HANDSHAKE)),
    ("lookup-before-hello", False, msg(LOOKUP, u32(1) + bytes(32)),
     closes_with(E_HANDSHAKE)),
    ("wrong-version", False, msg(HELLO, u32(2) + s("x")),
     closes_with(E_VERSION)),
    ("version-zero", False, msg(HELLO, u32(0) + s("x")),
     closes_with(E_VERSION)),
    ("unknown-type", True, msg(0x42), closes_with(E_UNKNOWN)),
    ("type-zero", True, msg(0x00), closes_with(E_UNKNOWN)),
    # A reply type is no request: UNKNOWN when it is well formed, and
    # MALFORMED is as good when its fields do not even parse.
    ("reply-type", True, msg(0x89, bytes(8)), closes_with(E_UNKNOWN)),
    ("hello-reply-type", True, msg(0x81, u32(1) + s("x")),
     closes_with(E_UNKNOWN)),
    ("bare-reply-type", True, msg(0x82), closes_with(E_UNKNOWN, E_MALFORMED)),
    ("error-type", True, msg(0xFF, struct.pack(">H", 1) + s("x")),
     closes_with(E_UNKNOWN)),
    ("trailing-bytes", True, msg(STATUS, b"x"), closes_with(E_MALFORMED)),
    ("hello-trailing-bytes", False, msg(HELLO, u32(1) + s("x") + b"!"),
     closes_with(E_MALFORMED)),
    ("truncated-fields", True, msg(LOOKUP, u32(2) + bytes(32)),
     closes_with(E_MALFORMED)),
    ("truncated-string", True, msg(EXPLAIN, s("") + u32(100) + b"abc"),
     closes_with(E_MALFORMED)),
    ("bad-bool", True, msg(STATS, b"\x02"), closes_with(E_MALFORMED)),
    ("nul-in-string", True, msg(EXPLAIN, s("") + s(b"a\x00b")),
     closes_with(E_MALFORMED)),
    ("relative-invalidate-path", True,
     msg(INVALIDATE, bytes([1, 1]) + s("src") + bytes(32)),
     closes_with(E_MALFORMED)),
    ("bad-invalidate-mode", True,
     msg(INVALIDATE, bytes([9, 1]) + s("") + bytes(32)),
     closes_with(E_MALFORMED)),
    ("bad-outcome", True,
     msg(RECORD, u32(1) + enc_record(bytes(32), "t", outcome=9)),
     closes_with(E_MALFORMED)),
    ("bad-input-kind", True,
     msg(RECORD, u32(1) + enc_record(bytes(32), "t",
                                     inputs=[(7, "f", bytes(32))])),
     closes_with(E_MALFORMED)),
    ("oversized-lookup-count", True,
     msg(LOOKUP, u32(4097) + bytes(32 * 4097)), keeps_with(E_LIMIT)),
    ("oversized-record-count", True,
     msg(RECORD, u32(4097) + enc_record(bytes(32), "t") * 4097),
     keeps_with(E_LIMIT)),
    ("oversized-project", True, msg(EXPLAIN, s("p" * 257) + s("t")),
     keeps_with(E_LIMIT)),
    ("oversized-test", True, msg(EXPLAIN, s("") + s("t" * 4097)),
     keeps_with(E_LIMIT)),
    ("oversized-client-name", False, msg(HELLO, u32(1) + s("n" * 257)),
     None),   # LIMIT before HELLO: see test below
    ("oversized-list-limit", True,
     msg(LIST, s("") + s("") + u32(5000) + bytes(8)), None),
]


def _send_attack(d, hello, data):
    c = Raw(d.sock, hello=False)
    if hello:
        c.hello()
    c.send(data)
    return c


@pytest.mark.parametrize("name,hello,data,check",
                         [a for a in ATTACKS if a[3] is not None],
                         ids=[a[0] for a in ATTACKS if a[3] is not None])
def test_attack(daemon, name, hello, data, check):
    bystander = daemon.raw()
    c = _send_attack(daemon, hello, data)
    try:
        check(c)
    finally:
        c.close()
    # The bystander, connected before, is still served; so is a newcomer.
    assert bystander.status()["pid"] == daemon.pid()
    bystander.close()
    assert daemon.cli("status").rc == 0
    assert daemon.running()


def test_limit_before_hello_is_refused(daemon):
    """An over-long client name in HELLO: LIMIT, or the connection closed;
    never a successful handshake."""
    c = Raw(daemon.sock, hello=False)
    c.send(msg(HELLO, u32(1) + s("n" * 257)))
    t, r = c.recv_frame()
    assert t == 0xFF
    assert r.u16() in (E_LIMIT, E_MALFORMED)
    c.close()
    assert daemon.cli("status").rc == 0


def test_list_limit_out_of_range(daemon):
    """LIST's limit is 1..1000: more is clamped or refused, never more
    than 1000 entries in a reply."""
    with daemon.raw() as c:
        c.record([enc_record(os.urandom(32), "l%d" % i) for i in range(1200)])
        c.send(msg(LIST, s("") + s("") + u32(5000) + bytes(8)))
        t, r = c.recv_frame()
        if t == 0xFF:
            assert r.u16() in (E_LIMIT, E_MALFORMED)
        else:
            assert r.u32() <= 1000


@pytest.mark.parametrize("how", ["random-then-close", "truncated-body",
                                 "truncated-header", "half-frame-hello"])
def test_truncated_then_close(daemon, how):
    bystander = daemon.raw()
    c = Raw(daemon.sock, hello=False)
    if how == "random-then-close":
        c.send(os.urandom(3000))
    elif how == "truncated-body":
        c.hello()
        c.send(u32(100) + b"\x03" + bytes(10))
    elif how == "truncated-header":
        c.send(b"\x00\x00")
    else:
        c.send(HELLO_OK[:7])
    c.sock.shutdown(socket.SHUT_WR)
    no_reply_needed(c) if how == "random-then-close" else c.at_eof()
    c.close()
    assert bystander.status()["pid"] == daemon.pid()
    bystander.close()
    assert daemon.cli("status").rc == 0


def test_random_garbage_many_times(daemon):
    bystander = daemon.raw()
    for i in range(50):
        c = Raw(daemon.sock, hello=False, timeout=2)
        junk = os.urandom(64 + i * 13)
        # A plausible small length makes the daemon wait for a body that
        # never comes: close so the test does not wait for the idle timer.
        try:
            c.send(junk)
        except OSError:
            pass
        c.close()
    assert bystander.status()["pid"] == daemon.pid()
    assert daemon.cli("status").rc == 0
    bystander.close()


def test_pipelined_requests_answered_in_order(daemon):
    keys = [os.urandom(32) for _ in range(50)]
    with daemon.raw() as c:
        data = b""
        for i, k in enumerate(keys):
            data += msg(RECORD, u32(1) + enc_record(k, "p%d" % i))
            data += msg(LOOKUP, u32(1) + k)
            data += msg(STATUS)
        c.send(data)
        for i in range(len(keys)):
            t, r = c.recv_frame()
            assert t == RECORD | 0x80
            t, r = c.recv_frame()
            assert t == LOOKUP | 0x80
            assert r.u32() == 1 and r.u8() == 1, "record %d not seen" % i
            t, r = c.recv_frame()
            assert t == STATUS | 0x80


def test_byte_at_a_time(daemon):
    c = Raw(daemon.sock, hello=False)
    data = HELLO_OK + msg(STATUS)
    for b in data:
        c.send(bytes([b]))
        time.sleep(0.001)
    t, _ = c.recv_frame()
    assert t == HELLO | 0x80
    t, _ = c.recv_frame()
    assert t == STATUS | 0x80
    c.close()


def test_max_batch_accepted(daemon):
    keys = [os.urandom(32) for _ in range(4096)]
    with daemon.raw() as c:
        assert c.lookup(keys) == [None] * 4096
        st = c.record([enc_record(k, "b%d" % i) for i, k in
                       enumerate(keys[:4096])])
        assert st == [0] * 4096
        assert all(r is not None for r in c.lookup(keys))


def test_idle_client_closed(make_daemon):
    d = make_daemon("--idle-timeout", "1s")
    idle = d.raw()
    silent = Raw(d.sock, hello=False)
    busy = d.raw()
    t0 = time.monotonic()
    while time.monotonic() - t0 < 2.0:
        busy.status()
        time.sleep(0.25)
    # The silent ones were closed after about a second.
    assert idle.at_eof(0.5)
    assert silent.at_eof(0.5)
    busy.status()
    for c in (idle, silent, busy):
        c.close()
    assert "idle" in d.log_text()


def test_many_concurrent_connections(daemon):
    n = 200
    barrier = threading.Barrier(n)
    errors, keys = [], [os.urandom(32) for _ in range(n)]

    def client(i):
        try:
            c = Raw(daemon.sock, timeout=20)
            barrier.wait(20)
            assert c.record([enc_record(keys[i], "conc/%d" % i)]) == [0]
            assert c.lookup([keys[i]])[0] is not None
            assert c.status()["pid"] == daemon.pid()
            c.close()
        except Exception as e:     # noqa: BLE001 - reported below
            errors.append("%d: %r" % (i, e))
            try:
                barrier.abort()
            except Exception:      # noqa: BLE001
                pass

    threads = [threading.Thread(target=client, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors, errors[:10]
    with daemon.raw() as c:
        assert c.status()["entries"] == n


def test_many_open_connections_all_answered(daemon):
    """200 connections open at once, each answered in turn."""
    conns = [Raw(daemon.sock, hello=False) for _ in range(200)]
    try:
        for c in conns:
            c.send(HELLO_OK + msg(STATUS))
        for c in conns:
            t, _ = c.recv_frame()
            assert t == HELLO | 0x80
            t, _ = c.recv_frame()
            assert t == STATUS | 0x80
    finally:
        for c in conns:
            c.close()


def test_listen_backlog_holds_a_burst(daemon):
    """tcached listens with a backlog of 512 (server.c): a burst of
    clients arriving while the daemon is busy waits in the queue rather
    than being turned away.  The daemon is stopped so nothing is accepted,
    then non-blocking connects are made until the queue is full."""
    os.kill(daemon.pid(), signal.SIGSTOP)
    conns = []
    try:
        while len(conns) < 600:
            c = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            c.setblocking(False)
            try:
                c.connect(daemon.sock)
            except BlockingIOError:
                c.close()
                break
            conns.append(c)
    finally:
        os.kill(daemon.pid(), signal.SIGCONT)
    queued = len(conns)
    try:
        # Every queued client is then served.
        for c in conns:
            c.setblocking(True)
            c.settimeout(10)
            c.sendall(HELLO_OK)
        for c in conns:
            hdr = c.recv(4)
            assert len(hdr) == 4
    finally:
        for c in conns:
            c.close()
    # The kernel caps any backlog at net.core.somaxconn.
    with open("/proc/sys/net/core/somaxconn") as f:
        want = min(512, int(f.read()))
    assert queued >= want, "only %d connections queued: the listen " \
        "backlog is not the %d server.c asks for" % (queued, want)


def test_client_that_never_reads(daemon):
    """A client that floods requests and reads no replies does not stop
    others from being served."""
    hog = Raw(daemon.sock)
    hog.sock.setblocking(False)
    req = msg(LOOKUP, u32(4096) + bytes(32 * 4096))
    sent = 0
    end = time.monotonic() + 2
    while time.monotonic() < end and sent < 64 * 1024 * 1024:
        try:
            sent += hog.sock.send(req)
        except BlockingIOError:
            break
    with daemon.raw() as c:
        assert c.status()["pid"] == daemon.pid()
    assert daemon.cli("status").rc == 0
    hog.close()


# ------------------------------------------------ at scale, with figures
#
# The tests below watch the daemon's resident memory (VmRSS and its peak,
# VmHWM, from /proc/PID/status) while a bystander, connected before the
# attack, keeps asking; each prints its figures (pytest -s or -rP).

def _proc_kib(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError("no %s in /proc/%d/status" % (field, pid))


def instrumented(pid):
    """True when tcached runs under valgrind or with ASan (make valgrind,
    make sanitize): their shadow memory and quarantine make RSS say
    nothing of tcached's own, and everything is slower."""
    try:
        exe = os.readlink("/proc/%d/exe" % pid)
        with open("/proc/%d/maps" % pid) as f:
            maps = f.read()
        with open(exe, "rb") as f:
            image = f.read()
    except OSError:
        return True
    return ("valgrind" in exe or "memcheck" in os.path.basename(exe) or
            "libasan" in maps or "vgpreload" in maps or
            b"__asan_init" in image)


def rss_mib(pid):
    return _proc_kib(pid, "VmRSS") / 1024.0


def peak_mib(pid):
    return _proc_kib(pid, "VmHWM") / 1024.0


class Bystander:
    """A well-behaved client asking STATUS and LOOKUP in a loop from a
    thread: every answer must come, the slowest within max_s."""

    def __init__(self, d, key=None, pause=0.02):
        self.d = d
        self.key = key or os.urandom(32)
        self.pause = pause
        self.c = d.raw(timeout=10)
        self.c.record([enc_record(self.key, "bystander")])
        self.answers = 0
        self.slowest = 0.0
        self.errors = []
        self.stop_ev = threading.Event()
        self.t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop_ev.is_set():
            t0 = time.monotonic()
            try:
                assert self.c.status()["pid"] == self.d.pid()
                hit = self.c.lookup([self.key])[0]
                assert hit is not None and hit["outcome"] == 1
            except Exception as e:      # noqa: BLE001 - reported by stop()
                self.errors.append(repr(e))
                return
            self.slowest = max(self.slowest, time.monotonic() - t0)
            self.answers += 1
            time.sleep(self.pause)

    def __enter__(self):
        self.t.start()
        return self

    def __exit__(self, *exc):
        self.stop_ev.set()
        self.t.join(15)
        self.c.close()
        if exc[0] is None:
            self.check(10.0 if instrumented(self.d.pid()) else 2.0)

    def check(self, max_s):
        assert not self.t.is_alive(), "the bystander hung"
        assert not self.errors, "the bystander failed: %s" % self.errors
        assert self.answers > 0, "the bystander got no answer"
        assert self.slowest < max_s, \
            "the bystander waited %.2f s for an answer" % self.slowest


@pytest.fixture
def many_fds():
    """Raises this process's descriptor limit (tcached, started after,
    inherits it) so that 1,000 connections fit at both ends."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if want < 1100:
        pytest.skip("RLIMIT_NOFILE hard limit %d is under 1100" % hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_thousand_connections(make_daemon, many_fds):
    """1,000 clients connected at once, each handshakes, records, looks
    up and asks STATUS with all the others still open; one more than
    --max-clients is refused with BUSY; the bystander is answered
    throughout and RSS stays small."""
    n = 1000
    d = make_daemon("--max-clients", str(n + 1))   # + the bystander
    base = rss_mib(d.pid())
    conns = []
    try:
        with Bystander(d) as by:
            for _ in range(n):
                conns.append(Raw(d.sock, hello=False, timeout=20))
            # Every one speaks before any reads: 1,000 pending at once.
            keys = [os.urandom(32) for _ in range(n)]
            for i, c in enumerate(conns):
                c.send(HELLO_OK + msg(RECORD, u32(1) + enc_record(
                    keys[i], "conn/%d" % i)) + msg(LOOKUP, u32(1) + keys[i]))
            for i, c in enumerate(conns):
                assert c.recv_frame()[0] == HELLO | 0x80
                t, r = c.recv_frame()
                assert t == RECORD | 0x80, "client %d: 0x%02x" % (i, t)
                t, r = c.recv_frame()
                assert t == LOOKUP | 0x80 and r.u32() == 1 and r.u8() == 1
            # All 1,000 still open: each answers STATUS again.
            for c in conns:
                c.send(msg(STATUS))
            for c in conns:
                assert c.recv_frame()[0] == STATUS | 0x80
            held = rss_mib(d.pid())
            # One over the limit is turned away, and says why.
            extra = Raw(d.sock, hello=False)
            code, why = extra.expect_error()
            assert code == E_BUSY and "too many" in why
            assert extra.at_eof()
            extra.close()
    finally:
        for c in conns:
            c.close()
    peak = peak_mib(d.pid())
    print("thousand-connections: %d held, RSS %.1f MiB before, %.1f MiB "
          "with all open, peak %.1f MiB; bystander %d answers, slowest "
          "%.0f ms" % (n, base, held, peak, by.answers, by.slowest * 1000))
    # About 2 KiB a connection: 64 MiB leaves room for allocator noise but
    # not for a buffer kept per connection.
    if not instrumented(d.pid()):
        assert peak < base + 64, "RSS peaked at %.1f MiB" % peak
    # Once they are gone a newcomer is served again.
    assert d.cli("status").rc == 0


# Partial frames that then stall: each must be closed by the idle timer.
STALLS = {
    "header-only": u32(100),
    "half-header": b"\x00\x00",
    "header-and-part": u32(1000) + bytes([LOOKUP]) + u32(31),
    "big-frame-half-sent": u32(4 * 1024 * 1024) + bytes([RECORD]) +
    bytes(2 * 1024 * 1024),
}


def test_header_then_stall(make_daemon):
    """Clients that send part of a frame (after HELLO, and before it) and
    stall are closed by --idle-timeout; the memory a half-sent 4 MiB
    frame holds is given back to the system or reused, never lost; the
    bystander is served all the while."""
    d = make_daemon("--idle-timeout", "1s")
    base = rss_mib(d.pid())
    with Bystander(d) as by:
        stalled = []
        for rounds in range(3):
            for name, data in STALLS.items():
                for hello in (False, True):
                    c = Raw(d.sock, hello=hello, timeout=10)
                    c.send(data)
                    stalled.append((name, hello, c, time.monotonic()))
            for name, hello, c, t0 in stalled:
                assert c.at_eof(5), "%s (hello %s) still open after 5 s" \
                    % (name, hello)
                took = time.monotonic() - t0
                assert took >= 0.8, "%s closed after %.2f s, before the " \
                    "idle timeout" % (name, took)
                c.close()
            stalled.clear()
            after = rss_mib(d.pid())
    peak = peak_mib(d.pid())
    print("header-then-stall: %d stalled clients closed in 3 rounds; RSS "
          "%.1f MiB before, %.1f MiB after, peak %.1f MiB; bystander %d "
          "answers, slowest %.0f ms" % (len(STALLS) * 2 * 3, base, after,
                                        peak, by.answers, by.slowest * 1000))
    # Three rounds of two half-sent 4 MiB frames: a leak would be 12 MiB+.
    if not instrumented(d.pid()):
        assert after < base + 24, "RSS %.1f MiB after the stalls" % after
    assert "idle" in d.log_text()


def test_never_reading_clients_bounded(make_daemon):
    """Clients that pipeline requests with large replies (LIST of 1,000
    entries, ~200 KB each) and never read them: tcached stops reading
    each once its unsent replies pass CONN_OUT_HIGH, so memory stays
    bounded by the number of such clients, not by what they ask; the
    write timeout closes them; the bystander is served throughout."""
    hogs_n, per_hog = 40, 60          # 40 x 60 x ~200 KB = ~480 MB asked
    d = make_daemon("--idle-timeout", "3s")
    with d.raw() as c:
        c.record([enc_record(os.urandom(32), "hog/%04d" % i,
                             message="m" * 100) for i in range(1000)])
        entries, _ = c.list(limit=1000)
        assert len(entries) == 1000
    base = rss_mib(d.pid())
    req = msg(LIST, s("") + s("") + u32(1000) + bytes(8))
    hogs = []
    with Bystander(d) as by:
        for _ in range(hogs_n):
            h = Raw(d.sock, timeout=10)
            h.sock.setblocking(False)
            hogs.append([h, req * per_hog])
        # Push each hog's requests as far as the socket takes them.
        end = time.monotonic() + 2.0
        while time.monotonic() < end and any(p for _, p in hogs):
            for hp in hogs:
                if not hp[1]:
                    continue
                try:
                    sent = hp[0].sock.send(hp[1])
                    hp[1] = hp[1][sent:]
                except BlockingIOError:
                    pass
            time.sleep(0.01)
        time.sleep(0.5)
        held = rss_mib(d.pid())
        # The write timeout (no progress for --idle-timeout) closes them.
        for h, _ in hogs:
            h.sock.setblocking(True)
            assert h.at_eof(10), "a client that never reads was not closed"
            h.close()
    peak = peak_mib(d.pid())
    print("never-reading: %d clients asked %d LIST replies each; RSS %.1f "
          "MiB before, %.1f MiB while held, peak %.1f MiB; bystander %d "
          "answers, slowest %.0f ms" % (hogs_n, per_hog, base, held, peak,
                                        by.answers, by.slowest * 1000))
    per = (peak - base) / hogs_n
    assert instrumented(d.pid()) or per < 2.0, "%.2f MiB per client that never reads (peak %.1f " \
        "MiB): output is not held back" % (per, peak)
    assert d.cli("status").rc == 0


# One valid request of each type, to be cut at every byte.
def _valid_bodies():
    rec = enc_record(bytes(range(32)), "tests/t.py::t", project="p",
                     root="/r", message="msg",
                     inputs=[(0, "a.c", bytes(32)), (1, "b.c", bytes(32)),
                             (2, "HOME", bytes(32))])
    return {
        "HELLO": bytes([HELLO]) + u32(1) + s("client"),
        "STATUS": bytes([STATUS]),
        "LOOKUP": bytes([LOOKUP]) + u32(2) + bytes(32) + bytes(range(32)),
        "RECORD": bytes([RECORD]) + u32(2) + rec + rec,
        "INVALIDATE": bytes([INVALIDATE]) + bytes([INV_TEST, 1]) + s("t*") +
        bytes(32),
        "STATS": bytes([STATS, 0]),
        "LIST": bytes([LIST]) + s("t*") + s("/r") + u32(10) + bytes(8),
        "EXPLAIN": bytes([EXPLAIN]) + s("p") + s("tests/t.py::t"),
        "GC": bytes([GC]),
    }


def _expect_closed_with(c, codes, what):
    t, r = c.recv_frame()
    assert t == 0xFF, "%s: answered 0x%02x, not ERROR" % (what, t)
    code = r.u16()
    assert code in codes, "%s: ERROR %d (%s)" % (what, code, r.str())
    assert c.at_eof(), "%s: connection left open" % what


def test_every_message_truncated_at_every_offset(daemon):
    """Each request type, its frame's body cut after every byte (the frame
    length saying so): ERROR MALFORMED and close, every time.  Then the
    same frames sent whole but the connection closed after every byte:
    no reply needed, no harm done.  Nothing is stored by either."""
    bodies = _valid_bodies()
    # The whole bodies are valid: each is answered.
    with daemon.raw() as c:
        for name, body in bodies.items():
            c.send(frame(body))
            t, _ = c.recv_frame()
            assert t == body[0] | 0x80, "%s: 0x%02x" % (name, t)
        entries_before = c.status()["entries"]
    cases = 0
    with Bystander(daemon) as by:
        for name, body in bodies.items():
            for cut in range(len(body)):
                c = Raw(daemon.sock, hello=name != "HELLO")
                c.send(frame(body[:cut]) if cut else u32(0))
                _expect_closed_with(c, (E_MALFORMED,),
                                    "%s cut at %d of %d" % (name, cut, len(body)))
                c.close()
                cases += 1
            whole = frame(body)
            for cut in range(1, len(whole)):
                c = Raw(daemon.sock, hello=name != "HELLO")
                c.send(whole[:cut])
                c.sock.shutdown(socket.SHUT_WR)
                assert c.at_eof(), "%s sent %d of %d bytes then closed: " \
                    "still open" % (name, cut, len(whole))
                c.close()
                cases += 1
    assert daemon.running()
    with daemon.raw() as c:
        # The bystander's own record is the only one added.
        assert c.status()["entries"] == entries_before + 1
    print("truncation: %d cut frames, bystander %d answers, slowest %.0f ms"
          % (cases, by.answers, by.slowest * 1000))


def test_every_unknown_type(daemon):
    """All 247 type bytes that are not requests, after HELLO: ERROR
    UNKNOWN (MALFORMED for a reply type whose fields do not parse) and
    close."""
    requests = set(range(HELLO, 10))
    with Bystander(daemon):
        for t in range(256):
            if t in requests:
                continue
            c = Raw(daemon.sock)
            c.send(msg(t))
            _expect_closed_with(c, (E_UNKNOWN, E_MALFORMED), "type 0x%02x" % t)
            c.close()
            # Before HELLO an unknown type is no handshake either.
            c = Raw(daemon.sock, hello=False)
            c.send(msg(t))
            _expect_closed_with(c, (E_UNKNOWN, E_MALFORMED, E_HANDSHAKE),
                                "type 0x%02x before HELLO" % t)
            c.close()


@pytest.mark.parametrize("version", [0, 2, 3, 0x100, 0x01000000, 0xFFFFFFFF])
def test_wrong_version(daemon, version):
    """A version other than 1, first or after a good handshake: ERROR
    VERSION naming the one spoken, then close."""
    for first in (True, False):
        c = Raw(daemon.sock, hello=not first)
        c.send(msg(HELLO, u32(version) + s("v")))
        t, r = c.recv_frame()
        assert t == 0xFF
        code, why = r.u16(), r.str()
        assert code == E_VERSION and "1" in why, (code, why)
        assert c.at_eof()
        c.close()
    assert daemon.cli("status").rc == 0
