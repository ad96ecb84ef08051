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
                      LIST, E_MALFORMED, E_UNKNOWN, E_VERSION, E_TOO_LARGE,
                      E_LIMIT, E_HANDSHAKE)


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
