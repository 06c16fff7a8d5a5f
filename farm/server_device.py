"""Which model configuration a local Triton server loads: the CPU one or the GPU one.

`[inference] device`:
- "cpu": each model's config.pbtxt (numpy forward, KIND_CPU instances);
- "gpu": each model's configs/gpu.pbtxt (KIND_GPU instances running the torch forward),
  and a clear error before the server starts when torch cannot use a GPU here;
- "auto" (default): the GPU configuration when torch in this Python sees a GPU, else the
  CPU one.

The probe imports torch in a child process (it takes seconds and hundreds of MB that the
run control has no use for). For "auto" it runs only when torch is installed and an NVIDIA
device node exists, so a host without a GPU pays nothing for it; "gpu" always asks torch
(some hosts, WSL2 for one, have no /dev/nvidia* node). A server loading the GPU
configuration gets at least `GPU_START_TIMEOUT_S` to start: each model instance imports
torch and creates a CUDA context first.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from trigger_sim.config import MODEL_REPOSITORY, FarmConfig
from trigger_sim.errors import ConfigError
from trigger_sim.models.registry import MODEL_NAMES
from farm.triton_server import TritonServer

GPU_CONFIG_NAME = "gpu"  # model_repository/<model>/configs/gpu.pbtxt
GPU_START_TIMEOUT_S = 300.0
TORCH_ON_CPU_PARAMETER = 'parameters { key: "FORWARD" value: { string_value: "torch" } }\n'
PROBE_CODE = ("import torch; ok = torch.cuda.is_available(); "
              "print(torch.cuda.device_count() if ok else 0, torch.__version__, torch.version.cuda)")


@dataclass(frozen=True)
class GpuProbe:
    count: int  # GPUs torch can use in this Python
    detail: str  # what was found, or why there is none


def choose_model_config(device: str, probe: GpuProbe) -> str | None:
    """The `--model-config-name` for `device` ("auto", "cpu", "gpu"); None: config.pbtxt."""
    if device == "cpu":
        return None
    if device == "gpu":
        if probe.count < 1:
            raise ConfigError(
                f'[inference] device = "gpu", but {probe.detail}. On a GPU host install a CUDA build of torch '
                "(pip install -e '.[gpu]'); otherwise set device = \"auto\" or \"cpu\""
            )
        return GPU_CONFIG_NAME
    if device == "auto":
        return GPU_CONFIG_NAME if probe.count > 0 else None
    raise ConfigError(f"[inference] device = {device!r}: expected auto, cpu or gpu")


def has_nvidia_device(dev: Path = Path("/dev")) -> bool:
    """Whether an NVIDIA device node exists (the GPU may still be unusable)."""
    return any(dev.glob("nvidia[0-9]*"))


def probe_gpus(timeout_s: float = 120.0, dev: Path | None = Path("/dev")) -> GpuProbe:
    """How many GPUs torch can use in this Python (0 with the reason when none); `dev=None`
    asks torch even where no NVIDIA device node exists."""
    if importlib.util.find_spec("torch") is None:
        return GpuProbe(0, "torch is not installed in this Python")
    if dev is not None and not has_nvidia_device(dev):
        return GpuProbe(0, f"there is no NVIDIA device in {dev}")
    try:
        done = subprocess.run([sys.executable, "-c", PROBE_CODE], capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return GpuProbe(0, f"importing torch to count GPUs took more than {timeout_s:.0f} s")
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return GpuProbe(0, f"torch failed to start: {last}")
    try:
        count, version, cuda = (done.stdout.strip().splitlines() or [""])[-1].split()
        int(count)
    except ValueError:
        return GpuProbe(0, f"unexpected answer from torch: {done.stdout.strip()[-200:]!r}")
    if int(count) == 0:
        return GpuProbe(0, f"torch {version} (CUDA build: {cuda}) sees no GPU")
    return GpuProbe(int(count), f"torch {version} (CUDA {cuda}) sees {count} GPU(s)")


def torch_on_cpu_repository(root: Path, models: tuple[str, ...] = MODEL_NAMES) -> Path:
    """A model repository in `root` whose CPU instances run the torch forward (the code a GPU
    instance runs), to check that path, in tests and benchmarks, on a host without a GPU."""
    for model in models:
        (root / model).mkdir(parents=True)
        (root / model / "1").symlink_to(MODEL_REPOSITORY / model / "1", target_is_directory=True)
        text = (MODEL_REPOSITORY / model / "config.pbtxt").read_text()
        (root / model / "config.pbtxt").write_text(text + TORCH_ON_CPU_PARAMETER)
    return root


def model_config_name(config: FarmConfig) -> str | None:
    """`choose_model_config` for a farm configuration, probing only when the answer depends on it."""
    device = config.inference.device
    if device == "cpu":
        return None
    return choose_model_config(device, probe_gpus(dev=None if device == "gpu" else Path("/dev")))


def local_server(config: FarmConfig, **kwargs) -> TritonServer:
    """The local server a farm configuration asks for (not started)."""
    name = model_config_name(config)
    timeout_s = config.inference.server_start_timeout_s
    if name == GPU_CONFIG_NAME:
        timeout_s = max(timeout_s, GPU_START_TIMEOUT_S)
    return TritonServer(MODEL_REPOSITORY, timeout_s, model_config_name=name, **kwargs)
