"""`trigger-sim validate`, short: the figures exist, agree with the definitions, and the
Triton path decides every event as the fallback does (the full 2,000-event run is in the README)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from farm.cli import main

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

KEYS = {"edge_classifier", "tracking", "jet_tagger", "triton_vs_fallback", "turn_on", "targets", "sample", "steps_ms"}


def _client_regions() -> set[str]:
    return {p.name for p in Path("/dev/shm").glob("tsim_client_*")}


def test_short_validation_through_triton(triton_server, tmp_path):
    regions_before = _client_regions()
    out, js = tmp_path / "figures", tmp_path / "validation.json"
    result = CliRunner().invoke(main, ["validate", "--events", "40", "--pileup", "60", "--triton-url", triton_server.grpc_url,
                                       "--out", str(out), "--json", str(js)])
    assert result.exit_code == 0, result.output
    fig = json.loads(js.read_text())
    assert KEYS <= set(fig)
    assert fig["sample"]["events"] == 40 and fig["sample"]["pileup_mean"] == 60.0
    agreement = fig["triton_vs_fallback"]
    assert agreement["events"] == agreement["identical_decisions"] == 40 and agreement["disagreeing_l1_ids"] == []
    # loose bounds on a small sample: the targets themselves are checked on 2,000 events
    assert fig["edge_classifier"]["efficiency"] > 0.9 and fig["edge_classifier"]["purity"] > 0.85
    assert fig["tracking"]["efficiency_pt_above_1gev"] > 0.9 and fig["tracking"]["fake_rate"] < 0.1
    assert fig["jet_tagger"]["tau_jets"] > 0 and fig["jet_tagger"]["roc_auc"] > 0.8
    assert set(fig["turn_on"]) and all(c["n_points"] == 40 and sum(c["events"]) <= 40 for c in fig["turn_on"].values())
    assert all(0 <= c["passed"] <= c["n_points"] for c in fig["turn_on"].values())
    for name in ("tracking_efficiency.png", "jet_tagger_roc.png", "turn_on.png"):
        assert (out / name).stat().st_size > 10_000
    assert "identical decisions" in result.output and "track fake rate" in result.output
    assert _client_regions() == regions_before, "validate left its shared-memory regions in /dev/shm"


def test_validation_without_a_server_runs_the_fallback_only(tmp_path):
    js = tmp_path / "v.json"
    result = CliRunner().invoke(main, ["validate", "--events", "5", "--pileup", "20", "--no-triton", "--out", str(tmp_path),
                                       "--json", str(js)])
    assert result.exit_code == 0, result.output
    fig = json.loads(js.read_text())
    assert fig["sample"]["triton"] == "none" and fig["triton_vs_fallback"]["events"] == 0
    assert fig["targets"]["decision_agreement"]["met"] is False
