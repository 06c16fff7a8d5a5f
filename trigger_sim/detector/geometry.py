"""What the tracker and the calorimeter share: hit and tower containers, radii, angles.

Also the test that routes a generated event through the compiled kernels (`_uses_kernels`)
and the scalar phi wrap those kernels use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from trigger_sim.config import CaloConfig
from trigger_sim.kernels._jit import njit
from trigger_sim.physics import (
    Particles,
)

CALO_RADIUS_MM = 1300.0
NOISE_PARTICLE = -1  # truth index of noise hits
_PI = math.pi
_TWO_PI = 2 * math.pi


@dataclass(frozen=True)
class TrackerHits:
    """Global hit positions (what the readout digitises), with truth particle index."""

    layer: np.ndarray  # int32
    r_mm: np.ndarray  # float32
    phi: np.ndarray  # float32, (-pi, pi]
    z_mm: np.ndarray  # float32
    particle: np.ndarray  # int32, NOISE_PARTICLE for noise


@dataclass(frozen=True)
class CaloTowers:
    """Dense tower grid after noise and zero suppression (zeros where suppressed)."""

    em_gev: np.ndarray  # float32 (n_eta, n_phi)
    had_gev: np.ndarray


def curvature_radius_mm(pt_gev: np.ndarray, field_t: float) -> np.ndarray:
    """Transverse radius of curvature of a unit-charge track: R[m] = pT / (0.3 B)."""
    return pt_gev / (0.3 * field_t) * 1000.0


def wrap_phi(phi: np.ndarray) -> np.ndarray:
    """Wrap angles into (-pi, pi]: pi - ((pi - phi) mod 2 pi).

    For float64 arrays the (slow) floating-point modulo is taken only where it changes
    something: for 0 <= pi - phi < 2 pi it returns its argument exactly (or +0 for -0, which
    gives the same pi - 0), so the result is bit for bit the same as taking it everywhere.
    """
    shifted = np.pi - phi
    if not isinstance(shifted, np.ndarray) or shifted.dtype != np.float64:
        return np.pi - np.mod(shifted, 2 * np.pi)
    outside = ~((shifted >= 0.0) & (shifted < 2 * np.pi))  # NaN too
    if outside.any():
        shifted[outside] = np.mod(shifted[outside], 2 * np.pi)
    return np.subtract(np.pi, shifted, out=shifted)


def tower_centers(cfg: CaloConfig) -> tuple[np.ndarray, np.ndarray]:
    """Eta and phi of tower centres."""
    eta_edges = np.linspace(-cfg.eta_max, cfg.eta_max, cfg.n_eta + 1)
    phi_edges = np.linspace(-np.pi, np.pi, cfg.n_phi + 1)
    return 0.5 * (eta_edges[1:] + eta_edges[:-1]), 0.5 * (phi_edges[1:] + phi_edges[:-1])


def _uses_kernels(p: Particles) -> bool:
    """Whether the compiled path applies: float64 kinematics and integer charge and kind, as the
    generator makes them. Other dtypes (float32 arithmetic, float kinds) take the numpy reference."""
    floats = (p.pt_gev, p.eta, p.phi, p.vz_mm)
    return all(a.dtype == np.float64 for a in floats) and p.charge.dtype.kind in "iu" and p.kind.dtype.kind in "iu"


@njit(error_model="numpy")
def _wrap_phi_scalar(phi):
    """`wrap_phi` of one float64, with numpy's floating-point modulo semantics."""
    shifted = _PI - phi
    if not (shifted >= 0.0 and shifted < _TWO_PI):  # NaN too
        mod = np.fmod(shifted, _TWO_PI)
        if mod != 0.0:  # NaN too, as in numpy
            if mod < 0.0:
                mod += _TWO_PI
        else:
            mod = 0.0
        shifted = mod
    return _PI - shifted
