"""The jet tagger's forward pass in PyTorch, for a Triton instance on a GPU.

It repeats `jet_tagger.forward` operation by operation in float64: each layer accumulated
input by input in a fixed order (elementwise kernels, no matrix product), so a jet's
score does not depend on the batch it is computed in, on a GPU as on the CPU. Scores
agree with the numpy forward to float32 rounding (the exponential of the GPU's maths
library may differ from glibc's in the last bit of a float64).

Importing this module imports torch (the `gpu` extra).
"""

from __future__ import annotations

import numpy as np
import torch

from trigger_sim.models.jet_tagger import N_FEATURES, JetTaggerWeights


def _dense(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """x @ w + b, accumulated input by input as `jet_tagger._dense` does."""
    acc = b.expand(x.shape[0], b.shape[0]).clone()
    for k in range(w.shape[0]):
        acc += x[:, k : k + 1] * w[k]
    return acc


class TorchJetTagger:
    """Jet scores (n, 1) float32 computed by torch on `device` ("cpu", "cuda:0", ...)."""

    def __init__(self, weights: JetTaggerWeights, device: str):
        self.device = torch.device(device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)  # this instance's GPU only: no context on GPU 0 as well

        def tensor(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.asarray(a, np.float64), device=self.device)

        self.mean, self.std = tensor(weights.mean), tensor(weights.std)
        self.layers = [(tensor(w), tensor(b)) for w, b in
                       ((weights.w1, weights.b1), (weights.w2, weights.b2), (weights.w3, weights.b3))]

    def forward(self, features: np.ndarray) -> np.ndarray:
        x = np.asarray(features, np.float64)
        if x.ndim != 2 or x.shape[1] != N_FEATURES:
            raise ValueError(f"jet features must have shape (n, {N_FEATURES}), got {x.shape}")
        with torch.inference_mode():
            h = (torch.from_numpy(x).to(self.device) - self.mean) / self.std
            (w1, b1), (w2, b2), (w3, b3) = self.layers
            h = torch.clamp_min(_dense(h, w1, b1), 0.0)
            h = torch.clamp_min(_dense(h, w2, b2), 0.0)
            logit = _dense(h, w3, b3)
            score = 1.0 / (1.0 + torch.exp(-torch.clamp(logit, -60.0, 60.0)))
            return score.cpu().numpy().astype(np.float32)
