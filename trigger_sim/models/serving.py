"""Which forward pass a Triton model instance runs: numpy on the CPU, or torch on its GPU.

Triton tells a Python-backend instance its kind (`args["model_instance_kind"]`: "CPU",
"GPU" or "MODEL"), its device id and its model configuration. `choose_forward` turns them
into a choice without any I/O. A KIND_GPU instance (the `gpu` configurations in
model_repository/*/configs/, loaded with `tritonserver --model-config-name=gpu`) runs the
torch forward on its GPU. A CPU instance runs the numpy forward, the reference that the
workers' fallback also runs, unless the configuration's FORWARD parameter says "torch":
that runs the GPU code path on the CPU, to test it on a host without a GPU.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from trigger_sim.models import edge_classifier, jet_tagger

FORWARD_PARAMETER = "FORWARD"
FORWARD_LIBRARIES = ("numpy", "torch")


@dataclass(frozen=True)
class ForwardChoice:
    library: str  # "numpy" or "torch"
    device: str  # "cpu" or "cuda:<id>"

    def __str__(self) -> str:
        return f"{self.library} forward on {self.device}"


def choose_forward(instance_kind: str, device_id: str | int = 0, forward: str = "") -> ForwardChoice:
    """The forward pass of an instance of `instance_kind` on `device_id`; `forward` is the
    configuration's FORWARD parameter ("" for the kind's default)."""
    forward = forward.strip().lower()
    if forward and forward not in FORWARD_LIBRARIES:
        raise ValueError(f"model parameter {FORWARD_PARAMETER} = {forward!r}: expected one of {list(FORWARD_LIBRARIES)}")
    kind = instance_kind.strip().upper().removeprefix("KIND_")
    if kind == "GPU":
        if forward == "numpy":
            raise ValueError(f"a KIND_GPU instance runs the torch forward; {FORWARD_PARAMETER} = numpy needs KIND_CPU")
        return ForwardChoice("torch", f"cuda:{int(device_id)}")
    if kind in ("CPU", "MODEL", ""):
        return ForwardChoice(forward or "numpy", "cpu")
    raise ValueError(f"unknown model instance kind {instance_kind!r}: expected CPU or GPU")


def forward_parameter(model_config: str | dict) -> str:
    """The FORWARD parameter of a model configuration (Triton passes it as JSON text)."""
    config = json.loads(model_config) if isinstance(model_config, str) else model_config
    return str(config.get("parameters", {}).get(FORWARD_PARAMETER, {}).get("string_value", ""))


def choice_from_args(args: dict) -> ForwardChoice:
    """`choose_forward` from the `args` of a Python-backend model's `initialize`."""
    return choose_forward(args.get("model_instance_kind", "CPU"), args.get("model_instance_device_id", "0") or "0",
                          forward_parameter(args.get("model_config", "{}")))


def require_torch_device(device: str) -> None:
    """Raise a RuntimeError that says what to install when torch cannot run on `device`."""
    try:
        import torch
    except ImportError as err:
        raise RuntimeError(
            f"the torch forward on {device} needs PyTorch in the server's Python: "
            "`pip install -e '.[gpu]'` (a CUDA build of torch), or serve with the CPU configuration "
            "([inference] device = \"cpu\")"
        ) from err
    if device.startswith("cuda"):
        index = int(device.partition(":")[2] or 0)
        if not torch.cuda.is_available() or index >= torch.cuda.device_count():
            raise RuntimeError(
                f"the torch forward on {device}: torch {torch.__version__} (CUDA build: {torch.version.cuda}) "
                f"sees {torch.cuda.device_count() if torch.cuda.is_available() else 0} GPU(s); install a CUDA build "
                "of torch that matches the driver, or serve with the CPU configuration ([inference] device = \"cpu\")"
            )


def edge_classifier_forward(weights, choice: ForwardChoice) -> Callable[[np.ndarray, np.ndarray, np.ndarray], np.ndarray]:
    """f(node features, edge index, edge features) -> scores (E,), as `choice` says."""
    if choice.library == "torch":
        require_torch_device(choice.device)
        from trigger_sim.models.edge_classifier_torch import TorchEdgeClassifier

        return TorchEdgeClassifier(weights, choice.device).forward
    return functools.partial(edge_classifier.forward, weights)


def jet_tagger_forward(weights, choice: ForwardChoice) -> Callable[[np.ndarray], np.ndarray]:
    """f(jet features (n, 9)) -> scores (n, 1), as `choice` says."""
    if choice.library == "torch":
        require_torch_device(choice.device)
        from trigger_sim.models.jet_tagger_torch import TorchJetTagger

        return TorchJetTagger(weights, choice.device).forward
    return functools.partial(jet_tagger.forward, weights)
