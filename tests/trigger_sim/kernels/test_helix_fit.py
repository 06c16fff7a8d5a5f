"""fit_helices against its numpy reference, against exact helices and the tracker simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_sim.config import TrackerConfig
from trigger_sim.detector import simulate_tracker
from trigger_sim.kernels import (
    N_TRACK_COLUMNS,
    TRACK_CHARGE,
    TRACK_CHI2_NDF,
    TRACK_D0,
    TRACK_ETA,
    TRACK_N_HITS,
    TRACK_PHI,
    TRACK_PT,
    TRACK_Z0,
    fit_helices,
    fit_helices_reference,
)
from trigger_sim.physics import CHARGED_HADRON, Particles

IMPLEMENTATIONS = pytest.mark.parametrize(
    "fit", [fit_helices, fit_helices_reference], ids=["numba", "numpy"]
)
RADII_MM = np.asarray(TrackerConfig().layer_radii_mm)
FIELD_T = 2.0
PARAMETERS = [TRACK_PT, TRACK_PHI, TRACK_ETA, TRACK_D0, TRACK_Z0, TRACK_CHARGE]


def helix_hits(
    pt_gev: np.ndarray,
    charge: np.ndarray,
    phi: np.ndarray,
    eta: np.ndarray,
    d0_mm: np.ndarray,
    z0_mm: np.ndarray,
    radii_mm: np.ndarray = RADII_MM,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Exact float64 hits (r, phi, z) of helices given at their perigee, on each layer reached.

    Returns (reached (n_tracks, n_layers) bool, r, phi, z), each (n_tracks, n_layers). From the
    PCA (-d0 sin phi, d0 cos phi) the track turns by psi = s / R (clockwise for q > 0) over the
    arc length s, along a chord of length 2 R sin(psi / 2) in the direction phi - q psi / 2, so
    r^2 = d0^2 + 4 R sin^2(psi / 2) (R - q d0) gives psi on each layer.
    """
    radius_mm = (pt_gev / (0.3 * FIELD_T) * 1000.0)[:, None]
    q, ph, d0 = charge[:, None], phi[:, None], d0_mm[:, None]
    sin2 = (radii_mm**2 - d0**2) / (4.0 * radius_mm * (radius_mm - q * d0))
    reached = (radii_mm > np.abs(d0)) & (sin2 <= 1.0)
    half_sin = np.sqrt(np.where(reached, sin2, 0.0))  # sin(psi / 2)
    half_psi = np.arcsin(half_sin)
    s = 2.0 * radius_mm * half_psi
    chord = 2.0 * radius_mm * half_sin
    x = -d0 * np.sin(ph) + chord * np.cos(ph - q * half_psi)
    y = d0 * np.cos(ph) + chord * np.sin(ph - q * half_psi)
    r = np.hypot(x, y)
    np.testing.assert_allclose(r[reached], np.broadcast_to(radii_mm, r.shape)[reached], rtol=1e-12)
    return reached, r, np.arctan2(y, x), z0_mm[:, None] + s * np.sinh(eta)[:, None]


def wrapped(dphi: np.ndarray) -> np.ndarray:
    return np.remainder(dphi + math.pi, 2.0 * math.pi) - math.pi


def assert_same_fits(got: np.ndarray, want: np.ndarray, extent_mm: float,
                     turning: np.ndarray | None = None) -> None:
    """Same fits up to the order of floating-point operations. d0 and z0 are differences of
    coordinates up to extent_mm, extrapolated over that lever arm: they agree to 1e-10 of it
    (1e-7 mm at a metre; the hits' resolution is 0.015 mm). Tracks marked `turning` have hits
    near where their fitted helix turns back (r near 2R): the arc length s = 2R asin(r / 2R)
    that eta, d0 and z0 rest on has a diverging derivative there, so the order of operations
    moves them far more (2.6e-6 mm of z0 in a case hypothesis found): 1e-4 for those."""
    assert got.dtype == np.float64 and got.shape == want.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    both = ~np.isnan(got[:, TRACK_PT])
    exact = [TRACK_N_HITS, TRACK_CHARGE]
    np.testing.assert_array_equal(got[:, exact], want[:, exact])
    for col in (TRACK_PT, TRACK_CHI2_NDF):
        np.testing.assert_allclose(got[both, col], want[both, col], rtol=1e-9, atol=1e-9)
    turning = np.zeros(len(got), bool) if turning is None else turning
    for rows, loose in ((both & ~turning, False), (both & turning, True)):
        np.testing.assert_allclose(got[rows, TRACK_ETA], want[rows, TRACK_ETA], rtol=1e-9, atol=1e-4 if loose else 1e-9)
        for col in (TRACK_D0, TRACK_Z0):
            np.testing.assert_allclose(got[rows, col], want[rows, col], rtol=1e-9,
                                       atol=1e-4 if loose else max(1e-9, 1e-10 * extent_mm))
    dphi = wrapped(got[both, TRACK_PHI] - want[both, TRACK_PHI])
    np.testing.assert_allclose(dphi, 0.0, atol=1e-9)


def turning_tracks(fits: np.ndarray, event: dict, near: float = 0.95) -> np.ndarray:
    """Tracks with a hit beyond `near` x 2R of their fitted helix (R from the fitted pT)."""
    r_max = np.zeros(len(fits))
    on_track = event["track_of_hit"] >= 0
    np.maximum.at(r_max, event["track_of_hit"][on_track], np.asarray(event["r_mm"], np.float64)[on_track])
    with np.errstate(invalid="ignore"):
        radius_mm = fits[:, TRACK_PT] / (0.3 * event["field_t"]) * 1000.0
        return r_max > near * 2.0 * radius_mm


@st.composite
def track_events(draw: st.DrawFn) -> dict:
    """Helix hits (smeared by 0 up to 50 mm) on random layers, junk hits, -1 hits, shuffled."""
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    helix = st.tuples(
        st.floats(0.3, 1000.0),  # pT
        st.sampled_from([-1.0, 1.0]),
        st.floats(-math.pi, math.pi),
        st.floats(-3.0, 3.0),  # eta
        st.one_of(st.just(0.0), st.floats(-30.0, 30.0)),  # d0
        st.floats(-200.0, 200.0),  # z0
        st.lists(st.booleans(), min_size=RADII_MM.size, max_size=RADII_MM.size),  # layers hit
        st.sampled_from([0.0, 0.015, 1.0, 50.0]),  # smearing, mm
    )
    helices = draw(st.lists(helix, max_size=6))
    n_tracks = len(helices) + draw(st.integers(0, 2))
    track, r, phi, z = [], [], [], []
    if helices:
        pt, q, ph, eta, d0, z0, layers, smear_mm = (np.array(v) for v in zip(*helices))
        reached, hr, hphi, hz = helix_hits(pt, q, ph, eta, d0, z0)
        reached &= layers
        rows, cols = np.nonzero(reached)
        track += rows.tolist()
        r += hr[rows, cols].tolist()
        rphi_mm, dz_mm = smear_mm[rows] * rng.normal(0.0, 1.0, (2, rows.size))
        phi += (hphi[rows, cols] + rphi_mm / hr[rows, cols]).tolist()
        z += (hz[rows, cols] + 3.0 * dz_mm).tolist()
    # Junk: anywhere in the detector, on a track or on none.
    for _ in range(draw(st.integers(0, 12))):
        track.append(draw(st.integers(-1, n_tracks - 1)))
        r.append(float(draw(st.sampled_from(RADII_MM.tolist()))))
        phi.append(draw(st.floats(-math.pi, math.pi)))
        z.append(draw(st.floats(-1000.0, 1000.0)))
    order = rng.permutation(len(track))
    as32 = draw(st.booleans())  # the simulation's float32 hits, or float64
    dtype = np.float32 if as32 else np.float64
    return dict(
        track_of_hit=np.array(track, np.int32)[order].reshape(-1),
        n_tracks=n_tracks,
        r_mm=np.array(r, dtype)[order].reshape(-1),
        phi=np.array(phi, dtype)[order].reshape(-1),
        z_mm=np.array(z, dtype)[order].reshape(-1),
        field_t=FIELD_T,
    )


@settings(max_examples=300, deadline=None)
@given(track_events())
def test_numba_matches_reference(event: dict) -> None:
    got = fit_helices(**event)
    assert got.shape == (event["n_tracks"], N_TRACK_COLUMNS)
    extent_mm = max(np.abs(event["r_mm"]).max(initial=0.0), np.abs(event["z_mm"]).max(initial=0.0))
    want = fit_helices_reference(**event)
    assert_same_fits(got, want, extent_mm, turning_tracks(want, event))


def random_helices(n: int, rng: np.random.Generator, d0_max_mm: float) -> dict[str, np.ndarray]:
    """Perigee parameters: pT log-uniform 0.5-500 GeV, both charges, |eta| < 2.5, |z0| < 150 mm."""
    return dict(
        pt_gev=np.exp(rng.uniform(math.log(0.5), math.log(500.0), n)),
        charge=rng.choice([-1.0, 1.0], n),
        phi=rng.uniform(-math.pi, math.pi, n),
        eta=rng.uniform(-2.5, 2.5, n),
        d0_mm=rng.uniform(-d0_max_mm, d0_max_mm, n),
        z0_mm=rng.uniform(-150.0, 150.0, n),
    )


def flatten(reached: np.ndarray, r: np.ndarray, phi: np.ndarray, z: np.ndarray) -> dict:
    rows, cols = np.nonzero(reached)
    return dict(
        track_of_hit=rows.astype(np.int32), n_tracks=reached.shape[0],
        r_mm=r[rows, cols], phi=phi[rows, cols], z_mm=z[rows, cols], field_t=FIELD_T,
    )


@IMPLEMENTATIONS
@pytest.mark.parametrize("d0_max_mm", [0.0, 20.0])
def test_exact_helices_are_fitted_back(fit, d0_max_mm: float) -> None:
    rng = np.random.default_rng(11)
    truth = random_helices(2000, rng, d0_max_mm)
    reached, r, phi, z = helix_hits(**truth)
    # Some tracks lose layers at random (inefficiency), keeping at least three.
    reached &= (rng.random(reached.shape) < 0.7) | (np.arange(RADII_MM.size) < 3)
    fitted = fit(**flatten(reached, r, phi, z))
    assert not np.isnan(fitted).any()
    np.testing.assert_array_equal(fitted[:, TRACK_N_HITS], reached.sum(axis=1))
    np.testing.assert_array_equal(fitted[:, TRACK_CHARGE], truth["charge"])
    np.testing.assert_allclose(fitted[:, TRACK_PT], truth["pt_gev"], rtol=1e-6)
    np.testing.assert_allclose(wrapped(fitted[:, TRACK_PHI] - truth["phi"]), 0.0, atol=1e-9)
    np.testing.assert_allclose(fitted[:, TRACK_ETA], truth["eta"], atol=1e-9)
    np.testing.assert_allclose(fitted[:, TRACK_D0], truth["d0_mm"], atol=1e-7)
    np.testing.assert_allclose(fitted[:, TRACK_Z0], truth["z0_mm"], atol=1e-7)
    assert np.all(fitted[:, TRACK_CHI2_NDF] < 1e-6)


def simulated(n: int, rng: np.random.Generator, pt_gev: np.ndarray, smeared: bool) -> tuple:
    """Particles from the beam line, their hits from simulate_tracker (float32), and the fits."""
    particles = Particles(
        pt_gev=pt_gev,
        eta=rng.uniform(-2.5, 2.5, n),
        phi=rng.uniform(-math.pi, math.pi, n),
        charge=rng.choice([-1, 1], n),
        kind=np.full(n, CHARGED_HADRON),
        vz_mm=rng.uniform(-150.0, 150.0, n),
        origin=np.zeros(n, np.int64),
    )
    resolution = {} if smeared else dict(resolution_rphi_mm=0.0, resolution_z_mm=0.0)
    cfg = TrackerConfig(efficiency=1.0, noise_hits_per_layer=0.0, field_t=FIELD_T, **resolution)
    hits = simulate_tracker(particles, cfg, rng)
    assert hits.r_mm.dtype == np.float32
    fitted = fit_helices(hits.particle, n, hits.r_mm, hits.phi, hits.z_mm, cfg.field_t)
    return particles, fitted


def test_simulated_hits_without_smearing() -> None:
    # The simulation's own conventions (charge sign, phi, z) and its float32 rounding.
    rng = np.random.default_rng(3)
    n = 3000
    truth, fitted = simulated(n, rng, np.exp(rng.uniform(math.log(0.5), math.log(500.0), n)), False)
    ok = fitted[:, TRACK_N_HITS] >= 3
    assert ok.mean() > 0.9
    np.testing.assert_array_equal(fitted[ok, TRACK_CHARGE], truth.charge[ok])
    np.testing.assert_allclose(wrapped(fitted[ok, TRACK_PHI] - truth.phi[ok]), 0.0, atol=1e-5)
    np.testing.assert_allclose(fitted[ok, TRACK_ETA], truth.eta[ok], atol=1e-6)
    np.testing.assert_allclose(fitted[ok, TRACK_Z0], truth.vz_mm[ok], atol=5e-4)
    np.testing.assert_allclose(fitted[ok, TRACK_D0], 0.0, atol=5e-4)
    # pT to 0.1 %: float32 positions (~0.1 um at 1 m) limit high-pT tracks on few layers.
    full = fitted[:, TRACK_N_HITS] == RADII_MM.size
    assert full.sum() > 500
    np.testing.assert_allclose(fitted[full, TRACK_PT], truth.pt_gev[full], rtol=1e-3)
    soft = ok & (truth.pt_gev < 20.0)
    np.testing.assert_allclose(fitted[soft, TRACK_PT], truth.pt_gev[soft], rtol=1e-3)


def rms(values: np.ndarray) -> float:
    return float(np.sqrt(np.mean(values**2)))


@pytest.mark.parametrize("pt_gev", [1.0, 10.0])
def test_resolution_with_the_simulations_smearing(pt_gev: float) -> None:
    # Hits smeared by 0.015 mm (r-phi) and 0.05 mm (z), no multiple scattering, so the relative
    # pT resolution grows like pT. Measured (3000 tracks, |eta| < 2.5, seed 17), at 1 and 10 GeV:
    # 10 hits (1 m lever arm): 0.018 %, 0.195 %; 6-9 hits: 0.13 %, 1.25 %; 4-5 hits: 0.9 %, 9.7 %.
    # d0 rms 0.011 mm with 10 hits (largest 0.04 mm), 0.018 mm with >= 4; z0 rms 0.025 mm, 0.035.
    rng = np.random.default_rng(17)
    n = 3000
    truth, fitted = simulated(n, rng, np.full(n, pt_gev), True)
    n_hits = fitted[:, TRACK_N_HITS]
    full, middle, fitted_4 = n_hits == 10, (n_hits >= 6) & (n_hits <= 9), n_hits >= 4
    assert full.sum() > 1000 and middle.sum() > 1000 and fitted_4.mean() > 0.98
    np.testing.assert_array_equal(fitted[fitted_4, TRACK_CHARGE], truth.charge[fitted_4])
    pt_rel = fitted[:, TRACK_PT] / pt_gev - 1.0
    assert rms(pt_rel[full]) < 0.0003 * pt_gev
    assert rms(pt_rel[middle]) < 0.002 * pt_gev
    d0 = fitted[:, TRACK_D0]
    assert rms(d0[full]) < 0.015 and np.abs(d0[full]).max() < 0.1
    assert rms(d0[fitted_4]) < 0.025
    z0 = fitted[:, TRACK_Z0] - truth.vz_mm
    assert rms(z0[full]) < 0.035 and rms(z0[fitted_4]) < 0.05
    assert rms(wrapped(fitted[full, TRACK_PHI] - truth.phi[full])) < 1e-4
    # chi2 / ndf is normalised to the simulation's 0.015 mm: mean 1 (sd 0.53 / sqrt(1000)).
    assert 0.9 < np.mean(fitted[full, TRACK_CHI2_NDF]) < 1.1


@IMPLEMENTATIONS
def test_rotation_and_mirror(fit) -> None:
    # Rotating the event turns phi; mirroring it in the x axis flips charge, phi and d0.
    rng = np.random.default_rng(5)
    truth = random_helices(200, rng, 10.0)
    event = flatten(*helix_hits(**truth))
    event["phi"] = event["phi"] + rng.normal(0.0, 1e-4, event["phi"].size)  # not exact circles
    base = fit(**event)
    turned = fit(**dict(event, phi=wrapped(event["phi"] + 1.0)))
    same = [TRACK_PT, TRACK_ETA, TRACK_D0, TRACK_Z0, TRACK_CHARGE, TRACK_CHI2_NDF]
    np.testing.assert_allclose(turned[:, same], base[:, same], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(wrapped(turned[:, TRACK_PHI] - base[:, TRACK_PHI] - 1.0), 0.0,
                               atol=1e-9)
    mirrored = fit(**dict(event, phi=-event["phi"]))
    same = [TRACK_PT, TRACK_ETA, TRACK_Z0, TRACK_CHI2_NDF]
    np.testing.assert_allclose(mirrored[:, same], base[:, same], rtol=1e-7, atol=1e-9)
    flipped = [TRACK_D0, TRACK_CHARGE]
    np.testing.assert_allclose(mirrored[:, flipped], -base[:, flipped], rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(wrapped(mirrored[:, TRACK_PHI] + base[:, TRACK_PHI]), 0.0,
                               atol=1e-9)


@IMPLEMENTATIONS
def test_hit_order_and_other_tracks_do_not_matter(fit) -> None:
    rng = np.random.default_rng(9)
    event = flatten(*helix_hits(**random_helices(50, rng, 5.0)))
    event["z_mm"] = event["z_mm"] + rng.normal(0.0, 0.05, event["z_mm"].size)
    base = fit(**event)
    order = rng.permutation(event["r_mm"].size)
    shuffled = fit(**{k: v[order] if isinstance(v, np.ndarray) else v for k, v in event.items()})
    np.testing.assert_allclose(shuffled, base, rtol=1e-9, atol=1e-9)
    alone = event["track_of_hit"] == 7
    single = fit(**{k: v[alone] if isinstance(v, np.ndarray) else v for k, v in event.items()})
    np.testing.assert_allclose(single[7], base[7], rtol=1e-9)
    assert np.isnan(single[:7, TRACK_PT]).all() and (single[:7, TRACK_N_HITS] == 0).all()


@IMPLEMENTATIONS
def test_short_degenerate_and_missing_tracks(fit) -> None:
    # Track 0: 3 exact hits (fitted, chi2 / ndf undefined); 1: 2 hits; 2: three hits at one
    # radius; 3: no hits; one hit on no track (-1).
    reached, r, phi, z = helix_hits(*(np.array([v]) for v in (5.0, 1.0, 0.2, 0.5, 0.0, 3.0)),
                                    radii_mm=RADII_MM[:3])
    track = [0, 0, 0, 1, 1, 2, 2, 2, -1]
    r_mm = list(r[0]) + [32.0, 72.0] + [100.0] * 3 + [50.0]
    phis = list(phi[0]) + [0.0, 0.0, 0.1, 0.2, 0.3, 1.0]
    z_mm = list(z[0]) + [0.0, 1.0, 0.0, 1.0, 2.0, 9.0]
    fitted = fit(np.array(track), 4, np.array(r_mm), np.array(phis), np.array(z_mm), FIELD_T)
    np.testing.assert_array_equal(fitted[:, TRACK_N_HITS], [3, 2, 3, 0])
    np.testing.assert_allclose(fitted[0, [TRACK_PT, TRACK_PHI, TRACK_ETA, TRACK_Z0]],
                               [5.0, 0.2, 0.5, 3.0], rtol=1e-9)
    assert fitted[0, TRACK_CHARGE] == 1.0 and np.isnan(fitted[0, TRACK_CHI2_NDF])
    for t in (1, 2, 3):
        assert np.isnan(np.delete(fitted[t], TRACK_N_HITS)).all()


@IMPLEMENTATIONS
def test_straight_line_has_infinite_pt(fit) -> None:
    # Exactly collinear hits along the x axis: zero curvature, no charge.
    r = np.array([32.0, 72.0, 116.0, 172.0])
    fitted = fit(np.zeros(4, np.int32), 1, r, np.zeros(4), 2.0 * r + 5.0, FIELD_T)[0]
    assert fitted[TRACK_PT] == np.inf and fitted[TRACK_CHARGE] == 0.0
    np.testing.assert_allclose(fitted[[TRACK_PHI, TRACK_D0, TRACK_Z0, TRACK_ETA]],
                               [0.0, 0.0, 5.0, math.asinh(2.0)], atol=1e-12)


@IMPLEMENTATIONS
def test_no_hits_and_no_tracks(fit) -> None:
    empty = np.empty(0, np.float32)
    assert fit(np.empty(0, np.int32), 0, empty, empty, empty, FIELD_T).shape == (0, N_TRACK_COLUMNS)
    fitted = fit(np.empty(0, np.int32), 2, empty, empty, empty, FIELD_T)
    np.testing.assert_array_equal(fitted[:, TRACK_N_HITS], [0, 0])


@IMPLEMENTATIONS
@pytest.mark.parametrize(
    "track, n_tracks, n_r, field_t, message",
    [
        ([0, 0, 2], 2, 3, 2.0, "track ids"),
        ([0, 0, -2], 2, 3, 2.0, "track ids"),
        ([0.0, 0.0, 1.0], 2, 3, 2.0, "integer"),
        ([0, 0, 1], 2, 2, 2.0, "same length"),
        ([0, 0, 1], -1, 3, 2.0, "n_tracks"),
        ([0, 0, 1], 2, 3, 0.0, "field_t"),
        ([0, 0, 1], 2, 3, float("nan"), "field_t"),
    ],
)
def test_bad_inputs_are_rejected(fit, track, n_tracks, n_r, field_t, message) -> None:
    hits = np.ones(3)
    with pytest.raises(ValueError, match=message):
        fit(np.array(track), n_tracks, np.ones(n_r), hits, hits, field_t)
