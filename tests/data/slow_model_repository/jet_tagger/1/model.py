"""A slow jet tagger, for tests: the real model's forward pass after a fixed delay.

It serves the same weights as model_repository/jet_tagger, sleeps SLOW_MS per execute()
(an overloaded or remote server; the model configuration's parameter `delay_ms` sets another
delay), and skips requests its clients have already abandoned, so abandoned work does not
pile up.
"""

import json
import sys
import time
from pathlib import Path

import numpy as np
import triton_python_backend_utils as pb_utils

sys.path.insert(0, str(Path(__file__).resolve().parents[4]))
from trigger_sim.models import jet_tagger  # noqa: E402

SLOW_MS = 50.0


class TritonPythonModel:
    def initialize(self, args):
        self.weights = jet_tagger.load_weights(jet_tagger.WEIGHTS_PATH)
        parameters = json.loads(args["model_config"]).get("parameters", {})
        self.delay_s = float(parameters.get("delay_ms", {}).get("string_value", SLOW_MS)) / 1e3

    def execute(self, requests):
        time.sleep(self.delay_s)
        responses = []
        for request in requests:
            if request.is_cancelled():
                responses.append(pb_utils.InferenceResponse(
                    error=pb_utils.TritonError("request cancelled by the client", pb_utils.TritonError.CANCELLED)))
                continue
            x = pb_utils.get_input_tensor_by_name(request, jet_tagger.INPUT_NAME).as_numpy()
            scores = jet_tagger.forward(self.weights, x)
            responses.append(pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(jet_tagger.OUTPUT_NAME, scores)]))
        return responses
