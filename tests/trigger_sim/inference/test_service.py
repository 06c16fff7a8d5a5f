"""Tests of trigger_sim.inference.service with fake backends and a fake clock."""

from __future__ import annotations

import concurrent.futures

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trigger_sim.errors import InferenceError, InferenceTimeout, InferenceUnavailable
from trigger_sim.inference.breaker import BreakerState, CircuitBreaker
from trigger_sim.inference import service as service_module
from trigger_sim.inference.service import EXPIRED, FALLBACK, MAX_FAILURE_TEXTS, SKIPPED, TRITON, InferenceService, answer_problem

MS = 1_000_000
TIMEOUT_S = 0.100
OPEN_NS = 1_000 * MS
FAILURES = 3


class FakeClock:
    def __init__(self, t: int = 10**12):
        self.t = t

    def __call__(self) -> int:
        return self.t


class FakeRemote:
    """Answers from a script: ("ok", latency_ms) / ("timeout", ms) / ("unavailable", ms)."""

    def __init__(self, clock: FakeClock, script=None):
        self.clock = clock
        self.script = list(script or [])
        self.calls: list[tuple[np.ndarray, float]] = []

    def infer(self, inputs: np.ndarray, timeout_s: float) -> np.ndarray:
        self.calls.append((inputs, timeout_s))
        kind, latency_ms = self.script.pop(0) if self.script else ("ok", 1.0)
        self.clock.t += int(latency_ms * MS)
        if kind == "timeout":
            raise InferenceTimeout("no answer")
        if kind == "unavailable":
            raise InferenceUnavailable("connection refused")
        if kind == "error":
            raise InferenceError("generic inference error")
        if kind == "crash":
            raise RuntimeError("client bug")
        if kind == "short":  # one row too few
            return remote_scores(inputs)[1:]
        if kind == "float64":
            return remote_scores(inputs).astype(np.float64)
        return remote_scores(inputs)


class FakeLocal:
    def __init__(self):
        self.calls = 0

    def infer(self, inputs: np.ndarray, timeout_s: float = 0.0) -> np.ndarray:
        self.calls += 1
        return local_scores(inputs)


def local_scores(inputs: np.ndarray) -> np.ndarray:
    return (1.0 / (1.0 + np.exp(-inputs.sum(axis=1, keepdims=True)))).astype(np.float32)


def remote_scores(inputs: np.ndarray) -> np.ndarray:
    # deliberately different from local_scores, so tests can tell which path answered
    return np.full((len(inputs), 1), 0.25, np.float32)


def make(script=None, remote=True, failures=FAILURES):
    clock = FakeClock()
    fake_remote = FakeRemote(clock, script) if remote else None
    local = FakeLocal()
    service = InferenceService(fake_remote, local, CircuitBreaker(failures, OPEN_NS), TIMEOUT_S, now_ns=clock)
    return service, fake_remote, local, clock


INPUTS = np.arange(12, dtype=np.float32).reshape(2, 6) / 10


def far(clock: FakeClock) -> int:
    return clock.t + 10**12  # a deadline that never limits


def check_counters(service: InferenceService, calls: int) -> None:
    c = service.counters
    assert c.triton_calls + c.fallback_calls + c.skipped + c.expired == calls
    assert sum(c.fallback_reasons.values()) == c.fallback_calls


def test_success_is_counted_as_triton():
    service, remote, local, clock = make([("ok", 7.0)])
    out = service.infer(INPUTS, far(clock))
    assert out.path == TRITON and out.reason == ""
    np.testing.assert_array_equal(out.scores, remote_scores(INPUTS))
    assert out.remote_ms == pytest.approx(7.0)
    assert len(remote.calls) == 1 and remote.calls[0][0] is INPUTS
    assert local.calls == 0
    assert service.counters.triton_calls == 1 and service.counters.triton_failures == 0
    check_counters(service, 1)


@pytest.mark.parametrize(
    "kind, reason",
    [("timeout", "timeout"), ("unavailable", "unavailable"), ("error", "unavailable")],
)
def test_remote_failure_falls_back_with_the_reason(kind, reason):
    service, remote, local, clock = make([(kind, 30.0)])
    out = service.infer(INPUTS, far(clock))
    assert out.path == FALLBACK and out.reason == reason
    np.testing.assert_array_equal(out.scores, local_scores(INPUTS))
    assert out.remote_ms == pytest.approx(30.0)  # time lost waiting is reported
    assert len(remote.calls) == 1 and local.calls == 1
    c = service.counters
    assert (c.triton_calls, c.triton_failures, c.fallback_calls) == (0, 1, 1)
    assert c.fallback_reasons == {reason: 1}
    check_counters(service, 1)


def test_breaker_opens_then_skips_the_remote_then_probes_and_recovers():
    service, remote, local, clock = make([("unavailable", 1.0)] * FAILURES)
    for _ in range(FAILURES):
        assert service.infer(INPUTS, far(clock)).reason == "unavailable"
    assert service.breaker.state is BreakerState.OPEN
    assert len(remote.calls) == FAILURES

    for _ in range(5):
        clock.t += 10 * MS
        out = service.infer(INPUTS, far(clock))
        assert (out.path, out.reason, out.remote_ms) == (FALLBACK, "breaker_open", 0.0)
        np.testing.assert_array_equal(out.scores, local_scores(INPUTS))
    assert len(remote.calls) == FAILURES, "an open breaker must not call the remote"

    # After the open time one probe goes to the server; it answers, the breaker closes.
    clock.t = service.breaker.opened_at_ns + OPEN_NS
    out = service.infer(INPUTS, far(clock))
    assert out.path == TRITON
    assert len(remote.calls) == FAILURES + 1
    assert service.breaker.state is BreakerState.CLOSED
    assert service.infer(INPUTS, far(clock)).path == TRITON
    c = service.counters
    assert c.fallback_reasons == {"unavailable": FAILURES, "breaker_open": 5}
    assert c.triton_failures == FAILURES and c.triton_calls == 2
    check_counters(service, FAILURES + 5 + 2)


def test_failed_probe_reopens_for_another_open_time():
    service, remote, _local, clock = make([("timeout", 100.0)] * (FAILURES + 1))
    for _ in range(FAILURES):
        service.infer(INPUTS, far(clock))
    probe_start = clock.t = service.breaker.opened_at_ns + OPEN_NS
    assert service.infer(INPUTS, far(clock)).reason == "timeout"  # the probe
    assert len(remote.calls) == FAILURES + 1
    assert service.breaker.state is BreakerState.OPEN
    assert service.breaker.opened_at_ns == probe_start + 100 * MS  # reopened when the probe failed
    clock.t = service.breaker.opened_at_ns + OPEN_NS - 1
    assert service.infer(INPUTS, far(clock)).reason == "breaker_open"
    assert len(remote.calls) == FAILURES + 1
    clock.t += 1
    assert service.infer(INPUTS, far(clock)).path == TRITON  # the next probe succeeds
    assert len(remote.calls) == FAILURES + 2
    assert service.breaker.probes == 2


def test_too_little_time_skips_the_remote_but_not_the_fallback():
    service, remote, local, clock = make()
    for left_ns in (1, service.min_timeout_s * 1e9 - 1):
        out = service.infer(INPUTS, clock.t + int(left_ns))
        assert (out.path, out.reason) == (FALLBACK, "no_time")
    assert remote.calls == []
    assert local.calls == 2
    assert service.breaker.state is BreakerState.CLOSED  # no_time is not a server failure
    assert service.counters.triton_failures == 0
    check_counters(service, 2)


def test_a_passed_deadline_runs_neither_the_remote_nor_the_fallback():
    """The event is over its soft timeout: it leaves into HltTimeout, a fallback would be wasted."""
    service, remote, local, clock = make()
    for deadline in (clock.t, clock.t - 1, clock.t - 10**9):
        out = service.infer(INPUTS, deadline)
        assert (out.path, out.reason) == (EXPIRED, "no_time")
        assert out.scores.shape == (0, 1)
    assert remote.calls == [] and local.calls == 0
    assert service.counters.expired == 3 and service.counters.fallback_calls == 0
    check_counters(service, 3)


@pytest.mark.parametrize("kind", ["timeout", "unavailable", "crash"])
def test_a_failure_that_uses_up_the_time_left_runs_no_fallback(kind):
    service, remote, local, clock = make([(kind, 40.0)])
    out = service.infer(INPUTS, clock.t + 40 * MS)  # the call fails just as the deadline passes
    assert (out.path, out.remote_ms) == (EXPIRED, pytest.approx(40.0))
    assert out.reason == {"crash": "error"}.get(kind, kind)
    assert local.calls == 0
    c = service.counters
    assert (c.triton_failures, c.expired, c.fallback_calls) == (1, 1, 0)
    assert service.breaker.consecutive_failures == 1  # still a failed call for the breaker
    check_counters(service, 1)


@pytest.mark.parametrize("left_ms, expected_s", [(1000.0, TIMEOUT_S), (100.0, TIMEOUT_S), (30.0, 0.030), (0.5, 0.0005)])
def test_timeout_is_the_smaller_of_service_timeout_and_time_to_deadline(left_ms, expected_s):
    service, remote, _local, clock = make()
    service.infer(INPUTS, clock.t + int(left_ms * MS))
    [(_inputs, timeout_s)] = remote.calls
    assert timeout_s == pytest.approx(expected_s, rel=1e-12)
    assert timeout_s <= TIMEOUT_S


def test_no_server():
    service, _remote, local, clock = make(remote=False)
    out = service.infer(INPUTS, far(clock))
    assert (out.path, out.reason) == (FALLBACK, "no_server")
    np.testing.assert_array_equal(out.scores, local_scores(INPUTS))
    assert local.calls == 1
    assert service.counters.fallback_reasons == {"no_server": 1}
    check_counters(service, 1)


def test_empty_inputs_are_skipped_without_any_call():
    service, remote, local, clock = make()
    out = service.infer(np.zeros((0, 6), np.float32), far(clock))
    assert out.path == SKIPPED
    assert out.scores.shape == (0, 1) and out.scores.dtype == np.float32
    assert remote.calls == [] and local.calls == 0
    assert service.counters.skipped == 1
    check_counters(service, 1)


def test_fallback_scores_equal_local_scores_with_the_real_tagger():
    from trigger_sim.models.jet_tagger import LocalJetTagger

    tagger = LocalJetTagger()
    clock = FakeClock()
    remote = FakeRemote(clock, [("timeout", 1.0)])
    service = InferenceService(remote, tagger, CircuitBreaker(FAILURES, OPEN_NS), TIMEOUT_S, now_ns=clock)
    rng = np.random.default_rng(5)
    x = rng.normal(size=(4, 9)).astype(np.float32)
    out = service.infer(x, far(clock))
    assert out.reason == "timeout"
    np.testing.assert_array_equal(out.scores, tagger.infer(x))


script_steps = st.lists(
    st.tuples(
        st.sampled_from(["ok", "timeout", "unavailable"]),
        st.floats(0.0, 150.0),  # latency, ms
        st.integers(0, 600),  # time before the call, ms
        st.integers(-50, 500),  # deadline relative to the call, ms
        st.integers(0, 3),  # number of jets
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 4), script_steps)
def test_random_sequences_keep_counters_consistent(failures, steps):
    clock = FakeClock()
    remote = FakeRemote(clock)
    local = FakeLocal()
    service = InferenceService(remote, local, CircuitBreaker(failures, OPEN_NS), TIMEOUT_S, now_ns=clock)
    for n, (kind, latency, wait, deadline_ms, n_jets) in enumerate(steps, start=1):
        clock.t += wait * MS
        start = clock.t
        remote.script = [(kind, latency)]
        calls_before = len(remote.calls)
        state_before = service.breaker.state
        opened_before = service.breaker.opened_at_ns
        x = np.ones((n_jets, 6), np.float32)
        out = service.infer(x, start + deadline_ms * MS)
        called = len(remote.calls) - calls_before
        if n_jets == 0:
            assert out.path == SKIPPED and called == 0
        elif deadline_ms <= 0:
            assert (out.path, out.reason, called) == (EXPIRED, "no_time", 0)
        elif state_before is BreakerState.OPEN and (start - opened_before) < OPEN_NS:
            assert (out.path, out.reason, called) == (FALLBACK, "breaker_open", 0)
        else:
            assert called == 1
            assert 0 < remote.calls[-1][1] <= TIMEOUT_S
            failed_path = EXPIRED if int(latency * MS) >= deadline_ms * MS else FALLBACK  # the fake clock's arithmetic
            assert out.path == (TRITON if kind == "ok" else failed_path)
            if kind != "ok":
                assert out.reason == kind
        if out.path == EXPIRED:
            assert len(out.scores) == 0
        elif out.path == FALLBACK:
            np.testing.assert_array_equal(out.scores, local_scores(x))
        elif out.path == TRITON:
            np.testing.assert_array_equal(out.scores, remote_scores(x))
        c = service.counters
        check_counters(service, n)
        assert len(remote.calls) == c.triton_calls + c.triton_failures
        assert local.calls == c.fallback_calls
        assert sum(c.fallback_reasons.values()) == c.fallback_calls


def test_unexpected_client_exception_falls_back_and_never_sticks_the_breaker():
    service, remote, local, clock = make(script=[("crash", 1.0)] * FAILURES + [("ok", 1.0)])
    for _ in range(FAILURES):
        out = service.infer(INPUTS, far(clock))
        assert out.path == FALLBACK and out.reason == "error"
    assert service.breaker.state is BreakerState.OPEN
    clock.t += OPEN_NS
    out = service.infer(INPUTS, far(clock))  # the probe goes out and succeeds
    assert out.path == TRITON
    assert service.breaker.state is BreakerState.CLOSED


def test_a_client_exception_is_logged_once_per_kind_and_its_text_kept(caplog):
    service, _remote, _local, clock = make(script=[("crash", 1.0)] * 3 + [("unavailable", 1.0)], failures=10)
    with caplog.at_level("WARNING", logger="trigger_sim.inference.service"):
        for _ in range(4):
            service.infer(INPUTS, far(clock))
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 1 and "RuntimeError: client bug" in logged[0]  # once, with type and message
    texts = service.counters.failure_texts
    assert texts[:3] == ["error: RuntimeError: client bug"] * 3
    assert texts[3] == "unavailable: InferenceUnavailable: connection refused"


def test_only_the_first_few_failure_texts_are_kept():
    service, _remote, _local, clock = make(script=[("crash", 1.0)] * 20, failures=100)
    for _ in range(20):
        service.infer(INPUTS, far(clock))
    assert len(service.counters.failure_texts) == MAX_FAILURE_TEXTS
    assert service.counters.fallback_reasons == {"error": 20}


@pytest.mark.parametrize("kind", ["short", "float64"])
def test_an_answer_of_the_wrong_shape_or_dtype_is_a_failed_call(kind, caplog):
    service, remote, local, clock = make([(kind, 2.0)])
    with caplog.at_level("WARNING", logger="trigger_sim.inference.service"):
        out = service.infer(INPUTS, far(clock))
    assert (out.path, out.reason) == (FALLBACK, "bad_shape")
    np.testing.assert_array_equal(out.scores, local_scores(INPUTS))
    c = service.counters
    assert (c.triton_calls, c.triton_failures, c.fallback_calls) == (0, 1, 1)
    assert service.breaker.consecutive_failures == 1
    assert c.failure_texts[0].startswith("bad_shape: ") and "expected float32[2, 1]" in c.failure_texts[0]
    assert len(caplog.records) == 1
    check_counters(service, 1)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 5), st.lists(st.integers(0, 4), max_size=3), st.sampled_from([np.float32, np.float64, np.int32]),
       st.integers(0, 5), st.lists(st.integers(0, 4), max_size=3))
def test_an_answer_is_usable_exactly_when_it_has_one_row_per_item_and_the_spec_dtype(n, tail, dtype, rows, answer_tail):
    empty = np.zeros((0, *tail), np.float32)
    answer = np.zeros((rows, *answer_tail), dtype)
    usable = rows == n and answer_tail == tail and dtype == np.float32
    assert (answer_problem(answer, n, empty) == "") == usable
    assert answer_problem(answer.tolist(), n, empty) != ""  # a list is never an answer


class FakeAsyncRemote(FakeRemote):
    """The same script, sent with `submit`: the future is resolved by `resolve()` (or at once)."""

    def __init__(self, clock: FakeClock, script=None, resolve_at_once: bool = True):
        super().__init__(clock, script)
        self.resolve_at_once = resolve_at_once
        self.unresolved: list = []

    def submit(self, inputs, timeout_s):
        future = concurrent.futures.Future()
        self.unresolved.append((future, inputs, timeout_s))
        if self.resolve_at_once:
            self.resolve()
        return future

    def resolve(self) -> None:
        future, inputs, timeout_s = self.unresolved.pop(0)
        try:
            future.set_result(self.infer(inputs, timeout_s))
        except BaseException as err:
            future.set_exception(err)


KINDS = ("ok", "timeout", "unavailable", "error", "crash", "short", "float64")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(KINDS), st.floats(0.0, 150.0), st.integers(0, 300)), min_size=1, max_size=20))
def test_asynchronous_calls_decide_exactly_as_blocking_ones(script):
    """begin (submit) then finish on the answered future: the same outcome, breaker and counters
    as `infer`, call by call, whatever the server does."""
    blocking, _, _, clock_b = make([(k, ms) for k, ms, _ in script])
    clock_a = FakeClock()
    remote = FakeAsyncRemote(clock_a, [(k, ms) for k, ms, _ in script])
    asynchronous = InferenceService(remote, FakeLocal(), CircuitBreaker(FAILURES, OPEN_NS), TIMEOUT_S, now_ns=clock_a)
    for _, _, gap_ms in script:
        deadline_ms = 60.0  # some calls expire: the deadline passes while the server holds them
        a = blocking.infer(INPUTS, clock_b.t + int(deadline_ms * MS))
        call = asynchronous.begin(INPUTS, clock_a.t + int(deadline_ms * MS), asynchronous=True)
        assert call.in_flight == call.sent and call.done()
        b = asynchronous.finish(call)
        assert (a.path, a.reason, a.remote_ms) == (b.path, b.reason, b.remote_ms)
        np.testing.assert_array_equal(a.scores, b.scores)
        clock_a.t += gap_ms * MS
        clock_b.t += gap_ms * MS
    assert blocking.counters == asynchronous.counters
    assert (blocking.breaker.state, blocking.breaker.times_opened) == (asynchronous.breaker.state, asynchronous.breaker.times_opened)


def test_a_backend_without_submit_is_called_at_finish():
    service, remote, local, clock = make([("ok", 3.0)])
    call = service.begin(INPUTS, far(clock), asynchronous=True)
    assert call.sent and not call.in_flight and call.done() and not remote.calls
    out = service.finish(call)
    assert out.path == TRITON and len(remote.calls) == 1 and out.remote_ms == pytest.approx(3.0)


def test_calls_in_flight_at_once_are_each_answered_and_the_wait_ends_at_the_answer():
    clock = FakeClock()
    remote = FakeAsyncRemote(clock, [("ok", 5.0), ("unavailable", 1.0), ("ok", 2.0)], resolve_at_once=False)
    local = FakeLocal()
    service = InferenceService(remote, local, CircuitBreaker(FAILURES, OPEN_NS), TIMEOUT_S, now_ns=clock)
    calls = [service.begin(INPUTS, far(clock), asynchronous=True) for _ in range(3)]
    assert all(c.in_flight and not c.done() for c in calls)
    for _ in calls:
        remote.resolve()
    clock.t += 50 * MS  # the worker resumes the events well after their answers came in
    outs = [service.finish(c) for c in calls]
    assert [o.path for o in outs] == [TRITON, FALLBACK, TRITON]
    assert [o.remote_ms for o in outs] == pytest.approx([5.0, 6.0, 8.0])  # until the answer, not until finish
    assert local.calls == 1 and service.counters.triton_calls == 2 and service.counters.fallback_reasons == {"unavailable": 1}


def test_a_submit_that_raises_is_a_failed_call():
    class Broken(FakeRemote):
        def submit(self, inputs, timeout_s):
            raise InferenceUnavailable("refused at once")

    clock = FakeClock()
    service = InferenceService(Broken(clock), FakeLocal(), CircuitBreaker(FAILURES, OPEN_NS), TIMEOUT_S, now_ns=clock)
    call = service.begin(INPUTS, far(clock), asynchronous=True)
    assert call.in_flight and call.done()
    out = service.finish(call)
    assert (out.path, out.reason) == (FALLBACK, "unavailable")
    assert service.counters.failure_texts == ["unavailable: InferenceUnavailable: refused at once"]


def test_a_future_never_resolved_times_out_instead_of_hanging(monkeypatch):
    monkeypatch.setattr(service_module, "FUTURE_GRACE_S", 0.01)
    clock = FakeClock()
    remote = FakeAsyncRemote(clock, resolve_at_once=False)
    service = InferenceService(remote, FakeLocal(), CircuitBreaker(FAILURES, OPEN_NS), 0.02, now_ns=clock)
    out = service.finish(service.begin(INPUTS, far(clock), asynchronous=True))
    assert (out.path, out.reason) == (FALLBACK, "timeout")


def test_a_half_open_breaker_lets_one_probe_in_flight():
    clock = FakeClock()
    remote = FakeAsyncRemote(clock, [("unavailable", 1.0)] * FAILURES + [("ok", 1.0)], resolve_at_once=True)
    service = InferenceService(remote, FakeLocal(), CircuitBreaker(FAILURES, OPEN_NS), TIMEOUT_S, now_ns=clock)
    for _ in range(FAILURES):
        service.finish(service.begin(INPUTS, far(clock), asynchronous=True))
    clock.t += OPEN_NS
    remote.resolve_at_once = False
    probe, other = (service.begin(INPUTS, far(clock), asynchronous=True) for _ in range(2))
    assert probe.sent and not other.sent and other.reason == "breaker_open"
    remote.resolve()
    assert service.finish(probe).path == TRITON and service.finish(other).path == FALLBACK
    assert service.breaker.state is BreakerState.CLOSED
