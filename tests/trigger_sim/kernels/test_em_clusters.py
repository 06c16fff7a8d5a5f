"""find_em_clusters against its numpy reference and against hand-computed clusters."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_sim.kernels import (
    CLUSTER_ET,
    CLUSTER_ETA,
    CLUSTER_HAD_ET,
    CLUSTER_ISO_ET,
    CLUSTER_PHI,
    N_CLUSTER_COLUMNS,
    find_em_clusters,
    find_em_clusters_reference,
)

IMPLEMENTATIONS = pytest.mark.parametrize(
    "find", [find_em_clusters, find_em_clusters_reference], ids=["numba", "numpy"]
)


def grid_centers(n_eta: int, n_phi: int, eta_step: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Eta centres symmetric about 0 (so ±eta rows have equal cosh, giving ET ties), phi bins."""
    eta = (np.arange(n_eta) - (n_eta - 1) / 2.0) * eta_step
    phi = -math.pi + (np.arange(n_phi) + 0.5) * (2.0 * math.pi / max(n_phi, 1))
    return eta, phi


def assert_same_clusters(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == np.float64 and got.shape[1:] == (N_CLUSTER_COLUMNS,)
    assert got.shape == want.shape
    other = [CLUSTER_ET, CLUSTER_ETA, CLUSTER_HAD_ET, CLUSTER_ISO_ET]
    np.testing.assert_allclose(got[:, other], want[:, other], rtol=1e-12, atol=1e-12)
    dphi = np.angle(np.exp(1j * (got[:, CLUSTER_PHI] - want[:, CLUSTER_PHI])))
    np.testing.assert_allclose(dphi, 0.0, atol=1e-12)


# Energies: a few repeated values for exact ties, some arbitrary, rare negatives.
energy = st.one_of(
    st.just(0.0),
    st.sampled_from([1.0, 2.5, 5.0, 20.0]),
    st.floats(-1.0, 60.0, width=32),
)


@st.composite
def calo_events(draw: st.DrawFn) -> dict:
    # Small phi counts (1..4) exercise windows that wrap onto themselves.
    n_eta = draw(st.integers(1, 16))
    n_phi = draw(st.one_of(st.integers(1, 5), st.integers(6, 24)))
    eta, phi = grid_centers(n_eta, n_phi, eta_step=draw(st.sampled_from([0.087, 0.1, 0.2])))
    em = np.zeros((n_eta, n_phi), np.float32)
    had = np.zeros((n_eta, n_phi), np.float32)
    filled = st.tuples(st.integers(0, n_eta - 1), st.integers(0, n_phi - 1), energy, energy)
    for ieta, iphi, em_gev, had_gev in draw(st.lists(filled, max_size=60)):
        em[ieta, iphi] = em_gev
        had[ieta, iphi] = had_gev
    # Shower-like blobs: a core and a share in its four neighbours (phi wrapping).
    for ieta, iphi, em_gev, _ in draw(st.lists(filled, max_size=4)):
        em[ieta, iphi] += em_gev
        for de, dp in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            if 0 <= ieta + de < n_eta:
                em[ieta + de, (iphi + dp) % n_phi] += em_gev / 8
    return dict(
        em_gev=em,
        had_gev=had,
        eta_centers=eta,
        phi_centers=phi,
        seed_gev=draw(st.sampled_from([-0.5, 0.0, 1.0, 2.0, 5.0])),
        max_clusters=draw(st.integers(0, 12)),
    )


@settings(max_examples=300, deadline=None)
@given(calo_events())
def test_numba_matches_reference(event: dict) -> None:
    assert_same_clusters(find_em_clusters(**event), find_em_clusters_reference(**event))


@settings(max_examples=100, deadline=None)
@given(calo_events())
def test_clusters_are_sorted_seeds_and_bounded(event: dict) -> None:
    clusters = find_em_clusters_reference(**event)
    assert len(clusters) <= event["max_clusters"]
    et = clusters[:, CLUSTER_ET]
    assert np.all(et > 0) and np.all(np.diff(et) <= 0)
    assert np.all((clusters[:, CLUSTER_PHI] > -math.pi) & (clusters[:, CLUSTER_PHI] <= math.pi))
    # With no negative energies, the cluster and its surroundings are sums of non-negative ET.
    if (event["em_gev"] >= 0).all() and (event["had_gev"] >= 0).all():
        assert np.all(clusters[:, CLUSTER_HAD_ET] >= 0)
        assert np.all(clusters[:, CLUSTER_ISO_ET] >= -1e-9 * (1 + et))


def empty_event(n_eta: int = 10, n_phi: int = 16) -> dict:
    eta, phi = grid_centers(n_eta, n_phi)
    return dict(
        em_gev=np.zeros((n_eta, n_phi), np.float32),
        had_gev=np.zeros((n_eta, n_phi), np.float32),
        eta_centers=eta,
        phi_centers=phi,
        seed_gev=1.0,
        max_clusters=8,
    )


@IMPLEMENTATIONS
def test_lone_deposit_is_one_cluster(find) -> None:
    event = empty_event()
    event["em_gev"][3, 5] = 20.0
    event["had_gev"][3, 5] = 2.0
    event["had_gev"][3, 6] = 1.0  # in the 3x3: hadronic ET behind the cluster
    event["em_gev"][5, 7] = 0.5  # in the 5x5 ring: isolation (below the seed threshold)
    event["had_gev"][1, 3] = 0.25  # also in the ring
    event["em_gev"][3, 9] = 0.5  # outside the 5x5 window
    clusters = find(**event)
    eta = event["eta_centers"]
    cosh = np.cosh(eta)
    assert clusters.shape == (1, N_CLUSTER_COLUMNS)
    np.testing.assert_allclose(clusters[0, CLUSTER_ET], 20.0 / cosh[3], rtol=1e-12)
    np.testing.assert_allclose(clusters[0, CLUSTER_ETA], eta[3], rtol=1e-12)
    np.testing.assert_allclose(clusters[0, CLUSTER_PHI], event["phi_centers"][5], rtol=1e-12)
    np.testing.assert_allclose(clusters[0, CLUSTER_HAD_ET], 3.0 / cosh[3], rtol=1e-12)
    np.testing.assert_allclose(clusters[0, CLUSTER_ISO_ET], 0.5 / cosh[5] + 0.25 / cosh[1], rtol=1e-12)


@IMPLEMENTATIONS
def test_position_is_em_et_weighted(find) -> None:
    event = empty_event()
    event["em_gev"][4, 5] = 30.0
    event["em_gev"][5, 5] = 10.0  # one row up in eta
    event["em_gev"][4, 6] = 10.0  # one bin up in phi
    event["had_gev"][5, 6] = 100.0  # hadronic energy moves nothing
    clusters = find(**event)
    eta, phi = event["eta_centers"], event["phi_centers"]
    cosh = np.cosh(eta)
    et = np.array([30.0 / cosh[4], 10.0 / cosh[5], 10.0 / cosh[4]])
    assert clusters.shape == (1, N_CLUSTER_COLUMNS)
    np.testing.assert_allclose(clusters[0, CLUSTER_ET], et.sum(), rtol=1e-12)
    np.testing.assert_allclose(clusters[0, CLUSTER_ETA], (et * eta[[4, 5, 4]]).sum() / et.sum(), rtol=1e-12)
    np.testing.assert_allclose(clusters[0, CLUSTER_PHI], phi[5] + et[2] * (phi[6] - phi[5]) / et.sum(), rtol=1e-12)
    np.testing.assert_allclose(clusters[0, CLUSTER_HAD_ET], 100.0 / cosh[5], rtol=1e-12)


@IMPLEMENTATIONS
@pytest.mark.parametrize("seed_iphi", [0, 15])
def test_window_wraps_in_phi(find, seed_iphi: int) -> None:
    event = empty_event(n_phi=16)
    other_iphi = 15 - seed_iphi
    event["em_gev"][4, seed_iphi] = 20.0
    event["em_gev"][4, other_iphi] = 10.0  # the neighbour across the wrap
    ring_iphi = 1 if seed_iphi == 15 else 14  # two bins from the seed, across the wrap
    event["had_gev"][4, ring_iphi] = 4.0
    clusters = find(**event)
    cosh = math.cosh(event["eta_centers"][4])
    assert clusters.shape == (1, N_CLUSTER_COLUMNS)
    assert clusters[0, CLUSTER_ET] == pytest.approx(30.0 / cosh, rel=1e-12)
    # The mean sits a third of a bin (2pi/16) from the seed, across the wrap: ±(pi - pi/48).
    sign = 1.0 if seed_iphi == 15 else -1.0
    assert clusters[0, CLUSTER_PHI] == pytest.approx(sign * (math.pi - math.pi / 48), abs=1e-12)
    assert clusters[0, CLUSTER_ISO_ET] == pytest.approx(4.0 / cosh, rel=1e-12)


@IMPLEMENTATIONS
def test_window_does_not_wrap_in_eta(find) -> None:
    event = empty_event()
    event["em_gev"][0, 4] = 20.0
    event["em_gev"][9, 4] = 2.0  # the last row is not a neighbour of the first
    clusters = find(**event)
    cosh = np.cosh(event["eta_centers"])
    np.testing.assert_allclose(clusters[:, CLUSTER_ET], [20.0 / cosh[0], 2.0 / cosh[9]], rtol=1e-12)
    np.testing.assert_allclose(clusters[:, CLUSTER_ISO_ET], [0.0, 0.0], atol=1e-12)


@IMPLEMENTATIONS
def test_equal_neighbours_seed_at_lower_flat_index(find) -> None:
    event = empty_event(n_phi=16)
    event["seed_gev"] = 5.0
    event["em_gev"][5, 4] = 10.0
    event["em_gev"][5, 5] = 10.0
    event["em_gev"][5, 7] = 3.0  # in iphi 5's 5x5 ring if it were the seed, not in iphi 4's
    clusters = find(**event)
    cosh = math.cosh(event["eta_centers"][5])
    assert clusters.shape == (1, N_CLUSTER_COLUMNS)
    assert clusters[0, CLUSTER_ET] == pytest.approx(20.0 / cosh, rel=1e-12)
    assert clusters[0, CLUSTER_PHI] == pytest.approx(np.mean(event["phi_centers"][4:6]), abs=1e-12)
    assert clusters[0, CLUSTER_ISO_ET] == pytest.approx(0.0, abs=1e-12)


@IMPLEMENTATIONS
def test_equal_clusters_ordered_by_seed_flat_index(find) -> None:
    event = empty_event(n_phi=16)
    event["em_gev"][2, 12] = 10.0
    event["em_gev"][7, 3] = 10.0  # same |eta| as row 2: exactly equal ET
    event["em_gev"][5, 8] = 40.0
    clusters = find(**event)
    eta, phi = event["eta_centers"], event["phi_centers"]
    np.testing.assert_allclose(clusters[:, CLUSTER_ETA], eta[[5, 2, 7]], rtol=1e-12)
    np.testing.assert_allclose(clusters[:, CLUSTER_PHI], phi[[8, 12, 3]], rtol=1e-12)
    event["max_clusters"] = 2
    np.testing.assert_allclose(find(**event)[:, CLUSTER_ETA], eta[[5, 2]], rtol=1e-12)


@IMPLEMENTATIONS
def test_seed_threshold_is_on_em_et_alone(find) -> None:
    event = empty_event()
    event["seed_gev"] = 5.0
    event["em_gev"][4, 4] = 4.0
    event["had_gev"][4, 4] = 100.0  # a hadronic deposit never seeds
    assert find(**event).shape == (0, N_CLUSTER_COLUMNS)
    event["em_gev"][4, 4] = 6.0
    assert find(**event).shape == (1, N_CLUSTER_COLUMNS)


@IMPLEMENTATIONS
@pytest.mark.parametrize("n_phi", [1, 2, 3, 4])
def test_narrow_phi_grid_counts_each_tower_once(find, n_phi: int) -> None:
    event = empty_event(n_eta=5, n_phi=n_phi)
    event["em_gev"][2, :] = 0.5  # below the seed threshold
    event["em_gev"][2, 0] = 10.0
    event["had_gev"][4, :] = 2.0  # two rows away: all in the 5x5 ring
    clusters = find(**event)
    cosh = np.cosh(event["eta_centers"])
    assert clusters.shape == (1, N_CLUSTER_COLUMNS)
    n_3x3 = min(n_phi, 3)
    assert clusters[0, CLUSTER_ET] == pytest.approx((10.0 + (n_3x3 - 1) * 0.5) / cosh[2], rel=1e-12)
    ring_em = (min(n_phi, 5) - n_3x3) * 0.5 / cosh[2]
    assert clusters[0, CLUSTER_ISO_ET] == pytest.approx(ring_em + min(n_phi, 5) * 2.0 / cosh[4], rel=1e-12)


@IMPLEMENTATIONS
@pytest.mark.parametrize("n_eta, n_phi", [(10, 16), (0, 16), (10, 0)])
def test_empty_grid_gives_no_clusters(find, n_eta: int, n_phi: int) -> None:
    clusters = find(**empty_event(n_eta, n_phi))
    assert clusters.shape == (0, N_CLUSTER_COLUMNS) and clusters.dtype == np.float64


@IMPLEMENTATIONS
def test_bad_inputs_are_rejected(find) -> None:
    event = empty_event()
    event["had_gev"] = event["had_gev"][:, :-1]
    with pytest.raises(ValueError, match="shape"):
        find(**event)
    event = empty_event()
    event["max_clusters"] = -1
    with pytest.raises(ValueError, match="max_clusters"):
        find(**event)
