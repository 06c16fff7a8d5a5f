"""A pool of real Triton servers: failover when one is killed, its restart on the same
ports and its return to the pool, HAProxy in front of two servers, per-model deadlines,
and the farm with two local servers of which one is SIGKILLed mid-run."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from farm.fault_scenarios import local_server_killed
from farm.grpc_proxy import GrpcProxy, haproxy_binary
from farm.server_keeper import ServerKeeper
from farm.triton_server import TritonServer
from trigger_sim import clock
from trigger_sim.config import MODEL_REPOSITORY, FarmConfig, ModelDeadlines, with_overrides
from trigger_sim.inference.factory import build_inference, close_inference, prepare_inference
from trigger_sim.inference.service import FALLBACK, TRITON
from trigger_sim.models import jet_tagger

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
JETS = np.random.default_rng(3).normal(size=(8, jet_tagger.N_FEATURES)).astype(np.float32)


@pytest.fixture
def tagger_repository(tmp_path) -> Path:
    """A repository with the jet tagger only: a server is ready in well under a second."""
    root = tmp_path / "repository"
    root.mkdir()
    (root / "jet_tagger").symlink_to(MODEL_REPOSITORY / "jet_tagger", target_is_directory=True)
    return root


@contextlib.contextmanager
def servers(repository: Path, n: int) -> Iterator[list[TritonServer]]:
    """`n` servers loading at once; all stopped at the end."""
    started = [TritonServer(repository, start_timeout_s=60) for _ in range(n)]
    try:
        for s in started:
            s.launch()
        for s in started:
            s.wait_ready()
        yield started
    finally:
        for s in started:
            s.stop()


def tagger_config(*urls: str, **inference) -> FarmConfig:
    return with_overrides(FarmConfig(), inference={"servers": urls, "models": ("jet_tagger",), "breaker_open_ms": 100.0,
                                                   "shared_memory": "off", **inference})


def call(service) -> str:
    return service.infer(JETS, clock.now_ns() + 2 * clock.NS_PER_S).path


def test_failover_restart_and_rejoin(tagger_repository):
    """Server A is SIGKILLed mid-run: every call is still answered by Triton (B takes them);
    the keeper restarts A on its ports and A gets calls again once a probe finds it."""
    with servers(tagger_repository, 2) as (a, b):
        keeper = ServerKeeper([a, b], period_s=0.05)
        keeper.start()
        services = build_inference(tagger_config(a.grpc_url, b.grpc_url), f"{a.grpc_url},{b.grpc_url}")
        tagger = services["jet_tagger"]
        pool = tagger.remote.pool
        try:
            assert prepare_inference(services) == ""
            paths = [call(tagger) for _ in range(40)]
            assert pool.counters()[a.grpc_url]["calls"] > 0 and pool.counters()[b.grpc_url]["calls"] > 0
            a.proc.kill()  # the server process alone, as an OOM kill would
            killed_at = time.monotonic()
            calls_at_kill = pool.counters()[a.grpc_url]["calls"] - pool.counters()[a.grpc_url]["failures"]
            rejoined_after_s = None
            while time.monotonic() - killed_at < 30:
                paths.append(call(tagger))
                answered_by_a = pool.counters()[a.grpc_url]["calls"] - pool.counters()[a.grpc_url]["failures"]
                if answered_by_a > calls_at_kill:
                    rejoined_after_s = time.monotonic() - killed_at
                    break
                time.sleep(0.005)
            for _ in range(20):
                paths.append(call(tagger))
        finally:
            keeper.stop()
            close_inference(services)
        assert keeper.restarts[a.grpc_url] == 1 and keeper.restarts[b.grpc_url] == 0
        assert keeper.restart_cpu_s[0] > 0.05  # its start's CPU until ready, measured
        assert rejoined_after_s is not None, "the restarted server never answered a call again"
        assert set(paths) == {TRITON}, f"calls fell back while the other server was healthy: {paths.count(FALLBACK)}"
        assert tagger.counters.fallback_calls == 0


def test_a_short_reconnect_backoff_brings_a_restarted_server_back_at_once(tagger_repository):
    """A is SIGKILLed and started again 2.3 s later. With gRPC's own backoff its clients try
    again about 1, 2.6 and 5.2 s after the loss (+-20 %), so it would answer about 2.5 s after
    it is ready; with `inference.reconnect_backoff_ms` = 100 they try every 0.1 s, and the
    next probe finds it within a fraction of a second."""
    with servers(tagger_repository, 2) as (a, b):
        services = build_inference(tagger_config(a.grpc_url, b.grpc_url, reconnect_backoff_ms=100.0),
                                   f"{a.grpc_url},{b.grpc_url}")
        tagger = services["jet_tagger"]
        pool = tagger.remote.pool

        def answered_by_a() -> int:
            return pool.counters()[a.grpc_url]["calls"] - pool.counters()[a.grpc_url]["failures"]

        try:
            assert prepare_inference(services) == ""
            for _ in range(20):
                call(tagger)
            before = answered_by_a()
            a.proc.kill()
            killed_at = time.monotonic()
            while time.monotonic() - killed_at < 2.3:
                call(tagger)
                time.sleep(0.01)
            a.restart()
            ready_at = time.monotonic()
            while answered_by_a() == before and time.monotonic() - ready_at < 10:
                call(tagger)
                time.sleep(0.01)
            back_after_ready_s = time.monotonic() - ready_at
        finally:
            close_inference(services)
        assert answered_by_a() > before, "the restarted server never answered a call again"
        assert back_after_ready_s < 0.8


def test_per_model_deadlines_on_a_slow_server(slow_triton_server):
    """The slow repository's tagger answers after 50 ms: with a 20 ms deadline it falls back
    on a timeout, with 300 ms Triton answers; the other model's deadline is its own."""
    url = slow_triton_server.grpc_url
    for deadline_ms, path in ((20.0, FALLBACK), (300.0, TRITON)):
        config = with_overrides(FarmConfig(), inference={"triton_url": url, "models": ("jet_tagger",), "shared_memory": "off",
                                                         "deadline_ms": ModelDeadlines(jet_tagger=deadline_ms, edge_classifier=7.0)})
        services = build_inference(config, url)
        try:
            assert services["jet_tagger"].timeout_s == deadline_ms / 1e3
            assert services["edge_classifier"].timeout_s == 0.007
            outcome = services["jet_tagger"].infer(JETS, clock.now_ns() + 2 * clock.NS_PER_S)
        finally:
            close_inference(services)
        assert outcome.path == path, (deadline_ms, outcome)
        if path == FALLBACK:
            assert outcome.reason == "timeout" and 15 < outcome.remote_ms < 45


@pytest.mark.skipif(haproxy_binary() is None, reason="haproxy is not installed (apt-get install haproxy; .ci/run installs it)")
def test_haproxy_in_front_of_two_servers(tagger_repository):
    """One URL, two servers behind it: both get requests; when one dies, errors are those of
    the one address, and after the proxy's health check every call is answered again."""
    with servers(tagger_repository, 2) as (a, b), GrpcProxy([(a.grpc_url, a.http_url), (b.grpc_url, b.http_url)]) as proxy:
        services = build_inference(tagger_config(proxy.url), proxy.url)
        tagger = services["jet_tagger"]
        try:
            assert prepare_inference(services) == ""
            before = [call(tagger) for _ in range(60)]
            served = [_successes(s) for s in (a, b)]
            a.kill()
            killed_at = time.monotonic()
            during = [call(tagger) for _ in range(30)]
            time.sleep(max(0.0, 0.5 - (time.monotonic() - killed_at)))  # a few health checks of 100 ms
            after = [call(tagger) for _ in range(60)]
            counters = tagger.remote.pool.counters()
        finally:
            close_inference(services)
        assert set(before) == {TRITON} and min(served) > 0, f"requests per server through the proxy: {served}"
        assert set(after) == {TRITON}
        assert list(counters) == [proxy.url]  # the client sees one address; its failures are that address's
        assert tagger.counters.fallback_calls == during.count(FALLBACK)  # failures only while the proxy learnt of the death
        assert counters[proxy.url]["failures"] <= during.count(FALLBACK)


def _successes(server: TritonServer) -> int:
    from trigger_sim.inference.triton_client import TritonBackend

    client = TritonBackend(server.grpc_url, "jet_tagger", jet_tagger.INPUT_NAME, jet_tagger.OUTPUT_NAME)
    try:
        return int((client.inference_stats().get("success") or {}).get("count", 0))
    finally:
        client.close()


def test_farm_with_two_local_servers_one_killed():
    """The acceptance run, short: two local servers, one SIGKILLed at 30 % of the events. Nothing
    lost, both servers answered, the killed one restarted; an event falls back only when its
    call's deadline could not be met."""
    result = local_server_killed(240, rate_hz=40.0)
    s = result.summary
    servers_ = s["inference"]["servers"]
    assert s["events"]["lost"] == 0 and not s["problems"], s["problems"]
    assert len(servers_) == 2 and all(v["calls"] > 0 for v in servers_.values()), servers_
    assert servers_[result.notes["killed"]]["restarts"] >= 1
    assert set(s["inference"]["fallback_reasons"]) <= {"timeout", "no_time"}, s["inference"]["fallback_reasons"]
    assert s["inference"]["models"]["edge_classifier"]["deadline_ms"] == 250.0
