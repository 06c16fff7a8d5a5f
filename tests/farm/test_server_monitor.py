"""Tests of farm.server_monitor's thread with a fake server and a fake Triton client: it
leaves a loaded model alone, reloads a dead one, and survives any exception."""

from __future__ import annotations

import logging
import time

import pytest

import farm.server_monitor as server_monitor
from farm.server_monitor import ModelMonitor
from trigger_sim.errors import InferenceTimeout, InferenceUnavailable
from trigger_sim.models.registry import EDGE_CLASSIFIER

DEAD_STUB = "[StatusCode.INTERNAL] Stub process 'edge_classifier_0_0' is not healthy."


class FakeServer:
    grpc_url = "127.0.0.1:1"

    def __init__(self):
        self.reloaded: list[str] = []

    def is_live(self, timeout_s: float = 0.5) -> bool:
        return True

    def reload_model(self, name: str, timeout_s: float = 30.0) -> None:
        self.reloaded.append(name)


class FakeBackend:
    """The model's probe answers and statistics, from `behaviour(round) -> 'ok' | 'timeout' |
    'dead' | 'crash'`; `completing` says whether other requests finish meanwhile."""

    behaviour = staticmethod(lambda n: "ok")
    completing = True

    made: list["FakeBackend"] = []

    def __init__(self, *args, **kwargs):
        self.probes = 0
        self.done = 0
        FakeBackend.made.append(self)

    def infer(self, inputs, timeout_s):
        self.probes += 1
        kind = FakeBackend.behaviour(self.probes)
        if FakeBackend.completing:
            self.done += 3
        if kind == "timeout":
            raise InferenceTimeout("no answer within 1000 ms")
        if kind == "dead":
            raise InferenceUnavailable(DEAD_STUB)
        if kind == "crash":
            raise RuntimeError(f"client bug in probe {self.probes}")
        self.done += 1

    def inference_stats(self, timeout_s: float = 2.0):
        busy_ns = self.done * 800_000_000  # 0.8 s per request: a loaded GNN
        return {"success": {"count": str(self.done)}, "compute_infer": {"count": str(self.done), "ns": str(busy_ns)}}

    def close(self):
        pass


@pytest.fixture
def fake_backend(monkeypatch):
    monkeypatch.setattr(server_monitor, "TritonBackend", FakeBackend)
    FakeBackend.behaviour = staticmethod(lambda n: "ok")
    FakeBackend.completing = True
    FakeBackend.made = []
    return FakeBackend


def run_rounds(monitor: ModelMonitor, rounds: int, timeout_s: float = 30.0) -> None:
    """Run the monitor until it has probed `rounds` times (or `timeout_s` passed)."""
    monitor.start()
    try:
        deadline = time.monotonic() + timeout_s
        while sum(b.probes for b in FakeBackend.made) < rounds and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)  # the last round's decision
    finally:
        monitor.stop()


def test_a_loaded_model_whose_probes_time_out_is_not_reloaded(fake_backend):
    """Every probe times out, but the model completes other requests all along."""
    fake_backend.behaviour = staticmethod(lambda n: "ok" if n == 1 else "timeout")
    server = FakeServer()
    monitor = ModelMonitor(server, EDGE_CLASSIFIER, period_s=0.01)
    run_rounds(monitor, 10)
    assert server.reloaded == [] and monitor.reloads == 0


def test_a_model_that_completes_nothing_is_reloaded(fake_backend):
    fake_backend.behaviour = staticmethod(lambda n: "ok" if n == 1 else "timeout")
    fake_backend.completing = False
    server = FakeServer()
    monitor = ModelMonitor(server, EDGE_CLASSIFIER, period_s=0.01)
    run_rounds(monitor, 4)
    assert server.reloaded[:1] == [EDGE_CLASSIFIER]
    assert any("no answer" in text for text in monitor.probe_failures)


def test_a_dead_stub_is_reloaded_at_once(fake_backend):
    fake_backend.behaviour = staticmethod(lambda n: "dead" if n == 2 else "ok")
    server = FakeServer()
    monitor = ModelMonitor(server, EDGE_CLASSIFIER, period_s=0.01)
    run_rounds(monitor, 3)
    assert server.reloaded == [EDGE_CLASSIFIER]


def test_any_exception_is_logged_once_per_kind_and_the_loop_goes_on(fake_backend, caplog):
    fake_backend.behaviour = staticmethod(lambda n: "crash" if n <= 3 else ("dead" if n == 5 else "ok"))
    server = FakeServer()
    monitor = ModelMonitor(server, EDGE_CLASSIFIER, period_s=0.01)
    with caplog.at_level(logging.WARNING, logger="farm.server_monitor"):
        run_rounds(monitor, 8)
    crashes = [r.getMessage() for r in caplog.records if "client bug" in r.getMessage()]
    assert len(crashes) == 1 and "RuntimeError" in crashes[0]  # three crashes of one kind, logged once
    assert server.reloaded == [EDGE_CLASSIFIER]  # the thread lived on to see the dead stub


def test_a_server_that_is_down_is_not_reported_on_the_terminal(fake_backend, caplog):
    """While the server is down its statistics cannot be read: the workers' breakers handle
    that; the monitor says nothing (a user reads such lines as errors of the farm)."""
    def down(self, timeout_s: float = 2.0):
        raise InferenceUnavailable("failed to connect to all addresses")

    fake_backend.inference_stats = down
    monitor = ModelMonitor(FakeServer(), (EDGE_CLASSIFIER,), period_s=0.01)
    with caplog.at_level(logging.WARNING):
        run_rounds(monitor, 5)
    assert not [r for r in caplog.records if "statistics" in r.getMessage()]
