"""The remote backend: a Triton gRPC client with a deadline on every call.

Failures become `InferenceTimeout` (deadline exceeded) or `InferenceUnavailable`
(server down, model not ready, any other error), which the inference service turns into a
local fallback. A model has one input (pass an array) or several (pass a dict keyed by
input name); the Triton datatype of each follows the array's dtype.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException, np_to_triton_dtype

from trigger_sim.errors import InferenceTimeout, InferenceUnavailable, TriggerSimError

Inputs = np.ndarray | Mapping[str, np.ndarray]


class TritonBackend:
    def __init__(self, url: str, model: str, inputs: str | Mapping[str, str], output_name: str, *, ssl: bool = False,
                 root_certificates: str | None = None, private_key: str | None = None,
                 certificate_chain: str | None = None):
        """`inputs`: the input name (one FP32 input) or {name: Triton datatype}.

        `ssl`: gRPC over TLS; the others are PEM file paths (CA roots, client key and chain for mutual TLS).
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

    def _request(self, inputs: Inputs) -> list[grpcclient.InferInput]:
        arrays = inputs if isinstance(inputs, Mapping) else {self.input_name: inputs}
        if set(arrays) != set(self.input_types):
            raise ValueError(f"model '{self.model}' takes inputs {sorted(self.input_types)}, got {sorted(arrays)}")
        request = []
        for name, datatype in self.input_types.items():
            array = np.ascontiguousarray(arrays[name])
            if np_to_triton_dtype(array.dtype) != datatype:
                array = array.astype({"FP32": np.float32, "INT32": np.int32, "INT64": np.int64, "FP64": np.float64}[datatype])
            tensor = grpcclient.InferInput(name, list(array.shape), datatype)
            tensor.set_data_from_numpy(array)
            request.append(tensor)
        return request

    def infer(self, inputs: Inputs, timeout_s: float) -> np.ndarray:
        """Send one request; raise InferenceTimeout after `timeout_s` seconds."""
        request = self._request(inputs)
        try:
            result = self.client.infer(self.model, request, outputs=self._outputs, client_timeout=timeout_s)
        except InferenceServerException as err:
            if "DEADLINE_EXCEEDED" in str(err.status()) or "Deadline Exceeded" in str(err):
                raise InferenceTimeout(f"{self.url} {self.model}: no answer within {timeout_s * 1e3:.3g} ms") from err
            raise InferenceUnavailable(f"{self.url} {self.model}: {err}") from err
        out = result.as_numpy(self.output_name)
        if out is None:
            raise InferenceUnavailable(f"{self.url} {self.model}: response has no output '{self.output_name}'")
        return out

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

    def close(self) -> None:
        self.client.close()
