"""HostRoles: a start that fails, or a node configured again, leaves none of the earlier
role processes running (a node agent stays up after a failed CONFIGURE); a silent worker
that is already gone is not signalled. The builder and workers here are stand-ins that
report ready and wait for their stop event."""

from __future__ import annotations

import multiprocessing
import sys
import time

import pytest
import zmq

import farm.host_roles
from farm.host_roles import HostRoles
from trigger_sim.config import load_config
from trigger_sim.errors import TriggerSimError


def _fake_builder(config, collector_endpoint, ready, stop) -> None:
    ready.put(("builder", {"fragments": "tcp://127.0.0.1:1", "work": "tcp://127.0.0.1:2", "control": "tcp://127.0.0.1:3"}))
    stop.wait(60)


def _fake_worker(identity, config, triton_url, work, collector, ready, stop, shm_prefix) -> None:
    if identity.endswith("worker-1.0"):
        sys.exit(3)  # a worker that cannot start
    ready.put((identity, {}))
    stop.wait(60)


def _ready_worker(identity, config, triton_url, work, collector, ready, stop, shm_prefix) -> None:
    ready.put((identity, {}))
    stop.wait(60)


@pytest.fixture
def roles(monkeypatch):
    monkeypatch.setattr(farm.host_roles, "run_builder", _fake_builder)
    ctx = zmq.Context()
    r = HostRoles(load_config(), ctx, None, prefix="node1/")
    yield r
    r.stop()
    ctx.term()


def _alive(r: HostRoles) -> list[str]:
    return [p.name for p in [r.builder, *r.workers.values(), *r.retired] if p is not None and p.is_alive()]


def test_a_failed_start_leaves_no_role_running(roles: HostRoles, monkeypatch) -> None:
    monkeypatch.setattr(farm.host_roles, "run_worker", _fake_worker)
    with pytest.raises(TriggerSimError, match="worker-1.0 exited with code 3"):
        roles.start_node("tcp://127.0.0.1:4", None, 3)
    assert _alive(roles) == []


def test_a_node_configured_again_stops_the_last_builder_and_workers(roles: HostRoles, monkeypatch) -> None:
    monkeypatch.setattr(farm.host_roles, "run_worker", _ready_worker)
    roles.start_node("tcp://127.0.0.1:4", None, 2)
    first = [roles.builder, *roles.workers.values()]
    roles.start_node("tcp://127.0.0.1:4", None, 2)
    assert [p.name for p in first if p.is_alive()] == []
    assert roles.builder.is_alive() and all(p.is_alive() for p in roles.workers.values())


def _exit_at_once() -> None:
    pass


def test_killing_a_silent_worker_that_is_already_gone_does_not_raise(roles: HostRoles) -> None:
    p = multiprocessing.get_context("spawn").Process(target=_exit_at_once, name="node1/worker-0.0")
    p.start()
    p.join(30)  # exited and reaped (as is_alive() in another thread would do): its pid is free
    roles.workers[0], roles.identities[0] = p, "node1/worker-0.0"
    is_alive = iter([True, False])
    p.is_alive = lambda: next(is_alive, False)  # it exits between the check and the signal
    roles.kill_silent("node1/worker-0.0", 3.0)
    assert roles.killed_silent == ["node1/worker-0.0"]


def test_a_late_ready_of_the_last_runs_worker_is_not_taken_for_the_builders(roles: HostRoles, monkeypatch) -> None:
    monkeypatch.setattr(farm.host_roles, "run_worker", _ready_worker)
    roles.start_node("tcp://127.0.0.1:4", None, 1)
    roles.stop()
    roles.ready.put(("node1/worker-0.3", {"problem": "late"}))  # a replacement that became ready just before STOP
    time.sleep(0.5)  # the queue's feeder thread has put it
    endpoints = roles.start_node("tcp://127.0.0.1:4", None, 1)
    assert endpoints["control"] == "tcp://127.0.0.1:3"
    assert "late" in roles.problems
