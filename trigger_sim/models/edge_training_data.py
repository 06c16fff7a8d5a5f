"""Labelled hit graphs for training the edge classifier: from simulated events or from recordings.

A graph is built as the worker builds it (`build_hit_graph` with the [features] cuts, then
`graph_features`); an edge is true when both its hits belong to the same particle (the graph
links adjacent layers only, so a true edge is a particle's step from one layer to the next).
`scripts/train_edge_classifier.py` trains on simulated events (`simulated_graph`) or fine-tunes
on the records of recordings that carry truth (`recording_graphs`: `trigger-sim record`, or a
TrackML import with its truth files), with the same labelling either way. No torch here.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trigger_sim.config import FarmConfig
from trigger_sim.errors import TriggerSimError
from trigger_sim.kernels import build_hit_graph, graph_features
from trigger_sim.partition import unpack_tracker
from trigger_sim.record_truth import truth_from_record
from trigger_sim.recording import RecordReader
from trigger_sim.simulation import simulate

MIN_PT_GEV = 1.0  # edge efficiency is quoted for true edges of particles above this


@dataclass(frozen=True)
class Graph:
    """One event's hit graph with its truth labels."""

    nodes: np.ndarray  # (N, 3) float32
    edges: np.ndarray  # (E, 2) int32
    edge_features: np.ndarray  # (E, 6) float32
    true: np.ndarray  # (E,) bool: both hits from one particle
    true_hipt: np.ndarray  # (E,) bool: true and the particle has pT > MIN_PT_GEV
    pt_gev: np.ndarray  # (E,) float32: the particle's pT on true edges, 0 on false ones


def labelled_graph(config: FarmConfig, layer: np.ndarray, r_mm: np.ndarray, phi: np.ndarray, z_mm: np.ndarray,
                   hit_particle: np.ndarray, particle_pt_gev: np.ndarray) -> Graph:
    """The worker's graph of these hits, its edges labelled by `hit_particle` (-1: noise)."""
    f = config.features
    edges, _ = build_hit_graph(layer, r_mm, phi, z_mm, len(config.tracker.layer_radii_mm),
                               f.graph_phi_slope_max, f.graph_z0_max_mm, f.graph_max_edges)
    nodes, edge_features = graph_features(r_mm, phi, z_mm, edges)
    pi, pj = hit_particle[edges[:, 0]], hit_particle[edges[:, 1]]
    true = (pi == pj) & (pi >= 0)
    pt = np.asarray(particle_pt_gev)
    pt_of_edge = pt[np.maximum(pi, 0)] if len(pt) else np.zeros(len(edges))
    true_hipt = true & (pt_of_edge > MIN_PT_GEV)
    edge_pt = np.where(true, pt_of_edge, 0.0).astype(np.float32)
    return Graph(nodes, edges, edge_features, true, true_hipt, edge_pt)


def simulated_graph(config: FarmConfig, l1_id: int) -> Graph:
    """The graph a worker builds for simulated event `l1_id`, labelled with the simulation truth."""
    sim = simulate(config, l1_id)
    hits = sim.hits
    return labelled_graph(config, hits.layer, hits.r_mm, hits.phi, hits.z_mm, hits.particle, sim.truth.particles.pt_gev)


def recording_graphs(path: str | Path, config: FarmConfig, events: int | None = None) -> list[Graph]:
    """Labelled graphs of the first `events` records of a recording (all when None), built from
    the hits as the worker unpacks them. `config` must have the recording's detector
    (`event_source.config_for_recording`). A record without truth raises `TriggerSimError`
    saying which and why: a graph without labels cannot be trained on."""
    reader = RecordReader(path)
    graphs = []
    for record in itertools.islice(reader, events):
        layer, r, phi, z = unpack_tracker(record.fragments, config.tracker)
        try:
            truth, why = truth_from_record(record.meta, len(layer))
        except TriggerSimError as err:
            raise TriggerSimError(f"{path}: record of l1_id {record.l1_id}: {err}") from err
        if truth is None:
            raise TriggerSimError(
                f"{path}: record of l1_id {record.l1_id}: {why}; training needs every hit's particle: "
                "record events with `trigger-sim record` (truth is stored unless --no-truth) or import TrackML events "
                "with their -particles and -truth files")
        graphs.append(labelled_graph(config, layer, r, phi, z, truth.hit_particle, truth.particles.pt_gev))
    if not graphs:
        raise TriggerSimError(f"{path}: the recording holds no records")
    return graphs
