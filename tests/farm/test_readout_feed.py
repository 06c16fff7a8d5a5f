"""The readout feed of a farm across hosts, in-process: this test plays the assignment
service, one node's builder and the collector over loopback sockets, and checks what the
feed does with a duration, a full buffer, an end of input, [faults] and its running counters."""

from __future__ import annotations

import threading
import time

import pytest
import zmq

from farm import control_messages as cm
from farm import messages
from farm.readout_feed import ReadoutFeed
from farm.sockets import bind, make_socket
from trigger_sim.config import load_config, with_overrides
from trigger_sim.partition import source_ids

pytestmark = pytest.mark.timeout(60)

RECV_MS = 5000


class Harness:
    """Assignment service (ROUTER), one node's fragment input and the collector (PULLs)."""

    def __init__(self, config):
        self.ctx = zmq.Context()
        self.assign = make_socket(self.ctx, zmq.ROUTER, hwm=100_000)
        self.assign_endpoint = bind(self.assign)
        self.node = make_socket(self.ctx, zmq.PULL, hwm=100_000)
        self.node_endpoint = bind(self.node)
        self.collector = make_socket(self.ctx, zmq.PULL, hwm=100_000)
        self.collector_endpoint = bind(self.collector)
        self.feed = ReadoutFeed(config, self.assign_endpoint, self.collector_endpoint, {"node1": self.node_endpoint})
        self.stop, self.end_input = threading.Event(), threading.Event()
        self.collected: list[tuple[bytes, dict]] = []
        self.thread: threading.Thread | None = None

    def start(self, n_events=None, duration_s=None) -> None:
        self.thread = threading.Thread(target=self.feed.run, args=(n_events, self.stop, self.end_input, duration_s), daemon=True)
        self.thread.start()

    def accepts(self, timeout_ms: int = RECV_MS) -> list[int]:
        """The next ACCEPT's ids."""
        assert self.assign.poll(timeout_ms), "no ACCEPT from the feed"
        _, kind, meta = self.assign.recv_multipart()
        assert kind == cm.ACCEPT
        return list(messages.unpack_meta(meta)["ids"])

    def send(self, kind: bytes, body: dict) -> None:
        self.assign.send_multipart([cm.READOUT_FEED.encode(), kind, messages.pack_meta(body)])

    def fragments(self, n: int) -> list[list[bytes]]:
        out = []
        while len(out) < n:
            assert self.node.poll(RECV_MS), f"{len(out)} of {n} fragments arrived"
            out.append(self.node.recv_multipart())
        return out

    def until_end(self) -> dict:
        """Read the collector until END; return it (STATS and L1_IDS kept in `collected`)."""
        deadline = time.monotonic() + RECV_MS / 1e3
        while time.monotonic() < deadline:
            if self.collector.poll(100):
                kind, meta = self.collector.recv_multipart()[:2]
                self.collected.append((kind, messages.unpack_meta(meta)))
                if kind == messages.END:
                    return self.collected[-1][1]
        raise AssertionError("no END from the feed")

    def close(self) -> None:
        self.stop.set()
        if self.thread is not None:
            self.thread.join(10)
            assert not self.thread.is_alive()
        self.feed.close()
        for sock in (self.assign, self.node, self.collector):
            sock.close(linger=0)
        self.ctx.term()


@pytest.fixture
def harness_for():
    made = []

    def make(**sections):
        h = Harness(with_overrides(load_config(), **sections))
        made.append(h)
        return h

    yield make
    for h in made:
        h.close()


def test_a_duration_ends_the_input_and_the_end_counts_what_was_accepted(harness_for):
    h = harness_for(readout={"rate_hz": 200.0, "pattern": "constant"})
    h.start(duration_s=0.5)
    end = h.until_end()
    assert 50 <= end["l1_accepted"] + end["vetoed_slow"] + end["vetoed_busy"] <= 101  # 200 Hz for 0.5 s
    assert end["l1_accepted"] > 0 and end["id_chunks"] == 1
    ids = next(meta for kind, meta in h.collected if kind == messages.L1_IDS)["ranges"]
    assert ids == [[0, end["l1_accepted"]]]


def test_a_full_buffer_is_level1_busy_and_input_goes_on_once_events_are_cleared(harness_for):
    h = harness_for(readout={"rate_hz": 500.0, "pattern": "constant", "buffer_events": 4})
    h.start(n_events=10)
    asked: list[int] = []
    while len(asked) < 4:
        asked += h.accepts()
    time.sleep(0.2)  # slots pass while the buffer holds 4 undecided events: vetoed busy
    assert len(asked) == 4 and not h.assign.poll(0)
    h.send(cm.CLEAR, {"ids": asked})
    while len(asked) < 10:
        ids = h.accepts()
        asked += ids
        h.send(cm.CLEAR, {"ids": ids})
    end = h.until_end()
    assert end["l1_accepted"] == 10 and end["vetoed_busy"] > 0 and end["busy_s"] > 0


def test_after_end_of_input_the_feed_still_sends_what_is_assigned(harness_for):
    h = harness_for(readout={"rate_hz": 100.0, "pattern": "constant"})
    h.start(n_events=None, duration_s=60.0)
    first = h.accepts()
    h.end_input.set()
    end = h.until_end()
    assert end["l1_accepted"] >= len(first)
    h.send(cm.ASSIGN, {"pairs": [[first[0], "node1"]]})  # assigned after the input ended: still sent
    frames = h.fragments(len(source_ids(h.feed.config)))
    assert all(f[0] for f in frames)


def test_a_silent_source_fault_leaves_its_fragment_out(harness_for):
    n_sources = len(source_ids(load_config()))
    h = harness_for(readout={"rate_hz": 200.0, "pattern": "constant"}, faults={"silent_source": 0, "silent_after_events": 0})
    h.start(n_events=1)
    (l1_id,) = h.accepts()
    h.send(cm.ASSIGN, {"pairs": [[l1_id, "node1"]]})
    h.fragments(n_sources - 1)
    assert not h.node.poll(300), "the silent source's fragment was sent"
    assert h.until_end()["faults_injected"] == {"silent_source": 1}


def test_the_running_counters_reach_the_collector(harness_for):
    h = harness_for(readout={"rate_hz": 200.0, "pattern": "constant"})
    h.start(duration_s=0.8)
    h.until_end()
    stats = [meta for kind, meta in h.collected if kind == messages.STATS]
    assert stats and all(s["role"] == "readout" for s in stats)
    assert {"l1_accepted", "vetoed_busy", "vetoed_slow", "busy_s"} <= set(stats[-1]["counters"])


def test_an_event_is_sent_to_its_node_before_the_next_one_is_prepared(harness_for, monkeypatch):
    """Preparing an event takes milliseconds of simulation: the accepted event's fragments
    must not wait for it. With the next slot far off, the feed sends an event as soon as its
    node is known, and only then prepares the next one."""
    import farm.readout_feed as feed_module

    monkeypatch.setattr(feed_module, "ASSIGN_WAIT_MS", 2000)  # bounded by half the slot gap instead
    sent_before: list[int] = []  # events given to their node when each event was prepared

    class Recording(feed_module.SimulatedSource):
        def next_event(self, slot_ns):
            sent_before.append(len(h.feed.assigned) - sum(len(q) for q in h.feed.pending.values()))
            return super().next_event(slot_ns)

    monkeypatch.setattr(feed_module, "SimulatedSource", Recording)
    h = harness_for(readout={"rate_hz": 2.0, "pattern": "constant"})  # slots 500 ms apart
    h.start(n_events=3)
    for _ in range(3):
        (l1_id,) = h.accepts()
        h.send(cm.ASSIGN, {"pairs": [[l1_id, "node1"]]})
        h.fragments(len(source_ids(h.feed.config)))
    assert h.until_end()["l1_accepted"] == 3
    assert sent_before[:3] == [0, 1, 2], sent_before
