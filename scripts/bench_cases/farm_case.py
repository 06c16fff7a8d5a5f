"""Cases d and e: the whole farm's sustainable rate against the ideal one, and builder memory.

d) The farm (`farm.supervisor.run_farm`, no output files, default configuration: Poisson
   Level-1, pile-up 20, one worker per core) runs against one local tritonserver started
   here for all runs (so its start-up is not in every run). Low-rate runs give the CPU an
   event costs the HLT: its worker's and the inference server's (the GNN runs there), read
   from /proc; the ideal rate is workers / that time. (A worker's wall time is no measure of
   its cost any more: it includes waiting while the server computes on the same cores.) Then a bisection over the Level-1 rate, starting at 0.8 x ideal,
   finds the highest rate the farm sustains: nothing lost, no event in a debug stream, total
   latency p99 under the worker budget, and at most 1 % of Level-1 slots vetoed (dead time
   from back-pressure, or the readout emulator unable to generate events in time).
   A rate counts only if every run at it passes: a probe that passes is run again (twice in
   the full suite) before it becomes the bisection's lower bound. Efficiency = the Level-1
   rate delivered at the sustainable setting / ideal.

   Every farm process's CPU time is read from /proc during each run (readout, builder,
   workers, tritonserver with its Python stubs, and this process: supervisor + collector),
   which shows what the 2 cores are spent on: on this machine the readout emulator, the
   builder, Triton and the collector share them with the workers. The same search is then
   repeated with recorded events replayed in a loop (`run_farm(replay=...)`), so the
   readout reads events instead of simulating them: the farm without the emulator's cost.

e) Builder peak RSS (`summary["builder"]["peak_rss_mb"]`, cross-checked with VmHWM read from
   /proc) at low rate, at the sustainable rate and with Level-1 asking for 10x that rate.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_cases.common import CaseResult, CpuMeter, Target, descendants, fmt, log, machine_cpu_s, peak_rss_mb, stats
from farm.supervisor import Farm, FarmHooks, run_farm
from farm.server_device import local_server
from farm.triton_server import TritonServer
from trigger_sim.config import FarmConfig, as_dict, with_overrides
from trigger_sim.recording import RecordWriter
from trigger_sim.simulation import event_fragments

TARGET_EFFICIENCY = 0.8
MAX_VETOED_FRACTION = 0.01
CPU_SAMPLE_S = 0.25
FIRST_PROBE = 0.8  # x ideal: the target itself
CEILING = 1.25  # x ideal: assumed not sustainable (never run)


@dataclass(frozen=True)
class Settings:
    run_seconds: float
    low_rate_hz: float
    low_rate_runs: int
    bisection_runs: int
    confirm_runs: int
    overload_runs: int
    warm_up_seconds: float = 0.0  # 0: no warm-up run
    overload_factor: float = 10.0
    replay_events: int = 0  # > 0: the same search again, replaying a recording of this many events in a loop


@dataclass
class FarmRun:
    rate_hz: float
    summary: dict[str, Any]
    cpu_s: dict[str, float]  # CPU seconds per process group over the steady window
    window_events: int  # events decided in that window
    builder_vmhwm_mb: float  # the builder's own peak RSS, read from /proc
    elsewhere: dict[str, float]  # cores used outside the farm (other_cores) and stolen (steal_cores)
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def events(self) -> int:
        return self.summary["events"]["l1_accepted"]

    def cpu_ms_per_event(self) -> dict[str, float]:
        n = max(self.window_events, 1)
        return {k: 1e3 * v / n for k, v in self.cpu_s.items()}

    def line(self) -> str:
        s = self.summary
        return (f"asked {self.rate_hz:.0f} Hz: input {s['level1']['input_rate_hz']:.0f} Hz, {self.events} events, "
                f"lost {s['events']['lost']}, debug {s['events']['debug']}, p99 {s['latency_ms']['total']['p99']:.0f} ms, "
                f"vetoed {s['level1']['vetoed_busy']} busy + {s['level1']['vetoed_readout_slow']} readout-slow"
                + ("" if self.passed else f" -> not sustained ({'; '.join(self.failures)})"))


def failures(summary: dict[str, Any], budget_ms: float) -> list[str]:
    """Why a run does not count as sustained (empty: it does)."""
    ev, l1 = summary["events"], summary["level1"]
    out = []
    if ev["lost"]:
        out.append(f"{ev['lost']} lost")
    if ev["debug"]:
        out.append(f"{ev['debug']} in debug streams {summary['debug_streams']}")
    p99 = summary["latency_ms"].get("total", {}).get("p99", float("inf"))
    if p99 >= budget_ms:
        out.append(f"total p99 {p99:.0f} ms >= budget {budget_ms:g} ms")
    slots = ev["l1_accepted"] + l1["vetoed_busy"] + l1["vetoed_readout_slow"]
    if l1["vetoed_busy"] > MAX_VETOED_FRACTION * slots:
        out.append(f"dead time {l1['vetoed_busy'] / slots:.1%} (farm back-pressure)")
    if l1["vetoed_readout_slow"] > MAX_VETOED_FRACTION * slots:
        out.append(f"readout emulator too slow for {l1['vetoed_readout_slow'] / slots:.1%} of the slots")
    if summary["problems"]:
        out.append("; ".join(summary["problems"]))
    return out


@dataclass
class Found:
    """What the search found: the runs, the ideal rate and the sustainable one."""

    low: list[FarmRun]  # low-rate runs (the per-event CPU and worker time)
    later: list[FarmRun]  # bisection runs (a probe that passes is run again to confirm it)
    at_sustainable: list[FarmRun]  # every run at the sustainable rate (all passed)
    worker_ms: dict[str, Any]  # mean worker wall time per event (waiting on the server included)
    hlt_cpu_ms: dict[str, Any]  # CPU per event of the HLT: workers + tritonserver (the models)
    ideal_hz: float
    asked_hz: float  # the sustainable Level-1 rate asked for
    verdicts: list[str]  # each bisection rate: how many of its runs passed

    @property
    def runs(self) -> list[FarmRun]:
        return self.low + self.later

    @property
    def sustainable_hz(self) -> float:
        """The Level-1 rate actually delivered at the sustainable setting (median over its runs)."""
        return statistics.median(r.summary["level1"]["input_rate_hz"] for r in self.at_sustainable or self.low)


class _Probe:
    """Hooks that read every farm process's CPU time over the steady window (first decision ->
    the readout's END: the readout's own start-up is not counted) and the builder's VmHWM."""

    def __init__(self, server: TritonServer):
        self.server = server
        self.groups: dict[str, list[int]] = {}
        self.builder_pid = 0
        self.meter: CpuMeter | None = None
        self.decided0 = self.decided_last = 0
        self.closed = False
        self.last_sample = 0.0
        self.builder_vmhwm_mb = 0.0
        self.machine0 = self.machine1 = (0.0, 0.0, 0.0)  # (time, busy s, steal s)

    def on_started(self, farm: Farm) -> None:
        triton = [self.server.proc.pid, *descendants(self.server.proc.pid)] if self.server.proc else []
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


def farm_run(config: FarmConfig, server: TritonServer, rate_hz: float, seconds: float,
             replay: Path | None = None) -> FarmRun:
    """One farm run at `rate_hz` for `seconds` (replaying `replay` in a loop if given), with
    every process's CPU time."""
    cfg = with_overrides(config, readout={"rate_hz": rate_hz}, inference={"triton_url": server.grpc_url})
    probe = _Probe(server)
    summary = run_farm(cfg, duration_s=seconds, output_dir=None, replay=replay, loop=replay is not None,
                       hooks=FarmHooks(on_started=probe.on_started, on_tick=probe.on_tick))
    cpu, window_events = probe.cpu()
    run = FarmRun(rate_hz, summary, cpu, window_events, probe.builder_vmhwm_mb, probe.elsewhere(),
                  failures(summary, cfg.worker.budget_ms))
    log(f"  farm{' (replay)' if replay else ''}: {run.line()}")
    return run


def search(config: FarmConfig, server: TritonServer, settings: Settings, replay: Path | None = None) -> Found:
    """Low-rate runs (the ideal rate), then a bisection in which a rate counts as sustained only
    if every run at it passes: a probe that passes once is run `confirm_runs` more times before
    it becomes the new lower bound."""
    def one(rate: float, seconds: float = settings.run_seconds) -> FarmRun:
        return farm_run(config, server, rate, seconds, replay)

    if settings.warm_up_seconds:
        one(settings.low_rate_hz, settings.warm_up_seconds)  # warm-up, not counted
    low = [one(settings.low_rate_hz) for _ in range(settings.low_rate_runs)]
    worker_ms = stats([r.summary["latency_ms"]["worker_total"]["mean"] for r in low], "ms")
    hlt_cpu_ms = stats([hlt_cpu_ms_per_event(r) for r in low], "ms CPU/event")
    ideal = config.worker.resolved_count / (hlt_cpu_ms["median"] / 1e3)
    log(f"  farm: HLT CPU {hlt_cpu_ms['median']:.2f} ms per event (workers + Triton; worker wall time "
        f"{worker_ms['median']:.2f} ms) -> ideal {ideal:.0f} Hz")
    lo, hi = settings.low_rate_hz, CEILING * ideal
    at_sustainable, sustainable = [r for r in low if r.passed], settings.low_rate_hz
    later: list[FarmRun] = []
    verdicts = []
    probe = FIRST_PROBE * ideal
    for _ in range(settings.bisection_runs):
        runs = [one(probe)]
        while runs[-1].passed and len(runs) <= settings.confirm_runs:
            runs.append(one(probe))
        later += runs
        verdicts.append(f"{probe:.0f} Hz passed {sum(r.passed for r in runs)} of {len(runs)}")
        if all(r.passed for r in runs):
            lo, at_sustainable, sustainable = probe, runs, probe
        else:
            hi = probe
        probe = (lo + hi) / 2
    return Found(low, later, at_sustainable, worker_ms, hlt_cpu_ms, ideal, sustainable, verdicts)


def hlt_cpu_ms_per_event(run: FarmRun) -> float:
    """What an event costs the HLT in CPU: its worker's time plus the server's for its models
    (inference moved out of the worker is still the event's work)."""
    cpu = run.cpu_ms_per_event()
    return cpu["workers"] + cpu["tritonserver"]


def write_recording(config: FarmConfig, path: Path, n_events: int) -> None:
    """Simulated events written once to a recording, for the replay search."""
    with RecordWriter(path, config.run.run_number, "generated", as_dict(config),
                      source={"kind": "generated", "seed": config.run.seed, "pileup_mean": config.physics.pileup_mean}) as w:
        for l1_id in range(n_events):
            w.write_event(l1_id, {}, event_fragments(config, l1_id, l1_time_ns=0))


def run(config: FarmConfig, settings: Settings,
        server_factory: Callable[[], TritonServer] | None = None) -> tuple[CaseResult, CaseResult]:
    """Cases d) and e) against the local server `config` asks for, or the one `server_factory` makes."""
    with (server_factory() if server_factory else local_server(config)) as server:
        simulated = search(config, server, settings)
        overload = [farm_run(config, server, settings.overload_factor * simulated.asked_hz, settings.run_seconds)
                    for _ in range(settings.overload_runs)]
        replayed = None
        if settings.replay_events:
            with tempfile.TemporaryDirectory(prefix="tsim-bench-") as tmp:
                recording = Path(tmp) / "events.tsrec"
                log(f"  farm: writing {settings.replay_events} events to a recording for the replay search ...")
                write_recording(config, recording, settings.replay_events)
                replayed = search(config, server, settings, replay=recording)
    return farm_result(config, settings, simulated, replayed), memory_result(settings, simulated, overload)


def _cpu_metrics(runs: list[FarmRun]) -> dict[str, dict[str, Any]]:
    """CPU ms per event by process group, and their total, over `runs`."""
    per = [r.cpu_ms_per_event() for r in runs]
    metrics = {k: stats([p[k] for p in per], "ms CPU/event") for k in per[0]}
    metrics["total"] = stats([sum(p.values()) for p in per], "ms CPU/event")
    return metrics


def len_workers(f: Found) -> int:
    return f.runs[0].summary["workers"]["count"]


def _mode_metrics(f: Found, cores: int) -> dict[str, dict[str, Any]]:
    """The figures of one search (simulated or replayed events)."""
    sus = f.at_sustainable or f.low
    m = {
        "worker_total_mean_ms": f.worker_ms,
        "hlt_cpu_ms_per_event": f.hlt_cpu_ms,
        "ideal_rate_hz": stats([f.ideal_hz], "Hz"),
        "workers_over_wall_time_hz": stats([len_workers(f) / (f.worker_ms["median"] / 1e3)], "Hz"),
        "sustainable_rate_asked_hz": stats([f.asked_hz], "Hz"),
        "sustainable_rate_hz": stats([r.summary["level1"]["input_rate_hz"] for r in sus], "Hz"),
        "efficiency": stats([f.sustainable_hz / f.ideal_hz], "sustainable/ideal"),
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
    return ([f"{label}: rate asked (Hz)", "input (Hz)", "events", "total p99 (ms)", "CPU outside the farm (cores)", "sustained",
             "why not"],
            [[f"{r.rate_hz:.0f}", f"{r.summary['level1']['input_rate_hz']:.0f}", str(r.events),
              f"{r.summary['latency_ms']['total']['p99']:.0f}", f"{r.elsewhere['other_cores']:.2f}",
              "yes" if r.passed else "no", "; ".join(r.failures)] for r in f.runs])


def _run_record(r: FarmRun) -> dict[str, Any]:
    return {"rate_hz": r.rate_hz, "passed": r.passed, "failures": r.failures,
            "input_rate_hz": r.summary["level1"]["input_rate_hz"], "events": r.events,
            "total_p99_ms": r.summary["latency_ms"]["total"]["p99"],
            "worker_total_mean_ms": r.summary["latency_ms"]["worker_total"]["mean"],
            "cpu_ms_per_event": r.cpu_ms_per_event(), **r.elsewhere}


def farm_result(config: FarmConfig, settings: Settings, sim: Found, replay: Found | None) -> CaseResult:
    n_workers = config.worker.resolved_count
    cores = os.cpu_count() or 1
    res = CaseResult("farm", "d) Whole farm: highest sustainable Level-1 rate vs the ideal rate")
    m = res.metrics
    m.update(_mode_metrics(sim, cores))
    modes = [("simulated events", sim, m)]
    if replay is not None:
        rm = _mode_metrics(replay, cores)
        m.update({f"replay.{k}": v for k, v in rm.items()})
        modes.append(("recorded events replayed", replay, rm))
    res.targets.append(Target("sustainable / ideal rate", m["efficiency"]["median"], ">=", TARGET_EFFICIENCY))
    res.diagnostics = {
        "workers": n_workers, "cores": cores, "run_seconds": settings.run_seconds,
        "budget_ms": config.worker.budget_ms, "pile_up": config.physics.pileup_mean, "pattern": config.readout.pattern,
        "simulated": {"bisection": sim.verdicts, "runs": [_run_record(r) for r in sim.runs]},
    }
    if replay is not None:
        res.diagnostics["replayed"] = {"recording_events": settings.replay_events, "bisection": replay.verdicts,
                                       "runs": [_run_record(r) for r in replay.runs]}

    def col(key: str, unit: str = "") -> list[str]:
        return [f"{fmt(mm[key])}{unit}" for _, _, mm in modes]

    res.tables.append((["", *(label for label, _, _ in modes)], [
        ["HLT CPU per event (workers + tritonserver), low-rate runs", *col("hlt_cpu_ms_per_event", " ms")],
        [f"ideal rate = {n_workers} workers / HLT CPU per event", *col("ideal_rate_hz", " Hz")],
        ["mean worker wall time per event (waiting on the server included), low-rate runs",
         *col("worker_total_mean_ms", " ms")],
        [f"  for comparison: {n_workers} workers / worker wall time", *col("workers_over_wall_time_hz", " Hz")],
        ["highest sustainable rate: Level-1 rate asked (confirmed bisection)", *col("sustainable_rate_asked_hz", " Hz")],
        ["highest sustainable rate: Level-1 rate delivered (measured input)", *col("sustainable_rate_hz", " Hz")],
        ["**efficiency** = delivered sustainable rate / ideal", *col("efficiency")],
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
    res.notes.append(
        f"{settings.run_seconds:g} s per run, {config.readout.pattern} Level-1 (seeded: the same slots at a given rate), "
        f"pile-up {config.physics.pileup_mean:g}, {n_workers} workers, worker budget {config.worker.budget_ms:g} ms; one "
        f"local tritonserver for all runs; low-rate runs: {settings.low_rate_runs}, then bisection steps: "
        f"{settings.bisection_runs}, starting at {FIRST_PROBE:g} × ideal; a rate that passes is run again (up to "
        f"{settings.confirm_runs} more times) and counts only if every run passes (simulated: {'; '.join(sim.verdicts)}"
        + (f"; replayed: {'; '.join(replay.verdicts)}" if replay else "") + "). "
        "Sustained = nothing lost, nothing in a debug stream, total latency p99 under the "
        f"budget, at most {MAX_VETOED_FRACTION:.0%} of the Level-1 slots vetoed. On this {cores}-core machine the "
        "workers do not have the cores to themselves: the readout (which, with simulated events, simulates every "
        "event), the builder, tritonserver with its Python stub, and the collector run on the same cores, so the "
        "ideal rate (workers / worker time) is out of reach by construction; the CPU-bound ceiling counts every "
        "process. The ideal counts the CPU an event costs the HLT, in its worker and in the inference server (the GNN "
        "runs there): a worker's wall time also holds the time it waits while the server computes on the same "
        "cores, which is not a cost of its own. The target is judged on simulated events (the farm as it runs by default)"
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
    sus = f.at_sustainable or f.low
    failed = [r for r in f.later if not r.passed and r.rate_hz > f.asked_hz]
    above = min(failed, key=lambda r: r.rate_hz) if failed else None
    low_ms = f.worker_ms["median"]
    worker_at_rate = statistics.median(r.summary["latency_ms"]["worker_total"]["mean"] for r in sus)
    p99 = [r.summary["latency_ms"]["total"]["p99"] for r in sus]
    text = (
        f"CPU. At the sustainable rate the farm's processes together use {total:.1f} ms of CPU per event: {shares}. "
        f"On {cores} cores that caps any rate at {ceiling:.0f} Hz ({ceiling / f.ideal_hz:.2f} of the ideal); the "
        f"sustainable {f.sustainable_hz:.0f} Hz is {f.sustainable_hz / ceiling:.0%} of that cap. The ideal rate "
        f"({f.ideal_hz:.0f} Hz) counts only the HLT's {f.hlt_cpu_ms['median']:.2f} ms of CPU per event (workers and "
        f"Triton) and assumes it has the cores to itself; here the readout, which simulates every event on the same "
        f"cores (a real readout would not), uses {readout:.1f} ms per event. The workers' mean time per event is "
        f"{worker_at_rate:.2f} ms at the "
        f"sustainable rate against {low_ms:.2f} ms at low rate"
        + (" (contention slows them)." if worker_at_rate > 1.05 * low_ms else
           ": they are not slower, the cap comes from the other processes' share of the cores.")
        + f" Near the cap, Poisson bursts queue events: total latency p99 is {min(p99):.0f}-{max(p99):.0f} ms at the "
          "sustainable rate")
    if above is not None:
        text += (f", {above.summary['latency_ms']['total']['p99']:.0f} ms at {above.rate_hz:.0f} Hz, the lowest rate "
                 f"that failed ({'; '.join(above.failures)})")
    text += "."
    if replay is not None:
        rm = _mode_metrics(replay, cores)
        text += (f" Replaying recorded events instead (the readout then only reads and sends them: "
                 f"{rm['cpu_ms_per_event_at_sustainable.readout']['median']:.1f} ms of CPU per event instead of "
                 f"{readout:.1f}), the efficiency is {rm['efficiency']['median']:.2f} (sustainable "
                 f"{replay.sustainable_hz:.0f} Hz, ideal {replay.ideal_hz:.0f} Hz, CPU cap "
                 f"{rm['cpu_bound_ceiling_hz']['median']:.0f} Hz).")
    return text


def memory_result(settings: Settings, f: Found, overload: list[FarmRun]) -> CaseResult:
    res = CaseResult("memory", "e) Event-builder memory (peak RSS)")
    m = res.metrics

    def reported(runs: list[FarmRun]) -> dict[str, Any]:
        return stats([r.summary["builder"].get("peak_rss_mb", 0.0) for r in runs], "MB")

    def own(runs: list[FarmRun]) -> dict[str, Any]:
        return stats([r.builder_vmhwm_mb for r in runs], "MB")

    for label, runs in (("low_rate", f.low), ("at_sustainable", f.at_sustainable or f.low), ("overload", overload)):
        m[f"builder_peak_rss_mb_{label}"] = reported(runs)
        m[f"builder_vmhwm_mb_{label}"] = own(runs)
    m["overload_input_rate_hz"] = stats([r.summary["level1"]["input_rate_hz"] for r in overload], "Hz")
    m["overload_decided_per_s"] = stats([r.summary["throughput"]["decided_per_s"] for r in overload], "events/s")
    m["overload_deadtime_fraction"] = stats([r.summary["level1"]["deadtime_fraction"] for r in overload], "")
    m["overload_lost"] = stats([r.summary["events"]["lost"] for r in overload], "events")
    m["overload_peak_waiting"] = stats([r.summary["builder"].get("peak_waiting", 0) for r in overload], "events")
    overload_hz = settings.overload_factor * f.asked_hz
    res.diagnostics = {"overload_rate_hz": overload_hz, "overload_slots": [
        {"accepted": r.events, "vetoed_busy": r.summary["level1"]["vetoed_busy"],
         "vetoed_readout_slow": r.summary["level1"]["vetoed_readout_slow"]} for r in overload]}
    res.tables.append((["builder peak RSS", "Level-1 asked", "summary builder.peak_rss_mb (MB)", "VmHWM read from /proc (MB)"], [
        ["low rate", f"{settings.low_rate_hz:.0f} Hz", fmt(m["builder_peak_rss_mb_low_rate"]),
         fmt(m["builder_vmhwm_mb_low_rate"])],
        ["sustainable rate", f"{f.asked_hz:.0f} Hz", fmt(m["builder_peak_rss_mb_at_sustainable"]),
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
