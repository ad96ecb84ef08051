"""status, hash, key --json, ls, gc and explain."""

import hashlib
import json
import os
import time

from conftest import enc_record

import pytest


def dep(project):
    return ["--root", project.root, "--dep", "src"]


def record(d, project, test, outcome="pass", *extra, **kw):
    r = d.cli("record", "--test", test, "--outcome", outcome, *dep(project),
              *extra, **kw)
    assert r.rc == 0, r
    return r


def test_status(daemon):
    r = daemon.cli("status")
    assert r.rc == 0, r
    assert daemon.sock in r.stdout and daemon.db in r.stdout
    assert "pid %d" % daemon.pid() in r.stdout
    r = daemon.cli("status", "--json")
    assert r.rc == 0, r
    s = json.loads(r.stdout)
    assert s["pid"] == daemon.pid()
    assert s["socket"] == daemon.sock
    assert s["db"] == daemon.db
    assert s["entries"] == 0
    assert s["ttl_ms"] == 86400000
    assert s["max_entries"] == 0
    assert s["version"]
    # --socket overrides $TCACHE_SOCKET.
    r = daemon.cli("status", "--socket", daemon.sock,
                   env={"TCACHE_SOCKET": "/nonexistent/sock"})
    assert r.rc == 0, r


def test_status_counts_entries(daemon, project):
    record(daemon, project, "a")
    record(daemon, project, "b")
    s = json.loads(daemon.cli("status", "--json").stdout)
    assert s["entries"] == 2


def test_hash(daemon, tmpbase):
    files = {"empty": b"", "one": b"a", "bin": bytes(range(256)) * 100}
    paths = []
    for name, data in files.items():
        p = os.path.join(tmpbase, name)
        with open(p, "wb") as f:
            f.write(data)
        paths.append(p)
    r = daemon.cli("hash", *paths)
    assert r.rc == 0, r
    lines = r.stdout.splitlines()
    assert len(lines) == len(paths)
    for line, p, data in zip(lines, paths, files.values()):
        want = hashlib.blake2b(data, digest_size=32).hexdigest()
        assert line[:64] == want
        assert line.endswith(p)
    r = daemon.cli("hash", "--json", *paths)
    assert r.rc == 0, r
    got = {f["path"]: f["digest"] for f in json.loads(r.stdout)["files"]}
    assert got == {p: hashlib.blake2b(d, digest_size=32).hexdigest()
                   for p, d in zip(paths, files.values())}
    # A missing file is an error, but the others are still hashed.
    r = daemon.cli("hash", paths[1], os.path.join(tmpbase, "nope"))
    assert r.rc == 4, r
    assert r.stdout[:64] == hashlib.blake2b(b"a", digest_size=32).hexdigest()
    assert "nope" in r.stderr
    assert daemon.cli("hash").rc == 2


def test_hash_needs_no_daemon(tmpbase):
    from conftest import run_cli
    p = os.path.join(tmpbase, "f")
    with open(p, "wb") as f:
        f.write(b"hello")
    r = run_cli(["hash", p], os.path.join(tmpbase, "no.sock"))
    assert r.rc == 0, r
    assert r.stdout[:64] == hashlib.blake2b(b"hello", digest_size=32).hexdigest()


def test_key_json(daemon, project):
    r = daemon.cli("key", "--test", "t1", *dep(project), "--project", "pj")
    assert r.rc == 0, r
    text = r.stdout.strip()
    r = daemon.cli("key", "--json", "--test", "t1", *dep(project),
                   "--project", "pj")
    assert r.rc == 0, r
    k = json.loads(r.stdout)
    assert k["key"] == text
    assert k["test"] == "t1"
    assert k["project"] == "pj"
    assert k["root"] == project.root
    assert k["files"] == 2
    # The key is derived from the two digests it shows (PROTOCOL.md).
    from conftest import derive_key
    assert derive_key("pj", "t1", bytes.fromhex(k["source_digest"]),
                      bytes.fromhex(k["env_digest"])).hex() == text


def test_key_needs_no_daemon(project, tmpbase):
    from conftest import run_cli
    r = run_cli(["key", "--test", "t1"] + dep(project),
                os.path.join(tmpbase, "no.sock"))
    assert r.rc == 0 and len(r.stdout.strip()) == 64, r


def test_ls(daemon, project):
    r = daemon.cli("ls")
    assert r.rc == 0, r
    assert "no entries" in r.stdout
    record(daemon, project, "unit/a", "pass", "--duration", "1")
    record(daemon, project, "unit/b", "fail")
    r = daemon.cli("record", "--test", "other", "--outcome", "pass",
                   "--root", project.root, "--dep", "srcx")
    assert r.rc == 0, r
    r = daemon.cli("ls")
    assert r.rc == 0, r
    for t in ("unit/a", "unit/b", "other"):
        assert t in r.stdout
    r = daemon.cli("ls", "--test", "unit/*")
    assert "unit/a" in r.stdout and "unit/b" in r.stdout
    assert "other" not in r.stdout
    r = daemon.cli("ls", "--json", "--path", project.path("srcx"))
    assert r.rc == 0, r
    assert [e["test"] for e in json.loads(r.stdout)["entries"]] == ["other"]
    r = daemon.cli("ls", "--json", "--path", "src", cwd=project.root)
    assert sorted(e["test"] for e in json.loads(r.stdout)["entries"]) == \
        ["unit/a", "unit/b"]
    r = daemon.cli("ls", "--json")
    entries = {e["test"]: e for e in json.loads(r.stdout)["entries"]}
    assert set(entries) == {"unit/a", "unit/b", "other"}
    a = entries["unit/a"]
    assert a["outcome"] == "pass" and a["flaky"] is False
    assert a["duration"] == 1
    assert a["root"] == project.root
    assert a["expires_ms"] - a["created_ms"] == 86400000
    assert entries["unit/b"]["outcome"] == "fail"
    k = daemon.cli("key", "--test", "unit/a", *dep(project)).stdout.strip()
    assert a["key"] == k


def test_ls_pages_through_everything(daemon):
    n = 2500
    recs = [enc_record(os.urandom(32), "bulk/%04d" % i) for i in range(n)]
    with daemon.raw() as c:
        assert c.record(recs) == [0] * n
        # The daemon pages at most 1000 at a time.
        page, nxt = c.list(limit=1000)
        assert len(page) == 1000 and nxt != 0
    r = daemon.cli("ls", "--json", timeout=30)
    assert r.rc == 0, r
    tests = [e["test"] for e in json.loads(r.stdout)["entries"]]
    assert len(tests) == n
    assert set(tests) == {"bulk/%04d" % i for i in range(n)}


def test_gc(daemon, project):
    n = 300
    recs = [enc_record(os.urandom(32), "gc/%d" % i, ttl_ms=1)
            for i in range(n)]
    with daemon.raw() as c:
        c.record(recs)
    record(daemon, project, "live")
    time.sleep(0.01)
    r = daemon.cli("gc", "--json")
    assert r.rc == 0, r
    removed = json.loads(r.stdout)["removed"]
    # The periodic sweep may have taken some first; together they are all.
    assert 0 <= removed <= n
    with daemon.raw() as c:
        assert c.status()["entries"] == 1
        assert c.stats()["expired"] == n
    r = daemon.cli("gc")
    assert r.rc == 0 and "0 expired entries removed" in r.stdout, r
    assert daemon.cli("lookup", "--test", "live", *dep(project)).rc == 0


def test_expired_entry_is_a_miss_before_any_sweep(daemon):
    k = os.urandom(32)
    with daemon.raw() as c:
        c.record([enc_record(k, "quick", ttl_ms=1)])
        time.sleep(0.005)
        assert c.lookup([k]) == [None]


# --- explain ---

def explain(d, project, *extra, test="t1", env=None):
    return d.cli("explain", "--test", test, *dep(project), "--env", "FOO",
                 *extra, env=env or {"FOO": "1"})


@pytest.fixture
def explained(daemon, project):
    record(daemon, project, "t1", "pass", "--env", "FOO", env={"FOO": "1"})
    return daemon


def test_explain_unchanged(explained, project):
    r = explain(explained, project)
    assert r.rc == 0, r
    assert "src/a.c" not in r.stdout
    assert "cached pass" in r.stdout


def test_explain_flaky(explained, project):
    record(explained, project, "t1", "fail", "--env", "FOO",
           env={"FOO": "1"})
    r = explain(explained, project, "--json")
    assert r.rc == 1, r
    d = json.loads(r.stdout)
    assert d["key_matches"] is True and d["flaky"] is True
    assert d["cached_pass"] is False and d["changes"] == []


def test_explain_changed_file(explained, project):
    project.write("src/a.c", "int a = 2;\n")
    r = explain(explained, project)
    assert r.rc == 1, r
    assert "src/a.c" in r.stdout, r
    assert "src/sub/b.c" not in r.stdout, r
    line = [l for l in r.stdout.splitlines() if "src/a.c" in l][0]
    assert "changed" in line


def test_explain_added_file(explained, project):
    project.write("src/sub/c.c", "")
    r = explain(explained, project)
    line = [l for l in r.stdout.splitlines() if "src/sub/c.c" in l]
    assert line and "added" in line[0], r
    assert "src/a.c" not in r.stdout


def test_explain_removed_file(explained, project):
    os.unlink(project.path("src/sub/b.c"))
    r = explain(explained, project)
    line = [l for l in r.stdout.splitlines() if "src/sub/b.c" in l]
    assert line and "removed" in line[0], r
    assert "src/a.c" not in r.stdout


def test_explain_changed_env(explained, project):
    r = explain(explained, project, env={"FOO": "2"})
    line = [l for l in r.stdout.splitlines() if "FOO" in l]
    assert line and "changed" in line[0], r
    assert "src/a.c" not in r.stdout


def test_explain_json(explained, project):
    project.write("src/a.c", "x")
    project.write("src/new.c", "y")
    os.unlink(project.path("src/sub/b.c"))
    r = explain(explained, project, "--json", env={"FOO": "2"})
    assert r.rc == 1, r
    d = json.loads(r.stdout)
    got = sorted((c["change"], c["kind"], c["name"]) for c in d["changes"])
    assert got == [("added", "file", "src/new.c"),
                   ("changed", "env", "FOO"),
                   ("content", "file", "src/a.c"),
                   ("removed", "file", "src/sub/b.c")]
    assert d["found"] is True and d["key_matches"] is False
    assert d["cached_pass"] is False
    # Restored inputs make it a cached pass again.
    project.write("src/a.c", "int a = 1;\n")
    project.write("src/sub/b.c", "int b = 2;\n")
    os.unlink(project.path("src/new.c"))
    r = explain(explained, project, "--json")
    assert r.rc == 0, r
    d = json.loads(r.stdout)
    assert d["changes"] == [] and d["cached_pass"] is True


def test_explain_no_record(daemon, project):
    r = daemon.cli("explain", "--test", "never-recorded", *dep(project))
    assert r.rc == 1, r
    assert "no record" in (r.stdout + r.stderr)


def test_explain_recorded_inputs_without_deps(explained, project):
    # No --dep or --env: each recorded input is checked where it was
    # recorded (how a test recorded by the pytest plugin is explained).
    r = explained.cli("explain", "--test", "t1", env={"FOO": "1"},
                      cwd="/")
    assert r.rc == 0, r
    assert "cached pass" in r.stdout, r
    project.write("src/sub/b.c", "int b = 9;\n")
    r = explained.cli("explain", "--test", "t1", env={"FOO": "2"}, cwd="/")
    assert r.rc == 1, r
    lines = r.stdout.splitlines()
    assert any("src/sub/b.c" in l and "changed" in l for l in lines), r
    assert any("FOO" in l and "changed" in l for l in lines), r
    assert not any("src/a.c" in l for l in lines), r
