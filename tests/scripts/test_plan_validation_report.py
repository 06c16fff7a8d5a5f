"""BENCHMARKS.md's section "Capacity model against the real farm": the latest
docs/plan/validation.json rendered with its own command and date, as a separate run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from trigger_sim.config import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT / "scripts"))

from bench_cases import plan_validation, report  # noqa: E402

VALIDATION = {
    "date_utc": "2026-12-05 14:01", "command": "scripts/validate_plan.py --repeats 1",
    "cases": [
        {"case": "default farm", "measured_utc": "2026-12-05 13:17", "real_saturation_hz": 76.6, "real_search": "bracket 76.6-80.0 Hz",
         "model_saturation_hz": 78.3, "saturation_ok": True,
         "rates": [{"rate_hz": 23.0, "real_p50_ms": 25.6, "model_p50_ms": 25.0, "p50_ok": True,
                    "real_p99_ms": 55.8, "model_p99_ms": 80.0, "p99_ok": False}]},
        {"case": "two servers, one killed", "saturation": "not searched: a kill is a transient",
         "rates": [{"rate_hz": 42.1, "real_p50_ms": 30.0, "model_p50_ms": 29.0, "p50_ok": True, "real_p99_ms": 200.0,
                    "model_p99_ms": 190.0, "p99_ok": True, "real_fallback_fraction": 0.021, "model_fallback_fraction": 0.018}]},
        {"case": "event slots (2) against a sleep-model server (40 ms)", "error": "the real farm sustained no rate"},
    ],
}


def write(tmp_path: Path, data) -> Path:
    path = tmp_path / "validation.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return path


def test_the_section_carries_the_files_command_date_and_every_case(tmp_path):
    text = "\n".join(plan_validation.section(write(tmp_path, VALIDATION), report._table))
    assert text.startswith(plan_validation.TITLE)
    assert "`scripts/validate_plan.py --repeats 1`" in text and "2026-12-05 14:01 UTC" in text
    assert "separate run" in text
    assert "real 76.6 Hz" in text and "model 78.3 Hz" in text
    assert "| 23.0 | 25.6 | 25.0 | within | 55.8 | 80.0 | **not within** |" in text
    assert "| 42.1 | 30.0 | 29.0 | within | 200.0 | 190.0 | within | 0.021 | 0.018 |" in text
    assert "not searched: a kill is a transient" in text
    assert "earlier run of the script, 2026-12-05 13:17 UTC" in text
    assert "Not measured: the real farm sustained no rate" in text


def test_a_missing_or_broken_file_is_named_not_fatal(tmp_path):
    for path in (tmp_path / "absent.json", write(tmp_path, "{not json")):
        text = "\n".join(plan_validation.section(path, report._table))
        assert str(path) in text and "run scripts/validate_plan.py" in text


def test_the_report_ends_with_the_section(tmp_path):
    meta = {"command": "scripts/bench.py", "quick": False, "date": "2026-12-05", "duration_s": 1.0,
            "machine": {"gpu": "", "cpu_model": "", "cores": 2, "memory_gib": 4, "os": "Linux", "python": "3.11"}}
    out = tmp_path / "BENCHMARKS.md"
    report.write_markdown(out, meta, [], plan_validation_json=write(tmp_path, VALIDATION))
    text = out.read_text()
    assert text.index("## Targets") < text.index(plan_validation.TITLE)
    assert "### two servers, one killed" in text


def test_cases_measured_by_separate_runs_each_carry_their_command_commit_and_load(tmp_path):
    phases = [{"phase": "default farm: real saturation search", "seconds": 250.0, "other_cores": 0.04},
              {"phase": "default farm: real runs", "seconds": 150.0, "other_cores": 0.31}]
    data = {"cases": [{**VALIDATION["cases"][0], "measured_utc": None,
                       "measured": {"date_utc": "2026-12-05 15:40", "command": "scripts/validate_plan.py --cases default",
                                    "commit": "abc1234", "phases": phases}}]}
    text = "\n".join(plan_validation.section(write(tmp_path, data), report._table))
    assert "Separate runs" in text and "each case below is its own run" in text
    assert "Measured 2026-12-05 15:40 UTC by `scripts/validate_plan.py --cases default` at commit abc1234" in text
    assert "400 s under the shared lock in 2 phases" in text
    assert "at most 0.31 cores meanwhile (default farm: real runs)" in text
    data["cases"][0]["saturation_and_calibration_measured"] = {"date_utc": "2026-12-05 15:25", "command": "x --cases default",
                                                              "commit": "5c7b26b"}
    text = "\n".join(plan_validation.section(write(tmp_path, data), report._table))
    assert "Its saturation and calibration: 2026-12-05 15:25 UTC, `x --cases default` at commit 5c7b26b" in text
    data["cases"][0]["incomplete"] = "53.6 Hz not measured"
    assert "Incomplete: 53.6 Hz not measured." in "\n".join(plan_validation.section(write(tmp_path, data), report._table))


def test_each_case_says_its_calibration_rate_and_how_many_events_its_percentiles_rest_on(tmp_path):
    """The default farm is calibrated at 0.8 of its saturation, not at a low rate; a real p99
    from ~1,300 events rests on its 13 worst, which the section says."""
    data = json.loads(json.dumps(VALIDATION))
    default, kill = data["cases"][0], data["cases"][1]
    default["calibration"] = {"rate_hz": 53.6, "events": 1202}
    default["rates"][0]["real_events"] = [1231]
    default["rates"].append({**default["rates"][0], "rate_hz": 36.9, "real_events": [1376]})
    kill["rates"][0]["events"] = 800
    text = "\n".join(plan_validation.section(write(tmp_path, data), report._table))
    assert "low-rate" not in text
    assert "Calibration run: 53.6 Hz, 1202 events." in text
    assert "Real percentiles: one run per rate of 1,231-1,376 events (a p99 rests on its 12-13 worst events)." in text
    assert "Real percentiles: one run per rate of 800 events (a p99 rests on its 8 worst events)." in text
    default["rates"][0]["real_events"] = [400, 410, 420]
    text = "\n".join(plan_validation.section(write(tmp_path, data), report._table))
    assert "the median of 3 runs per rate, each of 400-1,376 events" in text


def test_rows_show_the_real_intervals_and_a_model_inside_one_is_told_apart():
    case = {"case": "default farm", "real_saturation_hz": 67.0, "model_saturation_hz": 69.0, "saturation_ok": True,
            "rates": [{"rate_hz": 20.1, "real_p50_ms": 26.0, "model_p50_ms": 26.5, "p50_ok": True, "p50_in_real_interval": True,
                       "real_p50_interval_ms": [25.4, 26.4], "real_p99_ms": 81.7, "model_p99_ms": 68.0, "p99_ok": False,
                       "p99_in_real_interval": True, "real_p99_interval_ms": [66.0, 92.0], "real_events": [1231],
                       "real_interval_method": "bootstrap over the run's 1231 events"}]}
    text = "\n".join(plan_validation._case_lines(case, report._table))
    assert "81.7 (66.0-92.0)" in text and "in interval" in text and "bootstrap" in text


def test_the_saturation_line_shows_the_real_bracket_and_an_undecided_verdict():
    """A model within 10 % of the bracket's bottom only is shown undecided, with both ends of the bracket."""
    case = {"case": "default farm", "real_saturation_hz": 61.7, "real_failed_hz": 67.3, "model_saturation_hz": 58.4,
            "saturation_ok": False, "saturation_verdict": "undecided", "real_search": "probe limit (6) reached", "rates": []}
    text = "\n".join(plan_validation._case_lines(case, report._table))
    assert "sustained at 61.7 Hz, failed at 67.3 Hz" in text and "model 58.4 Hz" in text and "**undecided**" in text
    open_above = {**case, "real_failed_hz": None, "saturation_verdict": "not within"}
    text = "\n".join(plan_validation._case_lines(open_above, report._table))
    assert "(a lower bound)" in text and "**not within** 10 % of any rate" in text


def test_two_real_runs_at_one_rate_are_shown_beside_the_model():
    case = {"case": "default farm", "real_saturation_hz": 61.7, "model_saturation_hz": 59.7, "saturation_ok": False,
            "calibration": {"rate_hz": 49.4, "events": 1202}, "rates": [],
            "real_repeat": {"rate_hz": 49.4, "calibration_run_p50_p99_ms": [40.4, 180.1], "rates_run_p50_p99_ms": [32.2, 100.5],
                            "calibration_run_vs_rates_run_pct": [25.5, 79.2], "model_vs_calibration_run_pct": [4.7, -11.0]}}
    text = "\n".join(plan_validation._case_lines(case, report._table))
    assert "Real runs at 49.4 Hz" in text and "40.4/180.1 ms" in text and "32.2/100.5 ms (+26 % / +79 %)" in text
    assert "the model is +5 % / -11 % from the calibration." in text


def test_the_section_alone_is_rendered_again_and_the_suites_sections_are_kept(tmp_path):
    """`scripts/bench.py --plan-section-only`: after a validation run, only the last section changes."""
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n\n## a) the builder\n\nsuite figures\n\n" + plan_validation.TITLE + "\n\nold validation\n")
    report.replace_plan_section(md, write(tmp_path, VALIDATION))
    text = md.read_text()
    assert text.startswith("# Benchmarks\n\n## a) the builder\n\nsuite figures\n\n" + plan_validation.TITLE)
    assert "old validation" not in text and "`scripts/validate_plan.py --repeats 1`" in text
    assert text.count(plan_validation.TITLE) == 1


def test_a_file_without_the_section_is_refused_not_appended_to(tmp_path):
    md = tmp_path / "BENCHMARKS.md"
    md.write_text("# Benchmarks\n")
    try:
        report.replace_plan_section(md, write(tmp_path, VALIDATION))
    except SystemExit as exc:
        assert "no section" in str(exc)
    else:
        raise AssertionError("a file without the section must be refused")
    assert md.read_text() == "# Benchmarks\n"


def test_pooled_calibration_runs_and_the_real_steps_by_rate_are_shown(tmp_path):
    case = {**VALIDATION["cases"][0],
            "calibration": {"rate_hz": 61.3, "events": 3000,
                            "runs": [{"events": 1500, "when": "before the real runs at the three rates", "total_p50_p99_ms": [48.0, 160.0]},
                                     {"events": 1500, "when": "after them", "total_p50_p99_ms": [66.1, 351.8]}]},
            "real_steps_by_rate": {"rate_hz": [23.0, 61.3], "edge_classifier": [18.9, 16.6]}}
    text = "\n".join(plan_validation.section(write(tmp_path, {**VALIDATION, "cases": [case]}), report._table))
    assert "Calibration: 2 runs at 61.3 Hz, pooled (1500 events before the real runs" in text and "66.1/351.8 ms" in text
    assert "Real step medians (ms) at 23 / 61.3 Hz: edge_classifier 18.9 / 16.6." in text


def test_the_kill_cases_own_saturation_and_pooled_real_runs_are_named(tmp_path):
    kill = {**VALIDATION["cases"][1], "rates_from": "own", "rates_saturation_hz": 70.0, "real_failed_no_kill_hz": 73.1,
            "real_search_no_kill": "bracket 70.0-73.1 Hz", "default_saturation_hz": 80.0}
    default = {**VALIDATION["cases"][0], "rates": [{**VALIDATION["cases"][0]["rates"][0], "real_events": [2019, 2068],
                                                    "real_total_events": 4087}]}
    kill["rates"] = [{**kill["rates"][0], "runs": 4, "real_total_events": 3200}]
    text = "\n".join(plan_validation.section(write(tmp_path, {"cases": [default, kill]}), report._table))
    assert ("Rates at fractions of its own farm's saturation without a kill: real sustained 70.0 Hz, failed 73.1 Hz "
            "(bracket 70.0-73.1 Hz; the default farm's: 80.0 Hz)") in text
    assert "each rate's 2 runs pooled, 4,087 events (a p99 rests on its 40 worst events)" in text
    assert "each rate's 4 runs pooled, 3,200 events (a p99 rests on its 32 worst events)" in text
    assert "the median of" not in text  # pooled, not the median of the runs'


def test_a_few_fallback_calls_do_not_read_as_none(tmp_path):
    kill = {**VALIDATION["cases"][1]}
    kill["rates"] = [{**kill["rates"][0], "real_fallback_fraction": 1 / 3200, "model_fallback_fraction": 0.0}]
    text = "\n".join(plan_validation.section(write(tmp_path, {"cases": [kill]}), report._table))
    assert "| 0.0003 | 0.000 |" in text


def test_each_kill_run_is_shown_beside_the_model_seeds_that_replayed_it():
    """A kill row's model seeds replay the real runs in turn: each run's p99 is printed
    beside the range of its own seeds' p99, and rows without that pairing print nothing."""
    row = {"rate_hz": 38.6, "real_seeds": [2, 3], "real_p50_p99_ms_per_run": [[39.0, 200.1], [32.9, 105.4]],
           "model_p99_ms_per_real_run": [[96.2, 126.4, 113.0], [72.0, 93.1]]}
    line = plan_validation.paired_runs_line([row])
    assert line == "at 38.6 Hz: run 1 (seed 2) real 200, model 96-126, run 2 (seed 3) real 105, model 72-93"
    assert plan_validation.paired_runs_line([{**row, "model_p99_ms_per_real_run": [[1.0]]}]) == ""
    assert plan_validation.paired_runs_line([{k: v for k, v in row.items() if k != "model_p99_ms_per_real_run"}]) == ""
    unnamed = {k: v for k, v in row.items() if k != "real_seeds"}
    assert plan_validation.paired_runs_line([unnamed]).startswith("at 38.6 Hz: run 1 real 200, model 96-126")


def test_the_restarts_line_sets_each_rates_real_restarts_beside_the_models():
    from bench_cases.plan_validation import restarts_line

    case = {"restart_modelled": {"how": "each real run's measured restart replayed"},
            "rates": [{"rate_hz": 17.0, "restart_s_per_run": [1.43, None, 0.82], "restart_cpu_s_per_run": [1.48, 1.01],
                       "model_restart_s_per_real_run": [[0.87, 0.93], [0.81]]}, {"rate_hz": 31.1}]}
    line = restarts_line(case)
    assert "at 17 Hz real 0.82-1.43 s (1.01-1.48 CPU s until ready), model 0.81-0.93 s." in line
    assert "31.1" not in line and line.endswith("In the model: each real run's measured restart replayed.")
    assert restarts_line({"rates": [{"rate_hz": 40.0}]}) == ""
