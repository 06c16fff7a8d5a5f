"""The GPU model configurations on the real Triton server.

Without a GPU: the server refuses configs/gpu.pbtxt with an error that says so, and the
torch forward that a GPU instance runs is served on the CPU (a FORWARD = "torch"
parameter in a copy of config.pbtxt) and agrees with the numpy forward. On a host where
torch sees a GPU, the gpu configurations themselves are served and checked.
"""

from __future__ import annotations

import numpy as np
import pytest

from farm.server_device import GPU_CONFIG_NAME, has_nvidia_device, probe_gpus, torch_on_cpu_repository
from farm.triton_server import TritonServer
from trigger_sim.config import MODEL_REPOSITORY, FarmConfig, with_overrides
from trigger_sim.errors import TritonStartError
from trigger_sim.inference.triton_client import TritonBackend
from trigger_sim.models import edge_classifier, jet_tagger
from trigger_sim.models.registry import EDGE_CLASSIFIER, JET_TAGGER, model_spec
from trigger_sim.simulation import simulate

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

MODELS = (EDGE_CLASSIFIER, JET_TAGGER)
CFG = with_overrides(FarmConfig(), run={"seed": 8081}, physics={"pileup_mean": 40.0})

def check_served_like_numpy(server: TritonServer) -> None:
    """Both models answer as their numpy forwards do, to float32 rounding."""
    for name in MODELS:
        spec = model_spec(name)
        client = TritonBackend(server.grpc_url, name, spec.input_types, spec.output_name)
        try:
            client.check_model()
            if name == EDGE_CLASSIFIER:
                inputs = edge_classifier.request_for_hits(simulate(CFG, 1).hits, CFG)
                expected = edge_classifier.infer_inputs(edge_classifier.load_weights(), inputs)
                tolerance = {"rtol": 1e-5, "atol": 2e-6}
            else:
                inputs = np.random.default_rng(3).normal(size=(16, jet_tagger.N_FEATURES)).astype(np.float32)
                expected = jet_tagger.forward(jet_tagger.load_weights(), inputs)
                tolerance = {"rtol": 1e-6, "atol": 1e-7}
            served = client.infer(inputs, timeout_s=60.0)
            assert served.shape == expected.shape and served.dtype == np.float32
            np.testing.assert_allclose(served, expected, **tolerance)
        finally:
            client.close()


def test_gpu_configuration_on_a_host_without_gpu_is_refused_clearly(tmp_path):
    if has_nvidia_device():
        pytest.skip("this host has an NVIDIA device: Triton would accept KIND_GPU")
    server = TritonServer(MODEL_REPOSITORY, start_timeout_s=90, model_config_name=GPU_CONFIG_NAME,
                          log_path=tmp_path / "server.log")
    with pytest.raises(TritonStartError) as info:
        server.start()
    message = str(info.value)
    for model in MODELS:
        assert f"model {model} has kind KIND_GPU but no GPUs are available" in message
    assert "CudaDriverHelper" not in message  # the harmless line every CPU host logs is left out
    assert not server.is_running()


def test_torch_forward_served_on_the_cpu_matches_numpy(tmp_path):
    pytest.importorskip("torch")
    log = tmp_path / "server.log"
    with TritonServer(torch_on_cpu_repository(tmp_path / "models"), start_timeout_s=120, log_path=log) as server:
        check_served_like_numpy(server)
        text = log.read_text()
    for model in MODELS:
        assert f"{model} instance" in text and "torch forward on cpu" in text


def test_gpu_configuration_served_on_a_gpu_matches_numpy(tmp_path):
    if not probe_gpus().count:
        pytest.skip("no GPU that torch can use here")
    log = tmp_path / "server.log"
    with TritonServer(MODEL_REPOSITORY, start_timeout_s=180, model_config_name=GPU_CONFIG_NAME, log_path=log) as server:
        check_served_like_numpy(server)
        assert "torch forward on cuda:0" in log.read_text()
