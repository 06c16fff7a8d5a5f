"""The farm on one host run as a farm across hosts: the built-in one-host topology, its node
agent in a thread of this process, and run control here.

The roles are the same processes as on every node (`farm.host_roles`), started and
restarted by the same agent; events take the same path as across hosts: the readout feed
asks the assignment service for a node, sends each event's fragments to that node's
builder, and run control's collector counts the outcomes.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from farm.node_agent import NodeAgent, slots_for
from farm.run_control import RunControl, run_topology
from farm.run_watch import Progress
from farm.server_roles import one_host_servers, server_urls
from farm.supervisor import Farm, FarmHooks
from farm.triton_server import free_port
from trigger_sim.config import FarmConfig, with_overrides
from trigger_sim.topology import ONE_HOST, HostSpec, one_host_topology

AGENT_JOIN_S = 30.0


def one_host_buffer(config: FarmConfig) -> FarmConfig:
    """`config` with the readout's buffer no larger than what a one-host farm's builder holds:
    the node's event slots and the builder's queue of complete events (`builder.max_waiting`).
    On one host the readout and the builder share the machine; as with the one-host readout,
    which blocks once the builder stops reading, Level-1 busy (dead time) then starts when
    the node is full, not after thousands of events have queued in the readout."""
    spec = HostSpec(ONE_HOST, "127.0.0.1", workers=config.worker.resolved_count)
    cap = slots_for(config, spec) + config.builder.max_waiting
    return with_overrides(config, readout={"buffer_events": min(config.readout.buffer_events, cap)})


def run_one_host(config: FarmConfig, n_events: int | None = None, duration_s: float | None = None,
                 progress: Progress | None = None, output_dir: str | Path | None = "auto",
                 events_table: str | Path | None = "auto", replay: str | Path | None = None, loop: bool = False,
                 timeout_s: float | None = None, on_agent: Callable[[NodeAgent], None] | None = None,
                 hooks: FarmHooks | None = None) -> dict[str, Any]:
    """Run the farm on this host through run control and a node agent; return the summary
    (that of `farm.run_control.run_topology`, with one host). The Triton servers are those
    of a one-host run (`farm.server_roles.one_host_servers`: none, the configured addresses,
    or local ones started and kept here). `on_agent` is given the agent before the run
    starts (fault tests reach its roles through it); `hooks` are called as in the
    supervisor's run (`farm.supervisor.FarmHooks`), with the same `Farm` view of the run."""
    hooks = hooks or FarmHooks()
    config = one_host_buffer(config)
    with contextlib.ExitStack() as cleanup:
        servers, mode = one_host_servers(config, [hooks.server] if hooks.server is not None else None)
        cleanup.callback(servers.stop)
        servers.start()
        topology = one_host_topology(config.worker.resolved_count, control_port=free_port(),
                                     triton_urls=server_urls(config, servers, mode))
        agent = NodeAgent(topology, ONE_HOST, config, role_prefix="")  # workers named as in any one-host run
        cleanup.callback(agent.close)
        if on_agent is not None:
            on_agent(agent)
        thread = threading.Thread(target=agent.run, name="node-agent", daemon=True)
        thread.start()
        farms: list[Farm] = []

        def started(rc: RunControl) -> None:
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
                                   on_started=started, on_tick=tick)
        finally:
            agent.exit = True  # run control has said EXIT already, unless it failed before
            thread.join(AGENT_JOIN_S)
        summary["problems"] = sorted(set(summary["problems"] + servers.stop_keeping()))
        watched = servers.watched[0] if servers.watched else None
        summary["inference"].update(server_mode=mode, model_reloads=summary["inference"]["model_reloads"] + servers.model_reloads,
                                    local_server_restarts=servers.restarts, client_shm_prefix=agent.shm_prefix,
                                    server_shm_prefix=",".join(s.shm_prefix for s in servers.servers),
                                    server_model_config=(watched.model_config_name or "cpu") if watched is not None else "unknown")
        return summary
