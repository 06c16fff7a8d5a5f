"""Triton Python-backend model for the hit-graph edge classifier.

The forward pass and the weights are those of `trigger_sim.models.edge_classifier`, the
same code the workers run as their local fallback, so both give the same scores. An
instance on a GPU (configs/gpu.pbtxt) runs the same network in torch on its device
(`trigger_sim.models.edge_classifier_torch`; scores agree to about 1e-6). One request is
one event's graph; requests are answered one by one. Requests already cancelled
by their client (a worker whose deadline passed) are skipped, so abandoned work does not
pile up; a malformed request gets an INVALID_ARG error without affecting the others.
"""

import sys
from pathlib import Path

import triton_python_backend_utils as pb_utils

try:
    from trigger_sim.models import edge_classifier, serving
except ImportError:  # server started from a checkout without the package installed
    sys.path.insert(0, str(Path(__file__).resolve().parents[3]))
    from trigger_sim.models import edge_classifier, serving

INPUT_NAMES = (edge_classifier.NODE_FEATURES, edge_classifier.EDGE_INDEX, edge_classifier.EDGE_FEATURES)


class TritonPythonModel:
    def initialize(self, args):
        weights = edge_classifier.load_weights(Path(__file__).resolve().parent / "weights.npz")
        choice = serving.choice_from_args(args)
        self.forward = serving.edge_classifier_forward(weights, choice)
        self.forward(*edge_classifier.tiny_graph())  # numba helpers loaded, or CUDA kernels, before the first request
        pb_utils.Logger.log_info(f"{edge_classifier.MODEL_NAME} instance {args.get('model_instance_name')}: {choice}")

    def execute(self, requests):
        responses = []
        for request in requests:
            if request.is_cancelled():
                responses.append(pb_utils.InferenceResponse(
                    error=pb_utils.TritonError("request cancelled by the client", pb_utils.TritonError.CANCELLED)
                ))
                continue
            inputs = {name: pb_utils.get_input_tensor_by_name(request, name).as_numpy() for name in INPUT_NAMES}
            try:
                scores = self.forward(*edge_classifier.request_arrays(inputs))
            except ValueError as err:
                responses.append(pb_utils.InferenceResponse(
                    error=pb_utils.TritonError(str(err), pb_utils.TritonError.INVALID_ARG)
                ))
                continue
            responses.append(pb_utils.InferenceResponse(
                output_tensors=[pb_utils.Tensor(edge_classifier.EDGE_SCORE, scores)]
            ))
        return responses
