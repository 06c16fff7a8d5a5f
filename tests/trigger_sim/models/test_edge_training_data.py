"""Labelled training graphs from recordings are those of the simulated events they hold."""

from __future__ import annotations

import numpy as np
import pytest

from trigger_sim.config import FarmConfig, with_overrides
from trigger_sim.errors import TriggerSimError
from trigger_sim.models.edge_training_data import recording_graphs, simulated_graph
from trigger_sim.recording import write_generated

CONFIG = with_overrides(FarmConfig(), run={"seed": 777}, physics={"pileup_mean": 5.0})


def test_recorded_graphs_label_the_edges_as_the_simulation_does(tmp_path):
    path = tmp_path / "r.tsrec"
    write_generated(CONFIG, path, 3, truth=True)
    recorded = recording_graphs(path, CONFIG)
    assert len(recorded) == 3
    for l1_id, got in enumerate(recorded):
        want = simulated_graph(CONFIG, l1_id)  # hits in the simulation's order, not the readout's
        assert len(got.edges) == len(want.edges) > 0
        assert got.true.sum() == want.true.sum() > 0
        assert got.true_hipt.sum() == want.true_hipt.sum()
        np.testing.assert_allclose(np.sort(got.pt_gev), np.sort(want.pt_gev))
        assert np.all(got.pt_gev[~got.true] == 0)


def test_a_record_without_truth_is_refused_with_its_reason(tmp_path):
    path = tmp_path / "r.tsrec"
    write_generated(CONFIG, path, 1, truth=False)
    with pytest.raises(TriggerSimError, match="l1_id 0: the record carries no truth .*record events with"):
        recording_graphs(path, CONFIG)
