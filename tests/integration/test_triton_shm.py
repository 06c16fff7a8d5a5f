"""Graph-sized requests through system shared memory on the real Triton server: bit-exact
answers, a slot abandoned at its deadline never carries a later event's answer, a server
restart (registrations lost) recovers by itself, and nothing is left in /dev/shm."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from farm.triton_server import TritonServer
from trigger_sim.config import MODEL_REPOSITORY
from trigger_sim.errors import InferenceError
from trigger_sim.inference.triton_client import TritonBackend
from trigger_sim.inference.triton_shm import SharedMemoryTransport, remove_regions, unregister_regions
from trigger_sim.models import edge_classifier
from trigger_sim.models.registry import EDGE_CLASSIFIER, model_spec
from tests.integration.test_models_on_triton import graph_inputs

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
SPEC = model_spec(EDGE_CLASSIFIER)


def shm_client(url: str) -> TritonBackend:
    prefix = f"tsim_test_{uuid.uuid4().hex[:8]}_"
    return TritonBackend(url, EDGE_CLASSIFIER, SPEC.input_types, SPEC.output_name, shm_prefix=prefix,
                         output_bytes=SPEC.output_bytes)


def files(prefix: str) -> list[Path]:
    return list(Path("/dev/shm").glob(prefix + "*"))


def registered(client: TritonBackend) -> list[str]:
    status = client.client.get_system_shared_memory_status(as_json=True).get("regions", {})
    names = status.keys() if isinstance(status, dict) else [r["name"] for r in status]
    return [n for n in names if n.startswith(client.shared_memory.prefix)]


@pytest.fixture(scope="module")
def graphs():
    return [graph_inputs(l1_id) for l1_id in range(4)]


@pytest.fixture(scope="module")
def local():
    return SPEC.make_local()


def test_shared_memory_answers_bit_exact_and_cleans_up(triton_server, graphs, local):
    client = shm_client(triton_server.grpc_url)
    prefix = client.shared_memory.prefix
    try:
        for inputs in graphs:
            served = client.infer(inputs, timeout_s=30.0)
            assert served.shape == (len(inputs[edge_classifier.EDGE_INDEX]),)
            assert served.tobytes() == local.infer(inputs).tobytes()
        assert client.shared_memory.calls == len(graphs)
        assert files(prefix) and registered(client)
    finally:
        client.close()
    assert not files(prefix), "regions left in /dev/shm"
    probe = shm_client(triton_server.grpc_url)
    try:
        probe.shared_memory.prefix = prefix
        assert not registered(probe), "regions left registered with the server"
    finally:
        probe.close()


def test_small_requests_stay_in_the_grpc_message(triton_server, local):
    client = shm_client(triton_server.grpc_url)
    try:
        probe = SPEC.probe()
        assert client.infer(probe, timeout_s=10.0).tobytes() == local.infer(probe).tobytes()
        assert client.shared_memory.calls == 0 and not files(client.shared_memory.prefix)
    finally:
        client.close()


def served_counts(client: TritonBackend) -> tuple[int, int, int]:
    """The server's own count of the edge classifier's requests: (succeeded, failed, executions)."""
    stats = client.client.get_inference_statistics(model_name=EDGE_CLASSIFIER, as_json=True)["model_stats"]
    totals = [0, 0, 0]
    for version in stats:
        totals[0] += int(version["inference_stats"].get("success", {}).get("count", 0))
        totals[1] += int(version["inference_stats"].get("fail", {}).get("count", 0))
        totals[2] += int(version.get("execution_count", 0))
    return totals[0], totals[1], totals[2]


def settled_counts(client: TritonBackend) -> tuple[int, int, int]:
    """`served_counts` once they stop changing (the server counts a request just after answering it)."""
    counts = served_counts(client)
    for _ in range(100):
        time.sleep(0.3)
        again = served_counts(client)
        if again == counts:
            break
        counts = again
    return counts


def test_an_abandoned_slot_never_answers_for_a_later_event(triton_server, graphs, local):
    """Requests abandoned at their deadline leave their slots in quarantine; every answer that
    does arrive is that event's own, bit for bit, while the server finishes the abandoned
    work: its statistics count every abandoned request as run to completion."""
    client = shm_client(triton_server.grpc_url)
    sent: list[float] = []  # the deadline of every request that left for the server
    grpc_infer = client.client.infer

    def counting_infer(*args, **kwargs):
        sent.append(kwargs.get("client_timeout"))
        return grpc_infer(*args, **kwargs)

    client.client.infer = counting_infer
    try:
        before = settled_counts(client)
        for inputs in graphs:  # slot 0 created and registered; each graph's first forward (slower) done
            client.infer(inputs, timeout_s=30.0)
        answer_s = []
        for inputs in graphs:
            start = time.monotonic()
            client.infer(inputs, timeout_s=30.0)
            answer_s.append(time.monotonic() - start)
        # A third of the quickest answer: time enough for a request to reach the server (about
        # a millisecond), none for the server to answer it.
        abandon_s = max(min(answer_s) / 3, 0.002)
        pool = client.shared_memory.pool
        shm_timeouts = abandoned = abandoned_sent = answered = 0
        for round_ in range(3):
            for i, inputs in enumerate(graphs):
                if (i + round_) % 2 == 0:
                    none_free, n_sent = pool.none_free, len(sent)
                    with pytest.raises(InferenceError):
                        client.infer(inputs, timeout_s=abandon_s)
                    abandoned += 1
                    abandoned_sent += len(sent) > n_sent
                    shm_timeouts += pool.none_free == none_free  # it had a slot: that slot is quarantined
                    continue
                served = client.infer(inputs, timeout_s=30.0)
                assert served.tobytes() == local.infer(inputs).tobytes()
                answered += 1
        assert shm_timeouts > 0 and pool.quarantined == shm_timeouts
        assert pool.none_free > 0  # with every slot quarantined, requests went in the gRPC message
        assert abandoned_sent == abandoned == 6, f"{abandoned - abandoned_sent} abandoned requests never left the client"
        # The server ran every request, the abandoned ones included, each once and to the end.
        expected = 2 * len(graphs) + answered + abandoned
        deadline = time.monotonic() + 60.0
        while served_counts(client)[0] - before[0] < expected and time.monotonic() < deadline:
            time.sleep(0.1)
        after = settled_counts(client)
        ran, failed, executions = (a - b for a, b in zip(after, before))
        assert (ran, failed, executions) == (expected, 0, expected), (
            f"server: {ran} requests run, {failed} failed, {executions} executions; "
            f"client: {2 * len(graphs) + answered} answered, {abandoned} abandoned at {abandon_s * 1e3:.3g} ms")
    finally:
        client.close()
    assert not files(client.shared_memory.prefix)


def test_server_restart_loses_registrations_and_the_client_recovers(graphs, local):
    with TritonServer(MODEL_REPOSITORY, start_timeout_s=90) as server:
        client = shm_client(server.grpc_url)
        try:
            assert client.infer(graphs[0], timeout_s=30.0).tobytes() == local.infer(graphs[0]).tobytes()
            server.kill()
            server.start(same_ports=True)
            answers, failures = [], 0
            for inputs in graphs * 2:
                try:
                    answers.append((client.infer(inputs, timeout_s=30.0), inputs))
                except InferenceError:
                    failures += 1  # the first call after the restart may find its region unregistered
            assert failures <= 1 and len(answers) >= 2 * len(graphs) - 1
            assert all(a.tobytes() == local.infer(i).tobytes() for a, i in answers)
            assert client.shared_memory.calls >= len(answers) - client.shared_memory.pool.none_free
        finally:
            client.close()
    assert not files(client.shared_memory.prefix)


class _UnseenRegions(SharedMemoryTransport):
    """Registers a key the server cannot open: a server without this host's /dev/shm."""

    def _prepare(self, plan, deadline_ns):
        in_name, _ = self.names(plan.slot)
        self.client.register_system_shared_memory(in_name, f"/tsim_no_such_region_{uuid.uuid4().hex}", 1 << 16,
                                                  client_timeout=self._left_s(deadline_ns))


def test_a_server_that_cannot_see_our_regions_gets_the_message_instead(triton_server, graphs, local):
    client = shm_client(triton_server.grpc_url)
    client.shared_memory = _UnseenRegions(client.client, client.shared_memory.prefix, slots=5)
    try:
        for inputs in graphs + graphs[:1]:
            assert client.infer(inputs, timeout_s=30.0).tobytes() == local.infer(inputs).tobytes()
        transport = client.shared_memory
        assert transport.calls == 0 and "refused 3 shared-memory registrations" in transport.disabled
        assert transport.pool.quarantined == 3  # no more tries once it is off
    finally:
        client.close()


def test_a_killed_clients_regions_are_removed_and_unregistered(triton_server, graphs):
    """What the supervisor does for a worker killed mid-run: its files and its registrations go."""
    client = shm_client(triton_server.grpc_url)
    prefix = client.shared_memory.prefix
    client.infer(graphs[0], timeout_s=30.0)
    assert files(prefix) and registered(client)
    # the client dies without closing: clean up by prefix, as the supervisor does
    assert unregister_regions(triton_server.grpc_url, prefix) == 2
    assert remove_regions(prefix) == 2
    assert not files(prefix) and not registered(client)
    client.shared_memory.handles.clear()  # its mappings are gone with the files
    client.client.close()
