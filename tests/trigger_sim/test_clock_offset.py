"""Tests of trigger_sim.clock_offset: NTP-style offsets and cross-host latencies."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_sim.clock_offset import ZERO, Exchange, Offset, corrected_latency, estimate

MS = 1_000_000


def exchange(true_offset_ns: int, t0: int, out_ns: int, server_ns: int, back_ns: int) -> Exchange:
    """An exchange over a network with the given one-way delays, host clock ahead by the offset."""
    t1 = t0 + out_ns + true_offset_ns
    t2 = t1 + server_ns
    t3 = t0 + out_ns + server_ns + back_ns
    return Exchange(t0, t1, t2, t3)


def test_symmetric_delays_give_the_exact_offset():
    off = estimate([exchange(250 * MS, 1000, 40_000, 5_000, 40_000)])
    assert off.offset_ns == 250 * MS
    assert off.uncertainty_ns == 40_000


def test_the_lowest_round_trip_sample_is_kept():
    slow = exchange(250 * MS, 0, 9 * MS, 0, 1 * MS)  # asymmetric and slow: 4 ms off
    fast = exchange(250 * MS, 20 * MS, 30_000, 1_000, 50_000)
    off = estimate([slow, fast])
    assert off.samples == 2 and off.uncertainty_ns == 40_000
    assert abs(off.offset_ns - 250 * MS) <= off.uncertainty_ns


def test_no_sample_is_an_error():
    with pytest.raises(ValueError, match="no clock exchange"):
        estimate([])
    with pytest.raises(ValueError, match="negative interval"):
        Exchange(10, 0, 0, 5)


@settings(max_examples=300, deadline=None)
@given(true_offset=st.integers(-10**12, 10**12),
       legs=st.lists(st.tuples(st.integers(0, 10**9), st.integers(1_000, 50 * MS), st.integers(0, MS), st.integers(1_000, 50 * MS)),
                     min_size=1, max_size=12))
def test_true_offset_within_the_estimate_and_its_uncertainty(true_offset, legs):
    off = estimate(exchange(true_offset, t0, out, srv, back) for t0, out, srv, back in legs)
    assert abs(off.offset_ns - true_offset) <= off.uncertainty_ns + 0.5
    assert off.uncertainty_ns == min(out + back for _, out, _, back in legs) / 2


@settings(max_examples=300, deadline=None)
@given(offset_a=st.integers(-10**12, 10**12), offset_b=st.integers(-10**12, 10**12),
       start=st.integers(0, 10**15), latency=st.integers(0, 10**10),
       err_a=st.floats(-1.0, 1.0), err_b=st.floats(-1.0, 1.0), unc_a=st.integers(0, 10**6), unc_b=st.integers(0, 10**6))
def test_cross_host_latency_correct_within_the_summed_uncertainty(offset_a, offset_b, start, latency, err_a, err_b, unc_a, unc_b):
    # stamps taken on two hosts whose clocks are off by offset_a and offset_b; estimates off by at most their uncertainty
    a = Offset(offset_a + err_a * unc_a, unc_a, 1)
    b = Offset(offset_b + err_b * unc_b, unc_b, 1)
    got = corrected_latency(start + offset_a, a, start + latency + offset_b, b)
    assert abs(got.value_ns - latency) <= got.uncertainty_ns + 1.0  # float rounding of 1e12-ns values
    assert got.uncertainty_ns == unc_a + unc_b


def test_uncorrected_cross_host_latency_is_off_by_the_offset():
    host = Offset(250 * MS, 0, 1)
    assert corrected_latency(0, ZERO, 250 * MS + 3 * MS, host).value_ns == 3 * MS
