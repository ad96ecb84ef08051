"""The basic cache flow through the tcache command: miss, record, hit, and
every input that must turn a hit into a miss."""

import hashlib
import json
import os
import shutil
import time

from conftest import expected_cli_key, PASS, FAIL


def deps(project, *extra):
    return ["--root", project.root, "--dep", "src"] + list(extra)


def lookup(daemon, project, test="t1", *extra, **kw):
    return daemon.cli("lookup", "--test", test, *deps(project, *extra), **kw)


def record(daemon, project, test="t1", outcome="pass", *extra, **kw):
    r = daemon.cli("record", "--test", test, "--outcome", outcome,
                   *deps(project, *extra), **kw)
    assert r.rc == 0, r
    return r


def key(daemon, project, test="t1", *extra, **kw):
    r = daemon.cli("key", "--test", test, *deps(project, *extra), **kw)
    assert r.rc == 0, r
    k = r.stdout.strip()
    assert len(k) == 64 and int(k, 16) >= 0, r
    return k


def test_miss_record_hit(daemon, project):
    r = lookup(daemon, project)
    assert r.rc == 1, r
    assert "miss" in r.stdout
    r = record(daemon, project, "t1", "pass", "--duration", "1.5")
    assert "stored" in r.stdout
    r = lookup(daemon, project)
    assert r.rc == 0, r
    assert "hit" in r.stdout
    # Another test id under the same inputs is its own key.
    assert lookup(daemon, project, "t2").rc == 1


def test_changed_dep_misses_and_restore_hits(daemon, project):
    record(daemon, project)
    assert lookup(daemon, project).rc == 0
    project.write("src/a.c", "int a = 10;\n")
    assert lookup(daemon, project).rc == 1
    project.write("src/a.c", "int a = 1;\n")
    assert lookup(daemon, project).rc == 0
    # A file deep in the directory counts as much as a top one.
    project.write("src/sub/b.c", "int b = 3;\n")
    assert lookup(daemon, project).rc == 1


def test_directory_dep_new_file_misses(daemon, project):
    record(daemon, project)
    assert lookup(daemon, project).rc == 0
    project.write("src/sub/new.c", "")
    assert lookup(daemon, project).rc == 1
    os.unlink(project.path("src/sub/new.c"))
    assert lookup(daemon, project).rc == 0
    # Removing a file is a change too.
    os.unlink(project.path("src/sub/b.c"))
    assert lookup(daemon, project).rc == 1


def test_missing_dep_counts_and_creating_it_misses(daemon, project):
    extra = ("--dep", "gen/config.h")
    record(daemon, project, "t1", "pass", *extra)
    assert lookup(daemon, project, "t1", *extra).rc == 0
    os.makedirs(project.path("gen"))
    project.write("gen/config.h", "")
    assert lookup(daemon, project, "t1", *extra).rc == 1


def test_missing_dep_is_warned_about(daemon, project):
    # A typo in --dep would freeze the key while the real files change.
    r = lookup(daemon, project, "t1", "--dep", "srcc")
    assert r.rc == 1, r
    assert "--dep" in r.stderr and "srcc" in r.stderr and \
        "does not exist" in r.stderr, r
    r = lookup(daemon, project, "t1")
    assert "does not exist" not in r.stderr, r


def test_unresolved_dep_naming_a_file_is_not_warned_about(daemon, project):
    # build/ does not exist, yet build/../src/a.c is collected as src/a.c:
    # saying it counts as an absent file would be false.
    assert not os.path.exists(project.path("build"))
    r = lookup(daemon, project, "t1", "--dep", "build/../src/a.c")
    assert r.rc == 1, r
    assert "does not exist" not in r.stderr, r
    assert key(daemon, project, "t1", "--dep", "build/../src/a.c") == \
        key(daemon, project, "t1", "--dep", "src/a.c")
    # What is absent once normalised, or below a file, still is warned of.
    for dep in ("build/../src/nothere.c", "src/a.c/x"):
        r = lookup(daemon, project, "t1", "--dep", dep)
        assert r.rc == 1, r
        assert dep in r.stderr and "does not exist" in r.stderr, (dep, r)


def test_key_matches_protocol_derivation(daemon, project):
    """tcache key is the key of PROTOCOL.md, computed here independently."""
    env = {"FOO": "bar"}
    got = key(daemon, project, "t1", "--dep", "srcx/x.c", "--env", "FOO",
              "--env", "UNSET_VAR", env=dict(env, UNSET_VAR=None))
    want = expected_cli_key(project.root, ["src", "srcx/x.c"],
                            ["FOO", "UNSET_VAR"], "", "t1",
                            environ={"FOO": "bar"})
    assert got == want
    got = key(daemon, project, "t1", "--project", "p")
    assert got == expected_cli_key(project.root, ["src"], [], "p", "t1")


def test_moving_the_project_keeps_the_key(daemon, project, tmpbase):
    k1 = key(daemon, project)
    record(daemon, project)
    moved = os.path.join(tmpbase, "elsewhere", "moved")
    shutil.copytree(project.root, moved)
    r = daemon.cli("key", "--test", "t1", "--root", moved, "--dep", "src",
                   cwd=moved)
    assert r.rc == 0 and r.stdout.strip() == k1, r
    # Absolute deps from anywhere else name the same files.
    r = daemon.cli("key", "--test", "t1", "--root", moved, "--dep",
                   os.path.join(moved, "src"), cwd="/")
    assert r.rc == 0 and r.stdout.strip() == k1, r
    # The root found from the current directory (no .git: the cwd).
    r = daemon.cli("key", "--test", "t1", "--dep", "src", cwd=moved)
    assert r.rc == 0 and r.stdout.strip() == k1, r
    r = daemon.cli("lookup", "--test", "t1", "--dep", "src", cwd=moved)
    assert r.rc == 0, r


def test_git_toplevel_is_the_root(daemon, project):
    os.makedirs(project.path(".git"))
    k1 = key(daemon, project)
    # From a subdirectory, with the dep relative to that directory.
    r = daemon.cli("key", "--test", "t1", "--dep", "../src",
                   cwd=project.path("tests"))
    assert r.rc == 0 and r.stdout.strip() == k1, r


def test_env_value_changes_key(daemon, project):
    ka = key(daemon, project, "t1", "--env", "FOO", env={"FOO": "1"})
    kb = key(daemon, project, "t1", "--env", "FOO", env={"FOO": "2"})
    assert ka != kb
    record(daemon, project, "t1", "pass", "--env", "FOO", env={"FOO": "1"})
    assert lookup(daemon, project, "t1", "--env", "FOO", env={"FOO": "1"}).rc == 0
    assert lookup(daemon, project, "t1", "--env", "FOO", env={"FOO": "2"}).rc == 1
    # A variable not named by --env does not matter.
    assert lookup(daemon, project, "t1", "--env", "FOO",
                  env={"FOO": "1", "BAR": "x"}).rc == 0


def test_unset_and_empty_env_differ(daemon, project):
    unset = key(daemon, project, "t1", "--env", "FOO", env={"FOO": None})
    empty = key(daemon, project, "t1", "--env", "FOO", env={"FOO": ""})
    plain = key(daemon, project, "t1")
    assert len({unset, empty, plain}) == 3
    record(daemon, project, "t1", "pass", "--env", "FOO", env={"FOO": ""})
    assert lookup(daemon, project, "t1", "--env", "FOO", env={"FOO": None}).rc == 1
    assert lookup(daemon, project, "t1", "--env", "FOO", env={"FOO": ""}).rc == 0


def test_project_changes_key(daemon, project):
    k0 = key(daemon, project)
    k1 = key(daemon, project, "t1", "--project", "one")
    k2 = key(daemon, project, "t1", env={"TCACHE_PROJECT": "one"})
    assert k0 != k1
    assert k1 == k2
    record(daemon, project, "t1", "pass", "--project", "one")
    assert lookup(daemon, project, "t1", "--project", "one").rc == 0
    assert lookup(daemon, project, "t1", "--project", "two").rc == 1
    assert lookup(daemon, project).rc == 1


def test_failed_outcome_is_never_a_hit(daemon, project):
    r = record(daemon, project, "t1", "fail")
    assert lookup(daemon, project, "t1").rc == 1
    # A later pass under the same key disagrees: flaky, still no hit.
    r = record(daemon, project, "t1", "pass")
    assert "flaky" in r.stdout, r
    assert lookup(daemon, project, "t1").rc == 1


def test_skip_and_error_never_hit(daemon, project):
    for outcome in ("skip", "error"):
        record(daemon, project, "t-" + outcome, outcome)
        r = lookup(daemon, project, "t-" + outcome, "--json")
        assert r.rc == 1, r
        d = json.loads(r.stdout)
        assert d["hit"] is False and d["outcome"] == outcome, d


def test_conflicting_outcome_marks_flaky(daemon, project):
    r = record(daemon, project, "t1", "pass")
    assert "flaky" not in r.stdout
    assert lookup(daemon, project).rc == 0
    # The same pass again is no conflict.
    r = record(daemon, project, "t1", "pass")
    assert "flaky" not in r.stdout
    assert lookup(daemon, project).rc == 0
    r = record(daemon, project, "t1", "fail", "--json")
    assert json.loads(r.stdout)["flaky"] is True
    r = lookup(daemon, project, "t1", "--json")
    assert r.rc == 1
    assert json.loads(r.stdout)["flaky"] is True
    # Passing again does not clear the mark.
    record(daemon, project, "t1", "pass")
    assert lookup(daemon, project).rc == 1
    r = daemon.cli("ls", "--json")
    assert r.rc == 0, r
    text = r.stdout
    assert "t1" in text and "flaky" in text
    r = daemon.cli("ls")
    assert r.rc == 0 and "t1" in r.stdout and "flaky" in r.stdout, r
    # The daemon's view agrees.
    with daemon.raw() as c:
        entries, _ = c.list()
        (e,) = [e for e in entries if e["test"] == "t1"]
        assert e["flaky"] == 1
        assert c.stats()["flaky_entries"] == 1
    # Invalidating clears it: a fresh pass is a hit again.
    assert daemon.cli("invalidate", "--test", "t1").rc == 0
    record(daemon, project, "t1", "pass")
    assert lookup(daemon, project).rc == 0


def test_ttl_expiry(daemon, project):
    record(daemon, project, "short", "pass", "--ttl", "1s")
    record(daemon, project, "long", "pass")
    assert lookup(daemon, project, "short").rc == 0
    with daemon.raw() as c:
        k = bytes.fromhex(key(daemon, project, "short"))
        (res,) = c.lookup([k])
        assert res is not None
        assert 900 <= res["expires_ms"] - res["created_ms"] <= 1100, res
    time.sleep(1.5)
    assert lookup(daemon, project, "short").rc == 1
    assert lookup(daemon, project, "long").rc == 0


def test_daemon_default_ttl_applies(make_daemon, project):
    d = make_daemon("--ttl", "1s")
    with d.raw() as c:
        assert c.status()["ttl_ms"] == 1000
    record(d, project, "dflt", "pass")
    record(d, project, "long", "pass", "--ttl", "1h")
    assert lookup(d, project, "dflt").rc == 0
    with d.raw() as c:
        (res,) = c.lookup([bytes.fromhex(key(d, project, "long"))])
        assert abs(res["expires_ms"] - res["created_ms"] - 3600 * 1000) <= 100
    time.sleep(1.5)
    assert lookup(d, project, "dflt").rc == 1
    assert lookup(d, project, "long").rc == 0


def test_default_daemon_ttl_is_24h(daemon, project):
    with daemon.raw() as c:
        assert c.status()["ttl_ms"] == 24 * 3600 * 1000
    record(daemon, project)
    with daemon.raw() as c:
        (res,) = c.lookup([bytes.fromhex(key(daemon, project))])
        assert res["outcome"] == PASS and res["flaky"] == 0
        assert abs(res["expires_ms"] - res["created_ms"] - 86400000) <= 100


def test_disable_makes_lookup_miss(daemon, project):
    record(daemon, project)
    assert lookup(daemon, project).rc == 0
    assert lookup(daemon, project, env={"TCACHE_DISABLE": "1"}).rc == 1


def test_record_outcome_reaches_daemon(daemon, project):
    """What tcache record sends is what the daemon stores."""
    record(daemon, project, "t1", "fail", "--duration", "2.25",
           "--message", "boom", "--env", "FOO", env={"FOO": "v"})
    with daemon.raw() as c:
        e, inputs = c.explain("", "t1")
    assert e is not None
    assert e["outcome"] == FAIL
    assert e["duration_us"] == 2250000
    assert e["message"] == "boom"
    assert e["root"] == project.root
    paths = {(i["kind"], i["path"]) for i in inputs}
    assert (0, "src/a.c") in paths and (0, "src/sub/b.c") in paths
    assert (2, "FOO") in paths
    (foo,) = [i for i in inputs if i["path"] == "FOO"]
    assert foo["digest"] == hashlib.blake2b(b"v", digest_size=32).digest()


def test_usage_errors_exit_2(daemon, project):
    assert daemon.cli("lookup", *deps(project)).rc == 2          # no --test
    assert daemon.cli("record", "--test", "t", *deps(project)).rc == 2
    assert daemon.cli("record", "--test", "t", "--outcome", "maybe",
                      *deps(project)).rc == 2
    assert daemon.cli("lookup", "--test", "t", "--bogus").rc == 2
    assert daemon.cli("frobnicate").rc == 2
    assert daemon.cli("invalidate").rc == 2
    assert daemon.cli("invalidate", "--key", "abc").rc == 2
