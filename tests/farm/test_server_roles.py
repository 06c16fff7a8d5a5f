"""ServerRoles: the servers a host starts are started together and stopped together, also
when one fails to start; the keeper's and monitors' figures reach the summary."""

from __future__ import annotations

import pytest

import farm.server_roles
from farm.server_roles import ServerRoles
from trigger_sim.config import load_config, with_overrides
from trigger_sim.errors import TritonStartError


class FakeServer:
    def __init__(self, url: str, fails: bool = False):
        self.grpc_url, self.fails = url, fails
        self.launched = self.stopped = 0
        self.start_timeout_s = 1.0

    def launch(self) -> None:
        self.launched += 1

    def wait_ready(self) -> None:
        if self.fails:
            raise TritonStartError(f"{self.grpc_url} not ready")

    def is_running(self) -> bool:
        return True

    def stop(self) -> None:
        self.stopped += 1


def no_models():
    return with_overrides(load_config(None), inference={"models": ()})


def test_a_server_that_fails_to_start_stops_every_launched_one():
    servers = [FakeServer("a:1"), FakeServer("b:2", fails=True)]
    roles = ServerRoles(no_models(), servers)
    with pytest.raises(TritonStartError, match="b:2"):
        roles.start()
    assert [s.launched for s in servers] == [1, 1]
    assert [s.stopped for s in servers] == [1, 1]
    assert roles.keeper is None


def test_started_servers_are_kept_and_stopped_once():
    servers = [FakeServer("a:1"), FakeServer("b:2")]
    roles = ServerRoles(no_models(), servers)
    roles.start()
    assert roles.keeper is not None and roles.restarts == {"a:1": 0, "b:2": 0}
    assert roles.monitors == []  # no model served: nothing to watch
    assert roles.stop_keeping() == []
    roles.stop()
    roles.stop()  # safe to repeat
    assert [s.stopped for s in servers] == [1, 1]
    assert roles.model_reloads == 0 and roles.probe_failures == []


def test_no_servers_no_keeper():
    roles = ServerRoles(no_models(), [])
    roles.start()
    assert roles.keeper is None and roles.restarts == {} and roles.stop_keeping() == []
    roles.stop()


class FailingMonitor:
    def __init__(self, server, models, client_options=None):
        pass

    def start(self) -> None:
        raise RuntimeError("can't start new thread")


def test_a_monitor_that_does_not_start_stops_the_servers_and_the_keeper(monkeypatch):
    monkeypatch.setattr(farm.server_roles, "ModelMonitor", FailingMonitor)
    servers = [FakeServer("a:1")]
    roles = ServerRoles(with_overrides(load_config(None), inference={"models": ("jet_tagger",)}), servers)
    with pytest.raises(RuntimeError, match="new thread"):
        roles.start()
    assert servers[0].stopped == 1
    assert roles.keeper is not None and not roles.keeper.is_alive()
