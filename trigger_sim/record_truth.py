"""The truth a validation compares an event with, and how it travels in a recording's records.

`EventTruth` is what `trigger_sim.validation` needs of one event: per tracker hit (in the
order the worker unpacks them) the index of its particle, the particles' pT and charge, and,
for generated events, the hard objects and the particles' origin (jets, turn-ons). It comes
from three places:

- a simulated event (`generated_truth`), for `trigger-sim validate` on fresh events;
- a record written by `trigger-sim record` (`write_generated` stores `truth_meta` in the
  record's `meta["truth"]`), so `validate --recording` reproduces `validate` on the same
  events: pT as float64, the rest as small ints, each array as raw little-endian bytes;
- a record imported from TrackML (`meta["trackml_hits"]["particle_id"]` and
  `meta["trackml_particles"]`): tracking truth only (TrackML has no calorimeter and no hard
  objects). Only the barrel hits are in the record, so a particle counts as reconstructable
  when its barrel hits are on enough distinct layers of this detector.

`truth_from_record` says, when a record lacks truth, why (the figures needing it are skipped).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from trigger_sim.errors import TriggerSimError

TRUTH_FORMAT_VERSION = 1
GENERATED = "generated"
TRACKML = "trackml"
# array name -> dtype as stored (little-endian)
_PARTICLE_ARRAYS = {"pt_gev": "<f8", "charge": "<i1", "origin": "<i1"}
_OBJECT_ARRAYS = {"truth_kind": "<i1", "truth_pt_gev": "<f8", "truth_eta": "<f8", "truth_phi": "<f8"}


@dataclass(frozen=True)
class ParticleTruth:
    """The particles of one event, as much as validation needs (parallel arrays)."""

    pt_gev: np.ndarray
    charge: np.ndarray
    origin: np.ndarray  # 0 pile-up, k the truth object k - 1 (generated events only; else zeros)


@dataclass(frozen=True)
class ObjectTruth:
    """The hard objects of a generated event (see `physics.GeneratedEvent`): jets, taus, MET."""

    truth_kind: np.ndarray
    truth_pt_gev: np.ndarray
    truth_eta: np.ndarray
    truth_phi: np.ndarray
    true_met_gev: float
    particles: ParticleTruth  # `validation.true_quantity` reads the charged hard particles


@dataclass(frozen=True)
class EventTruth:
    """Truth of one event: `hit_particle[i]` is the particle of unpacked hit i (-1: noise)."""

    source: str  # GENERATED or TRACKML
    hit_particle: np.ndarray
    particles: ParticleTruth
    objects: ObjectTruth | None  # None: no hard objects (no jet or turn-on figures)


def generated_truth(sim: Any, hit_order: np.ndarray) -> EventTruth:
    """Truth of a simulated event (`simulation.SimulatedEvent`); `hit_order` is
    `partition.tracker_hit_order` of its hits."""
    p, t = sim.truth.particles, sim.truth
    particles = ParticleTruth(np.asarray(p.pt_gev, np.float64), np.asarray(p.charge, np.int8), np.asarray(p.origin, np.int8))
    objects = ObjectTruth(np.asarray(t.truth_kind, np.int8), np.asarray(t.truth_pt_gev, np.float64),
                          np.asarray(t.truth_eta, np.float64), np.asarray(t.truth_phi, np.float64), float(t.true_met_gev), particles)
    return EventTruth(GENERATED, np.asarray(sim.hits.particle[hit_order], np.int32), particles, objects)


def truth_meta(truth: EventTruth) -> dict[str, Any]:
    """`truth` as a record's `meta["truth"]` (msgpack-able: raw bytes per array)."""
    out: dict[str, Any] = {
        "format_version": TRUTH_FORMAT_VERSION, "source": truth.source,
        "hit_particle": _pack(truth.hit_particle, "<i4"),
        "particles": {name: _pack(getattr(truth.particles, name), dtype) for name, dtype in _PARTICLE_ARRAYS.items()},
    }
    if truth.objects is not None:
        o = truth.objects
        out["objects"] = {name: _pack(getattr(o, name), dtype) for name, dtype in _OBJECT_ARRAYS.items()}
        out["objects"]["true_met_gev"] = o.true_met_gev
    return out


def truth_from_record(meta: dict[str, Any], n_hits: int) -> tuple[EventTruth | None, str]:
    """(truth, "") from a record's meta, or (None, why not). `n_hits`: the unpacked tracker hits
    (the truth must have one entry per hit). Malformed truth raises `TriggerSimError`."""
    if "truth" in meta:
        truth = _from_truth_meta(meta["truth"])
    elif "particle_id" in meta.get("trackml_hits", {}) and meta.get("trackml_particles"):
        truth = _from_trackml_meta(meta["trackml_hits"], meta["trackml_particles"])
    elif "trackml_hits" in meta:
        return None, "TrackML event without truth (its particles and truth files were not imported)"
    else:
        return None, "the record carries no truth (recorded by a farm run or imported without truth)"
    if len(truth.hit_particle) != n_hits:
        raise TriggerSimError(f"the record's truth lists {len(truth.hit_particle)} tracker hits, its fragments hold {n_hits}")
    return truth, ""


def _from_truth_meta(m: Any) -> EventTruth:
    if not isinstance(m, dict) or m.get("format_version") != TRUTH_FORMAT_VERSION:
        version = m.get("format_version") if isinstance(m, dict) else None
        raise TriggerSimError(f"record truth format_version {version!r} is not supported (this build reads {TRUTH_FORMAT_VERSION})")
    try:
        hit_particle = _unpack(m["hit_particle"], "<i4").astype(np.int32)
        particles = ParticleTruth(*(_unpack(m["particles"][name], dtype) for name, dtype in _PARTICLE_ARRAYS.items()))
        objects = None
        if "objects" in m:
            o = m["objects"]
            objects = ObjectTruth(*(_unpack(o[name], dtype) for name, dtype in _OBJECT_ARRAYS.items()),
                                  true_met_gev=float(o["true_met_gev"]), particles=particles)
    except (KeyError, TypeError, ValueError) as err:
        raise TriggerSimError(f"record truth is malformed ({type(err).__name__}: {err})") from err
    _check_indices(hit_particle, len(particles.pt_gev))
    if len({len(particles.pt_gev), len(particles.charge), len(particles.origin)}) != 1:
        raise TriggerSimError("record truth: the particle arrays differ in length")
    return EventTruth(str(m.get("source", GENERATED)), hit_particle, particles, objects)


def _from_trackml_meta(hits: dict[str, Any], particles: dict[str, Any]) -> EventTruth:
    """TrackML truth: particle ids per hit (0: noise) into row indices of the particles table."""
    try:
        ids = np.asarray(particles["particle_id"], np.int64)
        px, py = np.asarray(particles["px_gev"], np.float64), np.asarray(particles["py_gev"], np.float64)
        charge = np.asarray(particles["q"], np.int8)
        hit_ids = np.asarray(hits["particle_id"], np.int64)
    except (KeyError, TypeError, ValueError) as err:
        raise TriggerSimError(f"TrackML truth in the record is malformed ({type(err).__name__}: {err})") from err
    hit_particle = np.full(len(hit_ids), -1, np.int32)
    if len(ids):
        order = np.argsort(ids, kind="stable")
        pos = np.minimum(np.searchsorted(ids[order], hit_ids), len(ids) - 1)
        known = ids[order][pos] == hit_ids
        hit_particle[known] = order[pos[known]]
    else:
        known = np.zeros(len(hit_ids), bool)
    if np.any((hit_ids != 0) & ~known):
        raise TriggerSimError("TrackML truth in the record: a hit names a particle_id missing from the particles")
    pt = np.hypot(px, py)
    return EventTruth(TRACKML, hit_particle, ParticleTruth(pt, charge, np.zeros(len(ids), np.int8)), None)


def _check_indices(hit_particle: np.ndarray, n_particles: int) -> None:
    if len(hit_particle) and (hit_particle.min() < -1 or hit_particle.max() >= n_particles):
        raise TriggerSimError(f"record truth: a hit's particle index is outside the {n_particles} particles")


def _pack(values: np.ndarray, dtype: str) -> bytes:
    return np.ascontiguousarray(values, dtype=dtype).tobytes()


def _unpack(data: Any, dtype: str) -> np.ndarray:
    if not isinstance(data, bytes):
        raise TypeError(f"expected bytes, got {type(data).__name__}")
    size = np.dtype(dtype).itemsize
    if len(data) % size:
        raise ValueError(f"{len(data)} bytes is not a whole number of {dtype} values")
    return np.frombuffer(data, dtype=dtype).astype(np.dtype(dtype).newbyteorder("="))
