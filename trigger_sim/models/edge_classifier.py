"""Edge classifier: an interaction-network GNN scoring hit-graph edges as true track segments.

Inputs are one event's hit graph: node features (N, 3) and edge features (E, 6) from
`trigger_sim.kernels.graph_features`, and the edge index (E, 2) of `build_hit_graph`
(row (i, j): an edge from inner hit i to outer hit j). The output is a score in [0, 1] per
edge. The same `forward` runs in the Triton Python-backend model and in the worker's local
fallback, with the same weights file, so both paths give the same scores.

Architecture (hidden size H, K message-passing steps; mlp(x) = relu(x W1 + b1) W2 + b2):

    x = (node_features - node_mean) / node_std;  y = (edge_features - edge_mean) / edge_std
    h = mlp_node_encoder(x)                       (N, H)
    e = mlp_edge_encoder(y)                       (E, H)
    for k in 1..K:
        e = e + mlp_edge_k([h_i, h_j, e])         edge (i, j)
        m = sigmoid(e . gate_w_k + gate_b_k) * e  the edge's message
        s_in[n] = sum of m over edges (., n);  s_out[n] = sum of m over edges (n, .)
        h = h + mlp_node_k([h, s_in, s_out])
    score = sigmoid(mlp_score([h_i, h_j, e]))     (W2 of shape (H, 1))

The message gate (attention-like) lets an edge that looks fake contribute little to its hits'
sums, so a hit's state describes its likely continuations rather than every candidate.

Computed in float32 with BLAS matrix products; the first layer of each edge MLP is split
into its three input blocks, (h W1a)[i] + (h W1b)[j] + e W1c, so the per-node products are
computed once per node rather than once per edge. Gathers, bias + ReLU and the edge-to-node
sums run in numba loops in a fixed order over the edges (no np.add.at, no atomics), so a
forward pass is deterministic. The matrix products run on one BLAS thread whatever the
process's setting: OpenBLAS's results depend on its thread count in the last bits, and the
served pass and the worker's fallback must agree bit for bit. Training:
scripts/train_edge_classifier.py (PyTorch mirror).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
from threadpoolctl import ThreadpoolController

from trigger_sim.kernels._jit import njit

MODEL_NAME = "edge_classifier"
NODE_FEATURES = "NODE_FEATURES"  # FP32 [N, 3]: r_mm, z_mm, eta
EDGE_INDEX = "EDGE_INDEX"  # INT32 [E, 2]: (inner hit, outer hit)
EDGE_FEATURES = "EDGE_FEATURES"  # FP32 [E, 6]: dr_mm, dphi, dz_mm, phi_slope, z0_mm, deta
EDGE_SCORE = "EDGE_SCORE"  # FP32 [E]
N_NODE_FEATURES = 3
N_EDGE_FEATURES = 6
WEIGHTS_PATH = Path(__file__).resolve().parents[2] / "model_repository" / MODEL_NAME / "1" / "weights.npz"


@dataclass(frozen=True)
class EdgeClassifierWeights:
    """All parameters, float32; per-step MLPs are stacked along a leading axis of length K."""

    node_mean: np.ndarray  # (3,) input standardisation
    node_std: np.ndarray
    edge_mean: np.ndarray  # (6,)
    edge_std: np.ndarray
    node_enc_w1: np.ndarray  # (3, H)
    node_enc_b1: np.ndarray  # (H,)
    node_enc_w2: np.ndarray  # (H, H)
    node_enc_b2: np.ndarray  # (H,)
    edge_enc_w1: np.ndarray  # (6, H)
    edge_enc_b1: np.ndarray
    edge_enc_w2: np.ndarray
    edge_enc_b2: np.ndarray
    edge_upd_w1: np.ndarray  # (K, 3H, H): rows for h_i, h_j, e
    edge_upd_b1: np.ndarray  # (K, H)
    edge_upd_w2: np.ndarray  # (K, H, H)
    edge_upd_b2: np.ndarray  # (K, H)
    gate_w: np.ndarray  # (K, H): message gate of each step
    gate_b: np.ndarray  # (K,)
    node_upd_w1: np.ndarray  # (K, 3H, H): rows for h, s_in, s_out
    node_upd_b1: np.ndarray
    node_upd_w2: np.ndarray
    node_upd_b2: np.ndarray
    score_w1: np.ndarray  # (3H, H): rows for h_i, h_j, e
    score_b1: np.ndarray  # (H,)
    score_w2: np.ndarray  # (H, 1)
    score_b2: np.ndarray  # (1,)

    def __post_init__(self) -> None:
        for name in self.names():
            object.__setattr__(self, name, np.ascontiguousarray(getattr(self, name), dtype=np.float32))
        if self.hidden < 1 or self.n_steps < 1:
            raise ValueError(
                f"edge classifier weights: node_enc_w1 {self.node_enc_w1.shape} must be ({N_NODE_FEATURES}, H) and "
                f"edge_upd_w1 {self.edge_upd_w1.shape} must be (K, 3H, H) with H, K >= 1"
            )
        want = self.expected_shapes(self.hidden, self.n_steps)
        for name, shape in want.items():
            got = getattr(self, name).shape
            if got != shape:
                raise ValueError(
                    f"edge classifier weights: {name} has shape {got}, expected {shape} "
                    f"(hidden size {self.hidden} from node_enc_w1, {self.n_steps} steps from edge_upd_w1)"
                )
        for name in self.names():
            if not np.all(np.isfinite(getattr(self, name))):
                raise ValueError(f"edge classifier weights: {name} is not finite")
        if not (np.all(self.node_std > 0) and np.all(self.edge_std > 0)):
            raise ValueError("edge classifier weights: node_std and edge_std must be > 0")

    @staticmethod
    def names() -> tuple[str, ...]:
        return tuple(f.name for f in fields(EdgeClassifierWeights))

    @staticmethod
    def expected_shapes(hidden: int, n_steps: int) -> dict[str, tuple[int, ...]]:
        h, k = hidden, n_steps
        shapes = {
            "node_mean": (N_NODE_FEATURES,), "node_std": (N_NODE_FEATURES,),
            "edge_mean": (N_EDGE_FEATURES,), "edge_std": (N_EDGE_FEATURES,),
            "node_enc_w1": (N_NODE_FEATURES, h), "edge_enc_w1": (N_EDGE_FEATURES, h),
            "score_w1": (3 * h, h), "score_b1": (h,), "score_w2": (h, 1), "score_b2": (1,),
        }
        for enc in ("node_enc", "edge_enc"):
            shapes.update({f"{enc}_b1": (h,), f"{enc}_w2": (h, h), f"{enc}_b2": (h,)})
        for upd in ("edge_upd", "node_upd"):
            shapes.update({f"{upd}_w1": (k, 3 * h, h), f"{upd}_b1": (k, h), f"{upd}_w2": (k, h, h), f"{upd}_b2": (k, h)})
        shapes.update({"gate_w": (k, h), "gate_b": (k,)})
        return shapes

    @property
    def hidden(self) -> int:
        shape = self.node_enc_w1.shape
        return int(shape[1]) if len(shape) == 2 else -1

    @property
    def n_steps(self) -> int:
        shape = self.edge_upd_w1.shape
        return int(shape[0]) if len(shape) == 3 else -1

    @property
    def n_parameters(self) -> int:
        return sum(getattr(self, name).size for name in self.names() if not name.endswith(("_mean", "_std")))

    def save(self, path: str | Path) -> None:
        """Write plain float32 arrays with np.savez (no pickle)."""
        np.savez(path, **{name: getattr(self, name) for name in self.names()})


def load_weights(path: str | Path = WEIGHTS_PATH) -> EdgeClassifierWeights:
    """Load weights saved by `EdgeClassifierWeights.save`; a clear error for a wrong file."""
    names = EdgeClassifierWeights.names()
    with np.load(path, allow_pickle=False) as data:
        missing = [n for n in names if n not in data.files]
        unknown = [n for n in data.files if n not in names]
        if missing or unknown:
            raise ValueError(f"{path}: not edge classifier weights (missing {missing}, unknown {unknown})")
        arrays = {n: np.asarray(data[n]) for n in names}
    try:
        return EdgeClassifierWeights(**arrays)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err


@njit
def _dense_relu(x, w, bias):
    """relu(x w + bias) accumulated input by input: for the few-input encoder layers, where a
    BLAS call on a (rows, 3 or 6) matrix is several times slower than this loop."""
    n_rows, n_in = x.shape
    n_out = bias.size
    out = np.empty((n_rows, n_out), dtype=np.float32)
    for r in range(n_rows):
        for c in range(n_out):
            out[r, c] = bias[c]
        for k in range(n_in):
            v = x[r, k]
            for c in range(n_out):
                out[r, c] += v * w[k, c]
        for c in range(n_out):
            if not out[r, c] > 0.0:
                out[r, c] = 0.0
    return out


@njit
def _gather_add_relu(node_a, node_b, src, dst, edge_c, bias):
    """edge_c[e] = relu(node_a[src[e]] + node_b[dst[e]] + edge_c[e] + bias), in place."""
    n_hidden = bias.size
    for e in range(src.size):
        s = src[e]
        d = dst[e]
        for c in range(n_hidden):
            v = node_a[s, c] + node_b[d, c] + edge_c[e, c] + bias[c]
            edge_c[e, c] = v if v > 0.0 else np.float32(0.0)


@njit
def _residual_and_node_sums(edge_state, update, bias, gate_w, gate_b, src, dst, n_nodes):
    """edge_state += update + bias (in place); returns the sums of the messages
    sigmoid(edge_state . gate_w + gate_b) * edge_state into the (dst, src) nodes."""
    n_hidden = bias.size
    sum_in = np.zeros((n_nodes, n_hidden), dtype=np.float32)
    sum_out = np.zeros((n_nodes, n_hidden), dtype=np.float32)
    for e in range(src.size):
        s = src[e]
        d = dst[e]
        z = gate_b
        for c in range(n_hidden):
            v = edge_state[e, c] + (update[e, c] + bias[c])
            edge_state[e, c] = v
            z += v * gate_w[c]
        g = np.float32(1.0) / (np.float32(1.0) + np.exp(-z))
        for c in range(n_hidden):
            m = g * edge_state[e, c]
            sum_in[d, c] += m
            sum_out[s, c] += m
    return sum_in, sum_out


def _mlp(x: np.ndarray, w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray) -> np.ndarray:
    """relu(x w1 + b1) w2 + b2 on the rows of x."""
    hidden = x @ w1
    hidden += b1
    np.maximum(hidden, 0.0, out=hidden)
    out = hidden @ w2
    out += b2
    return out


def _encoder(x: np.ndarray, w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray) -> np.ndarray:
    """`_mlp` for the encoders (first layer in numba: only 3 or 6 inputs)."""
    out = _dense_relu(np.ascontiguousarray(x, dtype=np.float32), w1, b1) @ w2
    out += b2
    return out


def _edge_hidden(h: np.ndarray, e: np.ndarray, w1: np.ndarray, b1: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """relu([h_i, h_j, e] w1 + b1) per edge, with w1 split into its three row blocks."""
    n_hidden = h.shape[1]
    node_a = h @ w1[:n_hidden]
    node_b = h @ w1[n_hidden : 2 * n_hidden]
    hidden = e @ w1[2 * n_hidden :]
    _gather_add_relu(node_a, node_b, src, dst, hidden, b1)
    return hidden


def check_inputs(
    node_features: np.ndarray, edge_index: np.ndarray, edge_features: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Validate shapes and indices; returns (nodes, edge features, src, dst) ready for `forward`."""
    nodes = np.asarray(node_features)
    index = np.asarray(edge_index)
    edge_x = np.asarray(edge_features)
    if nodes.ndim != 2 or nodes.shape[1] != N_NODE_FEATURES:
        raise ValueError(f"{NODE_FEATURES} must have shape (N, {N_NODE_FEATURES}), got {nodes.shape}")
    if index.ndim != 2 or index.shape[1] != 2:
        raise ValueError(f"{EDGE_INDEX} must have shape (E, 2), got {index.shape}")
    if index.size and not np.issubdtype(index.dtype, np.integer):
        raise ValueError(f"{EDGE_INDEX} must be integers, got {index.dtype}")
    if edge_x.ndim != 2 or edge_x.shape[1] != N_EDGE_FEATURES:
        raise ValueError(f"{EDGE_FEATURES} must have shape (E, {N_EDGE_FEATURES}), got {edge_x.shape}")
    if len(edge_x) != len(index):
        raise ValueError(f"{EDGE_INDEX} has {len(index)} edges but {EDGE_FEATURES} has {len(edge_x)} rows")
    if index.size and (index.min() < 0 or index.max() >= len(nodes)):
        raise ValueError(f"{EDGE_INDEX} values must lie in [0, {len(nodes)}), got [{index.min()}, {index.max()}]")
    src = np.ascontiguousarray(index[:, 0], dtype=np.int64)
    dst = np.ascontiguousarray(index[:, 1], dtype=np.int64)
    return nodes.astype(np.float32, copy=False), edge_x.astype(np.float32, copy=False), src, dst


_blas: list[ThreadpoolController] = []  # made once per process, on first use (it scans the loaded libraries)


def _one_blas_thread():
    """A context in which BLAS runs on one thread (about 25 µs to enter and leave)."""
    if not _blas:
        _blas.append(ThreadpoolController())
    return _blas[0].limit(limits=1, user_api="blas")


def forward(
    weights: EdgeClassifierWeights, node_features: np.ndarray, edge_index: np.ndarray, edge_features: np.ndarray
) -> np.ndarray:
    """Scores in [0, 1], float32 of shape (E,), one per edge of the graph."""
    nodes, edge_x, src, dst = check_inputs(node_features, edge_index, edge_features)
    if len(src) == 0:
        return np.zeros(0, np.float32)
    with _one_blas_thread():
        return _forward(weights, nodes, edge_x, src, dst)


def _forward(w: EdgeClassifierWeights, nodes: np.ndarray, edge_x: np.ndarray, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """`forward` on checked inputs (see the module docstring for the architecture)."""
    x = (nodes - w.node_mean) / w.node_std
    y = (edge_x - w.edge_mean) / w.edge_std
    h = _encoder(x, w.node_enc_w1, w.node_enc_b1, w.node_enc_w2, w.node_enc_b2)
    e = _encoder(y, w.edge_enc_w1, w.edge_enc_b1, w.edge_enc_w2, w.edge_enc_b2)
    for k in range(w.n_steps):
        hidden = _edge_hidden(h, e, w.edge_upd_w1[k], w.edge_upd_b1[k], src, dst)
        sum_in, sum_out = _residual_and_node_sums(e, hidden @ w.edge_upd_w2[k], w.edge_upd_b2[k], w.gate_w[k],
                                                  w.gate_b[k], src, dst, len(h))
        h = h + _mlp(np.concatenate([h, sum_in, sum_out], axis=1),
                     w.node_upd_w1[k], w.node_upd_b1[k], w.node_upd_w2[k], w.node_upd_b2[k])
    hidden = _edge_hidden(h, e, w.score_w1, w.score_b1, src, dst)
    logit = (hidden @ w.score_w2)[:, 0] + w.score_b2[0]
    return (1.0 / (1.0 + np.exp(-np.clip(logit, -60.0, 60.0)))).astype(np.float32)


def model_inputs(node_features: np.ndarray, edges: np.ndarray, edge_features: np.ndarray) -> dict[str, np.ndarray]:
    """The request of one event's graph, keyed by the model's input names (Triton dtypes)."""
    return {
        NODE_FEATURES: np.ascontiguousarray(node_features, dtype=np.float32).reshape(-1, N_NODE_FEATURES),
        EDGE_INDEX: np.ascontiguousarray(edges, dtype=np.int32).reshape(-1, 2),
        EDGE_FEATURES: np.ascontiguousarray(edge_features, dtype=np.float32).reshape(-1, N_EDGE_FEATURES),
    }


def request_for_hits(hits, config) -> dict[str, np.ndarray]:
    """The request a worker sends for an event's tracker hits (`simulation.TrackerHits`): its
    hit graph with the farm's cuts (`config.features`) and the graph's features. For tests
    and benchmarks that need realistic requests; the HLT sequence builds the same inline."""
    from trigger_sim.kernels import build_hit_graph, graph_features

    f = config.features
    edges, _ = build_hit_graph(hits.layer, hits.r_mm, hits.phi, hits.z_mm, len(config.tracker.layer_radii_mm),
                               f.graph_phi_slope_max, f.graph_z0_max_mm, f.graph_max_edges)
    nodes, edge_features = graph_features(hits.r_mm, hits.phi, hits.z_mm, edges)
    return model_inputs(nodes, edges, edge_features)


def request_arrays(inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(node features, edge index, edge features) of a request dict as `model_inputs` makes it."""
    missing = [name for name in (NODE_FEATURES, EDGE_INDEX, EDGE_FEATURES) if name not in inputs]
    if missing:
        raise ValueError(f"edge classifier request lacks inputs {missing}")
    return inputs[NODE_FEATURES], inputs[EDGE_INDEX], inputs[EDGE_FEATURES]


def infer_inputs(weights: EdgeClassifierWeights, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """`forward` on a request dict as `model_inputs` makes it (what Triton and the fallback run)."""
    return forward(weights, *request_arrays(inputs))


def tiny_graph() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(node features, edge index, edge features) of a three-hit, two-edge graph, for warm-ups."""
    nodes = np.array([[32.0, 0.0, 0.0], [72.0, 10.0, 0.1], [72.0, 20.0, 0.2]], np.float32)
    edge_x = np.array([[40.0, 0.01, 10.0, 0.00025, 0.0, 0.1], [40.0, -0.01, 20.0, -0.00025, -1.0, 0.2]], np.float32)
    return nodes, np.array([[0, 1], [0, 2]], np.int32), edge_x


def warm_up(weights: EdgeClassifierWeights) -> None:
    """Run `forward` on a two-edge graph so the numba helpers are loaded (or compiled) now."""
    forward(weights, *tiny_graph())


class LocalEdgeClassifier:
    """The worker's in-process fallback: same code and weights as the Triton model."""

    def __init__(self, path: str | Path = WEIGHTS_PATH):
        self.weights = load_weights(path)
        warm_up(self.weights)

    def infer(self, inputs: dict[str, np.ndarray], timeout_s: float = 0.0) -> np.ndarray:
        return infer_inputs(self.weights, inputs)
