"""Tests of trigger_sim.topology: the topology file, its checks, the built-in one-host topology."""

from __future__ import annotations

from pathlib import Path

import pytest

from trigger_sim.errors import ConfigError
from trigger_sim.topology import load_topology, one_host_topology

GOOD = """
[farm]
curve_keys_dir = "keys"
control_port = 5600

[hosts.daq]
address = "10.1.0.1"
run_control = true
readout = true

[hosts.node1]
address = "10.1.0.2"
workers = 2

[hosts.node2]
address = "10.1.0.3"
workers = 3

[hosts.gpu]
address = "10.1.0.4"
triton_grpc_port = 8001
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "topology.toml"
    path.write_text(text)
    return path


def test_a_four_host_farm_loads_with_its_roles(tmp_path):
    topo = load_topology(write(tmp_path, GOOD))
    assert [h.name for h in topo.nodes] == ["node1", "node2"]
    assert topo.host("node2").workers == 3
    assert topo.host("daq").roles == ("run_control", "readout")
    assert topo.host("gpu").roles == ("triton",)
    assert topo.control_endpoint == "tcp://10.1.0.1:5600"
    assert topo.triton_url == "10.1.0.4:8001"
    assert topo.curve_keys_dir == str(tmp_path / "keys")  # relative to the file
    assert topo.spans_hosts


@pytest.mark.parametrize("text, words", [
    (GOOD.replace("workers = 2", "workers = 2\nwrokers = 1"), ["topology.toml", "hosts.node1.wrokers"]),
    (GOOD + "\n[extra]\n", ["unknown key 'extra'"]),
    (GOOD.replace("control_port = 5600", "control_port = 5600\nport = 1"), ["farm.port"]),
    (GOOD.replace('curve_keys_dir = "keys"', ""), ["CURVE", "trigger-sim keys"]),
    (GOOD.replace("run_control = true", ""), ["run_control = true", "found 0"]),
    (GOOD.replace("workers = 2", "workers = 0").replace("workers = 3", "workers = 0"), ["no node"]),
    (GOOD.replace("workers = 2", 'workers = "two"'), ["hosts.node1.workers", "integer"]),
    (GOOD.replace('address = "10.1.0.2"', 'address = ""'), ["hosts.node1.address"]),
    (GOOD.replace("readout = true", ""), ["readout"]),
    (GOOD.replace("[hosts.node1]", "[hosts.node1]\nreadout = true"), ["readout = true on"]),
    (GOOD.replace("[hosts.node1]", "[hosts.node1]\nname = 'x'"), ["hosts.node1.name"]),
    (GOOD.replace("control_port = 5600", 'control_port = 5600\ntriton_urls = ["h:1"]'), ["farm.triton_urls", "triton_grpc_port"]),
    (GOOD.replace("triton_grpc_port = 8001", "").replace("control_port = 5600", 'control_port = 5600\ntriton_urls = ["h1"]'),
     ["farm.triton_urls", "'h1'", "host:port"]),
    (GOOD.replace("triton_grpc_port = 8001", "triton_grpc_port = 8001\ntriton_servers = 0"), ["hosts.gpu.triton_servers"]),
])
def test_bad_topologies_are_refused_naming_file_and_key(tmp_path, text, words):
    with pytest.raises(ConfigError) as err:
        load_topology(write(tmp_path, text))
    for word in words:
        assert word in str(err.value)


def test_unknown_host_is_named():
    with pytest.raises(ConfigError, match="no host named 'nope'"):
        one_host_topology(2).host("nope")


def test_one_host_topology_needs_no_curve():
    topo = one_host_topology(4, triton_grpc_port=8001)
    (host,) = topo.hosts
    assert host.roles == ("triton", "run_control", "node", "readout")
    assert not topo.spans_hosts and topo.curve_keys_dir == ""
    assert topo.triton_url == "127.0.0.1:8001"


def test_checked_in_example_loads():
    topo = load_topology(Path(__file__).resolve().parents[2] / "configs" / "topology.toml")
    assert len(topo.nodes) >= 2


def test_each_host_binds_its_own_address_with_curve_and_uses_the_triton_host(tmp_path):
    from trigger_sim.config import FarmConfig
    from trigger_sim.topology import config_for_host

    topo = load_topology(write(tmp_path, GOOD))
    for name in ("daq", "node1", "gpu"):
        c = config_for_host(FarmConfig(), topo, name)
        assert c.network.bind_address == topo.host(name).address
        assert c.network.curve_enabled and c.network.curve_keys_dir == str(tmp_path / "keys")
        assert c.inference.triton_url == "10.1.0.4:8001"
        assert not c.inference.uses_shared_memory(c.inference.triton_url)  # no shared memory across hosts
    assert config_for_host(FarmConfig(), topo, "node2").worker.count == 3
    no_triton = load_topology(write(tmp_path, GOOD.replace("triton_grpc_port = 8001", "")))
    assert config_for_host(FarmConfig(), no_triton, "node1").inference.models == ()  # every model in the workers


def test_heartbeat_timeout_below_several_heartbeats_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="farm.heartbeat_timeout_s"):
        load_topology(write(tmp_path, GOOD.replace("control_port = 5600", "control_port = 5600\nheartbeat_timeout_s = 0.5")))


def test_a_triton_host_with_several_servers_is_a_pool_on_consecutive_ports(tmp_path):
    from trigger_sim.config import FarmConfig
    from trigger_sim.topology import config_for_host

    topo = load_topology(write(tmp_path, GOOD.replace("triton_grpc_port = 8001", "triton_grpc_port = 8001\ntriton_servers = 3")))
    assert topo.host("gpu").triton_ports == (8001, 8002, 8003)
    assert topo.triton_url == "10.1.0.4:8001,10.1.0.4:8002,10.1.0.4:8003"
    c = config_for_host(FarmConfig(), topo, "node1")
    assert c.inference.server_addresses == ("10.1.0.4:8001", "10.1.0.4:8002", "10.1.0.4:8003")


def test_servers_outside_the_topology_are_reached_by_url(tmp_path):
    from trigger_sim.config import FarmConfig
    from trigger_sim.topology import config_for_host

    text = GOOD.replace("triton_grpc_port = 8001", "").replace(
        "control_port = 5600", 'control_port = 5600\ntriton_urls = ["10.2.0.1:8001", "10.2.0.2:8001"]')
    topo = load_topology(write(tmp_path, text))
    assert topo.triton_host is None and topo.triton_url == "10.2.0.1:8001,10.2.0.2:8001"
    c = config_for_host(FarmConfig(), topo, "node2")
    assert c.inference.server_addresses == ("10.2.0.1:8001", "10.2.0.2:8001") and c.inference.models
