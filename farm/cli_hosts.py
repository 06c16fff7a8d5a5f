"""`trigger-sim node` (the node agent) and `trigger-sim run --topology` (run control of a farm across hosts)."""

from __future__ import annotations

import functools
import sys
from typing import Any

import click
from rich.console import Console

from trigger_sim.config import load_config, with_overrides
from trigger_sim.errors import TriggerSimError
from trigger_sim.topology import Topology, load_topology


def _topology(path: str) -> Topology:
    try:
        return load_topology(path)
    except TriggerSimError as err:
        raise click.UsageError(str(err)) from err


@click.command()
@click.option("--topology", "topology_path", required=True, type=click.Path(exists=True, dir_okay=False), help="Topology file (TOML).")
@click.option("--host", required=True, help="This host's name in the topology.")
def node(topology_path: str, host: str) -> None:
    """Node agent: run the roles the topology places on this host, as run control asks."""
    from farm.node_agent import run_node

    topology = _topology(topology_path)
    try:
        topology.host(host)
        run_node(topology, host)
    except TriggerSimError as err:
        Console(stderr=True).print(f"[red]error:[/red] {err}")
        sys.exit(2)


def run_with_topology(topology_path: str, config_path: str | None, events: int | None, rate: float | None,
                      pileup: float | None, output_dir: str | None, no_output: bool, json_path: str | None, quiet: bool,
                      timeout_s: float | None = None, events_table: str | None = None, duration_s: float | None = None,
                      pattern: str | None = None, monitoring: dict[str, Any] | None = None) -> None:
    """Run control: the run on the node agents of a topology, with the progress display, report
    and exit status of a one-host run."""
    from farm.cli import show_run
    from farm.run_control import run_topology

    topology = _topology(topology_path)
    console = Console(stderr=True)
    try:
        config = load_config(config_path or topology.config or None)
        config = with_overrides(config, readout={k: v for k, v in (("rate_hz", rate), ("pattern", pattern)) if v},
                                physics={"pileup_mean": pileup} if pileup is not None else {},
                                output={"write_streams": False} if no_output else {}, monitoring=monitoring or {})
    except TriggerSimError as err:
        console.print(f"[red]error:[/red] {err}")
        sys.exit(2)
    run = functools.partial(run_topology, topology, config, events, output_dir or "auto", timeout_s=timeout_s,
                            events_table=events_table or "auto", duration_s=duration_s,
                            on_state=None if quiet else lambda state: console.print(f"run control: {state}"))
    show_run(run, config, events, json_path, quiet, report=_hosts_report)


def _hosts_report(summary: dict[str, Any], console: Console) -> None:
    for name, h in summary["hosts"].items():
        console.print(f"host {name} ({h['address']}, {', '.join(h['roles'])}): clock offset {h['clock_offset_ms']:+.3f} "
                      f"+/- {h['clock_uncertainty_ms']:.3f} ms, events assigned {h['assigned']}, "
                      f"decided by its workers {h['decided_by_workers']}" + (", LOST" if h["lost"] else ""))
