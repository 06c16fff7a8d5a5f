"""Trigger menu: chains with selections, prescales and output streams; the decision.

The decision is a pure function of the event's trigger objects and its Level-1 id
(prescales hash the id), so it is the same on any worker, through Triton or the fallback.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from trigger_sim.config import from_mapping, read_toml
from trigger_sim.errors import ConfigError
from trigger_sim.kernels.calo_jets import JET_EM_FRACTION, JET_PT
from trigger_sim.kernels.em_clusters import CLUSTER_ET, CLUSTER_HAD_ET, CLUSTER_ISO_ET
from trigger_sim.kernels.helix_fit import TRACK_PT

SELECTIONS = ("jets", "ht", "met", "em", "tracks", "electron", "all")
DEBUG_STREAMS = ("MissingData", "HltTimeout", "HltError", "NotProcessed")


@dataclass(frozen=True)
class Chain:
    name: str
    selection: str
    streams: tuple[str, ...]
    min_pt_gev: float = 0.0
    min_count: int = 1
    min_score: float = 0.0
    min_ht_gev: float = 0.0
    min_met_gev: float = 0.0
    min_em_fraction: float = 0.0
    min_track_pt_gev: float = 0.0  # electron: the matched track's pT must be above this
    max_had_fraction: float = 1.0  # electron: hadronic ET behind the cluster / cluster ET
    max_iso_fraction: float = float("inf")  # electron: ET around the cluster / cluster ET
    prescale: int = 1

    def __post_init__(self) -> None:
        if self.selection not in SELECTIONS:
            raise ValueError(f"chain {self.name}: selection must be one of {SELECTIONS}, not {self.selection!r}")
        if self.prescale < 1 or self.min_count < 1:
            raise ValueError(f"chain {self.name}: prescale and min_count must be >= 1")
        if not 0.0 <= self.min_em_fraction <= 1.0:
            raise ValueError(f"chain {self.name}: min_em_fraction must be within [0, 1]")
        if not self.streams:
            raise ValueError(f"chain {self.name}: needs at least one output stream")
        if set(self.streams) & set(DEBUG_STREAMS):
            raise ValueError(f"chain {self.name}: {DEBUG_STREAMS} are debug streams, not chain outputs")


@dataclass(frozen=True)
class Menu:
    chains: tuple[Chain, ...]

    @property
    def streams(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(s for c in self.chains for s in c.streams))

    @property
    def uses_tagger(self) -> bool:
        return any(c.selection in ("jets", "em") and c.min_score > 0 for c in self.chains)

    @property
    def uses_tracks(self) -> bool:
        return any(c.selection in ("tracks", "electron") for c in self.chains)

    @property
    def uses_met(self) -> bool:
        return any(c.selection == "met" for c in self.chains)


@dataclass(frozen=True)
class TriggerObjects:
    """What the menu selects on: jets and their tagger scores, missing ET (None if not
    computed), primary-vertex tracks, EM clusters and the pT of the track matched to each.

    `subtracted_jets` (None: not computed) are `jets` after pile-up subtraction
    (`trigger_sim.pileup`), row for row: jet, HT and EM-jet chains cut on them; chains with
    a tagger cut cut on `jets` as measured, the pT scale the tagger was trained on."""

    jets: np.ndarray
    jet_scores: np.ndarray
    met_gev: float | None = None
    tracks: np.ndarray = field(default_factory=lambda: np.zeros((0, TRACK_PT + 1)))
    clusters: np.ndarray = field(default_factory=lambda: np.zeros((0, CLUSTER_ISO_ET + 1)))
    cluster_track_pt_gev: np.ndarray = field(default_factory=lambda: np.zeros(0))
    subtracted_jets: np.ndarray | None = None


@dataclass(frozen=True)
class Decision:
    chains: tuple[str, ...]  # chains that passed (after prescale)
    streams: tuple[str, ...]  # streams the event is written to; empty means rejected

    @property
    def accepted(self) -> bool:
        return bool(self.streams)


def load_menu(path: str | Path) -> Menu:
    """Read a menu TOML file (a list of [[chain]] tables); errors name the file and key."""
    data = read_toml(Path(path))
    unknown = set(data) - {"chain"}
    if unknown:
        raise ConfigError(f"{path}: unknown key '{sorted(unknown)[0]}' (a menu holds only [[chain]] tables)")
    tables = data.get("chain", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{path}: 'chain' must be an array of tables: write [[chain]], not [chain]")
    if not tables:
        raise ConfigError(f"{path}: the menu has no [[chain]]")
    chains = tuple(from_mapping(Chain, t, str(path), f"chain[{i}].") for i, t in enumerate(tables))
    names = [c.name for c in chains]
    if len(set(names)) != len(names):
        raise ConfigError(f"{path}: chain names must be unique")
    return Menu(chains)


def prescale_keeps(l1_id: int, chain: Chain) -> bool:
    """Keep one event in `prescale`, chosen by a hash of (L1 id, chain name)."""
    if chain.prescale == 1:
        return True
    x = (l1_id * 0x9E3779B97F4A7C15 + zlib.crc32(chain.name.encode())) & 0xFFFFFFFFFFFFFFFF
    x ^= x >> 31
    x = (x * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x ^= x >> 27
    return x % chain.prescale == 0


def missing_et_gev(em_gev: np.ndarray, had_gev: np.ndarray, eta_centers: np.ndarray, phi_centers: np.ndarray) -> float:
    """Magnitude of the vector sum of tower ET, (em + had) / cosh(eta), over the (n_eta, n_phi) grid."""
    et_gev = (em_gev.astype(np.float64) + had_gev) / np.cosh(np.asarray(eta_centers, np.float64))[:, None]
    return float(np.hypot((et_gev @ np.cos(phi_centers)).sum(), (et_gev @ np.sin(phi_centers)).sum()))


def passes(chain: Chain, o: TriggerObjects) -> bool:
    """Whether the event passes the chain's selection (before its prescale)."""
    if chain.selection == "all":
        return True
    if chain.selection == "met":
        if o.met_gev is None:
            raise ValueError(f"chain {chain.name}: a met selection needs the event's missing ET")
        return o.met_gev >= chain.min_met_gev
    if chain.selection == "tracks":
        return int((o.tracks[:, TRACK_PT] > chain.min_pt_gev).sum()) >= chain.min_count if len(o.tracks) else False
    if chain.selection == "electron":
        if len(o.clusters) == 0:
            return False
        # in float64: numpy 1 compares a float32 array with a Python float in float32, which
        # rounds the threshold (a cluster just above it would fail)
        et = o.clusters[:, CLUSTER_ET].astype(np.float64)
        ok = (et > chain.min_pt_gev) & (o.cluster_track_pt_gev > chain.min_track_pt_gev)
        with np.errstate(divide="ignore", invalid="ignore"):
            ok &= o.clusters[:, CLUSTER_HAD_ET] <= chain.max_had_fraction * et
            ok &= o.clusters[:, CLUSTER_ISO_ET] <= chain.max_iso_fraction * et
        return int(ok.sum()) >= chain.min_count
    jets = o.jets if chain.min_score > 0 or o.subtracted_jets is None else o.subtracted_jets
    pt = jets[:, JET_PT] if len(jets) else np.empty(0)
    above = pt > chain.min_pt_gev
    if chain.selection == "ht":
        return float(pt[above].sum()) >= chain.min_ht_gev
    if chain.selection == "em" and len(jets):
        above &= jets[:, JET_EM_FRACTION] >= chain.min_em_fraction
    if chain.min_score > 0:
        above &= o.jet_scores.reshape(-1) >= chain.min_score
    return int(above.sum()) >= chain.min_count


def decide(menu: Menu, l1_id: int, objects: TriggerObjects | np.ndarray, scores: np.ndarray | None = None,
           met_gev: float | None = None) -> Decision:
    """Run every chain on the event's trigger objects (or, for calorimeter-only chains, just
    its jets, tagger scores and missing ET)."""
    if not isinstance(objects, TriggerObjects):
        jets = objects
        objects = TriggerObjects(jets, np.zeros((len(jets), 1), np.float32) if scores is None else scores, met_gev)
    passed = tuple(c.name for c in menu.chains if passes(c, objects) and prescale_keeps(l1_id, c))
    by_name = {c.name: c for c in menu.chains}
    streams = tuple(dict.fromkeys(s for name in passed for s in by_name[name].streams))
    return Decision(passed, streams)
