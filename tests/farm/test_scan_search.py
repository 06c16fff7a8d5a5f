"""The scan's search and its points use the one definition in `trigger_sim.sustained`."""

from farm.scan import Point
from trigger_sim.sustained import next_rate, search


def test_search_doubles_until_a_failure_then_bisects_geometrically():
    assert next_rate(100.0, None, 10.0, 2000.0, 0.05) == 200.0
    assert next_rate(1500.0, None, 10.0, 2000.0, 0.05) == 2000.0
    assert next_rate(2000.0, None, 10.0, 2000.0, 0.05) is None  # the highest rate allowed was sustained
    assert next_rate(None, 400.0, 10.0, 2000.0, 0.05) == 200.0
    assert next_rate(None, 10.0, 10.0, 2000.0, 0.05) is None  # not even the lowest
    r = next_rate(100.0, 400.0, 10.0, 2000.0, 0.05)
    assert 100.0 < r < 400.0 and abs(r - 200.0) < 1e-9
    assert next_rate(100.0, 104.0, 10.0, 2000.0, 0.05) is None  # a bracket within the resolution


def farm_with_capacity(capacity_hz: float, disturbed: set[int] = frozenset()):
    """A fake measurement: sustained below the capacity, except on the calls listed as disturbed."""
    calls: list[tuple[float, int]] = []

    def run(rate: float, repeat: int) -> tuple[bool, float]:
        calls.append((rate, repeat))
        return rate <= capacity_hz and len(calls) - 1 not in disturbed, rate

    return run, calls


def test_search_finds_a_rate_within_the_capacity_and_close_to_it():
    for capacity in (15.0, 47.0, 130.0, 900.0):
        run, calls = farm_with_capacity(capacity)
        found = search(run, 10.0, 10.0, 1000.0, repeats=1, max_probes=20)
        assert found.sustained_hz is not None and found.sustained_hz <= capacity
        assert found.sustained_hz > capacity / 1.05
        assert "resolution" in found.stopped and len(calls) <= 12


def test_a_rate_counts_only_if_every_repeat_passes():
    run, calls = farm_with_capacity(60.0, disturbed={1})  # the second run at 10 Hz fails
    found = search(run, 10.0, 10.0, 1000.0, repeats=2, max_probes=8)
    assert calls[:2] == [(10.0, 0), (10.0, 1)]
    assert found.sustained_hz is None and "lowest" in found.stopped


def test_a_farm_that_cannot_sustain_the_lowest_rate_stops_at_once():
    run, calls = farm_with_capacity(5.0)
    assert search(run, 10.0, 10.0, 1000.0, repeats=3, max_probes=6).sustained_hz is None
    assert calls == [(10.0, 0)]  # runs at a rate stop at the first failure


def run_summary(rate_hz: float, seconds: int) -> dict:
    """A steady run's summary, as far as a point reads it."""
    decided = int(rate_hz * seconds)
    return {"events": {"l1_accepted": decided, "lost": 0, "debug": 0}, "problems": [],
            "level1": {"input_rate_hz": rate_hz, "vetoed_busy": 0, "vetoed_readout_slow": 0, "deadtime_fraction": 0.0},
            "latency_ms": {"total": {"n": decided, "p50": 80.0, "p99": 300.0}},
            "throughput": {"decided_per_s": rate_hz}, "inference": {"triton_calls": decided, "fallback_calls": 0},
            "windows": [{"start_s": 1.0 + i, "events": int(rate_hz), "throughput_hz": rate_hz, "p50_ms": 80.0,
                         "p99_ms": 300.0} for i in range(seconds)]}


def test_a_point_judges_its_run_with_the_shared_verdict():
    assert Point(46.0, run_summary(46.0, 28), 7, 500.0).sustained
    point = Point(46.0, run_summary(46.0, 8), 8, 500.0)  # 368 events
    assert not point.sustained and "too few events for a p99" in point.row()["why_not"]
    assert point.row()["seed"] == 8 and point.row()["total_p99_ms"] == 300.0


def test_a_farm_that_starts_several_servers_is_scanned_with_them_not_with_one_shared(monkeypatch) -> None:
    """`run_scan`: the runs share one local server (its address given to every run) unless
    the farm starts several of its own (the kill case's farm without a kill): each run is
    then given no address and starts them itself."""
    from contextlib import contextmanager
    from types import SimpleNamespace

    import farm.scan as scan
    from trigger_sim.config import load_config, with_overrides

    started, given = [], []

    @contextmanager
    def fake_server(config):
        started.append(config.inference.local_servers)
        yield SimpleNamespace(grpc_url="127.0.0.1:8001")

    def fake_run(cfg, *args, **kwargs):
        given.append((cfg.inference.triton_url, cfg.inference.local_servers))
        return {}

    monkeypatch.setattr(scan, "local_server", fake_server)
    monkeypatch.setattr(scan, "run_farm", fake_run)
    monkeypatch.setattr(scan, "Point", lambda *a, **k: SimpleNamespace(
        sustained=True, rate_hz=a[0], seed=a[2], row=dict, summary={"windows": []}))
    config = load_config(None)
    scan.run_scan(config, [10.0], 1.0)
    assert started == [1] and given == [("127.0.0.1:8001", 1)]
    started.clear(), given.clear()
    scan.run_scan(with_overrides(config, inference={"local_servers": 2}), [10.0], 1.0)
    assert started == [] and given == [("", 2)]
