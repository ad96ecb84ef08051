"""A stand-in for `python3 -m tcache_pytest.interface`, so that the tests
of `tcache explain` do not depend on the pytest plugin.  TCACHE_PYTHON names
a wrapper that runs this file with the arguments tcache gives it:

    fake_interface.py -m tcache_pytest.interface PATH...

It keeps the helper's output contract: one line per path, in order,
`<64 lowercase hex> <path>`, 64 zeros for a missing file, exit status 0.
Its "interface" is a fixed rule, simpler than the real one: the lines of a
file that start with neither a space nor a tab (a function body is
indented), hashed with BLAKE2b-256 under the personalisation b"fake-ifc".

FAKE_IFC_MODE breaks the contract on purpose: exit3 (status 3 and a line
on stderr), upper (uppercase hex), swap (two lines swapped), short (a line
missing), extra (a line too many), path (another path).
FAKE_IFC_LOG, when set, gets one line per run: the number of paths.
"""

import hashlib
import os
import sys

MODULE = "tcache_pytest.interface"


def interface_digest(path):
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return bytes(32)
    kept = b"".join(line for line in data.splitlines(True)
                    if not line.startswith((b" ", b"\t")))
    return hashlib.blake2b(kept, digest_size=32, person=b"fake-ifc").digest()


def lines(paths, mode):
    out = ["%s %s\n" % (interface_digest(p).hex(), p) for p in paths]
    if mode == "upper":
        out = [l[:64].upper() + l[64:] for l in out]
    elif mode == "swap" and len(out) > 1:
        out[0], out[1] = out[1], out[0]
    elif mode == "short":
        out = out[:-1]
    elif mode == "extra":
        out.append(out[-1])
    elif mode == "path":
        out = [l[:65] + "x" + l[66:] for l in out]
    return out


def main(argv):
    if argv[:2] != ["-m", MODULE]:
        sys.stderr.write("fake_interface: called as %r\n" % (argv,))
        return 2
    paths = argv[2:]
    log = os.environ.get("FAKE_IFC_LOG")
    if log:
        with open(log, "a") as f:
            f.write("%d\n" % len(paths))
    mode = os.environ.get("FAKE_IFC_MODE", "")
    if mode == "exit3":
        sys.stderr.write("Traceback (most recent call last):\n"
                         "fake_interface: broken on purpose\n")
        return 3
    sys.stdout.write("".join(lines(paths, mode)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
