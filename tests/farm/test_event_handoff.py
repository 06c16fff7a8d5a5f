"""Tests of farm.event_handoff: events through the builder's shared-memory ring."""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import pytest
import zmq

from farm.event_handoff import EventRing, RingReader


@pytest.fixture
def ring():
    r = EventRing(1 / 16)  # 64 kB
    yield r
    r.close()


def test_frames_come_back_as_written_and_are_a_copy(ring: EventRing) -> None:
    frames = [b"header", zmq.Frame(b"x" * 1001), memoryview(bytes(range(256)))]
    block, descriptor = ring.put(frames)
    reader = RingReader()
    try:
        got = reader.read(descriptor)
        assert [bytes(f) for f in got] == [b"header", b"x" * 1001, bytes(range(256))]
        ring.give_back(block)
        ring.put([b"\xff" * 2000])  # the builder reuses the block...
        assert bytes(got[1]) == b"x" * 1001  # ...the worker's copy is untouched
    finally:
        reader.close()


def _read_in_child(descriptor: dict, out) -> None:
    reader = RingReader()
    out.put([bytes(f) for f in reader.read(descriptor)])
    reader.close()


def test_another_process_reads_the_event(ring: EventRing) -> None:
    _, descriptor = ring.put([b"abc", b"defgh"])
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    child = ctx.Process(target=_read_in_child, args=(descriptor, out))
    child.start()
    try:
        assert out.get(timeout=60) == [b"abc", b"defgh"]
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()


def test_full_ring_sends_inline_and_space_comes_back(ring: EventRing) -> None:
    first = ring.put([bytes(40_000)])
    assert first is not None and ring.put([bytes(40_000)]) is None and ring.inline == 1
    ring.give_back(first[0])
    assert ring.put([bytes(40_000)]) is not None and ring.events == 2


def test_nothing_is_left_in_dev_shm() -> None:
    before = set(Path("/dev/shm").iterdir()) if Path("/dev/shm").exists() else set()
    r = EventRing(1)
    path = r.path
    r.put([b"x"])
    r.close()
    after = set(Path("/dev/shm").iterdir()) if Path("/dev/shm").exists() else set()
    assert after <= before and not os.path.exists(path)


@pytest.mark.parametrize("descriptor", [
    {"path": 3, "offset": 0, "sizes": [1]},
    {"path": "x", "offset": "0", "sizes": [1]},
    {"path": "x", "offset": 0, "sizes": [-1]},
])
def test_malformed_descriptors_are_refused(descriptor: dict) -> None:
    with pytest.raises(ValueError, match="ring descriptor"):
        RingReader().read(descriptor)


def test_descriptor_outside_the_ring_is_refused(ring: EventRing) -> None:
    _, descriptor = ring.put([b"abc"])
    reader = RingReader()
    try:
        with pytest.raises(ValueError, match="outside the ring"):
            reader.read({**descriptor, "offset": ring.space.capacity - 8, "sizes": [64]})
    finally:
        reader.close()


def test_unreachable_ring_is_an_os_error() -> None:
    with pytest.raises(OSError):
        RingReader().read({"path": "/proc/self/fd/999999", "offset": 0, "sizes": [1]})
