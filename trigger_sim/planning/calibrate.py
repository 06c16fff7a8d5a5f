"""Making a calibration from measurements: a run folder's per-event table (events.parquet),
the benchmark's per-process CPU figures (benchmarks.json) and, for another server, a
perf_analyzer CSV (latency against concurrency or batch size)."""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import platform
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from trigger_sim.errors import ConfigError
from trigger_sim.planning import idle_slowdown
from trigger_sim.planning.calibration import CPU_STEPS, MODELS, OUTCOMES, STEPS_BEFORE, Calibration, ModelCurve, ServerKind

# the CPU server's model configurations (model_repository/*/config.pbtxt): instances and batching
CPU_SERVER_MODELS = {"edge_classifier": {"instances": 2, "max_batch": 0, "queue_delay_ms": 0.0},
                     "jet_tagger": {"instances": 1, "max_batch": 256, "queue_delay_ms": 0.2}}
EDGE_BYTES_PER_EDGE = 47.0  # a pile-up-60 hit graph: ~1.5 MB for ~31,900 edges (README, replay section)
JET_BYTES_PER_JET = 64.0  # 16 float32 features per jet
OVERHEAD_PROCESSES = ("readout", "builder", "supervisor_collector")  # the farm's own CPU per event


def worker_idle_gaps_ms(cols: dict[str, list]) -> tuple[np.ndarray | None, str]:
    """Per row of a per-event table: how long its worker had been idle before it
    (`idle_slowdown.idle_gaps_ms`; the worker's span: its decision time minus its
    worker_total), and a note; None when the table lacks a column it needs."""
    needed = ("worker", "decided_ns", "worker_total_ms")
    if any(c not in cols for c in needed):
        return None, f"not measured: the table has no {', '.join(c for c in needed if c not in cols)} column"
    end_ms = np.array([np.nan if v is None else v / 1e6 for v in cols["decided_ns"]], np.float64)
    span = np.array([np.nan if v is None else v for v in cols["worker_total_ms"]], np.float64)
    workers = np.array(["" if w is None else str(w) for w in cols["worker"]])
    gaps = idle_slowdown.idle_gaps_ms(end_ms - span, end_ms, workers)
    return gaps, ("per event, its worker's idle time before it: its start (decided_ns - worker_total_ms) minus the end of "
                  "the worker's earlier events (0 while another of its events ran; null: its worker's first event)")


def from_run_folder(folder: str | Path, name: str = "", pileup: float | None = None, benchmarks: str | Path | None = None,
                    rtt_ms: float = 0.0, kind: str = "cpu-local", local_models: tuple[str, ...] = (),
                    process_cpu: ProcessCpu | None = None, node_slots: int | None = None) -> Calibration:
    """A calibration from a run folder's events.parquet (decided normally, every model call
    answered by the server): per-event rows, and the server's curves with each call's own
    measured demand (the step's time minus `rtt_ms`).

    The farm's own CPU per event and the server's CPU share of a call come from each farm
    process's CPU per event: measured in the calibration run itself (`process_cpu`, the
    better source: the same code, the same rate) or, failing that, the farm case of this
    host's `benchmarks` (benchmarks.json, at its sustainable rate). Either must be measured at
    the rate the model will judge: at a low rate idle polling and the server's background
    threads are spread over few events and inflate both.
    `local_models`: models the run's workers ran themselves (not in `inference.models`): their
    measured step time is the worker's CPU, counted in the CPU step just before the call.
    `node_slots`: the event slots the run's node offered (`trigger_sim.assignment.node_slots`; default
    from summary.json, `workers.node_slots`): with it each event's
    assignment round trip is told apart from its wait for a slot (`assign_round_trip_ms`)."""
    import pyarrow.parquet as pq

    folder = Path(folder)
    table_path = folder / "events.parquet" if folder.is_dir() else folder
    if not table_path.exists():
        raise ConfigError(f"{table_path}: no per-event table; run the farm with an output folder "
                          "(`trigger-sim run --output DIR`) or --events-table, then calibrate from it")
    cols = pq.read_table(table_path).to_pydict()
    needed = ["outcome", "build_ms", "transfer_ms", *(f"{s}_ms" for s in CPU_STEPS), *(f"{m}_ms" for m in MODELS),
              *(f"{m}_path" for m in MODELS), "n_edges", "n_jets"]
    missing = [c for c in needed if c not in cols]
    if missing:
        raise ConfigError(f"{table_path}: columns {', '.join(missing)} missing: not a trigger-sim per-event table")
    n = len(cols["outcome"])
    keep = [i for i in range(n) if cols["outcome"][i] in OUTCOMES
            and all(cols[f"{m}_path"][i] in ("triton", "skipped", "") for m in MODELS if m not in local_models)
            and all(cols[f"{s}_ms"][i] is not None for s in ("build", "transfer", *CPU_STEPS))]
    if len(keep) < 100:
        raise ConfigError(f"{table_path}: only {len(keep)} events decided normally with every call answered by the "
                          "server; a calibration needs at least 100 (run longer, below saturation)")

    def column(name: str) -> np.ndarray:
        return np.array([cols[name][i] if cols[name][i] is not None else 0.0 for i in keep], np.float64)

    events: dict[str, np.ndarray] = {"build": column("build_ms"), "transfer": column("transfer_ms")}
    for s in CPU_STEPS:
        events[s] = column(f"{s}_ms")
    sizes = {"edge_classifier": column("n_edges"), "jet_tagger": column("n_jets")}
    for m in local_models:
        events[STEPS_BEFORE[m][-1]] = events[STEPS_BEFORE[m][-1]] + column(f"{m}_ms")
    for m in MODELS:
        called = np.array([cols[f"{m}_path"][i] == "triton" and m not in local_models for i in keep])
        events[f"{m}_called"] = called
        events[f"{m}_demand"] = np.where(called, np.maximum(column(f"{m}_ms") - rtt_ms, 0.0), 0.0)
        events[f"{m}_size"] = np.where(called, sizes[m], 0.0)
    events["outcome"] = np.array([OUTCOMES.index(cols["outcome"][i]) for i in keep], np.int8)
    gaps, gap_note = worker_idle_gaps_ms(cols)
    if gaps is not None:
        events["idle_gap_ms"] = gaps[keep]
    summary = folder / "summary.json" if folder.is_dir() else None
    run_summary = json.loads(summary.read_text()) if summary is not None and summary.exists() else None
    if node_slots is None and run_summary is not None:
        workers = run_summary["workers"]
        # the node's slots as run control recorded them; a summary from before: its workers x 2
        node_slots = int(workers.get("node_slots") or 2 * int(workers["count"]))
    round_trip, assign_note = assign_round_trip_ms(cols, node_slots) if node_slots else (None, "not estimated: node slots unknown")
    if round_trip is not None:
        events["assign"] = round_trip[keep]

    host: dict[str, float] = {"cores": float(os.cpu_count() or 1)}
    dispatch_ms, dispatch_note = credit_round_trip_ms(cols, range(n))  # every event: each one's result carried a credit
    host["dispatch_ms"] = dispatch_ms
    cpu_share, bench_note = 1.0, "no process CPU given: a server call is taken as all CPU"
    if process_cpu is None and benchmarks is not None:
        process_cpu = ProcessCpu(benchmark_cpu_per_event(benchmarks),
                                 f"{benchmarks}: farm case, cpu_ms_per_event_at_sustainable")
    if process_cpu is not None:
        per_process = process_cpu.ms_per_event
        missing = {"tritonserver", *OVERHEAD_PROCESSES} - set(per_process)
        if missing:
            raise ConfigError(f"{process_cpu.source}: no CPU per event for {', '.join(sorted(missing))}")
        # the worker's CPU outside its timed steps (receiving and decoding the event, the calls'
        # client side, answering): on the host's cores like the farm's own processes
        steps_ms = float(sum(events[s].mean() for s in CPU_STEPS))
        outside_ms = max(per_process.get("workers", 0.0) - steps_ms, 0.0)
        host["overhead_cpu_ms_per_event"] = sum(per_process[p] for p in OVERHEAD_PROCESSES) + outside_ms
        # ... and on the worker's own core where it has one (a farm of dedicated nodes: no shared host)
        host["worker_outside_cpu_ms_per_event"] = outside_ms
        mean_demand = float(sum(events[f"{m}_demand"].mean() for m in MODELS))
        cpu_share = min(1.0, per_process["tritonserver"] / mean_demand)
        bench_note = (f"{process_cpu.source}: {json.dumps({k: round(v, 3) for k, v in per_process.items()})}; "
                      f"server CPU share = tritonserver {per_process['tritonserver']:.2f} ms / mean demand {mean_demand:.2f} ms; "
                      f"overhead = readout + builder + collector + the workers' CPU outside their timed steps "
                      f"({per_process.get('workers', 0.0):.2f} - {steps_ms:.2f} = {outside_ms:.2f} ms)")
    models = {}
    for m, conf in CPU_SERVER_MODELS.items():
        models[m] = ModelCurve(instances=conf["instances"], max_batch=conf["max_batch"], queue_delay_ms=conf["queue_delay_ms"],
                               fixed_ms=fixed_cost_ms(events, m), empirical=True, cpu_share=cpu_share,
                               bytes_per_unit=EDGE_BYTES_PER_EDGE if m == "edge_classifier" else JET_BYTES_PER_JET)
    provenance = {"source": str(table_path), "events_in_table": n, "events_used": len(keep),
                  "created_utc": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                  "host": {"cores": os.cpu_count(), "machine": platform.machine(), "python": platform.python_version()},
                  "demand": f"each call's measured time (worker side, loopback gRPC) minus rtt_ms = {rtt_ms}",
                  "fixed_ms": "1st percentile of the demand (batching saves it per execution)",
                  "dispatch_ms": dispatch_note,
                  "idle_gap_ms": gap_note,
                  "assign": assign_note,
                  "build": ("each event's build_ms: its first fragment at the node to complete (the wait for a node "
                            "slot before it, assign_ms, the model makes itself)" if "assign_ms" in cols else
                            "each event's build_ms from a table without assign_ms: Level-1 accept to complete, so it "
                            "holds the wait for a node slot, which the model then adds again; calibrate from a newer run"),
                  "process_cpu": bench_note}
    if run_summary is not None:
        s = run_summary
        provenance["run"] = {"rate_hz": s["level1"]["rate_hz_configured"], "pattern": s["level1"]["pattern"],
                             "workers": s["workers"]["count"], "server": s["inference"].get("server_model_config")}
    servers = {kind: ServerKind(models, "tritonserver on this host's CPU, the models' config.pbtxt",
                                {"source": str(table_path)})}
    return Calibration(name=name or folder.name, provenance=provenance, events=events, servers=servers, pileup=pileup,
                       rtt_ms=rtt_ms, host=host)


def fixed_cost_ms(events: dict[str, np.ndarray], model: str) -> float:
    """An empirical curve's fixed cost per execution (what batching saves per request): the
    1st percentile of the model's measured call demands (0 if it was never called)."""
    called = events[f"{model}_called"]
    return float(np.percentile(events[f"{model}_demand"][called], 1)) if called.any() else 0.0


def pooled(cals: list[Calibration], name: str = "") -> Calibration:
    """One calibration from several runs of the same farm (the same server kinds, models,
    pile-up and cores): their events together, and each scalar (the host's CPU per event and
    round trips, a model's CPU share, the call's round trip) as the mean over their events; an
    empirical curve's fixed cost from the pooled calls, as for one run (`fixed_cost_ms`).

    The runs may be spread over a session, so that a spell in which the host ran slower or
    faster than usual weighs on the calibration by its share of the events only. Pooling
    before the assignment round trips are reconstructed would mix runs: each is calibrated
    on its own first (`calibrate.from_run_folder`), then pooled."""
    if not cals:
        raise ConfigError("no calibration to pool")
    first = cals[0]
    for other in cals[1:]:
        names = f"calibrations {first.name!r} and {other.name!r}"
        differ = [what for what, a, b in (("pile-up", first.pileup, other.pileup),
                                          ("event columns", set(first.events), set(other.events)),
                                          ("host keys", set(first.host), set(other.host)),
                                          ("host cores", first.host.get("cores"), other.host.get("cores")),
                                          ("server kinds", set(first.servers), set(other.servers))) if a != b]
        if differ:
            raise ConfigError(f"{names} are not of the same farm ({', '.join(differ)} differ): not pooled")
        for kind, server in first.servers.items():
            theirs = other.servers[kind]
            if set(theirs.models) != set(server.models) or any(
                    replace(theirs.models[m], cpu_share=0.0, fixed_ms=0.0) != replace(curve, cpu_share=0.0, fixed_ms=0.0)
                    for m, curve in server.models.items()):
                raise ConfigError(f"{names} differ in server {kind!r} beyond its CPU share and fixed cost: not pooled")
    weights = np.array([c.n_events for c in cals], np.float64)
    if weights.sum() <= 0:
        raise ConfigError("the calibrations to pool hold no events")

    def mean(values: list[float], w: np.ndarray = weights) -> float:
        return float(np.average(np.asarray(values, np.float64), weights=w))

    # a CPU share is the server's CPU per event over the mean demand per event: pooled as the
    # runs' server CPU together over their demand together (not a mean of the ratios)
    demand_ms = np.array([sum(c.events[f"{m}_demand"].mean() for m in MODELS) if c.n_events else 0.0 for c in cals])
    by_demand = weights * demand_ms if (weights * demand_ms).sum() > 0 else weights
    events = {k: np.concatenate([c.events[k] for c in cals]) for k in first.events}
    host = {k: mean([c.host[k] for c in cals]) for k in first.host}
    servers = {kind: replace(server, models={m: replace(
        curve, cpu_share=mean([c.servers[kind].models[m].cpu_share for c in cals], by_demand),
        fixed_ms=fixed_cost_ms(events, m) if curve.empirical else mean([c.servers[kind].models[m].fixed_ms for c in cals]))
        for m, curve in server.models.items()}) for kind, server in first.servers.items()}
    provenance = {"pooled": f"{len(cals)} runs ({', '.join(str(c.n_events) for c in cals)} events): their events together, "
                            "each scalar the mean over their events, a CPU share over their demand",
                  "runs": [c.provenance for c in cals]}
    runs = [c.provenance.get("run") for c in cals]
    if all(r and r.get("rate_hz") == runs[0].get("rate_hz") for r in runs):  # the rate the runs were made at
        provenance["run"] = {**runs[0], "runs": len(cals)}
    return replace(first, name=name or first.name, events=events, host=host, servers=servers,
                   rtt_ms=mean([c.rtt_ms for c in cals]), provenance=provenance)


def assign_round_trip_ms(cols: dict[str, list], node_slots: int) -> tuple[np.ndarray | None, str]:
    """Per event of the table: its assignment round trip, the time from when a node slot was
    there for it to its first fragment at the node (ACCEPT to run control, ASSIGN back, the
    readout's send, which waits while the readout prepares its next event). The rest of its
    `assign_ms` is the wait for a slot, which the model makes itself.

    The slot an accept waits for is reconstructed from the table: accepts are served oldest
    first and each decision frees one of the node's `node_slots`, so the k-th accept (in
    Level-1 order, from 0) could have had a slot at max(its Level-1 time, decision number
    k - node_slots in time order, from 0). Decisions count only for events with a Level-1
    time (an outcome run control gave itself, after a node was lost, held no slot to free).
    With the right `node_slots` no round trip comes out below 0; the note says how many did
    (clipped to 0: a sign the count is wrong). One node only (its events are all the
    assignment service served); None where the table lacks the columns or holds several."""
    need = ("l1_time_ns", "assign_ms", "decided_ns")
    if any(c not in cols for c in need):
        return None, "not estimated: the table lacks " + ", ".join(c for c in need if c not in cols)
    workers = cols.get("worker", [None] * len(cols["l1_time_ns"]))
    hosts = {h for h, w in zip(cols.get("host", []), workers) if h and w}  # where events were decided by a worker
    if len(hosts) > 1:
        return None, f"not estimated: the run had {len(hosts)} nodes (calibrate from a one-node run)"
    n = len(cols["l1_time_ns"])
    l1_ms = np.array([v if v is not None else np.nan for v in cols["l1_time_ns"]], np.float64) / 1e6
    decided_ms = np.sort(np.array([d for t, d in zip(cols["l1_time_ns"], cols["decided_ns"])
                                   if t is not None and d is not None], np.float64) / 1e6)
    assign = np.array([v if v is not None else np.nan for v in cols["assign_ms"]], np.float64)
    order = np.argsort(l1_ms, kind="stable")
    free_ms = np.full(n, -np.inf)
    k = np.arange(n) - node_slots  # the decision that freed the k-th accept's slot
    has = (k >= 0) & (k < len(decided_ms))
    free_ms[order[has]] = decided_ms[k[has]]
    raw = l1_ms + assign - np.maximum(l1_ms, free_ms)
    negative = int(np.count_nonzero(raw < -0.01))  # beyond the stamps' rounding
    out = np.clip(raw, 0.0, None)
    known = ~np.isnan(out)
    if known.sum() < MIN_DISPATCH_SAMPLES:
        return None, f"not estimated: only {int(known.sum())} events have an assign time"
    waited = np.count_nonzero(known & (free_ms > l1_ms))
    note = (f"each event's assign_ms less its wait for one of the node's {node_slots} slots (reconstructed: oldest "
            f"accept first, a slot freed per decision); {waited} of {int(known.sum())} events waited; round trip median "
            f"{float(np.nanmedian(out)):.2f} ms, p99 {float(np.nanpercentile(out, 99)):.2f} ms")
    if negative:
        note += (f"; {negative} came out below 0 and were set to 0: the node probably offered more than "
                 f"{node_slots} slots (give the right count)")
    return np.nan_to_num(out, nan=float(np.nanmedian(out))), note


MIN_DISPATCH_SAMPLES = 20  # events that waited for a credit: fewer and the round trip is not estimated


def credit_round_trip_ms(cols: dict[str, list], rows: Iterable[int]) -> tuple[float, str]:
    """The mean time from a worker's end of one event to the builder's sending of its next,
    over the events that waited in the builder for that credit: complete (waiting) when the
    worker ended, sent later. That is the credit round trip a slot sits idle for. An event that
    became complete only after the worker had ended says nothing about it: the gap then holds
    the worker's idle time before the event existed (at a low rate, tens of ms), and its wait
    in the builder was for something else (the builder reading a batch of fragments). Counted,
    a few such gaps made a one-slot run's mean 6.45 ms against a median of 0.75 ms.
    Measured per worker on a one-slot run; 0 where the table lacks the columns or too few
    events waited. `rows`: every event the workers ran, not only those calibrated on: the
    event before one that waited must be the worker's previous event, whatever its path (one
    whose end is unknown gives no gap)."""
    need = ("worker", "l1_time_ns", "build_ms", "queue_ms", "transfer_ms", "worker_total_ms")
    if any(c not in cols for c in need):
        return 0.0, "not estimated: the table lacks " + ", ".join(c for c in need if c not in cols)
    gaps: list[float] = []
    by_worker: dict[str, list[tuple[float, float | None, float]]] = {}
    assign = cols.get("assign_ms")  # a table made before the split: the wait for a node is in build_ms
    for i in rows:
        worker, l1_ns, build, queue, transfer, total = (cols[c][i] for c in need)
        if worker is None or l1_ns is None or build is None or queue is None:
            continue  # never dispatched to a worker
        waited_ms = (assign[i] or 0.0) if assign is not None else 0.0  # in the readout, for a node slot
        sent = l1_ns / 1e6 + waited_ms + build + queue
        end = sent + transfer + total if transfer is not None and total is not None else None
        by_worker.setdefault(worker, []).append((sent, end, queue))
    for events in by_worker.values():
        events.sort(key=lambda e: e[0])
        for (_, end, _), (sent, _, queue) in zip(events, events[1:]):
            complete = sent - queue
            if end is not None and queue > 0.5 and complete <= end <= sent:  # waiting when the worker ended: its credit
                gaps.append(sent - end)
    if len(gaps) < MIN_DISPATCH_SAMPLES:
        return 0.0, f"not estimated: only {len(gaps)} events waited for a credit (calibrate at a higher rate)"
    mean = float(np.mean(gaps))
    return mean, (f"mean of {len(gaps)} gaps between a worker's end of an event and the dispatch of its next one "
                  f"that waited for the credit (median {float(np.median(gaps)):.2f} ms)")


@dataclass(frozen=True)
class ProcessCpu:
    """CPU ms per decided event of each farm process group (readout, builder, workers,
    tritonserver, supervisor_collector), and where it was measured."""

    ms_per_event: dict[str, float]
    source: str


def benchmark_cpu_per_event(path: str | Path) -> dict[str, float]:
    """CPU ms per event of each farm process at the sustainable rate, from benchmarks.json."""
    try:
        metrics = json.loads(Path(path).read_text())["cases"]["farm"]["metrics"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        raise ConfigError(f"{path}: no farm case in this benchmarks.json ({err}); run scripts/bench.py") from err
    prefix = "cpu_ms_per_event_at_sustainable."
    out = {k[len(prefix):]: float(v["median"]) for k, v in metrics.items() if k.startswith(prefix)}
    missing = {"tritonserver", *OVERHEAD_PROCESSES} - set(out)
    if missing:
        raise ConfigError(f"{path}: farm case lacks {', '.join(prefix + m for m in sorted(missing))}")
    return out


def server_from_perf_analyzer(path: str | Path, model: str, instances: int, max_batch: int = 0,
                              queue_delay_ms: float = 0.0) -> ModelCurve:
    """A model's curve from a perf_analyzer CSV (`-f file.csv`): a straight line through the
    server-side compute time per request against the batch size (`Batch` or `Concurrency`
    column; `Server Compute Infer` in µs), fixed_ms its intercept, per_request_ms its slope."""
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the perf_analyzer CSV: {err}") from err
    if not rows:
        raise ConfigError(f"{path}: empty CSV")
    xcol = "Batch" if "Batch" in rows[0] else "Concurrency"
    need = {xcol, "Server Compute Infer"}
    if not need <= set(rows[0]):
        raise ConfigError(f"{path}: columns {sorted(need - set(rows[0]))} missing (perf_analyzer -f writes them)")
    x = np.array([float(r[xcol]) for r in rows])
    y_ms = np.array([float(r["Server Compute Infer"]) for r in rows]) / 1e3
    if len(rows) >= 2 and np.ptp(x) > 0:
        slope, intercept = np.polyfit(x, y_ms, 1)
    else:
        slope, intercept = 0.0, float(y_ms.mean())
    return ModelCurve(instances=instances, max_batch=max_batch, queue_delay_ms=queue_delay_ms,
                      fixed_ms=max(float(intercept), 0.0), per_request_ms=max(float(slope), 0.0), cpu_share=0.0)


def with_fixed_server(cal: Calibration, model: str, service_ms: float, instances: int) -> Calibration:
    """`cal` with `model` served by a server that answers each request `service_ms` after it
    starts, `instances` at once, one request per execution and none of the host's CPU (a sleep
    model, or a remote GPU of known latency); its other models' curves unchanged."""
    if not service_ms >= 0 or instances < 1:
        raise ConfigError(f"a fixed server needs service_ms >= 0 and instances >= 1, not {service_ms}, {instances}")
    servers = {}
    for name, kind in cal.servers.items():
        models = {**kind.models, model: ModelCurve(instances=instances, fixed_ms=service_ms, cpu_share=0.0)}
        servers[name] = replace(kind, models=models, description=f"{kind.description}; {model}: {service_ms:g} ms fixed")
    provenance = {**cal.provenance, "fixed_server": f"{model}: {service_ms:g} ms per request, {instances} instances, no host CPU"}
    return replace(cal, servers=servers, provenance=provenance)


def model_worker_mean_ms(cal: Calibration, farm: Any, rate_hz: float, events: int, seed: int, pattern: str) -> float:
    """The model's mean worker time (ms) on `farm` at `rate_hz`: what the calibration's fixed
    points (`deflate_contention`, `scale_for_low_rate`) match against measured ones."""
    from trigger_sim.planning.model_summary import simulate
    from trigger_sim.planning.spec import ArrivalSpec, PlanSpec

    spec = PlanSpec(ArrivalSpec(rate_hz=rate_hz, pattern=pattern), farm, events=events, seed=seed)
    return simulate(spec, cal)["latency_ms"]["worker_total"]["mean"]


def deflate_contention(cal: Calibration, farm: Any, rate_hz: float, events: int = 20_000, seed: int = 7,
                       pattern: str = "poisson", iterations: int = 3) -> Calibration:
    """The calibration with its CPU step times and server demands divided by the core
    contention the model itself adds at the calibration run's rate on the calibration's farm
    (`farm`, a FarmSpec with `host_cores`): the steps were timed at that rate, so they already
    hold that contention, and the model would count it twice. The stretch: the factor that
    makes the model's mean worker time at `rate_hz` equal the calibrated steps' (the model's
    mean at a rate 20 times lower, without contention), found in `iterations` fixed-point
    steps; recorded in `host.contention_stretch` and the provenance."""
    if not farm.host_cores:
        return cal

    def worker_mean(c: Calibration, rate: float, n: int, idle: bool = True) -> float:
        return model_worker_mean_ms(c, replace(farm, idle_slowdown=idle and farm.idle_slowdown), rate, n, seed, pattern)

    def scaled(stretch: float) -> Calibration:
        """Wall times / stretch, CPU kept: the processes' measured CPU per event does not shrink
        (a server call's CPU share grows to keep its CPU; the workers' steps' CPU moves to their
        CPU outside the steps, on the shared cores)."""
        ev = dict(cal.events)
        for name in (*CPU_STEPS, *(f"{m}_demand" for m in MODELS)):
            ev[name] = ev[name] / stretch
        steps_ms = float(sum(cal.events[s].mean() for s in CPU_STEPS))
        host = dict(cal.host)
        if "overhead_cpu_ms_per_event" in host:
            host["overhead_cpu_ms_per_event"] += steps_ms * (1 - 1 / stretch)
        servers = {k: replace(kind, models={m: replace(c, cpu_share=min(1.0, c.cpu_share * stretch)) for m, c in kind.models.items()})
                   for k, kind in cal.servers.items()}
        return replace(cal, events=ev, host=host, servers=servers)

    # the stretch S with which the model at the calibration rate takes, per event, what the
    # calibrated steps took (their uncontended mean): a few fixed-point steps
    # (the target without the idle slowdown: at a 20 times lower rate the workers idle long,
    # and it would count as contention; at the calibration rate it is on, as it will be used)
    target = worker_mean(cal, rate_hz / 20, max(events // 10, 1000), idle=False)
    stretch = 1.0
    for _ in range(iterations):
        stretch = max(stretch * worker_mean(scaled(stretch), rate_hz, events) / target, 1.0)
    out = scaled(stretch)
    note = (f"CPU steps and server demands (wall times) divided by {stretch:.4f}, their CPU kept (the servers' CPU "
            f"share x {stretch:.4f}, capped at 1; the steps' CPU moved to the overhead on the shared cores): with it the "
            f"model's mean worker time at the calibration rate {rate_hz:g} Hz equals the calibrated one (its mean at "
            f"{rate_hz / 20:g} Hz); the contention the model adds is already in the steps timed at that rate")
    return replace(out, host={**out.host, "contention_stretch": stretch},
                   provenance={**cal.provenance, "contention_deflation": note})


def scale_for_low_rate(cal: Calibration, farm: Any, low_rate_hz: float, real_worker_mean_ms: float, cal_rate_hz: float,
                       events: int = 5_000, seed: int = 7, pattern: str = "poisson", iterations: int = 3) -> Calibration:
    """The calibration with the factor its steps need at a low rate (`idle_slowdown.rate_scale`):
    the one with which the model's mean worker time at `low_rate_hz` on `farm` equals a real
    run's there (`real_worker_mean_ms`), found in `iterations` fixed-point steps, with the
    per-worker rates it goes from and to (`cal_rate_hz`: the calibration's own rate, factor 1).
    Apply after `deflate_contention`: the factor is what the real steps at the low rate took
    beyond the model's own contention and idle gaps there."""
    workers = farm.nodes * farm.workers_per_node

    def with_scale(scale: float) -> Calibration:
        return replace(cal, host={**cal.host, "low_rate_step_scale": scale, "low_rate_per_worker_hz": low_rate_hz / workers,
                                  "calibration_per_worker_hz": cal_rate_hz / workers})

    scale = 1.0
    for _ in range(iterations):
        scale *= real_worker_mean_ms / model_worker_mean_ms(with_scale(scale), farm, low_rate_hz, events, seed, pattern)
    note = (f"steps x {scale:.4f} at {low_rate_hz:g} Hz ({low_rate_hz / workers:g} events/s per worker), going linearly to x 1 "
            f"at the calibration rate {cal_rate_hz:g} Hz, flat beyond: with it the model's mean worker time at {low_rate_hz:g} Hz "
            f"equals a real run's there ({real_worker_mean_ms:.2f} ms)")
    out = with_scale(scale)
    return replace(out, provenance={**out.provenance, "low_rate_scale": note})
