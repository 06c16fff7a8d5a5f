"""Tests of trigger_sim.inference.breaker: the circuit breaker in front of the server."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trigger_sim.inference.breaker import BreakerState, CircuitBreaker

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

OPEN_NS = 1_000


def fail(b: CircuitBreaker, n: int, t: int = 0) -> None:
    for _ in range(n):
        assert b.allow(t)
        b.record_failure(t)


@pytest.mark.parametrize("threshold, open_ns", [(0, 1), (-1, 1), (1, 0), (1, -5)])
def test_bad_arguments(threshold, open_ns):
    with pytest.raises(ValueError):
        CircuitBreaker(threshold, open_ns)


@pytest.mark.parametrize("threshold", [1, 2, 5])
def test_opens_after_n_consecutive_failures(threshold):
    b = CircuitBreaker(threshold, OPEN_NS)
    fail(b, threshold - 1, t=10)
    assert b.state is BreakerState.CLOSED
    assert b.allow(10)
    b.record_failure(10)
    assert b.state is BreakerState.OPEN
    assert b.times_opened == 1
    assert b.opened_at_ns == 10
    assert not b.allow(11)


def test_success_resets_the_failure_count():
    b = CircuitBreaker(3, OPEN_NS)
    for _ in range(5):
        fail(b, 2)
        assert b.allow(0)
        b.record_success(0)
    assert b.state is BreakerState.CLOSED
    assert b.times_opened == 0
    fail(b, 3)
    assert b.state is BreakerState.OPEN


def test_open_rejects_until_open_ns_then_one_probe():
    b = CircuitBreaker(1, OPEN_NS)
    fail(b, 1, t=100)
    for t in (100, 500, 100 + OPEN_NS - 1):
        assert not b.allow(t)
        assert b.state is BreakerState.OPEN
    assert b.probes == 0
    assert b.allow(100 + OPEN_NS)  # the probe
    assert b.state is BreakerState.HALF_OPEN
    assert b.probes == 1
    # while the probe is out, nothing else goes to the server
    for t in (100 + OPEN_NS, 100 + 5 * OPEN_NS):
        assert not b.allow(t)
    assert b.probes == 1


def test_probe_success_closes():
    b = CircuitBreaker(2, OPEN_NS)
    fail(b, 2)
    assert b.allow(OPEN_NS)
    b.record_success(OPEN_NS + 3)
    assert b.state is BreakerState.CLOSED
    assert b.consecutive_failures == 0
    assert b.allow(OPEN_NS + 4) and b.allow(OPEN_NS + 4)
    # after closing, it again takes the full threshold to open
    b.record_failure(OPEN_NS + 5)
    assert b.state is BreakerState.CLOSED
    b.record_failure(OPEN_NS + 5)
    assert b.state is BreakerState.OPEN


def test_probe_failure_reopens_for_another_open_ns():
    b = CircuitBreaker(3, OPEN_NS)
    fail(b, 3, t=0)
    assert b.allow(OPEN_NS + 50)
    b.record_failure(OPEN_NS + 60)  # a single failed probe reopens, whatever the threshold
    assert b.state is BreakerState.OPEN
    assert b.opened_at_ns == OPEN_NS + 60
    assert b.times_opened == 2
    assert not b.allow(2 * OPEN_NS + 59)
    assert b.allow(2 * OPEN_NS + 60)
    assert b.probes == 2
    b.record_success(2 * OPEN_NS + 61)
    assert b.state is BreakerState.CLOSED
    assert b.times_opened == 2


def test_keeps_probing_while_the_server_stays_down():
    b = CircuitBreaker(1, OPEN_NS)
    fail(b, 1, t=0)
    t = 0
    for k in range(1, 6):
        t += OPEN_NS
        assert b.allow(t)
        b.record_failure(t)
        assert b.probes == k
    assert b.times_opened == 6


steps = st.lists(
    st.tuples(
        st.integers(0, 3 * OPEN_NS // 2),  # time advance before the call
        st.sampled_from(["ok", "fail"]),  # what the server would answer
        st.integers(0, OPEN_NS // 4),  # call latency
    ),
    max_size=60,
)


@FAST
@given(st.integers(1, 4), steps)
def test_sequential_calls_follow_the_state_machine(threshold, calls):
    """One call at a time, as a worker makes them; a model tracks the expected state."""
    b = CircuitBreaker(threshold, OPEN_NS)
    t = 0
    consecutive = 0
    opened_at = None  # model: when the breaker last opened; None when closed
    allowed_in_open_interval = 0
    for dt, answer, latency in calls:
        t += dt
        if opened_at is not None and t - opened_at < OPEN_NS:
            assert not b.allow(t), "OPEN must reject calls before open_ns has elapsed"
            continue
        allowed = b.allow(t)
        if opened_at is not None:
            assert allowed, "after open_ns the breaker must let one probe through"
            assert b.state is BreakerState.HALF_OPEN
            allowed_in_open_interval += 1
            assert allowed_in_open_interval <= 1
        else:
            assert allowed and b.state is BreakerState.CLOSED
        end = t + latency
        t = end
        if answer == "ok":
            b.record_success(end)
            consecutive = 0
            opened_at = None
        else:
            b.record_failure(end)
            consecutive += 1
            if opened_at is not None or consecutive >= threshold:
                opened_at = end
                allowed_in_open_interval = 0
        assert b.state is (BreakerState.CLOSED if opened_at is None else BreakerState.OPEN)


concurrent_ops = st.lists(
    st.one_of(
        st.tuples(st.just("call"), st.integers(0, OPEN_NS)),
        st.tuples(st.just("answer"), st.integers(0, OPEN_NS // 2), st.booleans()),
    ),
    max_size=80,
)


@FAST
@given(st.integers(1, 4), concurrent_ops)
def test_open_interval_safety_with_calls_in_flight(threshold, ops):
    """Calls may overlap (answers arrive later, in any state): the safety rules still hold."""
    b = CircuitBreaker(threshold, OPEN_NS)
    t = 0
    in_flight = 0
    allowed_since_open = None  # None while CLOSED
    for op in ops:
        t += op[1]
        if op[0] == "call":
            state, opened_at = b.state, b.opened_at_ns
            allowed = b.allow(t)
            if state is BreakerState.OPEN and t - opened_at < OPEN_NS:
                assert not allowed
            if state is BreakerState.OPEN and t - opened_at >= OPEN_NS:
                assert allowed
            if state is BreakerState.HALF_OPEN:
                assert not allowed
            if state is BreakerState.CLOSED:
                assert allowed
            if allowed:
                in_flight += 1
                if allowed_since_open is not None:
                    allowed_since_open += 1
                    assert allowed_since_open <= 1, "more than one call let through in one open interval"
        elif in_flight:
            in_flight -= 1
            if op[2]:
                b.record_success(t)
            else:
                b.record_failure(t)
            if b.state is BreakerState.CLOSED:
                allowed_since_open = None
            elif b.state is BreakerState.OPEN and b.opened_at_ns == t:
                allowed_since_open = 0
        assert b.times_opened >= 0 and b.probes <= b.times_opened
