"""Tests of trigger_sim.features: primary vertex, tracks at the calorimeter, jet and electron inputs.

Tracks are placed where they cross the calorimeter with the detector's convention
phi(r) = phi0 - q * asin(r / 2R), R[m] = pT / (0.3 B), written out here independently.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from trigger_sim.config import TrackerConfig
from trigger_sim.detector import CALO_RADIUS_MM, simulate_tracker
from trigger_sim.features import (
    CORE_DR,
    VERTEX_BIN_MM,
    VERTEX_PT_CAP_GEV,
    jet_tagger_inputs,
    jet_track_features,
    matched_track_pt,
    phi_at_radius,
    primary_vertex_z_mm,
    vertex_tracks,
)
from trigger_sim.kernels.calo_jets import (
    JET_EM_FRACTION,
    JET_ETA,
    JET_N_TOWERS,
    JET_PHI,
    JET_PT,
    JET_WIDTH,
    N_JET_COLUMNS,
)
from trigger_sim.kernels.em_clusters import CLUSTER_ET, CLUSTER_ETA, CLUSTER_PHI, N_CLUSTER_COLUMNS
from trigger_sim.kernels.helix_fit import (
    N_TRACK_COLUMNS,
    TRACK_CHARGE,
    TRACK_CHI2_NDF,
    TRACK_D0,
    TRACK_ETA,
    TRACK_N_HITS,
    TRACK_PHI,
    TRACK_PT,
    TRACK_Z0,
)
from trigger_sim.models.jet_tagger import FEATURE_NAMES, N_FEATURES
from trigger_sim.physics import CHARGED_HADRON, Particles

FIELD_T = 2.0


def radius_mm(pt_gev: float, field_t: float = FIELD_T) -> float:
    return pt_gev / (0.3 * field_t) * 1000.0


def wrap(phi: float) -> float:
    return math.atan2(math.sin(phi), math.cos(phi))


def expected_phi_at(pt: float, phi0: float, charge: float, r: float, field_t: float = FIELD_T) -> float:
    """NaN if the track curls up (2R < r)."""
    ratio = r / (2 * radius_mm(pt, field_t))
    if ratio > 1.0:
        return math.nan
    return wrap(phi0 - charge * math.asin(ratio))


def make_tracks(rows: list[dict]) -> np.ndarray:
    out = np.zeros((len(rows), N_TRACK_COLUMNS))
    out[:, TRACK_N_HITS] = 8
    out[:, TRACK_CHI2_NDF] = 1.0
    out[:, TRACK_CHARGE] = 1
    columns = {"pt": TRACK_PT, "phi": TRACK_PHI, "eta": TRACK_ETA, "d0": TRACK_D0, "z0": TRACK_Z0, "charge": TRACK_CHARGE}
    for i, row in enumerate(rows):
        for key, value in row.items():
            out[i, columns[key]] = value
    return out


def aimed(pt: float, eta: float, phi_calo: float, charge: int = 1, z0: float = 0.0) -> dict:
    """A track that crosses the calorimeter radius at (eta, phi_calo)."""
    phi0 = wrap(phi_calo + charge * math.asin(CALO_RADIUS_MM / (2 * radius_mm(pt))))
    return {"pt": pt, "eta": eta, "phi": phi0, "charge": charge, "z0": z0}


def make_jets(rows: list[tuple[float, float, float]]) -> np.ndarray:
    """(pT, eta, phi) per jet."""
    jets = np.zeros((len(rows), N_JET_COLUMNS), np.float32)
    for i, (pt, eta, phi) in enumerate(rows):
        jets[i, JET_PT], jets[i, JET_ETA], jets[i, JET_PHI] = pt, eta, phi
        jets[i, JET_N_TOWERS], jets[i, JET_WIDTH], jets[i, JET_EM_FRACTION] = 5, 0.05, 0.3
    return jets


def make_clusters(rows: list[tuple[float, float, float]]) -> np.ndarray:
    """(ET, eta, phi) per cluster."""
    clusters = np.zeros((len(rows), N_CLUSTER_COLUMNS), np.float32)
    for i, (et, eta, phi) in enumerate(rows):
        clusters[i, CLUSTER_ET], clusters[i, CLUSTER_ETA], clusters[i, CLUSTER_PHI] = et, eta, phi
    return clusters


NO_TRACKS = np.zeros((0, N_TRACK_COLUMNS))


# --- primary_vertex_z_mm ---------------------------------------------------------------------------


def capped_average(z: list[float], pt: list[float]) -> float:
    return float(np.average(z, weights=np.minimum(pt, VERTEX_PT_CAP_GEV) ** 2))


def test_primary_vertex_among_pileup_tracks():
    signal_z, signal_pt = [12.0, 12.3, 12.6, 12.1, 12.5], [15.0, 8.0, 20.0, 5.0, 12.0]
    pileup = [(-60.0, 2.0), (-59.5, 1.5), (-30.0, 3.0), (40.0, 2.5), (40.3, 1.2), (80.0, 2.0), (-5.0, 0.8)]
    rows = [{"pt": p, "z0": z} for z, p in zip(signal_z, signal_pt)] + [{"pt": p, "z0": z} for z, p in pileup]
    tracks = make_tracks(rows)
    vz = primary_vertex_z_mm(tracks)
    assert vz == pytest.approx(capped_average(signal_z, signal_pt))
    # the order of the tracks does not matter
    assert primary_vertex_z_mm(tracks[::-1]) == pytest.approx(vz)


def test_tracks_beyond_the_neighbouring_bins_do_not_pull_the_vertex():
    # the vertex bin holds 12.0 and 12.5 (bin [10, 15)); 26.0 is three bins away, a sizeable pile-up track
    rows = [{"pt": 20.0, "z0": 12.0}, {"pt": 10.0, "z0": 12.5}, {"pt": 15.0, "z0": 26.0}]
    assert primary_vertex_z_mm(make_tracks(rows)) == pytest.approx(capped_average([12.0, 12.5], [20.0, 10.0]))


def test_primary_vertex_without_tracks_is_the_nominal_point():
    assert primary_vertex_z_mm(NO_TRACKS) == 0.0
    soft = make_tracks([{"pt": 0.9, "z0": 30.0}, {"pt": 1.0, "z0": 31.0}, {"pt": math.nan, "z0": 32.0}])
    assert primary_vertex_z_mm(soft) == 0.0  # none above 1 GeV (strictly), the NaN fit ignored
    assert primary_vertex_z_mm(soft, min_pt_gev=0.5) == pytest.approx(capped_average([30.0, 31.0], [0.9, 1.0]))


def test_soft_tracks_do_not_vote():
    rows = [{"pt": 0.95, "z0": 50.0 + 0.01 * i} for i in range(100)] + [{"pt": 2.0, "z0": -30.0}]
    assert primary_vertex_z_mm(make_tracks(rows)) == pytest.approx(-30.0)


def test_one_very_stiff_track_does_not_pick_the_vertex():
    # uncapped, 1000² would beat 5 x 30²; capped at VERTEX_PT_CAP_GEV, 50² does not
    rows = [{"pt": 1000.0, "z0": -60.0}] + [{"pt": 30.0, "z0": 20.0 + 0.1 * i} for i in range(5)]
    assert VERTEX_PT_CAP_GEV ** 2 < 5 * 30.0**2
    assert primary_vertex_z_mm(make_tracks(rows)) == pytest.approx(20.2)
    # two 40 GeV tracks (3200) beat one 200 GeV track (capped 2500)
    rows = [{"pt": 200.0, "z0": 70.0}, {"pt": 40.0, "z0": -10.0}, {"pt": 40.0, "z0": -10.4}]
    assert primary_vertex_z_mm(make_tracks(rows)) == pytest.approx(-10.2)
    # ... but not three 25 GeV tracks (1875)
    rows = [{"pt": 200.0, "z0": 70.0}] + [{"pt": 25.0, "z0": -10.0}] * 3
    assert primary_vertex_z_mm(make_tracks(rows)) == pytest.approx(70.0)


@st.composite
def vertex_events(draw):
    vz = draw(st.floats(-150.0, 150.0))
    n_signal = draw(st.integers(3, 8))
    signal = [(vz + draw(st.floats(-1.0, 1.0)), draw(st.floats(5.0, 120.0))) for _ in range(n_signal)]
    n_pileup = draw(st.integers(0, 10))
    pileup = []
    for _ in range(n_pileup):
        z = draw(st.floats(-250.0, 250.0))
        assume(abs(z - vz) >= 25.0)
        pileup.append((z, draw(st.floats(1.01, 2.0))))
    return signal, pileup


@settings(max_examples=150, deadline=None)
@given(vertex_events(), st.integers(-20, 20))
def test_primary_vertex_is_the_hard_vertex_and_shifts_with_it(event, k):
    signal, pileup = event
    # at most 10 pile-up tracks of at most 2 GeV (40 GeV²) against at least 3 of 5 GeV (75 GeV²)
    rows = [{"pt": p, "z0": z} for z, p in signal + pileup]
    tracks = make_tracks(rows)
    vz = primary_vertex_z_mm(tracks)
    assert vz == pytest.approx(capped_average([z for z, _ in signal], [p for _, p in signal]), abs=1e-9)
    assert min(z for z, _ in signal) - 1e-9 <= vz <= max(z for z, _ in signal) + 1e-9
    # shifting every track by whole bins shifts the vertex by as much
    shifted = tracks.copy()
    shifted[:, TRACK_Z0] += k * VERTEX_BIN_MM
    assert primary_vertex_z_mm(shifted) == pytest.approx(vz + k * VERTEX_BIN_MM, abs=1e-6)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.floats(-200, 200), st.floats(0.0, 300.0)), min_size=1, max_size=20))
def test_primary_vertex_lies_among_the_tracks_that_vote(rows):
    tracks = make_tracks([{"pt": p, "z0": z} for z, p in rows])
    voting = [z for z, p in rows if p > 1.0]
    vz = primary_vertex_z_mm(tracks)
    if not voting:
        assert vz == 0.0
    else:
        assert min(voting) - 1e-9 <= vz <= max(voting) + 1e-9


# --- vertex_tracks --------------------------------------------------------------------------------------


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.one_of(st.floats(0.0, 50.0), st.just(math.nan)), st.floats(-100, 100)), max_size=15),
    st.floats(-50, 50), st.floats(0.5, 20.0), st.floats(0.0, 5.0),
)
def test_vertex_tracks_keeps_tracks_near_the_vertex_above_the_threshold(rows, vz, max_dz, min_pt):
    tracks = make_tracks([{"pt": p, "z0": z} for p, z in rows])
    kept = vertex_tracks(tracks, vz, max_dz, min_pt)
    expected = [i for i, (p, z) in enumerate(rows) if p == p and p > min_pt and abs(z - vz) < max_dz]
    assert kept.shape == (len(expected), N_TRACK_COLUMNS)
    np.testing.assert_array_equal(kept, tracks[expected])


def test_vertex_tracks_cuts_are_strict():
    tracks = make_tracks([{"pt": 5.0, "z0": 12.0}, {"pt": 5.0, "z0": 8.0}, {"pt": 5.0, "z0": 11.9},
                          {"pt": 1.0, "z0": 10.0}, {"pt": 1.01, "z0": 10.0}])
    kept = vertex_tracks(tracks, vertex_z_mm=10.0, max_dz_mm=2.0, min_pt_gev=1.0)
    np.testing.assert_array_equal(kept, tracks[[2, 4]])  # |dz| = 2 and pT = 1 are out


def test_vertex_tracks_of_no_tracks():
    assert vertex_tracks(NO_TRACKS, 0.0, 10.0, 1.0).shape == (0, N_TRACK_COLUMNS)


# --- phi_at_radius ------------------------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.floats(0.1, 200.0), st.floats(-math.pi, math.pi), st.sampled_from([-1, 0, 1])), max_size=10),
    st.floats(10.0, 2000.0), st.floats(0.5, 4.0),
)
def test_phi_at_radius_follows_the_detector_convention(rows, r, field_t):
    tracks = make_tracks([{"pt": p, "phi": phi, "charge": q} for p, phi, q in rows])
    got = phi_at_radius(tracks, r, field_t)
    assert got.shape == (len(rows),)
    for value, (p, phi, q) in zip(got, rows):
        expected = expected_phi_at(p, phi, q, r, field_t)
        if math.isnan(expected):
            assert math.isnan(value)
        else:
            assert -math.pi <= value <= math.pi
            assert abs(wrap(value - expected)) < 1e-9


def test_positive_tracks_bend_clockwise():
    tracks = make_tracks([{"pt": 1.0, "phi": 0.0, "charge": 1}, {"pt": 1.0, "phi": 0.0, "charge": -1}])
    bend = math.asin(1300.0 / (2 * 1000.0 / 0.6))
    assert phi_at_radius(tracks, 1300.0, 2.0) == pytest.approx([-bend, bend])


def test_tracks_that_curl_up_before_the_radius_have_no_phi():
    # R = 0.3 / 0.6 m = 500 mm: the track turns back at r = 1000 mm
    tracks = make_tracks([{"pt": 0.3, "phi": 1.0}, {"pt": 0.3, "phi": 1.0, "charge": -1}])
    assert np.isnan(phi_at_radius(tracks, 1300.0, 2.0)).all()
    assert np.isfinite(phi_at_radius(tracks, 900.0, 2.0)).all()
    assert phi_at_radius(NO_TRACKS, 1300.0, 2.0).shape == (0,)


def test_phi_at_radius_matches_the_tracker_simulation():
    radii = (100.0, 500.0, 1300.0)
    cfg = TrackerConfig(layer_radii_mm=radii, half_length_mm=5000.0, resolution_rphi_mm=0.0, resolution_z_mm=0.0,
                        noise_hits_per_layer=0.0, efficiency=1.0, field_t=FIELD_T)
    pt = np.array([0.45, 1.0, 3.0, 25.0, 0.8, 0.2])
    phi = np.array([3.1, -3.1, 0.5, -1.0, 2.0, 0.0])
    charge = np.array([1, -1, 1, -1, -1, 1])
    n = len(pt)
    particles = Particles(pt_gev=pt, eta=np.zeros(n), phi=phi, charge=charge, kind=np.full(n, CHARGED_HADRON),
                          vz_mm=np.zeros(n), origin=np.zeros(n, np.int64))
    hits = simulate_tracker(particles, cfg, np.random.default_rng(0))
    tracks = make_tracks([{"pt": p, "phi": f, "charge": q} for p, f, q in zip(pt, phi, charge)])
    for layer, r in enumerate(radii):
        predicted = phi_at_radius(tracks, r, FIELD_T)
        for i in range(n):
            on = (hits.particle == i) & (hits.layer == layer)
            if on.any():
                assert abs(wrap(float(hits.phi[on][0]) - predicted[i])) < 1e-5
            else:  # the simulation leaves no hit where the track has curled up
                assert math.isnan(predicted[i])


# --- jet_track_features ------------------------------------------------------------------------------------


def test_jet_track_features_by_hand():
    jet_eta, jet_phi = 0.3, 1.0
    jets = make_jets([(50.0, jet_eta, jet_phi), (80.0, -2.0, -2.0)])
    tracks = make_tracks([
        aimed(11.0, jet_eta + 0.05, jet_phi),  # core
        aimed(2.0, jet_eta, jet_phi + 0.06, charge=1),  # core at the calorimeter; phi0 about 0.2 away
        aimed(12.0, jet_eta - 0.15, jet_phi),  # annulus
        aimed(3.0, jet_eta, jet_phi - 0.3, charge=-1),  # annulus
        aimed(20.0, jet_eta + 0.5, jet_phi),  # outside the cone
        {"pt": 2.0, "eta": jet_eta, "phi": jet_phi, "charge": 1},  # starts on the axis, reaches it 0.196 off: annulus
        {"pt": 0.3, "eta": jet_eta, "phi": jet_phi, "charge": 1},  # curls up before the calorimeter
    ])
    bend_2gev = math.asin(CALO_RADIUS_MM / (2 * radius_mm(2.0)))
    assert CORE_DR < bend_2gev < 0.4
    out = jet_track_features(jets, tracks, FIELD_T, cone_dr=0.4)
    assert out.shape == (2, 4)
    assert out[0].tolist() == pytest.approx([2, 3, 12.0 / 50.0, 13.0 / 50.0])
    assert out[1].tolist() == [0.0, 0.0, 0.0, 0.0]


def test_jet_track_features_without_jets_tracks_or_reachable_tracks():
    jets = make_jets([(50.0, 0.0, 0.0)])
    assert jet_track_features(jets, NO_TRACKS, FIELD_T, 0.4).tolist() == [[0.0, 0.0, 0.0, 0.0]]
    assert jet_track_features(make_jets([]), make_tracks([aimed(5.0, 0.0, 0.0)]), FIELD_T, 0.4).shape == (0, 4)
    curling = make_tracks([{"pt": 0.2, "eta": 0.0, "phi": 0.0}])
    assert jet_track_features(jets, curling, FIELD_T, 0.4).tolist() == [[0.0, 0.0, 0.0, 0.0]]


def test_jet_track_features_wrap_phi():
    jets = make_jets([(40.0, 0.0, math.pi - 0.02)])
    tracks = make_tracks([aimed(8.0, 0.0, -math.pi + 0.03), aimed(9.0, 0.0, -math.pi + 0.2, charge=-1)])
    out = jet_track_features(jets, tracks, FIELD_T, cone_dr=0.4)
    assert out[0].tolist() == pytest.approx([1, 1, 9.0 / 40.0, 8.0 / 40.0])


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.floats(5.0, 200.0), st.floats(-2.0, 2.0), st.floats(-math.pi, math.pi)), max_size=4),
    st.lists(st.tuples(st.floats(0.2, 50.0), st.floats(-2.5, 2.5), st.floats(-math.pi, math.pi),
                       st.sampled_from([-1, 1])), max_size=12),
    st.floats(0.2, 0.6),
)
def test_jet_track_features_equal_a_brute_force_count(jet_rows, track_rows, cone):
    jets = make_jets(jet_rows)
    tracks = make_tracks([{"pt": p, "eta": e, "phi": f, "charge": q} for p, e, f, q in track_rows])
    out = jet_track_features(jets, tracks, FIELD_T, cone_dr=cone)
    assert out.shape == (len(jet_rows), 4)
    for j in range(len(jet_rows)):
        jeta, jphi, jpt = float(jets[j, JET_ETA]), float(jets[j, JET_PHI]), float(jets[j, JET_PT])
        core, annulus, lead, core_sum = 0, 0, 0.0, 0.0
        for p, e, f, q in track_rows:
            phi_calo = expected_phi_at(p, f, q, CALO_RADIUS_MM)
            if math.isnan(phi_calo):
                continue
            dr = math.hypot(e - jeta, wrap(phi_calo - jphi))
            assume(abs(dr - CORE_DR) > 1e-7 and abs(dr - cone) > 1e-7)
            if dr < CORE_DR:
                core += 1
                core_sum += p
            elif dr < cone:
                annulus += 1
            if dr < cone:
                lead = max(lead, p)
        assert out[j].tolist() == pytest.approx([core, annulus, lead / jpt, core_sum / jpt])


# --- jet_tagger_inputs -------------------------------------------------------------------------------------


def test_jet_tagger_inputs_follow_feature_names():
    assert N_FEATURES == len(FEATURE_NAMES) == 9
    jets = make_jets([(45.0, -1.2, 0.3), (120.0, 0.7, -2.0)])
    jets[:, JET_EM_FRACTION] = [0.25, 0.8]
    jets[:, JET_N_TOWERS] = [3, 12]
    jets[:, JET_WIDTH] = [0.04, 0.12]
    track_features = np.array([[1, 2, 0.4, 0.5], [3, 0, 0.3, 0.9]])
    x = jet_tagger_inputs(jets, track_features)
    assert x.dtype == np.float32 and x.shape == (2, N_FEATURES)
    col = {name: x[:, i] for i, name in enumerate(FEATURE_NAMES)}
    assert col["log_pt"] == pytest.approx(np.log([45.0, 120.0]))
    assert col["abs_eta"] == pytest.approx([1.2, 0.7])
    assert col["em_fraction"] == pytest.approx([0.25, 0.8])
    assert col["log_n_towers"] == pytest.approx(np.log([3.0, 12.0]))
    assert col["width"] == pytest.approx([0.04, 0.12])
    assert col["n_core_tracks"].tolist() == [1.0, 3.0]
    assert col["n_isolation_tracks"].tolist() == [2.0, 0.0]
    assert col["leading_track_fraction"] == pytest.approx([0.4, 0.3])
    assert col["core_track_fraction"] == pytest.approx([0.5, 0.9])


def test_jet_tagger_inputs_are_finite_for_degenerate_jets():
    jets = make_jets([(0.0, 0.0, 0.0), (30.0, 0.0, 0.0)])
    jets[:, JET_N_TOWERS] = 0
    track_features = np.array([[0, 0, 0.0, 0.0], [1, 0, 40.0, 40.0]])  # a track far stiffer than its jet
    x = jet_tagger_inputs(jets, track_features)
    assert np.isfinite(x).all()
    col = {name: x[:, i] for i, name in enumerate(FEATURE_NAMES)}
    assert col["log_n_towers"].tolist() == [0.0, 0.0]
    assert col["leading_track_fraction"][1] <= 2.0 and col["core_track_fraction"][1] <= 2.0
    assert col["log_pt"][0] < col["log_pt"][1]
    assert jet_tagger_inputs(make_jets([]), np.zeros((0, 4))).shape == (0, N_FEATURES)


def test_jet_tagger_inputs_from_jet_track_features():
    jets = make_jets([(60.0, 0.5, 0.5)])
    tracks = make_tracks([aimed(15.0, 0.52, 0.5), aimed(6.0, 0.5, 0.75)])
    x = jet_tagger_inputs(jets, jet_track_features(jets, tracks, FIELD_T, 0.4))
    col = {name: float(x[0, i]) for i, name in enumerate(FEATURE_NAMES)}
    assert (col["n_core_tracks"], col["n_isolation_tracks"]) == (1.0, 1.0)
    assert col["leading_track_fraction"] == pytest.approx(15.0 / 60.0)
    assert col["core_track_fraction"] == pytest.approx(15.0 / 60.0)


# --- matched_track_pt --------------------------------------------------------------------------------------


def test_matched_track_pt_by_hand():
    clusters = make_clusters([(30.0, 0.5, 1.0), (20.0, -1.5, -2.5), (25.0, 1.8, 3.1)])
    tracks = make_tracks([
        aimed(20.0, 0.51, 1.01),  # matches cluster 0
        aimed(15.0, 0.49, 0.99, charge=-1),  # matches cluster 0, softer
        aimed(40.0, 0.5, 1.1),  # phi 0.1 off: no
        aimed(35.0, 0.58, 1.0),  # eta 0.08 off: no
        {"pt": 3.0, "eta": -1.5, "phi": -2.5, "charge": 1},  # starts at cluster 1 but bends 0.1 away: no
        {"pt": 0.3, "eta": 1.8, "phi": 3.1, "charge": 1},  # curls up: never matches
        aimed(9.0, 1.8, -3.14),  # across ±pi from cluster 2: matches
    ])
    out = matched_track_pt(clusters, tracks, FIELD_T, max_deta=0.05, max_dphi=0.05)
    assert out.tolist() == pytest.approx([20.0, 0.0, 9.0])
    wide = matched_track_pt(clusters, tracks, FIELD_T, max_deta=0.1, max_dphi=0.15)
    assert wide.tolist() == pytest.approx([40.0, 3.0, 9.0])


def test_matched_track_pt_without_tracks_or_clusters():
    clusters = make_clusters([(30.0, 0.5, 1.0)])
    assert matched_track_pt(clusters, NO_TRACKS, FIELD_T, 0.05, 0.05).tolist() == [0.0]
    assert matched_track_pt(make_clusters([]), make_tracks([aimed(5.0, 0.0, 0.0)]), FIELD_T, 0.05, 0.05).shape == (0,)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.floats(5.0, 100.0), st.floats(-2.0, 2.0), st.floats(-math.pi, math.pi)), max_size=4),
    st.lists(st.tuples(st.floats(0.2, 60.0), st.floats(-2.5, 2.5), st.floats(-math.pi, math.pi),
                       st.sampled_from([-1, 1])), max_size=10),
    st.floats(0.01, 0.3), st.floats(0.01, 0.3),
)
def test_matched_track_pt_equals_a_brute_force_search(cluster_rows, track_rows, max_deta, max_dphi):
    clusters = make_clusters(cluster_rows)
    tracks = make_tracks([{"pt": p, "eta": e, "phi": f, "charge": q} for p, e, f, q in track_rows])
    out = matched_track_pt(clusters, tracks, FIELD_T, max_deta, max_dphi)
    assert out.shape == (len(cluster_rows),)
    for c in range(len(cluster_rows)):
        ceta, cphi = float(clusters[c, CLUSTER_ETA]), float(clusters[c, CLUSTER_PHI])
        best = 0.0
        for p, e, f, q in track_rows:
            phi_calo = expected_phi_at(p, f, q, CALO_RADIUS_MM)
            if math.isnan(phi_calo):
                continue
            deta, dphi = abs(ceta - e), abs(wrap(cphi - phi_calo))
            assume(abs(deta - max_deta) > 1e-7 and abs(dphi - max_dphi) > 1e-7)
            if deta < max_deta and dphi < max_dphi:
                best = max(best, p)
        assert out[c] == pytest.approx(best)
