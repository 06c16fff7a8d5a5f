"""Calibrations with chosen numbers, for tests whose answer is known analytically."""

from __future__ import annotations

import numpy as np

from trigger_sim.planning.calibration import CPU_STEPS, MODELS, Calibration, ModelCurve, ServerKind


def calibration(rows: int = 50, cpu_ms: float = 1.0, demand_ms: dict | None = None, called: bool = True,
                curves: dict | None = None, host: dict | None = None, spread: float = 0.0, seed: int = 0,
                build_ms: float = 0.0) -> Calibration:
    """`rows` events: `cpu_ms` spread evenly over the CPU steps (x a uniform factor 1 +- spread),
    each model's demand, `build_ms` of build and no transfer time; a "cpu" server kind with `curves`."""
    rng = np.random.default_rng(seed)
    factor = 1 + spread * rng.uniform(-1, 1, rows)
    demand_ms = demand_ms if demand_ms is not None else {m: 2.0 for m in MODELS}
    events = {"build": np.full(rows, build_ms), "transfer": np.zeros(rows)}
    for s in CPU_STEPS:
        events[s] = np.full(rows, cpu_ms / len(CPU_STEPS)) * factor
    for m in MODELS:
        events[f"{m}_demand"] = np.full(rows, demand_ms.get(m, 0.0))
        events[f"{m}_size"] = np.full(rows, 10.0)
        events[f"{m}_called"] = np.full(rows, called and demand_ms.get(m, 0.0) > 0)
    events["outcome"] = (np.arange(rows) % 5 == 0).astype(np.int8) ^ 1  # 1 in 5 accepted
    curves = curves or {m: ModelCurve(instances=1, empirical=True) for m in MODELS}
    return Calibration(name="synthetic", provenance={"made_by": "tests"}, events=events,
                       servers={"cpu": ServerKind(curves, "synthetic")}, pileup=0.0, host=host or {})
