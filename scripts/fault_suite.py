"""Run the fault scenarios long and print, per fault: injected, events in, decided, lost.

    .venv/bin/python scripts/fault_suite.py            # long version (about 20 minutes)
    .venv/bin/python scripts/fault_suite.py --scale 0.2 --only triton_killed

The same scenarios run short in the test suite (tests/faults/). Exit code 1 if any event
was lost in any scenario.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from rich.console import Console
from rich.table import Table

from farm import fault_scenarios as fs

LONG_EVENTS = {"worker_killed": 300, "random_kills_below": 10_000, "random_kills_above": 10_000, "worker_stalled": 600,
               "looped_replay": 300_000, "triton_killed": 2000, "stub_killed": 1500, "readout_faults": 2000,
               "silent_source": 600, "overload": 4000}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply every scenario's event count")
    parser.add_argument("--only", choices=sorted(fs.SCENARIOS), action="append", help="run only these scenarios")
    parser.add_argument("--json", help="write the per-scenario figures here")
    args = parser.parse_args()
    console = Console(width=160)
    rows = []
    for name in args.only or list(fs.SCENARIOS):
        n = max(int(LONG_EVENTS[name] * args.scale), 40)
        console.print(f"[bold]{name}[/bold]: {n} events ...")
        t0 = time.monotonic()
        result = fs.SCENARIOS[name](n)
        ev = result.summary["events"]
        rows.append({"scenario": result.name, "injected": result.injected, "events_in": ev["l1_accepted"],
                     "decided": ev["accepted"] + ev["rejected"] + ev["debug"], "debug": ev["debug"], "lost": ev["lost"],
                     "duplicates_refused": ev["duplicate_results_refused"],
                     "fallback": result.summary["inference"]["fallback_calls"],
                     "p99_total_ms": result.summary["latency_ms"].get("total", {}).get("p99", 0.0),
                     "wall_s": time.monotonic() - t0,
                     "debug_streams": result.summary["debug_streams"]})
    table = Table(title="Fault suite")
    for col in ("scenario", "injected", "events_in", "decided", "debug", "lost", "duplicates_refused", "fallback", "p99_total_ms", "wall_s"):
        table.add_column(col, justify="left" if col == "scenario" else "right")
    for r in rows:
        table.add_row(*(f"{v:.1f}" if isinstance(v, float) else str(v) for k, v in r.items() if k != "debug_streams"))
    console.print(table)
    for r in rows:
        for stream, n in r["debug_streams"].items():
            console.print(f"  {r['scenario']}: {n} x {stream}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(rows, fh, indent=2)
    return 1 if any(r["lost"] for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
