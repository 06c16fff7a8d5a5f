"""farm.wakeup: tokens handed from other threads wake a ZeroMQ poll at once."""

from __future__ import annotations

import threading
import time

import zmq

from farm.wakeup import Wakeup


def test_a_token_from_another_thread_wakes_the_poll_and_is_drained_once():
    wakeup = Wakeup()
    poller = zmq.Poller()
    poller.register(wakeup.fd, zmq.POLLIN)
    try:
        assert poller.poll(0) == [] and wakeup.drain() == []
        timer = threading.Timer(0.05, lambda: [wakeup.notify(t) for t in (1, 2)])
        start = time.monotonic()
        timer.start()
        assert dict(poller.poll(5000)).get(wakeup.fd) == zmq.POLLIN
        assert time.monotonic() - start < 2.0
        timer.join(2.0)
        assert wakeup.drain() == [1, 2]
        assert poller.poll(0) == [] and wakeup.drain() == []  # the signal is cleared with the tokens
    finally:
        wakeup.close()


def test_a_late_notify_after_close_writes_nothing():
    wakeup = Wakeup()
    wakeup.close()
    wakeup.notify(7)  # an answer arriving while the worker stops: neither raises nor writes
    assert wakeup.closed
