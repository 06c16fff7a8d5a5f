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


def test_a_model_p99_inside_the_real_interval_is_told_apart_from_a_miss():
    """Outside 15 % of the real p99 yet inside its 95 % interval: p99_ok False, in the interval True."""
    import numpy as np

    script = _script()
    row = {"rate_hz": 20.0, "real_p50_ms": 26.0, "real_p99_ms": 80.0, "real_total_events": 1300,
           "real_p50_interval_ms": [25.0, 27.0], "real_p99_interval_ms": [66.0, 100.0], "real_interval_method": "bootstrap"}
    out = script.judge_row(row, 26.5, 67.0, np.array([1.0]))
    assert out["p50_ok"] and out["p50_in_real_interval"]
    assert not out["p99_ok"] and out["p99_in_real_interval"]
    assert script.verdict_mark({**row, **out}, 99) == "iv"
    far = script.judge_row(row, 26.5, 40.0, np.array([1.0]))
    assert not far["p99_in_real_interval"] and script.verdict_mark({**row, **far}, 99) == "NO"


def test_a_row_without_per_event_data_gets_an_approximate_interval_from_the_model_shape():
    import numpy as np

    script = _script()
    row = {"rate_hz": 20.0, "real_p50_ms": 26.0, "real_p99_ms": 80.0, "real_events": [1300]}
    model = np.random.default_rng(1).exponential(10.0, 20_000) + 20.0
    script.judge_row(row, 26.0, 80.0, model)
    lo, hi = row["real_p99_interval_ms"]
    assert lo < 80.0 < hi and row["real_interval_method"].startswith("approximate")
    assert row["real_total_events"] == 1300 and row["real_p99_events_beyond"] == 13.0
