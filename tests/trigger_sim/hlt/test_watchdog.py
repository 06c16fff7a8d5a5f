"""Soft and hard per-event timeouts: each fires once, and an event is decided exactly once."""

import threading

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_sim.hlt.watchdog import HARD, SOFT, SOFT_FRACTION, EventWatch, soft_deadline_ns

MS = 1_000_000


def test_soft_at_080_then_hard_once():
    w = EventWatch(100 * MS)
    w.start(7, 0, payload="frames")
    assert w.check(79 * MS) == []
    assert w.check(80 * MS) == [(SOFT, 7, "frames")]
    assert w.soft_expired(7)
    assert w.check(90 * MS) == []
    assert w.check(100 * MS) == [(HARD, 7, "frames")]
    assert w.check(500 * MS) == []
    assert w.finish(7) is False  # the watchdog decided it: the worker's late result is dropped
    assert (w.soft_timeouts, w.hard_timeouts) == (1, 1)


def test_finish_before_hard_keeps_the_result_and_stops_watching():
    w = EventWatch(100 * MS)
    w.start(1, 0)
    assert w.check(85 * MS) == [(SOFT, 1, None)]
    assert w.finish(1) is True
    assert w.check(10_000 * MS) == []
    assert w.soft_deadline_ns(1) is None


def test_rejects_bad_arguments():
    with pytest.raises(ValueError):
        EventWatch(0)
    with pytest.raises(ValueError):
        EventWatch(10, soft_fraction=1.5)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 300), st.booleans()), min_size=1, max_size=30))
def test_each_event_decided_exactly_once(events):
    """Whatever the timing, an event is decided by the watchdog or by the worker, never both."""
    w = EventWatch(100 * MS)
    t = 0
    for l1_id, (duration_ms, check_midway) in enumerate(events):
        w.start(l1_id, t)
        decided = 0
        if check_midway:
            decided += sum(kind == HARD for kind, _, _ in w.check(t + duration_ms * MS))
        decided += w.finish(l1_id)
        assert decided == 1
        t += duration_ms * MS


def test_concurrent_checks_and_finish_decide_once():
    w = EventWatch(1)  # hard timeout already passed at the first check
    hard, finished = [], []
    for l1_id in range(300):
        w.start(l1_id, 0)
        t = threading.Thread(target=lambda: hard.append(sum(kind == HARD for kind, _, _ in w.check(10))))
        t.start()
        finished.append(w.finish(l1_id))
        t.join()
        assert hard[-1] + finished[-1] == 1


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**60), st.integers(2, 10**12))
def test_the_watchdog_fires_the_soft_timeout_at_the_sequences_soft_deadline(start_ns, hard_ns):
    """One rule for both: the sequence checks `soft_deadline_ns` between its steps, the watchdog
    flags the same instant from its thread."""
    deadline = soft_deadline_ns(start_ns, hard_ns)
    assert deadline == start_ns + int(hard_ns * SOFT_FRACTION)
    w = EventWatch(hard_ns)
    w.start(3, start_ns)
    assert w.soft_deadline_ns(3) == deadline
    if deadline > start_ns:
        assert w.check(deadline - 1) == []
    assert [kind for kind, _, _ in w.check(deadline)] == [SOFT]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 300), min_size=1, max_size=8), st.lists(st.integers(0, 400), max_size=10))
def test_every_slot_is_watched_and_each_held_event_decided_once(starts_ms, check_times_ms):
    """Several events held at once (event slots): each gets its own soft and hard timeout, each
    transition is reported once, and each event is decided by the watchdog or the worker."""
    w = EventWatch(100 * MS)
    for l1_id, start_ms in enumerate(starts_ms):
        w.start(l1_id, start_ms * MS, payload=l1_id)
    assert w.watched() == len(starts_ms)
    reports = [r for t in sorted(check_times_ms) for r in w.check(t * MS)]
    assert len(reports) == len(set(reports))  # each (kind, event) once
    latest = max(check_times_ms, default=-1)
    for l1_id, start_ms in enumerate(starts_ms):
        fired = {kind for kind, i, payload in reports if i == l1_id and payload == l1_id}
        assert (HARD in fired) == (latest >= start_ms + 100)
        assert (SOFT in fired or HARD in fired) == (latest >= start_ms + 80)
        assert w.soft_expired(l1_id) == (SOFT in fired)
    for l1_id, start_ms in enumerate(starts_ms):
        forced = any(kind == HARD and i == l1_id for kind, i, _ in reports)
        assert w.finish(l1_id) is not forced
    assert w.watched() == 0
