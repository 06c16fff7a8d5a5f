"""Tests of trigger_sim.role_liveness: roles silent on the network are declared dead once, and rejoin."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_sim.role_liveness import RoleLiveness


def test_silent_role_declared_dead_once_then_rejoins():
    live = RoleLiveness(limit_ns=100)
    assert live.heard("node1", 0) is False
    live.heard("node2", 50)
    assert live.silent(100) == []
    assert live.silent(120) == [("node1", 120)]
    assert live.silent(500) == [("node2", 450)]
    assert live.silent(1000) == []
    assert live.dead == {"node1", "node2"}
    assert live.heard("node1", 1000) is True  # back: rejoined, reported once
    assert live.heard("node1", 1010) is False
    assert live.dead == {"node2"}
    assert live.silent(1200) == [("node1", 190)]


def test_forgotten_role_is_not_watched():
    live = RoleLiveness(limit_ns=10)
    live.heard("readout", 0)
    live.forget("readout")
    assert live.silent(1000) == []


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 30), st.booleans()), max_size=60),
       st.integers(1, 40))
def test_dead_iff_last_heard_past_the_limit(steps, limit):
    live = RoleLiveness(limit)
    now = 0
    last: dict[str, int] = {}
    dead: set[str] = set()
    for role, dt, check in steps:
        now += dt
        if check:
            got = live.silent(now)
            want = sorted(r for r, t in last.items() if r not in dead and now - t > limit)
            assert sorted(r for r, _ in got) == want
            dead.update(want)
        else:
            assert live.heard(role, now) is (role in dead)
            dead.discard(role)
            last[role] = now
        assert live.dead == dead
