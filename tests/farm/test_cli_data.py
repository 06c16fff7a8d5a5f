"""The `record`, `inspect` and `import ispy` commands, through click's test runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from farm.cli import main
from trigger_sim.config import FarmConfig, as_dict, with_overrides
from trigger_sim.partition import source_ids
from trigger_sim.recording import RecordReader

IG_FILE = Path(__file__).resolve().parents[1] / "data" / "cms-ispy" / "MinimumBias_Run2012C_0_first5.ig"
N_SOURCES = len(source_ids(FarmConfig()))


def invoke(*args: str) -> object:
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


@pytest.fixture(scope="module")
def recording(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("record") / "gen.tsrec"
    result = invoke("record", "--events", 4, "-o", path, "--pileup", 2, "--seed", 11)
    assert result.exit_code == 0, result.output
    return path


def test_record_writes_events_config_and_index(recording: Path) -> None:
    reader = RecordReader(recording)
    expected = with_overrides(FarmConfig(), physics={"pileup_mean": 2.0}, run={"seed": 11})
    assert reader.header["detector"] == json.loads(json.dumps(as_dict(expected)))
    assert reader.header["source"] == {"kind": "generated", "seed": 11, "pileup_mean": 2.0, "truth": True}
    assert reader.index is not None and len(reader) == 4
    records = list(reader)
    assert [r.l1_id for r in records] == [0, 1, 2, 3]
    assert all(r.meta["truth"]["source"] == "generated" for r in records)  # for `validate --recording`
    assert all(sorted(f.header.source_id for f in r.fragments) == source_ids(expected) for r in records)


def test_inspect_summarises_a_recording(recording: Path, tmp_path: Path) -> None:
    result = invoke("inspect", recording, "--json", tmp_path / "s.json")
    assert result.exit_code == 0, result.output
    assert "0x200" in result.output and "present" in result.output
    summary = json.loads((tmp_path / "s.json").read_text())
    assert summary["events"] == 4
    assert (summary["l1_id_min"], summary["l1_id_max"]) == (0, 3)
    assert summary["stream"] == "generated" and summary["format_version"] == 1
    assert summary["index_present"] and not summary["cut_short"]
    assert [s["fragments"] for s in summary["sources"]] == [4] * N_SOURCES
    assert summary["record_bytes_mean"] == pytest.approx(summary["record_bytes_total"] / 4)


def test_inspect_reports_where_a_file_was_cut(recording: Path, tmp_path: Path) -> None:
    reader = RecordReader(recording)
    third = reader.index[2][1]
    cut = tmp_path / "cut.tsrec"
    for size, events, cut_at in ((third + 7, 2, third), (third, 2, third), (reader.index_offset + 3, 4, reader.index_offset)):
        cut.write_bytes(recording.read_bytes()[:size])
        result = invoke("inspect", cut, "--json", tmp_path / "cut.json")
        assert result.exit_code == 0, result.output
        summary = json.loads((tmp_path / "cut.json").read_text())
        assert (summary["events"], summary["cut_short"], summary["cut_at_byte"]) == (events, True, cut_at), size
        assert not summary["index_present"]


def test_record_refuses_to_overwrite(recording: Path) -> None:
    result = CliRunner().invoke(main, ["record", "--events", "1", "-o", str(recording)])
    assert result.exit_code == 2
    assert "exists" in result.output and "--overwrite" in result.output


def test_import_ispy_then_read_back(tmp_path: Path) -> None:
    out = tmp_path / "cms.tsrec"
    result = invoke("import", "ispy", IG_FILE, "-o", out)
    assert result.exit_code == 0, result.output
    assert "wrote 5 CMS events" in result.output
    reader = RecordReader(out)
    assert reader.header["run_number"] == 198230
    assert reader.header["source"]["kind"] == "cms-ispy"
    assert reader.header["source"]["cmssw_version"] == "CMSSW_5_3_36"
    records = list(reader)
    assert len(records) == len(reader) == 5
    for l1_id, record in enumerate(records):
        assert record.l1_id == l1_id
        assert [f.header.source_id for f in record.fragments] == source_ids(FarmConfig())
        assert record.meta["cms"]["run"] == 198230
        assert record.meta["cms_hlt"]["HLTriggerFinalPath"] is True
    assert not list(tmp_path.glob("*.partial"))


def test_import_ispy_rejects_a_file_that_is_not_ispy(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.ig"
    bogus.write_text("not a zip")
    result = CliRunner().invoke(main, ["import", "ispy", str(bogus), "-o", str(tmp_path / "x.tsrec")])
    assert result.exit_code == 1
    assert "not a zip archive" in result.output
    assert not list(tmp_path.glob("x.tsrec*"))


def test_import_ispy_names_the_bad_member_and_leaves_no_output(tmp_path: Path) -> None:
    import zipfile

    damaged = tmp_path / "damaged.ig"
    with zipfile.ZipFile(IG_FILE) as source, zipfile.ZipFile(damaged, "w") as archive:
        first = next(n for n in source.namelist() if n.startswith("Events/"))
        archive.writestr(first, source.read(first))
        archive.writestr("Events/Run_198230/Event_7", b'{"Types": {"Event_V2": [["run", "int"]]}, "Collections": {')
    out = tmp_path / "damaged.tsrec"
    result = CliRunner().invoke(main, ["import", "ispy", str(damaged), "-o", str(out)])
    assert result.exit_code == 1
    assert "member Events/Run_198230/Event_7: does not parse" in result.output
    assert not list(tmp_path.glob("damaged.tsrec*"))
