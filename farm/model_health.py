"""Whether a served model needs a reload: the model monitor's decision, without I/O.

A Python-backend model whose stub died fails every request with "Stub process ... is not
healthy" (reload at once), or leaves them hanging. A hanging probe alone proves little:
under load (pile-up 200: a graph takes 0.5-1 s of server time, and requests queue) a
healthy model answers a probe late. So a probe that timed out counts against the model
only when the server is live, the model completed nothing since the last round (Triton's
success count did not grow), and the probe's timeout far exceeded what a request takes now
(queue + compute per request from Triton's statistics, or the probes' own latency). A few
such rounds in a row and the model is reloaded.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

SUSPICION_FACTOR = 10.0  # a timeout is suspicious beyond this many times the current latency
MIN_PROBE_TIMEOUT_S = 1.0
MAX_PROBE_TIMEOUT_S = 30.0
STRIKES_TO_RELOAD = 2  # suspicious rounds in a row
BUSY_STAGES = ("queue", "compute_input", "compute_infer", "compute_output")


def dead_stub(error_text: str) -> bool:
    """True for the failure that only a model reload repairs (a dead backend stub)."""
    return "Stub process" in error_text and "not healthy" in error_text


@dataclass(frozen=True)
class StatsSnapshot:
    """A model's cumulative counts since the server started (Triton's inference statistics)."""

    success_count: int  # requests completed
    busy_ns: int  # their queue + compute time, summed


def stats_snapshot(inference_stats: Mapping[str, Any]) -> StatsSnapshot:
    """From Triton's `inference_stats` JSON (counts and ns as strings; zero fields omitted)."""
    def ns(stage: str) -> int:
        return int((inference_stats.get(stage) or {}).get("ns", 0))

    success = int((inference_stats.get("success") or {}).get("count", 0))
    return StatsSnapshot(success, sum(ns(stage) for stage in BUSY_STAGES))


@dataclass(frozen=True)
class Probe:
    """One probe request: answered, or how it failed."""

    ok: bool
    timeout_s: float  # the limit it was given
    waited_s: float = 0.0  # until its answer or its failure
    timed_out: bool = False
    error: str = ""


@dataclass(frozen=True)
class Decision:
    reload: bool
    reason: str


class ModelHealth:
    """One model's state between probe rounds; `decide` is called once per round."""

    def __init__(self, suspicion_factor: float = SUSPICION_FACTOR, min_timeout_s: float = MIN_PROBE_TIMEOUT_S,
                 max_timeout_s: float = MAX_PROBE_TIMEOUT_S, strikes_to_reload: int = STRIKES_TO_RELOAD):
        self.suspicion_factor = suspicion_factor
        self.min_timeout_s = min_timeout_s
        self.max_timeout_s = max_timeout_s
        self.strikes_to_reload = strikes_to_reload
        self.strikes = 0
        self.request_latency_s = 0.0  # queue + compute per request, over the last round with completions
        self.probe_latency_s = 0.0  # the last answered probe
        self._last: StatsSnapshot | None = None

    @property
    def latency_s(self) -> float:
        """What one request to the model takes now, as far as measured."""
        return max(self.request_latency_s, self.probe_latency_s)

    def probe_timeout_s(self) -> float:
        """The next probe's limit: far beyond the current latency, within [min, max]."""
        return min(max(self.suspicion_factor * self.latency_s, self.min_timeout_s), self.max_timeout_s)

    def _progressed(self, stats: StatsSnapshot | None) -> bool:
        """Take a new snapshot; True if the model completed requests since the last one."""
        if stats is None:
            return False
        last, self._last = self._last, stats
        if last is None or stats.success_count < last.success_count:  # first look, or the server restarted
            return False
        done = stats.success_count - last.success_count
        if done:
            self.request_latency_s = (stats.busy_ns - last.busy_ns) / done / 1e9
        return done > 0

    def decide(self, probe: Probe, stats: StatsSnapshot | None, server_live: bool) -> Decision:
        """Reload or not, after a round: the probe's result, the model's statistics taken
        after it (None: unreadable) and whether the server answers its health check."""
        progressed = self._progressed(stats)
        if probe.ok:
            self.strikes = 0
            self.probe_latency_s = probe.waited_s
            return Decision(False, "answered")
        if dead_stub(probe.error):
            self.strikes = 0
            return Decision(True, "dead backend stub")
        if not server_live:
            self.strikes = 0
            return Decision(False, "server not live (the workers' breakers handle it)")
        if progressed:
            self.strikes = 0
            return Decision(False, "the model is completing requests")
        if probe.timed_out and probe.timeout_s < self.suspicion_factor * self.latency_s:
            return Decision(False, f"timeout of {probe.timeout_s:g} s is not far beyond the latency of {self.latency_s:.3g} s")
        self.strikes += 1
        if self.strikes < self.strikes_to_reload:
            return Decision(False, f"suspicious round {self.strikes} of {self.strikes_to_reload}")
        self.strikes = 0
        what = f"no answer within {probe.timeout_s:g} s" if probe.timed_out else probe.error[:120]
        return Decision(True, f"{what}, nothing completed for {self.strikes_to_reload} rounds")
