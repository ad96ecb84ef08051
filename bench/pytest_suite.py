#!/usr/bin/python3
"""bench part "pytest": the pytest plugin on a real suite nobody here wrote,
networkx's own tests as Debian ships them in python3-networkx, run from a
copy in a fresh temporary directory (so that it can be edited) against a
private tcached.

Measured in one run, each a wall time of the whole pytest process, on a
subset of the suite (networkx without its seven slowest test directories,
which hold 2,380 of its 5,221 tests and three quarters of its run time: the
whole suite runs ~110 s plain, too long for the 270 s this part may take
with a cold run of each precision):
  plain       pytest, no plugin
  collect     pytest --collect-only
  cold        --tcache on an empty database
  warm        --tcache, nothing changed
  warm checked  the same, its outcomes checked (see below)
  edit-leaf   --tcache after a one-line edit of a module that only its own
              tests import
  warm-after  --tcache again after it
and with --more:
  edit-pkg    --tcache after a one-line edit of a module that the package's
              __init__ imports (every test imports the package)
  warm -n 2   --tcache -n 2 (pytest-xdist), nothing changed
each under every --tcache-precision asked for (default: executed, the
plugin's default, then file).  collect and the warm runs go round after
round (collect, warm executed, warm file, collect, ...; --repeat rounds)
and each figure is their median, so that the machine's noise falls on all
alike.

Goal plugin_warm_vs_collect: warm / collect for the default precision
(<= 1.2: the cache adds almost nothing to what finding the tests costs);
the file precision's ratio is a raw figure beside it, as are the cold runs
(per-test overhead (cold - plain) / tests) and (warm - collect) / tests.

Every run but the timed collect and warm ones writes JUnit XML (which costs
a warm run of this suite ~0.25 s, and collect-only nothing); the per-test
outcomes of each are compared with plain pytest's, the counts of every run
too, and a difference is reported and makes the exit status 1 (a cached or
re-run test must end as plain pytest ended it).

pytest's output goes to a pipe; PYTHONUNBUFFERED and PYTHONDONTWRITEBYTECODE
are removed from its environment (unbuffered, each test's progress letter
is a write and a wake-up of the reader, which a terminal does not cost; and
without bytecode every run compiles every module again).  The plugin's memo
lives in the temporary directory (TCACHE_MEMO_DIR).

Standard library only; installs nothing.
Usage: bench/pytest_suite.py [--json FILE] [--quick] [--repeat N] [--more]
       [--precision P,Q] [--python EXE] [--pythonpath DIR] [--keep]
"""

import argparse
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import common  # noqa: E402

PART = "pytest"
PYTHON = "/usr/bin/python3"
# Directories put after ours on PYTHONPATH (--pythonpath): how another
# interpreter finds Debian's pytest and networkx.
EXTRA_PATH = []
DEFAULT_PRECISION = "executed"


def pythonpath(*first):
    return os.pathsep.join(list(first) + EXTRA_PATH)

SUITES = {
    "networkx": dict(
        debian="python3-networkx",
        package="networkx",
        # The seven slowest test directories of networkx 2.8.8 (plain
        # pytest, 2 CPUs): 1,660 + 132 + 144 + 83 + 161 + 76 + 124 tests,
        # 32 + 16 + 10 + 10 + 6 + 5 + 4 s of the ~107 s of test time.
        ignore=["networkx/classes/tests",
                "networkx/algorithms/approximation/tests",
                "networkx/algorithms/connectivity/tests",
                "networkx/algorithms/flow/tests",
                "networkx/drawing/tests",
                "networkx/algorithms/isomorphism/tests",
                "networkx/algorithms/tree/tests"],
        # --quick: a few seconds a run, the leaf's tests among them.
        quick=["networkx/generators/tests/test_harary_graph.py",
               "networkx/algorithms/shortest_paths/tests"],
        # Imported by its own test module only: an edit should re-run
        # just those tests.
        leaf="networkx/generators/harary_graph.py",
        # Imported by networkx/algorithms/__init__.py, so by every test
        # (they all `import networkx`): the static import graph cannot
        # tell them apart.
        pkg="networkx/algorithms/bridges.py",
    ),
}

OUTCOME_WORDS = ("passed", "failed", "skipped", "xfailed", "xpassed",
                 "error", "errors")


def die(msg):
    sys.stderr.write("pytest_suite: %s\n" % msg)
    sys.exit(2)


def find_package(name):
    """The installed package directory, from a clean interpreter."""
    code = "import %s, os; print(os.path.dirname(%s.__file__))" % (name, name)
    r = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True,
                       cwd="/", env=dict(os.environ, PYTHONPATH=pythonpath()))
    if r.returncode != 0:
        return None
    return r.stdout.strip()


def copy_package(src, dest_root, name):
    dest = os.path.join(dest_root, name)
    shutil.copytree(src, dest, ignore=shutil.ignore_patterns(
        "__pycache__", "*.pyc"))
    return dest


# --- tcached ---

class Daemon:
    def __init__(self, tcached, workdir):
        self.sock = os.path.join(workdir, "tcached.sock")
        self.db = os.path.join(workdir, "tcache.db")
        self.log = os.path.join(workdir, "tcached.log")
        self.proc = subprocess.Popen(
            [tcached, "--socket", self.sock, "--db", self.db,
             "--log", self.log], stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                die("tcached exited with %d; see %s" %
                    (self.proc.returncode, self.log))
            if self._answers():
                return
            time.sleep(0.02)
        self.stop()
        die("tcached did not listen on %s within 10 s" % self.sock)

    def _answers(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(self.sock)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def db_bytes(self):
        total = 0
        for suffix in ("", "-wal", "-shm"):
            try:
                total += os.path.getsize(self.db + suffix)
            except OSError:
                pass
        return total

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- one pytest run ---

SUMMARY_RE = re.compile(r"^=*\s*(\d+ \w+.*) in [\d.]+s")
COUNT_RE = re.compile(r"(\d+) (\w+)")
CACHED_RE = re.compile(r"\((\d+) cached, ([^)]*) saved\)")


def parse_summary(text):
    """Counts from pytest's last summary line; 'cached' from the plugin's
    '812 passed (790 cached, 4m12s saved)'."""
    line = ""
    for ln in text.splitlines():
        if SUMMARY_RE.match(ln.strip()):
            line = ln.strip()
    counts = {}
    m = CACHED_RE.search(line)
    counts["cached"] = int(m.group(1)) if m else 0
    counts["saved"] = m.group(2) if m else ""
    for n, word in COUNT_RE.findall(CACHED_RE.sub("", line)):
        if word in OUTCOME_WORDS:
            word = "errors" if word == "error" else word
            counts[word] = counts.get(word, 0) + int(n)
    counts["tests"] = sum(counts.get(w, 0) for w in OUTCOME_WORDS)
    counts["ran"] = counts["tests"] - counts["cached"]
    counts["line"] = line
    return counts


def junit_outcomes(path):
    """classname::name -> passed/failed/error/skipped, from JUnit XML."""
    out = {}
    try:
        tree = ET.parse(path)
    except (OSError, ET.ParseError):
        return out
    for tc in tree.iter("testcase"):
        name = "%s::%s" % (tc.get("classname", ""), tc.get("name", ""))
        outcome = "passed"
        for child in tc:
            if child.tag in ("failure", "error", "skipped"):
                outcome = {"failure": "failed"}.get(child.tag, child.tag)
                break
        out[name] = outcome
    return out


class Runner:
    """targets: what pytest is given to collect (paths, --ignore=...)."""

    def __init__(self, root, targets, env, daemon, logdir):
        self.root = root
        self.targets = list(targets)
        self.env = env
        self.daemon = daemon
        self.logdir = logdir
        self.n = 0

    def run(self, label, extra, tcache, junit=True):
        """junit: write JUnit XML, whose outcomes compare() checks (which
        costs a warm run ~0.25 s, and collect-only nothing)."""
        self.n += 1
        base = "%02d-%s" % (self.n, re.sub(r"\W+", "_", label))
        xml = os.path.join(self.logdir, base + ".xml")
        args = [PYTHON, "-m", "pytest", "-q", "--rootdir=" + self.root]
        if junit:
            args.append("--junitxml=" + xml)
        if tcache:
            # PATH joined to the option: pytest takes a separate value of
            # an option it does not know yet for a path argument when it
            # chooses the rootdir.
            args += ["-p", "tcache_pytest.plugin", "--tcache",
                     "--tcache-socket=" + self.daemon.sock]
        args += extra + self.targets
        t0 = time.monotonic()
        r = subprocess.run(args, cwd=self.root, env=self.env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
        wall = time.monotonic() - t0
        with open(os.path.join(self.logdir, base + ".log"), "w") as f:
            f.write(r.stdout)
        res = parse_summary(r.stdout)
        res.update(label=label, wall_s=round(wall, 3), rc=r.returncode,
                   log=os.path.join(self.logdir, base + ".log"))
        if "--collect-only" in extra:
            m = re.search(r"(\d+) tests? collected", r.stdout)
            res["tests"] = int(m.group(1)) if m else 0
            res["ran"] = 0
        elif junit:
            res["outcomes"] = junit_outcomes(xml)
        if "tcache: daemon unavailable" in r.stdout:
            res["warning"] = "the plugin found the daemon unavailable"
        if "INTERNALERROR" in r.stdout:
            res["warning"] = "INTERNALERROR (see %s)" % res["log"]
        sys.stderr.write("  %-12s %7.2f s  %s\n" % (label, wall, res["line"]
                                                   or "(no summary line)"))
        return res


PROBE = """import sys
def pytest_collection_finish(session):
    with open(%r, "w") as f:
        f.write(sys.modules[%r].__file__)
"""


def check_copy_imported(root, package, pkgdir, env, logdir):
    """The tests must import the copy, not the installed package: a probe
    plugin notes which file pytest imported the package from."""
    out = os.path.join(logdir, "imported-from")
    with open(os.path.join(logdir, "tcache_bench_probe.py"), "w") as f:
        f.write(PROBE % (out, package))
    penv = dict(env, PYTHONPATH=pythonpath(logdir))
    subprocess.run([PYTHON, "-m", "pytest", "-q", "--collect-only",
                    "-p", "tcache_bench_probe", "-p", "no:cacheprovider",
                    "--rootdir=" + root, package], cwd=root, env=penv,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with open(out) as f:
            got = f.read()
    except OSError:
        die("could not tell where pytest imported %s from" % package)
    if not got.startswith(pkgdir + os.sep):
        die("the tests import %s, not the copy in %s" % (got, pkgdir))


def one_line_edit(path):
    """Inserts a no-op statement before the first return in a function
    body: a real change to code every caller runs, outcomes unchanged."""
    with open(path) as f:
        lines = f.readlines()
    for i, ln in enumerate(lines):
        m = re.match(r"^(\s+)return\b", ln)
        if m:
            lines.insert(i, "%spass  # tcache bench: one-line edit\n"
                         % m.group(1))
            with open(path, "w") as f:
                f.writelines(lines)
            return i + 1
    die("no return statement to edit in %s" % path)


def compare(reference, res):
    """Tests whose outcome differs from plain pytest's."""
    ref, got = reference.get("outcomes", {}), res.get("outcomes", {})
    diff = {}
    for name in sorted(set(ref) | set(got)):
        if ref.get(name) != got.get(name):
            diff[name] = (ref.get(name), got.get(name))
    return diff


def versions():
    code = ("import pytest, sys\n"
            "try:\n import xdist; x = xdist.__version__\n"
            "except Exception: x = None\n"
            "print(pytest.__version__); print(x)\n"
            "import platform; print(platform.python_version())")
    r = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True,
                       env=dict(os.environ, PYTHONPATH=pythonpath()))
    pv, xv, py = (r.stdout.split("\n") + ["", "", ""])[:3]
    VERSIONS["python"] = py.strip()
    return pv.strip(), None if xv.strip() == "None" else xv.strip()


VERSIONS = {}


def median_of(runs, label):
    """One row from repeated runs: the median wall time, the counts of the
    run whose time is the median, and every run's time and tests run (a
    warm run that re-runs tests must show)."""
    by_wall = sorted(runs, key=lambda r: r["wall_s"])
    med = dict(by_wall[(len(by_wall) - 1) // 2])
    med.update(label=label,
               wall_s=statistics.median(r["wall_s"] for r in runs),
               walls_s=[r["wall_s"] for r in runs],
               ran_each=[r["ran"] for r in runs])
    for r in runs:
        if r.get("warning"):
            med["warning"] = r["warning"]
    return med


def tag(precision):
    return "" if precision == DEFAULT_PRECISION else " (%s)" % precision


def run_all(runner, suite, root, precisions, opts, xdist_v):
    """Every run, in the order that keeps them comparable; -> rows."""
    rows = [runner.run("plain", [], False)]
    parg = {p: ["--tcache-precision=" + p] for p in precisions}
    for p in precisions:
        rows.append(dict(runner.run("cold" + tag(p), parg[p], True),
                         precision=p))
    # A warm run whose outcomes are checked against plain pytest's...
    for p in precisions:
        rows.append(dict(runner.run("warm checked" + tag(p), parg[p], True),
                         precision=p))
    # ...and collection and warm runs without JUnit XML, round after round:
    # the noise of a shared machine falls on all of them alike.
    rounds = {"collect": []}
    rounds.update((p, []) for p in precisions)
    for i in range(opts.repeat):
        rounds["collect"].append(runner.run(
            "collect#%d" % (i + 1), ["--collect-only"], False, junit=False))
        for p in precisions:
            rounds[p].append(runner.run("warm%s#%d" % (tag(p), i + 1),
                                        parg[p], True, junit=False))
    rows.append(median_of(rounds["collect"], "collect"))
    for p in precisions:
        rows.append(dict(median_of(rounds[p], "warm" + tag(p)),
                         precision=p))
    leaf = os.path.join(root, suite["leaf"])
    with open(leaf) as f:
        saved = f.read()
    line = one_line_edit(leaf)
    for p in precisions:
        rows.append(dict(runner.run("edit-leaf" + tag(p), parg[p], True),
                         precision=p, edited="%s:%d" % (suite["leaf"], line)))
    if not opts.quick:
        for p in precisions:
            rows.append(dict(runner.run("warm-after" + tag(p), parg[p],
                                        True), precision=p))
    if opts.more:
        pkg = os.path.join(root, suite["pkg"])
        line = one_line_edit(pkg)
        for p in precisions:
            rows.append(dict(runner.run("edit-pkg" + tag(p), parg[p], True),
                             precision=p,
                             edited="%s:%d" % (suite["pkg"], line)))
        if xdist_v:
            for p in precisions:
                runs = [runner.run("warm -n 2%s#%d" % (tag(p), i + 1),
                                   parg[p] + ["-n", "2"], True)
                        for i in range(opts.repeat)]
                rows.append(dict(median_of(runs, "warm -n 2" + tag(p)),
                                 precision=p))
    with open(leaf, "w") as f:
        f.write(saved)
    return rows


def check(rows):
    """Problems: a run whose outcomes differ from plain pytest's, or that
    warned."""
    plain = rows[0]
    problems = []
    for r in rows[1:]:
        if r["label"] == "collect":
            continue
        # Timed runs write no JUnit XML: their counts are checked.
        diff = compare(plain, r) if "outcomes" in r else {}
        r["differs_from_plain"] = len(diff)
        if diff:
            problems.append("%s: %d tests end differently from plain "
                            "pytest, e.g. %s" % (
                                r["label"], len(diff),
                                "; ".join("%s %s->%s" % (k, a, b) for k, (a, b)
                                          in list(diff.items())[:3])))
        for w in ("passed", "failed", "skipped", "xfailed", "xpassed",
                  "errors"):
            if r.get(w, 0) != plain.get(w, 0):
                problems.append("%s: %d %s, plain pytest %d" % (
                    r["label"], r.get(w, 0), w, plain.get(w, 0)))
        if r.get("warning"):
            problems.append("%s: %s" % (r["label"], r["warning"]))
    return problems


def main():
    global PYTHON
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--json", help="write the result here")
    ap.add_argument("--quick", action="store_true",
                    help="smoke-size run: two test files, the default "
                         "precision, one round")
    ap.add_argument("--suite", default="networkx", choices=sorted(SUITES))
    ap.add_argument("--repeat", type=int, default=None,
                    help="rounds of collect and warm runs whose median is "
                         "taken (default 3, 1 with --quick)")
    ap.add_argument("--more", action="store_true",
                    help="also a package-wide edit and warm -n 2 runs")
    ap.add_argument("--full", action="store_true",
                    help="the whole suite, not the subset (~2 min a plain "
                         "run)")
    ap.add_argument("--precision", default=None,
                    help="--tcache-precision values to measure (default: "
                         "executed,file; executed with --quick)")
    ap.add_argument("--plugin-dir", default=os.path.join(TOP, "contrib",
                                                         "pytest"),
                    help="directory holding tcache_pytest/")
    ap.add_argument("--tcached", default=common.TCACHED)
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directory (logs, JUnit XML)")
    ap.add_argument("--python", default=PYTHON,
                    help="the interpreter to run pytest with (default %s)"
                    % PYTHON)
    ap.add_argument("--pythonpath", action="append", default=[],
                    help="a directory to add to PYTHONPATH (repeatable), "
                         "e.g. /usr/lib/python3/dist-packages for another "
                         "interpreter")
    opts = ap.parse_args()
    PYTHON = opts.python
    EXTRA_PATH[:] = opts.pythonpath
    if opts.repeat is None:
        opts.repeat = 1 if opts.quick else 3
    precisions = (opts.precision or (DEFAULT_PRECISION if opts.quick else
                                     "executed,file")).split(",")
    for p in precisions:
        if p not in ("executed", "file"):
            die("--precision: %r is not executed or file" % p)
    suite = SUITES[opts.suite]
    t_start = time.perf_counter()

    src = find_package(suite["package"])
    if src is None:
        die("%s is not installed: apt-get install %s" %
            (suite["package"], suite["debian"]))
    if not os.access(opts.tcached, os.X_OK):
        die("%s not built: run make" % opts.tcached)
    if not os.path.isdir(os.path.join(opts.plugin_dir, "tcache_pytest")):
        die("no tcache_pytest/ in %s" % opts.plugin_dir)
    pytest_v, xdist_v = versions()
    if opts.quick:
        targets, chose = list(suite["quick"]), "quick"
    elif opts.full:
        targets, chose = [suite["package"]], "full"
    else:
        targets = [suite["package"]] + ["--ignore=" + d
                                        for d in suite["ignore"]]
        chose = "subset"

    work = tempfile.mkdtemp(prefix="tcache-bench-pytest-")
    root = os.path.join(work, "suite")
    logdir = os.path.join(work, "logs")
    os.makedirs(root)
    os.makedirs(logdir)
    pkgdir = copy_package(src, root, suite["package"])
    env = dict(os.environ, PYTHONPATH=pythonpath(opts.plugin_dir),
               TCACHE_MEMO_DIR=os.path.join(work, "memo"))
    for name in ("TCACHE_DISABLE", "TCACHE_SOCKET", "PYTEST_ADDOPTS",
                 "PYTEST_PLUGINS", "PYTHONDONTWRITEBYTECODE",
                 "PYTHONUNBUFFERED", "TCACHE_TRACER"):
        env.pop(name, None)
    sys.stderr.write("bench/%s: %s from %s, copied to %s; runs: %s\n" %
                     (PART, suite["package"], src, root, " ".join(targets)))
    daemon = Daemon(opts.tcached, work)
    runner = Runner(root, targets, env, daemon, logdir)
    db_after = None
    try:
        check_copy_imported(root, suite["package"], pkgdir, env, logdir)
        rows = run_all(runner, suite, root, precisions, opts, xdist_v)
        db_after = daemon.db_bytes()
    finally:
        daemon.stop()
    problems = check(rows)
    seconds = time.perf_counter() - t_start
    out = report(rows, suite, src, targets, chose, precisions, pytest_v,
                 xdist_v, db_after, problems, opts, work, seconds)
    if opts.keep:
        print("logs and JUnit XML kept in %s" % work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    common.write(opts.json, PART, seconds, out["figures"], out["goals"],
                 out["table"])
    return 1 if problems else 0


def report(rows, suite, src, targets, chose, precisions, pytest_v, xdist_v,
           db_bytes, problems, opts, work, seconds):
    by = {r["label"]: r for r in rows}
    plain, collect = by["plain"], by["collect"]
    n = max(plain.get("tests", 0), 1)
    table = [["run", "precision", "wall s", "x plain", "x collect", "tests",
              "ran", "cached"]]
    for r in rows:
        table.append([r["label"], r.get("precision", ""), r["wall_s"],
                      r["wall_s"] / plain["wall_s"],
                      r["wall_s"] / collect["wall_s"], r.get("tests", 0),
                      r.get("ran", 0), r.get("cached", 0)])
    print("pytest plugin on %s's own test suite (%s, %s): %s" % (
        suite["package"], suite["debian"], src, " ".join(targets)))
    print("machine: %d CPUs, %s %s, Python %s, pytest %s, xdist %s" % (
        os.cpu_count() or 0, platform.system(), platform.machine(),
        VERSIONS.get("python"), pytest_v, xdist_v or "absent"))
    print("collect and warm: medians of %d rounds" % opts.repeat)
    print()
    common.print_table(table)
    for r in rows:
        if r.get("edited"):
            print("%s edited %s" % (r["label"], r["edited"]))
        if r.get("walls_s") and len(r["walls_s"]) > 1:
            print("%s: walls %s s, tests ran %s" % (
                r["label"], r["walls_s"], r["ran_each"]))
    figures = {
        "suite": suite["package"], "debian_package": suite["debian"],
        "source": src, "runs": chose, "targets": targets,
        "tests": plain.get("tests", 0), "rounds": opts.repeat,
        "python": VERSIONS.get("python"), "pytest": pytest_v,
        "xdist": xdist_v, "machine": common.machine(),
        "plain_s": plain["wall_s"], "collect_s": collect["wall_s"],
        "collect_runs_s": collect.get("walls_s"),
        "db_bytes": db_bytes, "problems": problems,
    }
    goals = {}
    print()
    for p in precisions:
        t = tag(p)
        cold, warm = by["cold" + t], by["warm" + t]
        edit, after = by["edit-leaf" + t], by.get("warm-after" + t, {})
        f = {
            "cold_s": cold["wall_s"], "warm_s": warm["wall_s"],
            "warm_runs_s": warm["walls_s"], "warm_ran": warm["ran_each"],
            "edit_leaf_s": edit["wall_s"], "edit_leaf_ran": edit["ran"],
            "warm_after_s": after.get("wall_s"),
            "warm_after_ran": after.get("ran"),
            "cold_over_plain": round(cold["wall_s"] / plain["wall_s"], 3),
            "cold_overhead_ms_per_test": round(
                (cold["wall_s"] - plain["wall_s"]) / n * 1000, 3),
            "warm_over_collect": round(warm["wall_s"] / collect["wall_s"],
                                       3),
            "warm_overhead_ms_per_test": round(
                (warm["wall_s"] - collect["wall_s"]) / n * 1000, 3),
        }
        for label in ("edit-pkg", "warm -n 2"):
            r = by.get(label + t)
            if r is not None:
                key = label.replace(" ", "").replace("-", "_")
                f[key + "_s"] = r["wall_s"]
                f[key + "_ran"] = r["ran"]
        figures[p] = f
        print("%s: cold %.2fx plain (%+.2f ms a test); warm %.2fx "
              "collect-only (%+.2f ms a test); one-line edit: %d tests ran "
              "in %.2f s" % (p, f["cold_over_plain"],
                             f["cold_overhead_ms_per_test"],
                             f["warm_over_collect"],
                             f["warm_overhead_ms_per_test"],
                             edit["ran"], edit["wall_s"]))
        if p == DEFAULT_PRECISION:
            goals["plugin_warm_vs_collect"] = common.goal(
                warm["wall_s"], collect["wall_s"], "<=", 1.2, "s",
                "pytest --collect-only on the same tests")
    for p in problems:
        print("PROBLEM: " + p)
    print("took %.0f s" % seconds)
    figures["runs_detail"] = [
        {k: v for k, v in r.items() if k not in ("outcomes", "log")}
        for r in rows]
    return {"figures": figures, "goals": goals, "table": table}


if __name__ == "__main__":
    sys.exit(main())
