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
import threading
import time

import pytest

from . import inputs as tc_inputs
from . import proto
from .recorder import Recorder
from .tracking import Tracker

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
    g.addoption("--tcache-precision", choices=PRECISIONS, default=None,
                help="file: a test depends on every file it imports; "
                     "executed: on the interface of what it imports and "
                     "the whole of the files whose code it ran (default: "
                     "%s)" % DEFAULT_PRECISION)
    parser.addini("tcache", type="bool", default=False,
                  help="turn tcache on, as --tcache does")
    parser.addini("tcache_precision", default=None,
                  help="file or executed, as --tcache-precision")
    parser.addini("tcache_env", type="args", default=[],
                  help="environment variables that are inputs of every test")


PRECISIONS = ("file", "executed")
DEFAULT_PRECISION = "executed"


def _enabled(config, option):
    on = option("tcache") or config.getini("tcache")
    return bool(on) and os.environ.get("TCACHE_DISABLE") != "1"


def _precision(config, option):
    value = option("tcache_precision") or config.getini("tcache_precision") \
        or DEFAULT_PRECISION
    if value not in PRECISIONS:
        raise pytest.UsageError("tcache_precision: %r is not one of %s"
                                % (value, ", ".join(PRECISIONS)))
    return value


# When the session began, before any project module was imported: a source
# file changed after it may not be the code that runs.
_SESSION_NS = None


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_load_initial_conftests(early_config, parser, args):
    """Starts watching before the first conftest is imported: what a
    conftest's imports run and read at import time (a decorator, a data
    file) must count, and they run before pytest_configure."""
    global _SESSION_NS
    _SESSION_NS = time.time_ns()
    ns = early_config.known_args_namespace

    def option(name):
        return getattr(ns, name, None)
    try:
        if _enabled(early_config, option):
            _start_imports(early_config, _precision(early_config, option))
    except pytest.UsageError:
        pass                    # said again, properly, at configure
    yield


def _start_imports(config, precision):
    tracker = Tracker.get()
    tracer = None
    root = os.path.realpath(str(config.rootpath))
    if precision == "executed":
        from .tracer import make_tracer
        tracer = make_tracer(os.path.join(root, ""))
    tracker.start_imports(root, tracer)
    return tracker


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "tcache_never: always run this test, never cache it")
    if not _enabled(config, config.getoption):
        return
    precision = _precision(config, config.getoption)
    config.pluginmanager.register(TcacheSession(config, precision),
                                  "tcache-session")


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


class StaticInputs:
    """A test's declared files: whole ones and interface-only ones."""

    __slots__ = ("full", "iface", "paths")

    def __init__(self, full, iface):
        self.full, self.iface = full, iface
        self.paths = full | iface

    def __eq__(self, other):
        return self.full == other.full and self.iface == other.iface

    def __hash__(self):
        return hash((self.full, self.iface))


class TcacheSession:
    def __init__(self, config, precision):
        self.config = config
        self.precision = precision
        self.precise = precision == "executed"
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
        self.memo = tc_inputs.Memo.load(self.root)
        self.digests = tc_inputs.Digests(_SESSION_NS, self.memo)
        self.collected = {}         # module file -> Record of what its
                                    # top level touched at import
        self.collect_global = None  # Record of what ran outside them
        self.graph = None
        self.keys = {}              # nodeid -> (key, StaticInputs)
        self.cached = {}            # nodeid -> duration_us of a cached pass
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
        self.encoded_whole = {}     # path -> _declared's entry, whole
        self.encoded_iface = {}     # path -> its entry as an interface
        self.found_digests = {}     # input name -> digest, for _verify
        self.recorder = None
        self.record_timeout = max(timeout * 6, RECORD_TIMEOUT_MIN)
        self.tracker = Tracker.get()
        self.item = None            # the item running now
        self.fixtures = {}          # FixtureDef -> Record of its setup
        self.requested = []         # FixtureDefs the running test got
        self.threads = ()           # threads alive when the test began
        self.code_files = {}        # id(code) -> (code, body file or None)

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
        """Notes what each module's top-level code opens, imports or runs
        while the test modules are imported (if that did not start before
        the conftests were), so that a data file read, a module imported
        or a function run at import time is an input of every test whose
        modules import that module."""
        if not self.tracker.importing():
            _start_imports(self.config, self.precision)
        try:
            yield
        finally:
            self._collection_done()

    def _collection_done(self):
        """Ends the collection's tracking: at modifyitems (which runs inside
        pytest_collection), or when the collection ends without it."""
        if not self.tracker.importing():
            return
        self.collect_global, by_module = self.tracker.stop_imports()
        for owner, rec in by_module.items():
            owner = os.path.realpath(owner)
            if tc_inputs.inside(self.root, owner):
                prev = self.collected.get(owner)
                if prev is not None:
                    rec.merge(prev)
                self.collected[owner] = rec

    def _split(self, rec, real=None):
        """(modules imported, files read or run) of a Record, as project
        files.  real: a dict of the real paths already resolved."""
        return (self._project_files(rec.loaded, rec.imported, real),
                self._project_files(rec.opened, (), real) |
                self._body_files(rec.codes))

    def _body_files(self, codes):
        """The project files whose function bodies these code objects
        are (a comprehension or lambda at module or class level is part
        of the interface, not a body)."""
        files = set()
        memo = self.code_files
        for code in codes:
            entry = memo.get(id(code))
            if entry is None:
                entry = memo[id(code)] = (code, self._body_file(code))
            if entry[1] is not None:
                files.add(entry[1])
        return files

    def _body_file(self, code):
        f = os.path.realpath(code.co_filename)
        if not (tc_inputs.inside(self.root, f) and f.endswith(".py") and
                os.path.isfile(f)):
            return None
        if self.graph is not None and \
                not self.graph.summary(f).in_body(code):
            return None
        return f

    def _project_files(self, opened, imported, real=None):
        """The files of the project among paths opened and modules
        imported.  real: a dict of paths already judged, path -> its real
        path if it is a project file, else None (only while nothing runs
        between two calls that could make or remove a file: collection)."""
        files = set()
        if real is None:
            real = {}
        for p in opened:
            r = real.get(p, False)
            if r is False:
                r = os.path.realpath(p)
                if not (tc_inputs.inside(self.root, r) and
                        (os.path.isfile(r) or self._listed_dir(r)) and
                        "__pycache__" not in r and
                        ".pytest_cache" not in r):
                    r = None
                real[p] = r
            if r is not None:
                files.add(r)
        for name in imported:
            mod = sys.modules.get(name)
            f = getattr(mod, "__file__", None)
            if f:
                # Judged otherwise than an opened path: keyed apart.
                r = real.get((f,), False)
                if r is False:
                    r = os.path.realpath(f)
                    if not (tc_inputs.inside(self.root, r) and
                            os.path.isfile(r)):
                        r = None
                    real[(f,)] = r
                if r is not None:
                    files.add(r)
        return files

    def _listed_dir(self, path):
        """Whether a directory listed is an input: not pytest's temporary
        directories (tmp_path lists them), which may lie below the root."""
        if not os.path.isdir(path):
            return False
        basetemp = self.config.option.basetemp
        return not (basetemp and tc_inputs.inside(
            os.path.realpath(str(basetemp)), path))

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
        """common: (roots, whole files) of every test."""
        path = os.path.realpath(str(item.path))
        own = [path] + tc_inputs.conftests_above(self.root, path)
        full, iface = graph.inputs(own + list(common[0]),
                                   own + list(common[1]), self.precise)
        return StaticInputs(full, iface)

    def _common_inputs(self, graph, real=None):
        """(roots, whole files) of every test: the config file, project
        plugins, and what ran or was read at collection outside any
        module's top level."""
        full = set(self._project_plugins())
        if self.config.inipath:
            full.add(os.path.realpath(str(self.config.inipath)))
        imported, touched = self._split(self.collect_global, real)
        full |= touched
        return frozenset(full | imported), frozenset(full)

    def _compute_keys(self, items):
        self._collection_done()
        graph = self.graph = tc_inputs.ImportGraph(
            self.root, self.digests, self.memo.parsed, self.memo.parsed_used)
        real = {}
        for owner, rec in self.collected.items():
            graph.add_edges(owner, *self._split(rec, real))
        common = self._common_inputs(graph, real)
        envd = proto.env_digest(tc_inputs.environment(
            self.config, self.root, self.env_names, self.memo) +
            [(b"@precision", self.precision.encode())])
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
                entry = by_module[item.path] = (
                    static, proto.source_digest_encoded(
                        self._declared(static)))
            static, src = entry
            key = proto.derive_key(self.project, item.nodeid.encode(), src,
                                   envd)
            self.keys[item.nodeid] = (key, static)

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
        if self.client.readonly and not self.readonly:
            # A read-only peer's records would all be refused.
            self.readonly = True
            self.warnings["readonly"] = "tcache: tcached serves this user " \
                "read-only: results are looked up, not recorded"
        for item, res in zip(wanted, results):
            if res.is_pass() and self._verify(res):
                self.cached[item.nodeid] = res.duration_us

    def _verify(self, res):
        """The files the test opened or ran last time still have their
        digests (each read once a session: many tests share them)."""
        found = self.found_digests
        for kind, path, digest in res.inputs:
            if kind != proto.INPUT_FOUND:
                continue
            d = found.get(path)
            if d is None:
                p = os.fsdecode(path)
                if not os.path.isabs(p):
                    p = os.path.join(self.root, p)
                d = found[path] = self.digests.digest(p)
            if d != digest:
                return False
        return True

    # --- running ---

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_protocol(self, item, nextitem):
        duration_us = self.cached.get(item.nodeid)
        if duration_us is None:
            self.item = item
            return None
        from _pytest.runner import CallInfo
        ihook = item.ihook
        nodeid, location = item.nodeid, item.location
        ihook.pytest_runtest_logstart(nodeid=nodeid, location=location)
        saved = duration_us / 1e6
        # As pytest's own reports do, the three share the item's list.
        properties = item.user_properties
        properties.append(("tcache", "cached"))
        for when in ("setup", "call"):
            rep = pytest.TestReport(
                nodeid, location, {k: 1 for k in item.keywords}, "passed",
                None, when, [], 0.0, properties)
            rep.tcache_cached = when == "call"
            rep.tcache_saved = saved if when == "call" else 0.0
            ihook.pytest_runtest_logreport(report=rep)
        # Tear down what earlier tests left that the next one does not
        # need, as pytest would after running this one; but not through
        # the teardown hooks, whose plugins expect a setup that never ran.
        state = item.session._setupstate
        call = CallInfo.from_call(lambda: state.teardown_exact(nextitem),
                                  when="teardown")
        rep = pytest.TestReport.from_item_and_call(item, call)
        ihook.pytest_runtest_logreport(report=rep)
        ihook.pytest_runtest_logfinish(nodeid=nodeid, location=location)
        return True

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_logstart(self, nodeid, location):
        if nodeid in self.keys and nodeid not in self.cached:
            self.reports[nodeid] = []
            self.tracker.start_test()
            self.threads = self._other_threads()
        yield

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_logfinish(self, nodeid, location):
        yield
        reports = self.reports.pop(nodeid, None)
        if reports is None:
            return
        rec = self.tracker.stop_test()
        rec.partial = rec.partial or not self._tracked()
        item, self.item = self.item, None
        if item is not None and item.nodeid == nodeid:
            for fixturedef in self._fixtures_of(item) + self.requested:
                done = self.fixtures.get(fixturedef)
                if done is not None:
                    rec.merge(done)
        self.requested = []
        self._finished(nodeid, reports, rec)

    @pytest.hookimpl(hookwrapper=True, tryfirst=True)
    def pytest_runtest_teardown(self, item, nextitem):
        """The fixtures the test got, request.getfixturevalue() included,
        noted before pytest drops the test's request."""
        request = getattr(item, "_request", None)
        self.requested = list(getattr(request, "_fixture_defs", {}).values())
        yield

    @pytest.hookimpl(hookwrapper=True)
    def pytest_fixture_setup(self, fixturedef, request):
        """A fixture's value outlives its setup: every test that gets it
        depends on what the setup opened and ran."""
        if not self.tracker.testing():
            yield
            return
        self.tracker.push()
        try:
            yield
        finally:
            rec = self.tracker.pop()
            rec.partial = rec.partial or not self._tracked()
            self.fixtures[fixturedef] = rec

    @staticmethod
    def _fixtures_of(item):
        """The fixture definitions a test requests by name, transitively."""
        defs = []
        info = getattr(item, "_fixtureinfo", None)
        for group in getattr(info, "name2fixturedefs", {}).values():
            defs.extend(group)
        return defs

    def _other_threads(self):
        """Threads that may run code the tracer does not see: every one
        but this and the recorder, when the tracer does not follow threads
        that already run."""
        tracer = self.tracker.tracer
        if tracer is None or getattr(tracer, "all_threads", False):
            return ()
        me = threading.current_thread()
        rec = self.recorder.thread if self.recorder is not None else None
        return [t for t in threading.enumerate() if t is not me and
                t is not rec]

    def _tracked(self):
        """Whether the tracer saw every function that ran since the test
        began: nobody replaced its hook, and no thread that was there
        before the test is still running."""
        tracer = self.tracker.tracer
        if tracer is None:
            return True
        if not tracer.intact():
            return False
        return not any(t.is_alive() for t in self.threads)

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

    def _finished(self, nodeid, reports, rec):
        if self.readonly or self.unavailable is not None:
            return
        item_key = self.keys.get(nodeid)
        outcome = _outcome(reports)
        if item_key is None or outcome is None or nodeid in self.never:
            return
        key, static = item_key
        if not self.dirty.isdisjoint(static.paths):
            return          # an input changed since the key was computed
        for path, sig in rec.sigs.items():
            if tc_inputs.stat_sig(path) != sig and \
                    tc_inputs.inside(self.root, os.path.realpath(path)):
                return      # it changed after the test first opened it
        found, code = self._found(rec, static)
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
            static.paths | code))
        if len(self.pending) >= FLUSH_EVERY:
            self._flush()

    def _found(self, rec, static):
        """(discovered inputs, source files among them whose code ran).
        Files read count whole; so do files whose function bodies ran
        (as their digest when first read: the code that ran, unless the
        file changed since, which the flush checks); a module imported
        counts as its interface, which is declared when it is in the
        static closure, and whole otherwise."""
        imported = self._project_files(rec.loaded, rec.imported)
        opened = self._project_files(rec.opened, ())
        code = self._body_files(rec.codes)
        if rec.partial:
            code |= static.iface    # as if every imported file had run
        code |= imported - static.paths
        code -= static.full
        opened -= static.full | code
        found = [(proto.INPUT_FOUND, self._name(f), self.digests.digest(f))
                 for f in sorted(code)]
        found += [(proto.INPUT_FOUND, self._name(f), self.digests.current(f))
                  for f in sorted(opened)]
        if rec.spawned:
            # Every file of the project: read again only where its stat
            # signature moved, or a test would cost a full hash.
            done = static.full | code | opened
            found += [(proto.INPUT_FOUND, self._name(f),
                       self.digests.current(f))
                      for f in sorted(self._all_project_files() - done)]
        return found, code

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

    def _declared(self, static):
        """(name, str(name) || digest, kind) of each declared file, whole
        or interface, sorted by name: the parts of the source digest and
        of a record's input list, each encoded once a session (the tests
        of a suite share most of their files)."""
        whole, iface = self.encoded_whole, self.encoded_iface
        items = [whole[f] if f in whole else self._encode(f, False)
                 for f in static.full]
        items += [iface[f] if f in iface else self._encode(f, True)
                  for f in static.iface]
        items.sort()
        return items

    def _encode(self, path, interface):
        name = self._name(path)
        if interface:
            entry = (name, proto.encode_str(name) +
                     self.graph.summary(path).digest, proto.INPUT_INTERFACE)
            self.encoded_iface[path] = entry
        else:
            entry = (name, proto.encode_str(name) +
                     self.digests.digest(path), proto.INPUT_FILE)
            self.encoded_whole[path] = entry
        return entry

    def _static_blob(self, static):
        """The encoded declared files and variables of a set of static
        inputs: computed once, shared by every test of a module."""
        entry = self.static_blobs.get(static)
        if entry is None:
            files = self._declared(static)
            blob = b"".join([bytes((kind,)) + enc
                             for _, enc, kind in files]) + \
                proto.encode_inputs(self.env_inputs)
            entry = self.static_blobs[static] = (
                blob, len(files) + len(self.env_inputs))
        return entry

    def _check_unchanged(self, files):
        """Marks dirty every file whose stat signature moved since it was
        hashed for a key.  The key was computed before each pending test
        started and this runs after it ended, so a file edited while a test
        ran (even edited back: its ctime moves) is caught."""
        for f in files:
            if f not in self.dirty and \
                    (f in self.digests.late or
                     tc_inputs.stat_sig(f) != self.digests.signature(f)):
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
        self.memo.save()
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
    precision = s.precision
    tracer = s.tracker.tracer
    if tracer is not None:
        precision += " (%s tracer)" % tracer.kind
    return "tcache: %s, precision %s, socket %s" % (mode, precision,
                                                    s.client.path)
