"""tcache_pytest.tracer: which project function code objects ran, per
interval, under each tracer kind this interpreter has.  Plain tests, in
process (no pytester, no tcached).

The monitoring kind needs Python >= 3.12, the frameeval kind 3.9 to 3.11:
test_under_other_python runs this same file under the other interpreters
found here (Debian's pure-Python pytest on their path), so that every
scenario below runs for those kinds too.
"""

import asyncio
import ctypes
import glob
import importlib.util
import inspect
import itertools
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig
import threading

import pytest

from tcache_pytest import tracer as tc

PROJECT_SRC = '''\
import threading

def f(x):
    return x + 1

def g(n):
    for i in range(n):
        yield f(i)

def closer():
    try:
        yield 1
    finally:
        h()

class Step:
    def __await__(self):
        yield

async def co():
    await Step()
    return h()

def h():
    return 7

class K:
    attr = 1

    def m(self):
        return f(1)

    @staticmethod
    def s():
        return (lambda y: y * 2)(3)

def genexp():
    return sum(i for i in range(3))

def in_thread(out):
    out.append(f(10))

def set_profile(fn):
    import sys
    sys.setprofile(fn)

def wait_then(ev, go, out):
    import sys
    ev.set()
    go.wait()
    out.append(h())
    out.append(sys.getprofile())

def spin(ready, go, out):
    ready.set()
    while not go.is_set():
        pass
    out.append(f(0))

class Seq:
    def __getitem__(self, i):
        return i

def subscripts(n):
    s = Seq()
    t = 0
    for i in range(n):
        t += s[i]
    return t
'''

# A sibling directory whose name extends the project's: its code must not
# pass the prefix test.
OTHER_SRC = '''\
def other():
    return 1

def other_gen():
    yield 1
'''

_seq = itertools.count()


def _import(path):
    name = "tc_tracer_mod_%d" % next(_seq)
    spec = importlib.util.spec_from_file_location(name, str(path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def available_kinds():
    kinds = []
    if hasattr(sys, "monitoring"):
        kinds.append("monitoring")
    helper = tc.load_c_helper()[0]
    if helper is not None and helper.HAVE_FRAMEEVAL:
        kinds.append("frameeval")
    if helper is not None:
        kinds.append("c")
    kinds.append("python")
    return kinds


KINDS = available_kinds()
ALL_THREADS = ("monitoring", "frameeval")     # see threads older than start()


# The interpreter's frame evaluation function, through the C API itself:
# what the frameeval kind installs and must put back.
def _api(name, restype, *argtypes):
    fn = getattr(ctypes.pythonapi, name)
    fn.restype, fn.argtypes = restype, list(argtypes)
    return fn


def eval_hook():
    interp = _api("PyInterpreterState_Get", ctypes.c_void_p)()
    return _api("_PyInterpreterState_GetEvalFrameFunc", ctypes.c_void_p,
                ctypes.c_void_p)(interp)


def set_eval_hook(addr):
    interp = _api("PyInterpreterState_Get", ctypes.c_void_p)()
    _api("_PyInterpreterState_SetEvalFrameFunc", None, ctypes.c_void_p,
         ctypes.c_void_p)(interp, addr)


def default_eval_hook():
    return ctypes.cast(ctypes.pythonapi._PyEval_EvalFrameDefault,
                       ctypes.c_void_p).value


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "proj"
    root.mkdir()
    (root / "m.py").write_text(PROJECT_SRC)
    other = tmp_path / "proj2"
    other.mkdir()
    (other / "o.py").write_text(OTHER_SRC)
    return root


class Run:
    """A tracer over the project, stopped at the end of the test whatever
    happens."""

    def __init__(self, project, kind):
        self.prefix = str(project) + os.sep
        self.kind = kind
        self.tracers = []
        self.project = project

    def tracer(self):
        t = tc.make_tracer(self.prefix, self.kind)
        assert t.kind == self.kind, t.why_not_c
        self.tracers.append(t)
        return t

    def load(self):
        mod = _import(self.project / "m.py")
        other = _import(self.project.parent / "proj2" / "o.py")
        return mod, other


@pytest.fixture(params=KINDS)
def run(request, project):
    r = Run(project, request.param)
    yield r
    for t in r.tracers:
        t.stop()
    assert sys.getprofile() is None or request.param == "monitoring"
    if request.param == "frameeval":
        assert eval_hook() == default_eval_hook(), "stop() put it back"


def names(codes):
    """The co_names of codes, checking that each is reported once and is a
    function of the project."""
    codes = list(codes)
    assert len(codes) == len(set(codes)), codes
    for c in codes:
        assert c.co_flags & inspect.CO_OPTIMIZED, c
    return sorted(c.co_name for c in codes)


def test_once_per_interval_and_again_after_take(run):
    mod, _ = run.load()
    t = run.tracer()
    t.start()
    mod.f(1)
    for i in range(1000):
        mod.f(i)
    assert names(t.take()) == ["f"]
    assert t.take() == []
    mod.f(2)
    assert names(t.take()) == ["f"]
    assert t.intact()


def test_functions_methods_lambdas_genexprs(run):
    mod, _ = run.load()
    t = run.tracer()
    t.start()
    mod.K().m()
    mod.K.s()
    mod.genexp()
    got = names(t.take())
    assert got == sorted(["m", "f", "s", "<lambda>", "genexp", "<genexpr>"])
    for c in t.take():
        assert c.co_filename == str(run.project / "m.py")


def test_module_and_class_bodies_not_reported(run):
    t = run.tracer()
    t.start()
    mod, _ = run.load()         # runs both modules' bodies and K's
    got = names(t.take())
    assert "<module>" not in got and "K" not in got, got
    assert got == [], got
    assert mod.K.attr == 1


def test_non_project_code_not_reported(run):
    mod, other = run.load()
    t = run.tracer()
    t.start()
    other.other()
    list(other.other_gen())
    sorted([3, 1, 2], key=lambda x: -x)    # a lambda in this test file
    asyncio.run(asyncio.sleep(0))           # plenty of standard library
    mod.h()
    assert names(t.take()) == ["h"]


@pytest.mark.parametrize("spelling", ["link_to_project", "link_as_prefix",
                                      "dotdot", "dotdot_out"])
def test_file_spellings(run, tmp_path, spelling):
    """co_filename is spelled as the import found the file: through a
    symbolic link or with "..".  What is the project's is decided on the
    real, normalized path; project_path() gives it under the prefix."""
    real_m = run.project / "m.py"
    if spelling == "link_to_project":
        os.symlink(str(run.project), str(tmp_path / "alias"))
        path = tmp_path / "alias" / "m.py"
    elif spelling == "link_as_prefix":
        os.symlink(str(run.project), str(tmp_path / "alias"))
        run.prefix = str(tmp_path / "alias") + os.sep
        path = real_m
    elif spelling == "dotdot":
        path = tmp_path / "proj2" / ".." / "proj" / "m.py"
    else:
        path = run.project / ".." / "proj2" / "o.py"
    mod = _import(path)
    assert mod.__spec__.origin == str(path)
    t = run.tracer()
    t.start()
    if spelling == "dotdot_out":
        mod.other()
        assert t.take() == []
        assert t.project_path(mod.other.__code__.co_filename) is None
        return
    mod.f(1)
    codes = t.take()
    assert names(codes) == ["f"]
    assert codes[0].co_filename == str(path)
    assert t.project_path(codes[0].co_filename) == run.prefix + "m.py"
    assert t.project_path("<string>") is None
    assert t.project_path(os.__file__) is None


def test_pending_exception_survives(run):
    """A generator's code first seen as an exception is thrown into it: the
    verdict is decided with that exception in flight."""
    mod, _ = run.load()
    it = mod.closer()
    next(it)
    t = run.tracer()
    t.start()
    with pytest.raises(ValueError, match="boom"):
        it.throw(ValueError("boom"))
    assert names(t.take()) == ["closer", "h"]


def test_generator_resumed_after_take(run):
    mod, _ = run.load()
    it = mod.g(3)
    t = run.tracer()
    t.start()
    next(it)
    assert names(t.take()) == ["f", "g"]
    next(it)                    # created and started before: still ran now
    assert names(t.take()) == ["f", "g"]
    c = mod.closer()
    next(c)
    t.take()
    c.close()                   # the finally clause runs in this interval
    assert names(t.take()) == ["closer", "h"]


def test_coroutine_resumed_after_take(run):
    mod, _ = run.load()
    t = run.tracer()
    t.start()
    coro = mod.co()
    coro.send(None)
    assert names(t.take()) == ["__await__", "co"]
    with pytest.raises(StopIteration) as e:
        coro.send(None)
    assert e.value.value == 7
    assert names(t.take()) == ["__await__", "co", "h"]


def test_generator_throw_after_take(run):
    mod, _ = run.load()
    t = run.tracer()
    it = mod.closer()
    next(it)
    t.start()
    with pytest.raises(KeyError):
        it.throw(KeyError("x"))
    assert names(t.take()) == ["closer", "h"]


def test_thread_started_after_start(run):
    mod, _ = run.load()
    t = run.tracer()
    t.start()
    t.take()
    out = []
    th = threading.Thread(target=mod.in_thread, args=(out,))
    th.start()
    th.join()
    assert out == [11]
    assert names(t.take()) == ["f", "in_thread"]
    # Starting a thread puts our hook in it: not a replacement.
    assert t.intact()
    # A second interval in a new thread: the C kind's hook is the C one by
    # now, which must record too.
    th = threading.Thread(target=mod.in_thread, args=(out,))
    th.start()
    th.join()
    assert names(t.take()) == ["f", "in_thread"]


def test_thread_keeps_recording_across_intervals(run):
    mod, _ = run.load()
    t = run.tracer()
    t.start()
    ready, go, out = threading.Event(), threading.Event(), []
    th = threading.Thread(target=mod.wait_then, args=(ready, go, out))
    th.start()
    ready.wait()
    assert "wait_then" in names(t.take())
    go.set()
    th.join()
    got = names(t.take())
    assert "h" in got and "f" not in got, got


def test_thread_started_before_start(run):
    """A thread already running at start(): the kinds that see every
    thread record what it calls from then on."""
    if run.kind not in ALL_THREADS:
        pytest.skip("the profile-hook kinds follow new threads only")
    mod, _ = run.load()
    ready, go, out = threading.Event(), threading.Event(), []
    th = threading.Thread(target=mod.spin, args=(ready, go, out))
    th.start()
    try:
        ready.wait()
        t = run.tracer()
        assert t.all_threads
        t.start()
        t.take()
    finally:
        go.set()
        th.join()
    assert out == [1]
    assert names(t.take()) == ["f"]
    assert t.intact()


@pytest.mark.parametrize("warm", [False, True])
def test_subscript_getitem(run, warm):
    """A __getitem__ written in Python, called by subscripts that CPython
    3.11 specializes (BINARY_SUBSCR_GETITEM, which 3.11.0 to 3.11.3 run
    without the frame evaluation hook), before start() or after."""
    mod, _ = run.load()
    if warm:
        mod.subscripts(5000)
    t = run.tracer()
    t.start()
    for _ in range(3):
        assert mod.subscripts(5000) == 4999 * 5000 // 2
        assert names(t.take()) == ["__getitem__", "subscripts"]
    seq = mod.Seq()
    for i in range(100):            # from this (non-project) file
        assert _subscript(seq, i) == i
    assert names(t.take()) == ["__getitem__"]


def _subscript(x, i):
    # In its own function: the rest of a function already running at
    # start() is not seen (the module's docstring), and on 3.11.0 to 3.11.3
    # a subscript in it may even be specialized.
    return x[i]


@pytest.mark.parametrize("how", ["none", "other", "restored", "in_thread",
                                 "threading"])
def test_intact_false_after_replacement(run, how):
    if run.kind in ALL_THREADS and how != "threading":
        pytest.skip("sys.setprofile does not touch %s" % run.kind)
    mod, _ = run.load()
    t = run.tracer()
    t.start()
    assert t.intact()
    if how == "none":
        sys.setprofile(None)
    elif how == "other":
        sys.setprofile(lambda *a: None)
    elif how == "restored":
        old = sys.getprofile()
        sys.setprofile(None)
        mod.f(1)                # missed
        sys.setprofile(old)
    elif how == "in_thread":
        th = threading.Thread(target=mod.set_profile, args=(None,))
        th.start()
        th.join()
    elif how == "threading":
        if run.kind == "monitoring":
            # The counterpart for sys.monitoring: our events switched off.
            sys.monitoring.set_events(t._tool, 0)
        elif run.kind == "frameeval":
            # ... and for frameeval: the default evaluation put back.
            set_eval_hook(default_eval_hook())
        else:
            threading.setprofile(None)
    assert not t.intact()
    if how in ("restored", "in_thread"):
        assert sys.getprofile() is not None and run.kind not in ALL_THREADS
    mod.f(2)
    t.take()
    assert not t.intact(), "stays false until start() again"
    t.stop()
    sys.setprofile(None)
    t.start()
    assert t.intact()
    mod.h()
    assert names(t.take()) == ["h"]


def test_trace_hook_coexists(run):
    """coverage.py and debuggers use the trace hook: neither disturbs the
    other."""
    mod, _ = run.load()
    lines = []

    def tracefunc(frame, event, arg):
        if frame.f_code is mod.f.__code__:
            lines.append(event)
        return tracefunc

    sys.settrace(tracefunc)
    try:
        t = run.tracer()
        t.start()
        mod.f(1)
        assert sys.gettrace() is tracefunc
    finally:
        sys.settrace(None)
    assert "line" in lines
    assert names(t.take()) == ["f"]
    assert t.intact()


def test_stop_records_nothing_more(run):
    """After stop(), nothing is recorded, in this thread or in threads that
    got our hook; take() still hands over what ran before."""
    mod, _ = run.load()
    t = run.tracer()
    t.start()
    ready, go, out = threading.Event(), threading.Event(), []
    th = threading.Thread(target=mod.wait_then, args=(ready, go, out))
    th.start()
    ready.wait()
    mod.f(1)
    t.stop()
    assert sys.getprofile() is None
    assert tc._threading_hook() is None
    go.set()
    th.join()
    assert out == [7, None], "the thread has dropped our hook"
    mod.K().m()
    assert names(t.take()) == ["f", "wait_then"]
    assert t.take() == []
    assert not t.intact()


def _foreign_helper(tmp_path):
    """Another frame evaluation hook, as a debugger would install: a second
    copy of the compiled helper, with its own hook function and state."""
    module, why = tc.load_c_helper()
    assert module is not None, why
    path = tmp_path / ("other" + os.path.basename(module.__file__)[7:])
    shutil.copyfile(module.__file__, str(path))
    spec = importlib.util.spec_from_file_location("tc_foreign._tracer",
                                                  str(path))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


needs_frameeval = pytest.mark.skipif("frameeval" not in KINDS,
                                     reason="needs CPython 3.9 to 3.11")


@needs_frameeval
def test_frameeval_chains_to_a_hook_already_there(project, tmp_path):
    foreign = _foreign_helper(tmp_path)
    theirs_seen = {}
    theirs = foreign.Collector(theirs_seen,
                               lambda fn: theirs_seen.setdefault(fn, False))
    r = Run(project, "frameeval")
    mod, _ = r.load()
    assert theirs.eval_install()
    their_hook = eval_hook()
    assert their_hook != default_eval_hook()
    try:
        t = r.tracer()
        t.start()
        assert eval_hook() != their_hook
        mod.f(1)
        assert names(t.take()) == ["f"]
        assert t.intact()
        assert mod.f.__code__.co_filename in theirs_seen, "chained to"
        t.stop()
        assert eval_hook() == their_hook, "stop() put theirs back"
        mod.f(1)
        assert t.take() == []
    finally:
        theirs.eval_uninstall()
    assert eval_hook() == default_eval_hook()


@needs_frameeval
def test_frameeval_hook_installed_over_ours(project, tmp_path):
    foreign = _foreign_helper(tmp_path)
    theirs = foreign.Collector({}, lambda fn: False)
    r = Run(project, "frameeval")
    mod, _ = r.load()
    t = r.tracer()
    t.start()
    try:
        assert theirs.eval_install()    # over ours: they chain to ours
        assert not t.intact()
        t.stop()                        # cannot take ours out of theirs
        assert eval_hook() not in (None, default_eval_hook())
        # Starting again would chain to theirs, which calls ours: refused,
        # and said so.
        t.start()
        assert not t.intact() and t.why_not
        mod.f(1)
        t.stop()
    finally:
        theirs.eval_uninstall()         # puts ours back, as theirs chained
    t.start()
    assert t.intact() and t.why_not is None
    mod.h()
    assert names(t.take()) == ["h"]
    t.stop()
    assert eval_hook() == default_eval_hook()


@needs_frameeval
def test_frameeval_second_tracer_takes_over(project):
    r = Run(project, "frameeval")
    mod, _ = r.load()
    t1, t2 = r.tracer(), r.tracer()
    try:
        t1.start()
        t2.start()
        assert t2.intact() and not t1.intact()
        mod.f(1)
        assert names(t2.take()) == ["f"] and t1.take() == []
        t1.stop()                       # not the active one: no change
        mod.h()
        assert names(t2.take()) == ["h"] and t2.intact()
    finally:
        t2.stop()
        t1.stop()
    assert eval_hook() == default_eval_hook()


def test_monitoring_one_callback_per_interval(project):
    if not hasattr(sys, "monitoring"):
        pytest.skip("needs sys.monitoring (Python >= 3.12)")
    mon = sys.monitoring
    r = Run(project, "monitoring")
    mod, _ = r.load()
    t = r.tracer()
    t.start()
    try:
        assert t._tool not in (mon.DEBUGGER_ID, mon.COVERAGE_ID)
        assert mon.get_tool(t._tool) == "tcache"
        inner = t._callbacks[0][1]
        calls = []

        def counting(code, offset):
            if code is mod.f.__code__:
                calls.append(offset)
            return inner(code, offset)
        mon.register_callback(t._tool, mon.events.PY_START, counting)
        for i in range(1000):
            mod.f(i)
        assert len(calls) == 1
        assert names(t.take()) == ["f"]
        for i in range(1000):
            mod.f(i)
        assert len(calls) == 2
        assert names(t.take()) == ["f"]
        assert not t.intact(), "our callback was replaced"
    finally:
        t.stop()
    assert mon.get_tool(4) is None and mon.get_tool(3) is None


def test_monitoring_leaves_other_tools_alone(project):
    if not hasattr(sys, "monitoring"):
        pytest.skip("needs sys.monitoring (Python >= 3.12)")
    mon = sys.monitoring
    taken = []
    try:
        for tool in (mon.COVERAGE_ID, 4):
            mon.use_tool_id(tool, "someone")
            taken.append(tool)
        r = Run(project, "monitoring")
        mod, _ = r.load()
        t = r.tracer()
        t.start()
        assert t._tool == 3
        mod.f(1)
        assert names(t.take()) == ["f"]
        t.stop()
        assert [mon.get_tool(i) for i in taken] == ["someone"] * len(taken)
        for tool in (3, 5, 2):
            mon.use_tool_id(tool, "someone")
            taken.append(tool)
        t = r.tracer()
        t.start()           # nothing free: runs, reports itself broken
        assert not t.intact() and t.why_not
        t.stop()
    finally:
        for tool in taken:
            mon.free_tool_id(tool)


# --- choosing a kind, building the C helper --------------------------------

def test_default_kind(tmp_path, monkeypatch):
    monkeypatch.delenv("TCACHE_TRACER", raising=False)
    t = tc.make_tracer(str(tmp_path) + os.sep)
    expected = [k for k in KINDS if k != "frameeval" or
                sys.version_info[:2] in tc.FRAMEEVAL_PREFERRED][0]
    assert t.kind == expected
    if "frameeval" in KINDS:
        assert sys.version_info[:2] in tc.FRAMEEVAL_PREFERRED
        monkeypatch.setenv("TCACHE_TRACER", "frameeval")
        t = tc.make_tracer(str(tmp_path) + os.sep)
        assert t.kind == "frameeval" and t.all_threads
    elif sys.version_info >= (3, 12):
        monkeypatch.setenv("TCACHE_TRACER", "frameeval")
        assert tc.make_tracer(str(tmp_path) + os.sep).kind == "c"
    monkeypatch.setenv("TCACHE_TRACER", "python")
    assert tc.make_tracer(str(tmp_path) + os.sep).kind == "python"
    monkeypatch.setenv("TCACHE_TRACER", "bogus")
    with pytest.raises(ValueError):
        tc.make_tracer(str(tmp_path) + os.sep)
    for bad in ("relative/", str(tmp_path), b"/bytes/"):
        with pytest.raises(ValueError):
            tc.make_tracer(bad, "python")


def _fresh_cache(monkeypatch, tmp_path, cc=None):
    cache = tmp_path / "cache"
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    if cc is not None:
        monkeypatch.setenv("CC", cc)
    else:
        monkeypatch.delenv("CC", raising=False)
    tc._c_cache.clear()
    return cache


@pytest.mark.parametrize("cc,why", [("false", "failed (status 1)"),
                                    ("/nonexistent/cc", "cannot run")])
def test_c_build_failure_falls_back_to_python(project, tmp_path, monkeypatch,
                                              cc, why):
    _fresh_cache(monkeypatch, tmp_path, cc)
    monkeypatch.delenv("TCACHE_TRACER", raising=False)
    try:
        t = tc.make_tracer(str(project) + os.sep, "frameeval")
        assert t.kind == "python"
        assert why in t.why_not_c, t.why_not_c
        t = tc.make_tracer(str(project) + os.sep, "c")
        assert t.kind == "python"
        assert why in t.why_not_c, t.why_not_c
        # Nothing left behind: no library, no half-written temporary.
        left = [f for _, _, fs in os.walk(str(tmp_path / "cache"))
                for f in fs]
        assert left == []
        mod = _import(project / "m.py")
        t.start()
        try:
            mod.f(1)
            assert names(t.take()) == ["f"]
        finally:
            t.stop()
        if not hasattr(sys, "monitoring"):
            assert tc.make_tracer(str(project) + os.sep).kind == "python"
    finally:
        tc._c_cache.clear()


def test_c_build_bad_cache_dir_falls_back(project, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    monkeypatch.delenv("CC", raising=False)
    tc._c_cache.clear()
    try:
        t = tc.make_tracer(str(project) + os.sep, "c")
        assert t.kind == "python"
        assert "cannot write the cache directory" in t.why_not_c
    finally:
        tc._c_cache.clear()


def _have_python_h():
    return any(os.path.exists(os.path.join(d, "Python.h"))
               for d in tc._include_dirs())


needs_c = pytest.mark.skipif(not _have_python_h() or "c" not in KINDS,
                             reason="no Python.h or C compiler here")


@needs_c
def test_c_build_is_cached_and_keyed(tmp_path, monkeypatch):
    cache = _fresh_cache(monkeypatch, tmp_path)
    try:
        module, why = tc.load_c_helper()
        assert module is not None, why
        path = tc.c_helper_path()
        assert path.startswith(str(cache) + os.sep)
        assert os.path.exists(path)
        assert path.endswith(sysconfig.get_config_var("EXT_SUFFIX"))
        # The key covers the source: another source, another directory.
        assert (os.path.dirname(tc.c_helper_path(b"int x;"))
                != os.path.dirname(path))
        # Built once: a broken compiler now changes nothing.
        monkeypatch.setenv("CC", "false")
        module2, why2 = tc.load_c_helper()
        assert module2 is not None, why2
        assert os.listdir(os.path.dirname(path)) == [os.path.basename(path)]
    finally:
        tc._c_cache.clear()


@needs_c
def test_concurrent_builds(tmp_path):
    """xdist workers may all build at once: each renames a whole file."""
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"))
    env.pop("CC", None)
    src = os.path.dirname(os.path.dirname(os.path.abspath(tc.__file__)))
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from tcache_pytest import tracer\n"
            "m, why = tracer.load_c_helper()\n"
            "assert m is not None, why\n"
            "print(tracer.c_helper_path())\n" % src)
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env,
                              stdout=subprocess.PIPE) for _ in range(4)]
    outs = [p.communicate(timeout=300)[0].decode().strip() for p in procs]
    assert [p.returncode for p in procs] == [0] * 4
    assert len(set(outs)) == 1
    d = os.path.dirname(outs[0])
    assert os.listdir(d) == [os.path.basename(outs[0])]


WARN = ["-std=c11", "-Wall", "-Wextra", "-Werror", "-Wshadow",
        "-Wstrict-prototypes", "-Wmissing-prototypes", "-Wformat=2", "-Wvla"]


@pytest.mark.parametrize("compiler", ["gcc", "clang"])
def test_c_source_warning_free(tmp_path, compiler):
    if shutil.which(compiler) is None:
        pytest.skip("%s not installed" % compiler)
    if not _have_python_h():
        pytest.skip("no Python.h")
    argv = [compiler] + WARN + ["-O2", "-shared", "-fPIC"]
    for d in tc._include_dirs():
        argv += ["-I", d]
    argv += [tc.C_SOURCE, "-o", str(tmp_path / "t.so")]
    r = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert (r.returncode, r.stdout.decode()) == (0, ""), shlex.join(argv)


# --- the same scenarios under other Pythons: >= 3.12 (the monitoring kind),
# --- 3.9 and 3.10 (frameeval on their own frame layout) ---------------------

_PYTEST_DIR = os.path.dirname(os.path.dirname(os.path.abspath(
    pytest.__file__)))


def _other_pythons():
    """Interpreters of another minor version than this one, 3.9 and up,
    that can run Debian's pytest (3.9 and 3.10 need its exceptiongroup and
    tomli), one per real executable (pyenv's shims and its versions name
    the same ones): [(executable, kind expected)]."""
    found = {}
    cands = [shutil.which("python3.%d" % v) for v in range(9, 20)]
    cands += sorted(glob.glob("/root/.pyenv/versions/3.9*/bin/python3"))
    cands += sorted(glob.glob("/root/.pyenv/versions/3.1[0-9]*/bin/python3"))
    probe = ("import sys; v = sys.version_info[:2]; "
             "v < (3, 11) and __import__('exceptiongroup') and "
             "__import__('tomli'); print(sys.executable); print(*v)")
    env = dict(os.environ, PYTHONPATH=_PYTEST_DIR)
    for c in cands:
        if not c or not os.access(c, os.X_OK):
            continue
        try:
            r = subprocess.run([c, "-c", probe], stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, timeout=60,
                               env=env)
        except (OSError, subprocess.TimeoutExpired):
            continue
        out = r.stdout.decode().split("\n")
        if r.returncode != 0 or len(out) < 2 or not out[0]:
            continue
        v = tuple(int(x) for x in out[1].split())
        if v == sys.version_info[:2] or v == (3, 11):
            continue
        kind = "monitoring" if v >= (3, 12) else "frameeval"
        found.setdefault(os.path.realpath(out[0]), (out[0], kind))
    return sorted(found.values())


# Set in the runs below, which must not start runs of their own.
NESTED = "TCACHE_TRACER_TEST_NESTED"
OTHER_PYTHONS = [] if os.environ.get(NESTED) else _other_pythons()


@pytest.mark.skipif(not OTHER_PYTHONS, reason="no other Python here")
@pytest.mark.parametrize("python,kind", OTHER_PYTHONS or [(None, None)])
def test_under_other_python(python, kind):
    pytest_dir = _PYTEST_DIR
    env = dict(os.environ, PYTEST_DISABLE_PLUGIN_AUTOLOAD="1",
               PYTHONPATH=pytest_dir, PYTHONDONTWRITEBYTECODE="1")
    env[NESTED] = "1"
    env.pop("TCACHE_TRACER", None)
    r = subprocess.run([python, "-m", "pytest", "-v", "-p",
                        "no:cacheprovider", "-p", "no:warnings",
                        os.path.abspath(__file__)],
                       env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, timeout=600)
    out = r.stdout.decode("utf-8", "replace")
    assert r.returncode == 0, out
    passed = [line for line in out.splitlines()
              if "[%s" % kind in line and "PASSED" in line]
    assert len(passed) >= 10, out
    specific = ("test_monitoring_one_callback_per_interval"
                if kind == "monitoring" else
                "test_frameeval_chains_to_a_hook_already_there")
    assert specific + " PASSED" in out, out
