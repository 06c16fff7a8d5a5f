"""Tests of farm.server_device: which model configuration a local server loads."""

from __future__ import annotations

import importlib.util

import pytest

from farm import server_device
from farm.server_device import GPU_CONFIG_NAME, GpuProbe, choose_model_config, model_config_name, probe_gpus
from trigger_sim.config import FarmConfig, with_overrides
from trigger_sim.errors import ConfigError

NONE = GpuProbe(0, "torch is not installed in this Python")
ONE = GpuProbe(1, "torch 2 (CUDA 12) sees 1 GPU(s)")


@pytest.mark.parametrize("device, probe, expected", [
    ("cpu", ONE, None),
    ("cpu", NONE, None),
    ("auto", NONE, None),
    ("auto", ONE, GPU_CONFIG_NAME),
    ("gpu", ONE, GPU_CONFIG_NAME),
])
def test_choose_model_config(device, probe, expected) -> None:
    assert choose_model_config(device, probe) == expected


def test_gpu_without_a_gpu_says_why_and_what_to_do() -> None:
    with pytest.raises(ConfigError) as info:
        choose_model_config("gpu", NONE)
    message = str(info.value)
    assert '[inference] device = "gpu"' in message and NONE.detail in message
    assert "pip install -e '.[gpu]'" in message and 'device = "auto"' in message


def test_probe_without_torch_or_without_a_device_node(monkeypatch, tmp_path) -> None:
    has_torch = importlib.util.find_spec("torch") is not None
    assert probe_gpus(dev=tmp_path) == (GpuProbe(0, f"there is no NVIDIA device in {tmp_path}") if has_torch else NONE)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    assert probe_gpus(dev=tmp_path) == NONE


def test_probe_reports_what_torch_sees(monkeypatch, tmp_path) -> None:
    """With a device node and torch present, the answer is the child process's count (the
    child's code replaced: any CI machine, torch installed or not)."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: object() if name == "torch" else real(name, *a))
    (tmp_path / "nvidia0").touch()
    monkeypatch.setattr(server_device, "PROBE_CODE", "print(0, '2.13.0+cpu', None)")
    assert probe_gpus(dev=tmp_path) == GpuProbe(0, "torch 2.13.0+cpu (CUDA build: None) sees no GPU")
    monkeypatch.setattr(server_device, "PROBE_CODE", "print(2, '2.13.0', '12.8')")
    assert probe_gpus(dev=tmp_path).count == 2
    monkeypatch.setattr(server_device, "PROBE_CODE", "raise SystemExit('libcuda.so: cannot open')")
    assert probe_gpus(dev=tmp_path) == GpuProbe(0, "torch failed to start: libcuda.so: cannot open")
    monkeypatch.setattr(server_device, "PROBE_CODE", "print('a warning'); print(1, '2.13.0', '12.8')")
    assert probe_gpus(dev=tmp_path).count == 1  # other output before the answer
    monkeypatch.setattr(server_device, "PROBE_CODE", "print('nothing useful')")
    assert probe_gpus(dev=tmp_path).detail.startswith("unexpected answer from torch")
    monkeypatch.setattr(server_device, "PROBE_CODE", "print(1, 'x', 'y')")
    assert probe_gpus(dev=None).count == 1  # "gpu" asks torch even without a device node here


def test_cpu_device_never_probes(monkeypatch) -> None:
    monkeypatch.setattr(server_device, "probe_gpus", lambda *a, **k: pytest.fail("probed"))
    assert model_config_name(with_overrides(FarmConfig(), inference={"device": "cpu"})) is None


def test_gpu_server_gets_time_to_start(monkeypatch) -> None:
    monkeypatch.setattr(server_device, "probe_gpus", lambda *a, **k: ONE)
    server = server_device.local_server(with_overrides(FarmConfig(), inference={"device": "gpu"}))
    try:
        assert server.model_config_name == GPU_CONFIG_NAME
        assert server.start_timeout_s >= server_device.GPU_START_TIMEOUT_S
    finally:
        server.stop()  # never started: removes its working folder
