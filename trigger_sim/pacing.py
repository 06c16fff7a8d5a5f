"""Level-1 accept times at a mean rate (pure logic): constant spacing, Poisson arrivals, or
bursts (groups of events at `burst_factor` times the rate, separated by quiet gaps, with
the same mean rate: spill-like traffic that a constant or Poisson source never shows).
"""

from __future__ import annotations

from typing import Any

import numpy as np

PATTERNS = ("constant", "poisson", "burst")


class Pacer:
    """Scheduled Level-1 times, in ns from `start_ns`."""

    def __init__(self, rate_hz: float, pattern: str, start_ns: int, seed: int = 0,
                 burst_factor: float = 10.0, burst_events: int = 50):
        if not rate_hz > 0 or rate_hz == float("inf"):  # also rejects NaN
            raise ValueError("rate_hz must be > 0")
        if pattern not in PATTERNS:
            raise ValueError(f"pattern must be one of {PATTERNS}, not {pattern!r}")
        if not burst_factor >= 1 or burst_events < 1:
            raise ValueError("burst_factor must be >= 1 and burst_events >= 1")
        self.mean_interval_ns = 1e9 / rate_hz
        self.pattern = pattern
        self.burst_factor = burst_factor
        self.burst_events = burst_events
        self._rng = np.random.default_rng(seed)
        self._t = float(start_ns)
        self._k = 0

    def next_ns(self) -> int:
        """The next scheduled slot (slots are never skipped here; the caller may veto them)."""
        if self.pattern == "constant":
            self._t += self.mean_interval_ns
        elif self.pattern == "poisson":
            self._t += self._rng.exponential(self.mean_interval_ns)
        else:
            fast = self.mean_interval_ns / self.burst_factor
            if self._k and self._k % self.burst_events == 0:  # the quiet gap that keeps the mean
                self._t += self.burst_events * (self.mean_interval_ns - fast) + fast
            else:
                self._t += fast
            self._k += 1
        return int(self._t)


def readout_pacer(readout: Any, seed: int, start_ns: int = 0) -> Pacer:
    """The Level-1 scheduler of a readout configured as `readout` (anything with `rate_hz`,
    `pattern`, `burst_factor` and `burst_events`: the `[readout]` section, or the capacity
    model's arrivals) for a run with `run.seed = seed`: the farm's readout takes its slots
    from it, and the model replays a real run's with it."""
    return Pacer(readout.rate_hz, readout.pattern, start_ns, seed=seed, burst_factor=readout.burst_factor,
                 burst_events=readout.burst_events)
