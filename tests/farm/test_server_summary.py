"""Per-server figures in the summary: summed over workers, percentiles from summed buckets."""

from __future__ import annotations

from rich.console import Console

from farm.report import server_table
from farm.summary import per_server
from trigger_sim.latency_buckets import LatencyBuckets


def report(calls: int, failures: int, latencies_ms: list[float]) -> dict:
    h = LatencyBuckets()
    for v in latencies_ms:
        h.add(v)
    return {"calls": calls, "failures": failures, "latency_buckets": h.as_pairs()}


def test_workers_figures_are_summed_and_percentiles_taken_over_all_calls():
    # worker 0 saw only fast calls on a:1, worker 1 only slow ones: the p99 is the slow
    # one's, the p50 falls between (a per-worker percentile averaged would say otherwise)
    workers = [{"servers": {"a:1": report(99, 0, [1.0] * 99)}},
               {"servers": {"a:1": report(3, 2, [100.0]), "b:2": report(5, 0, [2.0] * 5)}},
               {"triton_calls": 0}]  # a worker without a pool
    out = per_server(workers, {"a:1": 1})
    assert out["a:1"]["calls"] == 102 and out["a:1"]["failures"] == 2 and out["a:1"]["restarts"] == 1
    assert abs(out["a:1"]["p50_ms"] - 1.0) < 0.07 and abs(out["a:1"]["p99_ms"] - 1.0) < 0.07
    assert out["b:2"] == {"calls": 5, "failures": 0, "p50_ms": out["b:2"]["p50_ms"], "p99_ms": out["b:2"]["p99_ms"],
                          "answered": 5, "restarts": 0}
    slow = per_server([{"servers": {"a:1": report(2, 0, [1.0, 100.0])}}], {})
    assert abs(slow["a:1"]["p99_ms"] - 100.0) < 7


def test_a_restarted_server_without_calls_is_listed_and_bad_buckets_are_left_out():
    out = per_server([{"servers": {"a:1": {"calls": 4, "failures": 1, "latency_buckets": [[-3, 1]]}}}], {"c:3": 2})
    assert out["a:1"]["calls"] == 4 and out["a:1"]["answered"] == 0
    assert out["c:3"]["restarts"] == 2 and out["c:3"]["calls"] == 0


def test_terminal_table_shows_every_server():
    console = Console(record=True, width=120)
    console.print(server_table(per_server([{"servers": {"a:1": report(3, 1, [1.0, 2.0])}}], {"a:1": 1})))
    text = console.export_text()
    assert "a:1" in text and "restarts" in text
