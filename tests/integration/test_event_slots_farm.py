"""Event slots in the real farm: decisions do not depend on the slot count, and a worker with
several slots overlaps the server's time with its own work."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from farm.one_host import FarmHooks, run_farm
from tests.integration.test_farm_run import REFERENCE_EVENTS, check_accounting, config
from trigger_sim.hlt.sequence import SLOT_WAIT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_four_slots_decide_as_one_and_overlap_a_slow_server(slow_triton_server):
    """One worker against a server that holds every jet-tagger request 50 ms (a sleep, no CPU):
    with one slot the worker waits out each request; with four it works on other events
    meanwhile. Same events, same decisions, event by event."""
    n = 80
    runs = {}
    # input above what the worker decides (about 14 and 50 events/s), within what the builder's
    # queue holds for these 80 events, so no event waits on back-pressure
    for slots, rate_hz in ((1, 30.0), (4, 80.0)):
        cfg = config(worker={"count": 1, "slots": slots}, readout={"rate_hz": rate_hz}, builder={"build_timeout_ms": 60_000.0},
                     inference={"triton_url": slow_triton_server.grpc_url, "timeout_ms": 400.0, "models": ("jet_tagger",)})
        runs[slots] = run_farm(cfg, n_events=n, output_dir=None)
        check_accounting(runs[slots], n)
        assert runs[slots]["events"]["debug"] == 0, runs[slots]["debug_streams"]
    one, four = runs[1], runs[4]
    assert four["events"]["decision_digest"] == one["events"]["decision_digest"]
    for summary in (one, four):
        tagger = summary["inference"]["models"]["jet_tagger"]
        assert tagger["triton_calls"] > 0 and tagger["fallback_calls"] == 0, tagger
    assert (one["workers"]["node_slots"], four["workers"]["node_slots"]) == (2, 5)  # 1 worker x (credits + 1)
    worker = next(iter(four["workers"]["per_worker"].values()))
    assert worker["slots"] == 4 and worker["peak_slots_held"] == 4
    assert SLOT_WAIT not in one["latency_ms"] and "jet_tagger_wait" not in one["latency_ms"]
    assert four["latency_ms"]["jet_tagger_wait"]["p50"] >= 45.0  # the server's time, set aside
    assert four["latency_ms"]["jet_tagger"]["p50"] < 10.0  # the event's own time: no longer the wait
    speedup = four["throughput"]["decided_per_s"] / one["throughput"]["decided_per_s"]
    assert speedup >= 1.5, (one["throughput"], four["throughput"])


def test_slots_with_both_models_served_and_shared_memory(triton_server, reference_run, tmp_path):
    """Two workers of four slots on the farm's usual server: every call answered by Triton
    (graphs through shared memory, a region per request in flight), the same decisions as one
    slot (the session's reference run: the same configuration with one slot), the per-event
    table has the waits, and no region is left behind."""
    n = REFERENCE_EVENTS
    base = dict(inference={"triton_url": triton_server.grpc_url, "timeout_ms": 400.0})
    one = reference_run
    table = tmp_path / "events.parquet"
    four = run_farm(config(worker={"count": 2, "slots": 4}, **base), n_events=n, output_dir=None, events_table=table)
    for summary in (one, four):
        check_accounting(summary, n)
        assert summary["events"]["debug"] == 0, summary["debug_streams"]
        assert summary["inference"]["fallback_calls"] == 0, summary["inference"]["fallback_reasons"]
    assert four["events"]["decision_digest"] == one["events"]["decision_digest"]
    gnn = four["inference"]["models"]["edge_classifier"]
    assert gnn["shared_memory_calls"] > 0 and gnn["triton_failures"] == 0
    assert not list(Path("/dev/shm").glob(four["inference"]["client_shm_prefix"] + "*"))
    import pandas as pd

    df = pd.read_parquet(table)
    assert len(df) == n and df["edge_classifier_wait_ms"].notna().sum() > 0 and df["slot_wait_ms"].notna().all()


def test_a_worker_killed_holding_four_events_has_each_retried_and_decided_once(slow_triton_server):
    """SIGKILL a worker while its four slots hold events (input far above what it decides): every
    one of them goes back to the builder's queue and is decided once, by another worker."""
    n, kill_at = 150, 30
    killed: list[int] = []

    def tick(farm) -> None:
        if not killed and farm.collector.ledger.decided >= kill_at:
            killed.append(farm.workers[0].pid)
            os.kill(farm.workers[0].pid, signal.SIGKILL)

    cfg = config(worker={"count": 2, "slots": 4}, readout={"rate_hz": 120.0}, builder={"build_timeout_ms": 60_000.0},
                 inference={"triton_url": slow_triton_server.grpc_url, "timeout_ms": 400.0, "models": ("jet_tagger",)})
    summary = run_farm(cfg, n_events=n, output_dir=None, hooks=FarmHooks(on_tick=tick))
    check_accounting(summary, n)
    assert killed and summary["workers"]["restarts"] == 1
    b = summary["builder"]
    assert b["retried_after_worker_loss"] >= 2, b  # it held several events, not one
    assert summary["events"]["debug"] == 0, summary["debug_streams"]  # none lost to HltError or NotProcessed
