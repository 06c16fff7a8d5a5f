"""Tests of trigger_sim.latency_buckets: mergeable latency histograms."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_sim.latency_buckets import N_BUCKETS, LatencyBuckets, bucket_middle_ms, bucket_of

values_ms = st.lists(st.floats(min_value=0.02, max_value=50_000.0, allow_nan=False), min_size=1, max_size=300)


@given(values_ms, st.sampled_from([50, 90, 99]))
@settings(max_examples=150, deadline=None)
def test_percentile_is_within_a_bucket_of_the_exact_one(values, q):
    h = LatencyBuckets()
    for v in values:
        h.add(v)
    exact = float(np.percentile(values, q, method="inverted_cdf"))
    assert abs(np.log10(h.percentile_ms(q) / exact)) <= 1 / 20 + 1e-9  # at most one bucket's width


@given(values_ms, values_ms)
@settings(max_examples=100, deadline=None)
def test_merging_two_histograms_is_the_histogram_of_both(a, b):
    ha, hb, both = LatencyBuckets(), LatencyBuckets(), LatencyBuckets()
    for v in a:
        ha.add(v)
        both.add(v)
    for v in b:
        hb.add(v)
        both.add(v)
    merged = LatencyBuckets.from_pairs(ha.as_pairs()).merge(LatencyBuckets.from_pairs(hb.as_pairs()))
    assert merged.counts == both.counts and merged.n == len(a) + len(b)


def test_edges_and_extremes():
    assert bucket_of(0.0) == 0 and bucket_of(-1.0) == 0 and bucket_of(float("nan")) == 0
    assert bucket_of(1e9) == N_BUCKETS - 1
    assert bucket_middle_ms(bucket_of(1.0)) == pytest.approx(1.0, rel=0.07)
    assert LatencyBuckets().percentile_ms(50) == 0.0


@pytest.mark.parametrize("pairs", [[[N_BUCKETS, 1]], [[-1, 1]], [[3, -2]], [[1]]])
def test_bad_pairs_are_refused(pairs):
    with pytest.raises(ValueError):
        LatencyBuckets.from_pairs(pairs)
