"""contrib/systemd, contrib/launchd and contrib/ci, checked and run.

- The systemd user units pass `systemd-analyze verify` with no complaint,
  and broken copies of them do not.  Their ExecStartPre=/ExecStart= run
  under systemd-socket-activate on the unit's ListenStream= (a real
  LISTEN_FDS handoff), and a tcache client finds the daemon by its default
  path.  As root, they also run under a real `systemd --user` manager as an
  unprivileged user, sandbox and all, in a private mount namespace and a
  cgroup of the test's own.
- tcached's own LISTEN_FDS checks: a socket handed over by Python, the wrong
  LISTEN_PID, a pipe or a datagram socket in fd 3.
- The launchd plist parses, and its ProgramArguments start a daemon.
- contrib/ci: the Dockerfile's stages, user, volumes, packages (checked
  against apt and against what the binaries link) and make targets; the
  sidecar's configuration (uid, directory modes, --allow-uid, HEALTHCHECK)
  run as the container would run it; compose.yaml; and the GitHub Actions
  and GitLab CI examples, whose shell steps are run as written, run after
  run, with the CI cache played by copying its path.
"""

import json
import os
import plistlib
import pwd
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time

import pytest

from conftest import BUILD, TCACHE, TCACHED

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
SYSTEMD_DIR = os.path.join(REPO, "contrib", "systemd")
UNITS = ("tcached.service", "tcached.socket")
PLIST = os.path.join(REPO, "contrib", "launchd", "org.tcache.tcached.plist")
CI = os.path.join(REPO, "contrib", "ci")
ANALYZE = shutil.which("systemd-analyze")
ACTIVATE = shutil.which("systemd-socket-activate")
SANITIZER_LIBS = ("libasan", "libubsan", "libtsan", "liblsan")


def _yaml():
    try:
        import yaml
    except ImportError:
        pytest.skip("python3-yaml is not installed (Makefile DEBS)")
    return yaml


def _elf(path):
    with open(path, "rb") as f:
        return f.read(4) == b"\x7fELF"


def _needed(path):
    out = subprocess.run(["readelf", "-d", path], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^]]+)\]", out)


def _plain_build():
    """Why $TCACHE_BUILD's tcached is not a plain binary, or None."""
    if not _elf(TCACHED):
        return "%s is a wrapper, not the build's binary" % TCACHED
    if any(n.startswith(SANITIZER_LIBS) for n in _needed(TCACHED)):
        return "%s is built with sanitizers" % TCACHED
    return None


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("TCACHE_", "LISTEN_", "XDG_STATE_HOME",
                                "XDG_RUNTIME_DIR", "XDG_CONFIG_HOME",
                                "GITHUB_", "RUNNER_", "CI_"))}
    env.update(extra)
    return env


def wait_status(env, timeout=10.0, proc=None, log=None):
    """`tcache status --json` once it answers; fails if proc exits first."""
    end = time.monotonic() + timeout
    while True:
        cp = subprocess.run([TCACHE, "status", "--json"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, timeout=20)
        if cp.returncode == 0:
            return json.loads(cp.stdout)
        if proc is not None and proc.poll() is not None:
            raise AssertionError("tcached exited with %s:\n%s"
                                 % (proc.returncode, _read(log)))
        if time.monotonic() > end:
            raise AssertionError("no answer: %s\n%s" % (cp.stderr, _read(log)))
        time.sleep(0.05)


def _read(path):
    if path is None:
        return ""
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


def stop(proc, timeout=10):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("tcached did not stop on SIGTERM")


# ------------------------------------------------------ systemd units

def read_unit(path):
    """[(section, key, value)] of a unit file, in order."""
    out, section = [], None
    with open(path) as f:
        for n, line in enumerate(f, 1):
            s = line.strip()
            if not s or s[0] in "#;":
                continue
            # This parser knows no continuation lines; the units use none.
            assert not s.endswith("\\"), "%s:%d: continuation line" % (path, n)
            if s.startswith("[") and s.endswith("]"):
                section = s[1:-1]
                continue
            key, eq, value = s.partition("=")
            assert eq, "%s:%d: not key=value: %r" % (path, n, s)
            out.append((section, key.strip(), value.strip()))
    return out


def unit_values(name, section, key):
    return [v for s, k, v in read_unit(os.path.join(SYSTEMD_DIR, name))
            if s == section and k == key]


def unit_value(name, section, key):
    vals = unit_values(name, section, key)
    assert len(vals) == 1, "%s: [%s] %s= set %d times" % (name, section, key,
                                                          len(vals))
    return vals[0]


def expand(value, spec):
    """The unit specifiers the units use (%t, %h), as a user manager
    expands them; any other is an error here until this test learns it."""
    def rep(m):
        c = m.group(1)
        if c == "%":
            return "%"
        assert c in spec, "specifier %%%s not known to this test" % c
        return spec[c]
    return re.sub(r"%(.)", rep, value)


def install_units(dest, bindir):
    """The units as `make install` writes them: @BINDIR@ filled in."""
    os.makedirs(dest, exist_ok=True)
    for name in UNITS:
        with open(os.path.join(SYSTEMD_DIR, name)) as f:
            text = f.read()
        with open(os.path.join(dest, name), "w") as f:
            f.write(text.replace("@BINDIR@", bindir))


def verify(unit_dir, base):
    """(status, output) of systemd-analyze verify --user on the units."""
    run = os.path.join(base, "run")
    os.makedirs(run, mode=0o700, exist_ok=True)
    env = clean_env(XDG_RUNTIME_DIR=run, HOME=os.path.join(base, "home"),
                    SYSTEMD_LOG_COLOR="0")
    # Documentation=man:tcached(8) is checked too when the page exists.
    man = "--man=no"
    page = os.path.join(REPO, "man", "tcached.8")
    if os.path.exists(page) and shutil.which("man"):
        mandir = os.path.join(base, "man", "man8")
        os.makedirs(mandir, exist_ok=True)
        shutil.copy(page, mandir)
        env["MANPATH"] = os.path.join(base, "man")
        man = "--man=yes"
    cp = subprocess.run([ANALYZE, "verify", "--user", man] +
                        [os.path.join(unit_dir, n) for n in UNITS],
                        cwd=unit_dir, env=env, stdout=subprocess.PIPE,
                        stderr=subprocess.STDOUT, universal_newlines=True,
                        timeout=60)
    return cp.returncode, cp.stdout


needs_analyze = pytest.mark.skipif(
    ANALYZE is None, reason="systemd-analyze not installed (Debian package "
    "systemd, in the Makefile's DEBS)")


@needs_analyze
def test_units_verify_clean(tmpbase):
    units = os.path.join(tmpbase, "units")
    install_units(units, BUILD)
    rc, out = verify(units, tmpbase)
    # verify exits 0 on a bad value or an unknown key (it only warns), so
    # any output at all is a failure.
    assert rc == 0 and out.strip() == "", out


BROKEN = [
    ("tcached.service", "ExecStart=", "ExecStrat="),
    ("tcached.service", "ProtectSystem=strict", "ProtectSystem=stric"),
    ("tcached.service", "RestrictAddressFamilies=AF_UNIX",
     "RestrictAddressFamilies=AF_UNIKS"),
    ("tcached.service", "@BINDIR@/tcached", "@BINDIR@/no-such-tcached"),
    ("tcached.socket", "SocketMode=0600", "SocketMode=0699"),
    ("tcached.socket", "ListenStream=%t/", "ListenStream=%q/"),
]


@needs_analyze
@pytest.mark.parametrize("name,old,new", BROKEN,
                         ids=["%s:%s" % (b[0], b[2]) for b in BROKEN])
def test_units_verify_catches(tmpbase, name, old, new):
    """The check above can fail: each breakage is reported."""
    units = os.path.join(tmpbase, "units")
    os.makedirs(units)
    for n in UNITS:
        with open(os.path.join(SYSTEMD_DIR, n)) as f:
            text = f.read()
        if n == name:
            # In a setting, not in a comment quoting one.
            lines = text.split("\n")
            at = [i for i, x in enumerate(lines)
                  if old in x and not x.lstrip().startswith("#")]
            assert at, "%s no longer has %r" % (n, old)
            lines[at[0]] = lines[at[0]].replace(old, new, 1)
            text = "\n".join(lines)
        with open(os.path.join(units, n), "w") as f:
            f.write(text.replace("@BINDIR@", BUILD))
    rc, out = verify(units, tmpbase)
    assert rc != 0 or out.strip(), "verify did not notice %r -> %r" % (old, new)


def test_units_paths_are_tcacheds_defaults():
    """The socket the .socket unit listens on is the one ExecStart names;
    both are in %t (tcache's default socket); the database is tcached's
    default one; and the service may write exactly those directories."""
    listen = unit_value("tcached.socket", "Socket", "ListenStream")
    assert listen == "%t/tcache/tcached.sock"
    assert unit_value("tcached.socket", "Socket", "SocketMode") == "0600"
    assert unit_value("tcached.socket", "Socket", "DirectoryMode") == "0700"
    argv = shlex.split(unit_value("tcached.service", "Service", "ExecStart"))
    assert argv[0] == "@BINDIR@/tcached"
    assert argv[argv.index("--socket") + 1] == listen
    db = argv[argv.index("--db") + 1]
    assert db == "%h/.local/state/tcache/tcache.db"
    rw = unit_value("tcached.service", "Service", "ReadWritePaths").split()
    assert sorted(p.lstrip("-") for p in rw) == sorted(
        [os.path.dirname(db), os.path.dirname(listen)])
    pre = unit_value("tcached.service", "Service", "ExecStartPre")
    assert shlex.split(pre.lstrip("+"))[-1] == os.path.dirname(db)
    # A user unit: no User=, and in the units' search path of make install.
    assert not unit_values("tcached.service", "Service", "User")
    with open(os.path.join(REPO, "Makefile")) as f:
        mk = f.read()
    assert re.search(r"^USERUNITDIR\s*=\s*\$\(PREFIX\)/lib/systemd/user\s*$",
                     mk, re.M)


def _unit_argv(home, run):
    spec = {"h": home, "t": run}
    pre = unit_value("tcached.service", "Service", "ExecStartPre")
    start = unit_value("tcached.service", "Service", "ExecStart")
    pre = shlex.split(expand(pre, spec).lstrip("+"))
    start = shlex.split(expand(start.replace("@BINDIR@", BUILD), spec))
    return pre, start, expand(unit_value("tcached.socket", "Socket",
                                         "ListenStream"), spec)


@pytest.mark.skipif(ACTIVATE is None, reason="systemd-socket-activate not "
                    "installed (Debian package systemd, in the Makefile's DEBS)")
def test_socket_activation_as_the_units_say(tmpbase):
    """systemd-socket-activate listens on ListenStream=, and on the first
    connection execs ExecStart= with the socket in fd 3 (LISTEN_FDS)."""
    home = os.path.join(tmpbase, "home")
    run = os.path.join(tmpbase, "run")
    os.makedirs(home)
    os.makedirs(run, mode=0o700)
    pre, start, sock = _unit_argv(home, run)
    os.makedirs(os.path.dirname(sock), mode=int(
        unit_value("tcached.socket", "Socket", "DirectoryMode"), 8))
    env = clean_env(HOME=home, XDG_RUNTIME_DIR=run)
    subprocess.run(pre, env=env, check=True)
    # The client is told nothing: it must find the socket by its default.
    cenv = dict(env, TCACHE_AUTOSTART="0")
    log = os.path.join(tmpbase, "activate.log")
    project = os.path.join(tmpbase, "project")
    os.makedirs(project)
    with open(os.path.join(project, "input.txt"), "w") as f:
        f.write("one\n")

    def activate():
        with open(log, "ab") as lf:
            return subprocess.Popen([ACTIVATE, "-l", sock] + start, env=env,
                                    stdout=lf, stderr=subprocess.STDOUT)

    p = activate()
    try:
        # Nothing runs until a client connects.
        deadline = time.monotonic() + 10
        while not os.path.exists(sock):
            assert time.monotonic() < deadline, _read(log)
            time.sleep(0.02)
        assert "Execing" not in _read(log)
        st = wait_status(cenv, proc=p, log=log)
        assert st["pid"] == p.pid, "tcached is not the activated process"
        assert st["socket"] == sock
        assert st["db"] == os.path.join(home, ".local/state/tcache/tcache.db")
        assert "using the listening socket from systemd (fd 3)" in _read(log)
        rec = subprocess.run([TCACHE, "record", "--test", "t", "--outcome",
                              "pass", "--dep", "input.txt"], cwd=project,
                             env=cenv, universal_newlines=True,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert rec.returncode == 0, rec.stdout
        assert stop(p) == 0
        # The socket is the manager's: tcached leaves it for the next start.
        assert stat.S_ISSOCK(os.lstat(sock).st_mode)
        os.unlink(sock)
        p = activate()
        wait_status(cenv, proc=p, log=log)
        look = subprocess.run([TCACHE, "lookup", "--test", "t", "--dep",
                               "input.txt"], cwd=project, env=cenv,
                              stdout=subprocess.PIPE, universal_newlines=True)
        assert look.returncode == 0 and look.stdout.strip() == "hit"
        assert stop(p) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    # tcached started by hand with no options uses the same database.
    run2 = os.path.join(tmpbase, "run2")
    os.makedirs(run2, mode=0o700)
    env2 = clean_env(HOME=home, XDG_RUNTIME_DIR=run2)
    with open(log, "ab") as lf:
        p = subprocess.Popen([TCACHED], env=env2, stdout=lf,
                             stderr=subprocess.STDOUT)
    try:
        st = wait_status(dict(env2, TCACHE_AUTOSTART="0"), proc=p, log=log)
        assert st["db"] == os.path.join(home, ".local/state/tcache/tcache.db")
        assert st["entries"] == 1
    finally:
        assert stop(p) == 0


# ------------------------------------------- LISTEN_FDS without systemd

def _spawn_fd3(tmpbase, fd3, args, listen_pid="$$", listen_fds="1"):
    """tcached with fd3 as its fd 3 and LISTEN_* set as systemd sets them
    (LISTEN_PID is the pid that execs tcached: the shell's own)."""
    log = os.path.join(tmpbase, "fd3.log")
    env = clean_env(LISTEN_FDS=listen_fds)

    def child():
        os.dup2(fd3, 3)

    script = 'LISTEN_PID=%s; export LISTEN_PID; exec "$@"' % listen_pid
    with open(log, "ab") as lf:
        p = subprocess.Popen(["sh", "-c", script, "sh", TCACHED] + args,
                             env=env, stdout=lf, stderr=subprocess.STDOUT,
                             preexec_fn=child, pass_fds=(3,))
    return p, log


def _listener(path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(path)
    s.listen(16)
    return s


def test_listen_fds_handoff(tmpbase):
    sock = os.path.join(tmpbase, "handed.sock")
    db = os.path.join(tmpbase, "db", "tcache.db")
    ls = _listener(sock)
    try:
        p, log = _spawn_fd3(tmpbase, ls.fileno(), ["--socket", sock, "--db", db])
    finally:
        ls.close()      # tcached holds its own copy
    try:
        st = wait_status(clean_env(TCACHE_SOCKET=sock, TCACHE_AUTOSTART="0"),
                         proc=p, log=log)
        assert st["pid"] == p.pid
        assert "using the listening socket from systemd (fd 3)" in _read(log)
    finally:
        assert stop(p) == 0
    # Not bound by tcached, so not removed by it either.
    assert os.path.exists(sock)


@pytest.mark.parametrize("listen_pid,listen_fds", [("1", "1"), ("$$", "0")],
                         ids=["other-pid", "zero-fds"])
def test_listen_fds_not_ours(tmpbase, listen_pid, listen_fds):
    """LISTEN_FDS for another process, or for none: tcached binds its own."""
    handed = os.path.join(tmpbase, "handed.sock")
    own = os.path.join(tmpbase, "own", "tcached.sock")
    ls = _listener(handed)
    try:
        p, log = _spawn_fd3(tmpbase, ls.fileno(),
                            ["--socket", own, "--db",
                             os.path.join(tmpbase, "db", "t.db")],
                            listen_pid=listen_pid, listen_fds=listen_fds)
        try:
            st = wait_status(clean_env(TCACHE_SOCKET=own, TCACHE_AUTOSTART="0"),
                             proc=p, log=log)
            assert st["socket"] == own
            assert "from systemd" not in _read(log)
        finally:
            assert stop(p) == 0
        assert not os.path.exists(own), "its own socket is removed at exit"
    finally:
        ls.close()


def test_listen_fds_two(tmpbase):
    """LISTEN_FDS=2: fd 3 is used, and the extra one is named in the log."""
    sock = os.path.join(tmpbase, "handed.sock")
    ls = _listener(sock)
    try:
        p, log = _spawn_fd3(tmpbase, ls.fileno(),
                            ["--socket", sock, "--db",
                             os.path.join(tmpbase, "db", "t.db")],
                            listen_fds="2")
        try:
            wait_status(clean_env(TCACHE_SOCKET=sock, TCACHE_AUTOSTART="0"),
                        proc=p, log=log)
            assert "LISTEN_FDS=2: using fd 3 only" in _read(log)
        finally:
            assert stop(p) == 0
    finally:
        ls.close()


@pytest.mark.parametrize("kind", ["pipe", "datagram"])
def test_listen_fds_not_a_stream_socket(tmpbase, kind):
    if kind == "pipe":
        r, w = os.pipe()
        keep = [r, w]
        fd = r
    else:
        d = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        d.bind(os.path.join(tmpbase, "dgram.sock"))
        keep = [d]
        fd = d.fileno()
    sock = os.path.join(tmpbase, "run", "tcached.sock")
    try:
        p, log = _spawn_fd3(tmpbase, fd, ["--socket", sock, "--db",
                                          os.path.join(tmpbase, "t.db")])
        rc = p.wait(20)
    finally:
        for k in keep:
            k.close() if hasattr(k, "close") else os.close(k)
    assert rc != 0
    assert "fd 3 is not a stream socket" in _read(log)
    assert not os.path.exists(sock), "it must not fall back to binding"


# ------------------------------------- a real systemd --user, as root

SYSTEMD = next((p for p in ("/lib/systemd/systemd", "/usr/lib/systemd/systemd")
                if os.access(p, os.X_OK)), None)
USER = "nobody"

# Runs in a mount namespace of its own (unshare -m), as root until the
# manager starts.  A real PID 1 would have made /run/systemd/{system,
# inaccessible,unit-root} and a tmpfs on /run; here /run/systemd is a tmpfs
# of the namespace, and /home and /run/user are too.
MANAGER_SCRIPT = r'''
set -eu
say() { printf '%s\n' "$*"; }
# Only over directories that exist: nothing is made on the machine's own.
for d in /run/systemd /run/user /home; do
    [ -d $d ] || { say "skip=no $d to mount a tmpfs on"; exit 0; }
done
mount --bind /run /run
mount -t tmpfs -o mode=755 tmpfs /run/systemd
mkdir /run/systemd/system /run/systemd/unit-root
I=/run/systemd/inaccessible
mkdir $I $I/dir && : > $I/reg && mkfifo $I/fifo && mknod $I/chr c 0 0 &&
    mknod $I/blk b 0 0 && python3 -c "import socket,sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])" $I/sock &&
    chmod 0 $I/*
mount -t tmpfs -o mode=755 tmpfs /home
mount -t tmpfs -o mode=755 tmpfs /run/user
export HOME=/home/tctest XDG_RUNTIME_DIR=/run/user/$TC_UID
mkdir -p $HOME/.config/systemd/user $XDG_RUNTIME_DIR
chmod 700 $XDG_RUNTIME_DIR
cp "$TC_UNITS"/* $HOME/.config/systemd/user/
mkdir -p $HOME/.config/tcache && echo "ttl = 7d" > $HOME/.config/tcache/tcached.conf
chown -R $TC_UID:$TC_GID $HOME $XDG_RUNTIME_DIR
set +e
as() { setpriv --reuid=$TC_UID --regid=$TC_GID --clear-groups "$@"; }
as "$TC_SYSTEMD" --user > /dev/null 2>&1 &
MPID=$!
say "manager=$MPID"
for _ in $(seq 100); do [ -S $XDG_RUNTIME_DIR/systemd/private ] && break; sleep 0.1; done
tc() { as env TCACHE_AUTOSTART=0 "$TC_TCACHE" "$@"; }
show() { as systemctl --user show -p "$2" --value "$1"; }

as systemctl --user daemon-reload
as systemctl --user enable --now tcached.socket; say "enable=$?"
say "sockmode=$(stat -c %a $XDG_RUNTIME_DIR/tcache/tcached.sock) dirmode=$(stat -c %a $XDG_RUNTIME_DIR/tcache)"
say "active_before=$(show tcached.service ActiveState)"
st=$(tc status --json); say "status=$? $st"
PID=$(show tcached.service MainPID)
say "main=$PID"
say "ns_user=$(readlink /proc/$PID/ns/user) $(readlink /proc/$MPID/ns/user)"
say "ns_mnt=$(readlink /proc/$PID/ns/mnt) $(readlink /proc/$MPID/ns/mnt)"
say "ns_net=$(readlink /proc/$PID/ns/net) $(readlink /proc/$MPID/ns/net)"
say "nnp=$(awk '/^NoNewPrivs/ {print $2}' /proc/$PID/status) seccomp=$(awk '/^Seccomp:/ {print $2}' /proc/$PID/status)"
say "rootmount=$(awk '$5 == "/" {print $6}' /proc/$PID/mountinfo | head -1)"
mkdir -p /home/tctest/project && echo one > /home/tctest/project/in.txt && chown -R $TC_UID:$TC_GID /home/tctest/project
cd /home/tctest/project
tc record --test t --outcome pass --dep in.txt > /dev/null; say "record=$?"
as systemctl --user stop tcached.service
say "stopped=$(show tcached.service Result) $(show tcached.service ExecMainStatus)"
tc lookup --test t --dep in.txt > /dev/null; say "lookup_after_restart=$?"
say "db=$(ls $HOME/.local/state/tcache/tcache.db)"

# The drop-in the service's comments give for kernels without user
# namespaces: no namespace may be made at all.
mkdir -p $HOME/.config/systemd/user/tcached.service.d
cp "$TC_UNITS/nons.conf" $HOME/.config/systemd/user/tcached.service.d/
chown -R $TC_UID:$TC_GID $HOME/.config
as systemctl --user daemon-reload
as systemctl --user stop tcached.service
tc lookup --test t --dep in.txt > /dev/null; say "nons_lookup=$?"
PID=$(show tcached.service MainPID)
say "nons_ns=$(readlink /proc/$PID/ns/user /proc/$PID/ns/mnt /proc/$PID/ns/net | tr '\n' ' ')|$(readlink /proc/$MPID/ns/user /proc/$MPID/ns/mnt /proc/$MPID/ns/net | tr '\n' ' ')"
as systemctl --user status tcached.service --no-pager -l 2>&1 | sed 's/^/| /'

as systemctl --user stop tcached.socket tcached.service
kill -TERM $MPID
for _ in $(seq 100); do kill -0 $MPID 2>/dev/null || break; sleep 0.1; done
say "done"
'''


def _manager_problem():
    if os.geteuid() != 0:
        return "needs root (a user manager run as another user, in a mount " \
               "namespace and a cgroup of its own)"
    for tool in ("unshare", "setpriv", "systemctl"):
        if shutil.which(tool) is None:
            return "%s not installed" % tool
    if SYSTEMD is None:
        return "systemd not installed"
    try:
        pwd.getpwnam(USER)
    except KeyError:
        return "no user %s" % USER
    why = _plain_build()
    if why:
        return why + " (MemoryDenyWriteExecute= and the syscall filter are " \
                     "for the plain build)"
    # The user must reach the build, as a real user reaches /usr/local/bin.
    d = TCACHED
    while d != "/":
        d = os.path.dirname(d)
        if not os.stat(d).st_mode & stat.S_IXOTH:
            return "%s is not searchable by other users" % d
    pw = pwd.getpwnam(USER)
    cp = subprocess.run(["setpriv", "--reuid=%d" % pw.pw_uid,
                         "--regid=%d" % pw.pw_gid, "--clear-groups",
                         "unshare", "--user", "true"],
                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if cp.returncode != 0:
        return "unprivileged user namespaces are not available here"
    return None


def _cgroup_mounts():
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            a, b = line.split(" - ", 1)
            if b.split()[0] in ("cgroup", "cgroup2"):
                out.append(a.split()[4])
    return out


class Cgroups:
    """A cgroup of the test's own in every hierarchy, given to the user:
    the manager is started in it, so it manages that subtree and never the
    machine's (a manager in a root cgroup moves every process there into
    an init.scope of its own)."""

    def __init__(self, uid, gid):
        self.name = "tcache-test-%d" % os.getpid()
        self.dirs = []
        for m in _cgroup_mounts():
            d = os.path.join(m, self.name)
            os.mkdir(d)
            self.dirs.append(d)
            for f in ("cpuset.cpus", "cpuset.mems"):
                if os.path.exists(os.path.join(m, f)):
                    with open(os.path.join(m, f)) as src:
                        v = src.read()
                    with open(os.path.join(d, f), "w") as dst:
                        dst.write(v)
            for root, dirs, files in os.walk(d):
                for x in [root] + [os.path.join(root, n) for n in files]:
                    os.chown(x, uid, gid)

    def enter(self):
        """In the child, before exec: join every hierarchy."""
        for d in self.dirs:
            with open(os.path.join(d, "cgroup.procs"), "w") as f:
                f.write("0")

    def pids(self):
        out = set()
        for d in self.dirs:
            for root, _, files in os.walk(d):
                if "cgroup.procs" in files:
                    with open(os.path.join(root, "cgroup.procs")) as f:
                        out.update(int(x) for x in f.read().split())
        return out

    def remove(self):
        for _ in range(50):
            pids = self.pids()
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            if not pids:
                break
            time.sleep(0.1)
        left = []
        for d in self.dirs:
            for root, dirs, _ in os.walk(d, topdown=False):
                for _ in range(50):
                    try:
                        os.rmdir(root)
                        break
                    except FileNotFoundError:
                        break
                    except OSError:
                        time.sleep(0.1)
                else:
                    left.append(root)
        assert not left, "cgroups left behind: %s" % left


def _drop_in_from_comments():
    """The [Service] drop-in quoted in tcached.service's comments."""
    with open(os.path.join(SYSTEMD_DIR, "tcached.service")) as f:
        lines = f.read().split("\n")
    i = lines.index("#      [Service]")
    out = ["[Service]"]
    for line in lines[i + 1:]:
        m = re.match(r"^#      (\w+=.*)$", line)
        if not m:
            break
        out.append(m.group(1))
    assert len(out) > 5, "the drop-in in tcached.service's comments is gone"
    return "\n".join(out) + "\n"


def test_units_under_a_user_manager(tmpbase):
    why = _manager_problem()
    if why:
        pytest.skip(why)
    pw = pwd.getpwnam(USER)
    uid, gid = pw.pw_uid, pw.pw_gid
    units = os.path.join(tmpbase, "units")
    install_units(units, BUILD)
    with open(os.path.join(units, "nons.conf"), "w") as f:
        f.write(_drop_in_from_comments())
    os.chmod(tmpbase, 0o755)
    try:
        cg = Cgroups(uid, gid)
    except OSError as e:
        pytest.skip("cannot make a cgroup of the test's own: %s" % e)
    env = clean_env(TC_UID=str(uid), TC_GID=str(gid), TC_UNITS=units,
                    TC_SYSTEMD=SYSTEMD, TC_TCACHE=TCACHE)
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    try:
        cp = subprocess.run(["unshare", "-m", "--propagation", "private",
                             "sh", "-c", MANAGER_SCRIPT], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, timeout=120,
                            preexec_fn=cg.enter)
    finally:
        cg.remove()
    out = cp.stdout
    if out.startswith("skip="):
        pytest.skip(out[5:].strip())
    if "manager=" not in out:
        # The namespace could not be set up here (mount, mknod): a
        # container without the privileges, not a fault of the units.
        pytest.skip("cannot set up a user manager here: " + out[-500:])
    got = {}
    for line in out.split("\n"):
        k, eq, v = line.partition("=")
        if eq and re.match(r"^\w+$", k):
            got.setdefault(k, v)
    assert "\ndone\n" in out, out
    assert got["enable"] == "0", out
    assert got["sockmode"] == "600 dirmode=700", out
    # Socket activation: nothing ran before the first client.
    assert got["active_before"] == "inactive", out
    rc, _, js = got["status"].partition(" ")
    assert rc == "0", out
    st = json.loads(js)
    assert st["socket"] == "/run/user/%d/tcache/tcached.sock" % uid
    assert st["db"] == "/home/tctest/.local/state/tcache/tcache.db"
    assert st["ttl_ms"] == 7 * 86400 * 1000, "tcached.conf not read"
    assert str(st["pid"]) == got["main"], out
    # The sandbox is in place: namespaces of its own, no new privileges,
    # a seccomp filter, and / read-only.
    for ns in ("ns_user", "ns_mnt", "ns_net"):
        a, b = got[ns].split()
        assert a != b, "%s: tcached shares the manager's\n%s" % (ns, out)
    assert got["nnp"] == "1 seccomp=2", out
    assert got["rootmount"].split(",")[0] == "ro", out
    assert got["record"] == "0", out
    assert got["stopped"] == "success 0", out
    # Started again by the socket, on the same database.
    assert got["lookup_after_restart"] == "0", out
    assert got["db"] == "/home/tctest/.local/state/tcache/tcache.db", out
    # The documented drop-in: the service still works, in no namespace.
    assert got["nons_lookup"] == "0", out
    mine, managers = got["nons_ns"].split("|")
    assert mine.split() == managers.split(), out


# ------------------------------------------------------------- launchd

def test_launchd_plist(tmpbase):
    with open(PLIST, "rb") as f:
        pl = plistlib.load(f)
    assert pl["Label"] == os.path.basename(PLIST)[:-len(".plist")]
    assert pl["RunAtLoad"] is True
    assert pl["KeepAlive"] == {"SuccessfulExit": False}
    assert pl["StandardErrorPath"].startswith("@HOME@/")
    args = pl["ProgramArguments"]
    assert args[0] == "@BINDIR@/tcached"
    # Installed as the README says: both placeholders filled in by sed.
    home = os.path.join(tmpbase, "home")
    os.makedirs(home)
    with open(PLIST) as f:
        text = f.read().replace("@BINDIR@", BUILD).replace("@HOME@", home)
    assert "@" not in re.sub(r"<!--.*?-->", "", text, flags=re.S).replace(
        "org.tcache", "")
    args = plistlib.loads(text.encode())["ProgramArguments"]
    sock = args[args.index("--socket") + 1]
    assert sock == os.path.join(home, ".local/state/tcache/tcached.sock")
    # The plist's comment tells clients where the socket is.
    assert 'TCACHE_SOCKET="$HOME/.local/state/tcache/tcached.sock"' in text
    log = os.path.join(tmpbase, "launchd.log")
    env = clean_env(HOME=home)
    with open(log, "wb") as lf:
        p = subprocess.Popen(args, env=env, stdout=lf, stderr=subprocess.STDOUT)
    try:
        st = wait_status(dict(env, TCACHE_SOCKET=sock, TCACHE_AUTOSTART="0"),
                         proc=p, log=log)
        # The database is tcached's default one.
        assert st["db"] == os.path.join(home, ".local/state/tcache/tcache.db")
    finally:
        assert stop(p) == 0


# ---------------------------------------------------------- Dockerfile

def dockerfile():
    """[(stage index, instruction, arguments)], continuation lines joined
    and comment lines dropped, as Docker reads them."""
    out, stage, cur = [], -1, ""
    with open(os.path.join(CI, "Dockerfile")) as f:
        for line in f:
            s = line.rstrip("\n")
            if s.lstrip().startswith("#"):
                continue
            if s.endswith("\\"):
                cur += s[:-1] + " "
                continue
            cur += s
            if cur.strip():
                ins, _, args = cur.strip().partition(" ")
                ins = ins.upper()
                if ins == "FROM":
                    stage += 1
                out.append((stage, ins, args.strip()))
            cur = ""
    assert not cur.strip(), "Dockerfile ends inside a continuation"
    return out


def _exec_form(args):
    v = json.loads(args)
    assert isinstance(v, list) and all(isinstance(x, str) for x in v)
    return v


def _apt_installs(text):
    """Package names of every `apt-get install` in a RUN's text."""
    pkgs = []
    for part in re.split(r"&&|;", text):
        w = part.split()
        if len(w) >= 2 and w[0] == "apt-get" and "install" in w:
            pkgs += [x for x in w[w.index("install") + 1:]
                     if not x.startswith("-")]
    return pkgs


def _makefile_debs():
    with open(os.path.join(REPO, "Makefile")) as f:
        text = f.read().replace("\\\n", " ")
    m = re.search(r"^DEBS\s*=(.*)$", text, re.M)
    return m.group(1).split()


def _lib_package(soname, binary):
    """The Debian package of the library binary loads as soname."""
    out = subprocess.run(["ldd", binary], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    m = re.search(r"^\s*%s => (\S+)" % re.escape(soname), out, re.M)
    assert m, "ldd %s does not resolve %s" % (binary, soname)
    path = m.group(1)
    for p in (path, os.path.realpath(path), "/usr" + path
              if path.startswith("/lib") else path):
        cp = subprocess.run(["dpkg", "-S", p], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, universal_newlines=True)
        if cp.returncode == 0:
            return cp.stdout.split(":")[0].strip()
    raise AssertionError("no Debian package holds %s" % path)


def _essential():
    """Debian's Essential packages and what they depend on: what even a
    slim image has (libc6 among them)."""
    out = subprocess.run(["dpkg-query", "-W", "-f=${Package}\t${Essential}\t"
                          "${Pre-Depends}, ${Depends}\n"],
                         stdout=subprocess.PIPE, universal_newlines=True,
                         check=True).stdout
    have = set()
    for line in out.splitlines():
        name, ess, deps = line.split("\t")
        if ess == "yes":
            have.add(name)
            have.update(re.findall(r"(?:^|[,|]\s*)([a-z0-9][a-z0-9.+-]*)",
                                   deps))
    return have


def test_dockerfile():
    ins = dockerfile()
    stages = sorted({s for s, _, _ in ins})
    assert stages == [0, 1], "a build stage and a runtime stage"
    froms = [a for s, i, a in ins if i == "FROM"]
    assert froms[0].split()[0] == "debian:12-slim"
    assert froms[0].split()[1:] == ["AS", "build"]
    assert froms[1] == "debian:12-slim"
    build = [(i, a) for s, i, a in ins if s == 0]
    rt = [(i, a) for s, i, a in ins if s == 1]

    # build: the packages `make` needs are installed before it runs, and
    # the make targets exist.
    runs = [a for i, a in build if i == "RUN"]
    build_pkgs = _apt_installs(" ; ".join(runs))
    makes = [c.strip() for r in runs for c in re.split(r"&&|;", r)
             if c.split()[:1] == ["make"]]
    assert makes, "the build stage runs no make"
    debs_override = None
    for m in makes:
        words = shlex.split(m)[1:]
        targets = [w for w in words if "=" not in w and not w.startswith("-")]
        for w in words:
            if w.startswith("DEBS="):
                debs_override = w[5:].split()
        for t in targets:
            cp = subprocess.run(["make", "-n", "-C", REPO, "BUILD=" +
                                 tempfile.gettempdir() + "/tc-no-build", t],
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, universal_newlines=True)
            assert "No rule to make target" not in cp.stderr, (t, cp.stderr)
    assert debs_override, "make without DEBS= would want the test tools too"
    assert set(debs_override) <= set(_makefile_debs())
    assert set(debs_override) <= set(build_pkgs)
    workdir = [a for i, a in build if i == "WORKDIR"][-1]

    # runtime: the programs `make all` built, and the libraries they link.
    copies = [a for i, a in rt if i == "COPY"]
    assert len(copies) == 1
    w = copies[0].split()
    assert w[0] == "--from=build" and w[-1] == "/usr/local/bin/"
    assert sorted(w[1:-1]) == sorted(os.path.join(workdir, "build", n)
                                     for n in ("tcached", "tcache"))
    rt_runs = " ; ".join(a for i, a in rt if i == "RUN")
    rt_pkgs = _apt_installs(rt_runs)
    base = _essential()
    if _elf(TCACHED) and _elf(TCACHE):
        for binary in (TCACHED, TCACHE):
            for lib in _needed(binary):
                if lib.startswith(SANITIZER_LIBS):
                    continue
                pkg = _lib_package(lib, binary)
                assert pkg in rt_pkgs or pkg in base, \
                    "%s needs %s from %s, not installed" % (binary, lib, pkg)
    # Every package named is one apt can install (one apt-cache run: each
    # reads all the package lists).
    pol = subprocess.run(["apt-cache", "policy"] + build_pkgs + rt_pkgs,
                         stdout=subprocess.PIPE, universal_newlines=True).stdout
    cand = dict(re.findall(r"^(\S+?)(?::\w+)?:\n(?:  .*\n)*?  Candidate: (.*)$",
                           pol, re.M))
    for pkg in build_pkgs + rt_pkgs:
        assert cand.get(pkg, "(none)") != "(none)", "no Debian package %s" % pkg

    # A user of its own, not root; its volumes; the health check.
    users = [a for i, a in rt if i == "USER"]
    assert users and users[-1] not in ("root", "0")
    m = re.search(r"useradd\b[^&;]*--uid (\d+)[^&;]* %s\b" % users[-1],
                  rt_runs)
    assert m and int(m.group(1)) != 0
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(a for i, a in rt
                                                   if i == "ENV")))
    vols = _exec_form([a for i, a in rt if i == "VOLUME"][0])
    assert os.path.dirname(env["TCACHE_SOCKET"]) in vols
    assert os.path.dirname(env["TCACHE_DB"]) in vols
    assert env["TCACHE_AUTOSTART"] == "0"
    hc = [a for i, a in rt if i == "HEALTHCHECK"][0]
    assert _exec_form(hc[hc.index("CMD") + 3:].strip()) == ["tcache", "status"]
    assert _exec_form([a for i, a in rt if i == "ENTRYPOINT"][0]) == ["tcached"]


def _compose():
    with open(os.path.join(CI, "compose.yaml")) as f:
        return _yaml().safe_load(f)


def test_compose():
    c = _compose()
    sv = c["services"]
    d = sv["tcached"]
    assert os.path.normpath(os.path.join(CI, d["build"]["context"])) == REPO
    assert os.path.isfile(os.path.join(REPO, d["build"]["dockerfile"]))
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(
        a for s, i, a in dockerfile() if s == 1 and i == "ENV")))
    vols = {v.split(":")[1]: v.split(":")[0] for v in d["volumes"]}
    sockdir = os.path.dirname(env["TCACHE_SOCKET"])
    t = sv["tests"]
    tvols = {v.split(":")[1]: v.split(":")[0] for v in t["volumes"]}
    # The socket's volume is shared; the database's is the daemon's alone.
    assert tvols[sockdir] == vols[sockdir]
    assert vols[os.path.dirname(env["TCACHE_DB"])] not in tvols.values()
    assert set(vols.values()) <= set(c["volumes"])
    assert t["environment"]["TCACHE_SOCKET"] == env["TCACHE_SOCKET"]
    assert t["depends_on"]["tcached"]["condition"] == "service_healthy"
    # The job's image is the sidecar's (it has tcache), built the same way.
    assert t["build"] == d["build"]
    # The job's user is the one tcached is told to serve.
    uid = t["user"].split(":")[0]
    cmd = d["command"]
    assert cmd[cmd.index("--allow-uid") + 1] == uid
    assert os.path.exists(os.path.join(REPO, t["command"][0]))


def test_sidecar_as_the_container_runs_it(tmpbase):
    """The runtime stage's directories, user, ENV and ENTRYPOINT with
    compose's arguments, run here: a job as the allowed uid and as root is
    served, another uid is refused, and the HEALTHCHECK follows the daemon."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv, to run as the image's users")
    ins = [(i, a) for s, i, a in dockerfile() if s == 1]
    runs = " ; ".join(a for i, a in ins if i == "RUN")
    duid = int(re.search(r"useradd\b[^&;]*--uid (\d+)", runs).group(1))
    env = dict(re.findall(r"(\w+)=(\S+)", " ".join(a for i, a in ins
                                                   if i == "ENV")))
    c = _compose()
    juid = int(c["services"]["tests"]["user"].split(":")[0])
    os.chmod(tmpbase, 0o755)

    def here(path):
        return os.path.join(tmpbase, path.strip("/").replace("/", "-"))

    for mode, path in re.findall(r"install -d -o \S+ -g \S+ -m (\d+) (\S+)",
                                 runs):
        os.mkdir(here(path))
        os.chmod(here(path), int(mode, 8))
        os.chown(here(path), duid, duid)
    denv = clean_env(TCACHE_SOCKET=here(os.path.dirname(env["TCACHE_SOCKET"])) +
                     "/" + os.path.basename(env["TCACHE_SOCKET"]),
                     TCACHE_DB=here(os.path.dirname(env["TCACHE_DB"])) + "/" +
                     os.path.basename(env["TCACHE_DB"]),
                     TCACHE_AUTOSTART=env["TCACHE_AUTOSTART"], HOME=tmpbase)
    entry = _exec_form([a for i, a in ins if i == "ENTRYPOINT"][0])
    assert entry == ["tcached"]
    log = os.path.join(tmpbase, "sidecar.log")

    def as_uid(uid):
        return ["setpriv", "--reuid=%d" % uid, "--regid=%d" % uid,
                "--clear-groups"]

    def health():
        return subprocess.run(as_uid(duid) + [TCACHE, "status"], env=denv,
                              stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode

    with open(log, "wb") as lf:
        p = subprocess.Popen(as_uid(duid) + [TCACHED] +
                             c["services"]["tcached"]["command"], env=denv,
                             stdout=lf, stderr=subprocess.STDOUT)
    try:
        wait_status(denv, proc=p, log=log)
        assert health() == 0
        job = dict(denv, TCACHE_SOCKET=denv["TCACHE_SOCKET"])
        for uid, ok in ((juid, True), (0, True), (juid + 1, False)):
            cp = subprocess.run(as_uid(uid) + [TCACHE, "status"], env=job,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT,
                                universal_newlines=True)
            assert (cp.returncode == 0) == ok, (uid, cp.stdout, _read(log))
    finally:
        assert stop(p) == 0
    assert health() != 0


# ------------------------------------------------- CI examples, as run

def _github():
    with open(os.path.join(CI, "github-actions.yml")) as f:
        wf = _yaml().safe_load(f)
    # YAML 1.1 reads the key `on` as true.
    wf["on"] = wf.pop(True, wf.get("on"))
    return wf


def _gh_expr(expr, event):
    """The few GitHub expressions the workflow's if: conditions use."""
    e = expr.replace("${{", "").replace("}}", "").strip()
    assert re.fullmatch(r"(always\(\)|github\.event_name|'\w+'|!=|==|&&|\|\||"
                        r"[ ()])+", e), "expression not known here: " + e
    e = e.replace("always()", "True").replace("github.event_name",
                                              repr(event))
    e = e.replace("&&", " and ").replace("||", " or ")
    return bool(eval(e, {"__builtins__": {}}))


def _gh_path(value, runner_temp):
    """A cache path: only ${{ runner.temp }} may be in it."""
    v = value.replace("${{ runner.temp }}", runner_temp)
    assert "${{" not in v, value
    return v


@pytest.fixture
def cibase(tmpbase):
    """tmpbase, and at the end no process left running from it (a step
    that failed before stopping its tcached)."""
    yield tmpbase
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        if tmpbase.encode() in cmd:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass


class FakeCI:
    """Runs shell steps as a CI runner does, in directories of its own."""

    def __init__(self, base):
        self.base = base
        self.log = []

    def sh(self, script, extra_env, cwd, shell):
        fd, path = tempfile.mkstemp(suffix=".sh", dir=self.base)
        with os.fdopen(fd, "w") as f:
            f.write(script)
        cp = subprocess.run(shell + [path], cwd=cwd, env=extra_env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True, timeout=300)
        self.log.append("$ %s\n%s[exit %d]" % (script, cp.stdout,
                                               cp.returncode))
        return cp.returncode, cp.stdout


def _ci_problem():
    if not os.path.isdir(os.path.join(REPO, ".git")) or not shutil.which("git"):
        return "the CI examples clone tcache: %s is not a git checkout" % REPO
    why = _plain_build()
    if why:
        return why + "; the CI examples build their own (run with the plain build)"
    return None


def _ci_project(base):
    """A project as the examples expect: tests/*.sh and src/."""
    work = os.path.join(base, "work")
    os.makedirs(os.path.join(work, "tests"))
    os.makedirs(os.path.join(work, "src"))
    with open(os.path.join(work, "src", "lib.sh"), "w") as f:
        f.write("greet() { echo hello; }\n")
    for name in ("a", "b"):
        with open(os.path.join(work, "tests", name + ".sh"), "w") as f:
            f.write('. src/lib.sh\necho %s >> "$RAN_LOG"\n'
                    '[ "$(greet)" = hello ]\n' % name)
    return work


def _ran(path):
    """The tests that ran since the last call, sorted."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        names = f.read().split()
    os.unlink(path)
    return sorted(names)


def test_github_actions_example(cibase):
    tmpbase = cibase
    why = _ci_problem()
    if why:
        pytest.skip(why)
    wf = _github()
    assert set(wf["on"]) == {"push", "pull_request"}
    steps = wf["jobs"]["test"]["steps"]
    assert wf["defaults"]["run"]["shell"] == "bash"
    shell = ["bash", "--noprofile", "--norc", "-eo", "pipefail"]
    by_id = {s["id"]: s for s in steps if "id" in s}
    restore = [s for s in steps if s.get("uses", "").startswith(
        "actions/cache/restore@")]
    save = [s for s in steps if s.get("uses", "").startswith(
        "actions/cache/save@")]
    assert len(restore) == 1 and len(save) == 1
    restore, save = restore[0], save[0]
    # A new key each run (a cache is never overwritten), found again by
    # its prefix; the same path both ways.
    assert restore["with"]["key"] == save["with"]["key"]
    assert "github.run_id" in save["with"]["key"]
    assert save["with"]["key"].startswith(restore["with"]["restore-keys"])
    assert restore["with"]["path"] == save["with"]["path"]
    order = [s.get("id") or s["uses"].split("@")[0] for s in steps]
    assert order.index("actions/cache/restore") < order.index("tcache-start") \
        < order.index("tests") < order.index("tcache-stop") \
        < order.index("actions/cache/save")
    assert _gh_expr(by_id["tcache-stop"]["if"], "pull_request")
    assert _gh_expr(save["if"], "push")
    assert not _gh_expr(save["if"], "pull_request")

    store = os.path.join(tmpbase, "actions-cache")
    home = os.path.join(tmpbase, "home")
    os.makedirs(home)
    work = _ci_project(tmpbase)
    ran_log = os.path.join(tmpbase, "ran.log")
    ci = FakeCI(tmpbase)
    built = []

    def run(n, event, image="ubuntu22/20240101.1"):
        temp = os.path.join(tmpbase, "r%d" % n)
        os.makedirs(temp)
        genv = os.path.join(temp, "github_env")
        gpath = os.path.join(temp, "github_path")
        for f in (genv, gpath):
            open(f, "w").close()
        base = clean_env(HOME=home, RUNNER_TEMP=temp, GITHUB_WORKSPACE=work,
                         GITHUB_ENV=genv, GITHUB_PATH=gpath,
                         GITHUB_EVENT_NAME=event, RAN_LOG=ran_log,
                         ImageOS=image.split("/")[0],
                         ImageVersion=image.split("/")[1])
        base.update({k: str(v) for k, v in wf["env"].items()})
        base["TCACHE_GIT"] = "file://" + REPO
        # Not run here: apt-get (the packages are this machine's).  The
        # build runs once; later runs take its PATH line.
        path = _gh_path(restore["with"]["path"], temp)
        if os.path.isdir(store):
            shutil.copytree(store, path)
        outs = {}
        for s in steps:
            sid = s.get("id")
            if sid in (None, "tcache-deps") or (sid == "tcache-build" and built):
                continue
            if "if" in s and not _gh_expr(s["if"], event):
                continue
            assert "${{" not in s["run"], "%s: an expression in run:" % sid
            env = dict(base)
            with open(genv) as f:
                for line in f.read().splitlines():
                    k, _, v = line.partition("=")
                    assert "<<" not in k
                    env[k] = v
            with open(gpath) as f:
                extra = f.read().split() + built
            env["PATH"] = os.pathsep.join(list(reversed(extra)) +
                                          [env["PATH"]])
            rc, out = ci.sh(s["run"], env, work, shell)
            outs[sid] = (rc, out)
            if sid == "tcache-build":
                assert rc == 0, "\n".join(ci.log)
                with open(gpath) as f:
                    built.extend(f.read().split())
        if _gh_expr(save["if"], event):
            saved = _gh_path(save["with"]["path"], temp)
            if not os.path.isdir(saved):
                tlog = os.path.join(temp, "tcached.log")
                pytest.fail("run %d: nothing to save at %s\nsteps: %r\n"
                            "tcached.log: %s\n%s" % (
                                n, saved, outs,
                                open(tlog).read() if os.path.exists(tlog)
                                else "(none)", "\n".join(ci.log)))
            shutil.rmtree(store, ignore_errors=True)
            shutil.copytree(saved, store)
        return outs

    def db_bytes():
        with open(os.path.join(store, "tcache.db"), "rb") as f:
            return f.read()

    log = lambda: "\n".join(ci.log)    # noqa: E731
    outs = run(1, "push")
    assert outs["tcache-start"][0] == 0, log()
    assert outs["tests"][0] == 0, log()
    assert outs["tcache-stop"][0] == 0, log()
    assert _ran(ran_log) == ["a", "b"]
    # Stopped cleanly before the save: the database alone, its WAL folded in.
    assert sorted(os.listdir(store)) == ["tcache.db"], os.listdir(store)

    outs = run(2, "push")
    assert outs["tests"][0] == 0, log()
    assert _ran(ran_log) == [], log()
    assert "cached pass for tests/a.sh" in outs["tests"][1]
    saved = db_bytes()

    # A pull request that edits b: b runs, a is cached; nothing recorded,
    # nothing saved.
    with open(os.path.join(work, "tests", "b.sh"), "a") as f:
        f.write("# reviewed\n")
    outs = run(3, "pull_request")
    assert outs["tests"][0] == 0, log()
    assert _ran(ran_log) == ["b"], log()
    assert "tests/b.sh not recorded" in outs["tests"][1], log()
    outs = run(4, "pull_request")
    assert _ran(ran_log) == ["b"], log()
    assert db_bytes() == saved

    # Merged: the push records b; a new runner image runs everything.
    outs = run(5, "push")
    assert _ran(ran_log) == ["b"], log()
    outs = run(6, "push")
    assert _ran(ran_log) == [], log()
    outs = run(7, "push", image="ubuntu24/20250101.1")
    assert _ran(ran_log) == ["a", "b"], log()


def test_github_actions_example_daemon_down(cibase):
    tmpbase = cibase
    """tcached does not start: the tests still run and pass, uncached."""
    wf = _github()
    steps = {s["id"]: s for s in wf["jobs"]["test"]["steps"] if "id" in s}
    temp = os.path.join(tmpbase, "temp")
    os.makedirs(temp)
    work = _ci_project(tmpbase)
    ran_log = os.path.join(tmpbase, "ran.log")
    fakebin = os.path.join(tmpbase, "bin")
    os.makedirs(fakebin)
    # A tcached that fails at once, beside the real tcache.
    with open(os.path.join(fakebin, "tcached"), "w") as f:
        f.write("#!/bin/sh\necho 'tcached: cannot start' >&2\nexit 1\n")
    os.chmod(os.path.join(fakebin, "tcached"), 0o755)
    os.symlink(TCACHE, os.path.join(fakebin, "tcache"))
    genv = os.path.join(temp, "github_env")
    open(genv, "w").close()
    env = clean_env(HOME=tmpbase, RUNNER_TEMP=temp, GITHUB_ENV=genv,
                    GITHUB_PATH=os.path.join(temp, "p"), RAN_LOG=ran_log,
                    GITHUB_EVENT_NAME="push",
                    PATH=fakebin + os.pathsep + os.environ["PATH"])
    ci = FakeCI(tmpbase)
    shell = ["bash", "--noprofile", "--norc", "-eo", "pipefail"]
    rc, _ = ci.sh(steps["tcache-start"]["run"], env, work, shell)
    assert rc == 0, "\n".join(ci.log)
    with open(genv) as f:
        env.update(line.split("=", 1) for line in f.read().splitlines())
    rc, _ = ci.sh(steps["tests"]["run"], env, work, shell)
    assert rc == 0, "\n".join(ci.log)
    assert _ran(ran_log) == ["a", "b"]
    rc, _ = ci.sh(steps["tcache-stop"]["run"], env, work, shell)
    assert rc == 0, "\n".join(ci.log)


def _gitlab():
    with open(os.path.join(CI, "gitlab-ci.yml")) as f:
        return _yaml().safe_load(f)


def _gl_job(doc, name):
    """A job with `extends` resolved as GitLab does (hashes merged deeply,
    everything else replaced)."""
    def merge(a, b):
        out = dict(a)
        for k, v in b.items():
            out[k] = merge(out[k], v) if isinstance(v, dict) and \
                isinstance(out.get(k), dict) else v
        return out
    job = doc[name]
    if "extends" in job:
        job = merge(_gl_job(doc, job["extends"]), job)
    return {k: v for k, v in job.items() if k != "extends"}


def _gl_vars(doc, overrides):
    """The global variables, each expanded with those before it."""
    out = {}
    for k, v in doc["variables"].items():
        v = overrides.get(k, str(v))
        out[k] = re.sub(r"\$\{?(\w+)\}?", lambda m: out.get(m.group(1),
                                                            m.group(0)), v)
    return out


def test_gitlab_ci_example(cibase):
    tmpbase = cibase
    why = _ci_problem()
    if why:
        pytest.skip(why)
    doc = _gitlab()
    test, mr = _gl_job(doc, "test"), _gl_job(doc, "test-mr")
    for job in (test, mr):
        assert job["cache"]["key"] == "tcache-db"
        for p in job["cache"]["paths"]:
            assert not os.path.isabs(p) and ".." not in p, \
                "GitLab caches only paths in the project directory"
    assert test["cache"]["policy"] == "pull-push"
    assert mr["cache"]["policy"] == "pull"
    assert "unprotect" not in test["cache"]
    assert mr["rules"] == [{"if": '$CI_PIPELINE_SOURCE == "merge_request_event"'}]
    assert mr["script"] == test["script"]

    home = os.path.join(tmpbase, "home")
    os.makedirs(home)
    work = _ci_project(tmpbase)
    ran_log = os.path.join(tmpbase, "ran.log")
    store = os.path.join(tmpbase, "gitlab-cache")
    ci = FakeCI(tmpbase)
    log = lambda: "\n".join(ci.log)    # noqa: E731

    def run(n, source, job):
        # The project checkout with the cache unpacked into it.
        for p in job["cache"]["paths"]:
            shutil.rmtree(os.path.join(work, p), ignore_errors=True)
            if os.path.isdir(os.path.join(store, p)):
                shutil.copytree(os.path.join(store, p), os.path.join(work, p))
        v = _gl_vars(doc, {"TCACHE_GIT": "file://" + REPO,
                           "TCACHE_DIR": os.path.join(tmpbase, "opt")})
        env = clean_env(HOME=home, CI_PROJECT_DIR=work, RAN_LOG=ran_log,
                        CI_PIPELINE_SOURCE=source)
        env.update(v)
        # Not run here: apt-get (the packages are this machine's); the
        # clone and the build run in the first job only.
        skip = ("apt-get ",) if n == 1 else ("apt-get ", "git clone ", "make ")
        lines = [x for x in job["before_script"] + job["script"]
                 if not x.startswith(skip)]
        rc, out = ci.sh("\n".join(lines) + "\n", env, work, ["bash", "-e"])
        rc2, _ = ci.sh("\n".join(job["after_script"]) + "\n", env, work,
                       ["bash", "-e"])
        assert rc2 == 0, log()
        if job["cache"]["policy"] == "pull-push":
            for p in job["cache"]["paths"]:
                shutil.rmtree(os.path.join(store, p), ignore_errors=True)
                shutil.copytree(os.path.join(work, p), os.path.join(store, p))
        return rc, out

    rc, out = run(1, "push", test)
    assert rc == 0, log()
    assert _ran(ran_log) == ["a", "b"]
    rc, out = run(2, "push", test)
    assert rc == 0 and _ran(ran_log) == [], log()
    with open(os.path.join(work, "tests", "a.sh"), "a") as f:
        f.write("# reviewed\n")
    rc, out = run(3, "merge_request_event", mr)
    assert rc == 0 and _ran(ran_log) == ["a"], log()
    assert "tests/a.sh not recorded" in out, log()
    rc, out = run(4, "merge_request_event", mr)
    assert rc == 0 and _ran(ran_log) == ["a"], log()
    rc, out = run(5, "push", test)
    assert rc == 0 and _ran(ran_log) == ["a"], log()
    rc, out = run(6, "push", test)
    assert rc == 0 and _ran(ran_log) == [], log()
