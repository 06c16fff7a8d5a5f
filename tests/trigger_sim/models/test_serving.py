"""Tests of trigger_sim.models.serving: which forward a Triton instance runs, and the GPU configs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from trigger_sim.config import MODEL_REPOSITORY
from trigger_sim.models import jet_tagger, serving
from trigger_sim.models.serving import ForwardChoice, choice_from_args, choose_forward, forward_parameter

MODELS = ("edge_classifier", "jet_tagger")


@pytest.mark.parametrize("kind, device_id, forward, expected", [
    ("CPU", "0", "", ForwardChoice("numpy", "cpu")),
    ("KIND_CPU", 0, "numpy", ForwardChoice("numpy", "cpu")),
    ("CPU", "0", "torch", ForwardChoice("torch", "cpu")),
    ("MODEL", "0", "", ForwardChoice("numpy", "cpu")),
    ("GPU", "0", "", ForwardChoice("torch", "cuda:0")),
    ("GPU", "3", "torch", ForwardChoice("torch", "cuda:3")),
    ("KIND_GPU", 1, " Torch ", ForwardChoice("torch", "cuda:1")),
])
def test_choose_forward(kind, device_id, forward, expected) -> None:
    assert choose_forward(kind, device_id, forward) == expected


@pytest.mark.parametrize("kind, forward, message", [
    ("GPU", "numpy", "KIND_GPU instance runs the torch forward"),
    ("CPU", "onnx", "FORWARD = 'onnx'"),
    ("TPU", "", "unknown model instance kind 'TPU'"),
])
def test_choose_forward_refuses_what_it_cannot_run(kind, forward, message) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        choose_forward(kind, 0, forward)


@given(st.text(max_size=8), st.integers(0, 7), st.sampled_from(["", "numpy", "torch", "gpu", "TORCH"]))
def test_choose_forward_is_numpy_on_cpu_or_torch_on_its_device(kind, device_id, forward) -> None:
    """Whatever Triton passes, the answer is a valid choice or a ValueError: never numpy on a GPU."""
    try:
        choice = choose_forward(kind, device_id, forward)
    except ValueError:
        return
    assert choice.library in serving.FORWARD_LIBRARIES
    assert (choice.library, choice.device) == ("numpy", "cpu") or choice.library == "torch"
    assert choice.device in ("cpu", f"cuda:{device_id}")


def test_choice_from_backend_args() -> None:
    config = {"name": "m", "parameters": {"FORWARD": {"string_value": "torch"}}}
    args = {"model_instance_kind": "CPU", "model_instance_device_id": "0", "model_config": json.dumps(config)}
    assert choice_from_args(args) == ForwardChoice("torch", "cpu")
    assert forward_parameter("{}") == ""
    gpu = {"model_instance_kind": "GPU", "model_instance_device_id": "2", "model_config": json.dumps({"name": "m"})}
    assert choice_from_args(gpu) == ForwardChoice("torch", "cuda:2")


def _without_comments(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines() if line.strip() and not line.lstrip().startswith("#")]


@pytest.mark.parametrize("model", MODELS)
def test_gpu_config_differs_from_the_cpu_config_only_in_the_instance_kind(model: str) -> None:
    cpu = _without_comments(MODEL_REPOSITORY / model / "config.pbtxt")
    gpu = _without_comments(MODEL_REPOSITORY / model / "configs" / "gpu.pbtxt")
    assert len(cpu) == len(gpu)
    differing = [(a.strip(), b.strip()) for a, b in zip(cpu, gpu) if a != b]
    assert differing == [("kind: KIND_CPU", "kind: KIND_GPU")]


def test_numpy_choice_runs_the_reference_forward() -> None:
    weights = jet_tagger.load_weights()
    x = np.random.default_rng(1).normal(size=(5, jet_tagger.N_FEATURES)).astype(np.float32)
    f = serving.jet_tagger_forward(weights, ForwardChoice("numpy", "cpu"))
    np.testing.assert_array_equal(f(x), jet_tagger.forward(weights, x))


def test_torch_on_a_gpu_that_is_not_there_says_what_to_do() -> None:
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("this host has a GPU")
    with pytest.raises(RuntimeError, match=r"sees 0 GPU\(s\); install a CUDA build of torch"):
        serving.require_torch_device("cuda:0")


def test_torch_jet_tagger_matches_numpy_and_is_batch_independent() -> None:
    pytest.importorskip("torch")
    from trigger_sim.models.jet_tagger_torch import TorchJetTagger

    weights = jet_tagger.load_weights()
    x = np.random.default_rng(2).normal(size=(64, jet_tagger.N_FEATURES)).astype(np.float32)
    served = serving.jet_tagger_forward(weights, ForwardChoice("torch", "cpu"))
    together = served(x)
    np.testing.assert_allclose(together, jet_tagger.forward(weights, x), rtol=1e-6, atol=1e-7)
    alone = np.concatenate([served(x[i : i + 1]) for i in range(len(x))])
    np.testing.assert_array_equal(alone, together)
    with pytest.raises(ValueError, match="shape"):
        TorchJetTagger(weights, "cpu").forward(x[:, :4])
