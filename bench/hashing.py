#!/usr/bin/python3
"""bench part "hashing": BLAKE2b of a 10,000-file tree, cold and warm.

A tree like a source checkout is made in a temporary directory: 10,000
files in 100 directories of 100, sizes log-uniform between 1 and 20 KiB but
one in 200 between 64 KiB and 1 MiB (about 80 MB in all), incompressible
bytes.  Then, side by side, each a whole process, round after round in a
rotating order, the page cache warm for all (every file is read before
anything is timed):

  b2sum          coreutils `b2sum -l 256 FILE...`, the files as arguments
  ours cold      bench/hashtree collect --no-memo: what `tcache key --dep
                 DIR` does (walk, hash every file, sort, source digest)
                 through libtcache, no memo, its threads as they come
  ours cold, 1 thread   the same with TCACHE_HASH_THREADS=1 (b2sum has one)
  ours, memo first run  the same with an empty memo, which it writes
  ours warm      the same through the memo of an unchanged tree: every
                 file a hit, checked every round (hits == files)
  lstat only     bench/hashtree lstat FILE...: lstat(2) of each file, the
                 files as arguments, nothing else
  walk + stat    bench/hashtree walk: readdir and fstatat through the tree

Before timing, every digest the library gives is checked against b2sum's.
The tree is older than the memo's racy window (2 s) before the memo is
first written, as a checkout being tested is; a file changed within it is
always hashed (proto/PROTOCOL.md, "The digest memo").

Goals: hash_cold_vs_b2sum = ours cold / b2sum (<= 1.0) and
hash_warm_vs_lstat = ours warm / lstat only (<= 2.0), medians of wall time.

Usage: bench/hashing.py [--quick] [--json FILE] [--files N] [--rounds N]
"""

import argparse
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

PART = "hashing"
WINDOW_S = 2.2          # the memo's racy window (2 s) and a margin

# (name, label): the order of the table.
RUNS = [("b2sum", "b2sum -l 256 FILE..."),
        ("cold", "ours cold (no memo)"),
        ("cold_1t", "ours cold, 1 thread"),
        ("prime", "ours, memo first run (writes it)"),
        ("warm", "ours warm (memo, tree unchanged)"),
        ("lstat", "lstat only, FILE..."),
        ("walk", "readdir + fstatat walk")]


def make_tree(top, nfiles, seed):
    """The files (relative paths) and their total size."""
    rnd = random.Random(seed)
    blob = rnd.randbytes(4 << 20)
    paths, total = [], 0
    for i in range(nfiles):
        d = "d%02d/s%d" % (i // 1000, i // 100 % 10)
        if i % 100 == 0:
            os.makedirs(os.path.join(top, d), exist_ok=True)
        if rnd.random() < 0.005:
            lo, hi = 64 << 10, 1 << 20
        else:
            lo, hi = 1 << 10, 20 << 10
        size = int(math.exp(rnd.uniform(math.log(lo), math.log(hi))))
        off = rnd.randrange(0, len(blob) - size)
        rel = "%s/f%05d.c" % (d, i)
        with open(os.path.join(top, rel), "wb") as f:
            f.write(blob[off:off + size])
        paths.append(rel)
        total += size
    return paths, total


def run(cmd, cwd, env=None, capture=False):
    """One whole process: (wall s, CPU s of user + system, stdout)."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, env=env,
                         stdout=subprocess.PIPE if capture else
                         subprocess.DEVNULL)
    out = p.stdout.read() if capture else b""
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise RuntimeError("%s exited %d" % (cmd[0], p.returncode))
    return wall, ru.ru_utime + ru.ru_stime, out.decode()


def counts(out):
    """hashtree collect's last line as a dict."""
    f = out.strip().splitlines()[-1].split()
    return {f[i]: f[i + 1] for i in range(0, len(f) - 1, 2)}


def check_digests(hashtree, tree, files):
    """Every digest of the library is b2sum's."""
    _, _, ours = run([hashtree, "collect", "--no-memo", "--list", ".", "."],
                     tree, capture=True)
    _, _, ref = run(["b2sum", "-l", "256"] + files, tree, capture=True)
    mine = dict(reversed(line.split("  ", 1))
                for line in ours.splitlines()[:-1])
    theirs = dict(reversed(line.split("  ", 1)) for line in ref.splitlines())
    if len(theirs) != len(files) or mine != theirs:
        bad = sorted(k for k in theirs if mine.get(k) != theirs[k])[:3]
        raise RuntimeError("digests differ from b2sum's: %s" % bad)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--json", help="write the result here")
    ap.add_argument("--quick", action="store_true",
                    help="smoke-size run (a few seconds)")
    ap.add_argument("--files", type=int, help="files in the tree")
    ap.add_argument("--rounds", type=int, help="rounds of every run")
    opts = ap.parse_args()
    nfiles = opts.files or (1000 if opts.quick else 10000)
    rounds = opts.rounds or (5 if opts.quick else 21)
    if shutil.which("b2sum") is None:
        common.die(PART, "b2sum (coreutils) not found")

    t0 = time.perf_counter()
    hashtree = common.program("hashtree")
    work = tempfile.mkdtemp(prefix="tcache-bench-hashing-")
    tree = os.path.join(work, "tree")
    memo = os.path.join(work, "cache", "tcache", "digests")
    first = os.path.join(work, "cache", "tcache", "first")
    one = dict(os.environ, TCACHE_HASH_THREADS="1")
    samples = {name: [] for name, _ in RUNS}
    try:
        files, total = make_tree(tree, nfiles, seed=6)
        made = time.time()
        # Reads every file (page cache warm) and checks the digests.
        check_digests(hashtree, tree, files)
        time.sleep(max(0.0, made + WINDOW_S - time.time()))
        _, _, out = run([hashtree, "collect", "--memo", memo, ".", "."],
                        tree, capture=True)
        c = counts(out)
        if int(c["hashed"]) != nfiles or int(c["racy"]) != 0:
            raise RuntimeError("first memo run: %s" % out.strip())
        src = c["src"]
        cmds = {
            "b2sum": (["b2sum", "-l", "256"] + files, None),
            "cold": ([hashtree, "collect", "--no-memo", ".", "."], None),
            "cold_1t": ([hashtree, "collect", "--no-memo", ".", "."], one),
            "prime": ([hashtree, "collect", "--memo", first, ".", "."], None),
            "warm": ([hashtree, "collect", "--memo", memo, ".", "."], None),
            "lstat": ([hashtree, "lstat"] + files, None),
            "walk": ([hashtree, "walk", "."], None),
        }
        names = [name for name, _ in RUNS]
        for r in range(rounds):
            k = r % len(names)
            for name in names[k:] + names[:k]:
                cmd, env = cmds[name]
                if name == "prime" and os.path.exists(first):
                    os.unlink(first)
                ours = cmd[0] == hashtree and cmd[1] == "collect"
                wall, cpu, out = run(cmd, tree, env, capture=ours)
                if ours:
                    c = counts(out)
                    if c["src"] != src or int(c["files"]) != nfiles:
                        raise RuntimeError("%s: %s" % (name, out.strip()))
                    if name == "warm" and int(c["hits"]) != nfiles:
                        raise RuntimeError("warm run not all hits: %s"
                                           % out.strip())
                samples[name].append((wall, cpu))
        memo_bytes = os.path.getsize(memo)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    med = {}
    for name, _ in RUNS:
        walls = [w for w, _ in samples[name]]
        med[name] = {"wall_ms": common.median(walls) * 1e3,
                     "min_ms": min(walls) * 1e3,
                     "cpu_ms": common.median([c for _, c in samples[name]])
                     * 1e3,
                     "wall_ms_runs": [round(w * 1e3, 2) for w in walls]}
    try:
        cpus = len(os.sched_getaffinity(0))
    except OSError:
        cpus = os.cpu_count() or 1
    figures = {"files": nfiles, "bytes": total, "rounds": rounds,
               "memo_bytes": memo_bytes, "cpus": cpus,
               "threads_cold": min(cpus, 8), "page_cache": "warm",
               "racy_window_s": 2, "machine": common.machine()}
    figures.update(med)
    for name in ("b2sum", "cold", "cold_1t"):
        figures[name]["mb_per_s"] = total / 1e6 / (med[name]["wall_ms"] / 1e3)
    figures["cold_1t_vs_b2sum_ratio"] = (med["cold_1t"]["wall_ms"] /
                                         med["b2sum"]["wall_ms"])
    figures["warm_vs_walk_ratio"] = (med["warm"]["wall_ms"] /
                                     med["walk"]["wall_ms"])
    figures["warm_per_file_us"] = med["warm"]["wall_ms"] * 1e3 / nfiles

    goals = {
        "hash_cold_vs_b2sum": common.goal(
            med["cold"]["wall_ms"], med["b2sum"]["wall_ms"], "<=", 1.0,
            "ms wall, median", "b2sum -l 256 over the same files, whole "
            "process (ours: %d threads on %d CPUs)" % (min(cpus, 8), cpus)),
        "hash_warm_vs_lstat": common.goal(
            med["warm"]["wall_ms"], med["lstat"]["wall_ms"], "<=", 2.0,
            "ms wall, median", "a process that only lstat()s every file, "
            "whole process"),
    }

    table = [["%d files, %.1f MB, page cache warm" % (nfiles, total / 1e6),
              "wall ms (median)", "min ms", "CPU ms", "MB/s",
              "/ b2sum", "/ lstat only"]]
    for name, label in RUNS:
        m = med[name]
        mbs = figures[name].get("mb_per_s")
        table.append([label, m["wall_ms"], m["min_ms"], m["cpu_ms"],
                      mbs if mbs is not None else "-",
                      "%.2f" % (m["wall_ms"] / med["b2sum"]["wall_ms"]),
                      "%.2f" % (m["wall_ms"] / med["lstat"]["wall_ms"])])

    took = time.perf_counter() - t0
    common.write(opts.json, PART, took, figures, goals, table)
    print("%d rounds, each run a whole process, in rotating order; "
          "%d CPUs; memo %d bytes" % (rounds, cpus, memo_bytes))
    common.print_table(table)
    for what, g in goals.items():
        print("%s: %.3f (goal %s) %s" % (what, g["ratio"], g["goal"],
                                         "met" if g["met"] else "MISSED"))
    print("took %.1f s" % took)


if __name__ == "__main__":
    main()
