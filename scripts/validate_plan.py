"""The capacity model against the real farm, side by side on this machine.

For each case: a short real run at a low rate calibrates the model (its per-event table);
then the model's saturation rate (the search and verdict of trigger_sim/sustained.py on the
model's summary) beside the real farm's (farm/scan.py's search), and p50/p99 of the total
latency at three rates below saturation, model and real at the same rates.
Targets: saturation within 10 %, p50 and p99 within 15 %.

Cases: the default farm; its workers with event slots against a sleep-model server (its
saturation and three rates, as the default farm); two local servers with one SIGKILLed and
restarted (three rates: p50/p99 and the fallback fraction; no saturation search, a kill is a
transient).

The default farm's calibration is made at the rate the model judges: a run at 0.8 of the
measured saturation, each farm process's CPU per event measured in that same run (at 20 Hz
idle polling and the server's background threads are spread over a quarter of the events,
and the worker's steps run colder). With --ship-calibration it is also written as this host's
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
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_cases: the sleep-model server of the overlap case

import numpy as np  # noqa: E402
from bench_cases.common import LoadMeter  # noqa: E402
from bench_cases.farm_case import farm_run  # noqa: E402
from bench_cases.overlap_case import INSTANCES as SLEEP_INSTANCES  # noqa: E402
from bench_cases.overlap_case import START_TIMEOUT_S, sleep_repository  # noqa: E402
from farm.fault_scenarios import base_config, local_server_killed  # noqa: E402
from farm.scan import RUN_OVERHEAD_S, run_scan  # noqa: E402
from farm.server_device import local_server  # noqa: E402
from farm.one_host import run_farm  # noqa: E402
from farm.triton_server import TritonServer  # noqa: E402
from trigger_sim import sustained  # noqa: E402
from trigger_sim.config import FarmConfig, load_config, with_overrides  # noqa: E402
from trigger_sim.planning import calibrate  # noqa: E402
from trigger_sim.planning.calibration import CPU_STEPS, Calibration, load, save  # noqa: E402
from trigger_sim.planning.sizing import run_rate, saturation  # noqa: E402
from trigger_sim.planning.spec import FarmSpec, ServerKill, from_farm_config  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
LOCK = "/tmp/tsim-heavy.lock"
SATURATION_TOLERANCE = 0.10
LATENCY_TOLERANCE = 0.15
FRACTIONS = (0.3, 0.55, 0.8)  # the three rates below saturation, as fractions of the measured one
MODEL_EVENTS_AT_RATE = 20_000  # the model's percentiles at a rate come from this many events
SLOTS = 2  # the slots case: event slots per worker (the default farm's two workers)
SLEEP_MS = 40.0  # the slots case: the sleep-model server's time per request
KILL_AT = 0.3  # the kill case: the share of the events decided when server 0 is SIGKILLed
CALIBRATION_FRACTION = 0.8  # the default farm's calibration run, as a fraction of the measured saturation
QUIET_OTHER_CORES = 0.1  # more cores used by other processes during a phase: the phase is flagged
RETRY_OTHER_CORES = 0.2  # more during the real runs at three rates: they are run again (--retries)
QUIET_WAIT_S = 120.0  # a phase waits at most this long, holding the lock, for the machine to be quiet
SHIPPED_CALIBRATION = ROOT / "configs" / "calibrations" / "cpu-this-host-pu20.json"
CASE_NAMES = {"default": "default farm", "slots": f"event slots ({SLOTS}) against a sleep-model server ({SLEEP_MS:g} ms)",
              "kill": "two servers, one killed"}


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


def calibration_run(config: FarmConfig, rate_hz: float, events: int, table: Path, what: str) -> dict:
    """A real run whose per-event table calibrates the model (under the lock)."""
    with heavy_lock(f"{what}: calibration run, {events} events at {rate_hz:g} Hz"):
        summary = run_farm(with_overrides(config, readout={"rate_hz": rate_hz}), events, None, output_dir=None, events_table=table)
    (table.parent / "summary.json").write_text(json.dumps(summary, default=str))
    return summary


def calibration_run_with_cpu(config: FarmConfig, rate_hz: float, events: int, table: Path, what: str):
    """A real run at `rate_hz` with its per-event table and every farm process's CPU per
    decided event measured in the same run (the bench farm case's probe), under the lock."""
    with heavy_lock(f"{what}: calibration run, {events} events at {rate_hz:.1f} Hz"):
        with local_server(config) as server:
            run = farm_run(config, server, rate_hz, events / rate_hz, sustained.repeat_seed(config.run.seed, 100),
                           events_table=table)
    (table.parent / "summary.json").write_text(json.dumps(run.summary, default=str))
    return run


def real_saturation(case: str, config: FarmConfig, args: argparse.Namespace) -> dict:
    with heavy_lock(f"{case}: real saturation search (farm/scan.py)"):
        scan = run_scan(config, None, 8.0, search_steps=args.search_steps, min_rate=args.min_rate, max_rate=args.max_rate)
    print(f"{case}: real sustained up to {scan['saturation_rate_hz']} Hz ({scan['search_stopped']})", flush=True)
    return scan


def model_side(case: str, cal: Calibration, farm: FarmSpec, pattern: str, args: argparse.Namespace, cal_rate_hz: float,
               real_sat: float, rates: list[float]) -> dict:
    """The model's figures of a case: at the calibration rate, its saturation (the scan's
    search and run lengths, `sustained.run_seconds`), p50/p99 and step medians at `rates`."""
    model_at_cal = run_rate(cal, farm, cal_rate_hz, MODEL_EVENTS_AT_RATE, seed=7, pattern=pattern)
    t0 = time.monotonic()
    model_sat = saturation(cal, farm, pattern=pattern, min_hz=args.min_rate, repeats=args.repeats,
                           events=lambda rate: int(sustained.run_seconds(rate, RUN_OVERHEAD_S) * rate))
    model_search_s = time.monotonic() - t0
    print(f"{case}: model sustained up to {model_sat.sustained_hz} Hz ({model_sat.stopped}; {model_search_s:.0f} s)", flush=True)
    at = {}
    for rate in rates:
        m = run_rate(cal, farm, rate, MODEL_EVENTS_AT_RATE, seed=7, pattern=pattern)
        at[rate] = {"p50": m["latency_ms"]["total"]["p50"], "p99": m["latency_ms"]["total"]["p99"],
                    "steps_p50": {k: m["latency_ms"].get(k, {}).get("p50") for k in ("queue", "edge_classifier", "jet_tagger", "worker_total")}}
    return {"model_total_p50_p99_ms": [model_at_cal["latency_ms"]["total"][p] for p in ("p50", "p99")],
            "model_saturation_hz": model_sat.sustained_hz, "model_failed_hz": model_sat.failed_hz,
            "model_search": model_sat.stopped, "model_search_s": model_search_s,
            "saturation_ok": bool(model_sat.sustained_hz) and within(model_sat.sustained_hz, real_sat, SATURATION_TOLERANCE),
            "at": at}


def put_model(out: dict, model: dict) -> dict:
    """A case's model figures (from `model_side`) beside its real ones."""
    out["calibration"]["model_total_p50_p99_ms"] = model["model_total_p50_p99_ms"]
    out.update({k: model[k] for k in ("model_saturation_hz", "model_failed_hz", "model_search", "model_search_s", "saturation_ok")})
    for row in out["rates"]:
        m = model["at"][row["rate_hz"]]
        steps = row.get("real_steps_p50_ms", {})
        row.update(model_p50_ms=m["p50"], p50_ok=within(m["p50"], row["real_p50_ms"], LATENCY_TOLERANCE),
                   model_p99_ms=m["p99"], p99_ok=within(m["p99"], row["real_p99_ms"], LATENCY_TOLERANCE),
                   model_steps_p50_ms={k: m["steps_p50"].get(k) for k in steps})
    return out


def compare(case: str, config: FarmConfig, cal: Calibration, farm: FarmSpec, args: argparse.Namespace, cal_summary: dict,
            cal_rate_hz: float, real_scan: dict) -> dict:
    """The model's saturation beside the measured one (farm/scan.py's search), and p50/p99 at
    three rates below the measured saturation, model and real at the same rates."""
    real_sat = real_scan["saturation_rate_hz"]
    rates = [round(f * real_sat, 1) for f in FRACTIONS]
    out = {"case": case, "workers": farm.workers_per_node, "slots": farm.slots_per_worker, "host_cores": os.cpu_count(),
           "calibration": {"rate_hz": cal_rate_hz, "events": cal_summary["events"]["l1_accepted"],
                           "worker_total_mean_ms": cal_summary["latency_ms"]["worker_total"]["mean"],
                           "total_p50_ms": cal_summary["latency_ms"]["total"]["p50"],
                           "total_p99_ms": cal_summary["latency_ms"]["total"]["p99"]},
           "real_saturation_hz": real_sat, "real_search": real_scan["search_stopped"],
           "real_probes": [(p["rate_hz"], p["sustained"], p["why_not"]) for p in real_scan["points"]],
           "rates": real_rates(case, config, rates, args)}
    out = put_model(out, model_side(case, cal, farm, config.readout.pattern, args, cal_rate_hz, real_sat, rates))
    for r in out["rates"]:
        print(f"{case} at {r['rate_hz']:g} Hz: p50 real {r['real_p50_ms']:.1f} model {r['model_p50_ms']:.1f}; "
              f"p99 real {r['real_p99_ms']:.1f} model {r['model_p99_ms']:.1f}", flush=True)
    return out


def real_rates(case: str, config: FarmConfig, rates: list[float], args: argparse.Namespace) -> list[dict]:
    """Real runs at `rates` (one locked phase), again up to `args.retries` times while other
    processes used more than RETRY_OTHER_CORES meanwhile (the last attempt is kept)."""
    for attempt in range(args.retries + 1):
        with heavy_lock(f"{case}: real runs at {rates} Hz"):
            real_points = run_scan(config, rates, 8.0, repeats=args.repeats)["points"]
        if PHASES[-1]["other_cores"] <= RETRY_OTHER_CORES:
            break
        if attempt < args.retries:
            print(f"{case}: other processes used {PHASES[-1]['other_cores']:.2f} cores during the real runs: again", flush=True)
    rows = []
    for rate in rates:
        reals = [p for p in real_points if p["rate_hz"] == rate]
        steps = [k for k in ("queue", "edge_classifier", "jet_tagger", "worker_total") if f"{k}_p50_ms" in reals[0]]
        rows.append({"rate_hz": rate, "real_p50_ms": sorted(p["total_p50_ms"] for p in reals)[len(reals) // 2],
                     "real_p99_ms": sorted(p["total_p99_ms"] for p in reals)[len(reals) // 2],
                     "real_events": [p["decided_events"] for p in reals],
                     "real_steps_p50_ms": {k: reals[0][f"{k}_p50_ms"] for k in steps}})
    return rows


def default_config() -> FarmConfig:
    return with_overrides(load_config(None), output={"write_streams": False})


def default_farm(config: FarmConfig) -> FarmSpec:
    return from_farm_config(config, config.worker.count or os.cpu_count() or 1, host_cores=os.cpu_count() or 1)


def slots_config(server_url: str) -> FarmConfig:
    return with_overrides(load_config(None), output={"write_streams": False}, worker={"slots": SLOTS},
                          inference={"triton_url": server_url, "models": ("jet_tagger",)})


def slots_farm(config: FarmConfig) -> FarmSpec:
    return replace(from_farm_config(config, config.worker.count or os.cpu_count() or 1, host_cores=os.cpu_count() or 1),
                   slots_per_worker=SLOTS)


def slots_calibration(folder: Path, config: FarmConfig) -> tuple[Calibration, float]:
    """The slots case's calibration from its one-slot run's folder, and the call's round trip
    beyond the sleep (the measured median minus the sleep)."""
    import pyarrow.parquet as pq

    cols = pq.read_table(folder / "events.parquet", columns=["jet_tagger_ms", "jet_tagger_path"]).to_pydict()
    called = [t for t, p in zip(cols["jet_tagger_ms"], cols["jet_tagger_path"]) if p == "triton" and t is not None]
    rtt_ms = max(float(np.median(called)) - SLEEP_MS, 0.0)
    cal = calibrate.from_run_folder(folder, name="validation-slots", pileup=config.physics.pileup_mean,
                                    benchmarks=ROOT / "benchmarks.json", rtt_ms=rtt_ms, local_models=("edge_classifier",))
    return calibrate.with_fixed_server(cal, "jet_tagger", SLEEP_MS, SLEEP_INSTANCES), rtt_ms


def default_farm_case(args: argparse.Namespace, work: Path) -> tuple[dict, Calibration]:
    """The default farm: the measured saturation, a calibration run at 0.8 of it (each
    process's CPU per event measured in it), then the comparison. Returns the case and its
    calibration (the kill case and --ship-calibration use it)."""
    case = CASE_NAMES["default"]
    config = default_config()
    real_scan = real_saturation(case, config, args)
    real_sat = real_scan["saturation_rate_hz"]
    if not real_sat:
        return {"case": case, "error": "the real farm sustained no rate", "real_scan": real_scan}, None
    cal_rate = round(args.calibration_fraction * real_sat, 1)
    table = work / "calibration" / "events.parquet"
    run = calibration_run_with_cpu(config, cal_rate, args.calibration_events, table, case)
    cpu = calibrate.ProcessCpu(run.cpu_ms_per_event(),
                               f"the calibration run itself ({run.window_events} events decided at {cal_rate:g} Hz)")
    cal = calibrate.from_run_folder(table.parent, name="cpu-this-host-pu20", pileup=config.physics.pileup_mean,
                                    process_cpu=cpu)
    cal.provenance["calibration_run"] = {"rate_hz": cal_rate, "fraction_of_measured_saturation": args.calibration_fraction,
                                         "events": run.events, "process_cpu_ms_per_event": cpu.ms_per_event,
                                         "other_cores": round(run.elsewhere["other_cores"], 3)}
    save(cal, args.calibration_out)
    out = compare(case, config, cal, default_farm(config), args, run.summary, cal_rate, real_scan)
    out["calibration"].update(process_cpu_ms_per_event=cpu.ms_per_event, other_cores=run.elsewhere["other_cores"],
                              worker_cpu_ms_per_event=float(sum(cal.events[s].mean() for s in CPU_STEPS)))
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
        out = compare(case, config, cal, slots_farm(config), args, cal_summary, args.slots_calibration_rate, real_scan)
        out["calibration"].update(rtt_ms=rtt_ms, server_ms=SLEEP_MS, server_instances=SLEEP_INSTANCES,
                                  worker_cpu_ms_per_event=float(sum(cal.events[s].mean() for s in CPU_STEPS)))
        return out
    finally:
        server.stop()


def kill_model(cal: Calibration, rate: float, n: int, restart_s: float) -> list[dict]:
    """The kill case's model at `rate`: two servers, server 0 killed after KILL_AT of the run's
    offered time and back `restart_s` later; five seeds of `n` events."""
    config = with_overrides(base_config(readout={"rate_hz": rate}), inference={"local_servers": 2})
    farm = replace(from_farm_config(config, config.worker.count, host_cores=os.cpu_count() or 1), servers=2,
                   kills=(ServerKill(server=0, at_s=KILL_AT * n / rate, restart_s=restart_s),))
    return [run_rate(cal, farm, rate, n, seed=seed, pattern=config.readout.pattern) for seed in range(1, 6)]


def kill_model_figures(models: list[dict], real_p50: float, real_p99: float) -> dict:
    """Medians over the seeds, beside the real figures."""
    m50 = float(np.median([m["latency_ms"]["total"]["p50"] for m in models]))
    m99 = float(np.median([m["latency_ms"]["total"]["p99"] for m in models]))
    steps = ("queue", "edge_classifier", "jet_tagger", "worker_total")
    return {"model_p50_ms": m50, "p50_ok": within(m50, real_p50, LATENCY_TOLERANCE),
            "model_p99_ms": m99, "p99_ok": within(m99, real_p99, LATENCY_TOLERANCE),
            "model_p50_p99_ms_per_seed": [[m["latency_ms"]["total"][p] for p in ("p50", "p99")] for m in models],
            "model_fallback_fraction": float(np.median([m["inference"]["fallback_calls"] / max(m["events"]["l1_accepted"], 1)
                                                        for m in models])),
            "model_steps_p50_ms": {k: float(np.median([m["latency_ms"][k]["p50"] for m in models])) for k in steps}}


def kill_case(args: argparse.Namespace, cal: Calibration, default_saturation_hz: float) -> dict:
    """Two local servers, one SIGKILLed once 30 % of the events are decided and restarted by
    the farm (farm/fault_scenarios.local_server_killed), at three rates below the default
    farm's measured saturation; the model with two servers, the kill at the same time and the
    restart as long as the farm's keeper measured. No saturation search: a kill at a share of
    a run is a transient whose weight depends on the run's length, not a rate the farm does or
    does not sustain; p50/p99 and the fallback fraction are compared instead."""
    case = CASE_NAMES["kill"]
    rates = [round(f * default_saturation_hz, 1) for f in FRACTIONS]
    n = args.kill_events
    rows = []
    for rate in rates:
        with heavy_lock(f"{case}: real run, {n} events at {rate:g} Hz"):
            result = local_server_killed(n, rate_hz=rate, kill_at=KILL_AT, output={"write_streams": False})
        s = result.summary
        restart_s = float(np.median(result.notes["restart_s"])) if result.notes.get("restart_s") else 1e9
        r50, r99 = s["latency_ms"]["total"]["p50"], s["latency_ms"]["total"]["p99"]
        real_fb = s["inference"]["fallback_calls"] / max(s["events"]["l1_accepted"], 1)
        row = {"rate_hz": rate, "events": n, "real_p50_ms": r50, "real_p99_ms": r99, "real_fallback_fraction": real_fb,
               "real_fallback_reasons": dict(s["inference"]["fallback_reasons"]), "real_lost": s["events"]["lost"],
               "real_steps_p50_ms": {k: s["latency_ms"].get(k, {}).get("p50") for k in ("queue", "edge_classifier", "jet_tagger", "worker_total")},
               "restart_s": restart_s, "kill_at_s": KILL_AT * n / rate,
               "real_servers": {k: {x: v.get(x) for x in ("calls", "failures", "restarts")}
                                for k, v in s["inference"]["servers"].items()}}
        row.update(kill_model_figures(kill_model(cal, rate, n, restart_s), r50, r99))
        rows.append(row)
        m50, m99, m_fb = row["model_p50_ms"], row["model_p99_ms"], row["model_fallback_fraction"]
        print(f"{case} at {rate:g} Hz: p50 real {r50:.1f} model {m50:.1f}; p99 real {r99:.1f} model {m99:.1f}; "
              f"fallback real {real_fb:.3f} model {m_fb:.3f}; restart {restart_s:.1f} s", flush=True)
    return {"case": case, "workers": 2, "servers": 2, "kill_at_fraction": KILL_AT, "default_saturation_hz": default_saturation_hz,
            "saturation": "not searched: a kill is a transient (p50/p99 and the fallback fraction at three rates instead)",
            "rates": rows}


def remodel(key: str, case: dict, args: argparse.Namespace) -> dict:
    """A recorded case's model figures again, from the calibration files, against the same
    real figures: a change to the model checked without re-running the farm."""
    if "rates" not in case:
        return case
    if key == "kill":
        cal = load(args.calibration_out)
        for row in case["rates"]:
            row.update(kill_model_figures(kill_model(cal, row["rate_hz"], row["events"], row["restart_s"]),
                                          row["real_p50_ms"], row["real_p99_ms"]))
        return case
    if key == "default":
        cal, config = load(args.calibration_out), default_config()
        farm = default_farm(config)
    else:
        cal, config = load(args.slots_calibration_out), slots_config("127.0.0.1:8001")
        farm = slots_farm(config)
    rates = [r["rate_hz"] for r in case["rates"]]
    return put_model(case, model_side(case["case"], cal, farm, config.readout.pattern, args, case["calibration"]["rate_hz"],
                                      case["real_saturation_hz"], rates))


def shipped_provenance(started: dict, fraction: float, validation_out: str | Path) -> dict:
    """`made_by` of a shipped calibration: the run's command, commit and time, and how it was
    made (the calibration run's fraction of the measured saturation, as asked)."""
    return {**started, "how": f"the default farm's calibration run of scripts/validate_plan.py, at {fraction:g} of its "
                              f"measured saturation; validated by the same run ({validation_out})"}


def earlier_cases(out: Path) -> list[dict]:
    """The cases of an earlier run in `out` (none if it cannot be read)."""
    try:
        return list(json.loads(out.read_text())["cases"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError):
        return []


def case_key(case: dict) -> str:
    return next((k for k, name in CASE_NAMES.items() if case.get("case") == name), case.get("case", ""))


def print_report(cases: list[dict]) -> None:
    for c in cases:
        if "skipped" in c or "error" in c:
            print(f"- {c.get('skipped') or c['case'] + ': ' + c['error']}")
            continue
        if "real_saturation_hz" in c:
            ok = "within" if c["saturation_ok"] else "NOT within"
            print(f"- {c['case']}: saturation real {c['real_saturation_hz']:.1f} Hz, model {c['model_saturation_hz'] or 0:.1f} Hz "
                  f"({ok} {SATURATION_TOLERANCE:.0%})")
        else:
            print(f"- {c['case']}: saturation {c['saturation']}")
        print(f"  {'rate Hz':>8} {'real p50':>9} {'model p50':>9} {'':>3} {'real p99':>9} {'model p99':>9}")
        for r in c["rates"]:
            print(f"  {r['rate_hz']:>8.1f} {r['real_p50_ms']:>9.1f} {r['model_p50_ms']:>9.1f} {'ok' if r['p50_ok'] else 'NO':>3} "
                  f"{r['real_p99_ms']:>9.1f} {r['model_p99_ms']:>9.1f} {'ok' if r['p99_ok'] else 'NO':>3}"
                  + (f"  fallback real {r['real_fallback_fraction']:.3f} model {r['model_fallback_fraction']:.3f}"
                     if "real_fallback_fraction" in r else ""))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "docs" / "plan" / "validation.json"))
    ap.add_argument("--calibration-out", default=str(ROOT / "docs" / "plan" / "validation-calibration.json"),
                    help="where the default farm's calibration is kept (the kill case reads it when the default farm is not run)")
    ap.add_argument("--ship-calibration", nargs="?", const=str(SHIPPED_CALIBRATION), default=None,
                    help=f"also write the default farm's calibration as this host's shipped one (default path: "
                         f"{SHIPPED_CALIBRATION.relative_to(ROOT)}), with its provenance")
    ap.add_argument("--calibration-fraction", type=float, default=CALIBRATION_FRACTION,
                    help="the default farm's calibration run, as a fraction of its measured saturation")
    ap.add_argument("--calibration-events", type=int, default=1200)
    ap.add_argument("--min-rate", type=float, default=20.0, help="the saturation searches start here and double")
    ap.add_argument("--max-rate", type=float, default=400.0)
    ap.add_argument("--search-steps", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=1, help="real runs per rate below saturation (the median is compared)")
    ap.add_argument("--slots-calibration-rate", type=float, default=10.0,
                    help="the slots case's calibration run (one slot: ~90 ms per event in a worker)")
    ap.add_argument("--slots-calibration-events", type=int, default=400)
    ap.add_argument("--cases", default="default,slots,kill",
                    help="comma-separated cases to run; the others keep their figures from --out; the kill case "
                         "without `default` takes the default farm's saturation from --out and its calibration from "
                         "--calibration-out")
    ap.add_argument("--kill-events", type=int, default=800, help="events per real run of the kill case")
    ap.add_argument("--slots-calibration-out", default=str(ROOT / "docs" / "plan" / "validation-slots-calibration.json"),
                    help="where the slots case's calibration is kept")
    ap.add_argument("--retries", type=int, default=1,
                    help=f"real runs at the three rates again while other processes used > {RETRY_OTHER_CORES} cores meanwhile")
    ap.add_argument("--rates-only", action="store_true",
                    help="of the default and slots cases in --out, only the real runs at their three rates again (a "
                         "phase other load polluted), then the model from the calibration files")
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
        args.calibration_events, args.search_steps, args.kill_events = 400, 3, 300
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
            case["model_rerun"] = {**started, "calibration": args.slots_calibration_out if key == "slots" else args.calibration_out}
        else:
            case["measured"] = {**started, "finished_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
                                "phases": phases_since(first_phase)}
            case.pop("model_rerun", None)
        cases.update({case_key(c): c for c in earlier_cases(out)})  # another run of the script may have written meanwhile
        cases[key] = case
        ordered = [cases[k] for k in CASE_NAMES if k in cases] + [c for k, c in cases.items() if k not in CASE_NAMES]
        out.write_text(json.dumps({"note": "each case was measured by its own run of the script: see its `measured`",
                                   "cases": ordered}, indent=2, default=str))

    t_start = time.monotonic()
    if args.rates_only:
        for key in [k for k in args.cases if k in ("default", "slots") and "rates" in cases.get(k, {})]:
            first, case = len(PHASES), cases[key]
            if key == "default":
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
            if default.get("real_saturation_hz") and cal is not None:
                record("kill", kill_case(args, cal, default["real_saturation_hz"]), first)
            else:
                record("kill", {"case": CASE_NAMES["kill"], "error": "no default-farm saturation and calibration to place "
                                "its rates and run its model: run --cases default first"}, first)
    print_report([cases[k] for k in args.cases if k in cases])
    print(f"written: {out} ({time.monotonic() - t_start:.0f} s, of which {sum(p['seconds'] for p in PHASES):.0f} s under the lock)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
