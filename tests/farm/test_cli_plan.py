"""`trigger-sim plan` end to end on small simulations (seconds)."""

import json

from click.testing import CliRunner

from farm.cli import main
from trigger_sim.planning.calibration import save

from tests.trigger_sim.planning.synthetic import calibration
from tests.trigger_sim.planning.test_calibration import write_run_table


def test_simulate_prints_the_summary_and_writes_its_json(tmp_path):
    out = tmp_path / "s.json"
    result = CliRunner().invoke(main, ["plan", "simulate", "--rate", "50", "--events", "300", "--host-cores", "2",
                                       "--json", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    s = json.loads(out.read_text())
    assert s["events"]["lost"] == 0 and s["events"]["l1_accepted"] == 300
    assert "Latency per step" in result.output and "edge_classifier" in s["latency_ms"]


def test_plan_answers_the_smallest_pool(tmp_path):
    save(calibration(cpu_ms=1.0, demand_ms={"edge_classifier": 4.0, "jet_tagger": 0.0}), tmp_path / "c.json")
    out = tmp_path / "p.json"
    result = CliRunner().invoke(main, ["plan", "--calibration", str(tmp_path / "c.json"), "--rate", "1000", "--events", "6000",
                                       "--workers-per-node", "64", "--budget-ms", "500", "--slot-options", "1",
                                       "--max-servers", "16", "--json", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    answer = json.loads(out.read_text())["answer"]
    assert answer["servers"] == 5 and "smallest: 5" in result.output.replace("\n", " ")


def test_sweep_writes_table_csv_and_png(tmp_path):
    result = CliRunner().invoke(main, ["plan", "sweep", "--server-kind", "gpu-t4-example", "--rate", "2000", "--events", "2000",
                                       "--nodes", "2,4", "--servers", "1,2", "--workers-per-node", "16",
                                       "--out", str(tmp_path / "sw"), "--quiet"])
    assert result.exit_code == 0, result.output
    assert {p.name for p in (tmp_path / "sw").iterdir()} == {"sweep.json", "sweep.csv", "sweep.png"}
    assert len(json.loads((tmp_path / "sw" / "sweep.json").read_text())["rows"]) == 4


def test_calibrate_from_a_run_folder_then_simulate_with_it(tmp_path):
    write_run_table(tmp_path / "run")
    cal = tmp_path / "cal.json"
    result = CliRunner().invoke(main, ["plan", "calibrate", str(tmp_path / "run"), "-o", str(cal), "--pileup", "20",
                                       "--how", "a test table"])
    assert result.exit_code == 0, result.output
    assert json.loads(cal.read_text())["provenance"]["run_command"] == "a test table"
    result = CliRunner().invoke(main, ["plan", "simulate", "--calibration", str(cal), "--rate", "20", "--events", "200", "--quiet"])
    assert result.exit_code == 0, result.output


def test_calibrate_pools_several_run_folders(tmp_path):
    """Several runs of one farm give one calibration holding every run's events."""
    write_run_table(tmp_path / "a")
    write_run_table(tmp_path / "b", n=120)
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    assert CliRunner().invoke(main, ["plan", "calibrate", str(tmp_path / "a"), "-o", str(one)]).exit_code == 0
    result = CliRunner().invoke(main, ["plan", "calibrate", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(two)])
    assert result.exit_code == 0, result.output
    assert "from 2 runs" in result.output
    n_one = len(json.loads(one.read_text())["events"]["outcome"])
    pooled_cal = json.loads(two.read_text())
    assert len(pooled_cal["events"]["outcome"]) == n_one + 119 and len(pooled_cal["provenance"]["runs"]) == 2  # b: 120 less its debug row


def test_bad_options_say_what_is_wrong(tmp_path):
    result = CliRunner().invoke(main, ["plan", "simulate", "--server-kind", "tpu", "--events", "10", "--quiet"])
    assert result.exit_code == 2 and "server kind 'tpu'" in result.output
    result = CliRunner().invoke(main, ["plan", "simulate", "--servers", "1,2", "--quiet"])
    assert result.exit_code == 2 and "--servers must be one whole number" in result.output


def test_a_calibration_without_the_assignment_round_trip_is_named(tmp_path):
    """A calibration made before `assign` was measured still runs, with a note on stderr that
    its build times hold the wait the model now makes itself; the shipped one has no note."""
    old = tmp_path / "old.json"
    save(calibration(rows=50, called=False), old)
    result = CliRunner().invoke(main, ["plan", "simulate", "--calibration", str(old), "--server-kind", "cpu",
                                                       "--rate", "50", "--events", "100", "--quiet"])
    assert result.exit_code == 0, result.output
    assert "no assignment round trip" in result.stderr
    shipped = CliRunner().invoke(main, ["plan", "simulate", "--rate", "50", "--events", "100", "--quiet"])
    assert shipped.exit_code == 0 and "no assignment round trip" not in shipped.stderr
