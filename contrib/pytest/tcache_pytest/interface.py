"""The interface digest of a Python file: a digest of everything that runs
when the module is imported (module statements, class bodies, decorators,
signatures, default values, annotations), with the bodies of functions and
methods left out.  A test that imports a module but runs none of its
function bodies depends on its interface only; one that runs a body depends
on the whole file.

The rule (the plugin's README states it, vectors pin it down):

1. The file is parsed with ast.parse.  A file that does not parse has as
   interface digest the one of b"unparsable\\0" followed by its bytes, so
   any edit of it counts.  A missing file has the all-zero digest.
2. Every def and async def, at any depth, keeps its decorators, name,
   arguments (with defaults and annotations), return annotation and type
   parameters; its body is replaced by its docstring (when it has one: it
   is set at definition) and one `yield` statement when the body makes it a
   generator (a flag fixed at definition).  Lambdas are kept whole.
3. The tree is written out canonically: a node as its class name and, in
   the order of its _fields, each field that is not None and not an empty
   list as `name=value,`, in parentheses; a list in brackets with a comma
   after each item; a constant as its type name, `:`, and its repr.
   Positions (lineno, col_offset) are not fields, so comments, blank lines
   and formatting do not count.  The text is encoded as UTF-8 with
   backslash escapes for what cannot be encoded.
4. The digest is BLAKE2b-256 of that text with the personalisation
   b"tcache-ifc-v1".

`python3 -m tcache_pytest.interface PATH...` prints `<hex digest> <path>`
per path: `tcache explain` runs it to tell an interface change from a body
change.
"""

import ast
import hashlib
import sys

from .proto import ZERO_DIGEST, DIGEST_LEN

PERSON = b"tcache-ifc-v1"
FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)
# Code objects of these names are part of the code around them: at module
# or class level they run at import time and belong to the interface.
INLINE_CODE = frozenset(("<lambda>", "<listcomp>", "<setcomp>", "<dictcomp>",
                         "<genexpr>"))


def _digest(data):
    return hashlib.blake2b(data, digest_size=DIGEST_LEN,
                           person=PERSON).digest()


def _own_nodes(body):
    """The nodes of a function body outside nested scopes."""
    todo = list(body)
    while todo:
        node = todo.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, FUNCTIONS + (ast.Lambda, ast.ClassDef)):
                todo.append(child)


def _is_generator(func):
    return any(isinstance(n, (ast.Yield, ast.YieldFrom))
               for n in _own_nodes(func.body))


def _strip(func):
    body = []
    first = func.body[0] if func.body else None
    if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
            and isinstance(first.value.value, str):
        body.append(first)
    if _is_generator(func):
        body.append(ast.Expr(value=ast.Yield(value=None)))
    func.body = body


class _Stripper(ast.NodeTransformer):
    def visit_FunctionDef(self, node):
        self.generic_visit(node)    # decorators, defaults, annotations
        _strip(node)
        return node

    visit_AsyncFunctionDef = visit_FunctionDef


def _write(value, out):
    if isinstance(value, ast.AST):
        out.append(type(value).__name__)
        out.append("(")
        for name in value._fields:
            field = getattr(value, name, None)
            if field is None or (isinstance(field, list) and not field):
                continue
            out.append(name)
            out.append("=")
            _write(field, out)
            out.append(",")
        out.append(")")
    elif isinstance(value, list):
        out.append("[")
        for item in value:
            _write(item, out)
            out.append(",")
        out.append("]")
    else:
        out.append(type(value).__name__)
        out.append(":")
        out.append(repr(value))


def canonical(tree):
    """The canonical text of a module's interface (the tree is changed)."""
    out = []
    _write(_Stripper().visit(tree), out)
    return "".join(out).encode("utf-8", "backslashreplace")


class Summary:
    """What the plugin needs of one Python file: its interface digest and
    the line ranges of its defs (decorators included), which tell a code
    object inside a function body from one at module or class level."""

    __slots__ = ("digest", "defs")

    def __init__(self, digest, defs):
        self.digest = digest
        # The (first line, last line) of each def, sorted, flat: [first,
        # last, first, last, ...] (one list of ints, which the garbage
        # collector does not follow, instead of thousands of pairs).
        self.defs = defs

    def in_body(self, code):
        """Whether running code means running a function body.  A def's
        own code always does; a lambda or comprehension only when it lies
        inside a def (when its line is shared with one, it is assumed to)."""
        if code.co_name not in INLINE_CODE:
            return True
        line = code.co_firstlineno
        d = self.defs
        return any(d[i] <= line <= d[i + 1] for i in range(0, len(d), 2))

    def to_json(self):
        return [self.digest.hex(), self.defs]

    @classmethod
    def from_json(cls, value):
        return cls(bytes.fromhex(value[0]), value[1])


def summarize_source(data, filename="<unknown>"):
    try:
        tree = ast.parse(data, filename)
    except (SyntaxError, ValueError):
        return Summary(_digest(b"unparsable\0" + data), [1, sys.maxsize])
    defs = []
    for node in ast.walk(tree):
        if isinstance(node, FUNCTIONS):
            first = min([node.lineno] +
                        [d.lineno for d in node.decorator_list])
            defs.append((first, node.end_lineno or node.lineno))
    defs.sort()
    return Summary(_digest(canonical(tree)), [n for r in defs for n in r])


def summarize(path):
    """The Summary of a file; None when it does not exist."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None
    return summarize_source(data, path)


def interface_digest(path):
    s = summarize(path)
    return ZERO_DIGEST if s is None else s.digest


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        sys.stderr.write("usage: python3 -m tcache_pytest.interface PATH...\n"
                         "prints the interface digest of each Python file\n")
        return 2 if not argv else 0
    for path in argv:
        try:
            d = interface_digest(path)
        except OSError as e:
            sys.stderr.write("tcache_pytest.interface: %s: %s\n"
                             % (path, e.strerror))
            return 1
        sys.stdout.write("%s %s\n" % (d.hex(), path))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
