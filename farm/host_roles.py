"""The processes of one host's roles, as ATLAS's process manager keeps them on every node.

A host runs some of: the readout (the Level-1 trigger and its sources), a node's event
builder and its HLT workers. `HostRoles` starts them in order (the builder, then the
workers, each warming its kernels and the model before it asks for work; the readout
last, so no event waits on start-up), replaces a worker that exits (telling its builder,
which retries the event the worker held once, then sends it to HltError), kills a worker
its builder reported silent (it is then replaced the same way), and stops them in order:
input first, then the workers (each finishes its event and says so), then the builder,
which then knows exactly which events no worker finished.

The one-host run and the node agent of a farm across hosts both use it: one set of rules
for starting, restarting and stopping roles.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import queue
import time
from collections.abc import Callable
from typing import Any

import zmq

from farm import messages
from farm.builder import run_builder
from farm.security import Curve
from farm.sockets import connect, make_socket
from farm.worker import run_worker
from trigger_sim.config import FarmConfig
from trigger_sim.errors import TriggerSimError

START_TIMEOUT_S = 120.0


class HostRoles:
    """The role processes of one host. `prefix` names them ("" on a one-host farm, "node1/"
    on a node of a farm across hosts); `shm_prefix` is the run's prefix for the workers'
    shared-memory regions (None: no shared memory)."""

    def __init__(self, config: FarmConfig, ctx: zmq.Context, curve: Curve | None, prefix: str = "",
                 shm_prefix: str | None = None):
        self.config = config
        self.ctx = ctx
        self.curve = curve
        self.prefix = prefix
        self.shm_prefix = shm_prefix
        self.mp = multiprocessing.get_context("spawn")
        self.ready = self.mp.Queue()
        self.stop_input, self.stop_workers, self.stop_builder = self.mp.Event(), self.mp.Event(), self.mp.Event()
        self.end_input = self.mp.Event()  # the readout takes no more Level-1 accepts (a drain), but stays up
        self.builder: multiprocessing.Process | None = None
        self.builder_control: zmq.Socket | None = None
        self.endpoints: dict[str, str] = {}
        self.workers: dict[int, multiprocessing.Process] = {}
        self.identities: dict[int, str] = {}
        self.readout: multiprocessing.Process | None = None
        self.retired: list[multiprocessing.Process] = []  # workers replaced after they died: joined at stop
        self.restarts = 0
        self.killed_silent: list[str] = []
        self.problems: list[str] = []
        self.ready_since: dict[str, float] = {}  # worker identity -> when it said it was ready (monotonic s)
        self._triton_url: str | None = None
        self._collector = ""

    # -- starting ----------------------------------------------------------------------
    def start_node(self, collector_endpoint: str, triton_url: str | None, n_workers: int) -> dict[str, str]:
        """Start the event builder, then `n_workers` workers; return the builder's endpoints
        (fragments, work, control) once every worker is ready."""
        self._triton_url, self._collector = triton_url, collector_endpoint
        if self.builder is not None:  # a node configured again: the last run's roles are stopped first
            self.stop()
        self._read_ready()  # what the last run's workers said after it was last read is not this builder's "ready"
        self.retired += self.workers.values()
        self.workers.clear()
        self.identities.clear()
        self.stop_builder.clear()
        self.stop_workers.clear()
        try:
            self.builder = self.mp.Process(target=run_builder, name=f"{self.prefix}builder", daemon=True,
                                           args=(self.config, collector_endpoint, self.ready, self.stop_builder))
            self.builder.start()
            (_, self.endpoints), = self._wait_ready(1)
            self.builder_control = make_socket(self.ctx, zmq.PUSH)
            connect(self.builder_control, self.endpoints["control"], self.curve)
            for i in range(n_workers):
                self._start_worker(i)
            self.problems += [info["problem"] for _, info in self._wait_ready(n_workers) if info.get("problem")]
        except BaseException:  # a node agent stays up after a failed start: nothing of it may keep running
            self.stop()
            raise
        return self.endpoints

    def start_readout(self, target: Callable[..., None], args: tuple) -> multiprocessing.Process:
        """Start the readout process (`target(*args)`; its stop event is `stop_input`, the
        event that ends its input while it stays up is `end_input`)."""
        self.stop_input.clear()
        self.end_input.clear()
        self.readout = self.mp.Process(target=target, name=f"{self.prefix}readout", daemon=True, args=args)
        self.readout.start()
        return self.readout

    def _start_worker(self, index: int) -> None:
        generation = self.restarts if index in self.workers else 0
        identity = f"{self.prefix}worker-{index}.{generation}"
        p = self.mp.Process(target=run_worker, name=identity, daemon=True,
                            args=(identity, self.config, self._triton_url, self.endpoints["work"], self._collector, self.ready,
                                  self.stop_workers, self.shm_prefix))
        p.start()
        if index in self.workers:
            self.retired.append(self.workers[index])
        self.workers[index], self.identities[index] = p, identity

    def _wait_ready(self, n: int) -> list[tuple[str, dict[str, Any]]]:
        out, deadline = [], time.monotonic() + START_TIMEOUT_S
        while len(out) < n:
            for p in [self.builder, *self.workers.values()]:
                if p is not None and p.exitcode is not None and p.exitcode != 0:
                    raise TriggerSimError(f"process {p.name} exited with code {p.exitcode} during start-up")
            try:
                out.append(self._note_ready(self.ready.get(timeout=0.2)))
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise TriggerSimError(f"{self.prefix}roles not ready after {START_TIMEOUT_S:.0f} s") from None
        return out

    # -- while running -----------------------------------------------------------------
    @property
    def builder_alive(self) -> bool:
        return self.builder is not None and self.builder.is_alive()

    def restart_dead_workers(self) -> int:
        """Replace every worker that exited and tell the builder (which retries the event it
        held); read what restarted workers reported when ready. Returns the restarts made."""
        made = 0
        if self.builder_alive and not self.stop_workers.is_set():
            for index, p in list(self.workers.items()):
                if p.is_alive():
                    continue
                self.builder_control.send_multipart([messages.WORKER_DIED, messages.pack_meta({"identity": self.identities[index]})])
                self.problems.append(f"{self.identities[index]} exited with code {p.exitcode}: restarted "
                                     "(an event it held without a decision is retried)")
                self.restarts += 1
                made += 1
                self._start_worker(index)
        self._read_ready()
        return made

    def _note_ready(self, item: tuple[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
        """Keep when each worker said it was ready (fault scenarios pick only started workers)."""
        kind, info = item
        if kind == "worker" and isinstance(info.get("identity"), str):
            self.ready_since[info["identity"]] = time.monotonic()
        return item

    def _read_ready(self) -> None:
        """Read what restarted workers reported when ready (their problems are kept)."""
        with contextlib.suppress(queue.Empty):
            while True:
                problem = self._note_ready(self.ready.get_nowait())[1].get("problem", "")
                if problem:
                    self.problems.append(problem)

    def kill_silent(self, identity: str, silent_s: float) -> bool:
        """SIGKILL a worker its builder reported silent past its budget plus the margin (the
        builder has already given its events to others); the next restart replaces it."""
        for index, name in self.identities.items():
            p = self.workers[index]
            if name == identity and p.is_alive():
                wc = self.config.worker
                self.problems.append(f"{identity} silent for {silent_s:.1f} s (budget {wc.budget_ms:g} ms + margin "
                                     f"{wc.stall_margin_ms:g} ms): killed")
                self.killed_silent.append(identity)
                p.kill()  # not os.kill(p.pid): once another thread has reaped it, its pid may be free or reused
                p.join(2.0)
                return True
        return False

    # -- stopping ----------------------------------------------------------------------
    def stop(self, close_sockets: bool = True) -> None:
        """Input first, then workers (each finishes its event), then the builder (which then
        sends what it still holds to a debug stream, and its statistics). Safe to repeat.
        `close_sockets` False: the builder's control socket is left to the thread that uses
        it (a ZeroMQ socket is closed by its own thread)."""
        self.stop_input.set()
        if self.readout is not None:
            stop_process(self.readout)
        self.stop_workers.set()
        for p in [*self.workers.values(), *self.retired]:
            stop_process(p)
        self.stop_builder.set()
        if self.builder is not None:
            stop_process(self.builder)
        if close_sockets and self.builder_control is not None:
            self.builder_control.close(linger=0)
            self.builder_control = None


def stop_process(p: multiprocessing.Process, timeout_s: float = 5.0) -> None:
    """Join `p`; terminate, then kill it if it does not end in time."""
    p.join(timeout_s)
    if p.is_alive():
        p.terminate()
        p.join(2.0)
    if p.is_alive():
        p.kill()
        p.join(2.0)
