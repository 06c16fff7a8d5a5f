"""Tests of trigger_sim.inference.shm_pool: which shared-memory slot a request may use."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trigger_sim.inference.shm_pool import MIN_REGION_BYTES, RegionPool, region_size

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
Q_NS = 1_000


@pytest.mark.parametrize("slots, q", [(0, 1), (1, 0), (-1, 5)])
def test_bad_arguments(slots, q):
    with pytest.raises(ValueError):
        RegionPool(slots, q)


@given(st.integers(0, 1 << 30))
def test_region_size_holds_the_request_and_is_a_power_of_two(n):
    size = region_size(n)
    assert size >= n and size >= MIN_REGION_BYTES
    assert size & (size - 1) == 0
    assert size == MIN_REGION_BYTES or size < 2 * n


def test_region_size_rejects_negative():
    with pytest.raises(ValueError):
        region_size(-1)


def test_first_use_creates_and_registers_then_reuses_without_either():
    pool = RegionPool(2, Q_NS)
    plan = pool.acquire(0, 100_000, 4_000)
    assert plan.slot == 0 and plan.new_in_bytes == region_size(100_000) and plan.new_out_bytes == MIN_REGION_BYTES
    assert plan.register
    pool.prepared(plan)
    pool.release(plan, 1, ok=True)
    again = pool.acquire(2, 90_000, 4_000)
    assert (again.slot, again.new_in_bytes, again.new_out_bytes, again.register) == (0, 0, 0, False)


def test_a_bigger_request_grows_the_region_and_registers_it_again():
    pool = RegionPool(1, Q_NS)
    plan = pool.acquire(0, 1000, 1000)
    pool.prepared(plan)
    pool.release(plan, 0, ok=True)
    bigger = pool.acquire(0, 5 * MIN_REGION_BYTES, 1000)
    assert bigger.new_in_bytes == region_size(5 * MIN_REGION_BYTES) and bigger.new_out_bytes == 0 and bigger.register


def test_a_failed_call_quarantines_its_slot_and_others_register_again():
    pool = RegionPool(2, Q_NS)
    a = pool.acquire(0, 10, 10)
    pool.prepared(a)
    pool.release(a, 0, ok=True)
    b = pool.acquire(0, 10, 10)
    assert b.slot == 0
    pool.prepared(b)
    pool.release(b, 50, ok=False)  # e.g. its deadline passed: the server may still answer into it
    c = pool.acquire(60, 10, 10)
    assert c.slot == 1 and c.register
    pool.prepared(c)
    pool.release(c, 70, ok=True)
    d = pool.acquire(50 + Q_NS, 10, 10)  # quarantine over: slot 0 again, registered anew
    assert d.slot == 0 and d.register and d.new_in_bytes == 0
    assert pool.quarantined == 1


def test_none_free_when_every_slot_is_quarantined():
    pool = RegionPool(1, Q_NS)
    plan = pool.acquire(0, 10, 10)
    pool.prepared(plan)
    pool.release(plan, 0, ok=False)
    assert pool.acquire(Q_NS - 1, 10, 10) is None
    assert pool.none_free == 1
    assert pool.acquire(Q_NS, 10, 10) is not None


def test_a_slot_in_use_is_not_handed_out_twice():
    pool = RegionPool(1, Q_NS)
    plan = pool.acquire(0, 10, 10)
    assert pool.acquire(0, 10, 10) is None
    pool.prepared(plan)
    pool.release(plan, 0, ok=True)
    assert pool.acquire(0, 10, 10) is not None


def test_lost_regions_are_made_again():
    pool = RegionPool(1, Q_NS)
    plan = pool.acquire(0, 10, 10)
    pool.lost_regions(plan)
    pool.release(plan, 0, ok=False)
    again = pool.acquire(Q_NS, 10, 10)
    assert again.new_in_bytes == MIN_REGION_BYTES and again.new_out_bytes == MIN_REGION_BYTES and again.register


# One step: acquire (bytes in, bytes out, whether preparing fails), release the held plan at
# a position (ok or failed), or let time pass.
acquire_step = st.tuples(st.just("acquire"), st.integers(0, 1 << 22), st.integers(0, 1 << 20), st.booleans())
release_step = st.tuples(st.just("release"), st.integers(0, 10), st.booleans(), st.just(False))
wait_step = st.tuples(st.just("wait"), st.integers(0, 2 * Q_NS), st.just(0), st.just(False))
steps = st.lists(st.one_of(acquire_step, release_step, wait_step), max_size=80)


@FAST
@given(st.integers(1, 4), steps)
def test_invariants_over_any_sequence_of_calls(n_slots, ops):
    """Over any interleaving of calls held open and released in any order, preparations that
    fail, and time passing: a slot is never handed out while in use or before its quarantine
    ends; a slot is big enough for its request once prepared; a new region is always
    registered, and so is every slot after any failure; a request finds no slot only when
    every slot is in use or quarantined."""
    pool = RegionPool(n_slots, Q_NS)
    failed_at: dict[int, int] = {}
    must_register: set[int] = set(range(n_slots))
    held: list = []
    now = 0
    for op, a, b, flag in ops:
        if op == "wait":
            now += a
            continue
        if op == "release":
            if not held:
                continue
            plan = held.pop(a % len(held))
            pool.release(plan, now, ok=b)
            if not b:
                failed_at[plan.slot] = now
                must_register = set(range(n_slots))
            continue
        in_use = {p.slot for p in held}
        plan = pool.acquire(now, a, b)
        if plan is None:
            assert all(i in in_use or now < failed_at.get(i, -Q_NS) + Q_NS for i in range(n_slots))
            continue
        assert plan.slot not in in_use
        assert now >= failed_at.get(plan.slot, -Q_NS) + Q_NS
        if plan.new_in_bytes or plan.new_out_bytes or plan.slot in must_register:
            assert plan.register
        if flag:  # preparing the regions failed half-way
            pool.lost_regions(plan)
            pool.release(plan, now, ok=False)
            failed_at[plan.slot] = now
            must_register = set(range(n_slots))
            continue
        pool.prepared(plan)
        slot = pool.slots[plan.slot]
        assert slot.in_bytes >= a and slot.out_bytes >= b
        must_register.discard(plan.slot)
        held.append(plan)


@FAST
@given(st.integers(1, 6), st.integers(0, 12), st.integers(0, 12))
def test_ensure_slots_gives_each_request_in_flight_a_slot_and_never_shrinks(start, first, second):
    """A client with several requests in flight (event slots) keeps one slot per request: with
    `ensure_slots(n)`, n requests at once all get a slot of their own."""
    pool = RegionPool(start, Q_NS)
    pool.ensure_slots(first)
    pool.ensure_slots(second)
    n = max(start, first, second)
    assert [s.index for s in pool.slots] == list(range(n))
    plans = [pool.acquire(0, 100, 10) for _ in range(n)]
    assert None not in plans and len({p.slot for p in plans}) == n
    assert pool.acquire(0, 100, 10) is None and pool.none_free == 1
