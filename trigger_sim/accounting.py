"""Where every Level-1-accepted event ended: exactly one of rejected, accepted, debug.

The ledger counts outcomes as they arrive, refuses to count an event twice (a second
outcome for the same Level-1 id is recorded as a duplicate), and at the end says how many
Level-1 accepts never arrived anywhere: the lost events.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

ACCEPTED = "accepted"
REJECTED = "rejected"
DEBUG = "debug"
OUTCOMES = (ACCEPTED, REJECTED, DEBUG)
MAX_L1_ID = 1 << 28  # one byte per id up to the highest seen (268 M events): refuse ids beyond


@dataclass
class Ledger:
    outcomes: Counter = field(default_factory=Counter)
    streams: Counter = field(default_factory=Counter)
    chains: Counter = field(default_factory=Counter)
    duplicates: int = 0
    highest_id: int = -1
    duplicate_ids: list[int] = field(default_factory=list)  # the first few, for diagnosis
    _seen: bytearray = field(default_factory=bytearray)

    @property
    def decided(self) -> int:
        return sum(self.outcomes.values())

    def has(self, l1_id: int) -> bool:
        return 0 <= l1_id < len(self._seen) and bool(self._seen[l1_id])

    def record(self, l1_id: int, outcome: str, streams: tuple[str, ...] | list[str] = (), chains: tuple[str, ...] | list[str] = ()) -> bool:
        """Count one event's outcome; False (and a duplicate counted) if it was already counted."""
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {outcome!r}")
        if not 0 <= l1_id < MAX_L1_ID:
            raise ValueError(f"L1 id {l1_id} outside [0, {MAX_L1_ID})")
        if self.has(l1_id):
            self.duplicates += 1
            if len(self.duplicate_ids) < 20:
                self.duplicate_ids.append(l1_id)
            return False
        if l1_id >= len(self._seen):
            self._seen.extend(bytes(max(l1_id + 1 - len(self._seen), len(self._seen))))
        self._seen[l1_id] = 1
        self.highest_id = max(self.highest_id, l1_id)
        self.outcomes[outcome] += 1
        self.streams.update(streams)
        self.chains.update(chains)
        return True

    def missing(self, l1_accepted: int) -> list[int]:
        """Level-1 ids 0..l1_accepted-1 that have no outcome: lost, if the run is over."""
        return [i for i in range(l1_accepted) if not self.has(i)]

    def missing_among(self, l1_ids: "list[int] | range", limit: int | None = None) -> list[int]:
        """Ids of `l1_ids` with no outcome (the first `limit` of them)."""
        out = []
        for i in l1_ids:
            if not self.has(i):
                out.append(i)
                if limit is not None and len(out) >= limit:
                    break
        return out

    def lost(self, l1_accepted: int) -> int:
        return self.lost_in_ranges([(0, l1_accepted)])

    def lost_in_ranges(self, ranges: "Iterable[tuple[int, int]]") -> int:
        """How many ids of the [start, stop) ranges have no outcome (no per-id loop)."""
        return sum((stop - start) - self._seen[start:stop].count(1) for start, stop in ranges)

    def missing_in_ranges(self, ranges: "Iterable[tuple[int, int]]", limit: int) -> list[int]:
        """The first `limit` ids of the ranges that have no outcome."""
        out: list[int] = []
        for start, stop in ranges:
            if self.lost_in_ranges([(start, stop)]):
                out += self.missing_among(range(start, stop), limit - len(out))
                if len(out) >= limit:
                    break
        return out
