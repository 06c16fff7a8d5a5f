"""The inference services of the HLT sequence: one per model, each with its Triton client
(when the model is served) and its in-process fallback."""

from __future__ import annotations

import os
import uuid

from trigger_sim import clock
from trigger_sim.config import FarmConfig
from trigger_sim.inference.breaker import CircuitBreaker
from trigger_sim.inference.service import InferenceService
from trigger_sim.models.registry import MODEL_NAMES, model_spec


def client_shm_prefix() -> str:
    """A prefix for the shared-memory regions of one run's clients (unique per run)."""
    return f"tsim_client_{os.getpid()}_{uuid.uuid4().hex[:8]}_"


def build_inference(config: FarmConfig, triton_url: str | None, shm_prefix: str | None = None) -> dict[str, InferenceService]:
    """Per model: its service with the Triton backend (if a server is given and the model is
    in `inference.models`) and the local fallback, which runs the same code and weights.

    Models with graph-sized requests use system shared memory when the server is on this
    host (`inference.shared_memory`); their regions are named `<shm_prefix><model>_...`
    (default: a fresh prefix) and removed by the backend's `close()`."""
    ic = config.inference
    services = {}
    use_shm = bool(triton_url) and ic.uses_shared_memory(triton_url)
    shm_prefix = shm_prefix or client_shm_prefix()
    for name in MODEL_NAMES:
        spec = model_spec(name)
        remote = None
        if triton_url and name in ic.models:
            from trigger_sim.inference.triton_client import TritonBackend

            shm = use_shm and spec.output_bytes is not None
            remote = TritonBackend(triton_url, name, spec.input_types, spec.output_name, **config.network.triton_client_options(),
                                   shm_prefix=f"{shm_prefix}{name}_" if shm else None, output_bytes=spec.output_bytes)
        services[name] = InferenceService(
            remote, spec.make_local(), CircuitBreaker(ic.breaker_failures, int(ic.breaker_open_ms * clock.NS_PER_MS)),
            timeout_s=ic.timeout_ms / 1e3, size_of=spec.size_of, empty_output=spec.empty_output(),
        )
    return services


def close_inference(inference: dict[str, InferenceService]) -> None:
    """Close every remote backend: unregister and remove its shared-memory regions (plain
    /dev/shm files that nothing else removes for a process that is not a farm worker)."""
    for service in inference.values():
        if service.remote is not None:
            service.remote.close()


def prepare_inference(inference: dict[str, InferenceService]) -> str:
    """Check each served model and send it one warm-up request; return the problems, or ''.

    The local fallbacks are warmed up too, so the first event does not pay for it."""
    problems = []
    for name, service in inference.items():
        probe = model_spec(name).probe()
        service.local.infer(probe, timeout_s=0.0)
        if service.remote is None:
            continue
        try:
            service.remote.check_model()
            service.remote.infer(probe, timeout_s=10.0)
        except Exception as err:  # the farm still runs, on the fallback; the supervisor reports it
            problems.append(str(err))
    return "; ".join(problems)
