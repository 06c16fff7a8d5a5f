"""The 95 % intervals of a measured percentile: rank intervals that cover, bootstraps that
narrow with more events, and the approximation for runs that kept no per-event data."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_sim.planning import percentile_interval
from trigger_sim.planning.percentile_interval import (
    binomial_cdf,
    bootstrap_interval,
    events_beyond,
    rank_interval,
    scaled_interval,
)


def test_a_p99_of_1300_events_rests_on_13():
    assert abs(events_beyond(1300, 99) - 13.0) < 1e-9


def test_the_median_ranks_match_the_textbook_table():
    """n = 1,000: the 95 % interval of the median lies between the 469th and 532nd values."""
    assert rank_interval(1000, 50) == (469, 532)


@given(st.integers(1, 3000), st.floats(0.5, 99.5))
@settings(max_examples=60, deadline=None)
def test_ranks_are_ordered_and_inside_the_sample(n, percentile):
    r, s = rank_interval(n, percentile)
    assert 1 <= r <= s <= n


@given(st.integers(1, 500), st.floats(0.01, 0.99))
@settings(max_examples=40, deadline=None)
def test_the_binomial_cdf_rises_to_one(n, q):
    cdf = binomial_cdf(n, q)
    assert len(cdf) == n + 1 and np.all(np.diff(cdf) >= -1e-12) and abs(cdf[-1] - 1.0) < 1e-9


def test_rank_intervals_cover_the_true_p99_at_least_95_percent_of_the_time():
    rng = np.random.default_rng(3)
    true_p99 = -np.log(0.01) * 10.0  # exponential, scale 10
    n, hits = 1300, 0
    r, s = rank_interval(n, 99)
    for _ in range(400):
        x = np.sort(rng.exponential(10.0, n))
        hits += x[r - 1] <= true_p99 <= x[s - 1]
    assert hits / 400 >= 0.93  # 95 % nominal, Monte-Carlo noise of 400 trials ~1 %


def test_bootstrap_interval_holds_the_estimate_and_narrows_with_more_events():
    rng = np.random.default_rng(5)
    widths = []
    for n in (1000, 8000):
        x = rng.exponential(10.0, n) + 20.0
        lo, hi = bootstrap_interval(x, 99, resamples=500)
        assert lo <= np.percentile(x, 99) <= hi
        widths.append(hi - lo)
    assert widths[1] < 0.6 * widths[0]


def test_the_scaled_interval_follows_the_reference_tail_around_the_point():
    """A reference with the same shape as the data gives about the data's own rank interval."""
    rng = np.random.default_rng(7)
    data = np.sort(rng.exponential(10.0, 1300) + 20.0)
    reference = rng.exponential(10.0, 200_000) + 20.0
    r, s = rank_interval(1300, 99)
    lo, hi = scaled_interval(float(np.percentile(data, 99)), reference, 1300, 99)
    assert lo < np.percentile(data, 99) < hi
    assert abs(lo - data[r - 1]) < 0.1 * data[r - 1] and abs(hi - data[s - 1]) < 0.1 * data[s - 1]


def test_a_tail_that_is_one_spell_of_one_run_is_not_called_known_to_a_few_percent():
    """Four runs of 800 events, one holding a spell of 60 consecutive slow events (a dense
    burst of arrivals): the pooled p99 rests on that spell. Resampled event by event it looks
    known to a few percent; in blocks of consecutive events a resample may miss the spell, and
    the interval reaches down to the other runs' tail."""
    rng = np.random.default_rng(3)
    runs = [rng.normal(50.0, 5.0, 800) for _ in range(4)]
    runs[0][300:360] = rng.normal(200.0, 10.0, 60)
    pooled = np.concatenate(runs)
    lo_e, hi_e = percentile_interval.bootstrap_interval(pooled, 99)
    lo_b, hi_b = percentile_interval.block_bootstrap_interval(runs, 99, block_events=50)
    assert lo_e > 150 and hi_e - lo_e < 0.2 * np.percentile(pooled, 99)
    assert lo_b < 100 < 150 < hi_b


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(2, 300), min_size=1, max_size=4), block=st.integers(1, 120))
def test_blocks_never_cross_runs_so_each_resample_keeps_every_runs_size(sizes, block):
    """Run k holds only the value k: a resample that kept every run's own events and length
    has the same pooled values every time, so the interval of any percentile is one point."""
    runs = [np.full(n, float(k)) for k, n in enumerate(sizes)]
    pooled = np.concatenate(runs)
    for q in (1, 50, 99):
        lo, hi = percentile_interval.block_bootstrap_interval(runs, q, block_events=block, resamples=50)
        assert lo == hi == pytest.approx(np.percentile(pooled, q))


def test_blocks_of_one_event_are_the_plain_bootstrap():
    rng = np.random.default_rng(5)
    values = rng.exponential(30.0, 5000)
    plain = percentile_interval.bootstrap_interval(values, 99, resamples=4000)
    blocks = percentile_interval.block_bootstrap_interval([values], 99, block_events=1, resamples=4000)
    assert blocks == pytest.approx(plain, rel=0.05)
    with pytest.raises(ValueError):
        percentile_interval.block_bootstrap_interval([values], 99, block_events=0)
    with pytest.raises(ValueError):
        percentile_interval.block_bootstrap_interval([np.array([1.0])], 99)
