"""The capacity model against the real farm, side by side on this machine.

For each case: real runs calibrate the model (their per-event tables; the default farm's at
0.8 of its measured saturation, the slots case's one-slot run at a low rate); then the
model's saturation rate (the search and verdict of trigger_sim/sustained.py on the
model's summary) beside the real farm's (farm/scan.py's search), and p50/p99 of the total
latency at three rates below saturation, model and real at the same rates.
Targets: saturation within 10 %, p50 and p99 within 15 %. Every real p50/p99 comes with its 95 %
interval (a moving-block bootstrap over the runs' events, blocks of consecutive events: they
come in spells; the events kept in docs/plan/validation-real-latencies.json)
and the number of events it rests on; a model figure outside 15 % but inside that interval is
marked as such, not as a model error.

Cases: the default farm; its workers with event slots against a sleep-model server (its
saturation and three rates, as the default farm); two local servers with one SIGKILLed and
restarted (three rates below its own farm's saturation without a kill, searched first: p50/p99
and the fallback fraction; the kill itself is not searched, it is a transient).

The default farm's calibration is made at the rate the model judges: runs at 0.8 of the
measured saturation, each farm process's CPU per event measured in the same run (at 20 Hz
idle polling and the server's background threads are spread over a quarter of the events,
and the worker's steps run colder). Two runs by default (--calibration-runs), one before the
real runs at the three rates and one after them, calibrated one by one and pooled: this
shared host's speed drifts over minutes, and a spell then weighs on the calibration as it
does on the runs it is compared with. One more run at 0.15 of the saturation (--low-rate-events)
gives the factor the steps need at a low rate (the real steps get longer as the rate falls:
trigger_sim/planning/idle_slowdown.py); the report sets out the real steps' medians at the
three rates. The kill case is calibrated the same way on its own farm, two servers without a
kill, on either side of its kill runs (--kill-calibration own). With --ship-calibration the default farm's calibration is also written as this host's
shipped calibration (configs/calibrations/cpu-this-host-pu20.json) with its provenance: one
command re-makes and re-checks it after the code changes (a retrained model, a faster step).

Real runs take the shared lock (/tmp/tsim-heavy.lock) one phase at a time, so other users of
the machine are not starved; each phase records the cores other processes used meanwhile
(`other_cores`: a measurement taken while the machine was not quiet says so). Each case
records its own command, commit and time; cases not run keep their earlier figures in --out.

    .venv/bin/python scripts/validate_plan.py [--cases default,slots,kill] [--ship-calibration] [--quick]
    .venv/bin/python scripts/validate_plan.py --cases slots --hold-lock   # one lock acquisition for the run
    .venv/bin/python scripts/validate_plan.py --rates-only --cases default   # a polluted rates phase again
    .venv/bin/python scripts/validate_plan.py --model-only                  # the model again, real figures kept
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_cases: the sleep-model server of the overlap case

import numpy as np  # noqa: E402
from bench_cases import plan_validation  # noqa: E402
from bench_cases.common import LoadMeter  # noqa: E402
from bench_cases.farm_case import farm_run  # noqa: E402
from bench_cases.overlap_case import INSTANCES as SLEEP_INSTANCES  # noqa: E402
from bench_cases.overlap_case import START_TIMEOUT_S, sleep_repository  # noqa: E402
from farm.fault_scenarios import local_server_killed, local_servers_config  # noqa: E402
from farm.scan import RUN_OVERHEAD_S, run_scan  # noqa: E402
from farm.server_device import local_server  # noqa: E402
from farm.one_host import run_farm  # noqa: E402
from farm.procfs import session_cpu_s  # noqa: E402
from farm.triton_server import TritonServer  # noqa: E402
from trigger_sim.assignment import node_slots  # noqa: E402
from trigger_sim import sustained  # noqa: E402
from trigger_sim.config import FarmConfig, load_config, with_overrides  # noqa: E402
from trigger_sim.planning import calibrate, percentile_interval  # noqa: E402
from trigger_sim.planning.calibration import CPU_STEPS, Calibration, load, save, server_kind  # noqa: E402
from trigger_sim.planning.farm_model import FarmModel  # noqa: E402
from trigger_sim.planning.model_summary import summarise, total_latency_ms  # noqa: E402
from trigger_sim.planning.sizing import run_rate, saturation  # noqa: E402
from trigger_sim.planning.spec import ArrivalSpec, FarmSpec, PlanSpec, ServerKill, from_farm_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LOCK = "/tmp/tsim-heavy.lock"
SATURATION_TOLERANCE = 0.10
LATENCY_TOLERANCE = 0.15
STEPS_COMPARED = ("assign", "queue", "edge_classifier", "jet_tagger", "worker_total")  # per-step medians shown side by side
FRACTIONS = (0.3, 0.55, 0.8)  # the three rates below saturation, as fractions of the measured one
# the kill case: a local tritonserver's CPU to start (load its models, get ready), seconds: the median of three
# starts measured by server_start_cpu on this host (3.63, 1.68, 1.72 s of CPU over 2.0, 1.0, 1.1 s; 2026-12-05
# 18:49 UTC); a kill case run measures its own and keeps it
RESTART_CPU_S = 1.72
RESTART_ALONE_S = 0.85  # a start's wall time on an idle host (0.81-0.91 s, three starts, 2026-12-05 11:23 UTC)
# this host's cores as Linux shares them (CFS: slices of ~3 ms on 2 cores, the least-run process first), not whole steps
HOST_SCHEDULER = {"cpu_slice_ms": 3.0, "cpu_fair": True}
RATE_EVENTS = 2000  # events per real run at the lowest of the three rates (its p99 on 20 of them; 1,000 gave 10), more at the others
MODEL_EVENTS_AT_RATE = 20_000  # the model's percentiles at a rate come from this many events
SLOTS = 2  # the slots case: event slots per worker (the default farm's two workers)
SLEEP_MS = 40.0  # the slots case: the sleep-model server's time per request
KILL_AT = 0.3  # the kill case: the share of the events decided when server 0 is SIGKILLed
MIN_CALIBRATION_RUN_EVENTS = 200  # a calibration run shorter than this is mostly its start
CALIBRATION_FRACTION = 0.8  # the default farm's calibration run, as a fraction of the measured saturation
# a further calibration run at this fraction of the measured saturation, below the three rates: the
# steps' factor at a low rate (calibrate.scale_for_low_rate; the real steps get longer as the rate falls)
LOW_RATE_FRACTION = 0.15
STEADY_SKIP = 0.1  # the low-rate run's first events left out of its mean worker time (start-up)
QUIET_OTHER_CORES = 0.1  # more cores used by other processes during a phase: the phase is flagged
KILL_MODEL_SEEDS = 20  # the kill case's model: seeds per rate, their events pooled (five gave a p99 one seed could move by half)
RETRY_OTHER_CORES = 0.2  # more during the real runs at three rates: they are run again (--retries)
QUIET_WAIT_S = 120.0  # a phase waits at most this long, holding the lock, for the machine to be quiet
SHIPPED_CALIBRATION = ROOT / "configs" / "calibrations" / "cpu-this-host-pu20.json"
CASE_NAMES = {"default": "default farm", "slots": f"event slots ({SLOTS}) against a sleep-model server ({SLEEP_MS:g} ms)",
              "kill": "two servers, one killed"}


REAL_LATENCIES: dict[tuple[str, float], np.ndarray] = {}  # (case key, rate): the real events' total latencies, ms
PHASES: list[dict] = []  # every heavy phase of this run: what, how long, the other processes' load meanwhile
HOLDING = False  # --hold-lock: the whole run holds the shared lock, its phases only record themselves


@contextlib.contextmanager
def heavy_lock(what: str):
    """The machine's shared lock for one heavy phase; the phase, its time and the cores other
    processes used meanwhile go to PHASES."""
    print(f"[{time.strftime('%H:%M:%S')}] waiting for the shared lock: {what}", flush=True)
    t_wait = time.monotonic()
    with open(LOCK, "a") as fh:
        if not HOLDING:
            fcntl.flock(fh, fcntl.LOCK_EX)
        quiet_wait_s = wait_for_quiet()
        t0 = time.monotonic()
        meter = LoadMeter()
        try:
            yield
        finally:
            load = meter.stop()
            if not HOLDING:
                fcntl.flock(fh, fcntl.LOCK_UN)
            PHASES.append({"phase": what, "waited_s": round(t0 - t_wait, 1), "quiet_wait_s": round(quiet_wait_s, 1),
                           "seconds": round(load["seconds"], 1),
                           "other_cores": round(load["other_cores"], 3), "steal_cores": round(load["steal_cores"], 3)})
            flag = " (NOT quiet)" if load["other_cores"] > QUIET_OTHER_CORES else ""
            print(f"[{time.strftime('%H:%M:%S')}] {what}: {load['seconds']:.0f} s, other processes "
                  f"{load['other_cores']:.2f} cores{flag}", flush=True)


def wait_for_quiet(max_wait_s: float = QUIET_WAIT_S, window_s: float = 2.0) -> float:
    """Holding the lock, wait (at most `max_wait_s`) until other processes use at most
    QUIET_OTHER_CORES over a `window_s` window: unit tests may run without the lock, and a
    phase started under them measures them too. Returns the time waited."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < max_wait_s:
        meter = LoadMeter()
        time.sleep(window_s)
        if meter.stop()["other_cores"] <= QUIET_OTHER_CORES:
            break
    return time.monotonic() - t0


def phases_since(start: int) -> list[dict]:
    return PHASES[start:]


def provenance(command: str) -> dict:
    """When, by what command and from which commit a case was measured."""
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True).stdout.strip()
        commit += " (with uncommitted changes)" if dirty else ""
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return {"date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "command": command, "commit": commit}


def within(model: float, real: float, tolerance: float) -> bool:
    return real > 0 and abs(model - real) <= tolerance * real


def probe_rows(scan: dict) -> list[tuple[float, bool, str]]:
    """A saturation search's probes as the records keep them: (rate, sustained, why not)."""
    return [(p["rate_hz"], p["sustained"], p["why_not"]) for p in scan["points"]]


def real_failed_hz(probes: list, sustained_hz: float | None) -> float | None:
    """The top of the real search's bracket: the lowest probed rate above the sustained one
    that failed (None: every probe above it passed, or none was tried, so the sustained rate
    is only a lower bound). `probes`: (rate Hz, sustained, why not) as `compare` keeps them."""
    above = [rate for rate, ok, *_ in probes if not ok and (sustained_hz is None or rate > sustained_hz)]
    return min(above, default=None)


def saturation_verdict(model_hz: float | None, sustained_hz: float | None, failed_hz: float | None,
                       tolerance: float = SATURATION_TOLERANCE) -> str:
    """The model's saturation against the real search's bracket [sustained_hz, failed_hz]: the
    real saturation is somewhere in it, so the model is "within" the tolerance only if it is
    within it of every rate in the bracket, "undecided" if of some of them (a finer real search
    would decide), "not within" if of none. Without a failed rate the bracket is open above
    (a lower bound): at best "undecided"."""
    if not model_hz or not sustained_hz:
        return "not within"
    lo, hi = model_hz / (1 + tolerance), model_hz / (1 - tolerance)  # the real rates the model is within `tolerance` of
    top = failed_hz if failed_hz is not None else float("inf")
    if lo <= sustained_hz and top <= hi:
        return "within"
    return "undecided" if lo <= top and hi >= sustained_hz else "not within"


def calibration_run(config: FarmConfig, rate_hz: float, events: int, table: Path, what: str) -> dict:
    """A real run whose per-event table calibrates the model (under the lock)."""
    with heavy_lock(f"{what}: calibration run, {events} events at {rate_hz:g} Hz"):
        summary = run_farm(with_overrides(config, readout={"rate_hz": rate_hz}), events, None, output_dir=None, events_table=table)
    (table.parent / "summary.json").write_text(json.dumps(summary, default=str))
    return summary


def calibration_run_with_cpu(config: FarmConfig, rate_hz: float, events: int, table: Path, what: str, index: int = 0,
                             own_servers: bool = False):
    """A real run at `rate_hz` with its per-event table and every farm process's CPU per
    decided event measured in the same run (the bench farm case's probe), under the lock.
    `index`: which of several calibration runs (each has its own seed). `own_servers`: the
    farm starts the local servers `config` asks for (their CPU counted together), instead of
    one server started here."""
    seed = sustained.repeat_seed(config.run.seed, (200 if own_servers else 100) + index)
    with heavy_lock(f"{what}: calibration run, {events} events at {rate_hz:.1f} Hz"):
        if own_servers:
            run = farm_run(config, None, rate_hz, events / rate_hz, seed, events_table=table)
        else:
            with local_server(config) as server:
                run = farm_run(config, server, rate_hz, events / rate_hz, seed, events_table=table)
    (table.parent / "summary.json").write_text(json.dumps(run.summary, default=str))
    return run


def measured_calibration(config: FarmConfig, rate_hz: float, fraction: float, events: int, table: Path, what: str,
                         index: int, name: str, own_servers: bool = False) -> tuple[Calibration, Any]:
    """One calibration run (`calibration_run_with_cpu`) and the calibration made from it, its
    CPU per process from the run itself; its provenance names the run. Returns both."""
    run = calibration_run_with_cpu(config, rate_hz, events, table, what, index, own_servers)
    cpu = calibrate.ProcessCpu(run.cpu_ms_per_event(),
                               f"the calibration run itself ({run.window_events} events decided at {rate_hz:g} Hz)")
    cal = calibrate.from_run_folder(table.parent, name=name, pileup=config.physics.pileup_mean, process_cpu=cpu,
                                    node_slots=one_host_slots(config))
    cal.provenance["calibration_run"] = {"rate_hz": rate_hz, "fraction_of_measured_saturation": fraction,
                                         "events": run.events, "process_cpu_ms_per_event": cpu.ms_per_event,
                                         "other_cores": round(run.elsewhere["other_cores"], 3),
                                         "total_p50_p99_ms": [run.summary["latency_ms"]["total"][p] for p in ("p50", "p99")],
                                         "when": "before the real runs at the three rates" if index == 0 else "after them"}
    return cal, run


def pooled_runs(runs: list[tuple[Calibration, Any]], tables: list[Path]) -> tuple[Calibration, dict, dict]:
    """Calibration runs taken together (`calibrate.pooled`): the calibration, with the runs'
    CPU per process (weighted by their decided events), p50/p99 of their events pooled and
    the most other load any saw in its provenance; a summary of them (the model is compared
    with it at the calibration rate) and the figures the case records."""
    cals = [c for c, _ in runs]
    cal = calibrate.pooled(cals) if len(cals) > 1 else cals[0]
    decided = [r.window_events for _, r in runs]  # the events each run's CPU per event is over
    cpu_ms = {name: float(np.average([r.cpu_ms_per_event()[name] for _, r in runs], weights=decided))
              for name in runs[0][1].cpu_ms_per_event()}
    totals = np.concatenate([table_total_ms(str(t)) for t in tables])
    p50_p99 = [float(np.percentile(totals, q)) for q in (50, 99)]
    other_cores = max(r.elsewhere["other_cores"] for _, r in runs)
    events = int(sum(r.events for _, r in runs))
    cal.provenance["calibration_run"] = {**runs[0][0].provenance["calibration_run"], "events": events,
                                         "process_cpu_ms_per_event": cpu_ms, "runs": len(runs), "other_cores": other_cores,
                                         "total_p50_p99_ms": p50_p99,
                                         "when": ("one run before the real runs at the three rates" if len(runs) == 1 else
                                                  f"{len(runs)} runs pooled: one before the real runs at the three "
                                                  "rates, the others after them")}
    summary = {"events": {"l1_accepted": events},
               "latency_ms": {"worker_total": {"mean": float(np.average(
                                  [r.summary["latency_ms"]["worker_total"]["mean"] for _, r in runs], weights=decided))},
                              "total": {"p50": p50_p99[0], "p99": p50_p99[1]}}}
    extra = {"process_cpu_ms_per_event": cpu_ms, "other_cores": other_cores,
             "worker_cpu_ms_per_event": float(sum(cal.events[s].mean() for s in CPU_STEPS))}
    if len(runs) > 1:
        extra["runs"] = [{"events": r.events, "when": c.provenance["calibration_run"]["when"],
                          "total_p50_p99_ms": c.provenance["calibration_run"]["total_p50_p99_ms"],
                          "worker_total_mean_ms": r.summary["latency_ms"]["worker_total"]["mean"]} for c, r in runs]
    return cal, summary, extra


class CalibrationSeries:
    """A case's calibration runs at `rate_hz` (--calibration-runs of them, --calibration-events
    together): `before()` makes the first and the low-rate run, ahead of the case's real runs;
    `pooled()` the others, after them, then pools them (`pooled_runs`) and saves the
    calibration to `out`. This shared host's speed drifts over minutes: a slow or fast spell
    then weighs on the calibration by its share of the events, as it does on the real runs.
    `label` names the runs; `servers` (> 1) is recorded in the calibration's provenance."""

    def __init__(self, config: FarmConfig, rate_hz: float, saturation_hz: float, args: argparse.Namespace, work: Path,
                 label: str, name: str, out: str, folder: str = "calibration", own_servers: bool = False, servers: int = 1):
        n, events = args.calibration_runs, args.calibration_events
        if n < 1 or events / n < MIN_CALIBRATION_RUN_EVENTS:
            raise SystemExit(f"--calibration-runs {n} with --calibration-events {events}: each run needs "
                             f">= {MIN_CALIBRATION_RUN_EVENTS} events (at least one run)")
        self.config, self.rate_hz, self.saturation_hz, self.args, self.work = config, rate_hz, saturation_hz, args, work
        self.label, self.name, self.out, self.folder = label, name, out, folder
        self.own_servers, self.servers = own_servers, servers
        self.runs: list[tuple[Calibration, Any]] = []
        self.low: dict | None = None

    @property
    def tables(self) -> list[Path]:
        return [self.work / f"{self.folder}-{k}" / "events.parquet" for k in range(self.args.calibration_runs)]

    def _run(self) -> None:
        k, n = len(self.runs), self.args.calibration_runs
        cal, run = measured_calibration(self.config, self.rate_hz, self.args.calibration_fraction,
                                        int(math.ceil(self.args.calibration_events / n)), self.tables[k],
                                        f"{self.label} ({k + 1} of {n})" if n > 1 else self.label, k, self.name,
                                        self.own_servers)
        if self.servers > 1:
            cal.provenance["calibration_run"]["servers"] = self.servers
        self.runs.append((cal, run))

    def before(self) -> None:
        """The first calibration run and the low-rate run."""
        self._run()
        self.low = low_rate_run(self.config, self.saturation_hz, self.args, self.work, self.label, self.own_servers)

    def pooled(self) -> tuple[Calibration, dict, dict]:
        """The other runs, then the calibration of them all (saved), their summary and the
        figures the case records (`pooled_runs`)."""
        while len(self.runs) < self.args.calibration_runs:
            self._run()
        cal, summary, extra = pooled_runs(self.runs, self.tables)
        if self.servers > 1:
            cal.provenance["calibration_run"]["servers"] = self.servers
        if self.low:
            cal.provenance["low_rate_run"] = extra["low_rate_run"] = self.low
        save(cal, self.out)
        return cal, summary, extra


def low_rate_run(config: FarmConfig, saturation_hz: float, args: argparse.Namespace, work: Path, what: str,
                 own_servers: bool = False) -> dict | None:
    """A real run at LOW_RATE_FRACTION of the saturation (--low-rate-events of them; 0: none):
    its rate, events and mean worker time, which `calibrate.scale_for_low_rate` matches."""
    if args.low_rate_events <= 0:
        return None
    rate = round(LOW_RATE_FRACTION * saturation_hz, 1)
    table = work / f"low-rate-{what.split(':')[0].replace(' ', '-')}" / "events.parquet"
    with heavy_lock(f"{what}: low-rate calibration run, {args.low_rate_events} events at {rate:g} Hz"):
        if own_servers:
            summary = run_farm(with_overrides(config, readout={"rate_hz": rate}), args.low_rate_events, None, output_dir=None,
                               events_table=table)
        else:
            with local_server(config) as server:
                summary = run_farm(with_overrides(config, readout={"rate_hz": rate}, inference={"triton_url": server.grpc_url}),
                                   args.low_rate_events, None, output_dir=None, events_table=table)
    steady_ms, whole_ms = steady_worker_mean_ms(table), summary["latency_ms"]["worker_total"]["mean"]
    print(f"{what}: low-rate run at {rate:g} Hz: worker time mean {steady_ms:.2f} ms after its first "
          f"{STEADY_SKIP:.0%} of events ({whole_ms:.2f} ms over all)", flush=True)
    return {"rate_hz": rate, "events": summary["events"]["l1_accepted"], "worker_total_mean_ms": steady_ms,
            "worker_total_mean_ms_all_events": whole_ms, "other_cores": PHASES[-1]["other_cores"] if PHASES else None,
            "total_p50_p99_ms": [summary["latency_ms"]["total"][p] for p in ("p50", "p99")]}


def steady_worker_mean_ms(table: Path) -> float:
    """The mean worker time of a run's events after its first STEADY_SKIP of them (in Level-1
    order): a freshly started server's and worker's first events are not the steady state."""
    import pyarrow.parquet as pq

    cols = pq.read_table(table, columns=["l1_time_ns", "worker_total_ms"]).to_pydict()
    order = np.argsort(np.array(cols["l1_time_ns"], np.int64), kind="stable")
    worker = np.array([np.nan if v is None else v for v in cols["worker_total_ms"]], np.float64)[order]
    steady = worker[int(len(worker) * STEADY_SKIP):]
    return float(np.nanmean(steady))


def model_calibration(cal: Calibration, farm: FarmSpec, cal_rate_hz: float, pattern: str,
                      args: argparse.Namespace) -> Calibration:
    """`cal` as a case's model uses it, on the farm its runs were made on at their rate:
    deflated for the contention the model adds there (--deflate-contention), then with the
    steps' factor at a low rate where its provenance holds a low-rate run
    (`calibrate.scale_for_low_rate`)."""
    if args.deflate_contention:
        cal = calibrate.deflate_contention(cal, farm, cal_rate_hz, pattern=pattern)
    low = cal.provenance.get("low_rate_run")
    if not low or not farm.idle_slowdown:
        return cal
    return calibrate.scale_for_low_rate(cal, farm, low["rate_hz"], low["worker_total_mean_ms"], cal_rate_hz, pattern=pattern)


def real_saturation(case: str, config: FarmConfig, args: argparse.Namespace) -> dict:
    with heavy_lock(f"{case}: real saturation search (farm/scan.py)"):
        scan = run_scan(config, None, 8.0, search_steps=args.search_steps, min_rate=args.min_rate, max_rate=args.max_rate)
    print(f"{case}: real sustained up to {scan['saturation_rate_hz']} Hz ({scan['search_stopped']})", flush=True)
    return scan


def simulate_with_totals(cal: Calibration, farm: FarmSpec, rate_hz: float, events: int, seed: int,
                         pattern: str, arrival_seed: int = -1) -> tuple[dict, np.ndarray]:
    """One model run at `rate_hz`: its summary and its decided events' total latencies.
    `arrival_seed` >= 0: the Level-1 times of a real run with that run.seed."""
    arrivals = ArrivalSpec(rate_hz=rate_hz, pattern=pattern, seed=arrival_seed)
    model = FarmModel(PlanSpec(arrivals, farm, events=events, seed=seed), cal)
    model.run()
    return summarise(model), total_latency_ms(model)


def model_side(case: str, cal: Calibration, farm: FarmSpec, pattern: str, args: argparse.Namespace, cal_rate_hz: float,
               rates: list[float]) -> dict:
    """The model's figures of a case: at the calibration rate, its saturation (the scan's
    search and run lengths, `sustained.run_seconds`), p50/p99 and step medians at `rates`."""
    cal = model_calibration(cal, farm, cal_rate_hz, pattern, args)
    # None: the steps as the calibration runs timed them
    deflation = {"stretch": cal.host.get("contention_stretch")} if args.deflate_contention else None
    model_at_cal = run_rate(cal, farm, cal_rate_hz, MODEL_EVENTS_AT_RATE, seed=7, pattern=pattern)
    t0 = time.monotonic()
    # one run per probe, as the real search (`real_saturation`) makes; --repeats is the rates' runs
    model_sat = saturation(cal, farm, pattern=pattern, min_hz=args.min_rate, repeats=1,
                           events=lambda rate: int(sustained.run_seconds(rate, RUN_OVERHEAD_S) * rate))
    model_search_s = time.monotonic() - t0
    print(f"{case}: model sustained up to {model_sat.sustained_hz} Hz ({model_sat.stopped}; {model_search_s:.0f} s)", flush=True)
    at = {}
    for rate in rates:
        m, totals = simulate_with_totals(cal, farm, rate, MODEL_EVENTS_AT_RATE, seed=7, pattern=pattern)
        at[rate] = {"p50": m["latency_ms"]["total"]["p50"], "p99": m["latency_ms"]["total"]["p99"], "totals": totals,
                    "steps_p50": {k: m["latency_ms"].get(k, {}).get("p50") for k in STEPS_COMPARED}}
    return {"model_total_p50_p99_ms": [model_at_cal["latency_ms"]["total"][p] for p in ("p50", "p99")],
            "model_saturation_hz": model_sat.sustained_hz, "model_failed_hz": model_sat.failed_hz,
            "model_search": model_sat.stopped, "model_search_s": model_search_s,
            "contention_deflation": deflation, "low_rate_step_scale": cal.host.get("low_rate_step_scale"), "at": at}


def real_repeat(case: dict) -> dict | None:
    """The real farm against itself: where the calibration's rate is one of the three rates,
    the calibration's runs (pooled) and the real run at that rate, with their total p50/p99,
    the model's at that rate, and how far the calibration is from the real run (%): a spread
    the model, calibrated on the first, cannot be expected to beat against the second."""
    cal = case.get("calibration") or {}
    row = next((r for r in case.get("rates", []) if r.get("rate_hz") == cal.get("rate_hz")), None)
    if row is None or not cal.get("total_p50_ms") or not cal.get("total_p99_ms"):
        return None
    first, later = (cal["total_p50_ms"], cal["total_p99_ms"]), (row["real_p50_ms"], row["real_p99_ms"])
    return {"rate_hz": row["rate_hz"], "calibration_run_p50_p99_ms": list(first), "rates_run_p50_p99_ms": list(later),
            "calibration_run_vs_rates_run_pct": [round(100 * (a - b) / b, 1) for a, b in zip(first, later)],
            "model_p50_p99_ms": [row.get("model_p50_ms"), row.get("model_p99_ms")],
            "model_vs_calibration_run_pct": [round(100 * (m - a) / a, 1) if m is not None else None
                                             for m, a in zip((row.get("model_p50_ms"), row.get("model_p99_ms")), first)]}


def put_model(out: dict, model: dict) -> dict:
    """A case's model figures (from `model_side`) beside its real ones."""
    out["calibration"]["model_total_p50_p99_ms"] = model["model_total_p50_p99_ms"]
    out.update({k: model[k] for k in ("model_saturation_hz", "model_failed_hz", "model_search", "model_search_s")})
    # the real saturation is bracketed by the search: sustained at real_saturation_hz, failed at real_failed_hz
    out["real_failed_hz"] = real_failed_hz(out.get("real_probes") or [], out.get("real_saturation_hz"))
    out["saturation_verdict"] = saturation_verdict(out["model_saturation_hz"], out.get("real_saturation_hz"), out["real_failed_hz"])
    out["saturation_ok"] = out["saturation_verdict"] == "within"
    out["saturation_within_of_sustained"] = bool(out["model_saturation_hz"]) and within(
        out["model_saturation_hz"], out.get("real_saturation_hz") or 0.0, SATURATION_TOLERANCE)
    for row in out["rates"]:
        m = model["at"][row["rate_hz"]]
        steps = row.get("real_steps_p50_ms", {})
        row.update(judge_row(row, m["p50"], m["p99"], m["totals"]), model_steps_p50_ms={k: m["steps_p50"].get(k) for k in steps})
    out["real_repeat"] = real_repeat(out)
    out["real_steps_by_rate"] = steps_against_rate(out)
    out["contention_deflation"] = model.get("contention_deflation")
    out["low_rate_step_scale"] = model.get("low_rate_step_scale")
    return out


def compare(case: str, config: FarmConfig, calibrated, farm: FarmSpec, args: argparse.Namespace,
            cal_rate_hz: float, real_scan: dict) -> tuple[dict, Calibration]:
    """The model's saturation beside the measured one (farm/scan.py's search), and p50/p99 at
    three rates below the measured saturation, model and real at the same rates.
    `calibrated()`: (calibration, its run's summary, more calibration figures), called after
    the real runs at the three rates (a calibration may take runs after them)."""
    real_sat = real_scan["saturation_rate_hz"]
    rates = [round(f * real_sat, 1) for f in FRACTIONS]
    reals = real_rates(case, config, rates, args)
    cal, cal_summary, extra = calibrated()
    out = {"case": case, "workers": farm.workers_per_node, "slots": farm.slots_per_worker, "host_cores": os.cpu_count(),
           "calibration": {"rate_hz": cal_rate_hz, "events": cal_summary["events"]["l1_accepted"],
                           "worker_total_mean_ms": cal_summary["latency_ms"]["worker_total"]["mean"],
                           "total_p50_ms": cal_summary["latency_ms"]["total"]["p50"],
                           "total_p99_ms": cal_summary["latency_ms"]["total"]["p99"], **extra},
           "real_saturation_hz": real_sat, "real_search": real_scan["search_stopped"],
           "real_probes": probe_rows(real_scan),
           "rates": reals}
    out = put_model(out, model_side(case, cal, farm, config.readout.pattern, args, cal_rate_hz, rates))
    for r in out["rates"]:
        print(f"{case} at {r['rate_hz']:g} Hz: p50 real {r['real_p50_ms']:.1f} model {r['model_p50_ms']:.1f}; "
              f"p99 real {r['real_p99_ms']:.1f} model {r['model_p99_ms']:.1f}", flush=True)
    return out, cal


def real_rates(case: str, config: FarmConfig, rates: list[float], args: argparse.Namespace) -> list[dict]:
    """Real runs at `rates` (one locked phase, one scan: one server for the three runs, as
    before; each run as long as `args.rate_events` events take at the lowest rate, so the
    lowest rate's p99 rests on 1 % of them and the higher rates' on more), again up to
    `args.retries` times while other processes used more than RETRY_OTHER_CORES meanwhile (the
    last attempt is kept). Each run's per-event table gives its events' total latencies: kept
    (in REAL_LATENCIES) and the p50/p99 bootstrap intervals from them."""
    seconds = args.rate_events / min(rates) + RUN_OVERHEAD_S
    with tempfile.TemporaryDirectory(prefix="validate-plan-rates-") as tmp:
        for attempt in range(args.retries + 1):
            with heavy_lock(f"{case}: real runs at {rates} Hz, {seconds:.0f} s each"):
                real_points = run_scan(config, rates, seconds, repeats=args.repeats,
                                       events_tables=Path(tmp) / f"try{attempt}" / "events.parquet")["points"]
            if PHASES[-1]["other_cores"] <= RETRY_OTHER_CORES:
                break
            if attempt < args.retries:
                print(f"{case}: other processes used {PHASES[-1]['other_cores']:.2f} cores during the real runs: again", flush=True)
        rows = []
        for rate in rates:
            reals = [p for p in real_points if p["rate_hz"] == rate]
            steps = [k for k in STEPS_COMPARED if f"{k}_p50_ms" in reals[0]]
            per_run = [table_total_ms(p["events_table"]) for p in reals]
            totals = np.concatenate(per_run)
            row = {"rate_hz": rate, "real_p50_ms": sorted(p["total_p50_ms"] for p in reals)[len(reals) // 2],
                   "real_p99_ms": sorted(p["total_p99_ms"] for p in reals)[len(reals) // 2],
                   "real_events": [p["decided_events"] for p in reals],
                   "real_steps_p50_ms": {k: reals[0][f"{k}_p50_ms"] for k in steps}}
            if len(reals) > 1:  # several runs: their events pooled, as the intervals are
                row.update(real_p50_ms=float(np.percentile(totals, 50)), real_p99_ms=float(np.percentile(totals, 99)))
            row.update(real_intervals(per_run))
            REAL_LATENCIES[(case_key({"case": case}), rate)] = totals
            rows.append(row)
    return rows


def table_total_ms(path: str | None) -> np.ndarray:
    """The decided events' total latencies (Level-1 accept to decision, ms) of one run's
    per-event table: the values its summary's `latency_ms.total` comes from."""
    import pyarrow.parquet as pq

    if not path or not Path(path).exists():
        return np.array([], np.float64)
    cols = pq.read_table(path, columns=["l1_time_ns", "decided_ns"]).to_pydict()
    return np.array([(d - t) / 1e6 for t, d in zip(cols["l1_time_ns"], cols["decided_ns"]) if t is not None and d is not None],
                    np.float64)


def real_intervals(runs: list[np.ndarray]) -> dict:
    """The 95 % intervals of the real p50 and p99 of `runs` pooled (each run's events'
    total latencies, in event order): a moving-block bootstrap, blocks of consecutive events
    within each run (a farm's slow events come in spells, which an event-by-event bootstrap
    takes for independent events), and how many events the p99 rests on."""
    n = int(sum(len(r) for r in runs))
    if n < 100:
        return {}
    block = percentile_interval.BLOCK_EVENTS
    return {"real_total_events": n, "real_p99_events_beyond": round(percentile_interval.events_beyond(n, 99), 1),
            "real_p50_interval_ms": list(percentile_interval.block_bootstrap_interval(runs, 50)),
            "real_p99_interval_ms": list(percentile_interval.block_bootstrap_interval(runs, 99)),
            "real_interval_method": f"moving-block bootstrap over the {len(runs)} run(s)' {n} events, blocks of {block} "
                                    f"consecutive events within a run ({percentile_interval.BOOTSTRAP_RESAMPLES} resamples)"}


def real_intervals_again(key: str, case: dict, path: Path) -> None:
    """A recorded case's real intervals recomputed (`real_intervals`) from the events kept in
    `path`, where it holds the case's rates (a record from before the intervals' method
    changed); the rows are left as they are otherwise."""
    try:
        kept = json.loads(path.read_text())["cases"].get(key, {})
    except (OSError, json.JSONDecodeError, KeyError, AttributeError):
        return
    for row in case["rates"]:
        totals = kept.get(f"{row['rate_hz']:g}")
        if totals:
            row.update(real_intervals(split_runs(np.asarray(totals, np.float64), row)))


def split_runs(totals: np.ndarray, row: dict) -> list[np.ndarray]:
    """A rate's pooled real latencies (validation-real-latencies.json) back into its runs, by
    the runs' event counts the row names (`real_events`; a kill row's `runs` of `events`)."""
    sizes = [int(x) for x in row.get("real_events") or []]
    if not sizes and row.get("runs") and len(totals) == int(row["runs"]) * int(row.get("events", 0)):
        sizes = [int(row["events"])] * int(row["runs"])
    if sum(sizes) != len(totals):
        return [totals]
    return np.split(totals, np.cumsum(sizes)[:-1])


def approximate_intervals(row: dict, n: int, model_totals: np.ndarray) -> dict:
    """For a row measured before the per-event latencies were kept: the distribution-free
    ranks of the 95 % interval (binomial order statistics of n events), turned into values by
    the model's own distribution around the same percentiles (an approximation: the real
    tail's shape is not known)."""
    out = {"real_total_events": n, "real_p99_events_beyond": round(percentile_interval.events_beyond(n, 99), 1),
           "real_interval_method": f"approximate: the 95 % order-statistic ranks of {n} events, as values by the model's "
                                   "distribution around the percentile (the run kept no per-event latencies)"}
    for q in (50, 99):
        ranks = percentile_interval.rank_interval(n, q)
        out[f"real_p{q}_interval_ms"] = list(percentile_interval.scaled_interval(row[f"real_p{q}_ms"], model_totals, n, q))
        out[f"real_p{q}_interval_ranks"] = list(ranks)
    return out


def judge_row(row: dict, model_p50: float, model_p99: float, model_totals: np.ndarray) -> dict:
    """A rate's model figures beside the real ones: within the 15 % target, and within the
    real percentile's own 95 % interval (a model figure inside it is no model error)."""
    if row.get("real_interval_method", "").startswith("approximate") or "real_p99_interval_ms" not in row:
        n = row.get("real_total_events") or int(sum(row.get("real_events") or [row.get("events", 0)]))
        row.update(approximate_intervals(row, n, model_totals))
    out = {}
    for q, model in ((50, model_p50), (99, model_p99)):
        lo, hi = row[f"real_p{q}_interval_ms"]
        ok = within(model, row[f"real_p{q}_ms"], LATENCY_TOLERANCE)
        in_interval = lo <= model <= hi
        # the target widened by the real figure's own uncertainty: within 15 % of some value in its interval
        in_widened = lo * (1 - LATENCY_TOLERANCE) <= model <= hi * (1 + LATENCY_TOLERANCE)
        out.update({f"model_p{q}_ms": model, f"p{q}_ok": ok, f"p{q}_in_real_interval": in_interval,
                    f"p{q}_within_target_of_interval": in_widened})
    return out


def one_host_slots(config: FarmConfig) -> int:
    """The event slots the one-host run's node offers."""
    return node_slots(config, config.worker.resolved_count)


def default_config() -> FarmConfig:
    return with_overrides(load_config(None), output={"write_streams": False})


def default_farm(config: FarmConfig, options: dict | None = None) -> FarmSpec:
    return replace(from_farm_config(config, config.worker.count or os.cpu_count() or 1, host_cores=os.cpu_count() or 1),
                   **(options or {}))


def farm_options(args: argparse.Namespace) -> dict:
    """The model's farm keys for every case: HOST_SCHEDULER, then --farm-option KEY=VALUE (a
    mechanism switched on or off), typed as the FarmSpec field's default."""
    defaults = FarmSpec()
    out = dict(HOST_SCHEDULER)
    for item in args.farm_option:
        key, _, value = item.partition("=")
        if not hasattr(defaults, key) or key == "kills":
            raise SystemExit(f"--farm-option {item!r}: no farm key {key!r} (see trigger_sim/planning/spec.py FarmSpec)")
        kind = type(getattr(defaults, key))
        out[key] = value.lower() in ("1", "true", "yes") if kind is bool else kind(value)
    return out


def slots_config(server_url: str) -> FarmConfig:
    return with_overrides(load_config(None), output={"write_streams": False}, worker={"slots": SLOTS},
                          inference={"triton_url": server_url, "models": ("jet_tagger",)})


def slots_farm(config: FarmConfig, options: dict | None = None) -> FarmSpec:
    return replace(from_farm_config(config, config.worker.count or os.cpu_count() or 1, host_cores=os.cpu_count() or 1),
                   slots_per_worker=SLOTS, **(options or {}))


def slots_calibration(folder: Path, config: FarmConfig) -> tuple[Calibration, float]:
    """The slots case's calibration from its one-slot run's folder, and the call's round trip
    beyond the sleep (the measured median minus the sleep)."""
    import pyarrow.parquet as pq

    cols = pq.read_table(folder / "events.parquet", columns=["jet_tagger_ms", "jet_tagger_path"]).to_pydict()
    called = [t for t, p in zip(cols["jet_tagger_ms"], cols["jet_tagger_path"]) if p == "triton" and t is not None]
    rtt_ms = max(float(np.median(called)) - SLEEP_MS, 0.0)
    cal = calibrate.from_run_folder(folder, name="validation-slots", pileup=config.physics.pileup_mean,
                                    benchmarks=ROOT / "benchmarks.json", rtt_ms=rtt_ms, local_models=("edge_classifier",),
                                    node_slots=one_host_slots(with_overrides(config, worker={"slots": 1})))
    return calibrate.with_fixed_server(cal, "jet_tagger", SLEEP_MS, SLEEP_INSTANCES), rtt_ms


def default_farm_case(args: argparse.Namespace, work: Path) -> tuple[dict, Calibration]:
    """The default farm: the measured saturation, calibration runs at 0.8 of it (each
    process's CPU per event measured in each), then the comparison. With several calibration
    runs (`--calibration-runs`) the first is made before the real runs at the three rates and
    the others after them, and the calibration pools them (`calibrate.pooled`): a spell in
    which this shared host runs slower or faster weighs by its share of the events, as it
    does on the real runs it is compared with. Returns the case and its calibration (the kill
    case and --ship-calibration use it)."""
    case = CASE_NAMES["default"]
    config = default_config()
    real_scan = real_saturation(case, config, args)
    real_sat = real_scan["saturation_rate_hz"]
    if not real_sat:
        return {"case": case, "error": "the real farm sustained no rate", "real_scan": real_scan}, None
    cal_rate = round(args.calibration_fraction * real_sat, 1)
    series = CalibrationSeries(config, cal_rate, real_sat, args, work, case, "cpu-this-host-pu20", args.calibration_out)
    series.before()
    out, cal = compare(case, config, series.pooled, default_farm(config, farm_options(args)), args, cal_rate, real_scan)
    return out, cal


def slots_case(args: argparse.Namespace, work: Path) -> dict:
    """The default farm's workers with event slots; the jet tagger on a server that answers after a fixed time
    (the overlap bench case's sleep model), the edge classifier in the worker. Calibrated from
    a one-slot run: the worker's CPU per event from its per-event table, the server's time the
    sleep, the call's round trip beyond it the measured median minus the sleep; the farm's own
    CPU per event (readout, builder, collector) from benchmarks.json at its sustainable rate."""
    case = CASE_NAMES["slots"]
    with heavy_lock(f"{case}: starting the sleep-model server"):
        server = TritonServer(sleep_repository(work / "sleep-models", SLEEP_MS), START_TIMEOUT_S)
        server.start()
    try:
        config = slots_config(server.grpc_url)
        table = work / "slots-calibration" / "events.parquet"
        # one slot: each call's time is the server's sleep plus the round trip, not set aside
        cal_summary = calibration_run(with_overrides(config, worker={"slots": 1}), args.slots_calibration_rate,
                                      args.slots_calibration_events, table, case)
        cal, rtt_ms = slots_calibration(table.parent, config)
        save(cal, args.slots_calibration_out)
        real_scan = real_saturation(case, config, args)
        if not real_scan["saturation_rate_hz"]:
            return {"case": case, "error": "the real farm sustained no rate", "real_scan": real_scan}
        extra = {"rtt_ms": rtt_ms, "server_ms": SLEEP_MS, "server_instances": SLEEP_INSTANCES,
                 "worker_cpu_ms_per_event": float(sum(cal.events[s].mean() for s in CPU_STEPS))}
        out, _ = compare(case, config, lambda: (cal, cal_summary, extra), slots_farm(config, farm_options(args)), args,
                         args.slots_calibration_rate, real_scan)
        return out
    finally:
        server.stop()


def server_start_cpu(config: FarmConfig, repeats: int = 3) -> dict:
    """A local server's start as the keeper restarts one (launch, load the models, ready): its
    CPU and wall time, `repeats` times, and the median CPU (s)."""
    runs = []
    for _ in range(repeats):
        server = local_server(config)
        t0 = time.monotonic()
        server.launch()
        try:
            server.wait_ready()
            wall_s = time.monotonic() - t0
            runs.append({"cpu_s": session_cpu_s(server.proc.pid), "wall_s": wall_s})
        finally:
            server.stop()
    return {"cpu_s": float(np.median([r["cpu_s"] for r in runs])), "starts": runs}


def restart_cpu_seconds(case: dict, args: argparse.Namespace) -> float:
    """The restart CPU the kill case's model uses: --restart-cpu-s; else the median of what
    the case's kill runs measured their restarts take until ready (on the loaded host, where
    a start took 1.1-3.3 s against 0.8-0.9 alone); else the case's start measured alone;
    else this host's RESTART_CPU_S."""
    if args.restart_cpu_s is not None:
        return args.restart_cpu_s
    in_runs = [x for row in case.get("rates") or [] for x in row.get("restart_cpu_s_per_run") or []
               if x is not None and math.isfinite(x)]
    if in_runs:
        return float(np.median(in_runs))
    return float((case.get("restart_cpu") or {}).get("cpu_s", RESTART_CPU_S))


def kill_config(rate_hz: float = 60.0) -> FarmConfig:
    """The kill case's farm as `farm.fault_scenarios.local_server_killed` runs it: two local
    servers the farm starts (and restarts), the scenarios' breaker."""
    return with_overrides(local_servers_config(rate_hz, 2), output={"write_streams": False})


def kill_farm(rate_hz: float, n: int, restart_s: float, farm_options: dict | None = None, restart_cpu_s: float = 0.0,
              killed: bool = True, restart_processes: int = 0) -> FarmSpec:
    """The kill case's farm in the model: two servers; with `killed`, server 0 killed once
    KILL_AT of the run's `n` events are decided (as `local_server_killed` kills: run control
    acts on its next tick after that decision, within a millisecond or so). With
    `restart_processes` > 0 its restart is contended: that many processes take
    `restart_cpu_s` of CPU as the host's cores allow, back when done and `restart_s` (a start
    on an idle host) has passed; otherwise back `restart_s` later, taking `restart_cpu_s` of
    CPU paced over it."""
    config = kill_config(rate_hz)
    back = restart_s < 1e8
    contended = restart_processes > 0 and back
    kill = ServerKill(server=0, at_s=0.0, after_decided=max(int(n * KILL_AT), 1), restart_s=restart_s,
                      restart_cpu_cores=restart_cpu_s / restart_s if back and not contended and restart_s > 0 else 0.0,
                      restart_cpu_s=restart_cpu_s if contended else 0.0, restart_processes=restart_processes if contended else 0)
    return replace(from_farm_config(config, config.worker.count, host_cores=os.cpu_count() or 1), servers=2,
                   kills=(kill,) if killed else (), **(farm_options or {}))


class Restart(NamedTuple):
    """How the kill case's model restarts the killed server. `contended`: as many processes
    as the server has model instances (its backends load at once) take `cpu_s` (a start's
    CPU: `restart_cpu_seconds`) as the host's cores allow, back at the soonest after
    `alone_s` (a start's wall time alone); else each real run's measured restart is
    replayed, `cpu_s` paced over it."""

    cpu_s: float
    alone_s: float = 0.0
    processes: int = 0  # 0: replay each run's measured restart

    @property
    def contended(self) -> bool:
        return self.processes > 0


def kill_restart(case: dict, cal: Calibration, args: argparse.Namespace) -> Restart:
    """The kill case's restart in the model (`--kill-restarts`), from the case's own start
    measurement (`restart_cpu`) and the calibration's server (its model instances)."""
    cpu_s = restart_cpu_seconds(case, args)
    if getattr(args, "kill_restarts", "replayed") != "contended":
        return Restart(cpu_s)
    starts = (case.get("restart_cpu") or {}).get("starts") or []
    alone_s = float(np.median([x["wall_s"] for x in starts])) if starts else RESTART_ALONE_S
    options = farm_options(args) if hasattr(args, "farm_option") else {}
    _, kind = server_kind(cal, str(options.get("server_kind", "")))
    return Restart(cpu_s, alone_s, sum(m.instances for m in kind.models.values()))


def kill_calibration(cal: Calibration, args: argparse.Namespace) -> Calibration:
    """The calibration as the kill case's model uses it, on the farm its runs were made on (the
    two-server farm for the case's own calibration, the one-server default farm for the default
    farm's): deflated for the contention at their rate (--deflate-contention), and with the
    steps' factor at a low rate where it holds a low-rate run."""
    made = cal.provenance.get("calibration_run") or cal.provenance.get("run") or {}
    rate = made.get("rate_hz")
    if not rate:
        print("two servers, one killed: the calibration names no single run rate: its steps are used as measured", flush=True)
        return cal
    if made.get("servers") == 2:
        farm, pattern = kill_farm(float(rate), 1, 1e9, farm_options(args), killed=False), kill_config().readout.pattern
    else:
        farm, pattern = default_farm(default_config(), farm_options(args)), default_config().readout.pattern
    return model_calibration(cal, farm, float(rate), pattern, args)


def kill_model(cal: Calibration, rate: float, n: int, runs_paired: list[tuple[int, float]], farm_options: dict | None,
               restart: Restart) -> tuple[list[dict], np.ndarray]:
    """The kill case's model at `rate` (`kill_farm`): KILL_MODEL_SEEDS seeds of `n` events,
    each one real run's in turn (`runs_paired`: each run's seed and restart, `kill_runs`):
    that run's Level-1 times, the kill after the KILL_AT-th decision as in the real run, and
    the restart as `restart` says (contended on the host's cores, or that run's measured
    one; a run whose keeper measured no restart: never back). The runs' Poisson arrivals
    differ: one run's dense spell at the kill or after it makes its tail (seed 2's first 800
    events hold three spells of 40-60 events at 1.5-1.9 x the mean rate); the seeds replaying
    one run differ only in the events drawn from the calibration. Returns the summaries and
    the events' total latencies pooled."""
    runs = []
    for seed in range(1, KILL_MODEL_SEEDS + 1):
        arrival_seed, restart_s = runs_paired[(seed - 1) % len(runs_paired)]
        if restart.contended and restart_s < 1e8:
            farm = kill_farm(rate, n, restart.alone_s, farm_options, restart.cpu_s, restart_processes=restart.processes)
        else:
            farm = kill_farm(rate, n, restart_s, farm_options, restart.cpu_s)
        runs.append(simulate_with_totals(cal, farm, rate, n, seed, kill_config().readout.pattern, arrival_seed=arrival_seed))
    return [m for m, _ in runs], np.concatenate([t for _, t in runs])


def kill_runs(row: dict) -> list[tuple[int, float]]:
    """The real runs at a kill-case rate as (run.seed, restart s), in run order: the seeds
    the row names (else those `kill_real_row` gives its runs), each with its own run's
    restart (`restart_s_per_run`; None, a run whose keeper measured none: 1e9, never back).
    A record from before that field: its `restarts_s` one per run where they are as many as
    the runs, else their median (`restart_s`) for every run (a run with none or two would
    shift the rest onto other runs' restarts)."""
    runs = int(row.get("runs") or 0)
    seeds = row.get("real_seeds") or [kill_run_seed(k) for k in range(max(runs, 1))]
    per_run = row.get("restart_s_per_run")
    if per_run is None:
        flat = [float(x) for x in row.get("restarts_s") or []]
        per_run = flat if len(flat) == len(seeds) else [row.get("restart_s", 1e9)] * len(seeds)
    if len(per_run) != len(seeds):
        raise ValueError(f"kill case at {row.get('rate_hz')} Hz: {len(per_run)} restarts for {len(seeds)} runs")
    return [(int(seed), 1e9 if r is None else float(r)) for seed, r in zip(seeds, per_run)]


def restart_record(restart: Restart) -> dict:
    """How the record's kill model restarted the server, in words and numbers."""
    if not restart.contended:
        return {"kind": "replayed", "cpu_s": restart.cpu_s,
                "how": "each real run's measured restart replayed, the start's CPU paced over it"}
    return {"kind": "contended", "cpu_s": restart.cpu_s, "alone_s": restart.alone_s, "processes": restart.processes,
            "how": (f"{restart.processes} processes (the server's model instances) take {restart.cpu_s:.2f} CPU s as the "
                    f"host's cores allow; back when done, {restart.alone_s:.2f} s (a start alone) at the soonest")}


def kill_run_seed(repeat: int) -> int:
    """The run.seed of the kill case's `repeat`-th real run at a rate (0, 1, ...)."""
    return sustained.repeat_seed(1, repeat)


def kill_model_figures(models: list[dict], totals: np.ndarray, row: dict) -> dict:
    """The model's p50/p99 over its seeds' events pooled (as the real runs' are), beside the real figures."""
    steps, runs = STEPS_COMPARED, kill_runs(row)
    m50, m99 = (float(np.percentile(totals, q)) for q in (50, 99))
    return {**judge_row(row, m50, m99, totals),
            "model_p50_p99_ms_per_seed": [[m["latency_ms"]["total"][p] for p in ("p50", "p99")] for m in models],
            # the seeds that replayed each real run (its arrivals and restart), in run order
            "model_p99_ms_per_real_run": [[models[i]["latency_ms"]["total"]["p99"] for i in range(k, len(models), len(runs))]
                                          for k in range(len(runs))],
            # each real run's restart as the model's seeds replaying it had it (kill to back, s)
            "model_restart_s_per_real_run": [[r for i in range(k, len(models), len(runs))
                                              for r in models[i]["model"]["servers"][0].get("restarts_s", [])]
                                             for k in range(len(runs))],
            "model_fallback_fraction": float(np.median([m["inference"]["fallback_calls"] / max(m["events"]["l1_accepted"], 1)
                                                        for m in models])),
            "model_steps_p50_ms": {k: float(np.median([m["latency_ms"][k]["p50"] for m in models])) for k in steps}}


def kill_real_row(case: str, rate: float, args: argparse.Namespace) -> dict:
    """The real side of the kill case at `rate`: `kill_repeats` runs (own seeds), their events
    pooled, each run's own p50/p99 kept (how far two runs of the same transient differ). A
    run during which other processes used more than RETRY_OTHER_CORES is made again, with the
    same seed, up to `args.retries` times (the last is kept), as the other cases' rates are
    (the restarted server's own CPU, 0.05-0.12 cores, is counted as others': it is not the
    process the farm started)."""
    n = args.kill_events
    results, totals = [], []
    with tempfile.TemporaryDirectory(prefix="validate-plan-kill-") as tmp:
        for repeat in range(args.kill_repeats):
            table = Path(tmp) / f"events-{repeat}.parquet"
            for attempt in range(args.retries + 1):
                again = f" (again: {attempt})" if attempt else ""
                with heavy_lock(f"{case}: real run {repeat + 1}/{args.kill_repeats}, {n} events at {rate:g} Hz{again}"):
                    result = local_server_killed(n, rate_hz=rate, kill_at=KILL_AT, output={"write_streams": False},
                                                 run={"seed": kill_run_seed(repeat)}, events_table=table)
                if PHASES[-1]["other_cores"] <= RETRY_OTHER_CORES:
                    break
            results.append(result)
            totals.append(table_total_ms(str(table)))
    pooled = np.concatenate(totals)
    summaries = [r.summary for r in results]
    restarts = [x for r in results for x in r.notes.get("restart_s", [])]
    per_run = [(r.notes.get("restart_s") or [None])[0] for r in results]  # the kill's restart; None: the keeper measured none
    cpu_per_run = [(r.notes.get("restart_cpu_s") or [None])[0] for r in results]  # its CPU until ready
    if len(pooled) >= 100:
        r50, r99 = (float(np.percentile(pooled, q)) for q in (50, 99))
    else:  # no per-event table: the first run's own figures
        r50, r99 = summaries[0]["latency_ms"]["total"]["p50"], summaries[0]["latency_ms"]["total"]["p99"]
    real_fb = sum(s["inference"]["fallback_calls"] for s in summaries) / max(sum(s["events"]["l1_accepted"] for s in summaries), 1)
    reasons: Counter = Counter()
    servers: dict[str, Counter] = {}
    for x in summaries:  # over every run, as the fraction
        reasons.update(x["inference"]["fallback_reasons"])
        for k, v in x["inference"]["servers"].items():
            servers.setdefault(k, Counter()).update({f: v.get(f) or 0 for f in ("calls", "failures", "restarts")})
    s = summaries[0]
    row = {"rate_hz": rate, "events": n, "runs": len(results), "real_seeds": [kill_run_seed(k) for k in range(len(results))],
           "real_events": [len(t) for t in totals],
           "real_p50_ms": r50, "real_p99_ms": r99,
           "real_p50_p99_ms_per_run": [[float(np.percentile(t, q)) for q in (50, 99)] if len(t) else [None, None]
                                       for t in totals],
           "real_fallback_fraction": real_fb,
           "real_fallback_calls": sum(x["inference"]["fallback_calls"] for x in summaries),
           "real_fallback_reasons": dict(reasons), "real_lost": sum(x["events"]["lost"] for x in summaries),
           "real_steps_p50_ms": {k: s["latency_ms"].get(k, {}).get("p50") for k in STEPS_COMPARED},  # the first run's
           "restart_s": float(np.median(restarts)) if restarts else 1e9, "restarts_s": restarts, "restart_s_per_run": per_run,
           "restart_cpu_s_per_run": cpu_per_run,
           "kill_after_decided": max(int(n * KILL_AT), 1),
           "real_servers": {k: dict(v) for k, v in servers.items()}}
    row.update(real_intervals(totals))
    REAL_LATENCIES[("kill", rate)] = pooled
    return row


def kill_case(args: argparse.Namespace, cal: Calibration | None, default_saturation_hz: float | None, work: Path) -> dict:
    """Two local servers, one SIGKILLed once 30 % of the events are decided and restarted by
    the farm (farm/fault_scenarios.local_server_killed), at three rates below the saturation
    of the same farm without a kill (`--kill-rates-from own`, the default: searched here, as
    the default farm's is; `default`: the default farm's, which this farm's is below: its two
    servers share the same cores); the model with two servers, the kill at the same time and
    each seed one real run's in turn (`kill_runs`): its Level-1 times, its kill and its restart.
    The kill itself is not searched: a kill at a share of a run is a transient whose weight
    depends on the run's length, not a rate the farm does or does not sustain; p50/p99 and the
    fallback fraction are compared instead. `kill_repeats` runs per rate (own seeds), their
    events pooled: a run of 800 events has a p99 resting on 8 of them.

    Calibrated (`--kill-calibration own`, the default) on its own farm without a kill, as the
    default farm is on its own: `--calibration-runs` runs of the two-server farm at
    `--calibration-fraction` of the saturation its rates come from, the first before the kill
    runs and the others after them, pooled.
    This host runs faster or slower by up to a third over tens of minutes: the default farm's
    calibration (`default`), made before its own real runs and the slots case, is older."""
    case = CASE_NAMES["kill"]
    saturation_hz, own_scan = default_saturation_hz or 0.0, None
    if args.kill_rates_from == "own":
        own_scan = real_saturation(f"{case}, no kill", kill_config(), args)
        saturation_hz = own_scan["saturation_rate_hz"]
        if not saturation_hz:
            return {"case": case, "error": "the two-server farm without a kill sustained no rate", "real_scan": own_scan}
    rates = [round(f * saturation_hz, 1) for f in FRACTIONS]
    cal_rate = round(args.calibration_fraction * saturation_hz, 1)
    own = args.kill_calibration == "own"
    if not own and cal is None:
        raise SystemExit("--kill-calibration default: no default-farm calibration (run --cases default first)")
    series = None
    if own:
        series = CalibrationSeries(kill_config(), cal_rate, saturation_hz, args, work, f"{case}, no kill",
                                   "cpu-this-host-pu20-two-servers", args.kill_calibration_out, folder="kill-calibration",
                                   own_servers=True, servers=2)
        series.before()
    with heavy_lock(f"{case}: a local server's start CPU (3 starts)"):
        restart_cpu = server_start_cpu(kill_config())
    rows = [kill_real_row(case, rate, args) for rate in rates]
    calibration = {"kind": "default", "source": "the default farm's calibration (--calibration-out)"}
    if series is not None:
        cal, summary, extra = series.pooled()
        calibration = {"kind": "own",
                       "source": f"its own: {len(series.runs)} runs of the two-server farm without a kill (--kill-calibration-out)",
                       "rate_hz": cal_rate, "events": summary["events"]["l1_accepted"],
                       "real_total_p50_p99_ms": [summary["latency_ms"]["total"][p] for p in ("p50", "p99")], **extra}
    model_cal = kill_calibration(cal, args)
    restart = kill_restart({"rates": rows, "restart_cpu": restart_cpu}, model_cal, args)
    for row in rows:
        row.update(kill_model_figures(*kill_model(model_cal, row["rate_hz"], row["events"], kill_runs(row), farm_options(args),
                                                  restart), row))
        per_run = " / ".join(f"{a:.1f}/{b:.1f}" for a, b in row["real_p50_p99_ms_per_run"] if a is not None)
        print(f"{case} at {row['rate_hz']:g} Hz: p50 real {row['real_p50_ms']:.1f} model {row['model_p50_ms']:.1f}; "
              f"p99 real {row['real_p99_ms']:.1f} model {row['model_p99_ms']:.1f} (each run p50/p99: {per_run}); "
              f"fallback real {row['real_fallback_fraction']:.3f} model {row['model_fallback_fraction']:.3f}; "
              f"restart {row['restart_s']:.1f} s", flush=True)
    no_kill = {} if own_scan is None else {
        "real_saturation_no_kill_hz": saturation_hz, "real_failed_no_kill_hz": real_failed_hz(probe_rows(own_scan), saturation_hz),
        "real_search_no_kill": own_scan["search_stopped"], "real_probes_no_kill": probe_rows(own_scan)}
    return {"case": case, "workers": 2, "servers": 2, "kill_at_fraction": KILL_AT, "default_saturation_hz": default_saturation_hz,
            "rates_from": args.kill_rates_from, "rates_saturation_hz": saturation_hz, **no_kill,
            "calibration": calibration, "restart_cpu": restart_cpu, "restart_cpu_s_modelled": restart.cpu_s,
            "restart_modelled": restart_record(restart),
            "saturation": ("the kill not searched: a transient (p50/p99 and the fallback fraction at three rates instead)"
                           + ("; its farm without a kill searched for the rates" if own_scan is not None else "")),
            "rates": rows}


def shown_path(path: str) -> str:
    """`path` relative to the repository when inside it (records do not name this checkout)."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(path)


def kill_calibration_kind(case: dict) -> str:
    """"own" or "default": which calibration a recorded kill case was modelled on (a record
    from before the case had its own: "default")."""
    calibration = case.get("calibration") or {}
    return calibration.get("kind") or ("own" if str(calibration.get("source", "")).startswith("its own") else "default")


def remodel(key: str, case: dict, args: argparse.Namespace) -> dict:
    """A recorded case's model figures again, from the calibration files, against the same
    real figures: a change to the model checked without re-running the farm."""
    if "rates" not in case:
        return case
    if key == "kill":
        own = kill_calibration_kind(case) == "own"
        cal = kill_calibration(load(args.kill_calibration_out if own else args.calibration_out), args)
        restart = kill_restart(case, cal, args)
        case["restart_cpu_s_modelled"] = restart.cpu_s
        case["restart_modelled"] = restart_record(restart)
        for row in case["rates"]:
            row.update(kill_model_figures(*kill_model(cal, row["rate_hz"], row["events"], kill_runs(row), farm_options(args),
                                                      restart), row))
        return case
    if key == "default":
        cal, config = load(args.calibration_out), default_config()
        farm = default_farm(config, farm_options(args))
    else:
        cal, config = load(args.slots_calibration_out), slots_config("127.0.0.1:8001")
        farm = slots_farm(config, farm_options(args))
    rates = [r["rate_hz"] for r in case["rates"]]
    return put_model(case, model_side(case["case"], cal, farm, config.readout.pattern, args, case["calibration"]["rate_hz"],
                                      rates))


def shipped_provenance(started: dict, fraction: float, validation_out: str | Path) -> dict:
    """`made_by` of a shipped calibration: the run's command, commit and time, and how it was
    made (the calibration run's fraction of the measured saturation, as asked)."""
    return {**started, "how": f"the default farm's calibration runs of scripts/validate_plan.py (pooled), at {fraction:g} "
                              f"of its measured saturation; validated by the same run ({shown_path(str(validation_out))})"}


def keep_real_latencies(path: Path, key: str) -> None:
    """The real events' total latencies of case `key` measured by this run (REAL_LATENCIES),
    written into `path` beside the other cases' (ms, 0.01 ms resolution)."""
    mine = {f"{rate:g}": [round(float(x), 2) for x in v] for (k, rate), v in REAL_LATENCIES.items() if k == key}
    if not mine:
        return
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        data = {}
    data.setdefault("cases", {})[key] = mine
    data["note"] = ("per case and rate (Hz): every decided event's total latency (Level-1 accept to decision, ms) of the "
                    "real runs of scripts/validate_plan.py; the p50/p99 intervals in validation.json are bootstraps over them")
    path.write_text(json.dumps(data, separators=(",", ":")) + "\n")


def earlier_cases(out: Path) -> list[dict]:
    """The cases of an earlier run in `out` (none if it cannot be read)."""
    try:
        return list(json.loads(out.read_text())["cases"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        return []


def case_key(case: dict) -> str:
    return next((k for k, name in CASE_NAMES.items() if case.get("case") == name), case.get("case", ""))


def verdict_mark(row: dict, q: int) -> str:
    """ok: within 15 %; iv: not, but inside the real figure's own 95 % interval (no model
    error shown); NO: outside both."""
    if row[f"p{q}_ok"]:
        return "ok"
    return "iv" if row.get(f"p{q}_in_real_interval") else "NO"


def steps_against_rate(case: dict) -> dict[str, list]:
    """The real runs' step medians (ms) at each of the case's rates, lowest rate first: the
    premise of `--deflate-contention` (steps timed at a high rate hold contention, so are
    longer than at a low one) is a claim about these."""
    rows = sorted(case.get("rates", []), key=lambda r: r["rate_hz"])
    steps = [k for k in STEPS_COMPARED if k not in ("assign", "queue") and all(
        (r.get("real_steps_p50_ms") or {}).get(k) is not None for r in rows)]
    return {"rate_hz": [r["rate_hz"] for r in rows], **{k: [round(r["real_steps_p50_ms"][k], 2) for r in rows] for k in steps}}


def print_report(cases: list[dict]) -> None:
    for c in cases:
        if "skipped" in c or "error" in c:
            print(f"- {c.get('skipped') or c['case'] + ': ' + c['error']}")
            continue
        if "real_saturation_hz" in c:
            top = c.get("real_failed_hz")
            real = f"{c['real_saturation_hz']:.1f}-{top:.1f}" if top else f">= {c['real_saturation_hz']:.1f}"
            print(f"- {c['case']}: saturation real {real} Hz (sustained-failed), model {c['model_saturation_hz'] or 0:.1f} Hz "
                  f"({c.get('saturation_verdict', 'within' if c['saturation_ok'] else 'NOT within')} {SATURATION_TOLERANCE:.0%})")
        else:
            print(f"- {c['case']}: saturation {c['saturation']}")
        rep = c.get("real_repeat")
        if rep:
            print(f"  real runs at {rep['rate_hz']:g} Hz: calibration p50/p99 {rep['calibration_run_p50_p99_ms'][0]:.1f}/"
                  f"{rep['calibration_run_p50_p99_ms'][1]:.1f}, the run at that rate {rep['rates_run_p50_p99_ms'][0]:.1f}/"
                  f"{rep['rates_run_p50_p99_ms'][1]:.1f} ({rep['calibration_run_vs_rates_run_pct'][0]:+.0f} % / "
                  f"{rep['calibration_run_vs_rates_run_pct'][1]:+.0f} %); the model is "
                  f"{rep['model_vs_calibration_run_pct'][0]:+.0f} % / {rep['model_vs_calibration_run_pct'][1]:+.0f} % "
                  "from the calibration")
        calibration = c.get("calibration") or {}
        if calibration.get("source"):
            print(f"  calibration: {calibration['source']}")
        steps = plan_validation.steps_by_rate_line(steps_against_rate(c), sep="/")
        if steps:
            print(f"  real step medians (ms) {steps}")
        per_run = plan_validation.real_runs_line(c["rates"])
        if per_run:
            print(f"  each real run's total p50/p99 (ms) {per_run}")
        paired = plan_validation.paired_runs_line(c["rates"])
        if paired:
            print(f"  each real run's p99 beside the model's seeds that replayed it (ms) {paired}")
        print(f"  {'rate Hz':>8} {'real p50':>9} {'95% interval':>13} {'model':>6} {'':>3}  {'real p99':>8} "
              f"{'95% interval':>13} {'n':>5} {'>p99':>4} {'model':>6}")
        for r in c["rates"]:
            i50, i99 = r.get("real_p50_interval_ms", (0, 0)), r.get("real_p99_interval_ms", (0, 0))
            print(f"  {r['rate_hz']:>8.1f} {r['real_p50_ms']:>9.1f} {i50[0]:>6.1f}-{i50[1]:<6.1f} {r['model_p50_ms']:>6.1f} "
                  f"{verdict_mark(r, 50):>3}  {r['real_p99_ms']:>8.1f} {i99[0]:>6.1f}-{i99[1]:<6.1f} "
                  f"{r.get('real_total_events', 0):>5} {r.get('real_p99_events_beyond', 0):>4.0f} {r['model_p99_ms']:>6.1f} "
                  f"{verdict_mark(r, 99):>3}"
                  + ("  (interval approximate)" if r.get("real_interval_method", "").startswith("approximate") else "")
                  + (f"  fallback real {r['real_fallback_fraction']:.3f} model {r['model_fallback_fraction']:.3f}"
                     if "real_fallback_fraction" in r else ""))
    print("  ok: within 15 %; iv: outside 15 % but inside the real figure's 95 % interval; NO: outside both")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "plan" / "validation.json"))
    ap.add_argument("--calibration-out", default=str(ROOT / "docs" / "plan" / "validation-calibration.json"),
                    help="where the default farm's calibration is kept (the kill case reads it with --kill-calibration default "
                         "when the default farm is not run)")
    ap.add_argument("--ship-calibration", nargs="?", const=str(SHIPPED_CALIBRATION), default=None,
                    help=f"also write the default farm's calibration as this host's shipped one (default path: "
                         f"{SHIPPED_CALIBRATION.relative_to(ROOT)}), with its provenance")
    ap.add_argument("--calibration-fraction", type=float, default=CALIBRATION_FRACTION,
                    help="the calibration runs (the default farm's; the kill case's own), as a fraction of the measured "
                         "saturation their case's rates come from")
    ap.add_argument("--calibration-events", type=int, default=3000,
                    help="the calibration events of the default farm (and of the kill case's own), all runs together")
    ap.add_argument("--calibration-runs", type=int, default=2,
                    help="calibration runs of the default farm (and of the kill case's own), pooled: the first before "
                         "the real runs at the three rates, the others after them (one run: before them)")
    ap.add_argument("--low-rate-events", type=int, default=300,
                    help=f"the default and kill cases' low-rate calibration run, at {LOW_RATE_FRACTION:g} of the saturation "
                         "(0: none): the steps' factor at a low rate (calibrate.scale_for_low_rate)")
    ap.add_argument("--min-rate", type=float, default=20.0, help="the saturation searches start here and double")
    ap.add_argument("--max-rate", type=float, default=400.0)
    ap.add_argument("--search-steps", type=int, default=8,
                    help="rates the real saturation searches try at most (6 left both brackets wider than 10 %%)")
    ap.add_argument("--repeats", type=int, default=2,
                    help="real runs per rate below saturation, their events pooled (two runs at one rate, minutes apart, "
                         "differ by more than the 15 %% target at 0.8 of the saturation); the searches, real and model, "
                         "run each probe once")
    ap.add_argument("--slots-calibration-rate", type=float, default=10.0,
                    help="the slots case's calibration run (one slot: ~90 ms per event in a worker)")
    ap.add_argument("--slots-calibration-events", type=int, default=400)
    ap.add_argument("--cases", default="default,slots,kill",
                    help="comma-separated cases to run; the others keep their figures from --out; the kill case "
                         "without `default` takes the default farm's saturation from --out (and, with --kill-calibration "
                         "default, its calibration from --calibration-out)")
    ap.add_argument("--kill-calibration", choices=("own", "default"), default="own",
                    help="the kill case's calibration: its own runs of the two-server farm without a kill, before and "
                         "after its kill runs (own), or the default farm's (default, older by the other cases' runs)")
    ap.add_argument("--kill-calibration-out", default=str(ROOT / "docs" / "plan" / "validation-kill-calibration.json"),
                    help="where the kill case's own calibration is kept")
    ap.add_argument("--kill-events", type=int, default=800, help="events per real run of the kill case")
    ap.add_argument("--kill-rates-from", choices=("own", "default"), default="own",
                    help="the kill case's three rates (and its calibration rate) as fractions of the saturation of its "
                         "own farm without a kill, searched first (own), or of the default farm's (default, as before)")
    ap.add_argument("--kill-repeats", type=int, default=8,
                    help="real runs per rate of the kill case (own seeds, events pooled: 800 events alone give a p99 on 8)")
    ap.add_argument("--rate-events", type=int, default=RATE_EVENTS,
                    help="events per real run at the lowest of the three rates (a p99 rests on 1 %% of them); the runs "
                         "at the higher rates last as long, so hold more")
    ap.add_argument("--real-latencies-out", default=str(ROOT / "docs" / "plan" / "validation-real-latencies.json"),
                    help="where the real runs' per-event total latencies are kept (the intervals are computed from them)")
    ap.add_argument("--restart-cpu-s", type=float, default=None,
                    help="the kill case's model: a restarting server's CPU (s) on the host's cores (default: as the kill "
                         f"case's run measured it, else {RESTART_CPU_S} s measured on this host; 0: a restart costs no CPU)")
    ap.add_argument("--kill-restarts", choices=("replayed", "contended"), default="replayed",
                    help="the kill case's model: each real run's measured restart replayed, the start's CPU paced over it "
                         "(the default), or the restart contended on the host's cores (its model instances' processes take "
                         "the start's CPU as the cores allow; its length follows): closer in length to the real restarts, "
                         "but it puts each run's p99 above the real one in most runs (README)")
    ap.add_argument("--deflate-contention", action=argparse.BooleanOptionalAction, default=True,
                    help="divide the calibration's steps by the core contention the model adds at the calibration "
                         "rate (calibrate.deflate_contention, on the farm the calibration runs were made on). On by "
                         "default: without it the model counts the contention at the calibration rate twice (on the run "
                         "of 2026-12-06 03:01 UTC its p50 at the calibration rate read 125 ms against 48). The real steps "
                         "are not shorter at lower rates, as it assumes, but longer: the low-rate run's factor and the "
                         "idle-time curve (trigger_sim/planning/idle_slowdown.py) carry that")
    ap.add_argument("--farm-option", action="append", default=[], metavar="KEY=VALUE",
                    help="a model farm key for every case (e.g. cpu_slice_ms=0 to switch processor sharing off)")
    ap.add_argument("--slots-calibration-out", default=str(ROOT / "docs" / "plan" / "validation-slots-calibration.json"),
                    help="where the slots case's calibration is kept")
    ap.add_argument("--retries", type=int, default=1,
                    help=f"real runs at the three rates (a kill run) again while other processes used > {RETRY_OTHER_CORES} "
                         "cores meanwhile")
    ap.add_argument("--rates-only", action="store_true",
                    help="of the cases in --out, only the real runs at their three rates (the kill case's kill runs) again "
                         "(a phase other load polluted), then the model from the calibration files")
    ap.add_argument("--hold-lock", action="store_true",
                    help="take the shared lock once for the whole run (a case's phases back to back, not interleaved "
                         "with other users' jobs; keep such a run short)")
    ap.add_argument("--model-only", action="store_true",
                    help="no farm runs: the model's figures of the cases in --out again, from the calibration files "
                         "(after a change to the model)")
    ap.add_argument("--quick", action="store_true", help="a short check of the script itself: 400 events, 3 search steps")
    args = ap.parse_args()
    if args.hold_lock:
        global HOLDING
        lock_file = open(LOCK, "a")  # held until the process ends
        print(f"[{time.strftime('%H:%M:%S')}] waiting for the shared lock for the whole run", flush=True)
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        HOLDING = True
    if args.quick:
        args.calibration_events, args.search_steps, args.kill_events, args.kill_repeats = 400, 3, 300, 1
        args.low_rate_events = min(args.low_rate_events, 100)
        args.rate_events = 1000
    args.cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = set(args.cases) - set(CASE_NAMES)
    if unknown:
        ap.error(f"--cases: unknown {', '.join(sorted(unknown))} (known: {', '.join(CASE_NAMES)})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = ("scripts/validate_plan.py " + " ".join(sys.argv[1:])).strip()
    cases = {case_key(c): c for c in earlier_cases(out)}
    started = provenance(command)  # the commit the run started from (files edited meanwhile do not count)

    def record(key: str, case: dict, first_phase: int | None) -> None:  # after every case: a later failure keeps it
        if first_phase is None:  # --model-only: the real figures keep their own record
            path = {"slots": args.slots_calibration_out,
                    "kill": args.kill_calibration_out if kill_calibration_kind(case) == "own" else args.calibration_out}
            case["model_rerun"] = {**started, "calibration": shown_path(path.get(key, args.calibration_out))}
        else:
            keep_real_latencies(Path(args.real_latencies_out), key)
            case["measured"] = {**started, "finished_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
                                "phases": phases_since(first_phase)}
            case.pop("model_rerun", None)
        case["farm_options"] = farm_options(args)
        cases.update({case_key(c): c for c in earlier_cases(out)})  # another run of the script may have written meanwhile
        cases[key] = case
        ordered = [cases[k] for k in CASE_NAMES if k in cases] + [c for k, c in cases.items() if k not in CASE_NAMES]
        out.write_text(json.dumps({"note": "each case was measured by its own run of the script: see its `measured`",
                                   "cases": ordered}, indent=2, default=str))

    t_start = time.monotonic()
    if args.rates_only:
        for key in [k for k in args.cases if "rates" in cases.get(k, {})]:
            first, case = len(PHASES), cases[key]
            if key == "kill":  # its kill runs again at the same rates; its calibration and restart CPU kept
                case["rates"] = [kill_real_row(case["case"], r["rate_hz"], args) for r in case["rates"]]
            elif key == "default":
                case["rates"] = real_rates(case["case"], default_config(), [r["rate_hz"] for r in case["rates"]], args)
            else:
                with tempfile.TemporaryDirectory(prefix="validate-plan-") as tmp:
                    with heavy_lock(f"{case['case']}: starting the sleep-model server"):
                        server = TritonServer(sleep_repository(Path(tmp) / "sleep-models", SLEEP_MS), START_TIMEOUT_S)
                        server.start()
                    try:
                        case["rates"] = real_rates(case["case"], slots_config(server.grpc_url),
                                                   [r["rate_hz"] for r in case["rates"]], args)
                    finally:
                        server.stop()
            earlier = case.get("measured", {})
            case["saturation_and_calibration_measured"] = case.get("saturation_and_calibration_measured") or {
                k: earlier.get(k) for k in ("date_utc", "command", "commit", "phases")}
            record(key, remodel(key, case, args), first)
    if args.model_only or args.rates_only:
        if args.model_only:
            for key in args.cases:
                if key in cases:
                    if "rates" in cases[key]:  # a record from before the intervals' method: again from its kept events
                        real_intervals_again(key, cases[key], Path(args.real_latencies_out))
                    record(key, remodel(key, cases[key], args), None)
        print_report([cases[k] for k in args.cases if k in cases])
        print(f"written: {out} ({time.monotonic() - t_start:.0f} s, {sum(p['seconds'] for p in PHASES):.0f} s under the lock)")
        return 0
    with tempfile.TemporaryDirectory(prefix="validate-plan-") as tmp:
        work = Path(tmp)
        cal = None
        if "default" in args.cases:
            first = len(PHASES)
            default, cal = default_farm_case(args, work)
            record("default", default, first)
            if cal is not None and args.ship_calibration:
                cal.provenance["made_by"] = shipped_provenance(started, args.calibration_fraction, args.out)
                save(cal, args.ship_calibration)
                print(f"shipped calibration written: {args.ship_calibration}")
        if "slots" in args.cases:
            first = len(PHASES)
            record("slots", slots_case(args, work), first)
        if "kill" in args.cases:
            first = len(PHASES)
            default = cases.get("default", {})
            if cal is None and Path(args.calibration_out).exists():
                cal = load(args.calibration_out)
            rates_ok = args.kill_rates_from == "own" or default.get("real_saturation_hz")
            if rates_ok and (cal is not None or args.kill_calibration == "own"):
                record("kill", kill_case(args, cal, default.get("real_saturation_hz"), work), first)
            else:
                record("kill", {"case": CASE_NAMES["kill"], "error": "no default-farm saturation or calibration (--kill-rates-from "
                                "default and --kill-calibration default need them): run --cases default first"}, first)
    print_report([cases[k] for k in args.cases if k in cases])
    print(f"written: {out} ({time.monotonic() - t_start:.0f} s, of which {sum(p['seconds'] for p in PHASES):.0f} s under the lock)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
