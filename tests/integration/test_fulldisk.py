"""A full disk under a running tcached: records fail with a clear ERROR
STORE reply, lookups keep answering, nothing acknowledged is lost, and
records work again once space is back, without a restart.  Also: a
restart and a start on the full disk serve lookups, an invalidation never
claims what it could not do, and the expiry sweep does not spin.

Two ways to fill a disk, each test running on both where it can:
- tmpfs: the database on a small tmpfs mounted for the test (root, and a
  kernel that lets this process mount), filled with a ballast file that is
  deleted to give the space back.  This is the real thing.
- shim: tests/fulldisk/enospc.c preloaded into tcached, which fails every
  write that would grow a file in the database's directory with ENOSPC while
  a flag file exists.  Runs as any user.
"""

import os
import random
import sqlite3
import subprocess
import threading
import time

import pytest

from conftest import E_STORE, FAIL, PASS, ProtoError, Raw, enc_record

HERE = os.path.dirname(os.path.abspath(__file__))
SHIM_SRC = os.path.join(HERE, "..", "fulldisk", "enospc.c")

# The tmpfs: room for the records a test makes before the fill (a few MiB
# with SQLite's log) and a ballast file that takes the rest in well under a
# second.
TMPFS_BYTES = 64 * 1024 * 1024

# Frames a writer sends at most while the disk fills: far more than the
# tmpfs holds, so a disk that never reports full fails the test.
MAX_FILL_FRAMES = 3000


# ------------------------------------------------------------- disks

class TmpfsDisk:
    kind = "tmpfs"

    def __init__(self, base):
        self.dir = os.path.join(base, "fs")
        os.makedirs(self.dir)
        self.ballast = os.path.join(self.dir, "ballast")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o",
                            "size=%d,mode=0755" % TMPFS_BYTES, "tcfull",
                            self.dir], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True)
        if r.returncode != 0:
            os.rmdir(self.dir)
            pytest.skip("cannot mount a tmpfs here: %s" % r.stdout.strip())
        self.mounted = True

    def env(self):
        return None

    def fill(self):
        """Takes every free byte: big chunks, then pages."""
        with open(self.ballast, "ab", buffering=0) as f:
            for chunk in (1 << 20, 4096):
                block = b"\0" * chunk
                try:
                    while True:
                        f.write(block)
                except OSError as e:
                    assert e.errno == 28, e
        st = os.statvfs(self.dir)
        assert st.f_bavail == 0, "the tmpfs still has %d blocks free" % \
            st.f_bavail

    def free(self):
        os.unlink(self.ballast)

    def refusals(self):
        return None

    def close(self):
        if self.mounted:
            r = subprocess.run(["umount", self.dir])
            if r.returncode != 0:
                subprocess.run(["umount", "-l", self.dir])
            self.mounted = False


class ShimDisk:
    kind = "shim"

    def __init__(self, base):
        self.dir = os.path.join(base, "fs")
        os.makedirs(self.dir)
        self.flag = os.path.join(base, "disk-full")
        self.lib = os.path.join(base, "libenospc.so")
        cc = os.environ.get("CC", "cc")
        r = subprocess.run([cc, "-std=c11", "-Wall", "-Wextra", "-Werror",
                            "-O2", "-shared", "-fPIC", "-o", self.lib,
                            SHIM_SRC, "-ldl"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True)
        assert r.returncode == 0, "building the ENOSPC shim:\n" + r.stdout

    def env(self):
        # ASan wants to be first in the preload list; the shim forwards to
        # its interceptors through RTLD_NEXT, so the order does no harm.
        asan = os.environ.get("ASAN_OPTIONS", "")
        asan = (asan + ":" if asan else "") + "verify_asan_link_order=0"
        pre = os.environ.get("LD_PRELOAD")
        return {"LD_PRELOAD": self.lib + (" " + pre if pre else ""),
                "ENOSPC_DIR": self.dir, "ENOSPC_FLAG": self.flag,
                "ASAN_OPTIONS": asan}

    def fill(self):
        open(self.flag, "w").close()

    def free(self):
        os.unlink(self.flag)

    def refusals(self):
        try:
            return os.path.getsize(self.flag + ".count")
        except OSError:
            return 0

    def close(self):
        pass


@pytest.fixture(params=["tmpfs", "shim"])
def disk(request, tmpbase):
    if request.param == "tmpfs":
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root; the shim covers this")
        d = TmpfsDisk(tmpbase)
    else:
        d = ShimDisk(tmpbase)
    yield d
    d.close()


@pytest.fixture
def full_daemon(disk, make_daemon):
    """tcached with its database on the disk that will fill (the disk
    first: it must outlive the daemon, or its tmpfs is busy at umount)."""
    def make(*args):
        return make_daemon(*args, db=os.path.join(disk.dir, "tcache.db"),
                           env=disk.env())
    return make


# ----------------------------------------------------------- helpers

def bulky_record(key, test, outcome):
    """A record that takes a few KiB of database: 16 long input paths and
    the longest message, so the disk fills in a few hundred frames."""
    ins = [(0, "src/%s/%03d" % ("d" * 180, j), key) for j in range(16)]
    return enc_record(key, test, outcome=outcome, message="m" * 1000,
                      inputs=ins)


def lookup_all(c, keys):
    found = []
    for i in range(0, len(keys), 1000):
        found += c.lookup(keys[i:i + 1000])
    return found


def check_all_there(c, known, when):
    keys = list(known)
    found = lookup_all(c, keys)
    lost = [i for i, f in enumerate(found) if f is None]
    assert not lost, "%s: %d of %d acknowledged records lost" % (
        when, len(lost), len(keys))
    wrong = [i for i, f in enumerate(found)
             if f["outcome"] != known[keys[i]]]
    assert not wrong, "%s: %d records with another outcome" % (
        when, len(wrong))


def assert_full_error(e):
    assert e.code == E_STORE, "a record on a full disk: %s" % e
    assert "full" in e.message.lower(), \
        "the reply does not say the disk is full: %r" % e.message


def record_batch(c, tag, n, rng, known):
    """Records n bulky records in one frame; on success they join known."""
    batch = {}
    for j in range(n):
        batch[os.urandom(32)] = PASS if rng.random() < 0.8 else FAIL
    recs = [bulky_record(k, "%s/%d" % (tag, j), o)
            for j, (k, o) in enumerate(batch.items())]
    st = c.record(recs)
    assert len(st) == n
    known.update(batch)


def _filler(sock, tag, known, lock, errors, full_seen):
    """Records until the disk has said full a few times in a row; every
    other failure is an error."""
    rng = random.Random(tag)
    mine = {}
    in_a_row = 0
    try:
        with Raw(sock, timeout=30) as c:
            for i in range(MAX_FILL_FRAMES):
                try:
                    record_batch(c, "fill%d/%d" % (tag, i),
                                 rng.randint(1, 4), rng, mine)
                    in_a_row = 0
                except ProtoError as e:
                    assert_full_error(e)
                    full_seen.append(e.message)
                    in_a_row += 1
                    if in_a_row == 3:
                        break
            else:
                errors.append("writer %d: %d frames and the disk never "
                              "said full" % (tag, MAX_FILL_FRAMES))
    except Exception as e:  # noqa: BLE001 - reported by the test
        errors.append("writer %d: %r" % (tag, e))
    with lock:
        known.update(mine)


def fill_with_writers(d, disk, known, nwriters=4):
    """Fills the disk under nwriters clients that record as fast as they
    can: the disk runs out in the middle of their frames, which share
    group commits, so one failed commit fails several clients at once, and
    a reply that said stored must be true of every one of them."""
    lock = threading.Lock()
    errors, full_seen = [], []
    threads = [threading.Thread(target=_filler,
                                args=(d.sock, t, known, lock, errors,
                                      full_seen))
               for t in range(nwriters)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    disk.fill()
    for t in threads:
        t.join(120)
        assert not t.is_alive(), "a writer hung on the full disk"
    assert not errors, errors
    assert full_seen, "no record was refused"
    return full_seen


def integrity(db):
    con = sqlite3.connect(db)
    try:
        (res,) = con.execute("PRAGMA integrity_check").fetchone()
        n = con.execute("SELECT count(*) FROM entries").fetchone()[0]
    finally:
        con.close()
    return res, n


# ------------------------------------------------------------- tests

def test_full_disk_refuses_records_keeps_lookups_and_recovers(
        full_daemon, disk, project):
    d = full_daemon()
    pid = d.pid()
    rng = random.Random(5)
    known = {}
    dep = ["--root", project.root, "--dep", "src"]

    with d.raw(timeout=30) as c:
        for i in range(100):
            record_batch(c, "base/%d" % i, 3, rng, known)
    r = d.cli("record", "--test", "cli/base", "--outcome", "pass", *dep)
    assert r.rc == 0, r
    base = len(known)

    full_seen = fill_with_writers(d, disk, known)
    filled = len(known) - base
    if disk.refusals() is not None:
        assert disk.refusals() > 0, "the shim refused no write"

    # Full: every record is refused with the same clear reply, and every
    # read answers.  A frame smaller than the writers' last refused group
    # commits may still fit where SQLite reuses the log those wrote before
    # they failed (how many frames a commit holds depends on how fast
    # tcached reads them): one told stored must be, so it joins known;
    # once one is refused, the next ones of its size are too.
    with d.raw(timeout=30) as c:
        for i in range(50):
            try:
                record_batch(c, "fits/%d" % i, 2, rng, known)
            except ProtoError as e:
                assert_full_error(e)
                break
        else:
            pytest.fail("50 frames on a full disk were all stored")
        for i in range(5):
            with pytest.raises(ProtoError) as ei:
                record_batch(c, "refused/%d" % i, 2, rng, known)
            assert_full_error(ei.value)
        check_all_there(c, known, "while the disk is full")
        assert c.status()["entries"] == len(known) + 1
        assert c.stats()["records"] >= len(known) + 1
        entries, _ = c.list(glob="base/*", limit=10)
        assert len(entries) == 10
    # A small record may still fit where SQLite reuses its log; one that
    # is told stored must be, and the command must end up refused.
    cli_stored = []
    for i in range(100):
        r = d.cli("record", "--test", "cli/full/%d" % i, "--outcome",
                  "pass", "--message", "m" * 1000, *dep)
        if r.rc != 0:
            break
        cli_stored.append("cli/full/%d" % i)
    assert r.rc != 0, "100 records on a full disk all succeeded"
    assert "full" in r.stderr.lower(), r
    r = d.cli("lookup", "--test", "cli/base", *dep)
    assert r.rc == 0, "a stored pass missed on a full disk: %r" % r
    assert d.running() and d.pid() == pid

    # Space back: the next record is stored, by the same tcached.
    disk.free()
    with d.raw(timeout=30) as c:
        record_batch(c, "after", 4, rng, known)
        for i in range(20):
            record_batch(c, "after/%d" % i, 3, rng, known)
        check_all_there(c, known, "once space is back")
    r = d.cli("record", "--test", "cli/after", "--outcome", "pass", *dep)
    assert r.rc == 0, r
    assert d.running() and d.pid() == pid, "tcached restarted"
    for test in ["cli/base", "cli/after"] + cli_stored:
        r = d.cli("lookup", "--test", test, *dep)
        assert r.rc == 0, "%s: %r" % (test, r)

    # The log says when the disk filled and when it came back, not once
    # per refused write (it may well be on the disk that is full).
    log = d.log_text().splitlines()
    full = [i for i, l in enumerate(log) if "disk full" in l]
    back = [i for i, l in enumerate(log) if "writable again" in l]
    assert full, "the log does not say the disk was full"
    assert back and back[-1] > full[0], \
        "the log does not say writes work again"
    assert len(log) <= 10, "%d log lines for one full disk:\n%s" % (
        len(log), "\n".join(log))

    print("%s: %d records before the disk filled, %d more while it "
          "filled, %d refusals seen by the writers; all %d found while "
          "full and after" % (disk.kind, base, filled, len(full_seen),
                              len(known)))

    # Nothing was damaged on the way: the file checks out and holds
    # exactly what was acknowledged, also after a restart.
    assert d.stop() == 0
    res, n = integrity(d.db)
    assert res == "ok"
    assert n == len(known) + 2 + len(cli_stored)
    assert not [f for f in os.listdir(disk.dir) if ".damaged" in f], \
        "a full disk was taken for a damaged database"
    d.start(env=disk.env())
    with d.raw(timeout=30) as c:
        check_all_there(c, known, "after a restart")


def test_restart_on_a_full_disk_serves_lookups(full_daemon, disk):
    """tcached stopped and started again while the disk is full: it must
    not take the full disk for a damaged file, and it answers lookups."""
    d = full_daemon()
    rng = random.Random(6)
    known = {}
    with d.raw(timeout=30) as c:
        for i in range(50):
            record_batch(c, "base/%d" % i, 3, rng, known)
    fill_with_writers(d, disk, known, nwriters=2)
    assert d.stop() == 0
    d.start(env=disk.env())
    with d.raw(timeout=30) as c:
        check_all_there(c, known, "after a restart on the full disk")
    # What SQLite's log still holds may take a record or two; then the
    # disk says full again.
    errors, full_seen = [], []
    _filler(d.sock, 99, known, threading.Lock(), errors, full_seen)
    assert not errors and full_seen, errors
    disk.free()
    with d.raw(timeout=30) as c:
        record_batch(c, "after", 2, rng, known)
        check_all_there(c, known, "once space is back")
    assert not [f for f in os.listdir(disk.dir) if ".damaged" in f], \
        "a full disk was taken for a damaged database"


def test_start_on_a_full_disk_serves_lookups(full_daemon, disk):
    """A tcached started while the disk is full cannot make the wal-index
    file SQLite reads a WAL database through (a clean stop removed it): it
    must still start and answer lookups, say why in its log, refuse
    records, leave the database as it is (not take it for damaged), and
    store records again once space is back, without a restart."""
    d = full_daemon()
    rng = random.Random(7)
    known = {}
    with d.raw(timeout=30) as c:
        for i in range(50):
            record_batch(c, "base/%d" % i, 3, rng, known)
    assert d.stop() == 0
    assert not os.path.exists(d.db + "-shm"), "the test needs no -shm"
    with open(d.db, "rb") as f:
        before = f.read()
    disk.fill()
    d.start(env=disk.env())
    pid = d.pid()
    assert "disk full" in d.log_text(), d.log_text()
    with d.raw(timeout=30) as c:
        check_all_there(c, known, "started on the full disk")
        with pytest.raises(ProtoError) as ei:
            record_batch(c, "refused", 2, rng, known)
        assert_full_error(ei.value)
    with open(d.db, "rb") as f:
        assert f.read() == before, "the database changed on the full disk"
    assert not [f for f in os.listdir(disk.dir) if ".damaged" in f], \
        "a full disk was taken for a damaged database"
    disk.free()
    with d.raw(timeout=30) as c:
        record_batch(c, "after", 2, rng, known)
        check_all_there(c, known, "once space is back")
    assert d.pid() == pid and d.running()
    assert d.stop() == 0
    res, n = integrity(d.db)
    assert res == "ok" and n == len(known)


def test_invalidate_on_a_full_disk_never_claims_what_it_did_not_do(
        full_daemon, disk):
    """Removing entries writes too.  On a full disk an invalidation either
    removes every entry it matches or fails with ERROR STORE; one that
    answered with a count while a matching pass stayed would be a stale
    pass.  Once space is back it goes through."""
    d = full_daemon()
    rng = random.Random(8)
    known = {}
    with d.raw(timeout=30) as c:
        for i in range(100):
            record_batch(c, "inv/%d" % i, 3, rng, known)
    fill_with_writers(d, disk, known, nwriters=2)
    under = "/tmp/tc-root/src"      # every bulky record's inputs
    with d.raw(timeout=15) as c:
        try:
            n = c.invalidate(1, under)
            refused = None
        except ProtoError as e:
            assert_full_error(e)
            refused = e.message
        left = [f for f in lookup_all(c, list(known)) if f is not None]
        if refused is None:
            assert n == len(known) and not left, \
                "invalidated %d, %d entries left" % (n, len(left))
        # A refused one may have removed some in its committed steps.
        print("%s: invalidation on the full disk: %s, %d of %d left"
              % (disk.kind, refused or "done", len(left), len(known)))
    disk.free()
    with d.raw(timeout=60) as c:
        c.invalidate(1, under)
        left = [f for f in lookup_all(c, list(known)) if f is not None]
        assert not left, "%d entries left after the invalidation" % len(left)
        assert c.status()["entries"] == 0


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_expiry_sweep_on_a_full_disk_does_not_spin(full_daemon, disk):
    """The sweep removes expired entries a step at a time, and comes back
    at once while steps are full.  On a full disk each step is rolled
    back, so "at once" would be for ever: tcached must wait for its next
    tick instead of burning a core, and keep answering."""
    d = full_daemon()
    rng = random.Random(9)
    known = {}
    short = [os.urandom(32) for _ in range(1000)]
    with d.raw(timeout=30) as c:
        for i in range(0, len(short), 100):
            c.record([enc_record(k, "short/%d" % (i + j), ttl_ms=2500)
                      for j, k in enumerate(short[i:i + 100])])
        for i in range(50):
            record_batch(c, "long/%d" % i, 3, rng, known)
    fill_with_writers(d, disk, known, nwriters=2)
    time.sleep(3)                   # the short ones expire while full
    before = cpu_seconds(d.pid())
    time.sleep(2)
    used = cpu_seconds(d.pid()) - before
    print("%s: tcached used %.2f s of CPU in 2 s on the full disk"
          % (disk.kind, used))
    # Spinning is a whole core (2 s); waiting is next to nothing (0.01 s
    # here), a few tenths under valgrind.
    assert used < 1.0, "tcached spins on the full disk: %.2f s of CPU " \
        "in 2 s" % used
    with d.raw(timeout=30) as c:
        check_all_there(c, known, "while the sweep fails")
    # GC is the same removal as a job of the client's: it answers.
    with d.raw(timeout=15) as c:
        try:
            # The sweep itself may have got through by now (a delete can
            # fit where SQLite reuses its log): what counts is that no
            # expired entry is left once GC says done.
            n = c.gc()
            assert n <= len(short)
            assert c.status()["entries"] == len(known)
        except ProtoError as e:
            assert_full_error(e)
    disk.free()
    with d.raw(timeout=30) as c:
        assert not [f for f in c.lookup(short) if f is not None]
        end = time.monotonic() + 15
        while c.status()["entries"] != len(known):
            assert time.monotonic() < end, \
                "the sweep did not resume once space was back: %d " \
                "entries, %d live" % (c.status()["entries"], len(known))
            time.sleep(0.1)
        check_all_there(c, known, "after the sweep")
