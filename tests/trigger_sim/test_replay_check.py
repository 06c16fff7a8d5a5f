"""Tests of trigger_sim.replay_check: reading a run's decisions back and comparing replays."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trigger_sim.recording import RecordWriter
from trigger_sim.replay_check import compare_replay, physics_streams, stream_decisions

CHAINS = ("HLT_a", "HLT_b", "HLT_c")


def write_stream(folder: Path, stream: str, events: dict[int, tuple[str, ...]]) -> None:
    with RecordWriter(folder / f"{stream}.tsrec", run_number=1, stream=stream, detector={}) as writer:
        for l1_id, chains in events.items():
            writer.write(l1_id, {"chains": list(chains), "streams": [stream]}, [])


def test_decisions_come_from_physics_streams_only(tmp_path):
    write_stream(tmp_path, "Main", {1: ("HLT_b", "HLT_a"), 2: ("HLT_a",)})
    write_stream(tmp_path, "MinBias", {2: ("HLT_a",), 3: ("HLT_c",)})
    write_stream(tmp_path, "HltTimeout", {4: ()})
    assert [p.stem for p in physics_streams(tmp_path)] == ["Main", "MinBias"]
    assert stream_decisions(tmp_path) == {1: ("HLT_a", "HLT_b"), 2: ("HLT_a",), 3: ("HLT_c",)}
    assert stream_decisions(tmp_path, include_debug=True)[4] == ()


decisions = st.dictionaries(st.integers(0, 10_000), st.sets(st.sampled_from(CHAINS), min_size=1).map(lambda s: tuple(sorted(s))),
                            max_size=40)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(decisions, st.data())
def test_comparison_classifies_every_replayed_event_once(first, data):
    ids = sorted(first)
    dropped = set(data.draw(st.lists(st.sampled_from(ids), unique=True))) if ids else set()
    changed = set(data.draw(st.lists(st.sampled_from(ids), unique=True))) if ids else set()
    second = {}
    for l1_id in ids:
        if l1_id in dropped:
            continue
        second[l1_id] = ("HLT_other",) if l1_id in changed else first[l1_id]
    result = compare_replay("Main", first, ids, second)
    assert result.events == len(ids)
    assert result.same + len(result.different_chains) + len(result.not_accepted) == len(ids)
    assert set(result.not_accepted) == dropped
    assert set(result.different_chains) == changed - dropped
    assert result.identical == (bool(ids) and not dropped and not changed)
