"""Which of the project's functions ran: the execution tracer behind
--tcache-precision=executed.

A Tracer records the function code objects (co_flags & CO_OPTIMIZED:
functions, methods, lambdas, comprehensions, generator and coroutine bodies;
never module or class bodies) of the project's files, in the thread that
called start() and in every thread started later through `threading`.
take() hands over what ran since the previous take(), each code object once,
and starts a new interval.  A generator or coroutine resumed (next, send,
throw, close) in an interval ran in it, whichever interval created it.

The project's files are those under the prefix, judged on the real,
normalized path: co_filename is spelled as the import found the file
(through a symbolic link, with ".."), and a literal prefix test would miss
such files, which would make stale passes.  Each file is judged once per
tracer; project_path(code.co_filename) gives the file's path under the
prefix.  Relative file names (relative sys.path entries, Python < 3.10)
count as the project's.

Four kinds, cheapest first (make_tracer picks):

  monitoring  Python >= 3.12: sys.monitoring PY_START/PY_RESUME/PY_THROW on a
              free tool id.  Each location is disabled after its first event
              and re-enabled by take() (sys.monitoring.restart_events, which
              re-enables every tool's disabled events), so a code object
              costs one Python call per interval and nothing more.
              Process-wide: every thread, including those started before
              start().
  frameeval   CPython 3.9 to 3.11: a PEP 523 frame evaluation function in C
              (_tracer.c) that notes each frame's code object in the same
              pointer set as the c kind and hands the frame to the previous
              function.  Called for every function call and every generator
              or coroutine resumption, in every thread of the interpreter,
              including those started before start().  Unlike a profile
              function it leaves 3.11's specializing interpreter at work;
              its cost there is that Python-to-Python calls are no longer
              inlined.  On 3.11.0 to 3.11.3, whose specialized subscript
              calls a Python __getitem__ without the hook, code containing a
              subscript is kept unspecialized.  Chains to a hook already
              installed (a debugger's).
  c           A profile function in C (_tracer.c, compiled at run time into
              the user's cache directory) with a pointer set of the code
              objects seen in the interval: a C call and a hash probe per
              function call; a Python call only to judge a new file.
  python      The same in a Python profile function: the fallback when no C
              compiler or Python.h is at hand.  Several times slower.

The profile hook, not the trace hook, for the c and python kinds: coverage.py and
debuggers use the trace hook, so the two coexist; and the profile 'call'
event fires for every function entry and generator resumption.

intact() turns False once anything else replaces our hook since start()
(sys.setprofile by a test, cProfile, a profiler; for monitoring, our tool id
or callbacks taken over; for frameeval, another frame evaluation function
installed over ours, or another frameeval tracer started): from then on the record may miss code, and the
plugin distrusts it.  stop() and start() again re-arm.  After stop(),
nothing more is recorded; take() still hands over what was.

Not seen by the profile-hook kinds: threads that existed before start()
(monitoring and frameeval see them), threads made without `threading`.  Not seen by any:
the rest of a function body that was already running when the interval
began (its callees and resumptions are seen).
"""

import hashlib
import importlib.util
import inspect
import os
import shlex
import subprocess
import sys
import sysconfig
import tempfile
import threading

__all__ = ["Tracer", "make_tracer", "KINDS", "load_c_helper"]

KINDS = ("monitoring", "frameeval", "c", "python")
# Where make_tracer prefers frameeval to c when no kind is named: the
# (major, minor) versions on which bench/tracer_overhead.py measured it
# cheaper (ratios to no tracer, medians of 7 to 15 runs, 2-core machine):
# 3.11.2 frameeval 1.14x, c 2.95x; 3.11.7 1.16x vs 3.01x; 3.9.18 1.02 to
# 1.10x vs 1.28 to 1.41x; 3.10.13 0.99 to 1.09x vs 0.96 to 1.41x (one run in
# three in c's favour, by less than the noise).  frameeval also sees threads
# started before start(), which spares the plugin whole-file fallbacks.
FRAMEEVAL_PREFERRED = ((3, 9), (3, 10), (3, 11))
CO_OPTIMIZED = inspect.CO_OPTIMIZED
C_SOURCE = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        "_tracer.c")
BUILD_TIMEOUT = 120         # seconds the C compiler may take
# sys.monitoring tool ids tried in turn: first those no standard tool
# claims, last the profiler's, never the debugger's (0) or coverage's (1).
MONITORING_TOOL_IDS = (4, 3, 5, 2)
MONITORING_NAME = "tcache"


def _project_path(filename, prefix):
    """filename (a co_filename) as a path under prefix, or None."""
    if not isinstance(filename, str) or not filename or filename[0] == "<":
        return None         # "<string>", "<frozen ...>": no file
    if not os.path.isabs(filename):
        # A relative sys.path entry (Python < 3.10), relative to a working
        # directory that may have changed since: assume the project's.
        return os.path.abspath(filename)
    a = os.path.normpath(filename)
    if a.startswith(prefix):
        return a
    real_prefix = os.path.join(os.path.realpath(prefix), "")
    r = os.path.realpath(a)
    if r.startswith(real_prefix):
        return prefix + r[len(real_prefix):]
    if r.startswith(prefix):
        return r
    return None


def _classifier(prefix):
    """A dict of verdicts (co_filename -> whether it is the project's) and
    the function that fills it, deciding each file once: a plain prefix
    test would miss project files reached through a symbolic link or a
    non-normalized sys.path entry, and missing code means stale passes.
    The function holds no reference to a tracer (the C collector keeps it,
    and is not garbage collected)."""
    verdicts = {}

    def classify(filename):
        v = verdicts[filename] = _project_path(filename, prefix) is not None
        return v
    return verdicts, classify


class Tracer:
    """Base of the three kinds; build one with make_tracer()."""

    kind = None
    why_not_c = None        # why the C helper is not in use, if it was tried
    all_threads = False     # sees threads that were running before start()

    def __init__(self, prefix):
        if not (isinstance(prefix, str) and os.path.isabs(prefix)
                and prefix.endswith(os.sep)):
            raise ValueError("tracer prefix must be an absolute directory "
                             "ending in %r: %r" % (os.sep, prefix))
        self.prefix = prefix
        self._started = False
        self._replaced = False
        self._verdicts, self._classify = _classifier(prefix)
        self._paths = {}

    def project_path(self, filename):
        """The absolute, normalized path under the prefix of a recorded code
        object's co_filename, which may be spelled otherwise (symbolic
        links, "..", a relative sys.path entry on old Pythons); None if it
        is not the project's."""
        try:
            return self._paths[filename]
        except KeyError:
            p = self._paths[filename] = _project_path(filename, self.prefix)
            return p

    def start(self):
        raise NotImplementedError

    def take(self):
        raise NotImplementedError

    def intact(self):
        raise NotImplementedError

    def stop(self):
        raise NotImplementedError

    def __repr__(self):
        return "<%s tracer %r%s>" % (self.kind, self.prefix,
                                     "" if self._started else " stopped")


# --- replacement of the profile hook, seen through the audit hook ----------
#
# sys.setprofile and PyEval_SetProfile both raise the audit event
# "sys.setprofile", from the thread making the change.  Ours are told apart
# by the thread they come from; threading's own (each new thread installs
# the hook threading.setprofile named) by the function making it.

_watchers = []              # started profile-hook tracers
_own_installs = set()       # thread idents inside our own sys.setprofile
_audit_added = False
_BOOTSTRAP = getattr(getattr(threading.Thread, "_bootstrap_inner", None),
                     "__code__", None)


def _audit(event, args):
    if event != "sys.setprofile" or not _watchers:
        return
    try:
        caller = sys._getframe(1).f_code
    except ValueError:
        caller = None       # no Python frame: a thread made in C
    for t in list(_watchers):
        t._audit_setprofile(caller)


def _watch(tracer):
    global _audit_added
    if not _audit_added:
        sys.addaudithook(_audit)
        _audit_added = True
    if tracer not in _watchers:
        _watchers.append(tracer)


def _unwatch(tracer):
    if tracer in _watchers:
        _watchers.remove(tracer)


def _threading_hook():
    get = getattr(threading, "getprofile", None)     # 3.10+
    return get() if get else getattr(threading, "_profile_hook", None)


class _ProfileTracer(Tracer):
    """What the c and python kinds share: a profile hook in this thread and,
    through threading.setprofile, in every thread started later."""

    _hook = None            # what threading.setprofile installs

    def _audit_setprofile(self, caller):
        if self._own_install():
            return
        if caller is _BOOTSTRAP and _threading_hook() is self._hook:
            return          # a new thread installing our hook
        self._replaced = True

    def _own_install(self):
        return threading.get_ident() in _own_installs

    def _hook_here(self):
        raise NotImplementedError

    def intact(self):
        return (self._started and not self._replaced and self._hook_here()
                and _threading_hook() is self._hook)

    def _start_threads(self):
        self._replaced = False
        _watch(self)
        threading.setprofile(self._hook)
        self._started = True

    def _stop_threads(self):
        self._started = False
        _unwatch(self)
        if _threading_hook() is self._hook:
            threading.setprofile(None)


class PythonTracer(_ProfileTracer):
    """A profile function in Python (see the module's docstring)."""

    kind = "python"

    def __init__(self, prefix):
        super().__init__(prefix)
        self._seen = set()
        self._found = []
        self._stopped = [False]
        self._hook = self._make_hook()

    def _make_hook(self):
        seen, found, stopped = self._seen, self._found, self._stopped
        verdicts, classify = self._verdicts, self._classify
        setprofile, get_ident = sys.setprofile, threading.get_ident

        def tcache_profile(frame, event, arg):
            if event == "call":
                code = frame.f_code
                if code not in seen:
                    if stopped[0]:
                        # Another thread, after stop(): leave it.
                        ident = get_ident()
                        _own_installs.add(ident)
                        try:
                            setprofile(None)
                        finally:
                            _own_installs.discard(ident)
                        return
                    seen.add(code)
                    if code.co_flags & CO_OPTIMIZED:
                        v = verdicts.get(code.co_filename)
                        if v is None:
                            v = classify(code.co_filename)
                        if v:
                            found.append(code)
        return tcache_profile

    def start(self):
        self._stopped[0] = False
        self._seen.clear()
        del self._found[:]
        ident = threading.get_ident()
        _own_installs.add(ident)
        try:
            sys.setprofile(self._hook)
        finally:
            _own_installs.discard(ident)
        self._start_threads()

    def _hook_here(self):
        return sys.getprofile() is self._hook

    def take(self):
        # Another thread may append between these lines: what it appends
        # after the copy stays for the next interval (deduplicated below),
        # never lost.
        found = self._found[:]
        del self._found[:len(found)]
        self._seen.clear()
        return list(dict.fromkeys(found))

    def stop(self):
        self._stopped[0] = True
        self._stop_threads()
        # Other threads still holding the hook drop it at their next new
        # code object: an empty set makes every one new.
        self._seen.clear()
        if sys.getprofile() is self._hook:
            ident = threading.get_ident()
            _own_installs.add(ident)
            try:
                sys.setprofile(None)
            finally:
                _own_installs.discard(ident)


class CTracer(_ProfileTracer):
    """A profile function in C (see _tracer.c)."""

    kind = "c"

    def __init__(self, prefix, module=None):
        super().__init__(prefix)
        if module is None:
            module, why = load_c_helper()
            if module is None:
                raise RuntimeError("C tracer unavailable: %s" % why)
        self._c = module.Collector(self._verdicts, self._classify)
        # threading.setprofile(collector): a new thread calls the collector
        # as a Python profile function once, which installs the C one.
        self._hook = self._c

    def _own_install(self):
        return (threading.get_ident() in _own_installs
                or self._c.installing())

    def _hook_here(self):
        return self._c.installed() and not self._c.failed()

    def start(self):
        self._c.take()
        self._c.install()
        self._start_threads()

    def take(self):
        return self._c.take()

    def stop(self):
        self._stop_threads()
        self._c.uninstall()


class FrameEvalTracer(Tracer):
    """A PEP 523 frame evaluation function in C, CPython 3.9 to 3.11 (see
    the module's docstring and _tracer.c)."""

    kind = "frameeval"
    all_threads = True

    def __init__(self, prefix, module=None):
        if module is None:
            module, why = load_c_helper()
            if module is None:
                raise RuntimeError("C tracer unavailable: %s" % why)
        if not getattr(module, "HAVE_FRAMEEVAL", 0):
            raise RuntimeError("no frame evaluation hook on Python %s"
                               % sys.version.split()[0])
        super().__init__(prefix)
        self._c = module.Collector(self._verdicts, self._classify)
        self.why_not = None

    def start(self):
        self._c.take()
        if self._c.eval_install():
            self.why_not = None
        else:
            # Our function may still sit in another hook's chain: running
            # but untrusted, like monitoring without a free tool id.
            self.why_not = ("another frame evaluation hook was installed "
                            "over ours")
        self._started = True

    def take(self):
        return self._c.take()

    def intact(self):
        return (self._started and self.why_not is None
                and self._c.eval_intact())

    def stop(self):
        self._started = False
        self._c.eval_uninstall()


class MonitoringTracer(Tracer):
    """sys.monitoring, Python >= 3.12 (see the module's docstring)."""

    kind = "monitoring"
    all_threads = True

    def __init__(self, prefix):
        if not hasattr(sys, "monitoring"):
            raise RuntimeError("sys.monitoring needs Python 3.12")
        super().__init__(prefix)
        self._tool = None
        self._seen = set()
        self.why_not = None
        mon = sys.monitoring
        E = mon.events
        self._events = E.PY_START | E.PY_RESUME | E.PY_THROW
        seen, DISABLE = self._seen, mon.DISABLE
        verdicts, classify = self._verdicts, self._classify

        def tcache_start(code, offset):
            if code.co_flags & CO_OPTIMIZED:
                v = verdicts.get(code.co_filename)
                if v is None:
                    v = classify(code.co_filename)
                if v:
                    seen.add(code)
            return DISABLE

        def tcache_throw(code, offset, exc):
            # Rare; not disabled, since CPython does not promise that
            # PY_THROW can be.
            tcache_start(code, offset)
        self._callbacks = ((E.PY_START, tcache_start),
                           (E.PY_RESUME, tcache_start),
                           (E.PY_THROW, tcache_throw))

    def start(self):
        mon = sys.monitoring
        if self._tool is None:
            for tool in MONITORING_TOOL_IDS:
                if mon.get_tool(tool) is not None:
                    continue
                try:
                    mon.use_tool_id(tool, MONITORING_NAME)
                except ValueError:
                    continue        # claimed meanwhile
                self._tool = tool
                break
            else:
                # Every id taken (a debugger, coverage, profilers): run,
                # but report every record as untrustworthy.
                self.why_not = "no free sys.monitoring tool id"
                self._started = True
                return
        self.why_not = None
        for event, cb in self._callbacks:
            mon.register_callback(self._tool, event, cb)
        self._seen.clear()
        mon.set_events(self._tool, self._events)
        # Locations disabled by an earlier user of this tool id would
        # otherwise stay silent.
        mon.restart_events()
        self._started = True

    def take(self):
        found = self._seen.copy()
        self._seen.difference_update(found)
        if self._tool is not None:
            sys.monitoring.restart_events()
        return list(found)

    def intact(self):
        if not self._started or self._tool is None:
            return False
        mon = sys.monitoring
        if (mon.get_tool(self._tool) != MONITORING_NAME
                or mon.get_events(self._tool) != self._events):
            return False
        # register_callback returns the callback it replaces: ours, unless
        # someone swapped it (then ours is back, but the record has gaps).
        ok = True
        for event, cb in self._callbacks:
            if mon.register_callback(self._tool, event, cb) is not cb:
                ok = False
        return ok

    def stop(self):
        self._started = False
        if self._tool is None:
            return
        mon = sys.monitoring
        tool, self._tool = self._tool, None
        if mon.get_tool(tool) != MONITORING_NAME:
            return          # not ours any more
        mon.set_events(tool, 0)
        for event, _ in self._callbacks:
            mon.register_callback(tool, event, None)
        mon.free_tool_id(tool)


# --- the C helper: built on first use, cached per interpreter and source ---

_c_cache = {}


def _cache_root():
    # XDG: a relative XDG_CACHE_HOME is invalid and must be ignored.
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):
        return xdg
    return os.path.join(os.path.expanduser("~"), ".cache")


def _include_dirs():
    dirs = []
    for name in ("include", "platinclude"):
        d = sysconfig.get_paths().get(name)
        if d and d not in dirs:
            dirs.append(d)
    return dirs


def c_helper_path(source=None):
    """Where the C helper for this interpreter and `source` (bytes, default
    the shipped _tracer.c) lives in the cache."""
    if source is None:
        with open(C_SOURCE, "rb") as f:
            source = f.read()
    ext = sysconfig.get_config_var("EXT_SUFFIX") or ".so"
    h = hashlib.sha256()
    for part in (sys.implementation.cache_tag or sys.implementation.name,
                 ext, sys.version, sys.abiflags if hasattr(sys, "abiflags")
                 else "", "\0".join(_include_dirs())):
        h.update(part.encode("utf-8", "surrogateescape") + b"\0")
    h.update(hashlib.sha256(source).digest())
    return os.path.join(_cache_root(), "tcache", "pytest", h.hexdigest()[:24],
                        "_tracer" + ext)


def _compile(source_path, target):
    """Builds target from source_path; returns None or why not."""
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    incs = _include_dirs()
    if not any(os.path.exists(os.path.join(d, "Python.h")) for d in incs):
        return "Python.h not found in %s (install python3-dev)" % (
            " ".join(incs) or "no include directory")
    d = os.path.dirname(target)
    try:
        os.makedirs(d, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=d, prefix=".build-",
                                   suffix=os.path.basename(target))
        os.close(fd)
    except OSError as e:
        return "cannot write the cache directory %s: %s" % (d, e)
    argv = shlex.split(cc) + ["-shared", "-fPIC", "-O2", "-Wall", "-Wextra"]
    for inc in incs:
        argv += ["-I", inc]
    argv += [source_path, "-o", tmp]
    try:
        try:
            r = subprocess.run(argv, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT,
                               timeout=BUILD_TIMEOUT)
        except (OSError, ValueError) as e:
            return "cannot run the C compiler %r: %s" % (cc, e)
        except subprocess.TimeoutExpired:
            return "the C compiler took over %d s" % BUILD_TIMEOUT
        if r.returncode != 0:
            out = r.stdout.decode("utf-8", "replace").strip().splitlines()
            return "%r failed (status %d)%s" % (
                cc, r.returncode, ": " + out[0] if out else "")
        # Concurrent builders (xdist workers) each rename a complete file.
        os.rename(tmp, target)
        tmp = None
    except OSError as e:
        return "cannot install %s: %s" % (target, e)
    finally:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass
    return None


def _load(path):
    spec = importlib.util.spec_from_file_location("tcache_pytest._tracer",
                                                  path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def load_c_helper():
    """The compiled _tracer module, built if need be: (module, None), or
    (None, why not).  Never raises.  Remembered per process for the same
    compiler and cache directory."""
    memo = (os.environ.get("CC"), _cache_root())
    if memo in _c_cache:
        return _c_cache[memo]
    try:
        with open(C_SOURCE, "rb") as f:
            source = f.read()
        path = c_helper_path(source)
    except (OSError, RuntimeError) as e:
        result = (None, "cannot read %s: %s" % (C_SOURCE, e))
    else:
        why = None
        if not os.path.exists(path):
            why = _compile(C_SOURCE, path)
        if why is not None:
            result = (None, why)
        else:
            try:
                result = (_load(path), None)
            except Exception as e:      # ImportError, OSError from dlopen
                result = (None, "cannot load %s: %s" % (path, e))
    _c_cache[memo] = result
    return result


def make_tracer(prefix, kind=None):
    """A stopped Tracer of `kind`, or of $TCACHE_TRACER's, or the cheapest
    this interpreter has: monitoring (3.12+), then frameeval where it was
    measured cheaper than c (FRAMEEVAL_PREFERRED), then c, then python.  A
    kind that is unavailable here falls to the next; never raises for a
    missing compiler.  The tracer's why_not_c says why the C helper was
    tried and not used."""
    kind = kind or os.environ.get("TCACHE_TRACER") or None
    if kind is not None and kind not in KINDS:
        raise ValueError("tracer kind must be one of %s, not %r"
                         % (", ".join(KINDS), kind))
    order = KINDS if kind is None else KINDS[KINDS.index(kind):]
    why_not_c = None
    for k in order:
        if k == "monitoring":
            if hasattr(sys, "monitoring"):
                return MonitoringTracer(prefix)
        elif k == "frameeval":
            if kind is None and sys.version_info[:2] not in \
                    FRAMEEVAL_PREFERRED:
                continue
            module, why_not_c = load_c_helper()
            if module is not None and getattr(module, "HAVE_FRAMEEVAL", 0):
                return FrameEvalTracer(prefix, module)
        elif k == "c":
            module, why_not_c = load_c_helper()
            if module is not None:
                return CTracer(prefix, module)
        else:
            t = PythonTracer(prefix)
            t.why_not_c = why_not_c
            return t
    raise AssertionError("unreachable")
