"""contrib/examples: `tcache run` as the wrapper that makes a test runner
cacheable one test at a time, with ctest (ctest/run-tests.sh) and with a
directory of shell scripts (shell/run-tests.sh), against a real tcached.

Each example is copied to a temporary directory and its run-tests.sh run
as a user would, with build/ first on PATH.  Which tests ran is read from
the runner's own output (ctest's "Test #N: NAME", the scripts' "NAME ok"),
which tests were skipped from tcache's "cached pass" notes; the two must
split the tests between them.
"""

import os
import re
import shutil
import subprocess

import pytest

from conftest import BUILD, client_env

EXAMPLES = os.path.join(os.path.dirname(__file__), "..", "..", "contrib",
                        "examples")
CTEST_TESTS = {"add", "mul", "parse"}
SHELL_TESTS = {"upper", "trim", "wordcount"}

needs_cmake = pytest.mark.skipif(
    shutil.which("cmake") is None or shutil.which("ctest") is None
    or shutil.which("cc") is None,
    reason="cmake, ctest and cc are needed (Debian: cmake gcc; `make deps` "
    "installs them)")


def env_for(daemon):
    return client_env(daemon.sock, daemon.db,
                      {"PATH": BUILD + os.pathsep + os.environ["PATH"],
                       "CC": None, "CFLAGS": None})


def copy_example(tmpbase, name):
    dst = os.path.join(tmpbase, "ex", name)
    shutil.copytree(os.path.join(EXAMPLES, name), dst,
                    ignore=shutil.ignore_patterns("build"))
    return dst


class Run:
    def __init__(self, cp, ran, cached, failed):
        self.rc = cp.returncode
        self.failed = failed
        self.stdout = cp.stdout
        self.stderr = cp.stderr
        self.ran = ran
        self.cached = cached

    def __repr__(self):
        return "<rc=%d ran=%s cached=%s failed=%s\nstdout:\n%s\n" \
            "stderr:\n%s>" % (
            self.rc, sorted(self.ran), sorted(self.cached), sorted(self.failed),
            self.stdout[-4000:], self.stderr[-4000:])


def run_script(daemon, root, ran_pattern, prefix, all_tests):
    cp = subprocess.run([os.path.join(root, "run-tests.sh")], cwd=root,
                        env=env_for(daemon), stdout=subprocess.PIPE,
                        stderr=subprocess.PIPE, universal_newlines=True,
                        timeout=300)
    ran = set(re.findall(ran_pattern, cp.stdout, re.M))
    cached = set(re.findall(r"^tcache: cached pass for %s(\S+), skipped"
                            % re.escape(prefix), cp.stderr, re.M))
    failed = set(" ".join(re.findall(r"^failed:(.*)$", cp.stderr,
                                     re.M)).split())
    r = Run(cp, ran, cached, failed)
    assert not cached & (ran | failed), r
    assert ran | cached | failed == all_tests, r
    assert (cp.returncode != 0) == bool(failed), r
    return r


def run_ctest(daemon, root):
    return run_script(daemon, root, r"Test +#\d+: (\S+) \.+", "ctest:",
                      CTEST_TESTS)


def run_shell(daemon, root):
    return run_script(daemon, root, r"^(\w+) ok$", "sh:", SHELL_TESTS)


def edit(root, rel, old, new):
    path = os.path.join(root, rel)
    with open(path) as f:
        text = f.read()
    assert old in text, (rel, old)
    with open(path, "w") as f:
        f.write(text.replace(old, new, 1))


def append(root, rel, text):
    with open(os.path.join(root, rel), "a") as f:
        f.write(text)


def one_command(daemon, root, args):
    return subprocess.run(args, cwd=root, env=env_for(daemon),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True, timeout=120)


# --------------------------------------------------------------- ctest

@needs_cmake
def test_ctest_runs_all_then_none(daemon, tmpbase):
    root = copy_example(tmpbase, "ctest")
    r = run_ctest(daemon, root)
    assert r.rc == 0 and r.ran == CTEST_TESTS, r
    r = run_ctest(daemon, root)
    assert r.rc == 0 and r.cached == CTEST_TESTS, r
    # One entry a test, under the id the script gives it.
    ls = daemon.cli("ls", "--test", "ctest:*", "--json")
    assert ls.rc == 0, ls
    for name in CTEST_TESTS:
        assert '"ctest:%s"' % name in ls.stdout, ls


@needs_cmake
def test_ctest_edit_reruns_affected(daemon, tmpbase):
    root = copy_example(tmpbase, "ctest")
    assert run_ctest(daemon, root).ran == CTEST_TESTS
    # A test's own source is an input of that test alone.
    append(root, "tests/mul.c", "/* edited */\n")
    r = run_ctest(daemon, root)
    assert r.rc == 0 and r.ran == {"mul"}, r
    assert run_ctest(daemon, root).cached == CTEST_TESTS
    # The library is an input of every test: they all link it.
    edit(root, "src/add.c", "return a + b;", "return b + a;")
    r = run_ctest(daemon, root)
    assert r.rc == 0 and r.ran == CTEST_TESTS, r
    # So is the build definition.
    append(root, "CMakeLists.txt", "# edited\n")
    r = run_ctest(daemon, root)
    assert r.rc == 0 and r.ran == CTEST_TESTS, r


@needs_cmake
def test_ctest_failure_never_cached(daemon, tmpbase):
    root = copy_example(tmpbase, "ctest")
    assert run_ctest(daemon, root).rc == 0
    edit(root, "tests/mul.c", "calc_mul(2, 3) != 6", "calc_mul(2, 3) != 7")
    for _ in range(2):
        r = run_ctest(daemon, root)
        assert r.rc == 1 and r.ran == {"mul"} and r.failed == {"mul"}, r
        assert "calc_mul is wrong" in r.stdout, r
    # ctest's own status comes through `tcache run`, and a fail is no hit.
    cmd = ["ctest", "--test-dir", "build", "--no-tests=error", "-R", "^mul$"]
    plain = one_command(daemon, root, cmd)
    assert plain.returncode not in (0, 1, 3), plain
    for _ in range(2):
        wrapped = one_command(daemon, root, [
            "tcache", "run", "--test", "ctest:mul", "--dep", "src/",
            "--dep", "CMakeLists.txt", "--dep", "tests/mul.c", "--env", "CC",
            "--env", "CFLAGS", "--"] + cmd)
        assert wrapped.returncode == plain.returncode, wrapped
        assert "Test #2: mul" in wrapped.stdout, wrapped
    # Fixed, it runs (under the new key) and passes, then is cached.
    edit(root, "tests/mul.c", "calc_mul(2, 3) != 7", "calc_mul(3, 2) != 6")
    r = run_ctest(daemon, root)
    assert r.rc == 0 and r.ran == {"mul"}, r
    assert run_ctest(daemon, root).cached == CTEST_TESTS


# --------------------------------------------------------------- shell

def test_shell_runs_all_then_none(daemon, tmpbase):
    root = copy_example(tmpbase, "shell")
    r = run_shell(daemon, root)
    assert r.rc == 0 and r.ran == SHELL_TESTS, r
    r = run_shell(daemon, root)
    assert r.rc == 0 and r.cached == SHELL_TESTS, r


def test_shell_edit_reruns_affected(daemon, tmpbase):
    root = copy_example(tmpbase, "shell")
    assert run_shell(daemon, root).ran == SHELL_TESTS
    # lib/strings.sh is named by upper.sh and trim.sh, not wordcount.sh.
    append(root, "lib/strings.sh", "# edited\n")
    r = run_shell(daemon, root)
    assert r.rc == 0 and r.ran == {"upper", "trim"}, r
    edit(root, "bin/wordcount", "print n + 0", "print 0 + n")
    r = run_shell(daemon, root)
    assert r.rc == 0 and r.ran == {"wordcount"}, r
    append(root, "tests/upper.sh", "# edited\n")
    r = run_shell(daemon, root)
    assert r.rc == 0 and r.ran == {"upper"}, r
    assert run_shell(daemon, root).cached == SHELL_TESTS


def test_shell_failure_never_cached(daemon, tmpbase):
    root = copy_example(tmpbase, "shell")
    assert run_shell(daemon, root).rc == 0
    edit(root, "tests/trim.sh", "set -eu\n", "set -eu\necho trim broken; exit 3\n")
    for _ in range(2):
        r = run_shell(daemon, root)
        assert r.rc == 1 and r.failed == {"trim"} and r.ran == set(), r
        assert r.cached == {"upper", "wordcount"}, r
        assert "trim broken" in r.stdout, r
    # The script's own status comes through, every time.
    for _ in range(2):
        w = one_command(daemon, root, [
            "tcache", "run", "--test", "sh:trim", "--dep", "tests/trim.sh",
            "--dep", "lib/strings.sh", "--", "./tests/trim.sh"])
        assert w.returncode == 3 and "trim broken" in w.stdout, w
    assert daemon.cli("lookup", "--test", "sh:trim", "--dep", "tests/trim.sh",
                      "--dep", "lib/strings.sh", cwd=root).rc == 1
