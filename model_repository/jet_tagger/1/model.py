"""Triton Python-backend model for the jet tagger.

The forward pass and the weights are those of `trigger_sim.models.jet_tagger`, the same
code the workers run as their local fallback. An instance on a GPU (configs/gpu.pbtxt)
runs the same operations in torch on its device (`trigger_sim.models.jet_tagger_torch`).
Requests already cancelled by their client (a worker whose deadline passed) are skipped,
so abandoned work does not pile up.
"""

import sys
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

try:
    from trigger_sim.models import jet_tagger, serving
except ImportError:  # server started from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from trigger_sim.models import jet_tagger, serving


class TritonPythonModel:
    def initialize(self, args):
        weights = jet_tagger.load_weights(Path(__file__).resolve().parent / "weights.npz")
        choice = serving.choice_from_args(args)
        self.forward = serving.jet_tagger_forward(weights, choice)
        self.forward(np.zeros((1, jet_tagger.N_FEATURES), np.float32))  # CUDA kernels loaded before the first request
        pb_utils.Logger.log_info(f"{jet_tagger.MODEL_NAME} instance {args.get('model_instance_name')}: {choice}")

    def execute(self, requests):
        responses = [None] * len(requests)
        live, arrays = [], []
        for i, request in enumerate(requests):
            if request.is_cancelled():
                responses[i] = pb_utils.InferenceResponse(
                    error=pb_utils.TritonError("request cancelled by the client", pb_utils.TritonError.CANCELLED)
                )
                continue
            x = pb_utils.get_input_tensor_by_name(request, jet_tagger.INPUT_NAME).as_numpy()
            live.append(i)
            arrays.append(x)
        if live:
            scores = self.forward(np.concatenate(arrays))
            start = 0
            for i, x in zip(live, arrays):
                part = np.ascontiguousarray(scores[start : start + len(x)])
                start += len(x)
                responses[i] = pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(jet_tagger.OUTPUT_NAME, part)])
        return responses
