"""Readout of a farm across hosts: the Level-1 trigger and every readout source of one host.

For each Level-1 slot it simulates the event, keeps its fragments in a bounded buffer and
asks the assignment service for a node (ACCEPT). When the service names one (ASSIGN), the
fragments go straight to that node's event builder; they stay in the buffer until the
event is decided (CLEAR), so an event whose node is lost can be sent again to another,
as ATLAS's readout systems keep fragments until the event is cleared. A full buffer
(`readout.buffer_events`) is Level-1 busy: the slots that pass meanwhile are vetoed (dead
time), as in the one-host readout. As the one-host readout it can run for a number of
events or a duration, replay a recording, apply the [faults] readout faults, send its
running counters to the collector and serve its Prometheus metrics. A send a node cannot take yet waits in that node's queue, never blocking the
others.
"""

from __future__ import annotations

import multiprocessing.synchronize
from collections import deque

import zmq

from farm import control_messages as cm
from farm import messages
from farm.lifecycle import die_with_parent, ignore_interrupts, stacks_on_request
from farm.metrics_http import serve
from farm.readout import MAX_LAG_MS, STATS_PERIOD_NS, send_end, send_stats
from farm.security import Curve
from farm.sockets import connect, make_socket
from trigger_sim import clock
from trigger_sim.config import FarmConfig
from trigger_sim.accounting import MAX_L1_ID
from trigger_sim.event_source import RecordingSource, SimulatedSource
from trigger_sim.faults import FaultInjector
from trigger_sim.id_ranges import IdRanges
from trigger_sim.metrics import READOUT, ReadoutMetrics
from trigger_sim.pacing import readout_pacer
from trigger_sim.simulation import warm_up
from trigger_sim.wire import encode_fragment

POLL_MS = 20
ASSIGN_WAIT_MS = 5  # after a Level-1 accept, how long the feed waits for its node before preparing the next event
BATCH_ACCEPTS = 32  # accepts asked for in one message while the feed is behind its slots


class ReadoutFeed:
    def __init__(self, config: FarmConfig, assign_endpoint: str, collector_endpoint: str, nodes: dict[str, str]):
        self.config = config
        self.ctx = zmq.Context()
        self.curve = Curve.from_config(config.network)
        self.feed = make_socket(self.ctx, zmq.DEALER, hwm=100_000)
        self.feed.setsockopt(zmq.IDENTITY, cm.READOUT_FEED.encode())
        connect(self.feed, assign_endpoint, self.curve)
        self.collector = make_socket(self.ctx, zmq.PUSH)
        connect(self.collector, collector_endpoint, self.curve)
        self.nodes: dict[str, zmq.Socket] = {}
        for name, endpoint in nodes.items():
            sock = make_socket(self.ctx, zmq.PUSH, hwm=config.builder.input_hwm * 8)
            connect(sock, endpoint, self.curve)
            self.nodes[name] = sock
        self.buffer: dict[int, list[list]] = {}  # l1_id -> encoded fragments, until CLEAR
        self.assigned: dict[int, str] = {}
        self.pending: dict[str, deque[tuple[int, int]]] = {name: deque() for name in nodes}  # (l1_id, next fragment)
        self.sent_ids = IdRanges()
        self.to_ask: list[int] = []
        self.resent = 0
        self.unknown_nodes = 0
        self.bad_messages = 0  # from the assignment service, not decodable: dropped
        self.n_sent = self.vetoed_busy = self.vetoed_slow = self.busy_ns = 0
        self.problem = ""
        self.metrics = ReadoutMetrics()

    # -- assignment service ------------------------------------------------------------
    def read_feed(self, timeout_ms: int) -> None:
        if not self.feed.poll(max(0, timeout_ms)):
            return
        while True:
            try:
                kind, meta = self.feed.recv_multipart(zmq.NOBLOCK)
                body = messages.unpack_meta(meta)
                if kind == cm.ASSIGN:
                    for l1_id, node in body["pairs"]:
                        self._assign(int(l1_id), str(node))
                elif kind == cm.CLEAR:
                    for l1_id in body["ids"]:
                        self.buffer.pop(l1_id, None)
                        self.assigned.pop(l1_id, None)
                else:
                    self.bad_messages += 1
            except zmq.Again:
                return
            except (ValueError, TypeError, KeyError):
                self.bad_messages += 1

    def _assign(self, l1_id: int, node: str) -> None:
        if l1_id not in self.buffer:
            return  # already cleared
        if node not in self.nodes:
            self.unknown_nodes += 1
            return
        if l1_id in self.assigned:
            self.resent += 1
        self.assigned[l1_id] = node
        self.pending[node].append((l1_id, 0))
        self._send_pending(node)

    def _send_pending(self, node: str) -> None:
        """Send what `node` can take now; the rest waits (another node's sends go on)."""
        queue, sock = self.pending[node], self.nodes[node]
        while queue:
            l1_id, index = queue[0]
            fragments = self.buffer.get(l1_id)
            if fragments is None or self.assigned.get(l1_id) != node:
                queue.popleft()  # cleared, or assigned elsewhere since
                continue
            while index < len(fragments):
                try:
                    sock.send_multipart(fragments[index], flags=zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    queue[0] = (l1_id, index)
                    return
                index += 1
            queue.popleft()

    def flush(self) -> None:
        if self.to_ask:
            self.feed.send_multipart([cm.ACCEPT, messages.pack_meta({"ids": self.to_ask})])
            self.to_ask = []
        for node in self.pending:
            self._send_pending(node)

    # -- the run -----------------------------------------------------------------------
    def run(self, n_events: int | None, stop: multiprocessing.synchronize.Event,
            end_input: multiprocessing.synchronize.Event | None = None, duration_s: float | None = None,
            replay: dict | None = None) -> None:
        """Take Level-1 accepts until `n_events` are sent, `duration_s` has passed, a replayed
        file ends or `end_input` is set; then send END and serve re-sends until `stop`."""
        config = self.config
        if not replay:
            warm_up(config)  # before the first slot: loading (or compiling) kernels is not Level-1 dead time
        rc = config.readout
        start = clock.now_ns()
        pacer = readout_pacer(rc, config.run.seed, start)
        source = RecordingSource(config, replay["path"], replay.get("loop", False)) if replay else SimulatedSource(config)
        injector = FaultInjector(config.faults, config.run.seed) if config.faults.any else None
        end_ns = start + int(duration_s * clock.NS_PER_S) if duration_s else None
        max_lag_ns = int(MAX_LAG_MS * clock.NS_PER_MS)
        slot, prepared = pacer.next_ns(), None
        taking, ended, stats_due_ns = True, False, start
        while not stop.is_set():
            now = clock.now_ns()
            if now >= stats_due_ns:
                stats_due_ns = now + STATS_PERIOD_NS
                send_stats(self.collector, self.n_sent, self.vetoed_busy, self.vetoed_slow, self.busy_ns)
            if taking and ((n_events is not None and self.n_sent >= n_events) or (end_ns is not None and slot >= end_ns)
                           or (end_input is not None and end_input.is_set())):
                taking = False
            if taking:
                if prepared is None:
                    if now - slot > max_lag_ns:  # the emulator fell behind: this slot is gone
                        self.vetoed_slow += 1
                        self.metrics.vetoed.labels("readout_slow").inc()
                        slot = pacer.next_ns()
                        continue
                    if len(self.buffer) >= rc.buffer_events:  # Level-1 busy: the buffer frees as events are decided
                        self.metrics.blocked.set(1)
                        if now >= slot:
                            self.vetoed_busy += 1
                            self.busy_ns += min(now - slot, max_lag_ns)
                            self.metrics.vetoed.labels("busy").inc()
                            self.metrics.blocked_seconds.inc(min(now - slot, max_lag_ns) / clock.NS_PER_S)
                            slot = pacer.next_ns()
                        else:
                            self._wait(slot - now)
                        continue
                    self.metrics.blocked.set(0)
                    # prepared before its slot, so the emulator's own cost is not event latency
                    prepared = source.next_event(slot)
                    if prepared is None:  # a replayed file ended
                        taking = False
                        continue
                    if prepared[0] >= MAX_L1_ID:
                        self.problem = f"Level-1 id {prepared[0]} reached the ledger's limit ({MAX_L1_ID}): input stopped there"
                        taking = False
                        continue
                    now = clock.now_ns()
                if now < slot:
                    self._wait(slot - now)
                    continue
                l1_id, fragments = prepared
                self.buffer[l1_id] = self._encode(fragments, injector)
                self.to_ask.append(l1_id)
                self.sent_ids.add(l1_id)
                self.n_sent += 1
                self.metrics.accepts.inc()
                prepared = None
                slot = pacer.next_ns()
                if len(self.to_ask) >= BATCH_ACCEPTS or clock.now_ns() < slot:  # batched only while behind
                    self.flush()
                    self._await_assignment(l1_id, slot)
                continue
            if not ended:
                self.flush()
                self._end(clock.now_ns() - start, injector)
                ended = True
            self.flush()
            self.read_feed(POLL_MS)
        if not ended:
            self.flush()
            self._end(clock.now_ns() - start, injector)

    def _await_assignment(self, l1_id: int, next_slot_ns: int) -> None:
        """Send `l1_id`'s fragments as soon as its node is known, before preparing the next
        event: that takes milliseconds of simulation, which the event would otherwise wait
        for. Bounded by ASSIGN_WAIT_MS and half the time to the next slot (the other half is
        for preparing it)."""
        now = clock.now_ns()
        deadline = now + min(ASSIGN_WAIT_MS * clock.NS_PER_MS, (next_slot_ns - now) // 2)
        while l1_id in self.buffer and l1_id not in self.assigned:
            left_ms = (deadline - clock.now_ns()) // clock.NS_PER_MS
            if left_ms < 1:
                return
            self.read_feed(int(left_ms))

    def _wait(self, ns: int) -> None:
        """Until the next slot: send what waits, read assignments."""
        self.flush()
        self.read_feed(min(POLL_MS, ns // clock.NS_PER_MS + 1))

    def _encode(self, fragments: list, injector: FaultInjector | None) -> list[list]:
        """The frames each source sends for the event ([faults] applied as in the one-host readout)."""
        if injector is None:
            return [encode_fragment(f) for f in fragments]
        return [frames for index, f in enumerate(fragments) for frames in injector.apply(f, index, self.n_sent)]

    def _end(self, elapsed_ns: int, injector: FaultInjector | None) -> None:
        """The Level-1 count and ids to the collector (as the one-host readout sends them)."""
        self.metrics.blocked.set(0)  # no more input: Level-1 is not busy from here on
        send_end(self.collector, self.n_sent, self.sent_ids, {
            "vetoed_busy": self.vetoed_busy, "vetoed_slow": self.vetoed_slow, "busy_s": self.busy_ns / clock.NS_PER_S,
            "elapsed_s": elapsed_ns / clock.NS_PER_S, "faults_injected": dict(injector.injected) if injector else {},
            "not_sent_at_stop": 0, "problem": self.problem, "resent_after_node_loss": self.resent,
            "bad_assignment_messages": self.bad_messages})

    def close(self) -> None:
        self.feed.close(linger=1000)  # the last ACCEPT leaves: END counted its ids, run control must see them
        for sock in self.nodes.values():
            sock.close(linger=0)
        self.collector.close(linger=1000)
        if self.curve is not None:
            self.curve.close()
        self.ctx.term()


def run_readout_feed(config: FarmConfig, assign_endpoint: str, collector_endpoint: str, nodes: dict[str, str],
                     n_events: int | None, stop: multiprocessing.synchronize.Event,
                     end_input: multiprocessing.synchronize.Event | None = None, duration_s: float | None = None,
                     replay: dict | None = None) -> None:
    """Process entry point: send Level-1 accepts (see `ReadoutFeed.run`), then serve re-sends until `stop`."""
    die_with_parent()
    ignore_interrupts()
    stacks_on_request()
    feed = ReadoutFeed(config, assign_endpoint, collector_endpoint, nodes)
    serve(feed.metrics.registry, config.monitoring, READOUT)
    try:
        feed.run(n_events, stop, end_input, duration_s, replay)
    finally:
        feed.close()
