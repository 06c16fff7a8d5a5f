"""The files a run writes: its output folder (streams) and its per-event table.

Shared by the one-host run and run control of a farm across hosts.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from trigger_sim.config import FarmConfig
from trigger_sim.errors import TriggerSimError
from trigger_sim.event_table import EventTable
from trigger_sim.event_table_io import write_table


def prepare_output(config: FarmConfig, output_dir: str | Path | None) -> Path | None:
    """The run's output folder, made empty ("auto": runs/run<N>-<time>); None when no
    stream is written. A folder with files in it is refused: no earlier run is overwritten."""
    if output_dir is None or not config.output.write_streams:
        return None
    if output_dir == "auto":
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        output_dir = Path(config.output.directory) / f"run{config.run.run_number:06d}-{stamp}"
    output_dir = Path(output_dir)
    if output_dir.exists() and any(output_dir.iterdir()):
        raise TriggerSimError(f"output folder {output_dir} is not empty: give a new one (--output) so no earlier run is overwritten")
    output_dir.mkdir(parents=True, exist_ok=True)
    return output_dir


def events_table_path(events_table: str | Path | None, output_dir: Path | None) -> Path | None:
    """The per-event table's path: "auto" is events.parquet in the output folder, if any."""
    if events_table == "auto":
        return output_dir / "events.parquet" if output_dir is not None else None
    return None if events_table is None else Path(events_table)


def write_events_table(table: EventTable | None, path: Path | None, problems: list[str]) -> str | None:
    """Write the table; its path, or None when none was asked for or it could not be
    written (then a problem: the run's events were decided all the same)."""
    if table is None or path is None:
        return None
    try:
        return str(write_table(table, path))
    except Exception as err:
        problems.append(f"events table {path} not written: {type(err).__name__}: {err}"[:300])
        return None
