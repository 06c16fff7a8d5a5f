"""Watches a local Triton server's models and repairs one when its backend stub dies.

A Python-backend model whose stub process died still reports READY; every request then
fails with INTERNAL "Stub process ... is not healthy". Only unloading and loading the
model again recovers it. The monitor probes the model once per period with a tiny request
and reloads it when it sees that failure. (A server that is down is not its business:
the workers' circuit breakers handle that, and probe until it is back.)
"""

from __future__ import annotations

import threading
from typing import Any

from farm.triton_server import TritonServer
from trigger_sim.errors import InferenceError
from trigger_sim.inference.triton_client import TritonBackend
from trigger_sim.models.registry import model_spec


def needs_reload(error_text: str) -> bool:
    """True for the failure that only a model reload repairs (a dead backend stub)."""
    return "Stub process" in error_text and "not healthy" in error_text


class ModelMonitor(threading.Thread):
    def __init__(self, server: TritonServer, models: tuple[str, ...] | str, period_s: float = 0.5,
                 client_options: dict[str, Any] | None = None):
        super().__init__(name="model-monitor", daemon=True)
        self.server = server
        self.models = (models,) if isinstance(models, str) else tuple(models)
        self.client_options = client_options or {}  # TLS settings for the client (`NetworkConfig.triton_client_options`)
        self.period_s = period_s
        self.probe_timeout_s = 1.0
        self.reloads = 0
        self.failed_reloads = 0
        self.probe_failures: list[str] = []  # the first few, for the summary
        self._stop_event = threading.Event()

    def run(self) -> None:
        clients = {}
        for model in self.models:
            spec = model_spec(model)
            clients[model] = (TritonBackend(self.server.grpc_url, model, spec.input_types, spec.output_name, **self.client_options),
                              spec.probe())
        failures = dict.fromkeys(self.models, 0)
        try:
            while not self._stop_event.wait(self.period_s):
                for model, (client, probe) in clients.items():
                    try:
                        client.infer(probe, timeout_s=self.probe_timeout_s)
                        failures[model] = 0
                    except InferenceError as err:
                        failures[model] += 1
                        if len(self.probe_failures) < 5:
                            self.probe_failures.append(str(err)[:200])
                        # A dead stub either fails INTERNAL "not healthy" or leaves requests hanging:
                        # reload on the first, or on repeated failures while the server itself is live.
                        if needs_reload(str(err)) or (failures[model] >= 2 and self.server.is_live()):
                            failures[model] = 0
                            try:
                                self.server.reload_model(model)
                                self.reloads += 1
                            except Exception as reload_err:
                                self.failed_reloads += 1
                                self.probe_failures.append(f"reload failed: {reload_err}"[:200])
        finally:
            for client, _ in clients.values():
                client.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5.0)
