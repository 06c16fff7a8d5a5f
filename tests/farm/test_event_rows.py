"""The collector's per-event table: one row per event the ledger counts, with the collector's
own step times and debug reasons; a malformed optional field or a failing table never costs
an event."""

from __future__ import annotations

import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from farm import messages
from farm.collector import Collector
from farm.event_rows import LOCAL_HOST
from farm.summary import LATENCY_ORDER
from farm.run_output import events_table_path
from trigger_sim.config import load_config, with_overrides
from trigger_sim.event_table import EventTable

SERVER = "localhost:8001"
MS = 1_000_000


@pytest.fixture
def make_collector():
    ctx = zmq.Context()
    made = []

    def make() -> Collector:
        c = Collector(ctx, with_overrides(load_config(), output={"write_streams": False}), None,
                      events=EventTable(LATENCY_ORDER, SERVER))
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()
    ctx.term()


def result(l1_id: int, **fields) -> list:
    decision = {"l1_id": l1_id, "outcome": "accepted", "streams": ["Main"], "chains": ["HLT_j100"],
                "steps_ms": {"decode": 0.5, "edge_classifier": 4.0, "worker_total": 9.0}, "reason": "",
                "inference_path": "triton", "inference_reason": "", "inference": {"edge_classifier": "triton", "jet_tagger": "skipped"},
                "n_hits": 900, "n_edges": 5000, "n_tracks": 30, "n_jets": 2, "n_clusters": 1,
                "received_ns": 13 * MS, "decided_ns": 22 * MS, "worker": "worker-0.0", **fields}
    builder = {"l1_time_ns": 1 * MS, "first_ns": 2 * MS, "complete_ns": 3 * MS, "dispatched_ns": 10 * MS, "attempt": 1, "frames_per_fragment": []}
    return [zmq.Frame(messages.RESULT), zmq.Frame(messages.pack_meta(decision)), zmq.Frame(messages.pack_meta(builder))]


def missing(l1_id: int) -> list:
    meta = {"l1_id": l1_id, "l1_time_ns": 2 * MS, "stream": "MissingData", "reason": "build timeout (source 0x2 late)",
            "missing_sources": [2], "frames_per_fragment": [], "done_ns": 40 * MS}
    return [zmq.Frame(messages.MISSING), zmq.Frame(messages.pack_meta(meta))]


def test_a_result_and_a_missing_event_each_become_one_row(make_collector):
    c = make_collector()
    c.handle(result(7))
    c.handle(result(7, outcome="rejected", streams=[], chains=[]))  # a second outcome: refused, no row
    c.handle(missing(8))
    rows = c.events.rows()
    assert [r["l1_id"] for r in rows] == [7, 8] and c.ledger.duplicates == 1
    ok, lost = rows
    assert ok["outcome"] == "accepted" and ok["streams"] == ("Main",) and ok["chains"] == ("HLT_j100",)
    assert (ok["assign_ms"], ok["build_ms"], ok["queue_ms"], ok["transfer_ms"], ok["total_ms"]) == (1.0, 1.0, 7.0, 3.0, 21.0)
    assert ok["edge_classifier_ms"] == 4.0 and ok["menu_ms"] is None  # a step not reported did not run
    assert (ok["edge_classifier_path"], ok["edge_classifier_server"]) == ("triton", SERVER)
    assert (ok["jet_tagger_path"], ok["jet_tagger_server"]) == ("skipped", "")
    assert (ok["worker"], ok["host"], ok["attempt"], ok["n_hits"], ok["n_clusters"]) == ("worker-0.0", LOCAL_HOST, 1, 900, 1)
    assert (ok["l1_time_ns"], ok["decided_ns"], ok["forced"]) == (1 * MS, 22 * MS, False)
    assert lost["outcome"] == "debug" and lost["streams"] == ("MissingData",) and lost["worker"] == ""
    assert f"MissingData: {lost['debug_reason']}" in c.debug_reasons and lost["debug_detail"].endswith("late)")
    assert all(lost[f"{s}_ms"] is None for s in LATENCY_ORDER) and lost["n_hits"] is None
    assert c.write_errors == 0


def test_a_debug_result_keeps_the_summarys_reason(make_collector):
    c = make_collector()
    c.handle(result(3, outcome="debug", streams=["HltTimeout"], chains=[], reason="hard timeout: a step ran past", forced=True))
    row, = c.events.rows()
    assert (row["debug_reason"], row["debug_detail"], row["forced"]) == ("hard timeout", "hard timeout: a step ran past", True)
    assert set(c.debug_reasons) == {f"HltTimeout: {row['debug_reason']}"}


junk = st.one_of(st.none(), st.booleans(), st.integers(-(2**63), 2**64 - 1), st.floats(allow_nan=True), st.text(max_size=5),
                 st.lists(st.integers(0, 9), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(0, 9), max_size=2))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(st.sampled_from(["n_hits", "n_edges", "n_jets", "inference", "host", "forced"]), junk, min_size=1))
def test_junk_in_fields_the_decision_does_not_need_never_costs_the_event(make_collector, fields):
    c = make_collector()
    c.handle(result(5, **fields))
    assert c.ledger.decided == 1 and len(c.events) == 1 and c.write_errors == 0


def test_a_failing_table_is_a_counted_write_error_not_a_lost_event(make_collector, monkeypatch):
    c = make_collector()

    def broken(row):
        raise MemoryError("table full")

    monkeypatch.setattr(c.events, "add", broken)
    c.handle(result(1))
    c.handle(missing(2))
    assert c.ledger.decided == 2 and c.write_errors == 2
    assert c.write_error_texts[0].startswith("events table: event 1: MemoryError")


def test_the_table_goes_into_the_output_folder_or_where_asked(tmp_path):
    assert events_table_path("auto", tmp_path) == tmp_path / "events.parquet"
    assert events_table_path("auto", None) is None  # no output folder: no table unless a path is given
    assert events_table_path(tmp_path / "t.root", None) == tmp_path / "t.root"
    assert events_table_path(None, tmp_path) is None
