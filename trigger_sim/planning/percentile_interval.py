"""How sure a measured percentile is: the 95 % interval of a latency percentile computed
from n events, so a model figure inside the real figure's own interval is not called a model
error. Plain numpy, no I/O.

- `bootstrap_interval`: from the events themselves (resampled with replacement), when the
  per-event latencies were kept;
- `block_bootstrap_interval`: the same over runs whose events are not independent: a farm's
  latencies come in spells (a burst of arrivals, a slow minute of the host) tens of events
  long, and a p99 resting on 32 events may be one spell; resampling events one by one then
  calls it known to a few percent. Blocks of consecutive events, drawn within each run
  (a moving-block bootstrap, Künsch 1989), keep the spells whole. Hand-written: the one
  library that has it (arch) brings statsmodels, scipy and pandas for these twenty lines;
- `rank_interval`: the distribution-free ranks (binomial order statistics) between which the
  true percentile lies with 95 % confidence, and `scaled_interval`, which turns those ranks
  into values for a run that kept only its percentile, by the shape of a reference
  distribution (the model's) around the same percentile: an approximation, named as such.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

LEVEL = 0.95
BOOTSTRAP_RESAMPLES = 2000


def events_beyond(n: int, percentile: float) -> float:
    """How many of `n` events lie beyond the `percentile` (a p99 of 1,300 events rests on 13)."""
    return n * (1.0 - percentile / 100.0)


def bootstrap_interval(values: np.ndarray, percentile: float, level: float = LEVEL,
                       resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, float]:
    """The `level` percentile-bootstrap interval of the `percentile` of `values` (numpy's
    linear interpolation, as the farm's summary computes it): events resampled one by one,
    the block bootstrap with blocks of one event (the same draws)."""
    return block_bootstrap_interval([values], percentile, 1, level, resamples, seed)


BLOCK_EVENTS = 50  # consecutive events per block: the validation's intervals hardly change from 20 to 200 (README)


def block_bootstrap_interval(runs: Sequence[np.ndarray], percentile: float, block_events: int = BLOCK_EVENTS,
                             level: float = LEVEL, resamples: int = BOOTSTRAP_RESAMPLES,
                             seed: int = 0) -> tuple[float, float]:
    """The `level` moving-block bootstrap interval of the `percentile` of `runs` pooled (each
    an array of one run's latencies in event order). Each resample rebuilds every run to its
    own length from blocks of `block_events` consecutive events of that run (starts drawn
    uniformly, so blocks overlap; a run shorter than a block is one block), never across two
    runs, then pools them. `block_events` = 1 is the events' plain bootstrap. NaNs (events
    with no latency) are left out first, so a block may span the place of one."""
    if block_events < 1:
        raise ValueError("block_events must be >= 1")
    data = [np.asarray(r, np.float64) for r in runs]
    data = [r[~np.isnan(r)] for r in data]
    data = [r for r in data if len(r)]
    if sum(len(r) for r in data) < 2:
        raise ValueError("a bootstrap interval needs at least 2 values")
    rng = np.random.default_rng(seed)
    total = sum(len(r) for r in data)
    estimates = np.empty(resamples)
    chunk = max(1, 2_000_000 // total)  # bounded memory for long runs
    for start in range(0, resamples, chunk):
        k = min(chunk, resamples - start)
        parts = []
        for r in data:
            n, b = len(r), min(block_events, len(r))
            blocks = -(-n // b)
            starts = rng.integers(0, n - b + 1, (k, blocks))
            index = (starts[:, :, None] + np.arange(b)).reshape(k, blocks * b)[:, :n]
            parts.append(r[index])
        estimates[start:start + k] = np.percentile(np.concatenate(parts, axis=1), percentile, axis=1)
    tail = (1.0 - level) / 2 * 100
    lo, hi = np.percentile(estimates, [tail, 100 - tail])
    return float(lo), float(hi)


def rank_interval(n: int, percentile: float, level: float = LEVEL) -> tuple[int, int]:
    """1-based ranks (r, s) of n sorted events such that [x_(r), x_(s)] holds the true
    `percentile` with probability >= `level`, whatever the distribution (the number of events
    below the true percentile is binomial(n, q)); clipped to 1..n."""
    if n < 1:
        raise ValueError("n must be >= 1")
    q = percentile / 100.0
    tail = (1.0 - level) / 2
    cdf = binomial_cdf(n, q)
    r = int(np.searchsorted(cdf, tail, side="right"))  # the largest r with P(B <= r - 1) <= tail
    s = int(np.searchsorted(cdf, 1.0 - tail, side="left")) + 1  # the smallest s with P(B <= s - 1) >= 1 - tail
    return max(r, 1), min(s, n)


def binomial_cdf(n: int, q: float) -> np.ndarray:
    """P(B <= k) for k = 0..n, B ~ binomial(n, q) (log-space pmf: no overflow at large n)."""
    k = np.arange(n + 1)
    if q <= 0 or q >= 1:
        return (k >= (0 if q <= 0 else n)).astype(np.float64)
    log_pmf = np.array([math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1) for i in k]) \
        + k * math.log(q) + (n - k) * math.log1p(-q)
    return np.minimum(np.cumsum(np.exp(log_pmf)), 1.0)


def scaled_interval(point: float, reference: np.ndarray, n: int, percentile: float,
                    level: float = LEVEL) -> tuple[float, float]:
    """An approximate interval for a `percentile` of n events known only by its value
    `point`: the ranks of `rank_interval`, as percentiles of the `reference` distribution,
    divided by the reference's own `percentile`, times `point` (the reference's tail shape
    around the percentile stands in for the unkept events')."""
    ref = np.asarray(reference, np.float64)
    ref = ref[~np.isnan(ref)]
    r, s = rank_interval(n, percentile, level)
    # rank k of n sits at percentile 100 (k - 1) / (n - 1) under numpy's linear interpolation
    lo_q, hi_q = (100.0 * (k - 1) / max(n - 1, 1) for k in (r, s))
    centre, lo, hi = np.percentile(ref, [percentile, lo_q, hi_q])
    if centre <= 0:
        return point, point
    return float(point * lo / centre), float(point * hi / centre)
