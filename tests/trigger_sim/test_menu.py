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
from trigger_sim.kernels import JET_EM_FRACTION, JET_ETA, JET_PT, N_JET_COLUMNS
from trigger_sim.menu import DEBUG_STREAMS, Chain, Menu, decide, load_menu, missing_et_gev, prescale_keeps

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
    assert names == ["HLT_j150", "HLT_2j60_tagged", "HLT_ht250", "HLT_j40_tagged_L1prescaled", "HLT_noalg_mb"]
    by_name = {c.name: c for c in menu.chains}
    assert by_name["HLT_2j60_tagged"] == Chain(
        "HLT_2j60_tagged", "jets", ("Main",), min_pt_gev=60.0, min_count=2, min_score=0.5
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
    d = decide(menu, l1, jets_with_pt(70.0, 65.0), scores(0.6, 0.5))
    assert d.chains == ("HLT_2j60_tagged",)
    d = decide(menu, l1, jets_with_pt(70.0, 65.0), scores(0.6, 0.4))
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
