"""Sending records from a thread of their own, so that a slow daemon never
holds the tests up: the run only waits for it at the end, and not forever."""

import queue
import threading

from . import proto

# Bytes of one RECORD frame: small enough that each frame's round trip is
# short, big enough to group many records into one transaction.
FRAME_BYTES = 1 << 20


class Recorder:
    def __init__(self, path, timeout):
        self.client = proto.Client(path, timeout=timeout,
                                   name="tcache-pytest-recorder")
        self.queue = queue.Queue()
        self.error = None       # why records were lost, if they were
        self.sent = 0
        self.lost = 0
        self.thread = threading.Thread(target=self._run,
                                       name="tcache-recorder", daemon=True)
        self.thread.start()

    def put(self, encoded):
        """encoded: a list of records as proto.encode_record returns them."""
        self.queue.put(encoded)

    def _run(self):
        while True:
            batch = self.queue.get()
            if batch is None:
                break
            if self.error is not None:
                self.lost += len(batch)
                continue
            try:
                self.client.record_encoded(batch, FRAME_BYTES)
                self.sent += len(batch)
            except (proto.TcacheUnavailable, proto.TcacheError) as e:
                self.error = str(e)
                self.lost += len(batch)
                self.client.close()
        self.client.close()

    def close(self, wait):
        """Waits up to wait seconds for what is queued; False if it was
        not all sent by then (the thread is a daemon: it cannot hold up
        the interpreter's exit)."""
        self.queue.put(None)
        self.thread.join(wait)
        return not self.thread.is_alive()
