"""Event-builder process: a thin ZeroMQ shell around `EventBuilderState` and `Dispatcher`.

Fragments arrive on one PULL socket from every readout source; each is checked (header,
sizes, CRC) before it counts, and rejected fragments are counted per kind and flag their
event. Complete events go to workers over a ROUTER socket, one per credit (workers say
READY when free). The builder keeps every event a worker holds until the worker reports it
done: if the supervisor reports the worker dead, the event is retried once on another
worker, then sent to HltError. Incomplete events go to MissingData after the build
timeout. When the queue of complete events is full the builder stops reading fragments, so
back-pressure reaches the readout (Level-1 busy) instead of growing memory here.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import resource
from collections import Counter, OrderedDict

import zmq

from farm import messages
from farm.lifecycle import die_with_parent, ignore_interrupts
from farm.security import Curve
from farm.sockets import bind, connect, make_socket
from trigger_sim import clock
from trigger_sim.builder_state import EventBuilderState, PendingEvent
from trigger_sim.config import FarmConfig
from trigger_sim.dispatch import Dispatcher
from trigger_sim.errors import WireFormatError
from trigger_sim.partition import source_ids
from trigger_sim.wire import decode_fragment

POLL_MS = 20
MAX_ATTEMPTS = 2  # a worker dying with the event: retried once, then HltError


def peak_rss_mb() -> float:
    """This process's own peak resident memory (VmHWM). ru_maxrss is not used: across the
    fork and exec of a spawned process it keeps the parent's peak."""
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_builder(config: FarmConfig, collector_endpoint: str, ready: multiprocessing.Queue,
                stop: multiprocessing.synchronize.Event) -> None:
    die_with_parent()
    ignore_interrupts()
    Builder(config, collector_endpoint).run(ready, stop)


class Builder:
    def __init__(self, config: FarmConfig, collector_endpoint: str):
        self.config = config
        bc = config.builder
        self.ctx = zmq.Context()
        self.fragments_in = make_socket(self.ctx, zmq.PULL, hwm=bc.input_hwm)
        self.work = make_socket(self.ctx, zmq.ROUTER, hwm=10_000)
        self.work.setsockopt(zmq.ROUTER_MANDATORY, 1)  # a send to a dead worker raises instead of vanishing
        self.control = make_socket(self.ctx, zmq.PULL)
        self.out = make_socket(self.ctx, zmq.PUSH, hwm=10_000)
        self.curve = Curve.from_config(config.network)
        connect(self.out, collector_endpoint, self.curve)
        self.state = EventBuilderState(source_ids(config), int(bc.build_timeout_ms * clock.NS_PER_MS), bc.max_building)
        self.dispatcher = Dispatcher(bc.max_waiting)
        self.rejected: Counter = Counter()  # rejected fragments per kind
        self.rejected_notes: OrderedDict[int, list[str]] = OrderedDict()  # for events not yet pending
        self.bad_control = 0
        self.workers_lost: set[bytes] = set()  # unreachable or reported dead (either or both)
        self.retried = 0
        self.bytes_in = 0
        self.busy_ns = 0
        self.busy_since: int | None = None

    # -- clocks ---------------------------------------------------------------------------
    def active_ns(self) -> int:
        """Build timeouts run on a clock that stops while the builder is busy: fragments
        waiting in the sockets because it stopped reading them are not missing data."""
        now = clock.now_ns()
        paused = self.busy_ns + (now - self.busy_since if self.busy_since is not None else 0)
        return now - paused

    def _update_busy(self) -> bool:
        full = self.dispatcher.is_full
        now = clock.now_ns()
        if full and self.busy_since is None:
            self.busy_since = now
        elif not full and self.busy_since is not None:
            self.busy_ns += now - self.busy_since
            self.busy_since = None
        return full

    # -- output ---------------------------------------------------------------------------
    def _to_collector(self, event: PendingEvent, stream: str, reason: str) -> None:
        """An event that leaves without a worker's decision: a debug stream, with its fragments."""
        counts, frames = messages.flatten([event.fragments[s] for s in self.state.sources if s in event.fragments])
        notes = event.notes + self.rejected_notes.pop(event.l1_id, [])
        meta = {"l1_id": event.l1_id, "l1_time_ns": event.l1_time_ns, "stream": stream,
                "reason": reason + (f" ({'; '.join(notes)})" if notes else ""),
                "missing_sources": event.missing(self.state.sources), "frames_per_fragment": counts,
                "done_ns": clock.now_ns()}
        self.out.send_multipart([messages.MISSING, messages.pack_meta(meta), *frames], copy=False)

    def _send_to_worker(self, worker: bytes, l1_id: int, event: PendingEvent) -> bool:
        counts, frames = messages.flatten([event.fragments[s] for s in self.state.sources])
        event.attempts += 1
        meta = {"l1_id": l1_id, "l1_time_ns": event.l1_time_ns, "complete_ns": event.done_ns,
                "dispatched_ns": clock.now_ns(), "frames_per_fragment": counts, "attempt": event.attempts}
        try:
            self.work.send_multipart([worker, messages.EVENT, messages.pack_meta(meta), *frames], copy=False)
            return True
        except zmq.ZMQError:  # unreachable: the worker is gone; its events go back in the queue
            self._worker_gone(worker, "unreachable")
            return False

    def _worker_gone(self, worker: bytes, why: str) -> None:
        held = self.dispatcher.forget_worker(worker)
        self.workers_lost.add(worker)
        for l1_id, event in held.items():
            if event.attempts < MAX_ATTEMPTS:
                self.retried += 1
                self.dispatcher.requeue(l1_id, event)
            else:
                self._to_collector(event, "HltError", f"worker {worker.decode(errors='replace')} {why} while holding the event, after {event.attempts} attempts")

    # -- input ----------------------------------------------------------------------------
    def _reject(self, kind: str, l1_id: int | None, source_id: int | None) -> None:
        self.rejected[kind] += 1
        if l1_id is None:
            return
        text = f"{kind} from source 0x{source_id:x}" if source_id is not None else kind
        if not self.state.note(l1_id, text):
            self.rejected_notes.setdefault(l1_id, []).append(text)
            while len(self.rejected_notes) > 4096:
                self.rejected_notes.popitem(last=False)

    def _read_fragments(self) -> None:
        for _ in range(64):  # a batch, then serve the workers again
            try:
                frames = self.fragments_in.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            self.bytes_in += sum(len(f.buffer) for f in frames)
            try:
                header = decode_fragment(frames).header  # header, sizes and CRC
            except WireFormatError as err:
                self._reject(type(err).__name__, None, None)
                continue
            if header.run_number != self.config.run.run_number:
                self._reject("ForeignRun", None, None)
                continue
            c = self.state.counters
            before = (c.duplicate_fragments, c.unknown_source_fragments, c.late_fragments)
            complete, evicted = self.state.add(header.l1_id, header.source_id, frames, self.active_ns(), header.l1_time_ns)
            after = (c.duplicate_fragments, c.unknown_source_fragments, c.late_fragments)
            for kind, b, a in zip(("Duplicate", "UnknownSource", "Late"), before, after):
                if a > b:
                    self._reject(kind, header.l1_id if kind == "Duplicate" else None, header.source_id)
            if evicted is not None:
                self._to_collector(evicted, "MissingData", "builder full: evicted before complete")
            if complete is not None:
                complete.done_ns = clock.now_ns()  # real time (the state runs on the active clock)
                self.dispatcher.add_event(complete.l1_id, complete)
                if self.dispatcher.is_full:
                    return

    def _read_work(self) -> None:
        while True:
            try:
                msg = self.work.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(msg) != 3 or msg[1] != messages.READY:
                self.bad_control += 1
                continue
            try:
                done = messages.unpack_meta(msg[2]).get("done")
            except Exception:
                self.bad_control += 1
                continue
            self.dispatcher.add_credit(msg[0], done if isinstance(done, int) else None)

    def _read_control(self) -> None:
        while True:
            try:
                kind, meta = self.control.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            except ValueError:
                self.bad_control += 1
                continue
            if kind == messages.WORKER_DIED:
                self._worker_gone(messages.unpack_meta(meta)["identity"].encode(), "died")

    # -- loop -----------------------------------------------------------------------------
    def run(self, ready: multiprocessing.Queue, stop: multiprocessing.synchronize.Event) -> None:
        address = self.config.network.bind_address
        ready.put(("builder", {name: bind(sock, address, self.curve) for name, sock in
                               (("fragments", self.fragments_in), ("work", self.work), ("control", self.control))}))
        poll_all, poll_work = zmq.Poller(), zmq.Poller()
        for sock in (self.fragments_in, self.work, self.control):
            poll_all.register(sock, zmq.POLLIN)
        for sock in (self.work, self.control):
            poll_work.register(sock, zmq.POLLIN)
        bc = self.config.builder
        while not stop.is_set():
            full = self._update_busy()
            events = dict((poll_work if full else poll_all).poll(POLL_MS))
            if self.control in events:
                self._read_control()
            if self.fragments_in in events:
                self._read_fragments()
            if self.work in events:
                self._read_work()
            for worker, l1_id, event in self.dispatcher.assignments():
                self._send_to_worker(worker, l1_id, event)
            for event in self.state.expire(self.active_ns()):
                self._to_collector(event, "MissingData", f"incomplete after the {bc.build_timeout_ms:g} ms build timeout")
        self._shutdown()

    def _shutdown(self) -> None:
        """Nothing may vanish: every event still here leaves to a debug stream.

        Workers stop before the builder; their last READY messages are read first, so an
        event a worker finished is not reported again as unprocessed.
        """
        while self.work.poll(100):
            self._read_work()
        for event in self.state.drain(self.active_ns()):
            self._to_collector(event, "MissingData", "farm stopped before the event was complete")
        for _, event in self.dispatcher.drain_waiting():
            self._to_collector(event, "NotProcessed", "farm stopped before a worker took the event")
        for worker in list(self.dispatcher.in_flight):
            for _, event in self.dispatcher.forget_worker(worker).items():
                self._to_collector(event, "NotProcessed", f"farm stopped while worker {worker.decode(errors='replace')} held the event")
        if self.busy_since is not None:
            self.busy_ns += clock.now_ns() - self.busy_since
        c = self.state.counters
        self.out.send_multipart([messages.STATS, messages.pack_meta({"role": "builder", "counters": {
            "fragments_in": c.fragments_in, "bytes_in": self.bytes_in, "events_complete": c.events_complete,
            "events_incomplete": c.events_incomplete, "evicted_for_space": c.evicted_for_space,
            "rejected_fragments": dict(self.rejected), "dispatched": self.dispatcher.dispatched,
            "retried_after_worker_loss": self.retried, "workers_lost": len(self.workers_lost),
            "bad_control_messages": self.bad_control, "peak_waiting": self.dispatcher.peak_waiting,
            "busy_s": self.busy_ns / clock.NS_PER_S, "refused_peers": self.curve.refused_peers if self.curve else 0,
            "peak_rss_mb": peak_rss_mb()}})])
        for sock in (self.fragments_in, self.work, self.control):
            sock.close(linger=0)
        self.out.close(linger=2000)
        if self.curve is not None:
            self.curve.close()
        self.ctx.term()
