"""Tests of trigger_sim.pileup: the event's median ET density, jet areas, subtracted jets."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from trigger_sim.config import FarmConfig, with_overrides
from trigger_sim.detector import tower_centers
from trigger_sim.hlt.sequence import EventObjects, HltSequence
from trigger_sim.inference.breaker import CircuitBreaker
from trigger_sim.inference.service import InferenceService
from trigger_sim.kernels.calo_jets import JET_ETA, JET_PHI, JET_PT, N_JET_COLUMNS
from trigger_sim.menu import load_menu
from trigger_sim.models.registry import MODEL_NAMES, model_spec
from trigger_sim.pileup import RHO_CELL_TOWERS, jet_areas, median_density_gev, menu_jets, subtract_pileup
from trigger_sim.simulation import event_fragments
from trigger_sim.wire import encode_fragment

CFG = FarmConfig()
ETA, PHI = tower_centers(CFG.calo)
TOWER_AREA = (ETA[1] - ETA[0]) * 2 * np.pi / len(PHI)


def towers_of_et(et_gev: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(em, had) with the given tower ET (all electromagnetic)."""
    return (et_gev * np.cosh(ETA)[:, None]).astype(np.float64), np.zeros_like(et_gev)


def jets_at(*axes: tuple[float, float, float]) -> np.ndarray:
    jets = np.zeros((len(axes), N_JET_COLUMNS), np.float32)
    for row, (pt, eta, phi) in zip(jets, axes):
        row[JET_PT], row[JET_ETA], row[JET_PHI] = pt, eta, phi
    return jets


def test_uniform_energy_gives_its_density():
    em, had = towers_of_et(np.full(ETA.shape + PHI.shape, 0.2))
    assert median_density_gev(em, had, ETA) == pytest.approx(0.2 / TOWER_AREA)


def test_a_hard_jet_does_not_move_the_median():
    et = np.full(ETA.shape + PHI.shape, 0.2)
    uniform = median_density_gev(*towers_of_et(et), ETA)
    et[20:30, 10:20] += 50.0  # a few cells' worth of hard jet
    assert median_density_gev(*towers_of_et(et), ETA) == pytest.approx(uniform)


def test_empty_calorimeter_has_no_density():
    zeros = np.zeros(ETA.shape + PHI.shape)
    assert median_density_gev(zeros, zeros, ETA) == 0.0


def test_cells_must_fit_the_calorimeter():
    zeros = np.zeros(ETA.shape + PHI.shape)
    with pytest.raises(ValueError, match="do not fit"):
        median_density_gev(zeros, zeros, ETA, (len(ETA) + 1, 1))


@settings(max_examples=40, deadline=None)
@given(arrays(np.float64, (len(ETA), len(PHI)), elements=st.floats(0.0, 100.0)))
def test_density_is_the_median_of_cell_densities_by_brute_force(et):
    ce, cp = RHO_CELL_TOWERS
    cells = [et[i:i + ce, j:j + cp].sum() for i in range(0, len(ETA) - ce + 1, ce) for j in range(0, len(PHI) - cp + 1, cp)]
    em, had = towers_of_et(et)
    assert median_density_gev(em, had, ETA) == pytest.approx(np.median(cells) / (ce * cp * TOWER_AREA), rel=1e-9, abs=1e-9)


def test_a_central_jet_has_the_cone_area_and_an_edge_jet_less():
    central, edge = jet_areas(jets_at((50.0, 0.0, 0.5), (50.0, ETA[-1], 0.5)), ETA, PHI, 0.4)
    assert central == pytest.approx(np.pi * 0.4**2, rel=0.06)  # towers whose centres are in the cone
    assert edge < 0.6 * central


@settings(max_examples=40, deadline=None)
@given(st.floats(-3.0, 3.0), st.floats(-np.pi, np.pi), st.floats(0.1, 1.0))
def test_jet_area_counts_tower_centres_in_the_cone_by_brute_force(eta, phi, radius):
    n = sum(1 for e in ETA for p in PHI if (e - eta) ** 2 + np.angle(np.exp(1j * (p - np.float32(phi)))) ** 2 < radius**2)
    area = jet_areas(jets_at((10.0, eta, phi)), ETA, PHI, radius)[0]
    assert area == pytest.approx(n * TOWER_AREA)


def test_subtraction_keeps_order_and_other_columns_and_stops_at_zero():
    jets = jets_at((60.0, 0.0, 0.0), (15.0, 1.0, 2.0), (30.0, -1.0, -2.0))
    out = subtract_pileup(jets, 20.0, np.array([0.5, 0.5, 0.5]))
    np.testing.assert_allclose(out[:, JET_PT], [50.0, 5.0, 20.0])
    np.testing.assert_array_equal(np.delete(out, JET_PT, axis=1), np.delete(jets, JET_PT, axis=1))
    assert subtract_pileup(jets, 100.0, np.ones(3))[:, JET_PT].tolist() == [0.0, 0.0, 0.0]
    assert jets[0, JET_PT] == 60.0  # the input is not changed


def test_menu_jets_only_when_enabled():
    jets = jets_at((60.0, 0.0, 0.0))
    em, had = towers_of_et(np.full(ETA.shape + PHI.shape, 0.2))
    assert menu_jets(jets, em, had, ETA, PHI, 0.4, enabled=False) is None
    subtracted = menu_jets(jets, em, had, ETA, PHI, 0.4)
    assert subtracted[0, JET_PT] == pytest.approx(60.0 - 0.2 / TOWER_AREA * jet_areas(jets, ETA, PHI, 0.4)[0], rel=1e-6)


@pytest.mark.parametrize("enabled", [True, False])
def test_the_sequence_gives_the_menu_subtracted_jets_beside_the_measured_ones(enabled):
    config = with_overrides(CFG, physics={"pileup_mean": 60.0}, features={"jet_pileup_subtraction": enabled},
                            worker={"budget_ms": 60_000.0})  # no timeout on a slow first call
    local = {name: model_spec(name).make_local() for name in MODEL_NAMES}
    services = {name: InferenceService(None, local[name], CircuitBreaker(3, 10**9), timeout_s=10.0, size_of=model_spec(name).size_of,
                                       empty_output=model_spec(name).empty_output()) for name in MODEL_NAMES}
    seq = HltSequence(config, load_menu(config.menu), services)
    keep = EventObjects()
    result = seq.process(2, [encode_fragment(f) for f in event_fragments(config, 2, 0)], keep=keep)
    assert keep.trigger is not None, result.reason
    raw = keep.jets[:, JET_PT]
    np.testing.assert_array_equal(keep.trigger.jets, keep.jets)  # what tagged chains and the tagger see
    assert len(raw) > 0
    if enabled:
        seen = keep.trigger.subtracted_jets[:, JET_PT]
        assert len(seen) == len(raw) and np.all(seen < raw)  # pile-up 60 puts energy under every jet
    else:
        assert keep.trigger.subtracted_jets is None
