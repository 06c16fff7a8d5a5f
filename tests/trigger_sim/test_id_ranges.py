"""Tests of trigger_sim.id_ranges: the readout's ids as ranges, in chunks of bounded size."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_sim.accounting import Ledger
from trigger_sim.id_ranges import IdRanges, parse_ranges


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 5000), max_size=300), st.integers(1, 7))
def test_any_id_sequence_round_trips_through_chunks(ids, per_chunk):
    r = IdRanges()
    for i in ids:
        r.add(i)
    assert list(r) == ids and len(r) == len(ids)
    back = IdRanges(pair for chunk in r.chunks(per_chunk) for pair in parse_ranges([list(p) for p in chunk]))
    assert list(back) == ids
    assert all(len(c) <= per_chunk for c in r.chunks(per_chunk))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 300), unique=True, max_size=200), st.lists(st.integers(0, 300), max_size=100))
def test_ledger_counts_lost_in_ranges_as_it_does_id_by_id(ids, decided):
    r = IdRanges()
    for i in sorted(ids):
        r.add(i)
    ledger = Ledger()
    for i in set(decided):
        ledger.record(i, "rejected")
    never = [i for i in sorted(ids) if i not in set(decided)]
    assert ledger.lost_in_ranges(r.ranges) == len(never)
    assert ledger.missing_in_ranges(r.ranges, limit=5) == never[:5]


def test_a_looped_replay_of_300k_sparse_ids_fits_the_message_limit():
    """Every third id, 300,000 of them: one list of ids packed to over 1 MiB; ranges in
    chunks of 20,000 stay well under it, each message."""
    r = IdRanges()
    for i in range(300_000):
        r.add(3 * i)
    chunks = r.chunks(20_000)
    assert len(chunks) == 15
    assert max(len(msgpack.packb({"ranges": c})) for c in chunks) < 400_000
    assert len(msgpack.packb(list(r))) > 1 << 20  # what the old END carried


@pytest.mark.parametrize("bad", [None, [[1]], [[2, 1]], [[-1, 3]], [["a", 2]], [[0, 1.5]], "x"])
def test_bad_ranges_are_refused(bad):
    with pytest.raises(ValueError):
        parse_ranges(bad)
