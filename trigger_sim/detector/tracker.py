"""Barrel silicon tracker in a solenoid: helix hits on each layer a charged particle crosses,
smeared, with inefficiency and noise hits.

`simulate_tracker` runs its per-hit work in numba kernels and is bit for bit (and random draw
for random draw) its plain-numpy twin `simulate_tracker_reference`; arcsin and sinh stay numpy
calls, whose results can differ from numba's in the last bit.
"""

from __future__ import annotations

import functools

import numpy as np

from trigger_sim.config import TrackerConfig
from trigger_sim.detector.geometry import (
    NOISE_PARTICLE,
    TrackerHits,
    _uses_kernels,
    _wrap_phi_scalar,
    curvature_radius_mm,
    wrap_phi,
)
from trigger_sim.kernels._jit import njit
from trigger_sim.physics import (
    Particles,
)


def _layer_constants(radii_mm: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Layer radii (as given and as float32) and layer numbers of one tracker geometry.

    Computed once per geometry and cached: every event of a run uses the same layers. The
    arrays are read-only because they are shared between events.
    """
    return _cached_layer_constants(tuple(radii_mm))


@functools.lru_cache(maxsize=16)
def _cached_layer_constants(radii_mm: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    radii = np.asarray(radii_mm)
    constants = (radii, radii.astype(np.float32), np.arange(len(radii)))
    for array in constants:
        array.flags.writeable = False
    return constants


def simulate_tracker(p: Particles, cfg: TrackerConfig, rng: np.random.Generator) -> TrackerHits:
    """Hits of charged particles on every barrel layer they reach, plus noise hits.

    Bit for bit and draw for draw the same as `simulate_tracker_reference`: numpy takes the
    crossing angles (arcsin, sinh) and the random draws, compiled kernels the per-hit work.
    """
    if not _uses_kernels(p):
        return simulate_tracker_reference(p, cfg, rng)
    radii, radii_f32, _ = _layer_constants(cfg.layer_radii_mm)
    radii = radii.astype(np.float64, copy=False)  # integer radii: the same values as numpy's promotion
    n_layers = len(radii)
    charged = np.flatnonzero(p.charge != 0)
    two_r_mm = 2 * curvature_radius_mm(p.pt_gev[charged], cfg.field_t)  # the helix diameter
    turn = np.arcsin(_crossing_sine_kernel(two_r_mm, radii))  # (n, L)
    efficiency_draw = rng.random(turn.shape)
    particle, layer, phi_track, z_track = _tracker_hits_kernel(
        charged, two_r_mm, turn, np.sinh(p.eta[charged]), p.vz_mm[charged], p.phi[charged],
        p.charge[charged].astype(np.float64), radii, float(cfg.half_length_mm), float(cfg.efficiency), efficiency_draw,
    )
    smear_rphi_mm = rng.normal(0, cfg.resolution_rphi_mm, size=len(particle))
    smear_z_mm = rng.normal(0, cfg.resolution_z_mm, size=len(particle))
    n_noise = rng.poisson(cfg.noise_hits_per_layer, size=n_layers)
    n_noise_hits = int(n_noise.sum())
    noise_phi = rng.uniform(-np.pi, np.pi, size=n_noise_hits)
    noise_z_mm = rng.uniform(-cfg.half_length_mm, cfg.half_length_mm, size=n_noise_hits)
    return TrackerHits(*_tracker_assemble_kernel(
        particle, layer, phi_track, z_track, smear_rphi_mm, smear_z_mm, n_noise, noise_phi, noise_z_mm, radii, radii_f32,
    ))


@njit(error_model="numpy")
def _crossing_sine_kernel(two_r_mm, radii_mm):
    """(n, L) sine of the turning angle at each layer, r / 2R, where the helix reaches the layer
    (r < 2R); 0 elsewhere (never used there, and it keeps arcsin quiet)."""
    ratio = np.zeros((len(two_r_mm), len(radii_mm)))
    for i in range(len(two_r_mm)):
        for k in range(len(radii_mm)):
            if radii_mm[k] < two_r_mm[i]:
                ratio[i, k] = radii_mm[k] / two_r_mm[i]
    return ratio


@njit(error_model="numpy")
def _tracker_hits_kernel(charged, two_r_mm, turn, sinh_eta, vz_mm, phi, charge, radii_mm, half_length_mm, efficiency, efficiency_draw):
    """Particle-major list of hits before smearing: (particle, layer, phi, z) of every layer
    crossing that is reached, inside the barrel and efficient (the tracker reference's order)."""
    n, n_layers = turn.shape
    particle = np.empty(n * n_layers, np.int64)
    layer = np.empty(n * n_layers, np.int64)
    phi_track = np.empty(n * n_layers)
    z_track = np.empty(n * n_layers)
    m = 0
    for i in range(n):
        for k in range(n_layers):
            if not radii_mm[k] < two_r_mm[i]:
                continue
            z = vz_mm[i] + two_r_mm[i] * turn[i, k] * sinh_eta[i]
            if abs(z) < half_length_mm and efficiency_draw[i, k] < efficiency:
                particle[m] = charged[i]
                layer[m] = k
                phi_track[m] = phi[i] - charge[i] * turn[i, k]
                z_track[m] = z
                m += 1
    return particle[:m], layer[:m], phi_track[:m], z_track[:m]


@njit(error_model="numpy")
def _tracker_assemble_kernel(particle, layer, phi_track, z_track, smear_rphi_mm, smear_z_mm, n_noise, noise_phi, noise_z_mm,
                             radii_mm, radii_f32):
    """TrackerHits arrays: smeared hits, then noise hits layer by layer (the reference's layout)."""
    m = len(particle)
    total = m + len(noise_phi)
    out_layer = np.empty(total, np.int32)
    out_r = np.empty(total, np.float32)
    out_phi = np.empty(total, np.float32)
    out_z = np.empty(total, np.float32)
    out_particle = np.empty(total, np.int32)
    for i in range(m):
        k = layer[i]
        out_layer[i] = k
        out_r[i] = radii_f32[k]
        out_phi[i] = _wrap_phi_scalar(phi_track[i] + smear_rphi_mm[i] / radii_mm[k])
        out_z[i] = z_track[i] + smear_z_mm[i]
        out_particle[i] = particle[i]
    j = m
    for k in range(len(n_noise)):
        for _ in range(n_noise[k]):
            out_layer[j] = k
            out_r[j] = radii_f32[k]
            out_phi[j] = _wrap_phi_scalar(noise_phi[j - m])
            out_z[j] = noise_z_mm[j - m]
            out_particle[j] = NOISE_PARTICLE
            j += 1
    return out_layer, out_r, out_phi, out_z, out_particle


def simulate_tracker_reference(p: Particles, cfg: TrackerConfig, rng: np.random.Generator) -> TrackerHits:
    """`simulate_tracker` in plain numpy: the definition the compiled path is tested against."""
    radii, radii_f32, layer_numbers = _layer_constants(cfg.layer_radii_mm)
    n_layers = len(radii)
    charged = np.flatnonzero(p.charge != 0)
    two_r_mm = 2 * curvature_radius_mm(p.pt_gev[charged], cfg.field_t)[:, None]  # (n, 1): the helix diameter
    reach = radii < two_r_mm  # (n, L)
    # Where a layer is out of reach the crossing angle is never used: 0 keeps arcsin quiet.
    turn = np.arcsin(np.divide(radii, two_r_mm, out=np.zeros(reach.shape), where=reach))
    z_mm = p.vz_mm[charged, None] + two_r_mm * turn * np.sinh(p.eta[charged, None])  # 2 R turn: transverse path
    ok = reach
    ok &= np.abs(z_mm) < cfg.half_length_mm
    ok &= rng.random(reach.shape) < cfg.efficiency
    # Flat (particle-major) indices of the hits: the order of np.nonzero over the (n, L) grid.
    hit = np.flatnonzero(ok)
    hit_layer = np.broadcast_to(layer_numbers, reach.shape).ravel()[hit]
    hit_particle = np.repeat(charged, n_layers)[hit]
    r_hit = radii[hit_layer]
    phi_track = p.phi[hit_particle] - p.charge[hit_particle] * turn.ravel()[hit]
    phi_hit = phi_track + rng.normal(0, cfg.resolution_rphi_mm, size=len(hit)) / r_hit
    z_hit = z_mm.ravel()[hit] + rng.normal(0, cfg.resolution_z_mm, size=len(hit))
    n_noise = rng.poisson(cfg.noise_hits_per_layer, size=n_layers)
    noise_layer = np.repeat(layer_numbers, n_noise)
    layer = np.concatenate([hit_layer, noise_layer]).astype(np.int32)
    return TrackerHits(
        layer=layer,
        r_mm=radii_f32[layer],
        phi=wrap_phi(np.concatenate([phi_hit, rng.uniform(-np.pi, np.pi, size=len(noise_layer))])).astype(np.float32),
        z_mm=np.concatenate([z_hit, rng.uniform(-cfg.half_length_mm, cfg.half_length_mm, size=len(noise_layer))]).astype(np.float32),
        particle=np.concatenate([hit_particle, np.full(len(noise_layer), NOISE_PARTICLE)]).astype(np.int32),
    )
