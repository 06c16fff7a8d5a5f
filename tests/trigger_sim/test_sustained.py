"""The one definition of a sustained run and rate, and the search for the highest one."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_sim.sustained import (CRITERIA, MIN_RELATIVE_STEP, Probe, events_needed, next_rate, repeat_seed,
                                   resolution, run_seconds, search, throughput_hz, verdict)

BUDGET_MS = 500.0


def summary(rate_hz: float = 46.0, seconds: int = 28, *, lost: int = 0, debug: int = 0, p99_ms: float = 300.0,
            n: int | None = None, vetoed_busy: int = 0, readout_slow: int = 0, problems: tuple[str, ...] = (),
            window_hz: list[float] | None = None) -> dict[str, Any]:
    """A run summary with the fields the verdict reads: a steady run at `rate_hz` by default."""
    per_window = window_hz or [rate_hz] * seconds
    decided = int(sum(per_window))
    return {
        "events": {"l1_accepted": decided + lost, "lost": lost, "debug": debug},
        "debug_streams": {"HltTimeout: soft timeout": debug} if debug else {},
        "problems": list(problems),
        "level1": {"input_rate_hz": rate_hz, "vetoed_busy": vetoed_busy, "vetoed_readout_slow": readout_slow},
        "latency_ms": {"total": {"n": decided if n is None else n, "p99": p99_ms}},
        "throughput": {"decided_per_s": rate_hz},
        "windows": [{"start_s": 1.0 + i, "events": int(w), "throughput_hz": float(w), "p50_ms": 50.0, "p99_ms": p99_ms}
                    for i, w in enumerate(per_window)],
    }


def test_a_steady_run_with_enough_events_passes():
    assert verdict(summary(), BUDGET_MS) == (True, [])


@pytest.mark.parametrize(("changes", "reason"), [
    ({"lost": 1}, "1 lost"),
    ({"debug": 2}, "2 in debug streams"),
    ({"problems": ("readout died",)}, "readout died"),
    ({"vetoed_busy": 30}, "dead time"),
    ({"readout_slow": 30}, "readout emulator too slow"),
    ({"p99_ms": 500.0}, "total p99 500 ms >= budget 500 ms"),
    ({"n": 999}, "too few events for a p99: 999 < 1000"),
    ({"seconds": 8}, "too few events for a p99"),
    ({"window_hz": [46.0] * 14 + [30.0] * 14}, "windows not stable"),
    ({"window_hz": [30.0] * 40}, "throughput 30.0/s < 0.9 x input 46.0 Hz"),
])
def test_each_criterion_fails_the_run_and_says_why(changes, reason):
    passed, reasons = verdict(summary(**changes), BUDGET_MS)
    assert not passed
    assert any(reason in r for r in reasons), reasons


@given(lost=st.integers(0, 50), debug=st.integers(0, 5), n=st.integers(0, 5000), p99_ms=st.floats(0, 2000),
       rate_hz=st.floats(5, 200), busy=st.integers(0, 50))
def test_a_run_never_passes_with_a_loss_a_debug_event_or_too_few_events_for_a_p99(lost, debug, n, p99_ms, rate_hz, busy):
    passed, reasons = verdict(summary(rate_hz, lost=lost, debug=debug, n=n, p99_ms=p99_ms, vetoed_busy=busy), BUDGET_MS)
    if lost > 0 or debug > 0 or n < CRITERIA.min_events or p99_ms >= BUDGET_MS:
        assert not passed
    assert passed == (not reasons)
    if n < CRITERIA.min_events:
        assert any("too few events for a p99" in r for r in reasons)


@given(rate_hz=st.floats(1, 2000))
def test_runs_are_sized_for_the_p99_and_the_windows(rate_hz):
    assert run_seconds(rate_hz, 0.0) * rate_hz >= CRITERIA.min_events
    assert events_needed() >= (CRITERIA.stable_windows + 1) * CRITERIA.min_window_events


def test_every_run_gets_its_own_seed():
    seeds = [repeat_seed(20261126, i) for i in range(100)]
    assert len(set(seeds)) == 100 and 20261126 not in seeds and all(s >= 0 for s in seeds)


def test_throughput_is_the_mean_of_the_judged_windows():
    assert throughput_hz(summary(window_hz=[10.0] * 30 + [40.0] * 30, rate_hz=40.0)) == pytest.approx(40.0, rel=0.05)


def test_resolution_is_the_spread_between_passing_runs_at_a_rate_at_least_the_minimum_step():
    assert resolution([]) == MIN_RELATIVE_STEP
    assert resolution([Probe(40.0, (True, True), (40.0, 44.0))]) == pytest.approx(4.0 / 42.0)
    assert resolution([Probe(40.0, (True, True, True), (40.0, 40.4, 40.2))]) == MIN_RELATIVE_STEP
    assert resolution([Probe(40.0, (True, False), (40.0, 20.0))]) == MIN_RELATIVE_STEP  # a failed run is no noise figure


# -- the search ---------------------------------------------------------------------------------
@given(min_hz=st.floats(0.5, 100.0), span=st.floats(1.0, 1000.0), a=st.floats(0.0, 1.0), b=st.floats(0.0, 1.0),
       known=st.sampled_from(["low", "high", "both"]), res=st.floats(0.0, 0.5))
def test_the_next_rate_is_always_inside_the_bracket_and_the_limits(min_hz, span, a, b, known, res):
    """Any bracket the search can reach (bounds within the limits, low_ok < high_bad): the next
    rate lies strictly between the bounds and within the limits, or the search is done."""
    max_hz = min_hz * span
    x, y = sorted((min_hz * span ** a, min_hz * span ** b))
    low = x if known in ("low", "both") else None
    high = y if known in ("high", "both") else None
    if low is not None and high is not None and not low < high:
        return
    rate = next_rate(low, high, min_hz, max_hz, res)
    if rate is None:
        assert (high is None and low >= max_hz) or (low is None and high <= min_hz) or high / low - 1 <= res or \
            high / low - 1 < 1e-12
        return
    assert min_hz <= rate <= max_hz
    assert low is None or rate > low
    assert high is None or rate < high


def probe_bound(min_hz: float, max_hz: float, min_step: float) -> int:
    """Probes a search needs at most: doubling (or halving) across the range, then bisection."""
    one_sided = math.ceil(math.log2(max_hz / min_hz)) + 1
    return one_sided + max(math.ceil(math.log2(math.log(2) / math.log1p(min_step))), 0) + 1


@settings(max_examples=200)
@given(data=st.data(), min_hz=st.floats(1.0, 50.0), span=st.floats(1.0, 200.0), start=st.floats(0.0, 1.0),
       repeats=st.integers(1, 3), min_step=st.floats(0.01, 0.3))
def test_the_search_terminates_and_proposes_only_rates_inside_the_bracket(data, min_hz, span, start, repeats, min_step):
    """Whatever the runs say (an arbitrary, noisy farm), every probe lies strictly inside the
    bracket known at the time, and the search stops within a bound set by the range and step."""
    max_hz = min_hz * span
    low_ok: list[float] = []
    high_bad: list[float] = []
    asked: list[tuple[float, int]] = []

    def run(rate: float, repeat: int) -> tuple[bool, float]:
        if repeat == 0:
            assert min_hz <= rate <= max_hz
            assert not low_ok or rate > max(low_ok)
            assert not high_bad or rate < min(high_bad)
        asked.append((rate, repeat))
        return data.draw(st.booleans()), rate * data.draw(st.floats(0.9, 1.1))

    limit = probe_bound(min_hz, max_hz, min_step) + 5
    start_hz = min_hz + start * (max_hz - min_hz)
    result = search(run, start_hz, min_hz, max_hz, repeats, max_probes=limit, min_step=min_step)
    for p in result.probes:
        (low_ok if p.sustained else high_bad).append(p.rate_hz)
    assert len(result.probes) <= probe_bound(min_hz, max_hz, min_step), result.stopped
    assert "probe limit" not in result.stopped
    assert result.sustained_hz == (max(low_ok) if low_ok else None)
    assert result.failed_hz == (min(high_bad) if high_bad else None)
    if low_ok and high_bad:
        assert max(low_ok) < min(high_bad)
        assert min(high_bad) / max(low_ok) - 1 <= result.resolution
    for p in result.probes:  # runs at a rate stop at the first failure, and a rate needs every repeat
        assert all(p.passed[:-1]) and (len(p.passed) == repeats or not p.passed[-1])


@given(capacity=st.floats(12.0, 900.0), repeats=st.integers(1, 3))
def test_against_a_farm_with_a_sharp_capacity_the_search_brackets_it(capacity, repeats):
    calls: list[tuple[float, int]] = []

    def run(rate: float, repeat: int) -> tuple[bool, float]:
        calls.append((rate, repeat))
        return rate <= capacity, min(rate, capacity)

    result = search(run, 10.0, 10.0, 1000.0, repeats, max_probes=50)
    assert result.sustained_hz is not None and result.sustained_hz <= capacity
    assert result.failed_hz is None or result.failed_hz > capacity
    if result.failed_hz is not None:
        assert result.failed_hz / result.sustained_hz - 1 <= MIN_RELATIVE_STEP
        assert result.sustained_hz > capacity / (1 + MIN_RELATIVE_STEP)
    sustained = [p for p in result.probes if p.sustained]
    assert all(len(p.passed) == repeats for p in sustained)


def test_a_farm_that_cannot_sustain_the_lowest_rate_stops_there():
    result = search(lambda rate, k: (False, 0.0), 10.0, 10.0, 1000.0, repeats=3, max_probes=8)
    assert result.sustained_hz is None and result.failed_hz == 10.0
    assert [p.rate_hz for p in result.probes] == [10.0] and "lowest" in result.stopped


def test_a_farm_that_sustains_the_highest_rate_stops_there():
    result = search(lambda rate, k: (True, rate), 100.0, 10.0, 1000.0, repeats=2, max_probes=8)
    assert result.sustained_hz == 1000.0 and result.failed_hz is None
    assert [p.rate_hz for p in result.probes] == [100.0, 200.0, 400.0, 800.0, 1000.0]


def test_a_large_spread_between_repeats_stops_the_bisection_sooner():
    def noisy(rate: float, k: int) -> tuple[bool, float]:
        return rate <= 47.0, rate * (0.85 if k else 1.15)  # 30 % apart between repeats

    result = search(noisy, 40.0, 10.0, 1000.0, repeats=2, max_probes=20)
    assert result.resolution == pytest.approx(0.30, rel=1e-6)
    assert result.failed_hz / result.sustained_hz - 1 <= 0.30
    steady = search(lambda rate, k: (rate <= 47.0, rate), 40.0, 10.0, 1000.0, repeats=2, max_probes=20)
    assert len(result.probes) < len(steady.probes)


def test_the_probe_limit_ends_the_search_and_says_so():
    result = search(lambda rate, k: (rate <= 47.0, rate), 10.0, 10.0, 1000.0, repeats=1, max_probes=3)
    assert len(result.probes) == 3 and "probe limit" in result.stopped


def test_the_first_rate_is_the_callers():
    with pytest.raises(ValueError):
        next_rate(None, None, 10.0, 1000.0, 0.05)
