"""NodeAgent: a Triton host whose server failed to start starts it again at the next
CONFIGURE (the agent stays up after a failed one), with stand-in servers; a role that dies
is told to run control once; worker restarts are reported per run and counted once; run
control on a port another process holds fails with the port named."""

from __future__ import annotations

import pytest

import farm.node_agent
from farm.node_agent import NodeAgent
from farm.triton_server import free_port
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


class FakeProcess:
    def __init__(self, name: str, exitcode: int | None):
        self.name, self.exitcode = name, exitcode


@pytest.mark.parametrize("role", ["builder", "readout"])
def test_a_role_that_exits_while_running_is_told_to_run_control_once(role) -> None:
    topology = Topology((HostSpec("node1", "127.0.0.1", run_control=True, readout=True, workers=1),))
    agent = NodeAgent(topology, "node1", load_config())
    sent: list[tuple[bytes, dict]] = []
    agent.send = lambda kind, meta: sent.append((kind, meta))
    try:
        setattr(agent.roles, role, FakeProcess(f"node1/{role}", None))
        agent.report_dead_roles()  # not running yet: nothing to tell
        for event in ("configure", "start"):
            agent.state.apply(event)
        agent.report_dead_roles()  # alive
        assert sent == []
        getattr(agent.roles, role).exitcode = -9
        agent.report_dead_roles()
        agent.report_dead_roles()
        assert sent == [(b"ROLE_DIED", {"role": role, "exit_code": -9})]
    finally:
        setattr(agent.roles, role, None)
        agent.close()


def test_a_role_stopped_by_its_host_is_no_death() -> None:
    topology = Topology((HostSpec("node1", "127.0.0.1", run_control=True, readout=True, workers=1),))
    agent = NodeAgent(topology, "node1", load_config())
    sent: list = []
    agent.send = lambda kind, meta: sent.append(kind)
    try:
        for event in ("configure", "start"):
            agent.state.apply(event)
        agent.roles.readout = FakeProcess("node1/readout", 0)
        agent.roles.stop_input.set()  # the readout was told to stop: its exit is expected
        agent.report_dead_roles()
        assert sent == []
    finally:
        agent.roles.readout = None
        agent.close()


def test_worker_restarts_are_reported_per_run_and_counted_once_by_run_control() -> None:
    """The agent reports the restarts of this run (in every heartbeat and in STOPPED), none
    of an earlier run's; run control adds each new restart to worker_restarts_total once."""
    from farm.run_control import RunControl
    from trigger_sim.metrics import SupervisorMetrics

    topology = Topology((HostSpec("node1", "127.0.0.1", run_control=True, readout=True, workers=1),), control_port=free_port())
    config = load_config()
    agent = NodeAgent(topology, "node1", config)
    sent: list[tuple[bytes, dict]] = []
    agent.send = lambda kind, meta: sent.append((kind, meta))
    metrics = SupervisorMetrics(config.worker.budget_ms, "none")
    rc = RunControl(topology, config, None, metrics=metrics)
    try:
        for event in ("configure", "start"):
            agent.state.apply(event)
        agent.roles.restarts = 2  # an earlier run's
        agent.handle(b"STOP", {})
        assert sent[-1][0] == b"STOPPED" and agent.run_restarts == 0
        agent.roles.restarts = 5  # three in this run
        host = rc.hosts["node1"]
        for reported in (1, 1, agent.run_restarts, 2):
            rc._count_restarts(host, reported)
        assert metrics.registry.get_sample_value("trigger_sim_worker_restarts_total") == 3
    finally:
        rc.close()
        agent.close()


@pytest.mark.parametrize("stopping", [False, True])
def test_a_host_silent_while_it_stops_its_roles_is_not_declared_dead(stopping) -> None:
    """An agent stopping its roles (seconds of joins) sends no heartbeat meanwhile: run control,
    having sent it STOP, must not declare it dead (its events would go to MissingData and its
    real outcomes be dropped as stale); a host silent while running is declared dead."""
    from farm.run_control import RunControl
    from trigger_sim import clock

    topology = Topology((HostSpec("node1", "127.0.0.1", run_control=True, readout=True, workers=1),), control_port=free_port())
    rc = RunControl(topology, load_config(), None)
    try:
        rc.running = True
        rc.liveness.heard("node1", clock.now_ns() - int(3600 * clock.NS_PER_S))  # silent for an hour
        if stopping:
            rc.stopping.add("node1")
        rc._check_liveness()
        assert rc.hosts["node1"].lost is (not stopping)
        assert any("declared dead" in p for p in rc.problems) is (not stopping)
    finally:
        rc.close()


def test_run_control_on_a_port_already_taken_says_which_and_what_to_do() -> None:
    import zmq

    from farm.run_control import RunControl
    from trigger_sim.errors import TriggerSimError

    ctx = zmq.Context()
    holder = ctx.socket(zmq.ROUTER)
    port = holder.bind_to_random_port("tcp://127.0.0.1")
    try:
        topology = Topology((HostSpec("node1", "127.0.0.1", run_control=True, readout=True, workers=1),), control_port=port)
        with pytest.raises(TriggerSimError, match=rf"cannot listen on tcp://127.0.0.1:{port}.*control_port"):
            RunControl(topology, load_config(), None)
    finally:
        holder.close(linger=0)
        ctx.term()


def test_run_control_waits_for_each_nodes_builder_statistics_before_it_stops_reading() -> None:
    """A builder's statistics are its last message, on another connection than its agent's
    STOPPED: run control keeps reading after the stop until they are in, even with every
    accept decided (else the summary's builder counters would be empty now and then)."""
    from farm.run_control import RunControl
    from trigger_sim.id_ranges import IdRanges

    topology = Topology((HostSpec("node1", "127.0.0.1", run_control=True, readout=True, workers=1),), control_port=free_port())
    rc = RunControl(topology, load_config(), None)
    try:
        assert not rc.all_answered()  # no END from the readout yet
        rc.collector.l1_ids, rc.collector.end = IdRanges(), {"l1_accepted": 0}  # an END: no accepts, all decided
        assert not rc.all_answered()  # the builder's statistics are still to come
        rc.hosts["node1"].builder_stats = {"dispatched": 0}
        assert rc.all_answered()
        rc.hosts["node1"].builder_stats = {}
        rc.builders_dead.add("node1")  # a dead builder sends nothing more: not waited for
        assert rc.all_answered()
    finally:
        rc.close()
