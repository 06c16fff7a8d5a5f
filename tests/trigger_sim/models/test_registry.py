"""Tests of trigger_sim.models.registry: what the client and the fallback know about each model."""

from __future__ import annotations

import numpy as np
import pytest

from trigger_sim.models.registry import MODEL_NAMES, model_spec


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_probe_is_a_valid_request_for_the_local_model(name):
    spec = model_spec(name)
    assert spec.name == name
    probe = spec.probe()
    assert spec.size_of(probe) == 1
    out = spec.make_local().infer(probe, timeout_s=0.0)
    assert out.dtype == np.float32 and len(out) == 1
    assert spec.empty_output().shape[0] == 0
    assert set(spec.input_types.values()) <= {"FP32", "INT32"}
    if isinstance(probe, dict):
        assert set(probe) == set(spec.input_types)


def test_unknown_model_is_refused_with_the_known_names():
    with pytest.raises(ValueError, match="edge_classifier"):
        model_spec("track_finder")
