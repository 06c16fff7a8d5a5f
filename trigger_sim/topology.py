"""Where the farm's roles run: a topology file (TOML) loaded into frozen dataclasses.

A topology names the hosts, the address each is reached at, and the roles placed on it:

    [farm]
    config = "farm.toml"          # the farm configuration (relative: to this file); default: built-in
    curve_keys_dir = "keys"       # made by `trigger-sim keys DIR`; required when the farm spans hosts
    control_port = 5570           # run control listens here on its host's address
    heartbeat_timeout_s = 3.0     # a role silent this long is declared dead
    triton_urls = []              # Triton servers the topology does not start (host:port each); else a Triton host's

    [hosts.daq]                   # one table per host; the name is what `--host` gives
    address = "10.1.0.1"
    run_control = true            # run control, the assignment service and the collector
    readout = true                # the Level-1 trigger and every readout source

    [hosts.node1]
    address = "10.1.0.2"
    workers = 4                   # a node: one event builder and this many HLT workers

    [hosts.gpu1]
    address = "10.1.0.4"
    triton_grpc_port = 8001       # a Triton server on this host (0: none)
    triton_servers = 1            # servers on this host, on ports 8001, 8002, ... (a pool)

Exactly one host runs run control; at least one is a node; at most one runs the readout
(the sources are not yet split over several readout hosts). Unknown keys are rejected
with the file and key named, as in the farm configuration.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trigger_sim.config import FarmConfig, from_mapping, is_loopback, read_toml, with_overrides
from trigger_sim.errors import ConfigError
from trigger_sim.liveness import HEARTBEAT_S

DEFAULT_CONTROL_PORT = 5570
DEFAULT_HEARTBEAT_TIMEOUT_S = 3.0
MIN_HEARTBEAT_TIMEOUT_S = 4 * HEARTBEAT_S  # several missed heartbeats
ONE_HOST = "localhost"


@dataclass(frozen=True)
class HostSpec:
    """One host and the roles it runs."""

    name: str
    address: str
    run_control: bool = False
    readout: bool = False
    workers: int = 0  # > 0: a node (an event builder for this many workers on the host)
    triton_grpc_port: int = 0  # > 0: a Triton server listening on this port
    triton_servers: int = 1  # Triton servers on this host, on gRPC ports triton_grpc_port, +1, ... (a pool)

    def __post_init__(self) -> None:
        if not self.address.strip():
            raise ConfigError(f"hosts.{self.name}.address is empty: give the address the other hosts reach it at")
        if self.workers < 0:
            raise ConfigError(f"hosts.{self.name}.workers must be >= 0, got {self.workers}")
        if not 0 <= self.triton_grpc_port < 65536:
            raise ConfigError(f"hosts.{self.name}.triton_grpc_port must be a TCP port (1-65535) or 0 for none")
        if self.triton_servers < 1 or self.triton_grpc_port + self.triton_servers - 1 > 65535:
            raise ConfigError(f"hosts.{self.name}.triton_servers must be >= 1, with ports triton_grpc_port + i "
                              f"up to 65535; got {self.triton_servers}")

    @property
    def triton_ports(self) -> tuple[int, ...]:
        """The gRPC ports of this host's Triton servers (none without triton_grpc_port)."""
        return tuple(self.triton_grpc_port + i for i in range(self.triton_servers)) if self.triton_grpc_port else ()

    @property
    def is_node(self) -> bool:
        return self.workers > 0

    @property
    def roles(self) -> tuple[str, ...]:
        """The roles placed on this host, in start order."""
        flags = (("triton", self.triton_grpc_port > 0), ("run_control", self.run_control),
                 ("node", self.is_node), ("readout", self.readout))
        return tuple(name for name, on in flags if on)


@dataclass(frozen=True)
class FarmSection:
    """The [farm] table: settings that concern every host."""

    config: str = ""  # farm configuration file; empty: the built-in default
    curve_keys_dir: str = ""
    control_port: int = DEFAULT_CONTROL_PORT
    heartbeat_timeout_s: float = DEFAULT_HEARTBEAT_TIMEOUT_S
    triton_urls: tuple[str, ...] = ()  # Triton servers outside the topology's hosts (host:port each), a pool

    def __post_init__(self) -> None:
        if not 0 < self.control_port < 65536:
            raise ConfigError(f"farm.control_port must be a TCP port (1-65535), got {self.control_port}")
        if not self.heartbeat_timeout_s >= MIN_HEARTBEAT_TIMEOUT_S:
            raise ConfigError(f"farm.heartbeat_timeout_s must be >= {MIN_HEARTBEAT_TIMEOUT_S:g} (roles send a heartbeat "
                              f"every {HEARTBEAT_S:g} s; a shorter limit would declare healthy roles dead)")


@dataclass(frozen=True)
class Topology:
    """Every host of the farm and its roles; `source` names the file it came from."""

    hosts: tuple[HostSpec, ...]
    config: str = ""
    curve_keys_dir: str = ""
    control_port: int = DEFAULT_CONTROL_PORT
    heartbeat_timeout_s: float = DEFAULT_HEARTBEAT_TIMEOUT_S
    source: str = "<built-in one-host topology>"
    external_triton_urls: tuple[str, ...] = ()  # [farm] triton_urls

    def __post_init__(self) -> None:
        where = self.source
        if not self.hosts:
            raise ConfigError(f"{where}: no [hosts.NAME] tables: name at least one host")
        names = [h.name for h in self.hosts]
        if len(set(names)) != len(names):
            raise ConfigError(f"{where}: host names repeat: {names}")
        _exactly_one(where, [h.name for h in self.hosts if h.run_control], "run_control = true")
        if not self.nodes:
            raise ConfigError(f"{where}: no node: give at least one host workers = N (N > 0)")
        readout = [h.name for h in self.hosts if h.readout]
        if len(readout) > 1:
            raise ConfigError(f"{where}: readout = true on {readout}: the readout runs on one host for now; keep it on one")
        if not readout:
            raise ConfigError(f"{where}: no host has readout = true: place the readout on one host")
        triton = [h.triton_grpc_port for h in self.hosts if h.triton_grpc_port]
        if len(triton) > 1:
            raise ConfigError(f"{where}: triton_grpc_port on {len(triton)} hosts: one Triton host is supported for now")
        if triton and self.external_triton_urls:
            raise ConfigError(f"{where}: farm.triton_urls and a host's triton_grpc_port both name Triton servers: "
                              "use one (the servers the topology starts, or those it reaches by URL)")
        for url in self.external_triton_urls:
            host, _, port = url.rpartition(":")
            if not host or not port.isdigit():
                raise ConfigError(f"{where}: farm.triton_urls entry {url!r} is not host:port")
        if self.spans_hosts and not self.curve_keys_dir:
            raise ConfigError(f"{where}: the farm spans several addresses, so its links need CURVE: run "
                              "`trigger-sim keys DIR` and set farm.curve_keys_dir = DIR")

    # -- queries ------------------------------------------------------------------------
    def host(self, name: str) -> HostSpec:
        for h in self.hosts:
            if h.name == name:
                return h
        raise ConfigError(f"{self.source}: no host named {name!r}; hosts are {[h.name for h in self.hosts]}")

    @property
    def nodes(self) -> tuple[HostSpec, ...]:
        return tuple(h for h in self.hosts if h.is_node)

    @property
    def run_control_host(self) -> HostSpec:
        return next(h for h in self.hosts if h.run_control)

    @property
    def readout_host(self) -> HostSpec:
        return next(h for h in self.hosts if h.readout)

    @property
    def triton_host(self) -> HostSpec | None:
        return next((h for h in self.hosts if h.triton_grpc_port), None)

    @property
    def spans_hosts(self) -> bool:
        """True when some role is reached over a non-loopback address (CURVE required)."""
        return any(not is_loopback(h.address) for h in self.hosts)

    @property
    def control_endpoint(self) -> str:
        return tcp_endpoint(self.run_control_host.address, self.control_port)

    @property
    def triton_urls(self) -> tuple[str, ...]:
        """host:port of every Triton server the workers use: the Triton host's, or [farm] triton_urls."""
        h = self.triton_host
        return tuple(f"{_url_host(h.address)}:{port}" for port in h.triton_ports) if h else self.external_triton_urls

    @property
    def triton_url(self) -> str:
        """The Triton servers as the workers take them (host:port, comma-separated for a
        pool), or "" when the topology names none."""
        return ",".join(self.triton_urls)


def tcp_endpoint(address: str, port: int) -> str:
    return f"tcp://{_url_host(address)}:{port}"


def _url_host(address: str) -> str:
    try:
        return f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
    except ValueError:
        return address


def _exactly_one(where: str, names: list[str], what: str) -> None:
    if len(names) != 1:
        raise ConfigError(f"{where}: exactly one host must have {what}, found {len(names)} ({names})")


def load_topology(path: str | Path) -> Topology:
    """Read a topology file; relative paths in it are taken relative to its folder."""
    path = Path(path)
    data = read_toml(path)
    source = str(path)
    unknown = sorted(set(data) - {"farm", "hosts"})
    if unknown:
        raise ConfigError(f"{source}: unknown key '{unknown[0]}' (known keys here: farm, hosts)")
    farm = _table(data, "farm", source)
    section = from_mapping(FarmSection, farm, source, "farm.")
    hosts_table = _table(data, "hosts", source)
    hosts = []
    for name, table in hosts_table.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: key 'hosts.{name}': expected a table [hosts.{name}]")
        if "name" in table:
            raise ConfigError(f"{source}: unknown key 'hosts.{name}.name' (the table's name is the host's name)")
        hosts.append(from_mapping(HostSpec, {"name": name, **table}, source, f"hosts.{name}."))

    def resolve(p: str) -> str:
        return str((path.parent / p).resolve()) if p and not Path(p).is_absolute() else p

    try:
        return Topology(tuple(hosts), resolve(section.config), resolve(section.curve_keys_dir), section.control_port,
                        section.heartbeat_timeout_s, source, tuple(section.triton_urls))
    except ConfigError:
        raise
    except ValueError as err:
        raise ConfigError(f"{source}: {err}") from err


def _table(data: dict[str, Any], key: str, source: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: key '{key}': expected a table [{key}]")
    return value


def one_host_topology(workers: int, triton_grpc_port: int = 0, config: str = "",
                      control_port: int = DEFAULT_CONTROL_PORT, triton_urls: tuple[str, ...] = ()) -> Topology:
    """The built-in topology of a single-host run: every role on loopback, no CURVE needed;
    `triton_urls`: servers the run reaches (started by the caller, or external)."""
    host = HostSpec(ONE_HOST, "127.0.0.1", run_control=True, readout=True, workers=workers,
                    triton_grpc_port=triton_grpc_port)
    return Topology((host,), config=config, control_port=control_port, external_triton_urls=tuple(triton_urls))


def with_hosts(topology: Topology, **changes: dict[str, Any]) -> Topology:
    """`topology` with some hosts' fields replaced (tests: addresses chosen at run time)."""
    hosts = tuple(dataclasses.replace(h, **changes.get(h.name, {})) for h in topology.hosts)
    return dataclasses.replace(topology, hosts=hosts)


def config_for_host(config: FarmConfig, topology: Topology, host: str) -> FarmConfig:
    """The farm configuration as the roles on `host` use it: sockets bound on the host's
    address, CURVE with the topology's keys, the topology's Triton server (none: every
    model runs in the workers), and the node's worker count."""
    spec = topology.host(host)
    network: dict[str, Any] = {"bind_address": spec.address}
    if topology.curve_keys_dir:
        network.update(curve=True, curve_keys_dir=topology.curve_keys_dir)
    urls = topology.triton_urls
    inference: dict[str, Any] = ({"triton_url": urls[0], "servers": ()} if len(urls) == 1 else
                                 {"triton_url": "", "servers": urls} if urls else {"models": ()})
    return with_overrides(config, network=network, inference=inference,
                          worker={"count": spec.workers} if spec.workers else {})

