#!/usr/bin/python3
"""The pytest plugin on a real suite nobody here wrote: networkx's own tests,
as Debian ships them in python3-networkx, run from a copy in a fresh
temporary directory (so that it can be edited) against a private tcached.

Measured in one run, each a wall time of the whole pytest process:
  plain       pytest, no plugin
  collect     pytest --collect-only -q
  cold        --tcache on an empty database
  warm        --tcache, nothing changed (median of --repeat runs)
  edit-leaf   --tcache after a one-line edit of a module that only its own
              tests import
  edit-pkg    --tcache after a one-line edit of a module that the package's
              __init__ imports (every test imports the package)
  warm -n 2   --tcache -n 2 (pytest-xdist), nothing changed (median)

Every run writes JUnit XML; the per-test outcomes of each run are compared
with plain pytest's, and a difference is reported (a cached or re-run test
must end as plain pytest ended it).  Standard library only; installs
nothing.  Usage: bench/pytest_suite.py [--repeat N] [--quick] [--keep]
"""

import argparse
import json
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
PYTHON = "/usr/bin/python3"
# Directories put after ours on PYTHONPATH (--pythonpath): how another
# interpreter finds Debian's pytest and networkx.
EXTRA_PATH = []


def pythonpath(*first):
    return os.pathsep.join(list(first) + EXTRA_PATH)

SUITES = {
    "networkx": dict(
        debian="python3-networkx",
        package="networkx",
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
    def __init__(self, root, package, env, daemon, logdir):
        self.root = root
        self.package = package
        self.env = env
        self.daemon = daemon
        self.logdir = logdir
        self.n = 0

    def run(self, label, extra, tcache):
        self.n += 1
        base = "%02d-%s" % (self.n, re.sub(r"\W+", "_", label))
        xml = os.path.join(self.logdir, base + ".xml")
        args = [PYTHON, "-m", "pytest", "-q", "--rootdir=" + self.root,
                "--junitxml=" + xml]
        if tcache:
            # PATH joined to the option: pytest takes a separate value of
            # an option it does not know yet for a path argument when it
            # chooses the rootdir.
            args += ["-p", "tcache_pytest.plugin", "--tcache",
                     "--tcache-socket=" + self.daemon.sock]
        args += extra + [self.package]
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
        else:
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


def median_run(runner, label, extra, repeat):
    runs = [runner.run("%s#%d" % (label, i + 1), extra, True)
            for i in range(repeat)]
    # The counts shown are those of the run whose time is the median, and
    # every run's are kept: a warm run that re-runs tests must show.
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


def compare(reference, res):
    """Tests whose outcome differs from plain pytest's."""
    ref, got = reference.get("outcomes", {}), res.get("outcomes", {})
    diff = {}
    for name in sorted(set(ref) | set(got)):
        if ref.get(name) != got.get(name):
            diff[name] = (ref.get(name), got.get(name))
    return diff


def precision_runs(runner, suite, root, precision, opts, xdist_v):
    """cold, warm, a leaf edit, and (unless quick) a package-wide edit and
    warm -n 2, under one --tcache-precision; the edits are undone after."""
    arg = ["--tcache-precision=" + precision]
    tag = "" if precision == "file" else " x"   # x: executed
    saved = {}
    for rel in (suite["leaf"], suite["pkg"]):
        with open(os.path.join(root, rel)) as f:
            saved[rel] = f.read()
    rows = [runner.run("cold" + tag, arg, True)]
    rows.append(median_run(runner, "warm" + tag, arg, opts.repeat))
    line = one_line_edit(os.path.join(root, suite["leaf"]))
    rows.append(runner.run("edit-leaf" + tag, arg, True))
    rows[-1]["edited"] = "%s:%d" % (suite["leaf"], line)
    rows.append(runner.run("warm-after" + tag, arg, True))
    if not opts.quick:
        line = one_line_edit(os.path.join(root, suite["pkg"]))
        rows.append(runner.run("edit-pkg" + tag, arg, True))
        rows[-1]["edited"] = "%s:%d" % (suite["pkg"], line)
        if xdist_v:
            rows.append(median_run(runner, "warm -n 2" + tag,
                                   arg + ["-n", "2"], opts.repeat))
    for rel, text in saved.items():
        with open(os.path.join(root, rel), "w") as f:
            f.write(text)
    for r in rows:
        r["precision"] = precision
    return rows


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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--suite", default="networkx", choices=sorted(SUITES))
    ap.add_argument("--repeat", type=int, default=3,
                    help="warm runs whose median is taken (default 3)")
    ap.add_argument("--quick", action="store_true",
                    help="skip the package-wide edit and the -n 2 runs")
    ap.add_argument("--precision", default="file,executed",
                    help="--tcache-precision values to measure, each from "
                         "a pristine copy (default: file,executed)")
    ap.add_argument("--plugin-dir", default=os.path.join(TOP, "contrib",
                                                         "pytest"),
                    help="directory holding tcache_pytest/")
    ap.add_argument("--tcached", default=os.path.join(TOP, "build",
                                                      "tcached"))
    ap.add_argument("--json", default=os.path.join(HERE, "results",
                                                   "pytest_suite.json"))
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
    global PYTHON
    PYTHON = opts.python
    EXTRA_PATH[:] = opts.pythonpath
    suite = SUITES[opts.suite]

    src = find_package(suite["package"])
    if src is None:
        die("%s is not installed: apt-get install %s" %
            (suite["package"], suite["debian"]))
    if not os.access(opts.tcached, os.X_OK):
        die("%s not built: run make" % opts.tcached)
    if not os.path.isdir(os.path.join(opts.plugin_dir, "tcache_pytest")):
        die("no tcache_pytest/ in %s" % opts.plugin_dir)
    pytest_v, xdist_v = versions()

    work = tempfile.mkdtemp(prefix="tcache-bench-")
    root = os.path.join(work, "suite")
    logdir = os.path.join(work, "logs")
    os.makedirs(root)
    os.makedirs(logdir)
    pkgdir = copy_package(src, root, suite["package"])
    env = dict(os.environ, PYTHONPATH=pythonpath(opts.plugin_dir))
    for name in ("TCACHE_DISABLE", "TCACHE_SOCKET", "PYTEST_ADDOPTS",
                 "PYTEST_PLUGINS", "PYTHONDONTWRITEBYTECODE"):
        env.pop(name, None)
    sys.stderr.write("pytest_suite: %s from %s, copied to %s\n" %
                     (suite["package"], src, root))
    daemon = Daemon(opts.tcached, work)
    runner = Runner(root, suite["package"], env, daemon, logdir)
    rows = []
    try:
        check_copy_imported(root, suite["package"], pkgdir, env, logdir)
        rows.append(runner.run("plain", [], False))
        rows.append(runner.run("collect", ["--collect-only"], False))
        db_after_cold = {}
        for precision in opts.precision.split(","):
            rows += precision_runs(runner, suite, root, precision, opts,
                                   xdist_v)
            db_after_cold[precision] = daemon.db_bytes()
    finally:
        daemon.stop()

    plain = rows[0]
    problems = []
    for r in rows[1:]:
        if r["label"] == "collect":
            continue
        diff = compare(plain, r)
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

    report(rows, plain, suite, src, pytest_v, xdist_v, db_after_cold,
           problems, opts, work)
    if not opts.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 1 if problems else 0


def report(rows, plain, suite, src, pytest_v, xdist_v, db_bytes, problems,
           opts, work):
    collect = next(r for r in rows if r["label"] == "collect")
    print("pytest plugin on %s's own test suite (%s, %s)" % (
        suite["package"], suite["debian"], src))
    print("machine: %d CPUs, %s %s, Python %s, pytest %s, xdist %s" % (
        os.cpu_count() or 0, platform.system(), platform.machine(),
        VERSIONS.get("python"), pytest_v, xdist_v or "absent"))
    print()
    print("(x: --tcache-precision=executed)")
    print("%-12s %9s %8s %7s %7s %8s  %s" % (
        "run", "wall s", "x plain", "tests", "ran", "cached", "outcomes"))
    for r in rows:
        outcome = ", ".join("%d %s" % (r[w], w) for w in OUTCOME_WORDS
                            if r.get(w))
        print("%-12s %9.2f %8.2f %7d %7d %8d  %s" % (
            r["label"], r["wall_s"], r["wall_s"] / plain["wall_s"],
            r.get("tests", 0), r.get("ran", 0), r.get("cached", 0), outcome))
    for r in rows:
        if r.get("edited"):
            print("%s edited %s" % (r["label"], r["edited"]))
        if r.get("ran_each"):
            print("%s: walls %s s, tests ran %s" % (
                r["label"], r["walls_s"], r["ran_each"]))
    n = max(plain.get("tests", 0), 1)
    summary = {}
    print()
    for precision, tag in (("file", ""), ("executed", " x")):
        cold = next((r for r in rows if r["label"] == "cold" + tag), None)
        warm = next((r for r in rows if r["label"] == "warm" + tag), None)
        if cold is None or warm is None:
            continue
        overhead_ms = (cold["wall_s"] - plain["wall_s"]) / n * 1000
        summary[precision] = dict(
            cold_over_plain_ratio=round(cold["wall_s"] / plain["wall_s"], 3),
            cold_overhead_ms_per_test=round(overhead_ms, 3),
            warm_over_collect_ratio=round(warm["wall_s"] / collect["wall_s"],
                                          3),
            db_bytes_after_cold=db_bytes.get(precision))
        print("%s: cold %.2fx plain (%.2f ms a test); warm / collect-only: "
              "%.2f (goal <= 1.2)" % (
                  precision, cold["wall_s"] / plain["wall_s"], overhead_ms,
                  warm["wall_s"] / collect["wall_s"]))
    for p in problems:
        print("PROBLEM: " + p)
    if opts.keep:
        print("logs and JUnit XML kept in %s" % work)

    out = dict(
        suite=suite["package"], debian_package=suite["debian"],
        source=src, cpus=os.cpu_count(), python=VERSIONS.get("python"),
        pytest=pytest_v, xdist=xdist_v, repeat=opts.repeat,
        precision=summary, warm_over_collect_goal=1.2,
        executed_cold_over_plain_goal=1.3, problems=problems,
        runs=[{k: v for k, v in r.items() if k not in ("outcomes", "log")}
              for r in rows])
    os.makedirs(os.path.dirname(opts.json), exist_ok=True)
    with open(opts.json, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")
    print("wrote %s" % opts.json)


if __name__ == "__main__":
    sys.exit(main())
