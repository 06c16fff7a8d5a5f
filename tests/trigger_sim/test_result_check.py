"""Tests of trigger_sim.result_check: a malformed decision is refused with a reason."""

from __future__ import annotations

import pytest

from trigger_sim.result_check import check_result

GOOD = {"l1_id": 7, "outcome": "accepted", "streams": ["Main"], "chains": ["HLT_tau"], "steps_ms": {"calo": 1},
        "received_ns": 1, "decided_ns": 2}


def test_a_good_result_is_typed():
    out = check_result(GOOD)
    assert out["steps_ms"] == {"calo": 1.0} and out["streams"] == ["Main"]


@pytest.mark.parametrize("change", [
    {"l1_id": "7"}, {"l1_id": -1}, {"l1_id": True}, {"outcome": "maybe"}, {"outcome": "debug", "streams": []},
    {"streams": "Main"}, {"chains": None}, {"steps_ms": []}, {"steps_ms": {"calo": "x"}}, {"received_ns": 1.5},
])
def test_malformed_results_are_refused(change):
    with pytest.raises(ValueError):
        check_result({**GOOD, **change})


@pytest.mark.parametrize("key", sorted(GOOD))
def test_a_missing_field_is_named(key):
    with pytest.raises(ValueError, match=key):
        check_result({k: v for k, v in GOOD.items() if k != key})


def test_not_a_map():
    with pytest.raises(ValueError, match="list"):
        check_result([1, 2])
