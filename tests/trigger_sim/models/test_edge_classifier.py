"""Tests of trigger_sim.models.edge_classifier: the GNN shared by Triton and the local fallback."""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trigger_sim.config import FarmConfig, with_overrides
from trigger_sim.kernels import build_hit_graph, graph_features
from trigger_sim.models import edge_classifier as ec
from trigger_sim.models.edge_classifier import (
    EDGE_FEATURES,
    EDGE_INDEX,
    NODE_FEATURES,
    EdgeClassifierWeights,
    LocalEdgeClassifier,
    forward,
    load_weights,
    model_inputs,
)
from trigger_sim.simulation import simulate

REPO_ROOT = Path(__file__).resolve().parents[3]
GOLDEN_PATH = REPO_ROOT / "tests" / "data" / "edge_classifier_golden.npz"
FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SANITY_SEED = 555_001  # fresh events: neither a training, held-out, validation nor the farm's seed


def random_weights(seed: int, hidden: int = 8, n_steps: int = 2, scale: float = 1.0) -> EdgeClassifierWeights:
    """Weights with the fan-in scaling of a freshly initialised network (scores spread over [0, 1])."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for name, shape in EdgeClassifierWeights.expected_shapes(hidden, n_steps).items():
        fan_in = shape[-2] if len(shape) >= 2 else 1
        arrays[name] = scale * rng.normal(size=shape) / np.sqrt(fan_in)
    arrays["node_std"] = rng.uniform(0.5, 2.0, 3)
    arrays["edge_std"] = rng.uniform(0.5, 2.0, 6)
    return EdgeClassifierWeights(**arrays)


def random_graph(seed: int, n_nodes: int, n_edges: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    nodes = rng.normal(size=(n_nodes, 3)).astype(np.float32)
    edges = rng.integers(0, max(n_nodes, 1), size=(n_edges, 2)).astype(np.int32)
    edge_x = rng.normal(size=(n_edges, 6)).astype(np.float32)
    return nodes, edges, edge_x


graph_sizes = st.tuples(st.integers(1, 30), st.integers(1, 80), st.integers(0, 2**32 - 1))


def close(a: np.ndarray, b: np.ndarray) -> None:
    """Equal up to float32 summation order."""
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-6)


# ---- the shipped model -------------------------------------------------------------------------------


def test_numpy_forward_reproduces_the_golden_torch_scores() -> None:
    with np.load(GOLDEN_PATH, allow_pickle=False) as golden:
        scores = forward(load_weights(), golden["node_features"], golden["edge_index"], golden["edge_features"])
        want = golden["scores"]
    assert len(want) > 50 and want.min() < 0.1 and want.max() > 0.9  # a graph with both kinds of edges
    assert scores.dtype == np.float32 and scores.shape == want.shape
    np.testing.assert_allclose(scores, want, rtol=1e-5, atol=1e-6)


def test_shipped_weights_are_small_and_consistent() -> None:
    w = load_weights()
    assert w.hidden >= 16 and w.n_steps >= 2
    assert ec.WEIGHTS_PATH.stat().st_size < 1_000_000
    assert 0.0 < FarmConfig().features.edge_score_cut < 1.0


def test_trained_model_finds_true_edges_at_the_working_point() -> None:
    """A quick sanity check on a handful of fresh pile-up 60 events (the full figures: validation)."""
    config = with_overrides(FarmConfig(), run={"seed": SANITY_SEED}, physics={"pileup_mean": 60.0})
    f = config.features
    classifier = LocalEdgeClassifier()
    hipt_found = hipt = selected_true = selected = 0
    for l1_id in range(3):
        sim = simulate(config, l1_id)
        hits = sim.hits
        edges, _ = build_hit_graph(hits.layer, hits.r_mm, hits.phi, hits.z_mm, len(config.tracker.layer_radii_mm),
                                   f.graph_phi_slope_max, f.graph_z0_max_mm, f.graph_max_edges)
        nodes, edge_x = graph_features(hits.r_mm, hits.phi, hits.z_mm, edges)
        keep = classifier.infer(model_inputs(nodes, edges, edge_x)) > f.edge_score_cut
        pi, pj = hits.particle[edges[:, 0]], hits.particle[edges[:, 1]]
        true = (pi == pj) & (pi >= 0)
        true_hipt = true & (np.asarray(sim.truth.particles.pt_gev)[np.maximum(pi, 0)] > 1.0)
        hipt_found += int((keep & true_hipt).sum())
        hipt += int(true_hipt.sum())
        selected_true += int((keep & true).sum())
        selected += int(keep.sum())
    assert hipt > 1000
    efficiency, purity = hipt_found / hipt, selected_true / selected
    assert efficiency >= 0.9, f"efficiency {efficiency:.3f} (purity {purity:.3f})"
    assert purity >= 0.5, f"purity {purity:.3f} (efficiency {efficiency:.3f})"


# ---- against the torch module (training mirror and GPU forward) ------------------------------------------


@pytest.fixture(scope="module")
def training():
    pytest.importorskip("torch")
    return importlib.import_module("trigger_sim.models.edge_classifier_torch")


@pytest.mark.parametrize("seed, hidden, n_steps", [(0, 8, 2), (1, 16, 3), (2, 4, 1)])
def test_numpy_forward_matches_live_torch_on_random_graphs(training, seed: int, hidden: int, n_steps: int) -> None:
    w = random_weights(seed, hidden, n_steps)
    net = training.net_from_weights(w).eval()
    for n_nodes, n_edges in ((1, 1), (20, 60), (300, 1500)):
        nodes, edges, edge_x = random_graph(seed, n_nodes, n_edges)
        close(forward(w, nodes, edges, edge_x), training.torch_scores(net, nodes, edges, edge_x))


def test_shipped_weights_match_live_torch(training) -> None:
    w = load_weights()
    with np.load(GOLDEN_PATH, allow_pickle=False) as golden:
        nodes, edges, edge_x = golden["node_features"], golden["edge_index"], golden["edge_features"]
    net = training.net_from_weights(w).eval()
    np.testing.assert_allclose(forward(w, nodes, edges, edge_x), training.torch_scores(net, nodes, edges, edge_x),
                               rtol=1e-5, atol=1e-6)


def test_torch_serving_forward_matches_numpy(training) -> None:
    """`TorchEdgeClassifier` (what a GPU instance runs; here on the CPU) gives the numpy scores on
    an event's graph, an empty answer for no edges, and the numpy checks' errors."""
    w = load_weights()
    served = training.TorchEdgeClassifier(w, "cpu")
    config = with_overrides(FarmConfig(), physics={"pileup_mean": 20.0})
    request = ec.request_for_hits(simulate(config, 3).hits, config)
    arrays = ec.request_arrays(request)
    assert len(arrays[1]) > 1000
    close(served.forward(*arrays), forward(w, *arrays))
    assert served.forward(arrays[0], np.zeros((0, 2), np.int32), np.zeros((0, 6), np.float32)).shape == (0,)
    with pytest.raises(ValueError, match="EDGE_INDEX values"):
        served.forward(arrays[0][:2], arrays[1], arrays[2])


def test_export_round_trip(training) -> None:
    w = random_weights(5, 8, 2)
    back = training.export_weights(training.net_from_weights(w))
    for name in EdgeClassifierWeights.names():
        np.testing.assert_array_equal(getattr(back, name), getattr(w, name), err_msg=name)


# ---- properties ---------------------------------------------------------------------------------------


@FAST
@given(graph_sizes, st.randoms(use_true_random=False))
def test_permuting_edges_permutes_scores(size, rnd) -> None:
    n_nodes, n_edges, seed = size
    w = random_weights(seed % 1000)
    nodes, edges, edge_x = random_graph(seed, n_nodes, n_edges)
    perm = list(range(n_edges))
    rnd.shuffle(perm)
    scores = forward(w, nodes, edges, edge_x)
    close(forward(w, nodes, edges[perm], edge_x[perm]), scores[perm])


@FAST
@given(graph_sizes, st.randoms(use_true_random=False))
def test_relabelling_nodes_leaves_scores_unchanged(size, rnd) -> None:
    n_nodes, n_edges, seed = size
    w = random_weights(seed % 1000)
    nodes, edges, edge_x = random_graph(seed, n_nodes, n_edges)
    perm = list(range(n_nodes))
    rnd.shuffle(perm)  # new node k is old node perm[k]
    new_label = np.argsort(perm).astype(np.int32)
    close(forward(w, nodes[perm], new_label[edges], edge_x), forward(w, nodes, edges, edge_x))


@FAST
@given(graph_sizes, st.sampled_from([0.1, 1.0, 30.0]))
def test_scores_are_float32_in_the_unit_interval(size, scale: float) -> None:
    n_nodes, n_edges, seed = size
    nodes, edges, edge_x = random_graph(seed, n_nodes, n_edges)
    scores = forward(random_weights(seed % 1000, scale=scale), nodes * scale, edges, edge_x * scale)
    assert scores.dtype == np.float32 and scores.shape == (n_edges,)
    assert np.all((scores >= 0.0) & (scores <= 1.0))


def test_reversing_an_edge_changes_its_score() -> None:
    """Direction matters (inner -> outer): the model is not symmetric by construction."""
    w = random_weights(3)
    nodes, edges, edge_x = random_graph(3, 10, 20)
    assert not np.allclose(forward(w, nodes, edges, edge_x), forward(w, nodes, edges[:, ::-1], edge_x))


def test_forward_is_deterministic() -> None:
    w = load_weights()
    nodes, edges, edge_x = random_graph(11, 2000, 8000)
    nodes = nodes * w.node_std + w.node_mean
    edge_x = edge_x * w.edge_std + w.edge_mean
    first = forward(w, nodes, edges, edge_x)
    assert forward(w, nodes, edges, edge_x).tobytes() == first.tobytes()


@pytest.mark.parametrize("process_threads", [1, 2, 4])
def test_forward_does_not_depend_on_the_process_blas_threads(process_threads: int) -> None:
    """The Triton model and the worker's fallback run in processes with different BLAS
    settings; OpenBLAS's products differ in the last bits with its thread count, so the
    forward pass fixes it and answers bit for bit the same in any process."""
    from threadpoolctl import threadpool_limits

    w = load_weights()
    nodes, edges, edge_x = random_graph(12, 15_000, 40_000)  # pile-up-60 sized: big enough for BLAS threads
    nodes = nodes * w.node_std + w.node_mean
    edge_x = edge_x * w.edge_std + w.edge_mean
    with threadpool_limits(limits=1, user_api="blas"):
        reference = forward(w, nodes, edges, edge_x)
    with threadpool_limits(limits=process_threads, user_api="blas"):
        assert forward(w, nodes, edges, edge_x).tobytes() == reference.tobytes()


def test_node_sums_match_np_add_at() -> None:
    rng = np.random.default_rng(4)
    n_nodes, n_edges, hidden = 50, 400, 8
    state = rng.normal(size=(n_edges, hidden)).astype(np.float32)
    update = rng.normal(size=(n_edges, hidden)).astype(np.float32)
    bias, gate_w = rng.normal(size=hidden).astype(np.float32), rng.normal(size=hidden).astype(np.float32)
    gate_b = np.float32(0.3)
    src, dst = rng.integers(0, n_nodes, n_edges), rng.integers(0, n_nodes, n_edges)
    want_state = state + (update + bias)
    message = want_state / (1.0 + np.exp(-(want_state @ gate_w + gate_b)))[:, None]
    want_in, want_out = np.zeros((n_nodes, hidden)), np.zeros((n_nodes, hidden))
    np.add.at(want_in, dst, message)
    np.add.at(want_out, src, message)
    sum_in, sum_out = ec._residual_and_node_sums(state, update, bias, gate_w, gate_b, src, dst, n_nodes)
    np.testing.assert_allclose(state, want_state, rtol=1e-6)
    np.testing.assert_allclose(sum_in, want_in, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(sum_out, want_out, rtol=1e-4, atol=1e-5)


# ---- edges of the input space ---------------------------------------------------------------------------


@pytest.mark.parametrize("n_nodes", [0, 5])
def test_empty_graph_gives_no_scores(n_nodes: int) -> None:
    w = load_weights()
    scores = forward(w, np.zeros((n_nodes, 3), np.float32), np.zeros((0, 2), np.int32), np.zeros((0, 6), np.float32))
    assert scores.shape == (0,) and scores.dtype == np.float32
    local = LocalEdgeClassifier().infer(model_inputs(np.zeros((n_nodes, 3)), np.zeros((0, 2)), np.zeros((0, 6))))
    assert local.shape == (0,) and local.dtype == np.float32


@pytest.mark.parametrize(
    "nodes, edges, edge_x, match",
    [
        (np.zeros((4, 2)), np.zeros((1, 2), np.int32), np.zeros((1, 6)), r"NODE_FEATURES must have shape \(N, 3\)"),
        (np.zeros(4), np.zeros((1, 2), np.int32), np.zeros((1, 6)), r"NODE_FEATURES must have shape \(N, 3\)"),
        (np.zeros((4, 3)), np.zeros((1, 3), np.int32), np.zeros((1, 6)), r"EDGE_INDEX must have shape \(E, 2\)"),
        (np.zeros((4, 3)), np.zeros((1, 2), np.int32), np.zeros((1, 5)), r"EDGE_FEATURES must have shape \(E, 6\)"),
        (np.zeros((4, 3)), np.zeros((2, 2), np.int32), np.zeros((1, 6)), "2 edges but EDGE_FEATURES has 1 rows"),
        (np.zeros((4, 3)), np.array([[0, 4]], np.int32), np.zeros((1, 6)), r"values must lie in \[0, 4\)"),
        (np.zeros((4, 3)), np.array([[-1, 0]], np.int32), np.zeros((1, 6)), r"values must lie in \[0, 4\)"),
        (np.zeros((4, 3)), np.array([[0.0, 1.0]]), np.zeros((1, 6)), "EDGE_INDEX must be integers"),
    ],
)
def test_bad_inputs_give_clear_errors(nodes, edges, edge_x, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        forward(load_weights(), nodes, edges, edge_x)


def test_request_without_an_input_is_rejected() -> None:
    inputs = model_inputs(np.zeros((2, 3)), np.array([[0, 1]]), np.zeros((1, 6)))
    del inputs[EDGE_INDEX]
    with pytest.raises(ValueError, match="lacks inputs.*EDGE_INDEX"):
        LocalEdgeClassifier().infer(inputs)


def test_model_inputs_have_triton_dtypes() -> None:
    inputs = model_inputs(np.zeros((2, 3), np.float64), np.array([[0, 1]], np.int64), np.zeros((1, 6), np.float64))
    assert list(inputs) == [NODE_FEATURES, EDGE_INDEX, EDGE_FEATURES]
    assert [a.dtype for a in inputs.values()] == [np.float32, np.int32, np.float32]
    assert all(a.flags.c_contiguous for a in inputs.values())


def test_local_classifier_is_the_shared_forward() -> None:
    nodes, edges, edge_x = random_graph(8, 40, 100)
    local = LocalEdgeClassifier()
    scores = local.infer(model_inputs(nodes, edges, edge_x), timeout_s=0.0)
    assert scores.tobytes() == forward(local.weights, nodes, edges, edge_x).tobytes()


# ---- the weights file ------------------------------------------------------------------------------------


def test_save_load_round_trip(tmp_path: Path) -> None:
    w = random_weights(7, hidden=6, n_steps=3)
    path = tmp_path / "w.npz"
    w.save(path)
    loaded = load_weights(path)
    assert (loaded.hidden, loaded.n_steps) == (6, 3)
    for name in EdgeClassifierWeights.names():
        got = getattr(loaded, name)
        assert got.dtype == np.float32
        np.testing.assert_array_equal(got, getattr(w, name), err_msg=name)
    with np.load(path, allow_pickle=False) as data:  # plain arrays only
        assert all(data[name].dtype == np.float32 for name in data.files)


def test_wrong_shape_in_weights_is_named(tmp_path: Path) -> None:
    w = random_weights(7, hidden=6, n_steps=2)
    arrays = {name: getattr(w, name) for name in EdgeClassifierWeights.names()}
    arrays["node_upd_w2"] = np.zeros((2, 6, 5), np.float32)
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)
    with pytest.raises(ValueError, match=r"bad.npz: .*node_upd_w2 has shape \(2, 6, 5\), expected \(2, 6, 6\)"):
        load_weights(path)


def test_missing_or_foreign_arrays_are_named(tmp_path: Path) -> None:
    path = tmp_path / "other.npz"
    np.savez(path, w1=np.zeros((6, 4)), mean=np.zeros(6))
    with pytest.raises(ValueError, match=r"not edge classifier weights \(missing \['node_mean'.*unknown \['w1'"):
        load_weights(path)


def test_non_positive_std_is_rejected() -> None:
    w = random_weights(1)
    arrays = {name: getattr(w, name) for name in EdgeClassifierWeights.names()}
    arrays["edge_std"] = np.zeros(6)
    with pytest.raises(ValueError, match="std must be > 0"):
        EdgeClassifierWeights(**arrays)
