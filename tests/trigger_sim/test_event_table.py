"""The per-event table: rows come back as added (nulls where not known), columns stay the
same length even when a row is refused, and Parquet and ROOT files read back the same."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trigger_sim.event_table import SIZES, UNKNOWN, EventRow, EventTable
from trigger_sim.event_table_io import LIST_SEPARATOR, check_writable, write_table
from trigger_sim.errors import TriggerSimError
from trigger_sim.models.registry import MODEL_NAMES

STEPS = ("build", "decode", "edge_classifier", "total")
SERVER = "localhost:8001"
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FILES = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])

names = st.sampled_from(["Main", "Jets", "HLT_j100", "HLT_e25", "MissingData", "é-ü", ""])
paths = st.sampled_from(["triton", "fallback", "skipped", "expired"])
ints = st.integers(0, 2**62)
rows = st.builds(
    EventRow,
    l1_id=ints, l1_time_ns=ints, decided_ns=ints, outcome=st.sampled_from(["accepted", "rejected", "debug"]),
    chains=st.lists(names, max_size=3).map(tuple), streams=st.lists(names, max_size=2).map(tuple),
    debug_reason=names, debug_detail=st.text(max_size=20),
    steps_ms=st.dictionaries(st.sampled_from(STEPS + ("unknown_step",)), st.floats(0, 1e4)),
    inference_path=paths, fallback_reason=names,
    model_paths=st.dictionaries(st.sampled_from(MODEL_NAMES), paths),
    worker=st.sampled_from(["worker-0.0", "worker-1.0", ""]), host=st.sampled_from(["node1", "node2"]),
    attempt=st.integers(-1, 3), forced=st.booleans(),
    sizes=st.none() | st.fixed_dictionaries({s: st.integers(0, 10**6) for s in SIZES}))


def expected(row: EventRow) -> dict:
    """What the table should say about `row` (None: not known)."""
    out = {"l1_id": row.l1_id, "l1_time_ns": row.l1_time_ns, "decided_ns": row.decided_ns, "outcome": row.outcome,
           "chains": row.chains, "streams": row.streams, "debug_reason": row.debug_reason, "debug_detail": row.debug_detail,
           "inference_path": row.inference_path, "fallback_reason": row.fallback_reason, "worker": row.worker,
           "host": row.host, "attempt": None if row.attempt == UNKNOWN else row.attempt, "forced": row.forced}
    out.update({f"{s}_ms": row.steps_ms.get(s) for s in STEPS})
    for m in MODEL_NAMES:
        path = row.model_paths.get(m, "")
        out[f"{m}_path"] = path
        out[f"{m}_server"] = SERVER if path in ("triton", "expired") else ""
    out.update({s: None if row.sizes is None else row.sizes[s] for s in SIZES})
    return out


def filled(event_rows: list[EventRow]) -> EventTable:
    table = EventTable(STEPS, SERVER)
    for row in event_rows:
        table.add(row)
    return table


@FAST
@given(st.lists(rows, max_size=30))
def test_rows_come_back_as_added(event_rows):
    table = filled(event_rows)
    assert len(table) == len(event_rows)
    assert table.rows() == [expected(r) for r in event_rows]
    assert all(len(a) == len(table) for a in table.numbers().values())
    assert all(len(codes) == len(table) for codes, _ in table.text().values())


@FAST
@given(st.lists(rows, min_size=1, max_size=10), st.sampled_from(["l1_id", "attempt", "sizes", "steps_ms"]))
def test_a_refused_row_leaves_every_column_as_it_was(event_rows, field):
    table = filled(event_rows)
    bad = {"l1_id": 2**64, "attempt": 1 << 63, "sizes": {"n_hits": "many"}, "steps_ms": {"build": "slow"}}[field]
    row = event_rows[0]
    with pytest.raises((OverflowError, ValueError)):
        table.add(dataclasses.replace(row, **{field: bad}))
    table.add(row)
    assert table.rows() == [expected(r) for r in [*event_rows, row]]


def test_an_empty_table_writes_its_columns(tmp_path):
    pd = pytest.importorskip("pandas")
    table = EventTable(STEPS, SERVER)
    df = pd.read_parquet(write_table(table, tmp_path / "events.parquet"))
    assert list(df.columns) == table.column_names() and len(df) == 0


@FILES
@given(st.lists(rows, min_size=1, max_size=30))
def test_parquet_reads_back_with_pandas(tmp_path_factory, event_rows):
    pd = pytest.importorskip("pandas")
    table = filled(event_rows)
    path = write_table(table, tmp_path_factory.mktemp("t") / "events.parquet")
    df = pd.read_parquet(path)
    assert list(df.columns) == table.column_names()
    for got, want in zip(df.to_dict("records"), table.rows()):
        for name, value in want.items():
            if value is None:
                assert got[name] is None or math.isnan(got[name]), name
            elif name in EventTable.LISTS:
                assert tuple(got[name]) == value, name
            else:
                assert got[name] == value, name
    assert not list(path.parent.glob(".*partial"))


@FILES
@given(st.lists(rows, min_size=1, max_size=20))
def test_root_file_has_a_flat_tree(tmp_path_factory, event_rows):
    uproot = pytest.importorskip("uproot", reason="the ROOT writer is optional: pip install -e '.[root]'")
    table = filled(event_rows)
    path = write_table(table, tmp_path_factory.mktemp("t") / "events.root")
    tree = uproot.open(path)["events"]
    assert tree.classname == "TTree" and tree.num_entries == len(event_rows)
    arrays = tree.arrays(library="np")
    assert list(arrays) == table.column_names()
    for i, want in enumerate(table.rows()):
        for name, value in want.items():
            got = arrays[name][i]
            if name in EventTable.LISTS:
                assert got == LIST_SEPARATOR.join(value), name
            elif value is None:  # a flat tree has no nulls: NaN steps, -1 numbers
                assert (math.isnan(got) if name.endswith("_ms") else got == UNKNOWN), name
            else:
                assert got == value, name


def test_a_root_name_without_uproot_says_how_to_install(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_uproot(name, *args, **kwargs):
        if name == "uproot":
            raise ImportError("no uproot")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_uproot)
    with pytest.raises(TriggerSimError, match=r"pip install -e '\.\[root\]'"):
        check_writable("run/events.root")
    check_writable("run/events.parquet")  # Parquet needs nothing optional


def test_numbers_are_copies_so_the_table_can_grow():
    table = filled([EventRow(1, 2, 3, "accepted", steps_ms={"total": 1.0})])
    held = table.numbers()
    table.add(EventRow(2, 3, 4, "rejected"))
    assert len(held["l1_id"]) == 1 and list(table.numbers()["l1_id"]) == [1, 2]
    assert np.isnan(table.numbers()["total_ms"][1])
