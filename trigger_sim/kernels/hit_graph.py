"""Tracker hit graph: edges between hits on adjacent barrel layers that pass geometric cuts.

An edge (i, j) exists iff layer[j] == layer[i] + 1 and, in float64 from the float32 inputs,
with dr = r[j] - r[i] > 0 and dphi = phi[j] - phi[i] wrapped to [-pi, pi]:

    |dphi| / dr < phi_slope_max   and   |z[i] - r[i] * (z[j] - z[i]) / dr| < z0_max_mm.

Edges are int32 (i, j) index pairs into the input arrays, sorted by (i, j), at most max_edges
of them; every function here also returns how many edges passed before truncation. phi must
lie in (-pi, pi] (the float32 rounding of ±pi is fine).

Three implementations, the same edges in the same order:

- `build_hit_graph` (numba) and `build_hit_graph_reference` (numpy) run the same algorithm:
  hits sorted by (layer, phi); each inner hit tests only the outer-layer hits inside the phi
  window its slope cut allows (half-width phi_slope_max * (largest outer radius - r_i), with a
  margin for rounding), searched with `searchsorted` and shifted by ±2pi for the wrap. Their
  ratio is what compilation buys.
- `build_hit_graph_all_pairs` (numpy) tests every pair of hits on adjacent layers: a brute-force
  oracle for the tests (an edge the windows missed would show) and the baseline of the
  algorithmic gain (all pairs vs windows), which is not part of the numba-vs-numpy ratio.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from trigger_sim.kernels._angles import wrap_delta_phi, wrap_delta_phi_array
from trigger_sim.kernels._jit import njit

_PI = math.pi
_TWO_PI = 2.0 * math.pi
# Candidates per vectorised block of the reference: bounds its temporaries to a few MB each.
_REFERENCE_BLOCK_CANDIDATES = 1 << 15
# Inner hits per broadcast block of the all-pairs oracle: bounds its memory to a few 10 MB.
_ALL_PAIRS_BLOCK_HITS = 512


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


class _SortedHits(NamedTuple):
    """Hits sorted by (layer, phi), float64 coordinates, as the kernel's sorted copies."""

    order: np.ndarray  # sorted position -> input index
    layer_start: np.ndarray  # (n_layers + 1,): where each layer begins in the sorted order
    phi: np.ndarray
    r_mm: np.ndarray
    z_mm: np.ndarray


def _sort_hits(
    layer: np.ndarray, r: np.ndarray, phi: np.ndarray, z: np.ndarray, n_layers: int
) -> _SortedHits:
    """Sort the float64 hits by (layer, phi), like the kernel's counting sort plus argsort."""
    order = np.lexsort((phi, layer))
    layer_start = np.searchsorted(layer[order], np.arange(n_layers + 1))
    return _SortedHits(order, layer_start, phi[order], r[order], z[order])


def _layer_max_radius_mm(layer: np.ndarray, r: np.ndarray, n_layers: int) -> np.ndarray:
    """Largest radius of each layer: -inf when empty, NaN radii ignored (as the kernel's `>`)."""
    r_max = np.full(n_layers, -np.inf)
    np.fmax.at(r_max, layer, r)
    return r_max


def _phi_windows(
    block_phi: np.ndarray, phi_i: np.ndarray, half_width_rad: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(starts, stops), each (n, 3): per inner hit, its window in the phi-sorted outer block,
    shifted by -2pi, 0 and +2pi; a window of half-width ~pi or more is the whole block."""
    shifts = (np.arange(3) - 1) * _TWO_PI
    with np.errstate(invalid="ignore"):  # inf half-widths give -inf/+inf or nan bounds, replaced below
        starts = np.searchsorted(block_phi, (phi_i - half_width_rad)[:, None] + shifts, side="left")
        stops = np.searchsorted(block_phi, (phi_i + half_width_rad)[:, None] + shifts, side="right")
    whole = half_width_rad >= _PI - 1e-6
    starts[whole] = 0
    stops[whole] = 0
    stops[whole, 0] = block_phi.size
    return starts, stops


def _expand_windows(starts: np.ndarray, stops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(window, position) of every candidate: window w holds positions starts[w] .. stops[w] - 1."""
    counts = stops - starts
    window = np.repeat(np.arange(counts.size), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)  # where each window's run begins
    return window, starts[window] + (np.arange(window.size) - first)


def _blocks(counts: np.ndarray, max_total: int) -> list[slice]:
    """Consecutive slices of `counts` summing to about max_total each (at least one entry)."""
    ends = np.cumsum(counts)
    blocks, start = [], 0
    while start < counts.size:
        base = ends[start - 1] if start else 0
        stop = max(int(np.searchsorted(ends, base + max_total, side="right")), start + 1)
        blocks.append(slice(start, stop))
        start = stop
    return blocks


def _passes_cuts(
    dr_mm: np.ndarray, dphi: np.ndarray, z0_mm: np.ndarray, phi_slope_max: float, z0_max_mm: float
) -> np.ndarray:
    """The edge cuts, as the kernel evaluates them (a NaN never passes)."""
    return (dr_mm > 0.0) & (np.abs(dphi) / dr_mm < phi_slope_max) & (np.abs(z0_mm) < z0_max_mm)


def _layer_pair_edges(
    inner: np.ndarray,
    outer_layer: int,
    r: np.ndarray,
    phi: np.ndarray,
    z: np.ndarray,
    hits: _SortedHits,
    r_max_outer_mm: float,
    phi_slope_max: float,
    z0_max_mm: float,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Edges from the `inner` hits (ascending indices) to `outer_layer`: lists of i and j parts."""
    a, b = hits.layer_start[outer_layer], hits.layer_start[outer_layer + 1]
    if a == b:
        return [], []
    r_i, phi_i = r[inner], phi[inner]
    with np.errstate(invalid="ignore", over="ignore"):  # inf/nan inputs fail the checks below
        dr_max_mm = r_max_outer_mm - r_i
        half_width_rad = phi_slope_max * dr_max_mm * (1.0 + 1e-9) + 1e-9  # as the kernel
    ok = (dr_max_mm > 0.0) & np.isfinite(phi_i) & (half_width_rad > 0.0)  # the kernel's skips
    inner, r_i, phi_i, half_width_rad = inner[ok], r_i[ok], phi_i[ok], half_width_rad[ok]
    z_i = z[inner]
    starts, stops = _phi_windows(hits.phi[a:b], phi_i, half_width_rad)
    i_parts, j_parts = [], []
    for block in _blocks((stops - starts).sum(axis=1), _REFERENCE_BLOCK_CANDIDATES):
        window, position = _expand_windows(starts[block].ravel(), stops[block].ravel())
        k = block.start + window // 3  # the inner hit, among those kept
        p = a + position  # the outer hit, in sorted order
        r_k, z_k = r_i[k], z_i[k]
        with np.errstate(divide="ignore", invalid="ignore"):  # failing pairs may be inf/nan
            dr = hits.r_mm[p] - r_k
            dphi = wrap_delta_phi_array(hits.phi[p] - phi_i[k])
            z0 = z_k - r_k * (hits.z_mm[p] - z_k) / dr
            passed = _passes_cuts(dr, dphi, z0, phi_slope_max, z0_max_mm)
        i_parts.append(inner[k[passed]])
        j_parts.append(hits.order[p[passed]])
    return i_parts, j_parts


def _sorted_edges(
    i_parts: list[np.ndarray], j_parts: list[np.ndarray], n_hits: int, max_edges: int
) -> tuple[np.ndarray, int]:
    """The first max_edges edges in (i, j) order as int32 (m, 2), and how many there were."""
    i = np.concatenate(i_parts) if i_parts else np.empty(0, np.int64)
    j = np.concatenate(j_parts) if j_parts else np.empty(0, np.int64)
    order = np.argsort(i * np.int64(n_hits) + j)[:max_edges]  # (i, j) pairs are unique
    edges = np.stack([i[order], j[order]], axis=1).astype(np.int32)
    return edges.reshape(-1, 2), int(i.size)


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
    """Plain-numpy build_hit_graph, the kernel's algorithm: sorted phi, searchsorted windows.

    Vectorised over the inner hits of each layer and over their candidates (in blocks), so
    its ratio to the kernel measures compilation, not a better algorithm.
    """
    layer, r_mm, phi, z_mm = _check_inputs(layer, r_mm, phi, z_mm, n_layers, max_edges)
    r, ph, z = r_mm.astype(np.float64), phi.astype(np.float64), z_mm.astype(np.float64)
    hits = _sort_hits(layer, r, ph, z, n_layers)
    r_max = _layer_max_radius_mm(layer, r, n_layers)
    i_parts, j_parts = [], []
    for lay in range(n_layers - 1):
        inner = np.flatnonzero(layer == lay)
        i_new, j_new = _layer_pair_edges(
            inner, lay + 1, r, ph, z, hits, r_max[lay + 1], float(phi_slope_max), float(z0_max_mm)
        )
        i_parts += i_new
        j_parts += j_new
    return _sorted_edges(i_parts, j_parts, layer.size, max_edges)


def build_hit_graph_all_pairs(
    layer: np.ndarray,
    r_mm: np.ndarray,
    phi: np.ndarray,
    z_mm: np.ndarray,
    n_layers: int,
    phi_slope_max: float,
    z0_max_mm: float,
    max_edges: int,
) -> tuple[np.ndarray, int]:
    """Brute-force numpy oracle: every pair of adjacent-layer hits, broadcast in blocks.

    No windows, so it cannot miss an edge a window would; quadratic in the hits per layer.
    The tests check both other implementations against it; the benchmark reports it only as
    the baseline of the algorithmic gain.
    """
    layer, r_mm, phi, z_mm = _check_inputs(layer, r_mm, phi, z_mm, n_layers, max_edges)
    r = r_mm.astype(np.float64)
    ph = phi.astype(np.float64)
    z = z_mm.astype(np.float64)
    inner_parts, outer_parts = [], []
    for lay in range(n_layers - 1):
        outer = np.flatnonzero(layer == lay + 1)
        all_inner = np.flatnonzero(layer == lay)
        for start in range(0, all_inner.size, _ALL_PAIRS_BLOCK_HITS):
            inner = all_inner[start:start + _ALL_PAIRS_BLOCK_HITS]
            r_i, ph_i, z_i = r[inner, None], ph[inner, None], z[inner, None]
            with np.errstate(divide="ignore", invalid="ignore"):  # failing pairs may be inf/nan
                dr = r[None, outer] - r_i
                dphi = wrap_delta_phi_array(ph[None, outer] - ph_i)
                z0 = z_i - r_i * (z[None, outer] - z_i) / dr
                passed = _passes_cuts(dr, dphi, z0, phi_slope_max, z0_max_mm)
            rows, cols = np.nonzero(passed)
            inner_parts.append(inner[rows])
            outer_parts.append(outer[cols])
    return _sorted_edges(inner_parts, outer_parts, layer.size, max_edges)
