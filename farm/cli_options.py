"""Options and helpers shared by the data commands (`record`, `import ispy`, `import trackml`):
the detector configuration option, refusing to overwrite, a progress bar, running an importer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from trigger_sim.config import FarmConfig, load_config
from trigger_sim.errors import TriggerSimError

CONFIG_OPTION = click.option(
    "--config", "config_path", type=click.Path(exists=True, dir_okay=False),
    help="Detector configuration (TOML, see configs/farm.toml); default: built-in.",
)
OVERWRITE_OPTION = click.option("--overwrite", is_flag=True, help="Replace FILE if it exists.")


def config_or_usage_error(config_path: str | None) -> FarmConfig:
    """The detector configuration, or a usage error that names what is wrong with it."""
    try:
        return load_config(config_path)
    except TriggerSimError as err:
        raise click.UsageError(str(err)) from err


def progress_bar(label: str, console: Console) -> Progress:
    return Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
                    TimeElapsedColumn(), console=console)


def refuse_existing(output: str, overwrite: bool) -> None:
    if Path(output).exists() and not overwrite:
        raise click.UsageError(f"{output} exists; choose another name or pass --overwrite")


def run_import(convert: Any, source: str, output: str, config_path: str | None, overwrite: bool) -> tuple[Any, Console, FarmConfig]:
    """Run an importer `convert(source, output, config, overwrite=, progress=)` with a progress
    display; its errors become a clear CLI error. Returns its summary, the console and the config."""
    config = config_or_usage_error(config_path)
    refuse_existing(output, overwrite)
    console = Console(stderr=True)
    try:
        with progress_bar("importing", console) as bar:
            task = bar.add_task("events", total=None)
            summary = convert(source, output, config, overwrite=overwrite,
                              progress=lambda done, total: bar.update(task, completed=done, total=total))
    except TriggerSimError as err:
        raise click.ClickException(str(err)) from err
    return summary, console, config
