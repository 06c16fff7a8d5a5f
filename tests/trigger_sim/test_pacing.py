"""Tests of trigger_sim.pacing: Level-1 accept schedules."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trigger_sim.pacing import Pacer


@pytest.mark.parametrize("rate_hz, interval_ns", [(100.0, 10_000_000), (1000.0, 1_000_000), (1e6, 1000), (0.5, 2_000_000_000)])
def test_constant_spacing_is_exact(rate_hz, interval_ns):
    start = 5_000_000_123
    pacer = Pacer(rate_hz, "constant", start)
    times = [pacer.next_ns() for _ in range(10_000)]
    assert times[0] == start + interval_ns
    assert set(np.diff(times).tolist()) == {interval_ns}
    assert all(isinstance(t, int) for t in times[:10])


@pytest.mark.parametrize("rate_hz", [3.0, 7.0, 300.0, 12345.6])
def test_constant_spacing_does_not_drift(rate_hz):
    start = 10**12
    pacer = Pacer(rate_hz, "constant", start)
    interval = 1e9 / rate_hz
    for k in range(1, 20_001):
        t = pacer.next_ns()
        # no truncation build-up (that would be up to 1 ns per slot); only float rounding of
        # the running sum, below 1e-3 ns per slot at these times
        assert abs(t - (start + math.floor(k * interval))) <= 1 + 1e-3 * k
    # spacing differs from the mean interval by less than one ns
    pacer = Pacer(rate_hz, "constant", 0)
    diffs = np.diff([pacer.next_ns() for _ in range(1000)])
    assert np.all(np.abs(diffs - interval) < 1.0)


def test_constant_ignores_the_seed():
    a = Pacer(50.0, "constant", 0, seed=1)
    b = Pacer(50.0, "constant", 0, seed=2)
    assert [a.next_ns() for _ in range(100)] == [b.next_ns() for _ in range(100)]


@pytest.mark.parametrize("rate_hz", [100.0, 5000.0])
def test_poisson_mean_interval_and_shape(rate_hz):
    n = 40_000
    pacer = Pacer(rate_hz, "poisson", 0, seed=11)
    times = np.array([pacer.next_ns() for _ in range(n)])
    gaps = np.diff(np.concatenate([[0], times])).astype(np.float64)
    mean = 1e9 / rate_hz
    assert np.all(gaps >= 0)
    # exponential: the mean has relative standard error 1/sqrt(n) = 0.5 %; allow 5 sigma
    assert abs(gaps.mean() / mean - 1) < 5 / math.sqrt(n)
    # coefficient of variation ~1 (constant spacing would give 0)
    assert abs(gaps.std() / gaps.mean() - 1) < 0.05
    # fraction of gaps below the mean: 1 - 1/e
    assert abs((gaps < mean).mean() - (1 - math.exp(-1))) < 0.02
    assert np.all(np.diff(times) >= 0)


def test_poisson_is_reproducible_by_seed():
    def run(seed):
        p = Pacer(200.0, "poisson", 1000, seed=seed)
        return [p.next_ns() for _ in range(500)]

    assert run(3) == run(3)
    assert run(3) != run(4)
    assert run(3)[0] > 1000


@pytest.mark.parametrize(
    "rate_hz, pattern",
    [(0.0, "constant"), (-1.0, "poisson"), (100.0, "uniform"), (100.0, ""), (100.0, "Poisson")],
)
def test_bad_arguments_raise(rate_hz, pattern):
    with pytest.raises(ValueError):
        Pacer(rate_hz, pattern, 0)


def test_nan_rate_is_rejected():
    with pytest.raises(ValueError):
        Pacer(float("nan"), "constant", 0)


def test_burst_keeps_the_mean_rate_and_bunches_events():
    from trigger_sim.pacing import Pacer

    rate_hz, burst = 200.0, 20
    p = Pacer(rate_hz, "burst", 0, burst_factor=10.0, burst_events=burst)
    ts = [p.next_ns() for _ in range(burst * 50 + 1)]
    mean_interval_ns = (ts[-1] - ts[0]) / (len(ts) - 1)
    assert abs(mean_interval_ns - 1e9 / rate_hz) / (1e9 / rate_hz) < 0.01
    gaps = sorted(b - a for a, b in zip(ts, ts[1:]))
    assert gaps[0] < 1e9 / rate_hz / 9  # inside a burst: 10x the rate
    assert gaps[-1] > 1e9 / rate_hz * 10  # between bursts: a long quiet gap
