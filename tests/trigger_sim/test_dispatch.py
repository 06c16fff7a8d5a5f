"""Tests of trigger_sim.dispatch: credit-based assignment of complete events to workers."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trigger_sim.dispatch import Dispatcher

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

A, B, C = b"worker-a", b"worker-b", b"worker-c"


def test_no_assignment_without_credits():
    d = Dispatcher(max_waiting=4)
    d.add_event(1, "ev1")
    d.add_event(2, "ev2")
    assert d.assignments() == []
    assert d.n_waiting == 2
    assert d.dispatched == 0


def test_no_assignment_without_events_and_credits_are_kept():
    d = Dispatcher(max_waiting=4)
    d.add_credit(A)
    d.add_credit(B)
    assert d.assignments() == []
    d.add_event(7, "ev7")
    assert d.assignments() == [(A, 7, "ev7")]
    d.add_event(8, "ev8")
    assert d.assignments() == [(B, 8, "ev8")]
    assert d.assignments() == []


def test_oldest_event_first_and_one_event_per_credit():
    d = Dispatcher(max_waiting=10)
    for i in (5, 3, 9):
        d.add_event(i, f"ev{i}")
    d.add_credit(A)
    d.add_credit(B)
    out = d.assignments()
    assert out == [(A, 5, "ev5"), (B, 3, "ev3")]
    assert d.n_waiting == 1
    d.add_credit(A)
    assert d.assignments() == [(A, 9, "ev9")]
    assert d.dispatched == 3
    assert {w: set(h) for w, h in d.in_flight.items()} == {A: {5, 9}, B: {3}}
    assert d.in_flight[A][9] == "ev9"  # the event is kept until done


def test_is_full_at_max_waiting():
    d = Dispatcher(max_waiting=3)
    for i in range(3):
        assert not d.is_full
        d.add_event(i, None)
    assert d.is_full
    assert d.n_waiting == 3
    d.add_credit(A)
    d.assignments()
    assert not d.is_full
    assert d.peak_waiting == 3


def test_add_credit_reports_finished_event():
    d = Dispatcher(max_waiting=4)
    d.add_credit(A)
    d.add_event(1, None)
    d.add_event(2, None)
    d.assignments()
    assert set(d.in_flight[A]) == {1}
    d.add_credit(A, finished_l1_id=1)
    assert set(d.in_flight[A]) == set()
    assert d.assignments() == [(A, 2, None)]
    assert set(d.in_flight[A]) == {2}
    # reporting an event the worker does not hold changes nothing
    d.add_credit(A, finished_l1_id=999)
    assert set(d.in_flight[A]) == {2}


def test_forget_worker_returns_held_events_and_drops_its_credits():
    d = Dispatcher(max_waiting=10)
    for w in (A, B, A, A):
        d.add_credit(w)
    d.add_event(1, "e1")
    d.add_event(2, "e2")
    assert d.assignments() == [(A, 1, "e1"), (B, 2, "e2")]
    # A still has two unused credits
    assert d.forget_worker(A) == {1: "e1"}
    assert A not in d.in_flight
    d.add_event(3, "e3")
    d.add_event(4, "e4")
    assert d.assignments() == []  # A's remaining credits are gone; B used its only one
    assert d.n_waiting == 2
    d.add_credit(C)
    assert d.assignments() == [(C, 3, "e3")]
    assert d.forget_worker(b"never-seen") == {}
    assert d.forget_worker(A) == {}


def test_drain_waiting():
    d = Dispatcher(max_waiting=10)
    for i in range(4):
        d.add_event(i, f"e{i}")
    d.add_credit(A)
    d.assignments()
    assert d.drain_waiting() == [(1, "e1"), (2, "e2"), (3, "e3")]
    assert d.n_waiting == 0
    assert d.drain_waiting() == []
    assert not d.is_full


operations = st.lists(
    st.one_of(
        st.tuples(st.just("event")),
        st.tuples(st.just("credit"), st.sampled_from([A, B, C]), st.booleans()),
        st.tuples(st.just("assign")),
        st.tuples(st.just("forget"), st.sampled_from([A, B, C])),
    ),
    max_size=80,
)


@FAST
@given(st.integers(1, 8), operations)
def test_random_operations_keep_the_books(max_waiting, ops):
    d = Dispatcher(max_waiting=max_waiting)
    next_id = 0
    added: list[int] = []
    assigned: list[int] = []
    credits: Counter = Counter()  # unused credits per worker (model)
    held: dict[bytes, set[int]] = {}
    for op in ops:
        if op[0] == "event":
            if d.is_full:  # the shell stops reading input when full
                assert d.n_waiting >= max_waiting
                continue
            d.add_event(next_id, ("payload", next_id))
            added.append(next_id)
            next_id += 1
        elif op[0] == "credit":
            _, worker, report = op
            finished = None
            if report and held.get(worker):
                finished = min(held[worker])
                held[worker].discard(finished)
            d.add_credit(worker, finished)
            held.setdefault(worker, set())
            credits[worker] += 1
        elif op[0] == "assign":
            waiting_before = d.n_waiting
            out = d.assignments()
            assert len(out) == min(waiting_before, sum(credits.values()))
            for worker, l1_id, event in out:
                assert event == ("payload", l1_id)
                assert credits[worker] > 0, "assigned to a worker without a credit"
                credits[worker] -= 1
                held[worker].add(l1_id)
                assigned.append(l1_id)
        else:
            worker = op[1]
            assert set(d.forget_worker(worker)) == held.pop(worker, set())
            credits.pop(worker, None)
        assert len(assigned) == len(set(assigned)), "an event was assigned twice"
        assert len(assigned) + d.n_waiting == len(added)
        assert d.is_full == (d.n_waiting >= max_waiting)
        assert {w: set(h) for w, h in d.in_flight.items()} == held
    assert assigned == added[: len(assigned)], "events must be assigned oldest first"
    assert d.dispatched == len(assigned)
    waiting = d.drain_waiting()
    assert [l1 for l1, _ in waiting] == added[len(assigned):]
    assert d.peak_waiting <= max_waiting


def test_requeue_puts_a_dead_workers_event_first():
    d = Dispatcher(max_waiting=4)
    d.add_credit(A)
    d.add_event(1, "e1")
    d.add_event(2, "e2")
    assert d.assignments() == [(A, 1, "e1")]
    for l1_id, event in d.forget_worker(A).items():
        d.requeue(l1_id, event)
    d.add_credit(B)
    assert d.assignments() == [(B, 1, "e1")]
    assert d.n_in_flight == 1 and d.n_waiting == 1
