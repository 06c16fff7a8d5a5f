"""The per-event table of a real farm run: the summary's figures recomputed from it.

A short run writes events.parquet into its output folder; read back with pandas it has one
row per Level-1 accept, and its outcomes, streams, chains, inference paths, per-worker counts
and every step's latency percentiles (numpy's linear percentiles, as `trigger_sim.latency`
computes them) equal the summary's exactly. A second run without an output folder writes a
ROOT file where asked, read back with uproot (skipped without it).
"""

from __future__ import annotations

from collections import Counter
import numpy as np
import pytest

from farm.summary import LATENCY_ORDER
from farm.one_host import run_farm
from trigger_sim.config import load_config, with_overrides
from trigger_sim.event_table_io import LIST_SEPARATOR
from trigger_sim.latency import PERCENTILES

pd = pytest.importorskip("pandas", reason="pandas reads the table back: pip install -e '.[test]'")
pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

N_EVENTS = 120


def config(triton_server):
    return with_overrides(load_config(), readout={"rate_hz": 60.0}, worker={"count": 2},
                          inference={"triton_url": triton_server.grpc_url})


def check_summary_from_table(df, summary: dict) -> None:
    """Every figure of the summary that the table holds, recomputed from its rows."""
    events = summary["events"]
    assert events["lost"] == 0 and events["l1_count_known"], (summary["problems"], summary["collector"])
    assert len(df) == events["l1_accepted"] and df["l1_id"].is_unique  # one row per Level-1 accept
    outcomes = Counter(df["outcome"])
    assert {k: outcomes[k] for k in ("accepted", "rejected", "debug")} == {k: events[k] for k in ("accepted", "rejected", "debug")}
    accepted, debug = df[df["outcome"] == "accepted"], df[df["outcome"] == "debug"]
    assert Counter(s for streams in accepted["streams"] for s in streams) == summary["streams"]
    assert Counter(c for chains in df["chains"] for c in chains) == summary["chains"]
    assert Counter(f"{streams[0]}: {reason}" for streams, reason in zip(debug["streams"], debug["debug_reason"])) == summary["debug_streams"]
    paths = Counter(df["inference_path"])
    inference = summary["inference"]
    assert (paths["triton"], paths["fallback"], paths["skipped"]) == (
        inference["triton_calls"], inference["fallback_calls"], inference["skipped_nothing_to_infer"])
    assert Counter(df["fallback_reason"][df["fallback_reason"] != ""]) == inference["fallback_reasons"]
    per_worker = Counter(df["worker"][df["worker"] != ""])
    assert per_worker == {w: v["decided"] for w, v in summary["workers"]["per_worker"].items() if v["decided"]}
    for model in inference["models"]:
        served = df[f"{model}_path"] == "triton"
        assert (df[f"{model}_server"][served] == inference["server"]).all()
    for step in LATENCY_ORDER:
        want = summary["latency_ms"].get(step, {"n": 0})
        values = df[f"{step}_ms"].dropna().to_numpy(np.float64)
        assert len(values) == want["n"], step
        if len(values):
            got = dict(zip((f"p{p:g}" for p in PERCENTILES), np.percentile(values, PERCENTILES)))
            assert {p: got[p] for p in ("p50", "p99")} == {p: want[p] for p in ("p50", "p99")}, step
            assert got["p90"] == want["p90"] and got["p99.9"] == want["p99.9"] and values.max() == want["max"], step
            assert values.mean() == pytest.approx(want["mean"]), step
    assert (df["l1_time_ns"] > 0).all() and (df["decided_ns"] >= df["l1_time_ns"]).all()
    sizes = df[df["outcome"] != "debug"]
    assert (sizes["n_hits"] > 0).all() and (sizes["attempt"] >= 1).all()


def test_summary_recomputed_from_the_parquet_table(tmp_path, triton_server):
    summary = run_farm(config(triton_server), n_events=N_EVENTS, output_dir=tmp_path / "run")
    path = tmp_path / "run" / "events.parquet"
    assert summary["output"]["events_table"] == str(path)
    df = pd.read_parquet(path)
    check_summary_from_table(df, summary)
    assert df["host"].nunique() == 1


def test_root_table_without_an_output_folder(tmp_path, triton_server):
    uproot = pytest.importorskip("uproot", reason="the ROOT table is optional: pip install -e '.[root]'")
    path = tmp_path / "tables" / "events.root"
    summary = run_farm(config(triton_server), n_events=N_EVENTS, output_dir=None, events_table=path)
    assert summary["output"]["events_table"] == str(path) and summary["output"]["directory"] is None
    tree = uproot.open(path)["events"]
    assert tree.classname == "TTree"
    df = pd.DataFrame(tree.arrays(library="np"))
    for name in ("chains", "streams"):  # a flat tree: lists are text joined by commas
        df[name] = [tuple(v.split(LIST_SEPARATOR)) if v else () for v in df[name]]
    check_summary_from_table(df, summary)

