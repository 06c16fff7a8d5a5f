"""TrackML events onto this project's detector, and a directory of them into a recording.

Kept:
- Tracker: every hit of the TrackML barrel (volumes 8, 13, 17) becomes a hit on the
  matching layer of this tracker (`trackml_geometry.BARREL_LAYERS`, innermost first), with
  phi = atan2(y, x) and z as measured. Its radius becomes the layer's radius
  (`tracker.layer_radii_mm`): this tracker's layers are cylinders, TrackML's are flat
  modules a few mm apart in radius (the largest difference is in `conversion`).
  Hits then go through the readout as simulated ones do (`partition.make_fragments`:
  module ids and local coordinates on this tracker's module grid).
- Per kept hit, in the record `meta` (`trackml_hits`): its TrackML hit_id, the number
  of its cells and the sum of their values (charge), and with truth its particle_id (0:
  no particle). The order is the order in which a worker unpacks the hits
  (`partition.unpack_tracker`: tracker sources in turn, each a phi sector): hits are
  packed sorted by phi, so position i of these lists is hit i of the unpacked event.
- Truth: the particles table (vertex in mm, momentum in GeV, charge, nhits) as columns
  in `trackml_particles`; the event number, the file names and the SHA-256 of each CSV
  text in `trackml`.

Dropped, and counted in `conversion`: hits of the endcap volumes (7, 9, 12, 14, 16,
18; this tracker has no endcaps), per volume; barrel hits with |z| >= tracker.half_length_mm.
Not kept: TrackML module ids (this tracker numbers its own modules), the cells
themselves (only their count and charge per hit), the truth's per-hit intersection point
and momentum (tx..tpz) and scoring weight.

Calorimeter: TrackML has none, so every calorimeter source sends an empty fragment (no
towers); every readout source still sends one, so the farm's builder completes the event.
Events are recorded with Level-1 ids 0, 1, 2... in event-number order, bunch crossing 0.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trigger_sim.config import FarmConfig, as_dict
from trigger_sim.detector import NOISE_PARTICLE, CaloTowers, TrackerHits
from trigger_sim.event import Fragment
from trigger_sim.importers.output import refuse_existing, write_recording
from trigger_sim.importers.trackml_csv import TrackmlError
from trigger_sim.importers.trackml_event import NO_PARTICLE, TrackmlEvent, find_events, read_event
from trigger_sim.importers.trackml_geometry import BARREL_LAYERS, ENDCAP_VOLUMES, NOT_BARREL, barrel_layer
from trigger_sim.partition import make_fragments

BUNCH_CROSSING = 0  # TrackML events have none
PARTICLE_COLUMNS = {"particle_id": "particle_id", "vx_mm": "vx", "vy_mm": "vy", "vz_mm": "vz",
                    "px_gev": "px", "py_gev": "py", "pz_gev": "pz", "q": "q", "nhits": "nhits"}


@dataclass(frozen=True)
class ConvertedEvent:
    """One TrackML event ready to record: fragments in `source_ids` order, and its meta."""

    fragments: list[Fragment]
    meta: dict[str, Any]
    tracker_hits: int
    dropped_endcap: dict[int, int]
    dropped_outside_z: int


def check_config(config: FarmConfig) -> None:
    """The detector configuration must have one layer per TrackML barrel layer."""
    n = len(config.tracker.layer_radii_mm)
    if n != len(BARREL_LAYERS):
        raise TrackmlError(
            f"the detector configuration has {n} tracker layers, the TrackML barrel has {len(BARREL_LAYERS)}; "
            "import with a configuration of 10 tracker.layer_radii_mm (the default has them)"
        )


def _particles_meta(event: TrackmlEvent) -> dict[str, list[Any]]:
    if event.particles is None:
        return {}
    return {key: event.particles.columns[src].tolist() for key, src in PARTICLE_COLUMNS.items()}


def convert_event(event: TrackmlEvent, config: FarmConfig, l1_id: int, l1_time_ns: int = 0) -> ConvertedEvent:
    """One TrackML event as the fragments of every readout source plus its metadata."""
    check_config(config)
    cols = event.hits.columns
    layer = barrel_layer(cols["volume_id"], cols["layer_id"])
    x, y, z = cols["x"], cols["y"], cols["z"]
    in_z = np.abs(z) < config.tracker.half_length_mm
    barrel = layer != NOT_BARREL
    dropped_endcap = {v: int(np.count_nonzero(cols["volume_id"] == v)) for v in ENDCAP_VOLUMES}
    phi32 = np.arctan2(y, x).astype(np.float32)
    kept = np.flatnonzero(barrel & in_z)
    kept = kept[np.argsort(phi32[kept], kind="stable")]  # the order the worker unpacks (sectors are phi ranges)
    radii = np.asarray(config.tracker.layer_radii_mm)
    kept_layer = layer[kept]
    particle = NOISE_PARTICLE if event.hit_particle is None else event.hit_particle[kept]
    hits = TrackerHits(
        layer=kept_layer.astype(np.int32),
        r_mm=radii[kept_layer].astype(np.float32),
        phi=phi32[kept],
        z_mm=z[kept].astype(np.float32),
        particle=np.broadcast_to(particle, kept.shape).astype(np.int32),
    )
    shape = (config.calo.n_eta, config.calo.n_phi)
    no_towers = CaloTowers(np.zeros(shape, np.float32), np.zeros(shape, np.float32))
    fragments = make_fragments(config, hits, no_towers, config.run.run_number, l1_id, BUNCH_CROSSING, l1_time_ns)
    radial = np.abs(np.hypot(x[kept], y[kept]) - radii[kept_layer])
    hit_meta: dict[str, list[Any]] = {
        "hit_id": cols["hit_id"][kept].tolist(),
        "cells": event.hit_cells[kept].tolist(),
        "charge": event.hit_charge[kept].tolist(),
    }
    if event.hit_particle is not None and event.particles is not None:
        rows = event.hit_particle[kept]
        ids = np.append(event.particles.columns["particle_id"], 0)  # the appended 0: no particle
        hit_meta["particle_id"] = ids[np.where(rows == NO_PARTICLE, len(ids) - 1, rows)].tolist()
    meta = {
        "trackml": {"event_id": event.event_id, "csv_sha256": event.csv_sha256},
        "trackml_hits": hit_meta,
        "trackml_particles": _particles_meta(event),
        "conversion": {
            "hits_read": len(event.hits),
            "tracker_hits": len(kept),
            "dropped_endcap": {str(v): n for v, n in dropped_endcap.items()},
            "dropped_outside_z": int(np.count_nonzero(barrel & ~in_z)),
            "cells_read": 0 if event.cells is None else len(event.cells),
            "radial_offset_max_mm": float(radial.max()) if len(radial) else 0.0,
        },
    }
    return ConvertedEvent(fragments, meta, len(kept), dropped_endcap, meta["conversion"]["dropped_outside_z"])


@dataclass
class TrackmlImportSummary:
    """What an import did, for the command's report."""

    events: int = 0
    events_with_truth: int = 0
    hits_read: int = 0
    tracker_hits: int = 0
    dropped_endcap: dict[int, int] = field(default_factory=lambda: dict.fromkeys(ENDCAP_VOLUMES, 0))
    dropped_outside_z: int = 0
    cells_read: int = 0
    elapsed_s: float = 0.0

    def add(self, converted: ConvertedEvent) -> None:
        conversion = converted.meta["conversion"]
        self.events += 1
        self.events_with_truth += "particle_id" in converted.meta["trackml_hits"]
        self.hits_read += conversion["hits_read"]
        self.tracker_hits += converted.tracker_hits
        for volume, n in converted.dropped_endcap.items():
            self.dropped_endcap[volume] += n
        self.dropped_outside_z += converted.dropped_outside_z
        self.cells_read += conversion["cells_read"]


def import_trackml(
    directory: str | os.PathLike[str],
    output: str | os.PathLike[str],
    config: FarmConfig,
    *,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> TrackmlImportSummary:
    """Convert every TrackML event of `directory` into a recording at `output`.

    The output is written to a temporary name and renamed when complete, so a failed
    import leaves no partial recording.
    """
    directory, output = Path(directory), Path(output)
    refuse_existing(output, overwrite)
    check_config(config)
    started = time.perf_counter()
    events = find_events(directory)
    summary = TrackmlImportSummary()
    provenance = {"kind": "trackml", "directory": directory.resolve().name,
                  "event_ids": [e.event_id for e in events]}
    write_recording(output, events, lambda files, l1_id: convert_event(read_event(files), config, l1_id), total=len(events),
                    run_number=config.run.run_number, stream=directory.resolve().name or "trackml", detector=as_dict(config),
                    source=provenance, on_event=summary.add, progress=progress)
    summary.elapsed_s = time.perf_counter() - started
    return summary
