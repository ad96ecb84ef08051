"""--tcache-precision=executed: a test depends on the interface of the
modules it imports and on the whole of the files whose function bodies it
ran (or that ran at import time).  Each kind of change re-runs exactly the
tests it can break, and they fail, so a stale pass would show."""

import pytest

PRECISE = ("--tcache-precision=executed",)

PROJECT = {
    "pytest.ini": "[pytest]\n",
    # Like most real packages: the package imports its modules, so every
    # test imports util and lazyuser, and file precision re-runs them all.
    "pkg/__init__.py": "from pkg import util, lazyuser, extra\n",
    "pkg/util.py": """\
        def helper():
            return 10
        """,
    "pkg/extra.py": """\
        def unused():
            return 1
        """,
    "pkg/calc.py": """\
        def compute():
            return 10
        """,
    "pkg/consts.py": """\
        from pkg.calc import compute

        LIMIT = 3
        COMPUTED = compute()
        """,
    "pkg/shapes.py": """\
        class Square:
            sides = 4

            def area(self, w=2):
                return w * w
        """,
    "pkg/deco.py": """\
        REGISTRY = []


        def register(f):
            REGISTRY.append(f.__name__)
            return f


        def times(n):
            def dec(f):
                def wrapper(*a):
                    return n * f(*a)
                return wrapper
            return dec


        @register
        @times(2)
        def one():
            return 1
        """,
    "pkg/lazyuser.py": """\
        def use():
            from pkg import lazy
            return lazy.value()
        """,
    "pkg/lazy.py": """\
        def value():
            return 7
        """,
    "pkg/data.py": """\
        import os

        with open(os.path.join(os.path.dirname(__file__), "table.txt")) as f:
            TABLE = f.read().split()
        """,
    "pkg/table.txt": "a b c\n",
    "tests/test_body.py": """\
        from ranlog import ran
        import pkg
        from pkg import util


        def test_calls_helper():
            ran()
            assert util.helper() == 10


        def test_calls_nothing():
            ran()
            assert pkg.util.__name__ == "pkg.util"
        """,
    "tests/test_const.py": """\
        from ranlog import ran
        from pkg import consts


        def test_limit():
            ran()
            assert consts.LIMIT == 3


        def test_computed():
            ran()
            assert consts.COMPUTED == 10
        """,
    "tests/test_shape.py": """\
        from ranlog import ran
        from pkg.shapes import Square


        def test_sides():
            ran()
            assert Square.sides == 4


        def test_area():
            ran()
            assert Square().area() == 4
        """,
    "tests/test_deco.py": """\
        from ranlog import ran
        from pkg import deco


        def test_one():
            ran()
            assert deco.one() == 2


        def test_registry():
            ran()
            assert deco.REGISTRY == ["wrapper"]
        """,
    "tests/test_lazy.py": """\
        from ranlog import ran
        from pkg.lazyuser import use


        def test_use():
            ran()
            assert use() == 7
        """,
    "tests/test_table.py": """\
        from ranlog import ran
        from pkg.data import TABLE


        def test_table():
            ran()
            assert TABLE == ["a", "b", "c"]
        """,
}

ALL = {
    "tests/test_body.py::test_calls_helper",
    "tests/test_body.py::test_calls_nothing",
    "tests/test_const.py::test_limit", "tests/test_const.py::test_computed",
    "tests/test_shape.py::test_sides", "tests/test_shape.py::test_area",
    "tests/test_deco.py::test_one", "tests/test_deco.py::test_registry",
    "tests/test_lazy.py::test_use",
    "tests/test_table.py::test_table",
}


def module(name):
    return {i for i in ALL if i.startswith("tests/%s::" % name)}


# name: (file, old, new, tests that must run, of which those that fail).
# A change the key sees (an interface, or a file read or run at import)
# makes a new key: its revert finds the old entries again at once.  A body
# change is seen by the discovered inputs of the key's entry, which the
# failing run replaced: after the revert, the tests that failed run again.
CHANGES = {
    "executed_body": ("pkg/util.py", "return 10", "return 11",
                      {"tests/test_body.py::test_calls_helper"},
                      {"tests/test_body.py::test_calls_helper"}),
    "unexecuted_body": ("pkg/extra.py", "return 1", "return 2", set(),
                        set()),
    "module_constant": ("pkg/consts.py", "LIMIT = 3", "LIMIT = 4",
                        module("test_const.py"),
                        {"tests/test_const.py::test_limit"}),
    "class_attribute": ("pkg/shapes.py", "sides = 4", "sides = 5",
                        module("test_shape.py"),
                        {"tests/test_shape.py::test_sides"}),
    "default_argument": ("pkg/shapes.py", "w=2", "w=3",
                         module("test_shape.py"),
                         {"tests/test_shape.py::test_area"}),
    "decorator": ("pkg/deco.py", "@times(2)", "@times(3)",
                  module("test_deco.py"), {"tests/test_deco.py::test_one"}),
    "decorator_body_run_at_import": (
        "pkg/deco.py", "REGISTRY.append(f.__name__)",
        "REGISTRY.append(f.__name__.upper())",
        module("test_deco.py"), {"tests/test_deco.py::test_registry"}),
    "function_called_at_import": ("pkg/calc.py", "return 10", "return 11",
                                  module("test_const.py"),
                                  {"tests/test_const.py::test_computed"}),
    "lazily_imported_module": ("pkg/lazy.py", "return 7", "return 8",
                               {"tests/test_lazy.py::test_use"},
                               {"tests/test_lazy.py::test_use"}),
    "data_read_at_import": ("pkg/table.txt", "a b c", "a b d",
                            module("test_table.py"),
                            {"tests/test_table.py::test_table"}),
}


def check(run, ran, failed=frozenset()):
    assert run.ran == ran, run
    assert run.cached == ALL - ran, run
    want = {"passed": len(ALL) - len(failed)}
    if failed:
        want["failed"] = len(failed)
    assert run.outcomes == want, run
    assert {n for n, w, _ in run.statuses if w == "FAILED"} == failed, run


@pytest.fixture
def precise_project(tc):
    tc.write(PROJECT)
    check(tc.run(*PRECISE), ALL)
    check(tc.run(*PRECISE), set())
    return tc


@pytest.mark.parametrize("name", sorted(CHANGES))
def test_change_reruns_what_it_can_break(precise_project, name):
    tc = precise_project
    path, old, new, ran, failed = CHANGES[name]
    tc.edit(path, old, new)
    check(tc.run(*PRECISE), ran, failed)
    tc.edit(path, new, old)
    body = name in ("executed_body", "lazily_imported_module")
    check(tc.run(*PRECISE), failed if body else set())
    check(tc.run(*PRECISE), set())


def test_file_precision_reruns_every_importer(precise_project):
    """The same unexecuted body edit under --tcache-precision=file: every
    test imports pkg, which imports pkg.extra, so every test runs."""
    tc = precise_project
    check(tc.run("--tcache-precision=file"), ALL)
    check(tc.run("--tcache-precision=file"), set())
    tc.edit("pkg/extra.py", "return 1", "return 2")
    check(tc.run("--tcache-precision=file"), ALL)
    check(tc.run(*PRECISE), set())


def test_precision_is_part_of_the_key(precise_project):
    tc = precise_project
    r = tc.run("--tcache-precision=file")
    assert r.ran == ALL, r


FIXTURE_MODULE = """\
    import pytest
    from ranlog import ran
    from pkg import util


    @pytest.fixture(scope="module")
    def value():
        return util.helper()


    def test_first(value):
        ran()
        assert value == 10


    def test_second(%s):
        ran()
        assert %s == 10
    """


def test_code_run_by_a_hook_at_the_end_of_the_collection(tc):
    """A conftest hook runs a helper's function body after the last test
    module was imported (no import comes after it to close the stretch of
    code it belongs to): it counts for every test, not only the first to
    run.  The helper is imported by the conftest, so its interface is an
    input of both tests anyway; only its body decides."""
    tc.write({"pytest.ini": "[pytest]\n",
              "helper.py": "def value():\n    return 1\n",
              "conftest.py": """\
                  import helper


                  def pytest_collection_modifyitems(items):
                      v = helper.value()
                      for item in items:
                          item.v = v
                  """,
              "test_a.py": """\
                  from ranlog import ran

                  def test_a(request):
                      ran()
                      assert request.node.v == 1
                  """,
              "test_b.py": """\
                  from ranlog import ran

                  def test_b(request):
                      ran()
                      assert request.node.v == 1
                  """})
    both = {"test_a.py::test_a", "test_b.py::test_b"}
    assert tc.run(*PRECISE).ran == both
    assert tc.run(*PRECISE).ran == set()
    tc.edit("helper.py", "return 1", "return 2")
    r = tc.run(*PRECISE)
    assert r.ran == both, r
    assert r.outcomes == {"failed": 2}, r


@pytest.mark.parametrize("second", [
    # By name: it reuses the value without running the helper.
    ("value", "value"),
    # By request.getfixturevalue() at run time.
    ("request", 'request.getfixturevalue("value")'),
])
def test_fixture_setup_counts_for_every_test_using_it(tc, second):
    """A module-scoped fixture runs a helper once, in the first test's
    setup; the second test gets its value without running the helper.
    Both depend on it."""
    tc.write({"pytest.ini": "[pytest]\n",
              "pkg/__init__.py": "",
              "pkg/util.py": "def helper():\n    return 10\n",
              "tests/test_fix.py": FIXTURE_MODULE % second})
    both = {"tests/test_fix.py::test_first", "tests/test_fix.py::test_second"}
    assert tc.run(*PRECISE).ran == both
    assert tc.run(*PRECISE).ran == set()
    tc.edit("pkg/util.py", "return 10", "return 11")
    r = tc.run(*PRECISE)
    assert r.ran == both, r
    assert r.outcomes == {"failed": 2}, r


@pytest.mark.parametrize("how", ["setprofile", "thread", "pool"])
def test_untracked_execution_falls_back_to_whole_files(tc, how):
    """A test that removes the tracer's hook, or runs code in a thread that
    was there before it began, still depends on every file it imports."""
    run_it = {
        "setprofile": "sys.setprofile(None); value = util.helper()",
        "thread": "value = run_in_thread(util.helper)",
        "pool": "value = POOL.submit(util.helper).result()",
    }[how]
    tc.write({"pytest.ini": "[pytest]\n",
              "pkg/__init__.py": "",
              "pkg/util.py": "def helper():\n    return 10\n",
              "tests/test_u.py": """\
                  import sys
                  import threading
                  from concurrent.futures import ThreadPoolExecutor
                  from ranlog import ran
                  from pkg import util

                  POOL = ThreadPoolExecutor(1)
                  POOL.submit(lambda: None).result()   # its thread runs


                  def run_in_thread(f):
                      out = []
                      t = threading.Thread(target=lambda: out.append(f()))
                      t.start()
                      t.join()
                      return out[0]


                  def test_u():
                      ran()
                      %s
                      assert value == 10
                  """ % run_it})
    assert tc.run(*PRECISE).ran == {"tests/test_u.py::test_u"}
    assert tc.run(*PRECISE).ran == set()
    tc.edit("pkg/util.py", "return 10", "return 11")
    r = tc.run(*PRECISE)
    assert r.ran == {"tests/test_u.py::test_u"}, r
    assert r.outcomes == {"failed": 1}, r


@pytest.mark.parametrize("path,old,new,word", [
    ("pkg/util.py", "return 10", "return 11", "body"),
    ("pkg/util.py", "def helper():", "def helper(x=1):", "interface"),
])
def test_explain_tells_a_body_change_from_an_interface_change(
        precise_project, path, old, new, word):
    tc = precise_project
    test = "tests/test_body.py::test_calls_helper"
    tc.edit(path, old, new)
    cp = tc.daemon.cli("explain", "--test", test, check=False)
    assert cp.returncode == 1, cp
    assert "changed (%s): %s" % (word, path) in cp.stdout, cp.stdout
    other = {"body": "interface", "interface": "body"}[word]
    assert "changed (%s)" % other not in cp.stdout, cp.stdout
    # A test that ran none of util's bodies is still a hit after a body
    # change; after an interface change it is not.
    cp = tc.daemon.cli("explain", "--test",
                       "tests/test_body.py::test_calls_nothing", check=False)
    if word == "body":
        assert cp.returncode == 0, cp.stdout + cp.stderr
    else:
        assert "changed (interface): pkg/util.py" in cp.stdout, cp.stdout
