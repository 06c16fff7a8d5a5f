"""The Triton servers a host starts for the farm, kept up while the run lasts.

The servers are launched together (they load their models at the same time) and each is
stopped again also when another fails to start. While the run lasts a server whose
process dies is restarted on its ports (`farm.server_keeper`), and each model is probed
and reloaded when its stub dies (`farm.server_monitor`). The one-host run (its
`inference.local_servers`) and the Triton host of a farm across hosts both use it.
"""

from __future__ import annotations

from farm.server_device import local_server
from farm.server_keeper import ServerKeeper
from farm.server_monitor import ModelMonitor
from farm.triton_server import TritonServer
from trigger_sim.config import FarmConfig
from trigger_sim.inference.channel_options import client_options


class ServerRoles:
    """`servers` (not yet started) to start and keep; `watched`: the servers whose models
    are probed and reloaded (default: `servers`; a test may hand its own server here)."""

    def __init__(self, config: FarmConfig, servers: list[TritonServer], watched: list[TritonServer] | None = None):
        self.config = config
        self.servers = list(servers)
        self.watched = list(servers if watched is None else watched)
        self.keeper: ServerKeeper | None = None
        self.monitors: list[ModelMonitor] = []
        self._launched: list[TritonServer] = []

    def start(self) -> None:
        """Launch every server, wait until each is ready, then keep and watch them. Called from
        the thread that lives as long as the servers (a server dies with the thread that
        started it)."""
        try:
            for server in self.servers:
                self._launched.append(server)
                server.launch()
            for server in self.servers:
                server.wait_ready()
            if self.servers:
                self.keeper = ServerKeeper(self.servers)
                self.keeper.start()
            models = self.config.inference.models
            for server in (self.watched if models else []):
                monitor = ModelMonitor(server, models, client_options=client_options(self.config))
                monitor.start()
                self.monitors.append(monitor)
        except BaseException:  # also a keeper or monitor that does not start: no server is left running
            self.stop()
            raise

    def stop_keeping(self) -> list[str]:
        """No restart from now on (the summary is being made); the problems of failed restarts."""
        if self.keeper is None:
            return []
        self.keeper.stop()
        return list(self.keeper.problems)

    def stop(self) -> None:
        """Stop watching, keeping, then the servers. Safe to repeat."""
        for monitor in self.monitors:
            monitor.stop()
        self.stop_keeping()
        for server in self._launched:
            server.stop()
        self._launched = []

    @property
    def restarts(self) -> dict[str, int]:
        return self.keeper.restarts if self.keeper is not None else {}

    @property
    def model_reloads(self) -> int:
        return sum(m.reloads for m in self.monitors)

    @property
    def probe_failures(self) -> list[str]:
        return [f for m in self.monitors for f in m.probe_failures]


def one_host_servers(config: FarmConfig, watched: list[TritonServer] | None = None) -> tuple[ServerRoles, str]:
    """The Triton servers of a run on one host (not yet started) and how the workers reach
    them: "none" (every model runs in the workers), "external" (the configured addresses)
    or "local" (`inference.local_servers` started here). `watched`: a caller's own server
    to probe and repair instead (tests)."""
    if not config.inference.models:
        return ServerRoles(config, [], watched), "none"
    if config.inference.server_addresses:
        return ServerRoles(config, [], watched), "external"
    local = [local_server(config, metrics_port=config.monitoring.triton_metrics_port(i))
             for i in range(config.inference.local_servers)]
    return ServerRoles(config, local, watched), "local"


def server_urls(config: FarmConfig, servers: ServerRoles, mode: str) -> tuple[str, ...]:
    """The gRPC addresses the workers use (known for local servers once they run)."""
    if mode == "external":
        return tuple(config.inference.server_addresses)
    return tuple(s.grpc_url for s in servers.servers) if mode == "local" else ()
