"""Tests of the tcache pytest plugin: pytest runs in subprocesses (pytester's
runpytest_subprocess, never in-process: the plugin installs a process-wide
audit hook) against one real tcached for the session.

$TCACHE_BUILD names the build directory holding tcached and tcache (default:
<repo>/build).  $TCACHE_PYTEST_SRC may name another directory holding a
tcache_pytest package (a scratch copy to check that these tests fail when
the plugin is broken); by default it is the one next to this directory.

Whether a test body really ran is measured independently of the plugin: the
projects under test call ranlog.ran(), which appends the running test's node
id to the file named by $TC_RAN.  ranlog lives outside the rootdir, so it is
no input of any test.
"""

import collections
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

pytest_plugins = ["pytester"]

HERE = os.path.dirname(os.path.abspath(__file__))
PLUGIN_SRC = os.path.abspath(os.environ.get("TCACHE_PYTEST_SRC") or
                             os.path.dirname(HERE))
REPO = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
BUILD = os.path.abspath(os.environ.get("TCACHE_BUILD") or
                        os.path.join(REPO, "build"))
TCACHED = os.path.join(BUILD, "tcached")
TCACHE = os.path.join(BUILD, "tcache")

# The key derivation is checked in this process; proto.py has no audit hook.
if PLUGIN_SRC not in sys.path:
    sys.path.insert(0, PLUGIN_SRC)

RUN_TIMEOUT = 60

RANLOG = '''\
import os


def ran():
    """Notes that the current test's body (or fixture) really ran."""
    cur = os.environ.get("PYTEST_CURRENT_TEST", "?")
    nodeid = cur.rsplit(" (", 1)[0]
    with open(os.environ["TC_RAN"], "a") as f:
        f.write(nodeid + "\\n")
'''


def short_tmpdir(prefix):
    """A fresh 0700 directory with a short path (sun_path is ~108 bytes)."""
    d = tempfile.mkdtemp(prefix=prefix, dir="/tmp")
    os.chmod(d, 0o700)
    return d


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("TCACHE_") and not k.startswith("LISTEN_")}
    env["TCACHE_AUTOSTART"] = "0"
    env.update(extra or {})
    return env


class Daemon:
    def __init__(self):
        for exe in (TCACHED, TCACHE):
            if not os.access(exe, os.X_OK):
                pytest.fail("%s is missing: run make (or set TCACHE_BUILD)"
                            % exe)
        self.dir = short_tmpdir("tcp")
        self.sock = os.path.join(self.dir, "s")
        self.db = os.path.join(self.dir, "db")
        self.log = os.path.join(self.dir, "log")
        with open(self.log, "ab") as logf:
            self.proc = subprocess.Popen(
                [TCACHED, "--socket", self.sock, "--db", self.db],
                stdout=logf, stderr=subprocess.STDOUT, env=clean_env(),
                start_new_session=True)
        self._wait_ready()

    def _wait_ready(self):
        end = time.monotonic() + 10
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                pytest.fail("tcached exited: %s" % self.log_text())
            if os.path.exists(self.sock) and \
                    self.cli("status", check=False).returncode == 0:
                return
            time.sleep(0.02)
        pytest.fail("tcached never answered: %s" % self.log_text())

    def log_text(self):
        with open(self.log, errors="replace") as f:
            return f.read()[-4000:]

    def cli(self, *args, check=True):
        cp = subprocess.run([TCACHE] + list(args),
                            env=clean_env({"TCACHE_SOCKET": self.sock}),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            universal_newlines=True, timeout=20)
        if check and cp.returncode != 0:
            pytest.fail("tcache %s: rc %d: %s%s" % (
                " ".join(args), cp.returncode, cp.stdout, cp.stderr))
        return cp

    def entries(self):
        """{test id: [entry dicts]} from tcache ls --json."""
        out = collections.defaultdict(list)
        cp = self.cli("ls", "--json")
        for e in json.loads(cp.stdout)["entries"]:
            out[e["test"]].append(e)
        return out

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def daemon():
    d = Daemon()
    yield d
    d.stop()


# --- running pytest on a project and reading what happened ---

_V_SERIAL = re.compile(r"^(\S+::\S+) (PASSED|FAILED|ERROR|SKIPPED|XFAIL|"
                       r"XPASS)( \(cached\))?")
_V_XDIST = re.compile(r"^\[gw\d+\] \[\s*\d+%\] (PASSED|FAILED|ERROR|SKIPPED|"
                      r"XFAIL|XPASS)( \(cached\))? (\S+::\S+)")
_CACHED = re.compile(r"\((\d+) cached, [^)]* saved\)")


class Run:
    """One pytest run: its RunResult, the outcome counts, the -v statuses,
    and what really ran (from the ran log)."""

    def __init__(self, result, ran):
        self.result = result
        self.ret = int(result.ret)
        self.text = "\n".join(result.outlines + result.errlines)
        try:
            counts = result.parseoutcomes()
        except ValueError:
            counts = {}
        self.cached_count = counts.pop("cached", 0)
        self.outcomes = counts
        self.statuses = []          # (nodeid, word, cached) in order
        for line in result.outlines:
            m = _V_SERIAL.match(line)
            if m:
                self.statuses.append((m.group(1), m.group(2),
                                      bool(m.group(3))))
                continue
            m = _V_XDIST.match(line)
            if m:
                self.statuses.append((m.group(3), m.group(1),
                                      bool(m.group(2))))
        m = _CACHED.search(result.outlines[-1] if result.outlines else "")
        self.summary_cached = int(m.group(1)) if m else 0
        self.ran_counts = collections.Counter(ran)
        self.ran = set(ran)

    @property
    def cached(self):
        """Node ids the plugin reported as cached."""
        return {n for n, _, c in self.statuses if c}

    @property
    def ids(self):
        return {n for n, _, _ in self.statuses}

    def status_set(self):
        return collections.Counter((n, w) for n, w, _ in self.statuses)

    def __repr__(self):
        return "<Run ret=%s outcomes=%s cached=%s ran=%s>\n%s" % (
            self.ret, self.outcomes, sorted(self.cached), sorted(self.ran),
            self.text[-6000:])


class Harness:
    def __init__(self, pytester, daemon, tmp_path, monkeypatch):
        self.pytester = pytester
        self.daemon = daemon
        self.monkeypatch = monkeypatch
        self.root = pytester.path
        self.ranlog = tmp_path / "ran.log"
        self.helpers = tmp_path / "helpers"
        self.helpers.mkdir()
        (self.helpers / "ranlog.py").write_text(RANLOG)
        self.site = tmp_path / "site"
        self.site.mkdir()
        for name in list(os.environ):
            if name.startswith(("TCACHE_", "PYTEST_XDIST", "TC_")) or \
                    name in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS"):
                monkeypatch.delenv(name)
        monkeypatch.setenv("TCACHE_SOCKET", daemon.sock)
        monkeypatch.setenv("TCACHE_AUTOSTART", "0")
        monkeypatch.setenv("TC_RAN", str(self.ranlog))
        # The plugin's memo of digests, of this test's project only (not
        # one file per pytester directory in the user's cache).
        self.memo_dir = tmp_path / "memo"
        monkeypatch.setenv("TCACHE_MEMO_DIR", str(self.memo_dir))
        # Stale bytecode after an edit of the same size within the same
        # second would run the old code: no .pyc at all.
        monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
        monkeypatch.setenv("PYTHONPATH", os.pathsep.join(
            [PLUGIN_SRC, str(self.helpers), str(self.site)]))
        daemon.cli("invalidate", "--all")

    def write(self, files):
        """files: {relative path: text (dedented)}."""
        for rel, text in files.items():
            p = self.root / rel
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_text(textwrap.dedent(text))

    def read(self, rel):
        return (self.root / rel).read_text()

    def edit(self, rel, old, new):
        text = self.read(rel)
        assert old in text, (rel, old)
        (self.root / rel).write_text(text.replace(old, new, 1))

    def run(self, *args, tcache=True, plugin=True, base=True):
        argv = []
        if plugin:
            argv += ["-p", "tcache_pytest.plugin"]
        if base:
            argv += ["-p", "no:cacheprovider", "-v"]
        if tcache:
            argv.append("--tcache")
        argv += [str(a) for a in args]
        if self.ranlog.exists():
            self.ranlog.unlink()
        result = self.pytester.runpytest_subprocess(*argv,
                                                    timeout=RUN_TIMEOUT)
        ran = []
        if self.ranlog.exists():
            ran = self.ranlog.read_text().split()
        return Run(result, ran)

    def plain(self, *args):
        """pytest without the plugin at all."""
        return self.run(*args, tcache=False, plugin=False)


@pytest.fixture
def tc(pytester, daemon, tmp_path, monkeypatch):
    return Harness(pytester, daemon, tmp_path, monkeypatch)


# --- projects under test ---

OUTCOMES_PROJECT = {
    "pytest.ini": """\
        [pytest]
        """,
    "mod.py": '''\
        def double(x):
            """
            >>> from ranlog import ran; ran()
            >>> double(2)
            4
            """
            return 2 * x


        def bad():
            """
            >>> from ranlog import ran; ran()
            >>> bad()
            2
            """
            return 1
        ''',
    "test_outcomes.py": '''\
        import unittest

        import pytest
        from ranlog import ran

        import mod


        def test_pass():
            ran()
            assert mod.double(1) == 2


        def test_fail():
            ran()
            assert 0


        def test_skip():
            ran()
            pytest.skip("dynamic")


        @pytest.mark.skip(reason="static")
        def test_skip_mark():
            ran()


        @pytest.mark.xfail(reason="known")
        def test_xfail():
            ran()
            assert 0


        @pytest.mark.xfail(reason="unknown")
        def test_xpass():
            ran()


        @pytest.mark.xfail(reason="strict", strict=True)
        def test_xpass_strict():
            ran()


        @pytest.mark.parametrize("x", [1, 2, 3])
        def test_param(x):
            ran()
            assert x != 3


        class TestClass:
            def test_m(self):
                ran()

            def test_n(self):
                ran()
                assert False


        class TestUnit(unittest.TestCase):
            def test_u(self):
                ran()

            def test_u_fail(self):
                ran()
                self.assertEqual(1, 2)

            @unittest.skip("unit skip")
            def test_u_skip(self):
                ran()


        @pytest.fixture
        def broken():
            ran()
            raise RuntimeError("setup fails")


        def test_setup_error(broken):
            ran()


        @pytest.fixture
        def bad_teardown():
            yield
            raise RuntimeError("teardown fails")


        def test_teardown_error(bad_teardown):
            ran()


        def helper():
            """
            >>> from ranlog import ran; ran()
            >>> helper()
            3
            """
            return 3
        ''',
}

# Tests of OUTCOMES_PROJECT (with --doctest-modules) that pass, and so are
# the only ones a warm run may skip.
OUTCOMES_PASSING = {
    "mod.py::mod.double",
    "test_outcomes.py::test_outcomes.helper",
    "test_outcomes.py::test_pass",
    "test_outcomes.py::test_param[1]",
    "test_outcomes.py::test_param[2]",
    "test_outcomes.py::TestClass::test_m",
    "test_outcomes.py::TestUnit::test_u",
}


@pytest.fixture
def outcomes_project(tc):
    tc.write(OUTCOMES_PROJECT)
    return tc


GRAPH_PROJECT = {
    "pytest.ini": """\
        [pytest]
        markers =
            slow: nothing
        """,
    "conftest.py": """\
        import pytest


        @pytest.fixture
        def root_fix():
            return 1
        """,
    "pkg/__init__.py": "",
    "pkg/a.py": """\
        from pkg import b


        def fa():
            return b.fb()
        """,
    "pkg/b.py": """\
        from pkg.c import fc


        def fb():
            return fc()
        """,
    "pkg/c.py": """\
        def fc():
            return 1
        """,
    "pkg/d.py": """\
        def fd():
            return 4
        """,
    "pkg/lazy.py": """\
        def fl():
            return 5
        """,
    "pkg/slazy.py": """\
        def fs():
            return 6
        """,
    "data/runtime.txt": "runtime 1\n",
    "data/import.txt": "import 1\n",
    "tests/conftest.py": """\
        import pytest


        @pytest.fixture
        def mid_fix():
            return 2
        """,
    "tests/test_t.py": """\
        from ranlog import ran

        from pkg.a import fa


        def test_t1():
            ran()
            assert fa() == 1


        def test_t2():
            ran()
        """,
    "tests/test_tt.py": """\
        from ranlog import ran

        import pkg.a


        def test_tt():
            ran()
            assert pkg.a.fa() == 1
        """,
    "tests/test_direct.py": """\
        from ranlog import ran

        from pkg import d


        def test_d1():
            ran()
            assert d.fd() == 4


        def test_d2(mid_fix):
            ran()
        """,
    "tests/test_data.py": """\
        import os

        from ranlog import ran

        ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


        def test_reads():
            ran()
            with open(os.path.join(ROOT, "data", "runtime.txt")) as f:
                assert f.read().startswith("runtime")


        def test_noread():
            ran()
        """,
    "tests/test_importdata.py": """\
        import os

        from ranlog import ran

        ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        with open(os.path.join(ROOT, "data", "import.txt")) as f:
            DATA = f.read()


        def test_i1():
            ran()
            assert DATA.startswith("import")


        def test_i2():
            ran()
        """,
    "tests/test_lazy.py": """\
        import importlib

        from ranlog import ran


        def test_lazy_one():
            ran()
            m = importlib.import_module("pkg." + "lazy")
            assert m.fl() == 5


        def test_lazy_two():
            ran()
            m = importlib.import_module("pkg." + "lazy")
            assert m.fl() == 5


        def test_nolazy():
            ran()
        """,
    "tests/test_static_lazy.py": """\
        from ranlog import ran


        def test_sl1():
            ran()
            import pkg.slazy
            assert pkg.slazy.fs() == 6


        def test_sl2():
            ran()
        """,
    "tests/test_env.py": """\
        import os

        from ranlog import ran


        def test_env():
            ran()
            os.environ.get("TC_NAMED")
            os.environ.get("TC_OTHER")
        """,
    "tests/sub/test_deep.py": """\
        from ranlog import ran


        def test_deep(mid_fix, root_fix):
            ran()
            assert mid_fix + root_fix == 3
        """,
    "other/test_other.py": """\
        from ranlog import ran


        def test_o(root_fix):
            ran()
            assert root_fix == 1
        """,
}

GRAPH_IDS = {
    "tests/test_t.py::test_t1", "tests/test_t.py::test_t2",
    "tests/test_tt.py::test_tt",
    "tests/test_direct.py::test_d1", "tests/test_direct.py::test_d2",
    "tests/test_data.py::test_reads", "tests/test_data.py::test_noread",
    "tests/test_importdata.py::test_i1", "tests/test_importdata.py::test_i2",
    "tests/test_lazy.py::test_lazy_one", "tests/test_lazy.py::test_lazy_two",
    "tests/test_lazy.py::test_nolazy",
    "tests/test_static_lazy.py::test_sl1",
    "tests/test_static_lazy.py::test_sl2",
    "tests/test_env.py::test_env",
    "tests/sub/test_deep.py::test_deep",
    "other/test_other.py::test_o",
}

DIST_NAME = "tcfakedist"


def write_dist(site, version):
    """A fake installed distribution that importlib.metadata finds."""
    for old in site.glob(DIST_NAME + "-*.dist-info"):
        shutil.rmtree(str(old))
    d = site / ("%s-%s.dist-info" % (DIST_NAME, version))
    d.mkdir()
    (d / "METADATA").write_text("Metadata-Version: 2.1\nName: %s\n"
                                "Version: %s\n" % (DIST_NAME, version))


@pytest.fixture
def graph_project(tc):
    tc.write(GRAPH_PROJECT)
    write_dist(tc.site, "1.0")
    return tc


class HangingServer:
    """A Unix socket server that accepts connections and never answers."""

    def __init__(self):
        import threading
        self.dir = short_tmpdir("tch")
        self.path = os.path.join(self.dir, "s")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(16)
        self.conns = []
        self.stopping = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)     # kept open, never read or answered

    def close(self):
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        for c in self.conns:
            c.close()
        self.thread.join(5)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def hanging_server():
    s = HangingServer()
    yield s
    s.close()
