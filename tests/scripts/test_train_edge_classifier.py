"""scripts/train_edge_classifier.py --recording: fine-tuning on recorded events with truth."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trigger_sim.config import FarmConfig, with_overrides
from trigger_sim.models.edge_classifier import WEIGHTS_PATH, load_weights
from trigger_sim.recording import write_generated

pytest.importorskip("torch", reason="fine-tuning needs torch (the `train` extra)")

REPO_ROOT = Path(__file__).resolve().parents[2]
SCRIPT = REPO_ROOT / "scripts" / "train_edge_classifier.py"
CONFIG = with_overrides(FarmConfig(), run={"seed": 4242}, physics={"pileup_mean": 2.0})


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _run(*args: str | Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True, timeout=240,
                          env=env, cwd=REPO_ROOT)


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("recordings")
    paths = {"truth": d / "truth.tsrec", "held_out": d / "held_out.tsrec", "no_truth": d / "no_truth.tsrec"}
    write_generated(CONFIG, paths["truth"], 3, truth=True)
    write_generated(with_overrides(CONFIG, run={"seed": 4343}), paths["held_out"], 2, truth=True)
    write_generated(CONFIG, paths["no_truth"], 2, truth=False)
    return paths


@pytest.mark.timeout(300)
def test_fine_tunes_into_the_named_folder_and_leaves_the_shipped_model(recordings, tmp_path):
    shipped = _digest(WEIGHTS_PATH)
    out = tmp_path / "tuned"
    done = _run("--recording", recordings["truth"], "--held-out-recording", recordings["held_out"], "--epochs", "1",
                "--out", out)
    assert done.returncode == 0, done.stderr
    tuned = load_weights(out / "weights.npz")
    assert _digest(out / "weights.npz") != shipped  # it trained: one epoch moves the weights
    assert tuned.hidden == load_weights(WEIGHTS_PATH).hidden
    report = json.loads((out / "fine_tune.json").read_text())
    assert report["measured_on"] == "held-out" and set(report["figures"]) == {"initial", "fine_tuned"}
    assert 0.0 < report["working_point"] < 1.0
    assert _digest(WEIGHTS_PATH) == shipped


@pytest.mark.timeout(120)
def test_refuses_a_recording_without_truth(recordings, tmp_path):
    out = tmp_path / "tuned"
    done = _run("--recording", recordings["truth"], "--recording", recordings["no_truth"], "--out", out)
    assert done.returncode != 0
    assert "carries no truth" in done.stderr and str(recordings["no_truth"]) in done.stderr
    assert not out.exists()


@pytest.mark.timeout(120)
def test_asks_for_out_with_recording(recordings):
    shipped = _digest(WEIGHTS_PATH)
    done = _run("--recording", recordings["truth"])
    assert done.returncode == 2 and "--out is required" in done.stderr
    assert _digest(WEIGHTS_PATH) == shipped


@pytest.mark.timeout(120)
def test_refuses_held_out_events_that_are_training_events(recordings, tmp_path):
    copy = tmp_path / "copy.tsrec"
    copy.write_bytes(recordings["truth"].read_bytes())  # the same events under another name
    out = tmp_path / "tuned"
    done = _run("--recording", recordings["truth"], "--held-out-recording", copy, "--epochs", "1", "--out", out)
    assert done.returncode != 0
    assert "3 of the 3 held-out events are also training events" in done.stderr
    assert not out.exists()


def _script():
    import importlib.util

    spec = importlib.util.spec_from_file_location("train_edge_classifier", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_numpy_torch_check_compares_scores_on_a_graph_with_edges():
    """A module that differs from the weights is caught even when the first graph has no edge;
    graphs without any edge cannot check anything and are an error."""
    import dataclasses

    import numpy as np

    from trigger_sim.errors import TriggerSimError
    from trigger_sim.models.edge_classifier_torch import net_from_weights
    from trigger_sim.models.edge_training_data import Graph, simulated_graph

    script = _script()
    shipped = load_weights(WEIGHTS_PATH)
    net = net_from_weights(shipped).eval()
    graph = simulated_graph(CONFIG, 0)
    empty = Graph(graph.nodes, graph.edges[:0], graph.edge_features[:0], graph.true[:0], graph.true_hipt[:0], graph.pt_gev[:0])
    assert script.numpy_torch_difference(shipped, net, [empty, graph]) < 1e-4
    other = dataclasses.replace(shipped, score_w2=shipped.score_w2 + np.float32(0.5))  # not the module's weights
    assert script.numpy_torch_difference(other, net, [empty, graph]) > 1e-3
    with pytest.raises(TriggerSimError, match="no graph has an edge"):
        script.numpy_torch_difference(shipped, net, [empty])
