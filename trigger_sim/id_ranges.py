"""Sets of Level-1 ids as sorted runs of consecutive ids: what the readout reports it sent.

A run of simulated events is one range (0, n); a looped replay of a recording with
contiguous ids is one range per pass or fewer. The readout reports its ids as ranges, in
chunks of bounded size, so a run of any length fits the message limits (a list of every
id did not: 300,000 ids packed to 1.4 MB, over the 1 MiB metadata limit).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

Range = tuple[int, int]  # [start, stop)


class IdRanges:
    """Ids appended one by one (any order), kept as runs of consecutive ids."""

    def __init__(self, ranges: Iterable[Sequence[int]] = ()):
        self._starts: list[int] = []
        self._stops: list[int] = []
        self._count = 0
        for start, stop in ranges:
            self.add_range(int(start), int(stop))

    def add(self, l1_id: int) -> None:
        """One more id: extends the last run when it follows it, else starts a new run."""
        if self._stops and self._stops[-1] == l1_id:
            self._stops[-1] += 1
        else:
            self._starts.append(l1_id)
            self._stops.append(l1_id + 1)
        self._count += 1

    def add_range(self, start: int, stop: int) -> None:
        if stop <= start:
            raise ValueError(f"empty or reversed id range [{start}, {stop})")
        if self._stops and self._stops[-1] == start:
            self._stops[-1] = stop
        else:
            self._starts.append(start)
            self._stops.append(stop)
        self._count += stop - start

    @property
    def ranges(self) -> list[Range]:
        return list(zip(self._starts, self._stops))

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[int]:
        for start, stop in zip(self._starts, self._stops):
            yield from range(start, stop)

    def chunks(self, max_ranges: int) -> list[list[Range]]:
        """The ranges in lists of at most `max_ranges` (one message each); at least one list."""
        if max_ranges < 1:
            raise ValueError("max_ranges must be >= 1")
        ranges = self.ranges
        return [ranges[i:i + max_ranges] for i in range(0, len(ranges), max_ranges)] or [[]]


def parse_ranges(value: object) -> list[Range]:
    """Ranges from a message: a list of [start, stop) pairs of ints with 0 <= start < stop."""
    if not isinstance(value, list):
        raise ValueError(f"id ranges must be a list, not {type(value).__name__}")
    out = []
    for pair in value:
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and all(isinstance(x, int) for x in pair)):
            raise ValueError(f"id range {pair!r} is not a [start, stop) pair of integers")
        start, stop = pair
        if not 0 <= start < stop:
            raise ValueError(f"id range [{start}, {stop}) is empty or negative")
        out.append((start, stop))
    return out
