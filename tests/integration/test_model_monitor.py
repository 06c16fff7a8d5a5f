"""The model monitor against a real Triton server: a model busy with a queue of slow requests
(its probes time out) is left alone, a model whose stub was killed is reloaded."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from farm.model_health import stats_snapshot
from farm.server_monitor import ModelMonitor
from farm.triton_server import TritonServer
from trigger_sim.errors import InferenceError
from trigger_sim.inference.triton_client import TritonBackend
from trigger_sim.models import jet_tagger
from trigger_sim.models.registry import JET_TAGGER, model_spec

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]
SPEC = model_spec(JET_TAGGER)
SLOW_S = 0.4  # per request, one request at a time: a queue builds as a loaded GNN's does

MODEL_PY = f'''
import time
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    def execute(self, requests):
        responses = []
        for request in requests:
            time.sleep({SLOW_S})
            x = pb_utils.get_input_tensor_by_name(request, "{jet_tagger.INPUT_NAME}").as_numpy()
            scores = np.zeros((len(x), 1), np.float32)
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor("{jet_tagger.OUTPUT_NAME}", scores)]))
        return responses
'''
CONFIG = f'''name: "{JET_TAGGER}"
backend: "python"
max_batch_size: 256
input [ {{ name: "{jet_tagger.INPUT_NAME}" data_type: TYPE_FP32 dims: [ {jet_tagger.N_FEATURES} ] }} ]
output [ {{ name: "{jet_tagger.OUTPUT_NAME}" data_type: TYPE_FP32 dims: [ 1 ] }} ]
instance_group [ {{ count: 1 kind: KIND_CPU }} ]
'''


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory):
    repository = tmp_path_factory.mktemp("slow_one_at_a_time")
    (repository / JET_TAGGER / "1").mkdir(parents=True)
    (repository / JET_TAGGER / "config.pbtxt").write_text(CONFIG)
    (repository / JET_TAGGER / "1" / "model.py").write_text(MODEL_PY)
    server = TritonServer(Path(repository), start_timeout_s=90).start()
    try:
        yield server
    finally:
        # after its stub was killed and the model reloaded, this server outwaits a SIGTERM:
        # 2 s, not the default 10 s, before the SIGKILL (its shm files are removed either way)
        server.stop(grace_s=2.0)


def client(server: TritonServer) -> TritonBackend:
    return TritonBackend(server.grpc_url, JET_TAGGER, SPEC.input_types, SPEC.output_name)


def test_a_model_with_a_queue_of_slow_requests_is_not_reloaded(slow_server):
    stop = threading.Event()

    def load() -> None:
        c = client(slow_server)
        while not stop.is_set():
            try:
                c.infer(SPEC.probe(), timeout_s=30.0)
            except InferenceError:
                pass
        c.close()

    loaders = [threading.Thread(target=load, daemon=True) for _ in range(6)]  # a queue of ~2.4 s
    for t in loaders:
        t.start()
    time.sleep(1.0)
    monitor = ModelMonitor(slow_server, JET_TAGGER, period_s=0.5)
    monitor.start()
    try:
        time.sleep(8.0)
    finally:
        monitor.stop()
        stop.set()
        for t in loaders:
            t.join(timeout=30)
    assert any("no answer" in text for text in monitor.probe_failures), monitor.probe_failures  # the load was real
    assert monitor.reloads == 0, monitor.probe_failures
    assert monitor.health[JET_TAGGER].latency_s > 4 * SLOW_S  # it measured the queue


def test_statistics_count_completed_requests_and_their_time(slow_server):
    c = client(slow_server)
    try:
        before = stats_snapshot(c.inference_stats())
        c.infer(SPEC.probe(), timeout_s=30.0)
        after = stats_snapshot(c.inference_stats())
    finally:
        c.close()
    assert after.success_count == before.success_count + 1
    assert after.busy_ns - before.busy_ns >= SLOW_S * 0.9e9


def test_a_model_whose_stub_was_killed_is_reloaded_and_answers_again(slow_server):
    monitor = ModelMonitor(slow_server, JET_TAGGER, period_s=0.2)
    monitor.start()
    try:
        time.sleep(1.0)  # a round or two on the healthy model
        pids = slow_server.stub_pids()
        assert pids
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while monitor.reloads == 0 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        monitor.stop()
    assert monitor.reloads >= 1, monitor.probe_failures
    c = client(slow_server)
    try:
        assert c.infer(SPEC.probe(), timeout_s=30.0).shape == (1, 1)
    finally:
        c.close()
