"""walk_tracks against its numpy reference, and the properties its definition implies."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_sim.kernels import Walk, walk_tracks, walk_tracks_reference

IMPLEMENTATIONS = pytest.mark.parametrize("walk", [walk_tracks, walk_tracks_reference], ids=["numba", "numpy"])
RADII_MM = (32.0, 72.0, 116.0, 172.0, 260.0, 360.0)

# Scores: a few repeated values for exact ties (signed zeros compare equal), arbitrary ones, NaN.
scores_st = st.one_of(st.sampled_from([0.0, -0.0, 0.05, 0.5, 0.9, 1.0]), st.floats(0.0, 1.0), st.just(float("nan")))
walks = st.builds(Walk, seed_cut=st.sampled_from([-1.0, 0.0, 0.1, 0.5, 0.9]), candidate_cut=st.sampled_from([-1.0, 0.0, 0.01, 0.5]),
                  max_sigma=st.sampled_from([0.5, 3.0, 5.0, 1e3]), bend_rad=st.sampled_from([0.0, 1e-3, 0.1]))


@st.composite
def layered_graphs(draw: st.DrawFn) -> dict:
    """Hits on barrel layers (phi and z near a few tracks' so that triplets often agree) and
    scored edges from a layer to the next one out, as build_hit_graph makes them."""
    n_layers = draw(st.integers(2, len(RADII_MM)))
    layer = np.array(draw(st.lists(st.integers(0, n_layers - 1), max_size=40)), dtype=np.int32)
    r = np.asarray(RADII_MM)[layer]
    slope = np.array(draw(st.lists(st.sampled_from([0.0, 1e-5, -2e-4]), min_size=layer.size, max_size=layer.size)))
    jitter = np.array(draw(st.lists(st.sampled_from([0.0, 1e-5, -3e-4, 0.1]), min_size=layer.size, max_size=layer.size)))
    cot = np.array(draw(st.lists(st.sampled_from([0.0, 0.5]), min_size=layer.size, max_size=layer.size)))
    phi, z = slope * r + jitter, cot * r + 1000.0 * jitter
    by_layer = [np.flatnonzero(layer == lay) for lay in range(n_layers)]
    picks = st.tuples(st.integers(0, n_layers - 2), st.integers(0, 99), st.integers(0, 99))
    pairs = []
    for lay, a, b in draw(st.lists(picks, max_size=100)):
        inner, outer = by_layer[lay], by_layer[lay + 1]
        if inner.size and outer.size:
            pairs.append((int(inner[a % inner.size]), int(outer[b % outer.size])))
    scores = draw(st.lists(scores_st, min_size=len(pairs), max_size=len(pairs)))
    repeats = draw(st.lists(st.integers(0, max(len(pairs) - 1, 0)), max_size=5)) if pairs else []
    pairs += [pairs[k] for k in repeats]  # equal edges repeated verbatim
    scores += [scores[k] for k in repeats]
    return dict(n_hits=layer.size, edges=np.array(pairs, dtype=np.int32).reshape(-1, 2), scores=np.array(scores, np.float32),
                r_mm=r.astype(np.float32), phi=phi.astype(np.float32), z_mm=z.astype(np.float32), layer=layer)


@st.composite
def arbitrary_graphs(draw: st.DrawFn) -> dict:
    """Any directed edges (cycles, back edges, self-loops) on hits at any radii (0 and equal ones too)."""
    n_hits = draw(st.integers(1, 30))
    pairs = draw(st.lists(st.tuples(st.integers(0, n_hits - 1), st.integers(0, n_hits - 1)), max_size=80))
    scores = draw(st.lists(scores_st, min_size=len(pairs), max_size=len(pairs)))
    coords = st.lists(st.sampled_from([0.0, 30.0, 70.0, 70.0, 110.0, -5.0]), min_size=n_hits, max_size=n_hits)
    angles = st.lists(st.sampled_from([0.0, 1e-3, 3.1, -3.1, 0.5]), min_size=n_hits, max_size=n_hits)
    return dict(n_hits=n_hits, edges=np.array(pairs, dtype=np.int64).reshape(-1, 2), scores=np.array(scores, np.float64),
                r_mm=np.array(draw(coords)), phi=np.array(draw(angles)), z_mm=np.array(draw(coords)))


def run(walk, graph: dict, min_hits: int, params: Walk = Walk()) -> tuple[np.ndarray, int]:
    return walk(graph["n_hits"], graph["edges"], graph["scores"], graph["r_mm"], graph["phi"], graph["z_mm"], min_hits, params)


def tracks_of(track_of_hit: np.ndarray) -> list[frozenset[int]]:
    n_tracks = int(track_of_hit.max()) + 1 if track_of_hit.size else 0
    return [frozenset(np.flatnonzero(track_of_hit == t).tolist()) for t in range(n_tracks)]


@settings(max_examples=300, deadline=None)
@given(st.one_of(layered_graphs(), arbitrary_graphs()), walks, st.integers(1, 5))
def test_numba_matches_reference(graph: dict, params: Walk, min_hits: int) -> None:
    track_of_hit, n_tracks = run(walk_tracks, graph, min_hits, params)
    want_track, want_n = run(walk_tracks_reference, graph, min_hits, params)
    assert track_of_hit.dtype == np.int32 and track_of_hit.shape == (graph["n_hits"],)
    np.testing.assert_array_equal(track_of_hit, want_track)
    assert n_tracks == want_n


@settings(max_examples=200, deadline=None)
@given(layered_graphs(), walks, st.integers(1, 5))
def test_tracks_are_seeded_walks_of_candidate_edges(graph: dict, params: Walk, min_hits: int) -> None:
    track_of_hit, n_tracks = run(walk_tracks, graph, min_hits, params)
    layer, edges, scores = graph["layer"], graph["edges"], graph["scores"].astype(np.float64)
    assert track_of_hit.min(initial=-1) >= -1 and track_of_hit.max(initial=-1) == n_tracks - 1
    _, first_hit = np.unique(track_of_hit[track_of_hit >= 0], return_index=True)  # ids by smallest hit
    assert np.all(np.diff(np.flatnonzero(track_of_hit >= 0)[first_hit]) > 0)
    for hits in tracks_of(track_of_hit):
        assert len(hits) >= min_hits
        # One hit per layer on consecutive layers, each joined to the next by a candidate edge (or the seed)...
        track_layers = np.sort(layer[sorted(hits)])
        np.testing.assert_array_equal(track_layers, np.arange(len(hits)) + track_layers[0])
        by_layer = {int(layer[h]): h for h in hits}
        joins = [(edges[:, 0] == by_layer[lay]) & (edges[:, 1] == by_layer[lay + 1]) for lay in range(track_layers[0], track_layers[-1])]
        usable = scores > min(params.candidate_cut, params.seed_cut)
        assert all((j & usable).any() for j in joins)
        # ...and at least one of them a seed.
        assert any((j & (scores > params.seed_cut)).any() for j in joins)


@settings(max_examples=100, deadline=None)
@given(st.one_of(layered_graphs(), arbitrary_graphs()), walks, st.integers(1, 4), st.randoms(use_true_random=False))
def test_edge_order_does_not_matter(graph: dict, params: Walk, min_hits: int, rnd) -> None:
    order = list(range(len(graph["scores"])))
    rnd.shuffle(order)
    shuffled = dict(graph, edges=graph["edges"][order], scores=graph["scores"][order])
    np.testing.assert_array_equal(run(walk_tracks, shuffled, min_hits, params)[0], run(walk_tracks, graph, min_hits, params)[0])


def two_tracks_crossing(offset: float) -> dict:
    """Two straight tracks on four layers (hits 0-3 at phi 1e-5 r, 4-7 `offset` further in phi):
    the edges from one track's second hit to the other's third score higher than its own."""
    r = np.array(RADII_MM[:4] * 2)
    phi = np.concatenate([1e-5 * r[:4], offset + 1e-5 * r[4:]])
    edges = np.array([[0, 1], [1, 2], [2, 3], [4, 5], [5, 6], [6, 7], [1, 6], [5, 2]])
    scores = np.array([0.95, 0.5, 0.95, 0.95, 0.5, 0.95, 0.8, 0.8])
    return dict(n_hits=8, edges=edges, scores=scores, r_mm=r, phi=phi, z_mm=0.3 * r)


@IMPLEMENTATIONS
@pytest.mark.parametrize("offset", [2e-4, 0.05], ids=["compatible-but-worse", "bending-away"])
def test_the_walk_follows_the_direction_not_the_higher_score(walk, offset: float) -> None:
    track_of_hit, n_tracks = run(walk, two_tracks_crossing(offset), min_hits=4)
    assert n_tracks == 2 and tracks_of(track_of_hit) == [frozenset({0, 1, 2, 3}), frozenset({4, 5, 6, 7})]


@IMPLEMENTATIONS
def test_edges_below_the_candidate_cut_and_nan_scores_are_never_used(walk) -> None:
    graph = two_tracks_crossing(0.05)
    graph["scores"] = np.array([0.95, 0.005, 0.95, 0.95, float("nan"), 0.95, 0.8, 0.8])
    track_of_hit, n_tracks = run(walk, graph, min_hits=3)
    assert n_tracks == 0 and np.all(track_of_hit == -1)  # the crossing edges bend away: pieces of two hits


@IMPLEMENTATIONS
def test_a_short_track_frees_its_hits(walk) -> None:
    # The best seed 1-2 grows to 0-1-2 only (2-3 bends away), too short for min_hits 4; its hits go
    # back, and the next seed 0-1 ... does the same, so nothing is a track; with min_hits 3 it is.
    r = np.array(RADII_MM[:4])
    edges = np.array([[0, 1], [1, 2], [2, 3]])
    graph = dict(n_hits=4, edges=edges, scores=np.array([0.9, 0.95, 0.9]), r_mm=r, phi=np.array([0.0, 0.0, 0.0, 0.5]), z_mm=r)
    assert run(walk, graph, min_hits=4)[1] == 0
    track_of_hit, n_tracks = run(walk, graph, min_hits=3)
    assert n_tracks == 1 and tracks_of(track_of_hit) == [frozenset({0, 1, 2})]


@IMPLEMENTATIONS
def test_no_hits_and_no_edges(walk) -> None:
    empty = np.zeros(0)
    track_of_hit, n_tracks = walk(0, np.zeros((0, 2), np.int32), empty, empty, empty, empty, 1)
    assert n_tracks == 0 and track_of_hit.shape == (0,)
    track_of_hit, n_tracks = walk(3, np.zeros((0, 2), np.int32), empty, np.ones(3), np.zeros(3), np.zeros(3), 1)
    assert n_tracks == 0 and np.all(track_of_hit == -1)


@IMPLEMENTATIONS
@pytest.mark.parametrize("n_hits, edges, scores, n_coords, min_hits, message", [
    (3, [[0, 3]], [1.0], 3, 2, "edge hit indices"),
    (3, [[0, 1]], [1.0, 0.5], 3, 2, "scores"),
    (3, [[0, 1]], [1.0], 3, 0, "min_hits"),
    (3, [[0, 1]], [1.0], 2, 2, "one value per hit"),
])
def test_bad_inputs_are_rejected(walk, n_hits, edges, scores, n_coords, min_hits, message) -> None:
    coords = np.ones(n_coords)
    with pytest.raises(ValueError, match=message):
        walk(n_hits, np.array(edges), np.array(scores), coords, coords, coords, min_hits)


@pytest.mark.parametrize("field, value", [("max_sigma", 0.0), ("resolution_rphi_mm", -1.0), ("resolution_z_mm", 0.0),
                                          ("bend_rad", -1e-3), ("bend_rad", float("nan")),
                                          ("seed_cut", float("nan")), ("candidate_cut", float("nan"))])
def test_bad_walk_parameters_are_rejected(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        Walk(**{field: value})
