"""The collector on a real socket: any malformed message is counted and dropped, a flood is
read in bounded turns, and the readout's ids arrive in chunks that must add up."""

from __future__ import annotations

import time

import msgpack
import pytest
import zmq

from farm import messages
from farm.collector import Collector
from trigger_sim.config import load_config, with_overrides

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def collector():
    ctx = zmq.Context()
    c = Collector(ctx, with_overrides(load_config(), output={"write_streams": False}), None)
    push = ctx.socket(zmq.PUSH)
    push.connect(c.endpoint)
    yield c, push
    push.close(linger=0)
    c.close()
    ctx.term()


def drain(c: Collector, expected: int) -> None:
    deadline = time.monotonic() + 5
    while c.bad_messages + c.ledger.decided + len(c.worker_stats) < expected and time.monotonic() < deadline:
        c.poll(50)


BAD = [
    [messages.STATS, msgpack.packb({"role": "worker", "identity": "w", "counters": [1, 2]})],  # a list where a map is expected
    [messages.RESULT, msgpack.packb([1, 2, 3])],
    [messages.RESULT, msgpack.packb({"l1_id": 1, "outcome": "accepted", "streams": [], "chains": [], "steps_ms": {},
                                     "received_ns": 1, "decided_ns": 2})],  # no builder metadata
    [messages.END, msgpack.packb({"l1_accepted": "many", "id_chunks": 0})],
    [messages.L1_IDS, msgpack.packb({"chunk": 0, "ranges": [[5, 1]]})],
    [messages.STALLED, msgpack.packb({"identity": "w"})],
    [messages.MISSING, msgpack.packb({"l1_id": None})],
    [b"NONSENSE", msgpack.packb({})],
    [messages.RESULT],
    [messages.END, b"\xc1\xc1"],
]


def test_each_malformed_message_is_counted_and_the_collector_goes_on(collector):
    c, push = collector
    for msg in BAD:
        push.send_multipart(msg)
    push.send_multipart([messages.STATS, msgpack.packb({"role": "worker", "identity": "w0", "counters": {"processed": 3}})])
    drain(c, len(BAD) + 1)
    assert c.bad_messages == len(BAD)
    assert c.worker_stats == {"w0": {"processed": 3}}
    assert c.end is None and c.ledger.decided == 0


def test_a_flood_is_read_in_bounded_turns(collector):
    c, push = collector
    for i in range(2500):
        push.send_multipart([messages.STATS, msgpack.packb({"role": "worker", "identity": f"w{i}", "counters": {}})])
    time.sleep(0.5)
    counts = []
    deadline = time.monotonic() + 10
    while sum(counts) < 2500 and time.monotonic() < deadline:
        counts.append(c.poll(200, max_messages=1000))
    assert sum(counts) == 2500 and max(counts) <= 1000


def test_end_counts_only_when_its_id_chunks_add_up(collector):
    c, push = collector
    push.send_multipart([messages.END, msgpack.packb({"l1_accepted": 5, "id_chunks": 2})])
    push.send_multipart([messages.L1_IDS, msgpack.packb({"chunk": 1, "ranges": [[10, 12]]})])
    deadline = time.monotonic() + 5
    while c.poll(50) < 1 and time.monotonic() < deadline:
        pass
    c.poll(200)
    assert c.end is None, "END must wait for every chunk it announced"
    push.send_multipart([messages.L1_IDS, msgpack.packb({"chunk": 0, "ranges": [[0, 3]]})])
    deadline = time.monotonic() + 5
    while c.end is None and time.monotonic() < deadline:
        c.poll(50)
    assert list(c.expected_ids()) == [0, 1, 2, 10, 11] and c.n_unaccounted() == 5


def test_end_whose_chunks_do_not_add_up_is_refused(collector):
    c, push = collector
    push.send_multipart([messages.L1_IDS, msgpack.packb({"chunk": 0, "ranges": [[0, 3]]})])
    push.send_multipart([messages.END, msgpack.packb({"l1_accepted": 4, "id_chunks": 1})])
    drain(c, 1)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and not c.bad_messages:
        c.poll(50)
    assert c.end is None and c.bad_messages == 1 and c.expected_ids() is None


def test_metrics_count_each_counted_event_as_the_ledger_does():
    """The Prometheus counters follow the ledger: a duplicate result is refused by both, a
    MISSING is a debug event, and the readout's running counts are kept apart from workers'."""
    from trigger_sim.metrics import SupervisorMetrics

    ctx = zmq.Context()
    metrics = SupervisorMetrics(500.0, "127.0.0.1:8001")
    c = Collector(ctx, with_overrides(load_config(), output={"write_streams": False}), None, metrics=metrics)
    push = ctx.socket(zmq.PUSH)
    push.connect(c.endpoint)
    try:
        ours = messages.pack_meta({"l1_time_ns": 0, "first_ns": 500_000, "complete_ns": 1_000_000, "dispatched_ns": 2_000_000})
        accepted = {"l1_id": 0, "outcome": "accepted", "streams": ["Main"], "chains": ["HLT_x"], "steps_ms": {"graph": 1.0},
                    "received_ns": 3_000_000, "decided_ns": 40_000_000, "worker": "w", "inference_path": "fallback",
                    "inference_reason": "deadline", "inference": {"edge_classifier": "fallback"}}
        for meta in (accepted, accepted, {**accepted, "l1_id": 1, "outcome": "rejected", "streams": [], "chains": [],
                                                  "inference_path": "triton", "inference_reason": "", "inference": {"edge_classifier": "triton"}}):
            push.send_multipart([messages.RESULT, messages.pack_meta(meta), ours])
        push.send_multipart([messages.MISSING, messages.pack_meta({"l1_id": 2, "stream": "MissingData", "reason": "timeout",
                                                                   "done_ns": 5})])
        push.send_multipart([messages.STATS, msgpack.packb({"role": "readout", "counters": {"l1_accepted": 3}})])
        deadline = time.monotonic() + 5
        while (c.ledger.decided < 3 or not c.readout_stats) and time.monotonic() < deadline:
            c.poll(50)
        r = metrics.registry
        assert c.ledger.decided == 3 and c.ledger.duplicates == 1
        assert [r.get_sample_value("trigger_sim_events_total", {"outcome": o}) for o in ("accepted", "rejected", "debug")] == [1, 1, 1]
        assert r.get_sample_value("trigger_sim_fallback_events_total", {"reason": "deadline"}) == 1
        assert r.get_sample_value("trigger_sim_model_events_total",
                                  {"server": "127.0.0.1:8001", "model": "edge_classifier", "path": "fallback"}) == 1
        assert r.get_sample_value("trigger_sim_debug_events_total", {"stream": "MissingData"}) == 1
        assert r.get_sample_value("trigger_sim_event_latency_seconds_sum") == pytest.approx(0.08)  # 40 ms for each of the two counted results
        assert c.readout_stats == {"l1_accepted": 3} and c.worker_stats == {} and c.metrics_errors == 0
    finally:
        push.close(linger=0)
        c.close()
        ctx.term()
