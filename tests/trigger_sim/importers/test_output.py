"""Tests of trigger_sim.importers.output: the recording appears whole or not at all."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from trigger_sim.config import FarmConfig, as_dict
from trigger_sim.importers.output import PARTIAL_SUFFIX, refuse_existing, write_recording
from trigger_sim.recording import RecordReader
from trigger_sim.simulation import event_fragments

CONFIG = FarmConfig()


def convert(item: int, l1_id: int) -> SimpleNamespace:
    if item < 0:
        raise ValueError(f"item {item} cannot be converted")
    return SimpleNamespace(fragments=event_fragments(CONFIG, l1_id, 0), meta={"item": item})


def write(output: Path, items: list[int], **kwargs) -> list[tuple[int, int]]:
    seen: list[int] = []
    progress: list[tuple[int, int]] = []
    write_recording(output, items, convert, total=len(items), run_number=7, stream="test", detector=as_dict(CONFIG),
                    source={"kind": "test"}, on_event=lambda c: seen.append(c.meta["item"]),
                    progress=lambda done, total: progress.append((done, total)), **kwargs)
    assert seen == items[:len(seen)]
    return progress


def test_events_get_ids_in_order_and_the_file_appears_when_complete(tmp_path):
    output = tmp_path / "out.tsrec"
    assert write(output, [3, 1, 2]) == [(1, 3), (2, 3), (3, 3)]
    records = list(RecordReader(output))
    assert [(r.l1_id, r.meta["item"]) for r in records] == [(0, 3), (1, 1), (2, 2)]
    assert list(tmp_path.iterdir()) == [output]


def test_a_failed_import_leaves_no_partial_file_and_the_old_recording_untouched(tmp_path):
    output = tmp_path / "out.tsrec"
    output.write_bytes(b"the previous recording")
    with pytest.raises(ValueError, match="item -1"):
        write(output, [0, 1, -1, 2])
    assert output.read_bytes() == b"the previous recording"
    assert not (tmp_path / ("out.tsrec" + PARTIAL_SUFFIX)).exists()


def test_an_existing_output_is_refused_unless_overwritten(tmp_path):
    output = tmp_path / "out.tsrec"
    refuse_existing(output, overwrite=False)
    output.touch()
    with pytest.raises(FileExistsError, match="overwrite"):
        refuse_existing(output, overwrite=False)
    refuse_existing(output, overwrite=True)
