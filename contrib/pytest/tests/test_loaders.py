"""Files a test depends on without an import statement naming them: a module
loaded by path (importlib.util, runpy, exec), by a computed name
(importlib.import_module, __import__), by a conftest, through an entry point
or as a C extension; data read with open(), json, yaml, pathlib or
importlib.resources; files opened by C code (sqlite3, ctypes); a directory
listed.  For each, in every precision and under xdist: a
recorded pass, a warm run that serves it cached, then an edit that makes the
test fail; the next run must run the test and report the failure, never a
cached pass.

Edits keep the file's size and set its mtime back, so that only the bytes
(and the ctime, which no one can set) tell the change; the memo of digests
is this test's own (TCACHE_MEMO_DIR, set by the harness), and the last
tests let it vouch for the files before the edit."""

import os
import re
import subprocess
import sysconfig
import textwrap
import time

import pytest

from tcache_pytest import inputs

PRECISIONS = ("file", "executed")
NODE = "test_it.py::test_it"

# A helper that loads `plugins/ext.py` by path: the test and the conftest
# cases use it.
LOAD_BY_PATH = '''\
import importlib.util
import os


def load_by_path(rel, name="ext"):
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), rel)
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
'''

EXT_BODY = '''\
def value():
    return 1
'''

EXT_CONST = '''\
VALUE = 1
'''

BODY_EDIT = ("plugins/ext.py", "return 1", "return 2")
CONST_EDIT = ("plugins/ext.py", "VALUE = 1", "VALUE = 2")


def module_text(body):
    """A test module whose test notes that it ran, then runs body."""
    head, _, call = body.partition("---\n")
    return (textwrap.dedent(head) + "\nfrom ranlog import ran\n\n\n"
            "def test_it(" + ("answer" if "answer" in call else "") + "):\n"
            "    ran()\n" + textwrap.indent(textwrap.dedent(call), "    "))


def case(files, test, edit):
    return dict(files, **{"test_it.py": module_text(test)}), edit


# name: ({path: text}, (path, old, new)); "test_it.py" is made from a head
# (module level) and, after "---", the test's body.
CASES = {
    "spec_from_file_location_body": case(
        {"loader.py": LOAD_BY_PATH, "plugins/ext.py": EXT_BODY}, '''\
        from loader import load_by_path
        ---
        assert load_by_path("plugins/ext.py").value() == 1
        ''', BODY_EDIT),
    "spec_from_file_location_const": case(
        {"loader.py": LOAD_BY_PATH, "plugins/ext.py": EXT_CONST}, '''\
        from loader import load_by_path
        ---
        assert load_by_path("plugins/ext.py").VALUE == 1
        ''', CONST_EDIT),
    "spec_from_file_location_at_import_const": case(
        {"loader.py": LOAD_BY_PATH, "plugins/ext.py": EXT_CONST}, '''\
        from loader import load_by_path
        EXT = load_by_path("plugins/ext.py")
        ---
        assert EXT.VALUE == 1
        ''', CONST_EDIT),
    "spec_from_file_location_at_import_body": case(
        {"loader.py": LOAD_BY_PATH, "plugins/ext.py": EXT_BODY}, '''\
        from loader import load_by_path
        EXT = load_by_path("plugins/ext.py")
        ---
        assert EXT.value() == 1
        ''', BODY_EDIT),
    "runpy_run_path_const": case(
        {"plugins/ext.py": EXT_CONST}, '''\
        import runpy
        ---
        assert runpy.run_path("plugins/ext.py")["VALUE"] == 1
        ''', CONST_EDIT),
    "runpy_run_path_body": case(
        {"plugins/ext.py": EXT_BODY}, '''\
        import runpy
        ---
        assert runpy.run_path("plugins/ext.py")["value"]() == 1
        ''', BODY_EDIT),
    "exec_open_read": case(
        {"plugins/ext.py": EXT_BODY}, '''\
        ---
        ns = {}
        with open("plugins/ext.py") as f:
            exec(f.read(), ns)
        assert ns["value"]() == 1
        ''', BODY_EDIT),
    "exec_compile_read_text_at_import": case(
        {"plugins/ext.py": EXT_CONST}, '''\
        import pathlib
        NS = {}
        exec(compile(pathlib.Path("plugins/ext.py").read_text(),
                     "plugins/ext.py", "exec"), NS)
        ---
        assert NS["VALUE"] == 1
        ''', CONST_EDIT),
    "import_module_computed_body": case(
        {"plugins/__init__.py": "", "plugins/ext.py": EXT_BODY}, '''\
        import importlib
        ---
        mod = importlib.import_module("plugins." + "e" + "xt")
        assert mod.value() == 1
        ''', BODY_EDIT),
    "import_module_computed_const": case(
        {"plugins/__init__.py": "", "plugins/ext.py": EXT_CONST}, '''\
        import importlib
        ---
        mod = importlib.import_module("plugins." + "e" + "xt")
        assert mod.VALUE == 1
        ''', CONST_EDIT),
    "dunder_import_const": case(
        {"plugins/__init__.py": "", "plugins/ext.py": EXT_CONST}, '''\
        ---
        mod = __import__("plugins." + "e" + "xt", fromlist=["VALUE"])
        assert mod.VALUE == 1
        ''', CONST_EDIT),
    "conftest_loads_by_path": case(
        {"loader.py": LOAD_BY_PATH, "plugins/ext.py": EXT_BODY,
         "conftest.py": '''\
             import pytest

             from loader import load_by_path

             EXT = load_by_path("plugins/ext.py")


             @pytest.fixture
             def answer():
                 return EXT.value()
             '''}, '''\
        ---
        assert answer == 1
        ''', BODY_EDIT),
    "conftest_imports_computed_name": case(
        {"plugins/__init__.py": "", "plugins/ext.py": EXT_CONST,
         "conftest.py": '''\
             import importlib

             import pytest

             EXT = importlib.import_module("plugins." + "e" + "xt")


             @pytest.fixture
             def answer():
                 return EXT.VALUE
             '''}, '''\
        ---
        assert answer == 1
        ''', CONST_EDIT),
    "json_open": case(
        {"data/cfg.json": '{"value": 1}\n'}, '''\
        import json
        ---
        with open("data/cfg.json") as f:
            assert json.load(f)["value"] == 1
        ''', ("data/cfg.json", '"value": 1', '"value": 2')),
    "json_at_import": case(
        {"data/cfg.json": '{"value": 1}\n'}, '''\
        import json
        with open("data/cfg.json") as f:
            CFG = json.load(f)
        ---
        assert CFG["value"] == 1
        ''', ("data/cfg.json", '"value": 1', '"value": 2')),
    "yaml_safe_load": case(
        {"data/cfg.yaml": "value: 1\n"}, '''\
        import yaml
        ---
        with open("data/cfg.yaml") as f:
            assert yaml.safe_load(f)["value"] == 1
        ''', ("data/cfg.yaml", "value: 1", "value: 2")),
    "pathlib_read_text": case(
        {"data/v.txt": "1\n"}, '''\
        import pathlib
        ---
        assert pathlib.Path("data/v.txt").read_text() == "1\\n"
        ''', ("data/v.txt", "1", "2")),
    "pathlib_read_bytes_absolute": case(
        {"data/v.txt": "1\n"}, '''\
        import pathlib
        HERE = pathlib.Path(__file__).resolve().parent
        ---
        assert (HERE / "data" / "v.txt").read_bytes() == b"1\\n"
        ''', ("data/v.txt", "1", "2")),
    "importlib_resources": case(
        {"datapkg/__init__.py": "", "datapkg/v.txt": "1\n"}, '''\
        import importlib.resources
        ---
        v = importlib.resources.files("datapkg").joinpath("v.txt")
        assert v.read_text() == "1\\n"
        ''', ("datapkg/v.txt", "1", "2")),
}


def same_size_edit(tc, rel, old, new):
    """Replaces old by new (the same length) and sets the mtime back."""
    assert len(old) == len(new), (old, new)
    p = tc.root / rel
    st = os.stat(p)
    tc.edit(rel, old, new)
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    st2 = os.stat(p)
    assert (st2.st_size, st2.st_mtime_ns) == (st.st_size, st.st_mtime_ns)


def check_cached_then_fails(tc, args, edit, before_edit=None):
    cold = tc.run(*args)
    assert cold.ret == 0 and cold.ran == {NODE}, cold
    warm = tc.run(*args)
    assert warm.ret == 0 and warm.cached == {NODE} and warm.ran == set(), \
        warm
    if before_edit:
        before_edit()
    edit(tc)
    after = tc.run(*args)
    assert after.ran == {NODE}, after
    assert after.cached == set(), after
    assert after.outcomes == {"failed": 1}, after
    assert after.ret == 1, after
    return cold


# (precision, tracer, xdist): both precisions serial and under -n 2; the
# slower tracers that executed falls back to, serial.
VARIANTS = [("file", None, False), ("executed", None, False),
            ("file", None, True), ("executed", None, True),
            ("executed", "python", False), ("executed", "frameeval", False)]


@pytest.mark.parametrize(
    "precision,tracer,xdist", VARIANTS,
    ids=["-".join([p, t or "default", "xdist" if x else "serial"])
         for p, t, x in VARIANTS])
@pytest.mark.parametrize("name", sorted(CASES))
def test_loaded_file_edit_runs_again(tc, name, precision, tracer, xdist):
    files, (rel, old, new) = CASES[name]
    tc.write(dict(files, **{"pytest.ini": "[pytest]\n"}))
    args = ["--tcache-precision=" + precision]
    if tracer:
        tc.monkeypatch.setenv("TCACHE_TRACER", tracer)
    if xdist:
        args += ["-n", "2"]
    cold = check_cached_then_fails(
        tc, args, lambda tc: same_size_edit(tc, rel, old, new))
    if tracer:
        assert "(%s tracer)" % tracer in cold.text, cold


# --- a C extension module ---

EXT_C = '''\
#define PY_SSIZE_T_CLEAN
#include <Python.h>

static PyObject *cext_value(PyObject *self, PyObject *args)
{
    (void)self;
    (void)args;
    return PyLong_FromLong(%d);
}

static PyMethodDef cext_methods[] = {
    {"value", cext_value, METH_NOARGS, NULL},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef cext_module = {
    PyModuleDef_HEAD_INIT, "cext", NULL, -1, cext_methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit_cext(void)
{
    return PyModule_Create(&cext_module);
}
'''


def build_cext(tc, value):
    """Builds cext<EXT_SUFFIX> in the project from a source outside it."""
    include = sysconfig.get_paths()["include"]
    if not os.path.exists(os.path.join(include, "Python.h")):
        pytest.skip("no Python.h (python3-dev) to build an extension")
    src = tc.helpers / "cext.c"
    src.write_text(EXT_C % value)
    target = tc.root / ("cext" + sysconfig.get_config_var("EXT_SUFFIX"))
    tmp = str(target) + ".tmp"
    cc = os.environ.get("CC") or "cc"
    subprocess.run([cc, "-shared", "-fPIC", "-O0", "-I", include,
                    "-o", tmp, str(src)], check=True, timeout=120)
    # A new inode, as a build does: the old mapping stays valid.
    os.rename(tmp, target)


@pytest.mark.parametrize("how", ["import_statement", "import_module"])
@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
@pytest.mark.parametrize("precision", PRECISIONS)
def test_extension_module_rebuilt_runs_again(tc, precision, xdist, how):
    build_cext(tc, 1)
    if how == "import_statement":
        body = "import cext\n---\nassert cext.value() == 1\n"
    else:
        body = ("import importlib\n---\n"
                "assert importlib.import_module('c' + 'ext').value() == 1\n")
    tc.write({"pytest.ini": "[pytest]\n", "test_it.py": module_text(body)})
    args = ["--tcache-precision=" + precision]
    if xdist:
        args += ["-n", "2"]
    check_cached_then_fails(tc, args, lambda tc: build_cext(tc, 2))


# --- entry points ---

def write_entry_dist(site, name, entry_points):
    """An installed distribution (a .dist-info in a sys.path directory)
    with the given entry_points.txt and no files of its own."""
    d = site / ("%s-1.0.dist-info" % name)
    d.mkdir()
    (d / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: %s\nVersion: 1.0\n" % name)
    (d / "entry_points.txt").write_text(textwrap.dedent(entry_points))


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
@pytest.mark.parametrize("precision", PRECISIONS)
def test_entry_point_loaded_module_edit_runs_again(tc, precision, xdist):
    """The distribution is installed elsewhere (an editable install), the
    module its entry point names is the project's."""
    write_entry_dist(tc.site, "tcx_extras", '''\
        [tcx.plugins]
        ext = plugins.ext:value
        ''')
    tc.write({"pytest.ini": "[pytest]\n", "plugins/__init__.py": "",
              "plugins/ext.py": EXT_BODY,
              "test_it.py": module_text('''\
                  from importlib.metadata import entry_points
                  ---
                  (ep,) = entry_points(group="tcx.plugins")
                  assert ep.load()() == 1
                  ''')})
    args = ["--tcache-precision=" + precision]
    if xdist:
        args += ["-n", "2"]
    check_cached_then_fails(
        tc, args, lambda tc: same_size_edit(tc, *BODY_EDIT))


@pytest.mark.parametrize("edit", ["body", "const"])
@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
@pytest.mark.parametrize("precision", PRECISIONS)
def test_pytest11_plugin_in_project_edit_runs_again(tc, precision, xdist,
                                                    edit):
    """A pytest plugin of the project loaded by pytest itself through a
    pytest11 entry point (what pip install -e registers)."""
    write_entry_dist(tc.site, "tcx_pytest_plugin", '''\
        [pytest11]
        tcxplug = projplug
        ''')
    tc.write({"pytest.ini": "[pytest]\n",
              "projplug.py": '''\
                  import pytest

                  BASE = 0


                  @pytest.fixture
                  def answer():
                      return BASE + 1
                  ''',
              "test_it.py": module_text("---\nassert answer == 1\n")})
    args = ["--tcache-precision=" + precision]
    if xdist:
        args += ["-n", "2"]
    rel, old, new = (("projplug.py", "return BASE + 1", "return BASE + 2")
                     if edit == "body" else
                     ("projplug.py", "BASE = 0", "BASE = 1"))
    check_cached_then_fails(
        tc, args, lambda tc: same_size_edit(tc, rel, old, new))


# --- the memo vouching for the files before the edit ---

MEMO_CASES = ("spec_from_file_location_body", "runpy_run_path_const",
              "json_open", "importlib_resources")


@pytest.mark.parametrize("precision", PRECISIONS)
@pytest.mark.parametrize("name", MEMO_CASES)
def test_memo_does_not_hide_a_same_size_edit(tc, name, precision):
    """The files are older than the racy window before the first run, so the
    memo saved by the warm run vouches for them; the same-size edit with
    the mtime set back must still be seen."""
    files, (rel, old, new) = CASES[name]
    tc.write(dict(files, **{"pytest.ini": "[pytest]\n"}))
    settle = inputs.RACY_S * 1.2
    time.sleep(settle)
    memo_files = []

    def memo_settled():
        memo_files.extend(os.listdir(tc.memo_dir))
        # The memo written by the warm run is trusted only once it is
        # older than the racy window.
        time.sleep(settle)
    check_cached_then_fails(
        tc, ["--tcache-precision=" + precision],
        lambda tc: same_size_edit(tc, rel, old, new), memo_settled)
    assert memo_files, "no memo was written: the test shows nothing"


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
@pytest.mark.parametrize("precision", PRECISIONS)
def test_entry_point_loaded_again_by_a_later_test(tc, precision, xdist):
    """The second test's ep.load() finds the module already loaded: no
    source is read, yet the module is its input as much as the first's."""
    write_entry_dist(tc.site, "tcx_extras", '''\
        [tcx.plugins]
        ext = plugins.ext:value
        ''')
    tc.write({"pytest.ini": "[pytest]\n", "plugins/__init__.py": "",
              "plugins/ext.py": EXT_BODY,
              "test_it.py": '''\
                  from importlib.metadata import entry_points

                  from ranlog import ran


                  def load():
                      (ep,) = entry_points(group="tcx.plugins")
                      return ep.load()


                  def test_a():
                      ran()
                      assert load()() == 1


                  def test_b():
                      ran()
                      assert load()() == 1
                  '''})
    both = {"test_it.py::test_a", "test_it.py::test_b"}
    args = ["--tcache-precision=" + precision, "-p", "no:randomly"]
    if xdist:
        args += ["-n", "2"]
    cold = tc.run(*args)
    assert cold.ret == 0 and cold.ran == both, cold
    warm = tc.run(*args)
    assert warm.cached == both and warm.ran == set(), warm
    same_size_edit(tc, *BODY_EDIT)
    after = tc.run(*args)
    assert after.ran == both and after.cached == set(), after
    assert after.outcomes == {"failed": 2}, after


# --- files opened by C code ---

def sqlite_set(path, value):
    import sqlite3
    con = sqlite3.connect(str(path))
    try:
        with con:
            con.execute("CREATE TABLE IF NOT EXISTS v (x INTEGER)")
            con.execute("DELETE FROM v")
            con.execute("INSERT INTO v VALUES (?)", (value,))
    finally:
        con.close()


def build_shared_lib(tc, value):
    src = tc.helpers / "val.c"
    src.write_text("int value(void) { return %d; }\n" % value)
    target = tc.root / "lib" / "libval.so"
    target.parent.mkdir(exist_ok=True)
    tmp = str(target) + ".tmp"
    cc = os.environ.get("CC") or "cc"
    subprocess.run([cc, "-shared", "-fPIC", "-o", tmp, str(src)],
                   check=True, timeout=120)
    os.rename(tmp, target)


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
@pytest.mark.parametrize("precision", PRECISIONS)
def test_sqlite_database_edit_runs_again(tc, precision, xdist):
    """sqlite3 opens the database in C: no "open" audit event."""
    (tc.root / "data").mkdir()
    sqlite_set(tc.root / "data" / "v.db", 1)
    tc.write({"pytest.ini": "[pytest]\n", "test_it.py": module_text('''\
        import sqlite3
        ---
        con = sqlite3.connect("data/v.db")
        assert con.execute("SELECT x FROM v").fetchone() == (1,)
        con.close()
        ''')})
    args = ["--tcache-precision=" + precision]
    if xdist:
        args += ["-n", "2"]
    check_cached_then_fails(
        tc, args, lambda tc: sqlite_set(tc.root / "data" / "v.db", 2))


@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
@pytest.mark.parametrize("precision", PRECISIONS)
def test_ctypes_library_rebuilt_runs_again(tc, precision, xdist):
    """ctypes.CDLL maps the library with dlopen: no "open" audit event."""
    build_shared_lib(tc, 1)
    tc.write({"pytest.ini": "[pytest]\n", "test_it.py": module_text('''\
        import ctypes
        import os
        ---
        lib = ctypes.CDLL(os.path.abspath("lib/libval.so"))
        assert lib.value() == 1
        ''')})
    args = ["--tcache-precision=" + precision]
    if xdist:
        args += ["-n", "2"]
    check_cached_then_fails(tc, args, lambda tc: build_shared_lib(tc, 2))


# --- what one test reads and keeps in memory for another ---

CARRIED = {
    "pytest.ini": "[pytest]\n",
    "data/cfg.json": '{"value": 1}\n',
    "conf.py": '''\
        import functools
        import json

        import pytest


        @functools.lru_cache(maxsize=None)
        def cfg():
            with open("data/cfg.json") as f:
                return json.load(f)


        @pytest.fixture(scope="session")
        def session_cfg():
            with open("data/cfg.json") as f:
                return json.load(f)
        ''',
    "conftest.py": "from conf import session_cfg  # noqa: F401\n",
}
JSON_EDIT = ("data/cfg.json", '"value": 1', '"value": 2')


def carried_run_twice_then_edit(tc, precision, test_text):
    tc.write(dict(CARRIED, **{"test_it.py": test_text}))
    both = {"test_it.py::test_a", "test_it.py::test_b"}
    args = ["--tcache-precision=" + precision]
    assert tc.run(*args).ran == both
    assert tc.run(*args).cached == both
    same_size_edit(tc, *JSON_EDIT)
    after = tc.run(*args)
    assert after.ran == both and after.cached == set(), after
    assert after.outcomes == {"failed": 2}, after


@pytest.mark.parametrize("precision", PRECISIONS)
def test_data_shared_through_a_session_fixture(tc, precision):
    """The remedy the README gives for the case below: a fixture's setup
    counts for every test that uses it, also when its value is reused."""
    carried_run_twice_then_edit(tc, precision, '''\
        from ranlog import ran


        def test_a(session_cfg):
            ran()
            assert session_cfg["value"] == 1


        def test_b(session_cfg):
            ran()
            assert session_cfg["value"] == 1
        ''')


@pytest.mark.xfail(strict=True, reason="known limit, in README: a file that "
                   "one test read and kept in memory (lru_cache) is no input "
                   "of the next test that uses what was kept")
@pytest.mark.parametrize("precision", PRECISIONS)
def test_data_kept_in_memory_by_an_earlier_test(tc, precision):
    carried_run_twice_then_edit(tc, precision, '''\
        from conf import cfg
        from ranlog import ran


        def test_a():
            ran()
            assert cfg()["value"] == 1


        def test_b():
            ran()
            assert cfg()["value"] == 1
        ''')


# --- a directory listed ---

@pytest.mark.parametrize("lister", ["glob", "listdir", "scandir", "iterdir"])
@pytest.mark.parametrize("xdist", [False, True], ids=["serial", "xdist"])
@pytest.mark.parametrize("precision", PRECISIONS)
def test_a_file_added_to_a_listed_directory_runs_again(tc, precision, xdist,
                                                       lister):
    """A test that checks every file of a directory depends on which files
    the directory holds: a new bad one must run it again."""
    listing = {
        "glob": 'sorted(glob.glob("data/*.json"))',
        "listdir": 'sorted(os.path.join("data", n) '
                   'for n in os.listdir("data"))',
        "scandir": 'sorted(e.path for e in os.scandir("data"))',
        "iterdir": 'sorted(str(p) for p in pathlib.Path("data").iterdir())',
    }[lister]
    tc.write({"pytest.ini": "[pytest]\n",
              "data/a.json": '{"value": 1}\n',
              "test_it.py": module_text('''\
                  import glob
                  import json
                  import os
                  import pathlib
                  ---
                  for p in %s:
                      with open(p) as f:
                          assert json.load(f)["value"] == 1, p
                  ''' % listing)})
    args = ["--tcache-precision=" + precision]
    if xdist:
        args += ["-n", "2"]
    check_cached_then_fails(
        tc, args, lambda tc: tc.write({"data/b.json": '{"value": 2}\n'}))


def test_a_listed_directory_ignores_the_bytecode_cache(tc):
    """Bytecode (no PYTHONDONTWRITEBYTECODE here) is not in the listing: a
    __pycache__ made or removed beside the sources costs no hit."""
    import shutil
    tc.monkeypatch.delenv("PYTHONDONTWRITEBYTECODE")
    tc.write({"pytest.ini": "[pytest]\n", "pkg/__init__.py": "",
              "pkg/mod.py": "VALUE = 1\n",
              "test_it.py": module_text('''\
                  import importlib
                  import os
                  ---
                  names = sorted(n for n in os.listdir("pkg")
                                 if n.endswith(".py"))
                  assert names == ["__init__.py", "mod.py"]
                  assert importlib.import_module("pkg.mod").VALUE == 1
                  ''')})
    assert tc.run().ran == {NODE}
    cache = tc.root / "pkg" / "__pycache__"
    assert cache.is_dir()
    shutil.rmtree(cache)
    warm = tc.run()
    assert warm.cached == {NODE} and warm.ran == set(), warm
    tc.write({"pkg/new.py": "\n"})
    after = tc.run()
    assert after.ran == {NODE} and after.outcomes == {"failed": 1}, after


def test_explain_compares_a_listed_directory_by_its_names(tc):
    """tcache explain recomputes a listed directory's digest as the plugin
    does: unchanged while no file comes or goes (a file's content is its own
    input), changed once one does."""
    tc.write({"pytest.ini": "[pytest]\n",
              "data/a.json": '{"value": 1}\n',
              "test_it.py": module_text('''\
                  import os
                  ---
                  assert sorted(os.listdir("data")) == ["a.json"]
                  ''')})
    assert tc.run().ran == {NODE}
    cp = tc.daemon.cli("explain", "--test", NODE, check=False)
    assert "data" not in cp.stdout, cp.stdout
    assert cp.returncode == 0, cp.stdout + cp.stderr
    tc.write({"data/b.json": "{}\n"})
    cp = tc.daemon.cli("explain", "--test", NODE, check=False)
    assert cp.returncode == 1, cp.stdout + cp.stderr
    assert re.search(r"^changed( \(\w+\))?: data$", cp.stdout, re.M), cp.stdout
