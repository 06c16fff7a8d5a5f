"""HLT worker process: asks the builder for events, runs the HLT sequence, reports results.

A thin shell: the per-event logic is `trigger_sim.hlt.sequence.HltSequence`, which event of
the worker's slots runs next is `trigger_sim.hlt.slots.SlotScheduler`, the timeouts
`trigger_sim.hlt.watchdog.EventWatch`. Kernels are loaded from numba's cache, the model
is checked and one warm-up request is sent before the worker asks for its first event, so
start-up cost does not show up as event latency. A watchdog thread (its own socket)
force-accepts an event into HltTimeout when a step runs past the hard budget.

With `worker.slots` = N > 1 the worker asks for N events, sends inference requests without
waiting (`InferenceService.begin`), and runs another event while they are on the server; an
answer wakes the loop through an eventfd (`farm.wakeup`). With one slot every call blocks,
as it always did.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import threading
import time
from collections import Counter, deque
from typing import Any

import zmq
from threadpoolctl import threadpool_limits

from farm import messages
from farm.event_handoff import RingReader
from farm.lifecycle import die_with_parent, ignore_interrupts, stacks_on_request
from farm.metrics_http import serve
from farm.security import Curve
from farm.sockets import connect, make_socket, recv_parts, send_parts
from trigger_sim import clock
from trigger_sim.config import FarmConfig
from trigger_sim.accounting import DEBUG
from trigger_sim.assignment import credits_asked
from farm.wakeup import Wakeup
from trigger_sim.hlt.sequence import EventResult, HltSequence
from trigger_sim.hlt.slots import Finished, SlotScheduler
from trigger_sim.hlt.watchdog import HARD, EventWatch
from trigger_sim.inference.service import InferenceService
from trigger_sim.kernels import warm_up
from trigger_sim.liveness import HEARTBEAT_S
from trigger_sim.menu import load_menu
from trigger_sim.metrics import WorkerMetrics
from trigger_sim.inference.factory import build_inference, close_inference, prepare_inference, server_pool

POLL_MS = 100
STATS_PERIOD_S = 1.0  # counters reach the collector at least this often


def inference_counters(inference: dict[str, InferenceService]) -> dict[str, Any]:
    """Calls per path, summed over models, the same per model, and per server of the pool."""
    per_model = {}
    for name, service in inference.items():
        c = service.counters
        per_model[name] = {"triton_calls": c.triton_calls, "triton_failures": c.triton_failures, "fallback_calls": c.fallback_calls,
                           "skipped": c.skipped, "expired": c.expired, "failure_texts": list(c.failure_texts), "fallback_reasons": dict(c.fallback_reasons),
                           "breaker_opened": service.breaker.times_opened, "breaker_probes": service.breaker.probes,
                           **shared_memory_counters(service)}
    total: dict[str, Any] = {key: sum(m[key] for m in per_model.values())
                             for key in ("triton_calls", "triton_failures", "fallback_calls", "expired", "breaker_opened", "breaker_probes")}
    reasons: Counter = Counter()
    for m in per_model.values():
        reasons.update(m["fallback_reasons"])
    total["fallback_reasons"] = dict(reasons)
    total["models"] = per_model
    pool = server_pool(inference)
    if pool is not None:  # per server address: calls, failures, latency buckets (summed over workers)
        total["servers"] = pool.counters()
    return total


def shared_memory_counters(service: InferenceService) -> dict[str, int]:
    """Requests sent through shared memory, slots quarantined after a failed call, and
    requests that found every slot quarantined (sent inside the gRPC message instead)."""
    transport = getattr(service.remote, "shared_memory", None)
    if transport is None:
        return {}
    return {"shared_memory_calls": transport.calls, "shared_memory_quarantined": transport.pool.quarantined,
            "shared_memory_none_free": transport.pool.none_free, "shared_memory_off": transport.disabled}


def decision_meta(result: EventResult, received_ns: int, decided_ns: int, worker: str, forced: bool = False) -> bytes:
    """One decision of a RESULT message to the builder: the result and the worker's own
    times. The builder adds the event's times and fragments when it forwards it."""
    out = result.to_message()
    out.update(received_ns=received_ns, decided_ns=decided_ns, worker=worker)
    if forced:
        out["forced"] = True
    return messages.pack_meta(out)


def result_message(result: EventResult, received_ns: int, decided_ns: int, worker: str, forced: bool = False) -> list:
    """The RESULT message to the builder with one decision."""
    return [messages.RESULT, decision_meta(result, received_ns, decided_ns, worker, forced)]


def unreadable_event(l1_id: int, err: Exception) -> EventResult:
    """An EVENT whose id is known but whose metadata or fragments do not decode: HltError,
    so the event is decided (and its credit returned) instead of silently skipped."""
    return EventResult(l1_id, DEBUG, streams=("HltError",), reason=f"unreadable event message: {type(err).__name__}: {err}"[:200])


class _Periodic:
    """True once every `period_s` (heartbeats, counters)."""

    def __init__(self, period_s: float, first_now: bool = False):
        self.period_ns = int(period_s * clock.NS_PER_S)
        self.last_ns = 0 if first_now else clock.now_ns()

    def due(self, now_ns: int) -> bool:
        if now_ns - self.last_ns < self.period_ns:
            return False
        self.last_ns = now_ns
        return True


def run_worker(identity: str, config: FarmConfig, triton_url: str | None, builder_endpoint: str, collector_endpoint: str,
               ready: multiprocessing.Queue, stop: multiprocessing.synchronize.Event, shm_prefix: str | None = None) -> None:
    """`shm_prefix`: the run's prefix for shared-memory regions (the node agent removes what
    a killed worker leaves under it)."""
    die_with_parent()
    ignore_interrupts()
    stacks_on_request()
    # One BLAS thread: the farm runs one worker per core, and the fallback GNN's matrix
    # products must not spread over the cores the other workers and the server use.
    threadpool_limits(limits=1, user_api="blas")
    warm_up()
    # a region's name is one path component: a node's worker ("node1/worker-0.0") names it without the slash
    inference = build_inference(config, triton_url, f"{shm_prefix}{identity.replace('/', '.')}_" if shm_prefix else None)
    for service in inference.values():
        service.allow_in_flight(config.worker.slots)
    problem = prepare_inference(inference)
    sequence = HltSequence(config, load_menu(config.menu), inference)
    watch = EventWatch(int(config.worker.budget_ms * clock.NS_PER_MS))
    ctx = zmq.Context()
    curve = Curve.from_config(config.network)
    builder = make_socket(ctx, zmq.DEALER)
    builder.setsockopt(zmq.IDENTITY, identity.encode())
    connect(builder, builder_endpoint, curve)
    collector = make_socket(ctx, zmq.PUSH, hwm=1000)
    connect(collector, collector_endpoint, curve)
    done = threading.Event()
    watchdog = threading.Thread(target=_watchdog, args=(watch, ctx, builder_endpoint, identity, config.worker.budget_ms, done, curve),
                                name="watchdog", daemon=True)
    watchdog.start()
    loop = _EventLoop(identity, config, sequence, watch, builder)
    cpu_at_ready_s = time.process_time()  # the worker's CPU from here on is spent on events (all its threads)
    builder.send_multipart([messages.READY, messages.pack_meta({"credits": credits_asked(config)})])
    ready.put(("worker", {"identity": identity, "problem": problem}))
    metrics = WorkerMetrics(triton_url or "none")
    serve(metrics.registry, config.monitoring, identity.rsplit(".", 1)[0])  # worker-<i>: its slot's port

    def send_stats() -> None:
        counters = {**loop.counts, "processed": loop.counts["processed"], **inference_counters(inference),
                    "soft_timeouts": watch.soft_timeouts, "hard_timeouts": watch.hard_timeouts,
                    "slots": loop.slots.n_slots, "peak_slots_held": loop.slots.peak_held,
                    "cpu_s": time.process_time() - cpu_at_ready_s}
        collector.send_multipart([messages.STATS, messages.pack_meta({"role": "worker", "identity": identity, "counters": counters})])
        metrics.update(counters)  # the Prometheus counters follow the same figures, every second

    stats = _Periodic(STATS_PERIOD_S, first_now=True)
    try:
        while not stop.is_set():
            if stats.due(clock.now_ns()):
                send_stats()  # periodically: a killed worker's counters up to its last second
            loop.once(admit=True)
        # Stopping: the events held are finished (each within its budget) and their results sent.
        give_up_ns = clock.now_ns() + int((config.worker.budget_ms + 1000.0) * clock.NS_PER_MS)
        while loop.slots.held and clock.now_ns() < give_up_ns:
            loop.once(admit=False)
    finally:
        send_stats()
        builder.send_multipart([messages.BYE, messages.pack_meta({})])
        done.set()
        watchdog.join(timeout=2.0)
        loop.slots.drop_all()
        close_inference(inference)
        loop.wakeup.close()
        loop.ring.close()
        builder.close(linger=2000)
        collector.close(linger=2000)
        ctx.term()


class _EventLoop:
    """The worker's main loop, one pass at a time: admit events into free slots, wake on
    answers, run the event the scheduler picks, send results and heartbeats."""

    def __init__(self, identity: str, config: FarmConfig, sequence: HltSequence, watch: EventWatch, builder: zmq.Socket):
        self.identity = identity
        self.sequence = sequence
        self.watch = watch
        self.builder = builder
        self.slots = SlotScheduler(config.worker.slots)
        self.asynchronous = config.worker.slots > 1  # one slot: every call blocks, as always
        self.wakeup = Wakeup()
        self.ring = RingReader()  # the builder's shared-memory ring, mapped at the first event through it
        self.held: dict[int, tuple[int, int]] = {}  # token -> (Level-1 id, when the event was received)
        self.queued: deque[messages.ReceivedEvent] = deque()  # received in a batch, waiting for a free slot
        self.counts: Counter = Counter()
        self.heartbeat = _Periodic(HEARTBEAT_S)
        self.poll_all, self.poll_answers = zmq.Poller(), zmq.Poller()
        self.poll_all.register(builder, zmq.POLLIN)
        for poller in (self.poll_all, self.poll_answers):
            poller.register(self.wakeup.fd, zmq.POLLIN)

    def once(self, admit: bool) -> None:
        if admit:
            self._admit_queued()
        ready = self.slots.next_ready() is not None
        can_admit = admit and self.slots.free > 0
        poller = self.poll_all if can_admit else self.poll_answers
        events = dict(poller.poll(0 if ready else POLL_MS))
        if self.wakeup.fd in events:
            for token in self.wakeup.drain():
                self.slots.answered(token)
        if can_admit and self.builder in events:
            self._receive()
        elif not events and not self.slots.held and self.heartbeat.due(clock.now_ns()):
            self.builder.send_multipart([messages.HEARTBEAT, messages.pack_meta({"received": self.counts["received"]})])
        token = self.slots.next_ready()
        if token is not None:
            self._run(token)

    def _receive(self) -> None:
        """Read one EVENT message (one or more events) and take its events into free slots;
        the rest wait here for a slot, in order (as they would in the socket). Events that
        cannot be read are answered at once (HltError), together."""
        kind, *parts = recv_parts(self.builder, copy=False)
        arrived_ns = clock.now_ns()
        if kind.bytes != messages.EVENT:
            self.counts["bad_messages"] += 1
            return
        try:
            received = messages.read_event_message(parts)
        except ValueError:
            # Cannot even name the events: ask for as many others; the next heartbeat (this
            # worker idle, every event received) has the builder retry them elsewhere.
            n = messages.count_events(parts)
            self.counts["received"] += n
            self.counts["unreadable_events"] += n
            self.builder.send_multipart([messages.READY, messages.pack_meta({"credits": n})])
            return
        self.counts["received"] += len(received)
        self.queued.extend(received)
        self._admit_queued(arrived_ns)

    def _admit_queued(self, arrived_ns: int | None = None) -> None:
        """Queued events into free slots, oldest first. An event's received time is when its
        message arrived (`arrived_ns`) if a slot takes it at once, else when a slot does."""
        unreadable = []
        while self.queued and self.slots.free > 0:
            event = self.queued.popleft()
            received = arrived_ns or clock.now_ns()
            l1_id = event.l1_id
            try:
                if event.error is not None:
                    raise event.error
                meta = event.meta
                payload = self.ring.read(meta["ring"]) if "ring" in meta else event.inline  # copied out of the ring
                fragments = messages.split(meta["frames_per_fragment"], payload)
            except (ValueError, KeyError, TypeError, IndexError, OSError) as err:
                self.counts["unreadable_events"] += 1
                unreadable.append(decision_meta(unreadable_event(l1_id, err), received, clock.now_ns(), self.identity))
                continue
            self.watch.start(l1_id, received, received)
            run = self.sequence.run(l1_id, fragments, stop_requested=lambda i=l1_id: self.watch.soft_expired(i), start_ns=received,
                                    asynchronous=self.asynchronous)
            self.held[self.slots.admit(l1_id, run)] = (l1_id, received)
        if unreadable:  # several decisions, one message
            send_parts(self.builder, [messages.RESULT, *unreadable])

    def _run(self, token: int) -> None:
        """Run one event until it waits for the server or ends."""
        try:
            step = self.slots.resume(token)
        except Exception as err:  # the sequence turns errors into HltError; this is a last resort
            self._send(token, self.sequence.error_result(self.held[token][0], f"{type(err).__name__}: {err}"[:200]))
            return
        if isinstance(step, Finished):
            self._send(token, step.result)
            return
        future = getattr(step.wait, "future", None)
        if future is None:
            self.slots.answered(token)
        else:
            future.add_done_callback(lambda _, t=token: self.wakeup.notify(t))

    def _send(self, token: int, result: EventResult) -> None:
        _, received = self.held.pop(token)
        self.watch.finish(result.l1_id)
        # Sent even after a forced decision: the builder takes the first one that arrives,
        # and this one also frees the worker's slot (a credit comes with it).
        send_parts(self.builder, result_message(result, received, clock.now_ns(), self.identity))
        self.counts["processed"] += 1
        self.heartbeat.last_ns = clock.now_ns()


def _watchdog(watch: EventWatch, ctx: zmq.Context, builder_endpoint: str, identity: str, budget_ms: float,
              done: threading.Event, curve: Curve | None = None) -> None:
    """Every budget/20 (at most 100 ms): soft timeouts are flagged, hard ones force-accepted.

    Its own connection to the builder (identity `<worker>/watchdog`): the builder forwards
    the forced decision and keeps the worker's slot busy until the main thread is back.
    """
    sock = make_socket(ctx, zmq.DEALER)
    sock.setsockopt(zmq.IDENTITY, (identity + messages.WATCHDOG_SUFFIX).encode())
    connect(sock, builder_endpoint, curve)
    period_s = min(budget_ms / 20e3, 0.1)
    try:
        while not done.wait(period_s):
            for kind, l1_id, received in watch.check(clock.now_ns()):
                if kind == HARD:
                    result = EventResult(l1_id, DEBUG, streams=("HltTimeout",),
                                         reason=f"hard timeout: the event ran past the {budget_ms:g} ms budget; force-accepted")
                    sock.send_multipart(result_message(result, received, clock.now_ns(), identity, forced=True))
    finally:
        sock.close(linger=2000)
