"""tcache stats: hits, misses, time saved (the recorded durations of the
hits), entries; counters persist across a restart; --reset zeroes them."""

import json
import re

PERSISTENT = ("hits", "misses", "records", "time_saved_us")


def dep(project):
    return ["--root", project.root, "--dep", "src"]


def fill(d, project):
    for test, outcome, dur in (("t1", "pass", "1.5"), ("t2", "pass", "2.25"),
                               ("t3", "fail", "9")):
        r = d.cli("record", "--test", test, "--outcome", outcome,
                  "--duration", dur, *dep(project))
        assert r.rc == 0, r
    # hits: t1 twice, t2 once; misses: t3 (a fail), t4 (unknown)
    for test, want in (("t1", 0), ("t1", 0), ("t2", 0), ("t3", 1), ("t4", 1)):
        r = d.cli("lookup", "--test", test, *dep(project))
        assert r.rc == want, (test, r)


def stats_json(d, *args):
    r = d.cli("stats", "--json", *args)
    assert r.rc == 0, r
    return json.loads(r.stdout)


def test_counts(daemon, project):
    s = stats_json(daemon)
    assert s["hits"] == 0 and s["misses"] == 0 and s["entries"] == 0
    assert s["hit_rate"] is None
    fill(daemon, project)
    s = stats_json(daemon)
    assert s["hits"] == 3
    assert s["misses"] == 2
    assert s["time_saved_us"] == 1500000 * 2 + 2250000
    assert s["records"] == 3
    assert s["entries"] == 3
    assert abs(s["hit_rate"] - 0.6) < 1e-9
    assert s["db_bytes"] > 0
    # The same through the raw protocol.
    with daemon.raw() as c:
        raw = c.stats()
    for k in PERSISTENT + ("entries",):
        assert raw[k] == s[k], k
    r = daemon.cli("stats")
    assert r.rc == 0, r
    assert re.search(r"^hits\s+3$", r.stdout, re.M), r.stdout
    assert re.search(r"^misses\s+2$", r.stdout, re.M), r.stdout
    assert re.search(r"^hit rate\s+60\.0%$", r.stdout, re.M), r.stdout
    assert re.search(r"^time saved\s+5\.25?s$", r.stdout, re.M), r.stdout
    assert re.search(r"^entries\s+3$", r.stdout, re.M), r.stdout


def test_hit_counts_on_entries(daemon, project):
    fill(daemon, project)
    r = daemon.cli("ls", "--json")
    assert r.rc == 0, r
    hits = {e["test"]: e["hits"] for e in json.loads(r.stdout)["entries"]}
    assert hits == {"t1": 2, "t2": 1, "t3": 0}


def test_counters_persist_across_restart(daemon, project):
    fill(daemon, project)
    before = stats_json(daemon)
    assert daemon.stop() == 0
    daemon.restart()
    after = stats_json(daemon)
    for k in PERSISTENT + ("entries",):
        assert after[k] == before[k], (k, before, after)
    # And they keep counting from there.
    assert daemon.cli("lookup", "--test", "t1", *dep(project)).rc == 0
    assert stats_json(daemon)["hits"] == before["hits"] + 1


def test_reset(daemon, project):
    fill(daemon, project)
    r = daemon.cli("stats", "--reset")
    assert r.rc == 0, r
    s = stats_json(daemon)
    for k in PERSISTENT:
        assert s[k] == 0, (k, s)
    assert s["entries"] == 3         # a live figure, not a counter
    assert daemon.cli("lookup", "--test", "t2", *dep(project)).rc == 0
    s = stats_json(daemon)
    assert s["hits"] == 1 and s["time_saved_us"] == 2250000
    # A reset survives a restart: it was committed.
    assert daemon.stop() == 0
    daemon.restart()
    s = stats_json(daemon)
    assert s["hits"] == 1 and s["misses"] == 0


def test_reset_json_reports_zero(daemon, project):
    fill(daemon, project)
    s = stats_json(daemon, "--reset")
    # Whether the reply shows the figures before or after the reset, the
    # next one must be zero.
    assert s["hits"] in (0, 3)
    assert stats_json(daemon)["hits"] == 0
