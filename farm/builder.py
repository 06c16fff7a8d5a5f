"""Event-builder process: a thin ZeroMQ shell around `EventBuilderState` and `Dispatcher`.

Fragments arrive on one PULL socket from every readout source; each is checked (header,
sizes, CRC) before it counts, and rejected fragments are counted per kind and flag their
event. Complete events go to workers over a ROUTER socket, one per credit (workers say
READY when free); the event's bytes go through a shared-memory ring on this node
(`farm.event_handoff`), the message carries only where they are (inside the message when
the ring is off or full). The events paired with one worker's credits in one pass of the
loop go in one EVENT message, and the decisions read in one pass go to the collector in
one RESULT message: nothing waits to fill a batch, so a lone event still leaves at once.
The builder keeps every event a worker holds until the worker reports it
done: if the node agent reports the worker dead, the event is retried once on another
worker, then sent to HltError. Incomplete events go to MissingData after the build
timeout. When the queue of complete events is full the builder stops reading fragments, so
back-pressure reaches the readout (Level-1 busy) instead of growing memory here.
"""

from __future__ import annotations

import gc
import multiprocessing
import multiprocessing.synchronize
from collections import Counter, OrderedDict

import zmq

from farm import fragment_drain, messages
from farm.event_handoff import EventRing
from farm.lifecycle import die_with_parent, ignore_interrupts, stacks_on_request
from farm.metrics_http import serve
from farm.procfs import peak_rss_mb
from farm.security import Curve
from farm.sockets import bind, connect, make_socket, recv_parts, send_parts
from trigger_sim import clock
from trigger_sim.builder_state import EventBuilderState, PendingEvent
from trigger_sim.config import FarmConfig
from trigger_sim.dispatch import FORWARD, STALE, Dispatcher
from trigger_sim.errors import WireFormatError
from trigger_sim.liveness import Liveness
from trigger_sim.metrics import BUILDER, BuilderMetrics
from trigger_sim.accounting import ACCEPTED, DEBUG
from trigger_sim.result_check import check_result
from trigger_sim.partition import source_ids
from trigger_sim.wire import check_fragment

POLL_MS = 20
GC_THRESHOLD = 20_000  # allocations between collections of the youngest generation (Python's default: 700)
MAX_EVENTS_PER_MESSAGE = 64  # events in one EVENT message to a worker, decisions in one RESULT to the collector
MAX_ATTEMPTS = 2  # a worker dying with the event: retried once, then HltError
METRICS_PERIOD_NS = 250 * clock.NS_PER_MS  # the Prometheus gauges and counters follow the state this often
STOP_CHECK_NS = 10 * clock.NS_PER_MS  # the stop flag (a lock) is looked at this often, not on every pass
LIVENESS_CHECK_NS = 10 * clock.NS_PER_MS  # silent workers are looked for this often (limits are budgets: seconds)
_WATCHDOG = messages.WATCHDOG_SUFFIX.encode()


def run_builder(config: FarmConfig, collector_endpoint: str, ready: multiprocessing.Queue,
                stop: multiprocessing.synchronize.Event) -> None:
    die_with_parent()
    ignore_interrupts()
    stacks_on_request()
    builder = Builder(config, collector_endpoint)
    quiet_gc()
    builder.run(ready, stop)


def quiet_gc() -> None:
    """Fewer, cheaper garbage collections on the builder's per-fragment path.

    The builder allocates a few short-lived objects per fragment (frames, lists, tuples),
    nearly all freed by reference counting; the cyclic collector's passes over them (one
    every 700 allocations by default) and over every object alive since start-up cost a few
    per cent of the event loop. Objects alive now (modules, configuration) are moved out of
    the collector's sight, and the youngest generation is collected less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])


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
        self.bad_results = 0
        self.delivered: dict[bytes, int] = {}  # events sent to each worker
        self.results_out: list = []  # decisions read in this pass, forwarded together (`_flush_results`)
        self.results_out_n = 0
        self.results_out_frames = 0  # how many of them carry their fragments
        self.event_messages = 0  # EVENT messages sent to workers (each with one or more events)
        self.result_messages = 0  # RESULT messages sent to the collector (each with one or more decisions)
        self.orphaned = 0
        self.stalled: list[str] = []  # workers reported silent
        wc = config.worker
        self.liveness = Liveness(int((wc.budget_ms + wc.stall_margin_ms) * clock.NS_PER_MS))
        self.workers_lost: set[bytes] = set()  # unreachable or reported dead (either or both)
        self.retried = 0
        self.bytes_in = 0
        self.busy_ns = 0
        self.busy_since: int | None = None
        self.metrics = BuilderMetrics()
        self.metrics_due_ns = 0
        self.liveness_due_ns = 0
        self.ring_error = ""
        self.ring: EventRing | None = None
        if bc.event_ring_mb > 0:
            try:
                self.ring = EventRing(bc.event_ring_mb)
            except OSError as err:  # events then travel inside the messages, as without a ring
                self.ring_error = f"{type(err).__name__}: {err}"

    # -- clocks ---------------------------------------------------------------------------
    def active_ns(self, now: int | None = None) -> int:
        """Build timeouts run on a clock that stops while the builder is busy: fragments
        waiting in the sockets because it stopped reading them are not missing data.
        `now`: a clock.now_ns() reading the caller already has."""
        if now is None:
            now = clock.now_ns()
        paused = self.busy_ns + (now - self.busy_since if self.busy_since is not None else 0)
        return now - paused

    def _update_busy(self, now: int) -> bool:
        """Whether the queue of complete events is full (stop reading fragments); the busy
        time (build timeouts paused) starts and ends with it."""
        full = self.dispatcher.is_full
        if full and self.busy_since is None:
            self.busy_since = now
        elif not full and self.busy_since is not None:
            self.busy_ns += now - self.busy_since
            self.busy_since = None
        return full

    def _update_metrics(self, now_ns: int) -> None:
        """The builder's queues and counters in its Prometheus registry (every 250 ms)."""
        if now_ns < self.metrics_due_ns:
            return
        self.metrics_due_ns = now_ns + METRICS_PERIOD_NS
        d = self.dispatcher
        self.metrics.update(fragments=self.state.counters.fragments_in, bytes_in=self.bytes_in, rejected=self.rejected,
                            dispatched=d.dispatched, retried=self.retried, busy_s=self.busy_ns / clock.NS_PER_S,
                            building=self.state.n_building, waiting=d.n_waiting,
                            in_flight={w.decode(errors="replace"): len(held) for w, held in d.in_flight.items()},
                            credits=d.n_credits, busy=self.busy_since is not None)

    # -- output ---------------------------------------------------------------------------
    def _release(self, event: PendingEvent) -> None:
        """The event left (or went back to the queue): its block in the ring may be reused.
        Its worker copied the bytes out when it received the descriptor."""
        if event.handoff is not None and self.ring is not None:
            self.ring.give_back(event.handoff)
        event.handoff = None

    def _to_collector(self, event: PendingEvent, stream: str, reason: str) -> None:
        """An event that leaves without a worker's decision: a debug stream, with its fragments."""
        self._release(event)
        counts, frames = messages.flatten([event.fragments[s] for s in self.state.sources if s in event.fragments])
        notes = event.notes + self.rejected_notes.pop(event.l1_id, [])
        meta = {"l1_id": event.l1_id, "l1_time_ns": event.l1_time_ns, "stream": stream,
                "reason": reason + (f" ({'; '.join(notes)})" if notes else ""),
                "missing_sources": event.missing(self.state.sources), "frames_per_fragment": counts,
                "done_ns": clock.now_ns()}
        self.out.send_multipart([messages.MISSING, messages.pack_meta(meta), *frames], copy=False)

    def _send_to_worker(self, worker: bytes, batch: list[tuple[int, PendingEvent]]) -> bool:
        """One EVENT message with every event of `batch` (each with its own metadata and
        its own block in the ring, released on its own)."""
        sources, ring = self.state.sources, self.ring
        now = clock.now_ns()  # the message leaves now: every event in it is dispatched now
        l1_ids, metas, inline = [], [], []
        for l1_id, event in batch:
            counts, frames = messages.flatten([event.fragments[s] for s in sources])
            meta = {"l1_time_ns": event.l1_time_ns, "complete_ns": event.done_ns, "dispatched_ns": now,
                    "frames_per_fragment": counts, "attempt": event.attempts + 1}
            placed = ring.put(frames) if ring is not None else None
            if placed is not None:  # the bytes are in the ring: the message says where
                event.handoff, meta["ring"] = placed
                frames = []
            l1_ids.append(l1_id)
            metas.append(meta)
            inline.append(frames)
        parts = messages.event_message(l1_ids, metas, inline)
        try:  # copy=False only for the fragments' frames: small parts are cheaper copied
            send_parts(self.work, [worker, *parts], copy=len(parts) == 3)
        except zmq.ZMQError:  # unreachable: its events go back in the queue; the node agent replaces it
            for _, event in batch:
                self._release(event)
            self._worker_gone(worker, "unreachable")
            self._report_stalled(worker, 0, "unreachable")
            return False
        self.event_messages += 1
        for _, event in batch:
            event.attempts += 1  # deliveries, not tries to send
            event.dispatched_ns = now
        self.delivered[worker] = self.delivered.get(worker, 0) + len(batch)
        return True

    def _worker_gone(self, worker: bytes, why: str) -> None:
        if self.dispatcher.is_gone(worker):
            return
        held = self.dispatcher.forget_worker(worker)
        self.liveness.forget(worker)
        self.workers_lost.add(worker)
        for l1_id, event in held.items():
            self._retry_or_fail(worker, l1_id, event, f"{why} while holding")

    def _retry_or_fail(self, worker: bytes, l1_id: int, event: PendingEvent, what: str) -> None:
        if event.attempts < MAX_ATTEMPTS:
            self.retried += 1
            self._release(event)
            self.dispatcher.requeue(l1_id, event)
        else:
            self._to_collector(event, "HltError", f"worker {worker.decode(errors='replace')} {what} the event, after {event.attempts} attempts")

    def _forward_result(self, sender: bytes, meta_frame: bytes) -> None:
        """A worker's decision: forwarded with the event's fragments if it is the event's
        first decision, then (from the main thread) the worker's slot is free again."""
        forced = sender.endswith(_WATCHDOG)
        worker = sender[: -len(_WATCHDOG)] if forced else sender
        try:
            meta = messages.unpack_meta(meta_frame)
            l1_id = meta["l1_id"]
            if not isinstance(l1_id, int):
                raise ValueError(f"l1_id {l1_id!r}")
        except (ValueError, KeyError, TypeError):
            self.bad_results += 1  # cannot name the event: it stays held (NotProcessed at the end)
            if not forced and worker in self.dispatcher.in_flight:
                self.dispatcher.add_credit(worker)
            return
        verdict, event = self.dispatcher.result(worker, l1_id, forced)
        if not forced and (verdict != STALE or worker in self.dispatcher.in_flight):
            self.dispatcher.add_credit(worker)  # the main thread is free again (never for unknown senders)
        if verdict != FORWARD:
            return
        self._release(event)
        try:
            result = check_result(meta)
        except ValueError as err:
            self.bad_results += 1
            self._to_collector(event, "HltError", f"worker {worker.decode(errors='replace')} sent a malformed result: {err}"[:300])
            return
        keep = result["outcome"] in (ACCEPTED, DEBUG)
        counts, frames = messages.flatten([event.fragments[s] for s in self.state.sources]) if keep else ([], [])
        ours = {"l1_time_ns": event.l1_time_ns, "first_ns": event.first_ns, "complete_ns": event.done_ns,
                "dispatched_ns": event.dispatched_ns, "attempt": event.attempts, "frames_per_fragment": counts}
        self.results_out += [meta_frame, messages.pack_meta(ours), *frames]
        self.results_out_n += 1
        self.results_out_frames += bool(frames)
        if self.results_out_n >= MAX_EVENTS_PER_MESSAGE:
            self._flush_results()

    def _flush_results(self) -> None:
        """The decisions forwarded in this pass, to the collector as one message."""
        if self.results_out_n:
            send_parts(self.out, [messages.RESULT, *self.results_out], copy=not self.results_out_frames)
            self.result_messages += 1
            self.results_out, self.results_out_n, self.results_out_frames = [], 0, 0

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

    def _read_fragments(self, limit: int | None = 64) -> bool:
        """Read fragments in batches (then serve the workers again); `limit` None: read until
        the queue is empty, full or not (at shutdown). True if any was read.

        The receive and the check run a batch at a time (`farm.fragment_drain`, compiled
        where built); the bookkeeping runs here. Each fragment completes at most one event,
        so a batch asks for no more fragments than the queue of complete events has room for:
        the queue never grows past its limit, and nothing read is left unbuilt."""
        n = 0
        now_ns = self.active_ns()  # one clock reading per batch: the batch takes microseconds
        run_number = self.config.run.run_number
        c, add = self.state.counters, self.state.add
        sock, dispatcher = self.fragments_in, self.dispatcher
        while limit is None or n < limit:
            want = fragment_drain.BATCH
            if limit is not None:
                want = min(limit - n, dispatcher.max_waiting - dispatcher.n_waiting)
                if want <= 0:
                    return True
            batch = fragment_drain.drain(sock, want)
            if not batch:
                return n > 0
            n += len(batch)
            for ok, frames, nbytes, fragment_run, l1_id, source_id, l1_time_ns in batch:
                self.bytes_in += nbytes
                if not ok:  # the drain did not vouch for it: check_fragment gives the verdict
                    try:
                        fragment_run, l1_id, source_id, l1_time_ns = check_fragment(frames)
                    except WireFormatError as err:
                        self._reject(type(err).__name__, None, None)
                        continue
                if fragment_run != run_number:
                    self._reject("ForeignRun", None, None)
                    continue
                duplicate, unknown, late = c.duplicate_fragments, c.unknown_source_fragments, c.late_fragments
                complete, evicted = add(l1_id, source_id, frames, now_ns, l1_time_ns)
                if c.duplicate_fragments != duplicate:
                    self._reject("Duplicate", l1_id, source_id)
                if c.unknown_source_fragments != unknown:
                    self._reject("UnknownSource", None, source_id)
                if c.late_fragments != late:
                    self._reject("Late", None, source_id)
                if evicted is not None:
                    self._to_collector(evicted, "MissingData", "builder full: evicted before complete")
                if complete is not None:
                    complete.done_ns = clock.now_ns()  # real time (the state runs on the active clock)
                    dispatcher.add_event(complete.l1_id, complete)
            if limit is not None and dispatcher.is_full:
                return True
        return n > 0

    def _read_work(self) -> None:
        try:
            self._read_work_messages()
        finally:
            self._flush_results()

    def _read_work_messages(self) -> None:
        for _ in range(1000):  # bounded: fragments and timeouts are served between batches
            try:
                msg = recv_parts(self.work, zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(msg) != 3 and not (len(msg) > 3 and msg[1] == messages.RESULT):
                self.bad_control += 1
                continue
            sender, kind, meta_frame = msg[:3]
            if sender.endswith(_WATCHDOG):
                if kind == messages.RESULT:
                    for frame in msg[2:]:
                        self._forward_result(sender, frame)
                else:
                    self.bad_control += 1  # a watchdog sends forced decisions only
                continue
            if self.dispatcher.is_gone(sender):
                if kind == messages.RESULT:
                    for frame in msg[2:]:
                        self._forward_result(sender, frame)  # stale: counted and dropped
                continue  # a dead or replaced worker's late messages revive nothing
            self.liveness.heard(sender, clock.now_ns())
            if kind == messages.RESULT:
                for frame in msg[2:]:  # one decision per frame
                    self._forward_result(sender, frame)
            elif kind == messages.READY:
                try:
                    credits = messages.unpack_meta(meta_frame).get("credits", 1)
                    if not isinstance(credits, int) or not 1 <= credits <= 1024:
                        raise ValueError(f"credits {credits!r}")
                except (ValueError, TypeError):
                    self.bad_control += 1
                    continue
                self.dispatcher.add_credit(sender, credits)
            elif kind == messages.HEARTBEAT:
                self._heartbeat(sender, meta_frame)
            elif kind == messages.BYE:  # the worker is stopping: not silent, holds nothing more
                self.liveness.forget(sender)
            else:
                self.bad_control += 1

    def _read_control(self) -> None:
        while True:
            try:
                frames = self.control.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            try:
                kind, meta = frames
                identity = messages.unpack_meta(meta)["identity"]
                if kind != messages.WORKER_DIED or not isinstance(identity, str):
                    raise ValueError(f"control message {kind[:16]!r}")
            except (ValueError, KeyError, TypeError):
                self.bad_control += 1
                continue
            self._worker_gone(identity.encode(), "died")

    def _report_silent(self, now_ns: int) -> None:
        """Workers silent past their hard budget plus the margin: their events are retried
        now (later messages from them are stale) and the node agent kills them."""
        for worker, silent_ns in self.liveness.silent(now_ns):
            self._worker_gone(worker, "silent")
            self._report_stalled(worker, silent_ns, "silent")

    def _report_stalled(self, worker: bytes, silent_ns: int, why: str) -> None:
        self.stalled.append(worker.decode(errors="replace"))
        self.out.send_multipart([messages.STALLED, messages.pack_meta(
            {"identity": worker.decode(errors="replace"), "silent_s": silent_ns / clock.NS_PER_S, "why": why})])

    def _heartbeat(self, worker: bytes, meta_frame: bytes) -> None:
        """An idle worker's heartbeat says how many events it has received: when it has seen
        every event sent to it and is idle, anything still held for it without a decision
        is orphaned (a message it could not read at all): retried elsewhere."""
        try:
            received = messages.unpack_meta(meta_frame).get("received")
        except (ValueError, TypeError):
            self.bad_control += 1
            return
        if isinstance(received, int) and received == self.delivered.get(worker, 0):
            orphans = self.dispatcher.orphans(worker)
            for l1_id, event in orphans.items():
                self._retry_or_fail(worker, l1_id, event, "answered nothing for")
            self.orphaned += len(orphans)

    # -- loop -----------------------------------------------------------------------------
    def _dispatch(self) -> None:
        """The events paired with credits in this pass, one EVENT message per worker."""
        dispatcher = self.dispatcher
        for worker, batch in dispatcher.assignment_batches(MAX_EVENTS_PER_MESSAGE):
            if not dispatcher.is_gone(worker):  # unreachable at an earlier batch: these are queued again
                self._send_to_worker(worker, batch)

    def _housekeeping(self, now_ns: int) -> None:
        """Silent workers, the Prometheus view and build timeouts, from one clock reading;
        each is skipped while nothing can be due (the loop runs once per batch of input)."""
        if now_ns >= self.liveness_due_ns:
            self.liveness_due_ns = now_ns + LIVENESS_CHECK_NS
            self._report_silent(now_ns)
        self._update_metrics(now_ns)
        expiry_ns = self.state.next_expiry_ns()
        if expiry_ns is None:
            return
        active_ns = self.active_ns(now_ns)
        if active_ns >= expiry_ns:
            bc = self.config.builder
            for event in self.state.expire(active_ns):
                self._to_collector(event, "MissingData", f"incomplete after the {bc.build_timeout_ms:g} ms build timeout")

    def run(self, ready: multiprocessing.Queue, stop: multiprocessing.synchronize.Event) -> None:
        address = self.config.network.bind_address
        ready.put(("builder", {name: bind(sock, address, self.curve) for name, sock in
                               (("fragments", self.fragments_in), ("work", self.work), ("control", self.control))}))
        serve(self.metrics.registry, self.config.monitoring, BUILDER)
        poll_all, poll_work = zmq.Poller(), zmq.Poller()
        for sock in (self.fragments_in, self.work, self.control):
            poll_all.register(sock, zmq.POLLIN)
        for sock in (self.work, self.control):
            poll_work.register(sock, zmq.POLLIN)
        stop_check_ns = 0
        while True:
            now_ns = clock.now_ns()
            if now_ns >= stop_check_ns:  # the stop flag takes a lock: looked at once per STOP_CHECK_NS
                if stop.is_set():
                    break
                stop_check_ns = now_ns + STOP_CHECK_NS
            full = self._update_busy(now_ns)
            events = dict((poll_work if full else poll_all).poll(POLL_MS))
            if self.control in events:
                self._read_control()
            if self.fragments_in in events:
                self._read_fragments()
            if self.work in events:
                self._read_work()
            self._dispatch()
            self._housekeeping(clock.now_ns())
        self._shutdown()

    def _shutdown(self) -> None:
        """Nothing may vanish: every event still here leaves to a debug stream.

        Workers stop before the builder; their last results are read first (for at most
        two seconds), so an event a worker decided is forwarded, not reported again as
        unprocessed. Fragments still queued from the readout are read too: their events
        leave as MissingData or NotProcessed, not unaccounted.
        """
        deadline = clock.now_ns() + 2 * clock.NS_PER_S
        while self.work.poll(100) and clock.now_ns() < deadline:
            self._read_work()
        while self._read_fragments(limit=None):
            pass
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
        ring = self.ring
        self.out.send_multipart([messages.STATS, messages.pack_meta({"role": "builder", "counters": {
            "events_through_ring": ring.events if ring else 0, "events_inline": ring.inline if ring else 0,
            "event_ring_error": self.ring_error,
            "fragments_in": c.fragments_in, "bytes_in": self.bytes_in, "events_complete": c.events_complete,
            "events_incomplete": c.events_incomplete, "evicted_for_space": c.evicted_for_space,
            "rejected_fragments": dict(self.rejected), "dispatched": self.dispatcher.dispatched,
            "event_messages": self.event_messages, "result_messages": self.result_messages,
            "retried_after_worker_loss": self.retried, "workers_lost": len(self.workers_lost),
            "bad_control_messages": self.bad_control, "bad_results": self.bad_results,
            "stale_results_dropped": self.dispatcher.stale_results, "late_results_dropped": self.dispatcher.late_results,
            "stale_credits_refused": self.dispatcher.stale_credits, "orphaned_events_retried": self.orphaned, "workers_reported_silent": self.stalled, "peak_waiting": self.dispatcher.peak_waiting,
            "busy_s": self.busy_ns / clock.NS_PER_S, "refused_peers": self.curve.refused_peers if self.curve else 0,
            "peak_rss_mb": peak_rss_mb() or 0.0}})])
        for sock in (self.fragments_in, self.work, self.control):
            sock.close(linger=0)
        self.out.close(linger=2000)
        if self.curve is not None:
            self.curve.close()
        if self.ring is not None:
            self.ring.close()
        self.ctx.term()
