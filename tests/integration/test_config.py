"""tcached's configuration file (tcached.conf(5)): every flag is a key,
errors name the file and line and start nothing, and flags beat the
environment, which beats the file, which beats the defaults."""
import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import TCACHED, run_cli

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, "contrib", "tcached.conf.example")
PAGE = os.path.join(ROOT, "man", "tcached.conf.5")

# A valid value for each key; a new flag in `tcached --help` without one
# here fails test_every_flag_is_a_key.
SAMPLES = {
    "socket": "{base}/run/s.sock",
    "db": "{base}/state/t.db",
    "ttl": "90m",
    "max-entries": "1000",
    "idle-timeout": "30s",
    "max-clients": "64",
    "allow-uid": "0",
    "allow-gid": "0",
    "readonly-uid": "root",
    "readonly-gid": "root",
    "sync": "full",
    "log": "{base}/tcached.log",
}
NOT_KEYS = {"config", "help", "version"}


def help_flags():
    out = subprocess.run([TCACHED, "--help"], stdout=subprocess.PIPE,
                         universal_newlines=True, check=True).stdout
    return set(re.findall(r"^  --([a-z-]+)", out, re.M))


class Home:
    """A HOME and XDG_CONFIG_HOME of the test's own, no TCACHE_*."""

    def __init__(self, base):
        self.base = str(base)
        self.home = os.path.join(self.base, "home")
        self.xdg = os.path.join(self.base, "xdg")
        os.makedirs(self.home, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("TCACHE_", "LISTEN_", "XDG_"))}
        self.env.update(HOME=self.home, XDG_CONFIG_HOME=self.xdg,
                        XDG_RUNTIME_DIR=os.path.join(self.base, "rt"))
        self.procs = []

    def conf(self, text, path=None):
        path = path or os.path.join(self.xdg, "tcache", "tcached.conf")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text.format(base=self.base))
        return path

    def fail(self, *args, env=None):
        """Runs tcached expecting a usage error; returns its stderr."""
        cp = subprocess.run([TCACHED] + list(args), env=dict(self.env,
                            **(env or {})), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True,
                            timeout=10)
        assert cp.returncode == 2, (cp.returncode, cp.stderr)
        assert cp.stdout == ""
        return cp.stderr

    def start(self, *args, env=None, sock=None):
        """Starts tcached; returns (its status as JSON, its log text)."""
        env = dict(self.env, **(env or {}))
        sock = sock or os.path.join(self.base, "rt", "tcache",
                                    "tcached.sock")
        log = open(os.path.join(self.base, "stderr"), "w+")
        p = subprocess.Popen([TCACHED] + list(args), env=env, stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(p)
        end = time.monotonic() + 10
        while True:
            assert p.poll() is None, open(log.name).read()
            assert time.monotonic() < end, open(log.name).read()
            if os.path.exists(sock):
                r = run_cli(["status", "--json"], sock)
                if r.rc == 0:
                    break
            time.sleep(0.02)
        return json.loads(r.stdout), p

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                assert p.wait(10) == 0
        self.procs = []


@pytest.fixture
def home(tmp_path):
    h = Home(tmp_path)
    yield h
    for p in h.procs:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_every_flag_is_a_key(home):
    """A file holding every key of `tcached --help` is taken whole, and each
    value is in force: the socket, the database, the TTL, the bound, the log."""
    keys = help_flags() - NOT_KEYS
    assert keys, "tcached --help lists no options"
    missing = keys - set(SAMPLES)
    assert not missing, "no sample value for %s" % sorted(missing)
    path = home.conf("# every key\n" + "".join(
        "%s = %s\n" % (k, SAMPLES[k]) for k in sorted(keys)))
    st, _ = home.start(sock=os.path.join(home.base, "run", "s.sock"))
    assert st["socket"] == os.path.join(home.base, "run", "s.sock")
    assert st["db"] == os.path.join(home.base, "state", "t.db")
    assert st["ttl_ms"] == 90 * 60 * 1000
    assert st["max_entries"] == 1000
    home.stop()
    with open(os.path.join(home.base, "tcached.log")) as f:
        log = f.read()
    assert "settings from %s" % path in log
    assert "listening on %s/run/s.sock" % home.base in log
    assert "also serving uid 0" in log and "read-only for uid 0" in log


def test_every_key_is_a_flag(home):
    """And the other way: a key the file takes is a flag of --help; the
    daemon refuses a key that is not."""
    for k in SAMPLES:
        assert k in help_flags(), k
    path = home.conf("config = /etc/x\n")
    err = home.fail()
    assert "%s:1: unknown key 'config'" % path in err


def test_values_are_checked_like_flags(home):
    """A key's value gets the check its flag gets, with the file and line."""
    cases = [
        ("ttl = soon\n", "ttl = soon: not a duration"),
        ("ttl = 0\n", "ttl = 0: not a duration"),
        ("idle-timeout = x\n", "idle-timeout = x: not a duration"),
        ("max-entries = -1\n", "max-entries = -1: not a number"),
        ("max-clients = 0\n", "max-clients = 0: not in 1..1000000"),
        ("sync = fast\n", "sync = fast: must be normal or full"),
        ("allow-uid = no-such-user-here\n",
         "allow-uid = no-such-user-here: no such user"),
        ("readonly-gid = no-such-group-here\n",
         "readonly-gid = no-such-group-here: no such group"),
        ("db = state/t.db\n", "db = state/t.db: not an absolute path"),
        ("log =\n", "log = : no value"),
    ]
    for text, msg in cases:
        path = home.conf("# a comment\n\n" + text)
        err = home.fail()
        assert "tcached: %s:3: %s" % (path, msg) in err, (text, err)


def test_syntax_errors_name_the_line(home):
    cases = [
        ("ttl 24h\n", "expected `key = value`"),
        ("TTL = 24h\n", "unknown key 'TTL'"),
        ("max_entries = 5\n", "unknown key 'max_entries'"),
        ("--ttl = 24h\n", "unknown key '--ttl'"),
        ("ttl = 1h\nttl = 2h\n", "ttl = 2h: already set on line 2"),
    ]
    for text, msg in cases:
        path = home.conf("sync = normal\n" + text)
        err = home.fail()
        line = 1 + text.count("\n")
        assert "%s:%d: %s" % (path, line, msg) in err, (text, err)


def test_bad_files(home, tmp_path):
    """A --config that cannot be read is an error; so are a directory, a
    binary file and a huge one.  None of them starts a daemon or makes a
    database."""
    err = home.fail("--config", str(tmp_path / "nope.conf"))
    assert "cannot read %s: No such file" % (tmp_path / "nope.conf") in err
    err = home.fail("--config", str(tmp_path))
    assert "Is a directory" in err
    with open(tmp_path / "bin.conf", "wb") as f:
        f.write(b"ttl = 1h\n\0\x01\x02")
    assert "not a text file" in home.fail("--config", str(tmp_path / "bin.conf"))
    with open(tmp_path / "big.conf", "w") as f:
        f.write("# padding\n" * 8000)
    assert "larger than 64 KiB" in home.fail("--config",
                                              str(tmp_path / "big.conf"))
    assert "an empty path" in home.fail("--config", "")
    os.chmod(home.conf("ttl = 1h\n"), 0)
    if os.geteuid() != 0:
        assert "Permission denied" in home.fail()
    assert not os.path.exists(os.path.join(home.base, "rt", "tcache"))
    assert not os.path.exists(os.path.join(home.home, ".local"))


def test_layout_comments_blanks_crlf_home(home):
    """Blank lines, comments, spaces around '=', CRLF endings, a path under
    ~/, and no final newline."""
    home.conf("\r\n   # indented comment\r\n\tttl=3h   \r\n"
              "db   =   ~/dbs/t.db\r\n  max-entries = 7")
    st, _ = home.start()
    assert st["ttl_ms"] == 3 * 3600 * 1000
    assert st["db"] == os.path.join(home.home, "dbs", "t.db")
    assert st["max_entries"] == 7


def test_default_places(home):
    """$XDG_CONFIG_HOME/tcache/tcached.conf, else ~/.config/tcache/; none
    at all is fine."""
    st, _ = home.start()
    assert st["ttl_ms"] == 86400000          # no file: defaults
    home.stop()
    home.conf("ttl = 2h\n")
    st, _ = home.start()
    assert st["ttl_ms"] == 2 * 3600 * 1000
    home.stop()
    home.conf("ttl = 5h\n", os.path.join(home.home, ".config", "tcache",
                                         "tcached.conf"))
    st, _ = home.start(env={"XDG_CONFIG_HOME": ""})
    assert st["ttl_ms"] == 5 * 3600 * 1000
    home.stop()
    # --config names another file, and the default one is then not read.
    other = home.conf("max-entries = 3\n", os.path.join(home.base, "o.conf"))
    st, _ = home.start("--config", other)
    assert st["ttl_ms"] == 86400000 and st["max_entries"] == 3


def test_precedence(home):
    """Flags beat $TCACHE_DB / $TCACHE_SOCKET, which beat the file, which
    beats the defaults."""
    b = home.base
    home.conf("db = {base}/file.db\nsocket = {base}/file.sock\nttl = 2h\n"
              "allow-uid = 0\n")
    st, _ = home.start(sock=b + "/file.sock")
    assert (st["db"], st["socket"]) == (b + "/file.db", b + "/file.sock")
    home.stop()
    env = {"TCACHE_DB": b + "/env.db", "TCACHE_SOCKET": b + "/env.sock"}
    st, _ = home.start(env=env, sock=b + "/env.sock")
    assert (st["db"], st["socket"]) == (b + "/env.db", b + "/env.sock")
    assert st["ttl_ms"] == 2 * 3600 * 1000
    home.stop()
    st, _ = home.start("--db", b + "/flag.db", "--socket", b + "/flag.sock",
                       "--ttl", "3h", env=env, sock=b + "/flag.sock")
    assert (st["db"], st["socket"]) == (b + "/flag.db", b + "/flag.sock")
    assert st["ttl_ms"] == 3 * 3600 * 1000
    home.stop()


def test_flags_replace_the_files_lists(home, tmp_path):
    """A repeatable key's flags replace the file's list, not add to it."""
    log = str(tmp_path / "d.log")
    home.conf("allow-uid = 0\nallow-uid = 1\nlog = %s\n" % log)
    home.start()
    home.stop()
    with open(log) as f:
        assert "also serving uid 0,1" in f.read()
    os.unlink(log)
    home.start("--allow-uid", "2")
    home.stop()
    with open(log) as f:
        text = f.read()
    assert "also serving uid 2" in text and "uid 0" not in text


def test_autostarted_daemon_reads_the_file(home):
    """tcache starting tcached on demand: the file's database is used."""
    home.conf("db = {base}/auto.db\n")
    sock = os.path.join(home.base, "rt", "tcache", "tcached.sock")
    env = dict(home.env, TCACHE_AUTOSTART="1",
               PATH=os.path.dirname(TCACHED) + ":" + os.environ["PATH"])
    cp = subprocess.run([os.path.join(os.path.dirname(TCACHED), "tcache"),
                         "status", "--json"], env=env, timeout=20,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                        universal_newlines=True)
    assert cp.returncode == 0, cp.stderr
    st = json.loads(cp.stdout)
    os.kill(st["pid"], signal.SIGTERM)
    assert st["db"] == home.base + "/auto.db"
    assert st["socket"] == sock


def test_example_file_is_valid_and_complete(home):
    """contrib/tcached.conf.example names every key, and with its settings
    uncommented it is a valid file; tcached.conf(5) documents every key."""
    with open(EXAMPLE) as f:
        text = f.read()
    keys = help_flags() - NOT_KEYS
    shown = set(re.findall(r"^#\s*([a-z-]+)\s*=", text, re.M))
    assert shown == keys, shown ^ keys
    with open(PAGE) as f:
        page = f.read()
    documented = set(re.findall(r"^\.It Cm ([a-z-]+)", page, re.M))
    assert documented == keys, documented ^ keys
    lines = []
    for line in text.splitlines():
        m = re.match(r"^#\s*([a-z-]+)\s*=\s*(.*)$", line)
        if m and m.group(1) in keys:
            value = SAMPLES[m.group(1)].format(base=home.base) \
                if m.group(1) in ("socket", "db", "log") else m.group(2)
            line = "%s = %s" % (m.group(1), value)
        lines.append(line)
    home.conf("\n".join(lines) + "\n")
    st, _ = home.start(sock=os.path.join(home.base, "run", "s.sock"))
    assert st["db"] == os.path.join(home.base, "state", "t.db")
