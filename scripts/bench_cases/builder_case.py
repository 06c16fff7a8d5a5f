"""Case a: event-builder throughput against a bare ZeroMQ PUSH/PULL pipe moving the same frames.

The fragments of K events are generated once, by a long-lived sender process (the readout's
simulation and wire encoding), and kept as encoded frames. Each repetition sends all of them
as fast as the sockets take them, one PUSH socket per readout source (as the readout does,
same high-water marks), `copy=False`:

* pipe: to a bare PULL in a sink process that only counts fragments and bytes, receiving
  them as the builder does (`farm.fragment_drain.drain`, compiled where built, a batch per
  call, each part copied into bytes) but checking nothing;
* builder: to the real event-builder process (`farm.builder.run_builder`, the configuration's
  defaults), which checks every fragment (header, sizes, CRC over every byte), builds the
  events and dispatches each complete event to a fake worker (a DEALER that keeps credits
  outstanding and rejects each event at once, its RESULT releasing the event and returning the
  credit; the events of one EVENT message are answered in one RESULT message, as a worker
  answers the events it has ready together). The event's bytes reach the fake worker as they reach a real one: the builder
  copies them into its shared-memory ring and sends a descriptor, and the fake worker copies
  every byte out of the ring (`farm.event_handoff.RingReader`, as a real worker does, and as a
  socket receive copies the bytes out of the kernel); an event that finds the ring full
  travels inside the message (counted, shown in the notes). A PULL in this process stands in
  for the collector (its CPU is not counted) and receives the builder's final counters.

So the pipe's bytes are moved once (sender -> sink, through both ZeroMQ I/O threads) and the
builder's once through ZeroMQ plus once through memory (builder -> ring -> worker).
Throughput = fragments (bytes) / (first send -> last fragment counted by the sink, or last
event received by the fake worker). The two run alternately, pair after pair, so a noisy
neighbour slows both; the ratio is taken per pair.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
import multiprocessing.connection
import os
import queue
import signal
import statistics
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import zmq

from bench_cases.common import CaseResult, CpuMeter, Target, fmt, log, stats
from farm import fragment_drain, messages
from farm.builder import run_builder
from farm.event_handoff import RingReader
from farm.lifecycle import stacks_on_request
from farm.sockets import bind, connect, make_socket, recv_parts, send_parts
from trigger_sim import clock
from trigger_sim.config import FarmConfig
from trigger_sim.event import Fragment
from trigger_sim.simulation import event_fragments
from trigger_sim.wire import check_fragment, crc32, decode_fragment, encode_fragment

TARGET_RATIO = 0.7
FAKE_WORKER_CREDITS = 64  # READY credits the fake worker keeps outstanding
START_TIMEOUT_S = 60.0
RUN_TIMEOUT_S = 120.0
SETTLE_S = 0.2  # after connecting, before the clock starts: connections are up


@dataclass(frozen=True)
class Settings:
    n_events: int  # distinct events generated
    repetitions: int
    rounds: int = 1  # each timed run sends the n_events this many times, under new Level-1 ids

    @property
    def events_per_run(self) -> int:
        return self.n_events * self.rounds


# -- processes (spawned; module-level so they can be pickled by name) -------------------------
def encoded_events(config: FarmConfig, n_events: int, rounds: int = 1) -> list[list[tuple[int, list]]]:
    """Per event, (source id, encoded frames) of each fragment, as the readout sends them.

    `rounds` > 1 repeats the `n_events` simulated events under new Level-1 ids (l1_id +
    round * n_events): each repeat has its own header (ids, CRC) and shares the arrays, so a
    timed run lasts long enough to be steady without holding more events in memory."""
    fragments = [event_fragments(config, l1_id, l1_id * 1_000_000) for l1_id in range(n_events)]
    out = []
    for r in range(rounds):
        for frags in fragments:
            out.append([(f.header.source_id, encode_fragment(_renumbered(f, r * n_events))) for f in frags])
    return out


def _renumbered(fragment: Fragment, offset: int) -> Fragment:
    if offset == 0:
        return fragment
    h = fragment.header
    header = dataclasses.replace(h, l1_id=h.l1_id + offset, l1_time_ns=h.l1_time_ns + offset * 1_000_000)
    return dataclasses.replace(fragment, header=header)


def _sender(config: FarmConfig, n_events: int, rounds: int, conn: multiprocessing.connection.Connection) -> None:
    """Generate once, then on each ("send", endpoint): push every fragment, report the times."""
    events = encoded_events(config, n_events, rounds)
    sources = sorted({sid for event in events for sid, _ in event})
    n_fragments = sum(len(e) for e in events)
    n_bytes = sum(len(memoryview(fr).cast("B")) for e in events for _, frames in e for fr in frames)
    conn.send(("ready", n_fragments, n_bytes))
    while True:
        command = conn.recv()
        if command[0] != "send":
            break
        ctx = zmq.Context()
        socks = {}
        for sid in sources:
            sock = make_socket(ctx, zmq.PUSH, hwm=config.builder.input_hwm)
            connect(sock, command[1])
            socks[sid] = sock
        time.sleep(SETTLE_S)
        cpu0 = time.process_time()
        t0 = clock.now_ns()
        for event in events:
            for sid, frames in event:
                socks[sid].send_multipart(frames, copy=False)
        t_sent = clock.now_ns()
        cpu = time.process_time() - cpu0
        for sock in socks.values():
            sock.close(linger=30_000)  # term() below waits until everything is delivered
        ctx.term()
        conn.send(("sent", t0, t_sent, cpu))


def _pipe_sink(hwm: int, expected: int, out: multiprocessing.Queue) -> None:
    """The baseline: a PULL that counts fragments and bytes, nothing else."""
    ctx = zmq.Context()
    sock = make_socket(ctx, zmq.PULL, hwm=hwm)
    out.put(("endpoint", bind(sock)))
    n = n_bytes = 0
    t_first = None
    cpu0 = main0 = 0.0
    drain = fragment_drain.drain
    while n < expected:
        batch = drain(sock, fragment_drain.BATCH, False)  # received as the builder receives them, not checked
        if not batch:
            sock.poll()
            continue
        if t_first is None:  # CPU from here: the wait for the first fragment is not the pipe's cost
            t_first, cpu0, main0 = clock.now_ns(), time.process_time(), time.thread_time()
        n += len(batch)
        for item in batch:
            n_bytes += item[2]
    out.put(("done", n, n_bytes, t_first, clock.now_ns(), time.process_time() - cpu0, time.thread_time() - main0))
    sock.close()
    ctx.term()


def _fake_worker(endpoint: str, n_events: int, out: multiprocessing.Queue) -> None:
    """A worker that keeps credits outstanding and rejects every event at once (its result,
    with no fragments to forward, releases the event and returns the credit). It gets the
    event's bytes as a real worker does: copied out of the builder's shared-memory ring
    (`RingReader`, every byte read once, as a socket receive copies them out of the kernel),
    or inside the message when the ring is off or full."""
    stacks_on_request()
    reader = RingReader()
    ctx = zmq.Context()
    sock = make_socket(ctx, zmq.DEALER, hwm=10_000)
    sock.setsockopt(zmq.IDENTITY, b"bench-worker")
    connect(sock, endpoint)
    sock.send_multipart([messages.READY, messages.pack_meta({"credits": FAKE_WORKER_CREDITS})])
    out.put(("connected",))
    n = 0
    t_first = None
    while n < n_events:
        kind, *parts = recv_parts(sock, copy=False)  # as the worker receives events (one or more a message)
        if kind.bytes != messages.EVENT:
            continue
        decisions = []
        for event in messages.read_event_message(parts):
            frames = reader.read(event.meta["ring"]) if "ring" in event.meta else event.inline
            if not frames:
                raise RuntimeError(f"event {event.l1_id} came without its bytes")
            now = clock.now_ns()
            decisions.append(messages.pack_meta({
                "l1_id": event.l1_id, "outcome": "rejected", "streams": [], "chains": [], "steps_ms": {},
                "received_ns": now, "decided_ns": now, "worker": "bench-worker"}))
        if t_first is None:
            t_first = clock.now_ns()
        n += len(decisions)
        send_parts(sock, [messages.RESULT, *decisions])  # the decisions of one message, answered together
    out.put(("done", n, t_first, clock.now_ns()))
    reader.close()
    sock.close(linger=1000)
    ctx.term()


def _instrumented_builder(config: FarmConfig, collector_endpoint: str, ready, stop, out_path: str) -> None:
    """`run_builder` with the main thread's CPU time summed per step (for the breakdown; never timed).

    Wraps, in this process only, the builder's steps with `time.thread_time_ns` (about a
    microsecond per wrapped call, far less distortion than a tracing profiler). The steps
    only run while fragments flow; the main thread's and the process's CPU over the same
    window are read from /proc by the caller, and what the process used beyond its main
    thread is ZeroMQ's I/O thread moving the bytes.
    """
    import farm.builder as fb
    from trigger_sim.builder_state import EventBuilderState

    spent: dict[str, int] = {}

    def timed(name: str, fn):
        spent[name] = 0

        def wrapper(*args, **kwargs):
            t0 = time.thread_time_ns()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[name] += time.thread_time_ns() - t0
        return wrapper

    fb.fragment_drain.drain = timed("drain", fb.fragment_drain.drain)
    EventBuilderState.add = timed("build", EventBuilderState.add)
    fb.Builder._read_fragments = timed("read_fragments", fb.Builder._read_fragments)
    fb.Builder._send_to_worker = timed("dispatch", fb.Builder._send_to_worker)
    fb.Builder._read_work = timed("credits", fb.Builder._read_work)
    try:
        run_builder(config, collector_endpoint, ready, stop)
    finally:
        with open(out_path, "w") as f:
            json.dump({k: v / 1e9 for k, v in spent.items()}, f)


# -- one repetition of each side --------------------------------------------------------------
def _get(q: multiprocessing.Queue, kind: str, timeout_s: float) -> tuple:
    item = q.get(timeout=timeout_s)
    if item[0] != kind:
        raise RuntimeError(f"expected {kind!r}, got {item!r}")
    return item


def _get_while_alive(q: multiprocessing.Queue, kind: str, timeout_s: float,
                     processes: tuple[multiprocessing.Process, ...]) -> tuple:
    """`_get`, but a process that died meanwhile is named at once (with its exit code)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return _get(q, kind, 1.0)
        except queue.Empty:
            dead = [f"{p.name} (exit code {p.exitcode})" for p in processes if not p.is_alive()]
            if dead:
                raise RuntimeError(f"waiting for {kind!r}: {', '.join(dead)} ended") from None
            if time.monotonic() > deadline:
                for p in processes:  # each prints its threads' stacks to stderr (farm.lifecycle.stacks_on_request)
                    os.kill(p.pid, signal.SIGUSR1)
                time.sleep(1.0)
                raise RuntimeError(f"no {kind!r} within {timeout_s:g} s; every process still running (their "
                                   f"stacks are above)") from None


def _send(sender: multiprocessing.connection.Connection, endpoint: str) -> tuple[int, int, float]:
    sender.send(("send", endpoint))
    if not sender.poll(RUN_TIMEOUT_S):
        raise RuntimeError("sender did not finish")
    _, t0, t_sent, cpu = sender.recv()
    return t0, t_sent, cpu


def run_pipe(mp, config: FarmConfig, sender, n_fragments: int) -> dict[str, float]:
    q = mp.Queue()
    sink = mp.Process(target=_pipe_sink, args=(config.builder.input_hwm, n_fragments, q), daemon=True)
    sink.start()
    try:
        (_, endpoint) = _get(q, "endpoint", START_TIMEOUT_S)
        t0, _, sender_cpu = _send(sender, endpoint)
        _, n, n_bytes, _, t_last, sink_cpu, sink_main_cpu = _get(q, "done", RUN_TIMEOUT_S)
    finally:
        sink.join(10)
        if sink.is_alive():
            sink.kill()
    seconds = (t_last - t0) / clock.NS_PER_S
    return {"seconds": seconds, "fragments": n, "bytes": n_bytes, "receiver_cpu_s": sink_cpu,
            "receiver_main_thread_cpu_s": sink_main_cpu, "sender_cpu_s": sender_cpu}


def run_builder_once(mp, config: FarmConfig, sender, n_events: int, ctx: zmq.Context,
                     instrument_path: str | None = None) -> dict[str, Any]:
    collector = make_socket(ctx, zmq.PULL, hwm=100_000)
    collector_endpoint = bind(collector)
    ready, stop, q = mp.Queue(), mp.Event(), mp.Queue()
    target, args = run_builder, (config, collector_endpoint, ready, stop)
    if instrument_path:
        target, args = _instrumented_builder, (*args, instrument_path)
    builder = mp.Process(target=target, name="builder", args=args, daemon=True)
    builder.start()
    worker = None
    try:
        _, endpoints = ready.get(timeout=START_TIMEOUT_S)
        worker = mp.Process(target=_fake_worker, name="fake worker", args=(endpoints["work"], n_events, q), daemon=True)
        worker.start()
        _get(q, "connected", START_TIMEOUT_S)
        time.sleep(SETTLE_S)  # the credits have reached the builder
        meter = CpuMeter({"builder": [builder.pid], "builder_main_thread": [(builder.pid, builder.pid)],
                          "fake_worker": [worker.pid]}).start()
        t0, _, sender_cpu = _send(sender, endpoints["fragments"])
        _, n, _, t_last = _get_while_alive(q, "done", RUN_TIMEOUT_S, (builder, worker))
        meter.sample()
        cpu = meter.used_s()
        stop.set()
        builder.join(20)
        counters = {}
        if collector.poll(5000):
            while True:
                try:
                    frames = collector.recv_multipart(zmq.NOBLOCK)
                except zmq.Again:
                    break
                if frames[0] == messages.STATS:
                    counters = messages.unpack_meta(frames[1])["counters"]
    finally:
        stop.set()
        for p in (builder, worker):
            if p is not None:
                p.join(10)
                if p.is_alive():
                    p.kill()
        collector.close()
    seconds = (t_last - t0) / clock.NS_PER_S
    return {"seconds": seconds, "events": n, "fragments": counters.get("fragments_in", 0), "bytes": counters.get("bytes_in", 0),
            "through_ring": counters.get("events_through_ring", 0), "inline": counters.get("events_inline", 0),
            "ring_error": counters.get("event_ring_error", ""),
            "dispatched": counters.get("dispatched", 0), "rejected": counters.get("rejected_fragments", {}),
            "event_messages": counters.get("event_messages", 0), "result_messages": counters.get("result_messages", 0),
            "builder_cpu_s": cpu["builder"], "builder_main_thread_cpu_s": cpu["builder_main_thread"],
            "fake_worker_cpu_s": cpu["fake_worker"], "sender_cpu_s": sender_cpu}


# -- what the builder spends per fragment, in this process ------------------------------------
def decode_cost_us(config: FarmConfig, n_events: int = 20, repeat: int = 20) -> dict[str, float]:
    """Microseconds per fragment for the builder's check (check_fragment), the full decode a
    worker does (decode_fragment, arrays built) and the CRC alone (zlib-ng, as the wire uses)."""
    frames = [fr for event in encoded_events(config, n_events) for _, fr in event]
    buffers = [[bytes(memoryview(f).cast("B")) for f in fr] for fr in frames]

    def per_fragment(fn) -> float:
        best = float("inf")
        for _ in range(repeat):
            t0 = time.perf_counter()
            for fr in buffers:
                fn(fr)
            best = min(best, time.perf_counter() - t0)
        return 1e6 * best / len(buffers)

    def crc(fr):
        c = 0
        for f in fr:
            c = crc32(f, c)
        return c

    return {"check_fragment_us": per_fragment(check_fragment), "decode_fragment_us": per_fragment(decode_fragment),
            "crc32_us": per_fragment(crc),
            "frames_per_fragment": sum(len(fr) for fr in buffers) / len(buffers)}


def drain_kind() -> str:
    return "compiled" if fragment_drain.compiled else f"plain-Python ({fragment_drain.why_not_compiled})"


def cpu_breakdown(spent: dict[str, float], run: dict[str, Any], n_fragments: int) -> dict[str, float]:
    """Builder CPU µs per fragment by step, from an instrumented run (`run`: its CPU over the window)."""
    drain = f"receive and check fragments ({drain_kind()} fragment_drain: copy, header, sizes, CRC)"
    steps = {
        drain: spent["drain"],
        "bookkeeping loop over each batch": spent["read_fragments"] - spent["drain"] - spent["build"],
        "build (EventBuilderState.add)": spent["build"],
        "dispatch events to the worker (copy into the ring, send the descriptor)": spent["dispatch"],
        "read results and credits, forward each result to the collector": spent["credits"],
    }
    steps["main loop: poll, clocks, timeouts"] = max(run["builder_main_thread_cpu_s"] - sum(steps.values()), 0.0)
    steps["ZeroMQ I/O thread (bytes in and out)"] = run["builder_cpu_s"] - run["builder_main_thread_cpu_s"]
    return {k: 1e6 * v / n_fragments for k, v in steps.items()}


def builder_limits(pipe_runs: list[dict[str, Any]], builder_runs: list[dict[str, Any]], n_fragments: int,
                   breakdown: dict[str, float], cost: dict[str, float], cores: int) -> str:
    """What bounds the builder's throughput, from the CPU every process used per fragment in this run."""
    def us(runs: list[dict[str, Any]], key: str) -> float:
        return statistics.median(1e6 * r[key] / n_fragments for r in runs)

    sender_p, receiver = us(pipe_runs, "sender_cpu_s"), us(pipe_runs, "receiver_cpu_s")
    pipe_io = receiver - us(pipe_runs, "receiver_main_thread_cpu_s")
    sender_b, builder, main = us(builder_runs, "sender_cpu_s"), us(builder_runs, "builder_cpu_s"), \
        us(builder_runs, "builder_main_thread_cpu_s")
    worker = us(builder_runs, "fake_worker_cpu_s")
    io = builder - main
    pipe_total, builder_total = sender_p + receiver, sender_b + builder + worker
    pipe_rate = statistics.median(n_fragments / r["seconds"] for r in pipe_runs)
    builder_rate = statistics.median(n_fragments / r["seconds"] for r in builder_runs)
    needed = pipe_total / TARGET_RATIO
    floor_total = sender_b + io + worker
    pipe_main = receiver - pipe_io
    per_fragment_loop = sum(v for k, v in breakdown.items() if k.startswith(("receive", "bookkeeping", "build")))
    fragment_floor = sender_b + per_fragment_loop + pipe_io  # nothing per event: no worker, no event messages
    per_event = builder_total - fragment_floor  # dispatch, results, the I/O thread beyond the pipe's, the worker
    events_per_fragment = max(builder_runs[0]["events"], 1) / n_fragments
    per_message = statistics.median(r["events"] / max(r["event_messages"], 1) for r in builder_runs)
    per_result = statistics.median(r["events"] / max(r["result_messages"], 1) for r in builder_runs)
    steps = ", ".join(f"{k} {v:.1f}" for k, v in breakdown.items() if not k.startswith("ZeroMQ"))
    pipe_busy, builder_busy = pipe_total * pipe_rate / 1e6, builder_total * builder_rate / 1e6
    lead = (f"CPU. Throughput is at most {cores} cores / CPU per fragment summed over every process; the pipe keeps "
            f"{pipe_busy:.2f} of the {cores} cores busy, the builder set-up {builder_busy:.2f} (the rest of the time "
            f"their processes wait for one another).")
    return (
        f"{lead} Bare pipe: sender {sender_p:.0f} + receiver {receiver:.0f} = {pipe_total:.0f} µs per fragment, "
        f"a cap of {cores * 1e6 / pipe_total:,.0f} fragments/s (measured {pipe_rate:,.0f}). Builder: sender "
        f"{sender_b:.0f} + builder {builder:.0f} (event loop {main:.0f}, ZeroMQ I/O thread {io:.0f}) + fake worker "
        f"{worker:.0f} = {builder_total:.0f} µs, a cap of {cores * 1e6 / builder_total:,.0f} fragments/s (measured "
        f"{builder_rate:,.0f}). A ratio of {TARGET_RATIO} needs at most {needed:.0f} µs in all, {builder_total - needed:.0f} "
        f"µs less than now. The event's bytes cross ZeroMQ once (readout -> builder) and reach the worker through the "
        f"node's shared-memory ring; the events a pass of the builder's loop pairs with a worker's credits travel in "
        f"one EVENT message, the worker answers them in one RESULT message, and the decisions the builder reads in one "
        f"pass go on to the collector in one message (here {per_message:.1f} events per EVENT message, {per_result:.1f} "
        f"decisions per RESULT message to the collector, on average). What is left beyond the pipe: (1) the builder's "
        f"ZeroMQ I/O thread, {io:.0f} µs against the pipe receiver's {pipe_io:.0f} ({receiver:.0f} with its receive loop) "
        f"(it also carries the messages to and from the worker and to the collector); (2) the fake worker, {worker:.0f} µs "
        f"per fragment, {worker * n_fragments / max(builder_runs[0]['events'], 1):.0f} µs per event (receive the "
        f"descriptors, copy each event out of the ring, answer); even with an event loop costing nothing, sender, I/O "
        f"thread and worker ({floor_total:.0f} µs) would cap the ratio at {pipe_total / floor_total:.2f}; (3) the event "
        f"loop, one Python thread, {main:.0f} µs per fragment; timed by step in an extra run (µs): {steps}; "
        f"where the compiled fragment drain is not built, plain Python's check_fragment alone costs "
        f"{cost['check_fragment_us']:.1f} µs on warm data (of which CRC {cost['crc32_us']:.1f}). By what it "
        f"scales with: per fragment, the event loop receives, checks and builds in {per_fragment_loop:.0f} µs (the pipe "
        f"receiver's loop: {pipe_main:.0f}) and the I/O thread carries the fragment, taken to cost what the pipe's does "
        f"({pipe_io:.0f}); with everything done once per event free, sender and that ({fragment_floor:.0f} µs) would cap "
        f"the ratio at {pipe_total / fragment_floor:.2f}. Everything per event (dispatch, results, the builder's I/O thread "
        f"beyond the pipe's, the fake worker) is {per_event:.0f} µs per fragment, {per_event / events_per_fragment:.0f} µs "
        f"per event, now mostly work each event needs whatever the batching: its copy into the ring and out of it, its "
        f"metadata packed and read, its decision checked. The per-fragment part is the rest of the gap: "
        f"{per_fragment_loop:.0f} µs of event loop against the pipe receiver's {pipe_main:.0f}.")


# -- the case ---------------------------------------------------------------------------------
@dataclass
class Measured:
    n_fragments: int
    n_bytes: int
    pipe_runs: list[dict[str, Any]]
    builder_runs: list[dict[str, Any]]
    breakdown: dict[str, float]  # builder CPU µs per fragment by step (instrumented run)
    instrumented_seconds: float


def measure(config: FarmConfig, settings: Settings) -> Measured:
    """Warm-up pair, `repetitions` alternating pairs, then one instrumented builder run."""
    mp = multiprocessing.get_context("spawn")
    parent, child = mp.Pipe()
    sender = mp.Process(target=_sender, name="sender", args=(config, settings.n_events, settings.rounds, child), daemon=True)
    sender.start()
    ctx = zmq.Context()
    pipe_runs, builder_runs = [], []
    try:
        log(f"  builder: generating {settings.n_events} events in the sender process"
            f"{f', sent {settings.rounds} times under new ids per run' if settings.rounds > 1 else ''} ...")
        if not parent.poll(600):
            raise RuntimeError("sender did not generate its events in time")
        _, n_fragments, n_bytes = parent.recv()
        for rep in range(settings.repetitions + 1):  # the first pair is the warm-up
            p = run_pipe(mp, config, parent, n_fragments)
            b = run_builder_once(mp, config, parent, settings.events_per_run, ctx)
            if b["fragments"] != n_fragments or b["dispatched"] != settings.events_per_run or b["rejected"]:
                raise RuntimeError(f"builder did not take every fragment: {b}")
            if rep == 0:
                continue
            pipe_runs.append(p)
            builder_runs.append(b)
            log(f"  builder rep {rep}: pipe {n_fragments / p['seconds']:,.0f} fragments/s, "
                f"builder {n_fragments / b['seconds']:,.0f} fragments/s")
        log("  builder: one more run with its steps timed, for the breakdown ...")
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "builder-steps.json")
            instrumented = run_builder_once(mp, config, parent, settings.events_per_run, ctx, path)
            with open(path) as f:
                breakdown = cpu_breakdown(json.load(f), instrumented, n_fragments)
        parent.send(("quit",))
    finally:
        sender.join(10)
        if sender.is_alive():
            sender.kill()
        ctx.term()
    return Measured(n_fragments, n_bytes, pipe_runs, builder_runs, breakdown, instrumented["seconds"])


def run(config: FarmConfig, settings: Settings) -> CaseResult:
    got = measure(config, settings)
    n, n_bytes, pipe_runs, builder_runs = got.n_fragments, got.n_bytes, got.pipe_runs, got.builder_runs
    cores = os.cpu_count() or 1

    def per_fragment_us(runs: list[dict[str, Any]], key: str) -> dict[str, Any]:
        return stats([1e6 * r[key] / n for r in runs], "µs")

    res = CaseResult("builder", "a) Event builder vs a bare ZeroMQ pipe (same frames, same sockets)")
    m = res.metrics
    for side, runs in (("pipe", pipe_runs), ("builder", builder_runs)):
        m[f"{side}_fragments_per_s"] = stats([n / r["seconds"] for r in runs], "fragments/s")
        m[f"{side}_mb_per_s"] = stats([n_bytes / r["seconds"] / 1e6 for r in runs], "MB/s")
        m[f"{side}_events_per_s"] = stats([settings.events_per_run / r["seconds"] for r in runs], "events/s")
    m["ratio"] = stats([p["seconds"] / b["seconds"] for p, b in zip(pipe_runs, builder_runs)], "builder/pipe")
    m["builder_cpu_us_per_fragment"] = per_fragment_us(builder_runs, "builder_cpu_s")
    m["builder_main_thread_cpu_us_per_fragment"] = per_fragment_us(builder_runs, "builder_main_thread_cpu_s")
    m["builder_main_thread_utilisation"] = stats(
        [r["builder_main_thread_cpu_s"] / r["seconds"] for r in builder_runs], "of a core")
    m["fake_worker_cpu_us_per_fragment"] = per_fragment_us(builder_runs, "fake_worker_cpu_s")
    m["pipe_receiver_cpu_us_per_fragment"] = per_fragment_us(pipe_runs, "receiver_cpu_s")
    m["pipe_receiver_main_thread_cpu_us_per_fragment"] = per_fragment_us(pipe_runs, "receiver_main_thread_cpu_s")
    m["sender_cpu_us_per_fragment"] = per_fragment_us(pipe_runs + builder_runs, "sender_cpu_s")
    cost = decode_cost_us(config)
    m["check_fragment_us"] = stats([cost["check_fragment_us"]], "µs")
    m["decode_fragment_us"] = stats([cost["decode_fragment_us"]], "µs")
    m["crc32_us"] = stats([cost["crc32_us"]], "µs")
    res.targets.append(Target("builder throughput / bare pipe", m["ratio"]["median"], ">=", TARGET_RATIO))
    res.diagnostics = {"events": settings.events_per_run, "fragments": n, "bytes": n_bytes, "bytes_per_fragment": n_bytes / n,
                       "frames_per_fragment": cost["frames_per_fragment"], "pile_up": config.physics.pileup_mean,
                       "cores": cores, "fragment_drain": drain_kind(), "builder_cpu_us_per_fragment_by_step": got.breakdown,
                       "instrumented_run_fragments_per_s": n / got.instrumented_seconds,
                       "events_through_ring": sum(r["through_ring"] for r in builder_runs),
                       "events_per_event_message": sum(r["events"] for r in builder_runs) / max(sum(r["event_messages"] for r in builder_runs), 1),
                       "decisions_per_result_message": sum(r["events"] for r in builder_runs) / max(sum(r["result_messages"] for r in builder_runs), 1),
                       "events_inline": sum(r["inline"] for r in builder_runs),
                       "event_ring_error": next((r["ring_error"] for r in builder_runs if r["ring_error"]), "")}

    res.tables.append((["", "fragments/s", "MB/s", "events/s"], [
        ["bare PUSH/PULL pipe", fmt(m["pipe_fragments_per_s"]), fmt(m["pipe_mb_per_s"]), fmt(m["pipe_events_per_s"])],
        ["event builder", fmt(m["builder_fragments_per_s"]), fmt(m["builder_mb_per_s"]), fmt(m["builder_events_per_s"])],
        ["ratio builder / pipe (per pair)", fmt(m["ratio"]), "", ""],
    ]))
    res.tables.append((["CPU per fragment, by process (timed runs)", "µs"], [
        ["sender (send_multipart, copy=False; both set-ups)", fmt(m["sender_cpu_us_per_fragment"])],
        ["bare pipe receiver (receive as the builder does, count; no check)", fmt(m["pipe_receiver_cpu_us_per_fragment"])],
        ["  its main thread (the rest is its ZeroMQ I/O thread)", fmt(m["pipe_receiver_main_thread_cpu_us_per_fragment"])],
        ["builder process", fmt(m["builder_cpu_us_per_fragment"])],
        ["  its main thread (the event loop)", fmt(m["builder_main_thread_cpu_us_per_fragment"])],
        ["fake worker (receives the descriptors, copies each event out of the ring, answers each message's events in one)",
         fmt(m["fake_worker_cpu_us_per_fragment"])],
        ["plain Python's check alone (check_fragment: header, sizes, CRC; the builder's where the compiled drain is "
         "not built), warm data, one process", fmt(m["check_fragment_us"])],
        ["  crc32 (zlib-ng) over the frames alone", fmt(m["crc32_us"])],
        ["a worker's full decode_fragment (arrays built), for comparison", fmt(m["decode_fragment_us"])],
    ]))
    total = sum(got.breakdown.values())
    res.tables.append((["builder CPU per fragment, by step (one extra run, steps timed)", "µs", "share"],
                       [[k, f"{v:.1f}", f"{100 * v / total:.0f} %"] for k, v in got.breakdown.items()]
                       + [["total (builder process, first fragment to last event)", f"{total:.1f}", "100 %"]]))
    if not res.targets[-1].met:
        res.limits.append(builder_limits(pipe_runs, builder_runs, n, got.breakdown, cost, cores))
    busy = m["builder_main_thread_utilisation"]
    res.notes.append(
        f"{settings.events_per_run} events per run at pile-up {config.physics.pileup_mean:g}: {n} fragments of "
        f"{n_bytes / n / 1e3:.1f} kB on average ({n_bytes / 1e6:.0f} MB), generated once"
        + (f" ({settings.n_events} simulated events sent {settings.rounds} times, each time under new Level-1 ids and "
           f"CRCs, so that a run lasts long enough to be steady)" if settings.rounds > 1 else "")
        + f"; the builder and the pipe's sink received with the {drain_kind()} fragment drain; one PUSH socket per "
        f"source (high-water mark {config.builder.input_hwm}, as the readout), {settings.repetitions} pairs after one "
        f"warm-up pair. Over the {settings.repetitions} timed builder runs, events handed to the fake worker through the "
        f"builder's shared-memory ring ({config.builder.event_ring_mb:g} MB): {res.diagnostics['events_through_ring']}, "
        f"inside the message (ring full"
        f"{' or off: ' + res.diagnostics['event_ring_error'] if res.diagnostics['event_ring_error'] else ''}): "
        f"{res.diagnostics['events_inline']}; events per EVENT message {res.diagnostics['events_per_event_message']:.1f}, "
        f"decisions per RESULT message to the collector {res.diagnostics['decisions_per_result_message']:.1f} (batches "
        f"are whatever one pass of the loop has ready). The builder's main thread (its event loop) is on a CPU {fmt(busy)} of the time while it runs"
        + (": it is CPU-bound." if busy["median"] > 0.85 else
           "; the rest of the time it waits, for input or for a core (the sender, the fake worker and the ZeroMQ "
           "I/O threads share the 2 cores with it)."))
    return res
