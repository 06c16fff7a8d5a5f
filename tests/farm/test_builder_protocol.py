"""The builder's side of the worker protocol, on real ZeroMQ sockets, with the test playing
the workers, the supervisor and the collector (the builder runs in a thread).

What a worker's death, silence or stray messages may and may not do: a result and the
release of its event travel together; a dead worker's late credits create nothing; a
malformed control message is counted, never fatal; a silent worker is reported.
"""

from __future__ import annotations

import gc
import queue
import threading
import time
from collections.abc import Iterator

import msgpack
import pytest
import zmq

from farm import messages
from farm.builder import GC_THRESHOLD, Builder, quiet_gc
from farm.event_handoff import RingReader
from trigger_sim import clock
from trigger_sim.config import load_config, with_overrides
from trigger_sim.simulation import event_fragments
from trigger_sim.wire import decode_fragment, encode_fragment

pytestmark = pytest.mark.timeout(60)


class Harness:
    def __init__(self, builder: dict | None = None, **worker: float):
        self.config = with_overrides(load_config(), physics={"pileup_mean": 0.0}, worker=worker or {}, builder=builder or {})
        self.ctx = zmq.Context()
        self.collector = self.ctx.socket(zmq.PULL)
        port = self.collector.bind_to_random_port("tcp://127.0.0.1")
        self.builder = Builder(self.config, f"tcp://127.0.0.1:{port}")
        self.ready: queue.Queue = queue.Queue()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.builder.run, args=(self.ready, self.stop), daemon=True)
        self.thread.start()
        self.endpoints = self.ready.get(timeout=10)[1]
        self.readout = self.ctx.socket(zmq.PUSH)
        self.readout.connect(self.endpoints["fragments"])
        self.control = self.ctx.socket(zmq.PUSH)
        self.control.connect(self.endpoints["control"])
        self.workers: dict[str, zmq.Socket] = {}

    def worker(self, identity: str) -> zmq.Socket:
        sock = self.ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.IDENTITY, identity.encode())
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(self.endpoints["work"])
        self.workers[identity] = sock
        return sock

    def send_event(self, l1_id: int) -> None:
        for frag in event_fragments(self.config, l1_id, 0):
            self.readout.send_multipart(encode_fragment(frag))

    def receive(self, sock: zmq.Socket, timeout_ms: int = 10_000) -> list[bytes] | None:
        return sock.recv_multipart() if sock.poll(timeout_ms) else None

    def receive_events(self, sock: zmq.Socket, n: int) -> list[messages.ReceivedEvent]:
        """`n` events, from however many EVENT messages they come in."""
        out: list[messages.ReceivedEvent] = []
        while len(out) < n:
            msg = self.receive(sock)
            assert msg is not None and msg[0] == messages.EVENT, f"{len(out)} of {n} events came"
            out += messages.read_event_message(msg[1:])
        return out

    def collected(self, timeout_ms: int = 3000) -> list[list[bytes]]:
        """What reached the collector, a message per event (a RESULT with several split)."""
        out = []
        while self.collector.poll(timeout_ms):
            msg = self.collector.recv_multipart()
            if msg[0] == messages.RESULT:
                one_each, problem = messages.split_results(msg)
                assert not problem
                out += one_each
            else:
                out.append(msg)
            timeout_ms = 200
        return out

    def close(self) -> list[list[bytes]]:
        self.stop.set()
        self.thread.join(10)
        rest = self.collected(500)
        for sock in (self.collector, self.readout, self.control, *self.workers.values()):
            sock.close(linger=0)
        self.ctx.term()
        return rest


@pytest.fixture(scope="module", autouse=True)
def compiled_kernels() -> None:
    """Simulate and check one event first: in a fresh clone the simulation's and the
    fragment checks' kernels compile on first use, seconds that are no part of any test."""
    config = with_overrides(load_config(), physics={"pileup_mean": 0.0})
    for frag in event_fragments(config, 0, 0):
        decode_fragment(encode_fragment(frag))


@pytest.fixture
def harness() -> Iterator[Harness]:
    h = Harness()
    yield h
    if h.thread.is_alive():
        h.close()


def ready(sock: zmq.Socket, credits: int = 1) -> None:
    sock.send_multipart([messages.READY, messages.pack_meta({"credits": credits})])


def decision(l1_id: int, outcome: str = "rejected", forced: bool = False) -> bytes:
    meta = {"l1_id": l1_id, "outcome": outcome, "streams": ["HltTimeout"] if outcome == "debug" else [], "chains": [],
            "steps_ms": {}, "received_ns": 1, "decided_ns": 2, "worker": "w"}
    if forced:
        meta["forced"] = True
    return messages.pack_meta(meta)


def result(sock: zmq.Socket, l1_id: int, outcome: str = "rejected", forced: bool = False) -> None:
    sock.send_multipart([messages.RESULT, decision(l1_id, outcome, forced)])


def kinds(msgs: list[list[bytes]]) -> list[bytes]:
    return [m[0] for m in msgs]


def test_an_event_is_released_only_with_its_result_and_retried_after_the_worker_dies(harness):
    a = harness.worker("worker-a.0")
    ready(a)
    harness.send_event(0)
    event = harness.receive(a)
    assert event[0] == messages.EVENT and messages.unpack_id(event[1]) == 0
    # worker a dies without a result: the event goes to another worker, a second delivery
    harness.control.send_multipart([messages.WORKER_DIED, messages.pack_meta({"identity": "worker-a.0"})])
    b = harness.worker("worker-b.0")
    ready(b)
    again = harness.receive(b)
    assert again is not None and messages.unpack_id(again[1]) == 0
    assert event_meta(again)["attempt"] == 2
    result(b, 0, "accepted")
    out = harness.collected()
    assert kinds(out) == [messages.RESULT]
    ours = messages.unpack_meta(out[0][2])
    assert ours["attempt"] == 2 and ours["frames_per_fragment"], "an accepted event leaves with its fragments"
    stats = [m for m in harness.close() if m[0] == messages.STATS]
    assert msgpack.unpackb(stats[0][1])["counters"]["retried_after_worker_loss"] == 1


def test_a_batch_held_by_a_dying_worker_is_retried_event_by_event_then_sent_to_hlt_error(harness):
    """Events that wait for credits leave together, one message, each with its own ring
    block; the worker holding the batch dies: each is retried once on another worker; that
    one answers two in one message and dies too: those two count, the other two go to
    HltError, each event once."""
    for l1_id in range(4):
        harness.send_event(l1_id)
    time.sleep(0.5)  # built and waiting for a worker
    a = harness.worker("worker-a.0")
    ready(a, 4)
    batch = harness.receive(a)
    assert batch[0] == messages.EVENT and messages.unpack_ids(batch[1]) == [0, 1, 2, 3], "one message, oldest first"
    first = messages.read_event_message(batch[1:])
    assert len({e.meta["ring"]["offset"] for e in first}) == 4 and {e.meta["attempt"] for e in first} == {1}
    harness.control.send_multipart([messages.WORKER_DIED, messages.pack_meta({"identity": "worker-a.0"})])
    b = harness.worker("worker-b.0")
    ready(b, 4)
    again = harness.receive_events(b, 4)
    assert sorted(e.l1_id for e in again) == [0, 1, 2, 3] and {e.meta["attempt"] for e in again} == {2}
    b.send_multipart([messages.RESULT, decision(0, "accepted"), decision(2)])  # two decisions, one message
    time.sleep(0.3)
    harness.control.send_multipart([messages.WORKER_DIED, messages.pack_meta({"identity": "worker-b.0"})])
    out = harness.collected() + harness.close()
    decided = {messages.unpack_meta(m[1])["l1_id"]: m for m in out if m[0] == messages.RESULT}
    failed = {messages.unpack_meta(m[1])["l1_id"]: messages.unpack_meta(m[1]) for m in out if m[0] == messages.MISSING}
    assert sorted(decided) == [0, 2] and sorted(failed) == [1, 3]
    assert all(f["stream"] == "HltError" and "after 2 attempts" in f["reason"] for f in failed.values())
    assert messages.unpack_meta(decided[0][2])["frames_per_fragment"], "the accepted one leaves with its fragments"
    times = {l1_id: messages.unpack_meta(m[2])["complete_ns"] for l1_id, m in decided.items()}
    assert times[0] != times[2], "each event keeps its own stamps"


def test_the_result_carries_the_first_fragments_arrival_so_build_starts_there(harness):
    """The collector splits an event's time before it is complete at `first_ns`: the wait
    for a node (in the readout) before it, the build proper after it. A fragment held back
    200 ms must show in complete - first, and the Level-1 time must not move first_ns."""
    a = harness.worker("worker-a.0")
    ready(a)
    frags = [encode_fragment(f) for f in event_fragments(harness.config, 5, 0)]
    before_ns = clock.now_ns()
    for frames in frags[:-1]:
        harness.readout.send_multipart(frames)
    time.sleep(0.2)
    harness.readout.send_multipart(frags[-1])
    assert harness.receive(a) is not None
    result(a, 5, "accepted")
    out = harness.collected()
    ours = messages.unpack_meta(out[0][2])
    assert before_ns <= ours["first_ns"] < before_ns + 150_000_000, "first_ns: when the first fragment arrived"
    assert ours["complete_ns"] - ours["first_ns"] >= 200_000_000, "the held-back fragment is build time"
    harness.close()


def test_a_dead_workers_late_credit_and_result_create_nothing(harness):
    a = harness.worker("worker-a.0")
    ready(a)
    harness.send_event(0)
    assert harness.receive(a) is not None
    harness.control.send_multipart([messages.WORKER_DIED, messages.pack_meta({"identity": "worker-a.0"})])
    time.sleep(0.3)
    result(a, 0)  # read after WORKER_DIED: stale
    ready(a, 5)  # must not recreate credits for a dead identity
    harness.send_event(1)
    assert harness.receive(a, 1000) is None, "an event was sent to a worker reported dead"
    b = harness.worker("worker-b.0")
    ready(b, 2)
    got = sorted(e.l1_id for e in harness.receive_events(b, 2))
    assert got == [0, 1]
    result(b, 0)
    result(b, 1)
    out = harness.collected() + harness.close()
    assert kinds(out).count(messages.RESULT) == 2
    counters = msgpack.unpackb([m for m in out if m[0] == messages.STATS][0][1])["counters"]
    assert counters["stale_results_dropped"] == 1


def test_forced_decision_first_then_the_main_threads_result_is_dropped(harness):
    a = harness.worker("worker-a.0")
    wd = harness.worker("worker-a.0" + messages.WATCHDOG_SUFFIX)
    ready(a)
    harness.send_event(0)
    assert harness.receive(a) is not None
    result(wd, 0, "debug", forced=True)
    time.sleep(0.2)
    harness.send_event(1)
    assert harness.receive(a, 500) is None, "the forced decision must not free the worker's slot"
    result(a, 0, "accepted")  # the main thread comes back: its result is late, its slot free
    assert messages.unpack_id(harness.receive(a)[1]) == 1
    result(a, 1)
    out = harness.collected() + harness.close()
    decided = [msgpack.unpackb(m[1]) for m in out if m[0] == messages.RESULT]
    assert [(d["l1_id"], d["outcome"]) for d in decided] == [(0, "debug"), (1, "rejected")]


@pytest.mark.parametrize("bad", [
    [messages.WORKER_DIED, messages.pack_meta({})],  # no identity
    [messages.WORKER_DIED, messages.pack_meta([1, 2])],  # not a map
    [messages.WORKER_DIED, b"\xc1"],  # not msgpack
    [b"WHAT", messages.pack_meta({"identity": "x"})],
    [messages.WORKER_DIED],
])
def test_a_malformed_control_message_is_counted_and_the_builder_goes_on(harness, bad):
    harness.control.send_multipart(bad)
    a = harness.worker("worker-a.0")
    ready(a)
    harness.send_event(0)
    assert harness.receive(a) is not None, "the builder stopped serving after a bad control message"
    result(a, 0)
    out = harness.collected() + harness.close()
    counters = msgpack.unpackb([m for m in out if m[0] == messages.STATS][0][1])["counters"]
    assert counters["bad_control_messages"] == 1


def test_a_malformed_result_sends_the_event_to_hlt_error_not_nowhere(harness):
    a = harness.worker("worker-a.0")
    ready(a)
    harness.send_event(0)
    assert harness.receive(a) is not None
    a.send_multipart([messages.RESULT, messages.pack_meta({"l1_id": 0, "outcome": "maybe"})])
    out = harness.collected()
    assert kinds(out) == [messages.MISSING]
    meta = msgpack.unpackb(out[0][1])
    assert meta["stream"] == "HltError" and "malformed result" in meta["reason"]
    harness.close()


def heartbeat(sock: zmq.Socket, received: int) -> None:
    sock.send_multipart([messages.HEARTBEAT, messages.pack_meta({"received": received})])


def test_a_silent_worker_is_reported_once_its_event_retried_and_an_idle_one_left_alone():
    h = Harness(budget_ms=500.0, stall_margin_ms=1500.0)
    try:
        a, b = h.worker("worker-a.0"), h.worker("worker-b.0")
        ready(a)
        h.send_event(0)
        assert h.receive(a) is not None  # then silence: no heartbeat, no result
        ready(b)  # b stays idle, with a heartbeat every 0.5 s
        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:
            heartbeat(b, 0)
            time.sleep(0.5)
        got = h.receive(b, 2000)  # a's event, retried on b
        assert got is not None and messages.unpack_id(got[1]) == 0
        out = h.collected(500)
        stalled = [msgpack.unpackb(m[1]) for m in out if m[0] == messages.STALLED]
        assert [s["identity"] for s in stalled] == ["worker-a.0"] and stalled[0]["silent_s"] > 2.0
        result(b, 0)
    finally:
        h.close()


def test_an_idle_worker_that_received_everything_has_its_orphaned_event_retried(harness):
    """A worker that could not read an event's id answered nothing for it; its heartbeat
    says it is idle and has received every event sent to it: the event is retried."""
    a = harness.worker("worker-a.0")
    ready(a)
    harness.send_event(0)
    assert harness.receive(a) is not None
    heartbeat(a, 0)  # not yet received (as far as this heartbeat says): nothing happens
    ready(a)  # the worker asks for another instead of answering
    harness.send_event(1)
    assert messages.unpack_id(harness.receive(a)[1]) == 1
    heartbeat(a, 2)  # idle, both received, neither answered: both are orphaned
    ready(a, 2)
    again = harness.receive_events(a, 2)
    assert sorted(e.l1_id for e in again) == [0, 1]
    assert all(e.meta["attempt"] == 2 for e in again)
    result(a, 0)
    result(a, 1)
    out = harness.close()
    assert [m[0] for m in out].count(messages.RESULT) == 2
    counters = msgpack.unpackb([m for m in out if m[0] == messages.STATS][0][1])["counters"]
    assert counters["orphaned_events_retried"] == 2


def test_a_watchdog_connection_cannot_ask_for_events(harness):
    wd = harness.worker("worker-a.0" + messages.WATCHDOG_SUFFIX)
    ready(wd, 3)
    harness.send_event(0)
    assert harness.receive(wd, 800) is None
    out = harness.close()
    counters = msgpack.unpackb([m for m in out if m[0] == messages.STATS][0][1])["counters"]
    assert counters["bad_control_messages"] == 1
    assert [msgpack.unpackb(m[1])["stream"] for m in out if m[0] == messages.MISSING] == ["NotProcessed"]


def test_at_shutdown_a_late_result_is_forwarded_and_the_event_not_also_not_processed(harness):
    a = harness.worker("worker-a.0")
    ready(a)
    harness.send_event(0)
    assert harness.receive(a) is not None
    result(a, 0, "accepted")
    out = harness.close()  # stop right after: the builder reads the result before its last reports
    assert [m[0] for m in out if m[0] in (messages.RESULT, messages.MISSING)] == [messages.RESULT]


def event_meta(event: list[bytes]) -> dict:
    """The metadata of the one event in an EVENT message."""
    (received,) = messages.read_event_message(event[1:])
    return received.meta


def event_bytes(harness: Harness, event: list[bytes], reader: RingReader) -> list[bytes]:
    """The frames of an EVENT message with one event: from the builder's ring, or inside the message."""
    (received,) = messages.read_event_message(event[1:])
    return [bytes(f) for f in reader.read(received.meta["ring"])] if "ring" in received.meta else received.inline


@pytest.mark.parametrize("ring_mb", [32.0, 0.0])
def test_the_event_reaches_the_worker_through_the_ring_or_inline(ring_mb: float):
    harness = Harness(builder={"event_ring_mb": ring_mb})
    reader = RingReader()
    try:
        a = harness.worker("worker-a.0")
        ready(a)
        harness.send_event(0)
        event = harness.receive(a)
        meta = event_meta(event)
        assert ("ring" in meta) == (ring_mb > 0) and len(event) == (3 if ring_mb else 3 + sum(meta["frames_per_fragment"]))
        sent = [[bytes(memoryview(f).cast("B")) for f in encode_fragment(frag)] for frag in event_fragments(harness.config, 0, 0)]
        got = messages.split(meta["frames_per_fragment"], event_bytes(harness, event, reader))
        assert sorted(got) == sorted(sent)
        if ring_mb:
            assert harness.builder.ring.space.used > 0
        # the worker dies holding it: the retry's descriptor points at the same bytes
        harness.control.send_multipart([messages.WORKER_DIED, messages.pack_meta({"identity": "worker-a.0"})])
        b = harness.worker("worker-b.0")
        ready(b)
        again = harness.receive(b)
        assert messages.split(event_meta(again)["frames_per_fragment"], event_bytes(harness, again, reader)) == got
        result(b, 0, "accepted")
        out = harness.collected()
        assert kinds(out) == [messages.RESULT] and len(out[0]) == 3 + sum(meta["frames_per_fragment"])
        if ring_mb:
            assert harness.builder.ring.space.used == 0, "the event left: its block is free again"
        stats = messages.unpack_meta([m for m in harness.close() if m[0] == messages.STATS][0][1])["counters"]
        assert stats["events_through_ring"] == (2 if ring_mb else 0) and stats["events_inline"] == 0
    finally:
        reader.close()
        if harness.thread.is_alive():
            harness.close()


def test_quiet_gc_freezes_what_is_alive_and_collects_the_young_less_often():
    before = gc.get_threshold()
    try:
        quiet_gc()
        assert gc.get_threshold() == (GC_THRESHOLD, *before[1:])
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
