"""Input checks shared by the calorimeter kernels (jets and EM clusters)."""

from __future__ import annotations

import numpy as np


def check_tower_inputs(
    em_gev: np.ndarray,
    had_gev: np.ndarray,
    eta_centers: np.ndarray,
    phi_centers: np.ndarray,
    max_count: int,
    max_count_name: str,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validate shapes, fix dtypes and layout; returns em, had, eta, phi, cosh(eta)."""
    em = np.ascontiguousarray(em_gev, dtype=np.float32)
    had = np.ascontiguousarray(had_gev, dtype=np.float32)
    eta = np.ascontiguousarray(eta_centers, dtype=np.float64)
    phi = np.ascontiguousarray(phi_centers, dtype=np.float64)
    if eta.ndim != 1 or phi.ndim != 1:
        raise ValueError("eta_centers and phi_centers must be 1-D")
    grid = (eta.size, phi.size)
    if em.shape != grid or had.shape != grid:
        raise ValueError(
            f"em_gev {em.shape} and had_gev {had.shape} must both have shape"
            f" (n_eta, n_phi) = {grid}"
        )
    if max_count < 0:
        raise ValueError(f"{max_count_name} must be >= 0, got {max_count}")
    # cosh is taken here, once, for both implementations of a kernel: numpy and libm cosh may
    # differ in the last bit, which would be enough to flip an exact tie between towers.
    return em, had, eta, phi, np.cosh(eta)
