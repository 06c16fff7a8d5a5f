"""Case f: event slots against a server that answers after a fixed time (a remote GPU).

One worker. The jet tagger is served by a sleep model (`tests/data/slow_model_repository`'s
model with `delay_ms`, eight instances and no batching, so every request is answered about
`delay_ms` after it arrives whatever else is in flight, with the real forward pass: a few
microseconds of this host's CPU); the edge classifier runs in the worker, so the worker's CPU
per event is the real one (decoding, kernels, the GNN, the menu). The farm runs at slots 1, 2,
4 and 8 in turn (one repetition = the four, side by side), with Level-1 input 1.25 times the
ideal rate of that slot count (from a short calibration run at one slot), so the worker is never
idle for want of events while the farm is not flooded (input tens of times above what the worker
decides leaves events stuck incomplete in the builder, which would count as decided elsewhere).

For each slot count: events decided per second against the ideal
`min(slots / T1, 1 / C)`, where T1 is an event's time in the worker with one slot (server time
plus client time: the mean `worker_total` of the same repetition's one-slot run) and C the
worker's CPU per event at that slot count (its process CPU time, every thread, over the events
it decided). The ratio is taken per repetition; the report gives the best slot count's median. The same events are decided at every slot
count: the decision digests must agree. The target applies at the best slot count (the most
events per second); one slot meets its own ideal trivially (T1 is measured from it).
"""

from __future__ import annotations

import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_cases.common import REPO_ROOT, CaseResult, Target, fmt, log, stats
from farm.one_host import run_farm
from farm.triton_server import TritonServer
from trigger_sim.config import FarmConfig, with_overrides
from trigger_sim.hlt.sequence import STEPS

SLOTS = (1, 2, 4, 8)
TARGET_RATIO = 0.85
SLEEP_MODEL = REPO_ROOT / "tests" / "data" / "slow_model_repository" / "jet_tagger" / "1" / "model.py"
INSTANCES = 8  # requests in flight at once, each answered after the delay: at least the most slots
INPUT_FACTOR = 1.25  # Level-1 input against the ideal rate of the slot count
CALIBRATION_EVENTS = 30
CALIBRATION_RATE_HZ = 400.0  # a burst the builder's queue holds whole
# Input above what the worker decides leaves fragments waiting in the sockets: no event may be
# sent to MissingData for it (every event must reach the worker)
BUILD_TIMEOUT_MS = 60_000.0
START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Settings:
    repetitions: int = 3
    events: int = 300  # per run
    delay_ms: float = 40.0  # the server's time per request
    warm_up: bool = True  # one uncounted run first


def sleep_repository(root: Path, delay_ms: float) -> Path:
    """A model repository whose jet tagger answers `delay_ms` after each request arrives."""
    model = root / "jet_tagger"
    (model / "1").mkdir(parents=True)
    (model / "1" / "model.py").symlink_to(SLEEP_MODEL)  # resolved: the model finds the repository's code
    (model / "config.pbtxt").write_text(f"""# The jet tagger after a fixed delay (benchmark of event slots): a remote server's time, no CPU here.
name: "jet_tagger"
backend: "python"
max_batch_size: 256
input [ {{ name: "JET_FEATURES", data_type: TYPE_FP32, dims: [ 9 ] }} ]
output [ {{ name: "SCORE", data_type: TYPE_FP32, dims: [ 1 ] }} ]
instance_group [ {{ count: {INSTANCES}, kind: KIND_CPU }} ]
parameters {{ key: "delay_ms", value: {{ string_value: "{delay_ms:g}" }} }}
""")
    return root


@dataclass
class SlotRun:
    slots: int
    summary: dict[str, Any]

    @property
    def events_per_s(self) -> float:
        return float(self.summary["throughput"]["decided_per_s"])

    @property
    def worker(self) -> dict[str, Any]:
        return next(iter(self.summary["workers"]["per_worker"].values()))

    @property
    def cpu_ms_per_event(self) -> float:
        return 1e3 * float(self.worker.get("cpu_s", 0.0)) / max(int(self.worker.get("decided", 0)), 1)

    def mean_ms(self, step: str) -> float:
        return float(self.summary["latency_ms"].get(step, {}).get("mean", 0.0))

    @property
    def own_ms_per_event(self) -> float:
        """The worker's time given to an event: its steps, without the time it was set aside."""
        return sum(self.mean_ms(s) for s in STEPS)


def ideal_per_s(slots: int, t1_s: float, cpu_ms: float) -> float:
    """min(slots / (server + client time), 1 / worker CPU per event)."""
    return min(slots / t1_s, 1e3 / cpu_ms)


def one_run(config: FarmConfig, url: str, slots: int, settings: Settings, seed: int, rate_hz: float) -> SlotRun:
    cfg = with_overrides(config, worker={"count": 1, "slots": slots}, readout={"rate_hz": rate_hz, "pattern": "constant"},
                         builder={"build_timeout_ms": BUILD_TIMEOUT_MS},
                         inference={"triton_url": url, "models": ("jet_tagger",), "timeout_ms": 1000.0}, run={"seed": seed})
    summary = run_farm(cfg, n_events=settings.events, output_dir=None, events_table=None)
    run = SlotRun(slots, summary)
    log(f"  overlap: slots {slots} at {rate_hz:.0f} Hz: {run.events_per_s:.1f} events/s, worker CPU {run.cpu_ms_per_event:.1f} ms/event, "
        f"own {run.own_ms_per_event:.1f} ms/event, worker_total {run.mean_ms('worker_total'):.1f} ms, lost {summary['events']['lost']}, "
        f"debug {summary['events']['debug']}")
    return run


def run(config: FarmConfig, settings: Settings) -> CaseResult:
    with tempfile.TemporaryDirectory(prefix="tsim-bench-overlap-") as tmp:
        server = TritonServer(sleep_repository(Path(tmp) / "models", settings.delay_ms), START_TIMEOUT_S)
        server.start()
        try:
            log("  overlap: calibration run (slots 1, not counted)")
            calibration = one_run(config, server.grpc_url, 1, Settings(1, CALIBRATION_EVENTS, settings.delay_ms), config.run.seed,
                                  CALIBRATION_RATE_HZ)
            t1_s, cpu_ms = calibration.mean_ms("worker_total") / 1e3, calibration.cpu_ms_per_event
            rates = {s: INPUT_FACTOR * ideal_per_s(s, t1_s, cpu_ms) for s in SLOTS}
            if settings.warm_up:
                log(f"  overlap: warm-up run (slots {SLOTS[-1]}, not counted)")
                one_run(config, server.grpc_url, SLOTS[-1], Settings(1, min(settings.events, 60), settings.delay_ms), config.run.seed,
                        rates[SLOTS[-1]])
            reps = [{s: one_run(config, server.grpc_url, s, settings, config.run.seed, rates[s]) for s in SLOTS}
                    for _ in range(settings.repetitions)]
        finally:
            server.stop()
    return result(settings, reps)


def result(settings: Settings, reps: list[dict[int, SlotRun]]) -> CaseResult:
    out = CaseResult("overlap", "h) Event slots against a server that answers after a fixed time")
    ratios: dict[int, list[float]] = {s: [] for s in SLOTS}
    ideals: dict[int, list[float]] = {s: [] for s in SLOTS}
    for rep in reps:
        t1_s = rep[1].mean_ms("worker_total") / 1e3  # server + client time of one event, one slot
        for s in SLOTS:
            ideal = ideal_per_s(s, t1_s, rep[s].cpu_ms_per_event)
            ideals[s].append(ideal)
            ratios[s].append(rep[s].events_per_s / ideal)
    rows = []
    for s in SLOTS:
        runs = [rep[s] for rep in reps]
        m = {
            "events_per_s": stats([r.events_per_s for r in runs], "events/s"),
            "ideal_per_s": stats(ideals[s], "events/s"),
            "ratio": stats(ratios[s], "ratio"),
            "worker_cpu_ms": stats([r.cpu_ms_per_event for r in runs], "ms CPU/event"),
            "own_ms": stats([r.own_ms_per_event for r in runs], "ms/event"),
            "worker_total_ms": stats([r.mean_ms("worker_total") for r in runs], "ms"),
            "tagger_wait_ms": stats([r.mean_ms("jet_tagger_wait") if s > 1 else r.mean_ms("jet_tagger") for r in runs], "ms"),
        }
        for name, value in m.items():
            out.metrics[f"slots{s}_{name}"] = value
        rows.append([str(s), fmt(m["events_per_s"]), fmt(m["ideal_per_s"]), fmt(m["ratio"]), fmt(m["worker_cpu_ms"]),
                     fmt(m["own_ms"]), fmt(m["tagger_wait_ms"]), fmt(m["worker_total_ms"])])
    out.tables.append((["slots", "events/s", "ideal events/s", "ratio", "worker CPU ms/event", "own ms/event",
                        "tagger: server wait ms", "worker_total ms"], rows))
    medians = {s: statistics.median(ratios[s]) for s in SLOTS}
    best = max(SLOTS, key=lambda s: out.metrics[f"slots{s}_events_per_s"]["median"])
    out.targets.append(Target(f"overlap: events/s / ideal at the best slot count ({best})", medians[best], ">=", TARGET_RATIO))
    digests = {rep[s].summary["events"]["decision_digest"] for rep in reps for s in SLOTS}
    debug = sum(rep[s].summary["events"]["debug"] for rep in reps for s in SLOTS)
    speedup = statistics.median(rep[best].events_per_s / rep[1].events_per_s for rep in reps)
    out.notes += [
        f"One worker; the jet tagger on a server that answers {settings.delay_ms:g} ms after each request (a sleep: "
        "a remote GPU's time, none of this host's CPU), the edge classifier in the worker (its real CPU); "
        f"{settings.events} events per run, {settings.repetitions} repetitions of slots {', '.join(map(str, SLOTS))} "
        f"in turn, input {INPUT_FACTOR:g} x each slot count's ideal. Ideal = min(slots / T1, 1 / C): T1 the one-slot event time "
        "in the worker (server + client), C the worker's CPU per event at that slot count. "
        "'own ms/event' is the worker's time given to an event (its steps, without the time set aside); "
        "'tagger: server wait' is the jet_tagger step with one slot (the call blocks) and jet_tagger_wait with more.",
        f"Best slot count: {best}: {out.metrics[f'slots{best}_events_per_s']['median']:.1f} events/s, "
        f"{medians[best]:.2f} of its ideal, {speedup:.2f}x the events per second of one slot.",
        "Decisions at every slot count: " + ("identical (one decision digest)." if len(digests) == 1
                                             else f"**{len(digests)} different decision digests**.")
        + (f" {debug} events in debug streams over all runs." if debug else ""),
    ]
    if medians[best] < TARGET_RATIO:
        out.limits.append(f"the best ratio is {medians[best]:.2f}: see the worker CPU per event against its own time "
                          "(the difference is time the worker spends outside events: polling, the gRPC threads)")
    out.diagnostics["ratios"] = ratios
    return out
