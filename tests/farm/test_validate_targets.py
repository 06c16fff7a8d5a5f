"""The validation's per-pT-bin target (the rest of `trigger-sim validate` is in tests/integration)."""

from __future__ import annotations

from farm.validate import lowest_bin_efficiency

EDGES = [0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 50.0, 200.0]


def by_pt(efficiency: list, particles: list) -> dict:
    return {"bin_edges_gev": EDGES, "efficiency": efficiency, "particles": particles}


def test_the_lowest_bin_above_1_gev_counts_and_softer_bins_do_not() -> None:
    eff = [0.1, 0.2, 0.99, 0.98, 0.97, 0.96, 0.95, 0.94, 0.99, 1.0]
    assert lowest_bin_efficiency(by_pt(eff, [10] * 10)) == 0.94


def test_empty_bins_are_left_out_and_no_particles_gives_none() -> None:
    eff = [0.1, 0.2, 0.99, 0.98, 0.97, 0.96, 0.95, 0.94, 0.99, None]
    assert lowest_bin_efficiency(by_pt(eff, [10] * 7 + [0, 10, 0])) == 0.95
    assert lowest_bin_efficiency(by_pt([None] * 10, [0] * 10)) is None
