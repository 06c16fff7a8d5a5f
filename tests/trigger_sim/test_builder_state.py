"""Tests of trigger_sim.builder_state: event building bookkeeping without I/O."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trigger_sim.builder_state import EventBuilderState, PendingEvent

FAST = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])

BIG = 10**15  # a build timeout / max_building that never triggers


def payload(l1_id: int, source: int, copy: int = 0) -> tuple[str, int, int, int]:
    return ("payload", l1_id, source, copy)


source_sets = st.sets(st.integers(0, 0xFFFF), min_size=1, max_size=5)
event_id_sets = st.sets(st.integers(0, 2**40), min_size=1, max_size=8)


@st.composite
def full_delivery(draw: st.DrawFn) -> tuple[list[int], list[int], list[tuple[int, int]]]:
    """(sources, event ids, every (l1_id, source) pair in a random interleaving)."""
    sources = sorted(draw(source_sets))
    events = sorted(draw(event_id_sets))
    pairs = [(e, s) for e in events for s in sources]
    return sources, events, draw(st.permutations(pairs))


def deliver(builder: EventBuilderState, order, start_ns: int = 0):
    """Feed fragments one per ns; return {l1_id: (index completed at, event)} and evictions."""
    completed: dict[int, tuple[int, PendingEvent]] = {}
    evicted: list[PendingEvent] = []
    for i, (l1_id, source, *copy) in enumerate(order):
        done, out = builder.add(l1_id, source, payload(l1_id, source, *copy), now_ns=start_ns + i)
        if done is not None:
            assert done.l1_id not in completed, "an event completed twice"
            completed[done.l1_id] = (i, done)
        if out is not None:
            evicted.append(out)
    return completed, evicted


# --- complete delivery in any order ------------------------------------------------------


@FAST
@given(full_delivery())
def test_any_interleaving_completes_every_event_once_at_its_last_fragment(case):
    sources, events, order = case
    builder = EventBuilderState(sources, build_timeout_ns=BIG, max_building=BIG)
    completed, evicted = deliver(builder, order)

    assert evicted == []
    assert sorted(completed) == events
    for l1_id in events:
        indices = [i for i, (e, _s) in enumerate(order) if e == l1_id]
        at, event = completed[l1_id]
        assert at == max(indices), "must complete exactly at its last fragment"
        assert event.fragments == {s: payload(l1_id, s) for s in sources}
        assert event.missing(sources) == []
        assert event.first_ns == min(indices)
        assert event.done_ns == max(indices)
    assert builder.n_building == 0
    assert builder.next_expiry_ns() is None
    c = builder.counters
    assert (c.fragments_in, c.events_complete, c.events_incomplete) == (len(order), len(events), 0)
    assert (c.duplicate_fragments, c.unknown_source_fragments, c.late_fragments, c.evicted_for_space) == (0, 0, 0, 0)


@FAST
@given(full_delivery(), st.randoms(use_true_random=False))
def test_result_does_not_depend_on_the_interleaving(case, rnd):
    sources, _events, order = case
    other = list(order)
    rnd.shuffle(other)
    results = []
    for o in (order, other):
        builder = EventBuilderState(sources, build_timeout_ns=BIG, max_building=BIG)
        completed, _ = deliver(builder, o)
        results.append({l1: ev.fragments for l1, (_i, ev) in completed.items()})
    assert results[0] == results[1]


# --- duplicates and unknown sources --------------------------------------------------------


@st.composite
def delivery_with_copies(draw: st.DrawFn):
    sources, events, order = draw(full_delivery())
    order = [(e, s, 0) for e, s in order]
    n_copies = draw(st.integers(0, 10))
    for k in range(n_copies):
        e, s, _ = draw(st.sampled_from(order))
        pos = draw(st.integers(0, len(order)))
        order.insert(pos, (e, s, k + 1))
    return sources, events, order, n_copies


@FAST
@given(delivery_with_copies())
def test_duplicates_are_counted_and_never_complete_an_event_twice(case):
    sources, events, order, n_copies = case
    builder = EventBuilderState(sources, build_timeout_ns=BIG, max_building=BIG)
    completed, evicted = deliver(builder, order)

    # Independent model: first copy of a (l1, source) wins; copies before completion are
    # duplicates, copies after it are late.
    received: dict[int, dict[int, tuple]] = {e: {} for e in events}
    done_at: dict[int, int] = {}
    dup = late = 0
    for i, (e, s, copy) in enumerate(order):
        if e in done_at:
            late += 1
        elif s in received[e]:
            dup += 1
        else:
            received[e][s] = payload(e, s, copy)
            if len(received[e]) == len(sources):
                done_at[e] = i

    assert evicted == []
    assert {e: at for e, (at, _ev) in completed.items()} == done_at
    for e, (_at, ev) in completed.items():
        assert ev.fragments == received[e]
    c = builder.counters
    assert c.duplicate_fragments == dup
    assert c.late_fragments == late
    assert c.duplicate_fragments + c.late_fragments == n_copies
    assert c.events_complete == len(events)
    assert c.fragments_in == len(order)


@FAST
@given(full_delivery(), st.lists(st.tuples(st.integers(0, 10), st.integers(0, 0xFFFF)), max_size=10), st.data())
def test_unknown_sources_are_counted_and_ignored(case, strays, data):
    sources, events, order = case
    strays = [(e, s) for e, s in strays if s not in sources]
    mixed = list(order)
    for e, s in strays:
        mixed.insert(data.draw(st.integers(0, len(mixed))), (e, s))
    builder = EventBuilderState(sources, build_timeout_ns=BIG, max_building=BIG)
    completed, evicted = deliver(builder, mixed)
    assert evicted == []
    assert sorted(completed) == events
    for e, (_at, ev) in completed.items():
        assert set(ev.fragments) == set(sources)
    assert builder.counters.unknown_source_fragments == len(strays)
    assert builder.n_building == 0


def test_unknown_source_does_not_create_an_event():
    builder = EventBuilderState([1, 2], build_timeout_ns=10, max_building=1)
    assert builder.add(5, 99, "x", now_ns=0) == (None, None)
    assert builder.n_building == 0
    assert builder.next_expiry_ns() is None
    # ...nor push out an event under construction when max_building is reached.
    builder.add(6, 1, "a", now_ns=1)
    assert builder.add(7, 3, "x", now_ns=2) == (None, None)
    assert builder.n_building == 1


def test_duplicate_keeps_the_first_payload():
    builder = EventBuilderState([1, 2], build_timeout_ns=10, max_building=4)
    builder.add(1, 1, "first", now_ns=0)
    assert builder.add(1, 1, "second", now_ns=1) == (None, None)
    done, _ = builder.add(1, 2, "other", now_ns=2)
    assert done.fragments == {1: "first", 2: "other"}
    assert builder.counters.duplicate_fragments == 1


def test_single_source_event_completes_on_its_only_fragment():
    builder = EventBuilderState([7], build_timeout_ns=10, max_building=1)
    done, evicted = builder.add(3, 7, "p", now_ns=5, l1_time_ns=4)
    assert evicted is None
    assert (done.l1_id, done.fragments, done.first_ns, done.done_ns, done.l1_time_ns) == (3, {7: "p"}, 5, 5, 4)


# --- timeouts, late fragments ---------------------------------------------------------------


@st.composite
def partial_delivery(draw: st.DrawFn):
    """Sources, events, the delivered (l1, source) pairs with their times, and what is withheld."""
    sources = sorted(draw(source_sets))
    events = sorted(draw(event_id_sets))
    withheld = {e: sorted(draw(st.sets(st.sampled_from(sources)))) for e in events}
    pairs = [(e, s) for e in events for s in sources if s not in withheld[e]]
    order = draw(st.permutations(pairs))
    steps = draw(st.lists(st.integers(0, 5), min_size=len(order), max_size=len(order)))
    times, t = [], 0
    for dt in steps:
        t += dt
        times.append(t)
    return sources, events, withheld, order, times


@FAST
@given(partial_delivery(), st.integers(1, 20), st.integers(0, 60))
def test_expire_returns_exactly_the_timed_out_incomplete_events_oldest_first(case, timeout, check_at):
    sources, events, withheld, order, times = case
    builder = EventBuilderState(sources, build_timeout_ns=timeout, max_building=BIG)
    first_seen: dict[int, int] = {}
    completed = set()
    for (e, s), t in zip(order, times):
        first_seen.setdefault(e, t)
        done, evicted = builder.add(e, s, payload(e, s), now_ns=t)
        assert evicted is None
        if done is not None:
            completed.add(done.l1_id)

    incomplete = [e for e in events if withheld[e] and e in first_seen]
    assert completed == {e for e in events if not withheld[e]}
    assert builder.n_building == len(incomplete)
    # oldest first: by first fragment time, ties in arrival order
    arrival = {e: i for i, e in enumerate(dict.fromkeys(e for e, _s in order))}
    incomplete.sort(key=lambda e: (first_seen[e], arrival[e]))
    if incomplete:
        assert builder.next_expiry_ns() == first_seen[incomplete[0]] + timeout
    else:
        assert builder.next_expiry_ns() is None

    now = (times[-1] if times else 0) + check_at - 30
    expected = [e for e in incomplete if now - first_seen[e] >= timeout]
    expired = builder.expire(now)
    assert [ev.l1_id for ev in expired] == expected
    for ev in expired:
        assert ev.missing(builder.sources) == withheld[ev.l1_id]
        assert ev.fragments == {s: payload(ev.l1_id, s) for s in sources if s not in withheld[ev.l1_id]}
        assert ev.first_ns == first_seen[ev.l1_id]
        assert ev.done_ns == now
    rest = [e for e in incomplete if e not in expected]
    assert builder.n_building == len(rest)
    if rest:
        assert builder.next_expiry_ns() == first_seen[rest[0]] + timeout
        assert builder.expire(builder.next_expiry_ns() - 1) == []
        assert builder.n_building == len(rest)
    final = builder.expire(10**9)
    assert [ev.l1_id for ev in final] == rest
    assert builder.n_building == 0 and builder.next_expiry_ns() is None
    assert builder.counters.events_incomplete == len(incomplete)
    assert builder.counters.events_complete == len(completed)

    # Late fragments never recreate an event that left (events never seen are not "late").
    late = [(e, s) for e in events if e in first_seen for s in withheld[e]]
    for e, s in late:
        assert builder.add(e, s, payload(e, s), now_ns=10**9 + 1) == (None, None)
    assert builder.n_building == 0
    assert builder.counters.late_fragments == len(late)


def test_expire_boundary_is_inclusive_at_the_timeout():
    builder = EventBuilderState([1, 2], build_timeout_ns=100, max_building=4)
    builder.add(1, 1, "a", now_ns=1000)
    assert builder.next_expiry_ns() == 1100
    assert builder.expire(1099) == []
    [ev] = builder.expire(1100)
    assert (ev.l1_id, ev.missing(builder.sources), ev.done_ns) == (1, [2], 1100)


def test_late_fragment_of_a_completed_event_is_late_not_a_new_event():
    builder = EventBuilderState([1, 2], build_timeout_ns=100, max_building=4)
    builder.add(9, 1, "a", now_ns=0)
    done, _ = builder.add(9, 2, "b", now_ns=1)
    assert done is not None
    assert builder.add(9, 1, "again", now_ns=2) == (None, None)
    assert builder.n_building == 0
    assert builder.counters.late_fragments == 1
    assert builder.counters.duplicate_fragments == 0


# --- max_building -----------------------------------------------------------------------------


@FAST
@given(
    st.integers(2, 4),
    st.integers(1, 4),
    st.lists(st.tuples(st.integers(0, 12), st.integers(0, 3)), min_size=1, max_size=60),
)
def test_max_building_evicts_the_oldest_and_bounds_the_number_under_construction(n_sources, max_building, frags):
    sources = list(range(n_sources))
    frags = [(e, s % n_sources) for e, s in frags]
    builder = EventBuilderState(sources, build_timeout_ns=BIG, max_building=max_building)
    building: list[int] = []  # model: ids under construction, oldest first
    received: dict[int, dict[int, tuple]] = {}
    left: set[int] = set()
    n_evicted = 0
    for t, (e, s) in enumerate(frags):
        done, evicted = builder.add(e, s, payload(e, s), now_ns=t)
        assert builder.n_building <= max_building
        if e in left:
            assert (done, evicted) == (None, None)
            continue
        expected_evicted = None
        if e not in building:
            if len(building) >= max_building:
                expected_evicted = building.pop(0)
            building.append(e)
            received[e] = {}
        if expected_evicted is None:
            assert evicted is None
        else:
            n_evicted += 1
            assert evicted is not None and evicted.l1_id == expected_evicted
            assert evicted.fragments == received[expected_evicted]
            assert evicted.missing(sources) == [x for x in sources if x not in received[expected_evicted]]
            left.add(expected_evicted)
        received[e].setdefault(s, payload(e, s))
        if len(received[e]) == n_sources:
            assert done is not None and done.l1_id == e and done.fragments == received[e]
            building.remove(e)
            left.add(e)
        else:
            assert done is None
        assert builder.n_building == len(building)
    assert builder.counters.evicted_for_space == n_evicted
    drained = builder.drain(now_ns=10**6)
    assert [ev.l1_id for ev in drained] == building


def test_drain_returns_everything_pending_oldest_first():
    builder = EventBuilderState([1, 2, 3], build_timeout_ns=50, max_building=10)
    builder.add(30, 1, "a", now_ns=1)
    builder.add(10, 2, "b", now_ns=2)
    builder.add(20, 1, "c", now_ns=3)
    builder.add(30, 3, "d", now_ns=4)
    drained = builder.drain(now_ns=7)
    assert [ev.l1_id for ev in drained] == [30, 10, 20]
    assert [ev.missing(builder.sources) for ev in drained] == [[2], [1, 3], [2, 3]]
    assert all(ev.done_ns == 7 for ev in drained)
    assert builder.n_building == 0
    assert builder.next_expiry_ns() is None
    assert builder.drain(now_ns=8) == []
    assert builder.counters.events_incomplete == 3
    # drained events are done: their fragments are late
    assert builder.add(10, 1, "late", now_ns=9) == (None, None)
    assert builder.counters.late_fragments == 1


def test_sources_are_sorted_and_deduplicated():
    builder = EventBuilderState([3, 1, 3, 2], build_timeout_ns=1, max_building=1)
    assert builder.sources == (1, 2, 3)


# --- conservation ---------------------------------------------------------------------------------

ops = st.one_of(
    st.tuples(st.just("add"), st.integers(0, 15), st.integers(0, 4), st.integers(0, 3)),
    st.tuples(st.just("expire"), st.integers(0, 30)),
)


@FAST
@given(st.integers(1, 4), st.integers(1, 5), st.integers(1, 20), st.lists(ops, max_size=80))
def test_every_event_leaves_exactly_once(n_sources, max_building, timeout, operations):
    """Sources 0..n-1 are known; source ids >= n_sources are unknown."""
    builder = EventBuilderState(range(n_sources), build_timeout_ns=timeout, max_building=max_building)
    left: list[int] = []
    seen: set[int] = set()
    now = 0
    for op in operations:
        if op[0] == "add":
            _, e, s, dt = op
            now += dt
            if s < n_sources:
                seen.add(e)
            done, evicted = builder.add(e, s, payload(e, s), now_ns=now)
            for ev in (evicted, done):
                if ev is not None:
                    left.append(ev.l1_id)
        else:
            now += op[1]
            left.extend(ev.l1_id for ev in builder.expire(now))
        assert builder.n_building <= max_building
        nxt = builder.next_expiry_ns()
        assert (nxt is None) == (builder.n_building == 0)
    left.extend(ev.l1_id for ev in builder.drain(now))
    assert sorted(left) == sorted(seen), "every event seen must leave exactly once"
    c = builder.counters
    assert c.events_complete + c.events_incomplete == len(left)
    assert c.fragments_in == sum(1 for op in operations if op[0] == "add")
