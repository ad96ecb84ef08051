"""The Python key derivation reproduces proto/vectors/vectors.txt."""

import os

import pytest

from conftest import REPO
from tcache_pytest import proto

VECTORS = os.path.join(REPO, "proto", "vectors", "vectors.txt")


def unhex(field):
    return b"" if field == "-" else bytes.fromhex(field)


def load():
    out = {"file": [], "source": [], "env": [], "key": []}
    with open(VECTORS) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line or line.startswith("#"):
                continue
            fields = line.split(" ")
            assert fields[0] in out, "line %d: %r" % (n, fields[0])
            out[fields[0]].append((n, fields[1:]))
    return out


VEC = load()


def pairs(fields):
    for f in fields:
        name, _, value = f.partition("=")
        yield unhex(name), value


def test_every_kind_has_vectors():
    assert {k: len(v) > 0 for k, v in VEC.items()} == \
        {"file": True, "source": True, "env": True, "key": True}


@pytest.mark.parametrize("n,fields", VEC["file"])
def test_file_digest(n, fields, tmp_path):
    data, digest = unhex(fields[0]), bytes.fromhex(fields[1])
    assert proto.file_digest_bytes(data) == digest
    p = tmp_path / "f"
    p.write_bytes(data)
    assert proto.file_digest(str(p)) == digest


def test_absent_file_is_zero_digest(tmp_path):
    assert proto.file_digest(str(tmp_path / "none")) == bytes(32)


@pytest.mark.parametrize("n,fields", VEC["source"])
def test_source_digest(n, fields):
    digest = bytes.fromhex(fields[0])
    files = [(path, bytes.fromhex(d)) for path, d in pairs(fields[1:])]
    assert proto.source_digest(files) == digest
    assert proto.source_digest(list(reversed(files))) == digest


@pytest.mark.parametrize("n,fields", VEC["env"])
def test_env_digest(n, fields):
    digest = bytes.fromhex(fields[0])
    env = []
    for name, value in pairs(fields[1:]):
        env.append((name, None if value == "!" else unhex(value)))
    assert proto.env_digest(env) == digest
    assert proto.env_digest(list(reversed(env))) == digest


@pytest.mark.parametrize("n,fields", VEC["key"])
def test_derive_key(n, fields):
    digest, project, test, src, envd = fields
    assert proto.derive_key(unhex(project), unhex(test), bytes.fromhex(src),
                            bytes.fromhex(envd)) == bytes.fromhex(digest)


def test_duplicates_are_errors():
    with pytest.raises(ValueError):
        proto.source_digest([(b"a", bytes(32)), (b"a", bytes(32))])
    with pytest.raises(ValueError):
        proto.env_digest([(b"A", b"1"), (b"A", None)])
