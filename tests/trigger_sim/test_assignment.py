"""Tests of trigger_sim.assignment: Level-1 accepts to nodes by credits; node loss, rejoin, lost sources."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trigger_sim.assignment import HLT_ERROR, MISSING_DATA, Assign, AssignmentService, Outcome

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def test_accepts_wait_for_slots_and_nodes_take_turns():
    svc = AssignmentService(max_waiting=10)
    for i in range(3):
        assert svc.accept(i) is None
    assert svc.assignments() == []
    svc.join("n1", 1)
    svc.join("n2", 1)
    assert svc.assignments() == [Assign(0, "n1", 1), Assign(1, "n2", 1)]
    assert svc.n_waiting == 1 and svc.n_in_flight == 2
    assert svc.done(1, "n2")
    assert svc.assignments() == [Assign(2, "n2", 1)]
    assert svc.assigned_per_node == {"n1": 1, "n2": 2}


def test_a_full_queue_is_reported():
    svc = AssignmentService(max_waiting=2)
    svc.accept(1)
    assert not svc.is_full
    svc.accept(2)
    assert svc.is_full


def test_lost_node_events_retried_once_then_hlt_error():
    svc = AssignmentService(max_waiting=10)
    svc.join("n1", 2)
    svc.accept(7)
    svc.accept(8)
    assert [a.node for a in svc.assignments()] == ["n1", "n1"]
    assert svc.node_lost("n1") == []  # both go back, oldest first
    assert svc.node_lost("n1") == []  # declared once
    svc.join("n2", 2)
    assert svc.assignments() == [Assign(7, "n2", 2), Assign(8, "n2", 2)]
    assert svc.reassigned == 2
    assert svc.done(7, "n2")
    ends = svc.node_lost("n2")
    assert ends == [Outcome(8, HLT_ERROR, "node n2 lost while building the event, after 2 attempts (nodes n1, n2)")]
    assert svc.n_in_flight == 0 and svc.n_waiting == 0


def test_rejoined_node_gets_new_work_and_its_old_incarnation_is_stale():
    svc = AssignmentService(max_waiting=10)
    svc.join("n1", 1)
    svc.accept(1)
    svc.assignments()
    svc.node_lost("n1")
    assert not svc.done(1, "n1")  # the dead incarnation's late outcome: refused
    svc.join("n1", 1)  # back
    assert svc.assignments() == [Assign(1, "n1", 2)]
    assert svc.held_by("n1") == [1]
    assert svc.done(1, "n1")
    assert not svc.done(1, "n1")  # an outcome counts once
    assert svc.stale_done == 2


def test_joining_twice_without_dying_is_an_error():
    svc = AssignmentService(max_waiting=1)
    svc.join("n1", 1)
    with pytest.raises(ValueError, match="joined twice"):
        svc.join("n1", 1)
    with pytest.raises(ValueError, match="at least one"):
        svc.join("n2", 0)


def test_lost_source_makes_unsent_events_missing_data():
    svc = AssignmentService(max_waiting=10)
    svc.join("n1", 1)
    for i in range(3):
        svc.accept(i)
    assert svc.assignments() == [Assign(0, "n1", 1)]
    ends = svc.source_lost(0x11)
    assert [(o.l1_id, o.stream) for o in ends] == [(1, MISSING_DATA), (2, MISSING_DATA)]
    assert "0x11" in ends[0].reason
    assert svc.accept(3).stream == MISSING_DATA
    assert svc.node_lost("n1")[0].stream == MISSING_DATA  # cannot be sent again
    assert svc.n_waiting == svc.n_in_flight == 0


# -- property: every accept is in exactly one place, and decided once ------------------------
NODES = ["n1", "n2", "n3"]
ops = st.one_of(
    st.tuples(st.just("accept")),
    st.tuples(st.just("join"), st.sampled_from(NODES), st.integers(1, 3)),
    st.tuples(st.just("lost"), st.sampled_from(NODES)),
    st.tuples(st.just("done"), st.sampled_from(NODES), st.integers(0, 40)),
    st.tuples(st.just("source_lost")),
)


@FAST
@given(st.lists(ops, max_size=120))
def test_every_accept_in_exactly_one_place_and_decided_once(steps):
    svc = AssignmentService(max_waiting=1000)
    next_id = 0
    where: dict[int, str] = {}  # l1_id -> "waiting" | node | "decided"
    decided: Counter = Counter()
    sent: Counter = Counter()  # deliveries per event
    live: set[str] = set()
    for step in steps:
        kind = step[0]
        if kind == "accept":
            out = svc.accept(next_id)
            where[next_id] = "waiting" if out is None else "decided"
            decided[next_id] += out is not None
            next_id += 1
        elif kind == "join":
            if step[1] not in live:
                svc.join(step[1], step[2])
                live.add(step[1])
        elif kind == "lost":
            node = step[1]
            held = svc.held_by(node)
            for o in svc.node_lost(node):
                assert where[o.l1_id] == node
                where[o.l1_id] = "decided"
                decided[o.l1_id] += 1
            for l1 in held:
                if where[l1] == node:
                    where[l1] = "waiting"
            live.discard(node)
        elif kind == "done":
            node, l1 = step[1], step[2]
            ok = svc.done(l1, node)
            assert ok == (where.get(l1) == node)  # only the node holding the event may decide it
            if ok:
                where[l1] = "decided"
                decided[l1] += 1
        elif kind == "source_lost":
            for o in svc.source_lost(0x20):
                assert where[o.l1_id] == "waiting"
                where[o.l1_id] = "decided"
                decided[o.l1_id] += 1
        for a in svc.assignments():
            assert where[a.l1_id] == "waiting" and a.node in live  # from one place to one live node
            assert a.attempt <= 2
            where[a.l1_id] = a.node
            sent[a.l1_id] += 1
        # the model and the service agree on every event's place
        assert svc.n_waiting == sum(1 for p in where.values() if p == "waiting")
        for node in NODES:
            assert svc.held_by(node) == sorted(l1 for l1, p in where.items() if p == node)
    assert all(n <= 2 for n in sent.values())  # sent at most twice (retried once)
    for o in svc.drain("end of run"):  # the end of the run: whatever has no outcome is NotProcessed
        assert where[o.l1_id] != "decided"
        where[o.l1_id] = "decided"
        decided[o.l1_id] += 1
    assert all(decided[l1] == 1 for l1 in range(next_id))  # every accept has exactly one outcome
    assert svc.n_waiting == svc.n_in_flight == 0
