"""TrackML events on disk: finding them in a directory, reading their tables, checking that
the tables agree with each other.

An event is the files `eventNNNNNNNNN-<part>.csv` (or `.csv.gz`) of one event number:

    hits       hit_id, x, y, z (mm), volume_id, layer_id, module_id     required
    cells      hit_id, ch0, ch1, value                                  optional
    particles  particle_id, vx, vy, vz (mm), px, py, pz (GeV), q, nhits  with truth
    truth      hit_id, particle_id, tx, ty, tz, tpx, tpy, tpz, weight    with particles

(The TrackML test dataset has hits and cells only; the training dataset has all four.)
Checks, each a `TrackmlError` with file, line and column: hit ids unique; every
(volume_id, layer_id) a layer of the TrackML detector; every cell's hit_id a hit; particle
ids unique and not 0 (0 means "no particle" in the truth); truth hit ids unique, known,
one per hit; every truth particle_id 0 or a particle.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from trigger_sim.importers.trackml_csv import Kind, Table, TrackmlError, parse_table, read_file_bytes
from trigger_sim.importers.trackml_geometry import BARREL_LAYERS, ENDCAP_VOLUMES, is_known

EVENT_FILE = re.compile(r"event(\d{9})-(hits|cells|particles|truth)\.csv(\.gz)?")
PARTS = ("hits", "cells", "particles", "truth")
_FLOAT: Kind = "float"
_INT: Kind = "int"
COLUMNS: dict[str, dict[str, Kind]] = {
    "hits": {"hit_id": _INT, "x": _FLOAT, "y": _FLOAT, "z": _FLOAT,
             "volume_id": _INT, "layer_id": _INT, "module_id": _INT},
    "cells": {"hit_id": _INT, "ch0": _INT, "ch1": _INT, "value": _FLOAT},
    "particles": {"particle_id": _INT, "vx": _FLOAT, "vy": _FLOAT, "vz": _FLOAT,
                  "px": _FLOAT, "py": _FLOAT, "pz": _FLOAT, "q": _INT, "nhits": _INT},
    "truth": {"hit_id": _INT, "particle_id": _INT, "tx": _FLOAT, "ty": _FLOAT, "tz": _FLOAT,
              "tpx": _FLOAT, "tpy": _FLOAT, "tpz": _FLOAT, "weight": _FLOAT},
}
NO_PARTICLE = -1  # row index of "particle_id 0" (noise) in `TrackmlEvent.hit_particle`


@dataclass(frozen=True)
class EventFiles:
    """The files of one event, by part name (hits always present)."""

    event_id: int
    paths: dict[str, Path]


@dataclass(frozen=True)
class TrackmlEvent:
    """One event's checked tables, plus per-hit summaries in the row order of `hits`.

    `hit_particle` is the row in `particles` of each hit's particle (NO_PARTICLE for
    particle_id 0), None without truth; `hit_cells` and `hit_charge` count and sum the
    cells of each hit (zeros without a cells file). `csv_sha256` is per file name the
    SHA-256 of its CSV text (decompressed, so the same for .csv and .csv.gz).
    """

    event_id: int
    hits: Table
    cells: Table | None
    particles: Table | None
    truth: Table | None
    hit_particle: np.ndarray | None
    hit_cells: np.ndarray
    hit_charge: np.ndarray
    csv_sha256: dict[str, str]


def find_events(directory: str | os.PathLike[str]) -> list[EventFiles]:
    """Every event in `directory`, by increasing event number; other files are ignored."""
    directory = Path(directory)
    if not directory.is_dir():
        raise TrackmlError(f"{directory}: not a directory; give the directory that holds the eventNNNNNNNNN-hits.csv files")
    found: dict[int, dict[str, Path]] = {}
    for path in sorted(directory.iterdir()):
        match = EVENT_FILE.fullmatch(path.name)
        if match is None:
            continue
        parts = found.setdefault(int(match.group(1)), {})
        part = match.group(2)
        if part in parts:
            raise TrackmlError(f"{directory}: both {parts[part].name} and {path.name}; keep one of them")
        parts[part] = path
    if not found:
        raise TrackmlError(f"{directory}: no TrackML event files (eventNNNNNNNNN-hits.csv or .csv.gz)")
    events = []
    for event_id, parts in sorted(found.items()):
        if "hits" not in parts:
            raise TrackmlError(f"{directory}: event {event_id:09d} has {', '.join(p.name for p in parts.values())} "
                               "but no hits file")
        events.append(EventFiles(event_id, parts))
    return events


def read_event(files: EventFiles) -> TrackmlEvent:
    """Read, parse and check the tables of one event."""
    return event_from_bytes(files.event_id, {part: (str(path), read_file_bytes(path)) for part, path in files.paths.items()})


def _sorted_ids(table: Table, column: str, what: str) -> tuple[np.ndarray, np.ndarray]:
    """(sorted ids, their rows) of a column that must hold unique ids."""
    ids = table.columns[column]
    order = np.argsort(ids, kind="stable")
    ordered = ids[order]
    repeated = np.flatnonzero(ordered[1:] == ordered[:-1])
    if len(repeated):
        rows = order[repeated + 1]
        row = int(rows.min())  # the earliest line that repeats an id
        first = int(order[np.searchsorted(ordered, ids[row])])
        raise table.error(row, column, f"{what} {ids[row]} already on line {first + 2}; ids must be unique")
    return ordered, order


def _rows_of(ids: np.ndarray, ordered: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Row of each of `ids` among (ordered, order), -1 where the id is absent."""
    pos = np.minimum(np.searchsorted(ordered, ids), max(len(ordered) - 1, 0))
    found = (ordered[pos] == ids) if len(ordered) else np.zeros(len(ids), dtype=bool)
    return np.where(found, order[pos] if len(ordered) else -1, -1)


def _check_layers(hits: Table) -> None:
    volume, layer = hits.columns["volume_id"], hits.columns["layer_id"]
    bad = np.flatnonzero(~is_known(volume, layer))
    if len(bad):
        row = int(bad[0])
        volumes = sorted({v for v, _ in BARREL_LAYERS} | set(ENDCAP_VOLUMES))
        column = "layer_id" if volume[row] in volumes else "volume_id"
        raise hits.error(row, column, f"volume_id {volume[row]}, layer_id {layer[row]} is not a layer of the TrackML "
                                      f"detector (volumes {', '.join(map(str, volumes))}; layer ids 2, 4, ...)")


def _check_references(table: Table, column: str, rows: np.ndarray, target: Table, what: str) -> None:
    bad = np.flatnonzero(rows < 0)
    if len(bad):
        row = int(bad[0])
        raise table.error(row, column, f"{what} {table.columns[column][row]} is not in {target.where}")


def _truth(hits: Table, hit_rows: tuple[np.ndarray, np.ndarray], particles: Table, truth: Table) -> np.ndarray:
    """Row in `particles` of each hit's particle (NO_PARTICLE for 0), after the truth checks."""
    p_ordered, p_order = _sorted_ids(particles, "particle_id", "particle_id")
    zero = np.flatnonzero(particles.columns["particle_id"] == 0)
    if len(zero):
        raise particles.error(int(zero[0]), "particle_id", "particle_id 0 is reserved: it marks hits of no particle in the truth")
    _sorted_ids(truth, "hit_id", "hit_id")
    truth_hit = _rows_of(truth.columns["hit_id"], *hit_rows)
    _check_references(truth, "hit_id", truth_hit, hits, "hit_id")
    if len(truth_hit) < len(hits):
        covered = np.zeros(len(hits), dtype=bool)
        covered[truth_hit] = True
        row = int(np.flatnonzero(~covered)[0])
        raise hits.error(row, "hit_id", f"hit {hits.columns['hit_id'][row]} has no row in {truth.where}; "
                                         "the truth must list every hit")
    pid = truth.columns["particle_id"]
    particle_row = _rows_of(pid, p_ordered, p_order)
    unknown = (particle_row < 0) & (pid != 0)
    _check_references(truth, "particle_id", np.where(unknown, -1, 0), particles, "particle_id")
    hit_particle = np.full(len(hits), NO_PARTICLE, dtype=np.int64)
    hit_particle[truth_hit] = np.where(pid == 0, NO_PARTICLE, particle_row)
    return hit_particle


def event_from_bytes(event_id: int, parts: Mapping[str, tuple[str, bytes]]) -> TrackmlEvent:
    """An event from its tables' contents: part name -> (file name for messages, CSV bytes)."""
    if "hits" not in parts:
        raise TrackmlError(f"event {event_id:09d}: no hits table")
    if ("particles" in parts) != ("truth" in parts):
        have, lack = ("particles", "truth") if "particles" in parts else ("truth", "particles")
        raise TrackmlError(f"{parts[have][0]}: event {event_id:09d} has a {have} file but no {lack} file; "
                           "the truth needs both (or neither)")
    tables = {part: parse_table(data, where, COLUMNS[part]) for part, (where, data) in parts.items()}
    hits = tables["hits"]
    hit_rows = _sorted_ids(hits, "hit_id", "hit_id")
    _check_layers(hits)
    hit_cells = np.zeros(len(hits), dtype=np.int64)
    hit_charge = np.zeros(len(hits), dtype=np.float64)
    cells = tables.get("cells")
    if cells is not None:
        cell_hit = _rows_of(cells.columns["hit_id"], *hit_rows)
        _check_references(cells, "hit_id", cell_hit, hits, "hit_id")
        hit_cells = np.bincount(cell_hit, minlength=len(hits)).astype(np.int64)
        hit_charge = np.bincount(cell_hit, weights=cells.columns["value"], minlength=len(hits))
    particles, truth = tables.get("particles"), tables.get("truth")
    hit_particle = _truth(hits, hit_rows, particles, truth) if particles is not None and truth is not None else None
    digests = {Path(where).name: hashlib.sha256(data).hexdigest() for where, data in parts.values()}
    return TrackmlEvent(event_id, hits, cells, particles, truth, hit_particle, hit_cells, hit_charge, digests)
