"""The remote backend: a Triton gRPC client with a deadline on every call.

Failures become `InferenceTimeout` (deadline exceeded) or `InferenceUnavailable`
(server down, model not ready, any other error), which the inference service turns into a
local fallback. A model has one input (pass an array) or several (pass a dict keyed by
input name); the Triton datatype of each follows the array's dtype.

With `shm_prefix` (a client on the server's host), requests of at least `min_shm_bytes`
travel through system shared memory (`triton_shm`): a graph-sized request costs about a
third of the time it takes inside the gRPC message. Smaller ones, and any request that finds
no free region, go in the gRPC message as before.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from trigger_sim import clock
from trigger_sim.errors import InferenceError, InferenceTimeout, InferenceUnavailable, TriggerSimError
from trigger_sim.inference.deadline import require_left_s
from trigger_sim.inference.triton_shm import SharedMemoryTransport

Inputs = np.ndarray | Mapping[str, np.ndarray]
DEFAULT_MIN_SHM_BYTES = 1 << 16  # below this the gRPC message is as fast (BENCHMARKS.md, inference)
_NUMPY_TYPES = {"FP32": np.float32, "INT32": np.int32, "INT64": np.int64, "FP64": np.float64}


class TritonBackend:
    def __init__(self, url: str, model: str, inputs: str | Mapping[str, str], output_name: str, *, ssl: bool = False,
                 root_certificates: str | None = None, private_key: str | None = None,
                 certificate_chain: str | None = None, shm_prefix: str | None = None,
                 output_bytes: Callable[[Mapping[str, np.ndarray]], int] | None = None,
                 min_shm_bytes: int = DEFAULT_MIN_SHM_BYTES):
        """`inputs`: the input name (one FP32 input) or {name: Triton datatype}.

        `ssl`: gRPC over TLS; the others are PEM file paths (CA roots, client key and chain for mutual TLS).
        `shm_prefix`: use system shared memory, with region names starting so; needs
        `output_bytes(arrays)`, the size of the FP32 output a request will get.
        """
        self.url = url
        self.model = model
        self.input_types = {inputs: "FP32"} if isinstance(inputs, str) else dict(inputs)
        self.input_name = next(iter(self.input_types))
        self.output_name = output_name
        try:
            self.client = grpcclient.InferenceServerClient(url=url, ssl=ssl, root_certificates=root_certificates,
                                                           private_key=private_key, certificate_chain=certificate_chain)
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
        transport = self.shared_memory
        if transport is not None and not transport.disabled:
            n_bytes = sum(a.nbytes for a, _ in arrays.values())
            if n_bytes >= self.min_shm_bytes:
                out = self._infer_shm(arrays, n_bytes, deadline_ns, timeout_s)
                if out is not None:
                    return out
        try:
            result = self.client.infer(self.model, self._request(arrays), outputs=self._outputs,
                                       client_timeout=self._left_s(deadline_ns, timeout_s))
        except InferenceServerException as err:
            raise self._failure(err, timeout_s) from err
        out = result.as_numpy(self.output_name)
        if out is None:
            raise InferenceUnavailable(f"{self.url} {self.model}: response has no output '{self.output_name}'")
        if transport is not None:
            transport.request_answered_without()
        return out

    def _infer_shm(self, arrays: dict[str, tuple[np.ndarray, str]], n_bytes: int, deadline_ns: int,
                   timeout_s: float) -> np.ndarray | None:
        """The request through shared memory, within the deadline; None when it should go in
        the gRPC message instead (no free region, or the server or /dev/shm refused one)."""
        transport = self.shared_memory
        out_bytes = self.output_bytes({name: a for name, (a, _) in arrays.items()})
        try:
            plan = transport.acquire(n_bytes, out_bytes, deadline_ns)
        except InferenceServerException as err:
            if _is_deadline(err):
                raise self._failure(err, timeout_s) from err
            transport.registration_refused()
            return None
        except OSError:  # /dev/shm full or not writable
            return None
        if plan is None:
            return None
        ok = False
        try:
            request, outputs = transport.request(plan, arrays, self.output_name, out_bytes)
            result = self.client.infer(self.model, request, outputs=outputs, client_timeout=self._left_s(deadline_ns, timeout_s))
            out = transport.read_output(plan, result, self.output_name)
            ok = True
        except InferenceServerException as err:
            raise self._failure(err, timeout_s) from err
        except InferenceError:
            raise
        except Exception as err:  # a region that cannot be written or read: a failed call like any other
            raise InferenceUnavailable(f"{self.url} {self.model}: shared memory: {type(err).__name__}: {err}") from err
        finally:
            transport.release(plan, ok)
        return out

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
