"""tcache invalidate: by path (file, directory, relative, trailing slash,
never a sibling with a common prefix), by test glob, by key, all; dry runs
and the printed counts."""

import json
import os
import re

import pytest

# test id -> its --dep list
TESTS = {
    "t-a": ["src/a.c"],
    "t-b": ["src/sub/b.c"],
    "t-src": ["src"],
    "t-x": ["srcx/x.c"],
    "u-other": ["tests/t.sh"],
}


def dep_args(project, test):
    args = ["--root", project.root]
    for d in TESTS[test]:
        args += ["--dep", d]
    return args


@pytest.fixture
def filled(daemon, project):
    project.write("tests/t.sh", "exit 0\n")
    for t in TESTS:
        r = daemon.cli("record", "--test", t, "--outcome", "pass",
                       *dep_args(project, t))
        assert r.rc == 0, r
    assert live(daemon, project) == set(TESTS)
    return daemon


def live(daemon, project):
    """The tests that are still cached passes."""
    out = set()
    for t in TESTS:
        r = daemon.cli("lookup", "--test", t, *dep_args(project, t))
        assert r.rc in (0, 1), r
        if r.rc == 0:
            out.add(t)
    return out


def count_of(r):
    assert r.rc == 0, r
    m = re.search(r"(\d+) (entry|entries)", r.stdout)
    assert m, r
    return int(m.group(1))


def test_directory(filled, project):
    r = filled.cli("invalidate", project.path("src"))
    assert count_of(r) == 3
    assert "3 entries invalidated" in r.stdout
    assert live(filled, project) == {"t-x", "u-other"}


def test_file(filled, project):
    r = filled.cli("invalidate", project.path("src/sub/b.c"))
    assert count_of(r) == 2
    assert live(filled, project) == {"t-a", "t-x", "u-other"}


def test_sibling_prefix_untouched(filled, project):
    r = filled.cli("invalidate", project.path("srcx"))
    assert count_of(r) == 1
    assert "1 entry invalidated" in r.stdout
    assert live(filled, project) == set(TESTS) - {"t-x"}
    # A path that is a mere string prefix of both matches neither.
    assert count_of(filled.cli("invalidate", project.path("sr"))) == 0
    assert count_of(filled.cli("invalidate", project.path("src/a"))) == 0
    assert live(filled, project) == set(TESTS) - {"t-x"}


def test_trailing_slash(filled, project):
    r = filled.cli("invalidate", project.path("src") + "/")
    assert count_of(r) == 3
    assert live(filled, project) == {"t-x", "u-other"}


def test_relative_path_from_cwd(filled, project):
    r = filled.cli("invalidate", "sub", cwd=project.path("src"))
    assert count_of(r) == 2
    assert live(filled, project) == {"t-a", "t-x", "u-other"}
    r = filled.cli("invalidate", "../srcx/./x.c", cwd=project.path("src"))
    assert count_of(r) == 1
    assert live(filled, project) == {"t-a", "u-other"}


def test_deleted_file_still_invalidates(filled, project):
    os.unlink(project.path("src/a.c"))
    r = filled.cli("invalidate", "src/a.c", cwd=project.root)
    assert count_of(r) == 2          # t-a and t-src


def test_several_paths_sum(filled, project):
    r = filled.cli("invalidate", project.path("srcx"), project.path("tests"))
    assert count_of(r) == 2
    assert live(filled, project) == {"t-a", "t-b", "t-src"}


def test_test_glob(filled, project):
    r = filled.cli("invalidate", "--test", "t-?")
    assert count_of(r) == 3              # t-a t-b t-x, not t-src
    assert live(filled, project) == {"t-src", "u-other"}
    r = filled.cli("invalidate", "--test", "T-*")   # case sensitive
    assert count_of(r) == 0
    r = filled.cli("invalidate", "--test", "[tu]-[os]*")
    assert count_of(r) == 2
    assert live(filled, project) == set()


def test_key(filled, project):
    k = filled.cli("key", "--test", "t-b", *dep_args(project, "t-b"))
    assert k.rc == 0, k
    r = filled.cli("invalidate", "--key", k.stdout.strip())
    assert count_of(r) == 1
    assert live(filled, project) == set(TESTS) - {"t-b"}
    r = filled.cli("invalidate", "--key", k.stdout.strip())
    assert count_of(r) == 0


def test_all(filled, project):
    r = filled.cli("invalidate", "--all")
    assert count_of(r) == len(TESTS)
    assert live(filled, project) == set()
    with filled.raw() as c:
        assert c.status()["entries"] == 0
        assert c.stats()["invalidated"] == len(TESTS)


def test_dry_run_counts_without_removing(filled, project):
    for args, n in ((["--all"], 5), (["--test", "t-*"], 4),
                    ([project.path("src")], 3)):
        r = filled.cli("invalidate", "--dry-run", *args)
        assert count_of(r) == n, (args, r)
        assert "would" in r.stdout
    assert live(filled, project) == set(TESTS)
    with filled.raw() as c:
        assert c.status()["entries"] == len(TESTS)


def test_json(filled, project):
    r = filled.cli("invalidate", "--json", "--dry-run", "--test", "t-*")
    assert r.rc == 0, r
    assert json.loads(r.stdout) == {"invalidated": 4, "dry_run": True}
    r = filled.cli("invalidate", "--json", project.path("src"))
    assert json.loads(r.stdout) == {"invalidated": 3, "dry_run": False}
    assert live(filled, project) == {"t-x", "u-other"}


def test_usage(filled, project):
    assert filled.cli("invalidate", "--all", "--test", "x").rc == 2
    assert filled.cli("invalidate", "--key", "zz" * 32).rc == 2
    assert live(filled, project) == set(TESTS)


def test_many_entries_in_steps(daemon):
    """More entries than one bounded step removes (256): all go, and the
    count is exact."""
    from conftest import enc_record, INV_PATH
    n = 700
    recs = [enc_record(os.urandom(32), "bulk/%d" % i, root="/tmp/tc-bulk",
                       inputs=[(0, "src/f%d.c" % i, bytes(32))])
            for i in range(n)]
    with daemon.raw() as c:
        assert c.record(recs) == [0] * n
        assert c.invalidate(INV_PATH, "/tmp/tc-bulk/src", dry_run=True) == n
        # A sibling of the root is untouched.
        assert c.invalidate(INV_PATH, "/tmp/tc-bul") == 0
        assert c.invalidate(INV_PATH, "/tmp/tc-bulk/src") == n
        assert c.status()["entries"] == 0
