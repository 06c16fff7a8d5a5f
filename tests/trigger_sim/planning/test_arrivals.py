from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_sim.config import FarmConfig
from trigger_sim.pacing import Pacer, readout_pacer
from trigger_sim.planning.arrivals import arrival_times_s, farm_arrival_times_s
from trigger_sim.planning.spec import ArrivalSpec


@pytest.mark.parametrize("pattern", ["constant", "poisson", "burst"])
def test_mean_rate_is_the_rate_asked(pattern):
    t = arrival_times_s(pattern, 1000.0, 50_000, np.random.default_rng(1), burst_factor=10, burst_events=50)
    assert np.all(np.diff(t) >= 0)
    assert len(t) / t[-1] == pytest.approx(1000.0, rel=0.03)


def test_constant_is_evenly_spaced_and_bursts_are_bunched():
    t = arrival_times_s("constant", 100.0, 10, np.random.default_rng(1))
    assert np.allclose(np.diff(t), 0.01)
    b = np.diff(arrival_times_s("burst", 100.0, 1000, np.random.default_rng(1), burst_factor=10, burst_events=50))
    inside = np.delete(b, np.arange(49, len(b), 50))
    assert np.median(inside) < 0.002 < b[49]  # 1/(10 x 100 Hz) inside a burst, a long gap after it


def test_bad_pattern_is_named():
    with pytest.raises(ValueError, match="unknown arrival pattern 'wave'"):
        arrival_times_s("wave", 1.0, 3, np.random.default_rng(1))


@settings(max_examples=60, deadline=None)
@given(pattern=st.sampled_from(["constant", "poisson", "burst"]), rate_hz=st.floats(0.5, 5e5),
       seed=st.integers(0, 2**32 - 1), n=st.integers(1, 300))
def test_a_real_runs_arrivals_are_the_readouts_own_schedule(pattern, rate_hz, seed, n):
    """With a seed, the times are those the farm's readout offers for that run.seed: its
    `[readout]` section's scheduler (`readout_pacer`, which farm/readout_feed.py takes its
    slots from), from the model's arrivals with the same rate and pattern."""
    readout = FarmConfig().readout
    readout = replace(readout, rate_hz=rate_hz, pattern=pattern, burst_factor=7.0, burst_events=20)
    pacer = readout_pacer(readout, seed)
    expected = np.array([pacer.next_ns() for _ in range(n)]) / 1e9
    arrivals = ArrivalSpec(rate_hz=rate_hz, pattern=pattern, burst_factor=7.0, burst_events=20, seed=seed)
    assert np.array_equal(farm_arrival_times_s(arrivals, n, seed), expected)
    plain = Pacer(rate_hz, pattern, 0, seed=seed, burst_factor=7.0, burst_events=20)
    assert np.array_equal(expected, np.array([plain.next_ns() for _ in range(n)]) / 1e9)


def test_the_readout_takes_its_slots_from_the_scheduler_the_model_replays():
    """farm/readout_feed.py builds its Pacer through `readout_pacer` (a readout that drew its
    slots otherwise would leave the model replaying other arrivals)."""
    import inspect

    import farm.readout_feed as feed

    source = inspect.getsource(feed.ReadoutFeed.run)
    assert "readout_pacer(rc, config.run.seed, start)" in source and "Pacer(" not in source


def test_a_poisson_run_of_seed_2_holds_its_dense_spell_at_the_kill():
    """The kill case's first real run (run.seed 2) at 38.6 Hz: its events 240-300, where the
    kill falls, come at more than 1.5 x the mean rate (1.54 x) in this replay."""
    t = farm_arrival_times_s(ArrivalSpec(rate_hz=38.6), 800, 2)
    assert 60 / (t[299] - t[239]) > 1.5 * 38.6
    assert 800 / t[-1] > 38.6  # the whole run's rate: seed 2 is dense throughout
