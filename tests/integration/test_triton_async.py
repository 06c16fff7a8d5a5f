"""Asynchronous requests (`TritonBackend.submit`, tritonclient's async gRPC call) on the real
server: several in flight at once, each answer bit-exact and its own, graph-sized ones through a
shared-memory region held per request and released by the callback, deadlines and an absent
server as failed futures, nothing left in /dev/shm."""

from __future__ import annotations

import numpy as np
import pytest

from farm.triton_server import free_port
from tests.integration.test_models_on_triton import graph_inputs
from tests.integration.test_triton_roundtrip import backend as tagger
from tests.integration.test_triton_shm import files, shm_client
from trigger_sim.errors import InferenceTimeout, InferenceUnavailable
from trigger_sim.models import jet_tagger
from trigger_sim.models.jet_tagger import LocalJetTagger
from trigger_sim.models.registry import EDGE_CLASSIFIER, model_spec

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
WAIT_S = 30.0  # a future's result is never waited for without a limit


def test_many_requests_in_flight_each_get_their_own_answer(triton_server):
    client = tagger(triton_server.grpc_url)
    local = LocalJetTagger()
    rng = np.random.default_rng(3)
    inputs = [rng.normal(size=(int(rng.integers(1, 17)), jet_tagger.N_FEATURES)).astype(np.float32) for _ in range(40)]
    try:
        futures = [client.submit(x, timeout_s=10.0) for x in inputs]  # all sent before any is read
        for x, future in zip(inputs, futures):
            assert future.result(timeout=WAIT_S).tobytes() == local.infer(x).tobytes()
    finally:
        client.close()


def test_graphs_in_flight_at_once_each_hold_a_region_until_their_answer(triton_server):
    client = shm_client(triton_server.grpc_url)
    client.allow_in_flight(4)
    local = model_spec(EDGE_CLASSIFIER).make_local()
    graphs = [graph_inputs(l1_id) for l1_id in range(4)]
    prefix = client.shared_memory.prefix
    try:
        assert len(client.shared_memory.pool.slots) >= 4 + 2
        futures = [client.submit(g, timeout_s=30.0) for g in graphs]
        # each request holds a region until its callback: in use, or already answered
        assert sum(s.in_use for s in client.shared_memory.pool.slots) + sum(f.done() for f in futures) >= 4
        for g, future in zip(graphs, futures):
            assert future.result(timeout=WAIT_S).tobytes() == local.infer(g).tobytes()
        pool = client.shared_memory.pool
        assert client.shared_memory.calls == 4 and pool.none_free == 0
        assert not any(s.in_use for s in pool.slots) and pool.quarantined == 0  # released by the callbacks
    finally:
        client.close()
    assert not files(prefix)


def test_a_missed_deadline_fails_the_future_and_quarantines_its_region(triton_server):
    client = shm_client(triton_server.grpc_url)
    graph = graph_inputs(0)
    prefix = client.shared_memory.prefix
    try:
        client.infer(graph, timeout_s=30.0)  # region created and registered: the next call only sends
        future = client.submit(graph, timeout_s=1e-4)
        with pytest.raises(InferenceTimeout):
            future.result(timeout=WAIT_S)
        pool = client.shared_memory.pool
        deadline_passed = pool.quarantined == 1 and not any(s.in_use for s in pool.slots)
        assert deadline_passed, [(s.in_use, s.quarantined_until_ns) for s in pool.slots]
    finally:
        client.close()
    assert not files(prefix)


def test_an_absent_server_fails_the_future():
    client = tagger(f"127.0.0.1:{free_port()}")
    try:
        future = client.submit(np.zeros((2, jet_tagger.N_FEATURES), np.float32), timeout_s=2.0)
        with pytest.raises(InferenceUnavailable):
            future.result(timeout=WAIT_S)
    finally:
        client.close()
