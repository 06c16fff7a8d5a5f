"""Tests of trigger_sim.menu: loading menus and deciding events."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_sim.config import CONFIG_DIR
from trigger_sim.errors import ConfigError
from trigger_sim.kernels import (
    CLUSTER_ET,
    CLUSTER_HAD_ET,
    CLUSTER_ISO_ET,
    JET_EM_FRACTION,
    JET_ETA,
    JET_PT,
    N_CLUSTER_COLUMNS,
    N_JET_COLUMNS,
    N_TRACK_COLUMNS,
    TRACK_PT,
)
from trigger_sim.menu import (
    DEBUG_STREAMS,
    SELECTIONS,
    Chain,
    Menu,
    TriggerObjects,
    decide,
    load_menu,
    missing_et_gev,
    passes,
    prescale_keeps,
)

REAL_MENU = CONFIG_DIR / "menu.toml"
COMPARE_MENU = CONFIG_DIR / "menu_cms_compare.toml"


def jets_with_pt(*pts: float) -> np.ndarray:
    jets = np.zeros((len(pts), N_JET_COLUMNS), np.float32)
    jets[:, JET_PT] = pts
    jets[:, JET_ETA] = 0.5
    return jets


def scores(*values: float) -> np.ndarray:
    return np.array(values, np.float32).reshape(-1, 1)


def write(tmp_path: Path, text: str, name: str = "menu.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


CHAIN_OK = 'name = "c1"\nselection = "all"\nstreams = ["Main"]\n'


# --- loading --------------------------------------------------------------------------------


def test_real_menu_loads():
    menu = load_menu(REAL_MENU)
    names = [c.name for c in menu.chains]
    assert names == ["HLT_2tau25_tagged", "HLT_e25_tight", "HLT_j150", "HLT_ht250", "HLT_2trk10",
                     "HLT_tau40_tagged_prescaled", "HLT_noalg_mb"]
    by_name = {c.name: c for c in menu.chains}
    assert by_name["HLT_2tau25_tagged"] == Chain(
        "HLT_2tau25_tagged", "jets", ("Main",), min_pt_gev=25.0, min_count=2, min_score=0.9
    )
    assert by_name["HLT_ht250"].selection == "ht" and by_name["HLT_ht250"].min_ht_gev == 250.0
    assert by_name["HLT_noalg_mb"].prescale == 50
    assert menu.streams == ("Main", "JetMonitor", "MinBias")
    assert menu.uses_tagger
    assert not set(menu.streams) & set(DEBUG_STREAMS)


def test_unknown_key_in_a_chain_names_file_and_key(tmp_path):
    path = write(tmp_path, "[[chain]]\n" + CHAIN_OK + "\n[[chain]]\n" + CHAIN_OK.replace("c1", "c2") + "min_pt = 5.0\n")
    with pytest.raises(ConfigError) as info:
        load_menu(path)
    msg = str(info.value)
    assert str(path) in msg
    assert "chain[1].min_pt" in msg


def test_unknown_top_level_key(tmp_path):
    path = write(tmp_path, "version = 2\n[[chain]]\n" + CHAIN_OK)
    with pytest.raises(ConfigError, match="version") as info:
        load_menu(path)
    assert str(path) in str(info.value)


def test_empty_menu_rejected(tmp_path):
    with pytest.raises(ConfigError, match="no \\[\\[chain\\]\\]"):
        load_menu(write(tmp_path, "# nothing\n"))


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_menu(tmp_path / "absent.toml")
    with pytest.raises(ConfigError, match="TOML"):
        load_menu(write(tmp_path, "[[chain]\nname = 1\n"))


def test_bad_selection_kind(tmp_path):
    path = write(tmp_path, "[[chain]]\n" + CHAIN_OK.replace('"all"', '"muons"'))
    with pytest.raises(ConfigError, match="muons") as info:
        load_menu(path)
    assert str(path) in str(info.value)


def test_duplicate_chain_names(tmp_path):
    path = write(tmp_path, "[[chain]]\n" + CHAIN_OK + "[[chain]]\n" + CHAIN_OK)
    with pytest.raises(ConfigError, match="unique"):
        load_menu(path)


@pytest.mark.parametrize("stream", DEBUG_STREAMS)
def test_debug_stream_is_not_a_chain_output(tmp_path, stream):
    path = write(tmp_path, "[[chain]]\n" + CHAIN_OK.replace('["Main"]', f'["Main", "{stream}"]'))
    with pytest.raises(ConfigError, match=stream):
        load_menu(path)


@pytest.mark.parametrize(
    "line, key",
    [
        ('prescale = "10"', "chain[0].prescale"),
        ("prescale = 1.5", "chain[0].prescale"),
        ('min_pt_gev = "high"', "chain[0].min_pt_gev"),
        ('streams = "Main"', "chain[0].streams"),
        ("min_count = true", "chain[0].min_count"),
    ],
)
def test_wrong_types_name_the_key(tmp_path, line, key):
    text = "[[chain]]\n" + "\n".join(
        ln for ln in CHAIN_OK.splitlines() if not ln.startswith(line.split(" =")[0])
    ) + "\n" + line + "\n"
    with pytest.raises(ConfigError, match=key.replace("[", "\\[").replace("]", "\\]")):
        load_menu(write(tmp_path, text))


@pytest.mark.parametrize("line", ["prescale = 0", "min_count = 0", "streams = []"])
def test_invalid_values(tmp_path, line):
    text = "[[chain]]\n" + CHAIN_OK.replace('streams = ["Main"]\n', "" if "streams" in line else 'streams = ["Main"]\n') + line + "\n"
    with pytest.raises(ConfigError):
        load_menu(write(tmp_path, text))


@pytest.mark.parametrize("drop", ["name", "selection", "streams"])
def test_missing_required_key_is_a_config_error(tmp_path, drop):
    text = "[[chain]]\n" + "\n".join(ln for ln in CHAIN_OK.splitlines() if not ln.startswith(drop)) + "\n"
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_menu(path)
    assert str(path) in str(info.value) and drop in str(info.value)


def test_chain_as_single_table_is_a_config_error(tmp_path):
    path = write(tmp_path, "[chain]\n" + CHAIN_OK)
    with pytest.raises(ConfigError) as info:
        load_menu(path)
    assert str(path) in str(info.value)


# --- decide -------------------------------------------------------------------------------------


def decide_one(chain: Chain, jets: np.ndarray, sc: np.ndarray | None = None, l1_id: int = 0) -> bool:
    if sc is None:
        sc = np.zeros((len(jets), 1), np.float32)
    decision = decide(Menu((chain,)), l1_id, jets, sc)
    assert decision.accepted == bool(decision.chains)
    return decision.chains == (chain.name,)


def test_jets_selection_counts_jets_strictly_above_threshold():
    c = Chain("j", "jets", ("S",), min_pt_gev=50.0, min_count=2)
    assert decide_one(c, jets_with_pt(60.0, 51.0))
    assert decide_one(c, jets_with_pt(10.0, 60.0, 20.0, 55.0))
    assert not decide_one(c, jets_with_pt(60.0, 50.0))  # 50 is not above 50
    assert not decide_one(c, jets_with_pt(200.0))
    assert not decide_one(c, jets_with_pt())


def test_jets_selection_with_tagger_score():
    c = Chain("jt", "jets", ("S",), min_pt_gev=40.0, min_count=2, min_score=0.5)
    jets = jets_with_pt(100.0, 90.0, 80.0)
    assert decide_one(c, jets, scores(0.9, 0.1, 0.5))  # score >= 0.5 counts
    assert not decide_one(c, jets, scores(0.9, 0.1, 0.49))
    # a well-tagged jet below the pT threshold does not count
    assert not decide_one(c, jets_with_pt(100.0, 30.0), scores(0.9, 0.99))
    # without min_score the scores are ignored
    c0 = Chain("j", "jets", ("S",), min_pt_gev=40.0, min_count=2)
    assert decide_one(c0, jets, scores(0.0, 0.0, 0.0))


def test_ht_selection_sums_jets_above_threshold():
    c = Chain("ht", "ht", ("S",), min_pt_gev=30.0, min_ht_gev=250.0)
    assert decide_one(c, jets_with_pt(200.0, 50.0))  # exactly 250
    assert not decide_one(c, jets_with_pt(200.0, 49.0))
    assert not decide_one(c, jets_with_pt(200.0, 30.0, 29.0, 25.0))  # 30 and below do not count
    assert decide_one(c, jets_with_pt(100.0, 100.0, 31.0, 30.5))
    assert not decide_one(c, jets_with_pt())


@pytest.mark.parametrize("chain, measured_passes, subtracted_passes", [
    (Chain("j", "jets", ("S",), min_pt_gev=40.0), True, False),
    (Chain("ht", "ht", ("S",), min_pt_gev=30.0, min_ht_gev=90.0), True, False),
    (Chain("em", "em", ("S",), min_pt_gev=40.0), True, False),
    (Chain("tau", "jets", ("S",), min_pt_gev=40.0, min_score=0.5), True, True),  # the tagger's pT scale
])
def test_untagged_jet_chains_cut_on_subtracted_jets_and_tagged_chains_on_measured_ones(chain, measured_passes, subtracted_passes):
    measured, subtracted = jets_with_pt(50.0, 45.0), jets_with_pt(35.0, 30.0)
    assert passes(chain, TriggerObjects(measured, scores(0.9, 0.9))) is measured_passes
    assert passes(chain, TriggerObjects(measured, scores(0.9, 0.9), subtracted_jets=subtracted)) is subtracted_passes


def test_all_selection_passes_everything():
    c = Chain("mb", "all", ("S",))
    assert decide_one(c, jets_with_pt())
    assert decide_one(c, jets_with_pt(1.0, 2.0))


def test_real_menu_decisions():
    menu = load_menu(REAL_MENU)
    # l1 ids for which neither prescaled chain keeps the event
    by_name = {c.name: c for c in menu.chains}
    quiet = [i for i in range(200) if not any(prescale_keeps(i, c) for c in menu.chains if c.prescale > 1)]
    l1 = quiet[0]
    d = decide(menu, l1, jets_with_pt(160.0), scores(0.0))
    assert d.chains == ("HLT_j150",) and d.streams == ("Main",)
    d = decide(menu, l1, jets_with_pt(30.0, 26.0), scores(0.95, 0.9))
    assert d.chains == ("HLT_2tau25_tagged",)
    d = decide(menu, l1, jets_with_pt(30.0, 26.0), scores(0.95, 0.89))
    assert d.chains == () and not d.accepted and d.streams == ()
    d = decide(menu, l1, jets_with_pt(140.0, 90.0, 40.0), scores(0.1, 0.1, 0.1))
    assert d.chains == ("HLT_ht250",)
    # an id kept by the minimum-bias prescale gives MinBias even with no jets
    mb = next(i for i in range(10_000) if prescale_keeps(i, by_name["HLT_noalg_mb"]))
    d = decide(menu, mb, jets_with_pt(), np.zeros((0, 1), np.float32))
    assert "HLT_noalg_mb" in d.chains and "MinBias" in d.streams


def test_streams_are_the_union_of_passed_chains_without_duplicates():
    menu = Menu(
        (
            Chain("a", "all", ("Main", "Express")),
            Chain("b", "all", ("Express", "Calib")),
            Chain("c", "jets", ("Never",), min_pt_gev=1e9),
            Chain("d", "all", ("Main",)),
        )
    )
    d = decide(menu, 3, jets_with_pt(10.0), scores(0.5))
    assert d.chains == ("a", "b", "d")
    assert d.streams == ("Main", "Express", "Calib")
    assert menu.streams == ("Main", "Express", "Calib", "Never")


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(0, 500, width=32), max_size=8),
    st.lists(st.sets(st.sampled_from(["A", "B", "C", "D"]), min_size=1), min_size=1, max_size=5),
    st.integers(0, 2**40),
)
def test_decision_streams_property(pts, stream_sets, l1_id):
    chains = tuple(
        Chain(f"c{i}", "jets", tuple(sorted(s)), min_pt_gev=50.0 * i, min_count=1)
        for i, s in enumerate(stream_sets)
    )
    menu = Menu(chains)
    jets = jets_with_pt(*pts)
    d = decide(menu, l1_id, jets, np.zeros((len(pts), 1), np.float32))
    expected_chains = tuple(c.name for c in chains if any(p > c.min_pt_gev for p in pts))
    assert d.chains == expected_chains
    expected_streams = set().union(*(set(c.streams) for c in chains if c.name in expected_chains))
    assert len(d.streams) == len(set(d.streams))
    assert set(d.streams) == expected_streams
    assert d.accepted == bool(expected_streams)


# --- prescales -----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["HLT_noalg_mb", "HLT_j40_tagged_L1prescaled", "X"])
@pytest.mark.parametrize("prescale", [2, 3, 10, 50])
def test_prescale_keeps_about_one_in_n(name, prescale):
    chain = Chain(name, "all", ("S",), prescale=prescale)
    n = 20_000
    kept = sum(prescale_keeps(i, chain) for i in range(n))
    p = 1 / prescale
    sigma = math.sqrt(n * p * (1 - p))
    assert abs(kept - n * p) < 5 * sigma


def test_prescale_one_keeps_everything():
    chain = Chain("a", "all", ("S",))
    assert all(prescale_keeps(i, chain) for i in range(1000))


def test_prescale_decision_is_deterministic_and_depends_on_the_chain():
    a = Chain("A", "all", ("S",), prescale=10)
    a_again = Chain("A", "all", ("Other",), prescale=10)
    b = Chain("B", "all", ("S",), prescale=10)
    ids = range(5000)
    first = [prescale_keeps(i, a) for i in ids]
    assert first == [prescale_keeps(i, a) for i in ids]
    assert first == [prescale_keeps(i, a_again) for i in ids]  # only name and id matter
    assert first != [prescale_keeps(i, b) for i in ids]
    # via decide: the same event is decided the same way every time
    menu = Menu((a,))
    jets = jets_with_pt()
    none = np.zeros((0, 1), np.float32)
    assert [decide(menu, i, jets, none).accepted for i in ids] == first


def test_prescale_applies_after_selection():
    c = Chain("p", "jets", ("S",), min_pt_gev=100.0, prescale=3)
    kept_ids = [i for i in range(100) if prescale_keeps(i, c)]
    assert kept_ids
    for i in kept_ids:
        assert decide_one(c, jets_with_pt(150.0), l1_id=i)
        assert not decide_one(c, jets_with_pt(50.0), l1_id=i)
    dropped = [i for i in range(100) if not prescale_keeps(i, c)]
    assert not any(decide_one(c, jets_with_pt(150.0), l1_id=i) for i in dropped)


# --- met and em selections ------------------------------------------------------------------------


def test_met_selection_compares_missing_et_with_its_threshold():
    c = Chain("m", "met", ("S",), min_met_gev=120.0)
    no_jets, no_scores = jets_with_pt(), scores()
    assert decide(Menu((c,)), 0, no_jets, no_scores, met_gev=120.0).chains == ("m",)  # at least the threshold
    assert decide(Menu((c,)), 0, jets_with_pt(500.0), scores(0.0), met_gev=119.9).chains == ()
    with pytest.raises(ValueError, match="missing ET"):
        decide(Menu((c,)), 0, no_jets, no_scores)
    # menus without a met chain do not need it
    assert decide(Menu((Chain("mb", "all", ("S",)),)), 0, no_jets, no_scores).chains == ("mb",)
    assert Menu((c,)).uses_met and not load_menu(REAL_MENU).uses_met


def test_missing_et_is_the_magnitude_of_the_vector_sum_of_tower_et():
    eta, phi = np.array([-1.0, 0.0, 1.5]), np.array([-np.pi / 2, 0.0, np.pi / 2, np.pi])
    em, had = np.zeros((3, 4), np.float32), np.zeros((3, 4), np.float32)
    assert missing_et_gev(em, had, eta, phi) == 0.0
    em[1, 1], had[1, 1] = 30.0, 20.0  # 50 GeV ET at eta 0, phi 0
    assert missing_et_gev(em, had, eta, phi) == pytest.approx(50.0)
    had[2, 3] = 50.0 * math.cosh(1.5)  # 50 GeV ET back to back: balanced
    assert missing_et_gev(em, had, eta, phi) == pytest.approx(0.0, abs=1e-4)
    em[0, 2] = 40.0 * math.cosh(-1.0)  # 40 GeV ET at phi pi/2
    assert missing_et_gev(em, had, eta, phi) == pytest.approx(40.0, rel=1e-6)


@given(st.lists(st.floats(0.0, 500.0, width=32), min_size=12, max_size=12))
@settings(max_examples=50, deadline=None)
def test_missing_et_equals_an_explicit_sum(energies):
    eta, phi = np.array([-2.0, 0.3, 2.2]), np.array([-2.5, -0.5, 1.0, 3.0])
    em = np.array(energies, np.float32).reshape(3, 4)
    had = em[::-1].copy()
    px = sum((float(em[i, j]) + float(had[i, j])) / math.cosh(eta[i]) * math.cos(phi[j]) for i in range(3) for j in range(4))
    py = sum((float(em[i, j]) + float(had[i, j])) / math.cosh(eta[i]) * math.sin(phi[j]) for i in range(3) for j in range(4))
    assert missing_et_gev(em, had, eta, phi) == pytest.approx(math.hypot(px, py), rel=1e-9, abs=1e-6)


def test_em_selection_counts_jets_above_threshold_with_enough_em_fraction():
    c = Chain("e", "em", ("S",), min_pt_gev=27.0, min_em_fraction=0.9)
    jets = jets_with_pt(100.0, 30.0, 28.0)
    jets[:, JET_EM_FRACTION] = [0.5, 0.89, 0.9]
    assert decide_one(c, jets)  # the 28 GeV jet at 0.9
    jets[2, JET_EM_FRACTION] = 0.85
    assert not decide_one(c, jets)
    assert not decide_one(dataclasses.replace(c, min_count=2), jets_with_pt(50.0, 40.0))  # em_fraction 0
    assert not decide_one(c, jets_with_pt())


def test_em_fraction_must_be_a_fraction(tmp_path):
    path = write(tmp_path, "[[chain]]\n" + CHAIN_OK.replace('"all"', '"em"') + "min_em_fraction = 1.5\n")
    with pytest.raises(ConfigError, match="min_em_fraction"):
        load_menu(path)


def test_comparison_menu_loads_with_met_and_em_chains():
    menu = load_menu(COMPARE_MENU)
    kinds = {c.selection for c in menu.chains}
    assert {"jets", "ht", "met", "em"} <= kinds
    assert menu.uses_met and not menu.uses_tagger
    assert all(c.prescale == 1 for c in menu.chains)


# --- tracks and electron selections, TriggerObjects ------------------------------------------------

def tracks_with_pt(*pts: float) -> np.ndarray:
    tracks = np.zeros((len(pts), N_TRACK_COLUMNS))
    tracks[:, TRACK_PT] = pts
    return tracks


def clusters_of(*rows: tuple[float, float, float]) -> np.ndarray:
    """(ET, hadronic ET behind, ET around) per cluster."""
    clusters = np.zeros((len(rows), N_CLUSTER_COLUMNS), np.float32)
    for i, (et, had, iso) in enumerate(rows):
        clusters[i, CLUSTER_ET], clusters[i, CLUSTER_HAD_ET], clusters[i, CLUSTER_ISO_ET] = et, had, iso
    return clusters


def objects(jets: np.ndarray | None = None, sc: np.ndarray | None = None, met: float | None = None,
            tracks: np.ndarray | None = None, clusters: np.ndarray | None = None,
            track_pt: list[float] | None = None) -> TriggerObjects:
    jets = jets_with_pt() if jets is None else jets
    kw = {}
    if tracks is not None:
        kw["tracks"] = tracks
    if clusters is not None:
        kw["clusters"] = clusters
        kw["cluster_track_pt_gev"] = np.asarray(track_pt if track_pt is not None else [0.0] * len(clusters), np.float64)
    return TriggerObjects(jets, np.zeros((len(jets), 1), np.float32) if sc is None else sc, met, **kw)


def test_selection_kinds_include_tracks_and_electron():
    assert {"tracks", "electron"} <= set(SELECTIONS)
    assert Menu((Chain("t", "tracks", ("S",)),)).uses_tracks
    assert Menu((Chain("e", "electron", ("S",)),)).uses_tracks
    assert not Menu((Chain("j", "jets", ("S",)), Chain("m", "met", ("S",)))).uses_tracks


def test_tracks_selection_counts_tracks_strictly_above_threshold():
    c = Chain("t", "tracks", ("S",), min_pt_gev=10.0, min_count=2)
    assert passes(c, objects(tracks=tracks_with_pt(12.0, 10.5)))
    assert passes(c, objects(tracks=tracks_with_pt(1.0, 50.0, 3.0, 11.0)))
    assert not passes(c, objects(tracks=tracks_with_pt(12.0, 10.0)))  # 10 is not above 10
    assert not passes(c, objects(tracks=tracks_with_pt(300.0)))
    assert not passes(c, objects(tracks=tracks_with_pt(30.0, float("nan"))))  # a failed fit never counts
    assert not passes(c, objects(tracks=tracks_with_pt()))
    assert not passes(c, objects())  # the default: no tracks
    # jets do not count as tracks
    assert not passes(c, objects(jets=jets_with_pt(100.0, 100.0)))


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(st.floats(0, 100), st.just(float("nan"))), max_size=10), st.floats(0, 50), st.integers(1, 4))
def test_tracks_selection_property(pts, min_pt, min_count):
    c = Chain("t", "tracks", ("S",), min_pt_gev=min_pt, min_count=min_count)
    expected = sum(1 for p in pts if p > min_pt) >= min_count
    assert passes(c, objects(tracks=tracks_with_pt(*pts))) == expected


def test_electron_selection_applies_every_cut_to_the_same_cluster():
    c = Chain("e", "electron", ("S",), min_pt_gev=25.0, min_track_pt_gev=10.0, max_had_fraction=0.1,
              max_iso_fraction=0.2)
    good = (30.0, 2.0, 4.0)
    assert passes(c, objects(clusters=clusters_of(good), track_pt=[12.0]))
    assert passes(c, objects(clusters=clusters_of((30.0, 3.0, 6.0)), track_pt=[12.0]))  # at both limits
    assert not passes(c, objects(clusters=clusters_of((25.0, 0.0, 0.0)), track_pt=[12.0]))  # ET not above 25
    assert not passes(c, objects(clusters=clusters_of(good), track_pt=[10.0]))  # track not above 10
    assert not passes(c, objects(clusters=clusters_of(good), track_pt=[0.0]))  # no track at all
    assert not passes(c, objects(clusters=clusters_of((30.0, 3.5, 0.0)), track_pt=[12.0]))  # too much behind
    assert not passes(c, objects(clusters=clusters_of((30.0, 0.0, 6.5)), track_pt=[12.0]))  # not isolated
    # one cluster passing ET and isolation, another the track: no electron
    assert not passes(c, objects(clusters=clusters_of(good, (5.0, 0.0, 0.0)), track_pt=[0.0, 40.0]))
    assert not passes(c, objects())  # no clusters
    two = dataclasses.replace(c, min_count=2)
    assert not passes(two, objects(clusters=clusters_of(good, (80.0, 0.0, 50.0)), track_pt=[12.0, 50.0]))
    assert passes(two, objects(clusters=clusters_of(good, (80.0, 0.0, 5.0)), track_pt=[12.0, 50.0]))


def test_electron_selection_defaults_only_need_et_and_a_track():
    c = Chain("e", "electron", ("S",), min_pt_gev=20.0)
    # default max_had_fraction 1: hadronic ET up to the cluster ET; default isolation: none
    assert passes(c, objects(clusters=clusters_of((21.0, 21.0, 1000.0)), track_pt=[0.5]))
    assert not passes(c, objects(clusters=clusters_of((21.0, 21.5, 0.0)), track_pt=[0.5]))
    assert not passes(c, objects(clusters=clusters_of((21.0, 0.0, 0.0)), track_pt=[0.0]))  # min_track_pt 0: above 0


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0, 100, width=32), st.floats(0, 50, width=32), st.floats(0, 50, width=32),
                       st.floats(0, 60)), max_size=6),
    st.floats(0, 60), st.floats(0, 30), st.floats(0, 1), st.floats(0, 2), st.integers(1, 3),
)
def test_electron_selection_property(rows, min_pt, min_track_pt, max_had, max_iso, min_count):
    c = Chain("e", "electron", ("S",), min_pt_gev=min_pt, min_track_pt_gev=min_track_pt, max_had_fraction=max_had,
              max_iso_fraction=max_iso, min_count=min_count)
    clusters = clusters_of(*[r[:3] for r in rows])
    track_pt = [r[3] for r in rows]
    n = 0
    for (et, had, iso), trk in zip(clusters[:, [CLUSTER_ET, CLUSTER_HAD_ET, CLUSTER_ISO_ET]].tolist(), track_pt):
        n += et > min_pt and trk > min_track_pt and had <= max_had * et and iso <= max_iso * et
    assert passes(c, objects(clusters=clusters, track_pt=track_pt)) == (n >= min_count)


def test_trigger_objects_defaults():
    o = TriggerObjects(jets_with_pt(50.0), scores(0.3))
    assert o.met_gev is None
    assert len(o.tracks) == 0 and o.tracks.ndim == 2 and o.tracks.shape[1] > TRACK_PT
    assert len(o.clusters) == 0 and o.clusters.ndim == 2 and o.clusters.shape[1] > CLUSTER_ISO_ET
    assert len(o.cluster_track_pt_gev) == 0
    for chain in (Chain("t", "tracks", ("S",)), Chain("e", "electron", ("S",)), Chain("m", "met", ("S",))):
        if chain.selection == "met":
            with pytest.raises(ValueError, match="missing ET"):
                passes(chain, o)
        else:
            assert not passes(chain, o)


def test_load_menu_reads_the_new_keys(tmp_path):
    path = write(tmp_path, """
[[chain]]
name = "e"
selection = "electron"
min_pt_gev = 25.0
min_track_pt_gev = 10.0
max_had_fraction = 0.1
max_iso_fraction = 0.2
min_count = 2
streams = ["Main"]

[[chain]]
name = "t"
selection = "tracks"
min_pt_gev = 10.0
min_count = 2
streams = ["Main"]
""")
    menu = load_menu(path)
    assert menu.chains == (
        Chain("e", "electron", ("Main",), min_pt_gev=25.0, min_count=2, min_track_pt_gev=10.0, max_had_fraction=0.1,
              max_iso_fraction=0.2),
        Chain("t", "tracks", ("Main",), min_pt_gev=10.0, min_count=2),
    )
    assert menu.uses_tracks


chain_strategy = st.builds(
    lambda i, kind, pt, count, score, ht, met, emf, trk, had, iso, prescale: Chain(
        f"c{i}", kind, ("S",), min_pt_gev=pt, min_count=count, min_score=score, min_ht_gev=ht, min_met_gev=met,
        min_em_fraction=emf, min_track_pt_gev=trk, max_had_fraction=had, max_iso_fraction=iso, prescale=prescale),
    st.integers(0, 10**6), st.sampled_from(SELECTIONS), st.floats(0, 100), st.integers(1, 3),
    st.sampled_from([0.0, 0.3, 0.7]), st.floats(0, 300), st.floats(0, 150), st.floats(0, 1), st.floats(0, 30),
    st.floats(0, 1), st.floats(0, 1), st.integers(1, 4),
)

def jets_with_pt_and_em_fraction(rows: list[tuple[float, float, float]]) -> np.ndarray:
    jets = jets_with_pt(*[r[0] for r in rows])
    jets[:, JET_EM_FRACTION] = [r[1] for r in rows]
    return jets


objects_strategy = st.builds(
    lambda jets, met, trk, cl: objects(
        jets=jets_with_pt_and_em_fraction(jets), sc=scores(*[s for _, _, s in jets]),
        met=met, tracks=tracks_with_pt(*trk), clusters=clusters_of(*[c[:3] for c in cl]), track_pt=[c[3] for c in cl]),
    st.lists(st.tuples(st.floats(0, 200, width=32), st.floats(0, 1, width=32), st.floats(0, 1, width=32)), max_size=5),
    st.floats(0, 200), st.lists(st.floats(0, 60), max_size=5),
    st.lists(st.tuples(st.floats(0, 80, width=32), st.floats(0, 20, width=32), st.floats(0, 20, width=32),
                       st.floats(0, 40)), max_size=4),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(chain_strategy, min_size=1, max_size=6, unique_by=lambda c: c.name), objects_strategy,
       st.integers(0, 2**40))
def test_decide_is_passes_and_prescale(chains, o, l1_id):
    menu = Menu(tuple(chains))
    d = decide(menu, l1_id, o)
    expected = tuple(c.name for c in chains if passes(c, o) and prescale_keeps(l1_id, c))
    assert d.chains == expected
    assert d.streams == (("S",) if expected else ())
    # the prescale only removes: without it, every passing chain
    unprescaled = Menu(tuple(dataclasses.replace(c, prescale=1) for c in chains))
    assert decide(unprescaled, l1_id, o).chains == tuple(c.name for c in chains if passes(c, o))


@settings(max_examples=150, deadline=None)
@given(st.lists(chain_strategy.filter(lambda c: c.selection not in ("tracks", "electron")), min_size=1, max_size=6,
                unique_by=lambda c: c.name),
       objects_strategy, st.integers(0, 2**40))
def test_old_call_form_equals_trigger_objects(chains, o, l1_id):
    menu = Menu(tuple(chains))
    new = decide(menu, l1_id, TriggerObjects(o.jets, o.jet_scores, o.met_gev))
    assert decide(menu, l1_id, o.jets, o.jet_scores, o.met_gev) == new
    assert decide(menu, l1_id, o.jets, o.jet_scores, met_gev=o.met_gev) == new
    # the calorimeter-only chains ignore tracks and clusters
    assert decide(menu, l1_id, o) == new


def test_old_call_form_without_scores_means_zero_scores():
    menu = Menu((Chain("j", "jets", ("S",), min_pt_gev=10.0), Chain("jt", "jets", ("T",), min_pt_gev=10.0, min_score=0.1)))
    d = decide(menu, 0, jets_with_pt(20.0))
    assert d == decide(menu, 0, TriggerObjects(jets_with_pt(20.0), scores(0.0)))
    assert d.chains == ("j",)


# --- the real menu: every chain can pass ------------------------------------------------------------


def objects_passing(chain: Chain) -> TriggerObjects:
    """Objects built from the chain's own thresholds to pass it (and a met for menus that need one)."""
    n = chain.min_count
    pt = chain.min_pt_gev + 1.0
    if chain.selection in ("jets", "em", "all"):
        jets = jets_with_pt(*[pt] * n)
        jets[:, JET_EM_FRACTION] = max(chain.min_em_fraction, 0.5)
        return objects(jets=jets, sc=scores(*[max(chain.min_score, 0.01)] * n), met=0.0)
    if chain.selection == "ht":
        k = max(n, int(chain.min_ht_gev // pt) + 1)
        return objects(jets=jets_with_pt(*[pt] * k), met=0.0)
    if chain.selection == "met":
        return objects(met=chain.min_met_gev)
    if chain.selection == "tracks":
        return objects(tracks=tracks_with_pt(*[pt] * n), met=0.0)
    if chain.selection == "electron":
        et = pt
        had = min(chain.max_had_fraction, 1.0) * et * 0.5
        iso = 0.0
        return objects(clusters=clusters_of(*[(et, had, iso)] * n), track_pt=[chain.min_track_pt_gev + 1.0] * n, met=0.0)
    raise AssertionError(chain.selection)


def objects_failing(chain: Chain) -> TriggerObjects:
    """One object short of passing, or every object just at (not above) the pT threshold."""
    o = objects_passing(chain)
    if chain.selection == "met":
        return objects(met=chain.min_met_gev - 0.1)
    if chain.selection == "tracks":
        return dataclasses.replace(o, tracks=tracks_with_pt(*[chain.min_pt_gev] * chain.min_count))
    if chain.selection == "electron":
        return dataclasses.replace(o, cluster_track_pt_gev=np.full(chain.min_count, chain.min_track_pt_gev))
    if chain.selection == "ht":
        return objects(jets=jets_with_pt(chain.min_ht_gev - 1.0) if chain.min_ht_gev > chain.min_pt_gev + 1 else
                       jets_with_pt(chain.min_pt_gev), met=0.0)
    return dataclasses.replace(o, jets=o.jets[1:], jet_scores=o.jet_scores[1:])


def test_real_menu_loads_with_the_new_selections():
    menu = load_menu(REAL_MENU)
    kinds = {c.selection for c in menu.chains}
    assert {"tracks", "electron", "jets", "ht", "all"} <= kinds
    assert kinds <= set(SELECTIONS)
    assert menu.uses_tracks and menu.uses_tagger and not menu.uses_met
    assert not set(menu.streams) & set(DEBUG_STREAMS)
    electron = next(c for c in menu.chains if c.selection == "electron")
    assert 0 < electron.max_had_fraction < 1 and 0 < electron.max_iso_fraction < math.inf
    assert electron.min_track_pt_gev > 0


@pytest.mark.parametrize("chain", load_menu(REAL_MENU).chains, ids=lambda c: c.name)
def test_every_real_chain_can_pass(chain):
    menu = load_menu(REAL_MENU)
    o = objects_passing(chain)
    assert passes(chain, o)
    kept = next(i for i in range(10_000) if prescale_keeps(i, chain))
    d = decide(menu, kept, o)
    assert chain.name in d.chains and set(chain.streams) <= set(d.streams)
    if chain.selection != "all":
        assert not passes(chain, objects_failing(chain))
