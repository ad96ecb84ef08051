"""Integration tests: a real tcached on a short temporary socket and database,
driven through the tcache command and through a raw protocol client.

$TCACHE_BUILD names the build directory (default: build/ of this checkout)
holding tcached and tcache.  Every client runs with TCACHE_AUTOSTART=0, so a
test that means to talk to no daemon really talks to none, and with
XDG_CACHE_HOME in a temporary directory, so the digest memo of the user
running the tests is neither read nor written.
"""

import hashlib
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time

import pytest

BUILD = os.path.abspath(os.environ.get(
    "TCACHE_BUILD", os.path.join(os.path.dirname(__file__), "..", "..", "build")))
TCACHED = os.path.join(BUILD, "tcached")
TCACHE = os.path.join(BUILD, "tcache")

# Wire constants (proto/PROTOCOL.md).
HELLO, STATUS, LOOKUP, RECORD, INVALIDATE, STATS, LIST, EXPLAIN, GC = range(1, 10)
REPLY = 0x80
ERROR = 0xFF
E_MALFORMED, E_UNKNOWN, E_VERSION, E_TOO_LARGE, E_LIMIT, E_HANDSHAKE, \
    E_STORE, E_DENIED, E_BUSY = range(1, 10)
PASS, FAIL, SKIP, ERR = 1, 2, 3, 4
INV_PATH, INV_TEST, INV_KEY, INV_ALL = 1, 2, 3, 4
MAX_FRAME = 4 * 1024 * 1024
MAX_BATCH = 4096

@pytest.fixture(autouse=True, scope="session")
def _private_cache_home(tmp_path_factory):
    """The user's own memo and tcached.conf stay out of the tests."""
    names = ("XDG_CACHE_HOME", "XDG_CONFIG_HOME")
    old = {n: os.environ.get(n) for n in names}
    for n in names:
        os.environ[n] = str(tmp_path_factory.mktemp(n.lower()))
    yield
    for n in names:
        if old[n] is None:
            os.environ.pop(n, None)
        else:
            os.environ[n] = old[n]


# Daemons started during the current test, for the failure report.
_started = []


# --------------------------------------------------------------- keys

def blake(data, person=b""):
    return hashlib.blake2b(data, digest_size=32, person=person).digest()


def u32(x):
    return struct.pack(">I", x)


def s(b):
    if isinstance(b, str):
        b = b.encode()
    return u32(len(b)) + b


def source_digest(files):
    """files: {relpath: digest}."""
    body = u32(len(files))
    for path in sorted(files, key=lambda p: p.encode()):
        body += s(path) + files[path]
    return blake(body, b"tcache-src-v1")


def env_digest(env):
    """env: {name: value or None (unset)}."""
    body = u32(len(env))
    for name in sorted(env, key=lambda n: n.encode()):
        v = env[name]
        body += s(name) + (b"\x00" if v is None else b"\x01" + s(v))
    return blake(body, b"tcache-env-v1")


def derive_key(project, test, src, envd):
    return blake(s(project) + s(test) + src + envd, b"tcache-key-v1")


def platform_value():
    u = os.uname()
    return "%s/%s" % (u.sysname, u.machine)


def expected_cli_key(root, deps, env_names=(), project="", test="t", environ=None):
    """The key `tcache key` must print (PROTOCOL.md, "Keys")."""
    environ = os.environ if environ is None else environ
    files = {}
    for dep in deps:
        full = os.path.join(root, dep)
        if os.path.isdir(full):
            for d, dirs, names in os.walk(full):
                dirs[:] = [x for x in dirs if x != ".git"]
                for n in names:
                    p = os.path.join(d, n)
                    with open(p, "rb") as f:
                        files[os.path.relpath(p, root)] = blake(f.read())
        elif os.path.exists(full):
            with open(full, "rb") as f:
                files[os.path.relpath(full, root)] = blake(f.read())
        else:
            files[os.path.relpath(full, root)] = bytes(32)
    env = {n: environ.get(n) for n in env_names}
    env["@platform"] = platform_value()
    return derive_key(project, test, source_digest(files), env_digest(env)).hex()


# ------------------------------------------------------- raw protocol

class Reader:
    def __init__(self, data):
        self.d = data
        self.i = 0

    def take(self, n):
        if self.i + n > len(self.d):
            raise ValueError("reply truncated")
        b = self.d[self.i:self.i + n]
        self.i += n
        return b

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack(">H", self.take(2))[0]

    def u32(self):
        return struct.unpack(">I", self.take(4))[0]

    def u64(self):
        return struct.unpack(">Q", self.take(8))[0]

    def str(self):
        return self.take(self.u32()).decode("utf-8", "replace")

    def digest(self):
        return self.take(32)

    def done(self):
        if self.i != len(self.d):
            raise ValueError("reply has %d trailing bytes" % (len(self.d) - self.i))

    def input(self):
        return {"kind": self.u8(), "path": self.str(), "digest": self.digest()}

    def inputs(self):
        return [self.input() for _ in range(self.u32())]

    def entry(self):
        e = {}
        e["id"] = self.u64()
        e["key"] = self.digest()
        e["project"] = self.str()
        e["test"] = self.str()
        e["root"] = self.str()
        e["outcome"] = self.u8()
        e["flaky"] = self.u8()
        for k in ("duration_us", "created_ms", "expires_ms", "hits", "last_used_ms"):
            e[k] = self.u64()
        e["message"] = self.str()
        return e


def frame(body):
    return u32(len(body)) + body


def enc_input(kind, path, digest):
    return bytes([kind]) + s(path) + digest


def enc_record(key, test, project="", root="/tmp/tc-root", outcome=PASS,
               duration_us=1000, ttl_ms=0, message="", inputs=()):
    b = key + s(project) + s(test) + s(root) + bytes([outcome])
    b += struct.pack(">QQ", duration_us, ttl_ms) + s(message)
    b += u32(len(inputs)) + b"".join(enc_input(*i) for i in inputs)
    return b


class ProtoError(Exception):
    def __init__(self, code, message):
        super().__init__("ERROR %d: %s" % (code, message))
        self.code = code
        self.message = message


class Raw:
    """A raw protocol client: frames per PROTOCOL.md, no library."""

    def __init__(self, path, timeout=5.0, hello=True):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        # A full listen queue says EAGAIN at once; retry as libtcache does.
        end = time.monotonic() + timeout
        while True:
            try:
                self.sock.connect(path)
                break
            except BlockingIOError:
                if time.monotonic() > end:
                    self.sock.close()
                    raise
                time.sleep(0.005)
        self.buf = b""
        if hello:
            self.hello()

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        self.sock.sendall(data)

    def send_msg(self, mtype, fields=b""):
        self.send(frame(bytes([mtype]) + fields))

    def _fill(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("connection closed by tcached")
            self.buf += chunk

    def recv_frame(self):
        """(type, Reader over the fields)."""
        self._fill(4)
        n = struct.unpack(">I", self.buf[:4])[0]
        assert 1 <= n <= MAX_FRAME, "bad reply length %d" % n
        self._fill(4 + n)
        body, self.buf = self.buf[4:4 + n], self.buf[4 + n:]
        return body[0], Reader(body[1:])

    def expect_error(self):
        """The next frame must be an ERROR: (code, message)."""
        t, r = self.recv_frame()
        assert t == ERROR, "expected an ERROR frame, got type 0x%02x" % t
        code, msg = r.u16(), r.str()
        r.done()
        return code, msg

    def at_eof(self, timeout=3.0):
        """True once the daemon has closed the connection."""
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except socket.timeout:
            return False
        except ConnectionResetError:
            return True

    def call(self, mtype, fields=b""):
        self.send_msg(mtype, fields)
        t, r = self.recv_frame()
        if t == ERROR:
            code, msg = r.u16(), r.str()
            raise ProtoError(code, msg)
        assert t == mtype | REPLY, "reply type 0x%02x to 0x%02x" % (t, mtype)
        return r

    def hello(self, version=1, name="pytest"):
        r = self.call(HELLO, u32(version) + s(name))
        v, name = r.u32(), r.str()
        r.done()
        assert v == 1
        return name

    def status(self):
        r = self.call(STATUS)
        st = {"version": r.str(), "pid": r.u32(), "uptime_ms": r.u64(),
              "socket": r.str(), "db": r.str(), "entries": r.u64(),
              "ttl_ms": r.u64(), "max_entries": r.u64()}
        r.done()
        return st

    def lookup(self, keys):
        r = self.call(LOOKUP, u32(len(keys)) + b"".join(keys))
        out = []
        n = r.u32()
        assert n == len(keys)
        for _ in range(n):
            if not r.u8():
                out.append(None)
                continue
            res = {"outcome": r.u8(), "flaky": r.u8(), "duration_us": r.u64(),
                   "created_ms": r.u64(), "expires_ms": r.u64()}
            res["inputs"] = r.inputs()
            out.append(res)
        r.done()
        return out

    def record(self, records):
        """records: encoded with enc_record.  Returns the status list."""
        r = self.call(RECORD, u32(len(records)) + b"".join(records))
        n = r.u32()
        st = [r.u8() for _ in range(n)]
        r.done()
        assert n == len(records)
        return st

    def invalidate(self, mode, arg="", key=bytes(32), dry_run=False):
        r = self.call(INVALIDATE, bytes([mode, 1 if dry_run else 0]) + s(arg) + key)
        n = r.u64()
        r.done()
        return n

    def stats(self, reset=False):
        r = self.call(STATS, bytes([1 if reset else 0]))
        out = {}
        for _ in range(r.u32()):
            name = r.str()
            out[name] = r.u64()
        r.done()
        return out

    def list(self, glob="", path="", limit=1000, after=0):
        r = self.call(LIST, s(glob) + s(path) + u32(limit) + struct.pack(">Q", after))
        entries = [r.entry() for _ in range(r.u32())]
        nxt = r.u64()
        r.done()
        return entries, nxt

    def explain(self, project, test):
        r = self.call(EXPLAIN, s(project) + s(test))
        if not r.u8():
            r.done()
            return None, []
        e = r.entry()
        ins = r.inputs()
        r.done()
        return e, ins

    def gc(self):
        r = self.call(GC)
        n = r.u64()
        r.done()
        return n


# ------------------------------------------------------------- daemon

class Result:
    def __init__(self, cp):
        self.returncode = cp.returncode
        self.rc = cp.returncode
        self.stdout = cp.stdout
        self.stderr = cp.stderr
        self.out = cp.stdout

    def __repr__(self):
        return "<rc=%d stdout=%r stderr=%r>" % (self.rc, self.stdout[-2000:],
                                               self.stderr[-2000:])


def client_env(sock, db=None, extra=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TCACHE_") and not k.startswith("LISTEN_")}
    env["TCACHE_SOCKET"] = sock
    if db is not None:
        env["TCACHE_DB"] = db
    env["TCACHE_AUTOSTART"] = "0"
    if extra:
        for k, v in extra.items():
            if v is None:
                env.pop(k, None)
            else:
                env[k] = v
    return env


def run_cli(args, sock, db=None, cwd=None, env=None, timeout=20, input=None,
            prefix=()):
    """Runs tcache ARGS against the daemon on sock; never hangs."""
    cp = subprocess.run(list(prefix) + [TCACHE] + [str(a) for a in args],
                        cwd=cwd, env=client_env(sock, db, env),
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        timeout=timeout, input=input,
                        universal_newlines=True)
    return Result(cp)


class Daemon:
    def __init__(self, base, name="d", socket_path=None, db=None):
        self.base = base
        self.sock = socket_path or os.path.join(base, "run", "tcached.sock")
        self.db = db or os.path.join(base, "state", "tcache.db")
        self.log = os.path.join(base, "%s.log" % name)
        self.proc = None
        self.args = []
        self.expect_clean_exit = True
        assert len(self.sock) < 100, "socket path too long: " + self.sock

    # -- lifecycle --
    def spawn(self, *args, env=None):
        """Starts tcached without waiting for it."""
        self.args = [str(a) for a in args]
        logf = open(self.log, "ab")
        e = client_env(self.sock, self.db, env)
        self.proc = subprocess.Popen(
            [TCACHED, "--socket", self.sock, "--db", self.db] + self.args,
            stdout=logf, stderr=subprocess.STDOUT, env=e,
            start_new_session=True)
        logf.close()
        _started.append(self)
        return self.proc

    def start(self, *args, env=None, timeout=10):
        self.spawn(*args, env=env)
        self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout=10):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError("tcached exited with %d at start:\n%s"
                                     % (self.proc.returncode, self.log_text()))
            if os.path.exists(self.sock):
                r = self.cli("status", timeout=5)
                if r.rc == 0:
                    return
            time.sleep(0.02)
        raise AssertionError("tcached did not answer within %ss:\n%s"
                             % (timeout, self.log_text()))

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10):
        """Sends sig and returns the exit status."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("tcached did not exit within %ss of signal %d"
                                 % (timeout, sig))

    def kill9(self):
        rc = self.stop(signal.SIGKILL)
        assert rc == -signal.SIGKILL
        return rc

    def restart(self, *args, timeout=10):
        return self.start(*(args or self.args), timeout=timeout)

    def log_text(self):
        try:
            with open(self.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    # -- clients --
    def cli(self, *args, **kw):
        return run_cli(args, self.sock, self.db, **kw)

    def raw(self, **kw):
        return Raw(self.sock, **kw)

    def pid(self):
        return self.proc.pid


def short_tmp():
    return tempfile.mkdtemp(prefix="tc-", dir="/tmp")


@pytest.fixture
def tmpbase():
    d = short_tmp()
    yield d
    shutil.rmtree(d, ignore_errors=True)


def _finish(d):
    """Stops a daemon still running: SIGTERM must exit 0 and remove the socket."""
    if d.proc is None or d.proc.poll() is not None:
        return
    rc = d.stop(signal.SIGTERM)
    assert rc == 0, "tcached exited %d on SIGTERM" % rc
    assert not os.path.exists(d.sock), "socket left behind after SIGTERM"


@pytest.fixture
def make_daemon(tmpbase):
    """Factory: make_daemon(*args, name=, start=True) -> Daemon in tmpbase."""
    made = []

    def make(*args, name=None, start=True, socket_path=None, db=None,
             env=None, base=None):
        name = name or "d%d" % len(made)
        b = base or tmpbase
        d = Daemon(b, name, socket_path=socket_path or
                   os.path.join(b, "run" if not made else "run%d" % len(made),
                                "tcached.sock"),
                   db=db)
        made.append(d)
        if start:
            d.start(*args, env=env)
        return d

    yield make
    errors = []
    for d in made:
        try:
            _finish(d)
        except AssertionError as e:
            errors.append(str(e))
        finally:
            if d.proc is not None and d.proc.poll() is None:
                d.proc.kill()
                d.proc.wait()
    assert not errors, "; ".join(errors)


@pytest.fixture
def daemon(make_daemon):
    """A fresh tcached on a short socket and database."""
    return make_daemon()


class Project:
    """A small checkout: src/a.c, src/sub/b.c, srcx/x.c."""

    def __init__(self, base, name="proj"):
        self.root = os.path.join(base, name)
        for d in ("src/sub", "srcx", "tests"):
            os.makedirs(os.path.join(self.root, d), exist_ok=True)
        self.write("src/a.c", "int a = 1;\n")
        self.write("src/sub/b.c", "int b = 2;\n")
        self.write("srcx/x.c", "int x;\n")

    def path(self, rel):
        return os.path.join(self.root, rel)

    def write(self, rel, text):
        with open(self.path(rel), "w") as f:
            f.write(text)

    def read(self, rel):
        with open(self.path(rel)) as f:
            return f.read()


@pytest.fixture
def project(tmpbase, monkeypatch):
    """A project, and the current directory at its root: --dep paths are
    taken relative to the current directory (tcache.h,
    tc_inputs_collect), and named relative to --root."""
    p = Project(tmpbase)
    monkeypatch.chdir(p.root)
    return p


@pytest.fixture(autouse=True)
def _track_daemons():
    # Cleared at setup only: the teardown report still needs the list.
    _started.clear()
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if rep.failed and _started:
        for d in _started:
            rep.sections.append(("tcached log %s (%s)" % (d.log, rep.when),
                                 d.log_text()[-20000:] or "(empty)"))
