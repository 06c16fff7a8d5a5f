"""Tests of trigger_sim.physics: the process mix, its truth, and reproducibility."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_sim.config import FarmConfig, PhysicsConfig, load_config, with_overrides
from trigger_sim.errors import ConfigError
from trigger_sim.physics import (
    CHARGED_HADRON,
    DIJET,
    ELECTRON,
    ELECTRON_PROCESS,
    HTAUTAU,
    MINBIAS,
    ORIGIN_PILEUP,
    PHOTON,
    PROCESSES,
    TAU_MASS_GEV,
    TAU_MAX_CONE,
    TRUTH_ELECTRON,
    TRUTH_JET,
    TRUTH_TAU,
    GeneratedEvent,
    choose_process,
    generate_event,
)
from trigger_sim.simulation import simulate

SEED = 4242
ONLY = {  # configurations that make one process only, without pile-up
    DIJET: PhysicsConfig(pileup_mean=0.0, dijet_fraction=1.0, electron_fraction=0.0, signal_fraction=0.0),
    ELECTRON_PROCESS: PhysicsConfig(pileup_mean=0.0, dijet_fraction=0.0, electron_fraction=1.0, signal_fraction=0.0),
    HTAUTAU: PhysicsConfig(pileup_mean=0.0, dijet_fraction=0.0, electron_fraction=0.0, signal_fraction=1.0),
    MINBIAS: PhysicsConfig(pileup_mean=0.0, dijet_fraction=0.0, electron_fraction=0.0, signal_fraction=0.0),
}
PARTICLE_FIELDS = ("pt_gev", "eta", "phi", "charge", "kind", "vz_mm", "origin")
TRUTH_FIELDS = ("truth_kind", "truth_pt_gev", "truth_eta", "truth_phi")


def events(process: str, n: int, seed: int = SEED) -> list[GeneratedEvent]:
    return [generate_event(ONLY[process], seed, l1_id) for l1_id in range(n)]


def delta_r(eta1, phi1, eta2, phi2) -> np.ndarray:
    return np.hypot(np.asarray(eta1) - eta2, np.angle(np.exp(1j * (np.asarray(phi1) - phi2))))


def assert_same_event(a: GeneratedEvent, b: GeneratedEvent) -> None:
    assert (a.process, a.n_pileup, a.true_met_gev, a.primary_vz_mm) == (b.process, b.n_pileup, b.true_met_gev, b.primary_vz_mm)
    for name in PARTICLE_FIELDS:
        np.testing.assert_array_equal(getattr(a.particles, name), getattr(b.particles, name))
    for name in TRUTH_FIELDS:
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))


# --- reproducibility --------------------------------------------------------------------------------

@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.lists(st.integers(0, 10**6), min_size=1, max_size=4), st.sampled_from(PROCESSES))
def test_event_depends_on_seed_and_l1_id_alone(seed: int, l1_ids: list[int], process: str) -> None:
    cfg = dataclasses.replace(ONLY[process], pileup_mean=5.0)
    first = [generate_event(cfg, seed, i) for i in l1_ids]
    again = [generate_event(cfg, seed, i) for i in reversed(l1_ids)][::-1]  # other order, same events
    for a, b in zip(first, again):
        assert a.process == process
        assert_same_event(a, b)


@pytest.mark.parametrize("process", PROCESSES)
def test_other_ids_and_seeds_give_other_events(process: str) -> None:
    a = generate_event(ONLY[process], SEED, 1)
    for b in (generate_event(ONLY[process], SEED, 2), generate_event(ONLY[process], SEED + 1, 1)):
        assert len(a.particles) != len(b.particles) or not np.array_equal(a.particles.pt_gev, b.particles.pt_gev)


# --- the process mix --------------------------------------------------------------------------------

fractions = st.floats(0.0, 1.0)


@settings(max_examples=200, deadline=None)
@given(fractions, fractions, fractions, st.floats(0.0, 1.0, exclude_max=True))
def test_process_choice_lays_fractions_out_in_order(dijet: float, electron: float, signal: float, u: float) -> None:
    if dijet + electron + signal > 1.0:
        with pytest.raises(ValueError, match="dijet_fraction.*electron_fraction.*signal_fraction"):
            PhysicsConfig(dijet_fraction=dijet, electron_fraction=electron, signal_fraction=signal)
        return
    cfg = PhysicsConfig(dijet_fraction=dijet, electron_fraction=electron, signal_fraction=signal)
    process = choose_process(u, cfg)
    edges = np.cumsum([dijet, electron, signal])
    want = PROCESSES[int(np.searchsorted(edges, u, side="right"))]
    assert process == want


def test_fractions_are_honoured() -> None:
    cfg = PhysicsConfig(pileup_mean=0.0, dijet_fraction=0.3, electron_fraction=0.2, signal_fraction=0.1)
    n = 2000
    counts = {p: 0 for p in PROCESSES}
    for l1_id in range(n):
        counts[generate_event(cfg, SEED, l1_id).process] += 1
    for process, fraction in ((DIJET, 0.3), (ELECTRON_PROCESS, 0.2), (HTAUTAU, 0.1), (MINBIAS, 0.4)):
        sigma = np.sqrt(n * fraction * (1 - fraction))
        assert abs(counts[process] - n * fraction) < 5 * sigma, (process, counts)


def test_default_mix() -> None:
    cfg = PhysicsConfig()
    assert (cfg.dijet_fraction, cfg.electron_fraction, cfg.signal_fraction) == (0.25, 0.05, 0.02)
    seen = {generate_event(dataclasses.replace(cfg, pileup_mean=0.0), SEED, i).process for i in range(300)}
    assert seen == set(PROCESSES)


@pytest.mark.parametrize("values", [
    {"dijet_fraction": 0.6, "electron_fraction": 0.3, "signal_fraction": 0.2},
    {"dijet_fraction": 1.0, "electron_fraction": 0.0, "signal_fraction": 1e-9},
])
def test_fractions_summing_above_one_are_rejected(values: dict, tmp_path) -> None:
    with pytest.raises(ValueError, match="dijet_fraction \\+ physics.electron_fraction \\+ physics.signal_fraction"):
        PhysicsConfig(**values)
    path = tmp_path / "farm.toml"
    path.write_text("[physics]\n" + "".join(f"{k} = {v}\n" for k, v in values.items()))
    with pytest.raises(ConfigError, match="signal_fraction") as err:
        load_config(path)
    assert str(path) in str(err.value)


@pytest.mark.parametrize("key", ["dijet_fraction", "electron_fraction", "signal_fraction"])
@pytest.mark.parametrize("value", [-0.1, 1.5, float("nan")])
def test_a_fraction_outside_zero_one_is_rejected(key: str, value: float) -> None:
    with pytest.raises(ValueError, match=key):
        PhysicsConfig(**{key: value})


@pytest.mark.parametrize("value", [-1.0, 300.5, float("nan"), float("inf")])
def test_pileup_outside_its_range_is_rejected(value: float) -> None:
    with pytest.raises(ValueError, match="pileup_mean"):
        PhysicsConfig(pileup_mean=value)


def test_the_old_single_fraction_key_is_still_known_with_its_new_meaning(tmp_path) -> None:
    path = tmp_path / "farm.toml"
    path.write_text("[physics]\nsignal_fraction = 0.5\ndijet_fraction = 0.5\nelectron_fraction = 0.0\n")
    cfg = load_config(path).physics
    assert {generate_event(cfg, SEED, i).process for i in range(100)} == {DIJET, HTAUTAU}


# --- pile-up ------------------------------------------------------------------------------------------

def test_no_pileup_is_one_collision() -> None:
    for process in PROCESSES:
        for ev in events(process, 5):
            assert ev.n_pileup == 0
            np.testing.assert_array_equal(ev.particles.vz_mm, ev.primary_vz_mm)


def test_pileup_200_works_through_the_detector() -> None:
    cfg = with_overrides(FarmConfig(), physics={"pileup_mean": 200.0, "dijet_fraction": 0.0, "electron_fraction": 0.0,
                                                "signal_fraction": 1.0})
    sim = simulate(cfg, 3)
    assert sim.truth.process == HTAUTAU
    assert abs(sim.truth.n_pileup - 200) < 5 * np.sqrt(200)
    assert len(np.unique(sim.truth.particles.vz_mm)) > 150
    quiet = simulate(with_overrides(cfg, physics={"pileup_mean": 0.0}), 3)
    assert len(sim.hits.layer) > 20 * len(quiet.hits.layer)
    assert sim.towers.em_gev.sum() > 5 * quiet.towers.em_gev.sum()


# --- truth and origins --------------------------------------------------------------------------------

@pytest.mark.parametrize("process, kinds", [
    (MINBIAS, []), (DIJET, [TRUTH_JET, TRUTH_JET]), (ELECTRON_PROCESS, [TRUTH_ELECTRON]), (HTAUTAU, [TRUTH_TAU, TRUTH_TAU]),
])
def test_truth_objects_and_origins(process: str, kinds: list[int]) -> None:
    for ev in events(process, 50):
        assert ev.process == process
        assert ev.truth_kind.dtype == np.int8 and list(ev.truth_kind) == kinds
        for name in TRUTH_FIELDS[1:]:
            assert getattr(ev, name).shape == (len(kinds),)
        origin = ev.particles.origin
        assert set(np.unique(origin)) <= {ORIGIN_PILEUP, *range(1, len(kinds) + 1)}
        for k in range(len(kinds)):
            assert (origin == k + 1).sum() >= 1
        np.testing.assert_array_equal(ev.truth_of_kind(TRUTH_JET), np.flatnonzero(ev.truth_kind == TRUTH_JET))
        if process in (MINBIAS, DIJET):
            assert ev.true_met_gev == 0.0
        else:
            assert 0.0 < ev.true_met_gev < 300.0


def test_electron_is_one_charged_electron_at_the_jacobian_peak() -> None:
    pts = []
    for ev in events(ELECTRON_PROCESS, 400):
        p = ev.particles
        mine = np.flatnonzero(p.origin == 1)
        assert len(mine) == 1
        i = mine[0]
        assert p.kind[i] == ELECTRON and p.charge[i] in (-1, 1)
        assert (p.pt_gev[i], p.eta[i], p.phi[i]) == (ev.truth_pt_gev[0], ev.truth_eta[0], ev.truth_phi[0])
        assert p.vz_mm[i] == ev.primary_vz_mm
        pts.append(p.pt_gev[i])
    charges = [generate_event(ONLY[ELECTRON_PROCESS], SEED, i).particles.charge[-1] for i in range(100)]
    assert 20 < sum(c > 0 for c in charges) < 80  # both signs
    # W -> e nu: the electron pT piles up just below m_W / 2 (Jacobian peak), smeared by the W pT.
    assert 28.0 < np.median(pts) < 42.0
    assert np.mean((np.array(pts) > 25.0) & (np.array(pts) < 50.0)) > 0.6


def tau_products(ev: GeneratedEvent, k: int) -> np.ndarray:
    return np.flatnonzero(ev.particles.origin == k + 1)


def test_tau_products_are_few_collimated_pions_and_photons() -> None:
    prongs = []
    for ev in events(HTAUTAU, 300):
        p = ev.particles
        for k in range(2):
            idx = tau_products(ev, k)
            charged = p.charge[idx] != 0
            n_charged, n_photons = int(charged.sum()), int((~charged).sum())
            assert n_charged in (1, 3) and n_photons % 2 == 0 and n_photons <= (4 if n_charged == 1 else 2)
            assert set(p.kind[idx][charged]) == {CHARGED_HADRON} and set(p.kind[idx][~charged]) <= {PHOTON}
            prongs.append(n_charged)
            # Within a cone ~ m_tau / pT around the visible tau (twice: the products scatter
            # about the tau axis, which itself may sit up to one cone from their sum).
            cone = min(TAU_MASS_GEV / ev.truth_pt_gev[k], TAU_MAX_CONE)
            dr = delta_r(p.eta[idx], p.phi[idx], ev.truth_eta[k], ev.truth_phi[k])
            assert np.all(dr < 2.0 * cone + 1e-9)
        # The two taus have opposite charges.
        assert p.charge[tau_products(ev, 0)].sum() == -p.charge[tau_products(ev, 1)].sum()
    assert 0.65 < np.mean(np.array(prongs) == 1) < 0.87


def test_tau_truth_is_the_visible_momentum_sum() -> None:
    for ev in events(HTAUTAU, 100):
        p = ev.particles
        for k in range(2):
            idx = tau_products(ev, k)
            px = (p.pt_gev[idx] * np.cos(p.phi[idx])).sum()
            py = (p.pt_gev[idx] * np.sin(p.phi[idx])).sum()
            pz = (p.pt_gev[idx] * np.sinh(p.eta[idx])).sum()
            pt = np.hypot(px, py)
            np.testing.assert_allclose([pt, np.arcsinh(pz / pt)], [ev.truth_pt_gev[k], ev.truth_eta[k]], rtol=1e-9)
            assert delta_r(0.0, np.arctan2(py, px), 0.0, ev.truth_phi[k]) < 1e-9
    # Taus from a 125 GeV scalar: visible pT a good fraction of m_H / 2.
    vis = np.array([ev.truth_pt_gev for ev in events(HTAUTAU, 300)]).ravel()
    assert 25.0 < np.median(vis) < 50.0


def width_and_multiplicity(ev: GeneratedEvent) -> tuple[list[float], list[int]]:
    """pT-weighted mean ΔR of each truth object's constituents to its axis, and their count."""
    p = ev.particles
    widths, counts = [], []
    for k in range(len(ev.truth_kind)):
        idx = np.flatnonzero(p.origin == k + 1)
        dr = delta_r(p.eta[idx], p.phi[idx], ev.truth_eta[k], ev.truth_phi[k])
        widths.append(float((p.pt_gev[idx] * dr).sum() / p.pt_gev[idx].sum()))
        counts.append(len(idx))
    return widths, counts


def test_tau_jets_are_narrower_and_sparser_than_qcd_jets() -> None:
    tau = [width_and_multiplicity(ev) for ev in events(HTAUTAU, 200)]
    qcd = [width_and_multiplicity(ev) for ev in events(DIJET, 200)]
    tau_width, tau_n = np.concatenate([w for w, _ in tau]), np.concatenate([n for _, n in tau])
    qcd_width, qcd_n = np.concatenate([w for w, _ in qcd]), np.concatenate([n for _, n in qcd])
    assert np.median(tau_width) < 0.5 * np.median(qcd_width)
    assert np.mean(tau_n) < 0.5 * np.mean(qcd_n)
    assert tau_n.max() <= 5


def test_dijet_partons_balance_in_phi() -> None:
    for ev in events(DIJET, 50):
        assert np.all(ev.truth_pt_gev >= ONLY[DIJET].dijet_min_pt_gev * 0.5)
        assert delta_r(0.0, ev.truth_phi[0], 0.0, ev.truth_phi[1]) > np.pi - 1.0
