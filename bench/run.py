#!/usr/bin/python3
"""make bench: every part of bench/ in one run, one after another, on one
machine, and one result file.

Parts (each bench/<part>.py, runnable alone with --json FILE and --quick):
  latency     one lookup round trip: libtcache vs a raw AF_UNIX ping-pong vs
              Redis GET, in C and from Python
  throughput  batched lookups and records vs SQLite in-process, concurrent
              record clients
  scale       the database at 10 k, 100 k and 1 M entries: lookups, records,
              start time, RSS, file size, expiry sweep, event-loop stalls
  hashing     a 10,000-file tree cold and warm vs b2sum and lstat
  pytest      (pytest_suite.py) the pytest plugin on networkx's own suite vs plain pytest and
              pytest --collect-only

Writes OUT/latest.json (OUT is bench/results unless --out); the previous
latest.json becomes previous.json first, and each goal's ratio is printed
beside the previous run's.  In latest.json every goal is a top-level field
`<what>_ratio` (ours over the reference) with `<what>_goal` beside it, and
each part's raw figures under "parts".

Usage: bench/run.py [--quick] [--only P,Q] [--skip P,Q] [--out DIR]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

PARTS = ["latency", "throughput", "scale", "hashing", "pytest"]
SCRIPTS = {"pytest": "pytest_suite.py"}    # else <part>.py


def run_part(part, quick, tmpdir):
    """Runs bench/<part>.py; its result dict, or one saying why not."""
    script = os.path.join(common.HERE, SCRIPTS.get(part, part + ".py"))
    out = os.path.join(tmpdir, part + ".json")
    cmd = [sys.executable, script, "--json", out] + (["--quick"] if quick
                                                     else [])
    print("== %s" % part, flush=True)
    t0 = time.perf_counter()
    rc = subprocess.run(cmd).returncode
    took = time.perf_counter() - t0
    if rc != 0 or not os.path.exists(out):
        return {"part": part, "seconds": round(took, 3), "failed": rc,
                "figures": {}, "goals": {}, "table": []}
    with open(out) as f:
        res = json.load(f)
    res["seconds"] = round(took, 3)
    return res


def flatten(parts):
    """Top-level `<what>_ratio` and `<what>_goal` fields of every goal."""
    flat = {}
    for res in parts.values():
        for what, g in sorted(res.get("goals", {}).items()):
            flat[what + "_ratio"] = g.get("ratio")
            flat[what + "_goal"] = g.get("goal")
            flat[what + "_met"] = g.get("met")
    return flat


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def goals_table(parts, previous):
    rows = [["goal", "ratio", "target", "met", "ours", "reference",
             "reference is", "previous"]]
    for part in PARTS:
        res = parts.get(part)
        if not res:
            continue
        for what, g in sorted(res.get("goals", {}).items()):
            prev = previous.get(what + "_ratio") if previous else None
            rows.append([what, fmt(g.get("ratio")), g.get("goal", ""),
                         {True: "yes", False: "NO"}.get(g.get("met"), "?"),
                         "%s %s" % (fmt(g.get("ours")), g.get("unit", "")),
                         fmt(g.get("reference")),
                         short(g.get("reference_is", "")),
                         fmt(prev)])
    return rows


def short(text, width=48):
    """The table's cell; latest.json keeps the whole text."""
    return text if len(text) <= width else text[:width - 3] + "..."


def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return "%.3g" % v
    return str(v)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="smoke-size runs (seconds), figures mean little")
    ap.add_argument("--only", default="", help="comma-separated parts")
    ap.add_argument("--skip", default="", help="comma-separated parts")
    ap.add_argument("--out", default=os.path.join(common.HERE, "results"))
    opts = ap.parse_args()
    only = [p for p in opts.only.split(",") if p]
    skip = [p for p in opts.skip.split(",") if p]
    for p in only + skip:
        if p not in PARTS:
            common.die("run", "no part %r (parts: %s)" % (p, ", ".join(PARTS)))
    chosen = [p for p in PARTS if (not only or p in only) and p not in skip]

    os.makedirs(opts.out, exist_ok=True)
    latest = os.path.join(opts.out, "latest.json")
    previous = load(latest)
    t0 = time.perf_counter()
    parts = {}
    with tempfile.TemporaryDirectory(prefix="tcache-bench-") as tmp:
        for p in chosen:
            parts[p] = run_part(p, opts.quick, tmp)
    result = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "quick": opts.quick, "machine": common.machine(),
              "seconds": round(time.perf_counter() - t0, 3),
              "commit": git_head()}
    result.update(flatten(parts))
    result["parts"] = parts
    if previous is not None:
        os.replace(latest, os.path.join(opts.out, "previous.json"))
    tmpf = latest + ".tmp"
    with open(tmpf, "w") as f:
        json.dump(result, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmpf, latest)

    print("\n== goals (ratios are ours over the reference; previous: %s)" %
          (previous.get("when", "?") if previous else "none"))
    common.print_table(goals_table(parts, previous))
    failed = [p for p, r in parts.items() if r.get("failed") is not None]
    print("\n%d parts in %.0f s; wrote %s%s" %
          (len(parts), result["seconds"], latest,
           "; FAILED: " + ", ".join(failed) if failed else ""))
    return 1 if failed else 0


def git_head():
    r = subprocess.run(["git", "-C", common.TOP, "rev-parse", "--short",
                        "HEAD"], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else None


if __name__ == "__main__":
    sys.exit(main())
