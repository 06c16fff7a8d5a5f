"""`trigger-sim plan`: size a farm with the capacity model (trigger_sim/planning).

    trigger-sim plan --rate 100000 --budget-ms 500 --nodes 40 ...   # smallest servers and slots
    trigger-sim plan simulate --rate 90 --host-cores 2 ...           # one simulation, farm summary
    trigger-sim plan sweep --nodes 20,40 --servers 1,2,4 --out DIR   # nodes x servers: table and PNG
    trigger-sim plan calibrate RUN_FOLDER -o FILE                    # a calibration from a real run
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from trigger_sim.errors import TriggerSimError

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CALIBRATIONS = (str(ROOT / "configs" / "calibrations" / "cpu-this-host-pu20.json"),
                        str(ROOT / "configs" / "calibrations" / "gpu-example.json"))


def model_options(func: Callable) -> Callable:
    """Options shared by the commands that run the model."""
    options = [
        click.option("--calibration", "calibrations", multiple=True, type=click.Path(exists=True, dir_okay=False),
                     help="Calibration file(s): the first gives the events, every one adds server kinds "
                          "(default: the shipped CPU calibration of this host and the example GPU one)."),
        click.option("--spec", "spec_path", type=click.Path(exists=True, dir_okay=False),
                     help="Farm specification (TOML, [arrivals] and [farm]; see configs/plan.toml); options override it."),
        click.option("--server-kind", help="Server kind from the calibrations (e.g. cpu-local, gpu-t4-example)."),
        click.option("--rate", type=click.FloatRange(min=0, min_open=True), help="Level-1 rate (Hz)."),
        click.option("--pattern", type=click.Choice(["constant", "poisson", "burst"]), help="Level-1 arrival pattern."),
        click.option("--events", type=click.IntRange(min=1), help="Level-1 accepts simulated."),
        click.option("--seed", type=int, help="Seed of the arrivals and the events drawn."),
        click.option("--block-events", type=click.IntRange(min=1),
                     help="Draw events as runs of this many consecutive calibration rows (default 1: each on its own)."),
        click.option("--nodes", "nodes", help="HLT nodes (sweep: a comma-separated list)."),
        click.option("--workers-per-node", type=click.IntRange(min=1), help="Worker processes (cores) per node."),
        click.option("--slots", type=click.IntRange(min=1), help="Events a worker holds at once."),
        click.option("--servers", "servers", help="Inference servers (GPUs) in the pool (sweep: a list)."),
        click.option("--buffer-events", type=click.IntRange(min=1),
                     help="Readout buffer: accepts waiting for a node slot; full = Level-1 busy (default 64, the one-host farm's beyond its node's slots)."),
        click.option("--budget-ms", type=click.FloatRange(min=0, min_open=True), help="Hard per-event budget; the p99 target."),
        click.option("--timeout-ms", type=click.FloatRange(min=0, min_open=True), help="Per-call inference deadline."),
        click.option("--network-rtt-ms", type=click.FloatRange(min=0), help="Round trip to a remote server per call."),
        click.option("--network-gbps", type=click.FloatRange(min=0), help="Link bandwidth per call (0: not modelled)."),
        click.option("--host-cores", type=click.IntRange(min=0), help="Cores shared by workers and server on one host (0: none)."),
        click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the result as JSON here."),
        click.option("--quiet", is_flag=True, help="No progress display."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _load(calibrations, spec_path, server_kind, rate, pattern, events, seed, block_events, nodes, workers_per_node, slots, servers,
          buffer_events, budget_ms, timeout_ms, network_rtt_ms, network_gbps, host_cores, list_ok: bool = False):
    """The calibration and the PlanSpec the options ask for (lists left to the caller)."""
    from trigger_sim.planning.calibration import load_merged, server_kind as check_kind
    from trigger_sim.planning.spec import PlanSpec, check, load_spec

    try:
        cal = load_merged(list(calibrations or DEFAULT_CALIBRATIONS))
        spec = load_spec(spec_path) if spec_path else PlanSpec()
        arrivals = replace(spec.arrivals, **{k: v for k, v in (("rate_hz", rate), ("pattern", pattern)) if v is not None})
        farm_changes = {"server_kind": server_kind, "workers_per_node": workers_per_node, "slots_per_worker": slots,
                        "readout_buffer_events": buffer_events,
                        "budget_ms": budget_ms, "timeout_ms": timeout_ms, "network_rtt_ms": network_rtt_ms,
                        "network_gbps": network_gbps, "host_cores": host_cores}
        if not list_ok:
            farm_changes.update(nodes=_one_int(nodes, "--nodes"), servers=_one_int(servers, "--servers"))
        farm = replace(spec.farm, **{k: v for k, v in farm_changes.items() if v is not None})
        spec = replace(spec, arrivals=arrivals, farm=farm, **{k: v for k, v in (("events", events), ("seed", seed), ("block_events", block_events))
                                                               if v is not None})
        check_kind(cal, spec.farm.server_kind)
        if cal.n_events and "assign" not in cal.events:
            click.echo(f"note: calibration {cal.name!r} has no assignment round trip (made before it was measured): "
                       "its build times hold the wait for a node slot, which the model adds again; recalibrate from a "
                       "newer run (`trigger-sim plan calibrate`)", err=True)
        return cal, check(spec)
    except TriggerSimError as err:
        raise click.UsageError(str(err)) from err


def _one_int(text: str | None, name: str) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError as err:
        raise click.UsageError(f"{name} must be one whole number here, not {text!r}") from err


def _int_list(text: str | None, name: str, default: list[int]) -> list[int]:
    if not text:
        return default
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError as err:
        raise click.UsageError(f"{name} must be whole numbers separated by commas: {err}") from err
    if min(values) < 1:
        raise click.UsageError(f"{name}: every value must be >= 1")
    return values


class _SimProgress:
    """A progress display of simulated time and events decided, for one model run at a time."""

    def __init__(self, quiet: bool, title: str):
        self.quiet = quiet
        self.bar = Progress(TextColumn(f"[bold]{title}"), BarColumn(), TextColumn("{task.fields[info]}"), TimeElapsedColumn(),
                            console=Console(stderr=True), disable=quiet)
        self.task = self.bar.add_task("model", total=1, info="")
        self.label = ""

    def __enter__(self):
        self.bar.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bar.__exit__(*exc)

    def __call__(self, sim_s: float, done: int, total: int) -> None:
        self.bar.update(self.task, completed=done, total=total,
                        info=f"{self.label}simulated {sim_s:,.2f} s, events {done:,}/{total:,}")


@click.group(invoke_without_command=True)
@model_options
@click.option("--max-servers", type=click.IntRange(min=1), default=64, show_default=True, help="Largest pool tried.")
@click.option("--slot-options", default="1,2,4,8", show_default=True, help="Slots per worker tried.")
@click.pass_context
def plan(ctx, max_servers, slot_options, **opts) -> None:
    """Size a farm with the capacity model: the fewest servers (GPUs) and slots per worker
    that keep the total-latency p99 within --budget-ms with nothing lost, no HltTimeout and
    dead time <= 1 % (the sustained definition of trigger_sim/sustained.py)."""
    if ctx.invoked_subcommand is not None:
        return
    from trigger_sim.planning.sizing import smallest_farm

    cal, spec = _load(**{k: v for k, v in opts.items() if k not in ("json_path", "quiet")})
    console = _console()
    probes = []
    with _SimProgress(opts["quiet"], "plan") as show:
        def on_probe(farm, verdict) -> None:
            probes.append((farm, verdict))
            show.label = f"{farm.servers} servers, {farm.slots_per_worker} slots: "

        best, verdict = smallest_farm(cal, spec.farm, spec.arrivals.rate_hz, spec.farm.budget_ms, spec.events, max_servers,
                                      tuple(_int_list(slot_options, "--slot-options", [1])), spec.seed,
                                      spec.arrivals.pattern, on_probe=on_probe)
    table = Table(title=f"Probes at {spec.arrivals.rate_hz:g} Hz, budget {spec.farm.budget_ms:g} ms "
                        f"({spec.farm.nodes} nodes x {spec.farm.workers_per_node} workers, {spec.events:,} events each)")
    for col in ("servers", "slots", "p50 ms", "p99 ms", "fallback", "dead time", "ok", "why not"):
        table.add_column(col, justify="left" if col == "why not" else "right")
    for farm, v in probes:
        table.add_row(str(farm.servers), str(farm.slots_per_worker), f"{v.p50_ms:.1f}", f"{v.p99_ms:.1f}",
                      f"{100 * v.fallback_fraction:.2f} %", f"{100 * v.deadtime_fraction:.2f} %", "yes" if v.ok else "no",
                      "; ".join(v.reasons)[:80])
    console.print(table)
    kind = spec.farm.server_kind or next(iter(cal.servers))
    if best is None:
        console.print(f"[red]no pool of up to {max_servers} {kind} servers keeps p99 within {spec.farm.budget_ms:g} ms "
                      f"at {spec.arrivals.rate_hz:g} Hz[/red] (more nodes or workers? see the reasons above)")
        result: dict[str, Any] = {"answer": None}
    else:
        console.print(f"smallest: [bold]{best.servers} x {kind}[/bold] servers, [bold]{best.slots_per_worker}[/bold] slots per worker: "
                      f"p50 {verdict.p50_ms:.1f} ms, p99 {verdict.p99_ms:.1f} ms, fallback {100 * verdict.fallback_fraction:.2f} %, "
                      f"dead time {100 * verdict.deadtime_fraction:.2f} %, lost {verdict.summary['events']['lost']}")
        result = {"answer": {"servers": best.servers, "slots_per_worker": best.slots_per_worker, "server_kind": kind,
                             "p50_ms": verdict.p50_ms, "p99_ms": verdict.p99_ms}, "summary": verdict.summary}
    result["probes"] = [{"servers": f.servers, "slots_per_worker": f.slots_per_worker, "ok": v.ok, "p50_ms": v.p50_ms,
                         "p99_ms": v.p99_ms, "why_not": v.reasons} for f, v in probes]
    _write_json(opts["json_path"], result)
    sys.exit(0 if best is not None else 1)


@plan.command()
@model_options
def simulate(json_path, quiet, **opts) -> None:
    """One simulation: the farm's summary shape (throughput, latency per step, fallback, dead time, servers)."""
    from trigger_sim.planning.model_summary import simulate as run

    cal, spec = _load(**opts)
    with _SimProgress(quiet, "model") as show:
        summary = run(spec, cal, show)
    _print_summary(summary, _console())
    _write_json(json_path, summary)
    sys.exit(1 if summary["events"]["lost"] else 0)


@plan.command()
@model_options
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="plan-sweep", show_default=True,
              help="Folder for sweep.json, sweep.csv and sweep.png.")
def sweep(json_path, quiet, out_dir, **opts) -> None:
    """Nodes x servers at one rate: p99, fallback and dead time per cell, as a table and a PNG."""
    from trigger_sim.planning.sizing import sweep as run_sweep
    from trigger_sim.planning.sweep_plot import write_sweep

    nodes = _int_list(opts.pop("nodes"), "--nodes", [10, 20, 40])
    servers = _int_list(opts.pop("servers"), "--servers", [1, 2, 4, 8])
    cal, spec = _load(nodes=None, servers=None, list_ok=True, **opts)
    with _SimProgress(quiet, "sweep") as show:
        def on_cell(n, g, v) -> None:
            show.label = f"last: {n} nodes x {g} servers p99 {v.p99_ms:.0f} ms; "

        rows = run_sweep(cal, spec.farm, spec.arrivals.rate_hz, spec.farm.budget_ms, spec.events, nodes, servers, spec.seed,
                         spec.arrivals.pattern, on_cell=on_cell)
    table = Table(title=f"p99 total latency (ms) at {spec.arrivals.rate_hz:g} Hz, budget {spec.farm.budget_ms:g} ms; "
                        f"* = sustained")
    table.add_column("nodes \\ servers", justify="right")
    for g in servers:
        table.add_column(str(g), justify="right")
    for n in nodes:
        cells = {r["servers"]: r for r in rows if r["nodes"] == n}
        table.add_row(str(n), *(f"{cells[g]['p99_ms']:.0f}{' *' if cells[g]['ok'] else ''}" for g in servers))
    _console().print(table)
    meta = {"rate_hz": spec.arrivals.rate_hz, "budget_ms": spec.farm.budget_ms, "events": spec.events,
            "workers_per_node": spec.farm.workers_per_node, "slots_per_worker": spec.farm.slots_per_worker,
            "server_kind": spec.farm.server_kind or next(iter(cal.servers)), "calibration": cal.name}
    paths = write_sweep(rows, meta, Path(out_dir))
    _console().print(f"written: {', '.join(str(p) for p in paths)}")
    _write_json(json_path, {"meta": meta, "rows": rows})


@plan.command()
@click.argument("run_folders", nargs=-1, required=True, type=click.Path(exists=True))
@click.option("-o", "--output", "out_path", type=click.Path(dir_okay=False), required=True, help="Calibration file to write (JSON).")
@click.option("--name", default="", help="The calibration's name (default: the first folder's).")
@click.option("--pileup", type=click.FloatRange(min=0), help="Pile-up of the run (recorded with the calibration).")
@click.option("--benchmarks", type=click.Path(exists=True, dir_okay=False),
              help="benchmarks.json of this host: the farm's own CPU per event and the server's CPU share of a call.")
@click.option("--rtt-ms", type=click.FloatRange(min=0), default=0.0, show_default=True,
              help="Round trip inside each measured call that is not the server's demand.")
@click.option("--node-slots", type=click.IntRange(min=1), default=None,
              help="Event slots the run's node offered (workers x (credits + 1)); default: the run's workers x 2.")
@click.option("--how", default="", help="How the run was made (its command), recorded in the provenance.")
def calibrate(run_folders, out_path, name, pileup, benchmarks, rtt_ms, node_slots, how) -> None:
    """Make a calibration from run folders (each its events.parquet, and summary.json if there).

    Several folders (runs of the same farm, best spread over the time the model is compared
    with real runs, on a shared host) are calibrated one by one and pooled: their events
    together, each scalar the mean over their events."""
    from trigger_sim.planning.calibrate import from_run_folder, pooled
    from trigger_sim.planning.calibration import save

    try:
        cals = [from_run_folder(folder, name=name, pileup=pileup, benchmarks=benchmarks, rtt_ms=rtt_ms,
                                node_slots=node_slots) for folder in run_folders]
        cal = pooled(cals) if len(cals) > 1 else cals[0]
        if how:
            cal.provenance["run_command"] = how
    except TriggerSimError as err:
        raise click.UsageError(str(err)) from err
    save(cal, out_path)
    ev = cal.events
    _console().print(f"{out_path}: {cal.n_events} events"
                     + (f" from {len(cals)} runs ({', '.join(str(c.n_events) for c in cals)})" if len(cals) > 1 else "")
                     + f"; edge_classifier demand median {float(_median(ev['edge_classifier_demand'])):.2f} ms; host {cal.host}")
    for i, c in enumerate(cals):
        _console().print(f"assignment round trip{f' (run {i + 1})' if len(cals) > 1 else ''}: "
                         f"{c.provenance.get('assign', 'not estimated')}")


def _console() -> Console:
    """The terminal's width on a terminal; 160 columns into a file (tables unwrapped)."""
    return Console() if sys.stdout.isatty() else Console(width=160)


def _median(values):
    import numpy as np

    return np.median(values)


def _print_summary(s: dict[str, Any], console: Console) -> None:
    ev, l1, inf = s["events"], s["level1"], s["inference"]
    console.print(f"Events: Level-1 accepted {ev['l1_accepted']:,} | accepted {ev['accepted']:,} | rejected {ev['rejected']:,} | "
                  f"debug {ev['debug']:,} | lost {ev['lost']} | dead time {100 * l1['deadtime_fraction']:.2f} %")
    table = Table(title="Latency per step (ms), model")
    for col in ("step", "p50", "p99", "max"):
        table.add_column(col, justify="right")
    for step, st in s["latency_ms"].items():
        table.add_row(step, f"{st['p50']:.3f}", f"{st['p99']:.3f}", f"{st['max']:.3f}")
    console.print(table)
    util = "; ".join(f"server {sv['server']}: " + ", ".join(f"{m} {100 * q['utilisation']:.0f} % (batch {q['mean_batch']:.1f})"
                                                         for m, q in sv["models"].items()) for sv in s["model"]["servers"][:4])
    console.print(f"Throughput {s['throughput']['decided_per_s']:,.1f} decided/s; fallback {100 * s['model']['fallback_fraction']:.2f} % "
                  f"({inf['fallback_reasons'] or 'none'}); {util}{' ...' if len(s['model']['servers']) > 4 else ''}; "
                  f"simulated in {s['wall_s']:.1f} s")


def _write_json(path: str | None, data: Any) -> None:
    if path:
        Path(path).write_text(json.dumps(data, indent=2, default=str))

