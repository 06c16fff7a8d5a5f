"""Readout of a farm across hosts: the Level-1 trigger and every readout source of one host.

For each Level-1 slot it simulates the event, keeps its fragments in a bounded buffer and
asks the assignment service for a node (ACCEPT). When the service names one (ASSIGN), the
fragments go straight to that node's event builder; they stay in the buffer until the
event is decided (CLEAR), so an event whose node is lost can be sent again to another,
as ATLAS's readout systems keep fragments until the event is cleared. A full buffer is
Level-1 busy: the slots that pass meanwhile are vetoed (dead time), as in the one-host
readout. A send a node cannot take yet waits in that node's queue, never blocking the
others.
"""

from __future__ import annotations

import multiprocessing.synchronize
from collections import deque

import zmq

from farm import control_messages as cm
from farm import messages
from farm.lifecycle import die_with_parent, ignore_interrupts
from farm.readout import MAX_LAG_MS, RANGES_PER_MESSAGE
from farm.security import Curve
from farm.sockets import connect, make_socket
from trigger_sim import clock
from trigger_sim.config import FarmConfig
from trigger_sim.event_source import SimulatedSource
from trigger_sim.id_ranges import IdRanges
from trigger_sim.pacing import Pacer
from trigger_sim.simulation import warm_up
from trigger_sim.wire import encode_fragment

MAX_BUFFERED = 2048  # events whose fragments are kept until decided; beyond it: Level-1 busy
POLL_MS = 20


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
    def run(self, n_events: int, stop: multiprocessing.synchronize.Event) -> None:
        config = self.config
        warm_up(config)
        rc = config.readout
        start = clock.now_ns()
        pacer = Pacer(rc.rate_hz, rc.pattern, start, seed=config.run.seed, burst_factor=rc.burst_factor, burst_events=rc.burst_events)
        source = SimulatedSource(config)
        max_lag_ns = int(MAX_LAG_MS * clock.NS_PER_MS)
        n_sent = vetoed_busy = vetoed_slow = 0
        busy_ns = 0
        slot = pacer.next_ns()
        ended = False
        while not stop.is_set():
            if n_sent < n_events:
                now = clock.now_ns()
                if now < slot:
                    self.flush()
                    self.read_feed(min(POLL_MS, (slot - now) // clock.NS_PER_MS + 1))
                    continue
                if len(self.buffer) >= MAX_BUFFERED:
                    vetoed_busy += 1
                    busy_ns += min(now - slot, max_lag_ns)
                elif now - slot > max_lag_ns:
                    vetoed_slow += 1
                else:
                    l1_id, fragments = source.next_event(slot)
                    self.buffer[l1_id] = [encode_fragment(f) for f in fragments]
                    self.to_ask.append(l1_id)
                    self.sent_ids.add(l1_id)
                    n_sent += 1
                    if len(self.to_ask) >= 32:
                        self.flush()
                slot = pacer.next_ns()
                continue
            if not ended:
                self.flush()
                self._end(n_sent, vetoed_busy, vetoed_slow, busy_ns, clock.now_ns() - start)
                ended = True
            self.flush()
            self.read_feed(POLL_MS)
        if not ended:
            self.flush()
            self._end(n_sent, vetoed_busy, vetoed_slow, busy_ns, clock.now_ns() - start)

    def _end(self, n_sent: int, vetoed_busy: int, vetoed_slow: int, busy_ns: int, elapsed_ns: int) -> None:
        """The Level-1 count and ids to the collector (as the one-host readout sends them)."""
        chunks = self.sent_ids.chunks(RANGES_PER_MESSAGE)
        for index, ranges in enumerate(chunks):
            self.collector.send_multipart([messages.L1_IDS, messages.pack_meta({"chunk": index, "ranges": ranges})])
        self.collector.send_multipart([messages.END, messages.pack_meta({
            "l1_accepted": n_sent, "id_chunks": len(chunks), "vetoed_busy": vetoed_busy, "vetoed_slow": vetoed_slow,
            "busy_s": busy_ns / clock.NS_PER_S, "elapsed_s": elapsed_ns / clock.NS_PER_S, "faults_injected": {},
            "not_sent_at_stop": 0, "problem": "", "resent_after_node_loss": self.resent,
            "bad_assignment_messages": self.bad_messages})])

    def close(self) -> None:
        for sock in (self.feed, *self.nodes.values()):
            sock.close(linger=0)
        self.collector.close(linger=1000)
        if self.curve is not None:
            self.curve.close()
        self.ctx.term()


def run_readout_feed(config: FarmConfig, assign_endpoint: str, collector_endpoint: str, nodes: dict[str, str],
                     n_events: int, stop: multiprocessing.synchronize.Event) -> None:
    """Process entry point: send `n_events` Level-1 accepts, then serve re-sends until `stop`."""
    die_with_parent()
    ignore_interrupts()
    feed = ReadoutFeed(config, assign_endpoint, collector_endpoint, nodes)
    try:
        feed.run(n_events, stop)
    finally:
        feed.close()
