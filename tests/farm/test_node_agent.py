"""NodeAgent: a Triton host whose server failed to start starts it again at the next
CONFIGURE (the agent stays up after a failed one), with stand-in servers."""

from __future__ import annotations

import pytest

import farm.node_agent
from farm.node_agent import NodeAgent
from trigger_sim.config import load_config
from trigger_sim.errors import TritonStartError
from trigger_sim.topology import HostSpec, Topology


class FakeServerRoles:
    starts: list[str] = []

    def __init__(self, config, servers):
        self.servers = servers

    def start(self) -> None:
        FakeServerRoles.starts.append("start")
        if len(FakeServerRoles.starts) == 1:
            raise TritonStartError("tritonserver not ready")

    def stop(self) -> None:
        pass


class FakeServer:
    grpc_url = "127.0.0.1:18001"


def test_a_triton_server_that_failed_to_start_is_started_at_the_next_configure(monkeypatch) -> None:
    FakeServerRoles.starts = []
    monkeypatch.setattr(farm.node_agent, "ServerRoles", FakeServerRoles)
    monkeypatch.setattr(farm.node_agent, "local_server", lambda config, **kw: FakeServer())
    topology = Topology((HostSpec("triton1", "127.0.0.1", triton_grpc_port=18001),
                         HostSpec("node1", "127.0.0.1", run_control=True, readout=True, workers=1)))
    agent = NodeAgent(topology, "triton1", load_config())
    try:
        with pytest.raises(TritonStartError):
            agent.configure({"collector": "tcp://127.0.0.1:1"})
        out = agent.configure({"collector": "tcp://127.0.0.1:1"})
        assert FakeServerRoles.starts == ["start", "start"]
        assert out["triton_url"] == "127.0.0.1:18001"
    finally:
        agent.close()
