"""What a test depends on: file digests (memoised for the session), the static
import graph of the project's Python files, and the environment.

Everything is conservative: when in doubt, a file is an input.
"""

import ast
import hashlib
import json
import os
import platform
import stat
import sys
import tempfile
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
RACY_NS = int(RACY_S * 1e9)


def stat_sig(path):
    """What a stat says of a file's content, or None when it is absent."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)


# --- the memo: file digests and parsed sources kept between sessions ---

MEMO_VERSION = 3
MEMO_MAX_UNSEEN = 50000     # entries kept for files no session saw lately
MEMO_MAX_AGE_S = 30 * 86400  # a project's memo unused that long goes


def cache_root():
    # XDG: a relative XDG_CACHE_HOME is invalid and must be ignored.
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    if os.path.isabs(xdg):
        return xdg
    return os.path.join(os.path.expanduser("~"), ".cache")


def memo_dir():
    """Where memos live: $TCACHE_MEMO_DIR, or the user's cache directory
    (where the tracer's C helper is built too); None: no memo, when either
    it or $TCACHE_MEMO (which turns libtcache's digest memo off too) is
    "off"."""
    d = os.environ.get("TCACHE_MEMO_DIR")
    if d == "off" or os.environ.get("TCACHE_MEMO") == "off":
        return None
    if d and os.path.isabs(d):
        return d
    return os.path.join(cache_root(), "tcache", "pytest")


def _hex_digest(value):
    if isinstance(value, str) and len(value) == 2 * proto.DIGEST_LEN:
        try:
            return bytes.fromhex(value)
        except ValueError:
            return None
    return None


class Memo:
    """File digests of one project kept between sessions, each under the
    file's (st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns), and the
    parsed imports and interface summaries of its sources, by content.

    A digest is only ever stored for a regular file whose mtime and ctime
    were more than RACY_S older than the moment before the stat that
    preceded its read; and one is only trusted when the file's whole
    signature is unchanged and its mtime and ctime are more than RACY_S
    older than the memo file's own mtime (git's racily-clean rule, twice:
    a write in the same clock tick as our read, or as the memo's, leaves
    the signature as it was).  A change of content moves the ctime, which
    no one can set, so an entry can never stand for other bytes than the
    ones read.  A memo that is damaged, of another version, of another
    root, or not the user's own, is ignored whole; it is written to a
    temporary file renamed over the old one, so a reader sees a whole
    memo or the previous one."""

    def __init__(self, root, path=None):
        self.root = root
        self.path = path            # None: kept for this session only
        self.files = {}             # path -> (dev, ino, size, mtime_ns,
                                    #          ctime_ns, digest)
        self.parsed = {}            # parse key -> ImportGraph entry
        self.parsed_used = set()    # parse keys used this session
        self.dists = {}             # distribution directory -> (stat
                                    # signatures of its metadata files,
                                    # name, version)
        self.trust_before_ns = 0    # newer mtimes or ctimes: not trusted
        self.seen = set()           # paths looked up or stored
        self.changed = False
        self._loaded_parsed = frozenset()

    @staticmethod
    def path_for(root, directory=None):
        directory = directory if directory is not None else memo_dir()
        if directory is None:
            return None
        h = proto._blake(os.fsencode(root)).hexdigest()[:24]
        return os.path.join(directory, "memo-v%d-%s.json" % (MEMO_VERSION, h))

    @classmethod
    def load(cls, root, directory=None):
        memo = cls(root, cls.path_for(root, directory))
        if memo.path is None:
            return memo
        try:
            with open(memo.path, "rb") as f:
                st = os.fstat(f.fileno())
                # Only the user can have written it, or anyone could make
                # it vouch for a file they never saw.
                if not (_private(st) and stat.S_ISREG(st.st_mode) and
                        _private(os.stat(os.path.dirname(memo.path)))):
                    return memo
                data = json.loads(f.read().decode("utf-8"))
        except (OSError, ValueError, UnicodeDecodeError):
            return memo             # absent or damaged: start afresh
        files, parsed = memo._check(data)
        if files is None:
            return memo
        memo.files, memo.parsed = files, parsed
        memo._loaded_parsed = frozenset(parsed)
        memo.trust_before_ns = st.st_mtime_ns - RACY_NS
        return memo

    def _check(self, data):
        """(files, parsed) of a loaded memo, or (None, None) when any of
        it is not as written."""
        if not isinstance(data, dict) or data.get("version") != MEMO_VERSION \
                or data.get("root") != self.root:
            return None, None
        files, parsed = data.get("files"), data.get("parsed")
        dists = data.get("dists")
        if not isinstance(files, dict) or not isinstance(parsed, dict) or \
                not isinstance(dists, dict):
            return None, None
        checked = {}
        for where, e in dists.items():
            if not (isinstance(e, list) and len(e) == 3 and
                    isinstance(e[0], list) and
                    len(e[0]) == len(_METADATA_FILES) and
                    all(s is None or (isinstance(s, list) and len(s) == 5 and
                                      all(type(v) is int and v >= 0
                                          for v in s)) for s in e[0]) and
                    isinstance(e[1], str) and isinstance(e[2], str)):
                return None, None
            checked[where] = (tuple(None if s is None else tuple(s)
                                    for s in e[0]), e[1], e[2])
        self.dists = checked
        out = {}
        for path, e in files.items():
            if not (isinstance(e, list) and len(e) == 6 and
                    all(type(v) is int and v >= 0 for v in e[:5])):
                return None, None
            d = _hex_digest(e[5])
            if d is None:
                return None, None
            out[path] = tuple(e[:5]) + (d,)
        return out, parsed

    def lookup(self, path, st):
        """The digest of the file that st (its os.stat, just taken)
        describes, or None."""
        e = self.files.get(path)
        if e is None:
            return None
        self.seen.add(path)
        if e[0] != st.st_dev or e[1] != st.st_ino or e[2] != st.st_size or \
                e[3] != st.st_mtime_ns or e[4] != st.st_ctime_ns:
            return None
        if st.st_mtime_ns >= self.trust_before_ns or \
                st.st_ctime_ns >= self.trust_before_ns:
            return None
        return e[5]

    def store(self, path, st, digest, before_ns):
        """Notes the digest of bytes read after st was taken; before_ns:
        the time just before the stat."""
        self.seen.add(path)
        limit = before_ns - RACY_NS
        if stat.S_ISREG(st.st_mode) and st.st_mtime_ns < limit and \
                st.st_ctime_ns < limit:
            e = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns,
                 st.st_ctime_ns, digest)
            if self.files.get(path) != e:
                self.files[path] = e
                self.changed = True
        elif self.files.pop(path, None) is not None:
            self.changed = True

    def dist(self, where, sigs):
        """(name, version) of the distribution whose metadata files have
        these stat signatures now, or None."""
        e = self.dists.get(where)
        if e is None or e[0] != sigs:
            return None
        limit = self.trust_before_ns
        for sig in sigs:
            if sig is not None and (sig[3] >= limit or sig[4] >= limit):
                return None
        return e[1], e[2]

    def store_dist(self, where, sigs, name, version, before_ns):
        """Notes a distribution's name and version, read after its files'
        signatures were taken at before_ns."""
        limit = before_ns - RACY_NS
        if all(sig is None or (sig[3] < limit and sig[4] < limit)
               for sig in sigs):
            e = (sigs, name, version)
            if self.dists.get(where) != e:
                self.dists[where] = e
                self.changed = True
        elif self.dists.pop(where, None) is not None:
            self.changed = True

    def save(self):
        """Writes the memo if this session added to it; never raises for
        a file system problem (a memo is only a cache)."""
        if self.path is None or not (self.changed or
                                     self.parsed_used - self._loaded_parsed):
            return False
        files = {p: e for p, e in self.files.items() if p in self.seen}
        for p, e in self.files.items():
            if len(files) >= len(self.seen) + MEMO_MAX_UNSEEN:
                break
            files.setdefault(p, e)
        digests = {e[5].hex() for e in files.values()}
        parsed = {k: v for k, v in self.parsed.items()
                  if k in self.parsed_used or k[:2 * proto.DIGEST_LEN]
                  in digests}
        data = {"version": MEMO_VERSION, "root": self.root,
                "files": {p: list(e[:5]) + [e[5].hex()]
                          for p, e in files.items()},
                "parsed": parsed,
                "dists": {w: [list(e[0]), e[1], e[2]]
                          for w, e in self.dists.items()}}
        d = os.path.dirname(self.path)
        tmp = None
        try:
            os.makedirs(d, mode=0o700, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=d, prefix=".memo-",
                                       suffix=".tmp")
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, separators=(",", ":"))
            os.replace(tmp, self.path)
            tmp = None
        except (OSError, ValueError):
            return False
        finally:
            if tmp is not None:
                try:
                    os.unlink(tmp)
                except OSError:
                    pass
        self.changed = False
        self._loaded_parsed = frozenset(parsed)
        _collect_old(d)
        return True


def _private(st):
    """Owned by this user, and nobody else may write it."""
    return st.st_uid == os.getuid() and not st.st_mode & 0o022


def _collect_old(directory):
    """Removes the memos no session used for MEMO_MAX_AGE_S, and temporary
    files a killed writer left over a day ago."""
    now = time.time()
    try:
        names = os.listdir(directory)
    except OSError:
        return
    for name in names:
        if name.startswith("memo-v") and name.endswith(".json"):
            age = MEMO_MAX_AGE_S
        elif name.startswith(".memo-") and name.endswith(".tmp"):
            age = 86400
        else:
            continue
        p = os.path.join(directory, name)
        try:
            if now - os.stat(p).st_mtime > age:
                os.unlink(p)
        except OSError:
            pass


class Digests:
    """File digests for a session, each with the stat signature the file
    had just before it was read (the stat comes first, so a write during
    the read moves the signature away from the one kept).  With a memo, a
    file the memo vouches for is not read at all."""

    def __init__(self, since_ns=None, memo=None):
        self._table = {}        # path -> (stat signature, digest)
        self.since_ns = since_ns
        self.late = set()       # paths changed after since_ns
        self.memo = memo

    def _read(self, path):
        before = time.time_ns()
        try:
            st = os.stat(path)
        except OSError:
            st = None
        memo = self.memo
        if st is None:
            sig, d = None, proto.file_digest(path)
        elif stat.S_ISDIR(st.st_mode):
            # A directory a test listed: the names it holds.
            sig = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
            d = listing_digest(path)
        else:
            sig = (st.st_mtime_ns, st.st_ctime_ns, st.st_size, st.st_ino)
            d = memo.lookup(path, st) if memo is not None else None
            if d is None:
                d = proto.file_digest(path)
                if memo is not None:
                    memo.store(path, st, d, before)
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


def listing_digest(path):
    """BLAKE2b-256 of a directory's sorted entry names; the zero digest
    when it cannot be listed (as a file's when it is absent).  __pycache__
    is left out: the first import of a module beside makes it."""
    try:
        names = sorted(os.fsencode(n) for n in os.listdir(path)
                       if n != "__pycache__")
    except OSError:
        return proto.ZERO_DIGEST
    h = hashlib.blake2b(digest_size=32, person=b"tcache-dirlist")
    for n in names:
        h.update(n + b"\0")
    return h.digest()


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

    def __init__(self, root, digests, cache=None, used=None):
        self.root = root
        self.digests = digests
        self.cache = cache if cache is not None else {}
        self.used = used if used is not None else set()   # keys used
        self.modules = {}          # module name -> file
        self.names = {}            # file -> one of its module names
        self._closure = {}         # file -> its closure
        self._whole = {}           # file -> the whole files of its closure
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
        self._whole.clear()

    def _parse(self, path):
        """(imported module names, Summary) of a Python file, cached by its
        digest and the module name it has (relative imports resolve
        against its package: the same bytes in two packages import
        different modules)."""
        digest = self.digests.digest(path)
        modname, is_pkg = self._module_of(path)
        key = "%s %s%s" % (digest.hex(), modname, "/" if is_pkg else "")
        entry = self.cache.get(key)
        if not _valid_parse(entry):
            try:
                with open(path, "rb") as f:
                    data = f.read()
            except OSError:
                data = b""
            if proto.file_digest_bytes(data) != digest:
                # Not the bytes the digest is of: parse them, keep nothing.
                return self._parse_bytes(data, path, modname, is_pkg)
            entry = self.cache[key] = self._parse_bytes(data, path, modname,
                                                        is_pkg)
        self.used.add(key)
        return entry

    @staticmethod
    def _parse_bytes(data, path, modname, is_pkg):
        try:
            tree = ast.parse(data, path)
            names = sorted(_imports_of(tree, modname, is_pkg))
        except (SyntaxError, ValueError):
            names = []
        summary = tc_interface.summarize_source(data, path)
        return {"imports": names, "summary": summary.to_json()}

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
        whole = set(full_roots)
        for r in roots:
            members |= self.closure(r)
            whole |= self._whole[r]
        if not precise:
            return frozenset(members), frozenset()
        return frozenset(whole), frozenset(members - whole)

    def closure(self, path):
        """path and every project file it imports, transitively."""
        c = self._closure.get(path)
        if c is None:
            self._solve(path)
            c = self._closure[path]
        return c

    def _solve(self, start):
        """Fills _closure and _whole for start and every file it reaches,
        a strongly connected component (files that import each other) at a
        time, each from the components it imports (Tarjan's algorithm,
        which closes a component after every one it reaches): the tests of
        a suite share most of their closures, and a walk of each one's
        would cost as much as all of them together.  _whole[p]: the files
        of p's closure that count whole (see inputs)."""
        closure, whole_of = self._closure, self._whole
        index = {start: 0}
        low = {start: 0}
        stack = [start]
        on_stack = {start}
        work = [(start, iter(self.edges(start)))]
        while work:
            node, it = work[-1]
            for q in it:
                if q in closure:
                    continue            # solved: joined when node's closes
                if q not in index:
                    index[q] = low[q] = len(index)
                    stack.append(q)
                    on_stack.add(q)
                    work.append((q, iter(self.edges(q))))
                    break
                if q in on_stack and index[q] < low[node]:
                    low[node] = index[q]
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    if low[node] < low[parent]:
                        low[parent] = low[node]
                if low[node] != index[node]:
                    continue
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == node:
                        break
                inside = set(comp)
                members = set(comp)
                whole = set()
                for w in comp:
                    if not w.endswith(".py"):
                        whole.add(w)
                    extra = self._full.get(w)
                    if extra:
                        whole |= extra
                    for q in self.edges(w):
                        if q not in inside:
                            # Reached from this component and not in it:
                            # closed before it.
                            members |= closure[q]
                            whole |= whole_of[q]
                members = frozenset(members)
                whole = frozenset(whole)
                for w in comp:
                    closure[w] = members
                    whole_of[w] = whole


def _valid_parse(entry):
    """Whether a parse entry (from a memo, maybe damaged) is as written."""
    if not isinstance(entry, dict):
        return False
    names, summary = entry.get("imports"), entry.get("summary")
    if not isinstance(names, list) or \
            not all(isinstance(n, str) for n in names):
        return False
    if not (isinstance(summary, list) and len(summary) == 2 and
            _hex_digest(summary[0]) is not None and
            isinstance(summary[1], list)):
        return False
    defs = summary[1]
    return len(defs) % 2 == 0 and all(type(v) is int for v in defs)


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


# The files importlib.metadata reads a distribution's metadata from, in
# the order it tries them ("": the path itself, an .egg-info file).
_METADATA_FILES = ("METADATA", "PKG-INFO", "")


def _metadata_sigs(dist):
    """(directory, the stat signature of each of _METADATA_FILES or None)
    of a distribution found on a path, or None: whichever of them its
    metadata is read from, a change to it moves its signature."""
    base = getattr(dist, "_path", None)
    if base is None:
        return None
    base = os.fspath(base)
    sigs = []
    for name in _METADATA_FILES:
        try:
            st = os.stat(os.path.join(base, name) if name else base)
        except OSError:
            sigs.append(None)
            continue
        sigs.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns,
                     st.st_ctime_ns))
    return base, tuple(sigs)


def distributions(memo=None):
    """(lower-case name, version) of every installed distribution, as
    importlib.metadata finds them.  memo: a Memo that may know the name and
    version of a distribution whose metadata files have not changed (each
    is a parse of an e-mail header, and there can be hundreds)."""
    try:
        from importlib import metadata
    except ImportError:             # pragma: no cover - Python < 3.8
        return []
    seen = {}
    for dist in metadata.distributions():
        where = None
        if memo is not None and type(dist) is metadata.PathDistribution:
            before = time.time_ns()
            where = _metadata_sigs(dist)
            if where is not None:
                known = memo.dist(*where)
                if known is not None:
                    if known[0]:
                        seen[known[0].lower()] = known[1]
                    continue
        try:
            md = dist.metadata
            name = md["Name"]
            version = md["Version"]
        except Exception:           # a broken install must not stop a run
            continue
        if where is not None and isinstance(name, str) and \
                isinstance(version, str):
            memo.store_dist(where[0], where[1], name, version, before)
        if name:
            seen[name.lower()] = version or ""
    return sorted(seen.items())


def environment(config, root, names, memo=None):
    """(name bytes, value bytes or None) pairs: the interpreter, the
    platform, installed distributions, loaded plugins, behaviour-changing
    options and the variables named by --tcache-env.  memo: see
    distributions."""
    env = [
        ("@platform", "%s/%s" % (platform.system(), platform.machine())),
        ("@python", "%s %s" % (sys.implementation.name, sys.version)),
        ("@dists", "\n".join("%s==%s" % kv
                              for kv in distributions(memo))),
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
