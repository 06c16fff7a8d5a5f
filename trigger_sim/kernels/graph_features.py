"""Hit-graph features: what the edge classifier sees of each hit (node) and each edge.

For hits with float32 coordinates (r_mm, phi, z_mm) and int32 edges (i, j), computed in
float64 from the float32 inputs and rounded to float32 at the end:

    node k:      r_mm[k], z_mm[k], eta_k = asinh(z_mm[k] / r_mm[k])      (0 where r_mm[k] == 0)
    edge (i, j): dr_mm = r[j] - r[i]
                 dphi = phi[j] - phi[i] wrapped to [-pi, pi]
                 dz_mm = z[j] - z[i]
                 phi_slope = dphi / dr_mm                                 (rad/mm; 0 where |dr| < 1 µm)
                 z0_mm = z[i] - r[i] * dz_mm / dr_mm                      (0 where |dr| < 1 µm)
                 deta = eta_j - eta_i                                     (the float64 etas)

Node features are (N, 3) float32 in the order (r_mm, z_mm, eta), edge features (E, 6) float32
in the order (dr_mm, dphi, dz_mm, phi_slope, z0_mm, deta). No feature depends on the absolute
phi, so the features are invariant under a rotation of the event. The zero conventions keep
the features finite for degenerate input (hits at the same radius to a micron: a smaller dr
would make the slopes overflow float32); `build_hit_graph` edges join layers tens of mm apart.
"""

from __future__ import annotations

import math

import numpy as np

from trigger_sim.kernels._angles import wrap_delta_phi, wrap_delta_phi_array
from trigger_sim.kernels._jit import njit

NODE_FEATURE_NAMES = ("r_mm", "z_mm", "eta")
EDGE_FEATURE_NAMES = ("dr_mm", "dphi", "dz_mm", "phi_slope", "z0_mm", "deta")
MIN_DR_MM = 1e-3  # below this |dr| the slopes are 0 (the same radius), not an overflow
N_NODE_FEATURES = len(NODE_FEATURE_NAMES)
N_EDGE_FEATURES = len(EDGE_FEATURE_NAMES)


def _check_inputs(
    r_mm: np.ndarray, phi: np.ndarray, z_mm: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validate shapes and edge indices, fix dtypes and layout."""
    r_mm = np.ascontiguousarray(r_mm, dtype=np.float32)
    phi = np.ascontiguousarray(phi, dtype=np.float32)
    z_mm = np.ascontiguousarray(z_mm, dtype=np.float32)
    if r_mm.ndim != 1 or not r_mm.shape == phi.shape == z_mm.shape:
        raise ValueError(
            f"r_mm {r_mm.shape}, phi {phi.shape} and z_mm {z_mm.shape} must be 1-D arrays of the same length"
        )
    edges = np.asarray(edges)
    if edges.size == 0:
        edges = edges.reshape(0, 2)
    if edges.ndim != 2 or edges.shape[1] != 2 or not np.issubdtype(edges.dtype, np.integer):
        raise ValueError(f"edges must be an integer array of shape (E, 2), got {edges.dtype} {edges.shape}")
    if edges.size and (edges.min() < 0 or edges.max() >= r_mm.size):
        raise ValueError(
            f"edge indices must lie in [0, {r_mm.size}), got [{edges.min()}, {edges.max()}]"
        )
    return r_mm, phi, z_mm, np.ascontiguousarray(edges, dtype=np.int32)


def graph_features(
    r_mm: np.ndarray, phi: np.ndarray, z_mm: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(node features (N, 3) float32, edge features (E, 6) float32) of a hit graph (numba)."""
    r_mm, phi, z_mm, edges = _check_inputs(r_mm, phi, z_mm, edges)
    return _graph_features_kernel(r_mm, phi, z_mm, edges)


@njit
def _eta(r: float, z: float) -> float:
    if r == 0.0:
        return 0.0
    return math.asinh(z / r)


@njit
def _graph_features_kernel(r_mm, phi, z_mm, edges):
    n = r_mm.size
    eta = np.empty(n, dtype=np.float64)
    nodes = np.empty((n, 3), dtype=np.float32)
    for k in range(n):
        r = np.float64(r_mm[k])
        z = np.float64(z_mm[k])
        eta[k] = _eta(r, z)
        nodes[k, 0] = r
        nodes[k, 1] = z
        nodes[k, 2] = eta[k]
    n_edges = edges.shape[0]
    out = np.empty((n_edges, 6), dtype=np.float32)
    for e in range(n_edges):
        i = edges[e, 0]
        j = edges[e, 1]
        r_i = np.float64(r_mm[i])
        z_i = np.float64(z_mm[i])
        dr = np.float64(r_mm[j]) - r_i
        dphi = wrap_delta_phi(np.float64(phi[j]) - np.float64(phi[i]))
        dz = np.float64(z_mm[j]) - z_i
        phi_slope = 0.0
        z0 = 0.0
        if abs(dr) >= MIN_DR_MM:
            phi_slope = dphi / dr
            z0 = z_i - r_i * dz / dr
        out[e, 0] = dr
        out[e, 1] = dphi
        out[e, 2] = dz
        out[e, 3] = phi_slope
        out[e, 4] = z0
        out[e, 5] = eta[j] - eta[i]
    return nodes, out


def graph_features_reference(
    r_mm: np.ndarray, phi: np.ndarray, z_mm: np.ndarray, edges: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Plain-numpy reference of `graph_features`, vectorised over hits and edges."""
    r_mm, phi, z_mm, edges = _check_inputs(r_mm, phi, z_mm, edges)
    r = r_mm.astype(np.float64)
    z = z_mm.astype(np.float64)
    ph = phi.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):  # r == 0 and |dr| < MIN_DR_MM are replaced below
        eta = np.where(r == 0.0, 0.0, np.arcsinh(z / r))
        i, j = edges[:, 0], edges[:, 1]
        dr = r[j] - r[i]
        dphi = wrap_delta_phi_array(ph[j] - ph[i])
        dz = z[j] - z[i]
        same_r = np.abs(dr) < MIN_DR_MM
        phi_slope = np.where(same_r, 0.0, dphi / dr)
        z0 = np.where(same_r, 0.0, z[i] - r[i] * dz / dr)
    nodes = np.stack([r, z, eta], axis=1).astype(np.float32)
    edge_features = np.stack([dr, dphi, dz, phi_slope, z0, eta[j] - eta[i]], axis=1).astype(np.float32)
    return nodes.reshape(-1, 3), edge_features.reshape(-1, 6)
