"""BENCHMARKS.md and benchmarks.json from the cases' results."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench_cases import plan_validation
from bench_cases.common import REPO_ROOT, CaseResult

PLAN_VALIDATION = REPO_ROOT / "docs" / "plan" / "validation.json"


def _row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    return [_row(header), _row(["---"] * len(header)), *(_row(r) for r in rows), ""]


def _machine_line(machine: dict[str, Any]) -> str:
    gpu = machine["gpu"] or "no GPU"
    cpu = f" ({machine['cpu_model']})" if machine["cpu_model"] else ""
    return (f"{machine['cores']} cores{cpu}, {gpu}, {machine['memory_gib']:g} GiB memory, {machine['os']}, "
            f"Python {machine['python']}")


def write_json(path: Path, meta: dict[str, Any], results: list[CaseResult]) -> None:
    data = {"meta": meta, "cases": {r.name: r.to_json() for r in results}}
    path.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_markdown(path: Path, meta: dict[str, Any], results: list[CaseResult], plan_validation_json: Path = PLAN_VALIDATION) -> None:
    lines = [
        "# Benchmarks" + (": the models on the CPU and on the GPU" if meta.get("gpu_side") else ""),
        "",
        f"Reproduce: `{meta['command']}`" + (" (smoke version: few repetitions, few events)" if meta["quick"] else ""),
        "",
        f"- Machine: {_machine_line(meta['machine'])}",
        f"- Date: {meta['date']}",
        *([f"- GPU suite: the models on the CPU against the models on {meta['gpu_side']}"] if meta.get("gpu_side") else []),
        f"- Duration of the suite: {meta['duration_s']:.0f} s",
        "- CPU used by other processes on the machine while each case ran (a noise indicator; 0 = the suite had "
        "the machine to itself): " + ", ".join(f"{name} {v['other_cores']:.2f} cores"
                                               for name, v in meta.get("other_load", {}).items()),
        "",
        "Each figure is the median of repeated runs after a warm-up, with the minimum and maximum in brackets: "
        "`median [min–max]`. Every ratio is measured side by side in the same run (the two sides alternate, "
        "pair after pair) and taken per pair, because this machine is shared and noisy: absolute figures move "
        "from run to run more than ratios do. How each case is measured: `scripts/bench.py` and the module "
        "docstrings in `scripts/bench_cases/`.",
        "",
        "## Targets",
        "",
    ]
    rows = []
    for r in results:
        for t in r.targets:
            rows.append([t.name, f"{t.measured:.3g}", f"{t.op} {t.limit:g}", "met" if t.met else "**not met**"])
    lines += _table(["target", "measured (median)", "target", ""], rows)
    for r in results:
        lines += [f"## {r.title}", ""]
        for header, table_rows in r.tables:
            lines += _table(header, table_rows)
        for note in r.notes:
            lines += [note, ""]
        if r.limits:
            lines += ["**What limits it.** " + r.limits[0], "", *[x for more in r.limits[1:] for x in (more, "")]]
    lines += plan_validation.section(plan_validation_json, _table)
    path.write_text("\n".join(lines).rstrip() + "\n")


def replace_plan_section(path: Path, plan_validation_json: Path = PLAN_VALIDATION) -> None:
    """BENCHMARKS.md with its last section, the capacity model's validation (a separate run
    from the suite's, rendered from docs/plan/validation.json), rendered again from the
    latest validation; every other section is left as the suite's run wrote it."""
    text = path.read_text()
    at = text.rfind("\n" + plan_validation.TITLE + "\n")
    if at < 0:
        raise SystemExit(f"{path}: no section {plan_validation.TITLE!r} to replace; run the suite to write the file")
    if not Path(plan_validation_json).is_file():
        raise SystemExit(f"{plan_validation_json}: no validation to render; run scripts/validate_plan.py first")
    at += 1
    lines = plan_validation.section(plan_validation_json, _table)
    path.write_text(text[:at] + "\n".join(lines).rstrip() + "\n")

