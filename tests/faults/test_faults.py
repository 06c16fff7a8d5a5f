"""Fault injection against real processes, real ZeroMQ sockets and a real Triton server.

Every scenario: lost = 0, no event counted twice, and the fault visible in the summary.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from farm import fault_scenarios as fs
from farm.one_host import run_farm

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def assert_accounted(summary: dict, n: int) -> None:
    ev = summary["events"]
    diagnosis = (summary["collector"], summary["problems"], summary["debug_streams"], summary["builder"])
    assert ev["l1_count_known"] and ev["l1_accepted"] == n, diagnosis
    assert ev["lost"] == 0, diagnosis
    assert ev["accepted"] + ev["rejected"] + ev["debug"] == n, diagnosis


def test_worker_killed_holding_an_event_is_restarted_and_the_event_retried(slow_triton_server):
    """SIGKILL each worker while it holds an event: the builder gives that event to another
    worker, it is decided exactly once, the worker is replaced and the replacement works.

    The kill is certain to find the worker holding an event: input far above what the workers
    decide (200 Hz against ~20 Hz with every event with jets waiting >= 50 ms for the slow
    jet tagger) keeps complete events queued in the builder, which hands a worker its next
    event in the same turn as it takes its result; the kills come while over half the events
    are still to be decided (farm.fault_scenarios.worker_killed).
    """
    n = 200
    r = fs.worker_killed(n, kills=2, slow_server_url=slow_triton_server.grpc_url)
    killed, undecided_at_kill, summary = r.notes["killed"], r.notes["undecided_at_kill"], r.summary
    assert killed == ["worker-0.0", "worker-1.0"] and min(undecided_at_kill) > n // 2, (killed, undecided_at_kill)
    assert_accounted(summary, n)
    b, ev = summary["builder"], summary["events"]
    assert summary["workers"]["restarts"] == 2 and b["workers_lost"] == 2, (summary["workers"], b)
    # each killed worker held an event, which went back to the queue ...
    assert b["retried_after_worker_loss"] >= len(killed), b
    # ... and was decided exactly once, by another worker (not HltError after a second loss),
    # with no second outcome arriving for it or any other event
    assert ev["duplicate_results_refused"] == 0, (ev, summary["collector"])
    assert not [k for k in summary["debug_streams"] if k.startswith(("HltError", "NotProcessed"))], summary["debug_streams"]
    # every delivery, the retries included, went through the builder's shared-memory ring
    assert b["events_through_ring"] == b["dispatched"] and b["events_inline"] == 0, b
    replacements = [k for k, v in summary["workers"]["per_worker"].items() if not k.endswith(".0")]
    assert replacements and any(summary["workers"]["per_worker"][k].get("processed", 0) > 0 for k in replacements)
    # whatever shared-memory regions the killed workers had, none is left (the supervisor removes them)
    prefix = summary["inference"]["client_shm_prefix"]
    assert prefix and not list(Path("/dev/shm").glob(prefix + "*"))


def test_triton_killed_fallback_then_back_to_triton():
    r = fs.triton_killed(900, outage_s=1.0)
    assert r.injected == 1 and r.notes.get("restarted")
    s = r.summary
    assert_accounted(s, 900)
    inf = s["inference"]
    assert inf["fallback_calls"] > 0 and inf["breaker_opened"] >= 1
    assert inf["triton_calls"] > r.notes["triton_at_restart"], "the farm should return to Triton by itself"
    # A dead server costs an event no waiting: calls to it fail at once and the breaker then
    # skips it, so an inference step (server call, then the local forward) stays within one
    # call deadline for 99% of events; waiting each deadline out before falling back would not.
    for model in inf["models"]:
        deadline_ms = fs.base_config().inference.deadline_s(model) * 1e3
        assert s["latency_ms"][model]["p99"] < deadline_ms, (model, s["latency_ms"][model], inf["fallback_reasons"])
    assert s["latency_ms"]["worker_total"]["max"] < 500.0, "the hard budget holds during the outage"


def test_dead_model_stub_is_detected_and_reloaded():
    r = fs.stub_killed(900)
    assert r.injected >= 1
    assert_accounted(r.summary, 900)
    assert r.summary["inference"]["model_reloads"] >= 1, json.dumps(r.summary["inference"])
    assert r.summary["inference"]["triton_calls"] > r.notes["triton_before"]


def test_bad_fragments_rejected_counted_and_flagged(triton_server):
    r = fs.readout_faults(300, fraction=0.03, triton_url=triton_server.grpc_url)
    s = r.summary
    assert_accounted(s, 300)
    injected, rejected = r.notes, s["builder"]["rejected_fragments"]
    assert r.injected > 0
    if injected.get("corrupted"):
        assert rejected.get("ChecksumMismatch", 0) >= injected["corrupted"]
    if injected.get("truncated"):
        assert rejected.get("TruncatedFragment", 0) >= injected["truncated"]
    if injected.get("foreign"):
        assert rejected.get("ForeignRun", 0) == injected["foreign"]
    if injected.get("duplicated"):
        assert rejected.get("Duplicate", 0) + rejected.get("Late", 0) >= 1
    bad = injected.get("corrupted", 0) + injected.get("truncated", 0)
    missing = sum(n for k, n in s["debug_streams"].items() if k.startswith("MissingData"))
    assert 0 < missing <= bad if bad else missing == 0


def test_silent_source_events_go_to_missing_data(triton_server):
    r = fs.silent_source(120, triton_url=triton_server.grpc_url)
    s = r.summary
    assert_accounted(s, 120)
    missing = sum(n for k, n in s["debug_streams"].items() if k.startswith("MissingData"))
    assert missing == r.injected == 60


def test_overload_memory_bounded_dead_time_reported(triton_server):
    calm = fs.base_config(triton_server.grpc_url)
    baseline = run_farm(calm, 100, output_dir=None)["builder"]["peak_rss_mb"]
    r = fs.overload(600, rate_hz=3000.0, triton_url=triton_server.grpc_url)  # the node holds ~70 events: full within a second, then steady
    s = r.summary
    assert_accounted(s, 600)
    assert s["level1"]["vetoed_busy"] > 0 and s["level1"]["deadtime_fraction"] > 0.3
    b = s["builder"]
    event_mb = b["bytes_in"] / max(b["events_complete"], 1) / 2**20
    cfg = fs.base_config().builder
    bound_mb = (cfg.max_building + cfg.max_waiting + 4 * cfg.input_hwm) * event_mb + 64
    assert b["peak_rss_mb"] - baseline < bound_mb, (b["peak_rss_mb"], baseline, bound_mb)
