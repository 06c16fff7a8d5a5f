"""HLT worker process: asks the builder for events, runs the HLT sequence, reports results.

A thin shell: the per-event logic is `trigger_sim.hlt.sequence.HltSequence`. Kernels are
loaded from numba's cache and the inference server's model is checked before the worker
asks for its first event, so start-up cost never shows up as event latency.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize

import zmq

from farm import messages
from farm.lifecycle import die_with_parent
from farm.sockets import make_socket
from trigger_sim import clock
from trigger_sim.config import FarmConfig
from trigger_sim.hlt.sequence import ACCEPTED, DEBUG, HltSequence
from trigger_sim.inference.breaker import CircuitBreaker
from trigger_sim.inference.service import InferenceService
from trigger_sim.kernels import warm_up
from trigger_sim.menu import load_menu
from trigger_sim.models import jet_tagger

POLL_MS = 100


def build_inference(config: FarmConfig, triton_url: str | None) -> InferenceService:
    """Inference service with the Triton backend (if a server is given) and the local fallback."""
    ic = config.inference
    remote = None
    if triton_url:
        from trigger_sim.inference.triton_client import TritonBackend

        remote = TritonBackend(triton_url, ic.model, jet_tagger.INPUT_NAME, jet_tagger.OUTPUT_NAME)
    return InferenceService(
        remote, jet_tagger.LocalJetTagger(), CircuitBreaker(ic.breaker_failures, int(ic.breaker_open_ms * clock.NS_PER_MS)),
        timeout_s=ic.timeout_ms / 1e3,
    )


def run_worker(index: int, config: FarmConfig, triton_url: str | None, builder_endpoint: str, collector_endpoint: str,
               ready: multiprocessing.Queue, stop: multiprocessing.synchronize.Event) -> None:
    die_with_parent()
    warm_up()
    inference = build_inference(config, triton_url)
    problem = ""
    if inference.remote is not None:
        try:
            inference.remote.check_model()
        except Exception as err:  # the farm still runs, on the fallback; the supervisor reports it
            problem = str(err)
    sequence = HltSequence(config, load_menu(config.menu), inference)
    ctx = zmq.Context()
    builder = make_socket(ctx, zmq.DEALER)
    builder.setsockopt(zmq.IDENTITY, f"worker-{index}".encode())
    builder.connect(builder_endpoint)
    collector = make_socket(ctx, zmq.PUSH, hwm=10_000)
    collector.connect(collector_endpoint)
    for _ in range(config.builder.credits_per_worker):
        builder.send_multipart([messages.READY, messages.pack_meta({"done": None})])
    ready.put(("worker", {"index": index, "problem": problem}))
    processed = 0
    try:
        while not stop.is_set():
            if not builder.poll(POLL_MS):
                continue
            kind, meta_frame, *frames = builder.recv_multipart(copy=False)
            if kind.bytes != messages.EVENT:
                continue
            meta = messages.unpack_meta(meta_frame)
            l1_id = meta["l1_id"]
            received = clock.now_ns()
            try:
                fragments = messages.split(meta["frames_per_fragment"], frames)
            except ValueError as err:
                fragments = []
                result = sequence.error_result(l1_id, f"malformed EVENT message: {err}")
            else:
                result = sequence.process(l1_id, fragments)
            decided = clock.now_ns()
            out = result.to_message()
            out.update(l1_time_ns=meta["l1_time_ns"], complete_ns=meta["complete_ns"],
                       dispatched_ns=meta["dispatched_ns"], received_ns=received, decided_ns=decided, worker=index)
            keep = result.outcome in (ACCEPTED, DEBUG)
            counts, flat = messages.flatten(fragments) if keep and fragments else ([], [])
            out["frames_per_fragment"] = counts
            collector.send_multipart([messages.RESULT, messages.pack_meta(out), *flat], copy=False)
            builder.send_multipart([messages.READY, messages.pack_meta({"done": l1_id})])
            processed += 1
    finally:
        c = inference.counters
        collector.send_multipart([messages.STATS, messages.pack_meta({"role": "worker", "index": index, "counters": {
            "processed": processed, "triton_calls": c.triton_calls, "triton_failures": c.triton_failures,
            "fallback_calls": c.fallback_calls, "fallback_reasons": dict(c.fallback_reasons),
            "breaker_opened": inference.breaker.times_opened, "breaker_probes": inference.breaker.probes}})])
        if inference.remote is not None:
            inference.remote.close()
        builder.close(linger=0)
        collector.close(linger=2000)
        ctx.term()
