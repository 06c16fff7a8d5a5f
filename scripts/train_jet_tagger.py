"""Train the HLT jet tagger (hadronic-tau jets vs QCD and pile-up jets) with PyTorch.

Why: the workers and the Triton model score every calorimeter jet with the small MLP of
`trigger_sim.models.jet_tagger` (9 -> H -> H -> 1, ReLU, sigmoid), and the menu's tau chains
cut on that score. Training uses PyTorch (the optional `train` extra); serving is the numpy
forward pass of `jet_tagger.forward`, checked against PyTorch's on the saved weights.

What it does:
1. Simulates events with its own seed (never the farm's default run seed nor the validation
   seed), a process mix rich in H -> tau tau and dijets, pile-up cycling through 20, 60, 100.
2. Runs each event through the HLT sequence itself (`HltSequence.process` with the local
   edge classifier, tracking, and the jet features the tagger sees in the farm).
3. Labels jets with `trigger_sim.validation.jet_labels` (1: a visible hadronic tau of
   pT > 15 GeV within ΔR < 0.2; 0: no tau near, electrons included, so that the tagger
   rejects them; jets near a soft tau unused).
4. Holds out 25 % of the events, standardises with the training mean/std, trains with Adam
   on binary cross-entropy in float64 (the numpy forward pass is float64 too), background
   jets weighted so that their pT spectrum follows the tau jets' (`background_pt_weights`):
   the hard QCD jets the tau chains' thresholds keep would otherwise be a few per cent of a
   background of soft pile-up jets, and the tagger took a third of them for taus.
5. Saves the weights, and a golden file of inputs and PyTorch outputs for the tests.

Recorded run (defaults: 2,400 events, 60 epochs, seed 31337; torch 2.14.1 on the CPU, a
shared 2-core machine, on the committed edge classifier): 28,831 jets (1,919 tau,
26,912 QCD, pile-up and electron jets), 137 s in all; held-out AUC 0.9945 (0.9951 without
the pT weights); at score 0.5 tau efficiency 0.948, background efficiency 0.024 (0.981 and
0.033 without); numpy forward vs torch: max |difference| 3e-08.

Usage: python scripts/train_jet_tagger.py [--events N] [--seed S] [--epochs E]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trigger_sim.config import FarmConfig, with_overrides  # noqa: E402
from trigger_sim.hlt.sequence import EventObjects, HltSequence  # noqa: E402
from trigger_sim.inference.breaker import CircuitBreaker  # noqa: E402
from trigger_sim.inference.service import InferenceService  # noqa: E402
from trigger_sim.kernels.calo_jets import JET_ETA, JET_PHI  # noqa: E402
from trigger_sim.menu import load_menu  # noqa: E402
from trigger_sim.models import edge_classifier  # noqa: E402
from trigger_sim.models.jet_tagger import N_FEATURES, WEIGHTS_PATH, JetTaggerWeights, forward, load_weights  # noqa: E402
from trigger_sim.models.registry import EDGE_CLASSIFIER, JET_TAGGER  # noqa: E402
from trigger_sim.partition import make_fragments  # noqa: E402
from trigger_sim.simulation import bunch_crossing, simulate  # noqa: E402
from trigger_sim.validation import jet_labels, roc_auc  # noqa: E402
from trigger_sim.wire import encode_fragment  # noqa: E402

PILEUP_MEANS = (20.0, 60.0, 100.0)  # event i uses PILEUP_MEANS[i % 3]
MIX = {"dijet_fraction": 0.35, "electron_fraction": 0.1, "signal_fraction": 0.45}
HIDDEN = 32
GOLDEN_PATH = Path(__file__).resolve().parents[1] / "tests" / "data" / "jet_tagger_golden.npz"


class _NoTagger:
    """Stands in for the tagger while its inputs are collected."""

    def infer(self, inputs: np.ndarray, timeout_s: float = 0.0) -> np.ndarray:
        return np.zeros((len(inputs), 1), np.float32)


def event_jets(config: FarmConfig, sequence: HltSequence, l1_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(tagger inputs (n, N_FEATURES), labels (n,)) of the jets of one event, as a worker sees them."""
    sim = simulate(config, l1_id)
    fragments = make_fragments(config, sim.hits, sim.towers, config.run.run_number, l1_id, bunch_crossing(config, l1_id), 0)
    keep = EventObjects()
    sequence.process(l1_id, [encode_fragment(f) for f in fragments], keep=keep)
    if keep.jet_inputs is None or len(keep.jet_inputs) == 0:
        return np.zeros((0, N_FEATURES), np.float32), np.zeros(0, np.int64)
    t = sim.truth
    labels = jet_labels(keep.jets[:, JET_ETA], keep.jets[:, JET_PHI], t.truth_kind, t.truth_pt_gev, t.truth_eta, t.truth_phi)
    return keep.jet_inputs, labels


def sequence_for(config: FarmConfig) -> HltSequence:
    breaker = CircuitBreaker(1, 1)
    relaxed = with_overrides(config, worker={"budget_ms": 60_000.0})
    services = {
        EDGE_CLASSIFIER: InferenceService(None, edge_classifier.LocalEdgeClassifier(), breaker, 1.0,
                                          size_of=lambda d: len(d[edge_classifier.EDGE_INDEX]), empty_output=np.zeros(0, np.float32)),
        JET_TAGGER: InferenceService(None, _NoTagger(), CircuitBreaker(1, 1), 1.0),
    }
    return HltSequence(relaxed, load_menu(config.menu), services)


PT_WEIGHT_BINS_GEV = (10.0, 15.0, 20.0, 25.0, 30.0, 40.0, 50.0, 70.0, 100.0, 150.0, 1e9)


def background_pt_weights(log_pt: np.ndarray, y: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Per jet, its weight in the loss: 1 for tau jets; for background jets, the ratio of the
    tau jets' pT spectrum to the background's in their pT bin (both normalised on the training
    jets), never below 1. Without it the background is almost all soft pile-up jets, and the
    few hard QCD jets, which the tau chains' thresholds keep, barely count in the loss."""
    bins = np.digitize(np.exp(log_pt), PT_WEIGHT_BINS_GEV)
    n_bins = len(PT_WEIGHT_BINS_GEV) + 1
    sig = np.bincount(bins[train & (y == 1)], minlength=n_bins) / max((train & (y == 1)).sum(), 1)
    bkg = np.bincount(bins[train & (y == 0)], minlength=n_bins) / max((train & (y == 0)).sum(), 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(bkg > 0, sig / bkg, 1.0)
    return np.where(y == 1, 1.0, np.maximum(ratio[bins], 1.0))


def main() -> None:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=2400)
    parser.add_argument("--seed", type=int, default=31337, help="simulation seed, also seeds the split and training")
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()
    t0 = time.perf_counter()
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)

    base = with_overrides(FarmConfig(), run={"seed": args.seed}, physics=MIX)
    configs = [with_overrides(base, physics={"pileup_mean": mu}) for mu in PILEUP_MEANS]
    sequences = [sequence_for(c) for c in configs]
    xs, ys, event_of = [], [], []
    for l1_id in range(args.events):
        k = l1_id % len(configs)
        x, y = event_jets(configs[k], sequences[k], l1_id)
        use = y >= 0
        xs.append(x[use]), ys.append(y[use]), event_of.append(np.full(int(use.sum()), l1_id))
        if (l1_id + 1) % 500 == 0:
            print(f"  {l1_id + 1} events ({time.perf_counter() - t0:.0f} s)", flush=True)
    x = np.concatenate(xs).astype(np.float64)
    y = np.concatenate(ys).astype(np.float64)
    event_of = np.concatenate(event_of)
    print(f"{args.events} events -> {len(y)} jets: {int(y.sum())} tau, {int(len(y) - y.sum())} QCD/pile-up "
          f"({time.perf_counter() - t0:.0f} s)")

    rng = np.random.default_rng(args.seed)
    val = (rng.random(args.events) < 0.25)[event_of]
    mean = x[~val].mean(axis=0)
    std = x[~val].std(axis=0) + 1e-6
    z = torch.from_numpy((x - mean) / std)
    target = torch.from_numpy(y)
    model = torch.nn.Sequential(
        torch.nn.Linear(N_FEATURES, HIDDEN), torch.nn.ReLU(), torch.nn.Linear(HIDDEN, HIDDEN), torch.nn.ReLU(),
        torch.nn.Linear(HIDDEN, 1),
    ).double()
    weight = torch.from_numpy(background_pt_weights(x[:, 0], y, ~val))
    pos_weight = torch.tensor([float(weight[torch.from_numpy(~val & (y == 0))].sum()) / max(y[~val].sum(), 1.0)], dtype=torch.float64)
    loss_fn = torch.nn.BCEWithLogitsLoss(pos_weight=pos_weight, reduction="none")
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    train_idx = np.flatnonzero(~val)
    for epoch in range(1, args.epochs + 1):
        for batch in np.array_split(rng.permutation(train_idx), max(1, len(train_idx) // 256)):
            b = torch.from_numpy(batch)
            opt.zero_grad()
            loss = (loss_fn(model(z[b])[:, 0], target[b]) * weight[b]).sum() / weight[b].sum()
            loss.backward()
            opt.step()
        if epoch == 1 or epoch % 10 == 0:
            with torch.no_grad():
                p = torch.sigmoid(model(z[torch.from_numpy(np.flatnonzero(val))])[:, 0]).numpy()
            print(f"  epoch {epoch:3d}: loss {loss.item():.4f}, validation AUC {roc_auc(p, y[val]):.4f}", flush=True)

    layers = [m for m in model if isinstance(m, torch.nn.Linear)]
    params = {}
    for i, layer in enumerate(layers, start=1):
        params[f"w{i}"] = layer.weight.detach().numpy().T.copy()
        params[f"b{i}"] = layer.bias.detach().numpy().copy()
    weights = JetTaggerWeights(mean=mean, std=std, **params)
    WEIGHTS_PATH.parent.mkdir(parents=True, exist_ok=True)
    weights.save(WEIGHTS_PATH)
    scores = forward(load_weights(WEIGHTS_PATH), x[val])[:, 0]
    with torch.no_grad():
        torch_scores = torch.sigmoid(model(z[torch.from_numpy(np.flatnonzero(val))])[:, 0]).numpy()
    print(f"held-out AUC {roc_auc(scores, y[val]):.4f} (numpy forward), max |numpy - torch| {np.abs(scores - torch_scores).max():.2e}")
    golden_x = x[val][:64].astype(np.float32)
    with torch.no_grad():
        golden_y = torch.sigmoid(model(torch.from_numpy((golden_x.astype(np.float64) - mean) / std))).numpy()
    GOLDEN_PATH.parent.mkdir(parents=True, exist_ok=True)
    np.savez(GOLDEN_PATH, inputs=golden_x, torch_scores=golden_y)
    eff_s = (scores[y[val] == 1] >= 0.5).mean()
    eff_b = (scores[y[val] == 0] >= 0.5).mean()
    print(f"saved {WEIGHTS_PATH} ({WEIGHTS_PATH.stat().st_size} bytes) and {GOLDEN_PATH}; at score 0.5: tau efficiency {eff_s:.3f}, "
          f"background efficiency {eff_b:.4f}; {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
