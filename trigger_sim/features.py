"""From kernel outputs to model inputs: the jet tagger's per-jet features.

Track activity near a jet is counted with the innermost hit-graph segments (edges from
layer 0 to layer 1): roughly one per charged particle, so a cheap seed multiplicity.
"""

from __future__ import annotations

import numpy as np

from trigger_sim.kernels.calo_jets import JET_EM_FRACTION, JET_ETA, JET_N_TOWERS, JET_PHI, JET_PT, JET_WIDTH
from trigger_sim.models.jet_tagger import N_FEATURES


def seed_directions(layer: np.ndarray, r_mm: np.ndarray, phi: np.ndarray, z_mm: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(eta, phi) of the innermost edges (layer 0 to 1), from their two hits."""
    if len(edges) == 0:
        return np.empty(0), np.empty(0)
    inner = layer[edges[:, 0]] == 0
    i, j = edges[inner, 0], edges[inner, 1]
    dz_dr = (z_mm[j].astype(np.float64) - z_mm[i]) / (r_mm[j].astype(np.float64) - r_mm[i])
    return np.arcsinh(dz_dr), phi[j].astype(np.float64)


def count_in_cones(jet_eta: np.ndarray, jet_phi: np.ndarray, eta: np.ndarray, phi: np.ndarray, radius: float) -> np.ndarray:
    """Per jet, how many (eta, phi) directions lie within ΔR < radius of its axis."""
    if len(jet_eta) == 0 or len(eta) == 0:
        return np.zeros(len(jet_eta), np.int64)
    deta = jet_eta[:, None] - eta[None, :]
    dphi = np.angle(np.exp(1j * (jet_phi[:, None] - phi[None, :])))
    return (deta**2 + dphi**2 < radius**2).sum(axis=1)


def jet_tagger_inputs(jets: np.ndarray, n_seeds_in_cone: np.ndarray) -> np.ndarray:
    """float32 (n_jets, N_FEATURES) in the order of `jet_tagger.FEATURE_NAMES`."""
    out = np.empty((len(jets), N_FEATURES), np.float32)
    out[:, 0] = np.log(np.maximum(jets[:, JET_PT], 1e-3))
    out[:, 1] = np.abs(jets[:, JET_ETA])
    out[:, 2] = jets[:, JET_EM_FRACTION]
    out[:, 3] = np.log(np.maximum(jets[:, JET_N_TOWERS], 1.0))
    out[:, 4] = jets[:, JET_WIDTH]
    out[:, 5] = np.log1p(n_seeds_in_cone)
    return out


def jet_phi_eta(jets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return jets[:, JET_ETA].astype(np.float64), jets[:, JET_PHI].astype(np.float64)
