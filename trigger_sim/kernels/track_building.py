"""Track building: chains of hits from the GNN-scored edges of the hit graph.

Algorithm (both implementations follow it exactly). Edge e = (inner[e], outer[e]) with score s[e]:

1. Keep the edges with s > score_cut (a NaN score is never kept).
1b. Geometric rescue (only when the hits' slopes are given, `rescue_passes` times): the GNN hedges
   on true edges of stiff tracks in dense jet cores (scores between 0.1 and the cut), while the
   rest of the track is confident. Each pass, every hit's anchors are its best kept incoming edge
   (highest score, ties by the smaller inner index) and its best kept outgoing edge (highest
   score, ties by the smaller outer index, then the smaller edge index), as kept before the pass. An edge not kept with
   s > rescue_score_cut is kept if an anchor at its inner hit (incoming) or at its outer hit
   (outgoing) continues it: |phi-slope difference| < max_dphi_slope and |z-slope difference|
   < max_dz_slope (slopes per edge: dphi/dr in rad/mm, dz/dr; `edge_slopes`). Rescued edges keep
   their own score in the steps below, so a confident edge still wins any choice.
2. Each inner hit keeps only its best outgoing kept edge: highest score, ties by the smaller
   outer index.
3. Of the edges left, each outer hit keeps only its best incoming edge: highest score, ties by
   the smaller inner index. Every hit now has at most one incoming and one outgoing edge.
4. Connected components of the hits under these edges (a hit without edges is a component of
   its own). With edges from build_hit_graph (outer layer = inner layer + 1) every component is
   a simple chain, one hit per layer on consecutive layers; other edges may also close a cycle
   (a self-loop (i, i) is an edge like any other).
5. Components with fewer than min_hits hits are dropped: their hits get track -1.
6. The remaining components are the tracks, numbered 0 .. n_tracks - 1 by their smallest hit
   index, ascending.

Equal edges (same inner, outer and score) may be repeated, the order of the edges does not
matter, and scores are compared in float64. Raising score_cut only removes edges after step 3
(a hit's best edge is its highest scored one, so it survives as long as any of its edges does):
tracks can only split or shrink.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trigger_sim.kernels._angles import wrap_delta_phi_array
from trigger_sim.kernels._jit import njit


def _check_inputs(
    n_hits: int,
    edges: np.ndarray,
    scores: np.ndarray,
    min_hits: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Validate shapes and hit indices, fix dtypes and layout; returns edges, scores."""
    if n_hits < 0:
        raise ValueError(f"n_hits must be >= 0, got {n_hits}")
    if n_hits > np.iinfo(np.int32).max:
        raise ValueError(f"n_hits must fit in int32, got {n_hits}")
    if min_hits < 1:
        raise ValueError(f"min_hits must be >= 1, got {min_hits}")
    edges = np.asarray(edges)
    if edges.size == 0:
        edges = edges.reshape(0, 2)
    if edges.ndim != 2 or edges.shape[1] != 2:
        raise ValueError(f"edges must have shape (n_edges, 2), got {edges.shape}")
    if edges.shape[0] and not np.issubdtype(edges.dtype, np.integer):
        raise ValueError(f"edges must hold integer hit indices, got dtype {edges.dtype}")
    scores = np.asarray(scores)
    if scores.ndim != 1 or scores.shape[0] != edges.shape[0]:
        raise ValueError(
            f"scores {scores.shape} must be 1-D with one score per edge ({edges.shape[0]})"
        )
    if edges.shape[0]:
        low, high = edges.min(), edges.max()  # before the cast to int32, which could wrap
        if low < 0 or high >= n_hits:
            raise ValueError(f"edge hit indices must lie in [0, {n_hits}), got [{low}, {high}]")
    edges = np.ascontiguousarray(edges, dtype=np.int32)
    return edges, np.ascontiguousarray(scores, dtype=np.float64)


@dataclass(frozen=True)
class Rescue:
    """Step 1b's parameters (see the module docstring); `slopes` from `edge_slopes`."""

    slopes: tuple[np.ndarray, np.ndarray]
    score_cut: float = 0.1
    max_dphi_slope: float = 5e-5  # rad/mm
    max_dz_slope: float = 0.02
    passes: int = 3


def edge_slopes(r: np.ndarray, phi: np.ndarray, z: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per edge (inner, outer): dphi/dr (rad/mm, dphi wrapped into [-pi, pi]) and dz/dr, float64."""
    edges = np.asarray(edges).reshape(-1, 2)
    r, phi, z = (np.asarray(a, np.float64) for a in (r, phi, z))
    i, o = edges[:, 0], edges[:, 1]
    dr = r[o] - r[i]
    with np.errstate(divide="ignore", invalid="ignore"):
        return wrap_delta_phi_array(phi[o] - phi[i]) / dr, (z[o] - z[i]) / dr


def _rescue_inputs(rescue: Rescue | None, n_edges: int) -> tuple[np.ndarray, np.ndarray, float, float, float, int]:
    if rescue is None:
        empty = np.zeros(n_edges)
        return empty, empty, np.inf, 0.0, 0.0, 0
    dphi, dz = (np.ascontiguousarray(a, dtype=np.float64) for a in rescue.slopes)
    if dphi.shape != (n_edges,) or dz.shape != (n_edges,):
        raise ValueError(f"rescue slopes {dphi.shape}, {dz.shape} must have one value per edge ({n_edges})")
    if rescue.passes < 0:
        raise ValueError(f"rescue passes must be >= 0, got {rescue.passes}")
    return dphi, dz, float(rescue.score_cut), float(rescue.max_dphi_slope), float(rescue.max_dz_slope), int(rescue.passes)


def build_tracks(
    n_hits: int,
    edges: np.ndarray,
    scores: np.ndarray,
    score_cut: float,
    min_hits: int,
    rescue: Rescue | None = None,
) -> tuple[np.ndarray, int]:
    """Tracks from scored hit-graph edges (numba); returns (track_of_hit int32, n_tracks).

    edges: (n_edges, 2) hit indices in [0, n_hits); scores: (n_edges,) edge scores.
    track_of_hit[h] is h's track id in [0, n_tracks), or -1 if h is on no track.
    rescue: step 1b's parameters, None to skip it.
    """
    edges, scores = _check_inputs(n_hits, edges, scores, min_hits)
    dphi, dz, rescue_cut, max_dphi, max_dz, passes = _rescue_inputs(rescue, edges.shape[0])
    # Scalars are normalised so that only one compiled specialisation (the cached one) exists.
    track_of_hit, n_tracks = _build_tracks_kernel(
        int(n_hits), edges, scores, float(score_cut), int(min_hits), dphi, dz, rescue_cut, max_dphi, max_dz, passes
    )
    return track_of_hit, int(n_tracks)


@njit
def _build_tracks_kernel(n_hits, edges, scores, score_cut, min_hits, dphi, dz, rescue_cut, max_dphi, max_dz, passes):
    n_edges = edges.shape[0]
    kept = np.zeros(n_edges, dtype=np.bool_)
    for e in range(n_edges):
        kept[e] = scores[e] > score_cut
    # Step 1b: anchors of each hit as kept before the pass, then the edges they continue.
    anchor_in = np.full(n_hits, -1, dtype=np.int64)
    anchor_out = np.full(n_hits, -1, dtype=np.int64)
    for _ in range(passes):
        anchor_in[:] = -1
        anchor_out[:] = -1
        for e in range(n_edges):
            if not kept[e]:
                continue
            s, i, o = scores[e], edges[e, 0], edges[e, 1]
            b = anchor_out[i]
            if b < 0 or s > scores[b] or (s == scores[b] and o < edges[b, 1]):
                anchor_out[i] = e
            b = anchor_in[o]
            if b < 0 or s > scores[b] or (s == scores[b] and i < edges[b, 0]):
                anchor_in[o] = e
        rescued = np.zeros(n_edges, dtype=np.bool_)
        for e in range(n_edges):
            if kept[e] or not scores[e] > rescue_cut:
                continue
            for a in (anchor_in[edges[e, 0]], anchor_out[edges[e, 1]]):
                if a >= 0 and abs(dphi[a] - dphi[e]) < max_dphi and abs(dz[a] - dz[e]) < max_dz:
                    rescued[e] = True
        for e in range(n_edges):
            kept[e] = kept[e] or rescued[e]
    # Steps 1-2: best outgoing kept edge of each inner hit.
    best_out = np.full(n_hits, -1, dtype=np.int64)
    for e in range(n_edges):
        s = scores[e]
        if not kept[e]:
            continue
        i = edges[e, 0]
        b = best_out[i]
        if b < 0 or s > scores[b] or (s == scores[b] and edges[e, 1] < edges[b, 1]):
            best_out[i] = e
    # Step 3: best incoming of those, per outer hit.
    best_in = np.full(n_hits, -1, dtype=np.int64)
    for i in range(n_hits):
        e = best_out[i]
        if e < 0:
            continue
        j = edges[e, 1]
        b = best_in[j]
        if b < 0 or scores[e] > scores[b] or (scores[e] == scores[b] and i < edges[b, 0]):
            best_in[j] = e
    # Steps 4-6: each hit now has at most one neighbour either way, so a component is a chain
    # (or a cycle). In ascending order, the first unvisited hit of a chain is its smallest: walk
    # the chain both ways from there, then number it if it is long enough.
    following = np.full(n_hits, -1, dtype=np.int64)
    preceding = np.full(n_hits, -1, dtype=np.int64)
    for j in range(n_hits):
        e = best_in[j]
        if e >= 0:
            following[edges[e, 0]] = j
            preceding[j] = edges[e, 0]
    unvisited = np.int32(-2)
    track_of_hit = np.full(n_hits, unvisited, dtype=np.int32)
    chain = np.empty(n_hits, dtype=np.int64)
    n_tracks = 0
    for h in range(n_hits):
        if track_of_hit[h] != unvisited:
            continue
        n_chain = 0
        k = h
        while k >= 0 and track_of_hit[k] == unvisited:  # outwards; a cycle stops back at h
            track_of_hit[k] = -1
            chain[n_chain] = k
            n_chain += 1
            k = following[k]
        k = preceding[h]
        while k >= 0 and track_of_hit[k] == unvisited:  # inwards
            track_of_hit[k] = -1
            chain[n_chain] = k
            n_chain += 1
            k = preceding[k]
        if n_chain >= min_hits:
            for m in range(n_chain):
                track_of_hit[chain[m]] = n_tracks
            n_tracks += 1
    return track_of_hit, n_tracks


def _best_per_group(group: np.ndarray, score: np.ndarray, other: np.ndarray, n_groups: int) -> np.ndarray:
    """Index of each group's best entry (highest score, ties by the smaller `other`), groups
    ascending: one scatter-max and one scatter-min, linear like the kernel's single pass."""
    best_score = np.full(n_groups, -np.inf)
    np.maximum.at(best_score, group, score)
    top = np.flatnonzero(score == best_score[group])
    min_other = np.full(n_groups, np.iinfo(np.int64).max)
    np.minimum.at(min_other, group[top], other[top])
    top = top[other[top] == min_other[group[top]]]
    best = np.full(n_groups, np.iinfo(np.int64).max)
    np.minimum.at(best, group[top], top)  # entries left tied are equal edges: the first, as the kernel
    return best[best < np.iinfo(np.int64).max]


def _component_minimum(following: np.ndarray, preceding: np.ndarray) -> np.ndarray:
    """Smallest hit index of each hit's chain (or cycle), by pointer doubling both ways.

    following/preceding point at the hit itself where a chain ends. After step k, reach[h] is
    the minimum over the 2^k hits from h on, one way; log2(chain length) steps stand for the
    kernel's walk.
    """
    n_hits = following.size
    label = np.arange(n_hits)
    for pointer in (following, preceding):
        reach, jump = np.arange(n_hits), pointer
        for _ in range(max(n_hits - 1, 0).bit_length()):  # 2^steps >= n_hits covers any cycle
            reach = np.minimum(reach, reach[jump])
            next_jump = jump[jump]
            if np.array_equal(next_jump, jump):  # every jump lands on a chain end
                break
            jump = next_jump
        label = np.minimum(label, reach)
    return label


def _rescued(edges: np.ndarray, scores: np.ndarray, score_cut: float, n_hits: int, rescue: Rescue | None) -> np.ndarray:
    """Steps 1 and 1b: which edges are kept, vectorised per pass."""
    kept = scores > score_cut
    dphi, dz, rescue_cut, max_dphi, max_dz, passes = _rescue_inputs(rescue, len(scores))
    i, o = edges[:, 0].astype(np.int64), edges[:, 1].astype(np.int64)
    for _ in range(passes):
        k = np.flatnonzero(kept)
        anchor_in = np.full(n_hits, -1, np.int64)
        anchor_out = np.full(n_hits, -1, np.int64)
        best = _best_per_group(i[k], scores[k], o[k], n_hits)
        anchor_out[i[k[best]]] = k[best]
        best = _best_per_group(o[k], scores[k], i[k], n_hits)
        anchor_in[o[k[best]]] = k[best]
        rescued = np.zeros_like(kept)
        for a in (anchor_in[i], anchor_out[o]):
            safe = np.maximum(a, 0)
            rescued |= (a >= 0) & (np.abs(dphi[safe] - dphi) < max_dphi) & (np.abs(dz[safe] - dz) < max_dz)
        kept = kept | (rescued & ~kept & (scores > rescue_cut))
    return kept


def build_tracks_reference(
    n_hits: int,
    edges: np.ndarray,
    scores: np.ndarray,
    score_cut: float,
    min_hits: int,
    rescue: Rescue | None = None,
) -> tuple[np.ndarray, int]:
    """Plain-numpy reference of build_tracks, linear passes like the kernel's.

    Steps 2-3 by scatter-max/min per hit (no sort), chains by pointer doubling (the vectorised
    walk: O(n log L) for chains of L hits), tracks numbered by a cumulative sum.
    """
    edges, scores = _check_inputs(n_hits, edges, scores, min_hits)
    kept = np.flatnonzero(_rescued(edges, scores, score_cut, n_hits, rescue))
    i, j, s = edges[kept, 0].astype(np.int64), edges[kept, 1].astype(np.int64), scores[kept]
    best = _best_per_group(i, s, j, n_hits)
    i, j, s = i[best], j[best], s[best]
    best = _best_per_group(j, s, i, n_hits)
    i, j = i[best], j[best]
    # Each hit has at most one neighbour either way; a missing one points at the hit itself.
    following = np.arange(n_hits)
    following[i] = j
    preceding = np.arange(n_hits)
    preceding[j] = i
    label = _component_minimum(following, preceding)
    on_track = np.bincount(label, minlength=n_hits)[label] >= min_hits
    is_first = on_track & (label == np.arange(n_hits))  # each track's smallest hit
    track = np.cumsum(is_first) - 1  # tracks numbered by their smallest hit, ascending
    track_of_hit = np.where(on_track, track[label], -1).astype(np.int32)
    return track_of_hit, int(np.count_nonzero(is_first))
