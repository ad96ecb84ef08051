"""The plugin's faster ways of computing what it computed plainly before,
against the plain ways: closures of the import graph (a component at a
time), source digests from pre-encoded files, lookup replies read in
place.  In-process (none of these modules installs a hook)."""

import random
import struct

import pytest

from tcache_pytest import inputs, proto


def _graph(edges, full):
    """An ImportGraph over the given edges without indexing a directory."""
    g = inputs.ImportGraph.__new__(inputs.ImportGraph)
    g._closure, g._whole, g._edges = {}, {}, {}
    g._full = full
    g.edges = lambda p: edges.get(p, ())
    return g


def _plain_inputs(edges, full, roots, full_roots, precise):
    members = set()
    for r in roots:
        seen, todo = {r}, [r]
        while todo:
            for q in edges.get(todo.pop(), ()):
                if q not in seen:
                    seen.add(q)
                    todo.append(q)
        members |= seen
    if not precise:
        return frozenset(members), frozenset()
    whole = set(full_roots)
    for m in members:
        if not m.endswith(".py"):
            whole.add(m)
        whole |= full.get(m, set())
    return frozenset(whole), frozenset(members - whole)


@pytest.mark.parametrize("seed", range(40))
def test_closures_by_components_match_a_walk_of_each(seed):
    rnd = random.Random(seed)
    n = rnd.randint(1, 60)
    nodes = ["f%d%s" % (i, ".py" if rnd.random() < 0.85 else ".txt")
             for i in range(n)]
    density = rnd.choice([0.02, 0.05, 0.15, 0.4])
    edges = {a: [b for b in nodes if rnd.random() < density] for a in nodes}
    full = {a: {rnd.choice(nodes)} for a in nodes if rnd.random() < 0.1}
    g = _graph(edges, full)
    order = nodes[:]
    rnd.shuffle(order)
    for start in order:
        roots = [start] + rnd.sample(nodes, min(len(nodes), 3))
        full_roots = roots[:1]
        for precise in (True, False):
            assert g.inputs(roots, full_roots, precise) == _plain_inputs(
                edges, full, roots, full_roots, precise), (seed, start)


def test_a_long_chain_does_not_recurse():
    n = 20000
    edges = {"f%d.py" % i: ["f%d.py" % (i + 1)] for i in range(n - 1)}
    edges["f%d.py" % (n - 1)] = ["f0.py"]
    g = _graph(edges, {})
    assert len(g.closure("f0.py")) == n


def _encoded(files, kind=proto.INPUT_FILE):
    return sorted((name, proto.encode_str(name) + d, kind)
                  for name, d in files)


@pytest.mark.parametrize("seed", range(20))
def test_source_digest_from_encoded_files(seed):
    rnd = random.Random(seed)
    files = {}
    for _ in range(rnd.randint(0, 300)):
        name = bytes(rnd.randrange(1, 256) for _ in range(rnd.randint(1, 30)))
        files[name] = bytes(rnd.randrange(256) for _ in range(32))
    files = list(files.items())
    assert proto.source_digest_encoded(_encoded(files)) == \
        proto.source_digest(files)


def test_source_digest_from_encoded_files_refuses_bad_lists():
    a = (b"a", bytes(32))
    b = (b"b", bytes(32))
    with pytest.raises(ValueError):
        proto.source_digest_encoded(_encoded([a, a]))
    with pytest.raises(ValueError):
        proto.source_digest_encoded(list(reversed(_encoded([a, b]))))


def _reply(results):
    """The fields of a LOOKUP reply after its count, as PROTOCOL.md says."""
    out = b""
    for r in results:
        if r is None:
            out += b"\x00"
            continue
        outcome, flaky, dur, created, expires, ins = r
        out += b"\x01" + struct.pack(">BBQQQI", outcome, flaky, dur, created,
                                     expires, len(ins))
        for kind, path, digest in ins:
            out += bytes([kind]) + struct.pack(">I", len(path)) + path + \
                digest
    return out


def _check(results, got):
    assert len(got) == len(results)
    for want, res in zip(results, got):
        if want is None:
            assert not res.found and res.inputs == []
            continue
        outcome, flaky, dur, created, expires, ins = want
        assert res.found and res.outcome == outcome
        assert res.flaky is bool(flaky)
        assert (res.duration_us, res.created_ms, res.expires_ms) == \
            (dur, created, expires)
        assert res.inputs == ins


def _sample():
    return [
        None,
        (1, 0, 123456, 2 ** 40, 2 ** 41, []),
        (2, 1, 0, 0, 0, [(1, b"tests/data.txt", bytes(range(32))),
                         (0, b"/abs/path", b"\xff" * 32)]),
        None,
        (1, 0, 2 ** 64 - 1, 1, 2, [(3, b"", bytes(32))]),
    ]


def test_lookup_reply_read_in_place():
    results = _sample()
    data = b"prefix" + _reply(results)
    out = []
    pos = proto._read_results(data, 6, len(results), out)
    assert pos == len(data)
    _check(results, out)


def test_lookup_reply_truncated_anywhere():
    results = _sample()
    data = _reply(results)
    for cut in range(len(data)):
        with pytest.raises(proto.TcacheUnavailable):
            proto._read_results(data[:cut], 0, len(results), [])


@pytest.mark.parametrize("offset, value", [(0, 2), (2, 2)])
def test_lookup_reply_bad_flags(offset, value):
    """A found flag or a flaky flag other than 0 or 1 is malformed."""
    data = bytearray(_reply([(1, 0, 0, 0, 0, [])]))
    data[offset] = value
    with pytest.raises(proto.TcacheUnavailable):
        proto._read_results(bytes(data), 0, 1, [])
