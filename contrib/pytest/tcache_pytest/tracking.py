"""What the code under test touched: files opened for reading, modules
imported, processes started (an audit hook and wrappers around the import
functions), and, with an execution tracer, the function code objects that
ran.

Two phases.  While modules are imported (collection, and before it the
initial conftests), each event belongs to the project module whose
top-level code is running: a data file read or a helper called at import
time is an input of every test that imports that module.  While a test
runs, each event belongs to the test, and to the fixture being set up, if
any: a fixture's value outlives its setup, so the tests that reuse it
depend on what its setup touched.
"""

import os
import sys
import types
import urllib.parse

from . import inputs as tc_inputs

# Audit events of a new process or program: what it reads, no hook of ours
# sees, so a test that starts one depends on every file of the project.
SPAWN_EVENTS = frozenset(("subprocess.Popen", "os.system", "os.posix_spawn",
                          "os.exec", "os.spawn", "os.fork", "os.forkpty",
                          "pty.spawn"))

# Audit events of a file opened by C code (no "open" event): a database
# sqlite3 connects to, a library ctypes maps.
C_OPEN_EVENTS = frozenset(("sqlite3.connect", "ctypes.dlopen"))

# Audit events of a directory listed: which files it holds is an input.
LIST_EVENTS = frozenset(("os.listdir", "os.scandir"))

IMPORT_MACHINERY = ("<frozen importlib._bootstrap_external>",
                    "<frozen importlib._bootstrap>")

# The events _hook acts on.  It is called for every audit event of the
# process, and on 3.11 reading a frame's f_code is one, so the others must
# cost a set lookup and nothing more.
WATCHED_EVENTS = frozenset(("open", "import", "exec")) | SPAWN_EVENTS | \
    C_OPEN_EVENTS | LIST_EVENTS

# A frame of such code object is resumed from wherever its generator is
# next asked for a value: its callers change while it lives.
RESUMABLE = 0x20 | 0x80 | 0x200   # CO_GENERATOR, CO_COROUTINE,
                                  # CO_ASYNC_GENERATOR


def _loaded(name, fromlist):
    """Whether importing name (and fromlist from it) can run no code: the
    module is loaded and has every name asked for (a missing one may be a
    submodule to load, or come from a module __getattr__)."""
    mod = sys.modules.get(name)
    if mod is None:
        return False
    if fromlist:
        names = getattr(mod, "__dict__", None)
        if names is None:
            return False
        for sub in fromlist:
            # "*" may load the submodules named in __all__.
            if sub == "*" or sub not in names:
                return False
    return True


class Record:
    """What one test, fixture setup, or importing module touched."""

    __slots__ = ("opened", "imported", "loaded", "sigs", "spawned",
                 "codes", "partial")

    def __init__(self):
        self.opened = set()     # paths opened for reading
        self.imported = set()   # module names
        # Python sources the import machinery read: a module loaded by path
        # (spec_from_file_location + exec_module) has no name that leads to
        # its file, and an import_module bound before ours is not noted.
        self.loaded = set()
        self.sigs = {}          # path -> stat signature at its first open
        self.spawned = False    # started a process
        self.codes = []         # function code objects that ran
        self.partial = False    # code may have run that no tracer saw

    def merge(self, other):
        self.opened |= other.opened
        self.imported |= other.imported
        self.loaded |= other.loaded
        for path, sig in other.sigs.items():
            self.sigs.setdefault(path, sig)
        self.spawned = self.spawned or other.spawned
        self.codes.extend(other.codes)
        self.partial = self.partial or other.partial


class Tracker:
    """One per process: audit hooks cannot be removed."""

    _instance = None

    @classmethod
    def get(cls):
        if cls._instance is None:
            cls._instance = cls()
            sys.addaudithook(cls._instance._hook)
            cls._instance._wrap_imports()
        return cls._instance

    def __init__(self):
        self.rec = None         # the Record being filled; None: idle
        self.stack = []         # enclosing Records (fixture setups)
        self.tracer = None
        self.root_prefix = None  # while importing: the project root + sep
        self.by_module = None   # while importing: module file -> Record
        self.owner = None       # while importing: the module running now
        self.segmenting = False  # importing, with a tracer
        self._file_verdicts = {}   # module __file__ -> under the root
        self._owner_frame = None   # the frame that imported last, and
        self._owner_rec = None     # the Record its imports went to
        self._module_frame = None  # the frame _innermost_module saw last,
        self._module_file = None   # and its answer

    # --- phases ---

    def start_imports(self, root, tracer=None):
        """Starts the import phase (once: it may begin before the initial
        conftests are loaded, long before the collection)."""
        if self.by_module is not None:
            return
        self.tracer = tracer
        self.root_prefix = os.path.join(root, "")
        self.by_module = {}
        self.rec = Record()
        self._module_frame = self._module_file = None
        self.owner = self._innermost_module(sys._getframe(1))
        self._owner_frame = self._owner_rec = None
        self.segmenting = tracer is not None
        if tracer is not None:
            tracer.start()

    def importing(self):
        return self.by_module is not None

    def stop_imports(self):
        """-> (Record of what ran outside any module's top level, {module
        file: Record})."""
        if self.by_module is None:
            return Record(), {}
        if self.segmenting:
            self._boundary(exiting=True, last=True)
        rec, by_module = self.rec, self.by_module
        self.rec = self.by_module = None
        # A frame holds its locals: keep none past the collection.
        self._owner_frame = self._owner_rec = None
        self._module_frame = self._module_file = None
        self.segmenting = False
        return rec, by_module

    def start_test(self):
        self.rec, self.stack = Record(), []
        tracer = self.tracer
        if tracer is not None:
            # What ran since the last test (a conftest hook, pytest's
            # collection_finish) can leave state behind: it counts for the
            # next test, which is conservative.
            self.rec.codes.extend(tracer.take())
            if not tracer.intact():
                # A test before this one replaced the hook: install it
                # again, or every later test would fall back too.
                tracer.stop()
                tracer.start()
                self.rec.partial = True

    def stop_test(self):
        rec = self.rec
        while self.stack:
            rec = self.pop()
        if self.tracer is not None:
            rec.codes.extend(self.tracer.take())
        self.rec = None
        return rec

    def testing(self):
        return self.rec is not None and self.by_module is None

    def push(self):
        """A fixture's setup begins: its events get a Record of their own."""
        if self.tracer is not None:
            self.rec.codes.extend(self.tracer.take())
        self.stack.append(self.rec)
        self.rec = Record()

    def pop(self):
        """The setup ended: -> its Record, also merged into the enclosing
        one (the test, or the fixture that requested this one)."""
        rec = self.rec
        if self.tracer is not None:
            rec.codes.extend(self.tracer.take())
        self.rec = self.stack.pop()
        self.rec.merge(rec)
        return rec

    # --- the import phase: who owns what ---

    def _innermost_module(self, frame):
        """The file of the innermost project module on the stack from frame
        outwards that is running its top level, or None.  Remembered for
        the frame asked about last, as _owner_of does."""
        if frame is self._module_frame:
            return self._module_file
        prefix = self.root_prefix
        found = None
        f = frame
        first = None
        while f is not None:
            code = f.f_code
            if first is None:
                first = code
            if code.co_name == "<module>" and \
                    code.co_filename.startswith(prefix):
                found = code.co_filename
                break
            f = f.f_back
        if first is not None and not first.co_flags & RESUMABLE:
            self._module_frame, self._module_file = frame, found
        return found

    def _owner_record(self, owner):
        if owner is None:
            return self.rec
        rec = self.by_module.get(owner)
        if rec is None:
            rec = self.by_module[owner] = Record()
        return rec

    def _boundary(self, exiting=False, starts=None, last=False):
        """An import begins or ends, or a module's top level starts.
        Between two boundaries the code that ran belongs to the module
        that was running after the first one or (a module may have ended
        in between) the one running at the second; starts: the file of
        the module about to run, when known; last: the import phase ends,
        and what ran must go to an owner now."""
        now = self._innermost_module(sys._getframe(2))
        if now == self.owner and (starts is None or starts == now) and \
                not last:
            # The same module before and after: what ran so far stays in
            # the tracer, to go to this owner at the next boundary that
            # changes it (and perhaps to the next one too, which is only
            # more conservative).  Each take() starts an interval in which
            # every code object is noted anew.
            return
        if self.tracer is not None:
            codes = self.tracer.take()
            if codes:
                self._owner_record(self.owner).codes.extend(codes)
                # When an import returns, what ran since the last boundary
                # ran inside it: the importer (now) only gets it if it is
                # a module; project code outside any (None) did not run.
                if now != self.owner and (now is not None or not exiting):
                    self._owner_record(now).codes.extend(codes)
        self.owner = starts if starts is not None else now

    # --- the hooks ---

    def _wrap_imports(self):
        """The "import" audit event fires only when the import statement
        loads a module: not for importlib.import_module, and not for a
        module already loaded.  Both are inputs, so note every call; while
        modules are imported, each call is also a boundary between the
        code of two modules."""
        import builtins
        import importlib

        real_import = builtins.__import__
        real_import_module = importlib.import_module
        tracker = self

        def tracked_import(name, globals=None, locals=None, fromlist=(),
                           level=0):
            # An import that runs no module's code (most of them: the
            # module is loaded) is no boundary.
            segment = tracker.segmenting and not (
                level == 0 and _loaded(name, fromlist))
            if segment:
                tracker._boundary()
            try:
                mod = real_import(name, globals, locals, fromlist, level)
            finally:
                if segment:
                    tracker._boundary(exiting=not fromlist)
            if tracker.rec is not None:
                tracker._note_import(name, globals, fromlist, level)
            return mod

        def tracked_import_module(name, package=None):
            if tracker.segmenting:
                tracker._boundary()
            try:
                mod = real_import_module(name, package)
            finally:
                if tracker.segmenting:
                    tracker._boundary(exiting=True)
            if tracker.rec is not None:
                tracker._note_import(getattr(mod, "__name__", name), None,
                                     (), 0)
            return mod

        builtins.__import__ = tracked_import
        importlib.import_module = tracked_import_module
        # importlib.metadata bound the real one at its import, before ours:
        # EntryPoint.load() would load a module unnoted, or, when another
        # test loaded it first, find it without a trace.
        import importlib.metadata
        if importlib.metadata.import_module is real_import_module:
            importlib.metadata.import_module = tracked_import_module

    def _note_import(self, name, globals, fromlist, level):
        """Called by the import wrappers after a successful import, from
        the importer's frame two levels up."""
        try:
            if level:
                package = (globals or {}).get("__package__") or ""
                base = package.rsplit(".", level - 1)[0] if level > 1 \
                    else package
                name = base + "." + name if name else base
            if self.by_module is None:
                imported = self.rec.imported
                imported.add(name)
                for sub in fromlist or ():
                    if sub != "*":
                        imported.add(name + "." + sub)
                return
            # While modules are imported (tens of thousands of imports,
            # mostly of other packages by other packages), only a module
            # of the project needs an owner, whose search walks the stack.
            names = [name] if self._maybe_project(name, True) else []
            for sub in fromlist or ():
                if sub != "*" and self._maybe_project(name + "." + sub,
                                                      False):
                    names.append(name + "." + sub)
            if names:
                rec = self._owner_of(sys._getframe(2))
                if rec is not None:
                    rec.imported.update(names)
        except Exception:
            pass                # an import hook must never break the test

    def _maybe_project(self, name, imported):
        """Whether a module name just imported can stand for a file of the
        project when the collection ends (the plugin then resolves it
        through sys.modules).  imported: name is what the import statement
        loaded, not a name of its fromlist.

        The importer holds the module object it got now: one that is not
        the project's stays so, even if another module takes its name in
        sys.modules later (that import is noted for whoever makes it).  A
        fromlist name that is no module now is an attribute: the importer
        holds that, and its module is noted beside it.  A name that should
        be loaded and is not, or a module whose file cannot be told from
        its namespace, is kept."""
        mod = sys.modules.get(name)
        if mod is None:
            return imported
        if not isinstance(mod, types.ModuleType):
            return True
        ns = mod.__dict__
        if "__file__" not in ns:
            spec = ns.get("__spec__")
            return getattr(spec, "origin", None) not in ("built-in",
                                                         "frozen")
        f = ns["__file__"]
        if not isinstance(f, str):
            return f is not None
        verdict = self._file_verdicts.get(f)
        if verdict is None:
            verdict = self._file_verdicts[f] = tc_inputs.inside(
                self.root_prefix[:-1], os.path.realpath(f))
        return verdict

    def _owner_of(self, frame):
        """The Record that what frame's code opens or imports belongs to
        while modules are imported (see _note), or None: pytest's own
        work.  The answer depends only on
        the frames from frame outwards, which stay the same while frame
        runs, unless it is a generator's: a frame that imports again gets
        the answer it got last time."""
        if frame is self._owner_frame:
            return self._owner_rec
        rec = None
        project_code = False
        f = frame
        first = None
        while f is not None:
            code = f.f_code
            if first is None:
                first = code
            if code.co_filename.startswith(self.root_prefix):
                if code.co_name == "<module>":
                    rec = self._owner_record(code.co_filename)
                    break
                project_code = True
            f = f.f_back
        else:
            if project_code:
                rec = self.rec
        if first is not None and not first.co_flags & RESUMABLE:
            self._owner_frame, self._owner_rec = frame, rec
        return rec

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

    @staticmethod
    def _c_opened_path(event, args):
        """The file a C_OPEN_EVENTS event opens, or None: an in-memory
        database, or a library name the dynamic loader searches for."""
        name = args[0] if args else None
        if name is None or isinstance(name, int):
            return None
        name = os.fsdecode(name)
        if event == "sqlite3.connect":
            if name in ("", ":memory:"):
                return None
            if name.startswith("file:"):
                # A URI (uri=True; the event does not say, the name does).
                name = urllib.parse.unquote(
                    urllib.parse.urlsplit(name).path)
                if name in ("", ":memory:"):
                    return None
        elif "/" not in name:
            return None
        if not os.path.isabs(name):
            name = os.path.join(os.getcwd(), name)
        return name

    def _note(self, what, value, depth=2):
        """Adds value to the Record it belongs to.  depth: frames from here
        up to the code that opened or imported."""
        if self.by_module is None:
            rec = self.rec
            if what == "open":
                if value not in rec.opened:
                    rec.opened.add(value)
                    # A directory listed counts by its names (digests of
                    # inputs), not by its stat signature, which moves
                    # whenever a file in it is rewritten by rename.
                    if not os.path.isdir(value):
                        rec.sigs[value] = tc_inputs.stat_sig(value)
            elif what == "load":
                rec.loaded.add(value)
            else:
                rec.imported.add(value)
            return
        # The innermost project module running its top level owns it: the
        # modules further out import that one (statically, or as a noted
        # import of their own), so their closures reach it anyway.  Project
        # code outside any module's top level (a conftest hook) makes it an
        # input of every test.  With no project code on the stack at all it
        # is pytest's own work (importing test modules, reading sources and
        # its config), whose files are inputs already.
        rec = self._owner_of(sys._getframe(depth))
        if rec is None:
            return
        (rec.opened if what == "open" else
         rec.loaded if what == "load" else rec.imported).add(value)

    def _hook(self, event, args):
        if event not in WATCHED_EVENTS or self.rec is None:
            return
        try:
            if event == "open":
                path = self._opened_path(args)
                if path is None or path.endswith(".pyc"):
                    return
                # Source read by the import system is noted as an import;
                # any other read of a source file (inspect, linecache) is
                # a read of the whole file.
                if path.endswith(".py") and \
                        sys._getframe(1).f_code.co_filename in \
                        IMPORT_MACHINERY:
                    # Counted as an import (its interface, when the import
                    # graph reaches it), not as a read.  While modules are
                    # imported, only the project's need an owner.
                    if self.by_module is None or \
                            path.startswith(self.root_prefix):
                        self._note("load", path)
                    return
                self._note("open", path)
            elif event == "import":
                self._note("import", args[0])
            elif event in LIST_EVENTS:
                # The import system lists the directories it searches; the
                # modules it finds there are noted by name.
                if sys._getframe(1).f_code.co_filename in IMPORT_MACHINERY:
                    return
                path = args[0] if args else None
                if path is None:
                    path = "."
                if not isinstance(path, int):
                    self._note("open", os.path.abspath(os.fsdecode(path)))
            elif event in C_OPEN_EVENTS:
                path = self._c_opened_path(event, args)
                if path is not None:
                    self._note("open", path)
            elif event == "exec":
                if self.segmenting:
                    code = args[0]
                    name = getattr(code, "co_filename", "")
                    if getattr(code, "co_name", "") == "<module>" and \
                            name.startswith(self.root_prefix):
                        self._boundary(starts=name)
                    else:
                        self._boundary()
            elif event in SPAWN_EVENTS and self.by_module is None:
                self.rec.spawned = True
        except Exception:
            pass                # an audit hook must never break the test
