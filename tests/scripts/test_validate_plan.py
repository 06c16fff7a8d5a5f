"""scripts/validate_plan.py: the parts that need no farm run."""

from __future__ import annotations

import importlib.util

from trigger_sim.config import REPO_ROOT


def _script():
    spec = importlib.util.spec_from_file_location("validate_plan", REPO_ROOT / "scripts" / "validate_plan.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_a_shipped_calibration_says_the_fraction_of_saturation_it_was_made_at():
    """--calibration-fraction 0.6 makes a calibration at 0.6 of the saturation: its provenance says so, not 0.8."""
    started = {"date_utc": "2026-12-05 17:00", "command": "scripts/validate_plan.py --calibration-fraction 0.6", "commit": "abc"}
    made_by = _script().shipped_provenance(started, 0.6, "docs/plan/validation.json")
    assert made_by["commit"] == "abc" and made_by["command"] == started["command"]
    assert "at 0.6 of its measured saturation" in made_by["how"] and "0.8" not in made_by["how"]
    assert "docs/plan/validation.json" in made_by["how"]
