"""scripts/make_trackml_testdata.py's detector distortion (smearing, extra noise hits)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.trigger_sim.importers.test_trackml import load_script
from trigger_sim.config import FarmConfig, with_overrides
from trigger_sim.detector import NOISE_PARTICLE
from trigger_sim.simulation import simulate

SCRIPT = load_script()
CONFIG = with_overrides(FarmConfig(), run={"seed": 99}, physics={"pileup_mean": 2.0})
HITS = simulate(CONFIG, 0).hits


@settings(max_examples=25, deadline=None)
@given(rphi=st.floats(0.0, 5.0), z=st.floats(0.0, 50.0), noise=st.integers(0, 30), seed=st.integers(0, 2**32 - 1))
def test_distortion_keeps_every_hit_adds_noise_and_stays_in_the_detector(rphi, z, noise, seed):
    d = SCRIPT.Distortion(rphi, z, noise)
    out = SCRIPT.distort(HITS, CONFIG, d, np.random.default_rng(seed))
    n, n_layers = len(HITS.layer), len(CONFIG.tracker.layer_radii_mm)
    assert len(out.layer) == n + noise * n_layers
    np.testing.assert_array_equal(out.layer[:n], HITS.layer)
    np.testing.assert_array_equal(out.particle[:n], HITS.particle)
    assert np.all(out.particle[n:] == NOISE_PARTICLE)
    assert np.all(np.bincount(out.layer[n:], minlength=n_layers) == noise)
    assert np.all(np.abs(out.phi) <= np.pi) and np.all(np.abs(out.z_mm) < CONFIG.tracker.half_length_mm)
    if rphi == 0 and z == 0:
        np.testing.assert_allclose(out.phi[:n], HITS.phi, atol=1e-6)
        np.testing.assert_array_equal(out.z_mm[:n], HITS.z_mm)


def test_smearing_moves_hits_by_about_the_given_error():
    out = SCRIPT.distort(HITS, CONFIG, SCRIPT.Distortion(0.5, 2.0, 0), np.random.default_rng(1))
    dphi = np.angle(np.exp(1j * (out.phi.astype(np.float64) - HITS.phi)))
    assert 0.4 < np.std(dphi * HITS.r_mm) < 0.6
    assert 1.6 < np.std(out.z_mm.astype(np.float64) - HITS.z_mm) < 2.4


def test_negative_distortion_is_refused():
    with pytest.raises(ValueError, match=">= 0"):
        SCRIPT.Distortion(-0.1, 0.0, 0)
