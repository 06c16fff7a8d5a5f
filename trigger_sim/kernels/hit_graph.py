"""Tracker hit graph: edges between hits on adjacent barrel layers that pass geometric cuts.

An edge (i, j) exists iff layer[j] == layer[i] + 1 and, in float64 from the float32 inputs,
with dr = r[j] - r[i] > 0 and dphi = phi[j] - phi[i] wrapped to [-pi, pi]:

    |dphi| / dr < phi_slope_max   and   |z[i] - r[i] * (z[j] - z[i]) / dr| < z0_max_mm.

Edges are int32 (i, j) index pairs into the input arrays, sorted by (i, j), at most max_edges
of them; both functions also return how many edges passed before truncation. phi must lie in
(-pi, pi] (the float32 rounding of ±pi is fine).
"""

from __future__ import annotations

import math

import numpy as np

from trigger_sim.kernels._angles import wrap_delta_phi, wrap_delta_phi_array
from trigger_sim.kernels._jit import njit

_PI = math.pi
_TWO_PI = 2.0 * math.pi
# Inner hits per broadcast block in the reference; bounds its memory to a few 10 MB.
_REFERENCE_BLOCK_HITS = 512


def _check_inputs(
    layer: np.ndarray,
    r_mm: np.ndarray,
    phi: np.ndarray,
    z_mm: np.ndarray,
    n_layers: int,
    max_edges: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validate shapes and layer numbers, fix dtypes and layout."""
    layer = np.ascontiguousarray(layer, dtype=np.int32)
    r_mm = np.ascontiguousarray(r_mm, dtype=np.float32)
    phi = np.ascontiguousarray(phi, dtype=np.float32)
    z_mm = np.ascontiguousarray(z_mm, dtype=np.float32)
    if layer.ndim != 1 or not layer.shape == r_mm.shape == phi.shape == z_mm.shape:
        raise ValueError(
            f"layer {layer.shape}, r_mm {r_mm.shape}, phi {phi.shape} and z_mm {z_mm.shape}"
            " must be 1-D arrays of the same length"
        )
    if n_layers < 1:
        raise ValueError(f"n_layers must be >= 1, got {n_layers}")
    if layer.size and (layer.min() < 0 or layer.max() >= n_layers):
        raise ValueError(
            f"layer numbers must lie in [0, {n_layers}), got [{layer.min()}, {layer.max()}]"
        )
    if max_edges < 0:
        raise ValueError(f"max_edges must be >= 0, got {max_edges}")
    return layer, r_mm, phi, z_mm


def build_hit_graph(
    layer: np.ndarray,
    r_mm: np.ndarray,
    phi: np.ndarray,
    z_mm: np.ndarray,
    n_layers: int,
    phi_slope_max: float,
    z0_max_mm: float,
    max_edges: int,
) -> tuple[np.ndarray, int]:
    """Edges between hits on adjacent layers (numba); returns (edges (m, 2) int32, n_total).

    Hits are sorted by (layer, phi) internally, and each inner hit only looks at the outer-layer
    hits inside the phi window its slope cut allows, so the cost grows with the number of
    candidates, not with the square of the hits per layer.
    """
    layer, r_mm, phi, z_mm = _check_inputs(layer, r_mm, phi, z_mm, n_layers, max_edges)
    # Scalars are normalised so that only one compiled specialisation (the cached one) exists.
    edges, n_total = _build_hit_graph_kernel(
        layer, r_mm, phi, z_mm,
        int(n_layers), float(phi_slope_max), float(z0_max_mm), int(max_edges),
    )
    return edges, int(n_total)


@njit
def _sort_small(values):
    """Sort a short int64 array in place (insertion sort; np.sort above 32 elements)."""
    n = values.size
    if n > 32:
        values[:] = np.sort(values)
        return
    for a in range(1, n):
        v = values[a]
        b = a - 1
        while b >= 0 and values[b] > v:
            values[b + 1] = values[b]
            b -= 1
        values[b + 1] = v


@njit
def _build_hit_graph_kernel(layer, r_mm, phi, z_mm, n_layers, phi_slope_max, z0_max_mm, max_edges):
    n = layer.size

    # Counting sort by layer (stable), then by phi within each layer.
    layer_start = np.zeros(n_layers + 1, dtype=np.int64)
    for i in range(n):
        layer_start[layer[i] + 1] += 1
    for lay in range(n_layers):
        layer_start[lay + 1] += layer_start[lay]
    order = np.empty(n, dtype=np.int64)
    fill = layer_start[:n_layers].copy()
    for i in range(n):
        order[fill[layer[i]]] = i
        fill[layer[i]] += 1
    max_layer_hits = 0
    for lay in range(n_layers):
        a, b = layer_start[lay], layer_start[lay + 1]
        block = order[a:b]
        order[a:b] = block[np.argsort(phi[block])]
        max_layer_hits = max(max_layer_hits, b - a)

    # Sorted copies in float64 (contiguous for the inner loop) and each layer's largest radius.
    phi_s = np.empty(n, dtype=np.float64)
    r_s = np.empty(n, dtype=np.float64)
    z_s = np.empty(n, dtype=np.float64)
    for p in range(n):
        phi_s[p] = phi[order[p]]
        r_s[p] = r_mm[order[p]]
        z_s[p] = z_mm[order[p]]
    r_max = np.full(n_layers, -np.inf)
    for p in range(n):
        lay = layer[order[p]]
        if r_s[p] > r_max[lay]:
            r_max[lay] = r_s[p]

    capacity = min(max_edges, 4 * n + 16)
    edges = np.empty((capacity, 2), dtype=np.int32)
    n_kept = 0
    n_total = 0
    found = np.empty(max_layer_hits, dtype=np.int64)
    # Scan windows: [lo, hi] itself and shifted by ±2pi, so wrapped differences are found too.
    starts = np.empty(3, dtype=np.int64)
    stops = np.empty(3, dtype=np.int64)

    for i in range(n):
        outer = layer[i] + 1
        if outer >= n_layers:
            continue
        a, b = layer_start[outer], layer_start[outer + 1]
        r_i = np.float64(r_mm[i])
        phi_i = np.float64(phi[i])
        z_i = np.float64(z_mm[i])
        dr_max = r_max[outer] - r_i
        if a == b or not dr_max > 0.0 or not np.isfinite(phi_i):
            continue  # no candidate can pass: dr <= 0, or dphi is not finite
        # Half-width of the phi window, with a margin for the rounding of the exact cut below.
        half_width = phi_slope_max * dr_max * (1.0 + 1e-9) + 1e-9
        if not half_width > 0.0:
            continue
        n_windows = 1
        if half_width >= _PI - 1e-6:
            starts[0] = a
            stops[0] = b
        else:
            n_windows = 3
            block = phi_s[a:b]
            for w in range(3):
                shift = (w - 1) * _TWO_PI
                starts[w] = a + np.searchsorted(block, phi_i - half_width + shift, side="left")
                stops[w] = a + np.searchsorted(block, phi_i + half_width + shift, side="right")

        n_found = 0
        for w in range(n_windows):
            for p in range(starts[w], stops[w]):
                dr = r_s[p] - r_i
                if not dr > 0.0:
                    continue
                dphi = wrap_delta_phi(phi_s[p] - phi_i)
                if not abs(dphi) / dr < phi_slope_max:
                    continue
                z0 = z_i - r_i * (z_s[p] - z_i) / dr
                if not abs(z0) < z0_max_mm:
                    continue
                found[n_found] = order[p]
                n_found += 1
        if n_found == 0:
            continue
        n_total += n_found
        n_take = min(n_found, max_edges - n_kept)
        if n_take <= 0:
            continue
        _sort_small(found[:n_found])
        if n_kept + n_take > capacity:
            capacity = min(max_edges, max(2 * capacity, n_kept + n_take))
            grown = np.empty((capacity, 2), dtype=np.int32)
            grown[:n_kept] = edges[:n_kept]
            edges = grown
        for k in range(n_take):
            edges[n_kept, 0] = i
            edges[n_kept, 1] = found[k]
            n_kept += 1
    return edges[:n_kept].copy(), n_total


def build_hit_graph_reference(
    layer: np.ndarray,
    r_mm: np.ndarray,
    phi: np.ndarray,
    z_mm: np.ndarray,
    n_layers: int,
    phi_slope_max: float,
    z0_max_mm: float,
    max_edges: int,
) -> tuple[np.ndarray, int]:
    """Plain-numpy reference of build_hit_graph: every pair of adjacent-layer hits, broadcast."""
    layer, r_mm, phi, z_mm = _check_inputs(layer, r_mm, phi, z_mm, n_layers, max_edges)
    r = r_mm.astype(np.float64)
    ph = phi.astype(np.float64)
    z = z_mm.astype(np.float64)
    inner_parts, outer_parts = [], []
    for lay in range(n_layers - 1):
        outer = np.flatnonzero(layer == lay + 1)
        all_inner = np.flatnonzero(layer == lay)
        for start in range(0, all_inner.size, _REFERENCE_BLOCK_HITS):
            inner = all_inner[start:start + _REFERENCE_BLOCK_HITS]
            r_i, ph_i, z_i = r[inner, None], ph[inner, None], z[inner, None]
            with np.errstate(divide="ignore", invalid="ignore"):  # failing pairs may be inf/nan
                dr = r[None, outer] - r_i
                dphi = wrap_delta_phi_array(ph[None, outer] - ph_i)
                z0 = z_i - r_i * (z[None, outer] - z_i) / dr
                passed = (dr > 0.0) & (np.abs(dphi) / dr < phi_slope_max) & (np.abs(z0) < z0_max_mm)
            rows, cols = np.nonzero(passed)
            inner_parts.append(inner[rows])
            outer_parts.append(outer[cols])
    i = np.concatenate(inner_parts) if inner_parts else np.empty(0, np.int64)
    j = np.concatenate(outer_parts) if outer_parts else np.empty(0, np.int64)
    order = np.lexsort((j, i))[:max_edges]
    edges = np.stack([i[order], j[order]], axis=1).astype(np.int32)
    return edges.reshape(-1, 2), int(i.size)
