"""A short rate scan against the real farm: points, their verdicts and seeds, files written."""

import csv
import json
from dataclasses import asdict, replace

import pyarrow.parquet as pq
import pytest

from farm.scan import point_table_path, run_scan, write_outputs
from trigger_sim.config import load_config, with_overrides
from trigger_sim.sustained import CRITERIA

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


def test_scan_two_rates_writes_json_csv_png(tmp_path):
    cfg = with_overrides(load_config(), worker={"count": 2})
    # two rates the farm keeps up with: an overloaded point would spend minutes draining its
    # queue. The sustained definition's thresholds scaled down (a p99 from >= 200 events, four
    # windows of 60): the same verdicts and sizing, each run about 10 s instead of 45
    criteria = replace(CRITERIA, min_events=200, min_window_events=60)
    tables = tmp_path / "events.parquet"
    result = run_scan(cfg, [25.0, 32.0], duration_s=4.0, events_tables=tables, criteria=criteria)
    assert [p["rate_hz"] for p in result["points"]] == [25.0, 32.0]
    assert len(set(result["seeds"])) == 2 and cfg.run.seed not in result["seeds"]
    assert result["criteria"] == asdict(criteria)
    for p in result["points"]:
        assert p["lost"] == 0
        assert p["decided_events"] >= criteria.min_events, p  # every verdict's p99 comes from enough events
        assert p["decided_events"] < CRITERIA.min_events, p  # each run sized by the criteria given, not the default's
        assert p["total_p99_ms"] >= p["total_p50_ms"] > 0
        assert 0.5 * p["rate_hz"] < p["throughput_hz"] < 1.5 * p["rate_hz"]
        assert p["sustained"] == (p["why_not"] == "")
        assert "too few events" not in p["why_not"], p
        # each point's per-event table, beside the name given: a row per event, the p99's events among them
        assert p["events_table"] == str(point_table_path(tables, p["rate_hz"], p["seed"]))
        total = pq.read_table(p["events_table"], columns=["total_ms"]).column("total_ms")
        assert len(total) - total.null_count == p["decided_events"]
    sustained = [p["rate_hz"] for p in result["points"] if p["sustained"]]
    assert result["saturation_rate_hz"] == (max(sustained) if sustained else None)
    paths = write_outputs(result, tmp_path)
    assert json.loads(paths["json"].read_text())["points"] == result["points"]
    with open(paths["csv"]) as fh:
        assert len(list(csv.DictReader(fh))) == 2
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
