#!/usr/bin/python3
"""What the execution tracer of --tcache-precision=executed costs: a pure
Python CPU workload of many small calls (recursive fib, method calls, a
generator, subscripts of lists, dicts and a class with a Python
__getitem__, a little standard-library json), timed with no tracer and under
each tracer kind this interpreter has (contrib/pytest/tcache_pytest/tracer.py),
and, for reference, the python kind's logic as a sys.settrace function.

The workload's own functions are "project" code (the prefix is this
directory), json's are not, so both paths of a tracer are exercised.  Each
run splits the workload into --intervals intervals with take() between them,
as the plugin does between tests.  Prints the median of --runs runs per kind
and the ratio to no tracer.  Standard library only.

Usage: bench/tracer_overhead.py [--runs N] [--intervals N] [--scale N]
                                [--python INTERPRETER]...
--python runs the same benchmark under other interpreters as well (e.g. a
3.12 for the sys.monitoring kind, a 3.9 or 3.10 for frameeval on their frame
layout).
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "contrib", "pytest"))

from tcache_pytest import tracer as tc_tracer  # noqa: E402


def fib(n):
    return n if n < 2 else fib(n - 1) + fib(n - 2)


class Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y

    def norm1(self):
        return abs(self.x) + abs(self.y)

    def moved(self, dx):
        return Point(self.x + dx, self.y)


def squares(n):
    for i in range(n):
        yield i * i


class Grid:
    """Subscripted through a Python __getitem__: on CPython 3.11.0 to
    3.11.3 the frameeval kind keeps code with subscripts unspecialized
    (see _tracer.c), which this measures."""

    def __init__(self, n):
        self.rows = [list(range(n)) for _ in range(n)]

    def __getitem__(self, ij):
        return self.rows[ij[0]][ij[1]]


def subscript_sum(grid, table, n):
    total = 0
    for i in range(n):
        for j in range(n):
            total += grid[i, j] + table[j]
    return total


def chunk(scale):
    """One interval's work: about 50,000 Python function calls and
    generator resumptions at scale 1."""
    total = fib(18 + scale)
    p = Point(0, 1)
    for i in range(3000 * scale):
        p = p.moved(1)
        total += p.norm1()
    total += sum(squares(20000 * scale))
    table = {j: j for j in range(60)}
    for _ in range(scale):
        total += subscript_sum(Grid(60), table, 60)
    total += sum(map(lambda s: len(s), (str(i) for i in range(5000 * scale))))
    total += len(json.dumps([{"a": i, "b": [i, str(i)]}
                             for i in range(300 * scale)]))
    return total


class SettraceReference:
    """Not a tracer kind: the python kind's logic as a global trace
    function returning None (sys.settrace), for comparison only.  Cheaper
    than a profile function in Python (no c_call/c_return events), but it
    would displace coverage.py's and debuggers' hook."""

    kind = "settrace*"

    def __init__(self, prefix):
        seen, found = set(), []
        self._seen, self._found = seen, found

        def trace(frame, event, arg):
            code = frame.f_code
            if code not in seen:
                seen.add(code)
                if code.co_flags & 1 and code.co_filename.startswith(prefix):
                    found.append(code)
        self._trace = trace

    def start(self):
        sys.settrace(self._trace)

    def take(self):
        found = self._found[:]
        del self._found[:]
        self._seen.clear()
        return found

    def intact(self):
        return sys.gettrace() is self._trace

    def stop(self):
        sys.settrace(None)


def run_once(kind, intervals, scale):
    t = None
    if kind == "settrace*":
        t = SettraceReference(HERE + os.sep)
        t.start()
    elif kind != "none":
        t = tc_tracer.make_tracer(HERE + os.sep, kind)
        assert t.kind == kind, (kind, t.kind, t.why_not_c)
        t.start()
    found = 0
    t0 = time.perf_counter()
    for _ in range(intervals):
        chunk(scale)
        if t is not None:
            found += len(t.take())
    elapsed = time.perf_counter() - t0
    if t is not None:
        intact = t.intact()
        t.stop()
        # Every interval ran fib, Point's methods, squares, Grid's
        # methods, chunk and two lambdas/genexprs: a tracer that records
        # nothing (or misses __getitem__) is broken.
        assert intact and found >= 8 * intervals, (kind, found, intact)
    return elapsed


def kinds_here():
    kinds = ["none"]
    if hasattr(sys, "monitoring"):
        kinds.append("monitoring")
    module, why = tc_tracer.load_c_helper()
    if module is not None and getattr(module, "HAVE_FRAMEEVAL", 0):
        kinds.append("frameeval")
    if module is not None:
        kinds.append("c")
    else:
        print("c: unavailable: %s" % why, file=sys.stderr)
    kinds += ["python", "settrace*"]
    return kinds


def bench(runs, intervals, scale):
    kinds = kinds_here()
    times = {k: [] for k in kinds}
    run_once("none", 1, scale)           # warm up: imports, the C build
    # Interleaved, so that drift in the machine's speed hits every kind.
    for _ in range(runs):
        for k in kinds:
            times[k].append(run_once(k, intervals, scale))
    return {k: statistics.median(v) for k, v in times.items()}


def show(name, med):
    base = med["none"]
    print("%s" % name)
    print("  %-11s %10s %8s" % ("tracer", "median s", "ratio"))
    for k, v in med.items():
        print("  %-11s %10.4f %7.2fx" % (k, v, v / base))
    print("  * reference only, not a tracer kind (it displaces the trace "
          "hook of coverage.py\n    and debuggers)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--intervals", type=int, default=20)
    ap.add_argument("--scale", type=int, default=1)
    ap.add_argument("--python", action="append", default=[],
                    help="also run under this interpreter (repeatable)")
    ap.add_argument("--json", action="store_true",
                    help="print one JSON object (used for --python)")
    a = ap.parse_args()
    name = "Python %s (%s)" % (platform.python_version(), sys.executable)
    med = bench(a.runs, a.intervals, a.scale)
    if a.json:
        print(json.dumps({"name": name, "med": med}))
        return
    print("runs %d, intervals %d, scale %d; median wall time of a run"
          % (a.runs, a.intervals, a.scale))
    show(name, med)
    for py in a.python:
        r = subprocess.run([py, os.path.abspath(__file__), "--json",
                            "--runs", str(a.runs), "--intervals",
                            str(a.intervals), "--scale", str(a.scale)],
                           stdout=subprocess.PIPE)
        if r.returncode != 0:
            print("%s: failed (status %d)" % (py, r.returncode))
            continue
        other = json.loads(r.stdout.decode().strip().splitlines()[-1])
        show(other["name"], other["med"])


if __name__ == "__main__":
    main()
