"""build_tracks against its numpy reference, and the properties its definition implies."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from trigger_sim.kernels import Rescue, build_tracks, build_tracks_reference, edge_slopes

IMPLEMENTATIONS = pytest.mark.parametrize(
    "build", [build_tracks, build_tracks_reference], ids=["numba", "numpy"]
)

# Scores: a few repeated values for exact ties (signed zeros compare equal), arbitrary ones, NaN.
scores_st = st.one_of(
    st.sampled_from([0.0, -0.0, 0.25, 0.5, 0.75, 1.0]),
    st.floats(0.0, 1.0),
    st.just(float("nan")),
)
cuts = st.sampled_from([-1.0, 0.0, 0.25, 0.5, 0.6, 0.9, 1.0])


@st.composite
def layered_graphs(draw: st.DrawFn) -> dict:
    """Hits on layers and scored edges from a layer to the next one out, as build_hit_graph makes.

    Returns the build_tracks arguments except score_cut and min_hits, plus `layer`.
    """
    n_layers = draw(st.integers(2, 6))
    layer = np.array(draw(st.lists(st.integers(0, n_layers - 1), max_size=50)), dtype=np.int32)
    by_layer = [np.flatnonzero(layer == lay) for lay in range(n_layers)]
    # (layer, a, b): the a-th hit of the layer (modulo its size) to the b-th of the next one.
    picks = st.tuples(st.integers(0, n_layers - 2), st.integers(0, 99), st.integers(0, 99))
    pairs = []
    for lay, a, b in draw(st.lists(picks, max_size=120)):
        inner, outer = by_layer[lay], by_layer[lay + 1]
        if inner.size and outer.size:
            pairs.append((int(inner[a % inner.size]), int(outer[b % outer.size])))
    # Repeat some edges verbatim (same score), as a graph built twice and concatenated would.
    scores = draw(st.lists(scores_st, min_size=len(pairs), max_size=len(pairs)))
    repeats = draw(st.lists(st.integers(0, max(len(pairs) - 1, 0)), max_size=5)) if pairs else []
    pairs += [pairs[k] for k in repeats]
    scores += [scores[k] for k in repeats]
    return dict(
        n_hits=layer.size,
        edges=np.array(pairs, dtype=np.int32).reshape(-1, 2),
        scores=np.array(scores, dtype=np.float32),
        layer=layer,
    )


@st.composite
def arbitrary_graphs(draw: st.DrawFn) -> dict:
    """Any directed edges: cycles, back edges and self-loops included."""
    n_hits = draw(st.integers(1, 40))
    pairs = draw(
        st.lists(st.tuples(st.integers(0, n_hits - 1), st.integers(0, n_hits - 1)), max_size=100)
    )
    scores = draw(st.lists(scores_st, min_size=len(pairs), max_size=len(pairs)))
    return dict(
        n_hits=n_hits,
        edges=np.array(pairs, dtype=np.int64).reshape(-1, 2),
        scores=np.array(scores, dtype=np.float64),
    )


def tracks_of(track_of_hit: np.ndarray) -> list[frozenset[int]]:
    """Hit sets of the tracks, in track-id order."""
    n_tracks = int(track_of_hit.max()) + 1 if track_of_hit.size else 0
    return [frozenset(np.flatnonzero(track_of_hit == t).tolist()) for t in range(n_tracks)]


def run(build, graph: dict, score_cut: float, min_hits: int) -> tuple[np.ndarray, int]:
    return build(graph["n_hits"], graph["edges"], graph["scores"], score_cut, min_hits)


@settings(max_examples=300, deadline=None)
@given(st.one_of(layered_graphs(), arbitrary_graphs()), cuts, st.integers(1, 5))
def test_numba_matches_reference(graph: dict, score_cut: float, min_hits: int) -> None:
    track_of_hit, n_tracks = run(build_tracks, graph, score_cut, min_hits)
    want_track, want_n = run(build_tracks_reference, graph, score_cut, min_hits)
    assert track_of_hit.dtype == np.int32 and track_of_hit.shape == (graph["n_hits"],)
    np.testing.assert_array_equal(track_of_hit, want_track)
    assert n_tracks == want_n


@settings(max_examples=200, deadline=None)
@given(layered_graphs(), cuts, st.integers(1, 5))
def test_tracks_are_chains_of_best_edges(graph: dict, score_cut: float, min_hits: int) -> None:
    track_of_hit, n_tracks = build_tracks(graph["n_hits"], graph["edges"], graph["scores"],
                                          score_cut, min_hits)
    layer, edges, scores = graph["layer"], graph["edges"], graph["scores"].astype(np.float64)
    assert track_of_hit.min(initial=-1) >= -1 and track_of_hit.max(initial=-1) == n_tracks - 1
    # Ids by smallest hit index: the first hit of each id comes in id order.
    _, first_hit = np.unique(track_of_hit[track_of_hit >= 0], return_index=True)
    assert np.all(np.diff(np.flatnonzero(track_of_hit >= 0)[first_hit]) > 0)
    kept = scores > score_cut
    for hits in tracks_of(track_of_hit):
        assert len(hits) >= min_hits
        # One hit per layer, on consecutive layers...
        track_layers = np.sort(layer[sorted(hits)])
        np.testing.assert_array_equal(track_layers, np.arange(len(hits)) + track_layers[0])
        # ...each hit joined to the next one out by a kept edge that is its best outgoing edge.
        by_layer = {int(layer[h]): h for h in hits}
        for lay in range(track_layers[0], track_layers[-1]):
            a, b = by_layer[lay], by_layer[lay + 1]
            from_a = kept & (edges[:, 0] == a)
            joins = from_a & (edges[:, 1] == b)
            assert joins.any()
            s_ab = scores[joins].max()
            better = from_a & ((scores > s_ab) | ((scores == s_ab) & (edges[:, 1] < b)))
            assert not better.any()


@settings(max_examples=200, deadline=None)
@given(arbitrary_graphs(), cuts, cuts, st.integers(1, 4))
def test_raising_the_cut_only_splits_or_shrinks_tracks(
    graph: dict, cut_a: float, cut_b: float, min_hits: int
) -> None:
    low, high = sorted((cut_a, cut_b))
    loose = tracks_of(run(build_tracks, graph, low, min_hits)[0])
    tight = tracks_of(run(build_tracks, graph, high, min_hits)[0])
    for hits in tight:
        assert any(hits <= other for other in loose)


@settings(max_examples=100, deadline=None)
@given(arbitrary_graphs(), cuts, st.integers(1, 4), st.integers(1, 4))
def test_min_hits_only_drops_tracks(graph: dict, score_cut: float, min_a: int, min_b: int) -> None:
    low, high = sorted((min_a, min_b))
    many = tracks_of(run(build_tracks, graph, score_cut, low)[0])
    few = tracks_of(run(build_tracks, graph, score_cut, high)[0])
    assert few == [hits for hits in many if len(hits) >= high]


@settings(max_examples=100, deadline=None)
@given(arbitrary_graphs(), cuts, st.integers(1, 4), st.randoms(use_true_random=False))
def test_edge_order_does_not_matter(graph: dict, score_cut: float, min_hits: int, rnd) -> None:
    order = list(range(len(graph["scores"])))
    rnd.shuffle(order)
    shuffled = dict(graph, edges=graph["edges"][order], scores=graph["scores"][order])
    np.testing.assert_array_equal(
        run(build_tracks, shuffled, score_cut, min_hits)[0],
        run(build_tracks, graph, score_cut, min_hits)[0],
    )


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.integers(1, 8), max_size=8),
    st.integers(0, 10),
    st.integers(1, 4),
    st.randoms(use_true_random=False),
)
def test_disjoint_chains_with_score_one_are_the_tracks(
    lengths: list[int], n_extra: int, min_hits: int, rnd
) -> None:
    # Chains of shuffled hit indices, plus hits on no edge (chains of one hit).
    n_hits = sum(lengths) + n_extra
    perm = list(range(n_hits))
    rnd.shuffle(perm)
    chains, start = [], 0
    for n in lengths + [1] * n_extra:
        chains.append(perm[start:start + n])
        start += n
    edges = np.array([(c[k], c[k + 1]) for c in chains for k in range(len(c) - 1)], np.int32)
    for build in (build_tracks, build_tracks_reference):
        track_of_hit, n_tracks = build(n_hits, edges, np.ones(len(edges)), 0.5, min_hits)
        want = sorted((frozenset(c) for c in chains if len(c) >= min_hits), key=min)
        assert tracks_of(track_of_hit) == want and n_tracks == len(want)


@IMPLEMENTATIONS
def test_best_edges_win(build) -> None:
    # Hit 0 prefers 4 (0.95) over 1; 1 then starts its own chain 1-2-3. 2 has two incoming
    # edges of equal score: the smaller inner hit (1) wins, 6 is left alone; 3 takes 2 (0.7)
    # over 5 (0.6). 4 -> 7 is below the cut.
    edges = [[0, 1], [1, 2], [2, 3], [0, 4], [6, 2], [4, 7], [5, 3]]
    scores = [0.9, 0.8, 0.7, 0.95, 0.8, 0.1, 0.6]
    track_of_hit, n_tracks = build(8, np.array(edges), np.array(scores), 0.5, 2)
    np.testing.assert_array_equal(track_of_hit, [0, 1, 1, 1, 0, -1, -1, -1])
    assert n_tracks == 2


@IMPLEMENTATIONS
def test_outgoing_tie_goes_to_the_smaller_outer_hit(build) -> None:
    track_of_hit, n_tracks = build(3, np.array([[0, 2], [0, 1]]), np.array([0.7, 0.7]), 0.5, 2)
    np.testing.assert_array_equal(track_of_hit, [0, 0, -1])
    assert n_tracks == 1


@IMPLEMENTATIONS
def test_score_equal_to_the_cut_is_dropped_and_nan_never_kept(build) -> None:
    edges = np.array([[0, 1], [2, 3]])
    track_of_hit, n_tracks = build(4, edges, np.array([0.5, np.nan]), 0.5, 1)
    np.testing.assert_array_equal(track_of_hit, [0, 1, 2, 3])  # min_hits 1: every hit a track
    assert n_tracks == 4


@IMPLEMENTATIONS
def test_self_loop_and_cycle(build) -> None:
    # 0 -> 0 beats 0 -> 1, so 1 -> 2 -> 3 -> 1 is a cycle (three hits); 4 -> 4 is a lone hit.
    edges = np.array([[0, 0], [0, 1], [1, 2], [2, 3], [3, 1], [4, 4]])
    scores = np.array([0.9, 0.8, 0.7, 0.7, 0.7, 0.9])
    track_of_hit, n_tracks = build(5, edges, scores, 0.5, 2)
    np.testing.assert_array_equal(track_of_hit, [-1, 0, 0, 0, -1])
    assert n_tracks == 1


@IMPLEMENTATIONS
def test_no_hits_and_no_edges(build) -> None:
    track_of_hit, n_tracks = build(0, np.empty((0, 2), np.int32), np.empty(0, np.float32), 0.5, 3)
    assert track_of_hit.shape == (0,) and track_of_hit.dtype == np.int32 and n_tracks == 0
    track_of_hit, n_tracks = build(3, [], [], 0.5, 2)
    np.testing.assert_array_equal(track_of_hit, [-1, -1, -1])
    assert n_tracks == 0


@IMPLEMENTATIONS
@pytest.mark.parametrize(
    "n_hits, edges, scores, min_hits, message",
    [
        (3, [[0, 3]], [1.0], 2, "edge hit indices"),
        (3, [[-1, 2]], [1.0], 2, "edge hit indices"),
        (3, [[0, 1, 2]], [1.0], 2, "shape"),
        (3, [[0.0, 1.0]], [1.0], 2, "integer"),
        (3, [[0, 1]], [1.0, 0.5], 2, "scores"),
        (3, [[0, 1]], [[1.0]], 2, "scores"),
        (3, [[0, 1]], [1.0], 0, "min_hits"),
        (-1, [], [], 2, "n_hits"),
    ],
)
def test_bad_inputs_are_rejected(build, n_hits, edges, scores, min_hits, message) -> None:
    with pytest.raises(ValueError, match=message):
        build(n_hits, np.array(edges), np.array(scores), 0.5, min_hits)


# Step 1b, the geometric rescue: slopes drawn from a few values, so that differences fall on both
# sides of the cuts (NaN for a zero-length edge never continues anything).
slopes_st = st.sampled_from([0.0, 1e-5, 4e-5, 1e-4, -3e-5, float("nan")])


@st.composite
def rescued_graphs(draw: st.DrawFn) -> tuple[dict, Rescue]:
    graph = draw(st.one_of(layered_graphs(), arbitrary_graphs()))
    n = len(graph["scores"])
    dphi = np.array(draw(st.lists(slopes_st, min_size=n, max_size=n)), dtype=np.float64)
    dz = np.array(draw(st.lists(st.sampled_from([0.0, 0.01, 0.05, -0.015]), min_size=n, max_size=n)))
    rescue = Rescue((dphi, dz), draw(st.sampled_from([-1.0, 0.0, 0.1, 0.5])), 5e-5, 0.02, draw(st.integers(0, 4)))
    return graph, rescue


# Equal edges with different slopes: the anchor among them is the first, in both.
TIED_ANCHORS = ({"n_hits": 3, "edges": np.array([[0, 1], [1, 2], [0, 1], [0, 1], [0, 1], [0, 1]], dtype=np.int32),
                 "scores": np.array([0.25, 0.0, 0.25, 0.25, 0.25, 0.25], dtype=np.float32)},
                Rescue((np.array([0.0, 0.0, 0.0, 0.0, 0.0, 1e-4]), np.zeros(6)), -1.0, 5e-5, 0.02, 1))


@settings(max_examples=300, deadline=None)
@given(rescued_graphs(), cuts, st.integers(1, 5))
@example(TIED_ANCHORS, 0.0, 1)
def test_rescue_numba_matches_reference(case: tuple[dict, Rescue], score_cut: float, min_hits: int) -> None:
    graph, rescue = case
    args = (graph["n_hits"], graph["edges"], graph["scores"], score_cut, min_hits, rescue)
    track_of_hit, n_tracks = build_tracks(*args)
    want_track, want_n = build_tracks_reference(*args)
    np.testing.assert_array_equal(track_of_hit, want_track)
    assert n_tracks == want_n


@settings(max_examples=200, deadline=None)
@given(rescued_graphs(), cuts, st.integers(1, 5))
def test_rescue_with_no_passes_or_no_candidates_changes_nothing(case: tuple[dict, Rescue], score_cut: float,
                                                                 min_hits: int) -> None:
    graph, rescue = case
    plain = run(build_tracks, graph, score_cut, min_hits)[0]
    for off in (Rescue(rescue.slopes, rescue.score_cut, passes=0), Rescue(rescue.slopes, max(score_cut, 1.0), passes=3)):
        got = build_tracks(graph["n_hits"], graph["edges"], graph["scores"], score_cut, min_hits, off)[0]
        np.testing.assert_array_equal(got, plain)


@IMPLEMENTATIONS
def test_rescue_joins_a_hedged_edge_that_continues_a_track(build) -> None:
    # 0-1-2-3 straight; 1-2 scored 0.4 (below the cut) would split it into two 2-hit pieces.
    # 5-6 at 0.4 has no kept neighbour, and 1-4 at 0.4 bends away: neither is rescued.
    edges = np.array([[0, 1], [1, 2], [2, 3], [5, 6], [1, 4]])
    scores = np.array([0.95, 0.4, 0.95, 0.4, 0.4])
    slopes = (np.array([1e-5, 1.2e-5, 1.1e-5, 1e-5, 3e-4]), np.zeros(5))
    rescue = Rescue(slopes, 0.1, 5e-5, 0.02, 1)
    track_of_hit, n_tracks = build(7, edges, scores, 0.9, 3, rescue)
    assert n_tracks == 1 and tracks_of(track_of_hit) == [frozenset({0, 1, 2, 3})]
    assert build(7, edges, scores, 0.9, 3)[1] == 0


def test_edge_slopes_wrap_phi() -> None:
    r = np.array([30.0, 70.0])
    dphi, dz = edge_slopes(r, np.array([3.1, -3.1]), np.array([0.0, 8.0]), np.array([[0, 1]]))
    assert dphi[0] == pytest.approx((2 * np.pi - 6.2) / 40.0) and dz[0] == pytest.approx(0.2)


def test_rescue_slopes_must_match_the_edges() -> None:
    with pytest.raises(ValueError, match="one value per edge"):
        build_tracks(2, np.array([[0, 1]]), np.array([0.5]), 0.9, 2, Rescue((np.zeros(2), np.zeros(2))))
