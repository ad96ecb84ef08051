"""Interface inputs (kind 3): declared inputs whose digest is a Python
file's interface digest.  The daemon stores and matches them like any
declared file; `tcache explain` asks $TCACHE_PYTHON -m tcache_pytest.interface
for their digests of now and tells an interface change from a body change.

The helper is fake_interface.py (a fixed rule of its own), so these tests do
not depend on the plugin; test_real_module runs the plugin's module when it
is there.
"""

import json
import os
import stat
import subprocess
import sys

import pytest

from conftest import (PASS, E_MALFORMED, ProtoError, RECORD, blake,
                      enc_record, u32)
import fake_interface

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
PLUGIN = os.path.join(REPO, "contrib", "pytest")
REAL_MODULE = os.path.join(PLUGIN, "tcache_pytest", "interface.py")

FILE, FOUND, ENV, INTERFACE = 0, 1, 2, 3
TEST = "tests/test_m.py::test_f"

MOD = "import os\nX = 1\n\n\ndef f():\n    return 1\n"


def file_digest(path):
    try:
        with open(path, "rb") as f:
            return blake(f.read())
    except FileNotFoundError:
        return bytes(32)


class Checkout:
    """pkg/mod.py (its interface declared, its body discovered),
    pkg/other.py (interface only), data/x.txt (discovered only),
    tests/test_m.py (a declared file), and the variable FOO."""

    def __init__(self, base):
        self.root = os.path.join(base, "co")
        for d in ("pkg", "data", "tests"):
            os.makedirs(os.path.join(self.root, d))
        self.write("pkg/mod.py", MOD)
        self.write("pkg/other.py", "Y = 2\n")
        self.write("data/x.txt", "x\n")
        self.write("tests/test_m.py", "from pkg.mod import f\n")

    def path(self, rel):
        return os.path.join(self.root, rel)

    def write(self, rel, text):
        with open(self.path(rel), "w") as f:
            f.write(text)

    def edit(self, rel, old, new):
        with open(self.path(rel)) as f:
            text = f.read()
        assert old in text
        self.write(rel, text.replace(old, new))


def fake_python(base):
    """A TCACHE_PYTHON that runs fake_interface.py."""
    wrapper = os.path.join(base, "fakepy")
    with open(wrapper, "w") as f:
        f.write('#!/bin/sh\nexec %s %s "$@"\n'
                % (sys.executable, os.path.join(HERE, "fake_interface.py")))
    os.chmod(wrapper, stat.S_IRWXU)
    return wrapper


def record(daemon, co, inputs, test=TEST, key=None):
    key = key or blake(test.encode())
    with daemon.raw() as c:
        assert c.record([enc_record(key, test, root=co.root,
                                    inputs=inputs)]) == [0]
    return key


def standard_inputs(co, ifc=fake_interface.interface_digest):
    return [
        (INTERFACE, "pkg/mod.py", ifc(co.path("pkg/mod.py"))),
        (FOUND, "pkg/mod.py", file_digest(co.path("pkg/mod.py"))),
        (INTERFACE, "pkg/other.py", ifc(co.path("pkg/other.py"))),
        (FOUND, "data/x.txt", file_digest(co.path("data/x.txt"))),
        (FILE, "tests/test_m.py", file_digest(co.path("tests/test_m.py"))),
        (ENV, "FOO", blake(b"1")),
    ]


@pytest.fixture
def co(tmpbase):
    return Checkout(tmpbase)


@pytest.fixture
def setup(daemon, co, tmpbase):
    """The standard entry recorded; returns explain(*args, env=...)."""
    record(daemon, co, standard_inputs(co))
    log = os.path.join(tmpbase, "ifc.log")
    py = fake_python(tmpbase)

    def explain(*args, env=None):
        e = {"FOO": "1", "TCACHE_PYTHON": py, "FAKE_IFC_LOG": log}
        e.update(env or {})
        return daemon.cli("explain", "--test", TEST, *args, env=e, cwd="/")

    explain.log = log
    return explain


def runs(log):
    """The number of paths of each run of the fake helper."""
    try:
        with open(log) as f:
            return [int(l) for l in f]
    except FileNotFoundError:
        return []


def changes(r):
    d = json.loads(r.stdout)
    return sorted((c["change"], c["kind"], c["name"]) for c in d["changes"])


# --- the daemon: stored, looked up, matched by path ---

def test_record_lookup_invalidate(daemon, co):
    ifc = fake_interface.interface_digest(co.path("pkg/mod.py"))
    key = record(daemon, co, [(INTERFACE, "pkg/mod.py", ifc)])
    other = record(daemon, co, [(FILE, "data/x.txt", bytes(32))],
                   test="other", key=blake(b"other"))
    with daemon.raw() as c:
        hit = c.lookup([key])[0]
        assert hit is not None and hit["outcome"] == PASS
        assert hit["inputs"] == []          # declared: never re-checked
        e, ins = c.explain("", TEST)
        assert ins == [{"kind": INTERFACE, "path": "pkg/mod.py",
                        "digest": ifc}]
    r = daemon.cli("ls", "--json", "--path", co.path("pkg/mod.py"))
    assert r.rc == 0, r
    assert [e["test"] for e in json.loads(r.stdout)["entries"]] == [TEST]
    r = daemon.cli("invalidate", "--dry-run", co.path("pkg"))
    assert r.rc == 0 and "1" in r.stdout, r
    r = daemon.cli("invalidate", co.path("pkg/mod.py"))
    assert r.rc == 0, r
    with daemon.raw() as c:
        assert c.lookup([key, other])[0] is None
        assert c.lookup([key, other])[1] is not None


def test_kind_4_refused(daemon, co):
    body = u32(1) + enc_record(blake(b"k4"), "t", root=co.root,
                               inputs=[(4, "pkg/mod.py", bytes(32))])
    with daemon.raw() as c:
        with pytest.raises(ProtoError) as ei:
            c.call(RECORD, body)
        assert ei.value.code == E_MALFORMED
    with daemon.raw() as c:
        assert c.lookup([blake(b"k4")]) == [None]


# --- explain ---

def test_unchanged_one_run(setup, co):
    r = setup()
    assert r.rc == 0, r
    assert "cached pass" in r.stdout, r
    assert "changed:" not in r.stdout and "changed (" not in r.stdout, r
    assert runs(setup.log) == [2]           # both interface inputs, once
    d = json.loads(setup("--json").stdout)
    assert d["changes"] == [] and d["cached_pass"] is True
    assert d["interface_error"] is None


def test_body_change(setup, co):
    co.edit("pkg/mod.py", "return 1", "return 2")
    r = setup()
    assert r.rc == 1, r
    lines = [l for l in r.stdout.splitlines() if "pkg/" in l]
    assert lines == ["changed (body): pkg/mod.py"], r
    assert changes(setup("--json")) == [("body", "discovered", "pkg/mod.py")]


def test_interface_change(setup, co):
    co.edit("pkg/mod.py", "X = 1", "X = 2")
    r = setup()
    assert r.rc == 1, r
    lines = [l for l in r.stdout.splitlines() if "pkg/" in l]
    # One line: the interface change explains the new bytes too.
    assert lines == ["changed (interface): pkg/mod.py"], r
    assert changes(setup("--json")) == [
        ("interface", "interface", "pkg/mod.py")]


def test_interface_only_and_missing(setup, co):
    co.edit("pkg/other.py", "Y = 2", "Y = 3")
    assert changes(setup("--json")) == [
        ("interface", "interface", "pkg/other.py")]
    os.unlink(co.path("pkg/other.py"))      # missing: zeros
    assert changes(setup("--json")) == [
        ("interface", "interface", "pkg/other.py")]
    co.write("pkg/other.py", "Y = 2\n")
    assert setup().rc == 0


def test_content_changes(setup, co):
    co.write("data/x.txt", "y\n")
    co.write("tests/test_m.py", "import pkg\n")
    r = setup()
    assert r.rc == 1, r
    assert "changed (discovered): data/x.txt" in r.stdout.splitlines(), r
    assert "changed: tests/test_m.py" in r.stdout.splitlines(), r
    assert changes(setup("--json")) == [
        ("content", "discovered", "data/x.txt"),
        ("content", "file", "tests/test_m.py")]


def test_body_without_interface_check_is_content(setup, co):
    # A helper that cannot run leaves no ground to call a change a body
    # change: it is reported as the discovered file it is.
    co.edit("pkg/mod.py", "return 1", "return 2")
    r = setup("--json", env={"TCACHE_PYTHON": "/nonexistent/python3"})
    assert changes(r) == [("content", "discovered", "pkg/mod.py")]


FAILURES = [
    ({"TCACHE_PYTHON": "/nonexistent/python3"}, "No such file"),
    ({"FAKE_IFC_MODE": "exit3"}, "broken on purpose"),
    ({"FAKE_IFC_MODE": "upper"}, "unexpected output"),
    ({"FAKE_IFC_MODE": "swap"}, "unexpected output"),
    ({"FAKE_IFC_MODE": "short"}, "unexpected output"),
    ({"FAKE_IFC_MODE": "extra"}, "more output"),
    ({"FAKE_IFC_MODE": "path"}, "unexpected output"),
    # A Python without tcache_pytest (and no PYTHONPATH to it).
    ({"TCACHE_PYTHON": sys.executable, "PYTHONPATH": None},
     "No module named"),
]


@pytest.mark.parametrize("env,why", FAILURES,
                         ids=[w[0].get("FAKE_IFC_MODE", "python")
                              if "FAKE_IFC_MODE" in w[0] else
                              ("missing" if "nonexistent" in
                               w[0]["TCACHE_PYTHON"] else "nomodule")
                              for w in FAILURES])
def test_helper_failure(setup, co, env, why):
    # Nothing changed but what the helper cannot tell: never "unchanged".
    r = setup(env=env)
    assert r.rc == 1, r
    assert "cached pass" not in r.stdout and "no recorded" not in r.stdout
    assert "interface digests not checked" in r.stdout, r
    err = r.stderr.splitlines()
    assert len(err) == 1, r
    assert "TCACHE_PYTHON" in err[0] and "PYTHONPATH" in err[0], r
    assert why in err[0], r
    # Everything else is still reported.
    co.write("tests/test_m.py", "import pkg\n")
    r = setup("--json", env=dict(env, FOO="2"))
    assert r.rc == 1, r
    d = json.loads(r.stdout)
    assert changes(r) == [("changed", "env", "FOO"),
                          ("content", "file", "tests/test_m.py")]
    assert why in d["interface_error"] and "PYTHONPATH" in d["interface_error"]
    assert "interface digests not checked" in d["reasons"]
    assert d["cached_pass"] is False


def test_newline_in_path(daemon, co, tmpbase):
    # The helper prints paths as they are; a newline in one must not
    # shift the lines after it.
    co.write("pkg/we\nird.py", "Z = 1\n")
    ins = standard_inputs(co)
    ins.insert(0, (INTERFACE, "pkg/we\nird.py",
                   fake_interface.interface_digest(co.path("pkg/we\nird.py"))))
    record(daemon, co, ins)
    env = {"FOO": "1", "TCACHE_PYTHON": fake_python(tmpbase)}
    r = daemon.cli("explain", "--test", TEST, env=env, cwd="/")
    assert r.rc == 0, r
    co.write("pkg/we\nird.py", "Z = 2\n")
    r = daemon.cli("explain", "--test", TEST, "--json", env=env, cwd="/")
    assert changes(r) == [("interface", "interface", "pkg/we\nird.py")]


def test_many_interfaces_in_runs(daemon, co, tmpbase):
    # Over 512 KiB of paths: more than one run of the helper, every path
    # checked once, the one edited file found.
    deep = "d" * 250
    os.makedirs(co.path("pkg/" + deep))
    ins = []
    for i in range(2000):
        rel = "pkg/%s/m%04d.py" % (deep, i)
        co.write(rel, "A = %d\n" % i)
        ins.append((INTERFACE, rel,
                    fake_interface.interface_digest(co.path(rel))))
    record(daemon, co, ins)
    co.write("pkg/%s/m1999.py" % deep, "A = -1\n")
    log = os.path.join(tmpbase, "many.log")
    r = daemon.cli("explain", "--test", TEST, "--json", env={
        "TCACHE_PYTHON": fake_python(tmpbase), "FAKE_IFC_LOG": log},
        cwd="/", timeout=60)
    assert r.rc == 1, r
    assert changes(r) == [("interface", "interface",
                           "pkg/%s/m1999.py" % deep)]
    n = runs(log)
    assert len(n) == 2 and sum(n) == 2000, n


@pytest.mark.skipif(not os.path.exists(REAL_MODULE),
                    reason="contrib/pytest/tcache_pytest/interface.py absent")
def test_real_module(daemon, co):
    env = {"FOO": "1", "TCACHE_PYTHON": sys.executable,
           "PYTHONPATH": PLUGIN}

    def real(path):
        cp = subprocess.run([sys.executable, "-m", "tcache_pytest.interface",
                             path], env=dict(os.environ, PYTHONPATH=PLUGIN),
                            stdout=subprocess.PIPE, check=True)
        return bytes.fromhex(cp.stdout.split(b" ", 1)[0].decode())

    record(daemon, co, standard_inputs(co, real))
    r = daemon.cli("explain", "--test", TEST, env=env, cwd="/")
    assert r.rc == 0, r
    co.edit("pkg/mod.py", "return 1", "return 2")
    r = daemon.cli("explain", "--test", TEST, "--json", env=env, cwd="/")
    assert changes(r) == [("body", "discovered", "pkg/mod.py")]
    co.edit("pkg/mod.py", "def f():", "def f(a=1):")
    r = daemon.cli("explain", "--test", TEST, "--json", env=env, cwd="/")
    assert changes(r) == [("interface", "interface", "pkg/mod.py")]
