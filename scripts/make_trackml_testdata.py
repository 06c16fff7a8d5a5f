"""Write a small sample in the TrackML CSV format from trigger-sim's own simulation, for the tests.

This is NOT real TrackML data: no TrackML data is available offline, so the importer is
tested on events simulated by `trigger_sim.simulation.simulate`, written in the TrackML
format (hits, cells, particles, truth; one set of files per event):

- barrel hits: each simulated hit on layer i gets the (volume_id, layer_id) of the i-th
  TrackML barrel layer, x, y from its phi and a radius moved by up to +-1.5 mm (TrackML
  modules are flat, not cylinders), z as simulated; module ids from trigger-sim's module
  grid (20 mm in r-phi by 100 mm in z, numbered from 1);
- endcap hits: a few forward particles' crossings of TrackML endcap disks (volumes 7, 9,
  12, 14, 16, 18), which the importer must drop;
- cells: 1 to 4 per hit, channels near the hit's position on its module, charges drawn
  from a gamma distribution;
- particles: every charged simulated particle (vertex on the beam line, momentum from
  pT, eta, phi), ids large like TrackML's (above 2**53, so a float64 would round them);
- truth: each hit's particle (0 for noise hits), its position, the particle's momentum
  direction at the hit, and weights summing to 1 per event.

A detector unlike the one the edge classifier was trained on, for checking how it generalises
and for fine-tuning it (`scripts/train_edge_classifier.py --recording`): `--smear-rphi-mm` and
`--smear-z-mm` move every hit by a further Gaussian error (a coarser resolution, misalignment),
`--extra-noise-hits` adds that many noise hits per barrel layer and event (uniform in phi and z,
particle_id 0). Without them the files are those of the simulation as configured.

    .venv/bin/python scripts/make_trackml_testdata.py [-o DIR] [--events 3] [--pileup 2] [--seed N] [--no-gzip]
        [--first-event N] [--smear-rphi-mm S] [--smear-z-mm S] [--extra-noise-hits N]

Same arguments, same files (fixed seeds, gzip without timestamps).
"""

from __future__ import annotations

import argparse
import gzip
import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from trigger_sim.config import FarmConfig, with_overrides  # noqa: E402
from trigger_sim.detector import NOISE_PARTICLE, TrackerHits, curvature_radius_mm  # noqa: E402
from trigger_sim.simulation import SimulatedEvent, simulate  # noqa: E402

DEFAULT_OUTPUT = REPO_ROOT / "tests" / "data" / "trackml"
DEFAULT_SEED = 20180501
FIRST_EVENT_ID = 1000  # the TrackML training sample starts at event 1000
PARTICLE_ID_BASE = 2**54  # TrackML particle ids are large 64-bit numbers
# The TrackML barrel layers (volume_id, layer_id), innermost first: layer i of this tracker.
BARREL = ((8, 2), (8, 4), (8, 6), (8, 8), (13, 2), (13, 4), (13, 6), (13, 8), (17, 2), (17, 4))
# Endcap disks: volume (negative z, positive z), layer ids, |z| of each disk (mm), radius range (mm).
ENDCAPS = (
    ((7, 9), (2, 4, 6, 8, 10, 12, 14), (600.0, 700.0, 820.0, 960.0, 1100.0, 1300.0, 1500.0), (30.0, 175.0)),
    ((12, 14), (2, 4, 6, 8, 10, 12), (1300.0, 1550.0, 1800.0, 2150.0, 2550.0, 2950.0), (230.0, 680.0)),
    ((16, 18), (2, 4, 6, 8, 10, 12), (1300.0, 1550.0, 1800.0, 2150.0, 2550.0, 2950.0), (720.0, 1020.0)),
)
ENDCAP_HITS_PER_EVENT = 24
PIXEL_VOLUMES = (7, 8, 9)


@dataclass(frozen=True)
class SampleEvent:
    """What was written for one event: the simulation, and the hit_id of each simulated hit."""

    event_id: int
    sim: SimulatedEvent
    barrel_hit_id: np.ndarray  # hit_id of sim.hits[i]
    n_endcap_hits: dict[int, int]  # per endcap volume


def _endcap_hits(sim: SimulatedEvent, field_t: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Crossings of TrackML endcap disks by forward charged particles (a random few of them)."""
    p = sim.truth.particles
    rows: list[tuple[int, int, int, float, float, float, float]] = []
    for i in np.flatnonzero((p.charge != 0) & (np.abs(p.eta) > 1.0)):
        radius = float(curvature_radius_mm(p.pt_gev[i], field_t))
        sign = 1 if p.eta[i] > 0 else -1
        for volumes, layers, disks_z, (r_min, r_max) in ENDCAPS:
            for layer, z_abs in zip(layers, disks_z):
                s = (sign * z_abs - p.vz_mm[i]) / np.sinh(p.eta[i])  # transverse path to the disk
                if not 0 < s < np.pi * radius:
                    continue
                r = 2 * radius * np.sin(s / (2 * radius))
                if r_min <= r <= r_max:
                    turn = s / (2 * radius)
                    rows.append((i, volumes[sign > 0], layer, r, float(p.phi[i] - p.charge[i] * turn), sign * z_abs, turn))
    chosen = sorted(rng.choice(len(rows), size=min(ENDCAP_HITS_PER_EVENT, len(rows)), replace=False)) if rows else []
    picked = [rows[k] for k in chosen]
    columns = list(zip(*picked)) if picked else [[]] * 7
    names = ("particle", "volume", "layer", "r", "phi", "z", "turn")
    return {n: np.asarray(c, dtype=np.float64 if n in ("r", "phi", "z", "turn") else np.int64) for n, c in zip(names, columns)}


def _module_id(r: np.ndarray, phi: np.ndarray, z: np.ndarray, config: FarmConfig) -> np.ndarray:
    """Module numbers on trigger-sim's grid (r-phi columns by z rows), from 1 as in TrackML."""
    t = config.tracker
    per_ring = np.ceil(2 * np.pi * r / t.module_width_mm).astype(np.int64)
    iphi = np.floor((phi + np.pi) * r / t.module_width_mm).astype(np.int64)
    iz = np.floor((z + t.half_length_mm) / t.module_length_mm).astype(np.int64)
    return 1 + np.clip(iz, 0, None) * per_ring + np.clip(iphi, 0, per_ring - 1)


def _table(header: str, rows: list[str]) -> bytes:
    return ("\n".join([header, *rows]) + "\n").encode()


def _write(directory: Path, name: str, data: bytes, use_gzip: bool) -> None:
    if use_gzip:
        (directory / f"{name}.gz").write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    else:
        (directory / name).write_bytes(data)


def write_event(directory: Path, event_id: int, sim: SimulatedEvent, config: FarmConfig,
                rng: np.random.Generator, use_gzip: bool = True) -> SampleEvent:
    """Write the four TrackML files of one simulated event; returns what was written."""
    hits, p = sim.hits, sim.truth.particles
    radii = np.asarray(config.tracker.layer_radii_mm)
    endcap = _endcap_hits(sim, config.tracker.field_t, rng)
    n_barrel, n_endcap = len(hits.layer), len(endcap["r"])
    barrel_r = radii[hits.layer] + rng.uniform(-1.5, 1.5, n_barrel)
    volume = np.concatenate([[BARREL[i][0] for i in hits.layer], endcap["volume"]]).astype(np.int64)
    layer_id = np.concatenate([[BARREL[i][1] for i in hits.layer], endcap["layer"]]).astype(np.int64)
    r = np.concatenate([barrel_r, endcap["r"]])
    phi = np.concatenate([hits.phi.astype(np.float64), endcap["phi"]])
    z = np.concatenate([hits.z_mm.astype(np.float64), endcap["z"]])
    particle = np.concatenate([hits.particle, endcap["particle"]]).astype(np.int64)
    x, y = r * np.cos(phi), r * np.sin(phi)
    module = _module_id(r, phi, z, config)
    order = np.lexsort((module, layer_id, volume))  # TrackML files list hits by volume, layer, module
    hit_id = np.empty(len(order), dtype=np.int64)
    hit_id[order] = np.arange(1, len(order) + 1)

    charged = np.flatnonzero(p.charge != 0)
    pid_of = {int(k): PARTICLE_ID_BASE + int(k) for k in charged}
    lines = [f"{hit_id[k]},{x[k]:.4f},{y[k]:.4f},{z[k]:.4f},{volume[k]},{layer_id[k]},{module[k]}" for k in order]
    name = f"event{event_id:09d}"
    _write(directory, f"{name}-hits.csv", _table("hit_id,x,y,z,volume_id,layer_id,module_id", lines), use_gzip)

    cells = []
    for k in order:
        n = 1 + min(int(rng.poisson(1.0 if volume[k] in PIXEL_VOLUMES else 0.5)), 3)
        ch0 = int(abs(x[k] * 20)) % 1000 + np.arange(n)
        ch1 = int(abs(z[k] * 20)) % 1000 if volume[k] in PIXEL_VOLUMES else 0
        cells += [f"{hit_id[k]},{c},{ch1},{v:.6f}" for c, v in zip(ch0, rng.gamma(2.0, 0.05, n))]
    _write(directory, f"{name}-cells.csv", _table("hit_id,ch0,ch1,value", cells), use_gzip)

    nhits = np.bincount(particle[particle != NOISE_PARTICLE], minlength=len(p))
    plines = []
    for k in charged:
        px, py, pz = p.pt_gev[k] * np.cos(p.phi[k]), p.pt_gev[k] * np.sin(p.phi[k]), p.pt_gev[k] * np.sinh(p.eta[k])
        plines.append(f"{pid_of[int(k)]},0,0,{p.vz_mm[k]:.4f},{px:.6g},{py:.6g},{pz:.6g},{p.charge[k]},{nhits[k]}")
    _write(directory, f"{name}-particles.csv",
           _table("particle_id,vx,vy,vz,px,py,pz,q,nhits", plines), use_gzip)

    # Momentum direction at the hit: turned by twice the angle the position turned (a helix from the beam line).
    field_t = config.tracker.field_t
    real = particle != NOISE_PARTICLE
    safe = np.where(real, particle, 0)
    pt, charge = p.pt_gev[safe], p.charge[safe]
    barrel_turn = np.arcsin(np.minimum(radii[hits.layer] / (2 * curvature_radius_mm(pt[:n_barrel], field_t)), 1.0))
    turn = np.concatenate([barrel_turn, endcap["turn"]])
    phi_dir = p.phi[safe] - 2 * charge * turn
    weight = np.where(real, 1.0 / max(int(real.sum()), 1), 0.0)
    tlines = []
    for k in order:
        pid = pid_of[int(particle[k])] if real[k] else 0
        tp = (pt[k] * np.cos(phi_dir[k]), pt[k] * np.sin(phi_dir[k]), pt[k] * np.sinh(p.eta[safe[k]])) if real[k] else (0, 0, 0)
        tlines.append(f"{hit_id[k]},{pid},{x[k]:.4f},{y[k]:.4f},{z[k]:.4f},{tp[0]:.6g},{tp[1]:.6g},{tp[2]:.6g},{weight[k]:.6g}")
    _write(directory, f"{name}-truth.csv",
           _table("hit_id,particle_id,tx,ty,tz,tpx,tpy,tpz,weight", tlines), use_gzip)

    per_volume = {v: int(np.count_nonzero(endcap["volume"] == v)) for pair, *_ in ENDCAPS for v in pair}
    return SampleEvent(event_id, sim, hit_id[:n_barrel], per_volume)


@dataclass(frozen=True)
class Distortion:
    """How the written detector differs from the simulated one (all zero: not at all)."""

    smear_rphi_mm: float = 0.0  # further Gaussian error of each hit along r-phi
    smear_z_mm: float = 0.0  # ... and along z
    extra_noise_hits: int = 0  # noise hits added per barrel layer and event

    def __post_init__(self) -> None:
        if self.smear_rphi_mm < 0 or self.smear_z_mm < 0 or self.extra_noise_hits < 0:
            raise ValueError(f"distortion values must be >= 0, got {self}")


def distort(hits: TrackerHits, config: FarmConfig, d: Distortion, rng: np.random.Generator) -> TrackerHits:
    """`hits` smeared and with extra noise hits appended (particle NOISE_PARTICLE), per `d`."""
    t = config.tracker
    radii = np.asarray(t.layer_radii_mm, np.float64)
    n_layers = len(radii)
    noise_layer = np.repeat(np.arange(n_layers), d.extra_noise_hits)
    layer = np.concatenate([hits.layer, noise_layer]).astype(np.int32)
    r = radii[layer]
    phi = np.concatenate([hits.phi.astype(np.float64) + rng.normal(0.0, d.smear_rphi_mm, len(hits.layer)) / r[:len(hits.layer)],
                          rng.uniform(-np.pi, np.pi, len(noise_layer))])
    z = np.concatenate([hits.z_mm.astype(np.float64) + rng.normal(0.0, d.smear_z_mm, len(hits.layer)),
                        rng.uniform(-t.half_length_mm, t.half_length_mm, len(noise_layer))])
    phi = np.mod(phi + np.pi, 2 * np.pi) - np.pi
    z = np.clip(z, -t.half_length_mm + 1e-3, t.half_length_mm - 1e-3)
    particle = np.concatenate([hits.particle, np.full(len(noise_layer), NOISE_PARTICLE)]).astype(np.int32)
    return TrackerHits(layer, r.astype(np.float32), phi.astype(np.float32), z.astype(np.float32), particle)


def make_sample(directory: Path, n_events: int = 3, pileup: float = 2.0, seed: int = DEFAULT_SEED,
                use_gzip: bool = True, first_event: int = FIRST_EVENT_ID,
                distortion: Distortion = Distortion()) -> list[SampleEvent]:
    """Simulate `n_events` events (Level-1 ids 0..n-1) and write them as TrackML events
    first_event, first_event + 1, ..., the detector changed by `distortion` if it is not all zero."""
    config = with_overrides(FarmConfig(), physics={"pileup_mean": pileup}, run={"seed": seed})
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for l1_id in range(n_events):
        rng = np.random.default_rng([seed, l1_id, 7])
        sim = simulate(config, l1_id)
        if distortion != Distortion():
            sim = replace(sim, hits=distort(sim.hits, config, distortion, np.random.default_rng([seed, l1_id, 11])))
        written.append(write_event(directory, first_event + l1_id, sim, config, rng, use_gzip))
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT, help=f"directory (default {DEFAULT_OUTPUT})")
    parser.add_argument("--events", type=int, default=3, help="events to write (default 3)")
    parser.add_argument("--pileup", type=float, default=2.0, help="mean pile-up collisions (default 2)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help=f"run seed (default {DEFAULT_SEED})")
    parser.add_argument("--no-gzip", action="store_true", help="write .csv instead of .csv.gz")
    parser.add_argument("--first-event", type=int, default=FIRST_EVENT_ID, help=f"first event id (default {FIRST_EVENT_ID})")
    parser.add_argument("--smear-rphi-mm", type=float, default=0.0, help="further Gaussian hit error along r-phi (mm)")
    parser.add_argument("--smear-z-mm", type=float, default=0.0, help="further Gaussian hit error along z (mm)")
    parser.add_argument("--extra-noise-hits", type=int, default=0, help="noise hits added per barrel layer and event")
    args = parser.parse_args(argv)
    if args.events < 1:
        parser.error("--events must be at least 1")
    try:
        distortion = Distortion(args.smear_rphi_mm, args.smear_z_mm, args.extra_noise_hits)
    except ValueError as err:
        parser.error(str(err))
    for event in make_sample(args.output, args.events, args.pileup, args.seed, not args.no_gzip, args.first_event, distortion):
        print(f"event {event.event_id}: {len(event.barrel_hit_id)} barrel hits, "
              f"{sum(event.n_endcap_hits.values())} endcap hits {event.n_endcap_hits}")
    total = sum(f.stat().st_size for f in args.output.glob("event*"))
    print(f"{args.output}: {total} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
