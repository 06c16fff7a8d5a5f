import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_sim.windows import stable, window_stats


@settings(max_examples=100, deadline=None)
@given(st.floats(10, 2000), st.integers(3, 8))
def test_constant_rate_gives_equal_windows_and_is_stable(rate_hz, n_windows):
    t_ns = (np.arange(int(rate_hz * n_windows)) / rate_hz * 1e9).astype(np.int64)
    windows = window_stats(t_ns, np.ones(len(t_ns)), window_s=1.0)
    assert len(windows) >= n_windows - 1
    assert all(abs(w["throughput_hz"] - rate_hz) <= 1.0 for w in windows)
    assert stable(windows, n_windows=min(3, len(windows)))


def test_drifting_rate_is_not_stable_and_latency_percentiles_are_per_window():
    times = np.concatenate([np.linspace(0, 1, 100, endpoint=False), np.linspace(1, 2, 150, endpoint=False),
                            np.linspace(2, 3, 220, endpoint=False), [3.0]])
    lat = np.concatenate([np.full(100, 5.0), np.full(150, 10.0), np.full(220, 20.0), [1.0]])
    w = window_stats((times * 1e9).astype(np.int64), lat, window_s=1.0)
    assert [x["events"] for x in w] == [100, 150, 220]
    assert [x["p50_ms"] for x in w] == [5.0, 10.0, 20.0]
    assert not stable(w)
    assert window_stats(np.array([], np.int64), np.array([]), 1.0) == []
    assert not stable(w[:2])


def test_merge_reaches_the_minimum_count_and_keeps_the_rate():
    from trigger_sim.windows import merge

    windows = [{"start_s": float(i), "events": 40, "throughput_hz": 40.0, "p50_ms": 1.0, "p99_ms": 2.0} for i in range(9)]
    merged = merge(windows, min_events=100)
    assert [m["events"] for m in merged] == [120, 120, 120]
    assert all(abs(m["throughput_hz"] - 40.0) < 1e-9 for m in merged)
    assert stable(merged)
