"""The farm on one host (`trigger-sim run`): the built-in one-host topology, its node agent in
a thread of this process, and run control here.

The roles are the same processes as on every node (`farm.host_roles`), started and
restarted by the same agent; events take the same path as across hosts: the readout feed
asks the assignment service for a node, sends each event's fragments to that node's
builder, and run control's collector counts the outcomes. Start order: the Triton servers
(local ones, the configured addresses, or none), the node's builder and workers (each warms
its kernels and models before asking for work), then the readout. A worker that exits is
replaced by the agent and its event retried; a dead builder or readout is reported and the
run drains what it can (whatever is not decided is reported lost, by Level-1 id). The first
SIGINT or SIGTERM drains the run, a second stops it (`farm.run_watch`).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from farm.collector import Collector
from farm.host_roles import HostRoles
from farm.metrics_http import check_ports_free
from farm.node_agent import NodeAgent
from farm.run_control import RunControl, run_topology
from farm.run_watch import Progress, run_input
from farm.security import Curve, check_triton_tls_files
from farm.server_keeper import ServerKeeper
from farm.server_monitor import ModelMonitor
from farm.server_roles import one_host_servers, server_urls
from farm.triton_server import TritonServer, free_port
from trigger_sim import simulation
from trigger_sim.assignment import one_host_buffer_events
from trigger_sim.config import FarmConfig, with_overrides
from trigger_sim.event_table_io import check_writable
from trigger_sim.kernels import warm_up
from trigger_sim.menu import load_menu
from trigger_sim.metrics import process_ports
from trigger_sim.topology import ONE_HOST, one_host_topology

AGENT_JOIN_S = 30.0
READOUT_START_S = 30.0  # START to the readout process running, before the hooks are given the farm


@dataclass
class FarmHooks:
    """Callbacks for tests and fault injection: called from run control's loop."""

    on_started: Callable[["Farm"], None] | None = None
    on_tick: Callable[["Farm"], None] | None = None
    server: TritonServer | None = None  # the caller's local server at inference.triton_url, to watch and repair


@dataclass
class Farm:
    """The running farm, as run control sees it (handed to hooks)."""

    config: FarmConfig
    triton_url: str | None
    collector: Collector
    roles: HostRoles  # the readout, builder and worker processes
    problems: list[str] = field(default_factory=list)
    server: TritonServer | None = None  # the first watched server (a local one, or the caller's)
    monitor: "ModelMonitor | None" = None
    local_servers: list[TritonServer] = field(default_factory=list)  # those the farm started (and restarts)
    keeper: "ServerKeeper | None" = None

    @property
    def workers(self) -> dict[int, multiprocessing.Process]:
        return self.roles.workers

    @property
    def identities(self) -> dict[int, str]:
        return self.roles.identities

    @property
    def builder(self) -> multiprocessing.Process | None:
        return self.roles.builder

    @property
    def readout(self) -> multiprocessing.Process | None:
        return self.roles.readout


def one_host_buffer(config: FarmConfig) -> FarmConfig:
    """`config` with the readout's buffer no larger than what a one-host farm's node holds
    (`trigger_sim.assignment.one_host_buffer_events`)."""
    return with_overrides(config, readout={"buffer_events": one_host_buffer_events(config, config.worker.resolved_count)})


def check_before_start(config: FarmConfig, n_events: int | None, duration_s: float | None, replay: str | Path | None,
                       loop: bool, events_table: str | Path | None) -> list[int]:
    """Fail now, with the file, key or port named, what would otherwise fail in every worker
    or silently in a process: the run's input, the menu, CURVE keys and TLS files, the
    table's writer, the metrics ports. Returns the metrics ports (`process_ports`)."""
    run_input(config, n_events, duration_s, replay, loop)
    load_menu(config.menu)
    Curve.from_config(config.network)  # the key files are read here (the authenticator starts with a server socket)
    check_triton_tls_files(config.network)
    if events_table not in (None, "auto"):
        check_writable(events_table)  # a .root name without uproot fails now, not after the run
    ports = process_ports(config.monitoring.base_port, config.worker.resolved_count)
    check_ports_free(config.monitoring, ports)
    return ports


def run_farm(config: FarmConfig, n_events: int | None = None, duration_s: float | None = None,
             progress: Progress | None = None, output_dir: str | Path | None = "auto",
             hooks: FarmHooks | None = None, replay: str | Path | None = None, loop: bool = False,
             events_table: str | Path | None = "auto", timeout_s: float | None = None,
             on_agent: Callable[[NodeAgent], None] | None = None) -> dict[str, Any]:
    """Run the farm on this host and return its summary (that of
    `farm.run_control.run_topology` with one host, plus `monitoring`).

    `replay` pushes a recording's events through the farm instead of simulated ones (with
    the detector geometry it was recorded with); without `loop` it ends with the file.
    `events_table`: where the per-event table goes (Parquet, or ROOT for a .root name);
    "auto": events.parquet in the output folder, none without one; None: no table.
    `hooks` are given the `Farm` view once the run started and at every poll; `on_agent` is
    given the node agent before the run starts; `timeout_s` bounds the run (None: none)."""
    hooks = hooks or FarmHooks()
    metrics_ports = check_before_start(config, n_events, duration_s, replay, loop, events_table)
    warm_up()  # compile (or load) the kernels once here, so workers find them cached
    if replay is None:
        simulation.warm_up(config)  # likewise the readout's simulation kernels
    config = one_host_buffer(config)
    with contextlib.ExitStack() as cleanup:
        servers, mode = one_host_servers(config, [hooks.server] if hooks.server is not None else None)
        cleanup.callback(servers.stop)
        servers.start()
        topology = one_host_topology(config.worker.resolved_count, control_port=free_port(),
                                     triton_urls=server_urls(config, servers, mode))
        agent = NodeAgent(topology, ONE_HOST, config, role_prefix="")  # workers named as in any one-host run
        thread = threading.Thread(target=agent.run, name="node-agent", daemon=True)
        cleanup.callback(lambda: agent.close(sockets=not thread.is_alive()))
        if on_agent is not None:
            on_agent(agent)
        thread.start()
        farms: list[Farm] = []

        def started(rc: RunControl) -> None:
            # the agent's thread starts the readout on START: hooks see every role running (its pid)
            deadline = time.monotonic() + READOUT_START_S
            while (agent.roles.readout is None or agent.roles.readout.pid is None) and time.monotonic() < deadline:
                rc.pump(5)
            farms.append(Farm(config, topology.triton_url or None, rc.collector, agent.roles, rc.problems,
                              server=servers.watched[0] if servers.watched else None,
                              monitor=servers.monitors[0] if servers.monitors else None,
                              local_servers=servers.servers, keeper=servers.keeper))
            if hooks.on_started is not None:
                hooks.on_started(farms[0])

        def tick(rc: RunControl) -> None:
            if hooks.on_tick is not None:
                hooks.on_tick(farms[0])

        try:
            summary = run_topology(topology, config, n_events, output_dir, timeout_s=timeout_s, events_table=events_table,
                                   duration_s=duration_s, progress=progress, replay=replay, loop=loop,
                                   on_started=started, on_tick=tick,
                                   server_restarts=servers.restarts)  # its servers are kept here, not by the agent
        finally:
            agent.exit = True  # run control has said EXIT already, unless it failed before
            thread.join(AGENT_JOIN_S)
        stuck = [f"the node agent's thread did not end within {AGENT_JOIN_S:g} s: its roles were stopped, its socket "
                 "left open"] if thread.is_alive() else []
        summary["problems"] = sorted(set(summary["problems"] + servers.stop_keeping() + stuck))
        watched = servers.watched[0] if servers.watched else None
        summary["inference"].update(server_mode=mode, model_reloads=summary["inference"]["model_reloads"] + servers.model_reloads,
                                    local_server_restarts=servers.restarts, client_shm_prefix=agent.shm_prefix,
                                    server_shm_prefix=",".join(s.shm_prefix for s in servers.servers),
                                    server_model_config=(watched.model_config_name or "cpu") if watched is not None else "unknown")
        collector = farms[0].collector if farms else None
        summary["monitoring"] = {"address": config.monitoring.address, "ports": metrics_ports,
                                 "metrics_errors": collector.metrics_errors if collector else 0,
                                 "metrics_error_text": collector.metrics_error_text if collector else "",
                                 # Triton's own /metrics (nv_inference_*), for the scrape configuration's triton job
                                 "triton_metrics": ",".join(f"127.0.0.1:{s.metrics_port}" for s in (servers.servers or [watched])
                                                            if s is not None and s.metrics_port)}
        return summary
