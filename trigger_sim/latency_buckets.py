"""Latency histograms with fixed log-spaced buckets: mergeable across processes.

Each worker counts its calls per server in the same buckets; the summary adds the counts
of every worker and reads p50/p99 from the sum. Percentiles of per-worker percentiles would
be wrong; summed buckets are not. A bucket spans a factor 10^(1/20) (12 %); a percentile is
reported as its bucket's geometric middle, so it is within about 6 % of the exact value.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping

LOWEST_MS = 0.01  # the first bucket holds everything below this
BUCKETS_PER_DECADE = 20
N_BUCKETS = 7 * BUCKETS_PER_DECADE + 2  # 0.01 ms to 100 s, plus one below and one above


def bucket_of(value_ms: float) -> int:
    """The index of the bucket that holds `value_ms`."""
    if not value_ms > LOWEST_MS:  # also NaN and negatives
        return 0
    index = 1 + int(math.floor(math.log10(value_ms / LOWEST_MS) * BUCKETS_PER_DECADE))
    return min(index, N_BUCKETS - 1)


def bucket_middle_ms(index: int) -> float:
    """The geometric middle of bucket `index` (its lower edge for the first bucket)."""
    if index <= 0:
        return LOWEST_MS
    return LOWEST_MS * 10 ** ((index - 0.5) / BUCKETS_PER_DECADE)


class LatencyBuckets:
    """Counts per bucket (sparse); `as_pairs` / `from_pairs` carry it in a message."""

    def __init__(self, counts: Mapping[int, int] | None = None):
        self.counts: Counter = Counter(counts or {})

    def add(self, value_ms: float) -> None:
        self.counts[bucket_of(value_ms)] += 1

    @property
    def n(self) -> int:
        return sum(self.counts.values())

    def merge(self, other: "LatencyBuckets") -> "LatencyBuckets":
        self.counts.update(other.counts)
        return self

    def percentile_ms(self, q: float) -> float:
        """The `q`-th percentile (0-100) as its bucket's middle; 0.0 with no samples."""
        total = self.n
        if total == 0:
            return 0.0
        rank = max(1, math.ceil(q / 100 * total))  # the smallest value with at least q % at or below it
        seen = 0
        for index in sorted(self.counts):
            seen += self.counts[index]
            if seen >= rank:
                return bucket_middle_ms(index)
        return bucket_middle_ms(max(self.counts))

    def as_pairs(self) -> list[list[int]]:
        return [[index, count] for index, count in sorted(self.counts.items()) if count]

    @classmethod
    def from_pairs(cls, pairs: Iterable[Iterable[int]]) -> "LatencyBuckets":
        """From `as_pairs`; a malformed pair raises ValueError (the message came from elsewhere)."""
        counts: Counter = Counter()
        for pair in pairs:
            index, count = (int(v) for v in pair)
            if not 0 <= index < N_BUCKETS or count < 0:
                raise ValueError(f"latency bucket {index} with count {count} is out of range")
            counts[index] += count
        return cls(counts)
