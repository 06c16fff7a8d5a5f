"""A worker's event runs slower the longer the worker sat idle before it.

Measured on this host's real runs (per-event tables; the README's "The idle slowdown" has the
figures): the worker's CPU steps and its calls' times, summed, are about 10 % longer for an
event its worker started after 50-100 ms idle than for one started straight after the last,
and about 20 % longer after 100-500 ms, for events of the same size; caches gone cold and idle
processor and server threads are the likely reasons. At a low Level-1 rate most events come
after long idle spells, so the real farm's steps get *longer* as the rate falls, which a model
with one step time per event cannot show.

Two measures, both of a calibration:
- per event, the curve below, fitted on the calibration's own events (each row keeps the idle
  time its worker had before it): the mean work per bin of idle time, over the first
  well-filled bin's. The model divides each drawn row by its own factor and multiplies it by
  the factor of the idle time its simulated worker had (`farm_model`);
- per run, `rate_scale`: within one run the gap shows only part of it (a lull leaves every
  process idle, the server's too; a burst adds contention that the model adds itself), so a
  calibration may carry a second real run at a low rate and the factor its steps needed there
  (`calibrate.scale_for_low_rate`): between that run's events per second per worker and the
  calibration rate's the factor goes linearly from it to 1, and stays flat beyond them.
Pure functions over arrays; no I/O.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

import numpy as np

GAP_EDGES_MS = (0.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0)  # lower edges of the bins; the last is open
MIN_BIN_EVENTS = 50  # a bin with fewer events takes the factor of the bin below it (a mean of 50: +-4 %)


@dataclass(frozen=True)
class IdleCurve:
    """Slowdown factor by idle time before the event: bin `k` holds gaps in
    [edges_ms[k], edges_ms[k + 1])."""

    edges_ms: tuple[float, ...]
    factor: tuple[float, ...]
    events: tuple[int, ...]  # calibration events per bin

    def at(self, gap_ms: np.ndarray | float) -> np.ndarray:
        """The factor for each idle time (a NaN, unknown, counts as no idle time)."""
        gaps = np.nan_to_num(np.asarray(gap_ms, np.float64), nan=0.0)
        index = np.clip(np.searchsorted(self.edges_ms, gaps, side="right") - 1, 0, len(self.factor) - 1)
        return np.asarray(self.factor)[index]

    def factor_at(self, gap_ms: float) -> float:
        """`at` for one idle time, without numpy (the model asks once per event)."""
        if gap_ms != gap_ms:  # NaN: unknown, no idle time
            return self.factor[0]
        return self.factor[max(bisect.bisect_right(self.edges_ms, gap_ms) - 1, 0)]


FLAT = IdleCurve((0.0,), (1.0,), (0,))


def idle_gaps_ms(start_ms: np.ndarray, end_ms: np.ndarray, worker: np.ndarray) -> np.ndarray:
    """Per event: how long its worker had been idle when it started it: its start minus the
    latest end of the worker's earlier events, 0 where one of them was still running (event
    slots), NaN for each worker's first event (idle since when is unknown)."""
    start_ms, end_ms, worker = np.asarray(start_ms, np.float64), np.asarray(end_ms, np.float64), np.asarray(worker)
    gaps = np.full(len(start_ms), np.nan)
    for w in np.unique(worker):
        idx = np.flatnonzero(worker == w)
        idx = idx[np.argsort(start_ms[idx], kind="stable")]
        busy_until = np.maximum.accumulate(end_ms[idx])
        gaps[idx[1:]] = np.maximum(start_ms[idx[1:]] - busy_until[:-1], 0.0)
    return gaps


def fit(gaps_ms: np.ndarray, work_ms: np.ndarray, edges_ms: tuple[float, ...] = GAP_EDGES_MS,
        min_events: int = MIN_BIN_EVENTS) -> IdleCurve:
    """The curve from events' idle gaps and their work (CPU steps plus call demands, ms).
    The bins holding `min_events` (events with unknown gaps left out) give their mean work,
    made non-decreasing in the gap by weighted isotonic regression (a longer rest does not make
    a worker faster: a dip is noise, averaged with its neighbour, not kept), over the first
    such bin's; a bin with fewer events takes the factor below it, so beyond the range the
    calibration filled the curve stays flat. FLAT when no bin holds `min_events`."""
    gaps, work = np.asarray(gaps_ms, np.float64), np.asarray(work_ms, np.float64)
    known = np.isfinite(gaps) & np.isfinite(work)
    gaps, work = gaps[known], work[known]
    index = np.clip(np.searchsorted(edges_ms, gaps, side="right") - 1, 0, len(edges_ms) - 1)
    counts = np.bincount(index, minlength=len(edges_ms))
    sums = np.bincount(index, weights=work, minlength=len(edges_ms))
    filled = np.flatnonzero(counts >= min_events)
    if not len(filled):
        return FLAT
    means = _non_decreasing(sums[filled] / counts[filled], counts[filled].astype(np.float64))
    if not means[0] > 0:
        return FLAT
    factor = np.ones(len(edges_ms))
    for k in range(len(edges_ms)):
        below = filled[filled <= k]
        factor[k] = means[len(below) - 1] / means[0] if len(below) else 1.0
    return IdleCurve(tuple(float(e) for e in edges_ms), tuple(float(f) for f in factor), tuple(int(c) for c in counts))


def _non_decreasing(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Weighted isotonic regression (pool adjacent violators): the non-decreasing sequence
    closest to `values` in weighted least squares."""
    blocks: list[list[float]] = []  # [mean, weight, length]
    for v, w in zip(values.tolist(), weights.tolist()):
        blocks.append([v, w, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            v2, w2, n2 = blocks.pop()
            v1, w1, n1 = blocks.pop()
            blocks.append([(v1 * w1 + v2 * w2) / (w1 + w2), w1 + w2, n1 + n2])
    return np.array([b[0] for b in blocks for _ in range(b[2])])


RATE_SCALE_KEYS = ("low_rate_step_scale", "low_rate_per_worker_hz", "calibration_per_worker_hz")


def rate_scale(host: dict[str, float], per_worker_hz: float) -> float:
    """The steps' factor at `per_worker_hz` events per second per worker from a calibration's
    host keys (RATE_SCALE_KEYS): linear between the low-rate run's and the calibration rate's,
    flat outside; 1 without them."""
    if not all(k in host for k in RATE_SCALE_KEYS):
        return 1.0
    low, high = host["low_rate_per_worker_hz"], host["calibration_per_worker_hz"]
    if not low < high:
        return 1.0
    return float(np.interp(per_worker_hz, [low, high], [host["low_rate_step_scale"], 1.0]))
