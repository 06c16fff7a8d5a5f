"""Wake a ZeroMQ poll loop from other threads: tokens in a queue, signalled on an eventfd.

The worker's main loop sleeps in `zmq.Poller.poll` on the builder's socket; an inference
answer arrives on a gRPC thread (a future's callback). `notify(token)` queues the token and
writes the eventfd, which the poller watches as a plain file descriptor, so the loop wakes at
once without polling the futures in a busy loop.
"""

from __future__ import annotations

import os
import queue
from typing import Any


class Wakeup:
    def __init__(self) -> None:
        self.fd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self._tokens: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.closed = False

    def notify(self, token: Any) -> None:
        """From any thread: hand `token` to the loop and wake it."""
        self._tokens.put(token)
        if self.closed:  # an answer after the loop ended: never write to a descriptor number reused since
            return
        try:
            os.eventfd_write(self.fd, 1)
        except OSError:  # closed at shutdown while a late answer came in: nothing waits for it
            pass

    def drain(self) -> list[Any]:
        """On the loop's thread: the tokens handed over since the last call (clears the signal)."""
        try:
            os.eventfd_read(self.fd)
        except BlockingIOError:
            pass
        out = []
        while True:
            try:
                out.append(self._tokens.get_nowait())
            except queue.Empty:
                return out

    def close(self) -> None:
        self.closed = True
        os.close(self.fd)
