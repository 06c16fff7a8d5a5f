"""Tests of the iSpy importer on five real CMS events (tests/data/cms-ispy), and fuzzing."""

from __future__ import annotations

import io
import json
import math
import re
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trigger_sim.config import CaloConfig, FarmConfig
from trigger_sim.errors import IspyError
from trigger_sim.importers.ispy import IspyFile, event_from_object, parse_text, to_json
from trigger_sim.importers.ispy_convert import convert_event, hlt_not_run
from trigger_sim.partition import source_ids, unpack_calo

IG_FILE = Path(__file__).resolve().parents[2] / "data" / "cms-ispy" / "MinimumBias_Run2012C_0_first5.ig"
ECAL = ("EBRecHits_V2", "EERecHits_V2")
HCAL = ("HBRecHits_V2", "HERecHits_V2", "HFRecHits_V2")


@pytest.fixture(scope="module")
def events() -> list:
    with IspyFile(IG_FILE) as source:
        assert source.cmssw_version == "CMSSW_5_3_36"
        assert source.runs == {198230}
        return list(source)


@pytest.fixture(scope="module")
def raw_events() -> list[dict]:
    """The same events parsed independently: only the bare nan needs replacing in this file."""
    with zipfile.ZipFile(IG_FILE) as archive:
        members = [n for n in archive.namelist() if n.startswith("Events/")]
        return [json.loads(re.sub(r"\bnan\b", "NaN", archive.read(n).decode())) for n in members]


def test_reads_every_event(events: list, raw_events: list) -> None:
    assert len(events) == len(raw_events) == 5
    assert events[0].member.endswith("Events/Run_198230/Event_643920242")
    assert events[0].collections == raw_events[0]["Collections"]


def in_acceptance_energy(raw: dict, names: tuple[str, ...], eta_max: float) -> float:
    """Sum of positive rechit energies inside |eta| < eta_max, from the raw rows."""
    total = 0.0
    for name in names:
        columns = [c[0] for c in raw["Types"][name]]
        e, eta, phi = (columns.index(c) for c in ("energy", "eta", "phi"))
        for row in raw["Collections"][name]:
            if row[e] > 0 and abs(row[eta]) < eta_max and math.isfinite(row[phi]):
                total += row[e]
    return total


@pytest.mark.parametrize("calo", [CaloConfig(), CaloConfig(eta_max=1.5, n_eta=30, n_phi=32, n_regions=3)])
def test_every_event_converts_with_all_sources_and_the_energy(events: list, raw_events: list, calo: CaloConfig) -> None:
    config = FarmConfig(calo=calo)
    for l1_id, (event, raw) in enumerate(zip(events, raw_events)):
        converted = convert_event(event, config, l1_id)
        assert [f.header.source_id for f in converted.fragments] == source_ids(config)
        assert all(f.header.l1_id == l1_id and f.header.run_number == 198230 for f in converted.fragments)
        em, had = unpack_calo(converted.fragments, calo)
        assert float(em.sum(dtype=np.float64)) == pytest.approx(in_acceptance_energy(raw, ECAL, calo.eta_max), rel=1e-5)
        assert float(had.sum(dtype=np.float64)) == pytest.approx(in_acceptance_energy(raw, HCAL, calo.eta_max), rel=1e-5)
        counts = converted.meta["conversion"]
        n_rechits = sum(len(raw["Collections"][n]) for n in ECAL + HCAL)
        assert counts["rechits_used"] + counts["dropped_outside_eta"] + counts["dropped_bad_energy"] == n_rechits
        assert counts["tracker_hits"] > 0


def test_meta_keeps_cms_identity_hlt_decisions_and_objects(events: list, raw_events: list) -> None:
    for event, raw in zip(events, raw_events):
        meta = convert_event(event, FarmConfig(), 0).meta
        run, number, lumi, orbit, bx = raw["Collections"]["Event_V2"][0][:5]
        assert meta["cms"] | {"time": None} == {"run": run, "event": number, "lumi": lumi, "orbit": orbit,
                                                  "bx": bx, "time": None}
        paths = raw["Collections"]["TriggerPaths_V1"]
        assert meta["cms_hlt"] == {p[0]: bool(p[3]) for p in paths}
        assert meta["cms_hlt_not_run"] == [p[0] for p in paths if not p[2]] == []  # every path ran in this file
        assert len(meta["cms_hlt"]) > 400
        assert meta["cms_hlt"]["HLTriggerFinalPath"] is True
        jets = meta["cms_objects"]["pf_jets"]
        assert jets["et_gev"] == [row[0] for row in raw["Collections"]["PFJets_V1"]]
        assert len(jets["eta"]) == len(jets["phi"]) == len(jets["et_gev"])
        assert len(meta["cms_objects"]["pf_met"]["pt_gev"]) == 1
        assert set(meta["cms_objects"]) == {"pf_jets", "pf_met", "electrons", "photons", "muons_global", "muons_tracker"}
    assert any(meta["cms_hlt"]["HLT_ZeroBias_v7"] for meta in
               (convert_event(e, FarmConfig(), 0).meta for e in events))


def test_paths_not_run_are_kept(raw_events: list) -> None:
    raw = json.loads(json.dumps(raw_events[0]))
    paths = raw["Collections"]["TriggerPaths_V1"]
    wasrun = [c[0] for c in raw["Types"]["TriggerPaths_V1"]].index("WasRun")
    for row in paths[5:8]:
        row[wasrun] = 0
    assert hlt_not_run(event_from_object(raw, "m")) == [row[0] for row in paths[5:8]]
    for row in raw["Types"]["TriggerPaths_V1"], *paths:
        del row[wasrun]
    assert hlt_not_run(event_from_object(raw, "m")) == []  # producers without the column: unknown, none listed


def test_conversion_is_reproducible(events: list) -> None:
    first, second = (convert_event(events[1], FarmConfig(), 7) for _ in range(2))
    assert first.meta == second.meta
    for a, b in zip(first.fragments, second.fragments):
        assert a.header == b.header
        assert all(np.array_equal(a.arrays[k], b.arrays[k]) for k in a.arrays)


def test_to_json_rewrites_only_what_json_lacks() -> None:
    text = """{'a': 'it\\'s "x"', "nan": [nan, -nan, inf, -inf, 1e-05, -2E+3], "s": 'nan'}"""
    value = parse_text(text.encode(), "t")
    assert value["a"] == 'it\'s "x"' and value["s"] == "nan"
    assert math.isnan(value["nan"][0]) and math.isnan(value["nan"][1])
    assert value["nan"][2:] == [math.inf, -math.inf, 1e-05, -2000.0]
    assert to_json('["a nan in a string", nan]', "t") == '["a nan in a string", NaN]'


def ig_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def test_clear_errors(tmp_path: Path, raw_events: list) -> None:
    not_zip = tmp_path / "plain.ig"
    not_zip.write_text("{}")
    with pytest.raises(IspyError, match="not a zip archive"):
        IspyFile(not_zip)
    no_events = tmp_path / "empty.ig"
    no_events.write_bytes(ig_bytes({"Header": b'"CMSSW"'}))
    with pytest.raises(IspyError, match="no Events/Run_<run>/Event_<event> members"):
        IspyFile(no_events)
    broken = tmp_path / "broken.ig"
    broken.write_bytes(ig_bytes({"Events/Run_1/Event_2": b'{"Types": {], }'}))
    with IspyFile(broken) as source, pytest.raises(IspyError, match="member Events/Run_1/Event_2: does not parse"):
        list(source)
    raw = json.loads(json.dumps(raw_events[0]))
    del raw["Collections"]["EBRecHits_V2"]
    event = event_from_object(raw, "Events/Run_1/Event_3")
    with pytest.raises(IspyError, match="Events/Run_1/Event_3: no collection EBRecHits_V2"):
        convert_event(event, FarmConfig(), 0)
    raw = json.loads(json.dumps(raw_events[0]))
    raw["Types"]["Event_V2"][4][0] = "bunch"
    with pytest.raises(IspyError, match="Event_V2 has no column 'bx'"):
        convert_event(event_from_object(raw, "m"), FarmConfig(), 0)
    with pytest.raises(IspyError, match="unterminated string at character 1"):
        parse_text(b'["abc', "m")
    with pytest.raises(IspyError, match="unexpected bare word 'foo'"):
        parse_text(b"[foo]", "m")


JSONISH = st.text(alphabet=st.sampled_from(list("{}[],:'\"\\ -+.eE0123456789nainfNaItrulsx\n")), max_size=200)


@settings(max_examples=300, deadline=1000)
@given(st.one_of(st.binary(max_size=300), JSONISH.map(str.encode), st.text(max_size=200).map(str.encode)))
def test_fuzz_parser_raises_only_ispy_errors(data: bytes) -> None:
    try:
        value = parse_text(data, "fuzz")
    except IspyError:
        return
    try:
        convert_event(event_from_object(value, "fuzz"), FarmConfig(), 0)
    except IspyError:
        pass


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=1000)
@given(json_values)
def test_valid_json_parses_unchanged(value: object) -> None:
    assert parse_text(json.dumps(value).encode(), "t") == value


@pytest.fixture(scope="module")
def small_event_text() -> bytes:
    with zipfile.ZipFile(IG_FILE) as archive:
        return archive.read("Events/Run_198230/Event_643920242")


@settings(max_examples=40, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_fuzz_damaged_real_events_raise_only_ispy_errors(small_event_text: bytes, data: st.DataObject) -> None:
    text = bytearray(small_event_text)
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        pos = data.draw(st.integers(0, len(text) - 1), label="pos")
        text[pos:pos + data.draw(st.integers(0, 50), label="cut")] = data.draw(st.binary(max_size=3), label="insert")
    try:
        convert_event(event_from_object(parse_text(bytes(text), "fuzz"), "fuzz"), FarmConfig(), 0)
    except IspyError:
        pass


CELL_VALUES = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**80), 2**80), st.floats(), st.text(max_size=3),
    st.lists(st.floats(), max_size=4), st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)


@settings(max_examples=150, deadline=2000, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_fuzz_damaged_event_structure_raises_only_ispy_errors(raw_events: list, data: st.DataObject) -> None:
    raw = json.loads(json.dumps(raw_events[0]))
    for _ in range(data.draw(st.integers(1, 3), label="edits")):
        name = data.draw(st.sampled_from(sorted(raw["Collections"])), label="collection")
        rows = raw["Collections"][name]
        where = data.draw(st.sampled_from(["cell", "rows", "types", "delete"]), label="where")
        if where == "cell" and isinstance(rows, list) and rows and isinstance(rows[0], list) and rows[0]:
            row = rows[data.draw(st.integers(0, len(rows) - 1), label="row")]
            row[data.draw(st.integers(0, len(row) - 1), label="column")] = data.draw(CELL_VALUES, label="value")
        elif where == "rows":
            raw["Collections"][name] = data.draw(CELL_VALUES, label="rows")
        elif where == "types":
            raw["Types"][name] = data.draw(CELL_VALUES, label="types")
        elif where == "delete":
            del raw["Collections"][name]
    try:
        convert_event(event_from_object(raw, "fuzz"), FarmConfig(), 0)
    except IspyError:
        pass
