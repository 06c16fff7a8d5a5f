"""Feature kernels: pure numba functions over arrays, each with a plain-numpy reference.

Call `warm_up()` once when a worker starts, before it asks for work: it runs every numba kernel
on tiny inputs, which loads the compiled code from numba's on-disk cache (or compiles it once).
"""

from __future__ import annotations

import numpy as np

from trigger_sim.kernels.calo_jets import (
    JET_EM_FRACTION,
    JET_ETA,
    JET_N_TOWERS,
    JET_PHI,
    JET_PT,
    JET_WIDTH,
    N_JET_COLUMNS,
    find_jets,
    find_jets_reference,
)
from trigger_sim.kernels.em_clusters import (
    CLUSTER_ET,
    CLUSTER_ETA,
    CLUSTER_HAD_ET,
    CLUSTER_ISO_ET,
    CLUSTER_PHI,
    N_CLUSTER_COLUMNS,
    find_em_clusters,
    find_em_clusters_reference,
)
from trigger_sim.kernels.graph_features import graph_features, graph_features_reference
from trigger_sim.kernels.helix_fit import (
    N_TRACK_COLUMNS,
    TRACK_CHARGE,
    TRACK_CHI2_NDF,
    TRACK_D0,
    TRACK_ETA,
    TRACK_N_HITS,
    TRACK_PHI,
    TRACK_PT,
    TRACK_Z0,
    fit_helices,
    fit_helices_reference,
)
from trigger_sim.kernels.hit_graph import build_hit_graph, build_hit_graph_reference
from trigger_sim.kernels.track_building import Rescue, build_tracks, build_tracks_reference, edge_slopes
from trigger_sim.kernels.track_walk import Walk, walk_tracks, walk_tracks_reference

__all__ = [
    "CLUSTER_ET",
    "CLUSTER_ETA",
    "CLUSTER_HAD_ET",
    "CLUSTER_ISO_ET",
    "CLUSTER_PHI",
    "JET_EM_FRACTION",
    "JET_ETA",
    "JET_N_TOWERS",
    "JET_PHI",
    "JET_PT",
    "JET_WIDTH",
    "N_CLUSTER_COLUMNS",
    "N_JET_COLUMNS",
    "N_TRACK_COLUMNS",
    "TRACK_CHARGE",
    "TRACK_CHI2_NDF",
    "TRACK_D0",
    "TRACK_ETA",
    "TRACK_N_HITS",
    "TRACK_PHI",
    "TRACK_PT",
    "TRACK_Z0",
    "build_hit_graph",
    "build_hit_graph_reference",
    "Rescue",
    "build_tracks",
    "build_tracks_reference",
    "edge_slopes",
    "find_em_clusters",
    "find_em_clusters_reference",
    "find_jets",
    "find_jets_reference",
    "fit_helices",
    "fit_helices_reference",
    "graph_features",
    "graph_features_reference",
    "Walk",
    "walk_tracks",
    "walk_tracks_reference",
    "warm_up",
]


def warm_up() -> None:
    """Run each numba kernel once on tiny inputs so its machine code is loaded (or compiled)."""
    towers = np.zeros((3, 4), dtype=np.float32)
    towers[1, 1] = 10.0
    find_jets(
        towers, towers, np.linspace(-1.0, 1.0, 3), np.linspace(-2.4, 2.4, 4),
        seed_gev=1.0, radius=0.4, min_pt_gev=1.0, max_jets=4,
    )
    find_em_clusters(
        towers, towers, np.linspace(-1.0, 1.0, 3), np.linspace(-2.4, 2.4, 4),
        seed_gev=1.0, max_clusters=4,
    )
    build_hit_graph(
        np.array([0, 1], dtype=np.int32),
        np.array([30.0, 70.0], dtype=np.float32),
        np.array([0.1, 0.1], dtype=np.float32),
        np.array([0.0, 0.0], dtype=np.float32),
        n_layers=2, phi_slope_max=0.001, z0_max_mm=200.0, max_edges=4,
    )
    graph_features(
        np.array([30.0, 70.0], dtype=np.float32),
        np.array([0.1, 0.1], dtype=np.float32),
        np.array([0.0, 10.0], dtype=np.float32),
        np.array([[0, 1]], dtype=np.int32),
    )
    track_of_hit, n_tracks = build_tracks(
        3, np.array([[0, 1], [1, 2]], dtype=np.int32), np.array([0.9, 0.8], dtype=np.float32),
        score_cut=0.5, min_hits=3,
    )
    walk_tracks(
        3, np.array([[0, 1], [1, 2]], dtype=np.int32), np.array([0.9, 0.8], dtype=np.float32),
        np.array([32.0, 72.0, 116.0], dtype=np.float32), np.array([0.1, 0.1, 0.1], dtype=np.float32),
        np.array([0.0, 1.0, 2.0], dtype=np.float32), min_hits=3,
    )
    fit_helices(
        track_of_hit, n_tracks,
        np.array([32.0, 72.0, 116.0], dtype=np.float32),
        np.array([0.1, 0.1, 0.1], dtype=np.float32),
        np.array([0.0, 1.0, 2.0], dtype=np.float32),
        field_t=2.0,
    )
