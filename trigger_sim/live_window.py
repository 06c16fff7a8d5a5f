"""Figures over the last few seconds of a running farm, for the live view (no I/O).

Fed the farm's cumulative counts (Level-1 accepts, vetoes, decided events, inference paths,
calls per server) and the collector's growing arrays of decision times and total latencies,
it returns the rates in and out, the latency p50/p99, the fallback fraction and the dead
time over the last `window_s`: what an operator watches, not the whole run's averages.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from trigger_sim import clock
from trigger_sim.worker_stats import per_server_models

COUNTS = ("l1_accepted", "vetoed_busy", "decided", "triton", "fallback")


@dataclass(frozen=True)
class LiveFigures:
    """One reading of the live view; rates are per second over `span_s` (0 before two readings)."""

    span_s: float = 0.0
    rate_in_hz: float = 0.0  # Level-1 accepts
    rate_out_hz: float = 0.0  # events decided
    p50_ms: float | None = None  # total latency of the events decided in the window
    p99_ms: float | None = None
    n_latencies: int = 0
    fallback_fraction: float | None = None  # of events with an inference decided in the window
    deadtime_fraction: float | None = None  # Level-1 slots vetoed busy / (vetoed busy + accepted)
    calls_per_s: dict[str, float] = field(default_factory=dict)  # per server: requests answered


class LiveWindow:
    def __init__(self, window_s: float = 5.0):
        if not window_s > 0:
            raise ValueError(f"window_s must be > 0, got {window_s!r}")
        self.window_ns = int(window_s * clock.NS_PER_S)
        self._snapshots: deque[tuple[int, dict[str, float], dict[str, float]]] = deque()
        self._latencies: deque[tuple[int, float]] = deque()
        self._read = 0  # entries of the decision arrays already taken

    def update(self, now_ns: int, counts: Mapping[str, float], calls: Mapping[str, float],
               decided_ns: Sequence[int], total_ms: Sequence[float]) -> LiveFigures:
        """`counts`: cumulative values of `COUNTS` (missing ones count as 0); `calls`:
        cumulative requests answered per server; `decided_ns`/`total_ms`: every decided
        event's time and latency so far, in arrival order (only the new tail is read)."""
        n = min(len(decided_ns), len(total_ms))
        for i in range(self._read, n):
            self._latencies.append((int(decided_ns[i]), float(total_ms[i])))
        self._read = max(self._read, n)
        start_ns = now_ns - self.window_ns
        while self._latencies and self._latencies[0][0] < start_ns:
            self._latencies.popleft()
        self._snapshots.append((now_ns, {k: float(counts.get(k, 0)) for k in COUNTS}, dict(calls)))
        while len(self._snapshots) > 2 and self._snapshots[1][0] <= start_ns:
            self._snapshots.popleft()  # keep the last reading at or before the window's start
        latencies = np.fromiter((ms for _, ms in self._latencies), np.float64, len(self._latencies))
        p50, p99 = (float(np.percentile(latencies, 50)), float(np.percentile(latencies, 99))) if len(latencies) else (None, None)
        (t0, first, calls0), (t1, last, calls1) = self._snapshots[0], self._snapshots[-1]
        span_s = (t1 - t0) / clock.NS_PER_S
        if span_s <= 0:
            return LiveFigures(p50_ms=p50, p99_ms=p99, n_latencies=len(latencies))
        d = {k: last[k] - first[k] for k in COUNTS}
        inferred = d["triton"] + d["fallback"]
        slots = d["vetoed_busy"] + d["l1_accepted"]
        return LiveFigures(
            span_s=span_s, rate_in_hz=d["l1_accepted"] / span_s, rate_out_hz=d["decided"] / span_s,
            p50_ms=p50, p99_ms=p99, n_latencies=len(latencies),
            fallback_fraction=d["fallback"] / inferred if inferred > 0 else None,
            deadtime_fraction=d["vetoed_busy"] / slots if slots > 0 else None,
            calls_per_s={s: (v - calls0.get(s, 0.0)) / span_s for s, v in sorted(calls1.items())})


def calls_per_server(worker_stats: Mapping[str, Mapping], default_server: str) -> dict[str, float]:
    """Requests answered per server, summed over the workers' latest counters: per server
    where a worker reports `servers`, else all on the farm's one server."""
    out: dict[str, float] = {}
    for counters in worker_stats.values():
        for server, models in per_server_models(counters, default_server).items():
            out[server] = out.get(server, 0.0) + sum(float(m.get("triton_calls", 0)) for m in models.values())
    return out
