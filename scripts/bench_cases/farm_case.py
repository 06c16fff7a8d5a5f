"""Cases d and e: the whole farm's sustainable rate against the ideal one, and builder memory.

d) The farm (`farm.one_host.run_farm`, no output files, default configuration: Poisson
   Level-1, pile-up 20, one worker per core) runs against one local tritonserver started
   here for all runs (so its start-up is not in every run). The CPU an event costs the HLT
   is its worker's and the inference server's (the GNN runs there), read from /proc. (A
   worker's wall time is no measure of its cost any more: it includes waiting while the
   server computes on the same cores.)

   Low-rate runs (10 Hz) give a first, lenient estimate of that CPU: idle polling and the
   server's background CPU are spread over few events there, so it overstates the cost per
   event and understates the ideal rate. It only places the search: a search with the one
   definition of "sustained" in `trigger_sim.sustained` (the rate scan uses the same; its
   docstring gives every criterion and threshold) starts at 0.8 x the lenient ideal, runs
   each rate `repeats` times (each run with its own seed, long enough for >= 1,000 events),
   counts a rate only if every run at it passes, and stops when the bracket is within the
   measured run-to-run spread (at least 5 %) or after `max_probes` rates.

   Efficiency (strict, the target) = the Level-1 rate delivered in each run at the
   sustainable rate / the ideal from that run's own HLT CPU per event: workers / (CPU per
   event at the rate being judged). The lenient figure (sustainable rate / the low-rate
   ideal) is reported beside it, labelled as such.

   Every farm process's CPU time is read from /proc during each run (readout, builder,
   workers, tritonserver with its Python stubs, and this process: run control + collector + node agent),
   which shows what the 2 cores are spent on: on this machine the readout emulator, the
   builder, Triton and the collector share them with the workers. The same search is then
   repeated with recorded events replayed in a loop (`run_farm(replay=...)`), so the
   readout reads events instead of simulating them: the farm without the emulator's cost.

e) Builder peak RSS (`summary["builder"]["peak_rss_mb"]`, cross-checked with VmHWM read from
   /proc) at low rate, at the sustainable rate and with Level-1 asking for 10x that rate.
"""

from __future__ import annotations

import itertools
import os
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench_cases.common import CaseResult, CpuMeter, Target, descendants, fmt, log, machine_cpu_s, stats
from farm.procfs import peak_rss_mb
from farm.scan import RUN_OVERHEAD_S
from farm.one_host import Farm, FarmHooks, run_farm
from farm.server_device import local_server
from farm.triton_server import TritonServer
from trigger_sim import sustained as definition
from trigger_sim.config import FarmConfig, with_overrides
from trigger_sim.recording import write_generated

TARGET_EFFICIENCY = 0.8
CPU_SAMPLE_S = 0.25
FIRST_PROBE = 0.8  # x the lenient ideal: where the search starts
CEILING = 1.25  # x the lenient ideal: the highest rate the search tries


@dataclass(frozen=True)
class Settings:
    run_seconds: float  # low-rate and overload runs; a judged run lasts at least this, and long enough for its p99
    low_rate_hz: float
    low_rate_runs: int
    max_probes: int  # rates the search tries at most
    repeats: int  # runs at a rate, every one passing, for it to count as sustained
    overload_runs: int
    warm_up_seconds: float = 0.0  # 0: no warm-up run
    overload_factor: float = 10.0
    replay_events: int = 0  # > 0: the same search again, replaying a recording of this many events in a loop
    # the sustained definition's thresholds; a smoke run scales its event counts down (its verdicts then say
    # nothing about the farm, only that the search runs)
    criteria: definition.Criteria = definition.CRITERIA


@dataclass
class FarmRun:
    rate_hz: float
    seed: int  # config.run.seed of this run: its Poisson arrivals and its events
    summary: dict[str, Any]
    cpu_s: dict[str, float]  # CPU seconds per process group over the steady window
    window_events: int  # events decided in that window
    builder_vmhwm_mb: float  # the builder's own peak RSS, read from /proc
    elsewhere: dict[str, float]  # cores used outside the farm (other_cores) and stolen (steal_cores)
    judged: bool  # a run of the search, judged by `definition.verdict` (low-rate and overload runs are not)
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.judged and not self.failures

    @property
    def events(self) -> int:
        return self.summary["events"]["l1_accepted"]

    def cpu_ms_per_event(self) -> dict[str, float]:
        n = max(self.window_events, 1)
        return {k: 1e3 * v / n for k, v in self.cpu_s.items()}

    def verdict_text(self) -> str:
        if not self.judged:
            return "not judged"
        return "yes" if self.passed else "no"

    def line(self) -> str:
        s = self.summary
        return (f"asked {self.rate_hz:.0f} Hz (seed {self.seed}): input {s['level1']['input_rate_hz']:.0f} Hz, "
                f"{self.events} events, lost {s['events']['lost']}, debug {s['events']['debug']}, "
                f"p99 {s['latency_ms'].get('total', {}).get('p99', 0.0):.0f} ms from "
                f"{definition.p99_events(s)} events, vetoed {s['level1']['vetoed_busy']} busy + "
                f"{s['level1']['vetoed_readout_slow']} readout-slow"
                + ("" if not self.judged or self.passed else f" -> not sustained ({'; '.join(self.failures)})"))


@dataclass
class Found:
    """What the search found: the runs, the ideal rates and the sustainable one."""

    low: list[FarmRun]  # low-rate runs (the lenient CPU per event, and the worker's wall time)
    later: list[FarmRun]  # the search's runs, in order
    result: definition.SearchResult
    workers: int
    worker_ms: dict[str, Any]  # mean worker wall time per event at low rate (waiting on the server included)
    lenient_hlt_cpu_ms: dict[str, Any]  # HLT CPU per event (workers + tritonserver) in the low-rate runs
    lenient_ideal_hz: float  # workers / that

    @property
    def runs(self) -> list[FarmRun]:
        return self.low + self.later

    @property
    def asked_hz(self) -> float | None:
        """The highest sustained Level-1 rate asked for (None: no rate sustained)."""
        return self.result.sustained_hz

    def at(self, rate_hz: float | None) -> list[FarmRun]:
        return [r for r in self.later if r.rate_hz == rate_hz]

    @property
    def at_sustainable(self) -> list[FarmRun]:
        """Every run at the sustainable rate (all passed)."""
        return self.at(self.asked_hz)

    @property
    def judged(self) -> list[FarmRun]:
        """The runs the strict CPU per event comes from: at the sustainable rate, or, when no rate
        was sustained, at the lowest rate that failed (saturation)."""
        return self.at_sustainable or self.at(self.result.failed_hz) or self.later[-1:]

    @property
    def judged_label(self) -> str:
        if self.at_sustainable:
            return "at the sustainable rate"
        return f"at {self.judged[0].rate_hz:.0f} Hz, the lowest rate that failed (no rate sustained)"

    @property
    def sustainable_hz(self) -> float:
        """The Level-1 rate delivered at the sustainable setting (median over its runs; 0: none)."""
        runs = self.at_sustainable
        return statistics.median(r.summary["level1"]["input_rate_hz"] for r in runs) if runs else 0.0

    @property
    def hlt_cpu_ms(self) -> dict[str, Any]:
        """HLT CPU per event at the rate being judged (strict)."""
        return stats([hlt_cpu_ms_per_event(r) for r in self.judged], "ms CPU/event")

    @property
    def ideal_hz(self) -> float:
        """The strict ideal: workers / HLT CPU per event at the rate being judged."""
        return self.workers / (self.hlt_cpu_ms["median"] / 1e3)

    def efficiency_samples(self) -> list[float]:
        """Per run at the sustainable rate: delivered rate / (workers / that run's HLT CPU per event)."""
        return [r.summary["level1"]["input_rate_hz"] * hlt_cpu_ms_per_event(r) / 1e3 / self.workers
                for r in self.at_sustainable] or [0.0]

    @property
    def verdicts(self) -> list[str]:
        """Each rate tried: how many of its runs passed, with their seeds."""
        return [f"{p.rate_hz:.0f} Hz passed {sum(p.passed)} of {len(p.passed)} "
                f"(seeds {', '.join(str(r.seed) for r in self.at(p.rate_hz))})" for p in self.result.probes]


class _Probe:
    """Hooks that read every farm process's CPU time over the steady window (first decision ->
    the readout's END: the readout's own start-up is not counted) and the builder's VmHWM."""

    def __init__(self, server: TritonServer | None):
        self.server = server  # None: the farm's own local servers (every one of them)
        self.groups: dict[str, list[int]] = {}
        self.builder_pid = 0
        self.meter: CpuMeter | None = None
        self.decided0 = self.decided_last = 0
        self.closed = False
        self.last_sample = 0.0
        self.builder_vmhwm_mb = 0.0
        self.machine0 = self.machine1 = (0.0, 0.0, 0.0)  # (time, busy s, steal s)

    def on_started(self, farm: Farm) -> None:
        servers = [self.server] if self.server is not None else farm.local_servers
        triton = [pid for s in servers if s.proc for pid in (s.proc.pid, *descendants(s.proc.pid))]
        self.builder_pid = farm.builder.pid
        self.groups = {"readout": [farm.readout.pid], "builder": [farm.builder.pid],
                       "workers": [p.pid for p in farm.workers.values()], "tritonserver": triton,
                       "supervisor_collector": [os.getpid()]}

    def on_tick(self, farm: Farm) -> None:
        now = time.monotonic()
        if now - self.last_sample < CPU_SAMPLE_S:
            return
        self.last_sample = now
        self.builder_vmhwm_mb = max(self.builder_vmhwm_mb, peak_rss_mb(self.builder_pid) or 0.0)
        if self.closed:
            return
        decided = farm.collector.ledger.decided
        if self.meter is None:
            if decided > 0:
                self.meter, self.decided0 = CpuMeter(self.groups).start(), decided
                self.machine0 = self.machine1 = (now, *machine_cpu_s())
            return
        self.meter.sample()
        self.machine1 = (now, *machine_cpu_s())
        self.decided_last = decided
        self.closed = farm.collector.end is not None

    def cpu(self) -> tuple[dict[str, float], int]:
        if self.meter is None:
            return {k: 0.0 for k in self.groups}, 0
        return self.meter.used_s(), self.decided_last - self.decided0

    def elsewhere(self) -> dict[str, float]:
        """Cores' worth of CPU used outside the farm's processes, and stolen, during the window."""
        if self.meter is None or self.machine1[0] <= self.machine0[0]:
            return {"other_cores": 0.0, "steal_cores": 0.0}
        seconds = self.machine1[0] - self.machine0[0]
        busy = self.machine1[1] - self.machine0[1] - sum(self.meter.used_s().values())
        return {"other_cores": max(busy, 0.0) / seconds, "steal_cores": (self.machine1[2] - self.machine0[2]) / seconds}


def seeds(config: FarmConfig) -> Iterator[int]:
    """A new seed for every run of the case (`definition.repeat_seed`)."""
    return (definition.repeat_seed(config.run.seed, i) for i in itertools.count())


def farm_run(config: FarmConfig, server: TritonServer | None, rate_hz: float, seconds: float, seed: int,
             replay: Path | None = None, judged: bool = False, events_table: Path | None = None,
             criteria: definition.Criteria = definition.CRITERIA) -> FarmRun:
    """One farm run at `rate_hz` for `seconds` with `seed` (replaying `replay` in a loop if
    given), with every process's CPU time; judged by the sustained definition if `judged`;
    its per-event table written to `events_table` if given (a calibration of the capacity model).
    `server` None: the farm starts the local servers `config` asks for, and their CPU is counted
    together (the probe finds them once the run has started; a server restarted during the run
    is not followed)."""
    cfg = with_overrides(config, readout={"rate_hz": rate_hz}, run={"seed": seed},
                         **({"inference": {"triton_url": server.grpc_url}} if server is not None else {}))
    probe = _Probe(server)
    summary = run_farm(cfg, duration_s=seconds, output_dir=None, replay=replay, loop=replay is not None,
                       hooks=FarmHooks(on_started=probe.on_started, on_tick=probe.on_tick), events_table=events_table)
    cpu, window_events = probe.cpu()
    failures = definition.verdict(summary, cfg.worker.budget_ms, criteria)[1] if judged else []
    run = FarmRun(rate_hz, seed, summary, cpu, window_events, probe.builder_vmhwm_mb, probe.elsewhere(), judged,
                  failures)
    log(f"  farm{' (replay)' if replay else ''}: {run.line()}")
    return run


def search(config: FarmConfig, server: TritonServer, settings: Settings, seed: Iterator[int],
           replay: Path | None = None) -> Found:
    """Low-rate runs (the lenient ideal, which places the search), then the search of
    `definition.search`: every run long enough for its p99, with its own seed."""
    def one(rate: float, seconds: float, judged: bool) -> FarmRun:
        return farm_run(config, server, rate, seconds, next(seed), replay, judged, criteria=settings.criteria)

    if settings.warm_up_seconds:
        one(settings.low_rate_hz, settings.warm_up_seconds, False)  # warm-up, not counted
    low = [one(settings.low_rate_hz, settings.run_seconds, False) for _ in range(settings.low_rate_runs)]
    workers = config.worker.resolved_count
    worker_ms = stats([r.summary["latency_ms"]["worker_total"]["mean"] for r in low], "ms")
    lenient_cpu = stats([hlt_cpu_ms_per_event(r) for r in low], "ms CPU/event")
    lenient_ideal = workers / (lenient_cpu["median"] / 1e3)
    log(f"  farm: HLT CPU {lenient_cpu['median']:.2f} ms per event at {settings.low_rate_hz:g} Hz (workers + Triton; "
        f"worker wall time {worker_ms['median']:.2f} ms) -> lenient ideal {lenient_ideal:.0f} Hz")
    later: list[FarmRun] = []

    def judged(rate: float, repeat: int) -> tuple[bool, float]:
        seconds = max(settings.run_seconds, definition.run_seconds(rate, RUN_OVERHEAD_S, settings.criteria))
        later.append(one(rate, seconds, True))
        return later[-1].passed, definition.throughput_hz(later[-1].summary, settings.criteria)

    result = definition.search(judged, FIRST_PROBE * lenient_ideal, settings.low_rate_hz, CEILING * lenient_ideal,
                               settings.repeats, settings.max_probes)
    log(f"  farm: search stopped: {result.stopped}")
    return Found(low, later, result, workers, worker_ms, lenient_cpu, lenient_ideal)


def hlt_cpu_ms_per_event(run: FarmRun) -> float:
    """What an event costs the HLT in CPU: its worker's time plus the server's for its models
    (inference moved out of the worker is still the event's work)."""
    cpu = run.cpu_ms_per_event()
    return cpu["workers"] + cpu["tritonserver"]


def run(config: FarmConfig, settings: Settings,
        server_factory: Callable[[], TritonServer] | None = None) -> tuple[CaseResult, CaseResult]:
    """Cases d) and e) against the local server `config` asks for, or the one `server_factory` makes."""
    seed = seeds(config)
    with (server_factory() if server_factory else local_server(config)) as server:
        simulated = search(config, server, settings, seed)
        overload_hz = settings.overload_factor * (simulated.asked_hz or FIRST_PROBE * simulated.lenient_ideal_hz)
        overload = [farm_run(config, server, overload_hz, settings.run_seconds, next(seed))
                    for _ in range(settings.overload_runs)]
        replayed = None
        if settings.replay_events:
            with tempfile.TemporaryDirectory(prefix="tsim-bench-") as tmp:
                recording = Path(tmp) / "events.tsrec"
                log(f"  farm: writing {settings.replay_events} events to a recording for the replay search ...")
                write_generated(config, recording, settings.replay_events)
                replayed = search(config, server, settings, seed, replay=recording)
    return farm_result(config, settings, simulated, replayed), memory_result(settings, simulated, overload, overload_hz)


def _cpu_metrics(runs: list[FarmRun]) -> dict[str, dict[str, Any]]:
    """CPU ms per event by process group, and their total, over `runs`."""
    per = [r.cpu_ms_per_event() for r in runs]
    metrics = {k: stats([p[k] for p in per], "ms CPU/event") for k in per[0]}
    metrics["total"] = stats([sum(p.values()) for p in per], "ms CPU/event")
    return metrics


def _mode_metrics(f: Found, cores: int) -> dict[str, dict[str, Any]]:
    """The figures of one search (simulated or replayed events)."""
    sus = f.judged
    m = {
        "hlt_cpu_ms_per_event_strict": f.hlt_cpu_ms,
        "ideal_rate_hz_strict": stats([f.workers / (t / 1e3) for t in f.hlt_cpu_ms["samples"]], "Hz"),
        "efficiency_strict": stats(f.efficiency_samples(), "sustainable/ideal at that rate"),
        "hlt_cpu_ms_per_event_lenient_low_rate": f.lenient_hlt_cpu_ms,
        "ideal_rate_hz_lenient_low_rate": stats([f.lenient_ideal_hz], "Hz"),
        "efficiency_lenient_low_rate": stats([f.sustainable_hz / f.lenient_ideal_hz], "sustainable/low-rate ideal"),
        "worker_total_mean_ms": f.worker_ms,
        "workers_over_wall_time_hz": stats([f.workers / (f.worker_ms["median"] / 1e3)], "Hz"),
        "sustainable_rate_asked_hz": stats([f.asked_hz or 0.0], "Hz"),
        "sustainable_rate_hz": stats([r.summary["level1"]["input_rate_hz"] for r in f.at_sustainable] or [0.0], "Hz"),
        "search_resolution": stats([f.result.resolution], "relative"),
        "decided_per_s_at_sustainable": stats([r.summary["throughput"]["decided_per_s"] for r in sus], "events/s"),
        "total_p99_ms_at_sustainable": stats([r.summary["latency_ms"]["total"]["p99"] for r in sus], "ms"),
        "worker_total_mean_ms_at_sustainable": stats([r.summary["latency_ms"]["worker_total"]["mean"] for r in sus], "ms"),
    }
    for label, runs in (("at_sustainable", sus), ("at_low_rate", f.low)):
        for k, v in _cpu_metrics(runs).items():
            m[f"cpu_ms_per_event_{label}.{k}"] = v
    m["cpu_bound_ceiling_hz"] = stats([cores * 1e3 / t for t in m["cpu_ms_per_event_at_sustainable.total"]["samples"]], "Hz")
    return m


def _runs_table(f: Found, label: str) -> tuple[list[str], list[list[str]]]:
    return ([f"{label}: rate asked (Hz)", "seed", "input (Hz)", "events", "total p99 (ms)", "HLT CPU (ms/event)",
             "CPU outside the farm (cores)", "sustained", "why not"],
            [[f"{r.rate_hz:.0f}", str(r.seed), f"{r.summary['level1']['input_rate_hz']:.0f}", str(r.events),
              f"{r.summary['latency_ms'].get('total', {}).get('p99', 0.0):.0f}", f"{hlt_cpu_ms_per_event(r):.1f}",
              f"{r.elsewhere['other_cores']:.2f}", r.verdict_text(),
              "; ".join(r.failures) if r.judged else "low-rate run: the lenient CPU per event"] for r in f.runs])


def _run_record(r: FarmRun) -> dict[str, Any]:
    return {"rate_hz": r.rate_hz, "seed": r.seed, "judged": r.judged, "passed": r.passed, "failures": r.failures,
            "input_rate_hz": r.summary["level1"]["input_rate_hz"], "events": r.events,
            "p99_events": definition.p99_events(r.summary),
            "total_p99_ms": r.summary["latency_ms"].get("total", {}).get("p99", 0.0),
            "throughput_hz": definition.throughput_hz(r.summary),
            "worker_total_mean_ms": r.summary["latency_ms"].get("worker_total", {}).get("mean", 0.0),
            "hlt_cpu_ms_per_event": hlt_cpu_ms_per_event(r), "cpu_ms_per_event": r.cpu_ms_per_event(), **r.elsewhere}


def _search_record(f: Found) -> dict[str, Any]:
    return {"rates": f.verdicts, "stopped": f.result.stopped, "resolution": f.result.resolution,
            "sustained_hz": f.result.sustained_hz, "failed_hz": f.result.failed_hz,
            "strict_cpu_from": f.judged_label, "seeds": [r.seed for r in f.runs],
            "runs": [_run_record(r) for r in f.runs]}


def farm_result(config: FarmConfig, settings: Settings, sim: Found, replay: Found | None) -> CaseResult:
    n_workers = config.worker.resolved_count
    cores = os.cpu_count() or 1
    res = CaseResult("farm", "d) Whole farm: highest sustainable Level-1 rate vs the ideal rate")
    m = res.metrics
    m.update(_mode_metrics(sim, cores))
    modes = [("simulated events", sim, m)]
    rm: dict[str, dict[str, Any]] = {}
    if replay is not None:
        rm = _mode_metrics(replay, cores)
        m.update({f"replay.{k}": v for k, v in rm.items()})
        modes.append(("recorded events replayed", replay, rm))
    res.targets.append(Target("sustainable / ideal rate (strict: the HLT's CPU per event at the sustainable rate)",
                              m["efficiency_strict"]["median"], ">=", TARGET_EFFICIENCY,
                              note=f"lenient (low-rate ideal): {m['efficiency_lenient_low_rate']['median']:.3f}"))
    res.diagnostics = {
        "workers": n_workers, "cores": cores, "run_seconds_min": settings.run_seconds,
        "budget_ms": config.worker.budget_ms, "pile_up": config.physics.pileup_mean, "pattern": config.readout.pattern,
        "criteria": asdict(settings.criteria), "repeats": settings.repeats, "max_probes": settings.max_probes,
        "simulated": _search_record(sim),
    }
    if replay is not None:
        res.diagnostics["replayed"] = {"recording_events": settings.replay_events, **_search_record(replay)}

    def col(key: str, unit: str = "") -> list[str]:
        return [f"{fmt(mm[key])}{unit}" for _, _, mm in modes]

    res.tables.append((["", *(label for label, _, _ in modes)], [
        ["rates tried (runs passed, seeds)", *("; ".join(f.verdicts) for _, f, _ in modes)],
        ["search stopped", *(f.result.stopped for _, f, _ in modes)],
        ["highest sustainable rate: Level-1 rate asked", *col("sustainable_rate_asked_hz", " Hz")],
        ["highest sustainable rate: Level-1 rate delivered (measured input)", *col("sustainable_rate_hz", " Hz")],
        ["HLT CPU per event (workers + tritonserver), strict: " + sim.judged_label, *col("hlt_cpu_ms_per_event_strict", " ms")],
        [f"ideal rate, strict = {n_workers} workers / that", *col("ideal_rate_hz_strict", " Hz")],
        ["**efficiency (strict)** = delivered sustainable rate / strict ideal, per run", *col("efficiency_strict")],
        [f"HLT CPU per event in the {settings.low_rate_hz:g} Hz runs (lenient: idle polling and the server's "
         "background CPU spread over few events)", *col("hlt_cpu_ms_per_event_lenient_low_rate", " ms")],
        [f"ideal rate, lenient = {n_workers} workers / that", *col("ideal_rate_hz_lenient_low_rate", " Hz")],
        ["efficiency, lenient (low-rate ideal; for comparison, not the target)", *col("efficiency_lenient_low_rate")],
        ["mean worker wall time per event (waiting on the server included), low-rate runs",
         *col("worker_total_mean_ms", " ms")],
        [f"  for comparison: {n_workers} workers / worker wall time", *col("workers_over_wall_time_hz", " Hz")],
        ["at the sustainable rate: total latency p99", *col("total_p99_ms_at_sustainable", " ms")],
        ["at the sustainable rate: mean worker time per event", *col("worker_total_mean_ms_at_sustainable", " ms")],
        [f"CPU-bound ceiling = {cores} cores / CPU per event of all farm processes", *col("cpu_bound_ceiling_hz", " Hz")],
    ]))
    for label, f, _ in modes:
        res.tables.append(_runs_table(f, label))
    cpu_cols = [("simulated, low rate", "cpu_ms_per_event_at_low_rate", m),
                ("simulated, sustainable rate", "cpu_ms_per_event_at_sustainable", m)]
    if replay is not None:
        cpu_cols.append(("replayed, sustainable rate", "cpu_ms_per_event_at_sustainable", rm))
    groups = [k.split(".", 1)[1] for k in m if k.startswith("cpu_ms_per_event_at_sustainable.")]
    res.tables.append((["CPU per Level-1 event by process (ms)", *(c[0] for c in cpu_cols)],
                       [[g, *(fmt(mm[f"{prefix}.{g}"]) for _, prefix, mm in cpu_cols)] for g in groups]))
    if not res.targets[-1].met:
        res.limits.append(farm_limits(m, sim, cores, replay))
    c = settings.criteria
    res.notes.append(
        f"{config.readout.pattern} Level-1, pile-up {config.physics.pileup_mean:g}, {n_workers} workers, worker budget "
        f"{config.worker.budget_ms:g} ms; one local tritonserver for all runs. Every run has its own seed (new Poisson "
        f"arrivals and new events; the seeds are in the runs tables and in benchmarks.json). Low-rate runs: "
        f"{settings.low_rate_runs} of {settings.run_seconds:g} s at {settings.low_rate_hz:g} Hz (not judged: they give "
        f"the lenient CPU per event, which places the search). The search (trigger_sim/sustained.py, the same as "
        f"`trigger-sim scan`) starts at {FIRST_PROBE:g} × the lenient ideal, tries at most {settings.max_probes} rates "
        f"between {settings.low_rate_hz:g} Hz and {CEILING:g} × the lenient ideal, doubling or halving until a bracket "
        f"forms and then bisecting on a log scale; a rate counts as sustained only if {settings.repeats} runs at it all "
        f"pass (each sized for >= {definition.events_needed(c)} events, so that its p99 comes from >= {c.min_events}). "
        f"It stops when highest sustained / lowest failed - 1 is within the resolution: the larger of "
        f"{definition.MIN_RELATIVE_STEP:.0%} (two runs of 1,000 events differ by about 4.5 % from Poisson noise alone) "
        "and the measured spread of throughput between runs that passed at the same rate. "
        f"A run is sustained when nothing is lost, no event goes to a debug stream, the run reports no problem, at most "
        f"{c.max_deadtime_fraction:.0%} of the Level-1 slots are vetoed by back-pressure (and at most "
        f"{c.max_readout_slow_fraction:.0%} left unfilled by the readout emulator), the throughput over the last "
        f"{c.stable_windows} windows of >= {c.min_window_events} events is >= {c.keep_up_fraction:g} × the input, those "
        f"windows agree within {c.stable_tolerance:.0%}, and the total-latency p99 over >= {c.min_events} events is "
        f"under the budget. Efficiency (strict, the target) = the delivered rate of each run at the sustainable rate × "
        f"that run's HLT CPU per event / {n_workers} workers, i.e. against the ideal measured at the rate being judged; "
        f"the lenient figure divides by the ideal from the {settings.low_rate_hz:g} Hz runs, where idle polling and the "
        "server's background CPU are spread over few events (more CPU per event, a lower ideal). On this "
        f"{cores}-core machine the workers do not have the cores to themselves: the readout (which, with simulated "
        "events, simulates every event), the builder, tritonserver with its Python stub, and the collector run on the "
        "same cores; the CPU-bound ceiling counts every process. The ideal counts the CPU an event costs the HLT, in "
        "its worker and in the inference server (the GNN runs there): a worker's wall time also holds the time it "
        "waits while the server computes on the same cores, which is not a cost of its own. The target is judged on "
        "simulated events (the farm as it runs by default)"
        + (f"; the replay search (a recording of {settings.replay_events} simulated events, looped) shows the farm "
           "without the simulation's share of the cores." if replay else "."))
    return res


def farm_limits(m: dict[str, dict[str, Any]], f: Found, cores: int, replay: Found | None) -> str:
    """What keeps the sustainable rate below the ideal one, in the measured figures."""
    prefix = "cpu_ms_per_event_at_sustainable."
    cpu = {k[len(prefix):]: v["median"] for k, v in m.items() if k.startswith(prefix)}
    total = cpu.pop("total")
    shares = ", ".join(f"{k} {v:.1f} ms ({v / total:.0%})" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]))
    ceiling = cores * 1e3 / total
    readout = cpu.get("readout", 0.0)
    sus = f.judged
    failed = f.at(f.result.failed_hz)
    above = next((r for r in failed if not r.passed), None)
    low_ms = f.worker_ms["median"]
    worker_at_rate = statistics.median(r.summary["latency_ms"]["worker_total"]["mean"] for r in sus)
    p99 = [r.summary["latency_ms"]["total"]["p99"] for r in sus]
    text = (
        f"CPU. {f.judged_label[0].upper()}{f.judged_label[1:]}, the farm's processes together use {total:.1f} ms of CPU "
        f"per event: {shares}. On {cores} cores that caps any rate at {ceiling:.0f} Hz ({ceiling / f.ideal_hz:.2f} of "
        f"the strict ideal); "
        + (f"the sustainable {f.sustainable_hz:.0f} Hz is {f.sustainable_hz / ceiling:.0%} of that cap. " if f.at_sustainable
           else f"no rate was sustained ({f.result.stopped}). ")
        + f"The strict ideal ({f.ideal_hz:.0f} Hz) counts only the HLT's {f.hlt_cpu_ms['median']:.2f} ms of CPU per event "
          "(workers and Triton) and assumes it has the cores to itself; here the readout, which simulates every event on "
          f"the same cores (a real readout would not), uses {readout:.1f} ms per event. The workers' mean time per event "
          f"is {worker_at_rate:.2f} ms {f.judged_label} against {low_ms:.2f} ms at low rate"
        + (" (contention slows them)." if worker_at_rate > 1.05 * low_ms else
           ": they are not slower, the cap comes from the other processes' share of the cores.")
        + f" Near the cap, Poisson bursts queue events: total latency p99 is {min(p99):.0f}-{max(p99):.0f} ms "
          f"{f.judged_label}")
    if above is not None and f.at_sustainable:
        text += (f", {above.summary['latency_ms'].get('total', {}).get('p99', 0.0):.0f} ms at {above.rate_hz:.0f} Hz, "
                 f"the lowest rate that failed ({'; '.join(above.failures)})")
    text += "."
    if replay is not None:
        rm = _mode_metrics(replay, cores)
        text += (f" Replaying recorded events instead (the readout then only reads and sends them: "
                 f"{rm['cpu_ms_per_event_at_sustainable.readout']['median']:.1f} ms of CPU per event instead of "
                 f"{readout:.1f}), the strict efficiency is {rm['efficiency_strict']['median']:.2f} (sustainable "
                 f"{replay.sustainable_hz:.0f} Hz, strict ideal {replay.ideal_hz:.0f} Hz, CPU cap "
                 f"{rm['cpu_bound_ceiling_hz']['median']:.0f} Hz).")
    return text


def memory_result(settings: Settings, f: Found, overload: list[FarmRun], overload_hz: float) -> CaseResult:
    res = CaseResult("memory", "e) Event-builder memory (peak RSS)")
    m = res.metrics

    def reported(runs: list[FarmRun]) -> dict[str, Any]:
        return stats([r.summary["builder"].get("peak_rss_mb", 0.0) for r in runs], "MB")

    def own(runs: list[FarmRun]) -> dict[str, Any]:
        return stats([r.builder_vmhwm_mb for r in runs], "MB")

    for label, runs in (("low_rate", f.low), ("at_sustainable", f.judged), ("overload", overload)):
        m[f"builder_peak_rss_mb_{label}"] = reported(runs)
        m[f"builder_vmhwm_mb_{label}"] = own(runs)
    m["overload_input_rate_hz"] = stats([r.summary["level1"]["input_rate_hz"] for r in overload], "Hz")
    m["overload_decided_per_s"] = stats([r.summary["throughput"]["decided_per_s"] for r in overload], "events/s")
    m["overload_deadtime_fraction"] = stats([r.summary["level1"]["deadtime_fraction"] for r in overload], "")
    m["overload_lost"] = stats([r.summary["events"]["lost"] for r in overload], "events")
    m["overload_peak_waiting"] = stats([r.summary["builder"].get("peak_waiting", 0) for r in overload], "events")
    res.diagnostics = {"overload_rate_hz": overload_hz, "overload_slots": [
        {"accepted": r.events, "vetoed_busy": r.summary["level1"]["vetoed_busy"],
         "vetoed_readout_slow": r.summary["level1"]["vetoed_readout_slow"]} for r in overload]}
    res.tables.append((["builder peak RSS", "Level-1 asked", "summary builder.peak_rss_mb (MB)", "VmHWM read from /proc (MB)"], [
        ["low rate", f"{settings.low_rate_hz:.0f} Hz", fmt(m["builder_peak_rss_mb_low_rate"]),
         fmt(m["builder_vmhwm_mb_low_rate"])],
        ["sustainable rate" if f.at_sustainable else f.judged_label, f"{f.judged[0].rate_hz:.0f} Hz", fmt(m["builder_peak_rss_mb_at_sustainable"]),
         fmt(m["builder_vmhwm_mb_at_sustainable"])],
        [f"{settings.overload_factor:g}× overload", f"{overload_hz:.0f} Hz", fmt(m["builder_peak_rss_mb_overload"]),
         fmt(m["builder_vmhwm_mb_overload"])],
    ]))
    res.tables.append(([f"{settings.overload_factor:g}× overload", "figure"], [
        ["Level-1 input actually accepted", f"{fmt(m['overload_input_rate_hz'])} Hz"],
        ["events decided per second", fmt(m["overload_decided_per_s"])],
        ["dead time (slots vetoed by back-pressure)", fmt(m["overload_deadtime_fraction"])],
        ["complete events waiting in the builder, peak (max_waiting bounds it)", fmt(m["overload_peak_waiting"])],
        ["lost", fmt(m["overload_lost"])],
    ]))
    busy = sum(r.summary["level1"]["vetoed_busy"] for r in overload)
    slow = sum(r.summary["level1"]["vetoed_readout_slow"] for r in overload)
    res.notes.append(
        "Two readings of the builder's peak resident memory: its own report at shutdown (summary "
        "builder.peak_rss_mb) and its VmHWM read from /proc by this suite every 0.25 s while it runs (VmHWM only "
        "grows); they should agree. Both include the interpreter and its imports (the low-rate figure is that "
        "baseline). ru_maxrss would not do: a spawned process starts with the maxrss of the process that spawned it. "
        "Under overload the builder stops reading when its queue of complete events is full (max_waiting), so "
        "back-pressure reaches the readout (dead time) instead of memory. "
        + ("The readout emulator cannot generate 10× the rate either: most vetoed slots are its own (readout-slow), "
           "the rest dead time." if slow > busy else
           "Most vetoed slots are dead time (back-pressure), the rest the readout emulator's own (readout-slow)."))
    return res
