"""Replay of recordings through the real farm: same decisions as the live run, output
streams replay to the same decisions, loops keep ids unique, real CMS events all decided."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from farm.one_host import run_farm
from tests.integration.test_farm_run import REFERENCE_EVENTS
from trigger_sim.config import REPO_ROOT, as_dict, load_config, with_overrides
from trigger_sim.recording import RecordReader, RecordWriter
from trigger_sim.simulation import event_fragments

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
CMS_FILE = REPO_ROOT / "tests" / "data" / "cms-ispy" / "MinimumBias_Run2012C_0_first5.ig"


def config(**sections):
    return with_overrides(with_overrides(load_config(), readout={"rate_hz": 60.0}, worker={"count": 2}), **sections)


def record(path: Path, n: int) -> None:
    cfg = config()
    with RecordWriter(path, cfg.run.run_number, "generated", as_dict(cfg)) as writer:
        for l1_id in range(n):
            writer.write_event(l1_id, {}, event_fragments(cfg, l1_id, 0))


def chains_by_id(folder: Path) -> dict[int, tuple[str, ...]]:
    out = {}
    for path in folder.glob("*.tsrec"):
        for r in RecordReader(path):
            out[r.l1_id] = tuple(r.meta["chains"])
    return out


def test_replay_decides_like_the_live_run_and_streams_replay_identically(tmp_path, triton_server, reference_run):
    n = REFERENCE_EVENTS
    record(tmp_path / "events.tsrec", n)
    url = {"triton_url": triton_server.grpc_url}
    live = reference_run  # the session's live run of the same events (the same configuration, a 400 ms deadline)
    first = run_farm(config(inference=url), replay=tmp_path / "events.tsrec", output_dir=tmp_path / "out1")
    assert first["events"]["l1_accepted"] == n and first["events"]["lost"] == 0
    assert first["events"]["decision_digest"] == live["events"]["decision_digest"]
    assert first["inference"]["triton_calls"] > 0
    # the Main stream replays to the same decision for each of its events
    second = run_farm(config(inference=url), replay=tmp_path / "out1" / "Main.tsrec", output_dir=tmp_path / "out2")
    assert second["events"]["lost"] == 0 and second["events"]["accepted"] == first["streams"]["Main"]
    before, after = chains_by_id(tmp_path / "out1"), chains_by_id(tmp_path / "out2")
    assert after and all(after[i] == before[i] for i in after)


def test_loop_keeps_ids_unique_with_bursts(tmp_path, triton_server):
    record(tmp_path / "small.tsrec", 40)
    summary = run_farm(config(inference={"triton_url": triton_server.grpc_url}, readout={"pattern": "burst", "rate_hz": 60.0}),
                       n_events=100, replay=tmp_path / "small.tsrec", loop=True, output_dir=None)
    ev = summary["events"]
    assert ev["l1_accepted"] == 100 and ev["lost"] == 0 and ev["duplicate_results_refused"] == 0
    assert ev["accepted"] + ev["rejected"] + ev["debug"] == 100


def test_file_cut_short_replays_to_its_last_complete_record(tmp_path, triton_server):
    path = tmp_path / "cut.tsrec"
    record(path, 30)
    reader = RecordReader(path)
    offsets = [offset for _, offset in reader.index]
    os.truncate(path, offsets[20] + 10)  # inside record 20
    summary = run_farm(config(inference={"triton_url": triton_server.grpc_url}), replay=path, output_dir=None)
    assert summary["events"]["l1_accepted"] == 20 and summary["events"]["lost"] == 0


def test_every_imported_cms_event_gets_a_decision(tmp_path, triton_server):
    from trigger_sim.importers.ispy_convert import import_ispy

    out = tmp_path / "cms.tsrec"
    import_ispy(CMS_FILE, out, load_config())
    n = len(RecordReader(out))
    summary = run_farm(config(inference={"triton_url": triton_server.grpc_url}), replay=out, output_dir=None)
    ev = summary["events"]
    assert n == 5 and ev["l1_accepted"] == n and ev["lost"] == 0
    assert ev["accepted"] + ev["rejected"] + ev["debug"] == n and ev["debug"] == 0


def test_long_looped_replay_with_sparse_ids_counts_every_accept():
    """6,000 replayed ids, nearly none consecutive: the readout reports them as ranges in more
    than one chunk (the long version, 300,000 events, runs from scripts/fault_suite.py)."""
    from farm import fault_scenarios as fs

    r = fs.looped_replay(6000)
    ev = r.summary["events"]
    assert ev["l1_id_chunks"] >= 2, "the readout should have needed more than one chunk of id ranges"
    assert ev["l1_count_known"] and ev["l1_accepted"] == 6000, r.summary["problems"]
    assert ev["lost"] == 0 and ev["duplicate_results_refused"] == 0
    assert ev["accepted"] + ev["rejected"] + ev["debug"] == 6000
    assert r.summary["collector"]["bad_messages"] == 0
