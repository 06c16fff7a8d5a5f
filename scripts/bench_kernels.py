"""Time the numba feature kernels against their numpy references on synthetic events.

Prints the median time per call (ms) of each implementation and their ratio, per kernel and
pile-up. The ratio column is numba / numpy running the SAME algorithm (each `*_reference`
follows its kernel): what compilation buys. For the hit graph, a separate line gives the
algorithmic gain, numpy all pairs (`build_hit_graph_all_pairs`) / numpy with the kernel's phi
windows, in which there is no numba. A benchmark, not a test: the numbers depend on the machine.

    .venv/bin/python scripts/bench_kernels.py [--quick] [--repeat N]
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trigger_sim.kernels import (  # noqa: E402
    build_hit_graph,
    build_hit_graph_reference,
    build_tracks,
    build_tracks_reference,
    find_em_clusters,
    find_em_clusters_reference,
    find_jets,
    find_jets_reference,
    fit_helices,
    fit_helices_reference,
    graph_features,
    graph_features_reference,
    walk_tracks,
    walk_tracks_reference,
    warm_up,
)
from trigger_sim.kernels.hit_graph import build_hit_graph_all_pairs  # noqa: E402

LAYER_RADII_MM = np.array([32, 72, 116, 172, 260, 360, 500, 660, 820, 1000], dtype=np.float64)
HITS_PER_LAYER = {0: 60, 60: 2000, 200: 6500}  # by pile-up
HIT_GRAPH_CUTS = dict(phi_slope_max=0.0006, z0_max_mm=200.0, max_edges=2_000_000)
CALO_N_ETA, CALO_N_PHI, CALO_ETA_MAX = 50, 64, 2.5
CALO_CUTS = dict(seed_gev=2.0, radius=0.4, min_pt_gev=10.0, max_jets=32)
EM_CLUSTER_CUTS = dict(seed_gev=2.0, max_clusters=32)
TRACK_EVENTS = {0: (400, 25), 60: (15_000, 700), 200: (50_000, 2_300)}  # (hits, tracks) by pile-up
SCORED_EDGES_PER_HIT = 3.3
TRACK_CUTS = dict(score_cut=0.5, min_hits=3)
FIELD_T = 2.0


def tracker_event(pile_up: int, rng: np.random.Generator) -> dict[str, Any]:
    """Hits on 10 barrel layers: ~5% from straight-ish tracks off the beam line, rest random."""
    per_layer = HITS_PER_LAYER[pile_up]
    n_tracks = max(per_layer // 20, 3)
    n_layers = LAYER_RADII_MM.size
    # Tracks: a hit on every layer, phi bending slowly with r, z along a line from z0.
    phi0 = rng.uniform(-math.pi, math.pi, n_tracks)
    curvature = rng.uniform(-3e-4, 3e-4, n_tracks)  # rad/mm
    z0 = rng.normal(0.0, 50.0, n_tracks)
    cot_theta = rng.uniform(-1.0, 1.0, n_tracks)
    track_r = np.tile(LAYER_RADII_MM, n_tracks)
    track_layer = np.tile(np.arange(n_layers), n_tracks)
    track_phi = np.repeat(phi0, n_layers) + np.repeat(curvature, n_layers) * track_r
    track_z = np.repeat(z0, n_layers) + np.repeat(cot_theta, n_layers) * track_r
    # Random hits fill each layer up to per_layer.
    n_random = max(per_layer - n_tracks, 0) * n_layers
    random_layer = np.repeat(np.arange(n_layers), max(per_layer - n_tracks, 0))
    layer = np.concatenate([track_layer, random_layer])
    r = np.concatenate([track_r, LAYER_RADII_MM[random_layer]])
    phi = np.concatenate([track_phi, rng.uniform(-math.pi, math.pi, n_random)])
    z = np.concatenate([track_z, rng.uniform(-1000.0, 1000.0, n_random)])
    phi = np.remainder(phi + math.pi, 2 * math.pi) - math.pi
    order = rng.permutation(layer.size)
    return dict(
        layer=layer[order].astype(np.int32),
        r_mm=r[order].astype(np.float32),
        phi=phi[order].astype(np.float32),
        z_mm=z[order].astype(np.float32),
        n_layers=n_layers,
        **HIT_GRAPH_CUTS,
    )


def calo_event(pile_up: int, rng: np.random.Generator) -> dict[str, Any]:
    """A 50x64 tower grid: a few jets (Gaussian profiles) on top of pile-up noise."""
    eta_step = 2 * CALO_ETA_MAX / CALO_N_ETA
    eta = -CALO_ETA_MAX + (np.arange(CALO_N_ETA) + 0.5) * eta_step
    phi = -math.pi + (np.arange(CALO_N_PHI) + 0.5) * (2 * math.pi / CALO_N_PHI)
    # Noise: a pile-up dependent fraction of towers with exponentially distributed energy.
    occupancy = min(0.05 + 0.004 * pile_up, 0.9)
    hit = rng.random((CALO_N_ETA, CALO_N_PHI)) < occupancy
    em = np.where(hit, rng.exponential(0.4, hit.shape), 0.0)
    had = np.where(hit, rng.exponential(0.6, hit.shape), 0.0)
    d_eta = eta[:, None]
    for _ in range(rng.integers(2, 6)):
        jet_eta, jet_phi = rng.uniform(-2.3, 2.3), rng.uniform(-math.pi, math.pi)
        jet_e = rng.uniform(30.0, 300.0) * math.cosh(jet_eta)
        d_phi = np.angle(np.exp(1j * (phi[None, :] - jet_phi)))
        profile = np.exp(-((d_eta - jet_eta) ** 2 + d_phi**2) / (2 * 0.1**2))
        profile /= profile.sum()
        em_fraction = rng.uniform(0.1, 0.9)
        em += jet_e * em_fraction * profile
        had += jet_e * (1 - em_fraction) * profile
    return dict(
        em_gev=em.astype(np.float32),
        had_gev=had.astype(np.float32),
        eta_centers=eta,
        phi_centers=phi,
        **CALO_CUTS,
    )


def em_calo_event(pile_up: int, rng: np.random.Generator) -> dict[str, Any]:
    """The calo_event grid plus a few electron-like deposits (most EM energy in one tower)."""
    event = calo_event(pile_up, rng)
    em = event["em_gev"].astype(np.float64)
    for _ in range(rng.integers(1, 4)):
        ieta, iphi = rng.integers(1, CALO_N_ETA - 1), rng.integers(0, CALO_N_PHI)
        e_gev = rng.uniform(20.0, 80.0) * math.cosh(event["eta_centers"][ieta])
        em[ieta, iphi] += 0.9 * e_gev
        em[ieta + 1, iphi] += 0.06 * e_gev
        em[ieta, (iphi + 1) % CALO_N_PHI] += 0.04 * e_gev
    grid = {key: value for key, value in event.items() if key not in CALO_CUTS}
    return dict(grid, em_gev=em.astype(np.float32), **EM_CLUSTER_CUTS)


def graph_event(pile_up: int, rng: np.random.Generator) -> dict[str, Any]:
    """A tracker event's hits and its hit graph: the inputs of `graph_features`."""
    event = tracker_event(pile_up, rng)
    edges, _ = build_hit_graph(**event)
    return dict(r_mm=event["r_mm"], phi=event["phi"], z_mm=event["z_mm"], edges=edges)


def scored_tracker_event(
    pile_up: int, rng: np.random.Generator
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Hits of helix tracks (on 5-10 layers, smeared) and noise, and a scored hit graph.

    The graph holds the edges along each track, scored U(0.6, 1), and fake edges between random
    hits on adjacent layers, scored U(0, 1)^20 (3 % above 0.5), as a GNN might. Returns the
    hits (r_mm, phi, z_mm) and the `build_tracks` arguments.
    """
    n_hits, n_tracks = TRACK_EVENTS[pile_up]
    n_layers = LAYER_RADII_MM.size
    radius_mm = (0.7 + rng.exponential(3.0, n_tracks)) / (0.3 * FIELD_T) * 1000.0  # pT in GeV
    charge = rng.choice([-1.0, 1.0], n_tracks)
    turn = np.arcsin(LAYER_RADII_MM[None, :] / (2.0 * radius_mm[:, None]))
    track_phi = rng.uniform(-math.pi, math.pi, n_tracks)[:, None] - charge[:, None] * turn
    cot_theta = np.sinh(rng.uniform(-2.5, 2.5, n_tracks))[:, None]
    track_z = rng.normal(0.0, 50.0, n_tracks)[:, None] + 2.0 * radius_mm[:, None] * turn * cot_theta
    on_track = np.arange(n_layers)[None, :] < rng.integers(5, n_layers + 1, n_tracks)[:, None]
    track, track_layer = np.nonzero(on_track)  # hits ordered by (track, layer)
    n_on_track, n_noise = track.size, n_hits - track.size
    layer = np.concatenate([track_layer, rng.integers(0, n_layers, n_noise)])
    r = LAYER_RADII_MM[layer]
    phi = np.concatenate([
        track_phi[on_track] + rng.normal(0.0, 0.015, n_on_track) / r[:n_on_track],
        rng.uniform(-math.pi, math.pi, n_noise),
    ])
    z = np.concatenate([
        track_z[on_track] + rng.normal(0.0, 0.05, n_on_track),
        rng.uniform(-1000.0, 1000.0, n_noise),
    ])
    # True edges join consecutive hits of a track; fake ones random hits on adjacent layers.
    inner = np.flatnonzero(track[:-1] == track[1:])
    true_edges = np.stack([inner, inner + 1], axis=1)
    by_layer = np.argsort(layer, kind="stable")
    layer_start = np.searchsorted(layer[by_layer], np.arange(n_layers + 1))
    fake_layer = rng.integers(0, n_layers - 1, int(SCORED_EDGES_PER_HIT * n_hits) - inner.size)

    def hit_on(lay: np.ndarray) -> np.ndarray:
        count = layer_start[lay + 1] - layer_start[lay]
        return by_layer[layer_start[lay] + (rng.random(lay.size) * count).astype(np.int64)]

    fake_edges = np.stack([hit_on(fake_layer), hit_on(fake_layer + 1)], axis=1)
    # Shuffle the hits: hit k of the arrays above becomes hit position[k].
    position = rng.permutation(n_hits)
    source = np.argsort(position)
    edges = position[np.concatenate([true_edges, fake_edges])]
    scores = np.concatenate([rng.uniform(0.6, 1.0, inner.size), rng.random(fake_layer.size) ** 20])
    order = np.lexsort((edges[:, 1], edges[:, 0]))  # as build_hit_graph sorts them
    hits = dict(
        r_mm=r[source].astype(np.float32),
        phi=(np.remainder(phi + math.pi, 2.0 * math.pi) - math.pi)[source].astype(np.float32),
        z_mm=z[source].astype(np.float32),
    )
    graph = dict(
        n_hits=n_hits, edges=edges[order].astype(np.int32), scores=scores[order].astype(np.float32),
        **TRACK_CUTS,
    )
    return hits, graph


def scored_graph_event(pile_up: int, rng: np.random.Generator) -> dict[str, Any]:
    """The inputs of `build_tracks`: a scored hit graph (see scored_tracker_event)."""
    return scored_tracker_event(pile_up, rng)[1]


def walk_event(pile_up: int, rng: np.random.Generator) -> dict[str, Any]:
    """The inputs of `walk_tracks`: the same scored hit graph as scored_graph_event, with its hits."""
    hits, graph = scored_tracker_event(pile_up, rng)
    return dict(n_hits=graph["n_hits"], edges=graph["edges"], scores=graph["scores"], min_hits=graph["min_hits"], **hits)


def track_fit_event(pile_up: int, rng: np.random.Generator) -> dict[str, Any]:
    """The inputs of `fit_helices`: the hits and the tracks build_tracks finds among them."""
    hits, graph = scored_tracker_event(pile_up, rng)
    track_of_hit, n_tracks = build_tracks(**graph)
    return dict(track_of_hit=track_of_hit, n_tracks=n_tracks, **hits, field_t=FIELD_T)


def median_ms(func: Callable[..., Any], kwargs: dict[str, Any], repeat: int) -> float:
    """Median wall time of `repeat` calls, in ms."""
    times_s = []
    for _ in range(repeat):
        start = time.perf_counter()
        func(**kwargs)
        times_s.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times_s)


def algorithmic_gain_line(event: dict[str, Any], windowed_ms: float, repeat: int) -> str:
    """The hit graph's algorithmic gain: numpy all pairs against numpy with the kernel's windows."""
    all_pairs_ms = median_ms(build_hit_graph_all_pairs, event, repeat)
    return (f"{'':<15} {'':>7} algorithmic gain, not in the ratio: numpy all pairs {all_pairs_ms:.1f} ms"
            f" / numpy windows {windowed_ms:.1f} ms = {all_pairs_ms / windowed_ms:.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one repetition per measurement")
    parser.add_argument("--repeat", type=int, default=5, help="repetitions per measurement")
    args = parser.parse_args()
    repeat = 1 if args.quick else args.repeat

    start = time.perf_counter()
    warm_up()
    print(f"warm_up: {1e3 * (time.perf_counter() - start):.0f} ms (cache load or compile)")

    rng = np.random.default_rng(2024)
    kernels = [
        ("hit_graph", tracker_event, build_hit_graph, build_hit_graph_reference),
        ("calo_jets", calo_event, find_jets, find_jets_reference),
        ("em_clusters", em_calo_event, find_em_clusters, find_em_clusters_reference),
        ("graph_features", graph_event, graph_features, graph_features_reference),
        ("track_building", scored_graph_event, build_tracks, build_tracks_reference),
        ("helix_fit", track_fit_event, fit_helices, fit_helices_reference),
    ]
    print(f"{'kernel':<15} {'pile-up':>7} {'numba ms':>10} {'numpy ms':>10} {'ratio':>8}  output"
          "   (ratio: numba / numpy, same algorithm)")
    for name, make_event, fast, reference in kernels:
        for pile_up in HITS_PER_LAYER:
            event = make_event(pile_up, rng)
            result = fast(**event)
            reference(**event)  # first call: page in numpy code paths
            fast_ms = median_ms(fast, event, repeat)
            reference_ms = median_ms(reference, event, repeat)
            if name == "hit_graph":
                output = f"{event['layer'].size} hits, {result[1]} edges"
            elif name == "em_clusters":
                output = f"{len(result)} clusters"
            elif name == "graph_features":
                output = f"{len(result[0])} nodes, {len(result[1])} edges"
            elif name == "track_building":
                output = f"{event['n_hits']} hits, {len(event['edges'])} edges, {result[1]} tracks"
            elif name == "helix_fit":
                on_track = int(np.count_nonzero(event["track_of_hit"] >= 0))
                output = f"{len(result)} tracks, {on_track} hits on them"
            else:
                output = f"{len(result)} jets"
            print(
                f"{name:<15} {pile_up:>7} {fast_ms:>10.3f} {reference_ms:>10.1f}"
                f" {reference_ms / fast_ms:>7.1f}x  {output}"
            )
            if name == "hit_graph":
                print(algorithmic_gain_line(event, reference_ms, repeat))


if __name__ == "__main__":
    main()
