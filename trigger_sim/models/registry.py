"""The models the HLT sequence calls, and what a client needs to know about each.

One place that says, per model: its Triton input names and datatypes, its output, how to
make the in-process fallback (same code and weights as the served model), how many items
a request holds (none: nothing is sent), and the smallest valid request (used for warm-up
and health probes).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

EDGE_CLASSIFIER = "edge_classifier"
JET_TAGGER = "jet_tagger"
MODEL_NAMES = (EDGE_CLASSIFIER, JET_TAGGER)  # in the order the sequence calls them


@dataclass(frozen=True)
class ModelSpec:
    name: str
    input_types: Mapping[str, str]  # input name -> Triton datatype
    output_name: str
    make_local: Callable[[], Any]  # the fallback: an object with infer(inputs, timeout_s)
    size_of: Callable[[Any], int]  # items in a request (jets, edges)
    empty_output: Callable[[], np.ndarray]
    probe: Callable[[], Any]  # smallest valid request
    # bytes of the FP32 output a request gets, for models whose requests are big enough to
    # travel through shared memory (None: always inside the gRPC message)
    output_bytes: Callable[[Mapping[str, np.ndarray]], int] | None = None


def _jet_tagger() -> ModelSpec:
    from trigger_sim.models import jet_tagger

    return ModelSpec(
        JET_TAGGER, {jet_tagger.INPUT_NAME: "FP32"}, jet_tagger.OUTPUT_NAME, jet_tagger.LocalJetTagger, len,
        lambda: np.zeros((0, 1), np.float32), lambda: np.zeros((1, jet_tagger.N_FEATURES), np.float32),
    )


def _edge_classifier() -> ModelSpec:
    from trigger_sim.models import edge_classifier as ec

    def probe() -> dict[str, np.ndarray]:
        nodes = np.array([[32.0, 0.0, 0.0], [72.0, 0.0, 0.0]], np.float32)
        edge_features = np.array([[40.0, 0.0, 0.0, 0.0, 0.0, 0.0]], np.float32)
        return ec.model_inputs(nodes, np.array([[0, 1]], np.int32), edge_features)

    return ModelSpec(
        EDGE_CLASSIFIER, {ec.NODE_FEATURES: "FP32", ec.EDGE_INDEX: "INT32", ec.EDGE_FEATURES: "FP32"}, ec.EDGE_SCORE,
        ec.LocalEdgeClassifier, lambda inputs: len(inputs[ec.EDGE_INDEX]), lambda: np.zeros(0, np.float32), probe,
        output_bytes=lambda inputs: 4 * len(inputs[ec.EDGE_INDEX]),  # one FP32 score per edge
    )


_FACTORIES = {EDGE_CLASSIFIER: _edge_classifier, JET_TAGGER: _jet_tagger}


def model_spec(name: str) -> ModelSpec:
    """The spec of a model the sequence uses; a clear error for any other name."""
    if name not in _FACTORIES:
        raise ValueError(f"unknown model '{name}': the HLT sequence uses {list(MODEL_NAMES)}")
    return _FACTORIES[name]()
