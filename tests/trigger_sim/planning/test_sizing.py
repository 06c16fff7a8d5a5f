from trigger_sim.planning.sizing import saturation, smallest_farm, sweep
from trigger_sim.planning.spec import FarmSpec

from .synthetic import calibration


def test_saturation_of_cpu_bound_workers_is_near_their_capacity():
    """Two workers of 10 ms per event: capacity 200 Hz. A run of 3,000 events at the capacity
    itself passes (its queue grows as the square root of time, not past the budget in 15 s),
    as a real run of that length would: the search finds the capacity, not less."""
    cal = calibration(cpu_ms=10.0, called=False)
    found = saturation(cal, FarmSpec(workers_per_node=2, budget_ms=500.0), repeats=1, events=3000)
    assert 180 <= found.sustained_hz <= 210 and found.failed_hz <= 230


def test_smallest_pool_is_the_analytic_one():
    """1,000 Hz of 4 ms GNN requests: 4 server-seconds per second, so at least 5 one-instance servers."""
    cal = calibration(cpu_ms=1.0, demand_ms={"edge_classifier": 4.0, "jet_tagger": 0.0})
    farm = FarmSpec(workers_per_node=64, timeout_ms=200.0)
    best, verdict = smallest_farm(cal, farm, 1000.0, 500.0, events=6000, max_servers=16, slot_options=(1,))
    assert best is not None and 5 <= best.servers <= 6 and verdict.ok
    rows = sweep(cal, farm, 1000.0, 500.0, 6000, nodes=[1], servers=[2, 8])
    assert [r["ok"] for r in rows] == [False, True]
