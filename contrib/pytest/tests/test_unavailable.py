"""No daemon, or one that never answers: plain pytest and one warning line."""

import os
import re
import socket
import time

import pytest

from conftest import short_tmpdir

DOCTEST = "--doctest-modules"
HEADER = re.compile(r"^tcache: (on|readonly|record-only), precision "
                    r"\w+( \(\w+ tracer\))?, socket ")


def warning_lines(run):
    """Lines that mention tcache, but for the report header (which says
    the mode and socket) and pytest's own rootdir line."""
    return [ln for ln in run.text.splitlines()
            if "tcache" in ln.lower() and not HEADER.match(ln)
            and not ln.startswith("rootdir:")]


def assert_plain(run, plain):
    assert run.ret == plain.ret, run
    assert run.outcomes == plain.outcomes, run
    assert run.ran_counts == plain.ran_counts, run
    assert run.cached == set(), run
    assert len(warning_lines(run)) == 1, (warning_lines(run), run)


@pytest.fixture
def dead_socket():
    """A socket path in a fresh directory, no daemon: one absent, one a
    socket file nobody listens on (connection refused)."""
    d = short_tmpdir("tcd")
    stale = os.path.join(d, "stale")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(stale)
    s.close()
    yield {"absent": os.path.join(d, "none"), "refused": stale}
    for name in ("stale",):
        os.unlink(os.path.join(d, name))
    os.rmdir(d)


@pytest.mark.parametrize("kind", ["absent", "refused"])
def test_daemon_down_is_plain_pytest(outcomes_project, dead_socket, kind):
    tc = outcomes_project
    plain = tc.plain(DOCTEST)
    assert plain.ret == 1
    r = tc.run(DOCTEST, "--tcache-socket=" + dead_socket[kind])
    assert_plain(r, plain)


def test_daemon_down_by_environment(outcomes_project, dead_socket):
    tc = outcomes_project
    plain = tc.plain(DOCTEST)
    tc.monkeypatch.setenv("TCACHE_SOCKET", dead_socket["absent"])
    assert_plain(tc.run(DOCTEST), plain)


def test_daemon_down_all_passing_exit_zero(tc, dead_socket):
    tc.write({"pytest.ini": "[pytest]\n", "test_ok.py": """\
        from ranlog import ran

        def test_ok():
            ran()
        """})
    plain = tc.plain()
    assert plain.ret == 0
    assert_plain(tc.run("--tcache-socket=" + dead_socket["absent"]), plain)


def test_daemon_down_with_xdist(outcomes_project, dead_socket):
    tc = outcomes_project
    plain = tc.plain(DOCTEST)
    r = tc.run(DOCTEST, "-n", "2", "--tcache-socket=" + dead_socket["absent"])
    assert_plain(r, plain)


def test_silent_daemon_does_not_hang(outcomes_project, hanging_server):
    tc = outcomes_project
    plain = tc.plain(DOCTEST)
    start = time.monotonic()
    r = tc.run(DOCTEST, "--tcache-socket=" + hanging_server.path,
               "--tcache-timeout=0.5")
    elapsed = time.monotonic() - start
    assert hanging_server.conns, "the plugin never connected"
    assert_plain(r, plain)
    assert elapsed < 15, elapsed


def test_silent_daemon_with_xdist(outcomes_project, hanging_server):
    tc = outcomes_project
    plain = tc.plain(DOCTEST)
    start = time.monotonic()
    r = tc.run(DOCTEST, "-n", "2", "--tcache-socket=" + hanging_server.path,
               "--tcache-timeout=0.5")
    elapsed = time.monotonic() - start
    assert_plain(r, plain)
    assert elapsed < 20, elapsed
