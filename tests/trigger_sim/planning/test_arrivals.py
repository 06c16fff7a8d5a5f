import numpy as np
import pytest

from trigger_sim.planning.arrivals import arrival_times_s


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
