"""The end-of-run summary as terminal tables (rich)."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


def print_report(summary: dict[str, Any], console: Console | None = None) -> None:
    console = console or Console()
    ev = summary["events"]
    l1 = summary["level1"]
    inf = summary["inference"]

    events = Table(title="Events", show_header=False)
    events.add_column(justify="left")
    events.add_column(justify="right")
    events.add_row("Level-1 accepted", f"{ev['l1_accepted']}")
    events.add_row("  accepted (into >= 1 stream)", f"{ev['accepted']}")
    events.add_row("  rejected", f"{ev['rejected']}")
    events.add_row("  debug streams", f"{ev['debug']}")
    style = "bold green" if ev["lost"] == 0 else "bold red"
    events.add_row("  lost", f"[{style}]{ev['lost']}[/{style}]")
    events.add_row("duplicate results refused", f"{ev['duplicate_results_refused']}")
    events.add_row("Level-1 vetoed (busy / readout slow)", f"{l1['vetoed_busy']} / {l1['vetoed_readout_slow']}")
    events.add_row("dead time", f"{100 * l1['deadtime_fraction']:.2f} %")
    events.add_row("input rate", f"{l1['input_rate_hz']:.1f} Hz ({l1['pattern']}, {l1['rate_hz_configured']:g} Hz asked)")
    events.add_row("decided per second", f"{summary['throughput']['decided_per_s']:.1f}")

    out = Table(title="Chains and streams")
    out.add_column("chain / stream")
    out.add_column("events", justify="right")
    for name, n in summary["chains"].items():
        out.add_row(name, str(n))
    out.add_section()
    for name, n in summary["streams"].items():
        out.add_row(f"stream {name}", str(n))
    for name, n in summary["debug_streams"].items():
        out.add_row(f"[yellow]debug {name}[/yellow]", str(n))

    lat = Table(title="Latency per step (ms)")
    for col in ("step", "n", "p50", "p99", "max"):
        lat.add_column(col, justify="left" if col == "step" else "right")
    for step, s in summary["latency_ms"].items():
        lat.add_row(step, str(s["n"]), f"{s['p50']:.3f}", f"{s['p99']:.3f}", f"{s['max']:.3f}")

    infer = Table(title="Inference", show_header=False)
    infer.add_column()
    infer.add_column(justify="right")
    where = inf["server_mode"]
    if inf.get("server_model_config", "unknown") != "unknown":  # summaries written before it was recorded lack it
        where += f", {inf['server_model_config']} model configuration"
    infer.add_row("server", f"{inf['server']} ({where})")
    infer.add_row("events answered by Triton", str(inf["triton_calls"]))
    infer.add_row("events with a local fallback", str(inf["fallback_calls"]))
    for reason, n in sorted(inf["fallback_reasons"].items()):
        infer.add_row(f"  fallback: {reason}", str(n))
    infer.add_row("nothing to infer (no edges, no jets)", str(inf["skipped_nothing_to_infer"]))
    infer.add_row("circuit breaker opened", str(inf["breaker_opened"]))
    for model, m in inf.get("models", {}).items():
        deadline = f" (deadline {m['deadline_ms']:g} ms)" if "deadline_ms" in m else ""
        infer.add_row(f"{model}: Triton / fallback / skipped{deadline}",
                      f"{m.get('triton_calls', 0)} / {m.get('fallback_calls', 0)} / {m.get('skipped', 0)}")
        if m.get("shared_memory_calls"):
            infer.add_row(f"  {model}: requests through shared memory", str(m["shared_memory_calls"]))

    console.print(events)
    console.print(out)
    console.print(lat)
    console.print(infer)
    if inf.get("servers"):
        console.print(server_table(inf["servers"]))
    if summary["workers"]["restarts"]:
        console.print(f"[yellow]worker restarts:[/yellow] {summary['workers']['restarts']}")
    if summary.get("interrupted_by"):
        console.print(f"stopped by {summary['interrupted_by']}: input stopped, events in flight drained")
    for problem in summary["problems"]:
        console.print(f"[yellow]problem:[/yellow] {problem}")
    if summary["output"]["directory"]:
        console.print(f"output streams in {summary['output']['directory']}: {', '.join(summary['output']['files']) or 'none'}")
    if summary["output"].get("events_table"):
        console.print(f"per-event table: {summary['output']['events_table']}")


def server_table(servers: dict[str, dict[str, Any]]) -> Table:
    """Per server of the pool: requests, failures, latency of the answered ones, restarts."""
    table = Table(title="Inference servers")
    for col in ("server", "calls", "failures", "p50 ms", "p99 ms", "restarts"):
        table.add_column(col, justify="left" if col == "server" else "right")
    for address, s in servers.items():
        table.add_row(address, str(s["calls"]), str(s["failures"]), f"{s['p50_ms']:.2f}", f"{s['p99_ms']:.2f}", str(s["restarts"]))
    return table
