"""Event-builder process: a thin ZeroMQ shell around `EventBuilderState` and `Dispatcher`.

Fragments arrive on one PULL socket from every readout source. Complete events go to
workers over a ROUTER socket, one per credit (workers say READY when free). Incomplete
events go to the collector's MissingData stream after the build timeout. When the queue of
complete events is full the builder stops reading fragments, so back-pressure reaches
the readout (Level-1 busy) instead of growing memory here.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.synchronize
from collections import Counter

import zmq

from farm import messages
from farm.lifecycle import die_with_parent
from farm.sockets import bind_loopback, make_socket
from trigger_sim import clock
from trigger_sim.builder_state import EventBuilderState, PendingEvent
from trigger_sim.config import FarmConfig
from trigger_sim.dispatch import Dispatcher
from trigger_sim.errors import WireFormatError
from trigger_sim.partition import source_ids
from trigger_sim.wire import peek_header

POLL_MS = 50


def run_builder(config: FarmConfig, collector_endpoint: str, ready: multiprocessing.Queue,
                stop: multiprocessing.synchronize.Event) -> None:
    die_with_parent()
    ctx = zmq.Context()
    fragments_in = make_socket(ctx, zmq.PULL, hwm=config.builder.input_hwm)
    work = make_socket(ctx, zmq.ROUTER, hwm=10_000)
    work.setsockopt(zmq.ROUTER_MANDATORY, 1)
    out = make_socket(ctx, zmq.PUSH, hwm=10_000)
    out.connect(collector_endpoint)
    ready.put(("builder", {"fragments": bind_loopback(fragments_in), "work": bind_loopback(work)}))

    bc = config.builder
    state = EventBuilderState(source_ids(config), int(bc.build_timeout_ms * clock.NS_PER_MS), bc.max_building)
    dispatcher = Dispatcher(bc.max_waiting)
    bad_fragments: Counter = Counter()
    bytes_in = 0
    busy_ns = 0
    busy_since: int | None = None
    poller_all = zmq.Poller()
    poller_all.register(fragments_in, zmq.POLLIN)
    poller_all.register(work, zmq.POLLIN)
    poller_work = zmq.Poller()
    poller_work.register(work, zmq.POLLIN)

    def missing(event: PendingEvent, reason: str) -> None:
        counts, frames = messages.flatten(list(event.fragments.values()))
        meta = {"l1_id": event.l1_id, "l1_time_ns": event.l1_time_ns, "reason": reason,
                "missing_sources": event.missing(state.sources), "frames_per_fragment": counts,
                "done_ns": clock.now_ns()}
        out.send_multipart([messages.MISSING, messages.pack_meta(meta), *frames], copy=False)

    def active_ns() -> int:
        """Build timeouts run on a clock that stops while we are busy: fragments waiting in
        the sockets because we stopped reading them are not missing data."""
        paused = busy_ns + (clock.now_ns() - busy_since if busy_since is not None else 0)
        return clock.now_ns() - paused

    while not stop.is_set():
        full = dispatcher.is_full
        now = clock.now_ns()
        if full and busy_since is None:
            busy_since = now
        elif not full and busy_since is not None:
            busy_ns += now - busy_since
            busy_since = None
        events = dict((poller_work if full else poller_all).poll(POLL_MS))
        if fragments_in in events:
            for _ in range(64):  # a batch, then serve the workers again
                try:
                    frames = fragments_in.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                bytes_in += sum(len(f.buffer) for f in frames)
                try:
                    header = peek_header(frames[0])
                except WireFormatError as err:
                    bad_fragments[type(err).__name__] += 1
                    continue
                complete, evicted = state.add(header.l1_id, header.source_id, frames, active_ns(), header.l1_time_ns)
                if evicted is not None:
                    missing(evicted, "builder full: evicted before complete")
                if complete is not None:
                    complete.done_ns = clock.now_ns()  # real time (the state ran on the active clock)
                    dispatcher.add_event(complete.l1_id, complete)
                    if dispatcher.is_full:
                        break
        if work in events:
            while True:
                try:
                    identity, kind, meta = work.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                except ValueError:
                    continue
                if kind == messages.READY:
                    dispatcher.add_credit(identity, messages.unpack_meta(meta).get("done"))
        for worker, l1_id, event in dispatcher.assignments():
            counts, frames = messages.flatten([event.fragments[s] for s in state.sources])
            meta = {"l1_id": l1_id, "l1_time_ns": event.l1_time_ns, "complete_ns": event.done_ns, "dispatched_ns": clock.now_ns(), "frames_per_fragment": counts}
            work.send_multipart([worker, messages.EVENT, messages.pack_meta(meta), *frames], copy=False)
        for event in state.expire(active_ns()):
            missing(event, f"incomplete after the {bc.build_timeout_ms:g} ms build timeout")

    # Stop: nothing may vanish. Incomplete events go to MissingData; complete events that
    # never reached a worker are reported so the collector can put them in a debug stream.
    for event in state.drain(active_ns()):
        missing(event, "farm stopped before the event was complete")
    for l1_id, event in dispatcher.drain_waiting():
        counts, frames = messages.flatten([event.fragments[s] for s in state.sources])
        out.send_multipart([messages.MISSING, messages.pack_meta({
            "l1_id": l1_id, "l1_time_ns": event.l1_time_ns, "reason": "farm stopped before a worker took the event",
            "missing_sources": [], "frames_per_fragment": counts, "stream": "HltError",
            "done_ns": clock.now_ns()})] + frames, copy=False)
    if busy_since is not None:
        busy_ns += clock.now_ns() - busy_since
    c = state.counters
    out.send_multipart([messages.STATS, messages.pack_meta({"role": "builder", "counters": {
        "fragments_in": c.fragments_in, "bytes_in": bytes_in, "events_complete": c.events_complete,
        "events_incomplete": c.events_incomplete, "evicted_for_space": c.evicted_for_space,
        "duplicate_fragments": c.duplicate_fragments, "unknown_source_fragments": c.unknown_source_fragments,
        "late_fragments": c.late_fragments, "bad_fragments": dict(bad_fragments), "dispatched": dispatcher.dispatched,
        "peak_waiting": dispatcher.peak_waiting, "busy_s": busy_ns / clock.NS_PER_S}})])
    for sock in (fragments_in, work):
        sock.close(linger=0)
    out.close(linger=2000)
    ctx.term()
