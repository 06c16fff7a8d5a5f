"""The remote backend: a Triton gRPC client with a deadline on every call.

Failures become `InferenceTimeout` (deadline exceeded) or `InferenceUnavailable`
(server down, model not ready, any other error), which the inference service turns into a
local fallback. A model has one input (pass an array) or several (pass a dict keyed by
input name); the Triton datatype of each follows the array's dtype.

With `shm_prefix` (a client on the server's host), requests of at least `min_shm_bytes`
travel through system shared memory (`triton_shm`): a graph-sized request costs about a
third of the time it takes inside the gRPC message. Smaller ones, and any request that finds
no free region, go in the gRPC message as before.

`infer` blocks until the answer; `submit` sends the same request with tritonclient's
asynchronous gRPC call and returns a future at once (a worker with several event slots works
on other events meanwhile). A request through shared memory holds its region until its
callback, which releases it (quarantined if the call failed).
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from trigger_sim import clock
from trigger_sim.errors import InferenceError, InferenceTimeout, InferenceUnavailable, TriggerSimError
from trigger_sim.inference.deadline import require_left_s
from trigger_sim.inference.shm_pool import Plan
from trigger_sim.inference.triton_shm import SharedMemoryTransport

Inputs = np.ndarray | Mapping[str, np.ndarray]
DEFAULT_MIN_SHM_BYTES = 1 << 16  # below this the gRPC message is as fast (BENCHMARKS.md, inference)
DEFAULT_SHM_SPARES = 2  # shared-memory slots beyond the requests in flight (one in quarantine does not stall)
_NUMPY_TYPES = {"FP32": np.float32, "INT32": np.int32, "INT64": np.int64, "FP64": np.float64}


class TritonBackend:
    def __init__(self, url: str, model: str, inputs: str | Mapping[str, str], output_name: str, *, ssl: bool = False,
                 root_certificates: str | None = None, private_key: str | None = None,
                 certificate_chain: str | None = None, channel_args: list[tuple[str, Any]] | None = None,
                 shm_prefix: str | None = None,
                 output_bytes: Callable[[Mapping[str, np.ndarray]], int] | None = None,
                 min_shm_bytes: int = DEFAULT_MIN_SHM_BYTES):
        """`inputs`: the input name (one FP32 input) or {name: Triton datatype}.

        `ssl`: gRPC over TLS; the others are PEM file paths (CA roots, client key and chain for mutual TLS).
        `channel_args`: gRPC channel arguments (`channel_options.reconnect_channel_args`); None: tritonclient's.
        `shm_prefix`: use system shared memory, with region names starting so; needs
        `output_bytes(arrays)`, the size of the FP32 output a request will get.
        """
        self.url = url
        self.model = model
        self.input_types = {inputs: "FP32"} if isinstance(inputs, str) else dict(inputs)
        self.input_name = next(iter(self.input_types))
        self.output_name = output_name
        extra = {} if channel_args is None else {"channel_args": channel_args}
        try:
            self.client = grpcclient.InferenceServerClient(url=url, ssl=ssl, root_certificates=root_certificates,
                                                           private_key=private_key, certificate_chain=certificate_chain,
                                                           **extra)
        except OSError as err:
            raise TriggerSimError(f"{url}: cannot read a TLS file for Triton ({err}); check the network.triton_* paths") from err
        self._outputs = [grpcclient.InferRequestedOutput(output_name)]
        if shm_prefix is not None and output_bytes is None:
            raise ValueError(f"model '{model}': shared memory needs the size of its output (output_bytes)")
        self.output_bytes = output_bytes
        self.min_shm_bytes = min_shm_bytes
        self.shared_memory = SharedMemoryTransport(self.client, shm_prefix) if shm_prefix is not None else None

    def _arrays(self, inputs: Inputs) -> dict[str, tuple[np.ndarray, str]]:
        """{input name: (contiguous array of the model's datatype, datatype)}, in the model's order."""
        arrays = inputs if isinstance(inputs, Mapping) else {self.input_name: inputs}
        if set(arrays) != set(self.input_types):
            raise ValueError(f"model '{self.model}' takes inputs {sorted(self.input_types)}, got {sorted(arrays)}")
        out = {}
        for name, datatype in self.input_types.items():
            array = np.ascontiguousarray(arrays[name])
            if np_to_triton_dtype(array.dtype) != datatype:
                array = array.astype(_NUMPY_TYPES[datatype])
            out[name] = (array, datatype)
        return out

    @staticmethod
    def _request(arrays: dict[str, tuple[np.ndarray, str]]) -> list[grpcclient.InferInput]:
        request = []
        for name, (array, datatype) in arrays.items():
            tensor = grpcclient.InferInput(name, list(array.shape), datatype)
            tensor.set_data_from_numpy(array)
            request.append(tensor)
        return request

    def infer(self, inputs: Inputs, timeout_s: float) -> np.ndarray:
        """Send one request; raise InferenceTimeout after `timeout_s` seconds."""
        deadline_ns = clock.now_ns() + int(timeout_s * clock.NS_PER_S)
        arrays = self._arrays(inputs)
        plan = self._shm_plan(arrays, deadline_ns, timeout_s)
        ok = False
        try:
            request, outputs = self._shm_request(plan, arrays) if plan is not None else (self._request(arrays), self._outputs)
            result = self.client.infer(self.model, request, outputs=outputs, client_timeout=self._left_s(deadline_ns, timeout_s))
            out = self._output(plan, result)
            ok = True
        except InferenceServerException as err:
            raise self._failure(err, timeout_s) from err
        finally:
            if plan is not None:
                self.shared_memory.release(plan, ok)
        return out

    def submit(self, inputs: Inputs, timeout_s: float) -> concurrent.futures.Future:
        """Send one request without waiting: the future resolves to the scores, or raises
        InferenceTimeout / InferenceUnavailable as `infer` would, by `timeout_s` at the latest."""
        future: concurrent.futures.Future = concurrent.futures.Future()
        deadline_ns = clock.now_ns() + int(timeout_s * clock.NS_PER_S)
        plan = None
        try:
            arrays = self._arrays(inputs)
            plan = self._shm_plan(arrays, deadline_ns, timeout_s)
            request, outputs = self._shm_request(plan, arrays) if plan is not None else (self._request(arrays), self._outputs)

            def done(result: grpcclient.InferResult | None, error: InferenceServerException | None) -> None:
                self._resolve(future, plan, result, error, timeout_s)

            self.client.async_infer(self.model, request, done, outputs=outputs, client_timeout=self._left_s(deadline_ns, timeout_s))
        except InferenceServerException as err:
            self._settle(future, plan, exception=self._failure(err, timeout_s))
        except Exception as err:  # InferenceTimeout before sending, a region not writable, bad inputs
            self._settle(future, plan, exception=err)
        return future

    def _resolve(self, future: concurrent.futures.Future, plan: Plan | None, result: grpcclient.InferResult | None,
                 error: InferenceServerException | None, timeout_s: float) -> None:
        """The asynchronous call's callback (a gRPC thread): read the answer, free its region."""
        if error is not None:
            self._settle(future, plan, exception=self._failure(error, timeout_s))
            return
        try:
            out = self._output(plan, result)
        except Exception as err:
            self._settle(future, plan, exception=err)
            return
        self._settle(future, plan, scores=out)

    def _settle(self, future: concurrent.futures.Future, plan: Plan | None, scores: np.ndarray | None = None,
                exception: BaseException | None = None) -> None:
        if plan is not None:
            self.shared_memory.release(plan, exception is None)
        if future.done():
            return
        if exception is not None:
            future.set_exception(exception)
        else:
            future.set_result(scores)

    def _shm_plan(self, arrays: dict[str, tuple[np.ndarray, str]], deadline_ns: int, timeout_s: float) -> Plan | None:
        """A prepared shared-memory slot for the request, or None (send it in the gRPC message)."""
        transport = self.shared_memory
        if transport is None or transport.disabled:
            return None
        n_bytes = sum(a.nbytes for a, _ in arrays.values())
        if n_bytes < self.min_shm_bytes:
            return None
        try:
            return transport.acquire(n_bytes, self._output_size(arrays), deadline_ns)
        except InferenceServerException as err:
            if _is_deadline(err):
                raise self._failure(err, timeout_s) from err
            transport.registration_refused()
            return None
        except OSError:  # /dev/shm full or not writable
            return None

    def _output_size(self, arrays: dict[str, tuple[np.ndarray, str]]) -> int:
        return self.output_bytes({name: a for name, (a, _) in arrays.items()})

    def _shm_request(self, plan: Plan, arrays: dict[str, tuple[np.ndarray, str]]) -> tuple[list, list]:
        try:
            return self.shared_memory.request(plan, arrays, self.output_name, self._output_size(arrays))
        except Exception as err:  # a region that cannot be written: a failed call like any other
            raise InferenceUnavailable(f"{self.url} {self.model}: shared memory: {type(err).__name__}: {err}") from err

    def _output(self, plan: Plan | None, result: grpcclient.InferResult) -> np.ndarray:
        """The answer's output array, from its region or from the message."""
        if plan is not None:
            try:
                return self.shared_memory.read_output(plan, result, self.output_name)
            except InferenceError:
                raise
            except Exception as err:
                raise InferenceUnavailable(f"{self.url} {self.model}: shared memory: {type(err).__name__}: {err}") from err
        out = result.as_numpy(self.output_name)
        if out is None:
            raise InferenceUnavailable(f"{self.url} {self.model}: response has no output '{self.output_name}'")
        if self.shared_memory is not None:
            self.shared_memory.request_answered_without()
        return out

    def allow_in_flight(self, n: int) -> None:
        """Up to `n` requests of this client may be in flight at once: keep a shared-memory slot
        for each, plus the spares that quarantine after a failed call needs."""
        if self.shared_memory is not None:
            self.shared_memory.ensure_slots(n + DEFAULT_SHM_SPARES)

    def _left_s(self, deadline_ns: int, timeout_s: float) -> float:
        """Seconds left before the call's deadline; InferenceTimeout when none are."""
        return require_left_s(deadline_ns, clock.now_ns(), f"{self.url} {self.model} (call of {timeout_s * 1e3:.3g} ms)")

    def _failure(self, err: InferenceServerException, timeout_s: float) -> Exception:
        if _is_deadline(err):
            return InferenceTimeout(f"{self.url} {self.model}: no answer within {timeout_s * 1e3:.3g} ms")
        return InferenceUnavailable(f"{self.url} {self.model}: {err}")

    def check_model(self, timeout_s: float = 5.0) -> None:
        """At start-up: the model is ready and has the inputs and outputs we send and read."""
        try:
            if not self.client.is_model_ready(self.model, client_timeout=timeout_s):
                raise TriggerSimError(f"{self.url}: model '{self.model}' is not ready; is it in the server's model repository?")
            meta = self.client.get_model_metadata(self.model, as_json=True, client_timeout=timeout_s)
        except InferenceServerException as err:
            raise TriggerSimError(f"{self.url}: cannot query model '{self.model}': {err}") from err
        problems = []
        inputs = {t["name"]: t["datatype"] for t in meta.get("inputs", [])}
        outputs = {t["name"]: t["datatype"] for t in meta.get("outputs", [])}
        for name, datatype in self.input_types.items():
            if inputs.get(name) != datatype:
                problems.append(f"input '{name}' {datatype} expected, server has {inputs}")
        if outputs.get(self.output_name) != "FP32":
            problems.append(f"output '{self.output_name}' FP32 expected, server has {outputs}")
        if problems:
            raise TriggerSimError(f"{self.url}: model '{self.model}' does not match the client: " + "; ".join(problems))

    def inference_stats(self, timeout_s: float = 2.0) -> dict[str, Any]:
        """The model's cumulative statistics on the server (Triton's `inference_stats` JSON:
        per stage, a count and ns as strings); InferenceUnavailable when it cannot say."""
        try:
            stats = self.client.get_inference_statistics(self.model, as_json=True, client_timeout=timeout_s)
        except InferenceServerException as err:
            raise self._failure(err, timeout_s) from err
        models = stats.get("model_stats") or [{}]
        return dict(models[0].get("inference_stats") or {})

    def close(self) -> None:
        if self.shared_memory is not None:
            self.shared_memory.close()
        self.client.close()


def _is_deadline(err: InferenceServerException) -> bool:
    return "DEADLINE_EXCEEDED" in str(err.status()) or "Deadline Exceeded" in str(err)
