"""Workers killed at random moments, and a worker that stalls: the real farm, real SIGKILLs.

The long version (hundreds of kills over 5,000 events each, below and above saturation)
runs from `scripts/fault_suite.py --only random_kills_below --only random_kills_above`.
"""

from __future__ import annotations

import pytest

from farm import fault_scenarios as fs

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.mark.parametrize("n, rate_hz, seed", [(400, 30.0, 11), (900, 150.0, 12)], ids=["below-saturation", "above-saturation"])
def test_random_kills_lose_nothing_and_write_each_event_once(tmp_path, triton_server, n, rate_hz, seed):
    # above saturation the farm decides ~100 events/s here: 900 events give the killer ~9 s
    r = fs.random_worker_kills(n, rate_hz=rate_hz, mean_interval_s=0.3, seed=seed, output_dir=tmp_path / "out", min_age_s=1.0,
                               triton_url=triton_server.grpc_url)
    s, ev = r.summary, r.summary["events"]
    diagnosis = (s["problems"][:5], s["builder"], s["collector"])
    assert r.injected >= 2, "the killer should have fired several times"
    assert ev["l1_count_known"] and ev["l1_accepted"] == n, diagnosis
    assert ev["lost"] == 0 and ev["accepted"] + ev["rejected"] + ev["debug"] == n, diagnosis
    assert ev["duplicate_results_refused"] == 0, "the builder forwards one decision per event"
    assert s["workers"]["restarts"] >= len(set(r.notes["killed"])) - 1  # the last kill may land as the run ends
    for stream, check in r.notes["streams"].items():  # duplicates refused are never written
        assert check["records"] == check["distinct"] == check["summary"], (stream, check)
    per_worker = s["workers"]["per_worker"]
    for identity in set(r.notes["killed"]):  # a killed worker's counters survive it
        if per_worker.get(identity, {}).get("decided"):
            assert "processed" in per_worker[identity], identity
    if rate_hz > 60:  # saturated: every worker always holds an event, so kills hit events
        assert s["builder"]["retried_after_worker_loss"] >= 1, diagnosis


def test_a_stalled_worker_is_killed_replaced_and_its_event_retried(triton_server):
    r = fs.worker_stalled(300, triton_url=triton_server.grpc_url)
    s = r.summary
    assert r.injected == 1
    assert s["events"]["lost"] == 0 and s["events"]["l1_accepted"] == 300
    assert s["builder"]["workers_reported_silent"] == [r.notes["stopped"]]
    assert s["workers"]["restarts"] == 1
    assert any("silent for" in p and "killed" in p for p in s["problems"])
    # the replacement worked: events decided after the stall by more than the other worker
    assert sum(1 for k, v in s["workers"]["per_worker"].items() if v.get("decided")) >= 3
