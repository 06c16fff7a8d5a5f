"""Supervisor: starts the farm (Triton, builder, workers, readout), watches it, stops it.

Start order: the inference server (or the given URL), the collector socket (here), the
builder, the workers (each warms its kernels and the model before asking for work), and
last the readout, so no event waits on start-up.

The role processes are `farm.host_roles.HostRoles`, as on every node of a farm across
hosts: a worker process that exits is reported to the builder (which retries the event it
held once, then sends it to HltError) and restarted. A dead builder or readout
ends the run with an error; whatever was not decided is reported lost, by Level-1 id.

Stop order (end of input, Ctrl-C or SIGTERM): the readout stops and sends END; the farm
drains until every Level-1 accept has an outcome or the drain timeout passes; then the
builder and workers stop, and the builder sends what it still holds to debug streams.
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

import zmq

from farm.collector import Collector
from farm.host_roles import HostRoles
from farm.metrics_http import check_ports_free, serve
from farm.run_watch import Interrupts, Progress, drain_timeout_s, progress_reading, run_input
from farm.run_output import events_table_path, prepare_output, write_events_table
from farm.readout import run_readout
from farm.server_roles import one_host_servers, server_urls
from farm.server_keeper import ServerKeeper
from farm.server_monitor import ModelMonitor
from farm.security import Curve, check_triton_tls_files
from farm.summary import LATENCY_ORDER, summarise
from farm.triton_server import TritonServer
from trigger_sim.inference.factory import client_shm_prefix
from trigger_sim.inference.triton_shm import remove_regions, unregister_regions
from trigger_sim.config import FarmConfig
from trigger_sim.event_table import EventTable
from trigger_sim.event_table_io import check_writable
from trigger_sim import simulation
from trigger_sim.kernels import warm_up
from trigger_sim.menu import load_menu
from trigger_sim.metrics import SUPERVISOR, SupervisorMetrics, process_ports



@dataclass
class FarmHooks:
    """Callbacks for tests and fault injection: called from the supervisor's loop."""

    on_started: Callable[["Farm"], None] | None = None
    on_tick: Callable[["Farm"], None] | None = None
    server: TritonServer | None = None  # the caller's local server at inference.triton_url, to watch and repair


@dataclass
class Farm:
    """The running farm, as the supervisor sees it (handed to hooks)."""

    config: FarmConfig
    triton_url: str
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


def run_farm(config: FarmConfig, n_events: int | None = None, duration_s: float | None = None,
             progress: Progress | None = None, output_dir: str | Path | None = "auto",
             hooks: FarmHooks | None = None, replay: str | Path | None = None, loop: bool = False,
             events_table: str | Path | None = "auto") -> dict[str, Any]:
    """Run the whole farm and return its summary (see `farm.summary`).

    `replay` pushes a recording's events through the farm instead of simulated ones (with
    the detector geometry it was recorded with); without `loop` it ends with the file.
    `events_table`: where the per-event table goes (Parquet, or ROOT for a .root name);
    "auto": events.parquet in the output folder, none without one; None: no table.
    """
    config, replay_spec = run_input(config, n_events, duration_s, replay, loop)
    hooks = hooks or FarmHooks()
    load_menu(config.menu)  # fail now, with the file named, not in every worker
    curve = Curve.from_config(config.network)  # likewise for CURVE keys and TLS files
    check_triton_tls_files(config.network)
    wall_start = time.monotonic()
    if events_table not in (None, "auto"):
        check_writable(events_table)  # a .root name without uproot fails now, not after the run
    metrics_ports = process_ports(config.monitoring.base_port, config.worker.resolved_count)
    check_ports_free(config.monitoring, metrics_ports)  # a taken port fails now, named, not silently in a process
    output_dir = prepare_output(config, output_dir)
    table_path = events_table_path(events_table, output_dir)
    warm_up()  # compile (or load) the kernels once here, so workers find them cached
    if replay is None:
        simulation.warm_up(config)  # likewise the readout's simulation kernels
    ctx = zmq.Context()
    with Interrupts() as interrupts:
        with contextlib.ExitStack() as cleanup:
            # the local servers are restarted when they die; the caller's server (tests) is watched and repaired
            servers, mode = one_host_servers(config, [hooks.server] if hooks.server is not None else None)
            local_servers = servers.servers
            cleanup.callback(servers.stop)
            servers.start()
            triton_url = ",".join(server_urls(config, servers, mode)) or None  # local servers' ports are known once they run
            server = servers.watched[0] if servers.watched else None
            monitor = servers.monitors[0] if servers.monitors else None
            keeper = servers.keeper
            cleanup.callback(ctx.term)  # runs last: after every socket is closed
            shm_prefix = client_shm_prefix()  # the workers' shared-memory regions, removed after they stop
            cleanup.callback(remove_regions, shm_prefix)
            if mode == "external":  # a server that keeps running would keep killed workers' regions mapped
                for address in config.inference.server_addresses:
                    cleanup.callback(unregister_regions, address, shm_prefix, config.network.triton_client_options())
            if curve is not None:
                cleanup.callback(curve.close)  # its authenticator, after the collector's socket
            metrics = SupervisorMetrics(config.worker.budget_ms, triton_url or "none") if config.monitoring.enabled else None
            collector = Collector(ctx, config, output_dir, curve,
                                  events=EventTable(LATENCY_ORDER, triton_url or "") if table_path is not None else None,
                                  metrics=metrics)
            cleanup.callback(collector.close)
            endpoint = serve(metrics.registry, config.monitoring, SUPERVISOR) if metrics else None
            if endpoint is not None:
                cleanup.callback(endpoint.close)
            roles = HostRoles(config, ctx, curve, shm_prefix=shm_prefix)
            cleanup.callback(roles.stop)
            n_workers = config.worker.resolved_count
            endpoints = roles.start_node(collector.endpoint, triton_url, n_workers)
            roles.start_readout(run_readout, (config, endpoints["fragments"], collector.endpoint, n_events, duration_s,
                                              roles.stop_input, replay_spec))
            farm = Farm(config, triton_url, collector, roles, server=server, monitor=monitor, local_servers=local_servers,
                        keeper=keeper)
            if hooks.on_started:
                hooks.on_started(farm)

            drain_deadline, last_decided = None, -1
            while True:
                collector.poll(50)
                if interrupts.drain and not roles.stop_input.is_set():
                    roles.stop_input.set()  # the readout stops; what it sent drains
                if interrupts.stop:  # checked here, never raised inside the collector's work
                    farm.problems.append("stopped by a second signal before the drain finished")
                    break
                if hooks.on_tick:
                    hooks.on_tick(farm)
                while collector.stalled:  # the builder gave their events to others already
                    report = collector.stalled.pop(0)
                    roles.kill_silent(report["identity"], report["silent_s"])
                restarted = roles.restart_dead_workers()
                if restarted and collector.metrics is not None:
                    collector.metrics.restarts.inc(restarted)
                if not roles.builder_alive:
                    farm.problems.append(f"event builder died (exit code {roles.builder.exitcode}): run stopped")
                    break
                if progress:
                    progress(progress_reading(collector, n_events, triton_url))
                if collector.end is None and not roles.readout.is_alive():
                    quiet_since = time.monotonic()  # its END may be behind a backlog: read until 1 s of quiet
                    while collector.end is None and time.monotonic() - quiet_since < 1.0:
                        if collector.poll(100):
                            quiet_since = time.monotonic()
                    if collector.end is None:
                        farm.problems.append(f"readout died (exit code {roles.readout.exitcode}) before reporting its Level-1 count")
                        break
                if collector.end is not None:
                    # counting per range is cheap, but not free for 300,000 sparse ids: only
                    # once enough events are decided for every accept to have its outcome
                    if collector.ledger.decided >= collector.end["l1_accepted"] and collector.n_unaccounted() == 0:
                        break
                    # Drain as long as events keep being decided; give up only after
                    # `drain_timeout_s` without progress (a backlog is not a hang).
                    decided = collector.ledger.decided
                    if drain_deadline is None or decided != last_decided:
                        drain_deadline, last_decided = time.monotonic() + drain_timeout_s(config), decided
                    elif time.monotonic() > drain_deadline:
                        farm.problems.append(f"no progress for {drain_timeout_s(config):.1f} s while draining: stopped")
                        break
            # Stop in order while the collector keeps reading: statistics and any events the
            # builder still held arrive meanwhile.
            stopper = threading.Thread(target=roles.stop, name="stop-farm")
            stopper.start()
            while stopper.is_alive():
                collector.poll(50)
            deadline = time.monotonic() + 2.0
            while collector.builder_stats is None and time.monotonic() < deadline:
                collector.poll(50)
            collector.poll(100)
            if collector.end and collector.end.get("problem"):
                farm.problems.append(str(collector.end["problem"]))
            farm.problems += servers.stop_keeping()  # no restart while the summary is made; failed restarts are problems
            farm.problems += roles.problems
            table_written = write_events_table(collector.events, table_path, farm.problems)
            summary = summarise(collector, n_workers, triton_url, mode, time.monotonic() - wall_start,
                                str(output_dir) if output_dir is not None and collector.writers else None,
                                farm.problems, restarts=roles.restarts,
                                model_reloads=servers.model_reloads, monitor_probe_failures=servers.probe_failures,
                                server_shm_prefix=",".join(s.shm_prefix for s in local_servers),
                                server_restarts=servers.restarts,
                                deadlines_ms={m: 1e3 * config.inference.deadline_s(m) for m in config.inference.models},
                                client_shm_prefix=shm_prefix,
                                server_model_config=(server.model_config_name or "cpu") if server is not None else "",
                                interrupted_by=interrupts.first,
                                events_table=table_written)
            summary["monitoring"] = {"address": config.monitoring.address, "ports": metrics_ports,
                                     "metrics_errors": collector.metrics_errors, "metrics_error_text": collector.metrics_error_text,
                                     # Triton's own /metrics (nv_inference_*), for the scrape configuration's triton job
                                     "triton_metrics": ",".join(f"127.0.0.1:{s.metrics_port}" for s in (local_servers or [server])
                                                                if s is not None and s.metrics_port)}
            if endpoint is not None:  # the final values stay up for a last scrape
                interrupts.linger(config.monitoring.linger_s)
    return summary
