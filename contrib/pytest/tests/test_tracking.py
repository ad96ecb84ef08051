"""The Tracker on its own, in a child interpreter (its audit hook cannot be
removed): which module's Record an import made during the collection goes
to."""

import json
import os
import subprocess
import sys
import textwrap

from conftest import PLUGIN_SRC

SCRIPT = textwrap.dedent('''\
    import json, os, sys
    root = sys.argv[1]
    sys.path.insert(0, root)
    import xa, xb                       # loaded: no "import" audit event
    from tcache_pytest.tracking import Tracker

    def run(name, src, ns):
        exec(compile(src, os.path.join(root, name), "exec"), ns)

    t = Tracker.get()
    t.start_imports(root)
    gen = {}
    run("gen.py", GEN, gen)
    # The same generator frame imports twice in a row, resumed first from
    # a's top level, then from b's.
    run("a.py", "A = G.send('xa')", {"G": gen["G"]})
    run("b.py", "B = G.send('xb')", {"G": gen["G"]})
    # A plain function called twice from two modules' top levels: two
    # frames, two owners.
    run("c.py", "F('xa')", {"F": gen["F"]})
    run("d.py", "F('xb')", {"F": gen["F"]})
    _, by_module = t.stop_imports()
    print(json.dumps({os.path.basename(k): sorted(v.imported)
                      for k, v in by_module.items()}))
    ''')

GEN = textwrap.dedent('''\
    import importlib

    def loader():
        name = yield
        while True:
            name = yield importlib.import_module(name).VALUE

    def F(name):
        return importlib.import_module(name).VALUE

    G = loader()
    next(G)
    ''')


def test_generator_resumed_from_another_module(tmp_path):
    """The owner of the frame that imported last is remembered, for the
    next import by the same frame; a generator's frame is resumed from
    wherever it is asked next, so its imports must be judged each time."""
    root = tmp_path / "proj"
    root.mkdir()
    (root / "xa.py").write_text("VALUE = 1\n")
    (root / "xb.py").write_text("VALUE = 2\n")
    env = dict(os.environ, PYTHONPATH=PLUGIN_SRC, PYTHONDONTWRITEBYTECODE="1")
    cp = subprocess.run(
        [sys.executable, "-c", "GEN = %r\n" % GEN + SCRIPT,
         os.path.realpath(str(root))], env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, universal_newlines=True, timeout=60)
    assert cp.returncode == 0, cp.stderr
    got = json.loads(cp.stdout)
    assert "xb" in got.get("b.py", []), got
    assert "xb" not in got.get("a.py", []), got
    assert "xa" in got.get("a.py", []), got
    assert got.get("c.py") == ["xa"], got
    assert got.get("d.py") == ["xb"], got
