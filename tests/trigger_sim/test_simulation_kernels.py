"""The compiled simulation path against its plain-numpy references: bit for bit, draw for draw.

simulate_tracker, simulate_calo and pack_tracker run their per-particle and per-hit work in numba
kernels; their *_reference twins are the numpy definitions. Every output byte and the state of
the random stream afterwards must agree, for simulated events and for awkward hand-made inputs.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from trigger_sim.config import CaloConfig, FarmConfig, TrackerConfig, with_overrides
from trigger_sim.detector import (
    CaloTowers,
    TrackerHits,
    em_lateral_shares,
    simulate_calo,
    simulate_calo_reference,
    simulate_tracker,
    simulate_tracker_reference,
    wrap_phi,
)
from trigger_sim.detector.geometry import _wrap_phi_scalar
from trigger_sim.partition import pack_calo, pack_tracker, pack_tracker_reference
from trigger_sim.physics import CHARGED_HADRON, ELECTRON, NEUTRAL_HADRON, PHOTON, Particles, generate_event
from trigger_sim.simulation import event_fragments, simulate, warm_up

FIELD_T = 2.0


def assert_bitwise_equal(got: np.ndarray, want: np.ndarray) -> None:
    """Same dtype, shape and bytes (NaNs and signed zeros included)."""
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got.tobytes() == want.tobytes()


def assert_same_hits(got: TrackerHits, want: TrackerHits) -> None:
    for field in dataclasses.fields(TrackerHits):
        assert_bitwise_equal(getattr(got, field.name), getattr(want, field.name))


def assert_same_towers(got: CaloTowers, want: CaloTowers) -> None:
    assert_bitwise_equal(got.em_gev, want.em_gev)
    assert_bitwise_equal(got.had_gev, want.had_gev)


def assert_same_payloads(got: list[dict[str, np.ndarray]], want: list[dict[str, np.ndarray]]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want):
        assert list(g) == list(w)
        for name in g:
            assert g[name].flags.c_contiguous
            assert_bitwise_equal(g[name], w[name])


def config(pileup: float, **sections: dict) -> FarmConfig:
    physics = {"pileup_mean": pileup, **sections.pop("physics", {})}
    return with_overrides(FarmConfig(), physics=physics, **sections)


CONFIGS = {
    "pileup0": config(0.0),
    "pileup20": config(20.0),
    "pileup60": config(60.0, physics={"dijet_fraction": 0.4, "electron_fraction": 0.2, "signal_fraction": 0.2}),
    "no-spread-3-sectors-5-regions": config(20.0, calo={"em_shower_width": 0.0, "n_regions": 5}, tracker={"n_sectors": 3}),
    "wide-showers-odd-grid": config(10.0, calo={"em_shower_width": 0.2, "n_eta": 36, "n_phi": 17, "n_regions": 3}),
}


@pytest.mark.parametrize("name", list(CONFIGS))
def test_compiled_simulation_matches_the_reference_on_simulated_events(name: str) -> None:
    cfg = CONFIGS[name]
    for l1_id in range(25):
        particles = generate_event(cfg.physics, cfg.run.seed, l1_id).particles
        rng_fast, rng_ref = np.random.default_rng([7, l1_id]), np.random.default_rng([7, l1_id])
        hits = simulate_tracker(particles, cfg.tracker, rng_fast)
        assert_same_hits(hits, simulate_tracker_reference(particles, cfg.tracker, rng_ref))
        assert rng_fast.bit_generator.state == rng_ref.bit_generator.state
        towers = simulate_calo(particles, cfg.calo, cfg.tracker.field_t, rng_fast)
        assert_same_towers(towers, simulate_calo_reference(particles, cfg.calo, cfg.tracker.field_t, rng_ref))
        assert rng_fast.bit_generator.state == rng_ref.bit_generator.state
        assert_same_payloads(pack_tracker(hits, cfg.tracker), pack_tracker_reference(hits, cfg.tracker))


def awkward_particles(rng: np.random.Generator, n: int, charge_dtype: type = np.int8, kind_dtype: type = np.int8) -> Particles:
    """Particles at tower and grid edges, soft loopers, odd kinds, phi far outside (-pi, pi]."""
    eta = rng.uniform(-3.0, 3.0, n)
    eta[: n // 8] = np.round(eta[: n // 8] * 10) / 10  # on tower edges (eta_max 2.5, 50 towers)
    phi = rng.uniform(-np.pi, np.pi, n)
    phi[:6] = [np.pi, -np.pi, 0.0, -0.0, np.nextafter(np.pi, 4.0), 7.5]
    phi[6 : n // 6] = rng.uniform(-12.0, 12.0, n // 6 - 6)
    pt = np.concatenate([rng.uniform(0.05, 0.5, n // 2), rng.exponential(20.0, n - n // 2)])
    kinds = np.array([CHARGED_HADRON, PHOTON, NEUTRAL_HADRON, ELECTRON, 4, -1, 127, -128])
    kind = rng.choice(kinds, n).astype(kind_dtype) if np.dtype(kind_dtype).kind == "i" else rng.choice(4, n).astype(kind_dtype)
    return Particles(
        pt_gev=pt, eta=eta, phi=phi, charge=rng.choice([-1, 0, 1], n).astype(charge_dtype), kind=kind,
        vz_mm=rng.normal(0.0, 60.0, n), origin=np.zeros(n, np.int8),
    )


@pytest.mark.parametrize("charge_dtype, kind_dtype", [(np.int8, np.int8), (np.int64, np.int64), (np.int32, np.uint8)])
@pytest.mark.parametrize("shower_width", [0.0, 0.01, 1e-300])
def test_compiled_simulation_matches_the_reference_on_awkward_particles(charge_dtype, kind_dtype, shower_width) -> None:
    cal = CaloConfig(em_shower_width=shower_width)
    trk = TrackerConfig()
    for seed in range(5):
        particles = awkward_particles(np.random.default_rng(seed), 400, charge_dtype, kind_dtype)
        rng_fast, rng_ref = np.random.default_rng(seed), np.random.default_rng(seed)
        with np.errstate(all="ignore"):
            hits = simulate_tracker(particles, trk, rng_fast)
            assert_same_hits(hits, simulate_tracker_reference(particles, trk, rng_ref))
            assert_same_towers(simulate_calo(particles, cal, FIELD_T, rng_fast), simulate_calo_reference(particles, cal, FIELD_T, rng_ref))
        assert rng_fast.bit_generator.state == rng_ref.bit_generator.state
        assert_same_payloads(pack_tracker(hits, trk), pack_tracker_reference(hits, trk))


def test_no_particles_and_no_charged_particles() -> None:
    empty = Particles(*(np.empty(0, d) for d in (np.float64, np.float64, np.float64, np.int8, np.int8, np.float64, np.int8)))
    photons = Particles(pt_gev=np.ones(3), eta=np.zeros(3), phi=np.zeros(3), charge=np.zeros(3, np.int8),
                        kind=np.full(3, PHOTON, np.int8), vz_mm=np.zeros(3), origin=np.zeros(3, np.int8))
    for particles in (empty, photons):
        rng_fast, rng_ref = np.random.default_rng(3), np.random.default_rng(3)
        hits = simulate_tracker(particles, TrackerConfig(), rng_fast)
        assert_same_hits(hits, simulate_tracker_reference(particles, TrackerConfig(), rng_ref))
        assert_same_towers(simulate_calo(particles, CaloConfig(), FIELD_T, rng_fast),
                           simulate_calo_reference(particles, CaloConfig(), FIELD_T, rng_ref))
        assert np.all(hits.particle == -1)  # noise only


def test_calo_kinds_follow_the_em_and_hadron_rules() -> None:
    """Every int8 kind: photons and electrons are EM at response 1, hadrons split at had_response,
    anything else is hadronic at response 1 (the reference's per-kind tables)."""
    kinds = np.arange(-128, 128).astype(np.int8)
    n = len(kinds)
    particles = Particles(pt_gev=np.full(n, 10.0), eta=np.linspace(-2.0, 2.0, n), phi=np.zeros(n), charge=np.zeros(n, np.int8),
                          kind=kinds, vz_mm=np.zeros(n), origin=np.zeros(n, np.int8))
    exact = CaloConfig(em_stochastic=0.0, had_stochastic=0.0, em_noise_gev=0.0, had_noise_gev=0.0, zero_suppression_gev=0.0,
                       em_shower_width=0.0)
    for k in range(n):
        one = Particles(*(np.asarray(getattr(particles, f.name))[k : k + 1] for f in dataclasses.fields(Particles)))
        for simulate_fn in (simulate_calo, simulate_calo_reference):
            towers = simulate_fn(one, exact, FIELD_T, np.random.default_rng(0))
            energy = 10.0 * np.cosh(one.eta[0])
            kind = int(one.kind[0])
            if kind in (PHOTON, ELECTRON):
                em, had = energy, 0.0
            elif kind in (CHARGED_HADRON, NEUTRAL_HADRON):
                em, had = energy * exact.had_response * exact.had_em_fraction, energy * exact.had_response * (1 - exact.had_em_fraction)
            else:
                em, had = 0.0, energy
            assert towers.em_gev.sum() == pytest.approx(em, rel=1e-6)
            assert towers.had_gev.sum() == pytest.approx(had, rel=1e-6)


def test_float32_particles_take_the_reference() -> None:
    """Other dtypes than the generator's change numpy's arithmetic: the reference handles them."""
    p = awkward_particles(np.random.default_rng(1), 200)
    p32 = dataclasses.replace(p, pt_gev=p.pt_gev.astype(np.float32), eta=p.eta.astype(np.float32))
    with np.errstate(all="ignore"):
        assert_same_hits(simulate_tracker(p32, TrackerConfig(), np.random.default_rng(2)),
                         simulate_tracker_reference(p32, TrackerConfig(), np.random.default_rng(2)))
        assert_same_towers(simulate_calo(p32, CaloConfig(), FIELD_T, np.random.default_rng(2)),
                           simulate_calo_reference(p32, CaloConfig(), FIELD_T, np.random.default_rng(2)))


def test_pack_tracker_matches_the_reference_on_hand_made_hits() -> None:
    rng = np.random.default_rng(5)
    n = 500
    phi = rng.uniform(-np.pi, np.pi, n).astype(np.float32)
    phi[:8] = [np.float32(-np.pi), np.float32(np.pi), np.nextafter(np.float32(np.pi), np.float32(4)), -0.0, np.nan, np.inf, -np.inf, -3.5]
    z = rng.uniform(-1300.0, 1300.0, n).astype(np.float32)
    z[8:10] = [np.float32(1100.0), np.float32(-1100.0)]
    layer = rng.integers(0, 10, n).astype(np.int32)
    radii = np.asarray(TrackerConfig().layer_radii_mm, np.float32)
    hits = TrackerHits(layer=layer, r_mm=radii[layer], phi=phi, z_mm=z, particle=np.zeros(n, np.int32))
    for n_sectors in (1, 2, 3, 7):
        cfg = TrackerConfig(n_sectors=n_sectors)
        with np.errstate(all="ignore"):
            got, want = pack_tracker(hits, cfg), pack_tracker_reference(hits, cfg)
        assert_same_payloads(got, want)
    # Other dtypes go through the reference.
    hits64 = dataclasses.replace(hits, phi=phi.astype(np.float64))
    with np.errstate(all="ignore"):
        assert_same_payloads(pack_tracker(hits64, TrackerConfig()), pack_tracker_reference(hits64, TrackerConfig()))


def test_pack_calo_bands_are_contiguous_and_complete() -> None:
    cfg = CONFIGS["no-spread-3-sectors-5-regions"]
    towers = simulate(cfg, 3).towers
    payloads = pack_calo(towers, cfg.calo)
    rows = cfg.calo.n_eta // cfg.calo.n_regions
    for k, payload in enumerate(payloads):
        em = towers.em_gev[k * rows : (k + 1) * rows].ravel()
        had = towers.had_gev[k * rows : (k + 1) * rows].ravel()
        local = np.flatnonzero((em != 0) | (had != 0))
        assert_bitwise_equal(payload["tower_id"], (local + k * rows * cfg.calo.n_phi).astype(np.uint32))
        assert_bitwise_equal(payload["energy_gev"], np.stack([em[local], had[local]], axis=1).astype(np.float32))
        assert payload["energy_gev"].flags.c_contiguous


def plain_wrap_phi(phi: np.ndarray) -> np.ndarray:
    """The textbook definition wrap_phi's fast path must reproduce bit for bit."""
    return np.pi - np.mod(np.pi - phi, 2 * np.pi)


def wrap_test_values() -> np.ndarray:
    rng = np.random.default_rng(11)
    edges = [np.pi, -np.pi, 0.0, -0.0, 2 * np.pi, -2 * np.pi, 3 * np.pi, np.nan, np.inf, -np.inf, 1e300, -1e300, 5e-324,
             np.nextafter(np.pi, 4.0), np.nextafter(np.pi, 0.0), np.nextafter(-np.pi, 0.0), np.nextafter(-np.pi, -4.0)]
    return np.concatenate([rng.uniform(-20.0, 20.0, 20000), np.pi + rng.normal(0, 1e-9, 1000), -np.pi + rng.normal(0, 1e-9, 1000), edges])


def test_wrap_phi_fast_path_is_the_plain_definition() -> None:
    values = wrap_test_values()
    strided = values[: len(values) // 7 * 7].reshape(-1, 7)[:, 2:5]
    with np.errstate(invalid="ignore", over="ignore"):
        assert_bitwise_equal(wrap_phi(values.copy()), plain_wrap_phi(values))
        assert_bitwise_equal(wrap_phi(values.astype(np.float32)), plain_wrap_phi(values.astype(np.float32)))
        assert_bitwise_equal(wrap_phi(strided), plain_wrap_phi(strided))
        assert wrap_phi(7.0) == plain_wrap_phi(7.0)
        assert wrap_phi(np.float64(-7.0)) == plain_wrap_phi(np.float64(-7.0))
    values_in = values.copy()
    with np.errstate(invalid="ignore"):
        wrap_phi(values_in)
    assert_bitwise_equal(values_in, values)  # the argument is not modified


def test_compiled_wrap_phi_is_the_plain_definition() -> None:
    values = wrap_test_values()
    with np.errstate(invalid="ignore"):
        want = plain_wrap_phi(values)
    got = np.array([_wrap_phi_scalar(v) for v in values])
    assert_bitwise_equal(got, want)


def test_em_lateral_shares_keeps_its_contract() -> None:
    position = np.array([0.0, 0.25, 0.5, 0.999])
    assert np.all(em_lateral_shares(position, 0.1, 0.0) == 0.0)
    assert_bitwise_equal(em_lateral_shares(position, 0.1, 1e-300), np.array([0.5, 0.0, 0.0, 0.0]))
    assert em_lateral_shares(position, 0.1, 0.01)[0] == 0.5


def test_warm_up_simulates_without_side_effects() -> None:
    cfg = CONFIGS["pileup20"]
    before = [f.arrays["module_id"].tobytes() if "module_id" in f.arrays else f.arrays["tower_id"].tobytes()
              for f in event_fragments(cfg, 4, 0)]
    warm_up(cfg)
    after = [f.arrays["module_id"].tobytes() if "module_id" in f.arrays else f.arrays["tower_id"].tobytes()
             for f in event_fragments(cfg, 4, 0)]
    assert before == after
