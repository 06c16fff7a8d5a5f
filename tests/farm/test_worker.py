"""The worker process's plain parts: how many events it asks for, and --slots reaching it."""

from __future__ import annotations

from farm.cli import _configure
from farm.worker import credits_asked
from trigger_sim.config import FarmConfig, with_overrides


def test_a_worker_asks_for_one_event_per_slot():
    assert credits_asked(FarmConfig()) == 1
    assert credits_asked(with_overrides(FarmConfig(), worker={"slots": 4})) == 4
    # a builder configured to hand each worker more: the rest wait in the socket for a free slot
    assert credits_asked(with_overrides(FarmConfig(), worker={"slots": 4}, builder={"credits_per_worker": 6})) == 6


def test_the_slots_option_sets_worker_slots():
    assert _configure(None, None, None, None, None, None, False).worker.slots == 1
    assert _configure(None, None, None, 2, None, None, False, slots=8).worker == with_overrides(
        FarmConfig(), worker={"count": 2, "slots": 8}).worker
