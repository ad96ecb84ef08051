"""tcache stats and top: hits, misses, time saved (the recorded durations
of the hits) today, over the last 7 days and in all; entries; the slowest
cached tests (SLOWEST); --prometheus; counters and days persist across a
restart and a schema migration; --reset zeroes them."""

import datetime
import json
import os
import pty
import re
import select
import sqlite3
import subprocess
import time

import pytest

from conftest import (E_LIMIT, E_MALFORMED, ProtoError, TCACHE, client_env,
                      u32)

PERSISTENT = ("hits", "misses", "records", "time_saved_us")
DAILY = ("hits_today", "misses_today", "time_saved_today_us",
         "hits_7d", "misses_7d", "time_saved_7d_us")
SLOWEST = 0x0A
# The daemon's days are calendar days of its local time: here UTC+14 (a
# POSIX TZ string), whose date is not UTC's for 14 hours of each day, so
# that a daemon counting UTC days fails then.
ZONE = {"TZ": "TCT-14"}
ZONE_OFFSET = datetime.timedelta(hours=14)

# The schema of version 2, as tcached wrote it before the days table and
# the slowest index (schema.sql at d43cde8^, comments left out).
SCHEMA_V2 = """
CREATE TABLE entries (
	id          INTEGER PRIMARY KEY,
	key         BLOB    NOT NULL UNIQUE,
	project     TEXT    NOT NULL,
	test        TEXT    NOT NULL,
	root        TEXT    NOT NULL,	
	outcome     INTEGER NOT NULL,	
	flaky       INTEGER NOT NULL DEFAULT 0,
	duration_us INTEGER NOT NULL,
	message     TEXT    NOT NULL DEFAULT '',
	created     INTEGER NOT NULL,
	expires     INTEGER NOT NULL,
	hits        INTEGER NOT NULL DEFAULT 0,
	last_used   INTEGER NOT NULL,
	inputset    INTEGER REFERENCES inputsets(id)
);
CREATE INDEX entries_expires ON entries(expires);
CREATE INDEX entries_last_used ON entries(last_used);
CREATE INDEX entries_test ON entries(test, project, created);
CREATE INDEX entries_flaky ON entries(flaky) WHERE flaky = 1;
CREATE INDEX entries_inputset ON entries(inputset);
CREATE TABLE inputsets (
	id   INTEGER PRIMARY KEY,
	hash INTEGER NOT NULL
);
CREATE INDEX inputsets_hash ON inputsets(hash);
CREATE TABLE setinputs (
	setid   INTEGER NOT NULL REFERENCES inputsets(id) ON DELETE CASCADE,
	kind    INTEGER NOT NULL,	
	path    TEXT    NOT NULL,	
	abspath TEXT,			
	digest  BLOB    NOT NULL,
	PRIMARY KEY (setid, kind, path)
) WITHOUT ROWID;
CREATE INDEX setinputs_abspath ON setinputs(abspath, setid)
	WHERE abspath IS NOT NULL;
CREATE TABLE inputs (
	entry   INTEGER NOT NULL REFERENCES entries(id) ON DELETE CASCADE,
	kind    INTEGER NOT NULL,	
	path    TEXT    NOT NULL,	
	abspath TEXT,			
	digest  BLOB    NOT NULL,
	PRIMARY KEY (entry, kind, path)
) WITHOUT ROWID;
CREATE INDEX inputs_abspath ON inputs(abspath, entry) WHERE abspath IS NOT NULL;
CREATE TRIGGER entries_release_deleted AFTER DELETE ON entries
WHEN OLD.inputset IS NOT NULL BEGIN
	DELETE FROM inputsets WHERE id = OLD.inputset AND NOT EXISTS
	    (SELECT 1 FROM entries WHERE inputset = OLD.inputset);
END;
CREATE TRIGGER entries_release_updated AFTER UPDATE OF inputset ON entries
WHEN OLD.inputset IS NOT NULL AND OLD.inputset IS NOT NEW.inputset BEGIN
	DELETE FROM inputsets WHERE id = OLD.inputset AND NOT EXISTS
	    (SELECT 1 FROM entries WHERE inputset = OLD.inputset);
END;
CREATE TABLE counters (
	name  TEXT PRIMARY KEY,
	value INTEGER NOT NULL
) WITHOUT ROWID;
PRAGMA user_version = 2;
"""


def today():
    """Today in ZONE, as days since 1970-01-01."""
    local = datetime.datetime.now(datetime.timezone(ZONE_OFFSET))
    return (local.date() - datetime.date(1970, 1, 1)).days


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


def slowest(d, n):
    """SLOWEST through the raw protocol: [(project, test, dur, hits, saved)]."""
    with d.raw() as c:
        r = c.call(SLOWEST, u32(n))
        out = [(r.str(), r.str(), r.u64(), r.u64(), r.u64())
               for _ in range(r.u32())]
        r.done()
    return out


def days_rows(db):
    con = sqlite3.connect(db)
    try:
        return {row[0]: row[1:] for row in con.execute(
            "SELECT day, hits, misses, time_saved_us FROM days")}
    finally:
        con.close()


def test_counts(daemon, project):
    s = stats_json(daemon)
    assert s["hits"] == 0 and s["misses"] == 0 and s["entries"] == 0
    assert s["hit_rate"] is None and s["hit_rate_today"] is None
    assert s["slowest"] == []
    fill(daemon, project)
    s = stats_json(daemon)
    assert s["hits"] == 3
    assert s["misses"] == 2
    assert s["time_saved_us"] == 1500000 * 2 + 2250000
    assert s["records"] == 3
    assert s["entries"] == 3
    assert abs(s["hit_rate"] - 0.6) < 1e-9
    assert s["db_bytes"] > 0
    # All of it happened today, and so within the last 7 days.
    for period in ("today", "7d"):
        assert s["hits_" + period] == 3, s
        assert s["misses_" + period] == 2, s
        assert s["time_saved_%s_us" % period] == 5250000, s
        assert abs(s["hit_rate_" + period] - 0.6) < 1e-9
    # The passes, slowest first, with their hits; not the fail.
    assert [(e["test"], e["duration_us"], e["hits"], e["saved_us"])
            for e in s["slowest"]] == [("t2", 2250000, 1, 2250000),
                                       ("t1", 1500000, 2, 3000000)]
    # The same through the raw protocol.
    with daemon.raw() as c:
        raw = c.stats()
    for k in PERSISTENT + DAILY + ("entries",):
        assert raw[k] == s[k], k
    assert len(raw) <= 64
    r = daemon.cli("stats")
    assert r.rc == 0, r
    out = r.stdout
    assert re.search(r"^\s+hits\s+misses\s+hit rate\s+time saved$", out,
                     re.M), out
    for label in ("today", "last 7 days", "all time"):
        assert re.search(r"^%s\s+3\s+2\s+60\.0%%\s+5\.25?s$" % label, out,
                         re.M), out
    assert re.search(r"^entries\s+3 \(0 flaky\), database \d", out, re.M), out
    assert re.search(r"^records\s+3; expired 0, invalidated 0, evicted 0$",
                     out, re.M), out
    assert re.search(r"^\s+2\.25?s\s+1\s+2\.25?s  t2$", out, re.M), out
    assert re.search(r"^\s+1\.5s\s+2\s+3s  t1$", out, re.M), out
    assert out.index("  t2\n") < out.index("  t1\n")
    assert "  t3\n" not in out


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
    for k in PERSISTENT + DAILY + ("entries",):
        assert after[k] == before[k], (k, before, after)
    # And they keep counting from there, today's figures too.
    assert daemon.cli("lookup", "--test", "t1", *dep(project)).rc == 0
    s = stats_json(daemon)
    assert s["hits"] == before["hits"] + 1
    assert s["hits_today"] == before["hits_today"] + 1
    assert s["hits_7d"] == before["hits_7d"] + 1


def test_days_table(make_daemon, project):
    """Today's row is where the day's figures start; the last 7 days are
    today and the 6 before; rows older than 400 days go; no write per
    lookup, but the figures are in the table after a stop."""
    d = make_daemon(env=ZONE)
    assert d.stop() == 0
    t = today()
    con = sqlite3.connect(d.db)
    con.executemany("INSERT INTO days VALUES (?, ?, ?, ?)", [
        (t, 10, 1, 1000000),            # today, before this start
        (t - 6, 5, 2, 7000000),         # in the last 7 days
        (t - 7, 100, 100, 100000000),   # a week ago: not in them
        (t - 399, 1, 1, 1),             # kept
        (t - 400, 1, 1, 1),             # dropped
        (t - 3000, 1, 1, 1),            # dropped
    ])
    con.commit()
    con.close()
    d.start(env=ZONE)
    if today() != t:
        pytest.skip("the day changed while the test ran")
    r = d.cli("record", "--test", "a", "--outcome", "pass", "--duration",
              "2", *dep(project))
    assert r.rc == 0, r
    assert d.cli("lookup", "--test", "a", *dep(project)).rc == 0
    assert d.cli("lookup", "--test", "b", *dep(project)).rc == 1
    s = stats_json(d)
    assert (s["hits_today"], s["misses_today"], s["time_saved_today_us"]) \
        == (11, 2, 3000000), s
    assert (s["hits_7d"], s["misses_7d"], s["time_saved_7d_us"]) \
        == (16, 4, 10000000), s
    # The all-time counters are their own: the days do not add to them.
    assert (s["hits"], s["misses"]) == (1, 1), s
    assert d.stop() == 0
    rows = days_rows(d.db)
    assert rows[t] == (11, 2, 3000000), rows
    assert rows[t - 6] == (5, 2, 7000000)
    assert t - 7 in rows and t - 399 in rows
    assert t - 400 not in rows and t - 3000 not in rows, rows


def test_reset(daemon, project):
    fill(daemon, project)
    r = daemon.cli("stats", "--reset")
    assert r.rc == 0, r
    assert "counters reset" in r.stdout
    s = stats_json(daemon)
    for k in PERSISTENT + DAILY:
        assert s[k] == 0, (k, s)
    assert s["entries"] == 3         # a live figure, not a counter
    assert daemon.cli("lookup", "--test", "t2", *dep(project)).rc == 0
    s = stats_json(daemon)
    assert s["hits"] == 1 and s["time_saved_us"] == 2250000
    assert s["hits_today"] == 1 and s["hits_7d"] == 1
    assert s["time_saved_7d_us"] == 2250000
    # A reset survives a restart: it was committed, the days with it.
    assert daemon.stop() == 0
    assert sum(v[0] for v in days_rows(daemon.db).values()) == 1
    daemon.restart()
    s = stats_json(daemon)
    assert s["hits"] == 1 and s["misses"] == 0
    assert s["hits_7d"] == 1 and s["misses_7d"] == 0


def test_reset_drops_older_days(make_daemon, project):
    d = make_daemon(env=ZONE)
    assert d.stop() == 0
    t = today()
    con = sqlite3.connect(d.db)
    con.execute("INSERT INTO days VALUES (?, 4, 4, 4)", (t - 2,))
    con.commit()
    con.close()
    d.start(env=ZONE)
    assert stats_json(d)["hits_7d"] == 4
    s = stats_json(d, "--reset")
    assert s["hits_7d"] in (0, 4)
    assert stats_json(d)["hits_7d"] == 0
    assert d.stop() == 0
    assert days_rows(d.db) == {}


def test_reset_json_reports_zero(daemon, project):
    fill(daemon, project)
    s = stats_json(daemon, "--reset")
    # Whether the reply shows the figures before or after the reset, the
    # next one must be zero.
    assert s["hits"] in (0, 3)
    assert stats_json(daemon)["hits"] == 0
    assert stats_json(daemon)["hits_today"] == 0


def test_migration_from_v2(make_daemon, project, tmpbase):
    """A database of schema version 2 opens as version 3 with its entries
    and counters; the new index and table are there."""
    d = make_daemon(start=False)
    os.makedirs(os.path.dirname(d.db), exist_ok=True)
    r = d.cli("key", "--test", "old", *dep(project))
    assert r.rc == 0, r
    key = bytes.fromhex(r.stdout.split()[0])
    now = int(time.time() * 1000)
    con = sqlite3.connect(d.db)
    con.executescript(SCHEMA_V2)
    assert con.execute("PRAGMA user_version").fetchone()[0] == 2
    con.execute("INSERT INTO entries(key, project, test, root, outcome, "
                "duration_us, created, expires, hits, last_used) "
                "VALUES (?, '', 'old', ?, 1, 4000000, ?, ?, 2, ?)",
                (key, project.root, now, now + 3600 * 1000, now))
    con.execute("INSERT INTO counters VALUES ('hits', 7), ('records', 1)")
    con.commit()
    con.close()
    d.start()
    assert d.cli("lookup", "--test", "old", *dep(project)).rc == 0
    s = stats_json(d)
    assert s["hits"] == 8 and s["records"] == 1 and s["entries"] == 1, s
    assert s["hits_today"] == 1
    assert [(e["test"], e["hits"]) for e in s["slowest"]] == [("old", 3)]
    assert d.stop() == 0
    con = sqlite3.connect(d.db)
    try:
        assert con.execute("PRAGMA user_version").fetchone()[0] == 3
        names = {r[0] for r in con.execute(
            "SELECT name FROM sqlite_master")}
        assert {"days", "entries_slowest", "entries", "counters"} <= names
        plan = " ".join(r[-1] for r in con.execute(
            "EXPLAIN QUERY PLAN SELECT id, expires FROM entries "
            "WHERE outcome = 1 AND flaky = 0 "
            "ORDER BY duration_us DESC, expires DESC, id DESC"))
        assert "COVERING INDEX entries_slowest" in plan, plan
        assert "TEMP B-TREE" not in plan, plan
    finally:
        con.close()


def test_slowest_order_limit_and_filter(daemon, project):
    def record(test, outcome, dur, *extra):
        r = daemon.cli("record", "--test", test, "--outcome", outcome,
                       "--duration", str(dur), *extra, *dep(project))
        assert r.rc == 0, r

    for i in range(1, 16):
        record("p%02d" % i, "pass", i)
    record("failed", "fail", 100)
    record("skipped", "skip", 98)
    record("flaky", "pass", 99)
    record("flaky", "fail", 99)                # now flaky
    record("expiring", "pass", 97, "--ttl", "1s")
    assert [e[1] for e in slowest(daemon, 1)] == ["expiring"]
    time.sleep(1.2)
    # Hits since the record, counted at once (they wait in memory).
    for _ in range(3):
        assert daemon.cli("lookup", "--test", "p15", *dep(project)).rc == 0
    top = slowest(daemon, 10)
    assert [e[1] for e in top] == ["p%02d" % i for i in range(15, 5, -1)]
    assert top[0] == ("", "p15", 15000000, 3, 45000000)
    assert all(e[3] == 0 and e[4] == 0 for e in top[1:])
    assert len(slowest(daemon, 100)) == 15
    assert [e[1] for e in slowest(daemon, 3)] == ["p15", "p14", "p13"]
    s = stats_json(daemon)
    assert [e["test"] for e in s["slowest"]] == [e[1] for e in top]
    # n is 1..100.
    for n, code in ((0, E_MALFORMED), (101, E_LIMIT)):
        with daemon.raw() as c:
            with pytest.raises(ProtoError) as ei:
                c.call(SLOWEST, u32(n))
            assert ei.value.code == code, (n, ei.value)


def test_slowest_read_only(make_daemon, project):
    """A read-only peer may ask for the slowest tests."""
    d = make_daemon("--readonly-uid", str(os.getuid()))
    assert slowest(d, 10) == []
    r = d.cli("stats")
    assert r.rc == 0 and "slowest cached tests: none" in r.stdout, r


SAMPLE = re.compile(
    r'^([a-zA-Z_:][a-zA-Z0-9_:]*)'
    r'(\{[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*"'
    r'(?:,[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*")*\})?'
    r' ([-+]?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+'
    r'|NaN|[-+]Inf))( -?[0-9]+)?$')
HELP = re.compile(r"^# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$")
TYPE = re.compile(r"^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) "
                  r"(counter|gauge|histogram|summary|untyped)$")


def parse_prometheus(text):
    """The text exposition format 0.0.4, strictly: every line a HELP, a
    TYPE or a sample; HELP and TYPE at most once a metric and before its
    samples; every sample's metric has a TYPE; no sample twice; a
    metric's samples together.  Returns {(name, labels): (type, value)}."""
    assert text.endswith("\n"), "the last line ends in a newline"
    types, helps, samples, done = {}, {}, {}, set()
    current = None
    for n, line in enumerate(text[:-1].split("\n"), 1):
        where = "line %d: %r" % (n, line)
        m = HELP.match(line)
        if m:
            assert m.group(1) not in helps, "second HELP, " + where
            assert m.group(1) not in done, "HELP after samples, " + where
            helps[m.group(1)] = m.group(2)
            continue
        m = TYPE.match(line)
        if m:
            assert m.group(1) not in types, "second TYPE, " + where
            assert m.group(1) not in done, "TYPE after samples, " + where
            types[m.group(1)] = m.group(2)
            continue
        assert not line.startswith("#"), "a comment, " + where
        m = SAMPLE.match(line)
        assert m, "not a sample, " + where
        name, labels, value = m.group(1), m.group(2) or "", m.group(3)
        assert name in types, "no TYPE for it, " + where
        if current != name:
            assert name not in done, "its samples apart, " + where
            if current is not None:
                done.add(current)
            current = name
        assert (name, labels) not in samples, "a duplicate, " + where
        samples[(name, labels)] = (types[name], float(value))
    for name, t in types.items():
        if t == "counter":
            assert name.endswith("_total"), name
        assert name.startswith("tcache_"), name
        assert name in helps, "no HELP for " + name
        assert any(k[0] == name for k in samples), "no sample of " + name
    return samples


def test_parser_refuses(daemon):
    """The parser above fails on what it must refuse."""
    good = "# HELP a_total x\n# TYPE a_total counter\na_total 1\n"
    parse_prometheus(good.replace("a_", "tcache_a_"))
    for bad in (good.replace("# TYPE a_total counter\n", ""),
                good + "a_total 2\n",
                good.replace("a_total 1", "a_total 1.2.3"),
                good.replace("a_total 1", "a_total{x=y} 1"),
                good[:-1],
                good + "# TYPE a_total counter\n",
                good.replace("counter", "gauge").replace("a_total", "b")
                + "a 1\n"):
        with pytest.raises(AssertionError):
            parse_prometheus(bad.replace("a_", "tcache_a_"))


def test_prometheus(daemon, project):
    fill(daemon, project)
    r = daemon.cli("stats", "--prometheus")
    assert r.rc == 0, r
    m = parse_prometheus(r.stdout)
    want = {
        "tcache_hits_total": ("counter", 3),
        "tcache_misses_total": ("counter", 2),
        "tcache_records_total": ("counter", 3),
        "tcache_time_saved_seconds_total": ("counter", 5.25),
        "tcache_expired_total": ("counter", 0),
        "tcache_invalidated_total": ("counter", 0),
        "tcache_evicted_total": ("counter", 0),
        "tcache_flaky_marked_total": ("counter", 0),
        "tcache_entries": ("gauge", 3),
        "tcache_flaky_entries": ("gauge", 0),
    }
    for name, (t, v) in want.items():
        assert m[(name, "")] == (t, v), (name, m.get((name, "")))
    assert m[("tcache_db_bytes", "")][1] > 0
    assert 0 < m[("tcache_uptime_seconds", "")][1] < 3600
    for period in ("today", "7d"):
        lab = '{period="%s"}' % period
        assert m[("tcache_period_hits", lab)] == ("gauge", 3)
        assert m[("tcache_period_misses", lab)] == ("gauge", 2)
        assert m[("tcache_period_time_saved_seconds", lab)] == ("gauge", 5.25)
    # One format at a time.
    r = daemon.cli("stats", "--prometheus", "--json")
    assert r.rc == 2, r


def test_top_count(daemon, project):
    fill(daemon, project)
    t0 = time.monotonic()
    r = daemon.cli("top", "--count", "3", "--interval", "0.2")
    assert r.rc == 0, r
    assert time.monotonic() - t0 >= 0.4
    assert "\x1b" not in r.stdout, "escapes into a pipe"
    assert len(re.findall(r"^tcache top  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  "
                          r"every 200ms$", r.stdout, re.M)) == 3, r.stdout
    assert len(re.findall(r"^all time\s+3\s+2\s+60\.0%", r.stdout,
                          re.M)) == 3, r.stdout
    r = daemon.cli("top", "--count", "2", "--interval", "0.1", "--json")
    assert r.rc == 0, r
    lines = r.stdout.splitlines()
    assert len(lines) == 2 and all(json.loads(x)["hits"] == 3 for x in lines)
    for bad in (["--count", "0"], ["--interval", "0"], ["--interval", "x"]):
        assert daemon.cli("top", *bad).rc == 2, bad


def test_top_on_a_terminal(daemon):
    """On a terminal each refresh clears the screen first."""
    master, slave = pty.openpty()
    p = subprocess.Popen([TCACHE, "top", "--count", "2", "--interval", "0.1"],
                         stdin=subprocess.DEVNULL, stdout=slave,
                         stderr=subprocess.PIPE, env=client_env(daemon.sock))
    os.close(slave)
    out = b""
    end = time.monotonic() + 10
    while time.monotonic() < end:
        ready, _, _ = select.select([master], [], [], 0.5)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        elif p.poll() is not None:
            break
    os.close(master)
    assert p.wait(10) == 0, p.stderr.read()
    assert out.count(b"\x1b[H\x1b[2J") == 2, out
    assert b"Ctrl-C to stop" in out


def test_top_needs_a_daemon(make_daemon):
    d = make_daemon(start=False)
    r = d.cli("top", "--count", "1")
    assert r.rc == 3, r


def test_stats_from_an_older_daemon(tmpbase):
    """A daemon that predates SLOWEST answers it with ERROR UNKNOWN and
    hangs up: tcache stats still shows the counters it sent."""
    import socket
    import struct
    import threading

    path = os.path.join(tmpbase, "old.sock")
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    srv.settimeout(10)
    asked = []

    def reply(conn, body):
        conn.sendall(struct.pack(">I", len(body)) + body)

    def serve():
        conn, _ = srv.accept()
        with conn:
            buf = b""
            while True:
                while len(buf) < 4 or len(buf) < 4 + struct.unpack(
                        ">I", buf[:4])[0]:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                n = struct.unpack(">I", buf[:4])[0]
                body, buf = buf[4:4 + n], buf[4 + n:]
                asked.append(body[0])
                if body[0] == 0x01:
                    reply(conn, b"\x81" + u32(1) + u32(8) + b"tcached0")
                elif body[0] == 0x06:
                    stats = [(b"hits", 5), (b"misses", 5), (b"entries", 2)]
                    reply(conn, b"\x86" + u32(len(stats)) + b"".join(
                        u32(len(k)) + k + struct.pack(">Q", v)
                        for k, v in stats))
                else:
                    msg = b"unknown message type"
                    reply(conn, b"\xff" + struct.pack(">H", 2) +
                          u32(len(msg)) + msg)
                    return

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    r = subprocess.run([TCACHE, "stats"], env=client_env(path),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       universal_newlines=True, timeout=20)
    t.join(10)
    srv.close()
    assert asked == [0x01, 0x06, SLOWEST], asked
    assert r.returncode == 0, r
    assert re.search(r"^all time\s+5\s+5\s+50\.0%", r.stdout, re.M), r.stdout
    assert re.search(r"^today\s+0\s+0\s+-", r.stdout, re.M), r.stdout
    assert "slowest cached tests: not answered (" in r.stdout, r.stdout
