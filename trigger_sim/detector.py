"""Detector simulation: a barrel silicon tracker in a solenoid and an eta-phi calorimeter.

Charged particles leave helix hits on each barrel layer they cross (smeared, with
inefficiency and noise hits); all particles that reach the calorimeter deposit their
energy where they hit, split between the electromagnetic and hadronic compartments by
particle kind, with stochastic resolution, electronic noise and zero suppression.

The calorimeter is non-compensating: a hadron's visible energy is `had_response` times an
electron's of the same energy. Electromagnetic deposits spread laterally: a particle hitting
near a tower edge shares part of its EM energy with the nearest neighbour in eta and in phi.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trigger_sim.config import CaloConfig, TrackerConfig
from trigger_sim.physics import CHARGED_HADRON, ELECTRON, NEUTRAL_HADRON, PHOTON, Particles

CALO_RADIUS_MM = 1300.0
NOISE_PARTICLE = -1  # truth index of noise hits


@dataclass(frozen=True)
class TrackerHits:
    """Global hit positions (what the readout digitises), with truth particle index."""

    layer: np.ndarray  # int32
    r_mm: np.ndarray  # float32
    phi: np.ndarray  # float32, (-pi, pi]
    z_mm: np.ndarray  # float32
    particle: np.ndarray  # int32, NOISE_PARTICLE for noise


@dataclass(frozen=True)
class CaloTowers:
    """Dense tower grid after noise and zero suppression (zeros where suppressed)."""

    em_gev: np.ndarray  # float32 (n_eta, n_phi)
    had_gev: np.ndarray


def curvature_radius_mm(pt_gev: np.ndarray, field_t: float) -> np.ndarray:
    """Transverse radius of curvature of a unit-charge track: R[m] = pT / (0.3 B)."""
    return pt_gev / (0.3 * field_t) * 1000.0


def wrap_phi(phi: np.ndarray) -> np.ndarray:
    """Wrap angles into (-pi, pi]."""
    return np.pi - np.mod(np.pi - phi, 2 * np.pi)


def tower_centers(cfg: CaloConfig) -> tuple[np.ndarray, np.ndarray]:
    """Eta and phi of tower centres."""
    eta_edges = np.linspace(-cfg.eta_max, cfg.eta_max, cfg.n_eta + 1)
    phi_edges = np.linspace(-np.pi, np.pi, cfg.n_phi + 1)
    return 0.5 * (eta_edges[1:] + eta_edges[:-1]), 0.5 * (phi_edges[1:] + phi_edges[:-1])


def simulate_tracker(p: Particles, cfg: TrackerConfig, rng: np.random.Generator) -> TrackerHits:
    """Hits of charged particles on every barrel layer they reach, plus noise hits."""
    charged = np.flatnonzero(p.charge != 0)
    radii = np.asarray(cfg.layer_radii_mm)
    n_layers = len(radii)
    R = curvature_radius_mm(p.pt_gev[charged], cfg.field_t)[:, None]  # (n, 1)
    r = radii[None, :]  # (1, L)
    reach = r < 2 * R
    ratio = np.where(reach, r / (2 * R), 0.0)
    turn = np.arcsin(ratio)
    phi = p.phi[charged, None] - p.charge[charged, None] * turn
    s = 2 * R * turn  # transverse path length
    z = p.vz_mm[charged, None] + s * np.sinh(p.eta[charged, None])
    ok = reach & (np.abs(z) < cfg.half_length_mm) & (rng.random(reach.shape) < cfg.efficiency)
    idx_particle, idx_layer = np.nonzero(ok)
    r_hit = radii[idx_layer]
    phi_hit = phi[idx_particle, idx_layer] + rng.normal(0, cfg.resolution_rphi_mm, size=len(idx_layer)) / r_hit
    z_hit = z[idx_particle, idx_layer] + rng.normal(0, cfg.resolution_z_mm, size=len(idx_layer))
    n_noise = rng.poisson(cfg.noise_hits_per_layer, size=n_layers)
    noise_layer = np.repeat(np.arange(n_layers), n_noise)
    layer = np.concatenate([idx_layer, noise_layer]).astype(np.int32)
    return TrackerHits(
        layer=layer,
        r_mm=radii[layer].astype(np.float32),
        phi=wrap_phi(np.concatenate([phi_hit, rng.uniform(-np.pi, np.pi, size=len(noise_layer))])).astype(np.float32),
        z_mm=np.concatenate([z_hit, rng.uniform(-cfg.half_length_mm, cfg.half_length_mm, size=len(noise_layer))]).astype(np.float32),
        particle=np.concatenate([charged[idx_particle], np.full(len(noise_layer), NOISE_PARTICLE)]).astype(np.int32),
    )


def em_lateral_shares(position: np.ndarray, tower_width: float, shower_width: float) -> np.ndarray:
    """Fraction of an EM shower leaking into the nearest neighbouring tower along one axis.

    position: where the shower axis hits, in units of the tower width from its lower edge, in
    [0, 1). A shower with an exponential lateral profile of scale `shower_width` (same units
    as `tower_width`) puts 0.5 * exp(-d / shower_width) beyond a boundary at distance d.
    """
    if shower_width <= 0:
        return np.zeros_like(position)
    distance = np.minimum(position, 1.0 - position) * tower_width
    with np.errstate(over="ignore"):  # a very narrow shower: exp(-inf) = 0, no leak
        return 0.5 * np.exp(-distance / shower_width)


def simulate_calo(p: Particles, cfg: CaloConfig, field_t: float, rng: np.random.Generator) -> CaloTowers:
    """Tower energies: deposit (with lateral EM spread), hadron response, resolution, noise, zero suppression."""
    R = curvature_radius_mm(p.pt_gev, field_t)
    reaches = (p.charge == 0) | (2 * R > CALO_RADIUS_MM)
    bend = np.where(p.charge != 0, np.arcsin(np.minimum(CALO_RADIUS_MM / (2 * R), 1.0)), 0.0)
    phi = wrap_phi(p.phi - p.charge * bend)
    inside = reaches & (np.abs(p.eta) < cfg.eta_max)
    energy = p.pt_gev * np.cosh(p.eta)
    is_em = (p.kind == PHOTON) | (p.kind == ELECTRON)
    is_had = (p.kind == CHARGED_HADRON) | (p.kind == NEUTRAL_HADRON)
    em_share = np.where(is_em, 1.0, np.where(is_had, cfg.had_em_fraction, 0.0))
    visible = energy * np.where(is_had, cfg.had_response, 1.0)
    # Position in tower units; the integer part is the tower, the rest where inside it.
    u_eta = (p.eta + cfg.eta_max) / (2 * cfg.eta_max) * cfg.n_eta
    u_phi = (phi + np.pi) / (2 * np.pi) * cfg.n_phi
    ieta = np.clip(u_eta.astype(np.int64), 0, cfg.n_eta - 1)
    iphi = np.clip(u_phi.astype(np.int64), 0, cfg.n_phi - 1)
    size = cfg.n_eta * cfg.n_phi
    em_dep = (visible * em_share)[inside]
    had_true = np.bincount((ieta * cfg.n_phi + iphi)[inside], weights=(visible * (1 - em_share))[inside], minlength=size)
    # Lateral EM spread: factorised shares to the nearest neighbour in eta (none beyond the
    # grid's edge) and in phi (wrapping), and to the diagonal one between them.
    f_eta = np.clip(u_eta - ieta, 0.0, 1.0)[inside]
    f_phi = np.clip(u_phi - iphi, 0.0, 1.0)[inside]
    ie, ip = ieta[inside], iphi[inside]
    leak_eta = em_lateral_shares(f_eta, 2 * cfg.eta_max / cfg.n_eta, cfg.em_shower_width)
    leak_phi = em_lateral_shares(f_phi, 2 * np.pi / cfg.n_phi, cfg.em_shower_width)
    ie_nb = ie + np.where(f_eta < 0.5, -1, 1)
    leak_eta = np.where((ie_nb >= 0) & (ie_nb < cfg.n_eta), leak_eta, 0.0)
    ie_nb = np.clip(ie_nb, 0, cfg.n_eta - 1)
    ip_nb = (ip + np.where(f_phi < 0.5, -1, 1)) % cfg.n_phi
    em_true = np.zeros(size)
    for rows, cols, share in (
        (ie, ip, (1 - leak_eta) * (1 - leak_phi)),
        (ie_nb, ip, leak_eta * (1 - leak_phi)),
        (ie, ip_nb, (1 - leak_eta) * leak_phi),
        (ie_nb, ip_nb, leak_eta * leak_phi),
    ):
        em_true += np.bincount(rows * cfg.n_phi + cols, weights=em_dep * share, minlength=size)
    em = em_true + rng.normal(size=size) * np.sqrt(cfg.em_stochastic**2 * em_true + cfg.em_noise_gev**2)
    had = had_true + rng.normal(size=size) * np.sqrt(cfg.had_stochastic**2 * had_true + cfg.had_noise_gev**2)
    keep = (em + had) > cfg.zero_suppression_gev
    em = np.where(keep, np.maximum(em, 0.0), 0.0)
    had = np.where(keep, np.maximum(had, 0.0), 0.0)
    shape = (cfg.n_eta, cfg.n_phi)
    return CaloTowers(em.reshape(shape).astype(np.float32), had.reshape(shape).astype(np.float32))
