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
from farm.security import Curve
from farm.sockets import connect, make_socket
from trigger_sim import clock
from trigger_sim.config import FarmConfig
from trigger_sim.hlt.sequence import ACCEPTED, DEBUG, EventResult, HltSequence
from trigger_sim.hlt.watchdog import HARD, EventWatch
from trigger_sim.inference.service import InferenceService
from trigger_sim.kernels import warm_up
from trigger_sim.menu import load_menu
from trigger_sim.inference.factory import build_inference, prepare_inference

POLL_MS = 100


def inference_counters(inference: dict[str, InferenceService]) -> dict[str, Any]:
    """Calls per path, summed over models, and the same per model."""
    per_model = {}
    for name, service in inference.items():
        c = service.counters
        per_model[name] = {"triton_calls": c.triton_calls, "triton_failures": c.triton_failures, "fallback_calls": c.fallback_calls,
                           "skipped": c.skipped, "fallback_reasons": dict(c.fallback_reasons),
                           "breaker_opened": service.breaker.times_opened, "breaker_probes": service.breaker.probes,
                           **shared_memory_counters(service)}
    total: dict[str, Any] = {key: sum(m[key] for m in per_model.values())
                             for key in ("triton_calls", "triton_failures", "fallback_calls", "breaker_opened", "breaker_probes")}
    reasons: Counter = Counter()
    for m in per_model.values():
        reasons.update(m["fallback_reasons"])
    total["fallback_reasons"] = dict(reasons)
    total["models"] = per_model
    return total


def shared_memory_counters(service: InferenceService) -> dict[str, int]:
    """Requests sent through shared memory, slots quarantined after a failed call, and
    requests that found every slot quarantined (sent inside the gRPC message instead)."""
    transport = getattr(service.remote, "shared_memory", None)
    if transport is None:
        return {}
    return {"shared_memory_calls": transport.calls, "shared_memory_quarantined": transport.pool.quarantined,
            "shared_memory_none_free": transport.pool.none_free, "shared_memory_off": transport.disabled}


def result_message(result: EventResult, meta: dict[str, Any], received_ns: int, decided_ns: int, worker: str,
                   fragments: list) -> list:
    """The RESULT message: the decision, its timings, and the fragments if it is kept."""
    out = result.to_message()
    out.update(l1_time_ns=meta["l1_time_ns"], complete_ns=meta["complete_ns"], dispatched_ns=meta["dispatched_ns"],
               received_ns=received_ns, decided_ns=decided_ns, worker=worker)
    keep = result.outcome in (ACCEPTED, DEBUG) and fragments
    counts, flat = messages.flatten(fragments) if keep else ([], [])
    out["frames_per_fragment"] = counts
    return [messages.RESULT, messages.pack_meta(out), *flat]


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
    watchdog = threading.Thread(target=_watchdog, args=(watch, ctx, collector_endpoint, identity, config.worker.budget_ms, done, curve),
                                name="watchdog", daemon=True)
    watchdog.start()
    for _ in range(config.builder.credits_per_worker):
        builder.send_multipart([messages.READY, messages.pack_meta({"done": None})])
    ready.put(("worker", {"identity": identity, "problem": problem}))
    processed = 0
    try:
        while not stop.is_set():
            if not builder.poll(POLL_MS):
                continue
            kind, meta_frame, *frames = builder.recv_multipart(copy=False)
            if kind.bytes != messages.EVENT:
                continue
            received = clock.now_ns()
            try:
                meta = messages.unpack_meta(meta_frame)
                l1_id = int(meta["l1_id"])
                fragments = messages.split(meta["frames_per_fragment"], frames)
            except (ValueError, KeyError, TypeError):
                continue  # cannot even name the event: the builder retries it elsewhere if this worker stalls
            watch.start(l1_id, received, (meta, fragments))
            result = sequence.process(l1_id, fragments, stop_requested=watch.soft_expired, start_ns=received)
            if watch.finish(l1_id):  # not already force-accepted by the watchdog
                collector.send_multipart(result_message(result, meta, received, clock.now_ns(), identity, fragments), copy=False)
            builder.send_multipart([messages.READY, messages.pack_meta({"done": l1_id})])
            processed += 1
    finally:
        collector.send_multipart([messages.STATS, messages.pack_meta({"role": "worker", "identity": identity, "counters": {
            "processed": processed, **inference_counters(inference),
            "soft_timeouts": watch.soft_timeouts, "hard_timeouts": watch.hard_timeouts}})])
        done.set()
        watchdog.join(timeout=2.0)
        for service in inference.values():
            if service.remote is not None:
                service.remote.close()
        builder.close(linger=0)
        collector.close(linger=2000)
        ctx.term()


def _watchdog(watch: EventWatch, ctx: zmq.Context, collector_endpoint: str, identity: str, budget_ms: float,
              done: threading.Event, curve: Curve | None = None) -> None:
    """Every budget/20 (at most 100 ms): soft timeouts are flagged, hard ones force-accepted."""
    sock = make_socket(ctx, zmq.PUSH, hwm=1000)
    connect(sock, collector_endpoint, curve)
    period_s = min(budget_ms / 20e3, 0.1)
    try:
        while not done.wait(period_s):
            kind, l1_id, payload = watch.check(clock.now_ns())
            if kind == HARD:
                meta, fragments = payload
                result = EventResult(l1_id, DEBUG, streams=("HltTimeout",),
                                     reason=f"hard timeout: a step ran past the {budget_ms:g} ms budget; force-accepted")
                now = clock.now_ns()
                sock.send_multipart(result_message(result, meta, now, now, identity, fragments), copy=False)
    finally:
        sock.close(linger=2000)
