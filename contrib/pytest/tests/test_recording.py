"""A daemon that answers lookups but cannot store records (its disk is
full): every test runs and passes as in plain pytest, and the summary says
in one line that the results were not recorded, and why."""

import os
import shutil
import socket
import struct
import threading

import pytest

from conftest import short_tmpdir
from tcache_pytest import proto


class StorelessDaemon:
    """Speaks HELLO, LOOKUP (every key a miss) and answers RECORD with
    ERROR 7 (STORE), as tcached does on a full disk."""

    def __init__(self):
        self.dir = short_tmpdir("tcf")
        self.path = os.path.join(self.dir, "s")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(self.path)
        self.sock.listen(16)
        self.records = 0
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._client, args=(conn,),
                             daemon=True).start()

    @staticmethod
    def _recv(conn, n):
        buf = b""
        while len(buf) < n:
            chunk = conn.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def _client(self, conn):
        with conn:
            try:
                while True:
                    (n,) = struct.unpack(">I", self._recv(conn, 4))
                    body = self._recv(conn, n)
                    conn.sendall(self._answer(body))
            except (EOFError, OSError):
                return

    def _answer(self, body):
        t = body[0]
        if t == proto.HELLO:
            out = bytes([t | proto.REPLY]) + proto.u32(1) + \
                proto.u32(4) + b"fake"
        elif t == proto.LOOKUP:
            (n,) = struct.unpack(">I", body[1:5])
            out = bytes([t | proto.REPLY]) + proto.u32(n) + bytes(n)
        else:
            if t == proto.RECORD:
                self.records += 1
            msg = b"database or disk is full"
            out = bytes([proto.ERROR]) + struct.pack(">H", 7) + \
                proto.u32(len(msg)) + msg
        return proto.u32(len(out)) + out

    def close(self):
        self.sock.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def storeless():
    d = StorelessDaemon()
    yield d
    d.close()


@pytest.mark.parametrize("xdist", [False, True])
def test_records_refused_are_reported_once(tc, storeless, xdist):
    tc.write({"pytest.ini": "[pytest]\n",
              "test_r.py": """\
                  from ranlog import ran

                  def test_a():
                      ran()

                  def test_b():
                      ran()
                  """})
    tc.monkeypatch.setenv("TCACHE_SOCKET", storeless.path)
    args = ["-n", "2"] if xdist else []
    for _ in range(2):
        r = tc.run(*args)
        assert r.ret == 0, r
        assert r.outcomes == {"passed": 2}, r
        assert r.ran == {"test_r.py::test_a", "test_r.py::test_b"}, r
        lines = [ln for ln in r.text.splitlines()
                 if "not recorded" in ln]
        assert len(lines) == 1, r
        assert "disk is full" in lines[0], r
        assert "unavailable" not in r.text, r
    assert storeless.records >= 2
