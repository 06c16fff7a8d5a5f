"""Event generation: pile-up minimum-bias collisions plus a hard dijet signal.

A deliberately simple, fast generator (no parton shower): enough to give a tracker and a
calorimeter realistic occupancy, and jets whose response a trigger menu can select on.
Every event is reproducible from (seed, Level-1 id) alone, whichever process makes it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trigger_sim.config import PhysicsConfig

# Particle kinds.
CHARGED_HADRON = 0
PHOTON = 1
NEUTRAL_HADRON = 2
ELECTRON = 3

# Particle origin: 0 is pile-up, 1 and 2 are the two hard-scatter jets.
ORIGIN_PILEUP = 0

ETA_MAX_GENERATED = 3.0


@dataclass(frozen=True)
class Particles:
    """Final-state particles of one bunch crossing, as parallel arrays."""

    pt_gev: np.ndarray
    eta: np.ndarray
    phi: np.ndarray
    charge: np.ndarray  # -1, 0, +1
    kind: np.ndarray
    vz_mm: np.ndarray
    origin: np.ndarray

    def __len__(self) -> int:
        return len(self.pt_gev)


@dataclass(frozen=True)
class GeneratedEvent:
    """Particles plus the truth a trigger is judged against."""

    particles: Particles
    n_pileup: int
    is_signal: bool
    parton_pt_gev: np.ndarray  # (0,) or (2,): the dijet partons
    parton_eta: np.ndarray
    parton_phi: np.ndarray
    primary_vz_mm: float


def event_rng(seed: int, l1_id: int) -> np.random.Generator:
    """The random stream of one event: independent of every other event's."""
    return np.random.default_rng([seed, l1_id])


def _minimum_bias(rng: np.random.Generator, n_collisions: int, vz_mm: np.ndarray, cfg: PhysicsConfig) -> dict:
    mean_charged = cfg.minbias_charged_per_eta * 2 * ETA_MAX_GENERATED
    n_charged = rng.poisson(mean_charged, size=n_collisions)
    n_neutral = rng.poisson(0.6 * mean_charged, size=n_collisions)  # photons from pi0 decays
    counts = n_charged + n_neutral
    n = int(counts.sum())
    collision = np.repeat(np.arange(n_collisions), counts)
    first = np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64)
    index_in_collision = np.arange(n) - np.repeat(first, counts)
    charged = index_in_collision < np.repeat(n_charged, counts)
    pt = 0.1 + rng.exponential(0.45, size=n)  # soft spectrum, mean ~0.55 GeV
    return dict(
        pt_gev=pt,
        eta=rng.uniform(-ETA_MAX_GENERATED, ETA_MAX_GENERATED, size=n),
        phi=rng.uniform(-np.pi, np.pi, size=n),
        charge=np.where(charged, rng.choice(np.array([-1, 1]), size=n), 0),
        kind=np.where(charged, CHARGED_HADRON, PHOTON),
        vz_mm=vz_mm[collision],
        origin=np.full(n, ORIGIN_PILEUP),
    )


def _jet(rng: np.random.Generator, pt_gev: float, eta: float, phi: float, vz_mm: float, origin: int) -> dict:
    """Fragment a parton into constituents collimated around its direction."""
    n = max(2, int(rng.poisson(4.0 + 2.5 * np.log(pt_gev))))
    z = rng.dirichlet(np.full(n, 0.6))
    spread = rng.exponential(0.06, size=n) + 0.005
    angle = rng.uniform(0, 2 * np.pi, size=n)
    kinds = rng.choice(np.array([CHARGED_HADRON, PHOTON, NEUTRAL_HADRON]), size=n, p=[0.62, 0.26, 0.12])
    charge = np.where(kinds == CHARGED_HADRON, rng.choice(np.array([-1, 1]), size=n), 0)
    return dict(
        pt_gev=pt_gev * z,
        eta=eta + spread * np.cos(angle),
        phi=np.angle(np.exp(1j * (phi + spread * np.sin(angle)))),
        charge=charge,
        kind=kinds,
        vz_mm=np.full(n, vz_mm),
        origin=np.full(n, origin),
    )


def generate_event(cfg: PhysicsConfig, seed: int, l1_id: int) -> GeneratedEvent:
    """Generate the bunch crossing of Level-1 id `l1_id`: pile-up, and a dijet in a fraction."""
    rng = event_rng(seed, l1_id)
    is_signal = bool(rng.random() < cfg.signal_fraction)
    n_pileup = int(rng.poisson(cfg.pileup_mean))
    n_collisions = n_pileup + 1  # the triggering collision itself plus pile-up
    vz = rng.normal(0.0, cfg.vertex_sigma_z_mm, size=n_collisions)
    parts = [_minimum_bias(rng, n_collisions, vz, cfg)]
    parton_pt = parton_eta = parton_phi = np.empty(0)
    if is_signal:
        # Power-law spectrum above the minimum: inverse-CDF sampling.
        u = rng.random()
        pt = cfg.dijet_min_pt_gev * (1 - u) ** (-1.0 / (cfg.dijet_spectrum_index - 1))
        pt = min(pt, 2000.0)
        balance = rng.normal(1.0, 0.08)
        eta1, eta2 = rng.uniform(-2.2, 2.2, size=2)
        phi1 = rng.uniform(-np.pi, np.pi)
        phi2 = np.angle(np.exp(1j * (phi1 + np.pi + rng.normal(0, 0.15))))
        parton_pt = np.array([pt, pt * balance])
        parton_eta = np.array([eta1, eta2])
        parton_phi = np.array([phi1, phi2])
        for k in range(2):
            parts.append(_jet(rng, parton_pt[k], parton_eta[k], parton_phi[k], vz[0], origin=k + 1))
    merged = {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}
    particles = Particles(
        pt_gev=merged["pt_gev"].astype(np.float64),
        eta=merged["eta"].astype(np.float64),
        phi=merged["phi"].astype(np.float64),
        charge=merged["charge"].astype(np.int8),
        kind=merged["kind"].astype(np.int8),
        vz_mm=merged["vz_mm"].astype(np.float64),
        origin=merged["origin"].astype(np.int8),
    )
    return GeneratedEvent(particles, n_pileup, is_signal, parton_pt, parton_eta, parton_phi, float(vz[0]))
