"""Tests of trigger_sim.inference.pooled_backend: the retry chain over fake servers."""

from __future__ import annotations

import concurrent.futures
import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_sim.errors import InferenceTimeout, InferenceUnavailable
from trigger_sim.inference.pooled_backend import PooledBackend
from trigger_sim.inference.server_pool import ServerPool

ANSWER = np.ones((1, 1), np.float32)


class FakeServer:
    """Answers, or fails with `error`; records the timeouts it was given."""

    def __init__(self, error: Exception | None = None, asynchronous: bool = True):
        self.error = error
        self.timeouts: list[float] = []
        if asynchronous:
            self.submit = self._submit

    def infer(self, inputs, timeout_s):
        self.timeouts.append(timeout_s)
        if self.error is not None:
            raise self.error
        return ANSWER

    def _submit(self, inputs, timeout_s):
        f = concurrent.futures.Future()
        # answered from another thread, as a gRPC callback is
        threading.Thread(target=lambda: _settle(f, self, inputs, timeout_s)).start()
        return f

    def close(self):
        pass


def _settle(f, server, inputs, timeout_s):
    try:
        f.set_result(server.infer(inputs, timeout_s))
    except Exception as err:
        f.set_exception(err)


def backend(servers: dict[str, FakeServer], threshold: int = 1) -> PooledBackend:
    pool = ServerPool(servers, threshold, 10**9)
    for a in servers:
        pool.set_models(a, ["m"])
    return PooledBackend("m", servers, pool)


def call(b: PooledBackend, mode: str, timeout_s: float = 0.5):
    if mode == "infer":
        return b.infer(None, timeout_s)
    return b.submit(None, timeout_s).result(timeout=5)


@pytest.mark.parametrize("mode", ["infer", "submit"])
@pytest.mark.parametrize("asynchronous", [True, False])
def test_failed_server_call_goes_to_the_other(mode, asynchronous):
    dead, alive = FakeServer(InferenceUnavailable("down"), asynchronous), FakeServer(None, asynchronous)
    b = backend({"a:1": dead, "b:2": alive})
    for _ in range(4):
        assert call(b, mode) is ANSWER
    counters = b.pool.counters()
    assert counters["a:1"]["failures"] == 1 == counters["a:1"]["calls"]  # out after its failure: not tried again
    assert counters["b:2"]["calls"] == 4
    assert alive.timeouts[0] <= 0.5
    b.close()


@pytest.mark.parametrize("mode", ["infer", "submit"])
def test_every_server_failing_raises_the_last_error(mode):
    b = backend({"a:1": FakeServer(InferenceUnavailable("a down")), "b:2": FakeServer(InferenceTimeout("b slow"))})
    with pytest.raises((InferenceUnavailable, InferenceTimeout)):
        call(b, mode)
    with pytest.raises(InferenceUnavailable, match="no healthy server"):
        call(b, mode)
    assert all(s.outstanding == 0 for s in b.pool.servers.values())


@pytest.mark.parametrize("mode", ["infer", "submit"])
def test_unexpected_client_error_is_an_unavailable_server(mode):
    b = backend({"a:1": FakeServer(RuntimeError("bug")), "b:2": FakeServer()})
    assert call(b, mode) is ANSWER  # whichever server the pool picks first


@given(st.lists(st.booleans(), min_size=1, max_size=4), st.sampled_from(["infer", "submit"]))
@settings(max_examples=60, deadline=None)
def test_chain_tries_each_server_at_most_once_and_answers_if_one_is_up(up, mode):
    servers = {f"s{i}:1": FakeServer(None if ok else InferenceUnavailable("down")) for i, ok in enumerate(up)}
    b = backend(servers, threshold=5)
    if any(up):
        assert call(b, mode) is ANSWER
    else:
        with pytest.raises(InferenceUnavailable):
            call(b, mode)
    assert all(len(s.timeouts) <= 1 for s in servers.values())
    assert all(s.outstanding == 0 for s in b.pool.servers.values())


def test_no_time_left_means_no_attempt():
    server = FakeServer()
    b = backend({"a:1": server})
    with pytest.raises(InferenceTimeout):
        b.infer(None, 0.0)
    assert server.timeouts == []


def test_shared_memory_counters_add_up_over_servers():
    class Transport:
        def __init__(self, calls):
            self.calls, self.disabled = calls, ""
            self.pool = type("P", (), {"quarantined": 1, "none_free": 2})()

    a, b_ = FakeServer(), FakeServer()
    a.shared_memory, b_.shared_memory = Transport(3), Transport(4)
    b = backend({"a:1": a, "b:2": b_})
    t = b.shared_memory
    assert (t.calls, t.pool.quarantined, t.pool.none_free, t.disabled) == (7, 2, 4, "")


def test_requests_in_flight_are_reserved_on_every_server():
    """Event slots: any request may go to any server, so each member keeps room for all of
    them (a member without per-request resources is left alone)."""
    reserved = {}
    a, b_, c = FakeServer(), FakeServer(), FakeServer()
    a.allow_in_flight = lambda n: reserved.__setitem__("a:1", n)
    b_.allow_in_flight = lambda n: reserved.__setitem__("b:2", n)
    backend({"a:1": a, "b:2": b_, "c:3": c}).allow_in_flight(4)
    assert reserved == {"a:1": 4, "b:2": 4}
