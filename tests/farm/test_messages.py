"""Tests of farm.messages: several events in one EVENT or RESULT message come back as
exactly the events that went in, each with its own metadata and frames, none lost or
duplicated; a malformed batch still names every event it can."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from farm import messages

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

frame = st.binary(max_size=24)
ring = st.fixed_dictionaries({"path": st.just("/proc/1/fd/3"), "offset": st.integers(0, 2**40),
                              "sizes": st.lists(st.integers(0, 2**20), max_size=4)})


@st.composite
def events(draw) -> list[tuple[int, dict, list[bytes]]]:
    """(l1_id, meta, inline frames) of 1..12 events, each in the ring or inside the message."""
    ids = draw(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=12, unique=True))
    out = []
    for l1_id in ids:
        counts = draw(st.lists(st.integers(1, 3), min_size=1, max_size=4))
        meta = {"l1_time_ns": draw(st.integers(0, 2**62)), "dispatched_ns": draw(st.integers(0, 2**62)),
                "frames_per_fragment": counts, "attempt": draw(st.integers(1, 2))}
        if draw(st.booleans()):
            meta["ring"] = draw(ring)
            inline = []
        else:
            inline = draw(st.lists(frame, min_size=sum(counts), max_size=sum(counts)))
        out.append((l1_id, meta, inline))
    return out


@given(events())
@FAST
def test_an_event_message_reads_back_as_the_events_that_went_in(batch):
    parts = messages.event_message([e[0] for e in batch], [dict(e[1]) for e in batch], [e[2] for e in batch])
    assert parts[0] == messages.EVENT
    got = messages.read_event_message(parts[1:])
    assert [(r.l1_id, {k: v for k, v in r.meta.items() if k != "inline_frames"}, [bytes(f) for f in r.inline], r.error)
            for r in got] == [(l1_id, meta, inline, None) for l1_id, meta, inline in batch]


@given(events(), st.data())
@FAST
def test_an_event_message_that_does_not_add_up_still_names_every_event(batch, data):
    """Metadata that does not decode, or frames missing or extra: every event comes back
    with an error (the worker answers each one HltError), none is skipped."""
    parts = messages.event_message([e[0] for e in batch], [dict(e[1]) for e in batch], [e[2] for e in batch])
    damage = data.draw(st.sampled_from(["meta", "drop frame", "extra frame", "no meta"]))
    if damage == "meta":
        parts[2] = parts[2][: data.draw(st.integers(0, len(parts[2]) - 1))]
    elif damage == "drop frame" and len(parts) > 3:
        del parts[data.draw(st.integers(3, len(parts) - 1))]
    elif damage == "extra frame":
        parts.append(b"x")
    elif damage == "no meta":
        parts = parts[:2]
    else:
        return
    got = messages.read_event_message(parts[1:])
    assert [r.l1_id for r in got] == [e[0] for e in batch]
    assert all(isinstance(r.error, ValueError) for r in got)


@pytest.mark.parametrize("ids", [b"", b"1234567", b"123456789"])
def test_an_event_message_whose_ids_cannot_be_read_is_refused(ids):
    with pytest.raises(ValueError, match="id frame"):
        messages.read_event_message([ids, messages.pack_meta({"events": []})])


def test_an_event_message_needs_as_many_ids_as_metas():
    with pytest.raises(ValueError):
        messages.event_message([1, 2], [{}], [[]])


@st.composite
def forwarded(draw) -> list[list[bytes]]:
    """Per-event RESULT messages as the builder forwards them: decision, its meta, fragments."""
    out = []
    for l1_id in draw(st.lists(st.integers(0, 2**40), min_size=1, max_size=10, unique=True)):
        counts = draw(st.lists(st.integers(1, 3), max_size=3))
        frames = draw(st.lists(frame, min_size=sum(counts), max_size=sum(counts)))
        decision = messages.pack_meta({"l1_id": l1_id, "outcome": "accepted" if counts else "rejected"})
        ours = messages.pack_meta({"l1_time_ns": l1_id, "frames_per_fragment": counts})
        out.append([messages.RESULT, decision, ours, *frames])
    return out


@given(forwarded())
@FAST
def test_a_result_message_splits_into_the_events_that_went_in(one_each):
    batch = [messages.RESULT, *(part for msg in one_each for part in msg[1:])]
    assert messages.split_results(batch) == (one_each, "")


@given(forwarded(), st.data())
@FAST
def test_a_malformed_event_in_a_result_message_stops_the_split_there_not_before(one_each, data):
    bad = data.draw(st.integers(0, len(one_each) - 1))
    damaged = [list(msg) for msg in one_each]
    damaged[bad][2] = data.draw(st.sampled_from([b"\xc1", messages.pack_meta({"frames_per_fragment": [99]}),
                                                 messages.pack_meta({"frames_per_fragment": [0]})]))
    batch = [messages.RESULT, *(part for msg in damaged for part in msg[1:])]
    got, problem = messages.split_results(batch)
    assert got == one_each[:bad] and problem.startswith(f"RESULT: event {bad}:")


def test_a_result_message_without_the_builders_metadata_is_a_problem():
    assert messages.split_results([messages.RESULT, b"decision"]) == ([], "RESULT: event 0 without the builder's metadata")


@pytest.mark.parametrize(("meta", "n"), [({"events": [{}, {}, {}]}, 3), ({"events": []}, 1), ({}, 1), (None, 1)])
def test_an_event_message_whose_ids_cannot_be_read_is_counted_from_its_metadata(meta, n):
    parts = [b"bad", messages.pack_meta(meta) if meta is not None else b"\xc1"]
    assert messages.count_events(parts) == n
