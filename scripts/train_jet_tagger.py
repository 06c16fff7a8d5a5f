"""Train the HLT jet tagger (hard-scatter vs pile-up jets) with plain numpy.

Why: the workers and the Triton model score every calorimeter jet with the small MLP of
`trigger_sim.models.jet_tagger` (6 -> H -> H -> 1, ReLU, sigmoid), and the menu's tagged
chains cut on that score. This script produces its weights file reproducibly.

What it does:
1. Simulates events with its own seed (never the farm's default run seed), a raised signal
   fraction so that hard-scatter jets are plentiful, and pile-up cycling through several
   means so that the tagger does not learn a single pile-up condition.
2. Builds the per-jet features exactly as `HltSequence.process` does: fragments, unpacking,
   `find_jets`, `build_hit_graph`, `seed_directions`, `count_in_cones`, `jet_tagger_inputs`.
3. Labels a jet 1 if it lies within ΔR < 0.3 of one of the event's two dijet partons, else 0.
4. Holds out 25% of the events (whole events, so no jet shares an event across the split),
   standardises with training-set mean/std, and trains with mini-batch Adam on binary
   cross-entropy.
5. Reports loss, ROC AUC, and efficiencies at score 0.5, saves the weights, reloads them
   with `load_weights` and checks that the library's `forward` reproduces the AUC.

Usage: python scripts/train_jet_tagger.py [--events N] [--seed S] [--epochs E] [--out PATH]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from trigger_sim.config import FarmConfig, with_overrides
from trigger_sim.detector import tower_centers
from trigger_sim.features import count_in_cones, jet_phi_eta, jet_tagger_inputs, seed_directions
from trigger_sim.kernels import build_hit_graph, find_jets
from trigger_sim.models.jet_tagger import WEIGHTS_PATH, JetTaggerWeights, forward, load_weights
from trigger_sim.partition import make_fragments, unpack_calo, unpack_tracker
from trigger_sim.simulation import bunch_crossing, simulate

PILEUP_MEANS = (0.0, 20.0, 60.0)  # event i uses PILEUP_MEANS[i % 3]
SIGNAL_FRACTION = 0.6
MATCH_DR = 0.3
HIDDEN = 32


def event_jets(config: FarmConfig, l1_id: int, eta_c: np.ndarray, phi_c: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(features (n, 6) float32, labels (n,)) of one event, built as a worker builds them."""
    sim = simulate(config, l1_id)  # what `event_fragments` does, keeping the truth
    fragments = make_fragments(config, sim.hits, sim.towers, config.run.run_number, l1_id, bunch_crossing(config, l1_id), 0)
    layer, r, phi, z = unpack_tracker(fragments, config.tracker)
    em, had = unpack_calo(fragments, config.calo)
    f = config.features
    jets = find_jets(em, had, eta_c, phi_c, f.jet_seed_gev, f.jet_radius, f.jet_min_pt_gev, f.max_jets)
    edges, _ = build_hit_graph(layer, r, phi, z, len(config.tracker.layer_radii_mm), f.graph_phi_slope_max, f.graph_z0_max_mm, f.graph_max_edges)
    seed_eta, seed_phi = seed_directions(layer, r, phi, z, edges)
    jet_eta, jet_phi = jet_phi_eta(jets)
    x = jet_tagger_inputs(jets, count_in_cones(jet_eta, jet_phi, seed_eta, seed_phi, f.jet_radius))
    truth = sim.truth
    if len(truth.parton_eta) == 0:
        return x, np.zeros(len(x))
    deta = jet_eta[:, None] - truth.parton_eta[None, :]
    dphi = np.angle(np.exp(1j * (jet_phi[:, None] - truth.parton_phi[None, :])))
    return x, (deta**2 + dphi**2 < MATCH_DR**2).any(axis=1).astype(np.float64)


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Mann-Whitney rank formula; tied scores get their average rank."""
    scores = np.asarray(scores, np.float64).ravel()
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    avg_rank = np.cumsum(counts) - (counts - 1) / 2.0  # 1-based average rank of each distinct score
    pos = labels == 1
    n_pos, n_neg = pos.sum(), (~pos).sum()
    if n_pos == 0 or n_neg == 0:
        return float("nan")  # undefined with one class only
    return float((avg_rank[inverse][pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def bce(p: np.ndarray, y: np.ndarray) -> float:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))


def mlp(params: dict, x: np.ndarray) -> tuple[np.ndarray, tuple]:
    """Forward pass on standardised x; returns probabilities and what backprop needs."""
    a1 = x @ params["w1"] + params["b1"]
    h1 = np.maximum(a1, 0.0)
    a2 = h1 @ params["w2"] + params["b2"]
    h2 = np.maximum(a2, 0.0)
    logit = (h2 @ params["w3"] + params["b3"])[:, 0]
    return 1.0 / (1.0 + np.exp(-np.clip(logit, -60, 60))), (x, a1, h1, a2, h2)


def gradients(params: dict, p: np.ndarray, y: np.ndarray, cache: tuple) -> dict:
    """Gradients of the mean binary cross-entropy (sigmoid + BCE: dL/dlogit = p - y)."""
    x, a1, h1, a2, h2 = cache
    d3 = ((p - y) / len(y))[:, None]
    d2 = (d3 @ params["w3"].T) * (a2 > 0)
    d1 = (d2 @ params["w2"].T) * (a1 > 0)
    return {"w3": h2.T @ d3, "b3": d3.sum(0), "w2": h1.T @ d2, "b2": d2.sum(0), "w1": x.T @ d1, "b1": d1.sum(0)}


def train(x: np.ndarray, y: np.ndarray, xv: np.ndarray, yv: np.ndarray, epochs: int, rng: np.random.Generator,
          batch: int = 256, lr: float = 2e-3) -> dict:
    """Mini-batch Adam on standardised inputs; prints losses as it goes."""
    n_in = x.shape[1]
    params = {
        "w1": rng.normal(0, np.sqrt(2 / n_in), (n_in, HIDDEN)), "b1": np.zeros(HIDDEN),
        "w2": rng.normal(0, np.sqrt(2 / HIDDEN), (HIDDEN, HIDDEN)), "b2": np.zeros(HIDDEN),
        "w3": rng.normal(0, np.sqrt(1 / HIDDEN), (HIDDEN, 1)), "b3": np.array([np.log(y.mean() / (1 - y.mean()))]),
    }
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(v) for k, v in params.items()}
    b1, b2, step = 0.9, 0.999, 0
    for epoch in range(1, epochs + 1):
        for idx in np.array_split(rng.permutation(len(x)), max(1, len(x) // batch)):
            p, cache = mlp(params, x[idx])
            step += 1
            for k, g in gradients(params, p, y[idx], cache).items():
                m[k] = b1 * m[k] + (1 - b1) * g
                v[k] = b2 * v[k] + (1 - b2) * g * g
                params[k] -= lr * (m[k] / (1 - b1**step)) / (np.sqrt(v[k] / (1 - b2**step)) + 1e-8)
        if epoch == 1 or epoch % 10 == 0 or epoch == epochs:
            print(f"  epoch {epoch:3d}: train loss {bce(mlp(params, x)[0], y):.4f}, validation loss {bce(mlp(params, xv)[0], yv):.4f}")
    return params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=6000, help="events to simulate (default 6000)")
    parser.add_argument("--seed", type=int, default=777, help="simulation seed, also seeds the split and training")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--out", type=Path, default=WEIGHTS_PATH)
    args = parser.parse_args()
    t0 = time.perf_counter()

    if args.seed == FarmConfig().run.seed:
        raise SystemExit("--seed must differ from the farm's default run seed")
    base = with_overrides(FarmConfig(), run={"seed": args.seed}, physics={"signal_fraction": SIGNAL_FRACTION})
    configs = [with_overrides(base, physics={"pileup_mean": mu}) for mu in PILEUP_MEANS]
    eta_c, phi_c = tower_centers(base.calo)
    xs, ys, event_of = [], [], []
    for l1_id in range(args.events):
        x, y = event_jets(configs[l1_id % len(configs)], l1_id, eta_c, phi_c)
        xs.append(x), ys.append(y), event_of.append(np.full(len(x), l1_id))
    x, y, event_of = np.concatenate(xs), np.concatenate(ys), np.concatenate(event_of)
    pileup = np.asarray(PILEUP_MEANS)[event_of % len(PILEUP_MEANS)]
    print(f"{args.events} events -> {len(y)} jets: {int(y.sum())} hard-scatter, {int(len(y) - y.sum())} pile-up/noise "
          f"({time.perf_counter() - t0:.0f} s)")

    rng = np.random.default_rng(args.seed)
    is_val = rng.random(args.events) < 0.25  # hold out whole events
    val = is_val[event_of]
    mean = x[~val].astype(np.float64).mean(axis=0)
    std = x[~val].astype(np.float64).std(axis=0) + 1e-6
    z = (x.astype(np.float64) - mean) / std
    for name, sel in (("train", ~val), ("validation", val)):
        print(f"  {name}: {int(y[sel].sum())} signal, {int((1 - y[sel]).sum())} background jets")
    params = train(z[~val], y[~val], z[val], y[val], args.epochs, rng)
    auc = roc_auc(mlp(params, z[val])[0], y[val])

    weights = JetTaggerWeights(mean=mean, std=std, **params)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    weights.save(args.out)
    # Check: the saved file, loaded and run through the library forward, gives the same AUC.
    scores = forward(load_weights(args.out), x[val])[:, 0]
    auc_lib = roc_auc(scores, y[val])
    if abs(auc_lib - auc) > 1e-3:
        raise SystemExit(f"reloaded weights give AUC {auc_lib:.5f}, training gave {auc:.5f}")
    yv, pv = y[val] == 1, pileup[val]
    eff_s, n_fake = (scores[yv] >= 0.5).mean(), int((scores[~yv] >= 0.5).sum())
    eff_b = n_fake / (~yv).sum()
    rejection = f"{1 / eff_b:.1f}" if n_fake else f"> {(~yv).sum()}"  # none passing: a lower bound
    print(f"validation AUC {auc_lib:.5f} (training code {auc:.5f}); at score 0.5: signal efficiency {eff_s:.4f}, "
          f"background efficiency {eff_b:.5f} ({n_fake} of {(~yv).sum()} jets; rejection {rejection})")
    for mu in PILEUP_MEANS:
        sel = pv == mu
        print(f"  pile-up {mu:g}: AUC {roc_auc(scores[sel], y[val][sel]):.5f}, {int(yv[sel].sum())} signal / {int((~yv[sel]).sum())} background jets")
    print(f"saved {args.out} ({args.out.stat().st_size} bytes): AUC {auc_lib:.5f}, eff_s {eff_s:.4f}, eff_b {eff_b:.5f}, "
          f"{len(y)} jets from {args.events} events, seed {args.seed}, {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
