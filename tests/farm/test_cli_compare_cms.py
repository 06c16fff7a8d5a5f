"""The `compare-cms` command on five real CMS events, through click's test runner."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from farm.cli import main

IG_FILE = Path(__file__).resolve().parents[1] / "data" / "cms-ispy" / "MinimumBias_Run2012C_0_first5.ig"


def invoke(*args: object) -> object:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def test_compare_cms_prints_the_table_and_writes_json(tmp_path: Path) -> None:
    recording = tmp_path / "mb5.tsrec"
    assert invoke("import", "ispy", IG_FILE, "-o", recording).exit_code == 0
    result = invoke("compare-cms", recording, recording, "--json", tmp_path / "cmp.json")
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "agreement measures similarity, not correctness" in text and "CMP_met120" in text
    assert "not comparable: this detector has no muon system" in text
    out = json.loads((tmp_path / "cmp.json").read_text())
    assert [f["events"] for f in out["files"]] == [f["decided"] for f in out["files"]] == [5, 5]
    met = next(p for p in out["total"] if p["chain"] == "CMP_met120")
    assert met["n"] == 10 and met["both"] + met["ours_only"] + met["cms_only"] + met["neither"] == 10
    assert met["cms_paths_matched"] and all(m.startswith("HLT_MET120") for m in met["cms_paths_matched"])


def test_compare_cms_refuses_a_recording_without_cms_decisions(tmp_path: Path) -> None:
    recording = tmp_path / "gen.tsrec"
    assert invoke("record", "--events", 2, "-o", recording, "--pileup", 1).exit_code == 0
    result = CliRunner().invoke(main, ["compare-cms", str(recording)])
    assert result.exit_code != 0 and "import ispy" in result.output
