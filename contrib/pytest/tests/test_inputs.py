"""Each kind of input: changing it runs exactly the tests that depend on it
again, and reverting it brings the hits back."""

import os
import subprocess
import sys

import pytest

from conftest import GRAPH_IDS, RUN_TIMEOUT, write_dist

ENV_ARGS = ("--tcache-env=TC_NAMED",)

UNDER_TESTS = {n for n in GRAPH_IDS if n.startswith("tests/")}


def ids(*names):
    out = set()
    for n in names:
        if n.endswith(".py"):
            found = {i for i in GRAPH_IDS if i.startswith(n + "::")}
            assert found, n
            out |= found
        else:
            assert n in GRAPH_IDS, n
            out.add(n)
    return out


def edit_file(rel, old, new):
    def change(tc):
        tc.edit(rel, old, new)

    def revert(tc):
        tc.edit(rel, new, old)
    return change, revert


def set_env(name):
    def change(tc):
        tc.monkeypatch.setenv(name, "changed")

    def revert(tc):
        tc.monkeypatch.delenv(name)
    return change, revert


def dist_version():
    def change(tc):
        write_dist(tc.site, "1.1")

    def revert(tc):
        write_dist(tc.site, "1.0")
    return change, revert


# name: (change and revert, the tests that must run after the change, the
# tests that must run after the revert)
SCENARIOS = {
    "test_module": (
        edit_file("tests/test_direct.py", "def test_d2",
                  "X = 1\n\n\ndef test_d2"),
        ids("tests/test_direct.py"), set()),
    "root_conftest": (
        edit_file("conftest.py", "return 1", "return 0 + 1"),
        GRAPH_IDS, set()),
    "intermediate_conftest": (
        edit_file("tests/conftest.py", "return 2", "return 1 + 1"),
        UNDER_TESTS, set()),
    "imported_module": (
        edit_file("pkg/d.py", "return 4", "return 2 + 2"),
        ids("tests/test_direct.py"), set()),
    "transitive_import": (
        edit_file("pkg/c.py", "return 1", "return 2 - 1"),
        ids("tests/test_t.py", "tests/test_tt.py"), set()),
    "data_opened_at_run_time": (
        edit_file("data/runtime.txt", "runtime 1", "runtime 2"),
        # Only the test that opened it.  The entry now holds the changed
        # digest, so the revert runs the test once more.
        ids("tests/test_data.py::test_reads"),
        ids("tests/test_data.py::test_reads")),
    "data_read_at_import": (
        edit_file("data/import.txt", "import 1", "import 2"),
        ids("tests/test_importdata.py"), set()),
    "static_lazy_import": (
        edit_file("pkg/slazy.py", "return 6", "return 3 * 2"),
        ids("tests/test_static_lazy.py"), set()),
    "dynamic_lazy_import": (
        edit_file("pkg/lazy.py", "return 5", "return 2 + 3"),
        ids("tests/test_lazy.py::test_lazy_one",
            "tests/test_lazy.py::test_lazy_two"),
        ids("tests/test_lazy.py::test_lazy_one",
            "tests/test_lazy.py::test_lazy_two")),
    "named_env_var": (set_env("TC_NAMED"), GRAPH_IDS, set()),
    "unnamed_env_var": (set_env("TC_OTHER"), set(), set()),
    "pytest_ini": (
        edit_file("pytest.ini", "slow: nothing", "slow: something"),
        GRAPH_IDS, set()),
    "installed_distribution": (dist_version(), GRAPH_IDS, set()),
}

# Under --tcache-precision=executed, a body edit runs only the tests that
# ran that body; its entry then holds the new digest, so the revert runs
# them once more.
EXECUTED = {
    "imported_module": (ids("tests/test_direct.py::test_d1"),) * 2,
    "transitive_import": (ids("tests/test_t.py::test_t1",
                              "tests/test_tt.py::test_tt"),) * 2,
    "static_lazy_import": (ids("tests/test_static_lazy.py::test_sl1"),) * 2,
}


def check(run, expect_ran):
    assert run.ret == 0, run
    assert run.outcomes == {"passed": len(GRAPH_IDS)}, run
    assert run.ran == expect_ran, run
    assert run.cached == GRAPH_IDS - expect_ran, run
    assert run.summary_cached == len(GRAPH_IDS - expect_ran), run


@pytest.mark.parametrize("precision", ["file", "executed"])
@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_change_runs_exactly_the_affected_tests(graph_project, name,
                                                precision):
    tc = graph_project
    (change, revert), after_change, after_revert = SCENARIOS[name]
    if precision == "executed" and name in EXECUTED:
        after_change, after_revert = EXECUTED[name]
    args = ENV_ARGS + ("--tcache-precision=" + precision,)
    cold = tc.run(*args)
    check(cold, GRAPH_IDS)
    check(tc.run(*args), set())
    change(tc)
    check(tc.run(*args), after_change)
    check(tc.run(*args), set())             # the new inputs are recorded
    revert(tc)
    check(tc.run(*args), after_revert)
    check(tc.run(*args), set())


def test_lazily_imported_module_is_an_input_of_every_test_using_it(
        graph_project):
    """Two tests import pkg.lazy at run time (importlib, invisible to the
    static import graph); the second finds it in sys.modules.  A change
    that breaks both must fail both: no stale pass for the second."""
    tc = graph_project
    check(tc.run(*ENV_ARGS), GRAPH_IDS)
    check(tc.run(*ENV_ARGS), set())
    tc.edit("pkg/lazy.py", "return 5", "return 7")
    r = tc.run(*ENV_ARGS)
    assert r.ran >= ids("tests/test_lazy.py::test_lazy_one",
                        "tests/test_lazy.py::test_lazy_two"), r
    assert r.outcomes == {"passed": len(GRAPH_IDS) - 2, "failed": 2}, r


def test_data_file_is_an_input_of_every_test_opening_it(tc):
    """Two tests open the same data file at run time; changing it breaks
    both, and both must run and fail."""
    tc.write({"pytest.ini": "[pytest]\n", "data.txt": "good\n",
              "test_two.py": """\
        from ranlog import ran

        def read():
            with open("data.txt") as f:
                return f.read()

        def test_one():
            ran()
            assert read() == "good\\n"

        def test_two():
            ran()
            assert read() == "good\\n"

        def test_neither():
            ran()
        """})
    tc.run()
    r = tc.run()
    assert r.ran == set(), r
    (tc.root / "data.txt").write_text("bad\n")
    r = tc.run()
    assert r.ran >= {"test_two.py::test_one", "test_two.py::test_two"}, r
    assert r.outcomes == {"failed": 2, "passed": 1}, r


def _other_interpreter():
    """Another CPython 3.11 that can run Debian's pytest from its
    dist-packages (a pyenv build on our machines), or None."""
    import glob
    dist = "/usr/lib/python3/dist-packages"
    mine = os.path.realpath(sys.executable)
    for exe in sorted(glob.glob("/root/.pyenv/versions/3.11.*/bin/python3") +
                      glob.glob("/usr/local/bin/python3.11")):
        if os.path.realpath(exe) == mine or not os.access(exe, os.X_OK):
            continue
        cp = subprocess.run([exe, "-c", "import pytest, sys; "
                             "print(sys.version_info[:2])"],
                            env=dict(os.environ, PYTHONPATH=dist),
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            universal_newlines=True)
        if cp.returncode == 0 and "(3, 11)" in cp.stdout:
            return exe
    return None


def test_another_interpreter_is_another_environment(tc):
    """The same project under another Python build runs everything again;
    each interpreter then hits its own entries."""
    other = _other_interpreter()
    if other is None:
        pytest.skip("no second CPython 3.11 that can import Debian's pytest")
    dist = "/usr/lib/python3/dist-packages"
    # The same PYTHONPATH for both, so only the interpreter differs.
    path = os.environ["PYTHONPATH"] + os.pathsep + dist
    tc.monkeypatch.setenv("PYTHONPATH", path)
    tc.write({"pytest.ini": "[pytest]\n",
              "test_i.py": """\
                  from ranlog import ran

                  def test_i():
                      ran()
                  """})

    def run(python):
        if tc.ranlog.exists():
            tc.ranlog.unlink()
        r = tc.pytester.run(python, "-m", "pytest", "-p",
                            "tcache_pytest.plugin", "-p", "no:cacheprovider",
                            "--tcache", "-q", timeout=RUN_TIMEOUT)
        assert r.ret == 0, "\n".join(r.outlines + r.errlines)
        return tc.ranlog.exists()

    assert run(sys.executable)
    assert not run(sys.executable)
    assert run(other), "a pass from another interpreter was reused"
    assert not run(other)
    assert not run(sys.executable)


def test_file_read_by_a_conftest_hook_at_collection(tc):
    """A conftest hook (not a module's top level) reads a data file while
    the tests are collected: that file is an input of every test."""
    tc.write({"pytest.ini": "[pytest]\n",
              "expected.txt": "1\n",
              "conftest.py": """\
                  def pytest_collection_modifyitems(items):
                      with open("expected.txt") as f:
                          value = f.read().strip()
                      for item in items:
                          item.expected = value
                  """,
              "test_h.py": """\
                  from ranlog import ran

                  def test_h(request):
                      ran()
                      assert request.node.expected == "1"
                  """})
    assert tc.run().ran == {"test_h.py::test_h"}
    assert tc.run().ran == set()
    (tc.root / "expected.txt").write_text("2\n")
    r = tc.run()
    assert r.ran == {"test_h.py::test_h"}, r
    assert r.outcomes == {"failed": 1}, r


def test_project_plugin_module_is_an_input(tc):
    """A plugin module of the project, loaded by pytest_plugins in a
    conftest (pytest imports it; no import statement names it), is an
    input of every test."""
    tc.write({"pytest.ini": "[pytest]\n",
              "conftest.py": 'pytest_plugins = ["helpers.fixtures"]\n',
              "helpers/__init__.py": "",
              "helpers/fixtures.py": """\
                  import pytest

                  @pytest.fixture
                  def answer():
                      return 42
                  """,
              "test_p.py": """\
                  from ranlog import ran

                  def test_p(answer):
                      ran()
                      assert answer == 42
                  """})
    assert tc.run().ran == {"test_p.py::test_p"}
    assert tc.run().ran == set()
    tc.edit("helpers/fixtures.py", "return 42", "return 41")
    r = tc.run()
    assert r.ran == {"test_p.py::test_p"}, r
    assert r.outcomes == {"failed": 1}, r


def test_a_test_that_starts_a_process_depends_on_every_project_file(tc):
    """What a child process reads, no hook sees: a test that runs one has
    every file of the project as an input; a test that does not, not.
    (The project is a subdirectory: pytester writes its stdout and stderr
    files into its own directory during each run.)"""
    tc.write({"proj/pytest.ini": "[pytest]\n",
              "proj/tool.py": 'print("1")\n',
              "proj/other.txt": "x\n",
              "proj/test_s.py": """\
                  import os
                  import subprocess
                  import sys

                  from ranlog import ran

                  def test_spawn():
                      ran()
                      tool = os.path.join(os.path.dirname(__file__),
                                          "tool.py")
                      out = subprocess.run([sys.executable, tool],
                                           stdout=subprocess.PIPE,
                                           universal_newlines=True).stdout
                      assert out.strip() == "1"

                  def test_plain():
                      ran()
                  """})
    args = ("--rootdir=proj", "proj")
    both = {"test_s.py::test_spawn", "test_s.py::test_plain"}
    assert tc.run(*args).ran == both
    assert tc.run(*args).ran == set()
    tc.edit("proj/tool.py", '"1"', '"2"')
    r = tc.run(*args)
    assert r.ran == {"test_s.py::test_spawn"}, r
    assert r.outcomes == {"failed": 1, "passed": 1}, r
    tc.edit("proj/tool.py", '"2"', '"1"')
    tc.run(*args)
    assert tc.run(*args).ran == set()
    (tc.root / "proj" / "other.txt").write_text("y\n")
    assert tc.run(*args).ran == {"test_s.py::test_spawn"}
