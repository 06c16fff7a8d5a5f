"""The inference services of the HLT sequence: one per model, each with its remote backend
(a pool of Triton servers, when the model is served) and its in-process fallback."""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence

from trigger_sim import clock
from trigger_sim.config import FarmConfig
from trigger_sim.inference.breaker import CircuitBreaker
from trigger_sim.inference.channel_options import client_options
from trigger_sim.inference.pooled_backend import PooledBackend, PoolProber
from trigger_sim.inference.server_pool import ServerPool
from trigger_sim.inference.service import InferenceService
from trigger_sim.models.registry import MODEL_NAMES, model_spec


def client_shm_prefix() -> str:
    """A prefix for the shared-memory regions of one run's clients (unique per run)."""
    return f"tsim_client_{os.getpid()}_{uuid.uuid4().hex[:8]}_"


def server_addresses(triton_url: str | Sequence[str] | None) -> list[str]:
    """The servers' addresses: a list, or one string of addresses separated by commas
    (how the node agent hands a pool to its workers), or None / '' for none."""
    if not triton_url:
        return []
    items = triton_url.split(",") if isinstance(triton_url, str) else list(triton_url)
    return [a.strip() for a in items if a.strip()]


def build_inference(config: FarmConfig, triton_url: str | Sequence[str] | None,
                    shm_prefix: str | None = None) -> dict[str, InferenceService]:
    """Per model: its service with a pooled backend over the servers in `triton_url` (if any
    are given and the model is in `inference.models`) and the local fallback, which runs the
    same code and weights. Each model's deadline is `inference.deadline_s(model)`.

    The servers' health is shared by the models (one `ServerPool`, one prober thread).
    Models with graph-sized requests use system shared memory with servers on this host
    (`inference.shared_memory`); their regions are named `<shm_prefix><model>_<n>_...`
    (default: a fresh prefix) and removed by the backend's `close()`."""
    ic = config.inference
    addresses = server_addresses(triton_url)
    shm_prefix = shm_prefix or client_shm_prefix()
    pool = prober = None
    if addresses and any(name in ic.models for name in MODEL_NAMES):
        pool = ServerPool(addresses, ic.breaker_failures, int(ic.breaker_open_ms * clock.NS_PER_MS))
        prober = PoolProber(pool, client_options(config))
        prober.learn_models()
        prober.start()
    services = {}
    for name in MODEL_NAMES:
        spec = model_spec(name)
        remote = None
        if pool is not None and name in ic.models:
            from trigger_sim.inference.triton_client import TritonBackend

            members = {}
            for n, address in enumerate(addresses):
                shm = ic.uses_shared_memory(address) and spec.output_bytes is not None
                members[address] = TritonBackend(address, name, spec.input_types, spec.output_name,
                                                 **client_options(config),
                                                 shm_prefix=f"{shm_prefix}{name}_{n}_" if shm else None,
                                                 output_bytes=spec.output_bytes)
            remote = PooledBackend(name, members, pool)
            if prober is not None:
                remote.prober, prober = prober, None  # the first pooled backend stops it at close
        services[name] = InferenceService(
            remote, spec.make_local(), CircuitBreaker(ic.breaker_failures, int(ic.breaker_open_ms * clock.NS_PER_MS)),
            timeout_s=ic.deadline_s(name), size_of=spec.size_of, empty_output=spec.empty_output(),
        )
    return services


def server_pool(inference: dict[str, InferenceService]) -> ServerPool | None:
    """The pool the services share (None when no model is served)."""
    for service in inference.values():
        pool = getattr(service.remote, "pool", None)
        if pool is not None:
            return pool
    return None


def close_inference(inference: dict[str, InferenceService]) -> None:
    """Close every remote backend: stop the prober, unregister and remove the shared-memory
    regions (plain /dev/shm files that nothing else removes for a process that is not a
    farm worker)."""
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
            service.remote.warm_up(probe, timeout_s=10.0)
        except Exception as err:  # the farm still runs, on the fallback; run control reports it
            problems.append(str(err))
    return "; ".join(problems)
