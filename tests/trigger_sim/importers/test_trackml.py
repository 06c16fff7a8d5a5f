"""Tests of the TrackML importer: round trip of simulated events written in the TrackML
format (scripts/make_trackml_testdata.py, tests/data/trackml), what is dropped and kept,
clear errors with file, line and column, and fuzzing."""

from __future__ import annotations

import gzip
import importlib.util
import math
import re
import shutil
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trigger_sim.config import REPO_ROOT, FarmConfig, with_overrides
from trigger_sim.importers.trackml_convert import convert_event, import_trackml
from trigger_sim.importers.trackml_csv import TrackmlError, parse_table
from trigger_sim.importers.trackml_event import event_from_bytes, find_events, read_event
from trigger_sim.importers.trackml_geometry import BARREL_LAYERS, ENDCAP_LAYERS, NOT_BARREL, barrel_layer, is_known
from trigger_sim.partition import source_ids, unpack_calo, unpack_tracker
from trigger_sim.recording import RecordReader

DATA_DIR = REPO_ROOT / "tests" / "data" / "trackml"
CONFIG = FarmConfig()
RADII = np.asarray(CONFIG.tracker.layer_radii_mm, dtype=np.float32)


def load_script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("make_trackml_testdata", REPO_ROOT / "scripts" / "make_trackml_testdata.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while it is executed
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def script() -> ModuleType:
    return load_script()


@pytest.fixture(scope="module")
def fresh_sample(script: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    """Two events written now, uncompressed, with what the simulation made of them."""
    directory = tmp_path_factory.mktemp("trackml")
    return directory, script.make_sample(directory, n_events=2, pileup=2.0, seed=5, use_gzip=False)


def phi_difference(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(np.angle(np.exp(1j * (a.astype(np.float64) - b.astype(np.float64)))))


# --- geometry --------------------------------------------------------------------------

def test_barrel_is_the_published_trackml_barrel(script: ModuleType) -> None:
    assert BARREL_LAYERS == ((8, 2), (8, 4), (8, 6), (8, 8), (13, 2), (13, 4), (13, 6), (13, 8), (17, 2), (17, 4))
    assert tuple(script.BARREL) == BARREL_LAYERS  # the sample generator uses the same ids
    assert len(BARREL_LAYERS) == len(CONFIG.tracker.layer_radii_mm)
    volume = np.array([v for v, _ in BARREL_LAYERS] + [7, 9, 12, 18, 8, 13, 5])
    layer = np.array([lay for _, lay in BARREL_LAYERS] + [14, 2, 12, 2, 10, 3, 2])
    assert barrel_layer(volume, layer).tolist() == list(range(10)) + [NOT_BARREL] * 7
    assert is_known(volume, layer).tolist() == [True] * 14 + [False] * 3
    assert sum(len(v) for v in ENDCAP_LAYERS.values()) == 2 * 7 + 4 * 6


# --- round trip ------------------------------------------------------------------------

def test_round_trip_of_simulated_hits(fresh_sample: tuple[Path, list], script: ModuleType) -> None:
    directory, written = fresh_sample
    events = find_events(directory)
    assert [e.event_id for e in events] == [1000, 1001]
    for l1_id, (files, sample) in enumerate(zip(events, written)):
        converted = convert_event(read_event(files), CONFIG, l1_id)
        sim = sample.sim.hits
        layer, r, phi, z = unpack_tracker(converted.fragments, CONFIG.tracker)
        assert np.bincount(layer, minlength=10).tolist() == np.bincount(sim.layer, minlength=10).tolist()
        hit_ids = np.array(converted.meta["trackml_hits"]["hit_id"])
        position = {h: i for i, h in enumerate(sample.barrel_hit_id)}
        k = np.array([position[h] for h in hit_ids])  # the simulated hit behind each unpacked hit
        assert len(set(k.tolist())) == len(sim.layer) == len(layer)
        assert np.array_equal(layer, sim.layer[k])
        assert np.array_equal(r, sim.r_mm[k])
        assert phi_difference(phi, sim.phi[k]).max() < 1e-5  # x, y written to 0.1 um
        assert np.abs(z - sim.z_mm[k]).max() < 2e-4
        expected = np.where(sim.particle[k] < 0, 0, script.PARTICLE_ID_BASE + sim.particle[k])
        assert converted.meta["trackml_hits"]["particle_id"] == expected.tolist()
        assert {int(v): n for v, n in converted.dropped_endcap.items()} == sample.n_endcap_hits
        assert converted.meta["conversion"]["hits_read"] == len(sim.layer) + sum(sample.n_endcap_hits.values())
        assert converted.meta["conversion"]["radial_offset_max_mm"] <= 1.5 + 1e-3


def test_every_event_has_every_source_and_an_empty_calorimeter(fresh_sample: tuple[Path, list]) -> None:
    directory, _ = fresh_sample
    config = with_overrides(CONFIG, tracker={"n_sectors": 3}, calo={"n_regions": 5})
    for l1_id, files in enumerate(find_events(directory)):
        converted = convert_event(read_event(files), config, l1_id, l1_time_ns=42)
        assert [f.header.source_id for f in converted.fragments] == source_ids(config)
        assert all((f.header.l1_id, f.header.run_number, f.header.l1_time_ns) == (l1_id, 1, 42) for f in converted.fragments)
        em, had = unpack_calo(converted.fragments, config.calo)
        assert not em.any() and not had.any()
        layer, _, phi, _ = unpack_tracker(converted.fragments, config.tracker)
        assert len(layer) == converted.tracker_hits > 0
        assert np.all(np.diff(phi) >= 0)  # the meta's hit order is the unpacked order


def read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    header, *rows = text.splitlines()
    return header.split(","), [row.split(",") for row in rows]


def csv_columns(path: Path) -> dict[str, list[str]]:
    header, rows = read_csv(path)
    return {name: [row[j] for row in rows] for j, name in enumerate(header)}


def test_committed_sample_imports_as_its_csv_says(tmp_path: Path) -> None:
    events = find_events(DATA_DIR)
    assert [e.event_id for e in events] == [1000, 1001, 1002]
    assert all(sorted(e.paths) == ["cells", "hits", "particles", "truth"] for e in events)
    out = tmp_path / "sample.tsrec"
    summary = import_trackml(DATA_DIR, out, CONFIG)
    records = list(RecordReader(out))
    assert [r.l1_id for r in records] == [0, 1, 2] and summary.events == 3 == summary.events_with_truth
    endcap_total = dict.fromkeys(ENDCAP_LAYERS, 0)
    for record, files in zip(records, events):
        hits = csv_columns(files.paths["hits"])
        pairs = list(zip(map(int, hits["volume_id"]), map(int, hits["layer_id"])))
        layer, _, phi, _ = unpack_tracker(record.fragments, CONFIG.tracker)
        assert np.bincount(layer, minlength=10).tolist() == [pairs.count(p) for p in BARREL_LAYERS]
        for volume in ENDCAP_LAYERS:
            n = sum(v == volume for v, _ in pairs)
            assert record.meta["conversion"]["dropped_endcap"][str(volume)] == n
            endcap_total[volume] += n
        row_of = {int(h): i for i, h in enumerate(hits["hit_id"])}
        rows = [row_of[h] for h in record.meta["trackml_hits"]["hit_id"]]
        csv_phi = np.arctan2([float(hits["y"][i]) for i in rows], [float(hits["x"][i]) for i in rows])
        assert phi_difference(phi, csv_phi).max() < 1e-6
        assert record.meta["trackml"]["event_id"] == files.event_id
        assert set(record.meta["trackml"]["csv_sha256"]) == {p.name for p in files.paths.values()}
        particles = csv_columns(files.paths["particles"])
        assert record.meta["trackml_particles"]["particle_id"] == [int(p) for p in particles["particle_id"]]
        assert record.meta["trackml_particles"]["pz_gev"] == [float(p) for p in particles["pz"]]
    assert summary.dropped_endcap == endcap_total and sum(endcap_total.values()) > 0
    assert summary.tracker_hits + sum(endcap_total.values()) == summary.hits_read
    assert not list(tmp_path.glob("*.partial"))


def test_cells_give_count_and_charge_per_hit() -> None:
    files = find_events(DATA_DIR)[0]
    converted = convert_event(read_event(files), CONFIG, 0)
    cells = csv_columns(files.paths["cells"])
    count: dict[int, int] = {}
    charge: dict[int, float] = {}
    for h, v in zip(map(int, cells["hit_id"]), map(float, cells["value"])):
        count[h] = count.get(h, 0) + 1
        charge[h] = charge.get(h, 0.0) + v
    meta = converted.meta["trackml_hits"]
    assert meta["cells"] == [count[h] for h in meta["hit_id"]]
    assert meta["charge"] == pytest.approx([charge[h] for h in meta["hit_id"]])
    assert converted.meta["conversion"]["cells_read"] == len(cells["hit_id"])


# --- a small event by hand -----------------------------------------------------------------

PID = 4503599627370497  # above 2**52: a float64 reading would round it
SMALL = {
    "hits": "hit_id,x,y,z,volume_id,layer_id,module_id\n"
            "1,32.0,0.0,10.0,8,2,1\n"
            "2,0.0,-360.0,-50.5,13,4,7\n"
            "3,100.0,50.0,-1500.0,7,2,3\n",
    "cells": "hit_id,ch0,ch1,value\n1,10,20,0.1\n1,11,20,0.2\n2,5,0,0.3\n3,1,1,0.05\n",
    "particles": f"particle_id,vx,vy,vz,px,py,pz,q,nhits\n{PID},0,0,1.5,1.0,0.0,0.1,1,2\n",
    "truth": "hit_id,particle_id,tx,ty,tz,tpx,tpy,tpz,weight\n"
             f"1,{PID},32.0,0.0,10.0,1.0,0.0,0.1,0.5\n"
             "2,0,0.0,-360.0,-50.5,0,0,0,0\n"
             f"3,{PID},100.0,50.0,-1500.0,1,0,0.1,0.5\n",
}


def small_parts(**changes: str | None) -> dict[str, tuple[str, bytes]]:
    texts = SMALL | changes
    return {part: (f"event000000007-{part}.csv", text.encode()) for part, text in texts.items() if text is not None}


def test_small_event_keeps_barrel_hits_in_phi_order_and_drops_the_endcap_hit() -> None:
    converted = convert_event(event_from_bytes(7, small_parts()), CONFIG, 3)
    meta = converted.meta
    assert meta["trackml_hits"]["hit_id"] == [2, 1]  # phi -pi/2, then 0
    assert meta["trackml_hits"]["particle_id"] == [0, PID]
    assert meta["trackml_hits"]["cells"] == [1, 2]
    assert meta["trackml_hits"]["charge"] == pytest.approx([0.3, 0.3])
    assert meta["trackml_particles"]["particle_id"] == [PID]
    assert meta["conversion"]["dropped_endcap"] == {"7": 1, "9": 0, "12": 0, "14": 0, "16": 0, "18": 0}
    layer, r, phi, z = unpack_tracker(converted.fragments, CONFIG.tracker)
    assert layer.tolist() == [5, 0] and r.tolist() == [360.0, 32.0]
    assert phi == pytest.approx([-math.pi / 2, 0.0], abs=1e-6) and z == pytest.approx([-50.5, 10.0], abs=1e-5)


def test_hits_only_event_has_no_truth_and_barrel_hits_beyond_the_tracker_are_dropped() -> None:
    hits = SMALL["hits"] + "4,0.0,72.0,1100.0,8,4,1\n5,0.0,-72.0,-1200.5,8,4,1\n"
    event = event_from_bytes(7, small_parts(hits=hits, cells=None, particles=None, truth=None))
    converted = convert_event(event, CONFIG, 0)
    assert converted.meta["trackml_hits"] == {"hit_id": [2, 1], "cells": [0, 0], "charge": [0.0, 0.0]}
    assert converted.meta["trackml_particles"] == {}
    assert converted.dropped_outside_z == converted.meta["conversion"]["dropped_outside_z"] == 2


ERRORS = [
    ("hits", SMALL["hits"].replace(",z,", ",zz,"), r"hits.csv: line 1: no column 'z' in the header"),
    ("hits", SMALL["hits"].replace("0.0,-360.0", "0.0,-3a60.0"), r"hits.csv: line 3, column 3 \(y\): value '-3a60.0' is not a number"),
    ("hits", SMALL["hits"].replace("\n2,", "\n1,"), r"hits.csv: line 3, column 1 \(hit_id\): hit_id 1 already on line 2; ids must be unique"),
    ("hits", SMALL["hits"].replace(",13,4,", ",13,3,"), r"hits.csv: line 3, column 6 \(layer_id\): volume_id 13, layer_id 3 is not a layer"),
    ("hits", SMALL["hits"].replace(",13,4,", ",10,4,"), r"hits.csv: line 3, column 5 \(volume_id\): volume_id 10, layer_id 4 is not a layer"),
    ("hits", SMALL["hits"].replace(",10.0,", ",nan,"), r"hits.csv: line 2, column 4 \(z\): value 'nan' is not a finite number"),
    ("hits", SMALL["hits"].replace(",7\n", ",7.5\n"), r"hits.csv: line 3, column 7 \(module_id\): value '7.5' is not an integer"),
    ("hits", SMALL["hits"].replace(",7\n", ",7,9\n"), r"hits.csv: line 3: 8 values, the header names 7 columns"),
    ("hits", SMALL["hits"].replace(",8,2,1\n", ",8,2,99999999999999999999\n"), r"line 2, column 7 \(module_id\): .* does not fit a 64-bit integer"),
    ("hits", SMALL["hits"].replace("\n2,", "\n\n2,"), r"hits.csv: line 3: an empty line, the header names 7 columns"),
    ("hits", "", r"hits.csv: empty file; expected a header line"),
    ("hits", "hit_id,x,x,y,z\n", r"hits.csv: line 1: column 'x' appears more than once"),
    ("cells", SMALL["cells"].replace("2,5,0", "12,5,0"), r"cells.csv: line 4, column 1 \(hit_id\): hit_id 12 is not in event000000007-hits.csv"),
    ("truth", SMALL["truth"].replace("\n2,0,", "\n99,0,"), r"truth.csv: line 3, column 1 \(hit_id\): hit_id 99 is not in event000000007-hits.csv"),
    ("truth", SMALL["truth"].replace("\n2,0,", "\n1,0,"), r"truth.csv: line 3, column 1 \(hit_id\): hit_id 1 already on line 2"),
    ("truth", SMALL["truth"].replace("\n2,0,", "\n2,5,"), r"truth.csv: line 3, column 2 \(particle_id\): particle_id 5 is not in event000000007-particles.csv"),
    ("truth", SMALL["truth"].rsplit("3,", 1)[0], r"hits.csv: line 4, column 1 \(hit_id\): hit 3 has no row in event000000007-truth.csv"),
    ("particles", SMALL["particles"].replace(str(PID), "0"), r"particles.csv: line 2, column 1 \(particle_id\): particle_id 0 is reserved"),
    ("truth", None, r"particles.csv: event 000000007 has a particles file but no truth file"),
]


@pytest.mark.parametrize(("part", "text", "message"), ERRORS)
def test_bad_tables_are_named_by_file_line_and_column(part: str, text: str | None, message: str) -> None:
    with pytest.raises(TrackmlError, match=message):
        convert_event(event_from_bytes(7, small_parts(**{part: text})), CONFIG, 0)


def test_bytes_that_are_not_text_name_the_line() -> None:
    with pytest.raises(TrackmlError, match=r"t.csv: line 3: not UTF-8 text"):
        parse_table(b"a,b\n1,2\n\xff,3\n", "t.csv", {"a": "int"})


def test_windows_line_ends_and_extra_columns_are_accepted() -> None:
    table = parse_table(b"\xef\xbb\xbfb,a,extra\r\n1,2.5,x\r\n", "t.csv", {"a": "float", "b": "int"})
    assert table.columns["a"].tolist() == [2.5] and table.columns["b"].tolist() == [1]


# --- files and directories ----------------------------------------------------------

def copy_event(tmp_path: Path, event_id: int = 1000) -> Path:
    for path in DATA_DIR.glob(f"event{event_id:09d}-*"):
        shutil.copy(path, tmp_path / path.name)
    return tmp_path


def test_gzip_and_plain_files_read_the_same(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    for path in DATA_DIR.glob("event000001000-*.csv.gz"):
        (plain / path.name.removesuffix(".gz")).write_bytes(gzip.decompress(path.read_bytes()))
    zipped, unzipped = read_event(find_events(DATA_DIR)[0]), read_event(find_events(plain)[0])
    assert zipped.csv_sha256 == {name + ".gz": digest for name, digest in unzipped.csv_sha256.items()}
    a, b = convert_event(zipped, CONFIG, 0), convert_event(unzipped, CONFIG, 0)
    assert a.meta.pop("trackml") != b.meta.pop("trackml")  # the file names differ
    assert a.meta == b.meta and a.meta["trackml_hits"]["hit_id"]


@pytest.mark.parametrize(("setup", "message"), [
    (lambda d: None, r"no TrackML event files"),
    (lambda d: (d / "event000000001-truth.csv").write_text(SMALL["truth"]), r"event 000000001 has event000000001-truth.csv but no hits file"),
    (lambda d: [(d / f"event000000001-hits.{e}").write_bytes(b"") for e in ("csv", "csv.gz")], r"both event000000001-hits.csv and event000000001-hits.csv.gz"),
])
def test_directory_problems(tmp_path: Path, setup, message: str) -> None:
    (tmp_path / "notes.txt").write_text("ignored")
    setup(tmp_path)
    with pytest.raises(TrackmlError, match=message):
        find_events(tmp_path)


def test_a_damaged_gzip_file_is_named(tmp_path: Path) -> None:
    copy_event(tmp_path)
    hits = tmp_path / "event000001000-hits.csv.gz"
    hits.write_bytes(hits.read_bytes()[:-100])
    with pytest.raises(TrackmlError, match=re.escape(f"{hits}: not a complete gzip file")):
        read_event(find_events(tmp_path)[0])


def test_a_failed_import_leaves_no_file(tmp_path: Path) -> None:
    data = tmp_path / "in"
    data.mkdir()
    copy_event(data, 1000)
    copy_event(data, 1001)
    truth = data / "event000001001-truth.csv.gz"
    text = gzip.decompress(truth.read_bytes()).decode().replace("\n5,", "\n5x,", 1)
    truth.write_bytes(gzip.compress(text.encode()))
    out = tmp_path / "out.tsrec"
    with pytest.raises(TrackmlError, match=r"event000001001-truth.csv.gz: line 6, column 1 \(hit_id\): value '5x'"):
        import_trackml(data, out, CONFIG)
    assert not list(tmp_path.glob("out.tsrec*"))


def test_a_tracker_without_ten_layers_is_refused(tmp_path: Path) -> None:
    config = with_overrides(CONFIG, tracker={"layer_radii_mm": (30.0, 60.0, 90.0)})
    with pytest.raises(TrackmlError, match="has 3 tracker layers, the TrackML barrel has 10"):
        import_trackml(DATA_DIR, tmp_path / "x.tsrec", config)
    assert not list(tmp_path.iterdir())


# --- properties and fuzzing ------------------------------------------------------------

barrel_hits = st.lists(
    st.tuples(st.integers(0, 9), st.floats(-math.pi, math.pi), st.floats(-1099.0, 1099.0), st.floats(-5.0, 5.0)),
    max_size=60,
)


@settings(max_examples=100, deadline=None)
@given(barrel_hits)
def test_any_barrel_hits_come_back_on_their_layer_phi_and_z(hits: list[tuple[int, float, float, float]]) -> None:
    lines = ["hit_id,x,y,z,volume_id,layer_id,module_id"]
    for i, (layer, phi, z, dr) in enumerate(hits):
        r = RADII[layer] + dr
        volume, layer_id = BARREL_LAYERS[layer]
        lines.append(f"{i + 1},{r * math.cos(phi)!r},{r * math.sin(phi)!r},{z!r},{volume},{layer_id},0")
    event = event_from_bytes(1, {"hits": ("h.csv", ("\n".join(lines) + "\n").encode())})
    converted = convert_event(event, CONFIG, 0)
    layer, r, phi, z = unpack_tracker(converted.fragments, CONFIG.tracker)
    expected = [hits[h - 1] for h in converted.meta["trackml_hits"]["hit_id"]]
    assert sorted(converted.meta["trackml_hits"]["hit_id"]) == list(range(1, len(hits) + 1))
    assert layer.tolist() == [h[0] for h in expected]
    assert np.array_equal(r, RADII[layer])
    assert np.all(phi_difference(phi, np.array([h[1] for h in expected])) < 2e-6)
    assert np.all(np.abs(z - np.array([h[2] for h in expected], dtype=np.float64)) < 3e-4)


TOKENS = st.sampled_from(["1", "0", "-1", "2", "8", "13", "17", "7", "4", "1.5", "nan", "inf", "", "x", "1e400",
                          "99999999999999999999", " 3", "4503599627370497", ",", "\n", "hit_id", "\r\n", "\xff"])


@st.composite
def damaged_event(draw: st.DrawFn) -> dict[str, tuple[str, bytes]]:
    """The small valid event with a few edits in one or more of its tables."""
    parts = {part: bytearray(data) for part, (_, data) in small_parts().items()}
    for _ in range(draw(st.integers(1, 4), label="edits")):
        part = draw(st.sampled_from(sorted(parts)), label="part")
        data = parts[part]
        pos = draw(st.integers(0, len(data)), label="pos")
        cut = draw(st.integers(0, 12), label="cut")
        token = draw(st.one_of(TOKENS, st.text(max_size=3)), label="insert")
        data[pos:pos + cut] = token.encode("utf-8", "surrogatepass") if token != "\xff" else b"\xff"
    return {part: (f"event000000007-{part}.csv", bytes(data)) for part, data in parts.items()}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(damaged_event())
def test_fuzz_damaged_tables_raise_only_trackml_errors(parts: dict[str, tuple[str, bytes]]) -> None:
    try:
        converted = convert_event(event_from_bytes(7, parts), CONFIG, 0)
    except TrackmlError as err:
        assert re.match(r"(event000000007-\w+\.csv: |event 000000007)", str(err)), str(err)
        return
    assert [f.header.source_id for f in converted.fragments] == source_ids(CONFIG)
    assert len(converted.meta["trackml_hits"]["hit_id"]) == converted.tracker_hits


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(SMALL)), st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_fuzz_random_bytes_as_a_table_raise_only_trackml_errors(part: str, data: bytes) -> None:
    parts = small_parts()
    parts[part] = (parts[part][0], data)
    try:
        convert_event(event_from_bytes(7, parts), CONFIG, 0)
    except TrackmlError:
        pass
