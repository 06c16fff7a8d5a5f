"""Tests of trigger_sim.cms_compare: our chains beside the real CMS HLT decisions."""

from __future__ import annotations

from pathlib import Path

import pytest

from trigger_sim.cms_compare import (
    CMS_ACCEPT,
    CMS_NOT_RUN,
    CMS_REJECT,
    DEFAULT_MENU,
    DEFAULT_PAIRS,
    Pair,
    base_name,
    cms_status,
    compare_file,
    compare_files,
    compare_records,
    load_pairs,
    matching_paths,
    offline_sequence,
)
from trigger_sim.config import FarmConfig
from trigger_sim.errors import ConfigError, TriggerSimError
from trigger_sim.importers.ispy_convert import import_ispy
from trigger_sim.menu import Chain, Menu, load_menu
from trigger_sim.recording import Record, RecordReader
from trigger_sim.simulation import event_fragments

IG_FILE = Path(__file__).resolve().parents[1] / "data" / "cms-ispy" / "MinimumBias_Run2012C_0_first5.ig"
CFG = FarmConfig()


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cms") / "mb5.tsrec"
    import_ispy(IG_FILE, path, CFG)
    return path


def test_every_real_event_is_decided_and_counts_add_up(imported: Path) -> None:
    menu = load_menu(DEFAULT_MENU)
    pairs = load_pairs(DEFAULT_PAIRS, menu)
    result = compare_file(imported, menu, pairs)
    records = list(RecordReader(imported))
    assert result.events == result.decided == len(records) == 5
    assert result.ours_debug == 0
    assert result.cms_accepted == sum(any(v for k, v in r.meta["cms_hlt"].items() if k.startswith("HLT_")) for r in records)
    assert [p.pair for p in result.pairs] == list(pairs)
    for counts in result.pairs:
        assert counts.both + counts.ours_only + counts.cms_only + counts.neither == counts.n
        assert all(any(base_name(m) == base_name(c) or c.endswith("*") for c in counts.pair.cms) for m in counts.cms_paths)
        if counts.pair.chain:
            assert counts.n + counts.cms_not_run + counts.ours_debug == result.events
            assert counts.agreement == pytest.approx((counts.both + counts.neither) / counts.n)
        else:
            assert counts.n == 0 and counts.agreement is None
    jets = next(c for c in result.pairs if c.pair.chain == "CMP_j320")
    assert jets.cms_paths == {"HLT_PFJet320_v6"} and jets.n == 5  # run in every event, version ignored


def test_version_suffixes_are_ignored_when_matching() -> None:
    names = ["HLT_PFJet320_v8", "HLT_PFJet3200_v1", "HLT_PFJet320_NoJetID_v2", "HLT_PFJet320",
             "HLT_MET120_v12", "HLT_MET120_HBHENoiseCleaned_v5", "HLT_PFMET120_v3", "HLT_Foo_vX"]
    assert base_name("HLT_PFJet320_v8") == "HLT_PFJet320" and base_name("HLT_Foo_vX") == "HLT_Foo_vX"
    assert matching_paths(["HLT_PFJet320"], names) == ["HLT_PFJet320_v8", "HLT_PFJet320"]
    assert matching_paths(["HLT_MET120*"], names) == ["HLT_MET120_v12", "HLT_MET120_HBHENoiseCleaned_v5"]
    assert matching_paths(["HLT_Foo_vX", "HLT_PFMET120"], names) == ["HLT_PFMET120_v3", "HLT_Foo_vX"]


def test_cms_status_any_run_path_accepts_and_not_run_is_apart() -> None:
    hlt = {"HLT_A_v1": False, "HLT_B_v3": True, "HLT_C_v1": True}
    assert cms_status(["HLT_A", "HLT_B"], hlt) == (CMS_ACCEPT, ["HLT_A_v1", "HLT_B_v3"])
    assert cms_status(["HLT_A"], hlt) == (CMS_REJECT, ["HLT_A_v1"])
    assert cms_status(["HLT_A", "HLT_B"], hlt, not_run=["HLT_B_v3"]) == (CMS_REJECT, ["HLT_A_v1"])
    assert cms_status(["HLT_C"], hlt, not_run=["HLT_C_v1"]) == (CMS_NOT_RUN, [])
    assert cms_status(["HLT_Absent"], hlt) == (CMS_NOT_RUN, [])


def synthetic_records() -> list[Record]:
    """Six simulated events with hand-made CMS decisions, and one whose fragments belong to another event."""
    hlt = [  # HLT_A, HLT_B (two versions), HLT_Mu, plus a DST path that is not physics
        {"HLT_A_v1": True, "HLT_B_v2": True, "HLT_Mu_v1": True},
        {"HLT_A_v1": True, "HLT_B_v2": False, "HLT_Mu_v1": False},
        {"HLT_A_v1": True, "HLT_B_v2": False, "HLT_Mu_v1": True},
        {"HLT_A_v1": False, "HLT_B_v2": False, "DST_X_v1": True},  # CMS accepted no HLT_ path
        {"HLT_A_v1": False, "HLT_B_v2": True},  # HLT_B_v2 not run: its accept does not count
        {"HLT_B_v3": False},  # HLT_A absent from this menu
        {"HLT_A_v1": True, "HLT_B_v2": False},  # our sequence fails on this one (HltError)
    ]
    not_run = {4: ["HLT_B_v2"]}
    records = []
    for l1_id, decisions in enumerate(hlt):
        fragments = event_fragments(CFG, l1_id + 1 if l1_id == 6 else l1_id, l1_time_ns=0)
        meta = {"cms_hlt": decisions, "cms_hlt_not_run": not_run.get(l1_id, [])}
        records.append(Record(l1_id, meta, fragments))
    return records


def test_synthetic_table_is_known() -> None:
    menu = Menu((Chain("always", "all", ("S",)), Chain("never", "jets", ("S",), min_pt_gev=1e9)))
    pairs = (Pair(("HLT_A",), "always"), Pair(("HLT_B",), "never"), Pair(("HLT_Mu",), not_comparable="no muon system"))
    result = compare_records("synthetic", synthetic_records(), offline_sequence(CFG, menu), pairs)
    assert (result.events, result.decided, result.ours_accepted, result.ours_debug, result.cms_accepted) == (7, 7, 6, 1, 4)
    always, never, muons = (p.to_dict() for p in result.pairs)
    pick = ("n", "both", "ours_only", "cms_only", "neither", "cms_not_run", "ours_debug", "cms_accepted")
    assert [always[k] for k in pick] == [5, 3, 2, 0, 0, 1, 1, 4]
    assert always["agreement"] == pytest.approx(0.6) and always["cms_paths_matched"] == ["HLT_A_v1"]
    assert [never[k] for k in pick] == [5, 0, 0, 1, 4, 1, 1, 1]
    assert never["agreement"] == pytest.approx(0.8) and never["cms_paths_matched"] == ["HLT_B_v2", "HLT_B_v3"]
    assert [muons[k] for k in pick] == [0, 0, 0, 0, 0, 0, 0, 2] and muons["agreement"] is None
    assert muons["not_comparable"] == "no muon system" and muons["pair"] == "- vs HLT_Mu"


def test_records_without_cms_decisions_are_refused() -> None:
    record = Record(0, {}, event_fragments(CFG, 0, l1_time_ns=0))
    menu = Menu((Chain("always", "all", ("S",)),))
    with pytest.raises(TriggerSimError, match="import ispy"):
        compare_records("generated", [record], offline_sequence(CFG, menu), (Pair(("HLT_A",), "always"),))


def test_pairs_files_are_checked(tmp_path: Path) -> None:
    menu = load_menu(DEFAULT_MENU)
    assert {p.chain for p in load_pairs(DEFAULT_PAIRS, menu) if p.chain} == {c.name for c in menu.chains}
    bad = {
        "unknown chain": '[[pair]]\nchain = "HLT_nope"\ncms = ["HLT_A"]\n',
        "both": '[[pair]]\nchain = "CMP_j320"\ncms = ["HLT_A"]\nnot_comparable = "why"\n',
        "neither": '[[pair]]\ncms = ["HLT_A"]\n',
        "no paths": '[[pair]]\nchain = "CMP_j320"\ncms = []\n',
        "no pairs": "# empty\n",
        "typo": '[[pair]]\nchian = "CMP_j320"\ncms = ["HLT_A"]\n',
    }
    for name, text in bad.items():
        path = tmp_path / f"{name.replace(' ', '_')}.toml"
        path.write_text(text)
        with pytest.raises(ConfigError, match=str(path)):
            load_pairs(path, menu)
    with pytest.raises(ConfigError, match="'CMP_j320' is not a chain of the menu"):  # the farm menu has other chains
        compare_files([], DEFAULT_MENU.with_name("menu.toml"))
