"""`trigger-sim validate`, short: the figures exist, agree with the definitions, and the
Triton path decides every event as the fallback does (the full 2,000-event run is in the README)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from farm.cli import main
from farm.validate import VALIDATION_SEED, validation_config
from trigger_sim.config import load_config
from trigger_sim.recording import write_generated

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


def _numbers(fig: dict) -> str:
    """Every figure but the sample's description and the step times (those differ run to run)."""
    return json.dumps({k: v for k, v in fig.items() if k not in ("sample", "steps_ms")}, sort_keys=True, default=float)


def test_record_then_validate_the_recording_gives_the_figures_of_validate(tmp_path):
    recording, fresh, replayed = tmp_path / "r.tsrec", tmp_path / "fresh.json", tmp_path / "replayed.json"
    runner = CliRunner()
    # the validation's seed and mix, so the recording holds the events `validate` simulates
    write_generated(validation_config(load_config(None), 20.0, VALIDATION_SEED), recording, 4, truth=True)
    for args, js in ((["--events", "4", "--pileup", "20"], fresh), (["--recording", str(recording)], replayed)):
        result = runner.invoke(main, ["validate", *args, "--no-triton", "--out", str(tmp_path / js.stem), "--json", str(js)])
        assert result.exit_code == 0, result.output
    a, b = json.loads(fresh.read_text()), json.loads(replayed.read_text())
    assert a["tracking"]["tracks"] > 0 and a["jet_tagger"]["tau_jets"] + a["jet_tagger"]["background_jets"] > 0
    assert _numbers(a) == _numbers(b)
    assert b["sample"]["recording"] == str(recording) and b["sample"]["truth"] == {"generated": 4}


def test_record_command_stores_truth_and_validate_skips_what_a_file_without_it_lacks(tmp_path):
    with_truth, without = tmp_path / "t.tsrec", tmp_path / "n.tsrec"
    runner = CliRunner()
    for path, flag in ((with_truth, "--truth"), (without, "--no-truth")):
        result = runner.invoke(main, ["record", "--events", "2", "--pileup", "5", flag, "-o", str(path)])
        assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["validate", "--recording", str(without), "--no-triton", "--out", str(tmp_path / "n"), "--check"])
    assert result.exit_code == 0, result.output  # skipped targets are not missed ones
    assert "skipped the edge, tracking, jet and turn-on figures on 2 of 2 events: the record carries no truth" in result.output
    assert not list((tmp_path / "n").glob("*.png"))
    result = runner.invoke(main, ["validate", "--recording", str(with_truth), "--no-triton", "--out", str(tmp_path / "t")])
    assert result.exit_code == 0, result.output
    assert "skipped" not in result.output and (tmp_path / "t" / "tracking_efficiency.png").exists()
    result = runner.invoke(main, ["validate", "--recording", str(with_truth), "--pileup", "60"])
    assert result.exit_code == 2 and "--pileup and --seed describe fresh events" in result.output


def test_validate_on_an_imported_trackml_recording_reports_tracking_only(tmp_path):
    recording, js = tmp_path / "trackml.tsrec", tmp_path / "v.json"
    data = Path(__file__).parents[1] / "data" / "trackml"
    runner = CliRunner()
    result = runner.invoke(main, ["import", "trackml", str(data), "-o", str(recording)])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["validate", "--recording", str(recording), "--no-triton", "--out", str(tmp_path / "f"),
                                  "--json", str(js)])
    assert result.exit_code == 0, result.output
    fig = json.loads(js.read_text())
    assert fig["sample"]["truth"] == {"trackml": 3} and "barrel" in fig["sample"]["reconstructable"]
    assert fig["tracking"]["reconstructable_pt_above_1gev"] > 0 and 0.0 <= fig["tracking"]["efficiency_pt_above_1gev"] <= 1.0
    assert fig["targets"]["jet_tagger_auc"]["skipped"] and fig["turn_on"] == {}
    assert fig["skipped"] == {"jets_and_turn_on": [{"reason": "TrackML events have no calorimeter and no truth jets, taus or "
                                                              "electrons", "events": 3}]}
    assert "this detector's barrel" in result.output
