"""The per-event inference decision: server within a deadline, or the local fallback.

Protocol-free: the remote backend is anything with `infer(inputs, timeout_s)` that raises
`InferenceTimeout` or `InferenceError`, and optionally `submit(inputs, timeout_s)` returning a
`concurrent.futures.Future` that resolves to the scores or raises the same failures (a worker
with several event slots sends requests that way and works on other events meanwhile). A call
is `begin` (decide whether the server is asked; send the request) then `finish` (take the
answer; breaker, counters, fallback): `infer` is the two back to back, so the blocking and the
asynchronous paths decide alike. The local backend runs the same model code and
weights in-process, so the decision does not depend on which path answered. An answer of
the wrong shape or dtype is a failed call like any other (it would otherwise send the
event to HltError later). When the deadline (the event's soft timeout) has passed without
an answer, no fallback runs: the event is leaving into HltTimeout anyway.
"""

from __future__ import annotations

import concurrent.futures
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from trigger_sim import clock
from trigger_sim.errors import InferenceError, InferenceTimeout
from trigger_sim.inference.breaker import CircuitBreaker
from trigger_sim.inference.deadline import left_s
from trigger_sim.log_once import OnceLog, describe

TRITON = "triton"
FALLBACK = "fallback"
SKIPPED = "skipped"  # nothing to infer (e.g. no jets)
EXPIRED = "expired"  # no answer and the event's deadline had passed: no scores, the event times out
MAX_FAILURE_TEXTS = 5
# how long `finish` waits past the call's own deadline for a future the backend should have
# resolved by then (its client deadline fires first); past it the call counts as a timeout
FUTURE_GRACE_S = 1.0
log = logging.getLogger(__name__)


class Backend(Protocol):
    def infer(self, inputs: Any, timeout_s: float) -> np.ndarray: ...


@dataclass
class PendingCall:
    """A call `begin` started: already decided (nothing to infer, or the server not asked, with
    its `reason`), or `sent` to the server, its answer in `future` (asynchronous) or fetched by
    `finish` (blocking)."""

    inputs: Any
    n_items: int
    deadline_ns: int
    start_ns: int = 0
    timeout_s: float = 0.0
    reason: str = ""  # why the server is not asked ('' when it is)
    sent: bool = False
    future: concurrent.futures.Future | None = None
    answered_ns: int = 0  # when the future resolved (set on the thread that resolved it)

    @property
    def in_flight(self) -> bool:
        """A request is on the server: the caller may work on something else until `done`."""
        return self.future is not None

    def done(self) -> bool:
        return self.future is None or self.future.done()


@dataclass(frozen=True)
class InferenceOutcome:
    scores: np.ndarray  # empty when the path is EXPIRED
    path: str  # TRITON, FALLBACK, SKIPPED or EXPIRED
    # why the server did not answer: timeout, unavailable, error, bad_shape, breaker_open, no_time, no_server
    reason: str = ""
    remote_ms: float = 0.0  # time spent waiting on the server (also when it failed)


@dataclass
class InferenceCounters:
    triton_calls: int = 0  # calls answered by the server
    triton_failures: int = 0  # calls sent to the server that failed, missed the deadline or answered a wrong shape
    fallback_calls: int = 0
    skipped: int = 0
    expired: int = 0  # calls left unanswered at the event's deadline: no fallback run (the event times out)
    fallback_reasons: Counter = field(default_factory=Counter)
    failure_texts: list[str] = field(default_factory=list)  # the first few failures other than timeouts, with their text


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
        and `empty_output` (default float32 (0, 1)) is the answer. It also fixes what an
        answer must look like: one row per item, its trailing dimensions and dtype."""
        self.remote = remote
        self.local = local
        self.breaker = breaker
        self.timeout_s = timeout_s
        self.min_timeout_s = min_timeout_s  # below this a call cannot succeed: do not blame the server
        self.now_ns = now_ns
        self.counters = InferenceCounters()
        self.size_of = size_of
        self.empty_output = np.zeros((0, 1), np.float32) if empty_output is None else empty_output
        self._once = OnceLog(log)

    def infer(self, inputs: Any, deadline_ns: int) -> InferenceOutcome:
        """Scores for `inputs`, from the server if it answers before the deadline, else from
        the local fallback; EXPIRED (no scores) when the deadline has passed without an answer,
        as the event is then over its soft timeout and the fallback's work would be wasted."""
        return self.finish(self.begin(inputs, deadline_ns))

    def begin(self, inputs: Any, deadline_ns: int, asynchronous: bool = False) -> PendingCall:
        """Start a call: decide whether the server is asked (deadline, breaker) and, when
        `asynchronous` and the backend can `submit`, send the request now. Never raises for a
        failed send: the failure is the future's, seen by `finish`."""
        n_items = self.size_of(inputs)
        if n_items == 0:
            return PendingCall(inputs, 0, deadline_ns)
        start = self.now_ns()
        timeout_s = min(self.timeout_s, left_s(deadline_ns, start))
        call = PendingCall(inputs, n_items, deadline_ns, start, timeout_s)
        if self.remote is None:
            call.reason = "no_server"
        elif timeout_s < self.min_timeout_s:
            call.reason = "no_time"
        elif not self.breaker.allow(start):
            call.reason = "breaker_open"
        else:
            call.sent = True
            submit = getattr(self.remote, "submit", None)
            if asynchronous and submit is not None:
                call.future = self._submit(submit, call)
        return call

    def _submit(self, submit: Callable[[Any, float], concurrent.futures.Future], call: PendingCall) -> concurrent.futures.Future:
        try:
            future = submit(call.inputs, call.timeout_s)
        except Exception as err:  # a send that failed at once is a failed call like any other
            future = concurrent.futures.Future()
            future.set_exception(err)

        def answered(_: concurrent.futures.Future) -> None:
            call.answered_ns = self.now_ns()

        future.add_done_callback(answered)
        return future

    def finish(self, call: PendingCall) -> InferenceOutcome:
        """The call's outcome, as `infer` decides it: the server's answer (waiting for it if it
        is not in yet), else the fallback, or EXPIRED past the deadline; counters and breaker
        are updated here, on the caller's thread."""
        if call.n_items == 0:
            self.counters.skipped += 1
            return InferenceOutcome(self.empty_output.copy(), SKIPPED)
        now = call.start_ns
        remote_ms = 0.0
        reason = call.reason
        if call.sent:
            reason, scores = self._call_remote(call)
            now = self.now_ns()
            remote_ms = clock.ns_to_ms((call.answered_ns or now) - call.start_ns)
            if not reason:
                self.breaker.record_success(now)
                self.counters.triton_calls += 1
                return InferenceOutcome(scores, TRITON, "", remote_ms)
            self.breaker.record_failure(now)
            self.counters.triton_failures += 1
        if left_s(call.deadline_ns, now) <= 0:
            self.counters.expired += 1
            return InferenceOutcome(self.empty_output[:0].copy(), EXPIRED, reason, remote_ms)
        self.counters.fallback_calls += 1
        self.counters.fallback_reasons[reason] += 1
        return InferenceOutcome(self.local.infer(call.inputs, timeout_s=0.0), FALLBACK, reason, remote_ms)

    def allow_in_flight(self, n: int) -> None:
        """This service may have up to `n` requests in flight at once (event slots): a backend
        that keeps resources per request (shared-memory regions) keeps enough."""
        reserve = getattr(self.remote, "allow_in_flight", None)
        if reserve is not None:
            reserve(n)

    def _call_remote(self, call: PendingCall) -> tuple[str, np.ndarray | None]:
        """('', scores) for a usable answer, else (the failure's reason, None)."""
        try:
            if call.future is not None:
                scores = call.future.result(timeout=call.timeout_s + FUTURE_GRACE_S)
            else:
                scores = self.remote.infer(call.inputs, call.timeout_s)
        except (InferenceTimeout, concurrent.futures.TimeoutError):
            return "timeout", None
        except InferenceError as err:
            self._keep_text("unavailable", err)
            return "unavailable", None
        except Exception as err:  # any other client failure: still a failed call, never a stuck breaker
            self._keep_text("error", err)
            self._once.exception(err, f"inference client {type(self.remote).__name__}")
            return "error", None
        problem = answer_problem(scores, call.n_items, self.empty_output)
        if problem:
            err = InferenceError(problem)
            self._keep_text("bad_shape", err)
            self._once.exception(err, f"inference client {type(self.remote).__name__}")
            return "bad_shape", None
        return "", scores

    def _keep_text(self, reason: str, err: BaseException) -> None:
        if len(self.counters.failure_texts) < MAX_FAILURE_TEXTS:
            self.counters.failure_texts.append(f"{reason}: {describe(err)}")


def answer_problem(scores: Any, n_items: int, empty_output: np.ndarray) -> str:
    """Why `scores` cannot be the answer to a request of `n_items` items, or '' if it can: it
    must be an array of one row per item, with `empty_output`'s trailing dimensions and dtype."""
    if not isinstance(scores, np.ndarray):
        return f"answer is a {type(scores).__name__}, not an array"
    shape = (n_items, *empty_output.shape[1:])
    if scores.shape != shape or scores.dtype != empty_output.dtype:
        return f"answer {scores.dtype}{list(scores.shape)} for a request of {n_items} items, expected {empty_output.dtype}{list(shape)}"
    return ""
