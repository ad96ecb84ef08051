"""Modes and markers: readonly, record-only, TCACHE_DISABLE, the ini switch,
tcache_never, flaky tests, and tests that edit their own inputs."""

import os
import shutil
import subprocess
import time

from conftest import TCACHED, clean_env, short_tmpdir


SIMPLE = {
    "pytest.ini": "[pytest]\n",
    "helper.py": """\
        def value():
            return 1
        """,
    "test_a.py": """\
        from ranlog import ran

        import helper


        def test_a1():
            ran()
            assert helper.value() == 1


        def test_a2():
            ran()
        """,
    "test_b.py": """\
        from ranlog import ran


        def test_b1():
            ran()


        def test_b2():
            ran()
        """,
}
SIMPLE_IDS = {"test_a.py::test_a1", "test_a.py::test_a2",
              "test_b.py::test_b1", "test_b.py::test_b2"}
A_IDS = {"test_a.py::test_a1", "test_a.py::test_a2"}


def test_readonly_records_nothing(tc, daemon):
    tc.write(SIMPLE)
    for _ in range(2):
        r = tc.run("--tcache-readonly")
        assert r.ran == SIMPLE_IDS and r.cached == set(), r
        assert r.outcomes == {"passed": 4}, r
    assert daemon.entries() == {}
    # With a recorded cache, readonly looks up and hits...
    tc.run()
    before = daemon.entries()
    assert set(before) == SIMPLE_IDS
    r = tc.run("--tcache-readonly")
    assert r.ran == set() and r.cached == SIMPLE_IDS, r
    # ...but what runs after a change is still not recorded.
    # (An interface change: test_a2 runs none of helper's code.)
    tc.edit("helper.py", "def value", "X = 1\n\n\ndef value")
    for _ in range(2):
        r = tc.run("--tcache-readonly")
        assert r.ran == A_IDS, r
        assert r.cached == SIMPLE_IDS - A_IDS, r
    after = daemon.entries()
    assert {t: [e["key"] for e in es] for t, es in after.items()} == \
        {t: [e["key"] for e in es] for t, es in before.items()}


def test_record_only_runs_everything_and_records(tc, daemon):
    tc.write(SIMPLE)
    for _ in range(2):
        r = tc.run("--tcache-record-only")
        assert r.ran == SIMPLE_IDS and r.cached == set(), r
        assert r.outcomes == {"passed": 4}, r
    entries = daemon.entries()
    assert set(entries) == SIMPLE_IDS
    assert all(e["outcome"] == "pass" for es in entries.values()
               for e in es)
    r = tc.run()
    assert r.ran == set() and r.cached == SIMPLE_IDS, r


def test_tcache_disable_turns_it_off(tc, daemon):
    tc.write(SIMPLE)
    tc.monkeypatch.setenv("TCACHE_DISABLE", "1")
    for _ in range(2):
        r = tc.run()
        assert r.ran == SIMPLE_IDS and r.cached == set(), r
        assert r.outcomes == {"passed": 4}, r
        assert "cached" not in r.result.outlines[-1], r
    assert daemon.entries() == {}
    # A warm cache is not consulted either.
    tc.monkeypatch.delenv("TCACHE_DISABLE")
    tc.run()
    assert tc.run().cached == SIMPLE_IDS
    tc.monkeypatch.setenv("TCACHE_DISABLE", "1")
    r = tc.run()
    assert r.ran == SIMPLE_IDS and r.cached == set(), r


def test_ini_turns_it_on(tc, daemon):
    tc.write(SIMPLE)
    tc.write({"pytest.ini": "[pytest]\ntcache = true\n"})
    r = tc.run(tcache=False)
    assert r.ran == SIMPLE_IDS, r
    assert set(daemon.entries()) == SIMPLE_IDS
    r = tc.run(tcache=False)
    assert r.ran == set() and r.cached == SIMPLE_IDS, r
    tc.monkeypatch.setenv("TCACHE_DISABLE", "1")
    r = tc.run(tcache=False)
    assert r.ran == SIMPLE_IDS and r.cached == set(), r


def test_off_without_switch(tc, daemon):
    """Loaded but neither --tcache nor the ini: plain pytest."""
    tc.write(SIMPLE)
    for _ in range(2):
        r = tc.run(tcache=False)
        assert r.ran == SIMPLE_IDS and r.cached == set(), r
    assert daemon.entries() == {}


def test_marked_never_always_runs(tc):
    tc.write({"pytest.ini": "[pytest]\n", "test_n.py": """\
        import pytest
        from ranlog import ran


        @pytest.mark.tcache_never
        def test_never():
            ran()


        def test_normal():
            ran()


        @pytest.mark.tcache_never
        class TestNever:
            def test_m(self):
                ran()
        """})
    never = {"test_n.py::test_never", "test_n.py::TestNever::test_m"}
    tc.run()
    for _ in range(2):
        r = tc.run()
        assert r.ran == never, r
        assert r.cached == {"test_n.py::test_normal"}, r
        assert r.outcomes == {"passed": 3}, r


FLAKY = {
    "pytest.ini": "[pytest]\n",
    "test_fl.py": """\
        import os

        from ranlog import ran


        def test_flaky():
            ran()
            assert os.environ.get("TC_FLAKY") != "1"


        def test_steady():
            ran()
        """,
}


def test_flaky_test_is_marked_and_always_runs(tc, daemon):
    tc.write(FLAKY)
    r = tc.run("--tcache-record-only")
    assert r.outcomes == {"passed": 2}, r
    # TC_FLAKY is not named by --tcache-env: the same key, another outcome.
    tc.monkeypatch.setenv("TC_FLAKY", "1")
    r = tc.run("--tcache-record-only")
    assert r.outcomes == {"passed": 1, "failed": 1}, r
    tc.monkeypatch.delenv("TC_FLAKY")
    entries = daemon.entries()
    assert any(e["flaky"] for e in entries["test_fl.py::test_flaky"]), \
        entries
    assert not any(e["flaky"] for e in entries["test_fl.py::test_steady"])
    ls = daemon.cli("ls").stdout
    line = [ln for ln in ls.splitlines() if "test_fl.py::test_flaky" in ln]
    assert line and "flaky" in line[0].split("test_fl.py")[0], ls
    for _ in range(2):
        r = tc.run()
        assert r.outcomes == {"passed": 2}, r
        assert r.ran == {"test_fl.py::test_flaky"}, r
        assert r.cached == {"test_fl.py::test_steady"}, r


def test_test_editing_its_data_file_is_not_cached(tc):
    """The test reads counter.txt ("0") and writes "1": the next run must
    run it again (and it fails), not trust the content it left behind."""
    tc.write({"pytest.ini": "[pytest]\n", "counter.txt": "0",
              "test_c.py": """\
        from ranlog import ran


        def test_count():
            ran()
            with open("counter.txt") as f:
                n = f.read()
            with open("counter.txt", "w") as f:
                f.write("1")
            assert n == "0"


        def test_other():
            ran()
        """})
    r = tc.run()
    assert r.outcomes == {"passed": 2}, r
    r = tc.run()
    assert "test_c.py::test_count" in r.ran, r
    assert r.outcomes == {"passed": 1, "failed": 1}, r
    assert r.cached == {"test_c.py::test_other"}, r


def test_test_editing_its_module_is_not_recorded(tc, daemon):
    """The test edits a project module it imports.  Recording its pass
    under the key of the old content would make a later checkout of the
    old content a stale hit."""
    tc.write({"pytest.ini": "[pytest]\n",
              "vals.py": "VALUE = 1\n",
              "test_e.py": """\
        import os

        from ranlog import ran

        import vals


        def test_edits():
            ran()
            path = os.path.join(os.path.dirname(__file__), "vals.py")
            with open(path, "a") as f:
                f.write("# touched\\n")
            assert vals.VALUE == 1


        def test_other():
            ran()
        """})
    r = tc.run()
    assert r.outcomes == {"passed": 2}, r
    entries = daemon.entries()
    assert not any(e["outcome"] == "pass"
                   for e in entries.get("test_e.py::test_edits", [])), \
        entries
    (tc.root / "vals.py").write_text("VALUE = 1\n")      # the old content
    r = tc.run()
    assert "test_e.py::test_edits" in r.ran, r
    assert "test_e.py::test_edits" not in r.cached, r


def test_selection_options_keep_keys_behaviour_options_change_them(tc):
    tc.write(SIMPLE)
    tc.run()
    r = tc.run("-k", "test_a1 or test_b")
    assert r.ran == set(), r
    assert r.cached == SIMPLE_IDS - {"test_a.py::test_a2"}, r
    r = tc.run("-x")
    assert r.ran == set() and r.cached == SIMPLE_IDS, r
    r = tc.run("-W", "error::DeprecationWarning")
    assert r.ran == SIMPLE_IDS and r.cached == set(), r
    r = tc.run("-W", "error::DeprecationWarning")
    assert r.ran == set() and r.cached == SIMPLE_IDS, r


def test_ttl_is_sent_with_records(tc, daemon):
    tc.write(SIMPLE)
    r = tc.run("--tcache-ttl=90m")
    assert r.outcomes == {"passed": 4}, r
    for es in daemon.entries().values():
        for e in es:
            assert e["expires_ms"] - e["created_ms"] == 90 * 60 * 1000, e
    r = tc.run("--tcache-ttl=soon")
    assert r.ret == 4 and "--tcache-ttl" in r.text, r


def test_readonly_peer_of_the_daemon_records_nothing_and_says_so(tc):
    """A tcached that serves this uid read-only (--readonly-uid): the
    plugin looks up, records nothing, and says so once, not as lost
    results."""
    d = short_tmpdir("tcro")
    sock = os.path.join(d, "s")
    proc = subprocess.Popen(
        [TCACHED, "--socket", sock, "--db", os.path.join(d, "db"),
         "--readonly-uid", str(os.getuid())],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env=clean_env())
    try:
        deadline = time.monotonic() + 10
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.02)
        tc.monkeypatch.setenv("TCACHE_SOCKET", sock)
        tc.write(SIMPLE)
        for _ in range(2):
            r = tc.run()
            assert r.ran == SIMPLE_IDS and r.cached == set(), r
            assert "serves this user read-only" in r.text, r
            assert "results not recorded" not in r.text, r
    finally:
        proc.terminate()
        proc.wait(10)
        shutil.rmtree(d, ignore_errors=True)
