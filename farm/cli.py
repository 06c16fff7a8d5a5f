"""`trigger-sim`: command-line interface (run and replay here; data commands in cli_data)."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from trigger_sim.config import MAX_SLOTS, FarmConfig, load_config, with_overrides
from trigger_sim.errors import TriggerSimError
from farm.run_end import finish_run


@click.group()
def main() -> None:
    """Emulated High-Level-Trigger farm with inference as a service on NVIDIA Triton."""


def farm_options(func: Callable) -> Callable:
    """Options shared by every command that runs the farm."""
    options = [
        click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="Farm configuration (TOML); default: built-in."),
        click.option("--events", type=click.IntRange(min=1), help="Number of Level-1 accepts to process."),
        click.option("--duration", type=click.FloatRange(min=0, min_open=True), help="Run for this many seconds instead."),
        click.option("--rate", type=click.FloatRange(min=0, min_open=True), help="Level-1 accept rate in Hz."),
        click.option("--pattern", type=click.Choice(["constant", "poisson", "burst"]), help="Level-1 arrival pattern."),
        click.option("--workers", type=click.IntRange(min=1), help="HLT worker processes (default: one per core)."),
        click.option("--slots", type=click.IntRange(min=1, max=MAX_SLOTS), help="Events each worker holds at once (default 1)."),
        click.option("--triton-url", multiple=True,
                     help="Use an existing Triton server (host:grpc_port) instead of starting one; give it several times for a pool."),
        click.option("--local-servers", type=click.IntRange(min=1),
                     help="Without --triton-url: local Triton servers to start, each on its own ports (default 1)."),
        click.option("--timeout-ms", type=click.FloatRange(min=0, min_open=True),
                     help="Per-call inference deadline of every model (default: [inference.deadline_ms], per model)."),
        click.option("--output", "output_dir", type=click.Path(file_okay=False), help="Folder for output streams (default: runs/run<N>-<time>)."),
        click.option("--no-output", is_flag=True, help="Do not write output streams."),
        click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the summary as JSON here."),
        click.option("--events-table", type=click.Path(dir_okay=False),
                     help="Per-event table: Parquet, or ROOT (a flat TTree) for a .root name (default: events.parquet in the output folder)."),
        click.option("--quiet", is_flag=True, help="No progress display and no tables."),
        click.option("--metrics-port", type=click.IntRange(min=1, max=65532),
                     help="Serve Prometheus metrics: run control (metrics role `supervisor`) on this port, the builder on +1, the readout on +2, "
                          "worker i on +3+i (monitoring/prometheus.yml scrapes 9400...)."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _configure(config_path, rate, pattern, workers, triton_url, timeout_ms, no_output, local_servers: int | None = None,
               slots: int | None = None, **sections: dict) -> FarmConfig:
    try:
        config = load_config(config_path)
    except TriggerSimError as err:
        raise click.UsageError(str(err)) from err
    return with_overrides(
        config,
        readout={k: v for k, v in (("rate_hz", rate), ("pattern", pattern)) if v is not None},
        worker={k: v for k, v in (("count", workers), ("slots", slots)) if v},
        inference=_inference_overrides(triton_url, timeout_ms, local_servers),
        output={"write_streams": False} if no_output else {},
        **sections,
    )


def _monitoring(metrics_port: int | None) -> dict[str, Any]:
    """The [monitoring] keys `--metrics-port` replaces."""
    return {"base_port": metrics_port} if metrics_port is not None else {}


def _inference_overrides(triton_urls: str | tuple[str, ...] | None, timeout_ms: float | None,
                         local_servers: int | None) -> dict[str, Any]:
    """The [inference] keys the command line replaces: its servers replace the file's (a
    pool when several), its deadline replaces every model's."""
    out: dict[str, Any] = {}
    urls = (triton_urls,) if isinstance(triton_urls, str) else tuple(triton_urls or ())
    if urls:
        out.update(triton_url="", servers=urls)
    if timeout_ms is not None:
        out["timeout_ms"] = timeout_ms  # overrides [inference.deadline_ms]
    if local_servers is not None:
        out["local_servers"] = local_servers
    return out


def _run_with_progress(config: FarmConfig, events: int | None, duration: float | None, output_dir: str | None,
                       json_path: str | None, quiet: bool, total: int | None = None, events_table: str | None = None,
                       **kwargs: Any) -> None:
    """Run the farm with a progress bar, print the summary tables, write the JSON; exit 1
    unless the run is known complete (`incomplete_reasons`). `events_table`: the per-event
    table's path (None: events.parquet in the output folder, if there is one)."""
    from farm.one_host import run_farm

    run = functools.partial(run_farm, config, events, duration, output_dir=output_dir or "auto",
                            events_table=events_table or "auto", **kwargs)
    show_run(run, config, events or total, json_path, quiet)


def show_run(run: Callable[..., dict[str, Any]], config: FarmConfig, total: int | None, json_path: str | None, quiet: bool,
             report: Callable[[dict[str, Any], Console], None] | None = None) -> None:
    """Call `run(progress=...)` under the progress display (none when `quiet`), print the
    summary tables (and `report`'s lines), write the JSON and exit as `finish_run` says:
    the one-host run and run control of a farm across hosts alike."""
    from farm.live_view import LiveProgress
    from farm.report import print_report

    console = Console(stderr=True)
    if not quiet:
        print_metrics_ports(config, console)
    try:
        if quiet:
            summary = run()
        else:
            with LiveProgress("HLT farm", console) as bar:
                task = bar.add_task("events", total=total, info="starting Triton and workers")

                def show(p: dict) -> None:
                    bar.update(task, completed=p["decided"], total=p["target"] or p["l1_accepted"] or total,
                               info=f"triton {p['triton']}  fallback {p['fallback']}  debug {p['debug']}")
                    bar.reading(p)

                summary = run(progress=show)
    except TriggerSimError as err:
        console.print(f"[red]error:[/red] {err}")
        sys.exit(2)
    if not quiet:
        print_report(summary, Console())
        if report is not None:
            report(summary, console)
    finish_run(summary, json_path, console)


def print_metrics_ports(config: FarmConfig, console: Console) -> None:
    """Where each process serves its Prometheus metrics (nothing when monitoring is off)."""
    from trigger_sim.metrics import process_ports

    ports = process_ports(config.monitoring.base_port, config.worker.resolved_count)
    if ports:
        where = ", ".join(f"{role} {port}" for role, port in ports.items())
        console.print(f"metrics: http://{config.monitoring.address}:<port>/metrics on {where}")


@main.command()
@farm_options
@click.option("--pileup", type=click.FloatRange(min=0), help="Mean number of pile-up collisions.")
@click.option("--topology", "topology_path", type=click.Path(exists=True, dir_okay=False),
              help="Run control of a farm across hosts (its node agents run `trigger-sim node`); see README.")
def run(config_path, events, duration, rate, pattern, workers, slots, triton_url, local_servers, timeout_ms, output_dir, no_output,
        json_path, events_table, quiet, metrics_port, pileup, topology_path) -> None:
    """Run the farm on simulated events: readout, event builder, HLT workers and a Triton server."""
    if topology_path:
        from farm.cli_hosts import run_with_topology

        if workers or slots or triton_url or local_servers:
            raise click.UsageError("with --topology, the hosts, workers and servers come from the topology file: give "
                                   "--events or --duration (and --config, --rate, --pattern, --pileup, --output, --json, "
                                   "--events-table, --metrics-port) only")
        if events is None and duration is None:
            events = 500
        run_with_topology(topology_path, config_path, events, rate, pileup, output_dir, no_output, json_path, quiet,
                          events_table=events_table, duration_s=duration, pattern=pattern,
                          monitoring=_monitoring(metrics_port))
        return
    config = _configure(config_path, rate, pattern, workers, triton_url, timeout_ms, no_output, local_servers, slots,
                        physics={"pileup_mean": pileup} if pileup is not None else {}, monitoring=_monitoring(metrics_port))
    if events is None and duration is None:
        events = 500
    _run_with_progress(config, events, duration, output_dir, json_path, quiet, events_table=events_table)


@main.command()
@click.argument("recording", type=click.Path(exists=True, dir_okay=False))
@farm_options
@click.option("--loop", is_flag=True, help="Start the file again when it ends (needs --events or --duration).")
def replay(recording, config_path, events, duration, rate, pattern, workers, slots, triton_url, local_servers, timeout_ms, output_dir,
           no_output, json_path, events_table, quiet, metrics_port, loop) -> None:
    """Push a recording's events through the farm at a given rate.

    Latency is measured from each event's scheduled Level-1 time, not from when it was
    sent, so a farm that falls behind cannot hide its queueing. Events keep their recorded
    Level-1 ids (prescales replay identically); the detector geometry comes from the file.
    """
    from trigger_sim.recording import RecordReader

    if loop and events is None and duration is None:
        raise click.UsageError("--loop needs --events or --duration")
    config = _configure(config_path, rate, pattern, workers, triton_url, timeout_ms, no_output, local_servers, slots,
                        monitoring=_monitoring(metrics_port))
    try:
        total = None if loop else len(RecordReader(recording))
    except TriggerSimError as err:
        raise click.UsageError(str(err)) from err
    _run_with_progress(config, events, duration, output_dir, json_path, quiet, total=total, replay=recording, loop=loop,
                       events_table=events_table)


@main.command()
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="Farm configuration (TOML).")
@click.option("--rates", help="Comma-separated input rates in Hz; without it, search for the saturation rate.")
@click.option("--min-rate", type=float, default=10.0, show_default=True, help="Search: lowest rate tried.")
@click.option("--max-rate", type=float, default=1000.0, show_default=True, help="Search: highest rate tried.")
@click.option("--steps", type=click.IntRange(min=2), default=6, show_default=True,
              help="Search: at most this many rates (it stops sooner once the bracket is within the run-to-run noise).")
@click.option("--repeats", type=click.IntRange(min=1), default=1, show_default=True,
              help="Runs per rate, each with a new seed; a rate is sustained only if every run passes.")
@click.option("--duration", type=click.FloatRange(min=3), default=8.0, show_default=True,
              help="Minimum seconds per run (a run lasts as long as its 1,000 events for the p99 need).")
@click.option("--workers", type=click.IntRange(min=1), help="HLT worker processes (default: one per core).")
@click.option("--pattern", type=click.Choice(["constant", "poisson", "burst"]), help="Level-1 arrival pattern.")
@click.option("--replay", "replay_path", type=click.Path(exists=True, dir_okay=False), help="Replay this recording (looped) instead of simulating.")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="scan", show_default=True, help="Folder for scan.json, scan.csv, scan.png.")
@click.option("--events-table", default="events.parquet", show_default=True,
              help="Each point's per-event table in --out, named <stem>-<rate>Hz-seed<seed><suffix> (.root: a ROOT file).")
@click.option("--quiet", is_flag=True, help="No live view while the points run (the table at the end is still printed).")
def scan(config_path, rates, min_rate, max_rate, steps, repeats, duration, workers, pattern, replay_path, out_dir, events_table,
         quiet) -> None:
    """Latency and throughput versus input rate; the highest sustainable rate."""
    from rich.table import Table

    from farm.live_view import LiveProgress
    from farm.scan import run_scan, write_outputs

    config = _configure(config_path, None, pattern, workers, None, None, True)
    try:
        rate_list = [float(r) for r in rates.split(",")] if rates else None
    except ValueError as err:
        raise click.UsageError(f"--rates must be numbers separated by commas: {err}") from err
    console = Console(stderr=True)
    total = (len(rate_list) if rate_list else steps) * repeats
    if not quiet:
        print_metrics_ports(config, console)
    with LiveProgress("rate scan", console, disable=quiet) as bar:
        task = bar.add_task("points", total=total, info=f"{duration:g} s per point")

        def show(point, index, n) -> None:
            s = point.summary
            bar.new_run()
            bar.update(task, completed=index + 1, info=f"{point.rate_hz:.0f} Hz: {point.throughput_hz:.0f}/s, "
                       f"p99 {s['latency_ms'].get('total', {}).get('p99', 0):.0f} ms, dead time {100 * s['level1']['deadtime_fraction']:.1f} %")

        try:
            result = run_scan(config, rate_list, duration, steps, min_rate, max_rate, replay_path, on_point=show, repeats=repeats,
                              events_tables=Path(out_dir) / events_table, progress=bar.reading)
        except TriggerSimError as err:
            console.print(f"[red]error:[/red] {err}")
            sys.exit(2)
        bar.update(task, total=len(result["points"]), completed=len(result["points"]))  # the search may stop early
    paths = write_outputs(result, Path(out_dir))
    table = Table(title=f"Rate scan (budget {result['budget_ms']:g} ms)")
    for col in ("rate Hz", "seed", "in Hz", "decided/s", "events", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "fallback", "dead time",
                "lost", "stable", "sustained"):
        table.add_column(col, justify="right")
    table.add_column("why not", justify="left")
    for r in result["points"]:
        table.add_row(f"{r['rate_hz']:.0f}", str(r.get("seed", "")), f"{r['input_rate_hz']:.0f}", f"{r['throughput_hz']:.0f}",
                      str(r.get("decided_events", "")), f"{r['total_p50_ms']:.1f}",
                      f"{r['total_p90_ms']:.1f}", f"{r['total_p99_ms']:.1f}", f"{r['total_p99.9_ms']:.1f}",
                      f"{100 * r['fallback_fraction']:.1f} %", f"{100 * r['deadtime_fraction']:.1f} %", str(r["lost"]),
                      "yes" if r["stable"] else "no", "yes" if r["sustained"] else "no", r.get("why_not", ""))
    Console().print(table)
    sat = result["saturation_rate_hz"]
    Console().print(f"highest sustained rate: {sat:.0f} Hz" if sat else "no rate sustained within the budget")
    Console().print(f"written: {', '.join(str(p) for p in paths.values())}")


from farm.cli_data import register as _register_data_commands  # noqa: E402

_register_data_commands(main)

from farm.cli_validate import validate as _validate  # noqa: E402

main.add_command(_validate)

from farm.cli_plan import plan as _plan  # noqa: E402

main.add_command(_plan)

from farm.cli_hosts import node as _node  # noqa: E402

main.add_command(_node)
