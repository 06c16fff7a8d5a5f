"""Restarts the local Triton servers the farm started when one dies, on the same ports.

As the node agent restarts a worker that exits, this thread restarts a local server whose
process is gone (killed, crashed): same gRPC, HTTP and metrics ports, so every worker's
pool finds it again after a successful probe. Each restart is counted per address. A
restart that fails (the server does not become ready) is a problem of the run and is tried
again after `retry_s`; the workers meanwhile use the other servers or their fallback.
Restarting runs in this thread, not in run control's loop: a start takes seconds, and
the collector must keep reading meanwhile. A server dies with the thread that started it
(`TritonServer.launch`): a restarted one lives as long as this thread, which the
run stops only when the servers are stopped.
"""

from __future__ import annotations

import logging
import threading
import time

from farm.procfs import session_cpu_s
from farm.triton_server import TritonServer
from trigger_sim.errors import TritonStartError
from trigger_sim.log_once import OnceLog

CHECK_PERIOD_S = 0.1
RETRY_S = 2.0
log = logging.getLogger(__name__)


class ServerKeeper(threading.Thread):
    def __init__(self, servers: list[TritonServer], period_s: float = CHECK_PERIOD_S, retry_s: float = RETRY_S):
        super().__init__(name="server-keeper", daemon=True)
        self.servers = list(servers)
        self.period_s = period_s
        self.retry_s = retry_s
        self.restarts = {s.grpc_url: 0 for s in self.servers}
        self.restart_s: list[float] = []  # how long each successful restart took, until ready
        # the CPU each one took until ready (the server and its backend stubs, s): on a loaded
        # host a start takes more wall time than alone, and its CPU competes with the farm's
        self.restart_cpu_s: list[float | None] = []  # None: a server without a process to read
        self.problems: list[str] = []
        self._next_try = {s.grpc_url: 0.0 for s in self.servers}
        self._stop_event = threading.Event()
        self._once = OnceLog(log)

    def run(self) -> None:
        while not self._stop_event.wait(self.period_s):
            for server in self.servers:
                if self._stop_event.is_set():
                    return
                try:
                    self._keep(server)
                except Exception as err:  # a keeper that dies silently would leave the server dead
                    self._once.exception(err, f"server keeper, {server.grpc_url}")

    def _keep(self, server: TritonServer) -> None:
        address = server.grpc_url
        if server.is_running() or time.monotonic() < self._next_try[address]:
            return
        start = time.monotonic()
        try:
            server.restart()
        except TritonStartError as err:
            self._next_try[address] = time.monotonic() + self.retry_s
            self.problems.append(f"local server {address} died and did not restart: {str(err).splitlines()[0]}"[:300])
            return
        self.restarts[address] += 1
        self.restart_s.append(time.monotonic() - start)
        proc = getattr(server, "proc", None)
        self.restart_cpu_s.append(session_cpu_s(proc.pid) if proc is not None else None)

    def stop(self) -> None:
        """Stop watching (before the servers are stopped, so none is restarted at the end)."""
        self._stop_event.set()
        if self.is_alive():
            self.join(timeout=max(s.start_timeout_s for s in self.servers) + 10.0 if self.servers else 1.0)
