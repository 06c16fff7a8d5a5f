"""Tests of the calorimeter simulation (detector.simulate_calo): response, resolution, lateral spread."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_sim.config import CaloConfig
from trigger_sim.detector import em_lateral_shares, simulate_calo, tower_centers
from trigger_sim.physics import CHARGED_HADRON, ELECTRON, NEUTRAL_HADRON, PHOTON, Particles

FIELD_T = 2.0
CFG = CaloConfig()
# No noise, resolution or zero suppression: deposits are exact.
EXACT = dataclasses.replace(CFG, em_stochastic=0.0, had_stochastic=0.0, em_noise_gev=0.0, had_noise_gev=0.0,
                            zero_suppression_gev=0.0)
ETA_STEP = 2 * CFG.eta_max / CFG.n_eta
PHI_STEP = 2 * np.pi / CFG.n_phi


def particles(pt_gev, eta, phi, kind, charge) -> Particles:
    n = len(pt_gev)
    return Particles(
        pt_gev=np.asarray(pt_gev, np.float64), eta=np.asarray(eta, np.float64), phi=np.asarray(phi, np.float64),
        charge=np.broadcast_to(np.asarray(charge, np.int8), (n,)).copy(), kind=np.broadcast_to(np.asarray(kind, np.int8), (n,)).copy(),
        vz_mm=np.zeros(n), origin=np.ones(n, np.int8),
    )


def tower_of(eta: float, phi: float, cfg: CaloConfig = CFG) -> tuple[int, int]:
    return int((eta + cfg.eta_max) / (2 * cfg.eta_max) * cfg.n_eta), int((phi + np.pi) / (2 * np.pi) * cfg.n_phi)


def window(grid: np.ndarray, ieta: int, iphi: int, half: int = 1) -> float:
    rows = grid[max(ieta - half, 0): ieta + half + 1]
    return float(rows[:, (np.arange(iphi - half, iphi + half + 1)) % grid.shape[1]].sum())


def test_electron_energy_is_reconstructed_within_resolution() -> None:
    """Electrons over the calorimeter: 3x3 EM sum / E ~ 1 with sigma ~ a / sqrt(E) (+) noise."""
    rng = np.random.default_rng(1)
    ratios, sigmas = [], []
    for charge in rng.choice([-1, 1], size=300):
        eta, phi = rng.uniform(-2.3, 2.3), rng.uniform(-3.0, 3.0)
        energy = 40.0 * np.cosh(eta)
        towers = simulate_calo(particles([40.0], [eta], [phi], ELECTRON, charge), CFG, FIELD_T, rng)
        hit = np.unravel_index(np.argmax(towers.em_gev), towers.em_gev.shape)  # where it bent to
        assert abs(int(hit[0]) - tower_of(eta, phi)[0]) <= 1
        ratios.append(window(towers.em_gev, *hit) / energy)
        sigmas.append(np.hypot(CFG.em_stochastic / np.sqrt(energy), 3 * CFG.em_noise_gev / energy))
        assert window(towers.had_gev, *hit) < 1.0  # nothing hadronic behind it
    pulls = (np.array(ratios) - 1.0) / np.array(sigmas)
    assert abs(np.mean(pulls)) < 0.3
    assert 0.7 < np.std(pulls) < 1.3
    assert np.all(np.abs(pulls) < 5.0)


def test_charged_electron_bends_but_keeps_its_energy() -> None:
    rng = np.random.default_rng(2)
    towers = simulate_calo(particles([50.0], [0.3], [1.0], ELECTRON, -1), EXACT, FIELD_T, rng)
    assert towers.em_gev.sum() == pytest.approx(50.0 * np.cosh(0.3), rel=1e-5)
    assert towers.had_gev.sum() == 0.0


@pytest.mark.parametrize("kind, charge", [(CHARGED_HADRON, 1), (NEUTRAL_HADRON, 0)])
@pytest.mark.parametrize("had_response", [0.8, 0.6, 1.0])
def test_hadron_visible_energy_is_had_response_on_average(kind: int, charge: int, had_response: float) -> None:
    cfg = dataclasses.replace(CFG, had_response=had_response)
    rng = np.random.default_rng(3)
    eta = np.repeat(np.linspace(-2.0, 2.0, 10), 10)  # 100 pions, towers well apart
    phi = np.tile(np.linspace(-2.8, 2.8, 10), 10)
    energy = 50.0 * np.cosh(eta)
    ratios = []
    for _ in range(10):
        towers = simulate_calo(particles(np.full(100, 50.0), eta, phi, kind, charge), cfg, FIELD_T, rng)
        ratios.append((towers.em_gev.sum() + towers.had_gev.sum()) / energy.sum())
    assert np.mean(ratios) == pytest.approx(had_response, rel=0.02)


def test_hadron_compartments_share_the_response() -> None:
    towers = simulate_calo(particles([30.0], [0.0], [0.5], NEUTRAL_HADRON, 0), EXACT, FIELD_T, np.random.default_rng(4))
    visible = 30.0 * EXACT.had_response
    assert towers.em_gev.sum() == pytest.approx(EXACT.had_em_fraction * visible, rel=1e-5)
    assert towers.had_gev.sum() == pytest.approx((1 - EXACT.had_em_fraction) * visible, rel=1e-5)


def test_photons_are_not_scaled_by_the_hadron_response() -> None:
    cfg = dataclasses.replace(EXACT, had_response=0.5)
    towers = simulate_calo(particles([30.0], [0.0], [0.5], PHOTON, 0), cfg, FIELD_T, np.random.default_rng(5))
    assert towers.em_gev.sum() == pytest.approx(30.0, rel=1e-5)


def test_shower_at_a_tower_centre_stays_in_it_and_at_an_edge_is_shared() -> None:
    eta_c, phi_c = tower_centers(EXACT)
    rng = np.random.default_rng(6)
    centre = simulate_calo(particles([40.0], [eta_c[20]], [phi_c[10]], PHOTON, 0), EXACT, FIELD_T, rng).em_gev
    assert centre[20, 10] / centre.sum() > 0.98
    # Halfway between towers 20 and 21 in eta (and central in phi): half and half.
    edge_eta = eta_c[20] + ETA_STEP / 2 - 1e-9
    edge = simulate_calo(particles([40.0], [edge_eta], [phi_c[10]], PHOTON, 0), EXACT, FIELD_T, rng).em_gev
    assert edge[20, 10] / edge.sum() == pytest.approx(0.5, abs=0.02)
    assert edge[21, 10] / edge.sum() == pytest.approx(0.5, abs=0.02)
    # A corner: four towers share it.
    corner = simulate_calo(particles([40.0], [edge_eta], [phi_c[10] + PHI_STEP / 2 - 1e-9], PHOTON, 0), EXACT,
                           FIELD_T, rng).em_gev
    np.testing.assert_allclose(corner[20:22, 10:12] / corner.sum(), 0.25, atol=0.02)
    # No spread: everything in the tower hit.
    none = simulate_calo(particles([40.0], [edge_eta], [phi_c[10]], PHOTON, 0),
                         dataclasses.replace(EXACT, em_shower_width=0.0), FIELD_T, rng).em_gev
    assert none[20, 10] == pytest.approx(none.sum(), rel=1e-6)


def test_spread_wraps_in_phi_and_stays_inside_in_eta() -> None:
    rng = np.random.default_rng(7)
    eta_c, _ = tower_centers(EXACT)
    wrap = simulate_calo(particles([40.0], [eta_c[5]], [np.pi - 1e-6], PHOTON, 0), EXACT, FIELD_T, rng).em_gev
    assert wrap[5, -1] == pytest.approx(wrap[5, 0], rel=0.02)
    low_edge = simulate_calo(particles([40.0], [-EXACT.eta_max + 1e-6], [0.1], PHOTON, 0), EXACT, FIELD_T, rng).em_gev
    assert low_edge[0].sum() == pytest.approx(40.0 * np.cosh(EXACT.eta_max), rel=1e-5)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.floats(1.0, 100.0), st.floats(-2.49, 2.49), st.floats(-np.pi, np.pi),
                       st.sampled_from([PHOTON, NEUTRAL_HADRON])), min_size=1, max_size=30),
    st.floats(0.0, 0.1),
    st.floats(0.3, 1.2),
)
def test_deposits_conserve_visible_energy(hits: list, shower_width: float, had_response: float) -> None:
    """Without noise, the towers hold exactly each particle's visible energy, wherever it hits."""
    pt, eta, phi, kind = (np.array(c) for c in zip(*hits))
    cfg = dataclasses.replace(EXACT, em_shower_width=shower_width, had_response=had_response)
    towers = simulate_calo(particles(pt, eta, phi, kind, 0), cfg, FIELD_T, np.random.default_rng(8))
    visible = pt * np.cosh(eta) * np.where(kind == NEUTRAL_HADRON, had_response, 1.0)
    total = towers.em_gev.astype(np.float64).sum() + towers.had_gev.astype(np.float64).sum()
    assert total == pytest.approx(visible.sum(), rel=1e-5)
    assert np.all(towers.em_gev >= 0) and np.all(towers.had_gev >= 0)


@given(st.floats(0.0, 1.0, exclude_max=True), st.floats(0.001, 0.2))
def test_leak_is_at_most_half_and_largest_at_the_edges(position: float, shower_width: float) -> None:
    share = em_lateral_shares(np.array([position, 0.5, 0.0]), 0.1, shower_width)
    assert 0.0 <= share[0] <= 0.5
    assert share[1] <= share[0] <= share[2] == 0.5


@pytest.mark.parametrize("values", [{"had_response": 0.0}, {"had_response": 2.5}, {"had_response": float("nan")},
                                    {"em_shower_width": -0.01}, {"em_shower_width": float("nan")}])
def test_bad_calo_values_are_rejected(values: dict) -> None:
    with pytest.raises(ValueError, match=next(iter(values))):
        CaloConfig(**values)
