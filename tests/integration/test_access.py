"""Access and poisoning: who may talk to tcached and what they may change.

- the socket is made with its final mode (umask around bind), never chmod-ed
  after: an inotify watch on its directory sees it created and never sees its
  attributes change, whatever umask tcached was started under;
- a socket directory writable by others, or another user's, is refused at
  start, and left as it was;
- a CI sidecar: tcached runs as a user of its own; --allow-uid/--allow-gid let
  the job's user and group record and look up, a --readonly-uid pull-request
  job may look up but not record, invalidate, collect or reset, and any other
  uid is refused, with its uid in the log;
- the read-only role without root (--readonly-uid/--readonly-gid of our own
  user): every writing request gets DENIED, nothing changes, the connection
  stays open for lookups, and the refusal is logged once;
- a record that disagrees with a live entry (same key, same inputs, another
  outcome) marks it flaky: the reply says so, a lookup never again sees a
  clean pass, and the log names the test and the writer's uid, bounded.

Tests that need another uid run only as root (setpriv); the rest run as anyone.
"""

import ctypes
import json
import os
import shutil
import stat
import struct
import subprocess
import time

import pytest

from conftest import (TCACHE, TCACHED, E_DENIED, PASS, FAIL, INV_ALL, INV_KEY,
                      INV_TEST, ProtoError, blake, client_env, enc_record,
                      short_tmp)


def wait_exit(proc, timeout=5):
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("tcached still running after %ss" % timeout)


def wait_log(d, text, timeout=3.0):
    end = time.monotonic() + timeout
    while text not in d.log_text() and time.monotonic() < end:
        time.sleep(0.02)
    return text in d.log_text()


def key(name):
    return blake(name.encode())


FOUND = (1, "src/found.py", bytes(range(32)))


# ------------------------------------------------------------ inotify

IN_ATTRIB, IN_MOVED_TO, IN_CREATE = 0x4, 0x80, 0x100


class DirWatch:
    """inotify on one directory: the names created in it and the names
    whose attributes (mode, owner) changed."""

    def __init__(self, path):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            pytest.skip("inotify: %s" % os.strerror(ctypes.get_errno()))
        wd = self.libc.inotify_add_watch(self.fd, os.fsencode(path),
                                         IN_CREATE | IN_ATTRIB | IN_MOVED_TO)
        if wd < 0:
            os.close(self.fd)
            pytest.skip("inotify_add_watch: %s" %
                        os.strerror(ctypes.get_errno()))
        self.created, self.attrib = [], []

    def poll(self):
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return self
            i = 0
            while i + 16 <= len(data):
                _, mask, _, n = struct.unpack_from("iIII", data, i)
                name = data[i + 16:i + 16 + n].rstrip(b"\0").decode()
                i += 16 + n
                if mask & (IN_CREATE | IN_MOVED_TO):
                    self.created.append(name)
                if mask & IN_ATTRIB:
                    self.attrib.append(name)

    def close(self):
        os.close(self.fd)


def test_dir_watch_sees_a_chmod(tmpbase):
    """The watch the next test relies on does see a socket chmod-ed after
    its bind (what tcached must never do)."""
    import socket
    w = DirWatch(tmpbase)
    try:
        s = socket.socket(socket.AF_UNIX)
        path = os.path.join(tmpbase, "x.sock")
        s.bind(path)
        os.chmod(path, 0o600)
        s.close()
        w.poll()
        assert "x.sock" in w.created and "x.sock" in w.attrib, \
            (w.created, w.attrib)
    finally:
        w.close()


@pytest.mark.parametrize("umask", [0o000, 0o022, 0o077])
@pytest.mark.parametrize("shared", [False, True])
def test_socket_never_chmodded_after_bind(make_daemon, umask, shared):
    d = make_daemon(start=False)
    run = os.path.dirname(d.sock)
    os.makedirs(run)
    os.chmod(run, 0o711 if shared else 0o700)
    w = DirWatch(run)
    old = os.umask(umask)
    try:
        d.start(*(["--allow-uid", "12345"] if shared else []))
    finally:
        os.umask(old)
    try:
        w.poll()
        name = os.path.basename(d.sock)
        assert name in w.created, w.created
        assert name not in w.attrib, \
            "the socket's mode or owner changed after bind: %r" % w.attrib
        mode = stat.S_IMODE(os.lstat(d.sock).st_mode)
        assert mode == (0o666 if shared else 0o600), oct(mode)
    finally:
        w.close()


@pytest.mark.parametrize("umask", [0o000, 0o077])
@pytest.mark.parametrize("shared", [False, True])
def test_socket_directory_mode_ignores_umask(make_daemon, umask, shared):
    """tcached makes the socket's directory 0700, or 0711 when it serves
    others: a umask of 077 must not shut the allowed users out, nor one of
    000 open the directory to writers."""
    d = make_daemon(start=False)
    old = os.umask(umask)
    try:
        d.start(*(["--allow-gid", "12345"] if shared else []))
    finally:
        os.umask(old)
    mode = stat.S_IMODE(os.stat(os.path.dirname(d.sock)).st_mode)
    assert mode == (0o711 if shared else 0o700), oct(mode)
    mode = stat.S_IMODE(os.lstat(d.sock).st_mode)
    assert mode == (0o666 if shared else 0o600), oct(mode)


def test_closed_socket_directory_of_a_shared_daemon_warns(make_daemon):
    """An existing 0700 directory is the operator's choice and left alone,
    but the allowed users cannot reach the socket: the log says so."""
    d = make_daemon(start=False)
    run = os.path.dirname(d.sock)
    os.makedirs(run)
    os.chmod(run, 0o700)
    d.start("--readonly-uid", "12345")
    assert "cannot reach the socket" in d.log_text()
    assert stat.S_IMODE(os.stat(run).st_mode) == 0o700
    d.stop()
    os.chmod(run, 0o710)
    d.start("--readonly-uid", "12345")
    assert d.log_text().count("cannot reach the socket") == 1


def _bad_dir_cases():
    cases = [("mode", 0o777, None), ("mode", 0o1777, None),
             ("mode", 0o730, None), ("mode", 0o702, None)]
    if os.geteuid() == 0:
        cases += [("owner", 0o700, 65534), ("owner", 0o755, 65534)]
    return cases


@pytest.mark.parametrize("what,mode,owner", _bad_dir_cases())
def test_unsafe_socket_directory_refused(make_daemon, what, mode, owner):
    """A directory others can write to (they could swap the socket under
    our clients), or another user's, is refused at start: one clear line,
    a failed exit, and the directory left exactly as it was."""
    d = make_daemon(start=False)
    run = os.path.dirname(d.sock)
    os.makedirs(run)
    os.chmod(run, mode)
    if owner is not None:
        os.chown(run, owner, owner)
    before = os.stat(run)
    d.spawn("--allow-uid", "12345")
    assert wait_exit(d.proc) != 0
    lines = [l for l in d.log_text().splitlines() if "refusing it" in l]
    assert len(lines) == 1, d.log_text()
    assert run in lines[0]
    assert ("writable by others" if what == "mode" else
            "belongs to uid %d" % owner) in lines[0], lines[0]
    after = os.stat(run)
    assert (after.st_mode, after.st_uid, after.st_gid) == \
        (before.st_mode, before.st_uid, before.st_gid)
    assert os.listdir(run) == []


# ------------------------------------------------- the read-only role

def _records(*names, outcome=PASS):
    return [enc_record(key(n), n, project="p", outcome=outcome,
                       inputs=[FOUND]) for n in names]


def _assert_denied(c, call, *args):
    with pytest.raises(ProtoError) as e:
        call(*args)
    assert e.value.code == E_DENIED, e.value
    assert "read-only" in e.value.message
    # The connection is kept: lookups go on.
    assert c.lookup([key("a")])[0] is not None


@pytest.mark.parametrize("flag", ["--readonly-uid", "--readonly-gid"])
def test_readonly_role_of_our_own_user(make_daemon, flag):
    """Read-only wins even over our own uid (a CI container runs every job
    as root): here that lets the role be tested without a second user."""
    d = make_daemon()
    with d.raw() as c:
        assert c.record(_records("a", "b", "c")) == [0, 0, 0]
        c.lookup([key("a")])
        before = c.stats()
    d.stop()
    own = str(os.geteuid() if flag == "--readonly-uid" else os.getegid())
    d.start(flag, own)
    assert wait_log(d, "read-only for %s %s" % (flag[-3:], own))
    with d.raw(hello=False) as c:
        assert c.hello().endswith(" read-only")
        # Everything that only reads is answered.
        assert c.status()["entries"] == 3
        res = c.lookup([key("a"), key("zzz")])
        assert res[0]["outcome"] == PASS and res[1] is None
        assert len(c.list()[0]) == 3
        assert c.explain("p", "b")[0]["test"] == "b"
        assert c.invalidate(INV_ALL, dry_run=True) == 3
        assert c.stats()["records"] == before["records"]
        # Everything that writes is DENIED, and the connection stays open.
        _assert_denied(c, c.record, _records("new", "a", outcome=FAIL))
        _assert_denied(c, c.invalidate, INV_ALL)
        _assert_denied(c, c.invalidate, INV_KEY, "", key("a"))
        _assert_denied(c, c.invalidate, INV_TEST, "*")
        _assert_denied(c, c.gc)
        _assert_denied(c, c.stats, True)
        st = c.stats()
        assert st["records"] == before["records"]
        assert st["entries"] == 3 and st["flaky_entries"] == 0
        assert c.status()["entries"] == 3
        assert c.lookup([key("new")]) == [None]
        assert c.lookup([key("a")])[0]["flaky"] == 0
    # One line for the connection, however many refusals, with the uid.
    denied = [l for l in d.log_text().splitlines() if "denied" in l]
    assert len(denied) == 1, denied
    assert "read-only uid %d" % os.geteuid() in denied[0], denied[0]
    # The command-line client says why it failed.
    r = d.cli("record", "--test", "cli", "--outcome", "pass", "--root", "/")
    assert r.rc != 0 and "read-only" in r.stderr, r
    # Without the flag we write again.
    d.stop()
    d.start()
    with d.raw(hello=False) as c:
        assert "read-only" not in c.hello()
        assert c.record(_records("new")) == [0]
        assert c.invalidate(INV_ALL) == 4


def test_readonly_option_errors(tmpbase):
    for bad in (["--readonly-uid", "no-such-user-xyz"],
                ["--readonly-gid", "no-such-group-xyz"],
                ["--readonly-uid", "4294967295"]):
        r = subprocess.run([TCACHED, "--socket", tmpbase + "/s/x.sock",
                            "--db", tmpbase + "/db"] + bad,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=5)
        assert r.returncode == 2, bad
        assert b"--readonly-" in r.stderr, r.stderr
    r = subprocess.run([TCACHED, "--help"], stdout=subprocess.PIPE, timeout=5)
    assert b"--readonly-uid" in r.stdout and b"--readonly-gid" in r.stdout


# -------------------------------------------- conflicting records

def _conflict_lines(d):
    return [l for l in d.log_text().splitlines()
            if "conflicting record from" in l]


def test_conflicting_record_marks_flaky_and_is_reported(daemon):
    with daemon.raw() as c:
        assert c.record(_records("t1")) == [0]
        # The same outcome again is no conflict.
        assert c.record(_records("t1")) == [0]
        assert _conflict_lines(daemon) == []
        # Another outcome under the same key and inputs: stored, flaky.
        assert c.record(_records("t1", outcome=FAIL)) == [1]
        res = c.lookup([key("t1")])[0]
        assert res["outcome"] == FAIL and res["flaky"] == 1
        # Flipping it back to pass does not make a clean pass.
        assert c.record(_records("t1")) == [1]
        res = c.lookup([key("t1")])[0]
        assert res["outcome"] == PASS and res["flaky"] == 1
        st = c.stats()
        assert st["flaky_marked"] == 1 and st["flaky_entries"] == 1
        assert st["hits"] == 0
    assert wait_log(daemon, "conflicting record")
    lines = _conflict_lines(daemon)
    assert len(lines) == 2, lines
    assert "uid %d" % os.geteuid() in lines[0]
    assert "p t1 now fail" in lines[0] and "marked flaky" in lines[0]
    assert "p t1 now pass" in lines[1]


def test_conflict_inside_one_frame(daemon):
    with daemon.raw() as c:
        assert c.record(_records("t2") + _records("t2", outcome=FAIL)) == \
            [0, 1]
        assert c.lookup([key("t2")])[0]["flaky"] == 1


def test_expired_entry_is_no_conflict(daemon):
    with daemon.raw() as c:
        assert c.record([enc_record(key("t3"), "t3", ttl_ms=1,
                                    inputs=[FOUND])]) == [0]
        time.sleep(0.05)
        assert c.record([enc_record(key("t3"), "t3", outcome=FAIL,
                                    inputs=[FOUND])]) == [0]
        assert c.lookup([key("t3")])[0]["flaky"] == 0
    assert _conflict_lines(daemon) == []


def test_conflict_reports_are_bounded(daemon):
    names = ["b%d" % i for i in range(200)]
    with daemon.raw() as c:
        assert c.record(_records(*names)) == [0] * 200
        assert c.record(_records(*names, outcome=FAIL)) == [1] * 200
        assert c.stats()["flaky_entries"] == 200
    assert wait_log(daemon, "197 more")
    assert len(_conflict_lines(daemon)) == 3
    assert len([l for l in daemon.log_text().splitlines()
                if "conflicting records" in l]) == 1


def test_conflict_report_scrubs_the_test_name(daemon):
    with daemon.raw() as c:
        name = "evil\nforged log line\x1b[31m"
        rec = [enc_record(key("e"), name, inputs=[FOUND])]
        assert c.record(rec) == [0]
        rec = [enc_record(key("e"), name, outcome=FAIL, inputs=[FOUND])]
        assert c.record(rec) == [1]
    assert wait_log(daemon, "conflicting record")
    assert "\nforged log line" not in daemon.log_text()
    assert "\x1b" not in daemon.log_text()


# ------------------------------------------------- a CI sidecar

# Users and a group with no account: setpriv takes numbers.
SIDECAR, JOB, PR, OTHER, MEMBER, SUPP, SUPPRO = range(54401, 54408)
CIGROUP, PRGROUP, ELSEGROUP = 54410, 54411, 54412

# A raw client for another uid: reads nothing outside its own directory.
DRIVER = r'''
import json, socket, struct, sys

def u32(x): return struct.pack(">I", x)
def s(b): b = b.encode() if isinstance(b, str) else b; return u32(len(b)) + b

class R:
    def __init__(self, d): self.d, self.i = d, 0
    def take(self, n):
        b = self.d[self.i:self.i + n]; self.i += n
        if len(b) != n: raise ValueError("short reply")
        return b
    def u8(self): return self.take(1)[0]
    def u16(self): return struct.unpack(">H", self.take(2))[0]
    def u32(self): return struct.unpack(">I", self.take(4))[0]
    def u64(self): return struct.unpack(">Q", self.take(8))[0]
    def str(self): return self.take(self.u32()).decode("utf-8", "replace")

sock = socket.socket(socket.AF_UNIX)
sock.settimeout(5)
buf = b""

def call(t, body=b""):
    global buf
    sock.sendall(u32(len(body) + 1) + bytes([t]) + body)
    while len(buf) < 4 or len(buf) < 4 + struct.unpack(">I", buf[:4])[0]:
        chunk = sock.recv(65536)
        if not chunk: raise EOFError("closed")
        buf += chunk
    n = struct.unpack(">I", buf[:4])[0]
    f, buf = buf[4:4 + n], buf[4 + n:]
    r = R(f[1:])
    if f[0] == 0xFF:
        return {"err": r.u16(), "msg": r.str()}
    return r

def rec(k, test, outcome):
    return (bytes.fromhex(k) + s("p") + s(test) + s("/ci") + bytes([outcome])
            + struct.pack(">QQ", 1000, 0) + s("") + u32(0))

def op(o):
    name = o[0]
    if name == "hello":
        r = call(1, u32(1) + s("driver"))
        return r if isinstance(r, dict) else {"ok": r.u32()}
    if name == "status":
        r = call(2)
        if isinstance(r, dict): return r
        r.str(); r.u32(); r.u64(); r.str(); r.str()
        return {"ok": r.u64()}
    if name == "lookup":
        r = call(3, u32(len(o[1])) + b"".join(bytes.fromhex(k) for k in o[1]))
        if isinstance(r, dict): return r
        out = []
        for _ in range(r.u32()):
            if not r.u8():
                out.append(None); continue
            oc, fl = r.u8(), r.u8(); r.take(24)
            for _ in range(r.u32()): r.u8(); r.str(); r.take(32)
            out.append([oc, fl])
        return {"ok": out}
    if name == "record":
        r = call(4, u32(len(o[1])) + b"".join(rec(*x) for x in o[1]))
        return r if isinstance(r, dict) else {"ok": [r.u8() for _ in range(r.u32())]}
    if name == "invalidate":
        r = call(5, bytes([o[1], o[2]]) + s("") + bytes(32))
        return r if isinstance(r, dict) else {"ok": r.u64()}
    if name == "stats":
        r = call(6, bytes([o[1]]))
        return r if isinstance(r, dict) else {"ok": dict((r.str(), r.u64()) for _ in range(r.u32()))}
    if name == "list":
        r = call(7, s("") + s("") + u32(1000) + struct.pack(">Q", 0))
        return r if isinstance(r, dict) else {"ok": r.u32()}
    if name == "gc":
        r = call(9)
        return r if isinstance(r, dict) else {"ok": r.u64()}
    raise SystemExit("unknown op " + name)

out = []
try:
    sock.connect(sys.argv[1])
    for o in json.loads(sys.argv[2]):
        out.append(op(o))
except (OSError, EOFError, ValueError) as e:
    out.append({"eof": str(e)})
print(json.dumps(out))
'''


def _need_root():
    if os.geteuid() != 0:
        pytest.skip("not root: cannot run as other users")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv not installed")


def _as(uid, gid=None, groups=()):
    return ["setpriv", "--reuid=%d" % uid, "--regid=%d" % (gid or uid),
            "--groups=" + ",".join(map(str, groups)) if groups else
            "--clear-groups"]


@pytest.fixture
def sidecar():
    """tcached run as SIDECAR, as a CI service container would run it,
    serving JOB (--allow-uid), CIGROUP (--allow-gid), and PR and PRGROUP
    read-only (PR is in --allow-uid too: read-only must win)."""
    _need_root()
    base = short_tmp()
    os.chmod(base, 0o711)
    bindir = os.path.join(base, "bin")
    os.mkdir(bindir, 0o755)
    for src in (TCACHED, TCACHE):
        shutil.copy(src, bindir)
        os.chmod(os.path.join(bindir, os.path.basename(src)), 0o755)
    with open(os.path.join(bindir, "driver.py"), "w") as f:
        f.write(DRIVER)
    os.chmod(os.path.join(bindir, "driver.py"), 0o644)
    home = os.path.join(base, "sidecar")
    os.mkdir(home, 0o711)
    os.chown(home, SIDECAR, SIDECAR)
    sock = os.path.join(home, "run", "tcached.sock")
    db = os.path.join(home, "state", "tcache.db")
    log = os.path.join(base, "sidecar.log")
    with open(log, "ab") as logf:
        proc = subprocess.Popen(
            _as(SIDECAR) + [os.path.join(bindir, "tcached"), "--socket", sock,
                            "--db", db, "--allow-uid", str(JOB),
                            "--allow-gid", str(CIGROUP),
                            "--allow-uid", str(PR), "--readonly-uid",
                            str(PR), "--readonly-gid", str(PRGROUP)],
            stdout=logf, stderr=subprocess.STDOUT, cwd="/",
            env=client_env(sock), start_new_session=True)

    class Sidecar:
        pass
    sc = Sidecar()
    sc.proc, sc.sock, sc.db, sc.base = proc, sock, db, base

    def log_text():
        with open(log, "rb") as f:
            return f.read().decode("utf-8", "replace")
    sc.log_text = log_text

    def drive(uid, ops, gid=None, groups=()):
        r = subprocess.run(_as(uid, gid, groups) + ["/usr/bin/python3", "-I",
                                            os.path.join(bindir, "driver.py"),
                                            sock, json.dumps(ops)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, cwd="/", timeout=20)
        assert r.returncode == 0, r.stderr
        return json.loads(r.stdout)
    sc.drive = drive

    def cli(uid, *args):
        return subprocess.run(_as(uid) + [os.path.join(bindir, "tcache")] +
                              list(args), env=client_env(sock), cwd="/",
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=20)
    sc.cli = cli
    end = time.monotonic() + 10
    while proc.poll() is None and time.monotonic() < end:
        if cli(JOB, "status").returncode == 0:
            break
        time.sleep(0.05)
    try:
        assert proc.poll() is None, log_text()
        yield sc
    finally:
        if proc.poll() is None:
            proc.terminate()
            assert wait_exit(proc) == 0, log_text()
        assert not os.path.exists(sock)
        shutil.rmtree(base, ignore_errors=True)


def test_ci_sidecar_serves_the_job_users(sidecar):
    sc = sidecar
    k1, k2, k3 = key("job").hex(), key("member").hex(), key("pr").hex()
    # The sidecar made its socket for others and its files for itself.
    assert stat.S_IMODE(os.lstat(sc.sock).st_mode) == 0o666
    assert os.lstat(sc.sock).st_uid == SIDECAR
    assert stat.S_IMODE(os.stat(os.path.dirname(sc.sock)).st_mode) == 0o711
    assert os.stat(sc.db).st_uid == SIDECAR
    assert stat.S_IMODE(os.stat(os.path.dirname(sc.db)).st_mode) == 0o700
    log = sc.log_text()
    assert "also serving uid %d,%d" % (JOB, PR) in log, log
    assert "also serving gid %d" % CIGROUP in log
    assert "read-only for uid %d" % PR in log
    assert "read-only for gid %d" % PRGROUP in log

    # The job's user (--allow-uid) records and looks up, through tcache too.
    out = sc.drive(JOB, [["hello"], ["record", [[k1, "job", PASS]]],
                         ["lookup", [k1]]])
    assert out == [{"ok": 1}, {"ok": [0]}, {"ok": [[PASS, 0]]}], out
    r = sc.cli(JOB, "record", "--test", "cli", "--outcome", "pass",
               "--root", "/")
    assert r.returncode == 0, r.stderr
    # A user of the job's group (--allow-gid) too.
    out = sc.drive(MEMBER, [["hello"], ["record", [[k2, "member", FAIL]]]],
                   gid=CIGROUP)
    assert out == [{"ok": 1}, {"ok": [0]}], out
    # And one who is in it as a supplementary group (SO_PEERGROUPS).
    out = sc.drive(SUPP, [["hello"], ["record", [[k2, "member", FAIL]]]],
                   groups=[ELSEGROUP, CIGROUP])
    assert out == [{"ok": 1}, {"ok": [0]}], out

    # The pull request's user looks up what the jobs stored, and may not
    # write, though --allow-uid names it too; its connection stays open.
    out = sc.drive(PR, [["hello"], ["status"], ["lookup", [k1, k2, k3]],
                        ["list"], ["stats", 0], ["invalidate", INV_ALL, 1],
                        ["record", [[k3, "pr", PASS], [k1, "job", FAIL]]],
                        ["invalidate", INV_ALL, 0], ["gc"], ["stats", 1],
                        ["lookup", [k1, k3]]])
    assert out[:4] == [{"ok": 1}, {"ok": 3},
                       {"ok": [[PASS, 0], [FAIL, 0], None]}, {"ok": 3}], out
    assert out[5] == {"ok": 3}, out
    for o in out[6:10]:
        assert o.get("err") == E_DENIED and "read-only" in o["msg"], out
    assert out[10] == {"ok": [[PASS, 0], None]}, out
    r = sc.cli(PR, "record", "--test", "pr", "--outcome", "pass",
               "--root", "/")
    assert r.returncode != 0 and "read-only" in r.stderr, r.stderr
    assert wait_log(sc, "denied RECORD from read-only uid %d" % PR)
    # A supplementary read-only group wins over an allowed one.
    out = sc.drive(SUPPRO, [["hello"], ["lookup", [k1]],
                            ["record", [[k3, "pr", PASS]]], ["gc"],
                            ["lookup", [k3]]],
                   groups=[CIGROUP, PRGROUP])
    assert out[:2] == [{"ok": 1}, {"ok": [[PASS, 0]]}], out
    assert out[2].get("err") == E_DENIED and out[3].get("err") == E_DENIED
    assert out[4] == {"ok": [None]}, out
    assert wait_log(sc, "denied RECORD from read-only uid %d" % SUPPRO)

    # Anyone else is refused before its first request, and logged.
    out = sc.drive(OTHER, [["hello"], ["record", [[k3, "x", PASS]]]])
    assert out[0].get("err") == E_DENIED or "eof" in out[0], out
    assert all("ok" not in o for o in out), out
    assert wait_log(sc, "refused connection from uid %d gid %d"
                    % (OTHER, OTHER))
    # A member of some other group too.
    out = sc.drive(OTHER, [["hello"]], gid=ELSEGROUP, groups=[ELSEGROUP])
    assert "ok" not in out[0], out

    # Nothing the refused and read-only peers sent was stored.
    out = sc.drive(JOB, [["hello"], ["status"], ["lookup", [k1, k3]]])
    assert out[1:] == [{"ok": 3}, {"ok": [[PASS, 0], None]}], out
    # Root, whom the sidecar does not run as, is still served.
    r = sc.cli(0, "status")
    assert r.returncode == 0, r.stderr


def test_refusals_do_not_flood_the_log(sidecar):
    """Another user connecting in a loop: at most 10 lines a second, and
    every refusal accounted for by a line or a count."""
    sc = sidecar
    n = 300
    t0 = time.monotonic()
    r = subprocess.run(_as(OTHER) + ["/usr/bin/python3", "-I", "-c", """
import socket, sys
for _ in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    s.close()
""", sc.sock, str(n)], stderr=subprocess.PIPE, universal_newlines=True,
        cwd="/", timeout=60)
    assert r.returncode == 0, r.stderr
    seconds = time.monotonic() - t0
    time.sleep(1.1)
    # One more, in a later second: it reports the count held back.
    out = sc.drive(OTHER, [["hello"]])
    assert "ok" not in out[0], out
    assert wait_log(sc, "more connections refused, not logged")
    lines = [l for l in sc.log_text().splitlines()
             if "refused connection from uid %d" % OTHER in l]
    quiet = sum(int(l.split(": warning: ")[1].split()[0])
                for l in sc.log_text().splitlines()
                if "more connections refused, not logged" in l)
    assert len(lines) + quiet == n + 1, (len(lines), quiet)
    assert len(lines) <= 10 * (int(seconds) + 2) + 1, len(lines)
    # And the sidecar still serves its job.
    assert sc.cli(JOB, "status").returncode == 0
