"""build_hit_graph against its same-algorithm numpy reference, the all-pairs brute-force oracle
and hand-computed graphs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_sim.kernels import build_hit_graph, build_hit_graph_reference
from trigger_sim.kernels.hit_graph import build_hit_graph_all_pairs

IMPLEMENTATIONS = pytest.mark.parametrize(
    "build",
    [build_hit_graph, build_hit_graph_reference, build_hit_graph_all_pairs],
    ids=["numba", "numpy", "all_pairs"],
)
PI32 = float(np.float32(math.pi))  # rounds up: just above pi
ABOVE_MINUS_PI32 = float(np.nextafter(np.float32(-math.pi), np.float32(0.0)))


def hits(layer, r_mm, phi, z_mm) -> dict:
    return dict(
        layer=np.asarray(layer, np.int32),
        r_mm=np.asarray(r_mm, np.float32),
        phi=np.asarray(phi, np.float32),
        z_mm=np.asarray(z_mm, np.float32),
    )


# phi: arbitrary, plus values at and near the wrap and exact repeats.
phis = st.one_of(
    st.floats(ABOVE_MINUS_PI32, PI32, width=32),
    st.sampled_from([PI32, -PI32, 3.14, -3.14, 0.0, 0.01, -0.01]),
)


@st.composite
def hit_events(draw: st.DrawFn) -> dict:
    n_layers = draw(st.integers(3, 8))
    spacing_mm = draw(st.sampled_from([5.0, 20.0, 40.0]))
    # Random hits: a pool of coordinates sampled with repetition, so some hits are duplicated.
    pool = draw(
        st.lists(
            st.tuples(
                st.integers(0, n_layers - 1),
                st.floats(-15.0, 15.0, width=32),
                phis,
                st.floats(-400.0, 400.0, width=32),
            ),
            min_size=1,
            max_size=40,
        )
    )
    picks = draw(st.lists(st.integers(0, len(pool) - 1), max_size=60))
    layer = [pool[k][0] for k in picks]
    r = [30.0 + spacing_mm * pool[k][0] + pool[k][1] for k in picks]
    phi = [pool[k][2] for k in picks]
    z = [pool[k][3] for k in picks]
    # Track-like hits: near a helix from near the origin, so that edges are common.
    track = st.tuples(phis, st.floats(-2e-3, 2e-3), st.floats(-100.0, 100.0), st.floats(-2, 2))
    for phi0, curvature, z0_mm, cot_theta in draw(st.lists(track, max_size=4)):
        for lay in range(n_layers):
            r_mm = 30.0 + spacing_mm * lay
            layer.append(lay)
            r.append(r_mm)
            phi.append(math.remainder(phi0 + curvature * r_mm, 2.0 * math.pi))
            z.append(z0_mm + cot_theta * r_mm)
    return dict(
        **hits(layer, r, phi, z),
        n_layers=n_layers,
        phi_slope_max=draw(st.sampled_from([0.0, 0.0006, 0.005, 0.05, 0.5, 100.0])),
        z0_max_mm=draw(st.sampled_from([50.0, 200.0, 1000.0])),
        max_edges=draw(st.one_of(st.integers(0, 30), st.just(10_000))),
    )


@settings(max_examples=400, deadline=None)
@given(hit_events())
def test_numba_matches_reference_and_all_pairs(event: dict) -> None:
    """Kernel == same-algorithm reference (edges, order, total) == brute force (no edge missed)."""
    edges, n_total = build_hit_graph(**event)
    for oracle in (build_hit_graph_reference, build_hit_graph_all_pairs):
        want_edges, want_total = oracle(**event)
        assert want_edges.dtype == np.int32 and want_edges.shape[1:] == (2,)
        np.testing.assert_array_equal(edges, want_edges)
        assert n_total == want_total
    assert edges.dtype == np.int32 and edges.shape[1:] == (2,)


RADII_MM = [30.0, 70.0, 115.0, 170.0, 260.0]
CUTS = dict(phi_slope_max=0.0006, z0_max_mm=200.0, max_edges=1000)


@IMPLEMENTATIONS
def test_straight_tracks_give_their_chains(build) -> None:
    # Two tracks from the origin (z = r / 2), hits shuffled; far apart in phi.
    layer = list(range(5)) * 2
    r = RADII_MM * 2
    phi = [0.3] * 5 + [-2.0] * 5
    z = [0.5 * x for x in r]
    perm = np.random.default_rng(7).permutation(10)
    event = hits(*(np.asarray(v)[perm] for v in (layer, r, phi, z)))
    edges, n_total = build(**event, n_layers=5, **CUTS)
    position = np.argsort(perm)  # position[original hit] = index in the shuffled input
    want = sorted(
        (position[t * 5 + k], position[t * 5 + k + 1]) for t in range(2) for k in range(4)
    )
    np.testing.assert_array_equal(edges, np.array(want, np.int32).reshape(-1, 2))
    assert n_total == 8


@IMPLEMENTATIONS
@pytest.mark.parametrize("z0_max_mm, n_edges", [(50.0, 0), (100.0, 1)])
def test_z0_cut(build, z0_max_mm: float, n_edges: int) -> None:
    # z0 = 0 - 30 * (100 - 0) / 40 = -75 mm
    event = hits([0, 1], [30.0, 70.0], [0.1, 0.1], [0.0, 100.0])
    edges, n_total = build(**event, n_layers=2, phi_slope_max=0.0006, z0_max_mm=z0_max_mm,
                           max_edges=10)
    assert edges.shape == (n_edges, 2) and n_total == n_edges


@IMPLEMENTATIONS
def test_phi_wraps_and_slope_cut(build) -> None:
    # 0 -> 1: across the wrap, |dphi| = 0.0032 over 40 mm passes; 0 -> 2: dphi 0.1 fails.
    event = hits([0, 1, 1], [30.0, 70.0, 70.0], [3.14, -3.14, 3.04], [0.0, 0.0, 0.0])
    edges, n_total = build(**event, n_layers=2, **CUTS)
    np.testing.assert_array_equal(edges, [[0, 1]])
    assert n_total == 1


@IMPLEMENTATIONS
def test_no_edge_inwards_or_skipping_layers(build) -> None:
    event = hits([0, 1, 3], [70.0, 30.0, 170.0], [0.1, 0.1, 0.1], [0.0, 0.0, 0.0])
    edges, n_total = build(**event, n_layers=4, **CUTS)
    assert edges.shape == (0, 2) and n_total == 0


@IMPLEMENTATIONS
def test_truncation_keeps_first_edges_and_reports_total(build) -> None:
    # Three hits on each of two layers, all compatible: 9 edges, (i, j) for i in 3..5, j in 0..2.
    event = hits([1, 1, 1, 0, 0, 0], [70.0] * 3 + [30.0] * 3, [0.2] * 6, [0.0] * 6)
    edges, n_total = build(**event, n_layers=2, phi_slope_max=0.0006, z0_max_mm=200.0,
                           max_edges=4)
    np.testing.assert_array_equal(edges, [[3, 0], [3, 1], [3, 2], [4, 0]])
    assert n_total == 9
    edges, n_total = build(**event, n_layers=2, phi_slope_max=0.0006, z0_max_mm=200.0,
                           max_edges=0)
    assert edges.shape == (0, 2) and n_total == 9


@IMPLEMENTATIONS
def test_no_hits_gives_no_edges(build) -> None:
    edges, n_total = build(**hits([], [], [], []), n_layers=10, **CUTS)
    assert edges.shape == (0, 2) and edges.dtype == np.int32 and n_total == 0


@IMPLEMENTATIONS
def test_layer_out_of_range_is_rejected(build) -> None:
    with pytest.raises(ValueError, match="layer"):
        build(**hits([0, 3], [30.0, 70.0], [0.0, 0.0], [0.0, 0.0]), n_layers=3, **CUTS)


def test_warm_up_runs() -> None:
    from trigger_sim.kernels import warm_up

    warm_up()


def test_reference_in_small_blocks_matches_the_kernel(monkeypatch) -> None:
    """The reference splits its candidates into blocks; tiny blocks must not change the edges."""
    from trigger_sim.kernels import hit_graph

    rng = np.random.default_rng(11)
    n_hits = 600
    layer = rng.integers(0, 5, n_hits)
    event = hits(layer, 30.0 + 40.0 * layer + rng.uniform(-5, 5, n_hits),
                 rng.uniform(-math.pi, math.pi, n_hits), rng.uniform(-300, 300, n_hits))
    cuts = dict(n_layers=5, phi_slope_max=0.005, z0_max_mm=300.0, max_edges=100_000)
    want = build_hit_graph(**event, **cuts)
    monkeypatch.setattr(hit_graph, "_REFERENCE_BLOCK_CANDIDATES", 7)
    edges, n_total = build_hit_graph_reference(**event, **cuts)
    assert want[1] > 100 and n_total == want[1]
    np.testing.assert_array_equal(edges, want[0])
