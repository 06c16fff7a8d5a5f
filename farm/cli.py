"""`trigger-sim`: command-line interface."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from trigger_sim.config import load_config, with_overrides
from trigger_sim.errors import TriggerSimError


@click.group()
def main() -> None:
    """Emulated High-Level-Trigger farm with inference as a service on NVIDIA Triton."""


@main.command()
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="Farm configuration (TOML); default: built-in.")
@click.option("--events", type=click.IntRange(min=1), help="Number of Level-1 accepts to process.")
@click.option("--duration", type=click.FloatRange(min=0, min_open=True), help="Run for this many seconds instead.")
@click.option("--rate", type=click.FloatRange(min=0, min_open=True), help="Level-1 accept rate in Hz.")
@click.option("--pattern", type=click.Choice(["constant", "poisson"]), help="Level-1 arrival pattern.")
@click.option("--workers", type=click.IntRange(min=1), help="HLT worker processes (default: one per core).")
@click.option("--pileup", type=click.FloatRange(min=0), help="Mean number of pile-up collisions.")
@click.option("--triton-url", help="Use an existing Triton server (host:grpc_port) instead of starting one.")
@click.option("--timeout-ms", type=click.FloatRange(min=0, min_open=True), help="Per-call inference deadline.")
@click.option("--output", "output_dir", type=click.Path(file_okay=False), help="Folder for output streams (default: runs/run<N>-<time>).")
@click.option("--no-output", is_flag=True, help="Do not write output streams.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the summary as JSON here.")
@click.option("--quiet", is_flag=True, help="No progress display and no tables.")
def run(config_path, events, duration, rate, pattern, workers, pileup, triton_url, timeout_ms, output_dir, no_output, json_path, quiet) -> None:
    """Run the farm: readout, event builder, HLT workers and a Triton server."""
    from farm.report import print_report
    from farm.supervisor import run_farm

    console = Console(stderr=True)
    try:
        config = load_config(config_path)
    except TriggerSimError as err:
        raise click.UsageError(str(err)) from err
    if events is None and duration is None:
        events = 500
    config = with_overrides(
        config,
        readout={k: v for k, v in (("rate_hz", rate), ("pattern", pattern)) if v is not None},
        worker={"count": workers} if workers else {},
        physics={"pileup_mean": pileup} if pileup is not None else {},
        inference={k: v for k, v in (("triton_url", triton_url), ("timeout_ms", timeout_ms)) if v is not None},
        output={"write_streams": False} if no_output else {},
    )
    try:
        if quiet:
            summary = run_farm(config, events, duration, output_dir=output_dir or "auto")
        else:
            with Progress(TextColumn("[bold]HLT farm"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                          TextColumn("{task.fields[info]}"), console=console, transient=False) as bar:
                task = bar.add_task("events", total=events, info="starting Triton and workers")

                def show(p: dict) -> None:
                    total = p["target"] or p["l1_accepted"]
                    bar.update(task, completed=p["decided"], total=total,
                               info=f"triton {p['triton']}  fallback {p['fallback']}  debug {p['debug']}")

                summary = run_farm(config, events, duration, progress=show, output_dir=output_dir or "auto")
    except TriggerSimError as err:
        console.print(f"[red]error:[/red] {err}")
        sys.exit(2)
    if not quiet:
        print_report(summary, Console())
    if json_path:
        Path(json_path).write_text(json.dumps(summary, indent=2, default=str))
    sys.exit(0 if summary["events"]["lost"] == 0 else 1)
from farm.cli_data import register as _register_data_commands
_register_data_commands(main)
