"""README.md's commands, run as written.

Every fenced block of README.md whose info string is exactly `sh test`
(```` ```sh test ````) is run, in README order; other blocks are not.  A
block is one of two kinds:

- a script: run whole under `bash -euo pipefail`; it must exit 0.
- a transcript: its first line starts with `$ `.  Each `$ ` line, with the
  lines after it while one ends in a backslash, is a command; the lines up to
  the next command are its expected output, stdout and stderr together.
  Commands run one after another in one `bash -euo pipefail`, each as typed
  at a prompt (a failing command does not end the block; `cd` and `export`
  carry on to the next command).  In the expected output, two spaces or more
  and a `#` start a comment; a comment saying `exit N` gives the command's
  exit status, which is 0 otherwise.  Runs of blanks compare as one blank,
  `...` within a line matches any text, and a line that is only `...`
  matches any number of lines.

All blocks share one environment, as a new user's shell would: HOME is a
temporary directory, with XDG_CONFIG_HOME, XDG_CACHE_HOME, XDG_DATA_HOME,
XDG_STATE_HOME and XDG_RUNTIME_DIR below it; no TCACHE_* variable is set
except TCACHE_SRC, the tcache checkout, which the README asks the reader to
set; PATH is build/ and then the system's directories, so `tcache` and
`tcached` are the ones just built and the daemon the first command starts
(autostart) serves this HOME alone; the current directory is one temporary
project directory.  A block may start `tcached` in the background: every
process left in a block's process group, and every process whose
environment holds this HOME (an autostarted tcached runs in a session of
its own), is ended at the end.
"""

import os
import re
import shutil
import signal
import subprocess
import tempfile
import textwrap
import time

import pytest

from conftest import BUILD

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
README = os.path.join(REPO, "README.md")
MARKER = "sh test"
BLOCK_TIMEOUT = 180
SYSTEM_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class Block:
    def __init__(self, line, text):
        self.line = line        # of the opening fence, from 1
        self.text = text

    @property
    def transcript(self):
        return self.text.lstrip("\n").startswith("$ ")

    def __repr__(self):
        return "README.md:%d" % self.line


def blocks(text):
    """The `sh test` blocks of a Markdown text, in order."""
    out = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^ {0,3}(`{3,}|~{3,})(.*)$", lines[i])
        if not m:
            i += 1
            continue
        fence, info = m.group(1), m.group(2).strip()
        start = i
        body = []
        i += 1
        while i < len(lines):
            # Closed by the same character, at least as many times.
            if re.match(r"^ {0,3}%s{%d,}\s*$" % (re.escape(fence[0]),
                                                 len(fence)), lines[i]):
                break
            body.append(lines[i])
            i += 1
        i += 1
        if info.split() == MARKER.split():
            out.append(Block(start + 1, "\n".join(body) + "\n"))
    return out


# --------------------------------------------------------- transcripts

def parse_transcript(text):
    """[(command, expected output lines, expected status)]."""
    steps = []
    lines = text.strip("\n").split("\n")
    i = 0
    while i < len(lines):
        line = lines[i]
        assert line.startswith("$ "), "transcript line %d is neither a " \
            "command nor output: %r" % (i + 1, line)
        cmd = [line[2:]]
        while cmd[-1].endswith("\\") and i + 1 < len(lines):
            i += 1
            cmd.append(lines[i])
        i += 1
        expect, status = [], 0
        while i < len(lines) and not lines[i].startswith("$ "):
            out = lines[i]
            c = re.search(r"(^|\s{2,})#(.*)$", out)
            if c:
                e = re.search(r"\bexit (\d+)\b", c.group(2))
                if e:
                    status = int(e.group(1))
                out = out[:c.start()]
                if not out.strip():
                    i += 1
                    continue
            expect.append(out)
            i += 1
        steps.append(("\n".join(cmd), expect, status))
    return steps


def _norm(line):
    return " ".join(line.split())


def output_matches(expect, actual):
    pat = ""
    for line in expect:
        n = _norm(line)
        if n == "...":
            pat += r"(?:[^\n]*\n)*?"
        else:
            pat += ".*".join(re.escape(p) for p in n.split("...")) + r"\n"
    lines = [_norm(x) for x in actual.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    text = "".join(x + "\n" for x in lines)
    return re.fullmatch(pat, text, re.S) is not None


def transcript_script(steps, outdir):
    """A bash script that runs each command as at a prompt and keeps its
    output and status in outdir/N.out and outdir/N.rc."""
    s = []
    for n, (cmd, _, _) in enumerate(steps):
        # The command inside braces on the left of &&: as interactively,
        # its own failures do not end the script.
        s.append('{ %s\n} >"%s/%d.out" 2>&1 </dev/null && __tc_rc=0 || __tc_rc=$?\n'
                 'echo "$__tc_rc" >"%s/%d.rc"\n' % (cmd, outdir, n, outdir, n))
    return "".join(s)


# ------------------------------------------------------------- running

class Session:
    """One new user's shell environment; kills what its blocks leave."""

    def __init__(self, base):
        self.base = base
        self.home = os.path.join(base, "home")
        self.project = os.path.join(base, "project")
        self.env = {k: v for k, v in os.environ.items()
                    if not k.startswith(("TCACHE_", "LISTEN_", "XDG_",
                                         "PYTHON", "PYTEST_", "VIRTUAL_ENV",
                                         "PYENV"))}
        self.env.update({
            "HOME": self.home,
            "XDG_CONFIG_HOME": os.path.join(self.home, ".config"),
            "XDG_CACHE_HOME": os.path.join(self.home, ".cache"),
            "XDG_DATA_HOME": os.path.join(self.home, ".local", "share"),
            "XDG_STATE_HOME": os.path.join(self.home, ".local", "state"),
            "XDG_RUNTIME_DIR": os.path.join(self.home, "run"),
            "PATH": BUILD + os.pathsep + SYSTEM_PATH,
            "TCACHE_SRC": REPO,
            "COLUMNS": "80",
            "TERM": "dumb",
        })
        for d in ("XDG_CONFIG_HOME", "XDG_CACHE_HOME", "XDG_DATA_HOME",
                  "XDG_STATE_HOME"):
            os.makedirs(self.env[d])
        os.makedirs(self.env["XDG_RUNTIME_DIR"], mode=0o700)
        os.makedirs(self.project)
        self.pgids = []

    def bash(self, script, timeout):
        """(status, output) of `bash -euo pipefail` on script; status None
        when it timed out.  Output goes to a file, not a pipe: a process the
        block leaves in the background keeps its copy open."""
        fd, path = tempfile.mkstemp(suffix=".sh", dir=self.base)
        with os.fdopen(fd, "w") as f:
            f.write(script)
        with open(path + ".out", "w+b") as log:
            p = subprocess.Popen(["bash", "-euo", "pipefail", path],
                                 cwd=self.project, env=self.env,
                                 stdin=subprocess.DEVNULL, stdout=log,
                                 stderr=subprocess.STDOUT,
                                 start_new_session=True)
            self.pgids.append(p.pid)
            try:
                rc = p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _killpg(p.pid, signal.SIGKILL)
                p.wait()
                rc = None
            log.seek(0)
            return rc, log.read().decode("utf-8", "replace")

    def run(self, block, timeout=BLOCK_TIMEOUT):
        """Runs a block; raises AssertionError with its text and output."""
        if not block.transcript:
            rc, out = self.bash(block.text, timeout)
            if rc != 0:
                raise AssertionError(
                    "%r %s:\n%s\n--- output:\n%s" % (
                        block, "timed out after %ds" % timeout if rc is None
                        else "exited %d" % rc, _indent(block.text), out))
            return
        steps = parse_transcript(block.text)
        outdir = tempfile.mkdtemp(prefix="out", dir=self.base)
        rc, out = self.bash(transcript_script(steps, outdir), timeout)
        for n, (cmd, expect, status) in enumerate(steps):
            try:
                with open(os.path.join(outdir, "%d.rc" % n)) as f:
                    got = int(f.read())
                with open(os.path.join(outdir, "%d.out" % n), "rb") as f:
                    actual = f.read().decode("utf-8", "replace")
            except (OSError, ValueError):
                raise AssertionError(
                    "%r: `%s` did not finish (%s):\n%s\n--- output:\n%s" % (
                        block, cmd, "timed out after %ds" % timeout
                        if rc is None else "the block exited %s" % rc,
                        _indent(block.text), out))
            if got != status or not output_matches(expect, actual):
                raise AssertionError(
                    "%r: `%s` %s; its output:\n%s\n"
                    "--- expected:\n%s\n--- the block:\n%s" % (
                        block, cmd, "exited %d (expected %d)" % (got, status)
                        if got != status else "printed something else",
                        _indent(actual),
                        _indent("\n".join(expect)), _indent(block.text)))
        if rc != 0:
            raise AssertionError("%r exited %s:\n%s\n--- output:\n%s" % (
                block, rc, _indent(block.text), out))

    def ours(self):
        """Pids of processes whose environment holds this HOME."""
        mark = ("HOME=%s" % self.home).encode()
        pids = []
        for name in os.listdir("/proc"):
            if not name.isdigit() or int(name) == os.getpid():
                continue
            try:
                with open("/proc/%s/environ" % name, "rb") as f:
                    if mark in f.read().split(b"\0"):
                        pids.append(int(name))
            except OSError:
                pass
        return pids

    def close(self):
        for pgid in self.pgids:
            _killpg(pgid, signal.SIGTERM)
        for pid in self.ours():
            _kill(pid, signal.SIGTERM)
        end = time.monotonic() + 10
        while time.monotonic() < end and self.ours():
            time.sleep(0.05)
        for pgid in self.pgids:
            _killpg(pgid, signal.SIGKILL)
        left = self.ours()
        for pid in left:
            _kill(pid, signal.SIGKILL)
        return left


def _kill(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def _killpg(pgid, sig):
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _indent(text):
    return textwrap.indent(text.rstrip("\n"), "    ")


@pytest.fixture
def session():
    base = tempfile.mkdtemp(prefix="tc-rd-", dir="/tmp")
    s = Session(base)
    try:
        yield s
    finally:
        left = s.close()
        shutil.rmtree(base, ignore_errors=True)
        assert not left, "processes of the session survived SIGTERM: %s" % left


# --------------------------------------------------------------- tests

def test_readme_blocks_run_as_written(session):
    with open(README) as f:
        found = blocks(f.read())
    assert len(found) >= 5, "README.md has only %d `%s` blocks" % (
        len(found), MARKER)
    for b in found:
        session.run(b)
    # The blocks' daemon answered them from this HOME, not some other.
    sock = os.path.join(session.env["XDG_RUNTIME_DIR"], "tcache",
                        "tcached.sock")
    assert os.path.exists(sock), "no tcached ran on this HOME's socket"


def test_extraction():
    md = textwrap.dedent("""\
        ```sh test
        echo one
        ```
        ```sh
        echo not marked
        ```
        ````sh test
        ```
        echo four
        ````
        ```sh  test
        $ echo two
        ```
        ~~~ sh test extra
        no
        ~~~
        """)
    got = blocks(md)
    assert [b.line for b in got] == [1, 7, 11]
    assert got[0].text == "echo one\n" and not got[0].transcript
    assert got[1].text == "```\necho four\n"
    assert got[2].transcript


def test_transcript_parsing():
    steps = parse_transcript(textwrap.dedent("""\
        $ a \\
            b
        out  # exit 3: why
        $ c
        # only a comment
        x # y
        """))
    assert steps == [("a \\\n    b", ["out"], 3), ("c", ["x # y"], 0)]
    assert output_matches(["a  b", "..."], "a b\nc\nd\n")
    assert output_matches(["x (saved ...)"], "x (saved 3ms)\n\n")
    assert not output_matches(["x"], "x\ny\n")
    assert not output_matches(["hit"], "miss\n")


def test_failures_are_reported(session):
    """The runner can fail: a script that fails, a transcript whose output
    or status differs, a block that hangs."""
    with pytest.raises(AssertionError, match="exited 1"):
        session.run(Block(1, "true\nfalse\necho never\n"))
    with pytest.raises(AssertionError, match="unbound"):
        session.run(Block(1, "echo $NOT_SET_ANYWHERE\n"))
    with pytest.raises(AssertionError, match=r"`echo miss` printed something"):
        session.run(Block(1, "$ echo miss\nhit\n"))
    with pytest.raises(AssertionError, match=r"exited 1 \(expected 0\)"):
        session.run(Block(1, "$ false\n"))
    with pytest.raises(AssertionError, match="timed out"):
        session.run(Block(1, "sleep 30\n"), timeout=1)
    session.run(Block(1, "$ cd /\n$ pwd\n/\n$ false\n  # exit 1\n"))
    # A background process started by a block is ended by close().
    session.run(Block(1, "sleep 300 &\n"))
    session.run(Block(1, "setsid sleep 300 </dev/null >/dev/null 2>&1 &\n"))
    # A forked child shows HOME in /proc/PID/environ only once it has exec'd.
    end = time.monotonic() + 10
    while len(session.ours()) < 2 and time.monotonic() < end:
        time.sleep(0.02)
    assert len(session.ours()) >= 2
    assert session.close() == []
    assert session.ours() == []
