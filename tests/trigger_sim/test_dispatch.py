"""Tests of trigger_sim.dispatch: credit-based assignment of complete events to workers."""

from __future__ import annotations

from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trigger_sim.dispatch import FORWARD, LATE, STALE, Dispatcher

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


def test_result_releases_the_event_and_a_stale_one_is_dropped():
    d = Dispatcher(max_waiting=4)
    d.add_credit(A)
    d.add_event(1, "e1")
    d.add_event(2, "e2")
    d.assignments()
    assert set(d.in_flight[A]) == {1}
    assert d.result(A, 1) == (FORWARD, "e1")
    assert set(d.in_flight[A]) == set()
    assert d.result(A, 1) == (STALE, None)  # a second answer for a released event
    assert d.result(B, 2) == (STALE, None)  # a worker that never held it
    assert d.stale_results == 2
    d.add_credit(A)
    assert d.assignments() == [(A, 2, "e2")]


def test_forced_decision_forwards_but_keeps_the_worker_busy():
    d = Dispatcher(max_waiting=4)
    d.add_credit(A)
    d.add_event(1, "e1")
    d.assignments()
    assert d.result(A, 1, forced=True) == (FORWARD, "e1")
    assert set(d.in_flight[A]) == {1} and d.held_decided(A, 1)
    assert d.result(A, 1) == (LATE, "e1")  # the main thread's result: dropped, the slot freed
    assert set(d.in_flight[A]) == set() and d.late_results == 1


def test_main_result_first_then_forced_is_stale():
    d = Dispatcher(max_waiting=4)
    d.add_credit(A)
    d.add_event(1, "e1")
    d.assignments()
    assert d.result(A, 1) == (FORWARD, "e1")
    assert d.result(A, 1, forced=True) == (STALE, None)


def test_a_dead_worker_decided_event_is_not_retried_and_its_late_credits_create_nothing():
    d = Dispatcher(max_waiting=4)
    d.add_credit(A, 2)
    d.add_event(1, "e1")
    d.add_event(2, "e2")
    d.assignments()
    d.result(A, 1, forced=True)
    assert d.forget_worker(A) == {2: "e2"}  # event 1 already has its decision
    assert not d.add_credit(A) and d.stale_credits == 1
    assert A not in d.in_flight
    d.add_event(3, "e3")
    assert d.assignments() == []
    assert d.result(A, 2) == (STALE, None)


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
        st.tuples(st.just("credit"), st.sampled_from([A, B, C])),
        st.tuples(st.just("assign")),
        st.tuples(st.just("result"), st.sampled_from([A, B, C]), st.integers(0, 30), st.booleans()),
        st.tuples(st.just("forget"), st.sampled_from([A, B, C])),
    ),
    max_size=80,
)


@FAST
@given(st.integers(1, 8), operations)
def test_random_operations_decide_each_event_once_and_lose_none(max_waiting, ops):
    """Against a model: credits, assignments, results (the main thread's or a watchdog's,
    for any id, from any worker) and dead workers whose undecided events are re-queued.
    Every event is always in exactly one place (waiting, held undecided, decided), and no
    event is forwarded twice."""
    d = Dispatcher(max_waiting=max_waiting)
    next_id = 0
    added: list[int] = []
    forwarded: list[int] = []
    credits: Counter = Counter()  # unused credits per worker (model)
    held: dict[bytes, set[int]] = {}
    gone: set[bytes] = set()
    for op in ops:
        if op[0] == "event":
            if d.is_full:  # the shell stops reading input when full
                continue
            d.add_event(next_id, ("payload", next_id))
            added.append(next_id)
            next_id += 1
        elif op[0] == "credit":
            assert d.add_credit(op[1]) == (op[1] not in gone)
            if op[1] not in gone:
                held.setdefault(op[1], set())
                credits[op[1]] += 1
        elif op[0] == "assign":
            waiting_before = d.n_waiting
            out = d.assignments()
            assert len(out) == min(waiting_before, sum(credits.values()))
            for worker, l1_id, event in out:
                assert event == ("payload", l1_id)
                assert credits[worker] > 0 and worker not in gone, "assigned to a worker without a credit"
                credits[worker] -= 1
                held[worker].add(l1_id)
        elif op[0] == "result":
            _, worker, l1_id, forced = op
            verdict, event = d.result(worker, l1_id, forced)
            if l1_id not in held.get(worker, set()):
                assert verdict == STALE
            else:
                assert event == ("payload", l1_id)
                assert (verdict == FORWARD) == (l1_id not in forwarded)
                if verdict == FORWARD:
                    forwarded.append(l1_id)
                if not forced:
                    held[worker].discard(l1_id)
        else:
            worker = op[1]
            returned = d.forget_worker(worker)
            assert set(returned) == {i for i in held.pop(worker, set()) if i not in forwarded}
            for l1_id, event in returned.items():
                d.requeue(l1_id, event)
            credits.pop(worker, None)
            gone.add(worker)
        assert len(forwarded) == len(set(forwarded)), "an event was forwarded twice"
        in_flight_undecided = [i for h in held.values() for i in h if i not in forwarded]
        waiting = [l1 for l1, _ in d._waiting]
        places = sorted(waiting + in_flight_undecided + forwarded)
        assert places == sorted(added), "every event in exactly one place"
        assert {w: set(h) for w, h in d.in_flight.items()} == held
        assert d.is_full == (d.n_waiting >= max_waiting)
    assert d.peak_waiting <= max_waiting + len(added)


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


@given(st.lists(st.sampled_from([A, B, C]), max_size=40), st.integers(0, 40), st.integers(1, 8))
@FAST
def test_assignment_batches_hold_every_assignment_once_per_worker_oldest_first(credits, n_events, max_batch):
    """Batches are the pass's assignments grouped by worker: every waiting event that met a
    credit is in exactly one batch, of the worker whose credit it took, at most `max_batch`
    a batch, oldest first within a worker; nothing else moves."""
    d, twin = Dispatcher(max_waiting=100), Dispatcher(max_waiting=100)
    for dispatcher in (d, twin):
        for worker in credits:
            dispatcher.add_credit(worker)
        for i in range(n_events):
            dispatcher.add_event(i, f"ev{i}")
    batches = d.assignment_batches(max_batch)
    expected = twin.assignments()  # the same pass, one event at a time
    assert all(1 <= len(batch) <= max_batch for _, batch in batches)
    assert sorted((w, l1, ev) for w, batch in batches for l1, ev in batch) == sorted(expected)
    for worker in {A, B, C}:
        ours = [l1 for w, batch in batches if w == worker for l1, _ in batch]
        assert ours == [l1 for w, l1, _ in expected if w == worker]
        assert len([1 for w, _ in batches if w == worker]) == -(-len(ours) // max_batch)  # no batch left short but the last
    assert d.in_flight == twin.in_flight and d.n_waiting == twin.n_waiting and d.n_credits == twin.n_credits
    assert d.dispatched == twin.dispatched == len(expected)


def test_a_lone_event_travels_alone_at_once():
    d = Dispatcher(max_waiting=4)
    d.add_credit(A, 64)
    d.add_event(1, "ev1")
    assert d.assignment_batches(64) == [(A, [(1, "ev1")])]
    assert d.assignment_batches(64) == []
