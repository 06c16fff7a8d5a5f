"""HLT worker process: asks the builder for events, runs the HLT sequence, reports results.

A thin shell: the per-event logic is `trigger_sim.hlt.sequence.HltSequence`, the timeouts
`trigger_sim.hlt.watchdog.EventWatch`. Kernels are loaded from numba's cache, the model
is checked and one warm-up request is sent before the worker asks for its first event, so
start-up cost does not show up as event latency. A watchdog thread (its own socket)
force-accepts an event into HltTimeout when a step runs past the hard budget.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
import threading
from collections import Counter
from typing import Any

import zmq
from threadpoolctl import threadpool_limits

from farm import messages
from farm.lifecycle import die_with_parent, ignore_interrupts
from farm.metrics_http import serve
from farm.security import Curve
from farm.sockets import connect, make_socket
from trigger_sim import clock
from trigger_sim.config import FarmConfig
from trigger_sim.accounting import DEBUG
from trigger_sim.hlt.sequence import EventResult, HltSequence
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


def result_message(result: EventResult, received_ns: int, decided_ns: int, worker: str, forced: bool = False) -> list:
    """The RESULT message to the builder: the decision and the worker's own times. The
    builder adds the event's times and fragments when it forwards it to the collector."""
    out = result.to_message()
    out.update(received_ns=received_ns, decided_ns=decided_ns, worker=worker)
    if forced:
        out["forced"] = True
    return [messages.RESULT, messages.pack_meta(out)]


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
    """`shm_prefix`: the run's prefix for shared-memory regions (the supervisor removes what
    a killed worker leaves under it)."""
    die_with_parent()
    ignore_interrupts()
    # One BLAS thread: the farm runs one worker per core, and the fallback GNN's matrix
    # products must not spread over the cores the other workers and the server use.
    threadpool_limits(limits=1, user_api="blas")
    warm_up()
    inference = build_inference(config, triton_url, f"{shm_prefix}{identity}_" if shm_prefix else None)
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
    builder.send_multipart([messages.READY, messages.pack_meta({"credits": config.builder.credits_per_worker})])
    ready.put(("worker", {"identity": identity, "problem": problem}))
    counts = Counter()
    metrics = WorkerMetrics(triton_url or "none")
    serve(metrics.registry, config.monitoring, identity.rsplit(".", 1)[0])  # worker-<i>: its slot's port

    def send_stats() -> None:
        counters = {**counts, "processed": counts["processed"], **inference_counters(inference),
                    "soft_timeouts": watch.soft_timeouts, "hard_timeouts": watch.hard_timeouts}
        collector.send_multipart([messages.STATS, messages.pack_meta({"role": "worker", "identity": identity, "counters": counters})])
        metrics.update(counters)  # the Prometheus counters follow the same figures, every second

    heartbeat, stats = _Periodic(HEARTBEAT_S), _Periodic(STATS_PERIOD_S, first_now=True)
    try:
        while not stop.is_set():
            if stats.due(clock.now_ns()):
                send_stats()  # periodically: a killed worker's counters up to its last second
            if not builder.poll(POLL_MS):
                if heartbeat.due(clock.now_ns()):
                    builder.send_multipart([messages.HEARTBEAT, messages.pack_meta({"received": counts["received"]})])
                continue
            kind, *frames = builder.recv_multipart(copy=False)
            if kind.bytes != messages.EVENT:
                counts["bad_messages"] += 1
                continue
            counts["received"] += 1
            received = clock.now_ns()
            try:
                l1_id = messages.unpack_id(frames[0])
            except (ValueError, IndexError):
                # Cannot even name the event: ask for another; the next heartbeat (this
                # worker idle, every event received) has the builder retry it elsewhere.
                counts["unreadable_events"] += 1
                builder.send_multipart([messages.READY, messages.pack_meta({"credits": 1})])
                continue
            try:
                meta = messages.unpack_meta(frames[1])
                fragments = messages.split(meta["frames_per_fragment"], frames[2:])
            except (ValueError, KeyError, TypeError, IndexError) as err:
                counts["unreadable_events"] += 1
                builder.send_multipart(result_message(unreadable_event(l1_id, err), received, clock.now_ns(), identity))
                continue
            watch.start(l1_id, received, received)
            result = sequence.process(l1_id, fragments, stop_requested=watch.soft_expired, start_ns=received)
            watch.finish(l1_id)
            # Sent even after a forced decision: the builder takes the first one that arrives,
            # and this one also frees the worker's slot (a credit comes with it).
            builder.send_multipart(result_message(result, received, clock.now_ns(), identity))
            counts["processed"] += 1
            heartbeat.last_ns = clock.now_ns()
    finally:
        send_stats()
        builder.send_multipart([messages.BYE, messages.pack_meta({})])
        done.set()
        watchdog.join(timeout=2.0)
        close_inference(inference)
        builder.close(linger=2000)
        collector.close(linger=2000)
        ctx.term()


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
            kind, l1_id, received = watch.check(clock.now_ns())
            if kind == HARD:
                result = EventResult(l1_id, DEBUG, streams=("HltTimeout",),
                                     reason=f"hard timeout: a step ran past the {budget_ms:g} ms budget; force-accepted")
                sock.send_multipart(result_message(result, received, clock.now_ns(), identity, forced=True))
    finally:
        sock.close(linger=2000)
