"""`trigger-sim record`, `inspect`, `import ispy` (and `import trackml`), `compare-cms` and `keys`: recordings, and CURVE keys for the farm.

`register(main)` adds the commands to the `trigger-sim` group (see the end of farm/cli.py).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console
from rich.table import Table

from trigger_sim.config import with_overrides
from trigger_sim.errors import TriggerSimError
from farm.cli_options import CONFIG_OPTION, OVERWRITE_OPTION, config_or_usage_error, progress_bar, refuse_existing, run_import
from farm.cli_trackml import import_trackml

if TYPE_CHECKING:
    from trigger_sim.cms_compare import FileComparison, PairCounts


def register(group: click.Group) -> None:
    """Add the recording commands to the `trigger-sim` command group."""
    group.add_command(record)
    group.add_command(inspect)
    import_group.add_command(import_trackml)
    group.add_command(import_group)
    group.add_command(compare_cms)
    group.add_command(keys)


@click.command()
@click.option("--events", type=click.IntRange(min=1), required=True, help="Number of events to generate.")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Recording file to write.")
@click.option("--pileup", type=click.FloatRange(min=0), help="Mean number of pile-up collisions.")
@click.option("--seed", type=click.IntRange(min=0), help="Run seed (events are reproducible from it).")
@click.option("--truth/--no-truth", default=True, show_default=True,
              help="Store each event's truth in its record (for `trigger-sim validate --recording`).")
@CONFIG_OPTION
@OVERWRITE_OPTION
def record(events: int, output: str, pileup: float | None, seed: int | None, truth: bool,
           config_path: str | None, overwrite: bool) -> None:
    """Generate events and write them to a recording file (Level-1 ids 0..N-1), with their truth."""
    from trigger_sim.recording import write_generated

    config = with_overrides(
        config_or_usage_error(config_path),
        physics={"pileup_mean": pileup} if pileup is not None else {},
        run={"seed": seed} if seed is not None else {},
    )
    refuse_existing(output, overwrite)
    console = Console(stderr=True)
    started = time.perf_counter()
    with progress_bar("recording", console) as bar:
        task = bar.add_task("events", total=events)
        write_generated(config, output, events, overwrite=overwrite, on_event=lambda: bar.advance(task), truth=truth)
    size_mb = Path(output).stat().st_size / 1e6
    console.print(f"wrote {events} events to {output} ({size_mb:.2f} MB, "
                  f"{time.perf_counter() - started:.1f} s)")


def _overview_table(summary: dict[str, Any]) -> Table:
    table = Table(title=summary["file"], show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    l1_range = ("-" if summary["events"] == 0
                else f"{summary['l1_id_min']} .. {summary['l1_id_max']}")
    if summary["cut_short"]:
        cut = f"[red]yes[/red], at byte {summary['cut_at_byte']}: {summary['cut_reason']}"
    else:
        cut = "no"
    index = "present" if summary["index_present"] else "[yellow]absent[/yellow]"
    if summary["index_problem"]:
        index += f" (ignored: {summary['index_problem']})"
    rows = [
        ("run", summary["run_number"]),
        ("stream", summary["stream"]),
        ("format version", summary["format_version"]),
        ("created (UTC)", summary["created_utc"]),
        ("written by", f"trigger-sim {summary['trigger_sim_version']}"),
        ("source", json.dumps(summary["source"]) if summary["source"] else "-"),
        ("events", summary["events"]),
        ("Level-1 ids", l1_range),
        ("file bytes", f"{summary['file_bytes']:,}"),
        ("record bytes", f"{summary['record_bytes_total']:,} total, "
                         f"{summary['record_bytes_mean']:,.0f} per event"),
        ("index", index),
        ("cut short", cut),
    ]
    for field, value in rows:
        table.add_row(field, str(value))
    return table


def _sources_table(summary: dict[str, Any]) -> Table:
    table = Table(title="Fragments per source")
    table.add_column("source id")
    table.add_column("fragments", justify="right")
    table.add_column("mean bytes", justify="right")
    for source in summary["sources"]:
        table.add_row(source["source_id"], str(source["fragments"]), f"{source['mean_bytes']:,.1f}")
    return table


@click.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the summary as JSON here.")
def inspect(file: str, json_path: str | None) -> None:
    """Summarise a recording: header, events, sizes per source, index, whether it was cut short."""
    from trigger_sim.recording_summary import summarize

    try:
        summary = summarize(file)
    except TriggerSimError as err:
        raise click.ClickException(str(err)) from err
    console = Console()
    console.print(_overview_table(summary))
    console.print(_sources_table(summary))
    if json_path:
        Path(json_path).write_text(json.dumps(summary, indent=2) + "\n")


@click.group("import")
def import_group() -> None:
    """Import external event data into recordings."""


@import_group.command("ispy")
@click.argument("ig_file", type=click.Path(exists=True, dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Recording file to write.")
@CONFIG_OPTION
@OVERWRITE_OPTION
def import_ispy(ig_file: str, output: str, config_path: str | None, overwrite: bool) -> None:
    """Convert real CMS events from an iSpy event-display file (.ig) into a recording."""
    from trigger_sim.importers.ispy_convert import import_ispy as convert_file

    summary, console, config = run_import(convert_file, ig_file, output, config_path, overwrite)
    console.print(
        f"wrote {summary.events} CMS events to {output} in {summary.elapsed_s:.2f} s: "
        f"{summary.rechits_used} rechits in towers, dropped {summary.dropped_outside_eta} outside "
        f"|eta| < {config.calo.eta_max} and {summary.dropped_bad_energy} with energy <= 0 or NaN; "
        f"{summary.tracker_hits} tracker hits",
        soft_wrap=True,
    )


def _pairs_table(pairs: list[PairCounts]) -> Table:
    table = Table(title="Our chains vs CMS HLT paths (all files)")
    for name in ("chain", "CMS paths", "n", "both", "ours\nonly", "CMS\nonly", "neither", "agree-\nment"):
        table.add_column(name, justify="left" if name in ("chain", "CMS paths") else "right")
    for p in pairs:
        cms = "\n".join(p.pair.cms)
        if not p.pair.chain:
            table.add_row("[dim]not comparable[/dim]", cms, "-", "-", "-", "-", "-", "-")
            continue
        agreement = "-" if p.agreement is None else f"{p.agreement:.1%}"
        table.add_row(p.pair.chain, cms, str(p.n), str(p.both), str(p.ours_only), str(p.cms_only), str(p.neither), agreement)
    return table


def _pair_notes(pairs: list[PairCounts]) -> list[str]:
    """Per pair: the CMS paths matched (with versions), and why a pair is not comparable."""
    lines = []
    for p in pairs:
        matched = ", ".join(sorted(p.cms_paths)) or "none present in these files"
        why = f"not comparable: {p.pair.not_comparable}; CMS accepted {p.cms_accepted}. " if not p.pair.chain else ""
        lines.append(f"  {' | '.join(p.pair.cms)}: {why}matched {matched}")
    return lines


def _share(count: int, total: int) -> str:
    return f"{count} ({count / total:.0%})" if total else str(count)


def _files_table(files: list[FileComparison]) -> Table:
    table = Table(title="Events per file (CMS accepted: any HLT_ path)")
    for name in ("file", "events", "decided", "CMS\naccepted", "ours\naccepted", "ours\ndebug", "time (s)"):
        table.add_column(name, justify="left" if name == "file" else "right")
    for f in files:
        table.add_row(Path(f.file).stem, str(f.events), str(f.decided), _share(f.cms_accepted, f.events),
                      _share(f.ours_accepted, f.events), str(f.ours_debug), f"{f.elapsed_s:.2f}")
    return table


@click.command("compare-cms")
@click.argument("files", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--menu", "menu_path", type=click.Path(exists=True, dir_okay=False),
              help="Menu of our chains (default: configs/menu_cms_compare.toml).")
@click.option("--pairs", "pairs_path", type=click.Path(exists=True, dir_okay=False),
              help="Our chain -> CMS paths table (default: configs/cms_pairs.toml).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Write the comparison as JSON here.")
def compare_cms(files: tuple[str, ...], menu_path: str | None, pairs_path: str | None, json_path: str | None) -> None:
    """Decide imported CMS events (`import ispy`) with our chains and compare with the real CMS HLT."""
    from trigger_sim.cms_compare import compare_files

    started = time.perf_counter()
    try:
        result = compare_files(files, menu_path, pairs_path)
    except TriggerSimError as err:
        raise click.ClickException(str(err)) from err
    elapsed_s = time.perf_counter() - started
    console = Console()
    console.print(_files_table(result.files))
    console.print(_pairs_table(result.total))
    for line in _pair_notes(result.total):
        console.print(line, soft_wrap=True, markup=False, highlight=False)
    not_run, debug = sum(p.cms_not_run for p in result.total), sum(p.ours_debug for p in result.total)
    console.print(f"agreement = (both + neither) / n; n counts events decided on both sides. Left out of n (summed "
                  f"over pairs): CMS paths not run {not_run}, our outcome a debug stream {debug}.", soft_wrap=True)
    console.print("Our thresholds cut on a different detector's response (this project's calorimeter towers made "
                  "from CMS rechits, |eta| < calo.eta_max, without CMS's jet energy corrections or particle flow): "
                  "agreement measures similarity, not correctness.", soft_wrap=True)
    console.print(f"{sum(f.events for f in result.files)} events in {len(files)} files, {elapsed_s:.1f} s", soft_wrap=True)
    if json_path:
        Path(json_path).write_text(json.dumps(result.to_dict() | {"elapsed_s": elapsed_s}, indent=2) + "\n")


@click.command()
@click.argument("directory", type=click.Path(file_okay=False))
def keys(directory: str) -> None:
    """Create ZeroMQ CURVE key pairs (server and client) in DIRECTORY; existing keys are never overwritten."""
    from farm.security import make_keys

    try:
        files = make_keys(directory)
    except (TriggerSimError, OSError) as err:
        raise click.ClickException(str(err)) from err
    console = Console()
    for path in files:
        console.print(f"wrote {path}", soft_wrap=True)
    console.print(f"Use them with, in the farm configuration:\n[network]\ncurve_keys_dir = \"{Path(directory).resolve()}\"\n"
                  "Secret keys (*.key_secret) are readable by you only; keep them so.", soft_wrap=True, markup=False)
