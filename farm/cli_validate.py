"""`trigger-sim validate`: physics validation of the HLT algorithms (see farm/validate.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from trigger_sim.config import load_config
from trigger_sim.errors import TriggerSimError


@click.command()
@click.option("--events", type=click.IntRange(min=1), help="Fresh events to simulate and decide [default: 2000]; with "
              "--recording, its first N records [default: all].")
@click.option("--pileup", type=click.FloatRange(min=0, max=300), help="Mean pile-up [default: 60]; not with --recording.")
@click.option("--seed", type=int, help="Run seed of the sample (default: the validation seed, unlike any training seed); "
              "not with --recording.")
@click.option("--recording", "recording_path", type=click.Path(exists=True, dir_okay=False),
              help="Validate the events of this recording (`trigger-sim record`, `import trackml`) against the truth its "
                   "records carry, instead of fresh events.")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="Farm configuration (TOML).")
@click.option("--triton-url", help="Use an existing Triton server (host:grpc_port) instead of starting one.")
@click.option("--no-triton", is_flag=True, help="Only the local fallback path (no server; no agreement check).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False), default="validation", show_default=True, help="Folder for the PNG figures.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write every number as JSON here.")
@click.option("--check", is_flag=True, help="Exit with status 1 if a target is missed (targets skipped for lack of truth are not).")
def validate(events, pileup, seed, recording_path, config_path, triton_url, no_triton, out_dir, json_path, check) -> None:
    """Edge-classifier efficiency and purity, track finding, jet-tagger ROC, trigger turn-ons, and
    agreement of the Triton path with the local fallback, on fresh simulated events or on the events
    of a recording whose records carry truth (figures needing truth the file lacks are skipped, with why)."""
    from farm.validate import VALIDATION_SEED, figures, run_validation, summary_lines, validation_config, write_plots
    from trigger_sim.event_source import config_for_recording

    if recording_path and (pileup is not None or seed is not None):
        raise click.UsageError("--pileup and --seed describe fresh events; a recording's events are what they are")
    try:
        if recording_path:
            config = config_for_recording(load_config(config_path), recording_path)
            total = events or 0
        else:
            config = validation_config(load_config(config_path), 60.0 if pileup is None else pileup,
                                       VALIDATION_SEED if seed is None else seed)
            total = events or 2000
    except (TriggerSimError, ValueError) as err:
        raise click.UsageError(str(err)) from err
    console = Console(stderr=True)
    with Progress(TextColumn("validate"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                  disable=not console.is_terminal) as bar:
        task = bar.add_task("events", total=total or None)
        try:
            run = run_validation(config, total, triton_url=triton_url, use_triton=not no_triton, recording=recording_path,
                                 progress=lambda done, n: bar.update(task, completed=done, total=n))
        except TriggerSimError as err:
            raise click.ClickException(str(err)) from err
    fig = figures(run)
    paths = write_plots(run, fig, Path(out_dir))
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(fig, indent=2, default=float) + "\n")
    out = Console()
    for line in summary_lines(fig):
        out.print(line, highlight=False, soft_wrap=True)
    out.print("per-step worker time (ms, p50 / p99): " + ", ".join(
        f"{step} {t['p50']:.2f}/{t['p99']:.2f}" for step, t in fig["steps_ms"].items()), highlight=False, soft_wrap=True)
    out.print(f"figures: {', '.join(str(p) for p in paths)}" + (f"; numbers: {json_path}" if json_path else ""), highlight=False, soft_wrap=True)
    if check and not all(t["met"] for t in fig["targets"].values()
                         if not t.get("skipped") and not (no_triton and t is fig["targets"]["decision_agreement"])):
        sys.exit(1)
