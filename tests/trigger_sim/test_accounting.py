"""Tests of trigger_sim.accounting: the ledger of where every Level-1 accept ended."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trigger_sim.accounting import ACCEPTED, DEBUG, OUTCOMES, REJECTED, Ledger

FAST = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

records = st.lists(
    st.tuples(
        st.integers(0, 300),
        st.sampled_from(OUTCOMES),
        st.lists(st.sampled_from(["Main", "MinBias", "HltError"]), max_size=2, unique=True),
    ),
    max_size=120,
)


@FAST
@given(records, st.integers(0, 400))
def test_each_id_counted_once_and_lost_is_what_never_arrived(recs, l1_accepted):
    ledger = Ledger()
    first: dict[int, tuple[str, list[str]]] = {}
    for l1_id, outcome, streams in recs:
        is_new = l1_id not in first
        assert ledger.record(l1_id, outcome, streams=streams, chains=[f"chain_{outcome}"]) is is_new
        if is_new:
            first[l1_id] = (outcome, streams)
        assert ledger.has(l1_id)

    assert ledger.duplicates == len(recs) - len(first)
    assert ledger.decided == len(first)
    assert ledger.outcomes == Counter(o for o, _ in first.values())
    assert ledger.streams == Counter(s for _, ss in first.values() for s in ss)
    assert ledger.chains == Counter(f"chain_{o}" for o, _ in first.values())

    never = [i for i in range(l1_accepted) if i not in first]
    assert ledger.missing(l1_accepted) == never
    assert ledger.lost(l1_accepted) == len(never)
    for i in range(max(l1_accepted, 302)):
        assert ledger.has(i) == (i in first)


def test_duplicate_does_not_change_counts():
    ledger = Ledger()
    assert ledger.record(4, ACCEPTED, streams=("Main",), chains=("HLT_j150",))
    assert not ledger.record(4, REJECTED)
    assert not ledger.record(4, DEBUG, streams=("HltError",))
    assert ledger.outcomes == Counter({ACCEPTED: 1})
    assert ledger.streams == Counter({"Main": 1})
    assert ledger.chains == Counter({"HLT_j150": 1})
    assert ledger.duplicates == 2
    assert ledger.decided == 1


def test_lost_and_missing_on_an_empty_ledger():
    ledger = Ledger()
    assert ledger.lost(0) == 0 and ledger.missing(0) == []
    assert ledger.lost(5) == 5 and ledger.missing(5) == [0, 1, 2, 3, 4]


def test_ids_beyond_l1_accepted_are_not_counted_as_found():
    ledger = Ledger()
    for i in (0, 2, 10, 1000):
        ledger.record(i, REJECTED)
    assert ledger.missing(4) == [1, 3]
    assert ledger.lost(4) == 2
    assert ledger.lost(11) == 11 - 3


def test_large_id():
    ledger = Ledger()
    ledger.record(1_000_000, ACCEPTED)
    assert ledger.has(1_000_000)
    assert not ledger.has(999_999) and not ledger.has(1_000_001) and not ledger.has(10**9)
    assert ledger.lost(1_000_001) == 1_000_000


@pytest.mark.parametrize("outcome", ["", "accept", "ACCEPTED", None])
def test_unknown_outcome(outcome):
    ledger = Ledger()
    with pytest.raises(ValueError):
        ledger.record(1, outcome)
    assert ledger.decided == 0 and not ledger.has(1)


def test_negative_id():
    ledger = Ledger()
    with pytest.raises(ValueError):
        ledger.record(-1, ACCEPTED)
    assert ledger.decided == 0 and ledger.duplicates == 0


def test_has_is_false_for_negative_ids():
    ledger = Ledger()
    ledger.record(0, ACCEPTED)
    assert not ledger.has(-1)
