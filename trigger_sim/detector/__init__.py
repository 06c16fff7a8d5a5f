"""Detector simulation: a barrel silicon tracker in a solenoid and an eta-phi calorimeter.

Charged particles leave helix hits on each barrel layer they cross (smeared, with
inefficiency and noise hits); all particles that reach the calorimeter deposit their
energy where they hit, split between the electromagnetic and hadronic compartments by
particle kind, with stochastic resolution, electronic noise and zero suppression.

The calorimeter is non-compensating: a hadron's visible energy is `had_response` times an
electron's of the same energy. Electromagnetic deposits spread laterally: a particle hitting
near a tower edge shares part of its EM energy with the nearest neighbour in eta and in phi.

Modules: `geometry` (hit and tower containers, radii, angles), `tracker`, `calo`.
`simulate_tracker` and `simulate_calo` run their per-particle work in numba kernels and are
bit for bit (and random draw for random draw) their plain-numpy `*_reference` twins; the
transcendental functions stay numpy calls, whose results can differ from numba's in the last bit.
"""

from trigger_sim.detector.calo import em_lateral_shares, simulate_calo, simulate_calo_reference
from trigger_sim.detector.geometry import (
    CALO_RADIUS_MM,
    NOISE_PARTICLE,
    CaloTowers,
    TrackerHits,
    curvature_radius_mm,
    tower_centers,
    wrap_phi,
)
from trigger_sim.detector.tracker import simulate_tracker, simulate_tracker_reference

__all__ = [
    "CALO_RADIUS_MM", "NOISE_PARTICLE", "CaloTowers", "TrackerHits", "curvature_radius_mm", "em_lateral_shares",
    "simulate_calo", "simulate_calo_reference", "simulate_tracker", "simulate_tracker_reference", "tower_centers",
    "wrap_phi",
]
