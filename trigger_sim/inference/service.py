"""The per-event inference decision: server within a deadline, or the local fallback.

Protocol-free: the remote backend is anything with `infer(inputs, timeout_s)` that raises
`InferenceTimeout` or `InferenceError`; the local backend runs the same model code and
weights in-process, so the decision does not depend on which path answered.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from trigger_sim import clock
from trigger_sim.errors import InferenceError, InferenceTimeout
from trigger_sim.inference.breaker import CircuitBreaker

TRITON = "triton"
FALLBACK = "fallback"
SKIPPED = "skipped"  # nothing to infer (e.g. no jets)


class Backend(Protocol):
    def infer(self, inputs: Any, timeout_s: float) -> np.ndarray: ...


@dataclass(frozen=True)
class InferenceOutcome:
    scores: np.ndarray
    path: str  # TRITON, FALLBACK or SKIPPED
    reason: str = ""  # why the fallback was used: timeout, unavailable, breaker_open, no_time, no_server
    remote_ms: float = 0.0  # time spent waiting on the server (also when it failed)


@dataclass
class InferenceCounters:
    triton_calls: int = 0  # calls answered by the server
    triton_failures: int = 0  # calls sent to the server that failed or missed the deadline
    fallback_calls: int = 0
    skipped: int = 0
    fallback_reasons: Counter = field(default_factory=Counter)


class InferenceService:
    def __init__(
        self,
        remote: Backend | None,
        local: Backend,
        breaker: CircuitBreaker,
        timeout_s: float,
        now_ns: Callable[[], int] = clock.now_ns,
        min_timeout_s: float = 0.0005,
        size_of: Callable[[Any], int] = len,
        empty_output: np.ndarray | None = None,
    ):
        """`size_of(inputs)` is the number of items (jets, edges); with none, nothing is sent
        and `empty_output` (default float32 (0, 1)) is the answer."""
        self.remote = remote
        self.local = local
        self.breaker = breaker
        self.timeout_s = timeout_s
        self.min_timeout_s = min_timeout_s  # below this a call cannot succeed: do not blame the server
        self.now_ns = now_ns
        self.counters = InferenceCounters()
        self.size_of = size_of
        self.empty_output = np.zeros((0, 1), np.float32) if empty_output is None else empty_output

    def infer(self, inputs: Any, deadline_ns: int) -> InferenceOutcome:
        """Scores for `inputs`, from the server if it answers before the deadline."""
        if self.size_of(inputs) == 0:
            self.counters.skipped += 1
            return InferenceOutcome(self.empty_output.copy(), SKIPPED)
        start = self.now_ns()
        timeout_s = min(self.timeout_s, (deadline_ns - start) / clock.NS_PER_S)
        remote_ms = 0.0
        if self.remote is None:
            reason = "no_server"
        elif timeout_s < self.min_timeout_s:
            reason = "no_time"
        elif not self.breaker.allow(start):
            reason = "breaker_open"
        else:
            try:
                scores = self.remote.infer(inputs, timeout_s)
            except InferenceTimeout:
                reason = "timeout"
            except InferenceError:
                reason = "unavailable"
            except Exception:  # any other client failure: still a failed call, never a stuck breaker
                reason = "error"
            else:
                end = self.now_ns()
                self.breaker.record_success(end)
                self.counters.triton_calls += 1
                return InferenceOutcome(scores, TRITON, "", clock.ns_to_ms(end - start))
            end = self.now_ns()
            remote_ms = clock.ns_to_ms(end - start)
            self.breaker.record_failure(end)
            self.counters.triton_failures += 1
        self.counters.fallback_calls += 1
        self.counters.fallback_reasons[reason] += 1
        return InferenceOutcome(self.local.infer(inputs, timeout_s=0.0), FALLBACK, reason, remote_ms)
