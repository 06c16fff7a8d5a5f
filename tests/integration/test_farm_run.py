"""The whole farm with real processes, real ZeroMQ sockets and a real Triton server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from farm.server_device import probe_gpus
from farm.one_host import run_farm
from farm.triton_server import free_port
from trigger_sim.config import load_config, with_overrides
from trigger_sim.menu import load_menu
from trigger_sim.recording import RecordReader

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
REFERENCE_EVENTS = 200  # the session's reference run (tests/integration/conftest.py)


def config(**sections):
    base = with_overrides(load_config(), readout={"rate_hz": 60.0}, worker={"count": 2})
    return with_overrides(base, **sections)


def check_accounting(summary: dict, n: int) -> None:
    ev = summary["events"]
    assert ev["l1_accepted"] == n
    diagnosis = (summary["collector"], summary["problems"], summary["debug_streams"], summary["builder"])
    assert ev["lost"] == 0 and ev["duplicate_results_refused"] == 0 and ev["l1_count_known"], diagnosis
    assert ev["accepted"] + ev["rejected"] + ev["debug"] == n


def test_farm_with_local_triton_writes_streams(tmp_path):
    """The farm starts its own server; every event is decided, Triton answers, streams read back."""
    summary = run_farm(config(), n_events=300, output_dir=tmp_path)
    check_accounting(summary, 300)
    assert summary["inference"]["server_mode"] == "local"
    # "auto": config.pbtxt on a host where torch sees no GPU (as in CI), configs/gpu.pbtxt where it does
    assert summary["inference"]["server_model_config"] == ("gpu" if probe_gpus().count else "cpu")
    assert summary["inference"]["triton_calls"] > 0
    # graph-sized requests went through shared memory (the server is local), and no region is left
    gnn = summary["inference"]["models"]["edge_classifier"]
    assert 0 < gnn["shared_memory_calls"] <= gnn["triton_calls"] + gnn["triton_failures"]
    assert not list(Path("/dev/shm").glob(summary["inference"]["client_shm_prefix"] + "*"))
    assert summary["latency_ms"]["total"]["n"] == 300
    assert summary["latency_ms"]["total"]["p99"] >= summary["latency_ms"]["total"]["p50"] > 0
    menu_streams = set(load_menu(config().menu).streams)
    assert set(summary["streams"]) <= menu_streams
    for stream, n in summary["streams"].items():
        reader = RecordReader(tmp_path / f"{stream}.tsrec")
        records = list(reader)
        assert reader.truncated_at is None
        assert len(records) == n
        assert all(stream in r.meta["streams"] and len(r.fragments) == 4 for r in records)


def test_fallback_gives_the_same_decisions_as_triton(reference_run, slow_triton_server):
    """Same events through Triton and through a server slower than the deadline: same decisions."""
    n = REFERENCE_EVENTS
    # the session's reference run has a deadline the server always
    # meets (the soft timeout, 0.8 x the 500 ms budget, caps it): this side must be Triton's
    # decisions only, or the comparison may be the fallback's with itself
    via_triton = reference_run
    # the slow repository serves the jet tagger only: the edge classifier runs in the workers
    too_slow = run_farm(config(inference={"triton_url": slow_triton_server.grpc_url, "timeout_ms": 10.0, "models": ("jet_tagger",)}),
                        n_events=n, output_dir=None)
    check_accounting(via_triton, n)
    check_accounting(too_slow, n)
    # every event decided on Triton's answers: each event's inference path is triton (none
    # fell back, none skipped), and per model every call was answered by the server
    served = via_triton["inference"]
    assert (served["triton_calls"], served["fallback_calls"], served["skipped_nothing_to_infer"]) == (n, 0, 0), served
    assert served["triton_failures"] == 0 and not served["fallback_reasons"], served
    for model, calls in served["models"].items():
        assert calls["fallback_calls"] == 0 and calls["triton_calls"] + calls["skipped"] == n and calls["triton_calls"] > 0, (model, calls)
    assert too_slow["inference"]["triton_calls"] == 0
    assert too_slow["inference"]["fallback_calls"] == via_triton["inference"]["triton_calls"] + via_triton["inference"]["fallback_calls"]
    # no_server: the edge classifier, not served there, runs in the workers
    assert set(too_slow["inference"]["fallback_reasons"]) <= {"timeout", "breaker_open", "no_server"}
    tagger_slow, tagger = too_slow["inference"]["models"]["jet_tagger"], via_triton["inference"]["models"]["jet_tagger"]
    assert tagger_slow["triton_calls"] == 0 and tagger_slow["fallback_calls"] == tagger["triton_calls"] + tagger["fallback_calls"] > 0
    assert too_slow["latency_ms"]["jet_tagger"]["p99"] < 10.0 + 15.0  # the deadline holds (plus the local forward)
    assert too_slow["chains"] == via_triton["chains"]
    assert too_slow["events"]["decision_digest"] == via_triton["events"]["decision_digest"]  # event by event
    assert too_slow["streams"] == via_triton["streams"]


def test_absent_server_every_event_decided_by_fallback():
    summary = run_farm(config(inference={"triton_url": f"127.0.0.1:{free_port()}", "breaker_open_ms": 200.0}), n_events=150, output_dir=None)
    check_accounting(summary, 150)
    inf = summary["inference"]
    assert inf["triton_calls"] == 0 and inf["fallback_calls"] > 0
    assert inf["breaker_opened"] >= 1  # a dead server does not cost every event a call
    assert inf["fallback_reasons"].get("breaker_open", 0) > inf["fallback_reasons"].get("unavailable", 0)
    assert summary["problems"], "the model check at start-up should report the missing server"


def test_cli_run_writes_json_summary(tmp_path, triton_server):
    out = tmp_path / "out.json"
    cmd = [sys.executable, "-m", "farm", "run", "--events", "120", "--rate", "60", "--workers", "2",
           "--triton-url", triton_server.grpc_url, "--json", str(out), "--output", str(tmp_path / "streams"), "--quiet"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(out.read_text())
    for key in ("l1_accepted", "accepted", "rejected", "debug", "lost"):
        assert isinstance(summary["events"][key], int)
    assert summary["events"]["lost"] == 0 and summary["events"]["l1_accepted"] == 120
    assert summary["inference"]["triton_calls"] > 0 and "fallback_calls" in summary["inference"]
    assert summary["latency_ms"]["total"]["p99"] >= summary["latency_ms"]["total"]["p50"]


def test_cli_rejects_bad_config_with_file_and_key(tmp_path):
    bad = tmp_path / "farm.toml"
    bad.write_text("[readout]\nrate_hz = 10\nrat_hz = 5\n")
    proc = subprocess.run([sys.executable, "-m", "farm", "run", "--config", str(bad), "--events", "5"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert str(bad) in proc.stderr and "readout.rat_hz" in proc.stderr
