"""The inference services of the HLT sequence: one per model, each with its Triton client
(when the model is served) and its in-process fallback."""

from __future__ import annotations

from trigger_sim import clock
from trigger_sim.config import FarmConfig
from trigger_sim.inference.breaker import CircuitBreaker
from trigger_sim.inference.service import InferenceService
from trigger_sim.models.registry import MODEL_NAMES, model_spec


def build_inference(config: FarmConfig, triton_url: str | None) -> dict[str, InferenceService]:
    """Per model: its service with the Triton backend (if a server is given and the model is
    in `inference.models`) and the local fallback, which runs the same code and weights."""
    ic = config.inference
    services = {}
    for name in MODEL_NAMES:
        spec = model_spec(name)
        remote = None
        if triton_url and name in ic.models:
            from trigger_sim.inference.triton_client import TritonBackend

            remote = TritonBackend(triton_url, name, spec.input_types, spec.output_name, **config.network.triton_client_options())
        services[name] = InferenceService(
            remote, spec.make_local(), CircuitBreaker(ic.breaker_failures, int(ic.breaker_open_ms * clock.NS_PER_MS)),
            timeout_s=ic.timeout_ms / 1e3, size_of=spec.size_of, empty_output=spec.empty_output(),
        )
    return services


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
