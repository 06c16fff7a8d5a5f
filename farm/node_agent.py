"""Node agent (`trigger-sim node --topology FILE --host NAME`): runs the roles placed on one host.

It connects to run control, says who it is with a heartbeat every HEARTBEAT_S, and does
what run control asks: CONFIGURE starts the host's roles (a Triton server; a node's event
builder and its workers; the readout waits for START), START starts the readout, STOP
stops the roles in order (input, workers, builder), EXIT ends the agent. While running it
restarts a worker that dies and tells its builder, which retries the event the worker held
(as ATLAS's process manager on every node), with the same rules as the one-host run
(`farm.host_roles`). It answers clock exchanges (TIME_REQ) with its
host's clock, so run control can correct latencies that span hosts.
"""

from __future__ import annotations

import signal
import time
from typing import Any

import zmq

from farm import control_messages as cm
from farm import messages
from farm.host_roles import HostRoles
from farm.readout_feed import run_readout_feed
from farm.security import Curve
from farm.sockets import connect, make_socket
from farm.server_device import local_server
from farm.server_roles import ServerRoles
from trigger_sim import clock
from trigger_sim.config import FarmConfig, load_config
from trigger_sim.errors import TriggerSimError
from trigger_sim.inference.factory import client_shm_prefix
from trigger_sim.inference.triton_shm import remove_regions
from trigger_sim.kernels import warm_up
from trigger_sim.assignment import node_slots
from trigger_sim.liveness import HEARTBEAT_S
from trigger_sim.run_states import RunState
from trigger_sim.topology import Topology, config_for_host

POLL_MS = 50


class NodeAgent:
    def __init__(self, topology: Topology, host: str, config: FarmConfig | None = None, shm_prefix: str | None = None,
                 role_prefix: str | None = None):
        """`shm_prefix`: the prefix of the workers' shared-memory regions (default: one for
        this agent), removed when the agent closes (a killed worker leaves its regions);
        `role_prefix`: what the role processes' names start with (default "HOST/"; a farm of
        one node may leave it empty, as the one-host run names its workers)."""
        self.topology = topology
        self.spec = topology.host(host)
        self.config = config_for_host(config or load_config(topology.config or None), topology, host)
        self.state = RunState(host)
        self.ctx = zmq.Context()
        self.curve = Curve.from_config(self.config.network)
        self.control = make_socket(self.ctx, zmq.DEALER, hwm=10_000)
        self.control.setsockopt(zmq.IDENTITY, host.encode())
        connect(self.control, topology.control_endpoint, self.curve)
        self.shm_prefix = shm_prefix or client_shm_prefix()
        self.roles = HostRoles(self.config, self.ctx, self.curve, prefix=f"{host}/" if role_prefix is None else role_prefix,
                               shm_prefix=self.shm_prefix)
        self.servers: ServerRoles | None = None  # a Triton host's server
        self.run_params: dict[str, Any] = {}
        self.problems: list[str] = []
        self.reported_dead: set[str] = set()  # roles whose death run control was told of this run
        self.restarts_before_run = 0  # worker restarts of earlier runs (run control counts this run's)
        self.exit = False

    def send(self, kind: bytes, meta: dict[str, Any]) -> None:
        self.control.send_multipart([kind, messages.pack_meta(meta)])

    # -- roles -------------------------------------------------------------------------
    @property
    def run_restarts(self) -> int:
        """Worker restarts since this run was configured."""
        return self.roles.restarts - self.restarts_before_run

    def configure(self, params: dict[str, Any]) -> dict[str, Any]:
        self.run_params = params
        self.restarts_before_run = self.roles.restarts
        out: dict[str, Any] = {}
        if self.spec.triton_grpc_port and self.servers is None:
            servers = ServerRoles(self.config, [local_server(self.config, grpc_address=self.spec.address, grpc_port=port)
                                                for port in self.spec.triton_ports])
            servers.start()  # restarted on its port if it dies, its models reloaded if a stub dies
            self.servers = servers  # only once it runs: a server that failed to start is tried again at the next CONFIGURE
        if self.servers is not None:
            out["triton_url"] = ",".join(server.grpc_url for server in self.servers.servers)
        if self.spec.is_node:
            warm_up()
            endpoints = self.roles.start_node(params["collector"], params.get("triton_url") or None, self.spec.workers)
            out.update(fragments=endpoints["fragments"], slots=node_slots(self.config, self.spec.workers))
        return out

    def start(self, params: dict[str, Any]) -> None:
        if self.spec.readout:
            events = params.get("events")
            self.roles.start_readout(run_readout_feed, (self.config, params["assign"], params["collector"], params["nodes"],
                                                        None if events is None else int(events), self.roles.stop_input,
                                                        self.roles.end_input, params.get("duration_s"), params.get("replay")))

    # -- loop --------------------------------------------------------------------------
    def handle(self, kind: bytes, meta: dict[str, Any]) -> None:
        """One command from run control; one it cannot follow is reported (FAILED), and the
        agent stays up for the next."""
        try:
            self._handle(kind, meta)
        except (TriggerSimError, KeyError, TypeError, ValueError, OSError, zmq.ZMQError) as err:
            self.send(cm.FAILED, {"problem": f"{self.spec.name}: {kind.decode(errors='replace')}: {type(err).__name__}: {err}"[:500]})

    def _handle(self, kind: bytes, meta: dict[str, Any]) -> None:
        if kind == cm.TIME_REQ:
            t1 = clock.now_ns()
            self.send(cm.TIME_REP, {"seq": meta["seq"], "t0": meta["t0"], "t1": t1, "t2": clock.now_ns()})
        elif kind == cm.CONFIGURE:
            try:
                out = self.configure(meta)
            except Exception as err:  # the run cannot start: say why, stay up for another try
                self.state.apply("fail", str(err))
                self.send(cm.FAILED, {"problem": f"{self.spec.name}: {type(err).__name__}: {err}"[:500]})
                return
            self.state.apply("configure")
            self.send(cm.CONFIGURED, out)
        elif kind == cm.START:
            self.reported_dead.clear()
            self.start(meta)
            self.state.apply("start")
        elif kind == cm.STOP:
            self.roles.stop()
            self.state.apply("stop")
            servers = self.servers
            self.send(cm.STOPPED, {"restarts": self.run_restarts, "problems": self.problems + self.roles.problems +
                                   (list(servers.keeper.problems) if servers and servers.keeper else []),
                                   "server_restarts": servers.restarts if servers else {},
                                   "model_reloads": servers.model_reloads if servers else 0,
                                   "monitor_probe_failures": servers.probe_failures if servers else []})
            self.restarts_before_run = self.roles.restarts  # none until the next run is configured
        elif kind == cm.END_INPUT:
            self.roles.end_input.set()
        elif kind == cm.KILL:
            self.roles.kill_silent(str(meta["identity"]), float(meta.get("silent_s", 0.0)))
        elif kind == cm.EXIT:
            self.exit = True

    def run(self) -> None:
        next_beat = 0.0
        while not self.exit:
            now = time.monotonic()
            if now >= next_beat:
                self.send(cm.HEARTBEAT, {"host": self.spec.name, "roles": list(self.spec.roles), "state": self.state.state,
                                         "restarts": self.run_restarts})
                next_beat = now + HEARTBEAT_S
            if self.control.poll(POLL_MS):
                frames = self.control.recv_multipart()
                try:
                    kind, meta = frames
                    body = messages.unpack_meta(meta)
                except (ValueError, TypeError):
                    self.problems.append(f"a control message of {len(frames)} frames that does not decode: dropped")
                    continue
                self.handle(kind, body)
            try:
                if self.roles.restart_dead_workers():
                    next_beat = 0.0  # run control counts the restart now, not at the next heartbeat
                self.report_dead_roles()
            except (OSError, zmq.ZMQError) as err:  # a restart that cannot start: said, and the agent stays up
                self.problems.append(f"{self.spec.name}: restarting a role failed: {type(err).__name__}: {err}"[:500])

    def report_dead_roles(self) -> None:
        """While running, a builder or readout that exits is told to run control, once each
        (workers are restarted here instead)."""
        if self.state.state != "RUNNING":
            return
        roles = self.roles
        for role, process, stopping in (("builder", roles.builder, roles.stop_builder.is_set()),
                                        ("readout", roles.readout, roles.stop_input.is_set())):
            if process is None or stopping or process.exitcode is None or role in self.reported_dead:
                continue
            self.reported_dead.add(role)
            self.send(cm.ROLE_DIED, {"role": role, "exit_code": process.exitcode})

    def close(self, sockets: bool = True) -> None:
        """Stop the roles and servers, remove the shared memory; close the agent's sockets
        unless `sockets` is False (its loop still runs in another thread: closing a ZeroMQ
        socket from a second thread is unsafe, and terminating its context would block)."""
        self.roles.stop(close_sockets=sockets)
        remove_regions(self.shm_prefix)
        if self.servers is not None:
            self.servers.stop()
        if not sockets:
            return
        self.control.close(linger=500)
        if self.curve is not None:
            self.curve.close()
        self.ctx.term()


def run_node(topology: Topology, host: str) -> None:
    """Run the agent until run control says EXIT (or SIGTERM / Ctrl-C)."""
    agent = NodeAgent(topology, host)

    def on_signal(signum, frame):
        agent.exit = True

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        agent.run()
    finally:
        agent.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
