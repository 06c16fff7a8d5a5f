"""Measurement windows over a run (pure): throughput and latency per window, and whether
consecutive windows agree, which is when a rate point counts (as perf_analyzer does)."""

from __future__ import annotations

import numpy as np


def window_stats(decided_ns: np.ndarray, latency_ms: np.ndarray, window_s: float, skip_s: float = 0.0) -> list[dict[str, float]]:
    """Per window of `window_s` after the first `skip_s` (warm-up): events, throughput, p50, p99.

    Only whole windows are kept: a partial last window would read as a throughput drop.
    """
    if len(decided_ns) == 0:
        return []
    t = (np.asarray(decided_ns, np.int64) - int(np.min(decided_ns))) / 1e9
    latency_ms = np.asarray(latency_ms, np.float64)
    out = []
    start = skip_s
    while start + window_s <= t.max() + 1e-9:
        sel = (t >= start) & (t < start + window_s)
        n = int(sel.sum())
        lat = latency_ms[sel]
        out.append({"start_s": start, "events": n, "throughput_hz": n / window_s,
                    "p50_ms": float(np.percentile(lat, 50)) if n else 0.0,
                    "p99_ms": float(np.percentile(lat, 99)) if n else 0.0})
        start += window_s
    return out


def stable(windows: list[dict[str, float]], tolerance: float = 0.10, n_windows: int = 3) -> bool:
    """The last `n_windows` windows' throughputs all lie within `tolerance` of their mean."""
    if len(windows) < n_windows:
        return False
    rates = np.array([w["throughput_hz"] for w in windows[-n_windows:]])
    mean = rates.mean()
    return bool(mean > 0 and np.all(np.abs(rates - mean) <= tolerance * mean))


def merge(windows: list[dict[str, float]], min_events: int) -> list[dict[str, float]]:
    """Join consecutive windows until each holds at least `min_events` (low rates need
    longer windows for a throughput that Poisson noise does not swamp). Latency percentiles
    of a merged window are the event-weighted mean of its parts (approximate)."""
    out: list[dict[str, float]] = []
    group: list[dict[str, float]] = []
    for w in windows:
        group.append(w)
        n = sum(g["events"] for g in group)
        if n >= min_events:
            span = len(group) * (group[1]["start_s"] - group[0]["start_s"]) if len(group) > 1 else None
            duration = span if span else (group[0]["events"] / group[0]["throughput_hz"] if group[0]["throughput_hz"] else 1.0)
            out.append({"start_s": group[0]["start_s"], "events": n, "throughput_hz": n / duration,
                        "p50_ms": sum(g["p50_ms"] * g["events"] for g in group) / n,
                        "p99_ms": sum(g["p99_ms"] * g["events"] for g in group) / n})
            group = []
    return out
