"""trigger_sim.planning.idle_slowdown: idle gaps, the fitted curve, the per-rate factor; and
the model using them (an event after an idle spell runs its steps slower)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_sim.planning import calibrate
from trigger_sim.planning.calibration import CPU_STEPS, ModelCurve, ServerKind, from_json, to_json
from trigger_sim.planning.farm_model import FarmModel, idle_curve
from trigger_sim.planning.idle_slowdown import FLAT, GAP_EDGES_MS, IdleCurve, fit, idle_gaps_ms, rate_scale
from trigger_sim.planning.model_summary import simulate
from trigger_sim.planning.spec import ArrivalSpec, FarmSpec, PlanSpec

from .synthetic import calibration

intervals = st.lists(st.tuples(st.floats(0, 1000), st.floats(0, 50), st.integers(0, 2)), min_size=1, max_size=40)


@settings(max_examples=200, deadline=None)
@given(intervals)
def test_a_gap_is_the_start_minus_the_latest_end_of_the_workers_earlier_events(events):
    """Against a plain loop: per worker, in start order, the gap is the start minus the latest
    end of the events it started before (0 when one still runs), NaN for its first."""
    start = np.array([s for s, _, _ in events])
    end = start + np.array([d for _, d, _ in events])
    worker = np.array([w for _, _, w in events])
    gaps = idle_gaps_ms(start, end, worker)
    for w in set(worker.tolist()):
        idx = sorted(np.flatnonzero(worker == w), key=lambda i: start[i])  # stable: ties keep table order
        assert np.isnan(gaps[idx[0]])
        for k in range(1, len(idx)):
            latest = max(end[j] for j in idx[:k])
            assert gaps[idx[k]] == pytest.approx(max(start[idx[k]] - latest, 0.0))


def test_the_curve_recovers_the_slowdown_it_was_made_with():
    """Events of random size, slowed by a known factor per bin of idle time: the fit gives
    the factors back (within the noise of 2,000 events per bin) and the first bin is 1."""
    rng = np.random.default_rng(4)
    true = np.array([1.0, 1.0, 1.02, 1.04, 1.06, 1.1, 1.15, 1.2, 1.3])
    lows, highs = np.array(GAP_EDGES_MS), np.array([*GAP_EDGES_MS[1:], 2000.0])
    gaps = np.concatenate([rng.uniform(lo, hi, 2000) for lo, hi in zip(lows, highs)])
    bins = np.repeat(np.arange(len(true)), 2000)
    work = rng.gamma(8.0, 3.0, len(gaps)) * true[bins]
    curve = fit(gaps, work)
    assert curve.factor[0] == 1.0
    assert np.allclose(curve.factor, true, atol=0.03)
    assert np.allclose(curve.at(gaps), np.asarray(curve.factor)[bins])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(0, 3000), st.floats(0.1, 100)), min_size=0, max_size=300), st.integers(1, 40))
def test_the_curve_never_falls_and_sparse_bins_take_the_factor_below(rows, min_events):
    """Whatever the data: factors never fall with the gap, the first filled bin is 1, a bin
    with fewer than `min_events` repeats the one below, and a rising sequence of bin means is
    kept as it is (isotonic regression changes only what falls)."""
    gaps, work = (np.array([r[i] for r in rows]) for i in (0, 1))
    curve = fit(gaps, work, min_events=min_events)
    if curve is FLAT:
        counts = np.bincount(np.searchsorted(GAP_EDGES_MS, gaps, side="right") - 1, minlength=len(GAP_EDGES_MS))
        assert not (counts >= min_events).any()
        return
    factor = np.asarray(curve.factor)
    assert (np.diff(factor) >= -1e-12).all()
    filled = [k for k in range(len(factor)) if curve.events[k] >= min_events]
    assert factor[filled[0]] == pytest.approx(1.0)
    for k in range(1, len(factor)):
        if curve.events[k] < min_events:
            assert factor[k] == factor[k - 1]
    index = np.clip(np.searchsorted(GAP_EDGES_MS, gaps, side="right") - 1, 0, len(GAP_EDGES_MS) - 1)
    means = np.array([work[index == k].mean() for k in filled])
    if (np.diff(means) >= 0).all():
        assert np.allclose(factor[filled], means / means[0])


def test_no_slowdown_in_the_data_gives_a_flat_curve_and_unknown_gaps_count_as_none():
    rng = np.random.default_rng(5)
    gaps = rng.exponential(40.0, 5000)
    curve = fit(gaps, rng.gamma(8.0, 3.0, 5000))
    assert max(curve.factor) < 1.06  # only the upward noise a running maximum keeps
    gaps[:100] = np.nan
    work = np.ones(5000)
    work[:100] = 1e6  # would raise whichever bin they were counted in
    assert fit(gaps, work).factor == tuple(1.0 for _ in GAP_EDGES_MS)
    assert curve.at(np.nan) == 1.0


def test_the_rate_factor_goes_linearly_to_1_at_the_calibration_rate_and_is_flat_beyond():
    host = {"low_rate_step_scale": 1.2, "low_rate_per_worker_hz": 5.0, "calibration_per_worker_hz": 30.0}
    assert rate_scale(host, 1.0) == rate_scale(host, 5.0) == pytest.approx(1.2)
    assert rate_scale(host, 17.5) == pytest.approx(1.1)
    assert rate_scale(host, 30.0) == rate_scale(host, 500.0) == 1.0
    assert rate_scale({}, 5.0) == 1.0


def _idle_calibration(rows: int = 400, seed: int = 0):
    """A calibration whose rows slow down with the idle time before them: 1 ms gaps take the
    base work, 200 ms gaps 1.3 times it."""
    cal = calibration(rows=rows, cpu_ms=10.0, demand_ms={"edge_classifier": 5.0, "jet_tagger": 0.0}, seed=seed)
    gaps = np.where(np.arange(rows) % 2 == 0, 1.0, 200.0)
    slow = np.where(gaps > 100, 1.3, 1.0)
    events = {**cal.events, "idle_gap_ms": gaps}
    for s in CPU_STEPS:
        events[s] = cal.events[s] * slow
    events["edge_classifier_demand"] = cal.events["edge_classifier_demand"] * slow
    return replace(cal, events=events)


def test_the_model_runs_an_event_slower_after_its_worker_idled():
    """One worker: at a low rate (every event after a long idle spell) the model's worker time
    is the slow rows' (1.3 x the base 15 ms), near saturation (no idle time) the base; with
    idle_slowdown off, the rows' mean (1.15 x) at any rate."""
    cal = _idle_calibration()
    curve, row_factor = idle_curve(cal, cal.servers["cpu"])
    assert curve.at(1.0) == 1.0 and curve.at(200.0) == pytest.approx(1.3)
    farm = FarmSpec(workers_per_node=1, readout_buffer_events=10_000, budget_ms=1e6)

    def worker_mean(rate: float, idle: bool = True) -> float:
        model = FarmModel(PlanSpec(ArrivalSpec(rate_hz=rate, pattern="constant"), replace(farm, idle_slowdown=idle),
                                   events=3000, seed=2), cal)
        model.run()
        return float(np.nanmean(model.worker_ms))

    assert worker_mean(2.0) == pytest.approx(1.3 * 15.0, rel=0.01)
    assert worker_mean(200.0) == pytest.approx(15.0, rel=0.01)  # far above saturation: back to back
    assert worker_mean(2.0, idle=False) == pytest.approx(1.15 * 15.0, rel=0.02)


def test_a_call_the_server_answers_in_a_fixed_time_is_left_out_of_the_curve():
    """Only the CPU steps slow down here (x 1.3 after 200 ms); the call takes a fixed 40 ms on
    a server whose curve ignores each call's demand (a sleep, a GPU): the curve is the CPU's
    1.3, not diluted by the call's time the model never scales; with the call's demand taken
    per request (empirical), it is counted."""
    cal = _idle_calibration()
    slow = np.where(cal.events["idle_gap_ms"] > 100, 1.3, 1.0)
    events = {**cal.events, "edge_classifier_demand": np.full(cal.n_events, 40.0)}
    cal = replace(cal, events=events)
    fixed = ServerKind({"edge_classifier": ModelCurve(fixed_ms=40.0), "jet_tagger": ModelCurve(empirical=True)})
    assert idle_curve(cal, fixed)[0].at(200.0) == pytest.approx(1.3)
    assert idle_curve(cal, cal.servers["cpu"])[0].at(200.0) == pytest.approx((10 * 1.3 + 40) / 50)
    assert np.allclose(idle_curve(cal, fixed)[1], slow)


def test_a_workers_first_event_and_an_event_beside_another_slot_count_no_idle_time():
    """Two slots on one worker, events arriving together: the first has no idle time before it
    (unknown: factor 1, as a calibration's first rows), the second starts while the first runs
    (idle 0): both take the base work, never the slow rows' 1.3."""
    cal = _idle_calibration()
    farm = FarmSpec(workers_per_node=1, slots_per_worker=2, readout_buffer_events=10_000, budget_ms=1e6)
    model = FarmModel(PlanSpec(ArrivalSpec(rate_hz=10_000.0, pattern="constant"), farm, events=2, seed=1), cal)
    model.run()
    rows = model.draws.row
    assert np.allclose(model.scale, 1.0 / model._row_factor[rows])


def test_the_low_rate_factor_makes_the_model_match_the_real_mean_there():
    """scale_for_low_rate finds the factor with which the model's mean worker time at the low
    rate equals the given real one; at the calibration rate the factor is 1."""
    cal = calibration(rows=200, cpu_ms=10.0, demand_ms={"edge_classifier": 5.0, "jet_tagger": 0.0}, spread=0.3)
    farm = FarmSpec(workers_per_node=2, readout_buffer_events=10_000, budget_ms=1e6)
    scaled = calibrate.scale_for_low_rate(cal, farm, 10.0, 18.0, 60.0, events=3000, pattern="constant")
    assert scaled.host["low_rate_step_scale"] == pytest.approx(18.0 / 15.0, rel=0.02)
    assert "low_rate_scale" in scaled.provenance

    def worker_mean(c, rate: float) -> float:
        spec = PlanSpec(ArrivalSpec(rate_hz=rate, pattern="constant"), farm, events=3000, seed=7)
        return simulate(spec, c)["latency_ms"]["worker_total"]["mean"]

    assert worker_mean(scaled, 10.0) == pytest.approx(18.0, rel=0.01)
    assert worker_mean(scaled, 60.0) == pytest.approx(worker_mean(cal, 60.0), rel=1e-9)


def test_idle_gaps_survive_a_calibration_file_unknown_ones_as_null():
    cal = _idle_calibration(rows=10)
    gaps = cal.events["idle_gap_ms"].copy()
    gaps[0] = np.nan
    cal = replace(cal, events={**cal.events, "idle_gap_ms": gaps})
    data = to_json(cal)
    assert data["events"]["idle_gap_ms"][0] is None
    back = from_json(data)
    assert np.isnan(back.events["idle_gap_ms"][0]) and np.array_equal(back.events["idle_gap_ms"][1:], gaps[1:])


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.floats(-10, 5000), st.just(float("nan"))), min_size=1, max_size=50))
def test_the_factor_of_one_idle_time_is_the_arrays(gaps):
    """`factor_at` (once per event in the model) gives what `at` gives for the same gaps."""
    curve = IdleCurve(GAP_EDGES_MS, tuple(1.0 + 0.03 * k for k in range(len(GAP_EDGES_MS))), (0,) * len(GAP_EDGES_MS))
    assert [curve.factor_at(g) for g in gaps] == curve.at(np.array(gaps)).tolist()
