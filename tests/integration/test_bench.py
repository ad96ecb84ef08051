"""bench/ cannot rot: every part of `make bench` runs at smoke size
(bench/run.py --quick) and writes the result file make bench writes, with
every goal a number beside its target.  The figures of a quick run mean
nothing; the full run is `make bench` (README, "Performance").

The pytest part needs Debian's python3-networkx (make bench installs it) and
minutes even when quick, so it is left to make bench.
"""

import json
import os
import subprocess
import sys

import pytest

from conftest import BUILD

TOP = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
GOALS = {"lookup_rtt", "lookup_rate_vs_redis", "batched_lookup",
         "batched_record", "concurrent_record", "hash_cold_vs_b2sum",
         "hash_warm_vs_lstat"}
# The scale part's goals are at 1 M entries, which a quick run does not
# build: its figures at smaller sizes are checked instead.


@pytest.mark.skipif(os.path.basename(BUILD) != "build",
                    reason="bench/ builds its programs in the plain build")
def test_every_part_runs_and_reports_its_goals(tmp_path):
    out = tmp_path / "results"
    env = dict(os.environ, TCACHE_BUILD=BUILD)
    for k in [k for k in env if k.startswith("TCACHE_") and k != "TCACHE_BUILD"]:
        del env[k]
    r = subprocess.run([sys.executable, os.path.join(TOP, "bench", "run.py"),
                        "--quick", "--skip", "pytest", "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    first = json.loads((out / "latest.json").read_text())
    assert set(first["parts"]) == {"latency", "throughput", "scale",
                                   "hashing"}
    for what in GOALS:
        assert first[what + "_goal"].split()[0] in ("<=", ">="), what
        ratio = first[what + "_ratio"]
        if what == "lookup_rate_vs_redis" and ratio is None:
            continue        # no redis-server on this machine
        assert isinstance(ratio, (int, float)) and ratio > 0, what
    for part in first["parts"].values():
        assert part["table"] and part["figures"], part["part"]
        assert part.get("failed") is None, part["part"]

    # A second run keeps the first as previous.json.
    r = subprocess.run([sys.executable, os.path.join(TOP, "bench", "run.py"),
                        "--quick", "--only", "hashing", "--out", str(out)],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    prev = json.loads((out / "previous.json").read_text())
    assert prev["when"] == first["when"] and prev["commit"] == first["commit"]
    assert set(prev["parts"]) == set(first["parts"])
    assert "hash_cold_vs_b2sum_ratio" in json.loads(
        (out / "latest.json").read_text())
