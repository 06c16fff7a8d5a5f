"""graph_features against its numpy reference and against hand-computed features."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_sim.kernels import build_hit_graph, graph_features, graph_features_reference

IMPLEMENTATIONS = pytest.mark.parametrize(
    "features", [graph_features, graph_features_reference], ids=["numba", "numpy"]
)
PI32 = float(np.float32(math.pi))  # rounds up: just above pi
phis = st.one_of(
    st.floats(-PI32, PI32, width=32),
    st.sampled_from([PI32, -PI32, 3.14, -3.14, 0.0, 0.01, -0.01]),
)


@st.composite
def graphs(draw: st.DrawFn) -> dict:
    """Hits from a small pool (so some coincide: dr == 0, r == 0) and random edges between them."""
    pool = draw(
        st.lists(
            st.tuples(
                st.one_of(st.floats(0.0, 1100.0, width=32), st.sampled_from([0.0, 32.0, 72.0])),
                phis,
                st.floats(-1100.0, 1100.0, width=32),
            ),
            min_size=1,
            max_size=30,
        )
    )
    picks = draw(st.lists(st.integers(0, len(pool) - 1), min_size=1, max_size=40))
    n = len(picks)
    edges = draw(st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=80))
    return dict(
        r_mm=np.array([pool[k][0] for k in picks], np.float32),
        phi=np.array([pool[k][1] for k in picks], np.float32),
        z_mm=np.array([pool[k][2] for k in picks], np.float32),
        edges=np.array(edges, np.int32).reshape(-1, 2),
    )


@settings(max_examples=300, deadline=None)
@given(graphs())
def test_numba_matches_reference(graph: dict) -> None:
    nodes, edge_features = graph_features(**graph)
    want_nodes, want_edges = graph_features_reference(**graph)
    assert nodes.dtype == edge_features.dtype == np.float32
    assert nodes.shape == (graph["r_mm"].size, 3)
    assert edge_features.shape == (len(graph["edges"]), 6)
    np.testing.assert_array_equal(nodes, want_nodes)
    np.testing.assert_array_equal(edge_features, want_edges)
    assert np.all(np.isfinite(nodes)) and np.all(np.isfinite(edge_features))


@settings(max_examples=100, deadline=None)
@given(graphs(), st.floats(-math.pi, math.pi))
def test_features_do_not_depend_on_a_rotation_in_phi(graph: dict, angle: float) -> None:
    nodes, edge_features = graph_features(**graph)
    rotated = np.remainder(graph["phi"].astype(np.float64) + angle + math.pi, 2 * math.pi) - math.pi
    rot_nodes, rot_edges = graph_features(**{**graph, "phi": rotated})
    np.testing.assert_array_equal(rot_nodes, nodes)
    for column in (0, 2, 4, 5):  # dr, dz, z0, deta: phi does not enter
        np.testing.assert_array_equal(rot_edges[:, column], edge_features[:, column])
    # dphi only moves by the float32 rounding of the rotated angles (modulo 2 pi: +-pi are one angle)
    moved = np.remainder(rot_edges[:, 1].astype(np.float64) - edge_features[:, 1] + math.pi, 2 * math.pi) - math.pi
    np.testing.assert_allclose(moved, 0.0, atol=1e-6)


@IMPLEMENTATIONS
def test_hand_computed_edge(features) -> None:
    # Inner hit r=30, z=10; outer hit r=70, z=50 and across the phi wrap.
    nodes, edge_features = features(
        np.array([30.0, 70.0], np.float32),
        np.array([3.14, -3.14], np.float32),
        np.array([10.0, 50.0], np.float32),
        np.array([[0, 1]], np.int32),
    )
    eta = [math.asinh(10 / 30), math.asinh(50 / 70)]
    np.testing.assert_allclose(nodes, [[30.0, 10.0, eta[0]], [70.0, 50.0, eta[1]]], rtol=1e-6)
    dphi = float(np.float32(-3.14)) - float(np.float32(3.14)) + 2 * math.pi
    assert 0 < dphi < 0.01
    want = [40.0, dphi, 40.0, dphi / 40.0, 10.0 - 30.0 * 40.0 / 40.0, eta[1] - eta[0]]
    np.testing.assert_allclose(edge_features, [want], rtol=1e-5)
    # the reversed edge flips the signs of the differences, not of z0 (computed from the inner end)
    _, reverse = features(nodes[:, 0], np.array([3.14, -3.14], np.float32), nodes[:, 1], np.array([[1, 0]]))
    np.testing.assert_allclose(reverse[0, [0, 1, 2, 5]], -edge_features[0, [0, 1, 2, 5]], rtol=1e-6)
    assert reverse[0, 4] == pytest.approx(50.0 - 70.0 * 40.0 / 40.0)


@IMPLEMENTATIONS
def test_degenerate_hits_give_zeros_not_infinities(features) -> None:
    nodes, edge_features = features(
        np.array([0.0, 0.0, 30.0], np.float32),
        np.zeros(3, np.float32),
        np.array([5.0, 7.0, 1.0], np.float32),
        np.array([[0, 1], [2, 2]], np.int32),
    )
    assert nodes[0, 2] == 0.0 and nodes[1, 2] == 0.0  # r == 0: eta 0
    np.testing.assert_array_equal(edge_features[:, [3, 4]], 0.0)  # dr == 0: slope and z0 are 0
    assert edge_features[0, 2] == 2.0


@IMPLEMENTATIONS
def test_no_edges_and_no_hits(features) -> None:
    nodes, edge_features = features(np.ones(3), np.zeros(3), np.zeros(3), np.empty((0, 2), np.int32))
    assert nodes.shape == (3, 3) and edge_features.shape == (0, 6) and edge_features.dtype == np.float32
    nodes, edge_features = features(np.empty(0), np.empty(0), np.empty(0), np.empty(0, np.int64))
    assert nodes.shape == (0, 3) and edge_features.shape == (0, 6)


@IMPLEMENTATIONS
@pytest.mark.parametrize(
    "edges, match",
    [
        (np.array([[0, 3]]), "edge indices"),
        (np.array([[-1, 0]]), "edge indices"),
        (np.array([0, 1, 2]), r"shape \(E, 2\)"),
        (np.array([[0.0, 1.0]]), "integer"),
    ],
)
def test_bad_edges_are_rejected(features, edges: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        features(np.ones(3), np.zeros(3), np.zeros(3), edges)


@IMPLEMENTATIONS
def test_mismatched_hit_arrays_are_rejected(features) -> None:
    with pytest.raises(ValueError, match="same length"):
        features(np.ones(3), np.zeros(2), np.zeros(3), np.empty((0, 2), np.int32))


def test_hit_graph_edges_match_the_graph_cuts() -> None:
    """On build_hit_graph output, phi_slope and z0 are the quantities its cuts bound."""
    rng = np.random.default_rng(3)
    n = 400
    layer = rng.integers(0, 5, n).astype(np.int32)
    r = (30.0 + 40.0 * layer).astype(np.float32)
    phi = rng.uniform(-0.2, 0.2, n).astype(np.float32)
    z = rng.uniform(-100, 100, n).astype(np.float32)
    edges, _ = build_hit_graph(layer, r, phi, z, 5, phi_slope_max=0.002, z0_max_mm=150.0, max_edges=100_000)
    assert len(edges) > 50
    _, edge_features = graph_features(r, phi, z, edges)
    assert np.all(edge_features[:, 0] > 0)
    assert np.all(np.abs(edge_features[:, 3]) <= np.float32(0.002))
    assert np.all(np.abs(edge_features[:, 4]) <= np.float32(150.0))


@pytest.mark.parametrize("features", [graph_features, graph_features_reference], ids=["numba", "numpy"])
def test_radii_a_subnormal_apart_give_finite_slopes(features) -> None:
    """Two hits whose radii differ by the smallest float32 step: the slopes are 0 (the same
    radius), not dphi / 1e-45 overflowing float32 to inf."""
    tiny = float(np.nextafter(np.float32(0), np.float32(1)))
    r = np.array([0.0, tiny], np.float32)
    nodes, edge_features = features(r_mm=r, phi=np.array([0.0, 3.0], np.float32), z_mm=np.array([0.0, 5.0], np.float32),
                                    edges=np.array([[0, 1]], np.int32))
    assert np.all(np.isfinite(edge_features)) and np.all(np.isfinite(nodes))
    assert edge_features[0, 3] == 0.0 and edge_features[0, 4] == 0.0
