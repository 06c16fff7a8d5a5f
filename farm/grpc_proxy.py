"""HAProxy as a gRPC load balancer in front of several Triton servers (as SuperSONIC puts
Envoy in front of one server per GPU): the farm then knows one address.

HTTP/2 on both sides (gRPC), least-connections balancing, a health check of every server's
`/v2/health/ready` (HTTP/1.1 on its HTTP port) every `check_ms`, and connection failures
retried on another server. What the proxy cannot hide: a request already on a server that
dies fails (the client sees an error of the proxy's one address), and shared memory does
not work through it (registrations and requests may reach different servers): set
`inference.shared_memory = "off"`.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from farm.lifecycle import server_launch
from farm.triton_server import free_port
from trigger_sim.errors import TriggerSimError

CONFIG = """\
global
    maxconn 1024
defaults
    mode http
    timeout connect 500ms
    timeout client 60s
    timeout server 60s
    retries 2
    option redispatch 1
    retry-on conn-failure empty-response
frontend grpc_in
    bind 127.0.0.1:{port} proto h2
    default_backend tritons
backend tritons
    balance leastconn
    option httpchk GET /v2/health/ready
    default-server inter {check_ms}ms fastinter {check_ms}ms downinter {check_ms}ms fall 1 rise 1
{servers}
"""


def haproxy_binary() -> str | None:
    """The haproxy executable, or None when it is not installed."""
    return shutil.which("haproxy") or next((p for p in ("/usr/sbin/haproxy",) if Path(p).exists()), None)


def proxy_config(port: int, servers: Sequence[tuple[str, str]], check_ms: int = 100) -> str:
    """HAProxy's configuration: listen on 127.0.0.1:`port`; `servers` are (gRPC address,
    HTTP address) pairs, the second for the ready check."""
    lines = [f"    server s{i} {grpc} proto h2 check addr {http.rsplit(':', 1)[0]} port {http.rsplit(':', 1)[1]} check-proto h1"
             for i, (grpc, http) in enumerate(servers)]
    return CONFIG.format(port=port, check_ms=check_ms, servers="\n".join(lines))


class GrpcProxy:
    """A running haproxy in front of `servers`; use as a context manager; `url` is its address."""

    def __init__(self, servers: Sequence[tuple[str, str]], check_ms: int = 100, start_timeout_s: float = 10.0):
        self.binary = haproxy_binary()
        if self.binary is None:
            raise TriggerSimError("haproxy is not installed (apt-get install haproxy)")
        self.servers = list(servers)
        self.check_ms = check_ms
        self.start_timeout_s = start_timeout_s
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self._workdir = Path(tempfile.mkdtemp(prefix="tsim-haproxy-"))

    @property
    def url(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> "GrpcProxy":
        self.port = free_port()
        path = self._workdir / "haproxy.cfg"
        path.write_text(proxy_config(self.port, self.servers, self.check_ms))
        check = subprocess.run([self.binary, "-c", "-q", "-f", str(path)], capture_output=True, text=True, timeout=10)
        if check.returncode != 0:
            raise TriggerSimError(f"haproxy refused its configuration {path}: {check.stdout}{check.stderr}")
        self._log = open(self._workdir / "haproxy.log", "ab")
        argv, how = server_launch([self.binary, "-db", "-f", str(path)])
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, **how)
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.stop()
                raise TriggerSimError(f"haproxy exited with code {self.proc.returncode if self.proc else '?'} while starting")
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", self.port)) == 0:
                    return self
            time.sleep(0.05)
        self.stop()
        raise TriggerSimError(f"haproxy not listening on {self.url} after {self.start_timeout_s:g} s")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)  # hard stop: connections closed at once
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
            self.proc = None
            self._log.close()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def __enter__(self) -> "GrpcProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
