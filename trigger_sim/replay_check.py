"""Do a run's output streams replay to the same decisions? Plain comparison, no farm.

A run's accepted events are in its stream files, each with the chains that accepted it.
Replaying a stream file through the farm again must accept each of its events with the same
chains (events keep their Level-1 ids, so prescales repeat): an event that is missing from
the second run's streams was rejected or went to a debug stream there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trigger_sim.menu import DEBUG_STREAMS
from trigger_sim.recording import RecordReader


def physics_streams(folder: str | Path) -> list[Path]:
    """The stream files of a run folder that hold accepted events (not the debug streams)."""
    return sorted(p for p in Path(folder).glob("*.tsrec") if p.stem not in DEBUG_STREAMS)


def stream_decisions(folder: str | Path, include_debug: bool = False) -> dict[int, tuple[str, ...]]:
    """Level-1 id -> chains, over the stream files of a run folder (an event in several
    streams appears once: its chains are the same in each)."""
    files = sorted(Path(folder).glob("*.tsrec")) if include_debug else physics_streams(folder)
    out: dict[int, tuple[str, ...]] = {}
    for path in files:
        for record in RecordReader(path):
            out[record.l1_id] = tuple(sorted(record.meta.get("chains", ())))
    return out


@dataclass
class ReplayComparison:
    """The events of one replayed stream file against what the second run decided."""

    stream: str
    events: int = 0
    same: int = 0
    different_chains: list[int] = field(default_factory=list)  # accepted again, by other chains
    not_accepted: list[int] = field(default_factory=list)  # rejected or in a debug stream the second time

    @property
    def identical(self) -> bool:
        return self.events > 0 and self.same == self.events


def compare_replay(stream: str, first: dict[int, tuple[str, ...]], replayed_ids: list[int],
                   second: dict[int, tuple[str, ...]]) -> ReplayComparison:
    """Each replayed event's chains in the first run against the second run's."""
    result = ReplayComparison(stream, events=len(replayed_ids))
    for l1_id in replayed_ids:
        if l1_id not in second:
            result.not_accepted.append(l1_id)
        elif second[l1_id] != first.get(l1_id):
            result.different_chains.append(l1_id)
        else:
            result.same += 1
    return result
