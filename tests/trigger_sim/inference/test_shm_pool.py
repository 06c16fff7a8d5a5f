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


# One step of a client's life: (request bytes in, bytes out, whether the call succeeds, time advance).
steps = st.lists(st.tuples(st.integers(0, 1 << 22), st.integers(0, 1 << 20), st.booleans(), st.integers(0, 2 * Q_NS)),
                 max_size=60)


@FAST
@given(st.integers(1, 4), steps)
def test_invariants_over_any_sequence_of_calls(n_slots, calls):
    """A slot used in a failed call is not used again before its quarantine ends; a slot is
    always big enough for its request; a slot is registered again after any failure; a
    request finds no slot only when every slot is quarantined."""
    pool = RegionPool(n_slots, Q_NS)
    failed_at: dict[int, int] = {}
    failures_since_use: dict[int, bool] = {}
    now = 0
    for in_bytes, out_bytes, ok, advance in calls:
        now += advance
        plan = pool.acquire(now, in_bytes, out_bytes)
        if plan is None:
            assert all(now < failed_at.get(s.index, -Q_NS) + Q_NS for s in pool.slots)
            continue
        assert now >= failed_at.get(plan.slot, -Q_NS) + Q_NS
        if failures_since_use.get(plan.slot):
            assert plan.register
        pool.prepared(plan)
        slot = pool.slots[plan.slot]
        assert slot.in_bytes >= in_bytes and slot.out_bytes >= out_bytes
        failures_since_use[plan.slot] = False
        pool.release(plan, now, ok)
        if not ok:
            failed_at[plan.slot] = now
            failures_since_use = {s.index: True for s in pool.slots}
