"""Fault injection against real processes, real ZeroMQ sockets and a real Triton server.

Every scenario: lost = 0, no event counted twice, and the fault visible in the summary.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from farm import fault_scenarios as fs

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def assert_accounted(summary: dict, n: int) -> None:
    ev = summary["events"]
    diagnosis = (summary["collector"], summary["problems"], summary["debug_streams"], summary["builder"])
    assert ev["l1_count_known"] and ev["l1_accepted"] == n, diagnosis
    assert ev["lost"] == 0, diagnosis
    assert ev["accepted"] + ev["rejected"] + ev["debug"] == n, diagnosis


def test_worker_killed_mid_run_is_restarted_and_nothing_lost():
    r = fs.worker_killed(100, kills=2)
    assert r.injected == 2
    assert_accounted(r.summary, 100)
    assert r.summary["workers"]["restarts"] == 2
    assert r.summary["builder"]["workers_lost"] == 2
    # a result sent just before the kill may be refused once as a duplicate: never counted twice
    assert r.summary["events"]["duplicate_results_refused"] <= r.summary["builder"]["retried_after_worker_loss"]
    replacements = [k for k, v in r.summary["workers"]["per_worker"].items() if not k.endswith(".0")]
    assert replacements and any(r.summary["workers"]["per_worker"][k]["processed"] > 0 for k in replacements)
    # whatever shared-memory regions the killed workers had, none is left (the supervisor removes them)
    prefix = r.summary["inference"]["client_shm_prefix"]
    assert prefix and not list(Path("/dev/shm").glob(prefix + "*"))


def test_triton_killed_fallback_then_back_to_triton():
    r = fs.triton_killed(900, outage_s=1.0)
    assert r.injected == 1 and r.notes.get("restarted")
    s = r.summary
    assert_accounted(s, 900)
    inf = s["inference"]
    assert inf["fallback_calls"] > 0 and inf["breaker_opened"] >= 1
    assert inf["triton_calls"] > r.notes["triton_at_restart"], "the farm should return to Triton by itself"
    assert s["latency_ms"]["total"]["p99"] < s["latency_ms"]["total"]["max"] + 1  # sanity
    assert s["latency_ms"]["worker_total"]["max"] < 500.0, "the hard budget holds during the outage"


def test_dead_model_stub_is_detected_and_reloaded():
    r = fs.stub_killed(700)
    assert r.injected >= 1
    assert_accounted(r.summary, 700)
    assert r.summary["inference"]["model_reloads"] >= 1, json.dumps(r.summary["inference"])
    assert r.summary["inference"]["triton_calls"] > r.notes["triton_before"]


def test_bad_fragments_rejected_counted_and_flagged():
    r = fs.readout_faults(300, fraction=0.03)
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


def test_silent_source_events_go_to_missing_data():
    r = fs.silent_source(120)
    s = r.summary
    assert_accounted(s, 120)
    missing = sum(n for k, n in s["debug_streams"].items() if k.startswith("MissingData"))
    assert missing == r.injected == 60


def test_overload_memory_bounded_dead_time_reported():
    calm = fs.base_config()
    from farm.supervisor import run_farm

    baseline = run_farm(calm, 100, output_dir=None)["builder"]["peak_rss_mb"]
    r = fs.overload(1500, rate_hz=3000.0)
    s = r.summary
    assert_accounted(s, 1500)
    assert s["level1"]["vetoed_busy"] > 0 and s["level1"]["deadtime_fraction"] > 0.3
    b = s["builder"]
    event_mb = b["bytes_in"] / max(b["events_complete"], 1) / 2**20
    cfg = fs.base_config().builder
    bound_mb = (cfg.max_building + cfg.max_waiting + 4 * cfg.input_hwm) * event_mb + 64
    assert b["peak_rss_mb"] - baseline < bound_mb, (b["peak_rss_mb"], baseline, bound_mb)
