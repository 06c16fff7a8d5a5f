"""Tensors cross the real Triton server bit-exact, alone and inside dynamic batches."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from farm.triton_server import TritonServer
from trigger_sim.config import MODEL_REPOSITORY
from trigger_sim.errors import InferenceTimeout, InferenceUnavailable, TriggerSimError
from trigger_sim.inference.triton_client import TritonBackend
from trigger_sim.models import jet_tagger
from trigger_sim.models.jet_tagger import LocalJetTagger

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]


def backend(url: str) -> TritonBackend:
    return TritonBackend(url, jet_tagger.MODEL_NAME, jet_tagger.INPUT_NAME, jet_tagger.OUTPUT_NAME)


def test_scores_bit_exact_against_local_forward(triton_server):
    client = backend(triton_server.grpc_url)
    local = LocalJetTagger()
    rng = np.random.default_rng(7)
    try:
        client.check_model()
        for n in (1, 2, 7, 16, 255):
            x = (rng.normal(size=(n, jet_tagger.N_FEATURES)) * rng.choice([1e-3, 1.0, 30.0], size=(n, 1))).astype(np.float32)
            got = client.infer(x, timeout_s=10.0)
            assert got.dtype == np.float32 and got.shape == (n, 1)
            assert got.tobytes() == local.infer(x).tobytes()
    finally:
        client.close()


def test_bit_exact_under_dynamic_batching(triton_server):
    """Concurrent requests are merged by the dynamic batcher; each answer is still exact."""
    local = LocalJetTagger()
    rng = np.random.default_rng(11)
    inputs = [rng.normal(size=(int(rng.integers(1, 17)), jet_tagger.N_FEATURES)).astype(np.float32) for _ in range(120)]
    clients = [backend(triton_server.grpc_url) for _ in range(6)]
    try:
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(lambda ix: clients[ix[0] % 6].infer(ix[1], timeout_s=10.0), enumerate(inputs)))
        for x, got in zip(inputs, results):
            assert got.tobytes() == local.infer(x).tobytes()
    finally:
        for c in clients:
            c.close()


def test_deadline_raises_timeout(triton_server):
    client = backend(triton_server.grpc_url)
    try:
        with pytest.raises(InferenceTimeout):
            client.infer(np.zeros((4, jet_tagger.N_FEATURES), np.float32), timeout_s=1e-5)
    finally:
        client.close()


def test_absent_server_is_unavailable():
    from farm.triton_server import free_port

    client = backend(f"127.0.0.1:{free_port()}")
    try:
        with pytest.raises(InferenceUnavailable):
            client.infer(np.zeros((1, jet_tagger.N_FEATURES), np.float32), timeout_s=2.0)
        with pytest.raises(TriggerSimError):
            client.check_model(timeout_s=1.0)
    finally:
        client.close()


def test_server_stops_cleanly_leaving_nothing():
    server = TritonServer(MODEL_REPOSITORY, start_timeout_s=90).start()
    pid = server.proc.pid
    prefix = server.shm_prefix
    assert any(Path("/dev/shm").glob(prefix + "*")), "the Python backend should use a prefixed shm region"
    server.stop()
    assert not any(Path("/dev/shm").glob(prefix + "*"))
    assert not Path(f"/proc/{pid}").exists()
    stubs = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmdline(p).find(prefix) >= 0]
    assert stubs == []


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""
