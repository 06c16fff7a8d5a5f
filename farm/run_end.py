"""How a run ends on the command line, for the one-host and the topology run alike: the summary
to `--json`, and exit status 0 only when the run is known complete."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from rich.console import Console


def finish_run(summary: dict[str, Any], json_path: str | None, console: Console) -> None:
    """Write the summary (`--json`) and exit: 0 only when the run is known complete."""
    if json_path:
        Path(json_path).write_text(json.dumps(summary, indent=2, default=str))
    reasons = incomplete_reasons(summary)
    if reasons:
        console.print(f"[red]run not known complete:[/red] {'; '.join(reasons)} (exit status 1)")
    sys.exit(1 if reasons else 0)


def incomplete_reasons(summary: dict[str, Any]) -> list[str]:
    """Why a run is not known complete (empty: exit 0): the readout's count of Level-1
    accepts must have arrived, nothing may be lost or decided twice, every kept event
    written, every message between the farm's processes readable, and no problem recorded."""
    events, collector, builder = summary["events"], summary.get("collector", {}), summary.get("builder", {})
    reasons = []
    if not events["l1_count_known"]:
        reasons.append("the readout never reported how many Level-1 accepts it sent")
    if events["lost"]:
        reasons.append(f"{events['lost']} events lost")
    checks = ((events.get("duplicate_results_refused", 0), "second outcomes refused"),
              (collector.get("write_errors", 0), "stream writes failed"),
              (collector.get("bad_messages", 0), "malformed messages at the collector"),
              (builder.get("bad_results", 0), "malformed worker results"))
    reasons += [f"{n} {what}" for n, what in checks if n]
    if summary["problems"]:
        reasons.append(f"{len(summary['problems'])} problems recorded")
    return reasons
