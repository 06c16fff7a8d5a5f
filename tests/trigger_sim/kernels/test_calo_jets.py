"""find_jets against its numpy reference and against hand-computed jets."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_sim.kernels import (
    JET_EM_FRACTION,
    JET_ETA,
    JET_N_TOWERS,
    JET_PHI,
    JET_PT,
    JET_WIDTH,
    N_JET_COLUMNS,
    find_jets,
    find_jets_reference,
)

IMPLEMENTATIONS = pytest.mark.parametrize(
    "find", [find_jets, find_jets_reference], ids=["numba", "numpy"]
)


def grid_centers(n_eta: int, n_phi: int, eta_step: float = 0.1) -> tuple[np.ndarray, np.ndarray]:
    """Eta centres symmetric about 0 (so ±eta rows have equal cosh, giving ET ties), phi bins."""
    eta = (np.arange(n_eta) - (n_eta - 1) / 2.0) * eta_step
    phi = -math.pi + (np.arange(n_phi) + 0.5) * (2.0 * math.pi / max(n_phi, 1))
    return eta, phi


def assert_same_jets(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == np.float32 and got.shape[1:] == (N_JET_COLUMNS,)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got[:, JET_N_TOWERS], want[:, JET_N_TOWERS])
    other = [JET_PT, JET_ETA, JET_EM_FRACTION, JET_WIDTH]
    np.testing.assert_allclose(got[:, other], want[:, other], rtol=1e-5, atol=1e-5)
    dphi = np.angle(np.exp(1j * (got[:, JET_PHI].astype(np.float64) - want[:, JET_PHI])))
    np.testing.assert_allclose(dphi, 0.0, atol=1e-5)


# Energies: a few repeated values for exact ties, some arbitrary, rare negatives.
energy = st.one_of(
    st.just(0.0),
    st.sampled_from([1.0, 2.5, 5.0, 20.0]),
    st.floats(-1.0, 60.0, width=32),
)


@st.composite
def calo_events(draw: st.DrawFn) -> dict:
    n_eta = draw(st.integers(4, 20))
    n_phi = draw(st.integers(4, 24))
    eta, phi = grid_centers(n_eta, n_phi, eta_step=draw(st.sampled_from([0.087, 0.1, 0.2])))
    # Sparse: a list of filled towers (repeats overwrite) in an otherwise zero grid.
    em = np.zeros((n_eta, n_phi), np.float32)
    had = np.zeros((n_eta, n_phi), np.float32)
    filled = st.tuples(st.integers(0, n_eta - 1), st.integers(0, n_phi - 1), energy, energy)
    for ieta, iphi, em_gev, had_gev in draw(st.lists(filled, max_size=80)):
        em[ieta, iphi] = em_gev
        had[ieta, iphi] = had_gev
    # Jet-like blobs: a core and its four neighbours (phi wrapping), for multi-tower jets.
    for ieta, iphi, had_gev, _ in draw(st.lists(filled, max_size=4)):
        had[ieta, iphi] += had_gev
        for de, dp in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            if 0 <= ieta + de < n_eta:
                had[ieta + de, (iphi + dp) % n_phi] += had_gev / 4
    return dict(
        em_gev=em,
        had_gev=had,
        eta_centers=eta,
        phi_centers=phi,
        seed_gev=draw(st.sampled_from([-0.5, 0.0, 1.0, 2.0, 5.0])),
        radius=draw(st.sampled_from([0.0, 0.2, 0.4, 0.7, 1.2])),
        min_pt_gev=draw(st.sampled_from([0.0, 1.0, 5.0, 10.0])),
        max_jets=draw(st.integers(0, 12)),
    )


@settings(max_examples=300, deadline=None)
@given(calo_events())
def test_numba_matches_reference(event: dict) -> None:
    assert_same_jets(find_jets(**event), find_jets_reference(**event))


def single_tower_event(n_eta: int = 10, n_phi: int = 16) -> dict:
    eta, phi = grid_centers(n_eta, n_phi)
    return dict(
        em_gev=np.zeros((n_eta, n_phi), np.float32),
        had_gev=np.zeros((n_eta, n_phi), np.float32),
        eta_centers=eta,
        phi_centers=phi,
        seed_gev=1.0,
        radius=0.4,
        min_pt_gev=2.0,
        max_jets=8,
    )


@IMPLEMENTATIONS
def test_single_tower_is_one_jet(find) -> None:
    event = single_tower_event()
    event["em_gev"][3, 5] = 10.0
    event["had_gev"][3, 5] = 5.0
    jets = find(**event)
    eta, phi = event["eta_centers"][3], event["phi_centers"][5]
    want = [15.0 / math.cosh(eta), eta, phi, 10.0 / 15.0, 1.0, 0.0]
    assert jets.shape == (1, N_JET_COLUMNS)
    np.testing.assert_allclose(jets[0], want, rtol=1e-6, atol=1e-7)


@IMPLEMENTATIONS
@pytest.mark.parametrize("seed_iphi", [0, 15])
def test_towers_across_phi_wrap_merge(find, seed_iphi: int) -> None:
    event = single_tower_event(n_phi=16)
    other_iphi = 15 - seed_iphi
    event["had_gev"][4, seed_iphi] = 20.0
    event["had_gev"][4, other_iphi] = 10.0
    jets = find(**event)
    assert jets.shape == (1, N_JET_COLUMNS)
    assert jets[0, JET_N_TOWERS] == 2
    # Seed and neighbour are one bin (2pi/16) apart across the wrap; the mean sits a third of
    # the way from the seed, at ±(pi - pi/48).
    sign = 1.0 if seed_iphi == 15 else -1.0
    assert jets[0, JET_PHI] == pytest.approx(sign * (math.pi - math.pi / 48), abs=1e-6)
    assert jets[0, JET_PT] == pytest.approx(30.0 / math.cosh(event["eta_centers"][4]), rel=1e-6)
    assert jets[0, JET_WIDTH] == pytest.approx(2 * math.pi / 16 / 3, rel=1e-6)


@IMPLEMENTATIONS
def test_tower_between_seeds_goes_to_the_harder_one(find) -> None:
    event = single_tower_event()
    event["seed_gev"], event["radius"], event["min_pt_gev"] = 2.0, 1.0, 0.0
    event["had_gev"][5, 2] = 30.0
    event["had_gev"][5, 6] = 20.0
    event["had_gev"][5, 4] = 1.0  # 2 bins (0.79 rad) from both seeds
    jets = find(**event)
    cosh = math.cosh(event["eta_centers"][5])
    np.testing.assert_allclose(jets[:, JET_PT], [31.0 / cosh, 20.0 / cosh], rtol=1e-6)
    np.testing.assert_array_equal(jets[:, JET_N_TOWERS], [2, 1])


@IMPLEMENTATIONS
def test_equal_neighbours_seed_at_lower_flat_index(find) -> None:
    event = single_tower_event(n_phi=16)
    event["seed_gev"], event["radius"], event["min_pt_gev"] = 2.0, 1.0, 0.0
    event["had_gev"][5, 4] = 10.0
    event["had_gev"][5, 5] = 10.0
    event["had_gev"][5, 7] = 1.0  # 2 bins (0.79) from iphi 5, 3 bins (1.18) from iphi 4
    jets = find(**event)
    np.testing.assert_array_equal(jets[:, JET_N_TOWERS], [2])


@IMPLEMENTATIONS
def test_equal_seeds_claim_towers_in_flat_order(find) -> None:
    event = single_tower_event(n_phi=16)
    event["seed_gev"], event["radius"], event["min_pt_gev"] = 2.0, 1.0, 0.0
    event["had_gev"][5, 6] = 20.0
    event["had_gev"][5, 2] = 20.0
    event["had_gev"][5, 4] = 1.0  # 2 bins from both seeds
    jets = find(**event)
    np.testing.assert_array_equal(jets[:, JET_N_TOWERS], [2, 1])
    np.testing.assert_allclose(jets[0, JET_PHI], event["phi_centers"][2], atol=0.2)


@IMPLEMENTATIONS
def test_jets_sorted_by_pt_then_cut_and_truncated(find) -> None:
    event = single_tower_event()
    event["had_gev"][1, 1] = 5.0
    event["had_gev"][5, 8] = 50.0
    event["had_gev"][8, 13] = 20.0
    event["had_gev"][8, 3] = 1.5  # seed (above 1 GeV) but below min_pt
    jets = find(**event)
    cosh = np.cosh(event["eta_centers"][[5, 8, 1]])
    np.testing.assert_allclose(jets[:, JET_PT], np.array([50.0, 20.0, 5.0]) / cosh, rtol=1e-6)
    event["max_jets"] = 1
    assert find(**event).shape == (1, N_JET_COLUMNS)


@IMPLEMENTATIONS
@pytest.mark.parametrize("n_eta, n_phi", [(10, 16), (0, 16), (10, 0)])
def test_empty_grid_gives_no_jets(find, n_eta: int, n_phi: int) -> None:
    jets = find(**single_tower_event(n_eta, n_phi))
    assert jets.shape == (0, N_JET_COLUMNS) and jets.dtype == np.float32


@IMPLEMENTATIONS
def test_mismatched_shapes_are_rejected(find) -> None:
    event = single_tower_event()
    event["had_gev"] = event["had_gev"][:, :-1]
    with pytest.raises(ValueError, match="shape"):
        find(**event)
