"""The live view's figures over the last window, without a farm."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from trigger_sim.live_window import LiveWindow, calls_per_server

S = 1_000_000_000


def counts(l1=0, vetoed=0, decided=0, triton=0, fallback=0):
    return {"l1_accepted": l1, "vetoed_busy": vetoed, "decided": decided, "triton": triton, "fallback": fallback}


def test_rates_fractions_and_calls_over_the_last_window_only():
    w = LiveWindow(window_s=2.0)
    assert w.update(0, counts(), {}, [], []).span_s == 0  # one reading: no rates yet
    w.update(1 * S, counts(l1=100, decided=90, triton=90), {"a": 180}, [], [])
    w.update(2 * S, counts(l1=200, decided=190, triton=180, fallback=10), {"a": 360}, [], [])
    f = w.update(3 * S, counts(l1=250, vetoed=50, decided=240, triton=220, fallback=20), {"a": 440, "b": 10}, [], [])
    # the window holds the readings at 1 s and 3 s: what happened in the first second is gone
    assert f.span_s == 2.0
    assert f.rate_in_hz == 75.0 and f.rate_out_hz == 75.0
    assert f.fallback_fraction == pytest.approx(20 / 150)
    assert f.deadtime_fraction == pytest.approx(50 / 200)
    assert f.calls_per_s == {"a": 130.0, "b": 5.0}


def test_latency_percentiles_of_the_events_decided_in_the_window():
    w = LiveWindow(window_s=1.0)
    decided = [int(0.1 * S), int(0.5 * S), int(1.6 * S), int(1.9 * S)]
    latency = [1000.0, 1000.0, 10.0, 30.0]
    f = w.update(2 * S, counts(), {}, decided[:3], latency[:3])
    assert f.n_latencies == 1 and f.p50_ms == 10.0
    f = w.update(2 * S, counts(), {}, decided, latency)  # only the new tail is read
    assert f.n_latencies == 2 and f.p50_ms == 20.0 and f.p99_ms == pytest.approx(29.8)
    f = w.update(5 * S, counts(), {}, decided, latency)
    assert f.n_latencies == 0 and f.p50_ms is None  # nothing decided lately: no figure, not an old one


def test_nothing_inferred_or_offered_gives_no_fraction():
    w = LiveWindow(1.0)
    w.update(0, counts(), {}, [], [])
    f = w.update(S, counts(), {}, [], [])
    assert f.fallback_fraction is None and f.deadtime_fraction is None and f.rate_in_hz == 0


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 50)), min_size=2, max_size=40),
       st.floats(min_value=0.5, max_value=10))
def test_rate_is_the_growth_over_the_span(steps, window_s):
    """Whatever the readings, the rate is exactly the counts' growth over the span the window keeps."""
    w = LiveWindow(window_s)
    t = l1 = 0
    history = []
    for dt, dn in steps:
        t += (dt + 1) * S // 10
        l1 += dn
        history.append((t, l1))
        f = w.update(t, counts(l1=l1), {}, [], [])
    start = t - int(window_s * S)
    kept = [h for h in history if h[0] <= start]
    t0, l0 = kept[-1] if kept else history[0]
    assert f.span_s == pytest.approx((t - t0) / S)
    if f.span_s > 0:
        assert f.rate_in_hz == pytest.approx((l1 - l0) / f.span_s)


def test_calls_per_server_sums_workers_and_reads_a_pool():
    stats = {"w0": {"models": {"m": {"triton_calls": 3}, "n": {"triton_calls": 1}}},
             "w1": {"servers": {"x:1": {"calls": 2, "models": {"m": {"triton_calls": 2}}},
                                 "y:2": {"calls": 5, "models": {"m": {"triton_calls": 5}}}}}}
    assert calls_per_server(stats, "x:1") == {"x:1": 6.0, "y:2": 5.0}


def test_window_must_be_positive():
    with pytest.raises(ValueError, match="window_s"):
        LiveWindow(0)
