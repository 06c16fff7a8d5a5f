"""Where the readout's events come from: the detector simulation, or a recording file.

A source yields, for each Level-1 accept, the event's id and its fragments stamped with
that id and the scheduled Level-1 time. A recording keeps its events' original Level-1
ids (so prescale decisions replay identically); with `loop`, each further pass adds an
offset so ids stay unique.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from trigger_sim.config import CaloConfig, FarmConfig, TrackerConfig, from_mapping
from trigger_sim.errors import RecordingError
from trigger_sim.event import Fragment
from trigger_sim.partition import source_ids
from trigger_sim.recording import RecordReader
from trigger_sim.simulation import event_fragments


class SimulatedSource:
    """Generated events with Level-1 ids 0, 1, 2, ..."""

    def __init__(self, config: FarmConfig):
        self.config = config
        self._next = 0

    def next_event(self, l1_time_ns: int) -> tuple[int, list[Fragment]] | None:
        l1_id = self._next
        self._next += 1
        return l1_id, event_fragments(self.config, l1_id, l1_time_ns)


class RecordingSource:
    """Events of a recording file, in file order, re-stamped with the farm's run number
    and the scheduled Level-1 time."""

    def __init__(self, config: FarmConfig, path: str | Path, loop: bool = False):
        self.config = config
        self.path = Path(path)
        self.loop = loop
        self.reader = RecordReader(self.path)
        self._records: Iterator[Any] = iter(self.reader)
        self._pass = 0
        self._id_span = 0  # highest original id + 1, known after the first pass
        self._yielded_this_pass = 0
        expected = set(source_ids(config))
        first = next(iter(self.reader), None)
        if first is None:
            raise RecordingError(f"{self.path}: no complete event to replay")
        found = {f.header.source_id for f in first.fragments}
        if not found <= expected:
            raise RecordingError(f"{self.path}: recorded sources {sorted(map(hex, found))} are not sources of this farm "
                                 f"{sorted(map(hex, expected))}: replay with the detector configuration it was recorded with")

    def next_event(self, l1_time_ns: int) -> tuple[int, list[Fragment]] | None:
        record = next(self._records, None)
        if record is None:
            if not self.loop or self._yielded_this_pass == 0:
                return None
            self._pass += 1
            self._yielded_this_pass = 0
            self._records = iter(self.reader)
            record = next(self._records, None)
            if record is None:
                return None
        if self._pass == 0:
            self._id_span = max(self._id_span, record.l1_id + 1)
        self._yielded_this_pass += 1
        l1_id = record.l1_id + self._pass * self._id_span
        run = self.config.run.run_number
        fragments = [Fragment(dataclasses.replace(f.header, l1_id=l1_id, l1_time_ns=l1_time_ns, run_number=run), f.arrays)
                     for f in record.fragments]
        return l1_id, fragments


def config_for_recording(config: FarmConfig, path: str | Path) -> FarmConfig:
    """The farm configuration with the detector geometry the recording was made with."""
    detector = RecordReader(path).header.get("detector") or {}
    changes = {}
    for name, cls in (("tracker", TrackerConfig), ("calo", CaloConfig)):
        if isinstance(detector.get(name), dict):
            changes[name] = from_mapping(cls, detector[name], f"{path} (header)", f"{name}.")
    return dataclasses.replace(config, **changes)
