"""`trigger-sim import trackml`: TrackML CSV events into a recording (added to the `import` group by
`farm.cli_data.register`; options shared from farm.cli_options)."""

from __future__ import annotations

import click

from farm.cli_options import CONFIG_OPTION, OVERWRITE_OPTION, run_import


@click.command("trackml")
@click.argument("directory", type=click.Path(exists=True, file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Recording file to write.")
@CONFIG_OPTION
@OVERWRITE_OPTION
def import_trackml(directory: str, output: str, config_path: str | None, overwrite: bool) -> None:
    """Convert TrackML events (eventNNNNNNNNN-hits/cells/particles/truth.csv[.gz] in DIRECTORY) into a recording.

    Barrel hits become tracker hits; endcap hits are dropped (counted); calorimeter fragments are empty.
    """
    from trigger_sim.importers.trackml_convert import import_trackml as convert_directory

    summary, console, config = run_import(convert_directory, directory, output, config_path, overwrite)
    endcap = ", ".join(f"{v}: {n}" for v, n in summary.dropped_endcap.items())
    console.print(
        f"wrote {summary.events} TrackML events to {output} in {summary.elapsed_s:.2f} s: "
        f"{summary.tracker_hits} of {summary.hits_read} hits kept as tracker hits (barrel); "
        f"dropped {sum(summary.dropped_endcap.values())} endcap hits, not in this detector (per volume {endcap}) "
        f"and {summary.dropped_outside_z} barrel hits with |z| >= {config.tracker.half_length_mm} mm; "
        f"truth kept for {summary.events_with_truth} events; calorimeter fragments empty (TrackML has no calorimeter)",
        soft_wrap=True,
    )
