"""Node agent (`trigger-sim node --topology FILE --host NAME`): runs the roles placed on one host.

It connects to run control, says who it is with a heartbeat every HEARTBEAT_S, and does
what run control asks: CONFIGURE starts the host's roles (a Triton server; a node's event
builder and its workers; the readout waits for START), START starts the readout, STOP
stops the roles in order (input, workers, builder), EXIT ends the agent. While running it
restarts a worker that dies and tells its builder, which retries the event the worker held
(as ATLAS's process manager on every node). It answers clock exchanges (TIME_REQ) with its
host's clock, so run control can correct latencies that span hosts.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import time
from typing import Any

import zmq

from farm import control_messages as cm
from farm import messages
from farm.builder import run_builder
from farm.readout_feed import run_readout_feed
from farm.security import Curve
from farm.sockets import connect, make_socket
from farm.supervisor import START_TIMEOUT_S, _stop_process
from farm.triton_server import TritonServer
from farm.worker import credits_asked, run_worker
from trigger_sim import clock
from trigger_sim.config import MODEL_REPOSITORY, FarmConfig, load_config
from trigger_sim.errors import TriggerSimError
from trigger_sim.kernels import warm_up
from trigger_sim.liveness import HEARTBEAT_S
from trigger_sim.run_states import RunState
from trigger_sim.topology import HostSpec, Topology, config_for_host

POLL_MS = 50


def slots_for(config: FarmConfig, spec: HostSpec) -> int:
    """Event slots a node offers the assignment service: what its workers hold at once (their
    credits), plus one waiting per worker at its builder, so a worker never waits for the
    next assignment."""
    return spec.workers * (credits_asked(config) + 1)


class NodeAgent:
    def __init__(self, topology: Topology, host: str, config: FarmConfig | None = None):
        self.topology = topology
        self.spec = topology.host(host)
        self.config = config_for_host(config or load_config(topology.config or None), topology, host)
        self.state = RunState(host)
        self.mp = multiprocessing.get_context("spawn")
        self.ctx = zmq.Context()
        self.curve = Curve.from_config(self.config.network)
        self.control = make_socket(self.ctx, zmq.DEALER, hwm=10_000)
        self.control.setsockopt(zmq.IDENTITY, host.encode())
        connect(self.control, topology.control_endpoint, self.curve)
        self.ready = self.mp.Queue()
        self.stop_input, self.stop_workers, self.stop_builder = self.mp.Event(), self.mp.Event(), self.mp.Event()
        self.triton: TritonServer | None = None
        self.builder: multiprocessing.Process | None = None
        self.builder_control: zmq.Socket | None = None
        self.endpoints: dict[str, str] = {}
        self.workers: dict[int, multiprocessing.Process] = {}
        self.identities: dict[int, str] = {}
        self.readout: multiprocessing.Process | None = None
        self.run_params: dict[str, Any] = {}
        self.restarts = 0
        self.problems: list[str] = []
        self.exit = False

    def send(self, kind: bytes, meta: dict[str, Any]) -> None:
        self.control.send_multipart([kind, messages.pack_meta(meta)])

    # -- roles -------------------------------------------------------------------------
    def configure(self, params: dict[str, Any]) -> dict[str, Any]:
        self.run_params = params
        out: dict[str, Any] = {}
        if self.spec.triton_grpc_port and self.triton is None:
            self.triton = TritonServer(MODEL_REPOSITORY, self.config.inference.server_start_timeout_s,
                                       grpc_address=self.spec.address, grpc_port=self.spec.triton_grpc_port)
            self.triton.start()
            out["triton_url"] = self.triton.grpc_url
        if self.spec.is_node:
            warm_up()
            self.stop_builder.clear()
            self.stop_workers.clear()
            self.builder = self.mp.Process(target=run_builder, name=f"{self.spec.name}/builder", daemon=True,
                                           args=(self.config, params["collector"], self.ready, self.stop_builder))
            self.builder.start()
            (_, self.endpoints), = self._wait_ready(1)
            self.builder_control = make_socket(self.ctx, zmq.PUSH)
            connect(self.builder_control, self.endpoints["control"], self.curve)
            for i in range(self.spec.workers):
                self._start_worker(i)
            self.problems += [info.get("problem", "") for _, info in self._wait_ready(self.spec.workers) if info.get("problem")]
            out.update(fragments=self.endpoints["fragments"], slots=slots_for(self.config, self.spec))
        return out

    def _start_worker(self, index: int) -> None:
        generation = self.restarts if index in self.workers else 0
        identity = f"{self.spec.name}/worker-{index}.{generation}"
        p = self.mp.Process(target=run_worker, name=identity, daemon=True,
                            args=(identity, self.config, self.run_params.get("triton_url") or None, self.endpoints["work"],
                                  self.run_params["collector"], self.ready, self.stop_workers, None))
        p.start()
        self.workers[index], self.identities[index] = p, identity

    def _wait_ready(self, n: int) -> list[tuple[str, dict]]:
        out, deadline = [], time.monotonic() + START_TIMEOUT_S
        while len(out) < n:
            try:
                out.append(self.ready.get(timeout=0.2))
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise TriggerSimError(f"{self.spec.name}: roles not ready after {START_TIMEOUT_S:.0f} s") from None
        return out

    def start(self, params: dict[str, Any]) -> None:
        if self.spec.readout:
            self.stop_input.clear()
            self.readout = self.mp.Process(target=run_readout_feed, name=f"{self.spec.name}/readout", daemon=True,
                                           args=(self.config, params["assign"], params["collector"], params["nodes"],
                                                 int(params["events"]), self.stop_input))
            self.readout.start()

    def stop_roles(self) -> None:
        """Input first, then workers (each finishes its event), then the builder (which then
        sends what it still holds as NotProcessed, and its statistics)."""
        self.stop_input.set()
        if self.readout is not None:
            _stop_process(self.readout)
            self.readout = None
        self.stop_workers.set()
        for p in self.workers.values():
            _stop_process(p)
        self.workers.clear()
        self.stop_builder.set()
        if self.builder is not None:
            _stop_process(self.builder)
            self.builder = None
        if self.builder_control is not None:
            self.builder_control.close(linger=0)
            self.builder_control = None

    def restart_dead_workers(self) -> None:
        """A worker that exited is replaced; its builder retries the event it held."""
        if self.builder is None or not self.builder.is_alive() or self.stop_workers.is_set():
            return
        for index, p in list(self.workers.items()):
            if p.is_alive():
                continue
            self.builder_control.send_multipart([messages.WORKER_DIED, messages.pack_meta({"identity": self.identities[index]})])
            self.problems.append(f"{self.identities[index]} exited with code {p.exitcode}: restarted")
            self.restarts += 1
            self._start_worker(index)
        with contextlib.suppress(queue.Empty):
            while True:
                self.ready.get_nowait()

    def kill_worker(self, identity: str) -> None:
        for index, name in self.identities.items():
            p = self.workers.get(index)
            if name == identity and p is not None and p.is_alive():
                os.kill(p.pid, signal.SIGKILL)

    # -- loop --------------------------------------------------------------------------
    def handle(self, kind: bytes, meta: dict[str, Any]) -> None:
        """One command from run control; one it cannot follow is reported (FAILED), and the
        agent stays up for the next."""
        try:
            self._handle(kind, meta)
        except (TriggerSimError, KeyError, TypeError, ValueError) as err:
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
            self.start(meta)
            self.state.apply("start")
        elif kind == cm.STOP:
            self.stop_roles()
            self.state.apply("stop")
            self.send(cm.STOPPED, {"restarts": self.restarts, "problems": self.problems})
        elif kind == cm.KILL:
            self.kill_worker(str(meta["identity"]))
        elif kind == cm.EXIT:
            self.exit = True

    def run(self) -> None:
        next_beat = 0.0
        while not self.exit:
            now = time.monotonic()
            if now >= next_beat:
                self.send(cm.HEARTBEAT, {"host": self.spec.name, "roles": list(self.spec.roles), "state": self.state.state})
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
            self.restart_dead_workers()

    def close(self) -> None:
        self.stop_roles()
        if self.triton is not None:
            self.triton.stop()
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
