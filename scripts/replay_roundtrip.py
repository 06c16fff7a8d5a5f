"""Replay a recording through the farm, then replay each of its output streams again, and
check that every accepted event gets the same chains the second time.

    .venv/bin/python scripts/replay_roundtrip.py RECORDING --rate HZ --out DIR \\
        [--timeout-ms MS] [--events N] [--pattern constant|poisson]

The first pass writes DIR/first/ (streams) and DIR/first.json; each physics stream S is
then replayed into DIR/again-S/ (DIR/again-S.json). With DIR/first.json already there
(a long first pass run before), the first pass is not repeated. Prints a table and writes
DIR/roundtrip.json; exits 1 if an event was lost or decided differently.
Both passes go through `trigger-sim replay`, so the farm, its progress display and its
summaries are exactly what a user gets.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from trigger_sim.recording import RecordReader  # noqa: E402
from trigger_sim.replay_check import compare_replay, physics_streams, stream_decisions  # noqa: E402

CLI = [sys.executable, "-m", "farm"]


def replay(recording: Path, out: Path, json_path: Path, args: argparse.Namespace, events: int | None = None) -> dict:
    cmd = [*CLI, "replay", str(recording), "--rate", str(args.rate), "--pattern", args.pattern,
           "--output", str(out), "--json", str(json_path)]
    if args.timeout_ms is not None:
        cmd += ["--timeout-ms", str(args.timeout_ms)]
    if events is not None:
        cmd += ["--events", str(events)]
    print("$", " ".join(cmd[2:]), flush=True)
    code = subprocess.run(cmd).returncode
    if not json_path.exists():
        raise SystemExit(f"replay of {recording} wrote no summary (exit code {code})")
    return json.loads(json_path.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recording", type=Path)
    parser.add_argument("--rate", type=float, required=True, help="Level-1 rate of both passes (Hz)")
    parser.add_argument("--pattern", default="constant", choices=("constant", "poisson"))
    parser.add_argument("--timeout-ms", type=float, help="inference deadline (default: the farm's)")
    parser.add_argument("--events", type=int, help="first pass: this many events (default: the whole file)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    first_json = args.out / "first.json"
    if first_json.exists():
        print(f"first pass already done: {first_json}")
        first = json.loads(first_json.read_text())
    else:
        first = replay(args.recording, args.out / "first", first_json, args, args.events)
    first_dir = Path(first["output"]["directory"])
    decided_first = stream_decisions(first_dir)
    rows, failed = [], first["events"]["lost"] > 0
    for path in physics_streams(first_dir):
        ids = [r.l1_id for r in RecordReader(path)]
        again = replay(path, args.out / f"again-{path.stem}", args.out / f"again-{path.stem}.json", args)
        result = compare_replay(path.stem, decided_first, ids, stream_decisions(args.out / f"again-{path.stem}"))
        failed |= again["events"]["lost"] > 0 or not result.identical
        rows.append({"stream": path.stem, "events": result.events, "lost": again["events"]["lost"], "same_chains": result.same,
                     "n_different_chains": len(result.different_chains), "n_not_accepted": len(result.not_accepted),
                     "different_chains": result.different_chains[:20], "not_accepted": result.not_accepted[:20],
                     "debug_streams": again["debug_streams"], "fallback_calls": again["inference"]["fallback_calls"]})
    ev = first["events"]
    report = {"recording": str(args.recording), "rate_hz": args.rate, "first": {
        "l1_accepted": ev["l1_accepted"], "lost": ev["lost"], "accepted": ev["accepted"], "rejected": ev["rejected"],
        "debug": ev["debug"], "debug_streams": first["debug_streams"], "streams": first["streams"],
        "decision_digest": ev["decision_digest"], "fallback_calls": first["inference"]["fallback_calls"],
        "fallback_reasons": first["inference"]["fallback_reasons"],
        "total_ms": {k: first["latency_ms"]["total"][k] for k in ("p50", "p99", "max")},
        "elapsed_s": first["level1"]["elapsed_s"]}, "again": rows, "ok": not failed}
    (args.out / "roundtrip.json").write_text(json.dumps(report, indent=2))
    console = Console()
    console.print(f"first pass: {ev['l1_accepted']} Level-1 accepts, lost {ev['lost']}, accepted {ev['accepted']}, "
                  f"rejected {ev['rejected']}, debug {ev['debug']} {first['debug_streams'] or ''}")
    table = Table(title="output streams replayed again")
    for col in ("stream", "events", "lost", "same chains", "different chains", "not accepted again"):
        table.add_column(col, justify="left" if col == "stream" else "right")
    for r in rows:
        table.add_row(r["stream"], str(r["events"]), str(r["lost"]), str(r["same_chains"]),
                      str(r["n_different_chains"]), str(r["n_not_accepted"]))
    console.print(table)
    console.print("[green]identical decisions, nothing lost[/green]" if not failed else "[red]differences or losses: see roundtrip.json[/red]")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
