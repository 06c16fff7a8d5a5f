"""The model's results in the farm's own summary shape (`farm.summary.summarise`), so a
simulated run and a real one compare key by key and `trigger_sim.sustained.verdict` judges
both. Keys the model has no counterpart for (output files, process ids) are left out; a
`model` section adds what only the model knows (server utilisation per model, batch sizes)."""

from __future__ import annotations

from typing import Any

import numpy as np

from trigger_sim.latency import PERCENTILES
from trigger_sim.planning.calibration import CPU_STEPS, MODELS
from trigger_sim.planning.farm_model import (
    ACCEPTED,
    EXPIRED,
    FALLBACK,
    PENDING,
    REASONS,
    REJECTED,
    TIMEOUT,
    TRITON,
    VETOED,
    FarmModel,
)
from trigger_sim.windows import window_stats

WINDOW_S = 1.0  # as the farm's summary (farm.summary.WINDOW_S): the first window is warm-up
WINDOW_EVENTS = 1000  # at rates where 1 s holds more, windows shrink to about this many events (Poisson noise ~3 %)
LATENCY_ORDER = ("assign", "build", "queue", "transfer", "decode", "unpack", "calo", "graph", "edge_classifier", "tracks",
                 "jet_features", "jet_tagger", "menu", "worker_total", "total")


def stats(values_ms: np.ndarray) -> dict[str, float]:
    """n, mean, p50/p90/p99/p99.9, max: the keys of the farm's latency table."""
    data = np.asarray(values_ms, np.float64)
    data = data[~np.isnan(data)]
    if len(data) == 0:
        return {"n": 0, "mean": 0.0, **{f"p{p:g}": 0.0 for p in PERCENTILES}, "max": 0.0}
    pct = np.percentile(data, PERCENTILES)
    return {"n": int(len(data)), "mean": float(data.mean()), **{f"p{p:g}": float(v) for p, v in zip(PERCENTILES, pct)},
            "max": float(data.max())}


def window_s(rate_hz: float) -> float:
    """The farm's 1 s windows at its own rates; at the rates of a large farm (a simulated
    second of 100 kHz is 100,000 events) windows of about `WINDOW_EVENTS` events, so the
    sustained verdict's stability and keep-up checks have windows to judge."""
    return min(WINDOW_S, WINDOW_EVENTS / rate_hz)


def decided_mask(model: FarmModel) -> np.ndarray:
    """Per Level-1 slot: whether it was decided (accepted, rejected or HltTimeout)."""
    out = model.outcome
    return (out == ACCEPTED) | (out == REJECTED) | (out == TIMEOUT)


def total_latency_ms(model: FarmModel) -> np.ndarray:
    """Each decided event's total latency (Level-1 accept to decision), in Level-1 order:
    the values the summary's `latency_ms.total` percentiles come from."""
    return (model.decided_ms - model.t_l1_ms)[decided_mask(model)]


def summarise(model: FarmModel, wall_s: float = 0.0) -> dict[str, Any]:
    spec, out, cal = model.spec, model.outcome, model.cal
    decided = decided_mask(model)
    worked = ~np.isnan(model.worker_ms)
    vetoed = int(np.count_nonzero(out == VETOED))
    l1 = int(np.count_nonzero(out != VETOED))
    lost = int(np.count_nonzero(out == PENDING))
    t_l1 = model.t_l1_ms
    elapsed_s = float(t_l1[-1] / 1e3) if len(t_l1) else 0.0
    latency = {"assign": stats(model.assign_ms[decided]), "build": stats(model.draws.build_ms[decided]), "queue": stats(model.queue_ms[worked]),
               "transfer": stats(model.draws.transfer_ms[worked])}
    rows = model.draws.row[worked]
    for step in CPU_STEPS:
        latency[step] = stats(cal.events[step][rows])
    for m in MODELS:
        latency[m] = stats(model.call_ms[m])
    latency["worker_total"] = stats(model.worker_ms[worked])
    total = model.decided_ms - t_l1
    latency["total"] = stats(total_latency_ms(model))
    latency = {k: latency[k] for k in LATENCY_ORDER}
    any_fallback = np.zeros(len(out), bool)
    any_triton = np.zeros(len(out), bool)
    models = {}
    for m in MODELS:
        p = model.path[m]
        any_fallback |= p == FALLBACK
        any_triton |= p == TRITON
        models[m] = {"triton_calls": int(np.count_nonzero(p == TRITON)), "fallback_calls": int(np.count_nonzero(p == FALLBACK)),
                     "skipped": int(np.count_nonzero(worked & ~model.draws.called[m])),
                     "expired": int(np.count_nonzero(p == EXPIRED))}
    reasons = {REASONS[c]: int(np.count_nonzero(model.reason == c)) for c in range(1, len(REASONS))}
    span_ms = np.nanmax(model.decided_ms) - np.nanmin(model.decided_ms) if decided.any() else 0.0
    # windows over the decisions made while Level-1 still offered events: the drain after the
    # last arrival is not the farm's steady rate (at 100 kHz it spans many short windows)
    steady = decided & (model.decided_ms <= t_l1[-1])
    order = np.argsort(model.decided_ms[steady])
    decided_ns = (model.decided_ms[steady][order] * 1e6).astype(np.int64)
    servers = []
    offered_ms = max(float(t_l1[-1]), 1e-9)
    for s in model.servers:
        back = [t for channels in model.channels if s.index in channels for t in channels[s.index].reconnected_ms]
        servers.append({"server": s.index, "failed_requests": s.failed_requests,
                        # when its workers' channels connected again after it died: the earliest and the
                        # latest over every worker and kill (s); calls refused meanwhile: model.unreachable_calls
                        "reconnected_s": [min(back) / 1e3, max(back) / 1e3] if back else [],
                        "restarts_s": [ms / 1e3 for ms in s.restarts_ms],  # each restart, kill to back
                        "models": {m: {"instances": model.kind.models[m].instances,
                                       # busy while Level-1 offered events (the drain after the last arrival is not load)
                                       "utilisation": q.busy_offered_ms / (offered_ms * max(model.kind.models[m].instances, 1)),
                                       "executions": q.executions,
                                       "mean_batch": q.batched_requests / q.executions if q.executions else 0.0}
                                   for m, q in s.queues.items()}})
    n_timeout = int(np.count_nonzero(out == TIMEOUT))
    return {
        "events": {"l1_accepted": l1, "l1_count_known": True, "accepted": int(np.count_nonzero(out == ACCEPTED)),
                   "rejected": int(np.count_nonzero(out == REJECTED)), "debug": n_timeout, "lost": lost},
        "debug_streams": {"HltTimeout": n_timeout} if n_timeout else {},
        "inference": {"server": f"model: {spec.farm.servers} x {model.kind_name}", "server_mode": "model",
                      "triton_calls": int(np.count_nonzero(decided & any_triton & ~any_fallback)),
                      "fallback_calls": int(np.count_nonzero(decided & any_fallback)),
                      "fallback_reasons": {k: v for k, v in reasons.items() if v},
                      "models": models, "breaker_opened": model.breaker_opened},
        "latency_ms": latency,
        "level1": {"rate_hz_configured": spec.arrivals.rate_hz, "pattern": spec.arrivals.pattern,
                   "input_rate_hz": l1 / elapsed_s if elapsed_s else 0.0, "vetoed_busy": vetoed, "vetoed_readout_slow": 0,
                   "deadtime_fraction": vetoed / len(out), "elapsed_s": elapsed_s},
        "throughput": {"decided_per_s": int(decided.sum()) / (span_ms / 1e3) if span_ms > 0 else 0.0,
                       "accepted_per_s": int(np.count_nonzero(out == ACCEPTED)) / (span_ms / 1e3) if span_ms > 0 else 0.0},
        "windows": window_stats(decided_ns, total[steady][order], window_s=window_s(spec.arrivals.rate_hz),
                                skip_s=window_s(spec.arrivals.rate_hz)),
        "workers": {"count": model.n_workers, "slots_per_worker": spec.farm.slots_per_worker, "restarts": 0},
        "problems": [f"{lost} Level-1 accepts without an outcome"] if lost else [],
        "model": {"calibration": cal.name, "server_kind": model.kind_name, "servers": servers,
                  "failovers": model.failovers, "unreachable_calls": model.unreachable_calls, "events_simulated": spec.events, "seed": spec.seed,
                  "fallback_fraction": int(np.count_nonzero(decided & any_fallback)) / max(int(decided.sum()), 1)},
        "wall_s": wall_s,
    }


def simulate(spec, cal, progress=None) -> dict[str, Any]:
    """Build the model, run it, and return its summary."""
    import time

    t0 = time.perf_counter()
    model = FarmModel(spec, cal)
    model.run(progress)
    return summarise(model, time.perf_counter() - t0)
