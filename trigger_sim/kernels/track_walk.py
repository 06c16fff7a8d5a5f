"""Walk-through track building: tracks grown from GNN-scored seed edges, hit by hit, along the
continuation that agrees best with the track's direction (as Exa.TrkX's walkthrough and a CKF).

Why: best-edge chains (`track_building.py`) take each hit's highest-scored edge. In dense jet
cores the edge classifier hedges on the inner edges of stiff tracks (scores between 0.1 and the
working point) and a neighbour's edge can outscore the true one, so stiff tracks broke into
pieces. Three hits of one track agree in direction far better than the GNN's scores separate
them: the phi-slope dphi/dr of consecutive true edges differs by about 1e-5 rad/mm on the
innermost layers and 1e-6 further out, where a neighbour's edge differs by 1e-4 and more. The
walk therefore lets the GNN choose where tracks start (its most confident edges first) and which
edges may be used at all, and lets the geometry choose how a track continues.

Algorithm (both implementations follow it exactly). Edge e = (i, o) with score s[e]; its slopes
phi'[e] = wrap(phi[o] - phi[i]) / (r[o] - r[i]) (rad/mm) and z'[e] = (z[o] - z[i]) / (r[o] - r[i]),
in float64 from the inputs:

1. Candidates: edges with s > candidate_cut and i != o (a NaN score is never one). Seeds:
   edges with s > seed_cut and i != o, in descending score, ties by the smaller inner hit,
   then the smaller outer hit.
2. For each seed in that order whose two hits are both free: a track starts with its two hits
   (now taken). Outwards: at the track's outermost hit h, reached by edge a, the candidate edges
   b = (h, x) with x free that are compatible with a (below) compete; the one with the smallest
   chi2 wins (ties by the smaller x), x is taken and the walk goes on from b, until no edge is
   compatible. Then inwards from the seed's inner hit, the same with candidate edges b = (x, h).
3. Compatible: for the triplet of hits (p, h, q) of edges a = (p, h) and b = (h, q) (inwards,
   b comes first: b = (p, h), a = (h, q)),
       chi2 = (phi'[b] - phi'[a])^2 / var_phi + (z'[b] - z'[a])^2 / var_z  <=  max_sigma^2
       var_phi = sigma_rphi^2 ((1 / (r_p d1))^2 + (1 / r_h (1 / d1 + 1 / d2))^2 + (1 / (r_q d2))^2) + (bend_rad / r_h)^2
       var_z   = sigma_z^2 ((1 / d1)^2 + (1 / d1 + 1 / d2)^2 + (1 / d2)^2) + bend_rad^2
   with d1 = r_h - r_p and d2 = r_q - r_h: the slope differences the hit resolutions give, plus
   an allowance `bend_rad` for the slopes of a curved track changing with r (dphi/dr and dz/dr of
   a 1 GeV helix grow by a few 1e-6 rad/mm and 1e-3 between outer layers). A triplet with a radius
   or a radius difference of 0, or a chi2 that is not a number, is not compatible.
4. A track with at least min_hits hits is kept; a shorter one frees its hits again.
5. Tracks are numbered by their smallest hit index, ascending; hits on no track get -1.

Every hit is on at most one track, and the order of the edges does not matter (equal edges may
be repeated).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trigger_sim.kernels._angles import wrap_delta_phi
from trigger_sim.kernels._jit import njit
from trigger_sim.kernels.track_building import _check_inputs, edge_slopes


@dataclass(frozen=True)
class Walk:
    """The walk's parameters (see the module docstring); resolutions are the tracker's."""

    seed_cut: float = 0.1
    candidate_cut: float = 0.01
    max_sigma: float = 5.0
    bend_rad: float = 1e-3
    resolution_rphi_mm: float = 0.015
    resolution_z_mm: float = 0.05

    def __post_init__(self) -> None:
        for name in ("max_sigma", "resolution_rphi_mm", "resolution_z_mm"):
            if not getattr(self, name) > 0:
                raise ValueError(f"walk {name} must be > 0, got {getattr(self, name)}")
        if not self.bend_rad >= 0:
            raise ValueError(f"walk bend_rad must be >= 0, got {self.bend_rad}")
        for name in ("seed_cut", "candidate_cut"):  # a NaN cut passes no edge: no track, and no word why
            if np.isnan(getattr(self, name)):
                raise ValueError(f"walk {name} must be a number, got {getattr(self, name)}")


def _check_hits(n_hits: int, r_mm: np.ndarray, phi: np.ndarray, z_mm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The hit coordinates as contiguous float64 arrays of length n_hits."""
    arrays = tuple(np.ascontiguousarray(a, dtype=np.float64) for a in (r_mm, phi, z_mm))
    if any(a.shape != (n_hits,) for a in arrays):
        raise ValueError(f"r_mm, phi and z_mm {[a.shape for a in arrays]} must have one value per hit ({n_hits})")
    return arrays


def walk_tracks(
    n_hits: int,
    edges: np.ndarray,
    scores: np.ndarray,
    r_mm: np.ndarray,
    phi: np.ndarray,
    z_mm: np.ndarray,
    min_hits: int,
    walk: Walk = Walk(),
) -> tuple[np.ndarray, int]:
    """Tracks from scored hit-graph edges by the walk (numba); returns (track_of_hit int32, n_tracks).

    edges: (n_edges, 2) hit indices in [0, n_hits); scores: (n_edges,); r_mm, phi, z_mm: the hits.
    """
    edges, scores = _check_inputs(n_hits, edges, scores, min_hits)
    r, ph, z = _check_hits(n_hits, r_mm, phi, z_mm)
    track_of_hit, n_tracks = _walk_kernel(
        int(n_hits), edges, scores, r, ph, z, int(min_hits), float(walk.seed_cut), float(walk.candidate_cut),
        float(walk.max_sigma) ** 2, float(walk.bend_rad), float(walk.resolution_rphi_mm), float(walk.resolution_z_mm),
    )
    return track_of_hit, int(n_tracks)


def _triplet_chi2_formula(r_p, r_h, r_q, phi_ph, z_ph, phi_hq, z_hq, var_rphi, var_z, bend):
    """chi2 of step 3 for hits p, h, q at these radii and the slopes of the edges (p, h) and (h, q):
    arithmetic only, on scalars (compiled for the kernel) or arrays (the reference)."""
    d1 = r_h - r_p
    d2 = r_q - r_h
    t1 = 1.0 / (r_p * d1)
    t2 = 1.0 / r_h * (1.0 / d1 + 1.0 / d2)
    t3 = 1.0 / (r_q * d2)
    u2 = 1.0 / d1 + 1.0 / d2
    var_phi = var_rphi * (t1 * t1 + t2 * t2 + t3 * t3) + (bend / r_h) * (bend / r_h)
    var_zz = var_z * (1.0 / d1 * (1.0 / d1) + u2 * u2 + 1.0 / d2 * (1.0 / d2)) + bend * bend
    dp = phi_hq - phi_ph
    dz = z_hq - z_ph
    return dp * dp / var_phi + dz * dz / var_zz


_triplet_chi2_compiled = njit(_triplet_chi2_formula)


@njit
def _triplet_chi2(r_p, r_h, r_q, phi_ph, z_ph, phi_hq, z_hq, var_rphi, var_z, bend):
    """`_triplet_chi2_formula`, NaN for a triplet with a radius or a radius difference of 0."""
    if r_p == 0.0 or r_h == 0.0 or r_q == 0.0 or r_h - r_p == 0.0 or r_q - r_h == 0.0:
        return np.nan
    return _triplet_chi2_compiled(r_p, r_h, r_q, phi_ph, z_ph, phi_hq, z_hq, var_rphi, var_z, bend)


@njit
def _walk_kernel(n_hits, edges, scores, r, phi, z, min_hits, seed_cut, candidate_cut, max_chi2, bend, sigma_rphi, sigma_z):
    n_edges = edges.shape[0]
    var_rphi = sigma_rphi * sigma_rphi
    var_z = sigma_z * sigma_z
    slope_phi = np.empty(n_edges)
    slope_z = np.empty(n_edges)
    for e in range(n_edges):
        i, o = edges[e, 0], edges[e, 1]
        dr = r[o] - r[i]
        if dr == 0.0:
            slope_phi[e] = np.nan
            slope_z[e] = np.nan
        else:
            slope_phi[e] = wrap_delta_phi(phi[o] - phi[i]) / dr
            slope_z[e] = (z[o] - z[i]) / dr
    # Candidate edges of each hit, outgoing and incoming (compressed rows).
    start_out = np.zeros(n_hits + 1, np.int64)
    start_in = np.zeros(n_hits + 1, np.int64)
    n_seeds = 0
    for e in range(n_edges):
        if edges[e, 0] == edges[e, 1]:
            continue
        if scores[e] > candidate_cut:
            start_out[edges[e, 0] + 1] += 1
            start_in[edges[e, 1] + 1] += 1
        if scores[e] > seed_cut:
            n_seeds += 1
    for h in range(n_hits):
        start_out[h + 1] += start_out[h]
        start_in[h + 1] += start_in[h]
    out_edges = np.empty(start_out[n_hits], np.int64)
    in_edges = np.empty(start_in[n_hits], np.int64)
    fill_out = start_out[:-1].copy()
    fill_in = start_in[:-1].copy()
    seeds = np.empty(n_seeds, np.int64)
    n_seeds = 0
    for e in range(n_edges):
        if edges[e, 0] == edges[e, 1]:
            continue
        if scores[e] > candidate_cut:
            out_edges[fill_out[edges[e, 0]]] = e
            fill_out[edges[e, 0]] += 1
            in_edges[fill_in[edges[e, 1]]] = e
            fill_in[edges[e, 1]] += 1
        if scores[e] > seed_cut:
            seeds[n_seeds] = e
            n_seeds += 1
    # Seeds by descending score, ties by (inner, outer): two stable sorts. The first is skipped
    # when the seeds are in (inner, outer) order already, as build_hit_graph's edges are.
    pair_key = np.empty(n_seeds, np.int64)
    in_order = True
    for k in range(n_seeds):
        pair_key[k] = np.int64(edges[seeds[k], 0]) * n_hits + edges[seeds[k], 1]
        if k > 0 and pair_key[k] < pair_key[k - 1]:
            in_order = False
    if not in_order:
        seeds = seeds[np.argsort(pair_key, kind="mergesort")]
    neg_score = np.empty(n_seeds)
    for k in range(n_seeds):
        neg_score[k] = -scores[seeds[k]]
    seeds = seeds[np.argsort(neg_score, kind="mergesort")]

    free = np.ones(n_hits, np.bool_)
    track = np.full(n_hits, -1, np.int64)
    chain = np.empty(n_hits, np.int64)
    n_tracks = 0
    for k in range(n_seeds):
        seed = seeds[k]
        if not (free[edges[seed, 0]] and free[edges[seed, 1]]):
            continue
        n_chain = 0
        for end in range(2):
            chain[n_chain] = edges[seed, end]
            free[edges[seed, end]] = False
            n_chain += 1
        for outward in (True, False):
            a = seed
            while True:
                best = -1
                best_chi2 = 0.0
                best_hit = 0
                if outward:
                    h = edges[a, 1]
                    first, last = start_out[h], start_out[h + 1]
                else:
                    h = edges[a, 0]
                    first, last = start_in[h], start_in[h + 1]
                for m in range(first, last):
                    b = out_edges[m] if outward else in_edges[m]
                    x = edges[b, 1] if outward else edges[b, 0]
                    if not free[x]:
                        continue
                    if outward:
                        chi2 = _triplet_chi2(r[edges[a, 0]], r[h], r[x], slope_phi[a], slope_z[a], slope_phi[b], slope_z[b],
                                             var_rphi, var_z, bend)
                    else:
                        chi2 = _triplet_chi2(r[x], r[h], r[edges[a, 1]], slope_phi[b], slope_z[b], slope_phi[a], slope_z[a],
                                             var_rphi, var_z, bend)
                    if not chi2 <= max_chi2:
                        continue
                    if best < 0 or chi2 < best_chi2 or (chi2 == best_chi2 and x < best_hit):
                        best, best_chi2, best_hit = b, chi2, x
                if best < 0:
                    break
                free[best_hit] = False
                chain[n_chain] = best_hit
                n_chain += 1
                a = best
        if n_chain >= min_hits:
            for m in range(n_chain):
                track[chain[m]] = n_tracks
            n_tracks += 1
        else:
            for m in range(n_chain):
                free[chain[m]] = True
    # Number the tracks by their smallest hit, ascending.
    renumber = np.full(n_tracks, -1, np.int64)
    track_of_hit = np.full(n_hits, -1, np.int32)
    n_numbered = 0
    for h in range(n_hits):
        t = track[h]
        if t < 0:
            continue
        if renumber[t] < 0:
            renumber[t] = n_numbered
            n_numbered += 1
        track_of_hit[h] = renumber[t]
    return track_of_hit, n_tracks


def _triplet_chi2_array(r_p, r_h, r_q, phi_ph, z_ph, phi_hq, z_hq, var_rphi: float, var_z: float, bend: float) -> np.ndarray:
    """Vectorised `_triplet_chi2`, with the same arithmetic."""
    with np.errstate(divide="ignore", invalid="ignore"):
        chi2 = _triplet_chi2_formula(r_p, r_h, r_q, phi_ph, z_ph, phi_hq, z_hq, var_rphi, var_z, bend)
    degenerate = (r_p == 0.0) | (r_h == 0.0) | (r_q == 0.0) | (r_h - r_p == 0.0) | (r_q - r_h == 0.0)
    return np.where(degenerate, np.nan, chi2)


def walk_tracks_reference(
    n_hits: int,
    edges: np.ndarray,
    scores: np.ndarray,
    r_mm: np.ndarray,
    phi: np.ndarray,
    z_mm: np.ndarray,
    min_hits: int,
    walk: Walk = Walk(),
) -> tuple[np.ndarray, int]:
    """Plain-numpy reference of `walk_tracks`: seeds sorted with lexsort, each step of the walk
    vectorised over the edges (O(edges) per step: for tests, not for events)."""
    edges, scores = _check_inputs(n_hits, edges, scores, min_hits)
    r, ph, z = _check_hits(n_hits, r_mm, phi, z_mm)
    i, o = edges[:, 0].astype(np.int64), edges[:, 1].astype(np.int64)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope_phi, slope_z = edge_slopes(r, ph, z, edges)
    flat = r[o] - r[i] == 0.0
    slope_phi[flat], slope_z[flat] = np.nan, np.nan
    candidate = (scores > walk.candidate_cut) & (i != o)
    seeds = np.flatnonzero((scores > walk.seed_cut) & (i != o))
    seeds = seeds[np.lexsort((o[seeds], i[seeds], -scores[seeds]))]
    var_rphi, var_z = walk.resolution_rphi_mm**2, walk.resolution_z_mm**2
    max_chi2 = float(walk.max_sigma) ** 2
    free = np.ones(n_hits, bool)
    track = np.full(n_hits, -1, np.int64)
    n_tracks = 0
    for seed in seeds:
        if not (free[i[seed]] and free[o[seed]]):
            continue
        chain = [i[seed], o[seed]]
        free[chain] = False
        for outward in (True, False):
            a = seed
            while True:
                h = o[a] if outward else i[a]
                b = np.flatnonzero(candidate & ((i == h) if outward else (o == h)))
                x = o[b] if outward else i[b]
                b, x = b[free[x]], x[free[x]]
                if outward:
                    chi2 = _triplet_chi2_array(r[i[a]], r[h], r[x], slope_phi[a], slope_z[a], slope_phi[b], slope_z[b],
                                               var_rphi, var_z, walk.bend_rad)
                else:
                    chi2 = _triplet_chi2_array(r[x], r[h], r[o[a]], slope_phi[b], slope_z[b], slope_phi[a], slope_z[a],
                                               var_rphi, var_z, walk.bend_rad)
                ok = chi2 <= max_chi2
                if not ok.any():
                    break
                pick = np.lexsort((x[ok], chi2[ok]))[0]
                a, hit = b[ok][pick], x[ok][pick]
                free[hit] = False
                chain.append(hit)
        if len(chain) >= min_hits:
            track[chain] = n_tracks
            n_tracks += 1
        else:
            free[chain] = True
    # Number the tracks by their smallest hit, ascending.
    on_track = np.flatnonzero(track >= 0)
    firsts = np.unique(track[on_track], return_index=True)[1]
    renumber = np.empty(n_tracks, np.int64)
    renumber[np.argsort(on_track[firsts], kind="stable")] = np.arange(n_tracks)
    track_of_hit = np.full(n_hits, -1, np.int32)
    track_of_hit[on_track] = renumber[track[on_track]]
    return track_of_hit, n_tracks
