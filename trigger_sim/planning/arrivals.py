"""Level-1 arrival times (s) for n events: constant, Poisson or bursts, drawn at once, or
the very times a real run's readout schedules with a given seed."""

from __future__ import annotations

from typing import Any

import numpy as np

from trigger_sim.pacing import readout_pacer


def arrival_times_s(pattern: str, rate_hz: float, n: int, rng: np.random.Generator, burst_factor: float = 10.0,
                    burst_events: int = 50) -> np.ndarray:
    """Times of `n` Level-1 accepts offered at mean rate `rate_hz`, starting near 0.

    burst: groups of `burst_events` at `burst_factor` x the mean rate (Poisson inside a
    burst), then a quiet gap so the mean rate over a burst and its gap is `rate_hz` (as the
    readout's burst pattern)."""
    if n < 1 or not rate_hz > 0:
        raise ValueError("need n >= 1 and rate_hz > 0")
    if pattern == "constant":
        return np.arange(n, dtype=np.float64) / rate_hz
    if pattern == "poisson":
        return np.cumsum(rng.exponential(1.0 / rate_hz, n))
    if pattern == "burst":
        gaps = rng.exponential(1.0 / (rate_hz * burst_factor), n)
        # after each burst a pause making the burst's mean spacing 1/rate
        quiet_s = burst_events * (1.0 / rate_hz - 1.0 / (rate_hz * burst_factor))
        gaps[burst_events::burst_events] += quiet_s
        return np.cumsum(gaps)
    raise ValueError(f"unknown arrival pattern {pattern!r}: use constant, poisson or burst")


def farm_arrival_times_s(arrivals: Any, n: int, seed: int) -> np.ndarray:
    """The Level-1 times (s from the run's start) of the first `n` events a real farm's
    readout offers with `run.seed = seed`, at `arrivals`' rate and pattern (an `ArrivalSpec`,
    or a farm's `[readout]` section): the readout's own scheduler (`readout_pacer`), so a
    model run can replay a real run's arrivals (a Poisson run's dense spells fall where the
    real run's did) and the two are compared on the same arrivals (the events themselves are
    still drawn from the calibration). A real run whose readout vetoed slots (Level-1 busy)
    offered its later events at later slots than these."""
    if n < 1:
        raise ValueError("need n >= 1")
    pacer = readout_pacer(arrivals, seed)
    return np.array([pacer.next_ns() for _ in range(n)], dtype=np.float64) / 1e9
