#!/usr/bin/env python3
"""Writes proto/vectors/vectors.txt: test vectors for the key derivation of
proto/PROTOCOL.md ("Keys"), computed with Python's hashlib so that the C code
(libsodium) is checked against an independent implementation.

Standard library only; the output is deterministic (a fixed seed), so running
it again must leave vectors.txt unchanged:

    python3 proto/vectors/gen.py            # rewrites vectors.txt
    python3 proto/vectors/gen.py --check    # exit 1 if vectors.txt differs
"""

import hashlib
import os
import random
import struct
import sys

DIGEST = 32
SEED = 20240601
HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "vectors.txt")


def blake(data, person=b""):
    return hashlib.blake2b(data, digest_size=DIGEST, person=person).digest()


def u32(x):
    return struct.pack(">I", x)


def s(b):
    return u32(len(b)) + b


def file_digest(data):
    return blake(data)


def source_digest(inputs):
    """inputs: list of (path bytes, digest bytes), in any order."""
    paths = [p for p, _ in inputs]
    assert len(set(paths)) == len(paths), "duplicate path"
    body = u32(len(inputs))
    for path, digest in sorted(inputs):
        body += s(path) + digest
    return blake(body, b"tcache-src-v1")


def env_digest(variables):
    """variables: list of (name bytes, value bytes or None for unset)."""
    names = [n for n, _ in variables]
    assert len(set(names)) == len(names), "duplicate name"
    body = u32(len(variables))
    for name, value in sorted(variables, key=lambda v: v[0]):
        body += s(name)
        body += b"\x00" if value is None else b"\x01" + s(value)
    return blake(body, b"tcache-env-v1")


def key(project, test, src, env):
    return blake(s(project) + s(test) + src + env, b"tcache-key-v1")


def hx(b):
    return b.hex() if b else "-"


def file_vectors(rng):
    # Sizes around BLAKE2b's 128-byte block and the C reader's 64 KiB chunk.
    datas = [b"", b"a", b"abc", bytes(range(256))]
    for n in (127, 128, 129, 1000, 2048, 65537):
        datas.append(rng.randbytes(n))
    for d in datas:
        yield "file %s %s" % (hx(d), file_digest(d).hex())


def source_line(inputs):
    fields = ["source", source_digest(inputs).hex()]
    fields += ["%s=%s" % (hx(p), d.hex()) for p, d in inputs]
    return " ".join(fields)


def source_vectors(rng):
    def dig():
        return rng.randbytes(DIGEST)

    zero = bytes(DIGEST)
    cases = [
        [],
        [(b"src/main.c", dig())],
        [(b"tests/test_b.py", dig()), (b"conftest.py", dig()),
         (b"src/a.py", dig()), (b"pytest.ini", dig())],
        # a prefix sorts first: "a" < "a/b" < "ab", and "/" (0x2f) < "b"
        [(b"ab", dig()), (b"a/b", dig()), (b"a", dig())],
        [(b"a.c", dig()), (b"a", dig()), (b"a-b", dig()), (b"a/c", dig())],
        # bytes >= 0x80 sort after ASCII (unsigned comparison)
        [("donn\u00e9es/\u00e9t\u00e9.txt".encode(), dig()),
         ("\u6d4b\u8bd5/\u6587\u4ef6.py".encode(), dig()),
         (b"zeta.py", dig()), (b"Zeta.py", dig())],
        # a declared file that does not exist has the all-zero digest
        [(b"gen/config.h", zero), (b"src/x.c", dig())],
        # files outside the root keep their absolute path
        [(b"/usr/include/stdio.h", dig()), (b"include/x.h", dig())],
        [(b"same-digest-1", zero), (b"same-digest-2", zero)],
    ]
    many = [(("pkg/mod%03d.py" % i).encode(), dig()) for i in range(40)]
    rng.shuffle(many)
    cases.append(many)
    for inputs in cases:
        yield source_line(inputs)


def env_line(variables):
    fields = ["env", env_digest(variables).hex()]
    for name, value in variables:
        fields.append("%s=%s" % (hx(name), "!" if value is None else hx(value)))
    return " ".join(fields)


def env_vectors():
    cases = [
        [],
        [(b"@platform", b"Linux/x86_64")],
        [(b"PYTHONHASHSEED", b"0"), (b"@python", b"3.11.2"),
         (b"CC", b"gcc"), (b"@platform", b"Linux/aarch64")],
        [(b"EMPTY", b"")],
        [(b"UNSET", None)],
        # unset and empty must differ: compare with the two above
        [(b"A", b""), (b"B", None), (b"C", b"c")],
        [(b"LANG", "fr_FR.UTF-8 \u00e9".encode()), (b"LANGUAGE", None),
         (b"LANG_", b"x")],
        [(b"@dist:pytest", b"7.2.1"), (b"@dist:pluggy", b"1.0.0"),
         (b"@option:-p", b"no:cacheprovider")],
    ]
    for variables in cases:
        yield env_line(variables)


def key_vectors(rng):
    cases = [
        (b"", b"", bytes(DIGEST), bytes(DIGEST)),
        (b"", b"tests/test_a.py::test_one", rng.randbytes(DIGEST),
         rng.randbytes(DIGEST)),
        (b"myproj", b"tests/test_a.py::test_one", rng.randbytes(DIGEST),
         rng.randbytes(DIGEST)),
        (b"p", "tests/test_\u00fcnicode.py::test_\u2603[\u00e9-1]".encode(),
         rng.randbytes(DIGEST), rng.randbytes(DIGEST)),
        (b"proj", b"tests/test_x.py::test_p[a b-" + b"x" * 300 + b"]",
         rng.randbytes(DIGEST), rng.randbytes(DIGEST)),
        # project and test are each length-prefixed: moving a byte across
        # the boundary changes the key
        (b"ab", b"c", bytes(DIGEST), bytes(DIGEST)),
        (b"a", b"bc", bytes(DIGEST), bytes(DIGEST)),
    ]
    # one whole chain: a real source and env digest
    src = source_digest([(b"src/a.c", file_digest(b"int a;\n")),
                         (b"missing.h", bytes(DIGEST))])
    env = env_digest([(b"@platform", b"Linux/x86_64"), (b"CC", None)])
    cases.append((b"", b"make check", src, env))
    for project, test, src_d, env_d in cases:
        yield "key %s %s %s %s %s" % (key(project, test, src_d, env_d).hex(),
                                      hx(project), hx(test), src_d.hex(),
                                      env_d.hex())


def generate():
    rng = random.Random(SEED)
    lines = [
        "# tcache key derivation vectors (proto/PROTOCOL.md, \"Test vectors\").",
        "# Generated by proto/vectors/gen.py; do not edit.",
    ]
    lines += file_vectors(rng)
    lines += source_vectors(rng)
    lines += env_vectors()
    lines += key_vectors(rng)
    return "\n".join(lines) + "\n"


def main(argv):
    text = generate()
    if argv[1:] == ["--check"]:
        with open(OUT, encoding="ascii") as f:
            if f.read() != text:
                print("vectors.txt is out of date: run gen.py", file=sys.stderr)
                return 1
        return 0
    if argv[1:]:
        print("usage: gen.py [--check]", file=sys.stderr)
        return 2
    tmp = OUT + ".tmp"
    with open(tmp, "w", encoding="ascii") as f:
        f.write(text)
    os.replace(tmp, OUT)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
