"""The memo of file digests and parsed sources kept between sessions
(tcache_pytest.inputs.Memo): it must never vouch for bytes other than the
ones read.  The unit tests run in this process (inputs installs no hook)
with a shorter racy window; the last ones run the plugin."""

import json
import os
import time

import pytest

from tcache_pytest import inputs, proto

RACY_NS = 200 * 1000 * 1000     # a shorter window, so the tests wait less


@pytest.fixture
def short_racy(monkeypatch):
    monkeypatch.setattr(inputs, "RACY_NS", RACY_NS)


@pytest.fixture
def reads(monkeypatch):
    """The paths proto.file_digest is asked to read."""
    seen = []
    real = proto.file_digest

    def counting(path):
        seen.append(path)
        return real(path)
    monkeypatch.setattr(proto, "file_digest", counting)
    return seen


def settle():
    """Waits until what was just written is older than the racy window."""
    time.sleep(RACY_NS / 1e9 * 1.5)


def session(root, memo_dir):
    memo = inputs.Memo.load(root, str(memo_dir))
    return memo, inputs.Digests(None, memo)


def digest_of(data):
    return proto.file_digest_bytes(data)


def memo_with_entry(tmp_path):
    """A project with one old file whose digest a saved memo holds."""
    root = str(tmp_path / "proj")
    os.mkdir(root)
    f = os.path.join(root, "a.py")
    with open(f, "w") as fh:
        fh.write("A = 1\n")
    settle()
    memo, digests = session(root, tmp_path / "memo")
    digests.digest(f)
    assert memo.save()
    settle()
    return root, f


def test_an_unchanged_file_is_not_read_again(tmp_path, short_racy, reads):
    root, f = memo_with_entry(tmp_path)
    del reads[:]
    memo, digests = session(root, tmp_path / "memo")
    assert digests.digest(f) == digest_of(b"A = 1\n")
    assert reads == []


@pytest.mark.parametrize("saved", ["before", "after"])
def test_same_size_rewrite_with_mtime_forced_back(tmp_path, short_racy,
                                                  reads, saved):
    """The bytes change, the size stays, and the mtime is set back to what
    it was: the ctime still moves, and the file is read again, whether
    the memo was saved before the rewrite or after it (by a session that
    read the file before it)."""
    root = str(tmp_path / "proj")
    os.mkdir(root)
    f = os.path.join(root, "a.py")
    with open(f, "w") as fh:
        fh.write("A = 1\n")
    settle()
    memo, digests = session(root, tmp_path / "memo")
    digests.digest(f)
    assert f in memo.files
    if saved == "before":
        assert memo.save()
    st = os.stat(f)
    with open(f, "w") as fh:
        fh.write("A = 2\n")
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    st2 = os.stat(f)
    assert (st2.st_size, st2.st_mtime_ns, st2.st_ino) == \
        (st.st_size, st.st_mtime_ns, st.st_ino)
    settle()
    if saved == "after":
        assert memo.save()
        settle()
    del reads[:]
    memo, digests = session(root, tmp_path / "memo")
    assert digests.digest(f) == digest_of(b"A = 2\n")
    assert reads == [f]


def _craft(memo_path, root, path, digest):
    """A memo that says `digest` for path's current stat signature."""
    st = os.stat(path)
    data = {"version": inputs.MEMO_VERSION, "root": root,
            "files": {path: [st.st_dev, st.st_ino, st.st_size,
                             st.st_mtime_ns, st.st_ctime_ns,
                             digest.hex()]},
            "parsed": {}, "dists": {}}
    os.makedirs(os.path.dirname(memo_path), exist_ok=True)
    with open(memo_path, "w") as fh:
        json.dump(data, fh)
    return st


@pytest.mark.parametrize("memo_after_ns, trusted", [
    (0, False),                     # the memo written with the file
    (RACY_NS // 2, False),          # within the window
    (RACY_NS, False),               # at its edge
    (3 * RACY_NS, True),            # well after: the memo is believed
])
def test_racy_window_of_the_memo_write(tmp_path, short_racy, memo_after_ns,
                                       trusted):
    """A memo whose entry matches the file's stat signature but holds
    another digest (what a write in the same clock tick as the memo's own
    would leave): within the racy window of the memo's mtime the entry is
    not believed; well after it, it is (which shows the memo is read at
    all: only the window protects)."""
    root = str(tmp_path / "proj")
    os.mkdir(root)
    f = os.path.join(root, "a.py")
    with open(f, "w") as fh:
        fh.write("A = 1\n")
    lie = bytes(range(32))
    memo_path = inputs.Memo.path_for(root, str(tmp_path / "memo"))
    st = _craft(memo_path, root, f, lie)
    t = max(st.st_mtime_ns, st.st_ctime_ns) + memo_after_ns
    os.utime(memo_path, ns=(t, t))
    memo, digests = session(root, tmp_path / "memo")
    assert digests.digest(f) == (lie if trusted else digest_of(b"A = 1\n"))


def test_a_file_changed_within_the_window_is_not_memoised(tmp_path,
                                                          short_racy, reads):
    """A file modified just before it is read may be modified again in the
    same clock tick without its signature moving: its digest is not kept,
    and the next session reads it again."""
    root = str(tmp_path / "proj")
    os.mkdir(root)
    f = os.path.join(root, "a.py")
    with open(f, "w") as fh:
        fh.write("A = 1\n")
    memo, digests = session(root, tmp_path / "memo")
    digests.digest(f)
    assert f not in memo.files
    memo.save()
    settle()
    del reads[:]
    memo, digests = session(root, tmp_path / "memo")
    assert digests.digest(f) == digest_of(b"A = 1\n")
    assert reads == [f]


@pytest.mark.parametrize("damage", [
    "garbage", "truncated", "empty", "wrong version", "wrong root",
    "short entry", "negative field", "bad digest", "files not a dict",
    "no dists", "bad dist",
])
def test_a_damaged_memo_is_ignored(tmp_path, short_racy, damage):
    """A memo holding a false digest for the file's current signature, well
    outside the racy window, damaged in one way: all of it is ignored."""
    root = str(tmp_path / "proj")
    os.mkdir(root)
    f = os.path.join(root, "a.py")
    with open(f, "w") as fh:
        fh.write("A = 1\n")
    lie = bytes(range(32))
    memo_path = inputs.Memo.path_for(root, str(tmp_path / "memo"))
    st = _craft(memo_path, root, f, lie)
    with open(memo_path) as fh:
        text = fh.read()
    data = json.loads(text)
    entry = data["files"][f]
    if damage == "garbage":
        text = "\x00\xff not json"
    elif damage == "truncated":
        text = text[:len(text) // 2]
    elif damage == "empty":
        text = ""
    else:
        if damage == "wrong version":
            data["version"] = inputs.MEMO_VERSION + 1
        elif damage == "wrong root":
            data["root"] = root + "x"
        elif damage == "short entry":
            data["files"]["/elsewhere"] = entry[:5]
        elif damage == "negative field":
            data["files"]["/elsewhere"] = [-1] + entry[1:]
        elif damage == "bad digest":
            data["files"]["/elsewhere"] = entry[:5] + ["zz" * 32]
        elif damage == "files not a dict":
            data["files"] = [entry]
        elif damage == "no dists":
            del data["dists"]
        elif damage == "bad dist":
            data["dists"]["/d"] = [[None, None], "n", "1"]
        text = json.dumps(data)
    with open(memo_path, "w") as fh:
        fh.write(text)
    t = max(st.st_mtime_ns, st.st_ctime_ns) + 10 * RACY_NS
    os.utime(memo_path, ns=(t, t))
    memo, digests = session(root, tmp_path / "memo")
    assert digests.digest(f) == digest_of(b"A = 1\n")
    assert memo.files == {}


@pytest.mark.parametrize("what", ["file", "directory"])
def test_a_memo_others_may_write_is_ignored(tmp_path, short_racy, what):
    """A memo (or its directory) that someone else could have written is
    ignored, however right it looks."""
    root = str(tmp_path / "proj")
    os.mkdir(root)
    f = os.path.join(root, "a.py")
    with open(f, "w") as fh:
        fh.write("A = 1\n")
    lie = bytes(range(32))
    memo_path = inputs.Memo.path_for(root, str(tmp_path / "memo"))
    st = _craft(memo_path, root, f, lie)
    os.chmod(os.path.dirname(memo_path), 0o700)
    os.chmod(memo_path, 0o600)
    t = max(st.st_mtime_ns, st.st_ctime_ns) + 10 * RACY_NS
    os.utime(memo_path, ns=(t, t))
    memo, digests = session(root, tmp_path / "memo")
    assert digests.digest(f) == lie          # believed while private
    os.chmod(memo_path if what == "file" else os.path.dirname(memo_path),
             0o622 if what == "file" else 0o777)
    memo, digests = session(root, tmp_path / "memo")
    assert digests.digest(f) == digest_of(b"A = 1\n")


def test_tcache_memo_off_turns_the_memo_off(monkeypatch, tmp_path):
    monkeypatch.setenv("TCACHE_MEMO_DIR", str(tmp_path))
    assert inputs.memo_dir() == str(tmp_path)
    monkeypatch.setenv("TCACHE_MEMO", "off")
    assert inputs.memo_dir() is None
    assert inputs.Memo.load("/x").path is None


def test_the_memo_is_replaced_whole(tmp_path, short_racy):
    """Saving writes a new file renamed over the old one (no temporary
    file left), readable only by its owner."""
    root, f = memo_with_entry(tmp_path)
    d = tmp_path / "memo"
    names = os.listdir(str(d))
    assert len(names) == 1 and names[0].startswith("memo-v"), names
    assert os.stat(str(d / names[0])).st_mode & 0o077 == 0


def test_parsed_entries_are_per_module_name(tmp_path, short_racy):
    """The same bytes in two packages import different modules: the
    parse memo is keyed by content and module name."""
    root = str(tmp_path / "proj")
    for pkg in ("p1", "p2"):
        os.makedirs(os.path.join(root, pkg))
        with open(os.path.join(root, pkg, "__init__.py"), "w") as fh:
            fh.write("def get():\n    from .core import V\n    return V\n")
        with open(os.path.join(root, pkg, "core.py"), "w") as fh:
            fh.write("V = 1\n")
    memo, digests = session(root, tmp_path / "memo")
    graph = inputs.ImportGraph(root, digests, memo.parsed, memo.parsed_used)
    for pkg in ("p1", "p2"):
        init = os.path.join(root, pkg, "__init__.py")
        assert os.path.join(root, pkg, "core.py") in graph.edges(init), pkg


def _dist(site, version):
    d = os.path.join(site, "tcfake-1.0.dist-info")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "METADATA"), "w") as fh:
        fh.write("Metadata-Version: 2.1\nName: tcfake\nVersion: %s\n"
                 % version)
    return os.path.join(d, "METADATA")


def test_distribution_versions_from_the_memo(tmp_path, short_racy,
                                             monkeypatch):
    """A distribution's name and version are kept under the signatures of
    its metadata files: a same-size rewrite with the mtime forced back is
    read again; an untouched one is taken from the memo (shown by a memo
    whose entry says otherwise)."""
    site = str(tmp_path / "site")
    monkeypatch.syspath_prepend(site)
    meta = _dist(site, "1.0")
    root = str(tmp_path / "proj")
    os.mkdir(root)
    settle()
    memo, _ = session(root, tmp_path / "memo")
    assert ("tcfake", "1.0") in inputs.distributions(memo)
    assert memo.save()
    settle()
    # The memo is believed: make its entry lie, and it is what comes back.
    memo, _ = session(root, tmp_path / "memo")
    where = os.path.dirname(meta)
    sigs, name, _ = memo.dists[where]
    memo.dists[where] = (sigs, name, "6.6")
    assert ("tcfake", "6.6") in inputs.distributions(memo)
    st = os.stat(meta)
    _dist(site, "2.0")
    os.utime(meta, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert os.stat(meta).st_size == st.st_size
    settle()
    # Saved after the rewrite, still with the entry of before it.
    memo.changed = True
    assert memo.save()
    settle()
    memo, _ = session(root, tmp_path / "memo")
    assert ("tcfake", "2.0") in inputs.distributions(memo)


@pytest.mark.parametrize("memo_after_ns, trusted", [
    (RACY_NS // 2, False), (3 * RACY_NS, True)])
def test_distribution_racy_window_of_the_memo_write(
        tmp_path, short_racy, monkeypatch, memo_after_ns, trusted):
    site = str(tmp_path / "site")
    monkeypatch.syspath_prepend(site)
    meta = _dist(site, "1.0")
    root = str(tmp_path / "proj")
    os.mkdir(root)
    settle()
    memo, _ = session(root, tmp_path / "memo")
    inputs.distributions(memo)
    where = os.path.dirname(meta)
    sigs, name, _ = memo.dists[where]
    memo.dists[where] = (sigs, name, "6.6")
    assert memo.save()
    st = os.stat(meta)
    t = max(st.st_mtime_ns, st.st_ctime_ns) + memo_after_ns
    os.utime(memo.path, ns=(t, t))
    memo, _ = session(root, tmp_path / "memo")
    want = "6.6" if trusted else "1.0"
    assert ("tcfake", want) in inputs.distributions(memo)


def test_distributions_with_and_without_memo_agree(tmp_path, short_racy):
    root = str(tmp_path / "proj")
    os.mkdir(root)
    plain = inputs.distributions()
    memo, _ = session(root, tmp_path / "memo")
    assert inputs.distributions(memo) == plain
    memo.save()
    settle()
    memo, _ = session(root, tmp_path / "memo")
    assert inputs.distributions(memo) == plain
    assert memo.dists


# --- the plugin with its memo ---

BODY_PROJECT = {
    "pytest.ini": "[pytest]\n",
    "m.py": """\
        X = 1


        def f():
            return 10
        """,
    "test_m.py": """\
        from ranlog import ran

        import m


        def test_body():
            ran()
            assert m.f() == 10


        def test_interface():
            ran()
            assert m.X == 1
        """,
}


def _edit_keeping_size_and_mtime(path, old, new):
    assert len(old) == len(new)
    st = os.stat(path)
    with open(path) as fh:
        text = fh.read()
    assert old in text
    with open(path, "w") as fh:
        fh.write(text.replace(old, new, 1))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    st2 = os.stat(path)
    assert (st2.st_size, st2.st_mtime_ns) == (st.st_size, st.st_mtime_ns)


def test_memo_after_body_and_interface_edits_of_same_size(tc):
    """--tcache-precision=executed with the memo in use: a body edit that
    keeps the file's size and mtime runs the test of the body again (and
    not the one of the interface: its digest, kept by content, is the
    same); then an interface edit of the same kind runs the other."""
    tc.write(BODY_PROJECT)
    time.sleep(inputs.RACY_S + 0.5)     # old enough to be memoised
    args = ("--tcache-precision=executed",)
    both = {"test_m.py::test_body", "test_m.py::test_interface"}
    assert tc.run(*args).ran == both
    memos = list(tc.memo_dir.glob("memo-v*.json"))
    assert len(memos) == 1, memos
    m_py = os.path.realpath(str(tc.root / "m.py"))
    assert m_py in json.loads(memos[0].read_text())["files"]
    time.sleep(inputs.RACY_S + 0.5)     # the memo old enough to be believed
    assert tc.run(*args).ran == set()

    _edit_keeping_size_and_mtime(m_py, "return 10", "return 11")
    r = tc.run(*args)
    assert r.ran == {"test_m.py::test_body"}, r
    assert r.outcomes == {"failed": 1, "passed": 1}, r

    _edit_keeping_size_and_mtime(m_py, "X = 1", "X = 2")
    r = tc.run(*args)
    assert "test_m.py::test_interface" in r.ran, r
    assert r.outcomes == {"failed": 2}, r


def test_memo_off(tc):
    """TCACHE_MEMO_DIR=off: no memo is written, and tests still hit."""
    tc.write(BODY_PROJECT)
    tc.monkeypatch.setenv("TCACHE_MEMO_DIR", "off")
    assert len(tc.run().ran) == 2
    assert tc.run().ran == set()
    assert not tc.memo_dir.exists()
