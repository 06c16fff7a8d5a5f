"""The edge classifier in PyTorch: the training mirror, and the forward pass on a GPU.

`EdgeClassifierNet` mirrors the numpy forward of `trigger_sim.models.edge_classifier`
layer by layer (the first layer of each edge MLP split into its three input blocks, the
message gate, the edge-to-node sums). Training uses it (scripts/train_edge_classifier.py),
and a Triton instance on a GPU serves with it (`TorchEdgeClassifier`). The numpy forward
stays the reference and the workers' fallback: torch sums the edge messages with
`index_add` (on a GPU in no fixed order) and its matrix products round differently, so
its scores agree with numpy's to about 1e-6 (1e-5 on pile-up-200 graphs), not bit for bit.

Importing this module imports torch (the `gpu` or `train` extra); nothing else in the
package does.
"""

from __future__ import annotations

import numpy as np
import torch

from trigger_sim.models.edge_classifier import (
    N_EDGE_FEATURES,
    N_NODE_FEATURES,
    EdgeClassifierWeights,
    check_inputs,
)


class Mlp(torch.nn.Module):
    """relu(x W1 + b1) W2 + b2, as `_mlp` in the numpy forward."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int):
        super().__init__()
        self.first = torch.nn.Linear(n_in, n_hidden)
        self.second = torch.nn.Linear(n_hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(torch.relu(self.first(x)))

    def on_edges(self, h: torch.Tensor, e: torch.Tensor, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        """forward([h[src], h[dst], e]) with the first layer split by input block, as the numpy
        forward does it (the per-node products once per node, not once per edge)."""
        n = h.shape[1]
        w = self.first.weight
        node_a = h @ w[:, :n].T
        node_b = h @ w[:, n : 2 * n].T
        hidden = torch.relu(node_a[src] + node_b[dst] + e @ w[:, 2 * n :].T + self.first.bias)
        return self.second(hidden)


class EdgeClassifierNet(torch.nn.Module):
    """The numpy forward of trigger_sim.models.edge_classifier in torch; returns logits."""

    def __init__(self, hidden: int, n_steps: int, node_mean: np.ndarray, node_std: np.ndarray,
                 edge_mean: np.ndarray, edge_std: np.ndarray):
        super().__init__()
        for name, value in (("node_mean", node_mean), ("node_std", node_std), ("edge_mean", edge_mean), ("edge_std", edge_std)):
            self.register_buffer(name, torch.as_tensor(np.asarray(value, np.float32)))
        self.node_encoder = Mlp(N_NODE_FEATURES, hidden, hidden)
        self.edge_encoder = Mlp(N_EDGE_FEATURES, hidden, hidden)
        self.edge_updates = torch.nn.ModuleList(Mlp(3 * hidden, hidden, hidden) for _ in range(n_steps))
        self.node_updates = torch.nn.ModuleList(Mlp(3 * hidden, hidden, hidden) for _ in range(n_steps))
        self.gates = torch.nn.ModuleList(torch.nn.Linear(hidden, 1) for _ in range(n_steps))
        self.score = Mlp(3 * hidden, hidden, 1)

    def forward(self, nodes: torch.Tensor, edges: torch.Tensor, edge_features: torch.Tensor) -> torch.Tensor:
        src, dst = edges[:, 0].long(), edges[:, 1].long()
        h = self.node_encoder((nodes - self.node_mean) / self.node_std)
        e = self.edge_encoder((edge_features - self.edge_mean) / self.edge_std)
        for edge_update, gate, node_update in zip(self.edge_updates, self.gates, self.node_updates):
            e = e + edge_update.on_edges(h, e, src, dst)
            message = torch.sigmoid(gate(e)) * e
            sum_in = torch.zeros_like(h).index_add(0, dst, message)
            sum_out = torch.zeros_like(h).index_add(0, src, message)
            h = h + node_update(torch.cat([h, sum_in, sum_out], dim=1))
        return self.score.on_edges(h, e, src, dst)[:, 0]


def _mlp_arrays(mlp: Mlp) -> tuple[np.ndarray, ...]:
    """(w1, b1, w2, b2) with weights as (inputs, outputs), as the numpy forward uses them."""
    return tuple(t.detach().cpu().numpy().astype(np.float32)
                 for t in (mlp.first.weight.T, mlp.first.bias, mlp.second.weight.T, mlp.second.bias))


def export_weights(net: EdgeClassifierNet) -> EdgeClassifierWeights:
    """The torch parameters as the numpy model's weights (float32)."""
    arrays: dict[str, np.ndarray] = {name: getattr(net, name).cpu().numpy() for name in ("node_mean", "node_std", "edge_mean", "edge_std")}
    for prefix, mlp in (("node_enc", net.node_encoder), ("edge_enc", net.edge_encoder), ("score", net.score)):
        arrays.update(zip((f"{prefix}_w1", f"{prefix}_b1", f"{prefix}_w2", f"{prefix}_b2"), _mlp_arrays(mlp)))
    for prefix, mlps in (("edge_upd", net.edge_updates), ("node_upd", net.node_updates)):
        per_step = [_mlp_arrays(m) for m in mlps]
        for k, suffix in enumerate(("w1", "b1", "w2", "b2")):
            arrays[f"{prefix}_{suffix}"] = np.stack([step[k] for step in per_step])
    arrays["gate_w"] = np.stack([g.weight.detach().numpy()[0] for g in net.gates]).astype(np.float32)
    arrays["gate_b"] = np.stack([g.bias.detach().numpy() for g in net.gates])[:, 0].astype(np.float32)
    return EdgeClassifierWeights(**arrays)


def net_from_weights(weights: EdgeClassifierWeights) -> EdgeClassifierNet:
    """A torch module holding the given numpy weights (for checks against the numpy forward)."""
    w = weights
    net = EdgeClassifierNet(w.hidden, w.n_steps, w.node_mean, w.node_std, w.edge_mean, w.edge_std)

    def load(mlp: Mlp, w1: np.ndarray, b1: np.ndarray, w2: np.ndarray, b2: np.ndarray) -> None:
        with torch.no_grad():
            mlp.first.weight.copy_(torch.from_numpy(np.ascontiguousarray(w1.T)))
            mlp.first.bias.copy_(torch.from_numpy(b1))
            mlp.second.weight.copy_(torch.from_numpy(np.ascontiguousarray(w2.T)))
            mlp.second.bias.copy_(torch.from_numpy(b2))

    load(net.node_encoder, w.node_enc_w1, w.node_enc_b1, w.node_enc_w2, w.node_enc_b2)
    load(net.edge_encoder, w.edge_enc_w1, w.edge_enc_b1, w.edge_enc_w2, w.edge_enc_b2)
    load(net.score, w.score_w1, w.score_b1, w.score_w2, w.score_b2)
    for k in range(w.n_steps):
        load(net.edge_updates[k], w.edge_upd_w1[k], w.edge_upd_b1[k], w.edge_upd_w2[k], w.edge_upd_b2[k])
        load(net.node_updates[k], w.node_upd_w1[k], w.node_upd_b1[k], w.node_upd_w2[k], w.node_upd_b2[k])
        with torch.no_grad():
            net.gates[k].weight.copy_(torch.from_numpy(w.gate_w[k : k + 1]))
            net.gates[k].bias.copy_(torch.from_numpy(w.gate_b[k : k + 1]))
    return net


def torch_scores(net: EdgeClassifierNet, nodes: np.ndarray, edges: np.ndarray, edge_features: np.ndarray) -> np.ndarray:
    """sigmoid(logits) of the torch module, on the module's device; float32 numpy."""
    device = net.node_mean.device
    with torch.inference_mode():
        logits = net(torch.from_numpy(nodes).to(device), torch.from_numpy(edges.astype(np.int64)).to(device),
                     torch.from_numpy(edge_features).to(device))
        return torch.sigmoid(logits).cpu().numpy().astype(np.float32)


class TorchEdgeClassifier:
    """Edge scores of one event's graph computed by torch on `device` ("cpu", "cuda:0", ...).

    Same inputs, checks and outputs as `edge_classifier.infer_inputs`: float32 scores of
    shape (E,), with a ValueError for a malformed request.
    """

    def __init__(self, weights: EdgeClassifierWeights, device: str):
        self.device = torch.device(device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)  # this instance's GPU only: no context on GPU 0 as well
        self.net = net_from_weights(weights).eval().to(self.device)

    def forward(self, node_features: np.ndarray, edge_index: np.ndarray, edge_features: np.ndarray) -> np.ndarray:
        nodes, edge_x, src, dst = check_inputs(node_features, edge_index, edge_features)
        if len(src) == 0:
            return np.zeros(0, np.float32)
        return torch_scores(self.net, nodes, np.stack([src, dst], axis=1), edge_x)
