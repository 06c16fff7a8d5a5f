"""The per-event HLT sequence: decode, unpack, features, inference, menu; each step timed.

Plain code without sockets: the worker process hands it the frames of one built event and
sends on the result. Every event leaves with an outcome: accepted (into one or more
streams), rejected, or a debug stream (HltError for an algorithm or data error, HltTimeout
for an event over its hard budget: force-accepted with its partial result, as ATLAS does).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trigger_sim import clock
from trigger_sim.config import FarmConfig
from trigger_sim.detector import tower_centers
from trigger_sim.errors import TriggerSimError
from trigger_sim.features import count_in_cones, jet_phi_eta, jet_tagger_inputs, seed_directions
from trigger_sim.inference.service import InferenceService
from trigger_sim.kernels import build_hit_graph, find_jets
from trigger_sim.menu import Menu, decide, missing_et_gev
from trigger_sim.partition import unpack_calo, unpack_tracker
from trigger_sim.wire import WireLimits, decode_fragment

ACCEPTED = "accepted"
REJECTED = "rejected"
DEBUG = "debug"
SOFT_FRACTION = 0.8  # soft timeout as a fraction of the hard budget (ATLAS HLT convention)
STEPS = ("decode", "unpack", "calo_jets", "hit_graph", "features", "inference", "menu")


@dataclass
class EventResult:
    """What became of one event, with the time of each step (ms)."""

    l1_id: int
    outcome: str  # ACCEPTED, REJECTED or DEBUG
    streams: tuple[str, ...] = ()
    chains: tuple[str, ...] = ()
    reason: str = ""
    steps_ms: dict[str, float] = field(default_factory=dict)
    inference_path: str = ""
    inference_reason: str = ""
    n_jets: int = 0
    n_hits: int = 0
    n_edges: int = 0

    def to_message(self) -> dict[str, Any]:
        return {
            "l1_id": self.l1_id, "outcome": self.outcome, "streams": list(self.streams), "chains": list(self.chains),
            "reason": self.reason, "steps_ms": self.steps_ms, "inference_path": self.inference_path,
            "inference_reason": self.inference_reason, "n_jets": self.n_jets, "n_hits": self.n_hits, "n_edges": self.n_edges,
        }


class HltSequence:
    """Everything a worker needs to decide events, built once at start-up."""

    def __init__(self, config: FarmConfig, menu: Menu, inference: InferenceService, now_ns: Callable[[], int] = clock.now_ns, limits: WireLimits | None = None):
        self.config = config
        self.menu = menu
        self.inference = inference
        self.now_ns = now_ns
        self.limits = limits or WireLimits()
        self.eta_centers, self.phi_centers = tower_centers(config.calo)
        self.budget_ns = int(config.worker.budget_ms * clock.NS_PER_MS)

    def process(self, l1_id: int, fragment_frames: Sequence[Sequence[Any]], stop_requested: Callable[[], bool] = lambda: False,
                start_ns: int | None = None) -> EventResult:
        """Decide one event. Never raises for bad data: errors become the HltError stream.

        The soft timeout (0.8 x budget) is checked after every step, as is `stop_requested`
        (the watchdog's soft timeout); over it, the event leaves with its partial result
        into HltTimeout. Inference deadlines end at the soft timeout.
        """
        start = self.now_ns() if start_ns is None else start_ns
        soft_deadline = start + int(self.budget_ns * SOFT_FRACTION)
        result = EventResult(l1_id, DEBUG)
        last = [start]

        def step(name: str) -> None:
            now = self.now_ns()
            result.steps_ms[name] = clock.ns_to_ms(now - last[0])
            last[0] = now
            if now > soft_deadline or stop_requested():
                raise _OverBudget(name)

        try:
            fragments = [decode_fragment(frames, self.limits) for frames in fragment_frames]
            for frag in fragments:
                if frag.header.l1_id != l1_id:
                    raise TriggerSimError(f"fragment of source 0x{frag.header.source_id:x} has L1 id {frag.header.l1_id}, event is {l1_id}")
            step("decode")
            layer, r, phi, z = unpack_tracker(fragments, self.config.tracker)
            em, had = unpack_calo(fragments, self.config.calo)
            result.n_hits = len(layer)
            step("unpack")
            f = self.config.features
            jets = find_jets(em, had, self.eta_centers, self.phi_centers, f.jet_seed_gev, f.jet_radius, f.jet_min_pt_gev, f.max_jets)
            result.n_jets = len(jets)
            step("calo_jets")
            edges, n_total = build_hit_graph(layer, r, phi, z, len(self.config.tracker.layer_radii_mm), f.graph_phi_slope_max, f.graph_z0_max_mm, f.graph_max_edges)
            result.n_edges = int(n_total)
            step("hit_graph")
            seed_eta, seed_phi = seed_directions(layer, r, phi, z, edges)
            jet_eta, jet_phi = jet_phi_eta(jets)
            inputs = jet_tagger_inputs(jets, count_in_cones(jet_eta, jet_phi, seed_eta, seed_phi, f.jet_radius))
            step("features")
            outcome = self.inference.infer(inputs, soft_deadline)
            result.inference_path, result.inference_reason = outcome.path, outcome.reason
            step("inference")
            met_gev = missing_et_gev(em, had, self.eta_centers, self.phi_centers) if self.menu.uses_met else None
            decision = decide(self.menu, l1_id, jets, outcome.scores, met_gev)
            step("menu")
        except _OverBudget as over:
            result.streams, result.reason = ("HltTimeout",), f"soft timeout ({SOFT_FRACTION:g} x the {self.config.worker.budget_ms:g} ms budget) after step {over.args[0]}"
            return self._finish(result, start)
        except Exception as err:  # an algorithm error must not lose the event
            result.streams, result.reason = ("HltError",), f"{type(err).__name__}: {err}"
            return self._finish(result, start)
        result.chains, result.streams = decision.chains, decision.streams
        result.outcome = ACCEPTED if decision.accepted else REJECTED
        return self._finish(result, start)

    def error_result(self, l1_id: int, reason: str, stream: str = "HltError") -> EventResult:
        """An event decided without running the sequence: a debug stream with a reason."""
        return EventResult(l1_id, DEBUG, streams=(stream,), reason=reason)

    def _finish(self, result: EventResult, start: int) -> EventResult:
        result.steps_ms["worker_total"] = clock.ns_to_ms(self.now_ns() - start)
        return result


class _OverBudget(Exception):
    pass
