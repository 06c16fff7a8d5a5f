"""Train the hit-graph edge classifier (interaction-network GNN) with PyTorch on the CPU.

Why: the workers and the Triton model score every hit-graph edge with the numpy forward of
`trigger_sim.models.edge_classifier`; track building keeps the edges above the working
point `[features] edge_score_cut`. This script produces the weights file, the working point
and a golden file for the tests, reproducibly.

What it does:
1. Simulates training events with its own run seed (never the farm's default run seed
   20261126, nor the validation seed 424242, nor the jet tagger's 31337) at pile-up 60, and
   held-out events with another seed at pile-up 20, 60 and 100, all with the process mix of
   `trigger-sim validate` (a hard process in 75% of the events: dense jet cores are where
   edges are hardest to classify, and where most pT > 1 GeV tracks are). Pile-up 60 alone:
   graphs at 100 have ~3x the edges of 60, so in a mix they take most of the training time;
   a trial on the 20/60/100 mix (900 steps) reached purity 0.73 at efficiency 0.95 at
   pile-up 60, against 0.97 for 1,920 steps at 60 alone, which also does well at 20.
   Graphs are built as the worker builds them: `build_hit_graph` with the [features] cuts,
   then `graph_features`. An edge is true if both hits come from the same particle.
2. Trains `EdgeClassifierNet`, a torch module mirroring the numpy forward layer by layer,
   with Adam (cosine-decayed learning rate) on binary cross-entropy weighted by
   (false edges / true edges), one event's graph per step, with fixed seeds and
   deterministic algorithms.
3. Exports float32 weights, reloads them with `load_weights` and checks that the numpy
   forward reproduces the torch scores on a held-out graph.
4. Chooses the working point on the held-out events at pile-up 60: the score cut with the
   best purity among those with efficiency >= --min-efficiency, 0.96 by default: a margin
   over the 0.95 target for fresh samples, affordable because purity is well above its 0.90
   target there (efficiency: selected true
   edges of pT > 1 GeV particles / true edges of pT > 1 GeV particles in the graph; purity:
   selected true edges of any pT / selected edges). Prints both at pile-up 20, 60 and 100.
5. Writes tests/data/edge_classifier_golden.npz: a small graph's inputs and the torch scores
   of the saved weights. The working point is printed; copy it to `edge_score_cut` in
   trigger_sim/config.py and configs/farm.toml.

Recorded run (defaults: 300 training events, 9 epochs, hidden 32, 3 steps, loss weights by
particle pT up to 10 GeV (`loss_weights`); torch 2.13.0 on the CPU with 1 thread, on a shared
2-core machine): events and graphs 7 s, training 389 s (mean loss 0.585 after epoch 1, 0.100
after epoch 9), 398 s in all; 30,660 parameters, a 129 kB weights file; numpy forward vs
torch: max |difference| 4.3e-06. Held-out events (seed 8675310, 50 per pile-up), pile-up
60, score cut: efficiency / purity
    0.5: 0.9828 / 0.8930   0.7: 0.9759 / 0.9381   0.8: 0.9688 / 0.9572
    0.9: 0.9547 / 0.9760   0.95: 0.9370 / 0.9867
working point edge_score_cut = 0.87 (efficiency >= 0.96):
    pile-up 20:  efficiency 0.9797, purity 0.9942; true edges of pT > 5 GeV particles 0.836
    pile-up 60:  efficiency 0.9604, purity 0.9705; true edges of pT > 5 GeV particles 0.785
    pile-up 100: efficiency 0.9272, purity 0.9131; true edges of pT > 5 GeV particles 0.716
Without the pT weights (all true edges equal, `--pt-weight-cap 1`) the same held-out events at
pile-up 60 gave efficiency 0.9636 and purity 0.9754 but only 0.64 for true edges of particles
of 5-20 GeV and 0.64 above 20 GeV (0.81 and 0.87 with them): the network hedged on the inner
edges of stiff tracks in dense jet cores.

Fine-tuning on recorded events (`--recording`, repeatable): graphs and labels from the records'
truth (`trigger_sim.models.edge_training_data`, the same labelling as above), starting from the
shipped weights (`--init`), written only where `--out` says; a record without truth is refused,
and so are held-out events that are also training events (the same hits).
The working point is chosen on `--held-out-recording` events (else the training ones) and the
edge figures before and after go to fine_tune.json beside the weights. See the README
("Fine-tuning the edge classifier on recordings") for putting the result in service.

Usage: python scripts/train_edge_classifier.py [--train-events N] [--epochs E] [--seed S]
       python scripts/train_edge_classifier.py --recording FILE [--recording FILE ...] [--held-out-recording FILE]
           [--init WEIGHTS|none] [--epochs N] --out DIR
Needs the `train` extra (torch); serving needs only numpy.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trigger_sim.config import FarmConfig, load_config, with_overrides  # noqa: E402
from trigger_sim.errors import TriggerSimError  # noqa: E402
from trigger_sim.event_source import config_for_recording  # noqa: E402
from trigger_sim.models.edge_classifier import (  # noqa: E402
    WEIGHTS_PATH,
    forward,
    load_weights,
)
from trigger_sim.models.edge_classifier_torch import (  # noqa: E402
    EdgeClassifierNet,
    export_weights,
    net_from_weights,
    torch_scores,
)
from trigger_sim.models.edge_training_data import MIN_PT_GEV, Graph, recording_graphs, simulated_graph  # noqa: E402
from trigger_sim.validation import VALIDATION_MIX, VALIDATION_SEED  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
GOLDEN_PATH = REPO_ROOT / "tests" / "data" / "edge_classifier_golden.npz"
TRAIN_SEED = 8_675_309
HELD_OUT_SEED = 8_675_310
RESERVED_SEEDS = (FarmConfig().run.seed, VALIDATION_SEED, 31_337)  # farm default, validation, jet tagger
TRAIN_PILEUPS = (60.0,)  # training event i uses TRAIN_PILEUPS[i % len(TRAIN_PILEUPS)]
HELD_OUT_PILEUPS = (20.0, 60.0, 100.0)
TARGET_PILEUP = 60.0
HIDDEN = 32
N_STEPS = 3
EPOCHS = 9
LR = 3e-3
FINE_TUNE_EPOCHS = 5
FINE_TUNE_LR = 1e-3


STIFF_PT_GEV = 5.0  # the held-out efficiency is also printed for true edges of particles above this


def loss_weights(g: Graph, cap_gev: float) -> np.ndarray:
    """Per-edge loss weights: a true edge weighs its particle's pT (GeV, within [1, cap]); a
    false edge weighs as much as the heaviest true edge it shares a hit with (at least 1).

    Why: stiff tracks are few but are what a trigger selects on; without this the network
    hedges on the inner edges of tracks in dense jet cores. Weighting the false edges around
    them as much keeps the balance there (otherwise it would just raise every score in jets)."""
    w_true = np.where(g.true, np.clip(g.pt_gev, 1.0, cap_gev), 0.0)
    per_hit = np.zeros(len(g.nodes))
    np.maximum.at(per_hit, g.edges[:, 0], w_true)
    np.maximum.at(per_hit, g.edges[:, 1], w_true)
    w_false = np.maximum(np.maximum(per_hit[g.edges[:, 0]], per_hit[g.edges[:, 1]]), 1.0)
    return np.where(g.true, w_true, w_false).astype(np.float32)


def make_graphs(seed: int, pileups: tuple[float, ...], n_events: int) -> list[tuple[float, Graph]]:
    """(pile-up, graph) of events 0..n-1 of run seed `seed`, pile-up cycling through `pileups`."""
    base = with_overrides(FarmConfig(), run={"seed": seed}, physics=VALIDATION_MIX)
    configs = [with_overrides(base, physics={"pileup_mean": mu}) for mu in pileups]
    return [(pileups[i % len(pileups)], simulated_graph(configs[i % len(pileups)], i)) for i in range(n_events)]


def standardisation(graphs: list[Graph]) -> tuple[np.ndarray, ...]:
    """Mean and std of node and edge features over the training graphs (float64 sums)."""
    nodes = np.concatenate([g.nodes for g in graphs]).astype(np.float64)
    edges = np.concatenate([g.edge_features for g in graphs]).astype(np.float64)
    return nodes.mean(0), nodes.std(0) + 1e-9, edges.mean(0), edges.std(0) + 1e-12


def to_tensors(g: Graph, cap_gev: float) -> tuple[torch.Tensor, ...]:
    return (torch.from_numpy(g.nodes), torch.from_numpy(g.edges.astype(np.int64)), torch.from_numpy(g.edge_features),
            torch.from_numpy(g.true.astype(np.float32)), torch.from_numpy(loss_weights(g, cap_gev)))


def train(net: EdgeClassifierNet, graphs: list[Graph], epochs: int, lr: float, rng: np.random.Generator, t0: float,
          pt_weight_cap_gev: float = 1.0) -> None:
    """Adam, one graph per step, cosine learning-rate decay, weighted BCE (`loss_weights`)."""
    n_true = sum(int(g.true.sum()) for g in graphs)
    n_edges = sum(len(g.edges) for g in graphs)
    pos_weight = torch.tensor((n_edges - n_true) / max(n_true, 1), dtype=torch.float32)
    optimizer = torch.optim.Adam(net.parameters(), lr=lr)
    total_steps = epochs * len(graphs)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: 0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps)))
    tensors = [to_tensors(g, pt_weight_cap_gev) for g in graphs if len(g.edges)]
    print(f"training on {len(tensors)} graphs, {n_edges} edges ({n_true / n_edges:.3f} true), pos_weight {pos_weight.item():.2f}")
    for epoch in range(1, epochs + 1):
        total = 0.0
        for k in rng.permutation(len(tensors)):
            nodes, edges, edge_features, target, weight = tensors[k]
            optimizer.zero_grad()
            loss_fn = torch.nn.BCEWithLogitsLoss(weight=weight, pos_weight=pos_weight)
            loss = loss_fn(net(nodes, edges, edge_features), target)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
            optimizer.step()
            schedule.step()
            total += loss.item()
        print(f"  epoch {epoch:3d}: mean loss {total / len(tensors):.4f}, lr {schedule.get_last_lr()[0]:.2e} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)


def counts_by_cut(scores: list[np.ndarray], graphs: list[Graph], cuts: np.ndarray) -> np.ndarray:
    """Per cut: [selected true pT>1, true pT>1, selected true, selected], summed over graphs (score > cut, as track building selects)."""
    out = np.zeros((len(cuts), 4), np.int64)
    for s, g in zip(scores, graphs):
        selected = s[None, :] > cuts[:, None]
        out[:, 0] += (selected & g.true_hipt).sum(1)
        out[:, 1] += int(g.true_hipt.sum())
        out[:, 2] += (selected & g.true).sum(1)
        out[:, 3] += selected.sum(1)
    return out


def efficiency_purity(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    eff = counts[:, 0] / np.maximum(counts[:, 1], 1)
    purity = counts[:, 2] / np.maximum(counts[:, 3], 1)
    return eff, purity


def choose_cut(scores: list[np.ndarray], graphs: list[Graph], min_efficiency: float) -> tuple[float, float, float]:
    """(cut, efficiency, purity): the best purity among cuts (steps of 0.005) with efficiency >= min_efficiency."""
    cuts = np.round(np.arange(0.005, 1.0, 0.005), 3)
    eff, purity = efficiency_purity(counts_by_cut(scores, graphs, cuts))
    ok = np.flatnonzero(eff >= min_efficiency)
    if len(ok) == 0:
        raise SystemExit(f"no score cut reaches efficiency {min_efficiency} (at cut {cuts[0]}: {eff[0]:.4f})")
    best = ok[np.argmax(purity[ok])]
    return float(cuts[best]), float(eff[best]), float(purity[best])


def write_golden(path: Path, weights_path: Path, seed: int) -> None:
    """A small graph (a pile-up 2 event) with the torch scores of the saved weights."""
    net = net_from_weights(load_weights(weights_path)).eval()
    g = simulated_graph(with_overrides(FarmConfig(), run={"seed": seed}, physics={"pileup_mean": 2.0}), 0)
    scores = torch_scores(net, g.nodes, g.edges, g.edge_features)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, node_features=g.nodes, edge_index=g.edges, edge_features=g.edge_features, scores=scores)
    print(f"golden file {path}: {len(g.nodes)} nodes, {len(g.edges)} edges, {path.stat().st_size} bytes")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train-events", type=int, default=300)
    parser.add_argument("--train-pileups", default=",".join(f"{mu:g}" for mu in TRAIN_PILEUPS),
                        help="pile-up means the training events cycle through")
    parser.add_argument("--hidden", type=int, default=HIDDEN)
    parser.add_argument("--steps", type=int, default=N_STEPS, help="message-passing steps")
    parser.add_argument("--held-out-events", type=int, default=50, help="per pile-up value")
    parser.add_argument("--epochs", type=int, help=f"passes over the training events [default: {EPOCHS} from simulation, "
                        f"{FINE_TUNE_EPOCHS} on recordings]")
    parser.add_argument("--pt-weight-cap", type=float, default=10.0,
                        help="true edges weigh their particle's pT in GeV up to this (1: all equal)")
    parser.add_argument("--lr", type=float, help=f"peak learning rate [default: {LR} from scratch, {FINE_TUNE_LR} from --init]")
    parser.add_argument("--seed", type=int, default=TRAIN_SEED, help="run seed of the training events; also seeds training")
    parser.add_argument("--held-out-seed", type=int, default=HELD_OUT_SEED)
    parser.add_argument("--min-efficiency", type=float, default=0.96,
                        help="working point: efficiency floor on held-out events (a margin over the 0.95 target)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (2 contend badly on a shared 2-core machine)")
    parser.add_argument("--out", type=Path, help="weights file (.npz) or folder for weights.npz [default: the shipped model "
                        f"{WEIGHTS_PATH.relative_to(REPO_ROOT)} from simulation; required with --recording]")
    parser.add_argument("--recording", type=Path, action="append", default=[],
                        help="fine-tune (or train) on the events of this recording, whose records must carry truth "
                             "(`trigger-sim record`, `trigger-sim import trackml` with truth); repeatable")
    parser.add_argument("--held-out-recording", type=Path, action="append", default=[],
                        help="with --recording: events to measure on and to choose the working point on; repeatable")
    parser.add_argument("--init", default=str(WEIGHTS_PATH),
                        help="with --recording: weights to start from [default: the shipped model, "
                             f"{WEIGHTS_PATH.relative_to(REPO_ROOT)}]; 'none': from scratch")
    parser.add_argument("--config", type=Path, help="with --recording: farm configuration (TOML) for the graph cuts and "
                        "the edge_score_cut quoted before and after")
    parser.add_argument("--golden", type=Path, default=GOLDEN_PATH)
    args = parser.parse_args()
    if args.held_out_recording and not args.recording:
        parser.error("--held-out-recording goes with --recording")
    try:
        if args.recording:
            if args.out is None:
                parser.error("--out is required with --recording (the shipped model is only replaced when named explicitly)")
            fine_tune(args)
        else:
            train_from_simulation(args)
    except TriggerSimError as err:
        raise SystemExit(f"train_edge_classifier: {err}") from err


def train_from_simulation(args: argparse.Namespace) -> None:
    """Train on simulated events, choose the working point on held-out ones, write the golden file."""
    args.out = weights_file(args.out or WEIGHTS_PATH)
    args.epochs = EPOCHS if args.epochs is None else args.epochs
    args.lr = LR if args.lr is None else args.lr
    for seed in (args.seed, args.held_out_seed):
        if seed in RESERVED_SEEDS:
            raise SystemExit(f"seed {seed} is reserved (farm default, validation, jet tagger): {RESERVED_SEEDS}")
    if args.seed == args.held_out_seed:
        raise SystemExit("--seed and --held-out-seed must differ")
    t0 = time.perf_counter()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(args.seed)

    train_pileups = tuple(float(mu) for mu in args.train_pileups.split(","))
    train_graphs = [g for _, g in make_graphs(args.seed, train_pileups, args.train_events)]
    held_out = make_graphs(args.held_out_seed, HELD_OUT_PILEUPS, args.held_out_events * len(HELD_OUT_PILEUPS))
    print(f"{len(train_graphs)} training and {len(held_out)} held-out graphs ({time.perf_counter() - t0:.0f} s)")

    net = EdgeClassifierNet(args.hidden, args.steps, *standardisation(train_graphs))
    train(net, train_graphs, args.epochs, args.lr, rng, t0, args.pt_weight_cap)
    train_s = time.perf_counter() - t0

    net.eval()
    weights = export_weights(net)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    weights.save(args.out)
    loaded = load_weights(args.out)
    print(f"saved {args.out}: hidden {loaded.hidden}, {loaded.n_steps} steps, {loaded.n_parameters} parameters, "
          f"{args.out.stat().st_size} bytes")

    scores_by_pileup: dict[float, tuple[list[np.ndarray], list[Graph]]] = {mu: ([], []) for mu in HELD_OUT_PILEUPS}
    worst = 0.0
    for k, (mu, g) in enumerate(held_out):
        s = forward(loaded, g.nodes, g.edges, g.edge_features)
        if k < len(HELD_OUT_PILEUPS):  # the first graph of each pile-up: numpy reproduces torch
            worst = max(worst, float(np.max(np.abs(s - torch_scores(net, g.nodes, g.edges, g.edge_features)), initial=0.0)))
        scores_by_pileup[mu][0].append(s)
        scores_by_pileup[mu][1].append(g)
    print(f"numpy forward vs torch on {len(HELD_OUT_PILEUPS)} held-out graphs: max |difference| {worst:.2e}")
    if worst > 1e-4:
        raise SystemExit("the numpy forward does not reproduce the torch module")

    cut, eff, purity = choose_cut(*scores_by_pileup[TARGET_PILEUP], args.min_efficiency)
    curve_cuts = np.array([0.5, 0.7, 0.8, 0.9, 0.95])
    curve = zip(curve_cuts, *efficiency_purity(counts_by_cut(*scores_by_pileup[TARGET_PILEUP], curve_cuts)))
    print(f"held-out pile-up {TARGET_PILEUP:g}, cut: efficiency / purity: " + ", ".join(f"{c:g}: {e:.4f} / {p:.4f}" for c, e, p in curve))
    print(f"working point (pile-up {TARGET_PILEUP:g}, efficiency >= {args.min_efficiency}): edge_score_cut = {cut}")
    for mu in HELD_OUT_PILEUPS:
        scores, graphs = scores_by_pileup[mu]
        e, p = efficiency_purity(counts_by_cut(scores, graphs, np.array([cut])))
        n_edges = sum(len(g.edges) for g in graphs)
        stiff = [g.pt_gev > STIFF_PT_GEV for g in graphs]
        n_stiff = sum(int(m.sum()) for m in stiff)
        kept_stiff = sum(int(((sc > cut) & m).sum()) for sc, m in zip(scores, stiff))
        print(f"  held-out pile-up {mu:g}: efficiency {e[0]:.4f}, purity {p[0]:.4f}, efficiency for pT > {STIFF_PT_GEV:g} GeV "
              f"{kept_stiff / max(n_stiff, 1):.4f} ({len(graphs)} events, {n_edges // max(len(graphs), 1)} edges per event)")
    write_golden(args.golden, args.out, args.held_out_seed)
    print(f"training {train_s:.0f} s, total {time.perf_counter() - t0:.0f} s")




def weights_file(out: Path) -> Path:
    """`out` itself if it names a .npz file, else the folder's weights.npz (as in model_repository/<model>/1/)."""
    return out if out.suffix == ".npz" else out / "weights.npz"


def edge_figures(weights, graphs: list[Graph], cut: float) -> dict[str, float]:
    """Edge efficiency (true edges of pT > 1 GeV particles kept) and purity of `weights` at `cut`."""
    scores = [forward(weights, g.nodes, g.edges, g.edge_features) for g in graphs]
    eff, purity = efficiency_purity(counts_by_cut(scores, graphs, np.array([cut])))
    return {"efficiency": float(eff[0]), "purity": float(purity[0])}


def graphs_of(paths: list[Path], base: FarmConfig) -> list[Graph]:
    """Labelled graphs of every record of these recordings, each with its own detector geometry."""
    graphs = []
    for path in paths:
        graphs += recording_graphs(path, config_for_recording(base, path))
    return graphs


def trained_on(train_graphs: list[Graph], held_out: list[Graph]) -> int:
    """How many held-out graphs are also training graphs (the same hits, whichever file they came from)."""
    seen = {hashlib.sha1(g.nodes.tobytes()).digest() for g in train_graphs}
    return sum(hashlib.sha1(g.nodes.tobytes()).digest() in seen for g in held_out)


def numpy_torch_difference(weights, net: EdgeClassifierNet, graphs: list[Graph]) -> float:
    """The largest |numpy forward - torch module| score on the graph of `graphs` with the most
    edges (an edge-less graph would compare nothing); no graph with an edge is an error."""
    probe = max(graphs, key=lambda g: len(g.edges))
    if not len(probe.edges):
        raise TriggerSimError("no graph has an edge: the numpy forward cannot be checked against the torch module")
    return float(np.max(np.abs(forward(weights, probe.nodes, probe.edges, probe.edge_features)
                               - torch_scores(net, probe.nodes, probe.edges, probe.edge_features))))


def fine_tune(args: argparse.Namespace) -> None:
    """Fine-tune the edge classifier (or train it from scratch with --init none) on recorded
    events with truth; write the weights where --out says; choose a working point."""
    t0 = time.perf_counter()
    out = weights_file(args.out)
    base = load_config(args.config)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    rng = np.random.default_rng(args.seed)
    train_graphs = graphs_of(args.recording, base)
    held_out = graphs_of(args.held_out_recording, base)
    print(f"{len(train_graphs)} training and {len(held_out)} held-out graphs from recordings ({time.perf_counter() - t0:.0f} s)")
    shared = trained_on(train_graphs, held_out)
    if shared:
        raise TriggerSimError(f"{shared} of the {len(held_out)} held-out events are also training events (the same hits): "
                              "held-out figures and the working point must come from events not trained on; give "
                              "--held-out-recording a recording of other events")
    if args.init.lower() == "none":
        init = None
        net = EdgeClassifierNet(args.hidden, args.steps, *standardisation(train_graphs))
    else:
        init = load_weights(args.init)  # the input standardisation stays the initial model's
        net = net_from_weights(init)
    epochs = FINE_TUNE_EPOCHS if args.epochs is None else args.epochs
    lr = (LR if init is None else FINE_TUNE_LR) if args.lr is None else args.lr
    train(net, train_graphs, epochs, lr, rng, t0, args.pt_weight_cap)
    net.eval()
    out.parent.mkdir(parents=True, exist_ok=True)
    export_weights(net).save(out)
    tuned = load_weights(out)
    worst = numpy_torch_difference(tuned, net, held_out or train_graphs)
    if worst > 1e-4:
        raise SystemExit(f"the numpy forward does not reproduce the torch module (max |difference| {worst:.2e})")
    print(f"saved {out}: hidden {tuned.hidden}, {tuned.n_steps} steps, {out.stat().st_size} bytes; numpy vs torch {worst:.1e}")

    measured_on, graphs = ("held-out", held_out) if held_out else ("training (no --held-out-recording)", train_graphs)
    cut, _, _ = choose_cut([forward(tuned, g.nodes, g.edges, g.edge_features) for g in graphs], graphs, args.min_efficiency)
    current = base.features.edge_score_cut
    report: dict = {"recordings": [str(p) for p in args.recording], "held_out": [str(p) for p in args.held_out_recording],
                    "init": args.init, "epochs": epochs, "lr": lr, "seed": args.seed, "weights": str(out),
                    "measured_on": measured_on, "edge_score_cut_now": current, "working_point": cut, "figures": {}}
    for name, weights in (("initial", init), ("fine_tuned", tuned)):
        if weights is None:
            continue
        report["figures"][name] = {f"cut {c:g}": edge_figures(weights, graphs, c) for c in sorted({current, cut})}
    print(f"edges of the {measured_on} events (efficiency: true edges of pT > {MIN_PT_GEV:g} GeV particles kept):")
    for name, by_cut in report["figures"].items():
        print(f"  {name:10s} " + "; ".join(f"{c}: efficiency {v['efficiency']:.4f}, purity {v['purity']:.4f}" for c, v in by_cut.items()))
    (out.parent / "fine_tune.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"working point (efficiency >= {args.min_efficiency} on the {measured_on} events): edge_score_cut = {cut}")
    print(f"to serve it: copy {out} to {WEIGHTS_PATH.relative_to(REPO_ROOT)} (Triton and the workers' fallback load that "
          f"file) and set [features] edge_score_cut = {cut} in the farm configuration; see the README")
    print(f"total {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
