"""The tcache protocol (proto/PROTOCOL.md) in pure Python: key derivation and
a small blocking client for HELLO, LOOKUP, RECORD and STATS.

Nothing here raises on a daemon problem except TcacheUnavailable, which the
plugin turns into "run everything as plain pytest".
"""

import hashlib
import os
import socket
import struct

PROTO_VERSION = 1
DIGEST_LEN = 32
ZERO_DIGEST = bytes(DIGEST_LEN)

HELLO, STATUS, LOOKUP, RECORD, INVALIDATE, STATS = 1, 2, 3, 4, 5, 6
REPLY, ERROR = 0x80, 0xFF

PASS, FAIL, SKIP, ERRORED = 1, 2, 3, 4
INPUT_FILE, INPUT_FOUND, INPUT_ENV, INPUT_INTERFACE = 0, 1, 2, 3

# proto/limits.h
MAX_FRAME = 4 * 1024 * 1024
MAX_BATCH = 4096
MAX_INPUTS = 16384
MAX_PATH = 4096
MAX_TEST = 4096
MAX_NAME = 256
MAX_MESSAGE = 1024

ERROR_NAMES = {1: "MALFORMED", 2: "UNKNOWN", 3: "VERSION", 4: "TOO_LARGE",
               5: "LIMIT", 6: "HANDSHAKE", 7: "STORE", 8: "DENIED", 9: "BUSY"}


# --- keys ---

def _blake(data=b"", person=b""):
    return hashlib.blake2b(data, digest_size=DIGEST_LEN, person=person)


def u32(n):
    return struct.pack(">I", n)


def _str(b):
    return u32(len(b)) + b


def file_digest_bytes(data):
    return _blake(data).digest()


def file_digest(path):
    """BLAKE2b-256 of a file's bytes; the zero digest when it is absent."""
    h = _blake()
    try:
        with open(path, "rb") as f:
            while True:
                chunk = f.read(1 << 16)
                if not chunk:
                    break
                h.update(chunk)
    except (FileNotFoundError, NotADirectoryError):
        return ZERO_DIGEST
    except IsADirectoryError:
        return ZERO_DIGEST
    return h.digest()


def _sorted_digest(pairs, person, what, encode):
    """BLAKE2b over u32(n) and encode(name, value) of each pair, sorted by
    name (raw bytes); a name twice is an error."""
    items = sorted(pairs, key=lambda kv: kv[0])
    h = _blake(person=person)
    h.update(u32(len(items)))
    for i, (name, value) in enumerate(items):
        if i and items[i - 1][0] == name:
            raise ValueError("duplicate %s %r" % (what, name))
        h.update(encode(name, value))
    return h.digest()


def source_digest(files):
    """files: iterable of (path bytes, digest), any order, no duplicates."""
    return _sorted_digest(files, b"tcache-src-v1", "input",
                          lambda path, digest: _str(path) + digest)


def encode_str(b):
    """str(b) of the wire format and the digests: u32 length, bytes."""
    return _str(b)


def source_digest_encoded(items):
    """source_digest of the files given as (path bytes, str(path) ||
    digest, ...) tuples sorted by path: for a caller that encodes each file
    once for many digests."""
    names = [item[0] for item in items]
    if len(set(names)) != len(names):
        raise ValueError("duplicate input in %r" % (names,))
    if names != sorted(names):
        raise ValueError("inputs not sorted by path")
    h = _blake(person=b"tcache-src-v1")
    h.update(u32(len(items)))
    h.update(b"".join([item[1] for item in items]))
    return h.digest()


def env_digest(env):
    """env: iterable of (name bytes, value bytes or None for unset)."""
    return _sorted_digest(
        env, b"tcache-env-v1", "variable",
        lambda name, value: _str(name) +
        (b"\x00" if value is None else b"\x01" + _str(value)))


def derive_key(project, test, src, envd):
    h = _blake(person=b"tcache-key-v1")
    h.update(_str(project) + _str(test) + src + envd)
    return h.digest()


def env_value_digest(value):
    """What an entry stores for an environment variable (never the value)."""
    return ZERO_DIGEST if value is None else file_digest_bytes(value)


# --- wire ---

class TcacheUnavailable(Exception):
    """The daemon cannot be reached, timed out, or answered nonsense."""


class TcacheError(Exception):
    """The daemon answered with an error reply."""

    def __init__(self, code, message):
        super().__init__("tcached: %s (%s)" % (message,
                                                ERROR_NAMES.get(code, code)))
        self.code = code


class _Reader:
    def __init__(self, data):
        self.data = data
        self.pos = 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise TcacheUnavailable("truncated reply from tcached")
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b

    def u8(self):
        return self.take(1)[0]

    def u16(self):
        return struct.unpack(">H", self.take(2))[0]

    def u32(self):
        return struct.unpack(">I", self.take(4))[0]

    def u64(self):
        return struct.unpack(">Q", self.take(8))[0]

    def str(self):
        return self.take(self.u32())

    def done(self):
        if self.pos != len(self.data):
            raise TcacheUnavailable("trailing bytes in a reply from tcached")


class LookupResult:
    __slots__ = ("found", "outcome", "flaky", "duration_us", "created_ms",
                 "expires_ms", "inputs")

    def __init__(self):
        self.found = False
        self.outcome = 0
        self.flaky = False
        self.duration_us = 0
        self.created_ms = 0
        self.expires_ms = 0
        self.inputs = []        # (kind, path bytes, digest)

    def is_pass(self):
        return self.found and self.outcome == PASS and not self.flaky


def default_socket():
    for name, suffix in (("TCACHE_SOCKET", ""),
                         ("XDG_RUNTIME_DIR", "/tcache/tcached.sock")):
        v = os.environ.get(name)
        if v:
            return v + suffix
    return "/tmp/tcache-%d/tcached.sock" % os.getuid()


class Client:
    """One connection to tcached; every call is bounded by timeout seconds."""

    readonly = False        # the daemon said it serves us read-only

    def __init__(self, path=None, timeout=2.0, name="tcache-pytest"):
        self.path = path or default_socket()
        self.timeout = timeout
        self.name = name
        self.sock = None

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def connect(self):
        if self.sock is not None:
            return
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.path)
        except OSError as e:
            s.close()
            raise TcacheUnavailable("%s: %s" % (self.path, e.strerror or e))
        self.sock = s
        r = self._call(HELLO, u32(PROTO_VERSION) + _str(self.name.encode()))
        r.u32()
        # tcached names itself, and says when it serves this peer read-only.
        self.readonly = r.str().endswith(b" read-only")
        r.done()

    def _recv(self, n):
        buf = bytearray(n)
        view = memoryview(buf)
        got = 0
        while got < n:
            k = self.sock.recv_into(view[got:])
            if not k:
                raise TcacheUnavailable("tcached closed the connection")
            got += k
        return bytes(buf)

    def _call(self, mtype, fields):
        body = bytes([mtype]) + fields
        try:
            self.sock.sendall(u32(len(body)) + body)
            (length,) = struct.unpack(">I", self._recv(4))
            if length == 0 or length > MAX_FRAME:
                raise TcacheUnavailable("bad frame length from tcached")
            reply = self._recv(length)
        except (OSError, socket.timeout) as e:
            self.close()
            raise TcacheUnavailable("%s: %s" % (self.path, e))
        except TcacheUnavailable:
            self.close()
            raise
        r = _Reader(reply)
        t = r.u8()
        if t == ERROR:
            code, msg = r.u16(), r.str().decode(errors="replace")
            if code not in (5, 7):
                self.close()
            raise TcacheError(code, msg)
        if t != mtype | REPLY:
            self.close()
            raise TcacheUnavailable("unexpected reply type %d" % t)
        return r

    def call(self, mtype, fields=b""):
        self.connect()
        return self._call(mtype, fields)

    def lookup(self, keys):
        """One LookupResult per key, in order; batched by MAX_BATCH."""
        out = []
        for i in range(0, len(keys), MAX_BATCH):
            chunk = keys[i:i + MAX_BATCH]
            r = self.call(LOOKUP, u32(len(chunk)) + b"".join(chunk))
            n = r.u32()
            if n != len(chunk):
                raise TcacheUnavailable("lookup reply of the wrong size")
            r.pos = _read_results(r.data, r.pos, n, out)
            r.done()
        return out

    def record(self, records):
        """records: list of dicts (see encode_record).  Returns the status
        list (0 stored, 1 stored and now flaky); batched by frame size."""
        return self.record_encoded([encode_record(**r) for r in records])

    def record_encoded(self, encoded, frame_bytes=MAX_FRAME - 64):
        """encoded: records as encode_record returns them.  Frames hold at
        most MAX_BATCH records and frame_bytes bytes."""
        status = []
        batch, size = [], 0
        for enc in encoded:
            if batch and (len(batch) == MAX_BATCH or
                          size + len(enc) > frame_bytes):
                status += self._record_frame(batch)
                batch, size = [], 0
            batch.append(enc)
            size += len(enc)
        if batch:
            status += self._record_frame(batch)
        return status

    def _record_frame(self, encoded):
        r = self.call(RECORD, u32(len(encoded)) + b"".join(encoded))
        n = r.u32()
        st = [r.u8() for _ in range(n)]
        r.done()
        return st

    def stats(self):
        r = self.call(STATS, b"\x00")
        out = {}
        for _ in range(r.u32()):
            name = r.str().decode()
            out[name] = r.u64()
        r.done()
        return out


_U32 = struct.Struct(">I")
_FOUND = struct.Struct(">BBQQQI")     # outcome, flaky, duration, created,
                                      # expires, input count


def _read_results(data, pos, n, out):
    """Appends n LookupResults read from data (a LOOKUP reply) at pos;
    returns the position after them.  Fields are unpacked in place, not
    through a _Reader call each: a warm run reads one result per test."""
    end = len(data)
    u32_at, found_at = _U32.unpack_from, _FOUND.unpack_from
    try:
        for _ in range(n):
            res = LookupResult()
            flag = data[pos]
            pos += 1
            if flag:
                if flag != 1:
                    raise TcacheUnavailable("bad found flag from tcached")
                (res.outcome, flaky, res.duration_us, res.created_ms,
                 res.expires_ms, count) = found_at(data, pos)
                if flaky > 1:
                    raise TcacheUnavailable("bad flaky flag from tcached")
                res.found, res.flaky = True, bool(flaky)
                pos += _FOUND.size
                inputs = res.inputs
                for _ in range(count):
                    kind = data[pos]
                    (length,) = u32_at(data, pos + 1)
                    p = pos + 5 + length
                    if p + DIGEST_LEN > end:
                        raise TcacheUnavailable("truncated reply from "
                                                "tcached")
                    inputs.append((kind, data[pos + 5:p],
                                   data[p:p + DIGEST_LEN]))
                    pos = p + DIGEST_LEN
            out.append(res)
    except (IndexError, struct.error):
        raise TcacheUnavailable("truncated reply from tcached")
    return pos


def _limited(b, limit):
    return b[:limit]


def encode_inputs(inputs):
    """inputs: list of (kind, path bytes, digest), as a record's input
    list holds them, without the count."""
    return b"".join(bytes([kind]) + _str(path) + digest
                    for kind, path, digest in inputs)


def encode_record(key, test, project, root, outcome, duration_us, ttl_ms,
                  message, inputs=None, inputs_blob=None, ninputs=0):
    """inputs: list of (kind, path bytes, digest); or inputs_blob, the
    encode_inputs of ninputs inputs, for a caller that reuses its parts."""
    if inputs is not None:
        inputs_blob, ninputs = encode_inputs(inputs), len(inputs)
    if ninputs > MAX_INPUTS:
        raise ValueError("more than %d inputs" % MAX_INPUTS)
    return b"".join([key, _str(project), _str(test), _str(root),
                     bytes([outcome]), struct.pack(">QQ", duration_us, ttl_ms),
                     _str(_limited(message, MAX_MESSAGE)), u32(ninputs),
                     inputs_blob])
