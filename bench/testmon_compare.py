#!/usr/bin/python3
"""pytest-testmon on networkx's own test suite: the baseline that the
plugin's --tcache-precision=executed mode is measured against.

testmon selects the tests to re-run from per-test coverage: it keeps, for
every test and every file the test executed, the checksums of the blocks
(the module's top-level code, each function body) that hold an executed
line.  This script measures, in one run on a copy of python3-networkx's
tests in a fresh temporary directory:

  plain          pytest, no plugin (wall time of the whole process)
  testmon cold   --testmon on an empty .testmondata: wall time, x plain
  testmon warm   --testmon with nothing changed
  body edits     a no-op statement `_ = 0` put at the start of one function
                 body; --testmon then re-runs what it selects: how many
                 tests, wall time
  failing edits  a module constant, a class attribute, a default argument,
                 a function reached only from setup_class, a class's base:
                 each makes tests fail.  The tests that fail under plain
                 pytest and that testmon does not select are stale passes
                 (tarpas/pytest-testmon#191): counted.

Every edit is measured alone, from the database the cold run left.

Second reference: coverage.py over the pristine tree, measuring the edited
files only, with a dynamic context per test node id: a pytest hook here
starts coverage in each pytest process and calls Coverage.switch_context
around each test's setup, call and teardown, which is how testmon and
pytest-cov's --cov-context=test attribute lines (coverage's own
`dynamic_context = test_function` names the test function: it merges
parametrized cases and gives setup_class a context of its own).  The hook
rather than `coverage run -m pytest` lets it run under pytest -n 2 --dist
loadscope, which keeps a class's tests on one worker and in order.  For each
edit: the tests whose contexts cover a line of the edited file, and a line
of the edited function's body (what testmon's blocks should select).

Ground truth of the failing edits: every failing edit applied at once, the
whole suite under plain pytest -n 2 (or serially without pytest-xdist);
then each edit alone, plain pytest on the tests that failed there.  A test
that fails under one edit alone but passes with all of them applied would
be missed; the edits are in unrelated modules, and a test testmon sees
failing outside that set is reported as a problem.

Dependencies (Debian 12): python3-pytest, python3-networkx,
python3-coverage (testmon needs coverage 6 or 7; Debian has 6.5), and
pytest-testmon's source, never installed and never copied into this
project: by default extracted from the git mirror
/work/.mirror/tarpas+pytest-testmon/repo at tag v2.2.0 (pytest>=5,<10,
coverage>=6,<8, Python>=3.10) into the temporary directory and put on
PYTHONPATH (git and tar do that); or --testmon-src DIR, a directory
holding testmon/.  Exits 2 with a message when one of them is missing.
Standard library only.  Every wall time is of the whole pytest process;
the load average before and after is recorded, other work on the machine
skews them.

Usage: bench/testmon_compare.py [--quick] [--keep] [--json PATH]
  --quick  a subset of the suite (the test directories of the edited
           modules) instead of all of it
"""

import argparse
import ast
import glob
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
# The copy, the check that the tests import it and the summary line are
# done as bench/pytest_suite.py does them.
from pytest_suite import (PYTHON, Daemon, check_copy_imported,  # noqa
                          copy_package, find_package, parse_summary)

TOP = os.path.dirname(HERE)
CACHED = re.compile(r"\((\d+) cached, ")

MIRROR = "/work/.mirror/tarpas+pytest-testmon/repo"
TESTMON_REF = "v2.2.0"
PACKAGE = "networkx"
DEBIAN = "python3-networkx"

QUICK_PATHS = [
    "networkx/generators",
    "networkx/algorithms/traversal",
    "networkx/algorithms/tree",
    "networkx/algorithms/tests/test_bridges.py",
    "networkx/algorithms/tests/test_cycles.py",
    "networkx/algorithms/tests/test_dag.py",
    "networkx/algorithms/tests/test_graphical.py",
    "networkx/algorithms/isomorphism/tests/test_isomorphvf2.py",
]

# One-line function body edits: `_ = 0` before the body's first statement
# (after the docstring).  bridges.py is imported by the package's __init__,
# so by every test; harary_graph.py too, but only its own tests call it.
BODY_EDITS = [
    ("networkx/algorithms/bridges.py", "bridges"),
    ("networkx/generators/harary_graph.py", "hnm_harary_graph"),
]

# Edits that make tests fail: (kind, file, function or None, old, new).
FAILING_EDITS = [
    # test_edgebfs.py compares edge_bfs's output with edgedfs's constants;
    # those tests run no line of edgedfs.py.
    ("module constant", "networkx/algorithms/traversal/edgedfs.py", None,
     'FORWARD = "forward"', 'FORWARD = "fwd"'),
    # EXCLUDED becomes an alias of OPEN; branchings.py and
    # traveling_salesman.py read the enum's members but run no line of
    # mst.py.  (An alias of INCLUDED makes the TSP tests loop forever.)
    ("class attribute", "networkx/algorithms/tree/mst.py", None,
     "    EXCLUDED = 2\n", "    EXCLUDED = 0\n"),
    # The tests that use the default run local_bridges's body, so their
    # testmon fingerprint holds bridges.py's top-level block: seen.
    ("default argument", "networkx/algorithms/bridges.py", "local_bridges",
     "def local_bridges(G, with_span=True, weight=None):",
     "def local_bridges(G, with_span=False, weight=None):"),
    # Called from setup_class: its lines count for the first test of the
    # class only.
    ("body, via setup_class", "networkx/generators/atlas.py",
     "_generate_graphs",
     'G.name = f"G{graph_index}"', 'G.name = f"G{graph_index + 1}"'),
    # Raising and catching an exception runs no line of exception.py:
    # pytest.raises(nx.NetworkXException) no longer catches NetworkXError.
    ("class base", "networkx/exception.py", None,
     "class NetworkXError(NetworkXException):",
     "class NetworkXError(Exception):"),
]

# A pytest plugin loaded in every run: the outcome of each test node as
# JSON, and when TMC_COVERAGE_RC names a coverage configuration, coverage
# in this process with a dynamic context per node id.
PROBE = r'''
import json
import os

import pytest

_OUT = os.environ.get("TMC_OUTCOMES")
_COVERAGE_RC = os.environ.get("TMC_COVERAGE_RC")
_phases = {}
_cov = None


def pytest_configure(config):
    # In each process (under xdist, each worker): what runs before this,
    # imports, is outside any test, and traced when called later anyway.
    global _cov
    if _COVERAGE_RC:
        import coverage
        _cov = coverage.Coverage(config_file=_COVERAGE_RC, data_suffix=True)
        _cov.start()


def pytest_unconfigure(config):
    if _cov is not None:
        _cov.stop()
        _cov.save()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    if _cov is not None:
        _cov.switch_context(item.nodeid)
    yield
    if _cov is not None:
        _cov.switch_context("")


def pytest_runtest_logreport(report):
    _phases.setdefault(report.nodeid, {})[report.when] = (
        report.outcome, hasattr(report, "wasxfail"))


def _fold(phases):
    for when in ("setup", "call", "teardown"):
        outcome, xfail = phases.get(when, ("passed", False))
        if outcome == "failed":
            return "failed" if when == "call" else "error"
    outcome, xfail = phases.get("call", phases.get("setup", ("passed", False)))
    if outcome == "skipped":
        return "xfailed" if xfail else "skipped"
    return "xpassed" if xfail else "passed"


def pytest_sessionfinish(session):
    if _OUT and not hasattr(session.config, "workerinput"):
        with open(_OUT, "w") as f:
            json.dump({k: _fold(v) for k, v in _phases.items()}, f)
'''

FAILED = ("failed", "error")
RUN_TIMEOUT_S = 900


def die(msg):
    sys.stderr.write("testmon_compare: %s\n" % msg)
    sys.exit(2)


def note(msg):
    sys.stderr.write(msg + "\n")


# --- prerequisites ---

def testmon_source(opts, work):
    """A directory holding testmon/, with the ref it came from."""
    if opts.testmon_src:
        src = opts.testmon_src
        ref = "(given directory)"
    else:
        if not os.path.isdir(opts.testmon_git):
            die("pytest-testmon's source is missing: no git mirror at %s "
                "(or give --testmon-src DIR, a directory holding testmon/)"
                % opts.testmon_git)
        src = os.path.join(work, "testmon-src")
        os.makedirs(src)
        archive = subprocess.run(
            ["git", "--git-dir=" + opts.testmon_git, "archive",
             opts.testmon_ref], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE)
        if archive.returncode != 0:
            die("git archive %s in %s failed: %s" % (
                opts.testmon_ref, opts.testmon_git,
                archive.stderr.decode(errors="replace").strip()))
        tar = subprocess.run(["tar", "-x", "-C", src], input=archive.stdout,
                             stderr=subprocess.PIPE)
        if tar.returncode != 0:
            die("could not unpack testmon: %s" %
                tar.stderr.decode(errors="replace").strip())
        ref = opts.testmon_ref
    if not os.path.isfile(os.path.join(src, "testmon", "pytest_testmon.py")):
        die("pytest-testmon's source is missing: no testmon/pytest_testmon.py"
            " in %s" % src)
    return src, ref


def tool_versions(testmon_src):
    code = ("import sys, pytest\n"
            "try:\n import coverage; c = coverage.__version__\n"
            "except ImportError: c = ''\n"
            "try:\n import xdist; x = xdist.__version__\n"
            "except ImportError: x = ''\n"
            "sys.path.insert(0, %r)\n"
            "import testmon; t = getattr(testmon, 'TESTMON_VERSION', '')\n"
            "print(pytest.__version__, c or '-', x or '-', t or '-')"
            % testmon_src)
    r = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True)
    if r.returncode != 0:
        die("could not import pytest or testmon with %s: %s" %
            (PYTHON, r.stderr.strip()))
    pv, cv, xv, tv = r.stdout.split()
    if cv == "-":
        die("coverage is missing for %s: apt-get install python3-coverage"
            % PYTHON)
    if cv.split(".")[0] not in ("6", "7"):
        die("testmon needs coverage 6 or 7, %s has %s" % (PYTHON, cv))
    return pv, cv, None if xv == "-" else xv, tv


# --- the tree and its edits ---

def forget_bytecode(path):
    """Python trusts a .pyc whose source has the same mtime (to the
    second) and size, and an edit here can keep both."""
    d, base = os.path.split(path)
    for pyc in glob.glob(os.path.join(d, "__pycache__",
                                      os.path.splitext(base)[0] + ".*.pyc")):
        os.unlink(pyc)


class Tree:
    def __init__(self, root):
        self.root = root
        self.saved = {}

    def path(self, rel):
        return os.path.join(self.root, rel)

    def read(self, rel):
        with open(self.path(rel)) as f:
            return f.read()

    def write(self, rel, text):
        self.saved.setdefault(rel, self.read(rel))
        with open(self.path(rel), "w") as f:
            f.write(text)
        forget_bytecode(self.path(rel))

    def restore(self):
        for rel, text in self.saved.items():
            with open(self.path(rel), "w") as f:
                f.write(text)
            forget_bytecode(self.path(rel))
        self.saved = {}

    def replace(self, rel, old, new):
        text = self.read(rel)
        if text.count(old) != 1:
            die("%s: %r occurs %d times, not once" % (rel, old,
                                                      text.count(old)))
        self.write(rel, text.replace(old, new))
        return text[:text.index(old)].count("\n") + 1

    def body_edit(self, rel, func):
        """`_ = 0` before the first statement of func's body that is not
        its docstring; returns the new line's number."""
        text = self.read(rel)
        node = find_function(text, func, rel)
        body = node.body
        first = body[0]
        if (len(body) > 1 and isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)):
            first = body[1]
        lines = text.splitlines(True)
        indent = lines[first.lineno - 1][:first.col_offset]
        if indent.strip():
            die("%s: %s's first statement shares a line" % (rel, func))
        lines.insert(first.lineno - 1, indent + "_ = 0\n")
        self.write(rel, "".join(lines))
        return first.lineno


def find_function(text, func, rel):
    for node in ast.walk(ast.parse(text)):
        if (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                and node.name == func):
            return node
    die("no function %s in %s" % (func, rel))


def body_lines(text, func, rel):
    """The lines of func's body (docstring to last line): a test whose
    coverage has one of them ran the function."""
    node = find_function(text, func, rel)
    return set(range(node.body[0].lineno, node.end_lineno + 1))


# --- running pytest ---

class Runner:
    def __init__(self, root, work, env, paths, tcache_sock=None):
        self.tcache_sock = tcache_sock
        self.root = root
        self.work = work
        self.env = env
        self.paths = paths
        self.logdir = os.path.join(work, "logs")
        os.makedirs(self.logdir)
        self.n = 0
        self.db = os.path.join(root, ".testmondata")

    def run(self, label, testmon=False, extra=(), targets=None,
            coverage_rc=None, tcache=None):
        """tcache: None, or the list of extra --tcache options."""
        self.n += 1
        base = os.path.join(self.logdir, "%02d-%s" % (
            self.n, "".join(c if c.isalnum() else "_" for c in label)))
        outcomes_file = base + ".json"
        env = dict(self.env, TMC_OUTCOMES=outcomes_file)
        if coverage_rc:
            env["TMC_COVERAGE_RC"] = coverage_rc
        args = [PYTHON, "-m", "pytest", "-q", "-p", "tmc_probe",
                 "--rootdir=" + self.root]
        if testmon:
            args += ["-p", "testmon.pytest_testmon", "--testmon"]
        if tcache is not None:
            args += ["-p", "tcache_pytest.plugin", "--tcache",
                     "--tcache-socket=" + self.tcache_sock] + list(tcache)
        args += list(extra)
        args += targets if targets is not None else self.paths
        t0 = time.monotonic()
        # A session of its own: on a timeout (an edit that makes a test
        # loop) the xdist workers go too.
        proc = subprocess.Popen(args, cwd=self.root, env=env,
                                stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True,
                                start_new_session=True)
        try:
            stdout, _ = proc.communicate(timeout=RUN_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            die("%s: no end after %d s (killed); the command: %s" % (
                label, RUN_TIMEOUT_S, " ".join(args[:12])))
        r = subprocess.CompletedProcess(args, proc.returncode, stdout)
        wall = time.monotonic() - t0
        with open(base + ".log", "w") as f:
            f.write(" ".join(args) + "\n" + r.stdout)
        try:
            with open(outcomes_file) as f:
                outcomes = json.load(f)
        except (OSError, ValueError):
            die("%s: no outcomes written (exit %d); see %s.log" %
                (label, r.returncode, base))
        if "INTERNALERROR" in r.stdout:
            die("%s: INTERNALERROR; see %s.log" % (label, base))
        line = parse_summary(r.stdout)["line"]
        note("  %-34s %7.2f s  %s" % (label, wall, line or "(no summary)"))
        if tcache is not None and "tcache: daemon unavailable" in r.stdout:
            die("%s: the plugin found tcached unavailable; see %s.log"
                % (label, base))
        m = CACHED.search(line or "")
        cached = int(m.group(1)) if m else 0
        # Skips and xfails are never cached; testmon does not select them
        # either (it knows their outcome): ran_run counts the tests that
        # ran and passed or failed, the fair count to compare.
        decided = sum(1 for v in outcomes.values()
                      if v not in ("skipped", "xfailed", "xpassed"))
        return dict(label=label, wall_s=round(wall, 3), rc=r.returncode,
                    line=line, outcomes=outcomes,
                    ran=len(outcomes) - cached, ran_run=decided - cached)

    def snapshot_db(self, dest):
        shutil.copyfile(self.db, dest)

    def restore_db(self, src):
        for suffix in ("-wal", "-shm", "-journal"):
            try:
                os.unlink(self.db + suffix)
            except FileNotFoundError:
                pass
        shutil.copyfile(src, self.db)


def failing(outcomes):
    return {k for k, v in outcomes.items() if v in FAILED}


# --- coverage reference ---

def coverage_reference(runner, tree, files, extra):
    """node id -> {file: lines} for the given files, from one coverage run
    of the pristine tree."""
    rc = os.path.join(runner.work, "coveragerc")
    data = os.path.join(runner.work, "coverage.data")
    with open(rc, "w") as f:
        f.write("[run]\ndata_file = %s\ninclude =\n" % data)
        for rel in sorted(files):
            f.write("    %s\n" % tree.path(rel))
    res = runner.run("coverage contexts", coverage_rc=rc, extra=extra)
    code = ("import json, sys, coverage\n"
            "c = coverage.Coverage(config_file=sys.argv[2])\n"
            "c.combine(); c.save()\n"
            "d = coverage.CoverageData(basename=sys.argv[1]); d.read()\n"
            "out = {}\n"
            "for fn in d.measured_files():\n"
            "    for line, ctxs in d.contexts_by_lineno(fn).items():\n"
            "        for c in ctxs:\n"
            "            out.setdefault(c, {}).setdefault(fn, []).append(line)\n"
            "json.dump(out, sys.stdout)\n")
    r = subprocess.run([PYTHON, "-c", code, data, rc], capture_output=True,
                       text=True, cwd=runner.work)
    if r.returncode != 0:
        die("could not read coverage data: %s" % r.stderr.strip())
    by_test = {}
    for ctx, per_file in json.loads(r.stdout).items():
        if not ctx:
            continue                  # collection: imports, module code
        for fn, lines in per_file.items():
            rel = os.path.relpath(fn, tree.root)
            by_test.setdefault(ctx, {})[rel] = set(lines)
    return res, by_test


def tests_touching(by_test, rel, lines=None):
    n = 0
    for per_file in by_test.values():
        got = per_file.get(rel)
        if got and (lines is None or got & lines):
            n += 1
    return n


# --- main ---

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="a subset of the suite: %s" % " ".join(QUICK_PATHS))
    ap.add_argument("--testmon-src",
                    help="directory holding testmon/ (default: extract "
                         "--testmon-ref from --testmon-git)")
    ap.add_argument("--testmon-git", default=MIRROR)
    ap.add_argument("--testmon-ref", default=TESTMON_REF)
    ap.add_argument("--json", default=os.path.join(HERE, "results",
                                                   "testmon.json"))
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directory (logs, outcomes)")
    ap.add_argument("--tcached", default=os.path.join(TOP, "build",
                                                      "tcached"))
    ap.add_argument("--plugin-dir", default=os.path.join(TOP, "contrib",
                                                         "pytest"))
    opts = ap.parse_args()

    src = find_package(PACKAGE)
    if src is None:
        die("%s is not installed: apt-get install %s" % (PACKAGE, DEBIAN))
    work = tempfile.mkdtemp(prefix="tcache-testmon-")
    try:
        code = run_all(opts, src, work)
    finally:
        if not opts.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            note("kept %s" % work)
    return code


def run_all(opts, src, work):
    t_start = time.monotonic()
    load_before = os.getloadavg()
    tm_src, tm_ref = testmon_source(opts, work)
    pytest_v, coverage_v, xdist_v, testmon_v = tool_versions(tm_src)

    root = os.path.join(work, "suite")
    probe_dir = os.path.join(work, "probe")
    os.makedirs(root)
    os.makedirs(probe_dir)
    with open(os.path.join(probe_dir, "tmc_probe.py"), "w") as f:
        f.write(PROBE)
    pkgdir = copy_package(src, root, PACKAGE)
    if not os.access(opts.tcached, os.X_OK):
        die("%s not built: run make" % opts.tcached)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [tm_src, probe_dir, opts.plugin_dir]))
    for name in ("PYTEST_ADDOPTS", "PYTEST_PLUGINS", "PYTHONDONTWRITEBYTECODE",
                 "COVERAGE_PROCESS_START", "COVERAGE_RCFILE",
                 "TMNET_API_KEY"):
        env.pop(name, None)
    check_copy_imported(root, PACKAGE, pkgdir, env, work)
    paths = QUICK_PATHS if opts.quick else [PACKAGE]
    daemon = Daemon(opts.tcached, work)
    try:
        return measure(opts, src, work, t_start, load_before, tm_src,
                       tm_ref, root, pkgdir, env, paths, daemon)
    finally:
        daemon.stop()


def measure(opts, src, work, t_start, load_before, tm_src, tm_ref, root,
            pkgdir, env, paths, daemon):
    pytest_v, coverage_v, xdist_v, testmon_v = tool_versions(tm_src)
    tree = Tree(root)
    runner = Runner(root, work, env, paths, daemon.sock)
    note("testmon_compare: %s from %s in %s; testmon %s (%s)" % (
        PACKAGE, src, root, testmon_v, tm_ref))

    problems = []

    def same_as_plain(res, reference):
        diff = [k for k, v in res["outcomes"].items()
                if reference.get(k) != v]
        if diff:
            problems.append("%s: %d tests end differently from plain pytest, "
                            "e.g. %s" % (res["label"], len(diff), diff[:3]))

    plain = runner.run("plain")
    if failing(plain["outcomes"]):
        problems.append("plain: %d tests fail on the unedited tree" %
                        len(failing(plain["outcomes"])))
    cold = runner.run("testmon cold", testmon=True)
    same_as_plain(cold, plain["outcomes"])
    if len(cold["outcomes"]) != len(plain["outcomes"]):
        problems.append("testmon cold ran %d tests, plain %d" % (
            len(cold["outcomes"]), len(plain["outcomes"])))
    s0 = os.path.join(work, "testmondata.cold")
    runner.snapshot_db(s0)
    db_bytes = os.path.getsize(s0)
    warm = runner.run("testmon warm (no edit)", testmon=True)
    # tcache beside it: cold records; every later run only looks up
    # (readonly), so each edit is measured from the cold run's entries.
    precise = ["--tcache-precision=executed"]
    readonly = precise + ["--tcache-readonly"]
    tc_cold = runner.run("tcache executed cold", tcache=precise)
    same_as_plain(tc_cold, plain["outcomes"])
    tc_warm = runner.run("tcache executed warm (no edit)", tcache=readonly)
    same_as_plain(tc_warm, plain["outcomes"])

    # The reference: coverage of the pristine tree.
    edited = {rel for rel, _ in BODY_EDITS} | {e[1] for e in FAILING_EDITS}
    # loadscope keeps a class's (a module's) tests on one worker in their
    # order, so a setup_class is attributed as in a serial run.
    parallel = ["-n", "2", "--dist", "loadscope"] if xdist_v else []
    cov_res, by_test = coverage_reference(runner, tree, edited, parallel)
    same_as_plain(cov_res, plain["outcomes"])
    pristine = {rel: tree.read(rel) for rel in edited}

    def cov_counts(rel, func):
        row = dict(coverage_tests_touching_file=tests_touching(by_test, rel))
        row["coverage_tests_touching_function"] = (
            tests_touching(by_test, rel, body_lines(pristine[rel], func, rel))
            if func else None)
        return row

    body_rows = []
    for rel, func in BODY_EDITS:
        line = tree.body_edit(rel, func)
        runner.restore_db(s0)
        res = runner.run("testmon after _ = 0 in %s" % func, testmon=True)
        tc = runner.run("tcache after _ = 0 in %s" % func, tcache=readonly)
        tree.restore()
        same_as_plain(res, plain["outcomes"])
        same_as_plain(tc, plain["outcomes"])
        row = dict(file=rel, function=func, line=line,
                   edit="_ = 0 at the start of the body",
                   testmon_selected=len(res["outcomes"]),
                   testmon_s=res["wall_s"], testmon_line=res["line"],
                   tcache_ran=tc["ran"], tcache_ran_run=tc["ran_run"],
                   tcache_s=tc["wall_s"], tcache_line=tc["line"])
        row["tcache_over_testmon_ratio"] = round(
            tc["ran_run"] / max(len(res["outcomes"]), 1), 3)
        row["tcache_over_testmon_goal"] = 1.5
        row.update(cov_counts(rel, func))
        body_rows.append(row)

    # Ground truth for the failing edits: all of them at once, the whole
    # scope; then each alone on what failed there.
    for kind, rel, func, old, new in FAILING_EDITS:
        tree.replace(rel, old, new)
        compile(tree.read(rel), rel, "exec")
    truth_all = runner.run("plain, all failing edits", extra=parallel)
    tree.restore()
    failed_all = sorted(failing(truth_all["outcomes"]))

    fail_rows = []
    for kind, rel, func, old, new in FAILING_EDITS:
        line = tree.replace(rel, old, new)
        if failed_all:
            truth = runner.run("plain on those, %s" % kind,
                               targets=failed_all)
            truth_failed = failing(truth["outcomes"])
        else:
            truth_failed = set()
        runner.restore_db(s0)
        res = runner.run("testmon after %s edit" % kind, testmon=True)
        tc = runner.run("tcache after %s edit" % kind, tcache=readonly)
        tree.restore()
        tc_failed = failing(tc["outcomes"])
        tc_missed = sorted(truth_failed - tc_failed)
        selected = set(res["outcomes"])
        tm_failed = failing(res["outcomes"])
        if tm_failed - set(failed_all):
            problems.append("%s: testmon saw %d failures outside the ground "
                            "truth's, e.g. %s" % (
                                kind, len(tm_failed - set(failed_all)),
                                sorted(tm_failed - set(failed_all))[:3]))
        missed = sorted(truth_failed - selected)
        if truth_failed & selected != tm_failed:
            problems.append("%s: of the tests testmon ran, %d fail under "
                            "plain pytest and %d under testmon" % (
                                kind, len(truth_failed & selected),
                                len(tm_failed)))
        row = dict(kind=kind, file=rel, function=func, line=line,
                   edit="%s -> %s" % (old.strip(), new.strip()),
                   failing_under_plain_pytest=len(truth_failed),
                   testmon_selected=len(selected),
                   testmon_failed=len(tm_failed),
                   testmon_missed_failures=len(missed),
                   testmon_missed=missed,
                   testmon_s=res["wall_s"], testmon_line=res["line"],
                   tcache_ran=tc["ran"], tcache_failed=len(tc_failed),
                   tcache_missed_failures=len(tc_missed),
                   tcache_missed=tc_missed, tcache_s=tc["wall_s"])
        row.update(cov_counts(rel, func))
        fail_rows.append(row)
        if tc_missed:
            problems.append("%s: tcache reported %d stale passes, e.g. %s"
                            % (kind, len(tc_missed), tc_missed[:3]))

    out = dict(
        suite=PACKAGE, debian_package=DEBIAN, source=src,
        scope=paths, quick=opts.quick,
        cpus=os.cpu_count(), python=platform.python_version(),
        pytest=pytest_v, coverage=coverage_v, xdist=xdist_v,
        testmon=testmon_v, testmon_ref=tm_ref,
        tests=len(plain["outcomes"]),
        plain_s=plain["wall_s"], plain_line=plain["line"],
        testmon_cold_s=cold["wall_s"],
        testmon_cold_ratio=round(cold["wall_s"] / plain["wall_s"], 3),
        testmon_cold_line=cold["line"],
        testmondata_bytes_after_cold=db_bytes,
        testmon_warm_s=warm["wall_s"], testmon_warm_selected=len(
            warm["outcomes"]),
        tcache_cold_s=tc_cold["wall_s"],
        tcache_cold_ratio=round(tc_cold["wall_s"] / plain["wall_s"], 3),
        tcache_cold_over_testmon_cold_ratio=round(
            tc_cold["wall_s"] / cold["wall_s"], 3),
        tcache_warm_s=tc_warm["wall_s"], tcache_warm_ran=tc_warm["ran"],
        coverage_contexts_s=cov_res["wall_s"],
        coverage_contexts_parallel=" ".join(parallel) or None,
        coverage_contexts_ran=len(cov_res["outcomes"]),
        coverage_tests_touching_edited_files=len(by_test),
        ground_truth_all_failing_edits_s=truth_all["wall_s"],
        ground_truth_parallel=" ".join(parallel) or None,
        ground_truth_all_failing_edits_failed=len(failed_all),
        body_edits=body_rows, failing_edits=fail_rows,
        problems=problems,
        # Other work on the machine skews every wall time above.
        loadavg_before=[round(x, 2) for x in load_before],
        loadavg_after=[round(x, 2) for x in os.getloadavg()],
        total_s=round(time.monotonic() - t_start, 1))
    report(out)
    os.makedirs(os.path.dirname(os.path.abspath(opts.json)), exist_ok=True)
    with open(opts.json, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print("wrote %s" % opts.json)
    return 1 if problems else 0


def report(o):
    print("pytest-testmon %s (%s) on %s's tests (%s), %d tests%s" % (
        o["testmon"], o["testmon_ref"], o["suite"], o["debian_package"],
        o["tests"], " [quick: %s]" % " ".join(o["scope"]) if o["quick"]
        else ""))
    print("machine: %d CPUs, Python %s, pytest %s, coverage %s, xdist %s; "
          "load average %s before, %s after" % (
              o["cpus"], o["python"], o["pytest"], o["coverage"],
              o["xdist"] or "absent", o["loadavg_before"][0],
              o["loadavg_after"][0]))
    print()
    print("%-50s %8s %8s %8s" % ("run", "wall s", "x plain", "ran"))
    p = o["plain_s"]
    for label, wall, ran in (
            ("plain pytest", p, o["tests"]),
            ("testmon cold", o["testmon_cold_s"], o["tests"]),
            ("testmon, nothing changed", o["testmon_warm_s"],
             o["testmon_warm_selected"]),
            ("tcache --tcache-precision=executed cold", o["tcache_cold_s"],
             o["tests"]),
            ("tcache executed, nothing changed", o["tcache_warm_s"],
             o["tcache_warm_ran"]),
            ("coverage, per-test contexts%s" % (
                " (%s)" % o["coverage_contexts_parallel"]
                if o["coverage_contexts_parallel"] else ""),
             o["coverage_contexts_s"], o["coverage_contexts_ran"])):
        print("%-50s %8.2f %8.2f %8d" % (label, wall, wall / p, ran))
    print(".testmondata after cold: %.1f MiB" % (
        o["testmondata_bytes_after_cold"] / 1048576))
    print()
    print("body edit (_ = 0)                    testmon    wall s   tcache"
          " (all)    wall s   coverage: file  function")
    for r in o["body_edits"]:
        print("%-36s %8d %9.2f %8d %5s %9.2f %16d %9d" % (
            "%s:%s" % (os.path.basename(r["file"]), r["function"]),
            r["testmon_selected"], r["testmon_s"], r["tcache_ran_run"],
            "(%d)" % r["tcache_ran"], r["tcache_s"],
            r["coverage_tests_touching_file"],
            r["coverage_tests_touching_function"]))
    print("(tcache: tests that ran and passed or failed; in brackets with "
          "the skips and xfails, which are never cached)")
    print()
    print("failing edit                       truth   testmon ran  MISSED"
          "   tcache ran  MISSED   coverage: file  function")
    for r in o["failing_edits"]:
        print("%-34s %6d %13d %7d %12d %7d %16d %9s" % (
            "%s (%s)" % (r["kind"], os.path.basename(r["file"])),
            r["failing_under_plain_pytest"], r["testmon_selected"],
            r["testmon_missed_failures"], r["tcache_ran"],
            r["tcache_missed_failures"],
            r["coverage_tests_touching_file"],
            "-" if r["coverage_tests_touching_function"] is None
            else r["coverage_tests_touching_function"]))
    for r in o["failing_edits"]:
        if r["testmon_missed"]:
            print("  missed (%s): %s%s" % (r["kind"], ", ".join(
                r["testmon_missed"][:2]), ", ..." if len(r["testmon_missed"])
                > 2 else ""))
    for prob in o["problems"]:
        print("PROBLEM: " + prob)
    print("total %.0f s" % o["total_s"])


if __name__ == "__main__":
    sys.exit(main())
