"""Azimuthal-angle helpers shared by the kernels and their references (same arithmetic)."""

from __future__ import annotations

import math

import numpy as np

from trigger_sim.kernels._jit import njit

PI = math.pi
TWO_PI = 2.0 * math.pi


@njit
def wrap_delta_phi(dphi: float) -> float:
    """A phi difference of two angles in (-pi, pi], wrapped to [-pi, pi]."""
    if dphi > PI:
        return dphi - TWO_PI
    if dphi < -PI:
        return dphi + TWO_PI
    return dphi


def wrap_delta_phi_array(dphi: np.ndarray) -> np.ndarray:
    """Vectorised `wrap_delta_phi`, with the same arithmetic."""
    return np.where(dphi > PI, dphi - TWO_PI, np.where(dphi < -PI, dphi + TWO_PI, dphi))
