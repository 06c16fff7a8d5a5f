"""Watches a local Triton server's models and repairs one when its backend stub dies.

A Python-backend model whose stub process died still reports READY; every request then
fails with INTERNAL "Stub process ... is not healthy", or hangs. Only unloading and loading
the model again recovers it. The monitor probes each model once per period with a tiny
request, reads the model's statistics, and reloads it when `model_health.ModelHealth` says
so (a dead stub at once; a model that completes nothing while its probes time out far
beyond its current latency after a few rounds). A server that is down is not its business:
the workers' circuit breakers handle that, and probe until it is back.

This thread is the I/O shell around that decision. Whatever goes wrong in a round is logged
once per kind and the loop goes on: a monitor must not die silently.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from typing import Any

from farm.model_health import ModelHealth, Probe, StatsSnapshot, dead_stub, stats_snapshot
from farm.triton_server import TritonServer
from trigger_sim import clock
from trigger_sim.errors import InferenceError, InferenceTimeout
from trigger_sim.inference.triton_client import TritonBackend
from trigger_sim.log_once import OnceLog
from trigger_sim.models.registry import model_spec

MAX_PROBE_FAILURES_KEPT = 5
log = logging.getLogger(__name__)


class ModelMonitor(threading.Thread):
    def __init__(self, server: TritonServer, models: tuple[str, ...] | str, period_s: float = 0.5,
                 client_options: dict[str, Any] | None = None):
        super().__init__(name="model-monitor", daemon=True)
        self.server = server
        self.models = (models,) if isinstance(models, str) else tuple(models)
        self.client_options = client_options or {}  # TLS settings for the client (`NetworkConfig.triton_client_options`)
        self.period_s = period_s
        self.health = {model: ModelHealth() for model in self.models}
        self.rounds = 0
        self.reloads = 0
        self.failed_reloads = 0
        self.probe_failures: list[str] = []  # the first few failures and reloads, for the summary
        self._clients: dict[str, TritonBackend] = {}
        self._once = OnceLog(log)
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            while not self._stop_event.wait(self.period_s):
                for model in self.models:
                    try:
                        self._watch(model)
                    except Exception as err:  # a monitor that dies silently is worse than none
                        self._once.exception(err, f"model monitor, {model}")
                self.rounds += 1
        finally:
            for client in self._clients.values():
                with contextlib.suppress(Exception):
                    client.close()

    def _client(self, model: str) -> TritonBackend:
        if model not in self._clients:
            spec = model_spec(model)
            self._clients[model] = TritonBackend(self.server.grpc_url, model, spec.input_types, spec.output_name,
                                                 **self.client_options)
        return self._clients[model]

    def _watch(self, model: str) -> None:
        """One round for one model: probe, statistics, decision, and the reload if decided."""
        client, health = self._client(model), self.health[model]
        probe = self._probe(client, model, health.probe_timeout_s())
        stats = self._stats(client, model)
        live = probe.ok or dead_stub(probe.error) or self.server.is_live()
        decision = health.decide(probe, stats, live)
        if decision.reload:
            self._reload(model, decision.reason)

    def _probe(self, client: TritonBackend, model: str, timeout_s: float) -> Probe:
        start = clock.now_ns()
        try:
            client.infer(model_spec(model).probe(), timeout_s=timeout_s)
        except InferenceError as err:
            waited_s = (clock.now_ns() - start) / clock.NS_PER_S
            self._keep(f"{model}: {err}")
            return Probe(False, timeout_s, waited_s, isinstance(err, InferenceTimeout), str(err))
        return Probe(True, timeout_s, (clock.now_ns() - start) / clock.NS_PER_S)

    def _stats(self, client: TritonBackend, model: str) -> StatsSnapshot | None:
        try:
            return stats_snapshot(client.inference_stats())
        except InferenceError:  # the server is down or busy: not this monitor's business, nothing to log
            return None
        except Exception as err:  # unknown progress: the decision treats it as none
            self._once.exception(err, f"model monitor, statistics of {model}")
            return None

    def _reload(self, model: str, reason: str) -> None:
        self._keep(f"reloading {model}: {reason}")
        try:
            self.server.reload_model(model)
            self.reloads += 1
        except Exception as err:
            self.failed_reloads += 1
            self._keep(f"reload of {model} failed: {err}")
            self._once.exception(err, f"model monitor, reload of {model}")

    def _keep(self, text: str) -> None:
        if len(self.probe_failures) < MAX_PROBE_FAILURES_KEPT:
            self.probe_failures.append(text[:200])

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=5.0)
