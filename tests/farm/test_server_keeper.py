"""The keeper restarts a dead local server on its ports and counts it; a failed restart is a problem, tried again."""

from __future__ import annotations

import time

from farm.server_keeper import ServerKeeper
from trigger_sim.errors import TritonStartError


class FakeServer:
    def __init__(self, url: str, fail_starts: int = 0):
        self.grpc_url = url
        self.running = True
        self.fail_starts = fail_starts
        self.start_timeout_s = 1.0
        self.restarted = 0

    def is_running(self) -> bool:
        return self.running

    def restart(self) -> None:
        if self.fail_starts:
            self.fail_starts -= 1
            raise TritonStartError("tritonserver not ready after 1 s:\nlog tail")
        self.restarted += 1
        self.running = True


def wait_for(condition, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False


def test_dead_server_is_restarted_and_counted():
    a, b = FakeServer("a:1"), FakeServer("b:2")
    keeper = ServerKeeper([a, b], period_s=0.01)
    keeper.start()
    try:
        a.running = False
        assert wait_for(lambda: keeper.restarts["a:1"] == 1)
    finally:
        keeper.stop()
    assert keeper.restarts == {"a:1": 1, "b:2": 0} and len(keeper.restart_s) == 1 and not keeper.problems


def test_failed_restart_is_a_problem_and_is_tried_again():
    a = FakeServer("a:1", fail_starts=1)
    keeper = ServerKeeper([a], period_s=0.01, retry_s=0.05)
    keeper.start()
    try:
        a.running = False
        assert wait_for(lambda: keeper.restarts["a:1"] == 1)
    finally:
        keeper.stop()
    assert len(keeper.problems) == 1 and "did not restart" in keeper.problems[0]


def test_stopped_keeper_restarts_nothing():
    a = FakeServer("a:1")
    keeper = ServerKeeper([a], period_s=0.01)
    keeper.start()
    keeper.stop()
    a.running = False
    time.sleep(0.05)
    assert a.restarted == 0 and not keeper.is_alive()
