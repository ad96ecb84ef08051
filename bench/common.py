"""What every part of bench/ shares: a private tcached, the machine's
description, percentiles, and the result file every part writes.

A part is a script bench/<part>.py with --json FILE and --quick; bench/run.py
runs them one after another and merges their files (see its docstring).
Standard library only.
"""

import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
BUILD = os.environ.get("TCACHE_BUILD", os.path.join(TOP, "build"))
TCACHED = os.path.join(BUILD, "tcached")
TCACHE = os.path.join(BUILD, "tcache")
BENCH_BIN = os.path.join(BUILD, "bench")


def die(part, msg):
    sys.stderr.write("bench/%s: %s\n" % (part, msg))
    sys.exit(2)


def program(name):
    """build/bench/NAME, built by `make bench-bin` if missing."""
    path = os.path.join(BENCH_BIN, name)
    if not os.access(path, os.X_OK):
        subprocess.run(["make", "-s", "-C", TOP, os.path.relpath(path, TOP)],
                       check=True)
    return path


class Daemon:
    """A tcached of our own on a temporary socket and database.

    args: extra flags.  The socket and database live in workdir (a new
    temporary directory unless given); stop() ends it with SIGTERM.
    """

    def __init__(self, workdir=None, args=(), db=None, env=None, cpu=None):
        self.own_dir = workdir is None
        self.dir = workdir or tempfile.mkdtemp(prefix="tcache-bench-")
        self.sock = os.path.join(self.dir, "tcached.sock")
        self.db = db or os.path.join(self.dir, "tcache.db")
        self.log = os.path.join(self.dir, "tcached.log")
        cmd = [TCACHED, "--socket", self.sock, "--db", self.db] + list(args)
        if cpu is not None:
            cmd = ["taskset", "-c", str(cpu)] + cmd
        e = dict(os.environ)
        e.pop("TCACHE_SOCKET", None)
        e.pop("TCACHE_DB", None)
        e.update(env or {})
        self.t_exec = time.perf_counter()
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=e)
        self.t_ready = self.wait_ready()
        self.start_s = self.t_ready - self.t_exec

    def answers(self):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(self.sock)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def wait_ready(self, timeout=30.0):
        end = time.perf_counter() + timeout
        while time.perf_counter() < end:
            if self.proc.poll() is not None:
                raise RuntimeError("tcached exited with %d; log: %s" %
                                   (self.proc.returncode, self.tail()))
            if self.answers():
                return time.perf_counter()
            time.sleep(0.0005)
        raise RuntimeError("tcached did not answer on %s" % self.sock)

    def tail(self):
        try:
            with open(self.log, errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def rss_kib(self, field="VmRSS"):
        """VmRSS (now) or VmHWM (peak) of tcached, in KiB."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
        return None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.own_dir:
            subprocess.run(["rm", "-rf", self.dir])

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def machine():
    """What the figures were measured on."""
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    mem = 0
    try:
        with open("/proc/meminfo") as f:
            mem = int(f.readline().split()[1]) // 1024
    except (OSError, ValueError, IndexError):
        pass
    return {"cpu": model, "cpus": os.cpu_count(), "mem_mib": mem,
            "kernel": platform.release(), "python": platform.python_version(),
            "os": _os_release()}


def _os_release():
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.system()


def percentile(values, p):
    """The p-th percentile (0..100) by nearest rank; values need not be
    sorted."""
    if not values:
        return None
    v = sorted(values)
    k = max(0, min(len(v) - 1, int(round(p / 100.0 * len(v) + 0.5)) - 1))
    return v[k]


def median(values):
    return statistics.median(values) if values else None


def goal(ours, reference, cmp, target, unit, reference_is):
    """One goal: the ratio ours/reference against `cmp target`."""
    ratio = ours / reference if reference else None
    met = None
    if ratio is not None:
        met = ratio <= target if cmp == "<=" else ratio >= target
    return {"ratio": ratio, "goal": "%s %g" % (cmp, target), "ours": ours,
            "reference": reference, "unit": unit,
            "reference_is": reference_is, "met": met}


def write(path, part, seconds, figures, goals, table):
    """The result file of one part (the shape bench/run.py merges)."""
    out = {"part": part, "seconds": round(seconds, 3), "figures": figures,
           "goals": goals, "table": table}
    if path:
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(out, f, indent=1, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
    return out


def print_table(rows, out=sys.stdout):
    """rows[0] is the header; every cell is printed with str()."""
    if not rows:
        return
    cells = [[_cell(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells if i < len(r))
              for i in range(max(len(r) for r in cells))]
    for n, r in enumerate(cells):
        out.write("  ".join(c.rjust(widths[i]) if i else c.ljust(widths[i])
                            for i, c in enumerate(r)).rstrip() + "\n")
        if n == 0:
            out.write("  ".join("-" * w for w in widths) + "\n")
    out.flush()


def _cell(c):
    if isinstance(c, float):
        if c == 0 or abs(c) >= 100:
            return "%.0f" % c
        if abs(c) >= 10:
            return "%.1f" % c
        return "%.2f" % c
    return str(c)
