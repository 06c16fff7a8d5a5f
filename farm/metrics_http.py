"""Serve one process's Prometheus registry on its port (`trigger_sim.metrics` defines them).

Each farm process calls `serve` itself, after it has started: the processes are spawned by
multiprocessing, so a server started by run control would not exist in them. The HTTP
server runs in a daemon thread of that process and ends with it.
"""

from __future__ import annotations

import socket
import sys
import threading
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, disable_created_metrics, start_http_server

from trigger_sim.config import MonitoringConfig
from trigger_sim.errors import TriggerSimError
from trigger_sim.metrics import port_for

disable_created_metrics()  # no *_created series: half the samples, and nothing the dashboard uses


class Endpoint:
    """A running /metrics endpoint; `close` stops it (a process's exit also does)."""

    def __init__(self, server: WSGIServer, thread: threading.Thread, url: str):
        self.server, self.thread, self.url = server, thread, url

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=2.0)


def serve(registry: CollectorRegistry, config: MonitoringConfig, role: str) -> Endpoint | None:
    """Start serving `registry` on the port of `role` (`trigger_sim.metrics.port_for`); None
    when monitoring is off, or (in a farm process, which carries on without metrics) when
    the port cannot be bound or the role has none: said on stderr."""
    if not config.enabled:
        return None
    try:
        port = port_for(config.base_port, role)
    except ValueError as err:
        print(f"trigger-sim {role}: metrics endpoint not started: {err}", file=sys.stderr)
        return None
    try:
        server, thread = start_http_server(port, addr=config.address, registry=registry)
    except OSError as err:
        print(f"trigger-sim {role}: metrics endpoint {config.address}:{port} not started: {err}", file=sys.stderr)
        return None
    return Endpoint(server, thread, f"http://{config.address}:{port}/metrics")


def check_ports_free(config: MonitoringConfig, ports: dict[str, int]) -> None:
    """Fail before anything starts when a metrics port is taken, naming it and what to do."""
    for role, port in ports.items():
        with socket.socket(socket.AF_INET6 if ":" in config.address else socket.AF_INET) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((config.address, port))
            except OSError as err:
                raise TriggerSimError(f"monitoring: port {port} for the {role}'s metrics at {config.address} cannot be used ({err}): "
                                      f"choose another monitoring.base_port (it needs {len(ports)} consecutive free ports) "
                                      f"or 0 to turn metrics off") from err
