"""The section "Capacity model against the real farm" of BENCHMARKS.md: the latest
docs/plan/validation.json written by scripts/validate_plan.py, rendered as it is (its own
command and date: a separate run from the suite's, not re-measured by scripts/bench.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

TITLE = "## Capacity model against the real farm"


def _ms(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, (int, float)) else "–"


def _hz(value: Any) -> str:
    return f"{value:.1f} Hz" if isinstance(value, (int, float)) else "none"


def _fraction(value: float) -> str:
    """A fallback fraction: three decimals, or four where three would read a few calls as none."""
    return f"{value:.4f}" if 0 < value < 0.0005 else f"{value:.3f}"


def _mark(ok: bool) -> str:
    return "within" if ok else "**not within**"


def steps_by_rate_line(by_rate: dict[str, list], sep: str = " / ") -> str:
    """"at R1 / R2 Hz: step a1 / a2; ..." from `validate_plan.steps_against_rate`'s table
    ("" when it has no step or a single rate)."""
    if len(by_rate) < 2 or len(by_rate.get("rate_hz", [])) < 2:
        return ""
    return (f"at {sep.join(f'{r:g}' for r in by_rate['rate_hz'])} Hz: "
            + "; ".join(f"{k} " + sep.join(f"{v:.1f}" for v in vals) for k, vals in by_rate.items() if k != "rate_hz"))


def real_runs_line(rates: list[dict[str, Any]]) -> str:
    """"at R Hz: a/b, c/d; ..." from rows that keep each real run's p50/p99 ("" when none
    does): how far two runs of the same case at the same rate differ."""
    parts = [f"at {r['rate_hz']:g} Hz: " + ", ".join(f"{a:.1f}/{b:.1f}" for a, b in r["real_p50_p99_ms_per_run"] if a is not None)
             for r in rates if len(r.get("real_p50_p99_ms_per_run") or []) > 1]
    return "; ".join(parts)


def restarts_line(case: dict) -> str:
    """The killed server's restarts: each real run's (its length and CPU until ready) beside
    the model's, and how the model restarted it; "" for a case without them."""
    rows = [r for r in case.get("rates") or [] if r.get("restart_s_per_run")]
    if not rows:
        return ""

    def seconds(values: list) -> str:
        known = [v for v in values if v is not None]
        return f"{min(known):.2f}-{max(known):.2f}" if known else "none"

    parts = []
    for r in rows:
        part = f"at {r['rate_hz']:g} Hz real {seconds(r['restart_s_per_run'])} s"
        if r.get("restart_cpu_s_per_run"):
            part += f" ({seconds(r['restart_cpu_s_per_run'])} CPU s until ready)"
        model = [x for run in r.get("model_restart_s_per_real_run") or [] for x in run]
        if model:
            part += f", model {seconds(model)} s"
        parts.append(part)
    how = (case.get("restart_modelled") or {}).get("how")
    return ("The killed server's restarts (real: the keeper's restart until ready; model: kill to back): "
            + "; ".join(parts) + "."
            + (f" In the model: {how}." if how else ""))


def paired_runs_line(rates: list[dict[str, Any]]) -> str:
    """"at R Hz: seed S real X, model A-B; ..." from kill rows whose model seeds replayed the
    real runs (their Level-1 times and restarts; "" when none did): the model against each
    run on the same arrivals."""
    parts = []
    for r in rates:
        model = r.get("model_p99_ms_per_real_run") or []
        real = r.get("real_p50_p99_ms_per_run") or []
        seeds = r.get("real_seeds") or [None] * len(real)
        if not model or len(model) != len(real):
            continue
        each = [f"run {k}{f' (seed {s})' if s is not None else ''} real {b:.0f}, model {min(m):.0f}-{max(m):.0f}"
                for k, (s, (_, b), m) in enumerate(zip(seeds, real, model), 1) if b is not None and m]
        parts.append(f"at {r['rate_hz']:g} Hz: " + ", ".join(each))
    return "; ".join(parts)


def _case_lines(case: dict[str, Any], table) -> list[str]:
    lines = [f"### {case['case']}", ""]
    if case.get("measured_utc"):
        lines += [f"Measured by an earlier run of the script, {case['measured_utc']} UTC (reused by this one).", ""]
    measured = case.get("measured")
    if measured:
        phases = measured.get("phases", [])
        busiest = max(phases, key=lambda p: p.get("other_cores", 0.0), default=None)
        load = (f"; {sum(p.get('seconds', 0.0) for p in phases):.0f} s under the shared lock in {len(phases)} phases, "
                f"other processes on the machine used at most {busiest['other_cores']:.2f} cores meanwhile "
                f"({busiest['phase']})" if busiest else "")
        lines += [f"Measured {measured.get('date_utc', '?')} UTC by `{measured.get('command', '?')}` at commit "
                  f"{measured.get('commit', '?')}{load}.", ""]
    if case.get("incomplete"):
        lines += [f"Incomplete: {case['incomplete']}.", ""]
    earlier = case.get("saturation_and_calibration_measured")
    if earlier:
        lines += [f"Its saturation and calibration: {earlier.get('date_utc', '?')} UTC, `{earlier.get('command', '?')}` at "
                  f"commit {earlier.get('commit', '?')}; the runs at the three rates above are a later run's.", ""]
    if case.get("model_rerun"):
        rerun = case["model_rerun"]
        lines += [f"Model figures re-run {rerun.get('date_utc', '?')} UTC at commit {rerun.get('commit', '?')} "
                  f"(`{rerun.get('command', '?')}`, calibration `{rerun.get('calibration', '?')}`).", ""]
    if "error" in case or "skipped" in case:
        return lines + [f"Not measured: {case.get('error') or case.get('skipped')}", ""]
    if "real_saturation_hz" in case:
        lines += [_saturation_line(case), ""]
    else:
        lines += [f"Saturation: {case.get('saturation', 'not compared')}.", ""]
    if case.get("rates_from") == "own" and case.get("rates_saturation_hz"):
        lines += [f"Rates at fractions of its own farm's saturation without a kill: real sustained "
                  f"{_hz(case['rates_saturation_hz'])}, failed {_hz(case.get('real_failed_no_kill_hz'))} "
                  f"({case.get('real_search_no_kill', '')}; the default farm's: {_hz(case.get('default_saturation_hz'))}).", ""]
    calibration = case.get("calibration") or {}
    source = f" ({calibration['source']})" if calibration.get("source") else ""
    if isinstance(calibration.get("rate_hz"), (int, float)):
        runs = calibration.get("runs") or []
        if len(runs) > 1:
            each = "; ".join(f"{r.get('events', '?')} events {r.get('when', '')}, total p50/p99 "
                             f"{r['total_p50_p99_ms'][0]:.1f}/{r['total_p50_p99_ms'][1]:.1f} ms" for r in runs)
            lines += [f"Calibration{source}: {len(runs)} runs at {calibration['rate_hz']:g} Hz, pooled ({each}).", ""]
        else:
            lines += [f"Calibration run{source}: {calibration['rate_hz']:g} Hz, {calibration.get('events', '?')} events.", ""]
    elif source:
        lines += [f"Calibration{source}.", ""]
    per_run = real_runs_line(case["rates"]) if "rates" in case else ""
    if per_run:
        lines += [f"Each real run's own total p50/p99 (ms; the table pools them) {per_run}.", ""]
    paired = paired_runs_line(case["rates"]) if "rates" in case else ""
    if paired:
        lines += [f"Each real run's p99 beside the p99 of the model's seeds that replayed it, its Level-1 times "
                  f"and its restart (ms) {paired}.", ""]
    restarts = restarts_line(case)
    if restarts:
        lines += [restarts, ""]
    steps = steps_by_rate_line(case.get("real_steps_by_rate") or {})
    if steps:
        lines += [f"Real step medians (ms) {steps}.", ""]
    rep = case.get("real_repeat")
    if rep:
        (c50, c99), (r50, r99) = rep["calibration_run_p50_p99_ms"], rep["rates_run_p50_p99_ms"]
        d50, d99 = rep["calibration_run_vs_rates_run_pct"]
        m50, m99 = rep["model_vs_calibration_run_pct"]
        at_rate = next((r for r in case["rates"] if r.get("rate_hz") == rep["rate_hz"]), {})
        theirs = "runs at that rate, pooled," if _runs_at(at_rate) > 1 else "run at that rate"
        lines += [f"Real runs at {rep['rate_hz']:g} Hz, total p50/p99: the calibration's {c50:.1f}/{c99:.1f} ms, the real "
                  f"{theirs} {r50:.1f}/{r99:.1f} ms ({d50:+.0f} % / {d99:+.0f} %); the model is {m50:+.0f} % / {m99:+.0f} % "
                  "from the calibration.", ""]
    lines += _sample_line(case["rates"])
    fallback = any("real_fallback_fraction" in r for r in case["rates"])
    header = ["rate Hz", "real p50 ms (95 % interval)", "model p50 ms", "p50", "real p99 ms (95 % interval)", "model p99 ms", "p99"]
    if fallback:
        header += ["real fallback fraction", "model fallback fraction"]
    rows = []
    for r in case["rates"]:
        row = [f"{r['rate_hz']:.1f}", _with_interval(r, 50), _ms(r["model_p50_ms"]), _verdict(r, 50),
               _with_interval(r, 99), _ms(r["model_p99_ms"]), _verdict(r, 99)]
        if fallback:
            row += [_fraction(r.get("real_fallback_fraction", 0)), _fraction(r.get("model_fallback_fraction", 0))]
        rows.append(row)
    methods = [str(r.get("real_interval_method", "")) for r in case["rates"]]
    approximate = any(m.startswith("approximate") for m in methods)
    blocks = any(m.startswith("moving-block") for m in methods)
    notes = ["Intervals: 95 %, " + ("approximate (the run kept no per-event latencies: binomial order-statistic ranks, as "
                                     "values by the model's own distribution)" if approximate
                                     else "moving-block bootstrap over the runs' events (blocks of consecutive events within "
                                          "a run: slow events come in spells)" if blocks else "bootstrap over the run's events")
             + "; \"in interval\": outside 15 % but inside the real figure's own interval (no model error shown).", ""]
    return lines + table(header, rows) + ([""] + notes if any("real_p99_interval_ms" in r for r in case["rates"]) else [])


def _saturation_line(case: dict[str, Any]) -> str:
    """The model's saturation against the real search's bracket (sustained, failed), where the
    case records one (`saturation_verdict`: within 10 % of every rate in it, of some, of none)."""
    real, model = case["real_saturation_hz"], case.get("model_saturation_hz")
    verdict = case.get("saturation_verdict")
    if verdict is None:
        return (f"Saturation: real {_hz(real)} ({case.get('real_search', '')}), model {_hz(model)}: "
                f"{_mark(case['saturation_ok'])} 10 %.")
    top = case.get("real_failed_hz")
    bracket = (f"sustained at {_hz(real)}, failed at {_hz(top)}" if top else
               f"sustained at {_hz(real)} and at every rate tried above it (a lower bound)")
    said = {"within": "within 10 % of every rate in the bracket",
            "undecided": "within 10 % of part of the bracket only: **undecided** (a finer real search would decide)",
            "not within": "**not within** 10 % of any rate in the bracket"}[verdict]
    return f"Saturation: real {bracket} ({case.get('real_search', '')}); model {_hz(model)}: {said}."


def _with_interval(row: dict[str, Any], q: int) -> str:
    interval = row.get(f"real_p{q}_interval_ms")
    value = _ms(row[f"real_p{q}_ms"])
    return f"{value} ({interval[0]:.1f}-{interval[1]:.1f})" if interval else value


def _verdict(row: dict[str, Any], q: int) -> str:
    if row[f"p{q}_ok"] or not row.get(f"p{q}_in_real_interval"):
        return _mark(row[f"p{q}_ok"])
    return "in interval"


def _span(low: int, high: int) -> str:
    return f"{low:,}" if low == high else f"{low:,}-{high:,}"


def _runs_at(row: dict[str, Any]) -> int:
    """How many real runs a rate's row holds (the kill case counts them, the others list their events)."""
    return row.get("runs") or len(row.get("real_events") or []) or 1


def _sample_line(rates: list[dict[str, Any]]) -> list[str]:
    """How many events each rate's real percentiles rest on (a p99 on its 1 % worst)."""
    totals = [r["real_total_events"] for r in rates if isinstance(r.get("real_total_events"), int)]
    per_rate = max((_runs_at(r) for r in rates), default=1)
    if len(totals) == len(rates) and totals and per_rate > 1:
        low, high = min(totals), max(totals)
        return [f"Real percentiles: each rate's {per_rate} runs pooled, {_span(low, high)} events (a p99 rests on its "
                f"{_span(low // 100, high // 100)} worst events).", ""]
    runs = [r.get("real_events", r.get("events")) for r in rates]
    runs = [n if isinstance(n, list) else [n] for n in runs if n is not None]
    counts = [c for run in runs for c in run if isinstance(c, int)]
    if not counts:
        return []
    per_rate = max(len(run) for run in runs)
    how = f"the median of {per_rate} runs per rate, each of" if per_rate > 1 else "one run per rate of"
    worst = _span(max(min(counts) // 100, 1), max(max(counts) // 100, 1))
    return [f"Real percentiles: {how} {_span(min(counts), max(counts))} events (a p99 rests on its {worst} worst events).", ""]


def section(path: Path, table) -> list[str]:
    """The section's lines (`table(header, rows)` renders a Markdown table); a line saying so
    where the file is absent or unreadable."""
    lines = [TITLE, ""]
    try:
        data = json.loads(Path(path).read_text())
        cases = data["cases"]
    except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
        return lines + [f"No validation figures: {path} could not be read ({err}); run scripts/validate_plan.py.", ""]
    if data.get("command") or data.get("date_utc"):
        when = (f"A separate run, not part of this suite: `{data.get('command') or 'scripts/validate_plan.py'}` on "
                f"{data.get('date_utc', 'an unknown date')} UTC (figures from `docs/plan/validation.json`).")
    else:
        when = ("Separate runs, not part of this suite: each case below is its own run of `scripts/validate_plan.py`, "
                "with its command, commit and time (figures from `docs/plan/validation.json`).")
    lines += [f"{when} The model "
              "(`trigger-sim plan`) is calibrated on real runs (their rate and source under each case), then compared with the real "
              "farm at the same rates: targets saturation within 10 %, p50 and p99 of the total latency within 15 %. "
              "Where the model misses, the README's \"Planning a farm\" section says which mechanism it lacks.", ""]
    for case in cases:
        lines += _case_lines(case, table)
    return lines
