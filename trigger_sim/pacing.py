"""Level-1 accept times: constant spacing or Poisson arrivals at a mean rate (pure logic)."""

from __future__ import annotations

import numpy as np


class Pacer:
    """Scheduled Level-1 times, in ns from `start_ns`."""

    def __init__(self, rate_hz: float, pattern: str, start_ns: int, seed: int = 0):
        if not rate_hz > 0 or rate_hz == float("inf"):  # also rejects NaN
            raise ValueError("rate_hz must be > 0")
        if pattern not in ("constant", "poisson"):
            raise ValueError(f"pattern must be 'constant' or 'poisson', not {pattern!r}")
        self.mean_interval_ns = 1e9 / rate_hz
        self.pattern = pattern
        self._rng = np.random.default_rng(seed)
        self._t = float(start_ns)

    def next_ns(self) -> int:
        """The next scheduled slot (slots are never skipped here; the caller may veto them)."""
        if self.pattern == "constant":
            self._t += self.mean_interval_ns
        else:
            self._t += self._rng.exponential(self.mean_interval_ns)
        return int(self._t)
