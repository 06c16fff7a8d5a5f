"""Jet tagger: an MLP scoring calorimeter jets as hadronic taus (1) or QCD / pile-up jets (0).

Inputs per jet (`FEATURE_NAMES`) come from `trigger_sim.features.jet_tagger_inputs`. The
same `forward` runs inside the Triton Python-backend model and in the worker's local
fallback, with the same weights file, so both paths give the same scores.

`forward` is computed row by row in a fixed order of elementwise operations (no BLAS,
no pairwise reductions), so a jet's score is bit-identical whether it is computed alone
or inside a dynamic batch of other requests.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

MODEL_NAME = "jet_tagger"
INPUT_NAME = "JET_FEATURES"
OUTPUT_NAME = "SCORE"
FEATURE_NAMES = (
    "log_pt", "abs_eta", "em_fraction", "log_n_towers", "width",
    "n_core_tracks", "n_isolation_tracks", "leading_track_fraction", "core_track_fraction",
)
N_FEATURES = len(FEATURE_NAMES)
WEIGHTS_PATH = Path(__file__).resolve().parents[2] / "model_repository" / MODEL_NAME / "1" / "weights.npz"
_LAYERS = ("w1", "b1", "w2", "b2", "w3", "b3")


@dataclass(frozen=True)
class JetTaggerWeights:
    mean: np.ndarray  # (N_FEATURES,) input standardisation
    std: np.ndarray
    w1: np.ndarray  # (N_FEATURES, H)
    b1: np.ndarray
    w2: np.ndarray  # (H, H)
    b2: np.ndarray
    w3: np.ndarray  # (H, 1)
    b3: np.ndarray

    def save(self, path: str | Path) -> None:
        np.savez(path, **{k: np.asarray(getattr(self, k), np.float64) for k in ("mean", "std", *_LAYERS)})


def load_weights(path: str | Path = WEIGHTS_PATH) -> JetTaggerWeights:
    """Load weights saved by `JetTaggerWeights.save` (plain arrays; no pickle)."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {k: np.asarray(data[k], np.float64) for k in ("mean", "std", *_LAYERS)}
    w = JetTaggerWeights(**arrays)
    if w.w1.shape[0] != N_FEATURES or w.w3.shape[1] != 1:
        raise ValueError(f"{path}: weights do not fit {N_FEATURES} inputs and 1 output")
    return w


def _dense(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x @ w + b, accumulated input by input in a fixed order (batch-size independent)."""
    acc = np.broadcast_to(b, (len(x), len(b))).copy()
    for k in range(w.shape[0]):
        acc += x[:, k : k + 1] * w[k]
    return acc


def forward(weights: JetTaggerWeights, features: np.ndarray) -> np.ndarray:
    """Scores in [0, 1], shape (n, 1) float32, for features of shape (n, N_FEATURES)."""
    x = (np.asarray(features, np.float64) - weights.mean) / weights.std
    h = np.maximum(_dense(x, weights.w1, weights.b1), 0.0)
    h = np.maximum(_dense(h, weights.w2, weights.b2), 0.0)
    logit = _dense(h, weights.w3, weights.b3)
    return (1.0 / (1.0 + np.exp(-np.clip(logit, -60, 60)))).astype(np.float32)


class LocalJetTagger:
    """The worker's in-process fallback: same code and weights as the Triton model."""

    def __init__(self, path: str | Path = WEIGHTS_PATH):
        self.weights = load_weights(path)

    def infer(self, inputs: np.ndarray, timeout_s: float = 0.0) -> np.ndarray:
        return forward(self.weights, inputs)
