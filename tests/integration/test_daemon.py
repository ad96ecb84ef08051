"""The daemon as a Unix service: one instance per socket, socket and
directory modes, refusal of unsafe directories and of other users, signals,
the log, a damaged or too new database, eviction, client limits."""

import glob
import hashlib
import json
import os
import pwd
import shutil
import signal
import sqlite3
import stat
import subprocess
import sys
import time

import pytest

from conftest import Daemon, TCACHED, TCACHE, Raw, E_BUSY, enc_record


def wait_exit(proc, timeout=5):
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("tcached still running after %ss" % timeout)


def test_help_and_bad_options(tmpbase):
    r = subprocess.run([TCACHED, "--help"], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=5)
    assert r.returncode == 0 and b"--socket" in r.stdout
    r = subprocess.run([TCACHED, "--version"], stdout=subprocess.PIPE,
                       timeout=5)
    assert r.returncode == 0 and r.stdout.startswith(b"tcached ")
    for bad in (["--bogus"], ["--ttl", "soon"], ["--ttl", "0"],
                ["--max-clients", "0"], ["--allow-uid", "no-such-user-xyz"],
                ["--sync", "sometimes"], ["extra"]):
        r = subprocess.run([TCACHED, "--socket", tmpbase + "/s/x.sock",
                            "--db", tmpbase + "/db"] + bad,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=5)
        assert r.returncode == 2, bad
        assert r.stderr
    assert not os.path.exists(tmpbase + "/s/x.sock")


def test_socket_and_directory_modes(daemon):
    st = os.lstat(daemon.sock)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(daemon.sock)).st_mode) == 0o700
    assert os.stat(daemon.sock).st_uid == os.geteuid()


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777])
def test_writable_socket_directory_refused(make_daemon, tmpbase, mode):
    d = make_daemon(start=False)
    os.makedirs(os.path.dirname(d.sock))
    os.chmod(os.path.dirname(d.sock), mode)
    d.spawn()
    assert wait_exit(d.proc) != 0
    assert "writable" in d.log_text()
    assert not os.path.exists(d.sock)


def test_foreign_socket_directory_refused(make_daemon):
    if os.geteuid() != 0:
        pytest.skip("needs root to chown a directory to another user")
    d = make_daemon(start=False)
    os.makedirs(os.path.dirname(d.sock), mode=0o700)
    os.chown(os.path.dirname(d.sock), 65534, 65534)
    d.spawn()
    assert wait_exit(d.proc) != 0
    assert "belongs to" in d.log_text() or "uid" in d.log_text()
    assert not os.path.exists(d.sock)


def test_foreign_symlink_socket_directory_refused(make_daemon, tmpbase):
    """Another user's link at the socket directory (a /tmp/tcache-UID made
    before us) could be turned to their own directory after our checks."""
    if os.geteuid() != 0:
        pytest.skip("needs root to make a link of another user")
    d = make_daemon(start=False)
    target = os.path.join(tmpbase, "real")
    os.mkdir(target, 0o700)
    os.makedirs(os.path.dirname(os.path.dirname(d.sock)), exist_ok=True)
    os.symlink(target, os.path.dirname(d.sock))
    os.lchown(os.path.dirname(d.sock), 65534, 65534)
    d.spawn()
    assert wait_exit(d.proc) != 0
    assert "symbolic link" in d.log_text()
    assert not os.path.exists(os.path.join(target, os.path.basename(d.sock)))


def test_non_socket_at_the_path_is_not_replaced(make_daemon):
    d = make_daemon(start=False)
    os.makedirs(os.path.dirname(d.sock), mode=0o700)
    with open(d.sock, "w") as f:
        f.write("precious")
    d.spawn()
    assert wait_exit(d.proc) != 0
    with open(d.sock) as f:
        assert f.read() == "precious"


def test_single_instance(daemon, tmpbase):
    ino = os.stat(daemon.sock).st_ino
    t0 = time.monotonic()
    r = subprocess.run([TCACHED, "--socket", daemon.sock, "--db",
                        os.path.join(tmpbase, "other.db")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=10)
    assert r.returncode != 0
    assert time.monotonic() - t0 < 3
    assert str(daemon.pid()).encode() in r.stderr, r.stderr
    # The first one is untouched and still answers.
    assert os.stat(daemon.sock).st_ino == ino
    assert daemon.cli("status").rc == 0
    with daemon.raw() as c:
        assert c.status()["pid"] == daemon.pid()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly(daemon, sig):
    idle = daemon.raw()          # a connected client must not hold it up
    t0 = time.monotonic()
    assert daemon.stop(sig) == 0
    assert time.monotonic() - t0 < 3
    assert not os.path.exists(daemon.sock)
    assert idle.at_eof(1)
    idle.close()
    assert "shutting down" in daemon.log_text()


def test_sighup_reopens_log(make_daemon, tmpbase):
    logp = os.path.join(tmpbase, "tcached.log")
    d = make_daemon("--log", logp)
    with open(logp) as f:
        assert "listening" in f.read()
    os.rename(logp, logp + ".1")
    d.proc.send_signal(signal.SIGHUP)
    end = time.monotonic() + 5
    while time.monotonic() < end and not os.path.exists(logp):
        time.sleep(0.02)
    assert os.path.exists(logp), "SIGHUP did not reopen the log"
    assert d.cli("status").rc == 0      # still serving
    assert d.stop() == 0
    with open(logp) as f:
        new = f.read()
    with open(logp + ".1") as f:
        old = f.read()
    assert "shutting down" in new and "shutting down" not in old
    assert "listening" in old and "listening" not in new


def test_damaged_database_moved_aside(make_daemon, tmpbase):
    db = os.path.join(tmpbase, "state", "tcache.db")
    os.makedirs(os.path.dirname(db))
    with open(db, "wb") as f:
        f.write(os.urandom(64 * 1024))
    d = make_daemon(db=db)
    damaged = glob.glob(db + ".damaged-*")
    assert len(damaged) == 1, os.listdir(os.path.dirname(db))
    assert os.path.getsize(damaged[0]) == 64 * 1024
    assert "damaged" in d.log_text().lower()
    k = os.urandom(32)
    with d.raw() as c:
        assert c.lookup([k]) == [None]
        assert c.record([enc_record(k, "after-damage")]) == [0]
        assert c.lookup([k])[0] is not None
    assert d.cli("status").rc == 0


def test_database_damaged_inside_is_recovered(make_daemon, tmpbase, project):
    """Valid header, garbage pages: found when read, moved aside, and the
    daemon goes on serving."""
    d = make_daemon()
    keys = [os.urandom(32) for _ in range(2000)]
    with d.raw() as c:
        c.record([enc_record(k, "x%d" % i, message="m" * 200)
                  for i, k in enumerate(keys)])
    assert d.stop() == 0
    size = os.path.getsize(d.db)
    assert size > 64 * 1024
    with open(d.db, "r+b") as f:
        f.seek(4096)
        f.write(os.urandom(size - 4096))
    d.start()
    ok = False
    for _ in range(5):
        try:
            with d.raw() as c:
                c.lookup(keys[:100])
                c.record([enc_record(os.urandom(32), "fresh")])
                ok = True
                break
        except Exception:          # noqa: BLE001 - a STORE error is allowed once
            time.sleep(0.2)
    assert ok, "the daemon never recovered from the damaged file"
    assert d.running()
    assert glob.glob(d.db + ".damaged-*"), "damaged file not moved aside"
    assert d.cli("status").rc == 0


def test_newer_database_refused_untouched(make_daemon, tmpbase):
    db = os.path.join(tmpbase, "state", "tcache.db")
    os.makedirs(os.path.dirname(db))
    con = sqlite3.connect(db)
    con.execute("CREATE TABLE future (x)")
    con.execute("PRAGMA user_version = 99")
    con.commit()
    con.close()
    with open(db, "rb") as f:
        before = hashlib.sha256(f.read()).hexdigest()
    d = make_daemon(db=db, start=False)
    d.spawn()
    assert wait_exit(d.proc) != 0
    assert "version" in d.log_text()
    with open(db, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == before
    assert not glob.glob(db + ".damaged-*")
    assert not os.path.exists(d.sock)
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 99
    con.close()


def test_max_entries_evicts(make_daemon):
    d = make_daemon("--max-entries", "10")
    with d.raw() as c:
        assert c.status()["max_entries"] == 10
        c.record([enc_record(os.urandom(32), "e%d" % i) for i in range(30)])
        end = time.monotonic() + 5
        while time.monotonic() < end and c.status()["entries"] > 10:
            time.sleep(0.1)
        assert c.status()["entries"] <= 10
        assert c.stats()["evicted"] >= 20


def test_max_clients(make_daemon):
    d = make_daemon("--max-clients", "3")
    held = [d.raw() for _ in range(3)]
    extra = Raw(d.sock, hello=False)
    try:
        code, _ = extra.expect_error()
        assert code == E_BUSY
        assert extra.at_eof()
    finally:
        extra.close()
    held.pop().close()
    time.sleep(0.1)
    with d.raw() as c:
        assert c.status()["pid"] == d.pid()
    for c in held:
        c.status()
        c.close()


# --- other users ---

def _setpriv():
    if os.geteuid() != 0:
        pytest.skip("not root: cannot run a client as another user")
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv not installed")
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody")
    return ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


@pytest.fixture
def shared_base():
    """A base directory others may traverse, and a tcache they may run."""
    from conftest import short_tmp
    base = short_tmp()
    os.chmod(base, 0o711)
    bindir = os.path.join(base, "bin")
    os.mkdir(bindir, 0o755)
    shutil.copy(TCACHE, os.path.join(bindir, "tcache"))
    os.chmod(os.path.join(bindir, "tcache"), 0o755)
    yield base
    shutil.rmtree(base, ignore_errors=True)


def _as_nobody(d, base, prefix, *args):
    from conftest import client_env
    return subprocess.run(prefix + [os.path.join(base, "bin", "tcache")] +
                          list(args), env=client_env(d.sock), cwd="/",
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=10)


def test_other_uid_refused(make_daemon, shared_base):
    prefix = _setpriv()
    d = make_daemon("--allow-uid", "12345", base=shared_base)
    assert stat.S_IMODE(os.stat(d.sock).st_mode) == 0o666
    assert stat.S_IMODE(os.stat(os.path.dirname(d.sock)).st_mode) == 0o711
    r = _as_nobody(d, shared_base, prefix, "status")
    assert r.returncode in (3, 4), (r.returncode, r.stdout, r.stderr)
    assert r.stderr.strip()
    assert "tcached" not in r.stdout
    end = time.monotonic() + 2
    while "uid 65534" not in d.log_text() and time.monotonic() < end:
        time.sleep(0.05)
    assert "refused" in d.log_text() and "uid 65534" in d.log_text()
    # A record from the refused user is not stored.
    r = _as_nobody(d, shared_base, prefix, "record", "--test", "evil",
                   "--outcome", "pass", "--root", "/")
    assert r.returncode in (3, 4)
    with d.raw() as c:
        assert c.status()["entries"] == 0
    # We are still served.
    assert d.cli("status").rc == 0


def test_refusal_is_explained(make_daemon, shared_base):
    """The refused user is told why: tcached sends ERROR DENIED before it
    closes, and that reply is in the client's socket even when its own
    HELLO could not be sent (EPIPE).  "daemon unavailable: Broken pipe"
    would send them looking for a daemon that is up."""
    prefix = _setpriv()
    d = make_daemon("--allow-uid", "12345", base=shared_base)
    # Whether the client's send or the daemon's close comes first is a
    # race, lost a few times in a hundred: try often enough to lose it.
    for _ in range(60):
        r = _as_nobody(d, shared_base, prefix, "status")
        assert r.returncode in (3, 4)
        low = r.stderr.lower()
        assert "denied" in low or "not allowed" in low or \
            "refused" in low, r.stderr


@pytest.mark.parametrize("allow", [["--allow-uid", "nobody"],
                                   ["--allow-uid", "65534"],
                                   ["--allow-gid", "nogroup"]])
def test_allowed_uid_served(make_daemon, shared_base, allow):
    prefix = _setpriv()
    d = make_daemon(*allow, base=shared_base)
    r = _as_nobody(d, shared_base, prefix, "status", "--json")
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert json.loads(r.stdout)["pid"] == d.pid()
    r = _as_nobody(d, shared_base, prefix, "record", "--test", "ci",
                   "--outcome", "pass", "--root", "/")
    assert r.returncode == 0, r.stderr


def test_other_uid_refused_without_allow_list(daemon):
    """Without an allow list the directory alone keeps others out; the
    credentials check must too, e.g. when the socket dir is opened up."""
    prefix = _setpriv()
    os.chmod(daemon.base, 0o711)
    os.chmod(os.path.dirname(daemon.sock), 0o711)
    os.chmod(daemon.sock, 0o666)
    r = subprocess.run(prefix + ["/usr/bin/python3", "-c", """
import socket, struct, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
try:
    s.sendall(struct.pack('>IBI', 9, 1, 1) + struct.pack('>I', 0))
    data = s.recv(4096)
except OSError:
    data = b''
print(data.hex())
""", daemon.sock], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        universal_newlines=True, timeout=10)
    assert r.returncode == 0, r.stderr
    reply = bytes.fromhex(r.stdout.strip())
    # Either nothing, or an ERROR frame with code DENIED (8): never HELLO.
    if reply:
        assert reply[4] == 0xFF and reply[5:7] == b"\x00\x08", reply
    assert "uid 65534" in daemon.log_text()


# A user with no account: its default socket is /tmp/tcache-UID.
TMP_UID = 54321


def _tmp_default_daemon(prefix, base, tag, allow=()):
    """tcached run through prefix on /tmp/tcache-TMP_UID/tcached.sock, the
    fallback default socket of TMP_UID, with its database under base."""
    sock = "/tmp/tcache-%d/tcached.sock" % TMP_UID
    shutil.rmtree(os.path.dirname(sock), ignore_errors=True)
    state = os.path.join(base, "state-" + tag)
    os.mkdir(state, 0o700)
    uid = pwd.getpwnam("nobody").pw_uid if tag == "nobody" else TMP_UID
    os.chown(state, uid, -1)
    shutil.copy(TCACHED, os.path.join(base, "bin", "tcached"))
    log = open(os.path.join(base, tag + ".log"), "ab")
    proc = subprocess.Popen(prefix + [os.path.join(base, "bin", "tcached"),
                                      "--socket", sock, "--db",
                                      os.path.join(state, "tcache.db")] +
                            list(allow), stdout=log, stderr=subprocess.STDOUT,
                            cwd="/", start_new_session=True)
    log.close()
    end = time.monotonic() + 10
    while time.monotonic() < end and proc.poll() is None:
        r = subprocess.run([TCACHE, "status", "--socket", sock],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env={"TCACHE_AUTOSTART": "0"}, timeout=10)
        if r.returncode == 0:
            return proc, sock
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("tcached on %s did not answer" % sock)


def _as_tmp_uid(base, *args):
    """tcache as TMP_UID with the /tmp fallback as its default socket."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TCACHE_") and k != "XDG_RUNTIME_DIR"}
    env["TCACHE_AUTOSTART"] = "0"
    return subprocess.run(["setpriv", "--reuid=%d" % TMP_UID,
                           "--regid=%d" % TMP_UID, "--clear-groups",
                           os.path.join(base, "bin", "tcache")] + list(args),
                          env=env, cwd="/", stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, universal_newlines=True,
                          timeout=10)


def _stop(proc, sock):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        wait_exit(proc)
    shutil.rmtree(os.path.dirname(sock), ignore_errors=True)


def test_foreign_daemon_on_tmp_default_refused(shared_base):
    """/tmp/tcache-UID is anyone's to make first: another user's tcached
    there could answer every lookup with a pass.  On that default the
    client checks who serves it; on a path it was given, it does not."""
    prefix = _setpriv()
    proc, sock = _tmp_default_daemon(prefix, shared_base, "nobody",
                                     ["--allow-uid", str(TMP_UID)])
    try:
        r = _as_tmp_uid(shared_base, "status")
        assert r.returncode != 0, (r.stdout, r.stderr)
        assert "tcached there runs as uid %d, not as us: refusing it" % \
            pwd.getpwnam("nobody").pw_uid in r.stderr, r.stderr
        assert sock in r.stderr, r.stderr
        r = _as_tmp_uid(shared_base, "status", "--socket", sock)
        assert r.returncode == 0, r.stderr
    finally:
        _stop(proc, sock)
    # Our own tcached on that default serves us.
    proc, sock = _tmp_default_daemon(
        ["setpriv", "--reuid=%d" % TMP_UID, "--regid=%d" % TMP_UID,
         "--clear-groups"], shared_base, "own")
    try:
        r = _as_tmp_uid(shared_base, "status")
        assert r.returncode == 0, r.stderr
    finally:
        _stop(proc, sock)


def _soft_nofile(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                return int(line.split()[3])
    raise AssertionError("no open-files line")


def test_descriptor_limit_raised_for_max_clients(make_daemon, tmp_path):
    """Started under a soft limit of 256 descriptors, tcached raises it to
    what --max-clients needs (the hard limit allowing), or says how many
    clients will fit."""
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 1100:
        pytest.skip("hard descriptor limit %d" % hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        d = make_daemon("--max-clients", "1000", name="fds")
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert _soft_nofile(d.proc.pid) >= 1000

    def low_limits():
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 300))
    sock = str(tmp_path / "s")
    os.chmod(str(tmp_path), 0o700)
    p = subprocess.Popen([TCACHED, "--socket", sock, "--db",
                          str(tmp_path / "db"), "--max-clients", "1000"],
                         stderr=subprocess.PIPE, universal_newlines=True,
                         preexec_fn=low_limits)
    try:
        line = p.stderr.readline()
        assert "about 268 clients fit, not --max-clients 1000" in line, line
        assert _soft_nofile(p.pid) == 300
    finally:
        p.terminate()
        p.communicate(timeout=10)
