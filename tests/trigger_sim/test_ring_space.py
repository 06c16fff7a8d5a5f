"""Tests of trigger_sim.ring_space: blocks never overlap, stay inside the ring, and space
given back is reused."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_sim.ring_space import ALIGN, RingSpace

# A sequence of operations: take n bytes, or give back the i-th live block (any order).
operations = st.lists(st.one_of(st.tuples(st.just("take"), st.integers(0, 300)),
                                st.tuples(st.just("give"), st.integers(0, 50))), max_size=200)


def replay(ring: RingSpace, ops: list, check=lambda ring, live: None) -> list:
    """Apply the operations; `check(ring, live blocks)` after each. The live blocks at the end."""
    live = []
    for op, n in ops:
        if op == "take":
            block = ring.take(n)
            if block is None:
                continue
            assert block.offset % ALIGN == 0 and block.nbytes >= n and block.offset + block.nbytes <= ring.capacity
            live.append(block)
        elif live:
            ring.give_back(live.pop(n % len(live)))
        check(ring, live)
    return live


def no_overlap(ring: RingSpace, live: list) -> None:
    spans = sorted((b.offset, b.offset + b.nbytes) for b in live)
    assert all(end <= start for (_, end), (start, _) in zip(spans, spans[1:])), spans
    assert ring.used == sum(b.nbytes for b in live) and ring.n_blocks == len(live)


@settings(max_examples=300, deadline=None)
@given(st.integers(8, 2000), operations)
def test_live_blocks_never_overlap_and_stay_inside(capacity: int, ops: list) -> None:
    replay(RingSpace(capacity), ops, no_overlap)


@settings(max_examples=200, deadline=None)
@given(st.integers(8, 2000), operations)
def test_everything_given_back_means_the_whole_ring_is_free(capacity: int, ops: list) -> None:
    ring = RingSpace(capacity)
    for block in replay(ring, ops):
        ring.give_back(block)
    assert ring.used == 0
    assert ring.take(ring.capacity) is not None  # one block as large as the ring fits again


def test_full_ring_refuses_and_reuses_after_the_oldest_is_back() -> None:
    ring = RingSpace(64)
    a, b = ring.take(32), ring.take(32)
    assert a and b and ring.take(8) is None and ring.refused == 1
    ring.give_back(b)  # not the oldest: the tail cannot move past a
    assert ring.take(8) is None
    ring.give_back(a)
    assert ring.take(64).offset == 0


def test_wraps_to_the_start_when_the_end_is_too_short() -> None:
    ring = RingSpace(100)  # 96 usable bytes
    a, b = ring.take(40), ring.take(40)
    ring.give_back(a)
    c = ring.take(32)  # 16 bytes left at the end: wraps to 0, before b
    assert c.offset == 0
    assert ring.take(16) is None  # the end is used again only once the tail has passed it
    assert ring.take(8).offset == 32  # between c and b
    ring.give_back(b)
    ring.give_back(b)  # twice: no effect
    assert ring.used == 32 + 8 and ring.take(48).offset == 40


def test_capacity_too_small_is_refused() -> None:
    with pytest.raises(ValueError, match="at least"):
        RingSpace(4)
