"""Prometheus metric definitions: names, ports, buckets and the update methods, without sockets."""

from __future__ import annotations

import pytest
from hypothesis import given, strategies as st
from prometheus_client import CollectorRegistry, Counter

from trigger_sim.inference.server_pool import ServerPool
from trigger_sim.metrics import (BuilderMetrics, PREFIX, SupervisorMetrics, WorkerMetrics, _Grower, exported_names,
                                 latency_buckets_s, port_for, process_ports)


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_names_follow_prometheus_conventions():
    names = exported_names()
    assert names and all(n.startswith(PREFIX) for n in names)
    for n in names:
        assert n.islower() and "__" not in n
        assert not n.endswith(("_ms", "_us", "_milliseconds")), n  # base units only
    counters = {n for n in names if n.endswith("_total")}
    assert {f"{PREFIX}events_total", f"{PREFIX}level1_accepts_total", f"{PREFIX}inference_calls_total",
            f"{PREFIX}worker_restarts_total", f"{PREFIX}builder_rejected_fragments_total"} <= counters
    assert f"{PREFIX}step_duration_seconds_bucket" in names and f"{PREFIX}event_latency_seconds_bucket" in names


@given(st.floats(min_value=1.0, max_value=60_000.0))
def test_buckets_are_increasing_and_hold_the_budget(budget_ms):
    buckets = latency_buckets_s(budget_ms)
    assert list(buckets) == sorted(set(buckets))
    assert round(budget_ms / 1e3, 6) in buckets
    assert buckets[0] <= 0.001 and buckets[-1] >= 10.0  # sub-millisecond steps to far past any budget


def test_ports_one_per_process_and_off_at_zero():
    assert process_ports(0, 4) == {} and port_for(0, "builder") == 0
    ports = process_ports(9400, 3)
    assert ports == {"supervisor": 9400, "builder": 9401, "readout": 9402, "worker-0": 9403, "worker-1": 9404, "worker-2": 9405}
    assert port_for(9400, "worker-7") == 9410
    with pytest.raises(ValueError, match="no metrics port"):
        port_for(9400, "workerX")


@given(st.lists(st.integers(min_value=0, max_value=10**6), max_size=30))
def test_grower_follows_a_cumulative_value(values):
    """Fed a process's own cumulative counter, the Prometheus counter equals its highest value."""
    registry = CollectorRegistry()
    counter = Counter("x_total", "x", ["k"], registry=registry)
    grow = _Grower()
    for v in values:
        grow.set(counter, ("a",), v)
    assert (registry.get_sample_value("x_total", {"k": "a"}) or 0) == max(values, default=0)


def test_supervisor_metrics_count_an_event_once_everywhere():
    m = SupervisorMetrics(500.0, "127.0.0.1:8001")
    r = m.registry
    m.event_decided("accepted", ["HLT_a", "HLT_b"], ["Main"], "", "fallback", "deadline",
                    {"edge_classifier": "triton", "jet_tagger": "fallback"}, {"build": 2.0, "graph": 1.5, "total": 600.0})
    m.event_decided("debug", (), (), "MissingData")
    assert value(r, f"{PREFIX}events_total", outcome="accepted") == 1 and value(r, f"{PREFIX}events_total", outcome="debug") == 1
    assert value(r, f"{PREFIX}events_total", outcome="rejected") == 0  # present from the start
    assert value(r, f"{PREFIX}chain_events_total", chain="HLT_b") == 1
    assert value(r, f"{PREFIX}stream_events_total", stream="Main") == 1
    assert value(r, f"{PREFIX}debug_events_total", stream="MissingData") == 1
    assert value(r, f"{PREFIX}fallback_events_total", reason="deadline") == 1
    assert value(r, f"{PREFIX}inference_path_events_total", path="none") == 1
    assert value(r, f"{PREFIX}model_events_total", server="127.0.0.1:8001", model="jet_tagger", path="fallback") == 1
    assert value(r, f"{PREFIX}step_duration_seconds_count", step="graph") == 1
    assert value(r, f"{PREFIX}step_duration_seconds_bucket", step="build", le="0.0025") == 1
    assert value(r, f"{PREFIX}event_latency_seconds_bucket", le="0.5") == 0  # 600 ms: over the 500 ms budget
    assert value(r, f"{PREFIX}event_latency_seconds_count") == 1


def test_builder_gauges_follow_the_state_and_forget_gone_workers():
    m = BuilderMetrics()
    state = dict(fragments=8, bytes_in=800, rejected={"ChecksumMismatch": 1}, dispatched=2, retried=0, busy_s=0.5,
                 building=1, waiting=3, credits=0, busy=True)
    m.update(**state, in_flight={"worker-0.0": 1, "worker-1.0": 1})
    m.update(**{**state, "fragments": 12, "rejected": {"ChecksumMismatch": 2}}, in_flight={"worker-1.0": 0})
    r = m.registry
    assert value(r, f"{PREFIX}builder_fragments_total") == 12
    assert value(r, f"{PREFIX}builder_rejected_fragments_total", kind="ChecksumMismatch") == 2
    assert value(r, f"{PREFIX}builder_events_waiting") == 3 and value(r, f"{PREFIX}level1_busy") == 1
    assert value(r, f"{PREFIX}builder_events_in_flight", worker="worker-0.0") is None
    assert value(r, f"{PREFIX}builder_events_in_flight", worker="worker-1.0") == 0


def test_worker_metrics_per_server_and_model():
    stats = {"processed": 5, "soft_timeouts": 1, "hard_timeouts": 0,
             "models": {"edge_classifier": {"triton_calls": 4, "triton_failures": 1, "fallback_calls": 1, "breaker_opened": 0}}}
    m = WorkerMetrics("127.0.0.1:8001")
    m.update(stats)
    m.update(stats)  # the same cumulative figures again: nothing added
    r = m.registry
    assert value(r, f"{PREFIX}worker_events_total") == 5
    assert value(r, f"{PREFIX}inference_calls_total", server="127.0.0.1:8001", model="edge_classifier") == 4
    assert value(r, f"{PREFIX}inference_failures_total", server="127.0.0.1:8001", model="edge_classifier") == 1
    assert value(r, f"{PREFIX}inference_fallbacks_total", model="edge_classifier") == 1
    pool = WorkerMetrics("a:1")
    servers = ServerPool(["a:1", "b:2"], failure_threshold=5, open_ns=10**9)  # the pool's own counters, in its own shape
    for address, n in (("a:1", 2), ("b:2", 4)):
        for k in range(n):
            servers.begin(address, "jet_tagger")
            servers.finish(address, k < 3, 1_000_000, 0, "jet_tagger")
    pool.update({**stats, "servers": servers.counters()})
    assert value(pool.registry, f"{PREFIX}inference_calls_total", server="a:1", model="jet_tagger") == 2
    assert value(pool.registry, f"{PREFIX}inference_calls_total", server="b:2", model="jet_tagger") == 3
    assert value(pool.registry, f"{PREFIX}inference_failures_total", server="b:2", model="jet_tagger") == 1
