"""A short rate scan against the real farm: points, stability, files written."""

import csv
import json

import pytest

from farm.scan import run_scan, write_outputs
from trigger_sim.config import load_config, with_overrides

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_scan_two_rates_writes_json_csv_png(tmp_path):
    cfg = with_overrides(load_config(), worker={"count": 2})
    result = run_scan(cfg, [20.0, 60.0], duration_s=4.0)
    assert [p["rate_hz"] for p in result["points"]] == [20.0, 60.0]
    for p in result["points"]:
        assert p["lost"] == 0
        assert p["total_p99_ms"] >= p["total_p50_ms"] > 0
        assert 0.5 * p["rate_hz"] < p["throughput_hz"] < 1.5 * p["rate_hz"]
    sustained = [p["rate_hz"] for p in result["points"] if p["sustained"]]
    assert result["saturation_rate_hz"] == (max(sustained) if sustained else None)
    paths = write_outputs(result, tmp_path)
    assert json.loads(paths["json"].read_text())["points"] == result["points"]
    with open(paths["csv"]) as fh:
        assert len(list(csv.DictReader(fh))) == 2
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
