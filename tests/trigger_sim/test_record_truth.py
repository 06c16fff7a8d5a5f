"""Tests of trigger_sim.record_truth: event truth into a record's meta and back, TrackML truth."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_sim.config import load_config
from trigger_sim.errors import TriggerSimError
from trigger_sim.partition import tracker_hit_order, unpack_tracker
from trigger_sim.record_truth import (
    GENERATED,
    TRACKML,
    EventTruth,
    ObjectTruth,
    ParticleTruth,
    generated_truth,
    truth_from_record,
    truth_meta,
)
from trigger_sim.simulation import fragments_of, simulate


@st.composite
def event_truths(draw) -> EventTruth:
    n_particles = draw(st.integers(0, 20))
    n_hits = draw(st.integers(0, 40))
    hit_particle = np.array(draw(st.lists(st.integers(-1, n_particles - 1), min_size=n_hits, max_size=n_hits)), np.int32)
    floats = st.floats(0.0, 1e4, allow_nan=False)
    particles = ParticleTruth(np.array(draw(st.lists(floats, min_size=n_particles, max_size=n_particles)), np.float64),
                              np.array(draw(st.lists(st.integers(-1, 1), min_size=n_particles, max_size=n_particles)), np.int8),
                              np.array(draw(st.lists(st.integers(0, 5), min_size=n_particles, max_size=n_particles)), np.int8))
    objects = None
    if draw(st.booleans()):
        n = draw(st.integers(0, 4))
        objects = ObjectTruth(np.array(draw(st.lists(st.integers(0, 2), min_size=n, max_size=n)), np.int8),
                              *(np.array(draw(st.lists(floats, min_size=n, max_size=n))) for _ in range(3)),
                              true_met_gev=draw(floats), particles=particles)
    return EventTruth(GENERATED, hit_particle, particles, objects)


def _through_msgpack(meta: dict) -> dict:
    return msgpack.unpackb(msgpack.packb(meta, use_bin_type=True), raw=False)


def _same(a: EventTruth, b: EventTruth) -> None:
    assert a.source == b.source
    np.testing.assert_array_equal(a.hit_particle, b.hit_particle)
    for name in ("pt_gev", "charge", "origin"):
        got, want = getattr(b.particles, name), getattr(a.particles, name)
        np.testing.assert_array_equal(got, want)
        assert got.dtype == want.dtype
    assert (a.objects is None) == (b.objects is None)
    if a.objects is not None:
        for name in ("truth_kind", "truth_pt_gev", "truth_eta", "truth_phi"):
            np.testing.assert_array_equal(getattr(b.objects, name), getattr(a.objects, name))
        assert b.objects.true_met_gev == a.objects.true_met_gev


@settings(max_examples=60, deadline=None)
@given(event_truths())
def test_truth_survives_the_record_bit_for_bit(truth):
    back, why = truth_from_record({"truth": _through_msgpack(truth_meta(truth))}, len(truth.hit_particle))
    assert why == ""
    _same(truth, back)


def test_truth_of_a_simulated_event_follows_its_hits_through_the_readout():
    config = load_config(None)
    sim = simulate(config, 3)
    truth = generated_truth(sim, tracker_hit_order(sim.hits, config.tracker))
    fragments = fragments_of(config, sim, 3, 0)
    layer, r, phi, z = unpack_tracker(fragments, config.tracker)
    order = tracker_hit_order(sim.hits, config.tracker)
    np.testing.assert_array_equal(truth.hit_particle, sim.hits.particle[order])
    np.testing.assert_array_equal(layer, sim.hits.layer[order])  # the same hits, in the same order
    np.testing.assert_allclose(phi, sim.hits.phi[order], atol=1e-3)
    np.testing.assert_array_equal(truth.particles.pt_gev, sim.truth.particles.pt_gev)
    assert truth.objects.true_met_gev == sim.truth.true_met_gev


def test_a_record_without_truth_says_why():
    assert truth_from_record({}, 10) == (None, "the record carries no truth (recorded by a farm run or imported without truth)")
    truth, why = truth_from_record({"trackml_hits": {"hit_id": [1, 2]}, "trackml_particles": {}}, 2)
    assert truth is None and "TrackML event without truth" in why


def test_truth_of_another_length_than_the_hits_is_refused():
    truth = EventTruth(GENERATED, np.array([0, -1], np.int32), ParticleTruth(np.ones(1), np.ones(1, np.int8), np.zeros(1, np.int8)), None)
    with pytest.raises(TriggerSimError, match="lists 2 tracker hits, its fragments hold 3"):
        truth_from_record({"truth": truth_meta(truth)}, 3)


@pytest.mark.parametrize("damage, message", [
    (lambda m: m.update(format_version=9), "format_version 9 is not supported"),
    (lambda m: m.pop("hit_particle"), "malformed"),
    (lambda m: m.update(hit_particle=b"\x00\x01\x02"), "malformed"),
    (lambda m: m.update(hit_particle=np.array([5], "<i4").tobytes()), "outside the 1 particles"),
    (lambda m: m["particles"].update(charge=b""), "differ in length"),
])
def test_malformed_truth_is_a_clear_error(damage, message):
    truth = EventTruth(GENERATED, np.array([0], np.int32), ParticleTruth(np.ones(1), np.ones(1, np.int8), np.zeros(1, np.int8)), None)
    meta = truth_meta(truth)
    damage(meta)
    with pytest.raises(TriggerSimError, match=message):
        truth_from_record({"truth": meta}, 1)


def _trackml_meta(hit_ids: list[int]) -> dict:
    particles = {"particle_id": [2**60 + 7, 5, 9], "px_gev": [3.0, 0.3, 0.0], "py_gev": [4.0, 0.4, 2.0], "q": [1, -1, 1],
                 "vx_mm": [0.0] * 3, "vy_mm": [0.0] * 3, "vz_mm": [0.0] * 3, "pz_gev": [1.0] * 3, "nhits": [1] * 3}
    return {"trackml_hits": {"hit_id": list(range(len(hit_ids))), "particle_id": hit_ids}, "trackml_particles": particles}


def test_trackml_truth_maps_particle_ids_to_rows_and_zero_to_noise():
    truth, why = truth_from_record(_trackml_meta([5, 0, 2**60 + 7, 9, 5]), 5)
    assert why == "" and truth.source == TRACKML and truth.objects is None
    np.testing.assert_array_equal(truth.hit_particle, [1, -1, 0, 2, 1])
    np.testing.assert_allclose(truth.particles.pt_gev, [5.0, 0.5, 2.0])
    np.testing.assert_array_equal(truth.particles.charge, [1, -1, 1])


def test_trackml_truth_naming_an_unknown_particle_is_refused():
    with pytest.raises(TriggerSimError, match="missing from the particles"):
        truth_from_record(_trackml_meta([5, 11]), 2)
