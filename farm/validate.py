"""`trigger-sim validate`: the HLT algorithms against the simulation's truth, on fresh events.

Each event is simulated with its truth, sent through the readout format, and decided twice by
the full HLT sequence: once calling the models on a real Triton server, once with the local
fallback only. The Triton path's intermediate products (edge scores, tracks, jets, tagger
scores) are compared with the truth (`trigger_sim.validation`); the two decisions must be
identical. Figures go to PNG, numbers to JSON, a short summary to the terminal.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from farm.server_device import local_server
from trigger_sim.config import FarmConfig, with_overrides
from trigger_sim.errors import TriggerSimError
from trigger_sim.event import Fragment
from trigger_sim.inference.factory import build_inference, close_inference, prepare_inference
from trigger_sim.hlt.sequence import STEPS, EventObjects, HltSequence
from trigger_sim.kernels import warm_up
from trigger_sim.kernels.calo_jets import JET_ETA, JET_PHI
from trigger_sim.menu import Menu, load_menu, passes
from trigger_sim.partition import tracker_hit_order, unpack_tracker
from trigger_sim.record_truth import TRACKML, EventTruth, generated_truth, truth_from_record
from trigger_sim.recording import RecordReader
from trigger_sim.simulation import fragments_of, simulate
from trigger_sim.validation import (
    VALIDATION_MIX,
    VALIDATION_SEED,
    ValidationTally,
    edge_counts,
    jet_labels,
    match_tracks,
    true_quantity,
)
from trigger_sim.wire import encode_fragment

TARGETS = {
    "edge_efficiency": 0.95, "edge_purity": 0.95, "track_efficiency": 0.95, "track_efficiency_every_pt_bin": 0.95,
    "track_fake_rate": 0.01, "jet_tagger_auc": 0.90, "decision_agreement": 1.0,
}
EVERY_BIN_PT_GEV = (1.0, 200.0)  # track_efficiency_every_pt_bin: the lowest efficiency of the pT bins within these


@dataclass
class ValidationRun:
    config: FarmConfig
    menu: Menu
    events: int
    tally: ValidationTally = field(default_factory=ValidationTally)
    elapsed_s: float = 0.0
    triton: str = "none"
    recording: str | None = None  # the file validated, None for fresh simulated events
    recording_source: dict[str, Any] = field(default_factory=dict)  # its header's `source`
    # figure group -> why it was skipped -> events skipped for that reason
    skipped: dict[str, dict[str, int]] = field(default_factory=lambda: {"tracking": {}, "jets_and_turn_on": {}})
    truth_source: dict[str, int] = field(default_factory=dict)  # record_truth source -> events


@dataclass(frozen=True)
class SourceEvent:
    """One event to validate: its fragments and its truth (None, with the reason, when absent)."""

    l1_id: int
    fragments: list[Fragment]
    truth: EventTruth | None
    no_truth_reason: str = ""


def validation_config(base: FarmConfig, pileup: float, seed: int = VALIDATION_SEED) -> FarmConfig:
    """The farm's configuration with the validation seed, pile-up and process mix."""
    return with_overrides(base, run={"seed": seed}, physics={"pileup_mean": float(pileup), **VALIDATION_MIX})


def simulated_events(config: FarmConfig, events: int) -> Iterator[SourceEvent]:
    """Fresh events 0..events-1 of `config` with their truth."""
    for l1_id in range(events):
        sim = simulate(config, l1_id)
        yield SourceEvent(l1_id, fragments_of(config, sim, l1_id, 0), generated_truth(sim, tracker_hit_order(sim.hits, config.tracker)))


def recorded_events(reader: RecordReader, config: FarmConfig, events: int | None = None) -> Iterator[SourceEvent]:
    """The first `events` records of a recording (all when None) with the truth they carry."""
    for record in itertools.islice(reader, events):
        n_hits = len(unpack_tracker(record.fragments, config.tracker)[0])
        try:
            truth, why = truth_from_record(record.meta, n_hits)
        except TriggerSimError as err:
            raise TriggerSimError(f"{reader.path}: record of l1_id {record.l1_id}: {err}") from err
        yield SourceEvent(record.l1_id, record.fragments, truth, why)


def run_validation(config: FarmConfig, events: int, triton_url: str | None = None, use_triton: bool = True,
                   progress: Callable[[int, int], None] | None = None, recording: str | Path | None = None) -> ValidationRun:
    """Decide `events` events and compare them with their truth: fresh simulated events, or the
    first `events` records of `recording` (every record when `events` is 0). Starts a local
    Triton server unless one is given (or `use_triton` is False, when only the fallback path runs)."""
    warm_up()
    menu = load_menu(config.menu)
    if recording is not None:
        reader = RecordReader(recording)
        available = len(reader)
        events = min(events, available) if events else available
        source: Iterator[SourceEvent] = recorded_events(reader, config, events)
        run = ValidationRun(config, menu, events, recording=str(recording), recording_source=dict(reader.header.get("source") or {}))
    else:
        source = simulated_events(config, events)
        run = ValidationRun(config, menu, events)
    with contextlib.ExitStack() as stack:
        if use_triton and not triton_url:
            server = stack.enter_context(local_server(config))
            triton_url = server.grpc_url
        # Generous deadlines: validation measures the algorithms, not the server's latency.
        relaxed = with_overrides(config, inference={"timeout_ms": 10_000.0}, worker={"budget_ms": 60_000.0})
        fallback = HltSequence(relaxed, menu, build_inference(relaxed, None))
        served = None
        if use_triton:
            services = build_inference(relaxed, triton_url)
            stack.callback(close_inference, services)  # its shared-memory regions removed
            problem = prepare_inference(services)
            if problem:
                raise RuntimeError(f"Triton at {triton_url}: {problem}")
            served = HltSequence(relaxed, menu, services)
            run.triton = triton_url or "none"
        prepare_inference(fallback.inference)
        start = time.perf_counter()
        for done, event in enumerate(source, 1):
            _validate_event(run, served, fallback, event)
            if progress:
                progress(done, events)
        run.elapsed_s = time.perf_counter() - start
    return run


def _validate_event(run: ValidationRun, served: HltSequence | None, fallback: HltSequence, event: SourceEvent) -> None:
    config, tally, l1_id = run.config, run.tally, event.l1_id
    frames = [encode_fragment(f) for f in event.fragments]
    keep = EventObjects()
    primary = served or fallback
    result = primary.process(l1_id, frames, keep=keep)
    if served is not None:
        local = fallback.process(l1_id, frames)
        same = (result.outcome, result.chains, result.streams) == (local.outcome, local.chains, local.streams)
        tally.add_agreement(l1_id, same and result.inference_path != "fallback")
    for step, ms in result.steps_ms.items():
        tally.steps_ms[step].append(ms)
    if keep.trigger is None:  # the event did not complete the sequence (an error): nothing to compare
        tally.agreement["incomplete"] += 1
        return
    truth = event.truth
    if truth is None:
        for group in run.skipped.values():
            group[event.no_truth_reason] = group.get(event.no_truth_reason, 0) + 1
        return
    run.truth_source[truth.source] = run.truth_source.get(truth.source, 0) + 1
    hit_layer = unpack_tracker(event.fragments, config.tracker)[0]
    p = truth.particles
    f = config.features
    selected = keep.edge_scores > f.edge_score_cut
    tally.add_edges(edge_counts(keep.edges, selected, truth.hit_particle, p.pt_gev))
    n_tracks = len(keep.tracks)
    tally.add_tracks(match_tracks(keep.track_of_hit, n_tracks, keep.tracks, truth.hit_particle, hit_layer, p.pt_gev,
                                  p.charge, f.track_min_hits))
    t = truth.objects
    if t is None:
        why = NO_OBJECTS_REASON.get(truth.source, "the truth has no hard objects")
        run.skipped["jets_and_turn_on"][why] = run.skipped["jets_and_turn_on"].get(why, 0) + 1
        return
    jets = keep.jets
    labels = jet_labels(jets[:, JET_ETA], jets[:, JET_PHI], t.truth_kind, t.truth_pt_gev, t.truth_eta, t.truth_phi)
    tally.add_jets(keep.jet_scores, labels)
    for chain in run.menu.chains:
        x = true_quantity(chain.selection, chain.min_score, t, chain.min_count)
        if np.isfinite(x):
            tally.turn_on[chain.name].append((x, passes(chain, keep.trigger)))


NO_OBJECTS_REASON = {TRACKML: "TrackML events have no calorimeter and no truth jets, taus or electrons"}


def step_times(run: ValidationRun) -> dict[str, dict[str, float]]:
    """Median and p99 per step (ms) of the Triton path."""
    out = {}
    for step in (*STEPS, "worker_total"):
        values = run.tally.steps_ms.get(step)
        if values:
            out[step] = {"p50": float(np.median(values)), "p99": float(np.percentile(values, 99))}
    return out


def figures(run: ValidationRun) -> dict[str, Any]:
    """Every number of the validation, keyed as the JSON file is."""
    from trigger_sim.validation import turn_on_curve

    fig = run.tally.figures()
    fig["turn_on"] = {}
    for chain in run.menu.chains:
        points = run.tally.turn_on.get(chain.name, [])
        if not points:
            continue
        fig["turn_on"][chain.name] = {"selection": chain.selection, "n_points": len(points),
                                      "passed": sum(1 for _, ok in points if ok), **turn_on_curve(points, _turn_on_bins(chain))}
    agreement = fig["triton_vs_fallback"]
    fig["sample"] = _sample(run)
    fig["steps_ms"] = step_times(run)
    agreement["fraction"] = agreement["identical_decisions"] / agreement["events"] if agreement["events"] else None
    fig["skipped"] = {group: [{"reason": why, "events": n} for why, n in reasons.items()]
                      for group, reasons in run.skipped.items() if reasons}
    fig["targets"] = _targets(fig)
    return fig


def _sample(run: ValidationRun) -> dict[str, Any]:
    """What was validated: fresh events (seed, pile-up, mix) or a recording (its header's source)."""
    common = {"events": run.events, "triton": run.triton, "elapsed_s": run.elapsed_s,
              "incomplete_events": run.tally.agreement.get("incomplete", 0)}
    if run.recording is None:
        return {**common, "pileup_mean": run.config.physics.pileup_mean, "seed": run.config.run.seed, "process_mix": VALIDATION_MIX}
    src = run.recording_source
    return {**common, "recording": run.recording, "source": src, "pileup_mean": src.get("pileup_mean"), "seed": src.get("seed"),
            "truth": run.truth_source,
            "reconstructable": TRACKML_RECONSTRUCTABLE if TRACKML in run.truth_source else RECONSTRUCTABLE}


RECONSTRUCTABLE = "charged particles with hits on at least track_min_hits distinct tracker layers"
TRACKML_RECONSTRUCTABLE = ("charged particles with hits on at least track_min_hits distinct layers of this detector's barrel "
                           "(TrackML's endcap hits are dropped at import: particles seen only there are not counted)")


def _turn_on_bins(chain) -> np.ndarray:
    if chain.selection == "ht":
        top = max(2.0 * chain.min_ht_gev, 100.0)
    else:
        top = max(3.0 * chain.min_pt_gev, 30.0)
    return np.linspace(0.0, top, 25)


def _targets(fig: dict[str, Any]) -> dict[str, dict[str, Any]]:
    def check(value, target, higher=True):
        ok = value is not None and np.isfinite(value) and (value >= target if higher else value <= target)
        return {"value": value, "target": target, "met": bool(ok)}

    agreement = fig["triton_vs_fallback"]
    frac = agreement.get("fraction")
    tracking_skipped = fig["tracking"]["reconstructable_pt_above_1gev"] == 0 and "tracking" in fig["skipped"]
    jets_skipped = fig["jet_tagger"]["tau_jets"] + fig["jet_tagger"]["background_jets"] == 0 and "jets_and_turn_on" in fig["skipped"]
    out = {
        "edge_efficiency": check(fig["edge_classifier"]["efficiency"], TARGETS["edge_efficiency"]),
        "edge_purity": check(fig["edge_classifier"]["purity"], TARGETS["edge_purity"]),
        "track_efficiency": check(fig["tracking"]["efficiency_pt_above_1gev"], TARGETS["track_efficiency"]),
        "track_efficiency_every_pt_bin": check(lowest_bin_efficiency(fig["tracking"]["efficiency_vs_pt"]),
                                               TARGETS["track_efficiency_every_pt_bin"]),
        "track_fake_rate": check(fig["tracking"]["fake_rate"], TARGETS["track_fake_rate"], higher=False),
        "jet_tagger_auc": check(fig["jet_tagger"]["roc_auc"], TARGETS["jet_tagger_auc"]),
        "decision_agreement": check(frac, TARGETS["decision_agreement"]) if frac is not None else
        {"value": None, "target": 1.0, "met": False},
    }
    for key in ("edge_efficiency", "edge_purity", "track_efficiency", "track_efficiency_every_pt_bin", "track_fake_rate") if tracking_skipped else ():
        out[key] = {"value": None, "target": TARGETS[key], "met": None, "skipped": True}
    if jets_skipped:
        out["jet_tagger_auc"] = {"value": None, "target": TARGETS["jet_tagger_auc"], "met": None, "skipped": True}
    return out


def lowest_bin_efficiency(by_pt: dict[str, list]) -> float | None:
    """The lowest track-finding efficiency of the pT bins within EVERY_BIN_PT_GEV that hold particles."""
    low, high = EVERY_BIN_PT_GEV
    edges = by_pt["bin_edges_gev"]
    values = [eff for lo, hi, eff, n in zip(edges[:-1], edges[1:], by_pt["efficiency"], by_pt["particles"])
              if lo >= low and hi <= high and n and eff is not None]
    return min(values) if values else None


def write_plots(run: ValidationRun, fig: dict[str, Any], out_dir: Path) -> list[Path]:
    """PNG figures: track efficiency vs pT, jet-tagger ROC, turn-on per chain (each one only
    when the sample's truth gives it)."""
    import matplotlib

    matplotlib.use("Agg")

    out_dir.mkdir(parents=True, exist_ok=True)
    label = sample_label(fig["sample"])
    paths = []
    if fig["tracking"]["reconstructable_pt_above_1gev"] or fig["tracking"]["tracks"]:
        paths.append(_plot_tracking(fig, label, out_dir))
    scores, labels = run.tally.jets()
    if len(scores):
        paths.append(_plot_roc(fig, scores, labels, label, out_dir))
    if fig["turn_on"]:
        paths.append(_plot_turn_on(run, fig, label, out_dir))
    return paths


def _plot_tracking(fig: dict[str, Any], label: str, out_dir: Path) -> Path:
    import matplotlib.pyplot as plt

    eff = fig["tracking"]["efficiency_vs_pt"]
    edges = np.array(eff["bin_edges_gev"])
    centers = np.sqrt(edges[1:] * edges[:-1])
    values = np.array([np.nan if v is None else v for v in eff["efficiency"]])
    figure, ax = plt.subplots(figsize=(6, 4))
    ax.errorbar(centers, values, xerr=[centers - edges[:-1], edges[1:] - centers], fmt="o")
    ax.axhline(TARGETS["track_efficiency"], color="grey", ls="--", lw=1, label="target (every bin of 1-200 GeV)")
    ax.set_xscale("log")
    ax.set_ylim(0, 1.05)
    ax.set_xlabel("particle pT [GeV]")
    ax.set_ylabel("track-finding efficiency")
    t = fig["tracking"]
    ax.set_title(f"GNN tracking: eff(pT>1) {t['efficiency_pt_above_1gev']:.3f}, fake rate {t['fake_rate']:.3f}\n{label}", fontsize=9)
    ax.legend(fontsize=8)
    return _save(figure, out_dir / "tracking_efficiency.png")


def _plot_roc(fig: dict[str, Any], scores: np.ndarray, labels: np.ndarray, label: str, out_dir: Path) -> Path:
    import matplotlib.pyplot as plt

    from trigger_sim.validation import roc_curve

    figure, ax = plt.subplots(figsize=(5, 5))
    bkg, sig = roc_curve(scores, labels, n_points=1001)
    ax.plot(np.maximum(bkg, 1e-5), sig, label=f"jet tagger, AUC {fig['jet_tagger']['roc_auc']:.4f}")
    grid = np.logspace(-5, 0, 100)
    ax.plot(grid, grid, color="grey", ls=":", lw=1, label="random")
    ax.set_xscale("log")
    ax.set_xlim(1e-4, 1.0)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("background efficiency (QCD, pile-up and electron jets; log scale)")
    ax.set_ylabel("tau-jet efficiency")
    ax.set_title(f"Jet tagger ROC ({fig['jet_tagger']['tau_jets']} tau, {fig['jet_tagger']['background_jets']} background jets)\n{label}",
                 fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    return _save(figure, out_dir / "jet_tagger_roc.png")


def _plot_turn_on(run: ValidationRun, fig: dict[str, Any], label: str, out_dir: Path) -> Path:
    import matplotlib.pyplot as plt

    from trigger_sim.validation import TRUE_QUANTITY_LABELS

    chains = list(fig["turn_on"].items())
    cols = 3
    rows = (len(chains) + cols - 1) // cols
    figure, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.2 * rows), squeeze=False)
    for ax, (name, curve) in zip(axes.flat, chains):
        edges = np.array(curve["bin_edges"])
        centers = 0.5 * (edges[1:] + edges[:-1])
        e = np.array([np.nan if v is None else v for v in curve["efficiency"]])
        err = np.array([np.nan if v is None else v for v in curve["error"]])
        ax.errorbar(centers, e, yerr=err, fmt="o", ms=3)
        ax.set_ylim(0, 1.05)
        chain = next(c for c in run.menu.chains if c.name == name)
        key = "tau" if chain.selection == "jets" and chain.min_score > 0 else chain.selection
        ax.set_xlabel(TRUE_QUANTITY_LABELS.get(key, "true quantity"), fontsize=8)
        ax.set_ylabel("efficiency (before prescale)", fontsize=8)
        ax.set_title(name, fontsize=9)
    for ax in list(axes.flat)[len(chains):]:
        ax.axis("off")
    figure.suptitle(f"Trigger turn-on curves, {label}", fontsize=10)
    return _save(figure, out_dir / "turn_on.png")


def _save(figure, path: Path) -> Path:
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    import matplotlib.pyplot as plt

    plt.close(figure)
    return path


SKIPPED_FIGURES = {"tracking": "the edge, tracking, jet and turn-on figures", "jets_and_turn_on": "the jet-tagger and turn-on figures"}


def sample_label(sample: dict[str, Any]) -> str:
    """One line naming the sample: fresh events (pile-up, seed) or the recording."""
    if "recording" not in sample:
        return f"{sample['events']} events at pile-up {sample['pileup_mean']:g} (seed {sample['seed']})"
    kind = sample["source"].get("kind", "unknown source")
    pileup = f", pile-up {sample['pileup_mean']:g}" if sample.get("pileup_mean") is not None else ""
    return f"{sample['events']} events of {Path(sample['recording']).name} ({kind}{pileup})"


def summary_lines(fig: dict[str, Any]) -> list[str]:
    """A short text summary: each target with its value, and the sample."""
    lines = [f"{sample_label(fig['sample'])}, {fig['sample']['elapsed_s']:.0f} s, Triton: {fig['sample']['triton']}"]
    if "reconstructable" in fig["sample"]:
        lines.append(f"  tracking efficiency counts {fig['sample']['reconstructable']}")
    names = {
        "edge_efficiency": "edge classifier efficiency (true edges, pT > 1 GeV)",
        "edge_purity": "edge classifier purity",
        "track_efficiency": "track-finding efficiency (pT > 1 GeV)",
        "track_efficiency_every_pt_bin": "track-finding efficiency, lowest pT bin of 1-200 GeV",
        "track_fake_rate": "track fake rate",
        "jet_tagger_auc": "jet tagger ROC AUC (tau vs QCD/pile-up jets)",
        "decision_agreement": "Triton and fallback: identical decisions",
    }
    for key, target in fig["targets"].items():
        value = target["value"]
        shown = "n/a" if value is None else f"{value:.4f}"
        cmp = ">=" if key != "track_fake_rate" else "<="
        mark = "skip" if target.get("skipped") else "ok  " if target["met"] else "MISS"
        lines.append(f"  {mark} {names[key]}: {shown} (target {cmp} {target['target']:g})")
    for group, reasons in fig.get("skipped", {}).items():
        what = SKIPPED_FIGURES[group]
        for r in reasons:
            lines.append(f"  skipped {what} on {r['events']} of {fig['sample']['events']} events: {r['reason']}")
    for name, curve in fig["turn_on"].items():
        lines.append(f"  {name}: passes {curve['passed']} of {curve['n_points']} events before prescale "
                     f"(turn-on in turn_on.png; bins beyond {curve['bin_edges'][-1]:g} not drawn)")
    return lines
