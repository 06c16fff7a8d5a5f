"""Both models of the HLT sequence on the real Triton server: the served forward pass is the
worker's fallback forward pass, bit for bit, on real simulated events."""

from __future__ import annotations

import numpy as np
import pytest

from trigger_sim.config import FarmConfig, with_overrides
from trigger_sim.hlt.sequence import EventObjects, HltSequence
from trigger_sim.inference.factory import build_inference, close_inference, prepare_inference
from trigger_sim.inference.triton_client import TritonBackend
from trigger_sim.menu import load_menu
from trigger_sim.models import edge_classifier
from trigger_sim.models.registry import EDGE_CLASSIFIER, JET_TAGGER, MODEL_NAMES, model_spec
from trigger_sim.simulation import event_fragments, simulate
from trigger_sim.wire import encode_fragment

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

CFG = with_overrides(FarmConfig(), run={"seed": 8080}, physics={"pileup_mean": 40.0, "signal_fraction": 0.5})


def graph_inputs(l1_id: int) -> dict[str, np.ndarray]:
    return edge_classifier.request_for_hits(simulate(CFG, l1_id).hits, CFG)


def test_edge_classifier_on_triton_equals_the_local_forward(triton_server):
    spec = model_spec(EDGE_CLASSIFIER)
    client = TritonBackend(triton_server.grpc_url, EDGE_CLASSIFIER, spec.input_types, spec.output_name)
    client.check_model()
    local = spec.make_local()
    try:
        for l1_id in range(3):
            inputs = graph_inputs(l1_id)
            served = client.infer(inputs, timeout_s=30.0)
            assert served.dtype == np.float32 and served.shape == (len(inputs[edge_classifier.EDGE_INDEX]),)
            assert served.tobytes() == local.infer(inputs).tobytes()
            assert 0.0 <= served.min() and served.max() <= 1.0
    finally:
        client.close()


def test_a_model_that_does_not_match_the_client_is_refused(triton_server):
    spec = model_spec(EDGE_CLASSIFIER)
    wrong = dict(spec.input_types) | {edge_classifier.EDGE_INDEX: "FP32"}
    client = TritonBackend(triton_server.grpc_url, EDGE_CLASSIFIER, wrong, spec.output_name)
    try:
        with pytest.raises(Exception, match="does not match the client"):
            client.check_model()
    finally:
        client.close()


def test_sequence_through_triton_decides_like_the_fallback_event_by_event(triton_server, request):
    menu = load_menu(CFG.menu)
    relaxed = with_overrides(CFG, inference={"timeout_ms": 10_000.0}, worker={"budget_ms": 60_000.0})
    served = build_inference(relaxed, triton_server.grpc_url)
    request.addfinalizer(lambda: close_inference(served))
    assert prepare_inference(served) == ""
    local = build_inference(relaxed, None)
    via_triton, via_fallback = HltSequence(relaxed, menu, served), HltSequence(relaxed, menu, local)
    for l1_id in range(12):
        frames = [encode_fragment(f) for f in event_fragments(relaxed, l1_id, 0)]
        a_keep, b_keep = EventObjects(), EventObjects()
        a = via_triton.process(l1_id, frames, keep=a_keep)
        b = via_fallback.process(l1_id, frames, keep=b_keep)
        assert a.inference[EDGE_CLASSIFIER] == "triton" and b.inference[EDGE_CLASSIFIER] == "fallback"
        assert (a.outcome, a.chains, a.streams, a.n_tracks) == (b.outcome, b.chains, b.streams, b.n_tracks)
        assert a_keep.edge_scores.tobytes() == b_keep.edge_scores.tobytes()
        assert a_keep.jet_scores.tobytes() == b_keep.jet_scores.tobytes()
    for name in MODEL_NAMES:
        assert served[name].counters.triton_calls > 0 and served[name].counters.fallback_calls == 0
