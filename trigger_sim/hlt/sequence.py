"""The per-event HLT sequence: decode, unpack, features, inference, menu; each step timed.

Plain code without sockets: the worker process hands it the frames of one built event and
sends on the result. The sequence is one generator (`HltSequence.run`) that can be set aside
at its inference points: run asynchronously it yields each call in flight (a `PendingCall`)
and is resumed when the answer is in, so a worker with several event slots
(`trigger_sim.hlt.slots`) works on another event meanwhile; `process` drives the same
generator with blocking calls, so both paths decide alike.

Step times are the event's own: `steps_ms[<step>]` is the time the worker spent on this event
in the step; the time it was set aside is recorded apart, as `<model>_wait` (its request on
the server, from sending to the answer) and `slot_wait` (the answer in, or the event just
admitted, while the worker finished another event's step). Run blocking, nothing is set
aside: a model's step includes its call, as it always did, and no wait is recorded. Every event leaves with an outcome: accepted (into one or more
streams), rejected, or a debug stream (HltError for an algorithm or data error, HltTimeout
for an event over its hard budget: force-accepted with its partial result, as ATLAS does).
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from trigger_sim import clock
from trigger_sim.accounting import ACCEPTED, DEBUG, REJECTED
from trigger_sim.config import FarmConfig
from trigger_sim.detector import tower_centers
from trigger_sim.errors import TriggerSimError
from trigger_sim.features import (
    good_tracks,
    jet_tagger_inputs,
    jet_track_features,
    matched_track_pt,
    primary_vertex_z_mm,
    vertex_tracks,
)
from trigger_sim.hlt.watchdog import SOFT_FRACTION, soft_deadline_ns
from trigger_sim.inference.service import EXPIRED, FALLBACK, SKIPPED, TRITON, InferenceService, PendingCall
from trigger_sim.kernels import (
    Rescue,
    Walk,
    build_hit_graph,
    build_tracks,
    edge_slopes,
    find_em_clusters,
    find_jets,
    fit_helices,
    graph_features,
    walk_tracks,
)
from trigger_sim.menu import Menu, TriggerObjects, decide, missing_et_gev
from trigger_sim.models import edge_classifier
from trigger_sim.models.registry import EDGE_CLASSIFIER, JET_TAGGER
from trigger_sim.partition import unpack_calo, unpack_tracker
from trigger_sim.pileup import menu_jets
from trigger_sim.wire import WireLimits, decode_fragment

STEPS = ("decode", "unpack", "calo", "graph", EDGE_CLASSIFIER, "tracks", "jet_features", JET_TAGGER, "menu")
WAIT_SUFFIX = "_wait"
SLOT_WAIT = "slot_wait"
# time set aside (run asynchronously): each model's request on the server, then waiting for the worker
WAITS = (EDGE_CLASSIFIER + WAIT_SUFFIX, JET_TAGGER + WAIT_SUFFIX, SLOT_WAIT)
EventRun = Generator[PendingCall, None, "EventResult"]


@dataclass
class EventResult:
    """What became of one event, with the time of each step (ms)."""

    l1_id: int
    outcome: str  # ACCEPTED, REJECTED or DEBUG (trigger_sim.accounting)
    streams: tuple[str, ...] = ()
    chains: tuple[str, ...] = ()
    reason: str = ""
    steps_ms: dict[str, float] = field(default_factory=dict)
    # the event's path: fallback if any model fell back, else expired if a model's answer came too
    # late (the event then left into HltTimeout), else triton, else skipped
    inference_path: str = ""
    inference_reason: str = ""  # the first fallback's reason
    inference: dict[str, str] = field(default_factory=dict)  # model -> path
    n_jets: int = 0
    n_hits: int = 0
    n_edges: int = 0
    n_tracks: int = 0
    n_clusters: int = 0

    def to_message(self) -> dict[str, Any]:
        return {
            "l1_id": self.l1_id, "outcome": self.outcome, "streams": list(self.streams), "chains": list(self.chains),
            "reason": self.reason, "steps_ms": self.steps_ms, "inference_path": self.inference_path,
            "inference_reason": self.inference_reason, "inference": self.inference, "n_jets": self.n_jets,
            "n_hits": self.n_hits, "n_edges": self.n_edges, "n_tracks": self.n_tracks, "n_clusters": self.n_clusters,
        }

    def record_inference(self, model: str, path: str, reason: str) -> None:
        self.inference[model] = path
        if path == FALLBACK:
            if self.inference_path != FALLBACK:
                self.inference_reason = reason
            self.inference_path = FALLBACK
        elif path == EXPIRED and self.inference_path != FALLBACK:
            self.inference_path = EXPIRED
        elif path == TRITON and self.inference_path not in (FALLBACK, EXPIRED):
            self.inference_path = TRITON
        elif not self.inference_path:
            self.inference_path = SKIPPED


@dataclass
class EventObjects:
    """Intermediate products of one event, kept for validation (not sent anywhere)."""

    edges: np.ndarray | None = None
    edge_scores: np.ndarray | None = None
    track_of_hit: np.ndarray | None = None
    tracks: np.ndarray | None = None
    jets: np.ndarray | None = None
    jet_inputs: np.ndarray | None = None
    jet_scores: np.ndarray | None = None
    clusters: np.ndarray | None = None
    trigger: TriggerObjects | None = None


class HltSequence:
    """Everything a worker needs to decide events, built once at start-up.

    `inference` maps each model (`registry.MODEL_NAMES`) to its service: the Triton client
    with its deadline and breaker, and the in-process fallback.
    """

    def __init__(self, config: FarmConfig, menu: Menu, inference: Mapping[str, InferenceService],
                 now_ns: Callable[[], int] = clock.now_ns, limits: WireLimits | None = None):
        self.config = config
        self.menu = menu
        self.inference = dict(inference)
        self.now_ns = now_ns
        self.limits = limits or WireLimits()
        self.eta_centers, self.phi_centers = tower_centers(config.calo)
        self.budget_ns = int(config.worker.budget_ms * clock.NS_PER_MS)

    def process(self, l1_id: int, fragment_frames: Sequence[Sequence[Any]], stop_requested: Callable[[], bool] = lambda: False,
                start_ns: int | None = None, keep: EventObjects | None = None) -> EventResult:
        """Decide one event, blocking on each inference call (see `run`)."""
        return drive(self.run(l1_id, fragment_frames, stop_requested, start_ns, keep))

    def run(self, l1_id: int, fragment_frames: Sequence[Sequence[Any]], stop_requested: Callable[[], bool] = lambda: False,
            start_ns: int | None = None, keep: EventObjects | None = None, asynchronous: bool = False) -> EventRun:
        """Decide one event; a generator returning its EventResult. Never raises for bad data:
        errors become the HltError stream.

        With `asynchronous`, each request sent to the server is yielded (a `PendingCall`):
        resume the generator once it is `done()`. Otherwise calls block and nothing is yielded.
        The soft timeout (0.8 x budget) is checked after every step, as is `stop_requested`
        (the watchdog's soft timeout); over it, the event leaves with its partial result
        into HltTimeout. Inference deadlines end at the soft timeout; a model left without an
        answer at it sends the event there too (no fallback is run for an event that is over).
        `keep`, if given, receives the intermediate products (for validation).
        """
        start = self.now_ns() if start_ns is None else start_ns
        soft_deadline = soft_deadline_ns(start, self.budget_ns)
        result = EventResult(l1_id, DEBUG)
        keep = keep if keep is not None else EventObjects()
        times = StepClock(self.now_ns, start, result.steps_ms)
        if asynchronous:
            times.set_aside(SLOT_WAIT, self.now_ns() - start)  # admitted while the worker ran another event

        def step(name: str, expired: bool = False) -> None:
            now = times.lap(name)
            if expired or now > soft_deadline or stop_requested():
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
            keep.jets = jets = find_jets(em, had, self.eta_centers, self.phi_centers, f.jet_seed_gev, f.jet_radius, f.jet_min_pt_gev, f.max_jets)
            keep.clusters = clusters = find_em_clusters(em, had, self.eta_centers, self.phi_centers, f.em_seed_gev, f.max_clusters)
            result.n_jets, result.n_clusters = len(jets), len(clusters)
            step("calo")
            keep.edges, n_total = build_hit_graph(layer, r, phi, z, len(self.config.tracker.layer_radii_mm), f.graph_phi_slope_max,
                                                  f.graph_z0_max_mm, f.graph_max_edges)
            result.n_edges = int(n_total)
            nodes, edge_features = graph_features(r, phi, z, keep.edges)
            step("graph")
            scored = yield from self._infer(EDGE_CLASSIFIER, edge_classifier.model_inputs(nodes, keep.edges, edge_features), soft_deadline,
                                            result, times, asynchronous)
            step(EDGE_CLASSIFIER, expired=scored is None)
            keep.edge_scores = np.asarray(scored, np.float32).reshape(-1)
            keep.track_of_hit, n_tracks = self._build_tracks(layer, r, phi, z, keep.edges, keep.edge_scores)
            keep.tracks = tracks = fit_helices(keep.track_of_hit, n_tracks, r, phi, z, self.config.tracker.field_t)
            result.n_tracks = n_tracks
            step("tracks")
            good = good_tracks(tracks, f.track_max_chi2_ndf, f.track_max_d0_mm)
            vertex_z = primary_vertex_z_mm(good, f.vertex_track_min_pt_gev)
            from_vertex = vertex_tracks(good, vertex_z, f.vertex_max_dz_mm, f.vertex_track_min_pt_gev)
            field_t = self.config.tracker.field_t
            keep.jet_inputs = inputs = jet_tagger_inputs(jets, jet_track_features(jets, from_vertex, field_t, f.jet_radius))
            electron_track_pt = matched_track_pt(clusters, from_vertex, field_t, f.electron_match_deta, f.electron_match_dphi)
            step("jet_features")
            keep.jet_scores = scores = yield from self._infer(JET_TAGGER, inputs, soft_deadline, result, times, asynchronous)
            step(JET_TAGGER, expired=scores is None)
            met_gev = missing_et_gev(em, had, self.eta_centers, self.phi_centers) if self.menu.uses_met else None
            subtracted = menu_jets(jets, em, had, self.eta_centers, self.phi_centers, f.jet_radius, f.jet_pileup_subtraction)
            keep.trigger = objects = TriggerObjects(jets, scores, met_gev, from_vertex, clusters, electron_track_pt, subtracted)
            decision = decide(self.menu, l1_id, objects)
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

    def _build_tracks(self, layer: np.ndarray, r: np.ndarray, phi: np.ndarray, z: np.ndarray, edges: np.ndarray,
                      scores: np.ndarray) -> tuple[np.ndarray, int]:
        """Tracks from the scored edges with the configured builder ([features] track_builder)."""
        f, tracker = self.config.features, self.config.tracker
        if f.track_builder == "walk":
            walk = Walk(f.track_walk_seed_cut, f.track_walk_candidate_cut, f.track_walk_max_sigma, f.track_walk_bend_rad,
                        tracker.resolution_rphi_mm, tracker.resolution_z_mm)
            return walk_tracks(len(layer), edges, scores, r, phi, z, f.track_min_hits, walk)
        rescue = Rescue(edge_slopes(r, phi, z, edges), f.track_rescue_score_cut, f.track_rescue_max_dphi_slope,
                        f.track_rescue_max_dz_slope, f.track_rescue_passes)
        return build_tracks(len(layer), edges, scores, f.edge_score_cut, f.track_min_hits, rescue)

    def _infer(self, model: str, inputs: Any, deadline_ns: int, result: EventResult, times: StepClock,
               asynchronous: bool) -> Generator[PendingCall, None, np.ndarray | None]:
        """The model's scores; None when its answer did not come before the deadline. A request
        in flight is yielded (asynchronous); the time until the answer, and then until the
        worker resumed the event, is set aside from the step."""
        service = self.inference[model]
        call = service.begin(inputs, deadline_ns, asynchronous)
        if call.in_flight:
            parked = self.now_ns()
            yield call
            resumed = self.now_ns()
            answered = min(max(call.answered_ns, parked), resumed) if call.answered_ns else resumed
            times.set_aside(model + WAIT_SUFFIX, answered - parked)
            times.set_aside(SLOT_WAIT, resumed - answered)
        outcome = service.finish(call)
        result.record_inference(model, outcome.path, outcome.reason)
        return None if outcome.path == EXPIRED else outcome.scores

    def error_result(self, l1_id: int, reason: str, stream: str = "HltError") -> EventResult:
        """An event decided without running the sequence: a debug stream with a reason."""
        return EventResult(l1_id, DEBUG, streams=(stream,), reason=reason)

    def _finish(self, result: EventResult, start: int) -> EventResult:
        result.steps_ms["worker_total"] = clock.ns_to_ms(self.now_ns() - start)
        return result


class StepClock:
    """An event's own time per step: wall time since the last step, less the time the event
    was set aside (each setting aside recorded under its own name)."""

    def __init__(self, now_ns: Callable[[], int], start_ns: int, steps_ms: dict[str, float]):
        self.now_ns = now_ns
        self.last_ns = start_ns
        self.aside_ns = 0
        self.steps_ms = steps_ms

    def lap(self, name: str) -> int:
        """Close step `name`; returns the time now."""
        now = self.now_ns()
        self.steps_ms[name] = clock.ns_to_ms(now - self.last_ns - self.aside_ns)
        self.last_ns, self.aside_ns = now, 0
        return now

    def set_aside(self, name: str, duration_ns: int) -> None:
        duration_ns = max(duration_ns, 0)
        self.aside_ns += duration_ns
        self.steps_ms[name] = self.steps_ms.get(name, 0.0) + clock.ns_to_ms(duration_ns)


def drive(run: EventRun) -> EventResult:
    """Run an event's generator to its end, blocking: what it yields is waited for by the
    service's `finish` when the generator resumes."""
    try:
        while True:
            next(run)
    except StopIteration as stop:
        return stop.value


class _OverBudget(Exception):
    pass
