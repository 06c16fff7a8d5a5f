"""Tests of trigger_sim.liveness: workers silent past the limit, each reported once."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_sim.liveness import Liveness

W = [b"w0", b"w1", b"w2"]


def test_silent_worker_reported_once_and_forgotten_after_its_death():
    live = Liveness(limit_ns=100)
    live.heard(b"w0", 0)
    live.heard(b"w1", 50)
    assert live.silent(100) == []
    assert live.silent(101) == [(b"w0", 101)]
    assert live.silent(1000) == [(b"w1", 950)]
    assert live.silent(5000) == []
    live.heard(b"w0", 5000)  # a reported worker's late messages do not revive it
    assert live.silent(9000) == []
    live.forget(b"w0")
    live.heard(b"w0", 9000)  # same identity heard after a forget: tracked again
    assert live.silent(9200) == [(b"w0", 200)]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(W), st.integers(0, 50)), max_size=60), st.integers(1, 40))
def test_reported_iff_silent_past_the_limit(heard, limit):
    """A worker is reported exactly when its last message is older than the limit, and once."""
    live = Liveness(limit_ns=limit)
    now, last, reported = 0, {}, set()
    for worker, dt in heard:
        now += dt
        for w, silent in live.silent(now):
            assert w not in reported and silent == now - last[w] > limit
            reported.add(w)
        for w in set(last) - reported:
            assert now - last[w] <= limit
        if worker not in reported:
            last[worker] = now
        live.heard(worker, now)
