"""pytest --tcache: report a test whose inputs have not changed since it last
passed as passed (cached) without running it, and record every outcome.

A test's key covers its module, the conftest.py files above it, pytest's
config file, the project modules these import (transitively, from a static
import graph), the files its module opened or imported while it was being
collected, and the environment (interpreter, platform, installed
distributions, plugins, behaviour-changing options, --tcache-env variables).
The files a test opened or imported while it ran are recorded with its entry
and checked again before a hit is trusted.  Any doubt means the test runs.
"""

import os
import sys

import pytest

from . import inputs as tc_inputs
from . import proto
from .recorder import Recorder

FLUSH_EVERY = 256           # records handed to the recorder at a time
RECORD_TIMEOUT_MIN = 30.0   # seconds a RECORD frame may take, at least
FINISH_WAIT = 60.0          # seconds the end of a run waits for records


def pytest_addoption(parser):
    g = parser.getgroup("tcache", "tcache: skip tests whose inputs are "
                        "unchanged since they passed")
    g.addoption("--tcache", action="store_true", default=None,
                help="ask tcached for cached passes and record outcomes")
    g.addoption("--tcache-socket", metavar="PATH",
                help="tcached's socket (default: $TCACHE_SOCKET, "
                     "$XDG_RUNTIME_DIR/tcache/tcached.sock, "
                     "/tmp/tcache-$UID/tcached.sock)")
    g.addoption("--tcache-env", metavar="NAME", action="append", default=[],
                help="an environment variable whose value is an input of "
                     "every test (repeatable)")
    g.addoption("--tcache-readonly", action="store_true", default=False,
                help="look up, never record (pull-request CI)")
    g.addoption("--tcache-record-only", action="store_true", default=False,
                help="run every test and record the outcomes")
    g.addoption("--tcache-ttl", metavar="DUR",
                help="how long records live: 90m, 24h, 7d (default: the "
                     "daemon's)")
    g.addoption("--tcache-timeout", metavar="SECONDS", type=float,
                default=None, help="per request (default 5)")
    parser.addini("tcache", type="bool", default=False,
                  help="turn tcache on, as --tcache does")
    parser.addini("tcache_env", type="args", default=[],
                  help="environment variables that are inputs of every test")


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "tcache_never: always run this test, never cache it")
    on = config.getoption("tcache") or config.getini("tcache")
    if not on or os.environ.get("TCACHE_DISABLE") == "1":
        return
    config.pluginmanager.register(TcacheSession(config), "tcache-session")


_UNITS_MS = {"ms": 1, "s": 1000, "m": 60000, "h": 3600000, "d": 86400000}


def parse_ttl(text):
    """'500ms', '30s', '90m', '24h', '7d', or bare seconds, in ms."""
    for unit in ("ms", "s", "m", "h", "d"):
        if text.endswith(unit) and text[:-len(unit)].isdigit():
            return int(text[:-len(unit)]) * _UNITS_MS[unit]
    if text.isdigit():
        return int(text) * 1000
    raise pytest.UsageError("--tcache-ttl: not a duration: %r" % text)


def format_duration(seconds):
    if seconds < 60:
        return "%.1fs" % seconds
    if seconds < 3600:
        return "%dm%02ds" % (seconds // 60, seconds % 60)
    return "%dh%02dm" % (seconds // 3600, seconds % 3600 // 60)


# Audit events of a new process or program: what it reads, no hook of ours
# sees, so a test that starts one depends on every file of the project.
SPAWN_EVENTS = frozenset(("subprocess.Popen", "os.system", "os.posix_spawn",
                          "os.exec", "os.spawn", "os.fork", "os.forkpty",
                          "pty.spawn"))


class Tracker:
    """An audit hook (one per process: hooks cannot be removed) that notes
    the files opened for reading and the modules imported while active."""

    _instance = None

    @classmethod
    def get(cls):
        if cls._instance is None:
            cls._instance = cls()
            sys.addaudithook(cls._instance._hook)
            cls._instance._wrap_imports()
        return cls._instance

    def _wrap_imports(self):
        """The "import" audit event fires only when the import statement
        loads a module: not for importlib.import_module, and not for a
        module already loaded.  Both are inputs, so note every call."""
        import builtins
        import importlib

        real_import = builtins.__import__
        real_import_module = importlib.import_module
        tracker = self

        def tracked_import(name, globals=None, locals=None, fromlist=(),
                           level=0):
            mod = real_import(name, globals, locals, fromlist, level)
            if tracker.imported is not None:
                tracker._note_import(name, globals, fromlist, level)
            return mod

        def tracked_import_module(name, package=None):
            mod = real_import_module(name, package)
            if tracker.imported is not None:
                tracker._note_import(getattr(mod, "__name__", name), None,
                                     (), 0)
            return mod

        builtins.__import__ = tracked_import
        importlib.import_module = tracked_import_module

    def _note_import(self, name, globals, fromlist, level):
        try:
            if level:
                package = (globals or {}).get("__package__") or ""
                base = package.rsplit(".", level - 1)[0] if level > 1 \
                    else package
                name = base + "." + name if name else base
            self._note("import", name, depth=3)
            for sub in fromlist or ():
                if sub != "*":
                    self._note("import", name + "." + sub, depth=3)
        except Exception:
            pass                # an import hook must never break the test

    def __init__(self):
        self.opened = None
        self.imported = None
        self.by_module = None
        self.spawned = False    # the test started a process
        self.root_prefix = "/"
        self.sigs = {}          # path -> stat signature at its first open

    def start(self, by_module=None):
        """by_module: a project root; attribute each event to the project
        module whose top-level code is running (collection), instead of to
        one test."""
        self.opened, self.imported = set(), set()
        self.spawned = False
        self.by_module = {} if by_module else None
        self.root_prefix = os.path.join(by_module or "/", "")
        self.sigs = {}

    def stop(self):
        opened, imported = self.opened or set(), self.imported or set()
        by_module = self.by_module or {}
        self.opened = self.imported = self.by_module = None
        return opened, imported, by_module

    @staticmethod
    def _opened_path(args):
        path, mode, flags = args
        if isinstance(path, int):
            return None
        if mode is not None:
            if "r" not in mode and "+" not in mode:
                return None
        elif flags is not None and flags & os.O_ACCMODE == os.O_WRONLY:
            return None
        path = os.fsdecode(path)
        if not os.path.isabs(path):
            path = os.path.join(os.getcwd(), path)
        return path

    def _note(self, what, value, depth=2):
        """Adds value to the modules executing their top level now, or to
        the session-wide set when none is (a hook, pytest itself).  depth:
        frames from here up to the code that opened or imported."""
        if self.by_module is None:
            if what == "open":
                if value not in self.opened:
                    self.opened.add(value)
                    # A directory read (a listing) is not a file input, and
                    # its mtime moves whenever a file comes or goes in it.
                    if not os.path.isdir(value):
                        self.sigs[value] = tc_inputs.stat_sig(value)
            else:
                self.imported.add(value)
            return
        # The innermost project module running its top level owns it: the
        # modules further out import that one (statically, or as a noted
        # import of their own), so their closures reach it anyway.  Project
        # code outside any module's top level (a conftest hook) makes it an
        # input of every test.  With no project code on the stack at all it
        # is pytest's own work (importing test modules, reading sources and
        # its config), whose files are inputs already.
        f = sys._getframe(depth)
        project_code = False
        while f is not None:
            code = f.f_code
            if code.co_filename.startswith(self.root_prefix):
                if code.co_name == "<module>":
                    self.by_module.setdefault(code.co_filename,
                                              (set(), set()))[
                        0 if what == "open" else 1].add(value)
                    return
                project_code = True
            f = f.f_back
        if project_code:
            (self.opened if what == "open" else self.imported).add(value)

    def _hook(self, event, args):
        if self.opened is None:
            return
        try:
            if event == "open":
                path = self._opened_path(args)
                # Bytecode is read on behalf of its source; at collection,
                # source is read for imports, which are noted as such.
                if path is not None and not path.endswith(".pyc") and \
                        (self.by_module is None or not path.endswith(".py")):
                    self._note("open", path)
            elif event == "import":
                self._note("import", args[0])
            elif event in SPAWN_EVENTS and self.by_module is None:
                self.spawned = True
        except Exception:
            pass                # an audit hook must never break the test


class TcacheSession:
    def __init__(self, config):
        self.config = config
        self.root = os.path.realpath(str(config.rootpath))
        self.readonly = config.getoption("tcache_readonly")
        self.record_only = config.getoption("tcache_record_only")
        ttl = config.getoption("tcache_ttl")
        self.ttl_ms = parse_ttl(ttl) if ttl else 0
        self.env_names = list(config.getini("tcache_env")) + \
            list(config.getoption("tcache_env"))
        self.project = os.environ.get("TCACHE_PROJECT", "").encode()
        timeout = config.getoption("tcache_timeout") or 5.0
        self.client = proto.Client(config.getoption("tcache_socket"),
                                   timeout=timeout)
        self.worker = hasattr(config, "workerinput")
        self.digests = tc_inputs.Digests()
        self.collected = {}         # module file -> files its top level
                                    # opened or imported at collection
        self.collect_global = set() # files opened outside any module
        self.keys = {}              # nodeid -> (key, static paths)
        self.cached = {}            # nodeid -> LookupResult (a cached pass)
        self.reports = {}           # nodeid -> [reports] while it runs
        self.pending = []           # (record, static inputs) to send
        self.dirty = set()          # static inputs edited during the run
        self.never = set()          # nodeids marked tcache_never
        self.unavailable = None     # why the daemon is out of reach
        self.warnings = {}          # kind -> message, for the summary
        self.n_cached = 0
        self.saved_s = 0.0
        self.names = {}             # path -> its input name (bytes)
        self.static_blobs = {}      # static inputs -> (encoded, count)
        self.recorder = None
        self.record_timeout = max(timeout * 6, RECORD_TIMEOUT_MIN)
        self.tracker = Tracker.get()

    # --- the daemon ---

    def _lost(self, err):
        if self.unavailable is None:
            self.unavailable = str(err)
            self.warnings["lookup"] = "tcache: daemon unavailable (%s): " \
                "every test ran" % err
            self.client.close()

    def _controller(self):
        return self.config.pluginmanager.getplugin("dsession") is not None

    @pytest.hookimpl(trylast=True)
    def pytest_sessionstart(self, session):
        tr = self.config.pluginmanager.getplugin("terminalreporter")
        if tr is not None and not self.worker:
            self._wrap_summary(tr)
        if self._controller():
            # The workers ask; the controller only says once if nobody
            # will answer them.
            try:
                self.client.connect()
            except (proto.TcacheUnavailable, proto.TcacheError) as e:
                self._lost(e)
            self.client.close()

    # --- collection: inputs and keys ---

    @pytest.hookimpl(hookwrapper=True)
    def pytest_collection(self, session):
        """Notes what each module's top-level code opens or imports while
        the test modules are imported, so that a data file read or a module
        imported at import time is an input of every module importing it."""
        self.tracker.start(by_module=self.root)
        try:
            yield
        finally:
            self._collection_done()

    def _collection_done(self):
        """Ends the collection's tracking: at modifyitems (which runs inside
        pytest_collection), or when the collection ends without it."""
        if self.tracker.by_module is None:
            return
        opened, imported, by_module = self.tracker.stop()
        self.collect_global = self._project_files(opened, imported)
        for owner, (o, i) in by_module.items():
            owner = os.path.realpath(owner)
            if tc_inputs.inside(self.root, owner):
                self.collected[owner] = self._project_files(o, i)

    def _project_files(self, opened, imported):
        files = set()
        for p in opened:
            p = os.path.realpath(p)
            if tc_inputs.inside(self.root, p) and os.path.isfile(p) and \
                    "__pycache__" not in p and ".pytest_cache" not in p:
                files.add(p)
        for name in imported:
            mod = sys.modules.get(name)
            f = getattr(mod, "__file__", None)
            if f:
                f = os.path.realpath(f)
                if tc_inputs.inside(self.root, f) and os.path.isfile(f):
                    files.add(f)
        return files

    def _project_plugins(self):
        """Plugin modules of the project (-p NAME, pytest_plugins in a
        conftest): pytest imports them itself, so no import graph or hook
        sees them, yet they can change any test.  conftest.py files count
        only for the tests below them, elsewhere."""
        files = set()
        for plugin in self.config.pluginmanager.get_plugins():
            f = getattr(plugin, "__file__", None)
            if not f or os.path.basename(f) == "conftest.py":
                continue
            f = os.path.realpath(f)
            if tc_inputs.inside(self.root, f) and os.path.isfile(f):
                files.add(f)
        return files

    def _static_inputs(self, item, graph, common):
        path = os.path.realpath(str(item.path))
        files = set(common)
        for f in [path] + tc_inputs.conftests_above(self.root, path):
            files |= graph.closure(f)
        return frozenset(files)

    def _compute_keys(self, items):
        self._collection_done()
        cache = self.config.cache.get("tcache/imports", {}) \
            if getattr(self.config, "cache", None) else {}
        graph = tc_inputs.ImportGraph(self.root, self.digests, cache)
        for owner, files in self.collected.items():
            graph.add_edges(owner, files)
        common = set()
        if self.config.inipath:
            common.add(os.path.realpath(str(self.config.inipath)))
        for f in self.collect_global | self._project_plugins():
            common |= graph.closure(f)
        envd = proto.env_digest(tc_inputs.environment(
            self.config, self.root, self.env_names))
        self.env_inputs = [
            (proto.INPUT_ENV, os.fsencode(n),
             proto.env_value_digest(os.fsencode(os.environ[n])
                                    if n in os.environ else None))
            for n in sorted(set(self.env_names)) if not n.startswith("@")]
        by_module = {}      # item.path -> (static inputs, source digest)
        for item in items:
            entry = by_module.get(item.path)
            if entry is None:
                static = self._static_inputs(item, graph, common)
                entry = by_module[item.path] = (static, proto.source_digest(
                    (self._name(f), self.digests.digest(f)) for f in static))
            static, src = entry
            key = proto.derive_key(self.project, item.nodeid.encode(), src,
                                   envd)
            self.keys[item.nodeid] = (key, static)
        if getattr(self.config, "cache", None):
            self.config.cache.set("tcache/imports", graph.cache)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, session, config, items):
        if self._controller() or not items:
            return
        try:
            self._compute_keys(items)
        except (OSError, ValueError) as e:
            self._lost("cannot hash the inputs: %s" % e)
            self.keys.clear()
            return
        self.never = {it.nodeid for it in items
                      if it.get_closest_marker("tcache_never") is not None}
        if self.record_only:
            return
        wanted = [it for it in items if it.nodeid in self.keys and
                  it.nodeid not in self.never]
        try:
            results = self.client.lookup([self.keys[it.nodeid][0]
                                          for it in wanted])
        except (proto.TcacheUnavailable, proto.TcacheError) as e:
            self._lost(e)
            return
        for item, res in zip(wanted, results):
            if res.is_pass() and self._verify(res):
                self.cached[item.nodeid] = res

    def _verify(self, res):
        """The files the test opened last time still have their digests."""
        for kind, path, digest in res.inputs:
            if kind != proto.INPUT_FOUND:
                continue
            p = os.fsdecode(path)
            if not os.path.isabs(p):
                p = os.path.join(self.root, p)
            if proto.file_digest(p) != digest:
                return False
        return True

    # --- running ---

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item, nextitem):
        res = self.cached.get(item.nodeid)
        if res is None:
            return None
        from _pytest.runner import CallInfo
        ihook = item.ihook
        ihook.pytest_runtest_logstart(nodeid=item.nodeid,
                                      location=item.location)
        saved = res.duration_us / 1e6
        for when in ("setup", "call"):
            rep = pytest.TestReport(
                item.nodeid, item.location,
                {k: 1 for k in item.keywords}, "passed", None, when, [],
                0.0, [("tcache", "cached")])
            rep.tcache_cached = when == "call"
            rep.tcache_saved = saved if when == "call" else 0.0
            ihook.pytest_runtest_logreport(report=rep)
        # Tear down what earlier tests left that the next one does not
        # need, as pytest would after running this one; but not through
        # the teardown hooks, whose plugins expect a setup that never ran.
        item.user_properties.append(("tcache", "cached"))
        state = item.session._setupstate
        call = CallInfo.from_call(lambda: state.teardown_exact(nextitem),
                                  when="teardown")
        rep = pytest.TestReport.from_item_and_call(item, call)
        ihook.pytest_runtest_logreport(report=rep)
        ihook.pytest_runtest_logfinish(nodeid=item.nodeid,
                                       location=item.location)
        return True

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_logstart(self, nodeid, location):
        if nodeid in self.keys and nodeid not in self.cached:
            self.reports[nodeid] = []
            self.tracker.start()
        yield

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_logfinish(self, nodeid, location):
        yield
        reports = self.reports.pop(nodeid, None)
        if reports is None:
            return
        opened, imported, _ = self.tracker.stop()
        self._finished(nodeid, reports, opened, imported)

    def pytest_runtest_logreport(self, report):
        if getattr(report, "tcache_cached", False):
            self.n_cached += 1
            self.saved_s += getattr(report, "tcache_saved", 0.0)
        reports = self.reports.get(report.nodeid)
        if reports is not None:
            reports.append(report)

    def pytest_report_teststatus(self, report, config):
        if getattr(report, "tcache_cached", False):
            # A plain word: pytest colours a passed report green, and its
            # short summary (-rA) prints a (word, markup) pair raw.
            return "passed", "c", "PASSED (cached)"
        return None

    # --- recording ---

    def _finished(self, nodeid, reports, opened, imported):
        if self.readonly or self.unavailable is not None:
            return
        item_key = self.keys.get(nodeid)
        outcome = _outcome(reports)
        if item_key is None or outcome is None or nodeid in self.never:
            return
        key, static = item_key
        if not self.dirty.isdisjoint(static):
            return          # an input changed since the key was computed
        for path, sig in self.tracker.sigs.items():
            if tc_inputs.stat_sig(path) != sig and \
                    tc_inputs.inside(self.root, os.path.realpath(path)):
                return      # it changed after the test first opened it
        found = [(proto.INPUT_FOUND, self._name(f), self.digests.fresh(f))
                 for f in sorted(self._project_files(opened, imported) -
                                 static)]
        if self.tracker.spawned:
            # Every file of the project: read again only where its stat
            # signature moved, or a test would cost a full hash.
            done = static | {os.path.join(self.root, os.fsdecode(p))
                             for _, p, _ in found}
            found += [(proto.INPUT_FOUND, self._name(f),
                       self.digests.current(f))
                      for f in sorted(self._all_project_files() - done)]
        blob, n = self._static_blob(static)
        n += len(found)
        if n > proto.MAX_INPUTS:
            return          # too many to record: the test just runs
        duration_us = int(sum(r.duration for r in reports) * 1e6)
        self.pending.append((proto.encode_record(
            key=key, test=nodeid.encode(), project=self.project,
            root=os.fsencode(self.root), outcome=outcome,
            duration_us=duration_us, ttl_ms=self.ttl_ms, message=b"",
            inputs_blob=blob + proto.encode_inputs(found), ninputs=n),
            static))
        if len(self.pending) >= FLUSH_EVERY:
            self._flush()

    def _all_project_files(self):
        """Every file below the root (version control, caches, virtual
        environments and build output aside), listed once a session."""
        files = getattr(self, "_every_file", None)
        if files is None:
            files = set()
            # pytest's own temporary directories may lie below the root.
            basetemp = self.config.option.basetemp
            skip = {os.path.realpath(str(basetemp))} if basetemp else set()
            for dirpath, dirnames, filenames in os.walk(self.root):
                dirnames[:] = [d for d in dirnames
                               if d not in tc_inputs.SKIP_DIRS and
                               os.path.join(dirpath, d) not in skip]
                for fn in filenames:
                    if not fn.endswith(".pyc"):
                        f = os.path.join(dirpath, fn)
                        if os.path.isfile(f):
                            files.add(f)
            self._every_file = files
        return files

    def _name(self, path):
        name = self.names.get(path)
        if name is None:
            name = self.names[path] = tc_inputs.relpath(self.root, path)
        return name

    def _static_blob(self, static):
        """The encoded declared files and variables of a set of static
        inputs: computed once, shared by every test of a module."""
        entry = self.static_blobs.get(static)
        if entry is None:
            files = [(proto.INPUT_FILE, self._name(f), self.digests.digest(f))
                     for f in sorted(static)] + self.env_inputs
            entry = self.static_blobs[static] = (proto.encode_inputs(files),
                                                 len(files))
        return entry

    def _check_unchanged(self, files):
        """Marks dirty every file whose stat signature moved since it was
        hashed for a key.  The key was computed before each pending test
        started and this runs after it ended, so a file edited while a test
        ran (even edited back: its ctime moves) is caught."""
        for f in files:
            if f not in self.dirty and \
                    tc_inputs.stat_sig(f) != self.digests.signature(f):
                self.dirty.add(f)

    def _flush(self):
        batch, self.pending = self.pending, []
        if not batch or self.unavailable is not None:
            return
        self._check_unchanged(set().union(*(static for _, static in batch)))
        records = [rec for rec, static in batch
                   if self.dirty.isdisjoint(static)]
        if not records:
            return
        if self.recorder is None:
            self.recorder = Recorder(self.client.path, self.record_timeout)
        self.recorder.put(records)

    def pytest_sessionfinish(self, session):
        self._flush()
        self.client.close()
        r = self.recorder
        if r is not None:
            done = r.close(FINISH_WAIT)
            if r.error is not None or not done:
                self.warnings["record"] = \
                    "tcache: %d results not recorded (%s)" % (
                        r.lost if done else r.lost + r.queue.qsize(),
                        r.error or "tcached too slow: gave up after %ds"
                        % FINISH_WAIT)
        if self.worker and self.warnings:
            # xdist sends workeroutput to the controller, which prints.
            self.config.workeroutput["tcache_warnings"] = \
                dict(self.warnings)

    @pytest.hookimpl(optionalhook=True)
    def pytest_testnodedown(self, node, error):
        for kind, msg in getattr(node, "workeroutput", {}).get(
                "tcache_warnings", {}).items():
            self.warnings.setdefault(kind, msg)

    # --- reporting ---

    def _wrap_summary(self, tr):
        """"12 passed" becomes "12 passed (10 cached, 4m12s saved)"."""
        build = tr.build_summary_stats_line

        def build_summary_stats_line():
            parts, color = build()
            if self.n_cached:
                note = " (%d cached, %s saved)" % (
                    self.n_cached, format_duration(self.saved_s))
                parts = [(text + note, markup) if text.endswith(" passed")
                         else (text, markup) for text, markup in parts]
            return parts, color
        tr.build_summary_stats_line = build_summary_stats_line

    @pytest.hookimpl(trylast=True)
    def pytest_terminal_summary(self, terminalreporter):
        if self.worker:
            return
        for kind in sorted(self.warnings):
            terminalreporter.write_line(self.warnings[kind], yellow=True)


def _outcome(reports):
    """The outcome to record, or None when the test did not finish."""
    by = {r.when: r for r in reports}
    setup, call, teardown = by.get("setup"), by.get("call"), by.get("teardown")
    if setup is None or teardown is None:
        return None
    if setup.failed or teardown.failed:
        return proto.ERRORED
    if setup.skipped:
        return proto.SKIP
    if call is None:
        return None
    if call.failed:
        return proto.FAIL
    if call.skipped or hasattr(call, "wasxfail"):
        return proto.SKIP   # skip, xfail, and xpass are never cached
    return proto.PASS if call.passed else None


def pytest_report_header(config):
    s = config.pluginmanager.getplugin("tcache-session")
    if s is None or s.worker:
        return None
    mode = "readonly" if s.readonly else \
        "record-only" if s.record_only else "on"
    return "tcache: %s, socket %s" % (mode, s.client.path)
