"""The `import trackml` command on the TrackML-format sample (tests/data/trackml), then `inspect`."""

from __future__ import annotations

import gzip
import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from farm.cli import main
from trigger_sim.config import REPO_ROOT, FarmConfig
from trigger_sim.partition import source_ids
from trigger_sim.recording import RecordReader

DATA_DIR = REPO_ROOT / "tests" / "data" / "trackml"
SOURCES = source_ids(FarmConfig())


def invoke(*args: object) -> object:
    return CliRunner().invoke(main, [str(a) for a in args])


def endcap_hits_in_sample() -> int:
    total = 0
    for path in DATA_DIR.glob("*-hits.csv.gz"):
        rows = gzip.decompress(path.read_bytes()).decode().splitlines()[1:]
        total += sum(row.split(",")[4] in {"7", "9", "12", "14", "16", "18"} for row in rows)
    return total


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    out = tmp_path_factory.mktemp("trackml") / "trackml.tsrec"
    result = invoke("import", "trackml", DATA_DIR, "-o", out)
    assert result.exit_code == 0, result.output
    return out, result.output


def test_import_reports_what_was_kept_and_dropped(imported: tuple[Path, str]) -> None:
    out, output = imported
    text = " ".join(output.split())
    assert "wrote 3 TrackML events" in text
    dropped = re.search(r"dropped (\d+) endcap hits, not in this detector \(per volume 7: \d+, 9: \d+, 12: \d+, 14: \d+, "
                        r"16: \d+, 18: \d+\)", text)
    assert dropped is not None, text
    assert int(dropped.group(1)) == endcap_hits_in_sample() > 0
    assert "truth kept for 3 events" in text and "calorimeter fragments empty" in text
    reader = RecordReader(out)
    assert reader.header["source"] == {"kind": "trackml", "directory": "trackml", "event_ids": [1000, 1001, 1002]}
    records = list(reader)
    assert [r.l1_id for r in records] == [0, 1, 2]
    assert all([f.header.source_id for f in r.fragments] == SOURCES for r in records)
    assert [r.meta["trackml"]["event_id"] for r in records] == [1000, 1001, 1002]


def test_inspect_reads_the_imported_file(imported: tuple[Path, str], tmp_path: Path) -> None:
    out, _ = imported
    result = invoke("inspect", out, "--json", tmp_path / "s.json")
    assert result.exit_code == 0, result.output
    summary = json.loads((tmp_path / "s.json").read_text())
    assert (summary["events"], summary["index_present"], summary["cut_short"]) == (3, True, False)
    assert summary["source"]["kind"] == "trackml"
    assert [s["fragments"] for s in summary["sources"]] == [3] * len(SOURCES)


def test_import_refuses_to_overwrite(imported: tuple[Path, str]) -> None:
    out, _ = imported
    result = invoke("import", "trackml", DATA_DIR, "-o", out)
    assert result.exit_code == 2
    assert "exists" in result.output and "--overwrite" in result.output


def test_bad_data_is_named_and_leaves_no_output(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for path in DATA_DIR.glob("event000001000-*"):
        shutil.copy(path, data / path.name)
    hits = data / "event000001000-hits.csv.gz"
    lines = gzip.decompress(hits.read_bytes()).decode().split("\n")
    lines[3] = lines[3].rsplit(",", 3)[0] + ",11,2,1"  # volume 11 is not in the TrackML detector
    hits.write_bytes(gzip.compress("\n".join(lines).encode()))
    out = tmp_path / "bad.tsrec"
    result = invoke("import", "trackml", data, "-o", out)
    assert result.exit_code == 1
    assert f"{hits}: line 4, column 5 (volume_id): volume_id 11, layer_id 2 is not a layer" in " ".join(result.output.split())
    assert not list(tmp_path.glob("bad.tsrec*"))


def test_a_directory_without_events_is_an_error(tmp_path: Path) -> None:
    result = invoke("import", "trackml", tmp_path, "-o", tmp_path / "x.tsrec")
    assert result.exit_code == 1
    assert "no TrackML event files" in result.output
