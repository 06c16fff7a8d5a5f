"""Tests of trigger_sim.validation: truth matching and the figures of `trigger-sim validate`.

Every expectation is derived from the definitions in the module docstring, on hand-built
events or by brute force over small random ones.
"""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_sim.kernels.helix_fit import N_TRACK_COLUMNS, TRACK_PT
from trigger_sim.physics import TRUTH_ELECTRON, TRUTH_JET, TRUTH_TAU
from trigger_sim.validation import (
    EDGE_MIN_PT_GEV,
    JET_MATCH_DR,
    MATCH_PURITY,
    TAU_MIN_VISIBLE_PT_GEV,
    TRACK_PT_BINS_GEV,
    TrackMatch,
    ValidationTally,
    edge_counts,
    jet_labels,
    match_tracks,
    roc_auc,
    roc_curve,
    true_quantity,
    turn_on_curve,
)

NOISE = -1


# --- edge_counts --------------------------------------------------------------------------------


def edges_of(*pairs: tuple[int, int]) -> np.ndarray:
    return np.array(pairs, np.int64).reshape(-1, 2)


def test_edge_counts_on_a_hand_built_graph():
    # hits:             0  1  2  3  4  5      6      7  8
    hit_particle = np.array([0, 0, 0, 1, 1, NOISE, NOISE, 2, 2])
    particle_pt = np.array([5.0, 0.5, 1.0])  # particle 2 sits exactly at 1 GeV: not above it
    edges = edges_of(
        (0, 1),  # true, particle 0 (5 GeV)        selected
        (1, 2),  # true, particle 0 (5 GeV)        not selected
        (3, 4),  # true, particle 1 (0.5 GeV)      selected
        (5, 6),  # noise - noise: not true         selected
        (0, 3),  # two particles: not true         selected
        (7, 8),  # true, particle 2 (1.0 GeV)      selected
        (2, 5),  # particle - noise: not true      not selected
    )
    selected = np.array([True, False, True, True, True, True, False])
    counts = edge_counts(edges, selected, hit_particle, particle_pt)
    assert counts == {
        "true_hipt": 2,  # (0,1) and (1,2)
        "selected_true_hipt": 1,  # (0,1)
        "selected": 5,
        "selected_true": 3,  # (0,1), (3,4), (7,8): any pT
    }


def test_edge_counts_threshold_is_a_parameter():
    hit_particle = np.array([0, 0, 1, 1])
    pt = np.array([2.0, 0.7])
    edges = edges_of((0, 1), (2, 3))
    sel = np.array([True, True])
    assert edge_counts(edges, sel, hit_particle, pt)["true_hipt"] == 1
    assert edge_counts(edges, sel, hit_particle, pt, min_pt_gev=0.5)["true_hipt"] == 2
    assert edge_counts(edges, sel, hit_particle, pt, min_pt_gev=2.0)["true_hipt"] == 0  # strictly above


def test_noise_hits_never_make_true_edges():
    hit_particle = np.full(6, NOISE)
    edges = edges_of((0, 1), (1, 2), (3, 4), (4, 5), (0, 5))
    counts = edge_counts(edges, np.ones(len(edges), bool), hit_particle, np.array([100.0]))
    assert counts == {"true_hipt": 0, "selected_true_hipt": 0, "selected": 5, "selected_true": 0}


def test_edge_counts_without_edges():
    counts = edge_counts(np.zeros((0, 2), np.int64), np.zeros(0, bool), np.array([0, 0]), np.array([3.0]))
    assert counts == {"true_hipt": 0, "selected_true_hipt": 0, "selected": 0, "selected_true": 0}


@st.composite
def random_graphs(draw):
    n_particles = draw(st.integers(1, 4))
    n_hits = draw(st.integers(2, 14))
    hit_particle = np.array(draw(st.lists(st.integers(-1, n_particles - 1), min_size=n_hits, max_size=n_hits)))
    pt = np.array(draw(st.lists(st.sampled_from([0.3, 0.9, 1.0, 1.1, 5.0]), min_size=n_particles, max_size=n_particles)))
    pairs = draw(st.lists(st.tuples(st.integers(0, n_hits - 1), st.integers(0, n_hits - 1)), max_size=25))
    selected = np.array(draw(st.lists(st.booleans(), min_size=len(pairs), max_size=len(pairs))), bool)
    return hit_particle, pt, edges_of(*pairs), selected


@settings(max_examples=150, deadline=None)
@given(random_graphs())
def test_edge_counts_equal_a_brute_force_count(graph):
    hit_particle, pt, edges, selected = graph
    expected = {"true_hipt": 0, "selected_true_hipt": 0, "selected": 0, "selected_true": 0}
    for (i, j), sel in zip(edges.tolist(), selected.tolist()):
        a, b = int(hit_particle[i]), int(hit_particle[j])
        true = a == b and a != NOISE
        hipt = true and pt[a] > EDGE_MIN_PT_GEV
        expected["true_hipt"] += hipt
        expected["selected_true_hipt"] += hipt and sel
        expected["selected"] += sel
        expected["selected_true"] += true and sel
    counts = edge_counts(edges, selected, hit_particle, pt)
    assert counts == expected
    assert counts["selected_true_hipt"] <= min(counts["true_hipt"], counts["selected_true"])
    assert counts["selected_true"] <= counts["selected"]


# --- match_tracks -------------------------------------------------------------------------------


class Event:
    """Hits with their particle, layer and track (-1: on no track), built particle by particle."""

    def __init__(self, particle_pt: list[float], particle_charge: list[int] | None = None):
        self.pt = np.asarray(particle_pt, np.float64)
        self.charge = np.asarray(particle_charge if particle_charge is not None else [1] * len(particle_pt))
        self.particle: list[int] = []
        self.layer: list[int] = []
        self.track: list[int] = []

    def hits(self, particle: int, layers, track: int = -1) -> Event:
        for layer in layers:
            self.particle.append(particle)
            self.layer.append(layer)
            self.track.append(track)
        return self

    def match(self, n_tracks: int, fitted_pt: list[float] | None = None, min_hits: int = 3) -> TrackMatch:
        tracks = np.zeros((n_tracks, N_TRACK_COLUMNS))
        tracks[:, TRACK_PT] = fitted_pt if fitted_pt is not None else 10.0
        return match_tracks(np.array(self.track, np.int64), n_tracks, tracks, np.array(self.particle, np.int64),
                            np.array(self.layer, np.int64), self.pt, self.charge, min_hits)


def test_a_perfect_track_finds_its_particle():
    m = Event([8.0]).hits(0, range(6), track=0).match(1, fitted_pt=[8.4])
    assert m.reconstructable_pt_gev.tolist() == [8.0]
    assert m.found.tolist() == [True]
    assert (m.n_tracks, m.n_fake, m.n_duplicates) == (1, 0, 0)
    assert m.pt_residuals.tolist() == pytest.approx([(8.4 - 8.0) / 8.0])


def test_a_track_mixing_two_particles_half_and_half_is_a_fake():
    ev = Event([5.0, 6.0]).hits(0, range(3), track=0).hits(1, range(3, 6), track=0)
    ev.hits(0, range(6, 9)).hits(1, range(6, 9))  # the rest of each particle, on no track
    m = ev.match(1)
    assert m.found.tolist() == [False, False]
    assert m.n_fake == 1 and m.n_duplicates == 0
    assert len(m.pt_residuals) == 0


def test_purity_threshold_is_at_least_three_quarters_of_the_track():
    assert MATCH_PURITY == 0.75
    # 3 of the particle's hits and one noise hit: purity 3/4, the track holds all 3 of its hits
    m = Event([5.0]).hits(0, range(3), track=0).hits(NOISE, [3], track=0).match(1)
    assert m.found.tolist() == [True] and m.n_fake == 0
    # 2 of particle 0 and 1 of particle 1: purity 2/3
    ev = Event([5.0, 5.0]).hits(0, range(2), track=0).hits(1, [2], track=0).hits(1, [3, 4])
    m = ev.match(1, min_hits=2)
    assert m.found.tolist() == [False, False] and m.n_fake == 1
    # a track of noise hits only
    m = Event([5.0]).hits(NOISE, range(4), track=0).hits(0, range(4)).match(1)
    assert m.found.tolist() == [False] and m.n_fake == 1


def test_a_particle_split_into_two_equal_halves_is_found_once_with_a_duplicate():
    # each half holds exactly half of the particle's hits: both tracks match it
    m = Event([4.0]).hits(0, range(3), track=0).hits(0, range(3, 6), track=1).match(2)
    assert m.found.tolist() == [True]
    assert m.n_fake == 0
    assert m.n_duplicates == 1
    assert len(m.pt_residuals) == 2


def test_a_particle_split_unevenly_is_matched_by_the_bigger_part_only():
    m = Event([4.0]).hits(0, range(4), track=0).hits(0, range(4, 6), track=1).match(2, fitted_pt=[4.2, 3.0])
    assert m.found.tolist() == [True]
    assert m.n_duplicates == 0
    assert m.pt_residuals.tolist() == pytest.approx([(4.2 - 4.0) / 4.0])  # only the matched track


def test_a_pure_track_holding_under_half_of_its_particle_is_a_fragment_not_a_fake():
    # 6 hits: 4 on track 0 (matched), 2 on track 1 (pure, but under half): track 1 matches nothing
    m = Event([4.0]).hits(0, range(4), track=0).hits(0, range(4, 6), track=1).match(2)
    assert m.n_fake == 0 and m.n_fragments == 1 and m.found.tolist() == [True]


def test_duplicates_count_matched_tracks_beyond_the_first():
    # particle 0: 8 hits, four tracks of 2 hits hold a quarter each: none holds half, none matches
    m = Event([3.0]).hits(0, [0, 1], 0).hits(0, [2, 3], 1).hits(0, [4, 5], 2).hits(0, [6, 7], 3).match(4)
    assert m.found.tolist() == [False] and m.n_duplicates == 0
    # particle 0: 4 hits, three tracks each with 2 of them (hits reused): all three match
    ev = Event([3.0]).hits(0, [0, 1], 0).hits(0, [2, 3], 1)
    ev.hits(0, [0, 1], 2)  # a third track using again hits on layers 0 and 1 (same particle)
    m = ev.match(3, min_hits=2)
    # the particle now has 6 hits recorded (hits are what the arrays list), each track holds 2: under half
    assert m.found.tolist() == [False]
    # particle 0 with 4 hits, particle 1 with 4: two tracks each for particle 0, one for particle 1
    ev = Event([3.0, 7.0]).hits(0, [0, 1], 0).hits(0, [2, 3], 1).hits(1, range(4), 2)
    m = ev.match(3, min_hits=2)
    assert m.found.tolist() == [True, True]
    assert m.n_duplicates == 1 and m.n_fake == 0


def test_reconstructable_means_charged_with_hits_on_min_hits_distinct_layers():
    ev = Event([2.0, 3.0, 4.0, 5.0, 6.0], particle_charge=[1, -1, 0, 1, 1])
    ev.hits(0, [0, 1, 2])  # 3 layers: reconstructable with min_hits 3
    ev.hits(1, [0, 0, 1, 1])  # 4 hits but 2 distinct layers: not reconstructable
    ev.hits(2, [0, 1, 2, 3])  # neutral
    ev.hits(3, [5, 7, 9, 11], track=0)  # 4 layers, on a track
    # particle 4 leaves no hit
    m = ev.match(1, min_hits=3)
    assert m.reconstructable_pt_gev.tolist() == [2.0, 5.0]
    assert m.found.tolist() == [False, True]
    m = ev.match(1, min_hits=4)
    assert m.reconstructable_pt_gev.tolist() == [5.0]
    m = ev.match(1, min_hits=2)
    assert m.reconstructable_pt_gev.tolist() == [2.0, 3.0, 5.0]


def test_track_counts_above_1gev_use_the_fitted_pt():
    ev = Event([5.0, 0.8, 6.0])
    ev.hits(0, range(4), 0)  # matched, fitted 5.1
    ev.hits(1, range(4), 1)  # matched, fitted 1.5 (the true pT is 0.8): no residual, counts above 1 GeV
    ev.hits(2, range(2), 2).hits(0, range(4, 6), 2)  # 50/50: fake, fitted 2.0
    ev.hits(2, range(2, 4), 3).hits(1, [4, 5], 3)  # 50/50: fake, fitted 0.9
    ev.hits(2, [6, 7], 4).hits(0, [7, 8], 4)  # 50/50: fake, fit failed (NaN)
    m = ev.match(5, fitted_pt=[5.1, 1.5, 2.0, 0.9, float("nan")], min_hits=2)
    assert m.n_tracks == 5
    assert m.n_fake == 3
    assert m.n_tracks_above_1gev == 3
    assert m.n_fake_above_1gev == 1
    assert m.pt_residuals.tolist() == pytest.approx([(5.1 - 5.0) / 5.0])


def test_no_tracks():
    m = Event([5.0]).hits(0, range(5)).match(0)
    assert m.found.tolist() == [False]
    assert (m.n_tracks, m.n_fake, m.n_tracks_above_1gev, m.n_fake_above_1gev, m.n_duplicates) == (0, 0, 0, 0, 0)


@st.composite
def random_tracking_events(draw):
    n_particles = draw(st.integers(1, 4))
    n_tracks = draw(st.integers(0, 4))
    n_hits = draw(st.integers(1, 20))
    particle = draw(st.lists(st.integers(-1, n_particles - 1), min_size=n_hits, max_size=n_hits))
    layer = draw(st.lists(st.integers(0, 5), min_size=n_hits, max_size=n_hits))
    track = draw(st.lists(st.integers(-1, n_tracks - 1), min_size=n_hits, max_size=n_hits))
    pt = draw(st.lists(st.sampled_from([0.5, 1.0, 2.0, 10.0]), min_size=n_particles, max_size=n_particles))
    charge = draw(st.lists(st.sampled_from([-1, 0, 1]), min_size=n_particles, max_size=n_particles))
    fitted = draw(st.lists(st.sampled_from([0.5, 1.0, 3.0, float("nan")]), min_size=n_tracks, max_size=n_tracks))
    min_hits = draw(st.integers(1, 4))
    return (np.array(particle, np.int64), np.array(layer, np.int64), np.array(track, np.int64), np.array(pt),
            np.array(charge), np.array(fitted), n_tracks, min_hits)


@settings(max_examples=200, deadline=None)
@given(random_tracking_events())
def test_match_tracks_follows_the_double_majority_definition(event):
    particle, layer, track, pt, charge, fitted, n_tracks, min_hits = event
    n_particles = len(pt)
    tracks = np.zeros((n_tracks, N_TRACK_COLUMNS))
    tracks[:, TRACK_PT] = fitted
    m = match_tracks(track, n_tracks, tracks, particle, layer, pt, charge, min_hits)

    hits_of = [int((particle == p).sum()) for p in range(n_particles)]
    layers_of = [len(set(layer[particle == p].tolist())) for p in range(n_particles)]
    reconstructable = [charge[p] != 0 and layers_of[p] >= min_hits for p in range(n_particles)]
    matches: list[list[int]] = [[] for _ in range(n_particles)]  # tracks matched to each particle
    impure = 0
    for t in range(n_tracks):
        on = particle[track == t]
        size = len(on)
        pure = [p for p in range(n_particles) if size and (on == p).sum() >= MATCH_PURITY * size]
        if not pure:
            impure += 1
        for p in pure:
            if 2 * (on == p).sum() >= hits_of[p]:
                matches[p].append(t)
    n_matched_tracks = sum(len(ts) for ts in matches)

    assert m.reconstructable_pt_gev.tolist() == [pt[p] for p in range(n_particles) if reconstructable[p]]
    assert m.found.tolist() == [bool(matches[p]) for p in range(n_particles) if reconstructable[p]]
    assert m.n_duplicates == sum(max(len(ts) - 1, 0) for ts in matches)
    assert m.n_tracks == n_tracks
    above = [bool(np.isfinite(f) and f > 1.0) for f in fitted]
    assert m.n_tracks_above_1gev == sum(above)
    # every impure track is a fake, and no matched track is
    assert impure <= m.n_fake <= n_tracks - n_matched_tracks
    assert m.n_fake_above_1gev <= min(m.n_fake, m.n_tracks_above_1gev)
    expected_residuals = sorted(
        (fitted[t] - pt[p]) / pt[p] for p in range(n_particles) for t in matches[p] if pt[p] > 1.0 and np.isfinite(fitted[t])
    )
    assert sorted(m.pt_residuals.tolist()) == pytest.approx(expected_residuals)


# --- jet_labels -----------------------------------------------------------------------------------


def labels_for(jets: list[tuple[float, float]], truth: list[tuple[int, float, float, float]]) -> list[int]:
    je = np.array([j[0] for j in jets], np.float64)
    jp = np.array([j[1] for j in jets], np.float64)
    kind = np.array([t[0] for t in truth], np.int8)
    tpt, teta, tphi = (np.array([t[i] for t in truth], np.float64) for i in (1, 2, 3))
    return jet_labels(je, jp, kind, tpt, teta, tphi).tolist()


def test_jet_labels_on_hand_built_jets():
    assert JET_MATCH_DR == 0.2 and TAU_MIN_VISIBLE_PT_GEV == 15.0
    truth = [
        (TRUTH_TAU, 30.0, 0.6, 1.05),  # hard tau
        (TRUTH_TAU, 10.0, -1.0, -2.0),  # soft tau
        (TRUTH_ELECTRON, 40.0, 2.0, 0.0),
        (TRUTH_JET, 100.0, -2.0, 2.0),
        (TRUTH_TAU, 15.0, 0.0, -0.5),  # exactly at the threshold: soft
    ]
    jets = [
        (0.5, 1.0),  # ΔR 0.112 from the hard tau: 1
        (-1.05, -2.1),  # near the soft tau: -1
        (2.1, 0.1),  # near the electron: background, 0
        (-2.0, 2.0),  # on the parton: 0
        (0.75, 1.0),  # ΔR 0.158 from the hard tau: 1
        (0.81, 1.05),  # ΔR 0.21 from the hard tau: 0
        (0.0, -0.45),  # near the 15 GeV tau: -1
        (3.0, -3.0),  # near nothing: 0
    ]
    assert labels_for(jets, truth) == [1, -1, 0, 0, 1, 0, -1, 0]


def test_jet_at_exactly_the_match_radius_is_not_matched():
    # Δeta 0.2 exactly and Δphi 0: ΔR is not below JET_MATCH_DR
    assert labels_for([(0.2, 0.0)], [(TRUTH_TAU, 40.0, 0.0, 0.0)]) == [0]
    assert labels_for([(0.1999, 0.0)], [(TRUTH_TAU, 40.0, 0.0, 0.0)]) == [1]


def test_jet_near_a_hard_tau_and_an_electron_is_a_tau_jet():
    truth = [(TRUTH_ELECTRON, 40.0, 0.0, 0.0), (TRUTH_TAU, 40.0, 0.1, 0.0), (TRUTH_TAU, 5.0, 0.0, 0.1)]
    assert labels_for([(0.05, 0.05)], truth) == [1]


def test_jet_labels_wrap_phi():
    truth = [(TRUTH_TAU, 50.0, 0.0, math.pi - 0.05)]
    assert labels_for([(0.0, -math.pi + 0.05)], truth) == [1]  # Δphi 0.1 across ±pi
    assert labels_for([(0.0, -math.pi + 0.2)], truth) == [0]  # Δphi 0.25
    truth = [(TRUTH_TAU, 10.0, 0.0, -math.pi + 0.01)]  # a soft tau across ±pi: not used
    assert labels_for([(0.0, math.pi - 0.01)], truth) == [-1]


def test_jet_labels_without_jets_or_truth():
    assert labels_for([], [(TRUTH_TAU, 50.0, 0.0, 0.0)]) == []
    assert labels_for([(0.0, 0.0), (1.0, 1.0)], []) == [0, 0]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-2.5, 2.5), st.floats(-math.pi, math.pi)), max_size=6),
    st.lists(st.tuples(st.sampled_from([TRUTH_JET, TRUTH_TAU, TRUTH_ELECTRON]), st.floats(1.0, 60.0),
                       st.floats(-2.5, 2.5), st.floats(-math.pi, math.pi)), max_size=5),
)
def test_jet_labels_equal_a_brute_force_match(jets, truth):
    expected = []
    for eta, phi in jets:
        near = []
        for kind, pt, teta, tphi in truth:
            dphi = (phi - tphi + math.pi) % (2 * math.pi) - math.pi
            dr = math.hypot(eta - teta, dphi)
            if abs(dr - JET_MATCH_DR) < 1e-9:
                return  # too close to the cone edge to judge in floating point
            if dr < JET_MATCH_DR:
                near.append((kind, pt))
        if any(k == TRUTH_TAU and pt > TAU_MIN_VISIBLE_PT_GEV for k, pt in near):
            expected.append(1)
        elif any(k == TRUTH_TAU for k, _ in near):  # a soft tau (electrons are background)
            expected.append(-1)
        else:
            expected.append(0)
    assert labels_for(jets, truth) == expected


# --- roc_auc and roc_curve ---------------------------------------------------------------------


def brute_force_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    pos, neg = scores[labels == 1], scores[labels == 0]
    wins = sum(1.0 if s > b else 0.5 if s == b else 0.0 for s in pos for b in neg)
    return wins / (len(pos) * len(neg))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5), st.sampled_from([-1, 0, 1])), max_size=30))
def test_roc_auc_is_the_pairwise_probability_with_ties_half(pairs):
    scores = np.array([p[0] / 5.0 for p in pairs], np.float64)
    labels = np.array([p[1] for p in pairs], np.int64)
    auc = roc_auc(scores, labels)
    if not (labels == 1).any() or not (labels == 0).any():
        assert math.isnan(auc)
        return
    assert auc == pytest.approx(brute_force_auc(scores, labels), abs=1e-12)
    assert 0.0 <= auc <= 1.0
    # swapping the classes mirrors the area
    swapped = np.where(labels == 1, 0, np.where(labels == 0, 1, labels))
    assert roc_auc(scores, swapped) == pytest.approx(1.0 - auc, abs=1e-12)
    # a strictly increasing transform of the scores changes nothing
    assert roc_auc(np.exp(3 * scores) - 7, labels) == pytest.approx(auc, abs=1e-12)


def test_roc_auc_limits():
    labels = np.array([0, 0, 0, 1, 1])
    assert roc_auc(np.array([0.1, 0.2, 0.3, 0.4, 0.9]), labels) == 1.0
    assert roc_auc(np.array([0.9, 0.8, 0.7, 0.4, 0.1]), labels) == 0.0
    assert roc_auc(np.full(5, 0.3), labels) == 0.5
    assert math.isnan(roc_auc(np.array([0.1, 0.2]), np.array([0, 0])))
    assert math.isnan(roc_auc(np.array([0.1, 0.2]), np.array([1, 1])))
    assert math.isnan(roc_auc(np.array([0.1, 0.2]), np.array([-1, 1])))
    assert math.isnan(roc_auc(np.empty(0), np.empty(0, np.int64)))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=20))
def test_roc_auc_of_identical_samples_is_one_half(values):
    scores = np.array(values + values)
    labels = np.array([1] * len(values) + [0] * len(values))
    assert roc_auc(scores, labels) == pytest.approx(0.5, abs=1e-12)


def test_roc_auc_of_one_distribution_is_one_half_in_expectation():
    rng = np.random.default_rng(2024)
    aucs = [roc_auc(rng.normal(size=60), rng.integers(0, 2, size=60)) for _ in range(300)]
    # each AUC has a standard deviation of about 0.075; the mean of 300 about 0.0043
    assert np.mean(aucs) == pytest.approx(0.5, abs=0.025)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 99), st.sampled_from([0, 1])), min_size=1, max_size=40))
def test_roc_curve_counts_scores_at_or_above_each_cut(pairs):
    grid = np.linspace(0.0, 1.0, 101)
    scores = np.array([grid[p[0]] for p in pairs])
    labels = np.array([p[1] for p in pairs])
    bkg, sig = roc_curve(scores, labels)
    assert bkg.shape == sig.shape == (101,)
    pos, neg = scores[labels == 1], scores[labels == 0]
    for k, cut in enumerate(grid):
        if len(pos):
            assert sig[k] == sum(s >= cut for s in pos) / len(pos)
        else:
            assert math.isnan(sig[k])
        if len(neg):
            assert bkg[k] == sum(s >= cut for s in neg) / len(neg)
        else:
            assert math.isnan(bkg[k])
    if len(pos) and len(neg):
        assert sig[0] == bkg[0] == 1.0 and sig[-1] == bkg[-1] == 0.0  # scores below 1 on the grid
        assert np.all(np.diff(sig) <= 0) and np.all(np.diff(bkg) <= 0)
        # every score is a cut: the trapezoid area under the curve is the AUC, ties counting half
        x, y = bkg[::-1], sig[::-1]
        area = float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))
        assert area == pytest.approx(roc_auc(scores, labels), abs=1e-9)


def test_roc_curve_number_of_points():
    bkg, sig = roc_curve(np.array([0.2, 0.7]), np.array([0, 1]), n_points=5)
    assert sig.tolist() == [1.0, 1.0, 1.0, 0.0, 0.0]  # cuts 0, 0.25, 0.5, 0.75, 1
    assert bkg.tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]


# --- turn_on_curve ---------------------------------------------------------------------------------


def test_turn_on_curve_by_hand():
    edges = np.array([0.0, 10.0, 20.0, 30.0])
    points = [(5.0, True), (5.0, False), (9.99, False), (10.0, True), (15.0, True), (29.0, False),
              (-1.0, True), (30.0, True), (45.0, True)]  # below the first edge, at and above the last: no bin
    curve = turn_on_curve(points, edges)
    assert curve["bin_edges"] == [0.0, 10.0, 20.0, 30.0]
    assert curve["events"] == [3, 2, 1]
    assert curve["efficiency"] == pytest.approx([1 / 3, 1.0, 0.0])
    assert all(e is not None and e > 0 for e in curve["error"])
    assert curve["error"][0] >= math.sqrt((1 / 3) * (2 / 3) / 3)  # at least the binomial error


def test_turn_on_curve_empty_bins_and_no_points():
    curve = turn_on_curve([(1.0, True)], np.array([0.0, 2.0, 4.0]))
    assert curve["events"] == [1, 0]
    assert curve["efficiency"] == [1.0, None] and curve["error"][1] is None
    curve = turn_on_curve([], np.array([0.0, 1.0]))
    assert curve == {"bin_edges": [0.0, 1.0], "efficiency": [None], "error": [None], "events": [0]}


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.tuples(st.floats(-10, 110, allow_nan=False), st.booleans()), max_size=40),
    st.lists(st.floats(0, 100), min_size=2, max_size=8, unique=True).map(sorted),
)
def test_turn_on_curve_equals_a_hand_count(points, edges):
    curve = turn_on_curve(points, np.array(edges))
    assert len(curve["efficiency"]) == len(curve["error"]) == len(curve["events"]) == len(edges) - 1
    for b, (lo, hi) in enumerate(zip(edges, edges[1:])):
        inside = [passed for x, passed in points if lo <= x < hi]
        assert curve["events"][b] == len(inside)
        if not inside:
            assert curve["efficiency"][b] is None and curve["error"][b] is None
            continue
        p = sum(inside) / len(inside)
        assert curve["efficiency"][b] == pytest.approx(p)
        err = curve["error"][b]
        assert err >= 0.0
        assert err >= math.sqrt(p * (1 - p) / len(inside)) - 1e-12  # at least the binomial error
        assert err <= 1.0
    json.dumps(curve)  # plain Python numbers


# --- true_quantity ------------------------------------------------------------------------------------


def fake_truth(objects: list[tuple[int, float]], met: float = 0.0,
               particles: list[tuple[int, int, float]] = ()) -> SimpleNamespace:
    """objects: (truth kind, pT); particles: (origin, charge, pT)."""
    return SimpleNamespace(
        truth_kind=np.array([o[0] for o in objects], np.int8),
        truth_pt_gev=np.array([o[1] for o in objects], np.float64),
        true_met_gev=met,
        particles=SimpleNamespace(
            origin=np.array([p[0] for p in particles], np.int64),
            charge=np.array([p[1] for p in particles], np.int64),
            pt_gev=np.array([p[2] for p in particles], np.float64),
        ),
    )


FULL_TRUTH = fake_truth(
    [(TRUTH_JET, 80.0), (TRUTH_TAU, 25.0), (TRUTH_JET, 100.0), (TRUTH_TAU, 40.0), (TRUTH_ELECTRON, 30.0),
     (TRUTH_ELECTRON, 12.0), (TRUTH_TAU, 18.0)],
    met=55.0,
    # pile-up particles (origin 0) and neutral ones never count for the tracks quantity
    particles=[(0, 1, 500.0), (1, 1, 20.0), (2, -1, 30.0), (3, 0, 50.0), (0, -1, 7.0), (5, 1, 9.0)],
)


@pytest.mark.parametrize(
    "selection, min_score, expected",
    [
        ("jets", 0.0, 100.0),  # leading parton
        ("em", 0.0, 100.0),
        ("em", 0.5, 100.0),  # only jets chains with a tagger cut are tau chains
        ("jets", 0.5, 25.0),  # sub-leading visible tau of 40, 25, 18
        ("ht", 0.0, 180.0),  # sum of parton pT
        ("met", 0.0, 55.0),
        ("electron", 0.0, 30.0),  # leading electron
        ("tracks", 0.0, 20.0),  # second-hardest charged particle of the hard process: 30, 20, 9
    ],
)
def test_true_quantity_per_selection(selection, min_score, expected):
    two_taus = 2 if selection == "jets" and min_score > 0 else 1  # as for a chain asking for two tagged jets
    assert true_quantity(selection, min_score, FULL_TRUTH, two_taus) == pytest.approx(expected)


@pytest.mark.parametrize("selection", ["all", "muons"])
def test_true_quantity_is_nan_where_undefined(selection):
    assert math.isnan(true_quantity(selection, 0.0, FULL_TRUTH))


def test_true_quantity_without_the_objects_is_zero():
    empty = fake_truth([(TRUTH_ELECTRON, 20.0)], met=0.0, particles=[(1, 1, 20.0), (0, 1, 40.0), (2, 0, 30.0)])
    assert true_quantity("jets", 0.0, empty) == 0.0
    assert true_quantity("em", 0.0, empty) == 0.0
    assert true_quantity("ht", 0.0, empty) == 0.0
    assert true_quantity("jets", 0.5, empty) == 0.0  # no tau
    assert true_quantity("tracks", 0.0, empty) == 0.0  # one hard charged particle only
    assert true_quantity("met", 0.0, empty) == 0.0
    no_electron = fake_truth([(TRUTH_JET, 20.0)])
    assert true_quantity("electron", 0.0, no_electron) == 0.0


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([TRUTH_JET, TRUTH_TAU, TRUTH_ELECTRON]), st.floats(0.5, 500.0)), max_size=8))
def test_true_quantity_properties(objects):
    truth = fake_truth(objects)
    jets = [pt for k, pt in objects if k == TRUTH_JET]
    taus = sorted((pt for k, pt in objects if k == TRUTH_TAU), reverse=True)
    electrons = [pt for k, pt in objects if k == TRUTH_ELECTRON]
    assert true_quantity("ht", 0.0, truth) == pytest.approx(sum(jets))
    assert true_quantity("jets", 0.0, truth) == (max(jets) if jets else 0.0)
    assert true_quantity("em", 0.0, truth) == true_quantity("jets", 0.0, truth)
    assert true_quantity("electron", 0.0, truth) == (max(electrons) if electrons else 0.0)
    if len(taus) >= 2:
        assert true_quantity("jets", 0.5, truth, min_count=2) == taus[1]
    else:
        assert true_quantity("jets", 0.5, truth, min_count=2) == 0.0
    assert true_quantity("jets", 0.5, truth) == (taus[0] if taus else 0.0)


# --- ValidationTally ---------------------------------------------------------------------------------


def three_event_tally() -> tuple[ValidationTally, list[TrackMatch]]:
    tally = ValidationTally()
    tally.add_edges({"true_hipt": 10, "selected_true_hipt": 8, "selected": 12, "selected_true": 9})
    tally.add_edges({"true_hipt": 6, "selected_true_hipt": 6, "selected": 4, "selected_true": 3})
    # event 1: particle 0 (5 GeV) found with a 5.5 GeV track; particle 1 (0.8 GeV) not; one fake track
    ev1 = Event([5.0, 0.8, 2.0]).hits(0, range(4), 0).hits(1, range(4)).hits(2, range(2), 1).hits(1, range(4, 6), 1)
    m1 = ev1.match(2, fitted_pt=[5.5, 3.0])
    # event 2: particle 0 (12 GeV) split in two halves, both matched (one duplicate); particle 1 (30 GeV) lost
    ev2 = Event([12.0, 30.0]).hits(0, range(3), 0).hits(0, range(3, 6), 1).hits(1, range(6))
    m2 = ev2.match(2, fitted_pt=[11.0, 13.0])
    # event 3: particle 0 (9 GeV) split in two halves again: one more duplicate, no fake
    m3 = Event([9.0]).hits(0, range(2), 0).hits(0, range(2, 4), 1).match(2)
    for m in (m1, m2, m3):
        tally.add_tracks(m)
    tally.add_jets(np.array([[0.9], [0.2], [0.7]], np.float32), np.array([1, 0, -1]))
    tally.add_jets(np.array([[0.4], [0.6]], np.float32), np.array([0, 1]))
    tally.add_agreement(101, True)
    tally.add_agreement(102, False)
    return tally, [m1, m2, m3]


def test_validation_tally_figures():
    tally, (m1, m2, m3) = three_event_tally()
    # the matches themselves, by the definitions
    assert m1.reconstructable_pt_gev.tolist() == [5.0, 0.8]  # 2 GeV: hits on 2 layers only
    assert m1.found.tolist() == [True, False] and m1.n_fake == 1
    assert m2.found.tolist() == [True, False] and m2.n_duplicates == 1 and m2.n_fake == 0
    assert m3.found.tolist() == [True] and m3.n_duplicates == 1 and m3.n_fake == 0

    fig = tally.figures()
    assert set(fig) == {"edge_classifier", "tracking", "jet_tagger", "triton_vs_fallback"}
    edge = fig["edge_classifier"]
    assert set(edge) == {"efficiency", "purity", "true_edges_pt_above_1gev", "selected_edges"}
    assert edge["efficiency"] == pytest.approx((8 + 6) / (10 + 6))
    assert edge["purity"] == pytest.approx((9 + 3) / (12 + 4))
    assert edge["true_edges_pt_above_1gev"] == 16 and edge["selected_edges"] == 16

    tracking = fig["tracking"]
    assert set(tracking) == {"efficiency_pt_above_1gev", "reconstructable_pt_above_1gev", "fake_rate",
                             "fake_rate_pt_above_1gev", "duplicate_rate", "fragment_rate", "tracks", "pt_resolution", "efficiency_vs_pt"}
    # reconstructable above 1 GeV: 5 (found), 12 (found), 30 (lost), 9 (found); 2 GeV has hits on 2 layers only
    assert tracking["reconstructable_pt_above_1gev"] == 4
    assert tracking["efficiency_pt_above_1gev"] == pytest.approx(3 / 4)
    assert tracking["tracks"] == 6
    assert tracking["fake_rate"] == pytest.approx(1 / 6)
    assert tracking["fake_rate_pt_above_1gev"] == pytest.approx(1 / 6)  # all six fitted above 1 GeV
    assert tracking["duplicate_rate"] == pytest.approx(2 / 6)
    residuals = [(5.5 - 5.0) / 5.0, (11.0 - 12.0) / 12.0, (13.0 - 12.0) / 12.0, (10.0 - 9.0) / 9.0, (10.0 - 9.0) / 9.0]
    assert tracking["pt_resolution"] == pytest.approx(float(np.subtract(*np.percentile(residuals, [84, 16])) / 2))
    vs_pt = tracking["efficiency_vs_pt"]
    assert vs_pt["bin_edges_gev"] == list(TRACK_PT_BINS_GEV)
    # reconstructable particles: 5, 0.8 (event 1; 2 GeV has 2 layers), 12, 30 (event 2), 9 (event 3)
    expected_n, expected_k = [0] * (len(TRACK_PT_BINS_GEV) - 1), [0] * (len(TRACK_PT_BINS_GEV) - 1)
    for pt, found in [(5.0, True), (0.8, False), (12.0, True), (30.0, False), (9.0, True)]:
        b = next(i for i in range(len(TRACK_PT_BINS_GEV) - 1) if TRACK_PT_BINS_GEV[i] <= pt < TRACK_PT_BINS_GEV[i + 1])
        expected_n[b] += 1
        expected_k[b] += found
    assert vs_pt["particles"] == expected_n
    assert vs_pt["efficiency"] == [None if n == 0 else k / n for k, n in zip(expected_k, expected_n)]

    jets = fig["jet_tagger"]
    assert set(jets) == {"roc_auc", "tau_jets", "background_jets"}
    assert jets["tau_jets"] == 2 and jets["background_jets"] == 2  # the -1 jet is left out
    # tau scores 0.9, 0.6 against background 0.2, 0.4: all four pairs ordered
    assert jets["roc_auc"] == 1.0
    used_scores, used_labels = tally.jets()
    assert used_labels.tolist() == [1, 0, 0, 1]
    assert used_scores.tolist() == pytest.approx([0.9, 0.2, 0.4, 0.6])

    assert fig["triton_vs_fallback"] == {"events": 2, "identical_decisions": 1, "disagreeing_l1_ids": [102]}
    json.dumps(fig)  # the figures are written as JSON: plain Python types only


def test_empty_tally_figures_are_nan_not_errors():
    fig = ValidationTally().figures()
    assert math.isnan(fig["edge_classifier"]["efficiency"]) and math.isnan(fig["edge_classifier"]["purity"])
    assert math.isnan(fig["tracking"]["efficiency_pt_above_1gev"]) and math.isnan(fig["tracking"]["fake_rate"])
    assert math.isnan(fig["tracking"]["pt_resolution"])
    assert fig["tracking"]["efficiency_vs_pt"]["efficiency"] == [None] * (len(TRACK_PT_BINS_GEV) - 1)
    assert math.isnan(fig["jet_tagger"]["roc_auc"]) and fig["jet_tagger"]["tau_jets"] == 0
    assert fig["triton_vs_fallback"] == {"events": 0, "identical_decisions": 0, "disagreeing_l1_ids": []}
    json.dumps(fig)


def test_disagreeing_ids_are_capped():
    tally = ValidationTally()
    for i in range(50):
        tally.add_agreement(i, i % 2 == 0)
    fig = tally.figures()["triton_vs_fallback"]
    assert fig["events"] == 50 and fig["identical_decisions"] == 25
    assert fig["disagreeing_l1_ids"] == list(range(1, 41, 2))  # the first 20


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.integers(0, 30), st.integers(0, 30), st.integers(0, 30)), max_size=6))
def test_tally_edge_figures_are_ratios_of_sums(events):
    tally = ValidationTally()
    for a, b, c, d in events:
        tally.add_edges({"true_hipt": a, "selected_true_hipt": b, "selected": c, "selected_true": d})
    e = tally.figures()["edge_classifier"]
    num, den = sum(x[1] for x in events), sum(x[0] for x in events)
    assert (math.isnan(e["efficiency"]) if den == 0 else e["efficiency"] == pytest.approx(num / den))
    num, den = sum(x[3] for x in events), sum(x[2] for x in events)
    assert (math.isnan(e["purity"]) if den == 0 else e["purity"] == pytest.approx(num / den))
