"""Latency samples per step and their percentiles."""

from __future__ import annotations

from array import array
from collections import defaultdict

import numpy as np

PERCENTILES = (50, 90, 99, 99.9)


class LatencyRecorder:
    """Keeps every sample (8 bytes each) so percentiles are exact."""

    def __init__(self) -> None:
        self._samples: dict[str, array] = defaultdict(lambda: array("d"))

    def add(self, step: str, value_ms: float) -> None:
        self._samples[step].append(value_ms)

    def add_many(self, values_ms: dict[str, float]) -> None:
        for step, value in values_ms.items():
            self._samples[step].append(value)

    def count(self, step: str) -> int:
        return len(self._samples.get(step, ()))

    def stats(self, step: str) -> dict[str, float]:
        data = np.frombuffer(self._samples[step], dtype=np.float64) if self._samples.get(step) else np.empty(0)
        if len(data) == 0:
            return {"n": 0, "mean": 0.0, "p50": 0.0, "p90": 0.0, "p99": 0.0, "p99.9": 0.0, "max": 0.0}
        pct = np.percentile(data, PERCENTILES)
        out = {"n": int(len(data)), "mean": float(data.mean())}
        out.update({f"p{p:g}": float(v) for p, v in zip(PERCENTILES, pct)})
        out["max"] = float(data.max())
        return out

    def summary(self, order: tuple[str, ...] = ()) -> dict[str, dict[str, float]]:
        steps = [s for s in order if s in self._samples] + sorted(set(self._samples) - set(order))
        return {s: self.stats(s) for s in steps}
