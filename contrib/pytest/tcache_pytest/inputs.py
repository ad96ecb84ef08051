"""What a test depends on: file digests (memoised for the session), the static
import graph of the project's Python files, and the environment.

Everything is conservative: when in doubt, a file is an input.
"""

import ast
import os
import platform
import sys
import time

from . import interface as tc_interface
from . import proto

# Directories below the root that are never the project's own modules.
SKIP_DIRS = {".git", ".hg", ".svn", "__pycache__", ".tox", ".nox", ".venv",
             "venv", "env", "node_modules", ".pytest_cache", ".mypy_cache",
             "build", "dist", ".eggs", "site-packages"}


# Seconds within which a file's modification time is too close to a read
# of it for its stat signature to vouch for its content.
RACY_S = 2.0


def stat_sig(path):
    """What a stat says of a file's content, or None when it is absent."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)


class Digests:
    """File digests for a session, each with the stat signature the file
    had just before it was read (the stat comes first, so a write during
    the read moves the signature away from the one kept)."""

    def __init__(self, since_ns=None):
        self._table = {}        # path -> (stat signature, digest)
        self.since_ns = since_ns
        self.late = set()       # paths changed after since_ns

    def _read(self, path):
        sig = stat_sig(path)
        d = proto.file_digest(path)
        self._table[path] = (sig, d)
        # A module imported before its first read here ran the code it had
        # then: a change since the session began means its digest may not
        # be the code that ran.
        if sig is not None and self.since_ns is not None and \
                sig[1] > self.since_ns:
            self.late.add(path)
        return d

    def digest(self, path):
        """The digest read first this session."""
        entry = self._table.get(path)
        return entry[1] if entry is not None else self._read(path)

    def signature(self, path):
        """The stat signature of path when digest() read it."""
        entry = self._table.get(path)
        return entry[0] if entry is not None else None

    def current(self, path):
        """The file's digest now: the one read before when its stat
        signature has not moved since, else read again.  A file modified
        within the last RACY_S seconds is always read again: a write in
        the same clock tick as our read would leave the signature as it
        was (git's "racily clean" rule)."""
        sig = stat_sig(path)
        entry = self._table.get(path)
        if sig is not None and entry is not None and entry[0] == sig and \
                time.time() - sig[0] / 1e9 > RACY_S:
            return entry[1]
        return self._read(path)


def relpath(root, path):
    """The input name of an absolute path: relative to root when inside it
    (with / separators), absolute otherwise; bytes, as the key wants."""
    rel = os.path.relpath(path, root)
    if rel == os.curdir or rel.startswith(os.pardir + os.sep) or rel == os.pardir:
        name = path
    else:
        name = rel
    return os.fsencode(name.replace(os.sep, "/"))


def inside(root, path):
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


# --- the import graph ---

def _imports_of(tree, modname, is_package):
    """Module names a file may import, anywhere in it (lazy imports in
    functions too): for `import a.b` both a and a.b, for `from a import b`
    both a and a.b (b may be a submodule)."""
    names = set()
    pkg = modname if is_package else modname.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                names.add(alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".") if pkg else []
                up = node.level - 1
                if up > len(base):
                    continue
                base = base[:len(base) - up] if up else base
                if node.module:
                    base = base + node.module.split(".")
                mod = ".".join(base)
            else:
                mod = node.module or ""
            if mod:
                names.add(mod)
            for alias in node.names:
                if alias.name != "*":
                    names.add(mod + "." + alias.name if mod else alias.name)
    expanded = set()
    for name in names:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):
            expanded.add(".".join(parts[:i]))
    return expanded


class ImportGraph:
    """The project's Python files under root and the project modules each
    one imports, resolved through the sys.path entries that lie under root.
    Parsing is cached by file digest in `cache` (a dict, may persist)."""

    def __init__(self, root, digests, cache=None):
        self.root = root
        self.digests = digests
        self.cache = cache if cache is not None else {}
        self.modules = {}          # module name -> file
        self.names = {}            # file -> one of its module names
        self._closure = {}
        self._edges = {}
        self._extra = {}           # file -> files its import reached
        self._full = {}            # file -> files its import read or ran
        self._summaries = {}       # file -> interface.Summary
        self._index()

    def _index(self):
        bases = []
        for entry in sys.path:
            p = os.path.realpath(entry or os.curdir)
            if inside(self.root, p) and os.path.isdir(p) and p not in bases:
                bases.append(p)
        if self.root not in bases:
            bases.append(self.root)
        for base in bases:
            for dirpath, dirnames, filenames in os.walk(base):
                dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS
                               and not d.startswith(".")
                               and d.isidentifier()]
                rel = os.path.relpath(dirpath, base)
                prefix = [] if rel == os.curdir else rel.split(os.sep)
                for fn in filenames:
                    if not fn.endswith(".py"):
                        continue
                    stem = fn[:-3]
                    if stem == "__init__":
                        parts = prefix
                    elif stem.isidentifier():
                        parts = prefix + [stem]
                    else:
                        continue
                    if parts:
                        f = os.path.join(dirpath, fn)
                        self.modules.setdefault(".".join(parts), f)
                        self.names.setdefault(f, ".".join(parts))

    def _module_of(self, path):
        # A file can be reached under several names; any one is enough to
        # resolve its relative imports the way Python will.
        name = self.names.get(path, "")
        return name, os.path.basename(path) == "__init__.py"

    def add_edges(self, path, files, full=()):
        """Inputs of path seen at run time, beside its static imports:
        files, modules its top level imported; full, files it read or
        whose function bodies ran while it was being imported (whole-file
        inputs of every test that imports path)."""
        self._extra.setdefault(path, set()).update(files)
        self._extra[path].update(full)
        self._full.setdefault(path, set()).update(full)
        self._edges.pop(path, None)
        self._closure.clear()

    def _parse(self, path):
        """(imported module names, Summary) of a Python file, cached by its
        digest."""
        digest = self.digests.digest(path)
        entry = self.cache.get(digest.hex())
        if not isinstance(entry, dict):
            modname, is_pkg = self._module_of(path)
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                data = b""
            try:
                tree = ast.parse(data, path)
                names = sorted(_imports_of(tree, modname, is_pkg))
            except (SyntaxError, ValueError):
                names = []
            summary = tc_interface.summarize_source(data, path)
            entry = self.cache[digest.hex()] = {
                "imports": names, "summary": summary.to_json()}
        return entry

    def summary(self, path):
        """The interface.Summary of a Python file as digest() read it."""
        s = self._summaries.get(path)
        if s is None:
            s = self._summaries[path] = tc_interface.Summary.from_json(
                self._parse(path)["summary"])
        return s

    def edges(self, path):
        """Project files imported by path (directly)."""
        if not path.endswith(".py"):
            return self._extra.get(path, ())
        if path in self._edges:
            return self._edges[path]
        names = self._parse(path)["imports"]
        out = [self.modules[n] for n in names if n in self.modules]
        out += sorted(self._extra.get(path, ()))
        self._edges[path] = out
        return out

    def inputs(self, roots, full_roots, precise):
        """(whole files, interface files) that tests depend on whose roots
        are these files: the closure of the roots; full_roots, every file
        that is not Python source, and every file read or run while a file
        of the closure was imported count whole; with precise false, so
        does everything."""
        members = set()
        for r in roots:
            members |= self.closure(r)
        if not precise:
            return frozenset(members), frozenset()
        full = set(full_roots)
        for m in members:
            if not m.endswith(".py"):
                full.add(m)
            extra = self._full.get(m)
            if extra:
                full |= extra
        return frozenset(full), frozenset(members - full)

    def closure(self, path):
        """path and every project file it imports, transitively."""
        if path in self._closure:
            return self._closure[path]
        seen = {path}
        todo = [path]
        while todo:
            p = todo.pop()
            for q in self.edges(p):
                if q not in seen:
                    seen.add(q)
                    todo.append(q)
        result = frozenset(seen)
        self._closure[path] = result
        return result


def conftests_above(root, path):
    """conftest.py files from root down to the directory of path."""
    out = []
    d = os.path.dirname(path)
    while inside(root, d):
        c = os.path.join(d, "conftest.py")
        if os.path.isfile(c):
            out.append(c)
        if d == root:
            break
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    return out


# --- the environment ---

# Options that only select, order or display tests, or that differ between
# xdist workers: they never change a test's outcome.  Every other option,
# pytest's or a plugin's, is part of the environment.
NEUTRAL_OPTIONS = {
    "basetemp", "cacheclear", "cacheshow", "capture", "code_highlight",
    "collect_in_virtualenv", "collectonly", "color",
    "continue_on_collection_errors", "debug", "deselect", "disable_warnings",
    "dist", "distload", "doctestreport", "durations", "durations_min",
    "failedfirst", "file_or_dir", "fulltrace", "help", "ignore", "ignore_glob",
    "inifilename", "junitprefix", "keepduplicates", "keyword",
    "last_failed_no_failures", "lf", "log_auto_indent", "log_cli_date_format",
    "log_cli_format", "log_cli_level", "log_date_format", "log_file",
    "log_file_date_format", "log_file_format", "log_file_level",
    "log_format", "loadgroup", "looponfail", "markexpr", "markers", "maxfail",
    "maxprocesses", "maxworkerrestart", "newfirst", "no_header", "no_summary",
    "numprocesses", "pastebin", "pyargs", "quiet", "reportchars", "rootdir",
    "rsyncdir", "rsyncignore", "setuponly", "setupplan", "setupshow",
    "show_fixtures_per_test", "showcapture", "showfixtures", "showlocals",
    "stepwise", "stepwise_skip", "tbstyle", "testrunuid", "trace",
    "traceconfig", "tx", "usepdb", "usepdb_cls", "verbose", "version",
    "xmlpath",
}


OWN_PLUGIN_NAMES = {"tcache_pytest", "tcache_pytest.plugin", "tcache"}


def _option_value(root, value):
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_option_value(root, v) for v in value) + "]"
    if isinstance(value, os.PathLike):
        value = os.fspath(value)
    if isinstance(value, str) and os.path.isabs(value) and inside(root, value):
        return repr(os.path.relpath(value, root))
    return repr(value)


def options_env(config, root):
    out = []
    for name, value in sorted(vars(config.option).items()):
        if name in NEUTRAL_OPTIONS or name.startswith("tcache"):
            continue
        if name == "plugins":
            # Loading this plugin by -p or by its entry point is the same.
            value = [p for p in value or () if p not in OWN_PLUGIN_NAMES]
        out.append(("@option:" + name, _option_value(root, value)))
    return out


def distributions():
    try:
        from importlib import metadata
    except ImportError:             # pragma: no cover - Python < 3.8
        return []
    seen = {}
    for dist in metadata.distributions():
        try:
            name = dist.metadata["Name"]
        except Exception:           # a broken install must not stop a run
            continue
        if name:
            seen[name.lower()] = dist.version or ""
    return sorted(seen.items())


def environment(config, root, names):
    """(name bytes, value bytes or None) pairs: the interpreter, the
    platform, installed distributions, loaded plugins, behaviour-changing
    options and the variables named by --tcache-env."""
    env = [
        ("@platform", "%s/%s" % (platform.system(), platform.machine())),
        ("@python", "%s %s" % (sys.implementation.name, sys.version)),
        ("@dists", "\n".join("%s==%s" % kv for kv in distributions())),
        ("@plugins", "\n".join(sorted(
            "%s==%s" % (d.project_name, d.version)
            for _, d in config.pluginmanager.list_plugin_distinfo()))),
        ("@pythonpath", os.environ.get("PYTHONPATH")),
    ]
    env += options_env(config, root)
    pairs = [(k.encode(), v.encode() if v is not None else None)
             for k, v in env]
    for name in sorted(set(names)):
        if name.startswith("@"):
            continue            # our own names; a variable cannot have them
        value = os.environ.get(name)
        pairs.append((os.fsencode(name),
                      os.fsencode(value) if value is not None else None))
    return pairs
