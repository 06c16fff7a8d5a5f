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
from trigger_sim.kernels.hit_graph import build_hit_graph, build_hit_graph_reference

__all__ = [
    "JET_EM_FRACTION",
    "JET_ETA",
    "JET_N_TOWERS",
    "JET_PHI",
    "JET_PT",
    "JET_WIDTH",
    "N_JET_COLUMNS",
    "build_hit_graph",
    "build_hit_graph_reference",
    "find_jets",
    "find_jets_reference",
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
    build_hit_graph(
        np.array([0, 1], dtype=np.int32),
        np.array([30.0, 70.0], dtype=np.float32),
        np.array([0.1, 0.1], dtype=np.float32),
        np.array([0.0, 0.0], dtype=np.float32),
        n_layers=2, phi_slope_max=0.001, z0_max_mm=200.0, max_edges=4,
    )
