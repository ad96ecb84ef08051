"""tcache run: skip a cached pass, else run, pass the status through and
record; never record a run whose inputs changed under it; the daemon being
away never stops the command."""

import json
import os
import time

from conftest import run_cli


def dep(project):
    return ["--root", project.root, "--dep", "src"]


def counter(tmpbase):
    return os.path.join(tmpbase, "ran")


def runs(tmpbase):
    try:
        with open(counter(tmpbase)) as f:
            return len(f.read().splitlines())
    except FileNotFoundError:
        return 0


def bump(tmpbase, status=0):
    return ["sh", "-c", "echo x >> '%s'; exit %d" % (counter(tmpbase), status)]


def test_runs_on_miss_skips_on_hit(daemon, project, tmpbase):
    r = daemon.cli("run", "--test", "r1", *dep(project), "--", *bump(tmpbase))
    assert r.rc == 0, r
    assert runs(tmpbase) == 1
    r = daemon.cli("run", "--test", "r1", *dep(project), "--", *bump(tmpbase))
    assert r.rc == 0, r
    assert runs(tmpbase) == 1
    assert "cached pass" in r.stderr
    # The record is an ordinary pass: lookup agrees.
    assert daemon.cli("lookup", "--test", "r1", *dep(project)).rc == 0
    # A changed input runs it again.
    project.write("src/a.c", "changed")
    r = daemon.cli("run", "--test", "r1", *dep(project), "--", *bump(tmpbase))
    assert r.rc == 0 and runs(tmpbase) == 2, r


def test_output_passes_through(daemon, project):
    r = daemon.cli("run", "--test", "echo", *dep(project), "--",
                   "sh", "-c", "echo out; echo err >&2")
    assert r.rc == 0, r
    assert r.stdout == "out\n"
    assert "err" in r.stderr


def test_failing_status_passed_through_and_rerun(daemon, project, tmpbase):
    for i in (1, 2, 3):
        r = daemon.cli("run", "--test", "r2", *dep(project), "--",
                       *bump(tmpbase, 7))
        assert r.rc == 7, r
        assert runs(tmpbase) == i
    with daemon.raw() as c:
        e, _ = c.explain("", "r2")
    assert e["outcome"] == 2 and "7" in e["message"]


def test_status_3_is_the_commands(daemon, project, tmpbase):
    """3 is also the CLI's 'daemon unavailable': under run it is the
    command's own status, and the command is not cached."""
    for i in (1, 2):
        r = daemon.cli("run", "--test", "r3", *dep(project), "--",
                       *bump(tmpbase, 3))
        assert r.rc == 3, r
        assert runs(tmpbase) == i
    assert daemon.cli("lookup", "--test", "r3", *dep(project)).rc == 1


def test_command_not_found_is_127(daemon, project):
    for _ in range(2):
        r = daemon.cli("run", "--test", "nf", *dep(project), "--",
                       "/nonexistent/command-xyz")
        assert r.rc == 127, r
        assert "command-xyz" in r.stderr
    assert daemon.cli("lookup", "--test", "nf", *dep(project)).rc == 1


def test_not_executable_is_126(daemon, project):
    p = project.path("tests/noexec.sh")
    project.write("tests/noexec.sh", "exit 0\n")
    os.chmod(p, 0o644)
    r = daemon.cli("run", "--test", "ne", *dep(project), "--", p)
    assert r.rc == 126, r


def test_killed_command(daemon, project):
    r = daemon.cli("run", "--test", "k", *dep(project), "--",
                   "sh", "-c", "kill -TERM $$")
    assert r.rc == 128 + 15, r
    assert daemon.cli("lookup", "--test", "k", *dep(project)).rc == 1


def test_dep_changed_during_run_records_nothing(daemon, project):
    edit = "echo '/* edited */' >> '%s'" % project.path("src/a.c")
    r = daemon.cli("run", "--test", "edit", *dep(project), "--",
                   "sh", "-c", edit)
    assert r.rc == 0, r
    assert "changed" in r.stderr
    # Neither the old nor the new content holds a pass.
    assert daemon.cli("lookup", "--test", "edit", *dep(project)).rc == 1
    with daemon.raw() as c:
        assert c.explain("", "edit") == (None, [])
        assert c.status()["entries"] == 0


def test_default_test_id_is_the_command(daemon, project, tmpbase):
    cmd = bump(tmpbase)
    for _ in range(2):
        r = daemon.cli("run", *dep(project), "--", *cmd)
        assert r.rc == 0, r
    assert runs(tmpbase) == 1
    r = daemon.cli("ls", "--json")
    (e,) = json.loads(r.stdout)["entries"]
    assert e["test"] == " ".join(cmd)


def test_json_summary(daemon, project):
    r = daemon.cli("run", "--json", "--test", "j", *dep(project), "--", "true")
    assert r.rc == 0, r
    d = json.loads(r.stdout)
    assert d["cached"] is False and d["status"] == 0 and d["recorded"] is True
    r = daemon.cli("run", "--json", "--test", "j", *dep(project), "--", "true")
    d = json.loads(r.stdout)
    assert d["cached"] is True and d["status"] == 0


def test_records_duration(daemon, project):
    r = daemon.cli("run", "--test", "slow", *dep(project), "--",
                   "sleep", "0.3")
    assert r.rc == 0, r
    with daemon.raw() as c:
        e, _ = c.explain("", "slow")
    assert 250000 <= e["duration_us"] <= 5000000, e


def test_ttl_option(daemon, project):
    r = daemon.cli("run", "--test", "ttl", "--ttl", "1h", *dep(project),
                   "--", "true")
    assert r.rc == 0, r
    with daemon.raw() as c:
        e, _ = c.explain("", "ttl")
    assert abs(e["expires_ms"] - e["created_ms"] - 3600000) <= 100


def test_disabled_always_runs(daemon, project, tmpbase):
    for i in (1, 2):
        r = daemon.cli("run", "--test", "dis", *dep(project), "--",
                       *bump(tmpbase), env={"TCACHE_DISABLE": "1"})
        assert r.rc == 0 and runs(tmpbase) == i, r
    with daemon.raw() as c:
        assert c.status()["entries"] == 0


def test_daemon_down_command_still_runs(project, tmpbase):
    sock = os.path.join(tmpbase, "nobody-home.sock")
    t0 = time.monotonic()
    r = run_cli(["run", "--test", "down"] + dep(project) +
                ["--", *bump(tmpbase, 5)], sock, timeout=10)
    assert r.rc == 5, r
    assert runs(tmpbase) == 1
    assert time.monotonic() - t0 < 5
    r = run_cli(["run", "--test", "down"] + dep(project) +
                ["--", *bump(tmpbase, 0)], sock, timeout=10)
    assert r.rc == 0 and runs(tmpbase) == 2, r


def test_daemon_down_lookup_exits_3_fast(project, tmpbase):
    sock = os.path.join(tmpbase, "nobody-home.sock")
    for cmd in (["lookup", "--test", "t"] + dep(project), ["status"],
                ["record", "--test", "t", "--outcome", "pass"] + dep(project),
                ["stats"], ["invalidate", "--all"]):
        t0 = time.monotonic()
        r = run_cli(cmd, sock, timeout=10)
        assert r.rc == 3, (cmd, r)
        assert time.monotonic() - t0 < 2, cmd
        assert "unavailable" in r.stderr


def test_daemon_gone_stale_socket(make_daemon, project, tmpbase):
    """A socket file with no daemon behind it (kill -9) is unavailable too."""
    d = make_daemon()
    d.kill9()
    assert os.path.exists(d.sock)
    t0 = time.monotonic()
    r = d.cli("lookup", "--test", "t", *dep(project))
    assert r.rc == 3, r
    assert time.monotonic() - t0 < 2
    r = d.cli("run", "--test", "t", *dep(project), "--", *bump(tmpbase, 4))
    assert r.rc == 4 and runs(tmpbase) == 1, r
