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


def seeds_reference(et: np.ndarray, seed_gev: float) -> np.ndarray:
    """Numpy: towers with ET > seed_gev that beat each of their up to 8 neighbours (phi
    wraps, eta does not): a larger ET, or an equal ET and a smaller flat index."""
    n_eta, n_phi = et.shape
    flat = np.arange(n_eta * n_phi).reshape(n_eta, n_phi)
    ieta = np.arange(n_eta)[:, None]
    is_seed = et > seed_gev
    for de in (-1, 0, 1):
        for dp in (-1, 0, 1):
            if de == 0 and dp == 0:
                continue
            # nb_*[ie, ip] describe tower (ie + de, ip + dp); eta rolls are masked off below.
            nb_et = np.roll(et, (-de, -dp), axis=(0, 1))
            nb_flat = np.roll(flat, (-de, -dp), axis=(0, 1))
            outside = (ieta + de < 0) | (ieta + de >= n_eta)
            beats = (et > nb_et) | ((et == nb_et) & (flat < nb_flat))
            is_seed &= beats | outside | (nb_flat == flat)
    return is_seed
