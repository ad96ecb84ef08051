"""Crash consistency and damaged databases.

SIGKILL at random moments under 16 writers: after every restart the file
passes PRAGMA integrity_check, every acknowledged record is there with the
outcome, duration and inputs it was recorded with, and a frame that was
never acknowledged is kept whole or not at all (PROTOCOL.md, RECORD).
TCACHE_CRASH_KILLS sets the number of kills (5 here, 50 under `make
crashtest`); TCACHE_CRASH_SEED replays a run; TCACHE_CRASH_REPORT names a
file that gets the figures.

A damaged file (truncated, random bytes over its pages, a garbled WAL) is
moved aside byte for byte under a timestamped name, reported in one log
line, and the daemon serves from a fresh one; a file of a newer schema is
refused, its WAL included, and left exactly as it was.
"""

import glob
import hashlib
import json
import os
import random
import re
import sqlite3
import subprocess
import threading
import time

import pytest

from conftest import Raw, ProtoError, enc_record, frame, u32, PASS, FAIL, \
    SKIP, ERR, RECORD, REPLY, ERROR, E_STORE

WRITERS = 16
KILLS = int(os.environ.get("TCACHE_CRASH_KILLS", "5"))
PAGE = 4096


# ------------------------------------------------------------ helpers

def integrity_live(db):
    """integrity_check through a reader of its own, beside the daemon: it
    sees what the daemon recovered (WAL included) and writes nothing."""
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=10)
    try:
        rows = [r[0] for r in con.execute("PRAGMA integrity_check")]
        mode = con.execute("PRAGMA journal_mode").fetchone()[0]
    finally:
        con.close()
    return rows, mode


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def lookup_all(d, keys):
    found = []
    with d.raw(timeout=30) as c:
        for i in range(0, len(keys), 4096):
            found += c.lookup(keys[i:i + 4096])
    return found


def read_reply(c):
    """One RECORD reply: the status list, or raises on an ERROR frame."""
    t, r = c.recv_frame()
    if t == ERROR:
        raise AssertionError("ERROR %d: %s" % (r.u16(), r.str()))
    assert t == RECORD | REPLY, "reply type 0x%02x" % t
    st = [r.u8() for _ in range(r.u32())]
    r.done()
    return st


class Writer(threading.Thread):
    """Records pipelined frames of new keys as fast as the daemon takes
    them, until the connection dies.  acked: {key: (outcome, duration)},
    for frames whose reply came; inflight: frames sent and never answered
    (lists of keys)."""

    def __init__(self, sock, seed, stop, first_ack):
        super().__init__(daemon=True)
        self.sock = sock
        self.rng = random.Random(seed)
        self.tag = seed
        self.stop = stop
        self.first_ack = first_ack
        self.acked = {}
        self.inflight = []
        self.frames = 0
        self.error = None

    def run(self):
        try:
            c = Raw(self.sock, timeout=20)
        except (OSError, EOFError):
            return          # killed before it was served: nothing sent
        try:
            self._loop(c)
        except Exception as e:      # noqa: BLE001 - reported by the test
            self.error = repr(e)
        finally:
            c.close()

    def _loop(self, c):
        rng = self.rng
        n = 0
        while not self.stop.is_set():
            batch = []
            for _ in range(rng.randint(1, 3)):          # pipeline depth
                recs = {}
                for _ in range(rng.randint(1, 24)):
                    k = os.urandom(32)
                    recs[k] = (rng.choice((PASS, PASS, FAIL, SKIP, ERR)),
                               rng.randint(0, 1 << 40))
                batch.append(recs)
            data = b""
            for recs in batch:
                body = b"".join(
                    enc_record(k, "w%d/%d" % (self.tag, n + i),
                               outcome=o, duration_us=dur,
                               message="m%d" % (n + i),
                               inputs=[(0, "src/f%d.c" % (i % 7), k[::-1]),
                                       (1, "disc/%d.py" % i, k)])
                    for i, (k, (o, dur)) in enumerate(recs.items()))
                n += len(recs)
                data += frame(bytes([RECORD]) + u32(len(recs)) + body)
            try:
                c.send(data)
            except OSError:
                self.inflight += [list(r) for r in batch]
                return
            for j, recs in enumerate(batch):
                try:
                    st = read_reply(c)
                except (EOFError, OSError):
                    # Killed: this frame and those after it are unanswered.
                    self.inflight += [list(r) for r in batch[j:]]
                    return
                assert st == [0] * len(recs), st
                self.acked.update(recs)
                self.frames += 1
                self.first_ack.set()


def check_round(d, acked, inflight, rnd, seed):
    """Everything acknowledged is there as recorded; no frame is torn."""
    rows, mode = integrity_live(d.db)
    assert rows == ["ok"], "round %d (seed %d): integrity_check: %s" % (
        rnd, seed, rows[:10])
    assert mode == "wal"
    keys = list(acked)
    found = lookup_all(d, keys)
    lost = [k for k, f in zip(keys, found) if f is None]
    assert not lost, "round %d (seed %d): %d of %d acknowledged records " \
        "lost" % (rnd, seed, len(lost), len(keys))
    for k, f in zip(keys, found):
        o, dur = acked[k]
        assert (f["outcome"], f["flaky"], f["duration_us"]) == (o, 0, dur), \
            "round %d (seed %d): %s came back as %r, recorded %r" % (
                rnd, seed, k.hex(), f, acked[k])
        assert [(i["kind"], i["digest"]) for i in f["inputs"]] == [(1, k)]
    flat = [k for fr in inflight for k in fr]
    present = lookup_all(d, flat) if flat else []
    i = 0
    torn = []
    for fr in inflight:
        got = sum(1 for f in present[i:i + len(fr)] if f is not None)
        i += len(fr)
        if got not in (0, len(fr)):
            torn.append((got, len(fr)))
    assert not torn, "round %d (seed %d): unacknowledged frames kept in " \
        "part (kept, size): %s" % (rnd, seed, torn[:10])
    return len(keys) + len(flat), sum(1 for f in present if f is not None)


# ------------------------------------------------- crash consistency

def test_sigkill_under_16_writers(make_daemon):
    seed = int(os.environ.get("TCACHE_CRASH_SEED") or
               (int(time.time() * 1000) & 0xffffffff))
    rng = random.Random(seed)
    print("crash: seed", seed)
    d = make_daemon()
    acked = {}
    checked = frames = startup_kills = inflight_kept = 0
    t0 = time.monotonic()
    for rnd in range(KILLS):
        stop, first_ack = threading.Event(), threading.Event()
        ws = [Writer(d.sock, seed * 100 + rnd * WRITERS + w, stop, first_ack)
              for w in range(WRITERS)]
        for w in ws:
            w.start()
        # The clock starts at the first acknowledgement, so that a slow
        # machine still kills under load; then anywhere: mid-frame,
        # mid-commit, mid-checkpoint.
        assert first_ack.wait(20), "round %d: no record acknowledged" % rnd
        time.sleep(rng.uniform(0.0, 0.45))
        d.kill9()
        stop.set()
        for w in ws:
            w.join(30)
            assert not w.is_alive(), "a writer hung after SIGKILL"
        errors = [w.error for w in ws if w.error]
        assert not errors, errors
        new = {}
        inflight = []
        for w in ws:
            new.update(w.acked)
            inflight += w.inflight
            frames += w.frames
        assert new, "round %d: no record acknowledged in the round" % rnd
        acked.update(new)
        if rnd % 4 == 3:
            # And one while the daemon opens the file and replays the WAL
            # the last kill left.
            d.spawn(*d.args)
            time.sleep(rng.uniform(0.0, 0.03))
            d.kill9()
            startup_kills += 1
        d.restart()
        n_checked, n_kept = check_round(d, acked, inflight, rnd, seed)
        checked += n_checked
        inflight_kept += n_kept
        log = d.log_text()
        assert "damaged" not in log.lower(), log[-3000:]
        assert not glob.glob(d.db + ".damaged-*")
    elapsed = time.monotonic() - t0
    assert d.stop() == 0
    con = sqlite3.connect(d.db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        n = con.execute("SELECT count(*) FROM entries").fetchone()[0]
    finally:
        con.close()
    assert n >= len(acked)
    fig = {"kills": KILLS + startup_kills, "kills_under_load": KILLS,
           "kills_at_startup": startup_kills, "writers": WRITERS,
           "acknowledged_records": len(acked), "acknowledged_frames": frames,
           "records_checked": checked, "unacknowledged_kept": inflight_kept,
           "entries_at_end": n, "seconds": round(elapsed, 1), "seed": seed}
    print("crash:", json.dumps(fig))
    if os.environ.get("TCACHE_CRASH_REPORT"):
        with open(os.environ["TCACHE_CRASH_REPORT"], "w") as f:
            json.dump(fig, f, indent=1)
            f.write("\n")


# ---------------------------------------------------- damaged files

def populate(d, n=3000):
    """A multi-page database (~1.5 MB), then a clean stop."""
    keys = [os.urandom(32) for _ in range(n)]
    with d.raw() as c:
        for i in range(0, n, 500):
            c.record([enc_record(k, "pop/%d" % (i + j), message="m" * 300,
                                 inputs=[(0, "src/%d.c" % j, k)])
                      for j, k in enumerate(keys[i:i + 500])])
    assert d.stop() == 0
    assert not os.path.exists(d.db + "-wal") or \
        os.path.getsize(d.db + "-wal") == 0
    return keys


def table_pages(db, name):
    con = sqlite3.connect(db)
    try:
        return [r[0] for r in con.execute(
            "SELECT pageno FROM dbstat WHERE name = ? ORDER BY pageno",
            (name,))]
    finally:
        con.close()


def assert_moved_aside_and_serving(d, damaged_sha, keys):
    asides = glob.glob(d.db + ".damaged-*")
    mains = [p for p in asides if not p.endswith(("-wal", "-shm"))]
    assert len(mains) == 1, os.listdir(os.path.dirname(d.db))
    aside = mains[0]
    # A timestamp, and the very bytes that were found damaged.
    assert re.search(r"\.damaged-\d{8}T\d{6}(-\d+)?$", aside), aside
    assert sha(aside) == damaged_sha, "the damaged file was altered"
    lines = [ln for ln in d.log_text().splitlines() if "damaged" in ln.lower()]
    assert len(lines) == 1, lines
    assert aside in lines[0], lines[0]
    assert d.running()
    k = os.urandom(32)
    with d.raw() as c:
        assert c.lookup(keys[:50]) == [None] * 50
        assert c.record([enc_record(k, "after", outcome=FAIL)]) == [0]
        assert c.lookup([k])[0]["outcome"] == FAIL
    assert d.cli("status").rc == 0
    rows, _ = integrity_live(d.db)
    assert rows == ["ok"]


DAMAGE = ["truncate-50", "truncate-page", "truncate-half",
          "truncate-half-unaligned", "truncate-last-page", "header-random",
          "pages-random", "pages-zero", "entries-leaves-random",
          "index-random", "page1-tail-random"]


@pytest.mark.parametrize("how", DAMAGE)
def test_damaged_database_moved_aside(make_daemon, how):
    d = make_daemon()
    keys = populate(d)
    size = os.path.getsize(d.db)
    npages = size // PAGE
    assert npages > 100
    rng = random.Random(how)
    with open(d.db, "r+b") as f:
        if how.startswith("truncate"):
            cut = {"truncate-50": 50, "truncate-page": PAGE,
                   "truncate-half": npages // 2 * PAGE,
                   "truncate-half-unaligned": size // 2 + 1234,
                   "truncate-last-page": size - PAGE}[how]
            f.truncate(cut)
        elif how == "header-random":
            f.write(os.urandom(100))
        elif how == "page1-tail-random":
            # The schema page past its header: sqlite_master itself.
            f.seek(100)
            f.write(os.urandom(PAGE - 100))
        elif how in ("pages-random", "pages-zero"):
            for p in rng.sample(range(2, npages + 1), 8):
                f.seek((p - 1) * PAGE)
                f.write(os.urandom(PAGE) if how == "pages-random"
                        else bytes(PAGE))
        else:
            name = "entries" if how == "entries-leaves-random" else \
                "sqlite_autoindex_entries_1"
            pages = table_pages(d.db, name)
            assert len(pages) > 4, (name, pages)
            for p in rng.sample(pages[1:], 3):
                f.seek((p - 1) * PAGE)
                f.write(os.urandom(PAGE))
    damaged = sha(d.db)
    d.start()
    assert_moved_aside_and_serving(d, damaged, keys)
    assert d.stop() == 0


def test_garbled_wal_after_kill(make_daemon):
    """Random bytes over the WAL a SIGKILL left: SQLite's frame checksums
    end the replay at the first bad frame, so the file is consistent and
    the daemon starts on it without moving anything aside."""
    d = make_daemon()
    with d.raw() as c:
        for i in range(20):
            c.record([enc_record(os.urandom(32), "wal/%d/%d" % (i, j))
                      for j in range(50)])
    d.kill9()
    wal = d.db + "-wal"
    size = os.path.getsize(wal)
    assert size > 8 * PAGE, size
    with open(wal, "r+b") as f:
        f.seek(size // 2)
        f.write(os.urandom(size - size // 2))
    d.restart()
    rows, _ = integrity_live(d.db)
    assert rows == ["ok"]
    assert not glob.glob(d.db + ".damaged-*")
    with d.raw() as c:
        k = os.urandom(32)
        assert c.record([enc_record(k, "after")]) == [0]
        assert c.lookup([k])[0] is not None


def test_garbled_shm_after_kill(make_daemon):
    """The -shm index is rebuilt from the WAL by the first connection: random
    bytes over it after a SIGKILL lose nothing acknowledged."""
    d = make_daemon()
    keys = [os.urandom(32) for _ in range(1000)]
    with d.raw() as c:
        for i in range(0, len(keys), 50):
            assert c.record([enc_record(k, "shm/%d" % (i + j), outcome=SKIP)
                             for j, k in enumerate(keys[i:i + 50])]) == [0] * 50
    d.kill9()
    shm = d.db + "-shm"
    assert os.path.getsize(d.db + "-wal") > 0
    with open(shm, "r+b") as f:
        f.write(os.urandom(os.path.getsize(shm)))
    d.restart()
    found = lookup_all(d, keys)
    assert all(f is not None and f["outcome"] == SKIP for f in found)
    assert not glob.glob(d.db + ".damaged-*")
    rows, _ = integrity_live(d.db)
    assert rows == ["ok"]


def test_newer_schema_with_wal_refused_untouched(make_daemon, tmpbase):
    """A newer tcached's file with transactions still in its WAL: refused
    with a message, and neither the file nor the WAL is written (no
    checkpoint on close)."""
    sdir = os.path.join(tmpbase, "state")
    os.makedirs(sdir)
    db = os.path.join(sdir, "tcache.db")
    # Another process holds the WAL open (and so keeps it from being
    # checkpointed away) while the files are copied.
    src = os.path.join(tmpbase, "src.db")
    code = (
        "import sqlite3, shutil, sys\n"
        "c = sqlite3.connect(sys.argv[1])\n"
        "c.execute('PRAGMA journal_mode=WAL')\n"
        "c.execute('PRAGMA wal_autocheckpoint=0')\n"
        "c.execute('CREATE TABLE future (x)')\n"
        "c.execute('PRAGMA user_version = 99')\n"
        "c.commit()\n"
        "for i in range(200):\n"
        "    c.execute('INSERT INTO future VALUES (?)', (b'x' * 3000,))\n"
        "c.commit()\n"
        "shutil.copy(sys.argv[1], sys.argv[2])\n"
        "shutil.copy(sys.argv[1] + '-wal', sys.argv[2] + '-wal')\n"
        "import os; os._exit(0)\n")
    subprocess.run(["/usr/bin/python3", "-c", code, src, db], check=True,
                   timeout=30)
    assert os.path.getsize(db + "-wal") > 100 * 3000
    with open(db, "rb") as f:
        # The version is in the WAL only: the main file's header still
        # says 0, which alone would read as a new file to set up.
        f.seek(60)
        assert f.read(4) == bytes(4)
    before = (sha(db), sha(db + "-wal"))
    d = make_daemon(db=db, start=False)
    d.spawn()
    try:
        rc = d.proc.wait(10)
    except subprocess.TimeoutExpired:
        d.proc.kill()
        raise
    assert rc != 0
    log = d.log_text()
    assert "newer" in log and "99" in log, log
    assert (sha(db), sha(db + "-wal")) == before, "a refused file was written"
    assert not glob.glob(db + ".damaged-*")
    assert not os.path.exists(d.sock)
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    try:
        assert con.execute("PRAGMA user_version").fetchone()[0] == 99
        assert con.execute("SELECT count(*) FROM future").fetchone()[0] == 200
    finally:
        con.close()


SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                      "schema.sql")


def test_damage_found_while_serving(make_daemon, tmpbase):
    """A file too big for the check at start (> 64 MB) with garbage over
    the leaves of entries: the daemon starts, the first read of a damaged
    page fails that one request with ERROR STORE, the file goes aside, and
    the daemon goes on serving from a fresh one without a restart."""
    sdir = os.path.join(tmpbase, "state")
    os.makedirs(sdir)
    db = os.path.join(sdir, "tcache.db")
    with open(SCHEMA) as f:
        schema = f.read()
    now = int(time.time() * 1000)
    keys = [os.urandom(32) for _ in range(70000)]
    con = sqlite3.connect(db)
    con.executescript(schema)
    con.execute("PRAGMA journal_mode = WAL")
    con.executemany(
        "INSERT INTO entries (key, project, test, root, outcome, "
        "duration_us, message, created, expires, last_used) "
        "VALUES (?, '', ?, '/tmp/r', 1, 5, ?, ?, ?, ?)",
        ((k, "big/%d" % i, "m" * 1000, now, now + 86400000, now)
         for i, k in enumerate(keys)))
    con.commit()
    leaves = [r[0] for r in con.execute(
        "SELECT pageno FROM dbstat WHERE name = 'entries' AND "
        "pagetype = 'leaf'")]
    con.close()
    assert os.path.getsize(db) > 64 * 1024 * 1024
    assert not os.path.exists(db + "-wal") or os.path.getsize(db + "-wal") == 0
    with open(db, "r+b") as f:
        for p in leaves:
            f.seek((p - 1) * PAGE)
            f.write(os.urandom(PAGE))
    d = make_daemon(db=db, start=False)
    d.start()
    assert not glob.glob(db + ".damaged-*"), "checked at start after all?"
    errors = 0
    with d.raw() as c:
        try:
            c.lookup(keys[:100])
        except ProtoError as e:
            assert e.code == E_STORE, e
            errors += 1
    assert errors == 1, "a lookup over damaged pages answered"
    asides = [p for p in glob.glob(db + ".damaged-*")
              if not p.endswith(("-wal", "-shm"))]
    assert len(asides) == 1, os.listdir(sdir)
    assert re.search(r"\.damaged-\d{8}T\d{6}(-\d+)?$", asides[0])
    assert os.path.getsize(asides[0]) > 64 * 1024 * 1024
    assert any(asides[0] in ln for ln in d.log_text().splitlines()), \
        d.log_text()
    assert d.running()
    k = os.urandom(32)
    with d.raw() as c:
        assert c.lookup(keys[:10]) == [None] * 10
        assert c.record([enc_record(k, "after")]) == [0]
        assert c.lookup([k])[0] is not None
    rows, _ = integrity_live(db)
    assert rows == ["ok"]
