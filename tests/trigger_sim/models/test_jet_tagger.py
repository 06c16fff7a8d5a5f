"""Tests of trigger_sim.models.jet_tagger: the MLP shared by Triton and the local fallback."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from trigger_sim.models import jet_tagger
from trigger_sim.models.jet_tagger import (
    N_FEATURES,
    JetTaggerWeights,
    LocalJetTagger,
    forward,
    load_weights,
)

FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

finite = st.floats(-3.0, 3.0, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def weights(draw: st.DrawFn) -> JetTaggerWeights:
    h = draw(st.integers(1, 8))
    f64 = lambda shape, elements=finite: draw(arrays(np.float64, shape, elements=elements))  # noqa: E731
    return JetTaggerWeights(
        mean=f64(N_FEATURES),
        std=f64(N_FEATURES, st.floats(0.1, 3.0)),
        w1=f64((N_FEATURES, h)),
        b1=f64(h),
        w2=f64((h, h)),
        b2=f64(h),
        w3=f64((h, 1)),
        b3=f64(1),
    )


@st.composite
def batches(draw: st.DrawFn) -> np.ndarray:
    n = draw(st.integers(1, 24))
    return draw(arrays(np.float32, (n, N_FEATURES), elements=st.floats(-10, 10, width=32)))


def reference_forward(w: JetTaggerWeights, x: np.ndarray) -> np.ndarray:
    """Plain float64 matrix products."""
    z = (x.astype(np.float64) - w.mean) / w.std
    h = np.maximum(z @ w.w1 + w.b1, 0.0)
    h = np.maximum(h @ w.w2 + w.b2, 0.0)
    logit = h @ w.w3 + w.b3
    with np.errstate(over="ignore"):  # exp overflow gives inf, and a score of exactly 0
        return 1.0 / (1.0 + np.exp(-logit))


@FAST
@given(weights(), batches())
def test_row_score_is_bit_identical_alone_or_in_a_batch(w, x):
    batch = forward(w, x)
    for i in range(len(x)):
        alone = forward(w, x[i : i + 1])
        assert alone.tobytes() == batch[i : i + 1].tobytes(), f"row {i} differs alone vs in the batch"


@FAST
@given(st.integers(1, 40), st.integers(1, 40), st.integers(1, 48), st.integers(0, 2**32 - 1))
def test_dense_layer_is_bit_identical_row_by_row(n_in, n_out, n, seed):
    """The float64 layer itself (before the float32 cast hides last-bit differences)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, n_in))
    w = rng.normal(size=(n_in, n_out))
    b = rng.normal(size=n_out)
    batch = jet_tagger._dense(x, w, b)
    assert batch.shape == (n, n_out)
    for i in range(n):
        assert jet_tagger._dense(x[i : i + 1], w, b).tobytes() == batch[i : i + 1].tobytes()
    np.testing.assert_allclose(batch, x @ w + b, rtol=1e-12, atol=1e-12)


def test_shipped_weights_are_batch_size_independent():
    w = load_weights()
    rng = np.random.default_rng(2)
    x = (rng.normal(size=(300, N_FEATURES)) * 2 + w.mean).astype(np.float32)
    batch = forward(w, x)
    for i in range(len(x)):
        assert forward(w, x[i : i + 1]).tobytes() == batch[i : i + 1].tobytes()
    for lo, hi in ((0, 7), (7, 100), (100, 300)):
        assert forward(w, x[lo:hi]).tobytes() == batch[lo:hi].tobytes()


@FAST
@given(weights(), batches(), st.randoms(use_true_random=False))
def test_scores_do_not_depend_on_batch_order_or_neighbours(w, x, rnd):
    perm = list(range(len(x)))
    rnd.shuffle(perm)
    a = forward(w, x)[perm]
    b = forward(w, x[perm])
    assert a.tobytes() == b.tobytes()
    # a batch made of two copies of the input (a bigger dynamic batch) gives the same rows
    doubled = forward(w, np.concatenate([x, x]))
    assert doubled[: len(x)].tobytes() == forward(w, x).tobytes()
    assert doubled[len(x) :].tobytes() == forward(w, x).tobytes()


@FAST
@given(weights(), batches())
def test_output_shape_dtype_range_and_reference(w, x):
    out = forward(w, x)
    assert out.shape == (len(x), 1)
    assert out.dtype == np.float32
    assert np.all((out >= 0.0) & (out <= 1.0))
    np.testing.assert_allclose(out, reference_forward(w, x), rtol=0, atol=1e-6)


def test_extreme_inputs_stay_in_range():
    rng = np.random.default_rng(1)
    w = JetTaggerWeights(
        mean=np.zeros(N_FEATURES), std=np.ones(N_FEATURES),
        w1=rng.normal(size=(N_FEATURES, 4)) * 100, b1=np.zeros(4),
        w2=np.eye(4) * 100, b2=np.zeros(4),
        w3=np.full((4, 1), 100.0), b3=np.zeros(1),
    )
    x = np.array([[1e30] * N_FEATURES, [-1e30] * N_FEATURES], np.float32)
    out = forward(w, x)
    assert np.all(np.isfinite(out)) and np.all((out >= 0) & (out <= 1))


def test_empty_batch():
    w = load_weights()
    out = forward(w, np.zeros((0, N_FEATURES), np.float32))
    assert out.shape == (0, 1) and out.dtype == np.float32


def test_save_load_round_trip(tmp_path):
    rng = np.random.default_rng(7)
    h = 5
    w = JetTaggerWeights(
        mean=rng.normal(size=N_FEATURES), std=rng.uniform(0.5, 2, size=N_FEATURES),
        w1=rng.normal(size=(N_FEATURES, h)), b1=rng.normal(size=h),
        w2=rng.normal(size=(h, h)), b2=rng.normal(size=h),
        w3=rng.normal(size=(h, 1)), b3=rng.normal(size=1),
    )
    path = tmp_path / "w.npz"
    w.save(path)
    loaded = load_weights(path)
    for name in ("mean", "std", "w1", "b1", "w2", "b2", "w3", "b3"):
        got = getattr(loaded, name)
        assert got.dtype == np.float64
        np.testing.assert_array_equal(got, getattr(w, name))
    x = rng.normal(size=(9, N_FEATURES)).astype(np.float32)
    assert forward(loaded, x).tobytes() == forward(w, x).tobytes()
    assert LocalJetTagger(path).infer(x).tobytes() == forward(w, x).tobytes()


@pytest.mark.parametrize("n_inputs", [N_FEATURES - 1, N_FEATURES + 1])
def test_load_rejects_wrong_input_width(tmp_path, n_inputs):
    h = 3
    w = JetTaggerWeights(
        mean=np.zeros(n_inputs), std=np.ones(n_inputs),
        w1=np.ones((n_inputs, h)), b1=np.zeros(h),
        w2=np.ones((h, h)), b2=np.zeros(h),
        w3=np.ones((h, 1)), b3=np.zeros(1),
    )
    path = tmp_path / "bad.npz"
    w.save(path)
    with pytest.raises(ValueError, match="inputs"):
        load_weights(path)


def test_load_rejects_wrong_output_width(tmp_path):
    h = 3
    w = JetTaggerWeights(
        mean=np.zeros(N_FEATURES), std=np.ones(N_FEATURES),
        w1=np.ones((N_FEATURES, h)), b1=np.zeros(h),
        w2=np.ones((h, h)), b2=np.zeros(h),
        w3=np.ones((h, 2)), b3=np.zeros(2),
    )
    path = tmp_path / "bad.npz"
    w.save(path)
    with pytest.raises(ValueError):
        load_weights(path)


def test_shipped_weights_fit_the_feature_list():
    w = load_weights()
    assert w.w1.shape[0] == N_FEATURES == len(jet_tagger.FEATURE_NAMES)
    assert w.w3.shape[1] == 1
    assert np.all(w.std > 0)
    x = np.random.default_rng(3).normal(size=(5, N_FEATURES)).astype(np.float32)
    np.testing.assert_allclose(LocalJetTagger().infer(x), reference_forward(w, x), atol=1e-6)


# --- against the training framework ---------------------------------------------------------------

GOLDEN = Path(__file__).resolve().parents[2] / "data" / "jet_tagger_golden.npz"


def test_numpy_forward_equals_the_torch_outputs_saved_at_training():
    """scripts/train_jet_tagger.py saved PyTorch's outputs on held-out jets with the final weights."""
    with np.load(GOLDEN) as g:
        x, expected = g["inputs"], g["torch_scores"]
    assert x.shape[1] == N_FEATURES and len(x) > 10
    np.testing.assert_allclose(forward(load_weights(), x), expected, rtol=1e-6, atol=1e-7)


def test_numpy_forward_equals_a_live_torch_forward_on_the_saved_weights():
    torch = pytest.importorskip("torch")
    w = load_weights()
    layers = [torch.nn.Linear(a.shape[0], a.shape[1]).double() for a in (w.w1, w.w2, w.w3)]
    with torch.no_grad():
        for layer, wt, b in zip(layers, (w.w1, w.w2, w.w3), (w.b1, w.b2, w.b3)):
            layer.weight.copy_(torch.from_numpy(wt.T.copy()))
            layer.bias.copy_(torch.from_numpy(b.copy()))
        model = torch.nn.Sequential(layers[0], torch.nn.ReLU(), layers[1], torch.nn.ReLU(), layers[2])
        x = np.random.default_rng(11).normal(size=(200, N_FEATURES)) * w.std + w.mean
        expected = torch.sigmoid(model(torch.from_numpy((x - w.mean) / w.std))).numpy()
    np.testing.assert_allclose(forward(w, x.astype(np.float32)), expected, rtol=1e-5, atol=1e-6)
