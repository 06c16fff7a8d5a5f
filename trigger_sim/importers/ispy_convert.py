"""Real CMS events (iSpy) onto this project's detector, and .ig files into recordings.

Calorimeter: every ECAL rechit (EB, EE) adds its energy to the electromagnetic
compartment of the eta-phi tower it falls in, every HCAL rechit (HB, HE, HF) to the
hadronic one. Rechits outside |eta| < calo.eta_max, or with a non-finite position, are
dropped and counted (`dropped_outside_eta`); so are energies that are not positive
(noise) or not physical (NaN, above 100 TeV) (`dropped_bad_energy`). No zero suppression
is added to what CMS already did, so the towers sum to the kept rechit energies. ES
(preshower, MeV deposits already in the EE clusters) and HO (tail catcher) are not used.

Tracker: each CMS track (pT, eta, phi at its reference point, charge, z of that point)
is propagated as a helix through this project's barrel layers in this project's field
(2 T by default, CMS has 3.8 T), with its resolution, efficiency and noise
(`detector.simulate_tracker`, seeded by the CMS run and event numbers and the run seed,
so an import is reproducible).

Every readout source gets a fragment (`partition.make_fragments`), so the farm's builder
sees complete events. The record `meta` keeps the CMS identity of the event, the real HLT
decisions (`cms_hlt`, and `cms_hlt_not_run`: paths not run in the event) and the
reconstructed physics objects, in columns.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trigger_sim.config import CaloConfig, FarmConfig, as_dict
from trigger_sim.detector import CaloTowers, simulate_tracker, wrap_phi
from trigger_sim.errors import IspyError
from trigger_sim.event import Fragment
from trigger_sim.importers.ispy import IspyEvent, IspyFile
from trigger_sim.importers.output import refuse_existing, write_recording
from trigger_sim.partition import make_fragments
from trigger_sim.physics import CHARGED_HADRON, ORIGIN_PILEUP, Particles
from trigger_sim.simulation import BUNCHES_PER_ORBIT

ECAL_RECHITS = ("EBRecHits_V2", "EERecHits_V2")
HCAL_RECHITS = ("HBRecHits_V2", "HERecHits_V2")
OPTIONAL_HCAL_RECHITS = ("HFRecHits_V2",)
TRACKS = "Tracks_V3"
M_TO_MM = 1000.0
# Tracks outside these bounds are not physical (LHC beams are 4 TeV): left out, counted.
TRACK_MAX_PT_GEV = 1e5
TRACK_MAX_ABS_ETA = 10.0
TRACK_MAX_ABS_VZ_M = 100.0
RECHIT_MAX_ENERGY_GEV = 1e5
# (meta key, Event_V2 column, exclusive upper bound): run numbers are u32 in fragment headers.
IDENTITY_COLUMNS = (("run", "run", 2**32), ("event", "event", 2**64), ("lumi", "ls", 2**32),
                    ("orbit", "orbit", 2**32), ("bx", "bx", 2**16))

# meta name -> (candidate collections, newest first; {output column: input column}).
PHYSICS_OBJECTS: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {
    "pf_jets": (("PFJets_V1",), {"et_gev": "et", "eta": "eta", "phi": "phi"}),
    "pf_met": (("PFMETs_V1",), {"pt_gev": "pt", "phi": "phi"}),
    "electrons": (("GsfElectrons_V2", "GsfElectrons_V1"), {"pt_gev": "pt", "eta": "eta", "phi": "phi", "charge": "charge"}),
    "photons": (("Photons_V1",), {"et_gev": "et", "eta": "eta", "phi": "phi"}),
    "muons_global": (("GlobalMuons_V1",), {"pt_gev": "pt", "eta": "eta", "phi": "phi", "charge": "charge"}),
    "muons_tracker": (("TrackerMuons_V2", "TrackerMuons_V1"), {"pt_gev": "pt", "eta": "eta", "phi": "phi", "charge": "charge"}),
}


@dataclass(frozen=True)
class TowerFill:
    """Calorimeter towers made from rechits, and what was left out."""

    towers: CaloTowers
    rechits_used: int
    dropped_outside_eta: int
    dropped_bad_energy: int
    energy_used_gev: float


@dataclass(frozen=True)
class ConvertedEvent:
    """One CMS event ready to record: fragments in `source_ids` order, and its meta."""

    fragments: list[Fragment]
    meta: dict[str, Any]
    fill: TowerFill


def _rechits(event: IspyEvent, names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Concatenated (energy, eta, phi) of the rechits of the collections `names`."""
    parts = [[event.column(n, c) for c in ("energy", "eta", "phi")] for n in names]
    if not parts:
        return np.empty(0), np.empty(0), np.empty(0)
    energy, eta, phi = (np.concatenate(cols) for cols in zip(*parts))
    return energy, eta, phi


def fill_towers(
    em: tuple[np.ndarray, np.ndarray, np.ndarray],
    had: tuple[np.ndarray, np.ndarray, np.ndarray],
    cfg: CaloConfig,
) -> TowerFill:
    """Sum (energy, eta, phi) rechits into the EM and HAD tower grids of `cfg`."""
    size = cfg.n_eta * cfg.n_phi
    grids, used, outside, bad_energy, total = [], 0, 0, 0, 0.0
    for energy, eta, phi in (em, had):
        in_eta = np.isfinite(eta) & np.isfinite(phi) & (np.abs(eta) < cfg.eta_max)
        good_energy = (energy > 0) & (energy < RECHIT_MAX_ENERGY_GEV)  # False for NaN too
        keep = in_eta & good_energy
        outside += int(np.count_nonzero(~in_eta))
        bad_energy += int(np.count_nonzero(in_eta & ~good_energy))
        used += int(np.count_nonzero(keep))
        ieta = np.clip(((eta[keep] + cfg.eta_max) / (2 * cfg.eta_max) * cfg.n_eta).astype(np.int64), 0, cfg.n_eta - 1)
        iphi = np.clip(((wrap_phi(phi[keep]) + np.pi) / (2 * np.pi) * cfg.n_phi).astype(np.int64), 0, cfg.n_phi - 1)
        grids.append(np.bincount(ieta * cfg.n_phi + iphi, weights=energy[keep], minlength=size))
        total += float(energy[keep].sum())
    shape = (cfg.n_eta, cfg.n_phi)
    towers = CaloTowers(grids[0].reshape(shape).astype(np.float32), grids[1].reshape(shape).astype(np.float32))
    return TowerFill(towers, used, outside, bad_energy, total)


def track_particles(event: IspyEvent) -> tuple[Particles, int]:
    """CMS tracks as charged particles from their reference point, and how many were left out."""
    if event.has(TRACKS):
        pt, eta, phi, charge = (event.column(TRACKS, c) for c in ("pt", "eta", "phi", "charge"))
        vz_m = event.column(TRACKS, "pos", 3)[:, 2]
    else:
        pt = eta = phi = charge = vz_m = np.empty(0)
    good = ((pt > 0) & (pt < TRACK_MAX_PT_GEV) & (np.abs(eta) < TRACK_MAX_ABS_ETA)
            & np.isfinite(phi) & (np.abs(vz_m) < TRACK_MAX_ABS_VZ_M) & (np.abs(charge) == 1))
    n = int(np.count_nonzero(good))
    particles = Particles(
        pt_gev=pt[good], eta=eta[good], phi=wrap_phi(phi[good]), charge=charge[good].astype(np.int64),
        kind=np.full(n, CHARGED_HADRON), vz_mm=vz_m[good] * M_TO_MM, origin=np.full(n, ORIGIN_PILEUP),
    )
    return particles, len(pt) - n


def _values(event: IspyEvent, collection: str | None, column: str) -> list[Any]:
    if collection is None:
        return []
    if column == "charge":
        return event.ints(collection, column)
    return event.column(collection, column).tolist()


def _objects(event: IspyEvent) -> dict[str, dict[str, list[Any]]]:
    """Physics objects as columns of plain floats; empty columns when a collection is absent."""
    out = {}
    for name, (candidates, columns) in PHYSICS_OBJECTS.items():
        collection = next((c for c in candidates if event.has(c)), None)
        out[name] = {key: _values(event, collection, src) for key, src in columns.items()}
    return out


def cms_identity(event: IspyEvent) -> dict[str, Any]:
    """Run, event, lumi section, orbit, bunch crossing and time of the CMS event."""
    rows = event.rows("Event_V2")
    if len(rows) != 1:
        raise IspyError(f"{event.member}: Event_V2 has {len(rows)} rows, expected 1")
    ident: dict[str, Any] = {}
    for key, column, limit in IDENTITY_COLUMNS:
        value = event.ints("Event_V2", column)[0]
        if not 0 <= value < limit:
            raise IspyError(f"{event.member}: Event_V2.{column} is {value}, expected 0 <= {column} < {limit}")
        ident[key] = value
    ident["time"] = event.strings("Event_V2", "time")[0]
    return ident


def hlt_decisions(event: IspyEvent) -> dict[str, bool]:
    """The CMS HLT decision per path, as taken online (TriggerPaths_V1)."""
    names = event.strings("TriggerPaths_V1", "Name")
    return dict(zip(names, (bool(a) for a in event.ints("TriggerPaths_V1", "Accept"))))


def hlt_not_run(event: IspyEvent) -> list[str]:
    """CMS HLT paths that were not run in this event (WasRun 0); empty when the file does not say."""
    if "WasRun" not in event.columns.get("TriggerPaths_V1", ()):
        return []
    names = event.strings("TriggerPaths_V1", "Name")
    return [n for n, ran in zip(names, event.ints("TriggerPaths_V1", "WasRun")) if not ran]


def convert_event(event: IspyEvent, config: FarmConfig, l1_id: int, l1_time_ns: int = 0) -> ConvertedEvent:
    """One CMS event as the fragments of every readout source plus its CMS metadata."""
    ident = cms_identity(event)
    em = _rechits(event, ECAL_RECHITS)
    had = _rechits(event, HCAL_RECHITS + tuple(n for n in OPTIONAL_HCAL_RECHITS if event.has(n)))
    fill = fill_towers(em, had, config.calo)
    particles, tracks_dropped = track_particles(event)
    rng = np.random.default_rng([ident["run"], ident["event"], config.run.seed])
    hits = simulate_tracker(particles, config.tracker, rng)
    bcid = (ident["bx"] - 1) % BUNCHES_PER_ORBIT  # CMS counts bunch crossings from 1
    fragments = make_fragments(config, hits, fill.towers, ident["run"], l1_id, bcid, l1_time_ns)
    meta = {
        "cms": ident,
        "cms_hlt": hlt_decisions(event),
        "cms_hlt_not_run": hlt_not_run(event),
        "cms_objects": _objects(event),
        "conversion": {
            "rechits_used": fill.rechits_used,
            "dropped_outside_eta": fill.dropped_outside_eta,
            "dropped_bad_energy": fill.dropped_bad_energy,
            "energy_used_gev": fill.energy_used_gev,
            "tracks_used": len(particles),
            "tracks_dropped": tracks_dropped,
            "tracker_hits": len(hits.layer),
        },
    }
    return ConvertedEvent(fragments, meta, fill)


@dataclass
class ImportSummary:
    """What an import did, for the command's report."""

    events: int = 0
    rechits_used: int = 0
    dropped_outside_eta: int = 0
    dropped_bad_energy: int = 0
    tracker_hits: int = 0
    elapsed_s: float = 0.0


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def import_ispy(
    ig_path: str | os.PathLike[str],
    output: str | os.PathLike[str],
    config: FarmConfig,
    *,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
) -> ImportSummary:
    """Convert every event of an .ig file into a recording at `output`.

    Events get Level-1 ids 0, 1, 2... in file order. The output is written to a temporary
    name and renamed when complete, so a failed import leaves no partial recording.
    """
    ig_path, output = Path(ig_path), Path(output)
    refuse_existing(output, overwrite)
    started = time.perf_counter()
    summary = ImportSummary()
    with IspyFile(ig_path) as source:
        runs = source.runs
        provenance = {
            "kind": "cms-ispy", "file": ig_path.name, "sha256": _sha256(ig_path),
            "cmssw_version": source.cmssw_version, "cms_runs": sorted(runs),
        }
        write_recording(output, source, lambda event, l1_id: convert_event(event, config, l1_id), total=len(source),
                        run_number=next(iter(runs)) if len(runs) == 1 else 0, stream=ig_path.stem,
                        detector=as_dict(config), source=provenance, on_event=lambda c: _add(summary, c), progress=progress)
    summary.elapsed_s = time.perf_counter() - started
    return summary


def _add(summary: ImportSummary, converted: ConvertedEvent) -> None:
    summary.events += 1
    summary.rechits_used += converted.fill.rechits_used
    summary.dropped_outside_eta += converted.fill.dropped_outside_eta
    summary.dropped_bad_energy += converted.fill.dropped_bad_energy
    summary.tracker_hits += converted.meta["conversion"]["tracker_hits"]
