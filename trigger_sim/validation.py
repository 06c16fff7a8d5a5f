"""Physics validation: how well the HLT sequence's algorithms do against the simulation's truth.

Pure bookkeeping over arrays (no I/O): per event, `EventTruthMatch` compares the sequence's
intermediate products (`hlt.sequence.EventObjects`) with the generator and detector truth;
`ValidationTally` adds events up and gives the figures `trigger-sim validate` reports.

Definitions (the usual ones of tracking and trigger studies):
- an edge is true if both its hits come from the same particle; edge efficiency is over the
  true edges of particles with pT > 1 GeV in the graph, purity over all selected edges;
- a particle is reconstructable if charged, from any vertex, with hits on at least
  `min_hits` distinct layers; a track matches a particle if at least `MATCH_PURITY` of the
  track's hits are the particle's and it holds at least half of the particle's hits
  ("double majority"); a track with less than `MATCH_PURITY` of its hits from one particle
  is a fake; a pure track holding under half of its particle's hits (a piece of a track
  split by a missing hit) is a fragment, counted apart; a particle matched by more than one
  track has duplicates;
- a jet is a tau jet if within ΔR < `JET_MATCH_DR` of a visible hadronic tau of pT > 15 GeV,
  a background jet if it matches no tau (electrons are background: a tau trigger must
  reject them);
- a chain's turn-on is its selection efficiency (before prescale) against a true quantity.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trigger_sim.kernels.helix_fit import TRACK_PT
from trigger_sim.physics import TRUTH_ELECTRON, TRUTH_JET, TRUTH_TAU

VALIDATION_SEED = 424242  # neither the farm's default run seed nor a training seed
# Process mix of the validation sample: enough of each process for every figure (the edge
# classifier's training and held-out events use it too).
VALIDATION_MIX = {"dijet_fraction": 0.25, "electron_fraction": 0.25, "signal_fraction": 0.25}
MATCH_PURITY = 0.75
JET_MATCH_DR = 0.2
TAU_MIN_VISIBLE_PT_GEV = 15.0
EDGE_MIN_PT_GEV = 1.0
TRACK_PT_BINS_GEV = (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 200.0)


def edge_counts(edges: np.ndarray, selected: np.ndarray, hit_particle: np.ndarray, particle_pt_gev: np.ndarray,
                min_pt_gev: float = EDGE_MIN_PT_GEV) -> dict[str, int]:
    """Counts for edge efficiency and purity: true edges of pT > min_pt particles (all, selected),
    selected edges, selected true edges (any pT)."""
    if len(edges) == 0:
        return {"true_hipt": 0, "selected_true_hipt": 0, "selected": 0, "selected_true": 0}
    pi, pj = hit_particle[edges[:, 0]], hit_particle[edges[:, 1]]
    true = (pi == pj) & (pi >= 0)
    hipt = np.zeros(len(edges), bool)
    hipt[true] = particle_pt_gev[pi[true]] > min_pt_gev
    return {"true_hipt": int(hipt.sum()), "selected_true_hipt": int((hipt & selected).sum()),
            "selected": int(selected.sum()), "selected_true": int((true & selected).sum())}


@dataclass(frozen=True)
class TrackMatch:
    reconstructable_pt_gev: np.ndarray  # pT of reconstructable particles
    found: np.ndarray  # bool per reconstructable particle
    n_tracks: int
    n_fake: int
    n_tracks_above_1gev: int  # tracks with fitted pT > 1 GeV
    n_fake_above_1gev: int
    n_duplicates: int  # matched tracks beyond the first per particle
    n_fragments: int  # pure tracks holding under half of their particle's hits
    pt_residuals: np.ndarray  # (fitted - true) / true, for matched tracks of pT > 1 GeV


def match_tracks(track_of_hit: np.ndarray, n_tracks: int, tracks: np.ndarray, hit_particle: np.ndarray, hit_layer: np.ndarray,
                 particle_pt_gev: np.ndarray, particle_charge: np.ndarray, min_hits: int) -> TrackMatch:
    """Double-majority matching of tracks to particles (see the module docstring)."""
    n_particles = len(particle_pt_gev)
    real = hit_particle >= 0
    # Distinct layers per particle (a particle has at most one hit per barrel layer).
    layers_hit = np.zeros(n_particles, np.int64)
    hits_of = np.zeros(n_particles, np.int64)
    if real.any():
        pairs = np.unique(np.stack([hit_particle[real], hit_layer[real]], axis=1), axis=0)
        layers_hit = np.bincount(pairs[:, 0], minlength=n_particles)
        hits_of = np.bincount(hit_particle[real], minlength=n_particles)
    reconstructable = (particle_charge != 0) & (layers_hit >= min_hits)
    found = np.zeros(n_particles, bool)
    matched_per_particle = np.zeros(n_particles, np.int64)
    fake = np.zeros(n_tracks, bool)
    fragments = 0
    residuals: list[float] = []
    on_track = track_of_hit >= 0
    # Vectorised: per track, the majority particle and its count.
    t_ids, p_ids = track_of_hit[on_track], hit_particle[on_track]
    track_size = np.bincount(t_ids, minlength=n_tracks)
    if len(t_ids):
        combos, counts = np.unique(np.stack([t_ids, p_ids], axis=1), axis=0, return_counts=True)
        # the majority per track: sort by (track, count desc, particle asc) and keep the first
        order = np.lexsort((combos[:, 1], -counts, combos[:, 0]))
        combos, counts = combos[order], counts[order]
        first = np.ones(len(combos), bool)
        first[1:] = combos[1:, 0] != combos[:-1, 0]
        major_track, major_particle, major_count = combos[first, 0], combos[first, 1], counts[first]
        majority = np.full(n_tracks, -1, np.int64)
        majority_count = np.zeros(n_tracks, np.int64)
        majority[major_track], majority_count[major_track] = major_particle, major_count
    else:
        majority = np.full(n_tracks, -1, np.int64)
        majority_count = np.zeros(n_tracks, np.int64)
    for t in range(n_tracks):
        p = majority[t]
        pure = track_size[t] > 0 and majority_count[t] >= MATCH_PURITY * track_size[t] and p >= 0
        if not pure:
            fake[t] = True
            continue
        if 2 * majority_count[t] < hits_of[p]:
            fragments += 1
        else:
            matched_per_particle[p] += 1
            found[p] = True
            if particle_pt_gev[p] > 1.0 and np.isfinite(tracks[t, TRACK_PT]):
                residuals.append((tracks[t, TRACK_PT] - particle_pt_gev[p]) / particle_pt_gev[p])
    fitted_pt = tracks[:, TRACK_PT] if n_tracks else np.empty(0)
    above = np.isfinite(fitted_pt) & (fitted_pt > 1.0)
    return TrackMatch(
        reconstructable_pt_gev=particle_pt_gev[reconstructable], found=found[reconstructable], n_tracks=n_tracks,
        n_fake=int(fake.sum()), n_tracks_above_1gev=int(above.sum()), n_fake_above_1gev=int((fake & above).sum()),
        n_duplicates=int(np.maximum(matched_per_particle - 1, 0).sum()), n_fragments=fragments, pt_residuals=np.asarray(residuals),
    )


def jet_labels(jets_eta: np.ndarray, jets_phi: np.ndarray, truth_kind: np.ndarray, truth_pt_gev: np.ndarray,
               truth_eta: np.ndarray, truth_phi: np.ndarray) -> np.ndarray:
    """Per jet: 1 tau jet, 0 background (QCD, pile-up, or an electron: a tau trigger must not
    take electrons for 1-prong taus), -1 not used (a soft tau)."""
    labels = np.zeros(len(jets_eta), np.int64)
    if len(jets_eta) == 0 or len(truth_kind) == 0:
        return labels
    deta = jets_eta[:, None] - truth_eta[None, :]
    dphi = np.angle(np.exp(1j * (jets_phi[:, None] - truth_phi[None, :])))
    near = deta**2 + dphi**2 < JET_MATCH_DR**2
    tau = (truth_kind == TRUTH_TAU)[None, :]
    hard_tau = tau & (truth_pt_gev > TAU_MIN_VISIBLE_PT_GEV)[None, :]
    labels[(near & tau & ~hard_tau).any(axis=1)] = -1
    labels[(near & hard_tau).any(axis=1)] = 1
    return labels


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (probability a random signal outranks a random background; ties half)."""
    scores, labels = np.asarray(scores, np.float64), np.asarray(labels)
    pos, neg = scores[labels == 1], scores[labels == 0]
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    allv = np.concatenate([pos, neg])
    order = np.argsort(allv, kind="mergesort")
    ranks = np.empty(len(allv))
    sorted_v = allv[order]
    # average ranks for ties
    _, first, counts = np.unique(sorted_v, return_index=True, return_counts=True)
    avg = first + (counts + 1) / 2.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def roc_curve(scores: np.ndarray, labels: np.ndarray, n_points: int = 101) -> tuple[np.ndarray, np.ndarray]:
    """(background efficiency, signal efficiency) at score cuts 0..1."""
    cuts = np.linspace(0.0, 1.0, n_points)
    pos, neg = scores[labels == 1], scores[labels == 0]
    sig = np.array([(pos >= c).mean() if len(pos) else np.nan for c in cuts])
    bkg = np.array([(neg >= c).mean() if len(neg) else np.nan for c in cuts])
    return bkg, sig


def true_quantity(selection: str, min_score: float, truth: Any, min_count: int = 1) -> float:
    """The truth a chain's turn-on is drawn against, by selection kind (NaN: not defined).

    Tagged-jet chains: the `min_count`-th hardest visible tau (0 with fewer taus)."""
    kind, pt = truth.truth_kind, truth.truth_pt_gev
    if selection == "jets" and min_score > 0:
        taus = np.sort(pt[kind == TRUTH_TAU])[::-1]
        return float(taus[min_count - 1]) if len(taus) >= min_count else 0.0
    if selection in ("jets", "em"):
        jets = pt[kind == TRUTH_JET]
        return float(jets.max()) if len(jets) else 0.0
    if selection == "ht":
        return float(pt[kind == TRUTH_JET].sum())
    if selection == "met":
        return float(truth.true_met_gev)
    if selection == "electron":
        e = pt[kind == TRUTH_ELECTRON]
        return float(e.max()) if len(e) else 0.0
    if selection == "tracks":
        p = truth.particles
        hard = (p.origin > 0) & (p.charge != 0)
        ranked = np.sort(p.pt_gev[hard])[::-1]
        return float(ranked[1]) if len(ranked) >= 2 else 0.0  # second-hardest charged particle
    return float("nan")


TRUE_QUANTITY_LABELS = {
    "tau": "visible tau pT [GeV] (sub-leading for two-tau chains)", "jets": "leading parton pT [GeV]", "em": "leading parton pT [GeV]",
    "ht": "parton HT [GeV]", "met": "true missing ET [GeV]", "electron": "electron pT [GeV]",
    "tracks": "second-hardest charged particle pT [GeV]",
}


@dataclass
class ValidationTally:
    """Sums over events; `figures()` gives the numbers `trigger-sim validate` reports."""

    edge: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    reco_pt: list[np.ndarray] = field(default_factory=list)
    reco_found: list[np.ndarray] = field(default_factory=list)
    tracks: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    pt_residuals: list[np.ndarray] = field(default_factory=list)
    jet_scores: list[np.ndarray] = field(default_factory=list)
    jet_labels: list[np.ndarray] = field(default_factory=list)
    turn_on: dict[str, list[tuple[float, bool]]] = field(default_factory=lambda: defaultdict(list))
    agreement: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    disagreeing_l1_ids: list[int] = field(default_factory=list)
    steps_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))

    def add_edges(self, counts: dict[str, int]) -> None:
        for k, v in counts.items():
            self.edge[k] += v

    def add_tracks(self, m: TrackMatch) -> None:
        self.reco_pt.append(m.reconstructable_pt_gev)
        self.reco_found.append(m.found)
        for key in ("n_tracks", "n_fake", "n_tracks_above_1gev", "n_fake_above_1gev", "n_duplicates", "n_fragments"):
            self.tracks[key] += getattr(m, key)
        self.pt_residuals.append(m.pt_residuals)

    def add_jets(self, scores: np.ndarray, labels: np.ndarray) -> None:
        use = labels >= 0
        self.jet_scores.append(np.asarray(scores, np.float64).reshape(-1)[use])
        self.jet_labels.append(labels[use])

    def add_agreement(self, l1_id: int, same: bool) -> None:
        self.agreement["events"] += 1
        self.agreement["identical"] += int(same)
        if not same and len(self.disagreeing_l1_ids) < 20:
            self.disagreeing_l1_ids.append(l1_id)

    def track_efficiency(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(bin edges, efficiency per bin, reconstructable particles per bin)."""
        pt = np.concatenate(self.reco_pt) if self.reco_pt else np.empty(0)
        found = np.concatenate(self.reco_found) if self.reco_found else np.empty(0, bool)
        edges = np.asarray(TRACK_PT_BINS_GEV)
        idx = np.digitize(pt, edges) - 1
        n = np.array([(idx == b).sum() for b in range(len(edges) - 1)])
        k = np.array([found[idx == b].sum() for b in range(len(edges) - 1)])
        with np.errstate(invalid="ignore", divide="ignore"):
            return edges, k / n, n

    def jets(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.jet_scores:
            return np.empty(0), np.empty(0, np.int64)
        return np.concatenate(self.jet_scores), np.concatenate(self.jet_labels)

    def figures(self) -> dict[str, Any]:
        e = self.edge
        pt = np.concatenate(self.reco_pt) if self.reco_pt else np.empty(0)
        found = np.concatenate(self.reco_found) if self.reco_found else np.empty(0, bool)
        above = pt > 1.0
        t = self.tracks
        res = np.concatenate(self.pt_residuals) if self.pt_residuals else np.empty(0)
        scores, labels = self.jets()
        bins, eff, n = self.track_efficiency()
        return {
            "edge_classifier": {
                "efficiency": _ratio(e["selected_true_hipt"], e["true_hipt"]),
                "purity": _ratio(e["selected_true"], e["selected"]),
                "true_edges_pt_above_1gev": e["true_hipt"], "selected_edges": e["selected"],
            },
            "tracking": {
                "efficiency_pt_above_1gev": _ratio(int(found[above].sum()), int(above.sum())),
                "reconstructable_pt_above_1gev": int(above.sum()),
                "fake_rate": _ratio(t["n_fake"], t["n_tracks"]),
                "fake_rate_pt_above_1gev": _ratio(t["n_fake_above_1gev"], t["n_tracks_above_1gev"]),
                "duplicate_rate": _ratio(t["n_duplicates"], t["n_tracks"]),
                "fragment_rate": _ratio(t["n_fragments"], t["n_tracks"]),
                "tracks": t["n_tracks"],
                # half the 16-84 % interval of (fitted - true) / true: robust to the few badly fitted tracks
                "pt_resolution": float(np.subtract(*np.percentile(res, [84, 16])) / 2) if len(res) else float("nan"),
                "efficiency_vs_pt": {"bin_edges_gev": bins.tolist(), "efficiency": _nan_none(eff), "particles": n.tolist()},
            },
            "jet_tagger": {"roc_auc": roc_auc(scores, labels), "tau_jets": int((labels == 1).sum()),
                           "background_jets": int((labels == 0).sum())},
            "triton_vs_fallback": {"events": self.agreement["events"], "identical_decisions": self.agreement["identical"],
                                   "disagreeing_l1_ids": self.disagreeing_l1_ids},
        }


def _ratio(k: int, n: int) -> float:
    return k / n if n else float("nan")


def _nan_none(values: np.ndarray) -> list[float | None]:
    return [None if not np.isfinite(v) else float(v) for v in values]


def turn_on_curve(points: list[tuple[float, bool]], bin_edges: np.ndarray) -> dict[str, list]:
    """Efficiency per bin of the true quantity, with a binomial error."""
    x = np.array([p[0] for p in points], np.float64)
    passed = np.array([p[1] for p in points], bool)
    idx = np.digitize(x, bin_edges) - 1
    eff, err, n = [], [], []
    for b in range(len(bin_edges) - 1):
        sel = idx == b
        k, m = int(passed[sel].sum()), int(sel.sum())
        n.append(m)
        eff.append(k / m if m else None)
        err.append(float(np.sqrt(max(k / m * (1 - k / m), 1.0 / m) / m)) if m else None)
    return {"bin_edges": bin_edges.tolist(), "efficiency": eff, "error": err, "events": n}
