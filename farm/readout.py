"""Readout process: the Level-1 trigger and the readout sources.

For each Level-1 slot (paced constant or Poisson) it simulates the event and every source
sends its fragment over its own PUSH socket. When the event builder stops reading (every
worker busy, its queue full), sends block: the time blocked is Level-1 busy, and the slots
that pass meanwhile are vetoed (dead time), never queued in memory. Vetoed slots are not
Level-1 accepts and do not take a Level-1 id.
"""

from __future__ import annotations

import multiprocessing.synchronize
import time

import zmq

from farm import messages
from farm.lifecycle import die_with_parent, ignore_interrupts
from farm.metrics_http import serve
from farm.security import Curve
from farm.sockets import connect, make_socket
from trigger_sim import clock
from trigger_sim.config import FarmConfig
from trigger_sim.accounting import MAX_L1_ID
from trigger_sim.faults import FaultInjector
from trigger_sim.id_ranges import IdRanges
from trigger_sim.metrics import READOUT, ReadoutMetrics
from trigger_sim.pacing import Pacer
from trigger_sim.partition import source_ids
from trigger_sim.event_source import RecordingSource, SimulatedSource
from trigger_sim.simulation import warm_up
from trigger_sim.wire import encode_fragment

RANGES_PER_MESSAGE = 5_000  # [start, stop) pairs per L1_IDS message: under 0.1 MB, far below the metadata limit
MAX_LAG_MS = 50.0  # a slot reached later than this after its time is vetoed
STATS_PERIOD_NS = 500 * clock.NS_PER_MS  # running counters to the collector (the live view's rate in and dead time)


def run_readout(config: FarmConfig, builder_endpoint: str, collector_endpoint: str, n_events: int | None,
                duration_s: float | None, stop: multiprocessing.synchronize.Event, replay: dict | None = None) -> None:
    """Send `n_events` Level-1 accepts (or for `duration_s`, or until a replayed file ends),
    then END to the collector. `replay`: {"path": recording, "loop": bool} instead of simulation."""
    die_with_parent()
    ignore_interrupts()
    ctx = zmq.Context()
    curve = Curve.from_config(config.network)
    sources = {}
    for sid in source_ids(config):
        sock = make_socket(ctx, zmq.PUSH, hwm=config.builder.input_hwm)
        connect(sock, builder_endpoint, curve)
        sources[sid] = sock
    collector = make_socket(ctx, zmq.PUSH)
    connect(collector, collector_endpoint, curve)
    metrics = ReadoutMetrics()
    serve(metrics.registry, config.monitoring, READOUT)
    if not replay:
        warm_up(config)  # before the first slot: loading (or compiling) kernels is not Level-1 dead time
    start = clock.now_ns()
    rc = config.readout
    pacer = Pacer(rc.rate_hz, rc.pattern, start, seed=config.run.seed, burst_factor=rc.burst_factor, burst_events=rc.burst_events)
    source = RecordingSource(config, replay["path"], replay.get("loop", False)) if replay else SimulatedSource(config)
    sent_ids = IdRanges()  # replayed events keep their recorded ids; reported as ranges
    end_ns = start + int(duration_s * clock.NS_PER_S) if duration_s else None
    max_lag_ns = int(MAX_LAG_MS * clock.NS_PER_MS)
    send_timeout_ms = int(config.readout.send_timeout_ms)
    injector = FaultInjector(config.faults, config.run.seed) if config.faults.any else None
    n_sent = not_sent_at_stop = 0
    problem = ""
    busy_ns = 0
    vetoed_busy = vetoed_slow = 0
    blocked_recently = False
    stats_due_ns = start
    try:
        while not stop.is_set() and (n_events is None or n_sent < n_events):
            if clock.now_ns() >= stats_due_ns:
                stats_due_ns = clock.now_ns() + STATS_PERIOD_NS
                send_stats(collector, n_sent, vetoed_busy, vetoed_slow, busy_ns)
            slot = pacer.next_ns()
            if end_ns is not None and slot >= end_ns:
                break
            if clock.now_ns() - slot > max_lag_ns:
                if blocked_recently:
                    vetoed_busy += 1
                else:
                    vetoed_slow += 1
                metrics.vetoed.labels("busy" if blocked_recently else "readout_slow").inc()
                continue
            blocked_recently = False
            # Prepare the event before its slot, so the emulator's own cost is not event latency.
            event = source.next_event(slot)
            if event is None:  # a replayed file ended
                break
            l1_id, fragments = event
            if l1_id >= MAX_L1_ID:
                problem = f"Level-1 id {l1_id} reached the ledger's limit ({MAX_L1_ID}): input stopped there"
                break
            now = clock.now_ns()
            if now < slot:
                time.sleep((slot - now) / clock.NS_PER_S)
            sent_any = False
            for index, frag in enumerate(fragments):
                for frames in (injector.apply(frag, index, n_sent) if injector else [encode_fragment(frag)]):
                    sent, blocked = _send(sources[frag.header.source_id], frames, send_timeout_ms, stop, metrics)
                    sent_any |= sent
                    if blocked:
                        busy_ns += blocked
                        blocked_recently = True
                        metrics.blocked_seconds.inc(blocked / clock.NS_PER_S)
            if not sent_any:  # stopping while the builder took nothing of it: never accepted
                not_sent_at_stop += 1
                break
            n_sent += 1  # a Level-1 accept: with any fragment out, the builder accounts for it
            sent_ids.add(l1_id)
            metrics.accepts.inc()
    finally:
        elapsed_s = (clock.now_ns() - start) / clock.NS_PER_S
        send_end(collector, n_sent, sent_ids, {
            "vetoed_busy": vetoed_busy, "vetoed_slow": vetoed_slow, "busy_s": busy_ns / clock.NS_PER_S,
            "elapsed_s": elapsed_s, "faults_injected": dict(injector.injected) if injector else {},
            "not_sent_at_stop": not_sent_at_stop, "problem": problem})
        time.sleep(0.05)  # let the END leave before the sockets close
        for sock in (*sources.values(), collector):
            sock.close(linger=1000)
        ctx.term()


def send_stats(collector: zmq.Socket, n_sent: int, vetoed_busy: int, vetoed_slow: int, busy_ns: int) -> None:
    """The readout's running counters to the collector (the live view's rate in and dead time)."""
    collector.send_multipart([messages.STATS, messages.pack_meta({"role": "readout", "counters": {
        "l1_accepted": n_sent, "vetoed_busy": vetoed_busy, "vetoed_slow": vetoed_slow, "busy_s": busy_ns / clock.NS_PER_S}})])


def send_end(collector: zmq.Socket, n_accepted: int, sent_ids: IdRanges, fields: dict) -> None:
    """The Level-1 ids sent (in chunks of ranges) and END with their count and `fields`
    (vetoes, dead time, faults injected, a problem): what the collector checks the ledger against."""
    chunks = sent_ids.chunks(RANGES_PER_MESSAGE)
    for index, ranges in enumerate(chunks):
        collector.send_multipart([messages.L1_IDS, messages.pack_meta({"chunk": index, "ranges": ranges})])
    collector.send_multipart([messages.END, messages.pack_meta({"l1_accepted": n_accepted, "id_chunks": len(chunks), **fields})])


def _send(sock: zmq.Socket, frames: list, send_timeout_ms: int, stop: multiprocessing.synchronize.Event,
          metrics: ReadoutMetrics | None = None) -> tuple[bool, int]:
    """Send one fragment; return whether it left, and the ns spent blocked by back-pressure.

    The send waits until the builder reads, checking for a stop request every
    `send_timeout_ms`; only when stopping does it give up (after one more bounded attempt):
    an event with some fragments out leaves the builder as MissingData, one with none is
    not counted as a Level-1 accept.
    """
    try:
        sock.send_multipart(frames, flags=zmq.NOBLOCK, copy=False)
        return True, 0
    except zmq.Again:
        pass
    t0 = clock.now_ns()
    if metrics is not None:
        metrics.blocked.set(1)
    try:
        while True:
            if sock.poll(send_timeout_ms, zmq.POLLOUT):
                sock.send_multipart(frames, copy=False)
                return True, clock.now_ns() - t0
            if stop.is_set():
                if sock.poll(send_timeout_ms, zmq.POLLOUT):
                    sock.send_multipart(frames, copy=False)
                    return True, clock.now_ns() - t0
                return False, clock.now_ns() - t0
    finally:
        if metrics is not None:
            metrics.blocked.set(0)
