"""Tests of trigger_sim.partition (pack/unpack) together with trigger_sim.simulation."""

from __future__ import annotations

import numpy as np
import pytest

from trigger_sim.config import FarmConfig, with_overrides
from trigger_sim.detector import TrackerHits, wrap_phi
from trigger_sim.errors import FragmentDataError
from trigger_sim.event import (
    CALO_SOURCE_BASE,
    TRACKER_SOURCE_BASE,
    Fragment,
    FragmentHeader,
    is_calo_source,
    is_tracker_source,
)
from trigger_sim.partition import pack_tracker, source_ids, unpack_calo, unpack_tracker
from trigger_sim.simulation import bunch_crossing, event_fragments, simulate

PHI_TOL = 1e-4  # rad
Z_TOL = 1e-3  # mm

L1_IDS = (0, 7, 123)


def config(pileup: float, **sections) -> FarmConfig:
    return with_overrides(FarmConfig(), physics={"pileup_mean": pileup}, **sections)


def assert_same_hits(expected: TrackerHits, layer, r, phi, z) -> None:
    """The unpacked hits equal the simulated ones as a multiset (within tolerances)."""
    assert len(layer) == len(expected.layer)
    assert layer.dtype == np.int32 and r.dtype == np.float32 and phi.dtype == np.float32 and z.dtype == np.float32
    np.testing.assert_array_equal(np.sort(layer), np.sort(expected.layer))
    for lay in np.unique(expected.layer):
        e = expected.layer == lay
        g = layer == lay
        np.testing.assert_array_equal(r[g], expected.r_mm[e])  # exact layer radius
        # sorted marginals: any pairing within tolerance implies sorted values within tolerance
        np.testing.assert_allclose(np.sort(phi[g]), np.sort(expected.phi[e]), rtol=0, atol=PHI_TOL)
        np.testing.assert_allclose(np.sort(z[g]), np.sort(expected.z_mm[e]), rtol=0, atol=Z_TOL)
        # joint: every unpacked (phi, z) has a simulated hit close in both, and vice versa
        for a_phi, a_z, b_phi, b_z in (
            (phi[g], z[g], expected.phi[e], expected.z_mm[e]),
            (expected.phi[e], expected.z_mm[e], phi[g], z[g]),
        ):
            order = np.argsort(b_phi, kind="stable")
            b_phi, b_z = b_phi[order].astype(np.float64), b_z[order].astype(np.float64)
            lo = np.searchsorted(b_phi, a_phi.astype(np.float64) - PHI_TOL, side="left")
            hi = np.searchsorted(b_phi, a_phi.astype(np.float64) + PHI_TOL, side="right")
            for p, zz, i, j in zip(a_phi, a_z, lo, hi):
                assert np.any(np.abs(b_z[i:j] - float(zz)) < Z_TOL), f"layer {lay}: no match for hit phi={p} z={zz}"


@pytest.mark.parametrize("pileup", [0.0, 20.0, 60.0])
@pytest.mark.parametrize("l1_id", L1_IDS)
def test_fragments_unpack_to_the_simulated_event(pileup, l1_id):
    cfg = config(pileup)
    sim = simulate(cfg, l1_id)
    frags = event_fragments(cfg, l1_id, l1_time_ns=123456789)

    assert sorted(f.header.source_id for f in frags) == sorted(source_ids(cfg))
    assert len({f.header.source_id for f in frags}) == len(frags)
    for f in frags:
        assert f.header.l1_id == l1_id
        assert f.header.run_number == cfg.run.run_number
        assert f.header.bcid == bunch_crossing(cfg, l1_id)
        assert f.header.l1_time_ns == 123456789

    layer, r, phi, z = unpack_tracker(frags, cfg.tracker)
    assert_same_hits(sim.hits, layer, r, phi, z)

    em, had = unpack_calo(frags, cfg.calo)
    assert em.dtype == np.float32 and had.dtype == np.float32
    np.testing.assert_array_equal(em, sim.towers.em_gev)
    np.testing.assert_array_equal(had, sim.towers.had_gev)


def test_pileup_adds_hits():
    n = [len(simulate(config(p), 7).hits.layer) for p in (0.0, 60.0)]
    assert n[1] > 2 * n[0]


@pytest.mark.parametrize("n_sectors, n_regions", [(1, 1), (3, 5), (7, 2)])
def test_other_partitionings_round_trip_and_each_source_owns_its_part(n_sectors, n_regions):
    cfg = config(20.0, tracker={"n_sectors": n_sectors}, calo={"n_regions": n_regions})
    ids = source_ids(cfg)
    assert ids == [TRACKER_SOURCE_BASE + s for s in range(n_sectors)] + [CALO_SOURCE_BASE + k for k in range(n_regions)]
    sim = simulate(cfg, 11)
    frags = event_fragments(cfg, 11, 0)
    assert [f.header.source_id for f in frags] == ids
    assert_same_hits(sim.hits, *unpack_tracker(frags, cfg.tracker))
    em, had = unpack_calo(frags, cfg.calo)
    np.testing.assert_array_equal(em, sim.towers.em_gev)
    np.testing.assert_array_equal(had, sim.towers.had_gev)

    width = 2 * np.pi / n_sectors
    rows = cfg.calo.n_eta // n_regions
    for f in frags:
        if is_tracker_source(f.header.source_id):
            s = f.header.source_id - TRACKER_SOURCE_BASE
            _layer, _r, phi, _z = unpack_tracker([f], cfg.tracker)
            assert np.all(phi >= -np.pi + s * width - PHI_TOL)
            assert np.all(phi <= -np.pi + (s + 1) * width + PHI_TOL)
        else:
            assert is_calo_source(f.header.source_id)
            k = f.header.source_id - CALO_SOURCE_BASE
            ieta = f.arrays["tower_id"] // cfg.calo.n_phi
            assert np.all((ieta >= k * rows) & (ieta < (k + 1) * rows))
            # zero suppression: only non-empty towers are sent
            assert np.all(f.arrays["energy_gev"].sum(axis=1) > 0)


def test_simulation_is_reproducible_and_ids_differ():
    cfg = FarmConfig()
    a, b = simulate(cfg, 42), simulate(cfg, 42)
    for name in ("layer", "r_mm", "phi", "z_mm", "particle"):
        np.testing.assert_array_equal(getattr(a.hits, name), getattr(b.hits, name))
    np.testing.assert_array_equal(a.towers.em_gev, b.towers.em_gev)
    np.testing.assert_array_equal(a.towers.had_gev, b.towers.had_gev)
    fa, fb = event_fragments(cfg, 42, 5), event_fragments(cfg, 42, 5)
    assert [f.header for f in fa] == [f.header for f in fb]
    for x, y in zip(fa, fb):
        assert list(x.arrays) == list(y.arrays)
        for name in x.arrays:
            np.testing.assert_array_equal(x.arrays[name], y.arrays[name])

    c = simulate(cfg, 43)
    assert len(c.hits.layer) != len(a.hits.layer) or not np.array_equal(c.hits.phi, a.hits.phi)
    assert not np.array_equal(c.towers.em_gev, a.towers.em_gev)
    # and a different run seed gives a different event for the same id
    d = simulate(with_overrides(cfg, run={"seed": cfg.run.seed + 1}), 42)
    assert not np.array_equal(d.towers.em_gev, a.towers.em_gev)


# --- malformed fragment contents -----------------------------------------------------------------

CFG = FarmConfig()
N_TOWERS = CFG.calo.n_eta * CFG.calo.n_phi


def tracker_fragment(module_id, local_mm, source=TRACKER_SOURCE_BASE) -> Fragment:
    return Fragment(FragmentHeader(1, 5, 0, source, 0), {"module_id": module_id, "local_mm": local_mm})


def calo_fragment(tower_id, energy, source=CALO_SOURCE_BASE) -> Fragment:
    return Fragment(FragmentHeader(1, 5, 0, source, 0), {"tower_id": tower_id, "energy_gev": energy})


def module(layer: int, iz: int = 3, iphi: int = 4) -> int:
    return (layer << 24) | (iz << 12) | iphi


def test_valid_hand_made_fragments_unpack():
    f = tracker_fragment(np.array([module(0), module(9)], np.uint32), np.array([[1.0, 2.0], [3.0, 4.0]], np.float32))
    layer, r, phi, z = unpack_tracker([f], CFG.tracker)
    assert layer.tolist() == [0, 9]
    assert r.tolist() == [CFG.tracker.layer_radii_mm[0], CFG.tracker.layer_radii_mm[9]]
    w, length = CFG.tracker.module_width_mm, CFG.tracker.module_length_mm
    np.testing.assert_allclose(phi, [(4 * w + 1.0) / 32.0 - np.pi, (4 * w + 3.0) / 1000.0 - np.pi], rtol=1e-6)
    np.testing.assert_allclose(z, [3 * length + 2.0 - CFG.tracker.half_length_mm, 3 * length + 4.0 - CFG.tracker.half_length_mm])
    em, had = unpack_calo([calo_fragment(np.array([0, N_TOWERS - 1], np.uint32), np.array([[1, 2], [3, 4]], np.float32))], CFG.calo)
    assert em[0, 0] == 1 and had[0, 0] == 2 and em[-1, -1] == 3 and had[-1, -1] == 4
    assert em.sum() == 4 and had.sum() == 6


def test_no_fragments_gives_empty_event():
    layer, r, phi, z = unpack_tracker([], CFG.tracker)
    assert len(layer) == len(r) == len(phi) == len(z) == 0
    em, had = unpack_calo([], CFG.calo)
    assert em.shape == (CFG.calo.n_eta, CFG.calo.n_phi) and not em.any() and not had.any()


def test_out_of_range_layer():
    n_layers = len(CFG.tracker.layer_radii_mm)
    f = tracker_fragment(np.array([module(0), module(n_layers)], np.uint32), np.zeros((2, 2), np.float32))
    with pytest.raises(FragmentDataError, match="layer"):
        unpack_tracker([f], CFG.tracker)


def test_out_of_range_tower_id():
    f = calo_fragment(np.array([0, N_TOWERS], np.uint32), np.ones((2, 2), np.float32))
    with pytest.raises(FragmentDataError, match="tower id"):
        unpack_calo([f], CFG.calo)


@pytest.mark.parametrize("local_shape", [(3, 2), (1, 2), (2, 3)])
def test_tracker_shape_mismatch(local_shape):
    f = tracker_fragment(np.array([module(0), module(1)], np.uint32), np.zeros(local_shape, np.float32))
    with pytest.raises(FragmentDataError):
        unpack_tracker([f], CFG.tracker)


@pytest.mark.parametrize("energy_shape", [(3, 2), (1, 2), (2, 1)])
def test_calo_shape_mismatch(energy_shape):
    f = calo_fragment(np.array([0, 1], np.uint32), np.ones(energy_shape, np.float32))
    with pytest.raises(FragmentDataError):
        unpack_calo([f], CFG.calo)


def test_wrong_dtype_or_missing_array():
    with pytest.raises(FragmentDataError, match="module_id"):
        unpack_tracker([tracker_fragment(np.array([0], np.int64), np.zeros((1, 2), np.float32))], CFG.tracker)
    with pytest.raises(FragmentDataError, match="local_mm"):
        unpack_tracker([tracker_fragment(np.array([0], np.uint32), np.zeros((1, 2), np.float64))], CFG.tracker)
    with pytest.raises(FragmentDataError, match="tower_id"):
        unpack_calo([Fragment(FragmentHeader(1, 5, 0, CALO_SOURCE_BASE, 0), {"energy_gev": np.ones((1, 2), np.float32)})], CFG.calo)
    with pytest.raises(FragmentDataError, match="energy_gev"):
        unpack_calo([calo_fragment(np.array([0], np.uint32), np.ones(2, np.float32))], CFG.calo)


def test_fragments_of_the_other_detector_are_ignored():
    calo = calo_fragment(np.array([0], np.uint32), np.ones((1, 2), np.float32))
    trk = tracker_fragment(np.array([module(0)], np.uint32), np.zeros((1, 2), np.float32))
    assert len(unpack_tracker([calo], CFG.tracker)[0]) == 0
    assert not unpack_calo([trk], CFG.calo)[0].any()


def test_hit_at_float32_minus_pi_round_trips():
    phi = np.array([np.float32(-np.pi), np.float32(np.pi), np.float32(0.0)], np.float32)
    assert float(phi[0]) < -np.pi  # the float32 value lies just below -pi
    # ...and simulate_tracker can produce it: wrap_phi gives (-pi, pi] in float64, then float32
    assert wrap_phi(np.array([-np.pi + 1e-8])).astype(np.float32)[0] == phi[0]
    hits = TrackerHits(
        layer=np.array([0, 1, 2], np.int32),
        r_mm=np.asarray(CFG.tracker.layer_radii_mm, np.float32)[[0, 1, 2]],
        phi=phi,
        z_mm=np.array([0.0, 5.0, -5.0], np.float32),
        particle=np.zeros(3, np.int32),
    )
    packed = pack_tracker(hits, CFG.tracker)
    frags = [Fragment(FragmentHeader(1, 0, 0, TRACKER_SOURCE_BASE + s, 0), a) for s, a in enumerate(packed)]
    assert_same_hits(hits, *unpack_tracker(frags, CFG.tracker))
