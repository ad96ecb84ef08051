"""The interface digest: the rule of tcache_pytest/interface.py, pinned by
contrib/pytest/vectors/interface.txt, and what it must and must not see."""

import os
import subprocess
import sys
import textwrap

import pytest

from conftest import PLUGIN_SRC
from tcache_pytest import interface

VECTORS = os.path.join(PLUGIN_SRC, "vectors")
BASE = textwrap.dedent('''\
    import os
    LIMIT = 10

    def f(a, b=2):
        """Adds."""
        # a comment
        return a + b

    def g():
        yield 1

    class C:
        y = 3

        @staticmethod
        def m(x):
            return x
    ''')


def digest(src):
    return interface.summarize_source(src.encode()).digest


def load_vectors():
    out = []
    with open(os.path.join(VECTORS, "interface.txt")) as f:
        for line in f:
            if line.strip() and not line.startswith("#"):
                hexd, name = line.split()
                out.append((name, hexd))
    return out


@pytest.mark.parametrize("name,hexd", load_vectors())
def test_vector(name, hexd):
    path = os.path.join(VECTORS, "interface", name)
    assert interface.interface_digest(path).hex() == hexd


def test_vectors_cover_both_sides():
    by_digest = {}
    for name, hexd in load_vectors():
        by_digest.setdefault(hexd, []).append(name)
    same = by_digest[dict(load_vectors())["base.py"]]
    assert sorted(same) == ["base.py", "body_edit.py", "format_edit.py"]
    assert len(by_digest) == len(load_vectors()) - 2


@pytest.mark.parametrize("old,new", [
    ("return a + b", "return b + a"),
    ("# a comment", "# another comment"),
    ("        return x", "        y = x\n        return y"),
    ("yield 1", "yield 2"),
])
def test_body_edits_keep_the_interface(old, new):
    assert old in BASE
    assert digest(BASE.replace(old, new)) == digest(BASE)


@pytest.mark.parametrize("old,new", [
    ("LIMIT = 10", "LIMIT = 11"),                   # module constant
    ("    y = 3", "    y = 4"),                     # class attribute
    ("@staticmethod", "@classmethod"),              # decorator
    ("b=2", "b=3"),                                 # default argument
    ("def f(a, b=2)", "def f(a, c=2)"),             # signature
    ('"""Adds."""', '"""Sums."""'),                 # docstring
    ("    yield 1", "    return 1"),            # no longer a generator
    ("import os", "import sys"),
    ("def g():", "def h():"),
    ("def f(a, b=2):", "def f(a, b=2) -> int:"),    # annotation
    ("def g():", "async def g():"),
])
def test_interface_edits_change_it(old, new):
    assert old in BASE
    assert digest(BASE.replace(old, new)) != digest(BASE)


def test_lambda_body_counts_whole():
    assert digest("f = lambda x: x + 1\n") != digest("f = lambda x: x + 2\n")


def test_nested_def_body_is_left_out_but_its_signature_counts():
    src = "def outer():\n    def inner(a=1):\n        return a\n" \
          "    return inner\n"
    assert digest(src) == digest(src.replace("return a", "return -a"))
    assert digest(src) == digest(src.replace("a=1", "a=2"))  # in a body


def test_unparsable_file_counts_every_byte():
    bad = "def f(:\n  pass\n"
    assert digest(bad) != digest(bad + "# more\n")


def test_missing_file_is_zero(tmp_path):
    assert interface.interface_digest(str(tmp_path / "nope.py")) == \
        bytes(32)


def test_in_body_tells_body_code_from_module_code():
    src = textwrap.dedent('''\
        squares = [i * i for i in range(3)]

        @decorate(lambda: 1)
        def f():
            return [j for j in range(2)]
        ''')
    s = interface.summarize_source(src.encode())
    ns = {"decorate": lambda _: (lambda fn: fn)}
    code = compile(src, "m.py", "exec")
    consts = {c.co_name: c for c in code.co_consts if hasattr(c, "co_name")}
    exec(code, ns)
    assert s.in_body(ns["f"].__code__)
    inner = [c for c in ns["f"].__code__.co_consts if hasattr(c, "co_name")]
    for c in inner:             # the comprehension inside f
        assert s.in_body(c)
    if "<listcomp>" in consts:  # a separate code object before 3.12
        assert not s.in_body(consts["<listcomp>"])
    # A lambda in a decorator shares the def's lines: counted as body.
    assert s.in_body(consts["<lambda>"])


def test_command_line(tmp_path):
    a = tmp_path / "a.py"
    a.write_text(BASE)
    env = dict(os.environ, PYTHONPATH=PLUGIN_SRC)
    r = subprocess.run([sys.executable, "-m", "tcache_pytest.interface",
                        str(a), str(tmp_path / "missing.py")],
                       capture_output=True, text=True, env=env, check=True)
    assert r.stdout.splitlines() == [
        "%s %s" % (digest(BASE).hex(), a),
        "%s %s" % ("0" * 64, tmp_path / "missing.py")]
    r = subprocess.run([sys.executable, "-m", "tcache_pytest.interface"],
                       capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "usage" in r.stderr


@pytest.mark.parametrize("version", ["3.8.18", "3.12.1", "3.13.0"])
def test_same_digest_on_other_pythons(version):
    py = "/root/.pyenv/versions/%s/bin/python3" % version
    if not os.access(py, os.X_OK):
        pytest.skip("no Python %s here" % version)
    path = os.path.join(VECTORS, "interface", "base.py")
    r = subprocess.run([py, "-m", "tcache_pytest.interface", path],
                       capture_output=True, text=True, check=True,
                       env=dict(os.environ, PYTHONPATH=PLUGIN_SRC))
    assert r.stdout.split()[0] == dict(load_vectors())["base.py"]
